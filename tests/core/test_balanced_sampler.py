"""sciml.train.sampler.BalancedBatchSampler and Trainer(batch_sampler=...): same samples as the plain sampler,
batch totals checked against brute-force optimal partitions, resume mid-epoch, rank sharding.

References are written out by hand: the documented epoch order ``torch.randperm(n, generator=seed * 100_003 + e)``
with wrap-around padding, exhaustive enumeration of all assignments of samples to batches, and Graham's bound.
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Data

from sciml.errors import CheckpointError, ConfigError
from sciml.train import ResumableBatchSampler, Task, Trainer
from sciml.train.sampler import BalancedBatchSampler, balanced_partition, make_batch_sampler, sample_sizes


def perm(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()


def oc20_like_sizes(n: int, seed: int = 0) -> np.ndarray:
    """Atoms per structure spread like the OC20 trajectories (33-185)."""
    return np.random.default_rng(seed).integers(33, 186, size=n)


def brute_force_makespan(sizes: np.ndarray, parts: int) -> int:
    """Smallest possible largest group total over every assignment of items to ``parts`` groups."""
    assign = np.array(list(itertools.product(range(parts), repeat=len(sizes))))          # [parts^n, n]
    loads = np.stack([(assign == p) @ np.asarray(sizes) for p in range(parts)], axis=1)   # [parts^n, parts]
    return int(loads.max(axis=1).min())


# ----------------------------------------------------------------------------------------------- partition


def test_balanced_partition_within_graham_bound_of_brute_force_optimum():
    rng = np.random.default_rng(3)
    for trial in range(40):
        parts = int(rng.integers(2, 4))
        n = int(rng.integers(parts, 8))
        sizes = rng.integers(1, 60, size=n)
        groups = balanced_partition(sizes, parts)
        assert sorted(i for g in groups for i in g) == list(range(n))        # a partition
        assert all(groups)                                                   # no empty group
        makespan = max(int(sizes[g].sum()) for g in groups)
        opt = brute_force_makespan(sizes, parts)
        assert makespan <= (4 / 3 - 1 / (3 * parts)) * opt + 1e-9
        assert makespan <= sizes.sum() / parts + sizes.max()


def test_balanced_partition_examples_by_hand():
    # LPT on [7, 6, 5, 4, 3, 2] into 2: 7->A, 6->B, 5->B(6<7), 4->A(7<11), 3->A(11=11, A fewer items? both 2) ...
    groups = balanced_partition([7, 6, 5, 4, 3, 2], 2)
    loads = sorted(sum([7, 6, 5, 4, 3, 2][i] for i in g) for g in groups)
    assert loads == [13, 14]                                                 # the optimum (27 = 13 + 14)
    # zero sizes still fill every group
    assert all(balanced_partition([0, 0, 0], 3))
    with pytest.raises(ConfigError, match="non-negative"):
        balanced_partition([1, -1], 2)


# ----------------------------------------------------------------------------------------------- sampler


def test_window_one_on_one_process_equals_the_plain_sampler():
    sizes = oc20_like_sizes(23)
    plain = ResumableBatchSampler(23, 5, seed=2)
    bal = BalancedBatchSampler(sizes, 5, seed=2, window=1)
    assert len(bal) == len(plain) == 5
    for epoch in range(3):
        assert [sorted(b.tolist()) for b in bal.batches(epoch)] == [sorted(b.tolist()) for b in plain.batches(epoch)]


def test_same_samples_as_plain_sampler_per_window_and_epoch():
    n, b = 37, 4
    sizes = oc20_like_sizes(n, 1)
    order = perm(n, 5, 1)
    bal = BalancedBatchSampler(sizes, b, seed=5, window=3)
    batches = bal.batches(1)
    assert len(batches) == len(bal) == -(-n // b)
    for start in range(0, len(batches), 3):
        got = sorted(i for bt in batches[start:start + 3] for i in bt.tolist())
        assert got == sorted(order[start * b:(start + 3) * b])
    assert all(len(bt) > 0 for bt in batches)


def test_every_sample_once_per_epoch_across_ranks():
    n, b, world = 41, 3, 3
    sizes = oc20_like_sizes(n, 2)
    # evaluation-style sharding (no padding): every sample exactly once over all ranks
    ranks = [BalancedBatchSampler(sizes, b, seed=1, rank=r, world_size=world, pad=False, window=4)
             for r in range(world)]
    got = [i for s in ranks for bt in s.batches(0) for i in bt.tolist()]
    assert sorted(got) == list(range(n))
    # training sharding (padding by wrap-around, as DistributedSampler): all ranks get as many batches, and the
    # multiset of samples is the padded epoch order
    ranks = [BalancedBatchSampler(sizes, b, seed=1, rank=r, world_size=world, window=4) for r in range(world)]
    assert len({len(s) for s in ranks}) == 1
    order = perm(n, 1, 2)
    padded = order + order[: -(-n // world) * world - n]
    got = [i for s in ranks for bt in s.batches(2) for i in bt.tolist()]
    assert Counter(got) == Counter(padded)
    assert all(len(bt) > 0 for s in ranks for bt in s.batches(2))


def test_batch_totals_against_brute_force_optimum():
    """8 samples, 2 ranks x 2 samples, window 2: one pool of 8 samples in 4 batches. The largest batch total is
    within Graham's bound of the exhaustively enumerated optimum; the plain sampler is not."""
    rng = np.random.default_rng(0)
    worse = 0
    for trial in range(6):
        sizes = rng.integers(10, 200, size=8)
        ranks = [BalancedBatchSampler(sizes, 2, seed=trial, rank=r, world_size=2, window=2) for r in range(2)]
        batches = [bt for s in ranks for bt in s.batches(0)]
        assert sorted(i for bt in batches for i in bt.tolist()) == list(range(8))
        makespan = max(int(sizes[bt.numpy()].sum()) for bt in batches)
        opt = brute_force_makespan(sizes, 4)
        assert makespan <= (4 / 3 - 1 / 12) * opt + 1e-9
        plain = [bt for r in range(2) for bt in ResumableBatchSampler(8, 2, seed=trial, rank=r, world_size=2).batches(0)]
        worse += max(int(sizes[bt.numpy()].sum()) for bt in plain) > makespan
    assert worse >= 3   # the plain batches are usually further from balanced


def test_steps_balanced_across_ranks_and_within_window():
    n, b, world, window = 96, 4, 2, 4
    sizes = oc20_like_sizes(n, 4)
    ranks = [BalancedBatchSampler(sizes, b, seed=0, rank=r, world_size=world, window=window) for r in range(world)]
    totals = np.array([[sizes[bt.numpy()].sum() for bt in s.batches(0)] for s in ranks])   # [rank, step]
    order = np.array(perm(n, 0, 0))
    for start in range(0, totals.shape[1], window):
        pool = order[start * b * world:(start + window) * b * world]
        bound = sizes[pool].sum() / (window * world) + sizes[pool].max()
        assert totals[:, start:start + window].max() <= bound
    plain = np.array([[sizes[bt.numpy()].sum() for bt in ResumableBatchSampler(n, b, seed=0, rank=r,
                                                                               world_size=world).batches(0)]
                      for r in range(world)])
    assert totals.std() < 0.5 * plain.std()


def test_drop_last_and_errors():
    sizes = oc20_like_sizes(10)
    bal = BalancedBatchSampler(sizes, 3, seed=0, drop_last=True, window=2)
    assert len(bal) == 3 and sum(len(bt) for bt in bal.batches(0)) == 9
    assert sorted(i for bt in bal.batches(0) for i in bt.tolist()) == sorted(perm(10, 0, 0)[:9])
    with pytest.raises(ConfigError, match="window"):
        BalancedBatchSampler(sizes, 3, window=0)
    with pytest.raises(ConfigError, match="integers"):
        BalancedBatchSampler(np.ones(4) * 1.5, 2)
    with pytest.raises(ConfigError, match="empty"):
        BalancedBatchSampler([], 2)
    with pytest.raises(ConfigError, match="batch_sampler.windw"):
        make_batch_sampler({"name": "balanced", "windw": 3}, [Data(num_nodes=2)], 1)
    with pytest.raises(ConfigError, match="batch_sampler"):
        make_batch_sampler("atoms", [Data(num_nodes=2)], 1)


def test_sample_sizes_reads_attribute_or_num_nodes():
    class WithSizes(list):
        sizes = [3, 4]

    assert sample_sizes(WithSizes([0, 0])).tolist() == [3, 4]
    assert sample_sizes([Data(num_nodes=5), Data(num_nodes=2)]).tolist() == [5, 2]
    with pytest.raises(ConfigError, match="size of sample 0"):
        sample_sizes([torch.zeros(3)])


# ----------------------------------------------------------------------------------------------- Trainer


class Recorder(Task):
    """Loss on the node features; records the sample ids of every training batch."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def training_step(self, model, batch):
        self.seen.append(sorted(batch.sid.view(-1).tolist()))
        return {"loss": (model(batch.x).squeeze(-1) - batch.y).pow(2).mean()}


def graphs(n: int = 30) -> list[Data]:
    g = torch.Generator().manual_seed(0)
    sizes = oc20_like_sizes(n, 7) // 10
    return [Data(x=torch.randn(int(k), 2, generator=g), y=torch.randn(int(k), generator=g), sid=torch.tensor([i]))
            for i, k in enumerate(sizes)]


def make(task, data, run_dir=None, **kw):
    torch.manual_seed(0)
    return Trainer(nn.Linear(2, 1), task, train_data=data, batch_size=4, batch_sampler={"name": "balanced",
                   "window": 3}, seed=3, progress="none", device="cpu", run_dir=run_dir, checkpoint_every=1, **kw)


def test_trainer_uses_balanced_batches_and_resumes_mid_epoch(tmp_path):
    data = graphs()
    full = Recorder()
    make(full, data, max_steps=12).fit()
    sizes = sample_sizes(data)
    expect = [sorted(b.tolist()) for e in range(2)
              for b in BalancedBatchSampler(sizes, 4, seed=3, window=3).batches(e)][:12]
    assert full.seen == expect
    first, second = Recorder(), Recorder()
    make(first, data, run_dir=tmp_path, max_steps=5).fit()                  # stops inside epoch 0 (8 batches)
    make(second, data, run_dir=tmp_path, max_steps=12).fit()                # resume="auto"
    assert first.seen + second.seen == full.seen
    # a different batching cannot continue a mid-epoch checkpoint
    with pytest.raises(CheckpointError, match="batch_sampler"):
        Trainer(nn.Linear(2, 1), Recorder(), train_data=data, batch_size=4, seed=3, progress="none", device="cpu",
                run_dir=tmp_path, max_steps=20, resume=str(sorted((tmp_path / "checkpoints").glob("*.pt"))[0])).fit()


def test_trainer_batch_sampler_factory_and_default_unchanged():
    data = graphs(12)
    calls = {}

    def factory(ds, **kw):
        calls.update(kw, n=len(ds))
        return ResumableBatchSampler(len(ds), kw["batch_size"], shuffle=False)

    rec = Recorder()
    Trainer(nn.Linear(2, 1), rec, train_data=data, batch_size=5, batch_sampler=factory, max_steps=3, seed=1,
            progress="none", device="cpu").fit()
    assert calls["n"] == 12 and calls["batch_size"] == 5 and calls["world_size"] == 1
    assert rec.seen == [list(range(0, 5)), list(range(5, 10)), [10, 11]]
    rec = Recorder()
    Trainer(nn.Linear(2, 1), rec, train_data=data, batch_size=5, max_steps=3, seed=1, progress="none",
            device="cpu").fit()
    order = perm(12, 1, 0)
    assert rec.seen == [sorted(order[0:5]), sorted(order[5:10]), sorted(order[10:12])]
