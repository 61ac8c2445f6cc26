r"""ForwardGNN for link prediction (§3.4 of *Forward Learning of Graph Neural Networks*, Park et al., ICLR 2024).

* ``"ce"`` — **ForwardGNN-CE** (SF for link prediction): greedy layers :math:`\mathbf{Z}^\ell =
  \mathrm{ReLU}(\mathrm{GNN}_\ell(\mathrm{norm}(\mathbf{Z}^{\ell-1})))`, local loss
  :math:`\mathrm{BCE}(\langle\mathbf{z}_u,\mathbf{z}_v\rangle, y_{uv})` over the fixed positive and negative
  training pairs; score = mean over layers of :math:`\sigma(\langle\mathbf{z}_u^\ell,\mathbf{z}_v^\ell\rangle)`.
* ``"ff"`` — **ForwardGNN-FF**: the pair vector :math:`\mathbf{q}=\mathbf{z}_u\odot\mathbf{z}_v` goes into the
  Forward-Forward loss (:math:`\sum_d q_d^2-\theta`, BCE with 1 for positive and 0 for negative pairs, each
  averaged over its own pairs); score :math:`\sigma(\sum_d q_d^2-\theta)` averaged over layers.
* ``"ce_topdown"`` — **ForwardGNN-CE-Top-To-Input**: all layers trained together (simultaneous), layer :math:`j`'s
  input :math:`[\mathrm{norm}(s_{j-1})\Vert\mathrm{norm}(s_{j+1})]` (the top layer only bottom-up), even-then-odd
  updates, Adam without weight decay; inference: 10 iterations, sigmoid scores of every layer averaged over
  iterations 2..9.

Data: :func:`link_split` (64/16/20 split of the undirected edges with one fixed negative per positive, PyG's
``RandomLinkSplit`` as the official code configures it) packs the three splits into one ``Data``; train with
``Trainer(train_data=[split], val_data=[split], ...)``. ROC-AUC: :func:`sciml.metrics.roc_auc`.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.features import dense
from sciml.gnn.forwardgnn import SFTop2InputTask
from sciml.gnn.forwardgnn_common import ForwardLayer, GreedyForwardTask, ff_logits, fit_full_batch
from sciml.metrics import roc_auc
from sciml.train import Task

__all__ = ["LINK_VARIANTS", "link_split", "ForwardLinkGNN", "LinkForwardTask", "LinkTopDownTask",
           "BackpropLinkTask", "train_link_predictor"]

#: Link-prediction variants of :class:`ForwardLinkGNN`.
LINK_VARIANTS = ("ce", "ff", "ce_topdown")


def link_split(data: Any, *, split_index: int = 0, val: float = 0.16, test: float = 0.2, seed: int | None = None
               ) -> Any:
    r"""Split the undirected edges of ``data`` 64/16/20 into message-passing and supervision sets with one fixed
    random negative per positive in every split (the official code's ``RandomLinkSplit(is_undirected=True,
    num_val=0.16, num_test=0.2, neg_sampling_ratio=1.0, split_labels=False)``, training negatives sampled once),
    seeded with ``seed`` (default ``split_index * 101``, as the official code).

    Returns:
        Data: ``x``; ``edge_index`` (training message-passing edges, both directions; also the validation graph),
        ``test_edge_index`` (training + validation edges), and ``{train,val,test}_edge_label_index`` ``[2, P]`` /
        ``{train,val,test}_edge_label`` ``[P]`` (1 for edges, 0 for sampled non-edges).
    """
    from torch_geometric.data import Data
    from torch_geometric.transforms import RandomLinkSplit

    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ConfigError(f"link_split: val={val} and test={test} must be fractions with val + test < 1")
    seed = split_index * 101 if seed is None else seed
    py_state, np_state = random.getstate(), np.random.get_state()
    try:  # PyG's negative sampling draws from python's and numpy's RNGs too; the caller's streams are restored
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            base = Data(x=data.x, edge_index=data.edge_index, num_nodes=data.num_nodes)
            train, valid, tst = RandomLinkSplit(is_undirected=True, num_val=val, num_test=test,
                                                neg_sampling_ratio=1.0, split_labels=False,
                                                add_negative_train_samples=True)(base)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return Data(x=data.x, edge_index=train.edge_index, test_edge_index=tst.edge_index, num_nodes=data.num_nodes,
                train_edge_label_index=train.edge_label_index, train_edge_label=train.edge_label,
                val_edge_label_index=valid.edge_label_index, val_edge_label=valid.edge_label,
                test_edge_label_index=tst.edge_label_index, test_edge_label=tst.edge_label)


class ForwardLinkGNN(nn.Module):
    r"""The layer stack of a ForwardGNN link predictor (``blocks[k]``: :class:`ForwardLayer`, own optimizer each).

    Args:
        in_channels (int): node features ``F``.
        variant (str): one of :data:`LINK_VARIANTS`. (default: ``"ce"``)
        conv (str): ``"gcn"``, ``"sage"`` or ``"gat"``. (default: ``"gcn"``)
        hidden_channels (int): width. (default: ``128``)
        num_layers (int): layers. (default: ``4``)
        heads (int): GAT heads (concatenated). (default: ``4``)
    """

    def __init__(self, in_channels: int, *, variant: str = "ce", conv: str = "gcn", hidden_channels: int = 128,
                 num_layers: int = 4, heads: int = 4) -> None:
        super().__init__()
        if variant not in LINK_VARIANTS:
            raise ConfigError(f"ForwardLinkGNN: unknown variant {variant!r}; expected one of "
                              f"{', '.join(LINK_VARIANTS)}")
        if num_layers < 1:
            raise ConfigError(f"ForwardLinkGNN: num_layers must be >= 1, got {num_layers}")
        self.variant, self.in_channels = variant, in_channels
        h = hidden_channels
        if variant == "ce_topdown":
            sizes = [in_channels] + [h] * num_layers + [0]
            ins = [sizes[j] + sizes[j + 2] for j in range(num_layers)]
        else:
            ins = [in_channels] + [h] * (num_layers - 1)
        self.blocks = nn.ModuleList(ForwardLayer(conv, i, h, heads=heads, normalize_input=variant != "ce_topdown")
                                    for i in ins)


def _check_split(data: Any) -> None:
    for key in ("x", "edge_index", "test_edge_index", "train_edge_label_index", "val_edge_label_index",
                "test_edge_label_index"):
        if getattr(data, key, None) is None:
            raise ShapeError(f"link prediction needs data.{key}: build the data with link_split(...)")


def _pair_products(z: Tensor, index: Tensor) -> Tensor:
    return z[index[0]] * z[index[1]]


class LinkForwardTask(GreedyForwardTask):
    r"""Greedy ForwardGNN-CE (``loss="ce"``) or ForwardGNN-FF (``loss="ff"``) link prediction; early stopping on
    the validation ROC-AUC (``monitor="val_auc"``). Prefix evaluation: ``evaluate(model, split, depth=k,
    which="val"|"test")`` scores with the first ``k`` layers (validation graph = training edges, test graph =
    training + validation edges).

    Args:
        loss (str): ``"ce"`` or ``"ff"``. (default: ``"ce"``)
        theta (float): FF threshold :math:`\theta`. (default: ``2.0``)
    """

    def __init__(self, *, loss: str = "ce", theta: float = 2.0) -> None:
        super().__init__()
        if loss not in ("ce", "ff"):
            raise ConfigError(f"LinkForwardTask: loss must be 'ce' or 'ff', got {loss!r}")
        self.loss, self.theta = loss, theta

    def build(self, model, data):
        _check_split(data)
        if getattr(model, "variant", None) != self.loss:
            raise ConfigError(f"LinkForwardTask(loss={self.loss!r}) needs ForwardLinkGNN(variant={self.loss!r}), "
                              f"got {getattr(model, 'variant', type(model).__name__)!r}")
        n = data.num_nodes
        adj = model.blocks[0].prepare(data.edge_index, n)
        return {"x": data.x, "adj": {"train": adj, "val": adj,
                                     "test": model.blocks[0].prepare(data.test_edge_index, n)}}

    def block_input(self, model, batch):
        return self.prepare(model, batch)["x"]

    def forward_block(self, model, k, block, inputs, prep):
        return block(inputs, prep["adj"]["train"])

    def local_step(self, model, block_index, block, inputs, batch):
        prep = self.prepare(model, batch)
        z = block(inputs, prep["adj"]["train"])
        q = _pair_products(z, batch.train_edge_label_index)
        label = batch.train_edge_label.to(z.dtype)
        if self.loss == "ce":
            loss = F.binary_cross_entropy_with_logits(q.sum(dim=1), label)
        else:
            logits = ff_logits(q, self.theta)
            pos = label == 1
            loss = F.binary_cross_entropy_with_logits(logits[pos], label[pos]) + \
                F.binary_cross_entropy_with_logits(logits[~pos], label[~pos])
        return {"loss": loss}, z

    def pair_score(self, z: Tensor, index: Tensor) -> Tensor:
        q = _pair_products(z, index)
        if self.loss == "ce":
            return q.sum(dim=1).sigmoid()
        return torch.nan_to_num(ff_logits(q, self.theta)).sigmoid()

    def eval_chains(self, model, prep, which):
        data = prep["__refs__"][1]
        index, adj = getattr(data, f"{which}_edge_label_index"), prep["adj"][which]

        def step(k, block, x):
            z = block(x, adj)
            return z, self.pair_score(z, index)
        return {"pairs": (prep["x"], step)}

    @torch.no_grad()
    def scores(self, model: nn.Module, data: Any, *, depth: int | None = None, which: str = "test") -> Tensor:
        """Mean over the first ``depth`` layers of the pair scores of the ``which`` split's labelled pairs."""
        if which not in ("val", "test"):
            raise ConfigError(f"which must be 'val' or 'test', got {which!r}")
        depth = depth or len(self.blocks(model))
        return self.chain_scores(model, data, depth=depth, which=which)["pairs"] / depth

    def evaluate(self, model, batch, *, depth, which="val"):
        s = self.scores(model, batch, depth=depth, which=which)
        return {"auc": roc_auc(getattr(batch, f"{which}_edge_label"), s)}


class LinkTopDownTask(SFTop2InputTask):
    r"""ForwardGNN-CE-Top-To-Input: the schedule of :class:`~sciml.gnn.forwardgnn.SFTop2InputTask` (even-then-odd
    updates emulated exactly under the Trainer's simultaneous mode, test-time iterations) with the link-prediction
    loss :math:`\mathrm{BCE}(\langle\mathbf{z}_u,\mathbf{z}_v\rangle, y)` and no top-down state above the top
    layer. The official code trains it with Adam without weight decay (``weight_decay=0``).

    Args:
        alternating (bool): even-then-odd updates. (default: ``True``)
        test_time_steps (int): inference iterations. (default: ``10``)
        accumulate_steps (sequence of int, optional): iterations averaged. (default: ``2..9``)
    """

    variant = "ce_topdown"

    def __init__(self, *, alternating: bool = True, test_time_steps: int = 10, accumulate_steps: Any = None) -> None:
        super().__init__(alternating=alternating, test_time_steps=test_time_steps,
                         accumulate_steps=accumulate_steps)

    def build(self, model, data):
        _check_split(data)
        if getattr(model, "variant", None) != "ce_topdown":
            raise ConfigError("LinkTopDownTask needs ForwardLinkGNN(variant='ce_topdown')")
        n = data.num_nodes
        adj = model.blocks[0].prepare(data.edge_index, n)
        return {"x": dense(data.x), "top": None, "adj": adj,
                "eval_adj": {"val": adj, "test": model.blocks[0].prepare(data.test_edge_index, n)}}

    def step_loss(self, out, prep, batch):
        score = _pair_products(out, batch.train_edge_label_index).sum(dim=1)
        return F.binary_cross_entropy_with_logits(score, batch.train_edge_label.to(out.dtype))

    @torch.no_grad()
    def scores(self, model: nn.Module, data: Any, *, which: str = "test") -> Tensor:
        prep = self.prepare(model, data)
        index = getattr(data, f"{which}_edge_label_index")
        count = len(self.accumulate_steps) * len(self.blocks(model))
        total = self.iterate(model, prep, lambda h: _pair_products(h, index).sum(dim=1).sigmoid(),
                             adj=prep["eval_adj"][which])
        return total / count

    def validation_step(self, model, batch):
        return {"auc": roc_auc(batch.val_edge_label, self.scores(model, batch, which="val"))}

    def evaluate(self, model, batch, *, depth=None, which="val"):
        return {"auc": roc_auc(getattr(batch, f"{which}_edge_label"), self.scores(model, batch, which=which))}


class BackpropLinkTask(Task):
    """End-to-end link-prediction task for :class:`~sciml.gnn.forwardgnn.BackpropGNN` (``out_channels=None``):
    dot-product decoder, BCE on the fixed training pairs, validation ROC-AUC (logged as ``val_auc``)."""

    def training_step(self, model, batch):
        z = model(batch.x, batch.edge_index)
        s = _pair_products(z, batch.train_edge_label_index).sum(dim=1)
        return {"loss": F.binary_cross_entropy_with_logits(s, batch.train_edge_label.to(s.dtype))}

    @torch.no_grad()
    def scores(self, model: nn.Module, batch: Any, *, which: str = "test") -> Tensor:
        """Sigmoid dot-product scores of the ``which`` pairs (validation graph: training edges; test graph:
        training + validation edges)."""
        ei = batch.edge_index if which == "val" else batch.test_edge_index
        z = model(batch.x, ei)
        return _pair_products(z, getattr(batch, f"{which}_edge_label_index")).sum(dim=1).sigmoid()

    def validation_step(self, model, batch):
        return {"auc": roc_auc(batch.val_edge_label, self.scores(model, batch, which="val"))}


def train_link_predictor(split: Any, *, variant: str, conv: str = "gcn", num_layers: int = 4,
                         hidden_channels: int = 128, heads: int = 4, lr: float = 1e-3,
                         weight_decay: float | None = None, max_epochs: int = 1000, val_every: int = 2,
                         patience: int = 100, seed: int = 0, progress: str = "none") -> dict[str, Any]:
    """Train a link-prediction variant (:data:`LINK_VARIANTS` or ``"bp"``) on a :func:`link_split` result with the
    paper's protocol. Weight decay 5e-4 except ``"ce_topdown"`` (0), as the official code.

    Returns:
        dict: ``{"variant", "depths": {k: {"test_auc", "val_auc"}}, "train_time_s", "phases", "model", "task"}``.
    """
    from sciml.gnn.forwardgnn import BackpropGNN

    torch.manual_seed(seed)
    wd = (0.0 if variant == "ce_topdown" else 5e-4) if weight_decay is None else weight_decay
    if variant == "bp":
        model: nn.Module = BackpropGNN(split.num_features, None, conv=conv, hidden_channels=hidden_channels,
                                       num_layers=num_layers, heads=heads)
        task: Any = BackpropLinkTask()
    else:
        model = ForwardLinkGNN(split.num_features, variant=variant, conv=conv, hidden_channels=hidden_channels,
                               num_layers=num_layers, heads=heads)
        task = LinkTopDownTask() if variant == "ce_topdown" else LinkForwardTask(loss=variant)
    summary, elapsed = fit_full_batch(model, task, split, monitor="val_auc", lr=lr, weight_decay=wd,
                                      max_epochs=max_epochs, val_every=val_every, patience=patience, seed=seed,
                                      progress=progress, device="cpu")
    depths: dict[int, dict[str, float]] = {}
    if variant in ("ce", "ff"):
        for d in range(1, num_layers + 1):
            depths[d] = {w + "_auc": task.evaluate(model, split, depth=d, which=w)["auc"] for w in ("test", "val")}
    else:
        model.eval()
        depths[num_layers] = {w + "_auc": roc_auc(getattr(split, f"{w}_edge_label"), task.scores(model, split,
                                                                                                 which=w))
                              for w in ("test", "val")}
    return {"variant": variant, "conv": conv, "num_layers": num_layers, "depths": depths,
            "phases": summary.get("phases", []), "epochs": summary.get("epochs"), "train_time_s": elapsed,
            "model": model, "task": task}
