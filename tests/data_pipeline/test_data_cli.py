"""`sciml data` commands: inspect, validate, merge, and the convert/generate plumbing (toy registries)."""
import json

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import sciml.datasets.cli as data_cli
from sciml.cli.main import main
from sciml.config import Registry
from sciml.datasets.reader import open_dataset
from sciml.datasets.records import FieldSample, TimeSeries
from sciml.datasets.schema import iter_datasets, validate_file
from sciml.datasets.shards import (merge_shards, parse_shard, resolve_shard, shard_from_env, shard_path,
                                   shard_range)
from sciml.datasets.writer import DataSpec, write_dataset
from sciml.errors import ConfigError, DataFormatError

GENERATORS = Registry("generator")
CONVERTERS = Registry("converter")


@GENERATORS.register("toy_fields")
def toy_fields(_input=None, *, n: int = 10, size: int = 4, seed: int = 0, fail_at: int = -1,
               shard: tuple[int, int] | None = None) -> DataSpec:
    """Reproducible per sample index, whatever the sharding."""
    def records(indices):
        for i in indices:
            if i == fail_at:
                raise DataFormatError(f"toy_fields: sample {i} failed")
            rng = np.random.default_rng([seed, i])
            yield FieldSample({"u": rng.random((2, size, size, 1), dtype=np.float32)}, {"index": i})

    train = shard_range(n, shard)
    val = shard_range(3, shard)
    return DataSpec(kind="fields", splits={"train": records(train), "val": records([100 + i for i in val])},
                    source="generator:toy_fields", config={"n": n, "size": size, "seed": seed},
                    coords={"x": np.linspace(0, 1, size)}, sizes={"train": len(train), "val": len(val)})


@CONVERTERS.register("toy_csv")
def toy_csv(path, *, label_column: int = -1, shard: tuple[int, int] | None = None) -> DataSpec:
    """Lines of comma-separated floats; one univariate series per line, the label in ``label_column``."""
    lines = path.read_text().splitlines()

    def records():
        for line in lines:
            values = [float(v) for v in line.split(",")]  # ValueError on bad input
            y = int(values.pop(label_column))
            yield TimeSeries(np.arange(len(values), dtype=float), np.array(values)[:, None],
                             np.ones((len(values), 1), bool), y)

    return DataSpec(kind="series", splits={"train": records()}, source=f"toy_csv:{path.name}", config={})


def arrays(path):
    with h5py.File(path) as f:
        return {f"{s}/{name}": d[()] for s in f for name, d in iter_datasets(f[s])}


def assert_same_data(a, b):
    x, y = arrays(a), arrays(b)
    assert x.keys() == y.keys()
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k


@pytest.fixture
def registries(monkeypatch):
    monkeypatch.setattr(data_cli, "generators", lambda: GENERATORS)
    monkeypatch.setattr(data_cli, "converters", lambda: CONVERTERS)


# -------------------------------------------------------------------------------------------------- shards
def test_shard_names_and_parsing(tmp_path):
    assert shard_path(tmp_path, 3, 10) == tmp_path / "part-00003-of-00010.h5"
    assert shard_path(tmp_path / "darcy.h5", 0, 2) == tmp_path / "darcy-part-00000-of-00002.h5"
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "a/b", "1", "-1/3"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    # nested ranges: the k sub-shards of shard i cover it exactly, in order
    for n, k in [(10, 3), (7, 4), (2, 3)]:
        for i in range(n):
            whole = list(shard_range(101, (i, n)))
            assert [j for w in range(k) for j in shard_range(101, (i * k + w, n * k))] == whole


def test_shard_default_from_slurm_env(monkeypatch):
    assert shard_from_env({}) is None
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    assert shard_from_env(env) == (3, 4)
    assert shard_from_env({**env, "SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1"}) == (3, 4)
    assert resolve_shard("1/2", env) == (1, 2)  # an explicit --shard wins
    assert resolve_shard(None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1"}) is None
    with pytest.raises(ConfigError, match="Slurm array task 7"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4"})


# -------------------------------------------------------------------------------------------------- generate
def test_generate_workers_and_shards_give_identical_data(tmp_path, registries, monkeypatch, capsys):
    single = data_cli.generate("toy_fields", tmp_path / "one.h5", ["n=9"], progress="none")
    two = data_cli.generate("toy_fields", tmp_path / "two.h5", ["n=9"], workers=2, progress="none")
    assert_same_data(single, two)
    assert validate_file(two) == []
    with h5py.File(two) as f:
        assert "merged_from" not in f.attrs and "shard_index" not in f.attrs
    # Slurm array of 2 tasks (one of them with 2 workers), then merge: still the same data
    for task, workers in [(0, 1), (1, 2)]:
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
        assert main(["data", "generate", "toy_fields", str(tmp_path / "parts"), "n=9", "--workers", str(workers),
                     "--progress", "log"]) == 0
    assert "wrote" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["part-00000-of-00002.h5",
                                                                      "part-00001-of-00002.h5"]
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert main(["data", "merge", str(tmp_path / "parts"), "-o", str(tmp_path / "merged.h5")]) == 0
    assert_same_data(single, tmp_path / "merged.h5")
    ds = open_dataset(tmp_path / "merged.h5", "val")
    assert [int(ds[i]["params"]["index"]) for i in range(3)] == [100, 101, 102]


def test_generate_errors_leave_nothing(tmp_path, registries, capsys):
    out = tmp_path / "out.h5"
    assert main(["data", "generate", "toy_fields", str(out), "sizee=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'sizee'" in err and "did you mean 'size'" in err
    assert main(["data", "generate", "toy_fields", str(out), "n=ten"]) == 2
    assert "toy_fields.n: expected int" in capsys.readouterr().err
    assert main(["data", "generate", "nope", str(out)]) == 2
    assert "unknown generator 'nope'" in capsys.readouterr().err
    for workers in ("1", "2"):
        assert main(["data", "generate", "toy_fields", str(out), "n=8", "fail_at=5", "--workers", workers]) == 2
        err = capsys.readouterr().err
        assert err.strip().endswith("toy_fields: sample 5 failed") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []
    data_cli.generate("toy_fields", out, progress="none")
    with pytest.raises(ConfigError, match="output exists; pass --overwrite"):
        data_cli.generate("toy_fields", out, progress="none")
    data_cli.generate("toy_fields", out, ["n=2"], overwrite=True, progress="none")
    assert len(open_dataset(out)) == 2


# -------------------------------------------------------------------------------------------------- convert
def test_convert_plumbing(tmp_path, registries, capsys):
    src = tmp_path / "in.csv"
    src.write_text("1,2,3,0\n4,5,1\n")
    out = tmp_path / "out.h5"
    assert main(["data", "convert", "toy_csv", str(src), str(out), "--progress", "none"]) == 0
    ds = open_dataset(out)
    assert len(ds) == 2 and ds[0]["values"][:, 0].tolist() == [1, 2, 3] and ds[1]["y"].item() == 1
    with h5py.File(out) as f:
        assert f.attrs["source"] == "toy_csv:in.csv"
    # malformed input: one line naming the input file, exit 2, nothing written
    src.write_text("1,2,0\n1,x,1\n")
    bad = tmp_path / "bad.h5"
    capsys.readouterr()
    assert main(["data", "convert", "toy_csv", str(src), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{src}: ValueError: could not convert string to float" in err
    assert not bad.exists() and not list(tmp_path.glob("*.partial"))
    assert main(["data", "convert", "toy_csv", str(tmp_path / "absent.csv"), str(bad)]) == 2
    assert "absent.csv: no such file" in capsys.readouterr().err
    assert main(["data", "convert", "toy_csv", str(src), str(bad), "label=1"]) == 2
    assert "unknown key 'label'" in capsys.readouterr().err
    assert not bad.exists()


# -------------------------------------------------------------------------------------------------- merge
def make_shards(tmp_path, n=3):
    recs = [Data(x=torch.full((i + 2, 2), float(i)), edge_index=torch.tensor([[0], [1]]), y=torch.tensor([i]))
            for i in range(7)]
    parts = tmp_path / "parts"
    for i in range(n):
        r = shard_range(len(recs), (i, n))
        write_dataset(shard_path(parts, i, n), "graphs", {"train": recs[r.start:r.stop], "val": recs[:1]},
                      source="unit", shard=(i, n))
    whole = write_dataset(tmp_path / "whole.h5", "graphs", {"train": recs, "val": recs[:1] * n}, source="unit")
    return parts, whole


def test_merge_success_gap_duplicate(tmp_path, capsys):
    parts, whole = make_shards(tmp_path)
    merged = merge_shards([parts], tmp_path / "m.h5")
    assert_same_data(whole, merged)
    assert validate_file(merged) == []
    with h5py.File(merged) as f:
        assert list(f.attrs["merged_from"]) == [f"part-0000{i}-of-00003.h5" for i in range(3)]
    files = sorted(parts.iterdir())
    out = tmp_path / "x.h5"
    assert main(["data", "merge", str(files[0]), str(files[2]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "gap: 1 of 3 shards missing (index 1)" in err and err.count("\n") == 1
    assert main(["data", "merge", *map(str, files), str(files[1]), "-o", str(out)]) == 2
    assert "duplicate shard 1 of 3" in capsys.readouterr().err
    other = write_dataset(tmp_path / "o" / "part-00001-of-00004.h5", "graphs", {"train": []}, source="u")
    assert main(["data", "merge", str(files[0]), str(other), "-o", str(out)]) == 2
    assert "shard 1 of 4, but other shards are of 3" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_merge_refuses_corrupted_or_incomplete_shard(tmp_path, capsys):
    parts, _ = make_shards(tmp_path)
    files = sorted(parts.iterdir())
    with h5py.File(files[1], "r+") as f:
        f["train/x"][0, 0] = 99.0
    assert main(["data", "merge", str(parts), "-o", str(tmp_path / "m.h5")]) == 2
    assert "part-00001-of-00003.h5: /train/x: sha256 checksum mismatch" in capsys.readouterr().err
    with h5py.File(files[1], "r+") as f:
        del f.attrs["complete"]
    assert main(["data", "merge", str(parts), "-o", str(tmp_path / "m.h5")]) == 2
    assert "part-00001-of-00003.h5: incomplete file" in capsys.readouterr().err
    assert not (tmp_path / "m.h5").exists()


def test_merge_index(tmp_path):
    parts, whole = make_shards(tmp_path)
    index = merge_shards([parts], tmp_path / "index.h5", index=True)
    assert index.stat().st_size < sum(p.stat().st_size for p in parts.iterdir())
    assert_same_data(whole, index)
    assert validate_file(index) == []
    a, b = open_dataset(whole), open_dataset(index)
    assert all(torch.equal(a[i].x, b[i].x) and torch.equal(a[i].edge_index, b[i].edge_index) for i in range(7))
    (parts / "part-00002-of-00003.h5").unlink()
    with pytest.raises(DataFormatError, match="part-00002-of-00003.h5 are missing"):
        open_dataset(index)


# -------------------------------------------------------------------------------------------------- inspect/validate
def test_inspect_and_validate_output(tmp_path, capsys, monkeypatch):
    _, whole = make_shards(tmp_path)
    assert main(["data", "inspect", str(whole)]) == 0
    out = capsys.readouterr().out
    assert "kind graphs" in out and "/train: 7 samples, sizes min/mean/max 2/5.0/8" in out
    assert "edge_index" in out and "packed by edge_ptr" in out
    assert main(["data", "inspect", "--json", str(whole)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"]["datasets"]["x"]["shape"] == [35, 2] and info["complete"] == 1
    assert main(["data", "validate", str(whole)]) == 0
    assert capsys.readouterr().out == f"{whole}: ok\n"
    # --shard from the Slurm array: task 1 of 2 takes every second file
    files = sorted((tmp_path / "parts").iterdir())
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert main(["data", "validate", *map(str, files)]) == 0
    assert capsys.readouterr().out == f"{files[1]}: ok\n"
    assert main(["data", "validate", "--shard", "0/2", *map(str, files)]) == 0
    assert capsys.readouterr().out == f"{files[0]}: ok\n{files[2]}: ok\n"
    assert main(["data", "merge", str(tmp_path / "parts"), "-o", str(tmp_path / "m.h5")]) == 0
    assert "nothing to do" in capsys.readouterr().err and not (tmp_path / "m.h5").exists()
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    with h5py.File(files[2], "r+") as f:
        f["train/node_ptr"][1] = 50
    assert main(["data", "validate", *map(str, files)]) == 2
    err = capsys.readouterr().err
    assert "invalid: " in err and "1 of 3 files are invalid" in err and "node_ptr" in err


def test_merge_refuses_shards_of_different_runs_and_unchecked_shards(tmp_path):
    recs = [Data(x=torch.full((i + 2, 2), float(i)), edge_index=torch.tensor([[0], [1]])) for i in range(4)]

    def shards(folder, sources, configs):
        for i in range(2):
            write_dataset(shard_path(tmp_path / folder, i, 2), "graphs", {"train": recs[2 * i:2 * i + 2]},
                          source=sources[i], config=configs[i], shard=(i, 2))
        return tmp_path / folder

    same = shards("same", ["run", "run"], [{"seed": 1}, {"seed": 1}])
    merge_shards([same], tmp_path / "ok.h5")
    for folder, sources, configs, what in [("src", ["run-a", "run-b"], [{"seed": 1}] * 2, "source"),
                                           ("cfg", ["run"] * 2, [{"seed": 1}, {"seed": 2}], r"config.*seed")]:
        parts = shards(folder, sources, configs)
        with pytest.raises(DataFormatError, match=r"part-00001-of-00002\.h5: " + what + ".*different runs"):
            merge_shards([parts], tmp_path / f"{folder}.h5")
        assert not (tmp_path / f"{folder}.h5").exists()
        merge_shards([parts], tmp_path / f"{folder}.h5", force=True)
        assert len(open_dataset(tmp_path / f"{folder}.h5")) == 4
    # a shard whose checksum was stripped is not merged unverified
    with h5py.File(shard_path(same, 1, 2), "r+") as f:
        del f["train/x"].attrs["sha256"]
    with pytest.raises(DataFormatError, match=r"part-00001-of-00002\.h5: /train/x: no sha256"):
        merge_shards([same], tmp_path / "nosum.h5")
    merge_shards([same], tmp_path / "nosum.h5", force=True)
