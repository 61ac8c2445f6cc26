r"""Irregular time-series classification with the protocol of the Stable Neural SDE benchmark (the ``torch-ists``
pipeline of ``yongkyung-oh/Stable-Neural-SDEs``): UEA/UCR ``.ts`` data, observations dropped at a missing rate,
stratified 70/15/15 splits, channel-wise normalisation from the training part, control-path coefficients, and a
training loop on :class:`~sciml.train.Trainer` with the code's optimiser, schedule and early stopping.

* :func:`load_uea`: ``<NAME>_TRAIN.ts`` + ``<NAME>_TEST.ts`` read by our ``.ts`` parser
  (:mod:`sciml.datasets.sources.ts_format`) and concatenated (the code pools both files and re-splits them);
  variable-length series are stretched to the longest length by linear interpolation on ``[0, L)`` as the code does
  (``resample="stretch"``) or padded with ``NaN`` (``"pad"``).
* :func:`drop_observations`: for every sample, :math:`\lfloor L r\rfloor` time indices drawn without replacement
  are set to ``NaN`` in all channels (``mode="time"``, the code) or independently per channel (``"channel"``),
  from a generator seeded with ``seed``: every model sees the same drops.
* :func:`stratified_split`, :func:`normalize_from_train`, :func:`control_coeffs`, :func:`batch_size_rule`.
* :func:`fit_classifier`: Adam (``lr = 1e-3 · batch / 16``, weight decay ``0.01 · lr``), StepLR (10 epochs,
  ×0.5), up to 100 epochs, early stopping on the validation loss with patience 10 once past epoch 20, best weights
  restored; returns test accuracy and weighted F1.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from sciml.errors import ConfigError, DataFormatError, ShapeError
from sciml.metrics import weighted_f1
from sciml.operators.ode.interpolation import interpolation_coeffs

__all__ = ["UEADataset", "load_uea", "drop_observations", "stratified_split", "normalize_from_train",
           "control_coeffs", "batch_size_rule", "fit_classifier", "evaluate_classifier"]


@dataclass
class UEADataset:
    """A pooled UEA/UCR classification set.

    Attributes:
        values (Tensor): ``[N, L, D]`` float32, ``NaN`` where missing.
        y (Tensor): ``[N]`` class indices (in the file's ``@classLabel`` order).
        lengths (Tensor): ``[N]`` original series lengths.
        class_labels (list[str]): the declared class labels.
        name (str): the dataset name.
        source_split (Tensor): ``[N]``, 0 for ``_TRAIN.ts`` rows and 1 for ``_TEST.ts`` rows.
    """

    values: Tensor
    y: Tensor
    lengths: Tensor
    class_labels: list[str]
    name: str = ""
    source_split: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def num_classes(self) -> int:
        return len(self.class_labels)

    @property
    def times(self) -> Tensor:
        """The code's normalised grid ``linspace(0, 1, L)``."""
        return torch.linspace(0, 1, self.values.shape[1])


def _stretch(v: np.ndarray, L: int) -> np.ndarray:
    # the code's np.interp(arange(L), linspace(0, L, n), s) per channel: a series of n points spread over [0, L]
    n = v.shape[0]
    if n == L:
        return v
    grid = np.linspace(0, L, num=n)
    return np.stack([np.interp(np.arange(L), grid, v[:, d]) for d in range(v.shape[1])], axis=1)


def load_uea(path: str | os.PathLike, dataset: str = "", *, resample: str = "stretch") -> UEADataset:
    """Read ``<NAME>_TRAIN.ts`` and ``<NAME>_TEST.ts`` (a folder, or one of the two files) into one
    :class:`UEADataset` (train rows first).

    Args:
        path (str or Path): folder or ``.ts`` file.
        dataset (str): ``NAME`` when the folder holds several sets. (default: the only one)
        resample (str): ``"stretch"`` (the code) or ``"pad"`` for variable-length series. (default: ``"stretch"``)
    """
    from sciml.datasets.sources.ts_format import convert_ts

    if resample not in ("stretch", "pad"):
        raise ConfigError(f"load_uea: resample must be 'stretch' or 'pad', got {resample!r}")
    spec = convert_ts(path, dataset=dataset)
    labels = list(spec.config.get("class_labels") or [])
    if not labels:
        raise DataFormatError(f"{path}: not a classification set (no @classLabel true)")
    rows, ys, src = [], [], []
    for s, split in enumerate(("train", "test")):
        for rec in spec.splits.get(split, []):
            v = np.where(rec.mask, rec.values, np.nan).astype(np.float64)
            rows.append(v)
            ys.append(int(rec.y))
            src.append(s)
    if not rows:
        raise DataFormatError(f"{path}: no instances")
    lengths = np.array([r.shape[0] for r in rows])
    L = int(lengths.max())
    D = rows[0].shape[1]
    out = np.full((len(rows), L, D), np.nan)
    for i, r in enumerate(rows):
        if resample == "stretch" and r.shape[0] < L:
            # the code pads nothing: it stretches (missing values inside are not expected in these files)
            r = _stretch(np.nan_to_num(r, nan=np.nanmean(r) if np.isfinite(r).any() else 0.0), L)
        out[i, :r.shape[0]] = r
    first = Path(str(spec.source).split(":", 1)[1])
    name = dataset or re.sub(r"_(TRAIN|TEST)$", "", first.stem, flags=re.IGNORECASE)
    return UEADataset(values=torch.tensor(out, dtype=torch.float32), y=torch.tensor(ys),
                      lengths=torch.tensor(lengths), class_labels=labels, name=name,
                      source_split=torch.tensor(src))


def drop_observations(values: Tensor, rate: float, seed: int, *, mode: str = "time") -> Tensor:
    r"""A copy of ``values`` ``[N, L, D]`` with :math:`\lfloor L\,r\rfloor` entries per sample set to ``NaN``:
    the same time indices in every channel (``mode="time"``, the benchmark code) or drawn per channel
    (``"channel"``). The draws come from ``torch.Generator().manual_seed(seed)`` in sample order, so they depend
    only on ``(seed, N, L, D, rate, mode)``.

    Args:
        values (Tensor): ``[N, L, D]``.
        rate (float): missing rate in ``[0, 1)``.
        seed (int): seed of the draws.
        mode (str): ``"time"`` or ``"channel"``. (default: ``"time"``)
    """
    if values.dim() != 3:
        raise ShapeError(f"drop_observations: values must be [N, L, D], got {tuple(values.shape)}")
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"drop_observations: rate must be in [0, 1), got {rate}")
    if mode not in ("time", "channel"):
        raise ConfigError(f"drop_observations: mode must be 'time' or 'channel', got {mode!r}")
    out = values.clone()
    N, L, D = values.shape
    k = int(L * rate)
    if k == 0:
        return out
    g = torch.Generator().manual_seed(int(seed))
    for i in range(N):
        if mode == "time":
            out[i, torch.randperm(L, generator=g)[:k]] = float("nan")
        else:
            for d in range(D):
                out[i, torch.randperm(L, generator=g)[:k], d] = float("nan")
    return out


def stratified_split(y: Tensor, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Train/validation/test indices with about ``fractions`` of every class in each part (each class shuffled
    by a generator seeded with ``seed``; rounding as ``train = round(0.7 n_c)``, ``val = round(0.5 (n_c - train))``,
    the rest test), sorted.

    Args:
        y (Tensor): ``[N]`` class indices.
        seed (int): seed of the shuffle.
        fractions (tuple): train, validation, test shares. (default: ``(0.7, 0.15, 0.15)``)
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ConfigError(f"stratified_split: fractions must be 3 shares summing to 1, got {fractions}")
    g = torch.Generator().manual_seed(int(seed))
    parts: list[list[Tensor]] = [[], [], []]
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).view(-1)
        members = members[torch.randperm(len(members), generator=g)]
        n = len(members)
        n_train = int(round(fractions[0] * n))
        n_val = int(round(fractions[1] / max(fractions[1] + fractions[2], 1e-12) * (n - n_train)))
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train:n_train + n_val])
        parts[2].append(members[n_train + n_val:])
    return tuple(torch.cat(p).sort().values for p in parts)  # type: ignore[return-value]


def normalize_from_train(values: Tensor, train_idx: Tensor, eps: float = 1e-5) -> Tensor:
    """``(x - mean_c) / (std_c + eps)`` per channel with the mean and (unbiased) std of the observed training
    values only (NaN-aware), as the code."""
    out = torch.empty_like(values)
    train = values[train_idx]
    for d in range(values.shape[-1]):
        obs = train[..., d][~torch.isnan(train[..., d])]
        mean = obs.mean() if obs.numel() else values.new_zeros(())
        std = obs.std() if obs.numel() > 1 else values.new_ones(())
        out[..., d] = (values[..., d] - mean) / (std + eps)
    return out


def control_coeffs(values: Tensor, times: Tensor | None = None, *, interpolation: str = "hermite",
                   intensity: bool = False) -> Tensor:
    """Coefficients ``[N, L - 1, 4, C]`` of the control path of ``[t, (cumulative observation counts,) values]``
    (``C = 1 + D`` or ``1 + 2 D``), as the code builds ``values_T`` / ``values_TI``.

    Args:
        values (Tensor): ``[N, L, D]`` with ``NaN`` where missing.
        times (Tensor, optional): ``[L]``. (default: ``linspace(0, 1, L)``)
        interpolation (str): ``"hermite"`` or ``"natural"``. (default: ``"hermite"``)
        intensity (bool): add the cumulative counts. (default: :obj:`False`)
    """
    N, L, _ = values.shape
    if times is None:
        times = torch.linspace(0, 1, L, dtype=values.dtype)
    parts = [times.to(values.dtype).view(1, L, 1).expand(N, L, 1)]
    if intensity:
        parts.append((~torch.isnan(values)).to(values.dtype).cumsum(dim=1))
    parts.append(values)
    return interpolation_coeffs(torch.cat(parts, dim=-1), times, interpolation)


def batch_size_rule(n: int) -> int:
    """The code's batch size: the largest ``2^k``, ``4 <= k <= 7``, with ``2^k <= n / 2`` (16 at least)."""
    bs = 16
    for k in range(4, 8):
        if 2 ** k > n / 2:
            break
        bs = 2 ** k
    return bs


@torch.no_grad()
def evaluate_classifier(model: nn.Module, coeffs: Tensor, y: Tensor, *, batch_size: int = 256,
                        num_classes: int | None = None) -> dict[str, float]:
    """Accuracy, weighted F1 and mean cross-entropy of ``model`` on ``(coeffs, y)`` in eval mode."""
    was = model.training
    model.eval()
    preds, loss = [], 0.0
    for i in range(0, len(y), batch_size):
        out = model(coeffs[i:i + batch_size])
        loss += float(nn.functional.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        preds.append(out.argmax(-1))
    model.train(was)
    pred = torch.cat(preds)
    k = num_classes or int(max(int(y.max()), int(pred.max())) + 1)
    return {"acc": float((pred == y).float().mean()), "f1": weighted_f1(y, pred, k), "loss": loss / len(y)}


def fit_classifier(model: nn.Module, coeffs: Tensor, y: Tensor, splits: tuple[Tensor, Tensor, Tensor], *,
                   epochs: int = 100, lr: float | None = None, batch_size: int | None = None, seed: int = 0,
                   patience: int = 11, start_after: int = 21, num_classes: int | None = None,
                   log_every: int = 10_000, **trainer_kwargs: Any) -> dict[str, Any]:
    """Train ``model`` on ``coeffs[train]`` with the benchmark code's recipe and score it on ``test``.

    Adam with ``lr`` (default ``1e-3 · batch / 16``) and weight decay ``0.01 · lr``; StepLR every 10 epochs
    (×0.5); validation every epoch; stop once ``patience`` validations in a row did not improve the validation
    loss, never within the first ``start_after`` (the code: ``epoch > 20`` and ``11`` misses); best weights
    restored. Runs on :class:`~sciml.train.Trainer` (no run directory).

    Returns:
        dict: ``test_acc``, ``test_f1``, ``test_loss``, ``val_acc``, ``val_loss``, ``epochs``, ``steps``, ``best``,
        ``stop_reason``, ``train_s`` (wall seconds of the fit), ``batch_size``, ``lr``.
    """
    from sciml.train import EarlyStopping, SupervisedTask, Trainer

    tr, va, te = splits
    bs = batch_size or batch_size_rule(len(y))
    lr = lr if lr is not None else 1e-3 * bs / 16
    drop_last = len(tr) % bs == 1  # a single-sample batch would break the head's batch norm
    kwargs = dict(batch_size=bs, drop_last=drop_last, max_epochs=epochs, optimizer="adam", lr=lr,
                  weight_decay=0.01 * lr, scheduler="step", scheduler_kwargs={"step_size": 10, "gamma": 0.5},
                  scheduler_interval="epoch",
                  early_stopping=EarlyStopping(monitor="val_loss", mode="min", patience=patience,
                                               start_after=start_after, restore_best=True),
                  run_dir=None, seed=seed, progress="none", log_every=log_every, device="cpu", distributed="off")
    kwargs.update(trainer_kwargs)  # e.g. device="cuda", run_dir=... replace the defaults
    trainer = Trainer(model, SupervisedTask("cross_entropy"), train_data=TensorDataset(coeffs[tr], y[tr]),
                      val_data=TensorDataset(coeffs[va], y[va]), **kwargs)
    t0 = time.perf_counter()
    summary = trainer.fit()
    train_s = time.perf_counter() - t0
    k = num_classes or int(y.max()) + 1
    test = evaluate_classifier(model, coeffs[te], y[te], num_classes=k)
    val = evaluate_classifier(model, coeffs[va], y[va], num_classes=k)
    best = summary.get("best") or {}
    return {"test_acc": test["acc"], "test_f1": test["f1"], "test_loss": test["loss"], "val_acc": val["acc"],
            "val_loss": val["loss"], "epochs": int(summary.get("epochs", 0)), "steps": int(summary.get("steps", 0)),
            "best": best, "stop_reason": summary.get("stop_reason"), "train_s": train_s, "batch_size": bs,
            "lr": lr}
