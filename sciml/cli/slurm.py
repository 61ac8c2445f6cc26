"""``sciml slurm {render,submit,sweep,data,status,cancel,supervise}``: run experiments as Slurm jobs.

See docs/cluster.md. Job resources come from a cluster config (``--cluster configs/slurm_local.yaml``, its ``slurm``
section) plus ``--job key=value`` overrides; the experiment comes from the usual CONFIG + ``key=value`` overrides.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

JOB_FILE = "slurm/job.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    slurm = sub.add_parser("slurm", help="submit training runs, sweeps and data jobs to Slurm",
                           description="Render and submit sbatch scripts, sweep job arrays and sharded data jobs; "
                                       "follow and cancel them. See docs/cluster.md.")
    cmds = slurm.add_subparsers(dest="slurm_command", metavar="SUBCOMMAND", required=True)

    def resources(p: argparse.ArgumentParser) -> None:
        p.add_argument("--cluster", type=Path, default=None, metavar="FILE",
                       help="cluster config (YAML with a 'slurm' section, e.g. configs/slurm_local.yaml)")
        p.add_argument("--job", action="append", default=[], metavar="key=value",
                       help="job spec override, repeatable (e.g. --job time=02:00:00 --job ntasks_per_node=4)")

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait", action="store_true", help="wait until the job(s) finish, then print the status")
        p.add_argument("--timeout", type=float, default=None, metavar="S", help="give up waiting after S seconds")

    for name, helptext in (("render", "print the sbatch script of a training run"),
                           ("submit", "submit a training run")):
        p = cmds.add_parser(name, help=helptext,
                            description=f"{helptext[0].upper()}{helptext[1:]}: `srun sciml train CONFIG overrides "
                                        "--run-dir RUN_DIR` under the preemption supervisor (checkpoint on SIGUSR1, "
                                        "self-requeue, resume from the run directory).")
        p.add_argument("config", type=Path)
        p.add_argument("overrides", nargs="*", metavar="key=value")
        p.add_argument("--run-dir", type=Path, required=True)
        resources(p)
        if name == "submit":
            p.add_argument("--backend", choices=["sbatch", "submitit"], default="sbatch",
                           help="sbatch (default) or the optional submitit package (pip install sciml[submitit])")
            waiting(p)
        p.set_defaults(func=render_cmd if name == "render" else submit_cmd)

    p = cmds.add_parser("sweep", help="one job array over key=a,b,c combinations",
                        description="Submit one job array training CONFIG for every combination (cartesian product) "
                                    "of the key=a,b,c arguments (a plain key=value applies to all tasks); task i runs "
                                    "in RUN_DIR/task-i. A dependent job writes RUN_DIR/summary.csv and summary.txt "
                                    "with every task's final metrics when all have finished.")
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*", metavar="key=a,b,c")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--dry-run", action="store_true", help="print the tasks and the script, submit nothing")
    resources(p)
    waiting(p)
    p.set_defaults(func=sweep_cmd)

    p = cmds.add_parser("data", help="`sciml data convert|generate` as a shard array, then a dependent merge",
                        description="Run `sciml data ARGS` as an array of --shards tasks (each task's --shard "
                                    "defaults to its array index) and, with --merge OUT, a dependent "
                                    "`sciml data merge` (afterok). Example: sciml slurm data --shards 4 --merge "
                                    "darcy.h5 --run-dir jobs/darcy -- generate darcy out/darcy num_train=800")
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--merge", type=Path, default=None, metavar="OUT.h5")
    p.add_argument("--run-dir", type=Path, required=True, help="where scripts, logs and job.json go")
    resources(p)
    waiting(p)
    p.add_argument("data_args", nargs=argparse.REMAINDER, help="-- convert|generate ...")
    p.set_defaults(func=data_cmd)

    p = cmds.add_parser("status", help="state and final metrics of a submitted run, sweep or data job")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--write", action="store_true", help="sweeps: also write RUN_DIR/summary.csv and summary.txt")
    waiting(p)
    p.set_defaults(func=status_cmd)

    p = cmds.add_parser("cancel", help="scancel the jobs of a run directory")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(func=cancel_cmd)

    p = cmds.add_parser("supervise", help="(inside batch scripts) run a command, forward signals, requeue on 75")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--no-requeue", action="store_true")
    p.add_argument("--max-restarts", type=int, default=None, metavar="N",
                   help="do not requeue once SLURM_RESTART_COUNT >= N (exit 75 instead)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- srun ... sciml train ...")
    p.set_defaults(func=supervise_cmd)


# --- helpers -------------------------------------------------------------------------------------------------
def _spec(args: argparse.Namespace):
    from sciml.cluster.spec import load_job_spec

    return load_job_spec(args.cluster, args.job)


def _strip_dashes(argv: list[str]) -> list[str]:
    return argv[1:] if argv and argv[0] == "--" else argv


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_job(run_dir: Path, record: dict[str, Any]) -> None:
    from sciml.io import atomic_write_text

    atomic_write_text(run_dir / JOB_FILE, json.dumps(record, indent=2) + "\n")


def _read_job(run_dir: Path) -> dict[str, Any]:
    path = run_dir / JOB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no submitted job ({path} is missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def _check_train(config: Path, overrides: list[str]) -> None:
    from sciml.config import load_config

    load_config(config, overrides)  # a bad config fails here (exit 2), not in the queue


def _snapshot_config(config: Path, base: Path) -> Path:
    """Copy the experiment config into ``base/slurm/`` so that a queued or requeued job trains what was submitted,
    even if the original file is edited or removed afterwards."""
    from sciml.io import atomic_write_text

    return atomic_write_text(base / "slurm" / f"config-{config.name}", config.read_text(encoding="utf-8"))


def _small_spec(spec):
    """The job spec of a one-process helper job (sweep summary, shard merge): one task, no GPU, none of the
    training job's ``extra_sbatch`` (``--gres``, ``--constraint`` ...)."""
    return type(spec)(**{**spec.__dict__, "ntasks_per_node": 1, "nodes": 1, "gpus_per_node": 0, "mem": "500M",
                         "time": "00:10:00", "cpus_per_task": 1, "extra_sbatch": [], "dependency": None,
                         "array_parallelism": None, "signal_seconds": min(spec.signal_seconds, 60)})


def _data_output(data_args: list[str]) -> str:
    """The OUTPUT of ``sciml data convert|generate ...``, found by the real ``sciml data`` parser (options may
    precede the positionals). Raises ConfigError for arguments that parser rejects."""
    from sciml.cli import data as data_cli
    from sciml.errors import ConfigError

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str):  # not SystemExit: a one-line ConfigError
            raise ConfigError(f"sciml slurm data: bad data arguments: {message}")

    parser = _Parser(prog="sciml", add_help=False)
    data_cli.add_parser(parser.add_subparsers(dest="command", parser_class=_Parser))
    ns, extra = parser.parse_known_args(["data", *data_args])
    bad = [e for e in extra if e.startswith("-") or "=" not in e]
    if bad:
        raise ConfigError(f"sciml slurm data: unrecognized data arguments: {' '.join(bad)}")
    return str(ns.output)


# --- commands -----------------------------------------------------------------------------------------------
def _train_script(args: argparse.Namespace, config: Path) -> tuple[Any, str]:
    from sciml.cluster.render import render_train
    from sciml.cluster.slurm import sciml_executable

    spec = _spec(args)
    return spec, render_train(spec, config, args.overrides, args.run_dir, sciml_executable())


def render_cmd(args: argparse.Namespace) -> int:
    _check_train(args.config, args.overrides)
    sys.stdout.write(_train_script(args, args.config)[1])
    return 0


def submit_cmd(args: argparse.Namespace) -> int:
    from sciml.cluster.slurm import sbatch

    run_dir = args.run_dir.absolute()
    if args.backend == "submitit":
        from sciml.cluster.submitit_backend import submit_train

        spec = _spec(args)
        _check_train(args.config, args.overrides)
        job_id = submit_train(spec, args.config, args.overrides, run_dir)
        _write_job(run_dir, {"kind": "train", "backend": "submitit", "job_ids": [job_id], "submitted_utc": _now()})
    else:
        _check_train(args.config, args.overrides)
        spec, script = _train_script(args, _snapshot_config(args.config, run_dir))
        path = run_dir / "slurm" / "train.sbatch"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script, encoding="utf-8")
        job_id = sbatch(path)
        _write_job(run_dir, {"kind": "train", "backend": "sbatch", "job_ids": [job_id], "script": str(path),
                             "submitted_utc": _now()})
    print(job_id)
    if args.wait:
        return _status(run_dir, wait=True, timeout=args.timeout)
    return 0


def sweep_cmd(args: argparse.Namespace) -> int:
    from sciml.cluster.render import render_command_job, render_sweep
    from sciml.cluster.slurm import sbatch, sciml_executable
    from sciml.cluster.sweep import SWEEP_FILE, plan_sweep
    from sciml.io import atomic_write_text

    spec = _spec(args)
    base = args.run_dir.absolute()
    fixed = [o for o in args.overrides if "," not in o.partition("=")[2]]
    swept = [o for o in args.overrides if o not in fixed]
    tasks = plan_sweep(args.config, swept, base, fixed=fixed)
    exe = sciml_executable()
    config = args.config if args.dry_run else _snapshot_config(args.config, base)
    script = render_sweep(spec, config, [(t["run_dir"], t["overrides"]) for t in tasks], base, exe)
    if args.dry_run:
        for t in tasks:
            print(f"# task {t['index']}: {' '.join(t['overrides'])} -> {t['run_dir']}")
        sys.stdout.write(script)
        return 0
    (base / "logs").mkdir(parents=True, exist_ok=True)
    (base / "slurm").mkdir(parents=True, exist_ok=True)
    path = base / "slurm" / "sweep.sbatch"
    path.write_text(script, encoding="utf-8")
    sweep = {"config": str(args.config.absolute()), "tasks": list(tasks)}
    atomic_write_text(base / SWEEP_FILE, json.dumps(sweep, indent=2) + "\n")
    job_id = sbatch(path)
    record: dict[str, Any] = {"kind": "sweep", "job_ids": [job_id], "array_job_id": job_id, "tasks": len(tasks),
                              "submitted_utc": _now()}
    _write_job(base, record)  # tracked (status/cancel) even if the summary submission fails
    sweep["job_id"] = job_id
    atomic_write_text(base / SWEEP_FILE, json.dumps(sweep, indent=2) + "\n")
    small = _small_spec(spec)
    summary = render_command_job(small, [exe, "slurm", "status", str(base), "--write"], workdir=base,
                                 log=f"{base}/logs/summary-%j.out", dependency=f"afterany:{job_id}",
                                 job_name=f"{spec.job_name}-summary", use_srun=False)
    spath = base / "slurm" / "summary.sbatch"
    spath.write_text(summary, encoding="utf-8")
    summary_id = sbatch(spath)
    record["job_ids"].append(summary_id)
    record["summary_job_id"] = summary_id
    _write_job(base, record)
    print(job_id)
    if args.wait:
        return _status(base, wait=True, timeout=args.timeout)
    return 0


def data_cmd(args: argparse.Namespace) -> int:
    from sciml.cluster.render import check_sbatch_path, render_command_job, render_shard_array, sbatch_quote
    from sciml.cluster.slurm import sbatch, sciml_executable
    from sciml.errors import ConfigError

    data_args = _strip_dashes(list(args.data_args))
    if not data_args or data_args[0] not in ("convert", "generate"):
        raise ConfigError("sciml slurm data: give the data command after '--': convert NAME INPUT OUTPUT ... or "
                          "generate NAME OUTPUT ...")
    if args.shards < 1:
        raise ConfigError(f"--shards must be >= 1, got {args.shards}")
    if any(a == "--shard" or a.startswith("--shard=") for a in data_args):
        raise ConfigError("sciml slurm data: do not pass --shard; each array task takes its array index")
    output = _data_output(data_args)  # validated before anything is submitted
    spec = _spec(args)
    base = args.run_dir.absolute()
    (base / "logs").mkdir(parents=True, exist_ok=True)
    exe = sciml_executable()
    cwd = Path.cwd()
    one = type(spec)(**{**spec.__dict__, "nodes": 1, "ntasks_per_node": 1})
    script = render_shard_array(one, [exe, "data", *data_args], args.shards, workdir=base)
    # run from the submission directory, so relative paths mean what was typed (quoted and checked like --chdir)
    script = script.replace(f'#SBATCH --chdir={sbatch_quote(str(base))}\n',
                            f'#SBATCH --chdir={sbatch_quote(check_sbatch_path(cwd, "sbatch --chdir"))}\n', 1)
    path = base / "slurm" / "shards.sbatch"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
    job_id = sbatch(path)
    record: dict[str, Any] = {"kind": "data", "job_ids": [job_id], "array_job_id": job_id, "shards": args.shards,
                              "submitted_utc": _now()}
    _write_job(base, record)  # tracked (status/cancel) even if the merge submission fails
    if args.merge is not None:
        from sciml.datasets.shards import shard_path

        parts = [str(shard_path(output, i, args.shards)) for i in range(args.shards)]
        merge = render_command_job(one, [exe, "data", "merge", *parts, "-o", str(args.merge)], workdir=cwd,
                                   log=f"{base}/logs/merge-%j.out", dependency=f"afterok:{job_id}",
                                   job_name=f"{spec.job_name}-merge")
        mpath = base / "slurm" / "merge.sbatch"
        mpath.write_text(merge, encoding="utf-8")
        record["merge_job_id"] = sbatch(mpath)
        record["job_ids"].append(record["merge_job_id"])
    _write_job(base, record)
    print(" ".join(record["job_ids"]))
    if args.wait:
        return _status(base, wait=True, timeout=args.timeout)
    return 0


def _states(job_ids: list[str]) -> dict[str, str]:
    from sciml.cluster.slurm import job_states

    states: dict[str, str] = {}
    for j in job_ids:
        states.update(job_states(j))
    return states


def _pending(states: dict[str, str]) -> bool:
    from sciml.cluster.slurm import TERMINAL_STATES

    return any(s not in TERMINAL_STATES for s in states.values())


def _status(run_dir: Path, *, wait: bool = False, timeout: float | None = None, as_json: bool = False,
            write: bool = False) -> int:
    from sciml.cluster.supervise import read_events
    from sciml.errors import SciMLError

    run_dir = run_dir.absolute()
    job = _read_job(run_dir)
    deadline = None if timeout is None else time.monotonic() + timeout
    states = _states(job["job_ids"])
    while wait and _pending(states):
        if deadline is not None and time.monotonic() > deadline:
            raise SciMLError(f"timed out after {timeout:.0f} s waiting for {run_dir} (states: {states})")
        time.sleep(2.0)
        states = _states(job["job_ids"])
    out: dict[str, Any] = {"kind": job["kind"], "job_ids": job["job_ids"], "states": states}
    rc = 0
    if job["kind"] == "sweep":
        from sciml.cluster.sweep import format_table, read_sweep, rows_to_csv, summary_rows
        from sciml.io import atomic_write_text

        rows = summary_rows(read_sweep(run_dir), states)
        out["tasks"] = rows
        if write:
            atomic_write_text(run_dir / "summary.csv", rows_to_csv(rows))
            atomic_write_text(run_dir / "summary.txt", format_table(rows) + "\n")
        text = format_table(rows)
        rc = 0 if all(r.get("status") == "completed" for r in rows) or not wait else 1
    elif job["kind"] == "train":
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        info_path = run_dir / "run_info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        out.update(status=summary.get("status"), steps=summary.get("steps"), last_val=summary.get("last_val"),
                   last_train=summary.get("last_train"), restart_count=info.get("restart_count"),
                   starts=info.get("starts"), requeues=[e for e in read_events(run_dir) if e["event"] == "requeue"])
        text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in out.items() if k not in ("starts",))
        rc = 0 if out["status"] == "completed" or not wait else 1
    else:
        text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in out.items())
        rc = 0 if all(s == "COMPLETED" for s in states.values()) or not wait else 1
    print(json.dumps(out, indent=2, default=str) if as_json else text)
    return rc


def status_cmd(args: argparse.Namespace) -> int:
    return _status(args.run_dir, wait=args.wait, timeout=args.timeout, as_json=args.json, write=args.write)


def cancel_cmd(args: argparse.Namespace) -> int:
    from sciml.cluster.slurm import cancel

    job = _read_job(args.run_dir.absolute())
    cancel(job["job_ids"])
    print(f"cancelled {' '.join(job['job_ids'])}")
    return 0


def supervise_cmd(args: argparse.Namespace) -> int:
    from sciml.cluster.supervise import supervise
    from sciml.errors import ConfigError

    cmd = _strip_dashes(list(args.cmd))
    if not cmd:
        raise ConfigError("sciml slurm supervise: give the command after '--'")
    return supervise(args.run_dir, cmd, requeue_enabled=not args.no_requeue, max_restarts=args.max_restarts)
