"""Per-graph adjacency cache: a model is called with the same ``edge_index`` every step of a full-batch run, and the
CSR adjacency (with its normalisation and transpose) must be built once per graph, not once per step."""
from __future__ import annotations

import weakref

import torch

from sciml.sparse import CSRAdjacency

_CACHE: dict[tuple, CSRAdjacency] = {}


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
        normalization: a kind accepted by :meth:`CSRAdjacency.normalized` (default ``"gcn"``), or ``None`` for
            the raw adjacency.
        edge_weight: optional ``[E]`` weights.
    """
    learnable = edge_weight is not None and edge_weight.requires_grad
    key = (id(edge_index), None if edge_weight is None else id(edge_weight), num_nodes, normalization)
    adj = None if learnable else _CACHE.get(key)
    if adj is None:
        adj = CSRAdjacency.from_edge_index(edge_index, num_nodes=num_nodes, edge_weight=edge_weight)
        if normalization is not None:
            adj = adj.normalized(normalization)
        if learnable:
            return adj
        _CACHE[key] = adj
        for t in (edge_index, edge_weight):
            if t is not None:
                weakref.finalize(t, _CACHE.pop, key, None)
    return adj
