"""``sciml data {inspect,validate,merge,convert,generate}``: the data pipeline's commands (work in
:mod:`sciml.datasets.cli`).

Every command accepts ``--shard i/n``; inside a Slurm array job it defaults to
``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``. convert/generate then produce shard ``i`` of ``n``
(``OUTPUT`` becomes ``OUTPUT/part-0000i-of-0000n.h5``, or ``stem-part-...h5`` for an ``OUTPUT`` ending in
``.h5``); inspect/validate take files ``i::n`` of the ones given; merge runs in task 0 only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="convert, generate, inspect, validate and merge sciml-h5 data files",
                          description="The sciml-h5 data pipeline (see docs/data.md).")
    cmds = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--shard", default=None, metavar="i/n",
                       help="work on shard i of n (default: the Slurm array task, else everything)")

    def writing(p: argparse.ArgumentParser) -> None:
        p.add_argument("--compression", default=None, choices=["none", "lzf", "gzip"] +
                       [f"gzip:{i}" for i in range(10)], help="chunk compression (default: none)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
        p.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "none"],
                       help="progress output (default: a bar on a terminal, else a line every 10 s)")

    p = cmds.add_parser("inspect", help="summarise sciml-h5 files", description="Print a summary of each file: "
                        "header attributes, splits, sample counts and sizes, and every dataset's shape, dtype, "
                        "level and chunking.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON (one object per file)")
    common(p)
    p.set_defaults(func=inspect_cmd)

    p = cmds.add_parser("validate", help="check files against the schema, checksums, NaN/Inf and offsets",
                        description="Check each file completely: header and complete flag, every dataset against "
                                    "the schema, sha256 checksums, NaN/Inf, monotone offsets and counts. Exit 0 "
                                    "if all are valid, 2 with a one-line reason otherwise.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--no-checksums", action="store_true", help="skip the (slow) checksum pass")
    common(p)
    p.set_defaults(func=validate_cmd)

    p = cmds.add_parser("merge", help="merge shards part-XXXXX-of-YYYYY.h5 into one file or an index",
                        description="Merge shards 0..n-1 (files, or directories holding them) into OUTPUT. "
                                    "Refuses gaps, duplicates, incomplete or corrupted shards.")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--index", action="store_true",
                   help="write an index of virtual datasets pointing at the shards instead of copying the data")
    p.add_argument("--force", action="store_true",
                   help="merge shards whose source/config differ, or that carry no checksums (not recommended)")
    common(p)
    writing(p)
    p.set_defaults(func=merge_cmd)

    p = cmds.add_parser("convert", help="convert a raw public format to sciml-h5",
                        description="Run converter NAME on INPUT and write OUTPUT. Options key=value are checked "
                                    "against the converter's parameters (values parsed as YAML).")
    p.add_argument("name")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("options", nargs="*", metavar="key=value")
    common(p)
    writing(p)
    p.set_defaults(func=convert_cmd)

    p = cmds.add_parser("generate", help="generate data (PDE solutions, structures...) into sciml-h5",
                        description="Run generator NAME and write OUTPUT. Options key=value are checked against "
                                    "the generator's parameters. Samples do not depend on --shard/--workers.")
    p.add_argument("name")
    p.add_argument("output", type=Path)
    p.add_argument("options", nargs="*", metavar="key=value")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    common(p)
    writing(p)
    p.set_defaults(func=generate_cmd)


def _shard(args: argparse.Namespace):
    from sciml.datasets.shards import resolve_shard

    return resolve_shard(args.shard)


def inspect_cmd(args: argparse.Namespace) -> int:
    from sciml.datasets.cli import format_summary, inspect_file, select_shard

    for path in select_shard(args.files, _shard(args)):
        info = inspect_file(path)
        print(json.dumps(info, default=str) if args.json else format_summary(info))
    return 0


def validate_cmd(args: argparse.Namespace) -> int:
    from sciml.datasets.cli import select_shard, validate_paths

    return validate_paths(select_shard(args.files, _shard(args)), checksums=not args.no_checksums)


def merge_cmd(args: argparse.Namespace) -> int:
    from sciml.datasets.cli import merge

    shard = _shard(args)
    if shard is not None and shard[0] != 0:
        print(f"sciml data merge: shard {shard[0]}/{shard[1]}: nothing to do (task 0 merges)", file=sys.stderr)
        return 0
    out = merge(args.inputs, args.output, index=args.index, compression=_comp(args), overwrite=args.overwrite,
                force=args.force)
    print(out)
    return 0


def _comp(args: argparse.Namespace):
    return None if args.compression in (None, "none") else args.compression


def convert_cmd(args: argparse.Namespace) -> int:
    from sciml.datasets.cli import convert

    print(convert(args.name, args.input, args.output, args.options, registry=getattr(args, "registry", None),
                  shard=_shard(args), compression=_comp(args), overwrite=args.overwrite, progress=args.progress))
    return 0


def generate_cmd(args: argparse.Namespace) -> int:
    from sciml.datasets.cli import generate

    print(generate(args.name, args.output, args.options, registry=getattr(args, "registry", None),
                   shard=_shard(args), workers=args.workers, compression=_comp(args), overwrite=args.overwrite,
                   progress=args.progress))
    return 0
