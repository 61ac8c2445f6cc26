"""GemNet-OC training-step speed and memory: ours against fairchem's GemNet-OC (fairchem-core 1.10.0, the last
release with it) on the same structures and hyper-parameters; PyG's DimeNet++ as the fallback peer.

One step = forward (graphs built on the fly, energy and direct forces) + OC20 loss (energy MAE + 100 x force
L2-MAE) + backward, the base OC20 configuration (38,864,438 parameters in both) with unfitted scale factors (identity
in both), float32, ``--threads`` threads. Our graphs use fairchem's symmetrisation rule (``symmetrize="reference"``)
so both models see the same edges. Timing: :func:`_common.interleaved` (peers alternate in shuffled rounds; medians
and the ratio fairchem / ours, > 1 = ours faster), and the CPU time of the same calls (``time.process_time``: on a
shared machine the wall time also holds the time the process waited for a core). Peak memory: each peer in
``--mem-repeats`` fresh child processes, the peak resident set during one step (the high-water mark is reset right
before it, Linux ``clear_refs``) minus the resident set before it; median over the children. glibc's dynamic mmap
threshold makes that number bimodal (freed blocks of up to 32 MiB may stay resident or not: about 830 or 1200 MiB
for either peer on the 33-atom structure), so each child is also run with ``MALLOC_MMAP_THRESHOLD_=65536``
(every block of 64 KiB or more is mapped and unmapped: the resident set follows the live tensors), the
allocator-independent number (``peak_rss_growth_mib_fixed_mmap``).

fairchem needs torch_scatter/torch_sparse (built from source) and numpy<2, so it lives in its own venv (never in
the package), e.g. ``FAIRCHEM_VENV`` (see ../shared/reference/peers.md §4; its site-packages list the project's
``.venv`` after its own, so torch and sciml come from there). Run with that interpreter:

    FAIRCHEM_VENV/bin/python benchmarks/gemnet_oc_speed.py

Without fairchem the script records the import error and times PyG's DimeNet++ (OC20 S2EF settings of fairchem's
``dimenet_plus_plus`` config, forces by autograd, non-periodic radius graph: PyG has none with cells) instead;
DimeNet++ needs torch_sparse too.

Structures: frame 0 of OC20 trajectories ``random1000100`` (33 atoms) and ``random1000126`` (101 atoms) as in
peers.md, tags rebuilt by the OC20 rule; EMT slabs when the shared data is absent.

usage: python benchmarks/gemnet_oc_speed.py [--quick] [--reps 5] [--threads 1] [--out ...] [--fresh]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, interleaved, log  # noqa: E402

from sciml.gnn.gemnet_oc import BASE_CONFIG, GemNetOC  # noqa: E402

DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
FRAMES = ["random1000100", "random1000126"]
#: fairchem configs/s2ef/all/dimenet_plus_plus/dpp.yml
DIMENETPP = dict(hidden_channels=192, out_channels=1, num_blocks=3, int_emb_size=64, basis_emb_size=8,
                 out_emb_channels=192, num_spherical=7, num_radial=6, cutoff=6.0, envelope_exponent=5,
                 num_before_skip=1, num_after_skip=2, num_output_layers=3)
QUICK = dict(num_blocks=1, emb_size_atom=16, emb_size_edge=16, emb_size_trip_in=8, emb_size_trip_out=8,
             emb_size_quad_in=8, emb_size_quad_out=8, emb_size_aint_in=8, emb_size_aint_out=8, num_radial=16,
             cutoff=5.0, max_neighbors=8, max_neighbors_qint=4, max_neighbors_aeaint=6, max_neighbors_aint=20)


# ---------------------------------------------------------------------------------------------------- inputs
def structures(root: str, quick: bool) -> dict:
    """name -> PyG Data (float32) with energy/forces targets and OC20 tags."""
    from sciml.datasets.sources.ase_atoms import atoms_to_data

    folder = Path(root) / "molecular" / "oc20_relaxation_trajs"
    out = {}
    if folder.is_dir():
        import ase.io

        for name in FRAMES[:1] if quick else FRAMES:
            d = atoms_to_data(ase.io.read(folder / f"{name}.traj", 0), tags="oc20")
            out[f"{name}#0"] = d
    else:
        from sciml.datasets.generators.catalyst import catalyst_trajectory
        import numpy as np

        for k in range(1 if quick else 2):
            d = catalyst_trajectory(np.random.default_rng(k), k, num_steps=1, size=2 + k, layers=3, fixed_layers=1)[0]
            out[f"emt{k}"] = d
    for d in out.values():
        d.pos, d.cell, d.forces = d.pos.float(), d.cell.float(), d.forces.float()
        d.energy = d.energy.float()
    return out


# ---------------------------------------------------------------------------------------------------- peers
def _loss(energy, forces, data) -> torch.Tensor:
    free = ~data.fixed.bool()
    return ((energy.view(-1) - data.energy.view(-1)).abs().mean()
            + 100 * (forces[free] - data.forces[free]).norm(dim=-1).mean())


def _training_step(model, batch):
    """One forward + OC20 loss + backward of ``model`` on ``batch``; returns the loss."""
    def step():
        model.zero_grad(set_to_none=True)
        out = model(batch)
        loss = _loss(out["energy"], out["forces"], batch)
        loss.backward()
        return float(loss.detach())

    return step


def ours(config: dict, data):
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    model = GemNetOC(**config, symmetrize="reference")
    batch = Batch.from_data_list([data])

    return model, _training_step(model, batch)


def fairchem(config: dict, data):
    from fairchem.core.models.gemnet_oc.gemnet_oc import GemNetOC as FairchemGemNetOC
    from torch_geometric.data import Batch, Data

    torch.manual_seed(0)
    cfg = {k: v for k, v in config.items() if k not in ("qint_tags",)}
    model = FairchemGemNetOC(num_atoms=None, bond_feat_dim=None, num_targets=1, regress_forces=True,
                             otf_graph=True, rbf={"name": "gaussian"}, envelope={"name": "polynomial", "exponent": 5},
                             cbf={"name": "spherical_harmonics"}, sbf={"name": "legendre_outer"},
                             activation="silu", extensive=True, qint_tags=list(config["qint_tags"]), **cfg)
    n = data.num_nodes
    fc = Data(atomic_numbers=data.z.float(), pos=data.pos, cell=data.cell, natoms=torch.tensor([n]),
              tags=data.tags, fixed=data.fixed.float(), energy=data.energy, forces=data.forces,
              pbc=torch.ones(1, 3, dtype=torch.bool))
    batch = Batch.from_data_list([fc])

    return model, _training_step(model, batch)


def dimenetpp(config: dict, data):
    """PyG DimeNet++ (non-periodic; PyG's radius_graph needs pyg-lib, so a brute-force one is patched in)."""
    import torch_geometric.nn.models.dimenet as dimenet_module
    from torch_geometric.nn.models import DimeNetPlusPlus

    def radius_graph(pos, r, batch=None, max_num_neighbors=32):
        d = torch.cdist(pos, pos)
        same = batch[:, None] == batch[None, :] if batch is not None else torch.ones_like(d, dtype=torch.bool)
        mask = (d <= r) & same & ~torch.eye(pos.size(0), dtype=torch.bool)
        tgt, src = mask.nonzero(as_tuple=True)
        return torch.stack([src, tgt])

    dimenet_module.radius_graph = radius_graph
    torch.manual_seed(0)
    model = DimeNetPlusPlus(**config)
    z, batch_vec = data.z.long(), torch.zeros(data.num_nodes, dtype=torch.long)

    def step():
        model.zero_grad(set_to_none=True)
        pos = data.pos.detach().requires_grad_(True)
        energy = model(z, pos, batch_vec).view(-1)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        loss = _loss(energy, -grad, data)
        loss.backward()
        return float(loss.detach())

    return model, step


PEERS = {"ours": ours, "fairchem": fairchem, "dimenetpp": dimenetpp}


def peer_config(name: str, quick: bool) -> dict:
    if name == "dimenetpp":
        return {**DIMENETPP, **({"hidden_channels": 16, "out_emb_channels": 16, "int_emb_size": 8,
                                  "num_blocks": 1} if quick else {})}
    return {**BASE_CONFIG, **(QUICK if quick else {})}


def available(name: str) -> str:
    """'' if the peer can run here, else the error."""
    try:
        if name == "fairchem":
            import fairchem.core.models.gemnet_oc.gemnet_oc  # noqa: F401
        if name == "dimenetpp":
            import torch_sparse  # noqa: F401
    except Exception as err:  # ImportError, or anything a broken install raises
        return f"{type(err).__name__}: {err}"
    return ""


def _child(peer: str, frame: str, args, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", peer, frame, "--threads", str(args.threads), "--data-root",
           args.data_root] + (["--quick"] if args.quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def graph_agreement(config: dict, data) -> dict:
    """Our graphs and quadruplets against fairchem's on one structure (``symmetrize="reference"`` as in the timed
    runs): edges compared as sets of (source, target, offset) (fairchem's offsets have the opposite sign), and our
    ``quadruplet_index`` run on fairchem's own main and quadruplet graphs, so that a difference in the quadruplets
    can be told apart into graph differences (tied neighbours at the caps) and index differences."""
    from torch_geometric.data import Batch, Data

    from sciml.gnn.atomistic_graph import AtomGraph, quadruplet_index

    ours_model = GemNetOC(**config, symmetrize="reference")
    g = ours_model.build_graphs(Batch.from_data_list([data]))
    fc_model, _ = fairchem(config, data)
    n = data.num_nodes
    fc_batch = Batch.from_data_list([Data(atomic_numbers=data.z.float(), pos=data.pos, cell=data.cell,
                                          natoms=torch.tensor([n]), tags=data.tags, fixed=data.fixed.float(),
                                          pbc=torch.ones(1, 3, dtype=torch.bool))])
    with torch.no_grad():
        main_fc, _, _, qint_fc, *_, quad_fc = fc_model.get_graphs_and_indices(fc_batch)

    def keys(edge_index, offset):
        return [(int(a), int(b), *map(int, o)) for a, b, o in zip(edge_index[0], edge_index[1], offset)]

    om, oq = keys(g.main.edge_index, g.main.cell_offset), keys(g.qint.edge_index, g.qint.cell_offset)
    fm, fq = keys(main_fc["edge_index"], -main_fc["cell_offset"]), keys(qint_fc["edge_index"], -qint_fc["cell_offset"])

    def quads(main_keys, qint_keys, e_db, e_ba, e_ca):
        return set(zip((main_keys[i] for i in e_db.tolist()), (qint_keys[i] for i in e_ba.tolist()),
                       (main_keys[i] for i in e_ca.tolist())))

    q = g.quadruplets
    ours_q = quads(om, oq, q.triplet_in.edge_in[q.triplet_in_of_quad], q.triplet_in.edge_out[q.triplet_in_of_quad],
                   q.edge_out)
    fc_q = quads(fm, fq, quad_fc["triplet_in"]["in"][quad_fc["trip_in_to_quad"]],
                 quad_fc["triplet_out"]["in"][quad_fc["trip_out_to_quad"]], quad_fc["out"])
    def as_ours(gd):
        return AtomGraph(gd["edge_index"], -gd["cell_offset"].long(), gd["distance"].double(), n)

    q2 = quadruplet_index(as_ours(main_fc), as_ours(qint_fc))
    ours_on_fc = quads(fm, fq, q2.triplet_in.edge_in[q2.triplet_in_of_quad],
                       q2.triplet_in.edge_out[q2.triplet_in_of_quad], q2.edge_out)
    return {"main_edges_only_ours": len(set(om) - set(fm)), "main_edges_only_fairchem": len(set(fm) - set(om)),
            "qint_edges_only_ours": len(set(oq) - set(fq)), "qint_edges_only_fairchem": len(set(fq) - set(oq)),
            "quadruplets_ours": len(ours_q), "quadruplets_fairchem": len(fc_q),
            "quadruplets_ours_index_on_fairchem_graphs": len(ours_on_fc),
            "quadruplets_ours_index_on_fairchem_graphs_differing": len(ours_on_fc ^ fc_q)}


def child_memory(peer: str, frame: str, args) -> dict:
    """Peak-RSS growth of one training step of ``peer`` on ``frame``: median over ``args.mem_repeats`` fresh
    processes with glibc's default allocator settings, and over as many with a fixed mmap threshold."""
    runs = [_child(peer, frame, args) for _ in range(args.mem_repeats)]
    fixed = [_child(peer, frame, args, {"MALLOC_MMAP_THRESHOLD_": "65536"}) for _ in range(args.mem_repeats)]
    errors = [r["error"] for r in runs + fixed if "error" in r]
    if errors:
        return {"error": errors[0]}
    growth = [r["peak_rss_growth_mib"] for r in runs]
    growth_fixed = [r["peak_rss_growth_mib"] for r in fixed]
    return {"peak_rss_growth_mib": statistics.median(growth), "peak_rss_growth_mib_runs": growth,
            "peak_rss_growth_mib_fixed_mmap": statistics.median(growth_fixed),
            "peak_rss_growth_mib_fixed_mmap_runs": growth_fixed, "hwm_reset": all(r["hwm_reset"] for r in runs),
            "first_step_s": statistics.median(r["first_step_s"] for r in runs)}


def run_child(peer: str, frame: str, args) -> None:
    data = structures(args.data_root, args.quick)[frame]
    model, step = PEERS[peer](peer_config(peer, args.quick), data)
    # the high-water mark of the resident set is reset right before the step (Linux: clear_refs 5), so the growth
    # is the step's own peak, not model construction or imports
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before, reset = _status_kib("VmRSS"), True
    except OSError:
        before, reset = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    after = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_growth_mib": (after - before) / 1024, "peak_rss_mib": after / 1024,
                      "first_step_s": first, "hwm_reset": reset}))


def _cpu_timed(fn, times: list):
    """``fn`` that also appends the CPU time of every call to ``times``."""
    def wrapped():
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
        return out

    return wrapped


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def performance_table(res: dict, name: str) -> list[str]:
    """The PERFORMANCE.md section of a results file (for benchmarks/report.py)."""
    m = res["machine"]
    peers = [p for p in res["config"]["peers"] if p != "ours"]
    lines = [f"### GemNet-OC training step vs {', '.join(peers)} ({name})", "",
             f"Machine: device={m.get('device')}, cpu={m.get('cpu')}, cpu_count={m.get('cpu_count')}, "
             f"torch_threads={res['config']['threads']}, torch={m.get('torch')}, date={m.get('date')}. Forward "
             "(graphs on the fly, energy + direct forces) + OC20 loss + backward, OC20 base configuration "
             "(benchmarks/gemnet_oc_speed.py); medians of interleaved rounds (wall time and the process's CPU "
             "time); memory below the table.", ""]
    for peer, err in res.get("unavailable", {}).items():
        lines += [f"{peer} could not run: `{err}`", ""]
    head = ["structure", "atoms", "main edges", "ours s", "ours atoms/s"]
    for p in peers:
        head += [f"{p} s", f"{p} / ours (wall)", f"{p} / ours (CPU)"]
    head += ["ours MiB"] + [f"{p} MiB" for p in peers] + ["ours MiB (fixed mmap)"] + [
        f"{p} MiB (fixed mmap)" for p in peers]
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for frame, r in res["runs"].items():
        t, mem = r["timing"], r.get("memory", {})
        cells = [frame, str(r["atoms"]), str(r.get("main_edges", "-")), f"{t['ours']['median_s']:.3g}",
                 f"{t['ours']['atoms_per_s']:.1f}"]
        for p in peers:
            cpu = r.get(f"cpu_ratio_{p}_over_ours")
            cells += ([f"{t[p]['median_s']:.3g}", f"{r[f'ratio_{p}_over_ours']:.2f}",
                       "-" if cpu is None else f"{cpu:.2f}"] if p in t else ["-", "-", "-"])
        for key in ("peak_rss_growth_mib", "peak_rss_growth_mib_fixed_mmap"):
            for p in ["ours"] + peers:
                v = mem.get(p, {}).get(key)
                cells.append("-" if v is None else f"{v:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Memory: median over fresh processes of the peak resident-set growth during one step, with glibc's "
              "default allocator settings (bimodal: freed blocks below the dynamic mmap threshold may stay resident) "
              "and with `MALLOC_MMAP_THRESHOLD_=65536` (the resident set follows the live tensors)."]
    return lines + [""]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of seconds (tiny models, one structure)")
    p.add_argument("--peers", nargs="+", default=None, choices=list(PEERS),
                   help="default: ours, fairchem if it imports, else dimenetpp")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=240.0, help="time budget per structure for the timed rounds")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--mem-repeats", type=int, default=3, help="fresh processes per peer and allocator setting")
    p.add_argument("--memory-only", action="store_true", help="(re)measure the memory of the stored structures")
    p.add_argument("--graph-check", action="store_true",
                   help="(re)compare our graphs and quadruplets with fairchem's on the stored structures")
    p.add_argument("--data-root", default=DATA)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "gemnet_oc_speed.json"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--child", nargs=2, metavar=("PEER", "FRAME"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        run_child(*args.child, args)
        return
    if args.quick:
        args.reps, args.budget_s, args.mem_repeats = 1, 30.0, 1
    errors = {name: available(name) for name in PEERS if name != "ours"}
    peers = args.peers or (["ours", "fairchem"] if not errors["fairchem"] else ["ours", "dimenetpp"])
    runnable = [n for n in peers if n == "ours" or not errors[n]]
    config = {"quick": args.quick, "reps": args.reps, "threads": args.threads, "peers": peers,
              "configs": json.loads(json.dumps({n: peer_config(n, args.quick) for n in peers}))}
    results = ResultFile(args.out, config, fresh=args.fresh)
    results.data["unavailable"] = {n: e for n, e in errors.items() if e and n in peers}
    for n, e in results.data["unavailable"].items():
        log(f"{n} cannot run here: {e}")
    if args.graph_check:
        frames = structures(args.data_root, args.quick)
        for frame, record in results.data["runs"].items():
            record["graphs_vs_fairchem"] = graph_agreement(peer_config("ours", args.quick), frames[frame])
            log(f"{frame}: {record['graphs_vs_fairchem']}")
        results.write()
        return
    if args.memory_only:
        for frame, record in results.data["runs"].items():
            record["memory"] = {name: child_memory(name, frame, args) for name in runnable}
            log(f"{frame}: memory {record['memory']}")
        results.write()
        return
    for frame, data in structures(args.data_root, args.quick).items():
        key = f"{frame}"
        if results.done(key):
            continue
        fns, params, cpu = {}, {}, {}
        for name in runnable:
            model, step = PEERS[name](peer_config(name, args.quick), data)
            # trainable parameters (fairchem keeps its 54 scale factors as frozen parameters, we keep buffers)
            fns[name], params[name] = _cpu_timed(step, cpu.setdefault(name, [])), sum(
                q.numel() for q in model.parameters() if q.requires_grad)
        timing = interleaved(fns, reps=args.reps, warmup=1, budget_s=args.budget_s, min_reps=min(3, args.reps))
        for name in runnable:  # the first call was the untimed warm-up round
            timing[name]["cpu_median_s"] = statistics.median(cpu[name][1:])
            timing[name]["cpu_runs"] = cpu[name][1:]
        from torch_geometric.data import Batch

        graphs = GemNetOC(**peer_config("ours", args.quick), symmetrize="reference").build_graphs(
            Batch.from_data_list([data]))
        record = {"atoms": int(data.num_nodes), "params": params, "main_edges": int(graphs.main.num_edges),
                  "quadruplets": int(graphs.quadruplets.num_quadruplets),
                  "timing": {n: {k: v for k, v in t.items() if k != "result"} for n, t in timing.items()}}
        for name in runnable:
            record["timing"][name]["atoms_per_s"] = data.num_nodes / timing[name]["median_s"]
            if name != "ours":
                record[f"ratio_{name}_over_ours"] = timing[name]["median_s"] / timing["ours"]["median_s"]
                record[f"cpu_ratio_{name}_over_ours"] = timing[name]["cpu_median_s"] / timing["ours"]["cpu_median_s"]
        if not args.no_memory:
            record["memory"] = {name: child_memory(name, frame, args) for name in runnable}
        if "fairchem" in runnable:
            record["graphs_vs_fairchem"] = graph_agreement(peer_config("ours", args.quick), data)
        log(f"{frame} ({data.num_nodes} atoms): " + ", ".join(
            f"{n} {timing[n]['median_s']:.3g} s" for n in runnable) + "; " + ", ".join(
            f"{k} {v:.3g}" for k, v in record.items() if k.startswith("ratio")))
        results.add(key, record)
    results.write()


if __name__ == "__main__":
    main()
