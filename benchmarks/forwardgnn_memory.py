"""Peak training memory of ForwardGNN's single-forward (SF) learning vs backprop (BP) as the depth grows (the paper's
memory claim: SF's memory grows flatter with depth than BP's), measured on the CPU, plotted to docs/.

Measurement: one fresh subprocess per (variant, conv, depth). The child reads the (already converted) dataset,
then frees what it can (``gc.collect()``, glibc ``malloc_trim(0)``), resets the kernel's peak-RSS counter
(``echo 5 > /proc/self/clear_refs`` resets ``VmHWM`` to the current RSS) and records the RSS; it then builds the model
and trains it through the Trainer (``--epochs`` epochs, per layer for SF, with validation every 2 epochs) and reads
``VmHWM`` again. The reported value is the peak minus the baseline: every byte the training touched at its high
point (parameters, Adam moments, gradients, activations kept for backward, the augmented graph and its CSR
adjacency, evaluation buffers). The child runs with ``MALLOC_MMAP_THRESHOLD_=65536`` so that every tensor larger
than 64 KiB is its own mmap, returned to the OS when freed: RSS then follows the live tensors instead of glibc's
free lists. (Python's ``tracemalloc`` does not see torch's allocations; torch has no CPU counterpart of
``torch.cuda.max_memory_allocated``.) The peak RSS counts pages, so it is an upper bound on allocator bytes at the
peak within a page per allocation.

Usage:
  python benchmarks/forwardgnn_memory.py [--dataset amazon_photo] [--convs gcn] [--depths 1,2,4,8,12,16,24,32]
      [--epochs 4] [--variants sf,bp] [--out benchmarks/results/forwardgnn_memory_cpu.json]
      [--plot docs/forwardgnn_memory.png] [--quick]   (--quick: cora, depths 1,2,4,8, 2 epochs, no plot)
Results are appended per run (resumable: existing (variant, conv, depth) entries are skipped).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "forwardgnn_memory_cpu.json"
DEFAULT_PLOT = HERE.parent / "docs" / "forwardgnn_memory.png"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from sciml.gnn.forwardgnn import train_node_classifier
    from _forwardgnn_data import forwardgnn_dataset

    data = forwardgnn_dataset(args.dataset, split_index=0, cache_dir=args.cache_dir, sparse_features=False)
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    res = train_node_classifier(data, variant=args.variant, conv=args.conv, num_layers=args.depth,
                                max_epochs=args.epochs, patience=10_000, seed=0)
    peak = _status_kib("VmHWM")
    print(json.dumps({"variant": args.variant, "conv": args.conv, "depth": args.depth, "baseline_kib": base,
                      "peak_kib": peak, "peak_delta_mib": round((peak - base) / 1024, 2),
                      "wall_s": round(time.perf_counter() - t0, 2), "epochs": res["epochs"]}))


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[tuple, list] = {}
    for r in doc["runs"]:
        series.setdefault((r["variant"], r["conv"]), []).append((r["depth"], r["peak_delta_mib"]))
    for (variant, conv), pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                label=f"{'SF' if variant == 'sf' else 'BP'}-{conv.upper()}")
    ax.set_xlabel("layers")
    ax.set_ylabel("peak training memory above baseline (MiB, CPU RSS)")
    ax.set_title(f"ForwardGNN memory vs depth ({doc.get('dataset', '')}, hidden 128)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="amazon_photo")
    p.add_argument("--convs", default="gcn")
    p.add_argument("--variants", default="sf,bp")
    p.add_argument("--depths", default="1,2,4,8,12,16,24,32")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--plot", default=None, help=f"PNG to write (default: {DEFAULT_PLOT.name} in docs/, none with "
                   "--quick)")
    p.add_argument("--quick", action="store_true", help="cora, depths 1,2,4,8, 2 epochs")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--conv", help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return
    if args.quick:
        args.dataset, args.depths, args.epochs = "cora", "1,2,4,8", 2
    elif args.plot is None:
        args.plot = str(DEFAULT_PLOT)
    out = Path(args.out) if args.out else (DEFAULT_OUT.with_name("forwardgnn_memory_cpu_quick.json") if args.quick
                                           else DEFAULT_OUT)
    doc: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"benchmark": "forwardgnn_memory",
                                                                            "runs": []}
    doc.update(dataset=args.dataset, epochs=args.epochs, method="peak RSS delta per subprocess (VmHWM reset via "
               "clear_refs after data loading), MALLOC_MMAP_THRESHOLD_=65536", machine=machine_info("cpu"))
    from _forwardgnn_data import forwardgnn_dataset

    forwardgnn_dataset(args.dataset, cache_dir=args.cache_dir)  # convert once, outside the measured children
    done = {(r["variant"], r["conv"], r["depth"]) for r in doc["runs"]}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    for conv in args.convs.split(","):
        for depth in [int(d) for d in args.depths.split(",")]:
            for variant in args.variants.split(","):
                if (variant, conv, depth) in done:
                    continue
                cmd = [sys.executable, os.path.abspath(__file__), "--child", "--dataset", args.dataset,
                       "--variant", variant, "--conv", conv, "--depth", str(depth), "--epochs", str(args.epochs)]
                if args.cache_dir:
                    cmd += ["--cache-dir", args.cache_dir]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise SystemExit(f"child failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
                rec = json.loads(proc.stdout.strip().splitlines()[-1])
                doc["runs"].append(rec)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc, indent=1))
                os.replace(tmp, out)
                print(f"[forwardgnn-memory] {variant} {conv} L={depth}: +{rec['peak_delta_mib']} MiB "
                      f"({rec['wall_s']} s)", flush=True)
    if args.plot:
        plot(doc, Path(args.plot))
        print(f"[forwardgnn-memory] plot: {args.plot}")


if __name__ == "__main__":
    main()
