r"""Gaussian random fields with covariance :math:`\sigma^2(-\Delta + \tau^2 I)^{-\alpha}` (the FNO recipe).

Two boundary settings, both sampled through the Karhunen–Loève expansion in the Laplacian's eigenfunctions:

* :func:`grf_periodic`: on the torus :math:`[0,1)^d` (Fourier modes :math:`e^{2\pi i k\cdot x}`, eigenvalues
  :math:`4\pi^2|k|^2`); used for Burgers initial conditions (exact covariance, as FNO's ``GRF1.m``) and
  Navier–Stokes vorticity (which passes :math:`\sqrt2\,\tau^{\alpha-1}` as :math:`\sigma` to reproduce FNO's
  ``random_fields.py``, whose complex construction carries an extra factor :math:`\sqrt2`).
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

    Covariance operator :math:`C = \sigma^2(-\Delta+\tau^2 I)^{-\alpha}` on :math:`L^2([0,1)^d)` with periodic
    boundaries, restricted to zero-mean functions. Its eigenfunctions are the orthonormal Fourier modes
    :math:`e_k(x) = e^{2\pi i k\cdot x}`, :math:`k\in\mathbb{Z}^d`, with eigenvalues :math:`\sigma^2\mu_k`,
    :math:`\mu_k = (4\pi^2|k|^2+\tau^2)^{-\alpha}` (and 0 for :math:`k = 0`). The covariance kernel is
    :math:`c(x,y) = \sum_{k\neq0}\sigma^2\mu_k e_k(x)\overline{e_k(y)}
    = \sum_{k\neq0}\sigma^2\mu_k\cos 2\pi k\cdot(x-y)`, so the pointwise variance is
    :math:`c(x,x) = \sum_{k\neq0}\sigma^2\mu_k` (in 1-D:
    :math:`2\sum_{k\ge1}\sigma^2\mu_k`). The real Karhunen–Loève form is
    :math:`u = \sum_{k\ge1}\sqrt{2}\,\sigma\mu_k^{1/2}(a_k\cos 2\pi kx + b_k\sin 2\pi kx)`, :math:`a_k, b_k` i.i.d.
    N(0, 1): FNO's ``GRF1.m`` (Burgers), which is what the FNO paper's :math:`N(0, 625(-\Delta+25)^{-2})` means.

    Sampling: every grid mode :math:`k\neq0` (``fftfreq`` wavenumbers, the Nyquist mode once) gets an independent
    complex normal :math:`\xi_k` (real and imaginary parts N(0, 1)) times :math:`\sigma\mu_k^{1/2}`, and the field is
    the real part of the series :math:`\sum_k \sigma\mu_k^{1/2}\xi_k e_k(x)`. :math:`\mathrm{Re}(\xi_k e_k(x))` has
    variance 1 and covariance :math:`\cos 2\pi k\cdot(x-y)` between points, and distinct modes are independent, so
    the sampled covariance is exactly :math:`c(x,y)` truncated to the grid's modes. (FNO's ``random_fields.py``
    multiplies this amplitude by :math:`\sqrt2`, i.e. samples :math:`2C`; pass ``sigma`` accordingly to reproduce it.)

    Args:
        rng: source of randomness.
        shape: grid size per dimension (``s`` or ``(s, s)``).
        alpha: smoothness exponent :math:`\alpha`.
        tau: inverse length scale :math:`\tau`.
        sigma: amplitude :math:`\sigma` (default :math:`\tau^{(2\alpha-d)/2}`, FNO's nominal value).
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    d = len(shape)
    if sigma is None:
        sigma = tau ** (0.5 * (2 * alpha - d))
    k2 = np.zeros(shape)
    for axis, s in enumerate(shape):
        k = np.fft.fftfreq(s, d=1.0 / s)  # integer wavenumbers 0, 1, ..., -1
        k2 = k2 + (k ** 2).reshape([-1 if a == axis else 1 for a in range(d)])
    amp = sigma * (4 * math.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2.0)
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
