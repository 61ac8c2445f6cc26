"""Shared plumbing of the generators: per-sample seeds, split layout, sharding, and the DataSpec wrapper.

Every generator numbers its samples per split (``train``, ``val``, ``test``) and draws sample ``k`` of split ``s``
from ``np.random.SeedSequence([seed, SPLIT_CODE[s], k])`` only. A sample therefore does not depend on how many other
samples are requested, on the shard that produces it, or on the number of worker processes: the test set stays the
same when ``num_train`` changes, and ``shard=(i, n)`` runs concatenated in ``i`` order give exactly the samples of an
unsharded run.

Sharding is per split and contiguous: shard ``i`` of ``n`` owns indices ``[floor(i*N/n), floor((i+1)*N/n))`` of each
split of size ``N``, so concatenating the parts split by split, in shard order, restores the unsharded order.
Nothing outside the owned range is computed.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from sciml.datasets.shards import check_shard, shard_range  # noqa: F401  (re-exported)
from sciml.errors import ConfigError

__all__ = ["SPLITS", "SPLIT_CODE", "sample_rng", "shard_range", "check_shard", "split_sizes", "build_spec",
           "lazy_split"]

#: Split names, in file order.
SPLITS = ("train", "val", "test")
#: Integer code of each split in the per-sample seed (fixed forever: changing it changes every sample).
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of ``split`` for the run seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODE[split], int(index)]))


def sample_seed(seed: int, split: str, index: int) -> int:
    """A 32-bit integer derived from (seed, split, index), for libraries that want an int seed."""
    return int(np.random.SeedSequence([int(seed), SPLIT_CODE[split], int(index)]).generate_state(1)[0])


def split_sizes(num_train: int, num_val: int, num_test: int) -> dict[str, int]:
    """``{"train": .., "val": .., "test": ..}`` without empty splits; errors name the option at fault."""
    sizes = {"train": num_train, "val": num_val, "test": num_test}
    for name, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"num_{name}: expected a non-negative int, got {value!r}")
    if sum(sizes.values()) == 0:
        raise ConfigError("num_train, num_val, num_test: at least one split must be non-empty")
    return {k: int(v) for k, v in sizes.items() if v > 0}


def lazy_split(make: Callable[[str, int], Any], split: str, indices: range, flatten: bool = False
               ) -> Iterator[Any]:
    """A generator that calls ``make(split, k)`` for each owned ``k`` only when iterated.

    With ``flatten``, ``make`` returns a list of records (e.g. the frames of a trajectory), yielded one by one.
    """
    for k in indices:
        if flatten:
            yield from make(split, k)
        else:
            yield make(split, k)


def build_spec(*, kind: str, make: Callable[[str, int], Any], sizes: dict[str, int], shard: Any,
               source: str, config: dict[str, Any], coords: dict[str, np.ndarray] | None = None,
               records_per_sample: int | None = 1) -> Any:
    """The :class:`~sciml.datasets.writer.DataSpec` of a generator run: lazy per-split iterators over the samples
    this shard owns.

    Args:
        kind: record kind (``"fields"`` or ``"atoms"``).
        make: ``make(split, k)`` builds sample ``k`` of ``split`` (pure function of the options and (seed, split, k));
            it returns a list of records when ``records_per_sample != 1``.
        sizes: full (unsharded) split sizes, in samples.
        shard: ``(i, n)`` or ``None``.
        source: provenance string stored in the file (``"generator:<name>"``).
        config: the generator options (plain YAML values), stored in the file.
        coords: shared grids (``x``, ``y``, ``t``...).
        records_per_sample: records each sample yields (``None``: not known in advance; the spec's ``sizes``
            is then ``None``).
    """
    from sciml.datasets.writer import DataSpec

    check_shard(shard)
    owned = {name: shard_range(num, shard) for name, num in sizes.items()}
    flatten = records_per_sample != 1
    splits = {name: lazy_split(make, name, idx, flatten) for name, idx in owned.items()}
    local_sizes = (None if records_per_sample is None
                   else {name: len(idx) * records_per_sample for name, idx in owned.items()})
    return DataSpec(kind=kind, splits=splits, source=source, config=config, coords=coords, sizes=local_sizes)


def jsonable(options: dict[str, Any]) -> dict[str, Any]:
    """Options as plain JSON values (tuples -> lists, numpy scalars -> Python)."""
    out: dict[str, Any] = {}
    for k, v in options.items():
        if isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def positive(name: str, value: Any, kind: type = float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a positive ``kind``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0 or (
            kind is int and int(value) != value):
        raise ConfigError(f"{name}: expected a positive {kind.__name__}, got {value!r}")
