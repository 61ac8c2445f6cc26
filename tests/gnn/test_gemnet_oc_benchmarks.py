"""The GemNet-OC experiment script: the linear baseline against a hand computation (fast) and a --quick smoke run
(slow; no accuracy asserted)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sciml.testing import load_script, run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def _load(name: str):
    return load_script(BENCH / f"{name}.py")


def test_linear_baseline_is_sum_of_reference_energies():
    from torch_geometric.data import Batch, Data

    bench = _load("gemnet_oc_s2ef")
    ref = torch.zeros(84, dtype=torch.float64)
    ref[1], ref[8], ref[29] = -0.5, -4.0, -3.0
    items = [Data(z=torch.tensor([29, 29, 8]), pos=torch.zeros(3, 3), num_nodes=3),
             Data(z=torch.tensor([8, 1, 1]), pos=torch.zeros(3, 3), num_nodes=3)]
    out = bench.LinearBaseline(ref, mean=0.25)(Batch.from_data_list(items))
    assert torch.allclose(out["energy"], torch.tensor([-10.0 + 0.25, -5.0 + 0.25], dtype=torch.float64))
    assert torch.equal(out["forces"], torch.zeros(6, 3))


@pytest.mark.slow
def test_s2ef_quick_runs(tmp_path):
    pytest.importorskip("ase")
    datasets = ["emt"] + (["oc20"] if (Path(DATA) / "molecular" / "oc20_relaxation_trajs").exists() else [])
    result = run_quick(BENCH / "gemnet_oc_s2ef.py", tmp_path / "gemnet_oc_s2ef.json", "--data-root", DATA,
                       "--datasets", *datasets, cwd=tmp_path, timeout=600)
    assert set(result["runs"]) == {f"{d}/{m}" for d in datasets for m in ("linear", "schnet", "gemnet_oc")}
    for run in result["runs"].values():
        assert 0 <= run["efwt"] <= 1 and run["force_mae"] >= 0 and -1 <= run["force_cos"] <= 1


def test_oc20_offset_corrected_energy_mae_by_hand():
    """``gemnet_oc_oc20.evaluate``: per-trajectory mean energy errors removed (ood protocol), forces untouched."""
    from torch_geometric.data import Data

    from sciml.gnn.gemnet_oc.data import AtomsFrames

    bench = _load("gemnet_oc_oc20")
    energies, shifts = [1.0, 2.0, -3.0, 0.5], [1.0, 3.0, 5.0, 5.0]          # trajectories a, a, b, b
    frames = AtomsFrames([Data(pos=torch.zeros(2, 3), z=torch.tensor([1, 8]), energy=torch.tensor([e]),
                               forces=torch.ones(2, 3) * k, fixed=torch.tensor([False, True]), fid=torch.tensor([k]),
                               num_nodes=2)
                          for k, e in enumerate(energies)], sources=["a", "a", "b", "b"])

    class Shifted(torch.nn.Module):
        def forward(self, batch):
            return {"energy": batch.energy.double() + torch.tensor(shifts, dtype=torch.float64)[batch.fid],
                    "forces": batch.forces + 0.5}

    for offset in (False, True):
        m = bench.evaluate(Shifted(), frames, batch_size=3, offset_correct=offset)
        assert m["energy_mae_raw"] == pytest.approx(sum(shifts) / 4)
        # a: errors 1, 3 -> mean 2 -> corrected -1, +1; b: 5, 5 -> 0, 0
        assert m["energy_mae"] == pytest.approx(0.5 if offset else sum(shifts) / 4)
        assert m["force_mae"] == pytest.approx(0.5) and m["num_structures"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("script", ["gemnet_oc_oc20", "gemnet_oc_speed"])
def test_oc20_and_speed_quick_runs(tmp_path, script):
    pytest.importorskip("ase")
    if script == "gemnet_oc_oc20" and not (Path(DATA) / "molecular" / "oc20_relaxation_trajs").exists():
        pytest.skip("needs ../shared/data/molecular/oc20_relaxation_trajs")
    result = run_quick(BENCH / f"{script}.py", tmp_path / f"{script}.json", "--data-root", DATA, cwd=tmp_path,
                       timeout=900)
    if script == "gemnet_oc_oc20":
        assert {k.rsplit("/", 1)[0] for k in result["runs"]} == {f"{p}/{m}" for p in ("id", "ood")
                                                                 for m in ("linear", "schnet", "gemnet_oc")}
        for run in result["runs"].values():
            assert 0 <= run["efwt"] <= 1 and run["force_mae"] >= 0 and -1 <= run["force_cos"] <= 1
    else:
        for run in result["runs"].values():
            assert run["timing"]["ours"]["median_s"] > 0 and run["params"]["ours"] > 0
