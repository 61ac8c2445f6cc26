"""Generate PERFORMANCE.md from the JSON results in benchmarks/results/ (never edit PERFORMANCE.md by hand).

    python benchmarks/report.py            # rewrites PERFORMANCE.md at the repository root
    python benchmarks/report.py --check    # exit 1 if PERFORMANCE.md is out of date with the results
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = HERE.parent / "PERFORMANCE.md"


def _machine(m: dict) -> str:
    keys = ("device", "cpu", "gpu", "cpu_count", "torch_threads", "torch", "torch_geometric", "date", "git_commit")
    parts = [f"{k}={m[k]}" for k in keys if m.get(k) not in (None, "")]
    alloc = {k: v for k, v in (m.get("allocator_env") or {}).items() if v}
    if alloc:
        parts.append("allocator " + " ".join(f"{k}={v}" for k, v in alloc.items()))
    return ", ".join(parts)


_TUNED_GLIBC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"
_DEFAULT_ALLOC_SUFFIX = "_default_alloc"  # sparse_ops.py --allocator both: FILE.json + FILE_default_alloc.json


def _allocator(m: dict) -> str:
    """The allocator label a sparse_ops run recorded (older results: derived from its allocator environment)."""
    if m.get("allocator"):
        return m["allocator"]
    env = {k: v for k, v in (m.get("allocator_env") or {}).items() if v}
    if not env:
        return "default"
    return "tuned" if env == {"GLIBC_TUNABLES": _TUNED_GLIBC} else "custom"


def _sparse_ops_allocators(tuned: dict, default: dict) -> list[str]:
    """Side by side: the same benchmark under the tuned and the default glibc allocator."""
    lines = ["Same benchmark under both allocators (tuned: `GLIBC_TUNABLES=" + _TUNED_GLIBC + "`, default: glibc "
             "defaults); median ms, each from its own run:", "",
             "| nodes | edges | F | pass | ours tuned | ours default | pyg_mp tuned | pyg_mp default | "
             "index_add tuned | index_add default | MP / ours tuned | MP / ours default | best peer / ours tuned | "
             "best peer / ours default |", "|" + "---:|" * 14]
    other = {(r["num_nodes"], r["num_edges"], r["features"], r["mode"]): r for r in default["results"]}
    for r in tuned["results"]:
        d = other.get((r["num_nodes"], r["num_edges"], r["features"], r["mode"]))
        if d is None:
            continue
        t, dm = r["median_ms"], d["median_ms"]
        lines.append(f"| {r['num_nodes']} | {r['num_edges']} | {r['features']} | {r['mode']} | {t['ours']:.3g} | "
                     f"{dm['ours']:.3g} | {t['pyg_mp']:.3g} | {dm['pyg_mp']:.3g} | {t['index_add']:.3g} | "
                     f"{dm['index_add']:.3g} | {r['speedup_vs_pyg_mp']:.1f} | {d['speedup_vs_pyg_mp']:.1f} | "
                     f"{r['best_peer_over_ours']:.2f} | {d['best_peer_over_ours']:.2f} |")
    return lines + [""]


def sparse_ops(res: dict, name: str) -> list[str]:
    peers = [p for p in res["results"][0]["median_ms"] if p != "ours"]
    alloc = _allocator(res["machine"])
    lines = [f"### Sparse ops: SpMM `A @ x` ({name}, {alloc} allocator)", "",
             f"Machine: {_machine(res['machine'])}. Memory-bandwidth reference (large copy, same run): "
             f"{res['bandwidth_reference']['gb_per_s_read_plus_write']:.1f} GB/s.", "",
             "Median ms per call; ratio = best peer / ours (> 1: ours faster); MP = PyG `MessagePassing` on "
             "`edge_index` / ours.", "",
             "| nodes | edges | F | pass | ours | " + " | ".join(peers) + " | best peer / ours | MP / ours |",
             "|" + "---:|" * (7 + len(peers))]
    for r in res["results"]:
        med = r["median_ms"]
        lines.append(f"| {r['num_nodes']} | {r['num_edges']} | {r['features']} | {r['mode']} | {med['ours']:.3g} | "
                     + " | ".join(f"{med[p]:.3g}" for p in peers)
                     + f" | {r['best_peer_over_ours']:.2f} ({r['best_peer']}) | {r['speedup_vs_pyg_mp']:.1f} |")
    lines.append("")
    stem = name[:-len(".json")] if name.endswith(".json") else name
    tuned_path = RESULTS / f"{stem[:-len(_DEFAULT_ALLOC_SUFFIX)]}.json"
    if stem.endswith(_DEFAULT_ALLOC_SUFFIX) and tuned_path.exists():
        tuned = json.loads(tuned_path.read_text())
        if tuned.get("benchmark") == "sparse_ops" and _allocator(tuned["machine"]) != alloc:
            lines += _sparse_ops_allocators(tuned, res)
    return lines


def trainer_overhead(res: dict, name: str) -> list[str]:
    lines = [f"### Trainer overhead ({name})", "",
             f"Machine: {_machine(res['machine'])}. Trainer settings: "
             + ", ".join(f"{k}={v}" for k, v in res["trainer_settings"].items())
             + f". Target: overhead <= {res['target_overhead']:.0%}.", "",
             "| workload | Trainer ms/step | hand-written loop ms/step | overhead | overhead without NaN checks |",
             "|---|---:|---:|---:|---:|"]
    for r in res["results"]:
        lines.append(f"| {r['workload']} | {r['trainer_ms_per_step']:.3f} | {r['loop_ms_per_step']:.3f} | "
                     f"{r['overhead']:+.1%} | {r['overhead_no_nan_checks']:+.1%} |")
    return lines + [""]


def data_io(res: dict, name: str) -> list[str]:
    mib = 2.0 ** 20
    lines = [f"### Data I/O: sciml-h5 readers, raw formats, generators, conversion memory ({name})", "",
             f"Machine: {_machine(res['machine'])}. Load average at start / end: "
             f"{res['machine'].get('load_average')} / {res.get('load_average_end')}. Main-process torch threads: "
             f"{res['settings'].get('torch_threads_main')}.", "",
             "Samples/s over whole epochs (batch 64; median of interleaved rounds). `ours_wK`: `open_dataset` + "
             "DataLoader with K workers; other columns are the peers named in `benchmarks/data_io.py`.", "",
             "| case | samples | peers (samples/s) | ours w0 / best other |", "|---|---:|---|---:|"]
    for r in res["readers"]:
        peers = ", ".join(f"{k} {v['samples_per_s']:,.0f}" for k, v in r["peers"].items())
        lines.append(f"| {r['case']} | {r['num_samples']} | {peers} | {r['ours_w0_over_best_other']:.2f} "
                     f"({r['best_other']}) |")
    if res.get("generators"):
        lines += ["", "| generator | options | samples/s | ms/sample |", "|---|---|---:|---:|"]
        for g in res["generators"]:
            opts = " ".join(f"{k}={v}" for k, v in g["options"].items())
            lines.append(f"| {g['generator']} | {opts} | {g['samples_per_s']:.2f} | {g['ms_per_sample']:.1f} |")
    pm = res.get("peak_memory") or {}
    if pm.get("cases"):
        lines += ["", f"Conversion peak RSS (fresh process; baseline with the same imports: "
                      f"{pm['baseline_rss_bytes'] / mib:.0f} MiB):", "",
                  "| input | converter | input MiB | materialised MiB | peak RSS MiB | peak - baseline MiB | "
                  "(peak - baseline) / materialised | < baseline + 2 x materialised |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for c in pm["cases"]:
            lines.append(f"| {c['input']} | {c['converter']} | {c['input_bytes'] / mib:.1f} | "
                         f"{c['materialised_bytes'] / mib:.1f} | {c['peak_rss_bytes'] / mib:.0f} | "
                         f"{c['extra_rss_bytes'] / mib:.0f} | "
                         f"{c['extra_over_materialised']:.2f} | {'yes' if c['within_bound'] else 'NO'} |")
    if res.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(res["skipped"]) + "."]
    return lines + [""]


def dagnn_speed(res: dict, name: str) -> list[str]:
    lines = [f"### DAGNN training epoch: ours vs the same model in PyG ({name})", "",
             f"Machine: {_machine(res['machine'])}. One epoch = forward in train mode, NLL on the training nodes, "
             "backward (benchmarks/dagnn_speed.py); medians of interleaved rounds, ms. `ours_sparse_x`: bag-of-words "
             "features stored sparse (what `node_graph` does under 10 % density).", "",
             "| graph | nodes | edges | K | ours | ours_sparse_x | pyg_mp | pyg_csr | best PyG / ours | "
             "best PyG / ours_sparse_x |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["results"]:
        ms = r["median_ms"]
        sx = r.get("ratio_best_pyg_over_ours_sparse_x")
        cells = [r["graph"], r["num_nodes"], r["num_edges"], r["K"], f"{ms['ours']:.1f}",
                 f"{ms['ours_sparse_x']:.1f}" if "ours_sparse_x" in ms else "-", f"{ms['pyg_mp']:.1f}",
                 f"{ms['pyg_csr']:.1f}", f"{r['ratio_best_pyg_over_ours']:.2f}", "-" if sx is None else f"{sx:.1f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines + [""]


def lcm_speed(res: dict, name: str) -> list[str]:
    lines = [f"### LCM and GRU aggregation: ours vs PyG ({name})", "",
             f"Machine: {_machine(res['machine'])}. {res.get('note', '')} (benchmarks/lcm_speed.py). Times in ms, "
             "forward / forward+backward; deviation = max |set alone - set inside the batch| (PyG pads with zeros "
             "that go through the GRU).", "",
             "| case | sets | elements | F | ours LCM | PyG LCM | PyG / ours | ours GRU | PyG GRU | PyG / ours | "
             "deviation ours / PyG (LCM) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in res["cases"]:
        f, fb, r = c["forward_ms"], c["forward_backward_ms"], c["pyg_over_sciml"]
        dev = c["batch_composition_deviation"]
        lines.append(
            f"| {c['case']} | {c['num_sets']} | {c['num_elements']} | {c['channels']} | "
            f"{f['sciml_lcm']:.1f} / {fb['sciml_lcm']:.1f} | {f['pyg_lcm']:.1f} / {fb['pyg_lcm']:.1f} | "
            f"{r['forward']['lcm']:.2f} / {r['forward_backward']['lcm']:.2f} | "
            f"{f['sciml_gru']:.1f} / {fb['sciml_gru']:.1f} | {f['pyg_gru']:.1f} / {fb['pyg_gru']:.1f} | "
            f"{r['forward']['gru']:.2f} / {r['forward_backward']['gru']:.2f} | "
            f"{dev['sciml_lcm']:.1e} / {dev['pyg_lcm']:.1e} |")
    return lines + [""]


def ode_solver_speed(res: dict, name: str) -> list[str]:
    lines = [f"### Neural-ODE solvers: our Tsit5/Dopri5 vs torchdiffeq dopri5 ({name})", "",
             f"Machine: {_machine(res['machine'])}. Solve of a tanh-MLP field (benchmarks/ode_solver_speed.py) at "
             f"rtol = atol = {res['config']['tol']}; medians of interleaved rounds, ms / NFE. Ratio = torchdiffeq / "
             "ours (>= 1: ours not slower). `dopri5 I`: our Dopri5 with torchdiffeq's integral controller (same "
             "NFE); the others use our default PI controller (more steps after the small initial step on these "
             "short solves). Diagnostics overhead: Tsit5 recording differentiable EEst/stiffness vs not.", "",
             "| case | mode | torchdiffeq dopri5 | ours dopri5 (PI) | ours dopri5 I | ours tsit5 (PI) | "
             "ratio per solve PI / I / tsit5 | ratio per NFE PI / I / tsit5 | diagnostics overhead |",
             "|---|---|---:|---:|---:|---:|---|---|---:|"]
    keys = ("sciml_dopri5", "sciml_dopri5_i", "sciml_tsit5")
    for c in res["cases"]:
        for mode in ("forward", "forward_backward"):
            r = c[mode]

            def cell(k: str) -> str:
                return f"{r[k]['median_s'] * 1e3:.1f} / {r[k]['nfe']}"

            lines.append(f"| {c['name']} | {mode} | {cell('torchdiffeq_dopri5')} | {cell('sciml_dopri5')} | "
                         f"{cell('sciml_dopri5_i')} | {cell('sciml_tsit5')} | "
                         + " / ".join(f"{r[k]['ratio_per_solve']:.2f}" for k in keys) + " | "
                         + " / ".join(f"{r[k]['ratio_per_nfe']:.2f}" for k in keys)
                         + f" | {r['diagnostics_overhead'] * 100:+.1f}% |")
    return lines + [""]


def _benchmark_module(module: str):
    """A module of benchmarks/ (they import their siblings, so the folder is on the path while importing)."""
    sys.path.insert(0, str(HERE))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(HERE))


def operators_speed(res: dict, name: str) -> list[str]:
    operators_tables = _benchmark_module("operators_tables")
    return [f"### MgNO / SineNet vs FNO and U-Net at matched parameters ({name})", "",
            f"Machine: {_machine(res['machine'])}. Training step and inference time per batch, medians "
            "(benchmarks/operators_speed.py); ratio = the row's time over the group's reference model; peak memory "
            "above the process baseline.", "", *operators_tables.speed(RESULTS / name), ""]


def rqgnn_speed(res: dict, name: str) -> list[str]:
    t, cfg = res["runs"]["time"], res["config"]
    lines = [f"### RQGNN training epoch vs the official code ({name})", "",
             f"Machine: {_machine(res['machine'])}. One training epoch on {cfg['dataset']} (benchmarks/rqgnn_speed.py, "
             f"batch {cfg['batch']}, {cfg['threads']} thread), medians of interleaved rounds; memory = RSS growth "
             "during training. The official code rebuilds its batches every epoch "
             f"({t.get('official_batch_build_s_last')} s of its last epoch).", "",
             "| implementation | s / epoch | official / this | training memory growth (MiB) |", "|---|---:|---:|---:|"]
    mem = {v["peer"]: v for k, v in res["runs"].items() if k.startswith("memory/")}
    rows = (("ours, frozen filters", "ours_frozen", "ratio_official_over_ours_frozen", "ours:frozen_random"),
            ("ours, trainable filters", "ours_trainable", "ratio_official_over_ours_trainable", "ours:trainable"),
            ("official (xydong127/RQGNN)", "official", None, "official"))
    for label, key, ratio, peer in rows:
        if key in t:
            m = mem.get(peer, {}).get("train_increment_mib")
            cells = [label, f"{t[key]['median_s']:.3f}", f"{t[ratio]:.1f}" if ratio else "1",
                     "-" if m is None else f"{m:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def gemnet_oc_speed(res: dict, name: str) -> list[str]:
    return _benchmark_module("gemnet_oc_speed").performance_table(res, name)


def pinn_deepxde(res: dict, name: str) -> list[str]:
    cfg = res["config"]
    lines = [f"### PINN training vs DeepXDE ({name})", "",
             f"Machine: {_machine(res['machine'])}. The same problem, network, sampler, points and iterations in sciml "
             "and DeepXDE 1.15.0 (PyTorch backend, a separate venv), one after the other per seed "
             f"(benchmarks/pinn_deepxde.py, {cfg.get('threads', 1)} thread); CPU time of the training process (less "
             "sensitive to machine load than wall time); mean over seeds."
             + (f" Schedule '{cfg['schedule']}' ({cfg.get('dtype', 'float32')}, budget scale "
                f"{cfg.get('budget_scale', 1):g}): {cfg['schedule_text']}." if "schedule_text" in cfg else ""), "",
             "| problem | sampler | sciml rel. L2 | DeepXDE rel. L2 | sciml CPU s | DeepXDE CPU s | DeepXDE / sciml |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for problem, by_sampler in res["summary"].items():
        for sampler, r in by_sampler.items():
            if "sciml" not in r or "deepxde" not in r:
                continue
            lines.append(f"| {problem} | {sampler} | {r['sciml']['rel_l2']['mean']:.3g} | "
                         f"{r['deepxde']['rel_l2']['mean']:.3g} | {r['sciml']['cpu_s']['mean']:.1f} | "
                         f"{r['deepxde']['cpu_s']['mean']:.1f} | {r['cpu_ratio_deepxde_over_sciml']['mean']:.2f} |")
    return lines + [""]


RENDERERS = {"sparse_ops": sparse_ops, "trainer_overhead": trainer_overhead, "data_io": data_io,
             "dagnn_speed": dagnn_speed, "lcm_speed": lcm_speed, "ode_solver_speed": ode_solver_speed,
             "operators_speed": operators_speed, "rqgnn_speed_cpu": rqgnn_speed,
             "gemnet_oc_speed": gemnet_oc_speed, "pinn_deepxde": pinn_deepxde}


def render() -> str:
    lines = ["# Performance", "",
             "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; each table comes from one "
             "run of the named benchmark, with every peer measured side by side in that run (interleaved rounds, "
             "medians). Re-run a benchmark with `sciml bench NAME` (see the script's `--help`), then regenerate.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        res = json.loads(path.read_text())
        renderer = RENDERERS.get(res.get("benchmark") or path.stem)
        if renderer is None and path.stem.startswith("pinn_deepxde_") and not path.stem.endswith("_quick"):
            renderer = pinn_deepxde  # the comparison under other budgets (pinn_deepxde.py --schedule ...)
        if renderer is not None:
            lines += renderer(res, path.name)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that PERFORMANCE.md is up to date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
