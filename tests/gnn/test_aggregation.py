"""Aggregators (sciml.gnn.aggregation): LCM tree reduction and GRU baseline against independent per-set Python
references, the monoid properties (exact commutativity, identity padding -> batch-composition invariance, depth
ceil(log2 d)), PyG comparisons, AggrConv, typed errors."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from sciml.errors import ConfigError, IndexOutOfRangeError, ShapeError
from sciml.gnn.aggregation import (AggrConv, GRUAggregation, LCMAggregation, SegmentAggregation,
                                   aggregation_from_name, group_by_index, shuffle_within_segments)
from sciml.testing import on_devices, with_package


# ------------------------------------------------------------------------------------------- independent references
def ref_combine(cell: nn.GRUCell, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a ⊕ b for one pair, two separate GRU-cell calls."""
    return 0.5 * (cell(a[None], b[None])[0] + cell(b[None], a[None])[0])


def ref_lcm_set(aggr: LCMAggregation, elems: list[torch.Tensor]) -> torch.Tensor:
    """Reduce one set by the balanced tree, level by level in Python: pair neighbours, carry an odd last one."""
    if aggr.lin is not None:
        elems = [aggr.lin(e).relu() for e in elems]
    if not elems:
        return torch.zeros(aggr.out_channels, dtype=aggr.gru_cell.weight_ih.dtype,
                           device=aggr.gru_cell.weight_ih.device)
    level = list(elems)
    while len(level) > 1:
        nxt = [ref_combine(aggr.gru_cell, level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def ref_lcm(aggr: LCMAggregation, x: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    return torch.stack([ref_lcm_set(aggr, [x[k] for k in range(len(x)) if index[k] == s]) for s in range(dim_size)])


def ref_gru(aggr: GRUAggregation, x: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Each set run alone through the same nn.GRU, unpadded; empty set -> h0 = 0."""
    rows = []
    for s in range(dim_size):
        seq = x[index == s]
        rows.append(x.new_zeros(aggr.out_channels) if len(seq) == 0 else aggr.gru(seq[None])[1][-1, 0])
    return torch.stack(rows)


def random_sets(sizes, channels, *, seed=0, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    index = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    x = torch.randn(len(index), channels, generator=g, dtype=dtype)
    return x.to(device), index.to(device)


class CallCounter:
    """Counts the calls of a module and the batch size of each call (a forward hook)."""

    def __init__(self, module: nn.Module) -> None:
        self.rows: list[int] = []
        self.handle = module.register_forward_hook(lambda m, inp, out: self.rows.append(inp[0].size(0)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# ------------------------------------------------------------------------------------------- LCM: the operator
@on_devices
def test_combine_is_exactly_commutative(device):
    torch.manual_seed(0)
    aggr = LCMAggregation(16, 16, project=False).to(device)
    for n in (1, 3, 64, 1000):
        a, b = torch.randn(n, 16, device=device), torch.randn(n, 16, device=device)
        ab, ba = aggr.combine(a, b), aggr.combine(b, a)
        assert torch.equal(ab, ba)  # bitwise, not approximately
        ref = torch.stack([ref_combine(aggr.gru_cell, a[k], b[k]) for k in range(min(n, 5))])
        torch.testing.assert_close(ab[:len(ref)], ref, atol=1e-6, rtol=1e-5)


def test_combine_is_not_associative_so_order_is_documented():
    torch.manual_seed(0)
    aggr = LCMAggregation(8, 8, project=False)
    a, b, c = torch.randn(3, 1, 8)
    left = aggr.combine(aggr.combine(a, b), c)
    right = aggr.combine(a, aggr.combine(b, c))
    assert (left - right).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------- LCM: tree shape
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33])
def test_depth_is_ceil_log2_of_set_size(d):
    aggr = LCMAggregation(4, 4, project=False)
    x = torch.randn(d, 4)
    with CallCounter(aggr.gru_cell) as calls:
        aggr(x, torch.zeros(d, dtype=torch.long))
    assert len(calls.rows) == (math.ceil(math.log2(d)) if d > 1 else 0)
    # a binary tree with d leaves has d - 1 internal nodes; each is one pair = 2 GRU rows (both orders)
    assert sum(calls.rows) == 2 * (d - 1)


def test_batched_levels_one_gru_call_per_level():
    sizes = [0, 1, 2, 3, 5, 8, 13, 21, 0, 4]
    aggr = LCMAggregation(4, 4, project=False)
    x, index = random_sets(sizes, 4)
    with CallCounter(aggr.gru_cell) as calls:
        aggr(x, index, dim_size=len(sizes))
    assert len(calls.rows) == math.ceil(math.log2(max(sizes)))
    # per level: sum over sets of floor(count / 2) pairs, count -> ceil(count / 2)
    counts, expected = list(sizes), []
    while max(counts) > 1:
        expected.append(2 * sum(c // 2 for c in counts))
        counts = [(c + 1) // 2 for c in counts]
    assert calls.rows == expected
    assert sum(calls.rows) == 2 * sum(s - 1 for s in sizes if s)


# ------------------------------------------------------------------------------------------- LCM: values
@on_devices
@pytest.mark.parametrize("project", [False, True])
def test_lcm_matches_per_set_python_reference(device, project):
    torch.manual_seed(1)
    sizes = [3, 0, 1, 2, 7, 16, 5, 0, 9, 4]
    aggr = LCMAggregation(6 if project else 8, 8, project=project).to(device)
    x, index = random_sets(sizes, 6 if project else 8, seed=2, device=device)
    out = aggr(x, index, dim_size=len(sizes))
    torch.testing.assert_close(out, ref_lcm(aggr, x, index, len(sizes)), atol=1e-6, rtol=1e-5)


def test_lcm_unsorted_index_and_ptr_api_agree():
    torch.manual_seed(0)
    aggr = LCMAggregation(5, 5, project=False)
    x, index = random_sets([4, 2, 0, 6], 5)
    ptr = torch.tensor([0, 4, 6, 6, 12])
    by_index = aggr(x, index, dim_size=4)
    torch.testing.assert_close(aggr(x, ptr=ptr), by_index, atol=0, rtol=0)
    # interleave the sets, keeping the order within each set: same result (stable grouping)
    perm = torch.tensor([0, 4, 6, 1, 7, 2, 8, 5, 9, 3, 10, 11])
    torch.testing.assert_close(aggr(x[perm], index[perm], dim_size=4), by_index, atol=1e-6, rtol=1e-5)


def test_lcm_degree_zero_and_one():
    aggr = LCMAggregation(3, 4, project=True)
    x = torch.randn(1, 3)
    out = aggr(x, torch.tensor([1]), dim_size=3)
    assert out.shape == (3, 4)
    assert torch.equal(out[0], torch.zeros(4)) and torch.equal(out[2], torch.zeros(4))
    torch.testing.assert_close(out[1], aggr.lin(x[0]).relu())  # a single element is itself (e ⊕ x = x)
    empty = aggr(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), dim_size=2)
    assert empty.shape == (2, 4) and not empty.any()


# ------------------------------------------------------------------------------------------- batch composition
def _alone_vs_batched(aggr, d=5, big=(40, 23), channels=8, seed=0):
    """Output of a set of size d alone, and the same set (same order) first in a batch with large sets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, channels, generator=g)
    alone = aggr(x, torch.zeros(d, dtype=torch.long), dim_size=1)[0]
    others = torch.randn(sum(big), channels, generator=g)
    index = torch.cat([torch.zeros(d, dtype=torch.long)] +
                      [torch.full((n,), k + 1, dtype=torch.long) for k, n in enumerate(big)])
    batched = aggr(torch.cat([x, others]), index, dim_size=1 + len(big))[0]
    return (alone - batched).abs().max().item()


@with_package("torch_geometric")
@pytest.mark.parametrize("d", [1, 3, 5, 8])
def test_lcm_batch_composition_invariance_ours_passes_pyg_fails(d):
    from torch_geometric.nn.aggr import LCMAggregation as PyGLCM

    torch.manual_seed(0)
    ours = LCMAggregation(8, 8, project=True).eval()
    pyg = PyGLCM(8, 8, project=True).eval()
    pyg.load_state_dict(ours.state_dict())  # same parameters, names and shapes
    assert _alone_vs_batched(ours, d) < 1e-5
    assert _alone_vs_batched(pyg, d) > 1e-2  # PyG's zero padding goes through the GRU cell


@with_package("torch_geometric")
@pytest.mark.parametrize("d", [1, 2, 3, 6, 7, 8])
def test_lcm_equals_pyg_when_no_padding_is_needed(d):
    """All sets of one size: PyG pads nothing, and its carry-the-odd-one tree is ours."""
    from torch_geometric.nn.aggr import LCMAggregation as PyGLCM

    torch.manual_seed(0)
    ours = LCMAggregation(6, 8, project=True)
    pyg = PyGLCM(6, 8, project=True)
    pyg.load_state_dict(ours.state_dict())
    x, index = random_sets([d] * 5, 6)
    torch.testing.assert_close(ours(x, index), pyg(x, index), atol=1e-6, rtol=1e-5)


@with_package("torch_geometric")
def test_gru_batch_composition_invariance_ours_passes_pyg_fails():
    from torch_geometric.nn.aggr import GRUAggregation as PyGGRU

    torch.manual_seed(0)
    ours = GRUAggregation(8, 8).eval()
    pyg = PyGGRU(8, 8).eval()
    pyg.load_state_dict(ours.state_dict())
    assert _alone_vs_batched(ours, 5) < 1e-5
    assert _alone_vs_batched(pyg, 5) > 1e-2  # PyG returns the state after the zero-padded tail
    x, index = random_sets([4] * 6, 8)
    torch.testing.assert_close(ours(x, index), pyg(x, index), atol=1e-6, rtol=1e-5)  # no padding: same


# ------------------------------------------------------------------------------------------- GRU
@on_devices
@pytest.mark.parametrize("num_layers", [1, 2])
def test_gru_equals_per_set_unpadded_gru(device, num_layers):
    torch.manual_seed(0)
    sizes = [3, 0, 1, 7, 2, 2, 11, 0, 5]
    aggr = GRUAggregation(6, 9, num_layers=num_layers).to(device).eval()
    x, index = random_sets(sizes, 6, device=device)
    out = aggr(x, index, dim_size=len(sizes))
    assert out.shape == (len(sizes), 9)
    torch.testing.assert_close(out, ref_gru(aggr, x, index, len(sizes)), atol=1e-5, rtol=1e-5)
    assert not out[1].any() and not out[7].any()  # empty sets: h0 = 0


# ------------------------------------------------------------------------------------------- order
@pytest.mark.parametrize("cls", [LCMAggregation, GRUAggregation])
def test_shuffle_in_training_uses_a_permutation_of_each_set(cls):
    torch.manual_seed(0)
    aggr = cls(4, 4, shuffle=True) if cls is GRUAggregation else cls(4, 4, project=False, shuffle=True)
    x = torch.randn(4, 4)
    index = torch.zeros(4, dtype=torch.long)
    ref = ref_lcm_set if cls is LCMAggregation else (lambda a, el: ref_gru(a, torch.stack(el),
                                                                            torch.zeros(len(el)), 1)[0])
    candidates = [ref(aggr, [x[k] for k in p]) for p in itertools.permutations(range(4))]
    with torch.no_grad():
        aggr.train()
        seen = set()
        for _ in range(30):
            out = aggr(x, index)[0]
            hits = [k for k, c in enumerate(candidates) if torch.allclose(out, c, atol=1e-5)]
            assert hits, "training output is not the reduction of any order of the set"
            seen.add(hits[0])
        assert len(seen) > 1  # the order does change
        aggr.eval()
        torch.testing.assert_close(aggr(x, index)[0], candidates[0], atol=1e-5, rtol=1e-5)  # input order


def test_shuffle_within_segments_keeps_segments():
    ptr = torch.tensor([0, 3, 3, 8, 9])
    perm = shuffle_within_segments(ptr, generator=torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(9))
    seg = torch.repeat_interleave(torch.arange(4), ptr.diff())
    assert torch.equal(seg[perm], seg)


# ------------------------------------------------------------------------------------------- sum / mean / max
@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_segment_aggregation_against_loop(reduce):
    sizes = [2, 0, 5, 1]
    x, index = random_sets(sizes, 3)
    aggr = aggregation_from_name(reduce, 3)
    assert isinstance(aggr, SegmentAggregation) and aggr.reduce_op == reduce
    out = aggr(x, index, dim_size=4)
    op = {"sum": lambda t: t.sum(0), "mean": lambda t: t.mean(0), "max": lambda t: t.max(0).values}[reduce]
    ref = torch.stack([op(x[index == s]) if sizes[s] else torch.zeros(3) for s in range(4)])
    torch.testing.assert_close(out, ref)


# ------------------------------------------------------------------------------------------- gradients
def test_lcm_gradcheck_float64():
    torch.manual_seed(0)
    aggr = LCMAggregation(3, 4, project=True).double()
    x, index = random_sets([3, 1, 0, 5], 3, dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: aggr(t, index, dim_size=4), (x,))


@pytest.mark.parametrize("aggr_name", ["lcm", "gru"])
def test_gradients_reach_inputs_and_every_parameter(aggr_name):
    torch.manual_seed(0)
    aggr = aggregation_from_name(aggr_name, 5, 6)
    x, index = random_sets([4, 1, 7], 5)
    x.requires_grad_(True)
    aggr(x, index).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in aggr.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------------------------------- AggrConv
def _conv_reference(conv: AggrConv, x, edge_index):
    """Per target node: its messages in (source id) order, reduced by the layer's own aggregator on one set."""
    msg = conv.lin_msg(x)
    rows = []
    for i in range(x.size(0)):
        src = torch.sort(edge_index[0, edge_index[1] == i]).values
        m = msg[src]
        rows.append(conv.aggr(m, torch.zeros(len(m), dtype=torch.long), dim_size=1)[0])
    return torch.stack(rows) + conv.lin_root(x) + conv.bias


@pytest.mark.parametrize("aggr", ["sum", "mean", "max", "gru", "lcm"])
def test_aggrconv_against_per_node_reference_and_edge_order(aggr):
    torch.manual_seed(0)
    conv = AggrConv(5, 7, aggr).eval()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(9, 5)
    edge_index = torch.randint(0, 9, (2, 30))
    edge_index[1, edge_index[1] == 4] = 3  # node 4 has no incoming edge
    out = conv(x, edge_index)
    assert out.shape == (9, 7)
    torch.testing.assert_close(out, _conv_reference(conv, x, edge_index), atol=1e-5, rtol=1e-5)
    perm = torch.randperm(edge_index.size(1))
    torch.testing.assert_close(conv(x, edge_index[:, perm].clone()), out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aggr", ["sum", "mean", "max", "gru", "lcm"])
def test_aggrconv_graph_alone_equals_graph_in_batch(aggr):
    torch.manual_seed(0)
    conv = AggrConv(4, 4, aggr).eval()
    x1, e1 = torch.randn(5, 4), torch.tensor([[0, 1, 2, 3, 4, 1], [1, 2, 3, 4, 0, 0]])
    x2 = torch.randn(30, 4)
    e2 = torch.randint(0, 30, (2, 200))
    alone = conv(x1, e1)
    batched = conv(torch.cat([x1, x2]), torch.cat([e1, e2 + 5], dim=1))[:5]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------- errors
def test_typed_errors():
    aggr = LCMAggregation(4, 4, project=False)
    x = torch.randn(3, 4)
    with pytest.raises(ShapeError, match="num_elements, channels"):
        aggr(torch.randn(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="floating"):
        aggr(torch.ones(3, 4, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="3 rows"):
        aggr(x, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ShapeError, match="in_channels = 4"):
        aggr(torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="either `index`"):
        aggr(x)
    with pytest.raises(ShapeError, match="integer dtype"):
        aggr(x, torch.zeros(3))
    with pytest.raises(IndexOutOfRangeError, match="out of range"):
        aggr(x, torch.tensor([0, 1, 5]), dim_size=3)
    with pytest.raises(IndexOutOfRangeError, match="negative"):
        aggr(x, torch.tensor([0, -1, 1]))
    with pytest.raises(IndexOutOfRangeError, match=r"ptr\[-1\]"):
        aggr(x, ptr=torch.tensor([0, 2]))
    with pytest.raises(ShapeError, match="dim_size"):
        aggr(x, ptr=torch.tensor([0, 1, 3]), dim_size=5)
    with pytest.raises(ConfigError, match="project=True"):
        LCMAggregation(3, 4, project=False)
    with pytest.raises(ConfigError, match="positive integer"):
        GRUAggregation(0, 4)
    with pytest.raises(ConfigError, match="unknown aggregation 'median'"):
        aggregation_from_name("median", 4)
    with pytest.raises(ConfigError, match="keeps the channel count"):
        aggregation_from_name("sum", 4, 5)
    with pytest.raises(ConfigError, match="unknown aggr"):
        AggrConv(4, 4, "attention")
    conv = AggrConv(4, 4, "lcm")
    with pytest.raises(ShapeError, match=r"\[2, num_edges\]"):
        conv(x, torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\[num_nodes, 4\]"):
        conv(torch.randn(3, 2), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(IndexOutOfRangeError):
        conv(x, torch.tensor([[0], [7]]))


def test_group_by_index_sorts_stably():
    x = torch.arange(6.0).view(6, 1)
    xs, ptr = group_by_index(x, torch.tensor([2, 0, 2, 1, 0, 2]), dim_size=4)
    assert xs.view(-1).tolist() == [1.0, 4.0, 3.0, 0.0, 2.0, 5.0]
    assert ptr.tolist() == [0, 2, 3, 6, 6]
