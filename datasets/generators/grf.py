r"""Gaussian random fields with covariance :math:`\sigma^2(-\Delta + \tau^2 I)^{-\alpha}` (the FNO recipe).

Two boundary settings, both sampled through the Karhunen–Loève expansion in the Laplacian's eigenfunctions:

* :func:`grf_periodic`: on the torus :math:`[0,1)^d` (Fourier modes :math:`e^{2\pi i k\cdot x}`, eigenvalues
  :math:`4\pi^2|k|^2`); used for Navier–Stokes vorticity and Burgers initial conditions. The default amplitude
  :math:`\sigma = \tau^{(2\alpha-d)/2}` is FNO's.
* :func:`grf_neumann`: on :math:`[0,1]^2` with zero normal derivative (cosine modes :math:`\cos(\pi k_1 x)
  \cos(\pi k_2 y)`, eigenvalues :math:`\pi^2|k|^2`), evaluated at the nodes ``i/(s-1)``; used for Darcy
  coefficients. The default amplitude :math:`\tau^{\alpha-1}` is FNO's.

The constant mode is always removed (zero-mean fields).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["grf_periodic", "grf_neumann"]


def grf_periodic(rng: np.random.Generator, shape: tuple[int, ...] | int, *, alpha: float, tau: float,
                 sigma: float | None = None) -> np.ndarray:
    r"""A zero-mean periodic GRF on the grid ``x_j = j / s`` of :math:`[0,1)^d`, float64 of shape ``shape``.

    Each Fourier mode :math:`k \neq 0` gets an independent complex normal coefficient (real and imaginary parts
    N(0, 1)) times :math:`\sqrt{2}\,\sigma(4\pi^2|k|^2+\tau^2)^{-\alpha/2}`, and the field is the real part of the
    series, i.e. covariance :math:`2\sigma^2(-\Delta+\tau^2)^{-\alpha}` summed over :math:`\pm k`.

    Args:
        rng: source of randomness.
        shape: grid size per dimension (``s`` or ``(s, s)``).
        alpha: smoothness exponent :math:`\alpha`.
        tau: inverse length scale :math:`\tau`.
        sigma: amplitude (default :math:`\tau^{(2\alpha-d)/2}`).
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    d = len(shape)
    if sigma is None:
        sigma = tau ** (0.5 * (2 * alpha - d))
    k2 = np.zeros(shape)
    for axis, s in enumerate(shape):
        k = np.fft.fftfreq(s, d=1.0 / s)  # integer wavenumbers 0, 1, ..., -1
        k2 = k2 + (k ** 2).reshape([-1 if a == axis else 1 for a in range(d)])
    amp = math.sqrt(2.0) * sigma * (4 * math.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2.0)
    amp.flat[0] = 0.0  # zero mean
    xi = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    # ifftn divides by prod(shape): multiply back so that the field is the plain series sum.
    return np.real(np.fft.ifftn(xi * amp)) * float(np.prod(shape))


def grf_neumann(rng: np.random.Generator, s: int, *, alpha: float, tau: float, sigma: float | None = None,
                modes: int | None = None) -> np.ndarray:
    r"""A zero-mean GRF on :math:`[0,1]^2` with Neumann eigenfunctions, at the ``s x s`` nodes ``(i/(s-1), j/(s-1))``.

    :math:`a(x,y) = \sum_{k\neq 0} \sigma(\pi^2|k|^2+\tau^2)^{-\alpha/2}\,\xi_k\,\phi_{k_1}(x)\phi_{k_2}(y)` with
    :math:`\phi_0 = 1`, :math:`\phi_k = \sqrt2\cos(\pi k x)` and :math:`\xi_k` i.i.d. N(0, 1), for
    :math:`0 \le k_1, k_2 <` ``modes``.

    Args:
        rng: source of randomness.
        s: nodes per side (``>= 2``).
        alpha, tau: as in :func:`grf_periodic`.
        sigma: amplitude (default :math:`\tau^{\alpha-1}`, FNO's Darcy script).
        modes: modes per direction (default ``s``, as FNO). Fix it to draw the same random function at several
            resolutions (with the same ``rng`` state).
    """
    if sigma is None:
        sigma = tau ** (alpha - 1.0)
    m = s if modes is None else int(modes)
    k = np.arange(m, dtype=np.float64)
    amp = sigma * (math.pi ** 2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau ** 2) ** (-alpha / 2.0)
    amp[0, 0] = 0.0
    coef = amp * rng.standard_normal((m, m))
    x = np.linspace(0.0, 1.0, s)
    phi = np.cos(math.pi * k[:, None] * x[None, :]) * math.sqrt(2.0)  # [m, s]
    phi[0] = 1.0
    return phi.T @ coef @ phi  # [s(x), s(y)]
