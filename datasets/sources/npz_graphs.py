"""Graphs stored as scipy-CSR ``.npz`` (shchur/gnn-benchmark: Amazon Computers/Photo, Coauthor CS/Physics, Cora-ML...)
-> one graph, read straight from the ``.npz`` or from a ``.zip`` holding it.

Keys: ``adj_{data,indices,indptr,shape}`` (adjacency), ``attr_{data,indices,indptr,shape}`` (node features),
``labels`` (one int per node). Other keys (names, class names; some are object arrays) are never loaded: the npz is
read with ``allow_pickle=False``.

The result matches ``torch_geometric.datasets.Amazon`` / ``Coauthor`` exactly: dense float32 ``x`` with every
positive entry set to 1, self loops removed, the graph made undirected and coalesced (sorted by source, then target).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciml.datasets.sources._common import (DataFormatError, check_shard, config_of, existing, fail, one_line,
                                            single_record_spec)

__all__ = ["convert_npz_graph", "read_npz_graph"]


def _open_npz(path: Path, member: str) -> tuple[Any, str]:
    """An ``NpzFile`` for ``path`` (an .npz, or a .zip whose member ``member`` / only .npz member is read)."""
    try:
        if not zipfile.is_zipfile(path):
            raise fail(path, "not an .npz or .zip archive")
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            inner = [n for n in names if n.endswith(".npz")]
            if member:
                if member not in names:
                    raise fail(path, f"has no member {member!r} (members: {', '.join(names[:10])})")
                inner = [member]
            if inner:  # a .zip that holds an .npz
                if len(inner) > 1:
                    raise fail(path, f"holds several .npz files ({', '.join(inner)}); choose one with member=")
                data = z.read(inner[0])
                where = f"{path}!{inner[0]}"
                if not zipfile.is_zipfile(io.BytesIO(data)):
                    raise fail(where, "not an .npz archive")
                return np.load(io.BytesIO(data), allow_pickle=False), where
        return np.load(path, allow_pickle=False), str(path)
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise fail(path, f"corrupt or truncated archive ({type(err).__name__}: {one_line(err)})") from None


def _get(f: Any, key: str, where: str) -> np.ndarray:
    if key not in f.files:
        raise fail(where, f"missing array {key!r} (has: {', '.join(sorted(f.files))})")
    try:
        return f[key]
    except Exception as err:  # zlib/CRC errors, truncated members, object arrays
        raise fail(where, f"cannot read array {key!r} ({type(err).__name__}: {one_line(err)})") from None


def _csr(f: Any, prefix: str, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    data = _get(f, f"{prefix}_data", where)
    indices = _get(f, f"{prefix}_indices", where)
    indptr = _get(f, f"{prefix}_indptr", where)
    shape = _get(f, f"{prefix}_shape", where)
    if shape.shape != (2,) or not np.issubdtype(shape.dtype, np.integer) or (shape < 0).any():
        raise fail(where, f"{prefix}_shape must be two non-negative integers, got {shape!r}")
    rows, cols = int(shape[0]), int(shape[1])
    for name, arr in (("indices", indices), ("indptr", indptr)):
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise fail(where, f"{prefix}_{name} must be a 1-D integer array, got shape {arr.shape} {arr.dtype}")
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.number):
        raise fail(where, f"{prefix}_data must be a 1-D numeric array, got shape {data.shape} {data.dtype}")
    if len(indptr) != rows + 1:
        raise fail(where, f"{prefix}_indptr has {len(indptr)} entries, expected rows + 1 = {rows + 1}")
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
        raise fail(where, f"{prefix}_indptr is not a valid row pointer for {len(indices)} entries")
    if len(data) != len(indices):
        raise fail(where, f"{prefix}_data has {len(data)} entries but {prefix}_indices has {len(indices)}")
    if len(indices) and (indices.min() < 0 or indices.max() >= cols):
        raise fail(where, f"{prefix}_indices has a column outside 0..{cols - 1}")
    if not np.isfinite(data).all():
        raise fail(where, f"{prefix}_data has NaN or infinite values")
    return data, indices.astype(np.int64), indptr.astype(np.int64), (rows, cols)


def read_npz_graph(path: str | os.PathLike, *, member: str = "", undirected: bool = True,
                   binarize: bool = True):
    """Read one npz graph (see module doc) into a PyG ``Data``."""
    from torch_geometric.data import Data

    f, where = _open_npz(existing(path), member)
    with f:
        a_data, a_idx, a_ptr, (n, n2) = _csr(f, "adj", where)
        if n != n2:
            raise fail(where, f"adj_shape {n}x{n2} is not square")
        x_data, x_idx, x_ptr, (xn, width) = _csr(f, "attr", where)
        if xn != n:
            raise fail(where, f"attr_shape has {xn} rows but the adjacency has {n} nodes")
        labels = _get(f, "labels", where)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise fail(where, f"labels must be a 1-D integer array, got shape {labels.shape} {labels.dtype}")
    if len(labels) != n:
        raise fail(where, f"labels has {len(labels)} entries but the graph has {n} nodes")
    if len(labels) and labels.min() < 0:
        raise fail(where, f"negative class label {labels.min()}")

    x = np.zeros((n, width), dtype=np.float32)
    rows = np.repeat(np.arange(n), np.diff(x_ptr))
    np.add.at(x, (rows, x_idx), x_data.astype(np.float32))  # duplicates add up, as scipy's todense
    if binarize:
        x[x > 0] = 1

    row = np.repeat(np.arange(n, dtype=np.int64), np.diff(a_ptr))
    col = a_idx
    keep = row != col
    row, col = row[keep], col[keep]
    if undirected:
        key = np.unique(np.concatenate([row * n + col, col * n + row]))
        row, col = key // n, key % n
    edge_index = torch.from_numpy(np.stack([row, col]).astype(np.int64))
    return Data(x=torch.from_numpy(x), edge_index=edge_index, y=torch.from_numpy(labels.astype(np.int64)))


def convert_npz_graph(path: str | os.PathLike, *, member: str = "", undirected: bool = True,
                      binarize: bool = True, split: str = "train",
                      shard: tuple[int, int] | None = None) -> Any:
    """A scipy-CSR ``.npz`` graph (or a ``.zip`` holding one) -> a ``graphs`` DataSpec holding one graph.

    Args:
        path: the ``.npz`` file, or a ``.zip`` that holds it.
        member: the ``.npz`` member to read when the ``.zip`` holds several. (default: the only one)
        undirected: add the reverse of every edge and coalesce (as PyG). (default: :obj:`True`)
        binarize: set positive feature values to 1 (as PyG; the bag-of-words counts are lost).
            (default: :obj:`True`)
        split: the split (HDF5 group) the graph is written to. (default: ``train``)
        shard: ``(i, n)``: the single graph goes to the last shard (the contiguous rule of
            :func:`~sciml.datasets.shards.shard_range`).
    """
    shard = check_shard(shard)
    p = existing(path)
    if not p.is_file():
        raise fail(p, "expected an .npz or .zip file, found a directory")
    return single_record_spec(lambda: read_npz_graph(p, member=member, undirected=undirected, binarize=binarize),
                              shard=shard, split=split, kind="graphs", source=f"npz_graph:{p}",
                              config=config_of(converter="npz_graph", path=path, member=member,
                                               undirected=undirected, binarize=binarize, split=split))
