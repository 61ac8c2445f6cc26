"""The flow samplers inside the PINN core: reached through make_sampler, driven by train_pinn on the real peak
problem (DAS-G grows by the planned amount at the planned steps, AAS hands out fresh in-domain batches); the demo
and the benchmark's --quick run end to end (slow)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from sciml.operators.pinn.flow_samplers import AASSampler, DASSampler
from sciml.operators.pinn.problems import PoissonPeak2D
from sciml.operators.pinn.training import train_pinn

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SMALL_FLOW = {"num_layers": 2, "num_bins": 4, "hidden": 8}


def test_das_g_through_train_pinn_grows_at_stage_boundaries():
    problem = PoissonPeak2D(num_boundary=40, grid=21)
    res = train_pinn(problem, "das_g", n_points=64, adam_steps=7, width=8, depth=2, seed=0,
                     sampler_kwargs={"stage_steps": 3, "flow_steps": 3, "flow_kwargs": SMALL_FLOW})
    sampler = res["sampler"]
    assert isinstance(sampler, DASSampler) and sampler.mode == "add"
    # updates run after steps 1..6 (the last step's update would run at a next step): stages after 3 and 6
    assert sampler.stages == 2 and [h["step"] for h in sampler.history] == [3, 6]
    x, w = sampler.batch()
    assert x.shape == (3 * 64, 2) and w is None and bool(problem.domain.contains(x).all())
    assert math.isfinite(res["rel_l2"])


def test_aas_through_train_pinn_fresh_batches_and_resume():
    problem = PoissonPeak2D(num_boundary=40, grid=21)
    kwargs = {"beta": 1e-2, "uniform_fraction": 0.25, "flow_kwargs": SMALL_FLOW}
    res = train_pinn(problem, "aas", n_points=64, adam_steps=5, width=8, depth=2, seed=0, sampler_kwargs=kwargs)
    sampler = res["sampler"]
    assert isinstance(sampler, AASSampler) and sampler.count == 4
    x, w = sampler.batch()
    assert x.shape == (64, 2) and w is None and bool(problem.domain.contains(x).all())
    # the task's checkpoint state carries the sampler: a copy continues with the same batches
    state = res["task"].state_dict()
    other = AASSampler(**kwargs)
    other.setup(problem, 64, torch.Generator().manual_seed(99))
    other.load_state_dict(state["sampler"])
    for step in (5, 6):
        sampler.update(step, res["model"])
        other.update(step, res["model"])
        assert torch.equal(sampler.batch()[0], other.batch()[0])


@pytest.mark.slow
def test_demo_quick_runs():
    from sciml.operators.pinn.demo import run_demo

    lines = []
    out = run_demo(quick=True, print_fn=lines.append)
    assert set(out) == {"uniform", "aas"} and len(lines) == 3
    assert all(math.isfinite(v["rel_l2"]) and 0 <= v["peak_fraction"] <= 1 for v in out.values())


@pytest.mark.slow
def test_benchmark_quick_writes_results(tmp_path):
    spec = importlib.util.spec_from_file_location("_sciml_bench_pinn_flow_check", BENCH / "pinn_flow_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "check.json"
    assert module.main(["--quick", "--out", str(out), "--samplers", "uniform", "das_r", "aas"]) == 0
    data = json.loads(out.read_text())
    assert set(data["summary"]) == {"uniform", "das_r", "aas", "aas_beta=0.001"}
    assert all(math.isfinite(r["rel_l2"]) for r in data["runs"].values())


def test_benchmark_oracle_sampler_weights_and_error_split():
    """The ideal proposal of pinn_flow_check.py: its importance-weighted mean of a bump equals the bump's uniform
    average (closed form), its plain mean is far larger; the near/far split adds up to the problem's own relative
    L2 error."""
    from sciml.testing import load_script

    module = load_script(BENCH / "pinn_flow_check.py")
    problem = PoissonPeak2D(num_boundary=40, grid=101, dtype=torch.float64)
    sampler = module.OracleSampler(importance_weights=True)
    sampler.setup(problem, 20000, torch.Generator().manual_seed(0))
    x, w = sampler.batch()
    assert x.shape == (20000, 2) and bool(((x >= -1) & (x <= 1)).all())
    assert abs(float(((x - 0.5).abs() < 0.2).all(1).double().mean()) - 0.5) < 0.03  # half from the Gaussian
    bump = torch.exp(-50 * ((x - 0.5) ** 2).sum(1))
    exact = math.pi / 50 / 4  # (1/|Omega|) * integral of the bump (it lies well inside the box)
    assert abs(float((w * bump).mean()) / exact - 1) < 0.05
    assert float(bump.mean()) > 20 * exact  # the plain mean over the concentrated points is another objective
    old = x.clone()
    assert sampler.update(1, torch.nn.Linear(2, 1)) and not torch.equal(sampler.batch()[0], old)  # fresh each step
    copy = module.OracleSampler(importance_weights=True)  # a resumed run gets the same batch and weights back
    copy.setup(problem, 20000, torch.Generator().manual_seed(1))
    copy.load_state_dict(sampler.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(copy.batch(), sampler.batch()))
    plain = module.OracleSampler()
    plain.setup(problem, 10, torch.Generator().manual_seed(0))
    assert plain.batch()[1] is None

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    split = module.error_split(problem, model)
    assert math.isclose(split["rel_l2_near"] ** 2 + split["rel_l2_far"] ** 2, problem.relative_l2(model) ** 2,
                        rel_tol=1e-9)
    with torch.no_grad():
        assert math.isclose(split["peak_value"], float(model(torch.tensor([[0.5, 0.5]], dtype=torch.float64))),
                            rel_tol=1e-9)
