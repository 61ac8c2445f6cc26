"""sciml-h5 writer + readers: exact round trips for every kind, atomic writes, the complete flag, layout."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from sciml.datasets.reader import AtomsDataset, FieldDataset, GraphDataset, SeriesDataset, open_dataset
from sciml.datasets.records import FieldSample, TimeSeries
from sciml.datasets.schema import FORMAT, FORMAT_VERSION, validate_file
from sciml.datasets.writer import DataSpec, H5Writer, write_dataset, write_spec
from sciml.errors import DataFormatError


def graphs(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        nodes, edges = 2 + i, 3 * i + 1
        out.append(Data(x=torch.randn(nodes, 4, generator=g),
                        edge_index=torch.randint(0, nodes, (2, edges), generator=g),
                        edge_attr=torch.randn(edges, 2, generator=g), y=torch.tensor([i % 3]),
                        train_mask=torch.rand(nodes, generator=g) > 0.5, pos=torch.randn(nodes, 3, generator=g),
                        u=torch.randn(1, 5, generator=g), scalar=torch.tensor(float(i)), idx=i, name=f"g{i}"))
    return out


def atoms(n=5, seed=0, energy=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = 3 + 2 * i
        d = Data(pos=torch.randn(k, 3, dtype=torch.float64, generator=g), z=torch.randint(1, 80, (k,), generator=g),
                 cell=torch.randn(1, 3, 3, generator=g), pbc=torch.tensor([[True, True, False]]),
                 tags=torch.randint(0, 3, (k,), generator=g), fixed=torch.rand(k, generator=g) > 0.5)
        if energy:
            d.energy = torch.randn(1, dtype=torch.float64, generator=g)
            d.forces = torch.randn(k, 3, dtype=torch.float64, generator=g)
        out.append(d)
    return out


def fields(n=4, t=3, s=(8, 6), seed=0):
    rng = np.random.default_rng(seed)
    return [FieldSample({"a": rng.random((1, *s, 1), dtype=np.float32).repeat(t, 0),
                         "u": rng.random((t, *s, 2), dtype=np.float32)}, {"nu": float(rng.random()), "seed": i})
            for i in range(n)]


def series(n=5, dim=3, seed=0, label="int"):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = 2 + 3 * i
        y = i % 2 if label == "int" else (float(rng.random()) if label == "float" else None)
        out.append(TimeSeries(np.sort(rng.random(length)), rng.random((length, dim)).astype(np.float32),
                              rng.random((length, dim)) > 0.4, y))
    return out


def assert_data_equal(a, b):
    assert set(a.keys()) == set(b.keys())
    for k in b.keys():
        va, vb = a[k], b[k]
        if torch.is_tensor(vb):
            assert va.dtype == vb.dtype and va.shape == vb.shape and torch.equal(va, vb), k
        else:
            assert type(va) is type(vb) and va == vb, k


def test_graphs_round_trip(tmp_path):
    gs = graphs()
    path = write_dataset(tmp_path / "g.h5", "graphs", {"train": gs[:4], "test": gs[4:]}, source="unit",
                         config={"n": 6, "nested": {"a": [1, 2]}})
    assert validate_file(path) == []
    ds = open_dataset(path, "train")
    assert isinstance(ds, GraphDataset) and len(ds) == 4
    for i in range(4):
        assert_data_equal(ds[i], gs[i])
    assert_data_equal(open_dataset(path, "test")[-1], gs[-1])
    np.testing.assert_array_equal(ds.sizes, [g.num_nodes for g in gs[:4]])
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT and f.attrs["format_version"] == FORMAT_VERSION
        assert f.attrs["complete"] == 1 and f.attrs["kind"] == "graphs" and f.attrs["source"] == "unit"
        assert "nested" in f.attrs["config"] and f.attrs["created_by"].startswith("sciml ")
        g = f["train"]
        assert g["node_ptr"][()].tolist() == [0, 2, 5, 9, 14]
        assert g["edge_index"].attrs["level"] == "packed" and g["edge_index"].attrs["ptr"] == "edge_ptr"
        assert g["edge_index"].attrs["cat_dim"] == 1 and g["x"].attrs["ptr"] == "node_ptr"
        assert g["y"].attrs["level"] == "sample" and g["y"].shape == (4,)
        assert g["u"].shape == (4, 5) and g["scalar"].shape == (4,)
        assert all("sha256" in d.attrs for d in [g["x"], g["node_ptr"], g["meta/sizes"]])
        assert g["x"].fletcher32


def test_one_big_graph_without_node_features(tmp_path):
    big = Data(edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), num_nodes=5)
    ds = open_dataset(write_dataset(tmp_path / "g.h5", "graphs", {"full": [big]}, source="unit"), "full")
    assert ds[0].num_nodes == 5 and torch.equal(ds[0].edge_index, big.edge_index)


def test_atoms_round_trip(tmp_path):
    recs = atoms()
    path = write_dataset(tmp_path / "a.h5", "atoms", {"train": recs}, source="unit")
    assert validate_file(path) == []
    ds = open_dataset(path)
    assert isinstance(ds, AtomsDataset)
    for i, r in enumerate(recs):
        assert_data_equal(ds[i], r)
    np.testing.assert_array_equal(ds.sizes, [r.num_nodes for r in recs])
    with h5py.File(path) as f:
        assert f["train/cell"].shape == (5, 3, 3) and f["train/pbc"].shape == (5, 3)
        assert f["train/energy"].shape == (5,) and f["train/atom_ptr"].shape == (6,)
        assert "edge_ptr" not in f["train"]


def test_atoms_missing_required_key(tmp_path):
    rec = atoms(1)[0]
    del rec.tags
    with pytest.raises(DataFormatError, match="tags"):
        write_dataset(tmp_path / "a.h5", "atoms", {"train": [rec]}, source="unit")
    assert not list(tmp_path.iterdir())


def test_fields_round_trip(tmp_path):
    recs = fields()
    coords = {"t": np.linspace(0, 1, 3), "x": np.linspace(0, 1, 8), "y": np.linspace(0, 2, 6)}
    path = write_dataset(tmp_path / "f.h5", "fields", {"train": recs[:3], "val": recs[3:]}, source="unit",
                         coords=coords, compression="gzip:1")
    assert validate_file(path) == []
    ds = open_dataset(path, "train")
    assert isinstance(ds, FieldDataset) and len(ds) == 3
    for i in range(3):
        item = ds[i]
        for k, v in recs[i].fields.items():
            assert item[k].dtype == torch.float32 and np.array_equal(item[k].numpy(), v)
        assert {k: float(v) for k, v in item["params"].items()} == recs[i].params
    np.testing.assert_array_equal(ds.coords["y"], coords["y"])
    assert open_dataset(path, "val", fields=["u"])[0].keys() == {"u", "params"}
    with h5py.File(path) as f:
        d = f["train/fields/u"]
        assert d.shape == (3, 3, 8, 6, 2) and d.chunks == (1, 3, 8, 6, 2) and d.compression == "gzip"
        assert f["train/params/nu"].dtype == np.float64 and f["train/coords/t"].attrs["level"] == "coords"


def test_fields_large_sample_chunks_one_step(tmp_path, monkeypatch):
    import sciml.datasets.writer as writer

    monkeypatch.setattr(writer, "FIELD_CHUNK_LIMIT", 100)
    path = write_dataset(tmp_path / "f.h5", "fields", {"train": fields(2)}, source="unit")
    with h5py.File(path) as f:
        assert f["train/fields/u"].chunks == (1, 1, 8, 6, 2)


def test_fields_coords_must_match(tmp_path):
    with pytest.raises(DataFormatError, match=r"coords\['x'\] has 5 points"):
        write_dataset(tmp_path / "f.h5", "fields", {"train": fields(1)}, source="u", coords={"x": np.arange(5.0)})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("label", ["int", "float", None])
def test_series_round_trip(tmp_path, label):
    recs = series(label=label)
    path = write_dataset(tmp_path / "s.h5", "series", {"train": recs}, source="unit")
    assert validate_file(path) == []
    ds = open_dataset(path)
    assert isinstance(ds, SeriesDataset)
    for i, r in enumerate(recs):
        item = ds[i]
        assert item["times"].dtype == torch.float64 and np.array_equal(item["times"].numpy(), r.times)
        assert np.array_equal(item["mask"].numpy(), r.mask)
        v = item["values"].numpy()
        assert np.isnan(v[~r.mask]).all() and np.array_equal(v[r.mask], r.values[r.mask])
        if label is None:
            assert "y" not in item
        else:
            assert item["y"].item() == r.y
    from sciml.datasets.reader import collate_series

    batch = collate_series([ds[0], ds[2]])
    assert batch["values"].shape == (2, 8, 3) and batch["lengths"].tolist() == [2, 8]
    assert not batch["mask"][0, 2:].any()


def test_series_rejects_decreasing_times_and_mixed_labels(tmp_path):
    bad = TimeSeries(np.array([0.0, 2.0, 1.0]), np.zeros((3, 1)), np.ones((3, 1), bool), 0)
    with pytest.raises(DataFormatError, match="times decrease"):
        write_dataset(tmp_path / "s.h5", "series", {"train": [bad]}, source="u")
    recs = series(2)
    recs[1].y = None
    with pytest.raises(DataFormatError, match="record 1: label"):
        write_dataset(tmp_path / "s.h5", "series", {"train": recs}, source="u")
    assert not list(tmp_path.iterdir())


def test_writer_rejects_nonfinite_and_inconsistent_records(tmp_path):
    gs = graphs(3)
    gs[2].x[0, 1] = float("nan")
    with pytest.raises(DataFormatError, match=r"train record 2: 'x' has a non-finite value nan at index \(0, 1\)"):
        write_dataset(tmp_path / "g.h5", "graphs", {"train": gs}, source="u")
    gs = graphs(3)
    gs[1].extra = torch.zeros(1)
    with pytest.raises(DataFormatError, match="unexpected 'extra'"):
        write_dataset(tmp_path / "g.h5", "graphs", {"train": gs}, source="u")
    gs = graphs(3)
    gs[1].x = torch.zeros(gs[1].num_nodes, 7)
    with pytest.raises(DataFormatError, match="'x' has shape"):
        write_dataset(tmp_path / "g.h5", "graphs", {"train": gs}, source="u")
    with pytest.raises(DataFormatError, match="expected a FieldSample"):
        write_dataset(tmp_path / "f.h5", "fields", {"train": graphs(1)}, source="u")
    assert not list(tmp_path.iterdir())


def test_exception_mid_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.h5"
    path.write_bytes(b"old")  # an existing file survives a failed rewrite

    def records():
        yield from graphs(3)
        raise RuntimeError("generator crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        with H5Writer(path, "graphs", source="u") as w:
            w.extend("train", records())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"] and path.read_bytes() == b"old"


def test_killed_writer_never_exposes_the_output(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from sciml.datasets.records import TimeSeries
        from sciml.datasets.writer import H5Writer
        with H5Writer({str(tmp_path / 'out.h5')!r}, "series", source="u", buffer_bytes=1) as w:
            for i in range(10**6):
                w.append("train", TimeSeries(np.arange(3.0), np.zeros((3, 2)), np.ones((3, 2), bool), 1))
                if i == 50:
                    os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-P", "-c", script], cwd=tmp_path, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out.h5").exists()
    (partial,) = tmp_path.glob("out.h5.*.partial")  # a partial file is never mistaken for the output
    with pytest.raises(DataFormatError, match="incomplete|not a readable HDF5"):
        open_dataset(partial)
    # the next writer removes the dead process's partial file, not a live writer's
    live = H5Writer(tmp_path / "out.h5", "graphs", source="u")
    write_dataset(tmp_path / "out.h5", "graphs", {"train": graphs(1)}, source="u")
    assert not partial.exists() and live.partial.exists()
    live.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_concurrent_writers_of_one_path_do_not_clobber(tmp_path, monkeypatch):
    import sciml.datasets.writer as writer_mod
    synced = []
    monkeypatch.setattr(writer_mod, "fsync_file", lambda p: synced.append(("file", Path(p).name)))
    monkeypatch.setattr(writer_mod, "fsync_dir", lambda d: synced.append(("dir", Path(d))))
    a = H5Writer(tmp_path / "g.h5", "graphs", source="a")
    b = H5Writer(tmp_path / "g.h5", "graphs", source="b")
    assert a.partial != b.partial and a.partial.name.endswith(".partial") and str(os.getpid()) in a.partial.name
    a.extend("train", graphs(2))
    b.extend("train", graphs(3))
    a.close()
    assert len(open_dataset(tmp_path / "g.h5")) == 2
    b.close()
    assert len(open_dataset(tmp_path / "g.h5")) == 3
    assert synced == [("file", a.partial.name), ("dir", tmp_path), ("file", b.partial.name), ("dir", tmp_path)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]


def test_incomplete_file_is_refused(tmp_path):
    path = write_dataset(tmp_path / "g.h5", "graphs", {"train": graphs(2)}, source="u")
    with h5py.File(path, "r+") as f:
        del f.attrs["complete"]
    with pytest.raises(DataFormatError, match=r"g\.h5: incomplete file \(root attribute complete=1 is missing"):
        open_dataset(path)
    with pytest.raises(DataFormatError, match="incomplete"):
        validate_file(path)


def test_wrong_reader_and_split(tmp_path):
    path = write_dataset(tmp_path / "g.h5", "graphs", {"train": graphs(2)}, source="u")
    with pytest.raises(DataFormatError, match="holds kind 'graphs'"):
        FieldDataset(path)
    with pytest.raises(DataFormatError, match=r"no split 'val' \(splits: train\)"):
        open_dataset(path, "val")
    with pytest.raises(IndexError):
        open_dataset(path)[2]


def test_empty_split_and_data_spec(tmp_path):
    spec = DataSpec(kind="graphs", splits={"train": iter(graphs(2)), "val": iter([])}, source="toy", config={"k": 1},
                    sizes={"train": 2, "val": 0})
    path = write_spec(tmp_path / "g.h5", spec)
    assert validate_file(path) == []
    assert len(open_dataset(path, "val")) == 0 and len(open_dataset(path, "train")) == 2


def test_streaming_flushes_in_blocks(tmp_path):
    path = tmp_path / "s.h5"
    with H5Writer(path, "series", source="u", buffer_bytes=64) as w:
        n = w.extend("train", series(40, dim=2))
    assert n == 40 and validate_file(path) == []
    ds = open_dataset(path)
    np.testing.assert_array_equal(ds[39]["times"].numpy(), series(40, dim=2)[39].times)


def test_pickled_dataset_reopens(tmp_path):
    import pickle

    ds = open_dataset(write_dataset(tmp_path / "g.h5", "graphs", {"train": graphs(3)}, source="u"))
    first = ds[1]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._h5 is None
    assert_data_equal(clone[1], first)
    ds.close()
    assert_data_equal(ds[1], first)


def test_compression_option_rejected(tmp_path):
    with pytest.raises(DataFormatError, match="compression 'zstd'"):
        H5Writer(tmp_path / "x.h5", "graphs", source="u", compression="zstd")
    assert not list(tmp_path.iterdir())


def test_writer_never_narrows_later_records_silently(tmp_path):
    def graph(y, x=None):
        return Data(x=torch.zeros(2, 1) if x is None else x, edge_index=torch.tensor([[0], [1]]), y=y)

    big = 2**40 + 5
    cases = [
        ([graph(torch.tensor([1], dtype=torch.int32)), graph(torch.tensor([big]))], "'y'.*int64.*int32"),
        ([graph(torch.tensor([1])), graph(torch.tensor([0.5], dtype=torch.float64))], "'y'.*float64.*int64"),
        ([graph(torch.tensor([0.5])), graph(torch.tensor([0.1], dtype=torch.float64))], "'y'.*float64.*float32"),
    ]
    for i, (records, message) in enumerate(cases):
        with pytest.raises(DataFormatError, match=r"train record 1: " + message):
            write_dataset(tmp_path / f"n{i}.h5", "graphs", {"train": records}, source="unit")
        assert not (tmp_path / f"n{i}.h5").exists()
    # values that survive the round trip are stored; every value read back equals the one written
    ok = [graph(torch.tensor([3], dtype=torch.int32)), graph(torch.tensor([7])),
          graph(torch.tensor([1]), x=torch.full((2, 1), 0.5, dtype=torch.float64))]
    write_dataset(tmp_path / "ok.h5", "graphs", {"train": ok}, source="unit")
    ds = open_dataset(tmp_path / "ok.h5")
    assert [int(ds[i].y) for i in range(3)] == [3, 7, 1]
    assert ds[2].x.tolist() == [[0.5], [0.5]]
    # a wider later record: the dataset keeps the first record's dtype only if that holds the value
    write_dataset(tmp_path / "w.h5", "graphs", {"train": [graph(torch.tensor([1])),
                                                            graph(torch.tensor([big]))]}, source="unit")
    assert int(open_dataset(tmp_path / "w.h5")[1].y) == big


def _ambiguous_graphs():
    """First record: 4 nodes and 4 edges, so a per-edge ``w [E]`` and a per-graph ``target [4]`` both look
    node-level; the second record (5 nodes, 4 edges) then disagrees with that guess."""
    out = []
    for n in (4, 5):
        out.append(Data(x=torch.randn(n, 2), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]),
                        w=torch.arange(4.0) + n, target=torch.arange(4.0) * n, num_nodes=n))
    return out


@pytest.mark.parametrize("via", ["write_spec", "cli"])
def test_spec_levels_fix_the_level_guess(tmp_path, via):
    def spec(levels):
        return DataSpec(kind="graphs", splits={"train": _ambiguous_graphs()}, source="unit", config={},
                        levels=levels)

    def write(path, s):
        if via == "write_spec":
            return write_spec(path, s)
        from sciml.datasets.cli import _write_spec
        _write_spec(path, s, compression=None, shard=None, progress=None)
        return path

    with pytest.raises(DataFormatError, match="guessed from the first record"):
        write(tmp_path / "guess.h5", spec(None))
    path = write(tmp_path / "fixed.h5", spec({"w": "edge", "target": "graph"}))
    assert validate_file(path) == []
    with h5py.File(path) as f:
        g = f["train"]
        assert g["w"].attrs["level"] == "packed" and g["w"].attrs["ptr"] == "edge_ptr"
        assert g["target"].attrs["level"] == "sample" and g["target"].shape == (2, 4)
        np.testing.assert_array_equal(g["w"][()], np.r_[np.arange(4.0) + 4, np.arange(4.0) + 5])
        np.testing.assert_array_equal(g["target"][1], np.arange(4.0) * 5)
