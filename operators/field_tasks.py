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
* :class:`FieldNormalizer`: Gaussian normalisation (one scalar pair, per field, or per grid point) with its
  statistics as buffers (they move with the model and are saved in checkpoints), fitted on the training split.
* Data builders for configs: :func:`field_pairs` (steady pairs, with the output normaliser for
  :class:`FieldRegressionTask`) and :func:`field_trajectories` (teacher-forcing windows, with the normaliser for
  :class:`OneStepTask`).
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from sciml.errors import ConfigError, ShapeError
from sciml.train import Task

from .losses import relative_h1, relative_l2

__all__ = ["FieldNormalizer", "FieldRegressionTask", "OneStepTask", "teacher_forcing_pairs", "rollout",
           "rollout_error", "fold_history", "field_pairs", "field_trajectories", "scaled_l2"]


class FieldNormalizer(nn.Module):
    r"""``(x - mean) / (std + eps)`` for fields ``[..., C, H, W]``, with statistics of one of three granularities:

    * one scalar pair (``mean``, ``std`` scalars or ``[1]``): MgNO's ``GaussianNormalizer`` (its ``GN``);
    * per field (``[C]``, the channel axis ``-3``): SineNet/PDEArena's per-channel statistics;
    * per grid point (``[C, H, W]``): FNO's and MgNO's ``UnitGaussianNormalizer`` (MgNO's ``PGN``), statistics
      over the samples only, so it applies only to fields on the grid it was fitted on (a ``ShapeError``
      otherwise).

    Args:
        mean (Tensor): a scalar, ``[C]`` or ``[C, H, W]``.
        std (Tensor): same shape.
        eps (float): added to ``std``. (default: ``1e-8``)
    """

    def __init__(self, mean: Tensor, std: Tensor, eps: float = 1e-8) -> None:
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != std.shape or mean.dim() not in (0, 1, 3):
            raise ShapeError(f"FieldNormalizer: mean {list(mean.shape)} and std {list(std.shape)} must be scalars, "
                             "[C] vectors or [C, H, W] fields of the same shape")
        if mean.dim() < 3:
            mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.eps = float(eps)

    @property
    def pointwise(self) -> bool:
        """Statistics per grid point (``[C, H, W]`` with a grid larger than 1x1)."""
        return tuple(self.mean.shape[-2:]) != (1, 1)

    @classmethod
    def fit(cls, data: Tensor, per_channel: bool = True, eps: float = 1e-8, *,
            pointwise: bool = False) -> "FieldNormalizer":
        """Statistics (mean, unbiased std, in float64) of ``data [..., C, H, W]``: per channel ``C``, one scalar
        pair (``per_channel=False``), or per grid point over all leading axes (``pointwise=True``)."""
        if data.dim() < 3:
            raise ShapeError(f"FieldNormalizer.fit: expected [..., C, H, W], got {list(data.shape)}")
        d = data.double()
        if pointwise:
            flat = d.reshape(-1, *d.shape[-3:])
            if flat.shape[0] < 2:
                raise ShapeError(f"FieldNormalizer.fit: pointwise statistics need at least 2 samples, got "
                                 f"{list(data.shape)}")
            return cls(flat.mean(0).float(), flat.std(0).float(), eps)
        if per_channel:
            flat = d.movedim(-3, 0).reshape(d.shape[-3], -1)
            return cls(flat.mean(1).float(), flat.std(1).float(), eps)
        return cls(d.mean().float().reshape(1), d.std().float().reshape(1), eps)

    def _check(self, x: Tensor) -> None:
        if self.pointwise and tuple(x.shape[-2:]) != tuple(self.mean.shape[-2:]):
            raise ShapeError(f"FieldNormalizer: pointwise statistics of a {self.mean.shape[-2]}x"
                             f"{self.mean.shape[-1]} grid cannot normalise fields on a {x.shape[-2]}x"
                             f"{x.shape[-1]} grid {list(x.shape)}")

    def encode(self, x: Tensor) -> Tensor:
        self._check(x)
        return (x - self.mean) / (self.std + self.eps)

    def decode(self, x: Tensor) -> Tensor:
        self._check(x)
        return x * (self.std + self.eps) + self.mean

    forward = encode

    def extra_repr(self) -> str:
        kind = "pointwise" if self.pointwise else ("per-field" if self.mean.shape[0] > 1 else "scalar")
        return f"{kind}, shape={list(self.mean.shape)}, eps={self.eps:g}"


def _normalizer_state(norm: FieldNormalizer | None) -> dict[str, Any]:
    if norm is None:
        return {}
    return {"mean": norm.mean.detach().cpu().clone(), "std": norm.std.detach().cpu().clone(), "eps": norm.eps}


def _normalizer_from_state(state: dict[str, Any] | None, current: FieldNormalizer | None) -> FieldNormalizer | None:
    if not state:
        return current
    return FieldNormalizer(state["mean"], state["std"], float(state["eps"]))


def fold_history(x: Tensor) -> Tensor:
    """``[B, T, C, H, W]`` -> ``[B, T * C, H, W]`` (time-major, as PDEArena); 4-D input is returned as is."""
    return x.reshape(x.shape[0], -1, *x.shape[-2:]) if x.dim() == 5 else x


class FieldRegressionTask(Task):
    r"""Steady operator learning ``a -> u`` with a relative :math:`H^1` or :math:`L^2` loss.

    Args:
        loss (str): ``"h1"`` (MgNO's Darcy training) or ``"l2"``. (default: ``"h1"``)
        y_normalizer (FieldNormalizer, optional): the model predicts normalised outputs; they are decoded
            before the loss and the metrics (the official MgNO ``--normalizer``), so both are in physical units.
            In a config it comes from the data builder (:func:`field_pairs`). Its statistics are part of the
            task's checkpoint state. (default: :obj:`None`)
        h1 (dict, optional): keyword arguments of :func:`~sciml.operators.losses.relative_h1` (``method``,
            ``a``, ``truncation``, ``spacing``). (default: spectral, ``a=1``, ``truncation=20``)
        reduction (str): of the training loss over the batch: ``"mean"`` or ``"sum"`` (the official MgNO and
            FNO losses, ``size_average=False``). Validation metrics are per-sample means either way.
            (default: ``"mean"``)
    """

    def __init__(self, loss: str = "h1", *, y_normalizer: FieldNormalizer | None = None,
                 h1: dict[str, Any] | None = None, reduction: Literal["mean", "sum"] = "mean") -> None:
        if loss not in ("h1", "l2"):
            raise ConfigError(f"FieldRegressionTask: loss must be 'h1' or 'l2', got {loss!r}")
        if reduction not in ("mean", "sum"):
            raise ConfigError(f"FieldRegressionTask: reduction must be 'mean' or 'sum', got {reduction!r}")
        h1 = dict(h1 or {})
        if "reduction" in h1:
            raise ConfigError("FieldRegressionTask: set the reduction with reduction=..., not inside h1")
        self.loss, self.y_normalizer, self.h1, self.reduction = loss, y_normalizer, h1, reduction

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
            return {"loss": relative_h1(pred, y, **self.h1, reduction=self.reduction)}
        return {"loss": relative_l2(pred, y, reduction=self.reduction)}

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        x, y = batch
        pred = self.predict(model, x)
        l2, h1 = relative_l2(pred, y), relative_h1(pred, y, **self.h1)
        return {"loss": h1 if self.loss == "h1" else l2, "rel_l2": l2, "rel_h1": h1}

    def batch_size(self, batch: Any) -> int:
        return int(batch[1].shape[0])

    def state_dict(self) -> dict[str, Any]:
        state = _normalizer_state(self.y_normalizer)
        return {"y_normalizer": state} if state else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.y_normalizer = _normalizer_from_state(state.get("y_normalizer"), self.y_normalizer)


def _read_fields(path: str, split: str, names: Sequence[str] | None) -> tuple[dict[str, Tensor], list[str]]:
    """``{name: [N, T, C, H, W]}`` (channel-first) of a sciml-h5 ``fields`` split, and the field names read."""
    from sciml.datasets.reader import FieldDataset

    ds = FieldDataset(path, split, fields=None if names is None else list(names))
    try:
        names = list(ds.field_names)
        items = [ds[i] for i in range(len(ds))]
    finally:
        ds.close()
    if not items:
        raise ConfigError(f"{path}: split {split!r} is empty")
    # [T, H, W, C] per sample -> [N, T, C, H, W]
    return {k: torch.stack([it[k] for it in items]).permute(0, 1, 4, 2, 3).contiguous() for k in names}, names


_NORMALIZER_TYPES = ("gaussian", "unit_gaussian")


def field_pairs(path: str, *, input_field: str = "a", output_field: str = "u", val_split: str = "val",
                num_val: int = 0, normalize_input: bool = True, normalize_output: bool = True,
                normalizer_type: Literal["gaussian", "unit_gaussian"] = "gaussian") -> dict[str, Any]:
    """Steady input/output pairs of a sciml-h5 ``fields`` file for configs, with the normalisers of MgNO's Darcy
    recipe fitted on the training pairs.

    Returns a data bundle (see :func:`sciml.experiment.unpack_data`): ``"train"`` and ``"val"`` tensor datasets
    ``(x [N, C_in, H, W], y [N, C_out, H, W])`` (the first frame of each field; ``x`` normalised, ``y`` in physical
    units) and ``"task_kwargs": {"y_normalizer": ...}``, the output normaliser for
    ``FieldRegressionTask(y_normalizer=...)`` (the ``field_regression`` task of a config receives it): the model
    predicts normalised outputs that the task decodes before the loss, as the official ``--normalizer``;
    :obj:`None` when switched off.

    Args:
        path (str): the file (e.g. from ``sciml data generate darcy``).
        input_field, output_field (str): field names. (default: ``"a"``, ``"u"``)
        val_split (str): the split used for validation when ``num_val`` is 0 (``"test"`` for a file without a
            ``val`` split). (default: ``"val"``)
        num_val (int): if > 0, the last ``num_val`` training pairs are held out for validation instead.
            (default: ``0``)
        normalize_input (bool): normalise ``x`` (MgNO's ``--GN``). (default: ``True``)
        normalize_output (bool): return a ``"y_normalizer"`` (MgNO's ``--normalizer``). (default: ``True``)
        normalizer_type (str): ``"gaussian"``: one scalar mean and std (MgNO's ``GN``, its rough/multiscale
            Darcy runs); ``"unit_gaussian"``: per grid point (MgNO's ``PGN``, FNO's ``UnitGaussianNormalizer``,
            the smooth Darcy run; ties the model to the training grid). (default: ``"gaussian"``)
    """
    if normalizer_type not in _NORMALIZER_TYPES:
        raise ConfigError(f"field_pairs: normalizer_type must be one of {list(_NORMALIZER_TYPES)}, got "
                          f"{normalizer_type!r}")

    def read(split: str) -> tuple[Tensor, Tensor]:
        d, _ = _read_fields(path, split, [input_field, output_field])
        return d[input_field][:, 0], d[output_field][:, 0]  # first frame

    x, y = read("train")
    if num_val > 0:
        if num_val >= len(x):
            raise ConfigError(f"field_pairs: num_val={num_val} leaves no training pairs out of {len(x)}")
        (x, xv), (y, yv) = (x[:-num_val], x[-num_val:]), (y[:-num_val], y[-num_val:])
    else:
        xv, yv = read(val_split)

    def fit(t: Tensor) -> FieldNormalizer:
        if normalizer_type == "unit_gaussian":
            return FieldNormalizer.fit(t, pointwise=True)
        return FieldNormalizer.fit(t, per_channel=False)

    x_norm = fit(x) if normalize_input else None
    if x_norm is not None:
        x, xv = x_norm.encode(x), x_norm.encode(xv)
    return {"train": TensorDataset(x, y), "val": TensorDataset(xv, yv),
            "task_kwargs": {"y_normalizer": fit(y) if normalize_output else None}}


def field_trajectories(path: str, *, fields: list[str] | None = None, time_history: int = 4,
                       val_split: str = "val", num_val: int = 0, max_start: int | None = None) -> dict[str, Any]:
    """Time-dependent fields of a sciml-h5 ``fields`` file as one-step teacher-forcing windows for configs
    (SineNet's training, :class:`OneStepTask`).

    The fields are concatenated along the channel axis into trajectories ``[N, T, C, H, W]``, normalised per
    field with statistics of the training trajectories, and cut into every window
    (:func:`teacher_forcing_pairs`). Returns a data bundle (:func:`sciml.experiment.unpack_data`): ``"train"`` and
    ``"val"`` tensor datasets ``(history [M, T_h, C, H, W], next [M, C, H, W])`` in normalised units and
    ``"task_kwargs": {"normalizer": ...}``, the per-field :class:`FieldNormalizer` for
    ``OneStepTask(normalizer=...)`` (the ``one_step`` task of a config receives it; with it and the physical
    trajectories, :func:`rollout_error` gives the rollout error).

    Args:
        path (str): the file (e.g. from ``sciml data generate navier_stokes``).
        fields (list[str], optional): fields to use, in this channel order. (default: all fields of the file)
        time_history (int): input frames :math:`T_h`. (default: ``4``)
        val_split (str): the validation split when ``num_val`` is 0. (default: ``"val"``)
        num_val (int): if > 0, the last ``num_val`` training trajectories are held out for validation instead.
            (default: ``0``)
        max_start (int, optional): the latest window start (:func:`teacher_forcing_pairs`). (default: all)
    """
    def read(split: str) -> Tensor:
        d, names = _read_fields(path, split, fields)
        return torch.cat([d[n] for n in names], dim=2)

    train = read("train")
    if num_val > 0:
        if num_val >= len(train):
            raise ConfigError(f"field_trajectories: num_val={num_val} leaves no training trajectories out of "
                              f"{len(train)}")
        train, val = train[:-num_val], train[-num_val:]
    else:
        val = read(val_split)
    norm = FieldNormalizer.fit(train)
    return {"train": teacher_forcing_pairs(norm.encode(train), time_history, max_start=max_start),
            "val": teacher_forcing_pairs(norm.encode(val), time_history, max_start=max_start),
            "task_kwargs": {"normalizer": norm}}


def scaled_l2(pred: Tensor, target: Tensor) -> Tensor:
    """Relative L2 over space per (sample, field) of ``[B, C, H, W]``, averaged (PDEArena's ``scaledl2``)."""
    b, c = pred.shape[:2]
    return relative_l2(pred.reshape(b * c, -1), target.reshape(b * c, -1))


class OneStepTask(Task):
    """One-step teacher forcing: ``model(fold(history)) -> next frame``, everything in normalised units.

    Args:
        normalizer (FieldNormalizer, optional): to report ``phys_rel_l2``, the one-step error in physical
            units, next to the normalised ``loss`` in validation. In a config it comes from the data builder
            (:func:`field_trajectories`); its statistics are part of the task's checkpoint state.
            (default: :obj:`None`)
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

    def state_dict(self) -> dict[str, Any]:
        state = _normalizer_state(self.normalizer)
        return {"normalizer": state} if state else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.normalizer = _normalizer_from_state(state.get("normalizer"), self.normalizer)


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
