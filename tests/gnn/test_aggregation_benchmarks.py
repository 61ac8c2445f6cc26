"""The LCM experiment scripts: their data builders against brute force (fast), and --quick smoke runs (slow; no
timing or accuracy asserted)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from sciml.testing import load_script, run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def _load(name: str):
    return load_script(BENCH / f"{name}.py")


def test_second_minimum_targets_against_sorting():
    sm = _load("lcm_second_minimum")
    data = sm.make_multisets(200, 2, 16, seed=3)
    ptr, values = data["ptr"], data["values"]
    weights = 2 ** torch.arange(7, -1, -1)
    assert torch.equal((data["bits"] * weights).sum(1), values)  # bits, most significant first
    for s in range(200):
        members = sorted(values[ptr[s]:ptr[s + 1]].tolist())
        assert 2 <= len(members) <= 16
        assert int((data["y"][s] * weights).sum()) == members[1]  # with multiplicity
    bits, bptr, y = sm.batch_of(data, torch.tensor([5, 0, 9]))
    assert torch.equal(bits, torch.cat([data["bits"][ptr[s]:ptr[s + 1]] for s in (5, 0, 9)]))
    assert bptr.tolist() == [0] + torch.cumsum(data["sizes"][[5, 0, 9]], 0).tolist()
    assert torch.equal(y, data["y"][[5, 0, 9]])


def test_tu_folds_are_a_stratified_partition():
    tu = _load("lcm_tu")
    y = torch.tensor([0] * 47 + [1] * 23 + [2] * 10)[torch.randperm(80, generator=torch.Generator().manual_seed(0))]
    folds = tu.stratified_folds(y, 10, seed=0)
    assert sorted(torch.cat(folds).tolist()) == list(range(80))
    for f in folds:
        counts = torch.bincount(y[f], minlength=3)
        assert (counts - torch.tensor([4.7, 2.3, 1.0])).abs().max() <= 1
    rest = torch.cat(folds[1:])
    train, val = tu.stratified_holdout(rest, y, 0.1, seed=0)
    assert sorted(torch.cat([train, val]).tolist()) == sorted(rest.tolist())
    assert set(torch.unique(y[val]).tolist()) == {0, 1, 2}


def test_result_file_resumes_only_the_same_config(tmp_path):
    common = _load("_common")
    path = tmp_path / "r.json"
    rf = common.ResultFile(path, {"a": 1})
    rf.add("sum/seed0", {"acc": 0.5})
    again = common.ResultFile(path, {"a": 1})
    assert again.done("sum/seed0") and not again.done("sum/seed1")
    assert again.data["resumed"] == 1 and json.loads(path.read_text())["runs"]["sum/seed0"] == {"acc": 0.5}
    assert again.data["machine"] == rf.data["machine"] and len(again.data["resumed_on"]) == 1
    with pytest.raises(SystemExit, match="another config"):
        common.ResultFile(path, {"a": 2})
    assert not common.ResultFile(path, {"a": 2}, fresh=True).done("sum/seed0")
    assert common.mean_std([1.0, 3.0])["std"] == pytest.approx(2 ** 0.5)
    # read-only (figures from finished runs): the same runs, and the file stays byte for byte
    before = path.read_text()
    ro = common.ResultFile(path, {"a": 1}, read_only=True)
    assert ro.done("sum/seed0")
    ro.set_summary({"sum": {"acc": 0.0}})
    ro.add("sum/seed1", {"acc": 1.0})
    assert path.read_text() == before


def test_result_file_merges_runs_of_the_same_config(tmp_path):
    common = _load("_common")
    cfg = {"a": 1, "budgets": {"p": 10, "q": 20}}
    one = common.ResultFile(tmp_path / "one.json", {"a": 1, "budgets": {"p": 10}})  # a file that ran only p
    one.add("p/seed1", {"acc": 0.25})
    one.add("p/seed0", {"acc": 0.0})
    main = common.ResultFile(tmp_path / "all.json", cfg)
    main.add("p/seed0", {"acc": 0.5})
    assert main.merge(tmp_path / "one.json", partial=("budgets",)) == 1
    stored = json.loads((tmp_path / "all.json").read_text())
    assert stored["runs"] == {"p/seed0": {"acc": 0.5}, "p/seed1": {"acc": 0.25}}  # ours kept, theirs added
    assert stored["merged_from"][0]["file"] == "one.json" and stored["merged_from"][0]["runs"] == ["p/seed1"]
    assert main.merge(tmp_path / "one.json", partial=("budgets",)) == 0
    reopened = common.ResultFile(tmp_path / "all.json", cfg)
    assert reopened.data["merged_from"] == json.loads((tmp_path / "all.json").read_text())["merged_from"]
    assert len(reopened.data["merged_from"]) == 2 and reopened.done("p/seed1")
    other_budget = common.ResultFile(tmp_path / "two.json", {"a": 1, "budgets": {"p": 11}})
    other_budget.add("p/seed2", {"acc": 1.0})
    with pytest.raises(SystemExit, match=r"budgets\[p\]"):
        main.merge(tmp_path / "two.json", partial=("budgets",))
    with pytest.raises(SystemExit, match="budgets"):  # not declared partial: the whole entry must be equal
        main.merge(tmp_path / "one.json")
    other_a = common.ResultFile(tmp_path / "three.json", {"a": 2, "budgets": {"p": 10}})
    other_a.add("p/seed3", {"acc": 1.0})
    with pytest.raises(SystemExit, match=r"\(a differ"):
        main.merge(tmp_path / "three.json", partial=("budgets",))
    assert not main.done("p/seed2") and not main.done("p/seed3")


def _run(script: str, tmp_path: Path, *extra: str) -> dict:
    return run_quick(BENCH / f"{script}.py", tmp_path / f"{script}.json", *extra, cwd=tmp_path, timeout=600)


@pytest.mark.slow
def test_second_minimum_quick_runs(tmp_path):
    result = _run("lcm_second_minimum", tmp_path)
    assert set(result["summary"]) == {"sum", "mean", "max", "gru", "lcm"}
    assert result["config"]["quick"] and "torch" in result["machine"]
    assert all(0 <= r["test32_acc"] <= 1 for r in result["runs"].values())


@pytest.mark.slow
def test_tu_quick_runs(tmp_path):
    if not (Path(DATA) / "tudataset" / "PROTEINS").exists():
        pytest.skip(f"reference data {DATA}/tudataset/PROTEINS absent")
    result = _run("lcm_tu", tmp_path, "--data-root", DATA)
    assert set(result["summary"]) == {"sum", "mean", "max", "gru", "lcm"}
    assert result["config"]["dataset"] == "PROTEINS"


@pytest.mark.slow
def test_speed_quick_runs(tmp_path):
    result = _run("lcm_speed", tmp_path)
    for case in result["cases"]:
        assert set(case["forward_ms"]) == {"sciml_lcm", "pyg_lcm", "sciml_gru", "pyg_gru"}
        dev = case["batch_composition_deviation"]
        assert dev["sciml_lcm"] < 1e-5 and dev["sciml_gru"] < 1e-5
        assert dev["pyg_lcm"] > 1e-3 and dev["pyg_gru"] > 1e-3
