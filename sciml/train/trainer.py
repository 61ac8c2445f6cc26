"""The Trainer: one step-based loop for every model in the suite."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import numbers
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

import sciml
from sciml.errors import CheckpointError, ConfigError, NonFiniteError
from sciml.train.callbacks import EarlyStopping, ExponentialMovingAverage
from sciml.io import atomic_write_text, remove_stale_temp_files
from sciml.train.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, checkpoint_path, list_checkpoints,
                                    load_checkpoint, prune_checkpoints, resume_target, save_checkpoint)
from sciml.train.checkpoint import remove_stale_temp_files as remove_stale_checkpoint_temps
from sciml.train.distributed import (DistInfo, all_gather_objects, all_reduce_sum, barrier, broadcast_flag,
                                     init_distributed, sync_gradients)
from sciml.train.loggers import MetricsLogger
from sciml.train.optim import build_scheduler
from sciml.train.progress import BarProgress, Progress, make_progress
from sciml.train.sampler import BatchLoader, ResumableBatchSampler, make_batch_sampler
from sciml.train.seed import deterministic_mode, get_rng_state, seed_everything, set_rng_state
from sciml.train.signals import EXIT_OK, EXIT_PREEMPTED, PreemptionFlag, TrainingInterrupted
from sciml.train.state import TrainState
from sciml.train.strategies import Strategy, make_strategy
from sciml.train.task import Task

__all__ = ["Trainer"]


class _NoSignals:
    is_set = False
    signal_name = ""

    def __enter__(self) -> "_NoSignals":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _require(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"Trainer argument '{key}': {msg}")


def _require_int(value: Any, key: str, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    _require(isinstance(value, numbers.Integral) and not isinstance(value, bool), key,
             f"must be an integer, got {value!r}")
    _require(value >= minimum, key, f"must be >= {minimum}, got {value}")


_EARLY_STOPPING_KEYS = [f.name for f in dataclasses.fields(EarlyStopping) if f.init]


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """A detached copy of a state dict; non-tensor entries (a module's extra state) are deep-copied."""
    return {k: v.detach().clone() if isinstance(v, Tensor) else copy.deepcopy(v) for k, v in state.items()}


def _finite_check_view(t: Tensor) -> Tensor:
    """``t`` as the fused non-finite check takes it: complex tensors as their real view (the CPU kernel has no
    complex types; a complex number is non-finite iff a part is)."""
    return torch.view_as_real(t) if t.is_complex() else t


def _total_norm(grads: list[Tensor]) -> Tensor:
    """Global L2 norm of ``grads``, as ``clip_grad_norm_`` computes it."""
    fn = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
    if fn is not None:
        return fn(grads, foreach=True)
    norms = torch._foreach_norm(grads, 2.0)  # pragma: no cover - torch < 2.6
    return torch.linalg.vector_norm(torch.stack([n.to(grads[0].device) for n in norms]), 2.0)


def _clip_with_norm(params: list[Tensor], max_norm: float, norm: Tensor) -> None:
    """Scale the gradients of ``params`` by ``min(1, max_norm / (norm + 1e-6))``, as ``clip_grad_norm_`` does."""
    fn = getattr(torch.nn.utils, "clip_grads_with_norm_", None)  # torch >= 2.6
    if fn is not None:
        fn(params, max_norm, norm, foreach=True)
        return
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)  # pragma: no cover - torch < 2.6
    torch._foreach_mul_([p.grad for p in params], coef)


class Trainer:
    r"""Trains ``model`` on ``train_data`` with the loss and metrics of ``task``.

    One *step* is one optimizer update (``accumulate`` micro-batches of ``batch_size`` samples per rank). The
    Trainer owns the loader (a resumable, rank-sharded sampler), optimizers and schedulers, validation cadence,
    early stopping, gradient clipping and accumulation, EMA, AMP (CUDA), metrics files, progress output, seeding,
    deterministic mode, checkpoints (``resume="auto"``), preemption signals and DDP under ``torchrun``/``srun``.

    Args:
        model (nn.Module): the model (moved to ``device``).
        task (Task): loss and metrics from a batch (:class:`~sciml.train.LayerLocalTask` for
            ``strategy="layer_local"``).
        train_data (Sequence): map-style dataset or sequence of samples; a full-batch graph is ``[data]``.
        val_data (Sequence, optional): validation samples. (default: ``None``)
        collate_fn (callable, optional): list of samples → batch. (default: PyG ``Batch`` for graphs, a single graph
            passed through, ``default_collate`` otherwise)
        batch_size (int): samples per micro-batch and rank. (default: ``1``)
        shuffle (bool): reshuffle every epoch (the order depends only on ``seed`` and the epoch). (default: ``True``)
        drop_last (bool): drop the last incomplete batch of an epoch. (default: ``False``)
        batch_sampler (str, dict or callable, optional): how training samples are grouped into batches.
            ``None``: :class:`~sciml.train.sampler.ResumableBatchSampler` (``batch_size`` samples per batch);
            ``"balanced"`` or ``{"name": "balanced", "window": 8}``:
            :class:`~sciml.train.sampler.BalancedBatchSampler`, the same samples per window of ``window`` steps
            regrouped into batches of about equal total size (atoms; read from ``train_data.sizes`` or each
            sample's ``num_nodes``), fairchem's load balancing; or a factory ``f(train_data, batch_size=,
            shuffle=, seed=, drop_last=, rank=, world_size=)`` returning a sampler with ``batches(epoch)``,
            ``__len__`` and ``seed``. Validation always uses plain batches. (default: ``None``)
        num_workers (int): ``DataLoader`` worker processes for fetching (``0``: fetch in the loop). The workers
            persist across epochs and seed python/numpy/torch per batch from ``(seed, epoch, batch)``, so a resumed
            run fetches the same random augmentations; a one-item dataset is fetched in the loop. (default: ``0``)
        val_batch_size (int, optional): batch size for validation. (default: ``batch_size``)
        optimizer (str or callable): ``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, ``"adagrad"``, an
            ``Optimizer`` class, a factory ``params -> Optimizer`` or (backprop only) an ``Optimizer``.
            (default: ``"adam"``)
        lr (float): learning rate. (default: ``1e-3``)
        weight_decay (float): weight decay. (default: ``0.0``)
        optimizer_kwargs (dict, optional): extra optimizer arguments (``momentum``, ``betas``...).
        scheduler (str or callable, optional): ``"step"``, ``"multistep"``, ``"exponential"``, ``"cosine"``,
            ``"linear"``, ``"onecycle"``, ``"plateau"`` or a factory ``optimizer -> scheduler``. (default: ``None``)
        scheduler_kwargs (dict, optional): extra scheduler arguments.
        scheduler_interval (str): ``"step"`` or ``"epoch"``; ``"plateau"`` steps after every validation.
            (default: ``"step"``)
        max_steps (int, optional): optimizer steps to run (per block in greedy layer-local mode).
        max_epochs (int, optional): epochs to run (per block in greedy layer-local mode). At least one of the
            two is required; whichever comes first ends the run.
        val_every (int): validate every ``val_every`` epochs (or steps, see ``val_unit``). (default: ``1``)
        val_unit (str): ``"epoch"`` or ``"step"``. (default: ``"epoch"``)
        early_stopping (EarlyStopping or dict, optional): stopping rule and best-weights tracking; validation
            metrics are named ``val_<key>``. (default: ``None``)
        grad_clip (float, optional): clip the global L2 gradient norm (per optimizer) to this. (default: ``None``)
        accumulate (int): micro-batches per optimizer step; losses are scaled by ``1/accumulate`` so a mean loss
            over ``accumulate`` equal batches equals the mean over their union. (default: ``1``)
        ema (float, optional): decay of an exponential moving average of the weights; validation and
            :meth:`evaluate` use the averaged weights (the best ones after ``restore_best``). (default: ``None``)
        amp (bool): mixed precision on CUDA (ignored with a warning on CPU). (default: ``False``)
        amp_dtype (str): ``"float16"`` (with a ``GradScaler``) or ``"bfloat16"``. (default: ``"float16"``)
        run_dir (str, optional): where checkpoints and metrics go; ``None`` writes nothing. (default: ``None``)
        checkpoint_every (int): checkpoint every this many steps (``0``: only at the end and on preemption).
            (default: ``1000``)
        keep_last (int): checkpoints kept (``0``: all). (default: ``3``)
        resume (str, optional): ``"auto"`` (newest loadable checkpoint in ``run_dir``, if any), ``"never"``/
            ``None`` (a ``run_dir`` that already holds checkpoints is a :class:`~sciml.errors.ConfigError`), or a
            checkpoint path (must load). A mid-epoch checkpoint needs the same ``batch_size``, world size, dataset
            length, ``accumulate``, ``drop_last`` and ``batch_sampler`` (:class:`~sciml.errors.CheckpointError`
            naming the change).
            (default: ``"auto"``)
        seed (int, optional): seeds python/numpy/torch (``seed + rank``) when a fresh run starts, and the sampler.
            (default: ``0``)
        deterministic (bool): deterministic algorithms during :meth:`fit`. (default: ``False``)
        device (str): ``"auto"`` (``cuda:<local_rank>`` if available, else ``cpu``), ``"cpu"``, ``"cuda"``...
            (default: ``"auto"``)
        distributed (str): ``"auto"`` (DDP when launched by ``torchrun`` or an ``srun`` step with several
            processes) or ``"off"``. (default: ``"auto"``)
        strategy (str): ``"backprop"`` or ``"layer_local"``. (default: ``"backprop"``)
        layer_local_mode (str): ``"greedy"`` or ``"simultaneous"``. (default: ``"greedy"``)
        log_every (int): steps between training-metric records (means over the window). (default: ``50``)
        progress (str): ``"auto"`` (bar on a TTY, lines otherwise), ``"bar"``, ``"log"``, ``"none"``.
            (default: ``"auto"``)
        check_finite (bool): stop with :class:`~sciml.errors.NonFiniteError` on a NaN/inf loss or gradient, before
            the optimizer step (one fused check, one host read per step). (default: ``True``)
        on_preempt (str): after SIGUSR1/SIGTERM and the checkpoint: ``"raise"``
            :class:`~sciml.train.TrainingInterrupted` (a ``SystemExit`` with status ``EXIT_PREEMPTED`` = 75) or
            ``"return"`` the summary with ``status="preempted"``. (default: ``"raise"``)
        handle_signals (bool): install the SIGUSR1/SIGTERM flag handlers during :meth:`fit`. (default: ``True``)
        tensorboard (bool): also write TensorBoard scalars. (default: ``False``)
        find_unused_parameters (bool): passed to ``DistributedDataParallel``. (default: ``False``)
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        *,
        train_data: Sequence[Any],
        val_data: Sequence[Any] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        batch_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = False,
        batch_sampler: str | dict[str, Any] | Callable[..., Any] | None = None,
        num_workers: int = 0,
        val_batch_size: int | None = None,
        optimizer: str | Callable[..., Optimizer] | Optimizer = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer_kwargs: dict[str, Any] | None = None,
        scheduler: str | Callable[[Optimizer], Any] | None = None,
        scheduler_kwargs: dict[str, Any] | None = None,
        scheduler_interval: str = "step",
        max_steps: int | None = None,
        max_epochs: int | None = None,
        val_every: int = 1,
        val_unit: str = "epoch",
        early_stopping: EarlyStopping | dict[str, Any] | None = None,
        grad_clip: float | None = None,
        accumulate: int = 1,
        ema: float | None = None,
        amp: bool = False,
        amp_dtype: str = "float16",
        run_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1000,
        keep_last: int = 3,
        resume: str | os.PathLike | None = "auto",
        seed: int | None = 0,
        deterministic: bool = False,
        device: str = "auto",
        distributed: str = "auto",
        strategy: str | Strategy = "backprop",
        layer_local_mode: str = "greedy",
        log_every: int = 50,
        progress: str = "auto",
        check_finite: bool = True,
        on_preempt: str = "raise",
        handle_signals: bool = True,
        tensorboard: bool = False,
        find_unused_parameters: bool = False,
    ) -> None:
        _require(max_steps is not None or max_epochs is not None, "max_steps",
                 "set max_steps and/or max_epochs (both are None)")
        _require_int(max_steps, "max_steps", 1, optional=True)
        _require_int(max_epochs, "max_epochs", 1, optional=True)
        _require_int(batch_size, "batch_size", 1)
        _require_int(val_batch_size, "val_batch_size", 1, optional=True)
        _require_int(accumulate, "accumulate", 1)
        _require_int(val_every, "val_every", 1)
        _require_int(log_every, "log_every", 1)
        _require_int(checkpoint_every, "checkpoint_every", 0)
        _require_int(keep_last, "keep_last", 0)
        _require_int(num_workers, "num_workers", 0)
        _require(distributed in ("auto", "off"), "distributed", f"must be 'auto' or 'off', got {distributed!r}")
        _require(val_unit in ("epoch", "step"), "val_unit", f"must be 'epoch' or 'step', got {val_unit!r}")
        _require(scheduler_interval in ("epoch", "step"), "scheduler_interval",
                 f"must be 'epoch' or 'step', got {scheduler_interval!r}")
        _require(on_preempt in ("raise", "return"), "on_preempt", f"must be 'raise' or 'return', got {on_preempt!r}")
        _require(progress in ("auto", "bar", "log", "none"), "progress",
                 f"must be 'auto', 'bar', 'log' or 'none', got {progress!r}")
        _require(amp_dtype in ("float16", "bfloat16"), "amp_dtype", f"must be 'float16' or 'bfloat16', got {amp_dtype!r}")
        _require(grad_clip is None or grad_clip > 0, "grad_clip", f"must be positive, got {grad_clip}")
        _require(len(train_data) > 0, "train_data", "is empty")
        if isinstance(early_stopping, dict):
            for key in early_stopping:
                _require(key in _EARLY_STOPPING_KEYS, f"early_stopping.{key}",
                         f"unknown key; valid: {', '.join(_EARLY_STOPPING_KEYS)}")
            early_stopping = EarlyStopping(**early_stopping)
        _require(early_stopping is None or val_data is not None, "early_stopping", "needs val_data")
        _require(scheduler != "plateau" or val_data is not None, "scheduler", "'plateau' needs val_data")

        self.task = task
        self.optimizer_spec, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.optimizer_kwargs = optimizer_kwargs
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.val_every, self.val_unit = val_every, val_unit
        self.early_stopping: EarlyStopping | None = early_stopping
        self.grad_clip, self.accumulate = grad_clip, accumulate
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every, self.keep_last, self.resume = checkpoint_every, keep_last, resume
        self.seed, self.deterministic = seed, deterministic
        self.log_every, self.progress_kind, self.check_finite = log_every, progress, check_finite
        self.on_preempt, self.handle_signals, self.tensorboard = on_preempt, handle_signals, tensorboard
        self.scheduler_interval = scheduler_interval

        # devices and process group
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        self.dist: DistInfo = init_distributed(distributed, device_type=dev.type)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", self.dist.local_rank if self.dist.enabled else torch.cuda.current_device())
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        self.device = dev
        self.model = model.to(dev)

        # strategy, optimizers, schedulers
        self.strategy = make_strategy(strategy, layer_local_mode=layer_local_mode)
        self.strategy.setup(self)
        self.optimizers = self.strategy.optimizers
        self._params = [[p for _, p in named] for named in self.strategy.named_params]  # per optimizer, fixed
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            if self.strategy.manual_grad_sync:
                with torch.no_grad():
                    for t in self.model.state_dict().values():
                        torch.distributed.broadcast(t, src=0)
            else:
                self.train_model = nn.parallel.DistributedDataParallel(
                    self.model, device_ids=[dev.index] if dev.type == "cuda" else None,
                    find_unused_parameters=find_unused_parameters)

        # data
        self.train_sampler = make_batch_sampler(batch_sampler, train_data, batch_size, shuffle=shuffle,
                                                seed=seed or 0, drop_last=drop_last, rank=self.dist.rank,
                                                world_size=self.dist.world_size)
        self.train_loader = BatchLoader(train_data, self.train_sampler, collate_fn=collate_fn,
                                        num_workers=num_workers, device=dev)
        self.collate_fn, self.num_workers = collate_fn, num_workers
        self.val_batch_size = val_batch_size if val_batch_size is not None else batch_size
        self.batch_size, self.drop_last, self.num_samples = batch_size, drop_last, len(train_data)
        self.val_loader = self._eval_loader(val_data) if val_data is not None else None
        self.steps_per_epoch = -(-len(self.train_loader) // accumulate)

        if scheduler_interval == "step":
            total = max_steps if max_steps is not None else (max_epochs or 0) * self.steps_per_epoch
        else:
            total = max_epochs
        self.schedulers = [build_scheduler(scheduler, opt, total=total, kwargs=scheduler_kwargs)
                           for opt in self.optimizers]
        self._plateau = [isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau) for s in self.schedulers]
        self.scheduler_monitor = early_stopping.monitor if early_stopping is not None else "val_loss"

        # precision, EMA
        self.amp = amp and dev.type == "cuda"
        if amp and not self.amp:
            warnings.warn("amp=True is only used on CUDA; training in float32 on " + str(dev), RuntimeWarning,
                          stacklevel=2)
        self.amp_dtype = torch.float16 if amp_dtype == "float16" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp and self.amp_dtype == torch.float16 else None
        self.ema = ExponentialMovingAverage(self.model, ema) if ema is not None else None

        self._one = torch.ones(1, device=dev, dtype=torch.float32)  # the fused check needs float32 (any default dtype)
        # [non-finite found, preemption signal]: read once per step; zero between steps (reset after each read
        # that found something), so the common step pays no reset
        self._flags = torch.zeros(2, device=dev, dtype=torch.float32)
        self._found = self._flags[:1]
        self._step_losses: list[tuple[str, Tensor, int]] = []
        self._micro = 0
        self._preempt_agreed = False
        self._flag: Any = _NoSignals()
        self.state = TrainState()
        self._best_state: dict[str, Tensor] | None = None
        self._last_checkpoint: Path | None = None
        self._resumed_from: Path | None = None
        self._win_sums: dict[str, Tensor] = {}
        self._win_count = 0
        self._logger: MetricsLogger | None = None
        self._progress: Progress = Progress()
        self._session_t0 = time.perf_counter()
        self._preempted_by = ""

    # ------------------------------------------------------------------ helpers used by strategies
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def check_loss(self, out: Any, label: str) -> Tensor:
        """The scalar ``out["loss"]``. With ``check_finite`` it is also registered for the step's non-finite check:
        one fused device-side check of every loss and gradient of the step, read once before the optimizer step
        (no host sync per micro-batch); a NaN/inf loss then raises :class:`NonFiniteError` naming ``label``."""
        loss = out.get("loss") if isinstance(out, dict) else None
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ConfigError(f"{type(self.task).__name__} must return a dict with a scalar tensor 'loss' "
                              f"({label}); got {type(out).__name__} with keys "
                              f"{sorted(out) if isinstance(out, dict) else '-'}")
        if self.check_finite:
            d = loss.detach()
            if d.device != self.device:  # the fused check runs on the training device
                d = d.to(self.device)
            self._step_losses.append((label, d, self.state.batch_in_epoch + self._micro))
        return loss

    def backward(self, loss: Tensor, scale: float = 1.0) -> None:
        if scale != 1.0:
            loss = loss * scale
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward()

    # ------------------------------------------------------------------ data
    def _eval_loader(self, data: Sequence[Any], batch_size: int | None = None) -> BatchLoader:
        sampler = ResumableBatchSampler(len(data), batch_size or self.val_batch_size, shuffle=False,
                                        rank=self.dist.rank, world_size=self.dist.world_size, pad=False)
        return BatchLoader(data, sampler, collate_fn=self.collate_fn, num_workers=self.num_workers,
                           device=self.device)

    def _data_layout(self) -> dict[str, Any]:
        """What the sampler position ``(epoch, batch_in_epoch)`` means; checked on resume."""
        return {"batch_size": self.batch_size, "world_size": self.dist.world_size, "num_samples": self.num_samples,
                "accumulate": self.accumulate, "drop_last": self.drop_last,
                "batch_sampler": getattr(self.train_sampler, "layout", type(self.train_sampler).__name__)}

    # ------------------------------------------------------------------ public API
    def fit(self) -> dict[str, Any]:
        """Train until the budget is used up, early stopping triggers or a preemption signal arrives.

        Returns:
            dict: ``status`` (``"completed"``/``"preempted"``), ``exit_code`` (``EXIT_OK``/``EXIT_PREEMPTED``),
            ``stop_reason``, ``steps``, ``epochs``, ``best`` (``{"monitor", "value", "step"}`` or ``None``),
            ``last_train``, ``last_val``, ``phases``, ``run_dir``, ``checkpoint``, ``resumed_from``, ``elapsed_s``.

        Raises:
            TrainingInterrupted: preempted with ``on_preempt="raise"`` (after the checkpoint was written).
            NonFiniteError: a NaN/inf loss or gradient (no checkpoint written for that step).
        """
        self._session_t0 = time.perf_counter()
        flag_ctx = PreemptionFlag() if self.handle_signals else _NoSignals()
        with deterministic_mode(self.deterministic), flag_ctx as flag:
            resumed = self._resume()
            if not resumed and self.seed is not None:
                seed_everything(self.seed + self.dist.rank)
            if self.run_dir is not None and self.dist.is_main:
                remove_stale_checkpoint_temps(self.run_dir / "checkpoints")  # left by a SIGKILL mid-write
                remove_stale_temp_files(self.run_dir)
                self._logger = MetricsLogger(self.run_dir, tensorboard=self.tensorboard)
                self._logger.truncate(self.state.step)
            total = self.max_steps if self.max_steps is not None else (self.max_epochs or 0) * self.steps_per_epoch
            self._progress = make_progress(self.progress_kind, total=(total * self.strategy.num_phases) or None,
                                           initial=self.state.step, is_main=self.dist.is_main)
            if resumed:
                self._progress.message(f"resumed from {self._resumed_from} at step {self.state.step}")
            try:
                self._flag = flag
                self._loop(flag)
            finally:
                self._flag = _NoSignals()
                self._progress.close()
                if self._logger is not None:
                    self._logger.close()
                self.train_loader.close()
                if self.val_loader is not None:
                    self.val_loader.close()
        summary = self.summary()
        if self.run_dir is not None and self.dist.is_main:
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        if self._preempted_by and self.on_preempt == "raise":
            raise TrainingInterrupted(
                f"training preempted by {self._preempted_by} after step {self.state.step}; checkpoint "
                f"{self._last_checkpoint or '(none: no run_dir)'}; exit status {EXIT_PREEMPTED}",
                checkpoint=str(self._last_checkpoint) if self._last_checkpoint else None,
                signal_name=self._preempted_by, summary=summary)
        return summary

    @torch.no_grad()
    def evaluate(self, data: Sequence[Any], *, batch_size: int | None = None) -> dict[str, float]:
        """Metrics of ``task.validation_step`` averaged over ``data`` (weighted by ``task.batch_size``; over all
        ranks under DDP), with the EMA weights if ``ema`` is set (the restored best weights after a run that
        ended with ``early_stopping.restore_best``)."""
        loader = self._eval_loader(data, batch_size)
        try:
            return self._evaluate(loader, phase=None)
        finally:
            loader.close()

    def summary(self) -> dict[str, Any]:
        s, es = self.state, self.early_stopping
        best = None
        if es is not None and es.best is not None:
            best = {"monitor": es.monitor, "value": es.best, "step": es.best_step}
        preempted = bool(self._preempted_by)
        return {
            "status": "preempted" if preempted else "completed",
            "exit_code": EXIT_PREEMPTED if preempted else EXIT_OK,
            "stop_reason": "preempted" if preempted else s.stop_reason,
            "signal": self._preempted_by or None,
            "steps": s.step, "epochs": s.epoch, "best": best,
            "last_train": dict(s.last_train), "last_val": dict(s.last_val), "phases": list(s.phase_history),
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "checkpoint": str(self._last_checkpoint) if self._last_checkpoint else None,
            "resumed_from": str(self._resumed_from) if self._resumed_from else None,
            "elapsed_s": self._elapsed(),
        }

    # ------------------------------------------------------------------ the loop
    def _elapsed(self) -> float:
        return self.state.elapsed_s + (time.perf_counter() - self._session_t0)

    def _loop(self, flag: Any) -> None:
        s = self.state
        self._reopen_if_budget_grew()
        self.model.train()
        bar = isinstance(self._progress, BarProgress)
        nb = len(self.train_loader)
        while not s.finished:
            it = self.train_loader.iterate(s.epoch, s.batch_in_epoch)
            while True:
                g = min(self.accumulate, nb - s.batch_in_epoch)
                self._train_step(it, g)
                s.step += 1
                s.phase_step += 1
                s.batch_in_epoch += g
                epoch_end = s.batch_in_epoch >= nb
                if epoch_end:
                    s.epoch += 1
                    s.phase_epoch += 1
                    s.batch_in_epoch = 0
                if s.step % self.log_every == 0:
                    self._log_train()
                elif bar:
                    self._progress.update(s.step)

                stop_reason = ""
                if self.val_loader is not None and self._val_due(epoch_end):
                    stop_reason = self._validate()
                if epoch_end and self.scheduler_interval == "epoch":
                    self._step_schedulers()
                if not stop_reason:
                    if self.max_steps is not None and s.phase_step >= self.max_steps:
                        stop_reason = "max_steps"
                    elif self.max_epochs is not None and epoch_end and s.phase_epoch >= self.max_epochs:
                        stop_reason = "max_epochs"
                phase_changed = self._end_phase(stop_reason) if stop_reason else False

                # under DDP the ranks agreed on the flag in the step's one flag all-reduce (_optimizer_step)
                preempt = self._preempt_agreed if self.dist.enabled else flag.is_set
                due = self.checkpoint_every > 0 and s.step % self.checkpoint_every == 0
                if self.run_dir is not None and (due or preempt or s.finished):
                    self._save_checkpoint()
                if preempt:
                    self._preempted_by = flag.signal_name or "signal"
                    self._progress.message(f"{self._preempted_by} received: checkpoint at step {s.step}, stopping")
                    barrier(self.dist)
                    return
                if s.finished:
                    if self._win_count:
                        self._log_train()
                    barrier(self.dist)
                    return
                if epoch_end or phase_changed:
                    break

    def _reopen_if_budget_grew(self) -> None:
        s = self.state
        if not s.finished:
            return
        if (s.stop_reason == "max_steps" and self.max_steps is not None and s.phase_step < self.max_steps) or \
           (s.stop_reason == "max_epochs" and self.max_epochs is not None and s.phase_epoch < self.max_epochs):
            s.finished, s.stop_reason = False, ""
            if s.phase_history and s.phase_history[-1]["phase"] == s.phase:
                s.phase_history.pop()

    def _val_due(self, epoch_end: bool) -> bool:
        s = self.state
        if self.val_unit == "epoch":
            return epoch_end and s.phase_epoch % self.val_every == 0
        return s.phase_step % self.val_every == 0

    def _active(self) -> list[int]:
        return self.strategy.step_groups(self.state.phase)

    def _train_step(self, it: Any, g: int) -> None:
        active = self._active()
        for i in active:
            self.optimizers[i].zero_grad(set_to_none=True)
        self._step_losses = []
        scale = 1.0 / g
        sums = self._win_sums
        for i in range(g):
            batch = next(it)
            self._micro = i
            out = self.strategy.train_micro(self, batch, scale, sync=(i == g - 1))
            for k, v in out.items():
                if isinstance(v, Tensor):
                    v = v.detach() if g == 1 else v.detach() * scale
                    prev = sums.get(k)
                    sums[k] = v if prev is None else prev + v
        self._micro = 0
        self._win_count += 1
        self._optimizer_step(active)

    def _optimizer_step(self, active: list[int]) -> None:
        """Sync (layer-local DDP), unscale, check, clip and step the ``active`` optimizers.

        The non-finite check is one fused device-side scan of the step's losses and gradients (or gradient norms with
        ``grad_clip``) into one flag; the flag is read once per step, before any optimizer steps (under DDP it is
        all-reduced together with the preemption flag, so all ranks stop together). Details (which loss or
        parameter) are looked up only after the flag says something is wrong.
        """
        strategy = self.strategy
        if self.dist.enabled and strategy.manual_grad_sync:
            sync_gradients([p for i in active for p in self._params[i]], self.dist)
        scaler = self.scaler
        if scaler is not None:
            for i in active:
                scaler.unscale_(self.optimizers[i])
        check = self.check_finite
        tensors: list[Tensor] = [entry[1] for entry in self._step_losses] if check else []
        clip: dict[int, tuple[list[Tensor], Tensor]] = {}
        if self.grad_clip is not None:
            for i in active:
                params = [p for p in self._params[i] if p.grad is not None]
                if params:
                    norm = _total_norm([p.grad for p in params])  # type: ignore[misc]
                    clip[i] = (params, norm)
                    if check and scaler is None:
                        tensors.append(norm)
        elif check and scaler is None:
            for i in active:
                tensors.extend([p.grad for p in self._params[i] if p.grad is not None])  # type: ignore
        found = self._found
        if tensors:  # GradScaler's fused inf/NaN scan (multiplies by exactly 1.0): the cheapest check measured
            dtype = tensors[0].dtype
            if all(t.dtype == dtype for t in tensors) and not dtype.is_complex:
                torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, self._one)
            else:  # one call per dtype, as GradScaler does (complex tensors through their real view)
                by_dtype: dict[torch.dtype, list[Tensor]] = {}
                for t in tensors:
                    t = _finite_check_view(t)
                    by_dtype.setdefault(t.dtype, []).append(t)
                for group in by_dtype.values():
                    torch._amp_foreach_non_finite_check_and_unscale_(group, found, self._one)
        bad = False
        if self.dist.enabled:
            flags = self._flags
            if self._flag.is_set:
                flags[1] = 1.0
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            bad_flag, preempt = flags.tolist()
            flags.zero_()
            bad, self._preempt_agreed = bad_flag != 0.0, preempt != 0.0
        elif tensors:
            bad = found.item() != 0.0
            if bad:
                found.zero_()
        if bad:
            self._raise_nonfinite(active, clip)
        self._step_losses = []
        for i in active:
            opt = self.optimizers[i]
            if i in clip:
                params, norm = clip[i]
                _clip_with_norm(params, self.grad_clip, norm)
            if scaler is not None:
                scaler.step(opt)
            else:
                opt.step()
        if scaler is not None:
            scaler.update()
        if self.ema is not None:
            self.ema.update()
        if self.scheduler_interval == "step":
            self._step_schedulers()

    def _step_schedulers(self) -> None:
        for i in self._active():
            sched = self.schedulers[i]
            if sched is not None and not self._plateau[i]:
                sched.step()

    def _raise_nonfinite(self, active: list[int], clip: dict[int, tuple[list[Tensor], Tensor]]) -> None:
        s = self.state
        where = (f"at step {s.step + 1} (epoch {s.epoch}, batch {{batch}}); no checkpoint is written for this step, "
                 f"the last good checkpoint is {self._last_checkpoint or 'none'}")
        for label, loss, batch in self._step_losses:
            if not bool(torch.isfinite(loss).all()):
                raise NonFiniteError(f"non-finite {label} ({loss.item()}) " + where.format(batch=batch))
        bad = []
        for i in active:
            for name, p in self.strategy.named_params[i]:
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    n_bad = int((~torch.isfinite(p.grad)).sum())
                    bad.append(f"'{name}' ({n_bad} of {p.grad.numel()} entries NaN/inf)")
        if bad:
            what = "parameter " + ", ".join(bad)
        elif any(not bool(torch.isfinite(norm).all()) for _, norm in clip.values()):
            what = "the gradient norm overflowed (every gradient is finite); lower the loss scale or lr"
        else:
            what = "a loss or gradient on another rank"
        raise NonFiniteError(f"non-finite gradient {where.format(batch=s.batch_in_epoch)}: {what}")

    # ------------------------------------------------------------------ metrics
    def _lr(self) -> float:
        return float(self.optimizers[self._active()[0]].param_groups[0]["lr"])

    def _log_train(self) -> None:
        s = self.state
        n = max(self._win_count, 1)
        if self.dist.enabled and self._win_sums:
            # every rank's window: one all-reduce of the sums (the ranks log the same keys), mean over ranks
            keys = sorted(self._win_sums)
            vec = torch.stack([self._win_sums[k].detach().reshape(()).double() for k in keys])
            all_reduce_sum(vec, self.dist)
            means = dict(zip(keys, (vec / (n * self.dist.world_size)).tolist()))
        else:
            means = {k: float(v) / n for k, v in self._win_sums.items()}
        self._win_sums, self._win_count = {}, 0
        s.last_train = means
        record: dict[str, Any] = {"split": "train", "step": s.step, "epoch": s.epoch}
        if self.strategy.num_phases > 1:
            record["phase"] = s.phase
        record["lr"] = self._lr()
        record.update(means)
        record["time"] = round(self._elapsed(), 4)
        if self._logger is not None:
            self._logger.log(record)
        self._progress.update(s.step, {"epoch": s.epoch, **means})

    def _validate(self) -> str:
        """Validate, log, update early stopping and plateau schedulers; returns a stop reason or ``""``."""
        s, es = self.state, self.early_stopping
        metrics = {f"val_{k}": v for k, v in self._evaluate(self.val_loader, phase=s.phase).items()}
        s.last_val = metrics
        stop = ""
        if es is not None:
            improved, should_stop = es.update(metrics, s.step)
            if improved and es.restore_best:
                src = self.model.state_dict()
                if self.ema is not None:  # the averaged tensors; the model's non-tensor extra state as it is
                    src = {**src, **self.ema.shadow}
                self._best_state = _snapshot(src)
            stop = "early_stopping" if should_stop else ""
        for i, sched in enumerate(self.schedulers):
            if sched is not None and self._plateau[i] and i in self._active():
                if self.scheduler_monitor not in metrics:
                    raise ConfigError(f"scheduler 'plateau' monitors '{self.scheduler_monitor}' but validation "
                                      f"produced only {sorted(metrics)}")
                sched.step(metrics[self.scheduler_monitor])
        record: dict[str, Any] = {"split": "val", "step": s.step, "epoch": s.epoch}
        if self.strategy.num_phases > 1:
            record["phase"] = s.phase
        record.update(metrics)
        record["time"] = round(self._elapsed(), 4)
        if self._logger is not None:
            self._logger.log(record)
        # Batch logs get a validation line on the log cadence (and when a run stops), not after every validation.
        self._progress.update(s.step, metrics if (stop or s.step % self.log_every == 0) else None)
        return stop

    @torch.no_grad()
    def _evaluate(self, loader: BatchLoader, phase: int | None) -> dict[str, float]:
        model = self.model
        was_training = model.training
        swapped = False
        if self.ema is not None:
            self.ema.swap()  # the averaged weights in, in place (no copy); swapped back below
            swapped = True
        model.eval()
        sums: dict[str, Any] = {}
        total = 0.0
        try:
            with self.autocast():
                for batch in loader.iterate(0):
                    if phase is None:
                        out = self.task.validation_step(model, batch)
                    else:
                        out = self.strategy.validation_step(self, model, batch, phase)
                    w = float(self.task.batch_size(batch))
                    for k, v in out.items():
                        if isinstance(v, Tensor):
                            if v.numel() != 1:
                                raise ConfigError(f"validation metric '{k}' must be a scalar, got shape "
                                                  f"{tuple(v.shape)}")
                            v = v.detach().double()
                        sums[k] = sums.get(k, 0.0) + v * w
                    total += w
        finally:
            if swapped:
                self.ema.swap()
            model.train(was_training)
        keys = sorted(sums)
        if self.dist.enabled:
            keys = sorted({k for ks in all_gather_objects(keys, self.dist) for k in ks})
            vec = torch.tensor([float(sums.get(k, 0.0)) for k in keys] + [total], dtype=torch.float64,
                               device=self.device)
            all_reduce_sum(vec, self.dist)
            values, total = vec[:-1].tolist(), float(vec[-1])
            sums = dict(zip(keys, values))
        if total <= 0:
            return {}
        return {k: float(sums[k]) / total for k in keys}

    def _end_phase(self, reason: str) -> bool:
        """Close the current phase: record it, restore the best weights; True if another phase follows."""
        s, es = self.state, self.early_stopping
        s.phase_history.append({"phase": s.phase, "steps": s.phase_step, "epochs": s.phase_epoch,
                                "stop_reason": reason, "best": es.best if es is not None else None,
                                "best_step": es.best_step if es is not None else -1})
        if es is not None and es.restore_best and self._best_state is not None:
            with torch.no_grad():
                self.model.load_state_dict(self._best_state)
                if self.ema is not None:  # evaluation (and sciml eval) use ema.shadow: the best weights there too
                    self.ema.copy_from(self._best_state)
        if s.phase + 1 < self.strategy.num_phases:
            s.phase += 1
            s.phase_step = s.phase_epoch = 0
            if s.batch_in_epoch != 0:  # every phase starts at an epoch boundary
                s.epoch += 1
                s.batch_in_epoch = 0
            if es is not None:
                es.reset()
            self._best_state = None
            self._progress.message(f"phase {s.phase - 1} stopped ({reason}); training block {s.phase}")
            return True
        s.finished, s.stop_reason = True, reason
        return False

    # ------------------------------------------------------------------ checkpoints
    def _payload(self) -> dict[str, Any]:
        s = self.state
        window = {"sums": {k: v.detach().cpu() for k, v in self._win_sums.items()}, "count": self._win_count}
        per_rank = all_gather_objects({"rng": get_rng_state(), "window": window}, self.dist)
        rng = [r["rng"] for r in per_rank]
        train_state = s.state_dict()
        train_state["elapsed_s"] = self._elapsed()
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "sciml_version": sciml.__version__, "torch_version": str(torch.__version__),
            "step": s.step, "world_size": self.dist.world_size, "strategy": self.strategy.name,
            "train_state": train_state,
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [sch.state_dict() if sch is not None else None for sch in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping is not None else None,
            "best_model": self._best_state,
            "task": self.task.state_dict(),
            "metrics_window": window,
            "metrics_windows": [r["window"] for r in per_rank],
            "data_layout": self._data_layout(),
            "rng": rng,
        }

    def _save_checkpoint(self) -> None:
        payload = self._payload()  # collective under DDP (RNG states of every rank)
        if self.dist.is_main and self.run_dir is not None:
            directory = self.run_dir / "checkpoints"
            path = save_checkpoint(payload, checkpoint_path(directory, self.state.step))
            prune_checkpoints(directory, self.keep_last)
            self._last_checkpoint = path
        elif self.run_dir is not None:
            self._last_checkpoint = checkpoint_path(self.run_dir / "checkpoints", self.state.step)

    def _resume(self) -> bool:
        if self.resume is None or str(self.resume) in ("never", "none", ""):
            if self.run_dir is not None:
                taken = broadcast_flag(bool(list_checkpoints(self.run_dir / "checkpoints")), self.dist, self.device)
                if taken:
                    raise ConfigError(
                        f"Trainer argument 'resume': run_dir {str(self.run_dir)!r} already holds checkpoints of another "
                        "run; use resume='auto' to continue it or a new run_dir (resume='never' would mix the two runs' "
                        "checkpoints and metrics)")
            return False
        found = resume_target(self.resume, self.run_dir)
        if found is None:
            return False
        path, payload = found
        self.load_state_dict(payload, source=str(path))
        self._resumed_from = self._last_checkpoint = path
        return True

    def _check_data_layout(self, payload: dict[str, Any], state: TrainState, source: str) -> None:
        """A checkpoint taken mid-epoch can only continue with the same batching: ``batch_in_epoch`` counts batches
        of the old layout. At an epoch boundary (``batch_in_epoch == 0``) the next epoch simply starts with the new
        batching, so changes are allowed there."""
        new, nb = self._data_layout(), len(self.train_loader)
        old = payload.get("data_layout")
        if state.batch_in_epoch == 0:
            return
        changed = [f"{k} {old[k]} -> {new[k]}" for k in new if old is not None and k in old and old[k] != new[k]]
        if changed or state.batch_in_epoch >= nb:
            detail = ", ".join(changed) or f"{nb} batches per epoch now"
            raise CheckpointError(
                f"{source} stopped mid-epoch (epoch {state.epoch}, batch {state.batch_in_epoch}) and the data layout "
                f"changed: {detail}; resume with the original batch_size/world size/dataset/accumulate/drop_last, or "
                "from a checkpoint at an epoch boundary (there the new batching is exact)")

    def load_state_dict(self, payload: dict[str, Any], *, source: str = "checkpoint") -> None:
        """Restore the full TrainState from a checkpoint payload (see :func:`~sciml.train.load_checkpoint`)."""
        if payload.get("strategy") != self.strategy.name:
            raise CheckpointError(f"{source} was written by strategy '{payload.get('strategy')}', this Trainer uses "
                                  f"'{self.strategy.name}'")
        if len(payload["optimizers"]) != len(self.optimizers):
            raise CheckpointError(f"{source} holds {len(payload['optimizers'])} optimizer states, this Trainer has "
                                  f"{len(self.optimizers)}")
        state = TrainState()
        state.load_state_dict(payload["train_state"])
        self._check_data_layout(payload, state, source)
        try:
            self.model.load_state_dict(payload["model"])
            for opt, st in zip(self.optimizers, payload["optimizers"]):
                opt.load_state_dict(st)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{source} does not match this model/optimizer: {exc}") from exc
        for sched, st in zip(self.schedulers, payload["schedulers"]):
            if sched is not None and st is not None:
                sched.load_state_dict(st)
        if self.scaler is not None and payload.get("scaler") is not None:
            self.scaler.load_state_dict(payload["scaler"])
        if self.ema is not None and payload.get("ema") is not None:
            self.ema.load_state_dict(payload["ema"])
        if self.early_stopping is not None and payload.get("early_stopping") is not None:
            self.early_stopping.load_state_dict(payload["early_stopping"])
        best = payload.get("best_model")
        self._best_state = ({k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in best.items()}
                            if best is not None else None)
        self.task.load_state_dict(payload.get("task") or {})
        self.state = state
        windows = payload.get("metrics_windows") or []
        window = (windows[self.dist.rank] if len(windows) == self.dist.world_size else payload.get("metrics_window")
                  ) or {}
        self._win_sums = {k: v.to(self.device) for k, v in (window.get("sums") or {}).items()}
        self._win_count = int(window.get("count", 0))
        rng = payload.get("rng") or []
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            warnings.warn(f"{source} was written by {len(rng)} process(es), this run has {self.dist.world_size}: "
                          "RNG streams are reseeded, so the continuation is not bit-identical", RuntimeWarning,
                          stacklevel=2)
            seed_everything((self.seed or 0) + self.dist.rank + 7919 * self.state.step)
