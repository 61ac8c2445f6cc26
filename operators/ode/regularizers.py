r"""Regularisers that make neural ODEs cheap to solve, and the baselines they are compared with.

* **ERNODE / SRNODE / ER+SR** (global; Pal, Ma, Shah, Rackauckas, "Opening the Blackbox: Accelerating Neural
  Differential Equations by Regularizing Internal Solver Heuristics", ICML 2021): penalise the solver's own error
  estimate :math:`\mathrm{EEst}_j\,|dt_j|` and stiffness estimate of every accepted step of the forward solve,
  differentiating through the solver (discretise-then-optimise; our :func:`~sciml.operators.ode.solve`).
* **Local regularisation** (Pal, Edelman, Rackauckas, "Locally Regularized Neural Differential Equations: Some
  Black Boxes Were Meant to Remain Closed!", ICML 2023): one extra differentiable Tsit5 step at a random time
  :math:`t_r` from the detached state :math:`z(t_r)`, with :math:`dt` from the initial-step heuristic;
  :math:`R = \mathrm{EEst}(t_r)\,dt`. Works with any solver and any adjoint. ``"unbiased"``: :math:`t_r \sim U[t_0,
  t_1]`; ``"biased"``: :math:`t_r` drawn from the accepted step times of the solve.
* **TayNODE** (Kelly, Bettencourt, Johnson, Duvenaud, "Learning Differential Equations that are Easy to Solve",
  NeurIPS 2020): :math:`\int \|d^K z/dt^K\|^2 dt`, the :math:`K`-th total derivative by nested forward mode
  (``torch.func.jvp``), integrated as an extra state.
* **RNODE** (Finlay, Jacobsen, Nurbekyan, Oberman, "How to train your neural ODE", ICML 2020): kinetic energy
  :math:`\int\|f\|^2 dt` plus :math:`\int\|\nabla_z f\|_F^2 dt`, the latter by Hutchinson's estimator
  :math:`\mathbb{E}_\epsilon\|\epsilon^\top\nabla_z f\|^2` with one vector–Jacobian product.
* **STEER** (Ghosh, Behl, Dupont, Torr, Namboodiri, "STEER: Simple Temporal Regularization For Neural ODEs",
  NeurIPS 2020): the end time is drawn from :math:`U(t_1 - b, t_1 + b)` during training.

:class:`NeuralODE` puts them behind one switch (``regularizer="ernode"`` ...) for any vector field; the λ schedules
of the papers are :class:`ExponentialDecay` and :class:`ConstantSchedule`. Details and the code-vs-paper
differences (mean vs sum, SR without ``dt``) are in docs/neural_ode.md.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError
from sciml.operators.ode.integrate import SolverStats, initial_step, rk_step, rms_norm, solve
from sciml.operators.ode.tableaus import get_tableau

__all__ = ["error_regularizer", "stiffness_regularizer", "error_stiffness_regularizer", "local_error_regularizer",
           "total_derivative", "taynode_integrand", "kinetic_energy", "jacobian_frobenius_estimate",
           "steer_end_time", "ExponentialDecay", "ConstantSchedule", "NeuralODE", "REGULARIZERS"]

REGULARIZERS = ("none", "ernode", "srnode", "er_sr", "local_unbiased", "local_biased", "taynode", "rnode", "steer")


def _aggregate(values: Tensor, agg: str) -> Tensor:
    if agg == "mean":
        return values.mean()
    if agg == "sum":
        return values.sum()
    if agg == "max":
        return values.max()
    raise ConfigError(f"agg: expected 'mean', 'sum' or 'max', got {agg!r}")


# ---------------------------------------------------------------------------------------------- global (DTO)
def error_regularizer(stats: SolverStats, agg: str = "mean") -> Tensor:
    r"""ERNODE: aggregate of :math:`\mathrm{EEst}_j\,|dt_j|` over the accepted steps of a differentiable solve.

    Args:
        stats (SolverStats): the stats of :func:`~sciml.operators.ode.solve` (with ``diagnostics=True``).
        agg (str): ``"mean"`` (the official code), ``"sum"`` (the paper's formula) or ``"max"``.
            (default: ``"mean"``)
    """
    if not stats.eest:
        raise ConfigError("stats: no recorded EEst values; solve with options={'diagnostics': True}")
    eest = stats.eest_tensor()
    return _aggregate(eest * stats.dt_tensor(eest).abs(), agg)


def stiffness_regularizer(stats: SolverStats, agg: str = "max", *, scale_by_dt: bool = False) -> Tensor:
    r"""SRNODE: aggregate of the stiffness estimates :math:`S_j / s_\mathrm{stab}` of the accepted steps
    (:math:`s_\mathrm{stab}` = the tableau's real stability interval, 3.5068 for Tsit5).

    Args:
        stats (SolverStats): the stats of a differentiable solve.
        agg (str): ``"max"`` (official MNIST code), ``"mean"`` or ``"sum"``. (default: ``"max"``)
        scale_by_dt (bool): multiply by :math:`|dt_j|` (the paper's :math:`\sum_j S_j |dt_j|`).
            (default: ``False``, as the code)
    """
    vals, dts = [], []
    for s, dt in zip(stats.stiffness, stats.dt):
        if s is not None:
            vals.append(s)
            dts.append(dt)
    if not vals:
        raise ConfigError("stats: no recorded stiffness estimates; solve with options={'diagnostics': True, "
                          "'stiffness': True}")
    s = torch.stack(vals) / stats.stability_size
    s = torch.nan_to_num(s, nan=0.0, posinf=0.0)
    if scale_by_dt:
        s = s * torch.tensor(dts, dtype=s.dtype, device=s.device).abs()
    return _aggregate(s, agg)


def error_stiffness_regularizer(stats: SolverStats, *, stiffness_weight: float = 0.1, agg: str = "mean") -> Tensor:
    r"""ER+SR as the official code saves it per accepted step:
    :math:`\mathrm{EEst}_j |dt_j| + w\,S_j / s_\mathrm{stab}` (non-finite stiffness terms count as 0), aggregated.

    Args:
        stats (SolverStats): the stats of a differentiable solve.
        stiffness_weight (float): :math:`w`. (default: ``0.1``)
        agg (str): ``"mean"``, ``"sum"`` or ``"max"``. (default: ``"mean"``)
    """
    eest = stats.eest_tensor()
    stiff = torch.stack([s if s is not None else torch.zeros_like(e) for s, e in zip(stats.stiffness, stats.eest)])
    stiff = torch.nan_to_num(stiff / stats.stability_size, nan=0.0, posinf=0.0)
    return _aggregate(eest * stats.dt_tensor(eest).abs() + stiffness_weight * stiff, agg)


# ---------------------------------------------------------------------------------------------------- local
def local_error_regularizer(func: Callable[[Tensor, Tensor], Tensor], t_r: float, z_r: Tensor, *,
                            method: str = "tsit5", rtol: float = 1.4e-8, atol: float = 1.4e-8,
                            dt: float | None = None) -> tuple[Tensor, int]:
    r"""Local ERNODE: :math:`R = \mathrm{EEst}\,dt` of one differentiable step from ``(t_r, z_r.detach())``
    (gradient reaches the parameters of ``func`` only), ``dt`` from Hairer's initial-step heuristic at
    ``(t_r, z_r)`` unless given. Returns ``(R, function evaluations used)``.

    Args:
        func (callable): the vector field ``func(t, z)``.
        t_r (float): the time of the extra step.
        z_r (Tensor): the state at ``t_r`` (from any solver; detached here).
        method (str): the tableau of the step. (default: ``"tsit5"``)
        rtol (float): relative tolerance of the error scale (use the solve's). (default: ``1.4e-8``)
        atol (float): absolute tolerance of the error scale. (default: ``1.4e-8``)
        dt (float, optional): step size; default: the initial-step heuristic (no gradient).
    """
    tab = get_tableau(method)
    z = z_r.detach()
    tt = torch.tensor(float(t_r), dtype=z.dtype, device=z.device)
    f0 = func(tt, z)
    nfe = 1
    if dt is None:
        dt, extra = initial_step(func, float(t_r), z, f0.detach(), tab.order, rtol, atol)
        nfe += extra
    step = rk_step(func, float(t_r), z, float(dt), tab, f0=f0, rtol=rtol, atol=atol, stiffness=False)
    return step.eest * abs(dt), nfe + tab.stages - 1


# ----------------------------------------------------------------------------------------------- baselines
def total_derivative(func: Callable[[Tensor, Tensor], Tensor], t: Tensor, z: Tensor, order: int) -> Tensor:
    r""":math:`d^K z/dt^K` along the flow :math:`\dot z = f(t, z)` at ``(t, z)``, by ``order - 1`` nested
    forward-mode products (``torch.func.jvp``) of the augmented field :math:`(t, z) \mapsto (1, f(t, z))`.
    Differentiable with respect to the parameters of ``func`` by ordinary reverse mode.

    Args:
        func (callable): ``func(t, z)``.
        t (Tensor): 0-dim time.
        z (Tensor): state.
        order (int): :math:`K \ge 1`.
    """
    if not isinstance(order, int) or order < 1:
        raise ConfigError(f"order: expected an integer >= 1, got {order!r}")

    def level(k: int) -> Callable[[Tensor, Tensor], Tensor]:
        if k == 1:
            return func
        inner = level(k - 1)

        def derivative(tt: Tensor, zz: Tensor) -> Tensor:
            _, tangent = torch.func.jvp(inner, (tt, zz), (torch.ones_like(tt), func(tt, zz)))
            return tangent
        return derivative

    return level(order)(t, z)


def _per_sample(x: Tensor, reduce: str) -> Tensor:
    if x.dim() == 0:
        raise ShapeError("the state must have a batch dimension ([B, ...]), got a 0-dim tensor")
    flat = x.reshape(x.shape[0], -1)
    return flat.mean(1) if reduce == "mean" else flat.sum(1)


def taynode_integrand(func: Callable, t: Tensor, z: Tensor, order: int) -> Tensor:
    """Per-sample :math:`\\mathrm{mean}(d^K z / dt^K)^2` (averaged over state dimensions, as Kelly et al.'s
    code), shape ``[B]``."""
    return _per_sample(total_derivative(func, t, z, order).pow(2), "mean")


def kinetic_energy(f: Tensor) -> Tensor:
    """Per-sample :math:`\\|f\\|^2`, shape ``[B]``."""
    return _per_sample(f.pow(2), "sum")


def jacobian_frobenius_estimate(func: Callable, t: Tensor, z: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(f(t, z), per-sample ||eps^T d f/d z||^2)``: one vector–Jacobian product with ``create_graph=True``;
    with :math:`\epsilon \sim N(0, I)` its expectation is :math:`\|\nabla_z f\|_F^2` (Hutchinson). Samples of a
    batch must not interact through ``func`` (per-sample Jacobians)."""
    with torch.enable_grad():
        zz = z if z.requires_grad else z.detach().requires_grad_(True)
        f = func(t, zz)
        (vjp,) = torch.autograd.grad(f, zz, eps, create_graph=True)
    return f, _per_sample(vjp.pow(2), "sum")


def steer_end_time(t1: float, b: float, *, generator: random.Random | None = None) -> float:
    """STEER's training end time :math:`T \\sim U(t_1 - b, t_1 + b)`."""
    u = (generator or random).random()
    return t1 - b + 2.0 * b * u


# ------------------------------------------------------------------------------------------------ schedules
class ExponentialDecay:
    r""":math:`\lambda(e) = \lambda_0 \exp(-e \ln(\lambda_0/\lambda_1) / E)`: from ``start`` at ``e = 0`` to
    ``end`` at ``e = total`` (clamped beyond), the papers' per-epoch schedule.

    Args:
        start (float): :math:`\lambda_0 > 0`.
        end (float): :math:`\lambda_1 > 0`.
        total (int): :math:`E`, the number of epochs (or steps) of the decay.
    """

    def __init__(self, start: float, end: float, total: int) -> None:
        if start <= 0 or end <= 0 or total <= 0:
            raise ConfigError(f"ExponentialDecay: start, end and total must be > 0, got {start}, {end}, {total}")
        self.start, self.end, self.total = float(start), float(end), int(total)

    def __call__(self, e: float) -> float:
        e = min(max(float(e), 0.0), self.total)
        return self.start * math.exp(-e * math.log(self.start / self.end) / self.total)


class ConstantSchedule:
    """A constant λ."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, e: float) -> float:
        return self.value


# ------------------------------------------------------------------------------------------------- the layer
class _Augmented(nn.Module):
    """The field of ``(z, r...)`` for TayNODE/RNODE: ``dz = f``, ``dr = integrand`` (per sample)."""

    def __init__(self, func: Callable, kind: str, order: int, eps: Tensor | None) -> None:
        super().__init__()
        self.func, self.kind, self.order, self.eps = func, kind, order, eps

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        z = state[0]
        if self.kind == "taynode":
            f = self.func(t, z)
            return f, taynode_integrand(self.func, t, z, self.order)
        f, jac = jacobian_frobenius_estimate(self.func, t, z, self.eps)
        return f, kinetic_energy(f), jac


class NeuralODE(nn.Module):
    r"""A neural ODE layer :math:`z(t_1) = z(t_0) + \int_{t_0}^{t_1} f(t, z)\,dt` solved by our Tsit5/Dopri5/Bosh3,
    with one of the regularisers of this module switched on during training.

    After each forward pass: ``last_reg`` (0-dim tensor, 0 when no regulariser is active), ``last_stats`` (the
    :class:`~sciml.operators.ode.SolverStats` of the main solve) and ``last_nfe`` (forward evaluations including
    the regulariser's extra ones). The training loss is ``task_loss + λ(e) * model.last_reg``.

    Args:
        func (nn.Module): the vector field ``func(t, z)``; ``z`` has a batch dimension ``[B, ...]``.
        t0 (float): start time. (default: ``0.0``)
        t1 (float): end time. (default: ``1.0``)
        method (str): ``"tsit5"``, ``"dopri5"`` or ``"bosh3"``. (default: ``"tsit5"``)
        rtol (float): relative tolerance. (default: ``1.4e-8``, the papers')
        atol (float): absolute tolerance. (default: ``1.4e-8``)
        regularizer (str): one of ``"none"``, ``"ernode"``, ``"srnode"``, ``"er_sr"``, ``"local_unbiased"``,
            ``"local_biased"``, ``"taynode"``, ``"rnode"``, ``"steer"``. (default: ``"none"``)
        agg (str, optional): aggregation of the global regulariser terms (default: ``"mean"`` for ERNODE and
            ER+SR, ``"max"`` for SRNODE, as the official code).
        taynode_order (int): :math:`K` of TayNODE. (default: ``2``)
        rnode_weights (tuple[float, float]): weights of the kinetic and Jacobian terms. (default: ``(1.0, 1.0)``)
        steer_b (float): STEER's half-width :math:`b < t_1 - t_0`. (default: ``0.5``)
        options (dict, optional): solver options (see :func:`~sciml.operators.ode.solve`).
        seed (int): seed of the python RNG drawing local times, STEER end times and Hutchinson vectors' seeds.
            (default: ``0``)
    """

    def __init__(self, func: nn.Module, t0: float = 0.0, t1: float = 1.0, *, method: str = "tsit5",
                 rtol: float = 1.4e-8, atol: float = 1.4e-8, regularizer: str | None = "none",
                 agg: str | None = None, taynode_order: int = 2, rnode_weights: tuple[float, float] = (1.0, 1.0),
                 steer_b: float = 0.5, options: dict[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__()
        reg = "none" if regularizer is None else str(regularizer).lower()
        if reg not in REGULARIZERS:
            raise ConfigError(f"regularizer: unknown {regularizer!r}; expected one of {list(REGULARIZERS)}")
        if not t1 > t0:
            raise ConfigError(f"t1 must be > t0, got t0={t0}, t1={t1}")
        if reg == "steer" and not 0 < steer_b < t1 - t0:
            raise ConfigError(f"steer_b must be in (0, t1 - t0) = (0, {t1 - t0}), got {steer_b}")
        get_tableau(method)
        self.func = func
        self.t0, self.t1 = float(t0), float(t1)
        self.method, self.rtol, self.atol = method, float(rtol), float(atol)
        self.regularizer = reg
        self.agg = agg
        self.taynode_order = int(taynode_order)
        self.rnode_weights = tuple(float(w) for w in rnode_weights)
        self.steer_b = float(steer_b)
        self.options = dict(options or {})
        self.rng = random.Random(seed)
        self.last_reg: Tensor = torch.zeros(())
        self.last_stats: SolverStats | None = None
        self.last_nfe = 0
        self.last_eps: Tensor | None = None

    def extra_repr(self) -> str:
        return (f"t=({self.t0}, {self.t1}), method={self.method}, rtol={self.rtol}, atol={self.atol}, "
                f"regularizer={self.regularizer}")

    def _solve(self, func: Callable, y0: Any, times: list[float], diagnostics: bool,
               norm: Callable | None = None, record_states: bool = False) -> tuple[Any, SolverStats]:
        opts = {**self.options, "diagnostics": diagnostics, "record_states": record_states,
                "stiffness": self.regularizer in ("srnode", "er_sr")}
        if norm is not None:
            opts["norm"] = norm
        sol = solve(func, y0, times, rtol=self.rtol, atol=self.atol, method=self.method, options=opts)
        return sol.ys, sol.stats

    def forward(self, z0: Tensor, t: Tensor | list[float] | None = None) -> Tensor:
        """``z(t1)`` (``t`` None) or the solution at the times ``t`` (``[len(t), *z0.shape]``)."""
        reg = self.regularizer if self.training and torch.is_grad_enabled() else "none"
        times = [self.t0, self.t1] if t is None else [float(v) for v in (t.tolist() if isinstance(t, Tensor) else t)]
        zero = z0.new_zeros(())
        if reg == "steer":
            times = list(times)
            times[-1] = steer_end_time(times[-1], self.steer_b, generator=self.rng)
            if len(times) > 1 and times[-1] <= times[-2]:
                raise ConfigError(f"steer_b={self.steer_b} must be smaller than the last output interval "
                                  f"({times[-1]} <= {times[-2]} after jittering)")
        if reg in ("taynode", "rnode"):
            ys, stats = self._augmented_solve(z0, times, reg)
        elif reg in ("local_unbiased", "local_biased"):
            ys, stats, r, nfe = self._local_solve(z0, times, reg)
            self.last_reg, self.last_stats, self.last_nfe = r, stats, stats.nfe + nfe
            return ys[-1] if t is None else ys
        else:
            ys, stats = self._solve(self.func, z0, times, diagnostics=reg in ("ernode", "srnode", "er_sr"))
            if reg == "ernode":
                self.last_reg = error_regularizer(stats, self.agg or "mean")
            elif reg == "srnode":
                self.last_reg = stiffness_regularizer(stats, self.agg or "max")
            elif reg == "er_sr":
                self.last_reg = error_stiffness_regularizer(stats, agg=self.agg or "mean")
            else:
                self.last_reg = zero
        self.last_stats, self.last_nfe = stats, stats.nfe
        return ys[-1] if t is None else ys

    def _augmented_solve(self, z0: Tensor, times: list[float], reg: str) -> tuple[Tensor, SolverStats]:
        eps = None
        if reg == "rnode":
            g = torch.Generator(device="cpu").manual_seed(self.rng.randrange(2**31))
            eps = torch.randn(z0.shape, generator=g, dtype=z0.dtype).to(z0.device)
        self.last_eps = eps
        aug = _Augmented(self.func, reg, self.taynode_order, eps)
        n_extra = 1 if reg == "taynode" else 2
        state = (z0,) + tuple(z0.new_zeros(z0.shape[0]) for _ in range(n_extra))
        nz = z0.numel()

        def state_norm(x: Tensor) -> Tensor:  # error control on z only (the integrals ride along)
            return rms_norm(x[:nz])

        ys, stats = self._solve(aug, state, times, diagnostics=False, norm=state_norm)
        if reg == "taynode":
            self.last_reg = ys[1][-1].mean()
        else:
            wk, wj = self.rnode_weights
            self.last_reg = wk * ys[1][-1].mean() + wj * ys[2][-1].mean()
        return ys[0], stats

    def _local_solve(self, z0: Tensor, times: list[float], reg: str) -> tuple[Tensor, SolverStats, Tensor, int]:
        if reg == "local_unbiased":
            t_r = times[0] + (times[-1] - times[0]) * self.rng.random()
            grid = sorted(set(times) | {t_r})
            ys, stats = self._solve(self.func, z0, grid, diagnostics=False)
            idx = grid.index(t_r)
            z_r = ys[idx]
            keep = [i for i, v in enumerate(grid) if v in set(times)]
            ys = ys[keep]
        else:
            ys, stats = self._solve(self.func, z0, times, diagnostics=False, record_states=True)
            j = self.rng.randrange(len(stats.t))
            t_r, z_r = stats.t[j], stats.y[j]
        r, nfe = local_error_regularizer(self.func, t_r, z_r, method=self.method, rtol=self.rtol, atol=self.atol)
        return ys, stats, r, nfe
