r"""SineNet: sequentially connected U-shaped "waves" for time-dependent PDEs.

From *SineNet: Learning Temporal Dynamics in Time-Dependent Partial Differential Equations* (Xuan Zhang, Jacob
Helwig, Yuchao Lin, Yaochen Xie, Cong Fu, Stephan Wojtowytsch, Shuiwang Ji, ICLR 2024). See docs/operators.md.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError

from ._conv import activation as make_activation
from ._conv import check_padding_mode, count_parameters, upsample_like

__all__ = ["SineNet", "sinenet_num_parameters", "sinenet_multiplier"]


def _channels(hidden: int, multiplier: float, num_levels: int) -> list[int]:
    # the official rounding: int(C0 * m**l), truncated
    return [int(hidden * multiplier ** level) for level in range(num_levels + 1)]


class _ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by GroupNorm (one group) and the activation."""

    def __init__(self, cin: int, cout: int, padding_mode: str, norm: bool, act: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, padding_mode=padding_mode)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, padding_mode=padding_mode)
        self.norm1 = nn.GroupNorm(1, cout) if norm else nn.Identity()
        self.norm2 = nn.GroupNorm(1, cout) if norm else nn.Identity()
        self.act = make_activation(act, "SineNet")

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(h)))


class _Stage(nn.Module):
    """``num_blocks`` conv blocks; with ``residual`` the first adds a 1x1 projection of ``shortcut_input``, the
    others their own input."""

    def __init__(self, cin: int, cout: int, shortcut_in: int, num_blocks: int, residual: bool, padding_mode: str,
                 norm: bool, act: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_ConvBlock(cin if b == 0 else cout, cout, padding_mode, norm, act)
                                    for b in range(num_blocks))
        self.shortcut = nn.Conv2d(shortcut_in, cout, 1) if residual else None

    def forward(self, h: Tensor, shortcut_input: Tensor) -> Tensor:
        skip = shortcut_input
        for b, block in enumerate(self.blocks):
            h = block(h)
            if self.shortcut is not None:
                h = h + (self.shortcut(skip) if b == 0 else skip)
                skip = h
        return h


class _Wave(nn.Module):
    """One U-shaped wave: ``num_levels`` down stages (average pooling) and ``num_levels`` up stages (interpolation)."""

    def __init__(self, channels: list[int], *, disentangle: bool, num_blocks: int, residual: bool, padding_mode: str,
                 norm: bool, act: str, interpolation: str) -> None:
        super().__init__()
        levels = len(channels) - 1
        c0 = channels[0]
        self.disentangle, self.padding_mode, self.interpolation = disentangle, padding_mode, interpolation
        self.pool = nn.AvgPool2d(2)
        # down stage l (1-based): input = pooled features of level l-1 (+ the pooled wave input from level 2 on)
        self.down = nn.ModuleList(
            _Stage(channels[lv - 1] + (c0 if disentangle and lv > 1 else 0), channels[lv], channels[lv - 1],
                   num_blocks, residual, padding_mode, norm, act) for lv in range(1, levels + 1))
        # up stage from level l to l-1: input = [skip of level l-1, upsampled level-l features]
        self.up = nn.ModuleList(
            _Stage(channels[lv] + channels[lv - 1], channels[lv - 1], channels[lv], num_blocks, residual,
                   padding_mode, norm, act) for lv in range(levels, 0, -1))

    def forward(self, x: Tensor) -> Tensor:
        skips = [x]
        h, d = x, x
        for k, stage in enumerate(self.down):
            h = self.pool(h)
            pooled = h
            if self.disentangle:
                d = self.pool(d)
                if k > 0:
                    h = torch.cat([h, d], dim=1)
            h = stage(h, pooled)
            skips.append(h)
        h = skips.pop()
        for stage in self.up:
            skip = skips.pop()
            up = upsample_like(h, skip.shape[-2:], self.interpolation, self.padding_mode)
            h = stage(torch.cat([skip, up], dim=1), up)
        return h


class SineNet(nn.Module):
    r"""SineNet: ``K`` U-shaped waves in sequence, each with its own parameters, between a 3x3 lifting and a 3x3
    output convolution.

    From *SineNet: Learning Temporal Dynamics in Time-Dependent PDEs* (Zhang et al., ICLR 2024):

    .. math::
        x_0 = P(u_{t-T_h+1..t}),\qquad x_{k+1} = x_k + V_k(x_k)\ (k = 0..K-1),\qquad u_{t+1} = Q(x_K).

    Each wave :math:`V_k` is a U-Net with ``num_levels`` levels of :math:`\lfloor C_0 m^\ell \rfloor` channels.
    A down stage average-pools by 2; with **disentangled** downsampling (``disentangle=True``, the paper's) the
    wave input :math:`x_k` is pooled separately and concatenated to the features at every level below the first,
    so the coarse levels always see a plain pooled copy of the current state. Each stage is a conv block (two
    3x3 convolutions, each with GroupNorm (1 group) and the activation) plus a 1x1 residual shortcut of the
    stage input (without the concatenated copy). An up stage interpolates ×2 (bicubic; with circular padding the
    map is padded circularly by 2 points first and cropped after, so the stencil wraps), concatenates the skip
    connection and applies a conv block with a shortcut from the interpolated features. Every convolution pads in
    ``padding_mode``: ``"circular"`` for periodic domains, ``"zeros"`` for bounded ones.

    The multiplier ``m`` trades depth (waves) for width: :func:`sinenet_multiplier` finds the ``m`` that holds
    the parameter count at a budget for a given ``K`` (the paper holds about 35.5M parameters for K = 1..8).

    Args:
        in_channels (int): input channels after the time history is folded in (``T_h * fields``).
        out_channels (int): output channels (fields of the next step).
        hidden_channels (int): :math:`C_0`. (default: ``64``)
        num_waves (int): :math:`K`. (default: ``8``)
        multiplier (float): :math:`m`. (default: ``1.425``, SineNet-8)
        num_levels (int): down-sampling levels per wave. (default: ``4``)
        padding_mode (str): ``"zeros"`` or ``"circular"``. (default: ``"zeros"``)
        disentangle (bool): disentangled downsampling; ``False`` is the paper's "tangled" ablation.
            (default: ``True``)
        wave_residual (bool): :math:`x_{k+1} = x_k + V_k(x_k)` instead of :math:`V_k(x_k)`. (default: ``True``)
        residual (bool): the 1x1 shortcuts inside the stages. (default: ``True``)
        num_blocks (int): conv blocks per stage (the "deeper U-Net" ablation uses 8 with ``K = 1``).
            (default: ``1``)
        norm (bool): GroupNorm in the conv blocks. (default: ``True``)
        activation (str): ``"gelu"``, ``"relu"``, ``"silu"`` or ``"tanh"``. (default: ``"gelu"``)
        interpolation (str): ``F.interpolate`` mode of the up stages. (default: ``"bicubic"``)

    Shapes:
        ``[B, in_channels, H, W]`` or ``[B, T_h, C, H, W]`` (folded to ``T_h * C`` channels) ->
        ``[B, out_channels, H, W]``. ``H`` and ``W`` divisible by ``2**num_levels`` (required with circular
        padding; with zero padding other sizes are interpolated to the skip connection's grid).
    """

    def __init__(self, in_channels: int, out_channels: int, *, hidden_channels: int = 64, num_waves: int = 8,
                 multiplier: float = 1.425, num_levels: int = 4, padding_mode: str = "zeros",
                 disentangle: bool = True, wave_residual: bool = True, residual: bool = True, num_blocks: int = 1,
                 norm: bool = True, activation: str = "gelu", interpolation: str = "bicubic") -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", hidden_channels), ("num_waves", num_waves), ("num_levels", num_levels),
                        ("num_blocks", num_blocks)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"SineNet: {name} must be a positive integer, got {v!r}")
        if not multiplier >= 1.0:
            raise ConfigError(f"SineNet: multiplier must be >= 1, got {multiplier!r}")
        if check_padding_mode(padding_mode, "SineNet") == "reflect":
            raise ConfigError("SineNet: padding_mode must be 'zeros' or 'circular' (as in the paper), got 'reflect'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_levels, self.padding_mode, self.wave_residual = num_levels, padding_mode, wave_residual
        self.channels = _channels(hidden_channels, multiplier, num_levels)
        if min(self.channels) < 1:
            raise ConfigError(f"SineNet: channel counts {self.channels} must be positive")
        self.lift = nn.Conv2d(in_channels, hidden_channels, 3, padding=1, padding_mode=padding_mode)
        wave_args: dict[str, Any] = dict(disentangle=disentangle, num_blocks=num_blocks, residual=residual,
                                         padding_mode=padding_mode, norm=norm, act=activation,
                                         interpolation=interpolation)
        self.waves = nn.ModuleList(_Wave(self.channels, **wave_args) for _ in range(num_waves))
        self.project = nn.Conv2d(hidden_channels, out_channels, 3, padding=1, padding_mode=padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:
            x = x.reshape(x.shape[0], -1, *x.shape[-2:])
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"SineNet: expected [B, {self.in_channels}, H, W] (or [B, T, C, H, W] with T*C = "
                             f"{self.in_channels}), got {list(x.shape)}")
        factor = 2 ** self.num_levels
        h, w = x.shape[-2:]
        if self.padding_mode == "circular" and (h % factor or w % factor):
            raise ShapeError(f"SineNet: with circular padding the grid must be divisible by 2**num_levels = "
                             f"{factor}, got {h}x{w}")
        if min(h, w) < factor:
            raise ShapeError(f"SineNet: a {h}x{w} grid is too small for {self.num_levels} levels (>= {factor})")
        x = self.lift(x)
        for wave in self.waves:
            x = x + wave(x) if self.wave_residual else wave(x)
        return self.project(x)

    def num_parameters(self) -> int:
        return count_parameters(self)


def sinenet_num_parameters(in_channels: int, out_channels: int, *, hidden_channels: int = 64, num_waves: int = 8,
                           multiplier: float = 1.425, num_levels: int = 4, disentangle: bool = True,
                           residual: bool = True, num_blocks: int = 1, norm: bool = True) -> int:
    """The parameter count of :class:`SineNet` with these options, computed in closed form (no model is built)."""
    ch = _channels(hidden_channels, multiplier, num_levels)
    c0 = ch[0]

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    def stage(cin: int, cout: int, shortcut_in: int) -> int:
        n = 0
        for b in range(num_blocks):
            n += conv(cin if b == 0 else cout, cout, 3) + conv(cout, cout, 3) + (4 * cout if norm else 0)
        return n + (conv(shortcut_in, cout, 1) if residual else 0)

    wave = 0
    for lv in range(1, num_levels + 1):
        wave += stage(ch[lv - 1] + (c0 if disentangle and lv > 1 else 0), ch[lv], ch[lv - 1])
        wave += stage(ch[lv] + ch[lv - 1], ch[lv - 1], ch[lv])
    return conv(in_channels, c0, 3) + num_waves * wave + conv(c0, out_channels, 3)


def sinenet_multiplier(budget: int, num_waves: int, in_channels: int, out_channels: int, *,
                       hidden_channels: int = 64, lo: float = 1.0, hi: float = 4.0, **options: Any) -> float:
    """The multiplier ``m`` (to 4 decimals) whose :class:`SineNet` parameter count is closest to ``budget`` for
    ``num_waves`` waves; ``options`` as in :func:`sinenet_num_parameters`.

    The count grows with ``m`` (up to the integer rounding of the channels), so a bisection brackets the budget;
    the 4-decimal grid around the bracket is then searched for the closest count.
    """
    def count(m: float) -> int:
        return sinenet_num_parameters(in_channels, out_channels, hidden_channels=hidden_channels,
                                      num_waves=num_waves, multiplier=m, **options)

    if count(lo) > budget:
        raise ConfigError(f"sinenet_multiplier: even m={lo} gives {count(lo):,} parameters > budget {budget:,} "
                          f"(lower hidden_channels or num_waves)")
    if count(hi) < budget:
        raise ConfigError(f"sinenet_multiplier: even m={hi} gives {count(hi):,} parameters < budget {budget:,}")
    a, b = lo, hi
    for _ in range(60):
        mid = 0.5 * (a + b)
        if count(mid) < budget:
            a = mid
        else:
            b = mid
    candidates = {round(a + k * 1e-4, 4) for k in range(-20, 21)}
    return min((m for m in candidates if m >= 1.0), key=lambda m: (abs(count(m) - budget), m))
