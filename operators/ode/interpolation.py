r"""Control paths for irregular, partially observed time series: piecewise-cubic interpolation of ``[..., L, C]``
values on a shared, increasing time grid ``t`` of ``L`` knots, with ``NaN`` for missing values.

Every interpolation returns coefficients ``[..., L - 1, 4, C]`` in the power basis of each interval
:math:`[t_k, t_{k+1}]`,

.. math::

    X(t) = a_k + b_k s + c_k s^2 + d_k s^3,\qquad s = t - t_k,

read by :class:`CubicPath` (value and derivative at any time; outside ``[t_0, t_{L-1}]`` the first/last cubic is
extended). The coefficients are plain tensors, so a dataset of paths is one ``[N, L - 1, 4, C]`` tensor.

* :func:`hermite_cubic_coeffs`: cubic Hermite from the values and slopes at the knots (reproduces any cubic
  polynomial given its exact derivatives).
* :func:`hermite_cubic_coeffs_with_backward_differences`: the control path of the Stable Neural SDE code
  (``torchcde.hermite_cubic_coefficients_with_backward_differences``): the slope at knot ``k`` is the backward
  difference :math:`(x_k - x_{k-1}) / (t_k - t_{k-1})` (the forward difference at ``k = 0``). The path is
  :math:`C^1`, passes through the knots, reproduces linear functions, and is *causal*: :math:`X` on
  :math:`[t_k, t_{k+1}]` uses no value after :math:`t_{k+1}`. Missing values are first filled by linear
  interpolation in time (:func:`fill_linear`).
* :func:`natural_cubic_coeffs`: the natural cubic spline (:math:`X'' = 0` at both ends) through the *observed*
  points of each series and channel, as the neural CDE code (Kidger et al., NeurIPS 2020) builds it: a missing first
  (last) value is imputed with the first (last) observation, a series with no observation is the zero path.
"""
from __future__ import annotations

import bisect

import torch
from torch import Tensor

from sciml.errors import ConfigError, ShapeError

__all__ = ["CubicPath", "fill_linear", "hermite_cubic_coeffs", "hermite_cubic_coeffs_with_backward_differences",
           "natural_cubic_coeffs", "interpolation_coeffs", "INTERPOLATIONS"]


def _check(x: Tensor, t: Tensor, name: str) -> Tensor:
    if x.dim() < 2:
        raise ShapeError(f"{name}: x must be [..., L, C], got shape {tuple(x.shape)}")
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() != 1 or t.numel() != x.shape[-2]:
        raise ShapeError(f"{name}: t must be 1-D with L = {x.shape[-2]} entries (x is {tuple(x.shape)}), got "
                         f"shape {tuple(t.shape)}")
    if t.numel() < 2:
        raise ShapeError(f"{name}: need at least 2 knots, got {t.numel()}")
    if not bool((t[1:] > t[:-1]).all()):
        raise ShapeError(f"{name}: t must be strictly increasing")
    return t


def fill_linear(x: Tensor, t: Tensor) -> Tensor:
    """Fill ``NaN`` along the time axis (``-2``) by linear interpolation in ``t`` between the neighbouring
    observations; leading (trailing) gaps take the first (last) observation; an all-``NaN`` series becomes 0.

    Args:
        x (Tensor): ``[..., L, C]`` values with ``NaN`` where missing.
        t (Tensor): ``[L]`` increasing times.
    """
    t = _check(x, t, "fill_linear")
    obs = ~torch.isnan(x)
    if bool(obs.all()):
        return x.clone()
    L = x.shape[-2]
    shape = [1] * x.dim()
    shape[-2] = L
    idx = torch.arange(L, device=x.device).view(shape).expand_as(x)
    prev = torch.where(obs, idx, torch.full_like(idx, -1)).cummax(dim=-2).values
    nxt = torch.where(obs, idx, torch.full_like(idx, L)).flip(-2).cummin(dim=-2).values.flip(-2)
    has_prev, has_next = prev >= 0, nxt < L
    prev_c, next_c = prev.clamp(0, L - 1), nxt.clamp(0, L - 1)
    x0 = torch.nan_to_num(x, nan=0.0)
    x_prev, x_next = x0.gather(-2, prev_c), x0.gather(-2, next_c)
    tt = t.view(shape).expand_as(x)
    t_prev, t_next = t[prev_c], t[next_c]
    gap = t_next - t_prev
    w = torch.where(gap > 0, (tt - t_prev) / torch.where(gap > 0, gap, torch.ones_like(gap)), torch.zeros_like(gap))
    interior = x_prev + w * (x_next - x_prev)
    out = torch.where(has_prev & has_next, interior,
                      torch.where(has_prev, x_prev, torch.where(has_next, x_next, torch.zeros_like(x0))))
    return torch.where(obs, x, out)


def hermite_cubic_coeffs(x: Tensor, dx: Tensor, t: Tensor) -> Tensor:
    r"""Cubic Hermite coefficients from knot values ``x`` and knot slopes ``dx`` (both ``[..., L, C]``, no NaN).

    On :math:`[t_k, t_{k+1}]`, with :math:`h = t_{k+1} - t_k`, :math:`\delta = (x_{k+1} - x_k)/h`:
    :math:`a = x_k`, :math:`b = m_k`, :math:`c = (3\delta - 2m_k - m_{k+1})/h`,
    :math:`d = (m_k + m_{k+1} - 2\delta)/h^2`. Returns ``[..., L - 1, 4, C]``.
    """
    t = _check(x, t, "hermite_cubic_coeffs")
    if dx.shape != x.shape:
        raise ShapeError(f"hermite_cubic_coeffs: dx must have the shape of x {tuple(x.shape)}, got {tuple(dx.shape)}")
    h = (t[1:] - t[:-1]).unsqueeze(-1)  # [L-1, 1]
    x0, x1, m0, m1 = x[..., :-1, :], x[..., 1:, :], dx[..., :-1, :], dx[..., 1:, :]
    delta = (x1 - x0) / h
    c = (3 * delta - 2 * m0 - m1) / h
    d = (m0 + m1 - 2 * delta) / h.pow(2)
    return torch.stack([x0, m0, c, d], dim=-2)


def hermite_cubic_coeffs_with_backward_differences(x: Tensor, t: Tensor) -> Tensor:
    """The Stable Neural SDE control path: missing values filled linearly (:func:`fill_linear`), then cubic
    Hermite with backward-difference slopes. Returns ``[..., L - 1, 4, C]``.

    Args:
        x (Tensor): ``[..., L, C]`` values, ``NaN`` where missing.
        t (Tensor): ``[L]`` increasing knot times.
    """
    t = _check(x, t, "hermite_cubic_coeffs_with_backward_differences")
    x = fill_linear(x, t)
    diff = (x[..., 1:, :] - x[..., :-1, :]) / (t[1:] - t[:-1]).unsqueeze(-1)  # [..., L-1, C]
    slopes = torch.cat([diff[..., :1, :], diff], dim=-2)  # slope at knot k: backward difference (forward at 0)
    return hermite_cubic_coeffs(x, slopes, t)


def _natural_pieces(tau: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Natural cubic spline through ``(tau[j], y[:, j])`` for ``R`` rows at once (``y`` ``[R, n]``, ``n >= 2``):
    the per-interval ``a, b, c, d`` ``[R, n - 1]`` from the second-derivative (moment) equations."""
    n = tau.numel()
    h = tau[1:] - tau[:-1]  # [n-1]
    slope = (y[:, 1:] - y[:, :-1]) / h  # [R, n-1]
    moments = torch.zeros_like(y)
    if n > 2:
        m = n - 2
        rhs = 6.0 * (slope[:, 1:] - slope[:, :-1])  # [R, m]
        A = torch.diag(2.0 * (h[:-1] + h[1:]))
        if m > 1:
            A = A + torch.diag(h[1:-1], 1) + torch.diag(h[1:-1], -1)
        moments[:, 1:-1] = torch.linalg.solve(A, rhs.T).T
    M0, M1 = moments[:, :-1], moments[:, 1:]
    a = y[:, :-1]
    b = slope - h * (2.0 * M0 + M1) / 6.0
    c = M0 / 2.0
    d = (M1 - M0) / (6.0 * h)
    return a, b, c, d


def natural_cubic_coeffs(x: Tensor, t: Tensor) -> Tensor:
    """Natural cubic spline coefficients ``[..., L - 1, 4, C]`` through the observed values of every series and
    channel (``NaN`` = missing; see the module docstring for gaps at the ends and empty series).

    Series that share an observation pattern are solved together (one small linear solve per pattern), so the
    cost is one solve for complete data and one per sample when whole time points are dropped.

    Args:
        x (Tensor): ``[..., L, C]`` values.
        t (Tensor): ``[L]`` increasing knot times.
    """
    t = _check(x, t, "natural_cubic_coeffs")
    L, C = x.shape[-2], x.shape[-1]
    batch = x.shape[:-2]
    dtype = x.dtype
    work = torch.float64
    rows = x.reshape(-1, L, C).transpose(1, 2).reshape(-1, L).to(work)  # [R, L]
    tw = t.to(work)
    obs = ~torch.isnan(rows)
    out = torch.zeros(rows.shape[0], L - 1, 4, dtype=work, device=x.device)
    patterns, inverse = torch.unique(obs.to(torch.uint8), dim=0, return_inverse=True)
    patterns = patterns.bool()
    knots = torch.arange(L - 1, device=x.device)
    for p in range(patterns.shape[0]):
        members = torch.nonzero(inverse == p).view(-1)
        seen = torch.nonzero(patterns[p]).view(-1)
        if seen.numel() == 0:
            continue  # the zero path
        vals = rows[members][:, seen]
        if seen.numel() == 1:
            out[members, :, 0] = vals
            continue
        idx = seen
        if idx[0] > 0:  # impute the first observation at t_0 and the last at t_{L-1}
            idx = torch.cat([idx.new_zeros(1), idx])
            vals = torch.cat([vals[:, :1], vals], dim=1)
        if idx[-1] < L - 1:
            idx = torch.cat([idx, idx.new_full((1,), L - 1)])
            vals = torch.cat([vals, vals[:, -1:]], dim=1)
        tau = tw[idx]
        a, b, c, d = _natural_pieces(tau, vals)
        # re-expand each observed piece onto the full-grid intervals it covers (Taylor coefficients at t_k)
        piece = torch.searchsorted(idx, knots, right=True) - 1
        s = (tw[:-1] - tau[piece]).unsqueeze(0)  # [1, L-1]
        a, b, c, d = a[:, piece], b[:, piece], c[:, piece], d[:, piece]
        out[members, :, 0] = a + s * (b + s * (c + s * d))
        out[members, :, 1] = b + s * (2 * c + 3 * s * d)
        out[members, :, 2] = c + 3 * s * d
        out[members, :, 3] = d
    return out.reshape(*batch, C, L - 1, 4).permute(*range(len(batch)), -2, -1, -3).to(dtype)


#: name -> coefficient function ``(x, t) -> [..., L - 1, 4, C]``.
INTERPOLATIONS = {"hermite": hermite_cubic_coeffs_with_backward_differences, "natural": natural_cubic_coeffs}


def interpolation_coeffs(x: Tensor, t: Tensor, kind: str = "hermite") -> Tensor:
    """``INTERPOLATIONS[kind](x, t)``: ``"hermite"`` (backward differences; the SDE models) or ``"natural"``."""
    if kind not in INTERPOLATIONS:
        raise ConfigError(f"interpolation: unknown kind {kind!r}; expected one of {sorted(INTERPOLATIONS)}")
    return INTERPOLATIONS[kind](x, t)


class CubicPath:
    """A piecewise-cubic path ``X(t)`` from knots ``times`` ``[L]`` and coefficients ``[..., L - 1, 4, C]``.

    Args:
        coeffs (Tensor): ``[..., L - 1, 4, C]`` from one of the interpolations.
        times (Tensor, optional): ``[L]`` knots. (default: ``linspace(0, 1, L)``, the Stable Neural SDE code's
            normalised grid)
    """

    def __init__(self, coeffs: Tensor, times: Tensor | None = None) -> None:
        if coeffs.dim() < 3 or coeffs.shape[-2] != 4:
            raise ShapeError(f"CubicPath: coeffs must be [..., L - 1, 4, C], got shape {tuple(coeffs.shape)}")
        L = coeffs.shape[-3] + 1
        if times is None:
            times = torch.linspace(0, 1, L, dtype=coeffs.dtype, device=coeffs.device)
        times = torch.as_tensor(times, dtype=coeffs.dtype, device=coeffs.device)
        if times.dim() != 1 or times.numel() != L:
            raise ShapeError(f"CubicPath: times must be [L] = [{L}] for coeffs {tuple(coeffs.shape)}, got "
                             f"{tuple(times.shape)}")
        self.coeffs, self.times = coeffs, times
        self._knots = times.tolist()

    @property
    def channels(self) -> int:
        return self.coeffs.shape[-1]

    def _locate(self, t: Tensor | float) -> tuple[int, Tensor]:
        tf = float(t)
        k = min(max(bisect.bisect_right(self._knots, tf) - 1, 0), len(self._knots) - 2)
        s = torch.as_tensor(t, dtype=self.coeffs.dtype, device=self.coeffs.device) - self.times[k]
        return k, s

    def evaluate(self, t: Tensor | float) -> Tensor:
        """``X(t)``, ``[..., C]`` (``t`` a python float or a 0-dim tensor)."""
        k, s = self._locate(t)
        a, b, c, d = self.coeffs[..., k, :, :].unbind(-2)
        return a + s * (b + s * (c + s * d))

    def derivative(self, t: Tensor | float) -> Tensor:
        """``dX/dt(t)``, ``[..., C]``."""
        k, s = self._locate(t)
        _, b, c, d = self.coeffs[..., k, :, :].unbind(-2)
        return b + s * (2 * c + 3 * s * d)

    def knot_values(self) -> Tensor:
        """``X`` at every knot, ``[..., L, C]``."""
        last = self.evaluate(self.times[-1])
        return torch.cat([self.coeffs[..., :, 0, :], last.unsqueeze(-2)], dim=-2)
