"""The typed Slurm job spec (``JobSpec``) and loading it from a cluster config file.

A cluster config is a YAML file with a ``slurm`` section (see ``configs/slurm_local.yaml``); each key is a
:class:`JobSpec` field, checked against its type like every other config section (unknown keys and wrong types are
one-line :class:`~sciml.errors.ConfigError` messages naming ``slurm.<key>``). ``key=value`` overrides
(``--job time=00:30:00``) are applied on top, as for experiment configs.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sciml.errors import ConfigError

__all__ = ["JobSpec", "load_job_spec", "parse_time", "MAX_SIGNAL_SECONDS"]

#: Slurm's --signal delay is a 16-bit field.
MAX_SIGNAL_SECONDS = 65535
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")            # partition / account / qos
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNLIMITED = ("UNLIMITED", "INFINITE")


def parse_time(text: str) -> int | None:
    """Seconds of a Slurm ``--time`` value; ``None`` for ``UNLIMITED``/``INFINITE``.

    Accepted forms (as ``sbatch``): ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``.

    Raises:
        ConfigError: any other text (the message names ``slurm.time``).
    """
    t = str(text).strip()
    if t.upper() in _UNLIMITED:
        return None
    bad = ConfigError(f"slurm.time: {text!r} is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS "
                      "or UNLIMITED)")
    m = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", t)
    if not m:
        raise bad
    days, parts = m.group(1), [int(x) for x in m.group(2).split(":")]
    if days is not None:
        hh, mm, ss = (parts + [0, 0])[:3]  # D-HH, D-HH:MM, D-HH:MM:SS
        return ((int(days) * 24 + hh) * 60 + mm) * 60 + ss
    if len(parts) == 1:
        return parts[0] * 60                      # MM
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]           # MM:SS
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]  # HH:MM:SS

_MEM = re.compile(r"^\d+[KMGT]?$")


@dataclasses.dataclass
class JobSpec:
    """Resources and options of one Slurm job (or of each task of a job array).

    Args:
        job_name (str): ``--job-name``. (default: ``"sciml"``)
        partition (str, optional): ``--partition``; the cluster's default partition if unset.
        time (str): ``--time`` limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS`` or
            ``UNLIMITED``; must exceed ``signal_seconds + 60``. (default: ``"01:00:00"``)
        nodes (int): ``--nodes``. (default: 1)
        ntasks_per_node (int): ``--ntasks-per-node``: processes (ranks) per node, one per GPU on GPU nodes.
            (default: 1)
        gpus_per_node (int): ``--gpus-per-node``; 0 requests none. (default: 0)
        cpus_per_task (int): ``--cpus-per-task``, also ``OMP_NUM_THREADS`` of each rank. (default: 1)
        mem (str, optional): ``--mem`` per node (``500M``, ``4G``); unset: the cluster's default. (default: ``"4G"``)
        account (str, optional): ``--account``.
        qos (str, optional): ``--qos``.
        array_parallelism (int, optional): at most this many array tasks at once (``--array=0-9%k``).
        dependency (str, optional): ``--dependency`` (``afterok:123``).
        signal_seconds (int): ``--signal=B:USR1@T``: the batch shell gets SIGUSR1 this many seconds before the time
            limit, forwards it to the trainer, which checkpoints and the job requeues itself. Slurm may send it up
            to a minute early. (1..65535; default: 300)
        requeue (bool): ``--requeue`` and self-requeue after a preemption signal. (default: :obj:`True`)
        max_restarts (int): the supervisor requeues no more once ``SLURM_RESTART_COUNT >= max_restarts`` (it
            records a ``requeue_refused`` event and exits 75). (default: 20)
        extra_sbatch (list[str]): more ``#SBATCH`` options verbatim (``--constraint=a100``). (default: [])
        setup (list[str]): shell lines run before the launch (``module load cuda``). (default: [])
        env (dict[str, str]): environment variables exported in the batch script. (default: {})
    """

    job_name: str = "sciml"
    partition: str | None = None
    time: str = "01:00:00"
    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem: str | None = "4G"
    account: str | None = None
    qos: str | None = None
    array_parallelism: int | None = None
    dependency: str | None = None
    signal_seconds: int = 300
    requeue: bool = True
    max_restarts: int = 20
    extra_sbatch: list[str] | None = None
    setup: list[str] | None = None
    env: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.extra_sbatch = list(self.extra_sbatch or [])
        self.setup = list(self.setup or [])
        self.env = {str(k): str(v) for k, v in (self.env or {}).items()}
        limit = parse_time(self.time)
        if limit == 0:
            raise ConfigError("slurm.time: must be > 0")
        if self.mem is not None and not _MEM.match(str(self.mem)):
            raise ConfigError(f"slurm.mem: {self.mem!r} is not a Slurm memory size (e.g. 500M, 4G)")
        for key in ("nodes", "ntasks_per_node", "cpus_per_task"):
            if getattr(self, key) < 1:
                raise ConfigError(f"slurm.{key}: must be >= 1, got {getattr(self, key)}")
        if self.gpus_per_node < 0:
            raise ConfigError(f"slurm.gpus_per_node: must be >= 0, got {self.gpus_per_node}")
        if not 0 < self.signal_seconds <= MAX_SIGNAL_SECONDS:
            raise ConfigError(f"slurm.signal_seconds: must be in 1..{MAX_SIGNAL_SECONDS}, got {self.signal_seconds}")
        if limit is not None and self.signal_seconds + 60 >= limit:
            raise ConfigError(f"slurm.signal_seconds: {self.signal_seconds} s + 60 s (Slurm may signal up to a minute "
                              f"early) must be below slurm.time ({self.time} = {limit} s)")
        if self.max_restarts < 0:
            raise ConfigError(f"slurm.max_restarts: must be >= 0, got {self.max_restarts}")
        for key in ("partition", "account", "qos"):
            value = getattr(self, key)
            if value is not None and not _NAME.match(str(value)):
                raise ConfigError(f"slurm.{key}: {value!r} may hold only letters, digits, '_', '.', '-'")
        for key in self.env:
            if not _ENV_KEY.match(key):
                raise ConfigError(f"slurm.env.{key}: not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if self.array_parallelism is not None and self.array_parallelism < 1:
            raise ConfigError(f"slurm.array_parallelism: must be >= 1, got {self.array_parallelism}")
        for line in self.extra_sbatch:
            if not str(line).startswith("-"):
                raise ConfigError(f"slurm.extra_sbatch: {line!r} must be an sbatch option such as --constraint=a100")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.job_name):
            raise ConfigError(f"slurm.job_name: {self.job_name!r} may hold only letters, digits, '_', '.', '-'")

    @property
    def world_size(self) -> int:
        """Processes (ranks) of the training step: ``nodes × ntasks_per_node``."""
        return self.nodes * self.ntasks_per_node


def load_job_spec(source: str | os.PathLike | Mapping[str, Any] | None = None,
                  overrides: Sequence[str] = ()) -> JobSpec:
    """Read a :class:`JobSpec` from a cluster config file (its ``slurm`` section) or a mapping, plus overrides.

    Raises:
        ConfigError: unreadable file, a top-level key other than ``slurm``, an unknown key, a wrong type or a bad
            value; the message names the key (``slurm.mem``).
    """
    from sciml.config.loader import read_config_file
    from sciml.config.overrides import apply_overrides
    from sciml.config.schema import parse_section

    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        raw = read_config_file(source)
    unknown = sorted(set(raw) - {"slurm"})
    if unknown:
        raise ConfigError(f"cluster config: unknown top-level key(s) {', '.join(map(repr, unknown))}; the job spec "
                          "goes under 'slurm:'")
    section = apply_overrides({"slurm": raw.get("slurm") or {}}, [f"slurm.{o}" for o in overrides])["slurm"]
    return parse_section(JobSpec, section, path="slurm").build()
