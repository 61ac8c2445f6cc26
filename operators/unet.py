r"""A modern U-Net (PDEArena's ``Unetmod``): wide residual blocks with pre-activation GroupNorm, strided-conv
downsampling and transposed-conv upsampling, every convolution padded in the boundary's padding mode.

From *Towards Multi-spatiotemporal-scale Generalized PDE Modeling* (Gupta, Brandstetter, TMLR 2023; the PDEArena
``Unetmod-64`` baseline of SineNet). See docs/operators.md.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError

from ._conv import Prolongation, activation, check_padding_mode, count_parameters, group_norm

__all__ = ["ModernUNet", "unet_hidden_for_budget"]


class _ResBlock(nn.Module):
    """``conv(act(norm(conv(act(norm(x)))))) + shortcut(x)`` (pre-activation, 3x3 convolutions)."""

    def __init__(self, cin: int, cout: int, padding_mode: str, norm: bool, act: str) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, cin) if norm else nn.Identity()
        self.norm2 = nn.GroupNorm(1, cout) if norm else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, padding_mode=padding_mode)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, padding_mode=padding_mode)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = activation(act, "ModernUNet")

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.shortcut(x)


class ModernUNet(nn.Module):
    r"""PDEArena's modern U-Net (``Unetmod``; no attention blocks).

    A 3x3 lifting to ``hidden_channels``; then per resolution ``i`` the channels are multiplied by
    ``ch_mults[i]`` (cumulatively: ``(1, 2, 2, 4)`` gives :math:`C, 2C, 4C, 16C`), ``num_blocks`` residual blocks
    and a stride-2 3x3 convolution (except at the last resolution); a middle of two residual blocks; the mirror
    path with ``num_blocks + 1`` residual blocks per resolution, each taking the matching skip connection
    concatenated, and a 4x4 stride-2 transposed convolution between resolutions; GroupNorm, activation and a
    3x3 output convolution. Residual blocks are pre-activation (GroupNorm with one group, activation, 3x3 conv,
    twice) with a 1x1 shortcut where the width changes.

    Every convolution, the transposed ones included, pads in ``padding_mode`` (PDEArena's transposed
    convolution always pads with zeros; with ``"zeros"`` the two are the same), and the upsampling is sized from
    the skip connection's grid, so odd sizes work.

    Args:
        in_channels (int): input channels (``[B, T, C, H, W]`` inputs are folded to ``T * C``).
        out_channels (int): output channels.
        hidden_channels (int): :math:`C`. (default: ``64``)
        ch_mults (sequence of int): per-resolution channel multipliers. (default: ``(1, 2, 2, 4)``)
        num_blocks (int): residual blocks per resolution on the way down. (default: ``2``)
        padding_mode (str): ``"zeros"``, ``"reflect"`` or ``"circular"``. (default: ``"zeros"``)
        norm (bool): GroupNorm in the blocks and before the output. (default: ``True``)
        activation (str): ``"gelu"``, ``"relu"``, ``"silu"`` or ``"tanh"``. (default: ``"gelu"``)
    """

    def __init__(self, in_channels: int, out_channels: int, *, hidden_channels: int = 64,
                 ch_mults: Sequence[int] = (1, 2, 2, 4), num_blocks: int = 2, padding_mode: str = "zeros",
                 norm: bool = True, activation: str = "gelu") -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", hidden_channels), ("num_blocks", num_blocks)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"ModernUNet: {name} must be a positive integer, got {v!r}")
        if not ch_mults or any(not isinstance(m, int) or m < 1 for m in ch_mults):
            raise ConfigError(f"ModernUNet: ch_mults must be a non-empty list of positive ints, got {ch_mults!r}")
        check_padding_mode(padding_mode, "ModernUNet")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_resolutions = len(ch_mults)
        args = (padding_mode, norm, activation)
        self.lift = nn.Conv2d(in_channels, hidden_channels, 3, padding=1, padding_mode=padding_mode)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_channels = [hidden_channels]
        c = hidden_channels
        level_channels = []
        for i, mult in enumerate(ch_mults):
            blocks = nn.ModuleList()
            for _ in range(num_blocks):
                blocks.append(_ResBlock(c, c * mult if not blocks else c, *args))
                c = c * mult if len(blocks) == 1 else c
                skip_channels.append(c)
            self.down.append(blocks)
            level_channels.append(c)
            if i < len(ch_mults) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1, padding_mode=padding_mode))
                skip_channels.append(c)
        self.middle = nn.Sequential(_ResBlock(c, c, *args), _ResBlock(c, c, *args))
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch_mults))):
            blocks = nn.ModuleList()
            for _ in range(num_blocks):
                blocks.append(_ResBlock(c + skip_channels.pop(), c, *args))
            out = c // ch_mults[i]
            blocks.append(_ResBlock(c + skip_channels.pop(), out, *args))
            c = out
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(Prolongation(c, c, padding_mode))
        # Prolongation holds no bias; PDEArena's ConvTranspose2d has one
        self.upsample_bias = nn.ParameterList(nn.Parameter(torch.zeros(p.conv.out_channels)) for p in self.upsample)
        self.final_norm = group_norm(c, 8) if norm else nn.Identity()
        self.act = activation_module(activation)
        self.project = nn.Conv2d(c, out_channels, 3, padding=1, padding_mode=padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:
            x = x.reshape(x.shape[0], -1, *x.shape[-2:])
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"ModernUNet: expected [B, {self.in_channels}, H, W] (or [B, T, C, H, W] with T*C = "
                             f"{self.in_channels}), got {list(x.shape)}")
        h = self.lift(x)
        skips = [h]
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.middle(h)
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1))
            if i < len(self.upsample):
                size = skips[-1].shape[-2:]
                h = self.upsample[i](h, size) + self.upsample_bias[i][:, None, None]
        return self.project(self.act(self.final_norm(h)))

    def num_parameters(self) -> int:
        return count_parameters(self)


def activation_module(name: str) -> nn.Module:
    return activation(name, "ModernUNet")


def unet_hidden_for_budget(budget: int, in_channels: int, out_channels: int, **options) -> int:
    """The ``hidden_channels`` whose :class:`ModernUNet` parameter count is closest to ``budget``."""
    def count(c: int) -> int:
        return count_parameters(ModernUNet(in_channels, out_channels, hidden_channels=c, **options))

    best, best_gap = 1, abs(count(1) - budget)
    c = 2
    while True:
        n = count(c)
        if abs(n - budget) < best_gap:
            best, best_gap = c, abs(n - budget)
        if n > budget:
            return best
        c += 1
