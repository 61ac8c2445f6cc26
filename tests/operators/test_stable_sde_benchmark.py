"""benchmarks/stable_sde_uea.py: its summary/table helpers against hand-made records (fast) and its --quick smoke run
on the shared BasicMotions files (slow; no accuracy or timing asserted)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sciml.testing import load_script, run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = Path(os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data")))


def _load():
    return load_script(BENCH / "stable_sde_uea.py")


def test_summary_and_table_from_records():
    bench = _load()

    class Fake:
        data = {"runs": {"A/0.3/lsde/seed0": {"test_acc": 0.5, "test_f1": 0.4, "wall_s": 2.0, "epochs": 10},
                         "A/0.3/lsde/seed1": {"test_acc": 1.0, "test_f1": 0.8, "wall_s": 4.0, "epochs": 30}}}

    cfg = {"datasets": ["A"], "rates": [0.3], "models": ["lsde", "ncde"], "seeds": [0, 1]}
    s = bench.summarize(Fake(), cfg)
    assert s["A"]["0.3"]["lsde"]["test_acc"]["mean"] == 0.75 and s["A"]["0.3"]["lsde"]["complete"]
    assert abs(s["A"]["0.3"]["lsde"]["test_acc"]["std"] - 0.3535533905932738) < 1e-12  # sample std of {0.5, 1}
    assert "ncde" not in s["A"]["0.3"]
    assert "| A | 30 % | 75.0 ± 35.4 | — |" in bench.table(s, cfg)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "timeseries/ts/BasicMotions").exists(), reason="../shared/data/timeseries absent")
def test_quick_run(tmp_path):
    data = run_quick(BENCH / "stable_sde_uea.py", tmp_path / "quick.json", cwd=tmp_path, timeout=600)
    assert len(data["runs"]) == 6  # 2 rates x 3 models x 1 seed
    assert set(data["summary"]["BasicMotions"]) == {"0.0", "0.5"}
