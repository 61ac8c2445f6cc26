"""Butcher tableaus of the explicit embedded Runge–Kutta pairs used by :mod:`sciml.operators.ode`.

Every tableau carries the propagated weights ``b`` (the higher-order solution is the one that advances the state,
"local extrapolation"), the error weights ``b_error = b - b_hat`` (``dt * sum_i b_error[i] k_i`` estimates the local
error of the lower-order embedded solution), a dense-output polynomial per stage, and the pair of stages used for
the free stiffness estimate.

* **Tsit5**: Ch. Tsitouras, "Runge–Kutta pairs of order 5(4) satisfying only the first column simplifying
  assumption", Computers & Mathematics with Applications 62(2), 2011. Coefficients as tabulated in the paper and
  in OrdinaryDiffEq/diffrax; dense output is the paper's free 4th-order interpolant.
* **Dopri5**: J. R. Dormand and P. J. Prince, "A family of embedded Runge–Kutta formulae", J. Comput. Appl. Math.
  6(1), 1980, with Hairer's embedded 4th-order weights (DOPRI5 code) and its 4th-order continuous extension
  (Hairer, Nørsett, Wanner, "Solving ODEs I", II.6).
* **Bosh3**: P. Bogacki and L. F. Shampine, "A 3(2) pair of Runge–Kutta formulas", Appl. Math. Lett. 2(4), 1989;
  dense output by cubic Hermite interpolation (3rd order, uses the FSAL derivative).

The empirical convergence orders of all three (solution, error estimate and dense output) are checked in
``tests/operators/test_ode_solvers.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.polynomial import polynomial as P

from sciml.errors import ConfigError

__all__ = ["ButcherTableau", "TSIT5", "DOPRI5", "BOSH3", "TABLEAUS", "get_tableau", "stability_region_size"]


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    r"""An explicit embedded Runge–Kutta pair.

    Args:
        name (str): short name (``"tsit5"``).
        c (np.ndarray): nodes, shape ``[s]``.
        a (np.ndarray): strictly lower-triangular stage matrix, shape ``[s, s]``.
        b (np.ndarray): weights of the propagated (order ``order``) solution, shape ``[s]``.
        b_error (np.ndarray): ``b - b_hat`` where ``b_hat`` are the embedded weights, shape ``[s]``.
        order (int): order of the propagated solution.
        error_order (int): order of the embedded solution.
        dense (np.ndarray): ``[s, P]``: :math:`b_i(\theta) = \sum_{p=1}^{P} \mathrm{dense}[i, p-1]\,\theta^p`;
            the dense output is :math:`y(t_n + \theta h) = y_n + h \sum_i b_i(\theta) k_i`.
        dense_order (int): order of the dense output.
        stiffness_stages (tuple[int, int]): zero-based stages ``(i, j)`` for the stiffness estimate
            :math:`\|k_j - k_i\| / \|g_j - g_i\|` (``g`` = stage inputs).
        fsal (bool): the last stage is ``f(t + h, y_{n+1})`` (first same as last). (default: ``True``)
    """

    name: str
    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    b_error: np.ndarray
    order: int
    error_order: int
    dense: np.ndarray
    dense_order: int
    stiffness_stages: tuple[int, int]
    fsal: bool = True

    @property
    def stages(self) -> int:
        return len(self.c)

    @cached_property
    def stage_rows(self) -> list[list[tuple[int, float]]]:
        """For each stage ``i``: the nonzero ``(j, a_ij)`` (python floats, for cheap ``torch.add(alpha=)``)."""
        return [[(j, float(self.a[i, j])) for j in range(i) if self.a[i, j] != 0.0] for i in range(self.stages)]

    @cached_property
    def b_terms(self) -> list[tuple[int, float]]:
        return [(i, float(v)) for i, v in enumerate(self.b) if v != 0.0]

    @cached_property
    def error_terms(self) -> list[tuple[int, float]]:
        return [(i, float(v)) for i, v in enumerate(self.b_error) if v != 0.0]

    def dense_weights(self, theta: float) -> np.ndarray:
        r""":math:`b_i(\theta)` for all stages, shape ``[s]``."""
        powers = theta ** np.arange(1, self.dense.shape[1] + 1)
        return self.dense @ powers

    @cached_property
    def stability_size(self) -> float:
        """Length of the real negative interval inside the stability region (see :func:`stability_region_size`)."""
        return stability_region_size(self)


def _lower(rows: list[list[float]]) -> np.ndarray:
    s = len(rows)
    a = np.zeros((s, s))
    for i, row in enumerate(rows):
        a[i, :len(row)] = row
    return a


def _poly_matrix(polys: list[np.ndarray]) -> np.ndarray:
    """Stack polynomials (numpy ascending coefficients, constant term 0) into the ``dense`` layout."""
    degree = max(len(p) for p in polys) - 1
    out = np.zeros((len(polys), degree))
    for i, p in enumerate(polys):
        p = np.trim_zeros(np.asarray(p, dtype=float), "b")
        if len(p) == 0:  # a stage that the dense output does not use
            continue
        if len(p) and abs(p[0]) > 1e-14:
            raise ValueError(f"dense polynomial {i} has a constant term {p[0]}")
        out[i, :len(p) - 1] = p[1:]
    return out


# ------------------------------------------------------------------------------------------------------ Tsit5
def _tsit5() -> ButcherTableau:
    c = np.array([0.0, 0.161, 0.327, 0.9, 0.9800255409045096857298102862870245954942, 1.0, 1.0])
    b = np.array([0.09646076681806522951816731316512876333711995238157997181903319145764851595,
                  0.01,
                  0.4798896504144995747752495322905965199130404621990332488332634944254542060,
                  1.379008574103741893192274821856872770756462643091360525934940067397245698,
                  -3.290069515436080679901047585711363850115683290894936158531296799594813811,
                  2.324710524099773982415355918398765796109060233222962411944060046314465391,
                  0.0])
    b_hat = np.array([0.09468075576583945807478876255758922856117527357724631226139574065785592789,
                      0.009183565540343253096776363936645313759813746240984095238905939532922955247,
                      0.4877705284247615707855642599631228241516691959761363774365216240304071652,
                      1.234297566930478985655109673884237654035539930748192848315425833500484878,
                      -2.707712349983525454881109975059321670689605166938197378763992255714444407,
                      1.866628418170587035753719399566211498666255505244122593996591602841258329,
                      1.0 / 66.0])
    a = _lower([
        [],
        [0.161],
        [-0.008480655492356988544426874250230774675121177393430391537369234245294192976,
         0.3354806554923569885444268742502307746751211773934303915373692342452941930],
        [2.897153057105493432130432594192938764924887287701866490314866693455023795,
         -6.359448489975074843148159912383825625952700647415626703305928850207288721,
         4.362295432869581411017727318190886861027813359713760212991062156752264926],
        [5.325864828439256604428877920840511317836476253097040101202360397727981649,
         -11.74888356406282787774717033978577296188744178259862899288666928009020616,
         7.495539342889836208304604784564358155658679161518186721010132816213648793,
         -0.09249506636175524925650207933207191611349983406029535244034750452930469056],
        [5.861455442946420028659251486982647890394337666164814434818157239052507340,
         -12.92096931784710929170611868178335939541780751955743459166312250439928519,
         8.159367898576158643180400794539253485181918321135053305748355423955009223,
         -0.07158497328140099722453054252582973869127213147363544882721139659546372402,
         -0.02826905039406838290900305721271224146717633626879770007617876201276764571],
        list(b[:6]),
    ])
    # Tsitouras' free interpolant, b_i(theta) given in factored form (roots and leading factor per stage)
    t = np.array([0.0, 1.0])  # the polynomial "theta"

    def poly(lead: float, *factors: np.ndarray) -> np.ndarray:
        out = np.array([lead])
        for f in factors:
            out = P.polymul(out, f)
        return out

    tt = P.polymul(t, t)
    dense = _poly_matrix([
        poly(-1.0530884977290216, t, [-1.3299890189751412, 1.0], [0.7139816917074209, -1.4364028541716351, 1.0]),
        poly(0.1017, tt, [1.2949852507374631, -2.1966568338249754, 1.0]),
        poly(2.490627285651252793, tt, [1.57803468208092486, -2.38535645472061657, 1.0]),
        poly(-16.54810288924490272, tt, [-1.21712927295533244, 1.0], [-0.61620406037800089, 1.0]),
        poly(47.37952196281928122, tt, [-1.203071208372362603, 1.0], [-0.658047292653547382, 1.0]),
        poly(-34.87065786149660974, tt, [-1.2, 1.0], [-2.0 / 3.0, 1.0]),
        poly(2.5, tt, [-1.0, 1.0], [-0.6, 1.0]),
    ])
    return ButcherTableau("tsit5", c, a, b, b - b_hat, 5, 4, dense, 4, (5, 6))


# ----------------------------------------------------------------------------------------------------- Dopri5
def _hermite_like_dense(b: np.ndarray, d: np.ndarray) -> np.ndarray:
    r"""Hairer's DOPRI5 continuous extension written as stage polynomials:
    :math:`y(\theta) = y_0 + \theta r_2 + \theta(1-\theta) r_3 + \theta^2(1-\theta) r_4 + \theta^2(1-\theta)^2 r_5`
    with :math:`r_2 = h\sum b_i k_i`, :math:`r_3 = h k_1 - r_2`, :math:`r_4 = r_2 - h k_7 - r_3`,
    :math:`r_5 = h \sum d_i k_i`."""
    s = len(b)
    e1, e7 = np.eye(s)[0], np.eye(s)[s - 1]
    r2, r3 = b, e1 - b
    r4 = r2 - e7 - r3
    basis = [np.array([0.0, 1.0]), np.array([0.0, 1.0, -1.0]), np.array([0.0, 0.0, 1.0, -1.0]),
             np.array([0.0, 0.0, 1.0, -2.0, 1.0])]
    polys = []
    for i in range(s):
        acc = np.zeros(5)
        for coef, base in zip((r2[i], r3[i], r4[i], d[i]), basis):
            acc[:len(base)] += coef * base
        polys.append(acc)
    return _poly_matrix(polys)


def _dopri5() -> ButcherTableau:
    c = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
    b = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
    b_hat = np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])
    a = _lower([
        [],
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
        list(b[:6]),
    ])
    d = np.array([-12715105075 / 11282082432, 0.0, 87487479700 / 32700410799, -10690763975 / 1880347072,
                  701980252875 / 199316789632, -1453857185 / 822651844, 69997945 / 29380423])
    return ButcherTableau("dopri5", c, a, b, b - b_hat, 5, 4, _hermite_like_dense(b, d), 4, (5, 6))


# ------------------------------------------------------------------------------------------------------ Bosh3
def _bosh3() -> ButcherTableau:
    c = np.array([0.0, 1 / 2, 3 / 4, 1.0])
    b = np.array([2 / 9, 1 / 3, 4 / 9, 0.0])
    b_hat = np.array([7 / 24, 1 / 4, 1 / 3, 1 / 8])
    a = _lower([[], [1 / 2], [0.0, 3 / 4], list(b[:3])])
    # cubic Hermite through (y0, h f0) and (y1, h f1): h01 * (y1 - y0) + h10 * h k1 + h11 * h k4
    h01 = np.array([0.0, 0.0, 3.0, -2.0])
    h10 = np.array([0.0, 1.0, -2.0, 1.0])
    h11 = np.array([0.0, 0.0, -1.0, 1.0])
    polys = [b[i] * h01 + (h10 if i == 0 else 0.0) + (h11 if i == 3 else 0.0) for i in range(4)]
    # stages 3 (c=3/4) and 4 (c=1) are the two last stage evaluations; the estimate ignores the time offset
    return ButcherTableau("bosh3", c, a, b, b - b_hat, 3, 2, _poly_matrix(polys), 3, (2, 3))


TSIT5 = _tsit5()
DOPRI5 = _dopri5()
BOSH3 = _bosh3()
TABLEAUS: dict[str, ButcherTableau] = {"tsit5": TSIT5, "dopri5": DOPRI5, "bosh3": BOSH3}


def get_tableau(method: str | ButcherTableau) -> ButcherTableau:
    """The tableau named ``method`` (``"tsit5"``, ``"dopri5"``, ``"bosh3"``), or ``method`` itself."""
    if isinstance(method, ButcherTableau):
        return method
    key = str(method).lower()
    if key not in TABLEAUS:
        raise ConfigError(f"method: unknown Runge–Kutta method {method!r}; expected one of {sorted(TABLEAUS)}")
    return TABLEAUS[key]


def stability_region_size(tableau: ButcherTableau) -> float:
    r"""Largest :math:`x` such that :math:`|R(-y)| \le 1` for all :math:`y \in [0, x]`, where
    :math:`R(z) = 1 + z\,b^\top (I - zA)^{-1}\mathbf{1}` is the stability polynomial of the propagated solution.
    The stiffness estimate of a step is divided by it (OrdinaryDiffEq's ``alg_stability_size``)."""
    s = tableau.stages
    coeffs = [1.0]
    v = np.ones(s)
    for _ in range(s):  # R(z) = 1 + sum_k z^k b^T A^{k-1} 1 (explicit: A nilpotent)
        coeffs.append(float(tableau.b @ v))
        v = tableau.a @ v
    poly = np.polynomial.Polynomial(coeffs)

    def inside(y: float) -> bool:
        return abs(poly(-y)) <= 1.0

    grid = np.linspace(1e-6, 20.0, 200001)
    values = np.abs(poly(-grid))
    outside = np.nonzero(values > 1.0)[0]
    if not len(outside):
        return float(grid[-1])
    lo, hi = float(grid[outside[0] - 1]), float(grid[outside[0]])
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if inside(mid) else (lo, mid)
    return lo
