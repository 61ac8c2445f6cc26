"""From a resolved config to a trained model: the one path shared by ``sciml train``, ``sciml eval``,
``sciml demo`` and Slurm jobs.

.. code-block:: python

    from sciml.config import load_config
    from sciml.experiment import run

    cfg = load_config("configs/gcn_community.yaml", ["trainer.max_epochs=50"])
    summary = run(cfg, run_dir="runs/gcn")   # writes config.yaml, run_info.json, checkpoints, metrics
    metrics = evaluate_run("runs/gcn")       # newest checkpoint, validation metrics
"""
from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from sciml.config import MODELS, TASKS, ExperimentConfig, load_config, write_run_info
from sciml.io import atomic_write_text
from sciml.errors import CheckpointError, ConfigError
from sciml.train import find_latest_checkpoint, load_checkpoint, resume_target, seed_everything


@dataclass
class Experiment:
    """The built parts of an experiment."""

    config: ExperimentConfig
    model: nn.Module
    task: Any
    train_data: Any
    val_data: Any
    trainer: Any

    def fit(self, *, argv: list[str] | None = None) -> dict[str, Any]:
        """Write the resolved config and provenance into the run directory (rank 0), then train."""
        run_dir = self.trainer.run_dir
        if run_dir is not None and self.trainer.dist.is_main:
            write_run_info(run_dir, self.config, argv=argv)
        return self.trainer.fit()


#: what a data builder's mapping may hold besides ``train``
_BUILDER_KEYS = ("train", "val", "collate_fn", "dims", "task_kwargs")


def _splits(data: Any) -> tuple[Any, Any]:
    """A data builder returns one full-batch graph (train = val = ``[data]``) or a mapping (see :func:`unpack_data`)."""
    parts = unpack_data(data)
    return parts["train"], parts["val"]


def unpack_data(data: Any) -> dict[str, Any]:
    """What a data builder returned, as ``{"train", "val", "collate_fn", "dims", "task_kwargs"}``.

    A builder returns either one full-batch graph (train = val = ``[data]``) or a mapping with ``train`` and,
    optionally, ``val`` (sequences of samples), ``collate_fn`` (list of samples -> batch, for the Trainer),
    ``dims`` (model sizes the data provides, added to those read off the samples by :func:`data_dims`) and
    ``task_kwargs`` (task arguments computed from the data, e.g. a normaliser fitted on the training set; the task
    receives those its registry entry declares ``runtime``; one without a default must be provided).
    """
    if not isinstance(data, dict):
        return {"train": [data], "val": [data], "collate_fn": None, "dims": {}, "task_kwargs": {}}
    if "train" not in data:
        raise ConfigError(f"data: the builder returned a mapping without a 'train' entry (keys: {sorted(data)})")
    unknown = sorted(set(data) - set(_BUILDER_KEYS))
    if unknown:
        raise ConfigError(f"data: the builder returned unknown keys {unknown} (allowed: {list(_BUILDER_KEYS)})")
    return {"train": data["train"], "val": data.get("val"), "collate_fn": data.get("collate_fn"),
            "dims": dict(data.get("dims") or {}), "task_kwargs": dict(data.get("task_kwargs") or {})}


def data_dims(train_data: Any) -> dict[str, int]:
    """Sizes a model needs from the data: ``in_channels`` (feature size of ``x``) and ``out_channels`` (number of
    classes for integer labels, else the target size; for integer labels also as ``num_classes``). The class count
    is the dataset's ``num_classes`` attribute if it has one, else one more than the largest label over all
    training samples."""
    sample = train_data[0]
    dims = {}
    x = getattr(sample, "x", None)
    if x is not None:
        dims["in_channels"] = int(x.size(-1))
    y = getattr(sample, "y", None)
    if y is not None and y.is_floating_point():
        dims["out_channels"] = int(y.size(-1)) if y.dim() > 1 else 1
    elif y is not None:
        num_classes = getattr(train_data, "num_classes", None)
        if num_classes is None:
            num_classes = max(int(s.y.max()) for s in train_data) + 1
        dims["out_channels"] = dims["num_classes"] = int(num_classes)
    return dims


def build(cfg: ExperimentConfig, *, run_dir: str | os.PathLike | None = None, prepare_model: bool = True,
          **trainer_overrides: Any) -> Experiment:
    """Build data, model, task and trainer from ``cfg``.

    Model parameters declared ``runtime`` in the registry (e.g. ``in_channels``/``out_channels``) are read off the
    data. ``run_dir`` (and other ``trainer_overrides``) replace the trainer section's values. A model with a
    ``prepare_training(train_data, batch_size=, collate_fn=)`` method gets it called before the trainer is built
    (unless ``prepare_model=False`` or the run will resume from a checkpoint).
    """
    seed = trainer_overrides.get("seed", cfg.trainer.seed)
    if seed is not None:
        seed_everything(seed)  # model initialisation is part of the experiment: same config, same initial weights
    parts = unpack_data(cfg.data.build())
    train_data, val_data = parts["train"], parts["val"]
    dims = {**data_dims(train_data), **parts["dims"]}
    runtime = MODELS.entry(cfg.model.name).runtime
    missing = [k for k in runtime if k not in dims]
    if missing:
        raise ConfigError(f"model.{missing[0]}: model {cfg.model.name!r} needs {', '.join(missing)} from the data, "
                          f"but data {cfg.data.name!r} does not provide it")
    model = cfg.model.build(**{k: dims[k] for k in runtime})
    given = {k: parts["task_kwargs"][k] for k in TASKS.entry(cfg.task.name).runtime if k in parts["task_kwargs"]}
    params = inspect.signature(type(cfg.task).target_of()).parameters
    missing = [k for k in TASKS.entry(cfg.task.name).runtime
               if k not in given and k in params and params[k].default is inspect.Parameter.empty]
    if missing:
        raise ConfigError(f"task.{missing[0]}: task {cfg.task.name!r} needs {', '.join(missing)} from the data, "
                          f"but data {cfg.data.name!r} does not provide it")
    task = cfg.task.build(**given)  # a runtime argument with a default may be left to it
    kwargs = cfg.trainer.kwargs()
    if parts["collate_fn"] is not None:
        kwargs["collate_fn"] = parts["collate_fn"]
    if run_dir is not None:
        kwargs["run_dir"] = str(run_dir)
    kwargs.update(trainer_overrides)
    # a model may fit something on the training data before training (GemNet-OC's scale factors,
    # ``model.fit_scales``): here, before the trainer copies the weights (EMA); not when the run resumes from a
    # checkpoint, which holds the fitted values, nor when prepare_model=False (evaluate_run loads a checkpoint)
    prepare = getattr(model, "prepare_training", None)
    will_resume = resume_target(kwargs.get("resume", "auto"), kwargs.get("run_dir")) is not None
    if prepare_model and callable(prepare) and not will_resume:
        prepare(train_data, batch_size=kwargs.get("batch_size"), collate_fn=kwargs.get("collate_fn"))
    trainer = type(cfg.trainer).target_of()(model, task, train_data=train_data, val_data=val_data, **kwargs)
    return Experiment(cfg, model, task, train_data, val_data, trainer)


def run(cfg: ExperimentConfig, *, run_dir: str | os.PathLike | None = None, argv: list[str] | None = None
        ) -> dict[str, Any]:
    """Build and train the experiment ``cfg``; return the Trainer's summary.

    The run directory is ``run_dir``, else ``trainer.run_dir``; with neither, nothing is written to disk. With
    ``resume="auto"`` (the default) an existing run directory is resumed from its newest valid checkpoint.
    """
    return build(cfg, run_dir=run_dir).fit(argv=argv)


def evaluate_run(run_dir: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None) -> dict[str, float]:
    """Rebuild the experiment from ``run_dir/config.yaml``, load its newest valid checkpoint (or ``checkpoint``),
    evaluate on the validation data, and write ``run_dir/eval.json``."""
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: {config_file} is missing")
    cfg = load_config(config_file)
    exp = build(cfg, run_dir=run_dir, prepare_model=False, resume="never", progress="none", handle_signals=False)
    if checkpoint is not None:
        path, payload = Path(checkpoint), load_checkpoint(checkpoint)
    else:
        found = find_latest_checkpoint(run_dir / "checkpoints")
        if found is None:
            raise CheckpointError(f"{run_dir} has no readable checkpoint under {run_dir / 'checkpoints'}")
        path, payload = found
    exp.trainer.load_state_dict(payload, source=str(path))
    metrics = exp.trainer.evaluate(exp.val_data)
    atomic_write_text(run_dir / "eval.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
