"""Residual-based collocation samplers (sciml.operators.pinn.sampling): weighted sampling without replacement against
brute-force enumeration of successive sampling, RAD/RAR-D/RAR-G concentrating at a planted residual peak, set sizes
and refinement schedules, Random-R, state round trips and the registry."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from sciml.errors import ConfigError
from sciml.operators.pinn import (Box, PDEProblem, RADSampler, RARDSampler, RARGSampler, UniformSampler,
                                  evaluate_residual, make_sampler, rad_density, weighted_sample_without_replacement)
from sciml.operators.pinn.sampling import SAMPLERS, CollocationSampler, register_sampler

CENTRE = torch.tensor([0.5, -0.25])
WIDTH = 0.08


class PeakProblem(PDEProblem):
    """Residual = a planted Gaussian bump (times the model's scale): known exactly, independent of u."""

    name = "planted"

    def __init__(self):
        super().__init__(Box([-1.0, -1.0], [1.0, 1.0]))

    def pde(self, x, u):
        return u * torch.exp(-(x.detach() - CENTRE).pow(2).sum(1) / (2 * WIDTH ** 2))


class Scale(torch.nn.Module):
    def __init__(self, value=10.0):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return self.value.expand(x.shape[0])[:, None]


def near_peak(x, radius=3 * WIDTH):
    return ((x - CENTRE).norm(dim=1) < radius).float().mean().item()


def successive_inclusion(w, n):
    """Exact inclusion probabilities of successive sampling without replacement, by enumerating every ordered
    sequence of n distinct items."""
    m = len(w)
    incl = [0.0] * m
    for seq in itertools.permutations(range(m), n):
        prob, left = 1.0, sum(w)
        for i in seq:
            prob *= w[i] / left
            left -= w[i]
        for i in seq:
            incl[i] += prob
    return torch.tensor(incl, dtype=torch.float64)


def test_weighted_sampling_without_replacement_matches_brute_force():
    w = [0.1, 0.5, 1.0, 2.0, 4.0]
    n, draws = 3, 6000
    exact = successive_inclusion(w, n)
    assert float(exact.sum()) == pytest.approx(n)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(w), dtype=torch.float64)
    for _ in range(draws):
        idx = weighted_sample_without_replacement(torch.tensor(w), n, g)
        assert len(set(idx.tolist())) == n
        counts[idx] += 1
    freq = counts / draws
    sd = torch.sqrt(exact * (1 - exact) / draws)
    assert bool(((freq - exact).abs() <= 4 * sd + 1e-3).all()), (freq, exact)
    # inclusion is NOT proportional to w (a with-replacement or naive scheme would give that): the test can fail
    naive = torch.tensor(w) / sum(w) * n
    assert float((exact - naive).abs().max()) > 0.1


def test_weighted_sampling_edge_cases():
    g = torch.Generator().manual_seed(1)
    assert sorted(weighted_sample_without_replacement(torch.ones(6), 6, g).tolist()) == list(range(6))
    # zero weights are never drawn while positive ones remain
    idx = weighted_sample_without_replacement(torch.tensor([0.0, 1.0, 0.0, 3.0]), 2, g)
    assert sorted(idx.tolist()) == [1, 3]
    with pytest.raises(ConfigError, match="positive weights"):
        weighted_sample_without_replacement(torch.tensor([0.0, 1.0]), 2, g)
    with pytest.raises(ConfigError, match="finite"):
        weighted_sample_without_replacement(torch.tensor([-1.0, 1.0]), 1, g)


def test_rad_density_by_hand():
    r = torch.tensor([1.0, -2.0, 3.0])
    # k=2: |r|^2 = 1, 4, 9, mean 14/3 -> 3/14, 12/14, 27/14, plus c
    assert torch.allclose(rad_density(r, 2, 0.5), torch.tensor([3 / 14, 12 / 14, 27 / 14], dtype=torch.float64) + 0.5)
    assert torch.allclose(rad_density(r, 0, 0), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(rad_density(torch.zeros(3), 1, 0), torch.ones(3, dtype=torch.float64))


def test_evaluate_residual_matches_the_problem_and_leaves_parameters_trainable():
    p, m = PeakProblem(), Scale(3.0)
    x = p.domain.uniform(100, torch.Generator().manual_seed(0))
    r = evaluate_residual(p, m, x, chunk=7)
    assert torch.allclose(r, p.residual(m, x).detach())
    assert not r.requires_grad and m.value.requires_grad and m.value.grad is None


@pytest.mark.parametrize("name", ["rad", "rar_d", "rar_g"])
def test_residual_samplers_concentrate_at_a_planted_peak(name):
    p, m = PeakProblem(), Scale()
    sampler = make_sampler(name, period=2, n_candidates=50000, **({} if name == "rad" else {"max_refinements": 1}))
    sampler.setup(p, 2000, torch.Generator().manual_seed(0))
    x0, w0 = sampler.batch()
    assert w0 is None
    uniform_mass = math.pi * (3 * WIDTH) ** 2 / 4  # ~0.05
    assert near_peak(x0) == pytest.approx(uniform_mass, abs=0.02)
    assert [sampler.update(s, m) for s in (1, 2, 3)] == [False, True, False]
    x1, _ = sampler.batch()
    assert bool(p.domain.contains(x1).all())
    assert len(torch.unique(x1, dim=0)) == len(x1)  # no duplicates (draws without replacement)
    if name == "rad":
        # replaced: k=1, c=1 -> half the density mass is the residual's, almost all of it within 3 widths
        assert x1.shape == (2000, 2)
        assert near_peak(x1) > 0.3  # uniform: 0.05; depleting the pool (no replacement) lowers it from ~0.5
    else:
        assert x1.shape == (2000, 2) and torch.equal(x1[:1000], x0)  # started at 1000, grew by 1000 in 1 round
        new = x1[1000:]
        assert near_peak(new) > 0.9  # |r|^2 (RAR-D) or the largest |r| (RAR-G): at the peak
        if name == "rar_g":  # the greedy choice is the candidates with the largest residual: all near the centre
            assert float((new - CENTRE).norm(dim=1).max()) < 3 * WIDTH


def test_rad_draws_without_replacement_by_the_density_on_a_tiny_pool():
    """On a pool of 4 candidates with RAD choosing 2 points, the inclusion frequencies follow successive sampling
    with p = |r|^k / mean |r|^k + c (brute force)."""
    p, m = PeakProblem(), Scale()
    sampler = RADSampler(k=1, c=0.5, period=1, n_candidates=4)
    sampler.setup(p, 2, torch.Generator().manual_seed(0))
    draws = 2000
    pool = torch.tensor([[0.5, -0.25], [0.45, -0.2], [0.6, -0.3], [-0.9, 0.9]])
    r = p.residual(m, pool).detach()
    dens = rad_density(r, 1, 0.5)
    exact = successive_inclusion(dens.tolist(), 2)
    freq = torch.zeros(4, dtype=torch.float64)
    for _ in range(draws):
        chosen = sampler.refine(pool, r)
        assert len(torch.unique(chosen, dim=0)) == 2
        for row in chosen:
            freq[int((pool == row).all(1).nonzero())] += 1
    freq /= draws
    sd = torch.sqrt(exact * (1 - exact) / draws)
    assert bool(((freq - exact).abs() <= 4 * sd + 1e-3).all()), (freq, exact)


def test_rar_growth_schedule_and_cap():
    p, m = PeakProblem(), Scale()
    s = RARGSampler(period=1, n_candidates=500, max_refinements=3)
    s.setup(p, 100, torch.Generator().manual_seed(0))
    sizes = [len(s.batch()[0])]
    for step in range(1, 6):
        s.update(step, m)
        sizes.append(len(s.batch()[0]))
    assert sizes == [50, 67, 84, 100, 100, 100]  # ceil(50 / 3) = 17 per round, capped at n_points
    d = RARDSampler(period=1, n_candidates=500, n_add=5, initial_fraction=0.9)
    d.setup(p, 100, torch.Generator().manual_seed(0))
    assert len(d.batch()[0]) == 90
    for step in range(1, 4):
        d.update(step, m)
    assert len(d.batch()[0]) == 100 and d.refreshes == 2


def test_random_r_resamples_on_its_period_and_fixed_never():
    p, m = PeakProblem(), Scale()
    fixed, rr = make_sampler("uniform"), make_sampler("random_r", period=3)
    for s in (fixed, rr):
        s.setup(p, 50, torch.Generator().manual_seed(0))
    x0 = rr.batch()[0]
    changed = [rr.update(step, m) for step in range(1, 7)]
    assert changed == [False, False, True, False, False, True]
    assert not torch.equal(rr.batch()[0], x0)
    assert not any(fixed.update(step, m) for step in range(1, 7))
    assert fixed.name == "uniform" and rr.name == "random_r"


def test_state_dict_round_trip_reproduces_the_next_refinement():
    p, m = PeakProblem(), Scale()
    a = RADSampler(period=1, n_candidates=300)
    a.setup(p, 100, torch.Generator().manual_seed(0))
    a.update(1, m)
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in a.state_dict().items()}
    a.update(2, m)
    b = RADSampler(period=1, n_candidates=300)
    b.setup(p, 100, torch.Generator().manual_seed(99))
    b.load_state_dict(state)
    b.update(2, m)
    assert torch.equal(a.batch()[0], b.batch()[0]) and a.refreshes == b.refreshes == 2


def test_registry_and_errors():
    assert {"uniform", "random_r", "rar_g", "rar_d", "rad"} <= set(SAMPLERS)
    assert isinstance(make_sampler("random_r"), UniformSampler)
    with pytest.raises(ConfigError, match="unknown sampler"):
        make_sampler("halton_r")
    with pytest.raises(ConfigError, match="bad arguments"):
        make_sampler("rad", periodd=3)
    with pytest.raises(ConfigError, match="bad arguments"):  # the flow samplers' registered partials too
        make_sampler("das_g", periodd=3)
    with pytest.raises(ConfigError, match=r"bad arguments \['mode'\]"):  # das_g fixes the mode
        make_sampler("das_g", mode="replace")
    assert make_sampler("das_r").mode == "replace"
    with pytest.raises(ConfigError, match="period"):
        make_sampler("rad", period=0)
    s = make_sampler("rad", n_candidates=10)
    with pytest.raises(ConfigError, match="n_candidates=10 < n_points=20"):
        s.setup(PeakProblem(), 20, torch.Generator())
    with pytest.raises(ConfigError, match="setup"):
        make_sampler("uniform").batch()


def test_make_sampler_keeps_a_type_error_from_inside_the_constructor():
    """Only arguments that do not fit the constructor are the caller's ConfigError; a TypeError raised inside a
    sampler's own code is a bug and stays one."""
    @register_sampler("_broken_for_test")
    class Broken(CollocationSampler):
        def __init__(self, period: int = 1):
            super().__init__()
            raise TypeError("inside the constructor")

    try:
        with pytest.raises(TypeError, match="inside the constructor"):
            make_sampler("_broken_for_test", period=2)
        with pytest.raises(ConfigError, match="bad arguments"):
            make_sampler("_broken_for_test", step=2)
        # a factory that takes any keywords: its own TypeError is all there is to report
        register_sampler("_any_for_test")(lambda **kw: Broken(**kw))
        with pytest.raises(ConfigError, match="bad arguments"):
            make_sampler("_any_for_test", step=2)
    finally:
        SAMPLERS.pop("_broken_for_test")
        SAMPLERS.pop("_any_for_test", None)


def test_refresh_refines_now_whatever_the_period():
    p, m = PeakProblem(), Scale()
    rad = RADSampler(period=1000, n_candidates=2000)
    rad.setup(p, 200, torch.Generator().manual_seed(0))
    x0 = rad.batch()[0].clone()
    assert not rad.update(7, m) and torch.equal(rad.batch()[0], x0)  # not a refinement step
    assert rad.refresh(m) and rad.refreshes == 1 and rad.round_based
    # the refreshed set follows the residual: far more points near the peak than the uniform initial set
    assert near_peak(rad.batch()[0]) > 3 * max(near_peak(x0), 0.01)
    rar = RARDSampler(period=1000, n_candidates=500, max_refinements=2)
    rar.setup(p, 100, torch.Generator().manual_seed(0))
    assert [rar.refresh(m) for _ in range(3)] == [True, True, False]  # grown to N after max_refinements
    assert len(rar.batch()[0]) == 100
    fixed, rr = make_sampler("uniform"), make_sampler("random_r", period=3)
    for s in (fixed, rr):
        s.setup(p, 50, torch.Generator().manual_seed(0))
        assert not s.round_based and not s.refresh(m)
