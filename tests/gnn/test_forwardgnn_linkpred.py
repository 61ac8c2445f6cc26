"""ForwardGNN link prediction: our ROC-AUC against a brute-force pair count (sklearn is not installed here), the
64/16/20 split with fixed negatives, the layer-local losses and the prefix scores."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F
from torch_geometric.data import Data

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.forwardgnn_common import l2_normalize_rows
from sciml.gnn.forwardgnn_linkpred import (ForwardLinkGNN, LinkForwardTask, LinkTopDownTask, link_split,
                                           train_link_predictor)
from sciml.metrics import roc_auc
from sciml.train import Trainer, detach_tree


def brute_auc(labels, scores):
    pos = [s for s, l in zip(scores.tolist(), labels.tolist()) if l == 1]
    neg = [s for s, l in zip(scores.tolist(), labels.tolist()) if l == 0]
    total = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return total / (len(pos) * len(neg))


def test_roc_auc_matches_pair_count_with_ties():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(2, 40, (1,), generator=g))
        labels = torch.randint(0, 2, (n,), generator=g)
        labels[0], labels[1] = 0, 1
        scores = torch.randint(0, 5, (n,), generator=g).float()  # many ties
        assert roc_auc(labels, scores) == pytest.approx(brute_auc(labels, scores))
    assert roc_auc(torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    sk = pytest.importorskip  # sklearn is optional: compare when it is installed
    try:
        metrics = sk("sklearn.metrics")
    except pytest.skip.Exception:
        return
    labels, scores = torch.randint(0, 2, (50,), generator=g), torch.rand(50, generator=g)
    assert roc_auc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels.numpy(), scores.numpy()))


def test_roc_auc_errors():
    with pytest.raises(ShapeError, match="both classes"):
        roc_auc(torch.ones(3), torch.rand(3))
    with pytest.raises(ShapeError, match="0 or 1"):
        roc_auc(torch.tensor([0, 2]), torch.rand(2))


def undirected_graph(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    a = torch.rand(n, n, generator=g) < torch.where(y[:, None] == y[None, :], 0.2, 0.02)
    a = torch.triu(a, 1)
    a = a | a.T
    x = torch.rand(n, 8, generator=g) + F.one_hot(y, 8).float()
    return Data(x=x, edge_index=a.nonzero().T.contiguous(), num_nodes=n)


def _pairs(index):
    return {tuple(sorted(p)) for p in index.T.tolist()}


def test_link_split_fractions_graphs_and_fixed_negatives():
    data = undirected_graph()
    split = link_split(data, split_index=1)
    m = data.edge_index.size(1) // 2
    pos = {w: split[f"{w}_edge_label_index"][:, split[f"{w}_edge_label"] == 1] for w in ("train", "val", "test")}
    neg = {w: split[f"{w}_edge_label_index"][:, split[f"{w}_edge_label"] == 0] for w in ("train", "val", "test")}
    assert pos["val"].size(1) == int(0.16 * m) and pos["test"].size(1) == int(0.2 * m)
    assert pos["train"].size(1) == m - int(0.16 * m) - int(0.2 * m)
    for w in pos:
        assert neg[w].size(1) == pos[w].size(1)  # one negative per positive, training negatives included
    all_edges = _pairs(data.edge_index)
    assert _pairs(pos["train"]) | _pairs(pos["val"]) | _pairs(pos["test"]) == all_edges
    assert not (_pairs(pos["train"]) & _pairs(pos["val"])) and not (_pairs(pos["val"]) & _pairs(pos["test"]))
    assert not any(p in all_edges for w in neg for p in _pairs(neg[w]))
    assert _pairs(split.edge_index) == _pairs(pos["train"])  # val graph = training edges (both directions)
    assert split.edge_index.size(1) == 2 * pos["train"].size(1)
    assert _pairs(split.test_edge_index) == _pairs(pos["train"]) | _pairs(pos["val"])
    again = link_split(data, split_index=1)
    assert torch.equal(again.train_edge_label_index, split.train_edge_label_index)  # fixed, reproducible
    assert not torch.equal(link_split(data, split_index=2).train_edge_label_index, split.train_edge_label_index)


def test_training_negatives_stay_fixed_during_training():
    data = undirected_graph()
    split = link_split(data)
    seen = []

    class Spy(LinkForwardTask):
        def local_step(self, model, k, block, inputs, batch):
            seen.append(batch.train_edge_label_index.clone())
            return super().local_step(model, k, block, inputs, batch)

    model = ForwardLinkGNN(8, variant="ce", hidden_channels=16, num_layers=2)
    Trainer(model, Spy(), train_data=[split], strategy="layer_local", max_steps=3, progress="none",
            device="cpu").fit()
    assert len(seen) == 6 and all(torch.equal(s, seen[0]) for s in seen)


@pytest.mark.parametrize("variant", ["ce", "ff", "ce_topdown"])
def test_link_losses_stay_in_their_layer(variant):
    torch.manual_seed(0)
    split = link_split(undirected_graph())
    model = ForwardLinkGNN(8, variant=variant, hidden_channels=16, num_layers=3)
    task = LinkTopDownTask() if variant == "ce_topdown" else LinkForwardTask(loss=variant)
    inputs = task.block_input(model, split)
    for k, block in enumerate(model.blocks):
        model.zero_grad(set_to_none=True)
        metrics, outputs = task.local_step(model, k, block, inputs, split)
        metrics["loss"].backward()
        for j, other in enumerate(model.blocks):
            assert all((p.grad is not None) == (j == k) for p in other.parameters())
        inputs = detach_tree(outputs)


def test_ce_and_ff_losses_and_prefix_scores_match_dense_recomputation():
    torch.manual_seed(0)
    split = link_split(undirected_graph())
    for loss in ("ce", "ff"):
        model = ForwardLinkGNN(8, variant=loss, hidden_channels=16, num_layers=3)
        task = LinkForwardTask(loss=loss)
        z = model.blocks[0](split.x, split.edge_index)
        idx, lab = split.train_edge_label_index, split.train_edge_label
        q = z[idx[0]] * z[idx[1]]
        if loss == "ce":
            ref = F.binary_cross_entropy_with_logits(q.sum(1), lab)
        else:
            g = q.pow(2).sum(1) - 2.0
            ref = F.binary_cross_entropy_with_logits(g[lab == 1], lab[lab == 1]) + \
                F.binary_cross_entropy_with_logits(g[lab == 0], lab[lab == 0])
        torch.testing.assert_close(task.local_step(model, 0, model.blocks[0], split.x, split)[0]["loss"], ref)
        with torch.no_grad():  # test graph = train + val edges; score = mean over layers
            h, total = split.x, 0
            ti = split.test_edge_label_index
            for block in model.blocks[:2]:
                h = F.relu(block.conv(l2_normalize_rows(h), split.test_edge_index))
                q = h[ti[0]] * h[ti[1]]
                total = total + (q.sum(1).sigmoid() if loss == "ce" else (q.pow(2).sum(1) - 2.0).sigmoid())
        torch.testing.assert_close(task.scores(model, split, depth=2, which="test"), total / 2)


def test_runner_reports_every_depth_and_topdown_runs():
    split = link_split(undirected_graph())
    r = train_link_predictor(split, variant="ce", num_layers=2, hidden_channels=16, max_epochs=6, patience=2)
    assert sorted(r["depths"]) == [1, 2] and all(0 <= v["test_auc"] <= 1 for v in r["depths"].values())
    r = train_link_predictor(split, variant="ce_topdown", num_layers=2, hidden_channels=16, max_epochs=4,
                             patience=2)
    assert sorted(r["depths"]) == [2]
    r = train_link_predictor(split, variant="bp", num_layers=2, hidden_channels=16, max_epochs=4, patience=2)
    assert 0 <= r["depths"][2]["test_auc"] <= 1
    with pytest.raises(ConfigError, match="variant"):
        LinkForwardTask(loss="ff").prepare(ForwardLinkGNN(8, variant="ce", num_layers=1), split)
