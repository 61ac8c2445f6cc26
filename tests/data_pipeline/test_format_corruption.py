"""Corrupted, truncated, foreign and inconsistent sciml-h5 files: validate finds the problem, readers refuse it
with a one-line error naming the file, the CLI exits 2."""
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from sciml.cli.main import main
from sciml.datasets.reader import open_dataset
from sciml.datasets.records import FieldSample, TimeSeries
from sciml.datasets.schema import validate_file
from sciml.datasets.writer import write_dataset
from sciml.errors import DataFormatError


def make_graphs(path):
    g = torch.Generator().manual_seed(0)
    recs = [Data(x=torch.randn(5 + i, 8, generator=g), edge_index=torch.randint(0, 5 + i, (2, 12), generator=g),
                 y=torch.tensor([i])) for i in range(20)]
    return write_dataset(path, "graphs", {"train": recs}, source="unit")


def make_fields(path):
    rng = np.random.default_rng(0)
    recs = [FieldSample({"u": rng.random((2, 16, 16, 1), dtype=np.float32)}, {"nu": 0.1}) for _ in range(4)]
    return write_dataset(path, "fields", {"train": recs}, source="unit")


def raw_offset(path, name):
    with h5py.File(path) as f:
        d = f[name]
        return d.id.get_chunk_info(0).byte_offset, d.id.get_chunk_info(0).size


def test_flipped_bytes_inside_a_dataset_fail_the_checksum(tmp_path):
    path = make_fields(tmp_path / "f.h5")
    offset, size = raw_offset(path, "train/fields/u")
    blob = bytearray(path.read_bytes())
    blob[offset + size // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    problems = validate_file(path)
    assert len(problems) == 1 and problems[0].startswith("/train/fields/u: read error, data corrupted")
    with pytest.raises(DataFormatError, match=r"f\.h5: /train/fields/u: read failed"):
        open_dataset(path)[0]


def test_checksum_mismatch_without_fletcher(tmp_path):
    path = make_graphs(tmp_path / "g.h5")
    with h5py.File(path, "r+") as f:  # rewrite a value through HDF5: the chunk filter is happy, sha256 is not
        f["train/x"][3, 1] = 42.0
    problems = validate_file(path)
    assert problems == [problems[0]] and "/train/x: sha256 checksum mismatch" in problems[0]
    assert validate_file(path, checksums=False) == []


def test_truncated_and_foreign_files(tmp_path, capsys):
    path = make_graphs(tmp_path / "g.h5")
    blob = path.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "text.h5").write_text("node,feature\n1,2\n")
    (tmp_path / "empty.h5").write_bytes(b"")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.arange(3)
    for name, msg in [("trunc.h5", "not a readable HDF5 file"), ("text.h5", "not a readable HDF5 file"),
                      ("empty.h5", "not a readable HDF5 file"), ("other.h5", "not a sciml-h5 file")]:
        with pytest.raises(DataFormatError, match=f"{name}: {msg}"):
            open_dataset(tmp_path / name)
        assert main(["data", "validate", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and name in err and msg in err, err
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        open_dataset(tmp_path / "missing.h5")


def test_non_monotone_offsets_and_count_mismatch(tmp_path):
    path = make_graphs(tmp_path / "g.h5")
    bad = tmp_path / "bad.h5"
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        p = f["train/node_ptr"]
        p[5] = p[7]
    problems = validate_file(bad)
    assert any("node_ptr: offsets not monotone (decrease at sample 5" in p for p in problems), problems
    with pytest.raises(DataFormatError, match="node_ptr: offsets .* are not 21 non-decreasing"):
        open_dataset(bad)
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        f["train/x"].resize((100, 8))
    problems = validate_file(bad, checksums=False)
    assert any("x: 100 rows along axis 0, but node_ptr[-1] = 290 (counts disagree)" in p for p in problems)


def _rewrite_with_checksum(path, name, values):
    """Overwrite a dataset and store its new sha256 (computed here with hashlib, as the format defines it), so that
    only a consistency check can catch the change."""
    import hashlib

    with h5py.File(path, "r+") as f:
        d = f[name]
        d[...] = values
        d.attrs["sha256"] = hashlib.sha256(np.ascontiguousarray(d[()]).tobytes()).hexdigest()


@pytest.mark.parametrize("kind", ["graphs", "atoms", "series"])
def test_meta_sizes_must_equal_ptr_differences(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind == "graphs":
        path, ptr = make_graphs(tmp_path / "g.h5"), "node_ptr"
    elif kind == "atoms":
        recs = [Data(pos=torch.randn(3 + i, 3, dtype=torch.float64), z=torch.randint(1, 9, (3 + i,)),
                     cell=torch.eye(3)[None], pbc=torch.ones(1, 3, dtype=torch.bool),
                     tags=torch.zeros(3 + i, dtype=torch.long), fixed=torch.zeros(3 + i, dtype=torch.bool))
                for i in range(6)]
        path, ptr = write_dataset(tmp_path / "a.h5", "atoms", {"train": recs}, source="unit"), "atom_ptr"
    else:
        recs = [TimeSeries(np.sort(rng.random(4 + i)), rng.random((4 + i, 2)).astype(np.float32),
                           np.ones((4 + i, 2), bool)) for i in range(6)]
        path, ptr = write_dataset(tmp_path / "s.h5", "series", {"train": recs}, source="unit"), "ptr"
    assert validate_file(path) == []
    with h5py.File(path) as f:
        sizes = f["train/meta/sizes"][()]
        np.testing.assert_array_equal(sizes, np.diff(f[f"train/{ptr}"][()]))
    sizes[2] += 1
    _rewrite_with_checksum(path, "train/meta/sizes", sizes)
    problems = validate_file(path)
    assert len(problems) == 1 and f"/train/meta/sizes: 1 sample(s) disagree with diff({ptr}) (first: sample 2" \
        in problems[0], problems


def test_edge_ids_out_of_range(tmp_path):
    path = make_graphs(tmp_path / "g.h5")
    with h5py.File(path, "r+") as f:
        f["train/edge_index"][0, 13] = 6  # graph 1 has 6 nodes: ids 0..5
    problems = validate_file(path, checksums=False)
    assert any("edge_index: local node id [6, " in p and "(graph 1) is outside 0..5" in p for p in problems)


def test_nan_inf_detection(tmp_path):
    path = make_fields(tmp_path / "f.h5")
    with h5py.File(path, "r+") as f:
        f["train/fields/u"][2, 1, 3, 4, 0] = np.inf
    problems = validate_file(path, checksums=False)
    assert problems == ["/train/fields/u: non-finite value inf at index (2, 1, 3, 4, 0)"]
    # series: NaN where unobserved is the encoding; NaN in an observed entry is an error
    rec = TimeSeries(np.arange(4.0), np.ones((4, 2)), np.array([[1, 0], [1, 1], [0, 1], [1, 1]], bool), 1)
    spath = write_dataset(tmp_path / "s.h5", "series", {"train": [rec]}, source="unit")
    assert validate_file(spath) == []
    with h5py.File(spath, "r+") as f:
        f["train/values"][1, 0] = np.nan
    assert validate_file(spath, checksums=False) == [
        "/train/values: non-finite value nan at index (1, 0) (an observed entry)"]


def test_missing_and_mistyped_datasets(tmp_path):
    path = make_graphs(tmp_path / "g.h5")
    with h5py.File(path, "r+") as f:
        del f["train/edge_ptr"]
        del f["train/meta/sizes"]
    problems = validate_file(path)
    assert "/train/edge_ptr: missing (required for kind 'graphs')" in problems
    assert "/train/meta/sizes: missing" in problems
    assert any("edge_index: packed by 'edge_ptr', which is missing" in p for p in problems)


CORRUPTIONS = ["truncate-1", "truncate-half", "truncate-header", "zero-superblock", "flip-data", "flip-random",
               "drop-middle", "append-garbage"]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_many_corruptions_never_pass_silently(tmp_path, how):
    """Whatever the damage, either validate reports a problem / refuses the file, or (for damage HDF5 ignores,
    such as trailing garbage) the data read back is still exactly right."""
    path = make_graphs(tmp_path / "g.h5")
    reader = open_dataset(path)
    good = [reader[i] for i in range(20)]
    reader.close()
    blob = bytearray(path.read_bytes())
    rng = np.random.default_rng(CORRUPTIONS.index(how))
    if how == "truncate-1":
        blob = blob[:-1]
    elif how == "truncate-half":
        blob = blob[: len(blob) // 2]
    elif how == "truncate-header":
        blob = blob[:100]
    elif how == "zero-superblock":
        blob[:8] = bytes(8)
    elif how == "flip-data":
        offset, size = raw_offset(path, "train/x")
        for i in rng.integers(offset, offset + size, 3):
            blob[i] ^= 0x5A
    elif how == "flip-random":
        for i in rng.integers(0, len(blob), 16):
            blob[i] ^= 0xFF
    elif how == "drop-middle":
        del blob[len(blob) // 3: len(blob) // 3 + 512]
    elif how == "append-garbage":
        blob += b"garbage" * 10
    path.write_bytes(bytes(blob))
    try:
        problems = validate_file(path)
    except DataFormatError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return
    if problems:
        return
    ds = open_dataset(path)
    for i in range(20):
        for k in ("x", "edge_index", "y"):
            assert torch.equal(ds[i][k], good[i][k])
