"""PINN training through the shared Trainer (sciml.operators.pinn.training): L-BFGS through the Trainer equals plain
torch L-BFGS with its usual closure, the sampler is updated after every Adam step and frozen for L-BFGS, a run
directory resumes with the sampler state, and a short run lowers the error a lot on an easy problem."""
from __future__ import annotations

import shutil

import pytest
import torch

from sciml.errors import ConfigError
from sciml.operators.pinn import MLP, CollocationSampler, PoissonPeak2D, make_sampler, train_pinn

F64 = torch.float64


def easy_problem(dtype=F64):
    """A smooth bump exp(-4 |x - (1/2, 1/2)|^2) on [-1, 1]^2 (the peak problem with a = 4)."""
    return PoissonPeak2D(sharpness=4.0, grid=41, num_boundary=80, dtype=dtype)


def test_lbfgs_through_the_trainer_equals_torch_lbfgs():
    problem = easy_problem()
    torch.manual_seed(0)
    a = MLP(2, 8, 2).double()
    b = MLP(2, 8, 2).double()
    b.load_state_dict(a.state_dict())
    out = train_pinn(problem, "uniform", model=a, n_points=64, adam_steps=0, lbfgs_steps=3, lbfgs_iterations=4,
                     lbfgs_history=10, seed=5)
    # the reference: the same points (the sampler's generator seeded by seed=5) and torch's LBFGS with a closure
    ref_sampler = make_sampler("uniform")
    ref_sampler.setup(problem, 64, torch.Generator().manual_seed(5))
    x, _ = ref_sampler.batch()
    opt = torch.optim.LBFGS(b.parameters(), lr=1.0, max_iter=4, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=0.0)

    def closure():
        opt.zero_grad()
        loss = problem.residual(b, x).pow(2).mean() + problem.boundary_loss(b)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-10, atol=1e-12)
    assert out["rel_l2"] == pytest.approx(problem.relative_l2(b), rel=1e-9)
    # the iterations torch counted, not the 3 x 4 asked for (a step stops early when its evaluations run out)
    assert out["lbfgs_total"] == opt.state[next(b.parameters())]["n_iter"]


class Spy(CollocationSampler):
    name = "spy"

    def __init__(self):
        super().__init__()
        self.calls = []

    def update(self, step, model):
        self.calls.append(step)
        return step % 2 == 0


def test_sampler_updates_after_each_adam_step_and_not_during_lbfgs():
    spy = Spy()
    out = train_pinn(easy_problem(torch.float32), spy, n_points=32, adam_steps=5, lbfgs_steps=2,
                     lbfgs_iterations=2, width=8, depth=1)
    # update(k) runs before step k + 1 computes its loss; the update after the last Adam step would serve no step
    assert spy.calls == [1, 2, 3, 4]
    assert out["sampler_changes"] == 2 and out["num_points"] == 32


def test_run_dir_resumes_with_the_sampler_state(tmp_path):
    kw = dict(n_points=64, adam_steps=6, lbfgs_steps=1, lbfgs_iterations=3, width=8, depth=1, seed=1,
              run_dir=str(tmp_path / "run"))
    first = train_pinn(easy_problem(), make_sampler("rad", period=2, n_candidates=200), **kw)
    again = train_pinn(easy_problem(), make_sampler("rad", period=2, n_candidates=200), **kw)
    assert again["rel_l2"] == first["rel_l2"]
    assert torch.equal(again["sampler"].batch()[0], first["sampler"].batch()[0])
    assert again["sampler"].refreshes == first["sampler"].refreshes == 2
    assert (tmp_path / "run" / "adam" / "metrics.jsonl").exists()


class Interrupted(Exception):
    pass


def test_rounds_resume_from_run_dir_equals_the_uninterrupted_run(tmp_path):
    """Wu et al.'s rounds with a run_dir: a run killed in the middle of its schedule (an exception after a number of
    training-loss evaluations) and started again ends with the same model, points and errors as one run straight
    through, and does not redo the finished phases; the refresh before the interrupted round draws the same RAD
    set from the restored generator."""
    kw = dict(n_points=64, adam_steps=4, lbfgs_steps=1, lbfgs_iterations=3, rounds=4, round_adam=3, round_lbfgs=3,
              width=8, depth=1, seed=2)
    calls = []
    limit = [None]

    class Counting(PoissonPeak2D):  # counts the training-loss evaluations (batches of the 64 collocation points)
        def residual(self, model, x):
            if len(x) == 64:
                calls.append(1)
                if limit[0] is not None and len(calls) > limit[0]:
                    raise Interrupted
            return super().residual(model, x)

    def go(**extra):
        problem = Counting(sharpness=4.0, grid=41, num_boundary=80, dtype=F64)
        return train_pinn(problem, make_sampler("rad", period=2, n_candidates=300), **kw, **extra)

    straight = go()
    total = len(calls)
    assert straight["resumed_phases"] == 0
    run = tmp_path / "run"
    calls.clear()
    limit[0] = int(0.6 * total)  # dies inside round 3 or so
    with pytest.raises(Interrupted):
        go(run_dir=str(run))
    assert (run / "progress.pt").is_file()
    calls.clear()
    limit[0] = None
    again = go(run_dir=str(run))
    assert 0 < again["resumed_phases"] < 2 + 2 * 4
    assert 0 < len(calls) < 0.6 * total  # the finished phases were loaded, not trained again
    assert again["rel_l2_rounds"] == straight["rel_l2_rounds"] and again["rel_l2"] == straight["rel_l2"]
    assert again["lbfgs_total"] == straight["lbfgs_total"]  # the interrupted phase's count came back with its state
    assert torch.equal(again["sampler"].batch()[0], straight["sampler"].batch()[0])
    assert again["sampler_changes"] == straight["sampler_changes"] == 4
    for p, q in zip(again["model"].parameters(), straight["model"].parameters()):
        assert torch.equal(p, q)
    # finished phases keep their metrics, not their checkpoints
    assert (run / "round4_lbfgs" / "metrics.jsonl").is_file() and not list(run.rglob("checkpoints/*"))
    # and a third call has nothing left to do
    calls.clear()
    third = go(run_dir=str(run))
    assert calls == [] and third["rel_l2"] == straight["rel_l2"] and third["resumed_phases"] == 2 + 2 * 4
    # its times are the saved ones of the phases trained before (not the few ms of loading them)
    assert third["cpu_s"] > 0.3 * straight["cpu_s"] and third["wall_s"] > 0.3 * straight["wall_s"]


def test_short_training_lowers_the_error_a_lot():
    problem = easy_problem(torch.float32)
    torch.manual_seed(0)
    untrained = problem.relative_l2(MLP(2, 20, 2))
    out = train_pinn(problem, "random_r", n_points=200, adam_steps=300, lr=3e-3, lbfgs_steps=10,
                     lbfgs_iterations=20, width=20, depth=2, seed=0, eval_every=100, sampler_kwargs={"period": 50})
    assert untrained > 0.5
    assert out["rel_l2"] < 0.05 and out["rel_l2"] < 0.05 * untrained, (untrained, out["rel_l2"], out["history"])
    assert [s for s, _ in out["history"]][:3] == [100, 200, 300]


def test_train_pinn_argument_errors():
    with pytest.raises(ConfigError, match="nothing to train"):
        train_pinn(easy_problem(), "uniform", adam_steps=0, lbfgs_steps=0)
    with pytest.raises(ConfigError, match="adam_steps"):
        train_pinn(easy_problem(), "uniform", adam_steps=-1)
    with pytest.raises(ConfigError, match="width"):
        MLP(2, 0)


class RoundSpy(CollocationSampler):
    """A round-based sampler that records when it is asked to change, and what the model was when it was."""
    name = "round_spy"
    round_based = True

    def __init__(self):
        super().__init__()
        self.calls, self.refresh_calls = [], []

    def update(self, step, model):
        self.calls.append(step)
        return False

    def refresh(self, model):
        self.refresh_calls.append(sum(float(p.detach().abs().sum()) for p in model.parameters()))
        return True


def test_rounds_schedule_refreshes_round_based_samplers_only_at_round_boundaries():
    spy = RoundSpy()
    out = train_pinn(easy_problem(torch.float32), spy, n_points=32, adam_steps=4, lbfgs_steps=1,
                     lbfgs_iterations=3, rounds=3, round_adam=2, round_lbfgs=5, width=8, depth=1)
    # never updated inside a phase; one refresh before each of the 3 rounds, each on a different (trained) model
    assert spy.calls == [] and len(spy.refresh_calls) == 3 and len(set(spy.refresh_calls)) == 3
    assert out["sampler_changes"] == 3 and len(out["rel_l2_rounds"]) == 3
    # Adam: 4 + 3 * 2 steps; L-BFGS: 1 x 3 iterations, then ceil(5 / 3) = 2 outer steps of at most 3 per round
    assert out["adam_total"] == 10 and 3 < out["lbfgs_total"] <= 3 + 3 * 6
    assert out["rel_l2"] == out["rel_l2_rounds"][-1]


def test_rounds_schedule_keeps_per_step_samplers_updating_in_every_adam_phase():
    spy = Spy()  # not round-based: update(k) after every Adam step k, counted over all Adam phases only
    out = train_pinn(easy_problem(torch.float32), spy, n_points=32, adam_steps=3, lbfgs_steps=1,
                     lbfgs_iterations=2, rounds=2, round_adam=2, round_lbfgs=2, width=8, depth=1)
    # Adam steps 1..7 in three phases; the update after step k runs before Adam step k + 1 (never in L-BFGS)
    assert spy.calls == [1, 2, 3, 4, 5, 6]
    assert out["adam_total"] == 7


class Concentrated(CollocationSampler):
    """A per-step sampler whose batch always sits in a small box at the peak (like AAS's last draw)."""
    name = "concentrated"

    def setup(self, problem, n_points, generator):
        super().setup(problem, n_points, generator)
        self.points = 0.5 + 0.05 * (2 * torch.rand(n_points, 2, generator=generator, dtype=problem.domain.dtype) - 1)


@pytest.mark.parametrize("where", ["sampler", "uniform", "none"])
def test_lbfgs_points_choose_the_set_of_the_lbfgs_phase(where, monkeypatch):
    problem = easy_problem(torch.float32)
    seen = []
    original = type(problem).residual

    def recording(self, model, x):
        seen.append(x.detach().clone())
        return original(self, model, x)

    monkeypatch.setattr(type(problem), "residual", recording)
    adam = 3
    train_pinn(problem, Concentrated(), n_points=64, adam_steps=adam, lbfgs_steps=1, lbfgs_iterations=2,
               lbfgs_points=where, width=8, depth=1)
    training = [x for x in seen if x.shape[0] == 64]  # the validations go through problem.solution, not residual
    adam_x, lbfgs_x = training[:adam], training[adam:]
    assert all(float((x - 0.5).abs().max()) <= 0.05 + 1e-6 for x in adam_x)
    if where == "none":
        assert lbfgs_x == []
    elif where == "sampler":
        assert lbfgs_x and all(float((x - 0.5).abs().max()) <= 0.05 + 1e-6 for x in lbfgs_x)
    else:  # a fixed set spread over [-1, 1]^2: about a quarter of 64 uniform points in each quadrant
        assert lbfgs_x and all(torch.equal(x, lbfgs_x[0]) for x in lbfgs_x)
        x = lbfgs_x[0]
        assert float(x.min()) < -0.5 and float(x.max()) > 0.5 and int((x < 0).all(dim=1).sum()) >= 5


def test_rounds_argument_errors():
    with pytest.raises(ConfigError, match="lbfgs_points"):
        train_pinn(easy_problem(), "uniform", adam_steps=1, lbfgs_points="last")
    with pytest.raises(ConfigError, match="round_adam"):
        train_pinn(easy_problem(), "uniform", adam_steps=1, rounds=1, round_adam=-1)

