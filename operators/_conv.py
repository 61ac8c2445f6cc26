"""Grid building blocks shared by the operator models (MgNO, SineNet, U-Net): boundary handling through the padding
mode, transposed-convolution prolongation sized from the fine grid, and circular-aware bicubic upsampling.

A boundary condition is expressed by how every convolution pads its input:

* ``"zeros"``: zero padding, the Dirichlet-like choice (Darcy, closed boxes);
* ``"reflect"``: mirror padding without repeating the edge, the Neumann-like choice (Helmholtz in MgNO);
* ``"circular"``: periodic padding (the torus: Navier--Stokes, compressible NS). With it, every layer commutes with
  periodic shifts by multiples of the coarsest level's stride.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError

__all__ = ["PADDING_MODES", "check_padding_mode", "activation", "Prolongation", "upsample_like", "pad", "group_norm",
           "count_parameters"]

#: Padding modes accepted by the operator models.
PADDING_MODES = ("zeros", "reflect", "circular")

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def check_padding_mode(padding_mode: str, owner: str) -> str:
    """``padding_mode`` if it is one of :data:`PADDING_MODES`, else a :class:`ConfigError` naming ``owner``."""
    if padding_mode not in PADDING_MODES:
        raise ConfigError(f"{owner}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    return padding_mode


def activation(name: str, owner: str) -> nn.Module:
    """A fresh activation module by name (``gelu``, ``relu``, ``silu``, ``tanh``)."""
    if name not in _ACTIVATIONS:
        raise ConfigError(f"{owner}: activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def pad(x: Tensor, width: int, padding_mode: str) -> Tensor:
    """Pad the last two axes of ``x`` by ``width`` on every side in ``padding_mode`` (``zeros``: constant 0)."""
    if padding_mode == "zeros":
        return F.pad(x, (width,) * 4)
    if padding_mode == "reflect" and min(x.shape[-2:]) <= width:
        # reflect needs more points than the pad width; a 1-point axis is constant, so replicate is the same
        return F.pad(x, (width,) * 4, mode="replicate")
    return F.pad(x, (width,) * 4, mode=padding_mode)


class Prolongation(nn.Module):
    r"""Learned prolongation: a stride-2 transposed convolution with a 4x4 kernel (no bias), sized from the fine grid.

    With ``padding_mode="zeros"`` and an even fine size this is exactly ``nn.ConvTranspose2d(C_in, C_out, 4, 2, 1)``
    (MgNO's and PDEArena's up-sampling). The coarse input is padded by one point in ``padding_mode`` before the
    full transposed convolution, and the result is cropped to the requested fine size. So:

    * a circular pad makes the map commute with periodic shifts (the plain transposed convolution drops the
      contributions that should wrap around the torus);
    * an odd fine size ``2n - 1`` (the coarse grid of a stride-2, padding-1 convolution has ``n = ceil(m / 2)``
      points) is the first ``2n - 1`` points of the ``2n`` the even case gives: coarse point ``i`` sits on fine point
      ``2i`` in both cases.

    Args:
        in_channels (int): channels of the coarse input.
        out_channels (int): channels of the fine output.
        padding_mode (str): ``"zeros"``, ``"reflect"`` or ``"circular"``. (default: ``"zeros"``)
    """

    def __init__(self, in_channels: int, out_channels: int, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.padding_mode = check_padding_mode(padding_mode, "Prolongation")
        # a ConvTranspose2d module only to hold the weight with its usual initialisation
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False)

    @property
    def weight(self) -> Tensor:
        return self.conv.weight

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Coarse ``x [B, C_in, n1, n2]`` -> fine ``[B, C_out, size[0], size[1]]`` (``size[i]`` in
        ``{2 n_i - 1, 2 n_i}``)."""
        h, w = int(size[0]), int(size[1])
        n1, n2 = x.shape[-2:]
        if not (2 * n1 - 1 <= h <= 2 * n1 and 2 * n2 - 1 <= w <= 2 * n2):
            raise ShapeError(f"Prolongation: a coarse grid of {n1}x{n2} maps to {2 * n1 - 1}..{2 * n1} x "
                             f"{2 * n2 - 1}..{2 * n2} points, not {h}x{w}")
        full = F.conv_transpose2d(pad(x, 1, self.padding_mode), self.conv.weight, stride=2)
        return full[..., 3:3 + h, 3:3 + w]


def upsample_like(x: Tensor, size: tuple[int, int], mode: str = "bicubic", padding_mode: str = "zeros") -> Tensor:
    """Interpolate ``x [B, C, n1, n2]`` to ``size``.

    ``padding_mode="circular"`` (SineNet's periodic up-sampling) pads ``x`` circularly by 2 points, interpolates by a
    factor of 2 and crops 4 points per side, so the stencil of the interpolation wraps around the torus; this needs
    ``size == (2 n1, 2 n2)``. Otherwise ``F.interpolate(x, size, mode)`` (``align_corners=False``).
    """
    if padding_mode == "circular":
        if tuple(size) != (2 * x.shape[-2], 2 * x.shape[-1]):
            raise ShapeError(f"circular up-sampling doubles the grid: {tuple(x.shape[-2:])} -> "
                             f"{(2 * x.shape[-2], 2 * x.shape[-1])}, but the finer level has {tuple(size)} points; "
                             "use grid sizes divisible by 2**num_levels with circular padding")
        y = F.interpolate(F.pad(x, (2, 2, 2, 2), mode="circular"), scale_factor=2, mode=mode)
        return y[..., 4:-4, 4:-4]
    return F.interpolate(x, size=tuple(int(s) for s in size), mode=mode)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """``GroupNorm(groups, channels)`` if ``groups`` divides ``channels``, else one group (layer norm over
    ``(C, H, W)`` with a per-channel affine)."""
    return nn.GroupNorm(groups if channels % groups == 0 else 1, channels)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

