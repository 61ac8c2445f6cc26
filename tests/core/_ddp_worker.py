"""DDP training script for tests/core/test_train_processes.py, launched with
``python -m torch.distributed.run --standalone --nproc_per_node=2 _ddp_worker.py RUN_DIR OUT``.

Also imported by the test (by file path) for the single-process reference with the same global batch.
"""
from __future__ import annotations

import gc
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import TensorDataset

from sciml.train import LayerLocalTask, SupervisedTask, Trainer


class TwoBlocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(5, 8), nn.Linear(8, 4)])


class LocalMSE(LayerLocalTask):
    """Each block regresses the target from its ReLU output mean: a local loss per block."""

    def block_input(self, model, batch):
        return batch[0]

    def local_step(self, model, k, block, inputs, batch):
        h = torch.relu(block(inputs))
        return {"loss": ((h.mean(1, keepdim=True) - batch[1]) ** 2).mean()}, h

    def batch_size(self, batch):
        return int(batch[1].shape[0])


def make_data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(32, 5, generator=g)
    y = x[:, :1] - 0.5 * x[:, 1:2]
    xv = torch.randn(11, 5, generator=g)  # 11: uneven over 2 ranks
    return TensorDataset(x, y), TensorDataset(xv, xv[:, :1] - 0.5 * xv[:, 1:2])


def build(kind: str, batch_size: int, run_dir=None, distributed: str = "auto") -> Trainer:
    torch.manual_seed(0)
    train, val = make_data()
    common = dict(train_data=train, val_data=val, batch_size=batch_size, max_epochs=3, optimizer="sgd", lr=0.05,
                  seed=3, progress="none", log_every=1, checkpoint_every=3, run_dir=run_dir,
                  distributed=distributed, device="cpu")
    if kind == "backprop":
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
        return Trainer(model, SupervisedTask("mse"), **common)
    return Trainer(TwoBlocks(), LocalMSE(), strategy="layer_local", layer_local_mode="simultaneous", **common)


def main() -> None:
    run_dir, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    result = {}
    for kind in ("backprop", "layer_local"):
        trainer = build(kind, batch_size=4, run_dir=f"{run_dir}/{kind}")
        trainer.fit()
        flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, flat)
        result[kind] = {"params": {k: v.clone() for k, v in trainer.model.state_dict().items()},
                        "equal_across_ranks": all(torch.equal(gathered[0], g) for g in gathered),
                        "val": trainer.evaluate(make_data()[1])}
        del trainer  # drop the DDP wrapper (and its reducer) before the process group goes away
        gc.collect()
    result["world_size"] = dist.get_world_size()
    if dist.get_rank() == 0:
        torch.save(result, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
