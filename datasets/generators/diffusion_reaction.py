r"""2D diffusion–reaction (FitzHugh–Nagumo type, PDEBench's 2D setting) in a closed box with no-flux walls.

.. math::
    \partial_t u = D_u\Delta u + u - u^3 - k - v, \qquad \partial_t v = D_v\Delta v + u - v,
    \qquad (x, y)\in[-1,1]^2, \qquad \partial_n u = \partial_n v = 0 \text{ on the walls},

with :math:`D_u = 10^{-3}`, :math:`D_v = 5\cdot10^{-3}`, :math:`k = 5\cdot10^{-3}` by default and
standard-normal noise as initial condition (each cell independent), saved at 101 times in ``[0, 5]``.

Discretisation: finite volumes on ``s x s`` square cells (centres ``-1 + (i + 1/2) h``, ``h = 2/s``). The diffusive
flux across an interior face is :math:`D(u_{nb} - u)/h`; across a wall it is exactly zero, so
:math:`\sum_{cells} u` changes only through the reaction term (pure diffusion conserves it to round-off). Time:
classical explicit RK4; each save interval is split into equal steps no larger than half the RK4 stability limit of
the diffusion (:math:`2.78 h^2 / (8 D_{max})`) and of the reaction (:math:`2.78/(3\max u^2 + 2)`, re-evaluated each
interval), or than ``max_dt``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from sciml.datasets.records import FieldSample
from sciml.errors import ConfigError, NonFiniteError, ShapeError

from . import GENERATORS
from ._common import build_spec, jsonable, positive, sample_rng, split_sizes

__all__ = ["neumann_laplacian", "fitzhugh_nagumo_reaction", "solve_diffusion_reaction", "cell_centres",
           "generate_diffusion_reaction"]

Source = Callable[[float], tuple[np.ndarray, np.ndarray]]


def cell_centres(s: int, lower: float = -1.0, upper: float = 1.0) -> np.ndarray:
    """Cell centres of ``s`` equal cells on ``[lower, upper]``."""
    h = (upper - lower) / s
    return lower + (np.arange(s) + 0.5) * h


def neumann_laplacian(u: np.ndarray, h: float) -> np.ndarray:
    """Finite-volume Laplacian of cell averages ``u [..., s, s]`` with zero flux through the walls."""
    p = np.pad(u, [(0, 0)] * (u.ndim - 2) + [(1, 1), (1, 1)], mode="edge")  # ghost = neighbour: zero wall flux
    return (p[..., 2:, 1:-1] + p[..., :-2, 1:-1] + p[..., 1:-1, 2:] + p[..., 1:-1, :-2] - 4.0 * u) / (h * h)


def fitzhugh_nagumo_reaction(u: np.ndarray, v: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """PDEBench's reaction terms :math:`(u - u^3 - k - v,\\ u - v)`."""
    return u - u ** 3 - k - v, u - v


def solve_diffusion_reaction(u0: np.ndarray, v0: np.ndarray, times: np.ndarray, *, du: float = 1e-3,
                             dv: float = 5e-3, k: float = 5e-3, reaction: bool = True,
                             source: Source | None = None, length: float = 2.0,
                             max_dt: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integrate from ``(u0, v0)`` (cell averages ``[s, s]``) and return ``u, v`` at ``times`` (``[T, s, s]`` each).

    Args:
        u0, v0: initial cell values on the square of side ``length``.
        times: increasing output times, ``times[0]`` the initial time.
        du, dv, k: diffusion coefficients and reaction constant.
        reaction: include the FitzHugh–Nagumo terms (``False``: pure diffusion).
        source: optional ``source(t) -> (s_u, s_v)`` added to the right-hand sides (manufactured solutions).
        length: side of the square domain (the default ``2`` is ``[-1, 1]^2``).
        max_dt: upper bound on the step (default: only the stability bounds).
    """
    u = np.array(u0, dtype=np.float64)
    v = np.array(v0, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] != u.shape[1] or v.shape != u.shape:
        raise ShapeError(f"u0, v0: expected two square [s, s] arrays of the same shape, got {u.shape}, {v.shape}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or np.any(np.diff(times) <= 0):
        raise ConfigError("times: expected a non-empty increasing 1D array")
    h = length / u.shape[0]

    def rhs(t: float, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fu = du * neumann_laplacian(u, h)
        fv = dv * neumann_laplacian(v, h)
        if reaction:
            ru, rv = fitzhugh_nagumo_reaction(u, v, k)
            fu, fv = fu + ru, fv + rv
        if source is not None:
            su, sv = source(t)
            fu, fv = fu + su, fv + sv
        return fu, fv

    diff_limit = 2.78 * h * h / (8.0 * max(du, dv, 1e-300))
    out_u, out_v = [u.copy()], [v.copy()]
    t = float(times[0])
    for t_next in times[1:]:
        limit = diff_limit
        if reaction:
            limit = min(limit, 2.78 / (3.0 * float(np.max(u * u)) + 2.0))
        dt_target = 0.5 * limit if max_dt is None else min(0.5 * limit, max_dt)
        n = max(1, math.ceil((t_next - t) / dt_target - 1e-9))
        dt = (t_next - t) / n
        for i in range(n):
            tc = t + i * dt
            k1u, k1v = rhs(tc, u, v)
            k2u, k2v = rhs(tc + 0.5 * dt, u + 0.5 * dt * k1u, v + 0.5 * dt * k1v)
            k3u, k3v = rhs(tc + 0.5 * dt, u + 0.5 * dt * k2u, v + 0.5 * dt * k2v)
            k4u, k4v = rhs(tc + dt, u + dt * k3u, v + dt * k3v)
            u = u + dt / 6.0 * (k1u + 2 * k2u + 2 * k3u + k4u)
            v = v + dt / 6.0 * (k1v + 2 * k2v + 2 * k3v + k4v)
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
            raise NonFiniteError(f"diffusion_reaction: the solution blew up (non-finite) before t={float(t_next):g}; "
                                 "lower max_dt")
        t = float(t_next)
        out_u.append(u.copy())
        out_v.append(v.copy())
    return np.stack(out_u), np.stack(out_v)


@GENERATORS.register("diffusion_reaction")
def generate_diffusion_reaction(*, num_train: int = 900, num_val: int = 0, num_test: int = 100, seed: int = 0,
                                resolution: int = 128, final_time: float = 5.0, num_frames: int = 101,
                                du: float = 1e-3, dv: float = 5e-3, k: float = 5e-3, max_dt: float | None = None,
                                shard: tuple[int, int] | None = None) -> Any:
    """PDEBench-style 2D diffusion–reaction trajectories: fields ``u`` and ``v``, each ``[T, s, s, 1]``.

    Args:
        num_train, num_val, num_test: trajectories per split (PDEBench: 1000 in all).
        seed: run seed; sample ``k`` of a split depends on ``(seed, split, k)`` only.
        resolution: cells per side ``s`` (cell centres are the saved grid ``x``, ``y``).
        final_time: end time (frames are equally spaced in ``[0, final_time]``).
        num_frames: saved frames ``T`` including ``t = 0``.
        du, dv, k: :math:`D_u`, :math:`D_v` and the reaction constant; stored per sample as params.
        max_dt: optional cap on the RK4 step.
        shard: ``(i, n)``: produce only the samples shard ``i`` of ``n`` owns.
    """
    positive("resolution", resolution, int)
    positive("final_time", final_time)
    positive("du", du)
    positive("dv", dv)
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 2:
        raise ConfigError(f"num_frames: expected an int >= 2, got {num_frames!r}")
    if max_dt is not None:
        positive("max_dt", max_dt)
    sizes = split_sizes(num_train, num_val, num_test)
    options = dict(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed, resolution=resolution,
                   final_time=final_time, num_frames=num_frames, du=du, dv=dv, k=k, max_dt=max_dt)
    times = np.linspace(0.0, final_time, num_frames)

    def make(split: str, idx: int) -> FieldSample:
        rng = sample_rng(seed, split, idx)
        u0 = rng.standard_normal((resolution, resolution))
        v0 = rng.standard_normal((resolution, resolution))
        try:
            u, v = solve_diffusion_reaction(u0, v0, times, du=du, dv=dv, k=k, max_dt=max_dt)
        except NonFiniteError as err:
            raise NonFiniteError(f"{split} sample {idx}: {err}") from None
        return FieldSample(fields={"u": u[..., None].astype(np.float32), "v": v[..., None].astype(np.float32)},
                           params={"du": float(du), "dv": float(dv), "k": float(k)})

    x = cell_centres(resolution)
    return build_spec(kind="fields", make=make, sizes=sizes, shard=shard,
                      source="generator:diffusion_reaction",
                      config={"generator": "diffusion_reaction", **jsonable(options)},
                      coords={"x": x, "y": x.copy(), "t": times})
