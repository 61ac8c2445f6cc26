"""Resumable, rank-sharded batch samplers and the batch loader built on them.

The order of epoch ``e`` depends only on ``(seed, e)``: it is ``torch.randperm(n, generator=g)`` with
``g = torch.Generator().manual_seed(epoch_seed(seed, e))``. So the sampler's whole state is ``(epoch, position)`` and a
resumed run continues with exactly the batches an uninterrupted run would have drawn.

* :class:`ResumableBatchSampler`: batches of ``batch_size`` samples (the default of the Trainer).
* :class:`BalancedBatchSampler`: the same samples per window of batches, regrouped so that every batch has about
  the same total size (atoms per structure): fairchem's load balancing (``Trainer(batch_sampler="balanced")``).
"""
from __future__ import annotations

import heapq
import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset, default_collate

from sciml.errors import ConfigError
from sciml.train.tree import map_tensors

__all__ = ["ResumableBatchSampler", "BalancedBatchSampler", "BatchLoader", "epoch_seed", "batch_seed",
           "default_collate_fn", "move_to_device", "balanced_partition", "sample_sizes", "make_batch_sampler"]


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
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        """The epoch :meth:`__iter__` yields (as ``DistributedSampler.set_epoch``)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        """The batches of the current epoch as index lists: usable as a ``DataLoader(batch_sampler=...)``."""
        return iter([b.tolist() for b in self.batches(self.epoch)])

    #: What the position ``(epoch, batch_in_epoch)`` refers to; the Trainer stores it with checkpoints.
    layout = "default"

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` for all ranks together (padded by wrap-around with ``pad=True``)."""
        n = self.num_samples
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch)))
        else:
            order = torch.arange(n)
        if self.world_size > 1 and self.pad:
            total = -(-n // self.world_size) * self.world_size
            if total > n:
                order = torch.cat([order, order.repeat(-(-(total - n) // n))[: total - n]])
        return order

    def rank_batches(self, order: torch.Tensor, rank: int) -> list[torch.Tensor]:
        """The batches of ``rank`` cut from an :meth:`epoch_order`."""
        if self.world_size > 1:
            order = order[rank::self.world_size]
        per_rank = order.numel()
        nb = per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)
        return list(order.split(self.batch_size))[:nb]

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's batches (index tensors) of ``epoch``."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        out = self.rank_batches(self.epoch_order(epoch), self.rank)[: self.num_batches]
        self._cache = (epoch, out)
        return out


def balanced_partition(sizes: Sequence[int] | np.ndarray | torch.Tensor, num_parts: int) -> list[list[int]]:
    r"""Split items of the given ``sizes`` into ``num_parts`` groups of nearly equal total size.

    Longest-processing-time greedy (Graham, *Bounds on multiprocessing timing anomalies*, SIAM J. Appl. Math.
    1969), the rule of fairchem's ``_balanced_partition``: items are taken largest first (equal sizes in their
    given order) and each goes to the group with the smallest total (ties: fewer items, then the lower group).
    The largest total is at most :math:`(\tfrac43 - \tfrac1{3m})` times the optimum and at most the mean total
    plus the largest item. With at least ``num_parts`` items no group is empty.

    Args:
        sizes (sequence of int): non-negative size of each item.
        num_parts (int): number of groups :math:`m`.

    Returns:
        list of list of int: the item positions of each group, ascending.
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if num_parts < 1:
        raise ConfigError(f"balanced_partition: num_parts must be positive, got {num_parts}")
    if (sizes < 0).any():
        raise ConfigError(f"balanced_partition: sizes must be non-negative, got {int(sizes.min())}")
    heap = [(0, 0, j) for j in range(num_parts)]
    groups: list[list[int]] = [[] for _ in range(num_parts)]
    for i in np.argsort(-sizes, kind="stable").tolist():
        load, count, j = heapq.heappop(heap)
        groups[j].append(i)
        heapq.heappush(heap, (load + int(sizes[i]), count + 1, j))
    return [sorted(g) for g in groups]


class BalancedBatchSampler(ResumableBatchSampler):
    r"""A :class:`ResumableBatchSampler` whose batches have about the same total size (atoms per structure).

    fairchem's load balancing ("load_balancing: atoms"): each epoch takes exactly the samples
    :class:`ResumableBatchSampler` would (same permutation, rank padding, ``drop_last``), pools the batches of
    ``window`` consecutive steps of all ranks, and re-partitions every pool into as many batches with
    :func:`balanced_partition` (largest first into the lightest batch), so a batch may hold more small or fewer
    large structures than ``batch_size``. fairchem balances one step across the ranks (``window=1``, which on a
    single process changes nothing); a larger window also evens out consecutive steps of one process (steady
    memory and step time). Each batch total is at most the pool's mean plus its largest sample. The batches of a
    pool are put in a random (seeded) order; the state is still just ``(epoch, position)``.

    Args:
        sizes (sequence of int): size (atoms) of each sample; :func:`sample_sizes` reads them off a dataset.
        batch_size (int): samples per batch on this rank *on average*.
        shuffle, seed, drop_last, rank, world_size, pad: as in :class:`ResumableBatchSampler`.
        window (int): steps whose batches are balanced together. (default: ``8``)
    """

    def __init__(self, sizes: Sequence[int] | np.ndarray | torch.Tensor, batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, rank: int = 0, world_size: int = 1, pad: bool = True,
                 window: int = 8) -> None:
        sizes = np.asarray(sizes.cpu() if isinstance(sizes, torch.Tensor) else sizes).reshape(-1)
        if sizes.size and not np.issubdtype(sizes.dtype, np.integer):
            raise ConfigError(f"BalancedBatchSampler: sizes must be integers (atoms per sample), got {sizes.dtype}")
        if sizes.size and int(sizes.min()) < 0:
            raise ConfigError(f"BalancedBatchSampler: sizes must be non-negative, got {int(sizes.min())}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"BalancedBatchSampler: window must be a positive integer, got {window!r}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"BalancedBatchSampler: rank {rank} outside 0..{world_size - 1}")
        super().__init__(int(sizes.size), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank,
                         world_size=world_size, pad=pad)
        self.sizes = sizes.astype(np.int64)
        self.window = window
        self.layout = f"balanced(window={window})"

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's batches (index tensors) of ``epoch``."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        order = self.epoch_order(epoch)
        plain = [self.rank_batches(order, r) for r in range(self.world_size)]
        steps = max(len(p) for p in plain)
        # the ranks that have a batch at step k are 0..m_k-1 (counts per rank never increase with the rank)
        ranks_at = [sum(1 for p in plain if len(p) > k) for k in range(steps)]
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) + 1)
        mine: list[torch.Tensor] = []
        for start in range(0, steps, self.window):
            ks = range(start, min(start + self.window, steps))
            pool = torch.cat([p[k] for k in ks for p in plain if len(p) > k])
            parts = sum(ranks_at[k] for k in ks)
            groups = balanced_partition(self.sizes[pool.numpy()], parts)
            if self.shuffle:
                groups = [groups[j] for j in torch.randperm(parts, generator=gen).tolist()]
            j = 0
            for k in ks:
                if self.rank < ranks_at[k]:
                    mine.append(pool[torch.tensor(groups[j + self.rank], dtype=torch.long)])
                j += ranks_at[k]
        out = mine[: self.num_batches]
        self._cache = (epoch, out)
        return out


def sample_sizes(data: Any) -> np.ndarray:
    """Size of every sample of ``data`` (atoms/nodes): its ``sizes`` attribute if it has one
    (:class:`~sciml.datasets.reader.AtomsDataset`), else each sample's ``num_nodes`` (PyG ``Data``)."""
    n = len(data)
    sizes = getattr(data, "sizes", None)
    if sizes is not None:
        sizes = np.asarray(sizes).reshape(-1)
        if sizes.size != n:
            raise ConfigError(f"{type(data).__name__}.sizes has {sizes.size} entries for {n} samples")
        return sizes.astype(np.int64)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        item = data[i]
        size = getattr(item, "num_nodes", None)
        if size is None:
            raise ConfigError(f"batch_sampler='balanced': cannot tell the size of sample {i} ({type(item).__name__}: "
                              "no num_nodes); give the dataset a `sizes` attribute (atoms per sample)")
        out[i] = int(size)
    return out


_BALANCED_KEYS = ("name", "window")


def make_batch_sampler(spec: Any, data: Any, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                       drop_last: bool = False, rank: int = 0, world_size: int = 1) -> ResumableBatchSampler:
    """The Trainer's training sampler from its ``batch_sampler`` argument.

    Args:
        spec: ``None``/``"default"`` (:class:`ResumableBatchSampler`), ``"balanced"`` or
            ``{"name": "balanced", "window": 8}`` (:class:`BalancedBatchSampler` with :func:`sample_sizes` of
            ``data``), or a factory called as ``spec(data, batch_size=, shuffle=, seed=, drop_last=, rank=,
            world_size=)`` returning an object with ``batches(epoch)``, ``__len__`` and ``seed``.
    """
    common = dict(shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size)
    if spec is None or spec == "default":
        return ResumableBatchSampler(len(data), batch_size, **common)
    if spec == "balanced" or isinstance(spec, dict):
        options = {"name": "balanced"} if spec == "balanced" else dict(spec)
        for key in options:
            if key not in _BALANCED_KEYS:
                raise ConfigError(f"Trainer argument 'batch_sampler.{key}': unknown key; valid: "
                                  f"{', '.join(_BALANCED_KEYS)}")
        if options.get("name") != "balanced":
            raise ConfigError(f"Trainer argument 'batch_sampler.name': expected 'balanced', got "
                              f"{options.get('name')!r}")
        return BalancedBatchSampler(sample_sizes(data), batch_size, window=options.get("window", 8), **common)
    if callable(spec):
        sampler = spec(data, batch_size=batch_size, **common)
        missing = [a for a in ("batches", "__len__", "seed") if not hasattr(sampler, a)]
        if missing:
            raise ConfigError(f"Trainer argument 'batch_sampler': the factory returned a {type(sampler).__name__} "
                              f"without {', '.join(missing)}")
        return sampler
    raise ConfigError(f"Trainer argument 'batch_sampler': expected None, 'default', 'balanced', a mapping "
                      f"{{name: balanced, window: N}} or a factory, got {spec!r}")


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
