"""Side-by-side benchmark of sum aggregation ``out = A @ x`` (A[target, source] = 1) on random graphs.

Peers, all measured in one run on the same graphs and features, outputs and gradients checked equal to ours:
  ours            sciml.sparse.CSRAdjacency @ x (CSR built once, cached transpose for the backward)
  torch_coo       torch.sparse.mm(A_coo, x), A coalesced COO built once
  torch_csr       torch.sparse.mm(A_csr, x), A CSR built once
  pyg_spmm        torch_geometric.utils.spmm(A_csr, x, "sum")
  pyg_mp          a torch_geometric MessagePassing layer (aggr="sum", message = x_j) on edge_index
  index_add       zeros.index_add_(0, dst, x[src]) (gather + scatter)
plus a large-tensor copy as the memory-bandwidth reference. Medians of several runs after warm-up; JSON output.

Usage: python benchmarks/sparse_ops.py [--quick] [--device cuda] [--out benchmarks/results/sparse_ops_cpu.json]
                                       [--allocator {inherit,default,tuned,both}]

Allocator (CPU): the gather/scatter peers allocate a fresh [E, F] message tensor per call, and under the default
glibc allocator large blocks are mmap'ed and page-faulted anew on every call (expensive in a sandbox), so these peers
are allocation-bound there; the CSR products allocate only the output. Results therefore depend on the allocator:
  inherit  run in this process under whatever environment it has (default);
  default  glibc defaults (GLIBC_TUNABLES unset);
  tuned    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296 (no mmap, no trimming:
           freed memory is reused);
  both     tuned, then default, each in its own subprocess; with --out FILE.json the tuned results go to FILE.json
           and the default ones to FILE_default_alloc.json.
glibc reads GLIBC_TUNABLES at process start, so default/tuned re-execute this script in a subprocess when the
current environment differs. The JSON records the allocator environment and a label (machine.allocator).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import warnings

import torch

from torch_geometric.nn import MessagePassing
from torch_geometric.utils import spmm as pyg_spmm

from sciml.sparse import CSRAdjacency

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_info as common_machine_info  # noqa: E402

warnings.filterwarnings("ignore", message=".*Sparse.*")  # CSR beta / invariant-check notices

FULL_SIZES = [(10_000, 100_000), (100_000, 1_000_000)]
FULL_FEATURES = [16, 64, 256]
QUICK_SIZES = [(10_000, 100_000)]
QUICK_FEATURES = [16, 64]

TUNED_GLIBC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"
ALLOCATOR_ENV_KEYS = ("GLIBC_TUNABLES", "LD_PRELOAD", "MALLOC_CONF")
DEFAULT_ALLOC_SUFFIX = "_default_alloc"
_CHILD_FLAG = "SCIML_SPARSE_OPS_ALLOCATOR_CHILD"


def allocator_label(env=None) -> str:
    """``"tuned"`` (exactly TUNED_GLIBC), ``"default"`` (no allocator variable set) or ``"custom"``."""
    env = os.environ if env is None else env
    values = {k: env.get(k) or None for k in ALLOCATOR_ENV_KEYS}
    if not any(values.values()):
        return "default"
    if values["GLIBC_TUNABLES"] == TUNED_GLIBC and not values["LD_PRELOAD"] and not values["MALLOC_CONF"]:
        return "tuned"
    return "custom"


def allocator_env(label: str) -> dict:
    """This process's environment with GLIBC_TUNABLES set for ``label`` ("default" or "tuned")."""
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if label == "tuned":
        env["GLIBC_TUNABLES"] = TUNED_GLIBC
    return env


def default_alloc_path(out: str) -> str:
    root, ext = os.path.splitext(out)
    return f"{root}{DEFAULT_ALLOC_SUFFIX}{ext or '.json'}"


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def run_under_allocator(label: str, argv: list[str], out: str | None) -> dict:
    """Re-execute this script with the allocator ``label`` in a subprocess; returns its JSON result."""
    import tempfile
    args = _without_option(_without_option(argv, "--allocator"), "--out")
    with tempfile.TemporaryDirectory() as tmp:
        target = out or os.path.join(tmp, "result.json")
        cmd = [sys.executable, os.path.abspath(__file__), *args, "--allocator", label, "--out", target]
        env = allocator_env(label)
        env[_CHILD_FLAG] = "1"
        print(f"== allocator {label}: GLIBC_TUNABLES={env.get('GLIBC_TUNABLES')}", flush=True)
        subprocess.run(cmd, env=env, check=True)
        with open(target) as f:
            return json.load(f)


class SumConv(MessagePassing):
    """The plainest PyG edge_index layer: out_i = sum_{j -> i} x_j."""

    def __init__(self) -> None:
        super().__init__(aggr="sum", flow="source_to_target")

    def forward(self, x, edge_index):
        return self.propagate(edge_index, x=x)

    def message(self, x_j):
        return x_j


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fns: dict, device, *, warmup: int, reps: int, budget_s: float) -> dict:
    """Median wall time in ms of every ``fns[name]()``, measured in interleaved rounds (one call of each peer per
    round, in a shuffled order, so that drift of the machine hits all peers alike). Runs ``reps`` rounds, or fewer (at least 5) once
    ``budget_s`` seconds are spent, or more (up to 4 x reps) while the budget lasts, for the fast cases."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {k: [] for k in fns}
    order = list(fns)
    rng = random.Random(0)
    start = time.perf_counter()
    for k in range(4 * reps):
        rng.shuffle(order)  # no peer always runs right after the same neighbour (cache state)
        for name in order:
            fn = fns[name]
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
        elapsed = time.perf_counter() - start
        if (k + 1 >= reps and elapsed > budget_s / 4) or (k >= 4 and elapsed > budget_s):
            break
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "runs": len(v)} for k, v in times.items()}


def machine_info(device: torch.device) -> dict:
    info = common_machine_info(str(device), allocator=allocator_label())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info

def bandwidth_reference(device: torch.device, *, nbytes: int, warmup: int, reps: int) -> dict:
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    r = measure({"copy": lambda: dst.copy_(src)}, device, warmup=warmup, reps=reps, budget_s=5.0)["copy"]
    r["bytes"] = nbytes
    r["gb_per_s_read_plus_write"] = 2 * nbytes / (r["median_ms"] * 1e-3) / 1e9
    return r


def build_peers(edge_index: torch.Tensor, num_nodes: int, device: torch.device):
    src, dst = edge_index
    ones = torch.ones(edge_index.size(1), device=device)
    t0 = time.perf_counter()
    adj = CSRAdjacency.from_edge_index(edge_index, num_nodes)
    adj.to_torch_sparse_csr()
    adj._transpose_structure()  # part of "built once per graph": the transpose used by every backward
    sync(device)
    build_ms = (time.perf_counter() - t0) * 1e3
    a_coo = torch.sparse_coo_tensor(torch.stack([dst, src]), ones, (num_nodes, num_nodes)).coalesce()
    a_csr = a_coo.to_sparse_csr()
    conv = SumConv()
    peers = {
        "ours": lambda x: adj @ x,
        "torch_coo": lambda x: torch.sparse.mm(a_coo, x),
        "torch_csr": lambda x: torch.sparse.mm(a_csr, x),
        "pyg_spmm": lambda x: pyg_spmm(a_csr, x, "sum"),
        "pyg_mp": lambda x: conv(x, edge_index),
        "index_add": lambda x: torch.zeros(num_nodes, x.size(1), device=device,
                                           dtype=x.dtype).index_add_(0, dst, x.index_select(0, src)),
    }
    return peers, build_ms


def run_case(num_nodes, num_edges, features, device, args) -> list[dict]:
    g = torch.Generator().manual_seed(num_nodes + num_edges)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g).to(device)
    peers, build_ms = build_peers(edge_index, num_nodes, device)
    rows = []
    for feat in features:
        x = torch.randn(num_nodes, feat, generator=g).to(device)
        grad_out = torch.randn(num_nodes, feat, generator=g).to(device)
        # correctness: every peer agrees with ours, forward and backward
        xr = x.clone().requires_grad_(True)
        ref = peers["ours"](xr)
        (ref_grad,) = torch.autograd.grad(ref, xr, grad_out)
        for name, fn in peers.items():
            xp = x.clone().requires_grad_(True)
            out = fn(xp)
            (gp,) = torch.autograd.grad(out, xp, grad_out)
            scale = 1e-4 * max(1.0, float(ref.detach().abs().max()))
            torch.testing.assert_close(out.detach(), ref.detach(), atol=scale, rtol=1e-4, msg=f"{name} fwd")
            torch.testing.assert_close(gp, ref_grad, atol=scale, rtol=1e-4, msg=f"{name} bwd")
        del xr, ref, ref_grad
        for mode in ("fwd", "fwd_bwd"):
            calls = {}
            for name, fn in peers.items():
                if mode == "fwd":
                    def call(fn=fn):
                        with torch.no_grad():
                            fn(x)
                else:
                    xg = x.clone().requires_grad_(True)

                    def call(fn=fn, xg=xg):
                        xg.grad = None
                        fn(xg).backward(grad_out)
                calls[name] = call
            res = measure(calls, device, warmup=args.warmup, reps=args.reps, budget_s=args.budget)
            med = {k: v["median_ms"] for k, v in res.items()}
            others = {k: v for k, v in med.items() if k != "ours"}
            best = min(others, key=others.get)
            row = {
                "num_nodes": num_nodes, "num_edges": num_edges, "features": feat, "mode": mode,
                "dtype": str(x.dtype), "construction_ms_ours": build_ms,
                "median_ms": med, "runs": {k: v["runs"] for k, v in res.items()},
                "ratio_peer_over_ours": {k: v / med["ours"] for k, v in others.items()},
                "best_peer": best, "best_peer_over_ours": others[best] / med["ours"],
                "within_5pct_of_best_or_faster": med["ours"] <= 1.05 * others[best],
                "speedup_vs_pyg_mp": others["pyg_mp"] / med["ours"],
            }
            rows.append(row)
            print_row(row)
        del x, grad_out
    return rows


def print_header(names):
    print(f"{'N':>7} {'E':>8} {'F':>4} {'mode':>7} | " + " ".join(f"{n:>10}" for n in names)
          + " | best/ours  mp/ours", flush=True)


def print_row(row):
    names = ["ours", "torch_coo", "torch_csr", "pyg_spmm", "pyg_mp", "index_add"]
    cells = " ".join(f"{row['median_ms'][n]:10.2f}" for n in names)
    print(f"{row['num_nodes']:>7} {row['num_edges']:>8} {row['features']:>4} {row['mode']:>7} | {cells} | "
          f"{row['best_peer_over_ours']:8.2f}x {row['speedup_vs_pyg_mp']:7.1f}x", flush=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one small graph, two feature sizes (< 1 min)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="JSON output path")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, help="max seconds per measurement (>= 3 runs)")
    parser.add_argument("--allocator", choices=("inherit", "default", "tuned", "both"), default="inherit",
                        help="CPU allocator setting to run under (see above); recorded in the JSON")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.allocator == "both":
        tuned = run_under_allocator("tuned", argv, args.out)
        default = run_under_allocator("default", argv, default_alloc_path(args.out) if args.out else None)
        for res in (tuned, default):
            print(f"allocator {res['machine']['allocator']}: {json.dumps(res['summary'])}", flush=True)
        return {"tuned": tuned, "default": default}
    if args.allocator in ("default", "tuned") and allocator_label() != args.allocator:
        if os.environ.get(_CHILD_FLAG):  # the environment could not be set (e.g. LD_PRELOAD): say so, don't loop
            print(f"warning: asked for allocator {args.allocator!r}, running under {allocator_label()!r}",
                  file=sys.stderr, flush=True)
        else:
            return run_under_allocator(args.allocator, argv, args.out)
    args.reps = args.reps or (5 if args.quick else 11)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.budget = args.budget or (3.0 if args.quick else 60.0)
    device = torch.device(args.device)
    sizes, features = (QUICK_SIZES, QUICK_FEATURES) if args.quick else (FULL_SIZES, FULL_FEATURES)
    result = {"benchmark": "sparse_ops", "quick": args.quick, "machine": machine_info(device),
              "settings": {"reps": args.reps, "warmup": args.warmup, "budget_s": args.budget,
                           "allocator_requested": args.allocator,
                           "graph": "uniform random directed multigraph (duplicates, self-loops), unweighted",
                           "op": "out = A @ x, A[target, source] = 1, sum aggregation, float32"}}
    print(json.dumps(result["machine"]), flush=True)
    result["bandwidth_reference"] = bandwidth_reference(device, nbytes=(64 if args.quick else 256) << 20,
                                                         warmup=args.warmup, reps=args.reps)
    print(f"copy bandwidth: {result['bandwidth_reference']['gb_per_s_read_plus_write']:.1f} GB/s "
          f"(read + write, {result['bandwidth_reference']['bytes'] >> 20} MiB)", flush=True)
    print_header(["ours", "torch_coo", "torch_csr", "pyg_spmm", "pyg_mp", "index_add"])
    rows = []
    for num_nodes, num_edges in sizes:
        rows += run_case(num_nodes, num_edges, features, device, args)
    result["results"] = rows
    result["summary"] = {
        "all_within_5pct_of_best_or_faster": all(r["within_5pct_of_best_or_faster"] for r in rows),
        "worst_best_peer_over_ours": min(r["best_peer_over_ours"] for r in rows),
        "min_speedup_vs_pyg_mp": min(r["speedup_vs_pyg_mp"] for r in rows),
    }
    print(json.dumps(result["summary"]), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
