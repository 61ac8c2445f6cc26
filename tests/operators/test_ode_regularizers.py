"""Solver-heuristic regularisers and baselines (sciml.operators.ode): ERNODE/SRNODE/ER+SR against a hand-written
numpy Tsit5 on a 2-step solve, the local regulariser against torchdiffeq's initial-step heuristic and the same
hand step, TayNODE's K-th total derivative against analytic derivatives, RNODE's terms against a dense Jacobian and
closed-form integrals, STEER, the λ schedules, the Lamba–Euler–Heun SDE estimator against a hand computation, and
the NeuralODE layer with every regulariser."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from sciml.errors import ConfigError
from sciml.operators.ode import (REGULARIZERS, TSIT5, ConstantSchedule, ExponentialDecay, NeuralODE, SolverStats,
                                 error_regularizer, error_stiffness_regularizer, jacobian_frobenius_estimate,
                                 kinetic_energy, lamba_euler_heun_step, local_error_regularizer,
                                 local_sde_regularizer, odeint, steer_end_time, stiffness_regularizer,
                                 total_derivative)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


A = np.array([[-0.5, 1.2], [-0.9, -0.3]])
RTOL, ATOL = 1e-3, 1e-4


def numpy_tsit5_step(y, h, rtol=RTOL, atol=ATOL):
    """Tsit5 on y' = A y written out with numpy loops (independent of the torch code path)."""
    tab = TSIT5
    k = []
    for i in range(tab.stages):
        g = y + h * sum(tab.a[i, j] * k[j] for j in range(i))
        k.append(A @ g)
    y1 = y + h * sum(tab.b[i] * k[i] for i in range(tab.stages))
    err = h * sum(tab.b_error[i] * k[i] for i in range(tab.stages))
    scale = atol + rtol * np.maximum(np.abs(y), np.abs(y1))
    return y1, math.sqrt(np.mean((err / scale) ** 2)), k


def linear(t, y):
    return y @ torch.tensor(A).T


def test_ernode_equals_hand_sum_on_two_steps():
    stats = SolverStats()
    y0 = np.array([1.0, -0.5])
    odeint(linear, torch.tensor(y0), torch.tensor([0.0, 0.6]), rtol=RTOL, atol=ATOL,
           options={"first_step": 0.3, "min_step": 0.3, "max_step": 0.3, "stats": stats})
    y1, e1, _ = numpy_tsit5_step(y0, 0.3)
    _, e2, _ = numpy_tsit5_step(y1, 0.6 - 0.3)
    assert stats.n_accepted == 2
    want = [e1 * 0.3, e2 * (0.6 - 0.3)]
    assert float(error_regularizer(stats, "sum")) == pytest.approx(sum(want), rel=1e-10)
    assert float(error_regularizer(stats, "mean")) == pytest.approx(sum(want) / 2, rel=1e-10)
    assert float(error_regularizer(stats, "max")) == pytest.approx(max(want), rel=1e-10)
    # the stiffness terms of a linear field: ||A v|| / ||v|| for the stage difference v, at most ||A||_2
    s = stiffness_regularizer(stats, "max")
    assert 0 < float(s) * TSIT5.stability_size <= np.linalg.norm(A, 2) + 1e-9
    combo = error_stiffness_regularizer(stats, stiffness_weight=0.1, agg="sum")
    stiff = [float(v) / TSIT5.stability_size for v in stats.stiffness]
    assert float(combo) == pytest.approx(sum(want) + 0.1 * sum(stiff), rel=1e-10)
    s_dt = stiffness_regularizer(stats, "sum", scale_by_dt=True)
    assert float(s_dt) == pytest.approx(sum(v * 0.3 for v in stiff), rel=1e-6)


def test_srnode_on_a_scalar_linear_field_is_lambda_over_stability_size():
    stats = SolverStats()
    odeint(lambda t, y: -7.0 * y, torch.tensor([1.0]), torch.tensor([0.0, 1.0]), rtol=1e-6, atol=1e-8,
           options={"stats": stats})
    assert float(stiffness_regularizer(stats, "max")) == pytest.approx(7.0 / TSIT5.stability_size, rel=1e-9)


def test_local_regularizer_matches_torchdiffeq_heuristic_and_hand_step():
    from torchdiffeq._impl.misc import _rms_norm, _select_initial_step

    z = np.array([0.8, 0.1])
    zt = torch.tensor(z, requires_grad=True)
    r, nfe = local_error_regularizer(linear, 0.4, zt, rtol=RTOL, atol=ATOL)
    dt = float(_select_initial_step(linear, torch.tensor(0.4), torch.tensor(z), 5, torch.tensor(RTOL),
                                    torch.tensor(ATOL), _rms_norm))
    _, e, _ = numpy_tsit5_step(z, dt)
    assert float(r) == pytest.approx(e * dt, rel=1e-9)
    assert nfe == 8  # f(t_r), the heuristic's probe, 6 more stages
    assert not r.requires_grad  # z_r is detached, and this field has no parameters

    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(A))

        def forward(self, t, y):
            return y @ self.w.T
    f = Lin()
    r, _ = local_error_regularizer(f, 0.4, zt, rtol=RTOL, atol=ATOL)
    r.backward()
    assert zt.grad is None and f.w.grad is not None and float(f.w.grad.abs().sum()) > 0


def test_total_derivative_against_analytic_time_dependent_field():
    def f(t, z):  # z' = t z
        return t * z
    z, t = torch.tensor([0.7, -1.1]), torch.tensor(0.6)
    torch.testing.assert_close(total_derivative(f, t, z, 1), 0.6 * z)
    torch.testing.assert_close(total_derivative(f, t, z, 2), (1 + 0.6 ** 2) * z)
    torch.testing.assert_close(total_derivative(f, t, z, 3), (3 * 0.6 + 0.6 ** 3) * z)
    with pytest.raises(ConfigError, match="order"):
        total_derivative(f, t, z, 0)


def test_total_derivative_gradient_matches_finite_differences():
    w = torch.tensor([[0.3, -0.8], [0.5, 0.2]], requires_grad=True)

    def f(t, z):
        return torch.tanh(z @ w.T) + 0.3 * t

    z, t = torch.tensor([[0.4, -0.2]]), torch.tensor(0.2)
    with torch.no_grad():  # K = 2 by hand: J f + df/dt with J = diag(1 - tanh(Wz)^2) W and df/dt = 0.3
        jac = (1 - torch.tanh(z @ w.T) ** 2)[0, :, None] * w
        want = jac @ f(t, z)[0] + 0.3
    torch.testing.assert_close(total_derivative(f, t, z, 2)[0], want)
    total_derivative(f, t, z, 3).pow(2).sum().backward()
    eps = 1e-6
    for idx in [(0, 0), (1, 1)]:
        with torch.no_grad():
            w[idx] += eps
            up = total_derivative(f, t, z, 3).pow(2).sum().item()
            w[idx] -= 2 * eps
            down = total_derivative(f, t, z, 3).pow(2).sum().item()
            w[idx] += eps
        assert w.grad[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-9)


def test_rnode_terms_against_dense_jacobian():
    w1 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    w2 = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))

    def f(t, z):
        return torch.tanh(z @ w1.T) @ w2.T

    z, t = torch.randn(4, 3, generator=torch.Generator().manual_seed(2)), torch.tensor(0.0)
    total = torch.zeros(4)
    for i in range(3):  # Hutchinson with the basis vectors sums to the exact Frobenius norm
        eps = torch.zeros(4, 3)
        eps[:, i] = 1.0
        fz, est = jacobian_frobenius_estimate(f, t, z, eps)
        total += est
    for b in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: f(t, v[None])[0], z[b])
        assert float(total[b].detach()) == pytest.approx(float(jac.pow(2).sum()), rel=1e-10)
    torch.testing.assert_close(kinetic_energy(fz), f(t, z).pow(2).sum(1))


class Scale(nn.Module):
    def __init__(self, a=-0.7):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, t, z):
        return self.a * z


def test_neural_ode_taynode_and_rnode_integrals_are_closed_form():
    a = -0.7
    z0 = torch.ones(2, 3)
    node = NeuralODE(Scale(a), regularizer="taynode", taynode_order=2, rtol=1e-9, atol=1e-10)
    out = node(z0)
    torch.testing.assert_close(out, z0 * math.exp(a), rtol=1e-8, atol=0)
    assert float(node.last_reg.detach()) == pytest.approx(a ** 4 * (math.exp(2 * a) - 1) / (2 * a), rel=1e-7)
    node = NeuralODE(Scale(a), regularizer="rnode", rnode_weights=(1.0, 0.0), rtol=1e-9, atol=1e-10)
    node(z0)
    assert float(node.last_reg.detach()) == pytest.approx(3 * a ** 2 * (math.exp(2 * a) - 1) / (2 * a), rel=1e-7)
    node = NeuralODE(Scale(a), regularizer="rnode", rnode_weights=(0.0, 1.0), rtol=1e-9, atol=1e-10)
    node(z0)
    assert float(node.last_reg.detach()) == pytest.approx(a ** 2 * float(node.last_eps.pow(2).sum(1).mean()), rel=1e-7)


def test_neural_ode_every_regularizer_trains_and_is_off_in_eval():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))

    class F(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t, z):
            return self.net(z)

    z0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))
    ref = odeint(F(), z0, torch.tensor([0.0, 1.0]), rtol=1e-6, atol=1e-6)[-1]
    for reg in REGULARIZERS:
        node = NeuralODE(F(), regularizer=reg, rtol=1e-6, atol=1e-6, seed=1)
        out = node(z0)
        loss = out.pow(2).mean() + 0.1 * node.last_reg
        loss.backward()
        grads = [p.grad for p in node.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), reg
        if reg == "none":
            assert float(node.last_reg.detach()) == 0.0
        else:
            assert float(node.last_reg.detach()) > 0 or reg == "steer", reg
        if reg not in ("steer", "taynode", "rnode", "local_unbiased"):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        node.zero_grad()
        node.eval()
        with torch.no_grad():
            torch.testing.assert_close(node(z0), ref)
        assert float(node.last_reg.detach()) == 0.0
    with pytest.raises(ConfigError, match="regularizer"):
        NeuralODE(F(), regularizer="l2")
    with pytest.raises(ConfigError, match="steer_b"):
        NeuralODE(F(), regularizer="steer", steer_b=2.0)


def test_steer_end_time_and_local_biased_time():
    rng = random.Random(0)
    draws = [steer_end_time(1.0, 0.5, generator=rng) for _ in range(2000)]
    assert 0.5 <= min(draws) < 0.55 and 1.45 < max(draws) <= 1.5
    node = NeuralODE(Scale(-0.5), regularizer="steer", steer_b=0.5, rtol=1e-9, atol=1e-10)
    out = node(torch.ones(1, 2))
    t_end = node.last_stats.t[-1] + node.last_stats.dt[-1]
    assert t_end != 1.0 and 0.5 <= t_end <= 1.5
    torch.testing.assert_close(out, torch.ones(1, 2) * math.exp(-0.5 * t_end), rtol=1e-8, atol=0)


def test_lambda_schedules():
    s = ExponentialDecay(100.0, 10.0, 40)
    assert s(0) == pytest.approx(100.0) and s(40) == pytest.approx(10.0) and s(80) == pytest.approx(10.0)
    assert s(20) == pytest.approx(math.sqrt(100.0 * 10.0))
    assert ConstantSchedule(0.3)(17) == 0.3
    with pytest.raises(ConfigError):
        ExponentialDecay(0.0, 1.0, 10)


class LinearSDE(nn.Module):
    noise_type = "diagonal"
    sde_type = "stratonovich"

    def __init__(self, a=-0.4, s=0.3):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.s = nn.Parameter(torch.tensor(s))

    def f(self, t, y):
        return self.a * y

    def g(self, t, y):
        return self.s * y


def test_lamba_euler_heun_estimate_by_hand():
    a, s, dt = -0.4, 0.3, 0.05
    y = torch.tensor([[1.5, -0.2]])
    dW = torch.tensor([[0.1, -0.3]])
    y1, eest = lamba_euler_heun_step(LinearSDE(a, s), 0.0, y, dt, dW, rtol=0.01, atol=0.01)
    yn, dWn = y.numpy()[0], dW.numpy()[0]
    y1_hand = yn + dt * a * yn + 0.5 * (s * yn + s * (yn + s * yn * dWn)) * dWn
    e_d = 0.5 * a * a * dt * dt * yn
    e_n = 0.5 * s * s * yn * dWn ** 2
    scale = 0.01 + 0.01 * np.maximum(np.abs(yn), np.abs(y1_hand))
    np.testing.assert_allclose(y1.detach().numpy()[0], y1_hand, rtol=1e-12)
    assert float(eest) == pytest.approx(math.sqrt(np.mean(((e_d / 6 + e_n) / scale) ** 2)), rel=1e-9)


def test_local_sde_regularizer_on_a_torchsde_solve():
    import torchsde

    sde = LinearSDE()
    y0 = torch.full((4, 2), 0.5)
    t_r = 0.37
    ts = torch.tensor([0.0, t_r, 1.0])
    ys = torchsde.sdeint(sde, y0, ts, method="euler_heun", dt=0.05)
    g = torch.Generator().manual_seed(0)
    r = local_sde_regularizer(sde, t_r, ys[1], dt=0.02, generator=g)
    dW = torch.randn(y0.shape, generator=torch.Generator().manual_seed(0)) * math.sqrt(0.02)
    _, eest = lamba_euler_heun_step(sde, t_r, ys[1].detach(), 0.02, dW)
    assert float(r) == pytest.approx(float(eest) * 0.02, rel=1e-12)
    (ys[-1].pow(2).mean() + 10 * r).backward()
    assert sde.a.grad is not None and sde.s.grad is not None
    r2 = local_sde_regularizer(sde, t_r, ys[1])  # default dt from the heuristic: positive, finite
    assert math.isfinite(float(r2)) and float(r2) > 0


# ------------------------------------------------------------------------------------- benchmark smoke runs
def _bench(script: str, tmp_path, *extra: str) -> dict:
    from pathlib import Path

    from sciml.testing import run_quick

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    return run_quick(bench / f"{script}.py", tmp_path / f"{script}.json", *extra, cwd=tmp_path, timeout=900)


@pytest.mark.slow
def test_node_regularization_quick_runs(tmp_path):
    result = _bench("node_regularization", tmp_path, "--experiments", "spiral_ode", "spiral_sde")
    assert set(result["summary"]["spiral_ode"]) == {"vanilla", "ernode", "srnode", "er_sr", "local_unbiased",
                                                    "local_biased", "taynode", "rnode", "steer"}
    assert set(result["summary"]["spiral_sde"]) == {"vanilla", "local_unbiased", "local_biased"}
    assert all(r["predict_nfe"] > 0 and math.isfinite(r["test_mse"]) for r in result["runs"].values())


@pytest.mark.slow
def test_ode_solver_speed_quick_runs(tmp_path):
    result = _bench("ode_solver_speed", tmp_path)
    case = result["cases"][0]
    for mode in ("forward", "forward_backward"):
        assert {"torchdiffeq_dopri5", "sciml_dopri5", "sciml_tsit5"} <= set(case[mode])
        assert all(v["nfe"] > 0 for k, v in case[mode].items() if isinstance(v, dict))


def test_regularized_task_with_the_trainer(tmp_path):
    torch.set_default_dtype(torch.float32)  # the Trainer's non-finite check fails on float64 parameters (reported)
    from torch.utils.data import TensorDataset

    from sciml.operators.ode import RegularizedODETask
    from sciml.train import Trainer

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(4, 2)
            self.node = NeuralODE(Scale(-0.3), rtol=1e-4, atol=1e-4, regularizer="ernode")
            self.dec = nn.Linear(2, 3)

        def forward(self, x):
            return self.dec(self.node(self.enc(x)))

    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(1))
    task = RegularizedODETask("cross_entropy", ExponentialDecay(10.0, 1.0, 4))
    trainer = Trainer(Model(), task, train_data=TensorDataset(x, y), val_data=TensorDataset(x, y), batch_size=16,
                      max_steps=4, run_dir=tmp_path / "run", progress="none", log_every=1)
    trainer.fit()
    assert task.step == 4 and task.state_dict() == {"step": 4}
    metrics = trainer.evaluate(TensorDataset(x, y))
    assert metrics["nfe"] > 0 and 0 <= metrics["acc"] <= 1
    trainer.model.train()
    out = task.training_step(trainer.model, (x, y))
    assert float(out["lambda"]) == pytest.approx(1.0) and float(out["reg"]) > 0
    assert float(out["loss"].detach()) == pytest.approx(float(out["task_loss"] + out["lambda"] * out["reg"]), rel=1e-6)
