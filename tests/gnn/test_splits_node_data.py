"""Node-classification data (sciml.gnn.node_data): feature normalisation, largest connected component, the random
splits (exact class counts, candidates respected, seeded), the official LCC index bug it avoids, and the
``node_graph`` data builder on a file the test writes and on the real Planetoid / Amazon / Coauthor data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.node_data import (fraction_node_split, largest_connected_component, node_graph, normalize_features,
                                 official_lcc_per_class_split, per_class_split, planetoid_random_split)

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

SHARED = Path(os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data")))


# ----------------------------------------------------------------------------------------- normalisation
def test_normalize_matches_pyg_and_sparse_equals_dense():
    from torch_geometric.transforms import NormalizeFeatures

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(20, 15, generator=g) < 0.3).float() * torch.randint(1, 4, (20, 15), generator=g)
    x[3] = 0.0                 # an all-zero row stays zero
    x[4] = 0.0
    x[4, 2] = 0.5              # a row summing to less than 1 is left as it is (clamp(min=1))
    ref = NormalizeFeatures()(Data(x=x.clone())).x
    out = normalize_features(x)
    torch.testing.assert_close(out, ref)
    assert out[4, 2].item() == 0.5
    for sparse in (x.to_sparse_csr(), x.to_sparse()):
        got = normalize_features(sparse)
        assert got.layout == sparse.layout
        torch.testing.assert_close(got.to_dense(), ref)
    shifted = x - 1.0          # negative values: PyG shifts by the global minimum first
    torch.testing.assert_close(normalize_features(shifted), NormalizeFeatures()(Data(x=shifted.clone())).x)
    with pytest.raises(ShapeError, match="negative"):
        normalize_features(shifted.to_sparse_csr())


# ----------------------------------------------------------------------------------------- connected components
def test_largest_connected_component_by_hand():
    # components: {0}, {1, 2, 3} (directed edges only: weakly connected), {4, 5}, {6, 7, 8}
    ei = torch.tensor([[1, 3, 4, 6, 7], [2, 2, 5, 7, 8]])
    torch.testing.assert_close(largest_connected_component(ei, 9), torch.tensor([1, 2, 3]))  # tie: smallest id
    ei2 = torch.cat([ei, torch.tensor([[8], [6]])], dim=1)
    torch.testing.assert_close(largest_connected_component(torch.cat([ei2, torch.tensor([[5], [8]])], 1), 9),
                               torch.tensor([4, 5, 6, 7, 8]))
    torch.testing.assert_close(largest_connected_component(torch.zeros(2, 0, dtype=torch.long), 3),
                               torch.tensor([0]))
    with pytest.raises(ShapeError, match="outside"):
        largest_connected_component(ei, 5)


def test_largest_connected_component_matches_networkx():
    import networkx as nx

    g = torch.Generator().manual_seed(1)
    n = 300
    ei = torch.randint(0, n, (2, 220), generator=g)
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(ei.T.tolist())
    ref = sorted(max(nx.connected_components(G), key=len))
    assert largest_connected_component(ei, n).tolist() == ref


# ----------------------------------------------------------------------------------------- splits
def labels(n=400, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (n,), generator=g)


def test_planetoid_random_split_counts_and_seeding():
    y = labels(3000, 7)
    state = torch.get_rng_state()
    train, val, test = planetoid_random_split(y, seed=3)
    assert torch.equal(torch.get_rng_state(), state)             # the global RNG is not touched
    assert [int((y[train] == c).sum()) for c in range(7)] == [20] * 7
    assert int(val.sum()) == 500 and int(test.sum()) == 1000
    assert not bool((train & val).any() | (train & test).any() | (val & test).any())
    again = planetoid_random_split(y, seed=3)
    other = planetoid_random_split(y, seed=4)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    assert not torch.equal(train, other[0])
    with pytest.raises(ConfigError, match="fewer than num_val"):
        planetoid_random_split(y[:300], seed=0)
    with pytest.raises(ConfigError, match="class 6 has"):
        planetoid_random_split(torch.cat([y[y != 6], torch.tensor([6])]), seed=0)


def test_per_class_split_counts_within_candidates():
    y = labels(1200, 5)
    nodes = torch.arange(100, 1200, 2)                           # candidates: even ids from 100
    train, val, test = per_class_split(y, seed=0, nodes=nodes)
    inside = torch.zeros(1200, dtype=torch.bool)
    inside[nodes] = True
    for mask in (train, val, test):
        assert not bool((mask & ~inside).any())
    assert [int((y[train] == c).sum()) for c in range(5)] == [20] * 5
    assert [int((y[val] == c).sum()) for c in range(5)] == [30] * 5
    assert torch.equal(train | val | test, inside)               # every other candidate is a test node
    assert not bool((train & val).any() | (train & test).any() | (val & test).any())


def official_per_class_split_with_lcc_bug(y, lcc, g):
    """divelab/DeeperGNN random_coauthor_amazon_splits, for reference: positions inside the LCC used as node ids."""
    indices = []
    for c in range(int(y.max()) + 1):
        index = (y[lcc] == c).nonzero().view(-1)
        indices.append(index[torch.randperm(index.size(0), generator=g)])
    return torch.cat([i[:20] for i in indices]), torch.cat([i[20:50] for i in indices])


def test_lcc_split_is_correct_where_the_official_code_is_not():
    n = 800
    y = labels(n, 4, seed=2)
    # a ring over the odd ids 201..799 (the LCC: 300 nodes), everything else isolated
    lcc_ids = torch.arange(201, n, 2)
    ei = torch.stack([lcc_ids, lcc_ids.roll(1)])
    lcc = largest_connected_component(ei, n)
    torch.testing.assert_close(lcc, lcc_ids)
    train, val, test = per_class_split(y, seed=0, nodes=lcc)
    in_lcc = torch.zeros(n, dtype=torch.bool)
    in_lcc[lcc] = True
    assert bool(in_lcc[train].all()) and bool(in_lcc[val].all()) and bool(in_lcc[test].all())
    assert [int((y[train] == c).sum()) for c in range(4)] == [20] * 4
    assert [int((y[val] == c).sum()) for c in range(4)] == [30] * 4
    bug_train, bug_val = official_per_class_split_with_lcc_bug(y, lcc, torch.Generator().manual_seed(0))
    assert not bool(in_lcc[bug_train].all())                     # the official code selects nodes outside the LCC
    assert int(bug_train.max()) < lcc.numel()                   # and only ids below |LCC|
    # official_lcc_per_class_split replicates it, draw for draw
    o_train, o_val, o_test = official_lcc_per_class_split(y, lcc, seed=0)
    assert torch.equal(o_train, torch.zeros(n, dtype=torch.bool).index_fill_(0, bug_train, True))
    assert torch.equal(o_val, torch.zeros(n, dtype=torch.bool).index_fill_(0, bug_val, True))
    assert torch.equal(o_train | o_val | o_test, torch.arange(n) < lcc.numel())


# ----------------------------------------------------------------------------------------- the data builder
def write_graph(path, *, masks=True, loops=False):
    from sciml.datasets.writer import write_dataset

    g = torch.Generator().manual_seed(5)
    n = 260
    y = torch.arange(n) % 3
    x = (torch.rand(n, 50, generator=g) < 0.05).float()
    src = torch.arange(1, n - 10)                                # chain 1..250; 0 and 251..259 outside the LCC
    ei = torch.cat([torch.stack([src, src + 1]), torch.stack([src + 1, src])], dim=1)
    ei = torch.cat([ei, torch.tensor([[n - 3], [n - 2]])], dim=1)
    kw = {}
    if masks:
        kw = dict(train_mask=torch.arange(n) < 30, val_mask=(torch.arange(n) >= 30) & (torch.arange(n) < 60),
                  test_mask=torch.arange(n) >= 60)
    write_dataset(path, "graphs", {"train": [Data(x=x, edge_index=ei, y=y, **kw)]}, source="test")
    return x, ei, y


def test_node_graph_builder_options(tmp_path):
    path = tmp_path / "g.h5"
    x, ei, y = write_graph(path)
    pub = node_graph(path)                                       # public masks, normalised, sparse (5 % dense)
    assert pub.x.layout == torch.sparse_csr
    torch.testing.assert_close(pub.x.to_dense(), normalize_features(x))
    assert int(pub.train_mask.sum()) == 30 and int(pub.val_mask.sum()) == 30
    dense = node_graph(path, normalize=False, sparse_features=False)
    assert dense.x.layout == torch.strided and torch.equal(dense.x, x)
    rnd = node_graph(path, split="random", seed=1, num_val=40, num_test=100)
    assert [int((rnd.y[rnd.train_mask] == c).sum()) for c in range(3)] == [20] * 3
    assert int(rnd.val_mask.sum()) == 40 and int(rnd.test_mask.sum()) == 100
    assert not torch.equal(rnd.train_mask, node_graph(path, split="random", seed=2, num_val=40,
                                                      num_test=100).train_mask)
    pc = node_graph(path, split="per_class", lcc=True, seed=0)
    assert pc.num_nodes == 250 and pc.edge_index.max() < 250   # the LCC, relabelled
    assert [int((pc.y[pc.val_mask] == c).sum()) for c in range(3)] == [30] * 3
    assert int((pc.train_mask | pc.val_mask | pc.test_mask).sum()) == 250
    off = node_graph(path, split="per_class", lcc=True, official_lcc_indexing=True, seed=0)
    assert off.num_nodes == 260                                  # the graph is not reduced
    assert torch.equal(off.train_mask, official_lcc_per_class_split(off.y, torch.arange(1, 251), seed=0)[0])
    with pytest.raises(ConfigError, match="official_lcc_indexing"):
        node_graph(path, split="per_class", official_lcc_indexing=True)
    fr = node_graph(path, split="fraction", split_index=3)
    for got, want in zip((fr.train_mask, fr.val_mask, fr.test_mask), fraction_node_split(260, 3)):
        assert torch.equal(got, want)


def test_node_graph_errors(tmp_path):
    path = tmp_path / "nomask.h5"
    write_graph(path, masks=False)
    with pytest.raises(ConfigError, match="lacks train_mask"):
        node_graph(path)
    with pytest.raises(ConfigError, match="out of range"):
        node_graph(path, split="random", graph=3)
    with pytest.raises(ConfigError, match="split must be"):
        node_graph(path, split="fixed")


def test_node_graph_config_trains_dagnn(tmp_path):
    """`data: {name: node_graph, path: ...}` + DAGNN through the `sciml train` path."""
    from sciml.config import load_config
    from sciml.experiment import build

    path = tmp_path / "g.h5"
    write_graph(path)
    cfg = load_config({"model": {"name": "dagnn", "K": 3},
                       "data": {"name": "node_graph", "path": str(path), "split": "per_class", "seed": 2},
                       "task": {"name": "node_classification"},
                       "trainer": {"max_epochs": 4, "progress": "none", "lr": 0.01}})
    exp = build(cfg, handle_signals=False)
    assert exp.model.lin1.in_features == 50 and exp.model.lin2.out_features == 3
    assert exp.train_data[0].x.layout == torch.sparse_csr
    summary = exp.trainer.fit()
    assert summary["epochs"] == 4 and "val_loss" in summary["last_val"]


# ----------------------------------------------------------------------------------------- real data
def convert(kind, raw, out):
    from sciml.datasets.sources import CONVERTERS
    from sciml.datasets.writer import write_spec

    if not raw.exists():
        pytest.skip(f"needs the shared data at {raw}")
    write_spec(out, CONVERTERS.get(kind)(raw))
    return out


def test_real_cora_public_and_random(tmp_path):
    path = convert("planetoid", SHARED / "planetoid" / "Cora", tmp_path / "cora.h5")
    pub = node_graph(path)
    assert pub.num_nodes == 2708 and pub.x.shape == (2708, 1433) and pub.x.layout == torch.sparse_csr
    assert [int(m.sum()) for m in (pub.train_mask, pub.val_mask, pub.test_mask)] == [140, 500, 1000]
    rows = pub.x.to_dense().sum(1)
    assert torch.allclose(rows[rows > 0], torch.ones(int((rows > 0).sum())))
    rnd = node_graph(path, split="random", seed=0)
    assert [int((rnd.y[rnd.train_mask] == c).sum()) for c in range(7)] == [20] * 7


def test_real_amazon_photo_lcc(tmp_path):
    path = convert("npz_graph", SHARED / "amazon_coauthor" / "amazon-photo.zip", tmp_path / "photo.h5")
    data = node_graph(path, split="per_class", lcc=True, seed=0)
    assert data.num_nodes == 7487                                # Shchur et al.'s LCC of Amazon Photo
    assert data.x.layout == torch.strided                        # 35 % non-zero: kept dense
    assert [int((data.y[data.train_mask] == c).sum()) for c in range(8)] == [20] * 8
    assert [int((data.y[data.val_mask] == c).sum()) for c in range(8)] == [30] * 8
    assert int(data.test_mask.sum()) == 7487 - 8 * 50


@pytest.mark.slow
def test_real_coauthor_cs(tmp_path):
    path = convert("npz_graph", SHARED / "amazon_coauthor" / "coauthor-cs.zip", tmp_path / "cs.h5")
    data = node_graph(path, split="per_class", seed=0)
    assert data.x.shape == (18333, 6805) and data.x.layout == torch.sparse_csr
    assert [int((data.y[data.train_mask] == c).sum()) for c in range(15)] == [20] * 15
