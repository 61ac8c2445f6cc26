"""Values derived from tensors (adjacencies of an ``edge_index``, CSR forms of sparse features), kept while the
tensors live: the one cache behind ``cached_adjacency``, the GAT self-loop adjacency and sparse feature matrices."""
from __future__ import annotations

import weakref
from typing import Callable, Generic, Hashable, TypeVar

from torch import Tensor

__all__ = ["TensorCache"]

V = TypeVar("V")


class TensorCache(Generic[V]):
    """A dict keyed on the *identity* of some tensors plus a hashable ``extra`` key.

    An entry is dropped when any of its tensors is garbage-collected (so a later tensor that reuses the id never
    sees it). ``exclusive=True`` keeps one entry per tensor set: building a new ``extra`` (e.g. a new version
    counter after an in-place edit) drops the others of the same tensors.
    """

    def __init__(self, *, exclusive: bool = False) -> None:
        self._entries: dict[tuple, V] = {}
        self.exclusive = exclusive

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tensors: tuple[Tensor | None, ...], extra: Hashable, build: Callable[[], V]) -> V:
        """The cached value for ``(tensors, extra)``, from ``build()`` on a miss."""
        ids = tuple(None if t is None else id(t) for t in tensors)
        key = (ids, extra)
        value = self._entries.get(key)
        if value is None:
            value = build()
            if self.exclusive:
                for k in [k for k in self._entries if k[0] == ids]:
                    del self._entries[k]
            self._entries[key] = value
            for t in tensors:
                if t is not None:
                    weakref.finalize(t, self._entries.pop, key, None)
        return value
