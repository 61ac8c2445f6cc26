"""Sampled dense-dense products: one score per edge of a CSR adjacency."""
from __future__ import annotations

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._spmm import edge_dot
from sciml.sparse._utils import check_float, check_same_device
from sciml.sparse.csr import CSRAdjacency
from sciml.sparse.segment import segment_reduce


def _weighted_segment_sum(ptr: Tensor, gather_index: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """``out[s] = sum_{k in segment s} weight[k] * x[gather_index[k]]`` for ``x: [N, *, F]``, ``weight: [E, *]``:
    one gather over all heads and one sorted segment sum (no atomics on any device)."""
    msg = x.index_select(0, gather_index) * weight.unsqueeze(-1)
    return segment_reduce(msg, ptr, "sum", validate=False)


class _SDDMM(torch.autograd.Function):
    """Edge scores; the backward is ``grad_a = G b`` (segments = CSR rows) and ``grad_b = G^T a`` (segments = rows of
    the cached transpose), where ``G`` carries the edge gradients as values, all heads at once."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, adj: CSRAdjacency) -> Tensor:
        ctx.adj = adj
        ctx.save_for_backward(a, b)
        return _sddmm_forward(adj, a, b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        adj: CSRAdjacency = ctx.adj
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = _weighted_segment_sum(adj.rowptr, adj.col, b, grad)
        if ctx.needs_input_grad[1]:
            adj_t = adj._transpose_structure()
            grad_b = _weighted_segment_sum(adj_t.rowptr, adj_t.col, a,
                                           grad.index_select(0, adj_t._perm_from_parent))
        return grad_a, grad_b, None


def sddmm(adj: CSRAdjacency, a: Tensor, b: Tensor) -> Tensor:
    r"""Per-edge scores :math:`s_e = \langle \mathbf{a}_{i}, \mathbf{b}_{j} \rangle` for every edge
    :math:`e = (j \to i)`, in CSR edge order (use ``adj.perm`` to relate to the input order).

    This is the sampled dense-dense product :math:`(\mathbf{A}\mathbf{B}^\top) \odot \mathrm{pattern}(\mathrm{adj})`
    used for dot-product attention. With ``a`` of shape ``[N, H, F]`` a score is computed per head. The forward
    gathers ``a[row]`` and ``b[col]`` once for all heads, in blocks of edges (bounded memory); the backward is one
    gather and one sorted segment sum per input (``grad_a = G b`` over the CSR rows, ``grad_b = G^T a`` over the
    cached transpose), without atomics on any device. Edge values of ``adj`` are ignored.

    Args:
        adj (CSRAdjacency): Adjacency ``[num_rows, num_cols]``.
        a (torch.Tensor): Target-side features ``[num_rows, F]`` or ``[num_rows, H, F]``.
        b (torch.Tensor): Source-side features ``[num_cols, F]`` or ``[num_cols, H, F]``.

    Shapes:
        ``a: [num_rows, (H,) F]``, ``b: [num_cols, (H,) F]`` → ``out: [num_edges(, H)]``
    """
    check_float(a, "a")
    check_float(b, "b")
    check_same_device(a, "a", adj.device, "the adjacency")
    check_same_device(b, "b", adj.device, "the adjacency")
    if a.dim() not in (2, 3) or a.size(0) != adj.num_rows:
        raise ShapeError(f"`a` must have shape [num_rows={adj.num_rows}, (H,) F], got {tuple(a.shape)}")
    if b.dim() != a.dim() or b.size(0) != adj.num_cols or b.shape[1:] != a.shape[1:]:
        raise ShapeError(f"`b` must have shape [num_cols={adj.num_cols}, {', '.join(map(str, a.shape[1:]))}], "
                         f"got {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise ShapeError(f"`a` and `b` must have the same dtype, got {a.dtype} and {b.dtype}")
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return _SDDMM.apply(a, b, adj)
    with torch.no_grad():
        return _sddmm_forward(adj, a, b)


def _sddmm_forward(adj: CSRAdjacency, a: Tensor, b: Tensor) -> Tensor:
    """``[E]`` or ``[E, H]`` scores: one ``[E, (H,) F]`` gather of each side and one reduction (per edge block)."""
    if adj.num_edges == 0:
        return a.new_zeros((0,) + tuple(a.shape[1:-1]))
    return edge_dot(adj.row, adj.col, a, b)
