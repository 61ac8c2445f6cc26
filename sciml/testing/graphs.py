"""Synthetic graphs for tests and benchmarks."""
from __future__ import annotations

import torch


def random_graph(num_nodes: int, num_edges: int, *, seed: int = 0, self_loops: bool = True,
                 device: str | torch.device = "cpu", index_dtype: torch.dtype = torch.long) -> torch.Tensor:
    """A random directed multigraph as ``edge_index`` of shape ``[2, num_edges]`` (duplicates possible)."""
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, max(num_nodes, 1), (2, num_edges), generator=g)
    if not self_loops and num_nodes > 1:
        loops = edge_index[0] == edge_index[1]
        edge_index[1, loops] = (edge_index[1, loops] + 1) % num_nodes
    return edge_index.to(device=device, dtype=index_dtype)
