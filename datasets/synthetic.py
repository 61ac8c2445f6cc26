"""Built-in synthetic data generated in code: no download, no files (used by ``sciml demo`` and the tests)."""
from __future__ import annotations

import torch
from torch_geometric.data import Data

from sciml.errors import ConfigError


def community_graph(num_nodes: int = 600, *, num_classes: int = 4, num_features: int = 32, p_in: float = 0.04,
                    p_out: float = 0.004, feature_noise: float = 2.0, train_per_class: int = 20,
                    num_val: int = 120, seed: int = 0) -> Data:
    r"""A stochastic-block-model graph whose communities are the node classes.

    Node ``i`` of class :math:`c_i` is joined to ``j`` with probability ``p_in`` if :math:`c_i = c_j` and ``p_out``
    otherwise (undirected, no self-loops). Features are a class centroid plus Gaussian noise of scale
    ``feature_noise``, so a feature-only classifier is weak and aggregating over neighbours helps: the setting of
    Planetoid-style node classification, at laptop scale. Splits follow Planetoid: ``train_per_class`` labelled
    nodes per class, ``num_val`` validation nodes, the rest test.

    Args:
        num_nodes: number of nodes (default 600).
        num_classes: number of communities / classes (default 4).
        num_features: feature dimension (default 32).
        p_in, p_out: intra- and inter-community edge probabilities.
        feature_noise: standard deviation of the feature noise around each class centroid.
        train_per_class: labelled training nodes per class.
        num_val: validation nodes.
        seed: generator seed (the graph is a pure function of the arguments).

    Returns:
        ``Data(x [N, F], edge_index [2, E], y [N], train_mask, val_mask, test_mask)``.
    """
    if num_nodes < num_classes * train_per_class + num_val + 1:
        raise ConfigError(f"community_graph: num_nodes={num_nodes} is too small for {num_classes} classes x "
                          f"{train_per_class} training nodes + {num_val} validation nodes + a test set")
    for name, p in (("p_in", p_in), ("p_out", p_out)):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"community_graph: {name}={p} is not a probability in [0, 1]")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) % num_classes
    y = y[torch.randperm(num_nodes, generator=g)]
    same = y[:, None] == y[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    upper = torch.triu(torch.rand(num_nodes, num_nodes, generator=g) < prob, diagonal=1)
    src, dst = upper.nonzero(as_tuple=True)
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
    centroids = torch.randn(num_classes, num_features, generator=g)
    x = centroids[y] + feature_noise * torch.randn(num_nodes, num_features, generator=g)

    order = torch.randperm(num_nodes, generator=g)
    train_mask = torch.zeros(num_nodes, dtype=torch.bool)
    for c in range(num_classes):
        train_mask[order[y[order] == c][:train_per_class]] = True
    rest = order[~train_mask[order]]
    val_mask = torch.zeros(num_nodes, dtype=torch.bool)
    val_mask[rest[:num_val]] = True
    test_mask = ~(train_mask | val_mask)
    return Data(x=x, edge_index=edge_index, y=y, train_mask=train_mask, val_mask=val_mask, test_mask=test_mask,
                num_nodes=num_nodes)
