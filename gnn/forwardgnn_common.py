r"""Building blocks shared by the ForwardGNN variants (node classification and link prediction).

From *Forward Learning of Graph Neural Networks* (Park et al., ICLR 2024). A forward layer is
:math:`\mathbf{H}' = \mathrm{ReLU}(\mathrm{GNNConv}(\mathrm{norm}(\mathbf{H})))` with the parameter-free row
normalisation :math:`\mathrm{norm}(\mathbf{h}) = \mathbf{h} / (\lVert\mathbf{h}\rVert_2 + 10^{-8})`; each layer is
trained with its own optimizer on a local loss (through :class:`sciml.train.Trainer` with
``strategy="layer_local"``), and its input is always detached.

This module holds the layer, the goodness functions, the virtual-node graph augmentation and
:class:`GreedyForwardTask`, the base of every greedy (layer-by-layer) variant: it evaluates prefixes of the layer
stack (depth ``1..k``) and memoises the outputs of frozen layers, so that neither the per-step forward through the
frozen layers nor the per-validation prefix evaluation recomputes layers whose weights did not change.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.convs import make_conv
from sciml.gnn.features import is_sparse, sparse_l2_normalize_rows
from sciml.sparse import CSRAdjacency
from sciml.train import LayerLocalTask

__all__ = ["l2_normalize_rows", "ForwardLayer", "ff_logits", "ff_goodness", "ff_loss", "class_dot_logits",
           "virtual_node_edges", "random_wrong_classes", "PreparedTask", "GreedyForwardTask", "parameter_versions",
           "fit_full_batch"]

EPS = 1e-8


def l2_normalize_rows(x: Tensor) -> Tensor:
    r"""Row-wise :math:`\mathbf{x} / (\lVert\mathbf{x}\rVert_2 + 10^{-8})` (ForwardGNN's ``LayerNormalization``;
    no parameters, a zero row stays zero). A sparse ``x`` (fixed input features) gives a cached sparse result."""
    if is_sparse(x):
        return sparse_l2_normalize_rows(x, EPS)
    return x / (x.norm(p=2, dim=1, keepdim=True) + EPS)


class ForwardLayer(nn.Module):
    r"""One ForwardGNN layer, :math:`\mathbf{H}' = \mathrm{ReLU}(\mathrm{conv}(\mathrm{norm}(\mathbf{H}),
    \mathcal{G}))`.

    Args:
        conv (str): ``"gcn"``, ``"sage"`` or ``"gat"`` (GAT: ``heads`` heads of ``out_channels / heads``,
            concatenated).
        in_channels (int): input features.
        out_channels (int): output features. (ForwardGNN: 128)
        heads (int): GAT heads. (default: ``4``)
        normalize_input (bool): apply the row normalisation to the input (the top-down variants normalise their
            states themselves and pass ``False``). (default: ``True``)

    Shapes:
        ``x [N, in_channels]``, ``graph`` (``edge_index`` or :meth:`prepare`) → ``[N, out_channels]``
    """

    def __init__(self, conv: str, in_channels: int, out_channels: int, *, heads: int = 4,
                 normalize_input: bool = True) -> None:
        super().__init__()
        self.conv = make_conv(conv, in_channels, out_channels, heads=heads)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.normalize_input = normalize_input

    def prepare(self, edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
        """The adjacency this layer's convolution uses (built once per ``edge_index``)."""
        return self.conv.prepare(edge_index, num_nodes)

    def forward(self, x: Tensor, graph: Tensor | CSRAdjacency) -> Tensor:
        if self.normalize_input:
            x = l2_normalize_rows(x)
        return F.relu(self.conv(x, graph))


def ff_logits(h: Tensor, theta: float) -> Tensor:
    r"""Forward-Forward training logit :math:`\sum_j h_j^2 - \theta` per row (**sum** of squares)."""
    return h.pow(2).sum(dim=-1) - theta


def ff_goodness(h: Tensor, theta: float) -> Tensor:
    r"""Forward-Forward inference score :math:`\frac{1}{d}\sum_j h_j^2 - \theta` per row (**mean** of squares,
    as the official code scores at inference; it ranks like the sum when all layers have the same width)."""
    return h.pow(2).mean(dim=-1) - theta


def ff_loss(h_pos: Tensor, h_negs: Sequence[Tensor], theta: float) -> Tensor:
    r"""Forward-Forward loss: :math:`\mathrm{BCE}(\sum h^2-\theta, 1)` averaged over the positive rows plus the
    mean over the negative inputs of :math:`\mathrm{BCE}(\sum h^2-\theta, 0)` averaged over their rows."""
    pos = ff_logits(h_pos, theta)
    loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
    if len(h_negs):
        negs = [ff_logits(h, theta) for h in h_negs]
        loss = loss + torch.stack([F.binary_cross_entropy_with_logits(n, torch.zeros_like(n)) for n in negs]).mean()
    return loss


def class_dot_logits(h_nodes: Tensor, h_virtual: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Single-forward logits :math:`z_{v,c} = \langle \mathbf{h}_v, \mathbf{h}_{vn_c}\rangle / \tau`
    (``[num_nodes, C]``)."""
    logits = h_nodes @ h_virtual.t()
    return logits / temperature if temperature != 1.0 else logits


def virtual_node_edges(edge_index: Tensor, num_nodes: int, node_class: Tensor, link_mask: Tensor, *,
                       bidirectional: bool = True) -> Tensor:
    r"""``edge_index`` plus edges between every node :math:`v` with ``link_mask[v]`` and the virtual node
    :math:`N + \text{node\_class}[v]` (node :math:`\to` virtual node, and back when ``bidirectional``). Virtual
    nodes are numbered ``N .. N + C - 1`` after the ``N`` real nodes; the real edges come first.

    Args:
        edge_index: ``[2, E]`` real edges.
        num_nodes: number of real nodes ``N``.
        node_class: ``[N]`` class of the virtual node each linked node connects to (ignored where not linked).
        link_mask: ``[N]`` bool, the nodes that get a link.
        bidirectional: also add virtual → real edges. (default: ``True``)
    """
    if node_class.shape != (num_nodes,) or link_mask.shape != (num_nodes,):
        raise ShapeError(f"node_class and link_mask must have shape [{num_nodes}], got {tuple(node_class.shape)} "
                         f"and {tuple(link_mask.shape)}")
    nodes = link_mask.nonzero().view(-1).to(edge_index.dtype)
    virtual = (node_class[link_mask].to(edge_index.dtype) + num_nodes)
    src, dst = (torch.cat([nodes, virtual]), torch.cat([virtual, nodes])) if bidirectional else (nodes, virtual)
    return torch.cat([edge_index, torch.stack([src, dst])], dim=1)


def random_wrong_classes(y: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """``[N, C - 1]``: for every node a random permutation of the classes other than ``y[v]`` (negative ``k`` of a
    node is column ``k``)."""
    r = torch.rand(y.numel(), num_classes, generator=generator)
    r[torch.arange(y.numel()), y.cpu()] = float("inf")
    return r.argsort(dim=1)[:, : num_classes - 1].to(y.device)


def parameter_versions(blocks: Sequence[nn.Module]) -> tuple:
    """Identity and in-place version of every parameter and buffer of ``blocks``: changes whenever an optimizer
    steps or weights are loaded, so it keys memoised outputs of frozen layers."""
    return tuple((id(t), t._version) for b in blocks for t in list(b.parameters()) + list(b.buffers()))


class _Skipped:
    """Placeholder output of a frozen layer below the memoised frontier (never read)."""

    def __repr__(self) -> str:
        return "<skipped: memoised>"


SKIPPED = _Skipped()


class PreparedTask(LayerLocalTask):
    """A :class:`~sciml.train.LayerLocalTask` that derives its graphs and inputs once per ``(model, batch)``
    (:meth:`build`) and reuses them at every step (the Trainer passes the same full-batch graph every step)."""

    def __init__(self) -> None:
        self._prep_key: tuple | None = None
        self._prep: Any = None

    # ------------------------------------------------------------------ per-batch preparation
    def prepare(self, model: nn.Module, batch: Any) -> Any:
        """Everything derived once from ``(model, batch)`` (augmented graphs, label inputs, adjacencies)."""
        key = (id(model), id(batch))
        if self._prep_key != key or self._prep is None or self._prep["__refs__"][0] is not model \
                or self._prep["__refs__"][1] is not batch:
            prep = self.build(model, batch)
            prep["__refs__"] = (model, batch)  # strong refs: the ids in the key cannot be reused
            self._prep_key, self._prep = key, prep
            self.reset_memo()
        return self._prep

    def build(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        raise NotImplementedError

    def reset_memo(self) -> None:
        """Forget anything derived from the previous prepared batch."""


class GreedyForwardTask(PreparedTask):
    r"""Base of the greedy ForwardGNN tasks (FF-LA, FF-VN, SF, link-prediction CE/FF): layer :math:`k` trains on
    the detached output of the frozen layers :math:`0..k-1` until its own early stop, its best weights are restored,
    then layer :math:`k+1` trains (``Trainer(strategy="layer_local", layer_local_mode="greedy")``).

    Subclasses define, per prepared batch (:meth:`prepare`, cached per model and batch object):

    * :meth:`block_input` and :meth:`forward_block` (what a frozen layer outputs for the next one),
    * :meth:`local_step` (the local loss),
    * evaluation *chains* (:meth:`eval_chains`): named inputs run through the layers, each layer adding a score
      (:meth:`chain_score`); the prediction of depth :math:`k` uses the sum of the scores of layers ``0..k-1``.

    Memoisation (exact, keyed on :func:`parameter_versions` of the layers involved): the Trainer calls
    :meth:`block_forward` for every frozen layer at every step; once the output of the frozen stack is memoised,
    the layers below the frontier return :data:`SKIPPED` and the frontier returns the memoised tensor. Prefix
    evaluation likewise restarts from the memoised input of the layer in training and the score sum below it.
    Memory stays constant in depth (one memoised tensor per chain).
    """

    layer_local_mode = "greedy"

    def __init__(self) -> None:
        super().__init__()
        self.reset_memo()

    def reset_memo(self) -> None:
        self._train_memo: tuple | None = None  # (depth d, versions of blocks < d, prep id, output of block d-1)
        self._eval_memo: dict[str, tuple] = {}  # chain -> (d, versions, prep id, input of block d, score sum)

    def forward_block(self, model: nn.Module, k: int, block: nn.Module, inputs: Any, prep: dict[str, Any]) -> Any:
        """Output of layer ``k`` that feeds layer ``k + 1`` (training path)."""
        raise NotImplementedError

    def eval_chains(self, model: nn.Module, prep: dict[str, Any], which: str) -> dict[str, tuple[Any, Callable]]:
        """``{chain name: (input of layer 0, step(k, block, inputs) -> (outputs, score))}`` for the evaluation
        ``which`` (e.g. ``"val"``, ``"test"``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ LayerLocalTask hooks
    def block_forward(self, model: nn.Module, block_index: int, block: nn.Module, inputs: Any, batch: Any) -> Any:
        prep = self.prepare(model, batch)
        blocks = self.blocks(model)
        memo = self._train_memo
        if memo is not None and memo[0] > block_index and memo[2] == id(prep) \
                and memo[1] == parameter_versions(blocks[: memo[0]]):
            return memo[3] if block_index == memo[0] - 1 else SKIPPED
        if inputs is SKIPPED:
            raise RuntimeError("ForwardGNN memo invalidated between layers of one step")  # pragma: no cover
        out = self.forward_block(model, block_index, block, inputs, prep)
        self._train_memo = (block_index + 1, parameter_versions(blocks[: block_index + 1]), id(prep), out)
        return out

    def block_validation_step(self, model: nn.Module, block_index: int, batch: Any) -> dict[str, Tensor | float]:
        return self.evaluate(model, batch, depth=block_index + 1, which="val")

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, Tensor | float]:
        return self.evaluate(model, batch, depth=len(self.blocks(model)), which="val")

    # ------------------------------------------------------------------ prefix evaluation
    @torch.no_grad()
    def chain_scores(self, model: nn.Module, batch: Any, *, depth: int, which: str) -> dict[str, Any]:
        """Summed layer scores of the first ``depth`` layers for every chain of ``which``."""
        blocks = self.blocks(model)
        if not 1 <= depth <= len(blocks):
            raise ConfigError(f"depth must be in 1..{len(blocks)}, got {depth}")
        prep = self.prepare(model, batch)
        was = [b.training for b in blocks]
        for b in blocks:
            b.eval()
        try:
            out = {}
            for name, (x0, step) in self.eval_chains(model, prep, which).items():
                key = f"{which}/{name}"
                start, x, total = 0, x0, None
                memo = self._eval_memo.get(key)
                if memo is not None and memo[0] <= depth - 1 and memo[2] == id(prep) \
                        and memo[1] == parameter_versions(blocks[: memo[0]]):
                    start, x, total = memo[0], memo[3], memo[4]
                for k in range(start, depth):
                    if k == depth - 1:  # the frontier: the input of the last layer and the scores below it
                        self._eval_memo[key] = (k, parameter_versions(blocks[:k]), id(prep), x, total)
                    x, score = step(k, blocks[k], x)
                    total = score if total is None else _add(total, score)
                out[name] = total
            return out
        finally:
            for b, mode in zip(blocks, was):
                b.train(mode)

    def evaluate(self, model: nn.Module, batch: Any, *, depth: int, which: str) -> dict[str, Tensor | float]:
        raise NotImplementedError


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, (list, tuple)):
        return type(a)(x + y for x, y in zip(a, b))
    return a + b


def fit_full_batch(model: nn.Module, task: Any, data: Any, *, monitor: str, lr: float, weight_decay: float,
                   max_epochs: int, val_every: int, patience: int, seed: int, **trainer_kwargs: Any
                   ) -> tuple[dict[str, Any], float]:
    """The paper's training protocol on one full-batch graph (Adam, validation every ``val_every`` epochs, early
    stopping after ``patience`` validations without a better ``monitor`` (maximised), best weights restored),
    through :class:`sciml.train.Trainer`: layer-local in the task's schedule for a :class:`LayerLocalTask`,
    backprop otherwise. Returns the Trainer's summary and the training wall time in seconds."""
    from sciml.train import EarlyStopping, Trainer

    if isinstance(task, LayerLocalTask):
        strategy: dict[str, Any] = {"strategy": "layer_local", "layer_local_mode": task.layer_local_mode or "greedy"}
    else:
        strategy = {"strategy": "backprop"}
    trainer_kwargs.setdefault("device", "auto" if data.x.is_cuda else "cpu")
    trainer = Trainer(model, task, train_data=[data], val_data=[data], optimizer="adam", lr=lr,
                      weight_decay=weight_decay, max_epochs=max_epochs, val_every=val_every,
                      early_stopping=EarlyStopping(monitor=monitor, mode="max", patience=patience), seed=seed,
                      **strategy, **trainer_kwargs)
    t0 = time.perf_counter()
    summary = trainer.fit()
    return summary, time.perf_counter() - t0
