"""Private helpers: input validation, CSR tensor wrappers, index conversions and a deterministic permutation."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from sciml.errors import IndexOutOfRangeError, ShapeError

_INDEX_DTYPES = (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8)


def check_index(index: Tensor, name: str, *, dim: int = 1) -> Tensor:
    """Check that ``index`` is an integer tensor with ``dim`` dimensions and return it as int64."""
    if not isinstance(index, Tensor):
        raise ShapeError(f"`{name}` must be a torch.Tensor of integer indices, got {type(index).__name__}")
    if index.dtype not in _INDEX_DTYPES:
        raise ShapeError(f"`{name}` must have an integer dtype (int32 or int64), got {index.dtype}")
    if index.dim() != dim:
        raise ShapeError(f"`{name}` must have {dim} dimension(s), got shape {tuple(index.shape)}")
    return index.long()


def check_range(index: Tensor, name: str, upper: int) -> None:
    """Raise :class:`IndexOutOfRangeError` unless ``0 <= index < upper`` everywhere (one O(E) pass, one sync)."""
    if index.numel() == 0:
        return
    lo, hi = torch.aminmax(index)
    lo, hi = int(lo), int(hi)
    if lo < 0:
        raise IndexOutOfRangeError(f"`{name}` contains a negative index ({lo}); expected values in [0, {upper})")
    if hi >= upper:
        raise IndexOutOfRangeError(f"`{name}` contains index {hi}, out of range: expected values in [0, {upper})")


def check_same_device(t: Tensor, name: str, device: torch.device, other: str) -> None:
    if t.device != device:
        raise ShapeError(f"`{name}` is on {t.device} but {other} is on {device}; move both to the same device")


def check_float(t: Tensor, name: str) -> None:
    if not isinstance(t, Tensor):
        raise ShapeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ShapeError(f"`{name}` must have a floating-point dtype (float32/float64/...), got {t.dtype}")


def check_ptr(ptr: Tensor, name: str, num_items: int, device: torch.device, *,
              items: str = "src.size(0)", other: str = "`src`") -> Tensor:
    """Validate a CSR pointer ``[S+1]`` over ``num_items`` items (``items`` names that count in the messages):
    on ``device`` (that of ``other``), starts at 0, non-decreasing, ends at num_items. Returns it as int64."""
    ptr = check_index(ptr, name)
    check_same_device(ptr, name, device, other)
    if ptr.numel() == 0:
        raise ShapeError(f"`{name}` must have at least one entry (a CSR pointer of length num_segments + 1)")
    first, last = int(ptr[0]), int(ptr[-1])
    if first != 0:
        raise IndexOutOfRangeError(f"`{name}[0]` must be 0, got {first}")
    if last != num_items:
        raise IndexOutOfRangeError(f"`{name}[-1]` must equal {items} = {num_items}, got {last}")
    if ptr.numel() > 1 and bool((ptr[1:] < ptr[:-1]).any()):
        raise IndexOutOfRangeError(f"`{name}` must be non-decreasing (a CSR pointer)")
    return ptr


def csr_tensor(rowptr: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """Wrap CSR arrays as a ``torch.sparse_csr_tensor`` without copies or invariant checks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Sparse CSR tensor support is in beta state"
        return torch.sparse_csr_tensor(rowptr, col, values, shape, check_invariants=False)


class _Permute(torch.autograd.Function):
    """``x[perm]`` for a permutation, with a gather (not an atomic scatter) as backward."""

    @staticmethod
    def forward(ctx, x: Tensor, perm: Tensor, inv_perm: Tensor) -> Tensor:
        ctx.save_for_backward(inv_perm)
        return x.index_select(0, perm)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inv_perm,) = ctx.saved_tensors
        return grad.index_select(0, inv_perm), None, None


def invert_permutation(perm: Tensor) -> Tensor:
    """The inverse permutation: ``inv[perm[k]] = k`` (a scatter of distinct indices, deterministic)."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device, dtype=perm.dtype)
    return inv


def permute(x: Tensor, perm: Tensor, inv_perm: Tensor | None = None) -> Tensor:
    """``x[perm]`` for a permutation ``perm``; the backward is deterministic."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x.index_select(0, perm)
    if inv_perm is None:
        inv_perm = invert_permutation(perm)
    return _Permute.apply(x, perm, inv_perm)
