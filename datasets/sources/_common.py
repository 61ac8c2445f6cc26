"""Shared helpers of the converters: typed one-line errors naming the file, sharding, re-iterable lazy splits,
and the factory that builds the writer's ``DataSpec``."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sciml.datasets.shards import check_shard  # noqa: F401  (re-exported)
from sciml.errors import DataFormatError

__all__ = ["DataFormatError", "fail", "LazySplit", "in_shard", "check_shard", "make_spec", "split_from_name",
           "one_line"]


def one_line(text: object) -> str:
    """``text`` as a single line (errors from libraries may span several)."""
    return " ".join(str(text).split())


def fail(path: str | os.PathLike, problem: str, *, line: int | None = None) -> DataFormatError:
    """A :class:`DataFormatError` whose one-line message is ``<path>[:<line>]: <problem>``. Raise the result."""
    where = f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)
    return DataFormatError(f"{where}: {one_line(problem)}")


def in_shard(index: int, shard: tuple[int, int] | None, total: int) -> bool:
    """Whether record ``index`` (counted per split, from 0) of ``total`` belongs to ``shard``.

    The rule is the package's one contiguous rule, :func:`sciml.datasets.shards.shard_range` (the generators use it
    too), so ``merge`` (which concatenates shards ``0..n-1``) gives back the records in their original order.
    """
    from sciml.datasets.shards import shard_range

    return shard is None or index in shard_range(total, shard)


def shard_count(total: int, shard: tuple[int, int] | None) -> int:
    """How many of ``total`` records fall in ``shard``."""
    from sciml.datasets.shards import shard_range

    return len(shard_range(total, shard))


class LazySplit:
    """A re-iterable, streaming split: each ``iter()`` calls ``factory()`` for a fresh generator, so records are
    produced one at a time (memory-bounded) and the writer may iterate twice (e.g. once to count, once to write).

    Args:
        factory: returns an iterator of records.
        length: number of records, when known without reading them (``len()`` raises ``TypeError`` otherwise).
    """

    def __init__(self, factory: Callable[[], Iterator[Any]], length: int | None = None) -> None:
        self._factory = factory
        self._length = length

    def __iter__(self) -> Iterator[Any]:
        return iter(self._factory())

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("the number of records of this split is not known before reading it")
        return self._length

    def __repr__(self) -> str:
        return f"LazySplit(length={self._length})"


_SPLIT_WORDS = {"train": "train", "training": "train", "test": "test", "testing": "test", "val": "val",
                "valid": "val", "validation": "val"}


def split_from_name(path: str | os.PathLike, default: str = "train") -> str:
    """``train``/``test``/``val`` when the file name says so (``darcy_test_16.pt``, ``X_TRAIN.ts``), else
    ``default``."""
    words = re.split(r"[^a-z]+", Path(path).name.lower())
    for w in words:
        if w in _SPLIT_WORDS:
            return _SPLIT_WORDS[w]
    return default


def make_spec(*, kind: str, splits: dict[str, Iterable[Any]], source: str, config: dict[str, Any],
              coords: dict[str, Any] | None = None, sizes: dict[str, int] | None = None) -> Any:
    """Build the writer's :class:`~sciml.datasets.writer.DataSpec`."""
    from sciml.datasets.writer import DataSpec

    return DataSpec(kind=kind, splits=splits, source=source, config=config, coords=coords, sizes=sizes)


def single_record_spec(read: Callable[[], Any], *, shard: tuple[int, int] | None, split: str, kind: str,
                       source: str, config: dict[str, Any], coords: dict[str, Any] | None = None) -> Any:
    """The spec of an input holding exactly one record (one graph, one reference solution): the record belongs to
    the last shard (the rule of :func:`~sciml.datasets.shards.shard_range` for one item), and ``read()`` is called
    only when the split is iterated."""
    count = 1 if in_shard(0, shard, 1) else 0
    return make_spec(kind=kind, splits={split: LazySplit(lambda: (read() for _ in range(count)), count)},
                     source=source, config=config, coords=coords, sizes={split: count})


def existing(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a :class:`Path`, or a :class:`DataFormatError` when it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise fail(p, f"no such {what} file or directory")
    return p


def config_of(**options: Any) -> dict[str, Any]:
    """The converter options as a plain dict for ``DataSpec.config`` (paths as strings, tuples as lists)."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out
