"""MATLAB ``.mat`` files -> one :class:`FieldSample` (Raissi's PINN reference solutions ``burgers_shock.mat``
``usol``/``t``/``x``, ``AC.mat`` ``uu``/``tt``/``x``, DeepXDE's ``Allen_Cahn.mat``...).

Version 5 files (the default of MATLAB's ``save``) are read with ``scipy.io.loadmat``; version 7.3 files are HDF5 and
are read with ``h5py``: MATLAB writes arrays column-major, so every array is transposed back to MATLAB's shape,
complex numbers (compound ``real``/``imag``) are joined, and ``char``, struct, cell and empty variables are skipped.
The arrays are then mapped to fields and coordinates exactly as for ``.npz`` reference solutions
(:mod:`~sciml.datasets.sources.npz_arrays`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sciml.datasets.sources._common import (check_shard, config_of, existing, fail, one_line, single_record_spec)
from sciml.datasets.sources.npz_arrays import arrays_to_sample

__all__ = ["convert_matlab", "read_mat"]


def _is_v73(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return True
    return head[:10] == b"MATLAB 7.3" or (head.startswith(b"MATLAB") and b"7.3" in head[:20] and
                                         _hdf5_signature_at_512(path))


def _hdf5_signature_at_512(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(512)
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _read_v73(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            for name, obj in f.items():
                if name.startswith("#") or not isinstance(obj, h5py.Dataset):
                    continue  # '#refs#', structs (groups)
                cls = obj.attrs.get("MATLAB_class", b"")
                cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                if cls in ("char", "cell", "struct", "function_handle") or obj.attrs.get("MATLAB_empty", 0):
                    continue
                arr = obj[()]
                if arr.dtype.names and set(arr.dtype.names) >= {"real", "imag"}:
                    arr = arr["real"] + 1j * arr["imag"]
                if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                    continue
                arr = np.asarray(arr).T  # column-major on disk
                out[name] = arr.astype(bool) if cls == "logical" else arr
    except OSError as err:
        raise fail(path, f"not a readable MATLAB 7.3 (HDF5) file ({one_line(err)[:200]})") from None
    return out


def read_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The numeric variables of a ``.mat`` file (v5 or v7.3), in MATLAB's shapes."""
    import scipy.io

    p = Path(path)
    try:
        if _is_v73(p):
            return _read_v73(p)
    except OSError as err:
        raise fail(p, f"cannot read: {err.strerror or err}") from None
    try:
        raw = scipy.io.loadmat(p, squeeze_me=False, mat_dtype=False)
    except NotImplementedError:  # a v7.3 file with a damaged header
        return _read_v73(p)
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, zlib.error... on corrupt input
        raise fail(p, f"not a readable MATLAB file ({type(err).__name__}: {one_line(err)[:200]})") from None
    return {k: v for k, v in raw.items() if not k.startswith("__") and isinstance(v, np.ndarray)
            and (np.issubdtype(v.dtype, np.number) or v.dtype == bool)}


def convert_matlab(path: str | os.PathLike, *, fields: list[str] = [], time_key: str = "",
                   space_keys: list[str] = [], layout: Literal["tx", "xt"] = "tx", drop_nan: bool = True,
                   split: str = "train",
                   shard: tuple[int, int] | None = None) -> Any:
    """A MATLAB reference solution -> a ``fields`` DataSpec with one sample.

    Args:
        path: the ``.mat`` file (v5 or v7.3).
        fields: the variables that are fields. (default: every non-coordinate variable with more than one value)
        time_key: the time vector. (default: ``t``, ``tt`` or ``time`` when present)
        space_keys: the space vectors, in axis order. (default: those of ``x``, ``y``, ``z`` present)
        layout: axis order when the lengths cannot tell: ``tx`` time first, ``xt`` space first.
        drop_nan: for scattered points, drop the points where a field is NaN.
        split: the split (HDF5 group). (default: ``train``)
        shard: ``(i, n)``: the single sample goes to the last shard (the contiguous rule of
            :func:`~sciml.datasets.shards.shard_range`).
    """
    shard = check_shard(shard)
    p = existing(path)
    if not p.is_file():
        raise fail(p, "expected a .mat file, found a directory")
    sample, coords = arrays_to_sample(read_mat(p), str(p), fields=fields, time_key=time_key,
                                      space_keys=space_keys, layout=layout, drop_nan=drop_nan)
    return single_record_spec(lambda: sample, shard=shard, split=split, kind="fields", source=f"matlab:{p}",
                              coords=coords or None,
                              config=config_of(converter="matlab", path=path, fields=list(fields),
                                               time_key=time_key, space_keys=list(space_keys), layout=layout,
                                               drop_nan=drop_nan, split=split))
