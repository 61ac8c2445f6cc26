"""PINN collocation sampling: every sampler on the 2-D Poisson peak, the 10-D exponential problem, Burgers and
Allen-Cahn, several seeds, relative L2 error and wall time from the same runs.

Samplers: uniform (fixed), random_r (uniform, redrawn every 100 steps), rar_g, rar_d, rad
(``sciml.operators.pinn.sampling``) and das_g, das_r, aas (``sciml.operators.pinn.flow_samplers``; skipped with a
log line when that module is not available). Every run: a fresh tanh MLP (seeded), Adam (lr 1e-3) with the sampler
updating after each step, then L-BFGS (strong Wolfe) on the final point set, both through ``sciml.train.Trainer``
(:func:`sciml.operators.pinn.train_pinn`). The budgets (``BUDGETS``) are CPU-sized: about 1-3 % of the iterations of
Wu et al. (15 000 Adam + L-BFGS, then 100 rounds of 1000 Adam + 1000 L-BFGS) and of DAS (5 stages x 3000 epochs);
they are stored in the JSON config next to the papers' ones.

Results: ``benchmarks/results/pinn_sampling.json`` (resumable: a run already there is skipped, so
``--samplers das_g das_r aas`` adds the flow samplers later). Seed-0 models and point sets go to
``runs/pinn_sampling/`` for ``--figures`` (docs/pinn_<problem>.png, ``_paper``/``_das`` appended under those
schedules: reference solution, seed-0 error of the best sampler, and where each sampler put its points).

Budgets and schedules: ``--schedule adam`` (the original CPU sweep, ``BUDGETS``: Adam with the sampler updating
every step, one L-BFGS phase at the end) or ``--schedule rounds`` (Wu et al.'s shape, ``ROUNDS``: Adam + L-BFGS,
then rounds of (refine, Adam, L-BFGS on the fixed set)); ``--budget-scale S`` multiplies the Adam steps, the L-BFGS
iterations and the number of refinement rounds; ``--dtype float64`` is the papers' precision; ``--aas-lbfgs``
chooses what AAS's L-BFGS phases train on (``none``: no L-BFGS, as the AAS/DAS papers; ``uniform``: a fixed
uniform set; ``sampler``: its last concentrated batch, the original sweep). Anything but the original sweep goes to
``pinn_sampling_<schedule>_x<S>_<dtype>.json`` with the budget in every run's key. ``--schedule paper`` is Wu et
al.'s own budget per sampler (``PAPER_ROUNDS``; Burgers and Allen-Cahn; Wu et al.'s samplers only): about 2.7
CPU-hours per RAD/RAR run at float64, so every run keeps its state under
``runs/pinn_sampling/resume/<out stem>/<run key>/`` (``train_pinn``'s ``run_dir``) and the same command resumes a
stopped run (the folder is removed once the run is recorded; ``--fresh`` removes them all). ``--schedule das`` is
DAS's budget for the peak and the 10-D problem (``DAS_STAGES``: 5 stages x 3000 Adam steps at lr 1e-4, 3000 flow
steps per stage at lr 1e-4, no L-BFGS; resumable the same way). Runs of hours go one per core: one process per
seed with its own ``--out``, then ``--merge`` folds those files into one (same schedule and budgets, checked;
a merging call trains nothing, it summarises over ``--seeds``).

usage: python benchmarks/pinn_sampling.py [--quick] [--problems peak exp burgers allen_cahn]
       [--samplers uniform random_r rar_g rar_d rad das_g das_r aas] [--seeds 0 1 2] [--threads 1]
       [--schedule adam|rounds|paper|das] [--budget-scale 1] [--dtype float32|float64] [--aas-lbfgs none|uniform|sampler]
       [--out benchmarks/results/pinn_sampling.json] [--fresh] [--figures] [--merge RESULT.json ...]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.errors import ConfigError  # noqa: E402
from sciml.operators.pinn import available_samplers, make_problem, make_sampler, train_pinn  # noqa: E402

ALL_SAMPLERS = ["uniform", "random_r", "rar_g", "rar_d", "rad", "das_g", "das_r", "aas"]
FLOW_SAMPLERS = ("das_g", "das_r", "aas")

# CPU budgets (1 thread). adam: Adam steps; period: steps between residual-based refinements (RAD/RAR/DAS rounds);
# candidates: RAD/RAR candidate pool; lbfgs: outer L-BFGS steps x lbfgs_iter inner iterations on the final set.
BUDGETS: dict[str, dict[str, Any]] = {
    "peak": {"problem": {"num_boundary": 200}, "n_points": 500, "width": 32, "depth": 3, "adam": 400, "period": 100,
             "candidates": 5000, "lbfgs": 5, "lbfgs_iter": 10},
    "exp": {"problem": {"dim": 10, "num_boundary": 300}, "n_points": 300, "width": 32, "depth": 3, "adam": 300,
            "period": 75, "candidates": 2000, "lbfgs": 3, "lbfgs_iter": 10},
    "burgers": {"problem": {}, "n_points": 1000, "width": 64, "depth": 3, "adam": 400, "period": 100,
                "candidates": 5000, "lbfgs": 5, "lbfgs_iter": 10},
    "allen_cahn": {"problem": {}, "n_points": 1000, "width": 64, "depth": 3, "adam": 400, "period": 100,
                   "candidates": 5000, "lbfgs": 5, "lbfgs_iter": 10},
}
QUICK: dict[str, dict[str, Any]] = {
    "peak": {"problem": {"grid": 51, "num_boundary": 100}, "n_points": 200, "width": 16, "depth": 2, "adam": 40,
             "period": 10, "candidates": 1000, "lbfgs": 2, "lbfgs_iter": 5, "flow_steps": 5},
    "exp": {"problem": {"dim": 10, "num_boundary": 100, "num_reference": 2000}, "n_points": 100, "width": 16,
            "depth": 2, "adam": 20, "period": 10, "candidates": 500, "lbfgs": 1, "lbfgs_iter": 5, "flow_steps": 5},
    "burgers": {"problem": {}, "n_points": 200, "width": 16, "depth": 2, "adam": 40, "period": 10,
                "candidates": 1000, "lbfgs": 2, "lbfgs_iter": 5, "flow_steps": 5},
    "allen_cahn": {"problem": {}, "n_points": 200, "width": 16, "depth": 2, "adam": 40, "period": 10,
                   "candidates": 1000, "lbfgs": 2, "lbfgs_iter": 5, "flow_steps": 5},
}
# Wu et al.'s *rounds* schedule (``--schedule rounds``): Adam ``adam`` + L-BFGS ``lbfgs`` x ``lbfgs_iter``, then
# ``rounds`` rounds of (refine the set, Adam ``round_adam``, L-BFGS ``round_lbfgs`` iterations on the fixed set);
# RAR grows from N/2 to N over the rounds. Wu et al.: adam 15000, L-BFGS <= 1000 (RAD/RAR scripts), 100 rounds of
# (1000 + 1000), N = 2000, 100 000 candidates. Here the same shape, ~2 % of the iterations at --budget-scale 1.
ROUNDS: dict[str, dict[str, Any]] = {
    "peak": {"problem": {"num_boundary": 400}, "n_points": 1000, "width": 32, "depth": 6, "adam": 2000,
             "period": 250, "candidates": 100_000, "lbfgs": 10, "lbfgs_iter": 50, "rounds": 4, "round_adam": 250,
             "round_lbfgs": 250},
    "exp": {"problem": {"dim": 10, "num_boundary": 500}, "n_points": 1000, "width": 32, "depth": 6, "adam": 1000,
            "period": 250, "candidates": 100_000, "lbfgs": 5, "lbfgs_iter": 50, "rounds": 3, "round_adam": 250,
            "round_lbfgs": 250},
    "burgers": {"problem": {}, "n_points": 2000, "width": 64, "depth": 3, "adam": 1000, "period": 200,
                "candidates": 100_000, "lbfgs": 10, "lbfgs_iter": 50, "rounds": 5, "round_adam": 200,
                "round_lbfgs": 200},
    "allen_cahn": {"problem": {}, "n_points": 2000, "width": 64, "depth": 3, "adam": 1000, "period": 200,
                   "candidates": 100_000, "lbfgs": 10, "lbfgs_iter": 50, "rounds": 5, "round_adam": 200,
                   "round_lbfgs": 200},
}
QUICK_ROUNDS: dict[str, dict[str, Any]] = {
    k: {**v, "rounds": 2, "round_adam": 10, "round_lbfgs": 5} for k, v in QUICK.items()}
# ``--schedule paper``: Wu et al.'s own budgets (lu-group/pinn-sampling, src/{burgers,allen_cahn}/*.py), Burgers and
# Allen-Cahn only. RAD / RAR-D / RAR-G: Adam 15 000 + L-BFGS 1000 (``set_LBFGS_options(maxiter=1000)``), then 100
# rounds of (refine, Adam 1000, L-BFGS 1000) = 216 000 iterations (about 2.7 CPU-hours per run at float64 here).
# Uniform and Random-R (``Uniform.py``, ``Random_R.py``): no rounds, Adam 15 000 (Random-R redrawing every 100
# steps) and one L-BFGS phase at DeepXDE's default maxiter 15 000 (those scripts leave it unset):
# ``one_phase_lbfgs`` outer steps of ``lbfgs_iter``.
PAPER_ROUNDS: dict[str, dict[str, Any]] = {
    k: {"problem": {}, "n_points": 2000, "width": 64, "depth": 3, "adam": 15_000, "period": 100,
        "candidates": 100_000, "lbfgs": 20, "lbfgs_iter": 50, "rounds": 100, "round_adam": 1000, "round_lbfgs": 1000,
        "one_phase_lbfgs": 300}
    for k in ("burgers", "allen_cahn")}

# ``--schedule das``: DAS's budget (MJfadeaway/DAS, das_train.py; reference notes 5.2) for the peak and the 10-D
# problem: N = 1000 interior points, depth 6, width 32, Adam lr 1e-4 for 5 stages x 3000 steps (their epochs are over
# batches of 1000; we take one full-set step per epoch, so DAS-G's growing set gets 3000 steps per stage, not 3000
# epochs), 3000 flow steps per stage at the flow's lr 1e-4, no L-BFGS. RAD/RAR refine at the stage boundaries (every
# 3000 steps), Random-R redraws every 100 steps, AAS trains its flow alongside every step (sciml demo's settings).
DAS_STAGES: dict[str, dict[str, Any]] = {
    "peak": {"problem": {"num_boundary": 400}, "n_points": 1000, "width": 32, "depth": 6, "adam": 15_000,
             "period": 3000, "lr": 1e-4, "candidates": 100_000, "lbfgs": 0, "lbfgs_iter": 50, "flow_steps": 3000,
             "flow_lr": 1e-4},
    "exp": {"problem": {"dim": 10, "num_boundary": 500}, "n_points": 1000, "width": 32, "depth": 6, "adam": 15_000,
            "period": 3000, "lr": 1e-4, "candidates": 100_000, "lbfgs": 0, "lbfgs_iter": 50, "flow_steps": 3000,
            "flow_lr": 1e-4},
}
QUICK_DAS: dict[str, dict[str, Any]] = {k: {**QUICK[k], "lr": 1e-4, "lbfgs": 0, "flow_lr": 1e-4} for k in DAS_STAGES}


def sampler_budget(budget: dict[str, Any], sampler: str, schedule: str) -> dict[str, Any]:
    """The budget of one run: ``budget`` itself, except under ``--schedule paper``, where uniform and Random-R get
    Wu et al.'s single Adam + L-BFGS phase (no rounds; ``one_phase_lbfgs`` L-BFGS outer steps where given)."""
    if schedule == "paper" and sampler in ("uniform", "random_r"):
        return {**budget, "rounds": 0, "round_adam": 0, "round_lbfgs": 0,
                "lbfgs": budget.get("one_phase_lbfgs", budget["lbfgs"])}
    return budget


def schedule_budgets(schedule: str, problems: list[str], samplers: list[str], *, quick: bool = False,
                     scale: float = 1.0) -> dict[str, dict[str, Any]]:
    """Every problem's budget under ``schedule`` (``adam``: ``BUDGETS``, ``rounds``: ``ROUNDS``, ``paper``:
    ``PAPER_ROUNDS``, ``das``: ``DAS_STAGES``; their ``QUICK`` forms with ``quick``) scaled by ``scale``; exits with
    a message when the paper or DAS schedule is asked for problems or samplers its authors have no budget for."""
    if schedule == "das":
        other = [q for q in problems if q not in DAS_STAGES]
        if other:
            raise SystemExit(f"--schedule das: DAS's budgets exist for {sorted(DAS_STAGES)} only, not {other} "
                             "(pass --problems peak exp)")
        base = QUICK_DAS if quick else DAS_STAGES
    elif schedule == "paper":
        flow = [x for x in samplers if x in FLOW_SAMPLERS]
        if flow:
            raise SystemExit(f"--schedule paper is Wu et al.'s budget for their samplers; {flow} have no such "
                             "budget (use --schedule rounds)")
        other = [q for q in problems if q not in PAPER_ROUNDS]
        if other:
            raise SystemExit(f"--schedule paper: Wu et al.'s budgets exist for {sorted(PAPER_ROUNDS)} only, not "
                             f"{other} (pass --problems burgers allen_cahn)")
        base = QUICK_ROUNDS if quick else PAPER_ROUNDS
    elif schedule == "rounds":
        base = QUICK_ROUNDS if quick else ROUNDS
    else:
        base = QUICK if quick else BUDGETS
    return {k: scaled(v, scale) for k, v in base.items()}


def scaled(budget: dict[str, Any], scale: float) -> dict[str, Any]:
    """``budget`` with Adam steps, L-BFGS outer steps and the number of rounds multiplied by ``scale`` (the
    refinement period and the per-round Adam/L-BFGS counts stay; the schedule's shape is kept, at least 1 each)."""
    out = dict(budget)
    if scale == 1:
        return out
    for k in ("adam", "lbfgs", "rounds", "one_phase_lbfgs"):
        if k in out and out[k]:
            out[k] = max(1, int(round(out[k] * scale)))
    return out


def run_tag(schedule: str, scale: float, dtype: str, sampler: str, aas_lbfgs: str) -> str:
    """The part of a run's key that names its budget (empty for the original sweep: Adam schedule, scale 1,
    float32, AAS with L-BFGS on its last batch), so runs at other budgets never collide with (or skip) others."""
    parts = []
    if schedule != "adam":
        parts.append(schedule)
    if scale != 1:
        parts.append(f"x{scale:g}")
    if dtype != "float32":
        parts.append(dtype)
    if sampler == "aas" and aas_lbfgs != "sampler":
        parts.append(f"lbfgs-{aas_lbfgs}")
    return "/".join(parts)


def run_key(problem: str, sampler: str, seed: int, tag: str) -> str:
    return f"{problem}/{sampler}/" + (f"{tag}/" if tag else "") + f"seed{seed}"


PAPER_BUDGETS = {
    "wu2023_burgers_allen_cahn": "N=2000, 2-[64]x3-1 tanh, hard IC/BC; Adam 15000 (lr 1e-3) + L-BFGS (<=15000), "
                                 "then 100 rounds of (resample/add from 100000 candidates, Adam 1000 + L-BFGS 1000); "
                                 "float64",
    "das_peak_exp": "N=1000 (+boundary), depth 6 width 32 tanh; 5 stages of 3000 Adam epochs (lr 1e-4, batch 1000) "
                    "+ 3000 flow epochs per stage",
}
PUBLISHED = {"burgers": {"rad": 0.0002, "rar_d": 0.0003, "rar_g": 0.0012, "random_r": 0.0169},
             "allen_cahn": {"rad": 0.0008, "rar_d": 0.0009, "rar_g": 0.0053, "random_r": 0.0055},
             "source": "Wu et al., CMAME 2023 (third-party transcription of the table, see reference notes 5.3)"}


def sampler_kwargs(name: str, budget: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Constructor arguments of sampler ``name`` under ``budget`` (with ``"rounds"`` in ``budget``: the rounds
    schedule, where round-based samplers refine once per round)."""
    rounds = budget["rounds"] if budget.get("rounds") else max(1, (budget["adam"] - 1) // budget["period"])
    if name == "uniform":
        kw: dict[str, Any] = {}
    elif name == "random_r":
        kw = {"period": min(100, budget["period"])}
    elif name in ("rad", "rar_g", "rar_d"):
        kw = {"period": budget["period"], "n_candidates": budget["candidates"]}
        if name != "rad":
            kw["max_refinements"] = rounds
    elif name in ("das_g", "das_r"):
        # 100 flow-fit steps per stage (part B's default 300; DAS: 3000 at lr 1e-4), to fit the CPU budget
        kw = {"stage_steps": budget["period"], "max_stages": rounds, "flow_steps": budget.get("flow_steps", 100)}
        if "flow_lr" in budget:
            kw["flow_lr"] = budget["flow_lr"]
    elif name == "aas":  # the settings of part B's demo (sciml.operators.pinn.demo.DEMO_AAS)
        from sciml.operators.pinn.demo import DEMO_AAS

        kw = copy.deepcopy(DEMO_AAS)
    else:
        kw = {}
    kw.update(overrides.get(name, {}))
    return kw


def grid_mse(problem: Any, model: torch.nn.Module) -> float | None:
    """Mean squared error on the problem's reference grid (the DAS/AAS papers' metric for the 2-D peak, on their
    validation points); ``None`` for a weighted reference (the 10-D problem)."""
    if problem.reference_weights() is not None:
        return None
    pts, ref = problem.reference()
    with torch.no_grad():
        pred = problem.solution(model, pts.to(problem.domain.dtype)).double()
    return float((pred - ref.double()).pow(2).mean())


def run_one(problem_name: str, sampler_name: str, seed: int, budget: dict[str, Any],
            overrides: dict[str, dict[str, Any]], artifacts: Path | None, *, dtype: str = "float32",
            aas_lbfgs: str = "sampler", tag: str = "", run_dir: Path | None = None,
            eval_every: int | None = None) -> dict[str, Any]:
    """One training run of ``sampler_name`` on ``problem_name`` under ``budget``; the timings are
    :func:`train_pinn`'s (the reference solution is loaded before; a run resumed from ``run_dir`` adds the finished
    phases of the earlier processes). ``eval_every``: validation period (default:
    the refinement period under the Adam schedule, phase ends only under rounds)."""
    problem = make_problem(problem_name, **budget["problem"], dtype=getattr(torch, dtype))
    problem.reference()
    kw = sampler_kwargs(sampler_name, budget, overrides)
    sampler = make_sampler(sampler_name, **kw)
    lbfgs_points = aas_lbfgs if sampler_name == "aas" else "sampler"
    if eval_every is None:
        eval_every = 0 if budget.get("rounds") else budget["period"]
    out = train_pinn(problem, sampler, n_points=budget["n_points"], adam_steps=budget["adam"],
                     lr=budget.get("lr", 1e-3), lbfgs_steps=budget["lbfgs"], lbfgs_iterations=budget["lbfgs_iter"], width=budget["width"],
                     depth=budget["depth"], seed=seed, eval_every=eval_every,
                     rounds=budget.get("rounds", 0), round_adam=budget.get("round_adam", 0),
                     round_lbfgs=budget.get("round_lbfgs", 0), lbfgs_points=lbfgs_points,
                     run_dir=None if run_dir is None else str(run_dir))
    wall, cpu = out["wall_s"], out["cpu_s"]  # a resumed run: with the finished phases of earlier processes
    x, _ = out["sampler"].batch()
    if artifacts is not None and seed == 0:
        artifacts.mkdir(parents=True, exist_ok=True)
        torch.save({"model": out["model"].state_dict(), "points": x.detach().cpu().float(),
                    "width": budget["width"], "depth": budget["depth"], "problem": problem_name,
                    "problem_kwargs": budget["problem"], "sampler": sampler_name, "dtype": dtype},
                   artifacts / f"{problem_name}_{sampler_name}{'_' + tag.replace('/', '_') if tag else ''}_seed0.pt")
    return {"problem": problem_name, "sampler": sampler_name, "seed": seed, "sampler_kwargs": kw,
            "budget": budget, "dtype": dtype, "lbfgs_points": lbfgs_points,
            "rel_l2": out["rel_l2"], "rel_l2_adam": out["rel_l2_adam"], "rel_l2_rounds": out["rel_l2_rounds"],
            "mse": grid_mse(problem, out["model"]), "adam_total": out["adam_total"],
            "lbfgs_total": out["lbfgs_total"], "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "adam_s": round(out["adam_s"], 2), "lbfgs_s": round(out["lbfgs_s"], 2),
            "sampler_s": round(out["sampler_s"], 2), "sampler_changes": out["sampler_changes"],
            "resumed_phases": out["resumed_phases"],
            "num_points": out["num_points"], "history": [[s, e] for s, e in out["history"]]}


def summarize(results: ResultFile, problems: list[str], samplers: list[str], seeds: list[int],
              tag_of: Callable[[str], str] = lambda s: "") -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for p in problems:
        for s in samplers:
            runs = [results.data["runs"][k] for k in (run_key(p, s, i, tag_of(s)) for i in seeds)
                    if results.done(k)]
            if not runs:
                continue
            summary.setdefault(p, {})[s] = {
                "rel_l2": mean_std([r["rel_l2"] for r in runs]),
                **({"mse": mean_std([r["mse"] for r in runs])} if all(r.get("mse") is not None for r in runs)
                   else {}),
                "rel_l2_adam": mean_std([r["rel_l2_adam"] for r in runs]),
                "wall_s": mean_std([r["wall_s"] for r in runs]),
                "cpu_s": mean_std([r.get("cpu_s", r["wall_s"]) for r in runs]),
                "sampler_s": mean_std([r["sampler_s"] for r in runs]),
                "complete": len(runs) == len(seeds)}
    return summary


def table(summary: dict[str, Any]) -> str:
    """Markdown table: rel. L2 (mean ± std, %) and wall time per problem and sampler."""
    problems = list(summary)
    samplers = [s for s in ALL_SAMPLERS if any(s in summary[p] for p in problems)]
    head = "| sampler | " + " | ".join(f"{p} rel. L2 (%) | {p} CPU s" for p in problems) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(problems))]
    for s in samplers:
        cells = []
        for p in problems:
            r = summary[p].get(s)
            if r is None:
                cells += ["–", "–"]
            else:
                e, t = r["rel_l2"], r.get("cpu_s", r["wall_s"])
                cells += [f"{100 * e['mean']:.3g} ± {100 * e['std']:.2g}", f"{t['mean']:.0f}"]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- figures
def make_figures(artifacts: Path, problems: list[str], samplers: list[str], out_dir: Path,
                 summary: dict[str, Any], tag_of: Callable[[str], str] = lambda s: "", suffix: str = "") -> list[Path]:
    """One figure per problem, ``out_dir/pinn_<problem><suffix>.png``: the reference solution, |error| of the best
    sampler's seed-0 model, and the final collocation points of every sampler (10-D: the first two coordinates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.operators.pinn import MLP

    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in problems:
        runs = {s: artifacts / f"{p}_{s}{'_' + tag_of(s).replace('/', '_') if tag_of(s) else ''}_seed0.pt"
                for s in samplers}
        runs = {s: f for s, f in runs.items() if f.exists()}
        if not runs:
            log(f"figures: no seed-0 artifacts for {p} in {artifacts}, skipped")
            continue
        first = torch.load(next(iter(runs.values())), weights_only=True)
        problem = make_problem(p, **first["problem_kwargs"], dtype=getattr(torch, first.get("dtype", "float32")))
        errs = summary.get(p, {})
        best = min(runs, key=lambda s: errs.get(s, {}).get("rel_l2", {}).get("mean", math.inf))
        state = torch.load(runs[best], weights_only=True)
        model = MLP(problem.dim, state["width"], state["depth"]).to(problem.domain.dtype)
        model.load_state_dict(state["model"])
        model.eval()
        if p in ("burgers", "allen_cahn"):
            pts, ref = problem.reference()
            with torch.no_grad():
                pred = problem.solution(model, pts)
            nx = len(torch.unique(pts[:, 0]))
            shape = (-1, nx)
            xs, ts = pts[:, 0].reshape(shape), pts[:, 1].reshape(shape)
            axes_xy, lab = (ts, xs), ("t", "x")
            ref_grid, err_grid = ref.reshape(shape), (pred - ref).abs().reshape(shape)
            xs, ts, ref_grid, err_grid = (v.double() for v in (xs, ts, ref_grid, err_grid))
            axes_xy = (ts, xs)
        else:  # a 2-D slice through the peak (10-D: x_3..x_10 = 0)
            g = torch.linspace(-1, 1, 201)
            xx, yy = torch.meshgrid(g, g, indexing="ij")
            pts = torch.zeros(xx.numel(), problem.dim, dtype=problem.domain.dtype)
            pts[:, 0], pts[:, 1] = xx.reshape(-1), yy.reshape(-1)
            with torch.no_grad():
                pred = problem.solution(model, pts)
            ref = problem.exact(pts)
            axes_xy, lab = (xx, yy), ("x1", "x2")
            ref_grid, err_grid = ref.reshape(xx.shape).double(), (pred - ref).abs().reshape(xx.shape).double()
        panels = 2 + len(runs)
        ncols = min(5, panels)
        nrows = -(-panels // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.0 * nrows), constrained_layout=True,
                                 squeeze=False)
        axs = list(grid.reshape(-1))
        for ax in axs[panels:]:
            ax.axis("off")
        im = axs[0].pcolormesh(*axes_xy, ref_grid, shading="auto", cmap="RdBu_r")
        axs[0].set_title(f"{p}: reference" + (" (slice)" if p == "exp" else ""))
        fig.colorbar(im, ax=axs[0])
        im = axs[1].pcolormesh(*axes_xy, err_grid, shading="auto", cmap="magma")
        e = errs.get(best, {}).get("rel_l2", {}).get("mean")
        axs[1].set_title(f"|error|, {best} seed 0" + (f"\n(mean rel. L2 {100 * e:.2g} %)" if e else ""))
        fig.colorbar(im, ax=axs[1])
        for ax in axs[:2]:
            ax.set_xlabel(lab[0])
            ax.set_ylabel(lab[1])
        for ax, (s, f) in zip(axs[2:], runs.items()):
            x = torch.load(f, weights_only=True)["points"]
            if p in ("burgers", "allen_cahn"):
                ax.scatter(x[:, 1], x[:, 0], s=0.5, c="k")
                ax.set_xlim(0, 1)
            else:
                ax.scatter(x[:, 0], x[:, 1], s=0.5, c="k")
                ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.set_title(f"{s}: {len(x)} points")
            ax.set_xlabel(lab[0])
        out = out_dir / f"pinn_{p}{suffix}.png"
        fig.savefig(out, dpi=90)
        plt.close(fig)
        written.append(out)
        log(f"figure {out}")
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny nets and budgets, 1 seed")
    p.add_argument("--problems", nargs="+", default=None, choices=list(BUDGETS),
                   help="default: all four (--schedule paper: burgers allen_cahn; --schedule das: peak exp)")
    p.add_argument("--samplers", nargs="+", default=None, choices=ALL_SAMPLERS,
                   help="default: all (--schedule paper: Wu et al.'s uniform random_r rar_g rar_d rad)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sampler-kwargs", default="{}", help='JSON {"sampler": {kwarg: value}} overrides')
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--artifacts", default=str(ROOT / "runs" / "pinn_sampling"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                   help="fold the runs of these result files (same schedule and budgets; e.g. one seed per "
                        "process, each with its own --out) into --out and summarise; trains nothing")
    p.add_argument("--figures", action="store_true", help="write docs/pinn_<problem>.png from the seed-0 runs")
    p.add_argument("--figures-only", action="store_true", help="only the figures (no training)")
    p.add_argument("--schedule", choices=["adam", "rounds", "paper", "das"], default="adam",
                   help="adam: Adam (sampler updating every step) then one L-BFGS phase; rounds: Wu et al.'s "
                        "initial Adam + L-BFGS, then rounds of (refine, Adam, L-BFGS on the fixed set); paper: "
                        "Wu et al.'s own budgets per sampler (Burgers and Allen-Cahn only; hours per run); das: DAS's "
                        "budget (peak and 10-D problem: 5 stages x 3000 Adam steps at lr 1e-4, no L-BFGS)")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiplies Adam steps, L-BFGS iterations and the number of refinement rounds")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="float64 is Wu et al.'s precision (DeepXDE set_default_float('float64'))")
    p.add_argument("--aas-lbfgs", choices=["none", "uniform", "sampler"], default="none",
                   help="L-BFGS after AAS: none (Adam only, as the AAS/DAS papers), uniform (a fixed uniform set), "
                        "sampler (AAS's last concentrated batch: the original sweep's choice)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.figures = args.figures or args.figures_only
    if not args.budget_scale > 0:
        raise SystemExit(f"--budget-scale must be > 0, got {args.budget_scale}")
    if args.problems is None:
        args.problems = list(PAPER_ROUNDS) if args.schedule == "paper" else list(DAS_STAGES) \
            if args.schedule == "das" else list(BUDGETS)
    if args.samplers is None:
        args.samplers = [x for x in ALL_SAMPLERS if x not in FLOW_SAMPLERS] if args.schedule == "paper" \
            else list(ALL_SAMPLERS)
    budgets = schedule_budgets(args.schedule, args.problems, args.samplers, quick=args.quick,
                               scale=args.budget_scale)
    if args.quick:
        args.seeds = args.seeds[:1]
    overrides = json.loads(args.sampler_kwargs)
    original = args.schedule == "adam" and args.budget_scale == 1 and args.dtype == "float32"
    # the original sweep (AAS with L-BFGS on its last batch) keeps its key and file; everything else is tagged
    aas_tag = "sampler" if original and "--aas-lbfgs" not in (argv if argv is not None else sys.argv) \
        else args.aas_lbfgs
    aas_lbfgs = aas_tag

    def tag_of(s: str) -> str:
        return run_tag(args.schedule, args.budget_scale, args.dtype, s, aas_tag)

    name = "pinn_sampling" + ("" if original else "_" + run_tag(args.schedule, args.budget_scale, args.dtype,
                                                                  "", "").replace("/", "_"))
    out = args.out or str(RESULTS / (name + ("_quick" if args.quick else "") + ".json"))
    # quick runs keep their seed-0 models beside --out (only for --figures); real runs under runs/pinn_sampling
    artifacts: Path | None = Path(args.artifacts) if not args.quick else \
        (Path(out).parent / "pinn_quick_runs" if args.figures else None)
    available = available_samplers()
    samplers = []
    for s in args.samplers:
        if s in available:
            samplers.append(s)
        else:
            log(f"sampler {s}: not available (sciml.operators.pinn.flow_samplers missing?), skipped")
    cfg = {"task": "pinn_collocation_sampling", "budgets": {k: budgets[k] for k in args.problems},
           "optimizer": "Adam lr 1e-3 (sampler update after every step), then L-BFGS (lr 1, strong Wolfe, history "
                        "50) on the final set", "model": "tanh MLP, Glorot normal, zero bias",
           "paper_budgets": PAPER_BUDGETS, "published": PUBLISHED, "threads": args.threads,
           "quick": args.quick, "sampler_kwargs_overrides": overrides}
    if not original:  # the original sweep's config is unchanged, so its file still resumes
        cfg.update({"budgets": budgets, "schedule": args.schedule, "budget_scale": args.budget_scale,
                    "dtype": args.dtype, "aas_lbfgs": aas_lbfgs,
                    "optimizer": "Adam lr 1e-4 (the flows' too) with the sampler updating after every step, DAS's "
                                 "5 stages, no L-BFGS; schedule 'das' (DAS_STAGES)" if args.schedule == "das" else
                                 "Adam lr 1e-3, then L-BFGS (lr 1, strong Wolfe, history 50); schedule " +
                                 ("'rounds': initial Adam + L-BFGS, then rounds of (refine the set [round-based "
                                  "samplers], Adam with a fresh state, L-BFGS on the fixed set)"
                                  if args.schedule == "rounds" else
                                  "'paper': Wu et al.'s budgets, RAD/RAR in rounds, uniform/Random-R one Adam + "
                                  "L-BFGS phase (PAPER_ROUNDS, sampler_budget)" if args.schedule == "paper" else
                                  "'adam': sampler updating after every Adam step, one L-BFGS phase at the end")})
    # --figures-only reads the results and leaves the file as it is (its summary covers the seeds it was run with)
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick, read_only=args.figures_only and not args.merge)
    for f in args.merge:
        log(f"{f}: {results.merge(f, partial=('budgets',))} run(s) merged into {out}")
    if not args.figures_only and not args.merge:
        log(f"{len(args.problems)} problems x {len(samplers)} samplers x seeds {args.seeds}, {args.threads} thread(s)"
            f" -> {out}")
        t_all = time.perf_counter()
        # the paper's budgets take hours per run: every run keeps its state in a folder of its own so that a
        # stopped run resumes (train_pinn's run_dir); removed once the run is recorded
        resume_root = (Path(out).parent if args.quick else Path(args.artifacts)) / "resume" / Path(out).stem
        if args.fresh or args.quick:
            shutil.rmtree(resume_root, ignore_errors=True)
        for prob in args.problems:
            for s in samplers:
                for seed in args.seeds:
                    key = run_key(prob, s, seed, tag_of(s))
                    run_dir = resume_root / key.replace("/", "_") if args.schedule in ("paper", "das") else None
                    if results.done(key):
                        if run_dir is not None:
                            shutil.rmtree(run_dir, ignore_errors=True)  # left by a stop after the record
                        continue
                    try:
                        rec = run_one(prob, s, seed, sampler_budget(budgets[prob], s, args.schedule), overrides,
                                      artifacts, dtype=args.dtype, aas_lbfgs=aas_lbfgs, tag=tag_of(s),
                                      run_dir=run_dir)
                    except FileNotFoundError as err:
                        log(f"{key}: skipped ({err})")
                        break
                    except ConfigError as err:
                        log(f"{key}: sampler could not be built ({err}), skipped")
                        break
                    results.add(key, rec)
                    if run_dir is not None:
                        shutil.rmtree(run_dir, ignore_errors=True)
                    log(f"{key}: rel L2 {rec['rel_l2']:.3e} (after Adam {rec['rel_l2_adam']:.3e}), "
                        f"{rec['num_points']} points, {rec['wall_s']:.1f}s (sampler {rec['sampler_s']:.1f}s)"
                        + (f", resumed after {rec['resumed_phases']} finished phases" if rec["resumed_phases"]
                           else ""))
        log(f"total {time.perf_counter() - t_all:.0f}s")
        for folder in (resume_root, resume_root.parent):  # nothing left to resume: no empty folders either
            with contextlib.suppress(OSError):
                folder.rmdir()
    summary = summarize(results, list(budgets), ALL_SAMPLERS, args.seeds, tag_of)
    results.set_summary(summary)
    if summary:
        print(table(summary))
    if args.figures:
        make_figures(artifacts, args.problems, ALL_SAMPLERS,
                     Path(out).parent / "pinn_quick_figures" if args.quick else ROOT / "docs", summary, tag_of,
                     # the papers' own budgets get figures of their own beside the CPU-sized ones
                     suffix=f"_{args.schedule}" if args.schedule in ("paper", "das") else "")


if __name__ == "__main__":
    main()
