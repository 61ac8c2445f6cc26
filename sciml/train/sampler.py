"""A resumable, rank-sharded batch sampler and the batch loader built on it.

The order of epoch ``e`` depends only on ``(seed, e)``: it is ``torch.randperm(n, generator=g)`` with
``g = torch.Generator().manual_seed(epoch_seed(seed, e))``. So the sampler's whole state is ``(epoch, position)`` and a
resumed run continues with exactly the batches an uninterrupted run would have drawn.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset, default_collate

from sciml.errors import ConfigError
from sciml.train.tree import map_tensors

__all__ = ["ResumableBatchSampler", "BatchLoader", "epoch_seed", "batch_seed", "default_collate_fn",
           "move_to_device"]


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the shuffling generator for ``epoch``."""
    return seed * 100_003 + epoch


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """Seed of the RNGs a ``DataLoader`` worker uses while it fetches batch ``batch`` of ``epoch``."""
    return (epoch_seed(seed, epoch) * 1_000_003 + batch) % 2**63


class ResumableBatchSampler:
    r"""Splits ``range(num_samples)`` into batches, deterministically per epoch, for one rank of ``world_size``.

    Sharding follows ``DistributedSampler``: the (shuffled) index list is padded by wrapping around to a multiple
    of ``world_size`` and rank ``r`` takes ``indices[r::world_size]``. Batch ``i`` of all ranks together is then
    the contiguous slice ``i * batch_size * world_size ...`` of the epoch's order, i.e. exactly the batch a single
    process with ``batch_size * world_size`` sees.

    Args:
        num_samples (int): dataset length.
        batch_size (int): samples per batch on this rank.
        shuffle (bool): permute each epoch. (default: ``True``)
        seed (int): base seed of the per-epoch permutation. (default: ``0``)
        drop_last (bool): drop a last incomplete batch. (default: ``False``)
        rank (int), world_size (int): data-parallel position. (default: ``0``, ``1``)
        pad (bool): wrap around so every rank gets the same number of samples (training). Evaluation uses
            ``pad=False`` so that no sample is counted twice; a rank may then get no batch. (default: ``True``)
    """

    def __init__(self, num_samples: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 pad: bool = True) -> None:
        if num_samples <= 0:
            raise ConfigError(f"dataset is empty (num_samples={num_samples}); expected at least one sample")
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.num_samples, self.batch_size, self.shuffle, self.seed = num_samples, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size, self.pad = drop_last, rank, world_size, pad
        if pad:
            per_rank = -(-num_samples // world_size)
        else:
            per_rank = len(range(rank, num_samples, world_size))
        self.num_batches = per_rank // batch_size if drop_last else -(-per_rank // batch_size)
        if self.num_batches == 0 and pad:
            raise ConfigError(f"drop_last=True with {per_rank} samples per rank and batch_size={batch_size} "
                             "leaves no batch")
        self._cache: tuple[int, list[torch.Tensor]] | None = None

    def __len__(self) -> int:
        return self.num_batches

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's batches (index tensors) of ``epoch``."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n = self.num_samples
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch)))
        else:
            order = torch.arange(n)
        if self.world_size > 1 and self.pad:
            total = -(-n // self.world_size) * self.world_size
            if total > n:
                order = torch.cat([order, order.repeat(-(-(total - n) // n))[: total - n]])
            order = order[self.rank::self.world_size]
        elif self.world_size > 1:
            order = order[self.rank::self.world_size]
        out = list(order.split(self.batch_size))[: self.num_batches]
        self._cache = (epoch, out)
        return out


def default_collate_fn(items: list[Any]) -> Any:
    """Collate a list of samples: PyG ``Data`` → ``Batch`` (a single graph is passed through unchanged, so a
    full-batch ``[data]`` dataset costs no copy per step); anything else → ``torch.utils.data.default_collate``."""
    first = items[0]
    try:
        from torch_geometric.data.data import BaseData
    except ImportError:  # pragma: no cover - PyG is optional
        BaseData = ()  # type: ignore[assignment]
    if BaseData and isinstance(first, BaseData):
        if len(items) == 1:
            return first
        from torch_geometric.data import Batch
        return Batch.from_data_list(items)
    return default_collate(items)


def _to_other(device: torch.device) -> Callable[[Any], Any]:
    return lambda obj: obj.to(device) if hasattr(obj, "to") else obj


def move_to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (and anything with ``.to``) inside tuples and namedtuples, lists and dicts to ``device``
    (:func:`sciml.train.tree.map_tensors`)."""
    return map_tensors(lambda t: t if t.device == device else t.to(device, non_blocking=True), obj,
                       other=_to_other(device))


def _fetch(dataset: Any, indices: torch.Tensor, collate_fn: Callable[[list[Any]], Any], tensor_fast_path: bool) -> Any:
    if tensor_fast_path:
        return tuple(t[indices] for t in dataset.tensors)
    idx = indices.tolist()
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(idx) if getitems is not None else [dataset[i] for i in idx]
    return collate_fn(items)


class _EpochBatches(Dataset):
    """The batches of every epoch as one dataset keyed by ``(epoch, batch)``: a worker seeds python, numpy and
    torch with :func:`batch_seed` before fetching, so a batch's random augmentation depends only on
    ``(seed, epoch, batch)``, not on which worker fetched it or when the loader was created (resume)."""

    def __init__(self, dataset: Any, sampler: "ResumableBatchSampler", collate_fn: Callable[[list[Any]], Any],
                 tensor_fast_path: bool) -> None:
        self.dataset, self.sampler, self.collate_fn = dataset, sampler, collate_fn
        self.tensor_fast_path = tensor_fast_path

    def __len__(self) -> int:  # pragma: no cover - only keys from _Keys are fetched
        return len(self.sampler)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, j = key
        s = batch_seed(self.sampler.seed, epoch, j)
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)
        return _fetch(self.dataset, self.sampler.batches(epoch)[j], self.collate_fn, self.tensor_fast_path)


class _Keys(Sampler):
    """The ``(epoch, batch)`` keys of the next pass; reset before every ``iter(loader)`` (persistent workers)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(list(self.keys))

    def __len__(self) -> int:
        return len(self.keys)


def _first(batch: Any) -> Any:
    return batch


class BatchLoader:
    """Fetches and collates the batches a :class:`ResumableBatchSampler` yields, from any position of an epoch.

    A ``TensorDataset`` is indexed with the whole index tensor at once; a dataset with ``__getitems__`` gets the
    index list; anything else is indexed item by item.

    ``num_workers > 0`` hands fetching to one ``DataLoader`` with persistent workers (forked once, reused by every
    epoch until :meth:`close`) and its own generator, so creating it draws nothing from the global torch RNG. Each
    batch is fetched with python/numpy/torch seeded by :func:`batch_seed` ``(seed, epoch, batch)``: random
    augmentation in the dataset is the same in a resumed run as in an uninterrupted one. A dataset with a single
    item (full-batch ``[data]``) is always fetched in the main process (no worker processes, global RNGs, as with
    ``num_workers=0``).
    """

    def __init__(self, dataset: Sequence[Any], sampler: ResumableBatchSampler, *,
                 collate_fn: Callable[[list[Any]], Any] | None = None, num_workers: int = 0,
                 device: torch.device | None = None) -> None:
        self.dataset, self.sampler = dataset, sampler
        self.num_workers = num_workers if len(dataset) > 1 else 0
        self.collate_fn = collate_fn or default_collate_fn
        self.device = device
        self._tensor_fast_path = isinstance(dataset, TensorDataset) and collate_fn is None
        self._needs_move = device is not None and device.type != "cpu"
        self._loader: DataLoader | None = None
        self._keys = _Keys()

    def __len__(self) -> int:
        return len(self.sampler)

    def fetch(self, indices: torch.Tensor) -> Any:
        batch = _fetch(self.dataset, indices, self.collate_fn, self._tensor_fast_path)
        return move_to_device(batch, self.device) if self._needs_move else batch

    def iterate(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """Batches ``start, start+1, ...`` of ``epoch``."""
        if self.num_workers <= 0:
            for indices in self.sampler.batches(epoch)[start:]:
                yield self.fetch(indices)
            return
        if self._loader is None:
            self._loader = DataLoader(
                _EpochBatches(self.dataset, self.sampler, self.collate_fn, self._tensor_fast_path),
                batch_size=None, sampler=self._keys, num_workers=self.num_workers, collate_fn=_first,
                pin_memory=self._needs_move, persistent_workers=True,
                generator=torch.Generator().manual_seed(epoch_seed(self.sampler.seed, 0)))
        self._keys.keys = [(epoch, j) for j in range(start, len(self.sampler))]
        for batch in self._loader:
            yield move_to_device(batch, self.device) if self._needs_move else batch

    def close(self) -> None:
        """Stop the worker processes (if any); the next :meth:`iterate` starts new ones."""
        loader, self._loader = self._loader, None
        it = getattr(loader, "_iterator", None) if loader is not None else None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
