r"""2D Darcy flow :math:`-\nabla\cdot(a\nabla u) = f` on :math:`[0,1]^2`, :math:`u = 0` on the boundary.

Discretisation: the ``s x s`` nodes ``(i h, j h)``, ``h = 1/(s-1)``, boundary nodes included (their ``u`` is 0).
At each interior node the conservative 5-point stencil

.. math::
    \frac{1}{h^2}\Big[a_{i+\frac12,j}(u_{i,j}-u_{i+1,j}) + a_{i-\frac12,j}(u_{i,j}-u_{i-1,j})
    + a_{i,j+\frac12}(u_{i,j}-u_{i,j+1}) + a_{i,j-\frac12}(u_{i,j}-u_{i,j-1})\Big] = f_{i,j}

with face coefficients the harmonic (default; flux-continuous across a jump of ``a``) or arithmetic mean of the two
nodal values. The matrix is symmetric positive definite; it is solved with SuperLU (``scipy.sparse.linalg.splu``).
Second order for smooth ``a`` (verified in the tests with a manufactured solution).

Generated data (FNO recipe): ``a`` = 12 where a GRF with covariance :math:`(-\Delta+\tau^2)^{-\alpha}`
(Neumann modes, :math:`\alpha=2`, :math:`\tau=3`) is :math:`\ge 0`, else 3; ``f = 1``. Optionally solved on a finer
node grid and subsampled (FNO solved at 421 and subsampled by 2, 3, 4...).
"""
from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from sciml.datasets.records import FieldSample
from sciml.errors import ConfigError, ShapeError

from . import GENERATORS
from ._common import build_spec, jsonable, positive, sample_rng, split_sizes
from .grf import grf_neumann

__all__ = ["darcy_matrix", "solve_darcy", "darcy_coefficient", "darcy_sample", "generate_darcy"]

FaceAverage = Literal["harmonic", "arithmetic"]


def _face(a1: np.ndarray, a2: np.ndarray, how: str) -> np.ndarray:
    if how == "harmonic":
        return 2.0 * a1 * a2 / (a1 + a2)
    if how == "arithmetic":
        return 0.5 * (a1 + a2)
    raise ConfigError(f"face_average: expected 'harmonic' or 'arithmetic', got {how!r}")


def darcy_matrix(a: np.ndarray, face_average: str = "harmonic") -> sp.csr_matrix:
    """The ``(s-2)^2 x (s-2)^2`` SPD matrix of :math:`-\\nabla\\cdot(a\\nabla\\cdot)` on the interior nodes.

    Args:
        a: ``[s, s]`` positive nodal coefficient (axis 0 is ``x``, axis 1 is ``y``), boundary nodes included.
        face_average: ``"harmonic"`` or ``"arithmetic"`` mean of the two nodal values on each face.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ShapeError(f"a: expected a square [s, s] array with s >= 3, got shape {a.shape}")
    if not np.all(a > 0):
        raise ConfigError("a: the coefficient must be positive everywhere")
    s = a.shape[0]
    n = s - 2
    h2 = (1.0 / (s - 1)) ** 2
    ax = _face(a[:-1, :], a[1:, :], face_average)  # faces between (i, j) and (i+1, j): [s-1, s]
    ay = _face(a[:, :-1], a[:, 1:], face_average)  # faces between (i, j) and (i, j+1): [s, s-1]
    east = ax[1:, 1:-1]     # face (i+1/2, j) for interior i = 1..s-2 -> [n, n]
    west = ax[:-1, 1:-1]    # face (i-1/2, j)
    north = ay[1:-1, 1:]    # face (i, j+1/2)
    south = ay[1:-1, :-1]   # face (i, j-1/2)
    idx = np.arange(n * n).reshape(n, n)
    rows = [idx.ravel()]
    cols = [idx.ravel()]
    vals = [(east + west + north + south).ravel()]
    for coef, sl_from, sl_to in (
        (east[:-1, :], idx[:-1, :], idx[1:, :]),
        (west[1:, :], idx[1:, :], idx[:-1, :]),
        (north[:, :-1], idx[:, :-1], idx[:, 1:]),
        (south[:, 1:], idx[:, 1:], idx[:, :-1]),
    ):
        rows.append(sl_from.ravel())
        cols.append(sl_to.ravel())
        vals.append(-coef.ravel())
    mat = sp.csr_matrix((np.concatenate(vals) / h2, (np.concatenate(rows), np.concatenate(cols))), shape=(n * n,) * 2)
    return mat


def solve_darcy(a: np.ndarray, f: float | np.ndarray = 1.0, face_average: str = "harmonic") -> np.ndarray:
    """Solve :math:`-\\nabla\\cdot(a\\nabla u) = f`, ``u = 0`` on the boundary; returns ``u`` ``[s, s]`` (float64).

    Args:
        a: ``[s, s]`` nodal coefficient, boundary nodes included.
        f: scalar or ``[s, s]`` nodal right-hand side (boundary values unused).
        face_average: see :func:`darcy_matrix`.
    """
    a = np.asarray(a, dtype=np.float64)
    mat = darcy_matrix(a, face_average)
    s = a.shape[0]
    f_arr = np.broadcast_to(np.asarray(f, dtype=np.float64), (s, s))
    rhs = np.ascontiguousarray(f_arr[1:-1, 1:-1]).ravel()
    inner = spla.splu(mat.tocsc()).solve(rhs)
    u = np.zeros((s, s))
    u[1:-1, 1:-1] = inner.reshape(s - 2, s - 2)
    return u


def darcy_coefficient(rng: np.random.Generator, s: int, *, alpha: float = 2.0, tau: float = 3.0,
                      a_high: float = 12.0, a_low: float = 3.0, modes: int | None = None) -> np.ndarray:
    """FNO's two-valued coefficient: ``a_high`` where the Neumann GRF is ``>= 0``, ``a_low`` elsewhere."""
    field = grf_neumann(rng, s, alpha=alpha, tau=tau, modes=modes)
    return np.where(field >= 0.0, a_high, a_low)


def darcy_sample(rng: np.random.Generator, *, resolution: int, solver_resolution: int | None = None,
                 alpha: float = 2.0, tau: float = 3.0, a_high: float = 12.0, a_low: float = 3.0,
                 forcing: float = 1.0, face_average: str = "harmonic",
                 modes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One ``(a, u)`` pair at ``resolution`` nodes per side (float64 ``[s, s]`` each)."""
    fine = resolution if solver_resolution is None else solver_resolution
    stride = _stride(resolution, fine)
    a = darcy_coefficient(rng, fine, alpha=alpha, tau=tau, a_high=a_high, a_low=a_low, modes=modes)
    u = solve_darcy(a, forcing, face_average)
    return a[::stride, ::stride], u[::stride, ::stride]


def _stride(resolution: int, solver_resolution: int) -> int:
    if solver_resolution < resolution or (solver_resolution - 1) % (resolution - 1):
        raise ConfigError(f"solver_resolution: must be >= resolution and (solver_resolution - 1) a multiple of "
                          f"(resolution - 1) so that nodes subsample exactly; got solver_resolution="
                          f"{solver_resolution}, resolution={resolution}")
    return (solver_resolution - 1) // (resolution - 1)


@GENERATORS.register("darcy")
def generate_darcy(*, num_train: int = 1000, num_val: int = 0, num_test: int = 200, seed: int = 0,
                   resolution: int = 64, solver_resolution: int | None = None, alpha: float = 2.0,
                   tau: float = 3.0, a_high: float = 12.0, a_low: float = 3.0, forcing: float = 1.0,
                   face_average: FaceAverage = "harmonic", modes: int | None = None,
                   shard: tuple[int, int] | None = None) -> Any:
    """Darcy flow pairs (FNO recipe): fields ``a`` and ``u``, each ``[1, s, s, 1]``; coords ``x``, ``y`` (nodes).

    Args:
        num_train, num_val, num_test: samples per split (empty splits are left out).
        seed: run seed; sample ``k`` of a split depends on ``(seed, split, k)`` only.
        resolution: nodes per side ``s`` of the saved fields (boundary included, ``h = 1/(s-1)``).
        solver_resolution: nodes per side of the solve (default ``resolution``); ``(solver_resolution - 1)`` must be
            a multiple of ``(resolution - 1)`` (FNO: 421 subsampled to 211, 141, 106, 85...).
        alpha, tau: GRF covariance :math:`(-\\Delta+\\tau^2)^{-\\alpha}` of the coefficient.
        a_high, a_low: coefficient values where the GRF is ``>= 0`` / ``< 0``.
        forcing: constant right-hand side ``f``.
        face_average: ``"harmonic"`` or ``"arithmetic"`` face coefficients.
        modes: GRF modes per direction (default: the solver resolution, as FNO).
        shard: ``(i, n)``: produce only the samples shard ``i`` of ``n`` owns.
    """
    positive("resolution", resolution, int)
    if resolution < 3:
        raise ConfigError(f"resolution: expected >= 3 nodes per side, got {resolution}")
    fine = resolution if solver_resolution is None else solver_resolution
    _stride(resolution, fine)
    for name, value in (("tau", tau), ("a_high", a_high), ("a_low", a_low)):
        positive(name, value)
    if face_average not in ("harmonic", "arithmetic"):
        raise ConfigError(f"face_average: expected 'harmonic' or 'arithmetic', got {face_average!r}")
    sizes = split_sizes(num_train, num_val, num_test)
    options = dict(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed, resolution=resolution,
                   solver_resolution=fine, alpha=alpha, tau=tau, a_high=a_high, a_low=a_low, forcing=forcing,
                   face_average=face_average, modes=modes)

    def make(split: str, k: int) -> FieldSample:
        a, u = darcy_sample(sample_rng(seed, split, k), resolution=resolution, solver_resolution=fine,
                            alpha=alpha, tau=tau, a_high=a_high, a_low=a_low, forcing=forcing,
                            face_average=face_average, modes=modes)
        return FieldSample(fields={"a": a[None, :, :, None].astype(np.float32),
                                   "u": u[None, :, :, None].astype(np.float32)},
                           params={})

    x = np.linspace(0.0, 1.0, resolution)
    return build_spec(kind="fields", make=make, sizes=sizes, shard=shard, source="generator:darcy",
                      config={"generator": "darcy", **jsonable(options)}, coords={"x": x, "y": x.copy()})


def manufactured_rhs(a: Callable, grad_a: Callable, u: Callable, grad_u: Callable, lap_u: Callable
                     ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``f = -div(a grad u) = -(grad a . grad u) - a lap u`` from closed forms (for tests and docs)."""
    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ax, ay = grad_a(x, y)
        ux, uy = grad_u(x, y)
        return -(ax * ux + ay * uy) - a(x, y) * lap_u(x, y)
    return f
