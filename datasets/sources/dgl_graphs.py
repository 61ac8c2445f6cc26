"""DGL graph files (``dgl.save_graphs``, the ``*.bin`` files in a DGL dataset's save folder) -> ``graphs`` records,
one PyG ``Data`` per stored graph. Needs the optional package DGL (``pip install 'sciml[dgl]'``), imported through
:func:`sciml.gnn.interop.import_dgl`.

Each graph becomes the ``Data`` of :func:`sciml.gnn.interop.from_dgl`: ``edge_index`` in DGL's edge-id order
(self-loops and multi-edges kept), ``num_nodes``, node features under their names (``feat`` -> ``x``, ``label`` ->
``y``), edge features as ``edge_<name>`` (``feat`` -> ``edge_attr``), and the file's graph labels (one row per graph)
as graph-level attributes under their names (``label_key=`` stores one of them as ``y`` instead).

The file is read by DGL's own loader (``dgl.load_graphs``: DGL's binary serialisation, no pickle); the
``*_info.pkl`` pickles that DGL datasets keep next to their ``.bin`` files are never read. Heterogeneous graphs are
refused (convert them with ``dgl.to_homogeneous`` first). Graphs are loaded ``chunk`` at a time, so memory stays
bounded by a chunk.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Iterator

from sciml.datasets.sources._common import (LazySplit, check_shard, config_of, existing, fail,
                                            make_spec, one_line)

__all__ = ["convert_dgl", "find_dgl_file"]


def find_dgl_file(path: str | os.PathLike, member: str = "") -> Path:
    """The ``.bin`` file at ``path``: the file itself, or in a folder the only ``*.bin`` (or the one named by
    ``member``)."""
    p = existing(path)
    if p.is_file():
        return p
    if member:
        q = p / member
        if not q.is_file():
            raise fail(p, f"has no file {member!r}")
        return q
    found = sorted(q for q in p.glob("*.bin") if q.is_file())
    if not found:
        raise fail(p, "holds no DGL graph file (*.bin, written by dgl.save_graphs)")
    if len(found) > 1:
        raise fail(p, f"holds several .bin files ({', '.join(q.name for q in found)}); choose one with member=")
    return found[0]


def _dgl() -> Any:
    from sciml.gnn.interop import import_dgl

    try:
        return import_dgl()
    except ImportError as err:
        raise ImportError(f"the 'dgl' converter needs the optional package DGL: {err}") from None


def _load(dgl: Any, path: Path, indices: list[int]) -> list[Any]:
    try:
        out = dgl.load_graphs(str(path), indices)
    except Exception as err:  # DGLError from the C++ reader: not a DGL file, truncated, index out of range
        raise fail(path, f"cannot read DGL graphs ({type(err).__name__}: {one_line(err)})") from None
    return out[0] if isinstance(out, tuple) else out


#: First 8 bytes of a file written by ``dgl.save_graphs`` (little-endian ``uint64``), then the format version, the
#: graph type and, in format 2, the number of graphs.
DGL_MAGIC = 0xDD2E4FF046B4A13F


def _count_graphs(dgl: Any, path: Path) -> int:
    """The number of graphs in the file: from the header of DGL's format 2 (checked by loading the last graph
    through DGL, which reads the index at the end of the file), else by loading every graph once."""
    with open(path, "rb") as f:
        head = f.read(32)
    if len(head) < 32:
        raise fail(path, f"not a DGL graph file ({len(head)} bytes; dgl.save_graphs writes at least 4 KiB)")
    magic, version, _, num_graphs = struct.unpack("<4Q", head)
    if magic != DGL_MAGIC:
        raise fail(path, f"not a DGL graph file (magic number {magic:#x}, expected {DGL_MAGIC:#x})")
    if version != 2:  # the format of DGL < 0.5: no index, count by loading
        return len(_load(dgl, path, []))
    if num_graphs:
        _load(dgl, path, [int(num_graphs) - 1])
    return int(num_graphs)


def convert_dgl(path: str | os.PathLike, *, member: str = "", label_key: str = "", split: str = "train",
                chunk: int = 256, shard: tuple[int, int] | None = None) -> Any:
    """A DGL graph file (``dgl.save_graphs``) -> a ``graphs`` DataSpec with one record per graph.

    Args:
        path: the ``.bin`` file, or a folder holding exactly one (a DGL dataset's save folder).
        member: the file to read when the folder holds several ``.bin`` files. (default: the only one)
        label_key: the graph label (a key of the file's labels dict) to store as ``y``; the other labels keep their
            names. (default: every label keeps its name)
        split: the split (HDF5 group) the graphs are written to. (default: ``train``)
        chunk: graphs loaded per call of ``dgl.load_graphs`` (memory bound). (default: 256)
        shard: ``(i, n)``: only the contiguous block :func:`~sciml.datasets.shards.shard_range` ``(G, (i, n))``.
    """
    from sciml.datasets.shards import shard_range
    from sciml.errors import ConfigError
    from sciml.gnn.interop import dgl_records, writer_levels

    shard = check_shard(shard)
    if chunk < 1:
        raise ConfigError(f"dgl: chunk must be a positive integer, got {chunk}")
    p = find_dgl_file(path, member)
    dgl = _dgl()
    total = _count_graphs(dgl, p)
    try:
        labels = dgl.data.utils.load_labels(str(p)) if total else {}
    except Exception as err:  # noqa: BLE001 - DGLError
        raise fail(p, f"cannot read the graph labels ({type(err).__name__}: {one_line(err)})") from None
    for k, v in labels.items():
        if v.dim() == 0 or v.size(0) != total:
            raise fail(p, f"graph label {k!r} has shape {tuple(v.shape)}, expected {total} rows (one per graph)")
    if label_key:
        if label_key not in labels:
            raise ConfigError(f"dgl: label_key={label_key!r} is not a label of {p} (labels: "
                              f"{', '.join(labels) or 'none'})")
        labels = {("y" if k == label_key else k): v for k, v in labels.items()}
    block = shard_range(total, shard) if shard else range(total)

    def records(start: int, stop: int) -> Iterator[Any]:
        for a in range(start, stop, chunk):
            ids = list(range(a, min(a + chunk, stop)))
            graphs = _load(dgl, p, ids)
            if len(graphs) != len(ids):
                raise fail(p, f"asked DGL for graphs {ids[0]}..{ids[-1]}, got {len(graphs)}")
            for i, g in zip(ids, graphs):
                try:
                    recs = dgl_records(g, {k: v[i:i + 1] for k, v in labels.items()})
                except (TypeError, ValueError) as err:
                    raise fail(p, f"graph {i}: {one_line(err)}") from None
                if len(recs) != 1:
                    raise fail(p, f"graph {i} is a batch of {len(recs)} graphs")
                yield recs[0]

    levels = None
    if len(block):
        first = next(records(block.start, block.start + 1))
        levels = writer_levels(first, graph_keys=labels)
    count = len(block)
    spec = make_spec(kind="graphs", splits={split: LazySplit(lambda: records(block.start, block.stop), count)},
                     source=f"dgl:{p}", sizes={split: count},
                     config=config_of(converter="dgl", path=path, member=member, label_key=label_key,
                                      split=split, chunk=chunk))
    spec.levels = levels
    return spec


