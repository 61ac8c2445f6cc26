"""The PINN benchmark scripts: sampler arguments follow the budget (fast), and --quick smoke runs (slow; no timing or
accuracy asserted, only that every run finished and recorded its error and time)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from sciml.testing import load_script, run_quick

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
PEER = os.environ.get("SCIML_DEEPXDE_PYTHON", "")


def _load(name: str):
    return load_script(BENCH / f"{name}.py")


def test_sampler_kwargs_follow_the_budget():
    ps = _load("pinn_sampling")
    b = {"adam": 3000, "period": 500, "candidates": 20000}
    assert ps.sampler_kwargs("rad", b, {}) == {"period": 500, "n_candidates": 20000}
    # refinements at steps 500 .. 2500: 5 rounds, so RAR grows from N/2 to N within the Adam phase
    assert ps.sampler_kwargs("rar_d", b, {})["max_refinements"] == 5
    assert ps.sampler_kwargs("random_r", b, {}) == {"period": 100}
    assert ps.sampler_kwargs("rad", b, {"rad": {"k": 2.0}})["k"] == 2.0
    summary = {"peak": {"rad": {"rel_l2": {"mean": 0.5, "std": 0.1}, "wall_s": {"mean": 10.0}}}}
    assert "| rad | 50 ± 10 | 10 |" in ps.table(summary)


def test_budget_scale_and_run_keys():
    ps = _load("pinn_sampling")
    b = ps.ROUNDS["burgers"]
    twice = ps.scaled(b, 2)
    assert (twice["adam"], twice["lbfgs"], twice["rounds"]) == (2 * b["adam"], 2 * b["lbfgs"], 2 * b["rounds"])
    # the shape of a round and the refinement period stay
    assert (twice["round_adam"], twice["round_lbfgs"], twice["period"]) == (b["round_adam"], b["round_lbfgs"],
                                                                           b["period"])
    assert ps.scaled(b, 1) == b and ps.scaled(b, 1e-6)["rounds"] == 1
    # rounds schedule: RAR grows from N/2 to N over exactly the rounds, DAS changes stage once per round
    assert ps.sampler_kwargs("rar_d", twice, {})["max_refinements"] == 2 * b["rounds"]
    assert ps.sampler_kwargs("das_g", twice, {})["max_stages"] == 2 * b["rounds"]
    # the original sweep keeps its keys; every other budget gets its own, so runs never skip each other
    assert ps.run_key("peak", "rad", 0, ps.run_tag("adam", 1.0, "float32", "rad", "sampler")) == "peak/rad/seed0"
    keys = {ps.run_key("peak", "aas", 0, ps.run_tag(*a, "aas", lb))
            for a in [("adam", 1.0, "float32"), ("adam", 2.0, "float32"), ("rounds", 1.0, "float32"),
                      ("rounds", 1.0, "float64")] for lb in ("sampler", "none", "uniform")}
    assert len(keys) == 12


def test_paper_schedule_is_wu_et_al_budget_per_sampler():
    """--schedule paper: the iteration counts read off lu-group/pinn-sampling's scripts, restated here (RAD/RAR:
    15 000 Adam + 1000 L-BFGS + 100 x (1000 + 1000) = 216 000; Uniform/Random-R: 15 000 Adam + L-BFGS at DeepXDE's
    default maxiter 15 000)."""
    ps = _load("pinn_sampling")

    def iterations(b):
        return b["adam"] + b["lbfgs"] * b["lbfgs_iter"] + b["rounds"] * (b["round_adam"] + b["round_lbfgs"])

    for problem in ("burgers", "allen_cahn"):
        b = ps.PAPER_ROUNDS[problem]
        assert (b["n_points"], b["width"], b["depth"], b["candidates"]) == (2000, 64, 3, 100_000)
        for s in ("rad", "rar_d", "rar_g"):
            assert iterations(ps.sampler_budget(b, s, "paper")) == 216_000
        assert ps.sampler_kwargs("rar_d", b, {})["max_refinements"] == 100
        for s in ("uniform", "random_r"):
            one = ps.sampler_budget(b, s, "paper")
            assert one["rounds"] == 0 and iterations(one) == 30_000
        assert ps.sampler_kwargs("random_r", b, {}) == {"period": 100}
        assert ps.sampler_budget(b, "uniform", "rounds") is b  # only the paper schedule changes per sampler
    with pytest.raises(SystemExit, match="burgers"):
        ps.main(["--schedule", "paper", "--problems", "peak", "--out", "/nonexistent/never-written.json"])
    with pytest.raises(SystemExit, match="das_g"):  # no paper budget for the flow samplers
        ps.main(["--schedule", "paper", "--samplers", "rad", "das_g", "--out", "/nonexistent/never-written.json"])


def test_das_schedule_is_das_budget():
    """--schedule das: the numbers of MJfadeaway/DAS's training script (reference notes 5.2), restated: N = 1000,
    depth 6, width 32, Adam lr 1e-4, 5 stages of 3000 steps, 3000 flow steps per stage, no L-BFGS; peak and 10-D."""
    ps = _load("pinn_sampling")
    budgets = ps.schedule_budgets("das", ["peak", "exp"], ["uniform", "das_g"])
    for problem in ("peak", "exp"):
        b = budgets[problem]
        assert (b["n_points"], b["depth"], b["width"], b["lr"], b["lbfgs"]) == (1000, 6, 32, 1e-4, 0)
        das = ps.sampler_kwargs("das_g", b, {})
        # the first stage on uniform points, then 4 refinements: 5 stages of 3000 steps
        assert (das["stage_steps"], das["max_stages"], das["flow_steps"], das["flow_lr"]) == (3000, 4, 3000, 1e-4)
        assert das["stage_steps"] * (das["max_stages"] + 1) == b["adam"] == 15_000
        assert ps.sampler_kwargs("rar_d", b, {})["max_refinements"] == 4
    assert budgets["exp"]["problem"]["dim"] == 10
    with pytest.raises(SystemExit, match="peak"):
        ps.schedule_budgets("das", ["burgers"], ["rad"])


def test_report_renders_the_deepxde_comparison_of_every_budget(tmp_path, monkeypatch):
    """PERFORMANCE.md gets a table per budget (pinn_deepxde_<tag>.json, with its schedule), never the quick runs."""
    import json

    report = _load("report")
    stats = {"sciml": {"rel_l2": {"mean": 0.25}, "cpu_s": {"mean": 10.0}},
             "deepxde": {"rel_l2": {"mean": 0.5}, "cpu_s": {"mean": 12.0}},
             "cpu_ratio_deepxde_over_sciml": {"mean": 1.2}}
    rounds = {"config": {"threads": 1, "schedule": "rounds", "dtype": "float64", "budget_scale": 1.0,
                         "schedule_text": "Wu et al.'s shape"},
              "machine": {"device": "cpu"}, "summary": {"burgers": {"rad": stats}}}
    (tmp_path / "pinn_deepxde_rounds_float64.json").write_text(json.dumps(rounds))
    (tmp_path / "pinn_deepxde_rounds_float64_quick.json").write_text(json.dumps(rounds))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    text = report.render()
    assert "### PINN training vs DeepXDE (pinn_deepxde_rounds_float64.json)" in text
    assert "Schedule 'rounds' (float64, budget scale 1): Wu et al.'s shape." in text
    assert "| burgers | rad | 0.25 | 0.5 | 10.0 | 12.0 | 1.20 |" in text and "_quick.json" not in text


def _run(script: str, tmp_path: Path, *extra: str) -> dict:
    return run_quick(BENCH / f"{script}.py", tmp_path / f"{script}.json", *extra, timeout=900)


@pytest.mark.slow
def test_pinn_sampling_quick_run(tmp_path):
    data = _run("pinn_sampling", tmp_path, "--problems", "peak", "exp", "--samplers", "uniform", "random_r", "rad",
                "rar_g", "rar_d", "--figures")
    for key in ("peak/rad/seed0", "exp/rar_d/seed0", "peak/uniform/seed0"):
        rec = data["runs"][key]
        assert rec["rel_l2"] > 0 and rec["wall_s"] > 0
    assert (tmp_path / "pinn_quick_figures" / "pinn_peak.png").exists()


@pytest.mark.slow
def test_pinn_sampling_quick_rounds_run(tmp_path):
    data = _run("pinn_sampling", tmp_path, "--problems", "burgers", "--samplers", "uniform", "rad", "aas",
                "--schedule", "rounds", "--dtype", "float64", "--budget-scale", "2")
    assert data["config"]["budget_scale"] == 2 and data["config"]["schedule"] == "rounds"
    rad = data["runs"]["burgers/rad/rounds/x2/float64/seed0"]
    b = data["config"]["budgets"]["burgers"]
    assert rad["sampler_changes"] == b["rounds"] == 4 and len(rad["rel_l2_rounds"]) == 4
    assert rad["adam_total"] == b["adam"] + b["rounds"] * b["round_adam"]
    aas = data["runs"]["burgers/aas/rounds/x2/float64/lbfgs-none/seed0"]
    assert aas["lbfgs_total"] == 0 and aas["rel_l2"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not PEER or not Path(PEER).exists(), reason="set SCIML_DEEPXDE_PYTHON to a venv's python with deepxde")
def test_pinn_deepxde_quick_run(tmp_path):
    data = _run("pinn_deepxde", tmp_path, "--peer-python", PEER, "--problems", "peak", "exp", "--samplers", "rad")
    for problem in ("peak", "exp"):
        rec = data["runs"][f"{problem}/rad/seed0"]
        assert rec["sciml"]["rel_l2"] > 0 and rec["deepxde"]["rel_l2"] > 0
        assert rec["time_ratio_deepxde_over_sciml"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not PEER or not Path(PEER).exists(), reason="set SCIML_DEEPXDE_PYTHON to a venv's python with deepxde")
def test_pinn_deepxde_quick_rounds_run(tmp_path):
    """Wu et al.'s rounds on both sides, float64: the runs are keyed by their budget, and both sides ran every Adam
    step of every phase and some L-BFGS iterations after them (DeepXDE tops its L-BFGS phases up to the iterations
    asked for; ours counts what torch ran, at most that)."""
    data = _run("pinn_deepxde", tmp_path, "--peer-python", PEER, "--problems", "burgers", "--samplers", "rad",
                "--schedule", "rounds", "--dtype", "float64")
    b = data["config"]["budgets"]["burgers"]
    assert data["config"]["schedule"] == "rounds" and data["config"]["dtype"] == "float64"
    rec = data["runs"]["burgers/rad/rounds/float64/seed0"]
    adam = b["adam"] + b["rounds"] * b["round_adam"]
    lbfgs = b["lbfgs"] * b["lbfgs_iter"] + b["rounds"] * b["round_lbfgs"]
    assert adam < rec["sciml"]["iterations"] <= adam + lbfgs < rec["deepxde"]["iterations"] + 1
    assert rec["sciml"]["rel_l2"] > 0 and rec["deepxde"]["rel_l2"] > 0


@pytest.mark.slow
def test_pinn_sampling_merges_runs_of_parallel_processes(tmp_path):
    one = _run("pinn_sampling", tmp_path, "--problems", "peak", "--samplers", "uniform")
    other = run_quick(BENCH / "pinn_sampling.py", tmp_path / "exp.json", "--problems", "exp", "--samplers", "uniform",
                      timeout=900)
    both = run_quick(BENCH / "pinn_sampling.py", tmp_path / "both.json", "--problems", "peak", "exp", "--samplers",
                     "uniform", "--merge", str(tmp_path / "pinn_sampling.json"), str(tmp_path / "exp.json"),
                     timeout=900)
    # taken over, not run again (a merging call trains nothing)
    assert both["runs"] == {**one["runs"], **other["runs"]} and len(both["runs"]) == 2
    assert [m["runs"] for m in both["merged_from"]] == [["peak/uniform/seed0"], ["exp/uniform/seed0"]]
    assert set(both["summary"]) == {"peak", "exp"}


def test_error_anatomy_of_a_network_frozen_at_the_initial_condition(tmp_path):
    """pinn_error_anatomy.py on an artifact whose network outputs 0: the hard constraint then gives u = u0(x) at
    every t, so each number has a closed form against the reference grid (numpy, independent of the script)."""
    import json

    import numpy as np
    import torch

    from sciml.operators.pinn import MLP, AllenCahn

    model = MLP(2, 8, 2).double()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    points = torch.tensor([[0.0, 0.5], [0.1, 0.2], [-0.12, 0.9], [0.5, 0.5], [-0.9, 0.1]], dtype=torch.float32)
    art = tmp_path / "allen_cahn_rad_seed0.pt"
    torch.save({"model": model.state_dict(), "points": points, "width": 8, "depth": 2, "problem": "allen_cahn",
                "problem_kwargs": {}, "sampler": "rad", "dtype": "float64"}, art)
    out = tmp_path / "anatomy.json"
    _load("pinn_error_anatomy").main([str(art), "--band", "0.15", "--out", str(out)])
    rec = json.loads(out.read_text())["runs"]["allen_cahn_rad_seed0"]

    pts, ref = AllenCahn(dtype=torch.float64).reference()
    x, u = pts[:, 0].numpy(), ref.numpy()
    u0 = x ** 2 * np.cos(np.pi * x)
    err = u0 - u
    assert rec["rel_l2_vs_file"] == pytest.approx(np.linalg.norm(err) / np.linalg.norm(u), rel=1e-9)
    band = np.abs(x) < 0.15
    assert rec["squared_error_share_in_band"] == pytest.approx((err[band] ** 2).sum() / (err ** 2).sum(), rel=1e-9)
    assert rec["points_share_in_band"] == pytest.approx(3 / 5)
    assert rec["u_centre"]["1.00"]["pinn"] == pytest.approx(0.0, abs=1e-12)
    # with u = u0 the residual is -D u0'' - 5 (u0 - u0^3), whatever t: check its mean over the band
    xs = np.linspace(-1, 1, 401)
    v = xs ** 2 * np.cos(np.pi * xs)
    v2 = 2 * np.cos(np.pi * xs) - 4 * np.pi * xs * np.sin(np.pi * xs) - np.pi ** 2 * xs ** 2 * np.cos(np.pi * xs)
    r = np.abs(-0.001 * v2 - 5 * (v - v ** 3))
    assert rec["mean_abs_residual"]["in_band"] == pytest.approx(r[np.abs(xs) < 0.15].mean(), rel=1e-9)
    assert rec["file_vs_chebyshev"] < 1e-3
