"""One traversal of nested batches/outputs, shared by :func:`~sciml.train.detach_tree` and
:func:`~sciml.train.sampler.move_to_device`."""
from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["map_tensors"]


def map_tensors(fn: Callable[[torch.Tensor], Any], obj: Any, *, other: Callable[[Any], Any] | None = None) -> Any:
    """``obj`` with ``fn`` applied to every tensor inside tuples (namedtuples included), lists and dicts.

    Args:
        fn: applied to each ``torch.Tensor``.
        obj: a tensor or a nest of tuples, lists and dicts.
        other: applied to any other leaf (e.g. a PyG ``Data`` with its own ``.to``/``.detach``); ``None`` leaves
            such leaves unchanged. (default: ``None``)
    """
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        mapped = [map_tensors(fn, o, other=other) for o in obj]
        return type(obj)(*mapped) if hasattr(obj, "_fields") else type(obj)(mapped)
    if isinstance(obj, list):
        mapped = [map_tensors(fn, o, other=other) for o in obj]
        return mapped if type(obj) is list else type(obj)(mapped)
    if isinstance(obj, dict):
        items = {k: map_tensors(fn, v, other=other) for k, v in obj.items()}
        if type(obj) is dict:
            return items
        try:
            return type(obj)(items)
        except TypeError:  # a dict subclass with another constructor (defaultdict...)
            return items
    return other(obj) if other is not None else obj
