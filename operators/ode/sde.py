r"""Local error regularisation for neural SDEs solved with torchsde (Pal, Edelman, Rackauckas, ICML 2023).

torchsde's adaptive stepping estimates its error by step doubling inside ``torch.no_grad()`` and returns a python
float, so it cannot be differentiated. The local regulariser instead takes **one** differentiable step of the
Lamba–Euler–Heun scheme (Euler–Heun for Stratonovich SDEs with Lamba's error estimate, as StochasticDiffEq's
``LambaEulerHeun``) from the detached state :math:`z(t_r)` of any solve (any torchsde method, adjoint or not):

.. math::

    K &= u + dt\,f(t, u),\qquad \bar u = u + g(t, u)\,\Delta W,\qquad
    u_1 = u + dt\,f(t, u) + \tfrac12\big(g(t, u) + g(t, \bar u)\big)\Delta W,\\
    E_d &= \tfrac{dt}{2}\big(f(t + dt, K) - f(t, u)\big),\qquad
    E_n = \tfrac12\,(g'g)(u)\,\Delta W^2,\quad (g'g)(u) \approx \frac{g(t, u + g\sqrt{dt}) - g(t, u)}{\sqrt{dt}},\\
    \mathrm{EEst} &= \mathrm{RMS}\Big(\frac{\delta E_d + E_n}{a + r\max(|u|, |u_1|)}\Big),\qquad R = \mathrm{EEst}\,dt,

with diagonal noise (``g`` returns the shape of the state) and :math:`\delta = 1/6` (StochasticDiffEq's default).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from sciml.errors import ConfigError, ShapeError
from sciml.operators.ode.integrate import rms_norm

__all__ = ["lamba_euler_heun_step", "sde_initial_step", "local_sde_regularizer"]


def _drift_diffusion(sde: Any) -> tuple[Callable, Callable]:
    if not (hasattr(sde, "f") and hasattr(sde, "g")):
        raise ConfigError(f"sde: expected a torchsde-style object with methods f(t, y) and g(t, y), got "
                          f"{type(sde).__name__}")
    noise = getattr(sde, "noise_type", "diagonal")
    if noise not in ("diagonal", "scalar"):
        raise ConfigError(f"sde.noise_type: the Lamba–Euler–Heun estimator needs diagonal noise, got {noise!r}")
    return sde.f, sde.g


def lamba_euler_heun_step(sde: Any, t: float, y: Tensor, dt: float, dW: Tensor, *, rtol: float = 1e-2,
                          atol: float = 1e-2, delta: float = 1.0 / 6.0) -> tuple[Tensor, Tensor]:
    """One Euler–Heun step with Lamba's error estimate. Returns ``(y1, EEst)``; differentiable.

    Args:
        sde (object): torchsde-style SDE with ``f(t, y)`` and ``g(t, y)`` (diagonal noise, Stratonovich).
        t (float): start time.
        y (Tensor): state ``[B, d]``.
        dt (float): step size.
        dW (Tensor): Brownian increment over the step, shape of ``y``.
        rtol (float): relative tolerance of the error scale. (default: ``1e-2``)
        atol (float): absolute tolerance of the error scale. (default: ``1e-2``)
        delta (float): weight of the drift error. (default: ``1/6``)
    """
    if dW.shape != y.shape:
        raise ShapeError(f"dW: expected shape {tuple(y.shape)} (diagonal noise), got {tuple(dW.shape)}")
    f, g = _drift_diffusion(sde)
    tt = torch.tensor(t, dtype=y.dtype, device=y.device)
    t1 = torch.tensor(t + dt, dtype=y.dtype, device=y.device)
    f0 = f(tt, y)
    g0 = g(tt, y)
    y1 = y + dt * f0 + 0.5 * (g0 + g(tt, y + g0 * dW)) * dW
    e_drift = 0.5 * dt * (f(t1, y + dt * f0) - f0)
    sq = math.sqrt(dt)
    ggprime = (g(tt, y + g0 * sq) - g0) / sq
    e_noise = 0.5 * ggprime * dW.pow(2)
    scale = torch.maximum(y.abs(), y1.abs()).mul(rtol).add(atol)
    return y1, rms_norm((delta * e_drift + e_noise) / scale)


@torch.no_grad()
def sde_initial_step(sde: Any, t: float, y: Tensor, *, rtol: float = 1e-2, atol: float = 1e-2,
                     order: float = 0.5) -> float:
    """Hairer's initial-step heuristic applied to the drift and diffusion together (``|f| + |g|`` as the
    derivative scale, strong order ``order``); a cheap, deterministic ``dt`` for the local step."""
    f, g = _drift_diffusion(sde)
    tt = torch.tensor(t, dtype=y.dtype, device=y.device)
    scale = y.abs().mul(rtol).add(atol)
    rate = f(tt, y).abs() + g(tt, y).abs()
    d0, d1 = float(rms_norm(y / scale)), float(rms_norm(rate / scale))
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    rate1 = f(tt + h0, y + h0 * rate).abs() + g(tt + h0, y + h0 * rate).abs()
    d2 = float(rms_norm((rate1 - rate) / scale)) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100.0 * h0, h1)


def local_sde_regularizer(sde: Any, t_r: float, z_r: Tensor, *, dt: float | None = None,
                          dW: Tensor | None = None, rtol: float = 1e-2, atol: float = 1e-2,
                          generator: torch.Generator | None = None) -> Tensor:
    r"""Local ERNSDE: :math:`R = \mathrm{EEst}\,dt` of one Lamba–Euler–Heun step from ``(t_r, z_r.detach())``.

    Args:
        sde (object): torchsde-style SDE (``f``, ``g``; diagonal noise).
        t_r (float): time of the step.
        z_r (Tensor): state at ``t_r`` from any solve (detached here).
        dt (float, optional): step size (default: :func:`sde_initial_step`).
        dW (Tensor, optional): Brownian increment (default: fresh :math:`N(0, dt)` samples, as the official code's
            new problem; pass a ``torchsde.BrownianInterval(t_r, t_r + dt)`` increment to reuse a path).
        rtol (float): relative tolerance. (default: ``1e-2``)
        atol (float): absolute tolerance. (default: ``1e-2``)
        generator (torch.Generator, optional): RNG for ``dW``.
    """
    z = z_r.detach()
    if dt is None:
        dt = sde_initial_step(sde, float(t_r), z, rtol=rtol, atol=atol)
    if dW is None:
        dW = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device) * math.sqrt(dt)
    _, eest = lamba_euler_heun_step(sde, float(t_r), z, float(dt), dW, rtol=rtol, atol=atol)
    return eest * dt
