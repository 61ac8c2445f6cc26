"""Talking to Slurm: environment, array-aware requeue, ``sbatch``/``squeue``/``scontrol``/``scancel``.

Everything here shells out to the standard Slurm commands (no accounting database needed: state comes from
``squeue`` while a job is known to the controller, ``scontrol show job`` until ``MinJobAge``, and afterwards from the
files in the run directory). Rank mapping for ``srun`` steps is *not* here: it lives in
:mod:`sciml.train.distributed` (``distributed="auto"``), which every ``sciml train`` process uses.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sciml.errors import SciMLError

__all__ = ["SlurmError", "in_slurm_job", "job_ids", "requeue_target", "requeue_command", "requeue",
           "slurm_available", "sbatch", "job_states", "cancel", "sciml_executable", "TERMINAL_STATES",
           "DEPENDENCY_NEVER_SATISFIED", "parse_show_job"]

#: Pseudo state of a pending job whose dependency can never be satisfied (``Reason=DependencyNeverSatisfied``):
#: it would wait forever, so status treats it as finished (sciml's dependent jobs also carry
#: ``--kill-on-invalid-dep=yes``, so Slurm cancels them).
DEPENDENCY_NEVER_SATISFIED = "DEPENDENCY_NEVER_SATISFIED"

#: Job states after which a job runs no more (unless requeued by hand).
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                             "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED",
                             DEPENDENCY_NEVER_SATISFIED})


class SlurmError(SciMLError):
    """A Slurm command is missing or failed (the message carries its stderr)."""


def in_slurm_job(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs inside a Slurm allocation (``SLURM_JOB_ID`` set)."""
    env = os.environ if env is None else env
    return "SLURM_JOB_ID" in env


def job_ids(env: Mapping[str, str] | None = None) -> dict[str, str | int]:
    """The ids worth recording for this job: ``job_id``, ``array_job_id``/``array_task_id`` (arrays only) and
    ``restart_count`` (``SLURM_RESTART_COUNT``, 0 on the first start). Empty outside Slurm."""
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" not in env:
        return {}
    out: dict[str, str | int] = {"job_id": env["SLURM_JOB_ID"]}
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        out["array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
        out["array_task_id"] = env["SLURM_ARRAY_TASK_ID"]
    out["restart_count"] = int(env.get("SLURM_RESTART_COUNT", "0") or 0)
    return out


def requeue_target(env: Mapping[str, str] | None = None) -> str:
    """The id ``scontrol requeue`` must get: ``<array job>_<task>`` inside a job array (requeueing the plain
    ``SLURM_JOB_ID`` works too on recent Slurm, but the array form can never hit the whole array, Lightning #15022),
    else ``SLURM_JOB_ID``.

    Raises:
        SlurmError: not inside a Slurm job.
    """
    env = os.environ if env is None else env
    array_job, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    if env.get("SLURM_JOB_ID"):
        return env["SLURM_JOB_ID"]
    raise SlurmError("cannot requeue: SLURM_JOB_ID is not set (not inside a Slurm job)")


def requeue_command(env: Mapping[str, str] | None = None) -> list[str]:
    """``["scontrol", "requeue", <requeue_target>]``."""
    return ["scontrol", "requeue", requeue_target(env)]


def requeue(env: Mapping[str, str] | None = None, *, runner=subprocess.run) -> tuple[bool, str]:
    """Requeue the current job (array-task aware). Returns ``(ok, message)``; never raises for a missing or failing
    ``scontrol`` (the caller then exits with the "try again" status instead, Lightning #21404)."""
    try:
        cmd = requeue_command(env)
    except SlurmError as err:
        return False, str(err)
    try:
        proc = runner(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"{' '.join(cmd)}: {type(err).__name__}: {err}"
    msg = " ".join((proc.stdout + " " + proc.stderr).split())
    return proc.returncode == 0, f"{' '.join(cmd)}: rc={proc.returncode} {msg}".strip()


def slurm_available(timeout: float = 10.0) -> tuple[bool, str]:
    """Whether a Slurm controller answers ``sinfo`` here; ``(False, reason)`` otherwise."""
    if shutil.which("sinfo") is None:
        return False, "sinfo is not installed (start a local cluster with `bash scripts/slurm_ci.sh up`)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"sinfo failed: {err}"
    if proc.returncode != 0:
        return False, f"sinfo does not answer: {' '.join(proc.stderr.split())}"
    states = proc.stdout.split()
    if not any(s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing") for s in states):
        return False, f"no usable Slurm node (states: {', '.join(states) or 'none'})"
    return True, "ok"


def _run(cmd: Sequence[str], *, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise SlurmError(f"{cmd[0]} not found: is Slurm installed here (and on PATH)?")
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(cmd)} did not answer within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise SlurmError(f"{' '.join(cmd)} failed (rc={proc.returncode}): {' '.join(proc.stderr.split())}")
    return proc


def sbatch(script: str | os.PathLike, *args: str) -> str:
    """Submit a batch script; return the job id (``sbatch --parsable``)."""
    out = _run(["sbatch", "--parsable", *args, os.fspath(script)]).stdout.strip()
    job_id = out.split(";")[0].strip()
    if not re.fullmatch(r"\d+", job_id):
        raise SlurmError(f"sbatch printed {out!r}, not a job id")
    return job_id


_SHOW_STATE = re.compile(r"\bJobState=(\S+)")
_SHOW_ID = re.compile(r"\bJobId=(\d+)")
_SHOW_ARRAY = re.compile(r"\bArrayJobId=(\d+) ArrayTaskId=(\S+)")
_SHOW_REASON = re.compile(r"\bReason=(\S+)")


def parse_show_job(text: str) -> dict[str, str]:
    """States from ``scontrol -o show job`` output (one job per line); a pending job whose reason is
    ``DependencyNeverSatisfied`` maps to :data:`DEPENDENCY_NEVER_SATISFIED` (terminal)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        m_state, m_id = _SHOW_STATE.search(line), _SHOW_ID.search(line)
        if not m_state or not m_id:
            continue
        m_arr = _SHOW_ARRAY.search(line)
        key = f"{m_arr.group(1)}_{m_arr.group(2)}" if m_arr else m_id.group(1)
        state = m_state.group(1)
        m_reason = _SHOW_REASON.search(line)
        if state == "PENDING" and m_reason and m_reason.group(1) == "DependencyNeverSatisfied":
            state = DEPENDENCY_NEVER_SATISFIED
        states[key] = state
    return states


def job_states(job_id: str) -> dict[str, str]:
    """State of a job, or of every task of an array: ``{"123": "RUNNING"}`` / ``{"123_0": "COMPLETED", ...}``.

    ``squeue`` covers pending and running jobs; ``scontrol show job`` also finished ones (until ``MinJobAge``).
    An id the controller no longer knows maps to nothing (the caller falls back to the run directory).
    """
    proc = _run(["scontrol", "-o", "show", "job", str(job_id)], check=False)
    if proc.returncode != 0:
        return {}
    return parse_show_job(proc.stdout)


def cancel(job_ids_: Sequence[str], *, signal: str | None = None, batch: bool = False) -> None:
    """``scancel`` the given jobs (``signal``: send it instead of cancelling; ``batch``: only to the batch shell)."""
    if not job_ids_:
        return
    cmd = ["scancel"]
    if signal:
        cmd.append(f"--signal={signal}")
    if batch:
        cmd.append("--batch")
    _run([*cmd, *map(str, job_ids_)])


def sciml_executable() -> str:
    """Absolute path of the ``sciml`` console script to call inside jobs: the sibling of ``sys.executable`` (the
    virtualenv's ``bin/sciml``), else the one on ``PATH``. Never ``python -m`` from a checkout."""
    sibling = Path(sys.executable).with_name("sciml")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling.absolute())
    found = shutil.which("sciml")
    if found:
        return str(Path(found).absolute())
    raise SlurmError(f"the sciml console script is neither beside {sys.executable} nor on PATH; install the "
                     "package (pip install -e .) in the environment the jobs should use")
