"""Planetoid raw files (``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``, Yang et al. 2016) -> one graph.

The result matches ``torch_geometric.datasets.Planetoid(root, name)`` (public split) exactly: features
``x = [allx; tx]`` with the test rows put back in node order, ``y`` the argmax of the one-hot labels, ``edge_index``
from the adjacency dict with self loops and duplicates removed (sorted by target, then source, as PyG's
``coalesce(sort_by_row=False)``), and the public masks (train: the first ``len(y)`` nodes, val: the next 500,
test: the nodes of ``test.index``). Test indices that do not form a contiguous range (CiteSeer's isolated test nodes)
get zero feature rows and label 0, as in PyG.

The pickles are read with :mod:`~sciml.datasets.sources.safe_pickle`: nothing in them is executed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciml.datasets.sources._common import (check_shard, config_of, existing, fail, single_record_spec)
from sciml.datasets.sources.safe_pickle import is_sparse, safe_load, sparse_to_dense

__all__ = ["convert_planetoid", "read_planetoid", "find_planetoid"]

PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def find_planetoid(path: str | os.PathLike, dataset: str = "") -> tuple[Path, str]:
    """The folder holding ``ind.<name>.*`` and the (lower-case) ``<name>``.

    ``path`` may be that folder, its parent (PyG's ``<root>/<Name>`` with a ``raw/`` inside), or one of the files.
    """
    p = existing(path)
    if p.is_file():
        m = re.match(r"ind\.(.+)\.(x|tx|allx|y|ty|ally|graph|test\.index)$", p.name)
        if not m:
            raise fail(p, "not a Planetoid raw file (expected ind.<name>.<x|tx|allx|y|ty|ally|graph|test.index>)")
        return p.parent, dataset.lower() or m.group(1)
    for folder in (p, p / "raw"):
        names = sorted({m.group(1) for f in folder.glob("ind.*")
                        if (m := re.match(r"ind\.(.+)\.(?:x|graph)$", f.name))}) if folder.is_dir() else []
        if dataset:
            if dataset.lower() in names:
                return folder, dataset.lower()
            continue
        if len(names) == 1:
            return folder, names[0]
        if len(names) > 1:
            raise fail(folder, f"holds several Planetoid datasets ({', '.join(names)}); choose one with dataset=")
    what = f"ind.{dataset.lower()}.*" if dataset else "ind.<name>.x / ind.<name>.graph"
    raise fail(p, f"no Planetoid raw files ({what}) here or in raw/")


def _dense(obj: Any, path: Path) -> np.ndarray:
    if is_sparse(obj):
        arr = sparse_to_dense(obj, path)
    elif isinstance(obj, np.ndarray):
        arr = obj
    else:
        raise fail(path, f"expected a matrix, found {type(obj).__name__}")
    if arr.ndim != 2:
        raise fail(path, f"expected a 2-D matrix, found shape {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise fail(path, f"expected numbers, found dtype {arr.dtype}")
    return arr


def _read_index(path: Path) -> np.ndarray:
    try:
        text = path.read_bytes().decode("ascii")
    except OSError as err:
        raise fail(path, f"cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise fail(path, "not a text file of node indices (non-ASCII bytes)") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if not s.isdigit():
            raise fail(path, f"expected one non-negative integer node index per line, found {s[:40]!r}",
                       line=lineno)
        out.append(int(s))
    if not out:
        raise fail(path, "no test indices")
    return np.asarray(out, dtype=np.int64)


def _labels(onehot: np.ndarray) -> np.ndarray:
    # argmax returns the first maximum, i.e. class 0 for an all-zero row, as torch.max in PyG
    return onehot.argmax(axis=1).astype(np.int64) if onehot.shape[1] else np.zeros(len(onehot), np.int64)


def read_planetoid(folder: Path, prefix: str):
    """Read and check ``ind.<prefix>.*`` in ``folder``; returns a PyG ``Data``."""
    from torch_geometric.data import Data

    files = {part: folder / f"ind.{prefix}.{part}" for part in PARTS}
    for part, f in files.items():
        if not f.is_file():
            raise fail(f, "missing (a Planetoid dataset needs ind.<name>.{" + ",".join(PARTS) + "})")
    m = {part: _dense(safe_load(files[part]), files[part]) for part in ("x", "tx", "allx", "y", "ty", "ally")}
    graph = safe_load(files["graph"])
    test_index = _read_index(files["test.index"])
    x, tx, allx, y, ty, ally = (m[k] for k in ("x", "tx", "allx", "y", "ty", "ally"))

    width = allx.shape[1]
    for part in ("x", "tx"):
        if m[part].shape[1] != width:
            raise fail(files[part], f"has {m[part].shape[1]} feature columns but allx has {width}")
    classes = ally.shape[1]
    for part in ("y", "ty"):
        if m[part].shape[1] != classes:
            raise fail(files[part], f"has {m[part].shape[1]} label columns but ally has {classes}")
    for a, b in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        if m[a].shape[0] != m[b].shape[0]:
            raise fail(files[b], f"has {m[b].shape[0]} rows but ind.{prefix}.{a} has {m[a].shape[0]}")
    for part in ("y", "ty", "ally"):
        arr = m[part]
        ok = np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) <= 1).all()
        if not ok:
            raise fail(files[part], "labels are not one-hot rows of 0/1")
    if (ally.sum(axis=1) != 1).any() or (y.sum(axis=1) != 1).any():
        part = "y" if (y.sum(axis=1) != 1).any() else "ally"
        raise fail(files[part], "a training node has no label (all-zero one-hot row)")
    if len(np.unique(test_index)) != len(test_index):
        raise fail(files["test.index"], "repeated node index")
    if len(test_index) != tx.shape[0]:
        raise fail(files["test.index"], f"has {len(test_index)} indices but ind.{prefix}.tx has {tx.shape[0]} rows")

    sorted_test = np.sort(test_index)
    lo, hi = int(sorted_test[0]), int(sorted_test[-1])
    if lo != allx.shape[0]:
        raise fail(files["test.index"], f"smallest test index is {lo}, expected {allx.shape[0]} "
                                        f"(the number of rows of ind.{prefix}.allx)")
    span = hi - lo + 1
    if span != tx.shape[0]:  # isolated test nodes (CiteSeer): zero rows, label 0 (as PyG)
        tx_ext = np.zeros((span, width), dtype=tx.dtype)
        tx_ext[sorted_test - lo] = tx
        ty_ext = np.zeros((span, classes), dtype=ty.dtype)
        ty_ext[sorted_test - lo] = ty
        tx, ty = tx_ext, ty_ext
    feats = np.concatenate([allx, tx]).astype(np.float32)
    feats[test_index] = feats[sorted_test]
    labels = _labels(np.concatenate([ally, ty]))
    labels[test_index] = labels[sorted_test]
    n = feats.shape[0]

    if not isinstance(graph, dict):
        raise fail(files["graph"], f"expected a dict of adjacency lists, found {type(graph).__name__}")
    rows, cols = [], []
    for key, nbrs in graph.items():
        if not isinstance(key, (int, np.integer)) or not isinstance(nbrs, (list, tuple, np.ndarray)):
            raise fail(files["graph"], f"entry {key!r}: expected int -> list of ints")
        try:
            nb = np.asarray(nbrs, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise fail(files["graph"], f"node {key}: neighbour list is not integers") from None
        rows.append(np.full(len(nb), int(key), dtype=np.int64))
        cols.append(nb)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    bad = (row < 0) | (row >= n) | (col < 0) | (col >= n)
    if bad.any():
        k = int(np.argmax(bad))
        raise fail(files["graph"], f"edge ({row[k]}, {col[k]}) refers to a node outside 0..{n - 1} "
                                   f"({n} nodes from allx + tx)")
    keep = row != col
    row, col = row[keep], col[keep]
    # coalesce(sort_by_row=False): unique pairs ordered by (col, row)
    key = np.unique(col * n + row)
    col, row = key // n, key % n
    edge_index = torch.from_numpy(np.stack([row, col]))

    num_train = y.shape[0]
    train = np.zeros(n, bool)
    train[:num_train] = True
    val = np.zeros(n, bool)
    val[num_train:num_train + 500] = True
    test = np.zeros(n, bool)
    test[test_index] = True
    return Data(x=torch.from_numpy(feats), edge_index=edge_index, y=torch.from_numpy(labels),
                train_mask=torch.from_numpy(train), val_mask=torch.from_numpy(val), test_mask=torch.from_numpy(test))


def convert_planetoid(path: str | os.PathLike, *, dataset: str = "", split: str = "train",
                      shard: tuple[int, int] | None = None) -> Any:
    """Planetoid raw ``ind.*`` files -> a ``graphs`` DataSpec holding one graph with the public split masks.

    Args:
        path: the folder with ``ind.<name>.*`` (or its parent with ``raw/``, or one of the files).
        dataset: which dataset when the folder holds several (``cora``, ``citeseer``, ``pubmed``; case-insensitive).
            (default: the only one present)
        split: the split (HDF5 group) the graph is written to; the masks inside select train/val/test nodes.
        shard: ``(i, n)``: the single graph goes to the last shard (the contiguous rule of
            :func:`~sciml.datasets.shards.shard_range`).
    """
    shard = check_shard(shard)
    folder, prefix = find_planetoid(path, dataset)
    files = [folder / f"ind.{prefix}.{part}" for part in PARTS]
    for f in files:
        if not f.is_file():
            raise fail(f, "missing (a Planetoid dataset needs ind.<name>.{" + ",".join(PARTS) + "})")
    return single_record_spec(lambda: read_planetoid(folder, prefix), shard=shard, split=split, kind="graphs",
                              source=f"planetoid:{folder / ('ind.' + prefix)}",
                              config=config_of(converter="planetoid", path=path, dataset=prefix, split=split))
