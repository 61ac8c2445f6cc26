"""``sciml bench``: list and run the benchmark scripts of a source checkout (``benchmarks/*.py``)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from sciml.errors import SciMLError


def default_benchmarks_dir() -> Path | None:
    """``benchmarks/`` beside the installed ``sciml`` package when it runs from a checkout (editable install)."""
    import sciml

    candidate = Path(sciml.__file__).resolve().parents[1] / "benchmarks"
    return candidate if candidate.is_dir() else None


def available(bench_dir: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(bench_dir.glob("*.py")) if not p.name.startswith("_")}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="list or run a benchmark script from benchmarks/",
                       description="List the benchmarks (no NAME) or run one; arguments after NAME go to the script, "
                                   "e.g. `sciml bench sparse_ops --quick`. Results are written as JSON under "
                                   "benchmarks/results/.")
    p.add_argument("name", nargs="?", help="benchmark name (a file benchmarks/NAME.py)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark script")
    p.add_argument("--dir", type=Path, default=None,
                   help="benchmarks folder (default: benchmarks/ of the checkout sciml is installed from)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bench_dir = args.dir or default_benchmarks_dir()
    if bench_dir is None or not bench_dir.is_dir():
        raise SciMLError("no benchmarks folder found: benchmarks live in the source checkout (not in the wheel); "
                         "pass --dir PATH/TO/benchmarks")
    scripts = available(bench_dir)
    if args.name is None:
        print(f"benchmarks in {bench_dir}:")
        for name in scripts:
            print(f"  {name}")
        return 0
    if args.name not in scripts:
        raise SciMLError(f"unknown benchmark {args.name!r}; available: {', '.join(scripts) or 'none'}")
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    return subprocess.call([sys.executable, str(scripts[args.name]), *args.args], cwd=bench_dir.parent, env=env)
