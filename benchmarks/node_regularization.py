"""Vanilla vs regularised neural ODEs/SDEs in the same runs: loss or accuracy, training time, prediction time, NFE.

Experiments (``--experiments``):

* ``spiral_ode``: the spiral of torchdiffeq's ``ode_demo`` (Chen et al. 2018): ``dz/dt = (z**3) A`` with
  ``A = [[-0.1, 2], [-2, -0.1]]``, ``z0 = (2, 0)``, 1000 points on ``[0, 25]`` (ground truth by our Tsit5 at
  1e-10). Model ``f(z) = W2 tanh(W1 z**3 + b1) + b2`` (hidden 50). Training: ``--iters`` Adam(1e-3) steps on
  batches of 20 windows of 10 points (L1 loss); every method solves with our Tsit5 at rtol = atol = ``--tol``
  and back-propagates through the solver (discretise-then-optimise). Test: the whole trajectory from ``z0``
  (MSE; NFE and wall time of that prediction solve).
* ``spiral_sde``: Pal et al. 2021's spiral SDE ``du1 = (-a u1^3 + b u2^3) dt + g u1 dW``,
  ``du2 = (-b u1^3 - a u2^3) dt + g u2 dW`` (a = 0.1, b = 2, g = 0.2), ``u0 = (2, 0)``, 1000 paths at 30 times on
  ``[0, 1]`` (torchsde Euler–Maruyama, dt 1e-3). Neural SDE: drift ``W2 tanh(W1 u^3 + b1) + b2`` (hidden 50),
  diagonal diffusion ``W3 u + b3`` (Stratonovich), solved by torchsde ``euler_heun`` with adaptive steps
  (rtol = atol = ``--sde-tol``). Loss: moment matching (mean and variance at the 30 times over 100 sampled
  paths). Vanilla vs local ERNSDE (Lamba–Euler–Heun estimator, :mod:`sciml.operators.ode.sde`).
* ``digits``: scikit-learn's bundled 8x8 digits (1797 images; ``--digits-csv`` = the ``digits.csv.gz`` file that
  ships inside a scikit-learn wheel: ``pip download scikit-learn --no-deps -d DIR`` then
  ``unzip -j DIR/scikit_learn-*.whl 'sklearn/datasets/data/digits.csv.gz' -d DIR``; scikit-learn itself is
  not needed). Fixed split: 1437 train / 360 test (seeded permutation). Model: Linear(64, 32) -> NODE on [0, 1]
  with Kelly et al.'s dynamics ``tanh(W2 [tanh(W1 [z; t]); t])`` (hidden 64) -> Linear(32, 10). Adam(3e-3),
  batch 128, ``--epochs`` epochs; test accuracy and the prediction NFE / time over the test set.

Regularisers (``--methods``), λ schedules per training (decaying from the first to the last step):
vanilla; ernode (λ 10 -> 1, mean of EEst·dt); srnode (λ 0.1 constant, max of S/3.5068, as the official code);
er_sr (λ 10 -> 1); local_unbiased / local_biased (λ 100 -> 10, as PhysioNet local); taynode (K = 2, λ 0.01);
rnode (kinetic 0.01, Jacobian 0.01); steer (b = half the sampling interval: the last window time is jittered,
as Pal et al. did for PhysioNet; b = 0.5 on digits). Results: mean ± std over ``--seeds``.

usage: python benchmarks/node_regularization.py [--quick] [--experiments spiral_ode spiral_sde digits]
       [--methods ...] [--seeds 0 1 2] [--iters 500] [--epochs 15] [--tol 1e-5] [--digits-csv PATH]
       [--threads 1] [--out benchmarks/results/node_regularization.json] [--fresh]
"""
from __future__ import annotations

import argparse
import gzip
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.operators.ode import (ConstantSchedule, ExponentialDecay, NeuralODE, odeint,  # noqa: E402
                                 local_sde_regularizer)

ODE_METHODS = ["vanilla", "ernode", "srnode", "er_sr", "local_unbiased", "local_biased", "taynode", "rnode", "steer"]
SDE_METHODS = ["vanilla", "local_unbiased", "local_biased"]


def timed(fn, reps: int = 3):
    """Run ``fn`` ``reps`` times; returns (results, median wall time) (the machine is shared: one call is noisy)."""
    results, times = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t0)
    return results, sorted(times)[len(times) // 2]


def schedule(method: str, total: int):
    """The λ schedule of each regulariser (see the module docstring)."""
    if method in ("ernode", "er_sr"):
        return ExponentialDecay(10.0, 1.0, total)
    if method == "srnode":
        return ConstantSchedule(0.1)
    if method in ("local_unbiased", "local_biased"):
        return ExponentialDecay(100.0, 10.0, total)
    if method == "taynode":
        return ConstantSchedule(0.01)
    if method == "rnode":
        return ConstantSchedule(0.01)  # weights (1, 1) inside: 0.01 * (kinetic + jacobian)
    return ConstantSchedule(0.0)


# ------------------------------------------------------------------------------------------------ spiral ODE
A_TRUE = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])


def spiral_data(n: int = 1000, t_end: float = 25.0) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.linspace(0.0, t_end, n, dtype=torch.float64)
    with torch.no_grad():
        z = odeint(lambda tt, y: (y ** 3) @ A_TRUE.double(), torch.tensor([[2.0, 0.0]], dtype=torch.float64), t,
                   rtol=1e-10, atol=1e-10)
    return t.float(), z[:, 0].float()


class CubicField(nn.Module):
    def __init__(self, hidden: int = 50) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2))

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(z ** 3)


def run_spiral_ode(method: str, seed: int, args: argparse.Namespace, data) -> dict:
    t, z = data
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    window, batch = 10, 20
    span = float(t[window - 1] - t[0])
    reg = "none" if method == "vanilla" else method
    node = NeuralODE(CubicField(), 0.0, span, method="tsit5", rtol=args.tol, atol=args.tol, regularizer=reg,
                     steer_b=float(t[1] - t[0]) / 2, rnode_weights=(1.0, 1.0), taynode_order=2, seed=seed)
    opt = torch.optim.Adam(node.parameters(), lr=1e-3)
    lam = schedule(method, args.iters)
    times = t[:window] - t[0]
    train_nfe = []
    t0 = time.perf_counter()
    for it in range(args.iters):
        starts = torch.randint(0, len(t) - window, (batch,), generator=g)
        z0 = z[starts]
        target = torch.stack([z[starts + k] for k in range(window)])
        node.train()
        pred = node(z0, times)  # STEER: the last time is jittered, the target stays
        loss = (pred - target).abs().mean()
        total = loss + lam(it) * node.last_reg
        opt.zero_grad()
        total.backward()
        opt.step()
        train_nfe.append(node.last_nfe)
    train_time = time.perf_counter() - t0
    node.eval()
    with torch.no_grad():
        preds, predict_time = timed(lambda: node(z[:1], t))
    pred = preds[0]
    mse = float((pred[:, 0] - z).pow(2).mean())
    return {"test_mse": mse, "train_time_s": train_time, "predict_time_s": predict_time,
            "predict_nfe": node.last_nfe, "train_nfe_mean": sum(train_nfe) / len(train_nfe),
            "final_train_loss": float(loss.detach())}


# ------------------------------------------------------------------------------------------------ spiral SDE
class SpiralTrue(nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, u):
        a, b = 0.1, 2.0
        u1, u2 = u[:, :1], u[:, 1:]
        return torch.cat([-a * u1 ** 3 + b * u2 ** 3, -b * u1 ** 3 - a * u2 ** 3], 1)

    def g(self, t, u):
        return 0.2 * u


class NeuralSDE(nn.Module):
    noise_type, sde_type = "diagonal", "stratonovich"

    def __init__(self, hidden: int = 50) -> None:
        super().__init__()
        self.drift = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        self.diffusion = nn.Linear(2, 2)
        self.nfe = 0

    def f(self, t, u):
        self.nfe += 1
        return self.drift(u ** 3)

    def g(self, t, u):
        self.nfe += 1
        return self.diffusion(u)


def spiral_sde_data(paths: int = 1000, seed: int = 1234):
    import torchsde

    torch.manual_seed(seed)
    ts = torch.linspace(0.0, 1.0, 30)
    u0 = torch.tensor([[2.0, 0.0]]).repeat(paths, 1)
    with torch.no_grad():
        us = torchsde.sdeint(SpiralTrue(), u0, ts, method="euler", dt=1e-3)
    return ts, us.mean(1), us.var(1)


def run_spiral_sde(method: str, seed: int, args: argparse.Namespace, data) -> dict:
    import torchsde

    ts, mean_true, var_true = data
    torch.manual_seed(seed)
    sde = NeuralSDE()
    opt = torch.optim.Adam(sde.parameters(), lr=0.01)
    lam = ExponentialDecay(1000.0, 100.0, args.sde_iters) if method != "vanilla" else ConstantSchedule(0.0)
    rng = torch.Generator().manual_seed(seed)
    u0 = torch.tensor([[2.0, 0.0]]).repeat(args.sde_paths, 1)
    kw = dict(method="euler_heun", adaptive=True, rtol=args.sde_tol, atol=args.sde_tol, dt=0.05)
    train_nfe = []
    t0 = time.perf_counter()
    for it in range(args.sde_iters):
        sde.nfe = 0
        grid = ts
        if method == "local_unbiased":
            t_r = float(torch.rand((), generator=rng)) * 0.98 + 0.01
            grid = torch.sort(torch.cat([ts, torch.tensor([t_r])])).values
        us = torchsde.sdeint(sde, u0, grid, **kw)
        reg = torch.zeros(())
        if method == "local_unbiased":
            idx = int((grid == t_r).nonzero()[0])
            reg = local_sde_regularizer(sde, t_r, us[idx], rtol=args.sde_tol, atol=args.sde_tol, generator=rng)
            keep = torch.ones(len(grid), dtype=torch.bool)
            keep[idx] = False
            us = us[keep]
        elif method == "local_biased":  # torchsde exposes no step times: the output times stand in for them
            idx = int(torch.randint(0, len(ts) - 1, (), generator=rng))
            reg = local_sde_regularizer(sde, float(ts[idx]), us[idx], rtol=args.sde_tol, atol=args.sde_tol,
                                        generator=rng)
        loss = (us.mean(1) - mean_true).pow(2).mean() + (us.var(1) - var_true).pow(2).mean()
        opt.zero_grad()
        (loss + lam(it) * reg).backward()
        opt.step()
        train_nfe.append(sde.nfe)
    train_time = time.perf_counter() - t0
    def predict():
        sde.nfe = 0
        us = torchsde.sdeint(sde, u0, ts, **kw)
        return us, sde.nfe

    with torch.no_grad():
        outs, predict_time = timed(predict)
    us = outs[0][0]
    mse = float((us.mean(1) - mean_true).pow(2).mean() + (us.var(1) - var_true).pow(2).mean())
    nfe = sum(o[1] for o in outs) / len(outs)
    return {"test_mse": mse, "train_time_s": train_time, "predict_time_s": predict_time, "predict_nfe": nfe,
            "train_nfe_mean": sum(train_nfe) / len(train_nfe)}


# ---------------------------------------------------------------------------------------------------- digits
def load_digits(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's ``digits.csv.gz`` (65 comma-separated values per line: 64 pixels 0..16, then the label)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
    data = torch.tensor(rows)
    if data.shape != (1797, 65):
        raise SystemExit(f"{path}: expected 1797 rows of 65 values (sklearn digits.csv.gz), got {tuple(data.shape)}")
    return data[:, :64] / 16.0, data[:, 64].long()


class KellyField(nn.Module):
    """Kelly et al.'s MNIST dynamics: tanh(W2 [tanh(W1 [z; t]); t])."""

    def __init__(self, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.l1 = nn.Linear(dim + 1, hidden)
        self.l2 = nn.Linear(hidden + 1, dim)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        tt = t.expand(z.shape[0], 1)
        h = torch.tanh(self.l1(torch.cat([z, tt], 1)))
        return torch.tanh(self.l2(torch.cat([h, tt], 1)))


class DigitsNODE(nn.Module):
    def __init__(self, method: str, tol: float, seed: int) -> None:
        super().__init__()
        self.enc = nn.Linear(64, 32)
        self.node = NeuralODE(KellyField(), 0.0, 1.0, rtol=tol, atol=tol,
                              regularizer="none" if method == "vanilla" else method, steer_b=0.5, seed=seed)
        self.dec = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.node(self.enc(x)))


def run_digits(method: str, seed: int, args: argparse.Namespace, data) -> dict:
    x, y = data
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1437], perm[1437:]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitsNODE(method, args.tol, seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps_per_epoch = math.ceil(len(tr) / 128)
    lam = schedule(method, args.epochs * steps_per_epoch)
    step = 0
    train_nfe = []
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = tr[torch.randperm(len(tr), generator=g)]
        for b in range(steps_per_epoch):
            idx = order[b * 128:(b + 1) * 128]
            model.train()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            (loss + lam(step) * model.node.last_reg).backward()
            opt.step()
            train_nfe.append(model.node.last_nfe)
            step += 1
    train_time = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        outs, predict_time = timed(lambda: model(x[te]))
        logits = outs[0]
        nfe = model.node.last_nfe
        train_acc = float((model(x[tr]).argmax(1) == y[tr]).float().mean())
    return {"test_acc": float((logits.argmax(1) == y[te]).float().mean()), "train_acc": train_acc,
            "train_time_s": train_time, "predict_time_s": predict_time, "predict_nfe": nfe,
            "train_nfe_mean": sum(train_nfe) / len(train_nfe), "final_train_loss": float(loss.detach())}


# ------------------------------------------------------------------------------------------------------ main
def summarize(runs: dict, experiment: str, methods: list[str]) -> dict:
    out = {}
    for m in methods:
        recs = [r for k, r in runs.items() if k.startswith(f"{experiment}/{m}/")]
        if not recs:
            continue
        out[m] = {key: mean_std([r[key] for r in recs]) for key in recs[0] if isinstance(recs[0][key], (int, float))}
    base = out.get("vanilla")
    if base:
        for m, s in out.items():
            s["predict_nfe_ratio_vs_vanilla"] = s["predict_nfe"]["mean"] / base["predict_nfe"]["mean"]
            s["train_time_ratio_vs_vanilla"] = s["train_time_s"]["mean"] / base["train_time_s"]["mean"]
    return out


def markdown(summary: dict) -> str:
    """The REPRODUCTION.md tables (mean ± std over seeds) of a result file's summary."""
    lines = []
    for exp, methods in summary.items():
        metric = "test_acc" if exp == "digits" else "test_mse"
        lines += [f"**{exp}**", "", f"| method | {metric} | train time (s) | prediction time (s) | prediction NFE | "
                  "NFE / vanilla | train NFE per step | seeds |", "|---|---|---|---|---|---|---|---|"]
        for m, s in methods.items():
            def ms(key: str, fmt: str) -> str:
                return f"{s[key]['mean']:{fmt}} ± {s[key]['std']:{fmt}}"
            lines.append(f"| {m} | {ms(metric, '.4f')} | {ms('train_time_s', '.1f')} | {ms('predict_time_s', '.3f')} "
                         f"| {ms('predict_nfe', '.1f')} | {s.get('predict_nfe_ratio_vs_vanilla', float('nan')):.3f} "
                         f"| {ms('train_nfe_mean', '.1f')} | {s[metric]['n']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: few iterations, one seed")
    p.add_argument("--experiments", nargs="+", default=["spiral_ode", "spiral_sde", "digits"])
    p.add_argument("--methods", nargs="+", default=ODE_METHODS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=int, default=500, help="spiral ODE training steps")
    p.add_argument("--sde-iters", type=int, default=100)
    p.add_argument("--sde-paths", type=int, default=100)
    p.add_argument("--sde-tol", type=float, default=1e-2)
    p.add_argument("--epochs", type=int, default=15, help="digits epochs")
    p.add_argument("--tol", type=float, default=1e-5, help="rtol = atol of the ODE solves")
    p.add_argument("--digits-csv", default=os.environ.get("SCIML_DIGITS_CSV"),
                   help="scikit-learn's digits.csv.gz (see above); without it the digits experiment is skipped")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--table", action="store_true", help="print the markdown tables of --out (or the default file)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.table:
        import json

        path = args.out or str(RESULTS / ("node_regularization" + ("_quick" if args.quick else "") + ".json"))
        print(markdown(json.loads(Path(path).read_text())["summary"]))
        return
    if args.quick:
        args.iters, args.sde_iters, args.sde_paths, args.epochs, args.seeds = 3, 2, 16, 1, [0]
    experiments = list(args.experiments)
    if "digits" in experiments and not (args.digits_csv and Path(args.digits_csv).exists()):
        log(f"digits skipped: {args.digits_csv} not found (see the module docstring)")
        experiments.remove("digits")
    out = args.out or str(RESULTS / ("node_regularization" + ("_quick" if args.quick else "") + ".json"))
    not_config = ("out", "fresh", "table", "digits_csv", "experiments", "methods", "seeds")
    cfg = {k: v for k, v in vars(args).items() if k not in not_config}
    cfg["solver"] = "sciml Tsit5, discretise-then-optimise backprop for every method"
    rf = ResultFile(out, cfg, fresh=args.fresh)
    loaders = {"spiral_ode": spiral_data, "spiral_sde": spiral_sde_data,
               "digits": lambda: load_digits(args.digits_csv)}
    runners = {"spiral_ode": run_spiral_ode, "spiral_sde": run_spiral_sde, "digits": run_digits}
    summary = dict(rf.data.get("summary") or {})
    for exp in experiments:
        methods = [m for m in args.methods if m in (SDE_METHODS if exp == "spiral_sde" else ODE_METHODS)]
        data = None
        for seed in args.seeds:
            for m in methods:  # all methods of a seed back to back: same machine state for the comparison
                key = f"{exp}/{m}/seed{seed}"
                if rf.done(key):
                    continue
                if data is None:
                    data = loaders[exp]()
                rec = runners[exp](m, seed, args, data)
                rf.add(key, rec)
                log(f"{key}: " + ", ".join(f"{k}={v:.4g}" for k, v in rec.items()))
        summary[exp] = summarize(rf.data["runs"], exp, methods)
        rf.set_summary(summary)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
