"""Data-parallel process groups under ``torchrun`` or ``srun``.

The project writes no distributed runtime of its own: ranks come from the environment that ``torchrun``
(``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) or Slurm (``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``) sets, and the
process group is the standard ``torch.distributed`` one (gloo on CPU, NCCL on CUDA).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "unwrap", "all_reduce_sum", "broadcast_flag", "barrier"]


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


def _env_from_slurm() -> None:
    """Map Slurm's task ids onto the ``env://`` variables when ``srun`` (not ``torchrun``) started us."""
    if "RANK" in os.environ or "SLURM_PROCID" not in os.environ:
        return
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")  # single node; multi-node jobs export the head node
    os.environ.setdefault("MASTER_PORT", str(15000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 10000))


def init_distributed(mode: str = "auto", *, device_type: str = "cpu") -> DistInfo:
    """Join (or create) the default process group when the environment asks for more than one process.

    Args:
        mode (str): ``"auto"`` (join if ``WORLD_SIZE > 1`` or an ``srun`` with several tasks started us) or
            ``"off"`` (always a single process). (default: ``"auto"``)
        device_type (str): ``"cuda"`` selects NCCL, anything else gloo. (default: ``"cpu"``)
    """
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
