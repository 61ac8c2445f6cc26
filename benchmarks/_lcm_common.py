"""Helpers shared by the LCM experiment scripts (``lcm_second_minimum.py``, ``lcm_tu.py``): an incremental,
resumable JSON result file and mean/std summaries.

The result file holds ``{"config": ..., "machine": ..., "runs": {key: record}, "summary": ...}``; it is rewritten
atomically after every finished run, and a restarted script skips the runs already present when the stored config
equals the current one (otherwise it refuses, unless ``--fresh``).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info  # noqa: E402

from sciml.io import atomic_write_text  # noqa: E402


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (0 for a single value) of a list, with the values."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


class ResultFile:
    """Incremental JSON results: ``done(key)``, ``add(key, record)`` (atomic rewrite), ``set_summary(...)``."""

    def __init__(self, path: str | os.PathLike, config: dict[str, Any], *, fresh: bool = False,
                 device: str = "cpu") -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"config": config, "machine": machine_info(device), "runs": {},
                                     "summary": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if self.path.exists() and not fresh:
            old = json.loads(self.path.read_text())
            if old.get("config") != config:
                raise SystemExit(f"{self.path} holds results of another config; pass --fresh to overwrite, or "
                                 f"--out for another file.\n stored: {old.get('config')}\n now:    {config}")
            self.data["runs"] = old.get("runs", {})
            self.data["started"] = old.get("started", self.data["started"])
            self.data["resumed"] = old.get("resumed", 0) + 1
            # the machine of the first start stays; later starts are listed beside it
            self.data["resumed_on"] = old.get("resumed_on", []) + [self.data["machine"]]
            self.data["machine"] = old.get("machine", self.data["machine"])
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def done(self, key: str) -> bool:
        return key in self.data["runs"]

    def add(self, key: str, record: dict[str, Any]) -> None:
        self.data["runs"][key] = record
        self.write()

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.data["summary"] = summary
        self.write()

    def write(self) -> None:
        self.data["machine"]["load_average_at_write"] = _load()
        atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
