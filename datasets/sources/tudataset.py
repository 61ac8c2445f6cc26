"""TU graph collections in the text format of the TU Dortmund benchmark (Morris et al. 2020) -> many graphs.

Files ``<NAME>_<part>.txt`` in one folder: ``A`` (one ``row, col`` edge per line, 1-based node ids over the whole
collection), ``graph_indicator`` (graph id of each node, 1-based, non-decreasing), ``graph_labels`` (class per
graph) or ``graph_attributes`` (regression targets), and optionally ``node_labels``, ``node_attributes``,
``edge_labels``, ``edge_attributes`` (comma-separated columns, one line per node / edge).

The graphs match ``torch_geometric.datasets.TUDataset(root, NAME, use_node_attr=..., use_edge_attr=...)`` exactly:
``x`` = [node attributes (with ``use_node_attr``), one-hot node labels], ``edge_attr`` = [edge attributes (with
``use_edge_attr``), one-hot edge labels], labels shifted to start at 0 per column and one-hot over the whole
collection, ``y`` = the graph labels renumbered 0..K-1 in sorted order, self loops removed and edges coalesced
(sorted, duplicates merged by summing their attributes).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciml.datasets.sources._common import (LazySplit, check_shard, config_of, existing, fail, in_shard,
                                            make_spec, shard_count)

__all__ = ["convert_tudataset", "read_tu_table", "find_tu"]


def find_tu(path: str | os.PathLike, dataset: str = "") -> tuple[Path, str]:
    """The folder holding ``<NAME>_A.txt`` and ``NAME``; ``path`` may be the folder, its parent (``<NAME>/raw``) or
    one of the files."""
    p = existing(path)
    if p.is_file():
        m = re.match(r"(.+)_(A|graph_indicator|graph_labels|graph_attributes|node_labels|node_attributes|"
                     r"edge_labels|edge_attributes)\.txt$", p.name)
        if not m:
            raise fail(p, "not a TU dataset file (expected <NAME>_A.txt, <NAME>_graph_indicator.txt, ...)")
        return p.parent, dataset or m.group(1)
    for folder in (p, p / "raw"):
        if not folder.is_dir():
            continue
        names = sorted(f.name[:-len("_A.txt")] for f in folder.glob("*_A.txt"))
        if dataset:
            if dataset in names:
                return folder, dataset
            continue
        if len(names) == 1:
            return folder, names[0]
        if len(names) > 1:
            raise fail(folder, f"holds several TU datasets ({', '.join(names)}); choose one with dataset=")
    raise fail(p, f"no TU dataset files ({dataset or '<NAME>'}_A.txt) here or in raw/")


def read_tu_table(path: Path, *, integer: bool, columns: int | None = None) -> np.ndarray:
    """Read a comma-separated numeric table ``[rows, cols]``; every line must have the same number of columns."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise fail(path, f"cannot read: {err.strerror or err}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise fail(path, "non-ASCII byte in a numeric table (corrupted file?)", line=line) from None
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise fail(path, "empty file")
    counts = np.fromiter((ln.count(",") for ln in lines), dtype=np.int64, count=len(lines))
    want = int(counts[0]) + 1 if columns is None else columns
    bad = np.flatnonzero(counts != want - 1)
    if len(bad):
        k = int(bad[0])
        raise fail(path, f"expected {want} comma-separated column(s), found {counts[k] + 1}: {lines[k][:60]!r}",
                   line=k + 1)
    tokens = text.replace(",", " ").split()
    if len(tokens) != len(lines) * want:
        # an empty field or an empty line: find it
        for k, ln in enumerate(lines):
            if len(ln.replace(",", " ").split()) != want:
                raise fail(path, f"expected {want} value(s), found {len(ln.replace(',', ' ').split())}: "
                                 f"{ln[:60]!r}", line=k + 1)
    try:
        arr = np.array(tokens, dtype=np.float64)
    except ValueError:
        for k, ln in enumerate(lines):
            for tok in ln.replace(",", " ").split():
                try:
                    float(tok)
                except ValueError:
                    raise fail(path, f"not a number: {tok[:40]!r}", line=k + 1) from None
        raise  # pragma: no cover
    arr = arr.reshape(len(lines), want)
    if not np.isfinite(arr).all():
        k = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise fail(path, f"NaN or infinite value: {lines[k][:60]!r}", line=k + 1)
    if integer:
        if (arr != np.round(arr)).any():
            k = int(np.flatnonzero((arr != np.round(arr)).any(axis=1))[0])
            raise fail(path, f"expected integers, found {lines[k][:60]!r}", line=k + 1)
        return arr.astype(np.int64)
    return arr.astype(np.float32)


def _one_hot_columns(labels: np.ndarray) -> np.ndarray:
    """PyG's rule: each column shifted to start at 0, one-hot over 0..max, the blocks concatenated."""
    labels = labels - labels.min(axis=0, keepdims=True)
    blocks = []
    for col in labels.T:
        block = np.zeros((len(col), int(col.max()) + 1), dtype=np.float32)
        block[np.arange(len(col)), col] = 1
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


class _TU:
    """The whole collection parsed and checked, kept as flat arrays; graphs are cut out one at a time."""

    def __init__(self, folder: Path, prefix: str, use_node_attr: bool, use_edge_attr: bool) -> None:
        def file(part: str) -> Path:
            return folder / f"{prefix}_{part}.txt"

        for part in ("A", "graph_indicator"):
            if not file(part).is_file():
                raise fail(file(part), "missing (a TU dataset needs <NAME>_A.txt and <NAME>_graph_indicator.txt)")
        indicator = read_tu_table(file("graph_indicator"), integer=True, columns=1)[:, 0]
        n = len(indicator)
        if indicator.min() < 1:
            k = int(np.argmax(indicator < 1))
            raise fail(file("graph_indicator"), f"graph id {indicator[k]} < 1", line=k + 1)
        if (np.diff(indicator) < 0).any():
            k = int(np.argmax(np.diff(indicator) < 0)) + 1
            raise fail(file("graph_indicator"), f"graph ids must be non-decreasing (nodes of a graph contiguous); "
                                                f"found {indicator[k]} after {indicator[k - 1]}", line=k + 1)

        y = None
        if file("graph_attributes").is_file():
            y = read_tu_table(file("graph_attributes"), integer=False)
            ypath = file("graph_attributes")
        elif file("graph_labels").is_file():
            labels = read_tu_table(file("graph_labels"), integer=True, columns=1)[:, 0]
            _, y = np.unique(labels, return_inverse=True)
            y = y.astype(np.int64).reshape(-1)
            ypath = file("graph_labels")
        num_graphs = int(indicator.max())
        if y is not None:
            if len(y) != num_graphs:
                raise fail(ypath, f"has {len(y)} lines but graph_indicator names {num_graphs} graphs")
        self.y = y

        edges = read_tu_table(file("A"), integer=True, columns=2)
        if len(edges) and (edges.min() < 1 or edges.max() > n):
            k = int(np.flatnonzero(((edges < 1) | (edges > n)).any(axis=1))[0])
            raise fail(file("A"), f"edge ({edges[k, 0]}, {edges[k, 1]}) refers to a node outside 1..{n} "
                                  f"({n} nodes in graph_indicator)", line=k + 1)
        row, col = edges[:, 0] - 1, edges[:, 1] - 1
        cross = indicator[row] != indicator[col]
        if cross.any():
            k = int(np.argmax(cross))
            raise fail(file("A"), f"edge ({row[k] + 1}, {col[k] + 1}) joins graphs {indicator[row[k]]} and "
                                  f"{indicator[col[k]]}", line=k + 1)
        num_edges = len(row)

        def node_table(part: str, integer: bool) -> np.ndarray | None:
            if not file(part).is_file():
                return None
            arr = read_tu_table(file(part), integer=integer)
            if len(arr) != n:
                raise fail(file(part), f"has {len(arr)} lines but graph_indicator has {n} nodes")
            return arr

        def edge_table(part: str, integer: bool) -> np.ndarray | None:
            if not file(part).is_file():
                return None
            arr = read_tu_table(file(part), integer=integer)
            if len(arr) != num_edges:
                raise fail(file(part), f"has {len(arr)} lines but {prefix}_A.txt has {num_edges} edges")
            return arr

        node_attr = node_table("node_attributes", False)
        node_label = node_table("node_labels", True)
        edge_attr = edge_table("edge_attributes", False)
        edge_label = edge_table("edge_labels", True)
        x_parts = [a for a in (node_attr if use_node_attr else None,
                               None if node_label is None else _one_hot_columns(node_label)) if a is not None]
        has_x = node_attr is not None or node_label is not None
        self.x = (np.concatenate(x_parts, axis=1).astype(np.float32) if x_parts
                  else np.zeros((n, 0), np.float32)) if has_x else None
        e_parts = [a for a in (edge_attr if use_edge_attr else None,
                               None if edge_label is None else _one_hot_columns(edge_label)) if a is not None]
        has_e = edge_attr is not None or edge_label is not None
        ea = (np.concatenate(e_parts, axis=1).astype(np.float32) if e_parts
              else np.zeros((num_edges, 0), np.float32)) if has_e else None

        # remove self loops, coalesce: sort by (row, col), sum the attributes of duplicates
        keep = row != col
        row, col = row[keep], col[keep]
        if ea is not None:
            ea = ea[keep]
        key, inverse = np.unique(row * n + col, return_inverse=True)
        if ea is not None:
            summed = np.zeros((len(key), ea.shape[1]), np.float32)
            np.add.at(summed, inverse.reshape(-1), ea)
            ea = summed
        self.row, self.col, self.edge_attr = key // n, key % n, ea

        counts = np.bincount(indicator - 1, minlength=num_graphs)
        self.node_ptr = np.concatenate([[0], np.cumsum(counts)])
        self.edge_ptr = np.searchsorted(self.row, self.node_ptr)  # edges sorted by source node
        self.num_graphs = num_graphs

    def graph(self, g: int):
        from torch_geometric.data import Data

        n0, n1 = int(self.node_ptr[g]), int(self.node_ptr[g + 1])
        e0, e1 = int(self.edge_ptr[g]), int(self.edge_ptr[g + 1])
        edge_index = torch.from_numpy(np.stack([self.row[e0:e1], self.col[e0:e1]]) - n0)
        data = Data(edge_index=edge_index)
        if self.x is not None:
            data.x = torch.from_numpy(self.x[n0:n1].copy())
        else:
            data.num_nodes = n1 - n0
        if self.edge_attr is not None:
            data.edge_attr = torch.from_numpy(self.edge_attr[e0:e1].copy())
        if self.y is not None:
            yg = self.y[g]
            data.y = torch.from_numpy(np.atleast_1d(yg).copy()) if self.y.ndim == 1 else \
                torch.from_numpy(yg.reshape(1, -1).copy())
        return data


def convert_tudataset(path: str | os.PathLike, *, dataset: str = "", use_node_attr: bool = False,
                      use_edge_attr: bool = False, split: str = "train",
                      shard: tuple[int, int] | None = None) -> Any:
    """A TU-format graph collection -> a ``graphs`` DataSpec, one record per graph (all in one split).

    Args:
        path: the folder with ``<NAME>_*.txt`` (or its parent with ``raw/``, or one of the files).
        dataset: ``NAME`` when the folder holds several collections. (default: the only one)
        use_node_attr: put the continuous node attributes in front of the one-hot node labels in ``x``
            (PyG's ``use_node_attr``). (default: :obj:`False`)
        use_edge_attr: likewise for edge attributes in ``edge_attr``. (default: :obj:`False`)
        split: the split (HDF5 group) the graphs go to; TU collections have no official split.
        shard: ``(i, n)``: the contiguous block of graphs :func:`~sciml.datasets.shards.shard_range` gives.
    """
    shard = check_shard(shard)
    folder, prefix = find_tu(path, dataset)
    tu = _TU(folder, prefix, use_node_attr, use_edge_attr)

    def records():
        for g in range(tu.num_graphs):
            if in_shard(g, shard, tu.num_graphs):
                yield tu.graph(g)

    count = shard_count(tu.num_graphs, shard)
    return make_spec(kind="graphs", splits={split: LazySplit(records, count)}, source=f"tudataset:{folder / prefix}",
                     config=config_of(converter="tudataset", path=path, dataset=prefix, use_node_attr=use_node_attr,
                                      use_edge_attr=use_edge_attr, split=split),
                     sizes={split: count})
