r"""Neighbourhood aggregators for message passing: sum/mean/max, a recurrent (GRU) baseline, and the learnable
commutative monoid (LCM) aggregator with a balanced binary-tree reduction.

Every aggregator takes the PyG-style grouping API ``aggr(x, index=None, ptr=None, dim_size=None)``: ``x [E, F]``
holds the elements to aggregate (messages), and either ``index [E]`` names the set (node) of each element, or
``ptr [S + 1]`` marks contiguous segments ``x[ptr[s]:ptr[s+1]]``. Empty sets give 0. :class:`AggrConv` is a small
message-passing layer that takes ``x`` and ``edge_index`` and lets the aggregator be chosen by name.

See ``docs/aggregation.md`` for the monoid argument, the tree shape and the differences from PyG.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from sciml.errors import ConfigError, ShapeError
from sciml.sparse import CSRAdjacency, index_to_ptr, ptr_to_index, segment_reduce
from sciml.sparse._utils import check_index, check_float, check_ptr, check_range, check_same_device

__all__ = ["Aggregation", "SegmentAggregation", "LCMAggregation", "GRUAggregation", "AggrConv",
           "aggregation_from_name", "AGGREGATIONS", "group_by_index", "shuffle_within_segments"]

AGGREGATIONS = ("sum", "mean", "max", "gru", "lcm")


# ---------------------------------------------------------------------------------------------------- grouping
def group_by_index(x: Tensor, index: Tensor | None = None, ptr: Tensor | None = None,
                   dim_size: int | None = None, *, validate: bool = True) -> tuple[Tensor, Tensor]:
    """Bring the rows of ``x`` into segment order and return ``(x_grouped, ptr)``.

    With ``ptr`` the rows are taken as already grouped (``index`` is then ignored, as in PyG). With ``index`` the
    rows are stably sorted by it, so the order of the elements *within* a set is their order in ``x`` (no sort
    happens when ``index`` is already non-decreasing).

    Args:
        x: ``[E, F]`` floating-point elements.
        index: ``[E]`` set id of each element, in ``[0, dim_size)``.
        ptr: ``[S + 1]`` CSR pointer over the rows of ``x``.
        dim_size: number of sets ``S`` (default: ``index.max() + 1``, or ``len(ptr) - 1``).
        validate: check shapes, devices and ranges (one O(E) pass and a host sync).

    Raises:
        ShapeError: ``x`` is not a 2-D floating tensor, ``index`` has the wrong length/dtype, neither ``index`` nor
            ``ptr`` is given, or ``dim_size`` disagrees with ``ptr``.
        IndexOutOfRangeError: an index outside ``[0, dim_size)`` or an invalid pointer.
    """
    if validate:
        check_float(x, "x")
        if x.dim() != 2:
            raise ShapeError(f"`x` must have shape [num_elements, channels], got {tuple(x.shape)}")
    if ptr is not None:
        if validate:
            ptr = check_ptr(ptr, "ptr", x.size(0), x.device, items="x.size(0)", other="`x`")
        if dim_size is not None and dim_size != ptr.numel() - 1:
            raise ShapeError(f"`dim_size` ({dim_size}) must equal len(ptr) - 1 = {ptr.numel() - 1}")
        return x, ptr.long()
    if index is None:
        raise ShapeError("pass either `index` [num_elements] or `ptr` [num_sets + 1] to group the rows of `x`")
    if validate:
        index = check_index(index, "index")
        check_same_device(index, "index", x.device, "`x`")
        if index.numel() != x.size(0):
            raise ShapeError(f"`index` has {index.numel()} entries but `x` has {x.size(0)} rows")
    index = index.long()
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() else 0
    elif dim_size < 0:
        raise ShapeError(f"`dim_size` must be >= 0, got {dim_size}")
    if validate:
        check_range(index, "index", dim_size)
    if index.numel() > 1 and not bool((index[1:] >= index[:-1]).all()):
        order = torch.argsort(index, stable=True)
        x, index = x.index_select(0, order), index.index_select(0, order)
    return x, index_to_ptr(index, dim_size)


def shuffle_within_segments(ptr: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """A permutation of ``0..ptr[-1]-1`` that keeps every segment in place and orders its elements at random."""
    num = int(ptr[-1])
    seg = ptr_to_index(ptr, num)
    keys = torch.rand(num, device=ptr.device, generator=generator)
    order = torch.argsort(keys)
    return order.index_select(0, torch.argsort(seg.index_select(0, order), stable=True))


# ---------------------------------------------------------------------------------------------------- base class
class Aggregation(nn.Module):
    r"""Base class of the aggregators: groups the input rows into sets, optionally shuffles the order within
    each set (training only), and calls :meth:`reduce` on the grouped rows.

    Subclasses implement ``reduce(x, ptr) -> [S, F_out]`` on rows grouped by the CSR pointer ``ptr``.

    Args:
        shuffle (bool): in training mode, aggregate the elements of each set in a random order (order-sensitive
            aggregators only; a no-op for sum/mean/max). In eval mode the order is always the input order.
    """

    #: whether the result depends on the order of the elements within a set
    order_sensitive = False

    def __init__(self, *, shuffle: bool = False) -> None:
        super().__init__()
        self.shuffle = bool(shuffle)

    def reduce(self, x: Tensor, ptr: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor, index: Tensor | None = None, ptr: Tensor | None = None,
                dim_size: int | None = None) -> Tensor:
        """Aggregate the rows of ``x [E, F]`` into ``[S, F_out]``, grouped by ``index [E]`` or ``ptr [S + 1]``."""
        x, ptr = group_by_index(x, index, ptr, dim_size)
        self._check_channels(x)
        if self.order_sensitive and self.shuffle and self.training and x.size(0) > 1:
            x = x.index_select(0, shuffle_within_segments(ptr))
        return self.reduce(x, ptr)

    def _check_channels(self, x: Tensor) -> None:
        expected = getattr(self, "in_channels", None)
        if expected is not None and x.size(-1) != expected:
            raise ShapeError(f"{type(self).__name__}: `x` has {x.size(-1)} channels, expected in_channels = "
                             f"{expected}")


class SegmentAggregation(Aggregation):
    r"""Sum, mean or max over each set, through :func:`sciml.sparse.segment_reduce` on the grouped rows.

    .. math:: \mathbf{h}_i = \bigoplus_{j \in \mathcal{N}(i)} \mathbf{x}_j,
        \qquad \oplus \in \{\textstyle\sum, \mathrm{mean}, \max\}

    Empty sets give 0.

    Args:
        reduce (str): ``"sum"``, ``"mean"`` or ``"max"`` (``"min"`` too). (default: :obj:`"sum"`)
    """

    def __init__(self, reduce: str = "sum") -> None:
        super().__init__(shuffle=False)
        if reduce not in ("sum", "mean", "max", "min"):
            raise ConfigError(f"SegmentAggregation: reduce must be 'sum', 'mean', 'max' or 'min', got {reduce!r}")
        self.reduce_op = reduce

    def reduce(self, x: Tensor, ptr: Tensor) -> Tensor:
        return segment_reduce(x, ptr, self.reduce_op, validate=False)

    def extra_repr(self) -> str:
        return f"reduce={self.reduce_op!r}"


def _check_channels_arg(owner: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------------- LCM
class LCMAggregation(Aggregation):
    r"""Learnable commutative monoid aggregation, from *Learnable Commutative Monoids for Graph Neural Networks*
    (Ong & Veličković, LoG 2022).

    A binary operator built from a GRU cell :math:`g(\text{input}, \text{hidden})` and made commutative by
    symmetrising,

    .. math:: \mathbf{a} \oplus \mathbf{b} = \tfrac12\big(g(\mathbf{a}, \mathbf{b}) + g(\mathbf{b}, \mathbf{a})\big),

    reduces each set by a balanced binary tree of depth :math:`\lceil \log_2 d \rceil` for a set of size
    :math:`d`: level by level, elements :math:`(2k, 2k+1)` of each set are combined, and an unpaired last element
    is carried to the next level. All pairs of one level, over all sets, go through **one** batched GRU-cell call
    (the tree is traversed with index arithmetic on the packed elements; there is no loop over sets).

    **Identity element.** The operator is extended by an identity :math:`e` (the padding) with
    :math:`e \oplus x = x \oplus e = x` and :math:`e \oplus e = e`, applied by masking: a set is never padded
    with vectors that enter :math:`g`. Carrying an unpaired element is exactly :math:`x \oplus e`, so padding a
    level to an even length, or a set to a power of two, with trailing identities gives the same tree; hence a
    set's result depends only on its own elements and their order, never on the sizes of the other sets in the
    batch (PyG's ``LCMAggregation`` pads with zero vectors that go through the GRU cell, so it does). A set of one
    element returns that element (after the optional projection); an **empty set returns the zero vector**
    (the identity has no vector of its own; 0 is also what sum/mean/max return for it).

    The tree is not permutation invariant (:math:`\oplus` is commutative but not associative):
    in eval mode the leaves are taken in input order (for :class:`AggrConv`: by source node id), with
    ``shuffle=True`` in random order while training.

    Args:
        in_channels (int): size of each input element.
        out_channels (int): size of the output (the GRU cell has ``out_channels`` units).
        project (bool): apply :math:`\mathrm{ReLU}(W\mathbf{x} + \mathbf{b})` to every element first, as PyG.
            Required when ``in_channels != out_channels``. (default: :obj:`True`)
        shuffle (bool): random leaf order within each set in training mode. (default: :obj:`False`)

    Shapes:
        ``x [E, in_channels]``, ``index [E]`` or ``ptr [S + 1]`` → ``[S, out_channels]``.

    Parameter names (``lin``, ``gru_cell``) and shapes equal PyG's, so a PyG state dict loads as is.
    """

    order_sensitive = True

    def __init__(self, in_channels: int, out_channels: int, *, project: bool = True, shuffle: bool = False) -> None:
        super().__init__(shuffle=shuffle)
        _check_channels_arg("LCMAggregation", in_channels=in_channels, out_channels=out_channels)
        if in_channels != out_channels and not project:
            raise ConfigError(f"LCMAggregation: in_channels ({in_channels}) != out_channels ({out_channels}) "
                              "needs project=True")
        self.in_channels, self.out_channels, self.project = in_channels, out_channels, bool(project)
        self.lin = nn.Linear(in_channels, out_channels) if project else None
        self.gru_cell = nn.GRUCell(out_channels, out_channels)

    def reset_parameters(self) -> None:
        if self.lin is not None:
            self.lin.reset_parameters()
        self.gru_cell.reset_parameters()

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        r"""The commutative operator :math:`\mathbf{a} \oplus \mathbf{b}` on ``[P, out_channels]`` pairs, with one
        GRU-cell call on the stacked orders ``(a, b)`` and ``(b, a)``.

        Each pair is first put in a canonical order (lexicographic on the vectors), so that ``combine(a, b)`` and
        ``combine(b, a)`` evaluate the same rows at the same positions of the GRU's matrix products and are
        bitwise equal: without it they agree only to rounding, because a GEMM's result for a row can depend on
        where the row sits in the batch."""
        n = a.size(0)
        rows = torch.arange(n, device=a.device)
        return self._combine_rows(torch.cat([a, b]), rows, rows + n)

    def _combine_rows(self, x: Tensor, left: Tensor, right: Tensor) -> Tensor:
        """``x[left] ⊕ x[right]`` row by row: the canonical order is chosen on the indices, so the GRU cell's
        two inputs are plain gathers of ``x`` (no ``where``/``cat`` on feature tensors in forward or backward)."""
        with torch.no_grad():
            xl, xr = x.index_select(0, left), x.index_select(0, right)
            first_diff = (xl != xr).to(x.dtype).argmax(dim=1, keepdim=True)
            swap = (xl.gather(1, first_diff) > xr.gather(1, first_diff)).view(-1)
            lo, hi = torch.where(swap, right, left), torch.where(swap, left, right)
        n = left.numel()
        out = self.gru_cell(x.index_select(0, torch.cat([lo, hi])), x.index_select(0, torch.cat([hi, lo])))
        return 0.5 * (out[:n] + out[n:])

    def reduce(self, x: Tensor, ptr: Tensor) -> Tensor:
        if self.lin is not None:
            x = self.lin(x).relu()
        return self.tree_reduce(x, ptr)

    def tree_reduce(self, x: Tensor, ptr: Tensor) -> Tensor:
        """Reduce the grouped rows ``x [E, F]`` of each segment of ``ptr`` by the balanced binary tree."""
        num_sets, num = ptr.numel() - 1, x.size(0)
        out = x.new_zeros(num_sets, x.size(-1))
        if num == 0:
            return out
        count = ptr[1:] - ptr[:-1]
        seg = ptr_to_index(ptr, num)
        pos = torch.arange(num, device=x.device) - ptr[:-1].index_select(0, seg)
        depth = math.ceil(math.log2(int(count.max()))) if num else 0
        for _ in range(depth):
            # the even positions survive into the next level; each takes its right neighbour if the set has one
            # (x ⊕ y) or is carried (x ⊕ e = x): masking the identity, never feeding it to the GRU cell
            left = torch.nonzero(pos % 2 == 0).squeeze(1)
            seg, pos = seg.index_select(0, left), pos.index_select(0, left)
            paired = torch.nonzero(pos + 1 < count.index_select(0, seg)).squeeze(1)
            a = left.index_select(0, paired)
            combined = self._combine_rows(x, a, a + 1)
            x = x.index_select(0, left).index_copy(0, paired, combined)
            pos, count = pos // 2, (count + 1) // 2
        return out.index_copy(0, seg, x)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, project={self.project}, shuffle={self.shuffle}")


# ---------------------------------------------------------------------------------------------------- GRU
class GRUAggregation(Aggregation):
    r"""Recurrent aggregation: a GRU reads each set as a sequence and the set's result is the GRU's hidden state
    after its **last true element** (the final state :math:`\mathbf{h}_{d}` of a set of size :math:`d`), as in
    *Graph Neural Networks with Adaptive Readouts* (Buterez et al., NeurIPS 2022) and the recurrent baselines of
    Ong & Veličković (LoG 2022).

    .. math:: \mathbf{h}_t = \mathrm{GRU}(\mathbf{x}_{\pi(t)}, \mathbf{h}_{t-1}),\quad \mathbf{h}_0 = 0,
        \qquad \text{out} = \mathbf{h}_d

    The sets are packed (``torch.nn.utils.rnn.PackedSequence``, built with index arithmetic; no dense padded
    tensor), so no padding step ever updates the state: a set's result does not depend on the other sets in the
    batch. PyG's ``GRUAggregation`` instead returns the state after the zero-padded tail. An empty set returns
    :math:`\mathbf{h}_0 = 0`. With ``shuffle=True`` (the default) the order :math:`\pi` is random in training;
    in eval mode it is the input order.

    Args:
        in_channels (int): size of each input element.
        out_channels (int): hidden size of the GRU.
        shuffle (bool): random order within each set in training mode. (default: :obj:`True`)
        num_layers (int): stacked GRU layers; the output is the last layer's state. (default: 1)
        dropout (float): dropout between stacked layers (``torch.nn.GRU``). (default: 0)
        bias (bool): GRU biases. (default: :obj:`True`)

    Shapes:
        ``x [E, in_channels]``, ``index [E]`` or ``ptr [S + 1]`` → ``[S, out_channels]``.

    The parameters live in ``self.gru`` (a batch-first ``torch.nn.GRU``), as in PyG.
    """

    order_sensitive = True

    def __init__(self, in_channels: int, out_channels: int, *, shuffle: bool = True, num_layers: int = 1,
                 dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(shuffle=shuffle)
        _check_channels_arg("GRUAggregation", in_channels=in_channels, out_channels=out_channels,
                            num_layers=num_layers)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"GRUAggregation: dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.gru = nn.GRU(in_channels, out_channels, num_layers=num_layers, dropout=dropout, bias=bias,
                          batch_first=True)

    def reset_parameters(self) -> None:
        self.gru.reset_parameters()

    def reduce(self, x: Tensor, ptr: Tensor) -> Tensor:
        num_sets, num = ptr.numel() - 1, x.size(0)
        out = x.new_zeros(num_sets, self.out_channels)
        if num == 0:
            return out
        count = ptr[1:] - ptr[:-1]
        # the non-empty sets, longest first (stable: ties keep set order), as PackedSequence wants them
        by_length = torch.argsort(count, descending=True, stable=True)
        lengths = count.index_select(0, by_length)
        num_nonempty = int((lengths > 0).sum())
        by_length, lengths = by_length[:num_nonempty], lengths[:num_nonempty]
        max_len = int(lengths[0])
        # batch_sizes[t] = number of sets longer than t
        hist = torch.bincount(lengths, minlength=max_len + 1)
        batch_sizes = hist.flip(0).cumsum(0).flip(0)[1:]
        offsets = torch.cumsum(batch_sizes, 0) - batch_sizes
        # element (set s, position t) sits at offsets[t] + rank(s) in the time-major packed data
        rank = torch.empty_like(count)
        rank[by_length] = torch.arange(num_nonempty, device=x.device)
        seg = ptr_to_index(ptr, num)
        pos = torch.arange(num, device=x.device) - ptr[:-1].index_select(0, seg)
        packed_pos = offsets.index_select(0, pos) + rank.index_select(0, seg)
        source = torch.empty_like(packed_pos)
        source[packed_pos] = torch.arange(num, device=x.device)
        packed = PackedSequence(x.index_select(0, source), batch_sizes.cpu(), None, None)
        _, h_n = self.gru(packed)
        return out.index_copy(0, by_length, h_n[-1])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_layers={self.gru.num_layers}, "
                f"shuffle={self.shuffle}")


# ---------------------------------------------------------------------------------------------------- factory
def aggregation_from_name(name: str, in_channels: int, out_channels: int | None = None,
                          **kwargs: Any) -> Aggregation:
    """Build an aggregator by name: ``"sum"``, ``"mean"``, ``"max"`` (``out_channels`` must equal
    ``in_channels`` or be omitted), ``"gru"`` (:class:`GRUAggregation`) or ``"lcm"`` (:class:`LCMAggregation`,
    ``project`` defaults to ``in_channels != out_channels``). ``kwargs`` go to the aggregator's constructor."""
    out_channels = in_channels if out_channels is None else out_channels
    if name in ("sum", "mean", "max"):
        if out_channels != in_channels:
            raise ConfigError(f"aggregation {name!r} keeps the channel count: in_channels ({in_channels}) != "
                              f"out_channels ({out_channels})")
        if kwargs:
            raise ConfigError(f"aggregation {name!r} takes no options, got {sorted(kwargs)}")
        return SegmentAggregation(name)
    if name == "gru":
        return GRUAggregation(in_channels, out_channels, **kwargs)
    if name == "lcm":
        kwargs.setdefault("project", in_channels != out_channels)
        return LCMAggregation(in_channels, out_channels, **kwargs)
    raise ConfigError(f"unknown aggregation {name!r}; expected one of {AGGREGATIONS}")


# ---------------------------------------------------------------------------------------------------- layer
class AggrConv(nn.Module):
    r"""A message-passing layer with a pluggable aggregator:

    .. math:: \mathbf{h}_i = \mathbf{W}_r \mathbf{x}_i + \mathbf{b}
        + \operatorname{AGG}_{j \in \mathcal{N}(i)} \big(\mathbf{W}_m \mathbf{x}_j\big)

    where :math:`\mathcal{N}(i)` are the sources of the edges into :math:`i` (``edge_index[0]`` sources,
    ``edge_index[1]`` targets, duplicates counted) and AGG is ``"sum"``, ``"mean"``, ``"max"``, ``"gru"`` or
    ``"lcm"``. The messages are sorted by (target, source) once per graph (the cached
    :class:`~sciml.sparse.CSRAdjacency`), so order-sensitive aggregators see a node's neighbours by increasing
    source id in eval mode, independent of the order of ``edge_index``. Sum and mean run as CSR SpMM (the messages
    are a linear map of the source features), max/GRU/LCM on the gathered ``[E, F]`` messages.

    Args:
        in_channels (int): input feature size.
        out_channels (int): output feature size.
        aggr (str): the aggregator. (default: :obj:`"sum"`)
        aggr_kwargs (dict, optional): options of the aggregator (``shuffle``, ``project``, ``num_layers``...).
            For ``"lcm"`` ``project`` defaults to :obj:`False` (the messages are already a linear map).
        root_weight (bool): add :math:`\mathbf{W}_r \mathbf{x}_i`. (default: :obj:`True`)
        bias (bool): add :math:`\mathbf{b}`. (default: :obj:`True`)

    Shapes:
        ``x [N, in_channels]``, ``edge_index [2, E]`` (or a :class:`~sciml.sparse.CSRAdjacency` with
        ``N`` rows) → ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, aggr: str = "sum", *,
                 aggr_kwargs: dict[str, Any] | None = None, root_weight: bool = True, bias: bool = True) -> None:
        super().__init__()
        _check_channels_arg("AggrConv", in_channels=in_channels, out_channels=out_channels)
        if aggr not in AGGREGATIONS:
            raise ConfigError(f"AggrConv: unknown aggr {aggr!r}; expected one of {AGGREGATIONS}")
        kwargs = dict(aggr_kwargs or {})
        if aggr == "lcm":
            kwargs.setdefault("project", False)
        self.in_channels, self.out_channels, self.aggr_name = in_channels, out_channels, aggr
        self.lin_msg = nn.Linear(in_channels, out_channels, bias=False)
        self.aggr = aggregation_from_name(aggr, out_channels, out_channels, **kwargs)
        self.lin_root = nn.Linear(in_channels, out_channels, bias=False) if root_weight else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def reset_parameters(self) -> None:
        self.lin_msg.reset_parameters()
        if self.lin_root is not None:
            self.lin_root.reset_parameters()
        if hasattr(self.aggr, "reset_parameters"):
            self.aggr.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor | CSRAdjacency) -> Tensor:
        check_float(x, "x")
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ShapeError(f"AggrConv: `x` must have shape [num_nodes, {self.in_channels}], got "
                             f"{tuple(x.shape)}")
        adj = edge_index if isinstance(edge_index, CSRAdjacency) else _adjacency(edge_index, x.size(0))
        if adj.num_rows != x.size(0) or adj.num_cols != x.size(0):
            raise ShapeError(f"AggrConv: the adjacency has shape {adj.shape} but `x` has {x.size(0)} nodes")
        if adj.dtype is not None:
            raise ShapeError("AggrConv: weighted adjacencies are not supported (messages are unweighted)")
        msg = self.lin_msg(x)
        if self.aggr_name in ("sum", "mean"):
            out = adj.matmul(msg, reduce=self.aggr_name)
        else:
            out = self.aggr(msg.index_select(0, adj.col), ptr=adj.rowptr)
        if self.lin_root is not None:
            out = out + self.lin_root(x)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, aggr={self.aggr_name!r}"


def _adjacency(edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
    from sciml.gnn.graph import cached_adjacency

    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ShapeError(f"AggrConv: `edge_index` must have shape [2, num_edges], got {shape}")
    return cached_adjacency(edge_index, num_nodes, normalization=None)
