r"""PINN solution networks and training through :class:`sciml.train.Trainer`: Adam, then L-BFGS.

* :class:`MLP`: a fully connected tanh network ``dim -> [width] * depth -> 1`` with Glorot-normal weights and zero
  biases (DeepXDE's ``FNN(..., "tanh", "Glorot normal")``, Wu et al.'s nets).
* :class:`PINNTask`: a :class:`~sciml.train.Task` whose "batch" is ignored: each step takes its interior points
  from a :class:`~sciml.operators.pinn.sampling.CollocationSampler`; the loss is
  ``mean(w r^2) + boundary_loss``. The sampler's ``update(step, model)`` runs at the start of the next step (after
  the optimizer step ``step`` of the previous one), so the sampler state stored in a checkpoint is consistent with
  the weights stored beside it. Validation reports the relative :math:`L^2` error against the problem's reference.
* :class:`ClosureLBFGS`: ``torch.optim.LBFGS`` whose ``step()`` without a closure asks the task for one. The
  Trainer calls ``optimizer.step()`` without a closure after its own forward/backward pass, so the closure returns
  that already computed loss (the gradients are in place) on its first call and recomputes loss and gradients on
  the further calls the line search makes, on the same points.
* :func:`train_pinn`: the two phases (Adam ``adam_steps``, then L-BFGS ``lbfgs_steps`` outer steps of
  ``lbfgs_iterations`` inner iterations on the final point set) as two Trainer runs, with wall time and the error.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from sciml.errors import ConfigError
from sciml.train import Task, Trainer, unwrap

from .problems import PDEProblem
from .sampling import CollocationSampler, make_sampler

__all__ = ["MLP", "PINNTask", "ClosureLBFGS", "train_pinn", "LBFGS_POINTS"]


class MLP(nn.Module):
    r"""Fully connected network :math:`\mathbb R^{d}\to\mathbb R^{out}` with ``depth`` hidden layers of ``width``
    and ``activation`` (tanh) between them, Glorot-normal weights and zero biases.

    Args:
        in_features (int): input dimension ``d``.
        width (int): hidden width. (default: ``64``)
        depth (int): hidden layers. (default: ``3``)
        out_features (int): outputs. (default: ``1``)
        activation (str): ``"tanh"``, ``"sin"``, ``"gelu"`` or ``"softplus"``. (default: ``"tanh"``)

    Shapes:
        ``(n, d) -> (n, out_features)``.
    """

    _ACTS: dict[str, Callable[[], nn.Module]] = {"tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}

    def __init__(self, in_features: int, width: int = 64, depth: int = 3, out_features: int = 1, *,
                 activation: str = "tanh") -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("width", width), ("depth", depth),
                            ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"MLP: {name} must be a positive integer, got {value!r}")
        if activation not in (*self._ACTS, "sin"):
            raise ConfigError(f"MLP: activation must be one of {sorted((*self._ACTS, 'sin'))}, got {activation!r}")
        sizes = [in_features] + [width] * depth + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.activation = activation
        self.act = _Sin() if activation == "sin" else self._ACTS[activation]()
        for lin in self.layers:
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        for lin in self.layers[:-1]:
            x = self.act(lin(x))
        return self.layers[-1](x)


class _Sin(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


class PINNTask(Task):
    """Physics-informed loss on points from a sampler; validation = relative :math:`L^2` error.

    ``training_step`` returns ``loss = mean(w r^2) + boundary_loss`` with the parts ``residual_loss`` and
    ``boundary_loss`` and ``num_points``. ``validation_step`` returns ``rel_l2`` (and ``loss`` = ``rel_l2``).
    The batch the Trainer passes is ignored (train on ``[0]``, one step per epoch).

    Args:
        problem (PDEProblem): the PDE.
        sampler (CollocationSampler): where the residual is evaluated; set up by the task when it is not yet
            (``n_points`` points, generator seeded by ``seed``).
        n_points (int): collocation points. (default: ``2000``)
        seed (int): seed of the sampler's generator. (default: ``0``)
        update_sampler (bool): call ``sampler.update`` (off for a phase on a frozen set, e.g. L-BFGS).
            (default: ``True``)
    """

    def __init__(self, problem: PDEProblem, sampler: CollocationSampler, *, n_points: int = 2000, seed: int = 0,
                 update_sampler: bool = True) -> None:
        self.problem, self.sampler = problem, sampler
        if sampler.problem is None:
            sampler.setup(problem, n_points, torch.Generator().manual_seed(int(seed)))
        self.update_sampler = update_sampler
        #: a fixed point set that replaces the sampler's (no sampler update) while set, e.g. the uniform set of
        #: an L-BFGS phase after a per-step sampler (``train_pinn(lbfgs_points="uniform")``)
        self.fixed_points: Tensor | None = None
        self.steps_done = 0          # sampler steps whose sampler update is done
        self.pending_step = 0        # optimizer steps so far (all phases)
        self.sampler_step = 0        # optimizer steps taken with the sampler updating (its update runs at the start
        #                              of the next such step)
        self.sampler_changes = 0
        self.sampler_seconds = 0.0
        self.history: list[tuple[int, float]] = []  # (training steps so far, rel_l2) of every validation
        self._closure_state: tuple[nn.Module, Tensor, Tensor | None, Tensor] | None = None

    def loss(self, model: nn.Module, x: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(total, residual part, boundary part)`` on points ``x``."""
        r2 = self.problem.residual(model, x).pow(2)
        res = r2.mean() if weights is None else (weights.to(r2) * r2).mean()
        bnd = self.problem.boundary_loss(model).to(res)
        return res + bnd, res, bnd

    def _points(self, model: nn.Module) -> tuple[Tensor, Tensor | None]:
        device = next(unwrap(model).parameters()).device
        if self.fixed_points is not None:
            return self.fixed_points.to(device), None
        if self.update_sampler and self.sampler_step > self.steps_done:
            t0 = time.perf_counter()
            if self.sampler.update(self.sampler_step, unwrap(model)):
                self.sampler_changes += 1
            self.sampler_seconds += time.perf_counter() - t0
            self.steps_done = self.sampler_step
        x, w = self.sampler.batch()
        return x.to(device), (None if w is None else w.to(device))

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        x, w = self._points(model)
        total, res, bnd = self.loss(model, x, w)
        self._closure_state = (model, x, w, total.detach())
        self.pending_step += 1
        if self.update_sampler and self.fixed_points is None:
            self.sampler_step += 1
        return {"loss": total, "residual_loss": res.detach(), "boundary_loss": bnd.detach(),
                "num_points": total.new_tensor(float(len(x))).detach()}

    def closure(self, optimizer: torch.optim.Optimizer) -> Callable[[], Tensor]:
        """An L-BFGS closure on this step's points; its first call returns the loss the Trainer has already
        differentiated (the gradients are in place)."""
        if self._closure_state is None:
            raise ConfigError("PINNTask.closure: no training step ran before the optimizer step")
        model, x, w, first = self._closure_state
        calls = [0]

        def closure() -> Tensor:
            calls[0] += 1
            if calls[0] == 1:
                return first
            optimizer.zero_grad(set_to_none=False)
            total, _, _ = self.loss(model, x, w)
            total.backward()
            return total.detach()

        return closure

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        err = self.problem.relative_l2(model)
        self.history.append((self.pending_step, err))
        return {"loss": err, "rel_l2": err}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict(), "steps_done": self.steps_done,
                "pending_step": self.pending_step, "sampler_step": self.sampler_step,
                "sampler_changes": self.sampler_changes,
                "sampler_seconds": self.sampler_seconds, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.steps_done = int(state.get("steps_done", 0))
        self.pending_step = int(state.get("pending_step", 0))
        self.sampler_step = int(state.get("sampler_step", self.pending_step))
        self.sampler_changes = int(state.get("sampler_changes", 0))
        self.sampler_seconds = float(state.get("sampler_seconds", 0.0))
        self.history = [(int(s), float(e)) for s, e in state.get("history", [])]


class ClosureLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` for the step-based Trainer: ``step()`` without a closure takes
    ``task.closure(self)`` (:meth:`PINNTask.closure`). Use with ``accumulate=1`` and no ``grad_clip`` (the
    line search re-evaluates the full loss itself).

    Args:
        params: parameters.
        task (PINNTask): provides the closure.
        **kwargs: ``torch.optim.LBFGS`` arguments (``lr``, ``max_iter``, ``history_size``, ``line_search_fn``...).
    """

    def __init__(self, params: Any, task: PINNTask, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._task = task

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        return super().step(closure if closure is not None else self._task.closure(self))

    @property
    def iterations(self) -> int:
        """L-BFGS iterations run so far: torch's own count, part of the optimizer state (so restored on resume).
        A step stops before ``max_iter`` iterations when its line searches use up ``max_eval`` evaluations."""
        first = self.param_groups[0]["params"][0]
        return int(self.state[first].get("n_iter", 0)) if first in self.state else 0


LBFGS_POINTS = ("sampler", "uniform", "none")


def train_pinn(problem: PDEProblem, sampler: CollocationSampler | str, *, model: nn.Module | None = None,
               n_points: int = 2000, adam_steps: int = 2000, lr: float = 1e-3, lbfgs_steps: int = 0,
               lbfgs_iterations: int = 20, lbfgs_history: int = 50, rounds: int = 0, round_adam: int = 1000,
               round_lbfgs: int = 1000, lbfgs_points: str = "sampler", width: int = 64, depth: int = 3,
               seed: int = 0, eval_every: int = 0, run_dir: str | None = None, progress: str = "none",
               log_every: int = 100, sampler_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    r"""Train a PINN: Adam for ``adam_steps`` steps, then L-BFGS for ``lbfgs_steps`` outer steps of at most
    ``lbfgs_iterations`` iterations each (strong-Wolfe line search), then (``rounds > 0``) Wu et al.'s rounds, all
    through :class:`~sciml.train.Trainer`.

    **Schedules.** With ``rounds=0`` (the default) the sampler updates after every Adam step (its own ``period``
    decides when it changes) and L-BFGS runs once at the end. With ``rounds=R > 0`` the schedule is Wu et al.'s
    (``lu-group/pinn-sampling``): the initial Adam + L-BFGS phases, then ``R`` rounds of (refine the set, Adam
    ``round_adam`` steps with a fresh Adam state -- DeepXDE's ``compile`` makes a new optimizer -- then L-BFGS for
    ``round_lbfgs`` iterations on the now fixed set). Round-based samplers (``sampler.round_based``: RAD, RAR-G,
    RAR-D, DAS) change their set only at the round boundaries (:meth:`~CollocationSampler.refresh`), never inside
    a phase; per-step samplers (uniform, Random-R, AAS) keep updating after every Adam step of every phase.

    **L-BFGS points** (``lbfgs_points``): ``"sampler"`` -- the sampler's current set (what Wu et al. do: a fixed set
    between resamplings); ``"uniform"`` -- a fixed set of ``n_points`` uniform points drawn once (seeded by
    ``seed``), for per-step samplers whose last batch is one concentrated draw (AAS); ``"none"`` -- no L-BFGS at
    all (the AAS and DAS papers train with Adam only).

    Args:
        problem (PDEProblem): the PDE.
        sampler (CollocationSampler or str): a sampler or a :func:`make_sampler` name (with ``sampler_kwargs``).
        model (nn.Module, optional): the network. (default: ``MLP(problem.dim, width, depth)``, seeded by ``seed``)
        n_points (int): collocation points. (default: ``2000``)
        adam_steps (int): Adam steps of the initial phase (``0``: none). (default: ``2000``)
        lr (float): Adam learning rate. (default: ``1e-3``)
        lbfgs_steps (int): L-BFGS outer steps of the initial phase (``0``: none). (default: ``0``)
        lbfgs_iterations (int): L-BFGS iterations per outer step. (default: ``20``)
        lbfgs_history (int): L-BFGS history size. (default: ``50``)
        rounds (int): rounds after the initial phase (``0``: none). (default: ``0``)
        round_adam (int): Adam steps per round. (default: ``1000``, Wu et al.)
        round_lbfgs (int): L-BFGS iterations per round, run as outer steps of ``lbfgs_iterations``.
            (default: ``1000``, Wu et al.)
        lbfgs_points (str): ``"sampler"``, ``"uniform"`` or ``"none"`` (above). (default: ``"sampler"``)
        width, depth (int): the default MLP. (default: ``64``, ``3``)
        seed (int): seeds the model, the sampler and the Trainer. (default: ``0``)
        eval_every (int): validate (relative :math:`L^2`) every this many steps, ``0``: only at the end of each
            phase. (default: ``0``)
        run_dir (str, optional): makes the run resumable. One Trainer folder per phase (``<run_dir>/adam``,
            ``<run_dir>/lbfgs``, ``<run_dir>/round<j>_adam``, ``<run_dir>/round<j>_lbfgs``: metrics and, while the
            phase runs, its checkpoints every 1000 Adam steps / ~1000 L-BFGS iterations) and ``progress.pt``, the
            whole state after the last finished phase. Calling again with the same arguments skips the finished
            phases and resumes the interrupted one from its last checkpoint, so hours-long schedules survive a
            stop; ``resumed_phases`` in the result says how many phases were loaded. The times (``wall_s``,
            ``cpu_s``, ``adam_s``, ...) then add up the finished phases of all processes and this process's own time
            (work lost to an interruption is not counted). (default: ``None``)
        progress (str): Trainer progress (``"none"``, ``"log"``, ``"bar"``, ``"auto"``). (default: ``"none"``)
        log_every (int): steps between progress/metrics records. (default: ``100``)
        sampler_kwargs (dict, optional): arguments of :func:`make_sampler` when ``sampler`` is a name.

    Returns:
        dict: ``rel_l2`` (final), ``rel_l2_adam`` (after the initial Adam phase), ``rel_l2_rounds`` (after each
        round), ``wall_s``, ``cpu_s`` (process CPU time), ``adam_s``, ``lbfgs_s`` (all phases), ``sampler_s`` (time inside ``sampler.update`` and
        ``refresh``), ``sampler_changes``, ``num_points`` (final set), ``adam_total`` (Adam steps),
        ``lbfgs_total`` (L-BFGS iterations torch ran: at most the outer steps x ``lbfgs_iterations`` asked for, fewer
        where a step's line searches used up its ``max_eval`` = 1.25 x ``lbfgs_iterations`` evaluations or the
        gradient vanished), ``resumed_phases``, ``history`` (``[(step, rel_l2)]`` of the validations), ``model``,
        ``sampler``, ``task``.
    """
    for name, value in (("adam_steps", adam_steps), ("lbfgs_steps", lbfgs_steps), ("eval_every", eval_every),
                        ("rounds", rounds), ("round_adam", round_adam), ("round_lbfgs", round_lbfgs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"train_pinn: {name} must be an integer >= 0, got {value!r}")
    if isinstance(lbfgs_iterations, bool) or not isinstance(lbfgs_iterations, int) or lbfgs_iterations < 1:
        raise ConfigError(f"train_pinn: lbfgs_iterations must be a positive integer, got {lbfgs_iterations!r}")
    if adam_steps + lbfgs_steps + rounds * (round_adam + round_lbfgs) == 0:
        raise ConfigError("train_pinn: nothing to train (adam_steps, lbfgs_steps and rounds are all 0)")
    if lbfgs_points not in LBFGS_POINTS:
        raise ConfigError(f"train_pinn: lbfgs_points must be one of {LBFGS_POINTS}, got {lbfgs_points!r}")
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, **(sampler_kwargs or {}))
    if model is None:
        torch.manual_seed(seed)
        model = MLP(problem.dim, width, depth).to(problem.domain.dtype)
    task = PINNTask(problem, sampler, n_points=n_points, seed=seed)
    uniform_set = None
    if lbfgs_points == "uniform":
        uniform_set = problem.domain.uniform(n_points, torch.Generator().manual_seed(int(seed) + 7919))
    round_based = bool(getattr(sampler, "round_based", False)) and rounds > 0
    t_start, c_start = time.perf_counter(), time.process_time()
    common = dict(train_data=[0], val_data=[0], batch_size=1, shuffle=False, val_unit="step", seed=seed,
                  progress=progress, log_every=log_every, device=str(next(model.parameters()).device),
                  distributed="off", handle_signals=False)
    totals: dict[str, Any] = {"adam": 0, "lbfgs": 0, "adam_s": 0.0, "lbfgs_s": 0.0}
    errs: dict[str, Any] = {"err": math.nan, "err_adam": math.nan, "rounds": []}
    # Resumption (run_dir): after every finished phase the whole state (model, task with its sampler, totals,
    # errors) goes to ``progress.pt`` and that phase's checkpoints are deleted; a new call skips the phases named
    # there and the interrupted phase's Trainer resumes from its own last checkpoint.
    progress_file = None if run_dir is None else Path(run_dir) / "progress.pt"
    done: list[str] = []
    resumed_phases = 0
    if progress_file is not None and progress_file.is_file():
        saved = torch.load(progress_file, map_location="cpu", weights_only=False)
        unwrap(model).load_state_dict(saved["model"])
        task.load_state_dict(saved["task"])
        torch.set_rng_state(saved["rng"])
        totals.update(saved["totals"])
        errs = saved["errs"]
        done = list(saved["done"])
        resumed_phases = len(done)
        t_start -= float(saved["wall_s"])
        c_start -= float(saved.get("cpu_s", 0.0))  # (progress files before cpu_s was saved: this process's only)

    def finish(phase: str) -> None:
        done.append(phase)
        if progress_file is None:
            return
        state = {"model": unwrap(model).state_dict(), "task": task.state_dict(), "rng": torch.get_rng_state(),
                 "totals": dict(totals), "errs": errs, "done": list(done), "wall_s": time.perf_counter() - t_start,
                 "cpu_s": time.process_time() - c_start}
        tmp = progress_file.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, progress_file)
        shutil.rmtree(Path(run_dir) / phase / "checkpoints", ignore_errors=True)  # type: ignore[arg-type]

    def run(phase: str, steps: int, optimizer: Any, lr_: float, checkpoint_every: int) -> tuple[float, float, Any]:
        every = eval_every if eval_every > 0 else steps
        trainer = Trainer(model, task, optimizer=optimizer, lr=lr_, max_steps=steps, val_every=every,
                          run_dir=None if run_dir is None else f"{run_dir}/{phase}",
                          checkpoint_every=0 if run_dir is None else checkpoint_every, **common)
        t0 = time.perf_counter()
        trainer.fit()
        if not task.history or task.history[-1][0] != task.pending_step:  # no validation at the last step
            was_training = model.training
            model.eval()
            task.validation_step(model, None)
            model.train(was_training)
        return time.perf_counter() - t0, task.history[-1][1], trainer

    def adam_phase(phase: str, steps: int) -> float:
        task.update_sampler = not round_based  # round-based samplers change only at round boundaries
        sec, err_, _ = run(phase, steps, "adam", lr, 1000)
        task.update_sampler = True
        totals["adam"] += steps
        totals["adam_s"] += sec
        return err_

    def lbfgs_phase(phase: str, iterations: int, outer: int | None = None) -> float | None:
        if lbfgs_points == "none" or iterations <= 0:
            return None
        per = min(lbfgs_iterations, iterations)
        outer = outer if outer is not None else -(-iterations // per)
        task.update_sampler = False
        task.fixed_points = uniform_set
        opt = (lambda params: ClosureLBFGS(params, task, lr=1.0, max_iter=per, history_size=lbfgs_history,
                                           line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=0.0))
        sec, err_, trainer = run(phase, outer, opt, 1.0, max(1, 1000 // per))  # a checkpoint every ~1000 its
        task.fixed_points = None
        task.update_sampler = True
        totals["lbfgs"] += trainer.optimizers[0].iterations  # up to outer * per: what the line searches allowed
        totals["lbfgs_s"] += sec
        return err_

    if adam_steps and "adam" not in done:
        errs["err_adam"] = errs["err"] = adam_phase("adam", adam_steps)
        finish("adam")
    if lbfgs_steps and "lbfgs" not in done:
        e = lbfgs_phase("lbfgs", lbfgs_steps * lbfgs_iterations, outer=lbfgs_steps)
        errs["err"] = errs["err"] if e is None else e
        finish("lbfgs")
    for j in range(1, rounds + 1):
        if f"round{j}_lbfgs" in done:
            continue
        if f"round{j}_adam" not in done:
            if round_based:
                t0 = time.perf_counter()
                if sampler.refresh(unwrap(model)):
                    task.sampler_changes += 1
                task.sampler_seconds += time.perf_counter() - t0
            if round_adam:
                errs["err"] = adam_phase(f"round{j}_adam", round_adam)
            finish(f"round{j}_adam")
        e = lbfgs_phase(f"round{j}_lbfgs", round_lbfgs)
        errs["err"] = errs["err"] if e is None else e
        errs["rounds"].append(errs["err"])
        finish(f"round{j}_lbfgs")
    err, err_adam, errs_rounds = errs["err"], errs["err_adam"], list(errs["rounds"])
    if math.isnan(err):  # nothing validated (e.g. only L-BFGS phases skipped): validate now
        model.eval()
        err = float(task.validation_step(model, None)["rel_l2"])
    x, _ = sampler.batch()
    return {"rel_l2": err, "rel_l2_adam": err_adam, "rel_l2_rounds": errs_rounds,
            "wall_s": time.perf_counter() - t_start, "cpu_s": time.process_time() - c_start, "adam_s": totals["adam_s"], "lbfgs_s": totals["lbfgs_s"],
            "adam_total": totals["adam"], "lbfgs_total": totals["lbfgs"],
            "sampler_s": task.sampler_seconds, "sampler_changes": task.sampler_changes,
            "resumed_phases": resumed_phases, "num_points": int(len(x)), "history": list(task.history),
            "model": model, "sampler": sampler, "task": task}
