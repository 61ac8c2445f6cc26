"""Training strategies: end-to-end backprop (default) and layer-local learning with one optimizer per block."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from sciml.errors import ConfigError
from sciml.train.optim import build_optimizer
from sciml.train.task import LayerLocalTask, detach_tree

if TYPE_CHECKING:
    from sciml.train.trainer import Trainer

__all__ = ["Strategy", "Backprop", "LayerLocal", "make_strategy"]

NamedParams = list[tuple[str, nn.Parameter]]


class Strategy:
    """How one micro-batch turns into gradients, and which optimizers step.

    A strategy may split training into *phases* (the greedy layer-local strategy: one phase per block, each with
    its own budget and early stopping).
    """
    name = "base"
    num_phases = 1
    manual_grad_sync = False  # True: the Trainer all-reduces gradients itself under DDP (no DDP wrapper)

    def __init__(self) -> None:
        self.optimizers: list[Optimizer] = []
        self.named_params: list[NamedParams] = []

    def setup(self, trainer: "Trainer") -> None:
        raise NotImplementedError

    def step_groups(self, phase: int) -> list[int]:
        """Indices of the optimizers that step in ``phase``."""
        return list(range(len(self.optimizers)))

    def train_micro(self, trainer: "Trainer", batch: Any, scale: float, sync: bool) -> dict[str, Tensor]:
        raise NotImplementedError

    def validation_step(self, trainer: "Trainer", model: nn.Module, batch: Any, phase: int) -> dict[str, Any]:
        return trainer.task.validation_step(model, batch)


def _named(model: nn.Module, params: list[nn.Parameter]) -> NamedParams:
    names = {id(p): n for n, p in model.named_parameters()}
    return [(names.get(id(p), f"param{i}"), p) for i, p in enumerate(params)]


class Backprop(Strategy):
    """One optimizer over all trainable parameters; ``task.training_step`` gives the loss."""
    name = "backprop"

    def setup(self, trainer: "Trainer") -> None:
        model = trainer.model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = build_optimizer(trainer.optimizer_spec, params, lr=trainer.lr, weight_decay=trainer.weight_decay,
                              kwargs=trainer.optimizer_kwargs)
        opt_params = [p for g in opt.param_groups for p in g["params"]]
        self.optimizers, self.named_params = [opt], [_named(model, opt_params)]

    def train_micro(self, trainer: "Trainer", batch: Any, scale: float, sync: bool) -> dict[str, Tensor]:
        model = trainer.train_model
        no_sync = getattr(model, "no_sync", None)
        ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
        with ctx:
            with trainer.autocast():
                out = trainer.task.training_step(model, batch)
            loss = trainer.check_loss(out, "loss")
            trainer.backward(loss, scale)
        return out


class LayerLocal(Strategy):
    """Each block has its own optimizer and local loss; inputs to a block are detached.

    Args:
        mode (str): ``"greedy"`` (train block 0 until its budget or early stop, restore its best weights, then
            block 1, ...; frozen blocks below run under ``no_grad`` in eval mode, their modes restored afterwards) or ``"simultaneous"`` (every step updates
            all blocks, each on the detached output of the block below).
    """
    name = "layer_local"
    manual_grad_sync = True

    def __init__(self, mode: str = "greedy") -> None:
        super().__init__()
        if mode not in ("greedy", "simultaneous"):
            raise ConfigError(f"layer_local_mode must be 'greedy' or 'simultaneous', got {mode!r}")
        self.mode = mode
        self.blocks: list[nn.Module] = []

    def setup(self, trainer: "Trainer") -> None:
        task, model = trainer.task, trainer.model
        if not hasattr(task, "local_step"):
            raise ConfigError(f"strategy='layer_local' needs a LayerLocalTask (with local_step); got "
                              f"{type(task).__name__}")
        need = getattr(task, "layer_local_mode", None)
        if need is not None and need != self.mode:
            raise ConfigError(f"layer_local_mode: {type(task).__name__} trains its blocks in {need!r} mode, got "
                              f"{self.mode!r}; set trainer.layer_local_mode: {need}")
        self.blocks = list(task.blocks(model)) if hasattr(task, "blocks") else list(model.blocks)  # type: ignore
        if not self.blocks:
            raise ConfigError("strategy='layer_local' found no blocks")
        if isinstance(trainer.optimizer_spec, Optimizer):
            raise ConfigError("optimizer: strategy='layer_local' builds one optimizer per block, so it needs a name, "
                              "an Optimizer class or a factory (params -> Optimizer), not an Optimizer instance "
                              "(it would be shared by every block)")
        self.optimizers, self.named_params = [], []
        for k, block in enumerate(self.blocks):
            params = [p for p in block.parameters() if p.requires_grad]
            if not params:
                raise ConfigError(f"block {k} ({type(block).__name__}) has no trainable parameters; parameter-free "
                                  "steps (e.g. normalisation) belong inside a block or in block_forward")
            opt = build_optimizer(trainer.optimizer_spec, params, lr=trainer.lr, weight_decay=trainer.weight_decay,
                                  kwargs=trainer.optimizer_kwargs)
            self.optimizers.append(opt)
            self.named_params.append(_named(model, params))
        self.num_phases = len(self.blocks) if self.mode == "greedy" else 1

    def step_groups(self, phase: int) -> list[int]:
        return [phase] if self.mode == "greedy" else list(range(len(self.optimizers)))

    def train_micro(self, trainer: "Trainer", batch: Any, scale: float, sync: bool) -> dict[str, Tensor]:
        task: LayerLocalTask = trainer.task  # type: ignore[assignment]
        model = trainer.model
        inputs = task.block_input(model, batch)
        if self.mode == "greedy":
            k0 = trainer.state.phase
            if k0:
                # frozen blocks run in eval mode (no dropout, BatchNorm uses and keeps its running statistics)
                modes = [(m, m.training) for j in range(k0) for m in self.blocks[j].modules()]
                try:
                    with torch.no_grad():
                        for j in range(k0):
                            self.blocks[j].eval()
                            inputs = task.block_forward(model, j, self.blocks[j], inputs, batch)
                finally:
                    for m, mode in modes:
                        m.training = mode
            indices = [k0]
        else:
            indices = list(range(len(self.blocks)))
        out: dict[str, Tensor] = {}
        total: Tensor | None = None
        for k in indices:
            with trainer.autocast():
                metrics, outputs = task.local_step(model, k, self.blocks[k], detach_tree(inputs), batch)
            loss = trainer.check_loss(metrics, f"loss of block {k}")
            trainer.backward(loss, scale)
            for key, v in metrics.items():
                out[f"{key}_block{k}"] = v
            total = loss if total is None else total + loss
            inputs = outputs
        out["loss"] = total  # type: ignore[assignment]
        return out

    def validation_step(self, trainer: "Trainer", model: nn.Module, batch: Any, phase: int) -> dict[str, Any]:
        task = trainer.task
        if self.mode == "greedy" and hasattr(task, "block_validation_step"):
            return task.block_validation_step(model, phase, batch)  # type: ignore[attr-defined]
        return task.validation_step(model, batch)


def make_strategy(strategy: str | Strategy, *, layer_local_mode: str = "greedy") -> Strategy:
    if isinstance(strategy, Strategy):
        return strategy
    if strategy == "backprop":
        return Backprop()
    if strategy == "layer_local":
        return LayerLocal(layer_local_mode)
    raise ConfigError(f"unknown strategy {strategy!r}; expected 'backprop', 'layer_local' or a Strategy instance")
