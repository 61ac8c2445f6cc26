"""A :class:`~sciml.train.Task` for models that contain regularised :class:`NeuralODE` layers: the training loss
is ``task loss + λ(step) · Σ layer.last_reg`` with a λ schedule of the papers, and the metrics carry the
regulariser and the solver's NFE."""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn

from sciml.train import SupervisedTask, unwrap
from sciml.operators.ode.regularizers import ConstantSchedule, NeuralODE

__all__ = ["RegularizedODETask"]


class RegularizedODETask(SupervisedTask):
    """``loss(model(x), y) + λ(step) · R`` for ``(x, y)`` batches, where ``R`` sums ``last_reg`` of every
    :class:`~sciml.operators.ode.NeuralODE` inside ``model`` and ``step`` counts training steps (kept in the
    checkpoint through :meth:`state_dict`). Logged: ``task_loss``, ``reg``, ``lambda``, ``nfe``; validation also
    reports ``nfe`` (the prediction NFE of the plain solve).

    Args:
        loss (str or callable): as :class:`~sciml.train.SupervisedTask`. (default: ``"cross_entropy"``)
        schedule (callable): ``step -> λ`` (:class:`ExponentialDecay`, :class:`ConstantSchedule`).
            (default: ``ConstantSchedule(1.0)``)
        steps_per_unit (int): divide the step by this before calling ``schedule`` (steps per epoch for the papers'
            per-epoch decay). (default: ``1``)
    """

    def __init__(self, loss: str | Callable[[Tensor, Tensor], Tensor] = "cross_entropy",
                 schedule: Callable[[float], float] | None = None, steps_per_unit: int = 1) -> None:
        super().__init__(loss)
        self.schedule = schedule or ConstantSchedule(1.0)
        self.steps_per_unit = max(1, int(steps_per_unit))
        self.step = 0

    @staticmethod
    def _layers(model: nn.Module) -> list[NeuralODE]:
        return [m for m in unwrap(model).modules() if isinstance(m, NeuralODE)]

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        x, y = batch
        pred = model(x)
        task_loss = self.loss_fn(pred, y)
        layers = self._layers(model)
        reg = sum((m.last_reg for m in layers), task_loss.new_zeros(()))
        lam = float(self.schedule(self.step // self.steps_per_unit))
        self.step += 1
        return {"loss": task_loss + lam * reg, "task_loss": task_loss.detach(), "reg": reg.detach(),
                "lambda": task_loss.new_tensor(lam), "nfe": task_loss.new_tensor(float(sum(m.last_nfe
                                                                                             for m in layers)))}

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        out = super().validation_step(model, batch)
        out["nfe"] = float(sum(m.last_nfe for m in self._layers(model)))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", 0))
