"""Metrics to ``metrics.jsonl`` and ``metrics.csv`` (and optionally TensorBoard) in the run directory."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from sciml.io import atomic_write, atomic_write_text

__all__ = ["MetricsLogger"]


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf
    return v


class MetricsLogger:
    """Appends one record per event (``{"step", "epoch", "split", "time", <metrics>}``) to ``metrics.jsonl`` and
    keeps ``metrics.csv`` in step with it (the CSV is rewritten from the JSONL when a new column appears).

    On resume, :meth:`truncate` drops records newer than the checkpoint so that the files read as if the run had
    never been interrupted.

    Args:
        run_dir (str): the run directory.
        tensorboard (bool): also write TensorBoard scalars (needs ``tensorboard``). (default: ``False``)
    """

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = False) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path, self.csv_path = self.dir / "metrics.jsonl", self.dir / "metrics.csv"
        self._columns: list[str] = []
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency, asked for explicitly
            self._tb = SummaryWriter(str(self.dir / "tensorboard"))
        if self.jsonl_path.exists():
            self._rewrite_csv(self._read())

    def _read(self) -> list[dict[str, Any]]:
        records = []
        with open(self.jsonl_path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a kill
                    break
        return records

    def _rewrite_csv(self, records: list[dict[str, Any]]) -> None:
        cols: list[str] = []
        for r in records:
            cols.extend(k for k in r if k not in cols)
        self._columns = cols

        def write(f: Any) -> None:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(records)

        atomic_write(self.csv_path, write, binary=False)

    def truncate(self, max_step: int) -> None:
        """Drop every record with ``step > max_step`` (used when resuming from a checkpoint at ``max_step``)."""
        if not self.jsonl_path.exists():
            return
        records = [r for r in self._read() if int(r.get("step", 0)) <= max_step]
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in records))
        self._rewrite_csv(records)

    def log(self, record: dict[str, Any]) -> None:
        record = {k: _plain(v) for k, v in record.items()}
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if any(k not in self._columns for k in record):
            self._rewrite_csv(self._read())
        else:
            with open(self.csv_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._columns).writerow(record)
        if self._tb is not None:
            split = record.get("split", "")
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch", "time"):
                    self._tb.add_scalar(f"{split}/{k}", v, record.get("step", 0))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
