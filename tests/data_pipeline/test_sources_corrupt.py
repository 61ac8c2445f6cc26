"""Every converter on corrupted copies of real files (truncated, bytes flipped, lines dropped): either a
DataFormatError whose one-line message names the file, or (for a flip that lands in a numeric payload) a normal
result; never another exception, never a crash. Truncation and dropped lines must always be detected."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from sciml.datasets.sources import CONVERTERS
from sciml.errors import DataFormatError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# (converter, folder or file to copy, file inside the copy to corrupt, is text, options)
CASES = [
    ("planetoid", "planetoid/Cora", "raw/ind.cora.x", False, {}),
    ("planetoid", "planetoid/Cora", "raw/ind.cora.graph", False, {}),
    ("planetoid", "planetoid/CiteSeer", "raw/ind.citeseer.test.index", True, {}),
    ("tudataset", "tudataset/MUTAG", "raw/MUTAG_A.txt", True, {}),
    ("tudataset", "tudataset/MUTAG", "raw/MUTAG_node_labels.txt", True, {}),
    ("tudataset", "tudataset/ENZYMES", "raw/ENZYMES_node_attributes.txt", True, {"use_node_attr": True}),
    ("uea_ts", "timeseries/ts/BasicMotions", "BasicMotions_TRAIN.ts", True, {}),
    ("uea_ts", "timeseries/ts/JapaneseVowels", "JapaneseVowels_TEST.ts", True, {"dataset": "JapaneseVowels"}),
    ("npz_graph", "amazon_coauthor/amazon-photo.zip", "", False, {}),
    ("neuraloperator_pt", "pde/neuraloperator/darcy_test_16.pt", "", False, {}),
    ("matlab", "pde/pinns_raissi/burgers_shock.mat", "", False, {}),
    ("npz_fields", "pde/deepxde/Burgers.npz", "", False, {}),
    ("ase", "molecular/oc20_relaxation_trajs/random1000100.traj", "", False, {}),
    ("ase", "molecular/aspirin_md17_snippet.xyz", "", True, {}),
]


def _copy(tmp: Path, rel: str, inner: str) -> tuple[Path, Path]:
    src = DATA / rel
    dst = tmp / Path(rel).name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst, (dst / inner if inner else dst)


def _run(name, path, options):
    spec = CONVERTERS.get(name)(path, **options)
    for records in spec.splits.values():
        for _ in records:
            pass


def _expect_error(name, path, options, target: Path):
    with pytest.raises(DataFormatError) as info:
        _run(name, path, options)
    msg = str(info.value)
    assert "\n" not in msg and target.name in msg, msg
    return msg


def _maybe_error(name, path, options, target: Path):
    try:
        _run(name, path, options)
    except DataFormatError as err:
        assert "\n" not in str(err) and target.name in str(err), str(err)
        return True
    return False


@pytest.mark.parametrize("name,rel,inner,text,options", CASES,
                         ids=[f"{c[0]}-{Path(c[2] or c[1]).name}" for c in CASES])
def test_corrupted_real_files(tmp_path, name, rel, inner, text, options):
    if not (DATA / rel).exists():
        pytest.skip(f"real data {DATA / rel} not present")
    if name == "ase" and importlib.util.find_spec("ase") is None:
        pytest.skip("needs package ase")
    path, target = _copy(tmp_path, rel, inner)
    original = target.read_bytes()
    _run(name, path, options)  # the intact copy converts

    # truncated: always an error
    for keep in (len(original) // 2 + 7, 10, 0):
        target.write_bytes(original[:keep])
        if text and keep == len(original) // 2 + 7:
            # cutting a text table mid-way may leave a well-formed shorter file: cut inside a line instead
            cut = original.rfind(b"\n", 0, keep)
            target.write_bytes(original[:cut - 1])
        _expect_error(name, path, options, target)

    # bytes flipped: an error or a (different) result, nothing else
    rng = np.random.default_rng(0)
    detected = 0
    for _ in range(6):
        data = bytearray(original)
        for pos in rng.integers(0, len(data), 8):
            data[pos] ^= 0xFF
        target.write_bytes(bytes(data))
        detected += _maybe_error(name, path, options, target)
    assert detected >= 1 or not text

    if text:  # a line dropped: counts disagree (or a record goes missing: compare by count)
        lines = original.splitlines(keepends=True)
        body = [i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith((b"@", b"#"))]
        drop = body[len(body) // 2]
        target.write_bytes(b"".join(lines[:drop] + lines[drop + 1:]))
        if name == "uea_ts" or name == "ase" or target.name.endswith("test.index"):
            # one instance fewer is still a valid file for these formats; it must not crash
            _maybe_error(name, path, options, target)
        else:
            _expect_error(name, path, options, target)
        # wrong column counts
        lines2 = list(lines)
        lines2[drop] = lines2[drop].rstrip(b"\n") + b",1,2\n" if name != "uea_ts" else b"1,2:3\n"
        target.write_bytes(b"".join(lines2))
        _maybe_error(name, path, options, target) if name == "ase" else _expect_error(name, path, options, target)


def test_failed_conversion_leaves_no_output(tmp_path):
    from sciml.datasets.writer import write_spec
    tu = tmp_path / "TOY"
    tu.mkdir()
    (tu / "TOY_A.txt").write_text("1, 2\n2, 1\n3, 4\n")
    (tu / "TOY_graph_indicator.txt").write_text("1\n1\n2\n2\n")
    (tu / "TOY_graph_labels.txt").write_text("0\n1\n")
    spec = CONVERTERS.get("tudataset")(tu)
    out = tmp_path / "out.h5"
    write_spec(out, spec)
    assert out.exists()
    # a record-level error surfacing while writing: nothing left behind
    (tmp_path / "X_TRAIN.ts").write_text("@classLabel true a b\n@data\n1,2:a\n1,2:c\n")
    spec = CONVERTERS.get("uea_ts")(tmp_path / "X_TRAIN.ts")
    bad = tmp_path / "bad.h5"
    with pytest.raises(DataFormatError, match=r"X_TRAIN\.ts:4: unknown class label 'c'"):
        write_spec(bad, spec)
    assert not bad.exists() and not list(tmp_path.glob("bad.h5*"))
