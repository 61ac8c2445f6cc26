"""RQGNN graph-level anomaly detection on TU sets, with two baselines in the same runs, and the official code on
the same splits.

Data: ``../shared/data/tudataset/<NAME>`` (``--data-root``), converted by our TU converter into sciml-h5 and read
back (``sciml.datasets``); the minority class is the anomaly (label 1). Node features as the official code: the
continuous node attributes when the set has ``<NAME>_node_attributes.txt`` (AIDS: 4, BZR and COX2: 3 columns),
else one-hot node labels (``--features labels`` forces one-hot labels). ``Tox21_MMP`` and ``Tox21_p53`` stand for
the folders ``Tox21_MMP_training`` and ``Tox21_p53_testing`` (the only p53 part here), each split on its own.

Protocol (official ``main.py`` defaults): stratified 70/15/15 split per seed (``stratified_split(seed=s)``, the
official per-class cut rule), Adam lr 5e-3, batch 512, 100 epochs, patience 50 on validation macro-F1, the
class-balanced focal loss (beta 0.999, gamma 1.5) with the training class counts; test metrics at the epoch of best
validation AUC (``by_auc``) and of best validation F1 (``by_f1``), ties to the later epoch. Macro-F1 of the argmax
(official) and at the threshold chosen on validation (``f1_thr``).

Models in every run: ``rqgnn`` (trainable Chebyshev filters), ``rqgnn_frozen`` (frozen random filters: what the
official code effectively trains) and ``gin`` (a 3-layer GIN graph classifier, same loss and protocol).

``--official`` runs xydong127/RQGNN (``--official-root``, a checkout outside this repository, with its README's
command line and defaults; nothing changed but ``np.float``) in ``--official-python`` on the same splits: for each
(dataset, seed) a data folder ``<root>/datasets/<NAME>_s<seed>/`` gets links to the raw TU files, the node features
we use, our 0/1 labels (``_graph_newlabel.txt``) and our split (``_train/_val/_test.txt``, the files its
``main.py`` reads); its test lines are parsed from stdout. Model seed 10 + s (its seed 0 means "time").

Results go to ``benchmarks/results/rqgnn_reproduction.json`` (resumable: finished runs are skipped).

usage: python benchmarks/rqgnn_reproduction.py [--quick] [--datasets AIDS BZR ...] [--seeds 0 1 2 3 4]
       [--models rqgnn rqgnn_frozen gin] [--official --official-datasets BZR COX2] [--threads 1] [--out F] [--fresh]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.gnn.graph_anomaly import (GINClassifier, PackedGraphs, stratified_split,  # noqa: E402
                                     synthetic_anomaly_graphs, train_graph_anomaly)
from sciml.gnn.rqgnn import RQGNN  # noqa: E402

DATA = os.environ.get("SCIML_SHARED_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ALIASES = {"Tox21_MMP": "Tox21_MMP_training", "Tox21_p53": "Tox21_p53_testing"}
DATASETS = ["AIDS", "BZR", "COX2", "Tox21_MMP", "Tox21_p53"]
MODELS = ["rqgnn", "rqgnn_frozen", "gin"]
# the official checkout and the interpreter that runs it (outside this repository): flags or environment
OFFICIAL_ROOT = os.environ.get("SCIML_RQGNN_OFFICIAL", "")
OFFICIAL_PYTHON = os.environ.get("SCIML_RQGNN_OFFICIAL_PYTHON", sys.executable)


# ---------------------------------------------------------------------------------------------------- data
def tu_folder(name: str, root: str) -> Path:
    return Path(root) / "tudataset" / ALIASES.get(name, name)


def attribute_columns(folder: Path, prefix: str) -> int:
    """Columns of ``<prefix>_node_attributes.txt`` (0 when the set has none)."""
    for sub in (folder / "raw", folder):
        f = sub / f"{prefix}_node_attributes.txt"
        if f.is_file():
            with open(f) as fh:
                return fh.readline().count(",") + 1
    return 0


def load_graphs(name: str, root: str, features: str = "official") -> list:
    """The graphs of a TU set through our converter -> sciml-h5 -> GraphDataset; ``x`` = node attributes if the
    set has them (``features="official"``), else one-hot node labels."""
    if name == "synthetic":
        return synthetic_anomaly_graphs(400, anomaly_fraction=0.1, seed=0)
    from sciml.datasets.reader import GraphDataset
    from sciml.datasets.sources.tudataset import convert_tudataset
    from sciml.datasets.writer import write_spec

    folder = tu_folder(name, root)
    if not folder.exists():
        raise SystemExit(f"{folder} not found (set SCIML_SHARED_DATA or --data-root)")
    prefix = ALIASES.get(name, name)
    attrs = attribute_columns(folder, prefix) if features == "official" else 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{prefix}.h5"
        write_spec(path, convert_tudataset(folder, use_node_attr=attrs > 0))
        ds = GraphDataset(path, "train")
        graphs = [ds[i] for i in range(len(ds))]
        ds.close()
    if attrs:
        for g in graphs:
            g.x = g.x[:, :attrs].contiguous()
    return graphs


def split_digest(split) -> str:
    h = hashlib.sha256()
    for part in split:
        h.update(part.numpy().tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------- models
def make_model(kind: str, in_channels: int, cfg: dict) -> torch.nn.Module:
    if kind in ("rqgnn", "rqgnn_frozen"):
        return RQGNN(in_channels, cfg["hidden"], 2, width=cfg["width"], depth=cfg["depth"], dropout=cfg["dropout"],
                     filters="frozen_random" if kind == "rqgnn_frozen" else "trainable")
    if kind in ("gin", "gcn"):
        return GINClassifier(in_channels, cfg["hidden"], 2, num_layers=cfg["gin_layers"], conv=kind,
                             dropout=cfg["dropout"])
    raise SystemExit(f"unknown model {kind!r}; choose from {MODELS + ['gcn']}")


def run_one(kind: str, graphs: PackedGraphs, split, seed: int, cfg: dict) -> dict:
    torch.manual_seed(seed)
    model = make_model(kind, graphs.num_features, cfg)
    res = train_graph_anomaly(model, graphs, split, epochs=cfg["epochs"], batch_size=cfg["batch"], lr=cfg["lr"],
                              patience=cfg["patience"], beta=cfg["beta"], gamma=cfg["gamma"], seed=seed)
    keep = ("epoch", "val_auc", "val_f1", "val_f1_best", "test_auc", "test_f1", "test_f1_thr", "threshold")

    def pick(rec):
        out = {k: rec[k] for k in keep if k in rec}
        out.update({k: rec[k[4:]] for k in ("val_auc", "val_f1", "val_f1_best") if k[4:] in rec})
        return out

    return {"model": kind, "seed": seed, "by_auc": pick(res["by_auc"]), "by_f1": pick(res["by_f1"]),
            "last": pick(res["last"]), "epochs": res["epochs"], "stop_reason": res["stop_reason"],
            "train_s": round(res["train_s"], 2), "s_per_epoch": round(res["train_s"] / max(res["epochs"], 1), 4),
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "class_counts": res["class_counts"], "split_sha": split_digest(split)}


# ---------------------------------------------------------------------------------------------------- official
def official_data_name(name: str, seed: int) -> str:
    return f"{ALIASES.get(name, name)}_s{seed}"


def prepare_official(name: str, seed: int, graphs_raw: list, packed: PackedGraphs, split, root: str,
                     official_root: str) -> str:
    """Write the files the official ``main.py`` reads for (dataset, seed): links to the raw TU structure, our node
    features, labels (1 = anomaly) and split; returns the ``--data`` name."""
    data = official_data_name(name, seed)
    folder = Path(official_root) / "datasets" / data
    folder.mkdir(parents=True, exist_ok=True)
    prefix = ALIASES.get(name, name)
    raw = tu_folder(name, root) / "raw"
    for part in ("A", "graph_indicator"):
        link = folder / f"{data}_{part}.txt"
        if not link.exists():
            link.symlink_to(raw / f"{prefix}_{part}.txt")
    feat = folder / f"{data}_node_attributes.txt"
    if not feat.exists():
        x = torch.cat([g.x for g in graphs_raw]).numpy()
        tmp = feat.with_suffix(".partial")
        with open(tmp, "w") as fh:
            for row in x:
                fh.write(",".join(f"{v:f}" for v in row) + "\n")
        tmp.rename(feat)
    (folder / f"{data}_graph_newlabel.txt").write_text("".join(f"{int(v)}\n" for v in packed.y.tolist()))
    for part, ids in zip(("train", "val", "test"), split):
        (folder / f"{data}_{part}.txt").write_text("".join(f"{int(i)}\n" for i in ids.tolist()))
    return data


_TEST_LINE = re.compile(r"Test auc: ([0-9.eE+-]+), f1: ([0-9.eE+-]+)")
_EPOCH_LINE = re.compile(r"Epoch: (\d+), loss: ([0-9.eE+-naif]+), time cost: ([0-9.eE+-]+)")
_BEST_LINE = re.compile(r"Under the condition of (auc|f1), best idx: (\d+)")


def run_official(data: str, seed: int, cfg: dict, official_root: str, python: str, timeout: int) -> dict:
    cmd = [python, "main.py", "--data", data, "--lr", str(cfg["lr"]), "--batchsize", str(cfg["batch"]),
           "--nepoch", str(cfg["epochs"]), "--hdim", str(cfg["hidden"]), "--width", str(cfg["width"]),
           "--depth", str(cfg["depth"]), "--dropout", str(cfg["dropout"]), "--normalize", "1",
           "--beta", str(cfg["beta"]), "--gamma", str(cfg["gamma"]), "--decay", "0", "--seed", str(10 + seed),
           "--patience", str(cfg["patience"])]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]))
    env.pop("PYTHONSAFEPATH", None)  # its main.py imports its own modules from the script folder
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=official_root, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"official run failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    tests = _TEST_LINE.findall(proc.stdout)
    epochs = _EPOCH_LINE.findall(proc.stdout)
    best = dict(_BEST_LINE.findall(proc.stdout))
    if len(tests) != 2:
        raise RuntimeError(f"official output without two test lines:\n{proc.stdout[-2000:]}")
    times = [float(t) for _, _, t in epochs]
    return {"model": "official", "seed": seed, "official_seed": 10 + seed, "command": " ".join(cmd[1:]),
            "by_auc": {"epoch": int(best.get("auc", -1)), "test_auc": float(tests[0][0]),
                       "test_f1": float(tests[0][1])},
            "by_f1": {"epoch": int(best.get("f1", -1)), "test_auc": float(tests[1][0]), "test_f1": float(tests[1][1])},
            "epochs": len(epochs), "wall_s": round(wall, 1),
            "s_per_epoch_train": round(sum(times) / max(len(times), 1), 4)}


# ---------------------------------------------------------------------------------------------------- main
def summarize(results: ResultFile, min_seeds: int = 5) -> dict:
    """Mean ± std per dataset and model over every seed recorded so far (``complete``: at least ``min_seeds``)."""
    groups: dict = {}
    for key, rec in results.data["runs"].items():
        ds, m, _ = key.rsplit("/", 2)
        groups.setdefault(f"{ds}/{m}", []).append(rec)
    summary: dict = {}
    for name in sorted(groups):
        runs = groups[name]
        entry = {"n": len(runs), "seeds": sorted(r["seed"] for r in runs), "complete": len(runs) >= min_seeds}
        for sel in ("by_auc", "by_f1"):
            for metric in ("test_auc", "test_f1", "test_f1_thr"):
                vals = [r[sel][metric] for r in runs if metric in r[sel]]
                if vals:
                    entry[f"{sel}.{metric}"] = mean_std(vals)
        per_epoch = [r.get("s_per_epoch", r.get("s_per_epoch_train")) for r in runs]
        entry["s_per_epoch"] = mean_std([v for v in per_epoch if v is not None])
        summary[name] = entry
    return summary


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: one small set, one seed, 2 epochs")
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--data-root", default=DATA)
    p.add_argument("--features", choices=["official", "labels"], default="official")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--dropout", type=float, default=0.4)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--gin-layers", type=int, default=3)
    p.add_argument("--official", action="store_true", help="also run the official code (see --official-*)")
    p.add_argument("--official-only", action="store_true", help="run only the official code")
    p.add_argument("--official-datasets", nargs="+", default=["BZR", "COX2"])
    p.add_argument("--official-root", default=OFFICIAL_ROOT)
    p.add_argument("--official-python", default=OFFICIAL_PYTHON)
    p.add_argument("--official-timeout", type=int, default=3600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        have = tu_folder("BZR", args.data_root).exists()
        args.datasets, args.seeds, args.epochs = (["BZR"] if have else ["synthetic"]), [0], 2
    out = args.out or str(RESULTS / ("rqgnn_reproduction" + ("_quick" if args.quick else "") + ".json"))
    cfg = {"task": "graph-level anomaly detection (minority class = anomaly)", "features": args.features,
           "split": "stratified 70/15/15 per seed (official per-class cut rule), split seed = run seed",
           "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "hidden": args.hidden, "width": args.width,
           "depth": args.depth, "dropout": args.dropout, "patience": args.patience, "beta": 0.999, "gamma": 1.5,
           "gin_layers": args.gin_layers, "optimizer": "Adam (weight decay 0)", "threads": args.threads,
           "selection": "test at best val AUC (by_auc) and best val macro-F1 (by_f1), ties -> later epoch",
           "quick": args.quick, "aliases": ALIASES}
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    t_all = time.perf_counter()
    loaded: dict = {}

    def data(ds):
        if ds not in loaded:
            t0 = time.perf_counter()
            raw = load_graphs(ds, args.data_root, args.features)
            packed = PackedGraphs(raw)
            loaded[ds] = (raw, packed)
            log(f"{ds}: {len(packed)} graphs ({packed.num_anomalies} anomalies), {packed.num_features} features, "
                f"packed in {time.perf_counter() - t0:.1f}s")
        return loaded[ds]

    if not args.official_only:
        for seed in args.seeds:                      # seed outermost: a partial grid still covers every dataset
            for ds in args.datasets:
                for m in args.models:
                    key = f"{ds}/{m}/seed{seed}"
                    if results.done(key):
                        continue
                    _, packed = data(ds)
                    rec = run_one(m, packed, stratified_split(packed.y, seed=seed), seed, cfg)
                    results.add(key, rec)
                    log(f"{key}: test AUC {rec['by_auc']['test_auc']:.4f} / F1 {rec['by_f1']['test_f1']:.4f} "
                        f"(F1@thr {rec['by_f1'].get('test_f1_thr', float('nan')):.4f}); {rec['epochs']} epochs, "
                        f"{rec['s_per_epoch']:.2f} s/epoch")
    if args.official or args.official_only:
        if not Path(args.official_root, "main.py").is_file():
            raise SystemExit(f"--official-root {args.official_root!r} holds no main.py: give a checkout of "
                             "xydong127/RQGNN (or set SCIML_RQGNN_OFFICIAL)")
        for seed in args.seeds:
            for ds in args.official_datasets:
                key = f"{ds}/official/seed{seed}"
                if results.done(key):
                    continue
                raw, packed = data(ds)
                split = stratified_split(packed.y, seed=seed)
                name = prepare_official(ds, seed, raw, packed, split, args.data_root, args.official_root)
                rec = run_official(name, seed, cfg | {"threads": args.threads}, args.official_root,
                                   args.official_python, args.official_timeout)
                rec["split_sha"] = split_digest(split)
                results.add(key, rec)
                log(f"{key}: test AUC {rec['by_auc']['test_auc']:.4f} / F1 {rec['by_f1']['test_f1']:.4f}; "
                    f"{rec['epochs']} epochs in {rec['wall_s']:.0f}s")
    results.set_summary(summarize(results))
    for key, s in results.data["summary"].items():
        auc, f1 = s.get("by_auc.test_auc"), s.get("by_f1.test_f1")
        if auc and f1:
            log(f"{key:28s} AUC {100 * auc['mean']:.2f} ± {100 * auc['std']:.2f}  F1 {100 * f1['mean']:.2f} ± "
                f"{100 * f1['std']:.2f}  (n={s['n']})")
    log(f"total {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    main()
