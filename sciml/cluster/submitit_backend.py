"""Optional submitit backend (``pip install sciml[submitit]``; ``sciml slurm submit --backend submitit``).

submitit submits the same ``sciml train CONFIG overrides --run-dir RUN_DIR`` command (one per task; ranks come from
the ``srun`` step as usual) and keeps its pickles and logs in ``RUN_DIR/submitit``. Preemption there is submitit's
own business (its USR1 handler requeues a ``Checkpointable``); the default ``sbatch`` backend is the one whose
signal forwarding and requeue are tested end to end. ``submitit`` is imported only here.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from sciml.errors import SciMLError

from .slurm import sciml_executable
from .spec import JobSpec, parse_time

__all__ = ["submit_train", "executor_parameters"]


def _minutes(time: str) -> int | None:
    """Whole minutes (rounded up) of a Slurm time, via the one parser :func:`sciml.cluster.spec.parse_time`;
    ``None`` for ``UNLIMITED`` (then passed to sbatch as ``--time=UNLIMITED``)."""
    seconds = parse_time(time)
    return None if seconds is None else -(-seconds // 60)


def executor_parameters(spec: JobSpec) -> dict:
    """``AutoExecutor.update_parameters`` keywords for a :class:`JobSpec`."""
    minutes = _minutes(spec.time)
    params = {"name": spec.job_name, "nodes": spec.nodes,
              "tasks_per_node": spec.ntasks_per_node, "cpus_per_task": spec.cpus_per_task,
              "slurm_signal_delay_s": spec.signal_seconds}
    if spec.gpus_per_node:
        params["gpus_per_node"] = spec.gpus_per_node
    if spec.partition:
        params["slurm_partition"] = spec.partition
    if spec.mem:
        params["slurm_mem"] = spec.mem
    extra: dict = {}
    if minutes is None:
        extra["time"] = "UNLIMITED"
    else:
        params["timeout_min"] = minutes
    for key in ("account", "qos", "dependency"):
        if getattr(spec, key):
            extra[key] = getattr(spec, key)
    for line in spec.extra_sbatch:
        key, _, value = line.lstrip("-").partition("=")
        extra[key.replace("-", "_")] = value or True
    if extra:
        params["slurm_additional_parameters"] = extra
    if spec.setup:
        params["slurm_setup"] = list(spec.setup)
    return params


def submit_train(spec: JobSpec, config: str | os.PathLike, overrides: Sequence[str], run_dir: str | os.PathLike) -> str:
    """Submit ``sciml train`` through submitit; return the job id."""
    try:
        import submitit
    except ImportError:
        raise SciMLError("--backend submitit needs the submitit package: pip install 'sciml[submitit]'") from None
    run_dir = Path(run_dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    ex = submitit.AutoExecutor(folder=run_dir / "submitit")
    ex.update_parameters(**executor_parameters(spec))
    env = {**os.environ, "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": str(spec.cpus_per_task), **spec.env}
    cmd = [sciml_executable(), "train", str(Path(config).absolute()), *overrides, "--run-dir", str(run_dir)]
    job = ex.submit(submitit.helpers.CommandFunction(cmd, cwd=str(run_dir), env=env))
    if not re.fullmatch(r"\d+(_\d+)?", str(job.job_id)):
        raise SciMLError(f"submitit returned an unexpected job id {job.job_id!r}")
    return str(job.job_id)
