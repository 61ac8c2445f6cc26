"""Stable neural SDEs (LSDE, LNSDE, GSDE) against the naive neural SDE, GRU-Δt and a neural CDE on UEA sets with
0/30/50/70 % of the observations dropped (Oh, Lim, Kim, ICLR 2024, the ``torch-ists`` protocol of the official code).

Data: ``../shared/data/timeseries/ts/<NAME>`` (``--data-root``, ``--datasets``), read by our ``.ts`` parser
(:func:`sciml.operators.ode.load_uea`: train and test files pooled, variable lengths stretched as the code does).

Protocol per (seed, dataset, missing rate), the same for every model:
  * drop ``floor(L r)`` time points per sample (all channels), generator seeded with the seed;
  * stratified 70/15/15 split seeded with the seed; channel-wise normalisation from the observed training values;
  * control paths on the grid ``linspace(0, 1, L)``: Hermite cubic with backward differences of ``[t, x]`` for the
    SDEs, natural cubic of ``[t, x]`` for the neural CDE, natural cubic of ``[t, counts, x]`` for GRU-Δt (as the
    code assigns them);
  * Adam, lr ``1e-3 · batch / 16``, weight decay ``0.01 · lr``, StepLR(10, 0.5), up to ``--epochs`` epochs, early
    stopping on the validation loss (patience 10 after epoch 20), best weights restored; test accuracy and
    weighted F1 of the restored model (one SDE sample path, as the code).
Models: hidden ``--hidden`` (32), ``--layers`` (2) drift/vector-field layers, the code's stabilised forms
(``--form code``), torchsde Euler–Maruyama with ``dt = max(min Δt, 1e-3)``; the neural CDE with torchdiffeq's Euler
at the same step.

The paper's UEA tables (Table 4, the per-dataset appendix) were not recovered (reference notes: paper-tables §6),
so the JSON carries no paper column for these sets.

usage: python benchmarks/stable_sde_uea.py [--quick] [--datasets BasicMotions JapaneseVowels]
       [--rates 0 0.3 0.5 0.7] [--models lsde lnsde gsde sde gru_dt ncde] [--seeds 0 1 2] [--epochs 100]
       [--threads 1] [--out benchmarks/results/stable_sde_uea.json] [--fresh]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402

from sciml.operators.ode import (build_timeseries_model, control_coeffs, drop_observations,  # noqa: E402
                                 fit_classifier, load_uea, normalize_from_train, stratified_split)

DATA = os.environ.get("SCIML_SHARED_DATA",
                      str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
MODELS = ["lsde", "lnsde", "gsde", "sde", "gru_dt", "ncde"]


def prepare(ds, rate: float, seed: int, limit: int | None = None):
    """Drops, split, normalisation for one (dataset, rate, seed); control coefficients built lazily per kind."""
    values, y = ds.values, ds.y
    if limit is not None and limit < len(y):
        g = torch.Generator().manual_seed(0)
        keep = torch.randperm(len(y), generator=g)[:limit].sort().values
        values, y = values[keep], y[keep]
    x = drop_observations(values, rate, seed)
    splits = stratified_split(y, seed)
    x = normalize_from_train(x, splits[0])
    cache: dict = {}

    def coeffs(model):
        key = (model.interpolation, model.intensity)
        if key not in cache:
            cache[key] = control_coeffs(x, interpolation=model.interpolation, intensity=model.intensity)
        return cache[key]

    return y, splits, coeffs


def run_one(name: str, ds, y, splits, coeffs_of, seed: int, cfg: dict) -> dict:
    torch.manual_seed(seed)
    extra = {"num_layers": cfg["layers"]} if name != "gru_dt" else {}  # GRU-Δt is one GRU cell
    if name in ("sde", "lsde", "lnsde", "gsde"):
        extra["form"] = cfg["form"]
    model = build_timeseries_model(name, ds.values.shape[-1], ds.num_classes, hidden=cfg["hidden"], **extra)
    t0 = time.perf_counter()
    coeffs = coeffs_of(model)
    res = fit_classifier(model, coeffs, y, splits, epochs=cfg["epochs"], seed=seed, num_classes=ds.num_classes)
    return {"model": name, "seed": seed, "test_acc": res["test_acc"], "test_f1": res["test_f1"],
            "val_acc": res["val_acc"], "val_loss": res["val_loss"], "epochs": res["epochs"],
            "stop_reason": res["stop_reason"], "batch_size": res["batch_size"], "lr": res["lr"],
            "train_s": round(res["train_s"], 2), "wall_s": round(time.perf_counter() - t0, 2),
            "sizes": {"train": len(splits[0]), "val": len(splits[1]), "test": len(splits[2])},
            "params": sum(p.numel() for p in model.parameters())}


def summarize(results: ResultFile, cfg: dict) -> dict:
    runs = results.data["runs"]
    out: dict = {}
    for d in cfg["datasets"]:
        for r in cfg["rates"]:
            for m in cfg["models"]:
                rec = [runs[k] for s in cfg["seeds"]
                       if (k := f"{d}/{r}/{m}/seed{s}") in runs and "error" not in runs[k]]
                if rec:
                    out.setdefault(d, {}).setdefault(str(r), {})[m] = {
                        "test_acc": mean_std([x["test_acc"] for x in rec]),
                        "test_f1": mean_std([x["test_f1"] for x in rec]),
                        "wall_s": mean_std([x["wall_s"] for x in rec]),
                        "epochs": mean_std([float(x["epochs"]) for x in rec]),
                        "complete": len(rec) == len(cfg["seeds"])}
    return out


def table(summary: dict, cfg: dict) -> str:
    """Markdown: accuracy (%) mean ± std per dataset and rate, one column per model."""
    lines = ["| dataset | missing | " + " | ".join(cfg["models"]) + " |",
             "|---|---|" + "---|" * len(cfg["models"])]
    for d, by_rate in summary.items():
        for r, by_model in by_rate.items():
            cells = []
            for m in cfg["models"]:
                s = by_model.get(m)
                cells.append("—" if s is None else f"{100 * s['test_acc']['mean']:.1f} ± "
                             f"{100 * s['test_acc']['std']:.1f}" + ("" if s["complete"] else "*"))
            lines.append(f"| {d} | {int(round(100 * float(r)))} % | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 40 samples, 2 epochs, 2 rates, 3 models, 1 seed")
    p.add_argument("--datasets", nargs="+", default=["BasicMotions", "JapaneseVowels"])
    p.add_argument("--data-root", default=DATA)
    p.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--form", choices=["code", "paper"], default="code")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    limit = None
    if args.quick:
        args.datasets, args.rates, args.seeds, args.epochs = args.datasets[:1], [0.0, 0.5], [0], 2
        args.models = [m for m in args.models if m in ("lsde", "gru_dt", "ncde")] or args.models[:1]
        limit = 40
    out = args.out or str(RESULTS / ("stable_sde_uea" + ("_quick" if args.quick else "") + ".json"))
    cfg = {"task": "irregular time-series classification (UEA), missing-rate sweep",
           "datasets": args.datasets, "rates": args.rates, "models": args.models, "seeds": args.seeds,
           "epochs": args.epochs, "hidden": args.hidden, "layers": args.layers, "form": args.form,
           "threads": args.threads, "quick": args.quick, "limit": limit,
           "protocol": "drop floor(L r) time points per sample (seeded), stratified 70/15/15 split (seeded), "
                       "train-only channel normalisation, Adam lr 1e-3*bs/16 wd 0.01*lr, StepLR(10, 0.5), early "
                       "stopping on val loss (patience 10 after epoch 20), best weights; test acc and weighted F1",
           "solver": "torchsde sdeint euler, dt = max(min dt, 1e-3); NCDE torchdiffeq euler at the same step",
           "paper": "Oh, Lim, Kim ICLR 2024 UEA tables not recovered (reference/paper-tables.md section 6)"}
    results = ResultFile(out, cfg, fresh=args.fresh or args.quick)
    datasets = {}
    for name in args.datasets:
        folder = Path(args.data_root) / "timeseries" / "ts" / name
        if not folder.exists():
            raise SystemExit(f"{folder} not found (set SCIML_SHARED_DATA or --data-root)")
        datasets[name] = load_uea(folder, name)
        ds = datasets[name]
        log(f"{name}: {tuple(ds.values.shape)} (N, L, D), {ds.num_classes} classes")
    t_all = time.perf_counter()
    for seed in args.seeds:
        for name, ds in datasets.items():
            for rate in args.rates:
                todo = [m for m in args.models if not results.done(f"{name}/{rate}/{m}/seed{seed}")]
                if not todo:
                    continue
                y, splits, coeffs_of = prepare(ds, rate, seed, limit)
                for m in todo:
                    key = f"{name}/{rate}/{m}/seed{seed}"
                    try:
                        rec = run_one(m, ds, y, splits, coeffs_of, seed, cfg)
                    except Exception as err:  # a diverged run is a result too; keep the sweep going
                        results.add(key, {"model": m, "seed": seed, "error": f"{type(err).__name__}: {err}"})
                        log(f"{key}: FAILED {type(err).__name__}: {err}")
                        continue
                    results.add(key, rec)
                    log(f"{key}: test acc {rec['test_acc']:.3f} f1 {rec['test_f1']:.3f} ({rec['epochs']} epochs, "
                        f"{rec['wall_s']:.1f}s)")
                results.set_summary(summarize(results, cfg))
    summary = summarize(results, cfg)
    results.set_summary(summary)
    print(table(summary, cfg))
    log(f"total {time.perf_counter() - t_all:.0f}s")


if __name__ == "__main__":
    main()
