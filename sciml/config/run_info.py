"""Provenance written into a run directory: the resolved config and what produced the run.

``write_run_info(run_dir, cfg)`` writes

* ``config.yaml``: the resolved config (every default filled in), loadable again with
  :func:`~sciml.config.load_config`,
* ``run_info.json``: sciml version, git hash and dirty flag of the checkout sciml was imported from, Python and
  torch versions, torch CPU threads, host name, command line, UTC time and the Slurm job ids when run under Slurm,
  plus ``starts`` (one entry per start of the run in this directory, with its Slurm job ids: appended across
  requeues and resumes, never overwritten) and ``restart_count``.

Both files are written atomically with :func:`sciml.io.atomic_write_text` (temporary file in the same directory,
fsync, then :func:`os.replace`): a reader sees the old file or the new one, never a partial one.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from sciml.io import atomic_write_text  # the one atomic-write helper of the project (re-exported here)

__all__ = ["atomic_write_text", "git_info", "collect_run_info", "write_run_info", "CONFIG_FILE", "RUN_INFO_FILE"]

CONFIG_FILE = "config.yaml"
RUN_INFO_FILE = "run_info.json"
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
               "SLURM_JOB_NODELIST", "SLURM_NTASKS")


def _git(args: Sequence[str], cwd: pathlib.Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_info(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of the work tree holding ``path``.

    Args:
        path (str or PathLike, optional): A directory; (default: the directory of the imported ``sciml``
            package).

    Returns:
        ``{"git_hash": <40 hex digits>, "git_dirty": bool}``, or ``{"git_hash": "unknown", "git_dirty": None}``
        when git is missing, ``path`` is not in a work tree, or nothing under ``path`` is tracked there (e.g. sciml
        installed into a virtualenv that sits inside some other repository). Dirty means tracked files differ from
        ``HEAD``; untracked files do not count.
    """
    if path is None:
        import sciml

        path = pathlib.Path(sciml.__file__).resolve().parent
    path = pathlib.Path(path)
    unknown = {"git_hash": "unknown", "git_dirty": None}
    if not path.is_dir():
        return unknown
    commit = _git(["rev-parse", "HEAD"], path)
    if not commit or _git(["ls-files", "--error-unmatch", "--", "."], path) is None:
        return unknown
    status = _git(["status", "--porcelain", "--untracked-files=no"], path)
    return {"git_hash": commit, "git_dirty": None if status is None else bool(status)}


def _version(dist: str) -> str | None:
    import importlib.metadata  # not at module level: it costs ~20 ms on `import sciml.config`

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_run_info(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The provenance record written to ``run_info.json`` (see the module docstring).

    Args:
        argv (Sequence[str], optional): The command line. (default: :obj:`sys.argv`)
    """
    import sciml

    argv = list(sys.argv if argv is None else argv)
    torch_module = sys.modules.get("torch")
    info: dict[str, Any] = {
        "sciml_version": sciml.__version__,
        **git_info(),
        "python_version": platform.python_version(),
        "torch_version": getattr(torch_module, "__version__", None) or _version("torch"),
        "torch_threads": torch_module.get_num_threads() if torch_module is not None else None,
        "hostname": socket.gethostname(),
        "command": shlex.join(argv),
        "argv": argv,
        "cwd": os.getcwd(),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    slurm = {k: os.environ[k] for k in _SLURM_VARS if k in os.environ}
    if slurm:
        info["slurm"] = slurm
    return info


def _start_history(path: pathlib.Path, info: dict[str, Any]) -> dict[str, Any]:
    """``starts`` (one entry per start of the run in this directory: time, host, Slurm job ids and restart count,
    kept across requeues and resumes instead of being overwritten) and ``restart_count`` (starts - 1)."""
    previous: list[Any] = []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(old, dict) and isinstance(old.get("starts"), list):
            previous = old["starts"]
    except (OSError, ValueError):
        pass
    from sciml.cluster.slurm import job_ids  # the one place that knows which Slurm ids matter

    entry = {"time_utc": info["time_utc"], "hostname": info["hostname"], **job_ids(info.get("slurm") or {})}
    starts = [*previous, entry]
    return {"starts": starts, "restart_count": len(starts) - 1}


def write_run_info(run_dir: str | os.PathLike, cfg: Any, *, argv: Sequence[str] | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``config.yaml`` and ``run_info.json`` into ``run_dir`` (created if needed), each atomically.

    Args:
        run_dir (str or PathLike): The run directory.
        cfg (ExperimentConfig): The resolved config (any config dataclass accepted by
            :func:`~sciml.config.config_to_dict`).
        argv (Sequence[str], optional): The command line to record. (default: :obj:`sys.argv`)
        extra (dict, optional): More JSON-serialisable entries for ``run_info.json``. (default: :obj:`None`)

    Returns:
        The dict written to ``run_info.json``.
    """
    from .loader import dump_config

    run_dir = pathlib.Path(run_dir)
    config_text = dump_config(cfg)  # fails before anything is written if the config cannot be written as YAML
    info = collect_run_info(argv)
    if extra:
        info.update(extra)
    info.update(_start_history(run_dir / RUN_INFO_FILE, info))
    info_text = json.dumps(info, indent=2, sort_keys=False) + "\n"
    atomic_write_text(run_dir / CONFIG_FILE, config_text)
    atomic_write_text(run_dir / RUN_INFO_FILE, info_text)
    return info
