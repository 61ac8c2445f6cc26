"""sciml.train with real processes: SIGKILL mid-run + resume, SIGTERM/SIGUSR1 preemption, DDP under torchrun.

The training scripts live next to this file (``_train_worker.py``, ``_ddp_worker.py``) and are also imported here by
path so the in-process references use exactly the same model, data and Trainer arguments.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sciml.train import EXIT_PREEMPTED, list_checkpoints

HERE = Path(__file__).resolve().parent


def load_module(name: str):
    spec = importlib.util.spec_from_file_location(f"_sciml_test_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


worker = load_module("_train_worker")


def env() -> dict[str, str]:
    e = dict(os.environ, PYTHONSAFEPATH="1", OMP_NUM_THREADS="1")
    return e


def start_worker(tmp_path: Path, run_dir: Path, sleep: float) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, str(HERE / "_train_worker.py"), str(run_dir), str(tmp_path / "out.pt"),
                             "--sleep", str(sleep)], cwd=tmp_path, env=env(), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    return proc, log


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, min_step: int, log: Path, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [s for s, _ in list_checkpoints(run_dir / "checkpoints")]
        if steps and steps[-1] >= min_step:
            return steps[-1]
        if proc.poll() is not None:
            pytest.fail(f"worker exited early with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint >= {min_step} within {timeout}s:\n{log.read_text()}")


def reference(tmp_path: Path):
    """The uninterrupted deterministic run, in this process."""
    trainer = worker.build_trainer(tmp_path / "reference", progress="none")
    trainer.fit()
    return trainer


def records(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        r.pop("time")
        out.append(r)
    return out


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), f"{name} differs"


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path):
    run_dir = tmp_path / "killed"
    proc, log = start_worker(tmp_path, run_dir, sleep=0.05)
    step = wait_for_checkpoint(proc, run_dir, 8, log)
    time.sleep(0.08)  # land between checkpoints, mid-step
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()  # it really died mid-run
    assert step < 30

    ref = reference(tmp_path)
    resumed = worker.build_trainer(run_dir, progress="none")
    summary = resumed.fit()
    assert summary["resumed_from"] is not None and summary["steps"] == 30
    assert_same_weights(ref.model, resumed.model)
    assert torch.equal(ref.ema.shadow["0.weight"], resumed.ema.shadow["0.weight"])
    # metrics files read as if the run had never been interrupted (stale rows after the checkpoint dropped)
    assert records(run_dir) == records(tmp_path / "reference")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_checkpoints_at_step_boundary_and_exits_75(tmp_path, signum):
    run_dir = tmp_path / "preempted"
    proc, log = start_worker(tmp_path, run_dir, sleep=0.05)
    wait_for_checkpoint(proc, run_dir, 4, log)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED == 75, log.read_text()
    assert "Traceback" not in log.read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["signal"] == signal.Signals(signum).name
    last_step = list_checkpoints(run_dir / "checkpoints")[-1][0]
    assert last_step == summary["steps"] and summary["checkpoint"].endswith(f"step-{last_step:08d}.pt")
    assert not (tmp_path / "out.pt").exists()  # fit did not return normally

    ref = reference(tmp_path)
    resumed = worker.build_trainer(run_dir, progress="none")
    assert resumed.fit()["steps"] == 30
    assert_same_weights(ref.model, resumed.model)


def test_ddp_two_processes_equal_single_process_with_same_global_batch(tmp_path):
    ddp = load_module("_ddp_worker")
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_ddp_worker.py"), str(tmp_path / "runs"), str(out)]
    res = subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    result = torch.load(out, weights_only=True)
    assert result["world_size"] == 2
    for kind in ("backprop", "layer_local"):
        got = result[kind]
        assert got["equal_across_ranks"], kind
        single = ddp.build(kind, batch_size=8, distributed="off", run_dir=tmp_path / "single" / kind)  # 2 x 4
        single.fit()
        for name, value in single.model.state_dict().items():
            torch.testing.assert_close(got["params"][name], value, rtol=1e-5, atol=1e-6, msg=f"{kind} {name}")
        expected_val = single.evaluate(ddp.make_data()[1])
        assert got["val"].keys() == expected_val.keys()
        for k in expected_val:
            assert got["val"][k] == pytest.approx(expected_val[k], rel=1e-5, abs=1e-7)
        # rank 0 alone writes metrics and checkpoints: one record per step, not two
        lines = (tmp_path / "runs" / kind / "metrics.jsonl").read_text().splitlines()
        train_steps = [json.loads(l)["step"] for l in lines if json.loads(l)["split"] == "train"]
        assert train_steps == list(range(1, 13))
        # training metrics are reduced over ranks: the global batch's loss, as logged by the single process
        def train_records(run_dir):
            return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                    if r["split"] == "train"]
        for got_r, want_r in zip(train_records(tmp_path / "runs" / kind), train_records(tmp_path / "single" / kind),
                                 strict=True):
            for key in want_r.keys() - {"time", "lr", "split", "step", "epoch"}:
                assert got_r[key] == pytest.approx(want_r[key], rel=1e-5, abs=1e-7), (kind, key, got_r["step"])
        assert [s for s, _ in list_checkpoints(tmp_path / "runs" / kind / "checkpoints")] == [6, 9, 12]
