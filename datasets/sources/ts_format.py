"""UEA/UCR time-series archive ``.ts`` files (the sktime/aeon text format) -> :class:`TimeSeries` records.

Our own parser. A file is ``#`` comment lines, ``@`` header lines (case-insensitive tags: ``@problemName``,
``@timeStamps true|false``, ``@missing``, ``@univariate``, ``@dimensions D``, ``@equalLength``, ``@seriesLength L``,
``@classLabel true <label> <label>...`` or ``@classLabel false``, ``@targetLabel true`` for regression), then
``@data`` and one instance per line: the dimensions separated by ``:``, values within a dimension by ``,``, then the
label as the last ``:`` field when the file declares one. ``?`` (or ``NaN``) is a missing value. With
``@timeStamps true`` each dimension is a list of ``(time,value)`` pairs (numeric times or ISO dates, read as
seconds since 1970).

Per instance: ``times`` = ``0..L-1`` (``L`` the longest dimension; shorter dimensions are padded with
``mask=False``) or, with time stamps, the sorted union of the time stamps of all dimensions; ``mask`` is False
where a value is missing or absent; ``y`` is the index of the class label in the declared ``@classLabel`` order, the
float target for ``@targetLabel true``, or ``None``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sciml.datasets.records import TimeSeries
from sciml.datasets.sources._common import (LazySplit, check_shard, config_of, existing, fail, in_shard,
                                            make_spec, shard_count, split_from_name)

__all__ = ["convert_ts", "TsHeader", "read_ts_header", "iter_ts", "parse_ts_line"]

_MISSING = {"?", "nan", "NaN", "NAN"}
_PAIR = re.compile(r"\(([^()]*)\)")


class TsHeader:
    """The ``@`` header of a ``.ts`` file."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.timestamps = False
        self.univariate: bool | None = None
        self.dimensions: int | None = None
        self.equal_length: bool | None = None
        self.series_length: int | None = None
        self.class_labels: list[str] | None = None  # None: no class label
        self.target = False  # regression target
        self.data_line = 0  # 1-based line number of @data

    @property
    def labelled(self) -> bool:
        return self.class_labels is not None or self.target


def _bool(value: str, path: Path, lineno: int, tag: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "false"):
        return v == "true"
    raise fail(path, f"@{tag} must be true or false, got {value.strip()[:40]!r}", line=lineno)


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(path, "not UTF-8 text (corrupted file?)", line=lineno) from None


def read_ts_header(path: Path) -> TsHeader:
    """Parse the header up to ``@data``."""
    h = TsHeader()
    try:
        f = open(path, "rb")
    except OSError as err:
        raise fail(path, f"cannot read: {err.strerror or err}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, path, lineno).strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("@"):
                raise fail(path, f"expected a @tag header line before @data, found {line[:40]!r}", line=lineno)
            tag, _, value = line[1:].partition(" ")
            tag = tag.lower()
            h.tags[tag] = value.strip()
            if tag == "data":
                h.data_line = lineno
                break
            if tag == "timestamps":
                h.timestamps = _bool(value, path, lineno, tag)
            elif tag == "univariate":
                h.univariate = _bool(value, path, lineno, tag)
            elif tag == "equallength":
                h.equal_length = _bool(value, path, lineno, tag)
            elif tag in ("dimension", "dimensions", "serieslength"):
                if not value.strip().isdigit() or int(value) < 1:
                    raise fail(path, f"@{tag} must be a positive integer, got {value.strip()[:40]!r}", line=lineno)
                if tag == "serieslength":
                    h.series_length = int(value)
                else:
                    h.dimensions = int(value)
            elif tag == "classlabel":
                words = value.split()
                if not words:
                    raise fail(path, "@classLabel needs true or false", line=lineno)
                if _bool(words[0], path, lineno, tag):
                    if len(words) < 2:
                        raise fail(path, "@classLabel true lists no class labels", line=lineno)
                    if len(set(words[1:])) != len(words) - 1:
                        raise fail(path, "@classLabel lists a class label twice", line=lineno)
                    h.class_labels = words[1:]
            elif tag == "targetlabel":
                h.target = _bool(value.split()[0] if value.split() else "", path, lineno, tag)
    if not h.data_line:
        raise fail(path, "no @data line (truncated file, or not a .ts file)")
    if h.class_labels is not None and h.target:
        raise fail(path, "declares both @classLabel true and @targetLabel true")
    if h.univariate and h.dimensions not in (None, 1):
        raise fail(path, f"@univariate true but @dimensions {h.dimensions}")
    return h


def _number(tok: str) -> float:
    tok = tok.strip()
    if tok in _MISSING:
        return np.nan
    return float(tok)


def _time(tok: str) -> float:
    tok = tok.strip()
    try:
        return float(tok)
    except ValueError:
        return float(np.datetime64(tok, "ns").astype(np.int64)) / 1e9


def parse_ts_line(line: str, h: TsHeader, path: Path, lineno: int) -> TimeSeries:
    """One data line -> a :class:`TimeSeries`."""
    parts = line.split(":")
    y: int | float | None = None
    if h.labelled:
        if len(parts) < 2:
            raise fail(path, "expected dimensions followed by ':<label>', found no ':'", line=lineno)
        label = parts.pop().strip()
        if h.class_labels is not None:
            if label not in h.class_labels:
                raise fail(path, f"unknown class label {label[:40]!r} (declared: {' '.join(h.class_labels)})",
                           line=lineno)
            y = h.class_labels.index(label)
        else:
            try:
                y = float(label)
            except ValueError:
                raise fail(path, f"regression target is not a number: {label[:40]!r}", line=lineno) from None
    want = 1 if h.univariate else h.dimensions
    if want is not None and len(parts) != want:
        raise fail(path, f"expected {want} dimension(s), found {len(parts)}", line=lineno)
    dims_t: list[np.ndarray] = []
    dims_v: list[np.ndarray] = []
    for d, part in enumerate(parts):
        part = part.strip()
        try:
            if h.timestamps:
                pairs = _PAIR.findall(part)
                if _PAIR.sub("", part).replace(",", "").strip():
                    raise ValueError(f"dimension {d}: expected (time,value) pairs")
                tv = [p.rsplit(",", 1) for p in pairs]
                if any(len(p) != 2 for p in tv):
                    raise ValueError(f"dimension {d}: a pair without a comma")
                t = np.array([_time(p[0]) for p in tv], dtype=np.float64)
                v = np.array([_number(p[1]) for p in tv], dtype=np.float64)
            else:
                v = np.array([_number(tok) for tok in part.split(",")], dtype=np.float64) if part else \
                    np.zeros(0)
                t = np.arange(len(v), dtype=np.float64)
        except ValueError as err:
            msg = str(err) if str(err).startswith("dimension") else f"dimension {d}: {err}"
            raise fail(path, msg, line=lineno) from None
        if not np.isfinite(t).all():
            raise fail(path, f"dimension {d}: a time stamp is not finite", line=lineno)
        if h.equal_length and h.series_length is not None and not h.timestamps and len(v) != h.series_length:
            raise fail(path, f"dimension {d} has {len(v)} values, but @seriesLength is {h.series_length}",
                       line=lineno)
        dims_t.append(t)
        dims_v.append(v)
    if h.equal_length and len({len(v) for v in dims_v}) > 1:
        raise fail(path, "dimensions have different lengths, but @equalLength is true", line=lineno)
    D = len(dims_v)
    if h.timestamps:
        times = np.unique(np.concatenate(dims_t)) if D else np.zeros(0)
        values = np.full((len(times), D), np.nan, dtype=np.float32)
        mask = np.zeros((len(times), D), dtype=bool)
        for d, (t, v) in enumerate(zip(dims_t, dims_v)):
            pos = np.searchsorted(times, t)
            values[pos, d] = v
            mask[pos, d] = ~np.isnan(v)
    else:
        L = max((len(v) for v in dims_v), default=0)
        times = np.arange(L, dtype=np.float64)
        values = np.full((L, D), np.nan, dtype=np.float32)
        for d, v in enumerate(dims_v):
            values[:len(v), d] = v
        mask = ~np.isnan(values)
    values[~mask] = np.nan
    return TimeSeries(times=times, values=values, mask=mask, y=y)


def _data_lines(path: Path, h: TsHeader) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno <= h.data_line:
                continue
            line = _decode(raw, path, lineno).strip()
            if line and not line.startswith("#"):
                yield lineno, line


def iter_ts(path: Path, h: TsHeader, shard: tuple[int, int] | None = None,
            total: int | None = None) -> Iterator[TimeSeries]:
    """The instances of ``path`` (of ``shard``; ``total``: the number of instances, counted when not given),
    parsed one line at a time."""
    if shard is not None and total is None:
        total = sum(1 for _ in _data_lines(path, h))
    dims = None
    for i, (lineno, line) in enumerate(_data_lines(path, h)):
        if not in_shard(i, shard, total or 0):
            # the dimension count is still checked on every line, so shards agree on it
            n = line.count(":") + (0 if h.labelled else 1)
            if dims is not None and n != dims:
                raise fail(path, f"expected {dims} dimension(s) as on earlier lines, found {n}", line=lineno)
            dims = n if dims is None else dims
            continue
        rec = parse_ts_line(line, h, path, lineno)
        n = rec.values.shape[1]
        if dims is not None and n != dims:
            raise fail(path, f"expected {dims} dimension(s) as on earlier lines, found {n}", line=lineno)
        dims = n
        yield rec


def _find_files(p: Path, dataset: str, pair: bool) -> list[Path]:
    if p.is_file():
        files = [p]
        m = re.match(r"(.+)_(TRAIN|TEST)\.ts$", p.name, re.IGNORECASE)
        if pair and m:
            other = p.with_name(f"{m.group(1)}_{'TEST' if m.group(2).upper() == 'TRAIN' else 'TRAIN'}.ts")
            if other.is_file():
                files.append(other)
        return files
    names = sorted({m.group(1) for f in p.glob("*.ts") if (m := re.match(r"(.+)_(?:TRAIN|TEST)\.ts$", f.name))})
    if dataset:
        if dataset not in names:
            raise fail(p, f"no {dataset}_TRAIN.ts / {dataset}_TEST.ts here (found: {', '.join(names) or 'none'})")
        name = dataset
    elif len(names) == 1:
        name = names[0]
    elif p.name in names:
        name = p.name
    elif names:
        raise fail(p, f"holds several .ts datasets ({', '.join(names)}); choose one with dataset=")
    else:
        raise fail(p, "no <NAME>_TRAIN.ts / <NAME>_TEST.ts files here")
    return [f for f in (p / f"{name}_TRAIN.ts", p / f"{name}_TEST.ts") if f.is_file()]


def convert_ts(path: str | os.PathLike, *, dataset: str = "", split: str = "auto", pair: bool = True,
               shard: tuple[int, int] | None = None) -> Any:
    """UEA/UCR ``.ts`` files -> a ``series`` DataSpec: one :class:`TimeSeries` per instance.

    Args:
        path: a ``.ts`` file, or a folder holding ``<NAME>_TRAIN.ts`` and ``<NAME>_TEST.ts``.
        dataset: ``NAME`` when the folder holds several datasets. (default: the only one, or the folder's name)
        split: the split of a single file; ``auto``: ``train`` / ``test`` from ``_TRAIN`` / ``_TEST`` in the file
            name (else ``train``).
        pair: given ``<NAME>_TRAIN.ts`` (or ``_TEST``), also read its partner when present. (default: :obj:`True`)
        shard: ``(i, n)``: the contiguous block of each split's instances that
            :func:`~sciml.datasets.shards.shard_range` gives.
    """
    shard = check_shard(shard)
    p = existing(path)
    files = _find_files(p, dataset, pair)
    headers = {f: read_ts_header(f) for f in files}
    splits: dict[str, LazySplit] = {}
    sizes: dict[str, int] = {}
    first = files[0]
    for f, h in headers.items():
        h0 = headers[first]
        if (h.class_labels, h.target) != (h0.class_labels, h0.target):
            raise fail(f, f"declares other labels than {first.name} ({h.tags.get('classlabel') or 'no class labels'}"
                          f" vs {h0.tags.get('classlabel') or 'no class labels'}); class indices would disagree")
        name = split_from_name(f) if split == "auto" else split
        if len(files) > 1 and split != "auto":
            name = split_from_name(f)
        if name in splits:
            raise fail(f, f"a second file for split {name!r}")
        count = sum(1 for _ in _data_lines(f, h))
        if count == 0:
            raise fail(f, "no instances after @data")
        splits[name] = LazySplit(lambda f=f, h=h, count=count: iter_ts(f, h, shard, count), shard_count(count, shard))
        sizes[name] = shard_count(count, shard)
    h0 = headers[first]
    return make_spec(kind="series", splits=splits, source=f"uea_ts:{first}",
                     config=config_of(converter="uea_ts", path=path, dataset=dataset, split=split, pair=pair,
                                      class_labels=h0.class_labels or [], regression=h0.target),
                     sizes=sizes)
