r"""Collocation samplers driven by a bounded normalising flow: DAS (add / replace) and AAS (adversarial).

Both follow the ``CollocationSampler`` protocol of :mod:`sciml.operators.pinn.sampling` (``setup``, ``batch``,
``update``, ``state_dict``, ``load_state_dict``) and are reached by name through ``make_sampler("das_g" | "das_r" |
"aas", ...)``. They only use ``problem.domain`` (``low``, ``high``, ``dim``, ``volume``, ``uniform``) and
``problem.residual(model, x) -> [n]``.

* :class:`DASSampler` -- Deep adaptive sampling (DAS-PINNs, Tang, Wan, Yang, JCP 476:111868, 2023). Stages: the PINN
  trains ``stage_steps`` steps on the current set; the flow is fitted to the residual-induced density
  :math:`\hat r \propto r^2` by importance-weighted cross-entropy with weights :math:`r^2/q` (:math:`q` the density
  each point was drawn from, clamped), then ``n_new`` points are drawn from the flow and *added* to the set (DAS-G,
  ``mode="add"``) or *replace* it (DAS-R, ``mode="replace"``).
* :class:`AASSampler` -- Adversarial adaptive sampling (Tang, Zhai, Wan, Yang, "Unify PINN and optimal transport
  for the approximation of PDEs", ICLR 2024), as reconstructed in ``docs/pinn_flow.md``: the PINN minimises and the
  flow maximises :math:`\log \mathbb E_{p_\alpha}[r^2] - \beta\,\mathbb E_{p_\alpha}\|\nabla_x \log p_\alpha\|^2`;
  every PINN step trains on a fresh batch drawn from :math:`p_\alpha`; the flow ascends by the score-function
  estimator with the batch mean of :math:`r^2` as baseline, with its own Adam optimiser.
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Any

import torch
from torch import Tensor

from sciml.errors import ConfigError, check_int
from sciml.operators.pinn.flow import BoundedFlow
from sciml.operators.pinn.sampling import evaluate_residual

__all__ = ["DASSampler", "AASSampler", "squared_residual", "uniform_ratio_weights", "SAMPLERS"]


def squared_residual(problem, model, x: Tensor, chunk: int = 4096) -> Tensor:
    """``[n]`` detached :math:`r(x)^2` (through :func:`~sciml.operators.pinn.sampling.evaluate_residual`: in
    chunks, the model's parameters frozen)."""
    r2 = evaluate_residual(problem, model, x, chunk=chunk).reshape(-1).pow(2).to(device=x.device, dtype=x.dtype)
    if r2.shape[0] != x.shape[0]:
        raise ConfigError(f"problem.residual returned {r2.shape[0]} values for {x.shape[0]} points")
    return r2


def _box(problem) -> tuple[Any, Any, int, float]:
    domain = problem.domain
    low = torch.as_tensor(domain.low, dtype=torch.get_default_dtype()).reshape(-1)
    high = torch.as_tensor(domain.high, dtype=torch.get_default_dtype()).reshape(-1)
    dim = int(domain.dim)
    if low.numel() == 1:
        low, high = low.expand(dim), high.expand(dim)
    return low, high, dim, float(torch.log(high - low).sum())


def _make_flow(problem, generator: torch.Generator, flow_kwargs: dict, like: Tensor) -> BoundedFlow:
    """A flow on the problem's box, initialised from a seed drawn from ``generator`` (reproducible without
    touching the global RNG)."""
    low, high, dim, _ = _box(problem)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        flow = BoundedFlow(dim, low, high, **flow_kwargs)
    return flow.to(dtype=like.dtype, device=like.device)


def uniform_ratio_weights(log_q: Tensor, log_volume: float) -> Tensor:
    """Importance weights :math:`(1/|\\Omega|)/q(x)` of points drawn from :math:`q`, from ``log_q`` (natural log of
    :math:`q` at the points) and the log-volume of the domain, scaled to mean 1 (so the weighted mean of r^2 estimates
    its uniform average over the domain); computed in log space, so a density of 1e-300 far from the mass does not
    overflow."""
    logw = -log_volume - log_q
    w = torch.exp(logw - logw.max())
    return w / w.mean()


class _FlowSamplerBase:
    """Shared plumbing: the problem, the generator, the flow and its optimiser, state round trip."""

    name = "flow"
    round_based = False

    def refresh(self, model) -> bool:
        """Per-step samplers (AAS) change their set in :meth:`update`; nothing to do at a round boundary."""
        return False

    def __init__(self, *, flow_lr: float, flow_kwargs: dict | None, residual_chunk: int) -> None:
        if not (isinstance(flow_lr, (int, float)) and flow_lr > 0):
            raise ConfigError(f"`flow_lr` must be a positive number, got {flow_lr!r}")
        check_int(residual_chunk, "residual_chunk", type(self).__name__)
        self.flow_lr = float(flow_lr)
        self.flow_kwargs = dict(flow_kwargs or {})
        self.residual_chunk = residual_chunk
        self.problem = None
        self.flow: BoundedFlow | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.generator: torch.Generator | None = None
        self.n_points = 0
        self.count = 0

    def _setup_common(self, problem, n_points: int, generator: torch.Generator | None) -> Tensor:
        check_int(n_points, "n_points", type(self).__name__)
        self.problem = problem
        self.n_points = n_points
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        _, _, _, self.log_volume = _box(problem)
        first = problem.domain.uniform(n_points, generator=self.generator)
        self.flow = _make_flow(problem, self.generator, self.flow_kwargs, first)
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=self.flow_lr)
        self.count = 0
        return first

    def _require_setup(self) -> None:
        if self.flow is None:
            raise ConfigError(f"{type(self).__name__}: call setup(problem, n_points, generator) first")

    def _common_state(self) -> dict:
        return {"flow": copy.deepcopy(self.flow.state_dict()), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "count": self.count, "generator": self.generator.get_state().clone()}

    def _load_common(self, state: dict) -> None:
        self._require_setup()
        self.flow.load_state_dict(state["flow"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.count = int(state["count"])
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"].clone())


# ---------------------------------------------------------------------------------------------------- DAS
class DASSampler(_FlowSamplerBase):
    r"""Deep adaptive sampling with a bounded flow: DAS-G (``mode="add"``) and DAS-R (``mode="replace"``).

    Stage 1 trains on ``n_points`` uniform points. After every ``stage_steps`` PINN steps (counted by
    :meth:`update` calls) the flow is fitted to :math:`r^2` by :meth:`BoundedFlow.fit_to_density` with weights
    :math:`r^2(x_i)/q(x_i)`, where :math:`q` is the density the point was drawn from (uniform for the first set,
    the flow of its stage afterwards) clamped like the DAS code (``p_prev`` in ``[1e-10, 148.41]``, here relative
    to the uniform density); then ``n_new`` points are drawn from the flow -- inside the domain by construction, no
    projection or redraw -- and added to or replace the set. The flow is kept (warm start) across stages unless
    ``reset_flow``.

    Args:
        mode (str): ``"add"`` (DAS-G) or ``"replace"`` (DAS-R). (default: :obj:`"replace"`)
        stage_steps (int): PINN steps per stage. (default: :obj:`500`)
        max_stages (int, optional): stop resampling after this many new sets (default: never stop).
        n_new (int, optional): points drawn per stage (default: ``n_points``).
        flow_steps (int): Adam steps of each flow fit (3000 in the DAS code). (default: :obj:`300`)
        flow_lr (float): the flow's learning rate (1e-4 in the DAS code, with 10x more steps). (default: :obj:`1e-3`)
        flow_batch (int, optional): minibatch of the flow fit, as the DAS code's; ``None``: the whole set.
            (default: :obj:`1000`)
        h1_weight (float): weight of the H1 penalty in the flow fit. (default: :obj:`0.0`)
        max_weight_ratio (float, optional): clip of the mean-scaled importance ratio. (default: :obj:`None`)
        importance_weights (bool): give :meth:`batch` the weights :math:`(1/|\Omega|)/q(x)` (mean 1), so the PINN
            loss estimates the uniform average of :math:`r^2` (``if_IS_residual`` in the DAS code).
            (default: :obj:`False`)
        reset_flow (bool): a fresh flow (and optimiser) at every stage. (default: :obj:`False`)
        flow_kwargs (dict, optional): arguments of :class:`BoundedFlow`.
        residual_chunk (int): points per residual evaluation. (default: :obj:`4096`)
    """

    def __init__(self, mode: str = "replace", *, stage_steps: int = 500, max_stages: int | None = None,
                 n_new: int | None = None, flow_steps: int = 300, flow_lr: float = 1e-3, flow_batch: int | None = 1000,
                 h1_weight: float = 0.0, max_weight_ratio: float | None = None, importance_weights: bool = False,
                 reset_flow: bool = False, flow_kwargs: dict | None = None, residual_chunk: int = 4096) -> None:
        super().__init__(flow_lr=flow_lr, flow_kwargs=flow_kwargs, residual_chunk=residual_chunk)
        if mode not in ("add", "replace"):
            raise ConfigError(f"`mode` must be 'add' (DAS-G) or 'replace' (DAS-R), got {mode!r}")
        check_int(stage_steps, "stage_steps", type(self).__name__)
        check_int(max_stages, "max_stages", type(self).__name__, allow_none=True)
        check_int(n_new, "n_new", type(self).__name__, allow_none=True)
        check_int(flow_batch, "flow_batch", type(self).__name__, allow_none=True)
        if not isinstance(flow_steps, int) or flow_steps < 0:
            raise ConfigError(f"`flow_steps` must be a non-negative int, got {flow_steps!r}")
        if not h1_weight >= 0.0:
            raise ConfigError(f"`h1_weight` must be >= 0, got {h1_weight!r}")
        self.mode = mode
        self.name = "das_g" if mode == "add" else "das_r"
        self.stage_steps = stage_steps
        self.max_stages = max_stages
        self.n_new = n_new
        self.flow_steps = flow_steps
        self.flow_batch = flow_batch
        self.h1_weight = float(h1_weight)
        self.max_weight_ratio = max_weight_ratio
        self.importance_weights = importance_weights
        self.reset_flow = reset_flow
        self.points: Tensor | None = None
        self.log_q: Tensor | None = None
        self.stages = 0
        self.history: list[dict] = []

    def setup(self, problem, n_points: int, generator: torch.Generator | None = None) -> None:
        self.points = self._setup_common(problem, n_points, generator)
        self.log_q = torch.full((n_points,), -self.log_volume, dtype=self.points.dtype, device=self.points.device)
        self.stages = 0
        self.history = []

    def batch(self) -> tuple[Tensor, Tensor | None]:
        self._require_setup()
        if not self.importance_weights:
            return self.points, None
        return self.points, uniform_ratio_weights(self.log_q, self.log_volume)

    round_based = True

    def update(self, step: int, model) -> bool:
        self._require_setup()
        self.count += 1
        if self.count % self.stage_steps != 0:
            return False
        return self.refresh(model)

    def refresh(self, model) -> bool:
        """One stage change now (a round boundary of the ``rounds`` schedule), unless ``max_stages`` are done."""
        self._require_setup()
        if self.max_stages is not None and self.stages >= self.max_stages:
            return False
        self.resample(model)
        return True

    def resample(self, model) -> None:
        """One DAS stage change: fit the flow to r^2 on the current set, draw the new points."""
        flow = self.flow
        r2 = squared_residual(self.problem, model, self.points, self.residual_chunk)
        lo, hi = flow.log_prob_bounds
        log_q = self.log_q.clamp(lo - self.log_volume, hi - self.log_volume)
        positive = r2 > 0
        if self.reset_flow:
            self.flow = flow = _make_flow(self.problem, self.generator, self.flow_kwargs, self.points)
            self.optimizer = torch.optim.Adam(flow.parameters(), lr=self.flow_lr)
        losses: list[float] = []
        if bool(positive.any()) and bool(torch.isfinite(r2).all()):
            logw = torch.where(positive, torch.log(r2.clamp_min(torch.finfo(r2.dtype).tiny)) - log_q,
                               torch.full_like(r2, -math.inf))
            w = torch.exp(logw - logw.max())
            losses = flow.fit_to_density(self.points, w, self.flow_steps, batch_size=self.flow_batch,
                                         h1_weight=self.h1_weight, max_weight_ratio=self.max_weight_ratio,
                                         optimizer=self.optimizer, generator=self.generator)
        n_new = self.n_new if self.n_new is not None else self.n_points
        with torch.no_grad():
            new = flow.sample(n_new, self.generator)
            new_log_q = flow.log_prob(new)
        if self.mode == "add":
            self.points = torch.cat([self.points, new])
            self.log_q = torch.cat([self.log_q, new_log_q])
        else:
            self.points, self.log_q = new, new_log_q
        self.stages += 1
        self.history.append({"step": self.count, "mean_r2": float(r2.mean()), "flow_loss": losses[-1] if losses
                             else None, "n_points": int(self.points.shape[0])})

    def state_dict(self) -> dict:
        self._require_setup()
        return {**self._common_state(), "points": self.points.clone(), "log_q": self.log_q.clone(),
                "stages": self.stages, "history": copy.deepcopy(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self._load_common(state)
        self.points = state["points"].clone()
        self.log_q = state["log_q"].clone()
        self.stages = int(state["stages"])
        self.history = copy.deepcopy(state.get("history", []))


# ---------------------------------------------------------------------------------------------------- AAS
class AASSampler(_FlowSamplerBase):
    r"""Adversarial adaptive sampling: a PINN--flow min--max with a Sobolev penalty on the flow.

    The PINN (outside, through the trainer) minimises the mean of :math:`r^2` over the batch this sampler hands
    out, a fresh draw from :math:`p_\alpha` at every step. After each PINN step (every ``every`` steps,
    ``flow_steps`` times) the flow ascends

    .. math::
        J(\alpha) = \log \mathbb E_{x\sim p_\alpha}[r^2(x)]
                   - \beta\,\mathbb E_{x\sim p_\alpha}\|\nabla_x\log p_\alpha(x)\|^2

    with the score-function gradient on fixed samples,
    :math:`\nabla_\alpha \log\mathbb E[r^2] \approx \frac1n\sum_i (r_i^2/\bar r^2 - 1)\nabla_\alpha\log p_\alpha(x_i)`:
    the baseline :math:`\bar r^2` (batch mean) both reduces the variance and makes the step independent of the
    residual's scale (``normalize=False`` uses :math:`r_i^2 - \bar r^2` instead, i.e. ascends
    :math:`\mathbb E[r^2]` itself). The DAS log-density cap (relative density :math:`e^5`,
    ``flow.log_prob_bounds[1]``) enters as a hinge ``cap_weight * mean(relu(log p + log|Omega| - cap))`` that
    pushes over-concentrated samples back (a hard clamp has zero gradient there, so a collapsed flow could never
    recover). The penalty is the flow's
    :meth:`~BoundedFlow.h1_penalty` on the same samples (the Fisher information of :math:`p_\alpha`, i.e.
    :math:`4\|\nabla\sqrt{p_\alpha}\|^2`), differentiated at the fixed samples.

    Args:
        beta (float): weight of the Sobolev penalty. (default: :obj:`1e-2`)
        flow_lr (float): learning rate of the flow's Adam optimiser. (default: :obj:`1e-3`)
        flow_steps (int): flow ascent steps after each PINN step that updates it (the update ratio). (default: 1)
        every (int): update the flow after every ``every``-th PINN step. (default: :obj:`1`)
        uniform_fraction (float): share of each batch drawn uniformly instead of from the flow. (default: :obj:`0.0`)
        warmup_steps (int): PINN steps on fresh uniform batches before the flow starts. (default: :obj:`0`)
        normalize (bool): divide the advantage by the baseline (ascend :math:`\log\mathbb E[r^2]`). (default: True)
        cap_weight (float): weight of the hinge on relative log-densities above the cap. (default: :obj:`1.0`)
        penalty_points (int, optional): evaluate the penalty on this many of the samples (its double backward is
            the flow step's main cost); ``None``: all. (default: :obj:`256`)
        importance_weights (bool): give :meth:`batch` weights :math:`(1/|\Omega|)/q(x)` (mean 1) for the batch
            density :math:`q` (flow/uniform mixture), so the PINN minimises the uniform average instead of
            :math:`\mathbb E_{p_\alpha}`. (default: :obj:`False`)
        flow_kwargs (dict, optional): arguments of :class:`BoundedFlow`.
        residual_chunk (int): points per residual evaluation. (default: :obj:`4096`)
    """

    name = "aas"

    def __init__(self, *, beta: float = 1e-2, flow_lr: float = 1e-3, flow_steps: int = 1, every: int = 1,
                 uniform_fraction: float = 0.0, warmup_steps: int = 0, normalize: bool = True,
                 cap_weight: float = 1.0, penalty_points: int | None = 256, importance_weights: bool = False,
                 flow_kwargs: dict | None = None, residual_chunk: int = 4096) -> None:
        super().__init__(flow_lr=flow_lr, flow_kwargs=flow_kwargs, residual_chunk=residual_chunk)
        if not (isinstance(beta, (int, float)) and beta >= 0):
            raise ConfigError(f"`beta` must be a number >= 0, got {beta!r}")
        check_int(flow_steps, "flow_steps", type(self).__name__)
        check_int(every, "every", type(self).__name__)
        if not (isinstance(uniform_fraction, (int, float)) and 0.0 <= uniform_fraction <= 1.0):
            raise ConfigError(f"`uniform_fraction` must lie in [0, 1], got {uniform_fraction!r}")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(f"`warmup_steps` must be a non-negative int, got {warmup_steps!r}")
        if not (isinstance(cap_weight, (int, float)) and cap_weight >= 0):
            raise ConfigError(f"`cap_weight` must be a number >= 0, got {cap_weight!r}")
        check_int(penalty_points, "penalty_points", type(self).__name__, allow_none=True)
        self.penalty_points = penalty_points
        self.beta = float(beta)
        self.cap_weight = float(cap_weight)
        self.flow_steps = flow_steps
        self.every = every
        self.uniform_fraction = float(uniform_fraction)
        self.warmup_steps = warmup_steps
        self.normalize = normalize
        self.importance_weights = importance_weights
        self.points: Tensor | None = None
        self.n_flow = 0
        self.last: dict = {}

    def setup(self, problem, n_points: int, generator: torch.Generator | None = None) -> None:
        first = self._setup_common(problem, n_points, generator)
        self.n_flow = n_points - int(round(self.uniform_fraction * n_points))
        self.last = {}
        if self.warmup_steps > 0:
            self.points = first
        else:
            self._draw()

    def _draw(self) -> None:
        """A fresh batch: ``n_flow`` points from the flow (first rows), the rest uniform."""
        parts = []
        if self.n_flow > 0:
            parts.append(self.flow.sample(self.n_flow, self.generator))
        if self.n_points - self.n_flow > 0:
            parts.append(self.problem.domain.uniform(self.n_points - self.n_flow, generator=self.generator))
        self.points = torch.cat(parts).to(dtype=self.flow.low.dtype)

    def batch(self) -> tuple[Tensor, Tensor | None]:
        self._require_setup()
        if not self.importance_weights:
            return self.points, None
        if self.count < self.warmup_steps:
            return self.points, None
        with torch.no_grad():
            log_p = self.flow.log_prob(self.points)
        eta = self.uniform_fraction
        if eta > 0.0:
            log_q = torch.logaddexp(log_p + math.log1p(-eta) if eta < 1.0 else torch.full_like(log_p, -math.inf),
                                    torch.full_like(log_p, math.log(eta) - self.log_volume))
        else:
            log_q = log_p
        return self.points, uniform_ratio_weights(log_q, self.log_volume)

    def flow_step(self, model, x: Tensor) -> dict:
        """One ascent step of the flow on the fixed samples ``x`` (drawn from the current flow)."""
        r2 = squared_residual(self.problem, model, x, self.residual_chunk)
        baseline = r2.mean()
        adv = r2 - baseline
        if self.normalize:
            adv = adv / baseline.clamp_min(torch.finfo(r2.dtype).tiny)
        log_p = self.flow.log_prob(x)
        objective = (adv * log_p).mean()
        if self.beta > 0:
            m = x.shape[0] if self.penalty_points is None else min(self.penalty_points, x.shape[0])
            penalty = self.flow.h1_penalty(x[:m])  # x is an i.i.d. sample, so its first m rows are one too
        else:
            penalty = log_p.new_zeros(())
        # the DAS upper clamp as a hinge: relative log-densities above the cap are pushed back down
        over = torch.relu(log_p + self.log_volume - self.flow.log_prob_bounds[1]).mean()
        loss = -objective + self.beta * penalty + self.cap_weight * over
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"mean_r2": float(baseline), "penalty": float(penalty.detach()), "over_cap": float(over.detach())}

    def update(self, step: int, model) -> bool:
        self._require_setup()
        self.count += 1
        if self.count < self.warmup_steps:
            self.points = self.problem.domain.uniform(self.n_points, generator=self.generator)
            return True
        if self.count > self.warmup_steps and self.count % self.every == 0 and self.n_flow > 0:
            x = self.points[:self.n_flow]
            for k in range(self.flow_steps):
                if k > 0:
                    x = self.flow.sample(self.n_flow, self.generator)
                self.last = self.flow_step(model, x)
        self._draw()
        return True

    def state_dict(self) -> dict:
        self._require_setup()
        return {**self._common_state(), "points": self.points.clone(), "last": dict(self.last)}

    def load_state_dict(self, state: dict) -> None:
        self._load_common(state)
        self.points = state["points"].clone()
        self.last = dict(state.get("last", {}))


#: Factories that :func:`sciml.operators.pinn.sampling.make_sampler` picks up on first use of these names.
SAMPLERS = {"das_g": functools.partial(DASSampler, "add"), "das_r": functools.partial(DASSampler, "replace"),
            "aas": AASSampler}
