"""Training-step and inference time, and peak memory, of MgNO and SineNet against FNO and the PDEArena U-Net at
matched parameter counts on the same grids, measured side by side (interleaved rounds) in one run.

* ``darcy``: MgNO's paper configuration (24 channels, 4 layers, 6 levels: 572,661 parameters, zero padding) vs FNO
  (modes 12, width matched) vs U-Net (width matched), one input channel, batch 8, at 64² and 128².
* ``timedep``: SineNet-4 vs SineNet-1 vs U-Net vs FNO at the parameter budget of ``operators_timedep`` (4 history
  frames of one field, circular padding), batch 16, at 32² and 64².

A training step is forward + relative-L2 loss + backward + Adam step; inference is a forward pass under
``torch.no_grad()``. Each is timed as the median over interleaved rounds (``_common.interleaved``). Peak memory:
on CUDA ``torch.cuda.max_memory_allocated`` over one step; on the CPU the growth of the peak resident set
(``VmHWM``, reset through ``/proc/self/clear_refs``) over one step in a freshly spawned process holding only the
model and the batch, after a warm-up pass on a 16x16 crop (so it includes Adam's state and the allocator's slack,
not one-off library allocations). Ratios are ``peer / MgNO`` (Darcy) and ``peer / SineNet-4`` (time-dependent).

usage: python benchmarks/operators_speed.py [--quick] [--groups darcy timedep] [--reps 5] [--threads 1]
       [--device cpu] [--out benchmarks/results/operators_speed.json]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS = Path(__file__).resolve().parent / "results"
from _common import ResultFile, interleaved, log  # noqa: E402
from _operators import count, fno_backend, fno_for_budget, set_threads, unet_for_budget  # noqa: E402

from sciml.operators.losses import relative_l2  # noqa: E402
from sciml.operators.mgno import DARCY_ITERATIONS, MgNO  # noqa: E402
from sciml.operators.sinenet import SineNet, sinenet_multiplier  # noqa: E402


def _status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory(fn, device: str) -> int | None:
    """Bytes of peak memory growth while ``fn()`` runs."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    base = _status("VmRSS:")
    fn()
    peak = _status("VmHWM:")
    return None if base is None or peak is None else peak - base


def _one_step_peak(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, train: bool) -> int | None:
    """In a fresh process: VmHWM growth over one training step (forward, loss, backward, Adam) or one forward."""
    torch.set_num_threads(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4) if train else None
    # a small warm-up pass first, so that one-off library allocations (thread pools, kernels) are not counted
    relative_l2(model(x[:1, :, :16, :16]), y[:1, :, :16, :16]).backward()
    model.zero_grad(set_to_none=True)

    def step():
        if train:
            relative_l2(model(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)

    return peak_memory(step, "cpu")


def cpu_peak(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, train: bool) -> int | None:
    """:func:`_one_step_peak` in a spawned process, so that memory freed by earlier models or rounds (and kept by
    the allocator) does not hide this step's peak."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_one_step_peak, (model, x, y, train))


def models_for(group: str, args) -> tuple[dict[str, torch.nn.Module], int, int]:
    if group == "darcy":
        levels = DARCY_ITERATIONS if not args.quick else [1, 1, 2]
        hidden = 24 if not args.quick else 4
        mgno = MgNO(1, 1, hidden_channels=hidden, num_layers=4, num_iterations=levels)
        budget = count(mgno)
        out = {"mgno": mgno, "unet": unet_for_budget(budget, 1, 1, ch_mults=(1, 2, 2))[0]}
        if fno_backend() is not None:
            out["fno"] = fno_for_budget(budget, 1, 1, 12 if not args.quick else 4)[0]
        return out, 1, 8
    budget, hidden, lv = (60_000, 8, 3) if not args.quick else (8_000, 4, 2)
    out = {}
    for k in (4, 1):
        m = sinenet_multiplier(budget, k, 4, 1, hidden_channels=hidden, num_levels=lv)
        out[f"sinenet{k}"] = SineNet(4, 1, hidden_channels=hidden, num_waves=k, multiplier=m, num_levels=lv,
                                     padding_mode="circular")
    out["unet"] = unet_for_budget(budget, 4, 1, padding_mode="circular", ch_mults=(1, 2, 2))[0]
    if fno_backend() is not None:
        out["fno"] = fno_for_budget(budget, 4, 1, 8 if not args.quick else 4)[0]
    return out, 4, 16


def bench_group(group: str, size: int, args) -> dict:
    device = args.device
    models, cin, batch = models_for(group, args)
    if args.quick:
        batch = 2
    torch.manual_seed(0)
    x = torch.randn(batch, cin, size, size, device=device)
    y = torch.randn(batch, 1, size, size, device=device)
    fns_train, fns_infer, opts = {}, {}, {}
    for name, model in models.items():
        model.to(device)
        opt = opts[name] = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = relative_l2(model(x), y)
            loss.backward()
            opt.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return float(loss.detach())

        @torch.no_grad()
        def infer(model=model):
            out = model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return out.shape

        fns_train[name], fns_infer[name] = train_step, infer
    t_train = interleaved(fns_train, reps=args.reps, warmup=1, budget_s=args.budget_s)
    t_infer = interleaved(fns_infer, reps=args.reps, warmup=1, budget_s=args.budget_s)
    if device.startswith("cuda"):
        mem_train = {n: peak_memory(f, device) for n, f in fns_train.items()}
        mem_infer = {n: peak_memory(f, device) for n, f in fns_infer.items()}
    else:
        mem_train = {n: cpu_peak(m, x, y, True) for n, m in models.items()}
        mem_infer = {n: cpu_peak(m, x, y, False) for n, m in models.items()}
    ref = next(iter(models))
    rec = {"group": group, "size": size, "batch": batch, "reference": ref, "models": {}}
    for name, model in models.items():
        rec["models"][name] = {
            "params": count(model),
            "train_step_s": t_train[name]["median_s"], "train_step_min_s": t_train[name]["min_s"],
            "inference_s": t_infer[name]["median_s"], "inference_min_s": t_infer[name]["min_s"],
            "runs": t_train[name]["runs"],
            "peak_train_mib": None if mem_train[name] is None else mem_train[name] / 2 ** 20,
            "peak_inference_mib": None if mem_infer[name] is None else mem_infer[name] / 2 ** 20,
            "train_ratio_vs_ref": t_train[name]["median_s"] / t_train[ref]["median_s"],
            "inference_ratio_vs_ref": t_infer[name]["median_s"] / t_infer[ref]["median_s"],
        }
    return rec


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny models and grids, 2 rounds")
    p.add_argument("--groups", nargs="+", default=["darcy", "timedep"])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=120.0, help="time budget per timing loop (at least 3 rounds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "operators_speed.json"))
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    set_threads(args.threads)
    if args.quick:
        args.reps = 2
    sizes = {"darcy": (64, 128), "timedep": (32, 64)} if not args.quick else {"darcy": (16,), "timedep": (16,)}
    config = {k: v for k, v in vars(args).items() if k not in ("out", "fresh")}
    config["fno_backend"] = fno_backend()
    rf = ResultFile(args.out, config, fresh=args.fresh, device=args.device)
    for group in args.groups:
        for size in sizes[group]:
            key = f"{group}/{size}"
            if rf.done(key):
                continue
            rec = bench_group(group, size, args)
            rf.add(key, rec)
            for name, m in rec["models"].items():
                mem = m["peak_train_mib"]
                log(f"{key} {name:>9}: {m['params']:>8,} params  train {1e3 * m['train_step_s']:8.1f} ms "
                    f"(x{m['train_ratio_vs_ref']:.2f})  infer {1e3 * m['inference_s']:8.1f} ms "
                    f"(x{m['inference_ratio_vs_ref']:.2f})  peak train "
                    f"{'?' if mem is None else f'{mem:.0f}'} MiB")


if __name__ == "__main__":
    main()
