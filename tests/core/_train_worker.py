"""Training script for the subprocess tests of sciml.train (SIGKILL/SIGTERM/SIGUSR1 + resume).

Not collected by pytest (leading underscore). Also imported by the tests (by file path) so the in-process reference
run uses exactly the same model, data and Trainer arguments.

usage: python _train_worker.py RUN_DIR OUT_FILE [--sleep S] [--max-steps N]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from sciml.train import EarlyStopping, SupervisedTask, Trainer


class SlowTask(SupervisedTask):
    """MSE task that sleeps in every training step so a signal lands mid-run."""

    def __init__(self, sleep: float = 0.0) -> None:
        super().__init__("mse")
        self.sleep = sleep

    def training_step(self, model, batch):
        if self.sleep:
            time.sleep(self.sleep)
        return super().training_step(model, batch)


def make_data():
    g = torch.Generator().manual_seed(2024)
    x = torch.randn(44, 6, generator=g)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(44, 1, generator=g)
    return TensorDataset(x[:36], y[:36]), TensorDataset(x[36:], y[36:])


def build_trainer(run_dir, *, sleep: float = 0.0, max_steps: int = 30, **overrides) -> Trainer:
    torch.set_num_threads(1)
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    train, val = make_data()
    kwargs = dict(train_data=train, val_data=val, batch_size=8, max_steps=max_steps, checkpoint_every=4,
                  keep_last=2, seed=7, log_every=2, progress="log", ema=0.9, scheduler="cosine", lr=1e-2,
                  early_stopping=EarlyStopping(patience=100), run_dir=run_dir, device="cpu")
    kwargs.update(overrides)
    return Trainer(model, SlowTask(sleep), **kwargs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--max-steps", type=int, default=30)
    a = p.parse_args()
    trainer = build_trainer(a.run_dir, sleep=a.sleep, max_steps=a.max_steps)
    trainer.fit()  # a preemption raises TrainingInterrupted = SystemExit(75)
    torch.save(trainer.model.state_dict(), a.out)


if __name__ == "__main__":
    main()
