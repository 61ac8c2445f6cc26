"""The sciml-h5 layout: one versioned HDF5 layout for graphs, atomistic structures, gridded fields and time series.

This module is the specification (see also ``docs/data.md``) and its checker. Every file has

* root attributes ``format = "sciml-h5"``, ``format_version``, ``kind`` (one of :data:`KINDS`), ``created_by``
  (``"sciml <version> (git <hash>)"``), ``source``, ``config`` (YAML text), optionally ``shard_index`` /
  ``shard_count``, and ``complete = 1``, written last: a file without it is refused by every reader.
* one group per split (``/train``, ``/val``, ``/test``...) with attribute ``num_samples`` and ``meta/sizes [N]``
  (nodes, atoms, observations or grid points per sample, for load-balancing samplers; for the packed kinds it
  equals ``diff(node_ptr)``, ``diff(atom_ptr)``, ``diff(ptr)``).

Every dataset in a split group carries attributes saying how it is indexed (:data:`LEVEL_ATTR`):

==========  =====================================================================================================
level       meaning
==========  =====================================================================================================
``ptr``     offsets ``[N + 1]`` int64, starting at 0, non-decreasing (``node_ptr``, ``edge_ptr``, ``atom_ptr``,
            ``ptr``)
``packed``  rows of variable-size samples concatenated along axis ``cat_dim``; sample ``i`` is the slice
            ``ptr[i]:ptr[i + 1]`` where ``ptr`` is the dataset named by the ``ptr`` attribute
``sample``  one entry per sample along axis 0. ``sample_dim = "stack"``: the record's value is ``a[i]``;
            ``"cat"``: the record's value had a leading axis of length 1 and is ``a[i:i + 1]``
``coords``  shared by all samples (grid coordinates of fields)
==========  =====================================================================================================

Every dataset also carries ``sha256`` (hex digest of its C-order raw bytes), verified by ``sciml data validate``,
and chunked datasets use HDF5's fletcher32 filter so that corrupted chunks also fail loudly on read.

Per kind (``[G]`` = number of samples in the split):

* ``graphs``: ``node_ptr``, ``edge_ptr`` (level ``ptr``); every tensor of the PyG ``Data`` under its own key:
  node-level (``packed`` by ``node_ptr``), edge-level (``packed`` by ``edge_ptr``; ``edge_index [2, E]`` holds
  *local* node ids, ``cat_dim = 1``), graph-level (``sample``). Python scalars attributes are stored as graph-level
  arrays with attribute ``pytype``.
* ``atoms``: as graphs with ``atom_ptr`` instead of ``node_ptr``; required ``pos [A, 3]`` float, ``z [A]`` int,
  ``cell [S, 3, 3]`` float, ``pbc [S, 3]`` bool, ``tags [A]`` int, ``fixed [A]`` bool; optional ``energy [S]``
  float, ``forces [A, 3]`` float, and any further per-atom / per-structure tensors.
* ``fields``: ``fields/<name> [N, T, *spatial, C]`` float32 (``sample``, chunked ``(1, T or 1, *spatial, C)``),
  ``params/<name> [N]`` float64, ``coords/<t|x|y|z> [len]`` float64 (level ``coords``).
* ``series``: ``ptr [S + 1]``, ``times [L]`` float64, ``values [L, D]`` float32 (NaN where not observed),
  ``mask [L, D]`` bool (``packed`` by ``ptr``), ``y [S]`` int64 or float64 (optional, ``sample``).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sciml.errors import DataFormatError

__all__ = ["FORMAT", "FORMAT_VERSION", "KINDS", "LEVEL_ATTR", "REQUIRED_ROOT_ATTRS", "PTR_NAMES", "KIND_SPECS",
           "open_h5", "check_header", "split_names", "iter_datasets", "dataset_sha256", "validate_file",
           "DEFAULT_CACHE_BYTES", "BLOCK_BYTES"]

FORMAT = "sciml-h5"
FORMAT_VERSION = 1
KINDS = ("graphs", "atoms", "fields", "series")
LEVEL_ATTR = "level"
LEVELS = ("ptr", "packed", "sample", "coords")
REQUIRED_ROOT_ATTRS = ("format", "format_version", "kind", "created_by", "source", "config", "complete")
#: The offsets dataset of each packed level, per kind.
PTR_NAMES = {"graphs": ("node_ptr", "edge_ptr"), "atoms": ("atom_ptr", "edge_ptr"), "fields": (),
             "series": ("ptr",)}
#: Per kind: name -> (level, dtype class, trailing shape or None, required). dtype classes: "f" floating,
#: "i" integer, "b" bool, "float32"/"float64"/"int64" exact. Names not listed are free (graphs/atoms extras).
KIND_SPECS: dict[str, dict[str, tuple[str, str, tuple[int, ...] | None, bool]]] = {
    "graphs": {"node_ptr": ("ptr", "int64", (), True), "edge_ptr": ("ptr", "int64", (), True),
               "edge_index": ("packed", "i", (2,), False)},
    "atoms": {"atom_ptr": ("ptr", "int64", (), True), "edge_ptr": ("ptr", "int64", (), False),
              "pos": ("packed", "f", (3,), True), "z": ("packed", "i", (), True),
              "cell": ("sample", "f", (3, 3), True), "pbc": ("sample", "b", (3,), True),
              "tags": ("packed", "i", (), True), "fixed": ("packed", "b", (), True),
              "energy": ("sample", "f", (), False), "forces": ("packed", "f", (3,), False)},
    "fields": {},
    "series": {"ptr": ("ptr", "int64", (), True), "times": ("packed", "float64", (), True),
               "values": ("packed", "float32", None, True), "mask": ("packed", "b", None, True),
               "y": ("sample", "n", (), False)},
}
#: Reserved names inside a split group (not usable as record keys).
# The offsets whose differences ``meta/sizes`` must equal (nodes, atoms, observations per sample).
SIZE_PTR = {"graphs": "node_ptr", "atoms": "atom_ptr", "series": "ptr"}
RESERVED_NAMES = frozenset({"meta", "node_ptr", "edge_ptr", "atom_ptr", "ptr"})
DEFAULT_CACHE_BYTES = 64 * 2**20
BLOCK_BYTES = 64 * 2**20


def _h5py():
    import h5py

    return h5py


def open_h5(path: str | os.PathLike, *, require_complete: bool = True,
            rdcc_nbytes: int = DEFAULT_CACHE_BYTES) -> Any:
    """Open a sciml-h5 file read-only and check its header (see :func:`check_header`).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: not HDF5, truncated, not a sciml-h5 file, unsupported version, or (with
            ``require_complete``) missing ``complete = 1``. The message starts with the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory, expected a sciml-h5 file")
    h5py = _h5py()
    try:
        f = h5py.File(path, "r", rdcc_nbytes=rdcc_nbytes, rdcc_nslots=10_007)
    except OSError as err:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({_short(err)})") from None
    try:
        check_header(f, path, require_complete=require_complete)
    except BaseException:
        f.close()
        raise
    return f


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _attr_str(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def check_header(f: Any, path: str | os.PathLike, *, require_complete: bool = True) -> str:
    """Check the root attributes of an open file; return its kind."""
    try:
        attrs = {k: _attr_str(f.attrs[k]) for k in f.attrs}
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read the root attributes ({_short(err)})") from None
    if attrs.get("format") != FORMAT:
        raise DataFormatError(f"{path}: not a {FORMAT} file (root attribute format={attrs.get('format')!r}, "
                              f"expected {FORMAT!r})")
    version = attrs.get("format_version")
    if version is None or int(version) > FORMAT_VERSION or int(version) < 1:
        raise DataFormatError(f"{path}: unsupported format_version {version!r} (this sciml reads 1.."
                              f"{FORMAT_VERSION})")
    if require_complete and int(attrs.get("complete", 0)) != 1:
        raise DataFormatError(f"{path}: incomplete file (root attribute complete=1 is missing: the writer did not "
                              "finish)")
    kind = attrs.get("kind")
    if kind not in KINDS:
        raise DataFormatError(f"{path}: unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    missing = [a for a in REQUIRED_ROOT_ATTRS if a not in attrs and not (a == "complete" and not require_complete)]
    if missing:
        raise DataFormatError(f"{path}: missing root attribute(s) {', '.join(missing)}")
    return kind


def split_names(f: Any) -> list[str]:
    """Split groups of an open file (every root group except ``coords``/``meta``), in file order."""
    h5py = _h5py()
    return [k for k in f.keys() if isinstance(f.get(k, getlink=False), h5py.Group)]


def iter_datasets(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(relative name, dataset)`` for every dataset under ``group``, depth first, in name order."""
    h5py = _h5py()
    for key in group.keys():
        obj = group[key]
        name = f"{prefix}{key}"
        if isinstance(obj, h5py.Dataset):
            yield name, obj
        else:
            yield from iter_datasets(obj, name + "/")


def iter_blocks(dset: Any, *, axis: int = 0, block_bytes: int = BLOCK_BYTES) -> Iterator[np.ndarray]:
    """The dataset read in blocks along ``axis`` (memory bounded)."""
    shape = dset.shape
    if shape is None or len(shape) == 0:
        yield np.asarray(dset[()])
        return
    n = shape[axis]
    row = max(1, int(np.prod([s for i, s in enumerate(shape) if i != axis], dtype=np.int64)) * dset.dtype.itemsize)
    step = max(1, block_bytes // row)
    for start in range(0, n, step):
        index = [slice(None)] * len(shape)
        index[axis] = slice(start, min(n, start + step))
        yield dset[tuple(index)]
    if n == 0:
        yield dset[()]


def dataset_sha256(dset: Any) -> str:
    """sha256 of the dataset's values as C-order bytes (read in blocks along axis 0)."""
    h = hashlib.sha256()
    for block in iter_blocks(dset, axis=0):
        if block.dtype.kind == "O":  # variable-length strings
            for item in np.asarray(block).ravel():
                h.update(item if isinstance(item, bytes) else str(item).encode())
                h.update(b"\0")
        else:
            h.update(np.ascontiguousarray(block).tobytes())
    return h.hexdigest()


def missing_virtual_sources(group: Any, path: str | os.PathLike) -> list[str]:
    """Source files of virtual datasets (index files written by ``merge --index``) that do not exist."""
    base = Path(path).resolve().parent
    missing: list[str] = []
    for _, d in iter_datasets(group):
        if d.is_virtual:
            for vs in d.virtual_sources():
                src = Path(vs.file_name)
                if vs.file_name != "." and not (src if src.is_absolute() else base / src).exists():
                    if vs.file_name not in missing:
                        missing.append(vs.file_name)
    return missing


_DTYPE_NAMES = {"f": "floating", "i": "integer", "b": "bool", "n": "numeric"}


def _dtype_ok(dtype: np.dtype, cls: str) -> bool:
    if cls == "f":
        return np.issubdtype(dtype, np.floating)
    if cls == "i":
        return np.issubdtype(dtype, np.integer)
    if cls == "b":
        return dtype == np.bool_
    if cls == "n":
        return np.issubdtype(dtype, np.number)
    return dtype == np.dtype(cls)


# ---------------------------------------------------------------------------------------------------- validation
def validate_file(path: str | os.PathLike, *, checksums: bool = True, finite: bool = True,
                  max_problems: int = 20) -> list[str]:
    """Check a sciml-h5 file completely: header, every split's datasets against the schema (levels, dtypes,
    shapes, lengths), offsets (start at 0, non-decreasing, matching the packed lengths), ``meta/sizes`` equal to the
    node/atom/observation counts ``diff(ptr)`` (graphs, atoms, series), local edge ids in range, sha256 checksums,
    and NaN/Inf (allowed only in series ``values`` where ``mask`` is False).

    Returns:
        A list of problems (empty if the file is valid), each a short sentence naming the dataset.

    Raises:
        FileNotFoundError, DataFormatError: the file cannot be opened as a complete sciml-h5 file at all.
    """
    f = open_h5(path)
    problems: list[str] = []
    try:
        kind = _attr_str(f.attrs["kind"])
        for split in split_names(f):
            try:
                _validate_split(f[split], kind, split, problems, checksums=checksums, finite=finite)
            except OSError as err:
                problems.append(f"/{split}: read error ({_short(err)})")
            except _TooMany:
                break
            if len(problems) >= max_problems:
                break
    finally:
        f.close()
    return problems


class _TooMany(Exception):
    pass


def _validate_split(g: Any, kind: str, split: str, problems: list[str], *, checksums: bool, finite: bool) -> None:
    def bad(msg: str) -> None:
        problems.append(f"/{split}/{msg}")

    if "num_samples" not in g.attrs:
        bad(" missing attribute num_samples")
        return
    n = int(g.attrs["num_samples"])
    datasets = dict(iter_datasets(g))
    spec = KIND_SPECS[kind]
    if n == 0:
        return
    for name, (level, cls, trailing, required) in spec.items():
        if required and name not in datasets:
            bad(f"{name}: missing (required for kind {kind!r})")
    if kind == "fields" and not any(k.startswith("fields/") for k in datasets):
        bad("fields: no field dataset")
    if "meta/sizes" not in datasets:
        bad("meta/sizes: missing")
    lost = missing_virtual_sources(g, g.file.filename)
    if lost:
        bad(f" index file: shard file(s) {', '.join(lost[:3])} missing")
        return
    ptrs: dict[str, np.ndarray] = {}
    for name, d in datasets.items():
        level = _attr_str(d.attrs.get(LEVEL_ATTR))
        if level not in LEVELS:
            bad(f"{name}: attribute level={level!r}, expected one of {', '.join(LEVELS)}")
            continue
        if level == "ptr":
            try:
                p = d[()]
            except OSError as err:
                bad(f"{name}: read error ({_short(err)})")
                continue
            if p.shape != (n + 1,) or p.dtype != np.int64:
                bad(f"{name}: shape {p.shape} dtype {p.dtype}, expected ({n + 1},) int64")
                continue
            if p[0] != 0:
                bad(f"{name}: offsets start at {p[0]}, expected 0")
            steps = np.diff(p)
            if (steps < 0).any():
                i = int(np.argmax(steps < 0))
                bad(f"{name}: offsets not monotone (decrease at sample {i}: {p[i]} -> {p[i + 1]})")
            ptrs[name] = p
    for name, d in datasets.items():
        level = _attr_str(d.attrs.get(LEVEL_ATTR))
        if name in spec:
            _, cls, trailing, _ = spec[name]
            if not _dtype_ok(d.dtype, cls):
                bad(f"{name}: dtype {d.dtype}, expected {_DTYPE_NAMES.get(cls, cls)}")
            cat = int(d.attrs.get("cat_dim", 0))
            rest = tuple(s for i, s in enumerate(d.shape) if i != cat)
            if trailing is not None and level == "packed" and rest != trailing:
                want = [str(s) for s in trailing]
                want.insert(cat, "*")
                bad(f"{name}: shape {d.shape}, expected [{', '.join(want)}]")
        if kind == "fields" and name.startswith("fields/"):
            if d.dtype != np.float32:
                bad(f"{name}: dtype {d.dtype}, expected float32")
            if d.ndim < 3:
                bad(f"{name}: shape {d.shape}, expected [N, T, *spatial, C]")
        if level == "packed":
            pname = _attr_str(d.attrs.get("ptr"))
            cat = int(d.attrs.get("cat_dim", 0))
            if pname not in ptrs:
                bad(f"{name}: packed by {pname!r}, which is missing or invalid")
            elif d.shape[cat] != ptrs[pname][-1]:
                bad(f"{name}: {d.shape[cat]} rows along axis {cat}, but {pname}[-1] = {ptrs[pname][-1]} (counts "
                    "disagree)")
        elif level == "sample" and (d.ndim == 0 or d.shape[0] != n):
            bad(f"{name}: shape {d.shape}, expected {n} entries along axis 0 (num_samples)")
        if "sha256" not in d.attrs:
            bad(f"{name}: no stored sha256 checksum")
        elif checksums:
            try:
                digest = dataset_sha256(d)
            except OSError as err:
                bad(f"{name}: read error, data corrupted ({_short(err)})")
                continue
            if digest != _attr_str(d.attrs["sha256"]):
                bad(f"{name}: sha256 checksum mismatch (stored {_attr_str(d.attrs['sha256'])[:12]}..., "
                    f"computed {digest[:12]}...): data corrupted")
                continue
        if finite and np.issubdtype(d.dtype, np.floating):
            _check_finite(g, name, d, kind, bad)
    if "edge_index" in datasets and kind in ("graphs", "atoms"):
        _check_edge_ids(datasets, ptrs, "node_ptr" if kind == "graphs" else "atom_ptr", bad)
    size_ptr = SIZE_PTR.get(kind)
    if size_ptr in ptrs and "meta/sizes" in datasets:
        _check_sizes(datasets["meta/sizes"], ptrs[size_ptr], size_ptr, n, bad)


def _check_sizes(d: Any, ptr: np.ndarray, pname: str, n: int, bad: Any) -> None:
    """Packed kinds: ``meta/sizes`` (what samplers balance on) must equal the counts ``diff(ptr)``."""
    try:
        sizes = np.asarray(d[()])
    except OSError as err:
        bad(f"meta/sizes: read error ({_short(err)})")
        return
    if sizes.shape != (n,):
        bad(f"meta/sizes: shape {sizes.shape}, expected ({n},)")
        return
    diff = np.diff(ptr)
    wrong = np.flatnonzero(sizes != diff)
    if wrong.size:
        i = int(wrong[0])
        bad(f"meta/sizes: {wrong.size} sample(s) disagree with diff({pname}) (first: sample {i} has size "
            f"{sizes[i]}, {pname} gives {diff[i]})")


def _check_finite(g: Any, name: str, d: Any, kind: str, bad: Any) -> None:
    masked = kind == "series" and name == "values" and "mask" in g
    start = 0
    try:
        for block in iter_blocks(d, axis=0):
            ok = np.isfinite(block)
            if masked:
                m = g["mask"][start:start + len(block)]
                ok |= ~m & np.isnan(block)
            if not ok.all():
                loc = tuple(int(i) for i in np.argwhere(~ok)[0])
                where = (loc[0] + start,) + loc[1:]
                bad(f"{name}: non-finite value {block[loc]} at index {where}" + (" (an observed entry)" if masked
                                                                                 else ""))
                return
            start += len(block)
    except OSError:
        return  # reported by the checksum pass


def _check_edge_ids(datasets: dict[str, Any], ptrs: dict[str, np.ndarray], node_ptr: str, bad: Any) -> None:
    if "edge_ptr" not in ptrs or node_ptr not in ptrs:
        return
    ei = datasets["edge_index"]
    if ei.ndim != 2 or ei.shape[0] != 2:
        bad(f"edge_index: shape {ei.shape}, expected [2, E]")
        return
    ep, np_ = ptrs["edge_ptr"], ptrs[node_ptr]
    counts = np.diff(np_)
    step = 1 << 22
    try:
        for start in range(0, ei.shape[1], step):
            stop = min(ei.shape[1], start + step)
            block = ei[:, start:stop]
            graph = np.searchsorted(ep, np.arange(start, stop), side="right") - 1
            limit = counts[graph]
            badmask = (block < 0) | (block >= limit)
            if badmask.any():
                j = int(np.argwhere(badmask.any(axis=0))[0, 0])
                bad(f"edge_index: local node id {block[:, j].tolist()} of edge {start + j} (graph {graph[j]}) is "
                    f"outside 0..{limit[j] - 1}")
                return
    except OSError:
        return
