r"""1D viscous Burgers :math:`u_t + u u_x = \nu u_{xx}` with periodic boundaries, and Cole–Hopf exact solutions.

Solver: Fourier pseudo-spectral in space (``rfft``, nonlinear flux :math:`(u^2/2)_x` formed in physical space and
truncated with the 2/3 rule) and ETDRK4 in time (Cox–Matthews exponential time differencing, 4th order, with the
:math:`\varphi`-function coefficients evaluated by a complex contour mean as in Kassam & Trefethen 2005), which treats
the stiff diffusion exactly. The step is the largest that divides the save interval and satisfies
``dt <= cfl * dx / max|u0|`` (the viscous solution obeys the maximum principle).

Generated data (FNO recipe): periodic ``[0, 1)``, :math:`\nu = 0.1`, initial conditions from the periodic GRF with
covariance :math:`625(-\Delta + 25)^{-2}` (:math:`\sigma = 25`, :math:`\tau = 5`, :math:`\alpha = 2`), solved on
``solver_resolution`` points and subsampled to ``resolution``.

``initial="raissi"`` gives instead the classic PINN benchmark (Raissi et al.): :math:`x\in[-1,1]`,
:math:`u_0 = -\sin\pi x`, :math:`u(\pm1, t) = 0`, :math:`\nu = 0.01/\pi`, :math:`t\in[0, 0.99]`. The initial condition
is odd and 2-periodic, so the periodic solution on ``[-1, 1)`` satisfies the Dirichlet conditions exactly.

Exact references: :func:`cole_hopf_sine` (periodic, :math:`u_0 = A\sin 2\pi x`, a Bessel series) and
:func:`cole_hopf_raissi` (the classic case, heat-kernel quadrature in log-sum-exp form).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from scipy import special

from sciml.datasets.records import FieldSample
from sciml.errors import ConfigError, NonFiniteError

from . import GENERATORS
from ._common import build_spec, jsonable, positive, sample_rng, split_sizes
from .grf import grf_periodic

__all__ = ["BurgersETDRK4", "solve_burgers", "cole_hopf_sine", "cole_hopf_raissi", "generate_burgers"]

RAISSI_VISCOSITY = 0.01 / math.pi


class BurgersETDRK4:
    """ETDRK4 pseudo-spectral stepper for :math:`u_t + (u^2/2)_x = \\nu u_{xx}` on a periodic interval.

    Args:
        n: grid points (even); the grid is ``x0 + length * j / n``.
        viscosity: :math:`\\nu`.
        dt: time step.
        length: period.
        contour_points: points of the contour mean for the ETD coefficients.
    """

    def __init__(self, n: int, viscosity: float, dt: float, length: float = 1.0, contour_points: int = 64) -> None:
        if n % 2:
            raise ConfigError(f"solver_resolution: expected an even number of points, got {n}")
        self.n, self.nu, self.dt = n, float(viscosity), float(dt)
        k = 2 * math.pi / length * np.fft.rfftfreq(n, d=1.0 / n)
        self.ik_half = -0.5j * k                      # N(u) = -(u^2/2)_x
        self.dealias = (np.abs(np.fft.rfftfreq(n, d=1.0 / n)) <= n / 3.0).astype(np.float64)
        lin = -self.nu * k ** 2                       # linear operator (diagonal)
        h = self.dt
        self.E = np.exp(h * lin)
        self.E2 = np.exp(h * lin / 2)
        r = np.exp(1j * math.pi * (np.arange(1, contour_points + 1) - 0.5) / contour_points * 2)  # full circle
        z = h * lin[:, None] + r[None, :]
        ez = np.exp(z)
        self.Q = h * np.real(np.mean((np.exp(z / 2) - 1) / z, axis=1))
        self.f1 = h * np.real(np.mean((-4 - z + ez * (4 - 3 * z + z ** 2)) / z ** 3, axis=1))
        self.f2 = h * np.real(np.mean((2 + z + ez * (z - 2)) / z ** 3, axis=1))
        self.f3 = h * np.real(np.mean((-4 - 3 * z - z ** 2 + ez * (4 - z)) / z ** 3, axis=1))

    def nonlinear(self, v: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(v, n=self.n)
        return self.ik_half * np.fft.rfft(u * u) * self.dealias

    def step(self, v: np.ndarray) -> np.ndarray:
        """One ETDRK4 step on the spectrum ``v``."""
        nv = self.nonlinear(v)
        a = self.E2 * v + self.Q * nv
        na = self.nonlinear(a)
        b = self.E2 * v + self.Q * na
        nb = self.nonlinear(b)
        c = self.E2 * a + self.Q * (2 * nb - nv)
        nc = self.nonlinear(c)
        return self.E * v + nv * self.f1 + 2 * (na + nb) * self.f2 + nc * self.f3


def solve_burgers(u0: np.ndarray, times: np.ndarray, *, viscosity: float, length: float = 1.0,
                  dt: float | None = None, cfl: float = 0.4) -> np.ndarray:
    """Solve from ``u0`` (``n`` periodic grid values) and return ``u`` at ``times`` (``[T, n]``, ``times[0]`` = t0).

    Args:
        u0: initial values on ``x0 + length * j / n``.
        times: increasing output times with equal spacing.
        viscosity: :math:`\\nu`.
        length: period of the domain.
        dt: step (rounded down to divide the save interval); default ``cfl * dx / max|u0|``.
        cfl: Courant number of the default step.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if len(times) < 2:
        return u0[None].copy()
    gaps = np.diff(times)
    if np.any(gaps <= 0) or not np.allclose(gaps, gaps[0], rtol=1e-9, atol=0):
        raise ConfigError("times: expected equally spaced increasing output times")
    interval = float(gaps[0])
    n = u0.shape[-1]
    if dt is None:
        dt = cfl * (length / n) / max(float(np.max(np.abs(u0))), 1e-12)
    sub = max(1, math.ceil(interval / dt - 1e-9))
    stepper = BurgersETDRK4(n, viscosity, interval / sub, length)
    v = np.fft.rfft(u0)
    out = [u0.copy()]
    for j in range(len(times) - 1):
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(sub):
                v = stepper.step(v)
            u = np.fft.irfft(v, n=n)
        if not np.all(np.isfinite(u)):
            raise NonFiniteError(f"burgers: the solution blew up (non-finite) before t={float(times[j + 1]):g}; "
                                 "lower cfl or raise solver_resolution")
        out.append(u)
    return np.stack(out)


def cole_hopf_sine(x: np.ndarray, t: float, viscosity: float, amplitude: float = 1.0,
                   terms: int | None = None) -> np.ndarray:
    """Exact periodic solution for :math:`u_0 = A\\sin 2\\pi x` on ``[0, 1)`` (Cole–Hopf, modified-Bessel series).

    :math:`\\phi_0 = \\exp(-c(1-\\cos 2\\pi x))`, :math:`c = A/(4\\pi\\nu)`, so
    :math:`\\phi \\propto I_0(c) + 2\\sum_n I_n(c)e^{-4\\pi^2 n^2\\nu t}\\cos 2\\pi n x` and
    :math:`u = -2\\nu\\phi_x/\\phi`. Accurate while :math:`c` is moderate (say ``< 200``).
    """
    x = np.asarray(x, dtype=np.float64)
    c = amplitude / (4 * math.pi * viscosity)
    if terms is None:
        terms = int(c + 40 * math.sqrt(c + 1) + 40)
    n = np.arange(1, terms + 1, dtype=np.float64)
    w = special.ive(n, c) * np.exp(-4 * math.pi ** 2 * n ** 2 * viscosity * t)  # e^{-c} I_n(c) decay
    phase = 2 * math.pi * np.multiply.outer(x, n)
    phi = special.ive(0, c) + 2 * (np.cos(phase) * w).sum(-1)
    phi_x = -2 * (2 * math.pi * n * np.sin(phase) * w).sum(-1)
    return -2 * viscosity * phi_x / phi


def cole_hopf_raissi(x: np.ndarray, t: float, viscosity: float = RAISSI_VISCOSITY,
                     points: int = 20001, width: float = 16.0) -> np.ndarray:
    """Exact solution of the classic case :math:`u_0=-\\sin\\pi x` on ``[-1, 1]`` (Dirichlet 0), any ``t >= 0``.

    :math:`u(x,t) = -\\int\\sin\\pi(x-\\eta)F(x-\\eta)G(\\eta)d\\eta / \\int F(x-\\eta)G(\\eta)d\\eta` with
    :math:`F(y)=e^{-\\cos(\\pi y)/(2\\pi\\nu)}`, :math:`G(\\eta) = e^{-\\eta^2/(4\\nu t)}`, evaluated by the
    trapezoidal rule in :math:`z = \\eta/\\sqrt{4\\nu t}\\in[-w, w]` with the exponents shifted (log-sum-exp).
    """
    x = np.asarray(x, dtype=np.float64)
    if t <= 0:
        return -np.sin(math.pi * x)
    scale = math.sqrt(4 * viscosity * t)
    z = np.linspace(-width, width, points)
    out = np.empty_like(x)
    for i, xi in enumerate(x.ravel()):
        y = xi - scale * z
        logw = -np.cos(math.pi * y) / (2 * math.pi * viscosity) - z * z
        w = np.exp(logw - logw.max())
        out.flat[i] = -np.sum(np.sin(math.pi * y) * w) / np.sum(w)
    return out


@GENERATORS.register("burgers")
def generate_burgers(*, num_train: int = 1000, num_val: int = 0, num_test: int = 200, seed: int = 0,
                     initial: Literal["grf", "raissi"] = "grf", viscosity: float | None = None,
                     resolution: int = 1024, solver_resolution: int = 4096, final_time: float | None = None,
                     num_frames: int = 11, alpha: float = 2.0, tau: float = 5.0, sigma: float = 25.0,
                     cfl: float = 0.4, shard: tuple[int, int] | None = None) -> Any:
    """1D Burgers trajectories: field ``u`` ``[T, s, 1]`` (frame 0 is the initial condition).

    Args:
        num_train, num_val, num_test: trajectories per split (``initial="raissi"`` is deterministic: one sample
            is enough).
        seed: run seed; sample ``k`` of a split depends on ``(seed, split, k)`` only.
        initial: ``"grf"`` (FNO: periodic ``[0, 1)``) or ``"raissi"`` (``[-1, 1]``, ``u0 = -sin(pi x)``).
        viscosity: :math:`\\nu` (default 0.1 for ``grf``, 0.01/pi for ``raissi``); stored per sample.
        resolution: saved points ``s`` (must divide ``solver_resolution``). The ``raissi`` grid includes both
            ends ``x = -1`` and ``x = 1`` (``s + 1`` points: the periodic copy of ``x = -1`` is appended).
        solver_resolution: grid of the solve.
        final_time: end time (default 1.0 for ``grf``, 0.99 for ``raissi``).
        num_frames: saved frames including ``t = 0`` (``raissi`` classic: 100).
        alpha, tau, sigma: GRF of the initial condition, covariance :math:`\\sigma^2(-\\Delta+\\tau^2)^{-\\alpha}`.
        cfl: Courant number of the step.
        shard: ``(i, n)``: produce only the samples shard ``i`` of ``n`` owns.
    """
    if initial not in ("grf", "raissi"):
        raise ConfigError(f"initial: expected 'grf' or 'raissi', got {initial!r}")
    raissi = initial == "raissi"
    if viscosity is None:
        viscosity = RAISSI_VISCOSITY if raissi else 0.1
    if final_time is None:
        final_time = 0.99 if raissi else 1.0
    for name, value in (("viscosity", viscosity), ("final_time", final_time), ("cfl", cfl), ("tau", tau)):
        positive(name, value)
    for name, value in (("resolution", resolution), ("solver_resolution", solver_resolution)):
        positive(name, value, int)
    if solver_resolution % resolution or solver_resolution % 2:
        raise ConfigError(f"resolution: must divide solver_resolution={solver_resolution} (even), got {resolution}")
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 2:
        raise ConfigError(f"num_frames: expected an int >= 2, got {num_frames!r}")
    sizes = split_sizes(num_train, num_val, num_test)
    options = dict(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed, initial=initial,
                   viscosity=viscosity, resolution=resolution, solver_resolution=solver_resolution,
                   final_time=final_time, num_frames=num_frames, alpha=alpha, tau=tau, sigma=sigma, cfl=cfl)
    stride = solver_resolution // resolution
    times = np.linspace(0.0, final_time, num_frames)
    length, x0 = (2.0, -1.0) if raissi else (1.0, 0.0)
    x_fine = x0 + length * np.arange(solver_resolution) / solver_resolution

    def make(split: str, k: int) -> FieldSample:
        if raissi:
            u0 = -np.sin(math.pi * x_fine)
        else:
            u0 = grf_periodic(sample_rng(seed, split, k), solver_resolution, alpha=alpha, tau=tau, sigma=sigma)
        try:
            u = solve_burgers(u0, times, viscosity=viscosity, length=length, cfl=cfl)[:, ::stride]
        except NonFiniteError as err:
            raise NonFiniteError(f"{split} sample {k}: {err}") from None
        if raissi:
            u = np.concatenate([u, u[:, :1]], axis=1)  # x = 1 is the periodic image of x = -1 (both 0)
        return FieldSample(fields={"u": u[..., None].astype(np.float32)}, params={"viscosity": float(viscosity)})

    x = x0 + length * np.arange(resolution) / resolution
    if raissi:
        x = np.append(x, 1.0)
    return build_spec(kind="fields", make=make, sizes=sizes, shard=shard, source="generator:burgers",
                      config={"generator": "burgers", **jsonable(options)}, coords={"x": x, "t": times})
