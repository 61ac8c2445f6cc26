"""The datasets of the ForwardGNN reproduction (``forwardgnn_reproduction.py``, ``forwardgnn_memory.py``): raw
public files of ``../shared/data``, converted once with our converters into sciml-h5 files in a cache folder and
read back through :func:`sciml.gnn.node_data.node_graph` with the protocol's 64/16/20 split (``split="fraction"``)
and row-normalised features (PyG ``NormalizeFeatures``), stored sparse where under 10 % of the entries are non-zero
(Cora 1.3 %, CiteSeer 0.9 %: the first layer then multiplies only the stored entries; Amazon Photo, 35 %, stays
dense). ``sparse_features=False`` keeps every dataset dense (the memory benchmark, to keep its recorded setting).

Cora and CiteSeer are the Planetoid versions (the paper used CitationFull-Cora_ML/CiteSeer).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

#: name -> (converter, path relative to the data folder, converter options)
FORWARDGNN_DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "cora": ("planetoid", "planetoid/Cora", {}),
    "citeseer": ("planetoid", "planetoid/CiteSeer", {}),
    "amazon_photo": ("npz_graph", "amazon_coauthor/amazon-photo.zip", {}),
}


def shared_data_dir() -> Path:
    """``$SCIML_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("SCIML_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def forwardgnn_dataset(name: str, *, split_index: int = 0, data_dir: str | os.PathLike | None = None,
                       cache_dir: str | os.PathLike | None = None, sparse_features: bool | None = None) -> Any:
    """Dataset ``name`` with split ``split_index`` (converted into ``cache_dir``, a temporary folder by default, and
    reused when there). Raises ``FileNotFoundError`` when the raw files are absent."""
    from sciml.datasets.sources import CONVERTERS
    from sciml.datasets.writer import write_spec
    from sciml.gnn.node_data import node_graph

    if name not in FORWARDGNN_DATASETS:
        raise SystemExit(f"unknown dataset {name!r}; expected one of {', '.join(FORWARDGNN_DATASETS)}")
    converter, rel, options = FORWARDGNN_DATASETS[name]
    raw = (Path(data_dir) if data_dir is not None else shared_data_dir()) / rel
    if not raw.exists():
        raise FileNotFoundError(f"{raw}: raw files of {name!r} not found (set SCIML_SHARED_DATA or --data-dir)")
    cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "sciml_forwardgnn_data"
    cache.mkdir(parents=True, exist_ok=True)
    h5 = cache / f"{name}.h5"
    if not h5.exists():
        write_spec(h5, CONVERTERS.get(converter)(str(raw), **options))
    return node_graph(h5, split="fraction", split_index=split_index, normalize=True,
                      sparse_features=sparse_features)
