"""benchmarks/operators_darcy.py --datasets real32: the split of the 50-sample 32² file (fast, against the raw
file) and a --quick smoke run (slow)."""
from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from sciml.testing import load_script, run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = Path(os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data")))
FILE = DATA / "pde" / "neuraloperator" / "darcy_test_32.pt"
needs_file = pytest.mark.skipif(not FILE.exists(), reason=f"{FILE} is not available")


def _bench():
    return load_script(BENCH / "operators_darcy.py")


@needs_file
def test_real32_split_is_disjoint_and_in_file_order(tmp_path):
    bench = _bench()
    data = bench.load_dataset("real32", Namespace(data_root=str(DATA), cache=str(tmp_path), quick=False))
    raw = torch.load(FILE, weights_only=False)
    a, u = raw["x"].float(), raw["y"].float()
    ntr, nva, nte = bench.REAL32_SPLIT
    assert (ntr, nva, nte) == (30, 10, 10) and len(a) == 50
    for name, lo, hi in (("train", 0, ntr), ("val", ntr, ntr + nva), ("test", ntr + nva, ntr + nva + nte)):
        x, y = data[name]
        assert x.shape == (hi - lo, 1, 32, 32)
        torch.testing.assert_close(x[:, 0], a[lo:hi].reshape(-1, 32, 32))
        torch.testing.assert_close(y[:, 0], u[lo:hi].reshape(-1, 32, 32))


@needs_file
@pytest.mark.slow
def test_real32_quick_run(tmp_path):
    runs = run_quick(BENCH / "operators_darcy.py", tmp_path / "real32.json", "--datasets", "real32", "--models", "mgno",
                     "unet", env={"SCIML_BENCH_CACHE": str(tmp_path / "cache")}, timeout=600)["runs"]
    assert set(runs) == {"real32/mgno/seed0", "real32/unet/seed0"}
    assert all(r["train_samples"] == 30 and r["test_rel_l2_e2"] > 0 for r in runs.values())


@needs_file
def test_the_16_file_is_the_32_file_at_every_other_node(tmp_path):
    """Why real32's ``test16`` is a resolution transfer on the same test samples: darcy_test_16.pt =
    darcy_test_32.pt[:, ::2, ::2] (inputs and solutions), and the benchmark's test16 = those 10 samples."""
    r32, r16 = torch.load(FILE, weights_only=False), torch.load(FILE.with_name("darcy_test_16.pt"), weights_only=False)
    for k in ("x", "y"):
        assert torch.equal(r32[k].reshape(50, 32, 32)[:, ::2, ::2], r16[k].reshape(50, 16, 16))
    data = _bench().load_dataset("real32", Namespace(data_root=str(DATA), cache=str(tmp_path), quick=False))
    a16, u16 = data["extra"]["test16"]
    torch.testing.assert_close(a16, data["test"][0][:, :, ::2, ::2])
    torch.testing.assert_close(u16, data["test"][1][:, :, ::2, ::2])
