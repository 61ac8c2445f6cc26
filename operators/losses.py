r"""Relative :math:`L^2` and :math:`H^1` losses and metrics for fields on 2D grids.

Per sample :math:`i` the relative error is :math:`\|\hat u_i - u_i\| / \|u_i\|` over every axis but the batch
axis (all channels together), then averaged (``reduction="mean"``), summed (``"sum"``: the official MgNO and FNO
training losses) or returned per sample (``"none"``).

:func:`relative_h1` measures the :math:`H^1` norm in one of two ways:

* ``method="spectral"`` (the official MgNO code's ``HsLoss`` with ``k=1``): the orthonormal 2D FFT of the error
  and of the target over the last two axes, weighted by :math:`\sqrt{1 + a^2(k_x^2 + k_y^2)}` with integer
  wavenumbers :math:`k` (``fftfreq`` order). With ``truncation=T`` (MgNO: 20) a wavenumber with
  :math:`|k_x| \ge T` counts as :math:`k_x = 0` in the weight (per axis; the mode still counts, with the
  :math:`L^2` weight), as the official code does. Unlike the official code, non-square and odd grids work.
* ``method="fd"``: :math:`\|e\|^2 + \|\partial_x e\|^2 + \|\partial_y e\|^2` on the grid, with second-order
  central differences inside and one-sided ones on the edges (``torch.gradient``) and grid spacing ``spacing``
  (default: ``1/(n-1)`` per axis, the node grid of the unit square). All sums use the same cell measure, which
  cancels in the ratio.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError

__all__ = ["relative_lp", "relative_l2", "relative_h1", "h1_spectral_weight", "RelativeL2Loss", "RelativeH1Loss"]


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_pair(pred: Tensor, target: Tensor, name: str, min_dim: int = 2) -> None:
    if pred.shape != target.shape:
        raise ShapeError(f"{name}: prediction {list(pred.shape)} and target {list(target.shape)} differ in shape")
    if pred.dim() < min_dim:
        raise ShapeError(f"{name}: expected [B, ...] with at least {min_dim} axes, got {list(pred.shape)}")


def relative_lp(pred: Tensor, target: Tensor, p: float = 2.0, reduction: str = "mean", eps: float = 0.0) -> Tensor:
    r"""Relative :math:`\ell^p` error per sample, :math:`\|\hat u_i - u_i\|_p / (\|u_i\|_p + \varepsilon)`, reduced.

    Args:
        pred (Tensor): ``[B, ...]``.
        target (Tensor): same shape.
        p (float): the norm. (default: ``2``)
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. (default: ``"mean"``)
        eps (float): added to the target norm. (default: ``0``)
    """
    _check_pair(pred, target, "relative_lp")
    b = pred.shape[0]
    diff = torch.linalg.vector_norm((pred - target).reshape(b, -1), ord=p, dim=1)
    ref = torch.linalg.vector_norm(target.reshape(b, -1), ord=p, dim=1)
    return _reduce(diff / (ref + eps), reduction)


def relative_l2(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Relative :math:`L^2` error per sample (:func:`relative_lp` with ``p=2``)."""
    return relative_lp(pred, target, 2.0, reduction)


def h1_spectral_weight(height: int, width: int, a: float = 1.0, truncation: int | None = 20, *,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The ``[height, width]`` weight :math:`\sqrt{1 + a^2(k_x^2 + k_y^2)}` on the FFT grid (``fftfreq`` order,
    integer wavenumbers; per-axis ``|k| >= truncation`` counts as 0)."""
    kx = torch.fft.fftfreq(height, d=1.0 / height, device=device, dtype=torch.float64).abs()
    ky = torch.fft.fftfreq(width, d=1.0 / width, device=device, dtype=torch.float64).abs()
    if truncation is not None:
        kx = kx * (kx < truncation)
        ky = ky * (ky < truncation)
    w = torch.sqrt(1.0 + a ** 2 * (kx[:, None] ** 2 + ky[None, :] ** 2))
    return w.to(dtype)


def _fd_sq_norm(x: Tensor, spacing: tuple[float, float]) -> Tensor:
    gx, gy = torch.gradient(x, spacing=spacing, dim=(-2, -1))
    b = x.shape[0]
    return (x ** 2 + gx ** 2 + gy ** 2).reshape(b, -1).sum(dim=1)


def relative_h1(pred: Tensor, target: Tensor, *, method: str = "spectral", a: float = 1.0,
                truncation: int | None = 20, spacing: tuple[float, float] | None = None,
                reduction: str = "mean") -> Tensor:
    r"""Relative :math:`H^1` error per sample over the last two (spatial) axes, reduced.

    Args:
        pred (Tensor): ``[B, ..., H, W]`` (e.g. ``[B, C, H, W]``).
        target (Tensor): same shape.
        method (str): ``"spectral"`` (official MgNO) or ``"fd"`` (finite differences; see the module docstring).
            (default: ``"spectral"``)
        a (float): weight of the derivative term in the spectral norm (MgNO: 1 for Darcy, 2 for NS).
            (default: ``1``)
        truncation (int, optional): spectral only: wavenumbers ``>= truncation`` get the :math:`L^2` weight
            (MgNO: 20); :obj:`None` for none. (default: ``20``)
        spacing (tuple, optional): ``fd`` only: grid spacing ``(dx, dy)``. (default: ``1/(H-1), 1/(W-1)``)
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. (default: ``"mean"``)
    """
    _check_pair(pred, target, "relative_h1", min_dim=3)
    b = pred.shape[0]
    h, w = pred.shape[-2:]
    if method == "spectral":
        weight = h1_spectral_weight(h, w, a, truncation, device=pred.device,
                                    dtype=pred.real.dtype if pred.is_complex() else pred.dtype)
        e_hat = torch.fft.fft2(pred - target, norm="ortho") * weight
        t_hat = torch.fft.fft2(target, norm="ortho") * weight
        diff = torch.linalg.vector_norm(e_hat.reshape(b, -1), dim=1)
        ref = torch.linalg.vector_norm(t_hat.reshape(b, -1), dim=1)
        return _reduce(diff / ref, reduction)
    if method == "fd":
        if min(h, w) < 2:
            raise ShapeError(f"relative_h1: finite differences need >= 2 points per axis, got {h}x{w}")
        sp = (1.0 / (h - 1), 1.0 / (w - 1)) if spacing is None else (float(spacing[0]), float(spacing[1]))
        diff = _fd_sq_norm(pred - target, sp).sqrt()
        ref = _fd_sq_norm(target, sp).sqrt()
        return _reduce(diff / ref, reduction)
    raise ConfigError(f"relative_h1: method must be 'spectral' or 'fd', got {method!r}")


class RelativeL2Loss(nn.Module):
    """:func:`relative_l2` as a module (``reduction`` ``"mean"`` or ``"sum"``)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return relative_l2(pred, target, self.reduction)


class RelativeH1Loss(nn.Module):
    """:func:`relative_h1` as a module; keyword arguments as there."""

    def __init__(self, *, method: str = "spectral", a: float = 1.0, truncation: int | None = 20,
                 spacing: tuple[float, float] | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if method not in ("spectral", "fd"):
            raise ConfigError(f"RelativeH1Loss: method must be 'spectral' or 'fd', got {method!r}")
        self.kwargs = dict(method=method, a=a, truncation=truncation, spacing=spacing, reduction=reduction)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return relative_h1(pred, target, **self.kwargs)
