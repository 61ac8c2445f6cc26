"""sciml.gnn.convs: GCN / SAGE / GAT against dense references written from the papers' equations and against
PyG's GCNConv / SAGEConv / GATConv with copied weights."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.convs import GATConv, GCNConv, SAGEConv, make_conv
from sciml.testing import random_graph



def _graph(n=12, e=40, seed=0, loops=False):
    ei = random_graph(n, e, seed=seed, self_loops=loops)
    return torch.unique(ei, dim=1)  # simple graph (PyG's GAT would dedupe nothing either way)


def _dense(ei, n):
    a = torch.zeros(n, n, dtype=torch.float64)
    a[ei[1], ei[0]] = 1.0  # row = target
    return a


def test_gcn_matches_dense_reference():
    torch.manual_seed(0)
    n, ei = 12, _graph()
    x = torch.randn(n, 5, dtype=torch.float64)
    conv = GCNConv(5, 3).double()
    a = _dense(ei, n) + torch.eye(n, dtype=torch.float64)
    d = a.sum(1).pow(-0.5)
    ref = d[:, None] * a * d[None, :] @ (x @ conv.lin.weight.T) + conv.bias
    torch.testing.assert_close(conv(x, ei), ref)


def test_sage_matches_dense_reference_both_orders():
    torch.manual_seed(0)
    n, ei = 12, _graph()
    for fin, fout in ((5, 3), (3, 5)):  # projection before / after the aggregation
        x = torch.randn(n, fin, dtype=torch.float64)
        conv = SAGEConv(fin, fout).double()
        a = _dense(ei, n)
        deg = a.sum(1, keepdim=True)
        mean = torch.where(deg > 0, a @ x / deg.clamp(min=1), torch.zeros_like(x[:, :1]))
        ref = mean @ conv.lin_l.weight.T + conv.lin_l.bias + x @ conv.lin_r.weight.T
        torch.testing.assert_close(conv(x, ei), ref)


@pytest.mark.parametrize("concat", [True, False])
def test_gat_matches_dense_reference(concat):
    torch.manual_seed(0)
    n, ei = 10, _graph(10, 30, loops=True)  # existing loops are replaced by one per node
    heads, c = 3, 4
    x = torch.randn(n, 6, dtype=torch.float64)
    conv = GATConv(6, c, heads=heads, concat=concat).double()
    with torch.no_grad():
        conv.bias.normal_()
    mask = _dense(ei, n).bool()
    mask.fill_diagonal_(True)
    h = (x @ conv.lin.weight.T).view(n, heads, c)
    outs = []
    for k in range(heads):
        s_src = h[:, k] @ conv.att_src[0, k]
        s_dst = h[:, k] @ conv.att_dst[0, k]
        e = F.leaky_relu(s_dst[:, None] + s_src[None, :], 0.2).masked_fill(~mask, float("-inf"))
        outs.append(torch.softmax(e, dim=1) @ h[:, k])
    ref = torch.cat(outs, 1) if concat else torch.stack(outs).mean(0)
    torch.testing.assert_close(conv(x, ei), ref + conv.bias)


def test_gat_gradients_match_dense_reference():
    torch.manual_seed(1)
    n, ei = 8, _graph(8, 20)
    x = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
    conv = GATConv(4, 2, heads=2).double()
    conv(x, ei).square().sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in conv.parameters()]
    x.grad = None
    conv.zero_grad()
    mask = _dense(ei, n).bool()
    mask.fill_diagonal_(True)
    h = (x @ conv.lin.weight.T).view(n, 2, 2)
    outs = []
    for k in range(2):
        e = F.leaky_relu((h[:, k] @ conv.att_dst[0, k])[:, None] + (h[:, k] @ conv.att_src[0, k])[None, :], 0.2)
        outs.append(torch.softmax(e.masked_fill(~mask, float("-inf")), 1) @ h[:, k])
    (torch.cat(outs, 1) + conv.bias).square().sum().backward()
    ref = [x.grad] + [p.grad for p in conv.parameters()]
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r)


def _pyg():
    return pytest.importorskip("torch_geometric.nn")


def test_gcn_equals_pyg_with_copied_weights():
    pyg = _pyg()
    torch.manual_seed(0)
    n, ei = 30, _graph(30, 120, loops=True)  # some self-loops: gcn_norm keeps them (no extra loop)
    x = torch.randn(n, 7)
    ours, ref = GCNConv(7, 5), pyg.GCNConv(7, 5)
    with torch.no_grad():
        ref.lin.weight.copy_(ours.lin.weight)
        ref.bias.normal_()
        ours.bias.copy_(ref.bias)
    torch.testing.assert_close(ours(x, ei), ref(x, ei), rtol=1e-5, atol=1e-5)


def test_sage_equals_pyg_with_copied_weights():
    pyg = _pyg()
    torch.manual_seed(0)
    n, ei = 30, _graph(30, 120)
    x = torch.randn(n, 7)
    ours, ref = SAGEConv(7, 5), pyg.SAGEConv(7, 5, aggr="mean")
    ref.load_state_dict({"lin_l.weight": ours.lin_l.weight, "lin_l.bias": ours.lin_l.bias,
                         "lin_r.weight": ours.lin_r.weight})
    torch.testing.assert_close(ours(x, ei), ref(x, ei), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("concat", [True, False])
def test_gat_equals_pyg_with_copied_weights(concat):
    pyg = _pyg()
    torch.manual_seed(0)
    n, ei = 30, _graph(30, 120, loops=True)
    x = torch.randn(n, 7)
    ours, ref = GATConv(7, 4, heads=4, concat=concat), pyg.GATConv(7, 4, heads=4, concat=concat)
    with torch.no_grad():
        ref.lin.weight.copy_(ours.lin.weight)
        ref.att_src.copy_(ours.att_src)
        ref.att_dst.copy_(ours.att_dst)
        ref.bias.normal_()
        ours.bias.copy_(ref.bias)
    x.requires_grad_(True)
    out, out_ref = ours(x, ei), ref(x, ei)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    g = torch.autograd.grad(out.sum(), x)[0]
    g_ref = torch.autograd.grad(out_ref.sum(), x)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


def test_prepared_adjacency_is_cached_and_reusable():
    n, ei = 12, _graph()
    x = torch.randn(n, 5)
    for conv in (GCNConv(5, 4), SAGEConv(5, 4), GATConv(5, 2, heads=2)):
        adj = conv.prepare(ei, n)
        assert conv.prepare(ei, n) is adj
        torch.testing.assert_close(conv(x, adj), conv(x, ei))


def test_isolated_node_and_errors():
    ei = torch.tensor([[0, 1], [1, 0]])
    x = torch.randn(3, 4)
    sage = SAGEConv(4, 2)
    torch.testing.assert_close(sage(x, ei)[2], sage.lin_l.bias + x[2] @ sage.lin_r.weight.T)
    gat = GATConv(4, 2, heads=2)  # node 2 attends only to itself
    torch.testing.assert_close(gat(x, ei)[2], gat.lin(x[2]) + gat.bias)
    with pytest.raises(ShapeError, match="in_channels=4"):
        sage(torch.randn(3, 5), ei)
    with pytest.raises(ShapeError, match="adjacency"):
        sage(torch.randn(4, 4), sage.prepare(ei, 3))
    with pytest.raises(ConfigError, match="divisible"):
        make_conv("gat", 4, 6, heads=4)
    with pytest.raises(ConfigError, match="unknown convolution"):
        make_conv("gin", 4, 6)
