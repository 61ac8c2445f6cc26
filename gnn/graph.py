"""Per-graph adjacency cache: a model is called with the same ``edge_index`` every step of a full-batch run, and the
CSR adjacency (with its normalisation and transpose) must be built once per graph, not once per step.

Also the GCN normalisation as PyG's ``gcn_norm`` computes it (self-loops added only where missing), which the
propagation models of :mod:`sciml.gnn` (GCN, SGC, APPNP, DAGNN) use.
"""
from __future__ import annotations

import torch

from sciml.errors import ShapeError
from sciml.sparse import CSRAdjacency
from sciml.sparse.cache import TensorCache

__all__ = ["GCN_NORM", "cached_adjacency", "gcn_adjacency"]

#: The normalisation the propagation models use: :math:`\tilde D^{-1/2}\tilde A\tilde D^{-1/2}` with a self-loop
#: added to every node that has none (see :func:`gcn_adjacency`).
GCN_NORM = "gcn_missing_loops"

_CACHE: TensorCache[CSRAdjacency] = TensorCache()


def gcn_adjacency(edge_index: torch.Tensor, num_nodes: int, *,
                  edge_weight: torch.Tensor | None = None) -> CSRAdjacency:
    r"""The symmetric GCN-normalised adjacency with self-loops added **only where missing**, as PyG's ``gcn_norm``
    (``add_remaining_self_loops`` then :math:`\tilde D^{-1/2}\tilde A\tilde D^{-1/2}`), which GCN, SGC, APPNP and
    the official DAGNN code use.

    .. math::
        \hat{\mathbf{A}} = \tilde{\mathbf{D}}^{-1/2}\tilde{\mathbf{A}}\tilde{\mathbf{D}}^{-1/2},\qquad
        \tilde{\mathbf{A}} = \mathbf{A}_{\text{no loops}} + \mathrm{diag}(\mathbf{l}),\qquad
        \tilde D_{ii} = \textstyle\sum_j \tilde A_{ij}

    where :math:`l_i` is the weight of node :math:`i`'s existing self-loop (the last one in ``edge_index`` order if
    it has several; 1 for an unweighted graph) or 1 if it has none. The degree is the in-degree (row sums, edges
    counted at their target), :math:`0^{-1/2} := 0`.

    This differs from :meth:`sciml.sparse.CSRAdjacency.normalized` ``("gcn")``, which adds a weight-1 loop next to
    every node's existing loops (a node with a self-loop then weighs itself twice). On graphs without self-loops
    (Planetoid, Amazon, Coauthor) the two are identical.

    Args:
        edge_index: ``[2, E]`` source/target node ids.
        num_nodes: number of nodes ``N``.
        edge_weight: optional ``[E]`` weights (differentiable).
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ShapeError(f"`edge_index` must have shape [2, num_edges], got {tuple(edge_index.shape)}")
    is_loop = edge_index[0] == edge_index[1]
    keep = ~is_loop
    if edge_weight is None:
        ei = edge_index[:, keep] if bool(is_loop.any()) else edge_index
        return CSRAdjacency.from_edge_index(ei, num_nodes=num_nodes).normalized("gcn", add_self_loops=True)
    if edge_weight.shape != (edge_index.size(1),):
        raise ShapeError(f"`edge_weight` must have shape [num_edges={edge_index.size(1)}], "
                         f"got {tuple(edge_weight.shape)}")
    device = edge_index.device
    loop_pos = is_loop.nonzero().view(-1)
    # the weight of each node's last existing self-loop, else 1
    last = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
    if loop_pos.numel():
        nodes = edge_index[0, loop_pos].long()
        if int(nodes.min()) < 0 or int(nodes.max()) >= num_nodes:
            raise ShapeError(f"`edge_index` has a self-loop on a node outside 0..{num_nodes - 1}")
        last = last.scatter_reduce(0, nodes, loop_pos, reduce="amax", include_self=True)
    has_loop = last >= 0
    loop_weight = torch.where(has_loop, edge_weight[last.clamp(min=0)],
                              torch.ones((), dtype=edge_weight.dtype, device=device))
    loops = torch.arange(num_nodes, device=device, dtype=edge_index.dtype)
    ei = torch.cat([edge_index[:, keep], torch.stack([loops, loops])], dim=1)
    w = torch.cat([edge_weight[keep], loop_weight])
    return CSRAdjacency.from_edge_index(ei, num_nodes=num_nodes, edge_weight=w).normalized("gcn",
                                                                                           add_self_loops=False)


def _build(edge_index: torch.Tensor, num_nodes: int, normalization: str | None,
           edge_weight: torch.Tensor | None) -> CSRAdjacency:
    if normalization == GCN_NORM:
        return gcn_adjacency(edge_index, num_nodes, edge_weight=edge_weight)
    adj = CSRAdjacency.from_edge_index(edge_index, num_nodes=num_nodes, edge_weight=edge_weight)
    return adj.normalized(normalization) if normalization is not None else adj


def cached_adjacency(edge_index: torch.Tensor, num_nodes: int, *, normalization: str | None = "gcn",
                     edge_weight: torch.Tensor | None = None) -> CSRAdjacency:
    """The (normalised) CSR adjacency of ``edge_index``, built on first use and reused while the tensor lives.

    The cache is keyed on the identity of ``edge_index`` (and ``edge_weight``), so a new graph, or the same graph
    moved to another device, gets its own entry; entries are dropped when the index tensor is garbage-collected.
    Learnable weights (``edge_weight.requires_grad``) are never cached: their normalised values belong to one
    autograd graph, so the adjacency is rebuilt on every call.

    Args:
        edge_index: ``[2, E]`` source/target node ids.
        num_nodes: number of nodes ``N``.
        normalization: a kind accepted by :meth:`CSRAdjacency.normalized` (default ``"gcn"``), :data:`GCN_NORM`
            (``"gcn_missing_loops"``: :func:`gcn_adjacency`, PyG's ``gcn_norm``), or ``None`` for the raw
            adjacency.
        edge_weight: optional ``[E]`` weights.
    """
    if edge_weight is not None and edge_weight.requires_grad:
        return _build(edge_index, num_nodes, normalization, edge_weight)
    return _CACHE.get((edge_index, edge_weight), (num_nodes, normalization),
                      lambda: _build(edge_index, num_nodes, normalization, edge_weight))
