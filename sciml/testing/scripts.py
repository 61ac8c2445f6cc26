"""Standalone scripts (the files of ``benchmarks/``) in tests: import one as a module, for tests of its functions,
or run it as a fresh process in its ``--quick`` mode and read the JSON it wrote."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["load_script", "run_quick"]


def load_script(path: str | os.PathLike) -> ModuleType:
    """Execute the Python file ``path`` as a fresh module named ``_sciml_script_<stem>`` and return it (not added
    to ``sys.modules``; the script's ``if __name__ == "__main__"`` block does not run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such script")
    spec = importlib.util.spec_from_file_location(f"_sciml_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_quick(script: str | os.PathLike, out: str | os.PathLike, *args: str, env: dict[str, str] | None = None,
              cwd: str | os.PathLike | None = None, timeout: float = 600, quick: bool = True) -> dict[str, Any]:
    """Run ``python script [--quick] --out out *args`` in a fresh interpreter (one BLAS thread, ``PYTHONSAFEPATH``
    set, ``env`` added to the environment) and return the JSON it wrote to ``out``.

    Raises:
        AssertionError: the script exited non-zero (the message ends with its output), or wrote no ``out``.
    """
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONSAFEPATH": "1", **(env or {})}
    cmd = [sys.executable, str(script), *(["--quick"] if quick else []), "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=None if cwd is None else str(cwd))
    if proc.returncode != 0:  # raised, not asserted: the check stays under python -O
        raise AssertionError(f"{Path(script).name} exited {proc.returncode}:\n" + proc.stdout[-2000:]
                             + proc.stderr[-3000:])
    if not Path(out).is_file():
        raise AssertionError(f"{Path(script).name} wrote no {out}:\n" + proc.stdout[-2000:])
    return json.loads(Path(out).read_text())
