r"""Training tasks and evaluation for neural operators on grids, through :class:`sciml.train.Trainer`.

* :class:`FieldRegressionTask`: steady problems (Darcy): batches ``(x [B, C_in, H, W], y [B, C_out, H, W])``,
  a relative :math:`H^1` or :math:`L^2` loss, and both as validation metrics.
* :class:`OneStepTask`: time-dependent problems with one-step **teacher forcing** (SineNet's training): batches
  ``(history [B, T_h, C, H, W], next [B, C, H, W])`` in normalised units, the history folded to ``T_h * C``
  channels before the model; the loss is the "scaled L2" of SineNet/PDEArena: the relative :math:`L^2` error per
  (sample, field) over space, averaged.
* :func:`rollout` / :func:`rollout_error`: autoregressive rollout from the first ``T_h`` frames, each prediction
  fed back as the newest input frame; errors in physical (de-normalised) units, per (sample, step, field),
  averaged.
* :class:`FieldNormalizer`: per-field Gaussian normalisation with its statistics as buffers (they move with the
  model and are saved in checkpoints), fitted on the training split.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from sciml.errors import ConfigError, ShapeError
from sciml.train import Task

from .losses import relative_h1, relative_l2

__all__ = ["FieldNormalizer", "FieldRegressionTask", "OneStepTask", "teacher_forcing_pairs", "rollout",
           "rollout_error", "fold_history", "field_pairs", "scaled_l2"]


class FieldNormalizer(nn.Module):
    r"""``(x - mean) / (std + eps)`` per field (channel axis ``-3`` of ``[..., C, H, W]``) or over everything.

    Args:
        mean (Tensor): ``[C]`` (or a scalar).
        std (Tensor): same shape.
        eps (float): added to ``std``. (default: ``1e-8``)
    """

    def __init__(self, mean: Tensor, std: Tensor, eps: float = 1e-8) -> None:
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != std.shape or mean.dim() > 1:
            raise ShapeError(f"FieldNormalizer: mean {list(mean.shape)} and std {list(std.shape)} must be scalars "
                             "or [C] vectors of the same shape")
        self.register_buffer("mean", mean.reshape(-1, 1, 1))
        self.register_buffer("std", std.reshape(-1, 1, 1))
        self.eps = eps

    @classmethod
    def fit(cls, data: Tensor, per_channel: bool = True, eps: float = 1e-8) -> "FieldNormalizer":
        """Statistics of ``data [..., C, H, W]`` (per channel ``C``, or one scalar pair)."""
        if data.dim() < 3:
            raise ShapeError(f"FieldNormalizer.fit: expected [..., C, H, W], got {list(data.shape)}")
        d = data.double()
        if per_channel:
            flat = d.movedim(-3, 0).reshape(d.shape[-3], -1)
            return cls(flat.mean(1).float(), flat.std(1).float(), eps)
        return cls(d.mean().float().reshape(1), d.std().float().reshape(1), eps)

    def encode(self, x: Tensor) -> Tensor:
        return (x - self.mean) / (self.std + self.eps)

    def decode(self, x: Tensor) -> Tensor:
        return x * (self.std + self.eps) + self.mean

    forward = encode


def fold_history(x: Tensor) -> Tensor:
    """``[B, T, C, H, W]`` -> ``[B, T * C, H, W]`` (time-major, as PDEArena); 4-D input is returned as is."""
    return x.reshape(x.shape[0], -1, *x.shape[-2:]) if x.dim() == 5 else x


class FieldRegressionTask(Task):
    r"""Steady operator learning ``a -> u`` with a relative :math:`H^1` or :math:`L^2` loss.

    Args:
        loss (str): ``"h1"`` (MgNO's Darcy training) or ``"l2"``. (default: ``"h1"``)
        y_normalizer (FieldNormalizer, optional): the model predicts normalised outputs; they are decoded
            before the loss and the metrics (the official MgNO ``--normalizer``), so both are in physical units.
            (default: :obj:`None`)
        h1 (dict, optional): keyword arguments of :func:`~sciml.operators.losses.relative_h1` (``method``,
            ``a``, ``truncation``, ``spacing``). (default: spectral, ``a=1``, ``truncation=20``)
    """

    def __init__(self, loss: str = "h1", *, y_normalizer: FieldNormalizer | None = None,
                 h1: dict[str, Any] | None = None) -> None:
        if loss not in ("h1", "l2"):
            raise ConfigError(f"FieldRegressionTask: loss must be 'h1' or 'l2', got {loss!r}")
        self.loss, self.y_normalizer, self.h1 = loss, y_normalizer, dict(h1 or {})

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        out = model(x)
        if self.y_normalizer is not None:
            self.y_normalizer.to(out.device)
            out = self.y_normalizer.decode(out)
        return out

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        x, y = batch
        pred = self.predict(model, x)
        if self.loss == "h1":
            return {"loss": relative_h1(pred, y, **self.h1)}
        return {"loss": relative_l2(pred, y)}

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        x, y = batch
        pred = self.predict(model, x)
        l2, h1 = relative_l2(pred, y), relative_h1(pred, y, **self.h1)
        return {"loss": h1 if self.loss == "h1" else l2, "rel_l2": l2, "rel_h1": h1}

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].shape[0])


def field_pairs(path: str, *, input_field: str = "a", output_field: str = "u", val_split: str = "val",
                num_val: int = 0, normalize_input: bool = True) -> dict[str, Any]:
    """Steady input/output pairs of a sciml-h5 ``fields`` file as ``{"train", "val"}`` tensor datasets
    ``(x [N, C_in, H, W], y [N, C_out, H, W])`` (the first frame of each field), for configs; also
    ``"y_normalizer"``, a scalar :class:`FieldNormalizer` fitted on the training outputs, for
    ``FieldRegressionTask(y_normalizer=...)`` (the targets themselves stay in physical units).

    Args:
        path (str): the file (e.g. from ``sciml data generate darcy``).
        input_field, output_field (str): field names. (default: ``"a"``, ``"u"``)
        val_split (str): the split used for validation when ``num_val`` is 0 (``"test"`` for a file without a
            ``val`` split). (default: ``"val"``)
        num_val (int): if > 0, the last ``num_val`` training pairs are held out for validation instead.
            (default: ``0``)
        normalize_input (bool): normalise ``x`` by one scalar mean and std of the training inputs (MgNO's
            ``GN``). (default: ``True``)
    """
    from sciml.datasets.reader import FieldDataset

    def read(split: str) -> tuple[Tensor, Tensor]:
        ds = FieldDataset(path, split, fields=[input_field, output_field])
        try:
            items = [ds[i] for i in range(len(ds))]
        finally:
            ds.close()
        # [T, H, W, C] -> first frame, channel-first
        return tuple(torch.stack([it[k][0] for it in items]).permute(0, 3, 1, 2).contiguous()  # type: ignore
                     for k in (input_field, output_field))

    x, y = read("train")
    if num_val > 0:
        if num_val >= len(x):
            raise ConfigError(f"field_pairs: num_val={num_val} leaves no training pairs out of {len(x)}")
        (x, xv), (y, yv) = (x[:-num_val], x[-num_val:]), (y[:-num_val], y[-num_val:])
    else:
        xv, yv = read(val_split)
    if normalize_input:
        norm = FieldNormalizer.fit(x, per_channel=False)
        x, xv = norm.encode(x), norm.encode(xv)
    return {"train": TensorDataset(x, y), "val": TensorDataset(xv, yv),
            "y_normalizer": FieldNormalizer.fit(y, per_channel=False)}


def scaled_l2(pred: Tensor, target: Tensor) -> Tensor:
    """Relative L2 over space per (sample, field) of ``[B, C, H, W]``, averaged (PDEArena's ``scaledl2``)."""
    b, c = pred.shape[:2]
    return relative_l2(pred.reshape(b * c, -1), target.reshape(b * c, -1))


class OneStepTask(Task):
    """One-step teacher forcing: ``model(fold(history)) -> next frame``, everything in normalised units.

    Args:
        normalizer (FieldNormalizer, optional): to report ``phys_rel_l2``, the one-step error in physical
            units, next to the normalised ``loss`` in validation. (default: :obj:`None`)
    """

    def __init__(self, normalizer: FieldNormalizer | None = None) -> None:
        self.normalizer = normalizer

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        hist, nxt = batch
        return {"loss": scaled_l2(model(fold_history(hist)), nxt)}

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        hist, nxt = batch
        pred = model(fold_history(hist))
        out: dict[str, Tensor | float] = {"loss": scaled_l2(pred, nxt)}
        if self.normalizer is not None:
            self.normalizer.to(pred.device)
            out["phys_rel_l2"] = scaled_l2(self.normalizer.decode(pred), self.normalizer.decode(nxt))
        return out

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].shape[0])


def teacher_forcing_pairs(trajectories: Tensor, time_history: int, *, max_start: int | None = None
                          ) -> TensorDataset:
    """Every window of ``trajectories [N, T, C, H, W]``: inputs ``[M, T_h, C, H, W]`` (frames ``s..s+T_h-1``) and
    targets ``[M, C, H, W]`` (frame ``s+T_h``), for starts ``s = 0 .. T - T_h - 1`` (at most ``max_start``).

    PDEArena draws one random start per trajectory and epoch; enumerating all of them is the same distribution,
    visited exhaustively (and what MgNO's NS training does).
    """
    if trajectories.dim() != 5:
        raise ShapeError(f"teacher_forcing_pairs: expected [N, T, C, H, W], got {list(trajectories.shape)}")
    n, t = trajectories.shape[:2]
    if not 1 <= time_history < t:
        raise ConfigError(f"teacher_forcing_pairs: time_history must be in [1, {t - 1}] for {t} frames, got "
                          f"{time_history}")
    last = t - time_history - 1 if max_start is None else min(max_start, t - time_history - 1)
    xs = [trajectories[:, s:s + time_history] for s in range(last + 1)]
    ys = [trajectories[:, s + time_history] for s in range(last + 1)]
    return TensorDataset(torch.cat(xs), torch.cat(ys))


@torch.no_grad()
def rollout(model: nn.Module, history: Tensor, num_steps: int) -> Tensor:
    """Autoregressive prediction: from ``history [B, T_h, C, H, W]`` (normalised) predict ``num_steps`` frames,
    each appended to the input window (the oldest dropped). Returns ``[B, num_steps, C, H, W]`` (normalised)."""
    if history.dim() != 5:
        raise ShapeError(f"rollout: expected history [B, T_h, C, H, W], got {list(history.shape)}")
    window = history
    frames = []
    for _ in range(num_steps):
        nxt = model(fold_history(window))
        frames.append(nxt)
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return torch.stack(frames, dim=1)


@torch.no_grad()
def rollout_error(model: nn.Module, trajectories: Tensor, time_history: int, normalizer: FieldNormalizer, *,
                  num_steps: int | None = None, batch_size: int = 16) -> dict[str, Any]:
    """Rollout from the first ``time_history`` frames of physical ``trajectories [N, T, C, H, W]``; relative L2
    per (sample, step, field) in physical units.

    Returns:
        ``{"rollout_rel_l2": mean over samples, steps and fields, "per_step": [num_steps] means over samples and
        fields, "one_step_rel_l2": the first step's mean}``.
    """
    was_training = model.training
    model.eval()
    normalizer = normalizer.to(trajectories.device)
    n, t = trajectories.shape[:2]
    steps = t - time_history if num_steps is None else num_steps
    if not 1 <= steps <= t - time_history:
        raise ConfigError(f"rollout_error: num_steps must be in [1, {t - time_history}], got {num_steps}")
    errs = []
    for i in range(0, n, batch_size):
        traj = trajectories[i:i + batch_size]
        pred = normalizer.decode(rollout(model, normalizer.encode(traj[:, :time_history]), steps))
        truth = traj[:, time_history:time_history + steps]
        b, s, c = pred.shape[:3]
        errs.append(relative_l2(pred.reshape(b * s * c, -1), truth.reshape(b * s * c, -1),
                                reduction="none").reshape(b, s, c))
    err = torch.cat(errs)
    model.train(was_training)
    per_step = err.mean(dim=(0, 2))
    return {"rollout_rel_l2": float(err.mean()), "per_step": per_step.tolist(),
            "one_step_rel_l2": float(per_step[0])}
