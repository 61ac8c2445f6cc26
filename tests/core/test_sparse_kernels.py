"""Segment reductions, scatter/gather, segment softmax, SDDMM and deterministic mode against loop references."""
import pytest
import torch

import sciml.sparse._deterministic as det_module
import sciml.sparse._scatter as scatter_module
import sciml.sparse._spmm as spmm_module
import sciml.sparse._utils as utils_module
from sciml.errors import IndexOutOfRangeError, ShapeError
from sciml.sparse import (CSRAdjacency, deterministic, gather, is_deterministic, scatter, sddmm, segment_reduce,
                          segment_softmax)
from sciml.testing import on_devices, random_graph

REDUCES = ["sum", "mean", "max", "min"]


def loop_reduce(rows, reduce, width):
    """Reference reduction of a list of 1-D tensors (0 for an empty list)."""
    if not rows:
        return torch.zeros(width, dtype=torch.float64)
    st = torch.stack(rows)
    return {"sum": st.sum(0), "mean": st.mean(0), "max": st.max(0).values, "min": st.min(0).values}[reduce]


def segments_case(device, dtype=torch.float64, index_dtype=torch.long):
    counts = [2, 0, 3, 1, 0, 4]  # empty segments in the middle and at the end... and a leading one below
    counts = [0] + counts
    ptr = torch.tensor([0] + torch.tensor(counts).cumsum(0).tolist(), dtype=index_dtype, device=device)
    src = torch.randn(sum(counts), 3, dtype=dtype, device=device)  # continuous values: no ties
    return src, ptr, counts


@on_devices
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("index_dtype,dtype", [(torch.int64, torch.float32), (torch.int32, torch.float64)])
def test_segment_reduce_matches_loops(device, reduce, index_dtype, dtype):
    src, ptr, counts = segments_case(device, dtype, index_dtype)
    src.requires_grad_(True)
    out = segment_reduce(src, ptr, reduce)
    p = ptr.tolist()
    ref = torch.stack([loop_reduce(list(src.detach().double().cpu()[p[s]:p[s + 1]]), reduce, 3)
                       for s in range(len(counts))])
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(out.double().cpu(), ref, **tol)
    # gradient against the same reduction written with plain autograd ops, segment by segment
    g = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, src, g)
    ref_grad = torch.zeros_like(src)
    for s in range(len(counts)):
        seg = src.detach()[p[s]:p[s + 1]].clone().requires_grad_(True)
        if seg.numel():
            val = {"sum": seg.sum(0), "mean": seg.mean(0), "max": seg.max(0).values,
                   "min": seg.min(0).values}[reduce]
            (ref_grad[p[s]:p[s + 1]],) = torch.autograd.grad(val, seg, g[s])
    torch.testing.assert_close(grad, ref_grad, **tol)


@pytest.mark.parametrize("reduce", REDUCES)
def test_segment_reduce_gradcheck_and_shapes(reduce):
    src, ptr, counts = segments_case("cpu")
    assert torch.autograd.gradcheck(lambda s: segment_reduce(s, ptr, reduce), (src.requires_grad_(True),))
    src3 = torch.randn(src.size(0), 2, 3, dtype=torch.float64)
    out3 = segment_reduce(src3, ptr, reduce)
    torch.testing.assert_close(out3.reshape(len(counts), 6), segment_reduce(src3.reshape(-1, 6), ptr, reduce))
    empty = segment_reduce(torch.zeros(0, 4), torch.zeros(3, dtype=torch.long), reduce)
    assert torch.equal(empty, torch.zeros(2, 4))
    assert segment_reduce(torch.zeros(0, 4), torch.zeros(1, dtype=torch.long), reduce).shape == (0, 4)


def test_segment_reduce_errors():
    src = torch.randn(5, 2)
    with pytest.raises(IndexOutOfRangeError, match=r"ptr\[-1\].*5"):
        segment_reduce(src, torch.tensor([0, 2, 4]))
    with pytest.raises(IndexOutOfRangeError, match=r"ptr\[0\]"):
        segment_reduce(src, torch.tensor([1, 2, 5]))
    with pytest.raises(IndexOutOfRangeError, match="non-decreasing"):
        segment_reduce(src, torch.tensor([0, 3, 2, 5]))
    with pytest.raises(ShapeError, match="reduce"):
        segment_reduce(src, torch.tensor([0, 5]), "prod")
    with pytest.raises(ShapeError, match="integer"):
        segment_reduce(src, torch.tensor([0.0, 5.0]))
    with pytest.raises(ShapeError, match="same device"):
        segment_reduce(src, torch.tensor([0, 5], device="meta"))


def scatter_case(device, dtype=torch.float64, index_dtype=torch.long, dim_size=9):
    g = torch.Generator().manual_seed(1)
    index = torch.randint(0, dim_size - 2, (30,), generator=g)  # last two targets stay empty
    index[:3] = torch.tensor([4, 0, 4])
    src = torch.randn(30, 4, generator=g, dtype=dtype)
    return src.to(device), index.to(device=device, dtype=index_dtype), dim_size


@on_devices
@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("det", [False, True])
@pytest.mark.parametrize("index_dtype,dtype", [(torch.int64, torch.float32), (torch.int32, torch.float64)])
def test_scatter_matches_loops(device, reduce, det, index_dtype, dtype):
    src, index, n = scatter_case(device, dtype, index_dtype)
    src.requires_grad_(True)
    with deterministic(det):
        out = scatter(src, index, n, reduce)
        g = torch.randn_like(out)
        (grad,) = torch.autograd.grad(out, src, g)
    idx = index.tolist()
    rows = [[src.detach().double().cpu()[e] for e in range(len(idx)) if idx[e] == i] for i in range(n)]
    ref = torch.stack([loop_reduce(r, reduce, 4) for r in rows])
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(out.double().cpu(), ref, **tol)
    # dense reference gradient: out = M @ src (sum/mean) or selection of the arg-extremum (max/min)
    ref_grad = torch.zeros(src.shape, dtype=torch.float64)
    gc = g.double().cpu()
    for i in range(n):
        members = [e for e in range(len(idx)) if idx[e] == i]
        if not members:
            continue
        if reduce in ("sum", "mean"):
            for e in members:
                ref_grad[e] += gc[i] / (len(members) if reduce == "mean" else 1)
        else:
            vals = src.detach().double().cpu()[members]
            arg = (vals.argmax(0) if reduce == "max" else vals.argmin(0)).tolist()
            for f, a in enumerate(arg):
                ref_grad[members[a], f] += gc[i, f]
    torch.testing.assert_close(grad.double().cpu(), ref_grad, **tol)


@on_devices
def test_scatter_default_dim_size_and_gather(device):
    src, index, _ = scatter_case(device)
    assert scatter(src, index).size(0) == int(index.max()) + 1
    assert scatter(src[:0], index[:0]).shape == (0, 4)
    x = torch.randn(9, 2, 3, dtype=torch.float64, device=device, requires_grad=True)
    for det in (False, True):
        with deterministic(det):
            out = gather(x, index)
            assert torch.equal(out, x[index])
            (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
        counts = torch.bincount(index, minlength=9).double()
        torch.testing.assert_close(grad, counts.view(-1, 1, 1).expand_as(x))


def test_scatter_gather_gradcheck_and_errors():
    src, index, n = scatter_case("cpu")
    src.requires_grad_(True)
    for reduce in REDUCES:
        for det in (False, True):
            with deterministic(det):
                assert torch.autograd.gradcheck(lambda s: scatter(s, index, n, reduce), (src,))
    x = torch.randn(9, 2, dtype=torch.float64, requires_grad=True)
    with deterministic():
        assert torch.autograd.gradcheck(lambda x: gather(x, index), (x,))
    with pytest.raises(IndexOutOfRangeError, match=r"index.*\[0, 5\)"):
        scatter(src, index, 5)
    with pytest.raises(IndexOutOfRangeError, match="negative"):
        gather(x, torch.tensor([0, -1]))
    with pytest.raises(IndexOutOfRangeError, match=r"\[0, 9\)"):
        gather(x, torch.tensor([9]))
    with pytest.raises(ShapeError, match=r"src.size\(0\)=30"):
        scatter(src, index[:-1], n)
    with pytest.raises(ShapeError, match="floating"):
        scatter(index, index, n)
    with pytest.raises(ShapeError, match="reduce"):
        scatter(src, index, n, "mul")
    with pytest.raises(ShapeError, match="dimension"):
        gather(x, index.view(2, 15))


def loop_softmax(src, seg_of_row, num_segments):
    out = torch.empty_like(src)
    for s in range(num_segments):
        rows = [k for k, t in enumerate(seg_of_row) if t == s]
        if rows:
            out[rows] = torch.softmax(src[rows], dim=0)
    return out


@on_devices
@pytest.mark.parametrize("mode", ["ptr", "index", "index_det"])
def test_segment_softmax(device, mode):
    src, ptr, counts = segments_case(device)
    src = src * 20  # large logits: the max subtraction matters
    seg = [s for s, c in enumerate(counts) for _ in range(c)]
    src.requires_grad_(True)
    if mode == "ptr":
        out = segment_softmax(src, ptr=ptr)
    else:
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(src.size(0), generator=g).to(device)
        index = torch.tensor(seg, device=device)[perm]
        with deterministic(mode == "index_det"):
            out_perm = segment_softmax(src[perm], index=index, num_segments=len(counts))
        out = torch.empty_like(out_perm).index_copy(0, perm, out_perm)
    ref = loop_softmax(src, seg, len(counts))
    torch.testing.assert_close(out, ref)
    gout = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, src, gout)[0], torch.autograd.grad(ref, src, gout)[0])


def test_segment_softmax_gradcheck_heads_and_errors():
    src, ptr, counts = segments_case("cpu")
    src.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: segment_softmax(s, ptr), (src,))
    index = torch.tensor([s for s, c in enumerate(counts) for _ in range(c)])
    assert torch.autograd.gradcheck(lambda s: segment_softmax(s, index=index), (src,))
    heads = torch.randn(src.size(0), 2, 3, dtype=torch.float64)
    torch.testing.assert_close(segment_softmax(heads, ptr).reshape(-1, 6),
                               segment_softmax(heads.reshape(-1, 6), ptr))
    assert segment_softmax(torch.zeros(0, 2), ptr=torch.zeros(4, dtype=torch.long)).shape == (0, 2)
    with pytest.raises(ShapeError, match="exactly one"):
        segment_softmax(src)
    with pytest.raises(ShapeError, match="exactly one"):
        segment_softmax(src, ptr, index)
    with pytest.raises(IndexOutOfRangeError):
        segment_softmax(src, index=index, num_segments=2)


def sddmm_case(device, heads):
    ei = random_graph(8, 30, seed=5, device=device)
    shape = (8, 8)
    dims = (3,) if heads is None else (heads, 3)
    a = torch.randn(8, *dims, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(8, *dims, dtype=torch.float64, device=device, requires_grad=True)
    return CSRAdjacency.from_edge_index(ei, shape), ei, a, b


@on_devices
@pytest.mark.parametrize("heads", [None, 2])
@pytest.mark.parametrize("det", [False, True])
def test_sddmm_matches_loops(device, heads, det):
    adj, ei, a, b = sddmm_case(device, heads)
    with deterministic(det):
        out = sddmm(adj, a, b)
    src, dst = ei[0].tolist(), ei[1].tolist()
    ref_input_order = torch.stack([(a[dst[e]] * b[src[e]]).sum(-1) for e in range(len(src))])
    ref = ref_input_order[adj.perm]
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    with deterministic(det):
        got = torch.autograd.grad(out, [a, b], g)
    exp = torch.autograd.grad(ref, [a, b], g)
    for x, y in zip(got, exp):
        torch.testing.assert_close(x, y)
    with torch.no_grad():
        torch.testing.assert_close(sddmm(adj, a, b), ref.detach())


def test_sddmm_gradcheck_and_errors():
    adj, _, a, b = sddmm_case("cpu", None)
    assert torch.autograd.gradcheck(lambda a, b: sddmm(adj, a, b), (a, b))
    adj_bip = CSRAdjacency.from_edge_index(torch.tensor([[0, 4, 2], [1, 0, 1]]), (2, 5))
    a2 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    b2 = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: sddmm(adj_bip, a, b), (a2, b2))
    empty = CSRAdjacency.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 3)
    assert sddmm(empty, torch.randn(3, 4), torch.randn(3, 4)).shape == (0,)
    with pytest.raises(ShapeError, match=r"`b`.*num_cols=5"):
        sddmm(adj_bip, a2, a2)
    with pytest.raises(ShapeError, match=r"`a`.*num_rows=2"):
        sddmm(adj_bip, b2, b2)


def test_deterministic_switch_and_torch_flag():
    assert not is_deterministic()
    with deterministic():
        assert is_deterministic()
        with deterministic(False):
            assert not is_deterministic()
        assert is_deterministic()
    assert not is_deterministic()
    deterministic(True)
    try:
        assert is_deterministic()
    finally:
        deterministic(False)
    assert not is_deterministic()
    torch.use_deterministic_algorithms(True)  # restored by the conftest fixture
    assert is_deterministic()


@on_devices
def test_deterministic_runs_are_bitwise_equal(monkeypatch, device):
    """Deterministic mode takes the sorted paths in the forward and the backward (spied), on CPU too: the device is
    declared one whose default kernels are not reproducible, as CUDA is, so that the CUDA path selection runs. The
    results are bitwise equal between runs and equal to a dense reference."""
    monkeypatch.setattr(det_module, "ATOMIC_DEVICE_TYPES", frozenset({"cuda", torch.device(device).type}))
    phase, calls = ["forward"], set()

    def spy(owner, attr, label):
        real = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            calls.add((label, phase[0]))
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, attr, staticmethod(wrapper) if isinstance(owner, type) else wrapper)

    spy(spmm_module, "segment_product", "spmm_segments")     # SpMM forward (A) and backward (A^T)
    spy(scatter_module, "_sorted_scatter", "sorted_scatter")  # scatter forward, gather backward
    spy(utils_module._Permute, "backward", "permute_gather")  # scatter backward: a gather, no index_add_

    ei = random_graph(200, 3000, seed=2, device=device)
    adj = CSRAdjacency.from_edge_index(ei, 200)
    x = torch.randn(200, 16, device=device, requires_grad=True)
    src = torch.randn(3000, 16, device=device, requires_grad=True)

    def run():
        phase[0] = "forward"
        out = (adj @ x).sum() + scatter(src, ei[1], 200).pow(2).sum() + segment_softmax(src, index=ei[1]).sum()
        out = out + sddmm(adj, x, x).sum() + gather(x, ei[0]).pow(2).sum()
        phase[0] = "backward"
        return [out.detach()] + list(torch.autograd.grad(out, [x, src]))

    with deterministic():
        first, second = run(), run()
    assert calls == {("spmm_segments", "forward"), ("spmm_segments", "backward"), ("sorted_scatter", "forward"),
                     ("sorted_scatter", "backward"), ("permute_gather", "backward")}
    for p, q in zip(first, second):
        assert torch.equal(p, q)

    # dense / plain-torch reference of the same sum
    dense = adj.to_dense(torch.float32)
    row, col = adj.row, adj.col
    ref = ((dense @ x).sum() + torch.zeros(200, 16, device=device).index_add(0, ei[1], src).pow(2).sum()
           + loop_softmax(src, ei[1].tolist(), 200).sum() + (x @ x.t())[row, col].sum() + x[ei[0]].pow(2).sum())
    expected = [ref.detach()] + list(torch.autograd.grad(ref, [x, src]))
    for got, exp in zip(first, expected):
        torch.testing.assert_close(got, exp, atol=1e-3, rtol=1e-4)


@on_devices
@pytest.mark.parametrize("det", [False, True])
def test_sddmm_multihead_against_dense_per_head(device, det):
    """Every head h is the dense product (a_h b_h^T) sampled at the edges; gradients are the dense ones."""
    ei = random_graph(7, 25, seed=4, device=device)
    adj = CSRAdjacency.from_edge_index(ei, (7, 9))  # bipartite: 7 targets, 9 sources (indices < 7 anyway)
    g = torch.Generator().manual_seed(3)
    a = torch.randn(7, 3, 5, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    b = torch.randn(9, 3, 5, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    with deterministic(det):
        out = sddmm(adj, a, b)
    assert out.shape == (adj.num_edges, 3)
    ref = torch.stack([(a[:, h] @ b[:, h].t())[adj.row, adj.col] for h in range(3)], dim=-1)
    torch.testing.assert_close(out, ref)
    gout = torch.randn(out.shape, generator=g, dtype=torch.float64).to(device)
    with deterministic(det):
        got = torch.autograd.grad(out, [a, b], gout)
    for x, y in zip(got, torch.autograd.grad(ref, [a, b], gout)):
        torch.testing.assert_close(x, y)
    (grad_b_only,) = torch.autograd.grad(sddmm(adj, a.detach(), b), [b], gout)
    torch.testing.assert_close(grad_b_only, got[1])


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("kernel", ["segment", "scatter", "scatter_det"])
def test_max_min_ties_split_the_gradient_evenly(kernel, reduce):
    """docs/sparse.md: max/min send the gradient to the arg-extremum, split evenly between exact ties."""
    # segment 0 = rows 0-2: column 0 has a 3-way tie (max) or a 2-way tie (min), column 1 a unique extremum;
    # segment 1 = rows 3-4: a 2-way tie in both columns; segment 2 is empty.
    first = [2.0, 1.0] if reduce == "max" else [-1.0, 1.0]
    third = [2.0, 0.0] if reduce == "max" else [-1.0, 0.0]
    src = torch.tensor([first, [2.0, 5.0], third, [4.0, 4.0], [4.0, 4.0]], dtype=torch.float64)
    src.requires_grad_(True)
    ptr = torch.tensor([0, 3, 5, 5])
    index = torch.tensor([0, 0, 0, 1, 1])
    gout = torch.tensor([[6.0, 10.0], [8.0, 2.0], [7.0, 7.0]], dtype=torch.float64)
    if kernel == "segment":
        out = segment_reduce(src, ptr, reduce)
    else:
        perm = torch.tensor([3, 0, 4, 2, 1])  # unsorted index: the ties must be found wherever they are
        with deterministic(kernel == "scatter_det"):
            out = scatter(src[perm], index[perm], 3, reduce)
    (grad,) = torch.autograd.grad(out, src, gout)
    if reduce == "max":
        expected_out = [[2.0, 5.0], [4.0, 4.0], [0.0, 0.0]]
        expected_grad = [[2.0, 0.0], [2.0, 10.0], [2.0, 0.0], [4.0, 1.0], [4.0, 1.0]]  # 6/3, 10, 8/2, 2/2
    else:
        expected_out = [[-1.0, 0.0], [4.0, 4.0], [0.0, 0.0]]
        expected_grad = [[3.0, 0.0], [0.0, 0.0], [3.0, 10.0], [4.0, 1.0], [4.0, 1.0]]  # 6/2, 10, 8/2, 2/2
    torch.testing.assert_close(out, torch.tensor(expected_out, dtype=torch.float64))
    torch.testing.assert_close(grad, torch.tensor(expected_grad, dtype=torch.float64))
