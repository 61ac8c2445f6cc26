"""Baseline models used as references by the models of the suite and by ``sciml demo``: MLP, GCN, APPNP, SGC.

Every model takes dense or sparse (torch COO/CSR) node features (:mod:`sciml.gnn.features`) and propagates with
the GCN-normalised adjacency as PyG's ``gcn_norm`` builds it (self-loops added only where missing,
:func:`sciml.gnn.graph.gcn_adjacency`), through :class:`sciml.sparse.CSRAdjacency` SpMM, built once per graph.
"""
from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.features import is_sparse, linear
from sciml.gnn.graph import GCN_NORM, cached_adjacency
from sciml.sparse import CSRAdjacency

__all__ = ["MLP", "GCN", "APPNP", "SGC"]


def _adjacency(x: Tensor, adj: Tensor | CSRAdjacency, model: str) -> CSRAdjacency:
    """The propagation matrix: ``adj`` itself if prebuilt, else the cached :data:`GCN_NORM` adjacency."""
    if isinstance(adj, CSRAdjacency):
        if adj.shape != (x.size(0), x.size(0)):
            raise ShapeError(f"{model}: the adjacency has shape {adj.shape} but x has {x.size(0)} nodes")
        return adj
    if adj is None:
        raise ShapeError(f"{model}: needs a graph (edge_index [2, E] or a CSRAdjacency), got None")
    return cached_adjacency(adj, x.size(0), normalization=GCN_NORM)


class _LayerStack(nn.Module):
    """``num_layers`` linear maps ``in -> hidden -> ... -> out`` with input dropout; subclasses define the forward."""

    def __init__(self, in_channels: int, out_channels: int, *, hidden_channels: int = 64, num_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"{type(self).__name__}: num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = dropout

    def reset_parameters(self) -> None:
        """Re-initialise every linear layer."""
        for lin in self.lins:
            lin.reset_parameters()

    def layer(self, i: int, x: Tensor) -> Tensor:
        """Linear layer ``i`` with dropout on its input (``x`` dense or, for the first layer, sparse)."""
        return linear(x, self.lins[i], dropout=self.dropout, training=self.training)

    def mlp(self, x: Tensor) -> Tensor:
        """All layers as a node-wise MLP (ReLU between layers, none after the last)."""
        for i in range(len(self.lins)):
            x = self.layer(i, x)
            if i < len(self.lins) - 1:
                x = x.relu()
        return x


class GCN(_LayerStack):
    r"""Graph convolutional network.

    From *Semi-Supervised Classification with Graph Convolutional Networks* (Kipf & Welling, ICLR 2017):

    .. math::
        H^{(l+1)} = \sigma\big(\hat D^{-1/2} (A + I) \hat D^{-1/2} H^{(l)} W^{(l)} + b^{(l)}\big)

    Aggregation runs through :class:`sciml.sparse.CSRAdjacency` SpMM, built once per graph, with self-loops added
    only where missing (as PyG's ``GCNConv``). Dropout acts on the input of every layer, as in the paper's code.

    Args:
        in_channels: input feature size.
        out_channels: output size (number of classes for node classification).
        hidden_channels: hidden feature size (default 64).
        num_layers: number of graph convolutions (default 2).
        dropout: dropout probability on the input of each layer (default 0.5).

    Shapes:
        ``x [N, in_channels]`` (dense or sparse), ``edge_index [2, E]`` or a prebuilt normalised
        ``CSRAdjacency`` -> logits ``[N, out_channels]``.
    """

    def forward(self, x: torch.Tensor, adj: torch.Tensor | CSRAdjacency) -> torch.Tensor:
        a = _adjacency(x, adj, "GCN")
        for i, lin in enumerate(self.lins):
            # bias after the aggregation, as Kipf & Welling and PyG's GCNConv: A (X W^T) + b
            x = a @ linear(x, lin, dropout=self.dropout, training=self.training, bias=False) + lin.bias
            if i < len(self.lins) - 1:
                x = x.relu()
        return x


class MLP(_LayerStack):
    r"""A multi-layer perceptron on node features alone: the graph-free reference every GNN must beat.

    Same constructor and call as :class:`GCN` (the graph argument is accepted and ignored), so tasks and configs
    can swap the two.

    Args:
        in_channels: input feature size.
        out_channels: output size.
        hidden_channels: hidden feature size (default 64).
        num_layers: number of linear layers (default 2).
        dropout: dropout probability on the input of each layer (default 0.5).

    Shapes:
        ``x [N, in_channels]`` (dense or sparse) -> logits ``[N, out_channels]``.
    """

    def forward(self, x: torch.Tensor, adj: object = None) -> torch.Tensor:
        return self.mlp(x)


class APPNP(_LayerStack):
    r"""Approximate personalized propagation of neural predictions: an MLP to class logits, then ``K`` steps of
    personalised PageRank.

    From *Predict then Propagate: Graph Neural Networks meet Personalized PageRank* (Klicpera, Bojchevski,
    Günnemann, ICLR 2019):

    .. math::
        \mathbf{Z} = \mathrm{MLP}(\mathbf{X}),\qquad \mathbf{H}^{(0)} = \mathbf{Z},\qquad
        \mathbf{H}^{(k+1)} = (1-\alpha)\,\hat{\mathbf{A}}\mathbf{H}^{(k)} + \alpha\,\mathbf{Z},\qquad
        \text{output } \mathbf{H}^{(K)}

    with :math:`\hat{\mathbf{A}}` the GCN-normalised adjacency (self-loops added where missing). Dropout on the input
    of every MLP layer (PyG's ``benchmark/citation/appnp.py``); no dropout on the adjacency.

    Args:
        in_channels: input feature size.
        out_channels: number of classes.
        hidden_channels: hidden size of the MLP (default 64).
        num_layers: linear layers of the MLP (default 2).
        dropout: dropout probability on the input of each MLP layer (default 0.5).
        K: power-iteration steps (default 10).
        alpha: teleport probability :math:`\alpha \in [0, 1]` (default 0.1).

    Shapes:
        ``x [N, in_channels]`` (dense or sparse), ``edge_index [2, E]`` or a prebuilt normalised
        ``CSRAdjacency`` -> logits ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, hidden_channels: int = 64, num_layers: int = 2,
                 dropout: float = 0.5, K: int = 10, alpha: float = 0.1) -> None:
        super().__init__(in_channels, out_channels, hidden_channels=hidden_channels, num_layers=num_layers,
                         dropout=dropout)
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ConfigError(f"APPNP: K must be an integer >= 0, got {K!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"APPNP: alpha must be in [0, 1], got {alpha}")
        self.K, self.alpha = K, float(alpha)

    def forward(self, x: torch.Tensor, adj: torch.Tensor | CSRAdjacency) -> torch.Tensor:
        a = _adjacency(x, adj, "APPNP")
        z = self.mlp(x)
        h = z
        for _ in range(self.K):
            h = (1.0 - self.alpha) * (a @ h) + self.alpha * z
        return h


_PROPAGATED: dict[tuple, Tensor] = {}


def propagated_features(x: Tensor, adj: CSRAdjacency, K: int, *, graph: Tensor | None = None) -> Tensor:
    r""":math:`\hat{\mathbf{A}}^K \mathbf{X}` as a dense ``[N, F]`` tensor.

    With ``graph`` (the ``edge_index`` that ``adj`` was built from) the result is cached while both ``x`` and
    ``graph`` live, keyed on their identities (and ``x``'s version), unless something requires grad.

    Args:
        x: ``[N, F]`` features, dense or sparse (densified).
        adj: the ``[N, N]`` propagation matrix.
        K: number of products.
        graph: the tensor identifying the graph, for the cache; :obj:`None` disables the cache.
    """
    cacheable = graph is not None and not x.requires_grad and not (adj.value is not None
                                                                    and adj.value.requires_grad)
    key = (id(x), x._version, id(graph), K)
    if cacheable:
        hit = _PROPAGATED.get(key)
        if hit is not None:
            return hit
    h = x.to_dense() if is_sparse(x) else x
    for _ in range(K):
        h = adj @ h
    if cacheable:
        _PROPAGATED[key] = h
        for owner in (x, graph):
            weakref.finalize(owner, _PROPAGATED.pop, key, None)
    return h


class SGC(nn.Module):
    r"""Simple graph convolution: ``K`` parameter-free propagation steps of the features, then one linear layer.

    From *Simplifying Graph Convolutional Networks* (Wu, Souza, Zhang, Fifty, Yu, Weinberger, ICML 2019):

    .. math::
        \mathbf{Y} = \hat{\mathbf{A}}^K \mathbf{X}\,\mathbf{W}^\top + \mathbf{b}

    with :math:`\hat{\mathbf{A}}` the GCN-normalised adjacency (self-loops added where missing). For dense ``x``,
    :math:`\hat{\mathbf{A}}^K\mathbf{X}` is computed once per graph and feature tensor and cached (PyG's
    ``SGConv(cached=True)``); every step is then one linear layer. For sparse ``x`` (wide bag-of-words features,
    where :math:`\hat{\mathbf{A}}^K\mathbf{X}` would be a dense ``[N, F]``) the same function is evaluated in the
    other order, :math:`\hat{\mathbf{A}}^K(\mathbf{X}\mathbf{W}^\top) + \mathbf{b}`: ``K`` products on
    ``[N, C]`` per step. ``precompute`` chooses explicitly. SGC has no dropout.

    Args:
        in_channels: input feature size.
        out_channels: number of classes.
        K: propagation steps (default 2).
        precompute: cache :math:`\hat{\mathbf{A}}^K\mathbf{X}` (``True``), propagate the logits instead
            (``False``), or decide by the layout of ``x`` (:obj:`None`: precompute for dense ``x``).

    Shapes:
        ``x [N, in_channels]`` (dense or sparse), ``edge_index [2, E]`` or a prebuilt normalised
        ``CSRAdjacency`` -> logits ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, K: int = 2, precompute: bool | None = None) -> None:
        super().__init__()
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ConfigError(f"SGC: K must be an integer >= 0, got {K!r}")
        self.K, self.precompute = K, precompute
        self.lin = nn.Linear(in_channels, out_channels)

    def reset_parameters(self) -> None:
        """Re-initialise the linear layer."""
        self.lin.reset_parameters()

    def forward(self, x: torch.Tensor, adj: torch.Tensor | CSRAdjacency) -> torch.Tensor:
        a = _adjacency(x, adj, "SGC")
        precompute = (not is_sparse(x)) if self.precompute is None else self.precompute
        if precompute:
            h = propagated_features(x, a, self.K, graph=None if isinstance(adj, CSRAdjacency) else adj)
            return self.lin(h)
        h = linear(x, self.lin, bias=False)
        for _ in range(self.K):
            h = a @ h
        return h + self.lin.bias
