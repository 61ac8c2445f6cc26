"""Sparse-dense matrix product (SpMM) on a :class:`~sciml.sparse.CSRAdjacency`, with a backward that uses the
cached transpose."""
from __future__ import annotations

import math

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._utils import check_float, check_same_device
from sciml.sparse.deterministic import is_deterministic

if TYPE_CHECKING:
    from sciml.sparse.csr import CSRAdjacency

_REDUCES = ("sum", "mean")
_CHUNK_ELEMS = 1 << 22  # edges x features per block when materialising per-edge products


def csr_product(adj: "CSRAdjacency", values: Tensor | None, x: Tensor) -> Tensor:
    """``A @ x`` for 2-D ``x`` without autograd; ``values=None`` means all ones. Picks the kernel:
    ``torch.sparse.mm`` on a CSR tensor, or (deterministic mode on CUDA) gather + sorted segment sum."""
    if adj.num_edges == 0 or x.size(1) == 0:
        return x.new_zeros(adj.num_rows, x.size(1))
    if x.is_cuda and is_deterministic():
        # cuSPARSE does not document bitwise reproducibility for every algorithm; a segment sum over the sorted
        # rows has no atomics.
        msg = x.index_select(0, adj.col)
        if values is not None:
            msg = msg * values.to(x.dtype).unsqueeze(-1)
        return torch.segment_reduce(msg, "sum", offsets=adj.rowptr, axis=0)
    return torch.sparse.mm(adj._csr_tensor(values, x.dtype), x)


def edge_dot(row: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``(a[row] * b[col]).sum(-1)`` for 2-D ``a``, ``b``, in blocks of edges to bound the temporary memory."""
    num_edges = row.numel()
    feat = max(a.size(-1), 1)
    step = max(_CHUNK_ELEMS // feat, 1)
    if num_edges <= step:
        return (a.index_select(0, row) * b.index_select(0, col)).sum(-1)
    out = a.new_empty(num_edges)
    for start in range(0, num_edges, step):
        r, c = row[start:start + step], col[start:start + step]
        torch.sum(a.index_select(0, r) * b.index_select(0, c), dim=-1, out=out[start:start + step])
    return out


class _SpMM(torch.autograd.Function):
    """``A @ x`` with gradients for ``x`` (via the cached transpose ``A^T @ grad``) and for the edge values
    (``grad_e = <grad[row_e], x[col_e]>``)."""

    @staticmethod
    def forward(ctx, values: Tensor | None, x: Tensor, adj: "CSRAdjacency") -> Tensor:
        ctx.adj = adj
        ctx.save_for_backward(values, x)
        return csr_product(adj, values, x)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        values, x = ctx.saved_tensors
        adj: CSRAdjacency = ctx.adj
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            adj_t = adj._transpose_structure()
            values_t = None if values is None else values.index_select(0, adj_t._perm_from_parent)
            grad_x = csr_product(adj_t, values_t, grad_out.contiguous())
        if ctx.needs_input_grad[0]:
            grad_values = edge_dot(adj.row, adj.col, grad_out, x).to(values.dtype)
        return grad_values, grad_x, None


def spmm(adj: "CSRAdjacency", x: Tensor, reduce: str = "sum") -> Tensor:
    r"""Sparse-dense matrix product of an adjacency with node features.

    .. math::
        \mathbf{out}_i = \bigoplus_{j \in \mathcal{N}(i)} w_{ij}\, \mathbf{x}_j,
        \qquad \oplus \in \{\textstyle\sum, \mathrm{mean}\}

    where :math:`\mathcal{N}(i)` are the sources of the edges into target :math:`i` (the CSR row :math:`i`),
    counted with multiplicity. ``mean`` divides the weighted sum by the number of incoming edges (rows without
    edges give 0). Differentiable in ``x`` and in the adjacency's edge values; the backward for ``x`` multiplies
    by the cached transpose instead of transposing on every call.

    Args:
        adj (CSRAdjacency): Adjacency of shape ``[num_rows, num_cols]``.
        x (torch.Tensor): Features of the source nodes, ``[num_cols]`` or ``[num_cols, *]``, floating point, on
            ``adj.device``. Edge values are cast to ``x.dtype``.
        reduce (str, optional): ``"sum"`` or ``"mean"``. (default: :obj:`"sum"`)

    Shapes:
        ``x: [num_cols, *]`` → ``out: [num_rows, *]``
    """
    if reduce not in _REDUCES:
        raise ShapeError(f"`reduce` must be one of {_REDUCES} for spmm, got {reduce!r} "
                         "(use segment_reduce/scatter for max/min)")
    check_float(x, "x")
    check_same_device(x, "x", adj.device, "the adjacency")
    if x.dim() == 0 or x.size(0) != adj.num_cols:
        raise ShapeError(f"`x` must have shape [num_cols={adj.num_cols}, *], got {tuple(x.shape)}")
    flat = x.dim() != 2  # reshapes cost a few microseconds: skip them for the common [N, F] case
    trailing = tuple(x.shape[1:])
    x2 = x.reshape(x.size(0), math.prod(trailing)) if flat else x
    values = adj.value if reduce == "sum" else adj._mean_values(x.dtype)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (values is not None and values.requires_grad))
    if needs_grad:
        out = _SpMM.apply(values, x2, adj)
    else:
        out = csr_product(adj, None if values is None else values.detach(), x2)
    return out.reshape((adj.num_rows,) + trailing) if flat else out
