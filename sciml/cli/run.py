"""``sciml train CONFIG [key=value ...]`` and ``sciml eval RUN_DIR``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the experiment described by a YAML config",
                       description="Train the experiment in CONFIG. Overrides are key=value pairs with dotted keys "
                                   "(values parsed as YAML), e.g. `trainer.max_epochs=50 model.hidden_channels=32`. "
                                   "An existing run directory is resumed from its newest valid checkpoint.")
    p.add_argument("config", type=Path, help="YAML experiment config (sections model, data, task, trainer)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run directory (default: trainer.run_dir, else runs/<config name>)")
    p.set_defaults(func=train)

    p = sub.add_parser("eval", help="evaluate a trained run directory",
                       description="Rebuild the experiment from RUN_DIR/config.yaml, load the newest valid "
                                   "checkpoint and print the validation metrics as JSON (also written to "
                                   "RUN_DIR/eval.json).")
    p.add_argument("run_dir", type=Path, help="a run directory written by `sciml train`")
    p.add_argument("--checkpoint", type=Path, default=None, help="a specific checkpoint file (default: newest)")
    p.set_defaults(func=evaluate)


def _early_signal_flag() -> dict:
    """Install flag-only SIGUSR1/SIGTERM handlers before the heavy imports, so that a preemption signal during
    start-up (the supervisor forwards one as soon as the process exists) is recorded instead of killing the
    process. Returns the record (``{"signum": int | None}``)."""
    import signal
    import threading

    pending: dict = {"signum": None, "previous": {}}
    if threading.current_thread() is threading.main_thread():
        def record(signum, frame):  # noqa: ARG001 (flag only)
            pending["signum"] = signum
        for s in (signal.SIGUSR1, signal.SIGTERM):
            pending["previous"][s] = signal.signal(s, record)
    return pending


def _restore_signals(pending: dict) -> None:
    import signal

    for s, h in pending["previous"].items():
        signal.signal(s, signal.SIG_DFL if h is None else h)


EXIT_PREEMPTED_EARLY = 75  # == sciml.train.EXIT_PREEMPTED, usable before sciml.train is imported


def _preempted_before_fit(pending: dict) -> int | None:
    if pending["signum"] is None:
        return None
    import signal

    print(f"sciml train: {signal.Signals(pending['signum']).name} during start-up, before training began; nothing "
          "to checkpoint yet, stopping with status 75 (a requeue resumes from the newest checkpoint)",
          file=sys.stderr)
    return EXIT_PREEMPTED_EARLY


def train(args: argparse.Namespace) -> int:
    pending = _early_signal_flag()  # first thing: before importing torch and building the experiment
    try:
        return _train(args, pending)
    finally:
        _restore_signals(pending)


def _train(args: argparse.Namespace, pending: dict) -> int:
    from sciml.config import load_config
    from sciml.experiment import run
    from sciml.train import EXIT_PREEMPTED, TrainingInterrupted

    cfg = load_config(args.config, args.overrides)
    run_dir = args.run_dir or cfg.trainer.run_dir or Path("runs") / args.config.stem
    early = _preempted_before_fit(pending)
    if early is not None:
        return early
    try:
        summary = run(cfg, run_dir=run_dir, argv=args.argv)
    except TrainingInterrupted as stop:
        print(f"sciml train: {stop}", file=sys.stderr)
        return EXIT_PREEMPTED
    if os.environ.get("RANK", "0") == "0":  # one summary per run, not one per DDP rank
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from sciml.experiment import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir, checkpoint=args.checkpoint), indent=2, sort_keys=True))
    return 0
