"""DAGNN against dense references: parameter layout, propagation with and without existing self-loops, sparse
features, retainment scores, the official code's formulation through PyG, errors, and training through the
Trainer with DAGNN's early-stopping rule."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn import DAGNN
from sciml.gnn.graph import gcn_adjacency

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def dense_gcn_norm(edge_index, n, weight=None):
    """D^-1/2 (A + I) D^-1/2 with a unit self-loop only where a node has none (an existing loop keeps its weight)."""
    a = torch.zeros(n, n, dtype=torch.float64)
    w = torch.ones(edge_index.size(1), dtype=torch.float64) if weight is None else weight.double()
    for e in range(edge_index.size(1)):
        j, i = int(edge_index[0, e]), int(edge_index[1, e])
        if i == j:
            a[i, i] = w[e]          # the last loop wins; several loops collapse into one
        else:
            a[i, j] += w[e]
    for i in range(n):
        if not bool(((edge_index[0] == i) & (edge_index[1] == i)).any()):
            a[i, i] = 1.0
    deg = a.sum(1)
    dis = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    return dis[:, None] * a * dis[None, :]


def graph(n=12, e=40, seed=0, loops=False):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    if loops:  # a few nodes with one self-loop, one node with two
        extra = torch.tensor([[1, 4, 4, 7], [1, 4, 4, 7]])
        ei = torch.cat([ei, extra], dim=1)
    return ei


def reference_forward(model: DAGNN, x: torch.Tensor, a_hat: torch.Tensor) -> torch.Tensor:
    """Eval-mode DAGNN written out with dense matrices in float64."""
    w1, b1 = model.lin1.weight.double(), model.lin1.bias.double()
    h = x.double() @ w1.T + b1
    if model.bn is not None:
        bn = model.bn
        h = (h - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps) * bn.weight.double() \
            + bn.bias.double()
    z = torch.relu(h) @ model.lin2.weight.double().T + model.lin2.bias.double()
    hs, cur = [z], z
    for _ in range(model.K):
        cur = a_hat @ cur
        hs.append(cur)
    s, b = model.proj.weight.double().view(-1), model.proj.bias.double()
    out = sum(torch.sigmoid(h_l @ s + b)[:, None] * h_l for h_l in hs)
    return torch.log_softmax(out, dim=-1)


def test_arxiv_variant_has_the_readme_parameter_count():
    model = DAGNN(128, 40, hidden_channels=256, K=16, batch_norm=True)
    assert sum(p.numel() for p in model.parameters()) == 43_857
    # 128*256 + 256 (lin1) + 2*256 (BN) + 256*40 + 40 (lin2) + 40 + 1 (retainment s and its bias b)
    assert model.proj.weight.shape == (1, 40) and model.proj.bias.shape == (1,)
    assert model.input_dropout == 0.0 and model.dropout == 0.5


def test_default_variant_parameter_layout():
    model = DAGNN(1433, 7)
    assert model.bn is None and model.input_dropout == 0.5
    assert sum(p.numel() for p in model.parameters()) == 1433 * 64 + 64 + 64 * 7 + 7 + 7 + 1
    assert DAGNN(8, 3, dropout=0.2, input_dropout=0.0).input_dropout == 0.0


@pytest.mark.parametrize("loops", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_forward_matches_dense_reference(loops, batch_norm):
    torch.manual_seed(0)
    n = 12
    ei = graph(n, loops=loops)
    x = torch.rand(n, 9)
    model = DAGNN(9, 4, hidden_channels=16, K=5, batch_norm=batch_norm)
    if batch_norm:  # non-trivial running statistics
        model.train()
        model(x, ei)
    model.eval()
    out = model(x, ei)
    ref = reference_forward(model, x, dense_gcn_norm(ei, n))
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    # a prebuilt adjacency gives the same
    torch.testing.assert_close(model(x, gcn_adjacency(ei, n)), out)


def test_self_loops_are_added_only_where_missing():
    """A node with an existing loop keeps one loop of its own weight (PyG gcn_norm), not an extra unit loop."""
    n = 5
    ei = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 0, 2, 1, 3, 3]])  # node 3: two self-loops, nothing else
    a = gcn_adjacency(ei, n).to_dense().double()
    ref = dense_gcn_norm(ei, n)
    torch.testing.assert_close(a, ref)
    assert a[3, 3].item() == pytest.approx(1.0)     # one loop, degree 1 (sciml.sparse's "gcn" would give 3 loops)
    assert a[4, 4].item() == pytest.approx(1.0)     # isolated node: its added loop
    w = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0, 4.0])
    torch.testing.assert_close(gcn_adjacency(ei, n, edge_weight=w).to_dense().double(),
                               dense_gcn_norm(ei, n, w))  # weighted: the last loop's weight (4.0)


def test_matches_pyg_gcn_norm_with_existing_loops():
    """The official code normalises with PyG's gcn_norm (add_remaining_self_loops): same matrix."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    n = 12
    ei = graph(n, loops=True)
    ei = ei[:, ~((ei[0] == 4) & (ei[1] == 4))]
    ei = torch.cat([ei, torch.tensor([[4], [4]])], dim=1)  # one loop per looped node: PyG's choice is then defined
    w = torch.rand(ei.size(1), dtype=torch.float64) + 0.5
    for weight in (None, w):
        idx, val = gcn_norm(ei, weight, n, add_self_loops=True, dtype=torch.float64)
        ref = torch.zeros(n, n, dtype=torch.float64).index_put_((idx[1], idx[0]), val, accumulate=True)
        got = gcn_adjacency(ei, n, edge_weight=weight).to_dense(torch.float64)
        torch.testing.assert_close(got, ref)


def test_matches_official_formulation_through_pyg_message_passing():
    """The official Prop module (gcn_norm + MessagePassing 'add', stacked hops, Linear(C,1) + sigmoid, matmul)."""
    from torch_geometric.nn import MessagePassing
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    class OfficialProp(MessagePassing):
        def __init__(self):
            super().__init__(aggr="add")

        def forward(self, x, edge_index, norm):
            return self.propagate(edge_index, x=x, norm=norm)

        def message(self, x_j, norm):
            return norm.view(-1, 1) * x_j

    torch.manual_seed(1)
    n = 12
    ei = graph(n, loops=True)
    x = torch.rand(n, 6)
    model = DAGNN(6, 3, hidden_channels=8, K=4).eval()
    z = model.transform(x)
    idx, norm = gcn_norm(ei, None, n, add_self_loops=True)
    preds, h = [z], z
    for _ in range(model.K):
        h = OfficialProp()(h, idx, norm)
        preds.append(h)
    pps = torch.stack(preds, dim=1)
    score = torch.sigmoid(model.proj(pps)).view(n, 1, -1)     # [N, 1, K+1]
    ref = F.log_softmax(torch.matmul(score, pps).view(n, -1), dim=1)
    torch.testing.assert_close(model(x, ei), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_sparse_features_equal_dense(layout):
    torch.manual_seed(2)
    n = 12
    ei = graph(n)
    x = torch.rand(n, 20) * (torch.rand(n, 20) < 0.2)
    xs = x.to_sparse_csr() if layout == "csr" else x.to_sparse()
    model = DAGNN(20, 3, hidden_channels=8, K=3).eval()
    out_d = model(x, ei)
    out_d.sum().backward()
    grads_d = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out_s = model(xs, ei)
    out_s.sum().backward()
    torch.testing.assert_close(out_s, out_d, rtol=1e-5, atol=1e-6)
    for gd, p in zip(grads_d, model.parameters()):
        torch.testing.assert_close(p.grad, gd, rtol=1e-5, atol=1e-6)


def test_retainment_scores_and_combination():
    torch.manual_seed(3)
    n = 12
    ei = graph(n)
    x = torch.rand(n, 5)
    model = DAGNN(5, 3, hidden_channels=8, K=4).eval()
    s = model.retainment_scores(x, ei)
    assert s.shape == (n, 5) and bool(((s > 0) & (s < 1)).all())
    a = gcn_adjacency(ei, n).to_dense()
    z = model.transform(x)
    hops = [torch.linalg.matrix_power(a, k) @ z for k in range(5)]
    out = sum(s[:, k:k + 1] * hops[k] for k in range(5))
    torch.testing.assert_close(model(x, ei), torch.log_softmax(out, -1), rtol=1e-5, atol=1e-6)


def test_degenerate_sizes():
    """One class (C = 1), one node, K = 0: explicit reshapes, no squeeze() pitfalls."""
    ei = torch.tensor([[0, 1], [1, 0]])
    x = torch.rand(2, 3)
    out = DAGNN(3, 1, K=2).eval()(x, ei)
    assert out.shape == (2, 1) and torch.allclose(out, torch.zeros(2, 1))
    one = DAGNN(3, 4, K=3).eval()
    assert one(torch.rand(1, 3), torch.zeros(2, 0, dtype=torch.long)).shape == (1, 4)
    m0 = DAGNN(3, 4, K=0).eval()
    z = m0.transform(x)
    ref = torch.log_softmax(torch.sigmoid(m0.proj(z)) * z, -1)
    torch.testing.assert_close(m0(x, ei), ref)


def test_dropout_only_in_training():
    torch.manual_seed(4)
    ei = graph(12)
    x = torch.rand(12, 6)
    model = DAGNN(6, 3, dropout=0.5)
    model.eval()
    assert torch.equal(model(x, ei), model(x, ei))
    model.train()
    assert not torch.equal(model(x, ei), model(x, ei))


def test_errors():
    with pytest.raises(ConfigError, match="K"):
        DAGNN(4, 2, K=-1)
    with pytest.raises(ConfigError, match="dropout"):
        DAGNN(4, 2, dropout=1.0)
    with pytest.raises(ConfigError, match="input_dropout"):
        DAGNN(4, 2, input_dropout=-0.1)
    with pytest.raises(ConfigError, match="hidden_channels"):
        DAGNN(4, 2, hidden_channels=0)
    model = DAGNN(4, 2)
    with pytest.raises(ShapeError, match=r"\[num_nodes, 4\]"):
        model(torch.rand(3, 5), torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ShapeError, match="adjacency"):
        model(torch.rand(3, 4), gcn_adjacency(torch.zeros(2, 0, dtype=torch.long), 5))


def test_trains_through_trainer_with_dagnn_early_stopping(tmp_path):
    """The config path (`sciml train`): node_graph-free synthetic graph, DAGNN, mean-of-last early stopping,
    model selection by validation loss; DAGNN beats the graph-free MLP on a homophilous graph."""
    from sciml.config import load_config
    from sciml.experiment import build

    def fit(model):
        cfg = load_config({
            "model": model,
            "data": {"name": "community_graph", "num_nodes": 240, "num_classes": 3, "num_val": 60,
                     "feature_noise": 3.0, "seed": 1},
            "task": {"name": "node_classification"},
            "trainer": {"max_epochs": 40, "lr": 0.01, "weight_decay": 5e-4, "seed": 0, "progress": "none",
                        "early_stopping": {"rule": "mean_of_last", "window": 10, "start_after": 20,
                                           "monitor": "val_loss"}},
        })
        exp = build(cfg, handle_signals=False)
        summary = exp.trainer.fit()
        return summary, exp.trainer.evaluate(exp.val_data)

    summary, metrics = fit({"name": "dagnn", "K": 5, "dropout": 0.5})
    assert summary["best"]["monitor"] == "val_loss"
    assert metrics["loss"] == pytest.approx(summary["best"]["value"], rel=1e-6)  # the restored best weights
    _, mlp = fit({"name": "mlp", "dropout": 0.5})
    assert metrics["test_acc"] > mlp["test_acc"] + 0.05


@pytest.mark.parametrize("seed", range(5))
def test_early_stopping_config_equals_the_official_rule(seed):
    """EarlyStopping(rule="mean_of_last", window=100, start_after=epochs // 2) stops at the epoch where the
    official loop breaks (epoch > epochs // 2 and val_loss > mean of the previous 100) and selects the same epoch
    (strictly lowest validation loss)."""
    from sciml.train import EarlyStopping

    epochs, window = 1000, 100
    g = torch.Generator().manual_seed(seed)
    # a loss that falls, flattens and creeps up again, with noise and exact ties
    t = torch.arange(1, epochs + 1, dtype=torch.float64)
    losses = (1.0 / t.sqrt() + 2e-4 * t * (seed % 3) / 3 + 0.02 * torch.rand(epochs, generator=g,
                                                                               dtype=torch.float64)).tolist()
    losses[300] = losses[301] = min(losses) - 1e-3

    def official():
        best, best_epoch, history = float("inf"), 0, []
        for epoch in range(1, epochs + 1):
            v = losses[epoch - 1]
            if v < best:
                best, best_epoch = v, epoch
            history.append(v)
            if epoch > epochs // 2:
                prev = history[-(window + 1):-1]
                if v > sum(prev) / len(prev):
                    return epoch, best_epoch
        return epochs, best_epoch

    es = EarlyStopping(rule="mean_of_last", window=window, start_after=epochs // 2, monitor="val_loss")
    stop_epoch = epochs
    for epoch in range(1, epochs + 1):
        _, stop = es.update({"val_loss": losses[epoch - 1]}, step=epoch)
        if stop:
            stop_epoch = epoch
            break
    assert (stop_epoch, es.best_step) == official()
