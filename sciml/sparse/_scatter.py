"""Edge-level gather (node → edge) and scatter (edge → node) with sum/mean/max/min reductions."""
from __future__ import annotations

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._deterministic import is_deterministic
from sciml.sparse._utils import check_index, check_range, check_same_device, permute
from sciml.sparse.index import index_to_ptr
from sciml.sparse.segment import scatter_extremum, segment_reduce

_REDUCES = ("sum", "mean", "max", "min")


class _DeterministicGather(torch.autograd.Function):
    """``x[index]`` whose backward is a sorted segment sum instead of an atomic ``index_add_``."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.num_nodes = x.size(0)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        return _sorted_scatter(grad, index, ctx.num_nodes, "sum"), None


def gather(x: Tensor, index: Tensor, *, validate: bool = True) -> Tensor:
    r"""Gather node rows onto edges: :math:`\mathbf{out}_e = \mathbf{x}_{\mathrm{index}_e}`.

    The backward sums the edge gradients back onto the nodes; in deterministic mode
    (:class:`~sciml.sparse.deterministic`) that sum is a sorted segment reduction instead of atomics.

    Args:
        x (torch.Tensor): ``[num_nodes, *]`` node features.
        index (torch.Tensor): ``[num_edges]`` int32/int64 node ids.
        validate (bool, optional): Check ``0 <= index < num_nodes`` (one O(E) pass and a host sync).
            (default: :obj:`True`)

    Shapes:
        ``x: [N, *]``, ``index: [E]`` → ``out: [E, *]``
    """
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise ShapeError("`x` must be a tensor of shape [num_nodes, *]")
    index = check_index(index, "index")
    check_same_device(index, "index", x.device, "`x`")
    if validate:
        check_range(index, "index", x.size(0))
    if torch.is_grad_enabled() and x.requires_grad and is_deterministic():
        return _DeterministicGather.apply(x, index)
    return x.index_select(0, index)


def _sorted_scatter(src: Tensor, index: Tensor, dim_size: int, reduce: str) -> Tensor:
    """Deterministic scatter: stable sort by index, then reduce contiguous segments (no atomics)."""
    sorted_index, perm = torch.sort(index, stable=True)
    ptr = index_to_ptr(sorted_index, dim_size)
    return segment_reduce(permute(src, perm), ptr, reduce, validate=False)


def scatter(src: Tensor, index: Tensor, dim_size: int | None = None, reduce: str = "sum", *,
            validate: bool = True) -> Tensor:
    r"""Reduce edge rows onto nodes along dimension 0:
    :math:`\mathbf{out}_i = \bigoplus_{e:\, \mathrm{index}_e = i} \mathbf{src}_e`.

    Nodes that receive nothing get 0 for every reduction. ``index`` need not be sorted. In deterministic mode the
    reduction sorts ``index`` and uses :func:`segment_reduce` (no atomics, bitwise reproducible); otherwise sum/mean
    use ``index_add_`` and max/min ``scatter_reduce``. For ``max``/``min`` the gradient goes to the arg-extremum
    (split evenly between exact ties).

    Args:
        src (torch.Tensor): ``[num_edges, *]`` floating-point values.
        index (torch.Tensor): ``[num_edges]`` int32/int64 destination of each row.
        dim_size (int, optional): Number of output rows; ``index.max() + 1`` if :obj:`None` (a host sync).
            (default: :obj:`None`)
        reduce (str, optional): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. (default: :obj:`"sum"`)
        validate (bool, optional): Check ``0 <= index < dim_size`` (one O(E) pass and a host sync).
            (default: :obj:`True`)

    Shapes:
        ``src: [E, *]``, ``index: [E]`` → ``out: [dim_size, *]``
    """
    if reduce not in _REDUCES:
        raise ShapeError(f"`reduce` must be one of {_REDUCES}, got {reduce!r}")
    if not isinstance(src, Tensor) or not src.is_floating_point() or src.dim() == 0:
        raise ShapeError("`src` must be a floating-point tensor of shape [num_edges, *]")
    index = check_index(index, "index")
    check_same_device(index, "index", src.device, "`src`")
    if index.numel() != src.size(0):
        raise ShapeError(f"`index` must have shape [src.size(0)={src.size(0)}], got {tuple(index.shape)}")
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    elif dim_size < 0:
        raise ShapeError(f"`dim_size` must be non-negative, got {dim_size}")
    if validate:
        check_range(index, "index", dim_size)
    if is_deterministic():
        return _sorted_scatter(src, index, dim_size, reduce)
    if reduce in ("sum", "mean"):
        out = src.new_zeros((dim_size,) + tuple(src.shape[1:])).index_add(0, index, src)
        if reduce == "mean":
            count = torch.bincount(index, minlength=dim_size).clamp(min=1).to(src.dtype)
            out = out / count.view((-1,) + (1,) * (src.dim() - 1))
        return out
    nonempty = torch.zeros(dim_size, dtype=torch.bool, device=src.device).index_fill_(0, index, True)
    return scatter_extremum(src, index, dim_size, reduce, nonempty)
