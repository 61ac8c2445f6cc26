"""Converters (sciml.datasets.sources): real files in ../shared/data against independent loaders (PyG, ase,
scipy, torch, a naive parse), and small files the tests write themselves."""
from __future__ import annotations

import collections
import os
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import torch

from sciml.datasets.records import FieldSample, TimeSeries
from sciml.datasets.sources import CONVERTERS
from sciml.errors import DataFormatError
from sciml.testing import with_package

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def needs(sub: str):
    return pytest.mark.skipif(not (DATA / sub).exists(), reason=f"real data {DATA / sub} not present")


def convert(name, path, **kw):
    return CONVERTERS.get(name)(path, **kw)


def only(spec, split="train"):
    recs = list(spec.splits[split])
    assert len(recs) == 1
    return recs[0]


def same_graph(ref, got):
    assert set(ref.keys()) == set(got.keys()), (ref, got)
    for k in ref.keys():
        a, b = ref[k], got[k]
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), k
        else:
            assert a == b, k
    assert ref.num_nodes == got.num_nodes


def test_registry_names_and_signatures():
    import inspect
    assert set(CONVERTERS.names()) == {"planetoid", "npz_graph", "tudataset", "uea_ts", "ase", "neuraloperator_pt",
                                       "matlab", "npz_fields", "dgl"}
    from sciml.config.schema import section_class
    for name in CONVERTERS.names():
        if name == "ase" and not _has("ase"):
            continue
        fn = CONVERTERS.get(name)
        params = inspect.signature(fn).parameters
        assert list(params)[0] == "path" and "shard" in params
        section_class(fn, runtime=("path", "shard"), name=name, kind="converter")  # options are valid config keys


def _has(mod):
    import importlib.util
    return importlib.util.find_spec(mod) is not None


# ---------------------------------------------------------------------------------------------------- Planetoid
@needs("planetoid")
@pytest.mark.parametrize("name", ["Cora", "CiteSeer"])
def test_planetoid_real_matches_pyg(tmp_path, name):
    from torch_geometric.datasets import Planetoid
    shutil.copytree(DATA / "planetoid" / name, tmp_path / name)
    ref = Planetoid(str(tmp_path), name)[0]
    got = only(convert("planetoid", DATA / "planetoid" / name))
    same_graph(ref, got)
    n, e, c = {"Cora": (2708, 10556, 7), "CiteSeer": (3327, 9104, 6)}[name]
    assert got.num_nodes == n and got.edge_index.shape[1] == e and int(got.y.max()) + 1 == c


def write_planetoid(folder: Path, prefix="citeseer", gap=True):
    """A small Planetoid set (PyG needs >= len(y) + 500 nodes for its validation mask): 510 training-pool nodes
    (4 labelled), 3 test nodes with a gap (an isolated node) when ``gap``."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    f, c, m = 5, 3, 510
    allx = sp.csr_matrix((rng.random((m, f)) > 0.5).astype(np.float32))
    ally = np.eye(c)[rng.integers(0, c, m)]
    tx = sp.csr_matrix((rng.random((3, f)) > 0.5).astype(np.float32))
    ty = np.eye(c)[[2, 1, 0]]
    test_index = [m + 2, m, m + 3] if gap else [m + 2, m, m + 1]
    n = m + (4 if gap else 3)
    graph = collections.defaultdict(list)
    for i in range(n):
        graph[i] = [(i + 1) % n, (i - 1) % n, (i + 1) % n]  # duplicates
    graph[3].append(3)  # self loop
    if gap:
        graph[m + 1] = []
    for part, obj in {"x": allx[:4], "y": ally[:4], "allx": allx, "ally": ally, "tx": tx, "ty": ty,
                      "graph": graph}.items():
        with open(folder / f"ind.{prefix}.{part}", "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    (folder / f"ind.{prefix}.test.index").write_text("".join(f"{i}\n" for i in test_index))
    return folder


@pytest.mark.parametrize("gap", [True, False])
def test_planetoid_small_matches_pyg(tmp_path, gap):
    from torch_geometric.datasets import Planetoid
    write_planetoid(tmp_path / "CiteSeer" / "raw", gap=gap)
    got = only(convert("planetoid", tmp_path / "CiteSeer"))
    ref = Planetoid(str(tmp_path), "CiteSeer")[0]
    same_graph(ref, got)
    assert got.num_nodes == (514 if gap else 513)


def test_planetoid_malicious_pickle_refused(tmp_path):
    folder = write_planetoid(tmp_path / "raw")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "ind.citeseer.allx").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(DataFormatError, match=r"ind\.citeseer\.allx: unsafe pickle.*(posix|os|nt)\.system"):
        only(convert("planetoid", folder))
    assert not marker.exists()
    # also through eval / builtins
    (folder / "ind.citeseer.allx").write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(DataFormatError, match="unsafe pickle: refused to load global builtins.eval"):
        only(convert("planetoid", folder))


def test_planetoid_bad_input(tmp_path):
    folder = write_planetoid(tmp_path / "raw")
    (folder / "ind.citeseer.test.index").write_text("512\n510\n")  # counts disagree with tx
    with pytest.raises(DataFormatError, match=r"test\.index: has 2 indices but ind\.citeseer\.tx has 3 rows"):
        only(convert("planetoid", folder))
    folder = write_planetoid(tmp_path / "raw2")
    with open(folder / "ind.citeseer.ty", "wb") as fh:
        pickle.dump(np.eye(4)[[0, 1, 2]], fh, protocol=2)  # wrong number of label columns
    with pytest.raises(DataFormatError, match=r"ind\.citeseer\.ty: has 4 label columns but ally has 3"):
        only(convert("planetoid", folder))
    folder = write_planetoid(tmp_path / "raw3")
    with open(folder / "ind.citeseer.graph", "wb") as fh:
        pickle.dump({0: [1, 5000]}, fh, protocol=2)
    with pytest.raises(DataFormatError, match="refers to a node outside"):
        only(convert("planetoid", folder))
    (folder / "ind.citeseer.tx").unlink()
    with pytest.raises(DataFormatError, match=r"ind\.citeseer\.tx: missing"):
        convert("planetoid", folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no Planetoid raw files"):
        convert("planetoid", tmp_path / "empty")


# ---------------------------------------------------------------------------------------------------- npz graphs
def _pyg_npz(path):
    from torch_geometric.io import read_npz
    return read_npz(str(path), to_undirected=True)


@needs("amazon_coauthor")
@pytest.mark.parametrize("zipname,cls,name", [
    ("amazon-photo", "Amazon", "Photo"),
    pytest.param("coauthor-cs", "Coauthor", "CS", marks=pytest.mark.slow)])
def test_npz_graph_real_matches_pyg(tmp_path, zipname, cls, name):
    import torch_geometric.datasets as D
    subprocess.run(["sh", str(DATA / "amazon_coauthor" / "unpack_pyg.sh"), str(tmp_path)], check=True)
    ref = getattr(D, cls)(str(tmp_path), name)[0]
    got = only(convert("npz_graph", DATA / "amazon_coauthor" / f"{zipname}.zip"))
    same_graph(ref, got)
    inner = next((tmp_path / name / "raw").glob("*.npz"))
    same_graph(ref, only(convert("npz_graph", inner)))  # straight from the .npz too


def write_npz_graph(path: Path, n=7, f=4, seed=0):
    rng = np.random.default_rng(seed)
    adj = sp.random(n, n, density=0.4, random_state=seed, format="csr", dtype=np.float32)
    adj.setdiag(1)
    adj = adj.tocsr()
    attr = sp.random(n, f, density=0.5, random_state=seed + 1, format="csr", dtype=np.float32) * 3
    np.savez(path, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
             attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
             labels=rng.integers(0, 3, n), node_names=np.array([f"n{i}" for i in range(n)]))
    return path


@pytest.mark.parametrize("undirected", [True, False])
def test_npz_graph_small_roundtrip(tmp_path, undirected):
    path = write_npz_graph(tmp_path / "g.npz")
    ref = _pyg_npz(path)
    got = only(convert("npz_graph", path, undirected=undirected))
    if undirected:
        same_graph(ref, got)
    else:
        f = np.load(path)
        a = sp.csr_matrix((f["adj_data"], f["adj_indices"], f["adj_indptr"]), f["adj_shape"]).tocoo()
        keep = a.row != a.col
        assert torch.equal(got.edge_index, torch.tensor(np.stack([a.row[keep], a.col[keep]]), dtype=torch.long))
    with zipfile.ZipFile(tmp_path / "g.zip", "w") as z:
        z.write(path, "inner.npz")
    same_graph(ref, only(convert("npz_graph", tmp_path / "g.zip")))
    raw = only(convert("npz_graph", path, binarize=False))
    assert raw.x.max() > 1


def test_npz_graph_bad_input(tmp_path):
    path = write_npz_graph(tmp_path / "g.npz")
    f = dict(np.load(path))
    f["labels"] = f["labels"][:-1]
    np.savez(tmp_path / "short.npz", **f)
    with pytest.raises(DataFormatError, match=r"short\.npz: labels has 6 entries but the graph has 7 nodes"):
        only(convert("npz_graph", tmp_path / "short.npz"))
    f = dict(np.load(path))
    f["adj_indices"] = f["adj_indices"] + 100
    np.savez(tmp_path / "oob.npz", **f)
    with pytest.raises(DataFormatError, match="adj_indices has a column outside"):
        only(convert("npz_graph", tmp_path / "oob.npz"))
    f = dict(np.load(path))
    del f["attr_indptr"]
    np.savez(tmp_path / "miss.npz", **f)
    with pytest.raises(DataFormatError, match="missing array 'attr_indptr'"):
        only(convert("npz_graph", tmp_path / "miss.npz"))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataFormatError, match=r"text\.npz: not an \.npz or \.zip archive"):
        only(convert("npz_graph", tmp_path / "text.npz"))


# ---------------------------------------------------------------------------------------------------- TU
@needs("tudataset")
@pytest.mark.parametrize("name,node_attr", [("MUTAG", False), ("ENZYMES", True), ("ENZYMES", False),
                                            ("AIDS", True), ("PROTEINS", True),
                                            pytest.param("Tox21_MMP_training", False, marks=pytest.mark.slow)])
def test_tudataset_real_matches_pyg(tmp_path, name, node_attr):
    from torch_geometric.datasets import TUDataset
    shutil.copytree(DATA / "tudataset" / name, tmp_path / name)
    ref = TUDataset(str(tmp_path), name, use_node_attr=node_attr, use_edge_attr=node_attr)
    spec = convert("tudataset", DATA / "tudataset" / name, use_node_attr=node_attr, use_edge_attr=node_attr)
    got = list(spec.splits["train"])
    assert len(got) == len(ref) == spec.sizes["train"]
    for a, b in zip(ref, got):
        same_graph(a, b)


def write_tu(folder: Path, name="TOY", edge_attr=True):
    folder.mkdir(parents=True, exist_ok=True)
    # graph 1: nodes 1-3 (triangle + a self loop + a duplicate), graph 2: nodes 4-5, graph 3: node 6 alone
    edges = [(1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1), (3, 3), (1, 2), (4, 5), (5, 4)]
    (folder / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (folder / f"{name}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n3\n")
    (folder / f"{name}_graph_labels.txt").write_text("-1\n1\n-1\n")
    (folder / f"{name}_node_labels.txt").write_text("3,0\n4,1\n3,2\n5,0\n3,1\n4,0\n")
    (folder / f"{name}_node_attributes.txt").write_text("0.5\n1.5\n-2\n3\n4\n5.25\n")
    if edge_attr:
        (folder / f"{name}_edge_labels.txt").write_text("".join(f"{i % 3}\n" for i in range(len(edges))))
        (folder / f"{name}_edge_attributes.txt").write_text("".join(f"{i}.5,{-i}\n" for i in range(len(edges))))
    return folder


@pytest.mark.parametrize("attrs", [False, True])
def test_tudataset_small_matches_pyg(tmp_path, attrs):
    from torch_geometric.datasets import TUDataset
    write_tu(tmp_path / "TOY" / "raw")
    ref = TUDataset(str(tmp_path), "TOY", use_node_attr=attrs, use_edge_attr=attrs)
    spec = convert("tudataset", tmp_path / "TOY", use_node_attr=attrs, use_edge_attr=attrs)
    got = list(spec.splits["train"])
    assert len(got) == 3
    for a, b in zip(ref, got):
        same_graph(a, b)
    # shards partition the collection
    parts = [list(convert("tudataset", tmp_path / "TOY", use_node_attr=attrs, use_edge_attr=attrs,
                          shard=(i, 2)).splits["train"]) for i in range(2)]
    assert [len(p) for p in parts] == [1, 2]  # contiguous blocks (shard_range)
    same_graph(got[0], parts[0][0])
    same_graph(got[1], parts[1][0])


@pytest.mark.parametrize("corrupt,message", [
    (lambda f: (f / "TOY_node_labels.txt").write_text("3,0\n4,1\n3,2\n5,0\n3,1\n"),
     r"TOY_node_labels\.txt: has 5 lines but graph_indicator has 6 nodes"),
    (lambda f: (f / "TOY_node_labels.txt").write_text("3,0\n4,1\n3\n5,0\n3,1\n4,0\n"),
     r"TOY_node_labels\.txt:3: expected 2 comma-separated column\(s\), found 1"),
    (lambda f: (f / "TOY_A.txt").write_text("1, 2\n2, 9\n"), r"TOY_A\.txt:2: edge \(2, 9\) refers to a node outside"),
    (lambda f: (f / "TOY_A.txt").write_text("1, 2\n3, 4\n"), r"TOY_A\.txt:2: edge \(3, 4\) joins graphs 1 and 2"),
    (lambda f: (f / "TOY_graph_labels.txt").write_text("1\n2\n"), r"graph_labels\.txt: has 2 lines but"),
    (lambda f: (f / "TOY_graph_indicator.txt").write_text("1\n2\n1\n2\n2\n3\n"), r"non-decreasing"),
    (lambda f: (f / "TOY_node_labels.txt").write_text("3,0\n4,1\nx,2\n5,0\n3,1\n4,0\n"), r":3: not a number: 'x'"),
    (lambda f: (f / "TOY_edge_labels.txt").write_text("0\n1\n"), r"TOY_edge_labels\.txt: has 2 lines but TOY_A"),
    (lambda f: (f / "TOY_graph_indicator.txt").unlink(), r"TOY_graph_indicator\.txt: missing"),
])
def test_tudataset_bad_input(tmp_path, corrupt, message):
    folder = write_tu(tmp_path / "TOY")
    corrupt(folder)
    with pytest.raises(DataFormatError, match=message):
        list(convert("tudataset", folder).splits["train"])


# ---------------------------------------------------------------------------------------------------- .ts
def naive_ts(path: Path):
    """An independent, deliberately simple reading of an untimestamped .ts file."""
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "@data")
    header = {ln.split()[0].lower(): ln.split()[1:] for ln in lines[:start] if ln.startswith("@")}
    classes = header["@classlabel"][1:] if header.get("@classlabel", ["false"])[0] == "true" else None
    out = []
    for ln in lines[start + 1:]:
        if not ln.strip():
            continue
        *dims, label = ln.strip().split(":")
        arrs = [np.array([np.nan if v == "?" else float(v) for v in d.split(",")]) for d in dims]
        y = classes.index(label) if classes else float(label)
        out.append((arrs, y))
    return out


@needs("timeseries")
@pytest.mark.parametrize("name", ["BasicMotions", "JapaneseVowels", "GunPoint", "ItalyPowerDemand", "ArrowHead",
                                  "Covid3Month"])
def test_ts_real_matches_naive_parse(name):
    folder = DATA / "timeseries" / "ts" / name
    spec = convert("uea_ts", folder)
    assert set(spec.splits) == {"train", "test"}
    for split in ("train", "test"):
        ref = naive_ts(folder / f"{name}_{split.upper()}.ts")
        got = list(spec.splits[split])
        assert len(got) == len(ref) == spec.sizes[split]
        for (arrs, y), ts in zip(ref, got):
            assert isinstance(ts, TimeSeries) and ts.y == y and type(ts.y) is type(y)
            L = max(len(a) for a in arrs)
            assert ts.values.shape == (L, len(arrs)) and ts.values.dtype == np.float32
            np.testing.assert_array_equal(ts.times, np.arange(L))
            for d, a in enumerate(arrs):
                np.testing.assert_array_equal(ts.mask[:len(a), d], ~np.isnan(a))
                assert not ts.mask[len(a):, d].any()
                np.testing.assert_array_equal(ts.values[:len(a), d], a.astype(np.float32))
    if name == "JapaneseVowels":
        lengths = {len(ts.times) for ts in spec.splits["train"]}
        assert min(lengths) == 7 and max(lengths) > 20


TS_SMALL = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down flat
@data
1,2,?,4:5,6:down
0.5:1,2,3:flat

7,8:?,9:up
"""

TS_STAMPS = """@problemname Stamps
@timestamps true
@univariate false
@targetlabel true
@data
(0,1.0),(2,3.0),(5,?):(1,10),(2,20):0.75
(0.5,2):(0.5,4):-1e3
"""


def test_ts_small_roundtrip(tmp_path):
    (tmp_path / "Toy_TRAIN.ts").write_text(TS_SMALL)
    (tmp_path / "Toy_TEST.ts").write_text(TS_SMALL.replace("7,8:?,9:up", "1:2:up"))
    spec = convert("uea_ts", tmp_path)
    tr = list(spec.splits["train"])
    assert [t.y for t in tr] == [1, 2, 0]
    a = tr[0]
    np.testing.assert_array_equal(a.times, [0, 1, 2, 3])
    np.testing.assert_array_equal(a.mask, [[1, 1], [1, 1], [0, 0], [1, 0]])
    assert np.isnan(a.values[2]).all() and a.values[3, 0] == 4
    assert tr[1].values.shape == (3, 2) and tr[1].mask[:, 0].tolist() == [True, False, False]
    np.testing.assert_array_equal(tr[2].mask, [[1, 0], [1, 1]])
    assert len(list(spec.splits["test"])) == 3
    # a single file, its split from the name, and sharding
    spec1 = convert("uea_ts", tmp_path / "Toy_TEST.ts", pair=False)
    assert list(spec1.splits) == ["test"]
    assert [t.y for t in convert("uea_ts", tmp_path / "Toy_TRAIN.ts", shard=(1, 2)).splits["train"]] == [2, 0]

    (tmp_path / "S_TRAIN.ts").write_text(TS_STAMPS)
    s = list(convert("uea_ts", tmp_path / "S_TRAIN.ts").splits["train"])
    np.testing.assert_array_equal(s[0].times, [0, 1, 2, 5])
    np.testing.assert_array_equal(s[0].mask, [[1, 0], [0, 1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(s[0].values[2], [3, 20])
    assert s[0].y == 0.75 and s[1].y == -1000.0 and s[1].times.tolist() == [0.5]


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.replace(":flat\n", ":sideways\n"), r"Toy_TRAIN\.ts:11: unknown class label 'sideways'"),
    (lambda s: s.replace("0.5:1,2,3:flat", "0.5:1,2,3:4:flat"), r":11: expected 2 dimension\(s\), found 3"),
    (lambda s: s.replace("0.5:1,2,3:flat", "0.5:1,x,3:flat"), r":11: dimension 1: could not convert"),
    (lambda s: s.replace("@data\n", ""), r"Toy_TRAIN\.ts(: no @data line|:9: expected a @tag header line before @data)"),
    (lambda s: s.replace("@classLabel true up down flat", "@classLabel maybe"), r":8: @classlabel must be true"),
    (lambda s: s.replace("0.5:1,2,3:flat", "0.5 1,2,3 flat"), r":11: expected dimensions followed by"),
])
def test_ts_bad_input(tmp_path, edit, message):
    (tmp_path / "Toy_TRAIN.ts").write_text(edit(TS_SMALL))
    with pytest.raises(DataFormatError, match=message):
        list(convert("uea_ts", tmp_path / "Toy_TRAIN.ts").splits["train"])


# ---------------------------------------------------------------------------------------------------- ASE
def _ase_compare(atoms, rec):
    np.testing.assert_array_equal(rec.pos.numpy(), atoms.positions)
    np.testing.assert_array_equal(rec.z.numpy(), atoms.numbers)
    np.testing.assert_array_equal(rec.cell.numpy()[0], atoms.cell.array)
    np.testing.assert_array_equal(rec.pbc.numpy()[0], atoms.pbc)
    assert float(rec.energy) == atoms.get_potential_energy()
    np.testing.assert_array_equal(rec.forces.numpy(), atoms.get_forces(apply_constraint=False))  # raw DFT forces


@with_package("ase")
@needs("molecular")
def test_ase_real_matches_ase_io():
    import ase.db
    import ase.io
    traj = DATA / "molecular" / "oc20_relaxation_trajs" / "random1000100.traj"
    ref = ase.io.read(traj, ":")
    got = list(convert("ase", traj).splits["train"])
    assert len(got) == len(ref)
    fixed_ref = np.zeros(len(ref[0]), bool)
    fixed_ref[ref[0].constraints[0].get_indices()] = True
    for a, r in zip(ref, got):
        _ase_compare(a, r)
        np.testing.assert_array_equal(r.fixed.numpy(), fixed_ref)
        tags = r.tags.numpy()
        assert (tags[fixed_ref] == 0).all() and (tags[~fixed_ref] > 0).all()
        ads = tags == 2
        assert 1 <= ads.sum() <= 8 and set(a.numbers[ads]) <= {1, 6, 7, 8} and ads[-ads.sum():].all()
    src = list(convert("ase", traj, tags="source", index="-1").splits["train"])
    assert len(src) == 1 and not src[0].tags.any()
    # extxyz with stored tags: taken as they are, and the OC20 rule rebuilds them when they are stripped
    xyz = DATA / "molecular" / "toy_c3h8_relax.extxyz"
    ref = ase.io.read(xyz, ":")
    got = list(convert("ase", xyz).splits["train"])
    assert len(got) == 101
    for a, r in zip(ref, got):
        _ase_compare(a, r)
        np.testing.assert_array_equal(r.tags.numpy(), a.get_tags())
    from sciml.datasets.sources.ase_atoms import oc20_tags
    np.testing.assert_array_equal(oc20_tags(got[0].z.numpy(), got[0].fixed.numpy()), ref[0].get_tags())
    db = ase.db.connect(DATA / "molecular" / "oxides.db")
    got = list(convert("ase", DATA / "molecular" / "oxides.db").splits["train"])
    assert len(got) == db.count() == 295
    for row, r in zip(db.select(), got[:20]):
        _ase_compare(row.toatoms(), r)
    eth = list(convert("ase", DATA / "molecular" / "ethanol_sampledata.xyz", index="::100").splits["train"])
    assert len(eth) == 20 and not eth[0].tags.any() and not eth[0].pbc.any()


@with_package("ase")
@pytest.mark.parametrize("ext", ["traj", "extxyz", "db"])
def test_ase_small_roundtrip(tmp_path, ext):
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms
    frames = []
    for k in range(3):
        a = Atoms("Cu4CO", positions=np.random.default_rng(k).random((6, 3)) * 3, cell=np.eye(3) * 5 + k,
                  pbc=[True, True, False])
        a.set_constraint(FixAtoms(indices=[0, 1]))
        a.calc = SinglePointCalculator(a, energy=-1.5 * k, forces=np.full((6, 3), 0.1 * k))
        frames.append(a)
    path = tmp_path / f"frames.{ext}"
    ase.io.write(path, frames)
    got = list(convert("ase", path).splits["train"])
    assert len(got) == 3
    for a, r in zip(ase.io.read(path, ":"), got):
        _ase_compare(a, r)
        assert r.fixed.tolist() == [True, True, False, False, False, False]
        assert r.tags.tolist() == [0, 0, 1, 1, 2, 2]  # OC20 fallback: fixed / slab / trailing C, O
    assert [r.tags.tolist() for r in convert("ase", path, tags="source").splits["train"]][0] == [0] * 6
    assert len(list(convert("ase", tmp_path, pattern=f"*.{ext}", shard=(1, 2)).splits["train"])) == 2


@with_package("ase")
def test_ase_bad_input(tmp_path):
    (tmp_path / "bad.extxyz").write_text("3\nProperties=species:S:1:pos:R:3\nH 0 0 0\nH 0 0\n")
    with pytest.raises(DataFormatError, match=r"bad\.extxyz: cannot read frame 0"):
        list(convert("ase", tmp_path / "bad.extxyz").splits["train"])
    (tmp_path / "empty.traj").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.traj"):
        list(convert("ase", tmp_path / "empty.traj").splits["train"])


# ---------------------------------------------------------------------------------------------------- .pt
@needs("pde/neuraloperator")
@pytest.mark.parametrize("name,grid,T", [("darcy_test_16.pt", (16, 16), 1), ("darcy_test_32.pt", (32, 32), 1),
                                         ("burgers_test_16.pt", (16,), 17)])
def test_neuraloperator_real_matches_torch_load(name, grid, T):
    path = DATA / "pde" / "neuraloperator" / name
    ref = torch.load(path, weights_only=False)
    spec = convert("neuraloperator_pt", path)
    got = list(spec.splits["test"])
    assert len(got) == ref["x"].shape[0] == spec.sizes["test"]
    for i in (0, len(got) - 1):
        s = got[i]
        assert isinstance(s, FieldSample)
        assert s.fields["a"].shape == s.fields["u"].shape == (T, *grid, 1)
        u = ref["y"][i].numpy()
        np.testing.assert_array_equal(s.fields["u"][..., 0], u if T > 1 else u[None])
        np.testing.assert_array_equal(s.fields["a"][..., 0], np.broadcast_to(ref["x"][i].numpy(), (T, *grid)))
    if "visc" in ref:
        assert got[0].params == {"visc": float(ref["visc"])}
    assert [len(spec.coords[k]) for k in spec.coords] == ([T] if T > 1 else []) + list(grid)
    with pytest.raises(DataFormatError, match=r"mini_car\.pt: expected a dict"):
        convert("neuraloperator_pt", DATA / "pde" / "neuraloperator" / "mini_car.pt")


def test_neuraloperator_small_roundtrip_and_unsafe(tmp_path):
    x, y = torch.rand(5, 4, 3), torch.rand(5, 4, 3)
    torch.save({"x": x, "y": y, "seed": torch.arange(5)}, tmp_path / "toy_train.pt")
    spec = convert("neuraloperator_pt", tmp_path / "toy_train.pt")
    got = list(spec.splits["train"])
    assert len(got) == 5 and [g.params["seed"] for g in got] == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(got[3].fields["u"], y[3].numpy()[None, ..., None])
    assert [g.params["seed"] for g in convert("neuraloperator_pt", tmp_path / "toy_train.pt",
                                              shard=(2, 3)).splits["train"]] == [3, 4]
    torch.save({"x": x, "y": y[:4]}, tmp_path / "bad.pt")
    with pytest.raises(DataFormatError, match=r"bad\.pt: 'x' has 5 samples but 'y' has 4"):
        convert("neuraloperator_pt", tmp_path / "bad.pt")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"x": x, "y": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(DataFormatError, match=r"evil\.pt: refused"):
        convert("neuraloperator_pt", tmp_path / "evil.pt")
    assert not marker.exists()


def test_neuraloperator_bfloat16_converted_and_float8_refused(tmp_path):
    """bf16 has no numpy dtype: converted to float32 exactly; float8 is a one-line error naming file and key."""
    from sciml.datasets.schema import validate_file
    from sciml.datasets.writer import write_spec

    x = torch.rand(3, 4, 3).to(torch.bfloat16)
    y = torch.rand(3, 4, 3, dtype=torch.float64)
    torch.save({"x": x, "y": y, "visc": torch.tensor([[0.5]], dtype=torch.bfloat16)}, tmp_path / "bf_train.pt")
    got = list(convert("neuraloperator_pt", tmp_path / "bf_train.pt").splits["train"])
    a = got[1].fields["a"]
    assert a.dtype == np.float32 and got[1].params["visc"] == 0.5
    np.testing.assert_array_equal(a[0, ..., 0], x[1].float().numpy())
    path = write_spec(tmp_path / "bf.h5", convert("neuraloperator_pt", tmp_path / "bf_train.pt"))
    assert validate_file(path) == []
    for key in ("x", "seed"):
        obj = {"x": x.float(), "y": y, "seed": torch.zeros(3)}
        obj[key] = obj[key].to(torch.float8_e4m3fn)
        torch.save(obj, tmp_path / "f8.pt")
        with pytest.raises(DataFormatError) as info:
            list(convert("neuraloperator_pt", tmp_path / "f8.pt").splits["train"])
        msg = str(info.value)
        assert "\n" not in msg and "f8.pt: " in msg and repr(key) in msg and "float8_e4m3fn" in msg, msg


# ---------------------------------------------------------------------------------------------------- .mat / .npz
@needs("pde")
@pytest.mark.parametrize("rel,field,key", [("pinns_raissi/burgers_shock.mat", "usol", "t"),
                                           ("pinns_raissi/NLS.mat", "uu", "tt"), ("pinns_raissi/KdV.mat", "uu", "tt"),
                                           ("deepxde/Allen_Cahn.mat", "u", "t")])
def test_matlab_real_matches_scipy(rel, field, key):
    ref = scipy.io.loadmat(DATA / "pde" / rel)
    spec = convert("matlab", DATA / "pde" / rel)
    s = only(spec)
    t, x = ref[key].ravel(), ref["x"].ravel()
    np.testing.assert_array_equal(spec.coords["t"], t)
    np.testing.assert_array_equal(spec.coords["x"], x)
    u = ref[field]
    u_tx = u if u.shape == (len(t), len(x)) else u.T  # Raissi: [x, t]; DeepXDE: [t, x]
    want = np.stack([u_tx.real, u_tx.imag], -1) if np.iscomplexobj(u) else u_tx[..., None]
    np.testing.assert_array_equal(s.fields[field], want)


@needs("pde")
def test_npz_fields_real_matches_numpy():
    ref = np.load(DATA / "pde" / "deepxde" / "Burgers.npz")
    spec = convert("npz_fields", DATA / "pde" / "deepxde" / "Burgers.npz")
    np.testing.assert_array_equal(only(spec).fields["usol"][..., 0], ref["usol"].T)
    np.testing.assert_array_equal(spec.coords["t"], ref["t"].ravel())
    ref = np.load(DATA / "pde" / "deepxde" / "reaction.npz")
    s = only(convert("npz_fields", DATA / "pde" / "deepxde" / "reaction.npz"))
    np.testing.assert_array_equal(s.fields["Ca"][..., 0], ref["Ca"])  # ambiguous 201 x 201: time first
    s = only(convert("npz_fields", DATA / "pde" / "deepxde" / "Poisson_Lshape.npz"))
    ref = np.load(DATA / "pde" / "deepxde" / "Poisson_Lshape.npz")
    inside = np.isfinite(ref["y_ref"][:, 0])  # NaN outside the L-shape: those points are dropped
    assert 0 < inside.sum() < len(inside)
    np.testing.assert_array_equal(s.fields["points"][0], ref["X_test"][inside])
    np.testing.assert_array_equal(s.fields["y_ref"][0], ref["y_ref"][inside])
    s = only(convert("npz_fields", DATA / "pde" / "deepxde" / "Poisson_Lshape.npz", drop_nan=False))
    np.testing.assert_array_equal(s.fields["y_ref"][0], ref["y_ref"])
    s = only(convert("matlab", DATA / "pde" / "pinns_raissi" / "cylinder_nektar_t0_vorticity.mat"))
    assert s.fields["points"].shape == (1, 49852, 2) and s.params == {"modes": 10.0, "nel": 412.0}


def write_mat73(path: Path, arrays: dict):
    """A MATLAB v7.3 file as MATLAB writes it: a 512-byte header userblock, arrays column-major, MATLAB_class."""
    import h5py
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            v = np.asarray(v)
            if np.iscomplexobj(v):
                comp = np.empty(v.shape, dtype=[("real", "<f8"), ("imag", "<f8")])
                comp["real"], comp["imag"] = v.real, v.imag
                v = comp
            d = f.create_dataset(k, data=v.T)
            d.attrs["MATLAB_class"] = np.bytes_("double")
        d = f.create_dataset("name", data=np.frombuffer("abc".encode("utf-16-le"), np.uint16).reshape(3, 1))
        d.attrs["MATLAB_class"] = np.bytes_("char")
    with open(path, "r+b") as fh:
        head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
        fh.write(head.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_matlab_small_roundtrip(tmp_path, version):
    rng = np.random.default_rng(0)
    t, x, y = np.linspace(0, 1, 4), np.linspace(-1, 1, 5), np.linspace(0, 2, 3)
    u = rng.random((5, 3, 4))  # [x, y, t] as MATLAB's ndgrid would give
    psi = rng.random((5, 3, 4)) + 1j * rng.random((5, 3, 4))
    arrays = {"t": t[:, None], "x": x[None, :], "y": y[:, None], "u": u, "psi": psi, "nu": np.array([[0.01]])}
    path = tmp_path / "sol.mat"
    if version == "5":
        scipy.io.savemat(path, arrays)
    else:
        write_mat73(path, arrays)
    from sciml.datasets.sources.matlab import read_mat
    raw = read_mat(path)
    assert raw["u"].shape == (5, 3, 4) and "name" not in raw
    spec = convert("matlab", path)
    s = only(spec)
    assert list(spec.coords) == ["t", "x", "y"]
    np.testing.assert_array_equal(s.fields["u"][..., 0], u.transpose(2, 0, 1))
    np.testing.assert_array_equal(s.fields["psi"], np.stack([psi.real, psi.imag], -1).transpose(2, 0, 1, 3))
    assert s.params == {"nu": 0.01}
    np.savez(tmp_path / "sol.npz", **arrays)
    s2 = only(convert("npz_fields", tmp_path / "sol.npz", fields=["u"]))
    np.testing.assert_array_equal(s2.fields["u"], s.fields["u"])


def test_fields_bad_input(tmp_path):
    np.savez(tmp_path / "a.npz", t=np.arange(4.0), x=np.arange(5.0), u=np.zeros((4, 6)))
    with pytest.raises(DataFormatError, match=r"a\.npz: field 'u' has shape \(4, 6\), which matches neither"):
        convert("npz_fields", tmp_path / "a.npz")
    with pytest.raises(DataFormatError, match=r"a\.npz: no numeric array 'v'"):
        convert("npz_fields", tmp_path / "a.npz", fields=["v"])
    (tmp_path / "b.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
    with pytest.raises(DataFormatError, match=r"b\.mat: not a readable MATLAB file"):
        convert("matlab", tmp_path / "b.mat")
    (tmp_path / "c.mat").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(DataFormatError, match=r"c\.mat: not a readable MATLAB 7\.3"):
        convert("matlab", tmp_path / "c.mat")


def test_missing_path_is_a_typed_error(tmp_path):
    for name in ("planetoid", "npz_graph", "tudataset", "uea_ts", "neuraloperator_pt", "matlab", "npz_fields"):
        with pytest.raises(DataFormatError, match="nope: no such input"):
            convert(name, tmp_path / "nope")


# ------------------------------------------------------------------------------------------- shard + merge
def _h5_arrays(path):
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def test_sharded_convert_then_merge_equals_unsharded(tmp_path):
    """Converting in 2 shards and merging gives the unsharded file record for record, for converters with a known
    count (TU, .pt, .ts) and for ASE (count unknown upfront)."""
    from sciml.datasets.shards import merge_shards, shard_path
    from sciml.datasets.writer import write_spec

    write_tu(tmp_path / "TOY" / "raw")
    torch.save({"x": torch.rand(5, 4, 3), "y": torch.rand(5, 4, 3), "seed": torch.arange(5)}, tmp_path / "t_train.pt")
    (tmp_path / "Toy_TRAIN.ts").write_text(TS_SMALL)
    (tmp_path / "Toy_TEST.ts").write_text(TS_SMALL.replace("7,8:?,9:up", "1:2:up"))
    cases = [("tudataset", tmp_path / "TOY", {}), ("neuraloperator_pt", tmp_path / "t_train.pt", {}),
             ("uea_ts", tmp_path / "Toy_TRAIN.ts", {})]
    try:
        import ase
        import ase.io
        frames = [ase.Atoms("H2O", positions=np.arange(9.0).reshape(3, 3) * (k + 1)) for k in range(5)]
        ase.io.write(tmp_path / "f.extxyz", frames)
        cases.append(("ase", tmp_path / "f.extxyz", {}))
    except ImportError:  # pragma: no cover
        pass
    for name, path, kw in cases:
        whole = write_spec(tmp_path / f"{name}.h5", convert(name, path, **kw))
        parts = tmp_path / f"{name}-parts"
        for i in range(2):
            write_spec(shard_path(parts, i, 2), convert(name, path, shard=(i, 2), **kw), shard=(i, 2))
        merged = merge_shards([parts], tmp_path / f"{name}-merged.h5")
        a, b = _h5_arrays(whole), _h5_arrays(merged)
        assert a.keys() == b.keys(), name
        for k in a:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), (name, k)


def test_check_shard_is_a_config_error():
    from sciml.datasets.sources._common import check_shard
    from sciml.errors import ConfigError, DataFormatError
    for bad in ((2, 2), (0, 0), "x", (1,)):
        with pytest.raises(ConfigError, match="shard") as info:
            check_shard(bad)
        assert not isinstance(info.value, DataFormatError)
