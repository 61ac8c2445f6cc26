"""Small helpers shared by benchmark scripts: machine description, interleaved median timing, and the resumable
JSON result file (``ResultFile``: ``{"config", "machine", "runs": {key: record}, "summary"}``, rewritten atomically
after every finished run; a restarted script skips the runs already present when the stored config equals the
current one, otherwise it refuses unless ``fresh``).

Benchmarks run with ``PYTHONSAFEPATH=1`` (``sciml bench``), so a script imports this module after putting its own
folder on ``sys.path``::

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import machine_info, interleaved
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sciml.io import atomic_write_text

__all__ = ["machine_info", "interleaved", "load_average", "summarize", "mean_std", "ResultFile", "log"]


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: str = "cpu", **extra: Any) -> dict[str, Any]:
    """The machine and software a result was measured on (the fields of ``sparse_ops.machine_info``), plus
    ``extra`` (library versions a benchmark depends on)."""
    import torch
    import torch_geometric

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "allocator_env": {k: os.environ.get(k) for k in ("GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_CONF")},
        "device": str(device), "load_average": load_average(),
    }
    try:
        with open("/proc/meminfo") as f:
            total = next(line for line in f if line.startswith("MemTotal"))
        info["memory_gib"] = round(int(total.split()[1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                            cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except OSError:
        pass
    info.update(extra)
    return info


def summarize(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "runs": len(seconds)}


def interleaved(fns: dict[str, Callable[[], Any]], *, reps: int, warmup: int = 1, budget_s: float = float("inf"),
                min_reps: int = 3, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Wall time of every ``fns[name]()`` in interleaved rounds: each round calls every peer once, in a shuffled
    order, so that drift of the machine (other jobs, thermal state) hits all peers alike. ``warmup`` untimed rounds
    first; then ``reps`` rounds, or fewer (at least ``min_reps``) once ``budget_s`` seconds are spent. Returns
    ``{name: {"median_s", "min_s", "max_s", "runs", "result"}}`` where ``result`` is the last return value."""
    results: dict[str, Any] = {}
    for _ in range(warmup):
        for name, fn in fns.items():
            results[name] = fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    rng = random.Random(seed)
    start = time.perf_counter()
    for k in range(reps):
        rng.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            results[name] = fns[name]()
            times[name].append(time.perf_counter() - t0)
        if k + 1 >= min_reps and time.perf_counter() - start > budget_s:
            break
    return {k: {**summarize(v), "result": results.get(k)} for k, v in times.items()}


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (0 for a single value) of a list, with the values."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


class ResultFile:
    """Incremental JSON results: ``done(key)``, ``add(key, record)`` (atomic rewrite), ``set_summary(...)``.
    ``read_only=True`` (say for figures from finished runs) reads the file and never writes it."""

    def __init__(self, path: str | os.PathLike, config: dict[str, Any], *, fresh: bool = False,
                 device: str = "cpu", read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
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
            if "merged_from" in old:
                self.data["merged_from"] = old["merged_from"]
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def done(self, key: str) -> bool:
        return key in self.data["runs"]

    def add(self, key: str, record: dict[str, Any]) -> None:
        self.data["runs"][key] = record
        self.write()

    def merge(self, path: str | os.PathLike, *, partial: tuple[str, ...] = ()) -> int:
        """Fold in the runs of another result file of the same config (say one seed per process, one file each).
        A config entry named in ``partial`` (a dict, e.g. the budgets of the problems that file ran) may hold a
        subset of ours, entry by entry equal. Runs already here are kept. Returns the number of runs added."""
        other = json.loads(Path(path).read_text())
        theirs, ours = other.get("config", {}), self.data["config"]
        differ = [k for k in sorted(set(theirs) | set(ours)) if k not in partial and theirs.get(k) != ours.get(k)]
        differ += [f"{k}[{sub}]" for k in partial for sub, v in (theirs.get(k) or {}).items()
                   if (ours.get(k) or {}).get(sub) != v]
        if differ:
            raise SystemExit(f"{path} holds results of another config ({', '.join(differ)} differ); not merged "
                             f"into {self.path}")
        added = [k for k in other.get("runs", {}) if k not in self.data["runs"]]
        for k in added:
            self.data["runs"][k] = other["runs"][k]
        self.data["merged_from"] = self.data.get("merged_from", []) + [
            {"file": Path(path).name, "runs": added, "machine": other.get("machine")}]
        self.write()
        return len(added)

    def set_summary(self, summary: dict[str, Any]) -> None:
        self.data["summary"] = summary
        self.write()

    def write(self) -> None:
        if self.read_only:
            return
        self.data["machine"]["load_average_at_write"] = load_average()
        atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
