"""CSRAdjacency and SpMM against independent dense references (loops, numpy), gradients included."""
import numpy as np
import pytest
import torch

import sciml.sparse
import sciml.sparse._deterministic as det_module
import sciml.sparse._spmm as spmm_module
from sciml.errors import IndexOutOfRangeError, ShapeError
from sciml.sparse import CSRAdjacency, deterministic, spmm
from sciml.testing import on_devices, random_graph

# name -> (edge_index as [sources, targets], shape (num_targets, num_sources))
CASES = {
    "zero_nodes": ([[], []], (0, 0)),
    "no_edges": ([[], []], (5, 5)),
    # node 5 isolated, (1,1) self-loop, (0->2) twice, (3->3) self-loop twice
    "loops_dups_isolated": ([[0, 0, 1, 2, 3, 3, 4, 1, 0], [2, 2, 1, 0, 3, 3, 1, 4, 4]], (6, 6)),
    "random": (random_graph(12, 40, seed=3).tolist(), (12, 12)),
    "bipartite": ([[0, 5, 2, 2, 1], [3, 0, 1, 1, 2]], (4, 6)),
}


def make(case, *, device="cpu", index_dtype=torch.long, dtype=torch.float64, weighted=True, seed=0):
    ei_list, shape = CASES[case]
    ei = torch.tensor(ei_list, dtype=index_dtype, device=device).reshape(2, -1)
    g = torch.Generator().manual_seed(seed)
    w = (torch.rand(ei.size(1), generator=g, dtype=dtype) + 0.5).to(device) if weighted else None
    return ei, shape, w


def dense_loop(ei, shape, w, dtype=torch.float64):
    """A[i, j] += w_e for every edge e = (j -> i), by a Python loop over edges."""
    a = np.zeros(shape)
    ws = [1.0] * ei.size(1) if w is None else w.tolist()
    for (j, i), we in zip(ei.t().tolist(), ws):
        a[i, j] += we
    return torch.tensor(a, dtype=dtype)


def dense_autograd(ei, shape, w, dtype):
    """Differentiable dense adjacency (accumulating index_put) for gradient references."""
    v = torch.ones(ei.size(1), dtype=dtype, device=ei.device) if w is None else w
    a = torch.zeros(shape, dtype=dtype, device=ei.device)
    return a.index_put((ei[1].long(), ei[0].long()), v, accumulate=True)


@on_devices
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index_dtype,dtype", [(torch.int64, torch.float32), (torch.int32, torch.float64)])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_spmm_matches_dense(device, case, weighted, index_dtype, dtype, reduce):
    ei, shape, w = make(case, device=device, index_dtype=index_dtype, dtype=dtype, weighted=weighted)
    if w is not None:
        w.requires_grad_(True)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    assert adj.shape == shape and adj.num_edges == ei.size(1)
    x = torch.randn(shape[1], 3, dtype=dtype, device=device, requires_grad=True)
    out = adj.matmul(x, reduce=reduce)
    dense = dense_autograd(ei, shape, w, dtype)
    ref = dense @ x
    if reduce == "mean":
        # mean divides by the number of incoming edges, duplicates counted
        count = torch.tensor([sum(1 for t in ei[1].tolist() if t == i) for i in range(shape[0])],
                             dtype=dtype, device=device).clamp(min=1)
        ref = ref / count.unsqueeze(-1)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(dense_loop(ei, shape, w).to(device, dtype), dense.detach(), **tol)
    if reduce == "sum":
        torch.testing.assert_close(adj @ x, out)
    grad_out = torch.randn_like(out)
    inputs = [x] + ([w] if w is not None else [])
    got = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
    exp = torch.autograd.grad(ref, inputs, grad_out, allow_unused=True)
    for g, e in zip(got, exp):
        torch.testing.assert_close(g if g is not None else torch.zeros_like(e), e, **tol)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_spmm_gradcheck(reduce):
    ei, shape, w = make("loops_dups_isolated")
    w.requires_grad_(True)
    x = torch.randn(shape[1], 2, dtype=torch.float64, requires_grad=True)
    ei_t = torch.tensor(CASES["loops_dups_isolated"][0])

    def f(x, w):  # rebuilds the adjacency so that w enters through construction and the CSR permutation
        return CSRAdjacency.from_edge_index(ei_t, shape, w).matmul(x, reduce=reduce)

    assert torch.autograd.gradcheck(f, (x, w))
    adj = CSRAdjacency.from_edge_index(ei_t, shape)  # unweighted, cached transpose used in backward
    assert torch.autograd.gradcheck(lambda x: spmm(adj, x, reduce), (x,))
    assert torch.autograd.gradgradcheck(lambda x: adj.t() @ x, (torch.randn(6, 2, dtype=torch.float64,
                                                                            requires_grad=True),))


def test_spmm_feature_shapes_and_dtype_cast():
    ei, shape, w = make("random", dtype=torch.float32)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    dense = dense_loop(ei, shape, w)
    x1 = torch.randn(12, dtype=torch.float64)
    torch.testing.assert_close(adj @ x1, dense @ x1, rtol=1e-6, atol=1e-6)  # float32 weights cast to x.dtype
    x3 = torch.randn(12, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(adj @ x3, torch.einsum("ij,jab->iab", dense, x3), rtol=1e-6, atol=1e-6)
    assert (adj @ torch.randn(12, 0)).shape == (12, 0)


@on_devices
def test_perm_edge_order_and_dense(device):
    ei, shape, w = make("loops_dups_isolated", device=device)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    torch.testing.assert_close(adj.value, w[adj.perm])
    assert torch.equal(adj.to_edge_index(), ei[:, adj.perm])
    rows = adj.to_edge_index()[1].tolist()
    assert rows == sorted(rows)
    assert adj.rowptr.tolist() == [sum(1 for r in rows if r < i) for i in range(shape[0] + 1)]
    torch.testing.assert_close(adj.to_dense().cpu(), dense_loop(ei, shape, w))
    assert adj.device.type == device and adj.dtype == torch.float64
    assert CSRAdjacency.from_edge_index(ei, shape).dtype is None


@on_devices
@pytest.mark.parametrize("case", ["loops_dups_isolated", "bipartite", "no_edges"])
@pytest.mark.parametrize("weighted", [False, True])
def test_transpose_and_degrees(device, case, weighted):
    ei, shape, w = make(case, device=device, weighted=weighted)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    dense = dense_loop(ei, shape, w)
    t = adj.t()
    assert t is adj.t()  # cached
    assert t.shape == (shape[1], shape[0])
    torch.testing.assert_close(t.to_dense(torch.float64).cpu(), dense.t())
    torch.testing.assert_close(t.t().to_dense(torch.float64).cpu(), dense)
    assert torch.equal(t.to_edge_index().flip(0), ei.long()[:, t.perm])
    torch.testing.assert_close(adj.in_degree(torch.float64).cpu(), dense.sum(1))   # into targets = row sums
    torch.testing.assert_close(adj.out_degree(torch.float64).cpu(), dense.sum(0))  # out of sources = col sums


def numpy_normalized(a, kind, loops):
    a = a.numpy().copy()
    n = a.shape[0]
    if loops:
        a = a + np.eye(n)
    deg = a.sum(1)
    with np.errstate(divide="ignore"):
        dis = np.where(deg > 0, deg ** -0.5, 0.0)
        dinv = np.where(deg > 0, 1.0 / deg, 0.0)
    sym = dis[:, None] * a * dis[None, :]
    rw = dinv[:, None] * a
    return {"gcn": sym, "row": rw, "sym_laplacian": np.eye(n) - sym, "rw_laplacian": np.eye(n) - rw}[kind]


@on_devices
@pytest.mark.parametrize("kind", ["gcn", "row", "sym_laplacian", "rw_laplacian"])
@pytest.mark.parametrize("loops", [None, False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_normalizations_against_numpy(device, kind, loops, weighted):
    ei, shape, w = make("loops_dups_isolated", device=device, weighted=weighted)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    norm = adj.normalized(kind, add_self_loops=loops, dtype=torch.float64)
    assert norm is adj.normalized(kind, add_self_loops=loops, dtype=torch.float64)  # cached
    add = (kind == "gcn") if loops is None else loops
    ref = numpy_normalized(dense_loop(ei, shape, w), kind, add)
    np.testing.assert_allclose(norm.to_dense(torch.float64).cpu().numpy(), ref, atol=1e-12)
    x = torch.randn(shape[1], 4, dtype=torch.float64, device=device)
    np.testing.assert_allclose((norm @ x).cpu().numpy(), ref @ x.cpu().numpy(), atol=1e-12)
    # perm relates the normalised entries to [input edges, added diagonal entries]
    extra = torch.arange(shape[0], device=device).repeat(2 if (add and "laplacian" in kind) else 1)
    extra = extra if (add or "laplacian" in kind) else extra[:0]
    full = torch.cat([ei.long(), torch.stack([extra, extra])], dim=1)
    assert torch.equal(norm.to_edge_index(), full[:, norm.perm])


def test_normalization_gradients_and_empty():
    ei, shape, w = make("random")
    w.requires_grad_(True)
    x = torch.randn(shape[1], 2, dtype=torch.float64)
    for kind in ["gcn", "row", "sym_laplacian", "rw_laplacian"]:
        def f(w):
            return CSRAdjacency.from_edge_index(ei, shape, w).normalized(kind) @ x
        assert torch.autograd.gradcheck(f, (w,))
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    assert adj.normalized("gcn") is not adj.normalized("gcn")  # not cached: values are part of a graph
    empty = CSRAdjacency.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 0)
    assert empty.normalized("gcn").num_edges == 0 and (empty @ torch.randn(0, 3)).shape == (0, 3)
    noedge = CSRAdjacency.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 4)
    torch.testing.assert_close(noedge.normalized("gcn").to_dense(), torch.eye(4))
    torch.testing.assert_close(noedge.normalized("sym_laplacian").to_dense(), torch.eye(4))


def test_with_value_learnable_weights_and_inplace_update():
    ei, shape, _ = make("random")
    adj = CSRAdjacency.from_edge_index(ei, shape)
    param = torch.nn.Parameter(torch.rand(ei.size(1), dtype=torch.float64))
    x = torch.randn(shape[1], 3, dtype=torch.float64)
    for _ in range(2):  # the same adjacency reused for two steps, each with its own backward
        wadj = adj.with_value(param[adj.perm])
        loss = (wadj @ x).pow(2).sum() + (wadj.t() @ torch.randn(12, 3, dtype=torch.float64)).sum()
        loss.backward()
    fixed = CSRAdjacency.from_edge_index(ei, shape, torch.ones(ei.size(1), dtype=torch.float64))
    first = fixed @ x
    with torch.no_grad():
        fixed.value.mul_(2.0)  # in-place edit: the cached CSR tensor must not be reused
    torch.testing.assert_close(fixed @ x, 2 * first)


def batch_graphs():
    sizes = [(5, 9), (1, 0), (7, 15), (4, 6)]
    eis, offset = [], 0
    for k, (n, e) in enumerate(sizes):
        eis.append(random_graph(n, e, seed=k) + offset)
        offset += n
    ptr = torch.tensor([0] + list(np.cumsum([n for n, _ in sizes])))
    return sizes, torch.cat(eis, dim=1), ptr


@on_devices
def test_batch_block_diagonal_equals_per_graph(device):
    sizes, ei, ptr = batch_graphs()
    ei, ptr = ei.to(device), ptr.to(device)
    w = torch.rand(ei.size(1), dtype=torch.float64, device=device)
    adj = CSRAdjacency.from_batch(edge_index=ei, ptr=ptr, edge_weight=w)
    assert adj.num_graphs == 4 and adj.num_rows == int(ptr[-1])
    x = torch.randn(adj.num_cols, 3, dtype=torch.float64, device=device)
    outs = {k: [] for k in ["sum", "mean", "gcn", "rw_laplacian"]}
    e0 = 0
    for g, (n, e) in enumerate(sizes):
        n0 = int(ptr[g])
        sub = CSRAdjacency.from_edge_index(ei[:, e0:e0 + e] - n0, n, w[e0:e0 + e])
        xs = x[n0:n0 + n]
        outs["sum"].append(sub @ xs)
        outs["mean"].append(sub.matmul(xs, "mean"))
        outs["gcn"].append(sub.normalized("gcn") @ xs)
        outs["rw_laplacian"].append(sub.normalized("rw_laplacian") @ xs)
        e0 += e
    torch.testing.assert_close(adj @ x, torch.cat(outs["sum"]))
    torch.testing.assert_close(adj.matmul(x, "mean"), torch.cat(outs["mean"]))
    torch.testing.assert_close(adj.normalized("gcn") @ x, torch.cat(outs["gcn"]))
    torch.testing.assert_close(adj.normalized("rw_laplacian") @ x, torch.cat(outs["rw_laplacian"]))
    bvec = torch.repeat_interleave(torch.arange(4, device=device), ptr.diff())
    adj2 = CSRAdjacency.from_batch(edge_index=ei, batch_vector=bvec, edge_weight=w)
    torch.testing.assert_close(adj2 @ x, adj @ x)


def test_batch_from_pyg_and_cross_graph_error():
    from torch_geometric.data import Batch, Data
    sizes, ei, ptr = batch_graphs()
    data, e0 = [], 0
    for g, (n, e) in enumerate(sizes):
        data.append(Data(edge_index=ei[:, e0:e0 + e] - int(ptr[g]), num_nodes=n))
        e0 += e
    batch = Batch.from_data_list(data)
    adj = CSRAdjacency.from_batch(batch)
    assert torch.equal(adj.graph_ptr, ptr) and adj.num_edges == ei.size(1)
    torch.testing.assert_close(adj.to_dense(), dense_loop(ei, (int(ptr[-1]),) * 2, None).float())
    bad = torch.tensor([[0], [6]])  # node 0 (graph 0) -> node 6 (graph 2)
    with pytest.raises(ShapeError, match="different graphs"):
        CSRAdjacency.from_batch(edge_index=bad, ptr=ptr)
    with pytest.raises(ShapeError, match="ptr"):
        CSRAdjacency.from_batch(edge_index=ei)


def test_bad_inputs_raise_typed_errors():
    ei, shape, w = make("random")
    with pytest.raises(ShapeError, match=r"\[2, num_edges\]"):
        CSRAdjacency.from_edge_index(torch.zeros(3, 4, dtype=torch.long), 5)
    with pytest.raises(ShapeError, match="integer dtype"):
        CSRAdjacency.from_edge_index(ei.float(), 12)
    with pytest.raises(IndexOutOfRangeError, match="negative"):
        CSRAdjacency.from_edge_index(torch.tensor([[0, -1], [1, 1]]), 3)
    with pytest.raises(IndexOutOfRangeError, match=r"edge_index\[1\].*\[0, 3\)"):
        CSRAdjacency.from_edge_index(torch.tensor([[0, 1], [1, 3]]), 3)
    with pytest.raises(IndexOutOfRangeError, match=r"edge_index\[0\].*\[0, 2\)"):
        CSRAdjacency.from_edge_index(torch.tensor([[2], [0]]), (3, 2))
    with pytest.raises(ShapeError, match="edge_weight.*num_edges=40"):
        CSRAdjacency.from_edge_index(ei, 12, torch.ones(39))
    with pytest.raises(ShapeError, match="edge_weight.*floating"):
        CSRAdjacency.from_edge_index(ei, 12, torch.ones(40, dtype=torch.long))
    with pytest.raises(ShapeError, match="same device"):
        CSRAdjacency.from_edge_index(ei, 12, torch.ones(40, device="meta"))
    adj = CSRAdjacency.from_edge_index(ei, 12)
    with pytest.raises(ShapeError, match=r"num_cols=12"):
        adj @ torch.randn(11, 3)
    with pytest.raises(ShapeError, match="same device"):
        adj @ torch.randn(12, 3, device="meta")
    with pytest.raises(ShapeError, match="floating"):
        adj @ torch.ones(12, 3, dtype=torch.long)
    with pytest.raises(ShapeError, match="reduce"):
        adj.matmul(torch.randn(12, 3), reduce="max")
    with pytest.raises(ShapeError, match="square"):
        CSRAdjacency.from_edge_index(ei, (12, 13)).normalized("gcn")
    with pytest.raises(ShapeError, match="kind"):
        adj.normalized("sym")


@on_devices
@pytest.mark.parametrize("det", [False, True])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_deterministic_mode_spmm_matches(monkeypatch, device, det, reduce):
    """Deterministic mode takes the sorted segment path (`segment_product`) in the forward and in the backward
    (through the transpose), and the default kernel otherwise. The device is declared one whose default kernels are
    not reproducible (as CUDA is), so that the CUDA path selection itself runs, and is checked, on CPU."""
    monkeypatch.setattr(det_module, "ATOMIC_DEVICE_TYPES", frozenset({"cuda", torch.device(device).type}))
    calls = []
    real = spmm_module.segment_product

    def spy(adj, values, x):
        calls.append(adj)
        return real(adj, values, x)

    monkeypatch.setattr(spmm_module, "segment_product", spy)
    ei, shape, w = make("random", device=device)
    w.requires_grad_(True)
    x = torch.randn(shape[1], 5, dtype=torch.float64, device=device, requires_grad=True)
    dense = dense_autograd(ei, shape, w, torch.float64)
    if reduce == "mean":
        dense = dense / torch.bincount(ei[1], minlength=shape[0]).clamp(min=1).unsqueeze(-1)
    ref = dense @ x
    grads_ref = torch.autograd.grad(ref.sum(), [x, w])
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    with deterministic(det):
        out = spmm(adj, x, reduce)
        with torch.no_grad():  # the planned no-grad hot path selects the same way
            nograd = [spmm(adj, x, reduce), spmm(adj, x, reduce)]
    assert calls == ([adj, adj, adj] if det else [])
    grads = torch.autograd.grad(out.sum(), [x, w])  # outside the block: the forward's choice is kept
    assert calls[3:] == ([adj._transpose_structure()] if det else [])
    torch.testing.assert_close(out, ref)
    for got in nograd:
        torch.testing.assert_close(got, ref.detach())
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b)


def _dense_reference(ei, shape, w, dtype, reduce, device):
    dense = dense_autograd(ei, shape, w, dtype)
    if reduce == "mean":
        count = torch.tensor([sum(1 for t in ei[1].tolist() if t == i) for i in range(shape[0])],
                             dtype=dtype, device=device).clamp(min=1)
        dense = dense / count.unsqueeze(-1)
    return dense


@on_devices
@pytest.mark.parametrize("case", ["loops_dups_isolated", "bipartite", "no_edges"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("width", [3, 40])
def test_no_grad_fast_path_matches_autograd_path_and_dense(device, case, weighted, dtype, reduce, width):
    """The product without autograd (cached plan, kernel called directly) and the autograd path give the dense
    result, on the first call (checked path, builds the plan) and on later calls (plan reused); gradients still
    flow when x or the edge values require them."""
    ei, shape, w = make(case, device=device, dtype=dtype, weighted=weighted)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    x = torch.randn(shape[1], width, dtype=dtype, device=device)
    ref = _dense_reference(ei, shape, w, dtype, reduce, device) @ x
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)
    outs = []
    with torch.no_grad():
        outs += [adj.matmul(x, reduce), adj.matmul(x, reduce)]
    with torch.inference_mode():
        outs.append(adj.matmul(x, reduce))
    outs.append(spmm(adj, x, reduce))  # grad mode on, nothing requires grad
    plans = adj._plans_sum if reduce == "sum" else adj._plans_mean
    plan = plans[dtype]
    outs.append(adj.matmul(x, reduce))
    assert plans[dtype] is plan  # built once, reused
    if reduce == "sum":
        outs.append(adj @ x)
        assert adj.to_torch_sparse_csr(dtype) is plan.csr
    for out in outs:
        assert not out.requires_grad
        torch.testing.assert_close(out, ref, **tol)
    # autograd path after the plan exists: x, and the edge values (a leaf in CSR order), require grad
    ei_csr = adj.to_edge_index()
    wg = None if w is None else adj.value.clone().requires_grad_(True)
    adj_g = adj if wg is None else adj.with_value(wg)
    for _ in range(2):  # first call builds adj_g's plan, the second reuses it
        xg = x.clone().requires_grad_(True)
        out = adj_g.matmul(xg, reduce)
        ref_g = _dense_reference(ei_csr, shape, wg, dtype, reduce, device) @ xg
        torch.testing.assert_close(out, ref_g, **tol)
        grad_out = torch.randn_like(out)
        inputs = [xg] + ([wg] if wg is not None else [])
        got = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
        exp = torch.autograd.grad(ref_g, inputs, grad_out, allow_unused=True)
        for g, e in zip(got, exp):
            torch.testing.assert_close(g if g is not None else torch.zeros_like(e), e, **tol)
    # only the edge values require grad
    if wg is not None:
        out = adj_g.matmul(x, reduce)
        (gw,) = torch.autograd.grad(out, [wg], torch.ones_like(out))
        ref_g = _dense_reference(ei_csr, shape, wg, dtype, reduce, device) @ x
        (ew,) = torch.autograd.grad(ref_g, [wg], torch.ones_like(ref_g))
        torch.testing.assert_close(gw, ew, **tol)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("width", [5, 40])
def test_half_precision_products_on_cpu(dtype, width):
    """torch's default CPU CSR kernel has no float16/bfloat16; the product (and its gradient) takes the
    spmm_reduce kernel for them at every width and agrees with float32 to the half-precision rounding."""
    ei, shape, w = make("loops_dups_isolated", dtype=torch.float32, weighted=True)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    x = torch.randn(shape[1], width)
    ref = _dense_reference(ei, shape, w, torch.float32, "sum", "cpu") @ x
    xh = x.to(dtype).requires_grad_(True)
    out = adj @ xh
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.02)
    (g,) = torch.autograd.grad(out, [xh], torch.ones_like(out))
    ref_g = _dense_reference(ei, shape, w, torch.float32, "sum", "cpu").t() @ torch.ones(shape[0], width)
    torch.testing.assert_close(g.float(), ref_g, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_plan_follows_value_changes(reduce):
    ei, shape, w = make("random")
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    x = torch.randn(shape[1], 3, dtype=torch.float64)
    first = adj.matmul(x, reduce)
    adj.value = adj.value * 2  # another tensor
    torch.testing.assert_close(adj.matmul(x, reduce), 2 * first)
    adj.value.mul_(0.25)  # in place: the version counter changes
    torch.testing.assert_close(adj.matmul(x, reduce), 0.5 * first)
    other = adj.with_value(torch.ones_like(adj.value))
    unweighted = CSRAdjacency.from_edge_index(ei, shape)
    torch.testing.assert_close(other.matmul(x, reduce), unweighted.matmul(x, reduce))
    torch.testing.assert_close(adj.matmul(x, reduce), 0.5 * first)  # the copy did not disturb our plan
    # values edited in place between a product and its backward: an error, as for any tensor autograd saved
    xg = x.clone().requires_grad_(True)
    out = adj.matmul(xg, reduce)
    with torch.no_grad():
        adj.value.add_(1.0)
    with pytest.raises(RuntimeError, match="inplace"):
        out.sum().backward()
    adj.value.sub_(1.0)
    # backward after the in-place edit uses the new values (cached transpose rebuilt with the plan)
    xg = x.clone().requires_grad_(True)
    adj.value.mul_(3.0)
    (g,) = torch.autograd.grad(adj.matmul(xg, reduce).sum(), [xg])
    dense = _dense_reference(ei, shape, adj.value[torch.argsort(adj.perm)], torch.float64, reduce, "cpu")
    torch.testing.assert_close(g, dense.sum(0).unsqueeze(-1).expand_as(g))


@pytest.mark.parametrize("grad", [False, True])
def test_fast_path_still_raises_typed_errors_and_reshapes(grad):
    ei, shape, _ = make("random")
    adj = CSRAdjacency.from_edge_index(ei, 12)
    dense = dense_loop(ei, shape, None, torch.float32)
    adj @ torch.randn(12, 3)  # a float32 plan exists from here on
    with torch.set_grad_enabled(grad):
        with pytest.raises(ShapeError, match=r"num_cols=12"):
            adj @ torch.randn(11, 3, requires_grad=grad)
        with pytest.raises(ShapeError, match="same device"):
            adj @ torch.randn(12, 3, device="meta", requires_grad=grad)
        with pytest.raises(ShapeError, match="floating"):
            adj @ torch.ones(12, 3, dtype=torch.long)
        with pytest.raises(ShapeError, match="torch.Tensor"):
            adj @ ([[1.0]] * 12)
        x1 = torch.randn(12, requires_grad=grad)
        torch.testing.assert_close(adj @ x1, dense @ x1, rtol=1e-5, atol=1e-5)
        x3 = torch.randn(12, 2, 3, requires_grad=grad)
        torch.testing.assert_close(adj @ x3, torch.einsum("ij,jab->iab", dense, x3), rtol=1e-5, atol=1e-5)
        xt = torch.randn(3, 12, requires_grad=grad).t()  # non-contiguous
        torch.testing.assert_close(adj @ xt, dense @ xt, rtol=1e-5, atol=1e-5)
        assert (adj @ xt).requires_grad == grad


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_double_backward_through_edge_values(reduce):
    ei, shape, w = make("loops_dups_isolated")
    adj = CSRAdjacency.from_edge_index(ei, shape)
    w = w[adj.perm].clone().requires_grad_(True)
    x = torch.randn(shape[1], 2, dtype=torch.float64, requires_grad=True)

    def f(x, w):
        return adj.with_value(w).matmul(x, reduce)

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


@pytest.mark.parametrize("weighted", [False, True])
def test_hot_path_skips_the_checked_path_once_planned(monkeypatch, weighted):
    ei, shape, w = make("random", weighted=weighted)
    adj = CSRAdjacency.from_edge_index(ei, shape, w)
    x = torch.randn(shape[1], 4, dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    warm = [adj @ x, adj.matmul(x, "mean")]  # builds the sum and mean plans through the checked path
    grad_ref = adj.to_dense(torch.float64).t() @ torch.ones(shape[0], 4, dtype=torch.float64)

    def fail(*args, **kwargs):
        raise AssertionError("checked path taken")

    monkeypatch.setattr(spmm_module, "_spmm_checked", fail)
    with torch.no_grad():
        torch.testing.assert_close(adj @ x, warm[0])
    torch.testing.assert_close(spmm(adj, x, "mean"), warm[1])
    out = adj @ xg
    assert out.requires_grad
    out.sum().backward()
    torch.testing.assert_close(xg.grad, grad_ref)


def test_public_names_do_not_shadow_submodules():
    """`from sciml.sparse import spmm` is the function, and no submodule of that name hides behind it."""
    import importlib.util
    import types
    for name in sciml.sparse.__all__:
        assert not isinstance(getattr(sciml.sparse, name), types.ModuleType), name
        assert importlib.util.find_spec(f"sciml.sparse.{name}") is None, name
    assert isinstance(spmm_module, types.ModuleType) and spmm_module.spmm is spmm


def test_from_batch_ptr_validation():
    sizes, ei, ptr = batch_graphs()
    with pytest.raises(IndexOutOfRangeError, match="non-decreasing"):
        CSRAdjacency.from_batch(edge_index=ei, ptr=torch.tensor([0, 9, 5, 12, 17]))
    with pytest.raises(IndexOutOfRangeError, match=r"ptr\[0\]"):
        CSRAdjacency.from_batch(edge_index=ei, ptr=ptr + 1)
    with pytest.raises(IndexOutOfRangeError, match="num_nodes"):
        CSRAdjacency.from_batch(edge_index=ei, ptr=ptr, num_nodes=int(ptr[-1]) + 1)
    with pytest.raises(ShapeError, match="ptr"):
        CSRAdjacency.from_batch(edge_index=ei, ptr=torch.zeros(0, dtype=torch.long))


def test_tensor_cache_lives_as_long_as_its_tensors():
    import gc

    from sciml.sparse.cache import TensorCache

    calls = []
    cache = TensorCache()
    a, b = torch.zeros(3), torch.zeros(3)
    build = lambda tag: (lambda: calls.append(tag) or tag)  # noqa: E731
    assert cache.get((a,), 1, build("a1")) == "a1" and cache.get((a,), 1, build("again")) == "a1"
    assert cache.get((a,), 2, build("a2")) == "a2"                  # another extra key: its own entry
    assert cache.get((a, None), 1, build("a-none")) == "a-none"     # None stands for an absent tensor
    assert cache.get((b,), 1, build("b1")) == "b1" and calls == ["a1", "a2", "a-none", "b1"]
    del a
    gc.collect()
    assert len(cache) == 1                                          # a's entries went with a
    exclusive = TensorCache(exclusive=True)
    exclusive.get((b,), 1, build("v1"))
    assert exclusive.get((b,), 2, build("v2")) == "v2" and len(exclusive) == 1   # the old version is dropped
