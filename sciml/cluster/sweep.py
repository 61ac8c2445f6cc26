"""Sweeps: ``key=a,b,c`` arguments → the cartesian product of override lists, one run directory per task, and the
summary table of the tasks' final metrics.

Values are split on commas outside brackets/braces/quotes (``model.dims=[16,32],[64,64]`` is two values) and each
piece is parsed like any override (YAML: ``1e-3`` is a float, ``true`` a bool). Every combination is checked with
the config loader before anything is submitted, so an unknown key or a wrong type is a one-line
:class:`~sciml.errors.ConfigError` at submission time, not a failed array task.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sciml.errors import ConfigError

__all__ = ["split_values", "expand_sweep", "SweepTask", "plan_sweep", "SWEEP_FILE", "read_sweep", "summary_rows",
           "format_table", "rows_to_csv"]

SWEEP_FILE = "sweep.json"


def split_values(text: str) -> list[str]:
    """Split ``a,b,[1,2],'x,y'`` on top-level commas → ``["a", "b", "[1,2]", "'x,y'"]``."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [v.strip() for v in out]


def expand_sweep(args: Sequence[str]) -> list[list[str]]:
    """``["a=1,2", "b=x,y", "c=3"]`` → the 4 override lists of the cartesian product (first key slowest).

    Raises:
        ConfigError: an argument without ``=``, an empty value, a value that is not valid YAML, a key given twice
            or a value repeated within one list.
    """
    from sciml.config.overrides import parse_override

    axes: list[list[str]] = []
    seen: set[str] = set()
    for arg in args:
        key, sep, raw = arg.partition("=")
        if not sep or key.startswith("~"):
            raise ConfigError(f"sweep argument {arg!r}: expected key=value or key=a,b,c")
        if key.strip() in seen:
            raise ConfigError(f"sweep argument {arg!r}: key {key.strip()!r} is swept twice")
        seen.add(key.strip())
        values = split_values(raw)
        if any(v == "" for v in values):
            raise ConfigError(f"sweep argument {arg!r}: empty value in the list")
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ConfigError(f"sweep argument {arg!r}: repeated value(s) {', '.join(dup)}")
        axis = [f"{key.strip()}={v}" for v in values]
        for ov in axis:
            parse_override(ov)  # malformed key / bad YAML: one-line error now
        axes.append(axis)
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


class SweepTask(dict):
    """``{"index", "run_dir", "overrides", "params"}`` (a dict, so it round-trips through ``sweep.json``)."""


def plan_sweep(config: str | os.PathLike, args: Sequence[str], base_dir: str | os.PathLike,
               fixed: Sequence[str] = ()) -> list[SweepTask]:
    """Expand ``args``, check every combination against the config loader, and name the run directories
    ``base_dir/task-<i>``. ``fixed`` overrides apply to every task (before the swept ones)."""
    from sciml.config import load_config
    from sciml.config.overrides import parse_override

    base_dir = Path(base_dir).absolute()
    swept_keys = {a.partition("=")[0].strip() for a in args}
    for f in fixed:
        key = f.partition("=")[0].strip().lstrip("~")
        if key in swept_keys:
            raise ConfigError(f"sweep: {key!r} is both fixed ({f!r}) and swept")
    tasks = []
    for i, combo in enumerate(expand_sweep(args)):
        try:
            load_config(config, [*fixed, *combo])
        except ConfigError as err:
            raise ConfigError(f"sweep task {i} ({' '.join(combo)}): {' '.join(str(err).split())}") from None
        params = {parse_override(o).key: parse_override(o).value for o in combo}
        tasks.append(SweepTask(index=i, run_dir=str(base_dir / f"task-{i}"), overrides=[*fixed, *combo],
                               params=params))
    return tasks


def read_sweep(base_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(base_dir) / SWEEP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{base_dir} is not a sweep directory: {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def _final_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    out: dict[str, Any] = {"status": summary.get("status"), "steps": summary.get("steps")}
    for section in ("last_train", "last_val"):
        for k, v in (summary.get(section) or {}).items():
            out[k if section == "last_val" else f"train_{k}"] = v
    best = summary.get("best")
    if isinstance(best, dict):
        out.update({f"best_{k}": v for k, v in best.items() if isinstance(v, (int, float))})
    elif isinstance(best, (int, float)):
        out["best"] = best
    return out


def summary_rows(sweep: dict[str, Any], states: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per task: index, swept parameters, Slurm state (if known), final status, steps and metrics."""
    states = states or {}
    job = sweep.get("job_id")
    rows = []
    for task in sweep["tasks"]:
        row: dict[str, Any] = {"task": task["index"], **task["params"]}
        state = states.get(f"{job}_{task['index']}")
        if state is not None:
            row["state"] = state
        row.update(_final_metrics(Path(task["run_dir"])))
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain aligned text table (columns: union of the rows' keys, in first-seen order)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    cells = [cols] + [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _fmt(r.get(c)) for c in cols})
    return buf.getvalue()
