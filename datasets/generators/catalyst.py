r"""OC20-style catalyst relaxation data with ASE's EMT calculator (needs the optional package ``ase``).

Each sample is one relaxation trajectory of an adsorbate on a metal slab:

1. a random metal among ``metals`` (EMT's: Al, Cu, Ag, Au, Ni, Pd, Pt) and facet among ``facets`` (``fcc111``,
   ``fcc100``), an ``size x size x layers`` slab built by ``ase.build`` at ASE's reference lattice constant with
   ``vacuum`` Å of vacuum on each side, periodic in x and y;
2. a random adsorbate among ``adsorbates`` (built from EMT's light elements H, C, N, O: ``O H N C OH CO NH CH``)
   on a random site of the facet (``ontop``/``bridge``/``fcc``/``hcp`` or ``hollow``) of a random surface cell,
   ``height`` Å above the top layer, binding atom first;
3. every free atom displaced by N(0, ``displacement``²) per coordinate;
4. the bottom ``fixed_layers`` layers fixed (``ase.constraints.FixAtoms``);
5. ``num_steps`` optimiser steps (``BFGS`` or ``FIRE``) with EMT, saving every frame, the initial one included
   (``fmax > 0`` stops early when the largest force on a free atom is below it).

Each frame is one ``"atoms"`` record (a PyG ``Data``): ``pos [n, 3]`` (Å), ``z [n]``, ``cell [1, 3, 3]``,
``pbc [1, 3]``, ``tags [n]`` (OC20: 0 sub-surface, 1 surface = top layer, 2 adsorbate), ``fixed [n]``,
``energy [1]`` (EMT total energy, eV), ``forces [n, 3]`` (eV/Å, :math:`-\nabla E` for every atom, fixed atoms
included: the constraint is not applied to the stored forces), ``sid [1]`` (sample index in its split) and
``fid [1]`` (frame index in the trajectory).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from sciml.errors import ConfigError

from . import GENERATORS
from ._common import build_spec, jsonable, positive, sample_rng, split_sizes

__all__ = ["EMT_METALS", "ADSORBATES", "build_system", "relax", "frame_record", "catalyst_trajectory",
           "generate_catalyst"]

#: Metals that ASE's EMT parametrises.
EMT_METALS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
#: Adsorbates: symbols and positions relative to the binding atom (Å); all atoms are EMT elements.
ADSORBATES: dict[str, tuple[str, list[tuple[float, float, float]]]] = {
    "O": ("O", [(0.0, 0.0, 0.0)]),
    "H": ("H", [(0.0, 0.0, 0.0)]),
    "N": ("N", [(0.0, 0.0, 0.0)]),
    "C": ("C", [(0.0, 0.0, 0.0)]),
    "OH": ("OH", [(0.0, 0.0, 0.0), (0.0, 0.0, 0.97)]),
    "CO": ("CO", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.15)]),
    "NH": ("NH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.04)]),
    "CH": ("CH", [(0.0, 0.0, 0.0), (0.0, 0.0, 1.10)]),
}
FACETS = ("fcc111", "fcc100")


def _ase():
    try:
        import ase  # noqa: F401
        from ase import build, constraints, optimize
        from ase.calculators.emt import EMT
    except ImportError:
        raise ImportError("the 'catalyst' generator needs the optional package 'ase' "
                          "(pip install 'sciml[atoms]' or pip install ase)") from None
    return build, constraints, optimize, EMT


def build_system(rng: np.random.Generator, *, metals: tuple[str, ...] = EMT_METALS,
                 facets: tuple[str, ...] = FACETS, adsorbates: tuple[str, ...] = tuple(ADSORBATES),
                 size: int = 2, layers: int = 4, fixed_layers: int = 2, vacuum: float = 8.0, height: float = 1.8,
                 displacement: float = 0.05) -> Any:
    """A random slab + adsorbate (``ase.Atoms`` with EMT attached, FixAtoms set, OC20 tags); see the module doc."""
    build, constraints, _, EMT = _ase()
    from ase import Atoms

    metal = metals[rng.integers(len(metals))]
    facet = facets[rng.integers(len(facets))]
    name = adsorbates[rng.integers(len(adsorbates))]
    slab = getattr(build, facet)(metal, size=(size, size, layers), vacuum=vacuum)
    layer = slab.get_tags().copy()  # ase: 1 = top layer ... layers = bottom
    sites = sorted(slab.info["adsorbate_info"]["sites"])
    site = sites[rng.integers(len(sites))]
    offset = (int(rng.integers(size)), int(rng.integers(size)))
    symbols, positions = ADSORBATES[name]
    build.add_adsorbate(slab, Atoms(symbols, positions=positions), height, position=site, offset=offset)
    n_slab = len(layer)
    tags = np.full(len(slab), 2, dtype=np.int64)
    tags[:n_slab] = np.where(layer == 1, 1, 0)
    slab.set_tags(tags)
    fixed = np.zeros(len(slab), dtype=bool)
    fixed[:n_slab] = layer > layers - fixed_layers
    free = ~fixed
    pos = slab.get_positions()
    pos[free] += rng.normal(0.0, displacement, size=(int(free.sum()), 3))
    slab.set_positions(pos)
    slab.set_constraint(constraints.FixAtoms(mask=fixed))
    slab.calc = EMT()
    slab.info.update(metal=metal, facet=facet, adsorbate=name, site=site)
    return slab


def frame_record(atoms: Any, sid: int, fid: int) -> Any:
    """One ``"atoms"`` record (PyG ``Data``) of the current state of ``atoms`` (EMT attached)."""
    from torch_geometric.data import Data

    fixed = np.zeros(len(atoms), dtype=bool)
    for c in atoms.constraints:
        fixed[c.get_indices()] = True
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces(apply_constraint=False)
    return Data(pos=torch.as_tensor(atoms.get_positions(), dtype=torch.float32),
                z=torch.as_tensor(atoms.get_atomic_numbers(), dtype=torch.int64),
                cell=torch.as_tensor(np.asarray(atoms.get_cell()), dtype=torch.float32)[None],
                pbc=torch.as_tensor(atoms.get_pbc(), dtype=torch.bool)[None],
                tags=torch.as_tensor(atoms.get_tags(), dtype=torch.int64),
                fixed=torch.as_tensor(fixed),
                energy=torch.tensor([energy], dtype=torch.float64),
                forces=torch.as_tensor(forces, dtype=torch.float32),
                sid=torch.tensor([sid], dtype=torch.int64), fid=torch.tensor([fid], dtype=torch.int64),
                num_nodes=len(atoms))


def relax(atoms: Any, *, num_steps: int, fmax: float = 0.0, optimizer: str = "BFGS", sid: int = 0) -> list[Any]:
    """Relax ``atoms`` in place; the records of the initial frame and of every step."""
    _, _, optimize, _ = _ase()
    if optimizer not in ("BFGS", "FIRE"):
        raise ConfigError(f"optimizer: expected 'BFGS' or 'FIRE', got {optimizer!r}")
    opt = getattr(optimize, optimizer)(atoms, logfile=None)
    records = []
    for fid, _ in enumerate(opt.irun(fmax=fmax, steps=num_steps)):  # yields before each step and after the last
        records.append(frame_record(atoms, sid, fid))
    return records


def catalyst_trajectory(rng: np.random.Generator, sid: int = 0, *, num_steps: int = 10, fmax: float = 0.0,
                        optimizer: str = "BFGS", **system: Any) -> list[Any]:
    """One relaxation trajectory (list of records) drawn from ``rng``; ``system`` goes to :func:`build_system`."""
    return relax(build_system(rng, **system), num_steps=num_steps, fmax=fmax, optimizer=optimizer, sid=sid)


@GENERATORS.register("catalyst")
def generate_catalyst(*, num_train: int = 100, num_val: int = 0, num_test: int = 20, seed: int = 0,
                      metals: tuple[str, ...] = EMT_METALS, facets: tuple[str, ...] = FACETS,
                      adsorbates: tuple[str, ...] = tuple(ADSORBATES), size: int = 2, layers: int = 4,
                      fixed_layers: int = 2, vacuum: float = 8.0, height: float = 1.8, displacement: float = 0.05,
                      num_steps: int = 10, fmax: float = 0.0, optimizer: Literal["BFGS", "FIRE"] = "BFGS",
                      shard: tuple[int, int] | None = None) -> Any:
    """EMT relaxation trajectories of adsorbates on metal slabs (kind ``"atoms"``, one record per frame).

    Args:
        num_train, num_val, num_test: trajectories per split (each gives up to ``num_steps + 1`` records).
        seed: run seed; trajectory ``k`` of a split depends on ``(seed, split, k)`` only.
        metals, facets, adsorbates: the random choices (see :data:`EMT_METALS`, :data:`ADSORBATES`).
        size: surface cells per side; layers: metal layers; fixed_layers: bottom layers held fixed.
        vacuum: vacuum (Å) above and below the slab; height: adsorbate height (Å) above the top layer.
        displacement: std (Å) of the random displacement of every free atom.
        num_steps: optimiser steps (frames = ``num_steps + 1`` when ``fmax = 0``).
        fmax: stop early below this force (eV/Å); 0 runs all steps (record counts then known in advance).
        optimizer: ``"BFGS"`` or ``"FIRE"``.
        shard: ``(i, n)``: produce only the trajectories shard ``i`` of ``n`` owns.
    """
    _ase()
    metals, facets, adsorbates = tuple(metals), tuple(facets), tuple(adsorbates)
    for name, values, allowed in (("metals", metals, EMT_METALS), ("facets", facets, FACETS),
                                  ("adsorbates", adsorbates, tuple(ADSORBATES))):
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise ConfigError(f"{name}: expected a non-empty list from {list(allowed)}, got {list(values)}")
    for name, value in (("size", size), ("layers", layers), ("num_steps", num_steps)):
        positive(name, value, int)
    if not isinstance(fixed_layers, int) or not 0 <= fixed_layers < layers:
        raise ConfigError(f"fixed_layers: expected an int in [0, layers={layers}), got {fixed_layers!r}")
    if fmax < 0:
        raise ConfigError(f"fmax: expected >= 0, got {fmax!r}")
    if optimizer not in ("BFGS", "FIRE"):
        raise ConfigError(f"optimizer: expected 'BFGS' or 'FIRE', got {optimizer!r}")
    sizes = split_sizes(num_train, num_val, num_test)
    system = dict(metals=metals, facets=facets, adsorbates=adsorbates, size=size, layers=layers,
                  fixed_layers=fixed_layers, vacuum=vacuum, height=height, displacement=displacement)
    options = dict(num_train=num_train, num_val=num_val, num_test=num_test, seed=seed, **system,
                   num_steps=num_steps, fmax=fmax, optimizer=optimizer)

    def make(split: str, k: int) -> list[Any]:
        return catalyst_trajectory(sample_rng(seed, split, k), k, num_steps=num_steps, fmax=fmax,
                                   optimizer=optimizer, **system)

    return build_spec(kind="atoms", make=make, sizes=sizes, shard=shard, source="generator:catalyst",
                      config={"generator": "catalyst", **jsonable(options)},
                      records_per_sample=num_steps + 1 if fmax == 0 else None)
