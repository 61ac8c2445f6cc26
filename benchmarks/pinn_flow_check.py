"""Flow-based adaptive sampling on the 2-D Poisson peak problem: AAS vs DAS-G vs DAS-R vs uniform sampling at equal
budgets, and a sweep of AAS's Sobolev weight beta.

Problem: -Δu = f on [-1, 1]^2, u = exp(-1000 |x - (1/2, 1/2)|^2), soft Dirichlet data on 400 fixed boundary
points (``sciml.operators.pinn.problems.PoissonPeak2D``); relative L2 on the 201^2 grid.

Budget (the same for every sampler of a run): a tanh MLP 2-[width]x[depth]-1, ``--steps`` Adam steps (lr 1e-3) on
``--points`` interior points per step, then no L-BFGS. Samplers:

* ``uniform``: fresh uniform points every step (Random-R with period 1, the fair peer of AAS's fresh batches);
* ``uniform_fixed``: one uniform set;
* ``das_g`` / ``das_r``: DAS with ``--stages`` stages of steps/stages Adam steps each, the flow refitted
  (``--das-flow-steps`` Adam steps at lr 2e-3, minibatch 500, the demo's flow size) between stages,
  ``--points`` new points per stage (DAS-G's set grows, so its later steps see more points);
* ``aas``: AAS with the demo's flow settings (``sciml.operators.pinn.demo.DEMO_AAS``: beta 1e-2, one flow ascent
  step every 2 PINN steps, 10 % uniform points in every batch), the PINN minimising the plain mean over the flow's
  batch (the min-max objective); ``aas_is``: the same with importance weights (the PINN minimises the uniform
  average, estimated on the flow's batch; the demo's setting); ``aas_beta=<b>`` (plain loss) for the beta sweep;
* ``oracle`` / ``oracle_is``: no learned sampler at all but the ideal one, fresh points every step from the known
  mixture q = 1/2 uniform + 1/2 N((1/2, 1/2), 0.04^2 I) (rejected outside the box), with the plain loss (mean of
  r^2 over the batch: what DAS-G/AAS's concentrated sets do to the objective) or importance weights (1/|Ω|)/q
  (the uniform average: only the variance changes). They separate "does the sampler find the peak" from "can
  this PINN and budget learn the peak at all".

Every run also splits the error into the disc of radius 0.1 around the peak (``rel_l2_near``) and the rest
(``rel_l2_far``; both relative to the whole ‖u‖, so near² + far² = rel_l2²) and records u_θ at the peak.

Every run records the relative L2 error, the wall time (training + sampler), the time inside the sampler and the
share of the final points near the peak. ``--seeds`` seeds per sampler; mean ± std in the summary.

usage: python benchmarks/pinn_flow_check.py [--quick] [--steps 800] [--points 500] [--seeds 0 1 2]
       [--samplers uniform uniform_fixed das_g das_r aas aas_is] [--betas 1e-3 1e-1] [--threads 1]
       [--out benchmarks/results/pinn_flow_check.json] [--fresh]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.operators.pinn.demo import DEMO_AAS, peak_fraction  # noqa: E402
from sciml.operators.pinn.flow_samplers import uniform_ratio_weights  # noqa: E402
from sciml.operators.pinn.problems import PoissonPeak2D  # noqa: E402
from sciml.operators.pinn.sampling import CollocationSampler  # noqa: E402
from sciml.operators.pinn.training import train_pinn  # noqa: E402

DAS_KW = {"flow_lr": 2e-3, "flow_batch": 500, "flow_kwargs": DEMO_AAS["flow_kwargs"]}


class OracleSampler(CollocationSampler):
    """Fresh points every step from q = (1 - share) U(box) + share N(center, sigma^2 I) restricted to the box; with
    ``importance_weights`` the batch carries (1/|Ω|)/q, scaled to mean 1."""

    name = "oracle"

    def __init__(self, *, share: float = 0.5, sigma: float = 0.04, center: tuple[float, float] = (0.5, 0.5),
                 importance_weights: bool = False) -> None:
        super().__init__()
        self.share, self.sigma, self.importance_weights = float(share), float(sigma), bool(importance_weights)
        self.center = torch.tensor(center)
        self.weights: torch.Tensor | None = None

    def _draw(self) -> None:
        problem = self._require_setup()
        lo, hi = problem.domain.low, problem.domain.high
        n_gauss = int(round(self.share * self.n_points))
        chunks, have = [], 0
        while have < n_gauss:  # rejection: the Gaussian restricted to the box
            z = self.center.to(lo) + self.sigma * torch.randn(2 * n_gauss, 2, generator=self.generator).to(lo)
            z = z[((z >= lo) & (z <= hi)).all(dim=1)]
            chunks.append(z)
            have += len(z)
        gauss = torch.cat(chunks)[:n_gauss]
        self.points = torch.cat([problem.domain.sample(self.n_points - n_gauss, "uniform", self.generator), gauss])
        # the normalising mass of the truncated Gaussian is 1 to within 1e-100 here (the box edge is >= 12 sigma away)
        log_gauss = -((self.points - self.center.to(lo)) ** 2).sum(1) / (2 * self.sigma ** 2) \
            - math.log(2 * math.pi * self.sigma ** 2)
        log_volume = math.log(problem.domain.volume)
        log_uniform_share = math.log(1 - self.share) if self.share < 1 else -math.inf
        log_gauss_share = math.log(self.share) if self.share > 0 else -math.inf
        log_q = torch.logaddexp(log_uniform_share - log_volume + torch.zeros_like(log_gauss),
                                log_gauss_share + log_gauss)
        self.weights = uniform_ratio_weights(log_q, log_volume)

    def setup(self, problem, n_points: int, generator: torch.Generator) -> None:
        super().setup(problem, n_points, generator)
        self._draw()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._require_setup()
        return self.points, (self.weights if self.importance_weights else None)  # type: ignore[return-value]

    def update(self, step: int, model: torch.nn.Module) -> bool:
        self._draw()
        return True

    def state_dict(self) -> dict:
        return {**super().state_dict(), "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.weights = state["weights"]


def error_split(problem: PoissonPeak2D, model: torch.nn.Module, radius: float = 0.1) -> dict[str, float]:
    """The relative L2 error on the reference grid split into the disc of ``radius`` around the peak and the rest
    (each relative to the whole ‖u‖), and u_θ at the grid point nearest the peak."""
    pts, ref = problem.reference()
    with torch.no_grad():
        pred = problem.solution(model, pts).double()
    ref = ref.double()
    err2, norm2 = (pred - ref) ** 2, (ref ** 2).sum()
    near = ((pts.double() - 0.5) ** 2).sum(1) < radius ** 2
    return {"rel_l2_near": float((err2[near].sum() / norm2).sqrt()),
            "rel_l2_far": float((err2[~near].sum() / norm2).sqrt()),
            "peak_value": float(pred[ref.argmax()])}


def sampler_spec(label: str, steps: int, stages: int, das_flow_steps: int) -> tuple[str | CollocationSampler, dict]:
    if label == "uniform":
        return "random_r", {"period": 1}
    if label == "uniform_fixed":
        return "uniform", {}
    if label in ("das_g", "das_r"):
        return label, {**DAS_KW, "stage_steps": max(1, steps // stages), "max_stages": stages - 1,
                       "flow_steps": das_flow_steps}
    if label == "aas":
        return "aas", {**DEMO_AAS, "importance_weights": False}
    if label == "aas_is":
        return "aas", {**DEMO_AAS, "importance_weights": True}
    if label.startswith("aas_beta="):
        return "aas", {**DEMO_AAS, "importance_weights": False, "beta": float(label.split("=", 1)[1])}
    if label in ("oracle", "oracle_is"):
        return OracleSampler(importance_weights=label == "oracle_is"), {}
    raise SystemExit(f"unknown sampler {label!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--stages", type=int, default=4, help="DAS stages (DAS code: 5)")
    ap.add_argument("--das-flow-steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--samplers", nargs="+", default=["uniform", "uniform_fixed", "das_g", "das_r", "aas", "aas_is"])
    ap.add_argument("--betas", type=float, nargs="*", default=[1e-3, 1e-1],
                    help="extra AAS beta values (the default beta of DEMO_AAS is the 'aas' run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.points, args.width, args.stages, args.das_flow_steps = 20, 64, 16, 2, 5
        args.seeds, args.betas = args.seeds[:1], args.betas[:1]
    out = args.out or RESULTS / ("pinn_flow_check_quick.json" if args.quick else "pinn_flow_check.json")
    labels = list(args.samplers) + [f"aas_beta={b:g}" for b in args.betas]
    config = {"problem": "poisson_peak", "steps": args.steps, "points": args.points, "width": args.width,
              "depth": args.depth, "stages": args.stages, "das_flow_steps": args.das_flow_steps,
              "seeds": args.seeds, "samplers": labels, "threads": args.threads, "aas": DEMO_AAS, "das": DAS_KW,
              "quick": args.quick}
    results = ResultFile(out, config, fresh=args.fresh or args.quick)
    problem = PoissonPeak2D(grid=51 if args.quick else 201)
    for seed in args.seeds:
        for label in labels:
            key = f"{label}/seed{seed}"
            if results.done(key):
                continue
            name, kwargs = sampler_spec(label, args.steps, args.stages, args.das_flow_steps)
            t0 = time.perf_counter()
            res = train_pinn(problem, name, sampler_kwargs=kwargs or None, n_points=args.points, adam_steps=args.steps,
                             lr=1e-3, width=args.width, depth=args.depth, seed=seed)
            wall = time.perf_counter() - t0
            x, _ = res["sampler"].batch()
            record = {"rel_l2": float(res["rel_l2"]), "wall_s": wall, "sampler_s": float(res["sampler_s"]),
                      "final_points": int(len(x)), "peak_fraction": peak_fraction(x),
                      **error_split(problem, res["model"])}
            results.add(key, record)
            log(f"{key:<22} rel L2 {record['rel_l2']:.4f} (near {record['rel_l2_near']:.3f}, far "
                f"{record['rel_l2_far']:.3f}, u at peak {record['peak_value']:.3f})  wall {wall:6.1f} s  (sampler "
                f"{record['sampler_s']:.1f} s)  points {record['final_points']}  near peak "
                f"{100 * record['peak_fraction']:.1f} %")
    summary = {}
    for label in labels:
        runs = [results.data["runs"][f"{label}/seed{s}"] for s in args.seeds
                if f"{label}/seed{s}" in results.data["runs"]]
        if runs:
            summary[label] = {k: mean_std([r[k] for r in runs]) for k in
                              ("rel_l2", "rel_l2_near", "rel_l2_far", "peak_value", "wall_s", "sampler_s",
                               "peak_fraction") if all(k in r for r in runs)}
    results.set_summary(summary)
    for label, s in summary.items():
        log(f"{label:<16} rel L2 {s['rel_l2']['mean']:.4f} ± {s['rel_l2']['std']:.4f}   wall "
            f"{s['wall_s']['mean']:.1f} ± {s['wall_s']['std']:.1f} s   (n={s['rel_l2']['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
