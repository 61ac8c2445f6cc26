r"""Deep Adaptive Graph Neural Network (DAGNN).

From *Towards Deeper Graph Neural Networks* (Meng Liu, Hongyang Gao, Shuiwang Ji, KDD 2020). See docs/dagnn.md.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.features import dropout, linear
from sciml.gnn.graph import GCN_NORM, cached_adjacency
from sciml.sparse import CSRAdjacency

__all__ = ["DAGNN"]


class DAGNN(nn.Module):
    r"""Deep Adaptive Graph Neural Network: a node-wise MLP to class logits, ``K`` parameter-free propagation
    steps, and a learned per-node, per-hop retainment score that mixes the ``K + 1`` representations.

    From *Towards Deeper Graph Neural Networks* (Liu, Gao, Ji, KDD 2020):

    .. math::
        \mathbf{Z} &= \mathrm{MLP}(\mathbf{X}) \in \mathbb{R}^{n \times C}, \qquad
        \mathbf{H}_\ell = \hat{\mathbf{A}}^{\ell}\mathbf{Z},\ \ell = 0..K,\qquad
        \hat{\mathbf{A}} = \tilde{\mathbf{D}}^{-1/2}(\mathbf{A}+\mathbf{I})\tilde{\mathbf{D}}^{-1/2} \\
        \mathbf{S} &= \sigma(\mathbf{H}\mathbf{s} + b) \in \mathbb{R}^{n \times (K+1)},\qquad
        \mathbf{X}_{\text{out}} = \mathrm{log\_softmax}\Big(\textstyle\sum_{\ell=0}^{K} \mathbf{S}_{:,\ell}
        \odot \mathbf{H}_\ell\Big)

    The MLP is :math:`\mathbf{W}_2\,\mathrm{dropout}(\mathrm{ReLU}(\mathbf{W}_1\,\mathrm{dropout}(\mathbf{X})
    + b_1)) + b_2` (ogbn-arxiv variant: :math:`\mathbf{W}_2\,\mathrm{dropout}(\mathrm{ReLU}(\mathrm{BN}(
    \mathbf{W}_1\mathbf{X} + b_1))) + b_2`, no input dropout). Propagation acts on the ``C``-dimensional logits
    through :class:`sciml.sparse.CSRAdjacency` SpMM (no per-edge message tensors), with self-loops added only where
    missing (:func:`sciml.gnn.graph.gcn_adjacency`, as the official code); the adjacency is built once per graph
    and cached. The retainment projection :math:`\mathbf{s} \in \mathbb{R}^C` and its scalar bias :math:`b` (the
    official code's ``Linear(C, 1)``; the paper writes :math:`\sigma(\mathbf{H}\mathbf{s})`) are shared over hops
    and nodes; the scores go through a sigmoid, not a softmax, so they need not sum to 1.

    ``x`` may be a torch sparse COO/CSR tensor (bag-of-words features): the first layer then runs on the stored
    entries only (:func:`sciml.gnn.features.linear`).

    Args:
        in_channels (int): input feature size ``F``.
        out_channels (int): number of classes ``C``.
        hidden_channels (int): hidden size of the MLP. (default: ``64``)
        K (int): number of propagation steps (``K >= 0``). (default: ``10``)
        dropout (float): dropout probability on the hidden layer (and on the input, see ``input_dropout``).
            (default: ``0.5``)
        batch_norm (bool): batch normalisation after the first linear layer (the ogbn-arxiv variant).
            (default: ``False``)
        input_dropout (float, optional): dropout on the input features; :obj:`None` means ``dropout`` without
            batch norm and ``0`` with it (the ogbn-arxiv variant has no input dropout). (default: :obj:`None`)

    Shapes:
        ``x [N, F]`` (dense or sparse), ``edge_index [2, E]`` or a prebuilt normalised ``CSRAdjacency`` ``[N, N]``
        -> log-probabilities ``[N, C]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, hidden_channels: int = 64, K: int = 10,
                 dropout: float = 0.5, batch_norm: bool = False, input_dropout: float | None = None) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", hidden_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"DAGNN: {name} must be a positive integer, got {v!r}")
        if not isinstance(K, int) or isinstance(K, bool) or K < 0:
            raise ConfigError(f"DAGNN: K must be an integer >= 0, got {K!r}")
        if input_dropout is None:
            input_dropout = 0.0 if batch_norm else dropout
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ConfigError(f"DAGNN: {name} must be in [0, 1), got {p}")
        self.K, self.dropout, self.input_dropout = K, float(dropout), float(input_dropout)
        self.lin1 = nn.Linear(in_channels, hidden_channels)
        self.bn = nn.BatchNorm1d(hidden_channels) if batch_norm else None
        self.lin2 = nn.Linear(hidden_channels, out_channels)
        self.proj = nn.Linear(out_channels, 1)  # retainment scores s (and the bias b), shared over hops

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (and the batch-norm statistics)."""
        self.lin1.reset_parameters()
        if self.bn is not None:
            self.bn.reset_parameters()
        self.lin2.reset_parameters()
        self.proj.reset_parameters()

    def transform(self, x: Tensor) -> Tensor:
        """The node-wise MLP: input features ``[N, F]`` -> logits ``Z [N, C]``."""
        h = linear(x, self.lin1, dropout=self.input_dropout, training=self.training)
        if self.bn is not None:
            h = self.bn(h)
        h = dropout(h.relu(), self.dropout, self.training)
        return self.lin2(h)

    def propagate(self, z: Tensor, adj: CSRAdjacency) -> tuple[Tensor, Tensor]:
        """``K`` hops of ``adj`` from ``z [N, C]`` and the adaptive combination.

        Returns:
            the combined representation ``[N, C]`` (before the log-softmax) and the retainment scores
            ``[N, K + 1]``.
        """
        hops = [z]
        h = z
        for _ in range(self.K):
            h = adj @ h
            hops.append(h)
        stack = torch.stack(hops, dim=1)                      # [N, K+1, C]
        scores = torch.sigmoid(self.proj(stack))              # [N, K+1, 1]
        out = (scores * stack).sum(dim=1)                     # [N, C]
        return out, scores.reshape(stack.size(0), stack.size(1))

    def adjacency(self, x: Tensor, adj: Tensor | CSRAdjacency) -> CSRAdjacency:
        """The normalised adjacency for ``adj`` (an ``edge_index``, cached per graph) or ``adj`` itself."""
        if isinstance(adj, CSRAdjacency):
            if adj.shape != (x.size(0), x.size(0)):
                raise ShapeError(f"DAGNN: the adjacency has shape {adj.shape} but x has {x.size(0)} nodes")
            return adj
        return cached_adjacency(adj, x.size(0), normalization=GCN_NORM)

    def forward(self, x: Tensor, adj: Tensor | CSRAdjacency) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.lin1.in_features:
            raise ShapeError(f"DAGNN: x must be [num_nodes, {self.lin1.in_features}], got {tuple(x.shape)}")
        out, _ = self.propagate(self.transform(x), self.adjacency(x, adj))
        return F.log_softmax(out, dim=-1)

    @torch.no_grad()
    def retainment_scores(self, x: Tensor, adj: Tensor | CSRAdjacency) -> Tensor:
        """The retainment scores ``S [N, K + 1]`` of every node and hop (in the current train/eval mode)."""
        return self.propagate(self.transform(x), self.adjacency(x, adj))[1]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.lin1.in_features}, {self.lin2.out_features}, "
                f"hidden_channels={self.lin1.out_features}, K={self.K}, dropout={self.dropout}, "
                f"input_dropout={self.input_dropout}, batch_norm={self.bn is not None})")
