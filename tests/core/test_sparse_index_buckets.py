"""sciml.sparse.index additions for GemNet-OC's bilinear layers: bucketed padding (:func:`segment_buckets`,
:func:`pad_buckets`) against Python loops and brute-force bucket choices, and the autograd footprint of
:func:`pad_segments`."""
from __future__ import annotations

import itertools

import pytest
import torch

from sciml.sparse.index import _bucket_bounds, pad_buckets, pad_segments, segment_buckets, segment_rank


def _index(counts: list[int]) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))


@pytest.mark.parametrize("num_buckets", [1, 2, 3, 5])
def test_buckets_hold_every_item_once_at_its_rank(num_buckets):
    counts = [5, 0, 1, 9, 9, 2, 0, 3, 1, 7, 4, 4]
    index = _index(counts)
    b = segment_buckets(index, len(counts), num_buckets)
    sizes = torch.tensor(counts)
    # rows: the non-empty segments by decreasing size, ties by id
    expected_rows = sorted((s for s in range(len(counts)) if counts[s]), key=lambda s: (-counts[s], s))
    assert b.rows.tolist() == expected_rows
    assert 1 <= len(b.sizes) <= num_buckets and sum(n for n, _ in b.sizes) == len(expected_rows)
    assert b.num_slots == sum(n * k for n, k in b.sizes)
    values = torch.randn(index.numel(), 2, dtype=torch.float64)
    blocks = pad_buckets(values, b)
    rank, _ = segment_rank(index, len(counts))
    row_of = {s: i for i, s in enumerate(b.rows.tolist())}
    start = 0
    filled = 0
    for blk, (n, k) in zip(blocks, b.sizes):
        assert blk.shape == (n, k, 2)
        # a bucket is padded to its largest segment
        assert k == int(sizes[b.rows[start:start + n]].max())
        for r in range(n):
            seg = int(b.rows[start + r])
            items = (index == seg).nonzero().view(-1)
            expected = torch.zeros(k, 2, dtype=torch.float64)
            expected[rank[items]] = values[items]
            assert torch.equal(blk[r], expected)
            filled += items.numel()
            assert row_of[seg] == start + r
        start += n
    assert filled == index.numel()


def test_bucket_bounds_are_optimal_by_brute_force():
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        v = int(torch.randint(1, 8, (1,), generator=g))
        values = sorted(set(torch.randint(1, 40, (v,), generator=g).tolist()), reverse=True)
        mult = torch.randint(1, 6, (len(values),), generator=g).tolist()
        num_buckets = int(torch.randint(1, 5, (1,), generator=g))

        def padded(starts):
            ends = starts[1:] + [len(values)]
            return sum(sum(mult[a:e]) * values[a] for a, e in zip(starts, ends))

        best = min(padded([0, *c]) for r in range(num_buckets)
                   for c in itertools.combinations(range(1, len(values)), r))
        got = _bucket_bounds(values, mult, num_buckets)
        assert got[0] == 0 and got == sorted(set(got)) and len(got) <= num_buckets
        assert padded(got) == best


def test_empty_and_single_segment():
    b = segment_buckets(torch.zeros(0, dtype=torch.long), 4, 3)
    assert b.rows.numel() == 0 and b.sizes == [] and b.num_slots == 0
    assert pad_buckets(torch.zeros(0, 3), b) == []
    b = segment_buckets(torch.tensor([2, 2, 2]), 4, 3)
    assert b.rows.tolist() == [2] and b.sizes == [(1, 3)]
    with pytest.raises(ValueError, match="num_buckets"):
        segment_buckets(torch.tensor([0]), 1, 0)


def test_pad_buckets_gradients_twice():
    """First and second derivatives (gradcheck / gradgradcheck, float64) and the backward equal to a gather."""
    counts = [3, 0, 1, 4, 2]
    index = _index(counts)
    b = segment_buckets(index, len(counts), 2)
    values = torch.randn(index.numel(), 2, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(n, k, 2, dtype=torch.float64) for n, k in b.sizes]

    def f(v):
        return sum(((blk * w).sum() + (blk ** 2 * w).sum()) for blk, w in zip(pad_buckets(v, b), weights))

    assert torch.autograd.gradcheck(f, (values,))
    assert torch.autograd.gradgradcheck(f, (values,))
    # the gradient of sum(blk * w) is w gathered at each item's slot
    grad, = torch.autograd.grad(sum((blk * w).sum() for blk, w in zip(pad_buckets(values, b), weights)), values)
    flat = torch.cat([w.reshape(-1, 2) for w in weights])
    assert torch.equal(grad, flat[b.slot])


def test_pad_segments_keeps_only_the_index_for_backward():
    """pad_segments' autograd node saves the index, not the (large) values; gradients are unchanged."""
    counts = torch.tensor([2, 0, 3])
    index = _index(counts.tolist())
    rank, kmax = segment_rank(index, 3)
    values = torch.randn(index.numel(), 4, dtype=torch.float64, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        padded = pad_segments(values, index, rank, 3, kmax)
    assert values.shape not in saved
    weight = torch.randn_like(padded)
    assert torch.autograd.gradgradcheck(lambda v: (pad_segments(v, index, rank, 3, kmax) ** 2 * weight).sum(),
                                        (values,))
