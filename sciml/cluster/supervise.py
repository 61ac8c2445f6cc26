"""The batch-shell supervisor: ``exec sciml slurm supervise --run-dir D -- srun … sciml train …``.

Because the batch script ``exec``s it, the supervisor *is* the batch shell, so ``--signal=B:USR1@T`` (and
``scancel --signal=USR1 --batch``) reach it. Its handlers only record the signal and forward it to the child
(``srun``, which forwards it to every rank); the trainers checkpoint at their next step boundary and exit with
status 75 (:data:`sciml.train.EXIT_PREEMPTED`). The supervisor then requeues the job (``scontrol requeue``,
``<array job>_<task>`` inside an array) unless it was itself told to stop by SIGTERM (cancellation, time limit).
The requeued job starts the same script; the trainer resumes from the newest checkpoint of the run directory.

Every decision is appended to ``RUN_DIR/slurm/events.jsonl`` (job ids, restart count, signals, exit status, the
requeue command and its answer).
"""
from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .slurm import job_ids, requeue

__all__ = ["EVENTS_FILE", "supervise", "record_event", "read_events", "should_requeue"]

EVENTS_FILE = "slurm/events.jsonl"
EXIT_PREEMPTED = 75  # == sciml.train.EXIT_PREEMPTED (not imported: the supervisor must not import torch)


def record_event(run_dir: str | os.PathLike, event: str, **fields: Any) -> dict[str, Any]:
    """Append one JSON line to ``run_dir/slurm/events.jsonl`` (small appends; no rewrite)."""
    rec = {"event": event, "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           **job_ids(), **fields}
    path = Path(run_dir) / EVENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    return rec


def read_events(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / EVENTS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return out


def should_requeue(returncode: int, signals: Sequence[str], *, enabled: bool = True) -> bool:
    """Requeue when the trainer checkpointed and stopped (status 75) and the supervisor was not itself terminated
    (SIGTERM means cancellation or the time limit: Slurm decides, not us)."""
    return enabled and returncode == EXIT_PREEMPTED and "SIGTERM" not in signals


def supervise(run_dir: str | os.PathLike, command: Sequence[str], *, requeue_enabled: bool = True,
              env: Mapping[str, str] | None = None, runner=subprocess.run, max_restarts: int | None = None) -> int:
    """Run ``command``, forward SIGUSR1/SIGTERM to it, requeue after a checkpointed stop. Returns the exit status
    for the batch script (0 after a successful requeue: the job is pending again).

    A signal that arrives while the child is being started (between the fork and the moment its handle is known)
    is recorded and sent to the child right after ``Popen`` returns, never dropped. With ``max_restarts``, no
    requeue happens once ``SLURM_RESTART_COUNT >= max_restarts`` (event ``requeue_refused``; exit 75)."""
    run_dir = Path(run_dir)
    if not command:
        raise ValueError("supervise: no command given")
    record_event(run_dir, "start", command=list(command))
    received: list[str] = []
    unsent: list[int] = []  # signals that came before the child's handle was known
    child: subprocess.Popen | None = None

    def send(signum: int) -> None:
        if child is not None and child.poll() is None:
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:
                pass

    def forward(signum: int, frame: Any) -> None:  # flag + forward only: no I/O, no Slurm calls here
        received.append(signal.Signals(signum).name)
        if child is None:
            unsent.append(signum)
        else:
            send(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGUSR1, signal.SIGTERM)}
    try:
        child = subprocess.Popen(list(command))
        while unsent:  # arrived during the fork/exec (handler saw child=None): deliver now
            send(unsent.pop(0))
        while True:
            try:
                rc = child.wait()
                break
            except InterruptedError:  # pragma: no cover (PEP 475 retries, kept for safety)
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    rc = rc if rc >= 0 else 128 - rc  # killed by a signal: shell convention
    record_event(run_dir, "exit", returncode=rc, signals=received)
    if should_requeue(rc, received, enabled=requeue_enabled):
        restarts = int(job_ids(env).get("restart_count", 0) or 0)
        if max_restarts is not None and restarts >= max_restarts:
            record_event(run_dir, "requeue_refused", restart_count=restarts, max_restarts=max_restarts)
            print(f"sciml slurm supervise: trainer checkpointed and stopped (status 75); not requeued: restart "
                  f"{restarts} reached slurm.max_restarts={max_restarts}", file=sys.stderr, flush=True)
            return EXIT_PREEMPTED
        # `scontrol requeue` makes Slurm SIGTERM the batch shell (us): finish recording first.
        term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            ok, msg = requeue(env, runner=runner)
        finally:
            signal.signal(signal.SIGTERM, term)
        record_event(run_dir, "requeue", ok=ok, message=msg)
        print(f"sciml slurm supervise: trainer checkpointed and stopped (status 75); {msg}", file=sys.stderr,
              flush=True)
        return 0 if ok else EXIT_PREEMPTED
    return rc
