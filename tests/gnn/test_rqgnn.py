"""RQGNN against independent references: the Rayleigh vector against dense XᵀLX with scipy's Laplacian, the
Chebyshev bank against the dense polynomial (eigendecomposition) and against PyG's ChebConv, RQ-pooling against a
loop, frozen vs trainable filters, permutation and batch-composition invariance of the graph scores, errors, and
the reproduction/speed benchmarks' --quick runs (slow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse import csgraph
from torch_geometric.data import Data

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.graph_anomaly import PackedGraphs, synthetic_anomaly_graphs
from sciml.gnn.rqgnn import ChebyshevFilterBank, RQGNN, RQPooling, normalized_laplacian, rayleigh_quotient
from sciml.sparse import CSRAdjacency
from sciml.testing import run_quick

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

ROOT = Path(__file__).resolve().parents[2]


def random_graphs(sizes=(5, 7, 4), seed=0, isolated=True):
    """Undirected graphs (both directions listed); the last node of the second graph is isolated."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, n in enumerate(sizes):
        m = n - 1 if (isolated and k == 1) else n
        src = torch.randint(0, m, (2 * n,), generator=g)
        dst = torch.randint(0, m, (2 * n,), generator=g)
        keep = src != dst
        ei = torch.stack([src[keep], dst[keep]])
        ei = torch.unique(torch.cat([ei, ei.flip(0)], 1), dim=1)
        out.append((n, ei))
    return out


def batch_of(graphs):
    ptr = [0]
    eis = []
    for n, ei in graphs:
        eis.append(ei + ptr[-1])
        ptr.append(ptr[-1] + n)
    return torch.cat(eis, 1), torch.tensor(ptr)


def dense_adjacency(n, ei):
    a = np.zeros((n, n))
    a[ei[1].numpy(), ei[0].numpy()] = 1.0
    return a


def test_rayleigh_numerator_and_quotient_match_dense_scipy_laplacian():
    graphs = random_graphs()
    ei, ptr = batch_of(graphs)
    x = torch.randn(int(ptr[-1]), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    adj = CSRAdjacency.from_batch(edge_index=ei, ptr=ptr, edge_weight=torch.ones(ei.size(1), dtype=torch.float64))
    lap = normalized_laplacian(adj, isolated_diagonal=0.0)
    num = rayleigh_quotient(x, lap, ptr)
    quo = rayleigh_quotient(x, lap, ptr, quotient=True)
    for k, (n, gei) in enumerate(graphs):
        L = csgraph.laplacian(sp.csr_matrix(dense_adjacency(n, gei)), normed=True).toarray()
        xg = x[ptr[k]:ptr[k + 1]].numpy()
        want = np.diag(xg.T @ L @ xg)
        np.testing.assert_allclose(num[k].numpy(), want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(quo[k].numpy(), want / (xg * xg).sum(0), rtol=1e-10, atol=1e-12)


def test_laplacian_isolated_node_conventions():
    graphs = random_graphs()
    ei, ptr = batch_of(graphs)
    adj = CSRAdjacency.from_batch(edge_index=ei, ptr=ptr)
    n = int(ptr[-1])
    a = dense_adjacency(n, ei)
    deg = a.sum(1)
    dis = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    want = np.eye(n) - dis[:, None] * a * dis[None, :]        # I - D^-1/2 A D^-1/2: isolated diagonal 1
    got = normalized_laplacian(adj).to_dense(torch.float64).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    isolated = ptr[2] - 1  # last node of graph 1
    assert deg[isolated] == 0 and got[isolated, isolated] == 1.0
    got0 = normalized_laplacian(adj, isolated_diagonal=0.0).to_dense(torch.float64).numpy()
    want0 = want.copy()
    want0[isolated, isolated] = 0.0
    np.testing.assert_allclose(got0, want0, atol=1e-6)


def chebyshev_dense(L, x, weight, bias, lambda_max):
    """sum_k T_k(L^) x Theta_k + b per filter, T_k from the eigendecomposition of L^ (cos(k arccos mu))."""
    n = L.shape[0]
    lhat = 2.0 * L / lambda_max - np.eye(n)
    mu, U = np.linalg.eigh(lhat)
    theta = np.arccos(np.clip(mu, -1, 1))
    q, K = weight.shape[:2]
    outs = []
    for j in range(q):
        acc = np.zeros((n, weight.shape[3]))
        for k in range(K):
            Tk = U @ np.diag(np.cos(k * theta)) @ U.T
            acc += Tk @ x @ weight[j, k]
        outs.append(acc + bias[j])
    return np.concatenate(outs, 1)


@pytest.mark.parametrize("lambda_max", [2.0, 3.0])
def test_chebyshev_bank_matches_dense_polynomial(lambda_max):
    graphs = random_graphs((6, 5, 8), seed=3)
    ei, ptr = batch_of(graphs)
    n = int(ptr[-1])
    adj = CSRAdjacency.from_batch(edge_index=ei, ptr=ptr, edge_weight=torch.ones(ei.size(1), dtype=torch.float64))
    lap = normalized_laplacian(adj)
    bank = ChebyshevFilterBank(3, 2, num_filters=3, K=5, lambda_max=lambda_max).double()
    with torch.no_grad():
        bank.bias.normal_()
    x = torch.randn(n, 3, dtype=torch.float64)
    got = bank(x, lap).detach().numpy()
    want = chebyshev_dense(lap.to_dense(torch.float64).numpy(), x.numpy(), bank.weight.detach().numpy(),
                           bank.bias.detach().numpy(), lambda_max)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_chebyshev_bank_matches_pyg_chebconv():
    from torch_geometric.nn import ChebConv

    graphs = random_graphs((6, 7, 5), seed=4)  # with an isolated node
    ei, ptr = batch_of(graphs)
    n = int(ptr[-1])
    torch.manual_seed(0)
    bank = ChebyshevFilterBank(4, 3, num_filters=2, K=4)
    with torch.no_grad():
        bank.bias.normal_()
    convs = [ChebConv(4, 3, 4) for _ in range(2)]
    for j, conv in enumerate(convs):
        with torch.no_grad():
            for k, lin in enumerate(conv.lins):
                lin.weight.copy_(bank.weight[j, k].T)
            conv.bias.copy_(bank.bias[j])
    x = torch.randn(n, 4)
    want = torch.cat([conv(x, ei) for conv in convs], 1)
    lap = normalized_laplacian(CSRAdjacency.from_batch(edge_index=ei, ptr=ptr))
    torch.testing.assert_close(bank(x, lap), want, rtol=1e-5, atol=1e-5)


def test_chebyshev_init_is_glorot_and_bias_zero():
    torch.manual_seed(0)
    bank = ChebyshevFilterBank(20, 30, num_filters=4, K=6)
    bound = (6 / 50) ** 0.5
    w = bank.weight.detach()
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
    assert abs(float(w.std()) - bound / 3 ** 0.5) < 0.02   # std of U(-a, a) is a / sqrt(3)
    assert torch.equal(bank.bias, torch.zeros(4, 30))


def small_set(num_graphs=24, seed=0):
    return PackedGraphs(synthetic_anomaly_graphs(num_graphs, anomaly_fraction=0.25, min_nodes=5, max_nodes=9,
                                                 seed=seed))


def test_frozen_random_filters_are_buffers_and_do_not_train():
    graphs = small_set()
    b = graphs.batch(torch.arange(len(graphs)))
    for mode in ("trainable", "frozen_random"):
        torch.manual_seed(0)
        model = RQGNN(graphs.num_features, 16, width=2, depth=3, filters=mode)
        names = {k for k, _ in model.named_parameters()}
        assert ("cheb.weight" in names) == (mode == "trainable")
        assert "cheb.weight" in model.state_dict() and "cheb.bias" in model.state_dict()
        before = model.cheb.weight.detach().clone()
        lin_before = model.lin1.weight.detach().clone()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss = model(b.x, b.laplacian, b.graph_ptr, b.rq).square().mean()
        loss.backward()
        opt.step()
        changed = not torch.equal(model.cheb.weight, before)
        assert changed == (mode == "trainable")
        assert not torch.equal(model.lin1.weight, lin_before)  # the node MLP below the filters trains either way
    frozen = RQGNN(graphs.num_features, 16, width=2, depth=3, filters="frozen_random")
    n_frozen = sum(p.numel() for p in frozen.parameters())
    trainable = RQGNN(graphs.num_features, 16, width=2, depth=3)
    assert sum(p.numel() for p in trainable.parameters()) - n_frozen == 2 * 3 * 4 * 4 + 2 * 4


def test_rq_pooling_matches_loop():
    torch.manual_seed(0)
    pool = RQPooling(3, 5)
    ptr = torch.tensor([0, 4, 4, 9])   # the middle graph is empty
    h, rq = torch.randn(9, 5), torch.randn(3, 3)
    got = pool(h, rq, ptr)
    act = torch.nn.functional.leaky_relu
    t = act(pool.lin2(act(pool.lin1(rq))))
    for g in range(3):
        want = torch.zeros(5)
        for v in range(int(ptr[g]), int(ptr[g + 1])):
            want += float(h[v] @ t[g].detach()) * h[v]
        torch.testing.assert_close(got[g], want, rtol=1e-5, atol=1e-5)
    soft = RQPooling(3, 5, score="softmax")
    soft.load_state_dict(pool.state_dict())
    a = (h[:4] @ t[0]).softmax(0)
    torch.testing.assert_close(soft(h, rq, ptr)[0], (a[:, None] * h[:4]).sum(0), rtol=1e-5, atol=1e-5)


def permuted_graph(data, perm):
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    return Data(x=data.x[perm], edge_index=inv[data.edge_index], y=data.y)


@pytest.mark.parametrize("rayleigh", ["numerator", "quotient"])
def test_graph_scores_are_permutation_and_batch_invariant(rayleigh):
    raw = synthetic_anomaly_graphs(16, anomaly_fraction=0.25, min_nodes=5, max_nodes=10, seed=2)
    g = torch.Generator().manual_seed(5)
    shuffled = [permuted_graph(d, torch.randperm(d.x.size(0), generator=g)) for d in raw]
    a, b = PackedGraphs(raw), PackedGraphs(shuffled)
    torch.manual_seed(0)
    model = RQGNN(a.num_features, 16, width=3, depth=4, rayleigh=rayleigh).eval()
    ids = torch.arange(16)
    order = torch.randperm(16, generator=g)
    with torch.no_grad():
        ba, bb = a.batch(ids), b.batch(order)
        out_a = model(ba.x, ba.laplacian, ba.graph_ptr, ba.rq)
        out_b = model(bb.x, bb.laplacian, bb.graph_ptr, bb.rq)
        torch.testing.assert_close(out_b, out_a[order], rtol=1e-4, atol=1e-4)
        one = a.batch(torch.tensor([7]))
        torch.testing.assert_close(model(one.x, one.laplacian, one.graph_ptr, one.rq)[0], out_a[7],
                                   rtol=1e-4, atol=1e-4)
        # rq=None recomputes the vector from x (here with the I - ... Laplacian: no isolated nodes, so equal)
        torch.testing.assert_close(model(ba.x, ba.laplacian, ba.graph_ptr), out_a, rtol=1e-4, atol=1e-4)


def test_quotient_option_divides_by_xtx():
    graphs = small_set()
    b = graphs.batch(torch.arange(len(graphs)))
    model = RQGNN(graphs.num_features, 8, rayleigh="quotient")
    xtx = torch.stack([(b.x[b.graph_ptr[k]:b.graph_ptr[k + 1]] ** 2).sum(0) for k in range(b.num_graphs)])
    want = torch.where(xtx > 0, b.rq / xtx.clamp(min=1e-30), torch.zeros_like(xtx))
    torch.testing.assert_close(model.graph_rq(b.x, b.laplacian, b.graph_ptr, b.rq), want)


def test_errors_name_the_argument():
    with pytest.raises(ConfigError, match="filters"):
        RQGNN(4, filters="frozen")
    with pytest.raises(ConfigError, match="rayleigh"):
        RQGNN(4, rayleigh="ratio")
    with pytest.raises(ConfigError, match="K"):
        ChebyshevFilterBank(4, 4, K=0)
    graphs = small_set()
    b = graphs.batch(torch.arange(4))
    model = RQGNN(graphs.num_features + 1, 8)
    with pytest.raises(ShapeError, match="in_channels"):
        model(b.x, b.laplacian, b.graph_ptr, None)
    with pytest.raises(ShapeError, match="graph_ptr"):
        RQGNN(graphs.num_features, 8)(b.x, b.laplacian, b.graph_ptr[:-1], b.rq)


def _run_quick(script: str, tmp_path: Path) -> dict:
    return run_quick(ROOT / "benchmarks" / f"{script}.py", tmp_path / f"{script}.json", timeout=600)


@pytest.mark.slow
def test_reproduction_benchmark_quick(tmp_path):
    res = _run_quick("rqgnn_reproduction", tmp_path)
    assert res["runs"], "no runs recorded"
    for rec in res["runs"].values():
        assert 0.0 <= rec["by_auc"]["test_auc"] <= 1.0


@pytest.mark.slow
def test_speed_benchmark_quick(tmp_path):
    res = _run_quick("rqgnn_speed", tmp_path)
    assert res["runs"]
