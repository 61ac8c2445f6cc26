r"""Collocation samplers for PINNs behind one interface: uniform (fixed and resampled), RAR-G, RAR-D and RAD
(Wu, Zhu, Tan, Kartha, Lu, *A comprehensive study of non-adaptive and residual-based adaptive sampling for
physics-informed neural networks*, CMAME 403:115671, 2023), and, from ``sciml.operators.pinn.flow_samplers``,
DAS-G, DAS-R and AAS.

The interface (the PINN task calls it; every sampler implements it):

.. code-block:: python

    sampler.setup(problem, n_points, generator)   # the initial set (the sampler keeps the generator)
    x, w = sampler.batch()                         # interior points of this step; per-point weights or None
    changed = sampler.update(step, model)          # after optimizer step ``step`` (1, 2, ...); may refresh/grow
                                                   # the set or train an auxiliary sampler; True if the set changed
    sampler.state_dict() / load_state_dict(state)  # checkpointed with the task

The residual loss of a step is ``mean(w * r(x)^2)`` (``w`` = None: ``mean(r^2)``), so a sampler returning importance
weights chooses their normalisation.

Registering a sampler from another module: decorate the class (or a factory ``**kwargs -> sampler``) with
``@register_sampler("name")``. :func:`make_sampler` imports ``sciml.operators.pinn.flow_samplers`` on first use of
``"das_g"``, ``"das_r"`` or ``"aas"``; that module registers them (or exposes a ``SAMPLERS`` dict of factories).

Density-based choices use :func:`weighted_sample_without_replacement`: successive sampling (each draw proportional to
the weights of the items not yet drawn, as ``numpy.random.choice(..., replace=False, p=...)`` in
``lu-group/pinn-sampling``), implemented by the exponential-keys method of Efraimidis and Spirakis (2006).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError, check_int

from .problems import PDEProblem

__all__ = ["CollocationSampler", "UniformSampler", "ResidualSampler", "RARGSampler", "RARDSampler", "RADSampler",
           "make_sampler", "register_sampler", "available_samplers", "weighted_sample_without_replacement",
           "rad_density", "evaluate_residual", "frozen_parameters", "SAMPLERS"]

SAMPLERS: dict[str, Callable[..., "CollocationSampler"]] = {}
_LAZY = {"das_g": "sciml.operators.pinn.flow_samplers", "das_r": "sciml.operators.pinn.flow_samplers",
         "aas": "sciml.operators.pinn.flow_samplers"}


def register_sampler(name: str) -> Callable[[Callable[..., "CollocationSampler"]], Callable[..., Any]]:
    """Class decorator: ``make_sampler(name, **kwargs)`` builds ``cls(**kwargs)``."""
    def deco(factory: Callable[..., "CollocationSampler"]) -> Callable[..., "CollocationSampler"]:
        SAMPLERS[name] = factory
        return factory
    return deco


def available_samplers() -> list[str]:
    """Registered names plus the lazily imported ones whose module is importable."""
    names = set(SAMPLERS)
    for name, module in _LAZY.items():
        if name not in names and importlib.util.find_spec(module) is not None:
            names.add(name)
    return sorted(names)


def make_sampler(name: str, **kwargs: Any) -> "CollocationSampler":
    """A sampler by name: ``"uniform"`` (fixed), ``"random_r"`` (uniform, resampled every ``period`` steps),
    ``"rar_g"``, ``"rar_d"``, ``"rad"``, and ``"das_g"``, ``"das_r"``, ``"aas"`` (normalising-flow samplers, from
    ``sciml.operators.pinn.flow_samplers``). ``kwargs`` go to the sampler's constructor.

    Raises:
        ConfigError: an unknown name, a flow sampler whose module is not available, or keyword arguments the
            sampler's constructor does not take (a ``TypeError`` raised inside the constructor propagates).
    """
    if name not in SAMPLERS and name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as err:
            raise ConfigError(f"sampler {name!r} needs {_LAZY[name]}, which failed to import: {err}") from err
        for key, factory in getattr(module, "SAMPLERS", {}).items():
            SAMPLERS.setdefault(key, factory)
        # a module that registers nothing: its DASSampler(mode) / AASSampler classes by convention
        das, aas = getattr(module, "DASSampler", None), getattr(module, "AASSampler", None)
        if das is not None:
            SAMPLERS.setdefault("das_g", functools.partial(das, "add"))
            SAMPLERS.setdefault("das_r", functools.partial(das, "replace"))
        if aas is not None:
            SAMPLERS.setdefault("aas", aas)
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; expected one of {sorted(set(SAMPLERS) | set(_LAZY))}")
    factory = SAMPLERS[name]
    accepted = _accepted_arguments(factory)
    if accepted is None:  # a factory taking any keywords: its TypeError is the best report there is
        try:
            return factory(**kwargs)
        except TypeError as err:
            raise ConfigError(f"sampler {name!r}: bad arguments {sorted(kwargs)} ({err})") from err
    # only arguments the constructor does not take are the caller's error; a TypeError raised inside is a bug
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"sampler {name!r}: bad arguments {unknown} (it takes {sorted(accepted)})")
    return factory(**kwargs)


def _accepted_arguments(factory: Callable[..., Any]) -> set[str] | None:
    """The keyword arguments ``factory`` takes: its signature's (``inspect`` handles classes and
    ``functools.partial``), followed up a class's ``__init__`` chain past ``**kwargs``; ``None`` where it takes
    any (or has no signature)."""
    def keywords(params: list[inspect.Parameter]) -> set[str]:
        return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return None
    names = keywords(params)
    target = factory.func if isinstance(factory, functools.partial) else factory
    inits = [c.__init__ for c in getattr(target, "__mro__", ())[1:] if "__init__" in vars(c) and c is not object]
    for init in inits:
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        try:
            params = list(inspect.signature(init).parameters.values())[1:]  # without self
        except (TypeError, ValueError):
            return None
        names |= keywords(params)
    return names if not any(p.kind is p.VAR_KEYWORD for p in params) else None


# ------------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters with ``requires_grad=False`` inside the block (restored after): derivatives w.r.t. the input only
    build a smaller graph."""
    params = [p for p in model.parameters() if p.requires_grad] if isinstance(model, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def evaluate_residual(problem: PDEProblem, model: nn.Module, x: Tensor, *, chunk: int = 8192) -> Tensor:
    """The residual ``(n,)`` at ``x`` without a graph to the parameters (detached), in chunks of ``chunk`` points,
    with the model's parameters frozen and the model in its current mode. For candidate pools."""
    out = []
    device = next(iter(model.parameters()), x).device if isinstance(model, nn.Module) else x.device
    with frozen_parameters(model):
        for i in range(0, len(x), chunk):
            out.append(problem.residual(model, x[i:i + chunk].to(device)).detach())
    return torch.cat(out) if out else x.new_zeros(0)


def rad_density(residual: Tensor, k: float, c: float) -> Tensor:
    r"""Unnormalised RAD/RAR-D density :math:`|r|^k / \mathrm{mean}(|r|^k) + c` (float64). ``k = 0`` gives a
    constant (uniform) density; an all-zero residual with ``k > 0`` gives ``c`` (or 1 if ``c == 0``)."""
    a = residual.detach().double().abs().pow(float(k))
    mean = a.mean()
    if not bool(mean > 0) or not bool(torch.isfinite(mean)):
        return torch.full_like(a, c if c > 0 else 1.0)
    return a / mean + float(c)


def weighted_sample_without_replacement(weights: Tensor, n: int, generator: torch.Generator | None = None
                                        ) -> Tensor:
    """``n`` distinct indices drawn by successive sampling without replacement: each draw picks item ``i`` with
    probability ``weights[i] / (sum of the weights not drawn yet)``. Exponential keys (Efraimidis–Spirakis): the
    ``n`` largest ``log(U_i) / w_i``.

    Raises:
        ConfigError: fewer than ``n`` positive weights, or negative/non-finite weights.
    """
    w = weights.detach().double().reshape(-1)
    n = int(n)
    if n < 0 or n > w.numel():
        raise ConfigError(f"weighted_sample_without_replacement: n={n} out of [0, {w.numel()}]")
    if bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
        raise ConfigError("weighted_sample_without_replacement: weights must be finite and >= 0")
    positive = int((w > 0).sum())
    if positive < n:
        raise ConfigError(f"weighted_sample_without_replacement: only {positive} positive weights for n={n}")
    u = torch.rand(w.numel(), generator=generator, dtype=torch.float64).clamp_min(1e-300)
    keys = torch.where(w > 0, torch.log(u) / w, torch.full_like(w, -float("inf")))
    return torch.topk(keys, n).indices


# ------------------------------------------------------------------------------------------------- samplers
class CollocationSampler:
    """Base class: a fixed point set drawn once by ``method``.

    Args:
        method (str): how the initial set is drawn: ``"uniform"``, ``"lhs"`` or ``"sobol"``.
            (default: ``"uniform"``)
    """

    name = "fixed"
    #: ``True`` for samplers that change their set in rounds (RAD, RAR, DAS): under the ``rounds`` schedule of
    #: :func:`~sciml.operators.pinn.train_pinn` they are refined by :meth:`refresh` at round boundaries only.
    #: ``False`` for per-step samplers (uniform, Random-R, AAS), which keep updating after every Adam step.
    round_based = False

    def __init__(self, *, method: str = "uniform") -> None:
        if method not in ("uniform", "lhs", "sobol"):
            raise ConfigError(f"{type(self).__name__}: method must be 'uniform', 'lhs' or 'sobol', got {method!r}")
        self.method = method
        self.problem: PDEProblem | None = None
        self.n_points = 0
        self.generator: torch.Generator | None = None
        self.points: Tensor | None = None
        self.refreshes = 0

    def setup(self, problem: PDEProblem, n_points: int, generator: torch.Generator) -> None:
        """Draw the initial ``n_points`` points and keep ``problem`` and ``generator``."""
        check_int(n_points, "n_points", type(self).__name__)
        self.problem, self.n_points, self.generator = problem, int(n_points), generator
        self.points = problem.domain.sample(self.initial_size(), self.method, generator)
        self.refreshes = 0

    def initial_size(self) -> int:
        return self.n_points

    def _require_setup(self) -> PDEProblem:
        if self.problem is None or self.points is None:
            raise ConfigError(f"{type(self).__name__}: call setup(problem, n_points, generator) first")
        return self.problem

    def batch(self) -> tuple[Tensor, Tensor | None]:
        """The current points ``(n, dim)`` and ``None`` (equal weights)."""
        self._require_setup()
        return self.points, None  # type: ignore[return-value]

    def update(self, step: int, model: nn.Module) -> bool:
        """Called after optimizer step ``step``; a fixed set never changes."""
        return False

    def refresh(self, model: nn.Module) -> bool:
        """Refine now, whatever the step (a round boundary of the ``rounds`` schedule); ``True`` if the set
        changed. A fixed set never changes."""
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"points": self.points, "refreshes": self.refreshes,
                "generator": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.points = state["points"]
        self.refreshes = int(state.get("refreshes", 0))
        if state.get("generator") is not None and self.generator is not None:
            self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@register_sampler("uniform")
class UniformSampler(CollocationSampler):
    """Uniform points, fixed (``period=None``) or redrawn every ``period`` steps ("Random-R" of Wu et al., who
    resample every 100 iterations).

    Args:
        period (int, optional): steps between redraws; ``None`` keeps the first set. (default: ``None``)
        method (str): ``"uniform"``, ``"lhs"`` or ``"sobol"`` (also for the redraws). (default: ``"uniform"``)
    """

    def __init__(self, *, period: int | None = None, method: str = "uniform") -> None:
        super().__init__(method=method)
        self.period = None if period is None else check_int(period, "period", "UniformSampler")
        self.name = "uniform" if period is None else "random_r"

    def update(self, step: int, model: nn.Module) -> bool:
        if self.period is None or step % self.period != 0:
            return False
        problem = self._require_setup()
        self.points = problem.domain.sample(self.n_points, self.method, self.generator)
        self.refreshes += 1
        return True


@register_sampler("random_r")
def _random_r(*, period: int = 100, method: str = "uniform") -> UniformSampler:
    return UniformSampler(period=period, method=method)


class ResidualSampler(CollocationSampler):
    """Base of the residual-based samplers: every ``period`` steps, evaluate :math:`|r|` on ``n_candidates`` fresh
    uniform points and call :meth:`refine`. Subclasses implement :meth:`refine`.

    Args:
        period (int): steps between refinements. (default: ``1000``, Wu et al.'s Adam iterations per round)
        n_candidates (int): size of the candidate pool. (default: ``100000``, as Wu et al.)
        max_refinements (int, optional): stop refining after this many rounds. (default: ``None``)
        chunk (int): candidates per residual evaluation. (default: ``8192``)
        method (str): the initial set's distribution. (default: ``"uniform"``)
    """

    def __init__(self, *, period: int = 1000, n_candidates: int = 100_000, max_refinements: int | None = None,
                 chunk: int = 8192, method: str = "uniform") -> None:
        super().__init__(method=method)
        owner = type(self).__name__
        self.period = check_int(period, "period", owner)
        self.n_candidates = check_int(n_candidates, "n_candidates", owner)
        self.max_refinements = None if max_refinements is None else \
            check_int(max_refinements, "max_refinements", owner, minimum=0)
        self.chunk = check_int(chunk, "chunk", owner)

    def candidates(self, model: nn.Module) -> tuple[Tensor, Tensor]:
        """A fresh uniform pool and its residuals ``(points (m, dim), r (m,))``."""
        problem = self._require_setup()
        pool = problem.domain.uniform(self.n_candidates, self.generator)
        return pool, evaluate_residual(problem, model, pool, chunk=self.chunk).to(pool.device)

    round_based = True

    def update(self, step: int, model: nn.Module) -> bool:
        if step % self.period != 0:
            return False
        return self.refresh(model)

    def refresh(self, model: nn.Module) -> bool:
        """One refinement now (fresh candidates, :meth:`refine`), unless ``max_refinements`` are done."""
        self._require_setup()
        if self.max_refinements is not None and self.refreshes >= self.max_refinements:
            return False
        pool, r = self.candidates(model)
        self.points = self.refine(pool, r)
        self.refreshes += 1
        return True

    def refine(self, pool: Tensor, residual: Tensor) -> Tensor:
        """The new point set from the candidate ``pool`` and its ``residual``."""
        raise NotImplementedError


@register_sampler("rad")
class RADSampler(ResidualSampler):
    r"""Residual-based adaptive distribution (RAD, Wu et al. 2023): every ``period`` steps the whole set is
    **replaced** by ``n_points`` candidates drawn without replacement with
    :math:`p(x) \propto |r(x)|^k/\mathrm{mean}|r|^k + c`.

    Args:
        k (float): exponent. (default: ``1``, the default of Wu et al.'s RAD scripts)
        c (float): uniform floor. (default: ``1``)
        **kwargs: :class:`ResidualSampler` arguments (``period``, ``n_candidates``, ...).
    """

    name = "rad"

    def __init__(self, *, k: float = 1.0, c: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if k < 0 or c < 0:
            raise ConfigError(f"RADSampler: k and c must be >= 0, got k={k}, c={c}")
        self.k, self.c = float(k), float(c)
        if self.n_candidates < 1:
            raise ConfigError("RADSampler: n_candidates must be >= 1")

    def setup(self, problem: PDEProblem, n_points: int, generator: torch.Generator) -> None:
        if self.n_candidates < n_points:
            raise ConfigError(f"RADSampler: n_candidates={self.n_candidates} < n_points={n_points}")
        super().setup(problem, n_points, generator)

    def refine(self, pool: Tensor, residual: Tensor) -> Tensor:
        p = rad_density(residual, self.k, self.c)
        return pool[weighted_sample_without_replacement(p, self.n_points, self.generator)]


class _Refinement(ResidualSampler):
    """RAR: start from ``initial_fraction * n_points`` points and add ``n_add`` per round until the set holds
    ``n_points`` (Wu et al.: N/2 initial points, N/200 added per round for 100 rounds)."""

    def __init__(self, *, n_add: int | None = None, initial_fraction: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 < initial_fraction <= 1:
            raise ConfigError(f"{type(self).__name__}: initial_fraction must be in (0, 1], got {initial_fraction}")
        self.n_add_arg = None if n_add is None else check_int(n_add, "n_add", type(self).__name__)
        self.initial_fraction = float(initial_fraction)
        self.n_add = 0

    def initial_size(self) -> int:
        return max(1, int(round(self.n_points * self.initial_fraction)))

    def setup(self, problem: PDEProblem, n_points: int, generator: torch.Generator) -> None:
        super().setup(problem, n_points, generator)
        grow = self.n_points - len(self.points)  # type: ignore[arg-type]
        rounds = self.max_refinements or 100
        self.n_add = self.n_add_arg if self.n_add_arg is not None else max(1, -(-grow // rounds))

    def refresh(self, model: nn.Module) -> bool:
        if len(self.points) >= self.n_points:  # type: ignore[arg-type]
            return False  # grown to n_points
        return super().refresh(model)

    def refine(self, pool: Tensor, residual: Tensor) -> Tensor:
        n = min(self.n_add, self.n_points - len(self.points))  # type: ignore[arg-type]
        new = pool[self.choose(residual, n)]
        return torch.cat([self.points, new.to(self.points)])  # type: ignore[list-item]

    def choose(self, residual: Tensor, n: int) -> Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "n_add": self.n_add}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.n_add = int(state.get("n_add", self.n_add))


@register_sampler("rar_g")
class RARGSampler(_Refinement):
    """Greedy residual-based adaptive refinement (RAR-G; Lu et al., SIAM Review 2021; Wu et al. 2023): every
    ``period`` steps **add** the ``n_add`` candidates with the largest :math:`|r|`.

    Args:
        n_add (int, optional): points added per round. (default: enough to grow from
            ``initial_fraction * n_points`` to ``n_points`` in ``max_refinements`` (or 100) rounds)
        initial_fraction (float): fraction of ``n_points`` in the initial set. (default: ``0.5``)
        **kwargs: :class:`ResidualSampler` arguments.
    """

    name = "rar_g"

    def choose(self, residual: Tensor, n: int) -> Tensor:
        return torch.topk(residual.detach().abs(), n).indices


@register_sampler("rar_d")
class RARDSampler(_Refinement):
    r"""Residual-based adaptive refinement with distribution (RAR-D, Wu et al. 2023): every ``period`` steps
    **add** ``n_add`` candidates drawn without replacement from :math:`p \propto |r|^k/\mathrm{mean}|r|^k + c`.

    Args:
        k (float): exponent. (default: ``2``)
        c (float): uniform floor. (default: ``0``)
        n_add, initial_fraction, **kwargs: as :class:`RARGSampler`.
    """

    name = "rar_d"

    def __init__(self, *, k: float = 2.0, c: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if k < 0 or c < 0:
            raise ConfigError(f"RARDSampler: k and c must be >= 0, got k={k}, c={c}")
        self.k, self.c = float(k), float(c)

    def choose(self, residual: Tensor, n: int) -> Tensor:
        p = rad_density(residual, self.k, self.c)
        if int((p > 0).sum()) < n:  # c = 0 and (almost) all residuals exactly zero: fall back to uniform
            p = torch.ones_like(p)
        return weighted_sample_without_replacement(p, n, self.generator)
