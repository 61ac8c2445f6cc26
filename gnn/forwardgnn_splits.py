r"""Data for the ForwardGNN reproduction: the 64/16/20 random node split and the datasets of ``../shared/data``.

The ForwardGNN protocol (Park et al., ICLR 2024, official code ``src/datasets/datasplit.py``) splits the nodes of
a graph 64/16/20 % with ``KFold(5, shuffle=True, random_state=101)`` (fold ``i`` = test set of split ``i``) and then
holds out 20 % of the remaining nodes for validation (``train_test_split(random_state=127 * i)``).
:func:`fraction_node_split` follows that procedure with numpy's ``Generator`` (the fractions and the
fold structure are the same; the drawn node ids are not sklearn's). Feature row-normalisation and the file reader
come from :mod:`sciml.gnn.node_data`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sciml.errors import ConfigError

__all__ = ["fraction_node_split", "forwardgnn_dataset", "FORWARDGNN_DATASETS", "shared_data_dir"]

#: Datasets of ``../shared/data`` the reproduction reads: name -> (converter, path relative to the data folder,
#: converter options). Cora and CiteSeer are the Planetoid versions (the paper used CitationFull-Cora_ML/CiteSeer).
FORWARDGNN_DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "cora": ("planetoid", "planetoid/Cora", {}),
    "citeseer": ("planetoid", "planetoid/CiteSeer", {}),
    "amazon_photo": ("npz_graph", "amazon_coauthor/amazon-photo.zip", {}),
}


def shared_data_dir() -> Path:
    """``$SCIML_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("SCIML_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def fraction_node_split(num_nodes: int, split_index: int, *, num_folds: int = 5, val_fraction: float = 0.2,
                        seed: int = 101, device: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    r"""Boolean ``(train, val, test)`` masks of split ``split_index`` of the ForwardGNN protocol: the nodes are
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


def forwardgnn_dataset(name: str, *, split_index: int = 0, data_dir: str | os.PathLike | None = None,
                       cache_dir: str | os.PathLike | None = None) -> Any:
    """One dataset of :data:`FORWARDGNN_DATASETS` with split ``split_index`` of :func:`fraction_node_split`:
    converted from the raw public files with our converters (``sciml.datasets.sources``) into a sciml-h5 file in
    ``cache_dir`` (a temporary folder by default; reused when it exists), read back through
    :func:`sciml.gnn.node_data.node_graph` (row-normalised dense features, as PyG's ``NormalizeFeatures``).

    Raises:
        FileNotFoundError: the raw files are absent (``../shared/data`` not there).
    """
    from sciml.datasets.sources import CONVERTERS
    from sciml.datasets.writer import write_spec
    from sciml.gnn.node_data import node_graph

    if name not in FORWARDGNN_DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(FORWARDGNN_DATASETS)}")
    converter, rel, options = FORWARDGNN_DATASETS[name]
    raw = Path(data_dir) if data_dir is not None else shared_data_dir()
    raw = raw / rel
    if not raw.exists():
        raise FileNotFoundError(f"{raw}: raw files of {name!r} not found (set SCIML_SHARED_DATA or data_dir)")
    cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "sciml_forwardgnn_data"
    cache.mkdir(parents=True, exist_ok=True)
    h5 = cache / f"{name}.h5"
    if not h5.exists():
        write_spec(h5, CONVERTERS.get(converter)(str(raw), **options))
    data = node_graph(h5, split="public" if converter == "planetoid" else "per_class", normalize=True,
                      sparse_features=False, train_per_class=0, val_per_class=0)
    data.train_mask, data.val_mask, data.test_mask = fraction_node_split(data.num_nodes, split_index)
    return data
