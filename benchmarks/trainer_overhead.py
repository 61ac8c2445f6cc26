"""Per-step overhead of ``sciml.train.Trainer`` against a hand-written PyTorch loop (same model, data, optimizer).

Two workloads, measured in one run with interleaved repeats (Trainer, loop, Trainer, loop, ...):

* ``minibatch_mlp``: MLP 64-256-256-1, a ``TensorDataset`` of 4096 samples, batch 128, Adam, shuffling.
* ``fullbatch_gcn``: two-layer GCN (CSR ``torch.sparse.mm``) on one random graph of 3000 nodes, ``train_data=[graph]``
  (one step per epoch, the DAGNN/ForwardGNN regime), Adam.

Trainer settings: ``run_dir=None`` (no checkpoints, no metrics files), ``progress="none"``, everything else at its
default (``log_every=50`` window means are still computed, ``check_finite=True``: the loss and gradient-norm
NaN checks run every step). The hand-written loop does no NaN checks and no metric bookkeeping; a third
timed variant, the Trainer with ``check_finite=False``, shows what those checks cost.

Median time per step over repeats; ``overhead = trainer / loop - 1``; target <= 5 %. Results with machine info go
to ``benchmarks/results/trainer_overhead_cpu.json``.

usage: python benchmarks/trainer_overhead.py [--repeats 7] [--steps 200] [--threads 1] [--out PATH]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from sciml.train import SupervisedTask, Task, Trainer


# ---------------------------------------------------------------------------------------------- workloads
def mlp_workload():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 64, generator=g)
    y = torch.sin(x[:, :8].sum(1, keepdim=True))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))
    return model, TensorDataset(x, y), 128


class GCN(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(d_in, d_hidden), nn.Linear(d_hidden, d_out)

    def forward(self, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.sparse.mm(adj, self.lin1(x)))
        return torch.sparse.mm(adj, self.lin2(h))


def gcn_workload():
    n, e, d, c = 3000, 30000, 128, 7
    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, n, (2, e), generator=g)
    idx = torch.cat([torch.stack([src, dst]), torch.stack([dst, src]), torch.arange(n).repeat(2, 1)], 1)
    adj = torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (n, n)).coalesce()
    deg = torch.sparse.sum(adj, 1).to_dense()
    norm = deg.rsqrt()
    i = adj.indices()
    adj = torch.sparse_coo_tensor(i, norm[i[0]] * adj.values() * norm[i[1]], (n, n)).to_sparse_csr()
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    torch.manual_seed(0)
    return GCN(d, 64, c), [(adj, x, y)], 1


class GraphTask(Task):
    def training_step(self, model, batch):
        adj, x, y = batch
        return {"loss": nn.functional.cross_entropy(model(adj, x), y)}


# ---------------------------------------------------------------------------------------------- timed runs
def run_trainer(model, data, batch_size, steps, graph: bool, check_finite: bool = True) -> float:
    task = GraphTask() if graph else SupervisedTask("mse")
    kwargs = {"collate_fn": (lambda items: items[0])} if graph else {}
    trainer = Trainer(model, task, train_data=data, batch_size=batch_size, max_steps=steps, optimizer="adam",
                      lr=1e-3, run_dir=None, progress="none", seed=0, check_finite=check_finite, **kwargs)
    t0 = time.perf_counter()
    trainer.fit()
    return (time.perf_counter() - t0) / steps


def run_loop(model, data, batch_size, steps, graph: bool) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    if graph:
        adj, x, y = data[0]
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(adj, x), y)
            loss.backward()
            opt.step()
    else:
        x, y = data.tensors
        done = 0
        while done < steps:
            for idx in torch.randperm(len(x)).split(batch_size):
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.mse_loss(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                done += 1
                if done == steps:
                    break
    return (time.perf_counter() - t0) / steps


def measure(name: str, make, repeats: int, steps: int) -> dict:
    model0, data, batch_size = make()
    graph = name.startswith("fullbatch")
    # warm-up (allocator, lazy init) for both
    run_trainer(copy.deepcopy(model0), data, batch_size, 10, graph)
    run_loop(copy.deepcopy(model0), data, batch_size, 10, graph)
    trainer_t, loop_t, nocheck_t = [], [], []

    def run_nocheck(*args):
        return run_trainer(*args, check_finite=False)

    for r in range(repeats):
        order = [(run_trainer, trainer_t), (run_loop, loop_t), (run_nocheck, nocheck_t)]
        if r % 2:  # alternate who goes first
            order.reverse()
        for fn, sink in order:
            sink.append(fn(copy.deepcopy(model0), data, batch_size, steps, graph))
    t_med, l_med = statistics.median(trainer_t), statistics.median(loop_t)
    return {"workload": name, "steps_per_repeat": steps, "repeats": repeats,
            "trainer_ms_per_step": 1e3 * t_med, "loop_ms_per_step": 1e3 * l_med,
            "overhead": t_med / l_med - 1.0,
            "trainer_no_nan_checks_ms_per_step": 1e3 * statistics.median(nocheck_t),
            "overhead_no_nan_checks": statistics.median(nocheck_t) / l_med - 1.0,
            "trainer_ms_all": [1e3 * t for t in trainer_t], "loop_ms_all": [1e3 * t for t in loop_t]}


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "trainer_overhead_cpu.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = [measure("minibatch_mlp", mlp_workload, a.repeats, a.steps),
               measure("fullbatch_gcn", gcn_workload, a.repeats, max(a.steps // 4, 20))]
    for r in results:
        print(f"{r['workload']:>14}: trainer {r['trainer_ms_per_step']:.3f} ms/step, loop {r['loop_ms_per_step']:.3f} "
              f"ms/step, overhead {100 * r['overhead']:+.1f} % (without NaN checks {100 * r['overhead_no_nan_checks']:+.1f} %)")
    out = {"benchmark": "trainer_overhead", "target_overhead": 0.05,
           "trainer_settings": {"run_dir": None, "checkpointing": "off (run_dir=None)", "progress": "none",
                                "log_every": 50, "check_finite": True},
           "machine": machine_info(), "results": results,
           "meets_target": all(r["overhead"] <= 0.05 for r in results)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
