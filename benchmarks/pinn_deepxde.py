"""sciml's PINN sampling against DeepXDE (PyTorch backend), side by side in one run: Burgers, Allen-Cahn and the 2-D
Poisson peak with uniform (fixed), Random-R and RAD, the same nets, point counts and budgets
(``benchmarks/pinn_sampling.py``'s ``BUDGETS``), relative L2 error and training wall time, and the ratios.

DeepXDE runs in a separate interpreter (``--peer-python``, a venv with ``deepxde`` and the same torch; never the
project's venv) as a subprocess of this script in ``--worker`` mode, which imports only deepxde/numpy/scipy. Per
(problem, sampler, seed) the two implementations run back to back, alternating which goes first, so drift of the
machine hits both alike.

DeepXDE side (as Wu et al.'s ``lu-group/pinn-sampling`` scripts, with our schedule): ``dde.data.TimePDE``/``PDE`` with
``train_distribution="pseudo"`` (uniform random), ``FNN(..., "tanh", "Glorot normal")``, hard IC/BC output transforms
for Burgers/Allen-Cahn and a soft ``DirichletBC`` for the peak; Adam (lr 1e-3) in rounds of ``period`` iterations; RAD
between rounds (fresh uniform candidates, ``|r|^k/mean|r|^k + c``, ``numpy.random.choice(replace=False)``,
``data.replace_with_anchors``); Random-R through ``dde.callbacks.PDEPointResampler(period=100)``; then L-BFGS for the
same number of iterations as ours (``lbfgs * lbfgs_iter``). Time: training only (model building, data loading and
imports excluded, on both sides).

usage: python benchmarks/pinn_deepxde.py [--quick] [--peer-python PEER_VENV/bin/python]
       [--problems burgers allen_cahn peak] [--samplers uniform random_r rad] [--seeds 0 1 2] [--threads 1]
       [--out benchmarks/results/pinn_deepxde.json] [--fresh]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
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
        y_test = u.flatten()[:, None]
        data = dde.data.TimePDE(geom, pde, [], num_domain=n, train_distribution="pseudo")
        net = dde.nn.FNN([2] + [int(b["width"])] * int(b["depth"]) + [1], "tanh", "Glorot normal")
        net.apply_output_transform(transform)
    elif problem == "peak":
        a = float(b["problem"].get("sharpness", 1000.0))
        geom = dde.geometry.Rectangle([-1, -1], [1, 1])

        def exact_np(x):
            return np.exp(-a * ((x[:, 0:1] - 0.5) ** 2 + (x[:, 1:2] - 0.5) ** 2))

        def pde(x, y):
            r2 = (x[:, 0:1] - 0.5) ** 2 + (x[:, 1:2] - 0.5) ** 2
            f = torch.exp(-a * r2) * (4 * a - 4 * a ** 2 * r2)
            return -(dde.grad.hessian(y, x, i=0, j=0) + dde.grad.hessian(y, x, i=1, j=1)) - f

        bc = dde.icbc.DirichletBC(geom, exact_np, lambda x, on_boundary: on_boundary)
        data = dde.data.PDE(geom, pde, [bc], num_domain=n, num_boundary=int(b["problem"].get("num_boundary", 400)),
                            train_distribution="pseudo")
        net = dde.nn.FNN([2] + [int(b["width"])] * int(b["depth"]) + [1], "tanh", "Glorot normal")
        g = np.linspace(-1, 1, int(b["problem"].get("grid", 201)))
        gx, gy = np.meshgrid(g, g, indexing="ij")
        x_test = np.stack([gx.ravel(), gy.ravel()], 1)
        y_test = exact_np(x_test)
    else:
        raise SystemExit(f"deepxde worker: unknown problem {problem!r}")

    model = dde.Model(data, net)
    rng = np.random.default_rng(seed)
    k, c = float(spec.get("k", 1.0)), float(spec.get("c", 1.0))
    adam = int(b["adam"])
    model.compile("adam", lr=1e-3)  # the first compile imports and builds for seconds: not timed
    t0, c0 = time.perf_counter(), time.process_time()
    if sampler == "rad":
        done = 0
        while done < adam:
            it = min(period, adam - done)
            model.train(iterations=it, display_every=max(it, 1), disregard_previous_best=True, verbose=0)
            done += it
            if done < adam:
                cand = geom.random_points(int(b["candidates"]))
                res = np.abs(model.predict(cand, operator=pde)).astype(np.float64).reshape(-1)
                dens = res ** k / np.mean(res ** k) + c
                ids = rng.choice(len(cand), size=n, replace=False, p=dens / dens.sum())
                data.replace_with_anchors(cand[ids])
    elif sampler == "random_r":
        resampler = dde.callbacks.PDEPointResampler(period=min(100, period))
        model.train(iterations=adam, display_every=period, callbacks=[resampler], verbose=0)
    elif sampler == "uniform":
        model.train(iterations=adam, display_every=period, verbose=0)
    else:
        raise SystemExit(f"deepxde worker: unknown sampler {sampler!r}")
    t_adam = time.perf_counter() - t0
    y_adam = model.predict(x_test)
    err_adam = float(np.linalg.norm(y_adam - y_test) / np.linalg.norm(y_test))
    iters = int(b["lbfgs"]) * int(b["lbfgs_iter"])
    t1 = time.perf_counter()
    if iters > 0:
        dde.optimizers.config.set_LBFGS_options(maxcor=50, ftol=0, gtol=1e-9, maxiter=iters, maxls=50)
        # DeepXDE 1.15 derives the per-call iteration cap (torch LBFGS max_iter) from maxiter only at import time
        # (1000); set it as our outer steps: lbfgs calls of lbfgs_iter iterations each
        opts = dde.optimizers.config.LBFGS_options
        opts["iter_per_step"] = int(b["lbfgs_iter"])
        opts["fun_per_step"] = int(1.25 * int(b["lbfgs_iter"]))
        model.compile("L-BFGS")
        model.train(display_every=max(iters, 1), verbose=0)
    t_lbfgs = time.perf_counter() - t1
    cpu = time.process_time() - c0
    y_pred = model.predict(x_test)
    err = float(np.linalg.norm(y_pred - y_test) / np.linalg.norm(y_test))
    return {"rel_l2": err, "rel_l2_adam": err_adam, "train_s": t_adam + t_lbfgs, "cpu_s": cpu, "adam_s": t_adam,
            "lbfgs_s": t_lbfgs, "deepxde": dde.__version__, "torch": torch.__version__,
            "num_points": int(len(data.train_x_all))}


# ---------------------------------------------------------------------------------------------------- our side
def ours(problem: str, sampler: str, seed: int, budget: dict[str, Any], k: float, c: float) -> dict[str, Any]:
    from sciml.operators.pinn import make_problem, make_sampler, train_pinn

    p = make_problem(problem, **budget["problem"])
    if sampler == "rad":
        s = make_sampler("rad", period=budget["period"], n_candidates=budget["candidates"], k=k, c=c)
    elif sampler == "random_r":
        s = make_sampler("random_r", period=min(100, budget["period"]))
    else:
        s = make_sampler("uniform")
    p.reference()  # load outside the timed region, as the worker does
    t0, c0 = time.perf_counter(), time.process_time()
    out = train_pinn(p, s, n_points=budget["n_points"], adam_steps=budget["adam"], lr=1e-3,
                     lbfgs_steps=budget["lbfgs"], lbfgs_iterations=budget["lbfgs_iter"], width=budget["width"],
                     depth=budget["depth"], seed=seed)
    train_s, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rel_l2": out["rel_l2"], "rel_l2_adam": out["rel_l2_adam"], "train_s": train_s, "cpu_s": cpu,
            "adam_s": out["adam_s"], "lbfgs_s": out["lbfgs_s"], "num_points": out["num_points"]}


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
    p.add_argument("--problems", nargs="+", default=["burgers", "allen_cahn", "peak"],
                   choices=["burgers", "allen_cahn", "peak"])
    p.add_argument("--samplers", nargs="+", default=["uniform", "random_r", "rad"],
                   choices=["uniform", "random_r", "rad"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--k", type=float, default=1.0)
    p.add_argument("--c", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    if args.worker is not None:
        rec = deepxde_worker(json.loads(args.worker))
        print("RESULT " + json.dumps(rec), flush=True)
        return

    import torch

    sys.path.insert(0, str(HERE))
    from _common import ResultFile, log, mean_std
    from pinn_sampling import BUDGETS, PUBLISHED, QUICK

    from sciml.operators.pinn import shared_data_root

    torch.set_num_threads(args.threads)
    if not args.peer_python or not Path(args.peer_python).exists():
        raise SystemExit(f"--peer-python {args.peer_python} not found (a venv with deepxde, see docs/pinn.md)")
    budgets = QUICK if args.quick else BUDGETS
    if args.quick:
        args.seeds = args.seeds[:1]
    data_dir = shared_data_root() / "pde" / "deepxde"
    out = args.out or str(RESULTS / ("pinn_deepxde" + ("_quick" if args.quick else "") + ".json"))
    cfg = {"task": "pinn_vs_deepxde", "budgets": {q: budgets[q] for q in args.problems}, "k": args.k, "c": args.c,
           "threads": args.threads, "quick": args.quick, "published_wu2023": PUBLISHED,
           "schedule": "Adam lr 1e-3 in rounds of `period` (RAD between rounds; Random-R every min(100, period)), "
                       "then lbfgs*lbfgs_iter L-BFGS iterations on the final set; float32 on both sides"}
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    log(f"problems {args.problems}, samplers {args.samplers}, seeds {args.seeds}, peer {args.peer_python} -> {out}")
    for prob in args.problems:
        if prob in ("burgers", "allen_cahn"):
            needed = data_dir / ("Burgers.npz" if prob == "burgers" else "Allen_Cahn.mat")
            if not needed.exists():
                log(f"{prob}: {needed} absent, skipped")
                continue
        for s in args.samplers:
            for seed in args.seeds:
                key = f"{prob}/{s}/seed{seed}"
                if results.done(key):
                    continue
                spec = {"problem": prob, "sampler": s, "seed": seed, "budget": budgets[prob], "k": args.k,
                        "c": args.c, "threads": args.threads, "data_dir": str(data_dir)}
                order = ["sciml", "deepxde"] if seed % 2 == 0 else ["deepxde", "sciml"]
                rec: dict[str, Any] = {}
                for impl in order:
                    if impl == "sciml":
                        rec["sciml"] = ours(prob, s, seed, budgets[prob], args.k, args.c)
                    else:
                        rec["deepxde"] = run_peer(args.peer_python, spec)
                rec["time_ratio_deepxde_over_sciml"] = rec["deepxde"]["train_s"] / rec["sciml"]["train_s"]
                rec["cpu_ratio_deepxde_over_sciml"] = rec["deepxde"]["cpu_s"] / rec["sciml"]["cpu_s"]
                results.add(key, rec)
                log(f"{key}: sciml {rec['sciml']['rel_l2']:.3e} in {rec['sciml']['train_s']:.1f}s | DeepXDE "
                    f"{rec['deepxde']['rel_l2']:.3e} in {rec['deepxde']['train_s']:.1f}s "
                    f"(wall ratio {rec['time_ratio_deepxde_over_sciml']:.2f}, "
                    f"CPU ratio {rec['cpu_ratio_deepxde_over_sciml']:.2f})")
    summary: dict[str, Any] = {}
    for prob in args.problems:
        for s in args.samplers:
            runs = [results.data["runs"][f"{prob}/{s}/seed{i}"] for i in args.seeds
                    if results.done(f"{prob}/{s}/seed{i}")]
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
