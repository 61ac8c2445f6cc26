"""sciml.train: the Trainer against hand-written loops, checkpoints, failure behaviour, layer-local strategies.

Every reference below is written out by hand with plain torch (no sciml code), using the documented sampler rule:
epoch ``e`` visits ``torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + e))``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from sciml.errors import CheckpointError, ConfigError, NonFiniteError
from sciml.testing import requires_cuda
from sciml.train import (EarlyStopping, LayerLocalTask, ResumableBatchSampler, SupervisedTask, Task, Trainer,
                         list_checkpoints, load_checkpoint, save_checkpoint)


def perm(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def regression_data(n: int = 24, d: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return TensorDataset(x, x @ torch.randn(d, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g))


def linear(d: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(d, 1)


def quiet(**kw):
    """No progress output; CPU unless a test asks for CUDA (the hand-written references run on CPU)."""
    kw.setdefault("progress", "none")
    kw.setdefault("device", "cpu")
    return kw


# ---------------------------------------------------------------------------------------------- backprop


def test_backprop_equals_hand_written_loop_exactly():
    ds = regression_data()
    model, ref = linear(), linear()
    Trainer(model, SupervisedTask("mse"), train_data=ds, batch_size=5, max_epochs=3, optimizer="adam", lr=0.05,
            scheduler="step", scheduler_kwargs={"step_size": 4, "gamma": 0.5}, seed=11, **quiet()).fit()

    opt = torch.optim.Adam(ref.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    x, y = ds.tensors
    for epoch in range(3):
        for idx in perm(24, 11, epoch).split(5):
            opt.zero_grad()
            nn.functional.mse_loss(ref(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_float64_default_dtype_trains_and_still_catches_nan():
    """Under torch.set_default_dtype(torch.float64) (neural ODE and atomistic work) the fused non-finite check and
    its flags keep working: a float64 model trains, and a NaN loss still stops the run."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ds = regression_data()
        ds = TensorDataset(*(t.double() for t in ds.tensors))
        model = linear().double()
        before = copy.deepcopy(model.state_dict())
        Trainer(model, SupervisedTask("mse"), train_data=ds, batch_size=6, max_steps=3, **quiet()).fit()
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        bad = TensorDataset(ds.tensors[0], torch.full_like(ds.tensors[1], float("nan")))
        with pytest.raises(NonFiniteError, match="non-finite loss"):
            Trainer(linear().double(), SupervisedTask("mse"), train_data=bad, batch_size=6, max_steps=3,
                    **quiet()).fit()
    finally:
        torch.set_default_dtype(previous)


class _ComplexWithExtraState(nn.Module):
    """A complex-weighted layer (an FNO-like spectral weight) whose state dict also holds a non-tensor extra
    state (as neuraloperator's modules do)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 1, dtype=torch.complex64) * 0.1)
        self.meta = {"name": "spectral"}

    def forward(self, x):
        return (x.to(torch.complex64) @ self.w).real

    def get_extra_state(self):
        return dict(self.meta)

    def set_extra_state(self, state):
        self.meta = dict(state)


@pytest.mark.parametrize("ema", [None, 0.9])
def test_complex_parameters_and_non_tensor_extra_state(ema, tmp_path):
    """Complex gradients go through the fused non-finite check (as their real view), a NaN in them is still
    caught, and best-weight restoring (with or without EMA, and after a resume) keeps the extra state."""
    ds = regression_data()
    model = _ComplexWithExtraState()
    tr = Trainer(model, SupervisedTask("mse"), train_data=ds, val_data=ds, batch_size=6, max_epochs=3, ema=ema,
                 early_stopping={"monitor": "val_loss", "mode": "min", "patience": 5, "restore_best": True},
                 run_dir=tmp_path / "run", **quiet())
    best = tr.fit()["best"]
    assert model.meta == {"name": "spectral"} and best is not None
    state = Trainer(_ComplexWithExtraState(), SupervisedTask("mse"), train_data=ds, val_data=ds, batch_size=6,
                    max_epochs=3, ema=ema, run_dir=tmp_path / "run",
                    early_stopping={"monitor": "val_loss", "mode": "min", "patience": 5, "restore_best": True},
                    **quiet())
    assert state.fit()["status"] != "preempted"   # resumes the finished run from its checkpoint
    nan_model = _ComplexWithExtraState()
    nan_model.w.register_hook(lambda g: g * float("nan"))
    with pytest.raises(NonFiniteError, match="'w'"):
        Trainer(nan_model, SupervisedTask("mse"), train_data=ds, batch_size=6, max_steps=2, **quiet()).fit()


def test_onecycle_too_short_is_a_config_error():
    ds = regression_data()
    with pytest.raises(ConfigError, match="pct_start"):
        Trainer(linear(), SupervisedTask("mse"), train_data=ds, batch_size=6, max_epochs=5, scheduler="onecycle",
                scheduler_interval="epoch", scheduler_kwargs={"pct_start": 0.2}, **quiet())
    Trainer(linear(), SupervisedTask("mse"), train_data=ds, batch_size=6, max_epochs=5, scheduler="onecycle",
            scheduler_interval="epoch", scheduler_kwargs={"pct_start": 0.5}, **quiet()).fit()


def test_max_steps_counts_optimizer_steps_and_epochs_carry_on():
    ds = regression_data(n=10)
    summary = Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=7, **quiet()).fit()
    assert summary["steps"] == 7 and summary["epochs"] == 2 and summary["stop_reason"] == "max_steps"


def test_gradient_accumulation_equals_one_big_batch():
    ds = regression_data(n=32)
    a, b = linear(), linear()
    Trainer(a, SupervisedTask(), train_data=ds, batch_size=4, accumulate=2, max_epochs=2, optimizer="sgd", lr=0.1,
            seed=1, **quiet()).fit()
    Trainer(b, SupervisedTask(), train_data=ds, batch_size=8, max_epochs=2, optimizer="sgd", lr=0.1, seed=1,
            **quiet()).fit()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_grad_clipping_matches_clip_grad_norm():
    ds = regression_data()
    model, ref = linear(), linear()
    Trainer(model, SupervisedTask(), train_data=ds, batch_size=6, max_epochs=2, optimizer="sgd", lr=0.1,
            grad_clip=0.05, shuffle=False, **quiet()).fit()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    x, y = ds.tensors
    clipped = 0
    for _ in range(2):
        for idx in torch.arange(24).split(6):
            opt.zero_grad()
            nn.functional.mse_loss(ref(x[idx]), y[idx]).backward()
            clipped += float(torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)) > 0.05
            opt.step()
    assert clipped > 0  # the test exercises clipping
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_ema_matches_manual_average_and_is_used_for_validation():
    ds = regression_data()
    model, ref = linear(), linear()
    trainer = Trainer(model, SupervisedTask(), train_data=ds, batch_size=6, max_epochs=2, optimizer="sgd", lr=0.1,
                      ema=0.8, shuffle=False, **quiet())
    trainer.fit()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    avg = [p.detach().clone() for p in ref.parameters()]
    x, y = ds.tensors
    for _ in range(2):
        for idx in torch.arange(24).split(6):
            opt.zero_grad()
            nn.functional.mse_loss(ref(x[idx]), y[idx]).backward()
            opt.step()
            avg = [0.8 * a + 0.2 * p.detach() for a, p in zip(avg, ref.parameters())]
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)  # the live weights are the raw ones
    torch.testing.assert_close(trainer.ema.shadow["weight"], avg[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(trainer.ema.shadow["bias"], avg[1], rtol=1e-6, atol=1e-7)
    expected = nn.functional.mse_loss(x @ avg[0].T + avg[1], y).item()
    assert trainer.evaluate(ds, batch_size=24)["loss"] == pytest.approx(expected, rel=1e-5)


class ScriptedValTask(SupervisedTask):
    """Validation loss read from a script, one value per validation; records the weights seen at each one."""

    def __init__(self, values):
        super().__init__("mse")
        self.values, self.calls, self.weights = list(values), 0, []

    def validation_step(self, model, batch):
        self.weights.append(copy.deepcopy(model.state_dict()))
        v = self.values[self.calls]
        self.calls += 1
        return {"loss": torch.tensor(v)}


def test_early_stopping_patience_stops_at_the_right_step_and_restores_best():
    values = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 0.1, 0.1]
    task = ScriptedValTask(values)
    model = linear()
    ds = regression_data(n=8)
    summary = Trainer(model, task, train_data=ds, val_data=ds, batch_size=8,
                      max_epochs=50, early_stopping=EarlyStopping(patience=3), lr=0.1, **quiet()).fit()
    # best at validation 3 (epoch 3); three bad validations (epochs 4, 5, 6) -> stop after epoch 6
    assert summary["stop_reason"] == "early_stopping" and summary["steps"] == 6 and task.calls == 6
    assert summary["best"] == {"monitor": "val_loss", "value": 3.0, "step": 3}
    for k, v in model.state_dict().items():
        assert torch.equal(v, task.weights[2][k])


def test_early_stopping_mean_of_last_k_dagnn_rule():
    # DAGNN: stop when the current value exceeds the mean of the previous K=3 values, only after start_after
    values = [9.0, 8.0, 7.0, 7.5, 6.0, 5.0, 5.5, 5.4, 6.5, 1.0]
    # validation 3 (7.5 > mean(9,8,7)=8? no). 6 (5.5 > mean(7.5,6,5)=6.17? no). 7 (5.4 > mean(6,5,5.5)=5.5? no).
    # 8 (6.5 > mean(5,5.5,5.4)=5.3 -> stop): 9 validations
    task = ScriptedValTask(values)
    summary = Trainer(linear(), task, train_data=regression_data(n=4), val_data=regression_data(n=4),
                      batch_size=4, max_epochs=100, lr=0.1,
                      early_stopping=EarlyStopping(rule="mean_of_last", window=3, start_after=2), **quiet()).fit()
    assert summary["stop_reason"] == "early_stopping" and summary["steps"] == 9
    assert summary["best"]["value"] == 5.0 and summary["best"]["step"] == 6

    # start_after holds the rule back: with the first 4 validations protected, the rise at validation 3 is ignored
    task = ScriptedValTask([1.0, 2.0, 3.0, 4.0, 0.5, 0.4, 0.3, 2.0, 0.0])
    summary = Trainer(linear(), task, train_data=regression_data(n=4), val_data=regression_data(n=4),
                      batch_size=4, max_epochs=100, lr=0.1,
                      early_stopping=EarlyStopping(rule="mean_of_last", window=2, start_after=4), **quiet()).fit()
    assert summary["steps"] == 8  # validation 7: 2.0 > mean(0.4, 0.3)


def test_validation_cadence_and_metrics_files(tmp_path):
    ds = regression_data(n=12)
    Trainer(linear(), SupervisedTask(), train_data=ds, val_data=ds, batch_size=4, max_epochs=4, val_every=2,
            log_every=5, run_dir=tmp_path, checkpoint_every=0, **quiet()).fit()
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [6, 12]
    assert [r["step"] for r in records if r["split"] == "train"] == [5, 10, 12]  # last partial window flushed
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"split", "step", "epoch", "lr", "loss", "val_loss", "time"} <= set(header)
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == len(records) + 1
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [12]  # checkpoint_every=0: end only


def test_progress_lines_when_not_a_tty(capsys):
    Trainer(linear(), SupervisedTask(), train_data=regression_data(n=8), batch_size=4, max_steps=4, log_every=2,
            progress="auto", device="cpu").fit()
    err = capsys.readouterr().err
    assert "[sciml.train] step 2/4" in err and "[sciml.train] step 4/4" in err


def test_deterministic_mode_is_scoped_to_fit():
    assert not torch.are_deterministic_algorithms_enabled()

    class Probe(SupervisedTask):
        seen = None

        def training_step(self, model, batch):
            Probe.seen = torch.are_deterministic_algorithms_enabled()
            return super().training_step(model, batch)

    Trainer(linear(), Probe(), train_data=regression_data(n=4), batch_size=4, max_steps=1, deterministic=True,
            **quiet()).fit()
    assert Probe.seen is True and not torch.are_deterministic_algorithms_enabled()


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="max_steps"):
        Trainer(linear(), SupervisedTask(), train_data=regression_data())
    with pytest.raises(ConfigError, match="early_stopping"):
        Trainer(linear(), SupervisedTask(), train_data=regression_data(), max_steps=1, early_stopping=EarlyStopping())
    with pytest.raises(ConfigError, match="optimizer"):
        Trainer(linear(), SupervisedTask(), train_data=regression_data(), max_steps=1, optimizer="adamm")
    with pytest.raises(ConfigError, match="val_unit"):
        Trainer(linear(), SupervisedTask(), train_data=regression_data(), max_steps=1, val_unit="hour")


# ---------------------------------------------------------------------------------------------- sampler


def test_sampler_shards_union_is_the_single_process_batch():
    single = ResumableBatchSampler(20, 6, seed=4)
    ranks = [ResumableBatchSampler(20, 3, seed=4, rank=r, world_size=2) for r in range(2)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 4
    for i, batch in enumerate(single.batches(1)):
        together = torch.cat([ranks[0].batches(1)[i], ranks[1].batches(1)[i]])
        assert sorted(together.tolist()) == sorted(batch.tolist())
    assert torch.equal(torch.cat(single.batches(2)), perm(20, 4, 2))
    # evaluation sharding: no padding, every sample exactly once
    ev = [ResumableBatchSampler(5, 2, shuffle=False, rank=r, world_size=2, pad=False) for r in range(2)]
    assert sorted(torch.cat([torch.cat(s.batches(0)) for s in ev]).tolist()) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------- checkpoints


def test_keep_last_k_and_weights_only_payload(tmp_path):
    ds = regression_data(n=8)
    Trainer(linear(), SupervisedTask(), train_data=ds, val_data=ds, batch_size=4, max_steps=6, checkpoint_every=1,
            keep_last=3, run_dir=tmp_path, ema=0.9, scheduler="plateau",
            early_stopping=EarlyStopping(patience=50), **quiet()).fit()
    files = sorted(os.listdir(tmp_path / "checkpoints"))
    assert files == ["step-00000004.pt", "step-00000005.pt", "step-00000006.pt"]
    payload = torch.load(tmp_path / "checkpoints" / files[-1], weights_only=True)
    assert payload["step"] == 6 and payload["train_state"]["epoch"] == 3
    assert {"model", "optimizers", "schedulers", "ema", "early_stopping", "rng", "best_model"} <= set(payload)
    assert isinstance(payload["rng"][0]["torch_cpu"], torch.Tensor)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    good = save_checkpoint({"format": "sciml-trainstate", "version": 1, "x": torch.ones(3)}, tmp_path / "step-00000001.pt")

    def exploding_save(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"x": torch.ones(3)}, tmp_path / "step-00000002.pt")
    assert sorted(os.listdir(tmp_path)) == ["step-00000001.pt"]
    assert load_checkpoint(good)["x"].sum() == 3


def test_corrupted_newest_checkpoint_falls_back_to_previous(tmp_path):
    ds = regression_data(n=8)

    def make(max_steps):
        return Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=max_steps,
                       checkpoint_every=2, run_dir=tmp_path, **quiet())

    make(6).fit()
    newest = tmp_path / "checkpoints" / "step-00000006.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated by a crash during copy, say
    with pytest.raises(CheckpointError, match="step-00000006.pt"):
        load_checkpoint(newest)
    resumed = make(8)
    with pytest.warns(RuntimeWarning, match="step-00000006.pt"):
        summary = resumed.fit()
    assert summary["resumed_from"].endswith("step-00000004.pt") and summary["steps"] == 8
    assert load_checkpoint(newest)["step"] == 6  # step 6 recomputed and rewritten


def test_resume_target_is_what_the_trainer_resumes_from(tmp_path):
    """``resume_target`` (used by sciml.experiment to decide on pre-training hooks) names exactly the checkpoint the
    Trainer loads: none for "never", the newest loadable one for "auto" (an unreadable-only run dir counts as
    none, and the Trainer then starts afresh), the given path otherwise."""
    from sciml.train import resume_target

    ds = regression_data(n=8)

    def make(max_steps, run_dir, resume="auto"):
        return Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=max_steps,
                       checkpoint_every=2, run_dir=run_dir, resume=resume, **quiet())

    assert resume_target("auto", None) is None and resume_target("auto", tmp_path / "empty") is None
    make(4, tmp_path / "a").fit()
    assert resume_target("never", tmp_path / "a") is None and resume_target(None, tmp_path / "a") is None
    path, payload = resume_target("auto", tmp_path / "a")
    assert path.name == "step-00000004.pt" and payload["step"] == 4
    assert make(6, tmp_path / "a").fit()["resumed_from"] == str(path)
    early = tmp_path / "a" / "checkpoints" / "step-00000002.pt"
    path, payload = resume_target(early, None)
    assert path == early and payload["step"] == 2
    make(2, tmp_path / "b").fit()
    only = tmp_path / "b" / "checkpoints" / "step-00000002.pt"
    only.write_bytes(only.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="step-00000002.pt"):
        assert resume_target("auto", tmp_path / "b") is None
    with pytest.warns(RuntimeWarning, match="step-00000002.pt"):
        summary = make(2, tmp_path / "b").fit()
    assert summary["resumed_from"] is None and summary["steps"] == 2


def test_resume_in_process_equals_uninterrupted(tmp_path):
    ds = regression_data(n=20)

    def make(run_dir, max_steps):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.3), nn.Linear(8, 1))
        return Trainer(model, SupervisedTask(), train_data=ds, val_data=ds, batch_size=3, max_steps=max_steps,
                       checkpoint_every=5, run_dir=run_dir, seed=5, log_every=3, ema=0.5, **quiet())

    full = make(tmp_path / "full", 17)
    full.fit()
    make(tmp_path / "cut", 11).fit()  # stops mid-epoch (7 batches per epoch)
    resumed = make(tmp_path / "cut", 17)
    summary = resumed.fit()
    assert summary["resumed_from"].endswith("step-00000011.pt")
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- non-finite


class NaNAtCall(SupervisedTask):
    def __init__(self, bad_call):
        super().__init__("mse")
        self.bad_call, self.calls = bad_call, 0

    def training_step(self, model, batch):
        self.calls += 1
        out = super().training_step(model, batch)
        if self.calls == self.bad_call:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_raises_with_step_and_keeps_last_good_checkpoint(tmp_path):
    trainer = Trainer(linear(), NaNAtCall(5), train_data=regression_data(n=8), batch_size=4, max_steps=10,
                      checkpoint_every=2, run_dir=tmp_path, **quiet())
    with pytest.raises(NonFiniteError, match=r"non-finite loss .* at step 5 .*step-00000004\.pt"):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2, 4]
    load_checkpoint(tmp_path / "checkpoints" / "step-00000004.pt")


def test_nan_gradient_names_the_parameter(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    calls = {"n": 0}

    def poison(grad):
        calls["n"] += 1
        return grad * float("inf") if calls["n"] == 3 else grad

    model[0].weight.register_hook(poison)
    trainer = Trainer(model, SupervisedTask(), train_data=regression_data(n=8), batch_size=4, max_steps=10,
                      checkpoint_every=1, run_dir=tmp_path, grad_clip=1.0, **quiet())
    with pytest.raises(NonFiniteError, match=r"gradient at step 3 .*'0\.weight'"):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [1, 2]


# ---------------------------------------------------------------------------------------------- layer-local


class Stack(nn.Module):
    def __init__(self, sizes=(4, 6, 6, 5)):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))


def local_loss(h, y):
    """A forward-forward style goodness loss: softplus(theta - goodness) for positives."""
    return nn.functional.softplus(2.0 - (h ** 2).sum(1)).mean() + 0.1 * ((h.mean(1) - y) ** 2).mean()


class StackTask(LayerLocalTask):
    def block_input(self, model, batch):
        return batch[0]

    def local_step(self, model, k, block, inputs, batch):
        h = torch.relu(block(inputs))
        return {"loss": local_loss(h, batch[1])}, h

    def block_validation_step(self, model, k, batch):
        x = batch[0]
        for j in range(k + 1):
            x = torch.relu(model.blocks[j](x))
        return {"loss": local_loss(x, batch[1])}

    def validation_step(self, model, batch):
        return self.block_validation_step(model, len(model.blocks) - 1, batch)


def graph_like_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 4, generator=g)
    return [(x, x.sum(1))], [(torch.randn(10, 4, generator=g), torch.randn(10, generator=g))]


def test_layer_local_greedy_with_per_block_early_stopping_matches_hand_loop():
    train, val = graph_like_data()
    model, ref = Stack(), None
    torch.manual_seed(0)
    model = Stack()
    ref = copy.deepcopy(model)
    patience, max_epochs = 3, 40
    summary = Trainer(model, StackTask(), train_data=train, val_data=val, collate_fn=lambda items: items[0],
                      strategy="layer_local", layer_local_mode="greedy", lr=0.05, max_epochs=max_epochs,
                      early_stopping=EarlyStopping(patience=patience), **quiet()).fit()

    (x, y), (xv, yv) = train[0], val[0]
    stops = []
    for k, block in enumerate(ref.blocks):
        opt = torch.optim.Adam(block.parameters(), lr=0.05)
        best, bad, best_state, epochs = math.inf, 0, None, 0
        for epoch in range(max_epochs):
            with torch.no_grad():
                h = x
                for j in range(k):
                    h = torch.relu(ref.blocks[j](h))
            opt.zero_grad()
            local_loss(torch.relu(block(h.detach())), y).backward()
            opt.step()
            epochs += 1
            with torch.no_grad():
                hv = xv
                for j in range(k + 1):
                    hv = torch.relu(ref.blocks[j](hv))
                v = local_loss(hv, yv).item()
            if v < best:
                best, bad, best_state = v, 0, copy.deepcopy(ref.state_dict())
            else:
                bad += 1
                if bad >= patience:
                    break
        ref.load_state_dict(best_state)
        stops.append(epochs)
    assert [p["epochs"] for p in summary["phases"]] == stops
    assert any(s < max_epochs for s in stops)  # early stopping fired for at least one block
    for (n, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), n


def test_layer_local_simultaneous_matches_hand_loop_and_own_optimizers():
    train, _ = graph_like_data(1)
    torch.manual_seed(1)
    model = Stack()
    ref = copy.deepcopy(model)
    trainer = Trainer(model, StackTask(), train_data=train, collate_fn=lambda items: items[0],
                      strategy="layer_local", layer_local_mode="simultaneous", optimizer="sgd", lr=0.1,
                      max_steps=15, grad_clip=0.5, **quiet())
    trainer.fit()
    assert len(trainer.optimizers) == 3
    opts = [torch.optim.SGD(b.parameters(), lr=0.1) for b in ref.blocks]
    x, y = train[0]
    for _ in range(15):
        h = x
        for block, opt in zip(ref.blocks, opts):
            opt.zero_grad()
            out = torch.relu(block(h.detach()))
            local_loss(out, y).backward()
            torch.nn.utils.clip_grad_norm_(block.parameters(), 0.5)
            opt.step()
            h = out
    for (n, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), n


def test_layer_local_needs_blocks_and_local_step():
    with pytest.raises(ConfigError, match="LayerLocalTask"):
        Trainer(Stack(), SupervisedTask(), train_data=[0], max_steps=1, strategy="layer_local")
    with pytest.raises(ConfigError, match="blocks"):
        Trainer(nn.Linear(2, 2), StackTask(), train_data=[0], max_steps=1, strategy="layer_local")


# ---------------------------------------------------------------------------------------------- CUDA (device machine)


@requires_cuda
@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_cuda_amp_trains_checkpoints_and_resumes_exactly(tmp_path, amp_dtype):
    ds = regression_data(n=40, d=8)

    def make(run_dir, max_steps):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
        return Trainer(model, SupervisedTask(), train_data=ds, val_data=ds, batch_size=8, max_steps=max_steps,
                       amp=True, amp_dtype=amp_dtype, checkpoint_every=4, run_dir=run_dir, lr=1e-2,
                       deterministic=True, **quiet(device="cuda"))

    full = make(tmp_path / "full", 14)
    summary = full.fit()
    assert next(full.model.parameters()).is_cuda and math.isfinite(summary["last_val"]["val_loss"])
    payload = torch.load(tmp_path / "full" / "checkpoints" / "step-00000014.pt", weights_only=True)
    assert (payload["scaler"] is not None) == (amp_dtype == "float16")
    assert payload["rng"][0]["torch_cuda"]
    make(tmp_path / "cut", 6).fit()
    resumed = make(tmp_path / "cut", 14)
    resumed.fit()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- review fixes


class NoisyDataset(torch.utils.data.Dataset):
    """Random augmentation in __getitem__ (drawn from the global torch RNG of whatever process fetches)."""

    def __init__(self, n=12):
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 3, generator=g), torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(3), self.y[i]


class PidDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return torch.tensor([os.getpid(), i]), torch.rand(1)


def test_resume_with_dataloader_workers_is_bit_identical(tmp_path):
    ds = NoisyDataset()

    def make(run_dir, max_steps):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))
        return Trainer(model, SupervisedTask(), train_data=ds, batch_size=3, num_workers=1, max_steps=max_steps,
                       checkpoint_every=3, run_dir=run_dir, seed=2, **quiet())

    full = make(tmp_path / "full", 6)
    full.fit()
    make(tmp_path / "cut", 3).fit()  # 4 batches per epoch: stops mid-epoch
    resumed = make(tmp_path / "cut", 6)
    assert resumed.fit()["resumed_from"].endswith("step-00000003.pt")
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_batch_loader_workers_persist_and_seed_per_batch():
    from sciml.train.sampler import BatchLoader

    def loader():
        return BatchLoader(PidDataset(), ResumableBatchSampler(6, 2, seed=3), num_workers=1)

    a = loader()
    try:
        epochs = [list(a.iterate(e)) for e in range(2)]
    finally:
        a.close()
    pids = {int(p) for batches in epochs for x, _ in batches for p in x[:, 0]}
    assert len(pids) == 1 and os.getpid() not in pids  # one worker process, forked once for both epochs
    b = loader()
    try:
        tail = list(b.iterate(1, start=1))  # a loader created mid-epoch (resume) sees the same augmentation
    finally:
        b.close()
    for (x1, y1), (x2, y2) in zip(epochs[1][1:], tail):
        assert torch.equal(x1[:, 1], x2[:, 1]) and torch.equal(y1, y2)
    # a single-item dataset (full-batch graph) is fetched in the main process: no worker processes
    assert BatchLoader([0], ResumableBatchSampler(1, 1), num_workers=2).num_workers == 0


def test_ema_with_restore_best_evaluates_and_checkpoints_the_best(tmp_path):
    task = ScriptedValTask([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 9.0, 9.0])
    ds = regression_data(n=8)
    trainer = Trainer(linear(), task, train_data=ds, val_data=ds, batch_size=8, max_epochs=50, ema=0.5,
                      early_stopping=EarlyStopping(patience=3), lr=0.1, run_dir=tmp_path, **quiet())
    summary = trainer.fit()
    assert summary["steps"] == 6 and summary["best"]["step"] == 3
    best = task.weights[2]  # the EMA weights validated at the best validation
    trainer.evaluate(ds)
    for k, v in task.weights[-1].items():
        assert torch.equal(v, best[k]), k
    payload = load_checkpoint(tmp_path / "checkpoints" / "step-00000006.pt")
    for k, v in best.items():
        assert torch.equal(payload["ema"]["shadow"][k], v) and torch.equal(payload["model"][k], v)
    # what `sciml eval` does: a fresh trainer loads the final checkpoint and evaluates
    fresh = Trainer(linear(seed=5), task, train_data=ds, val_data=ds, batch_size=8, max_epochs=50, ema=0.5,
                    early_stopping=EarlyStopping(patience=3), **quiet())
    fresh.load_state_dict(payload)
    fresh.evaluate(ds)
    for k, v in task.weights[-1].items():
        assert torch.equal(v, best[k]), k


def test_resume_with_changed_batching_mid_epoch_raises_and_is_exact_at_an_epoch_boundary(tmp_path):
    ds = regression_data(n=20)

    def make(run_dir, max_steps, **kw):
        kw.setdefault("batch_size", 4)
        return Trainer(linear(), SupervisedTask(), train_data=ds, max_steps=max_steps, optimizer="sgd", lr=0.05,
                       seed=4, run_dir=run_dir, checkpoint_every=0, **quiet(**kw))

    make(tmp_path / "mid", 3).fit()  # 5 batches per epoch: stopped at batch 3 of epoch 0
    with pytest.raises(CheckpointError, match=r"batch_size 4 -> 5"):
        make(tmp_path / "mid", 8, batch_size=5).fit()
    with pytest.raises(CheckpointError, match=r"accumulate 1 -> 2"):
        make(tmp_path / "mid", 8, accumulate=2).fit()
    with pytest.raises(CheckpointError, match=r"num_samples 20 -> 16"):
        Trainer(linear(), SupervisedTask(), train_data=regression_data(n=16), batch_size=4, max_steps=8,
                run_dir=tmp_path / "mid", **quiet()).fit()

    make(tmp_path / "edge", 5).fit()  # exactly one epoch
    model = make(tmp_path / "edge", 8, batch_size=5)
    model.fit()
    ref = linear()
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    x, y = ds.tensors
    for idx in list(perm(20, 4, 0).split(4)) + list(perm(20, 4, 1).split(5))[:3]:
        opt.zero_grad()
        nn.functional.mse_loss(ref(x[idx]), y[idx]).backward()
        opt.step()
    for a, b in zip(model.model.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_resume_never_refuses_a_run_dir_that_holds_checkpoints(tmp_path):
    ds = regression_data(n=8)
    Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=4, checkpoint_every=2,
            run_dir=tmp_path, **quiet()).fit()
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already holds checkpoints of another run"):
        Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=2, run_dir=tmp_path,
                resume="never", **quiet()).fit()
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2, 4]


def test_detach_tree_and_move_to_device_handle_namedtuples():
    from collections import namedtuple

    from sciml.train import detach_tree
    from sciml.train.sampler import move_to_device

    Pair = namedtuple("Pair", "a b")
    w = torch.ones(2, requires_grad=True)
    obj = {"p": Pair(w * 2, [w * 3, 5]), "t": (w,)}
    out = detach_tree(obj)
    assert isinstance(out["p"], Pair) and out["p"].b[1] == 5
    assert not out["p"].a.requires_grad and not out["p"].b[0].requires_grad and not out["t"][0].requires_grad
    data = torch.rand(3, 2).to_sparse_csr()                     # outside autograd: the same object back
    assert detach_tree({"x": data})["x"] is data and out["p"].a.grad_fn is None
    moved = move_to_device(Pair(torch.zeros(1), {"x": torch.ones(1)}), torch.device("cpu"))
    assert isinstance(moved, Pair) and torch.equal(moved.b["x"], torch.ones(1))


def test_slurm_env_mapping_uses_srun_step_variables(monkeypatch):
    import subprocess

    from sciml.train import distributed

    def mapped(env, hosts=None):
        env = dict(env)
        monkeypatch.setattr(os, "environ", env)
        if hosts is not None:
            def fake_run(cmd, **kw):
                if isinstance(hosts, Exception):
                    raise hosts
                assert cmd[:3] == ["scontrol", "show", "hostnames"]
                return subprocess.CompletedProcess(cmd, 0, stdout=hosts, stderr="")
            monkeypatch.setattr(distributed.subprocess, "run", fake_run)
        distributed._env_from_slurm()
        return env

    # inside the batch script of an allocation with --ntasks=4: one process, no process group
    batch = mapped({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"})
    assert "RANK" not in batch and "WORLD_SIZE" not in batch
    # srun with 2 tasks on one node
    one = mapped({"SLURM_JOB_ID": "12345", "SLURM_NTASKS": "4", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2",
                  "SLURM_STEP_NUM_NODES": "1", "SLURM_PROCID": "1", "SLURM_LOCALID": "1"})
    assert (one["RANK"], one["WORLD_SIZE"], one["LOCAL_RANK"]) == ("1", "2", "1")
    assert one["MASTER_ADDR"] == "127.0.0.1" and one["MASTER_PORT"] == str(15000 + 2345)
    # srun over 2 nodes: the first host of the step's node list
    multi = {"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_NUM_NODES": "2",
             "SLURM_NNODES": "2", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": "gpu[03-04]"}
    env = mapped(multi, hosts="gpu03\ngpu04\n")
    assert (env["MASTER_ADDR"], env["RANK"], env["WORLD_SIZE"]) == ("gpu03", "5", "8")
    assert mapped({**multi, "MASTER_ADDR": "head"}, hosts=RuntimeError("not called"))["MASTER_ADDR"] == "head"
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        mapped(multi, hosts=FileNotFoundError("scontrol"))
    # torchrun already set the ranks
    assert mapped({"RANK": "0", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"})["RANK"] == "0"


class BNDropBlock(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.lin, self.bn, self.drop = nn.Linear(a, b), nn.BatchNorm1d(b), nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.bn(self.lin(x)))


class BNStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([BNDropBlock(4, 6), BNDropBlock(6, 5)])


def test_layer_local_greedy_runs_frozen_blocks_in_eval_mode():
    train, _ = graph_like_data(2)
    torch.manual_seed(0)
    model = BNStack()
    ref = copy.deepcopy(model)
    Trainer(model, StackTask(), train_data=train, collate_fn=lambda items: items[0], strategy="layer_local",
            optimizer="sgd", lr=0.1, max_steps=3, seed=3, **quiet()).fit()
    assert all(m.training for m in model.modules())  # modes restored after the frozen forwards

    torch.manual_seed(3)
    x, y = train[0]
    for k, block in enumerate(ref.blocks):
        opt = torch.optim.SGD(block.parameters(), lr=0.1)
        for _ in range(3):
            h = x
            with torch.no_grad():
                for j in range(k):
                    ref.blocks[j].eval()
                    h = torch.relu(ref.blocks[j](h))
                    ref.blocks[j].train()
            opt.zero_grad()
            local_loss(torch.relu(block(h)), y).backward()
            opt.step()
    for (n, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), n


class UnusedParamStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 6), nn.Linear(6, 5)])
        self.blocks[1].register_parameter("unused", nn.Parameter(torch.zeros(3)))


def test_layer_local_ddp_syncs_all_gradients_in_one_collective(monkeypatch):
    import torch.distributed as dist

    from sciml.train import DistInfo

    train, _ = graph_like_data(3)

    def make():
        torch.manual_seed(0)
        return Trainer(UnusedParamStack(), StackTask(), train_data=train, collate_fn=lambda items: items[0],
                       strategy="layer_local", layer_local_mode="simultaneous", optimizer="sgd", lr=0.1,
                       max_steps=3, log_every=100, **quiet())

    single = make()
    single.fit()
    sums = []

    def fake_all_reduce(t, op=dist.ReduceOp.SUM, **kw):  # a second rank with identical gradients
        if op == dist.ReduceOp.SUM:
            sums.append(t.numel())
            t.mul_(2)

    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: None)
    fake = make()
    fake.dist = DistInfo(rank=0, world_size=2)
    fake.fit()
    n_grads = sum(p.numel() for p in fake.model.parameters())
    n_params = len(list(fake.model.parameters()))
    # one gradient all-reduce per step (all gradients, zeros for the missing one, one count per parameter) + the
    # final reduction of the training-metrics window
    assert sums[:3] == [n_grads + n_params] * 3 and len(sums) == 4
    assert fake.model.blocks[1].unused.grad is None
    for a, b in zip(single.model.parameters(), fake.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"distributed": "offf"}, "distributed"),
    ({"keep_last": -1}, "keep_last"),
    ({"num_workers": -2}, "num_workers"),
    ({"val_batch_size": 0}, "val_batch_size"),
    ({"max_steps": 2.5}, "max_steps"),
    ({"batch_size": True}, "batch_size"),
    ({"early_stopping": {"patiense": 3}}, r"early_stopping\.patiense"),
    ({"optimizer": "sgd", "optimizer_kwargs": {"momentun": 0.9}},
     r"optimizer_kwargs\.momentun: unknown argument of SGD; valid: momentum"),
    ({"scheduler": "step", "scheduler_kwargs": {"gama": 0.5}}, r"scheduler_kwargs\.gama: unknown argument of StepLR"),
])
def test_bad_trainer_arguments_raise_config_error_naming_the_key(kwargs, match):
    kw = dict(train_data=regression_data(n=8), val_data=regression_data(n=4), batch_size=4, max_steps=1)
    kw.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        Trainer(linear(), SupervisedTask(), **quiet(**kw))


def test_sampler_and_layer_local_argument_errors_are_config_errors():
    with pytest.raises(ConfigError, match="batch_size"):
        ResumableBatchSampler(4, 0)
    with pytest.raises(ConfigError, match="empty"):
        ResumableBatchSampler(0, 1)
    model = Stack()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="optimizer.*Optimizer instance"):
        Trainer(model, StackTask(), train_data=graph_like_data()[0], collate_fn=lambda items: items[0],
                strategy="layer_local", optimizer=opt, max_steps=1, **quiet())


def test_non_finite_check_reads_one_flag_per_step_and_stops_before_the_update(tmp_path, monkeypatch):
    ds = regression_data(n=24)

    def make(task, max_steps, **kw):
        return Trainer(linear(), task, train_data=ds, batch_size=2, accumulate=3, max_steps=max_steps, lr=0.1,
                       optimizer="sgd", log_every=100, seed=1, **quiet(**kw))

    reads = []
    real_item = torch.Tensor.item

    def counting_item(self):
        reads.append(1)
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    make(SupervisedTask(), 4).fit()
    assert len(reads) == 4  # one host read per step, not one per micro-batch plus one for the gradients
    # (SGD: Adam reads its CPU step counter with .item())
    reads.clear()
    make(SupervisedTask(), 4, grad_clip=1.0).fit()
    assert len(reads) == 4
    monkeypatch.setattr(torch.Tensor, "item", real_item)

    one_step = make(SupervisedTask(), 1)
    one_step.fit()
    bad = make(NaNAtCall(5), 3)  # micro-batch 2 (batch 4 of the epoch) of step 2
    with pytest.raises(NonFiniteError, match=r"non-finite loss \(nan\) at step 2 \(epoch 0, batch 4\)"):
        bad.fit()
    assert bad.state.step == 1
    for a, b in zip(bad.model.parameters(), one_step.model.parameters()):
        assert torch.equal(a, b)  # the bad step changed nothing


def test_stale_checkpoint_temp_files_are_removed_when_a_run_starts(tmp_path):
    import subprocess
    import sys
    import time

    import sciml.config.run_info as run_info
    import sciml.io

    ds = regression_data(n=8)
    Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=2, checkpoint_every=1,
            run_dir=tmp_path, **quiet()).fit()
    ck = tmp_path / "checkpoints"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = os.getppid()
    (ck / f".step-00000003.pt.tmp-{dead_pid}").write_bytes(b"partial")  # killed writer
    (ck / f".step-00000003.pt.tmp-{live}-0a1b2c3d").write_bytes(b"partial")  # older than the newest checkpoint
    old = time.time() - 3600
    os.utime(ck / f".step-00000003.pt.tmp-{live}-0a1b2c3d", (old, old))
    fresh = ck / f".step-00000009.pt.tmp-{live}-deadbeef"  # a live writer's file, newer: left alone
    fresh.write_bytes(b"writing")
    future = time.time() + 3600
    os.utime(fresh, (future, future))
    (tmp_path / f".summary.json.tmp-{dead_pid}-12345678").write_text("{")
    Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=3, checkpoint_every=1,
            run_dir=tmp_path, **quiet()).fit()
    assert sorted(p.name for p in ck.iterdir() if p.name.startswith(".")) == [fresh.name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert run_info.atomic_write_text is sciml.io.atomic_write_text  # one atomic-write helper for every file


def test_ema_evaluation_swaps_weights_in_place(monkeypatch):
    ds = regression_data()
    trainer = Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=6, max_epochs=2, ema=0.8, **quiet())
    trainer.fit()
    live = {k: (v.data_ptr(), v.clone()) for k, v in trainer.model.state_dict().items()}
    shadow = {k: v.clone() for k, v in trainer.ema.shadow.items()}
    loads = []
    real = nn.Module.load_state_dict
    monkeypatch.setattr(nn.Module, "load_state_dict", lambda self, *a, **k: loads.append(1) or real(self, *a, **k))
    got = trainer.evaluate(ds, batch_size=24)["loss"]
    assert loads == []  # no state-dict copies per validation
    x, y = ds.tensors
    expected = nn.functional.mse_loss(x @ shadow["weight"].T + shadow["bias"], y).item()
    assert got == pytest.approx(expected, rel=1e-6)
    for k, v in trainer.model.state_dict().items():
        assert v.data_ptr() == live[k][0] and torch.equal(v, live[k][1])
    for k, v in trainer.ema.shadow.items():
        assert torch.equal(v, shadow[k])


def test_ema_decay_change_on_resume_warns(tmp_path):
    ds = regression_data(n=8)
    Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=2, ema=0.9, run_dir=tmp_path,
            **quiet()).fit()
    resumed = Trainer(linear(), SupervisedTask(), train_data=ds, batch_size=4, max_steps=4, ema=0.5,
                      run_dir=tmp_path, **quiet())
    with pytest.warns(RuntimeWarning, match="EMA decay 0.9 differs from the configured ema=0.5"):
        resumed.fit()
    assert resumed.ema.decay == 0.5


def test_preemption_flag_restores_handlers_not_installed_from_python(monkeypatch):
    import signal as signal_module

    from sciml.train import PreemptionFlag

    calls = []

    def fake_signal(signum, handler):
        if handler is None:
            raise TypeError("signal handler must be signal.SIG_IGN, signal.SIG_DFL, or a callable object")
        calls.append((signum, handler))
        return None  # what signal.signal returns when the previous handler was installed outside Python

    monkeypatch.setattr(signal_module, "signal", fake_signal)
    with PreemptionFlag(signals=(signal_module.SIGUSR1,)):
        pass
    assert calls[-1] == (signal_module.SIGUSR1, signal_module.SIG_DFL)
