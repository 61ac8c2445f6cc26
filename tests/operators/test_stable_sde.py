"""Stable neural SDEs and the irregular time-series pipeline (sciml.operators.ode.{interpolation, stable_sde,
timeseries_task}): the interpolations against exact cubics, hand-evaluated Hermite bases, finite differences and
scipy's natural CubicSpline; drift and diffusion of every model against numpy formulas; the zero-diffusion SDE
against torchdiffeq; the UEA reader on a hand-written file; the missing-value draws, splits, normalisation and
weighted F1 against direct computations; a short training run on synthetic irregular data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.operators.ode import (CubicPath, GRUDeltaT, NeuralSDEClassifier, StableSDEFunc,
                                 batch_size_rule, build_timeseries_model, control_coeffs, drop_observations,
                                 fill_linear, fit_classifier, hermite_cubic_coeffs,
                                 hermite_cubic_coeffs_with_backward_differences, load_uea, natural_cubic_coeffs,
                                 normalize_from_train, stratified_split)
from sciml.metrics import weighted_f1

DATA = Path(os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data")))


def _irregular_times(L, seed=0):
    g = np.random.default_rng(seed)
    return torch.tensor(np.sort(g.uniform(0, 2, L)) + np.arange(L) * 0.05, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ interpolation
def test_hermite_with_exact_slopes_reproduces_a_cubic():
    t = _irregular_times(7)
    p = lambda s: 0.5 - 1.2 * s + 0.7 * s ** 2 - 0.3 * s ** 3  # noqa: E731
    dp = lambda s: -1.2 + 1.4 * s - 0.9 * s ** 2  # noqa: E731
    x = torch.stack([p(t), 2 * p(t)], -1)
    dx = torch.stack([dp(t), 2 * dp(t)], -1)
    path = CubicPath(hermite_cubic_coeffs(x, dx, t), t)
    for s in torch.linspace(float(t[0]), float(t[-1]), 37, dtype=torch.float64):
        assert torch.allclose(path.evaluate(s), torch.stack([p(s), 2 * p(s)]), atol=1e-10)
        assert torch.allclose(path.derivative(s), torch.stack([dp(s), 2 * dp(s)]), atol=1e-9)


def _hermite_basis(x0, x1, m0, m1, h, u):
    """The textbook cubic Hermite basis on [0, 1] (independent of the power-basis code)."""
    h00, h10 = 2 * u ** 3 - 3 * u ** 2 + 1, u ** 3 - 2 * u ** 2 + u
    h01, h11 = -2 * u ** 3 + 3 * u ** 2, u ** 3 - u ** 2
    return h00 * x0 + h10 * h * m0 + h01 * x1 + h11 * h * m1


def test_hermite_backward_differences_by_hand():
    t = torch.tensor([0.0, 0.5, 1.5, 2.0], dtype=torch.float64)
    v = torch.tensor([1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    path = CubicPath(hermite_cubic_coeffs_with_backward_differences(v.view(1, 4, 1), t), t)
    back = [(v[1] - v[0]) / 0.5, (v[1] - v[0]) / 0.5, (v[2] - v[1]) / 1.0, (v[3] - v[2]) / 0.5]  # slope per knot
    for k in range(3):
        h = float(t[k + 1] - t[k])
        for u in (0.0, 0.25, 0.6, 1.0):
            want = _hermite_basis(v[k], v[k + 1], back[k], back[k + 1], h, u)
            got = sum(path.coeffs[0, k, j, 0] * (u * h) ** j for j in range(4))  # interval k's cubic, incl. u = 1
            assert abs(float(got) - float(want)) < 1e-12
            if u < 1.0:
                assert abs(float(path.evaluate(t[k] + u * h)[0, 0]) - float(want)) < 1e-12
    # knot values, slopes at the knots = backward differences, C1 across knots, derivative vs finite differences
    assert torch.allclose(path.knot_values()[0, :, 0], v)
    for k in range(1, 3):
        h_prev = float(t[k] - t[k - 1])
        left = sum(j * path.coeffs[0, k - 1, j, 0] * h_prev ** (j - 1) for j in range(1, 4))
        assert abs(float(left) - float(back[k])) < 1e-12
        assert abs(float(path.derivative(t[k])[0, 0]) - float(back[k])) < 1e-12
    for s in (0.3, 0.9, 1.7):
        eps = 1e-6
        fd = (path.evaluate(s + eps) - path.evaluate(s - eps)) / (2 * eps)
        assert torch.allclose(path.derivative(s), fd, atol=1e-7)


def test_hermite_backward_differences_reproduce_lines_and_fill_missing_linearly():
    t = _irregular_times(9, seed=3)
    x = torch.stack([2.0 - 3.0 * t, 0.5 * t], -1).unsqueeze(0).clone()
    x_missing = x.clone()
    x_missing[0, [0, 3, 4, 8], 0] = float("nan")
    x_missing[0, [5], 1] = float("nan")
    slope = torch.tensor([-3.0, 0.5], dtype=torch.float64)
    path = CubicPath(hermite_cubic_coeffs_with_backward_differences(x, t), t)
    for s in torch.linspace(float(t[0]), float(t[-1]), 29, dtype=torch.float64):
        assert torch.allclose(path.evaluate(s)[0], torch.tensor([2.0, 0.0], dtype=torch.float64) + s * slope,
                              atol=1e-12)
        assert torch.allclose(path.derivative(s)[0], slope, atol=1e-10)
    # with gaps: interior gaps of a line are filled exactly, so between knots 1..7 the path is still the line
    gap = CubicPath(hermite_cubic_coeffs_with_backward_differences(x_missing, t), t)
    for s in torch.linspace(float(t[2]), float(t[7]), 17, dtype=torch.float64):
        assert abs(float(gap.evaluate(s)[0, 0]) - (2.0 - 3.0 * float(s))) < 1e-12
    filled = fill_linear(x_missing, t)
    assert torch.allclose(filled[0, 1:8, 0], x[0, 1:8, 0], atol=1e-12)  # interior: on the line
    assert float(filled[0, 0, 0]) == float(x[0, 1, 0]) and float(filled[0, 8, 0]) == float(x[0, 7, 0])
    assert torch.allclose(filled[0, :, 1], x[0, :, 1], atol=1e-12)


def test_fill_linear_by_hand():
    t = torch.tensor([0.0, 1.0, 3.0, 4.0, 6.0])
    nan = float("nan")
    x = torch.tensor([[nan, 1.0, nan, 4.0, nan], [nan] * 5, [2.0, nan, nan, nan, 6.0]]).T.unsqueeze(0)  # [1, 5, 3]
    got = fill_linear(x, t)[0]
    want = torch.tensor([[1.0, 1.0, 3.0, 4.0, 4.0], [0.0] * 5, [2.0, 2.0 + 4 / 6, 2.0 + 4 * 3 / 6, 2 + 4 * 4 / 6,
                                                                  6.0]]).T
    assert torch.allclose(got, want, atol=1e-6)


def test_natural_cubic_matches_scipy_with_and_without_missing_values():
    from scipy.interpolate import CubicSpline

    t = _irregular_times(11, seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 11, 2, generator=g, dtype=torch.float64)
    x[1, [0, 4, 5], 0] = float("nan")
    x[1, [10], 1] = float("nan")
    x[2, [2, 3, 7], :] = float("nan")
    path = CubicPath(natural_cubic_coeffs(x, t), t)
    dense = np.linspace(float(t[0]), float(t[-1]), 101)
    got = torch.stack([path.evaluate(float(s)) for s in dense], 1).numpy()  # [3, 101, 2]
    dgot = torch.stack([path.derivative(float(s)) for s in dense], 1).numpy()
    tn = t.numpy()
    for n in range(3):
        for c in range(2):
            v = x[n, :, c].numpy()
            ok = ~np.isnan(v)
            tt, vv = tn[ok], v[ok]
            if not ok[0]:  # the first/last observation imputed at the ends, as the neural CDE code does
                tt, vv = np.r_[tn[0], tt], np.r_[vv[0], vv]
            if not ok[-1]:
                tt, vv = np.r_[tt, tn[-1]], np.r_[vv, vv[-1]]
            ref = CubicSpline(tt, vv, bc_type="natural")
            np.testing.assert_allclose(got[n, :, c], ref(dense), atol=1e-10)
            np.testing.assert_allclose(dgot[n, :, c], ref(dense, 1), atol=1e-9)


def test_natural_cubic_edge_cases_and_errors():
    t = torch.linspace(0, 1, 5)
    x = torch.full((2, 5, 1), float("nan"))
    x[1, 2, 0] = 3.0
    path = CubicPath(natural_cubic_coeffs(x, t), t)
    assert torch.equal(path.evaluate(0.3), torch.tensor([[0.0], [3.0]]))  # empty -> zero path, one point -> const
    with pytest.raises(ShapeError, match="strictly increasing"):
        natural_cubic_coeffs(torch.zeros(1, 3, 1), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ShapeError, match="L = 3"):
        hermite_cubic_coeffs_with_backward_differences(torch.zeros(1, 3, 1), torch.linspace(0, 1, 4))


# ------------------------------------------------------------------------------------------------ the models
def _np(p):
    return p.detach().double().numpy()


def _reference_drift_diffusion(func, t, z, x, kind, form, factor="sigmoid"):
    """numpy re-implementation of the equations in the module docstring."""
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    lin = lambda m, a: a @ _np(m.weight).T + _np(m.bias)  # noqa: E731
    B = z.shape[0]
    tf = np.full((B, 1), t)
    tfeat = np.concatenate([np.sin(tf), np.cos(tf)], 1) if form == "code" else tf
    drift_time = kind in ("lnsde", "gsde") or (kind == "sde" and form == "paper")
    h = lin(func.latent_in, np.concatenate([tfeat, z], 1) if drift_time else z)
    if kind != "sde":
        h = lin(func.combine, np.concatenate([h, lin(func.control_in, x)], 1))
    h = relu(h)
    for layer in func.hidden_layers:
        h = relu(lin(layer, h))
    h = lin(func.drift_out, h)
    if kind == "gsde" and form == "code":
        h = h * ((1 - sig(z)) if factor == "sigmoid" else np.tanh(z))
    gamma = np.tanh(h)
    drift = z * gamma if (kind == "gsde" and form == "paper") else gamma
    nin = np.concatenate([tfeat, z], 1) if kind == "sde" else tfeat
    s = sig(float(func.theta.detach())) * relu(lin(func.noise_net[2], relu(lin(func.noise_net[0], nin))))
    if kind in ("lnsde", "gsde"):
        s = s * z
    if form == "code":
        s = np.tanh(s)
    return drift, s


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("kind", ["sde", "lsde", "lnsde", "gsde"])
def test_drift_and_diffusion_against_numpy(kind, form):
    torch.manual_seed(1)
    func = StableSDEFunc(kind, 2, 3, num_layers=2, form=form)
    with torch.no_grad():
        func.theta.fill_(0.3)
    coeffs = torch.randn(4, 5, 4, 2)
    path = CubicPath(coeffs)
    func.set_path(path)
    t = torch.tensor(0.37)
    z = torch.randn(4, 3)
    x = path.evaluate(t)
    a = coeffs[:, 1]  # t = 0.37 lies in the second interval of linspace(0, 1, 6)
    s = 0.37 - 0.2
    assert torch.allclose(x, a[:, 0] + s * a[:, 1] + s ** 2 * a[:, 2] + s ** 3 * a[:, 3], atol=1e-6)
    want_f, want_g = _reference_drift_diffusion(func, 0.37, _np(z), _np(x), kind, form)
    np.testing.assert_allclose(_np(func.f(t, z)), want_f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(func.g(t, z)), want_g, rtol=1e-5, atol=1e-6)
    if kind == "gsde" and form == "code":
        tanh_func = StableSDEFunc(kind, 2, 3, num_layers=2, form=form, geometric_factor="tanh")
        tanh_func.load_state_dict(func.state_dict())
        tanh_func.set_path(path)
        want_f, _ = _reference_drift_diffusion(tanh_func, 0.37, _np(z), _np(x), kind, form, factor="tanh")
        np.testing.assert_allclose(_np(tanh_func.f(t, z)), want_f, rtol=1e-5, atol=1e-6)


def test_lsde_diffusion_ignores_state_and_gsde_paper_vanishes_at_zero():
    torch.manual_seed(0)
    path = CubicPath(torch.randn(2, 4, 4, 3))
    lsde = StableSDEFunc("lsde", 3, 4)
    lsde.set_path(path)
    t = torch.tensor(0.5)
    assert torch.allclose(lsde.g(t, torch.randn(2, 4)), lsde.g(t, torch.randn(2, 4)))  # sigma(t) only
    gsde = StableSDEFunc("gsde", 3, 4, form="paper")
    gsde.set_path(path)
    zero = torch.zeros(2, 4)
    assert torch.equal(gsde.f(t, zero), zero) and torch.equal(gsde.g(t, zero), zero)


@pytest.mark.parametrize("kind,form", [("lsde", "code"), ("lnsde", "code"), ("gsde", "code"), ("gsde", "paper")])
def test_zero_diffusion_sde_equals_the_ode(kind, form):
    import torchdiffeq

    torch.manual_seed(2)
    model = NeuralSDEClassifier(3, 2, hidden=4, kind=kind, form=form, dt=0.02).double()
    with torch.no_grad():  # sigma == 0: the last noise layer outputs 0, ReLU(0) = 0
        model.func.noise_net[2].weight.zero_()
        model.func.noise_net[2].bias.zero_()
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    x = torch.randn(5, 6, 2, dtype=torch.float64)
    coeffs = control_coeffs(x, t)
    with torch.no_grad():
        zs = model.latent(coeffs, t)
    path = CubicPath(coeffs, t)
    model.func.set_path(path)
    z0 = model.initial(path.evaluate(0.0))
    with torch.no_grad():
        euler = torchdiffeq.odeint(model.func.f, z0, t[[0, -1]], method="euler", options={"step_size": 0.02})
        exact = torchdiffeq.odeint(model.func.f, z0, t[[0, -1]], method="dopri5", rtol=1e-8, atol=1e-9)
    assert torch.allclose(zs[-1], euler[-1], atol=1e-7)
    assert torch.allclose(zs[-1], exact[-1], atol=3e-2)  # Euler's O(dt) error at dt = 0.02
    assert not torch.allclose(zs[-1], z0, atol=1e-3)  # the state moved


def test_adjoint_gradients_match_direct_backpropagation_without_noise():
    torch.manual_seed(3)
    direct = NeuralSDEClassifier(3, 2, hidden=4, kind="lnsde", dt=0.05)
    with torch.no_grad():
        direct.func.noise_net[2].weight.zero_()
        direct.func.noise_net[2].bias.zero_()
    adjoint = NeuralSDEClassifier(3, 2, hidden=4, kind="lnsde", dt=0.05, adjoint=True)
    adjoint.load_state_dict(direct.state_dict())
    t = torch.linspace(0, 1, 5)
    coeffs = control_coeffs(torch.randn(3, 5, 2), t)
    grads = []
    for model in (direct, adjoint):
        model.zero_grad()
        model.latent(coeffs, t)[-1].pow(2).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.func.drift_out.parameters()]))
    # the adjoint integrates backwards with its own steps: agreement to the O(dt) discretisation error
    assert torch.allclose(grads[0], grads[1], rtol=0.05, atol=1e-3)


def test_grid_brownian_increments():
    from sciml.operators.ode.stable_sde import grid_brownian

    torch.manual_seed(0)
    bm = grid_brownian(0.0, 1.0, 0.1, (4000, 3))
    a, b = bm(torch.tensor(0.3), torch.tensor(0.4)), bm(0.4, 0.5)
    assert torch.equal(a, bm(0.3, 0.4)) and a.shape == (4000, 3)  # a repeated query: the same increment
    for inc, var in ((a, 0.1), (b, 0.1), (bm(0.9, 0.95), 0.05)):  # the clipped last step is scaled by its length
        assert abs(float(inc.var()) / var - 1) < 0.05 and abs(float(inc.mean())) < 0.02
    assert abs(float((a * b).mean())) < 0.005  # independent steps
    with pytest.raises(ConfigError, match="grid"):
        bm(0.35, 0.4)
    torch.manual_seed(0)
    assert torch.equal(grid_brownian(0.0, 1.0, 0.1, (4000, 3))(0.3, 0.4), a)  # seeded by torch's global RNG


def test_default_step_is_the_smallest_gap_and_the_models_run_backward():
    torch.manual_seed(0)
    t = torch.tensor([0.0, 0.1, 0.15, 0.6, 1.0])
    x = torch.randn(6, 5, 2)
    x[0, 2] = float("nan")
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    for name in ("sde", "lsde", "lnsde", "gsde", "gru_dt", "ncde"):
        model = build_timeseries_model(name, 2, 3, hidden=8)
        coeffs = control_coeffs(x, t, interpolation=model.interpolation, intensity=model.intensity)
        out = model(coeffs, t)
        assert out.shape == (6, 3) and torch.isfinite(out).all()
        torch.nn.functional.cross_entropy(out, y).backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
    # the SDE takes fixed steps of max(min gap, 1e-3) = 0.05: count drift calls
    model = NeuralSDEClassifier(3, 2, hidden=4)
    calls = []
    orig = model.func.f
    model.func.f = lambda tt, z: (calls.append(float(tt)), orig(tt, z))[1]
    model.latent(control_coeffs(x, t), t)
    steps = calls[1:]  # torchsde evaluates f once at t0 to check shapes before stepping
    assert len(steps) in (20, 21) and abs(steps[1] - steps[0] - 0.05) < 1e-6  # 21: float round-off at the end
    with pytest.raises(ShapeError, match="control channels"):
        model(control_coeffs(torch.randn(2, 5, 3), t), t)
    with pytest.raises(ConfigError, match="kind"):
        StableSDEFunc("bsde", 2, 2)


def test_gru_dt_updates_only_at_observed_knots():
    torch.manual_seed(0)
    t = torch.linspace(0, 1, 4)
    x = torch.randn(2, 4, 1)
    x_gap = x.clone()
    x_gap[0, 2] = float("nan")
    model = GRUDeltaT(3, 2, hidden=5)
    seen = []
    model.cell.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    model.eval()
    model(control_coeffs(x_gap, t, interpolation="natural", intensity=True), t)
    dts = torch.stack([s[0, 0] for s in seen])  # sample 0: the update after the gap sees Δt = 2/3 at knot 3
    assert torch.allclose(dts, torch.tensor([0.0, 1 / 3, 1 / 3, 2 / 3]))  # input at knot 2 is discarded
    assert torch.allclose(torch.stack([s[1, 0] for s in seen]), torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3]))
    assert abs(float(seen[2][0, 1])) < 1e-5 and abs(float(seen[3][0, 1]) - 1.0) < 1e-5  # the observed mask channel


# ------------------------------------------------------------------------------------------------ the data
TS_TRAIN = """# a tiny hand-written file
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,?,9,10:1,2,3,4:down
"""
TS_TEST = """@problemName Toy
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
0.5,1.5:2.5,3.5:down
"""


def test_load_uea_on_a_hand_written_file(tmp_path):
    (tmp_path / "Toy_TRAIN.ts").write_text(TS_TRAIN)
    (tmp_path / "Toy_TEST.ts").write_text(TS_TEST)
    ds = load_uea(tmp_path, resample="pad")
    nan = float("nan")
    want = torch.tensor([[[1, 4], [2, 5], [3, 6], [nan, nan]], [[7, 1], [nan, 2], [9, 3], [10, 4]],
                         [[0.5, 2.5], [1.5, 3.5], [nan, nan], [nan, nan]]])
    assert torch.allclose(ds.values, want, equal_nan=True)
    assert ds.y.tolist() == [0, 1, 1] and ds.class_labels == ["up", "down"] and ds.name == "Toy"
    assert ds.lengths.tolist() == [3, 4, 2] and ds.source_split.tolist() == [0, 0, 1]
    st = load_uea(tmp_path / "Toy_TRAIN.ts", resample="stretch")
    # the code's np.interp(arange(4), linspace(0, 4, 3), s): row 0 at positions 0, 2, 4 -> [1, 1.5, 2, 2.5]
    assert torch.allclose(st.values[0, :, 0], torch.tensor([1.0, 1.5, 2.0, 2.5]))
    assert torch.allclose(st.values[2, :, 1], torch.tensor([2.5, 2.75, 3.0, 3.25]))
    assert torch.allclose(st.values[1], want[1], equal_nan=True)  # full length: untouched
    with pytest.raises(ConfigError, match="resample"):
        load_uea(tmp_path, resample="cut")


def test_drop_observations_is_seeded_and_counts_are_exact():
    x = torch.randn(5, 10, 3)
    a = drop_observations(x, 0.3, seed=7)
    b = drop_observations(x, 0.3, seed=7)
    c = drop_observations(x, 0.3, seed=8)
    assert torch.equal(torch.isnan(a), torch.isnan(b)) and not torch.equal(torch.isnan(a), torch.isnan(c))
    assert not torch.isnan(x).any()  # the input is not modified
    miss = torch.isnan(a)
    assert (miss.sum(1) == 3).all()  # floor(10 * 0.3) per sample and channel
    assert torch.equal(miss[..., 0], miss[..., 1]) and torch.equal(miss[..., 0], miss[..., 2])  # whole time points
    kept = ~miss
    assert torch.equal(a[kept], x[kept])
    ch = torch.isnan(drop_observations(x, 0.5, seed=7, mode="channel"))
    assert (ch.sum(1) == 5).all() and not torch.equal(ch[..., 0], ch[..., 1])
    assert torch.equal(drop_observations(x, 0.0, seed=1), x)
    with pytest.raises(ConfigError, match="rate"):
        drop_observations(x, 1.0, seed=0)


def test_stratified_split_normalisation_f1_and_batch_rule():
    y = torch.tensor([0] * 20 + [1] * 40 + [2] * 10)
    tr, va, te = stratified_split(y, seed=0)
    allidx = torch.cat([tr, va, te]).sort().values
    assert torch.equal(allidx, torch.arange(70))
    assert [int((y[tr] == c).sum()) for c in range(3)] == [14, 28, 7]
    assert [int((y[va] == c).sum()) for c in range(3)] == [3, 6, 2]  # round(0.5 * 6) = 3, round(0.5 * 12), round(1.5)
    tr2, _, _ = stratified_split(y, seed=1)
    assert not torch.equal(tr, tr2)
    x = torch.randn(70, 6, 2) * 3 + 1
    x[0, 1, 0] = float("nan")
    xn = normalize_from_train(x, tr)
    train = x[tr].numpy()
    for d in range(2):
        v = train[..., d]
        mean, std = np.nanmean(v), np.nanstd(v, ddof=1)
        np.testing.assert_allclose(xn[..., d].numpy(), (x[..., d].numpy() - mean) / (std + 1e-5), rtol=1e-4,
                                   atol=1e-5)
    yt = torch.tensor([0, 0, 1, 1, 1, 2])
    yp = torch.tensor([0, 1, 1, 1, 0, 0])
    # class 0: tp 1 fp 2 fn 1 -> 2/5; class 1: tp 2 fp 1 fn 1 -> 4/6; class 2: 0; weights 2, 3, 1
    assert abs(weighted_f1(yt, yp, 3) - (2 * 0.4 + 3 * (4 / 6)) / 6) < 1e-12
    assert [batch_size_rule(n) for n in (20, 80, 200, 640, 5000)] == [16, 32, 64, 128, 128]


def test_training_on_synthetic_irregular_series_beats_chance():
    g = torch.Generator().manual_seed(0)
    N, L = 96, 16
    y = torch.arange(N) % 2
    t = torch.linspace(0, 1, L)
    slope = torch.where(y.view(-1, 1) == 0, 1.0, -1.0)  # rising vs falling, random offsets
    x = (slope * t.view(1, -1) + torch.rand(N, 1, generator=g)).unsqueeze(-1)
    x = x + 0.1 * torch.randn(x.shape, generator=g)
    x = drop_observations(x, 0.3, seed=0)
    splits = stratified_split(y, seed=0)
    x = normalize_from_train(x, splits[0])
    torch.manual_seed(0)
    model = build_timeseries_model("lsde", 1, 2, hidden=16, num_layers=1)
    coeffs = control_coeffs(x, interpolation=model.interpolation, intensity=model.intensity)
    res = fit_classifier(model, coeffs, y, splits, epochs=8, lr=1e-2, batch_size=32, start_after=100)
    assert res["test_acc"] >= 0.75, res  # chance is 0.5 (balanced classes)
    assert res["epochs"] == 8 and 0.0 <= res["test_f1"] <= 1.0


# ------------------------------------------------------------------------------------------------ shared data
@pytest.mark.skipif(not (DATA / "timeseries/ts/BasicMotions").exists(), reason="../shared/data/timeseries absent")
def test_load_basicmotions_from_shared_data():
    ds = load_uea(DATA / "timeseries/ts/BasicMotions")
    assert ds.values.shape == (80, 100, 6) and ds.num_classes == 4
    assert not torch.isnan(ds.values).any() and ds.y.bincount().tolist() == [20, 20, 20, 20]
