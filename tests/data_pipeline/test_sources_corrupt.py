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


# A crafted pickle that, with real scipy classes, reached scipy's C reshape on unchecked arrays through BUILD with a
# (state, slotstate) pair: heap corruption (SIGSEGV / SIGABRT) or, with a large indptr, a hang. It runs in a child
# process so that a regression crashes the child, not the test session.
_CRAFTED = r'''
import pickle, sys
import numpy as np
from sciml.datasets.sources.safe_pickle import safe_loads, sparse_to_dense
from sciml.errors import DataFormatError

def body(obj):
    return pickle.dumps(obj, protocol=2)[2:-1]  # without PROTO and STOP

def newobj(mod, name, build_state):
    return b"\x80\x02" + f"c{mod}\n{name}\n".encode() + b")\x81" + body(build_state) + b"b."

state = {"_shape": (3, 3), "maxprint": 50, "data": np.ones(3), "indices": np.array([0, 1, 2], np.int32),
         "indptr": np.array([0, 2000, 5, 3000], np.int32)}
big = dict(state, indptr=np.array([0, 2**31 - 1, 5, 2**31 - 1], np.int32))
payloads = {
    "slotstate": newobj("scipy.sparse", "csr_matrix", (state, {"shape": (1, 9)})),
    "slotstate_big": newobj("scipy.sparse._csr", "csr_matrix", (big, {"shape": (2**20, 2**20)})),
    "slotstate_only": newobj("scipy.sparse", "csc_matrix", (None, {"_shape": (1, 9), "indptr": state["indptr"]})),
    "dict_bad_indptr": newobj("scipy.sparse", "csr_matrix", big),
    "codecs_not_latin1": b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x08\x00\x00\x00rot_13_x\x86R.",
    "codecs_bytes": b"\x80\x02c_codecs\nencode\nC\x03abcX\x06\x00\x00\x00latin1\x86R.",
}
for name, payload in payloads.items():
    try:
        obj = safe_loads(payload, source=name + ".pkl")
        sparse_to_dense(obj, name + ".pkl")
    except DataFormatError as err:
        assert "\n" not in str(err) and name in str(err), err
        print(name, "refused:", err, flush=True)
    else:
        print(name, "ACCEPTED", flush=True)
'''


def test_crafted_sparse_pickle_is_refused_cleanly(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONSAFEPATH="1")
    proc = subprocess.run([sys.executable, "-c", _CRAFTED], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert len(lines) == 6 and all(" refused: " in line for line in lines), proc.stdout


def test_safe_pickle_still_reads_real_sparse_and_bytes():
    import pickle

    import scipy.sparse as sp

    from sciml.datasets.sources.safe_pickle import safe_loads, sparse_to_dense
    dense = np.array([[0, 2.0, 0], [1.5, 0, 0]])
    for m in (sp.csr_matrix(dense), sp.csc_matrix(dense), sp.coo_matrix(dense)):
        obj = safe_loads(pickle.dumps(m, protocol=2))
        np.testing.assert_array_equal(sparse_to_dense(obj, "m.pkl"), dense)
    assert safe_loads(pickle.dumps({"b": b"\x00\xffab"}, protocol=2)) == {"b": b"\x00\xffab"}
