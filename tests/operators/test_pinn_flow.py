"""The bounded normalising flow (sciml.operators.pinn.flow): the density integrates to 1 on the box by midpoint
quadrature (1-D and 2-D, random and trained flows), samples never leave the box, the log-density is the
change-of-variables log|det| of the sampling map (dense autograd Jacobian), samples follow the density (cell
histogram vs quadrature), the score and the H1 penalty agree with finite differences, and a fit to a planted
Gaussian bump puts the bump's exact mass into a window."""
from __future__ import annotations

import math

import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.operators.pinn.flow import BoundedFlow, rational_quadratic_spline


def perturbed(flow: BoundedFlow, scale: float = 0.3, seed: int = 0) -> BoundedFlow:
    """Random parameters (a fresh flow is exactly uniform, which would make the checks trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def midpoint_grid(low, high, n):
    """Cell midpoints of an n^d grid on the box and the cell volume."""
    axes = [lo + (hi - lo) * (torch.arange(n, dtype=torch.float64) + 0.5) / n for lo, hi in zip(low, high)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(low))
    cell = math.prod((hi - lo) / n for lo, hi in zip(low, high))
    return grid, cell


def trained_2d(low, high, seed=0):
    """A flow fitted a few steps to a bump near a corner (a non-trivial learned density)."""
    torch.manual_seed(seed)
    flow = BoundedFlow(2, low, high, num_layers=2, num_bins=8, hidden=16).double()
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    x = lo + (hi - lo) * torch.rand(1000, 2, generator=g, dtype=torch.float64)
    centre = lo + 0.8 * (hi - lo)
    w = torch.exp(-((x - centre) / (0.15 * (hi - lo))).pow(2).sum(1))
    flow.fit_to_density(x, w, 40, lr=3e-2)
    return flow


def test_fresh_flow_is_the_uniform_density():
    flow = BoundedFlow(3, [-1.0, 0.0, 2.0], [1.0, 0.5, 5.0])
    x = flow.sample(500, torch.Generator().manual_seed(1))
    expected = -math.log(2.0 * 0.5 * 3.0)
    assert torch.allclose(flow.log_prob(x), torch.full((500,), expected), atol=1e-5)


@pytest.mark.parametrize("kind", ["random", "trained"])
def test_density_integrates_to_one_on_2d_box(kind):
    low, high = [-1.0, 0.0], [2.0, 0.5]
    if kind == "random":
        torch.manual_seed(0)
        flow = perturbed(BoundedFlow(2, low, high, num_layers=3, num_bins=8, hidden=16).double())
    else:
        flow = trained_2d(low, high)
    grid, cell = midpoint_grid(low, high, 300)
    with torch.no_grad():
        p = flow.log_prob(grid).exp()
    # the density is far from uniform, so this is not a trivial 1
    assert float(p.max() / p.min()) > 3.0
    assert abs(float(p.sum() * cell) - 1.0) < 2e-3


def test_density_integrates_to_one_on_interval():
    torch.manual_seed(0)
    flow = perturbed(BoundedFlow(1, -2.0, 3.0, num_layers=3, num_bins=10).double(), scale=0.5)
    grid, cell = midpoint_grid([-2.0], [3.0], 40000)
    with torch.no_grad():
        p = flow.log_prob(grid).exp()
    assert float(p.max() / p.min()) > 3.0
    assert abs(float(p.sum() * cell) - 1.0) < 1e-6
    # trained: fit to a bump, integrate again
    g = torch.Generator().manual_seed(0)
    x = -2.0 + 5.0 * torch.rand(3000, 1, generator=g, dtype=torch.float64)
    flow.fit_to_density(x, torch.exp(-(x[:, 0] - 2.5).pow(2) / 0.1), 40, lr=3e-2)
    with torch.no_grad():
        p = flow.log_prob(grid).exp()
    assert abs(float(p.sum() * cell) - 1.0) < 1e-5


def test_samples_stay_inside_the_box():
    low, high = [-1.0, 0.0], [2.0, 0.5]
    torch.manual_seed(0)
    flows = [perturbed(BoundedFlow(2, low, high, num_layers=3, num_bins=8, hidden=16), scale=3.0),
             trained_2d(low, high).float()]
    lo, hi = torch.tensor(low), torch.tensor(high)
    for flow in flows:
        x = flow.sample(20000, torch.Generator().manual_seed(3))
        assert x.shape == (20000, 2) and x.dtype == torch.float32
        assert bool(((x >= lo) & (x <= hi)).all())
        assert bool(flow.contains(x).all())
        assert bool(torch.isfinite(flow.log_prob(x)).all())


def test_log_prob_is_the_change_of_variables_of_the_sampling_map():
    """log p(x) = -log|det dx/dz| for x = from_base(z) (base density 1 on the unit cube): the Jacobian comes from
    autograd through the *inverse* splines, the log-density from the forward ones."""
    torch.manual_seed(1)
    flow = perturbed(BoundedFlow(3, [0.0, -1.0, 1.0], [1.0, 1.0, 4.0], num_layers=4, num_bins=6, hidden=8).double())
    z = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.98 + 0.01
    x = flow.from_base(z)
    z_back, _ = flow.to_base(x)
    assert torch.allclose(z_back, z, atol=1e-9)
    for i in range(z.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow.from_base(v.unsqueeze(0))[0], z[i])
        expected = -torch.linalg.slogdet(jac).logabsdet
        assert torch.allclose(flow.log_prob(x[i:i + 1])[0], expected, atol=1e-7)


def test_sample_histogram_follows_log_prob():
    low, high = [0.0, -1.0], [1.0, 1.0]
    torch.manual_seed(2)
    flow = perturbed(BoundedFlow(2, low, high, num_layers=2, num_bins=8, hidden=16))
    n = 100000
    x = flow.sample(n, torch.Generator().manual_seed(5)).double()
    cells = 6
    ij = ((x - torch.tensor(low)) / (torch.tensor(high) - torch.tensor(low)) * cells).long().clamp(0, cells - 1)
    counts = torch.bincount(ij[:, 0] * cells + ij[:, 1], minlength=cells * cells).double() / n
    grid, cell = midpoint_grid(low, high, 240)  # 40 x 40 quadrature points per histogram cell
    with torch.no_grad():
        p = flow.double().log_prob(grid).exp() * cell
    gij = ((grid - torch.tensor(low)) / (torch.tensor(high) - torch.tensor(low)) * cells).long()
    mass = torch.zeros(cells * cells, dtype=torch.float64).index_add_(0, gij[:, 0] * cells + gij[:, 1], p)
    tol = 5.0 * torch.sqrt(mass * (1 - mass) / n) + 2e-4
    assert float(mass.max() / mass.min()) > 2.0
    assert bool(((counts - mass).abs() <= tol).all()), (counts - mass).abs().max()


def test_score_and_h1_penalty_match_finite_differences():
    torch.manual_seed(3)
    flow = perturbed(BoundedFlow(2, [-1.0, -1.0], [1.0, 1.0], num_layers=3, num_bins=8, hidden=16).double())
    x = flow.sample(20, torch.Generator().manual_seed(0)).clamp(-0.99, 0.99)
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for j in range(2):
            e = torch.zeros(2, dtype=torch.float64)
            e[j] = eps
            fd[:, j] = (flow.log_prob(x + e) - flow.log_prob(x - e)) / (2 * eps)
    assert torch.allclose(flow.score(x), fd, rtol=1e-5, atol=1e-5)
    assert math.isclose(float(flow.h1_penalty(x).detach()), float(fd.pow(2).sum(1).mean()), rel_tol=1e-5)


def test_h1_penalty_gradient_wrt_parameters_matches_finite_differences():
    torch.manual_seed(4)
    flow = perturbed(BoundedFlow(2, 0.0, 1.0, num_layers=2, num_bins=6, hidden=8).double(), scale=0.3)
    x = flow.sample(16, torch.Generator().manual_seed(1)).clamp(0.01, 0.99)
    param = flow.layers[0].net[0].weight
    flow.zero_grad()
    flow.h1_penalty(x).backward()
    grad = param.grad[0, 0].item()
    eps = 1e-5
    with torch.no_grad():
        param[0, 0] += eps
    up = flow.h1_penalty(x).item()
    with torch.no_grad():
        param[0, 0] -= 2 * eps
    down = flow.h1_penalty(x).item()
    assert abs(grad) > 1e-6
    assert math.isclose(grad, (up - down) / (2 * eps), rel_tol=1e-4, abs_tol=1e-8)


def test_fit_to_planted_bump_moves_the_mass_there():
    """Weights = bump / uniform proposal; the fitted flow's samples put the bump's exact mass into a window."""
    torch.manual_seed(0)
    flow = BoundedFlow(2, 0.0, 1.0, num_layers=3, num_bins=8, hidden=16)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 2, generator=g)
    centre, s = torch.tensor([0.3, 0.65]), 0.08
    weights = torch.exp(-(x - centre).pow(2).sum(1) / (2 * s * s))
    flow.fit_to_density(x, weights, 150, lr=2e-2, batch_size=500, generator=g)
    y = flow.sample(20000, torch.Generator().manual_seed(1))
    half = 2 * s
    in_window = ((y - centre).abs() <= half).all(1).float().mean().item()
    # exact mass of the bump (normalised on the unit square) in the window: product of 1-D normal masses
    def mass(c, a, b):
        cdf = lambda t: 0.5 * (1 + math.erf((t - c) / (s * math.sqrt(2))))  # noqa: E731
        return cdf(b) - cdf(a)
    exact = math.prod(mass(c, c - half, c + half) / mass(c, 0.0, 1.0) for c in centre.tolist())
    uniform = (2 * half) ** 2
    assert exact > 0.9 and uniform < 0.11
    assert abs(in_window - exact) < 0.06, (in_window, exact)


def test_log_prob_outside_and_clamp():
    flow = perturbed(BoundedFlow(2, 0.0, 2.0, num_layers=2, num_bins=4, hidden=8), scale=2.0)
    x = torch.tensor([[0.5, 0.5], [2.5, 0.5], [0.5, -0.1]])
    lp = flow.log_prob(x)
    assert torch.isfinite(lp[0]) and lp[1] == -math.inf and lp[2] == -math.inf
    grid, _ = midpoint_grid([0.0, 0.0], [2.0, 2.0], 50)
    lpc = flow.log_prob(grid.float(), clamp=True) + math.log(4.0)
    lo, hi = flow.log_prob_bounds
    assert bool((lpc >= lo - 1e-5).all() and (lpc <= hi + 1e-5).all())


def test_spline_inverse_and_identity():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(100, 3 * 7 + 1, generator=g, dtype=torch.float64) * 2
    x = torch.rand(100, generator=g, dtype=torch.float64)
    y, logd = rational_quadratic_spline(x, raw)
    back, logd_inv = rational_quadratic_spline(y, raw, inverse=True)
    assert torch.allclose(back, x, atol=1e-10) and torch.allclose(logd, -logd_inv, atol=1e-8)
    ends, _ = rational_quadratic_spline(torch.tensor([0.0, 1.0], dtype=torch.float64), raw[:2])
    assert ends.tolist() == [0.0, 1.0]
    # derivative vs finite differences
    eps = 1e-7
    xi = x.clamp(1e-3, 1 - 1e-3)
    fd = (rational_quadratic_spline(xi + eps, raw)[0] - rational_quadratic_spline(xi - eps, raw)[0]) / (2 * eps)
    assert torch.allclose(rational_quadratic_spline(xi, raw)[1].exp(), fd, rtol=1e-5)


def test_bad_input_errors():
    with pytest.raises(ConfigError, match="high"):
        BoundedFlow(2, [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ConfigError, match="low"):
        BoundedFlow(2, [0.0, 0.0, 0.0], 1.0)
    with pytest.raises(ConfigError, match="dim"):
        BoundedFlow(0)
    flow = BoundedFlow(2)
    with pytest.raises(ShapeError, match=r"\[n, 2\]"):
        flow.log_prob(torch.zeros(3, 3))
    with pytest.raises(ConfigError, match="weights"):
        flow.fit_to_density(torch.rand(4, 2), torch.tensor([1.0, -1.0, 0.0, 1.0]), 1)
    with pytest.raises(ShapeError, match="weights"):
        flow.fit_to_density(torch.rand(4, 2), torch.ones(3), 1)
