"""Early stopping rules and the exponential moving average of weights."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sciml.errors import ConfigError

__all__ = ["EarlyStopping", "ExponentialMovingAverage"]


@dataclass
class EarlyStopping:
    r"""When to stop training, judged after every validation; also tracks the best validation and its weights.

    Two rules (``rule``):

    * ``"patience"`` (patience-on-best, e.g. ForwardGNN): stop after ``patience`` validations in a row without an
      improvement of more than ``min_delta`` over the best value.
    * ``"mean_of_last"`` (DAGNN / PyG benchmark): stop when the current value is worse than the mean of the previous
      ``window`` values, :math:`v_t > \frac{1}{K}\sum_{i=1}^{K} v_{t-i}` for ``mode="min"``.

    Neither rule may stop during the first ``start_after`` validations. With ``restore_best=True`` the weights of
    the best validation are put back into the model when training stops (for any reason).
    Subclass and override :meth:`should_stop` for other rules; the state is checkpointed through
    :meth:`state_dict`.

    Args:
        monitor (str): metric key, e.g. ``"val_loss"`` or ``"val_acc"``. (default: ``"val_loss"``)
        mode (str): ``"min"`` or ``"max"``. (default: ``"min"``)
        patience (int): validations without improvement before stopping (``"patience"`` rule). (default: ``10``)
        min_delta (float): an improvement must exceed this. (default: ``0.0``)
        rule (str): ``"patience"`` or ``"mean_of_last"``. (default: ``"patience"``)
        window (int): ``K`` of the ``"mean_of_last"`` rule. (default: ``100``)
        start_after (int): validations before a stop is allowed. (default: ``0``)
        restore_best (bool): load the best weights back at the end. (default: ``True``)
    """
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 10
    min_delta: float = 0.0
    rule: str = "patience"
    window: int = 100
    start_after: int = 0
    restore_best: bool = True
    # running state (checkpointed)
    best: float | None = field(default=None, init=False)
    best_step: int = field(default=-1, init=False)
    bad_validations: int = field(default=0, init=False)
    num_validations: int = field(default=0, init=False)
    history: list[float] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"EarlyStopping.mode must be 'min' or 'max', got {self.mode!r}")
        if self.rule not in ("patience", "mean_of_last"):
            raise ConfigError(f"EarlyStopping.rule must be 'patience' or 'mean_of_last', got {self.rule!r}")
        if self.patience < 1 or self.window < 1:
            raise ConfigError(f"EarlyStopping.patience and .window must be >= 1, got {self.patience}, {self.window}")

    def reset(self) -> None:
        """Forget the running state (the layer-local greedy strategy calls this for every block)."""
        self.best, self.best_step, self.bad_validations, self.num_validations = None, -1, 0, 0
        self.history = []

    def is_improvement(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def update(self, metrics: dict[str, float], step: int) -> tuple[bool, bool]:
        """Record one validation. Returns ``(improved, stop)``."""
        if self.monitor not in metrics:
            raise ConfigError(f"early stopping monitors '{self.monitor}' but validation produced only "
                              f"{sorted(metrics)}")
        value = float(metrics[self.monitor])
        improved = self.is_improvement(value) and not math.isnan(value)
        if improved:
            self.best, self.best_step, self.bad_validations = value, step, 0
        else:
            self.bad_validations += 1
        stop = self.should_stop(value) and self.num_validations >= self.start_after
        self.history.append(value)
        if len(self.history) > self.window:
            del self.history[: len(self.history) - self.window]
        self.num_validations += 1
        return improved, stop

    def should_stop(self, value: float) -> bool:
        """The stopping rule, called before ``value`` is appended to :attr:`history`."""
        if self.rule == "patience":
            return self.bad_validations >= self.patience
        if len(self.history) < self.window:
            return False
        mean = sum(self.history[-self.window:]) / self.window
        return value > mean if self.mode == "min" else value < mean

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "bad_validations": self.bad_validations,
                "num_validations": self.num_validations, "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], int(state["best_step"])
        self.bad_validations, self.num_validations = int(state["bad_validations"]), int(state["num_validations"])
        self.history = [float(v) for v in state["history"]]


class ExponentialMovingAverage:
    r"""Exponential moving average of a model's floating-point parameters and buffers,
    :math:`\bar\theta \leftarrow \beta\,\bar\theta + (1-\beta)\,\theta` after every optimizer step
    (non-float buffers are copied).

    Args:
        model (nn.Module): the model to track.
        decay (float): :math:`\beta \in [0, 1)`.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        # tensors only: a module's non-tensor extra state is not averaged
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()
                                                if isinstance(v, torch.Tensor)}
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._swap_pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._model = model

    def _float_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._pairs is None:
            live = self._model.state_dict(keep_vars=True)
            self._pairs = [(self.shadow[k], live[k].detach()) for k in self.shadow]
        return self._pairs

    @torch.no_grad()
    def update(self) -> None:
        floats_s, floats_p = [], []
        for s, p in self._float_pairs():
            if s.is_floating_point():
                floats_s.append(s)
                floats_p.append(p)
            else:
                s.copy_(p)
        if floats_s:
            torch._foreach_lerp_(floats_s, floats_p, 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the averaged and the live weights in place (no copy: the tensors swap their storage); call it
        again to swap back. The model's parameter and buffer objects stay the same (optimizer state, hooks)."""
        if self._swap_pairs is None:
            live = self._model.state_dict(keep_vars=True)
            seen: set[int] = set()
            pairs = []
            for k, s in self.shadow.items():
                t = live[k]
                if id(t) in seen:  # tied weights: one tensor under several names, swap it once
                    continue
                seen.add(id(t))
                pairs.append((t, s))
            self._swap_pairs = pairs
        for t, s in self._swap_pairs:
            data = t.data
            t.data = s.data
            s.data = data

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (its non-tensor extra state stays as it is)."""
        model.load_state_dict({**model.state_dict(), **self.shadow})

    @torch.no_grad()
    def copy_from(self, state: dict[str, torch.Tensor]) -> None:
        """Set the averaged weights to ``state`` (e.g. the restored best weights)."""
        for k, v in state.items():
            if k in self.shadow:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load the averaged weights. The configured ``decay`` is kept; a checkpoint written with another decay
        gives a ``RuntimeWarning`` (the continuation then differs from the original run)."""
        old = float(state["decay"])
        if old != self.decay:
            warnings.warn(f"the checkpoint's EMA decay {old} differs from the configured ema={self.decay}; "
                          f"continuing with {self.decay}", RuntimeWarning, stacklevel=2)
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
