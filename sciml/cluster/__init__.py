"""Slurm: typed job specs, sbatch rendering, sweeps, sharded data jobs, preemption-safe requeue (docs/cluster.md).

Rank mapping for ``srun`` steps stays in :mod:`sciml.train.distributed`; this package does not import torch.
"""
from .render import render_command_job, render_script, render_shard_array, render_sweep, render_train
from .slurm import (SlurmError, cancel, job_ids, job_states, requeue, requeue_command, requeue_target,
                    sbatch, sciml_executable, slurm_available)
from .spec import JobSpec, load_job_spec
from .supervise import read_events
from .sweep import expand_sweep, plan_sweep

__all__ = ["JobSpec", "load_job_spec", "render_script", "render_train", "render_sweep", "render_shard_array",
           "render_command_job", "SlurmError", "cancel", "job_ids", "job_states", "requeue", "requeue_command",
           "requeue_target", "sbatch", "sciml_executable", "slurm_available", "read_events",
           "expand_sweep", "plan_sweep"]
