"""neuraloperator ``.pt`` datasets (``torch.save`` of ``{"x": ..., "y": ...[, "visc": ...]}``: Darcy flow,
Burgers...) -> :class:`FieldSample` records ``fields={"a": x, "u": y}``.

Files are read with ``torch.load(weights_only=True)``: only tensors and plain containers, nothing is executed.

Shapes: ``x [N, *S]`` (the input, e.g. Darcy's permeability ``[N, 16, 16]``, Burgers' initial condition
``[N, 16]``) and ``y [N, *S]`` or ``[N, T, *S]`` (Burgers' space-time solution ``[N, 17, 16]``). The number of
spatial axes is that of ``x`` (option ``spatial_dims``); an extra leading axis of an array is its time axis. Every
field becomes ``[T, *S, 1]``; a field without a time axis is repeated along ``T`` when another field has one (the
sciml-h5 layout keeps one grid for all fields). Other keys holding one number (``visc [1, 1]``) or one number per
sample (``[N]``) become ``params``. Coordinates: ``x``, ``y``, ``z`` = ``linspace(0, 1, n)`` per spatial axis (the
unit square of these benchmarks), and ``t = linspace(0, 1, T)`` when ``T > 1``.

Dtypes: fields are stored as float32. ``bfloat16`` tensors (which numpy cannot represent) are converted to float32
explicitly (exact: every bfloat16 is a float32); float16/32/64, bool and integer tensors are accepted as well.
Any other dtype (complex, ``float8_*``, quantized...) is a one-line :class:`DataFormatError` naming the file and key.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from sciml.datasets.records import FieldSample
from sciml.datasets.sources._common import (LazySplit, check_shard, config_of, existing, fail, in_shard,
                                            make_spec, one_line, shard_count, split_from_name)

__all__ = ["convert_neuraloperator_pt", "load_pt"]


def load_pt(path: Any) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, corrupt input as :class:`DataFormatError`."""
    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:  # UnpicklingError (unsafe or corrupt), RuntimeError (bad zip), EOFError...
        msg = one_line(err)
        if "weights_only" in msg.lower() or "unsupported global" in msg.lower():
            msg = "refused: the file holds Python objects other than tensors and plain containers " \
                  f"({msg[:160]})"
        else:
            msg = f"not a readable torch file ({type(err).__name__}: {msg[:200]})"
        raise fail(path, msg) from None


def convert_neuraloperator_pt(path: str | os.PathLike, *, input_key: str = "x", output_key: str = "y",
                              spatial_dims: int = 0, split: str = "auto",
                              shard: tuple[int, int] | None = None) -> Any:
    """A neuraloperator ``.pt`` dict -> a ``fields`` DataSpec, one :class:`FieldSample` per sample.

    Args:
        path: the ``.pt`` file.
        input_key: the key of the input field, stored as field ``a``. (default: ``x``)
        output_key: the key of the solution, stored as field ``u``. (default: ``y``)
        spatial_dims: the number of spatial axes; 0: those of the input after the sample axis. (default: 0)
        split: the split; ``auto``: ``train`` / ``test`` from the file name (``darcy_test_16.pt``), else ``train``.
        shard: ``(i, n)``: the contiguous block of samples :func:`~sciml.datasets.shards.shard_range` gives.
    """
    import torch

    _FIELD_DTYPES = {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool, torch.uint8, torch.int8,
                     torch.int16, torch.int32, torch.int64}
    shard = check_shard(shard)
    p = existing(path)
    obj = load_pt(p)
    if not isinstance(obj, dict):
        raise fail(p, f"expected a dict with keys {input_key!r} and {output_key!r}, found a {type(obj).__name__}")
    for k in (input_key, output_key):
        if k not in obj:
            raise fail(p, f"no key {k!r} (keys: {', '.join(map(str, obj))})")
        if not isinstance(obj[k], torch.Tensor):
            raise fail(p, f"{k!r} is a {type(obj[k]).__name__}, expected a tensor")
    x, y = obj[input_key], obj[output_key]
    if x.ndim < 2:
        raise fail(p, f"{input_key!r} has shape {list(x.shape)}, expected [N, *spatial]")
    n = x.shape[0]
    if y.shape[0] != n:
        raise fail(p, f"{input_key!r} has {n} samples but {output_key!r} has {y.shape[0]}")
    sd = spatial_dims or x.ndim - 1
    grid = tuple(x.shape[x.ndim - sd:])
    arrays = {}
    times = 1
    for name, key, t in (("a", input_key, x), ("u", output_key, y)):
        extra = t.ndim - 1 - sd
        if extra not in (0, 1) or tuple(t.shape[t.ndim - sd:]) != grid:
            raise fail(p, f"{key!r} has shape {list(t.shape)}, expected [N, *{list(grid)}] or [N, T, *{list(grid)}]")
        if extra:
            if times > 1 and t.shape[1] != times:
                raise fail(p, f"{key!r} has {t.shape[1]} time steps, another field has {times}")
            times = t.shape[1]
        if t.dtype not in _FIELD_DTYPES:
            raise fail(p, f"{key!r} has dtype {t.dtype}, which cannot be converted to a numpy array (expected "
                          "float16/32/64, bfloat16, bool or int)")
        arrays[name] = (t, extra)
    params: dict[str, Any] = {}
    for k, v in obj.items():
        if k in (input_key, output_key) or not isinstance(v, torch.Tensor) or v.is_complex():
            continue
        if v.dtype not in _FIELD_DTYPES:
            raise fail(p, f"key {k!r} has dtype {v.dtype}, which cannot be converted to a number (expected "
                          "float16/32/64, bfloat16, bool or int)")
        if v.numel() == 1:
            params[str(k)] = float(v.reshape(-1)[0])
        elif v.ndim in (1, 2) and v.shape[0] == n and v.numel() == n:
            params[str(k)] = v.reshape(-1).double().numpy()
        else:
            raise fail(p, f"key {k!r} of shape {list(v.shape)} is neither a field, one number, nor one number per "
                          "sample")

    def records():
        for i in range(n):
            if not in_shard(i, shard, n):
                continue
            fields = {}
            for name, (t, extra) in arrays.items():
                # bfloat16 (no numpy dtype) and integers -> float32 explicitly; float16/32/64 as they are.
                exact = t.dtype in (torch.float16, torch.float32, torch.float64)
                a = t[i].numpy() if exact else t[i].to(torch.float32).numpy()
                a = a if extra else a[None]
                if a.shape[0] != times:
                    a = np.repeat(a, times, axis=0)
                fields[name] = np.ascontiguousarray(a[..., None])
            ps = {k: float(v if isinstance(v, float) else v[i]) for k, v in params.items()}
            yield FieldSample(fields=fields, params=ps)

    coords = {}
    if times > 1:
        coords["t"] = np.linspace(0.0, 1.0, times)
    for axis, size in zip(("x", "y", "z"), grid):
        coords[axis] = np.linspace(0.0, 1.0, size)
    name = split_from_name(p) if split == "auto" else split
    count = shard_count(n, shard)
    return make_spec(kind="fields", splits={name: LazySplit(records, count)}, source=f"neuraloperator_pt:{p}",
                     coords=coords, sizes={name: count},
                     config=config_of(converter="neuraloperator_pt", path=path, input_key=input_key,
                                      output_key=output_key, spatial_dims=sd, split=name))
