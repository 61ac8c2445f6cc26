"""End to end against a running Slurm (CI: `.ci/run` starts one with scripts/slurm_ci.sh). Skipped where `sinfo`
does not answer. Every job is cancelled in the fixture's finalizer; every wait is bounded."""
import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sciml.cli.main import main
from sciml.cluster import JobSpec, job_states, render_script, sbatch, slurm_available
from sciml.cluster.slurm import TERMINAL_STATES

_OK, _WHY = slurm_available()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(not _OK, reason=f"no Slurm here: {_WHY}")]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "gcn_community.yaml"
CLUSTER = ROOT / "configs" / "slurm_local.yaml"
NAME = f"sciml-it{os.getpid()}"  # this session's job name: teardown also cancels by name, whatever ids were seen
JOB = ["--cluster", str(CLUSTER), "--job", "time=00:05:00", "--job", "mem=1G", "--job", f"job_name={NAME}"]


@pytest.fixture
def jobs():
    """Job ids to scancel at teardown (whatever state they are in); jobs named NAME (and its -summary/-merge
    helpers) are cancelled too, so a CLI that fails after submitting leaves nothing behind."""
    ids: list[str] = []
    yield ids
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
    for name in (NAME, f"{NAME}-summary", f"{NAME}-merge"):
        subprocess.run(["scancel", f"--user={getpass.getuser()}", f"--name={name}"], capture_output=True, timeout=30)


def wait_done(job_id: str, timeout: float) -> dict[str, str]:
    """Poll until every task of `job_id` is in a terminal state."""
    deadline = time.monotonic() + timeout
    while True:
        states = job_states(job_id)
        if states and all(s in TERMINAL_STATES for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not done after {timeout:.0f} s: {states}")
        time.sleep(0.5)


def submit(capsys, argv) -> str:
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out.split()[0]


def log_of(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(run_dir.rglob("*.out")))


def test_submit_train_and_read_metrics(tmp_path, capsys, jobs):
    run = tmp_path / "run"
    job = submit(capsys, ["slurm", "submit", str(CONFIG), "trainer.max_epochs=10", "--run-dir", str(run), *JOB])
    jobs.append(job)
    assert wait_done(job, 120) == {job: "COMPLETED"}, log_of(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 10
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r["split"] == "val" for r in records)
    info = json.loads((run / "run_info.json").read_text())
    assert info["slurm"]["SLURM_JOB_ID"] == job and info["restart_count"] == 0
    assert info["cwd"] == str(run.absolute())  # never the checkout root
    assert main(["slurm", "status", str(run), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "completed" and status["states"] == {job: "COMPLETED"}
    assert status["last_val"] == summary["last_val"]


def test_sweep_array_three_tasks(tmp_path, capsys, jobs):
    base = tmp_path / "sweep"
    job = submit(capsys, ["slurm", "sweep", str(CONFIG), "model.hidden_channels=4,8,16", "trainer.max_epochs=5",
                          "--run-dir", str(base), *JOB])
    record = json.loads((base / "slurm" / "job.json").read_text())
    jobs.extend(record["job_ids"])
    states = wait_done(job, 180)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(3)}, log_of(base)
    assert wait_done(record["summary_job_id"], 60) == {record["summary_job_id"]: "COMPLETED"}, log_of(base)
    for i, hidden in enumerate([4, 8, 16]):
        cfg = (base / f"task-{i}" / "config.yaml").read_text()
        assert f"hidden_channels: {hidden}" in cfg
    lines = (base / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("task,model.hidden_channels,state,status,steps") and len(lines) == 4
    assert all(",COMPLETED,completed,5," in l for l in lines[1:])
    assert "val_acc" in (base / "summary.txt").read_text()


def test_shard_array_then_merge(tmp_path, capsys, jobs):
    out, merged = tmp_path / "parts", tmp_path / "darcy.h5"
    assert main(["slurm", "data", "--shards", "3", "--merge", str(merged), "--run-dir", str(tmp_path / "job"), *JOB,
                 "--", "generate", "darcy", str(out), "num_train=6", "num_val=0", "num_test=0",
                 "resolution=16"]) == 0
    array, merge = capsys.readouterr().out.split()
    jobs.extend([array, merge])
    assert wait_done(array, 120) == {f"{array}_{i}": "COMPLETED" for i in range(3)}, log_of(tmp_path)
    assert wait_done(merge, 60) == {merge: "COMPLETED"}, log_of(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == [f"part-0000{i}-of-00003.h5" for i in range(3)]
    import h5py

    with h5py.File(merged, "r") as f:
        assert int(f.attrs["complete"]) == 1 and int(f["train"].attrs["num_samples"]) == 6
        assert len(f.attrs["merged_from"]) == 3


def _final_weights(run_dir: Path) -> dict:
    ckpts = sorted((run_dir / "checkpoints").glob("step-*.pt"))
    payload = torch.load(ckpts[-1], weights_only=True)
    return payload["model"]


def test_preempted_job_requeues_and_matches_uninterrupted_run(tmp_path, capsys, jobs):
    """USR1 to the batch shell mid-run -> checkpoint, self-requeue, resume -> bitwise the uninterrupted result."""
    ovr = ["trainer.max_epochs=300", "~trainer.early_stopping", "trainer.deterministic=true",
           "trainer.checkpoint_every=25", "trainer.log_every=50"]
    ref_dir, run = tmp_path / "reference", tmp_path / "preempted"
    ref = submit(capsys, ["slurm", "submit", str(CONFIG), *ovr, "--run-dir", str(ref_dir), *JOB])
    jobs.append(ref)
    job = submit(capsys, ["slurm", "submit", str(CONFIG), *ovr, "--run-dir", str(run), *JOB])
    jobs.append(job)
    deadline = time.monotonic() + 90
    while not list((run / "checkpoints").glob("step-*.pt")):
        assert time.monotonic() < deadline, f"no checkpoint: {log_of(run)}"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
    # while Slurm requeues, `scontrol show job` can briefly report a terminal state: wait for the second start
    events_file, deadline = run / "slurm" / "events.jsonl", time.monotonic() + 180
    pending_since = None
    while sum('"start"' in l for l in events_file.read_text().splitlines()) < 2:
        assert time.monotonic() < deadline, f"job {job} did not restart: {log_of(run)}"
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True,
                             timeout=30).stdout
        if "PENDING BeginTime" in out:  # Slurm's ~120 s requeue delay (infra.md): start it now, but not within
            # the second of the requeue (slurmd refuses a credential as old as the revocation: "credential revoked")
            pending_since = pending_since or time.monotonic()
            if time.monotonic() - pending_since > 2.5:
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True, timeout=30)
                pending_since = None
        time.sleep(0.3)
    states = wait_done(job, 180)
    assert states == {job: "COMPLETED"}, log_of(run)
    assert wait_done(ref, 120) == {ref: "COMPLETED"}, log_of(ref_dir)

    events = [json.loads(l) for l in (run / "slurm" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "exit", "requeue", "start", "exit"], events
    assert events[1]["returncode"] == 75 and events[1]["signals"] == ["SIGUSR1"] and events[2]["ok"]
    assert events[3]["restart_count"] == 1 and events[4]["returncode"] == 0
    info = json.loads((run / "run_info.json").read_text())
    assert info["restart_count"] == 1 and [s["job_id"] for s in info["starts"]] == [job, job]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 300 and summary["resumed_from"]
    assert 0 < int(Path(summary["resumed_from"]).stem.split("-")[1]) < 300
    ref_w, w = _final_weights(ref_dir), _final_weights(run)
    assert ref_w.keys() == w.keys() and all(torch.equal(ref_w[k], w[k]) for k in ref_w)
    ref_m = [json.loads(l) for l in (ref_dir / "metrics.jsonl").read_text().splitlines()]
    got_m = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    strip = lambda ms: [{k: v for k, v in m.items() if k != "time"} for m in ms]  # noqa: E731
    assert strip(got_m) == strip(ref_m)


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
from sciml.config import load_config
from sciml.experiment import build
cfg = load_config(sys.argv[1], sys.argv[3:])
exp = build(cfg, run_dir=sys.argv[2])
exp.fit()
rank, world = dist.get_rank(), dist.get_world_size()
torch.save({"world": world, "params": {k: v.detach().clone() for k, v in exp.model.state_dict().items()}},
           f"{sys.argv[2]}/rank{rank}.pt")
del exp
dist.destroy_process_group()
"""


def test_srun_two_task_ddp_ranks_agree(tmp_path, jobs):
    run = tmp_path / "ddp"
    run.mkdir()
    (tmp_path / "ddp_check.py").write_text(DDP_SCRIPT)
    spec = JobSpec(time="00:05:00", mem="2G", ntasks_per_node=2, cpus_per_task=1, signal_seconds=120)
    from sciml.cluster.render import srun_prefix

    body = [" ".join(srun_prefix(spec)) + f" {sys.executable} {tmp_path / 'ddp_check.py'} {CONFIG} {run} "
            "trainer.max_epochs=10 trainer.checkpoint_every=5"]
    script = tmp_path / "ddp.sbatch"
    script.write_text(render_script(spec, body, output=f"{run}/slurm-%j.out", chdir=run, signal=False))
    job = sbatch(script)
    jobs.append(job)
    assert wait_done(job, 150) == {job: "COMPLETED"}, log_of(run)
    r0, r1 = (torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert all(torch.equal(r0["params"][k], r1["params"][k]) for k in r0["params"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["status"] == "completed"


def test_submitit_backend(tmp_path, capsys, jobs):
    pytest.importorskip("submitit")
    run = tmp_path / "run"
    job = submit(capsys, ["slurm", "submit", str(CONFIG), "trainer.max_epochs=5", "--run-dir", str(run),
                          "--backend", "submitit", *JOB])
    jobs.append(job)
    assert wait_done(job, 120) == {job: "COMPLETED"}, log_of(run)
    assert json.loads((run / "summary.json").read_text())["steps"] == 5
