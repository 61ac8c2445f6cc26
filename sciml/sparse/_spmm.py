"""Sparse-dense matrix product (SpMM) on a :class:`~sciml.sparse.CSRAdjacency`, with a backward that uses the
cached transpose."""
from __future__ import annotations

import math

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._utils import check_float, check_same_device, csr_tensor
from sciml.sparse._deterministic import atomic_device, is_deterministic

if TYPE_CHECKING:
    from sciml.sparse.csr import CSRAdjacency

_REDUCES = ("sum", "mean")
_CHUNK_ELEMS = 1 << 22  # edges x features per block when materialising per-edge products
# torch's default CPU CSR kernel has no float16/bfloat16; the ``spmm_reduce`` kernel behind ``torch.sparse.mm(A, x,
# "sum")`` has them. For float32/64 the default kernel stays: which of the two is faster on CPU changed from run to
# run on the 2-core EPYC (0.34x to 1.3x at the same size, depending on what ran before), see docs/sparse.md.
_HALF = (torch.float16, torch.bfloat16)


def edge_dot(row: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``(a[row] * b[col]).sum(-1)`` for ``a``, ``b`` of shape ``[N, *, F]`` (one gather of each over all trailing
    dims, e.g. heads, and one reduction), in blocks of edges to bound the temporary memory. ``[E, *]``."""
    num_edges = row.numel()
    feat = max(math.prod(a.shape[1:]), 1)
    step = max(_CHUNK_ELEMS // feat, 1)
    if num_edges <= step:
        return (a.index_select(0, row) * b.index_select(0, col)).sum(-1)
    out = a.new_empty((num_edges,) + tuple(a.shape[1:-1]))
    for start in range(0, num_edges, step):
        r, c = row[start:start + step], col[start:start + step]
        torch.sum(a.index_select(0, r) * b.index_select(0, c), dim=-1, out=out[start:start + step])
    return out


class _Plan:
    """Everything ``A @ x`` needs for one ``(reduce, dtype)`` of one adjacency, built on first use and kept until the
    edge values change (another tensor, or an in-place edit: the tensor's version counter).

    All tensors here are detached (the autograd graph of learnable values goes through :class:`_SpMM`'s ``values``
    input, never through a cached tensor): ``values`` are the effective edge values in CSR order cast to ``dtype``
    (:obj:`None`: all ones), ``csr`` the CSR tensor handed to ``torch.sparse.mm``; the transposed values and CSR
    tensor used by the backward are built on the first backward and kept as well.
    """

    __slots__ = ("value", "version", "dtype", "values", "csr", "direct", "atomic", "device", "_values_t", "_csr_t",
                 "reduce_kernel")

    def __init__(self, adj: "CSRAdjacency", reduce: str, dtype: torch.dtype) -> None:
        v = adj.value
        self.value, self.version, self.dtype = v, None if v is None else v._version, dtype
        if reduce == "sum":
            values = None if v is None else v.detach().to(dtype)
        elif v is None:
            values = adj._mean_values(dtype)
        else:
            values = (v.detach() * adj._inv_count().to(v.dtype)).to(dtype)
        self.values = values
        self.csr = adj._csr_tensor(None, dtype) if values is None else csr_tensor(adj.rowptr, adj.col, values,
                                                                                  adj.shape)
        self.device = adj.device
        self.reduce_kernel = self.device.type == "cpu" and dtype in _HALF
        # the default kernel on this device is not bitwise reproducible: deterministic mode takes the sorted path
        self.atomic = atomic_device(self.device)
        self.direct = adj.num_edges > 0  # torch.sparse.mm applies; an adjacency without edges gives zeros
        self._values_t: Tensor | None = None
        self._csr_t: Tensor | None = None

    def product(self, csr: Tensor, x: Tensor) -> Tensor:
        """``csr @ x`` (half precision on CPU through the ``spmm_reduce`` kernel, see ``_HALF``)."""
        return torch.sparse.mm(csr, x, "sum") if self.reduce_kernel else torch.sparse.mm(csr, x)

    def current(self, adj: "CSRAdjacency") -> bool:
        v = adj.value
        return self.value is v and (v is None or self.version == v._version)

    def values_t(self, adj: "CSRAdjacency") -> Tensor | None:
        """The values in the order of the cached transpose (:obj:`None`: all ones)."""
        if self._values_t is None and self.values is not None:
            self._values_t = self.values.index_select(0, adj._transpose_structure()._perm_from_parent)
        return self._values_t

    def csr_t(self, adj: "CSRAdjacency") -> Tensor:
        """CSR tensor of ``A^T`` (the cached transpose pattern with these values)."""
        t = self._csr_t
        if t is None:
            adj_t = adj._transpose_structure()
            values_t = self.values_t(adj)
            t = self._csr_t = (adj_t._csr_tensor(None, self.dtype) if values_t is None
                               else csr_tensor(adj_t.rowptr, adj_t.col, values_t, adj_t.shape))
        return t

    def forward(self, adj: "CSRAdjacency", x: Tensor, det: bool) -> Tensor:
        """``A @ x`` (no autograd), 2-D ``x``."""
        if not self.direct or x.size(1) == 0:
            return x.new_zeros(adj.num_rows, x.size(1))
        if det:
            return segment_product(adj, self.values, x)
        return self.product(self.csr, x)

    def backward(self, adj: "CSRAdjacency", grad: Tensor, det: bool) -> Tensor:
        """``A^T @ grad`` with the cached transpose."""
        if self.value is not None and self.value._version != self.version:
            # what autograd says when a saved tensor was edited in place (the values are not saved: this plan is)
            raise RuntimeError("one of the variables needed for gradient computation has been modified by an "
                               "inplace operation: the edge values of the adjacency (adj.value) changed between "
                               "the product and its backward")
        if not self.direct or grad.size(1) == 0:
            return grad.new_zeros(adj.num_cols, grad.size(1))
        if det:
            return segment_product(adj._transpose_structure(), self.values_t(adj), grad)
        return self.product(self.csr_t(adj), grad)


def segment_product(adj: "CSRAdjacency", values: Tensor | None, x: Tensor) -> Tensor:
    """``A @ x`` as gather + sorted segment sum over the CSR rows: no atomics, bitwise reproducible on CUDA."""
    msg = x.index_select(0, adj.col)
    if values is not None:
        msg = msg * values.to(x.dtype).unsqueeze(-1)
    return torch.segment_reduce(msg, "sum", offsets=adj.rowptr, axis=0)


class _SpMM(torch.autograd.Function):
    """``A @ x`` with gradients for ``x`` (``A^T @ grad`` with the plan's cached transpose) and for the edge values
    (``grad_e = <grad[row_e], x[col_e]>``). ``values`` is the differentiable edge-value tensor when the values need a
    gradient, else :obj:`None`; the product itself always uses the plan's cached (detached) CSR tensor."""

    @staticmethod
    def forward(ctx, values: Tensor | None, x: Tensor, adj: "CSRAdjacency", plan: _Plan, det: bool) -> Tensor:
        ctx.adj, ctx.plan, ctx.det = adj, plan, det
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(values, x)  # nothing is saved when only x needs a gradient
        return plan.forward(adj, x, det)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        adj, plan = ctx.adj, ctx.plan
        grad_values = grad_x = None
        values = x = None
        if ctx.needs_input_grad[0]:
            values, x = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            grad_out = grad_out.contiguous()
            if values is not None and torch.is_grad_enabled():
                # create_graph: grad_x must stay differentiable in the edge values, so multiply by the transpose
                # through this same function (not through the plan's cached, detached CSR tensor)
                adj_t = adj._transpose_structure()
                grad_x = spmm(adj_t.with_value(values.index_select(0, adj_t._perm_from_parent)), grad_out)
            else:
                grad_x = plan.backward(adj, grad_out, ctx.det)
        if values is not None:
            grad_values = edge_dot(adj.row, adj.col, grad_out, x).to(values.dtype)
        return grad_values, grad_x, None, None, None


# `_SpMM.apply` without the Python wrapper of `torch.autograd.Function.apply` (5 us per call on a 2-core CPU: it
# inspects the signature and unwraps dead functorch wrappers), i.e. the C entry point that wrapper ends in. The public
# `apply` is used whenever a functorch transform (vmap, grad, ...) is active, and if this torch lacks either hook.
_raw_apply = getattr(super(torch.autograd.Function, _SpMM), "apply", None)
_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", None)
if _raw_apply is None or _functorch_active is None:
    _raw_apply, _functorch_active = _SpMM.apply, bool


def _grad_product(adj: "CSRAdjacency", x: Tensor, reduce: str, plan: _Plan) -> Tensor:
    v = adj.value
    values = None
    if v is not None and v.requires_grad:
        values = v if reduce == "sum" else adj._mean_values(x.dtype)
    apply = _SpMM.apply if _functorch_active() else _raw_apply
    return apply(values, x, adj, plan, plan.atomic and is_deterministic())


def _spmm(adj: "CSRAdjacency", x: Tensor, reduce: str, plans: dict) -> Tensor:
    """The hot path of every product: a cached plan and, when nothing needs a gradient, directly the kernel.

    Only floating dtypes ever get a plan (built by the checked path on first use), so a hit means that ``x`` is a
    floating tensor; a bad ``x`` otherwise (not 2-D, wrong number of rows, other device) makes the kernel raise, and
    the checked path then names the problem with a typed error. The adjacency itself was validated when built."""
    try:
        plan = plans.get(x.dtype)
    except (AttributeError, TypeError):  # not a tensor: the checked path raises the ShapeError
        plan = None
    if plan is not None:
        v = adj.value
        if plan.value is v and (v is None or plan.version == v._version):
            if torch.is_grad_enabled() and (x.requires_grad or (v is not None and v.requires_grad)):
                if x.dim() == 2 and x.shape[0] == adj.num_cols and x.device == plan.device:
                    return _grad_product(adj, x, reduce, plan)
            elif plan.direct and not (plan.atomic and is_deterministic()):
                try:
                    return plan.product(plan.csr, x)
                except (RuntimeError, IndexError):
                    pass  # e.g. x of the wrong shape: the checked path raises the typed error (or this one again)
    return _spmm_checked(adj, x, reduce)


def _spmm_checked(adj: "CSRAdjacency", x: Tensor, reduce: str) -> Tensor:
    check_float(x, "x")
    check_same_device(x, "x", adj.device, "the adjacency")
    if x.dim() == 0 or x.size(0) != adj.num_cols:
        raise ShapeError(f"`x` must have shape [num_cols={adj.num_cols}, *], got {tuple(x.shape)}")
    flat = x.dim() != 2
    trailing = tuple(x.shape[1:])
    x2 = x.reshape(x.size(0), math.prod(trailing)) if flat else x
    plan = adj._plan(reduce, x.dtype)
    v = adj.value
    if torch.is_grad_enabled() and (x2.requires_grad or (v is not None and v.requires_grad)):
        out = _grad_product(adj, x2, reduce, plan)
    else:
        out = plan.forward(adj, x2, plan.atomic and is_deterministic())
    return out.reshape((adj.num_rows,) + trailing) if flat else out


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
    if reduce == "sum":
        return _spmm(adj, x, reduce, adj._plans_sum)
    if reduce == "mean":
        return _spmm(adj, x, reduce, adj._plans_mean)
    raise ShapeError(f"`reduce` must be one of {_REDUCES} for spmm, got {reduce!r} "
                     "(use segment_reduce/scatter for max/min)")
