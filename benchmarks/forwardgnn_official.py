"""ForwardGNN: the official implementation (facebookresearch/forwardgnn) and ours, side by side on the same node
splits, seeds and protocol; test accuracy and training time per split in one JSON (resumable).

The official code is never part of this repository. Give a checkout of it (commit 73fe257 was used) and a Python
interpreter that can run it: torch, torch_geometric, scikit-learn, tqdm, and torch_scatter + torch_sparse (its
``cached_gcn_conv`` imports both; they build from source against torch 2.13, ../shared/reference/peers.md item 1).
The script works on a temporary copy of the checkout and changes nothing in it but what the comparison needs:

* **splits**: our 64/16/20 splits (``fraction_node_split``, what ``forwardgnn_reproduction.py`` uses) are written in
  the official layout (``datasplits/<name>/node-5splits/{train,val,test}-node-index-split<i>.pt``), so the official
  loader reads them instead of drawing its own with sklearn;
* **data**: the raw files of ``../shared/data`` are copied under its ``data/`` folder; for Planetoid Cora/CiteSeer,
  which its ``load_dataset`` does not know, one ``Planetoid`` branch is added (peers.md: the 7-line loader
  addition). Amazon Photo needs no code change.

Both sides: hidden 128, Adam lr 1e-3, weight decay 5e-4 (ours; the official optimisers are built by its code),
<= ``--epochs`` per layer, validation every 2 epochs, patience 100 validations, run seed 100*101 + 3*i for split i.

Usage:
  python benchmarks/forwardgnn_official.py --official-repo PATH --official-python PATH
      [--dataset cora] [--conv gcn] [--layers 2] [--splits 0,1,2,3,4] [--epochs 1000] [--threads 1]
      [--out benchmarks/results/forwardgnn_official.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ResultFile, log, mean_std  # noqa: E402
from _forwardgnn_data import FORWARDGNN_DATASETS, forwardgnn_dataset, shared_data_dir  # noqa: E402

HERE = Path(__file__).resolve().parent
#: our dataset name -> (official dataset name, folder under its data/, raw copy source relative to the shared data)
OFFICIAL_NAMES = {"cora": ("Planetoid-Cora", "Planetoid/Cora", "planetoid/Cora"),
                  "citeseer": ("Planetoid-CiteSeer", "Planetoid/CiteSeer", "planetoid/CiteSeer"),
                  "amazon_photo": ("Amazon-Photo", "Amazon/Photo/raw", None)}
CONV_NAMES = {"gcn": "GCN", "sage": "SAGE", "gat": "GAT"}
SEED_BASE = 100
LOADER_ANCHOR = '    elif dataset == "GitHub":\n'
PLANETOID_BRANCH = ('    elif dataset.startswith("Planetoid"):\n'
                    '        from torch_geometric.datasets import Planetoid\n'
                    '        dataset = Planetoid(root=f"{settings.DATA_ROOT}/Planetoid",\n'
                    '                            name=dataset.strip().split("-")[1], transform=NormalizeFeatures())\n')


def run_seed(split: int) -> int:
    """The official SeedManager: ``seed_base * 101 + 3 * run``."""
    return SEED_BASE * 101 + 3 * split


def write_official_splits(root: Path, official_name: str, masks: dict[int, tuple[torch.Tensor, ...]]) -> Path:
    """``{split: (train, val, test) masks}`` as the official ``DataSplit`` files (sorted int32 node ids)."""
    folder = root / "datasplits" / official_name / "node-5splits"
    folder.mkdir(parents=True, exist_ok=True)
    for i, split_masks in masks.items():
        for kind, mask in zip(("train", "val", "test"), split_masks):
            torch.save(mask.nonzero().view(-1).int(), folder / f"{kind}-node-index-split{i}.pt")
    return folder


def prepare_official(repo: Path, work: Path, dataset: str, data_dir: Path) -> Path:
    """A working copy of the official checkout with the data (and the Planetoid loader branch) in place."""
    if not (repo / "src" / "train_forward.py").is_file():
        raise SystemExit(f"{repo} is not a checkout of facebookresearch/forwardgnn (no src/train_forward.py)")
    shutil.copytree(repo, work, ignore=shutil.ignore_patterns(".git", "results", "data", "datasplits"))
    official, folder, raw = OFFICIAL_NAMES[dataset]
    target = work / "data" / folder
    if raw is None:  # Amazon: PyG reads the npz from raw/
        import zipfile

        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(data_dir / FORWARDGNN_DATASETS[dataset][1]) as z:
            z.extractall(target)
    else:
        shutil.copytree(data_dir / raw, target)
        loader = work / "src" / "datasets" / "dataloader.py"
        text = loader.read_text()
        if LOADER_ANCHOR not in text:
            raise SystemExit(f"{loader}: the load_dataset layout changed; cannot add the Planetoid branch")
        loader.write_text(text.replace(LOADER_ANCHOR, PLANETOID_BRANCH + LOADER_ANCHOR, 1))
    return work


def official_command(python: str, dataset: str, conv: str, layers: int, num_runs: int, epochs: int,
                     patience: int) -> list[str]:
    """The official SF command line (exp/nodeclass/nodeclass-sf.sh with our depth and run count, CPU)."""
    return [python, "train_forward.py", "--exp-setting", "sciml-compare", "--dataset", OFFICIAL_NAMES[dataset][0],
            "--task", "node-class", "--model", f"GNN_SingleForward-{CONV_NAMES[conv]}", "--num-layers",
            str(layers), "--num-runs", str(num_runs), "--seed", str(SEED_BASE), "--epochs", str(epochs),
            "--val-every", "2", "--lr", "0.001", "--patience", str(patience), "--num-hidden", "128",
            "--append-label", "none", "--aug-edge-direction", "bidirection", "--gpu", "-1"]


def read_official_results(work: Path, dataset: str, conv: str, layers: int, split: int) -> dict[str, Any]:
    name = (f"fw-results-node-class-GNN_SingleForward-{CONV_NAMES[conv]}-num_layers{layers}-run{split}-"
            f"seed{run_seed(split)}.json")
    path = work / "results" / "sciml-compare" / OFFICIAL_NAMES[dataset][0] / "node-class" / name
    r = json.loads(path.read_text())
    return {"test_acc": float(r["perf"]) / 100.0, "train_time_s": float(r["train_time"]),
            "train_epochs": r["train_epochs"], "best_val_epoch": r["best_val_epoch"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official-repo", type=Path, required=True)
    p.add_argument("--official-python", required=True)
    p.add_argument("--dataset", default="cora", choices=sorted(OFFICIAL_NAMES))
    p.add_argument("--conv", default="gcn", choices=sorted(CONV_NAMES))
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--splits", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=None, help="the shared data folder (default ../shared/data)")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=HERE / "results" / "forwardgnn_official.json")
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    splits = [int(s) for s in args.splits.split(",") if s]
    if any(not 0 <= s < 5 for s in splits):
        p.error("--splits must lie in 0..4 (the protocol's 5 folds)")
    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or shared_data_dir()
    cfg = {"dataset": args.dataset, "conv": args.conv, "layers": args.layers, "epochs": args.epochs,
           "patience": args.patience, "variant": "sf", "official_commit_used": "73fe257"}
    results = ResultFile(args.out, cfg, fresh=args.fresh)

    # dense features on our side, as the official code's: the two runs are then the same computation up to kernels
    datas = {i: forwardgnn_dataset(args.dataset, split_index=i, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                   sparse_features=False) for i in splits}
    todo = [i for i in splits if not results.done(f"official/split{i}")]
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            work = prepare_official(args.official_repo, Path(tmp) / "forwardgnn", args.dataset, data_dir)
            masks = {i: (d.train_mask, d.val_mask, d.test_mask) for i, d in datas.items()}
            write_official_splits(work, OFFICIAL_NAMES[args.dataset][0], masks)
            # the official runner takes runs 0..n-1 = splits 0..n-1: run them all, keep the ones asked for
            cmd = official_command(args.official_python, args.dataset, args.conv, args.layers, max(splits) + 1,
                                   args.epochs, args.patience)
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONSAFEPATH="")
            log("official: " + " ".join(cmd[1:]))
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=work / "src", env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"the official run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            wall = time.perf_counter() - t0
            for i in todo:
                rec = read_official_results(work, args.dataset, args.conv, args.layers, i)
                results.add(f"official/split{i}", {**rec, "process_wall_s_all_runs": wall})
                log(f"official split {i}: test {100 * rec['test_acc']:.2f} %  {rec['train_time_s']:.1f} s")

    from sciml.gnn.forwardgnn import train_node_classifier

    for i in splits:
        if results.done(f"ours/split{i}"):
            continue
        out = train_node_classifier(datas[i], variant="sf", conv=args.conv, num_layers=args.layers,
                                    max_epochs=args.epochs, patience=args.patience, seed=run_seed(i))
        rec = {"test_acc": out["depths"][args.layers]["test_acc"], "train_time_s": out["train_time_s"],
               "train_epochs": "-".join(str(ph.get("epochs", "")) for ph in out["phases"]),
               "stop_reason": out["stop_reason"]}
        results.add(f"ours/split{i}", rec)
        log(f"ours split {i}: test {100 * rec['test_acc']:.2f} %  {rec['train_time_s']:.1f} s")

    summary: dict[str, Any] = {}
    for impl in ("official", "ours"):
        runs = [results.data["runs"][f"{impl}/split{i}"] for i in splits if results.done(f"{impl}/split{i}")]
        if runs:
            summary[impl] = {"test_acc": mean_std([r["test_acc"] for r in runs]),
                             "train_time_s": mean_std([r["train_time_s"] for r in runs])}
    if "official" in summary and "ours" in summary:
        summary["train_time_official_over_ours"] = (summary["official"]["train_time_s"]["mean"]
                                                    / summary["ours"]["train_time_s"]["mean"])
    results.set_summary(summary)
    log(json.dumps({k: (v if not isinstance(v, dict) else {m: round(s["mean"], 4) for m, s in v.items()})
                    for k, v in summary.items()}))
    return results.data


if __name__ == "__main__":
    main()
