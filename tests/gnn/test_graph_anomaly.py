"""Graph-level anomaly detection pieces against independent references: the class-balanced focal loss against a
hand computation, stratified split ratios per class, macro-F1 / ROC-AUC / the validation threshold against brute
force, packed batches against dense block-diagonal Laplacians, the GIN baseline against a dense layer, the
official patience rule, training through the Trainer on the synthetic set, and the TU converter on files named
like the NCI anticancer sets (MCF-7, NCI-H23, ...)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse import csgraph
from torch_geometric.data import Data

from sciml.errors import ConfigError
from sciml.gnn.graph_anomaly import (GINClassifier, PackedGraphs, TiesResetEarlyStopping, anomaly_labels,
                                     class_balanced_focal_loss, class_balanced_weights, stratified_split,
                                     synthetic_anomaly_graphs, train_graph_anomaly)
from sciml.metrics import best_threshold, macro_f1, roc_auc
from sciml.gnn.rqgnn import RQGNN

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


# ---------------------------------------------------------------------------------------------------- loss
def test_focal_loss_hand_value():
    # one sample, logits (0, 0), class 0, equal counts: both weights 1; each column p_t = 1/2,
    # BCE = ln 2, modulator (1/2)^1.5 -> loss = 2 * 0.5**1.5 * ln 2
    loss = class_balanced_focal_loss(torch.zeros(1, 2), torch.tensor([0]), [4, 4], beta=0.999, gamma=1.5)
    assert abs(float(loss) - 2 * 0.5 ** 1.5 * math.log(2)) < 1e-6


def test_focal_loss_against_textbook_formula():
    logits = torch.tensor([[1.2, -0.3], [-2.0, 0.7], [0.1, 0.4], [3.0, -1.0], [-0.5, -0.5]], dtype=torch.float64)
    y = [0, 1, 1, 0, 0]
    counts, beta, gamma = [30, 7], 0.999, 1.5
    eff = [1 - beta ** n for n in counts]
    w = [(1 - beta) / e for e in eff]
    w = [v / sum(w) * 2 for v in w]
    total = 0.0
    for i, c in enumerate(y):
        for j in range(2):
            s = float(logits[i, j])
            p = 1 / (1 + math.exp(-s))
            pt = p if j == c else 1 - p
            total += w[c] * (1 - pt) ** gamma * -math.log(pt)
    got = class_balanced_focal_loss(logits, torch.tensor(y), counts, beta=beta, gamma=gamma)
    assert abs(float(got) - total / len(y)) < 1e-10
    # gamma = 0: the class-weighted BCE over both columns
    got0 = class_balanced_focal_loss(logits, torch.tensor(y), counts, beta=beta, gamma=0.0)
    bce = sum(w[c] * -math.log(1 / (1 + math.exp(-float(logits[i, j]))) if j == c
                                 else 1 - 1 / (1 + math.exp(-float(logits[i, j]))))
              for i, c in enumerate(y) for j in range(2))
    assert abs(float(got0) - bce / len(y)) < 1e-10


def test_class_balanced_weights_by_hand():
    w = class_balanced_weights([900, 100], 0.999)
    e0, e1 = 1 - 0.999 ** 900, 1 - 0.999 ** 100
    want = torch.tensor([1 / e0, 1 / e1]) / (1 / e0 + 1 / e1) * 2
    torch.testing.assert_close(w, want.double())
    assert class_balanced_weights([5, 0]).tolist() == [2.0, 0.0]   # no anomalies in training: weight 0
    with pytest.raises(ConfigError, match="beta"):
        class_balanced_weights([1, 1], 1.0)


# ---------------------------------------------------------------------------------------------------- splits
def test_stratified_split_ratios_per_class():
    y = torch.tensor([0] * 319 + [1] * 86)[torch.randperm(405, generator=torch.Generator().manual_seed(0))]
    tr, va, te = stratified_split(y, seed=3)
    assert sorted(torch.cat([tr, va, te]).tolist()) == list(range(405))
    for c, n in ((0, 319), (1, 86)):
        counts = [int((y[s] == c).sum()) for s in (tr, va, te)]
        assert counts == [int(0.7 * n), int(0.85 * n) - int(0.7 * n), n - int(0.85 * n)]
        assert abs(counts[0] / n - 0.7) < 1 / n + 1e-9 and abs(counts[2] / n - 0.15) < 1 / n + 1e-9
    again = stratified_split(y, seed=3)
    other = stratified_split(y, seed=4)
    assert all(torch.equal(a, b) for a, b in zip((tr, va, te), again))
    assert not torch.equal(tr, other[0])


def test_anomaly_labels_minority():
    assert anomaly_labels(torch.tensor([1, 1, 1, 0])).tolist() == [0, 0, 0, 1]   # AIDS: class 0 is the minority
    assert anomaly_labels(torch.tensor([0, 0, 1])).tolist() == [0, 0, 1]
    assert anomaly_labels(torch.tensor([3, 3, 5]), anomaly=3).tolist() == [1, 1, 0]
    with pytest.raises(ConfigError, match="two classes"):
        anomaly_labels(torch.tensor([0, 1, 2]))


# ---------------------------------------------------------------------------------------------------- metrics
def test_macro_f1_by_hand():
    y = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0])
    p = torch.tensor([1, 1, 0, 1, 0, 0, 0, 0])
    # class 1: TP 2, FP 1, FN 1 -> 4/6; class 0: TP 4, FP 1, FN 1 -> 8/10
    assert abs(macro_f1(y, p) - (4 / 6 + 8 / 10) / 2) < 1e-12
    assert macro_f1(torch.tensor([0, 0]), torch.tensor([0, 0])) == 0.5   # class 1 absent everywhere: F1 0


def test_roc_auc_brute_force():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(60, generator=g) < 0.3).long()
    s = torch.randint(0, 8, (60,), generator=g).double()   # many ties
    pos, neg = s[y == 1], s[y == 0]
    want = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))
    assert abs(roc_auc(y, s) - want) < 1e-12
    assert math.isnan(roc_auc(torch.zeros(5, dtype=torch.long), torch.rand(5), single_class="nan"))


def test_best_threshold_brute_force():
    g = torch.Generator().manual_seed(1)
    for trial in range(5):
        y = (torch.rand(40, generator=g) < 0.25).long()
        s = torch.randint(0, 12, (40,), generator=g).double() / 12
        t, f1 = best_threshold(y, s)
        candidates = sorted(set(s.tolist())) + [2.0]
        brute = max(macro_f1(y, (s >= c).long()) for c in candidates)
        assert abs(f1 - brute) < 1e-12
        assert abs(macro_f1(y, (s >= t).long()) - f1) < 1e-12


# ---------------------------------------------------------------------------------------------------- data
def test_packed_batches_match_dense_block_laplacians():
    g = torch.Generator().manual_seed(0)
    graphs = []
    for k, n in enumerate((5, 8, 3, 6)):
        ei = torch.randint(0, n - 1 if k == 2 else n, (2, 3 * n), generator=g)
        ei = torch.cat([ei, ei.flip(0), torch.tensor([[0], [0]])], 1)   # duplicates and a self-loop
        graphs.append(Data(x=torch.randn(n, 3, generator=g), edge_index=ei, y=torch.tensor([int(k == 1)])))
    packed = PackedGraphs(graphs)
    ids = torch.tensor([3, 0, 2])
    b = packed.batch(ids)
    blocks, blocks0, adjs = [], [], []
    for i in ids.tolist():
        n = graphs[i].x.size(0)
        a = np.zeros((n, n))
        ei = graphs[i].edge_index
        keep = ei[0] != ei[1]
        a[ei[1][keep].numpy(), ei[0][keep].numpy()] = 1.0      # unweighted: duplicates merged, loops dropped
        deg = a.sum(1)
        dis = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
        blocks.append(np.eye(n) - dis[:, None] * a * dis[None, :])
        blocks0.append(csgraph.laplacian(sp.csr_matrix(a), normed=True).toarray())
        adjs.append(a)
    np.testing.assert_allclose(b.laplacian.to_dense(torch.float64).numpy(), sp.block_diag(blocks).toarray(),
                               atol=1e-6)
    np.testing.assert_allclose(b.adjacency.to_dense(torch.float64).numpy(), sp.block_diag(adjs).toarray())
    assert torch.equal(b.x, torch.cat([graphs[i].x for i in ids.tolist()]))
    assert b.graph_ptr.tolist() == [0, 6, 11, 14]
    assert b.y.tolist() == [0, 0, 0]
    for k, i in enumerate(ids.tolist()):
        x = graphs[i].x.double().numpy()
        np.testing.assert_allclose(b.rq[k].double().numpy(), np.diag(x.T @ blocks0[k] @ x), rtol=1e-5, atol=1e-5)
    assert packed.class_counts() == [3, 1]
    assert packed.collate([3, 0, 2]).ids.tolist() == [3, 0, 2]


def test_synthetic_set_is_smooth_for_normals_and_rough_for_anomalies():
    graphs = PackedGraphs(synthetic_anomaly_graphs(200, anomaly_fraction=0.2, seed=1))
    assert graphs.class_counts() == [160, 40]
    b = graphs.batch(torch.arange(200))
    xtx = torch.stack([(b.x[b.graph_ptr[k]:b.graph_ptr[k + 1]] ** 2).sum(0) for k in range(200)])
    smooth = (b.rq.sum(1) / xtx.sum(1))
    assert float(smooth[b.y == 1].mean()) > 1.5 * float(smooth[b.y == 0].mean())
    # the marginal category counts do not give the class away
    frac = xtx / xtx.sum(1, keepdim=True)
    assert abs(float(frac[b.y == 1].max(1).values.mean()) - float(frac[b.y == 0].max(1).values.mean())) < 0.08


# ---------------------------------------------------------------------------------------------------- baseline
def test_gin_layer_matches_dense_and_is_permutation_invariant():
    raw = synthetic_anomaly_graphs(10, min_nodes=5, max_nodes=8, seed=3)
    packed = PackedGraphs(raw)
    torch.manual_seed(0)
    model = GINClassifier(packed.num_features, 8, num_layers=2).eval()
    b = packed.batch(torch.arange(10))
    a = b.adjacency.to_dense()
    h1 = model.layers[0](b.x + a @ b.x)
    h2 = model.layers[1](h1 + a @ h1)
    pooled = [torch.stack([h[b.graph_ptr[k]:b.graph_ptr[k + 1]].sum(0) for k in range(10)]) for h in (h1, h2)]
    with torch.no_grad():
        torch.testing.assert_close(model(b.x, b.adjacency, b.graph_ptr), model.head(torch.cat(pooled, 1)),
                                   rtol=1e-5, atol=1e-5)
        perm = [torch.randperm(d.x.size(0)) for d in raw]
        shuffled = []
        for d, p in zip(raw, perm):
            inv = torch.empty_like(p)
            inv[p] = torch.arange(p.numel())
            shuffled.append(Data(x=d.x[p], edge_index=inv[d.edge_index], y=d.y))
        bs = PackedGraphs(shuffled).batch(torch.arange(10))
        torch.testing.assert_close(model(bs.x, bs.adjacency, bs.graph_ptr), model(b.x, b.adjacency, b.graph_ptr),
                                   rtol=1e-5, atol=1e-5)
        gcn = GINClassifier(packed.num_features, 8, conv="gcn").eval()
        assert gcn(b.x, b.adjacency, b.graph_ptr).shape == (10, 2)


# ---------------------------------------------------------------------------------------------------- training
def test_ties_reset_patience_counts_like_the_official_loop():
    es = TiesResetEarlyStopping(monitor="val_f1", mode="max", patience=2, restore_best=False)
    stops = [es.update({"val_f1": v}, step)[1] for step, v in enumerate([0.5, 0.5, 0.4, 0.4, 0.5, 0.3, 0.3, 0.3])]
    # the tie at step 1 and step 4 reset the count; it stops once 3 (> patience) validations in a row were worse
    assert stops == [False, False, False, False, False, False, False, True]
    assert es.best_step == 4


def test_rqgnn_and_gin_learn_the_synthetic_set_through_the_trainer():
    graphs = PackedGraphs(synthetic_anomaly_graphs(400, anomaly_fraction=0.15, seed=0))
    split = stratified_split(graphs.y, seed=0)
    torch.manual_seed(0)
    rq = train_graph_anomaly(RQGNN(graphs.num_features, 32, width=2, depth=3), graphs, split, epochs=30,
                             batch_size=64, seed=0)
    assert rq["epochs"] >= 1 and len(rq["history"]) == rq["epochs"]
    assert rq["by_auc"]["auc"] > 0.9 and rq["by_auc"]["test_auc"] > 0.75, rq["by_auc"]
    assert rq["class_counts"]["test"] == [51, 9]
    torch.manual_seed(0)
    gin = train_graph_anomaly(GINClassifier(graphs.num_features, 16), graphs, split, epochs=3, batch_size=64, seed=0)
    assert 0.0 <= gin["by_f1"]["test_auc"] <= 1.0


# ---------------------------------------------------------------------------------------------------- NCI files
def write_tu(folder, name):
    """Three graphs in the TU text format, labels -1/1 as in the NCI anticancer sets."""
    folder.mkdir(parents=True, exist_ok=True)
    edges = [(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4), (6, 7), (7, 6), (7, 8), (8, 7), (6, 8), (8, 6)]
    (folder / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (folder / f"{name}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n3\n3\n3\n")
    (folder / f"{name}_graph_labels.txt").write_text("-1\n1\n-1\n")
    (folder / f"{name}_node_labels.txt").write_text("0\n2\n1\n0\n0\n3\n1\n0\n")
    (folder / f"{name}_edge_labels.txt").write_text("".join("1\n" for _ in edges))


@pytest.mark.parametrize("name", ["MCF-7", "NCI-H23", "UACC257"])
def test_tu_converter_reads_nci_named_sets(tmp_path, name):
    from sciml.datasets.reader import GraphDataset
    from sciml.datasets.sources.tudataset import convert_tudataset, find_tu
    from sciml.datasets.writer import write_spec

    write_tu(tmp_path / name / "raw", name)
    for path in (tmp_path / name, tmp_path / name / "raw", tmp_path / name / "raw" / f"{name}_graph_labels.txt"):
        assert find_tu(path) == (tmp_path / name / "raw", name)
    out = tmp_path / f"{name}.h5"
    write_spec(out, convert_tudataset(tmp_path / name))
    ds = GraphDataset(out, "train")
    graphs = [ds[i] for i in range(len(ds))]
    ds.close()
    assert [g.num_nodes for g in graphs] == [3, 2, 3]
    assert [int(g.y) for g in graphs] == [0, 1, 0]                # -1 -> 0, 1 -> 1 (sorted renumbering)
    assert torch.equal(graphs[0].x, torch.eye(4)[[0, 2, 1]])      # one-hot node labels over 0..3
    assert graphs[2].edge_index.size(1) == 6
    packed = PackedGraphs(graphs)
    assert packed.y.tolist() == [0, 1, 0] and packed.class_counts() == [2, 1]
