"""sciml.sparse.index against Python loops over the segments."""
from __future__ import annotations

import pytest
import torch

from sciml.sparse import index_to_ptr, pad_segments, ptr_to_index, ragged_arange, segment_rank


@pytest.fixture
def counts():
    return torch.tensor([3, 0, 1, 4, 0, 2])


def test_ptr_and_index_round_trip(counts):
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    index = ptr_to_index(ptr)
    assert index.tolist() == [s for s, c in enumerate(counts.tolist()) for _ in range(c)]
    assert torch.equal(ptr_to_index(ptr, int(counts.sum())), index)
    assert torch.equal(index_to_ptr(index, counts.numel()), ptr)
    assert index_to_ptr(index.new_zeros(0), 3).tolist() == [0, 0, 0, 0]


def test_ragged_arange_with_and_without_starts(counts):
    assert ragged_arange(counts).tolist() == [i for c in counts.tolist() for i in range(c)]
    starts = torch.tensor([10, 5, -2, 0, 7, 100])
    expected = [i for s, c in zip(starts.tolist(), counts.tolist()) for i in range(s, s + c)]
    assert ragged_arange(counts, starts).tolist() == expected
    assert ragged_arange(torch.zeros(0, dtype=torch.long)).numel() == 0
    assert ragged_arange(torch.zeros(3, dtype=torch.long)).numel() == 0


def test_segment_rank_and_padding_match_loops(counts):
    index = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    rank, kmax = segment_rank(index, counts.numel())
    seen: dict[int, int] = {}
    expected = []
    for s in index.tolist():
        expected.append(seen.get(s, 0))
        seen[s] = seen.get(s, 0) + 1
    assert rank.tolist() == expected and kmax == int(counts.max())
    values = torch.randn(index.numel(), 2, dtype=torch.float64, requires_grad=True)
    padded = pad_segments(values, index, rank, counts.numel(), kmax)
    dense = torch.zeros(counts.numel(), kmax, 2, dtype=torch.float64)
    for i, (s, r) in enumerate(zip(index.tolist(), rank.tolist())):
        dense[s, r] = values[i].detach()
    assert torch.equal(padded.detach(), dense)
    weight = torch.randn_like(dense)
    (padded * weight).sum().backward()
    assert torch.equal(values.grad, weight[index, rank])
    empty_rank, empty_max = segment_rank(index.new_zeros(0), 2)
    assert empty_rank.numel() == 0 and empty_max == 0
