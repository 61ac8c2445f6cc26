r"""Data for transductive node classification: feature normalisation, the standard random splits, the largest
connected component, and the ``node_graph`` data builder that reads a graph from a sciml-h5 file.

The splits follow the protocol of Shchur et al. (*Pitfalls of Graph Neural Network Evaluation*, 2018) as used by
PyG's citation benchmark and by DAGNN (Liu et al., KDD 2020):

* :func:`planetoid_random_split`: ``train_per_class`` nodes of every class for training, then ``num_val``
  validation and ``num_test`` test nodes drawn from the rest (Planetoid random splits: 20 / 500 / 1000);
* :func:`per_class_split`: ``train_per_class`` training and ``val_per_class`` validation nodes per class, every
  other node for testing (Amazon / Coauthor: 20 / 30 / rest).

Both draw from an optional candidate set (e.g. the largest connected component, :func:`largest_connected_component`)
and take a seed, so a split is a pure function of ``(y, candidates, seed)``.

**The official DAGNN code's LCC bug** (``random_coauthor_amazon_splits`` in divelab/DeeperGNN ``train_eval.py``):
it looks the classes up in ``y[lcc]`` and keeps the *positions inside the LCC node list*, then uses those positions
as global node ids. Once a node before the end of the list is outside the LCC, position ``p`` is no longer node
``lcc[p]``: the selected nodes need not lie in the LCC, the per-class counts are not 20/30, and the last
``N - |LCC|`` node ids can never be selected. Here the positions are mapped back to node ids (``candidates[p]``),
so every split node lies in the candidate set and every class has exactly ``train_per_class`` / ``val_per_class``
nodes. See docs/dagnn.md.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.features import is_sparse, quiet_sparse_csr
from sciml.sparse import ptr_to_index

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = ["normalize_features", "to_sparse_features", "largest_connected_component", "planetoid_random_split",
           "per_class_split", "official_lcc_per_class_split", "fraction_node_split", "node_graph"]


def normalize_features(x: Tensor) -> Tensor:
    r"""Row-normalised features, with the semantics of PyG's ``NormalizeFeatures``: shift by the global minimum
    when it is negative, then divide every row by its sum clamped below at 1,
    :math:`x_{ij} \leftarrow x_{ij} / \max(1, \sum_k x_{ik})` (rows summing to less than 1, e.g. all-zero rows, are
    left as they are).

    Args:
        x: ``[N, F]`` dense, or sparse COO/CSR (same layout back; a sparse ``x`` with negative values cannot be
            shifted without densifying and is an error).
    """
    if x.dim() != 2:
        raise ShapeError(f"normalize_features: x must be [num_nodes, num_features], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ShapeError(f"normalize_features: x must be floating point, got {x.dtype}")
    if not is_sparse(x):
        if x.numel() == 0:
            return x
        lo = x.min()
        if lo != 0:  # PyG subtracts the minimum (a no-op for non-negative features with a zero entry)
            x = x - lo
        return x / x.sum(dim=-1, keepdim=True).clamp(min=1.0)
    layout = x.layout
    with quiet_sparse_csr():
        csr = x.to_sparse_csr() if layout != torch.sparse_csr else x
    values = csr.values()
    if values.numel() and float(values.min()) < 0:
        raise ShapeError("normalize_features: sparse features with negative values would have to be shifted by "
                         "their minimum (densifying them); pass them dense")
    nnz_per_row = csr.crow_indices()[1:] - csr.crow_indices()[:-1]
    stored_all = bool((nnz_per_row == x.size(1)).all())
    if stored_all and values.numel() and float(values.min()) > 0:
        raise ShapeError("normalize_features: sparse features without a zero entry would be shifted by their "
                         "positive minimum (PyG semantics); pass them dense")
    row = ptr_to_index(csr.crow_indices(), values.numel())
    sums = torch.zeros(x.size(0), dtype=values.dtype, device=x.device).index_add_(0, row, values)
    with quiet_sparse_csr():
        out = torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), values / sums.clamp(min=1.0)[row],
                                      x.shape, device=x.device, check_invariants=False)
    return out if layout == torch.sparse_csr else out.to_sparse_coo()


def to_sparse_features(x: Tensor) -> Tensor:
    """Dense ``[N, F]`` features as a torch sparse CSR tensor (zeros not stored); sparse input is returned in CSR."""
    if is_sparse(x) and x.layout == torch.sparse_csr:
        return x
    with quiet_sparse_csr():
        return x.to_sparse_csr()


def largest_connected_component(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Sorted node ids of the largest (weakly) connected component, edge directions ignored (as networkx's
    ``connected_components`` on the undirected graph). Among components of equal size, the one holding the smallest
    node id.

    Args:
        edge_index: ``[2, E]`` node ids.
        num_nodes: number of nodes ``N`` (isolated nodes are components of size 1).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ShapeError(f"edge_index must be [2, num_edges], got {tuple(edge_index.shape)}")
    if num_nodes < 1:
        raise ShapeError(f"the graph has no nodes (num_nodes={num_nodes})")
    ei = edge_index.cpu().numpy()
    if ei.size and (ei.min() < 0 or ei.max() >= num_nodes):
        raise ShapeError(f"edge_index has node ids outside 0..{num_nodes - 1}")
    a = coo_matrix((np.ones(ei.shape[1], dtype=np.int8), (ei[0], ei[1])), shape=(num_nodes, num_nodes))
    _, labels = connected_components(a, directed=True, connection="weak")
    sizes = np.bincount(labels)
    best = np.flatnonzero(sizes == sizes.max())
    # labels are numbered in order of first appearance, so the smallest label holds the smallest node id
    nodes = np.flatnonzero(labels == best.min())
    return torch.from_numpy(nodes.astype(np.int64)).to(edge_index.device)


def _class_permutations(y: Tensor, candidates: Tensor, g: torch.Generator, needed: int, what: str) -> list[Tensor]:
    """For each class ``c = 0..y.max()``: the candidate node ids of class ``c`` in a random order."""
    yc = y[candidates]
    out = []
    num_classes = int(y.max()) + 1
    for c in range(num_classes):
        ids = candidates[yc == c]
        if ids.numel() < needed:
            raise ConfigError(f"{what}: class {c} has {ids.numel()} candidate nodes, fewer than the {needed} "
                              "the split takes per class")
        out.append(ids[torch.randperm(ids.numel(), generator=g)])
    return out


def _masks(n: int, device: torch.device, *parts: Tensor) -> tuple[Tensor, ...]:
    masks = []
    for p in parts:
        m = torch.zeros(n, dtype=torch.bool, device=device)
        m[p] = True
        masks.append(m)
    return tuple(masks)


def _candidates(y: Tensor, nodes: Tensor | None) -> Tensor:
    if y.dim() != 1 or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ShapeError(f"y must be a 1-D integer class vector, got shape {tuple(y.shape)} {y.dtype}")
    if y.numel() and int(y.min()) < 0:
        raise ShapeError(f"y has a negative class {int(y.min())}")
    if nodes is None:
        return torch.arange(y.numel(), device=y.device)
    nodes = nodes.to(device=y.device, dtype=torch.long).view(-1)
    if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= y.numel()):
        raise ShapeError(f"candidate nodes outside 0..{y.numel() - 1}")
    if torch.unique(nodes).numel() != nodes.numel():
        raise ShapeError("candidate nodes contain duplicates")
    return nodes


def planetoid_random_split(y: Tensor, *, seed: int = 0, train_per_class: int = 20, num_val: int = 500,
                           num_test: int = 1000, nodes: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Planetoid random split: ``train_per_class`` random nodes of every class for training; the other candidates
    shuffled, the first ``num_val`` for validation, the next ``num_test`` for testing (as PyG's citation benchmark
    and DAGNN's ``random_planetoid_splits``).

    Args:
        y: ``[N]`` integer classes ``0..C-1``.
        seed: seed of the split's own generator (the global RNG is not touched).
        train_per_class: training nodes per class. (default: ``20``)
        num_val: validation nodes. (default: ``500``)
        num_test: test nodes. (default: ``1000``)
        nodes: candidate node ids (e.g. the largest connected component); :obj:`None` = all nodes.

    Returns:
        boolean ``train_mask, val_mask, test_mask`` of shape ``[N]`` (disjoint).
    """
    candidates = _candidates(y, nodes)
    g = torch.Generator().manual_seed(int(seed))
    perms = _class_permutations(y.cpu(), candidates.cpu(), g, train_per_class, "planetoid_random_split")
    train = torch.cat([p[:train_per_class] for p in perms])
    rest = torch.cat([p[train_per_class:] for p in perms])
    rest = rest[torch.randperm(rest.numel(), generator=g)]
    if rest.numel() < num_val + num_test:
        raise ConfigError(f"planetoid_random_split: {rest.numel()} nodes left after training, fewer than "
                          f"num_val + num_test = {num_val + num_test}")
    return _masks(y.numel(), y.device, train, rest[:num_val], rest[num_val:num_val + num_test])


def per_class_split(y: Tensor, *, seed: int = 0, train_per_class: int = 20, val_per_class: int = 30,
                    nodes: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class random split (Amazon / Coauthor protocol): ``train_per_class`` training and ``val_per_class``
    validation nodes of every class, every other candidate for testing (as DAGNN's
    ``random_coauthor_amazon_splits``, with the LCC positions mapped back to node ids: see the module doc).

    Args:
        y: ``[N]`` integer classes ``0..C-1``.
        seed: seed of the split's own generator (the global RNG is not touched).
        train_per_class: training nodes per class. (default: ``20``)
        val_per_class: validation nodes per class. (default: ``30``)
        nodes: candidate node ids (e.g. the largest connected component); :obj:`None` = all nodes. Nodes outside
            the candidates are in no split.

    Returns:
        boolean ``train_mask, val_mask, test_mask`` of shape ``[N]`` (disjoint).
    """
    candidates = _candidates(y, nodes)
    g = torch.Generator().manual_seed(int(seed))
    k = train_per_class + val_per_class
    perms = _class_permutations(y.cpu(), candidates.cpu(), g, k, "per_class_split")
    train = torch.cat([p[:train_per_class] for p in perms])
    val = torch.cat([p[train_per_class:k] for p in perms])
    test = torch.cat([p[k:] for p in perms])
    return _masks(y.numel(), y.device, train, val, test)


def official_lcc_per_class_split(y: Tensor, lcc: Tensor, *, seed: int = 0, train_per_class: int = 20,
                                 val_per_class: int = 30) -> tuple[Tensor, Tensor, Tensor]:
    """The per-class split as DAGNN's official code draws it with the largest connected component
    (divelab/DeeperGNN ``random_coauthor_amazon_splits``, the protocol behind its Amazon numbers): the nodes of each
    class are found as *positions* in the list of LCC nodes (ascending ids), and those positions are then used as
    node ids of the whole, unreduced graph. So the split is not 20/30 per class of the LCC: it is 20/30 random
    positions per class, whose nodes have whatever class (and component) sits at that id; test = every other
    position. Use :func:`per_class_split` with ``nodes=lcc`` for the intended split.

    Args:
        y: ``[N]`` integer classes of the whole graph.
        lcc: ascending node ids of the largest connected component (:func:`largest_connected_component`).
        seed, train_per_class, val_per_class: as :func:`per_class_split`.

    Returns:
        boolean ``train_mask, val_mask, test_mask`` of shape ``[N]`` (disjoint; all ids below ``len(lcc)``).
    """
    lcc = lcc.to(device=y.device, dtype=torch.long)
    # the split of the LCC's positions (classes y[lcc]) ...
    masks = per_class_split(y[lcc], seed=seed, train_per_class=train_per_class, val_per_class=val_per_class)
    # ... read as masks over the node ids of the whole graph (the bug): padded with False beyond len(lcc)
    return tuple(torch.cat([m, m.new_zeros(y.numel() - m.numel())]) for m in masks)  # type: ignore[return-value]


def fraction_node_split(num_nodes: int, split_index: int, *, num_folds: int = 5, val_fraction: float = 0.2,
                        seed: int = 101, device: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    r"""Boolean ``(train, val, test)`` masks of split ``split_index`` of the ForwardGNN protocol (Park et al., ICLR
    2024, official ``src/datasets/datasplit.py``: ``KFold(5, shuffle=True, random_state=101)``, then
    ``train_test_split(random_state=127 * i)`` of the rest; same fractions and fold structure here, drawn with
    numpy's ``Generator``, so the node ids are not sklearn's): the nodes are
    shuffled once (``seed``) and cut into ``num_folds`` folds of sizes differing by at most one (fold
    ``split_index`` is the test set: 20 % for 5 folds); of the other nodes, a random ``val_fraction`` (rounded up,
    drawn with seed ``127 * split_index``) is validation and the rest training: 64/16/20 % by default.

    Splits ``0..num_folds-1`` have disjoint test sets covering every node.
    """
    if not 0 <= split_index < num_folds:
        raise ConfigError(f"fraction_node_split: split_index must be in 0..{num_folds - 1}, got {split_index}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"fraction_node_split: val_fraction must be in (0, 1), got {val_fraction}")
    if num_nodes < num_folds:
        raise ConfigError(f"fraction_node_split: {num_nodes} nodes cannot make {num_folds} folds")
    order = np.random.default_rng(seed).permutation(num_nodes)
    sizes = np.full(num_folds, num_nodes // num_folds)
    sizes[: num_nodes % num_folds] += 1  # as sklearn's KFold: the first folds take the remainder
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    test = order[bounds[split_index]: bounds[split_index + 1]]
    rest = np.concatenate([order[: bounds[split_index]], order[bounds[split_index + 1]:]])
    rest = np.random.default_rng(127 * split_index).permutation(rest)
    num_val = int(np.ceil(val_fraction * rest.size))
    val, train = rest[:num_val], rest[num_val:]
    masks = []
    for idx in (train, val, test):
        m = torch.zeros(num_nodes, dtype=torch.bool, device=device)
        m[torch.from_numpy(idx).to(m.device)] = True
        masks.append(m)
    return masks[0], masks[1], masks[2]


def node_graph(path: str | os.PathLike, *, split: Literal["public", "random", "per_class", "fraction"] = "public",
               seed: int = 0, normalize: bool = True, lcc: bool = False, sparse_features: bool | None = None,
               graph: int = 0, group: str = "train", train_per_class: int = 20, val_per_class: int = 30,
               num_val: int = 500, num_test: int = 1000, split_index: int = 0, num_folds: int = 5,
               val_fraction: float = 0.2, official_lcc_indexing: bool = False) -> "Data":
    """One node-classification graph from a sciml-h5 ``graphs`` file (``sciml data convert planetoid|npz_graph``),
    with the split, feature normalisation and largest-connected-component options of the DAGNN / PyG benchmark
    protocol. Registered as the data builder ``node_graph``::

        data: {name: node_graph, path: cora.h5, split: random, seed: 3}

    Steps, in this order: read graph ``graph`` of split group ``group``; keep the largest connected component
    (``lcc``, relabelled); row-normalise the features (``normalize``, :func:`normalize_features`); store them sparse
    (``sparse_features``); set the masks (``split``).

    Args:
        path: the ``.h5`` file.
        split: ``"public"`` (the masks stored in the file, e.g. Planetoid's public split), ``"random"``
            (:func:`planetoid_random_split`: ``train_per_class`` per class / ``num_val`` / ``num_test``) or
            ``"per_class"`` (:func:`per_class_split`: ``train_per_class`` / ``val_per_class`` per class / rest) or
            ``"fraction"`` (:func:`fraction_node_split`, the ForwardGNN protocol: fold ``split_index`` of
            ``num_folds`` is the test set, ``val_fraction`` of the rest validation; 64/16/20 % by default, with the
            protocol's fixed seeds, ``seed`` unused). (default: ``"public"``)
        seed: seed of a ``"random"`` or ``"per_class"`` split. (default: ``0``)
        normalize: row-normalise the features (PyG ``NormalizeFeatures``). (default: ``True``)
        lcc: restrict the graph to its largest connected component (Amazon in DAGNN's protocol). Components do not
            exchange messages, so this equals keeping the whole graph with every split inside the LCC.
            (default: ``False``)
        sparse_features: store ``x`` as a torch sparse CSR tensor (models then run their first layer on the stored
            entries only); :obj:`None` = when under 10 % of the entries are non-zero. (default: :obj:`None`)
        graph: index of the graph in the group. (default: ``0``)
        group: the HDF5 split group holding the graph. (default: ``"train"``)
        train_per_class, val_per_class, num_val, num_test, split_index, num_folds, val_fraction: split sizes and
            fold (see ``split``).
        official_lcc_indexing: with ``split="per_class"`` and ``lcc=True``, draw the split as DAGNN's official code
            does (:func:`official_lcc_per_class_split`: LCC positions used as node ids, the graph not reduced) to
            compare with its Amazon numbers; not a correct LCC protocol. (default: ``False``)

    Returns:
        a PyG ``Data`` with ``x``, ``edge_index``, ``y``, ``train_mask``, ``val_mask``, ``test_mask``.
    """
    from sciml.datasets.reader import GraphDataset

    if split not in ("public", "random", "per_class", "fraction"):
        raise ConfigError(f"node_graph: split must be 'public', 'random', 'per_class' or 'fraction', got {split!r}")
    ds = GraphDataset(path, split=group)
    try:
        if not 0 <= graph < len(ds):
            raise ConfigError(f"node_graph: {path}:/{group} holds {len(ds)} graph(s); graph={graph} is out of range")
        data = ds[graph]
    finally:
        ds.close()
    for key in ("x", "y", "edge_index"):
        if getattr(data, key, None) is None:
            raise ConfigError(f"node_graph: {path}:/{group} graph {graph} has no '{key}'")
    if data.y.dim() != 1 or data.y.is_floating_point():
        raise ConfigError(f"node_graph: {path}: y must be one integer class per node, got shape "
                          f"{tuple(data.y.shape)} {data.y.dtype}")
    if data.y.numel() != data.num_nodes:
        raise ConfigError(f"node_graph: {path}: y has {data.y.numel()} entries for {data.num_nodes} nodes")
    if split == "public":
        missing = [m for m in ("train_mask", "val_mask", "test_mask") if getattr(data, m, None) is None]
        if missing:
            raise ConfigError(f"node_graph: split='public' needs the masks stored in {path}, which lacks "
                              f"{', '.join(missing)}; use split='random' or 'per_class'")
    if official_lcc_indexing and not (lcc and split == "per_class"):
        raise ConfigError("node_graph: official_lcc_indexing=True needs split='per_class' and lcc=True")
    official_lcc = None
    if lcc:
        keep = largest_connected_component(data.edge_index, data.num_nodes)
        if official_lcc_indexing:
            official_lcc = keep    # the whole graph stays; only the split uses the component
        else:
            data = data.subgraph(keep)
    x = data.x.float()
    if normalize:
        x = normalize_features(x)
    if sparse_features is None:
        sparse_features = x.numel() > 0 and int(torch.count_nonzero(x)) < 0.1 * x.numel()
    data.x = to_sparse_features(x) if sparse_features else x
    if split == "random":
        masks = planetoid_random_split(data.y, seed=seed, train_per_class=train_per_class, num_val=num_val,
                                       num_test=num_test)
    elif official_lcc is not None:
        masks = official_lcc_per_class_split(data.y, official_lcc, seed=seed, train_per_class=train_per_class,
                                             val_per_class=val_per_class)
    elif split == "per_class":
        masks = per_class_split(data.y, seed=seed, train_per_class=train_per_class, val_per_class=val_per_class)
    elif split == "fraction":
        masks = fraction_node_split(data.num_nodes, split_index, num_folds=num_folds, val_fraction=val_fraction,
                                    device=data.y.device)
    else:
        masks = (data.train_mask, data.val_mask, data.test_mask)
    data.train_mask, data.val_mask, data.test_mask = masks
    return data
