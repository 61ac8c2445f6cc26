"""Data-parallel process groups under ``torchrun`` or ``srun``.

The project writes no distributed runtime of its own: ranks come from the environment that ``torchrun``
(``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) or an ``srun`` step (``SLURM_PROCID``/``SLURM_STEP_NUM_TASKS``/``SLURM_LOCALID``)
sets, and the
process group is the standard ``torch.distributed`` one (gloo on CPU, NCCL on CUDA).
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any, MutableMapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from sciml.errors import ConfigError

__all__ = ["DistInfo", "init_distributed", "unwrap", "all_reduce_sum", "broadcast_flag", "barrier",
           "sync_gradients"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the data-parallel group."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_NOT_A_STEP = {"batch", "extern", "interactive", "4294967291", "4294967292", "4294967293", "4294967294",
               "4294967295"}  # the batch script / extern / interactive steps and their numeric ids


def _first_host(nodelist: str) -> str:
    """First host name of a Slurm node list (``node[01-04]`` → ``node01``), from ``scontrol show hostnames``."""
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=30,
                         check=True).stdout.split()
    if not out:
        raise RuntimeError(f"scontrol show hostnames {nodelist!r} printed nothing")
    return out[0]


def _env_from_slurm(env: MutableMapping[str, str] | None = None) -> None:
    """Map an ``srun`` step's task ids onto the ``env://`` variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``) when ``srun`` (not ``torchrun``) started several tasks.

    Only the *step* variables count (``SLURM_STEP_ID`` set and ``SLURM_STEP_NUM_TASKS > 1``): ``SLURM_NTASKS`` and
    ``SLURM_PROCID`` are also set in the batch script itself, where a single process runs, and must not make it wait
    for ranks that never start. On several nodes ``MASTER_ADDR`` is the first host of ``SLURM_STEP_NODELIST`` (or
    ``SLURM_JOB_NODELIST``) from ``scontrol show hostnames``, unless already set.
    """
    env = os.environ if env is None else env
    if "RANK" in env or "SLURM_PROCID" not in env:
        return
    step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID"))
    if step is None or step in _NOT_A_STEP:
        return
    ntasks = int(env.get("SLURM_STEP_NUM_TASKS", "1"))
    if ntasks <= 1:
        return
    nnodes = int(env.get("SLURM_STEP_NUM_NODES", env.get("SLURM_NNODES", "1")))
    if "MASTER_ADDR" not in env:
        if nnodes > 1:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
            try:
                if not nodelist:
                    raise RuntimeError("neither SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST is set")
                env["MASTER_ADDR"] = _first_host(nodelist)
            except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                raise ConfigError(
                    f"srun started {ntasks} tasks on {nnodes} nodes but MASTER_ADDR is not set and the first node "
                    f"could not be found ({type(exc).__name__}: {exc}); export MASTER_ADDR (e.g. "
                    "MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1)) before srun") from exc
        else:
            env["MASTER_ADDR"] = "127.0.0.1"
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = str(ntasks)
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env.setdefault("MASTER_PORT", str(15000 + int(env.get("SLURM_JOB_ID", "0")) % 10000))


def init_distributed(mode: str = "auto", *, device_type: str = "cpu") -> DistInfo:
    """Join (or create) the default process group when the environment asks for more than one process.

    Args:
        mode (str): ``"auto"`` (join if ``WORLD_SIZE > 1`` or an ``srun`` step with several tasks started us) or
            ``"off"`` (always a single process). Anything else is a :class:`~sciml.errors.ConfigError`.
            (default: ``"auto"``)
        device_type (str): ``"cuda"`` selects NCCL, anything else gloo. (default: ``"cpu"``)
    """
    if mode not in ("auto", "off"):
        raise ConfigError(f"distributed must be 'auto' or 'off', got {mode!r}")
    if mode == "off":
        return DistInfo()
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    _env_from_slurm()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a ``DistributedDataParallel`` wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """In-place sum over ranks (no-op on one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


@torch.no_grad()
def sync_gradients(params: Sequence[torch.Tensor], info: DistInfo) -> None:
    """Average the gradients of ``params`` over ranks with one ``all_reduce`` per dtype (a flattened buffer), whatever
    gradients are missing: every rank issues the same collectives. A missing gradient counts as zeros; a parameter
    without a gradient on every rank keeps ``grad=None`` (so optimizers skip it, as on one process)."""
    if not info.enabled or not params:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        by_dtype.setdefault(p.dtype, []).append(p)
    w = float(info.world_size)
    for dtype in sorted(by_dtype, key=str):  # the same order on every rank
        group = by_dtype[dtype]
        # one buffer: the gradients (zeros where missing), then one "has a gradient" count per parameter
        parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=dtype, device=p.device)
                 for p in group]
        missing = any(p.grad is None for p in group)
        if missing:  # the counts are read back below anyway (a host sync): build them on the host
            parts.append(torch.tensor([0.0 if p.grad is None else 1.0 for p in group], dtype=dtype,
                                      device=group[0].device))
        else:  # the common case: a fill kernel, no host-device copy, nothing read back
            parts.append(torch.ones(len(group), dtype=dtype, device=group[0].device))
        buf = torch.cat(parts)
        all_reduce_sum(buf, info)
        counts = buf[-len(group):].tolist() if missing else [1.0] * len(group)
        offset = 0
        for p, c in zip(group, counts):
            n = p.numel()
            if c > 0:
                g = buf[offset:offset + n].view_as(p).div_(w)
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.copy_(g)
            offset += n


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj`` (in-memory pickling only; nothing pickled reaches a file)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
