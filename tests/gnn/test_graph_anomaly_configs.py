"""RQGNN through configs: the `graph_anomaly` data builder hands the Trainer its collate function and the task its
training class counts (sciml.experiment.unpack_data), and a config-built run equals the hand-built protocol."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sciml.config import load_config
from sciml.errors import ConfigError
from sciml.experiment import build, unpack_data
from sciml.gnn.graph_anomaly import (AnomalyBatch, GraphAnomalyTask, PackedGraphs, graph_anomaly_data,
                                     stratified_split, synthetic_anomaly_graphs)
from sciml.gnn.rqgnn import RQGNN
from sciml.train import Trainer, seed_everything

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _small(name: str = "rqgnn_synthetic.yaml", *extra: str):
    return load_config(CONFIGS / name, ["data.num_graphs=120", "model.hidden_channels=16", "model.depth=3",
                                        "trainer.max_epochs=3", "trainer.progress=none", *extra])


def test_builder_split_counts_and_dims_match_an_independent_computation():
    parts = unpack_data(graph_anomaly_data(num_graphs=120, split_seed=3))
    graphs = synthetic_anomaly_graphs(120, anomaly_fraction=0.1, seed=3)
    labels = torch.tensor([int(g.y.reshape(-1)[0]) for g in graphs])
    minority = int(torch.bincount(labels).argmin())
    y = (labels == minority).long()
    train, val, test = stratified_split(y, seed=3)
    assert [parts["train"][i] for i in range(len(parts["train"]))] == train.tolist()
    assert [parts["val"][i] for i in range(len(parts["val"]))] == val.tolist()
    assert parts["task_kwargs"]["class_counts"] == [int((y[train] == 0).sum()), int((y[train] == 1).sum())]
    assert parts["task_kwargs"]["monitor"]["test"].ids.tolist() == test.tolist()
    assert parts["dims"] == {"in_channels": graphs[0].x.size(1), "out_channels": 2}
    batch = parts["collate_fn"]([parts["train"][0], parts["train"][1]])
    assert isinstance(batch, AnomalyBatch) and batch.num_graphs == 2


def test_config_run_equals_the_hand_built_trainer():
    cfg = _small()
    exp = build(cfg)
    assert isinstance(exp.task, GraphAnomalyTask) and isinstance(exp.model, RQGNN)
    exp.fit()

    packed = PackedGraphs(synthetic_anomaly_graphs(120, anomaly_fraction=0.1, seed=0))
    train, val, test = stratified_split(packed.y, seed=0)
    seed_everything(0)
    model = RQGNN(packed.num_features, 16, 2, width=4, depth=3, dropout=0.4)
    task = GraphAnomalyTask(packed.class_counts(train), monitor={"test": packed.batch(test)})
    Trainer(model, task, train_data=packed.subset(train), val_data=packed.subset(val), collate_fn=packed.collate,
            batch_size=512, val_batch_size=100000, lr=5e-3, max_epochs=3, seed=0, progress="none").fit()
    for a, b in zip(exp.model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert exp.task.history[-1] == task.history[-1]


def test_builder_reads_a_sciml_h5_graph_file(tmp_path):
    from sciml.datasets.writer import write_dataset

    graphs = synthetic_anomaly_graphs(60, anomaly_fraction=0.2, seed=1)
    path = write_dataset(tmp_path / "g.h5", "graphs", {"train": graphs}, source="test")
    from_file = unpack_data(graph_anomaly_data(str(path), split_seed=1))
    in_memory = unpack_data(graph_anomaly_data(num_graphs=60, anomaly_fraction=0.2, split_seed=1))
    assert from_file["task_kwargs"]["class_counts"] == in_memory["task_kwargs"]["class_counts"]
    ids = list(range(len(from_file["train"])))
    a = from_file["collate_fn"]([from_file["train"][i] for i in ids])
    b = in_memory["collate_fn"]([in_memory["train"][i] for i in ids])
    torch.testing.assert_close(a.x, b.x)
    torch.testing.assert_close(a.rq, b.rq)


def test_tu_config_needs_a_path_and_builds_from_one(tmp_path):
    from sciml.datasets.writer import write_dataset

    path = write_dataset(tmp_path / "g.h5", "graphs", {"train": synthetic_anomaly_graphs(60, seed=2)},
                         source="test")
    exp = build(load_config(CONFIGS / "rqgnn_tu.yaml", [f"data.path={path}", "trainer.max_epochs=1",
                                                        "trainer.progress=none"]))
    assert exp.trainer.fit()["status"] == "completed"


def test_unknown_builder_keys_and_missing_task_inputs_fail_with_the_key_named():
    with pytest.raises(ConfigError, match="unknown keys \\['extra'\\]"):
        unpack_data({"train": [1], "extra": 2})
    cfg = load_config(CONFIGS / "gcn_community.yaml", ["task.name=graph_anomaly"])
    with pytest.raises(ConfigError, match="task.class_counts"):
        build(cfg)
    # a runtime task argument with a default (field_regression's y_normalizer) may be missing from the data
    exp = build(load_config(CONFIGS / "gcn_community.yaml", ["task.name=field_regression"]))
    assert exp.task.y_normalizer is None
