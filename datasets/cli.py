"""The work behind ``sciml data {inspect,validate,merge,convert,generate}`` (argument parsing: sciml/cli/data.py).

Every function here takes plain arguments (and, for convert/generate, the registry to look names up in), so it can
be called from Python and tested with a toy registry. Bad input raises a :class:`~sciml.errors.SciMLError` whose
message names the file and what is wrong; no output file is left behind.
"""
from __future__ import annotations

import inspect as _inspect
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, TextIO

from sciml.errors import ConfigError, DataFormatError, SciMLError

from .shards import expand_inputs, merge_shards, shard_path

__all__ = ["inspect_file", "format_summary", "validate_paths", "merge", "convert", "generate", "parse_options",
           "converters", "generators", "Progress"]

#: Exceptions a converter may raise on malformed input that are reported as a one-line DataFormatError naming the
#: input file (anything else is a bug and keeps its traceback).
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, IndexError, UnicodeDecodeError, EOFError,
                                                 OSError, zipfile.BadZipFile)


def converters() -> Any:
    """The registry of raw-format converters (``sciml.datasets.sources.CONVERTERS``)."""
    from sciml.datasets.sources import CONVERTERS

    return CONVERTERS


def generators() -> Any:
    """The registry of data generators (``sciml.datasets.generators.GENERATORS``)."""
    from sciml.datasets.generators import GENERATORS

    return GENERATORS


def select_shard(items: Sequence[Any], shard: tuple[int, int] | None) -> list[Any]:
    """Items ``i::n`` of ``items`` (all for ``None``): how inspect/validate share many files among array tasks."""
    return list(items) if shard is None else list(items)[shard[0]::shard[1]]


# ---------------------------------------------------------------------------------------------------- progress
class Progress:
    """A tqdm bar on a terminal, else a line every ``interval`` seconds (batch logs stay small)."""

    def __init__(self, label: str, total: int | None, *, stream: TextIO | None = None, mode: str = "auto",
                 interval: float = 10.0) -> None:
        self.label, self.total, self.stream, self.interval = label, total, stream or sys.stderr, interval
        self.count, self._t0, self._last, self._bar = 0, time.perf_counter(), time.perf_counter(), None
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        if mode == "bar":
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc=label, unit="rec", file=self.stream, dynamic_ncols=True)
            except ImportError:
                self.mode = "log"

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count - self.count)
        self.count = count
        now = time.perf_counter()
        if self.mode == "log" and now - self._last >= self.interval:
            self._last = now
            self._line(f"{count}{f'/{self.total}' if self.total else ''} records")

    def _line(self, text: str) -> None:
        elapsed = time.perf_counter() - self._t0
        self.stream.write(f"[sciml.data] {self.label}: {text} ({elapsed:.1f}s, {self.count / max(elapsed, 1e-9):.1f}"
                          " rec/s)\n")
        self.stream.flush()

    def close(self, message: str | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
        if message and self.mode != "none":
            self._line(message)


# ---------------------------------------------------------------------------------------------------- inspect
def inspect_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-able summary of a sciml-h5 file: header attributes, and per split the sample count, size statistics
    and every dataset's shape, dtype, level, chunks and compression."""
    from .schema import _attr_str, iter_datasets, open_h5, split_names

    path = Path(path)
    f = open_h5(path)
    try:
        root = {k: _attr_str(v) for k, v in f.attrs.items()}
        root = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in root.items()}
        out: dict[str, Any] = {"path": str(path), "file_size": path.stat().st_size, **root, "splits": {}}
        for s in split_names(f):
            g = f[s]
            entry: dict[str, Any] = {"num_samples": int(g.attrs.get("num_samples", 0)), "datasets": {}}
            if "meta/sizes" in g and g["meta/sizes"].shape[0]:
                sizes = g["meta/sizes"][()]
                entry["sizes"] = {"min": int(sizes.min()), "mean": float(sizes.mean()), "max": int(sizes.max()),
                                  "total": int(sizes.sum())}
            for name, d in iter_datasets(g):
                entry["datasets"][name] = {
                    "shape": list(d.shape), "dtype": str(d.dtype), "level": _attr_str(d.attrs.get("level")),
                    **({"ptr": _attr_str(d.attrs["ptr"])} if "ptr" in d.attrs else {}),
                    "chunks": list(d.chunks) if d.chunks else None, "compression": d.compression,
                    **({"virtual": True} if d.is_virtual else {})}
            out["splits"][s] = entry
        return out
    finally:
        f.close()


def format_summary(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`inspect_file`'s summary."""
    lines = [f"{info['path']}: {info.get('format')} v{info.get('format_version')}, kind {info.get('kind')}, "
             f"{info['file_size'] / 2**20:.2f} MiB, complete={info.get('complete')}",
             f"  source: {info.get('source')}", f"  created_by: {info.get('created_by')}"]
    if "shard_index" in info:
        lines.append(f"  shard: {info['shard_index']}/{info['shard_count']}")
    if "merged_from" in info:
        lines.append(f"  merged from {len(info['merged_from'])} shards")
    config = (info.get("config") or "").strip()
    if config and config != "{}":
        lines.append("  config: " + "; ".join(config.splitlines()[:8]) + (" ..." if len(config.splitlines()) > 8
                                                                         else ""))
    for s, entry in info["splits"].items():
        sizes = entry.get("sizes")
        size_text = (f", sizes min/mean/max {sizes['min']}/{sizes['mean']:.1f}/{sizes['max']}" if sizes else "")
        lines.append(f"  /{s}: {entry['num_samples']} samples{size_text}")
        for name, d in entry["datasets"].items():
            extra = f" by {d['ptr']}" if "ptr" in d else ""
            comp = f" {d['compression']}" if d["compression"] else ""
            virt = " virtual" if d.get("virtual") else ""
            lines.append(f"    {name:<20} {str(d['shape']):<18} {d['dtype']:<8} {d['level']}{extra}"
                         f" chunks={d['chunks']}{comp}{virt}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- validate
def validate_paths(paths: Sequence[str | os.PathLike], *, checksums: bool = True,
                   stream: TextIO | None = None) -> int:
    """Validate every file; print ``FILE: ok`` per valid file (to ``stream``) and one line per invalid one.

    Returns:
        0 if all are valid.

    Raises:
        DataFormatError: the (first) problem of a single invalid file, or how many of several files are invalid.
    """
    from .schema import validate_file

    stream = stream or sys.stdout
    bad: list[str] = []
    for path in paths:
        try:
            problems = validate_file(path, checksums=checksums)
        except (DataFormatError, FileNotFoundError) as err:
            problems = [str(err).removeprefix(f"{path}: ")]
        if problems:
            more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(
                problems) > 1 else ""
            bad.append(f"{path}: {problems[0]}{more}")
        else:
            stream.write(f"{path}: ok\n")
    if len(bad) == 1 and len(paths) == 1:
        raise DataFormatError(bad[0])
    if bad:
        for line in bad:
            sys.stderr.write(f"invalid: {line}\n")
        raise DataFormatError(f"{len(bad)} of {len(paths)} files are invalid (first: {bad[0]})")
    return 0


# ---------------------------------------------------------------------------------------------------- merge
def merge(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *, index: bool = False,
          compression: str | None = None, overwrite: bool = False, force: bool = False) -> Path:
    """``sciml data merge``: see :func:`~sciml.datasets.shards.merge_shards` (``force``: merge shards of different
    runs or without checksums)."""
    output = Path(output)
    _check_output(output, overwrite)
    return merge_shards(expand_inputs(inputs), output, index=index, compression=compression, force=force)


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: output exists; pass --overwrite to replace it")


# ---------------------------------------------------------------------------------------------------- options
def parse_options(fn: Callable[..., Any], name: str, options: Sequence[str], *, what: str) -> dict[str, Any]:
    """Check ``key=value`` strings against the keyword parameters of ``fn`` (values parsed as YAML; the first
    positional parameter, the input path, and ``shard`` are not options).

    Raises:
        ConfigError: an unknown key (with close matches), a missing required one or a value of the wrong type.
    """
    from sciml.config import Target, apply_overrides, parse_overrides, parse_section

    runtime = ["shard"]
    if _takes_input(fn):
        runtime.append(next(iter(_inspect.signature(fn).parameters)))
    overrides = parse_overrides(list(options))
    for o in overrides:
        if len(o.path) != 1 or o.delete:
            raise ConfigError(f"{what} {name!r}: option {o.text!r} must be a plain key=value")
    mapping = apply_overrides({}, overrides)
    section = parse_section(Target(fn, runtime=tuple(runtime)), mapping, path=name)
    return section.kwargs()


def _takes_input(fn: Callable[..., Any]) -> bool:
    params = list(_inspect.signature(fn).parameters.values())
    return bool(params) and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)


def call_source(fn: Callable[..., Any], input_path: Path | None, kwargs: dict[str, Any],
                shard: tuple[int, int] | None) -> Any:
    """``fn(input_path, **kwargs, shard=shard)``; a generator without a positional input parameter is called
    with keywords only."""
    if _takes_input(fn):
        return fn(input_path, **kwargs, shard=shard)
    return fn(**kwargs, shard=shard)


def _check_spec(spec: Any, what: str, name: str) -> Any:
    from .records import KINDS
    from .writer import DataSpec

    if not isinstance(spec, DataSpec):
        raise TypeError(f"{what} {name!r} returned {type(spec).__name__}, expected a DataSpec")
    if spec.kind not in KINDS:
        raise TypeError(f"{what} {name!r} returned kind {spec.kind!r}, expected one of {', '.join(KINDS)}")
    return spec


def _write_spec(path: Path, spec: Any, *, compression: str | None, shard: tuple[int, int] | None,
                progress: Progress | None, input_path: Path | None = None,
                counter: Any = None) -> int:
    from .writer import H5Writer

    n = 0
    with H5Writer(path, spec.kind, source=spec.source, config=spec.config, compression=compression,
                  coords=spec.coords, shard=shard, levels=getattr(spec, "levels", None)) as w:
        for split, records in spec.splits.items():
            w.split(split)
            iterator = iter(records)
            while True:
                try:
                    record = next(iterator)
                except StopIteration:
                    break
                except SciMLError:
                    raise
                except INPUT_ERRORS as err:
                    if input_path is None:
                        raise
                    raise DataFormatError(f"{input_path}: {type(err).__name__}: {err}") from err
                w.append(split, record)
                n += 1
                if progress is not None:
                    progress.update(n)
                if counter is not None:
                    counter.value = n
    return n


def convert(name: str, input_path: str | os.PathLike, output: str | os.PathLike, options: Sequence[str] = (), *,
            registry: Any = None, shard: tuple[int, int] | None = None, compression: str | None = None,
            overwrite: bool = False, progress: str = "auto", stream: TextIO | None = None) -> Path:
    """``sciml data convert NAME INPUT OUTPUT [key=value ...]``: run converter ``NAME`` on ``INPUT`` and write the
    records to ``OUTPUT`` (``shard_path(OUTPUT, i, n)`` for a shard).

    Args:
        registry: Where ``NAME`` is looked up. (default: ``sciml.datasets.sources.CONVERTERS``)
        shard: ``(i, n)`` passed to the converter. (default: the whole input)
    """
    registry = converters() if registry is None else registry
    fn = registry.get(name, key="converter")
    kwargs = parse_options(fn, name, options, what="converter")
    input_path = Path(input_path)
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: no such file or directory")
    out = shard_path(output, *shard) if shard else Path(output)
    _check_output(out, overwrite)
    try:
        spec = _check_spec(call_source(fn, input_path, kwargs, shard), "converter", name)
    except SciMLError:
        raise
    except INPUT_ERRORS as err:
        raise DataFormatError(f"{input_path}: {type(err).__name__}: {err}") from err
    total = sum(spec.sizes.values()) if spec.sizes else None
    bar = Progress(f"convert {name}", total, stream=stream, mode=progress)
    n = _write_spec(out, spec, compression=compression, shard=shard, progress=bar, input_path=input_path)
    bar.close(f"wrote {n} records to {out}")
    return out


def generate(name: str, output: str | os.PathLike, options: Sequence[str] = (), *, registry: Any = None,
             shard: tuple[int, int] | None = None, workers: int = 1, compression: str | None = None,
             overwrite: bool = False, progress: str = "auto", stream: TextIO | None = None) -> Path:
    """``sciml data generate NAME OUTPUT [key=value ...]``: run generator ``NAME`` and write its records.

    With ``workers = k > 1``, ``k`` processes each generate the sub-shard ``(i k + w, n k)`` of this task's shard
    ``(i, n)`` into a temporary file, and the files are merged in order. Generators produce contiguous index
    ranges (:func:`~sciml.datasets.shards.shard_range`) and seed per sample index, so the data is identical
    whatever ``k`` and the number of array tasks.
    """
    registry = generators() if registry is None else registry
    fn = registry.get(name, key="generator")
    kwargs = parse_options(fn, name, options, what="generator")
    if workers < 1:
        raise ConfigError(f"--workers: expected a positive integer, got {workers}")
    out = shard_path(output, *shard) if shard else Path(output)
    _check_output(out, overwrite)
    if workers == 1:
        spec = _check_spec(call_source(fn, None, kwargs, shard), "generator", name)
        total = sum(spec.sizes.values()) if spec.sizes else None
        bar = Progress(f"generate {name}", total, stream=stream, mode=progress)
        n = _write_spec(out, spec, compression=compression, shard=shard, progress=bar)
        bar.close(f"wrote {n} records to {out}")
        return out
    return _generate_parallel(fn, name, kwargs, out, shard=shard, workers=workers, compression=compression,
                              progress=progress, stream=stream)


def _generate_worker(fn: Callable[..., Any], name: str, kwargs: dict[str, Any], path: str,
                     shard: tuple[int, int], compression: str | None, counter: Any, errors: Any) -> None:
    try:
        torch = sys.modules.get("torch")
        if torch is not None:  # parallelism is across processes (and an OpenMP pool inherited through fork hangs)
            torch.set_num_threads(1)
        spec = _check_spec(call_source(fn, None, kwargs, shard), "generator", name)
        _write_spec(Path(path), spec, compression=compression, shard=shard, progress=None, counter=counter)
    except BaseException as err:  # noqa: BLE001  (reported to the parent)
        # Queue.put pickles in a feeder thread, so an unpicklable exception would be lost there, not raised here:
        # check it in the worker and send a DataFormatError with its text instead
        import pickle
        try:
            payload = pickle.loads(pickle.dumps(err))
        except Exception:  # noqa: BLE001  (unpicklable exception)
            payload = DataFormatError(f"{type(err).__name__}: {err}")
        errors.put((shard[0], payload))
        sys.exit(1)


def _generate_parallel(fn: Callable[..., Any], name: str, kwargs: dict[str, Any], out: Path, *,
                       shard: tuple[int, int] | None, workers: int, compression: str | None, progress: str,
                       stream: TextIO | None) -> Path:
    import multiprocessing as mp

    index, count = shard or (0, 1)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    from .writer import partial_path, remove_stale_partials

    # a folder per run (``.<name>.workers.<pid>-<hex>.partial``): concurrent runs never share it; folders of
    # killed runs are removed like the writer's partial files
    hidden = out.parent / f".{out.name}.workers"
    remove_stale_partials(hidden)
    tmp = partial_path(hidden)
    tmp.mkdir(parents=True)
    errors = ctx.Queue()
    procs, counters, paths = [], [], []
    bar = Progress(f"generate {name} ({workers} workers)", None, stream=stream, mode=progress)
    try:
        for w in range(workers):
            sub = (index * workers + w, count * workers)
            path = shard_path(tmp, *sub)
            counter = ctx.Value("q", 0, lock=False)
            p = ctx.Process(target=_generate_worker, args=(fn, name, kwargs, str(path), sub, compression, counter,
                                                           errors), daemon=True)
            p.start()
            procs.append(p)
            counters.append(counter)
            paths.append(path)
        while any(p.is_alive() for p in procs):
            bar.update(sum(c.value for c in counters))
            if not errors.empty():
                break
            time.sleep(0.1)
        for p in procs:
            p.join(timeout=0.5 if not errors.empty() else None)
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        if failures or any(p.exitcode != 0 for p in procs):
            if failures:
                _, err = min(failures, key=lambda x: x[0])
                raise err
            codes = [p.exitcode for p in procs]
            raise DataFormatError(f"{out}: a generator worker died (exit codes {codes})")
        total = sum(c.value for c in counters)
        bar.update(total)
        # recorded as one write, not as a merge of temporary files
        result = merge_shards(paths, out, compression=compression, shard=shard, record_sources=False,
                              in_order=True)
        bar.close(f"wrote {total} records to {out}")
        return result
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        shutil.rmtree(tmp, ignore_errors=True)
