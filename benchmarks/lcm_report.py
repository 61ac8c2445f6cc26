"""Markdown tables of the LCM experiment results (for docs/aggregation.md).

usage: python benchmarks/lcm_report.py [--second-min benchmarks/results/lcm_second_minimum.json]
       [--tu benchmarks/results/lcm_tu_proteins.json] [--speed benchmarks/results/lcm_speed_cpu.json]
Missing files are skipped.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(s: dict) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def second_min(path: Path) -> str:
    r = json.loads(path.read_text())
    c = r["config"]
    lines = [f"Second minimum ({c['train_size']} training multisets of size 2–16, {c['epochs']} epochs, batch "
             f"{c['batch']}, Adam {c['lr']:g} cosine, embedding {c['emb']}; seeds {c['seeds']}; {c['threads']} "
             f"thread(s), {r['machine']['cpu']}). Exact-match accuracy (%), mean ± std over seeds, final epoch:",
             "", "| aggregator | test, size 32 | validation, size 2–16 | seeds | wall s / run |",
             "|---|---:|---:|---:|---:|"]
    for name, s in r["summary"].items():
        lines.append(f"| {name} | {pct(s['test32_acc'])} | {pct(s['val_acc'])} | {s['test32_acc']['n']} | "
                     f"{s['wall_s_per_run']['mean']:.0f} |")
    return "\n".join(lines)


def tu(path: Path) -> str:
    r = json.loads(path.read_text())
    c = r["config"]
    lines = [f"{c['dataset']} ({c['num_graphs']} graphs), {c['protocol']}; {c['epochs']} epochs, hidden "
             f"{c['hidden']}, {c['layers']} layers, batch {c['batch']}; {c['threads']} thread(s). Accuracy (%), "
             "mean ± std over folds:", "",
             "| aggregator | test (val-selected epoch) | test (last epoch) | folds | wall s / fold |",
             "|---|---:|---:|---:|---:|"]
    for name, s in r["summary"].items():
        lines.append(f"| {name} | {pct(s['test_acc'])} | {pct(s['final_epoch_test_acc'])} | {s['test_acc']['n']} | "
                     f"{s['wall_s_per_fold']['mean']:.0f} |")
    return "\n".join(lines)


def speed(path: Path) -> str:
    r = json.loads(path.read_text())
    m = r["machine"]
    lines = [f"Speed ({m['cpu']}, {r['threads']} thread(s), torch {m['torch']}, PyG {m['torch_geometric']}; "
             f"load average {m.get('load_average')}). Median ms per call; deviation = max |set alone − set in the "
             "batch|:", "",
             "| case | N | E | max d | F | mode | sciml LCM | PyG LCM | sciml GRU | PyG GRU |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for c in r["cases"]:
        for mode in ("forward", "forward_backward"):
            t = c[f"{mode}_ms"]
            lines.append(f"| {c['case']} | {c['num_sets']} | {c['num_elements']} | {c['degrees']['max']} | "
                         f"{c['channels']} | {mode.replace('_', '+')} | {t['sciml_lcm']:.2f} | {t['pyg_lcm']:.2f} | "
                         f"{t['sciml_gru']:.2f} | {t['pyg_gru']:.2f} |")
        d = c["batch_composition_deviation"]
        lines.append(f"| {c['case']} | | | | | deviation | {d['sciml_lcm']:.1e} | {d['pyg_lcm']:.1e} | "
                     f"{d['sciml_gru']:.1e} | {d['pyg_gru']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--second-min", default="benchmarks/results/lcm_second_minimum.json")
    p.add_argument("--tu", default="benchmarks/results/lcm_tu_proteins.json")
    p.add_argument("--speed", default="benchmarks/results/lcm_speed_cpu.json")
    args = p.parse_args()
    for fn, path in ((second_min, args.second_min), (tu, args.tu), (speed, args.speed)):
        if Path(path).exists():
            print(fn(Path(path)) + "\n")


if __name__ == "__main__":
    main()
