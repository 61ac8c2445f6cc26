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
