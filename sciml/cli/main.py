"""The ``sciml`` console script: ``sciml {train,eval,demo,bench,data} ...``.

Exit status: 0 on success; 2 on bad input (a config, file or argument at fault; a one-line reason on stderr); 1 when
a run fails (non-finite loss or gradient, an unreadable checkpoint; also a one-line reason); 75 when a run was
stopped by SIGTERM/SIGUSR1 after checkpointing (see docs/training.md; running the same command resumes it).
"""
from __future__ import annotations

import argparse
import os
import sys

import sciml
from sciml.errors import CheckpointError, NonFiniteError, SciMLError

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from sciml.cli import bench, data, demo, run, slurm

    parser = argparse.ArgumentParser(
        prog="sciml", description="Graph and scientific machine learning: train, evaluate and benchmark models.",
        epilog="Run `sciml COMMAND --help` for the options of each command.")
    parser.add_argument("--version", action="version", version=f"sciml {sciml.__version__}")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="CPU threads for torch (default: $OMP_NUM_THREADS if set, else $SLURM_CPUS_PER_TASK "
                             "inside a Slurm job, else torch's default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run.add_parsers(sub)
    demo.add_parser(sub)
    bench.add_parser(sub)
    data.add_parser(sub)
    slurm.add_parser(sub)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def cpu_threads(requested: int | None, environ: "os._Environ[str] | dict[str, str]") -> int | None:
    """The torch CPU thread count to set: ``requested``, else none when ``OMP_NUM_THREADS`` is set (torch reads it
    itself), else ``SLURM_CPUS_PER_TASK`` (a Slurm allocation smaller than the node, which torch would not see),
    else :obj:`None` (torch's default)."""
    if requested is not None:
        return requested
    if environ.get("OMP_NUM_THREADS"):
        return None
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    return int(slurm) if slurm.isdigit() and int(slurm) > 0 else None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides after an option (`train CONFIG --run-dir D a=1`) land here
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = ["sciml", *(sys.argv[1:] if argv is None else argv)]  # recorded in run_info.json
    threads = cpu_threads(args.threads, os.environ)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        return int(args.func(args) or 0)
    except (NonFiniteError, CheckpointError) as err:
        print(f"sciml {args.command}: failed: {_one_line(err)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except (SciMLError, FileNotFoundError, NotADirectoryError) as err:
        print(f"sciml {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into a reader that closed early (`sciml data inspect f.h5 | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # keep the interpreter's final flush quiet
        return 0
    except KeyboardInterrupt:
        print(f"sciml {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
