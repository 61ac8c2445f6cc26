"""Time-dependent PDEs: SineNet with K = 1, 2, 4 waves at a fixed parameter count vs the PDEArena U-Net vs FNO, plus
SineNet's ablations (tangled downsampling, the other padding), one-step teacher-forcing training, autoregressive
rollout evaluation in physical units.

Data (our generators -> sciml-h5 -> ``FieldDataset``):

* ``ns_torus``: 2D Navier--Stokes vorticity on the unit torus (FNO's recipe: GRF initial vorticity, forcing
  0.1(sin 2π(x+y) + cos 2π(x+y)), ν = 1e-3), solved pseudo-spectrally at 64² (dt 2e-3), saved at 32² every time
  unit, 14 frames: periodic, so **circular padding** is the right one.
* ``dr_box``: PDEBench's 2D diffusion--reaction (FitzHugh--Nagumo, fields u and v) in the box [-1, 1]² with
  no-flux walls, 32² cells, 14 frames over t ∈ [0, 5]: a bounded domain, **zero padding** (the paper's choice
  for its closed-box INS data).

Protocol (SineNet/PDEArena, shortened for the CPU): time history 4 frames, per-field normalisation fitted on the
training trajectories, every (trajectory, start) window as a teacher-forcing sample, the "scaled L2" loss
(relative L2 per sample and field, in normalised units), AdamW (lr ``--lr``, weight decay 1e-5) with a cosine
schedule, batch 16, ``--epochs`` epochs, the weights of the best validation loss; test metrics in physical units:
the one-step relative L2 over all windows and the rollout relative L2 over 10 autoregressive steps from the first 4
frames (averaged over steps and fields), in %. SineNet: C0 = ``--hidden``, ``--levels`` levels (3 at 32²: the
paper's 4 levels serve 128² grids), the multiplier of each K solved to the parameter budget of ``--budget``;
U-Net and FNO widths searched to the same budget.

Paper sizes on a GPU: ``--resolution 128 --ntrain 5200 --nval 1300 --ntest 1300 --budget 35490219 --hidden 64
--levels 4 --epochs 50 --lr 2e-4 --unet-mults 1 2 2 4 --fno-modes 32`` (generate the data with ``device=cuda`` first).

usage: python benchmarks/operators_timedep.py [--quick] [--datasets ns_torus dr_box] [--runs ...] [--seeds 0]
       [--epochs 8] [--threads 1] [--out benchmarks/results/operators_timedep.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, log, mean_std  # noqa: E402
from _operators import (DOCS, count, default_cache, fields_from_h5, figure, fno_backend, fno_for_budget,  # noqa: E402
                        generate, real_params, set_threads, timed_fit, unet_for_budget, without_unavailable)

from sciml.operators.field_tasks import (FieldNormalizer, OneStepTask, rollout, rollout_error,  # noqa: E402
                                         teacher_forcing_pairs)
from sciml.operators.sinenet import SineNet, sinenet_multiplier  # noqa: E402
from sciml.train import EarlyStopping, Trainer  # noqa: E402

TIME_HISTORY = 4
#: dataset -> (right padding, generator, options)
DATASETS = {
    "ns_torus": ("circular", "navier_stokes",
                 dict(viscosity=1e-3, resolution=32, solver_resolution=64, dt=2e-3, save_every=500, final_time=13.0)),
    "dr_box": ("zeros", "diffusion_reaction", dict(resolution=32, final_time=5.0, num_frames=14)),
}
#: run name -> (model, options); "right"/"wrong" padding is resolved per dataset
RUNS = {
    "sinenet1": ("sinenet", dict(num_waves=1)),
    "sinenet2": ("sinenet", dict(num_waves=2)),
    "sinenet4": ("sinenet", dict(num_waves=4)),
    "sinenet2_tangled": ("sinenet", dict(num_waves=2, disentangle=False)),
    "sinenet2_wrongpad": ("sinenet", dict(num_waves=2, wrong_padding=True)),
    "unet": ("unet", {}),
    "fno": ("fno", {}),
}


def load(name: str, args) -> dict[str, torch.Tensor]:
    padding, gen, opts = DATASETS[name]
    opts = dict(opts)
    if args.resolution:
        opts["resolution"] = args.resolution
        if gen == "navier_stokes":
            opts["solver_resolution"] = 2 * args.resolution
    ntr, nva, nte = (4, 2, 2) if args.quick else (args.ntrain, args.nval, args.ntest)
    path = generate(gen, Path(args.cache), num_train=ntr, num_val=nva, num_test=nte, seed=0, **opts)
    names = ("w",) if gen == "navier_stokes" else ("u", "v")
    out = {}
    for split in ("train", "val", "test"):
        d = fields_from_h5(path, split, names)
        out[split] = torch.cat([d[n] for n in names], dim=2)  # [N, T, C, H, W]
    return out


def build(run: str, channels: int, padding: str, args) -> tuple[torch.nn.Module, dict]:
    kind, opts = RUNS[run]
    opts = dict(opts)
    cin = TIME_HISTORY * channels
    if kind == "sinenet":
        wrong = opts.pop("wrong_padding", False)
        pad = ({"circular": "zeros", "zeros": "circular"}[padding]) if wrong else padding
        k = opts.pop("num_waves")
        m = sinenet_multiplier(args.budget, k, cin, channels, hidden_channels=args.hidden, num_levels=args.levels,
                               **opts)
        model = SineNet(cin, channels, hidden_channels=args.hidden, num_waves=k, multiplier=m,
                        num_levels=args.levels, padding_mode=pad, **opts)
        return model, {"num_waves": k, "multiplier": m, "padding": pad, **opts}
    if kind == "unet":
        model, hidden = unet_for_budget(args.budget, cin, channels, padding_mode=padding, ch_mults=tuple(args.unet_mults))
        return model, {"hidden": hidden, "ch_mults": list(args.unet_mults), "padding": padding}
    model, width = fno_for_budget(args.budget, cin, channels, args.fno_modes)
    return model, {"width": width, "modes": args.fno_modes, "backend": fno_backend()}


def timedep_setup(data: dict) -> tuple[TensorDataset, TensorDataset, OneStepTask, FieldNormalizer]:
    """The benchmark's data and task (SineNet's protocol): a per-field normaliser fitted on the training
    trajectories, every window of the normalised trajectories as a teacher-forcing pair, the one-step task.
    Returns ``(train, val, task, normalizer)``; ``configs/sinenet_*.yaml`` (``field_trajectories`` +
    ``one_step``) build the same (a test)."""
    norm = FieldNormalizer.fit(data["train"])
    train = teacher_forcing_pairs(norm.encode(data["train"]), TIME_HISTORY)
    val = teacher_forcing_pairs(norm.encode(data["val"]), TIME_HISTORY)
    return train, val, OneStepTask(norm), norm


def run_one(ds: str, data: dict, run: str, seed: int, args) -> tuple[dict, torch.nn.Module, FieldNormalizer]:
    torch.manual_seed(seed)
    padding = DATASETS[ds][0]
    train, val, task, norm = timedep_setup(data)
    channels = data["train"].shape[2]
    model, info = build(run, channels, padding, args)
    enc = norm.encode
    trainer = Trainer(model, task, train_data=train, val_data=val, batch_size=16, val_batch_size=64,
                      max_epochs=args.epochs, optimizer="adamw", lr=args.lr, weight_decay=1e-5, scheduler="cosine",
                      early_stopping=EarlyStopping(monitor="val_loss", patience=10 ** 6, restore_best=True),
                      seed=seed, progress="none", log_every=10 ** 6, handle_signals=False,
                      check_finite=real_params(model))
    summary, fit_s = timed_fit(trainer)
    test_pairs = teacher_forcing_pairs(enc(data["test"]), TIME_HISTORY)
    one = trainer.evaluate(test_pairs)
    steps = min(10, data["test"].shape[1] - TIME_HISTORY)
    ro = rollout_error(model, data["test"], TIME_HISTORY, norm, num_steps=steps)
    rec = {"dataset": ds, "run": run, "seed": seed, "params": count(model), **info, "epochs": summary["epochs"],
           "fit_s": fit_s, "time_per_epoch_s": fit_s / max(1, summary["epochs"]),
           "train_samples": len(train), "one_step_pct": 100 * one["phys_rel_l2"],
           "rollout_pct": 100 * ro["rollout_rel_l2"], "rollout_per_step_pct": [100 * v for v in ro["per_step"]],
           "rollout_steps": steps}
    return rec, model, norm


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: 4 trajectories, 1 epoch, tiny budget")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--runs", nargs="+", default=list(RUNS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--ntrain", type=int, default=64)
    p.add_argument("--nval", type=int, default=8)
    p.add_argument("--ntest", type=int, default=16)
    p.add_argument("--resolution", type=int, default=0, help="grid (default: 32; NS solved at twice that)")
    p.add_argument("--budget", type=int, default=60_000, help="parameter budget of every model")
    p.add_argument("--hidden", type=int, default=8, help="SineNet C0")
    p.add_argument("--levels", type=int, default=3, help="SineNet levels per wave")
    p.add_argument("--unet-mults", type=int, nargs="+", default=[1, 2, 2],
                   help="U-Net channel multipliers (PDEArena: 1 2 2 4; fewer levels keep width at small budgets)")
    p.add_argument("--fno-modes", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--cache", default=str(default_cache()))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--figures", default=str(DOCS), help="folder for the PNGs ('' for none)")
    p.add_argument("--out", default=str(RESULTS / "operators_timedep.json"))
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    set_threads(args.threads)
    args.runs = without_unavailable(args.runs)
    if args.quick:
        args.epochs, args.budget, args.hidden, args.figures = 1, 8_000, 4, ""
        args.levels = 2
    config = {k: v for k, v in vars(args).items() if k not in ("out", "fresh", "threads", "cache", "figures",
                                                                 "seeds")}  # runs are keyed by seed: more seeds extend a file
    config["fno_backend"] = fno_backend()
    rf = ResultFile(args.out, config, fresh=args.fresh)
    for ds in args.datasets:
        t0 = time.perf_counter()
        data = load(ds, args)
        log(f"{ds}: train {tuple(data['train'].shape)} ({time.perf_counter() - t0:.1f} s)")
        shown = {}
        for seed in args.seeds:
            for run in args.runs:
                key = f"{ds}/{run}/seed{seed}"
                if rf.done(key):
                    continue
                rec, model, norm = run_one(ds, data, run, seed, args)
                rf.add(key, rec)
                log(f"{key}: {rec['params']:,} params, {rec['time_per_epoch_s']:.1f} s/epoch, one-step "
                    f"{rec['one_step_pct']:.2f}%, rollout {rec['rollout_pct']:.2f}%")
                if seed == args.seeds[0] and run in ("sinenet4", "unet", "fno"):
                    traj = data["test"][:1]
                    pred = norm.decode(rollout(model.eval(), norm.encode(traj[:, :TIME_HISTORY]), 10 if
                                               traj.shape[1] >= TIME_HISTORY + 10 else 1))
                    shown[run] = pred[0, -1, 0]
        if args.figures and shown:
            traj = data["test"][0]
            last = min(TIME_HISTORY + 10, traj.shape[0]) - 1
            items = [("input (last history frame)", traj[TIME_HISTORY - 1, 0]), (f"truth, frame {last}", traj[last, 0])]
            for r, pr in shown.items():
                items += [(f"{r} rollout", pr), (f"{r} error", pr - traj[last, 0])]
            figure(Path(args.figures) / f"operators_timedep_{ds}.png",
                   f"{ds}: test trajectory 0, field 0, after a 10-step rollout", items, ncols=4)
    summary = {}
    for rec in rf.data["runs"].values():
        summary.setdefault(f"{rec['dataset']}/{rec['run']}", []).append(rec)
    out = {}
    for group, runs in summary.items():
        out[group] = {"params": runs[0]["params"],
                      **{m: mean_std([r[m] for r in runs]) for m in ("one_step_pct", "rollout_pct",
                                                                      "time_per_epoch_s")}}
    rf.set_summary(out)
    for group, s in out.items():
        log(f"{group:>26}: {s['params']:>7,} params  one-step {s['one_step_pct']['mean']:.2f}%  rollout "
            f"{s['rollout_pct']['mean']:.2f}%  ({s['time_per_epoch_s']['mean']:.1f} s/epoch)")


if __name__ == "__main__":
    main()
