"""Shards: file names ``part-XXXXX-of-YYYYY.h5``, ``--shard i/n`` parsing, Slurm array defaults, index ranges.

A shard ``(i, n)`` of ``N`` samples is the contiguous range :func:`shard_range` ``(N, (i, n))`` =
``[floor(i N / n), floor((i + 1) N / n))``. These ranges nest: the ``k`` sub-shards ``(i k + w, n k)``,
``w = 0..k-1``, cover exactly shard ``(i, n)``, in order. ``sciml data generate --workers k`` relies on this, so
that a dataset is the same file whatever the number of Slurm tasks and worker processes.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sciml.errors import ConfigError, DataFormatError

__all__ = ["shard_path", "parse_shard", "shard_from_env", "resolve_shard", "shard_range", "parse_shard_name",
           "SHARD_RE", "order_shards", "merge_shards", "expand_inputs"]

SHARD_RE = re.compile(r"part-(?P<index>\d{5})-of-(?P<count>\d{5})\.h5$")


def shard_path(out_dir_or_stem: str | os.PathLike, index: int, count: int) -> Path:
    """The file name of shard ``index`` of ``count``.

    ``out/`` (a directory, or any path without the ``.h5`` suffix) gives ``out/part-00003-of-00010.h5``;
    ``out/darcy.h5`` gives ``out/darcy-part-00003-of-00010.h5``.
    """
    _check_shard(index, count, "shard")
    path = Path(out_dir_or_stem)
    name = f"part-{index:05d}-of-{count:05d}.h5"
    if path.suffix == ".h5" and not path.is_dir():
        return path.with_name(f"{path.stem}-{name}")
    return path / name


def parse_shard_name(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(index, count)`` from a shard file name, or ``None`` if the name is not one."""
    m = SHARD_RE.search(Path(path).name)
    return (int(m["index"]), int(m["count"])) if m else None


def _check_shard(index: int, count: int, what: str) -> None:
    if not (isinstance(index, int) and isinstance(count, int)) or count < 1 or not 0 <= index < count:
        raise ConfigError(f"{what}: expected 0 <= i < n with n >= 1, got i={index!r}, n={count!r}")


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/10"`` -> ``(3, 10)`` (0-based index)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ConfigError(f"--shard: expected i/n (e.g. 0/4), got {text!r}")
    index, count = int(m[1]), int(m[2])
    _check_shard(index, count, f"--shard {text}")
    return index, count


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The shard of this Slurm array task: ``(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT)``,
    or ``None`` outside an array job (a minimum other than 0, as in ``--array=1-8``, is subtracted)."""
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    try:
        task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
        low = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    except ValueError:
        raise ConfigError("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_MIN are not integers: "
                          f"{env.get('SLURM_ARRAY_TASK_ID')!r}, {env.get('SLURM_ARRAY_TASK_COUNT')!r}, "
                          f"{env.get('SLURM_ARRAY_TASK_MIN')!r}") from None
    index = task - low
    _check_shard(index, count, f"Slurm array task {task} (min {low}, count {count})")
    return index, count


def resolve_shard(text: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """``--shard`` if given, else the Slurm array task's shard, else ``None`` (``1/1`` is also ``None``)."""
    shard = parse_shard(text) if text is not None else shard_from_env(env)
    return None if shard is None or shard[1] == 1 else shard


def check_shard(shard: Any) -> tuple[int, int] | None:
    """Validate ``shard=(i, n)`` (``None``: everything) and return it as ints.

    Raises:
        ConfigError: not a pair of integers with ``0 <= i < n`` (an option error, never blamed on an input file).
    """
    if shard is None:
        return None
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard: expected a pair (index, count), got {shard!r}") from None
    _check_shard(index, count, "shard")
    return index, count


def shard_range(num_items: int, shard: tuple[int, int] | None) -> range:
    """The contiguous index range of ``shard`` among ``num_items`` items (all of them for ``None``): the one
    sharding rule of the package (converters, generators, ``--workers``), so merged shards equal one write."""
    shard = check_shard(shard)
    if shard is None:
        return range(num_items)
    index, count = shard
    return range(index * num_items // count, (index + 1) * num_items // count)


def order_shards(paths: Iterable[str | os.PathLike],
                 attrs: Mapping[Path, tuple[int, int] | None] | None = None) -> list[Path]:
    """Check that ``paths`` are shards ``0..n-1`` of one ``n``, each exactly once, and return them in order.

    The index comes from the file's ``shard_index``/``shard_count`` attributes when given in ``attrs``, else from
    its name.

    Raises:
        DataFormatError: a file that is not a shard, counts that disagree, a duplicate index or a gap.
    """
    found: dict[int, Path] = {}
    count: int | None = None
    for p in map(Path, paths):
        shard = (attrs or {}).get(p) or parse_shard_name(p)
        if shard is None:
            raise DataFormatError(f"{p}: not a shard (expected a name ending in part-XXXXX-of-YYYYY.h5 or "
                                  "shard_index/shard_count attributes)")
        i, n = shard
        if count is None:
            count = n
        elif n != count:
            raise DataFormatError(f"{p}: shard {i} of {n}, but other shards are of {count}")
        if i in found:
            raise DataFormatError(f"{p}: duplicate shard {i} of {n} (also {found[i]})")
        if not 0 <= i < n:
            raise DataFormatError(f"{p}: shard index {i} outside 0..{n - 1}")
        found[i] = p
    if count is None:
        raise DataFormatError("no shard files given")
    missing = [i for i in range(count) if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise DataFormatError(f"gap: {len(missing)} of {count} shards missing (index {shown}); the first present "
                              f"is {found[min(found)]}")
    return [found[i] for i in range(count)]


# ------------------------------------------------------------------------------------------------------- merge
def _describe(path: Path) -> dict:
    """Header and per-split dataset descriptions of a complete shard (file closed again)."""
    from .schema import _attr_str, iter_datasets, open_h5, split_names

    f = open_h5(path)
    try:
        root = {k: _attr_str(v) for k, v in f.attrs.items()}
        splits = {}
        for s in split_names(f):
            g = f[s]
            splits[s] = {"num_samples": int(g.attrs.get("num_samples", 0)),
                         "datasets": {name: {"dtype": d.dtype, "shape": d.shape,
                                             "attrs": {k: _attr_str(v) for k, v in d.attrs.items()}}
                                      for name, d in iter_datasets(g)}}
        return {"root": root, "splits": splits}
    finally:
        f.close()


def _layout_key(info: dict) -> dict:
    """What must agree between shards for each dataset: dtype, level attributes, shape off the packing axis."""
    out = {}
    for name, d in info["datasets"].items():
        a = d["attrs"]
        cat = int(a.get("cat_dim", 0))
        level = a.get("level")
        shape = tuple(d["shape"]) if level == "coords" else tuple(s for i, s in enumerate(d["shape"]) if i != cat)
        out[name] = (str(d["dtype"]), level, a.get("ptr"), cat, a.get("sample_dim"), a.get("pytype"), shape)
    return out


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Input paths with each directory replaced by the shard files (``*part-*-of-*.h5``) inside it."""
    out: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if SHARD_RE.search(q.name))
            if not found:
                raise DataFormatError(f"{p}: directory holds no shard files (part-XXXXX-of-YYYYY.h5)")
            out.extend(found)
        else:
            out.append(p)
    return out


def merge_shards(inputs: Iterable[str | os.PathLike], output: str | os.PathLike, *, index: bool = False,
                 compression: str | None = None, shard: tuple[int, int] | None = None,
                 record_sources: bool = True, in_order: bool = False, force: bool = False) -> Path:
    """Concatenate shards ``0..n-1`` (in index order) into one sciml-h5 file, or an *index* file.

    Every shard must be complete and agree on kind, splits, dataset names, dtypes and levels; offsets are shifted,
    each shard's stored checksums are verified while copying. With ``index=True`` the output holds only the
    offsets and HDF5 virtual datasets pointing at the shards (by relative path: keep them next to it).

    Args:
        inputs: Shard files (or directories holding them).
        output: The merged file (written atomically).
        index (bool): Write an index of virtual datasets instead of copying. (default: ``False``)
        compression (str, optional): As in :class:`~sciml.datasets.writer.H5Writer`. (default: none)
        shard (tuple[int, int], optional): Shard attributes for the output (used by ``--workers``).
        record_sources (bool): Write the shard names into the root attribute ``merged_from``.
        in_order (bool): Merge ``inputs`` as given, without the shard-set checks (for a caller that made the
            shards itself, e.g. ``--workers``). (default: ``False``)
        force (bool): Merge shards whose root ``source`` or ``config`` differ (shards of different runs), or whose
            datasets carry no ``sha256`` checksum. (default: ``False``: refuse them)

    Raises:
        DataFormatError: a gap, a duplicate, an incomplete or corrupted shard, shards that disagree, shards of
            different runs (root ``source``/``config`` differ) or without checksums (unless ``force``).
    """
    import hashlib

    import numpy as np
    import yaml

    from .schema import _attr_str, iter_blocks, open_h5
    from .writer import H5Writer

    paths = expand_inputs(inputs)
    described = {p: _describe(p) for p in paths}
    attrs = {p: (int(d["root"]["shard_index"]), int(d["root"]["shard_count"])) if "shard_index" in d["root"]
             else None for p, d in described.items()}
    ordered = paths if in_order else order_shards(paths, attrs)
    output = Path(output)
    if any(output.resolve() == p.resolve() for p in ordered):
        raise DataFormatError(f"{output}: the output is one of the shards")
    first = described[ordered[0]]
    kind = first["root"]["kind"]
    splits = list(first["splits"])
    layouts: dict[str, dict] = {}

    def run_of(p: Path) -> tuple[str, Any]:
        root = described[p]["root"]
        try:
            cfg = yaml.safe_load(root.get("config") or "{}") or {}
        except yaml.YAMLError:
            cfg = root.get("config")
        if isinstance(cfg, dict):
            cfg = {k: v for k, v in cfg.items() if k not in ("shard", "shard_index", "shard_count")}
        return str(root.get("source", "")), cfg

    run0 = run_of(ordered[0])
    for p in ordered:
        d = described[p]
        run = run_of(p)
        if run != run0 and not force:
            what = "source" if run[0] != run0[0] else "config"
            diff = ([f"{run[0]!r} vs {run0[0]!r}"] if what == "source" else
                    sorted(k for k in set(run[1]) | set(run0[1]) if run[1].get(k) != run0[1].get(k))
                    if isinstance(run[1], dict) and isinstance(run0[1], dict) else [])
            raise DataFormatError(f"{p}: {what} differs from {ordered[0].name}'s ({', '.join(map(str, diff))}): "
                                  "shards of different runs (pass force=True / --force to merge anyway)")
        if d["root"]["kind"] != kind:
            raise DataFormatError(f"{p}: kind {d['root']['kind']!r}, but {ordered[0]} has {kind!r}")
        if sorted(d["splits"]) != sorted(splits):
            raise DataFormatError(f"{p}: splits {sorted(d['splits'])}, but {ordered[0]} has {sorted(splits)}")
        for s, info in d["splits"].items():
            if info["num_samples"] == 0:
                continue
            key = _layout_key(info)
            if s not in layouts:
                layouts[s] = key
            elif key != layouts[s]:
                names = sorted(set(key) ^ set(layouts[s])) or [n for n in key if key[n] != layouts[s][n]]
                raise DataFormatError(f"{p}: /{s}: datasets differ from the other shards ({', '.join(names[:5])})")
    try:
        config = yaml.safe_load(first["root"].get("config") or "{}") or {}
    except yaml.YAMLError:
        config = {}
    coords = None
    with H5Writer(output, kind, source=first["root"].get("source", ""), config=config,
                  compression=compression, coords=coords, shard=shard) as w:
        if record_sources:
            w._file.attrs["merged_from"] = [p.name for p in ordered]
        for s in splits:
            store = w.split(s)
            layout = layouts.get(s, {})
            if index:
                _write_index_split(w, s, layout, ordered, described, output)
                continue
            template = next((described[p]["splits"][s] for p in ordered
                             if described[p]["splits"][s]["num_samples"]), None)
            if template is None:
                continue
            for name, d in template["datasets"].items():
                w._declare_raw(s, name, d["dtype"], d["attrs"])
            offsets: dict[str, int] = {}
            coords_seen: dict[str, Any] = {}
            for p in ordered:
                if described[p]["splits"][s]["num_samples"] == 0:
                    continue
                f = open_h5(p)
                try:
                    g = f[s]
                    for name, (_, level, _, cat, *_rest) in layout.items():
                        dset = g[name]
                        digest = hashlib.sha256()
                        stored = _attr_str(dset.attrs.get("sha256", ""))
                        try:
                            if level == "ptr":
                                _copy_ptr(w, s, name, dset, offsets, digest)
                            elif level == "coords":
                                value = dset[()]
                                digest.update(value.tobytes())
                                if name not in coords_seen:
                                    coords_seen[name] = value
                                    w._append_raw(s, name, value)
                                elif not np.array_equal(coords_seen[name], value):
                                    raise DataFormatError(f"{p}: /{s}/{name}: coordinates differ from the first "
                                                          "shard's")
                            else:
                                for block in iter_blocks(dset, axis=0):
                                    _hash_block(digest, block)
                                    if cat == 0:
                                        w._append_raw(s, name, block)
                                if cat != 0:
                                    for block in iter_blocks(dset, axis=cat):
                                        w._append_raw(s, name, block)
                        except OSError as err:
                            raise DataFormatError(f"{p}: /{s}/{name}: read failed, file corrupted ({err})") from None
                        if not stored and not force:
                            raise DataFormatError(f"{p}: /{s}/{name}: no sha256 checksum, the copy cannot be "
                                                  "verified (pass force=True / --force to merge anyway)")
                        if stored and digest.hexdigest() != stored:
                            raise DataFormatError(f"{p}: /{s}/{name}: sha256 checksum mismatch: shard corrupted")
                    store.num_samples += described[p]["splits"][s]["num_samples"]
                finally:
                    f.close()
    return output


def _hash_block(digest: Any, block: Any) -> None:
    import numpy as np

    if block.dtype.kind == "O":
        for item in block.ravel():
            digest.update(item if isinstance(item, bytes) else str(item).encode())
            digest.update(b"\0")
    else:
        digest.update(np.ascontiguousarray(block).tobytes())


def _copy_ptr(w: Any, split: str, name: str, dset: Any, offsets: dict[str, int], digest: Any = None) -> None:
    """Append offsets ``dset`` shifted by what earlier shards contributed (the leading 0 only once)."""
    ptr = dset[()]
    if digest is not None:
        digest.update(ptr.tobytes())
    if name in offsets:
        w._append_raw(split, name, ptr[1:] + offsets[name])
        offsets[name] += int(ptr[-1])
    else:
        w._append_raw(split, name, ptr)
        offsets[name] = int(ptr[-1])


def _write_index_split(w: Any, split: str, layout: dict, ordered: list[Path], described: dict,
                       output: Path) -> None:
    import h5py

    from .schema import open_h5

    store = w.split(split)
    nonempty = [p for p in ordered if described[p]["splits"][split]["num_samples"]]
    store.num_samples = sum(described[p]["splits"][split]["num_samples"] for p in nonempty)
    if not nonempty:
        return
    template = described[nonempty[0]]["splits"][split]["datasets"]
    offsets: dict[str, int] = {}
    for name, (_, level, _, cat, *_rest) in layout.items():
        attrs = {k: v for k, v in template[name]["attrs"].items() if k != "sha256"}
        if level in ("ptr", "coords"):
            w._declare_raw(split, name, template[name]["dtype"], attrs)
            for p in (nonempty if level == "ptr" else nonempty[:1]):
                f = open_h5(p)
                try:
                    if level == "ptr":
                        _copy_ptr(w, split, name, f[split][name], offsets)
                    else:
                        w._append_raw(split, name, f[split][name][()])
                finally:
                    f.close()
            continue
        shapes = [tuple(described[p]["splits"][split]["datasets"][name]["shape"]) for p in nonempty]
        total = list(shapes[0])
        total[cat] = sum(sh[cat] for sh in shapes)
        vlayout = h5py.VirtualLayout(shape=tuple(total), dtype=template[name]["dtype"])
        start = 0
        for p, sh in zip(nonempty, shapes):
            rel = os.path.relpath(p.resolve(), output.resolve().parent)
            index = [slice(None)] * len(total)
            index[cat] = slice(start, start + sh[cat])
            vlayout[tuple(index)] = h5py.VirtualSource(rel, f"/{split}/{name}", shape=sh)
            start += sh[cat]
        parent, _, leaf = name.rpartition("/")
        group = store.group.require_group(parent) if parent else store.group
        d = group.create_virtual_dataset(leaf, vlayout, fillvalue=None)
        for k, v in attrs.items():
            d.attrs[k] = v
