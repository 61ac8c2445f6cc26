"""How a model family plugs into the Trainer: a :class:`Task` computes loss and metrics from a batch."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from sciml.errors import ConfigError
from sciml.train.tree import map_tensors

__all__ = ["Task", "SupervisedTask", "LayerLocalTask", "detach_tree"]


class Task:
    """Loss and metrics of a model on a batch. Subclass once per model family.

    ``model`` passed to :meth:`training_step` may be a ``DistributedDataParallel`` wrapper under DDP: call it
    (``model(...)``) for the forward pass so gradients are synchronised, and reach attributes through
    :func:`sciml.train.unwrap`. :meth:`validation_step` always gets the plain module, in eval mode, under
    ``torch.no_grad()``.
    """

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        """Forward pass on ``batch``; must return a dict with a scalar ``"loss"`` (other entries are logged,
        averaged over the logging window)."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_step(model, batch)")

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        """Metrics on a validation batch (averaged over batches, weighted by :meth:`batch_size`).
        Default: the entries of :meth:`training_step`."""
        return self.training_step(model, batch)

    def batch_size(self, batch: Any) -> int:
        """Weight of ``batch`` when averaging validation metrics. (default: ``1``)"""
        return 1

    def state_dict(self) -> dict[str, Any]:
        """State a task keeps between steps (tensors and plain containers), stored in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": F.mse_loss, "l1": F.l1_loss, "cross_entropy": F.cross_entropy, "nll": F.nll_loss,
    "bce_logits": F.binary_cross_entropy_with_logits,
}


class SupervisedTask(Task):
    """``loss(model(x), y)`` for batches ``(x, y)``; classification losses also report accuracy.

    Args:
        loss (str or callable): ``"mse"``, ``"l1"``, ``"cross_entropy"``, ``"nll"``, ``"bce_logits"`` or a
            function ``(prediction, target) -> scalar``. (default: ``"mse"``)
    """

    def __init__(self, loss: str | Callable[[Tensor, Tensor], Tensor] = "mse") -> None:
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ConfigError(f"unknown loss {loss!r}; expected one of {sorted(_LOSSES)} or a callable")
            self.loss_name, self.loss_fn = loss, _LOSSES[loss]
        else:
            self.loss_name, self.loss_fn = getattr(loss, "__name__", "custom"), loss

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        x, y = batch
        return {"loss": self.loss_fn(model(x), y)}

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        x, y = batch
        pred = model(x)
        out: dict[str, Tensor | float] = {"loss": self.loss_fn(pred, y)}
        if self.loss_name in ("cross_entropy", "nll"):
            out["acc"] = (pred.argmax(-1) == y).float().mean()
        return out

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].shape[0])


def _detach_other(obj: Any) -> Any:
    return obj.detach() if hasattr(obj, "detach") else obj


def detach_tree(obj: Any) -> Any:
    """``obj`` with every tensor inside (tuples and namedtuples, lists, dicts, objects with ``.detach``) detached
    (:func:`sciml.train.tree.map_tensors`). A tensor outside autograd (``requires_grad=False``) is returned as is:
    detaching it would only make a new object for the same data, and caches keyed on a tensor's identity (the CSR
    form of sparse input features) would miss on every step."""
    return map_tensors(_detach, obj, other=_detach_other)


def _detach(t: Tensor) -> Tensor:
    return t.detach() if t.requires_grad else t


class LayerLocalTask(Task):
    r"""A task for the ``layer_local`` strategy: every block has its own optimizer and a *local* loss, and the
    input to block :math:`k` is the detached output of block :math:`k-1`, so no gradient crosses a block boundary
    (ForwardGNN, Park et al., "Forward Learning of Graph Neural Networks", ICLR 2024).

    The Trainer calls, per training step and block :math:`k` (for every block in ``"simultaneous"`` mode, for
    the block being trained in ``"greedy"`` mode, after :meth:`block_forward` of the frozen blocks below it
    under ``torch.no_grad()``):

    .. code-block:: python

        metrics, outputs = task.local_step(model, k, block, detach(inputs), batch)

    Override :meth:`local_step` (and :meth:`block_input` if the first block does not take the batch itself).
    A task can keep state between steps (e.g. the top-down states of ForwardGNN's SF-Top-To-Loss) in attributes
    and return it from :meth:`state_dict` so it is checkpointed.

    A task written for one schedule sets :attr:`layer_local_mode` (``"greedy"`` or ``"simultaneous"``); the
    Trainer then refuses the other one with a :class:`~sciml.errors.ConfigError`.
    """

    layer_local_mode: str | None = None  # the Trainer's layer_local_mode this task needs (None: either)

    def blocks(self, model: nn.Module) -> Sequence[nn.Module]:
        """The trainable blocks, bottom to top. (default: ``model.blocks``)"""
        blocks = getattr(model, "blocks", None)
        if blocks is None:
            raise ConfigError(f"strategy='layer_local' needs the model's blocks: {type(model).__name__} has no "
                              "attribute 'blocks'; add one or override LayerLocalTask.blocks(model)")
        return list(blocks)

    def block_input(self, model: nn.Module, batch: Any) -> Any:
        """Input of block 0. (default: the batch itself)"""
        return batch

    def local_step(self, model: nn.Module, block_index: int, block: nn.Module, inputs: Any,
                   batch: Any) -> tuple[dict[str, Tensor], Any]:
        """Run ``block`` on ``inputs``; return ``(metrics with a scalar local "loss", outputs for the next
        block)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement local_step(model, block_index, block, "
                                  "inputs, batch)")

    def block_forward(self, model: nn.Module, block_index: int, block: nn.Module, inputs: Any, batch: Any) -> Any:
        """Output of a frozen block (called under ``torch.no_grad()``). (default: ``local_step(...)[1]``)"""
        return self.local_step(model, block_index, block, inputs, batch)[1]

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        """Sum of the local losses of all blocks (used only by :meth:`validation_step`'s default)."""
        blocks = self.blocks(model)
        inputs = self.block_input(model, batch)
        out: dict[str, Tensor] = {}
        total = None
        for k, block in enumerate(blocks):
            metrics, inputs = self.local_step(model, k, block, detach_tree(inputs), batch)
            out[f"loss_block{k}"] = metrics["loss"]
            total = metrics["loss"] if total is None else total + metrics["loss"]
        out["loss"] = total  # type: ignore[assignment]
        return out

    def block_validation_step(self, model: nn.Module, block_index: int, batch: Any) -> dict[str, Tensor | float]:
        """Validation metrics while block ``block_index`` is trained (``"greedy"`` mode; drives the per-block
        early stopping). Override to score the prefix of blocks ``0..block_index``.
        (default: :meth:`validation_step`)"""
        return self.validation_step(model, batch)
