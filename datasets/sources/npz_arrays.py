"""Reference solutions stored as named arrays (DeepXDE's ``Burgers.npz``, ``reaction.npz``...; also the arrays of
``.mat`` files, see :mod:`~sciml.datasets.sources.matlab`) -> one :class:`FieldSample`.

How arrays are mapped (every step can be fixed by an option):

* **time**: a 1-D vector named ``t``, ``tt`` or ``time`` (option ``time_key``); **space**: 1-D vectors named
  ``x``, ``y``, ``z`` (option ``space_keys``). Singleton axes are squeezed first (``t [100, 1]`` is 1-D).
* **fields**: every other numeric array with more than one value (option ``fields``); one-value arrays become
  ``params``; strings, structs and cells are ignored.
* **grid** data: each field's axes are matched to the coordinate vectors by length (Raissi stores ``usol [x, t]``,
  DeepXDE ``u [t, x]``; both become ``[T, X, C]``). An extra axis is the channel axis; complex values become two
  channels (real, imaginary). When the lengths are ambiguous (``Ca [201, 201]`` with 201 times and 201 points),
  ``layout`` decides: ``tx`` (default; the layout of ``np.meshgrid(x, t)``) or ``xt``. Coordinates go to
  ``DataSpec.coords`` as ``t``, ``x``, ``y``, ``z`` (the spatial ones renamed by axis position).
* **scattered** data (the field has one value per point): the point coordinates (an ``[P, d]`` array named ``X*``,
  or equally long ``x``/``y``/``z`` vectors) become a field ``points [1, P, d]`` beside the values ``[1, P, C]``.
  Points where a field is NaN (Poisson's reference outside the L-shape) are dropped (``drop_nan``).
* arrays with no coordinates at all: ``[n]`` -> ``[1, n, 1]``, ``[n, c]`` -> ``[1, n, c]``.
"""
from __future__ import annotations

import itertools
import os
import zipfile
from typing import Any, Literal

import numpy as np

from sciml.datasets.records import FieldSample
from sciml.datasets.sources._common import (DataFormatError, check_shard, config_of, existing, fail, one_line,
                                            single_record_spec)

__all__ = ["convert_npz_fields", "arrays_to_sample", "TIME_KEYS", "SPACE_KEYS"]

TIME_KEYS = ("t", "tt", "time")
SPACE_KEYS = ("x", "y", "z")
AXES = ("x", "y", "z")


def _squeeze(a: np.ndarray) -> np.ndarray:
    return a.reshape([s for s in a.shape if s != 1]) if a.size > 1 else a.reshape(-1)


def _channels(a: np.ndarray) -> np.ndarray:
    """Move complex parts into a trailing channel axis: ``[..., C]`` -> ``[..., 2C]``."""
    if np.iscomplexobj(a):
        return np.stack([a.real, a.imag], axis=-1).reshape(*a.shape[:-1], -1)
    return a


def arrays_to_sample(arrays: dict[str, np.ndarray], where: str, *, fields: list[str] | tuple[str, ...] = (),
                     time_key: str = "", space_keys: list[str] | tuple[str, ...] = (),
                     layout: str = "tx", drop_nan: bool = True) -> tuple[FieldSample, dict[str, np.ndarray]]:
    """Map named arrays to one :class:`FieldSample` and its coords (see the module doc)."""
    if layout not in ("tx", "xt"):
        raise ValueError(f"layout must be 'tx' or 'xt', got {layout!r}")
    numeric = {k: np.asarray(v) for k, v in arrays.items()
               if isinstance(v, np.ndarray) and (np.issubdtype(v.dtype, np.number) or v.dtype == bool)}
    for k in list(fields) + ([time_key] if time_key else []) + list(space_keys):
        if k not in numeric:
            raise fail(where, f"no numeric array {k!r} (has: {', '.join(sorted(numeric)) or 'none'})")

    def vector(k: str) -> np.ndarray | None:
        v = _squeeze(numeric[k])
        return v.astype(np.float64) if v.ndim == 1 and v.size > 1 and not np.iscomplexobj(v) else None

    t_key = time_key or next((k for k in TIME_KEYS if k in numeric and vector(k) is not None
                              and k not in fields), "")
    if time_key and vector(time_key) is None:
        raise fail(where, f"time array {time_key!r} is not a vector (shape {numeric[time_key].shape})")
    s_keys = list(space_keys) or [k for k in SPACE_KEYS if k in numeric and vector(k) is not None
                                  and k not in fields and k != t_key]
    for k in s_keys:
        if vector(k) is None:
            raise fail(where, f"space array {k!r} is not a vector (shape {numeric[k].shape})")
    coord_keys = ([t_key] if t_key else []) + s_keys
    for k in coord_keys:
        if not np.isfinite(vector(k)).all():
            raise fail(where, f"coordinate array {k!r} has NaN or infinite values")
    points_key = next((k for k in sorted(numeric) if k.startswith("X") and numeric[k].ndim == 2
                       and 1 <= numeric[k].shape[1] <= 3 and k not in fields), "") if not s_keys else ""
    used = set(coord_keys) | ({points_key} if points_key else set())
    names = list(fields) or [k for k in numeric if k not in used and numeric[k].size > 1 and not k.startswith("__")]
    params = {k: float(np.real(v.reshape(-1)[0])) for k, v in numeric.items()
              if v.size == 1 and k not in used and k not in names}
    if not names:
        raise fail(where, f"no field arrays found (arrays: {', '.join(sorted(numeric)) or 'none'})")

    lengths = {k: len(vector(k)) for k in coord_keys}
    out: dict[str, np.ndarray] = {}
    coords: dict[str, np.ndarray] = {}
    mode = None
    for name in names:
        a = _squeeze(numeric[name])
        # grid: every coordinate vector is one axis of the field, at most one more axis (channels)
        best = None
        if coord_keys and a.ndim in (len(coord_keys), len(coord_keys) + 1):
            cands = []
            for perm in itertools.permutations(range(a.ndim), len(coord_keys)):
                if all(a.shape[ax] == lengths[k] for ax, k in zip(perm, coord_keys)):
                    cands.append(perm)
            if cands:
                def rank(perm: tuple[int, ...]) -> tuple[int, ...]:
                    order = list(perm)
                    if layout == "xt" and t_key:
                        order = order[1:] + order[:1]
                    return tuple(order)  # prefer axes in the stated order
                best = min(cands, key=rank)
        if best is not None:
            rest = [ax for ax in range(a.ndim) if ax not in best]
            arr = np.transpose(a, list(best) + rest)
            arr = arr if rest else arr[..., None]
            if not t_key:
                arr = arr[None]
            out[name] = _channels(arr)
            mode = mode or "grid"
            if mode != "grid":
                raise fail(where, f"field {name!r} is on a grid but other fields are scattered points")
            continue
        # scattered points
        pts = None
        if points_key and a.shape[:1] == numeric[points_key].shape[:1]:
            pts = numeric[points_key].astype(np.float64)
            if not np.isfinite(pts).all():
                raise fail(where, f"point coordinates {points_key!r} have NaN or infinite values")
        elif s_keys and not t_key and len(set(lengths[k] for k in s_keys)) == 1 and a.ndim in (1, 2) \
                and a.shape[0] == lengths[s_keys[0]]:
            pts = np.stack([vector(k) for k in s_keys], axis=-1)
        if pts is not None:
            arr = a.reshape(a.shape[0], -1)[None]
            out[name] = _channels(arr)
            out.setdefault("points", pts[None])
            mode = mode or "points"
            if mode != "points":
                raise fail(where, f"field {name!r} holds scattered points but other fields are on a grid")
            continue
        if coord_keys:
            want = " x ".join(f"{k}={lengths[k]}" for k in coord_keys)
            raise fail(where, f"field {name!r} has shape {tuple(numeric[name].shape)}, which matches neither the "
                              f"grid ({want}) nor a set of points")
        if a.ndim > 2:
            raise fail(where, f"field {name!r} has shape {a.shape} and there are no coordinate arrays to say "
                              "what its axes are (set time_key= / space_keys=)")
        out[name] = _channels(a.reshape(a.shape[0], -1)[None])
        mode = mode or "plain"
    if mode == "points" and drop_nan:
        keep = np.ones(next(iter(out.values())).shape[1], dtype=bool)
        for v in out.values():
            if v.shape[:2] == (1, len(keep)):
                keep &= np.isfinite(v[0]).reshape(len(keep), -1).all(axis=1)
        if not keep.all():
            out = {k: v[:, keep] for k, v in out.items()}
    grids = {k: v.shape[:-1] for k, v in out.items()}
    if len(set(grids.values())) > 1:
        raise fail(where, "fields do not share one grid: " + ", ".join(f"{k} {list(v)}" for k, v in grids.items()))
    if mode == "grid":
        if t_key:
            coords["t"] = vector(t_key)
        for axis_name, k in zip(AXES, s_keys):
            coords[axis_name] = vector(k)
    return FieldSample(fields={k: np.ascontiguousarray(v) for k, v in out.items()}, params=params), coords


def _read_npz(path: Any) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {}
            for k in f.files:
                try:
                    out[k] = f[k]
                except ValueError as err:
                    if "allow_pickle" in str(err):
                        continue  # object arrays (names, metadata) are skipped, never unpickled
                    raise
            return out
    except DataFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise fail(path, f"not a readable .npz ({type(err).__name__}: {one_line(err)[:200]})") from None


def convert_npz_fields(path: str | os.PathLike, *, fields: list[str] = [], time_key: str = "",
                       space_keys: list[str] = [], layout: Literal["tx", "xt"] = "tx", drop_nan: bool = True,
                       split: str = "train",
                       shard: tuple[int, int] | None = None) -> Any:
    """A reference solution in an ``.npz`` -> a ``fields`` DataSpec with one sample (see the module doc).

    Args:
        path: the ``.npz`` file.
        fields: the arrays that are fields. (default: every non-coordinate array with more than one value)
        time_key: the time vector. (default: ``t``, ``tt`` or ``time`` when present)
        space_keys: the space vectors, in axis order. (default: those of ``x``, ``y``, ``z`` present)
        layout: axis order when the lengths cannot tell: ``tx`` time first, ``xt`` space first.
        drop_nan: for scattered points, drop the points where a field is NaN (outside the domain).
        split: the split (HDF5 group). (default: ``train``)
        shard: ``(i, n)``: the single sample goes to the last shard (the contiguous rule of
            :func:`~sciml.datasets.shards.shard_range`).
    """
    shard = check_shard(shard)
    p = existing(path)
    arrays = _read_npz(p)
    sample, coords = arrays_to_sample(arrays, str(p), fields=fields, time_key=time_key, space_keys=space_keys,
                                      layout=layout, drop_nan=drop_nan)
    return single_record_spec(lambda: sample, shard=shard, split=split, kind="fields",
                              source=f"npz_fields:{p}", coords=coords or None,
                              config=config_of(converter="npz_fields", path=path, fields=list(fields),
                                               time_key=time_key, space_keys=list(space_keys), layout=layout,
                                               drop_nan=drop_nan, split=split))
