"""Graph classification on a TU dataset with the aggregators sum, mean, max, GRU and LCM in the same network.

Data: ``../shared/data/tudataset/<NAME>`` (``--data-root``, ``--dataset``), converted by our TU converter
(``sciml.datasets.sources.tudataset``) into a sciml-h5 file in a temporary folder and read back with
``sciml.datasets.reader.GraphDataset`` (node features: one-hot node labels, as PyG's ``TUDataset`` default).

Model: 3 :class:`~sciml.gnn.aggregation.AggrConv` layers (hidden 32, aggregator under test; ReLU and batch norm
after each), sum pooling of every layer's node states (readout by :func:`sciml.sparse.segment_reduce`, the same
for every aggregator), concatenated, then Linear -> ReLU -> Dropout(0.5) -> Linear. GRU and LCM are trained with a
random neighbour order (``shuffle=True``) and evaluated in source-id order.

Protocol: 10-fold stratified cross-validation (folds fixed by ``--split-seed``); inside each fold 10 % of the
training part (stratified) is held out for validation; Adam (lr 1e-3, halved after half of the epochs), batch 32,
``--epochs`` (60) epochs; the test accuracy is read at the epoch of best validation accuracy (ties: lower validation
loss), so nothing is selected on the test fold. Reported: mean ± std over the 10 folds.

usage: python benchmarks/lcm_tu.py [--quick] [--dataset PROTEINS] [--epochs 60] [--folds 10]
       [--aggrs sum mean max gru lcm] [--threads 1] [--out benchmarks/results/lcm_tu_proteins.json] [--fresh]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.gnn.aggregation import AggrConv  # noqa: E402
from sciml.sparse import segment_reduce  # noqa: E402

DATA = os.environ.get("SCIML_SHARED_DATA",
                      str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))


# ---------------------------------------------------------------------------------------------------- data
def load_tu(name: str, root: str) -> list:
    """All graphs of a TU collection, through our converter -> sciml-h5 -> GraphDataset."""
    from sciml.datasets.reader import GraphDataset
    from sciml.datasets.sources.tudataset import convert_tudataset
    from sciml.datasets.writer import write_spec

    folder = Path(root) / "tudataset" / name
    if not folder.exists():
        raise SystemExit(f"{folder} not found (set SCIML_SHARED_DATA or --data-root)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.h5"
        write_spec(path, convert_tudataset(folder))
        ds = GraphDataset(path, "train")
        graphs = [ds[i] for i in range(len(ds))]
        ds.close()
    return graphs


def stratified_folds(y: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """``k`` disjoint test folds; each class is shuffled and dealt round-robin over the folds."""
    g = torch.Generator().manual_seed(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).view(-1)
        members = members[torch.randperm(len(members), generator=g)]
        for j, i in enumerate(members.tolist()):
            folds[(start + j) % k].append(i)
        start += len(members)
    return [torch.tensor(sorted(f)) for f in folds]


def stratified_holdout(ids: torch.Tensor, y: torch.Tensor, frac: float, seed: int):
    """Split ``ids`` into (train, val) with about ``frac`` of each class in val."""
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(y[ids]).tolist():
        members = ids[y[ids] == c]
        members = members[torch.randperm(len(members), generator=g)]
        n_val = max(1, round(frac * len(members)))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def make_batch(graphs: list, ids: torch.Tensor):
    from torch_geometric.data import Batch

    return Batch.from_data_list([graphs[i] for i in ids.tolist()])


# ---------------------------------------------------------------------------------------------------- model
class GraphClassifier(nn.Module):
    """AggrConv x L (ReLU, batch norm) -> per-layer sum pooling, concatenated -> MLP."""

    def __init__(self, in_channels: int, num_classes: int, aggr: str, *, hidden: int = 32, layers: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        aggr_kwargs = {"shuffle": True} if aggr in ("gru", "lcm") else None
        sizes = [in_channels] + [hidden] * layers
        self.convs = nn.ModuleList(AggrConv(a, b, aggr, aggr_kwargs=aggr_kwargs) for a, b in zip(sizes, sizes[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(hidden * layers, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, graph_ptr: torch.Tensor) -> torch.Tensor:
        pooled = []
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x, edge_index).relu())
            pooled.append(segment_reduce(x, graph_ptr, "sum", validate=False))
        return self.head(torch.cat(pooled, dim=1))


def evaluate(model, batches) -> tuple[float, float]:
    model.eval()
    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for b in batches:
            out = model(b.x, b.edge_index, b.ptr)
            loss += float(F.cross_entropy(out, b.y, reduction="sum"))
            correct += int((out.argmax(1) == b.y).sum())
            total += b.y.numel()
    return correct / total, loss / total


def run_fold(aggr: str, fold: int, graphs, y, folds, cfg) -> dict:
    test_ids = folds[fold]
    rest = torch.tensor(sorted(set(range(len(graphs))) - set(test_ids.tolist())))
    train_ids, val_ids = stratified_holdout(rest, y, 0.1, seed=cfg["split_seed"] + 1000 + fold)
    val_batches = [make_batch(graphs, val_ids[i:i + 256]) for i in range(0, len(val_ids), 256)]
    test_batches = [make_batch(graphs, test_ids[i:i + 256]) for i in range(0, len(test_ids), 256)]
    torch.manual_seed(fold)
    model = GraphClassifier(graphs[0].x.size(1), int(y.max()) + 1, aggr, hidden=cfg["hidden"],
                            layers=cfg["layers"], dropout=cfg["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg["epochs"] // 2), gamma=0.5)
    gen = torch.Generator().manual_seed(fold)
    best = (-1.0, float("inf"))
    rec: dict = {}
    t0 = time.perf_counter()
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        perm = train_ids[torch.randperm(len(train_ids), generator=gen)]
        for i in range(0, len(perm), cfg["batch"]):
            ids = perm[i:i + cfg["batch"]]
            if len(ids) < 2:  # batch norm needs 2 graphs' worth of statistics; drop a last singleton
                continue
            b = make_batch(graphs, ids)
            loss = F.cross_entropy(model(b.x, b.edge_index, b.ptr), b.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        val_acc, val_loss = evaluate(model, val_batches)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            test_acc, _ = evaluate(model, test_batches)
            best = (val_acc, val_loss)
            rec = {"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss, "test_acc": test_acc}
    final_test, _ = evaluate(model, test_batches)
    return {"aggr": aggr, "fold": fold, "test_acc": rec["test_acc"], "selected_epoch": rec["epoch"],
            "val_acc": rec["val_acc"], "final_epoch_test_acc": final_test,
            "sizes": {"train": len(train_ids), "val": len(val_ids), "test": len(test_ids)},
            "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 2 folds, 2 epochs, 200 graphs")
    p.add_argument("--dataset", default="PROTEINS")
    p.add_argument("--data-root", default=DATA)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--folds", type=int, default=10, help="number of CV folds")
    p.add_argument("--run-folds", type=int, nargs="+", default=None, help="run only these folds (default: all)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--aggrs", nargs="+", default=["sum", "mean", "max", "gru", "lcm"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    graphs = load_tu(args.dataset, args.data_root)
    log(f"{args.dataset}: {len(graphs)} graphs read through sciml-h5 in {time.perf_counter() - t_load:.1f}s")
    if args.quick:
        g = torch.Generator().manual_seed(0)
        graphs = [graphs[i] for i in torch.randperm(len(graphs), generator=g)[:200].tolist()]
        args.epochs, args.folds = 2, 5
        args.run_folds = [0, 1]
    y = torch.cat([g.y.view(-1) for g in graphs])
    folds = stratified_folds(y, args.folds, args.split_seed)
    run_folds = args.run_folds if args.run_folds is not None else list(range(args.folds))
    out = args.out or str(RESULTS / (f"lcm_tu_{args.dataset.lower()}" + ("_quick" if args.quick else "") + ".json"))
    cfg = {"task": "graph_classification", "dataset": args.dataset, "num_graphs": len(graphs),
           "protocol": f"{args.folds}-fold stratified CV (split seed {args.split_seed}), 10% of each training part "
                       "held out (stratified) for validation, test accuracy at the epoch of best validation "
                       "accuracy (ties: lower validation loss)",
           "folds": args.folds, "split_seed": args.split_seed, "epochs": args.epochs, "hidden": args.hidden,
           "layers": args.layers, "dropout": args.dropout, "lr": args.lr,
           "lr_schedule": "x0.5 after half of the epochs",
           "batch": args.batch, "optimizer": "Adam", "aggrs": args.aggrs, "threads": args.threads,
           "model": "AggrConv x layers (ReLU, BatchNorm) -> per-layer sum pooling concat -> Linear-ReLU-Dropout-"
                    "Linear; gru/lcm with shuffle=True in training", "quick": args.quick,
           "data": f"tudataset/{args.dataset} via sciml.datasets.sources.tudataset -> sciml-h5 -> GraphDataset"}
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    log(f"{len(run_folds)} folds x {args.epochs} epochs, aggrs {args.aggrs}, {args.threads} thread(s) -> {out}")
    t_all = time.perf_counter()
    for fold in run_folds:
        for aggr in args.aggrs:
            key = f"{aggr}/fold{fold}"
            if results.done(key):
                log(f"{key}: done already, skipped")
                continue
            rec = run_fold(aggr, fold, graphs, y, folds, cfg)
            results.add(key, rec)
            log(f"{key}: test {rec['test_acc']:.3f} (epoch {rec['selected_epoch']}, val {rec['val_acc']:.3f}; "
                f"final-epoch test {rec['final_epoch_test_acc']:.3f}) in {rec['wall_s']:.0f}s")
    summary = {}
    for aggr in args.aggrs:
        runs = [results.data["runs"][f"{aggr}/fold{f}"] for f in range(args.folds)
                if results.done(f"{aggr}/fold{f}")]
        if runs:
            summary[aggr] = {"test_acc": mean_std([r["test_acc"] for r in runs]),
                             "final_epoch_test_acc": mean_std([r["final_epoch_test_acc"] for r in runs]),
                             "wall_s_per_fold": mean_std([r["wall_s"] for r in runs]),
                             "complete": len(runs) == args.folds}
    results.set_summary(summary)
    for aggr, s in summary.items():
        log(f"{aggr:4s} test {100 * s['test_acc']['mean']:.1f} ± {100 * s['test_acc']['std']:.1f} "
            f"({s['test_acc']['n']} folds)")
    log(f"total {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    main()
