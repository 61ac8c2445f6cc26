"""Our explicit embedded Runge–Kutta integrator (Tsit5, Dopri5, Bosh3) with differentiable per-step diagnostics.

``odeint(func, y0, t, rtol=, atol=, method=, options=)`` has torchdiffeq's call signature and returns the same
tensor; :func:`solve` returns the solution together with a :class:`SolverStats` record of every step: accepted
and rejected steps, their times and sizes (float64, no gradient), the scaled error estimate ``EEst`` and the
stiffness estimate of each step as tensors that keep their autograd graph (discretise-then-optimise), and the
number of function evaluations. :func:`rk_step` is one differentiable step, used by the local regularisers.

Step-size control: PI controller (Hairer & Wanner, "Solving ODEs II", IV.2; the defaults of OrdinaryDiffEq:
``beta1 = 7 / (10 q)``, ``beta2 = 2 / (5 q)``, ``q`` the order), or torchdiffeq's integral controller
(``controller="i"``). Initial step: Hairer's heuristic ("Solving ODEs I", II.4). Dense output at the requested
times by each tableau's interpolant. Time is kept in float64 (python floats) whatever the dtype of the state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, NonFiniteError, ShapeError
from sciml.operators.ode.tableaus import ButcherTableau, get_tableau

__all__ = ["odeint", "solve", "rk_step", "StepResult", "SolverStats", "ODESolution", "NFECounter",
           "initial_step", "rms_norm", "register_torchdiffeq", "SolverError"]


class SolverError(NonFiniteError):
    """The integrator could not continue: the step size underflowed, or the step budget ran out."""


def rms_norm(x: Tensor) -> Tensor:
    """Root mean square of all entries (the norm of OrdinaryDiffEq's ``EEst`` and torchdiffeq's error ratio)."""
    return x.pow(2).mean().sqrt()


# --------------------------------------------------------------------------------------------------- one step
@dataclass
class StepResult:
    """One Runge–Kutta step from ``(t, y)`` with size ``dt``.

    Attributes:
        y1 (Tensor): the propagated solution at ``t + dt``.
        k (list[Tensor]): the stage derivatives (``k[-1] = f(t + dt, y1)`` for FSAL tableaus).
        error (Tensor): the local error estimate ``dt * sum_i b_error[i] k_i``.
        eest (Tensor): ``norm(error / (atol + rtol * max(|y|, |y1|)))`` (scalar).
        stiffness (Tensor or None): ``||k_j - k_i|| / ||g_j - g_i||`` for the tableau's stiffness stages.
    """

    y1: Tensor
    k: list[Tensor]
    error: Tensor
    eest: Tensor
    stiffness: Tensor | None


def _combine(base: Tensor | None, terms: list[tuple[int, float]], k: list[Tensor], scale: float) -> Tensor:
    """``base + scale * sum_j w_j k_j`` with python-float weights (one fused add per term)."""
    out = base
    fresh = False  # once ``out`` is a new tensor of ours, accumulate in place (add does not save its inputs)
    for j, w in terms:
        if out is None:
            out, fresh = k[j] * (w * scale), True
        elif fresh:
            out.add_(k[j], alpha=w * scale)
        else:
            out, fresh = torch.add(out, k[j], alpha=w * scale), True
    if out is None:  # no terms and no base
        raise ValueError("empty combination")
    return out


def rk_step(func: Callable[[Tensor, Tensor], Tensor], t: float, y: Tensor, dt: float,
            tableau: str | ButcherTableau = "tsit5", *, f0: Tensor | None = None, rtol: float | Tensor = 1e-7,
            atol: float | Tensor = 1e-9, norm: Callable[[Tensor], Tensor] = rms_norm, stiffness: bool = True,
            time_dtype: torch.dtype | None = None) -> StepResult:
    r"""One differentiable step of an explicit embedded Runge–Kutta pair.

    Args:
        func (callable): the vector field ``func(t, y)`` (``t`` a 0-dim tensor of ``y``'s dtype).
        t (float): start time (float64).
        y (Tensor): state at ``t`` (any shape; the error norm runs over all of it).
        dt (float): step size (no gradient).
        tableau (str or ButcherTableau): ``"tsit5"``, ``"dopri5"`` or ``"bosh3"``. (default: ``"tsit5"``)
        f0 (Tensor, optional): ``func(t, y)`` if already known (FSAL); otherwise evaluated here.
        rtol (float or Tensor): relative tolerance of the error scale. (default: ``1e-7``)
        atol (float or Tensor): absolute tolerance of the error scale. (default: ``1e-9``)
        norm (callable): norm of the scaled error. (default: :func:`rms_norm`)
        stiffness (bool): also compute the stiffness estimate. (default: ``True``)
        time_dtype (torch.dtype, optional): dtype of the time passed to ``func``. (default: ``y.dtype``)
    """
    tab = get_tableau(tableau)
    tdt = time_dtype or y.dtype
    k: list[Tensor] = [func(torch.tensor(t, dtype=tdt, device=y.device), y) if f0 is None else f0]
    inputs: list[Tensor] = [y]
    for i in range(1, tab.stages):
        g = _combine(y, tab.stage_rows[i], k, dt)
        inputs.append(g)
        ti = t + dt if tab.c[i] == 1.0 else t + float(tab.c[i]) * dt
        k.append(func(torch.tensor(ti, dtype=tdt, device=y.device), g))
    y1 = inputs[-1] if tab.fsal else _combine(y, tab.b_terms, k, dt)
    error = _combine(None, tab.error_terms, k, dt)
    scale = torch.maximum(y.abs(), y1.abs()).mul(rtol).add(atol)
    eest = norm(error / scale)
    stiff = None
    if stiffness:
        i, j = tab.stiffness_stages
        stiff = rms_norm(k[j] - k[i]) / rms_norm(inputs[j] - inputs[i]).clamp_min(1e-30)
    return StepResult(y1, k, error, eest, stiff)


# ------------------------------------------------------------------------------------------------ statistics
@dataclass
class SolverStats:
    """Per-solve record (lists in step order). ``eest``/``stiffness`` entries are 0-dim tensors that keep their
    autograd graph when the solve was differentiable; times and sizes are python floats (float64, detached, as in
    the papers: ``dt`` comes from the controller and carries no gradient).

    Attributes:
        t, dt, eest, stiffness: accepted steps (start time, size, EEst, stiffness estimate or None).
        y: the state at the start of each accepted step (only with ``options["record_states"]``).
        rejected_t, rejected_dt, rejected_eest: rejected steps.
        nfe (int): function evaluations of the solve (including the initial-step heuristic).
        method (str), stability_size (float): the tableau and its real stability interval.
    """

    method: str = ""
    stability_size: float = float("nan")
    t: list[float] = field(default_factory=list)
    dt: list[float] = field(default_factory=list)
    eest: list[Tensor] = field(default_factory=list)
    stiffness: list[Tensor | None] = field(default_factory=list)
    rejected_t: list[float] = field(default_factory=list)
    rejected_dt: list[float] = field(default_factory=list)
    rejected_eest: list[Tensor] = field(default_factory=list)
    y: list[Tensor] = field(default_factory=list)
    nfe: int = 0

    @property
    def n_accepted(self) -> int:
        return len(self.t)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected_t)

    def eest_tensor(self) -> Tensor:
        """Accepted ``EEst`` values stacked, shape ``[n_accepted]``."""
        return torch.stack(self.eest) if self.eest else torch.zeros(0)

    def dt_tensor(self, like: Tensor | None = None) -> Tensor:
        """Accepted step sizes, shape ``[n_accepted]`` (dtype of ``like`` if given, else float64)."""
        out = torch.tensor(self.dt, dtype=torch.float64)
        return out if like is None else out.to(dtype=like.dtype, device=like.device)

    def stiffness_tensor(self) -> Tensor:
        """Accepted stiffness estimates stacked (steps without one are skipped)."""
        vals = [s for s in self.stiffness if s is not None]
        return torch.stack(vals) if vals else torch.zeros(0)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for logging."""
        return {"nfe": self.nfe, "accepted": self.n_accepted, "rejected": self.n_rejected,
                "mean_dt": (sum(self.dt) / len(self.dt)) if self.dt else float("nan")}


@dataclass
class ODESolution:
    """``ys`` (``[len(t), *y0.shape]``, or a tuple for tuple states) and the :class:`SolverStats` of the solve."""

    ys: Tensor | tuple[Tensor, ...]
    stats: SolverStats


# ------------------------------------------------------------------------------------------------ controller
@torch.no_grad()
def initial_step(func: Callable[[Tensor, Tensor], Tensor], t0: float, y0: Tensor, f0: Tensor, order: int,
                 rtol: float | Tensor, atol: float | Tensor, norm: Callable[[Tensor], Tensor] = rms_norm,
                 direction: float = 1.0) -> tuple[float, int]:
    """Hairer's initial step-size heuristic ("Solving ODEs I", II.4). Returns ``(dt, nfe used)`` (one
    evaluation of ``func``); computed without gradient."""
    scale = y0.abs().mul(rtol).add(atol)
    d0 = float(norm(y0 / scale))
    d1 = float(norm(f0 / scale))
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    y1 = y0 + (direction * h0) * f0
    f1 = func(torch.tensor(t0 + direction * h0, dtype=y0.dtype, device=y0.device), y1)
    d2 = float(norm((f1 - f0) / scale)) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100.0 * h0, h1), 1


class _Controller:
    """PI (default) or integral step-size controller; all in python floats."""

    def __init__(self, order: int, *, kind: str, safety: float, ifactor: float, dfactor: float,
                 beta1: float | None, beta2: float | None) -> None:
        kind = kind.lower()
        if kind not in ("pi", "i"):
            raise ConfigError(f"controller: expected 'pi' or 'i', got {kind!r}")
        if not (0 < dfactor <= 1 <= ifactor) or not 0 < safety <= 1:
            raise ConfigError(f"controller: need 0 < dfactor <= 1 <= ifactor and 0 < safety <= 1, got "
                              f"dfactor={dfactor}, ifactor={ifactor}, safety={safety}")
        if kind == "pi":
            self.beta1 = 7.0 / (10.0 * order) if beta1 is None else float(beta1)
            self.beta2 = 2.0 / (5.0 * order) if beta2 is None else float(beta2)
        else:
            self.beta1 = 1.0 / order if beta1 is None else float(beta1)
            self.beta2 = 0.0
        self.safety, self.ifactor, self.dfactor = safety, ifactor, dfactor
        self.previous = 1e-4

    def factor(self, eest: float, accepted: bool) -> float:
        if not math.isfinite(eest):
            return self.dfactor
        if eest == 0.0:
            return self.ifactor
        fac = self.safety * eest ** (-self.beta1)
        if accepted:
            fac *= self.previous ** self.beta2
            self.previous = max(eest, 1e-4)
            return min(self.ifactor, max(self.dfactor, fac))
        return min(1.0, max(self.dfactor, fac))


# ---------------------------------------------------------------------------------------------- the solver
def _flatten_state(y0: Any, func: Callable) -> tuple[Tensor, Callable, Callable | None]:
    if isinstance(y0, Tensor):
        return y0, func, None
    if not isinstance(y0, (tuple, list)) or not all(isinstance(v, Tensor) for v in y0):
        raise ShapeError(f"y0: expected a Tensor or a tuple of Tensors, got {type(y0).__name__}")
    shapes = [v.shape for v in y0]
    sizes = [v.numel() for v in y0]

    def unflat(flat: Tensor) -> tuple[Tensor, ...]:
        lead = flat.shape[:-1]
        return tuple(p.reshape(*lead, *s) for p, s in zip(flat.split(sizes, dim=-1), shapes))

    def flat_func(t: Tensor, y: Tensor) -> Tensor:
        return torch.cat([v.reshape(-1) for v in func(t, unflat(y))])

    return torch.cat([v.reshape(-1) for v in y0]), flat_func, unflat


def _times(t: Any) -> list[float]:
    if isinstance(t, Tensor):
        if t.dim() != 1 or t.numel() < 1:
            raise ShapeError(f"t: expected a 1-D tensor of output times, got shape {tuple(t.shape)}")
        if t.requires_grad:
            raise ConfigError("t: gradients with respect to the output times are not supported")
        ts = t.detach().to(torch.float64).cpu().tolist()
    else:
        ts = [float(v) for v in t]
    if not all(math.isfinite(v) for v in ts):
        raise ConfigError(f"t: output times must be finite, got {ts}")
    return ts


def solve(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor | Sequence[Tensor], t: Tensor | Sequence[float], *,
          rtol: float | Tensor = 1e-7, atol: float | Tensor = 1e-9, method: str | ButcherTableau = "tsit5",
          options: dict[str, Any] | None = None) -> ODESolution:
    r"""Solve :math:`dy/dt = f(t, y)`, :math:`y(t_0) = y_0` and return the solution at ``t`` with per-step stats.

    Args:
        func (callable): ``func(t, y) -> dy/dt`` (``t`` a 0-dim tensor of ``y0``'s dtype).
        y0 (Tensor or tuple of Tensors): the initial state (any shape; batched states share one step size).
        t (Tensor or sequence of float): output times, strictly increasing or strictly decreasing; ``t[0]`` is the
            initial time.
        rtol (float or Tensor): relative tolerance. (default: ``1e-7``)
        atol (float or Tensor): absolute tolerance. (default: ``1e-9``)
        method (str or ButcherTableau): ``"tsit5"``, ``"dopri5"`` or ``"bosh3"``. (default: ``"tsit5"``)
        options (dict, optional): ``first_step`` (skip the heuristic), ``max_step``, ``min_step`` (default 0),
            ``max_num_steps`` (default 100000), ``controller`` (``"pi"`` or ``"i"``), ``safety`` (0.9),
            ``ifactor`` (10), ``dfactor`` (0.2), ``beta1``, ``beta2``, ``norm`` (callable, default RMS),
            ``diagnostics`` (record differentiable EEst/stiffness tensors, default ``True``; with ``False`` the
            error norm is computed without autograd and only times, sizes and NFE are kept), ``stiffness``
            (compute the stiffness estimate, default ``True``), ``record_states`` (keep the state at the
            start of every accepted step in ``stats.y``, default ``False``), ``stats`` (a :class:`SolverStats` to fill).
    """
    opts = dict(options or {})
    tab = get_tableau(method)
    stats: SolverStats = opts.pop("stats", None) or SolverStats()
    stats.method, stats.stability_size = tab.name, tab.stability_size
    first_step = opts.pop("first_step", None)
    max_step = float(opts.pop("max_step", math.inf))
    min_step = float(opts.pop("min_step", 0.0))
    max_num_steps = int(opts.pop("max_num_steps", 100_000))
    norm = opts.pop("norm", None) or rms_norm
    diagnostics = bool(opts.pop("diagnostics", True))
    want_stiff = bool(opts.pop("stiffness", True)) and diagnostics
    record_states = bool(opts.pop("record_states", False))
    ctrl = _Controller(tab.order, kind=opts.pop("controller", "pi"), safety=float(opts.pop("safety", 0.9)),
                       ifactor=float(opts.pop("ifactor", 10.0)), dfactor=float(opts.pop("dfactor", 0.2)),
                       beta1=opts.pop("beta1", None), beta2=opts.pop("beta2", None))
    if opts:
        raise ConfigError(f"options: unknown key(s) {sorted(opts)}; see the docstring of sciml.operators.ode.solve")

    y, f, unflat = _flatten_state(y0, func)
    if not y.is_floating_point():
        raise ShapeError(f"y0: expected a floating-point tensor, got dtype {y.dtype}")
    ts = _times(t)
    direction = 1.0
    if len(ts) > 1 and ts[1] < ts[0]:
        direction = -1.0
        inner = f

        def f(tt: Tensor, yy: Tensor) -> Tensor:  # noqa: F811 - integrate s = -t forward
            return -inner(-tt, yy)
        ts = [-v for v in ts]
    if any(b <= a for a, b in zip(ts[:-1], ts[1:])):
        raise ConfigError(f"t: output times must be strictly monotonic, got {[direction * v for v in ts]}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, Tensor) and tol.requires_grad:
            raise ConfigError(f"{name}: tolerances cannot require gradient")
    if isinstance(rtol, Tensor):
        rtol = rtol.to(dtype=y.dtype, device=y.device)
    if isinstance(atol, Tensor):
        atol = atol.to(dtype=y.dtype, device=y.device)

    def call(tt: float, yy: Tensor) -> Tensor:
        stats.nfe += 1
        return f(torch.tensor(tt, dtype=y.dtype, device=y.device), yy)

    def counted(tt: Tensor, yy: Tensor) -> Tensor:
        stats.nfe += 1
        return f(tt, yy)

    outputs: list[Tensor] = [y]
    t_now, t_end = ts[0], ts[-1]
    if len(ts) == 1:
        return ODESolution(unflat(torch.stack(outputs)) if unflat else torch.stack(outputs), stats)
    f_now = call(t_now, y)
    if first_step is None:
        dt, _ = initial_step(counted, t_now, y, f_now, tab.order, rtol, atol, norm)
    else:
        dt = float(first_step)
    dt = min(max(dt, min_step), max_step)
    next_out = 1
    steps = 0
    while next_out < len(ts):
        if steps >= max_num_steps:
            raise SolverError(f"odeint: max_num_steps={max_num_steps} reached at t={direction * t_now:.6g} "
                              f"(last dt={dt:.3g}); the problem may be stiff, or raise options['max_num_steps']")
        steps += 1
        h = min(dt, t_end - t_now)
        last = h >= t_end - t_now
        if diagnostics:
            step = rk_step(counted, t_now, y, h, tab, f0=f_now, rtol=rtol, atol=atol, norm=norm,
                           stiffness=want_stiff)
        else:
            step = _step_nodiag(counted, t_now, y, h, tab, f_now, rtol, atol, norm)
        eest = float(step.eest.detach())
        accepted = eest <= 1.0 or h <= min_step
        factor = ctrl.factor(eest, accepted)
        if accepted:
            t_next = t_end if last else t_now + h
            stats.t.append(direction * t_now)
            stats.dt.append(h)
            if record_states:
                stats.y.append(y)
            if diagnostics:
                stats.eest.append(step.eest)
                stats.stiffness.append(step.stiffness)
            while next_out < len(ts) and ts[next_out] <= t_next:
                if ts[next_out] == t_next:
                    outputs.append(step.y1)
                else:
                    theta = (ts[next_out] - t_now) / h
                    w = tab.dense_weights(theta)
                    outputs.append(_combine(y, [(i, float(v)) for i, v in enumerate(w) if v != 0.0], step.k, h))
                next_out += 1
            t_now, y = t_next, step.y1
            f_now = step.k[-1] if tab.fsal else call(t_now, y)
        else:
            stats.rejected_t.append(direction * t_now)
            stats.rejected_dt.append(h)
            if diagnostics:
                stats.rejected_eest.append(step.eest)
        dt = min(max(h * factor, min_step), max_step)
        if not accepted and dt <= 1e-14 * max(1.0, abs(t_now)):
            raise SolverError(f"odeint: step size underflow (dt={dt:.3g}) at t={direction * t_now:.6g}; "
                              f"EEst={eest:.3g}. The vector field may be non-finite or stiff there")
    ys = torch.stack(outputs)
    return ODESolution(unflat(ys) if unflat else ys, stats)


def _step_nodiag(func: Callable, t: float, y: Tensor, dt: float, tab: ButcherTableau, f0: Tensor,
                 rtol: Any, atol: Any, norm: Callable) -> StepResult:
    """A step whose error norm is computed without autograd (no diagnostics kept)."""
    k: list[Tensor] = [f0]
    g = y
    for i in range(1, tab.stages):
        g = _combine(y, tab.stage_rows[i], k, dt)
        ti = t + dt if tab.c[i] == 1.0 else t + float(tab.c[i]) * dt
        k.append(func(torch.tensor(ti, dtype=y.dtype, device=y.device), g))
    y1 = g if tab.fsal else _combine(y, tab.b_terms, k, dt)
    with torch.no_grad():
        error = _combine(None, tab.error_terms, k, dt)
        eest = norm(error / torch.maximum(y.abs(), y1.abs()).mul(rtol).add(atol))
    return StepResult(y1, k, error, eest, None)


def odeint(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor | Sequence[Tensor], t: Tensor | Sequence[float], *,
           rtol: float | Tensor = 1e-7, atol: float | Tensor = 1e-9, method: str | ButcherTableau | None = None,
           options: dict[str, Any] | None = None, event_fn: Callable | None = None) -> Tensor | tuple[Tensor, ...]:
    """Drop-in for ``torchdiffeq.odeint``: same arguments, same output (``[len(t), *y0.shape]``). ``method``
    defaults to ``"tsit5"``; see :func:`solve` for ``options`` (pass ``options={"stats": SolverStats()}`` to
    keep the per-step diagnostics). Event functions are not supported."""
    if event_fn is not None:
        raise ConfigError("event_fn: event handling is not supported by sciml's odeint; use torchdiffeq.odeint")
    return solve(func, y0, t, rtol=rtol, atol=atol, method=method or "tsit5", options=options).ys


# ----------------------------------------------------------------------------------------------- NFE counter
class _CountBackward(torch.autograd.Function):
    @staticmethod
    def forward(counter: "NFECounter", out: Tensor) -> Tensor:  # type: ignore[override]
        return out.view_as(out)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        ctx.counter = inputs[0]

    @staticmethod
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        ctx.counter.nfe_backward += 1
        return None, grad

    @staticmethod
    def jvp(ctx: Any, _counter: Any, tangent: Tensor) -> Tensor:
        return tangent


class NFECounter(nn.Module):
    """Wraps a vector field and counts its evaluations: ``nfe_forward`` (calls) and ``nfe_backward`` (vector–
    Jacobian products taken through its outputs during backward passes, e.g. the backward of a
    discretise-then-optimise solve or the adjoint's vjps). Works with any solver (ours, torchdiffeq, torchsde:
    for SDEs wrap the drift and diffusion separately).

    Args:
        func (callable or nn.Module): the vector field ``func(t, y)``.
    """

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.func = func
        self.nfe_forward = 0
        self.nfe_backward = 0

    def reset(self) -> None:
        self.nfe_forward = 0
        self.nfe_backward = 0

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe_forward += 1
        out = self.func(t, y)
        if torch.is_grad_enabled() and isinstance(out, Tensor) and out.requires_grad:
            out = _CountBackward.apply(self, out)
        return out


# ------------------------------------------------------------------------------------- torchdiffeq adapter
def register_torchdiffeq(prefix: str = "sciml_") -> list[str]:
    """Register our tableaus as torchdiffeq methods (``"sciml_tsit5"``, ``"sciml_dopri5"``, ``"sciml_bosh3"``),
    so that ``torchdiffeq.odeint`` and ``torchdiffeq.odeint_adjoint`` (forward and adjoint solves) run on our
    integrator. This writes into torchdiffeq's internal solver table (``torchdiffeq._impl.odeint.SOLVERS``), which
    is not public API; returns the registered names."""
    import importlib

    _tdq = importlib.import_module("torchdiffeq._impl.odeint")  # the module (the package re-exports a function)

    names = []
    for key in ("tsit5", "dopri5", "bosh3"):
        name = prefix + key
        _tdq.SOLVERS[name] = _make_torchdiffeq_solver(key)
        names.append(name)
    return names


def _make_torchdiffeq_solver(key: str) -> type:
    class _SciMLSolver:
        """torchdiffeq solver protocol: ``__init__(func, y0, rtol, atol, **options)`` then ``integrate(t)``."""

        def __init__(self, func: Callable, y0: Tensor, rtol: Any, atol: Any, **options: Any) -> None:
            self.func, self.y0, self.rtol, self.atol, self.options = func, y0, rtol, atol, options

        @classmethod
        def valid_callbacks(cls) -> set:
            return set()  # no step callbacks (torchdiffeq warns about any that the function defines)

        def integrate(self, t: Tensor) -> Tensor:
            return solve(self.func, self.y0, t, rtol=self.rtol, atol=self.atol, method=key,
                         options={"diagnostics": False, **self.options}).ys

        def integrate_until_event(self, t0: Tensor, event_fn: Callable) -> Any:
            raise ConfigError("event_fn: event handling is not supported by sciml's solvers")

    _SciMLSolver.__name__ = f"SciML{key.capitalize()}Solver"
    return _SciMLSolver
