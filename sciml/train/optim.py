"""Optimizers and LR schedulers from names or factories."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch.optim import Optimizer

from sciml.errors import ConfigError

__all__ = ["build_optimizer", "build_scheduler", "OPTIMIZERS", "SCHEDULERS"]

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
SCHEDULERS = ("step", "multistep", "exponential", "cosine", "plateau", "linear", "onecycle")


def build_optimizer(spec: str | Callable[..., Optimizer] | Optimizer, params: Iterable[torch.nn.Parameter], *,
                    lr: float, weight_decay: float = 0.0, kwargs: dict[str, Any] | None = None) -> Optimizer:
    """An optimizer over ``params``.

    Args:
        spec: a name (``adam``, ``adamw``, ``sgd``, ``rmsprop``, ``adagrad``; built with ``lr``, ``weight_decay``
            and ``kwargs``), an ``Optimizer`` subclass (same), a factory ``params -> Optimizer``, or a ready
            ``Optimizer`` (returned as is).
    """
    kwargs = dict(kwargs or {})
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        name = spec.lower()
        if name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {spec!r}; expected one of {sorted(OPTIMIZERS)} or a callable")
        return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, **kwargs)
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        return spec(params, lr=lr, weight_decay=weight_decay, **kwargs)
    if callable(spec):
        opt = spec(params)
        if not isinstance(opt, Optimizer):
            raise ConfigError(f"optimizer factory returned {type(opt).__name__}, expected a torch.optim.Optimizer")
        return opt
    raise ConfigError(f"optimizer must be a name, an Optimizer or a factory, got {type(spec).__name__}")


def build_scheduler(spec: str | Callable[[Optimizer], Any] | None, optimizer: Optimizer, *, total: int | None,
                    kwargs: dict[str, Any] | None = None) -> Any:
    """An LR scheduler for ``optimizer`` (``None`` for none).

    Names: ``step`` (``step_size``, ``gamma=0.1``), ``multistep`` (``milestones``), ``exponential`` (``gamma``),
    ``cosine`` (``T_max=total``, ``eta_min``), ``linear`` (decay to ``end_factor=0`` over ``total``),
    ``onecycle`` (``max_lr`` = the optimizer's lr, ``total_steps=total``), ``plateau`` (``ReduceLROnPlateau``,
    stepped with the monitored validation metric). ``total`` is the run length in scheduler intervals.
    A callable is called with the optimizer.
    """
    if spec is None:
        return None
    kwargs = dict(kwargs or {})
    if callable(spec) and not isinstance(spec, str):
        return spec(optimizer)
    name = str(spec).lower()
    S = torch.optim.lr_scheduler

    def need_total() -> int:
        if not total:
            raise ConfigError(f"scheduler {spec!r} needs the run length: set max_steps (or max_epochs with "
                              "scheduler_interval='epoch') or pass T_max/total_steps in scheduler_kwargs")
        return total

    if name == "step":
        kwargs.setdefault("step_size", max(1, (total or 30) // 3))
        return S.StepLR(optimizer, **kwargs)
    if name == "multistep":
        return S.MultiStepLR(optimizer, **kwargs)
    if name == "exponential":
        kwargs.setdefault("gamma", 0.99)
        return S.ExponentialLR(optimizer, **kwargs)
    if name == "cosine":
        if "T_max" not in kwargs:
            kwargs["T_max"] = need_total()
        return S.CosineAnnealingLR(optimizer, **kwargs)
    if name == "linear":
        kwargs.setdefault("start_factor", 1.0)
        kwargs.setdefault("end_factor", 0.0)
        if "total_iters" not in kwargs:
            kwargs["total_iters"] = need_total()
        return S.LinearLR(optimizer, **kwargs)
    if name == "onecycle":
        kwargs.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
        if "total_steps" not in kwargs:
            kwargs["total_steps"] = need_total()
        return S.OneCycleLR(optimizer, **kwargs)
    if name == "plateau":
        return S.ReduceLROnPlateau(optimizer, **kwargs)
    raise ConfigError(f"unknown scheduler {spec!r}; expected one of {list(SCHEDULERS)}, None or a callable")
