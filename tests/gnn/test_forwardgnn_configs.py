"""The ForwardGNN configs (configs/forwardgnn_*_cora.yaml) build through the registries, carry the settings of
``train_node_classifier`` (the function the reproduction runs), train end to end through the experiment API, and a
task/trainer schedule mismatch is refused."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from sciml.config import load_config
from sciml.errors import ConfigError
from sciml.experiment import build
from sciml.gnn.forwardgnn import _SIMULTANEOUS, NODE_VARIANTS, BackpropGNN, ForwardGNN, train_node_classifier
from sciml.gnn.node_data import fraction_node_split

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = [*NODE_VARIANTS, "bp"]


def write_graph(path: Path, n: int = 120, classes: int = 3) -> None:
    from sciml.datasets.writer import write_dataset

    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.nn.functional.one_hot(y, classes).float() + 0.5 * torch.rand(n, classes, generator=g)
    src = torch.randint(0, n, (300,), generator=g)
    dst = (src + classes * torch.randint(1, 5, (300,), generator=g)) % n   # same-class edges
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
    write_dataset(path, "graphs", {"train": [Data(x=x, edge_index=ei, y=y)]}, source="test")


def test_every_variant_has_a_config():
    stems = {p.stem for p in (ROOT / "configs").glob("forwardgnn_*.yaml")}
    assert stems == {f"forwardgnn_{v}_cora" for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_carries_train_node_classifier_settings(variant, tmp_path):
    path = tmp_path / "g.h5"
    write_graph(path)
    cfg = load_config(ROOT / "configs" / f"forwardgnn_{variant}_cora.yaml", [f"data.path={path}"])
    exp = build(cfg, handle_signals=False, progress="none")
    defaults = {k: p.default for k, p in inspect.signature(train_node_classifier).parameters.items()}
    tr = exp.trainer
    assert tr.lr == defaults["lr"] and tr.weight_decay == defaults["weight_decay"]
    assert tr.max_epochs == defaults["max_epochs"] and tr.val_every == defaults["val_every"]
    es = tr.early_stopping
    assert (es.monitor, es.mode, es.patience) == ("val_acc", "max", defaults["patience"])
    assert tr.seed == defaults["seed"]
    model = exp.model
    if variant == "bp":
        assert isinstance(model, BackpropGNN) and tr.strategy.name == "backprop"
    else:
        assert isinstance(model, ForwardGNN) and model.variant == variant and tr.strategy.name == "layer_local"
        assert tr.strategy.mode == ("simultaneous" if variant in _SIMULTANEOUS else "greedy")
        assert model.num_classes == 3 and model.in_channels == 3 and model.conv_name == "gcn"
        assert tr.grad_clip == (1.0 if variant == "sf_top2loss" else defaults["grad_clip"])
    data = exp.train_data[0]
    for got, want in zip((data.train_mask, data.val_mask, data.test_mask), fraction_node_split(120, 0)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("variant", ["sf", "sf_top2input", "bp"])
def test_config_trains_through_the_experiment_api(variant, tmp_path):
    path = tmp_path / "g.h5"
    write_graph(path)
    cfg = load_config(ROOT / "configs" / f"forwardgnn_{variant}_cora.yaml",
                      [f"data.path={path}", "trainer.max_epochs=150", "model.hidden_channels=16"])
    exp = build(cfg, handle_signals=False, progress="none")
    summary = exp.trainer.fit()
    assert summary["stop_reason"] in ("max_epochs", "early_stopping")
    metrics = exp.trainer.evaluate(exp.val_data)
    # the classes are separable from the features: far above chance (1/3) on validation and test nodes
    assert metrics["acc"] > 0.8 and metrics["test_acc"] > 0.8


def test_task_and_trainer_schedule_must_agree(tmp_path):
    path = tmp_path / "g.h5"
    write_graph(path)
    cfg = load_config(ROOT / "configs" / "forwardgnn_sf_top2input_cora.yaml",
                      [f"data.path={path}", "trainer.layer_local_mode=greedy"])
    with pytest.raises(ConfigError, match="simultaneous"):
        build(cfg, handle_signals=False, progress="none")
    cfg = load_config(ROOT / "configs" / "forwardgnn_sf_cora.yaml",
                      [f"data.path={path}", "task.variant=ff_la"])
    exp = build(cfg, handle_signals=False, progress="none")
    with pytest.raises(ConfigError, match="variant"):
        exp.trainer.fit()
