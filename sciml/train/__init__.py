"""The shared Trainer: one step-based loop for every model in the suite.

.. code-block:: python

    from sciml.train import Trainer, SupervisedTask
    summary = Trainer(model, SupervisedTask("mse"), train_data=ds, batch_size=32, max_epochs=10,
                      run_dir="runs/demo").fit()

See ``docs/training.md`` for the concepts (Task, strategies, checkpoints and resume, signals and exit status, DDP).
"""
from sciml.train.callbacks import EarlyStopping, ExponentialMovingAverage
from sciml.train.checkpoint import (find_latest_checkpoint, list_checkpoints, load_checkpoint, prune_checkpoints,
                                    resume_target, save_checkpoint)
from sciml.train.distributed import DistInfo, init_distributed, unwrap
from sciml.train.optim import build_optimizer, build_scheduler
from sciml.train.sampler import BalancedBatchSampler, ResumableBatchSampler, epoch_seed
from sciml.train.seed import deterministic_mode, get_rng_state, seed_everything, set_rng_state
from sciml.train.signals import EXIT_OK, EXIT_PREEMPTED, PreemptionFlag, TrainingInterrupted
from sciml.train.state import TrainState
from sciml.train.strategies import Backprop, LayerLocal, Strategy
from sciml.train.task import LayerLocalTask, SupervisedTask, Task, detach_tree
from sciml.train.tree import map_tensors
from sciml.train.trainer import Trainer

__all__ = [
    "Trainer", "Task", "SupervisedTask", "LayerLocalTask", "TrainState", "EarlyStopping", "ExponentialMovingAverage",
    "Strategy", "Backprop", "LayerLocal", "EXIT_OK", "EXIT_PREEMPTED", "TrainingInterrupted", "PreemptionFlag",
    "save_checkpoint", "load_checkpoint", "find_latest_checkpoint", "list_checkpoints", "prune_checkpoints",
    "resume_target",
    "seed_everything", "get_rng_state", "set_rng_state", "deterministic_mode", "ResumableBatchSampler", "BalancedBatchSampler",
    "epoch_seed", "build_optimizer", "build_scheduler", "DistInfo", "init_distributed", "unwrap", "detach_tree",
    "map_tensors",
]
