"""Batch samplers for variable-size samples (atomistic structures, graphs).

:class:`SizeBalancedBatchSampler` keeps the number of batches per epoch fixed (``ceil(N / batch_size)``, like a
plain batch sampler) but chooses *which* samples go together so that the batches' total sizes (atoms, nodes) are
close: fairchem's ``natoms`` load balancing. Per epoch, the seeded permutation is cut into windows of
``window`` batches; inside a window samples are taken largest first and each goes to the batch with the smallest
total that still has room (longest-processing-time greedy with a cardinality cap). The greedy keeps each batch's
total within about ``mean + max(size)`` of the window; the order of batches is then shuffled.
"""
from __future__ import annotations

import heapq
from typing import Iterator, Sequence

import numpy as np
import torch

__all__ = ["SizeBalancedBatchSampler"]


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch  # the same rule as sciml.train.sampler.epoch_seed


class SizeBalancedBatchSampler:
    r"""Batches of at most ``batch_size`` samples whose total ``sizes`` are balanced.

    Usable as a ``DataLoader(batch_sampler=...)`` (call :meth:`set_epoch` each epoch) or through
    :meth:`batches` (the interface of :class:`sciml.train.sampler.ResumableBatchSampler`): the batches of epoch
    ``e`` depend only on ``(sizes, batch_size, seed, e)``.

    Args:
        sizes (Sequence[int]): Size of each sample (atoms per structure: ``AtomsDataset.sizes``).
        batch_size (int): Maximum samples per batch; there are ``ceil(N / batch_size)`` batches per epoch.
        shuffle (bool): Random windows and batch order each epoch; ``False`` balances the natural order.
            (default: ``True``)
        seed (int): Base seed. (default: ``0``)
        window (int): Batches balanced together. (default: ``32``)
        rank (int), world_size (int): Data-parallel position: rank ``r`` gets batches ``r::world_size`` (the list
            is padded by wrap-around so every rank has as many). (default: ``0``, ``1``)
    """

    def __init__(self, sizes: Sequence[int] | np.ndarray | torch.Tensor, batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, window: int = 32, rank: int = 0, world_size: int = 1) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
        if len(self.sizes) == 0:
            raise ValueError("sizes is empty: no samples to batch")
        if (self.sizes < 0).any():
            raise ValueError("sizes must be non-negative")
        if batch_size < 1 or window < 1:
            raise ValueError(f"batch_size and window must be positive, got {batch_size}, {window}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.batch_size, self.shuffle, self.seed, self.window = batch_size, shuffle, seed, window
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        n_batches = -(-len(self.sizes) // batch_size)
        self.num_batches = -(-n_batches // world_size)
        self._cache: tuple[int, list[torch.Tensor]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.batches(self.epoch):
            yield b.tolist()

    def all_batches(self, epoch: int) -> list[np.ndarray]:
        """Every rank's batches of ``epoch`` (before the split across ranks)."""
        n = len(self.sizes)
        rng = np.random.Generator(np.random.PCG64(_epoch_seed(self.seed, epoch)))
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        span = self.window * self.batch_size
        batches: list[np.ndarray] = []
        for start in range(0, n, span):
            idx = order[start:start + span]
            k = -(-len(idx) // self.batch_size)
            # largest first; a stable sort keeps the random order among equal sizes
            idx = idx[np.argsort(-self.sizes[idx], kind="stable")]
            heap = [(0, j) for j in range(k)]
            members: list[list[int]] = [[] for _ in range(k)]
            for i in idx:
                total, j = heapq.heappop(heap)
                members[j].append(int(i))
                if len(members[j]) < self.batch_size:
                    heapq.heappush(heap, (total + int(self.sizes[i]), j))
            batches.extend(np.array(m, dtype=np.int64) for m in members)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's batches (index tensors) of ``epoch``."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        batches = self.all_batches(epoch)
        total = self.num_batches * self.world_size
        while len(batches) < total:
            batches = batches + batches[: total - len(batches)]
        out = [torch.from_numpy(b) for b in batches[self.rank::self.world_size]]
        self._cache = (epoch, out)
        return out
