"""sciml's PINN sampling against DeepXDE (PyTorch backend), side by side in one run: Burgers, Allen-Cahn, the 2-D
Poisson peak and the 10-D exponential problem with uniform (fixed), Random-R and RAD, the same nets, point counts,
budgets and schedules as ``benchmarks/pinn_sampling.py`` (``--schedule adam|rounds|paper``, ``--budget-scale``,
``--dtype``), relative L2 error and training time, and the ratios.

DeepXDE runs in a separate interpreter (``--peer-python``, a venv with ``deepxde`` and the same torch; never the
project's venv) as a subprocess of this script in ``--worker`` mode, which imports only deepxde/numpy/scipy. Per
(problem, sampler, seed) the two implementations run back to back, alternating which goes first, so drift of the
machine hits both alike. Our side is the sweep's own run (``pinn_sampling.run_one``).

DeepXDE side (as Wu et al.'s ``lu-group/pinn-sampling`` scripts): ``dde.data.TimePDE``/``PDE`` with
``train_distribution="pseudo"`` (uniform random), ``FNN(..., "tanh", "Glorot normal")``, hard IC/BC output transforms
for Burgers/Allen-Cahn and a soft ``DirichletBC`` for the Poisson problems (scored on our reference points and
weights: the peak's grid, the 10-D problem's importance-weighted mixture), ``dde.config.set_default_float`` for
``--dtype``; every Adam phase a fresh ``compile("adam", lr=1e-3)``; RAD with fresh uniform candidates,
``|r|^k/mean|r|^k + c``, ``numpy.random.choice(replace=False)``, ``data.replace_with_anchors``: every ``period`` Adam
steps under the Adam schedule, before every round under the rounds/paper schedules; Random-R through
``dde.callbacks.PDEPointResampler(period=100)`` (a fresh one per Adam phase: it also redraws after a phase's last
step, so DeepXDE's L-BFGS runs on a fresh set where ours keeps the last Adam step's); L-BFGS phases asking for the
same iterations as ours (history 50, calls of ``lbfgs_iter`` iterations; DeepXDE adds calls until torch has run that
many, ours runs a fixed number of calls, so ours may run a few fewer: both record ``iterations``). Time: training only
(model building, data loading and imports excluded, on both sides). Under ``--schedule paper`` our side keeps its
state under ``runs/pinn_deepxde/resume/`` and resumes after a stop; DeepXDE's side has no checkpoints and starts over.
Our side's times are train_pinn's: a resumed run adds the saved times of its finished phases.

usage: python benchmarks/pinn_deepxde.py [--quick] [--peer-python PEER_VENV/bin/python]
       [--problems burgers allen_cahn peak exp] [--samplers uniform random_r rad] [--seeds 0 1 2] [--threads 1]
       [--schedule adam|rounds|paper] [--budget-scale 1] [--dtype float32|float64]
       [--out benchmarks/results/pinn_deepxde.json] [--fresh]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = HERE.parent / "runs" / "pinn_deepxde"
SCHEDULES = {
    "adam": "Adam lr 1e-3 (RAD refining every `period` steps, Random-R every min(100, period)), then lbfgs x "
            "lbfgs_iter L-BFGS iterations on the final set",
    "rounds": "Wu et al.'s shape: Adam + L-BFGS, then `rounds` x (RAD refinement, a fresh Adam for round_adam "
              "steps, L-BFGS for round_lbfgs iterations on the fixed set); Random-R redraws every 100 Adam steps",
    "paper": "Wu et al.'s own budgets (pinn_sampling.PAPER_ROUNDS): RAD 15000 Adam + 1000 L-BFGS + 100 x (1000 + "
             "1000); uniform/Random-R 15000 Adam + one L-BFGS phase of 15000",
}
DEFAULT_PEER = os.environ.get("SCIML_DEEPXDE_PYTHON")  # the peer venv's interpreter


# ---------------------------------------------------------------------------------------------------- DeepXDE worker
def deepxde_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the peer interpreter: one DeepXDE training as described in the module docstring."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import numpy as np
    import torch

    torch.set_num_threads(int(spec["threads"]))
    import deepxde as dde

    b, problem, sampler, seed = spec["budget"], spec["problem"], spec["sampler"], int(spec["seed"])
    dde.config.set_random_seed(seed)
    if spec.get("dtype", "float32") == "float64":
        dde.config.set_default_float("float64")
    n = int(b["n_points"])
    period = int(b["period"])
    data_dir = Path(spec["data_dir"])

    if problem in ("burgers", "allen_cahn"):
        geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 1))
        if problem == "burgers":
            nu = 0.01 / np.pi

            def pde(x, y):
                return (dde.grad.jacobian(y, x, i=0, j=1) + y * dde.grad.jacobian(y, x, i=0, j=0)
                        - nu * dde.grad.hessian(y, x, i=0, j=0))

            def transform(x, y):
                return -torch.sin(np.pi * x[:, 0:1]) + (1 - x[:, 0:1] ** 2) * x[:, 1:2] * y

            with np.load(data_dir / "Burgers.npz") as d:
                t, xg, u = d["t"], d["x"], d["usol"].T
        else:
            def pde(x, y):
                return (dde.grad.jacobian(y, x, i=0, j=1) - 0.001 * dde.grad.hessian(y, x, i=0, j=0)
                        - 5 * (y - y ** 3))

            def transform(x, y):
                return x[:, 0:1] ** 2 * torch.cos(np.pi * x[:, 0:1]) + x[:, 1:2] * (1 - x[:, 0:1] ** 2) * y

            from scipy.io import loadmat

            d = loadmat(data_dir / "Allen_Cahn.mat")
            t, xg, u = d["t"], d["x"], d["u"]
        xx, tt = np.meshgrid(xg, t)
        x_test = np.vstack((np.ravel(xx), np.ravel(tt))).T
        y_test, weights = u.flatten()[:, None], None
        data = dde.data.TimePDE(geom, pde, [], num_domain=n, train_distribution="pseudo")
        net = dde.nn.FNN([2] + [int(b["width"])] * int(b["depth"]) + [1], "tanh", "Glorot normal")
        net.apply_output_transform(transform)
    elif problem in ("peak", "exp"):  # -Laplace(u) = f, u = exp(-a |x - c|^2), soft Dirichlet data from u
        if problem == "peak":
            a, dim, center = float(b["problem"].get("sharpness", 1000.0)), 2, 0.5
        else:
            a, dim, center = 10.0, int(b["problem"].get("dim", 10)), 0.0
        geom = dde.geometry.Rectangle([-1, -1], [1, 1]) if dim == 2 else \
            dde.geometry.Hypercube([-1.0] * dim, [1.0] * dim)

        def exact_np(x):
            return np.exp(-a * np.sum((x - center) ** 2, axis=1, keepdims=True))

        def pde(x, y):
            r2 = torch.sum((x - center) ** 2, dim=1, keepdim=True)
            f = torch.exp(-a * r2) * (2 * a * dim - 4 * a ** 2 * r2)
            return -sum(dde.grad.hessian(y, x, i=i, j=i) for i in range(dim)) - f

        bc = dde.icbc.DirichletBC(geom, exact_np, lambda x, on_boundary: on_boundary)
        data = dde.data.PDE(geom, pde, [bc], num_domain=n, num_boundary=int(b["problem"].get("num_boundary", 400)),
                            train_distribution="pseudo")
        net = dde.nn.FNN([dim] + [int(b["width"])] * int(b["depth"]) + [1], "tanh", "Glorot normal")
        # our problem's own reference points (the peak's grid; the 10-D problem's importance-weighted mixture)
        with np.load(spec["reference"]) as ref:
            x_test, y_test, weights = ref["x"], ref["u"][:, None], ref["w"][:, None]
    else:
        raise SystemExit(f"deepxde worker: unknown problem {problem!r}")

    model = dde.Model(data, net)
    rng = np.random.default_rng(seed)
    k, c = float(spec.get("k", 1.0)), float(spec.get("c", 1.0))
    rounds = int(b.get("rounds", 0))

    def resample_rad() -> None:  # Wu et al.'s RAD: fresh candidates, |r|^k/mean|r|^k + c, without replacement
        cand = geom.random_points(int(b["candidates"]))
        res = np.abs(model.predict(cand, operator=pde)).astype(np.float64).reshape(-1)
        dens = res ** k / np.mean(res ** k) + c
        ids = rng.choice(len(cand), size=n, replace=False, p=dens / dens.sum())
        data.replace_with_anchors(cand[ids])

    def adam_phase(steps: int) -> None:  # a fresh Adam (DeepXDE's compile makes a new optimizer)
        model.compile("adam", lr=1e-3)
        if sampler == "rad" and not rounds:  # Adam schedule: RAD refines every `period` steps inside the phase
            done = 0
            while done < steps:
                it = min(period, steps - done)
                model.train(iterations=it, display_every=max(it, 1), disregard_previous_best=True, verbose=0)
                done += it
                if done < steps:
                    resample_rad()
        elif sampler == "random_r":
            resampler = dde.callbacks.PDEPointResampler(period=min(100, period))
            model.train(iterations=steps, display_every=max(steps, 1), callbacks=[resampler], verbose=0)
        elif sampler in ("uniform", "rad"):
            model.train(iterations=steps, display_every=max(steps, 1), verbose=0)
        else:
            raise SystemExit(f"deepxde worker: unknown sampler {sampler!r}")

    def lbfgs_phase(iters: int) -> None:
        if iters <= 0:
            return
        dde.optimizers.config.set_LBFGS_options(maxcor=50, ftol=0, gtol=1e-9, maxiter=iters, maxls=50)
        # DeepXDE 1.15 derives the per-call iteration cap (torch LBFGS max_iter) from maxiter only at import time
        # (1000); set it as our outer steps: calls of lbfgs_iter iterations each
        opts = dde.optimizers.config.LBFGS_options
        opts["iter_per_step"] = int(b["lbfgs_iter"])
        opts["fun_per_step"] = int(1.25 * int(b["lbfgs_iter"]))
        model.compile("L-BFGS")
        model.train(display_every=max(iters, 1), verbose=0)

    model.compile("adam", lr=1e-3)  # the first compile imports and builds for seconds: not timed
    t0, c0 = time.perf_counter(), time.process_time()
    adam_phase(int(b["adam"]))
    t_adam = time.perf_counter() - t0
    def rel_l2(pred):
        if weights is None:
            return float(np.linalg.norm(pred - y_test) / np.linalg.norm(y_test))
        return float(np.sqrt(np.sum(weights * (pred - y_test) ** 2) / np.sum(weights * y_test ** 2)))

    err_adam = rel_l2(model.predict(x_test))
    t1 = time.perf_counter()
    lbfgs_phase(int(b["lbfgs"]) * int(b["lbfgs_iter"]))
    t_lbfgs = time.perf_counter() - t1
    for _ in range(rounds):  # Wu et al.'s rounds: refine (RAD), fresh Adam, L-BFGS on the fixed set
        t2 = time.perf_counter()
        if sampler == "rad":
            resample_rad()
        if int(b["round_adam"]):
            adam_phase(int(b["round_adam"]))
        t3 = time.perf_counter()
        t_adam += t3 - t2
        lbfgs_phase(int(b["round_lbfgs"]))
        t_lbfgs += time.perf_counter() - t3
    cpu = time.process_time() - c0
    err = rel_l2(model.predict(x_test))
    return {"rel_l2": err, "rel_l2_adam": err_adam, "train_s": t_adam + t_lbfgs, "cpu_s": cpu, "adam_s": t_adam,
            "lbfgs_s": t_lbfgs, "iterations": int(model.train_state.step), "deepxde": dde.__version__,
            "torch": torch.__version__, "num_points": int(len(data.train_x_all))}


# ---------------------------------------------------------------------------------------------------- our side
def ours(problem: str, sampler: str, seed: int, budget: dict[str, Any], k: float, c: float, *, dtype: str,
         run_dir: Path | None) -> dict[str, Any]:
    """Our side: ``pinn_sampling.run_one`` (the sweep's run, validating only at the ends of phases)."""
    from pinn_sampling import run_one

    rec = run_one(problem, sampler, seed, budget, {"rad": {"k": k, "c": c}}, None, dtype=dtype, run_dir=run_dir,
                  eval_every=0)
    return {"rel_l2": rec["rel_l2"], "rel_l2_adam": rec["rel_l2_adam"], "train_s": rec["wall_s"],
            "cpu_s": rec["cpu_s"], "adam_s": rec["adam_s"], "lbfgs_s": rec["lbfgs_s"],
            "num_points": rec["num_points"], "resumed_phases": rec["resumed_phases"],
            "iterations": rec["adam_total"] + rec["lbfgs_total"]}


def run_peer(peer: str, spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, DDE_BACKEND="pytorch", OMP_NUM_THREADS=str(spec["threads"]), PYTHONSAFEPATH="1")
    env.pop("PYTHONPATH", None)
    t0 = time.perf_counter()
    proc = subprocess.run([peer, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env, cwd="/tmp")
    if proc.returncode != 0:
        raise RuntimeError(f"DeepXDE worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    rec = json.loads(line[len("RESULT "):])
    rec["process_s"] = time.perf_counter() - t0
    return rec


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--peer-python", default=DEFAULT_PEER)
    p.add_argument("--problems", nargs="+", default=None, choices=["burgers", "allen_cahn", "peak", "exp"],
                   help="default: all four (the paper schedule: burgers allen_cahn)")
    p.add_argument("--samplers", nargs="+", default=["uniform", "random_r", "rad"],
                   choices=["uniform", "random_r", "rad"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--k", type=float, default=1.0)
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--schedule", choices=["adam", "rounds", "paper"], default="adam",
                   help="the budgets and schedules of benchmarks/pinn_sampling.py (paper: Wu et al.'s own, hours "
                        "per run on each side)")
    p.add_argument("--budget-scale", type=float, default=1.0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    if args.worker is not None:
        rec = deepxde_worker(json.loads(args.worker))
        print("RESULT " + json.dumps(rec), flush=True)
        return

    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    from _common import ResultFile, log, mean_std
    from pinn_sampling import PUBLISHED, run_key, run_tag, sampler_budget, schedule_budgets

    from sciml.operators.pinn import make_problem, shared_data_root

    torch.set_num_threads(args.threads)
    if not args.peer_python or not Path(args.peer_python).exists():
        raise SystemExit(f"--peer-python {args.peer_python} not found (a venv with deepxde, see docs/pinn.md)")
    if args.problems is None:
        args.problems = ["burgers", "allen_cahn"] + ([] if args.schedule == "paper" else ["peak", "exp"])
    if not args.budget_scale > 0:
        raise SystemExit(f"--budget-scale must be > 0, got {args.budget_scale}")
    budgets = schedule_budgets(args.schedule, args.problems, args.samplers, quick=args.quick,
                               scale=args.budget_scale)
    if args.quick:
        args.seeds = args.seeds[:1]
    data_dir = shared_data_root() / "pde" / "deepxde"
    budget_tag = run_tag(args.schedule, args.budget_scale, args.dtype, "", "")
    name = "pinn_deepxde" + ("_" + budget_tag.replace("/", "_") if budget_tag else "")
    out = args.out or str(RESULTS / (name + ("_quick" if args.quick else "") + ".json"))
    cfg = {"task": "pinn_vs_deepxde", "budgets": {q: budgets[q] for q in args.problems}, "k": args.k, "c": args.c,
           "threads": args.threads, "quick": args.quick, "published_wu2023": PUBLISHED,
           "schedule": "Adam lr 1e-3 in rounds of `period` (RAD between rounds; Random-R every min(100, period)), "
                       "then lbfgs*lbfgs_iter L-BFGS iterations on the final set; float32 on both sides"}
    if budget_tag:  # the first comparison's config is unchanged, so its file still resumes
        cfg.update({"budgets": {q: budgets[q] for q in args.problems}, "schedule": args.schedule,
                    "budget_scale": args.budget_scale, "dtype": args.dtype,
                    "schedule_text": SCHEDULES[args.schedule]})
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    # our side of a paper-budget run resumes after a stop (train_pinn's run_dir; DeepXDE's side starts over)
    resume_root = (Path(out).parent if args.quick else RUNS) / "resume" / Path(out).stem
    if args.fresh or args.quick:
        shutil.rmtree(resume_root, ignore_errors=True)
    log(f"problems {args.problems}, samplers {args.samplers}, seeds {args.seeds}, peer {args.peer_python} -> {out}")
    scratch = Path(tempfile.mkdtemp(prefix="pinn_deepxde_"))
    for prob in args.problems:
        reference = None
        if prob in ("burgers", "allen_cahn"):
            needed = data_dir / ("Burgers.npz" if prob == "burgers" else "Allen_Cahn.mat")
            if not needed.exists():
                log(f"{prob}: {needed} absent, skipped")
                continue
        else:  # the worker scores on our problem's reference points and weights (it cannot import sciml)
            problem = make_problem(prob, **budgets[prob]["problem"], dtype=torch.float64)
            pts, ref = problem.reference()
            w = problem.reference_weights()
            reference = scratch / f"{prob}.npz"
            np.savez(reference, x=pts.double().numpy(), u=ref.double().numpy(),
                     w=(torch.ones_like(ref) if w is None else w).double().numpy())
        for s in args.samplers:
            for seed in args.seeds:
                key = run_key(prob, s, seed, run_tag(args.schedule, args.budget_scale, args.dtype, s, ""))
                run_dir = resume_root / key.replace("/", "_") if args.schedule == "paper" else None
                if results.done(key):
                    if run_dir is not None:
                        shutil.rmtree(run_dir, ignore_errors=True)  # left by a stop after the record
                    continue
                budget = sampler_budget(budgets[prob], s, args.schedule)
                spec = {"problem": prob, "sampler": s, "seed": seed, "budget": budget, "k": args.k,
                        "c": args.c, "threads": args.threads, "data_dir": str(data_dir), "dtype": args.dtype,
                        "reference": None if reference is None else str(reference)}
                order = ["sciml", "deepxde"] if seed % 2 == 0 else ["deepxde", "sciml"]
                rec: dict[str, Any] = {}
                for impl in order:
                    if impl == "sciml":
                        rec["sciml"] = ours(prob, s, seed, budget, args.k, args.c, dtype=args.dtype,
                                            run_dir=run_dir)
                    else:
                        rec["deepxde"] = run_peer(args.peer_python, spec)
                rec["time_ratio_deepxde_over_sciml"] = rec["deepxde"]["train_s"] / rec["sciml"]["train_s"]
                rec["cpu_ratio_deepxde_over_sciml"] = rec["deepxde"]["cpu_s"] / rec["sciml"]["cpu_s"]
                results.add(key, rec)
                if run_dir is not None:
                    shutil.rmtree(run_dir, ignore_errors=True)
                log(f"{key}: sciml {rec['sciml']['rel_l2']:.3e} in {rec['sciml']['train_s']:.1f}s | DeepXDE "
                    f"{rec['deepxde']['rel_l2']:.3e} in {rec['deepxde']['train_s']:.1f}s "
                    f"(wall ratio {rec['time_ratio_deepxde_over_sciml']:.2f}, "
                    f"CPU ratio {rec['cpu_ratio_deepxde_over_sciml']:.2f})")
    shutil.rmtree(scratch, ignore_errors=True)
    for folder in (resume_root, resume_root.parent):  # nothing left to resume: no empty folders either
        with contextlib.suppress(OSError):
            folder.rmdir()
    summary: dict[str, Any] = {}
    for prob in args.problems:
        for s in args.samplers:
            keys = [run_key(prob, s, i, run_tag(args.schedule, args.budget_scale, args.dtype, s, ""))
                    for i in args.seeds]
            runs = [results.data["runs"][key] for key in keys if results.done(key)]
            if not runs:
                continue
            summary.setdefault(prob, {})[s] = {
                impl: {"rel_l2": mean_std([r[impl]["rel_l2"] for r in runs]),
                       "train_s": mean_std([r[impl]["train_s"] for r in runs]),
                       "cpu_s": mean_std([r[impl]["cpu_s"] for r in runs])} for impl in ("sciml", "deepxde")}
            summary[prob][s]["cpu_ratio_deepxde_over_sciml"] = mean_std(
                [r["cpu_ratio_deepxde_over_sciml"] for r in runs])
            summary[prob][s]["time_ratio_deepxde_over_sciml"] = mean_std(
                [r["time_ratio_deepxde_over_sciml"] for r in runs])
    results.set_summary(summary)
    print("| problem | sampler | sciml rel. L2 (%) | DeepXDE rel. L2 (%) | sciml CPU s | DeepXDE CPU s | "
          "CPU DeepXDE/sciml | wall DeepXDE/sciml |")
    print("|---|---|---|---|---|---|---|---|")
    for prob, per in summary.items():
        for s, r in per.items():
            a, d = r["sciml"], r["deepxde"]
            print(f"| {prob} | {s} | {100 * a['rel_l2']['mean']:.3g} ± {100 * a['rel_l2']['std']:.2g} | "
                  f"{100 * d['rel_l2']['mean']:.3g} ± {100 * d['rel_l2']['std']:.2g} | {a['cpu_s']['mean']:.1f} | "
                  f"{d['cpu_s']['mean']:.1f} | {r['cpu_ratio_deepxde_over_sciml']['mean']:.2f} | "
                  f"{r['time_ratio_deepxde_over_sciml']['mean']:.2f} |")


if __name__ == "__main__":
    main()
