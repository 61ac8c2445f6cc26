"""PINN problems (sciml.operators.pinn.problems): residuals of known exact solutions vanish, the autograd
derivatives agree with central finite differences, hard constraints hold for any network, the box samplers stay in
the box, and the Burgers / Allen-Cahn reference loaders agree with numpy/scipy reading the same files."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sciml.errors import ConfigError, DataFormatError
from sciml.operators.pinn import (MLP, AllenCahn, Box, Burgers, PoissonExponential, PoissonPeak2D, laplacian,
                                  load_allen_cahn_reference, load_burgers_reference, make_problem, shared_data_root)

F64 = torch.float64
DEEPXDE = shared_data_root() / "pde" / "deepxde"


class Fn(torch.nn.Module):
    """A closed-form function used as the "model"."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)[:, None]


def test_poisson_exact_solutions_have_zero_residual():
    g = torch.Generator().manual_seed(0)
    for problem in (PoissonPeak2D(dtype=F64), PoissonExponential(10, dtype=F64), PoissonExponential(3, dtype=F64)):
        x = problem.domain.uniform(500, g)
        if isinstance(problem, PoissonPeak2D):  # also points on the peak, where f is ~4000
            x = torch.cat([x, 0.5 + 0.05 * torch.randn(500, 2, generator=g, dtype=F64)])
        r = problem.residual(Fn(problem.exact), x).detach()
        scale = problem.source(x).abs().max()
        assert float(r.abs().max()) < 1e-10 * float(scale), type(problem).__name__
        assert float(problem.boundary_loss(Fn(problem.exact))) < 1e-28


def test_poisson_source_is_minus_laplacian_by_hand():
    """f = u (2 a d - 4 a^2 |x - x0|^2) at a point, by hand for the peak at (0.5, 0.5)."""
    p = PoissonPeak2D(dtype=F64)
    x = torch.tensor([[0.51, 0.48]], dtype=F64)
    r2 = 0.01 ** 2 + 0.02 ** 2
    u = math.exp(-1000 * r2)
    assert float(p.source(x)) == pytest.approx(u * (2 * 1000 * 2 - 4 * 1000 ** 2 * r2), rel=1e-12)


def test_burgers_travelling_wave_has_zero_residual():
    """u = c - a tanh(a (x - c t) / (2 nu)) solves u_t + u u_x = nu u_xx for any a, c."""
    p = Burgers(hard_constraint=False, dtype=F64)
    nu, a, c = p.viscosity, 0.05, 0.3
    wave = Fn(lambda x: c - a * torch.tanh(a * (x[:, 0] - c * x[:, 1]) / (2 * nu)))
    x = p.domain.uniform(1000, torch.Generator().manual_seed(1))
    r = p.residual(wave, x).detach()
    assert float(r.abs().max()) < 1e-11
    # and a non-solution gives a clearly non-zero residual (the test can fail)
    wrong = Fn(lambda x: c - a * torch.tanh(a * (x[:, 0] - 0.5 * c * x[:, 1]) / (2 * nu)))
    assert float(p.residual(wrong, x).detach().abs().max()) > 1e-3


def test_allen_cahn_exact_solutions_have_zero_residual():
    """u = tanh(k x) with k^2 = 5 / (2 D) (stationary kink) and the spatially constant solution of u' = 5 (u - u^3),
    u(t) = (1 + (1/u0^2 - 1) e^{-10 t})^{-1/2}."""
    p = AllenCahn(hard_constraint=False, dtype=F64)
    x = p.domain.uniform(1000, torch.Generator().manual_seed(2))
    k = math.sqrt(p.reaction / (2 * p.diffusion))
    kink = Fn(lambda z: torch.tanh(k * z[:, 0]))
    assert float(p.residual(kink, x).detach().abs().max()) < 1e-9
    u0 = 0.3
    ode = Fn(lambda z: (1 + (1 / u0 ** 2 - 1) * torch.exp(-10 * z[:, 1])) ** -0.5 + 0 * z[:, 0])
    assert float(p.residual(ode, x).detach().abs().max()) < 1e-12
    assert float(p.residual(Fn(lambda z: torch.tanh(0.5 * k * z[:, 0])), x).detach().abs().max()) > 1.0


def _fd_derivatives(u, x, h):
    """Central differences of u at x: first derivatives (n, d) and pure second derivatives (n, d)."""
    d = x.shape[1]
    first, second = [], []
    u0 = u(x)
    for i in range(d):
        e = torch.zeros(d, dtype=x.dtype)
        e[i] = h
        up, um = u(x + e), u(x - e)
        first.append((up - um) / (2 * h))
        second.append((up - 2 * u0 + um) / h ** 2)
    return torch.stack(first, 1), torch.stack(second, 1)


@pytest.mark.parametrize("name", ["burgers", "allen_cahn", "peak", "exp"])
def test_residual_matches_finite_differences(name):
    """The problem's autograd residual of a random network (with the hard-constraint transform where the problem
    has one) equals the same operator assembled from central finite differences of the network's values."""
    kwargs = {"dim": 4} if name == "exp" else {}
    p = make_problem(name, dtype=F64, **kwargs)
    torch.manual_seed(0)
    net = MLP(p.dim, 16, 2).double()
    x = p.domain.uniform(50, torch.Generator().manual_seed(3)) * 0.9  # keep x +- h inside [-1, 1]
    if p.time_dependent:
        x[:, 1] = x[:, 1].abs() + 0.05
    with torch.no_grad():
        u = lambda z: p.solution(net, z)  # noqa: E731
        first, second = _fd_derivatives(u, x, 1e-4)
        second_h = _fd_derivatives(u, x, 1e-3)[1]  # O(h^2) differences are more accurate at a larger h
        uu = u(x)
    if name == "burgers":
        fd = first[:, 1] + uu * first[:, 0] - p.viscosity * second_h[:, 0]
    elif name == "allen_cahn":
        fd = first[:, 1] - p.diffusion * second_h[:, 0] - p.reaction * (uu - uu ** 3)
    else:
        fd = -second_h.sum(1) - p.source(x)
    r = p.residual(net, x).detach()
    assert torch.allclose(r, fd, atol=1e-5 * (1 + float(fd.abs().max()))), float((r - fd).abs().max())


def test_laplacian_of_a_quadratic_form_by_hand():
    """u = x^T A x has Laplacian 2 trace(A), and the partial sum over dims {0, 2} is 2 (A_00 + A_22)."""
    torch.manual_seed(0)
    a = torch.randn(5, 5, dtype=F64)
    x = torch.randn(7, 5, dtype=F64, requires_grad=True)
    u = torch.einsum("ni,ij,nj->n", x, a, x)
    lap = laplacian(u, x)
    assert torch.allclose(lap, torch.full((7,), 2 * float(torch.trace(a)), dtype=F64))
    part = laplacian(u, x, dims=[0, 2])
    assert torch.allclose(part, torch.full((7,), 2 * float(a[0, 0] + a[2, 2]), dtype=F64))


@pytest.mark.parametrize("cls", [Burgers, AllenCahn])
def test_hard_constraints_hold_for_any_network(cls):
    p = cls(dtype=F64)
    torch.manual_seed(1)
    net = MLP(2, 8, 2).double()
    xs = torch.linspace(-1, 1, 41, dtype=F64)
    init = torch.stack([xs, torch.zeros_like(xs)], 1)
    with torch.no_grad():
        assert torch.allclose(p.solution(net, init), p.initial(xs), atol=1e-14)
        t = torch.linspace(0, 1, 11, dtype=F64)
        for side in (-1.0, 1.0):
            edge = torch.stack([torch.full_like(t, side), t], 1)
            assert torch.allclose(p.solution(net, edge), torch.full_like(t, p.boundary_value), atol=1e-14)
    assert float(p.boundary_loss(net)) == 0.0
    soft = cls(hard_constraint=False, dtype=F64)
    assert float(soft.boundary_loss(net).detach()) > 0.0  # the raw network misses the conditions


def test_soft_constraints_vanish_for_the_conditions_themselves():
    """Burgers' soft loss is zero for a function meeting u(x,0) = -sin(pi x) and u(+-1,t) = 0."""
    p = Burgers(hard_constraint=False, dtype=F64)
    f = Fn(lambda z: -torch.sin(math.pi * z[:, 0]) * torch.exp(-z[:, 1]))
    assert float(p.boundary_loss(f)) < 1e-28
    assert float(p.boundary_loss(f, torch.Generator().manual_seed(5))) < 1e-28  # fresh points too


def test_box_sampling_and_boundary():
    box = Box([-1.0, 0.0, 2.0], [1.0, 0.5, 3.0])
    assert box.dim == 3 and box.volume == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    for method in ("uniform", "lhs", "sobol"):
        x = box.sample(256, method, g)
        assert x.shape == (256, 3) and bool(box.contains(x).all()), method
        # mean of a uniform sample ~ centre
        assert torch.allclose(x.mean(0), (box.low + box.high) / 2, atol=0.06), method
    lhs = box.sample(100, "lhs", g)  # Latin hypercube: one point per stratum and axis
    for i in range(3):
        strata = ((lhs[:, i] - box.low[i]) / (box.high[i] - box.low[i]) * 100).floor().long()
        assert sorted(strata.tolist()) == list(range(100))
    b = box.boundary(3000, g)
    on_face = ((b - box.low).abs() < 1e-7) | ((b - box.high).abs() < 1e-7)
    assert bool(on_face.any(1).all()) and bool(box.contains(b).all())
    # faces are chosen proportional to area: the x-faces (area 0.5 each) get 1/3.5 of the points... in total
    areas = torch.tensor([0.5, 2.0, 1.0])  # faces orthogonal to axis i, each of the two
    frac = torch.stack([on_face[:, i].float().mean() for i in range(3)])
    assert torch.allclose(frac, areas / areas.sum(), atol=0.03)
    grid = box.grid([3, 2, 2])
    assert grid.shape == (12, 3) and bool(box.contains(grid).all())
    with pytest.raises(ConfigError, match="high must exceed low"):
        Box([0.0], [0.0])
    with pytest.raises(ConfigError, match="method"):
        box.sample(3, "halton")


def test_exponential_reference_weights_integrate():
    """The importance weights estimate integrals: sum(w) ~ |Omega| and sum(w u^2) ~ the exact integral of
    exp(-20 |x|^2) over [-1, 1]^d, (sqrt(pi/20) erf(sqrt 20))^d."""
    p = PoissonExponential(10, num_reference=20000, dtype=F64)
    pts, vals = p.reference()
    w = p.reference_weights() / len(pts)
    exact_u2 = (math.sqrt(math.pi / 20) * math.erf(math.sqrt(20))) ** 10
    assert float((w * vals ** 2).sum()) == pytest.approx(exact_u2, rel=0.03)
    assert float(w.sum()) == pytest.approx(2.0 ** 10, rel=0.03)
    assert p.relative_l2(Fn(p.exact)) == 0.0
    assert p.relative_l2(Fn(lambda z: 0 * z[:, 0])) == pytest.approx(1.0)


def test_problem_errors():
    from sciml.operators.pinn.problems import PDEProblem

    with pytest.raises(ConfigError, match="hard_constraint"):
        PDEProblem(Box([0.0], [1.0]), hard_constraint=True)
    with pytest.raises(ConfigError, match="unknown PINN problem"):
        make_problem("wave")
    p = Burgers(reference_path="/nonexistent/Burgers.npz")
    with pytest.raises(FileNotFoundError, match="Burgers.npz"):
        p.reference()


# ------------------------------------------------------------------------------------------------ loaders
def test_burgers_loader_on_a_small_file(tmp_path):
    x = np.linspace(-1, 1, 5)[:, None]
    t = np.linspace(0, 1, 3)[:, None]
    usol = np.arange(15, dtype=np.float64).reshape(5, 3)  # (x, t) as DeepXDE's file
    np.savez(tmp_path / "b.npz", x=x, t=t, usol=usol)
    pts, vals = load_burgers_reference(tmp_path / "b.npz", dtype=F64)
    # DeepXDE's gen_testdata: meshgrid(x, t), values usol.T flattened (t slowest)
    xx, tt = np.meshgrid(x, t)
    assert np.array_equal(pts.numpy(), np.stack([xx.ravel(), tt.ravel()], 1))
    assert np.array_equal(vals.numpy(), usol.T.ravel())
    # the same grid stored transposed reads the same
    np.savez(tmp_path / "bt.npz", x=x, t=t, usol=usol.T)
    assert torch.equal(load_burgers_reference(tmp_path / "bt.npz", dtype=F64)[1], vals)
    np.savez(tmp_path / "bad.npz", x=x, t=t, u=usol)
    with pytest.raises(DataFormatError, match="usol"):
        load_burgers_reference(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad2.npz", x=x, t=t, usol=np.zeros((4, 3)))
    with pytest.raises(DataFormatError, match="does not match"):
        load_burgers_reference(tmp_path / "bad2.npz")


def test_allen_cahn_loader_on_a_small_file(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    x = np.linspace(-1, 1, 4)[None, :]
    t = np.linspace(0, 1, 3)[:, None]
    u = np.random.default_rng(0).standard_normal((3, 4))
    scipy_io.savemat(tmp_path / "ac.mat", {"x": x, "t": t, "u": u})
    pts, vals = load_allen_cahn_reference(tmp_path / "ac.mat", dtype=F64)
    xx, tt = np.meshgrid(x, t)
    assert np.allclose(pts.numpy(), np.stack([xx.ravel(), tt.ravel()], 1))
    assert np.array_equal(vals.numpy(), u.ravel())
    scipy_io.savemat(tmp_path / "bad.mat", {"x": x, "t": t})
    with pytest.raises(DataFormatError, match="'u'"):
        load_allen_cahn_reference(tmp_path / "bad.mat")


@pytest.mark.skipif(not (DEEPXDE / "Burgers.npz").exists(), reason="../shared/data/pde/deepxde/Burgers.npz absent")
def test_burgers_reference_file_against_numpy_and_physics():
    pts, vals = load_burgers_reference(DEEPXDE / "Burgers.npz", dtype=F64)
    with np.load(DEEPXDE / "Burgers.npz") as d:
        t, x, exact = d["t"], d["x"], d["usol"].T
    xx, tt = np.meshgrid(x, t)
    assert np.array_equal(pts.numpy(), np.stack([xx.ravel(), tt.ravel()], 1))
    assert np.array_equal(vals.numpy(), exact.ravel())
    # physics: the first time row is the initial condition, and a later row matches Cole-Hopf
    from sciml.datasets.generators.burgers import cole_hopf_raissi

    nx = x.size
    first = vals[:nx].numpy()
    assert np.allclose(first, -np.sin(np.pi * x.ravel()), atol=1e-6)
    row = 50
    tr = float(t.ravel()[row])
    assert np.allclose(vals[row * nx:(row + 1) * nx].numpy(), cole_hopf_raissi(x.ravel(), tr), atol=2e-3)
    assert Burgers().reference()[0].shape == (x.size * t.size, 2)


@pytest.mark.skipif(not (DEEPXDE / "Allen_Cahn.mat").exists(),
                    reason="../shared/data/pde/deepxde/Allen_Cahn.mat absent")
def test_allen_cahn_reference_file_against_scipy_and_initial_condition():
    from scipy.io import loadmat

    pts, vals = load_allen_cahn_reference(DEEPXDE / "Allen_Cahn.mat", dtype=F64)
    d = loadmat(DEEPXDE / "Allen_Cahn.mat")
    xx, tt = np.meshgrid(d["x"], d["t"])
    assert np.array_equal(pts.numpy(), np.stack([xx.ravel(), tt.ravel()], 1))
    assert np.array_equal(vals.numpy(), d["u"].ravel())
    nx = d["x"].size
    x0 = pts[:nx, 0].numpy()
    assert np.allclose(pts[:nx, 1].numpy(), 0.0)
    assert np.allclose(vals[:nx].numpy(), x0 ** 2 * np.cos(np.pi * x0), atol=1e-6)
    # a later time against an independent solver: our Chebyshev collocation + Radau (256 nodes) on the file's grid
    from sciml.datasets.generators.allen_cahn import solve_allen_cahn

    t = np.asarray(d["t"], dtype=np.float64).ravel()
    ours = solve_allen_cahn(np.asarray(d["x"], dtype=np.float64).ravel(), t[::25])
    theirs = d["u"][::25]
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 5e-4
    assert np.abs(ours - theirs).max() < 2e-3


# ------------------------------------------------------------------------------------------------ reference solvers
def test_allen_cahn_solver_against_the_heat_equation_and_its_errors():
    """With no reaction the solver solves u_t = D u_xx, u(±1) = -1: u = -1 + exp(-D π² t / 4) sin(π (x + 1) / 2);
    with reaction the constant states u = ±1 stay (equilibria), and u = 0 with boundary 0 too."""
    from sciml.datasets.generators.allen_cahn import solve_allen_cahn

    x, t = np.linspace(-1, 1, 41), np.array([0.0, 0.3, 1.0])
    D = 0.2
    u = solve_allen_cahn(x, t, diffusion=D, reaction=0.0, initial=lambda z: -1 + np.sin(np.pi * (z + 1) / 2),
                         num_nodes=32)
    exact = -1 + np.exp(-D * np.pi ** 2 * t[:, None] / 4) * np.sin(np.pi * (x + 1) / 2)
    assert np.abs(u - exact).max() < 1e-8
    eq = solve_allen_cahn(x, t, initial=lambda z: 1 + 0 * z, boundary=1.0, num_nodes=32)
    assert np.abs(eq - 1).max() < 1e-10
    # the reaction acts: a small positive bump grows towards +1 where diffusion is weak
    bump = solve_allen_cahn(np.array([0.0]), np.array([0.0, 1.0]), diffusion=1e-4, boundary=0.0,
                            initial=lambda z: 0.01 * np.cos(np.pi * z / 2), num_nodes=64)
    grown = 1 / np.sqrt(1 + (1 / 0.01 ** 2 - 1) * np.exp(-10.0))  # the ODE u' = 5 (u - u^3) from 0.01, t = 1
    assert bump[1, 0] == pytest.approx(grown, rel=1e-3)
    with pytest.raises(ConfigError, match="boundary"):
        solve_allen_cahn(x, t, initial=lambda z: 0 * z)  # u0(±1) = 0, boundary -1
    with pytest.raises(ConfigError, match="increasing"):
        solve_allen_cahn(x, t[::-1])
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        solve_allen_cahn(np.array([2.0]), t)


def test_time_dependent_problems_fall_back_to_their_solvers():
    """Other coefficients than the reference file's, or no file: the problem solves its own reference on the file's
    grid (Allen-Cahn: Chebyshev collocation, Burgers: Cole-Hopf); a file passed explicitly must exist."""
    from sciml.datasets.generators.allen_cahn import solve_allen_cahn
    from sciml.datasets.generators.burgers import cole_hopf_raissi

    p = AllenCahn(diffusion=0.002, dtype=F64)
    pts, vals = p.reference()
    assert pts.shape == (201 * 101, 2) and float(pts[:, 1].max()) == 1.0
    x = np.linspace(-1, 1, 201)
    assert np.allclose(vals.reshape(101, 201)[[0, 50]].numpy(), solve_allen_cahn(x, np.array([0.0, 0.5]),
                                                                                   diffusion=0.002), atol=1e-9)
    b = Burgers(viscosity=0.02 / math.pi, dtype=F64)
    b.reference_grid = (33, 5, 0.8)  # a small grid keeps the quadrature quick
    pts, vals = b.reference()
    assert pts.shape == (33 * 5, 2)
    assert np.allclose(vals.reshape(5, 33)[3].numpy(), cole_hopf_raissi(np.linspace(-1, 1, 33), 0.6,
                                                                        0.02 / math.pi), atol=1e-12)
    with pytest.raises(FileNotFoundError, match="nothere.mat"):
        AllenCahn(reference_path="/nonexistent/nothere.mat").reference()
