"""Our embedded Runge–Kutta integrator (sciml.operators.ode): convergence orders of every tableau (solution, error
estimate, dense output) against analytic solutions, agreement with torchdiffeq's dopri5, the error estimate against
the true local error, the stiffness estimate against known eigenvalues, gradients against finite differences, the
torchdiffeq adapter (forward and adjoint), the NFE counter, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sciml.errors import ConfigError, ShapeError
from sciml.operators.ode import NFECounter, SolverStats, TABLEAUS, TSIT5, odeint, register_torchdiffeq, rk_step

METHODS = sorted(TABLEAUS)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def field(t, y):  # y' = y cos t  ->  y = y0 exp(sin t)
    return y * torch.cos(t)


def exact(t, y0):
    return y0 * math.exp(math.sin(t))


def _slope(hs, errs):
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


@pytest.mark.parametrize("method", METHODS)
def test_local_orders_of_solution_estimate_and_dense_output(method):
    """One step from t0 = 0.3: the propagated solution's local error is O(h^{p+1}); the error estimate matches the
    true local error of the embedded solution to leading order and is O(h^{q+1}); the dense output is
    O(h^{d+1}) inside the step."""
    tab = TABLEAUS[method]
    y0 = torch.tensor([1.3])
    t0 = 0.3
    hs = [0.2, 0.1, 0.05]
    sol_err, est, est_vs_true, dense_err = [], [], [], []
    for h in hs:
        step = rk_step(field, t0, y0, h, tab)
        y_true = exact(t0 + h, 1.3) / math.exp(math.sin(t0))
        sol_err.append(abs(float(step.y1) - y_true))
        embedded = float(step.y1 - step.error)  # the lower-order solution
        est.append(abs(float(step.error)))
        est_vs_true.append(abs(float(step.error) - (y_true - embedded)))  # estimate vs its true local error
        theta = 0.5
        w = tab.dense_weights(theta)
        y_mid = float(y0 + h * sum(float(wi) * k for wi, k in zip(w, step.k)))
        dense_err.append(abs(y_mid - exact(t0 + theta * h, 1.3) / math.exp(math.sin(t0))))
    assert _slope(hs, sol_err) == pytest.approx(tab.order + 1, abs=0.35)
    assert _slope(hs, est) == pytest.approx(tab.error_order + 1, abs=0.35)
    # the estimate matches the true local error of the embedded solution to leading order: the relative gap
    # shrinks like h
    rel = [a / b for a, b in zip(est_vs_true, est)]
    assert rel[-1] < 0.1 and _slope(hs, rel) == pytest.approx(1.0, abs=0.4)
    assert _slope(hs, dense_err) == pytest.approx(tab.dense_order + 1, abs=0.45)
    np.testing.assert_allclose(tab.dense_weights(1.0), tab.b, atol=1e-12)  # interpolant ends at y1
    np.testing.assert_allclose(tab.a.sum(1), tab.c, atol=1e-12)  # row-sum condition


@pytest.mark.parametrize("method", METHODS)
def test_global_order_fixed_steps(method):
    """Fixed steps (min_step = max_step = first_step) over [0, 2]: the global error falls as h^p (Tsit5's small
    principal error term makes it approach 5 from above: 5.9, 5.8, 5.6, 5.4 between h = 0.4 and 0.025)."""
    tab = TABLEAUS[method]
    hs, errs = [0.1, 0.05, 0.025], []
    for h in hs:
        ys = odeint(field, torch.tensor([1.0]), torch.tensor([0.0, 2.0]), method=method,
                    options={"first_step": h, "min_step": h, "max_step": h})
        errs.append(abs(float(ys[-1]) - exact(2.0, 1.0)))
    last = _slope(hs[-2:], errs[-2:])
    assert tab.order - 0.3 < last < tab.order + 0.6


def test_tsit5_propagates_the_fifth_order_weights():
    """torchdiffeq master's tsit5 advances with the embedded 4th-order weights (reference notes §0); ours must
    not: the stability polynomial agrees with exp(z) through z^5 and the b row is Tsitouras' 5th-order row."""
    assert TSIT5.b[0] == pytest.approx(0.09646076681806523)
    s = TSIT5.stages
    v, coeffs = np.ones(s), [1.0]
    for _ in range(s):
        coeffs.append(float(TSIT5.b @ v))
        v = TSIT5.a @ v
    for k in range(1, 6):
        assert coeffs[k] == pytest.approx(1 / math.factorial(k), rel=1e-12)
    # the real stability interval OrdinaryDiffEq uses to scale Tsit5's stiffness estimate
    assert TSIT5.stability_size == pytest.approx(3.5068, abs=2e-4)


class MLPField(nn.Module):
    def __init__(self, dim=3, hidden=16, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.l1 = nn.Linear(dim + 1, hidden)
        self.l2 = nn.Linear(hidden, dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, t, y):
        tt = t.expand(*y.shape[:-1], 1)
        return self.l2(torch.tanh(self.l1(torch.cat([y, tt], -1))))


@pytest.mark.parametrize("method", ["tsit5", "dopri5"])
def test_agrees_with_torchdiffeq_dopri5_at_tight_tolerance(method):
    import torchdiffeq

    f = MLPField()
    y0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.0, 2.0, 9)
    with torch.no_grad():
        ref = torchdiffeq.odeint(f, y0, t, rtol=1e-11, atol=1e-12, method="dopri5")
        ours = odeint(f, y0, t, rtol=1e-11, atol=1e-12, method=method)
    assert ours.shape == ref.shape == (9, 5, 3)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)


def test_adaptive_solve_meets_tolerance_and_records_steps():
    stats = SolverStats()
    y0 = torch.tensor([[1.0], [2.0]])
    t = torch.linspace(0.0, 3.0, 7)
    ys = odeint(field, y0, t, rtol=1e-8, atol=1e-10, method="tsit5", options={"stats": stats})
    want = torch.stack([y0 * math.exp(math.sin(float(v))) for v in t])
    torch.testing.assert_close(ys, want, rtol=2e-7, atol=1e-9)
    assert stats.n_accepted == len(stats.eest) == len(stats.dt) > 3
    assert sum(stats.dt) == pytest.approx(3.0, rel=1e-12)  # accepted steps tile [0, 3]
    assert all(float(e) <= 1.0 for e in stats.eest) and all(float(e) > 1.0 for e in stats.rejected_eest)
    assert stats.nfe == 2 + 6 * (stats.n_accepted + stats.n_rejected)  # f0, heuristic, 6 new stages per FSAL step


def test_reverse_time_tuple_state_and_float32():
    # backwards: y' = -y from t=1 (y=1) to t=0 gives e
    ys = odeint(lambda t, y: -y, torch.tensor([1.0]), torch.tensor([1.0, 0.0]), rtol=1e-10, atol=1e-12)
    assert float(ys[-1]) == pytest.approx(math.e, rel=1e-8)
    # tuple state equals the concatenated one
    a0, b0 = torch.tensor([1.0, 2.0]), torch.tensor([[0.5]])
    ya, yb = odeint(lambda t, s: (-s[0], s[1] * t), (a0, b0), torch.tensor([0.0, 1.0]), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ya[-1], a0 * math.exp(-1), rtol=1e-8, atol=0)
    torch.testing.assert_close(yb[-1], b0 * math.exp(0.5), rtol=1e-8, atol=0)
    # float32 state, float64 time: output stays float32 and accurate to float32
    y32 = odeint(field, torch.tensor([1.0], dtype=torch.float32), torch.tensor([0.0, 2.0]), rtol=1e-6, atol=1e-7)
    assert y32.dtype == torch.float32 and float(y32[-1]) == pytest.approx(exact(2.0, 1.0), rel=1e-5)


def test_stiffness_estimate_is_the_eigenvalue_of_linear_fields():
    for lam in (-3.0, -40.0):
        step = rk_step(lambda t, y: lam * y, 0.0, torch.tensor([1.0, -2.0]), 0.01, "tsit5")
        assert float(step.stiffness) == pytest.approx(abs(lam), rel=1e-10)
    A = torch.tensor([[-1.0, 0.5], [0.0, -30.0]])
    step = rk_step(lambda t, y: y @ A.T, 0.0, torch.tensor([1.0, 1.0]), 0.02, "dopri5")
    assert 0 < float(step.stiffness) <= float(torch.linalg.matrix_norm(A, 2)) + 1e-9


def test_gradients_match_finite_differences():
    """Discretise-then-optimise gradient of a loss on y(T) wrt parameters and y0, against central differences of
    the exact solution (tight tolerance) and, with frozen steps, torch.autograd.gradcheck of the discrete map."""
    f = MLPField(dim=2, hidden=8, seed=3)
    y0 = torch.tensor([[0.3, -0.7]], requires_grad=True)
    t = torch.tensor([0.0, 1.5])

    def loss():
        return odeint(f, y0, t, rtol=1e-11, atol=1e-12)[-1].pow(2).sum()

    loss().backward()
    w = f.l1.weight
    eps = 1e-5
    for idx in [(0, 0), (3, 1), (7, 2)]:
        with torch.no_grad():
            w[idx] += eps
            up = loss().item()
            w[idx] -= 2 * eps
            down = loss().item()
            w[idx] += eps
        assert w.grad[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)
    fixed = {"first_step": 0.25, "min_step": 0.25, "max_step": 0.25}
    for method in METHODS:
        assert torch.autograd.gradcheck(
            lambda z: odeint(f, z, t, method=method, options=fixed)[-1], (y0.detach().clone().requires_grad_(),))

        def eest_sum(z, method=method):
            stats = SolverStats()
            odeint(f, z, t, method=method, options={**fixed, "stats": stats})
            return stats.eest_tensor().sum()
        assert torch.autograd.gradcheck(eest_sum, (y0.detach().clone().requires_grad_(),))


def test_torchdiffeq_adapter_forward_and_adjoint():
    import torchdiffeq

    names = register_torchdiffeq()
    assert names == ["sciml_tsit5", "sciml_dopri5", "sciml_bosh3"]
    f = MLPField(dim=2, hidden=8, seed=5)
    y0 = torch.tensor([[0.2, 0.4], [-0.1, 0.3]])
    t = torch.linspace(0.0, 1.0, 4)
    with torch.no_grad():
        torch.testing.assert_close(torchdiffeq.odeint(f, y0, t, method="sciml_tsit5", rtol=1e-9, atol=1e-10),
                                   odeint(f, y0, t, rtol=1e-9, atol=1e-10))
    # adjoint gradients (both solves on our Tsit5) equal discretise-then-optimise ones at tight tolerance
    ys = torchdiffeq.odeint_adjoint(f, y0, t, method="sciml_tsit5", rtol=1e-10, atol=1e-11)
    g_adj = torch.autograd.grad(ys.pow(2).sum(), list(f.parameters()))
    g_dto = torch.autograd.grad(odeint(f, y0, t, rtol=1e-10, atol=1e-11).pow(2).sum(), list(f.parameters()))
    for a, b in zip(g_adj, g_dto):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_nfe_counter_counts_forward_and_backward():
    f = NFECounter(MLPField(dim=2, hidden=8, seed=2))
    stats = SolverStats()
    y = odeint(f, torch.tensor([[0.5, -0.5]]), torch.tensor([0.0, 2.0]), rtol=1e-4, atol=1e-6,
               options={"stats": stats})
    assert f.nfe_forward == stats.nfe
    y[-1].sum().backward()
    # every stage output feeds y(T) except: the initial-step probe (no grad), the last step's FSAL evaluation (it
    # only feeds the unused error estimate) and the new stages of rejected attempts
    assert f.nfe_backward == stats.nfe - 2 - (TSIT5.stages - 1) * stats.n_rejected


def test_options_without_diagnostics_give_the_same_solution():
    f = MLPField(seed=4)
    y0 = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.0, 0.5, 1.0])
    s1, s2 = SolverStats(), SolverStats()
    a = odeint(f, y0, t, rtol=1e-6, atol=1e-8, options={"stats": s1})
    b = odeint(f, y0, t, rtol=1e-6, atol=1e-8, options={"stats": s2, "diagnostics": False})
    assert torch.equal(a, b) and s1.dt == s2.dt and s1.nfe == s2.nfe and not s2.eest


def test_bad_input_raises_clear_errors():
    y0, t = torch.tensor([1.0]), torch.tensor([0.0, 1.0])
    with pytest.raises(ConfigError, match="unknown Runge"):
        odeint(field, y0, t, method="rk45")
    with pytest.raises(ConfigError, match="strictly monotonic"):
        odeint(field, y0, torch.tensor([0.0, 1.0, 0.5]))
    with pytest.raises(ConfigError, match="unknown key"):
        odeint(field, y0, t, options={"frist_step": 0.1})
    with pytest.raises(ShapeError, match="floating-point"):
        odeint(field, torch.tensor([1]), t)
    with pytest.raises(ConfigError, match="event_fn"):
        odeint(field, y0, t, event_fn=lambda t, y: y)
    from sciml.operators.ode import SolverError
    with pytest.raises(SolverError, match="max_num_steps"):
        odeint(lambda t, y: -1e4 * y, y0, torch.tensor([0.0, 10.0]), options={"max_num_steps": 20})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_solve_matches_cpu():
    f = MLPField(seed=6)
    y0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    t = torch.linspace(0.0, 1.0, 3)
    cpu = odeint(f, y0, t, rtol=1e-9, atol=1e-10)
    gpu = odeint(f.cuda(), y0.cuda(), t.cuda(), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-7, atol=1e-9)
