r"""Rayleigh Quotient Graph Neural Network (RQGNN) for graph-level anomaly detection.

From *Rayleigh Quotient Graph Neural Networks for Graph-level Anomaly Detection* (Xiangyu Dong, Xingyi Zhang,
Sibo Wang, ICLR 2024). Two branches read a graph :math:`G` with node features :math:`\mathbf{X}` and normalised
Laplacian :math:`\mathbf{L} = \mathbf{I} - \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}`:

* **Rayleigh-quotient learning (RQL)**: the per-channel vector
  :math:`\mathbf{r}_G = \mathrm{diag}(\mathbf{X}^\top\mathbf{L}\mathbf{X}) \in \mathbb{R}^F` (the official code's
  numerator form; the paper's quotient :math:`\mathbf{x}^\top\mathbf{L}\mathbf{x} / \mathbf{x}^\top\mathbf{x}`
  with ``rayleigh="quotient"``) goes through a small MLP.
* **CWGNN-RQ**: a bank of ``width`` Chebyshev filters of ``depth`` terms on the (batched) Laplacian, concatenated,
  an MLP, then **RQ-pooling**: node :math:`v` of :math:`G` gets the weight :math:`a_v = \langle \mathbf{h}_v,
  \mathbf{t}_G\rangle` with :math:`\mathbf{t}_G = \mathrm{MLP}(\mathbf{r}_G)`, and
  :math:`\mathbf{z}_G = \sum_v a_v \mathbf{h}_v`.

The two graph vectors are concatenated, batch-normalised, dropped out and mapped to two logits (normal, anomaly).
Everything graph-shaped goes through :mod:`sciml.sparse`: the Laplacian is a :class:`~sciml.sparse.CSRAdjacency`
(block-diagonal for a batch of graphs), Chebyshev terms are SpMMs, pooling is a segment sum. See docs/rqgnn.md.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.sparse import CSRAdjacency, ptr_to_index, segment_reduce, segment_softmax

__all__ = ["RQGNN", "ChebyshevFilterBank", "RQPooling", "rayleigh_quotient", "normalized_laplacian",
           "FILTER_MODES", "RAYLEIGH_MODES"]

#: ``filters`` of :class:`ChebyshevFilterBank` / :class:`RQGNN`.
FILTER_MODES = ("trainable", "frozen_random")
#: ``rayleigh`` of :class:`RQGNN` and ``quotient`` choices of :func:`rayleigh_quotient`.
RAYLEIGH_MODES = ("numerator", "quotient")


def normalized_laplacian(adj: CSRAdjacency, *, isolated_diagonal: float = 1.0) -> CSRAdjacency:
    r"""The symmetric normalised Laplacian :math:`\mathbf{I} - \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` of a
    (batched) adjacency, as a CSR matrix with the same block structure.

    Args:
        adj (CSRAdjacency): the (symmetric) adjacency; a batch adjacency keeps its ``graph_ptr``.
        isolated_diagonal (float): the diagonal entry of a node without edges. ``1.0`` is the
            :math:`\mathbf{I} - \ldots` definition (PyG's ``get_laplacian``, what ``ChebConv`` uses); ``0.0`` is
            scipy's ``csgraph.laplacian(normed=True)``, which the official RQGNN code uses for the Rayleigh
            quotient. (default: ``1.0``)
    """
    lap = adj.normalized("sym_laplacian")
    if isolated_diagonal == 1.0:
        return lap
    deg = adj.in_degree(lap.value.dtype)
    diag = lap.row == lap.col
    isolated = diag & (deg.index_select(0, lap.row) == 0)
    value = torch.where(isolated, torch.full_like(lap.value, float(isolated_diagonal)), lap.value)
    return lap.with_value(value)


def _check_graph_ptr(graph_ptr: Tensor, num_nodes: int, who: str) -> None:
    if graph_ptr.dim() != 1 or graph_ptr.numel() < 1 or int(graph_ptr[-1]) != num_nodes or int(graph_ptr[0]) != 0:
        raise ShapeError(f"{who}: `graph_ptr` must be a node pointer [num_graphs + 1] from 0 to num_nodes="
                         f"{num_nodes}, got shape {tuple(graph_ptr.shape)} ending at "
                         f"{int(graph_ptr[-1]) if graph_ptr.numel() else None}")


def rayleigh_quotient(x: Tensor, laplacian: CSRAdjacency, graph_ptr: Tensor, *, quotient: bool = False,
                      eps: float = 0.0) -> Tensor:
    r"""Per graph and feature channel, :math:`\mathbf{x}^\top\mathbf{L}\mathbf{x}` (or the quotient
    :math:`\mathbf{x}^\top\mathbf{L}\mathbf{x} / \mathbf{x}^\top\mathbf{x}`).

    .. math::
        r_{G,c} = \sum_{v \in G} x_{v,c}\,(\mathbf{L}\mathbf{x}_{:,c})_v

    computed as one SpMM and one segment sum, for all graphs of a batch at once (the block-diagonal ``laplacian``
    never mixes two graphs).

    Args:
        x (Tensor): node features ``[N, F]``.
        laplacian (CSRAdjacency): ``[N, N]`` block-diagonal Laplacian (e.g. :func:`normalized_laplacian`).
        graph_ptr (Tensor): node pointer ``[G + 1]`` of the graphs.
        quotient (bool): divide by :math:`\mathbf{x}^\top\mathbf{x}` (a channel that is zero on the whole graph
            gives 0). (default: :obj:`False`, the official code's numerator)
        eps (float): added to the denominator of the quotient. (default: ``0.0``)

    Returns:
        Tensor: ``[G, F]``.
    """
    if x.dim() != 2:
        raise ShapeError(f"rayleigh_quotient: `x` must have shape [num_nodes, channels], got {tuple(x.shape)}")
    if laplacian.shape != (x.size(0), x.size(0)):
        raise ShapeError(f"rayleigh_quotient: the Laplacian has shape {laplacian.shape}, expected "
                         f"({x.size(0)}, {x.size(0)}) for x with {x.size(0)} nodes")
    _check_graph_ptr(graph_ptr, x.size(0), "rayleigh_quotient")
    num = segment_reduce(x * (laplacian @ x), graph_ptr, "sum", validate=False)
    if not quotient:
        return num
    den = segment_reduce(x * x, graph_ptr, "sum", validate=False) + eps
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def _glorot_(t: Tensor) -> None:
    """PyG's ``glorot`` on the last two dimensions: uniform in :math:`\\pm\\sqrt{6/(\\text{fan}_\\text{in} +
    \\text{fan}_\\text{out})}`."""
    a = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    with torch.no_grad():
        t.uniform_(-a, a)


class ChebyshevFilterBank(nn.Module):
    r"""``num_filters`` Chebyshev spectral filters with ``K`` terms each, applied to the same input and
    concatenated (the "CWGNN" of RQGNN; each filter is a PyG ``ChebConv(in, out, K)``).

    .. math::
        \mathbf{H}^{(j)} = \sum_{k=0}^{K-1} T_k(\hat{\mathbf{L}})\,\mathbf{X}\,\mathbf{\Theta}^{(j)}_k
        + \mathbf{b}^{(j)}, \qquad \hat{\mathbf{L}} = \frac{2}{\lambda_{\max}}\mathbf{L} - \mathbf{I},
        \qquad \text{out} = [\mathbf{H}^{(1)} \,\|\, \cdots \,\|\, \mathbf{H}^{(q)}]

    with :math:`T_0 \mathbf{X} = \mathbf{X}`, :math:`T_1\mathbf{X} = \hat{\mathbf{L}}\mathbf{X}`,
    :math:`T_k\mathbf{X} = 2\hat{\mathbf{L}}\,T_{k-1}\mathbf{X} - T_{k-2}\mathbf{X}`. The ``K - 1`` SpMMs are
    shared by all filters (they depend only on the input), and the ``q`` filters are one matrix product of the
    stacked terms ``[N, K·in]`` with the weights ``[K·in, q·out]``.

    With ``lambda_max=2`` and the normalised Laplacian this is PyG's ``ChebConv(normalization="sym")``;
    ``weight[j, k]`` is ``ChebConv_j.lins[k].weight.T`` and ``bias[j]`` its bias (same Glorot / zero
    initialisation).

    Args:
        in_channels (int): input features :math:`F`.
        out_channels (int): output features of each filter :math:`F'`.
        num_filters (int): filters in the bank :math:`q` (RQGNN's ``width``). (default: ``4``)
        K (int): Chebyshev terms :math:`K` (polynomial order ``K - 1``; RQGNN's ``depth``). (default: ``6``)
        lambda_max (float): the spectrum bound used to rescale the Laplacian. (default: ``2.0``)
        bias (bool): add a bias per filter. (default: :obj:`True`)
        filters (str): ``"trainable"`` (parameters) or ``"frozen_random"``: the random initial weights are
            kept fixed (registered as buffers: saved and moved with the module, never optimised). The official
            RQGNN code keeps its ``ChebConv`` layers in a plain Python list, so its optimiser never sees them:
            ``"frozen_random"`` is that code's effective behaviour. (default: ``"trainable"``)

    Shapes:
        ``x [N, in]``, ``laplacian`` :class:`~sciml.sparse.CSRAdjacency` ``[N, N]`` → ``[N, num_filters·out]``
    """

    def __init__(self, in_channels: int, out_channels: int, *, num_filters: int = 4, K: int = 6,
                 lambda_max: float = 2.0, bias: bool = True, filters: str = "trainable") -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("num_filters", num_filters),
                        ("K", K)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"ChebyshevFilterBank: `{name}` must be a positive integer, got {v!r}")
        if filters not in FILTER_MODES:
            raise ConfigError(f"ChebyshevFilterBank: `filters` must be one of {FILTER_MODES}, got {filters!r}")
        if not lambda_max > 0:
            raise ConfigError(f"ChebyshevFilterBank: `lambda_max` must be positive, got {lambda_max!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_filters, self.K, self.lambda_max, self.filters = num_filters, K, float(lambda_max), filters
        weight = torch.empty(num_filters, K, in_channels, out_channels)
        b = torch.zeros(num_filters, out_channels) if bias else None
        if filters == "trainable":
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", b)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights per (filter, term), as PyG's ``ChebConv``; zero bias."""
        for j in range(self.num_filters):
            for k in range(self.K):
                _glorot_(self.weight.data[j, k].T)
        if self.bias is not None:
            self.bias.data.zero_()

    def terms(self, x: Tensor, laplacian: CSRAdjacency) -> Tensor:
        r"""The stacked Chebyshev terms :math:`[T_0\mathbf{X} \| \cdots \| T_{K-1}\mathbf{X}]`, ``[N, K·in]``."""
        scale = 2.0 / self.lambda_max
        shift = scale != 1.0

        def lhat(h: Tensor) -> Tensor:
            lh = laplacian @ h
            return (scale * lh - h) if shift else lh - h

        out = [x]
        if self.K > 1:
            out.append(lhat(x))
        for _ in range(2, self.K):
            out.append(2.0 * lhat(out[-1]) - out[-2])
        return torch.cat(out, dim=1)

    def forward(self, x: Tensor, laplacian: CSRAdjacency) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ShapeError(f"ChebyshevFilterBank: `x` must have shape [num_nodes, in_channels={self.in_channels}]"
                             f", got {tuple(x.shape)}")
        if laplacian.shape != (x.size(0), x.size(0)):
            raise ShapeError(f"ChebyshevFilterBank: the Laplacian has shape {laplacian.shape}, expected "
                             f"({x.size(0)}, {x.size(0)})")
        t = self.terms(x, laplacian)
        w = self.weight.permute(1, 2, 0, 3).reshape(self.K * self.in_channels, self.num_filters * self.out_channels)
        out = t @ w
        return out + self.bias.reshape(-1) if self.bias is not None else out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_filters={self.num_filters}, K={self.K}, "
                f"lambda_max={self.lambda_max}, filters={self.filters!r}")


class RQPooling(nn.Module):
    r"""RQ-pooling: node weights from the graph's Rayleigh-quotient embedding.

    .. math::
        \mathbf{t}_G = \sigma(\mathbf{W}_2\,\sigma(\mathbf{W}_1\mathbf{r}_G)),\qquad
        a_v = \langle \mathbf{h}_v, \mathbf{t}_G \rangle,\qquad
        \mathbf{z}_G = \sum_{v\in G} a_v\,\mathbf{h}_v

    (:math:`\sigma` = LeakyReLU). ``score="dot"`` uses the raw dot products as in the official code (they may be
    negative and are not normalised; the batch norm after pooling absorbs their scale); ``score="softmax"``
    normalises them over each graph's nodes (an attention-pooling variant, not the official one).

    Args:
        rq_channels (int): size of :math:`\mathbf{r}_G`.
        channels (int): size of the node embeddings :math:`\mathbf{h}_v`.
        score (str): ``"dot"`` or ``"softmax"``. (default: ``"dot"``)
        negative_slope (float): LeakyReLU slope. (default: ``0.01``)
    """

    def __init__(self, rq_channels: int, channels: int, *, score: str = "dot", negative_slope: float = 0.01) -> None:
        super().__init__()
        if score not in ("dot", "softmax"):
            raise ConfigError(f"RQPooling: `score` must be 'dot' or 'softmax', got {score!r}")
        self.score, self.negative_slope = score, negative_slope
        self.lin1 = nn.Linear(rq_channels, channels)
        self.lin2 = nn.Linear(channels, channels)

    def forward(self, h: Tensor, rq: Tensor, graph_ptr: Tensor) -> Tensor:
        act = lambda t: F.leaky_relu(t, self.negative_slope)  # noqa: E731
        t = act(self.lin2(act(self.lin1(rq))))
        node_graph = ptr_to_index(graph_ptr, h.size(0))
        a = (h * t.index_select(0, node_graph)).sum(dim=1, keepdim=True)
        if self.score == "softmax":
            a = segment_softmax(a, ptr=graph_ptr, validate=False)
        return segment_reduce(a * h, graph_ptr, "sum", validate=False)


class RQGNN(nn.Module):
    r"""Rayleigh Quotient Graph Neural Network (Dong, Zhang, Wang, ICLR 2024) for graph-level anomaly
    detection; returns two logits per graph (normal, anomaly).

    As the official ``GADGNN`` (with :math:`\sigma` = LeakyReLU(0.01), :math:`F` input channels, :math:`d` =
    ``hidden_channels``):

    1. node MLP :math:`\mathbf{H}^0 = \sigma(\mathbf{W}_2\sigma(\mathbf{W}_1\mathbf{X}))` (:math:`F \to F \to F`);
    2. :class:`ChebyshevFilterBank` with ``width`` filters of ``depth`` terms (:math:`F \to q F`), then
       :math:`\sigma(\mathbf{W}_4\sigma(\mathbf{W}_3\,\cdot))` (:math:`qF \to d \to d`): node embeddings;
    3. :class:`RQPooling` with the graph's Rayleigh vector :math:`\mathbf{r}_G`: :math:`\mathbf{z}_G`;
    4. RQL: :math:`\mathbf{u}_G = \sigma(\mathbf{W}_6\mathbf{W}_5\mathbf{r}_G)` (:math:`F \to d \to d`);
    5. :math:`\mathrm{Linear}(\mathrm{dropout}(\mathrm{BN}([\mathbf{z}_G \| \mathbf{u}_G])))` (:math:`2d \to`
       ``out_channels``).

    Args:
        in_channels (int): node feature size :math:`F`.
        hidden_channels (int): :math:`d`. (default: ``64``)
        out_channels (int): logits per graph. (default: ``2``)
        width (int): Chebyshev filters :math:`q`. (default: ``4``)
        depth (int): Chebyshev terms :math:`K` per filter. (default: ``6``)
        dropout (float): dropout before the output layer. (default: ``0.4``)
        batch_norm (bool): batch norm on the concatenated graph vector. (default: :obj:`True`)
        filters (str): ``"trainable"`` or ``"frozen_random"`` (the official code's effective behaviour, see
            :class:`ChebyshevFilterBank`). (default: ``"trainable"``)
        rayleigh (str): ``"numerator"`` (:math:`\mathbf{x}^\top\mathbf{L}\mathbf{x}`, the official code) or
            ``"quotient"`` (divided by :math:`\mathbf{x}^\top\mathbf{x}`, the paper's definition).
            (default: ``"numerator"``)
        pooling_score (str): ``"dot"`` (official) or ``"softmax"``, see :class:`RQPooling`. (default: ``"dot"``)
        lambda_max (float): Chebyshev rescaling bound. (default: ``2.0``)
        negative_slope (float): LeakyReLU slope. (default: ``0.01``)

    Call ``model(x, laplacian, graph_ptr, rq=None)``: ``x [N, F]``, ``laplacian`` the block-diagonal
    normalised Laplacian of the batch (:class:`~sciml.sparse.CSRAdjacency`), ``graph_ptr [G + 1]``, and ``rq
    [G, F]`` the precomputed numerators :math:`\mathrm{diag}(\mathbf{X}^\top\mathbf{L}\mathbf{X})` (computed from
    ``x`` and ``laplacian`` when :obj:`None`; :class:`sciml.gnn.graph_anomaly.PackedGraphs` computes them once
    per dataset). Returns ``[G, out_channels]``.
    """

    #: the batch fields the model is called with (see :class:`sciml.gnn.graph_anomaly.GraphAnomalyTask`)
    input_keys = ("x", "laplacian", "graph_ptr", "rq")

    def __init__(self, in_channels: int, hidden_channels: int = 64, out_channels: int = 2, *, width: int = 4,
                 depth: int = 6, dropout: float = 0.4, batch_norm: bool = True, filters: str = "trainable",
                 rayleigh: str = "numerator", pooling_score: str = "dot", lambda_max: float = 2.0,
                 negative_slope: float = 0.01) -> None:
        super().__init__()
        if rayleigh not in RAYLEIGH_MODES:
            raise ConfigError(f"RQGNN: `rayleigh` must be one of {RAYLEIGH_MODES}, got {rayleigh!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"RQGNN: `dropout` must be in [0, 1), got {dropout!r}")
        for name, v in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                        ("out_channels", out_channels)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"RQGNN: `{name}` must be a positive integer, got {v!r}")
        f, d = in_channels, hidden_channels
        self.in_channels, self.hidden_channels, self.out_channels = f, d, out_channels
        self.rayleigh, self.negative_slope = rayleigh, negative_slope
        self.lin1, self.lin2 = nn.Linear(f, f), nn.Linear(f, f)
        self.cheb = ChebyshevFilterBank(f, f, num_filters=width, K=depth, lambda_max=lambda_max, filters=filters)
        self.lin3, self.lin4 = nn.Linear(width * f, d), nn.Linear(d, d)
        self.pool = RQPooling(f, d, score=pooling_score, negative_slope=negative_slope)
        self.rql1, self.rql2 = nn.Linear(f, d), nn.Linear(d, d)
        self.norm = nn.BatchNorm1d(2 * d) if batch_norm else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * d, out_channels)

    def _act(self, t: Tensor) -> Tensor:
        return F.leaky_relu(t, self.negative_slope)

    def graph_rq(self, x: Tensor, laplacian: CSRAdjacency, graph_ptr: Tensor, rq: Tensor | None) -> Tensor:
        """The Rayleigh vector the model uses: ``rq`` (numerators) or computed, divided by
        :math:`\\mathbf{x}^\\top\\mathbf{x}` for ``rayleigh="quotient"``."""
        if rq is None:
            return rayleigh_quotient(x, laplacian, graph_ptr, quotient=self.rayleigh == "quotient")
        if rq.shape != (graph_ptr.numel() - 1, self.in_channels):
            raise ShapeError(f"RQGNN: `rq` must have shape [num_graphs={graph_ptr.numel() - 1}, in_channels="
                             f"{self.in_channels}], got {tuple(rq.shape)}")
        if self.rayleigh == "quotient":
            den = segment_reduce(x * x, graph_ptr, "sum", validate=False)
            rq = torch.where(den > 0, rq / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(rq))
        return rq

    def embed(self, x: Tensor, laplacian: CSRAdjacency, graph_ptr: Tensor, rq: Tensor | None = None) -> Tensor:
        """The graph vectors :math:`[\\mathbf{z}_G \\| \\mathbf{u}_G]` ``[G, 2d]`` before batch norm."""
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ShapeError(f"RQGNN: `x` must have shape [num_nodes, in_channels={self.in_channels}], got "
                             f"{tuple(x.shape)}")
        _check_graph_ptr(graph_ptr, x.size(0), "RQGNN")
        r = self.graph_rq(x, laplacian, graph_ptr, rq)
        act = self._act
        h = act(self.lin2(act(self.lin1(x))))
        h = self.cheb(h, laplacian)
        h = act(self.lin4(act(self.lin3(h))))
        z = self.pool(h, r, graph_ptr)
        u = act(self.rql2(self.rql1(r)))
        return torch.cat([z, u], dim=1)

    def forward(self, x: Tensor, laplacian: CSRAdjacency, graph_ptr: Tensor, rq: Tensor | None = None) -> Tensor:
        g = self.embed(x, laplacian, graph_ptr, rq)
        if self.norm is not None:
            g = self.norm(g)
        return self.head(self.dropout(g))
