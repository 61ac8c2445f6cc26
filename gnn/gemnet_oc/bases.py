r"""Radial, circular and spherical bases of GemNet-OC.

* Radial: a smooth cutoff envelope times a radial basis of the scaled distance :math:`\tilde d = d / c`.
  Polynomial envelope (exponent :math:`p`, default 5):

  .. math::
      u(\tilde d) = 1 - \tfrac{(p+1)(p+2)}{2}\tilde d^{p} + p(p+2)\tilde d^{p+1} - \tfrac{p(p+1)}{2}\tilde d^{p+2}
      \quad (\tilde d < 1), \qquad 0 \text{ otherwise},

  which is 1 at 0 and has value, slope and curvature 0 at the cutoff. Gaussian basis: ``num_radial`` centres
  :math:`\mu_k` evenly in :math:`[0, 1]`, :math:`\exp(-(\tilde d - \mu_k)^2 / (2\Delta^2))` with
  :math:`\Delta = 1/(K-1)`. Spherical Bessel option: :math:`\sqrt{2/c^3}\,\sin(n\pi\tilde d)/\tilde d`,
  :math:`n = 1..K` (trainable frequencies), orthonormal on :math:`[0, c]` with weight :math:`r^2`.
* Circular (one angle): the real spherical harmonics of order 0,
  :math:`Y_l^0(\cos\varphi) = \sqrt{(2l+1)/(4\pi)}\,P_l(\cos\varphi)`, :math:`l = 0..L-1`.
* Spherical (two angles, ``"legendre_outer"``): the outer product :math:`Y_l^0(\cos\varphi)\,Y_{l'}^0(\cos\theta)`
  (:math:`L^2` functions).

From *GemNet-OC: Developing Graph Neural Networks for Large and Diverse Molecular Simulation Datasets*
(Gasteiger et al., TMLR 2022).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError

__all__ = ["PolynomialEnvelope", "GaussianBasis", "SphericalBesselBasis", "RadialBasis", "legendre",
           "zonal_harmonics", "CircularBasis", "SphericalBasis"]


class PolynomialEnvelope(nn.Module):
    r"""Polynomial cutoff envelope :math:`u(\tilde d)` of exponent ``p`` (see the module doc).

    Args:
        exponent (int): :math:`p \ge 1`. (default: ``5``)
    """

    def __init__(self, exponent: int = 5) -> None:
        super().__init__()
        if isinstance(exponent, bool) or not isinstance(exponent, int) or exponent < 1:
            raise ConfigError(f"envelope exponent must be a positive integer, got {exponent!r}")
        p = float(exponent)
        self.p = exponent
        self.a = -(p + 1) * (p + 2) / 2
        self.b = p * (p + 2)
        self.c = -p * (p + 1) / 2

    def forward(self, d_scaled: Tensor) -> Tensor:
        x = d_scaled.clamp(max=1.0)  # keeps the unused branch finite for far edges
        xp = x ** self.p
        value = 1 + xp * (self.a + x * (self.b + self.c * x))
        return torch.where(d_scaled < 1, value, torch.zeros_like(value))


class GaussianBasis(nn.Module):
    r"""``num`` Gaussians with centres evenly spaced in ``[start, stop]`` and width equal to their spacing.

    Args:
        start (float), stop (float): range of the centres. (default: ``0``, ``1``)
        num (int): number of functions (at least 2). (default: ``128``)
        trainable (bool): learn the centres. (default: :obj:`False`)
    """

    def __init__(self, start: float = 0.0, stop: float = 1.0, num: int = 128, trainable: bool = False) -> None:
        super().__init__()
        if num < 2:
            raise ConfigError(f"GaussianBasis needs at least 2 functions, got {num}")
        offset = torch.linspace(start, stop, num, dtype=torch.float64).to(torch.get_default_dtype())
        if trainable:
            self.offset = nn.Parameter(offset)
        else:
            self.register_buffer("offset", offset)
        self.coeff = -0.5 / ((stop - start) / (num - 1)) ** 2

    def forward(self, x: Tensor) -> Tensor:
        diff = x[:, None] - self.offset.to(x.dtype)[None, :]
        return torch.exp(self.coeff * diff * diff)


class SphericalBesselBasis(nn.Module):
    r"""Zeroth-order spherical Bessel functions :math:`\sqrt{2/c^3}\,\sin(\omega_n\tilde d)/\tilde d` with
    frequencies :math:`\omega_n = n\pi` at initialisation (trainable), orthonormal on :math:`[0, c]` with weight
    :math:`r^2` (DimeNet's radial basis).

    Args:
        num (int): number of functions. cutoff (float): :math:`c` (Å).
    """

    def __init__(self, num: int, cutoff: float) -> None:
        super().__init__()
        self.norm_const = math.sqrt(2.0 / cutoff ** 3)
        self.frequencies = nn.Parameter(math.pi * torch.arange(1, num + 1, dtype=torch.get_default_dtype()))

    def forward(self, d_scaled: Tensor) -> Tensor:
        x = d_scaled[:, None]
        return self.norm_const * torch.sin(self.frequencies.to(x.dtype) * x) / x


class RadialBasis(nn.Module):
    r"""Envelope times radial basis of :math:`\tilde d = d / c`: ``[E] -> [E, num_radial]``.

    Args:
        num_radial (int): number of functions. (default: ``128``)
        cutoff (float): :math:`c` (Å). (default: ``12.0``)
        rbf (str): ``"gaussian"`` or ``"spherical_bessel"``. (default: ``"gaussian"``)
        envelope_exponent (int): exponent :math:`p` of the polynomial envelope. (default: ``5``)
    """

    def __init__(self, num_radial: int = 128, cutoff: float = 12.0, rbf: str = "gaussian",
                 envelope_exponent: int = 5) -> None:
        super().__init__()
        if not cutoff > 0:
            raise ConfigError(f"cutoff must be positive, got {cutoff!r}")
        self.cutoff = float(cutoff)
        self.num_radial = num_radial
        self.envelope = PolynomialEnvelope(envelope_exponent)
        if rbf == "gaussian":
            self.rbf: nn.Module = GaussianBasis(0.0, 1.0, num_radial)
        elif rbf == "spherical_bessel":
            self.rbf = SphericalBesselBasis(num_radial, cutoff)
        else:
            raise ConfigError(f"rbf must be 'gaussian' or 'spherical_bessel', got {rbf!r}")

    def forward(self, d: Tensor) -> Tensor:
        d_scaled = d / self.cutoff
        return self.envelope(d_scaled)[:, None] * self.rbf(d_scaled)


def legendre(x: Tensor, num: int) -> Tensor:
    r"""Legendre polynomials :math:`P_0..P_{num-1}` of ``x`` by Bonnet's recurrence
    :math:`(l+1)P_{l+1} = (2l+1)xP_l - lP_{l-1}`: ``[*] -> [*, num]``."""
    out = [torch.ones_like(x)]
    if num > 1:
        out.append(x)
    for l in range(1, num - 1):
        out.append(((2 * l + 1) * x * out[l] - l * out[l - 1]) / (l + 1))
    return torch.stack(out[:num], dim=-1)


def zonal_harmonics(cos_angle: Tensor, num: int) -> Tensor:
    r"""Real spherical harmonics of order 0, :math:`Y_l^0 = \sqrt{(2l+1)/(4\pi)}P_l(\cos\varphi)`,
    :math:`l = 0..num-1`: ``[T] -> [T, num]``."""
    norm = torch.sqrt((2 * torch.arange(num, dtype=torch.float64) + 1) / (4 * math.pi)).to(cos_angle)
    return legendre(cos_angle, num) * norm


class CircularBasis(nn.Module):
    r"""Circular basis of one angle: :math:`Y_l^0(\cos\varphi)`, ``[T] -> [T, num_spherical]`` (``"gaussian"``
    option: Gaussians in :math:`\cos\varphi \in [-1, 1]`).

    Args:
        num_spherical (int): :math:`L`. (default: ``7``)
        kind (str): ``"spherical_harmonics"`` or ``"gaussian"``. (default: ``"spherical_harmonics"``)
    """

    def __init__(self, num_spherical: int = 7, kind: str = "spherical_harmonics") -> None:
        super().__init__()
        if kind not in ("spherical_harmonics", "gaussian"):
            raise ConfigError(f"cbf must be 'spherical_harmonics' or 'gaussian', got {kind!r}")
        self.num_spherical, self.kind = num_spherical, kind
        self.gaussian = GaussianBasis(-1.0, 1.0, num_spherical) if kind == "gaussian" else None

    def forward(self, cos_angle: Tensor) -> Tensor:
        if self.gaussian is not None:
            return self.gaussian(cos_angle)
        return zonal_harmonics(cos_angle, self.num_spherical)


class SphericalBasis(nn.Module):
    r"""Spherical basis of two angles as an outer product of circular bases (``"legendre_outer"``):
    :math:`Y_l^0(\cos\varphi)\,Y_{l'}^0(\cos\theta)`, ``[Q], [Q] -> [Q, L^2]`` (``l`` major).

    Args:
        num_spherical (int): :math:`L`. (default: ``7``)
        kind (str): ``"legendre_outer"`` or ``"gaussian_outer"``. (default: ``"legendre_outer"``)
    """

    def __init__(self, num_spherical: int = 7, kind: str = "legendre_outer") -> None:
        super().__init__()
        if kind not in ("legendre_outer", "gaussian_outer"):
            raise ConfigError(f"sbf must be 'legendre_outer' or 'gaussian_outer', got {kind!r}")
        self.num_spherical = num_spherical
        self.circular = CircularBasis(num_spherical, "spherical_harmonics" if kind == "legendre_outer"
                                      else "gaussian")

    def forward(self, cos_phi: Tensor, cos_theta: Tensor) -> Tensor:
        a = self.circular(cos_phi)
        b = self.circular(cos_theta)
        return (a[:, :, None] * b[:, None, :]).reshape(cos_phi.size(0), self.num_spherical ** 2)
