r"""PDE problems for physics-informed neural networks (PINNs): box domains, residuals by autograd, boundary and
initial terms (soft, or hard through output transforms), exact solutions and reference data.

Problems (see docs/pinn.md):

* :class:`PoissonPeak2D`: :math:`-\Delta u = f` on :math:`[-1,1]^2`, :math:`u=\exp(-1000[(x-\frac12)^2+(y-\frac12)^2])`
  (the "peak" problem of DAS-PINNs, Tang, Wan, Yang, JCP 2023, and AAS, Tang et al., ICLR 2024).
* :class:`PoissonExponential`: :math:`-\Delta u = f` on :math:`[-1,1]^d`, :math:`u=\exp(-10\|x\|^2)` (``d = 10`` in
  DAS/AAS).
* :class:`Burgers`: :math:`u_t + u u_x - \nu u_{xx} = 0`, :math:`\nu = 0.01/\pi`, :math:`(x,t)\in[-1,1]\times[0,1]`,
  :math:`u(x,0)=-\sin\pi x`, :math:`u(\pm1,t)=0`; reference DeepXDE's ``Burgers.npz`` (or Cole–Hopf).
* :class:`AllenCahn`: :math:`u_t = D u_{xx} + 5(u-u^3)`, :math:`D = 0.001`, :math:`u(x,0)=x^2\cos\pi x`,
  :math:`u(\pm1,t)=-1`; reference DeepXDE's ``Allen_Cahn.mat`` (or a Chebyshev spectral solve).

The time-dependent problems put time in the **last** coordinate (``x[:, -1]``), as DeepXDE's ``GeometryXTime``.
Hard constraints follow Wu et al. (CMAME 2023, ``lu-group/pinn-sampling``): Burgers
:math:`u = -\sin\pi x + (1-x^2)\,t\,N(x,t)`, Allen–Cahn :math:`u = x^2\cos\pi x + (1-x^2)\,t\,N(x,t)`.

The interface every sampler codes against (``sciml.operators.pinn.sampling``):

.. code-block:: python

    problem.domain.uniform(n, generator)      # (n, dim) points in the box
    problem.residual(model, x)                # (n,) interior residual r(x; θ), by autograd (x needs no grad)
    problem.boundary_loss(model, generator)   # scalar (0 with hard constraints)
    problem.exact(x)                          # (n,) or None
    problem.reference()                       # (points (m, dim), values (m,)) for the relative L2 error
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, DataFormatError, ShapeError

__all__ = ["Box", "PDEProblem", "PoissonPeak2D", "PoissonExponential", "Burgers", "AllenCahn", "PROBLEMS",
           "make_problem", "load_burgers_reference", "load_allen_cahn_reference", "gradient", "laplacian",
           "shared_data_root"]


def shared_data_root() -> Path:
    """``$SCIML_SHARED_DATA`` or ``../shared/data`` next to the checkout (where the DeepXDE references live)."""
    env = os.environ.get("SCIML_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _seed_from(generator: torch.Generator | None) -> int:
    """An integer seed for numpy/scipy drawn from a torch generator (or fresh entropy)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


class Box:
    r"""An axis-aligned box :math:`\prod_i [\text{low}_i, \text{high}_i]`.

    Args:
        low (sequence or Tensor): lower corner ``(dim,)``.
        high (sequence or Tensor): upper corner ``(dim,)``; every entry greater than ``low``'s.
        dtype (torch.dtype, optional): dtype of the points. (default: ``torch.get_default_dtype()``)
    """

    def __init__(self, low: Sequence[float] | Tensor, high: Sequence[float] | Tensor, *,
                 dtype: torch.dtype | None = None) -> None:
        dtype = dtype or torch.get_default_dtype()
        low_t = torch.as_tensor(low, dtype=dtype).reshape(-1)
        high_t = torch.as_tensor(high, dtype=dtype).reshape(-1)
        if low_t.shape != high_t.shape or low_t.numel() == 0:
            raise ShapeError(f"Box: low {list(low_t.shape)} and high {list(high_t.shape)} must be non-empty vectors "
                             "of the same length")
        if not bool((high_t > low_t).all()):
            raise ConfigError(f"Box: every high must exceed low, got low={low_t.tolist()}, high={high_t.tolist()}")
        self.low, self.high = low_t, high_t

    @property
    def dim(self) -> int:
        return int(self.low.numel())

    @property
    def volume(self) -> float:
        return float(torch.prod((self.high - self.low).double()))

    @property
    def dtype(self) -> torch.dtype:
        return self.low.dtype

    def __repr__(self) -> str:
        return f"Box(low={self.low.tolist()}, high={self.high.tolist()})"

    def _scale(self, unit: Tensor) -> Tensor:
        return self.low + unit.to(self.low.dtype) * (self.high - self.low)

    def uniform(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` i.i.d. uniform points ``(n, dim)``."""
        return self._scale(torch.rand(int(n), self.dim, generator=generator, dtype=torch.float64))

    def sample(self, n: int, method: str = "uniform", generator: torch.Generator | None = None) -> Tensor:
        """``n`` points ``(n, dim)`` by ``method``: ``"uniform"`` (i.i.d.), ``"lhs"`` (Latin hypercube) or
        ``"sobol"`` (scrambled Sobol, :mod:`scipy.stats.qmc`; a seed is drawn from ``generator``)."""
        n = int(n)
        if method == "uniform":
            return self.uniform(n, generator)
        if method in ("lhs", "sobol"):
            from scipy.stats import qmc

            seed = _seed_from(generator)
            if method == "lhs":
                unit = qmc.LatinHypercube(d=self.dim, seed=seed).random(n)
            else:
                import warnings

                with warnings.catch_warnings():  # n not a power of 2: balance warning only
                    warnings.simplefilter("ignore", UserWarning)
                    unit = qmc.Sobol(d=self.dim, scramble=True, seed=seed).random(n)
            return self._scale(torch.from_numpy(unit))
        raise ConfigError(f"Box.sample: method must be 'uniform', 'lhs' or 'sobol', got {method!r}")

    def grid(self, points_per_dim: int | Sequence[int]) -> Tensor:
        """A tensor-product grid including the faces, ``(prod(points), dim)``, first coordinate slowest."""
        counts = [int(points_per_dim)] * self.dim if isinstance(points_per_dim, int) else list(points_per_dim)
        if len(counts) != self.dim or min(counts) < 2:
            raise ConfigError(f"Box.grid: need {self.dim} counts >= 2, got {points_per_dim}")
        axes = [torch.linspace(float(lo), float(hi), c, dtype=self.dtype)
                for lo, hi, c in zip(self.low, self.high, counts)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, self.dim)

    def contains(self, x: Tensor) -> Tensor:
        """``(n,)`` bool: which rows of ``x (n, dim)`` lie in the closed box."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ShapeError(f"Box.contains: expected points (n, {self.dim}), got {list(x.shape)}")
        low, high = self.low.to(x), self.high.to(x)
        return ((x >= low) & (x <= high)).all(dim=1)

    def boundary(self, n: int, generator: torch.Generator | None = None, *,
                 faces: Sequence[tuple[int, int]] | None = None) -> Tensor:
        """``n`` points uniform on the boundary (each face chosen with probability proportional to its area).

        Args:
            faces (list of (axis, side), optional): only these faces (``side`` 0: ``low``, 1: ``high``).
                (default: all ``2 * dim``)
        """
        faces = [(a, s) for a in range(self.dim) for s in (0, 1)] if faces is None else list(faces)
        width = (self.high - self.low).double()
        area = torch.tensor([float(torch.prod(width) / width[a]) if self.dim > 1 else 1.0 for a, _ in faces],
                            dtype=torch.float64)
        pick = torch.multinomial(area / area.sum(), int(n), replacement=True, generator=generator)
        pts = self.uniform(n, generator)
        axis = torch.tensor([a for a, _ in faces])[pick]
        side = torch.tensor([s for _, s in faces])[pick]
        value = torch.where(side == 0, self.low[axis], self.high[axis])
        pts[torch.arange(int(n)), axis] = value
        return pts


# ------------------------------------------------------------------------------------------------- derivatives
def gradient(u: Tensor, x: Tensor, *, create_graph: bool = True) -> Tensor:
    """:math:`\\nabla_x u` for ``u (n,)`` computed pointwise from ``x (n, d)`` (``x.requires_grad``): ``(n, d)``."""
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(x) if g is None else g


def laplacian(u: Tensor, x: Tensor, *, dims: Sequence[int] | None = None, create_graph: bool = True,
              grad: Tensor | None = None) -> Tensor:
    """:math:`\\sum_{i\\in\\text{dims}} \\partial^2 u/\\partial x_i^2` ``(n,)`` by ``len(dims)`` backward passes."""
    g = gradient(u, x, create_graph=True) if grad is None else grad
    dims = range(x.shape[1]) if dims is None else dims
    out = torch.zeros_like(u)
    for i in dims:
        out = out + gradient(g[:, i], x, create_graph=create_graph)[:, i]
    return out


def _as_column_model(model: nn.Module | Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    out = model(x)
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (x.shape[0],):
        raise ShapeError(f"PINN model: expected output (n, 1) or (n,) for input {list(x.shape)}, got "
                         f"{list(out.shape)}")
    return out


# ------------------------------------------------------------------------------------------------- base class
class PDEProblem:
    r"""A PDE on a :class:`Box` for PINN training.

    Subclasses implement :meth:`pde` (the residual from points and the solution values, with autograd) and
    optionally :meth:`exact`, :meth:`output_transform` (hard constraints), :meth:`soft_constraint_loss` and
    :meth:`reference`.

    Args:
        domain (Box): the domain (time, if any, is the last coordinate).
        hard_constraint (bool): satisfy boundary/initial conditions through :meth:`output_transform`.
        num_boundary (int): boundary/initial points of the soft constraint loss. (default: ``0``)
        boundary_weight (float): weight of the soft constraint loss. (default: ``1.0``)
        seed (int): seed of the fixed soft-constraint points. (default: ``0``)
    """

    name: str = "pde"
    time_dependent: bool = False
    supports_hard_constraint: bool = False

    def __init__(self, domain: Box, *, hard_constraint: bool = False, num_boundary: int = 0,
                 boundary_weight: float = 1.0, seed: int = 0) -> None:
        if hard_constraint and not self.supports_hard_constraint:
            raise ConfigError(f"{type(self).__name__}: hard_constraint=True is not available for this problem")
        if num_boundary < 0:
            raise ConfigError(f"{type(self).__name__}: num_boundary must be >= 0, got {num_boundary}")
        self.domain = domain
        self.hard_constraint = bool(hard_constraint)
        self.num_boundary = int(num_boundary)
        self.boundary_weight = float(boundary_weight)
        self.seed = int(seed)
        self._fixed_boundary: Tensor | None = None
        self._reference: tuple[Tensor, Tensor] | None = None

    @property
    def dim(self) -> int:
        return self.domain.dim

    def __repr__(self) -> str:
        return f"{type(self).__name__}(domain={self.domain}, hard_constraint={self.hard_constraint})"

    # -- the solution
    def output_transform(self, x: Tensor, raw: Tensor) -> Tensor:
        """Map the network output ``raw (n,)`` to the solution ``(n,)`` (identity without hard constraints)."""
        return raw

    def solution(self, model: nn.Module | Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """``u_θ(x)`` ``(n,)``: the network output through :meth:`output_transform` if ``hard_constraint``."""
        raw = _as_column_model(model, x)
        return self.output_transform(x, raw) if self.hard_constraint else raw

    # -- the residual
    def pde(self, x: Tensor, u: Tensor) -> Tensor:
        """The residual ``(n,)`` from ``x`` (requires grad) and ``u = u(x)`` ``(n,)``."""
        raise NotImplementedError

    def residual(self, model: nn.Module | Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """Interior residual :math:`r(x;\\theta)` ``(n,)``, differentiable w.r.t. the model's parameters.

        ``x (n, dim)`` needs no ``requires_grad`` on entry (a detached copy that requires grad is used)."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ShapeError(f"{self.name}.residual: expected points (n, {self.dim}), got {list(x.shape)}")
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            return self.pde(x, self.solution(model, x))

    # -- boundary / initial conditions
    def constraint_points(self, generator: torch.Generator | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """Soft-constraint points and target values ``{name: (points, values)}``."""
        return {}

    def boundary_loss(self, model: nn.Module | Callable[[Tensor], Tensor],
                      generator: torch.Generator | None = None) -> Tensor:
        """``boundary_weight`` × the mean squared misfit of the soft boundary/initial conditions (a scalar; ``0``
        with hard constraints or ``num_boundary == 0``). A fixed point set (seeded by ``seed``) unless a
        ``generator`` is given, which draws fresh points."""
        if self.hard_constraint or self.num_boundary == 0:
            return torch.zeros((), dtype=self.domain.dtype)
        if generator is None:
            if self._fixed_boundary is None:
                self._fixed_boundary = self.constraint_points(torch.Generator().manual_seed(self.seed + 7919))
            sets = self._fixed_boundary
        else:
            sets = self.constraint_points(generator)
        total = None
        for pts, target in sets.values():
            pts = pts.to(_device_of(model, pts))
            misfit = (self.solution(model, pts) - target.to(pts)).pow(2).mean()
            total = misfit if total is None else total + misfit
        return self.boundary_weight * total  # type: ignore[operator]

    # -- truth
    def exact(self, x: Tensor) -> Tensor | None:
        """The exact solution ``(n,)`` at ``x``, or ``None`` when only reference data exists."""
        return None

    def reference(self) -> tuple[Tensor, Tensor]:
        """``(points (m, dim), values (m,))`` on which :meth:`relative_l2` is measured."""
        raise NotImplementedError

    def reference_weights(self) -> Tensor | None:
        """Quadrature weights ``(m,)`` of :meth:`reference` (``None``: equal weights)."""
        return None

    @torch.no_grad()
    def relative_l2(self, model: nn.Module | Callable[[Tensor], Tensor], *, chunk: int = 65536) -> float:
        r""":math:`\|u_\theta-u\|_2/\|u\|_2` over :meth:`reference` (weighted by :meth:`reference_weights`)."""
        pts, vals = self.reference()
        device = _device_of(model, pts)
        pred = torch.cat([self.solution(model, pts[i:i + chunk].to(device)).double().cpu()
                          for i in range(0, len(pts), chunk)])
        w = self.reference_weights()
        w = torch.ones_like(pred) if w is None else w.double()
        err = (w * (pred - vals.double()) ** 2).sum()
        return float(torch.sqrt(err / (w * vals.double() ** 2).sum()))


def _device_of(model: nn.Module | Callable[[Tensor], Tensor], default: Tensor) -> torch.device:
    """The device of the model's first parameter (``default``'s for a parameter-free callable)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
    return default.device


# ------------------------------------------------------------------------------------------------- Poisson
class _Poisson(PDEProblem):
    r""":math:`-\Delta u = f` with :math:`u = \exp(-a\|x-x_0\|^2)`, so :math:`f = u\,(2ad - 4a^2\|x-x_0\|^2)`;
    Dirichlet data from the exact solution on the whole boundary (soft, ``num_boundary`` fixed points)."""

    def __init__(self, dim: int, a: float, center: Sequence[float], *, num_boundary: int, boundary_weight: float,
                 seed: int, dtype: torch.dtype | None) -> None:
        super().__init__(Box([-1.0] * dim, [1.0] * dim, dtype=dtype), num_boundary=num_boundary,
                         boundary_weight=boundary_weight, seed=seed)
        self.a = float(a)
        self.center = torch.as_tensor(center, dtype=self.domain.dtype)

    def _r2(self, x: Tensor) -> Tensor:
        return (x - self.center.to(x)).pow(2).sum(dim=1)

    def exact(self, x: Tensor) -> Tensor:
        return torch.exp(-self.a * self._r2(x))

    def source(self, x: Tensor) -> Tensor:
        r2 = self._r2(x)
        return torch.exp(-self.a * r2) * (2 * self.a * self.dim - 4 * self.a ** 2 * r2)

    def pde(self, x: Tensor, u: Tensor) -> Tensor:
        return -laplacian(u, x) - self.source(x.detach())

    def constraint_points(self, generator: torch.Generator | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        pts = self.domain.boundary(self.num_boundary, generator)
        return {"boundary": (pts, self.exact(pts))}


class PoissonPeak2D(_Poisson):
    r"""2-D Poisson with a sharp peak: :math:`-\Delta u = f` on :math:`[-1,1]^2`,
    :math:`u = \exp(-1000[(x-\tfrac12)^2 + (y-\tfrac12)^2])`, Dirichlet data from :math:`u` (DAS-PINNs, Tang, Wan,
    Yang, JCP 2023; AAS, Tang, Zhai, Wan, Yang, ICLR 2024).

    The error is measured on a ``grid × grid`` tensor grid (default 201², spacing 0.01, which resolves the peak's
    width :math:`1/\sqrt{2000}\approx 0.022`).

    Args:
        num_boundary (int): fixed boundary points of the soft Dirichlet loss. (default: ``400``)
        boundary_weight (float): its weight (DAS: 1). (default: ``1.0``)
        sharpness (float): :math:`a` in :math:`\exp(-a\|x-x_0\|^2)`. (default: ``1000``)
        grid (int): reference grid points per axis. (default: ``201``)
        seed (int): seed of the boundary points. (default: ``0``)
        dtype (torch.dtype, optional): point dtype. (default: the default dtype)
    """

    name = "poisson_peak"

    def __init__(self, *, num_boundary: int = 400, boundary_weight: float = 1.0, sharpness: float = 1000.0,
                 grid: int = 201, seed: int = 0, dtype: torch.dtype | None = None) -> None:
        super().__init__(2, sharpness, [0.5, 0.5], num_boundary=num_boundary, boundary_weight=boundary_weight,
                         seed=seed, dtype=dtype)
        self.grid_points = int(grid)

    def reference(self) -> tuple[Tensor, Tensor]:
        if self._reference is None:
            pts = self.domain.grid(self.grid_points)
            self._reference = (pts, self.exact(pts))
        return self._reference


class PoissonExponential(_Poisson):
    r"""The :math:`d`-dimensional exponential problem: :math:`-\Delta u = f` on :math:`[-1,1]^d`,
    :math:`u = \exp(-10\|x\|^2)` (DAS-PINNs and AAS use :math:`d = 10`), Dirichlet data from :math:`u`.

    In 10-D the solution is negligible on almost all of the box, so the relative :math:`L^2` error is estimated by
    importance sampling: ``num_reference`` points (seed ``reference_seed``) from the mixture
    :math:`q = \frac12\,\mathcal U(\Omega) + \frac12\,\mathcal N(0, \sigma^2 I)` truncated to the box, with
    :math:`\sigma^2 = 1/40` (:math:`u^2`'s own spread), weighted by :math:`1/q`. Uniform points alone would see the
    peak at the origin essentially never.

    Args:
        dim (int): dimension. (default: ``10``)
        num_boundary (int): fixed boundary points of the soft Dirichlet loss. (default: ``1000``)
        boundary_weight (float): its weight. (default: ``1.0``)
        num_reference (int): reference points. (default: ``20000``)
        reference_seed (int): their seed. (default: ``1234``)
        seed (int): seed of the boundary points. (default: ``0``)
        dtype (torch.dtype, optional): point dtype. (default: the default dtype)
    """

    name = "poisson_exp"

    def __init__(self, dim: int = 10, *, num_boundary: int = 1000, boundary_weight: float = 1.0,
                 num_reference: int = 20000, reference_seed: int = 1234, seed: int = 0,
                 dtype: torch.dtype | None = None) -> None:
        if int(dim) < 1:
            raise ConfigError(f"PoissonExponential: dim must be >= 1, got {dim}")
        super().__init__(int(dim), 10.0, [0.0] * int(dim), num_boundary=num_boundary,
                         boundary_weight=boundary_weight, seed=seed, dtype=dtype)
        self.num_reference, self.reference_seed = int(num_reference), int(reference_seed)
        self._weights: Tensor | None = None

    def _mixture_density(self, x: Tensor) -> Tensor:
        d, var = self.dim, 1.0 / 40.0
        # Gaussian truncated to [-1, 1]^d: per-axis mass erf(1/sqrt(2 var))
        mass = math.erf(1.0 / math.sqrt(2 * var)) ** d
        gauss = torch.exp(-(x.double() ** 2).sum(1) / (2 * var)) / ((2 * math.pi * var) ** (d / 2) * mass)
        return 0.5 / self.domain.volume + 0.5 * gauss

    def reference(self) -> tuple[Tensor, Tensor]:
        if self._reference is None:
            g = torch.Generator().manual_seed(self.reference_seed)
            m = self.num_reference
            n_unif = m // 2
            unif = self.domain.uniform(n_unif, g)
            sd = math.sqrt(1.0 / 40.0)
            gauss = torch.empty(0, self.dim, dtype=torch.float64)
            while len(gauss) < m - n_unif:  # rejection to the box (acceptance ~ 1 - 2e-10 per point)
                z = sd * torch.randn(m - n_unif, self.dim, generator=g, dtype=torch.float64)
                gauss = torch.cat([gauss, z[(z.abs() <= 1).all(1)]])
            pts = torch.cat([unif, gauss[:m - n_unif].to(unif.dtype)])
            # weights 1/q for the deterministic half/half split (stratified mixture sampling)
            self._weights = 1.0 / self._mixture_density(pts)
            self._reference = (pts, self.exact(pts))
        return self._reference

    def reference_weights(self) -> Tensor:
        self.reference()
        return self._weights  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------- time-dependent
def _check_reference_grid(path: Path, x: np.ndarray, t: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``u`` as ``(len(t), len(x))``, accepting either orientation; a clear error otherwise."""
    nx, nt = x.size, t.size
    if u.shape == (nt, nx):
        return u
    if u.shape == (nx, nt):
        return u.T
    raise DataFormatError(f"{path}: solution array of shape {list(u.shape)} does not match x ({nx}) and t ({nt})")


def _grid_points(x: np.ndarray, t: np.ndarray, u_tx: np.ndarray, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    xx, tt = np.meshgrid(x.ravel(), t.ravel())  # (nt, nx), t slowest
    pts = np.stack([xx.ravel(), tt.ravel()], axis=1)
    return torch.from_numpy(pts).to(dtype), torch.from_numpy(np.asarray(u_tx, dtype=np.float64).ravel()).to(dtype)


def load_burgers_reference(path: str | os.PathLike, *, dtype: torch.dtype | None = None
                           ) -> tuple[Tensor, Tensor]:
    """DeepXDE's ``Burgers.npz`` (keys ``x (256, 1)``, ``t (100, 1)``, ``usol (256, 100)``) as
    ``(points (m, 2) [x, t], values (m,))``, ``t`` slowest (the order of DeepXDE's ``gen_testdata``).

    Raises:
        DataFormatError: missing keys or shapes that do not fit.
    """
    p = Path(path)
    dtype = dtype or torch.get_default_dtype()
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{p}: not a readable .npz file ({err})") from None
    missing = [k for k in ("x", "t", "usol") if k not in arrays]
    if missing:
        raise DataFormatError(f"{p}: missing array(s) {missing}; found {sorted(arrays)}")
    x, t = arrays["x"].ravel(), arrays["t"].ravel()
    u = _check_reference_grid(p, x, t, arrays["usol"])
    return _grid_points(x, t, u, dtype)


def load_allen_cahn_reference(path: str | os.PathLike, *, dtype: torch.dtype | None = None
                              ) -> tuple[Tensor, Tensor]:
    """DeepXDE's ``Allen_Cahn.mat`` (``x (1, 201)``, ``t (1, 101)``, ``u (101, 201)``; v5 or v7.3, read by
    :func:`sciml.datasets.sources.matlab.read_mat`) as ``(points (m, 2) [x, t], values (m,))``, ``t`` slowest.

    Raises:
        DataFormatError: missing keys or shapes that do not fit.
    """
    from sciml.datasets.sources.matlab import read_mat

    p = Path(path)
    dtype = dtype or torch.get_default_dtype()
    arrays = read_mat(p)
    missing = [k for k in ("x", "t", "u") if k not in arrays]
    if missing:
        raise DataFormatError(f"{p}: missing variable(s) {missing}; found {sorted(arrays)}")
    x, t = np.asarray(arrays["x"], dtype=np.float64).ravel(), np.asarray(arrays["t"], dtype=np.float64).ravel()
    u = _check_reference_grid(p, x, t, np.real(arrays["u"]))
    return _grid_points(x, t, u, dtype)


class _TimeDependent1D(PDEProblem):
    """A 1-D evolution problem on ``[-1, 1] × [0, 1]`` (columns ``[x, t]``) with an initial condition ``u0`` and
    constant Dirichlet values ``g`` at ``x = ±1``.

    Reference (:meth:`reference`): the file at ``reference_path`` when one was passed; else DeepXDE's file in the
    shared data when it exists and the coefficients are the file's; else :meth:`solve` on the file's grid
    (``reference_grid``: points in x, points in t, last t), computed once.
    """

    time_dependent = True
    supports_hard_constraint = True
    boundary_value: float = 0.0
    default_file: str = ""
    reference_grid: tuple[int, int, float] = (0, 0, 1.0)

    def __init__(self, *, hard_constraint: bool = True, num_boundary: int = 200, num_initial: int = 200,
                 boundary_weight: float = 1.0, reference_path: str | os.PathLike | None = None, seed: int = 0,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(Box([-1.0, 0.0], [1.0, 1.0], dtype=dtype), hard_constraint=hard_constraint,
                         num_boundary=num_boundary + num_initial, boundary_weight=boundary_weight, seed=seed)
        self.num_dirichlet, self.num_initial = int(num_boundary), int(num_initial)
        self.explicit_reference = reference_path is not None
        self.reference_path = Path(reference_path) if reference_path is not None else \
            shared_data_root() / "pde" / "deepxde" / self.default_file

    def initial(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def constraint_points(self, generator: torch.Generator | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        out = {}
        if self.num_dirichlet:
            pts = self.domain.boundary(self.num_dirichlet, generator, faces=[(0, 0), (0, 1)])
            out["boundary"] = (pts, torch.full((len(pts),), self.boundary_value, dtype=pts.dtype))
        if self.num_initial:
            pts = self.domain.boundary(self.num_initial, generator, faces=[(1, 0)])
            out["initial"] = (pts, self.initial(pts[:, 0]))
        return out

    def _load(self, path: Path) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def matches_file(self) -> bool:
        """Whether the coefficients are those DeepXDE's reference file was computed with."""
        raise NotImplementedError

    def solve(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The solution ``(len(t), len(x))`` from an independent numerical method."""
        raise NotImplementedError

    def reference(self) -> tuple[Tensor, Tensor]:
        if self._reference is None:
            if self.explicit_reference or (self.matches_file() and self.reference_path.exists()):
                if not self.reference_path.exists():
                    raise FileNotFoundError(f"{self.name}: reference solution {self.reference_path} not found")
                self._reference = self._load(self.reference_path)
            else:
                nx, nt, t_end = self.reference_grid
                x, t = np.linspace(-1.0, 1.0, nx), np.linspace(0.0, t_end, nt)
                self._reference = _grid_points(x, t, self.solve(x, t), self.domain.dtype)
        return self._reference


class Burgers(_TimeDependent1D):
    r"""Viscous Burgers :math:`u_t + u u_x - \nu u_{xx} = 0` on :math:`[-1,1]\times[0,1]`, :math:`\nu=0.01/\pi`,
    :math:`u(x,0) = -\sin\pi x`, :math:`u(\pm 1, t) = 0` (Raissi et al.; Wu et al., CMAME 2023).

    With ``hard_constraint=True`` (default, as Wu et al.) :math:`u = -\sin\pi x + (1-x^2)\,t\,N(x,t)`; otherwise
    ``num_boundary`` + ``num_initial`` fixed soft-constraint points. Reference: DeepXDE's ``Burgers.npz``
    (256 × 100 grid) from ``reference_path`` (default ``<shared data>/pde/deepxde/Burgers.npz``); without the file,
    or with another viscosity, the Cole–Hopf solution on the same grid (:func:`~sciml.datasets.generators.burgers.
    cole_hopf_raissi`, heat-kernel quadrature; it matches the file to 3e-12; ~10 s).

    Args:
        hard_constraint (bool): the output transform above. (default: ``True``)
        viscosity (float): :math:`\nu`. (default: ``0.01/π``)
        num_boundary, num_initial (int): soft-constraint points when not hard. (default: ``200``, ``200``)
        boundary_weight (float): weight of the soft-constraint loss. (default: ``1.0``)
        reference_path (str, optional): the ``.npz`` file (an error if it does not exist).
        seed (int): seed of the soft-constraint points. (default: ``0``)
        dtype (torch.dtype, optional): point dtype.
    """

    name = "burgers"
    default_file = "Burgers.npz"
    boundary_value = 0.0
    reference_grid = (256, 100, 0.99)

    def __init__(self, *, viscosity: float = 0.01 / math.pi, **kwargs) -> None:
        super().__init__(**kwargs)
        self.viscosity = float(viscosity)

    def initial(self, x: Tensor) -> Tensor:
        return -torch.sin(math.pi * x)

    def output_transform(self, x: Tensor, raw: Tensor) -> Tensor:
        xs, t = x[:, 0], x[:, 1]
        return -torch.sin(math.pi * xs) + (1 - xs ** 2) * t * raw

    def pde(self, x: Tensor, u: Tensor) -> Tensor:
        g = gradient(u, x)
        u_x, u_t = g[:, 0], g[:, 1]
        u_xx = gradient(u_x, x)[:, 0]
        return u_t + u * u_x - self.viscosity * u_xx

    def _load(self, path: Path) -> tuple[Tensor, Tensor]:
        return load_burgers_reference(path, dtype=self.domain.dtype)

    def matches_file(self) -> bool:
        return math.isclose(self.viscosity, 0.01 / math.pi, rel_tol=1e-12)

    def solve(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        from sciml.datasets.generators.burgers import cole_hopf_raissi

        return np.stack([cole_hopf_raissi(x, float(ti), self.viscosity) for ti in t])


class AllenCahn(_TimeDependent1D):
    r"""Allen–Cahn :math:`u_t = D u_{xx} + 5(u - u^3)` on :math:`[-1,1]\times[0,1]`, :math:`D = 0.001`,
    :math:`u(x,0) = x^2\cos\pi x`, :math:`u(\pm1,t) = -1` (Wu et al., CMAME 2023; DeepXDE's example).

    With ``hard_constraint=True`` (default) :math:`u = x^2\cos\pi x + (1-x^2)\,t\,N(x,t)`. Reference: DeepXDE's
    ``Allen_Cahn.mat`` (201 × 101 grid, the file of Wu et al.'s scripts) from ``reference_path``; without the file, or
    with other coefficients, a Chebyshev-collocation solution on the same grid
    (:func:`~sciml.datasets.generators.allen_cahn.solve_allen_cahn`, 256 nodes, Radau; 1.6e-4 from the file; ~2 s).

    Args:
        hard_constraint (bool): the output transform above. (default: ``True``)
        diffusion (float): :math:`D`. (default: ``0.001``)
        reaction (float): the factor 5. (default: ``5.0``)
        num_boundary, num_initial, boundary_weight, reference_path, seed, dtype: as :class:`Burgers`.
    """

    name = "allen_cahn"
    default_file = "Allen_Cahn.mat"
    boundary_value = -1.0
    reference_grid = (201, 101, 1.0)

    def __init__(self, *, diffusion: float = 0.001, reaction: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.diffusion, self.reaction = float(diffusion), float(reaction)

    def initial(self, x: Tensor) -> Tensor:
        return x ** 2 * torch.cos(math.pi * x)

    def output_transform(self, x: Tensor, raw: Tensor) -> Tensor:
        xs, t = x[:, 0], x[:, 1]
        return xs ** 2 * torch.cos(math.pi * xs) + (1 - xs ** 2) * t * raw

    def pde(self, x: Tensor, u: Tensor) -> Tensor:
        g = gradient(u, x)
        u_x, u_t = g[:, 0], g[:, 1]
        u_xx = gradient(u_x, x)[:, 0]
        return u_t - self.diffusion * u_xx - self.reaction * (u - u ** 3)

    def _load(self, path: Path) -> tuple[Tensor, Tensor]:
        return load_allen_cahn_reference(path, dtype=self.domain.dtype)

    def matches_file(self) -> bool:
        return self.diffusion == 0.001 and self.reaction == 5.0

    def solve(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        from sciml.datasets.generators.allen_cahn import solve_allen_cahn

        return solve_allen_cahn(x, t, diffusion=self.diffusion, reaction=self.reaction)


PROBLEMS: dict[str, type[PDEProblem]] = {"peak": PoissonPeak2D, "exp": PoissonExponential, "burgers": Burgers,
                                         "allen_cahn": AllenCahn}


def make_problem(name: str, **kwargs) -> PDEProblem:
    """A problem by name: ``"peak"``, ``"exp"`` (10-D exponential), ``"burgers"``, ``"allen_cahn"``."""
    if name not in PROBLEMS:
        raise ConfigError(f"unknown PINN problem {name!r}; expected one of {sorted(PROBLEMS)}")
    return PROBLEMS[name](**kwargs)
