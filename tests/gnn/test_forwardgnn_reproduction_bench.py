"""benchmarks/forwardgnn_reproduction.py: its run plan and summary (claim-1 check) against hand-made records, and
its --quick run on the shared Cora (slow)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from sciml.testing import load_script, run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield load_script(BENCH / "forwardgnn_reproduction.py")
    finally:
        sys.path.remove(str(BENCH))


def rec(variant, run_layers, split, accs, dataset="cora", conv="gcn"):
    return {"task": "node", "dataset": dataset, "conv": conv, "variant": variant, "run_layers": run_layers,
            "split": split, "depths": {str(d): {"test_acc": a / 100} for d, a in accs.items()}}


def test_plan_runs_greedy_variants_once_at_the_largest_depth(bench):
    args = argparse.Namespace(datasets=["cora"], convs=["gcn"], splits=[0, 1], variants=["sf", "bp"],
                              layers=[1, 2, 3], task="node")
    runs = bench.plan(args)
    assert [(r["variant"], r["run_layers"], r["split"]) for r in runs] == [
        ("sf", 3, 0), ("bp", 1, 0), ("bp", 2, 0), ("bp", 3, 0), ("sf", 3, 1), ("bp", 1, 1), ("bp", 2, 1),
        ("bp", 3, 1)]


def test_summary_counts_a_depth_once_per_split_and_checks_claim_1(bench):
    runs = [rec("sf", 2, 0, {1: 80, 2: 85}),                       # superseded by the deeper run of split 0
            rec("sf", 4, 0, {1: 81, 2: 86, 3: 87, 4: 88}), rec("sf", 4, 1, {1: 83, 2: 88, 3: 89, 4: 90}),
            rec("bp", 2, 0, {2: 86}), rec("bp", 2, 1, {2: 90}),   # L=2: SF 87 vs BP 88 +- 2 -> within one std
            rec("bp", 3, 0, {3: 92}), rec("bp", 3, 1, {3: 94}),   # L=3: SF 88 vs BP 93 +- 1 -> not
            rec("bp", 4, 0, {4: 85}), rec("bp", 4, 1, {4: 85})]
    text = bench.summary({"runs": runs})
    sf_row = "| cora (acc) | GCN | SF | 82.00 ± 1.0 (n=2) | 87.00 ± 1.0 (n=2) | 88.00 ± 1.0 (n=2) | 89.00 ± 1.0 (n=2) |"
    assert sf_row in text
    assert "| paper: Cora_ML | GCN | SF | 87.75 ± 1.4 |" in text
    assert "| cora | GCN | -1.00 (2.0) | -5.00 (1.0) | +4.00 (0.0) | no / yes |" in text
    runs[5]["depths"]["3"]["test_acc"] = runs[6]["depths"]["3"]["test_acc"] = 0.88
    assert "| cora | GCN | -1.00 (2.0) | +0.00 (0.0) | +4.00 (0.0) | yes / yes |" in bench.summary({"runs": runs})


@pytest.mark.slow
def test_quick_run_on_shared_cora(bench, tmp_path):
    data_dir = load_script(BENCH / "_forwardgnn_data.py").shared_data_dir()
    if not (data_dir / "planetoid" / "Cora").exists():
        pytest.skip(f"{data_dir}: the shared Planetoid Cora is absent")
    runs = run_quick(BENCH / "forwardgnn_reproduction.py", tmp_path / "fwd.json", "--cache-dir", str(tmp_path),
                     timeout=600)["runs"]
    assert {(r["variant"], r["run_layers"]) for r in runs} == {("sf", 2), ("bp", 2)}
    sf = next(r for r in runs if r["variant"] == "sf")
    assert set(sf["depths"]) == {"1", "2"} and all(0.3 < m["test_acc"] <= 1 for m in sf["depths"].values())
