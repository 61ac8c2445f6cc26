"""sciml.cluster without a cluster: job spec, rendering, sweep expansion, requeue logic, supervisor, run_info."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sciml.cli.main import main
from sciml.cluster import render, slurm, supervise, sweep
from sciml.cluster.spec import JobSpec, load_job_spec
from sciml.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "gcn_community.yaml"
CLUSTER = Path(__file__).resolve().parents[2] / "configs" / "slurm_local.yaml"


def sbatch_header(script: str) -> dict[str, str]:
    out = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line[len("#SBATCH "):].partition("=")
            out[key] = value
    return out


# --- job spec ------------------------------------------------------------------------------------------------
def test_job_spec_from_file_and_overrides():
    spec = load_job_spec(CLUSTER, ["time=00:05:00", "ntasks_per_node=2", "extra_sbatch=[--exclusive]"])
    assert spec.partition == "debug" and spec.time == "00:05:00" and spec.world_size == 2
    assert spec.extra_sbatch == ["--exclusive"] and spec.env == {} and spec.setup == []


@pytest.mark.parametrize("bad, needle", [({"memm": "1G"}, "slurm.memm: unknown key 'memm'"),
                                         ({"nodes": "two"}, "slurm.nodes: expected int"),
                                         ({"time": "soon"}, "slurm.time"),
                                         ({"mem": "lots"}, "slurm.mem"),
                                         ({"extra_sbatch": ["exclusive"]}, "slurm.extra_sbatch")])
def test_job_spec_errors_name_the_key(bad, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        load_job_spec({"slurm": bad})


# --- rendering -------------------------------------------------------------------------------------------------
def test_render_train_structure(tmp_path):
    spec = JobSpec(job_name="gcn", partition="gpu", time="02:00:00", nodes=2, ntasks_per_node=4, gpus_per_node=4,
                   cpus_per_task=8, mem="64G", account="proj", qos="high", dependency="afterok:7",
                   signal_seconds=240, extra_sbatch=["--constraint=a100"], setup=["module load cuda"],
                   env={"NCCL_DEBUG": "WARN"})
    script = render.render_train(spec, CONFIG, ["trainer.lr=0.1", "model.name=mlp"], tmp_path / "run",
                                 "/venv/bin/sciml")
    head = sbatch_header(script)
    run = str((tmp_path / "run").absolute())
    assert head["--job-name"] == "gcn" and head["--partition"] == "gpu" and head["--time"] == "02:00:00"
    assert head["--nodes"] == "2" and head["--ntasks-per-node"] == "4" and head["--gpus-per-node"] == "4"
    assert head["--cpus-per-task"] == "8" and head["--mem"] == "64G" and head["--account"] == "proj"
    assert head["--qos"] == "high" and head["--dependency"] == "afterok:7"
    assert head["--signal"] == "B:USR1@240" and "--requeue" in head and head["--open-mode"] == "append"
    assert head["--constraint"] == "a100" and head["--chdir"] == run and head["--output"] == f"{run}/slurm-%j.out"
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "export PYTHONSAFEPATH=1" in script and "export OMP_NUM_THREADS=8" in script
    assert "module load cuda" in lines and "export NCCL_DEBUG=WARN" in lines
    # the batch shell becomes the supervisor, which runs srun on the console script (absolute), never python -m
    launch = script[script.index('exec "$SCIML" slurm supervise'):]
    assert "SCIML=/venv/bin/sciml" in lines and "python -m" not in script
    assert 'srun --nodes=2 --ntasks-per-node=4 --cpus-per-task=8 "$SCIML" train ' + str(CONFIG) in launch
    assert "trainer.lr=0.1 model.name=mlp --run-dir \"$RUN_DIR\"" in launch
    assert ".pt" not in script and "checkpoint" not in script  # never a checkpoint path in the submission
    # rank variables come from sciml.train.distributed inside each task, not from the script
    assert "RANK" not in script and "MASTER_ADDR" not in script
    # the #SBATCH header must come before any command
    first_cmd = next(i for i, l in enumerate(lines) if l and not l.startswith("#"))
    assert all(not l.startswith("#SBATCH") for l in lines[first_cmd:])
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_render_without_requeue():
    script = render.render_train(JobSpec(requeue=False), CONFIG, [], "/r", "/v/bin/sciml")
    head = sbatch_header(script)
    assert "--requeue" not in head and head["--signal"] == "B:USR1@300" and "--no-requeue --" in script


def test_render_sweep_one_array(tmp_path):
    tasks = [(tmp_path / f"task-{i}", [f"trainer.lr={lr}", "model.name=mlp"]) for i, lr in enumerate([0.1, 0.2, 0.3])]
    script = render.render_sweep(JobSpec(array_parallelism=2), CONFIG, tasks, tmp_path, "/v/bin/sciml")
    head = sbatch_header(script)
    assert head["--array"] == "0-2%2" and head["--output"].endswith("/logs/slurm-%A_%a.out")
    for i in range(3):
        assert f"  {i}) RUN_DIR={tmp_path.absolute()}/task-{i}; OVERRIDES=(trainer.lr=0.{i + 1} model.name=mlp) ;;" \
            in script
    assert '"${OVERRIDES[@]}" --run-dir "$RUN_DIR"' in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_render_shard_array_has_no_requeue_or_signal(tmp_path):
    script = render.render_shard_array(JobSpec(), ["/v/bin/sciml", "data", "generate", "darcy", "out"], 4,
                                       workdir=tmp_path)
    head = sbatch_header(script)
    assert head["--array"] == "0-3" and "--no-requeue" in head and "--signal" not in head
    assert "srun --nodes=1 --ntasks-per-node=1 --cpus-per-task=1 /v/bin/sciml data generate darcy out" in script
    assert "--shard" not in script  # each task's shard defaults to its array index


def test_cli_render_prints_script(capsys, tmp_path):
    assert main(["slurm", "render", str(CONFIG), "trainer.max_epochs=3", "--run-dir", str(tmp_path / "r"),
                 "--cluster", str(CLUSTER), "--job", "time=00:04:00"]) == 0
    out = capsys.readouterr().out
    assert sbatch_header(out)["--time"] == "00:04:00"
    exe = Path(sys.executable).with_name("sciml")
    assert f"SCIML={exe}" in out


def test_cli_render_bad_config_is_one_line(capsys, tmp_path):
    assert main(["slurm", "render", str(CONFIG), "trainer.max_epocs=3", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trainer.max_epocs" in err


# --- sweeps ------------------------------------------------------------------------------------------------------
def test_split_values():
    assert sweep.split_values("a,b,c") == ["a", "b", "c"]
    assert sweep.split_values("[16,32],[64, 64]") == ["[16,32]", "[64, 64]"]
    assert sweep.split_values("'x,y',z") == ["'x,y'", "z"]


def test_expand_sweep_cartesian_product():
    combos = sweep.expand_sweep(["a.x=1,2", "b.y=u,v,w"])
    assert len(combos) == 6 and combos[0] == ["a.x=1", "b.y=u"] and combos[-1] == ["a.x=2", "b.y=w"]
    assert len({tuple(c) for c in combos}) == 6
    assert sweep.expand_sweep([]) == [[]]


def test_plan_sweep_typed_values_and_run_dirs(tmp_path):
    tasks = sweep.plan_sweep(CONFIG, ["trainer.lr=1e-3,1e-2", "model.hidden_channels=8,16"], tmp_path,
                             fixed=["trainer.max_epochs=2"])
    assert len(tasks) == 4
    assert tasks[0]["params"] == {"trainer.lr": 1e-3, "model.hidden_channels": 8}
    assert isinstance(tasks[0]["params"]["trainer.lr"], float)
    assert isinstance(tasks[3]["params"]["model.hidden_channels"], int)
    assert tasks[3]["overrides"] == ["trainer.max_epochs=2", "trainer.lr=1e-2", "model.hidden_channels=16"]
    assert [t["run_dir"] for t in tasks] == [str(tmp_path.absolute() / f"task-{i}") for i in range(4)]


def test_plan_sweep_unknown_key_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"sweep task 0 .*trainer\.lrr"):
        sweep.plan_sweep(CONFIG, ["trainer.lrr=1,2"], tmp_path)
    with pytest.raises(ConfigError, match="expected key=value"):
        sweep.expand_sweep(["trainer.lr"])


def test_cli_sweep_unknown_key_one_line(capsys, tmp_path):
    assert main(["slurm", "sweep", str(CONFIG), "trainer.lrr=1,2", "--run-dir", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trainer.lrr" in err


def test_cli_sweep_dry_run(capsys, tmp_path):
    assert main(["slurm", "sweep", str(CONFIG), "trainer.lr=0.1,0.2,0.3", "trainer.max_epochs=2",
                 "--run-dir", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sbatch_header(out)["--array"] == "0-2" and out.count("trainer.max_epochs=2") >= 3
    assert not (tmp_path / "sweep.json").exists()


def test_summary_table(tmp_path):
    for i, loss in enumerate([0.5, 0.25]):
        (tmp_path / f"task-{i}").mkdir()
        (tmp_path / f"task-{i}" / "summary.json").write_text(json.dumps(
            {"status": "completed", "steps": 10, "last_train": {"loss": loss}, "last_val": {"val_acc": 0.9}}))
    sw = {"job_id": "9", "tasks": [{"index": i, "run_dir": str(tmp_path / f"task-{i}"), "params": {"lr": lr}}
                                   for i, lr in enumerate([0.1, 0.2])] +
          [{"index": 2, "run_dir": str(tmp_path / "task-2"), "params": {"lr": 0.3}}]}
    rows = sweep.summary_rows(sw, {"9_0": "COMPLETED", "9_1": "COMPLETED", "9_2": "PENDING"})
    assert rows[1] == {"task": 1, "lr": 0.2, "state": "COMPLETED", "status": "completed", "steps": 10,
                       "train_loss": 0.25, "val_acc": 0.9}
    assert rows[2] == {"task": 2, "lr": 0.3, "state": "PENDING"}
    table = sweep.format_table(rows).splitlines()
    assert table[0].split() == ["task", "lr", "state", "status", "steps", "train_loss", "val_acc"]
    assert sweep.rows_to_csv(rows).splitlines()[0] == "task,lr,state,status,steps,train_loss,val_acc"


# --- requeue logic -----------------------------------------------------------------------------------------------
def test_requeue_target_is_array_aware():
    assert slurm.requeue_command({"SLURM_JOB_ID": "12350", "SLURM_ARRAY_JOB_ID": "12345",
                                  "SLURM_ARRAY_TASK_ID": "2"}) == ["scontrol", "requeue", "12345_2"]
    assert slurm.requeue_command({"SLURM_JOB_ID": "77"}) == ["scontrol", "requeue", "77"]
    with pytest.raises(slurm.SlurmError):
        slurm.requeue_target({})


def test_requeue_runs_scontrol_and_never_raises():
    calls = []

    def runner(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    ok, msg = slurm.requeue({"SLURM_JOB_ID": "5", "SLURM_ARRAY_JOB_ID": "4", "SLURM_ARRAY_TASK_ID": "1"}, runner=runner)
    assert ok and calls == [["scontrol", "requeue", "4_1"]]

    def missing(cmd, **kw):
        raise FileNotFoundError("scontrol")

    assert slurm.requeue({"SLURM_JOB_ID": "5"}, runner=missing)[0] is False
    assert slurm.requeue({}, runner=runner)[0] is False


def test_job_ids():
    assert slurm.job_ids({}) == {}
    assert slurm.job_ids({"SLURM_JOB_ID": "8", "SLURM_ARRAY_JOB_ID": "6", "SLURM_ARRAY_TASK_ID": "2",
                          "SLURM_RESTART_COUNT": "3"}) == {"job_id": "8", "array_job_id": "6", "array_task_id": "2",
                                                          "restart_count": 3}


def test_should_requeue():
    assert supervise.should_requeue(75, ["SIGUSR1"])
    assert supervise.should_requeue(75, [])
    assert not supervise.should_requeue(75, ["SIGUSR1", "SIGTERM"])  # cancelled / time limit: Slurm decides
    assert not supervise.should_requeue(0, ["SIGUSR1"]) and not supervise.should_requeue(1, [])
    assert not supervise.should_requeue(75, [], enabled=False)


CHILD = """
import signal, sys, time, pathlib
signal.signal(signal.SIGUSR1, lambda s, f: sys.exit(75))
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(60)
sys.exit(3)
"""


def test_supervisor_forwards_usr1_and_requeues_array_task(tmp_path, monkeypatch):
    for k, v in {"SLURM_JOB_ID": "101", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "1"}.items():
        monkeypatch.setenv(k, v)
    calls = []

    def runner(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    ready = tmp_path / "ready"

    def poke():
        for _ in range(300):
            if ready.exists():
                os.kill(os.getpid(), 10)  # SIGUSR1 to "the batch shell"
                return
            time.sleep(0.05)

    threading.Thread(target=poke, daemon=True).start()
    t0 = time.monotonic()
    rc = supervise.supervise(tmp_path, [sys.executable, "-c", CHILD, str(ready)], runner=runner)
    assert rc == 0 and time.monotonic() - t0 < 30
    assert calls == [["scontrol", "requeue", "100_1"]]
    events = supervise.read_events(tmp_path)
    assert [e["event"] for e in events] == ["start", "exit", "requeue"]
    assert events[1]["returncode"] == 75 and events[1]["signals"] == ["SIGUSR1"]
    assert events[0]["array_job_id"] == "100" and events[0]["array_task_id"] == "1"


def test_supervisor_passes_other_status_through(tmp_path):
    calls = []
    rc = supervise.supervise(tmp_path, [sys.executable, "-c", "import sys; sys.exit(4)"],
                             runner=lambda cmd, **kw: calls.append(cmd))
    assert rc == 4 and calls == []


# --- env mapping is sciml.train.distributed's --------------------------------------------------------------------
def test_srun_step_env_mapping_is_reused():
    from sciml.train.distributed import _env_from_slurm

    env = {"SLURM_PROCID": "1", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_LOCALID": "1",
           "SLURM_JOB_ID": "4242", "SLURM_STEP_NUM_NODES": "1"}
    _env_from_slurm(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"], env["MASTER_PORT"]) == \
        ("1", "2", "1", "127.0.0.1", str(15000 + 4242 % 10000))
    batch = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "1", "SLURM_STEP_ID": "batch"}
    _env_from_slurm(batch)
    assert "RANK" not in batch  # the batch script (the supervisor) is not a rank


# --- run_info keeps every start ------------------------------------------------------------------------------------
def test_run_info_appends_starts(tmp_path, monkeypatch):
    from sciml.config import load_config, write_run_info

    cfg = load_config(CONFIG)
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    write_run_info(tmp_path, cfg, argv=["sciml"])
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    info = write_run_info(tmp_path, cfg, argv=["sciml"])
    on_disk = json.loads((tmp_path / "run_info.json").read_text())
    assert on_disk["restart_count"] == info["restart_count"] == 1
    assert [(s["job_id"], s["slurm_restart_count"]) for s in on_disk["starts"]] == [("31", "0"), ("31", "1")]


def test_sciml_executable_is_absolute_console_script():
    exe = Path(slurm.sciml_executable())
    assert exe.is_absolute() and exe.name == "sciml" and os.access(exe, os.X_OK)
