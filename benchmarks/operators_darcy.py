"""Darcy flow: MgNO vs FNO vs the PDEArena U-Net at matched parameter counts, in the same run.

Data (all through the project's pipeline: converter or generator -> sciml-h5 -> ``FieldDataset``):

* ``real16``: neuraloperator's real Darcy files in ``../shared/data/pde/neuraloperator`` (FNO's piecewise-constant
  coefficients, downsampled): ``darcy_train_16.pt`` (the first ``--ntrain`` for training, the last 100 for
  validation), ``darcy_test_16.pt`` (50) for the test; the models trained at 16² are also evaluated zero-shot on
  ``darcy_test_32.pt`` (50 at 32²).
* ``real32``: training *at* 32² on the only real 32² file, ``darcy_test_32.pt`` (50 samples): the first 30 for
  training, the next 10 for validation, the last 10 for the test (a small-data protocol; its errors are those of
  30 training samples, not comparable with real16's 500). ``darcy_test_16.pt`` is the same 50 samples at every other
  node, so real16's ``test32`` column is the resolution transfer 16² -> 32² and real32's ``test16`` (the 10 test
  samples at 16²) the transfer 32² -> 16².
* ``gen64`` / ``gen128``: our solver (``sciml data generate darcy``: FNO's recipe, 5-point harmonic-mean finite
  differences, u = 0 on the walls) at 64² / 128² nodes.

Protocol (MgNO's Darcy recipe, shortened for the CPU): inputs and outputs normalised by one scalar mean/std
(MgNO's ``GN``), the models predict normalised ``u`` and the loss is the relative H1 (spectral, ``a = 1``,
truncation 20) of the decoded prediction; Adam (lr ``--lr``, L2 weight decay 1e-4), OneCycle (``div_factor=2``,
``final_div_factor=100``, ``pct_start=0.2``, stepped per epoch), batch 8; the test errors are read with the
weights of the best validation relative L2 (restored). MgNO: zero padding, ``--mgno-hidden`` channels, 4 layers,
levels down to a 2x2 (16²: 4 levels; 64²: 6; 128²: 6), one pre-smoothing step per level and 2 on the coarsest.
FNO and U-Net widths are searched to match MgNO's parameter count. Reported per (dataset, model, seed): parameters,
wall time per epoch (1 thread), test relative L2 and H1 (×10⁻²), and a PNG of one test sample per dataset
(input, truth, predictions, errors) in docs/.

Paper sizes on a GPU: ``--datasets gen128 --mgno-hidden 24 --epochs 500 --ntrain 1000 --nval 100 --ntest 100
--lr 5e-4 --unet-mults 1 2 2 4`` (MgNO's Darcy model: 572,661 parameters; the paper's rough/multiscale sets are 256²).

usage: python benchmarks/operators_darcy.py [--quick] [--datasets real16 real32 gen64 gen128] [--models mgno fno unet]
       [--seeds 0 1 2] [--epochs 20] [--ntrain 1000] [--reduction mean] [--threads 1]
       [--out benchmarks/results/operators_darcy.json]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402
from _operators import (DATA, DOCS, convert_pt, count, default_cache, fields_from_h5, figure, fno_backend,  # noqa: E402
                        fno_for_budget, generate, real_params, set_threads, timed_fit, unet_for_budget, without_unavailable)

from sciml.operators.field_tasks import FieldNormalizer, FieldRegressionTask  # noqa: E402
from sciml.operators.losses import relative_h1, relative_l2  # noqa: E402
from sciml.operators.mgno import MgNO  # noqa: E402
from sciml.train import EarlyStopping, Trainer  # noqa: E402

#: real32: (train, val, test) samples of darcy_test_32.pt, in file order
REAL32_SPLIT = (30, 10, 10)
#: options added after results were recorded: left out of a result file's config at their defaults, so that the
#: earlier files still resume
LATER_OPTIONS = {"reduction": "mean"}


# ------------------------------------------------------------------------------------------------------ data
def load_dataset(name: str, args) -> dict:
    """``{"train": (a, u), "val": (a, u), "test": (a, u), "extra": {label: (a, u)}}`` with ``[N, 1, H, W]``."""
    cache = Path(args.cache)
    if name == "real16":
        root = Path(args.data_root) / "pde" / "neuraloperator"
        if not (root / "darcy_train_16.pt").exists():
            raise SystemExit(f"{root}/darcy_train_16.pt not found (set SCIML_SHARED_DATA or --data-root)")

        def read(fname: str):
            d = fields_from_h5(convert_pt(root / fname, cache), "train" if "train" in fname else "test", ("a", "u"))
            return d["a"][:, 0], d["u"][:, 0]

        a, u = read("darcy_train_16.pt")
        n_val = 100 if not args.quick else 16
        ntr = min(args.ntrain, len(a) - n_val)
        out = {"train": (a[:ntr], u[:ntr]), "val": (a[-n_val:], u[-n_val:]), "test": read("darcy_test_16.pt"),
               "extra": {"test32": read("darcy_test_32.pt")}}
        if args.quick:
            out["test"] = tuple(t[:8] for t in out["test"])
            out["extra"] = {k: tuple(t[:8] for t in v) for k, v in out["extra"].items()}
        return out
    if name == "real32":
        root = Path(args.data_root) / "pde" / "neuraloperator"
        if not (root / "darcy_test_32.pt").exists():
            raise SystemExit(f"{root}/darcy_test_32.pt not found (set SCIML_SHARED_DATA or --data-root)")
        d = fields_from_h5(convert_pt(root / "darcy_test_32.pt", cache), "test", ("a", "u"))
        a, u = d["a"][:, 0], d["u"][:, 0]
        ntr, nva, nte = REAL32_SPLIT
        if len(a) < ntr + nva + nte:
            raise SystemExit(f"darcy_test_32.pt has {len(a)} samples, the real32 split needs {ntr + nva + nte}")
        test = slice(ntr + nva, ntr + nva + nte)
        # darcy_test_16.pt holds the same 50 samples at every other node (a test checks it): the test samples at
        # 16² measure the resolution transfer 32² -> 16² of the models trained here
        d16 = fields_from_h5(convert_pt(root / "darcy_test_16.pt", cache), "test", ("a", "u"))
        return {"train": (a[:ntr], u[:ntr]), "val": (a[ntr:ntr + nva], u[ntr:ntr + nva]),
                "test": (a[test], u[test]), "extra": {"test16": (d16["a"][test, 0], d16["u"][test, 0])}}
    if name.startswith("gen"):
        res = int(name[3:])
        nval, ntest = (8, 8) if args.quick else (args.nval, args.ntest)
        path = generate("darcy", cache, num_train=args.ntrain, num_val=nval, num_test=ntest, resolution=res, seed=0)
        out = {}
        for split in ("train", "val", "test"):
            d = fields_from_h5(path, split, ("a", "u"))
            out[split] = (d["a"][:, 0], d["u"][:, 0])
        out["extra"] = {}
        return out
    raise SystemExit(f"unknown dataset {name!r}")


def mgno_levels(size: int, max_levels: int = 6) -> int:
    """Levels down to a 2x2 grid (at most ``max_levels``)."""
    return max(2, min(max_levels, int(math.log2(size))))


def build(model_name: str, size: int, args) -> tuple[torch.nn.Module, dict]:
    levels = mgno_levels(size)
    iters = [1] * (levels - 1) + [2]
    mgno = MgNO(1, 1, hidden_channels=args.mgno_hidden, num_layers=4, num_iterations=iters, padding_mode="zeros")
    budget = count(mgno)
    if model_name == "mgno":
        return mgno, {"levels": levels, "hidden": args.mgno_hidden}
    if model_name == "fno":
        modes = min(args.fno_modes, size // 2)
        model, width = fno_for_budget(budget, 1, 1, modes)
        return model, {"width": width, "modes": modes, "backend": fno_backend()}
    if model_name == "unet":
        model, hidden = unet_for_budget(budget, 1, 1, padding_mode="zeros", ch_mults=tuple(args.unet_mults))
        return model, {"hidden": hidden, "ch_mults": list(args.unet_mults)}
    raise SystemExit(f"unknown model {model_name!r}")


# ------------------------------------------------------------------------------------------------------ run
def darcy_setup(train: tuple, val: tuple, reduction: str = "mean"
                ) -> tuple[TensorDataset, TensorDataset, FieldRegressionTask, FieldNormalizer]:
    """The benchmark's data and task (MgNO's recipe with ``GN``): one scalar mean/std fitted on the training
    inputs and one on the training outputs; inputs encoded, targets in physical units, the task decoding the
    model's normalised predictions before the relative H1 loss. Returns ``(train, val, task, x_normalizer)``;
    ``configs/mgno_darcy.yaml`` (``field_pairs`` + ``field_regression``) builds the same (a test)."""
    (a_tr, u_tr), (a_va, u_va) = train, val
    xn = FieldNormalizer.fit(a_tr, per_channel=False)
    yn = FieldNormalizer.fit(u_tr, per_channel=False)
    task = FieldRegressionTask("h1", y_normalizer=yn, reduction=reduction)
    return TensorDataset(xn.encode(a_tr), u_tr), TensorDataset(xn.encode(a_va), u_va), task, xn


def run_one(ds_name: str, data: dict, model_name: str, seed: int, args) -> tuple[dict, torch.nn.Module, tuple]:
    torch.manual_seed(seed)
    (a_tr, u_tr), (a_te, u_te) = data["train"], data["test"]
    train, val, task, xn = darcy_setup(data["train"], data["val"], args.reduction)
    yn = task.y_normalizer
    size = a_tr.shape[-1]
    model, info = build(model_name, size, args)
    enc = xn.encode
    trainer = Trainer(model, task, train_data=train, val_data=val,
                      batch_size=8, val_batch_size=50, max_epochs=args.epochs, optimizer="adam", lr=args.lr,
                      weight_decay=1e-4, scheduler="onecycle", scheduler_interval="epoch",
                      scheduler_kwargs=dict(div_factor=2.0, final_div_factor=100.0, pct_start=0.2),
                      early_stopping=EarlyStopping(monitor="val_rel_l2", patience=10 ** 6, restore_best=True),
                      seed=seed, progress="none", log_every=10 ** 6, handle_signals=False,
                      check_finite=real_params(model))
    summary, fit_s = timed_fit(trainer)
    rec = {"dataset": ds_name, "model": model_name, "seed": seed, "params": count(model), **info,
           "train_samples": len(a_tr), "epochs": summary["epochs"], "fit_s": fit_s,
           "time_per_epoch_s": fit_s / max(1, summary["epochs"]),
           "best_val_rel_l2": summary["best"]["value"] if summary["best"] else None,
           "best_step": summary["best"]["step"] if summary["best"] else None}
    model.eval()
    with torch.no_grad():
        for label, (a, u) in [("test", (a_te, u_te)), *data["extra"].items()]:
            pred = yn.decode(model(enc(a)))
            rec[f"{label}_rel_l2_e2"] = 100 * float(relative_l2(pred, u))
            rec[f"{label}_rel_h1_e2"] = 100 * float(relative_h1(pred, u))
        sample = yn.decode(model(enc(a_te[:1])))[0, 0]
    return rec, model, (a_te[0, 0], u_te[0, 0], sample)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny data, 6 epochs, small models, no figure")
    p.add_argument("--datasets", nargs="+", default=["real16", "gen64"])
    p.add_argument("--models", nargs="+", default=["mgno", "fno", "unet"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--ntrain", type=int, default=1000, help="training samples (real16: at most 900)")
    p.add_argument("--nval", type=int, default=50)
    p.add_argument("--ntest", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--reduction", choices=["mean", "sum"], default="mean",
                   help="training loss over the batch (official MgNO: sum; the recorded runs: mean)")
    p.add_argument("--mgno-hidden", type=int, default=16)
    p.add_argument("--unet-mults", type=int, nargs="+", default=[1, 2, 2],
                   help="U-Net channel multipliers (PDEArena: 1 2 2 4; fewer levels keep width at small budgets)")
    p.add_argument("--fno-modes", type=int, default=12, help="Fourier modes per axis, original FNO count")
    p.add_argument("--data-root", default=DATA)
    p.add_argument("--cache", default=str(default_cache()))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--figures", default=str(DOCS), help="folder for the PNGs ('' for none)")
    p.add_argument("--out", default=str(RESULTS / "operators_darcy.json"))
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    set_threads(args.threads)
    args.models = without_unavailable(args.models)
    if args.quick:
        # 6 epochs: the OneCycle warm-up (pct_start 0.2, stepped per epoch) needs pct_start * epochs > 1
        args.epochs, args.ntrain, args.mgno_hidden, args.seeds, args.figures = 6, 16, 4, args.seeds[:1], ""
    config = {k: v for k, v in vars(args).items() if k not in ("out", "fresh", "threads", "cache", "data_root",
                                                                 "figures", "seeds")}
    config = {k: v for k, v in config.items() if not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}
    config["fno_backend"] = fno_backend()
    rf = ResultFile(args.out, config, fresh=args.fresh)
    for ds_name in args.datasets:
        t0 = time.perf_counter()
        data = load_dataset(ds_name, args)
        log(f"{ds_name}: train {tuple(data['train'][0].shape)}, val {len(data['val'][0])}, test "
            f"{len(data['test'][0])} ({time.perf_counter() - t0:.1f} s)")
        panels = {}
        for seed in args.seeds:
            for model_name in args.models:
                key = f"{ds_name}/{model_name}/seed{seed}"
                if rf.done(key):
                    continue
                rec, _, (a0, u0, pred0) = run_one(ds_name, data, model_name, seed, args)
                rf.add(key, rec)
                log(f"{key}: {rec['params']:,} params, {rec['time_per_epoch_s']:.1f} s/epoch, test L2 "
                    f"{rec['test_rel_l2_e2']:.2f}e-2, H1 {rec['test_rel_h1_e2']:.2f}e-2")
                if seed == args.seeds[0]:
                    panels[model_name] = (a0, u0, pred0)
        if args.figures and panels:
            a0, u0, _ = next(iter(panels.values()))
            items = [("input a", a0), ("truth u", u0)]
            for m, (_, _, pr) in panels.items():
                items += [(f"{m} prediction", pr), (f"{m} error", pr - u0)]
            figure(Path(args.figures) / f"operators_darcy_{ds_name}.png",
                   f"Darcy {ds_name}: test sample 0 (seed {args.seeds[0]}, {args.epochs} epochs)", items, ncols=4)
    summary = {}
    for key, rec in rf.data["runs"].items():
        group = f"{rec['dataset']}/{rec['model']}"
        s = summary.setdefault(group, {"params": rec["params"], "runs": []})
        s["runs"].append(rec)
    for group, s in summary.items():
        runs = s.pop("runs")
        for metric in [k for k in runs[0] if k.endswith("_e2")] + ["time_per_epoch_s"]:
            s[metric] = mean_std([r[metric] for r in runs])
    rf.set_summary(summary)
    for group, s in summary.items():
        log(f"{group:>16}: {s['params']:>8,} params  L2 {s['test_rel_l2_e2']['mean']:.2f}±"
            f"{s['test_rel_l2_e2']['std']:.2f}  H1 {s['test_rel_h1_e2']['mean']:.2f}±{s['test_rel_h1_e2']['std']:.2f}"
            f"  ({s['time_per_epoch_s']['mean']:.1f} s/epoch)")


if __name__ == "__main__":
    main()
