"""The operator benchmark scripts: --quick smoke runs (slow; no timing or accuracy asserted) write result files with
the expected runs, and a restarted run resumes instead of redoing them."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from sciml.testing import run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
HAS_FNO = importlib.util.find_spec("neuralop") is not None or importlib.util.find_spec("sciml.operators.fno")


def _run(script: str, *args: str, tmp_path: Path) -> dict:
    return run_quick(BENCH / f"{script}.py", tmp_path / f"{script}.json", *args,
                     env={"SCIML_BENCH_CACHE": str(tmp_path / "cache")}, timeout=600)


def _models():
    return ["mgno", "unet"] + (["fno"] if HAS_FNO else [])


@pytest.mark.slow
def test_darcy_quick(tmp_path):
    datasets = ["gen16"] + (["real16"] if (Path(DATA) / "pde" / "neuraloperator").exists() else [])
    res = _run("operators_darcy", "--datasets", *datasets, "--models", *_models(), tmp_path=tmp_path)
    assert set(res["runs"]) == {f"{d}/{m}/seed0" for d in datasets for m in _models()}
    for rec in res["runs"].values():
        assert rec["test_rel_l2_e2"] > 0 and rec["params"] > 0
    # a second start finds every run done
    again = _run("operators_darcy", "--datasets", *datasets, "--models", *_models(), tmp_path=tmp_path)
    assert again["resumed"] == 1 and again["runs"] == res["runs"]


@pytest.mark.slow
def test_timedep_quick(tmp_path):
    runs = ["sinenet1", "sinenet2_tangled", "unet"] + (["fno"] if HAS_FNO else [])
    res = _run("operators_timedep", "--datasets", "dr_box", "--runs", *runs, tmp_path=tmp_path)
    assert set(res["runs"]) == {f"dr_box/{r}/seed0" for r in runs}
    assert all(len(r["rollout_per_step_pct"]) == r["rollout_steps"] for r in res["runs"].values())


@pytest.mark.slow
def test_speed_quick(tmp_path):
    res = _run("operators_speed", "--groups", "darcy", tmp_path=tmp_path)
    rec = res["runs"]["darcy/16"]
    assert rec["models"]["mgno"]["train_ratio_vs_ref"] == 1.0
