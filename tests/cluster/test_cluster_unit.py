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
            out[key] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
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
    assert [(s["job_id"], s["restart_count"]) for s in on_disk["starts"]] == [("31", 0), ("31", 1)]


def test_run_info_starts_use_cluster_job_ids(tmp_path, monkeypatch):
    from sciml.config import load_config, write_run_info

    env = {"SLURM_JOB_ID": "12", "SLURM_ARRAY_JOB_ID": "10", "SLURM_ARRAY_TASK_ID": "2", "SLURM_RESTART_COUNT": "4"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    info = write_run_info(tmp_path, load_config(CONFIG), argv=["sciml"])
    start = info["starts"][-1]
    assert {k: v for k, v in start.items() if k not in ("time_utc", "hostname")} == slurm.job_ids(env)


def test_sciml_executable_is_absolute_console_script():
    exe = Path(slurm.sciml_executable())
    assert exe.is_absolute() and exe.name == "sciml" and os.access(exe, os.X_OK)


# --- review fixes ------------------------------------------------------------------------------------------------
def parse_time(text):
    from sciml.cluster.spec import parse_time as parse

    return parse(text)


@pytest.mark.parametrize("text, seconds", [("30", 1800), ("30:15", 1815), ("01:02:03", 3723), ("2-03", 183600),
                                           ("2-03:04", 183840), ("2-03:04:05", 183845), ("UNLIMITED", None),
                                           ("infinite", None)])
def test_parse_time_slurm_forms(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "1-", "-5", "1:2:3:4", "1-2:3:4:5", ""])
def test_parse_time_rejects(bad):
    with pytest.raises(ConfigError, match=r"slurm\.time"):
        parse_time(bad)


@pytest.mark.parametrize("kw", [{"signal_seconds": 0}, {"signal_seconds": 65536, "time": "UNLIMITED"},
                                {"signal_seconds": 300, "time": "00:05:00"},
                                {"signal_seconds": 241, "time": "5"}])
def test_signal_seconds_must_fit_time_limit(kw):
    with pytest.raises(ConfigError, match=r"slurm\.signal_seconds"):
        JobSpec(**kw)


def test_signal_seconds_ok_and_max_restarts_default():
    assert JobSpec(signal_seconds=239, time="5").max_restarts == 20
    JobSpec(signal_seconds=65535, time="UNLIMITED")
    JobSpec(signal_seconds=300, time="1-00")


def test_submitit_minutes_uses_the_one_parser():
    from sciml.cluster.submitit_backend import _minutes

    assert _minutes("2-03") == (2 * 24 + 3) * 60 and _minutes("2-03:04") == (2 * 24 + 3) * 60 + 4
    assert _minutes("01:00:01") == 61 and _minutes("45") == 45 and _minutes("UNLIMITED") is None


CHILD_SHORT = """
import signal, sys, time, pathlib
signal.signal(signal.SIGUSR1, lambda s, f: sys.exit(75))
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(8)
sys.exit(3)
"""


def test_supervisor_resends_signal_that_arrived_during_popen(tmp_path, monkeypatch):
    """A USR1 between fork and `child = Popen(...)` (handler sees child=None) must still reach the child."""
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    real_popen = subprocess.Popen
    ready = tmp_path / "ready"

    def popen(*a, **kw):
        proc = real_popen(*a, **kw)
        for _ in range(200):  # child's own handler is in place; now signal "the batch shell" before returning
            if ready.exists():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), 10)
        return proc

    monkeypatch.setattr(supervise.subprocess, "Popen", popen)
    calls = []
    rc = supervise.supervise(tmp_path, [sys.executable, "-c", CHILD_SHORT, str(ready)],
                             runner=lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    events = supervise.read_events(tmp_path)
    assert events[1]["returncode"] == 75 and events[1]["signals"] == ["SIGUSR1"], events
    assert rc == 0 and calls == [["scontrol", "requeue", "7"]]


def test_supervisor_refuses_requeue_after_max_restarts(tmp_path):
    calls = []
    env = {"SLURM_JOB_ID": "9", "SLURM_RESTART_COUNT": "3"}
    run = lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", "")  # noqa: E731
    rc = supervise.supervise(tmp_path, [sys.executable, "-c", "import sys; sys.exit(75)"], env=env, runner=run,
                             max_restarts=3)
    assert rc == 75 and calls == []
    assert supervise.read_events(tmp_path)[-1]["event"] == "requeue_refused"
    env["SLURM_RESTART_COUNT"] = "2"
    assert supervise.supervise(tmp_path, [sys.executable, "-c", "import sys; sys.exit(75)"], env=env, runner=run,
                               max_restarts=3) == 0 and calls == [["scontrol", "requeue", "9"]]


def test_rendered_train_passes_max_restarts(tmp_path):
    script = render.render_train(JobSpec(max_restarts=5), CONFIG, [], tmp_path / "r", "/venv/bin/sciml")
    assert "slurm supervise --run-dir \"$RUN_DIR\" --max-restarts 5 --" in script
    assert main(["slurm", "supervise", "--run-dir", str(tmp_path), "--max-restarts", "0", "--",
                 sys.executable, "-c", "import sys; sys.exit(75)"]) == 75


def test_train_exits_75_on_signal_during_startup(tmp_path, monkeypatch, capsys):
    """USR1 during start-up (before fit) is recorded by the early handler: no crash, status 75, no training."""
    import signal as _signal

    import sciml.config as config_mod
    import sciml.experiment  # noqa: F401  bind its `load_config` to the real function before the patch below

    real = config_mod.load_config

    def load_and_get_signal(*a, **kw):
        os.kill(os.getpid(), _signal.SIGUSR1)  # would kill the process without the early handler
        return real(*a, **kw)

    monkeypatch.setattr(config_mod, "load_config", load_and_get_signal)
    before = _signal.getsignal(_signal.SIGUSR1)
    rc = main(["train", str(CONFIG), "trainer.max_epochs=2", "--run-dir", str(tmp_path / "run")])
    assert rc == 75 and "before training began" in capsys.readouterr().err
    assert not (tmp_path / "run" / "summary.json").exists()
    assert _signal.getsignal(_signal.SIGUSR1) is before  # handlers restored


def test_parse_show_job_dependency_never_satisfied_is_terminal():
    text = ("JobId=5 JobName=x JobState=PENDING Reason=DependencyNeverSatisfied Dependency=afterok:4(failed)\n"
            "JobId=7 ArrayJobId=6 ArrayTaskId=1 JobState=PENDING Reason=Dependency\n")
    states = slurm.parse_show_job(text)
    assert states == {"5": slurm.DEPENDENCY_NEVER_SATISFIED, "6_1": "PENDING"}
    assert states["5"] in slurm.TERMINAL_STATES and "PENDING" not in slurm.TERMINAL_STATES


def test_dependent_jobs_kill_on_invalid_dep(tmp_path):
    script = render.render_command_job(JobSpec(), ["/x/sciml", "data", "merge"], workdir=tmp_path, log="l-%j.out",
                                       dependency="afterok:3")
    head = sbatch_header(script)
    assert head["--dependency"] == "afterok:3" and head["--kill-on-invalid-dep"] == "yes"
    assert "--kill-on-invalid-dep" not in sbatch_header(render.render_train(JobSpec(dependency="afterok:1"), CONFIG,
                                                                           [], tmp_path, "/x/sciml"))


def test_paths_with_spaces_are_quoted_and_bad_paths_rejected(tmp_path):
    run = tmp_path / "my run"
    script = render.render_train(JobSpec(), CONFIG, [], run, "/venv/bin/sciml")
    assert f'#SBATCH --chdir="{run}"' in script and f'#SBATCH --output="{run}/slurm-%j.out"' in script
    for bad in ('a"b', "a\nb", "a%xb"):
        with pytest.raises(ConfigError, match="sbatch --"):
            render.render_train(JobSpec(), CONFIG, [], tmp_path / bad, "/venv/bin/sciml")


@pytest.mark.parametrize("kw, key", [({"partition": "gpu\n#SBATCH --x"}, "slurm.partition"),
                                     ({"account": "a b"}, "slurm.account"), ({"qos": "q;rm"}, "slurm.qos"),
                                     ({"env": {"A B": "1"}}, "slurm.env.A B"), ({"env": {"1X": "1"}}, "slurm.env.1X")])
def test_names_and_env_keys_validated(kw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        JobSpec(**kw)


def test_env_values_are_shell_quoted(tmp_path):
    script = render.render_train(JobSpec(env={"X": "a b; rm -rf /", "Y": "$(id)"}), CONFIG, [], tmp_path, "/s")
    assert "export X='a b; rm -rf /'" in script and "export Y='$(id)'" in script


def _fake_slurm(monkeypatch, fail_second=False):
    """sbatch that hands out ids 100, 101, ... (and fails on the 2nd call with fail_second)."""
    from sciml.cli import slurm as cli_slurm
    from sciml.cluster import slurm as cluster_slurm

    submitted = []

    def fake_sbatch(path, *args):
        if fail_second and submitted:
            raise slurm.SlurmError("sbatch failed (rc=1): boom")
        submitted.append((str(path), Path(path).read_text()))
        return str(100 + len(submitted) - 1)

    monkeypatch.setattr(cluster_slurm, "sbatch", fake_sbatch)
    monkeypatch.setattr(cluster_slurm, "sciml_executable", lambda: "/venv/bin/sciml")
    return submitted, cli_slurm


def test_data_merge_output_found_with_options_first(tmp_path, monkeypatch, capsys):
    submitted, _ = _fake_slurm(monkeypatch)
    monkeypatch.chdir(tmp_path)
    rc = main(["slurm", "data", "--shards", "2", "--merge", "m.h5", "--run-dir", str(tmp_path / "job"), "--",
               "generate", "--workers", "2", "darcy", "out/darcy", "num_train=4"])
    assert rc == 0, capsys.readouterr().err
    merge = submitted[1][1]
    assert "out/darcy/part-00000-of-00002.h5" in merge and "out/darcy/part-00001-of-00002.h5" in merge
    assert f'#SBATCH --chdir="{tmp_path}"' in submitted[0][1]


def test_data_bad_args_rejected_before_submission(tmp_path, monkeypatch, capsys):
    submitted, _ = _fake_slurm(monkeypatch)
    rc = main(["slurm", "data", "--shards", "2", "--merge", "m.h5", "--run-dir", str(tmp_path / "job"), "--",
               "convert", "pdebench", "in.h5"])
    assert rc == 2 and submitted == [] and "bad data arguments" in capsys.readouterr().err


def test_failed_second_sbatch_leaves_job_tracked(tmp_path, monkeypatch, capsys):
    _fake_slurm(monkeypatch, fail_second=True)
    rc = main(["slurm", "data", "--shards", "2", "--merge", "m.h5", "--run-dir", str(tmp_path / "d"), "--",
               "generate", "darcy", "out", "num_train=4"])
    assert rc == 2 and json.loads((tmp_path / "d" / "slurm" / "job.json").read_text())["job_ids"] == ["100"]
    _fake_slurm(monkeypatch, fail_second=True)
    rc = main(["slurm", "sweep", str(CONFIG), "model.hidden_channels=4,8", "--run-dir", str(tmp_path / "s")])
    assert rc == 2 and json.loads((tmp_path / "s" / "slurm" / "job.json").read_text())["job_ids"] == ["100"]


def test_sweep_summary_job_drops_gpus_and_extra_sbatch(tmp_path, monkeypatch, capsys):
    submitted, _ = _fake_slurm(monkeypatch)
    rc = main(["slurm", "sweep", str(CONFIG), "model.hidden_channels=4,8", "--run-dir", str(tmp_path / "s"),
               "--job", "gpus_per_node=2", "--job", "extra_sbatch=[--gres=gpu:2,--constraint=a100]"])
    assert rc == 0, capsys.readouterr().err
    array, summary = (sbatch_header(t) for _, t in submitted)
    assert array["--gpus-per-node"] == "2" and "--constraint" in array
    assert "--gpus-per-node" not in summary and "--gres" not in summary and "--constraint" not in summary
    assert summary["--kill-on-invalid-dep"] == "yes"
    record = json.loads((tmp_path / "s" / "slurm" / "job.json").read_text())
    assert record["job_ids"] == ["100", "101"] and record["summary_job_id"] == "101"


@pytest.mark.parametrize("args, needle", [(["a=1,2", " a=3,4"], "swept twice"), (["a=1,2,1"], "repeated value")])
def test_expand_sweep_rejects_duplicates(args, needle):
    with pytest.raises(ConfigError, match=needle):
        sweep.expand_sweep(args)


def test_plan_sweep_fixed_and_swept_key(tmp_path):
    with pytest.raises(ConfigError, match="both fixed"):
        sweep.plan_sweep(CONFIG, ["model.hidden_channels=4,8"], tmp_path, fixed=["model.hidden_channels=16"])
