"""Optimizers and LR schedulers from names or factories."""
from __future__ import annotations

import inspect
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
_SCHEDULER_CLASSES = {
    "step": "StepLR", "multistep": "MultiStepLR", "exponential": "ExponentialLR", "cosine": "CosineAnnealingLR",
    "plateau": "ReduceLROnPlateau", "linear": "LinearLR", "onecycle": "OneCycleLR",
}


def check_kwargs(cls: type, kwargs: dict[str, Any], key: str, skip: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` naming ``key.<name>`` for an entry of ``kwargs`` that ``cls`` does not take."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - no signature to check against
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if n not in skip and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                                          inspect.Parameter.KEYWORD_ONLY)]
    for name in kwargs:
        if name not in valid:
            raise ConfigError(f"{key}.{name}: unknown argument of {cls.__name__}; valid: {', '.join(valid)}")


def _construct(cls: type, key: str, label: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {label} {cls.__name__} rejected its arguments: {exc}") from exc


def build_optimizer(spec: str | Callable[..., Optimizer] | Optimizer, params: Iterable[torch.nn.Parameter], *,
                    lr: float, weight_decay: float = 0.0, kwargs: dict[str, Any] | None = None) -> Optimizer:
    """An optimizer over ``params``.

    Args:
        spec: a name (``adam``, ``adamw``, ``sgd``, ``rmsprop``, ``adagrad``; built with ``lr``, ``weight_decay``
            and ``kwargs``), an ``Optimizer`` subclass (same), a factory ``params -> Optimizer``, or a ready
            ``Optimizer`` (returned as is).

    Raises:
        ConfigError: an unknown name, or a ``kwargs`` key the optimizer does not take (``optimizer_kwargs.<key>``,
            with the valid ones).
    """
    kwargs = dict(kwargs or {})
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        name = spec.lower()
        if name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {spec!r}; expected one of {sorted(OPTIMIZERS)} or a callable")
        spec = OPTIMIZERS[name]
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        check_kwargs(spec, kwargs, "optimizer_kwargs", skip=("self", "params", "lr", "weight_decay"))
        return _construct(spec, "optimizer_kwargs", "optimizer", params, lr=lr, weight_decay=weight_decay, **kwargs)
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
    A callable is called with the optimizer. A ``kwargs`` key the scheduler does not take is a
    :class:`ConfigError` naming ``scheduler_kwargs.<key>`` and the valid ones.
    """
    if spec is None:
        return None
    kwargs = dict(kwargs or {})
    if callable(spec) and not isinstance(spec, str):
        return spec(optimizer)
    name = str(spec).lower()
    S = torch.optim.lr_scheduler
    if name in _SCHEDULER_CLASSES:
        cls = getattr(S, _SCHEDULER_CLASSES[name])
        check_kwargs(cls, kwargs, "scheduler_kwargs", skip=("self", "optimizer"))
        return _build_scheduler(name, spec, optimizer, total, kwargs)
    raise ConfigError(f"unknown scheduler {spec!r}; expected one of {list(SCHEDULERS)}, None or a callable")


def _build_scheduler(name: str, spec: Any, optimizer: Optimizer, total: int | None, kwargs: dict[str, Any]) -> Any:
    S = torch.optim.lr_scheduler

    def need_total() -> int:
        if not total:
            raise ConfigError(f"scheduler {spec!r} needs the run length: set max_steps (or max_epochs with "
                              "scheduler_interval='epoch') or pass T_max/total_steps in scheduler_kwargs")
        return total

    if name == "step":
        kwargs.setdefault("step_size", max(1, (total or 30) // 3))
        return _construct(S.StepLR, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
    if name == "multistep":
        return _construct(S.MultiStepLR, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
    if name == "exponential":
        kwargs.setdefault("gamma", 0.99)
        return _construct(S.ExponentialLR, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
    if name == "cosine":
        if "T_max" not in kwargs:
            kwargs["T_max"] = need_total()
        return _construct(S.CosineAnnealingLR, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
    if name == "linear":
        kwargs.setdefault("start_factor", 1.0)
        kwargs.setdefault("end_factor", 0.0)
        if "total_iters" not in kwargs:
            kwargs["total_iters"] = need_total()
        return _construct(S.LinearLR, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
    if name == "onecycle":
        kwargs.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
        if "total_steps" not in kwargs and not ("epochs" in kwargs and "steps_per_epoch" in kwargs):
            kwargs["total_steps"] = need_total()
        warmup = float(kwargs.get("pct_start", 0.3)) * kwargs.get("total_steps", 0) - 1
        if "total_steps" in kwargs and warmup <= 0:  # torch divides by this: ZeroDivisionError at the first step
            raise ConfigError(f"scheduler 'onecycle': pct_start * total_steps - 1 = {warmup:g} (total_steps="
                              f"{kwargs['total_steps']}); its warm-up needs at least 2 scheduler steps: raise "
                              "scheduler_kwargs.pct_start or the run length")
        return _construct(S.OneCycleLR, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
    return _construct(S.ReduceLROnPlateau, "scheduler_kwargs", "scheduler", optimizer, **kwargs)
