"""DAS and AAS collocation samplers (sciml.operators.pinn.flow_samplers) on a fake problem whose residual is a
planted Gaussian bump: both move the points to the bump, DAS-G grows the set and DAS-R keeps its size, the
importance weights turn flow samples into an estimate of the uniform average (checked against the exact integral),
a larger Sobolev weight keeps AAS closer to uniform, and a state_dict round trip reproduces the next batches."""
from __future__ import annotations

import math

import pytest
import torch

from sciml.errors import ConfigError
from sciml.operators.pinn.flow_samplers import AASSampler, DASSampler

CENTRE = torch.tensor([0.5, 0.5])
WIDTH = 0.1
WINDOW = 0.2  # half side of the window around the peak; uniform mass in it: 0.4^2 / 4 = 0.04


class FakeBox:
    """Duck-typed stand-in for the PINN core's Box: [-1, 1]^2."""

    def __init__(self, low=(-1.0, -1.0), high=(1.0, 1.0)):
        self.low, self.high = torch.tensor(low), torch.tensor(high)
        self.dim = len(low)
        self.volume = float(torch.prod(self.high - self.low))

    def uniform(self, n, generator=None):
        return self.low + (self.high - self.low) * torch.rand(n, self.dim, generator=generator)

    def contains(self, x):
        return ((x >= self.low) & (x <= self.high)).all(1)


class BumpProblem:
    """Residual = model.amplitude * planted bump (the model is only a scale, so the residual is known exactly)."""

    name = "bump"

    def __init__(self):
        self.domain = FakeBox()
        self.dim = 2
        self.calls = 0

    def residual(self, model, x):
        self.calls += 1
        return model.amplitude * torch.exp(-(x - CENTRE).pow(2).sum(1) / (2 * WIDTH ** 2))


class FakeModel(torch.nn.Module):
    def __init__(self, amplitude=3.0e3):
        super().__init__()
        self.amplitude = amplitude


def window_fraction(x):
    return ((x - CENTRE).abs() <= WINDOW).all(1).float().mean().item()


def r2_window_mass():
    """Exact mass of the density proportional to r^2 (a normal with std WIDTH/sqrt 2) in the window."""
    s = WIDTH / math.sqrt(2)
    one = math.erf(WINDOW / (s * math.sqrt(2)))
    return one ** 2


FLOW = {"num_layers": 3, "num_bins": 8, "hidden": 16}


@pytest.mark.parametrize("mode", ["replace"])
def test_das_moves_points_to_the_peak_and_sizes(mode):
    problem, model = BumpProblem(), FakeModel()
    sampler = DASSampler(mode, stage_steps=3, flow_steps=100, flow_lr=2e-2, flow_batch=500, flow_kwargs=FLOW)
    sampler.setup(problem, 1000, torch.Generator().manual_seed(0))
    x0, w0 = sampler.batch()
    assert x0.shape == (1000, 2) and w0 is None
    assert abs(window_fraction(x0) - 0.04) < 0.02
    changed = [sampler.update(s, model) for s in range(3)]
    assert changed == [False, False, True] and sampler.stages == 1
    x1, _ = sampler.batch()
    assert x1.shape == ((2000, 2) if mode == "add" else (1000, 2))
    assert bool(problem.domain.contains(x1).all())
    assert torch.equal(x1[:1000], x0) if mode == "add" else True
    new = x1[1000:] if mode == "add" else x1
    assert window_fraction(new) > 0.75 * r2_window_mass(), window_fraction(new)
    assert sampler.name == ("das_g" if mode == "add" else "das_r")


def test_das_max_stages_and_growth():
    problem, model = BumpProblem(), FakeModel()
    sampler = DASSampler("add", stage_steps=1, max_stages=2, n_new=100, flow_steps=2, flow_kwargs=FLOW)
    sampler.setup(problem, 300, torch.Generator().manual_seed(0))
    x0 = sampler.batch()[0].clone()
    assert [sampler.update(s, model) for s in range(4)] == [True, True, False, False]
    x = sampler.batch()[0]
    assert x.shape == (500, 2) and len(sampler.history) == 2 and sampler.name == "das_g"
    assert torch.equal(x[:300], x0) and bool(problem.domain.contains(x).all())
    # the stored proposal densities: uniform for the first set, the drawing flow's for the added points
    assert torch.allclose(sampler.log_q[:300], torch.full((300,), -math.log(4.0)))
    assert torch.allclose(sampler.log_q[400:], sampler.flow.log_prob(x[400:]).detach(), atol=1e-5)


def test_das_importance_weights_estimate_the_uniform_average():
    """Points from the fitted flow, weights (1/|Omega|)/q: the weighted mean of g estimates the uniform average of g
    on [-1, 1]^2: for g = (x + 1)^2 (y + 1)^2 it is (4/3)^2 (g is 5 times larger at the peak)."""
    problem, model = BumpProblem(), FakeModel()
    sampler = DASSampler("replace", stage_steps=1, flow_steps=20, flow_lr=1e-2, flow_batch=1000,
                         importance_weights=True, flow_kwargs=FLOW)
    sampler.setup(problem, 20000, torch.Generator().manual_seed(1))
    sampler.update(0, model)
    x, w = sampler.batch()
    assert window_fraction(x) > 0.3  # concentrated: the unweighted mean is far off
    # the weights are 1/p_flow(x) (the flow that drew the points), scaled to mean 1
    ref = torch.exp(-sampler.flow.log_prob(x).detach())
    assert torch.allclose(w, ref / ref.mean(), rtol=1e-4)
    g = (x[:, 0] + 1).pow(2) * (x[:, 1] + 1).pow(2)
    exact = 16.0 / 9.0
    assert abs(float(w.mean()) - 1.0) < 1e-5
    assert abs(float((w * g).mean()) - exact) < 0.15 * exact
    assert abs(float(g.mean()) - exact) > 0.5 * exact


def test_aas_concentrates_at_the_peak_and_beta_limits_it():
    fractions = {}
    for beta in (0.0, 0.5):
        problem, model = BumpProblem(), FakeModel()
        sampler = AASSampler(beta=beta, flow_lr=2e-2, flow_kwargs={"num_layers": 2, "num_bins": 8, "hidden": 16})
        sampler.setup(problem, 256, torch.Generator().manual_seed(0))
        for step in range(50):
            assert sampler.update(step, model)
        x, w = sampler.batch()
        assert w is None and x.shape == (256, 2) and bool(problem.domain.contains(x).all())
        big = sampler.flow.sample(4000, torch.Generator().manual_seed(9))
        fractions[beta] = window_fraction(big)
    assert fractions[0.0] > 0.3, fractions
    assert fractions[0.5] < 0.7 * fractions[0.0], fractions


def test_aas_uniform_mixture_warmup_and_weights():
    problem, model = BumpProblem(), FakeModel()
    sampler = AASSampler(beta=0.0, flow_lr=2e-2, uniform_fraction=0.25, warmup_steps=2, importance_weights=True,
                         flow_kwargs={"num_layers": 2, "num_bins": 8, "hidden": 16})
    sampler.setup(problem, 4000, torch.Generator().manual_seed(0))
    assert sampler.batch()[1] is None  # warm-up batches are uniform
    before = [p.detach().clone() for p in sampler.flow.parameters()]
    sampler.update(0, model)
    sampler.update(1, model)  # warm-up over: this batch comes from the (still uniform) flow, no flow step yet
    assert all(torch.equal(a, b) for a, b in zip(before, sampler.flow.parameters()))
    for step in range(2, 30):
        sampler.update(step, model)
    x, w = sampler.batch()
    assert sampler.n_flow == 3000
    flow_part, uniform_part = x[:3000], x[3000:]
    assert window_fraction(flow_part) > 2 * window_fraction(uniform_part) + 0.05
    g = (x[:, 0] + 1).pow(2) * (x[:, 1] + 1).pow(2)
    exact = 16.0 / 9.0
    assert abs(float((w * g).mean()) - exact) < 0.15 * exact


def test_aas_flow_step_is_the_score_function_gradient():
    """The flow's update direction: -(mean[(r^2/mean r^2 - 1) log p]) has the hand-computed gradient."""
    problem, model = BumpProblem(), FakeModel()
    sampler = AASSampler(beta=0.0, cap_weight=0.0, flow_kwargs={"num_layers": 1, "num_bins": 4, "hidden": 4})
    sampler.setup(problem, 64, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in sampler.flow.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    x = sampler.batch()[0]
    r2 = problem.residual(model, x).pow(2)
    adv = r2 / r2.mean() - 1
    # reference gradient: sum of per-sample gradients of log p, weighted
    ref = [torch.zeros_like(p) for p in sampler.flow.parameters()]
    for i in range(x.shape[0]):
        grads = torch.autograd.grad(sampler.flow.log_prob(x[i:i + 1])[0], list(sampler.flow.parameters()),
                                    allow_unused=True)
        for acc, gi in zip(ref, grads):
            if gi is not None:
                acc -= adv[i] * gi / x.shape[0]
    sampler.optimizer = torch.optim.SGD(sampler.flow.parameters(), lr=1.0)
    before = [p.detach().clone() for p in sampler.flow.parameters()]
    sampler.flow_step(model, x)
    for b, p, r in zip(before, sampler.flow.parameters(), ref):
        assert torch.allclose(b - p.detach(), r, atol=1e-5)


@pytest.mark.parametrize("kind", ["aas", "das"])
def test_state_dict_round_trip_gives_identical_next_batches(kind):
    def make():
        if kind == "aas":
            return AASSampler(beta=0.01, flow_lr=1e-2, flow_steps=2, uniform_fraction=0.1,
                              flow_kwargs={"num_layers": 2, "num_bins": 8, "hidden": 16})
        return DASSampler("add", stage_steps=2, flow_steps=5, flow_batch=64,
                          flow_kwargs={"num_layers": 2, "num_bins": 8, "hidden": 16})

    problem, model = BumpProblem(), FakeModel()
    a = make()
    a.setup(problem, 128, torch.Generator().manual_seed(0))
    for step in range(3):
        a.update(step, model)
    state = a.state_dict()
    b = make()
    b.setup(BumpProblem(), 128, torch.Generator().manual_seed(123))
    assert not torch.equal(a.batch()[0], b.batch()[0])
    b.load_state_dict(state)
    for step in range(3, 8):
        assert torch.equal(a.batch()[0], b.batch()[0])
        a.update(step, model)
        b.update(step, model)
    assert torch.equal(a.batch()[0], b.batch()[0])


def test_bad_arguments():
    with pytest.raises(ConfigError, match="mode"):
        DASSampler("both")
    with pytest.raises(ConfigError, match="stage_steps"):
        DASSampler(stage_steps=0)
    with pytest.raises(ConfigError, match="uniform_fraction"):
        AASSampler(uniform_fraction=1.5)
    with pytest.raises(ConfigError, match="beta"):
        AASSampler(beta=-1.0)
    with pytest.raises(ConfigError, match="setup"):
        AASSampler().batch()


def test_make_sampler_reaches_these_classes():
    sampling = pytest.importorskip("sciml.operators.pinn.sampling", reason="the PINN core's sampler registry")
    das_g, das_r, aas = (sampling.make_sampler(n) for n in ("das_g", "das_r", "aas"))
    assert isinstance(das_g, DASSampler) and das_g.mode == "add"
    assert isinstance(das_r, DASSampler) and das_r.mode == "replace"
    assert isinstance(aas, AASSampler)


def test_refresh_is_a_stage_change_for_das_and_nothing_for_aas():
    problem, model = BumpProblem(), FakeModel()
    das = DASSampler("replace", stage_steps=1000, max_stages=1, flow_steps=2, flow_kwargs=FLOW)
    das.setup(problem, 200, torch.Generator().manual_seed(0))
    x0 = das.batch()[0].clone()
    assert das.round_based and das.refresh(model) and not torch.equal(das.batch()[0], x0)
    assert not das.refresh(model) and das.stages == 1  # max_stages reached
    aas = AASSampler(flow_kwargs=FLOW)
    aas.setup(problem, 64, torch.Generator().manual_seed(0))
    x1 = aas.batch()[0].clone()
    assert not aas.round_based and not aas.refresh(model) and torch.equal(aas.batch()[0], x1)
