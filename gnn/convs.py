r"""Graph convolutions on :mod:`sciml.sparse`: GCN, GraphSAGE (mean) and GAT (multi-head).

Each layer has the parameters and initialisation of its PyG counterpart (``GCNConv``, ``SAGEConv(aggr="mean")``,
``GATConv``), so weights copied from one give the same outputs, but aggregates through a CSR adjacency built once
per graph (:class:`sciml.sparse.CSRAdjacency`): SpMM for sums and means, per-edge scores and a sorted segment
softmax for attention. A layer is called as ``conv(x, graph)`` where ``graph`` is an ``edge_index`` ``[2, E]``
(the adjacency the layer needs is built on first use and cached while the tensor lives) or a
:class:`~sciml.sparse.CSRAdjacency` returned by ``conv.prepare(edge_index, num_nodes)`` (used as is).

Conventions are PyG's ``flow="source_to_target"``: ``edge_index[0]`` are sources :math:`j`, ``edge_index[1]``
targets :math:`i`; node :math:`i` aggregates over its incoming edges.
"""
from __future__ import annotations

import math
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.features import is_sparse, linear
from sciml.gnn.graph import cached_adjacency
from sciml.sparse import CSRAdjacency, gather, segment_softmax
from sciml.sparse.cache import TensorCache

try:  # PyG's gcn_norm (self-loops only where missing); the plain "gcn" kind adds one to every node
    from sciml.gnn.graph import GCN_NORM as _GCN_KIND
except ImportError:  # pragma: no cover - older gnn.graph
    _GCN_KIND = "gcn"

__all__ = ["GCNConv", "SAGEConv", "GATConv", "make_conv", "CONV_NAMES"]

#: Names accepted by :func:`make_conv`.
CONV_NAMES = ("gcn", "sage", "gat")

_LOOP_CACHE: TensorCache[CSRAdjacency] = TensorCache()


def _glorot_(t: Tensor) -> None:
    """Glorot-uniform over the last two dimensions, as PyG's ``glorot`` (``a = sqrt(6 / (fan_in + fan_out))``)."""
    a = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    with torch.no_grad():
        t.uniform_(-a, a)


def _check_x(x: Tensor, in_channels: int, who: str) -> None:
    if x.dim() != 2 or x.size(1) != in_channels:
        raise ShapeError(f"{who}: `x` must have shape [num_nodes, in_channels={in_channels}], got {tuple(x.shape)}")


def _check_graph(adj: CSRAdjacency, num_nodes: int, who: str) -> None:
    if adj.num_rows != num_nodes or adj.num_cols != num_nodes:
        raise ShapeError(f"{who}: the adjacency has shape {adj.shape}, expected ({num_nodes}, {num_nodes}) for "
                         f"x with {num_nodes} nodes")


def self_loop_adjacency(edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
    """Unweighted CSR adjacency of ``edge_index`` with every existing self-loop removed and exactly one self-loop
    per node added (PyG's ``remove_self_loops`` + ``add_self_loops``, what ``GATConv`` does), cached while
    ``edge_index`` lives."""
    def build() -> CSRAdjacency:
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ShapeError(f"`edge_index` must have shape [2, num_edges], got {tuple(edge_index.shape)}")
        keep = edge_index[0] != edge_index[1]
        loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
        ei = torch.cat([edge_index[:, keep], torch.stack([loops, loops])], dim=1)
        return CSRAdjacency.from_edge_index(ei, num_nodes=num_nodes)

    return _LOOP_CACHE.get((edge_index,), (num_nodes, edge_index.device), build)


class GCNConv(nn.Module):
    r"""Graph convolution of *Semi-Supervised Classification with Graph Convolutional Networks* (Kipf & Welling,
    ICLR 2017):

    .. math::
        \mathbf{X}' = \hat{\mathbf{D}}^{-1/2}\hat{\mathbf{A}}\hat{\mathbf{D}}^{-1/2}\mathbf{X}\mathbf{W} + \mathbf{b},
        \qquad \hat{\mathbf{A}} = \mathbf{A} + \mathbf{I}

    with self-loops added where missing and the in-degree :math:`\hat D_{ii} = \sum_j \hat A_{ij}` (PyG's
    ``gcn_norm``). Same parameters as PyG's ``GCNConv``: ``lin.weight`` ``[out, in]`` (Glorot) and ``bias``
    ``[out]`` (zeros).

    Args:
        in_channels (int): input features :math:`F`.
        out_channels (int): output features :math:`F'`.
        bias (bool): learn an additive bias. (default: ``True``)

    Shapes:
        ``x [N, F]``, ``graph`` ``edge_index [2, E]`` or ``prepare(...)`` → ``[N, F']``
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _glorot_(self.lin.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @staticmethod
    def prepare(edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
        """The normalised adjacency this layer multiplies with (cached per ``edge_index``)."""
        return cached_adjacency(edge_index, num_nodes, normalization=_GCN_KIND)

    def forward(self, x: Tensor, graph: Tensor | CSRAdjacency) -> Tensor:
        _check_x(x, self.in_channels, "GCNConv")
        adj = graph if isinstance(graph, CSRAdjacency) else self.prepare(graph, x.size(0))
        _check_graph(adj, x.size(0), "GCNConv")
        out = adj @ linear(x, self.lin)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


class SAGEConv(nn.Module):
    r"""GraphSAGE layer with mean aggregation, from *Inductive Representation Learning on Large Graphs* (Hamilton,
    Ying & Leskovec, NeurIPS 2017):

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \cdot \mathrm{mean}_{j \in \mathcal{N}(i)}
        \mathbf{x}_j + \mathbf{b}

    (a node without incoming edges aggregates 0). Same parameters as PyG's ``SAGEConv(aggr="mean")``: ``lin_l``
    (neighbours, with the bias) and ``lin_r`` (root, no bias), PyTorch's default ``Linear`` initialisation. The
    neighbour projection is applied before the aggregation when that is cheaper (``out < in``): the mean is linear,
    so the result is the same.

    Args:
        in_channels (int): input features :math:`F`.
        out_channels (int): output features :math:`F'`.
        bias (bool): learn an additive bias. (default: ``True``)
        root_weight (bool): add the root term :math:`\mathbf{W}_1\mathbf{x}_i`. (default: ``True``)

    Shapes:
        ``x [N, F]``, ``graph`` ``edge_index [2, E]`` or ``prepare(...)`` → ``[N, F']``
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True, root_weight: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lin_l = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False) if root_weight else None

    def reset_parameters(self) -> None:
        self.lin_l.reset_parameters()
        if self.lin_r is not None:
            self.lin_r.reset_parameters()

    @staticmethod
    def prepare(edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
        """The raw adjacency this layer averages over (cached per ``edge_index``)."""
        return cached_adjacency(edge_index, num_nodes, normalization=None)

    def forward(self, x: Tensor, graph: Tensor | CSRAdjacency) -> Tensor:
        _check_x(x, self.in_channels, "SAGEConv")
        adj = graph if isinstance(graph, CSRAdjacency) else self.prepare(graph, x.size(0))
        _check_graph(adj, x.size(0), "SAGEConv")
        if self.out_channels < self.in_channels or is_sparse(x):
            out = adj.matmul(linear(x, self.lin_l, bias=False), reduce="mean")
            if self.lin_l.bias is not None:
                out = out + self.lin_l.bias
        else:
            out = self.lin_l(adj.matmul(x, reduce="mean"))
        if self.lin_r is not None:
            out = out + linear(x, self.lin_r)
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, aggr='mean'"


class GATConv(nn.Module):
    r"""Graph attention layer of *Graph Attention Networks* (Veličković et al., ICLR 2018):

    .. math::
        \alpha_{ij}^{h} = \mathrm{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}\Big(\mathrm{LeakyReLU}\big(
        \mathbf{a}_{\mathrm{dst}}^{h\top}\mathbf{W}^h\mathbf{x}_i + \mathbf{a}_{\mathrm{src}}^{h\top}
        \mathbf{W}^h\mathbf{x}_j\big)\Big),\qquad
        \mathbf{x}'_i = \big\Vert_{h=1}^{H} \sum_j \alpha_{ij}^h \mathbf{W}^h \mathbf{x}_j + \mathbf{b}

    (heads concatenated, or averaged with ``concat=False``), self-loops replaced by one per node. The per-edge
    scores are two gathers of per-node scalars (:func:`sciml.sparse.gather`) and a sorted segment softmax over the
    CSR rows (:func:`sciml.sparse.segment_softmax`); the aggregation is one weighted SpMM per head with the
    attention coefficients as edge values, so nothing larger than the ``[E, H]`` scores is materialised.
    Same parameters and initialisation as PyG's ``GATConv`` (``lin.weight`` ``[H*F', F]``, ``att_src``/``att_dst``
    ``[1, H, F']``, all Glorot; ``bias`` zeros). No attention dropout.

    Args:
        in_channels (int): input features :math:`F`.
        out_channels (int): features per head :math:`F'`.
        heads (int): attention heads :math:`H`. (default: ``1``)
        concat (bool): concatenate the heads (output ``H * F'``) or average them (output ``F'``). (default: ``True``)
        negative_slope (float): LeakyReLU slope. (default: ``0.2``)
        bias (bool): learn an additive bias. (default: ``True``)

    Shapes:
        ``x [N, F]``, ``graph`` ``edge_index [2, E]`` or ``prepare(...)`` → ``[N, H * F']`` (or ``[N, F']``)
    """

    def __init__(self, in_channels: int, out_channels: int, *, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, bias: bool = True) -> None:
        super().__init__()
        if heads < 1:
            raise ConfigError(f"GATConv: heads must be >= 1, got {heads}")
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope = concat, negative_slope
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.empty(heads * out_channels if concat else out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _glorot_(self.lin.weight)
        _glorot_(self.att_src)
        _glorot_(self.att_dst)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @staticmethod
    def prepare(edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
        """The adjacency with one self-loop per node that this layer attends over (cached per ``edge_index``)."""
        return self_loop_adjacency(edge_index, num_nodes)

    def attention(self, h: Tensor, adj: CSRAdjacency) -> Tensor:
        """Attention coefficients ``[E, H]`` in CSR edge order for projected features ``h`` ``[N, H, F']``."""
        score_src = (h * self.att_src).sum(-1)  # [N, H]
        score_dst = (h * self.att_dst).sum(-1)
        score = gather(score_dst, adj.row, validate=False) + gather(score_src, adj.col, validate=False)
        score = F.leaky_relu(score, self.negative_slope)
        return segment_softmax(score, ptr=adj.rowptr, validate=False)

    def forward(self, x: Tensor, graph: Tensor | CSRAdjacency) -> Tensor:
        _check_x(x, self.in_channels, "GATConv")
        adj = graph if isinstance(graph, CSRAdjacency) else self.prepare(graph, x.size(0))
        _check_graph(adj, x.size(0), "GATConv")
        n, heads, c = x.size(0), self.heads, self.out_channels
        h = linear(x, self.lin).view(n, heads, c)
        alpha = self.attention(h, adj)
        outs = [adj.with_value(alpha[:, k].contiguous()) @ h[:, k] for k in range(heads)]
        out = torch.cat(outs, dim=1) if self.concat else torch.stack(outs, dim=0).mean(dim=0)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}"


def make_conv(name: str, in_channels: int, out_channels: int, *, heads: int = 4,
              concat: bool = True) -> nn.Module:
    """Build ``"gcn"``, ``"sage"`` or ``"gat"`` (case-insensitive) mapping ``in_channels`` to ``out_channels``.

    For GAT with ``concat=True`` (ForwardGNN's hidden layers: 4 heads of ``out_channels / 4``), ``out_channels``
    must be divisible by ``heads``; with ``concat=False`` every head has ``out_channels`` features and they are
    averaged (PyG's ``GAT`` output layer).
    """
    key = name.lower()
    if key == "gcn":
        return GCNConv(in_channels, out_channels)
    if key == "sage":
        return SAGEConv(in_channels, out_channels)
    if key == "gat":
        if concat:
            if out_channels % heads:
                raise ConfigError(f"GAT: out_channels={out_channels} is not divisible by heads={heads}")
            return GATConv(in_channels, out_channels // heads, heads=heads, concat=True)
        return GATConv(in_channels, out_channels, heads=heads, concat=False)
    raise ConfigError(f"unknown convolution {name!r}; expected one of {', '.join(CONV_NAMES)}")
