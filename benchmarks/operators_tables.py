"""Markdown tables from the operator benchmark results (for docs/operators.md, REPRODUCTION.md, PERFORMANCE.md).

usage: python benchmarks/operators_tables.py [--results benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(s: dict) -> str:
    return f"{s['mean']:.2f} ± {s['std']:.2f}" if s["n"] > 1 else f"{s['mean']:.2f}"


def darcy(path: Path) -> list[str]:
    res = json.loads(path.read_text())
    cfg = res["config"]
    runs = list(res["runs"].values())
    seeds = sorted({r["seed"] for r in runs})
    if all("train_samples" in r for r in runs):
        ntrain = f"{', '.join(str(n) for n in sorted({r['train_samples'] for r in runs}))} training samples"
    else:
        ntrain = f"{cfg['ntrain']} training samples (at most)"
    reduction = f", loss {cfg['reduction']} over the batch" if "reduction" in cfg else ""
    lines = [f"`{path.name}`: {cfg['epochs']} epochs, {ntrain}, seeds {seeds}, MgNO {cfg['mgno_hidden']} "
             f"channels{reduction}; errors ×10⁻², mean ± std over seeds", "",
             "| data | model | parameters | test rel. L2 | test rel. H1 | zero-shot other grid rel. L2 | s / epoch |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for group, s in res["summary"].items():
        ds, model = group.split("/")
        z = next((f"{_ms(s[k])} ({k[4:6]}²)" for k in ("test32_rel_l2_e2", "test16_rel_l2_e2") if k in s), "–")
        lines.append(f"| {ds} | {model} | {s['params']:,} | {_ms(s['test_rel_l2_e2'])} | {_ms(s['test_rel_h1_e2'])} "
                     f"| {z} | {s['time_per_epoch_s']['mean']:.1f} |")
    return lines


def timedep(path: Path) -> list[str]:
    res = json.loads(path.read_text())
    cfg = res["config"]
    seeds = sorted({r["seed"] for r in res["runs"].values()})
    lines = [f"`{path.name}`: {cfg['epochs']} epochs, {cfg['ntrain']} training trajectories, budget "
             f"{cfg['budget']:,} parameters, SineNet C0 = {cfg['hidden']}, {cfg['levels']} levels, seeds {seeds}; "
             "errors in %, mean ± std over seeds", "",
             "| data | run | parameters | waves | m | padding | one-step rel. L2 | 10-step rollout rel. L2 | s / epoch |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    first: dict[str, dict] = {}
    for r in res["runs"].values():
        first.setdefault(f"{r['dataset']}/{r['run']}", r)
    for group, s in res["summary"].items():
        r = first[group]
        lines.append(f"| {r['dataset']} | {r['run']} | {s['params']:,} | {r.get('num_waves', '–')} | "
                     f"{r.get('multiplier', '–')} | {r.get('padding', 'periodic (FFT)')} | {_ms(s['one_step_pct'])} | "
                     f"{_ms(s['rollout_pct'])} | {s['time_per_epoch_s']['mean']:.1f} |")
    return lines


def speed(path: Path) -> list[str]:
    res = json.loads(path.read_text())
    m = res["machine"]
    lines = [f"`{path.name}`: {m.get('cpu')}, {m.get('torch_threads')} thread(s), torch {m.get('torch')}, "
             f"FNO: {res['config'].get('fno_backend')}", "",
             "| task | grid | batch | model | parameters | train step (ms) | ratio | inference (ms) | ratio | "
             "peak train (MiB) | peak inference (MiB) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, rec in res["runs"].items():
        for name, s in rec["models"].items():
            pt = "–" if s["peak_train_mib"] is None else f"{s['peak_train_mib']:.0f}"
            pi = "–" if s["peak_inference_mib"] is None else f"{s['peak_inference_mib']:.0f}"
            lines.append(f"| {rec['group']} | {rec['size']}² | {rec['batch']} | {name} | {s['params']:,} | "
                         f"{1e3 * s['train_step_s']:.0f} | {s['train_ratio_vs_ref']:.2f} | "
                         f"{1e3 * s['inference_s']:.0f} | {s['inference_ratio_vs_ref']:.2f} | {pt} | {pi} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    root = Path(args.results)
    for pattern, fn in (("operators_darcy*.json", darcy), ("operators_timedep*.json", timedep),
                        ("operators_speed*.json", speed)):
        for path in sorted(root.glob(pattern)):
            print("\n".join(fn(path)) + "\n")


if __name__ == "__main__":
    main()
