"""Atomistic structures readable by ASE (trajectories ``.traj``, databases ``.db``, extended XYZ ``.extxyz``/``.xyz``,
and any other format ``ase.io`` reads) -> ``atoms`` records. Needs the optional package ``ase``
(``pip install sciml[atoms]``).

Per frame, a PyG ``Data`` with ``pos [n, 3]``, ``z [n]``, ``cell [1, 3, 3]``, ``pbc [1, 3]``, ``fixed [n]``
(atoms held by ``FixAtoms`` constraints; other constraint types are ignored), ``tags [n]``, and when the file holds
them ``energy [1]`` and ``forces [n, 3]`` (from the calculator results that ASE attaches on reading, else from
``atoms.info`` / ``atoms.arrays``). Floats are kept as float64, exactly as read.

Tags (``tags=`` option):

* ``source``: the tags stored in the file (all 0 when none are stored).
* ``auto`` (default): the stored tags when any is non-zero; otherwise, for a slab + adsorbate structure (at least one
  fixed atom), the OC20 rule below; otherwise the stored (zero) tags.
* ``oc20``: the stored tags when any is non-zero, else always the OC20 rule.

OC20 rule (OC20 saves slab atoms first and appends the adsorbate): tag 0 = fixed (sub-surface) atoms, tag 2 = the
trailing run of H/C/N/O atoms that are not fixed, tag 1 = every other atom. On the OC20 debug relaxations this
reproduces the OC20 tags; it would mislabel a slab whose last atoms are themselves H/C/N/O and not fixed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch

from sciml.datasets.sources._common import (LazySplit, check_shard, config_of, existing, fail, in_shard,
                                            make_spec, one_line)

__all__ = ["convert_ase", "atoms_to_data", "oc20_tags", "ADSORBATE_ELEMENTS"]

#: Atomic numbers that may form an OC20 adsorbate: H, C, N, O.
ADSORBATE_ELEMENTS = (1, 6, 7, 8)
EXTENSIONS = (".traj", ".db", ".extxyz", ".xyz", ".json", ".cif", ".vasp", ".xml", ".pdb", ".gz")


def _ase() -> Any:
    try:
        import ase.io  # noqa: F401
    except ImportError:
        raise ImportError("the 'ase' converter needs the optional package ase: pip install 'sciml[atoms]' "
                          "(or pip install ase)") from None
    import ase

    return ase


def oc20_tags(z: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Tags by the OC20 convention (see module doc): 0 fixed, 2 trailing non-fixed H/C/N/O run, 1 the rest."""
    tags = np.ones(len(z), dtype=np.int64)
    tags[fixed] = 0
    i = len(z)
    while i > 0 and int(z[i - 1]) in ADSORBATE_ELEMENTS and not fixed[i - 1]:
        i -= 1
    tags[i:] = 2
    return tags


def _fixed(atoms: Any) -> np.ndarray:
    from ase.constraints import FixAtoms

    fixed = np.zeros(len(atoms), dtype=bool)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[np.asarray(c.get_indices(), dtype=np.int64)] = True
    return fixed


def atoms_to_data(atoms: Any, *, tags: str = "auto", energy_key: str = "energy", forces_key: str = "forces",
                  where: str = "<atoms>"):
    """One ``ase.Atoms`` -> an ``atoms`` record (PyG ``Data``)."""
    from torch_geometric.data import Data

    n = len(atoms)
    if n == 0:
        raise fail(where, "a structure with no atoms")
    z = np.asarray(atoms.numbers, dtype=np.int64)
    if (z < 1).any() or (z > 118).any():
        raise fail(where, f"atomic number outside 1..118: {int(z[(z < 1) | (z > 118)][0])}")
    pos = np.asarray(atoms.positions, dtype=np.float64)
    cell = np.asarray(atoms.cell.array, dtype=np.float64).reshape(1, 3, 3)
    if not np.isfinite(pos).all() or not np.isfinite(cell).all():
        raise fail(where, "non-finite positions or cell")
    fixed = _fixed(atoms)
    source_tags = np.asarray(atoms.get_tags(), dtype=np.int64)
    if tags not in ("auto", "source", "oc20"):
        raise ValueError(f"tags must be 'auto', 'source' or 'oc20', got {tags!r}")
    if tags == "source" or source_tags.any():
        out_tags = source_tags
    elif tags == "oc20" or (fixed.any() and not fixed.all()):
        out_tags = oc20_tags(z, fixed)
    else:
        out_tags = source_tags
    data = Data(pos=torch.from_numpy(pos), z=torch.from_numpy(z), cell=torch.from_numpy(cell),
                pbc=torch.from_numpy(np.asarray(atoms.pbc, dtype=bool).reshape(1, 3).copy()),
                tags=torch.from_numpy(out_tags), fixed=torch.from_numpy(fixed))
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    energy = results.get(energy_key, atoms.info.get(energy_key))
    if energy is not None:
        try:
            e = np.asarray(energy, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise fail(where, f"{energy_key} is not a number: {one_line(energy)[:40]}") from None
        if e.shape != (1,) or not np.isfinite(e).all():
            raise fail(where, f"{energy_key} must be one finite number, got {one_line(energy)[:40]}")
        data.energy = torch.from_numpy(e)
    forces = results.get(forces_key, atoms.arrays.get(forces_key))
    if forces is not None:
        f = np.asarray(forces, dtype=np.float64)
        if f.shape != (n, 3) or not np.isfinite(f).all():
            raise fail(where, f"{forces_key} must be finite with shape [{n}, 3], got {tuple(f.shape)}")
        data.forces = torch.from_numpy(f)
    data.num_nodes = n
    return data


def _files(p: Path, pattern: str) -> list[Path]:
    if p.is_file():
        return [p]
    files = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in EXTENSIONS)
    if not files:
        raise fail(p, f"no structure files matching {pattern!r} ({', '.join(EXTENSIONS)})")
    return files


def _iter_file(f: Path, index: str) -> Iterator[Any]:
    import ase.io

    it = ase.io.iread(str(f), index=index)
    k = 0
    while True:
        try:
            atoms = next(it)
        except StopIteration:
            break
        except Exception as err:  # ASE raises many types on corrupt input (ValueError, KeyError, struct.error...)
            raise fail(f, f"cannot read frame {k} ({type(err).__name__}: {one_line(err)[:200]})") from None
        yield k, atoms
        k += 1
    if k == 0:
        raise fail(f, "holds no structures (empty, truncated, or an index that selects nothing)")


def convert_ase(path: str | os.PathLike, *, index: str = ":", pattern: str = "*",
                tags: Literal["auto", "source", "oc20"] = "auto", energy_key: str = "energy",
                forces_key: str = "forces", split: str = "train",
                shard: tuple[int, int] | None = None) -> Any:
    """ASE-readable structures -> an ``atoms`` DataSpec, one record per frame.

    Args:
        path: a file (``.traj``, ``.db``, ``.extxyz``...) or a folder of such files (read in sorted name order).
        index: which frames of each file, in ASE's syntax (``":"`` all, ``"-1"`` last, ``"::10"``).
        pattern: glob for the files of a folder. (default: ``*``, every file with a known extension)
        tags: ``auto``, ``source`` or ``oc20`` (see the module doc). (default: ``auto``)
        energy_key: the calculator result / ``info`` key of the energy (``free_energy``...). (default: ``energy``)
        forces_key: the calculator result / per-atom array of the forces. (default: ``forces``)
        split: the split (HDF5 group) the frames go to. (default: ``train``)
        shard: ``(i, n)``: the contiguous block of frames (running index over all files) that
            :func:`~sciml.datasets.shards.shard_range` gives. ASE cannot count frames without reading them, so a
            sharded run first reads every frame once, only to count them.
    """
    _ase()
    shard = check_shard(shard)
    p = existing(path)
    files = _files(p, pattern)
    if tags not in ("auto", "source", "oc20"):
        raise ValueError(f"tags must be 'auto', 'source' or 'oc20', got {tags!r}")

    def records():
        total = 0
        if shard is not None:  # a first pass that only counts, so the same contiguous rule as elsewhere applies
            total = sum(1 for f in files for _ in _iter_file(f, index))
        i = 0
        for f in files:
            for k, atoms in _iter_file(f, index):
                if in_shard(i, shard, total):
                    yield atoms_to_data(atoms, tags=tags, energy_key=energy_key, forces_key=forces_key,
                                        where=f"{f} (frame {k})")
                i += 1

    return make_spec(kind="atoms", splits={split: LazySplit(records)}, source=f"ase:{p}",
                     config=config_of(converter="ase", path=path, index=index, pattern=pattern, tags=tags,
                                      energy_key=energy_key, forces_key=forces_key, split=split))
