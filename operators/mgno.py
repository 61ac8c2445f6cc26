r"""MgNO: neural operators whose linear operators are multigrid V-cycles of learned convolutions.

From *MgNO: Efficient Parameterization of Linear Operators via Multigrid* (Juncai He, Xinliang Liu, Jinchao Xu,
ICLR 2024). See docs/operators.md.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from sciml.errors import ConfigError, ShapeError

from ._conv import Prolongation, activation, check_padding_mode, count_parameters

__all__ = ["MgConv", "MgNO", "parse_iterations", "DARCY_ITERATIONS"]

#: Smoothing steps ``(pre, post)`` per level of the paper's Darcy configuration: 6 levels, one pre-smoothing step on
#: each of the 5 finer levels and 2 on the coarsest, no post-smoothing (the official code's
#: ``--num_iteration 10 10 10 10 10 20``, whose tokens are read character by character).
DARCY_ITERATIONS = ((1, 0),) * 5 + ((2, 0),)


def parse_iterations(num_iterations: Sequence[int | Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """``(pre, post)`` smoothing counts per level, from ints (``pre``, no post-smoothing) or pairs.

    Raises:
        ConfigError: an empty list, negative counts, or no pre-smoothing on the finest level (the cycle starts
            with ``u = S f`` there).
    """
    if isinstance(num_iterations, (str, bytes)) or not isinstance(num_iterations, Sequence) or not num_iterations:
        raise ConfigError(f"num_iterations: expected a non-empty list of ints or (pre, post) pairs, one per level, "
                          f"got {num_iterations!r}")
    out = []
    for level, item in enumerate(num_iterations):
        pair = (item, 0) if isinstance(item, int) and not isinstance(item, bool) else tuple(item)  # type: ignore
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair):
            raise ConfigError(f"num_iterations[{level}]: expected an int >= 0 or a (pre, post) pair of ints >= 0, "
                              f"got {item!r}")
        out.append((int(pair[0]), int(pair[1])))
    if out[0][0] < 1:
        raise ConfigError(f"num_iterations[0]: the finest level needs at least one pre-smoothing step (it starts "
                          f"the cycle with u = S f), got {num_iterations[0]!r}")
    return tuple(out)


class _Smoother(nn.Module):
    """One smoothing step ``u <- u + S * (f - A * u)``; ``A: C_u -> C_f``, ``S: C_f -> C_u``, 3x3."""

    def __init__(self, cu: int, cf: int, padding_mode: str, bias: bool) -> None:
        super().__init__()
        self.A = nn.Conv2d(cu, cf, 3, padding=1, bias=bias, padding_mode=padding_mode)
        self.S = nn.Conv2d(cf, cu, 3, padding=1, bias=bias, padding_mode=padding_mode)

    def forward(self, u: Tensor, f: Tensor) -> Tensor:
        return u + self.S(f - self.A(u))


class _Restriction(nn.Module):
    """``f <- R *_2 f`` (or ``R *_2 (f - A * u)`` for ``restrict="residual"``) and ``u <- Pi *_2 u``: stride-2 3x3
    convolutions without bias."""

    def __init__(self, cu: int, cf: int, padding_mode: str, bias: bool, residual: bool) -> None:
        super().__init__()
        self.Pi = nn.Conv2d(cu, cu, 3, stride=2, padding=1, bias=False, padding_mode=padding_mode)
        self.R = nn.Conv2d(cf, cf, 3, stride=2, padding=1, bias=False, padding_mode=padding_mode)
        self.A = nn.Conv2d(cu, cf, 3, padding=1, bias=bias, padding_mode=padding_mode) if residual else None

    def forward(self, u: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        r = f if self.A is None else f - self.A(u)
        return self.Pi(u), self.R(r)


class MgConv(nn.Module):
    r"""The multigrid operator :math:`W_{Mg}`: one multi-channel V-cycle of learned 3x3 convolutions, mapping
    ``C_f`` input channels ``f`` to ``C_u`` output channels ``u`` at the same resolution.

    Level 1 (finest) starts with :math:`u = S_{1,1} * f` and smooths :math:`u \leftarrow u + S * (f - A * u)`
    for the remaining pre-smoothing steps. Going down, :math:`f_{\ell+1} = R_\ell *_2 f_\ell` (``restrict="f"``,
    the official code's default) or :math:`R_\ell *_2 (f_\ell - A_\ell * u_\ell)` (``"residual"``, classical
    multigrid), and the coarse initial guess is :math:`u_{\ell+1} = \Pi_\ell *_2 u_\ell`; each coarse level then
    takes its own pre-smoothing steps. Going up, :math:`u_\ell \leftarrow u_\ell + P_\ell(u_{\ell+1})` (a 4x4
    stride-2 transposed convolution sized from :math:`u_\ell`'s grid, see :class:`~sciml.operators._conv.
    Prolongation`), optionally normalised, then the post-smoothing steps of level :math:`\ell`. Every kernel is
    its own (nothing is shared between levels or steps); smoothers carry a bias only with ``bias=True``;
    restriction and prolongation never do.

    Every convolution pads in ``padding_mode``, which is how the boundary condition enters. Any grid works: level
    :math:`\ell+1` has :math:`\lceil n_\ell / 2 \rceil` points per axis (``reflect`` needs at least 2 on every
    level). Post-smoothing on the coarsest level would only repeat its pre-smoothing and is not built (the official
    code builds those kernels but never calls them).

    Args:
        in_channels (int): ``C_f``, channels of the input ``f``.
        out_channels (int): ``C_u``, channels of the output ``u``.
        num_iterations (sequence): per level, ``pre`` or ``(pre, post)`` smoothing steps (finest first).
            (default: :data:`DARCY_ITERATIONS`)
        padding_mode (str): ``"zeros"``, ``"reflect"`` or ``"circular"``. (default: ``"zeros"``)
        restrict (str): ``"f"`` (restrict the right-hand side, the official default) or ``"residual"``.
            (default: ``"f"``)
        norm (str, optional): ``"layer"`` normalises ``u`` after each coarse-grid correction over
            ``(C, H, W)`` per sample with a per-channel affine (``GroupNorm(1, C_u)``): the size-free form of the
            official Navier--Stokes variant's ``LayerNorm([C, 64/2^j, 64/2^j])``. (default: :obj:`None`)
        bias (bool): biases in the smoothers' ``A`` and ``S``. (default: ``False``)

    Shapes:
        ``f [B, C_f, H, W]`` -> ``u [B, C_u, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *,
                 num_iterations: Sequence[int | Sequence[int]] = DARCY_ITERATIONS, padding_mode: str = "zeros",
                 restrict: str = "f", norm: str | None = None, bias: bool = False) -> None:
        super().__init__()
        self.padding_mode = check_padding_mode(padding_mode, "MgConv")
        if restrict not in ("f", "residual"):
            raise ConfigError(f"MgConv: restrict must be 'f' or 'residual', got {restrict!r}")
        if norm not in (None, "layer"):
            raise ConfigError(f"MgConv: norm must be None or 'layer', got {norm!r}")
        self.num_iterations = parse_iterations(num_iterations)
        self.in_channels, self.out_channels, self.restrict = in_channels, out_channels, restrict
        cu, cf = out_channels, in_channels
        levels = len(self.num_iterations)
        self.init_smoother = nn.Conv2d(cf, cu, 3, padding=1, bias=bias, padding_mode=padding_mode)
        self.pre = nn.ModuleList()
        self.post = nn.ModuleList()
        for level, (pre, post) in enumerate(self.num_iterations):
            n_pre = pre - 1 if level == 0 else pre
            self.pre.append(nn.ModuleList(_Smoother(cu, cf, padding_mode, bias) for _ in range(n_pre)))
            n_post = post if level < levels - 1 else 0
            self.post.append(nn.ModuleList(_Smoother(cu, cf, padding_mode, bias) for _ in range(n_post)))
        self.restrictions = nn.ModuleList(_Restriction(cu, cf, padding_mode, bias, restrict == "residual")
                                          for _ in range(levels - 1))
        self.prolongations = nn.ModuleList(Prolongation(cu, cu, padding_mode) for _ in range(levels - 1))
        self.norms = nn.ModuleList(nn.GroupNorm(1, cu) if norm == "layer" else nn.Identity()
                                   for _ in range(levels - 1))

    @property
    def num_levels(self) -> int:
        return len(self.num_iterations)

    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Grid of every level for a ``height x width`` input (stride-2, padding-1 convolutions: ``ceil(n/2)``)."""
        sizes = [(height, width)]
        for _ in range(self.num_levels - 1):
            h, w = sizes[-1]
            sizes.append(((h + 1) // 2, (w + 1) // 2))
        return sizes

    def forward(self, f: Tensor) -> Tensor:
        if f.dim() != 4 or f.shape[1] != self.in_channels:
            raise ShapeError(f"MgConv: expected f [B, {self.in_channels}, H, W], got {list(f.shape)}")
        if self.padding_mode == "reflect":
            coarsest = self.level_sizes(*f.shape[-2:])[-1]
            if min(coarsest) < 2:
                raise ShapeError(f"MgConv: reflect padding needs >= 2 points per axis on every level; a "
                                 f"{f.shape[-2]}x{f.shape[-1]} grid has {coarsest[0]}x{coarsest[1]} on level "
                                 f"{self.num_levels} (use fewer levels or a larger grid)")
        us, fs = [], []
        u = self.init_smoother(f)
        for level in range(self.num_levels):
            if level > 0:
                u, f = self.restrictions[level - 1](u, f)
            for smoother in self.pre[level]:
                u = smoother(u, f)
            us.append(u)
            fs.append(f)
        u = us[-1]
        for level in range(self.num_levels - 2, -1, -1):
            fine = us[level]
            u = self.norms[level](fine + self.prolongations[level](u, fine.shape[-2:]))
            for smoother in self.post[level]:
                u = smoother(u, fs[level])
        return u


class MgNO(nn.Module):
    r"""The multigrid neural operator: layers :math:`u \leftarrow \sigma(W_{Mg} u + L u)` and a 1x1 output.

    From *MgNO: Efficient Parameterization of Linear Operators via Multigrid* (He, Liu, Xu, ICLR 2024): each layer
    applies one :class:`MgConv` V-cycle (all channel pairs at once) plus a pointwise term :math:`L`, a 1x1
    convolution with bias (the "function bias" of the paper as the official Darcy model realises it), then the
    activation. There is no lifting or projection network: the first V-cycle maps the ``in_channels`` input
    channels straight to ``hidden_channels``, and the output is one 1x1 convolution without bias. The boundary
    condition is the ``padding_mode`` of every convolution.

    Presets: the paper's Darcy model is ``MgNO(1, 1, hidden_channels=24, num_layers=4,
    num_iterations=DARCY_ITERATIONS)`` (572,661 parameters, the paper's "0.57M"); its Navier--Stokes model is
    ``padding_mode="circular", linear_skip=False, norm="layer", residual_output=True`` (5 levels ``(1,1,1,2,2)``,
    32 channels, 5 layers).

    Args:
        in_channels (int): input channels (e.g. 1: the Darcy coefficient).
        out_channels (int): output channels. (default: ``1``)
        hidden_channels (int): channels of every hidden layer. (default: ``24``)
        num_layers (int): number of MgNO layers. (default: ``4``)
        num_iterations (sequence): smoothing steps per level (see :class:`MgConv`). (default:
            :data:`DARCY_ITERATIONS`)
        padding_mode (str): ``"zeros"`` (Dirichlet), ``"reflect"`` (Neumann-like) or ``"circular"`` (periodic).
            (default: ``"zeros"``)
        restrict (str): ``"f"`` or ``"residual"`` (see :class:`MgConv`). (default: ``"f"``)
        activation (str): ``"gelu"``, ``"relu"``, ``"silu"`` or ``"tanh"``. (default: ``"gelu"``)
        linear_skip (bool): add the 1x1 term :math:`L u` in every layer (Darcy model). (default: ``True``)
        norm (str, optional): ``"layer"``: normalisation inside the V-cycles (Navier--Stokes model).
            (default: :obj:`None`)
        residual_output (bool): return ``input + output`` (learn the increment; needs ``in_channels ==
            out_channels``; Navier--Stokes model). (default: ``False``)
        bias (bool): biases in the smoothers. (default: ``False``)

    Shapes:
        ``[B, in_channels, H, W]`` -> ``[B, out_channels, H, W]``, any ``H, W`` (see :class:`MgConv`).
    """

    def __init__(self, in_channels: int, out_channels: int = 1, *, hidden_channels: int = 24, num_layers: int = 4,
                 num_iterations: Sequence[int | Sequence[int]] = DARCY_ITERATIONS, padding_mode: str = "zeros",
                 restrict: str = "f", activation: str = "gelu", linear_skip: bool = True, norm: str | None = None,
                 residual_output: bool = False, bias: bool = False) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("hidden_channels", hidden_channels), ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"MgNO: {name} must be a positive integer, got {v!r}")
        if residual_output and in_channels != out_channels:
            raise ConfigError(f"MgNO: residual_output needs in_channels == out_channels, got {in_channels} and "
                              f"{out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.residual_output = residual_output
        opts = dict(num_iterations=num_iterations, padding_mode=padding_mode, restrict=restrict, norm=norm, bias=bias)
        self.layers = nn.ModuleList(MgConv(in_channels if k == 0 else hidden_channels, hidden_channels, **opts)
                                    for k in range(num_layers))
        self.linears = nn.ModuleList(nn.Conv2d(in_channels if k == 0 else hidden_channels, hidden_channels, 1)
                                     for k in range(num_layers)) if linear_skip else None
        self.act = _activation(activation)
        self.output = nn.Conv2d(hidden_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"MgNO: expected input [B, {self.in_channels}, H, W], got {list(x.shape)}")
        u = x
        for k, layer in enumerate(self.layers):
            v = layer(u)
            if self.linears is not None:
                v = v + self.linears[k](u)
            u = self.act(v)
        out = self.output(u)
        return out + x if self.residual_output else out

    def num_parameters(self) -> int:
        return count_parameters(self)


def _activation(name: str) -> nn.Module:
    return activation(name, "MgNO")
