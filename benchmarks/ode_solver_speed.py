"""Our Tsit5/Dopri5 (sciml.operators.ode) against torchdiffeq's dopri5 on the same neural ODEs: wall time per solve
and per function evaluation, forward (no grad) and forward + backward (discretise-then-optimise), measured side by
side in interleaved rounds; and the overhead of recording the differentiable diagnostics (EEst and stiffness per
step) against a solve without them.

Ratios are ``torchdiffeq time / our time`` (>= 1: ours is not slower). Per-solve times depend on the step
sequence, which differs between the pairs (Tsit5 vs Dopri5 coefficients, PI vs integral control), so the NFE of
every solve is reported beside the time and the per-NFE ratio compares the cost of one stage with all overhead.
``sciml_dopri5_i`` uses torchdiffeq's integral controller (``controller="i"``) instead of our default PI controller
(OrdinaryDiffEq's), which ramps the step size up more cautiously after Hairer's small initial step.

usage: python benchmarks/ode_solver_speed.py [--quick] [--reps 15] [--tol 1e-6] [--threads 1]
       [--out benchmarks/results/ode_solver_speed.json]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import interleaved, log, machine_info  # noqa: E402

from sciml.io import atomic_write_text  # noqa: E402
from sciml.operators.ode import NFECounter, SolverStats, solve  # noqa: E402


class KellyField(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(dim + 1, hidden)
        self.l2 = nn.Linear(hidden + 1, dim)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        tt = t.expand(z.shape[0], 1)
        return torch.tanh(self.l2(torch.cat([torch.tanh(self.l1(torch.cat([z, tt], 1))), tt], 1)))


CASES = [  # name, batch, dim, hidden, t_end
    ("spiral_like_b20_d2_h50", 20, 2, 50, 5.0),
    ("mnist_like_b128_d32_h64", 128, 32, 64, 1.0),
    ("wide_b512_d64_h256", 512, 64, 256, 1.0),
]


def main(argv: list[str] | None = None) -> None:
    import json

    import torchdiffeq

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = CASES[:1] if args.quick else CASES
    reps = 2 if args.quick else args.reps
    out = Path(args.out or RESULTS / ("ode_solver_speed" + ("_quick" if args.quick else "") + ".json"))
    results = {"benchmark": "ode_solver_speed",
               "config": {"reps": reps, "tol": args.tol, "threads": args.threads, "quick": args.quick,
                          "timing": "interleaved rounds (benchmarks/_common.interleaved), median"},
               "machine": machine_info("cpu", torchdiffeq=getattr(torchdiffeq, "__version__", "?")), "cases": []}
    for name, batch, dim, hidden, t_end in cases:
        torch.manual_seed(0)
        field = NFECounter(KellyField(dim, hidden))
        z0 = torch.randn(batch, dim)
        t = torch.tensor([0.0, t_end])
        tol = args.tol

        def ours(method: str, diagnostics: bool = True, grad: bool = False, controller: str = "pi"):
            def run():
                field.reset()
                stats = SolverStats()
                with torch.set_grad_enabled(grad):
                    ys = solve(field, z0, t, rtol=tol, atol=tol, method=method,
                               options={"stats": stats, "diagnostics": diagnostics, "stiffness": diagnostics,
                                        "controller": controller}).ys
                    if grad:
                        ys[-1].pow(2).mean().backward()
                return field.nfe_forward
            return run

        def tdq(grad: bool = False):
            def run():
                field.reset()
                with torch.set_grad_enabled(grad):
                    ys = torchdiffeq.odeint(field, z0, t, rtol=tol, atol=tol, method="dopri5")
                    if grad:
                        ys[-1].pow(2).mean().backward()
                return field.nfe_forward
            return run

        case = {"name": name, "batch": batch, "dim": dim, "hidden": hidden, "t_end": t_end}
        for mode, grad in (("forward", False), ("forward_backward", True)):
            fns = {"torchdiffeq_dopri5": tdq(grad), "sciml_dopri5": ours("dopri5", grad=grad),
                   "sciml_dopri5_i": ours("dopri5", grad=grad, controller="i"),
                   "sciml_tsit5": ours("tsit5", grad=grad),
                   "sciml_tsit5_no_diagnostics": ours("tsit5", diagnostics=False, grad=grad)}
            res = interleaved(fns, reps=reps, warmup=1, budget_s=60.0 if not args.quick else 5.0)
            rec = {}
            for k, v in res.items():
                nfe = v.pop("result")
                rec[k] = {**v, "nfe": nfe, "per_nfe_s": v["median_s"] / nfe}
            ref = rec["torchdiffeq_dopri5"]
            for k in ("sciml_dopri5", "sciml_dopri5_i", "sciml_tsit5", "sciml_tsit5_no_diagnostics"):
                rec[k]["ratio_per_solve"] = ref["median_s"] / rec[k]["median_s"]
                rec[k]["ratio_per_nfe"] = ref["per_nfe_s"] / rec[k]["per_nfe_s"]
            rec["diagnostics_overhead"] = (rec["sciml_tsit5"]["median_s"]
                                           / rec["sciml_tsit5_no_diagnostics"]["median_s"] - 1.0)
            case[mode] = rec
            log(f"{name} {mode}: " + ", ".join(
                f"{k} {v['median_s'] * 1e3:.2f} ms / {v['nfe']} nfe" for k, v in rec.items() if isinstance(v, dict))
                + f"; diagnostics overhead {rec['diagnostics_overhead'] * 100:+.1f}%")
        results["cases"].append(case)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=1) + "\n")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
