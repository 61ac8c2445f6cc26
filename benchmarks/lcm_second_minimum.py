"""The second-minimum task of Ong & Veličković (LoG 2022), on a reduced CPU budget: sum, mean, max, GRU and LCM
aggregation compared on length generalisation.

Task (reference/gnn.md §3.3): a sample is a multiset of 8-bit integers, each given as its bit vector; the model
embeds each element (one learned embedding per bit value and bit position, summed, then Linear -> Dropout ->
GELU), aggregates the multiset with the aggregator under test, and decodes (Linear -> Dropout -> GELU -> Linear)
8 logits: the bits of the second-smallest element (counted with multiplicity). Loss: binary cross-entropy over the
bits; metric: exact-match accuracy (all 8 bits right). Training multisets have 2..16 elements; the test multisets
have 32 (longer than any seen in training); an in-distribution validation set (2..16) is reported too.

Budget: the PyG example trains on 2**16 multisets for 1000 epochs (Adam 1e-4, embedding 128): ~5e8 samples, out of
reach on a shared 2-core CPU. The default here: 2**15 training multisets, 60 epochs of batch 128 (15,360 steps),
Adam with lr 1e-3 (a larger step for the smaller budget) on a cosine schedule to 0, embedding 64, 3 seeds; the
numbers are the final-epoch test accuracy (no selection on the test set). Every setting is stored in the JSON.

usage: python benchmarks/lcm_second_minimum.py [--quick] [--epochs 60] [--train-size 32768] [--seeds 0 1 2]
       [--aggrs sum mean max gru lcm] [--threads 1] [--out benchmarks/results/lcm_second_minimum.json] [--fresh]
Progress lines go to stdout; the JSON is rewritten after every finished run, and a rerun skips finished runs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
import time

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.gnn.aggregation import aggregation_from_name  # noqa: E402

NUM_BITS = 8


# ---------------------------------------------------------------------------------------------------- data
def make_multisets(num: int, min_size: int, max_size: int, *, seed: int) -> dict[str, torch.Tensor]:
    """``num`` multisets of uniform 8-bit integers with sizes uniform in ``[min_size, max_size]``: bits ``[E, 8]``
    (most significant first), ``ptr [num + 1]``, target bits ``y [num, 8]`` of the second smallest element."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(min_size, max_size + 1, (num,), generator=g)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    values = torch.randint(0, 2 ** NUM_BITS, (int(ptr[-1]),), generator=g)
    seg = torch.repeat_interleave(torch.arange(num), sizes)
    # second smallest per set: sort by (set, value), take position ptr[s] + 1
    order = torch.argsort(seg * 2 ** NUM_BITS + values)
    second = values[order][ptr[:-1] + 1]
    shifts = torch.arange(NUM_BITS - 1, -1, -1)
    return {"bits": (values[:, None] >> shifts) & 1, "ptr": ptr, "y": ((second[:, None] >> shifts) & 1).float(),
            "values": values, "sizes": sizes}


def batch_of(data: dict[str, torch.Tensor], ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bits of the elements of the sets ``ids`` (grouped), their pointer, and the targets."""
    ptr = data["ptr"]
    sizes = ptr[ids + 1] - ptr[ids]
    bptr = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    within = torch.arange(int(bptr[-1])) - torch.repeat_interleave(bptr[:-1], sizes)
    rows = torch.repeat_interleave(ptr[ids], sizes) + within
    return data["bits"][rows], bptr, data["y"][ids]


# ---------------------------------------------------------------------------------------------------- model
class SetModel(nn.Module):
    """Bit embeddings -> element MLP -> aggregator -> decoder MLP -> 8 logits."""

    def __init__(self, aggr: str, emb: int, dropout: float) -> None:
        super().__init__()
        self.bit_emb = nn.Parameter(torch.randn(NUM_BITS, 2, emb))
        self.enc = nn.Sequential(nn.Linear(emb, emb), nn.Dropout(dropout), nn.GELU())
        self.aggr = aggregation_from_name(aggr, emb, emb)
        self.dec = nn.Sequential(nn.Linear(emb, emb), nn.Dropout(dropout), nn.GELU(), nn.Linear(emb, NUM_BITS))

    def forward(self, bits: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
        h = self.bit_emb[torch.arange(NUM_BITS), bits].sum(1)  # [E, emb]: one embedding per (position, bit)
        return self.dec(self.aggr(self.enc(h), ptr=ptr))


@torch.no_grad()
def exact_match(model: SetModel, data: dict[str, torch.Tensor], batch: int = 512) -> float:
    model.eval()
    n, correct = data["y"].size(0), 0
    for start in range(0, n, batch):
        ids = torch.arange(start, min(start + batch, n))
        bits, ptr, y = batch_of(data, ids)
        pred = (model(bits, ptr) > 0).float()
        correct += int((pred == y).all(1).sum())
    return correct / n


def run_one(aggr: str, seed: int, cfg: dict, train, val, test) -> dict:
    torch.manual_seed(seed)
    model = SetModel(aggr, cfg["emb"], cfg["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    steps_per_epoch = -(-train["y"].size(0) // cfg["batch"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"] * steps_per_epoch)
    gen = torch.Generator().manual_seed(10_000 + seed)
    n = train["y"].size(0)
    curve, t0 = [], time.perf_counter()
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, cfg["batch"]):
            bits, ptr, y = batch_of(train, perm[start:start + cfg["batch"]])
            loss = F.binary_cross_entropy_with_logits(model(bits, ptr), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * y.size(0)
        if epoch % cfg["eval_every"] == 0 or epoch == cfg["epochs"]:
            va, te = exact_match(model, val), exact_match(model, test)
            curve.append({"epoch": epoch, "train_loss": total / n, "val_acc": va, "test32_acc": te,
                          "elapsed_s": round(time.perf_counter() - t0, 1)})
            log(f"  {aggr:4s} seed {seed} epoch {epoch:3d}/{cfg['epochs']} loss {total / n:.4f} "
                f"val(2-16) {va:.3f} test(32) {te:.3f} [{time.perf_counter() - t0:.0f}s]")
    return {"aggr": aggr, "seed": seed, "test32_acc": curve[-1]["test32_acc"], "val_acc": curve[-1]["val_acc"],
            "train_loss": curve[-1]["train_loss"], "curve": curve, "wall_s": round(time.perf_counter() - t0, 1),
            "num_parameters": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny data, 2 epochs, 1 seed")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--train-size", type=int, default=2 ** 15)
    p.add_argument("--emb", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--aggrs", nargs="+", default=["sum", "mean", "max", "gru", "lcm"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true", help="overwrite a result file of another config")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.epochs, args.train_size, args.seeds, args.eval_every = 2, 512, args.seeds[:1], 1
    out = args.out or str(RESULTS / ("lcm_second_minimum" + ("_quick" if args.quick else "") + ".json"))
    cfg = {"task": "second_minimum", "num_bits": NUM_BITS, "train_size": args.train_size, "train_set_sizes": [2, 16],
           "val_size": 1024, "val_set_sizes": [2, 16], "test_size": 1024, "test_set_size": 32,
           "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "optimizer": "Adam",
           "schedule": "cosine to 0 over all steps",
           "emb": args.emb,
           "dropout": args.dropout, "eval_every": args.eval_every, "seeds": args.seeds, "aggrs": args.aggrs,
           "threads": args.threads, "data_seed": 12345, "quick": args.quick,
           "aggregator_options": {"gru": "GRUAggregation(emb, emb), shuffle=True",
                                  "lcm": "LCMAggregation(emb, emb, project=False), shuffle=False"},
           "metric": "exact-match accuracy (all 8 bits) of the final epoch"}
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    train = make_multisets(args.train_size, 2, 16, seed=12345)
    val = make_multisets(1024, 2, 16, seed=12346)
    test = make_multisets(1024, 32, 32, seed=12347)
    log(f"second minimum: {args.train_size} train sets, {args.epochs} epochs, aggrs {args.aggrs}, seeds "
        f"{args.seeds}, {args.threads} thread(s) -> {out}")
    t_all = time.perf_counter()
    for seed in args.seeds:
        for aggr in args.aggrs:
            key = f"{aggr}/seed{seed}"
            if results.done(key):
                log(f"{key}: done already, skipped")
                continue
            log(f"{key}: start")
            rec = run_one(aggr, seed, cfg, train, val, test)
            results.add(key, rec)
            log(f"{key}: test(32) {rec['test32_acc']:.3f} val(2-16) {rec['val_acc']:.3f} in {rec['wall_s']:.0f}s")
    summary = {}
    for aggr in args.aggrs:
        runs = [results.data["runs"][f"{aggr}/seed{s}"] for s in args.seeds if results.done(f"{aggr}/seed{s}")]
        if runs:
            summary[aggr] = {"test32_acc": mean_std([r["test32_acc"] for r in runs]),
                             "val_acc": mean_std([r["val_acc"] for r in runs]),
                             "wall_s_per_run": mean_std([r["wall_s"] for r in runs])}
    results.set_summary(summary)
    for aggr, s in summary.items():
        log(f"{aggr:4s} test(32) {s['test32_acc']['mean']:.3f} ± {s['test32_acc']['std']:.3f}   "
            f"val(2-16) {s['val_acc']['mean']:.3f} ± {s['val_acc']['std']:.3f}")
    log(f"total {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    main()
