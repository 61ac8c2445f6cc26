"""Sampled dense-dense products: one score per edge of a CSR adjacency."""
from __future__ import annotations

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._utils import check_float, check_same_device
from sciml.sparse.csr import CSRAdjacency
from sciml.sparse.spmm import csr_product, edge_dot


def _heads(t: Tensor) -> Tensor:
    """``[N, F]`` → ``[N, 1, F]``; ``[N, H, F]`` unchanged."""
    return t.unsqueeze(1) if t.dim() == 2 else t


class _SDDMM(torch.autograd.Function):
    """Edge scores with a backward made of CSR products: ``grad_a = G @ b``, ``grad_b = G^T @ a`` where ``G``
    carries the edge gradients as values (no atomics, uses the cached transpose)."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, adj: CSRAdjacency) -> Tensor:
        ctx.adj = adj
        ctx.save_for_backward(a, b)
        return _sddmm_forward(adj, a, b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b = ctx.saved_tensors
        adj: CSRAdjacency = ctx.adj
        a3, b3 = _heads(a), _heads(b)
        g = grad.unsqueeze(-1) if a.dim() == 2 else grad
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.stack([csr_product(adj, g[:, h].contiguous(), b3[:, h]) for h in range(g.size(1))],
                                 dim=1)
            grad_a = grad_a.reshape(a.shape)
        if ctx.needs_input_grad[1]:
            adj_t = adj._transpose_structure()
            g_t = g.index_select(0, adj_t._perm_from_parent)
            grad_b = torch.stack([csr_product(adj_t, g_t[:, h].contiguous(), a3[:, h]) for h in range(g.size(1))],
                                 dim=1)
            grad_b = grad_b.reshape(b.shape)
        return grad_a, grad_b, None


def sddmm(adj: CSRAdjacency, a: Tensor, b: Tensor) -> Tensor:
    r"""Per-edge scores :math:`s_e = \langle \mathbf{a}_{i}, \mathbf{b}_{j} \rangle` for every edge
    :math:`e = (j \to i)`, in CSR edge order (use ``adj.perm`` to relate to the input order).

    This is the sampled dense-dense product :math:`(\mathbf{A}\mathbf{B}^\top) \odot \mathrm{pattern}(\mathrm{adj})`
    used for dot-product attention. With ``a`` of shape ``[N, H, F]`` a score is computed per head. The forward works
    in blocks of edges (bounded memory); the backward is two CSR products (``grad_a = G b``, ``grad_b = G^T a``).
    Edge values of ``adj`` are ignored.

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
    a3, b3 = _heads(a), _heads(b)
    if adj.num_edges == 0:
        return a.new_zeros((0,) if a.dim() == 2 else (0, a.size(1)))
    out = torch.stack([edge_dot(adj.row, adj.col, a3[:, h], b3[:, h]) for h in range(a3.size(1))], dim=-1)
    return out.squeeze(-1) if a.dim() == 2 else out
