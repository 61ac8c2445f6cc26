"""Torch ``Dataset``s over sciml-h5 files: PyG ``Data`` for graphs and atoms, tensors for fields and series.

.. code-block:: python

    from torch.utils.data import DataLoader
    from sciml.datasets.reader import open_dataset

    ds = open_dataset("data/darcy.h5", split="train")      # FieldDataset, chosen from the file's kind
    loader = DataLoader(ds, batch_size=8, num_workers=4)   # each worker opens its own handle

Fork safety: the constructor reads the small metadata (offsets, sizes) and closes the file again. The HDF5 handle
is opened lazily on first access *in the process that reads*, and reopened when the process id changes (a
DataLoader worker forked after the parent already read a sample); pickling drops it. So an h5py handle is never
shared across ``fork``. Files are opened with a larger chunk cache (``rdcc_nbytes``, default 64 MiB) so that
random access to one-sample chunks does not thrash.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from sciml.errors import DataFormatError

from .schema import DEFAULT_CACHE_BYTES, _attr_str, iter_datasets, missing_virtual_sources, open_h5, split_names

__all__ = ["H5Dataset", "GraphDataset", "AtomsDataset", "FieldDataset", "SeriesDataset", "open_dataset",
           "collate_series", "file_kind"]


def file_kind(path: str | os.PathLike) -> str:
    """The ``kind`` root attribute of a complete sciml-h5 file."""
    f = open_h5(path)
    try:
        return _attr_str(f.attrs["kind"])
    finally:
        f.close()


class H5Dataset(torch.utils.data.Dataset):
    """Base class: one split of one sciml-h5 file, opened lazily per process.

    Args:
        path (str or PathLike): A complete sciml-h5 file (``complete = 1``; anything else is refused).
        split (str): The split group. (default: ``"train"``)
        rdcc_nbytes (int): HDF5 chunk cache per dataset, in bytes. (default: 64 MiB)
    """

    kind: ClassVar[str | None] = None

    def __init__(self, path: str | os.PathLike, split: str = "train", *,
                 rdcc_nbytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.path, self.split, self.rdcc_nbytes = Path(path), split, rdcc_nbytes
        self._h5: Any = None
        self._pid: int | None = None
        self._dsets: dict[str, Any] = {}
        f = open_h5(self.path, rdcc_nbytes=rdcc_nbytes)
        try:
            kind = _attr_str(f.attrs["kind"])
            if self.kind is not None and kind != self.kind:
                raise DataFormatError(f"{self.path}: holds kind {kind!r}, but {type(self).__name__} reads "
                                      f"{self.kind!r} (use open_dataset to pick the reader from the file)")
            if split not in split_names(f):
                raise DataFormatError(f"{self.path}: no split {split!r} (splits: "
                                      f"{', '.join(split_names(f)) or 'none'})")
            g = f[split]
            lost = missing_virtual_sources(g, self.path)
            if lost:
                raise DataFormatError(f"{self.path}: index file whose shard file(s) {', '.join(lost[:3])} are "
                                      "missing (keep the shards next to the index)")
            self.num_samples = int(g.attrs.get("num_samples", 0))
            self.info = {name: {k: _attr_str(v) for k, v in d.attrs.items() if k != "sha256"}
                         for name, d in iter_datasets(g)}
            self.shapes = {name: d.shape for name, d in iter_datasets(g)}
            self._bool_keys = {name for name, d in iter_datasets(g) if d.dtype == np.bool_ and d.ndim}
            try:
                self.ptrs = {name: g[name][()] for name, a in self.info.items() if a.get("level") == "ptr"}
                self.sizes = g["meta/sizes"][()] if "meta/sizes" in g else np.zeros(0, np.int64)
            except OSError as err:
                raise DataFormatError(f"{self.path}: /{split}: cannot read offsets ({err})") from None
            for name, p in self.ptrs.items():
                if p.shape != (self.num_samples + 1,) or (self.num_samples and (np.diff(p) < 0).any()):
                    raise DataFormatError(f"{self.path}: /{split}/{name}: offsets of shape {p.shape} are not "
                                          f"{self.num_samples + 1} non-decreasing values")
            self._read_metadata(f, g)
        finally:
            f.close()

    def _read_metadata(self, f: Any, g: Any) -> None:
        pass

    # ---------------------------------------------------------------------------------------------- handles
    @property
    def group(self) -> Any:
        """The split group, opened in this process (reopened after a fork)."""
        pid = os.getpid()
        if self._h5 is None or self._pid != pid:
            # A handle inherited through fork is dropped without closing it (it belongs to the parent).
            self._h5 = open_h5(self.path, rdcc_nbytes=self.rdcc_nbytes)
            self._pid, self._dsets = pid, {}
        return self._h5[self.split]

    def dataset(self, name: str) -> Any:
        """The h5py dataset ``name`` of the split (cached per handle)."""
        # Hot path: a cached dataset of this process's handle, without the split-group lookup (which costs about
        # 50 us per call in h5py, more than reading a small sample).
        if self._pid == os.getpid():
            d = self._dsets.get(name)
            if d is not None:
                return d
        group = self.group  # (re)opens the file in this process and clears the cache after a fork
        d = self._dsets[name] = group[name]
        return d

    def close(self) -> None:
        """Close this process's handle (it is reopened on the next access)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5, self._pid, self._dsets = None, None, {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_h5=None, _pid=None, _dsets={})
        return state

    def __len__(self) -> int:
        return self.num_samples

    def _index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples of {self.path}:/"
                             f"{self.split}")
        return index

    def _read(self, name: str, index: Any) -> np.ndarray:
        try:
            if name in self._bool_keys:
                return _read_bool(self.dataset(name), self.shapes[name], index)
            return self.dataset(name)[index]
        except OSError as err:
            raise DataFormatError(f"{self.path}: /{self.split}/{name}: read failed, file corrupted? ({err})") \
                from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, split={self.split!r}, num_samples={self.num_samples})"


_BOOL_MTYPE: Any = None


def _read_bool(d: Any, shape: tuple[int, ...], index: Any) -> Any:
    """``d[index]`` for a bool dataset of ``shape`` (an HDF5 enum), for an int, a slice or a tuple of them (step 1).

    h5py's ``__getitem__`` costs about 70 us per read of an enum dataset (against under 10 us for numbers), more
    than the rest of a small sample together; a direct hyperslab read takes about 20 us. Anything else (steps,
    fancy indices) goes through ``d[index]``.
    """
    global _BOOL_MTYPE
    from h5py import h5s, h5t

    items = index if isinstance(index, tuple) else (index,)
    if len(items) > len(shape):
        return d[index]
    start, count, keep = [], [], []
    for axis, n in enumerate(shape):
        item = items[axis] if axis < len(items) else slice(None)
        if isinstance(item, slice):
            a, b, step = item.indices(n)
            if step != 1:
                return d[index]
            start.append(a)
            count.append(max(0, b - a))
            keep.append(True)
        elif isinstance(item, (int, np.integer)) and 0 <= int(item) < n:
            start.append(int(item))
            count.append(1)
            keep.append(False)
        else:
            return d[index]
    out = np.zeros(count, np.bool_)
    if out.size:
        if _BOOL_MTYPE is None:
            _BOOL_MTYPE = h5t.py_create(np.dtype(np.bool_))  # h5py's bool: enum {FALSE: 0, TRUE: 1}
        space = d.id.get_space()
        space.select_hyperslab(tuple(start), tuple(count))
        d.id.read(h5s.create_simple(tuple(count)), space, out, mtype=_BOOL_MTYPE)
    out = out.reshape([c for c, k in zip(count, keep) if k])
    return out if out.ndim else out[()]


class GraphDataset(H5Dataset):
    """Graphs of a ``"graphs"`` file, each returned as the PyG ``Data`` that was written (same keys, dtypes,
    shapes; ``edge_index`` with local ids)."""

    kind = "graphs"
    node_ptr = "node_ptr"

    def _read_metadata(self, f: Any, g: Any) -> None:
        self.keys = [k for k, a in self.info.items() if a.get("level") in ("packed", "sample") and k != "meta/sizes"]
        self._has_node_level = any(self.info[k].get("ptr") == self.node_ptr for k in self.keys)

    def __getitem__(self, index: int) -> Any:
        from torch_geometric.data import Data

        i = self._index(index)
        out: dict[str, Any] = {}
        for key in self.keys:
            a = self.info[key]
            if a["level"] == "packed":
                p = self.ptrs[a["ptr"]]
                cat = int(a.get("cat_dim", 0))
                rows = slice(int(p[i]), int(p[i + 1]))
                if cat:
                    sl: list[Any] = [slice(None)] * (len(self.shapes[key]))
                    sl[cat] = rows
                    rows = tuple(sl)  # type: ignore[assignment]
                # (a plain slice for axis 0: h5py reads a tuple of slices about 2.5x slower, ~20 us vs ~8 us)
                out[key] = torch.from_numpy(np.ascontiguousarray(self._read(key, rows)))
                continue
            value = self._read(key, slice(i, i + 1) if a.get("sample_dim") == "cat" else i)
            pytype = a.get("pytype")
            if pytype == "str":
                out[key] = value.decode() if isinstance(value, bytes) else str(value)
            elif pytype in ("int", "float", "bool"):
                out[key] = {"int": int, "float": float, "bool": bool}[pytype](value)
            else:
                out[key] = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else \
                    torch.tensor(value)
        data = Data(**out)
        if not self._has_node_level:
            p = self.ptrs[self.node_ptr]
            data.num_nodes = int(p[i + 1] - p[i])
        return data


class AtomsDataset(GraphDataset):
    """Structures of an ``"atoms"`` file as PyG ``Data`` (``pos``, ``z``, ``cell [1, 3, 3]``, ``pbc [1, 3]``,
    ``tags``, ``fixed``, and ``energy [1]``, ``forces [n, 3]`` when stored). Use
    :class:`sciml.train.BalancedBatchSampler` with :attr:`sizes` (atoms per structure) to balance batches by atom
    count (``Trainer(batch_sampler="balanced")`` does it in training)."""

    kind = "atoms"
    node_ptr = "atom_ptr"


class FieldDataset(H5Dataset):
    """Samples of a ``"fields"`` file as ``{name: Tensor [T, *spatial, C] float32, ..., "params": {name: Tensor
    [] float64}}``.

    Args:
        fields (Sequence[str], optional): Only these fields. (default: all)
        path, split, rdcc_nbytes: as in :class:`H5Dataset`.
    """

    kind = "fields"

    def __init__(self, path: str | os.PathLike, split: str = "train", *, fields: Sequence[str] | None = None,
                 rdcc_nbytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._wanted = None if fields is None else list(fields)
        super().__init__(path, split, rdcc_nbytes=rdcc_nbytes)

    def _read_metadata(self, f: Any, g: Any) -> None:
        names = [k.split("/", 1)[1] for k in self.info if k.startswith("fields/")]
        if self._wanted is not None:
            unknown = [k for k in self._wanted if k not in names]
            if unknown:
                raise DataFormatError(f"{self.path}: /{self.split}: no field(s) {', '.join(map(repr, unknown))} "
                                      f"(fields: {', '.join(names)})")
            names = self._wanted
        self.field_names = names
        self.param_names = [k.split("/", 1)[1] for k in self.info if k.startswith("params/")]
        self.coords = {k.split("/", 1)[1]: g[k][()] for k in self.info if k.startswith("coords/")}

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self._index(index)
        out: dict[str, Any] = {k: torch.from_numpy(self._read(f"fields/{k}", i)) for k in self.field_names}
        out["params"] = {k: torch.tensor(self._read(f"params/{k}", i), dtype=torch.float64)
                         for k in self.param_names}
        return out


class SeriesDataset(H5Dataset):
    """Instances of a ``"series"`` file as ``{"times": [L] float64, "values": [L, D] float32 (NaN where not
    observed), "mask": [L, D] bool, "y": [] int64/float64 (if labelled)}``. Batch them with
    :func:`collate_series` (lengths differ)."""

    kind = "series"

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = self._index(index)
        p = self.ptrs["ptr"]
        sl = slice(int(p[i]), int(p[i + 1]))
        out = {k: torch.from_numpy(self._read(k, sl)) for k in ("times", "values", "mask")}
        if "y" in self.info:
            out["y"] = torch.tensor(self._read("y", i))
        return out


def collate_series(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad series to the longest: ``times [B, L]`` (padded with the last time), ``values [B, L, D]`` (NaN),
    ``mask [B, L, D]`` (False), ``lengths [B]``, ``y [B]``."""
    lengths = torch.tensor([len(it["times"]) for it in items], dtype=torch.long)
    b, length = len(items), int(lengths.max()) if items else 0
    d = items[0]["values"].shape[1]
    times = torch.zeros(b, length, dtype=torch.float64)
    values = torch.full((b, length, d), float("nan"), dtype=torch.float32)
    mask = torch.zeros(b, length, d, dtype=torch.bool)
    for j, it in enumerate(items):
        n = len(it["times"])
        times[j, :n] = it["times"]
        if 0 < n < length:
            times[j, n:] = it["times"][-1]
        values[j, :n], mask[j, :n] = it["values"], it["mask"]
    out = {"times": times, "values": values, "mask": mask, "lengths": lengths}
    if "y" in items[0]:
        out["y"] = torch.stack([it["y"] for it in items])
    return out


_READERS: dict[str, type[H5Dataset]] = {"graphs": GraphDataset, "atoms": AtomsDataset, "fields": FieldDataset,
                                        "series": SeriesDataset}


def open_dataset(path: str | os.PathLike, split: str = "train", **kwargs: Any) -> H5Dataset:
    """The reader for the file's kind (:class:`GraphDataset`, :class:`AtomsDataset`, :class:`FieldDataset` or
    :class:`SeriesDataset`) over ``split``; ``kwargs`` go to its constructor."""
    return _READERS[file_kind(path)](path, split, **kwargs)
