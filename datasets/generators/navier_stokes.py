r"""2D incompressible Navier–Stokes in vorticity form on the unit torus (FNO's setting).

.. math::
    \partial_t\omega + u\cdot\nabla\omega = \nu\Delta\omega + f, \qquad u = (\partial_y\psi, -\partial_x\psi),
    \qquad -\Delta\psi = \omega, \qquad (x, y) \in [0,1)^2 \text{ periodic}.

Pseudo-spectral: :math:`\omega` is advanced in Fourier space (``rfft2``); velocity and :math:`\nabla\omega` are formed
spectrally, the product :math:`u\cdot\nabla\omega` in physical space, and its spectrum is truncated with the 2/3 rule
(modes with :math:`|k_x|` or :math:`|k_y| > \frac23 \cdot \frac{s}{2}` zeroed). Time stepping, per step ``dt``:

* ``scheme="cn_euler"`` (default, FNO's): Crank–Nicolson for :math:`\nu\Delta`, explicit Euler for advection and
  forcing: :math:`\hat\omega^{n+1} = [(1-\frac{dt}{2}\nu\lambda)\hat\omega^n + dt(\hat f - \hat N^n)]
  / (1+\frac{dt}{2}\nu\lambda)`, :math:`\lambda = 4\pi^2|k|^2`. First order in time (the advection term).
* ``scheme="cn_heun"``: the same step as a predictor, then a corrector with the trapezoidal average
  :math:`\frac12(\hat N^n + \hat N^*)`: second order in time.

Generated data: initial vorticity from a periodic GRF (:math:`\alpha=2.5`, :math:`\tau=7`, FNO), forcing
:math:`f = 0.1(\sin 2\pi(x+y) + \cos 2\pi(x+y))`, ``dt = 1e-4``, solved at ``solver_resolution`` and subsampled to
``resolution`` (FNO: 256 -> 64), saved every ``save_every`` steps (FNO: every time unit = 10,000 steps).
The core runs in torch (float64), on CPU or CUDA (``device``).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch

from sciml.datasets.records import FieldSample
from sciml.errors import ConfigError, ShapeError

from . import GENERATORS
from ._common import build_spec, jsonable, positive, sample_rng, shard_range, split_sizes, check_shard
from .grf import grf_periodic

__all__ = ["SpectralNS2d", "fno_forcing", "ns_initial_vorticity", "solve_navier_stokes", "kinetic_energy",
           "generate_navier_stokes"]

Scheme = Literal["cn_euler", "cn_heun"]


def fno_forcing(s: int) -> np.ndarray:
    """FNO's forcing :math:`0.1(\\sin 2\\pi(x+y) + \\cos 2\\pi(x+y))` on the ``s x s`` grid ``j/s`` (axis 0 = x)."""
    x = np.arange(s) / s
    xy = x[:, None] + x[None, :]
    return 0.1 * (np.sin(2 * math.pi * xy) + np.cos(2 * math.pi * xy))


def ns_initial_vorticity(rng: np.random.Generator, s: int, alpha: float = 2.5, tau: float = 7.0) -> np.ndarray:
    """FNO's initial vorticity: a periodic GRF with :math:`\\alpha=2.5`, :math:`\\tau=7` on the ``s x s`` torus grid.

    As FNO's ``random_fields.GaussianRF`` (which generated ``NavierStokes_V1e-5_N1200_T20``): amplitude
    :math:`\\sqrt2\\,\\tau^{\\alpha-1}` per complex mode, i.e. covariance
    :math:`2\\tau^{2\\alpha-2}(-\\Delta+\\tau^2)^{-\\alpha}` and pointwise variance
    :math:`\\sum_{k\\neq0} 2\\tau^{2\\alpha-2}(4\\pi^2|k|^2+\\tau^2)^{-\\alpha}`.
    """
    return grf_periodic(rng, (s, s), alpha=alpha, tau=tau, sigma=math.sqrt(2.0) * tau ** (0.5 * (2 * alpha - 2)))


class SpectralNS2d:
    """Pseudo-spectral vorticity solver on ``s x s`` (periodic unit square), batched over a leading dimension.

    Args:
        s: grid points per side (even).
        viscosity: :math:`\\nu`.
        dt: time step.
        forcing: ``[s, s]`` forcing (constant in time) or ``None``.
        scheme: ``"cn_euler"`` or ``"cn_heun"`` (see the module docstring).
        device: torch device.
    """

    def __init__(self, s: int, viscosity: float, dt: float, forcing: np.ndarray | None = None,
                 scheme: str = "cn_euler", device: str | torch.device = "cpu") -> None:
        if scheme not in ("cn_euler", "cn_heun"):
            raise ConfigError(f"scheme: expected 'cn_euler' or 'cn_heun', got {scheme!r}")
        if s % 2:
            raise ConfigError(f"solver_resolution: expected an even number of grid points, got {s}")
        self.s, self.nu, self.dt, self.scheme = s, float(viscosity), float(dt), scheme
        self.device = torch.device(device)
        opts = dict(dtype=torch.float64, device=self.device)
        kx = torch.fft.fftfreq(s, d=1.0 / s, **opts)[:, None]     # axis 0 (x): full spectrum
        ky = torch.fft.rfftfreq(s, d=1.0 / s, **opts)[None, :]    # axis 1 (y): half spectrum
        self.dx = 2j * math.pi * kx                                # d/dx in Fourier space
        self.dy = 2j * math.pi * ky
        lam = 4 * math.pi ** 2 * (kx ** 2 + ky ** 2)               # eigenvalues of -Delta
        self.lam = lam
        lam_inv = lam.clone()
        lam_inv[0, 0] = 1.0
        self.inv_lap = 1.0 / lam_inv                               # psi_hat = w_hat / lam (mean mode: 0 w_hat)
        self.inv_lap[0, 0] = 0.0
        kmax = s // 2
        self.dealias = ((kx.abs() <= 2.0 / 3.0 * kmax) & (ky.abs() <= 2.0 / 3.0 * kmax)).to(torch.float64)
        self.num = 1.0 - 0.5 * self.dt * self.nu * lam
        self.den = 1.0 + 0.5 * self.dt * self.nu * lam
        if forcing is None:
            self.f_hat = torch.zeros_like(lam, dtype=torch.complex128)
        else:
            f = torch.as_tensor(np.asarray(forcing, dtype=np.float64), **opts)
            if f.shape != (s, s):
                raise ShapeError(f"forcing: expected shape {(s, s)}, got {tuple(f.shape)}")
            self.f_hat = torch.fft.rfft2(f)

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity ``(u, v) = (dpsi/dy, -dpsi/dx)`` in physical space from the vorticity spectrum."""
        psi_hat = w_hat * self.inv_lap
        s = self.s
        u = torch.fft.irfft2(self.dy * psi_hat, s=(s, s))
        v = torch.fft.irfft2(-self.dx * psi_hat, s=(s, s))
        return u, v

    def nonlinear(self, w_hat: torch.Tensor) -> torch.Tensor:
        """Dealiased spectrum of :math:`u\\cdot\\nabla\\omega` (the four inverse transforms in one batched call)."""
        s = self.s
        psi_hat = w_hat * self.inv_lap
        spectra = torch.stack([self.dy * psi_hat, -self.dx * psi_hat, self.dx * w_hat, self.dy * w_hat])
        u, v, wx, wy = torch.fft.irfft2(spectra, s=(s, s))
        return torch.fft.rfft2(u * wx + v * wy) * self.dealias

    def _cn(self, w_hat: torch.Tensor, n_hat: torch.Tensor) -> torch.Tensor:
        return (self.num * w_hat + self.dt * (self.f_hat - n_hat)) / self.den

    def step(self, w_hat: torch.Tensor) -> torch.Tensor:
        """One time step on the spectrum ``[..., s, s//2+1]``."""
        n0 = self.nonlinear(w_hat)
        pred = self._cn(w_hat, n0)
        if self.scheme == "cn_euler":
            return pred
        return self._cn(w_hat, 0.5 * (n0 + self.nonlinear(pred)))

    def run(self, w0: np.ndarray | torch.Tensor, num_steps: int, save_every: int) -> torch.Tensor:
        """Integrate from ``w0`` ``[..., s, s]``; returns frames at steps ``0, save_every, ...`` ``[..., F, s, s]``."""
        w = torch.as_tensor(w0, dtype=torch.float64, device=self.device)
        if tuple(w.shape[-2:]) != (self.s, self.s):
            raise ShapeError(f"w0: expected trailing shape {(self.s, self.s)}, got {tuple(w.shape)}")
        w_hat = torch.fft.rfft2(w)
        frames = [w]
        for n in range(1, num_steps + 1):
            w_hat = self.step(w_hat)
            if n % save_every == 0:
                frames.append(torch.fft.irfft2(w_hat, s=(self.s, self.s)))
        return torch.stack(frames, dim=-3)


def kinetic_energy(w: np.ndarray | torch.Tensor) -> np.ndarray:
    """Kinetic energy :math:`\\frac12\\int|u|^2 = \\frac12\\sum_k|\\hat\\omega_k|^2/\\lambda_k` of ``w [..., s, s]``."""
    w = torch.as_tensor(w, dtype=torch.float64)
    s = w.shape[-1]
    w_hat = torch.fft.fft2(w) / (s * s)
    k = torch.fft.fftfreq(s, d=1.0 / s, dtype=torch.float64)
    lam = 4 * math.pi ** 2 * (k[:, None] ** 2 + k[None, :] ** 2)
    lam[0, 0] = math.inf
    return (0.5 * (w_hat.abs() ** 2 / lam).sum(dim=(-2, -1))).numpy()


def solve_navier_stokes(w0: np.ndarray, *, viscosity: float, dt: float, num_steps: int, save_every: int,
                        forcing: np.ndarray | None = None, scheme: str = "cn_euler",
                        device: str = "cpu") -> np.ndarray:
    """Frames of the vorticity at steps ``0, save_every, 2*save_every, ... <= num_steps`` (float64 numpy)."""
    w0 = np.asarray(w0)
    solver = SpectralNS2d(w0.shape[-1], viscosity, dt, forcing, scheme, device)
    return solver.run(w0, num_steps, save_every).cpu().numpy()


def _default_final_time(viscosity: float) -> float:
    # FNO's horizons: 50 time units for nu = 1e-3, 30 for 1e-4, 20 for 1e-5.
    if viscosity >= 1e-3 * 0.999:
        return 50.0
    if viscosity >= 1e-4 * 0.999:
        return 30.0
    return 20.0


@GENERATORS.register("navier_stokes")
def generate_navier_stokes(*, num_train: int = 1000, num_val: int = 0, num_test: int = 200, seed: int = 0,
                           viscosity: float = 1e-3, resolution: int = 64, solver_resolution: int = 256,
                           dt: float = 1e-4, final_time: float | None = None, save_every: int = 10000,
                           alpha: float = 2.5, tau: float = 7.0, forcing_amplitude: float = 0.1,
                           scheme: Scheme = "cn_euler", device: str = "cpu", batch_size: int = 1,
                           shard: tuple[int, int] | None = None) -> Any:
    """Vorticity trajectories (FNO recipe): field ``w`` ``[T, s, s, 1]`` with frame 0 the initial condition.

    Args:
        num_train, num_val, num_test: trajectories per split.
        seed: run seed; sample ``k`` of a split depends on ``(seed, split, k)`` only.
        viscosity: :math:`\\nu` (FNO: 1e-3, 1e-4, 1e-5); stored per sample as param ``viscosity``.
        resolution: saved grid points per side (must divide ``solver_resolution``).
        solver_resolution: grid of the solve (FNO: 256).
        dt: time step (FNO: 1e-4).
        final_time: end time (default: FNO's 50 for nu >= 1e-3, 30 for 1e-4, 20 below); a multiple of
            ``dt * save_every``.
        save_every: steps between saved frames (FNO: 10,000 = one time unit).
        alpha, tau: GRF of the initial vorticity.
        forcing_amplitude: ``A`` in :math:`f = A(\\sin 2\\pi(x+y) + \\cos 2\\pi(x+y))` (0 for decaying turbulence).
        scheme: ``"cn_euler"`` (FNO, 1st order) or ``"cn_heun"`` (2nd order).
        device: torch device of the solve (``"cuda"`` when available is much faster).
        batch_size: trajectories solved together (same samples; bitwise identical only with 1).
        shard: ``(i, n)``: produce only the samples shard ``i`` of ``n`` owns.
    """
    for name, value in (("viscosity", viscosity), ("dt", dt), ("tau", tau)):
        positive(name, value)
    for name, value in (("resolution", resolution), ("solver_resolution", solver_resolution),
                        ("save_every", save_every), ("batch_size", batch_size)):
        positive(name, value, int)
    if solver_resolution % resolution:
        raise ConfigError(f"resolution: must divide solver_resolution={solver_resolution}, got {resolution}")
    if solver_resolution % 2:
        raise ConfigError(f"solver_resolution: expected an even number, got {solver_resolution}")
    if final_time is None:
        final_time = _default_final_time(viscosity)
    positive("final_time", final_time)
    num_frames_f = final_time / (dt * save_every)
    if abs(num_frames_f - round(num_frames_f)) > 1e-6 or round(num_frames_f) < 1:
        raise ConfigError(f"final_time: must be a positive multiple of dt * save_every = {dt * save_every}, "
                          f"got {final_time}")
    num_saves = int(round(num_frames_f))
    num_steps = num_saves * save_every
    stride = solver_resolution // resolution
    sizes = split_sizes(num_train, num_val, num_test)
    check_shard(shard)
    options = dict(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed, viscosity=viscosity,
                   resolution=resolution, solver_resolution=solver_resolution, dt=dt, final_time=final_time,
                   save_every=save_every, alpha=alpha, tau=tau, forcing_amplitude=forcing_amplitude,
                   scheme=scheme, batch_size=batch_size)
    forcing = forcing_amplitude / 0.1 * fno_forcing(solver_resolution) if forcing_amplitude else None
    state: dict[str, Any] = {}

    def solver() -> SpectralNS2d:
        if "solver" not in state:  # built on first use, in the process that generates
            state["solver"] = SpectralNS2d(solver_resolution, viscosity, dt, forcing, scheme, device)
        return state["solver"]

    def solve_chunk(split: str, ks: list[int]) -> np.ndarray:
        w0 = np.stack([ns_initial_vorticity(sample_rng(seed, split, k), solver_resolution, alpha, tau) for k in ks])
        frames = solver().run(w0, num_steps, save_every).cpu().numpy()
        return frames[..., ::stride, ::stride]

    cache: dict[tuple[str, int], np.ndarray] = {}

    def make(split: str, k: int) -> FieldSample:
        if (split, k) not in cache:
            owned = shard_range(sizes[split], shard)
            start = owned.start + (k - owned.start) // batch_size * batch_size
            ks = list(range(start, min(start + batch_size, owned.stop)))
            cache.clear()
            cache.update({(split, kk): fr for kk, fr in zip(ks, solve_chunk(split, ks))})
        w = cache.pop((split, k))
        return FieldSample(fields={"w": w[..., None].astype(np.float32)}, params={"viscosity": float(viscosity)})

    x = np.arange(resolution) / resolution
    t = np.arange(num_saves + 1) * dt * save_every
    return build_spec(kind="fields", make=make, sizes=sizes, shard=shard, source="generator:navier_stokes",
                      config={"generator": "navier_stokes", **jsonable(options)},
                      coords={"x": x, "y": x.copy(), "t": t})
