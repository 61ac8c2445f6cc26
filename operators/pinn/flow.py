r"""A normalising flow whose support is exactly a box, for adaptive PINN sampling (DAS, AAS).

:class:`BoundedFlow` is a coupling flow built from monotone rational-quadratic splines on the unit interval
("Neural Spline Flows", Durkan, Bekasov, Murray, Papamakarios, NeurIPS 2019), arranged like KRnet (Tang, Wan, Liao,
"Adaptive deep density estimation for Fokker-Planck equations", JCP 2022; the flow of DAS-PINNs, Tang, Wan, Yang,
JCP 2023): coupling layers that alternate which coordinates condition which, then one per-coordinate "CDF" layer.

The boundary map is a CDF map, so nothing ever leaves the domain and nothing is projected:

.. math::
    x = \ell + (h - \ell) \odot u, \qquad u = T^{-1}(z), \qquad z \sim \mathcal U[0, 1]^d,

where every layer of :math:`T` maps :math:`[0, 1]^d` onto itself (each spline sends 0 to 0 and 1 to 1 and is
strictly increasing). A uniform base is a standard Gaussian pushed through its own CDF, so this is the usual
"Gaussian prior + CDF layer" construction with the CDF moved to the front. The density is

.. math::
    \log p(x) = \sum_{\text{layers}} \log \left|\det \partial T_k\right| - \log |\Omega|,

positive and bounded on the closed box, zero outside it (``log_prob`` returns ``-inf`` there). Every spline starts
as the identity (the last layer of each conditioner is zero), so a fresh flow is the uniform density on the box.

See ``docs/pinn_flow.md`` for the choices and how DAS and AAS use it (``sciml.operators.pinn.flow_samplers``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError

__all__ = ["BoundedFlow", "rational_quadratic_spline", "DAS_LOG_PROB_BOUNDS"]

#: The log-density clamp of the DAS code (``log p`` in ``[log 1e-10, log 148.41]``). We apply it to the density
#: *relative to the uniform one* (``log p + log|Omega|``), so that it does not depend on the box's volume.
DAS_LOG_PROB_BOUNDS = (math.log(1e-10), 5.0)


# ---------------------------------------------------------------------------------------------------- spline
def _spline_params(raw: Tensor, num_bins: int, min_width: float, min_height: float,
                   min_derivative: float) -> tuple[Tensor, Tensor, Tensor]:
    """Unconstrained ``raw [..., 3K + 1]`` -> knot abscissae ``kx [..., K+1]``, ordinates ``ky`` and the per-bin
    table ``[..., K, 6]`` of (x_k, y_k, w_k, h_k, d_k, d_{k+1}) of a monotone spline of [0, 1] onto [0, 1]."""
    k = num_bins
    w = min_width + (1.0 - min_width * k) * torch.softmax(raw[..., :k], dim=-1)
    h = min_height + (1.0 - min_height * k) * torch.softmax(raw[..., k:2 * k], dim=-1)
    d = min_derivative + F.softplus(raw[..., 2 * k:])
    # cumulative sums as one small matmul (faster than cumsum on a short last axis); knot 0 is exactly 0, knot K
    # is 1 up to rounding, which the final clamp of the spline absorbs
    tri = torch.ones(k, k + 1, dtype=raw.dtype, device=raw.device).triu_(1)
    kx = w @ tri
    ky = h @ tri
    table = torch.stack([kx[..., :-1], ky[..., :-1], w, h, d[..., :-1], d[..., 1:]], dim=-1)
    return kx, ky, table


def rational_quadratic_spline(x: Tensor, raw: Tensor, *, inverse: bool = False, min_width: float = 1e-3,
                              min_height: float = 1e-3, min_derivative: float = 1e-3) -> tuple[Tensor, Tensor]:
    r"""A monotone rational-quadratic spline of :math:`[0, 1]` onto itself, elementwise (Gregory & Delbourgo 1982;
    Durkan et al., NeurIPS 2019).

    Inside bin :math:`k` with :math:`\xi = (x - x_k)/w_k` and :math:`s_k = h_k / w_k`:

    .. math::
        y = y_k + h_k\,\frac{s_k \xi^2 + d_k \xi (1-\xi)}{s_k + (d_{k+1} + d_k - 2 s_k)\,\xi(1-\xi)}.

    The slopes at 0 and 1 are free (the interval is the whole support, so there are no linear tails).

    Args:
        x (Tensor): points in ``[0, 1]``, any shape ``[...]``.
        raw (Tensor): ``[..., 3K + 1]`` unconstrained parameters (K bin widths, K heights, K + 1 knot slopes).
        inverse (bool): evaluate the inverse map instead. (default: :obj:`False`)

    Returns:
        ``(y, log_abs_dy_dx)``; for ``inverse=True`` the log-derivative is that of the inverse map.
    """
    k = (raw.shape[-1] - 1) // 3
    kx, ky, table = _spline_params(raw, k, min_width, min_height, min_derivative)
    knots = ky if inverse else kx
    x = x.clamp(0.0, 1.0)
    idx = torch.searchsorted(knots[..., 1:-1].contiguous(), x.unsqueeze(-1).contiguous()).clamp_(0, k - 1)
    sel = table.gather(-2, idx.unsqueeze(-1).expand(*idx.shape, 6)).squeeze(-2)
    xk, yk, wk, hk, dk, dk1 = sel.unbind(-1)
    sk = hk / wk
    c2 = dk1 + dk - 2.0 * sk
    if not inverse:
        xi = ((x - xk) / wk).clamp(0.0, 1.0)
        t = xi * (1.0 - xi)
        denom = sk + c2 * t
        y = yk + hk * (sk * xi * xi + dk * t) / denom
        deriv = sk * sk * (dk1 * xi * xi + 2.0 * sk * t + dk * (1.0 - xi) ** 2) / (denom * denom)
        return y.clamp(0.0, 1.0), torch.log(deriv)
    dy = x - yk
    a = hk * (sk - dk) + dy * c2
    b = hk * dk - dy * c2
    c = -sk * dy
    disc = (b * b - 4.0 * a * c).clamp_min(0.0)
    xi = ((2.0 * c) / (-b - torch.sqrt(disc))).clamp(0.0, 1.0)
    t = xi * (1.0 - xi)
    denom = sk + c2 * t
    deriv = sk * sk * (dk1 * xi * xi + 2.0 * sk * t + dk * (1.0 - xi) ** 2) / (denom * denom)
    return (xk + xi * wk).clamp(0.0, 1.0), -torch.log(deriv)


def _identity_slope_raw(min_derivative: float) -> float:
    """The raw slope parameter whose softplus gives slope 1 (so zero-initialised layers are the identity)."""
    return math.log(math.expm1(1.0 - min_derivative))


# ---------------------------------------------------------------------------------------------------- layers
class _SplineLayer(nn.Module):
    """One layer of the flow on ``[0, 1]^d``: the coordinates in ``transform`` go through a spline whose
    parameters depend on the coordinates in ``condition`` (an MLP), or are free parameters when ``condition`` is
    empty (the per-coordinate CDF layer)."""

    def __init__(self, dim: int, transform: Sequence[int], condition: Sequence[int], num_bins: int, hidden: int,
                 depth: int, spline_kw: dict) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.spline_kw = spline_kw
        self.register_buffer("transform_idx", torch.tensor(list(transform), dtype=torch.long), persistent=False)
        self.register_buffer("condition_idx", torch.tensor(list(condition), dtype=torch.long), persistent=False)
        n_out = len(transform) * (3 * num_bins + 1)
        self.bias = nn.Parameter(torch.zeros(len(transform), 3 * num_bins + 1))
        with torch.no_grad():
            self.bias[:, 2 * num_bins:] = _identity_slope_raw(spline_kw["min_derivative"])
        if len(condition) > 0:
            layers: list[nn.Module] = []
            width_in = len(condition)
            for _ in range(depth):
                layers += [nn.Linear(width_in, hidden), nn.Tanh()]
                width_in = hidden
            last = nn.Linear(width_in, n_out)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.net = nn.Sequential(*layers, last)
        else:
            self.net = None

    def _raw(self, u: Tensor) -> Tensor:
        n = u.shape[0]
        if self.net is None:
            return self.bias.expand(n, *self.bias.shape)
        out = self.net(2.0 * u.index_select(1, self.condition_idx) - 1.0)
        return out.view(n, *self.bias.shape) + self.bias

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        raw = self._raw(u)
        y, logd = rational_quadratic_spline(u.index_select(1, self.transform_idx), raw, **self.spline_kw)
        out = u.index_copy(1, self.transform_idx, y)
        return out, logd.sum(dim=1)

    def inverse(self, z: Tensor) -> Tensor:
        raw = self._raw(z)  # the conditioning coordinates are unchanged by the layer
        y, _ = rational_quadratic_spline(z.index_select(1, self.transform_idx), raw, inverse=True, **self.spline_kw)
        return z.index_copy(1, self.transform_idx, y)


def _coupling_masks(dim: int, num_layers: int) -> list[tuple[list[int], list[int]]]:
    """(transform, condition) index lists: even/odd coordinates, then first/second half, repeated, so that every
    coordinate is transformed conditioned on every other one within a few layers (KRnet's alternation)."""
    patterns = []
    even = [i for i in range(dim) if i % 2 == 0]
    odd = [i for i in range(dim) if i % 2 == 1]
    half = dim // 2
    patterns.append((even, odd))
    patterns.append((odd, even))
    if dim > 2:
        patterns.append((list(range(half)), list(range(half, dim))))
        patterns.append((list(range(half, dim)), list(range(half))))
    return [patterns[i % len(patterns)] for i in range(num_layers)]


# ---------------------------------------------------------------------------------------------------- flow
class BoundedFlow(nn.Module):
    r"""A normalising flow with support exactly the box :math:`\prod_i [\ell_i, h_i]`.

    Rational-quadratic spline coupling layers on the unit cube (KRnet-like alternation of the conditioning
    coordinates), then one per-coordinate spline ("CDF") layer; the base is uniform on :math:`[0, 1]^d`. Samples are
    inside the box by construction; a fresh flow is exactly the uniform density. In 1-D the coupling layers are
    replaced by per-coordinate spline layers (there is nothing to condition on).

    Args:
        dim (int): dimension of the box.
        low (float or sequence): lower corner (a number is broadcast to all coordinates).
        high (float or sequence): upper corner.
        num_layers (int): coupling layers (per-coordinate layers in 1-D). (default: :obj:`4`)
        num_bins (int): spline bins per coordinate and layer. (default: :obj:`16`)
        hidden (int): width of the conditioner MLPs. (default: :obj:`32`)
        depth (int): hidden layers of each conditioner MLP. (default: :obj:`2`)
        min_bin_width (float): smallest bin width (and height) on the unit interval. (default: :obj:`1e-3`)
        min_derivative (float): smallest spline slope. (default: :obj:`1e-3`)
        log_prob_bounds (tuple): clamp of ``log p + log|Omega|`` (the density relative to the uniform one) used by
            :meth:`log_prob` with ``clamp=True`` and in :meth:`fit_to_density`. (default: the DAS clamp
            ``(log 1e-10, 5.0)``)
    """

    def __init__(self, dim: int, low: float | Sequence[float] | Tensor = 0.0,
                 high: float | Sequence[float] | Tensor = 1.0, *, num_layers: int = 4, num_bins: int = 16,
                 hidden: int = 32, depth: int = 2, min_bin_width: float = 1e-3, min_derivative: float = 1e-3,
                 log_prob_bounds: tuple[float, float] = DAS_LOG_PROB_BOUNDS) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"`dim` must be a positive int, got {dim!r}")
        for name, value in (("num_layers", num_layers), ("num_bins", num_bins), ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"`{name}` must be a positive int, got {value!r}")
        if not isinstance(depth, int) or depth < 0:
            raise ConfigError(f"`depth` must be a non-negative int, got {depth!r}")
        if not 0.0 < min_bin_width * num_bins < 1.0:
            raise ConfigError(f"`min_bin_width` * `num_bins` must lie in (0, 1), got {min_bin_width} * {num_bins}")
        if not min_derivative > 0.0:
            raise ConfigError(f"`min_derivative` must be > 0, got {min_derivative}")
        lo, hi = float(log_prob_bounds[0]), float(log_prob_bounds[1])
        if not lo < hi:
            raise ConfigError(f"`log_prob_bounds` must be (lower, upper) with lower < upper, got {log_prob_bounds}")
        low_t = self._corner(low, dim, "low")
        high_t = self._corner(high, dim, "high")
        if not bool((high_t > low_t).all()):
            raise ConfigError(f"`high` must exceed `low` in every coordinate, got low={low_t.tolist()}, "
                              f"high={high_t.tolist()}")
        self.dim = dim
        self.num_bins = num_bins
        self.log_prob_bounds = (lo, hi)
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)
        spline_kw = {"min_width": min_bin_width, "min_height": min_bin_width, "min_derivative": min_derivative}
        layers = []
        if dim == 1:
            for _ in range(num_layers):
                layers.append(_SplineLayer(1, [0], [], num_bins, hidden, depth, spline_kw))
        else:
            for transform, condition in _coupling_masks(dim, num_layers):
                layers.append(_SplineLayer(dim, transform, condition, num_bins, hidden, depth, spline_kw))
            layers.append(_SplineLayer(dim, list(range(dim)), [], num_bins, hidden, depth, spline_kw))
        self.layers = nn.ModuleList(layers)

    @staticmethod
    def _corner(value, dim: int, name: str) -> Tensor:
        t = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().clone().reshape(-1)
        if t.numel() == 1:
            t = t.expand(dim).clone()
        if t.numel() != dim or not bool(torch.isfinite(t).all()):
            raise ConfigError(f"`{name}` must be a finite number or {dim} finite numbers, got {value!r}")
        return t

    @property
    def log_volume(self) -> float:
        """``log |Omega|`` of the box."""
        return float(torch.log(self.high - self.low).sum())

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, low={self.low.tolist()}, high={self.high.tolist()}, "
                f"layers={len(self.layers)}, num_bins={self.num_bins}")

    # -------------------------------------------------------------------------------------------- maps
    def _check_points(self, x: Tensor, name: str = "x") -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.dim or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"`{name}` must be a floating tensor of shape [n, {self.dim}], got {shape}")
        return x

    def to_base(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The normalising direction: points of the box -> base points in ``[0, 1]^d`` and ``log|det dz/dx|``
        (including the affine map of the box onto the unit cube). Points are clamped into the box first."""
        self._check_points(x)
        scale = self.high - self.low
        u = ((x - self.low) / scale).clamp(0.0, 1.0)
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) - torch.log(scale).sum()
        for layer in self.layers:
            u, ld = layer(u)
            logdet = logdet + ld
        return u, logdet

    def from_base(self, z: Tensor) -> Tensor:
        """The generative direction: base points in ``[0, 1]^d`` -> points of the box."""
        self._check_points(z, "z")
        u = z.clamp(0.0, 1.0)
        for layer in reversed(self.layers):
            u = layer.inverse(u)
        # the clamp only absorbs rounding: u is in [0, 1] by construction, so this is no projection
        return torch.minimum(torch.maximum(self.low + (self.high - self.low) * u, self.low), self.high)

    def contains(self, x: Tensor) -> Tensor:
        """``[n]`` bool: which points lie in the closed box."""
        self._check_points(x)
        return ((x >= self.low) & (x <= self.high)).all(dim=1)

    # -------------------------------------------------------------------------------------------- density
    def log_prob(self, x: Tensor, *, clamp: bool = False) -> Tensor:
        """``[n]`` log-density at ``x [n, dim]``: exact (``-inf`` outside the box), or with ``clamp=True`` clamped
        so that ``log p + log|Omega|`` lies in :attr:`log_prob_bounds` (finite everywhere; zero gradient where the
        clamp is active)."""
        _, logp = self.to_base(x)
        if clamp:
            lv = self.log_volume
            lo, hi = self.log_prob_bounds
            return logp.clamp(lo - lv, hi - lv)
        inside = self.contains(x)
        if bool(inside.all()):
            return logp
        return torch.where(inside, logp, torch.full_like(logp, -math.inf))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n, dim]`` points drawn from the flow (no gradient), always inside the closed box."""
        if not isinstance(n, int) or n < 0:
            raise ConfigError(f"`n` must be a non-negative int, got {n!r}")
        with torch.no_grad():
            z = torch.rand(n, self.dim, generator=generator, dtype=self.low.dtype, device=self.low.device)
            return self.from_base(z)

    def sample_with_log_prob(self, n: int, generator: torch.Generator | None = None,
                             *, clamp: bool = False) -> tuple[Tensor, Tensor]:
        """``(x [n, dim], log p(x) [n])``: detached samples and their log-density, which keeps its graph to the
        flow's parameters (what the score-function estimator differentiates)."""
        x = self.sample(n, generator)
        return x, self.log_prob(x, clamp=clamp)

    def score(self, x: Tensor, *, create_graph: bool = False) -> Tensor:
        """``[n, dim]`` gradient of ``log p`` with respect to ``x`` (the exact, unclamped density)."""
        self._check_points(x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logp = self.to_base(xg)[1]
            (grad,) = torch.autograd.grad(logp.sum(), xg, create_graph=create_graph)
        return grad

    def h1_penalty(self, x: Tensor) -> Tensor:
        r"""The Sobolev (Lipschitz-type) penalty :math:`\frac1n\sum_i \|\nabla_x \log p(x_i)\|^2`, differentiable
        with respect to the flow's parameters (the ``get_H1_regularization`` of the DAS KRnet code). At points drawn
        from :math:`p` it estimates the Fisher information
        :math:`\int p\,\|\nabla\log p\|^2 = 4\,\|\nabla\sqrt p\|^2_{L^2}`,
        the squared :math:`H^1` seminorm of :math:`\sqrt p`, which is infinite for a point mass."""
        return self.score(x, create_graph=True).pow(2).sum(dim=1).mean()

    # -------------------------------------------------------------------------------------------- fitting
    def fit_to_density(self, x: Tensor, weights: Tensor, steps: int, *, lr: float = 1e-3,
                       batch_size: int | None = None, h1_weight: float = 0.0, max_weight_ratio: float | None = None,
                       optimizer: torch.optim.Optimizer | None = None,
                       generator: torch.Generator | None = None) -> list[float]:
        r"""Fit the flow to a density known up to a constant through weighted points (the DAS flow step).

        Minimises the importance-sampled cross-entropy :math:`-\frac1n\sum_i \tilde w_i \log p(x_i)` with the
        clamped log-density, where ``weights`` are :math:`w_i = \hat r(x_i)/q(x_i)` (target over the density the
        points were drawn from) and :math:`\tilde w_i = w_i/\bar w` is the importance ratio scaled to mean 1 (the
        DAS code multiplies by a fixed 1000 for the same reason: residual ratios are tiny or huge; scaling by the
        mean makes the loss independent of the residual's magnitude without moving the minimiser).

        Args:
            x (Tensor): ``[n, dim]`` points in the box.
            weights (Tensor): ``[n]`` non-negative finite importance weights, not all zero.
            steps (int): Adam steps.
            lr (float): learning rate of the Adam optimiser created here. (default: :obj:`1e-3`)
            batch_size (int, optional): minibatch size (default: all points every step).
            h1_weight (float): weight of :meth:`h1_penalty` on the batch, added to the loss. (default: :obj:`0.0`)
            max_weight_ratio (float, optional): clip the scaled weights at this value (default: no clipping).
            optimizer (Optimizer, optional): an optimiser over the flow's parameters to continue with.
            generator (Generator, optional): for the minibatch draws.

        Returns:
            the loss after each step.
        """
        self._check_points(x)
        if not isinstance(weights, Tensor) or weights.shape != (x.shape[0],):
            shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise ShapeError(f"`weights` must have shape [{x.shape[0]}], got {shape}")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) or not bool((weights > 0).any()):
            raise ConfigError("`weights` must be finite, non-negative and not all zero")
        if not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"`steps` must be a non-negative int, got {steps!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
        x = x.detach()
        w = (weights.detach() / weights.detach().mean()).to(x.dtype)
        if max_weight_ratio is not None:
            w = w.clamp_max(float(max_weight_ratio))
        opt = optimizer if optimizer is not None else torch.optim.Adam(self.parameters(), lr=lr)
        n = x.shape[0]
        losses = []
        for _ in range(steps):
            if batch_size is None or batch_size >= n:
                xb, wb = x, w
            else:
                idx = torch.randint(0, n, (batch_size,), generator=generator, device=x.device)
                xb, wb = x[idx], w[idx]
            loss = -(wb * self.log_prob(xb, clamp=True)).mean()
            if h1_weight > 0.0:
                loss = loss + h1_weight * self.h1_penalty(xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses
