r"""ForwardGNN for node classification: forward learning of GNNs without backpropagation between layers.

From *Forward Learning of Graph Neural Networks* (Park, Wang, Ahmed, Rossi, Hsieh, Ahn; ICLR 2024), following the
official code (facebookresearch/forwardgnn) where the paper leaves details open. Every variant trains through
:class:`sciml.train.Trainer` with ``strategy="layer_local"``: each layer owns its optimizer, its input is detached,
and no gradient crosses a layer boundary.

========================  ==========================  =====================================================
variant                   Trainer mode                 local loss / inference
========================  ==========================  =====================================================
``"ff_la"`` (FF-LA)       greedy                       FF goodness on label-appended inputs (C-1 negatives);
                                                       argmax over classes of summed per-layer goodness
``"ff_vn"`` (FF-VN)       greedy                       FF goodness, train nodes linked to a virtual node of
                                                       their class (negatives: a wrong class)
``"sf"`` (SF)             greedy                       cross-entropy on node · virtual-node dot products;
                                                       argmax of the per-layer softmax sum
``"sf_top2loss"``         simultaneous                 SF with the mean of the upper layers' states in the loss
``"sf_top2input"``        simultaneous (alternating)   SF with the upper state concatenated to the input;
                                                       10 test-time iterations, probabilities of steps 2..9
========================  ==========================  =====================================================

Backprop baselines with the same convolutions: :class:`BackpropGNN` with :class:`sciml.gnn.tasks.NodeClassification`.
Greedy variants give results for depths ``1..L`` from one run (prefix evaluation, :meth:`NodeForwardTask.evaluate`
with ``depth=k``). See ``docs/forwardgnn.md``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.errors import ConfigError, ShapeError
from sciml.gnn.convs import make_conv
from sciml.gnn.features import cat_rows, dense
from sciml.gnn.forwardgnn_common import (ForwardLayer, GreedyForwardTask, PreparedTask, class_dot_logits,
                                         ff_goodness, ff_loss, l2_normalize_rows, random_wrong_classes,
                                         fit_full_batch, virtual_node_edges)

__all__ = ["NODE_VARIANTS", "ForwardGNN", "BackpropGNN", "NodeForwardTask", "FFLabelAppendingTask",
           "FFVirtualNodeTask", "SingleForwardTask", "SFTop2LossTask", "SFTop2InputTask", "make_node_task",
           "train_node_classifier"]

#: Node-classification variants of :class:`ForwardGNN`.
NODE_VARIANTS = ("ff_la", "ff_vn", "sf", "sf_top2loss", "sf_top2input")
_VIRTUAL = ("ff_vn", "sf", "sf_top2loss", "sf_top2input")
_SIMULTANEOUS = ("sf_top2loss", "sf_top2input")


class ForwardGNN(nn.Module):
    r"""The layer stack of a ForwardGNN node classifier: ``blocks[k]`` is a :class:`ForwardLayer`
    (:math:`\mathrm{ReLU}(\mathrm{conv}(\mathrm{norm}(\mathbf{H})))`), each trained by its own optimizer.

    Input sizes per variant: ``"ff_la"`` appends the ``C`` label columns to the first layer's input;
    ``"sf_top2input"`` feeds layer :math:`j` the concatenation of the state below (``F`` or hidden) and the state
    above (hidden, or the ``C`` label columns for the top layer); the others take ``F`` then hidden. Variants with
    virtual nodes hold their frozen random features :math:`\sim\mathcal{N}(0, 1)` in the buffer ``virtual_x``
    ``[C, F]`` (drawn from the torch RNG at construction, checkpointed with the model, never trained).

    Args:
        in_channels (int): node features ``F``.
        num_classes (int): classes ``C``.
        variant (str): one of :data:`NODE_VARIANTS`. (default: ``"sf"``)
        conv (str): ``"gcn"``, ``"sage"`` or ``"gat"``. (default: ``"gcn"``)
        hidden_channels (int): width of every layer. (default: ``128``)
        num_layers (int): layers ``L``. (default: ``4``)
        heads (int): GAT heads (concatenated, ``hidden_channels / heads`` each). (default: ``4``)
    """

    def __init__(self, in_channels: int, num_classes: int, *, variant: str = "sf", conv: str = "gcn",
                 hidden_channels: int = 128, num_layers: int = 4, heads: int = 4) -> None:
        super().__init__()
        if variant not in NODE_VARIANTS:
            raise ConfigError(f"ForwardGNN: unknown variant {variant!r}; expected one of {', '.join(NODE_VARIANTS)}")
        if num_layers < 1:
            raise ConfigError(f"ForwardGNN: num_layers must be >= 1, got {num_layers}")
        if num_classes < 2:
            raise ConfigError(f"ForwardGNN: num_classes must be >= 2, got {num_classes}")
        self.variant, self.conv_name = variant, conv
        self.in_channels, self.num_classes, self.hidden_channels = in_channels, num_classes, hidden_channels
        h, L = hidden_channels, num_layers
        if variant == "sf_top2input":
            sizes = [in_channels] + [h] * L + [num_classes]
            ins = [sizes[j] + sizes[j + 2] for j in range(L)]
        else:
            ins = [in_channels + (num_classes if variant == "ff_la" else 0)] + [h] * (L - 1)
        normalize = variant not in _SIMULTANEOUS  # the top-down variants normalise their states themselves
        self.blocks = nn.ModuleList(ForwardLayer(conv, i, h, heads=heads, normalize_input=normalize) for i in ins)
        if variant in _VIRTUAL:
            self.register_buffer("virtual_x", torch.randn(num_classes, in_channels))
        else:
            self.virtual_x = None

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, conv={self.conv_name!r}, num_classes={self.num_classes}"


class BackpropGNN(nn.Module):
    r"""End-to-end baseline with the same convolutions, as PyG's ``GCN``/``GraphSAGE``/``GAT`` models used by the
    official code: ``L`` convolutions ``F → hidden → … → out`` with ReLU between them (none after the last),
    dropout 0. GAT: hidden layers 4 heads concatenated; the output layer (``out_channels`` given) averages its 4
    heads. With ``out_channels=None`` the last layer outputs ``hidden_channels`` (link prediction).

    Args:
        in_channels (int): input features.
        out_channels (int, optional): classes, or ``None`` for embeddings.
        conv (str): ``"gcn"``, ``"sage"`` or ``"gat"``. (default: ``"gcn"``)
        hidden_channels (int): hidden width. (default: ``128``)
        num_layers (int): convolutions. (default: ``2``)
        heads (int): GAT heads. (default: ``4``)

    Shapes:
        ``x [N, F]``, ``edge_index [2, E]`` → ``[N, out_channels or hidden_channels]``
    """

    def __init__(self, in_channels: int, out_channels: int | None, *, conv: str = "gcn", hidden_channels: int = 128,
                 num_layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"BackpropGNN: num_layers must be >= 1, got {num_layers}")
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels or hidden_channels]
        convs = []
        for j in range(num_layers):
            last_to_out = j == num_layers - 1 and out_channels is not None
            convs.append(make_conv(conv, sizes[j], sizes[j + 1], heads=heads, concat=not last_to_out))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for j, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if j < len(self.convs) - 1:
                x = F.relu(x)
        return x


# ---------------------------------------------------------------------------------------------- helpers
def _check_node_data(model: ForwardGNN, data: Any, variant: str | tuple[str, ...]) -> None:
    variants = (variant,) if isinstance(variant, str) else variant
    if getattr(model, "variant", None) not in variants:
        raise ConfigError(f"this task needs a ForwardGNN with variant in {variants}, got "
                          f"{getattr(model, 'variant', type(model).__name__)!r}")
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        if getattr(data, key, None) is None:
            raise ShapeError(f"ForwardGNN node classification needs data.{key}")
    if data.x.size(1) != model.in_channels:
        raise ShapeError(f"data.x has {data.x.size(1)} features, the model expects {model.in_channels}")
    if int(data.y.max()) >= model.num_classes or int(data.y.min()) < 0:
        raise ShapeError(f"data.y must lie in 0..{model.num_classes - 1}, got {int(data.y.min())}.."
                         f"{int(data.y.max())}")


def _labelled_and_eval(data: Any, which: str) -> tuple[Tensor, Tensor]:
    """Nodes whose labels the FF inference may use, and the nodes evaluated: validation uses the training labels;
    the test uses training and validation labels (as the official code)."""
    if which == "val":
        return data.train_mask, data.val_mask
    if which == "test":
        return data.train_mask | data.val_mask, data.test_mask
    raise ConfigError(f"which must be 'val' or 'test', got {which!r}")


def _label_columns(y: Tensor, labelled: Tensor, num_classes: int, label: Tensor | None = None,
                   eval_mask: Tensor | None = None, eval_class: int | None = None) -> Tensor:
    """``[N, C]`` appended label columns: one-hot of ``label`` (default ``y``) on ``labelled`` nodes, one-hot of
    ``eval_class`` on ``eval_mask`` nodes, the uniform vector ``1/C`` elsewhere."""
    cols = torch.full((y.numel(), num_classes), 1.0 / num_classes, device=y.device)
    lab = y if label is None else label
    cols[labelled] = F.one_hot(lab[labelled], num_classes).float()
    if eval_mask is not None:
        cols[eval_mask] = F.one_hot(torch.tensor(eval_class, device=y.device), num_classes).float()
    return cols


def _accuracy(pred: Tensor, y: Tensor, mask: Tensor) -> float:
    return float((pred[mask] == y[mask]).float().mean()) if bool(mask.any()) else float("nan")


class NodeForwardTask:
    """Evaluation API shared by the node-classification tasks.

    ``evaluate(model, data, depth=k, which="val"|"test")`` returns ``{"acc": ...}`` (fraction in ``[0, 1]``) of the
    prefix of ``k`` layers (greedy variants; the top-down variants always use all layers), and
    ``predict(model, data, depth=k, which=...)`` the predicted class of every real node.
    """


# ---------------------------------------------------------------------------------------------- SF
class SingleForwardTask(GreedyForwardTask, NodeForwardTask):
    r"""Single-Forward (SF, §3.2 of the paper): one augmented graph where every *training* node is linked (both
    directions) to the virtual node of its class; validation and test nodes get no class links, in training and at
    inference. Layer :math:`\ell`'s local loss is the cross-entropy of
    :math:`z_{v,c} = \langle\mathbf{h}_v^\ell, \mathbf{h}_{vn_c}^\ell\rangle/\tau` over the training nodes;
    inference predicts :math:`\arg\max_c \sum_\ell \mathrm{softmax}_c(z^\ell_{v,c})`.

    Args:
        temperature (float): :math:`\tau`. (default: ``1.0``)
        bidirectional (bool): virtual-node edges in both directions. (default: ``True``)
    """

    variant: str | tuple[str, ...] = "sf"

    def __init__(self, *, temperature: float = 1.0, bidirectional: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature, self.bidirectional = temperature, bidirectional

    def build(self, model: nn.Module, data: Any) -> dict[str, Any]:
        _check_node_data(model, data, self.variant)
        n = data.num_nodes
        edge_index = virtual_node_edges(data.edge_index, n, data.y, data.train_mask, bidirectional=self.bidirectional)
        x = cat_rows(data.x, model.virtual_x.to(data.x.dtype))
        return {"n": n, "x": x, "edge_index": edge_index, "adj": model.blocks[0].prepare(edge_index, x.size(0)),
                "train_y": data.y[data.train_mask]}

    def sf_logits(self, h: Tensor, prep: dict[str, Any], mask: Tensor | None = None) -> Tensor:
        n = prep["n"]
        nodes = h[:n] if mask is None else h[:n][mask]
        return class_dot_logits(nodes, h[n:], self.temperature)

    def block_input(self, model: nn.Module, batch: Any) -> Tensor:
        return self.prepare(model, batch)["x"]

    def forward_block(self, model, k, block, inputs, prep):
        return block(inputs, prep["adj"])

    def local_step(self, model, block_index, block, inputs, batch):
        prep = self.prepare(model, batch)
        h = block(inputs, prep["adj"])
        logits = self.sf_logits(h, prep, batch.train_mask)
        loss = F.cross_entropy(logits, prep["train_y"])
        return {"loss": loss}, h

    def eval_chains(self, model, prep, which):
        def step(k, block, x):
            h = block(x, prep["adj"])
            return h, self.sf_logits(h, prep).softmax(dim=1)
        return {"sf": (prep["x"], step)}

    @torch.no_grad()
    def predict(self, model: nn.Module, data: Any, *, depth: int | None = None, which: str = "test") -> Tensor:
        depth = depth or len(self.blocks(model))
        return self.chain_scores(model, data, depth=depth, which="all")["sf"].argmax(dim=1)

    def evaluate(self, model, batch, *, depth, which="val"):
        pred = self.predict(model, batch, depth=depth)
        out = {"acc": _accuracy(pred, batch.y, _labelled_and_eval(batch, which)[1])}
        if which == "val":  # SF's inference does not depend on the labelled set: the test accuracy is free
            out["test_acc"] = _accuracy(pred, batch.y, batch.test_mask)
        return out


# ---------------------------------------------------------------------------------------------- FF-LA
class FFLabelAppendingTask(GreedyForwardTask, NodeForwardTask):
    r"""Forward-Forward with label appending (FF-LA, §3.1, Eq. 4): the positive input of a training node is
    :math:`[\mathbf{x}_v \Vert \mathbf{e}_{y_v}]`, of any other node :math:`[\mathbf{x}_v \Vert \frac1C\mathbf{1}]`;
    negative input :math:`k` replaces the training nodes' one-hot by the :math:`k`-th of a random permutation of
    their wrong classes (drawn once, ``min(num_negs, C-1)`` negatives; the official scripts use all :math:`C-1`).
    The graph is the same for all inputs. Layer loss (training nodes):
    :math:`\mathrm{BCE}(\sum_j h_j^2-\theta, 1) + \mathrm{mean}_k\,\mathrm{BCE}(\sum_j h_{k,j}^2-\theta, 0)`.
    Inference runs one input per class :math:`c` (evaluated nodes get :math:`\mathbf{e}_c`, labelled nodes their
    one-hot: training nodes for validation, training + validation nodes for the test) and predicts
    :math:`\arg\max_c\sum_\ell(\frac1d\sum_j h_j^2-\theta)` (mean of squares at inference, sum in training).

    Args:
        theta (float): :math:`\theta`. (default: ``2.0``)
        num_negs (int): negatives per node (capped at ``C - 1``). (default: ``100``)
        seed (int): seed of the negative classes. (default: ``0``)
    """

    variant: str | tuple[str, ...] = "ff_la"

    def __init__(self, *, theta: float = 2.0, num_negs: int = 100, seed: int = 0) -> None:
        super().__init__()
        if num_negs < 1:
            raise ConfigError(f"num_negs must be >= 1, got {num_negs}")
        self.theta, self.num_negs, self.seed = theta, num_negs, seed

    def build(self, model, data):
        _check_node_data(model, data, self.variant)
        c, y, train = model.num_classes, data.y, data.train_mask
        neg_classes = random_wrong_classes(y, c, torch.Generator().manual_seed(self.seed))
        num_negs = min(self.num_negs, c - 1)
        x = dense(data.x)
        pos = torch.cat([x, _label_columns(y, train, c)], dim=1)
        negs = [torch.cat([x, _label_columns(y, train, c, label=neg_classes[:, k])], dim=1)
                for k in range(num_negs)]
        return {"inputs": (pos, *negs), "neg_classes": neg_classes[:, :num_negs],
                "adj": model.blocks[0].prepare(data.edge_index, data.num_nodes)}

    def block_input(self, model, batch):
        return self.prepare(model, batch)["inputs"]

    def forward_block(self, model, k, block, inputs, prep):
        return tuple(block(t, prep["adj"]) for t in inputs)

    def local_step(self, model, block_index, block, inputs, batch):
        prep = self.prepare(model, batch)
        outs = tuple(block(t, prep["adj"]) for t in inputs)
        train = batch.train_mask
        loss = ff_loss(outs[0][train], [o[train] for o in outs[1:]], self.theta)
        return {"loss": loss}, outs

    def eval_inputs(self, model: ForwardGNN, data: Any, which: str) -> list[Tensor]:
        """One input per class ``c`` for the evaluation ``which``."""
        labelled, evaluated = _labelled_and_eval(data, which)
        return [torch.cat([dense(data.x), _label_columns(data.y, labelled, model.num_classes, eval_mask=evaluated,
                                                  eval_class=c)], dim=1) for c in range(model.num_classes)]

    def eval_chains(self, model, prep, which):
        key = f"eval_{which}"
        if key not in prep:
            prep[key] = self.eval_inputs(model, prep["__refs__"][1], which)

        def step(k, block, x):
            h = block(x, prep["adj"])
            return h, ff_goodness(h, self.theta)
        return {f"class{c}": (x0, step) for c, x0 in enumerate(prep[key])}

    @torch.no_grad()
    def class_scores(self, model: nn.Module, data: Any, *, depth: int | None = None, which: str = "test") -> Tensor:
        """``[N, C]`` accumulated goodness of every node under every candidate class."""
        depth = depth or len(self.blocks(model))
        scores = self.chain_scores(model, data, depth=depth, which=which)
        return torch.stack([scores[f"class{c}"] for c in range(model.num_classes)], dim=1)

    def predict(self, model, data, *, depth=None, which="test"):
        return self.class_scores(model, data, depth=depth, which=which).argmax(dim=1)

    def evaluate(self, model, batch, *, depth, which="val"):
        pred = self.predict(model, batch, depth=depth, which=which)
        return {"acc": _accuracy(pred, batch.y, _labelled_and_eval(batch, which)[1])}


# ---------------------------------------------------------------------------------------------- FF-VN
class FFVirtualNodeTask(FFLabelAppendingTask):
    r"""Forward-Forward with virtual nodes (FF-VN, §3.1, Eq. 5): ``C`` virtual nodes with frozen random features;
    the positive graph links every training node (both directions) to the virtual node of its class, negative
    graph :math:`k` to the :math:`k`-th random wrong class. All graphs share the node features (the next layer's
    input is the positive graph's output, also for the negatives). FF loss on the real training nodes. Inference
    builds one graph per class :math:`c` (labelled nodes linked to their class, evaluated nodes to :math:`c`) and
    predicts the argmax of the real nodes' summed per-layer goodness (mean of squares :math:`-\theta`).

    Args:
        theta (float): :math:`\theta`. (default: ``2.0``)
        num_negs (int): negative graphs (capped at ``C - 1``). (default: ``100``)
        seed (int): seed of the negative classes. (default: ``0``)
        bidirectional (bool): virtual-node edges in both directions. (default: ``True``)
    """

    variant = "ff_vn"

    def __init__(self, *, theta: float = 2.0, num_negs: int = 100, seed: int = 0, bidirectional: bool = True) -> None:
        super().__init__(theta=theta, num_negs=num_negs, seed=seed)
        self.bidirectional = bidirectional

    def _graph(self, model, data, node_class, link_mask):
        ei = virtual_node_edges(data.edge_index, data.num_nodes, node_class, link_mask,
                                bidirectional=self.bidirectional)
        return ei, model.blocks[0].prepare(ei, data.num_nodes + model.num_classes)

    def build(self, model, data):
        _check_node_data(model, data, self.variant)
        c, y, train = model.num_classes, data.y, data.train_mask
        neg_classes = random_wrong_classes(y, c, torch.Generator().manual_seed(self.seed))[:, : min(self.num_negs,
                                                                                                   c - 1)]
        graphs = [self._graph(model, data, y, train)]
        graphs += [self._graph(model, data, neg_classes[:, k], train) for k in range(neg_classes.size(1))]
        x = cat_rows(data.x, model.virtual_x.to(data.x.dtype))
        return {"n": data.num_nodes, "x": x, "graphs": graphs, "adj": graphs[0][1], "neg_classes": neg_classes}

    def block_input(self, model, batch):
        return self.prepare(model, batch)["x"]

    def forward_block(self, model, k, block, inputs, prep):
        return block(inputs, prep["adj"])

    def local_step(self, model, block_index, block, inputs, batch):
        prep = self.prepare(model, batch)
        n, train = prep["n"], batch.train_mask
        outs = [block(inputs, adj) for _, adj in prep["graphs"]]
        loss = ff_loss(outs[0][:n][train], [o[:n][train] for o in outs[1:]], self.theta)
        return {"loss": loss}, outs[0]

    def eval_chains(self, model, prep, which):
        key = f"eval_{which}"
        data = prep["__refs__"][1]
        if key not in prep:
            labelled, evaluated = _labelled_and_eval(data, which)
            graphs = []
            for c in range(model.num_classes):
                node_class = data.y.clone()
                node_class[evaluated] = c
                graphs.append(self._graph(model, data, node_class, labelled | evaluated))
            prep[key] = graphs
        n = prep["n"]

        def make_step(adj):
            def step(k, block, x):
                h = block(x, adj)
                return h, ff_goodness(h[:n], self.theta)
            return step
        return {f"class{c}": (prep["x"], make_step(adj)) for c, (_, adj) in enumerate(prep[key])}


# ---------------------------------------------------------------------------------------------- top-down variants
class _TopDownTask(PreparedTask, NodeForwardTask):
    """Shared plumbing of the simultaneous SF variants: the augmented graph of SF, states kept in the task (and
    checkpointed through :meth:`state_dict`), whole-model validation."""

    variant = "sf_top2loss"
    layer_local_mode = "simultaneous"

    def __init__(self, *, temperature: float = 1.0, bidirectional: bool = True) -> None:
        super().__init__()
        self._sf = SingleForwardTask(temperature=temperature, bidirectional=bidirectional)
        self._sf.variant = self.variant
        self.temperature = temperature
        self.states: list[Tensor] | None = None

    def build(self, model, data):  # the top-down states are concatenated with (normalised) x: dense
        prep = self._sf.build(model, data)
        return dict(prep, x=dense(prep["x"]))

    def reset_memo(self) -> None:
        self.states = None

    def block_input(self, model, batch):
        return self.prepare(model, batch)["x"]

    def state_dict(self) -> dict[str, Any]:
        return {"states": [s.detach().cpu() for s in self.states] if self.states is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        states = (state or {}).get("states")
        self._loaded_states = states

    def _restore_loaded(self, prep: dict[str, Any]) -> None:
        loaded = getattr(self, "_loaded_states", None)
        if loaded is not None and self.states is None:
            self.states = [s.to(prep["x"].device) for s in loaded]
        self._loaded_states = None

    def validation_step(self, model, batch):
        pred = self.predict(model, batch)
        return {"acc": _accuracy(pred, batch.y, batch.val_mask), "test_acc": _accuracy(pred, batch.y, batch.test_mask)}

    def evaluate(self, model, batch, *, depth=None, which="val"):
        if depth not in (None, len(self.blocks(model))):
            raise ConfigError(f"{type(self).__name__} trains all layers together: evaluate depth "
                              f"{len(self.blocks(model))} (one run per depth), got {depth}")
        pred = self.predict(model, batch)
        mask = batch.val_mask if which == "val" else batch.test_mask
        return {"acc": _accuracy(pred, batch.y, mask)}


class SFTop2LossTask(_TopDownTask):
    r"""SF with the top-down signal in the loss (SF-Top-To-Loss, §3.3, Eq. 8). All layers train at every step
    (``layer_local_mode="simultaneous"``; the official code clips each layer's gradient norm at 1.0: pass
    ``grad_clip=1.0`` to the Trainer). States: :math:`s_0=\mathrm{norm}(\mathbf{X})`,
    :math:`s_{\ell+1}=\mathrm{norm}(o_\ell)` of the previous step, initialised by one bottom-up pass. Layer
    :math:`j` computes :math:`o_j=\mathrm{GNN}_j(s_j)` and trains on
    :math:`\bar e_j=\mathrm{mean}(o_j, s_{j+2},\dots,s_L)` with the SF loss. Inference: a fresh bottom-up pass,
    then :math:`\arg\max_c\sum_j\mathrm{softmax}_c(\bar e_j)`.

    As in the official code, the bottom-up pass feeds each layer the *unnormalised* output of the one below (the
    stored states are normalised); training then feeds normalised states.
    """

    variant = "sf_top2loss"

    def bottom_up(self, model: nn.Module, prep: dict[str, Any]) -> list[Tensor]:
        with torch.no_grad():
            x = prep["x"]
            states = [l2_normalize_rows(x)]
            for block in self.blocks(model):
                x = block(x, prep["adj"])
                states.append(l2_normalize_rows(x))
        return states

    def _embedding(self, o: Tensor, states: list[Tensor], j: int) -> Tensor:
        above = states[j + 2:]
        return torch.stack([o] + [s.detach() for s in above]).mean(dim=0) if above else o

    def local_step(self, model, block_index, block, inputs, batch):
        prep = self.prepare(model, batch)
        self._restore_loaded(prep)
        j, num_layers = block_index, len(self.blocks(model))
        if j == 0:
            if self.states is None:
                self.states = self.bottom_up(model, prep)
            self._new = [self.states[0]] + [None] * num_layers
        o = block(self.states[j].detach(), prep["adj"])
        e = self._embedding(o, self.states, j)
        loss = F.cross_entropy(self._sf.sf_logits(e, prep, batch.train_mask), prep["train_y"])
        self._new[j + 1] = l2_normalize_rows(o).detach()
        if j == num_layers - 1:
            self.states = self._new
        return {"loss": loss}, o

    @torch.no_grad()
    def predict(self, model, data, *, depth=None, which="test"):
        prep = self.prepare(model, data)
        blocks = self.blocks(model)
        modes = [b.training for b in blocks]
        for b in blocks:
            b.eval()
        try:
            states = self.bottom_up(model, prep)
            total = 0
            for j, block in enumerate(blocks):
                e = self._embedding(block(states[j], prep["adj"]), states, j)
                total = total + self._sf.sf_logits(e, prep).softmax(dim=1)
        finally:
            for b, m in zip(blocks, modes):
                b.train(m)
        return total.argmax(dim=1)


class SFTop2InputTask(_TopDownTask):
    r"""SF with the top-down signal in the input (SF-Top-To-Input, §3.3, Eq. 7, Alg. 3). States
    :math:`[s_0=\mathbf{X}, s_1..s_L, s_{L+1}=\mathbf{Y}]` where :math:`\mathbf{Y}` holds the training nodes'
    one-hot labels, :math:`1/C` for the other real nodes and :math:`\mathbf{e}_c` for virtual node :math:`c`.
    Layer :math:`j` computes :math:`s_{j+1} = \mathrm{GNN}_j([\mathrm{norm}(s_j)\Vert\mathrm{norm}(s_{j+2})])` with
    the SF loss; the bottom-up initialisation uses zeros for the top-down part.

    With ``alternating=True`` (the official scripts) each step first updates the even layers (0, 2, …) from the
    previous step's states, then the odd layers from the fresh even states. The Trainer calls the layers in order
    ``0, 1, 2, …`` and steps every optimizer after all of them; this task computes an even layer's output when the
    odd layer below needs it (or at its own turn) from the previous step's states, so every layer sees exactly the
    inputs of the even-then-odd schedule. (Each layer's output depends only on its own weights, which change only
    at the optimizer step, so the order of the backward passes does not matter.)

    Inference: bottom-up initialisation, ``test_time_steps`` iterations of the same schedule, and the argmax of the
    softmax probabilities of every layer summed over the iterations in ``accumulate_steps`` (default ``2..9``).

    Args:
        alternating (bool): even-then-odd updates. (default: ``True``)
        test_time_steps (int): inference iterations. (default: ``10``)
        accumulate_steps (sequence of int, optional): iterations whose probabilities are summed.
            (default: ``range(2, test_time_steps)``)
        temperature (float): :math:`\tau`. (default: ``1.0``)
    """

    variant = "sf_top2input"

    def __init__(self, *, alternating: bool = True, test_time_steps: int = 10,
                 accumulate_steps: Any = None, temperature: float = 1.0, bidirectional: bool = True) -> None:
        super().__init__(temperature=temperature, bidirectional=bidirectional)
        self.alternating, self.test_time_steps = alternating, test_time_steps
        steps = list(range(2, test_time_steps)) if accumulate_steps is None else [int(t) for t in accumulate_steps]
        if not steps or any(not 0 <= t < test_time_steps for t in steps):
            raise ConfigError(f"accumulate_steps must be non-empty and inside 0..{test_time_steps - 1}, got {steps}")
        self.accumulate_steps = steps
        self._pending: dict[int, Tensor] = {}

    def build(self, model, data):
        prep = super().build(model, data)
        c, n = model.num_classes, data.num_nodes
        top = torch.cat([_label_columns(data.y, data.train_mask, c), torch.eye(c)], dim=0).to(prep["x"])
        prep["top"] = top
        return prep

    @staticmethod
    def layer_input(prev: Tensor, nxt: Tensor | None) -> Tensor:
        """``[norm(prev) || norm(nxt)]`` (just ``norm(prev)`` for a top layer without a top-down state)."""
        if nxt is None:
            return l2_normalize_rows(prev).detach()
        return torch.cat([l2_normalize_rows(prev), l2_normalize_rows(nxt)], dim=1).detach()

    def bottom_up(self, model: nn.Module, prep: dict[str, Any], x: Tensor | None = None,
                  adj: Any = None) -> list[Tensor | None]:
        """States after one bottom-up pass with zero top-down inputs (``[x, s_1..s_L, top]``)."""
        adj = prep["adj"] if adj is None else adj
        with torch.no_grad():
            x = prep["x"] if x is None else x
            states: list[Tensor | None] = [x]
            for block in self.blocks(model):
                zeros = x.new_zeros(x.size(0), block.in_channels - x.size(1))
                x = block(self.layer_input(x, zeros), adj)
                states.append(x)
            states.append(prep.get("top"))
        return states

    def _inputs(self, j: int, states: list, new: list, num_layers: int) -> Tensor:
        """Input of layer ``j`` under the update schedule (``new`` holds this step's outputs so far)."""
        if self.alternating and j % 2 == 1:
            nxt = states[j + 2] if j + 1 == num_layers else new[j + 2]
            return self.layer_input(new[j], nxt)
        return self.layer_input(states[j], states[j + 2])

    def step_loss(self, out: Tensor, prep: dict[str, Any], batch: Any) -> Tensor:
        """Local loss of a layer output (SF: cross-entropy of the node · virtual-node logits)."""
        return F.cross_entropy(self._sf.sf_logits(out, prep, batch.train_mask), prep["train_y"])

    def local_step(self, model, block_index, block, inputs, batch):
        prep = self.prepare(model, batch)
        self._restore_loaded(prep)
        blocks = self.blocks(model)
        j, num_layers = block_index, len(blocks)
        if j == 0:
            if self.states is None:
                self.states = self.bottom_up(model, prep)
            self._new = [self.states[0]] + [None] * num_layers + [self.states[-1]]
            self._pending = {}
        states, new = self.states, self._new

        def output(i: int) -> Tensor:
            if i not in self._pending:
                self._pending[i] = blocks[i](self._inputs(i, states, new, num_layers), prep["adj"])
                new[i + 1] = self._pending[i].detach()
            return self._pending[i]

        if self.alternating and j % 2 == 1 and j + 1 < num_layers:
            output(j + 1)  # the even layer above, from the previous step's states (its turn in the schedule)
        o = output(j)
        loss = self.step_loss(o, prep, batch)
        if j == num_layers - 1:
            self.states, self._pending = list(new), {}
        return {"loss": loss}, o

    def state_dict(self) -> dict[str, Any]:
        if self.states is None:
            return {"states": None}
        return {"states": [s.detach().cpu() if s is not None else None for s in self.states]}

    def _restore_loaded(self, prep: dict[str, Any]) -> None:
        loaded = getattr(self, "_loaded_states", None)
        if loaded is not None and self.states is None:
            self.states = [s.to(prep["x"].device) if s is not None else None for s in loaded]
        self._loaded_states = None

    @torch.no_grad()
    def iterate(self, model: nn.Module, prep: dict[str, Any], score: Any, *, x: Tensor | None = None,
                adj: Any = None) -> Tensor:
        """Test-time inference: bottom-up initialisation, ``test_time_steps`` iterations of the update schedule,
        and the sum of ``score(layer output)`` over every layer and the iterations in ``accumulate_steps``."""
        adj = prep["adj"] if adj is None else adj
        blocks = self.blocks(model)
        num_layers = len(blocks)
        modes = [b.training for b in blocks]
        for b in blocks:
            b.eval()
        try:
            states = self.bottom_up(model, prep, x=x, adj=adj)
            order = ([j for j in range(num_layers) if j % 2 == 0] + [j for j in range(num_layers) if j % 2 == 1]
                     if self.alternating else list(range(num_layers)))
            total: Any = 0
            for t in range(self.test_time_steps):
                new: list = [states[0]] + [None] * num_layers + [states[-1]]
                for j in order:
                    h = blocks[j](self._inputs(j, states, new, num_layers), adj)
                    new[j + 1] = h
                    if t in self.accumulate_steps:
                        total = total + score(h)
                states = new
        finally:
            for b, m in zip(blocks, modes):
                b.train(m)
        return total

    @torch.no_grad()
    def class_probabilities(self, model: nn.Module, data: Any) -> Tensor:
        """``[N, C]`` summed softmax probabilities over layers and the accumulated test-time iterations."""
        prep = self.prepare(model, data)
        return self.iterate(model, prep, lambda h: self._sf.sf_logits(h, prep).softmax(dim=1))

    def predict(self, model, data, *, depth=None, which="test"):
        return self.class_probabilities(model, data).argmax(dim=1)


_TASKS = {"ff_la": FFLabelAppendingTask, "ff_vn": FFVirtualNodeTask, "sf": SingleForwardTask,
          "sf_top2loss": SFTop2LossTask, "sf_top2input": SFTop2InputTask}


def make_node_task(variant: str, **kwargs: Any) -> PreparedTask:
    """The :class:`~sciml.train.LayerLocalTask` of a node-classification variant (see :data:`NODE_VARIANTS`)."""
    if variant not in _TASKS:
        raise ConfigError(f"unknown ForwardGNN variant {variant!r}; expected one of {', '.join(NODE_VARIANTS)}")
    return _TASKS[variant](**kwargs)


def train_node_classifier(data: Any, *, variant: str, conv: str = "gcn", num_layers: int = 2,
                          hidden_channels: int = 128, heads: int = 4, lr: float = 1e-3, weight_decay: float = 5e-4,
                          max_epochs: int = 1000, val_every: int = 2, patience: int = 100, seed: int = 0,
                          grad_clip: float | None = None, run_dir: Any = None, progress: str = "none",
                          task_kwargs: dict[str, Any] | None = None, trainer_kwargs: dict[str, Any] | None = None
                          ) -> dict[str, Any]:
    r"""Train one ForwardGNN variant (or ``variant="bp"``, the backprop baseline) on a full-batch node-classification
    graph with the paper's protocol (Adam, lr 1e-3, weight decay 5e-4, ≤ ``max_epochs`` per layer (greedy) or in
    total, validation every 2 epochs, early stopping after ``patience`` validations without a better validation
    accuracy, best weights restored), through :class:`sciml.train.Trainer`.

    Returns:
        dict: ``{"variant", "conv", "num_layers", "depths": {k: {"test_acc", "val_acc"}}, "phases",
        "train_time_s", "model", "task"}``; greedy variants report every depth ``1..L`` from this one run (prefix
        evaluation), the others only ``L``. Accuracies are fractions.
    """
    from sciml.gnn.tasks import NodeClassification

    torch.manual_seed(seed)
    num_classes = int(data.y.max()) + 1
    if variant == "bp":
        model: nn.Module = BackpropGNN(data.num_features, num_classes, conv=conv, hidden_channels=hidden_channels,
                                       num_layers=num_layers, heads=heads)
        task: Any = NodeClassification()
    else:
        model = ForwardGNN(data.num_features, num_classes, variant=variant, conv=conv,
                           hidden_channels=hidden_channels, num_layers=num_layers, heads=heads)
        task = make_node_task(variant, **(task_kwargs or {}))
        if variant == "sf_top2loss" and grad_clip is None:
            grad_clip = 1.0
    summary, elapsed = fit_full_batch(model, task, data, monitor="val_acc", lr=lr, weight_decay=weight_decay,
                                      max_epochs=max_epochs, val_every=val_every, patience=patience, seed=seed,
                                      grad_clip=grad_clip, run_dir=run_dir, progress=progress,
                                      **(trainer_kwargs or {}))
    model.eval()
    depths: dict[int, dict[str, float]] = {}
    with torch.no_grad():
        if variant == "bp":
            pred = model(data.x, data.edge_index).argmax(dim=1)
            depths[num_layers] = {"test_acc": _accuracy(pred, data.y, data.test_mask),
                                  "val_acc": _accuracy(pred, data.y, data.val_mask)}
        elif variant not in _SIMULTANEOUS:
            for d in range(1, num_layers + 1):
                depths[d] = {"test_acc": task.evaluate(model, data, depth=d, which="test")["acc"],
                             "val_acc": task.evaluate(model, data, depth=d, which="val")["acc"]}
        else:
            pred = task.predict(model, data)
            depths[num_layers] = {"test_acc": _accuracy(pred, data.y, data.test_mask),
                                  "val_acc": _accuracy(pred, data.y, data.val_mask)}
    return {"variant": variant, "conv": conv, "num_layers": num_layers, "depths": depths,
            "phases": summary.get("phases", []), "epochs": summary.get("epochs"), "stop_reason": summary["stop_reason"],
            "train_time_s": elapsed, "model": model, "task": task}
