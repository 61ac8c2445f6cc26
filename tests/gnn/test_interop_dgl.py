"""sciml.gnn.interop and the `dgl` converter against real DGL (the optional extra `sciml[dgl]`: dgl==2.1.0, imported
through `import_dgl`, with the graphbolt stub on torch >= 2.3).

References are independent of the code under test: the edge lists and feature tensors the tests build by hand,
DGL's own accessors (`g.edges`, `batch_num_nodes`, `dgl.unbatch`, `dgl.load_graphs`), and DGL's GraphConv /
SAGEConv as the peer implementation of our GCNConv / SAGEConv. Tests that need DGL skip with a reason where it is
not installed; the "DGL is absent" behaviour is checked in a subprocess with `sys.modules["dgl"] = None` and runs
everywhere.
"""
import importlib.util
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

HAVE_DGL = importlib.util.find_spec("dgl") is not None
needs_dgl = pytest.mark.skipif(not HAVE_DGL, reason="DGL is not installed (optional extra: pip install "
                                                    "'sciml[dgl]', i.e. dgl==2.1.0 packaging pandas)")


@pytest.fixture(scope="module")
def dgl():
    from sciml.gnn.interop import DGLCompatibilityWarning, import_dgl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DGLCompatibilityWarning)
        return import_dgl()


# ------------------------------------------------------------------------------------------------ test graphs
# Unsorted edge order, two self-loops (one node with two), a multi-edge (0->1 twice), an isolated node (5).
SRC = [3, 0, 1, 0, 2, 2, 4, 0, 2]
DST = [1, 1, 2, 1, 2, 2, 3, 4, 0]
N = 6


def _graph(dgl, src=SRC, dst=DST, n=N, *, seed=0, idtype=torch.int64):
    gen = torch.Generator().manual_seed(seed)
    g = dgl.graph((torch.tensor(src), torch.tensor(dst)), num_nodes=n, idtype=idtype)
    e = len(src)
    g.ndata["feat"] = torch.randn(n, 4, generator=gen)
    g.ndata["label"] = torch.randint(0, 3, (n,), generator=gen)
    g.ndata["train_mask"] = torch.rand(n, generator=gen) > 0.5
    g.ndata["pos"] = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    g.edata["feat"] = torch.randn(e, 2, generator=gen)
    g.edata["weight"] = torch.rand(e, generator=gen, dtype=torch.float64)
    g.edata["type"] = torch.randint(0, 5, (e, 1), generator=gen, dtype=torch.int32)
    return g


def _graphs(dgl):
    """Three graphs: the one above, one with a single node and no edges, one with as many nodes as edges."""
    return [_graph(dgl, seed=0), _graph(dgl, [], [], 1, seed=1), _graph(dgl, [0, 1, 2], [1, 2, 0], 3, seed=2)]


def _assert_same_dgl(a, b):
    """Equal DGL graphs: nodes, edges in edge-id order, batch boundaries, every feature with dtype and shape."""
    assert a.num_nodes() == b.num_nodes() and a.num_edges() == b.num_edges()
    for x, y in zip(a.edges(order="eid"), b.edges(order="eid")):
        assert torch.equal(x.long(), y.long())
    assert torch.equal(a.batch_num_nodes().long(), b.batch_num_nodes().long())
    assert torch.equal(a.batch_num_edges().long(), b.batch_num_edges().long())
    for da, db in ((a.ndata, b.ndata), (a.edata, b.edata)):
        assert set(da.keys()) == set(db.keys())
        for k in da.keys():
            assert da[k].dtype == db[k].dtype and da[k].shape == db[k].shape and torch.equal(da[k], db[k]), k


def _assert_matches_source(data, g):
    """A converted ``Data`` against the raw DGL graph, feature by feature under the documented names."""
    src, dst = g.edges(order="eid")
    assert data.edge_index.dtype == torch.long
    assert torch.equal(data.edge_index, torch.stack([src.long(), dst.long()]))
    assert data.num_nodes == g.num_nodes()
    expected = {"x": g.ndata["feat"], "y": g.ndata["label"], "train_mask": g.ndata["train_mask"],
                "pos": g.ndata["pos"], "edge_attr": g.edata["feat"], "edge_weight": g.edata["weight"],
                "edge_type": g.edata["type"]}
    for k, v in expected.items():
        assert data[k].dtype == v.dtype and torch.equal(data[k], v), k


# ------------------------------------------------------------------------------------------------ round trips
@needs_dgl
def test_single_graph_round_trip_through_pyg(dgl):
    from sciml.gnn.interop import from_dgl, to_dgl
    g = _graph(dgl)
    data = from_dgl(g)
    # against the hand-written lists: order, the self-loops at 2 (twice), the multi-edge 0->1, isolated node 5
    assert data.edge_index.tolist() == [SRC, DST]
    assert data.num_nodes == N and type(data).__name__ == "Data"
    _assert_matches_source(data, g)
    back = to_dgl(data)
    _assert_same_dgl(g, back)
    assert back.edata["weight"].dtype == torch.float64 and back.ndata["train_mask"].dtype == torch.bool


@needs_dgl
def test_subgraph_ids_and_homogenised_types_round_trip(dgl, tmp_path):
    """DGL's reserved names (NID/EID/NTYPE/ETYPE = '_ID'/'_TYPE', set by subgraphs, samplers and
    to_homogeneous) survive, under PyG's names for node ids and types."""
    from sciml.gnn.interop import dgl_to_h5, from_dgl, h5_to_dgl, to_dgl
    sub = dgl.node_subgraph(_graph(dgl), [0, 2, 3, 4])
    assert set(sub.ndata.keys()) >= {"_ID", "feat"} and "_ID" in sub.edata.keys()
    data = from_dgl(sub)
    assert torch.equal(data.n_id, torch.tensor([0, 2, 3, 4])) and torch.equal(data.edge__ID, sub.edata["_ID"])
    _assert_same_dgl(to_dgl(data), sub)
    hg = dgl.heterograph({("a", "r", "b"): ([0, 1], [1, 0]), ("b", "s", "a"): ([0], [0])},
                         num_nodes_dict={"a": 2, "b": 2})
    homo = dgl.to_homogeneous(hg)
    d = from_dgl(homo)
    assert d.node_type.tolist() == [0, 0, 1, 1] and d.edge__TYPE.tolist() == [0, 0, 1]
    _assert_same_dgl(to_dgl(d), homo)
    (back,), _ = h5_to_dgl(dgl_to_h5(sub, tmp_path / "sub.h5"))
    _assert_same_dgl(back, sub)


@needs_dgl
def test_int32_graph_and_idtype(dgl):
    from sciml.gnn.interop import from_dgl, to_dgl
    g = _graph(dgl, idtype=torch.int32)
    data = from_dgl(g)
    assert data.edge_index.dtype == torch.long and data.edge_index.tolist() == [SRC, DST]
    back = to_dgl(data, idtype=torch.int32)
    assert back.idtype == torch.int32
    _assert_same_dgl(g, back)


@needs_dgl
def test_batched_graph_round_trip_keeps_boundaries(dgl):
    from torch_geometric.data import Batch

    from sciml.gnn.interop import from_dgl, to_dgl
    parts = _graphs(dgl)
    bg = dgl.batch(parts)
    labels = {"glabel": torch.tensor([2, 0, 1]), "target": torch.randn(3, 2)}
    batch = from_dgl(bg, labels)
    assert isinstance(batch, Batch) and batch.num_graphs == 3
    assert batch.ptr.tolist() == [0, 6, 7, 10]
    assert batch.batch.tolist() == [0] * 6 + [1] + [2] * 3
    assert torch.equal(batch.glabel, labels["glabel"]) and torch.equal(batch.target, labels["target"])
    for i, (d, g) in enumerate(zip(batch.to_data_list(), parts)):
        _assert_matches_source(d, g)  # local node ids per graph
        assert torch.equal(d.glabel, labels["glabel"][i:i + 1])
    back, graph_data = to_dgl(batch, with_graph_data=True)
    assert back.batch_size == 3
    _assert_same_dgl(bg, back)
    for a, b in zip(dgl.unbatch(back), parts):
        _assert_same_dgl(a, b)
    assert set(graph_data) == {"glabel", "target"}
    assert torch.equal(graph_data["glabel"], labels["glabel"]) and torch.equal(graph_data["target"], labels["target"])
    with pytest.raises(ValueError, match="with_graph_data=True"):
        to_dgl(batch)
    # batch=True on a single graph and batch=False on a batch
    assert isinstance(from_dgl(parts[0], batch=True), Batch)
    flat = from_dgl(bg, batch=False)
    assert type(flat).__name__ == "Data" and flat.num_nodes == 10 and flat.edge_index.size(1) == 12


@needs_dgl
def test_batch_built_by_pyg_converts_with_boundaries(dgl):
    """A Batch collated by PyG from Data objects (not from DGL) gives DGL's batch counts and per-graph edges."""
    from torch_geometric.data import Batch, Data

    from sciml.gnn.interop import to_dgl
    g1 = Data(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 2, 2], [1, 1, 2]]))
    g2 = Data(x=torch.randn(2, 2), edge_index=torch.tensor([[1], [0]]))
    g = to_dgl(Batch.from_data_list([g1, g2]))
    assert g.batch_num_nodes().tolist() == [3, 2] and g.batch_num_edges().tolist() == [3, 1]
    src, dst = g.edges(order="eid")
    assert src.tolist() == [0, 2, 2, 4] and dst.tolist() == [1, 1, 2, 3]
    a, b = dgl.unbatch(g)
    assert torch.equal(a.ndata["feat"], g1.x) and torch.equal(b.ndata["feat"], g2.x)


@needs_dgl
def test_round_trip_through_sciml_h5(dgl, tmp_path):
    from sciml.datasets.reader import open_dataset
    from sciml.datasets.schema import validate_file
    from sciml.gnn.interop import dgl_to_h5, h5_to_dgl
    parts = _graphs(dgl)
    labels = {"glabel": torch.tensor([2, 0, 1])}
    # a batched graph plus a plain one: 3 records
    path = dgl_to_h5([dgl.batch(parts[:2]), parts[2]], tmp_path / "g.h5", labels)
    assert validate_file(path) == []
    ds = open_dataset(path)
    assert len(ds) == 3
    for i, g in enumerate(parts):
        _assert_matches_source(ds[i], g)
        assert torch.equal(ds[i].glabel, labels["glabel"][i:i + 1])
    graphs, graph_data = h5_to_dgl(path)
    assert len(graphs) == 3 and torch.equal(graph_data["glabel"], labels["glabel"])
    for a, b in zip(graphs, parts):
        _assert_same_dgl(a, b)
    bg, _ = h5_to_dgl(path, batch=True)
    _assert_same_dgl(bg, dgl.batch(parts))


@needs_dgl
def test_name_collisions_and_bad_input_are_errors(dgl):
    from sciml.gnn.interop import from_dgl, to_dgl
    g = dgl.graph(([0], [1]))
    g.ndata["feat"] = torch.zeros(2, 1)
    g.ndata["x"] = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="'x'"):
        from_dgl(g)
    h = dgl.graph(([0], [1]))
    h.ndata["edge_thing"] = torch.zeros(2)
    with pytest.raises(ValueError, match="reserved for edge"):
        from_dgl(h)
    d = from_dgl(h, node_aliases={"edge_thing": "thing"})
    assert "thing" in d.keys()
    assert list(to_dgl(d, node_aliases={"edge_thing": "thing"}).ndata.keys()) == ["edge_thing"]
    # a name the inverse mapping would change: ndata "x" would come back as "feat"
    p = dgl.graph(([0], [1]))
    p.ndata["x"] = torch.ones(2, 1)
    with pytest.raises(ValueError, match="converts back"):
        from_dgl(p)
    kept = from_dgl(p, node_aliases={})  # e.g. a graph made by PyG's to_dgl
    assert torch.equal(kept.x, p.ndata["x"])
    assert list(to_dgl(kept, node_aliases={}).ndata.keys()) == ["x"]
    h.ndata["_private"] = torch.zeros(2)
    with pytest.raises(ValueError, match="starting with '_'"):
        from_dgl(h, node_aliases={"edge_thing": "thing"})
    hetero = dgl.heterograph({("a", "r", "b"): ([0], [0])})
    with pytest.raises(ValueError, match="homogeneous"):
        from_dgl(hetero)
    with pytest.raises(ValueError, match="rows"):
        from_dgl(dgl.graph(([0], [1])), {"y": torch.zeros(2)})
    with pytest.raises(TypeError, match="Data"):
        to_dgl(g)


# ------------------------------------------------------------------------------------------------ layers vs DGL
def _symmetric_graph(seed, n=30, m=70):
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(0, n, (m,), generator=gen)
    d = torch.randint(0, n, (m,), generator=gen)
    keep = s != d
    s, d = s[keep], d[keep]
    s, d = torch.cat([s, d, s[:3]]), torch.cat([d, s, d[:3]])  # + a few multi-edges (kept symmetric)
    s, d = torch.cat([s, d[-3:]]), torch.cat([d, s[-3:]])
    return s, d, n


@needs_dgl
def test_graphconv_matches_our_gcnconv(dgl):
    from dgl.nn import GraphConv

    from sciml.gnn import GCNConv
    from sciml.gnn.interop import from_dgl
    torch.manual_seed(0)
    s, d, n = _symmetric_graph(1)
    g = dgl.graph((s, d), num_nodes=n)
    g.ndata["feat"] = torch.randn(n, 8)
    theirs = GraphConv(8, 5, norm="both", weight=True, bias=True)
    torch.nn.init.normal_(theirs.bias)
    ours = GCNConv(8, 5)
    with torch.no_grad():
        ours.lin.weight.copy_(theirs.weight.t())  # DGL: x @ W with W [in, out]; ours: Linear, [out, in]
        ours.bias.copy_(theirs.bias)
    data = from_dgl(g)  # no self-loops: our GCNConv adds them, DGL's GraphConv needs dgl.add_self_loop
    x = data.x.clone().requires_grad_(True)
    xd = g.ndata["feat"].clone().requires_grad_(True)
    out_ours = ours(x, data.edge_index)
    out_theirs = theirs(dgl.add_self_loop(g), xd)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)
    (out_ours ** 2).sum().backward()
    (out_theirs ** 2).sum().backward()
    torch.testing.assert_close(x.grad, xd.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.lin.weight.grad, theirs.weight.grad.t(), atol=1e-4, rtol=1e-5)


@needs_dgl
@pytest.mark.parametrize("in_ch,out_ch", [(8, 4), (4, 8)])  # both orders of our SAGEConv's projection
def test_sageconv_mean_matches_ours_on_batched_directed_graph(dgl, in_ch, out_ch):
    from dgl.nn import SAGEConv as DGLSAGEConv

    from sciml.gnn import SAGEConv
    from sciml.gnn.interop import from_dgl
    torch.manual_seed(0)
    parts = []
    for seed in range(3):  # directed, with self-loops, multi-edges and nodes without in-edges
        gen = torch.Generator().manual_seed(seed)
        n = 12 + seed
        s, d = torch.randint(0, n, (25,), generator=gen), torch.randint(0, n - 2, (25,), generator=gen)
        s, d = torch.cat([s, s[:4], torch.tensor([3])]), torch.cat([d, d[:4], torch.tensor([3])])
        g = dgl.graph((s, d), num_nodes=n)
        g.ndata["feat"] = torch.randn(n, in_ch, generator=gen)
        parts.append(g)
    bg = dgl.batch(parts)
    theirs = DGLSAGEConv(in_ch, out_ch, "mean")
    torch.nn.init.normal_(theirs.fc_self.bias)
    ours = SAGEConv(in_ch, out_ch)
    with torch.no_grad():  # DGL 2.1: fc_neigh (no bias), fc_self (with the bias) -> PyG-style lin_l (+ bias), lin_r
        ours.lin_l.weight.copy_(theirs.fc_neigh.weight)
        ours.lin_l.bias.copy_(theirs.fc_self.bias)
        ours.lin_r.weight.copy_(theirs.fc_self.weight)
    batch = from_dgl(bg)
    out_theirs = theirs(bg, bg.ndata["feat"])
    out_ours = ours(batch.x, batch.edge_index)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-5, rtol=1e-5)
    # the nodes without in-edges get only the root term and the bias in both
    no_in = (bg.in_degrees() == 0).nonzero().view(-1)
    assert no_in.numel() >= 3
    torch.testing.assert_close(out_ours[no_in], ours.lin_r(batch.x[no_in]) + ours.lin_l.bias, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------ converter / CLI
@needs_dgl
def test_cli_convert_dgl_file(dgl, tmp_path, capsys):
    from sciml.cli.main import main
    from sciml.datasets.reader import open_dataset
    from sciml.datasets.schema import validate_file
    parts = _graphs(dgl)
    labels = {"glabel": torch.tensor([2, 0, 1]), "score": torch.randn(3, 2, dtype=torch.float64)}
    dgl.save_graphs(str(tmp_path / "graphs.bin"), parts, labels)
    loaded, _ = dgl.load_graphs(str(tmp_path / "graphs.bin"))
    out = tmp_path / "out.h5"
    assert main(["data", "convert", "dgl", str(tmp_path / "graphs.bin"), str(out), "chunk=2",
                 "--progress", "none"]) == 0
    assert validate_file(out) == []
    ds = open_dataset(out)
    assert len(ds) == 3
    for i, g in enumerate(loaded):
        _assert_matches_source(ds[i], g)
        assert torch.equal(ds[i].glabel, labels["glabel"][i:i + 1])
        assert ds[i].score.dtype == torch.float64 and torch.equal(ds[i].score, labels["score"][i:i + 1])
    # the node labels are `y` already: storing a graph label as `y` too is refused, naming both
    capsys.readouterr()
    assert main(["data", "convert", "dgl", str(tmp_path / "graphs.bin"), str(tmp_path / "bad.h5"),
                 "label_key=glabel", "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert "graphs.bin" in err and "'y'" in err and "label" in err
    assert not (tmp_path / "bad.h5").exists()


@needs_dgl
def test_convert_dgl_labels_shards_and_folders(dgl, tmp_path):
    from sciml.datasets.cli import convert
    from sciml.datasets.reader import open_dataset
    from sciml.datasets.sources import CONVERTERS
    from sciml.errors import DataFormatError
    from sciml.gnn.interop import h5_to_dgl
    gs = []
    for i in range(5):  # no node labels, so the graph label may become `y`
        g = dgl.graph((torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1])), num_nodes=2 + i)
        g.ndata["feat"] = torch.full((2 + i, 2), float(i))
        gs.append(g)
    folder = tmp_path / "mydata"
    folder.mkdir()
    dgl.save_graphs(str(folder / "mydata_dgl_graph.bin"), gs, {"glabel": torch.arange(5) * 10})
    convert("dgl", folder, tmp_path / "all.h5", ["label_key=glabel"], progress="none")
    ds = open_dataset(tmp_path / "all.h5")
    assert [int(ds[i].y) for i in range(5)] == [0, 10, 20, 30, 40]
    assert [ds[i].num_nodes for i in range(5)] == [2, 3, 4, 5, 6]
    graphs, gd = h5_to_dgl(tmp_path / "all.h5")
    assert torch.equal(gd["y"], torch.arange(5) * 10)
    for a, b in zip(graphs, gs):
        _assert_same_dgl(a, b)
    # shards: contiguous blocks [0, 2) and [2, 5)
    fn = CONVERTERS.get("dgl")
    for shard, ids in (((0, 2), [0, 1]), ((1, 2), [2, 3, 4])):
        spec = fn(folder, label_key="glabel", shard=shard)
        assert [int(d.y) for d in spec.splits["train"]] == [10 * i for i in ids]
    with pytest.raises(DataFormatError, match="no such input"):
        fn(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no DGL graph file"):
        fn(tmp_path / "empty")
    (tmp_path / "junk.bin").write_bytes(b"not a dgl file at all" * 10)
    with pytest.raises(DataFormatError, match="junk.bin"):
        fn(tmp_path / "junk.bin")


# ------------------------------------------------------------------------------------------------ import helper
_FRESH = r"""
import importlib.util, json, os, sys, warnings
out = {}
import sciml.gnn, sciml.gnn.interop, sciml.datasets.sources
from sciml.datasets.sources import CONVERTERS
from sciml.gnn.interop import DGLCompatibilityWarning, dgl_available, from_dgl, import_dgl
CONVERTERS.get("dgl")
out["core_imported_dgl"] = "dgl" in sys.modules

# 1. DGL hidden (installed or not): every entry point says what to install
sys.modules["dgl"] = None
out["available_when_hidden"] = dgl_available()
out["errors"] = []
for call in (import_dgl, lambda: from_dgl(object()), lambda: CONVERTERS.get("dgl")(sys.argv[1])):
    try:
        call()
    except ImportError as err:
        out["errors"].append(str(err))
    else:
        out["errors"].append(None)
del sys.modules["dgl"]

# 2. DGL installed: the stub only without a graphbolt build for this torch, one warning, the same module each time
if importlib.util.find_spec("dgl") is not None:
    import torch
    ver = torch.__version__.split("+")[0]
    pkg = os.path.dirname(importlib.util.find_spec("dgl").origin)
    out["has_build"] = os.path.exists(os.path.join(pkg, "graphbolt", f"libgraphbolt_pytorch_{ver}.so"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = import_dgl()
        b = import_dgl()
        import dgl
        c = import_dgl()
    out["same_module"] = a is b is c is dgl
    out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, DGLCompatibilityWarning)]
    stub = sys.modules["dgl.graphbolt"]
    out["stubbed"] = bool(getattr(stub, "__sciml_stub__", False))
    try:
        stub.SomeSampler
        out["stub_error"] = None
    except AttributeError as err:
        out["stub_error"] = str(err)
    out["torch_version"] = ver
    out["num_edges"] = dgl.graph(([0, 1], [1, 2])).num_edges()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """One fresh interpreter (imports cost seconds): DGL hidden first, then imported for real."""
    path = tmp_path_factory.mktemp("dgl") / "g.bin"
    path.write_bytes(b"x")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONSAFEPATH="1")
    res = subprocess.run([sys.executable, "-c", _FRESH, str(path)], capture_output=True, text=True, timeout=300,
                         env=env, cwd=os.path.dirname(__file__))
    assert res.returncode == 0, res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_core_never_imports_dgl_and_absent_dgl_is_a_clear_error(fresh):
    assert fresh["core_imported_dgl"] is False
    assert fresh["available_when_hidden"] is False
    assert len(fresh["errors"]) == 3 and all(fresh["errors"]), fresh["errors"]
    for msg in fresh["errors"]:
        assert "pip install 'sciml[dgl]'" in msg, msg
    assert "'dgl' converter" in fresh["errors"][2]


@needs_dgl
def test_import_helper_stubs_graphbolt_only_when_needed_and_warns_once(fresh):
    assert fresh["same_module"] is True and fresh["num_edges"] == 2
    assert fresh["stubbed"] == (not fresh["has_build"])
    assert len(fresh["warnings"]) == (0 if fresh["has_build"] else 1), fresh["warnings"]
    if not fresh["has_build"]:
        msg = fresh["warnings"][0]
        assert "graphbolt" in msg and fresh["torch_version"] in msg and "docs/dgl.md" in msg
        assert "no graphbolt build" in fresh["stub_error"]


@needs_dgl
@pytest.mark.slow
def test_import_helper_falls_back_to_the_stub_when_graphbolt_fails_to_import(tmp_path):
    """A graphbolt library present for the installed torch that still fails to import (wrong ABI, or graphbolt
    needing `torchdata.datapipes`) also gets the stub: simulated by pointing the helper at the torch-2.2.1 build."""
    code = r"""
import glob, os, sys, warnings, importlib.util
import sciml.gnn.interop as interop
pkg = os.path.dirname(importlib.util.find_spec("dgl").origin)
builds = sorted(glob.glob(os.path.join(pkg, "graphbolt", "libgraphbolt_pytorch_*")))
if not builds:
    print("NO-BUILDS")
    raise SystemExit(0)
interop._graphbolt_library_name = lambda version: os.path.basename(builds[-1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dgl = interop.import_dgl()
msgs = [str(w.message) for w in caught if issubclass(w.category, interop.DGLCompatibilityWarning)]
assert len(msgs) == 1 and "importing dgl.graphbolt failed" in msgs[0], msgs
assert getattr(sys.modules["dgl.graphbolt"], "__sciml_stub__", False)
print("EDGES", dgl.graph(([0, 1], [1, 2])).num_edges())
"""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONSAFEPATH="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    if "NO-BUILDS" in res.stdout:
        pytest.skip("this DGL ships no graphbolt library at all")
    assert "EDGES 2" in res.stdout
