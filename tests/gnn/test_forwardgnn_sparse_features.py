"""ForwardGNN and its convolutions on sparse (CSR) node features: the same numbers as the dense features, every
variant, forward and weight gradients (dense recomputation as the reference)."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch_geometric.data import Data

from sciml.gnn.convs import make_conv
from sciml.gnn.features import cat_rows, is_sparse, sparse_l2_normalize_rows
from sciml.gnn.forwardgnn import train_node_classifier
from sciml.gnn.forwardgnn_common import l2_normalize_rows
from sciml.gnn.forwardgnn_linkpred import link_split, train_link_predictor

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def bag_of_words_graph(n=60, c=3, f=50, seed=0):
    """Row-normalised sparse-ish features (about 10 % non-zero, class-dependent), a homophilous graph, 64/16/20."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    x = torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < 0.08)
    x[torch.arange(n), y * 5] += 1.0
    x = x / x.sum(1, keepdim=True)
    same = y[:, None] == y[None, :]
    a = torch.rand(n, n, generator=g) < torch.where(same, 0.2, 0.02)
    a = (a | a.T) & ~torch.eye(n, dtype=torch.bool)
    perm = torch.randperm(n, generator=g)
    cuts = [0, int(0.64 * n), int(0.8 * n), n]
    masks = []
    for i in range(3):
        m = torch.zeros(n, dtype=torch.bool)
        m[perm[cuts[i]:cuts[i + 1]]] = True
        masks.append(m)
    return Data(x=x, y=y, edge_index=a.nonzero().T.contiguous(), train_mask=masks[0], val_mask=masks[1],
                test_mask=masks[2])


def test_cat_rows_and_sparse_row_normalisation_equal_dense():
    x = bag_of_words_graph().x
    x[3] = 0.0                                                     # a zero row stays zero
    rows = torch.randn(4, x.size(1))
    for layout in ("csr", "coo"):
        xs = x.to_sparse_csr() if layout == "csr" else x.to_sparse()
        out = cat_rows(xs, rows)
        assert out.layout == torch.sparse_csr
        torch.testing.assert_close(out.to_dense(), torch.cat([x, rows]))
        norm = sparse_l2_normalize_rows(xs, 1e-8)
        torch.testing.assert_close(norm.to_dense(), x / (x.norm(dim=1, keepdim=True) + 1e-8))
    xs = x.to_sparse_csr()
    assert l2_normalize_rows(xs) is l2_normalize_rows(xs)          # a fixed input is normalised once


@pytest.mark.parametrize("conv", ["gcn", "sage", "gat"])
def test_convs_on_sparse_features_equal_dense_forward_and_weight_gradients(conv):
    data = bag_of_words_graph()
    torch.manual_seed(0)
    layer = make_conv(conv, data.num_features, 16, heads=4)
    outs, grads = [], []
    for x in (data.x, data.x.to_sparse_csr()):
        layer.zero_grad()
        out = layer(x, data.edge_index)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append({k: p.grad.clone() for k, p in layer.named_parameters()})
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("variant", ["sf", "bp", "ff_la", "ff_vn", "sf_top2loss", "sf_top2input"])
def test_every_node_variant_trains_the_same_on_sparse_features(variant):
    data = bag_of_words_graph()
    sparse = data.clone()
    sparse.x = data.x.to_sparse_csr()
    assert is_sparse(sparse.x)
    kw = dict(variant=variant, conv="gcn", num_layers=2, hidden_channels=16, max_epochs=12, patience=100, seed=3,
              lr=1e-2)
    if variant in ("ff_la", "ff_vn"):
        kw["task_kwargs"] = {"num_negs": 2}
    ref, got = train_node_classifier(data, **kw), train_node_classifier(sparse, **kw)
    assert got["depths"].keys() == ref["depths"].keys()
    for d in ref["depths"]:
        assert got["depths"][d]["test_acc"] == pytest.approx(ref["depths"][d]["test_acc"], abs=1.5 / 12)
    for (name, p), q in zip(ref["model"].named_parameters(), got["model"].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=f"{variant}: parameter {name}")


@pytest.mark.parametrize("variant", ["ce", "ce_topdown"])
def test_link_prediction_trains_the_same_on_sparse_features(variant):
    data = link_split(bag_of_words_graph(n=80), split_index=0)
    sparse = data.clone()
    sparse.x = data.x.to_sparse_csr()
    kw = dict(variant=variant, conv="gcn", num_layers=2, hidden_channels=16, max_epochs=6, patience=100, seed=1)
    ref, got = train_link_predictor(data, **kw), train_link_predictor(sparse, **kw)
    for (name, p), q in zip(ref["model"].named_parameters(), got["model"].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=f"{variant}: parameter {name}")
