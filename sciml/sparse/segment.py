"""Reductions over sorted segments given by a CSR pointer."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._utils import check_float, check_ptr, csr_tensor
from sciml.sparse.index import ptr_to_index

_REDUCES = ("sum", "mean", "max", "min")


class _SegmentSum(torch.autograd.Function):
    """Segment sum/mean as a product with the ``[S, E]`` selection matrix (MKL CSR SpMM on CPU, much faster than
    ``torch.segment_reduce`` there); backward is a gather."""

    @staticmethod
    def forward(ctx, src: Tensor, ptr: Tensor, seg: Tensor, scale: Tensor | None) -> Tensor:
        ctx.save_for_backward(seg, scale)
        num_items = src.size(0)
        weights = scale if scale is not None else src.new_ones(num_items)
        sel = csr_tensor(ptr, torch.arange(num_items, device=src.device), weights.to(src.dtype),
                         (ptr.numel() - 1, num_items))
        return torch.sparse.mm(sel, src)

    @staticmethod
    def backward(ctx, grad: Tensor):
        seg, scale = ctx.saved_tensors
        grad_src = grad.index_select(0, seg)
        if scale is not None:
            grad_src = grad_src * scale.to(grad.dtype).unsqueeze(-1)
        return grad_src, None, None, None


def scatter_extremum(src: Tensor, index: Tensor, num_out: int, reduce: str, nonempty: Tensor) -> Tensor:
    """``max``/``min`` of the rows of ``src`` ``[E, *]`` by ``index`` ``[E]`` into ``[num_out, *]``; rows where
    ``nonempty`` is False are 0. Ties share the gradient evenly.

    The output starts as NaN, not 0: the backward of ``scatter_reduce(include_self=False)`` counts an initial value
    equal to the result as one more tie (so an extremum of exactly 0 got only half of its gradient), and NaN never
    compares equal. Rows that receive nothing keep the NaN until the final ``where``."""
    trailing = (1,) * (src.dim() - 1)
    expanded = index.view((-1,) + trailing).expand_as(src)
    out = src.new_full((num_out,) + tuple(src.shape[1:]), float("nan")).scatter_reduce(
        0, expanded, src, "amax" if reduce == "max" else "amin", include_self=False)
    return torch.where(nonempty.view((-1,) + trailing), out, out.new_zeros(()))


def segment_reduce(src: Tensor, ptr: Tensor, reduce: str = "sum", *, validate: bool = True) -> Tensor:
    r"""Reduce contiguous (sorted) segments of ``src`` along dimension 0.

    .. math::
        \mathbf{out}_s = \bigoplus_{k = \mathrm{ptr}_s}^{\mathrm{ptr}_{s+1} - 1} \mathbf{src}_k,
        \qquad \oplus \in \{\textstyle\sum, \mathrm{mean}, \max, \min\}

    Empty segments give 0 for every reduction. Differentiable; for ``max``/``min`` the gradient goes to the
    arg-extremum (split evenly between exact ties). No atomics are involved on any device, so the result and its
    gradient are deterministic.

    Args:
        src (torch.Tensor): ``[num_items, *]`` floating-point values, sorted by segment.
        ptr (torch.Tensor): CSR pointer ``[num_segments + 1]`` (int32 or int64): segment ``s`` is
            ``src[ptr[s]:ptr[s+1]]``.
        reduce (str, optional): ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``. (default: :obj:`"sum"`)
        validate (bool, optional): Check that ``ptr`` is a valid pointer over ``src`` (one O(S) pass and a
            host sync). (default: :obj:`True`)

    Shapes:
        ``src: [num_items, *]``, ``ptr: [S + 1]`` → ``out: [S, *]``
    """
    if reduce not in _REDUCES:
        raise ShapeError(f"`reduce` must be one of {_REDUCES}, got {reduce!r}")
    check_float(src, "src")
    if src.dim() == 0:
        raise ShapeError("`src` must have at least one dimension [num_items, *]")
    if validate:
        ptr = check_ptr(ptr, "ptr", src.size(0), src.device)
    else:
        ptr = ptr.long()
    num_segments = ptr.numel() - 1
    trailing = tuple(src.shape[1:])
    src2 = src.reshape(src.size(0), math.prod(trailing))
    if src2.size(0) == 0 or src2.size(1) == 0:
        out = src2.new_zeros(num_segments, src2.size(1))
        if src2.requires_grad:
            out = out + 0 * src2.sum()  # keep the graph connected for callers that backprop through
    elif src.is_cuda:
        out = torch.segment_reduce(src2, reduce, offsets=ptr, axis=0)
        if reduce != "sum":
            counts = ptr[1:] - ptr[:-1]
            out = torch.where((counts > 0).unsqueeze(-1), out, out.new_zeros(()))
    else:
        seg = ptr_to_index(ptr, src2.size(0))
        if reduce in ("sum", "mean"):
            scale = None
            if reduce == "mean":
                counts = (ptr[1:] - ptr[:-1]).clamp(min=1)
                scale = counts.to(torch.float64).reciprocal().index_select(0, seg)
            out = _SegmentSum.apply(src2, ptr, seg, scale)
        else:
            out = scatter_extremum(src2, seg, num_segments, reduce, ptr[1:] > ptr[:-1])
    return out.reshape((num_segments,) + trailing)
