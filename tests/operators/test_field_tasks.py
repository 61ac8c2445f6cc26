"""Normalisers, tasks and data builders of sciml.operators.field_tasks, and the configs that use them
(configs/mgno_darcy.yaml, configs/sinenet_*.yaml) against the benchmarks' hand-built data and tasks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.errors import ConfigError, ShapeError
from sciml.operators.field_tasks import (FieldNormalizer, FieldRegressionTask, OneStepTask, field_pairs,
                                         field_trajectories)
from sciml.operators.losses import relative_h1, relative_l2
from sciml.operators.mgno import MgNO
from sciml.testing import load_script

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _bench(name: str):
    return load_script(BENCH / f"{name}.py")


def _config_path_ready() -> bool:
    """The registry names of the config path (field_trajectories, one_step, and the tasks' data-supplied
    normalisers) are declared in sciml/config/catalogue.py."""
    from sciml.config import DATA, TASKS

    return ("field_trajectories" in DATA and "one_step" in TASKS
            and TASKS.entry("field_regression").runtime == ("y_normalizer",))


needs_config_path = pytest.mark.skipif(not _config_path_ready(), reason="the catalogue does not declare "
                                       "field_trajectories / one_step / field_regression(runtime=y_normalizer) yet")


def _write(path: Path, generator: str, **options) -> Path:
    from sciml.datasets.generators import GENERATORS
    from sciml.datasets.writer import write_spec

    write_spec(path, GENERATORS.get(generator)(**options))
    return path


# ------------------------------------------------------------------------------------------------ normaliser
def test_normalizer_statistics_against_numpy_and_round_trip():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 5, 7, generator=g) * torch.tensor([3.0, 0.5])[:, None, None] + torch.tensor([1.0, -2.0])[
        :, None, None]
    xn = x.double().numpy()
    cases = {
        "scalar": (FieldNormalizer.fit(x, per_channel=False), xn.mean(), xn.std(ddof=1)),
        "field": (FieldNormalizer.fit(x), xn.mean(axis=(0, 2, 3)), xn.std(axis=(0, 2, 3), ddof=1)),
        # FNO's / MgNO's UnitGaussianNormalizer: torch.mean(x, 0), torch.std(x, 0)
        "point": (FieldNormalizer.fit(x, pointwise=True), xn.mean(axis=0), xn.std(axis=0, ddof=1)),
    }
    for kind, (norm, mean, std) in cases.items():
        np.testing.assert_allclose(norm.mean.squeeze().numpy(), np.squeeze(mean), rtol=1e-6, atol=1e-6, err_msg=kind)
        np.testing.assert_allclose(norm.std.squeeze().numpy(), np.squeeze(std), rtol=1e-6, err_msg=kind)
        ref = (xn - np.reshape(mean, (-1, 1, 1) if np.ndim(mean) < 3 else mean.shape)) / (
            np.reshape(std, (-1, 1, 1) if np.ndim(std) < 3 else std.shape) + 1e-8)
        np.testing.assert_allclose(norm.encode(x).double().numpy(), ref, rtol=1e-5, atol=1e-5, err_msg=kind)
        torch.testing.assert_close(norm.decode(norm.encode(x)), x, rtol=1e-5, atol=1e-5)
        assert norm.pointwise == (kind == "point")
    # history axes count as samples: [N, T, C, H, W] per field (SineNet), pointwise over N and T
    traj = torch.randn(3, 4, 2, 4, 4, generator=g)
    tn = traj.double().numpy()
    np.testing.assert_allclose(FieldNormalizer.fit(traj).std.squeeze().numpy(), tn.std(axis=(0, 1, 3, 4), ddof=1),
                               rtol=1e-6)
    np.testing.assert_allclose(FieldNormalizer.fit(traj, pointwise=True).mean.numpy(),
                               tn.reshape(12, 2, 4, 4).mean(0), rtol=1e-6, atol=1e-7)
    # a pointwise normaliser belongs to its grid; the others apply to any grid
    with pytest.raises(ShapeError, match="5x7 grid cannot normalise fields on a 10x14 grid"):
        cases["point"][0].encode(torch.zeros(1, 2, 10, 14))
    assert cases["field"][0].encode(torch.zeros(1, 2, 10, 14)).shape == (1, 2, 10, 14)
    with pytest.raises(ShapeError, match="at least 2 samples"):
        FieldNormalizer.fit(x[:1], pointwise=True)
    with pytest.raises(ShapeError, match=r"\[C, H, W\]"):
        FieldNormalizer(torch.zeros(2, 3), torch.ones(2, 3))


def test_task_state_carries_the_normalizers_through_a_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(1)
    u = torch.rand(5, 1, 8, 8, generator=g) * 0.1
    yn = FieldNormalizer.fit(u, pointwise=True)
    task = FieldRegressionTask("h1", y_normalizer=yn)
    torch.save(task.state_dict(), tmp_path / "task.pt")
    fresh = FieldRegressionTask("h1")
    fresh.load_state_dict(torch.load(tmp_path / "task.pt"))
    model = MgNO(1, 1, hidden_channels=2, num_layers=1, num_iterations=[1, 1])
    x = torch.randn(2, 1, 8, 8, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(fresh.predict(model, x), model(x) * (u.std(0) + 1e-8) + u.mean(0))
    assert FieldRegressionTask("h1").state_dict() == {}
    one = OneStepTask(FieldNormalizer.fit(torch.randn(4, 3, 2, 4, 4, generator=g)))
    other = OneStepTask()
    other.load_state_dict(one.state_dict())
    torch.testing.assert_close(other.normalizer.std, one.normalizer.std)
    torch.testing.assert_close(other.normalizer.mean, one.normalizer.mean)


def test_regression_task_sum_reduction_and_errors():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    model = MgNO(1, 1, hidden_channels=2, num_layers=1, num_iterations=[1, 1])
    with torch.no_grad():
        pred = model(x)
        for loss, fn in (("h1", relative_h1), ("l2", relative_l2)):
            total = FieldRegressionTask(loss, reduction="sum").training_step(model, (x, y))["loss"]
            singles = sum(float(fn(pred[i:i + 1], y[i:i + 1])) for i in range(3))  # sample by sample
            assert float(total) == pytest.approx(singles, rel=1e-5)
            mean = FieldRegressionTask(loss).training_step(model, (x, y))["loss"]
            assert float(mean) == pytest.approx(singles / 3, rel=1e-5)
            # validation metrics are per-sample means whatever the training reduction
            val = FieldRegressionTask(loss, reduction="sum").validation_step(model, (x, y))
            assert float(val["loss"]) == pytest.approx(singles / 3, rel=1e-5)
    with pytest.raises(ConfigError, match="reduction must be 'mean' or 'sum'"):
        FieldRegressionTask("h1", reduction="none")
    with pytest.raises(ConfigError, match="not inside h1"):
        FieldRegressionTask("h1", h1={"reduction": "sum"})


# ------------------------------------------------------------------------------------------------ data builders
def test_field_pairs_normalizer_options(tmp_path):
    from sciml.datasets.reader import FieldDataset

    path = _write(tmp_path / "darcy.h5", "darcy", num_train=5, num_val=2, num_test=0, resolution=9, seed=0)
    raw = FieldDataset(path, "train")
    a = torch.stack([raw[i]["a"][0, :, :, 0] for i in range(5)])[:, None]
    u = torch.stack([raw[i]["u"][0, :, :, 0] for i in range(5)])[:, None]
    raw.close()
    pgn = field_pairs(str(path), normalizer_type="unit_gaussian")
    an, un = a.double().numpy(), u.double().numpy()
    np.testing.assert_allclose(pgn["train"].tensors[0].double().numpy(),
                               (an - an.mean(0)) / (an.std(0, ddof=1) + 1e-8), rtol=1e-5, atol=1e-5)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # u = 0 on the walls: std 0 there
    yn = pgn["task_kwargs"]["y_normalizer"]
    np.testing.assert_allclose(yn.std.numpy()[inner[1:]], un.std(0, ddof=1)[inner[1:]], rtol=1e-5)
    assert yn.pointwise and set(pgn) == {"train", "val", "task_kwargs"}
    torch.testing.assert_close(pgn["train"].tensors[1], u)  # targets stay physical
    off = field_pairs(str(path), normalize_input=False, normalize_output=False)
    assert off["task_kwargs"]["y_normalizer"] is None
    torch.testing.assert_close(off["train"].tensors[0], a)
    with pytest.raises(ConfigError, match="normalizer_type"):
        field_pairs(str(path), normalizer_type="pgn")


def test_field_trajectories_equal_the_benchmark_setup(tmp_path):
    """field_trajectories (the configs' data) = benchmarks/operators_timedep.py's hand-built windows and task."""
    bench = _bench("operators_timedep")
    path = _write(tmp_path / "dr.h5", "diffusion_reaction", num_train=3, num_val=2, num_test=0, resolution=8,
                  final_time=0.5, num_frames=7, seed=0)
    data = field_trajectories(str(path), fields=["u", "v"], time_history=4)
    d = {s: bench.fields_from_h5(path, s, ("u", "v")) for s in ("train", "val")}
    traj = {s: torch.cat([d[s]["u"], d[s]["v"]], dim=2) for s in d}
    train, val, task, norm = bench.timedep_setup(traj)
    for mine, theirs in ((data["train"], train), (data["val"], val)):
        for t_mine, t_theirs in zip(mine.tensors, theirs.tensors):
            assert torch.equal(t_mine, t_theirs)
    # independent check of the windows: 3 starts per trajectory, start-major, fields [u, v] as channels
    assert data["train"].tensors[0].shape == (9, 4, 2, 8, 8)
    enc = (traj["train"] - norm.mean) / (norm.std + 1e-8)
    torch.testing.assert_close(data["train"].tensors[0][3 + 1], enc[1, 1:5])
    torch.testing.assert_close(data["train"].tensors[1][3 + 1], enc[1, 5])
    assert set(data) == {"train", "val", "task_kwargs"}
    from sciml.operators.sinenet import SineNet

    model = SineNet(8, 2, hidden_channels=4, num_waves=1, multiplier=1.5, num_levels=2)
    batch = (data["val"].tensors[0][:4], data["val"].tensors[1][:4])
    with torch.no_grad():
        mine = OneStepTask(data["task_kwargs"]["normalizer"]).validation_step(model, batch)
        theirs = task.validation_step(model, batch)
    assert float(mine["loss"]) == float(theirs["loss"]) and float(mine["phys_rel_l2"]) == float(theirs["phys_rel_l2"])
    held = field_trajectories(str(path), num_val=1)
    assert len(held["train"]) == 2 * 3
    held_norm = held["task_kwargs"]["normalizer"]
    torch.testing.assert_close(held["val"].tensors[1], held_norm.encode(traj["train"][2:])[0, 4:7])
    with pytest.raises(ConfigError, match="time_history"):
        field_trajectories(str(path), time_history=7)


# ------------------------------------------------------------------------------------------------ configs
@needs_config_path
def test_darcy_config_task_equals_the_benchmark_task(tmp_path):
    """configs/mgno_darcy.yaml through the registries builds the data and task of
    benchmarks/operators_darcy.py (same normalised inputs, same decoded loss and metrics on a batch); its
    summed loss is the batch size times the benchmark's mean; and it trains."""
    from sciml.config import load_config
    from sciml.experiment import build

    bench = _bench("operators_darcy")
    path = _write(tmp_path / "darcy.h5", "darcy", num_train=6, num_val=3, num_test=0, resolution=16, seed=0)
    small = ["model.hidden_channels=4", "model.num_iterations=[1, 1, 2]", "trainer.max_epochs=6",
             "trainer.batch_size=3"]
    cfg = load_config(ROOT / "configs" / "mgno_darcy.yaml", [f"data.path={path}", *small])
    assert cfg.task.reduction == "sum"
    exp = build(cfg, handle_signals=False, progress="none")
    d = {s: bench.fields_from_h5(path, s, ("a", "u")) for s in ("train", "val")}
    train, val, task, xn = bench.darcy_setup(*[(d[s]["a"][:, 0], d[s]["u"][:, 0]) for s in ("train", "val")])
    for mine, theirs in ((exp.train_data, train), (exp.val_data, val)):
        for t_mine, t_theirs in zip(mine.tensors, theirs.tensors):
            assert torch.equal(t_mine, t_theirs)
    x, y = train.tensors[0][:4], train.tensors[1][:4]
    with torch.no_grad():
        mine, theirs = exp.task.validation_step(exp.model, (x, y)), task.validation_step(exp.model, (x, y))
        for key in ("loss", "rel_l2", "rel_h1"):
            assert float(mine[key]) == float(theirs[key])
        # independent decoding: the scalar mean/std of the training outputs
        un = d["train"]["u"].double().numpy()
        pred = exp.model(x) * (float(un.std(ddof=1)) + 1e-8) + float(un.mean())
        assert float(mine["rel_l2"]) == pytest.approx(float(relative_l2(pred, y)), rel=1e-5)
        summed = exp.task.training_step(exp.model, (x, y))["loss"]
        assert float(summed) == pytest.approx(4 * float(task.training_step(exp.model, (x, y))["loss"]), rel=1e-6)
    summary = exp.trainer.fit()
    assert summary["epochs"] == 6 and exp.trainer.evaluate(exp.val_data)["rel_l2"] > 0


def _timedep_bench_args(bench) -> argparse.Namespace:
    """The benchmark settings of the recorded results (budget, SineNet C0 and levels)."""
    cfg = json.loads((BENCH / "results" / "operators_timedep.json").read_text())["config"]
    return argparse.Namespace(budget=cfg["budget"], hidden=cfg["hidden"], levels=cfg["levels"],
                              unet_mults=cfg["unet_mults"], fno_modes=cfg["fno_modes"])


@needs_config_path
@pytest.mark.parametrize("dataset", ["ns_torus", "dr_box"])
def test_sinenet_config_is_the_benchmark_model_and_trains(tmp_path, dataset):
    """configs/sinenet_<dataset>.yaml builds the benchmark's sinenet4 run (same multiplier, padding and parameter
    count as the recorded results) with the benchmark's data and task, and trains one epoch."""
    from sciml.config import load_config
    from sciml.experiment import build
    from sciml.operators.sinenet import SineNet

    bench = _bench("operators_timedep")
    padding, generator, _ = bench.DATASETS[dataset]
    if generator == "navier_stokes":
        opts = dict(viscosity=1e-3, resolution=16, solver_resolution=32, dt=1e-2, save_every=10, final_time=0.6)
        names = ("w",)
    else:
        opts = dict(resolution=16, final_time=0.6, num_frames=7)
        names = ("u", "v")
    path = _write(tmp_path / f"{dataset}.h5", generator, num_train=2, num_val=1, num_test=0, seed=0, **opts)
    cfg = load_config(ROOT / "configs" / f"sinenet_{dataset}.yaml", [f"data.path={path}", "trainer.max_epochs=1"])
    exp = build(cfg, handle_signals=False, progress="none")
    reference, info = bench.build("sinenet4", len(names), padding, _timedep_bench_args(bench))
    recorded = json.loads((BENCH / "results" / "operators_timedep.json").read_text())["runs"]
    assert isinstance(exp.model, SineNet)
    assert cfg.model.multiplier == info["multiplier"] and cfg.model.padding_mode == info["padding"] == padding
    n = sum(p.numel() for p in exp.model.parameters())
    assert n == sum(p.numel() for p in reference.parameters()) == recorded[f"{dataset}/sinenet4/seed0"]["params"]
    d = {s: bench.fields_from_h5(path, s, names) for s in ("train", "val")}
    train, val, task, _ = bench.timedep_setup({s: torch.cat([d[s][k] for k in names], dim=2) for s in d})
    for mine, theirs in ((exp.train_data, train), (exp.val_data, val)):
        for t_mine, t_theirs in zip(mine.tensors, theirs.tensors):
            assert torch.equal(t_mine, t_theirs)
    batch = (val.tensors[0], val.tensors[1])
    with torch.no_grad():
        mine, theirs = exp.task.validation_step(exp.model, batch), task.validation_step(exp.model, batch)
    assert float(mine["phys_rel_l2"]) == float(theirs["phys_rel_l2"]) and float(mine["loss"]) == float(theirs["loss"])
    assert exp.trainer.fit()["epochs"] == 1
    assert exp.trainer.evaluate(exp.val_data)["phys_rel_l2"] > 0


def test_sinenet_paper_config_has_the_paper_size():
    """configs/sinenet_ns_torus_paper.yaml is SineNet-8 (C0 = 64, m = 1.425, 4 levels): the official INS count
    35,490,219 with 12 input / 3 output channels, minus the lifting and output weights of 8 fewer input and 2
    fewer output channels (3x3 kernels, 64 hidden): 35,490,219 - 8*64*9 - 2*(64*9 + 1) = 35,484,457."""
    import yaml

    from sciml.operators.sinenet import SineNet

    spec = yaml.safe_load((ROOT / "configs" / "sinenet_ns_torus_paper.yaml").read_text())["model"]
    spec.pop("name")
    model = SineNet(**spec)
    assert sum(p.numel() for p in model.parameters()) == 35_490_219 - 8 * 64 * 9 - 2 * (64 * 9 + 1)
