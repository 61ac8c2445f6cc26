"""Write records (``sciml.datasets.records``) into one sciml-h5 file: atomically, chunked, checksummed.

.. code-block:: python

    from sciml.datasets.writer import H5Writer, write_dataset

    with H5Writer("out/cora.h5", kind="graphs", source="planetoid:Cora") as w:
        w.append("train", data)            # a PyG Data
    # -> out/cora.h5 appears only now (written as out/cora.h5.<pid>-<hex>.partial, checksummed, complete=1, renamed)

Records are buffered per split and written in blocks (memory stays bounded by ``buffer_bytes`` per split). On an
exception inside the ``with`` block the partial file is deleted and nothing is left at ``path``. See
:mod:`sciml.datasets.schema` for the layout.
"""
from __future__ import annotations

import functools
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sciml.errors import DataFormatError
from sciml.io import fsync_dir, fsync_file

from .records import KINDS, FieldSample, TimeSeries
from .schema import FORMAT, FORMAT_VERSION, KIND_SPECS, RESERVED_NAMES, dataset_sha256, iter_datasets
from .shards import shard_path

__all__ = ["DataSpec", "H5Writer", "write_dataset", "write_spec", "partial_path", "remove_stale_partials",
           "created_by", "shard_path"]

CHUNK_BYTES = 256 * 2**10
FIELD_CHUNK_LIMIT = 4 * 2**20


@dataclass
class DataSpec:
    """What a converter or generator returns: the records of each split, streamed, plus provenance.

    Args:
        kind (str): One of ``"graphs"``, ``"atoms"``, ``"fields"``, ``"series"``.
        splits (dict[str, Iterable]): split name -> records (iterables are consumed once, lazily).
        source (str): Where the data comes from (``"tudataset:MUTAG"``, ``"generator:darcy"``...).
        config (dict): The options that produced it (written as YAML into the root ``config`` attribute).
        coords (dict[str, np.ndarray], optional): Grid coordinates ``t, x, y, z`` for ``"fields"``.
        sizes (dict[str, int], optional): Expected number of records per split (for progress bars).
        levels (dict[str, str], optional): graphs/atoms: key -> ``"node"``, ``"edge"`` or ``"graph"``, passed to
            :class:`H5Writer` where the guess from the first record is ambiguous (a per-graph tensor of shape
            ``[num_nodes]``, or a per-edge tensor when ``N == E``).
    """

    kind: str
    splits: dict[str, Iterable[Any]]
    source: str
    config: dict
    coords: dict[str, np.ndarray] | None = None
    sizes: dict[str, int] | None = None
    levels: dict[str, str] | None = None


def partial_path(path: str | os.PathLike) -> Path:
    """A fresh name where :class:`H5Writer` writes before the final rename: ``<name>.<pid>-<8 hex>.partial`` next to
    ``path`` (unique, so two writers of one output never clobber each other's file)."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete the ``<name>.<pid>-<hex>.partial`` files (or folders) next to ``path`` whose writer process is gone
    (killed mid-write); those of live processes are left alone. Returns the deleted paths."""
    from sciml.io import pid_alive

    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)-[0-9a-f]+\.partial")
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if not m or pid_alive(int(m.group(1))):
            continue
        p = path.parent / name
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


@functools.lru_cache(maxsize=1)
def created_by() -> str:
    """``"sciml <version> (git <hash>[-dirty])"`` of the running package."""
    import sciml
    from sciml.config.run_info import git_info

    info = git_info()
    commit = info["git_hash"]
    if commit != "unknown":
        commit = commit[:12] + ("-dirty" if info["git_dirty"] else "")
    return f"sciml {sciml.__version__} (git {commit})"


def _plain(obj: Any) -> Any:
    """Config values as plain YAML types."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


def _compression(spec: str | None) -> dict[str, Any]:
    if spec is None or spec == "none":
        return {}
    name, _, level = str(spec).partition(":")
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": int(level or 4), "shuffle": True}
    if name == "lzf" and not level:
        return {"compression": "lzf", "shuffle": True}
    raise DataFormatError(f"compression {spec!r}: expected none, lzf, gzip or gzip:<0-9>")


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        try:
            return value.numpy()
        except TypeError as err:  # bfloat16 and friends
            raise DataFormatError(f"dtype {value.dtype} cannot be stored ({err})") from None
    return np.asarray(value)


class _SplitStore:
    """Buffered, appendable datasets of one split group."""

    def __init__(self, group: Any, filters: dict[str, Any], buffer_bytes: int) -> None:
        self.group, self.filters, self.buffer_bytes = group, filters, buffer_bytes
        self.attrs: dict[str, dict[str, Any]] = {}
        self.bufs: dict[str, list[np.ndarray]] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.buffered = 0
        self.num_samples = 0

    def declare(self, name: str, dtype: np.dtype, **attrs: Any) -> None:
        self.attrs[name] = {k: v for k, v in attrs.items() if v is not None}
        self.dtypes[name] = np.dtype(dtype)
        self.bufs[name] = []

    def add(self, name: str, block: np.ndarray) -> None:
        dtype = self.dtypes[name]
        if block.dtype != dtype:
            if dtype.kind == "O" or block.dtype.kind == "O" or np.can_cast(block.dtype, dtype, "safe"):
                block = block.astype(dtype)
            else:
                # never change a value silently: a narrower dataset dtype (set by the first record) is accepted
                # only when every value survives the round trip (int64 ids that fit in int32, float64 zeros...)
                try:
                    with np.errstate(all="ignore"):
                        narrowed = block.astype(dtype)
                        same = np.array_equal(narrowed.astype(block.dtype), block,
                                              equal_nan=block.dtype.kind in "fc")
                except (TypeError, ValueError, OverflowError):
                    same = False
                if not same:
                    raise DataFormatError(f"{name!r}: dtype {block.dtype} cannot be stored as the dataset's dtype "
                                          f"{dtype} (set by the first record) without changing values; make the "
                                          "records' dtypes agree")
                block = narrowed
        self.bufs[name].append(block)
        self.buffered += block.nbytes

    def maybe_flush(self) -> None:
        if self.buffered >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        for name, blocks in self.bufs.items():
            if not blocks:
                continue
            cat = int(self.attrs[name].get("cat_dim", 0))
            block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=cat)
            self._write(name, block, cat)
            blocks.clear()
        self.buffered = 0

    def _write(self, name: str, block: np.ndarray, cat: int) -> None:
        if name not in self.group:
            shape = list(block.shape)
            shape[cat] = 0
            maxshape = list(block.shape)
            maxshape[cat] = None
            chunks = self._chunks(name, block, cat)
            dtype, filters = block.dtype, {"fletcher32": True, **self.filters}
            if dtype.kind == "O":  # variable-length strings: no filters apply
                import h5py

                dtype, filters = h5py.string_dtype(), {}
            d = self.group.create_dataset(name, shape=tuple(shape), maxshape=tuple(maxshape), dtype=dtype,
                                          chunks=chunks, **filters)
            for k, v in self.attrs[name].items():
                d.attrs[k] = v
        d = self.group[name]
        start = d.shape[cat]
        new = list(d.shape)
        new[cat] = start + block.shape[cat]
        d.resize(tuple(new))
        index = [slice(None)] * block.ndim
        index[cat] = slice(start, new[cat])
        d[tuple(index)] = block

    def _chunks(self, name: str, block: np.ndarray, cat: int) -> tuple[int, ...]:
        shape = [max(1, s) for s in block.shape]
        if name.startswith("fields/"):  # one sample (and all or one time step) per chunk
            sample = shape[1:]
            if int(np.prod(sample)) * block.dtype.itemsize > FIELD_CHUNK_LIMIT:
                sample[0] = 1
            return (1, *sample)
        row = int(np.prod([s for i, s in enumerate(shape) if i != cat])) * max(1, block.dtype.itemsize)
        rows = max(1, min(CHUNK_BYTES // row, block.shape[cat]))
        shape[cat] = rows
        return tuple(shape)


class H5Writer:
    """Streams records into a sciml-h5 file, atomically.

    Args:
        path (str or PathLike): The output file (``.h5``). Written as ``<path>.<pid>-<hex>.partial``, fsync'ed,
            renamed on success and the folder fsync'ed (an existing file at ``path`` is replaced only then);
            partial files of dead processes are removed when a writer opens.
        kind (str): ``"graphs"``, ``"atoms"``, ``"fields"`` or ``"series"``; records are PyG ``Data``,
            ``Data``, :class:`~sciml.datasets.records.FieldSample`, :class:`~sciml.datasets.records.TimeSeries`.
        source (str): Provenance (root attribute ``source``).
        config (dict, optional): Options that produced the data (root attribute ``config``, YAML).
        compression (str, optional): ``None``, ``"lzf"``, ``"gzip"`` or ``"gzip:<level>"`` (with the shuffle
            filter). (default: :obj:`None`)
        coords (dict[str, np.ndarray], optional): Grid coordinates of ``"fields"`` (``t``, ``x``, ``y``, ``z``;
            lengths must match the field axes). (default: :obj:`None`)
        shard (tuple[int, int], optional): ``(index, count)`` written as ``shard_index``/``shard_count`` when
            this file is one shard of a dataset. (default: :obj:`None`)
        levels (dict[str, str], optional): For graphs/atoms: key -> ``"node"``, ``"edge"`` or ``"graph"``
            where the level guessed from the first record would be wrong (e.g. a first graph with one node).
            (default: guessed, see :func:`_infer_level`)
        buffer_bytes (int): Per-split buffer before a block is written. (default: 16 MiB)
    """

    def __init__(self, path: str | os.PathLike, kind: str, *, source: str, config: dict | None = None,
                 compression: str | None = None, coords: dict[str, np.ndarray] | None = None,
                 shard: tuple[int, int] | None = None, levels: dict[str, str] | None = None,
                 buffer_bytes: int = 16 * 2**20) -> None:
        import h5py
        import yaml

        if kind not in KINDS:
            raise DataFormatError(f"{path}: unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
        if coords and kind != "fields":
            raise DataFormatError(f"{path}: coords are only stored for kind 'fields', not {kind!r}")
        self.path, self.kind = Path(path), kind
        self.partial = partial_path(self.path)
        self._filters = _compression(compression)
        self._coords = {k: np.asarray(v, dtype=np.float64) for k, v in (coords or {}).items()}
        for k, v in self._coords.items():
            if v.ndim != 1 or not np.isfinite(v).all():
                raise DataFormatError(f"{path}: coords[{k!r}] must be a finite 1-D array, got shape {v.shape}")
        self._buffer_bytes = buffer_bytes
        self._levels = dict(levels or {})
        bad = {k: v for k, v in self._levels.items() if v not in ("node", "edge", "graph")}
        if bad:
            raise DataFormatError(f"{path}: levels {bad}: each must be 'node', 'edge' or 'graph'")
        self._splits: dict[str, _SplitStore] = {}
        self._schema: dict[str, Any] = {}  # set by the first record of the file
        config_text = yaml.safe_dump(_plain(config or {}), sort_keys=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.path)
        self._file = h5py.File(self.partial, "w", libver=("earliest", "latest"))
        self._closed = False
        try:
            a = self._file.attrs
            a["format"], a["format_version"], a["kind"] = FORMAT, FORMAT_VERSION, kind
            a["created_by"], a["source"], a["config"] = created_by(), str(source), config_text
            if shard is not None:
                a["shard_index"], a["shard_count"] = int(shard[0]), int(shard[1])
        except BaseException:
            self.abort()
            raise

    # -------------------------------------------------------------------------------------------- public API
    def __enter__(self) -> "H5Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def split(self, name: str) -> _SplitStore:
        """The store of split ``name`` (created, empty, on first use)."""
        store = self._splits.get(name)
        if store is None:
            if not name or "/" in name or name in ("meta", "coords"):
                raise DataFormatError(f"{self.path}: invalid split name {name!r}")
            group = self._file.create_group(name)
            store = self._splits[name] = _SplitStore(group, self._filters, self._buffer_bytes)
        return store

    def append(self, split: str, record: Any) -> None:
        """Append one record to ``split``."""
        store = self.split(split)
        index = store.num_samples
        try:
            pack = {"graphs": self._pack_graph, "atoms": self._pack_graph, "fields": self._pack_field,
                    "series": self._pack_series}[self.kind]
            pack(store, record)
        except DataFormatError as err:
            raise DataFormatError(f"{self.path}: {split} record {index}: {err}") from None
        store.num_samples += 1
        store.maybe_flush()

    def extend(self, split: str, records: Iterable[Any]) -> int:
        """Append every record of ``records`` to ``split``; returns how many."""
        n = 0
        for record in records:
            self.append(split, record)
            n += 1
        return n

    def close(self) -> Path:
        """Flush, write checksums and ``complete = 1``, and rename the partial file to :attr:`path`."""
        if self._closed:
            return self.path
        try:
            for store in self._splits.values():
                store.flush()
                store.group.attrs["num_samples"] = store.num_samples
            for store in self._splits.values():
                for _, d in iter_datasets(store.group):
                    d.attrs["sha256"] = dataset_sha256(d)
            self._file.flush()
            self._file.attrs["complete"] = 1
            self._file.close()
            self._closed = True
            fsync_file(self.partial)
            os.replace(self.partial, self.path)
            fsync_dir(self.path.parent)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the partial file (nothing is left at :attr:`path`)."""
        if not self._closed:
            self._closed = True
            try:
                self._file.close()
            except Exception:  # noqa: BLE001  (the file is deleted anyway)
                pass
        try:
            self.partial.unlink()
        except FileNotFoundError:
            pass

    # -------------------------------------------------------------------------------------------- raw arrays
    def _declare_raw(self, split: str, name: str, dtype: np.dtype, attrs: Mapping[str, Any]) -> None:
        """Declare a dataset with explicit attributes (used by merge)."""
        self.split(split).declare(name, dtype, **{k: v for k, v in attrs.items() if k != "sha256"})

    def _append_raw(self, split: str, name: str, block: np.ndarray) -> None:
        store = self.split(split)
        store.add(name, block)
        store.maybe_flush()

    # -------------------------------------------------------------------------------------------- packing
    def _check_finite(self, key: str, array: np.ndarray, allow_nan: np.ndarray | None = None) -> None:
        if array.dtype.kind != "f":
            return
        ok = np.isfinite(array)
        if allow_nan is not None:
            ok |= allow_nan
        if not ok.all():
            loc = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise DataFormatError(f"{key!r} has a non-finite value {array[loc]} at index {loc}")

    def _pack_graph(self, store: _SplitStore, data: Any) -> None:
        from torch_geometric.data import Data

        if not isinstance(data, Data):
            raise DataFormatError(f"expected a torch_geometric.data.Data for kind {self.kind!r}, "
                                  f"got {type(data).__name__}")
        atoms = self.kind == "atoms"
        node_ptr = "atom_ptr" if atoms else "node_ptr"
        items = {k: v for k, v in data.items() if k != "num_nodes"}
        num_nodes = data.num_nodes
        if num_nodes is None:
            raise DataFormatError("the graph has no nodes (no node-level tensor and no num_nodes)")
        num_edges = int(data.edge_index.shape[1]) if data.edge_index is not None else 0
        if "levels" not in self._schema:
            self._schema["levels"] = self._graph_levels(data, items)
            self._schema["has_edges"] = not atoms or any(lv == "edge" for lv, *_ in
                                                         self._schema["levels"].values())
        levels = self._schema["levels"]
        if set(items) != set(levels):
            extra, missing = sorted(set(items) - set(levels)), sorted(set(levels) - set(items))
            raise DataFormatError("keys differ from the first record: " +
                                  (f"unexpected {', '.join(map(repr, extra))} " if extra else "") +
                                  (f"missing {', '.join(map(repr, missing))}" if missing else ""))
        if not store.attrs:
            for key, (level, cat, sample_dim, pytype, dtype, shape) in levels.items():
                ptr = {"node": node_ptr, "edge": "edge_ptr"}.get(level)
                store.declare(key, dtype, level="packed" if ptr else "sample", ptr=ptr, cat_dim=cat,
                              sample_dim=sample_dim, pytype=pytype, unit=level)
            store.declare(node_ptr, np.int64, level="ptr", unit="node")
            store.add(node_ptr, np.zeros(1, np.int64))
            if self._schema["has_edges"]:
                store.declare("edge_ptr", np.int64, level="ptr", unit="edge")
                store.add("edge_ptr", np.zeros(1, np.int64))
            store.declare("meta/sizes", np.int64, level="sample", sample_dim="stack")
            store.node_total = 0
            store.edge_total = 0
        for key, value in items.items():
            level, cat, sample_dim, pytype, dtype, shape = levels[key]
            if pytype == "str":
                store.add(key, np.array([value], dtype=object))
                continue
            array = _to_numpy(value)
            if level == "node" or level == "edge":
                expected = num_nodes if level == "node" else num_edges
                if array.ndim <= cat or array.shape[cat] != expected:
                    raise DataFormatError(f"{level}-level {key!r} has shape {tuple(array.shape)}, expected "
                                          f"{expected} along axis {cat} ({level}s of this graph; the level was "
                                          "guessed from the first record: pass levels={...} to the writer if "
                                          "it is wrong)")
                if array.shape[:cat] + array.shape[cat + 1:] != shape:
                    raise DataFormatError(f"{key!r} has shape {tuple(array.shape)}, but the first record's "
                                          f"was {_with_axis(shape, cat)}")
                if key == "edge_index" and array.size and (array.min() < 0 or array.max() >= num_nodes):
                    raise DataFormatError(f"edge_index holds node ids outside 0..{num_nodes - 1}")
            else:
                if tuple(array.shape) != shape:
                    raise DataFormatError(f"graph-level {key!r} has shape {tuple(array.shape)}, but the first "
                                          f"record's was {shape} (pass levels={{{key!r}: 'node'}} or 'edge' to "
                                          "the writer if it is not graph-level)")
                if sample_dim == "stack":
                    array = array[None]
            self._check_finite(key, array)
            store.add(key, array)
        store.node_total += num_nodes
        store.edge_total += num_edges
        store.add(node_ptr, np.array([store.node_total], np.int64))
        if self._schema["has_edges"]:
            store.add("edge_ptr", np.array([store.edge_total], np.int64))
        store.add("meta/sizes", np.array([num_nodes], np.int64))

    def _graph_levels(self, data: Any, items: dict[str, Any]) -> dict[str, tuple]:
        """key -> (level, cat_dim, sample_dim, pytype, dtype, shape without the cat axis / full shape)."""
        atoms = self.kind == "atoms"
        num_edges = int(data.edge_index.shape[1]) if data.edge_index is not None else 0
        spec = KIND_SPECS[self.kind]
        if atoms:
            missing = [k for k, (_, _, _, req) in spec.items() if req and k not in items and not k.endswith("ptr")]
            if missing:
                raise DataFormatError(f"atoms records need {', '.join(missing)} (missing)")
        levels: dict[str, tuple] = {}
        for key, value in items.items():
            if key in RESERVED_NAMES or "/" in key:
                raise DataFormatError(f"key {key!r} is reserved in the sciml-h5 layout; rename it")
            if isinstance(value, str):
                levels[key] = ("graph", 0, "stack", "str", np.dtype(object), ())
                continue
            if isinstance(value, (bool, int, float, np.generic)):
                pytype = None if isinstance(value, np.generic) else type(value).__name__
                levels[key] = ("graph", 0, "stack", pytype, np.asarray(value).dtype, ())
                continue
            if not (hasattr(value, "detach") or isinstance(value, np.ndarray)):
                raise DataFormatError(f"{key!r} is a {type(value).__name__}; only tensors, arrays, numbers and "
                                      "strings can be stored")
            array = _to_numpy(value)
            cat = int(data.__cat_dim__(key, value)) % max(1, array.ndim)
            if key in self._levels:
                level = self._levels[key]
            elif atoms and key in spec and spec[key][0] != "ptr":
                level = "node" if spec[key][0] == "packed" else "graph"
            else:
                level = _infer_level(key, array, cat, int(data.num_nodes), num_edges)
            if level == "graph":
                sample_dim = "cat" if array.ndim >= 1 and array.shape[0] == 1 else "stack"
                levels[key] = ("graph", 0, sample_dim, None, array.dtype, tuple(array.shape))
            else:
                levels[key] = (level, cat, None, None, array.dtype, array.shape[:cat] + array.shape[cat + 1:])
        if atoms:
            for key, (level, cat, sample_dim, pytype, dtype, shape) in levels.items():
                if key in spec:
                    _, cls, trailing, _ = spec[key]
                    from .schema import _dtype_ok

                    if not _dtype_ok(dtype, cls):
                        raise DataFormatError(f"atoms {key!r} has dtype {dtype}, expected "
                                              f"{ {'f': 'floating', 'i': 'integer', 'b': 'bool'}[cls]}")
                    want = trailing if level == "node" else ((1, *trailing), trailing)
                    if (level == "node" and shape != trailing) or (level == "graph" and shape not in want):
                        expected = _with_axis(trailing, 0) if level == "node" else list(want[0])
                        raise DataFormatError(f"atoms {key!r} has shape {_with_axis(shape, 0)}, expected {expected}")
        return levels

    def _pack_field(self, store: _SplitStore, sample: Any) -> None:
        if not isinstance(sample, FieldSample):
            raise DataFormatError(f"expected a FieldSample for kind 'fields', got {type(sample).__name__}")
        if not sample.fields:
            raise DataFormatError("FieldSample has no fields")
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in sample.fields.items()}
        params = {k: float(v) for k, v in sample.params.items()}
        if "fields" not in self._schema:
            shapes = {k: a.shape for k, a in arrays.items()}
            first = next(iter(arrays.values()))
            for k, a in arrays.items():
                if a.ndim < 2:
                    raise DataFormatError(f"field {k!r} has shape {a.shape}, expected [T, *spatial, C]")
                if a.shape[:-1] != first.shape[:-1]:
                    raise DataFormatError(f"field {k!r} has grid {a.shape[:-1]}, but field "
                                          f"{next(iter(arrays))!r} has {first.shape[:-1]} (every field shares "
                                          "T and the spatial grid)")
            for axis, name in enumerate(("t", "x", "y", "z")):
                if name in self._coords and (axis >= first.ndim - 1 or len(self._coords[name]) !=
                                             first.shape[axis]):
                    size = first.shape[axis] if axis < first.ndim - 1 else "no such axis"
                    raise DataFormatError(f"coords[{name!r}] has {len(self._coords[name])} points, but the fields' "
                                          f"axis {axis} ({name}) has {size}")
            self._schema["fields"], self._schema["params"] = shapes, sorted(params)
        if not store.attrs:
            for k, shape in self._schema["fields"].items():
                if "/" in k or not k:
                    raise DataFormatError(f"invalid field name {k!r}")
                store.declare(f"fields/{k}", np.float32, level="sample", sample_dim="stack")
            for k in self._schema["params"]:
                store.declare(f"params/{k}", np.float64, level="sample", sample_dim="stack")
            for k, v in self._coords.items():
                store.declare(f"coords/{k}", np.float64, level="coords")
                store.add(f"coords/{k}", v)
            store.declare("meta/sizes", np.int64, level="sample", sample_dim="stack")
        if set(arrays) != set(self._schema["fields"]) or sorted(params) != self._schema["params"]:
            raise DataFormatError(f"fields {sorted(arrays)} / params {sorted(params)} differ from the first "
                                  f"record's {sorted(self._schema['fields'])} / {self._schema['params']}")
        for k, a in arrays.items():
            if a.shape != self._schema["fields"][k]:
                raise DataFormatError(f"field {k!r} has shape {a.shape}, but the first record's was "
                                      f"{self._schema['fields'][k]}")
            self._check_finite(f"fields/{k}", a)
            store.add(f"fields/{k}", a[None])
        for k, v in params.items():
            if not math.isfinite(v):
                raise DataFormatError(f"parameter {k!r} is {v}")
            store.add(f"params/{k}", np.array([v]))
        size = int(np.prod(next(iter(arrays.values())).shape[:-1]))
        store.add("meta/sizes", np.array([size], np.int64))

    def _pack_series(self, store: _SplitStore, ts: Any) -> None:
        if not isinstance(ts, TimeSeries):
            raise DataFormatError(f"expected a TimeSeries for kind 'series', got {type(ts).__name__}")
        times = np.asarray(ts.times, dtype=np.float64)
        values = np.asarray(ts.values, dtype=np.float32)
        mask = np.asarray(ts.mask, dtype=bool)
        if values.ndim == 1:
            values, mask = values[:, None], mask.reshape(-1, 1) if mask.ndim == 1 else mask
        if times.ndim != 1 or values.ndim != 2 or values.shape[0] != times.shape[0] or mask.shape != values.shape:
            raise DataFormatError(f"times {times.shape}, values {values.shape}, mask {mask.shape}: expected [L], "
                                  "[L, D], [L, D] with the same L")
        if not np.isfinite(times).all():
            raise DataFormatError("times has a non-finite value")
        if (np.diff(times) < 0).any():
            i = int(np.argmax(np.diff(times) < 0))
            raise DataFormatError(f"times decrease at position {i + 1} ({times[i]} -> {times[i + 1]})")
        values = np.where(mask, values, np.float32(np.nan))
        self._check_finite("values", values, allow_nan=~mask)
        y = ts.y
        ytype = None if y is None else ("int" if isinstance(y, (int, np.integer)) and not isinstance(y, bool)
                                        else "float")
        if "dim" not in self._schema:
            self._schema["dim"], self._schema["ytype"] = values.shape[1], ytype
        if values.shape[1] != self._schema["dim"]:
            raise DataFormatError(f"values have {values.shape[1]} channels, but the first record's had "
                                  f"{self._schema['dim']}")
        if ytype != self._schema["ytype"]:
            raise DataFormatError(f"label y={y!r} ({ytype or 'none'}), but the first record's label type was "
                                  f"{self._schema['ytype'] or 'none (unlabelled)'}")
        if not store.attrs:
            store.declare("ptr", np.int64, level="ptr", unit="observation")
            store.add("ptr", np.zeros(1, np.int64))
            store.declare("times", np.float64, level="packed", ptr="ptr", cat_dim=0)
            store.declare("values", np.float32, level="packed", ptr="ptr", cat_dim=0)
            store.declare("mask", np.bool_, level="packed", ptr="ptr", cat_dim=0)
            if ytype is not None:
                store.declare("y", np.int64 if ytype == "int" else np.float64, level="sample", sample_dim="stack")
            store.declare("meta/sizes", np.int64, level="sample", sample_dim="stack")
            store.obs_total = 0
        if ytype is not None:
            if ytype == "float" and not math.isfinite(float(y)):
                raise DataFormatError(f"label y={y}")
            store.add("y", np.array([y], dtype=np.int64 if ytype == "int" else np.float64))
        store.add("times", times)
        store.add("values", values)
        store.add("mask", mask)
        store.obs_total += len(times)
        store.add("ptr", np.array([store.obs_total], np.int64))
        store.add("meta/sizes", np.array([len(times)], np.int64))


_NODE_KEYS = frozenset({"x", "pos", "z", "batch", "tags", "fixed", "forces"})


def _infer_level(key: str, array: np.ndarray, cat: int, num_nodes: int, num_edges: int) -> str:
    """Node-, edge- or graph-level, from the first record (pass ``levels=`` to the writer where this guesses
    wrong): names first (``edge_index``, ``*edge*``, ``x``, ``pos``, ``*node*``), then a leading size of 1 means
    graph-level, then the size along the concatenation axis."""
    if array.ndim == 0:
        return "graph"
    size = array.shape[cat]
    if key == "edge_index" or ("edge" in key and size == num_edges):
        return "edge"
    if (key in _NODE_KEYS or "node" in key) and size == num_nodes:
        return "node"
    if size == 1:
        return "graph"
    if size == num_nodes:
        return "node"
    if size == num_edges:
        return "edge"
    return "graph"


def _with_axis(shape: tuple[int, ...], cat: int) -> str:
    dims = [str(s) for s in shape]
    dims.insert(cat, "*")
    return "[" + ", ".join(dims) + "]"


def write_dataset(path: str | os.PathLike, kind: str, splits: Mapping[str, Iterable[Any]], *, source: str,
                  config: dict | None = None, compression: str | None = None,
                  coords: dict[str, np.ndarray] | None = None, shard: tuple[int, int] | None = None,
                  levels: dict[str, str] | None = None) -> Path:
    """Write every split's records to ``path`` in one go (see :class:`H5Writer`); returns ``path``."""
    with H5Writer(path, kind, source=source, config=config, compression=compression, coords=coords,
                  shard=shard, levels=levels) as w:
        for split, records in splits.items():
            w.split(split)
            w.extend(split, records)
    return Path(path)


def write_spec(path: str | os.PathLike, spec: DataSpec, *, compression: str | None = None,
               shard: tuple[int, int] | None = None) -> Path:
    """Write a :class:`DataSpec` (what converters and generators return) to ``path``."""
    return write_dataset(path, spec.kind, spec.splits, source=spec.source, config=spec.config,
                         compression=compression, coords=spec.coords, shard=shard,
                         levels=getattr(spec, "levels", None))
