"""MLP, GCN, APPNP and SGC against dense references (and PyG's layers where they are the faithful reference), with
dense and sparse features, with and without existing self-loops."""
from __future__ import annotations

import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.gnn import APPNP, GCN, MLP, SGC
from sciml.gnn import baselines
from sciml.gnn.graph import gcn_adjacency

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def dense_gcn_norm(edge_index, n):
    """D^-1/2 (A + I) D^-1/2, unit self-loop only where a node has none, several loops collapsed into one."""
    a = torch.zeros(n, n, dtype=torch.float64)
    for j, i in edge_index.T.tolist():
        a[i, j] = 1.0 if i == j else a[i, j] + 1.0
    a += torch.diag((a.diagonal() == 0).double())
    deg = a.sum(1)
    dis = deg.pow(-0.5)
    return dis[:, None] * a * dis[None, :]


def graph(n=14, e=50, seed=0, loops=False):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    if loops:
        ei = torch.cat([ei, torch.tensor([[2, 5, 5], [2, 5, 5]])], dim=1)
    return ei


def features(n=14, f=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < 0.3)


def lin(layer, h):
    return h @ layer.weight.double().T


@pytest.mark.parametrize("loops", [False, True])
def test_gcn_matches_dense_reference(loops):
    torch.manual_seed(0)
    ei, x = graph(loops=loops), features()
    model = GCN(10, 3, hidden_channels=8).eval()
    a = dense_gcn_norm(ei, 14)
    h = torch.relu(a @ lin(model.lins[0], x.double()) + model.lins[0].bias.double())
    ref = a @ lin(model.lins[1], h) + model.lins[1].bias.double()
    torch.testing.assert_close(model(x, ei).double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x.to_sparse_csr(), ei), model(x, ei), rtol=1e-5, atol=1e-6)


def test_gcn_matches_pyg_gcnconv():
    from torch_geometric.nn import GCNConv

    torch.manual_seed(1)
    ei, x = graph(loops=True), features()
    model = GCN(10, 3, hidden_channels=8).eval()
    convs = [GCNConv(10, 8), GCNConv(8, 3)]
    for conv, layer in zip(convs, model.lins):
        conv.lin.weight.data.copy_(layer.weight)
        conv.bias.data.copy_(layer.bias)
    ref = convs[1](torch.relu(convs[0](x, ei)), ei)
    torch.testing.assert_close(model(x, ei), ref, rtol=1e-5, atol=1e-6)


def test_mlp_ignores_graph_and_takes_sparse_features():
    torch.manual_seed(2)
    x = features()
    model = MLP(10, 3, hidden_channels=8).eval()
    ref = lin(model.lins[1], torch.relu(lin(model.lins[0], x.double()) + model.lins[0].bias.double())) \
        + model.lins[1].bias.double()
    torch.testing.assert_close(model(x).double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x.to_sparse(), graph()), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loops", [False, True])
def test_appnp_matches_dense_reference(loops):
    torch.manual_seed(3)
    ei, x = graph(loops=loops), features()
    model = APPNP(10, 3, hidden_channels=8, K=10, alpha=0.1).eval()
    z = model.mlp(x).double()
    a = dense_gcn_norm(ei, 14)
    h = z
    for _ in range(10):
        h = 0.9 * a @ h + 0.1 * z
    torch.testing.assert_close(model(x, ei).double(), h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x.to_sparse_csr(), ei), model(x, ei), rtol=1e-5, atol=1e-6)
    # many steps converge to the personalised PageRank fixed point alpha (I - (1 - alpha) A)^-1 Z
    deep = APPNP(10, 3, hidden_channels=8, K=200, alpha=0.1).eval()
    deep.load_state_dict(model.state_dict())
    fixed = 0.1 * torch.linalg.solve(torch.eye(14, dtype=torch.float64) - 0.9 * a, z)
    torch.testing.assert_close(deep(x, ei).double(), fixed, rtol=1e-4, atol=1e-5)


def test_appnp_matches_pyg_appnp():
    from torch_geometric.nn import APPNP as PygAPPNP

    torch.manual_seed(4)
    ei, x = graph(loops=True), features()
    model = APPNP(10, 3, hidden_channels=8, K=7, alpha=0.2).eval()
    ref = PygAPPNP(K=7, alpha=0.2)(model.mlp(x), ei)
    torch.testing.assert_close(model(x, ei), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loops", [False, True])
def test_sgc_matches_dense_reference_in_both_orders(loops):
    torch.manual_seed(5)
    ei, x = graph(loops=loops), features()
    model = SGC(10, 3, K=2).eval()
    a = dense_gcn_norm(ei, 14)
    ref = lin(model.lin, a @ a @ x.double()) + model.lin.bias.double()
    torch.testing.assert_close(model(x, ei).double(), ref, rtol=1e-5, atol=1e-6)        # precomputed A^K X
    torch.testing.assert_close(model(x.to_sparse_csr(), ei).double(), ref, rtol=1e-5, atol=1e-6)  # A^K (X W)
    other = SGC(10, 3, K=2, precompute=False)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(x, ei).double(), ref, rtol=1e-5, atol=1e-6)
    forced = SGC(10, 3, K=2, precompute=True)
    forced.load_state_dict(model.state_dict())
    torch.testing.assert_close(forced(x.to_sparse(), ei).double(), ref, rtol=1e-5, atol=1e-6)


def test_sgc_matches_pyg_sgconv():
    from torch_geometric.nn import SGConv

    torch.manual_seed(6)
    ei, x = graph(loops=True), features()
    model = SGC(10, 3, K=3)
    conv = SGConv(10, 3, K=3)
    conv.lin.weight.data.copy_(model.lin.weight)
    conv.lin.bias.data.copy_(model.lin.bias)
    torch.testing.assert_close(model(x, ei), conv(x, ei), rtol=1e-5, atol=1e-6)


def test_sgc_propagates_once_per_graph_and_feature_tensor():
    ei, x = graph(), features()
    model = SGC(10, 3, K=2)
    model(x, ei)   # fill the cache
    hits_before = len(baselines._PROPAGATED)
    out1 = model(x, ei)
    out2 = model(x, ei)
    assert len(baselines._PROPAGATED) == hits_before   # no new entry: the same A^K X is reused
    torch.testing.assert_close(out1, out2)
    # the cached tensor is the one used: corrupting it changes the output
    key = next(k for k in baselines._PROPAGATED if k[0] == id(x) and k[2] == id(ei))
    baselines._PROPAGATED[key] = torch.zeros_like(baselines._PROPAGATED[key])
    torch.testing.assert_close(model(x, ei), model.lin.bias.expand(14, 3))
    # another feature tensor (or an in-place edit) is propagated anew
    x2 = x.clone()
    torch.testing.assert_close(model(x2, ei), out1)
    # gradients for the weights flow through the cached features
    model(x, gcn_adjacency(ei, 14)).sum().backward()
    assert model.lin.weight.grad is not None


def test_training_mode_dropout_and_reset():
    torch.manual_seed(7)
    ei, x = graph(), features()
    for model in (GCN(10, 3), MLP(10, 3), APPNP(10, 3)):
        model.train()
        assert not torch.equal(model(x, ei), model(x, ei))
        model.eval()
        before = model(x, ei)
        model.reset_parameters()
        assert not torch.equal(model(x, ei), before)


def test_errors():
    with pytest.raises(ConfigError, match="alpha"):
        APPNP(4, 2, alpha=1.5)
    with pytest.raises(ConfigError, match="K"):
        APPNP(4, 2, K=-1)
    with pytest.raises(ConfigError, match="K"):
        SGC(4, 2, K=-2)
    with pytest.raises(ShapeError, match="graph"):
        GCN(4, 2)(torch.rand(3, 4), None)
    with pytest.raises(ShapeError, match="adjacency"):
        SGC(4, 2)(torch.rand(3, 4), gcn_adjacency(torch.zeros(2, 0, dtype=torch.long), 4))
