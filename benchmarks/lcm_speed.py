"""Speed and batch-composition deviation of our LCM and GRU aggregation against PyG's ``LCMAggregation`` and
``GRUAggregation`` on the same inputs, with the same weights (the parameter names and shapes match, so PyG's
modules load our state dicts).

Per case (``N`` sets, degrees drawn from a distribution, ``F`` channels, elements grouped by a sorted ``index``,
eval mode, no projection):

* time per call, forward (under ``torch.no_grad``) and forward+backward (``out.sum().backward()`` with ``x``
  requiring grad, parameter gradients included), interleaved shuffled rounds, medians;
* batch-composition deviation: for a sample of sets, ``max |out(set alone) - out(set inside the whole batch)|``
  (ours: rounding only; PyG: its zero padding goes through the GRU cell / GRU, so a set's result depends on the
  largest degree in the batch);
* ``max |ours - pyg|`` on the whole batch (0 up to rounding only when no set needs padding).

usage: python benchmarks/lcm_speed.py [--quick] [--device cpu|cuda] [--threads 1] [--reps 7]
       [--out benchmarks/results/lcm_speed_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import interleaved, machine_info  # noqa: E402

from sciml.gnn.aggregation import GRUAggregation, LCMAggregation  # noqa: E402
from sciml.io import atomic_write_text  # noqa: E402
from _common import log  # noqa: E402

CASES = [  # name, number of sets, degree distribution, channels
    ("uniform_d1-16", 2000, ("uniform", 1, 16), 64),
    ("uniform_d1-16", 20000, ("uniform", 1, 16), 64),
    ("powerlaw_hubs", 5000, ("powerlaw", 1, 256), 64),
]
QUICK = [("uniform_d1-16", 200, ("uniform", 1, 16), 16), ("powerlaw_hubs", 200, ("powerlaw", 1, 64), 16)]


def degrees(num: int, dist: tuple, g: torch.Generator) -> torch.Tensor:
    kind, lo, hi = dist
    if kind == "uniform":
        return torch.randint(lo, hi + 1, (num,), generator=g)
    # heavy tail: P(d) ~ d^-2 on [lo, hi], so most sets are small and a few are hubs
    d = torch.arange(lo, hi + 1, dtype=torch.float64)
    return (torch.multinomial(d.pow(-2.0), num, replacement=True, generator=g) + lo).long()


def deviation(module, x, index, ptr, sample) -> float:
    with torch.no_grad():
        full = module(x, index, dim_size=ptr.numel() - 1)
        worst = 0.0
        for s in sample.tolist():
            rows = slice(int(ptr[s]), int(ptr[s + 1]))
            alone = module(x[rows], torch.zeros(rows.stop - rows.start, dtype=torch.long, device=x.device),
                           dim_size=1)[0]
            worst = max(worst, float((alone - full[s]).abs().max()))
    return worst


def run_case(name, num, dist, channels, *, device, reps, seed=0) -> dict:
    from torch_geometric.nn.aggr import GRUAggregation as PyGGRU
    from torch_geometric.nn.aggr import LCMAggregation as PyGLCM

    g = torch.Generator().manual_seed(seed)
    deg = degrees(num, dist, g)
    index = torch.repeat_interleave(torch.arange(num), deg).to(device)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), deg.cumsum(0)]).to(device)
    x = torch.randn(int(deg.sum()), channels, generator=g).to(device)
    torch.manual_seed(seed)
    peers = {"sciml_lcm": LCMAggregation(channels, channels, project=False),
             "pyg_lcm": PyGLCM(channels, channels, project=False),
             "sciml_gru": GRUAggregation(channels, channels, shuffle=False),
             "pyg_gru": PyGGRU(channels, channels)}
    peers["pyg_lcm"].load_state_dict(peers["sciml_lcm"].state_dict())
    peers["pyg_gru"].load_state_dict(peers["sciml_gru"].state_dict())
    for m in peers.values():
        m.to(device).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    xg = x.clone().requires_grad_(True)

    def fwd(m):
        def call():
            with torch.no_grad():
                out = m(x, index, dim_size=num)
            sync()
            return out
        return call

    def fwd_bwd(m):
        def call():
            m.zero_grad(set_to_none=True)
            xg.grad = None
            m(xg, index, dim_size=num).sum().backward()
            sync()
        return call

    rec = {"case": name, "num_sets": num, "num_elements": int(deg.sum()), "channels": channels,
           "degrees": {"dist": list(dist), "mean": float(deg.float().mean()), "max": int(deg.max())}}
    t_f = interleaved({k: fwd(m) for k, m in peers.items()}, reps=reps, warmup=1, budget_s=60)
    t_fb = interleaved({k: fwd_bwd(m) for k, m in peers.items()}, reps=reps, warmup=1, budget_s=60)
    rec["forward_ms"] = {k: 1e3 * v["median_s"] for k, v in t_f.items()}
    rec["forward_backward_ms"] = {k: 1e3 * v["median_s"] for k, v in t_fb.items()}
    rec["runs"] = {k: v["runs"] for k, v in t_fb.items()}
    rec["pyg_over_sciml"] = {
        mode: {agg: rec[f"{mode}_ms"][f"pyg_{agg}"] / rec[f"{mode}_ms"][f"sciml_{agg}"] for agg in ("lcm", "gru")}
        for mode in ("forward", "forward_backward")}
    # batch composition: the smallest sets are the ones PyG pads most
    sample = torch.argsort(deg, stable=True)[:: max(1, num // 16)][:16]
    rec["batch_composition_deviation"] = {k: deviation(m, x, index, ptr, sample) for k, m in peers.items()}
    with torch.no_grad():
        rec["max_abs_diff_sciml_vs_pyg"] = {
            agg: float((peers[f"sciml_{agg}"](x, index, dim_size=num) -
                        peers[f"pyg_{agg}"](x, index, dim_size=num)).abs().max()) for agg in ("lcm", "gru")}
    return rec


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    out = args.out or str(RESULTS / (f"lcm_speed_{kind}" + ("_quick" if args.quick else "") + ".json"))
    result = {"benchmark": "lcm_speed", "machine": machine_info(args.device), "threads": args.threads,
              "quick": args.quick,
              "note": "eval mode, no projection, same weights in both libraries; medians of interleaved rounds",
              "cases": []}
    for name, num, dist, ch in (QUICK if args.quick else CASES):
        rec = run_case(name, num, dist, ch, device=args.device, reps=3 if args.quick else args.reps)
        result["cases"].append(rec)
        atomic_write_text(out, json.dumps(result, indent=1) + "\n")
        log(f"{name} N={num} E={rec['num_elements']} F={ch} max deg {rec['degrees']['max']}: "
            + ", ".join(f"{k} {v:.2f}/{rec['forward_backward_ms'][k]:.2f} ms" for k, v in rec["forward_ms"].items())
            + " (fwd/fwd+bwd); deviation " + ", ".join(f"{k} {v:.1e}"
                                                       for k, v in rec["batch_composition_deviation"].items()))
    log(f"-> {out}")


if __name__ == "__main__":
    main()
