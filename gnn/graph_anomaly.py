r"""Graph-level anomaly detection: data, loss, splits, metrics, a Trainer task and a GIN/GCN baseline.

The pieces RQGNN (:mod:`sciml.gnn.rqgnn`, Dong, Zhang, Wang, ICLR 2024) is trained and evaluated with, usable for
any graph classifier that scores whole graphs:

* :class:`PackedGraphs`: a collection of graphs packed once (features, block-diagonal normalised Laplacian in CSR
  form, Rayleigh-quotient numerators, anomaly labels). A mini-batch is a slice-and-concatenate of precomputed
  arrays (:meth:`PackedGraphs.batch`): no Laplacian, degree or normalisation is rebuilt per batch or epoch.
* :func:`class_balanced_focal_loss`: the class-balanced (Cui et al., CVPR 2019) sigmoid focal loss on two logits
  of the official RQGNN code (:math:`\beta = 0.999`, :math:`\gamma = 1.5`).
* :func:`stratified_split`: 70/15/15 train/val/test, cut per class (the official ``dataset.py`` rule).
* metrics from :mod:`sciml.metrics`: macro-F1, ROC-AUC, the macro-F1-optimal threshold (chosen on validation).
* :class:`GraphAnomalyTask`: loss and metrics for :class:`sciml.train.Trainer`; it also scores monitored sets
  (the test set) at every validation, so both of the official code's model selections (best validation AUC,
  best validation F1) can be read off one run.
* :func:`train_graph_anomaly`: the whole protocol (Adam, batch 512, 100 epochs, patience 50 on val F1).
* :class:`GINClassifier`: a GIN (or GCN) graph classifier baseline trained with the same loss.
* :func:`synthetic_anomaly_graphs`: a generated anomaly set (no files) for the demo and tests.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.rqgnn import normalized_laplacian, rayleigh_quotient
from sciml.metrics import best_threshold, macro_f1, roc_auc
from sciml.sparse import CSRAdjacency, ragged_arange, segment_reduce
from sciml.train import EarlyStopping, Task, Trainer, unwrap

__all__ = ["PackedGraphs", "AnomalyBatch", "class_balanced_weights", "class_balanced_focal_loss",
           "stratified_split", "GraphAnomalyTask", "TiesResetEarlyStopping",
           "train_graph_anomaly", "graph_anomaly_data", "GINClassifier", "synthetic_anomaly_graphs", "anomaly_labels"]


# ---------------------------------------------------------------------------------------------------- loss
def class_balanced_weights(class_counts: Sequence[int] | Tensor, beta: float = 0.999) -> Tensor:
    r"""Class-balanced weights from the effective number of samples (Cui et al., *Class-Balanced Loss Based on
    Effective Number of Samples*, CVPR 2019):

    .. math::
        w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad \sum_c w_c = C

    A class with no samples gets weight 0 (the official RQGNN code's rule for a training set without anomalies).

    Args:
        class_counts (sequence of int): training samples per class :math:`n_c`.
        beta (float): :math:`\beta \in [0, 1)`. (default: ``0.999``)
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64).reshape(-1)
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"class_balanced_weights: `beta` must be in [0, 1), got {beta!r}")
    if (counts < 0).any() or not bool((counts > 0).any()):
        raise ConfigError(f"class_balanced_weights: `class_counts` must be non-negative with one positive, "
                          f"got {counts.tolist()}")
    effective = 1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts)
    w = torch.where(counts > 0, (1.0 - beta) / torch.where(counts > 0, effective, torch.ones_like(effective)),
                    torch.zeros_like(counts))
    return w / w.sum() * counts.numel()


def class_balanced_focal_loss(logits: Tensor, target: Tensor, class_counts: Sequence[int] | Tensor, *,
                              beta: float = 0.999, gamma: float = 1.5) -> Tensor:
    r"""Class-balanced sigmoid focal loss on ``C`` logits per sample, as the official RQGNN code (``CB_loss``).

    Each logit :math:`s_{ij}` is an independent sigmoid against the one-hot target :math:`y_{ij}`:

    .. math::
        \ell = \frac{1}{B}\sum_{i=1}^{B} w_{c_i} \sum_{j=1}^{C} (1 - p_{t,ij})^{\gamma}\,
        \mathrm{BCE}(s_{ij}, y_{ij}),\qquad
        p_{t,ij} = \begin{cases}\sigma(s_{ij}) & y_{ij}=1\\ 1-\sigma(s_{ij}) & y_{ij}=0\end{cases}

    with the class weights :math:`w` of :func:`class_balanced_weights` (from the *training* class counts). The
    modulating factor is evaluated as :math:`\exp(-\gamma(y s + \log(1 + e^{-s})))`, the official form.

    Args:
        logits (Tensor): ``[B, C]``.
        target (Tensor): ``[B]`` class ids.
        class_counts (sequence of int): training samples per class, length ``C``.
        beta (float): class-balance :math:`\beta`. (default: ``0.999``)
        gamma (float): focusing :math:`\gamma` (``0``: plain weighted BCE). (default: ``1.5``)
    """
    if logits.dim() != 2:
        raise ShapeError(f"class_balanced_focal_loss: `logits` must be [batch, classes], got {tuple(logits.shape)}")
    num_classes = logits.size(1)
    weights = class_balanced_weights(class_counts, beta).to(logits.device, logits.dtype)
    if weights.numel() != num_classes:
        raise ShapeError(f"class_balanced_focal_loss: {weights.numel()} class counts for {num_classes} logits")
    if target.shape != (logits.size(0),):
        raise ShapeError(f"class_balanced_focal_loss: `target` must be [batch={logits.size(0)}], got "
                         f"{tuple(target.shape)}")
    onehot = F.one_hot(target.long(), num_classes).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    modulator = torch.exp(-gamma * (onehot * logits + F.softplus(-logits))) if gamma else 1.0
    per_sample = weights.index_select(0, target.long()).unsqueeze(1)
    return (per_sample * modulator * bce).sum() / max(logits.size(0), 1)


# ---------------------------------------------------------------------------------------------------- splits
def stratified_split(y: Tensor, *, train: float = 0.7, test: float = 0.15, seed: int = 0
                     ) -> tuple[Tensor, Tensor, Tensor]:
    r"""Random stratified train/val/test split of samples with labels ``y``.

    Each class is shuffled on its own (a ``torch.Generator`` seeded with ``seed``) and cut as the official RQGNN
    ``dataset.py`` does: the first :math:`\lfloor \text{train}\cdot n_c\rfloor` to train, up to
    :math:`\lfloor (1-\text{test})\cdot n_c\rfloor` to validation, the rest to test, so every split keeps the
    class ratio.

    Args:
        y (Tensor): ``[N]`` class labels.
        train (float): training fraction. (default: ``0.7``)
        test (float): test fraction; validation gets the rest. (default: ``0.15``)
        seed (int): shuffling seed. (default: ``0``)

    Returns:
        ``(train_ids, val_ids, test_ids)``, each sorted.
    """
    if not (0 < train and 0 < test and train + test < 1):
        raise ConfigError(f"stratified_split: need 0 < train, 0 < test, train + test < 1; got train={train}, "
                          f"test={test}")
    y = y.reshape(-1)
    g = torch.Generator().manual_seed(int(seed))
    parts: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).view(-1)
        members = members[torch.randperm(members.numel(), generator=g)]
        n = members.numel()
        cut1, cut2 = int(train * n), int((1 - test) * n)
        for part, ids in zip(parts, (members[:cut1], members[cut1:cut2], members[cut2:])):
            part.append(ids)
    return tuple(torch.cat(p).sort().values for p in parts)  # type: ignore[return-value]


def anomaly_labels(y: Tensor, anomaly: str | int = "minority") -> Tensor:
    """0/1 labels with 1 = anomaly: the least frequent class (``"minority"``, ties: the larger label) or the given
    class id."""
    y = y.reshape(-1).long()
    classes, counts = torch.unique(y, return_counts=True)
    if classes.numel() != 2:
        raise ConfigError(f"anomaly_labels: graph-level anomaly detection needs two classes, found "
                          f"{classes.tolist()}")
    if anomaly == "minority":
        target = int(classes[counts == counts.min()].max())
    elif isinstance(anomaly, int) and anomaly in classes.tolist():
        target = anomaly
    else:
        raise ConfigError(f"anomaly_labels: `anomaly` must be 'minority' or one of the classes {classes.tolist()}, "
                          f"got {anomaly!r}")
    return (y == target).long()


# ---------------------------------------------------------------------------------------------------- data
@dataclass
class AnomalyBatch:
    """A batch of graphs cut out of :class:`PackedGraphs`.

    Attributes:
        x (Tensor): node features ``[N, F]``.
        laplacian (CSRAdjacency): block-diagonal normalised Laplacian ``[N, N]`` (isolated nodes: diagonal 1).
        graph_ptr (Tensor): node pointer ``[G + 1]``.
        rq (Tensor): Rayleigh numerators :math:`\\mathrm{diag}(\\mathbf{X}^\\top\\mathbf{L}\\mathbf{X})` ``[G, F]``
            (scipy's Laplacian convention: isolated nodes contribute 0, as the official code).
        y (Tensor): ``[G]`` labels, 1 = anomaly.
        ids (Tensor): ``[G]`` graph ids in the collection.
        adjacency (CSRAdjacency): the 0/1 adjacency on the Laplacian's pattern (diagonal entries weigh 0), built
            on first use.
    """

    x: Tensor
    laplacian: CSRAdjacency
    graph_ptr: Tensor
    rq: Tensor
    y: Tensor
    ids: Tensor
    adjacency_value: Tensor
    _adjacency: CSRAdjacency | None = field(default=None, repr=False)

    @property
    def num_graphs(self) -> int:
        return self.graph_ptr.numel() - 1

    @property
    def adjacency(self) -> CSRAdjacency:
        if self._adjacency is None:
            self._adjacency = self.laplacian.with_value(self.adjacency_value)
        return self._adjacency

    def to(self, device: Any) -> "AnomalyBatch":
        return AnomalyBatch(self.x.to(device), self.laplacian.to(device), self.graph_ptr.to(device),
                            self.rq.to(device), self.y.to(device), self.ids.to(device),
                            self.adjacency_value.to(device))


class PackedGraphs(torch.utils.data.Dataset):
    r"""A collection of graphs for graph-level anomaly detection, packed once.

    Built from PyG ``Data`` objects (``x``, ``edge_index``, ``y``); self-loops are dropped and duplicate edges
    merged (the graph is treated as unweighted). Computed once, here: the block-diagonal normalised Laplacian
    :math:`\mathbf{I} - \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` of all graphs in CSR form
    (:func:`~sciml.gnn.rqgnn.normalized_laplacian`) and every graph's Rayleigh numerators
    :math:`\mathrm{diag}(\mathbf{X}^\top\mathbf{L}\mathbf{X})` (:func:`~sciml.gnn.rqgnn.rayleigh_quotient`; for
    these, isolated nodes have diagonal 0, scipy's convention that the official code uses). A batch
    (:meth:`batch`) gathers node and CSR-entry ranges of its graphs: O(nodes + edges) index arithmetic, no
    normalisation.

    As a dataset, item ``i`` is the graph id ``i`` (so :meth:`subset` views and :meth:`collate` make the
    :class:`~sciml.train.Trainer`'s batches).

    Args:
        graphs (sequence of Data): the graphs.
        anomaly (str or int): which class is the anomaly (label 1): ``"minority"`` or a class id of ``y``.
            (default: ``"minority"``)
    """

    def __init__(self, graphs: Sequence[Any], *, anomaly: str | int = "minority") -> None:
        if len(graphs) == 0:
            raise ConfigError("PackedGraphs: no graphs")
        xs, edges, counts = [], [], []
        offset = 0
        for i, g in enumerate(graphs):
            if getattr(g, "x", None) is None:
                raise ShapeError(f"PackedGraphs: graph {i} has no node features `x`")
            n = g.x.size(0)
            ei = g.edge_index.long()
            if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
                raise ShapeError(f"PackedGraphs: graph {i} has an edge to a node outside 0..{n - 1}")
            xs.append(g.x.float())
            edges.append(ei + offset)
            counts.append(n)
            offset += n
        widths = {x.size(1) for x in xs}
        if len(widths) != 1:
            raise ShapeError(f"PackedGraphs: graphs have different feature sizes {sorted(widths)}")
        self.x = torch.cat(xs)
        self.node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.tensor(counts), 0)])
        self.raw_y = torch.cat([g.y.reshape(-1)[:1] for g in graphs]).long()
        self.y = anomaly_labels(self.raw_y, anomaly)
        num_nodes = int(self.node_ptr[-1])
        ei = torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long)
        ei = ei[:, ei[0] != ei[1]]
        key = torch.unique(ei[1] * max(num_nodes, 1) + ei[0])
        ei = torch.stack([key % max(num_nodes, 1), key // max(num_nodes, 1)])
        adj = CSRAdjacency.from_batch(edge_index=ei, ptr=self.node_ptr, num_nodes=num_nodes)
        lap = normalized_laplacian(adj)
        self.lap_rowptr, self.lap_col, self.lap_value = lap.rowptr, lap.col, lap.value
        diag = lap.row == lap.col
        self.adj_value = (~diag).to(lap.value.dtype)
        rq_lap = normalized_laplacian(adj, isolated_diagonal=0.0)
        self.rq = rayleigh_quotient(self.x, rq_lap, self.node_ptr)
        self.num_features = self.x.size(1)

    # ------------------------------------------------------------------ dataset protocol
    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    def __getitem__(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"graph {i} out of range for {n} graphs")
        return i % n

    def subset(self, ids: Tensor | Sequence[int]) -> "_Subset":
        """A view whose item ``j`` is the graph id ``ids[j]`` (for the Trainer's ``train_data``/``val_data``)."""
        return _Subset(self, torch.as_tensor(ids, dtype=torch.long).reshape(-1))

    def collate(self, items: list[Any]) -> AnomalyBatch:
        """Graph ids (a list of ints or a tensor) → :class:`AnomalyBatch`; the Trainer's ``collate_fn``."""
        return self.batch(torch.as_tensor(items, dtype=torch.long).reshape(-1))

    @property
    def num_anomalies(self) -> int:
        return int(self.y.sum())

    def class_counts(self, ids: Tensor | None = None) -> list[int]:
        """``[normal, anomalous]`` graph counts (of ``ids``, or all)."""
        y = self.y if ids is None else self.y[torch.as_tensor(ids, dtype=torch.long)]
        return torch.bincount(y, minlength=2).tolist()

    # ------------------------------------------------------------------ batching
    def batch(self, ids: Tensor) -> AnomalyBatch:
        """The graphs ``ids`` (in that order) as one :class:`AnomalyBatch`."""
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
        if ids.numel() == 0:
            raise ShapeError("PackedGraphs.batch: no graph ids")
        if int(ids.min()) < 0 or int(ids.max()) >= len(self):
            raise IndexError(f"PackedGraphs.batch: graph ids must be in [0, {len(self)}), got "
                             f"{int(ids.min())}..{int(ids.max())}")
        start, stop = self.node_ptr[ids], self.node_ptr[ids + 1]
        n = stop - start
        graph_ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(n, 0)])
        nodes = ragged_arange(n, start)
        e0, e1 = self.lap_rowptr[start], self.lap_rowptr[stop]
        m = e1 - e0
        entries = ragged_arange(m, e0)
        shift = torch.repeat_interleave(graph_ptr[:-1] - start, m, output_size=entries.numel())
        col = self.lap_col[entries] + shift
        row_counts = self.lap_rowptr[nodes + 1] - self.lap_rowptr[nodes]
        rowptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(row_counts, 0)])
        num = nodes.numel()
        lap = CSRAdjacency(rowptr, col, self.lap_value[entries], num, num, graph_ptr=graph_ptr)
        return AnomalyBatch(self.x[nodes], lap, graph_ptr, self.rq[ids], self.y[ids], ids,
                            self.adj_value[entries])


class _Subset(torch.utils.data.Dataset):
    def __init__(self, graphs: PackedGraphs, ids: Tensor) -> None:
        self.graphs, self.ids = graphs, ids

    def __len__(self) -> int:
        return self.ids.numel()

    def __getitem__(self, j: int) -> int:
        return int(self.ids[j])


# ---------------------------------------------------------------------------------------------------- task
class TiesResetEarlyStopping(EarlyStopping):
    """Patience as the official RQGNN loop counts it: a value *equal* to the best also resets the count (ties
    count as improvements), and training stops once more than ``patience`` validations in a row were worse."""

    def is_improvement(self, value: float) -> bool:
        if self.best is None:
            return True
        return value <= self.best + self.min_delta if self.mode == "min" else value >= self.best - self.min_delta

    def should_stop(self, value: float) -> bool:
        if self.rule == "patience":
            return self.bad_validations > self.patience
        return super().should_stop(value)


def _model_inputs(model: nn.Module, batch: AnomalyBatch) -> list[Any]:
    keys = getattr(unwrap(model), "input_keys", ("x", "laplacian", "graph_ptr", "rq"))
    return [getattr(batch, k) for k in keys]


class GraphAnomalyTask(Task):
    r"""Trainer task for graph-level anomaly detection with two logits per graph.

    Training loss: :func:`class_balanced_focal_loss` with the training class counts. Validation reports, on the
    validation batch, ``loss``, ``auc`` (ROC-AUC of the softmax probability of class 1), ``f1`` (macro-F1 of the
    argmax, the official metric) and ``f1_best`` (macro-F1 at the threshold chosen on this validation set); and for
    every monitored set ``name`` (e.g. ``"test"``): ``name_auc``, ``name_f1`` and ``name_f1_thr`` (macro-F1 at the
    threshold chosen on validation). Every validation is also appended to :attr:`history` with the epoch count.

    AUC and F1 are not averages over batches: validate with one batch holding the whole validation set
    (``val_batch_size >= len(val_data)``, as :func:`train_graph_anomaly` does).

    The model is called with the batch fields named by its ``input_keys`` (``RQGNN``: ``x, laplacian,
    graph_ptr, rq``; :class:`GINClassifier`: ``x, adjacency, graph_ptr``).

    Args:
        class_counts (sequence of int): training graphs per class ``[normal, anomalous]``.
        beta (float): class-balance :math:`\beta`. (default: ``0.999``)
        gamma (float): focal :math:`\gamma`. (default: ``1.5``)
        monitor (dict, optional): ``{name: AnomalyBatch}`` scored at every validation. (default: ``None``)
    """

    def __init__(self, class_counts: Sequence[int], *, beta: float = 0.999, gamma: float = 1.5,
                 monitor: dict[str, AnomalyBatch] | None = None) -> None:
        self.class_counts = [int(c) for c in class_counts]
        self.beta, self.gamma = float(beta), float(gamma)
        class_balanced_weights(self.class_counts, self.beta)  # validates
        self.monitor = dict(monitor or {})
        self.history: list[dict[str, float]] = []

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return class_balanced_focal_loss(logits, y, self.class_counts, beta=self.beta, gamma=self.gamma)

    def training_step(self, model: nn.Module, batch: AnomalyBatch) -> dict[str, Tensor]:
        return {"loss": self.loss(model(*_model_inputs(model, batch)), batch.y)}

    @staticmethod
    def scores(model: nn.Module, batch: AnomalyBatch) -> tuple[Tensor, Tensor]:
        """``(logits, probability of class 1)``."""
        logits = model(*_model_inputs(model, batch))
        return logits, torch.softmax(logits.double(), dim=1)[:, 1]

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: AnomalyBatch) -> dict[str, Tensor | float]:
        logits, p = self.scores(model, batch)
        y = batch.y
        thr, f1_best = best_threshold(y, p)
        out: dict[str, Tensor | float] = {"loss": self.loss(logits, y), "auc": roc_auc(y, p, single_class="nan"),
                                          "f1": macro_f1(y, logits.argmax(1)), "f1_best": f1_best}
        for name in list(self.monitor):
            mb = self.monitor[name]
            if mb.x.device != batch.x.device:  # monitored sets follow the model's device (moved once)
                mb = self.monitor[name] = mb.to(batch.x.device)
            logits_m, p_m = self.scores(model, mb)
            out[f"{name}_auc"] = roc_auc(mb.y, p_m, single_class="nan")
            out[f"{name}_f1"] = macro_f1(mb.y, logits_m.argmax(1))
            out[f"{name}_f1_thr"] = macro_f1(mb.y, (p_m >= thr).long())
        record = {k: float(v) for k, v in out.items()}
        record["threshold"] = thr
        self.history.append(record)
        return out

    def batch_size(self, batch: AnomalyBatch) -> int:
        return batch.num_graphs


def select(history: list[dict[str, float]], key: str) -> dict[str, float]:
    """The record of ``history`` with the largest ``key`` (ties: the later one, as the official code)."""
    best = None
    for rec in history:
        v = rec[key]
        if not math.isnan(v) and (best is None or v >= best[key]):
            best = rec
    return dict(best) if best is not None else {}


def train_graph_anomaly(model: nn.Module, graphs: PackedGraphs, split: tuple[Tensor, Tensor, Tensor], *,
                        epochs: int = 100, batch_size: int = 512, lr: float = 5e-3, weight_decay: float = 0.0,
                        patience: int = 50, beta: float = 0.999, gamma: float = 1.5, seed: int = 0,
                        run_dir: str | None = None, progress: str = "none", device: str = "cpu",
                        **trainer_kwargs: Any) -> dict[str, Any]:
    r"""Train ``model`` with the official RQGNN protocol through :class:`~sciml.train.Trainer` and report test
    metrics under both model selections.

    Adam (``lr``, ``weight_decay``), ``batch_size`` graphs per step (training order reshuffled every epoch),
    validation every epoch on the whole validation set, early stopping when the validation macro-F1 has not
    reached its best for more than ``patience`` epochs (:class:`TiesResetEarlyStopping`). The test set is scored
    at every validation; the result holds the test metrics at the epoch of best validation AUC (``"by_auc"``) and
    of best validation F1 (``"by_f1"``), ties going to the later epoch, as the official ``main.py``.

    Returns:
        dict: ``by_auc`` and ``by_f1`` (``{"epoch", "val_auc", "val_f1", "test_auc", "test_f1",
        "test_f1_thr", ...}``), ``last`` (the final epoch), ``epochs``, ``stop_reason``, ``train_s`` (wall time
        of :meth:`Trainer.fit`), ``history``.
    """
    train_ids, val_ids, test_ids = split
    counts = graphs.class_counts(train_ids)
    task = GraphAnomalyTask(counts, beta=beta, gamma=gamma, monitor={"test": graphs.batch(test_ids)})
    drop_last = len(train_ids) % batch_size == 1  # batch norm cannot train on a last batch of one graph
    trainer = Trainer(model, task, train_data=graphs.subset(train_ids), val_data=graphs.subset(val_ids),
                      collate_fn=graphs.collate, batch_size=batch_size, val_batch_size=len(val_ids),
                      drop_last=drop_last, optimizer="adam", lr=lr, weight_decay=weight_decay, max_epochs=epochs,
                      early_stopping=TiesResetEarlyStopping(monitor="val_f1", mode="max", patience=patience,
                                                            restore_best=False),
                      seed=seed, run_dir=run_dir, progress=progress, device=device, **trainer_kwargs)
    t0 = time.perf_counter()
    summary = trainer.fit()
    elapsed = time.perf_counter() - t0
    hist = task.history
    for e, rec in enumerate(hist):
        rec["epoch"] = e
    return {"by_auc": select(hist, "auc"), "by_f1": select(hist, "f1"), "last": dict(hist[-1]) if hist else {},
            "epochs": summary["epochs"], "stop_reason": summary["stop_reason"], "train_s": elapsed,
            "history": hist, "class_counts": {"train": counts, "val": graphs.class_counts(val_ids),
                                              "test": graphs.class_counts(test_ids)}}


# ---------------------------------------------------------------------------------------------------- configs
def graph_anomaly_data(path: str | None = None, *, split: str = "train", anomaly: str | int = "minority",
                       train: float = 0.7, test: float = 0.15, split_seed: int = 0, num_graphs: int = 400,
                       anomaly_fraction: float = 0.1, monitor_test: bool = True) -> dict[str, Any]:
    r"""Data builder for configs (``data: {name: graph_anomaly, path: ...}``): graphs packed once
    (:class:`PackedGraphs`), the stratified 70/15/15 split, and what the Trainer and :class:`GraphAnomalyTask`
    need from them.

    Args:
        path (str, optional): a sciml-h5 graph file (``sciml data convert tudataset FOLDER OUT.h5``); without it,
            :func:`synthetic_anomaly_graphs` (``num_graphs``, ``anomaly_fraction``). (default: ``None``)
        split (str): the split group of the file holding all graphs. (default: ``"train"``)
        anomaly (str or int): the anomalous class (see :class:`PackedGraphs`). (default: ``"minority"``)
        train (float), test (float): split fractions; validation gets the rest. (default: ``0.7``, ``0.15``)
        split_seed (int): seed of the split. (default: ``0``)
        monitor_test (bool): score the test set at every validation (``test_auc``, ``test_f1``, ``test_f1_thr``
            in the metrics). (default: ``True``)

    Returns:
        dict: ``train``/``val`` (graph-id views), ``collate_fn``, ``dims`` (``in_channels``, ``out_channels=2``)
        and ``task_kwargs`` (``class_counts`` of the training graphs, ``monitor``), see
        :func:`sciml.experiment.unpack_data`.
    """
    if path is None:
        graphs = synthetic_anomaly_graphs(num_graphs, anomaly_fraction=anomaly_fraction, seed=split_seed)
    else:
        from sciml.datasets.reader import GraphDataset

        ds = GraphDataset(path, split)
        try:
            graphs = [ds[i] for i in range(len(ds))]
        finally:
            ds.close()
    packed = PackedGraphs(graphs, anomaly=anomaly)
    train_ids, val_ids, test_ids = stratified_split(packed.y, train=train, test=test, seed=split_seed)
    monitor = {"test": packed.batch(test_ids)} if monitor_test and test_ids.numel() else {}
    return {"train": packed.subset(train_ids), "val": packed.subset(val_ids), "collate_fn": packed.collate,
            "dims": {"in_channels": packed.num_features, "out_channels": 2},
            "task_kwargs": {"class_counts": packed.class_counts(train_ids), "monitor": monitor}}


# ---------------------------------------------------------------------------------------------------- baseline
class GINClassifier(nn.Module):
    r"""A GIN (or GCN) graph classifier: the baseline trained with the same loss as RQGNN.

    GIN layers (*How Powerful are Graph Neural Networks?*, Xu et al., ICLR 2019), :math:`\epsilon = 0`:
    :math:`\mathbf{h}'_v = \mathrm{MLP}(\mathbf{h}_v + \sum_{u \in N(v)} \mathbf{h}_u)` with a
    Linear–BN–ReLU–Linear–ReLU MLP; or GCN layers (``conv="gcn"``, :math:`\mathrm{ReLU}(\mathrm{BN}(
    \hat{\mathbf{A}}\mathbf{H}\mathbf{W}))`, self-loops added). Readout: the sum (or mean) of every layer's node
    states, concatenated, then Linear–ReLU–Dropout–Linear to ``out_channels`` logits.

    Args:
        in_channels (int): node features.
        hidden_channels (int): width. (default: ``64``)
        out_channels (int): logits. (default: ``2``)
        num_layers (int): message-passing layers. (default: ``3``)
        conv (str): ``"gin"`` or ``"gcn"``. (default: ``"gin"``)
        pool (str): ``"sum"`` or ``"mean"``. (default: ``"sum"``)
        dropout (float): dropout in the head. (default: ``0.4``)

    Call ``model(x, adjacency, graph_ptr)`` with the 0/1 block-diagonal adjacency (``AnomalyBatch.adjacency``).
    """

    input_keys = ("x", "adjacency", "graph_ptr")

    def __init__(self, in_channels: int, hidden_channels: int = 64, out_channels: int = 2, *, num_layers: int = 3,
                 conv: str = "gin", pool: str = "sum", dropout: float = 0.4) -> None:
        super().__init__()
        if conv not in ("gin", "gcn"):
            raise ConfigError(f"GINClassifier: `conv` must be 'gin' or 'gcn', got {conv!r}")
        if pool not in ("sum", "mean"):
            raise ConfigError(f"GINClassifier: `pool` must be 'sum' or 'mean', got {pool!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ConfigError(f"GINClassifier: `num_layers` must be a positive integer, got {num_layers!r}")
        self.conv, self.pool = conv, pool
        sizes = [in_channels] + [hidden_channels] * num_layers
        self.layers = nn.ModuleList()
        for a, b in zip(sizes, sizes[1:]):
            if conv == "gin":
                self.layers.append(nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Linear(b, b),
                                                 nn.ReLU()))
            else:
                self.layers.append(nn.ModuleDict({"lin": nn.Linear(a, b), "norm": nn.BatchNorm1d(b)}))
        self.head = nn.Sequential(nn.Linear(hidden_channels * num_layers, hidden_channels), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden_channels, out_channels))

    def forward(self, x: Tensor, adjacency: CSRAdjacency, graph_ptr: Tensor) -> Tensor:
        if adjacency.shape != (x.size(0), x.size(0)):
            raise ShapeError(f"GINClassifier: the adjacency has shape {adjacency.shape}, expected "
                             f"({x.size(0)}, {x.size(0)})")
        prop = adjacency.normalized("gcn") if self.conv == "gcn" else adjacency
        pooled = []
        h = x
        for layer in self.layers:
            if self.conv == "gin":
                h = layer(h + prop @ h)
            else:
                h = F.relu(layer["norm"](prop @ layer["lin"](h)))
            pooled.append(segment_reduce(h, graph_ptr, self.pool, validate=False))
        return self.head(torch.cat(pooled, dim=1))


# ---------------------------------------------------------------------------------------------------- synthetic
def synthetic_anomaly_graphs(num_graphs: int = 400, *, anomaly_fraction: float = 0.1, min_nodes: int = 12,
                             max_nodes: int = 30, num_features: int = 4, chord_fraction: float = 0.1,
                             flip: float = 0.05, seed: int = 0) -> list[Any]:
    r"""Molecule-sized graphs where the anomalies differ only in how their node labels sit on the graph.

    Every graph is a ring of :math:`n \in [\text{min\_nodes}, \text{max\_nodes}]` nodes plus
    ``chord_fraction``·n random chords. Node features are one-hot categories (``num_features`` of them), drawn the
    same way for every graph: 2 to 4 contiguous arcs of the ring get one random category each, then a fraction
    ``flip`` of the nodes a random one. A normal graph keeps this arrangement (a *smooth*, low-frequency signal on
    the graph); an anomaly (label 1, a fraction ``anomaly_fraction`` of the graphs) has the same categories
    scattered over its nodes at random (a rough, high-frequency signal). The category counts have the same
    distribution in both classes, so a readout that ignores the edges cannot separate them; the Rayleigh quotient
    :math:`\mathbf{x}^\top\mathbf{L}\mathbf{x}` can.

    Returns:
        list of ``Data(x [n, num_features], edge_index [2, E] (both directions), y [1])``.
    """
    from torch_geometric.data import Data

    if not 0 < anomaly_fraction < 1:
        raise ConfigError(f"synthetic_anomaly_graphs: `anomaly_fraction` must be in (0, 1), got {anomaly_fraction}")
    if not 3 <= min_nodes <= max_nodes:
        raise ConfigError(f"synthetic_anomaly_graphs: need 3 <= min_nodes <= max_nodes, got {min_nodes}, "
                          f"{max_nodes}")
    if num_features < 2:
        raise ConfigError(f"synthetic_anomaly_graphs: `num_features` must be >= 2, got {num_features}")
    g = torch.Generator().manual_seed(seed)
    num_anomalies = max(1, round(anomaly_fraction * num_graphs))
    labels = torch.zeros(num_graphs, dtype=torch.long)
    labels[torch.randperm(num_graphs, generator=g)[:num_anomalies]] = 1
    out = []
    for i in range(num_graphs):
        n = int(torch.randint(min_nodes, max_nodes + 1, (1,), generator=g))
        ring = torch.arange(n)
        src = torch.cat([ring, torch.randint(0, n, (int(chord_fraction * n),), generator=g)])
        dst = torch.cat([(ring + 1) % n, torch.randint(0, n, (int(chord_fraction * n),), generator=g)])
        keep = src != dst
        src, dst = src[keep], dst[keep]
        edge_index = torch.unique(torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1), dim=1)
        arcs = int(torch.randint(2, 5, (1,), generator=g))
        cuts = torch.sort(torch.randperm(n - 1, generator=g)[:arcs - 1] + 1).values
        arc_of = torch.bucketize(torch.arange(n), cuts, right=True)
        arc_cat = torch.randint(0, num_features, (arcs,), generator=g)
        cat = arc_cat[arc_of]
        flipped = torch.rand(n, generator=g) < flip
        cat = torch.where(flipped, torch.randint(0, num_features, (n,), generator=g), cat)
        if labels[i] == 1:  # the same categories, scattered over the nodes
            cat = cat[torch.randperm(n, generator=g)]
        else:  # arcs start anywhere on the ring
            cat = torch.roll(cat, int(torch.randint(0, n, (1,), generator=g)))
        x = F.one_hot(cat, num_features).float()
        out.append(Data(x=x, edge_index=edge_index, y=labels[i:i + 1].clone()))
    return out
