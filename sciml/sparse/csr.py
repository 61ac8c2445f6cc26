"""A CSR adjacency built once per graph (or batch of graphs), with cached transpose, degrees and normalisations."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import Tensor

from sciml.errors import ShapeError
from sciml.sparse._spmm import _Plan, _spmm, spmm
from sciml.sparse._utils import (check_float, check_index, check_ptr, check_range, check_same_device, csr_tensor,
                                 invert_permutation, permute)
from sciml.sparse.index import index_to_ptr
from sciml.sparse.segment import segment_reduce

_NORMALIZATIONS = ("gcn", "row", "sym_laplacian", "rw_laplacian")


def _value_key(value: Tensor | None) -> tuple:
    """Cache key of the edge values: identity and in-place version (an optimizer step bumps the version)."""
    return (None,) if value is None else (id(value), value._version)


def _cacheable(value: Tensor | None) -> bool:
    """Results derived from values that are part of an autograd graph are not cached: a cached non-leaf would tie
    every later backward to the first graph."""
    return value is None or not value.requires_grad


class CSRAdjacency:
    r"""Sparse adjacency of a directed (multi)graph in compressed sparse row (CSR) form, built once per graph.

    Rows are **targets** and columns are **sources** (PyG's ``flow="source_to_target"``): an edge
    ``edge_index[:, e] = (j, i)`` with weight :math:`w_e` becomes the entry :math:`A_{ij} \mathrel{+}= w_e`, so
    that

    .. math::
        (\mathbf{A}\mathbf{X})_i = \sum_{e:\, j \to i} w_e\, \mathbf{x}_j

    aggregates the messages *into* node :math:`i`. Duplicate edges are kept (their contributions add up), self-loops
    are ordinary edges. Construction sorts the edges by ``(target, source)`` and validates them once (O(E));
    products, degrees and normalisations never re-validate. The transpose, the normalised adjacencies and the CSR
    tensors handed to ``torch.sparse.mm`` are built on first use and cached (results that depend on edge values
    requiring grad are recomputed on every call instead, so each backward has its own graph).

    Build with :meth:`from_edge_index` or :meth:`from_batch`; the constructor takes already-sorted CSR arrays and
    does not check them.

    Attributes:
        rowptr (torch.Tensor): Row pointer ``[num_rows + 1]`` (int64).
        col (torch.Tensor): Source node of each edge in CSR order ``[num_edges]`` (int64).
        row (torch.Tensor): Target node of each edge in CSR order ``[num_edges]`` (int64).
        value (torch.Tensor or None): Edge weights in CSR order ``[num_edges]``; :obj:`None` means all ones.
        perm (torch.Tensor): ``[num_edges]`` permutation from input edge order to CSR order: a per-edge tensor
            ``t`` given in the order of ``edge_index`` is ``t[perm]`` in CSR order.
        num_rows (int): Number of target nodes. num_cols (int): number of source nodes.
        graph_ptr (torch.Tensor or None): For batches, node pointer ``[num_graphs + 1]`` of the blocks.
    """

    def __init__(self, rowptr: Tensor, col: Tensor, value: Tensor | None, num_rows: int, num_cols: int, *,
                 perm: Tensor | None = None, row: Tensor | None = None, graph_ptr: Tensor | None = None) -> None:
        self.rowptr = rowptr
        self.col = col
        self.value = value
        self.num_rows = int(num_rows)
        self.num_cols = int(num_cols)
        self.perm = perm if perm is not None else torch.arange(col.numel(), device=col.device)
        if row is None:
            counts = rowptr[1:] - rowptr[:-1]
            row = torch.repeat_interleave(torch.arange(self.num_rows, device=col.device), counts,
                                          output_size=col.numel())
        self.row = row
        self.graph_ptr = graph_ptr
        self._struct: dict[Any, Any] = {}   # caches that depend only on the sparsity pattern (shared by copies)
        self._valued: dict[Any, Any] = {}   # caches that depend on the values, keyed by _value_key
        self._perm_from_parent: Tensor | None = None  # set on a transpose: CSR order of parent -> this
        self._reset_plans()

    def _reset_plans(self) -> None:
        # SpMM plans (cached CSR tensors for one reduce and dtype), by x.dtype: plain dicts so that the hot path of
        # `A @ x` is one lookup (see sciml.sparse._spmm._spmm); each plan checks that it still matches `value`.
        self._plans_sum: dict[torch.dtype, _Plan] = {}
        self._plans_mean: dict[torch.dtype, _Plan] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int | Sequence[int] | None = None,
                        edge_weight: Tensor | None = None) -> "CSRAdjacency":
        r"""Build the adjacency of a graph from ``edge_index``.

        Args:
            edge_index (torch.Tensor): ``[2, num_edges]`` integer (int32 or int64) indices; ``edge_index[0]`` are
                the sources :math:`j`, ``edge_index[1]`` the targets :math:`i`.
            num_nodes (int or (int, int), optional): Number of nodes, or ``(num_targets, num_sources)`` (=
                ``(num_rows, num_cols)``, the matrix shape) for bipartite graphs. Inferred as ``max index + 1`` if
                :obj:`None`. (default: :obj:`None`)
            edge_weight (torch.Tensor, optional): ``[num_edges]`` floating-point weights in the order of
                ``edge_index``; differentiable. :obj:`None` means all ones. (default: :obj:`None`)

        Raises:
            ShapeError: ``edge_index`` is not ``[2, E]`` integer, or ``edge_weight`` is not ``[E]`` floating point on
                the same device.
            IndexOutOfRangeError: an index is negative or not below the number of nodes.
        """
        ei = check_index(edge_index, "edge_index", dim=2)
        if ei.size(0) != 2:
            raise ShapeError(f"`edge_index` must have shape [2, num_edges], got {tuple(edge_index.shape)}")
        src, dst = ei[0], ei[1]
        num_edges = ei.size(1)
        if num_nodes is None:
            n = int(ei.max()) + 1 if num_edges > 0 else 0
            num_rows = num_cols = n
        elif isinstance(num_nodes, (tuple, list)):
            if len(num_nodes) != 2:
                raise ShapeError(f"`num_nodes` must be an int or (num_targets, num_sources), got {num_nodes!r}")
            num_rows, num_cols = (int(v) for v in num_nodes)
        else:
            num_rows = num_cols = int(num_nodes)
        if num_rows < 0 or num_cols < 0:
            raise ShapeError(f"`num_nodes` must be non-negative, got {num_nodes!r}")
        check_range(src, "edge_index[0] (sources)", num_cols)
        check_range(dst, "edge_index[1] (targets)", num_rows)
        if edge_weight is not None:
            check_float(edge_weight, "edge_weight")
            check_same_device(edge_weight, "edge_weight", ei.device, "`edge_index`")
            if edge_weight.dim() != 1 or edge_weight.size(0) != num_edges:
                raise ShapeError(f"`edge_weight` must have shape [num_edges={num_edges}], "
                                 f"got {tuple(edge_weight.shape)}")
        return cls._from_coo(dst, src, edge_weight, num_rows, num_cols)

    @classmethod
    def _from_coo(cls, row: Tensor, col: Tensor, value: Tensor | None, num_rows: int, num_cols: int,
                  graph_ptr: Tensor | None = None) -> "CSRAdjacency":
        """Sort validated COO arrays into CSR (stable: duplicates keep their input order)."""
        key = row * max(num_cols, 1) + col
        if key.numel() > 1 and bool((key[1:] < key[:-1]).any()):
            perm = torch.sort(key, stable=True).indices
            row, col = row.index_select(0, perm), col.index_select(0, perm)
            if value is not None:
                value = permute(value, perm)
        else:
            perm = torch.arange(key.numel(), device=key.device)
        rowptr = index_to_ptr(row, num_rows)
        return cls(rowptr, col, value, num_rows, num_cols, perm=perm, row=row, graph_ptr=graph_ptr)

    @classmethod
    def from_batch(cls, batch: Any = None, *, edge_index: Tensor | None = None, ptr: Tensor | None = None,
                   batch_vector: Tensor | None = None, num_nodes: int | None = None,
                   edge_weight: Tensor | None = None) -> "CSRAdjacency":
        r"""Block-diagonal adjacency of a batch of graphs (PyG ``Batch`` semantics: global node ids).

        Products with the result equal the per-graph products stacked; degrees and normalisations are per graph
        because no edge crosses two blocks (this is checked).

        Args:
            batch (torch_geometric.data.Batch, optional): A PyG batch; its ``edge_index``, ``num_nodes``, ``ptr``
                (or ``batch``) and ``edge_weight`` (if present) are used. (default: :obj:`None`)
            edge_index (torch.Tensor, optional): ``[2, E]`` global indices, instead of ``batch``.
            ptr (torch.Tensor, optional): Node pointer ``[num_graphs + 1]``.
            batch_vector (torch.Tensor, optional): Graph id of every node ``[num_nodes]`` (sorted), instead of
                ``ptr``.
            num_nodes (int, optional): Total number of nodes; defaults to ``ptr[-1]`` or ``len(batch_vector)``.
            edge_weight (torch.Tensor, optional): ``[E]`` edge weights.

        Raises:
            ShapeError: neither a batch nor ``edge_index`` with ``ptr``/``batch_vector`` is given, or an edge
                connects two different graphs.
        """
        if batch is not None:
            if isinstance(batch, Tensor):
                raise ShapeError("`from_batch` takes a PyG Batch as first argument; pass tensors as keywords "
                                 "(edge_index=..., ptr=... or batch_vector=...)")
            edge_index = batch.edge_index
            num_nodes = batch.num_nodes if num_nodes is None else num_nodes
            ptr = getattr(batch, "ptr", None) if ptr is None else ptr
            if ptr is None and batch_vector is None:
                batch_vector = getattr(batch, "batch", None)
            if edge_weight is None:
                edge_weight = getattr(batch, "edge_weight", None)
        if edge_index is None or (ptr is None and batch_vector is None):
            raise ShapeError("`from_batch` needs a PyG Batch, or `edge_index` together with `ptr` or "
                             "`batch_vector`")
        if ptr is None:
            bv = check_index(batch_vector, "batch_vector")
            num_graphs = int(bv.max()) + 1 if bv.numel() > 0 else 0
            if bv.numel() > 1 and bool((bv[1:] < bv[:-1]).any()):
                raise ShapeError("`batch_vector` must be sorted (nodes of each graph contiguous)")
            ptr = index_to_ptr(bv, num_graphs)
        ptr = check_index(ptr, "ptr")
        if num_nodes is None:
            num_nodes = int(ptr[-1]) if ptr.numel() > 0 else 0
        # validated where it lives (a Batch may keep it elsewhere than edge_index), then moved to the adjacency
        ptr = check_ptr(ptr, "ptr", int(num_nodes), ptr.device, items="num_nodes", other="`ptr`")
        adj = cls.from_edge_index(edge_index, num_nodes, edge_weight)
        adj.graph_ptr = ptr.to(adj.device)
        if adj.num_edges > 0:
            graph_of_row = torch.searchsorted(adj.graph_ptr, adj.row, right=True)
            graph_of_col = torch.searchsorted(adj.graph_ptr, adj.col, right=True)
            if bool((graph_of_row != graph_of_col).any()):
                raise ShapeError("`edge_index` has edges between different graphs of the batch; a batch adjacency "
                                 "must be block-diagonal (use from_edge_index for one big graph)")
        return adj

    # ------------------------------------------------------------------ basic properties
    @property
    def num_edges(self) -> int:
        """Number of stored edges (duplicates counted)."""
        return self.col.numel()

    @property
    def shape(self) -> tuple[int, int]:
        """``(num_rows, num_cols)`` = ``(num_targets, num_sources)``."""
        return (self.num_rows, self.num_cols)

    @property
    def device(self) -> torch.device:
        return self.col.device

    @property
    def dtype(self) -> torch.dtype | None:
        """dtype of the edge values; :obj:`None` for an unweighted adjacency (products adopt the features' dtype)."""
        return None if self.value is None else self.value.dtype

    @property
    def num_graphs(self) -> int:
        return 1 if self.graph_ptr is None else self.graph_ptr.numel() - 1

    def __repr__(self) -> str:
        w = "unweighted" if self.value is None else f"dtype={self.value.dtype}"
        return (f"CSRAdjacency(shape=({self.num_rows}, {self.num_cols}), num_edges={self.num_edges}, {w}, "
                f"device={self.device})")

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "CSRAdjacency":
        """Copy to another device and/or cast the edge values (caches are rebuilt lazily)."""
        def move(t):
            return None if t is None else t.to(device) if device is not None else t
        value = move(self.value)
        if value is not None and dtype is not None:
            value = value.to(dtype)
        out = CSRAdjacency(move(self.rowptr), move(self.col), value, self.num_rows, self.num_cols,
                           perm=move(self.perm), row=move(self.row), graph_ptr=move(self.graph_ptr))
        return out

    def with_value(self, value: Tensor | None) -> "CSRAdjacency":
        """Same sparsity pattern with other edge values (``[num_edges]`` in CSR order); structural caches (the
        transpose pattern) are shared."""
        if value is not None:
            check_float(value, "value")
            check_same_device(value, "value", self.device, "the adjacency")
            if value.shape != (self.num_edges,):
                raise ShapeError(f"`value` must have shape [num_edges={self.num_edges}], got {tuple(value.shape)}")
        out = copy.copy(self)
        out.value = value
        out._valued = {}
        out._reset_plans()
        return out

    def to_edge_index(self) -> Tensor:
        """``[2, num_edges]`` int64 edge index in CSR order (``[sources, targets]``)."""
        return torch.stack([self.col, self.row])

    def to_dense(self, dtype: torch.dtype | None = None) -> Tensor:
        """Dense ``[num_rows, num_cols]`` matrix (duplicates summed). Differentiable in the values."""
        dtype = dtype or self.dtype or torch.get_default_dtype()
        out = torch.zeros(self.num_rows, self.num_cols, dtype=dtype, device=self.device)
        v = torch.ones(self.num_edges, dtype=dtype, device=self.device) if self.value is None else self.value
        return out.index_put((self.row, self.col), v.to(dtype), accumulate=True)

    def to_torch_sparse_csr(self, dtype: torch.dtype | None = None) -> Tensor:
        """The cached ``torch.sparse_csr_tensor`` used by :meth:`matmul` (values detached)."""
        dtype = dtype or self.dtype or torch.get_default_dtype()
        return self._plan("sum", dtype).csr

    # ------------------------------------------------------------------ cached pieces
    def _plan(self, reduce: str, dtype: torch.dtype) -> _Plan:
        """The SpMM plan for ``reduce`` ("sum"/"mean") and features of ``dtype``, built once per values version."""
        plans = self._plans_sum if reduce == "sum" else self._plans_mean
        plan = plans.get(dtype)
        if plan is None or not plan.current(self):
            plan = plans[dtype] = _Plan(self, reduce, dtype)
        return plan

    def _csr_tensor(self, values: Tensor | None, dtype: torch.dtype) -> Tensor:
        """CSR tensor with the given (detached) values cast to ``dtype``; cached for ones and for own values."""
        if values is None:
            key = ("ones", dtype)
            if key not in self._struct:
                ones = torch.ones(self.num_edges, dtype=dtype, device=self.device)
                self._struct[key] = csr_tensor(self.rowptr, self.col, ones, self.shape)
            return self._struct[key]
        # The entry holds `values` itself, so its id cannot be recycled while cached.
        hit = self._valued.get("csr")
        if hit is not None and hit[0] is values and hit[1] == (values._version, dtype):
            return hit[2]
        t = csr_tensor(self.rowptr, self.col, values.to(dtype), self.shape)
        self._valued["csr"] = (values, (values._version, dtype), t)
        return t

    def _transpose_structure(self) -> "CSRAdjacency":
        """Unweighted transpose (pattern only), cached; ``_perm_from_parent`` maps this CSR order to ours."""
        t = self._struct.get("transpose")
        if t is None:
            col_sorted, tperm = torch.sort(self.col, stable=True)  # rows stay ascending within each column
            rowptr_t = index_to_ptr(col_sorted, self.num_cols)
            t = CSRAdjacency(rowptr_t, self.row.index_select(0, tperm), None, self.num_cols, self.num_rows,
                             perm=self.perm.index_select(0, tperm), row=col_sorted, graph_ptr=self.graph_ptr)
            t._perm_from_parent = tperm
            back = copy.copy(self)
            back.value, back._valued, back._perm_from_parent = None, {}, invert_permutation(tperm)
            back._reset_plans()
            t._struct["transpose"] = back
            self._struct["transpose"] = t
        return t

    def _inv_count(self) -> Tensor:
        """Per edge (CSR order), 1 / number of edges into its target; float64, cached."""
        inv = self._struct.get("inv_count")
        if inv is None:
            count = (self.rowptr[1:] - self.rowptr[:-1]).clamp(min=1).to(torch.float64)
            inv = self._struct["inv_count"] = count.reciprocal().index_select(0, self.row)
        return inv

    def _mean_values(self, dtype: torch.dtype | None = None) -> Tensor:
        """Edge values divided by the number of edges into their target (``reduce="mean"``)."""
        inv = self._inv_count()
        if self.value is None:
            dtype = dtype or torch.get_default_dtype()
            key = ("inv_count", dtype)
            if key not in self._struct:
                self._struct[key] = inv.to(dtype)
            return self._struct[key]
        return self.value * inv.to(self.value.dtype)

    # ------------------------------------------------------------------ public operations
    def t(self) -> "CSRAdjacency":
        """Transpose (rows = sources, columns = targets), cached. Its ``perm`` still refers to the input edge
        order; its values are this adjacency's values reordered."""
        tstruct = self._transpose_structure()
        if self.value is None:
            return tstruct
        hit = self._valued.get("t")
        if hit is not None and hit[0] == _value_key(self.value):
            return hit[1]
        value_t = permute(self.value, tstruct._perm_from_parent, tstruct._struct["transpose"]._perm_from_parent)
        out = tstruct.with_value(value_t)
        if _cacheable(self.value):
            self._valued["t"] = (_value_key(self.value), out)
        return out

    def in_degree(self, dtype: torch.dtype | None = None) -> Tensor:
        r"""Weighted in-degree :math:`d^{in}_i = \sum_j A_{ij}`: the (weighted) number of edges *into* each target
        node, i.e. the row sums. ``[num_rows]``; unweighted graphs count edges (duplicates included)."""
        if self.value is None:
            return (self.rowptr[1:] - self.rowptr[:-1]).to(dtype or torch.get_default_dtype())
        return segment_reduce(self.value, self.rowptr, "sum", validate=False).to(dtype or self.value.dtype)

    def out_degree(self, dtype: torch.dtype | None = None) -> Tensor:
        r"""Weighted out-degree :math:`d^{out}_j = \sum_i A_{ij}`: the (weighted) number of edges *leaving* each
        source node, i.e. the column sums. ``[num_cols]``."""
        return self.t().in_degree(dtype)

    def normalized(self, kind: str = "gcn", *, add_self_loops: bool | None = None,
                   dtype: torch.dtype | None = None) -> "CSRAdjacency":
        r"""A normalised copy of this (square) adjacency, cached per ``(kind, add_self_loops, dtype)``.

        With :math:`\hat{\mathbf{A}} = \mathbf{A} + \mathbf{I}` if ``add_self_loops`` else :math:`\mathbf{A}`, and
        :math:`\hat{\mathbf{D}} = \mathrm{diag}(\hat{\mathbf{A}}\mathbf{1})` its in-degree (row sums),
        :math:`0^{-1} := 0` for isolated nodes:

        * ``"gcn"``: :math:`\hat{\mathbf{D}}^{-1/2}\hat{\mathbf{A}}\hat{\mathbf{D}}^{-1/2}` (Kipf & Welling,
          ICLR 2017), self-loops added by default; the added loops have weight 1 (also next to existing ones).
        * ``"row"``: :math:`\hat{\mathbf{D}}^{-1}\hat{\mathbf{A}}` (random walk; rows sum to 1).
        * ``"sym_laplacian"``: :math:`\mathbf{I} - \hat{\mathbf{D}}^{-1/2}\hat{\mathbf{A}}\hat{\mathbf{D}}^{-1/2}`.
        * ``"rw_laplacian"``: :math:`\mathbf{I} - \hat{\mathbf{D}}^{-1}\hat{\mathbf{A}}`.

        The result keeps duplicate entries (e.g. the Laplacian's diagonal next to a self-loop); its ``perm`` refers
        to the edge list ``[input edges, added diagonal entries]``. Differentiable in the edge weights (then not
        cached).

        Args:
            kind (str, optional): One of ``"gcn"``, ``"row"``, ``"sym_laplacian"``, ``"rw_laplacian"``.
                (default: :obj:`"gcn"`)
            add_self_loops (bool, optional): Add :math:`\mathbf{I}` before normalising; :obj:`None` means
                :obj:`True` for ``"gcn"`` and :obj:`False` otherwise. (default: :obj:`None`)
            dtype (torch.dtype, optional): dtype of the normalised values of an unweighted graph (weighted graphs
                keep their weights' dtype). (default: ``torch.get_default_dtype()``)
        """
        if kind not in _NORMALIZATIONS:
            raise ShapeError(f"`kind` must be one of {_NORMALIZATIONS}, got {kind!r}")
        if self.num_rows != self.num_cols:
            raise ShapeError(f"normalized({kind!r}) needs a square adjacency, got shape {self.shape}")
        if add_self_loops is None:
            add_self_loops = kind == "gcn"
        dtype = self.value.dtype if self.value is not None else (dtype or torch.get_default_dtype())
        key = ("norm", kind, bool(add_self_loops), dtype, _value_key(self.value))
        if key in self._valued:
            return self._valued[key]
        out = self._normalize(kind, bool(add_self_loops), dtype)
        if _cacheable(self.value):
            self._valued[key] = out
        return out

    def _normalize(self, kind: str, add_self_loops: bool, dtype: torch.dtype) -> "CSRAdjacency":
        n, device = self.num_rows, self.device
        w = self.value if self.value is not None else torch.ones(self.num_edges, dtype=dtype, device=device)
        base = self.with_value(w)
        if add_self_loops:
            loops = torch.arange(n, device=device)
            base = self._derived(torch.cat([self.row, loops]), torch.cat([self.col, loops]),
                                 torch.cat([w, torch.ones(n, dtype=dtype, device=device)]))
        deg = base.in_degree()
        if kind in ("gcn", "sym_laplacian"):
            dis = deg.pow(-0.5).masked_fill(deg == 0, 0.0)
            norm = dis.index_select(0, base.row) * base.value * dis.index_select(0, base.col)
        else:
            dinv = deg.reciprocal().masked_fill(deg == 0, 0.0)
            norm = dinv.index_select(0, base.row) * base.value
        if kind in ("gcn", "row"):
            return base.with_value(norm)
        loops = torch.arange(n, device=device)
        # Laplacian: I - normalised; the diagonal entries are appended after the (possibly looped) edges.
        lap = CSRAdjacency._from_coo(torch.cat([base.row, loops]), torch.cat([base.col, loops]),
                                     torch.cat([-norm, torch.ones(n, dtype=dtype, device=device)]), n, n,
                                     graph_ptr=self.graph_ptr)
        lap.perm = self._compose_perm(base.perm, lap.perm, base.num_edges)
        return lap

    def _derived(self, row: Tensor, col: Tensor, value: Tensor) -> "CSRAdjacency":
        """Adjacency of ``[own edges in CSR order, extra entries]``, with ``perm`` against ``[input edges, extra]``."""
        out = CSRAdjacency._from_coo(row, col, value, self.num_rows, self.num_cols, graph_ptr=self.graph_ptr)
        out.perm = self._compose_perm(self.perm, out.perm, self.num_edges)
        return out

    @staticmethod
    def _compose_perm(inner: Tensor, outer: Tensor, num_inner: int) -> Tensor:
        """Map positions of ``[inner CSR edges, extra]`` to positions of ``[input edges, extra]``."""
        if num_inner == 0:
            return outer
        first = outer < num_inner
        return torch.where(first, inner.index_select(0, outer.clamp(max=num_inner - 1)), outer)

    def matmul(self, x: Tensor, reduce: str = "sum") -> Tensor:
        """``spmm(self, x, reduce)``: see :func:`sciml.sparse.spmm`."""
        return spmm(self, x, reduce)

    def __matmul__(self, x: Tensor) -> Tensor:
        return _spmm(self, x, "sum", self._plans_sum)
