"""Readers under DataLoader workers (fork safety) and the size-balanced batch sampler."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Batch, Data

from sciml.datasets.reader import open_dataset
from sciml.datasets.records import FieldSample
from sciml.datasets.writer import write_dataset
from sciml.train import BalancedBatchSampler


def atoms(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(3, 60, (n,), generator=g).tolist()
    return [Data(pos=torch.randn(k, 3, generator=g), z=torch.randint(1, 80, (k,), generator=g),
                 cell=torch.eye(3)[None], pbc=torch.ones(1, 3, dtype=torch.bool), tags=torch.zeros(k, dtype=torch.long),
                 fixed=torch.zeros(k, dtype=torch.bool), energy=torch.randn(1, generator=g),
                 forces=torch.randn(k, 3, generator=g)) for k in sizes]


def collate(items):
    return Batch.from_data_list(items)


@pytest.mark.parametrize("touch_first", [False, True])
def test_dataloader_workers_read_the_same_samples(tmp_path, touch_first):
    recs = atoms(24)
    ds = open_dataset(write_dataset(tmp_path / "a.h5", "atoms", {"train": recs}, source="u"))
    if touch_first:  # the parent holds an open handle when the workers fork: they must not use it
        assert ds[0].num_nodes == recs[0].num_nodes and ds._h5 is not None
    ref = [b for b in DataLoader(ds, batch_size=5, num_workers=0, collate_fn=collate)]
    par = [b for b in DataLoader(ds, batch_size=5, num_workers=2, collate_fn=collate,
                                 multiprocessing_context="fork")]
    assert len(ref) == len(par) == 5
    for a, b in zip(ref, par):
        for k in ("pos", "z", "forces", "energy", "cell", "batch"):
            assert torch.equal(a[k], b[k])
    for i in (0, 23):
        assert torch.equal(ds[i].pos, recs[i].pos)


@pytest.mark.slow
def test_field_dataloader_with_spawn_workers(tmp_path):
    rng = np.random.default_rng(0)
    recs = [FieldSample({"u": rng.random((2, 4, 4, 1), dtype=np.float32)}, {"nu": float(i)}) for i in range(6)]
    ds = open_dataset(write_dataset(tmp_path / "f.h5", "fields", {"train": recs}, source="u"))
    batches = list(DataLoader(ds, batch_size=3, num_workers=1, multiprocessing_context="spawn"))
    assert batches[1]["u"].shape == (3, 2, 4, 4, 1)
    assert batches[1]["params"]["nu"].tolist() == [3.0, 4.0, 5.0]
    assert np.array_equal(batches[0]["u"][2].numpy(), recs[2].fields["u"])


def test_balanced_sampler_as_a_dataloader_batch_sampler_bounds_and_coverage():
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 200, 1003)
    sampler = BalancedBatchSampler(sizes, batch_size=16, seed=7, window=16)
    batches = sampler.batches(0)
    assert len(batches) == len(sampler) == -(-1003 // 16)
    flat = torch.cat(batches).sort().values
    assert torch.equal(flat, torch.arange(1003))  # every index exactly once
    totals = np.array([sizes[b.numpy()].sum() for b in batches])
    for k in range(0, len(batches), 16):  # each pool of 16 batches: every total within mean + max(size) (LPT bound)
        pool = batches[k:k + 16]
        members = sizes[torch.cat(pool).numpy()]
        assert totals[k:k + 16].max() <= members.sum() / len(pool) + members.max()
    plain = np.array([sizes[i].sum() for i in np.array_split(rng.permutation(1003), len(batches))])
    spread = np.mean([totals[k:k + 16].std() for k in range(0, len(batches) - 16, 16)])
    assert spread < plain.std() / 3  # inside a pool, much better balanced than random batches
    # deterministic in (seed, epoch), different across epochs and seeds
    again = BalancedBatchSampler(sizes, batch_size=16, seed=7, window=16).batches(0)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not all(torch.equal(a, b) for a, b in zip(batches, sampler.batches(1)))
    sampler.set_epoch(0)
    assert [list(b) for b in sampler] == [b.tolist() for b in batches]


def test_sampler_with_atoms_dataset(tmp_path):
    recs = atoms(40, seed=3)
    ds = open_dataset(write_dataset(tmp_path / "a.h5", "atoms", {"train": recs}, source="u"))
    sampler = BalancedBatchSampler(ds.sizes, batch_size=8, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    totals = [b.num_nodes for b in loader]
    assert sum(totals) == sum(r.num_nodes for r in recs) and len(totals) == 5
