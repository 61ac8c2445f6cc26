"""RQGNN training-epoch time and peak memory: ours (``sciml.gnn.rqgnn`` on ``PackedGraphs``) against the
official code (xydong127/RQGNN ``GADGNN`` + ``utils.generate_batches``), same data, same split, same
hyper-parameters, in one process.

One *epoch* is what each implementation does per training epoch: the official code rebuilds its batches
(``generate_batches``: lil matrices, a dense Laplacian per graph, the Rayleigh vectors) and then runs forward,
the class-balanced focal loss, backward and an Adam step per batch of 512 graphs; ours cuts the batches out of
the precomputed pack (``PackedGraphs.batch``) and does the same steps. Both with trainable-looking filters as
written: ours ``filters="frozen_random"`` to match the official code's effective behaviour (its ChebConvs are
not registered, so Adam never updates them) and ``"trainable"`` as a second row. Timing: ``interleaved`` rounds
(peers in shuffled order each round), median epoch; ratio = official / ours.

Peak memory: each implementation in a fresh subprocess loads the data, resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``), trains ``--memory-epochs`` epochs and reports ``VmHWM`` (peak resident set) and the
resident set before training.

The official code is imported from ``--official-root`` (a checkout outside the repository; its data folder is
written by ``rqgnn_reproduction.prepare_official``); it imports scikit-learn only for metrics, so a stub stands
in for it when scikit-learn is absent (import adaptation only).

usage: python benchmarks/rqgnn_speed.py [--quick] [--dataset AIDS] [--reps 5] [--threads 1] [--out F]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, interleaved, log  # noqa: E402
import rqgnn_reproduction as repro  # noqa: E402

from sciml.gnn.graph_anomaly import PackedGraphs, class_balanced_focal_loss, stratified_split  # noqa: E402
from sciml.gnn.rqgnn import RQGNN  # noqa: E402

HP = {"batch": 512, "lr": 5e-3, "hidden": 64, "width": 4, "depth": 6, "dropout": 0.4, "beta": 0.999, "gamma": 1.5}


def import_official(root: str):
    """``utils``, ``model``, ``lossfunc`` of the official checkout (scikit-learn stubbed if missing)."""
    try:
        import sklearn.metrics  # noqa: F401
    except ImportError:
        sk = types.ModuleType("sklearn")
        metrics = types.ModuleType("sklearn.metrics")
        metrics.roc_auc_score = metrics.classification_report = None
        sk.metrics = metrics
        sys.modules.update({"sklearn": sk, "sklearn.metrics": metrics})
    sys.path.insert(0, root)
    import lossfunc  # type: ignore
    import model  # type: ignore
    import utils  # type: ignore
    return utils, model, lossfunc


class Ours:
    def __init__(self, packed: PackedGraphs, train_ids: torch.Tensor, filters: str, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.packed, self.train_ids = packed, train_ids
        self.counts = packed.class_counts(train_ids)
        self.model = RQGNN(packed.num_features, HP["hidden"], 2, width=HP["width"], depth=HP["depth"],
                           dropout=HP["dropout"], filters=filters)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=HP["lr"])
        self.gen = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        self.model.train()
        perm = self.train_ids[torch.randperm(self.train_ids.numel(), generator=self.gen)]
        total = 0.0
        for i in range(0, perm.numel(), HP["batch"]):
            b = self.packed.batch(perm[i:i + HP["batch"]])
            self.opt.zero_grad()
            loss = class_balanced_focal_loss(self.model(b.x, b.laplacian, b.graph_ptr, b.rq), b.y, self.counts,
                                             beta=HP["beta"], gamma=HP["gamma"])
            loss.backward()
            self.opt.step()
            total += float(loss.detach())
        return total


class Official:
    def __init__(self, root: str, data: str, seed: int = 10) -> None:
        self.utils, model, self.lossfunc = import_official(root)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            adjs, feats, labels, tr, _, _ = self.utils.load_data(data)
        finally:
            os.chdir(cwd)
        self.adj = [adjs[i] for i in tr]
        self.feats = [feats[i] for i in tr]
        self.labels = [labels[i] for i in tr]
        self.counts = [self.labels.count(0), self.labels.count(1)]
        torch.manual_seed(seed)
        self.model = model.GADGNN(feats[0].shape[1], HP["hidden"], 2, HP["width"], HP["depth"], HP["dropout"], 1)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=HP["lr"], weight_decay=0)
        self.batch_s = 0.0

    def epoch(self) -> float:
        self.model.train()
        t0 = time.perf_counter()
        batches = self.utils.generate_batches(self.adj, self.feats, self.labels, HP["batch"], True)
        self.batch_s = time.perf_counter() - t0
        total = 0.0
        for b in batches:
            self.opt.zero_grad()
            loss = self.lossfunc.CB_loss(b.label_list, self.model(b), self.counts, 2, HP["beta"], HP["gamma"])
            loss.backward()
            self.opt.step()
            total += float(loss.item())
        return total


def load(dataset: str, seed: int, data_root: str, official_root: str | None):
    raw = repro.load_graphs(dataset, data_root)
    packed = PackedGraphs(raw)
    split = stratified_split(packed.y, seed=seed)
    data = None
    if official_root:
        data = repro.prepare_official(dataset, seed, raw, packed, split, data_root, official_root)
    return packed, split, data


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    return -1


def memory_child(args) -> None:
    """Subprocess: load, reset the peak-RSS counter, train, print JSON."""
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.memory == "official":
        packed, split, data = load(args.dataset, 0, args.data_root, args.official_root)
        peer = Official(args.official_root, data)
    else:
        packed, split, _ = load(args.dataset, 0, args.data_root, None)
        peer = Ours(packed, split[0], args.memory.split(":")[1])
    load_s = time.perf_counter() - t0
    rss_before = _status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        reset = False
    for _ in range(args.memory_epochs):
        peer.epoch()
    peak = _status("VmHWM")
    print(json.dumps({"peer": args.memory, "rss_before_train_mib": rss_before / 1024,
                      "train_increment_mib": (peak - rss_before) / 1024,
                      "peak_rss_train_mib": peak / 1024, "peak_reset": reset,
                      "load_s": round(load_s, 2), "epochs": args.memory_epochs}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: BZR, 1 timed round, 1 memory epoch")
    p.add_argument("--dataset", default="AIDS")
    p.add_argument("--data-root", default=repro.DATA)
    p.add_argument("--official-root", default=repro.OFFICIAL_ROOT)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--memory-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--memory", default=None, help=argparse.SUPPRESS)  # child mode
    args = p.parse_args(argv)
    if args.memory:
        memory_child(args)
        return
    torch.set_num_threads(args.threads)
    if args.quick:
        args.dataset, args.reps, args.memory_epochs = "BZR", 1, 1
    have_official = Path(args.official_root, "main.py").is_file()
    out = args.out or str(RESULTS / ("rqgnn_speed" + ("_quick" if args.quick else "") + "_cpu.json"))
    cfg = {"dataset": args.dataset, "split_seed": 0, "reps": args.reps, "threads": args.threads, **HP,
           "memory_epochs": args.memory_epochs, "official": have_official, "quick": args.quick}
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    packed, split, data = load(args.dataset, 0, args.data_root, args.official_root if have_official else None)
    log(f"{args.dataset}: {len(packed)} graphs, train {split[0].numel()}, features {packed.num_features}")
    peers = {"ours_frozen": Ours(packed, split[0], "frozen_random"), "ours_trainable": Ours(packed, split[0],
                                                                                          "trainable")}
    if have_official:
        peers["official"] = Official(args.official_root, data)
    else:
        log(f"{args.official_root}/main.py not found: timing ours only")
    if not results.done("time"):
        timing = interleaved({k: v.epoch for k, v in peers.items()}, reps=args.reps, warmup=1)
        rec = {k: {m: v[m] for m in ("median_s", "min_s", "max_s", "runs")} for k, v in timing.items()}
        if have_official:
            rec["official_batch_build_s_last"] = round(peers["official"].batch_s, 3)
            for k in ("ours_frozen", "ours_trainable"):
                rec[f"ratio_official_over_{k}"] = timing["official"]["median_s"] / timing[k]["median_s"]
        results.add("time", rec)
        log(json.dumps(rec))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    for peer in ["ours:frozen_random", "ours:trainable"] + (["official"] if have_official else []):
        key = f"memory/{peer}"
        if results.done(key):
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "--memory", peer, "--dataset", args.dataset,
               "--data-root", args.data_root, "--official-root", args.official_root, "--threads", str(args.threads),
               "--memory-epochs", str(args.memory_epochs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {peer} failed:\n{proc.stderr[-3000:]}")
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        results.add(key, rec)
        log(f"{key}: {json.dumps(rec)}")
    runs = results.data["runs"]
    summary = {"epoch_s": {k: v["median_s"] for k, v in runs["time"].items() if isinstance(v, dict)},
               "peak_rss_train_mib": {k.split("/", 1)[1]: v["peak_rss_train_mib"] for k, v in runs.items()
                                      if k.startswith("memory/")},
               "train_increment_mib": {k.split("/", 1)[1]: v.get("train_increment_mib") for k, v in runs.items()
                                       if k.startswith("memory/")}}
    summary.update({k: v for k, v in runs["time"].items() if k.startswith("ratio")})
    results.set_summary(summary)
    log(json.dumps(summary))


if __name__ == "__main__":
    main()
