"""Baseline models used as references by the models of the suite and by ``sciml demo``."""
from __future__ import annotations

import torch
from torch import nn

from sciml.errors import ConfigError
from sciml.gnn.graph import cached_adjacency
from sciml.sparse import CSRAdjacency


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


class GCN(_LayerStack):
    r"""Graph convolutional network.

    From *Semi-Supervised Classification with Graph Convolutional Networks* (Kipf & Welling, ICLR 2017):

    .. math::
        H^{(l+1)} = \sigma\big(\hat D^{-1/2} (A + I) \hat D^{-1/2} H^{(l)} W^{(l)}\big)

    Aggregation runs through :class:`sciml.sparse.CSRAdjacency` SpMM, built once per graph.

    Args:
        in_channels: input feature size.
        out_channels: output size (number of classes for node classification).
        hidden_channels: hidden feature size (default 64).
        num_layers: number of graph convolutions (default 2).
        dropout: dropout probability on the input of each layer (default 0.5).

    Shapes:
        ``x [N, in_channels]``, ``edge_index [2, E]`` or a prebuilt normalised ``CSRAdjacency`` ->
        ``[N, out_channels]``.
    """

    def forward(self, x: torch.Tensor, adj: torch.Tensor | CSRAdjacency) -> torch.Tensor:
        if not isinstance(adj, CSRAdjacency):
            adj = cached_adjacency(adj, x.size(0), normalization="gcn")
        for i, lin in enumerate(self.lins):
            x = adj @ lin(nn.functional.dropout(x, self.dropout, self.training))
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
    """

    def forward(self, x: torch.Tensor, adj: object = None) -> torch.Tensor:
        for i, lin in enumerate(self.lins):
            x = lin(nn.functional.dropout(x, self.dropout, self.training))
            if i < len(self.lins) - 1:
                x = x.relu()
        return x
