"""Evaluation metrics shared by the suite's tasks and benchmarks (no scikit-learn): ROC-AUC, macro-F1, the
macro-F1-optimal decision threshold and support-weighted F1, on torch tensors."""
from __future__ import annotations

import torch
from torch import Tensor

from sciml.errors import ConfigError, ShapeError

__all__ = ["roc_auc", "macro_f1", "best_threshold", "weighted_f1"]


def roc_auc(labels: Tensor, scores: Tensor, *, single_class: str = "raise") -> float:
    r"""Area under the ROC curve of ``scores`` for binary ``labels`` (1 = positive), as the Mann–Whitney statistic
    :math:`\frac{1}{PN}\sum_{i\in P}\sum_{j\in N}\big([s_i>s_j]+\tfrac12[s_i=s_j]\big)`, computed from average
    ranks in :math:`O(n\log n)` (ties share their mean rank, which counts a tied pair as one half).

    Args:
        labels (Tensor): 0/1 labels.
        scores (Tensor): scores, higher = more positive.
        single_class (str): when one class is absent: ``"raise"`` or ``"nan"`` (return ``nan``, e.g. for a small
            validation split). (default: ``"raise"``)

    Raises:
        ShapeError: shapes differ, or the labels are not all 0/1, or one class is absent (``single_class="raise"``).
    """
    if single_class not in ("raise", "nan"):
        raise ConfigError(f"roc_auc: `single_class` must be 'raise' or 'nan', got {single_class!r}")
    labels, scores = labels.reshape(-1), scores.reshape(-1).double()
    if labels.numel() != scores.numel():
        raise ShapeError(f"roc_auc: labels ({labels.numel()}) and scores ({scores.numel()}) differ in length")
    pos = labels == 1
    if not bool(((labels == 0) | pos).all()):
        raise ShapeError("roc_auc: labels must be 0 or 1")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        if single_class == "nan":
            return float("nan")
        raise ShapeError(f"roc_auc needs both classes, got {n_pos} positives and {n_neg} negatives")
    order = scores.argsort()
    sorted_scores = scores[order]
    # average rank (1-based) of every run of equal scores
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(scores)
    ranks[order] = avg_rank[inverse]
    rank_sum = float(ranks[pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _f1_pair(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> Tensor:
    """Macro-F1 over the two classes from confusion counts (broadcasting); an undefined F1 counts 0."""
    def f1(t, f_p, f_n):
        den = 2 * t + f_p + f_n
        return torch.where(den > 0, 2 * t / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    return (f1(tp, fp, fn) + f1(tn, fn, fp)) / 2


def macro_f1(labels: Tensor, pred: Tensor) -> float:
    r"""Macro-averaged F1 of binary predictions: the mean of the F1 scores of class 1 and class 0
    (:math:`F_1 = 2TP / (2TP + FP + FN)`, 0 when undefined)."""
    labels, pred = labels.reshape(-1).long(), pred.reshape(-1).long()
    if labels.shape != pred.shape:
        raise ShapeError(f"macro_f1: {labels.numel()} labels but {pred.numel()} predictions")
    tp = ((pred == 1) & (labels == 1)).sum().double()
    fp = ((pred == 1) & (labels == 0)).sum().double()
    fn = ((pred == 0) & (labels == 1)).sum().double()
    tn = ((pred == 0) & (labels == 0)).sum().double()
    return float(_f1_pair(tp, fp, fn, tn))


def best_threshold(labels: Tensor, scores: Tensor) -> tuple[float, float]:
    r"""The threshold :math:`t` maximising the macro-F1 of ``scores >= t`` against ``labels``, over every cut
    between distinct scores (:math:`O(n \log n)`), and that F1. The threshold is the midpoint between the two
    scores around the cut; among equal F1 values the highest threshold wins.

    Returns:
        ``(threshold, macro_f1)``.
    """
    labels, scores = labels.reshape(-1).long(), scores.reshape(-1).double()
    if labels.numel() == 0:
        raise ShapeError("best_threshold: no samples")
    order = torch.argsort(scores, descending=True)
    s, y = scores[order], labels[order].double()
    n, pos = s.numel(), float(y.sum())
    # predicted positive = the first k (k = 0..n); only cuts between distinct scores are admissible
    tp = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(y, 0)])
    k = torch.arange(n + 1, dtype=torch.float64)
    fp = k - tp
    fn = pos - tp
    tn = (n - pos) - fp
    f1 = _f1_pair(tp, fp, fn, tn)
    admissible = torch.ones(n + 1, dtype=torch.bool)
    admissible[1:n] = s[:-1] != s[1:]
    f1 = torch.where(admissible, f1, torch.full_like(f1, -1.0))
    best = int(torch.argmax(f1))  # first maximum = fewest predicted positives = highest threshold
    if best == 0:
        t = float(s[0]) + 1.0
    elif best == n:
        t = float(s[-1]) - 1.0 if n else 0.0
    else:
        t = float((s[best - 1] + s[best]) / 2)
    return t, float(f1[best])


def weighted_f1(y_true: Tensor, y_pred: Tensor, num_classes: int) -> float:
    """F1 per class weighted by the class support (scikit-learn's ``average="weighted"``; 0 for a class with no
    predicted and no true members)."""
    total, score = 0, 0.0
    for c in range(num_classes):
        tp = int(((y_pred == c) & (y_true == c)).sum())
        fp = int(((y_pred == c) & (y_true != c)).sum())
        fn = int(((y_pred != c) & (y_true == c)).sum())
        support = tp + fn
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        score += support * f1
        total += support
    return score / total if total else 0.0
