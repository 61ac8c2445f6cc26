r"""Energy/force training data from ASE-readable files, for configs (``data: {name: atoms, ...}``) and scripts.

:func:`atoms_data` reads trajectories (``.traj``, ``.extxyz``, ``.db``, anything ``ase.io`` reads; a file or a
folder of files) with the ASE converter (:func:`sciml.datasets.sources.ase_atoms.atoms_to_data`: positions,
atomic numbers, cell, pbc, FixAtoms as ``fixed``, OC20 tags rebuilt when the file stores none), splits the frames,
and returns ``{"train": AtomsFrames, "val": AtomsFrames}``. Two split protocols:

* ``"blocks"`` (default; *in-distribution*, every trajectory in both splits): each trajectory is cut into blocks of
  ``block`` consecutive frames; every ``val_every``-th block is validation (starting at block ``val_offset``, or at
  a block drawn per trajectory with ``val_offset="random"``) and the ``gap`` training frames on each side of a
  validation block are dropped, so that no training frame is a near-copy of a neighbouring validation frame
  (consecutive relaxation frames differ little).
* ``"files"`` (*out-of-distribution*, unseen systems): ``val_files`` whole trajectories are held out, chosen from the
  last file backwards among those whose elements all occur in the remaining training files
  (:func:`covered_split`).

Energies: with ``reference="linear"`` per-element reference energies are fitted on the training frames by least
squares (:func:`~sciml.gnn.gemnet_oc.task.fit_energy_normalizer`) and subtracted from every frame (``energy``
becomes the residual; the total stays in ``energy_total``), the analogue of OC20's referenced energies. Metrics on
residuals equal those on totals with these references added back.

:func:`fit_scale_file` fits the scale factors of a config's model on its training data and writes the
``model.scale_file`` (fairchem's ``fit.py`` step).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from sciml.errors import ConfigError

__all__ = ["atoms_data", "AtomsFrames", "block_split", "covered_split", "default_atoms_path", "fit_scale_file",
           "OC20_TRAJECTORIES"]

#: The OC20 relaxation trajectories, relative to the shared data folder.
OC20_TRAJECTORIES = Path("molecular") / "oc20_relaxation_trajs"


class AtomsFrames(list):
    """A list of structures (PyG ``Data``) with ``sizes`` (atoms per structure: ``batch_sampler="balanced"``
    reads them without touching the samples), the subtracted per-element references ``atom_ref`` and the files
    the frames came from (``sources``: file name per frame)."""

    def __init__(self, items: Sequence[Any] = (), *, atom_ref: torch.Tensor | None = None,
                 sources: Sequence[str] = ()) -> None:
        super().__init__(items)
        self.sizes = np.array([int(d.num_nodes) for d in self], dtype=np.int64)
        self.atom_ref = atom_ref
        self.sources = list(sources)


def default_atoms_path() -> Path | None:
    """The OC20 trajectories of the shared data folder (``$SCIML_SHARED_DATA``, else ``../shared/data`` beside the
    working directory or beside the checkout), or :obj:`None`."""
    roots = [os.environ.get("SCIML_SHARED_DATA"), Path.cwd().parent / "shared" / "data",
             Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    for root in roots:
        if root and (Path(root) / OC20_TRAJECTORIES).is_dir():
            return Path(root) / OC20_TRAJECTORIES
    return None


def block_split(num_frames: int, *, block: int, val_every: int, gap: int = 0, offset: int = 0
                ) -> tuple[list[int], list[int]]:
    """Blocked split of one trajectory's frames ``0..num_frames-1``: block ``b`` (frames ``b*block ...``) is
    validation when ``b % val_every == offset % val_every``; training frames closer than ``gap + 1`` frames to a
    validation frame are dropped. Returns ``(train, val)`` frame indices."""
    for name, v, lo in (("block", block, 1), ("val_every", val_every, 2), ("gap", gap, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ConfigError(f"data.{name} must be an integer >= {lo}, got {v!r}")
    is_val = np.array([(i // block) % val_every == offset % val_every for i in range(num_frames)], dtype=bool)
    near = np.zeros(num_frames, dtype=bool)
    for i in np.flatnonzero(is_val):
        near[max(0, i - gap):i + gap + 1] = True
    train = [i for i in range(num_frames) if not near[i] and not is_val[i]]
    return train, np.flatnonzero(is_val).tolist()


def covered_split(elements: Sequence[set], num_val: int) -> list[int]:
    """Up to ``num_val`` held-out systems, taken from the last backwards, such that every element of every held-out
    system occurs in some remaining system (so a reference energy exists for it). Returns their indices."""
    held: list[int] = []
    for k in reversed(range(len(elements))):
        if len(held) == num_val:
            break
        trial = held + [k]
        rest = [e for i, e in enumerate(elements) if i not in trial]
        seen = set().union(*rest) if rest else set()
        if rest and all(elements[i] <= seen for i in trial):
            held = trial
    return sorted(held)


def _read_files(path: Path, pattern: str, index: str, tags: str, energy_key: str, forces_key: str,
                max_files: int | None) -> list[tuple[str, list]]:
    from sciml.datasets.sources.ase_atoms import _files, _iter_file, atoms_to_data

    files = _files(path, pattern)
    if max_files is not None:
        files = files[:max_files]
    out = []
    for f in files:
        frames = [atoms_to_data(atoms, tags=tags, energy_key=energy_key, forces_key=forces_key,
                                where=f"{f} frame {k}") for k, atoms in _iter_file(f, index)]
        for d in frames:
            if getattr(d, "energy", None) is None or getattr(d, "forces", None) is None:
                raise ConfigError(f"data.path: {f} has frames without {energy_key!r}/{forces_key!r} (energy and "
                                  "forces are the training targets)")
        out.append((f.name, frames))
    return out


def atoms_data(path: str | None = None, *, split: Literal["blocks", "files"] = "blocks", block: int = 10,
               val_every: int = 5, gap: int = 1, val_files: int = 4, index: str = ":", pattern: str = "*",
               max_files: int | None = None, tags: Literal["auto", "source", "oc20"] = "auto",
               reference: Literal["linear", "none"] = "linear", energy_key: str = "energy",
               forces_key: str = "forces", float32: bool = True, val_offset: int | Literal["random"] = 0,
               seed: int = 0) -> dict[str, AtomsFrames]:
    """Train/validation structures with energies and forces from ASE-readable files (see the module doc).

    Args:
        path (str, optional): a file or a folder of files. (default: the OC20 trajectories of the shared data,
            :func:`default_atoms_path`)
        split (str): ``"blocks"`` (frames of every trajectory) or ``"files"`` (whole trajectories held out).
            (default: ``"blocks"``)
        block (int), val_every (int), gap (int): the ``"blocks"`` protocol (:func:`block_split`).
            (default: ``10``, ``5``, ``1``)
        val_files (int): trajectories held out by ``"files"`` (``0``: no validation split). (default: ``4``)
        index (str): frames of each file in ASE's syntax (``"::5"`` every fifth). (default: ``":"``)
        pattern (str): glob for the files of a folder. (default: ``"*"``)
        max_files (int, optional): only the first files (sorted by name).
        tags (str): the converter's tag rule. (default: ``"auto"``)
        reference (str): ``"linear"`` subtracts per-element reference energies fitted on the training frames;
            ``"none"`` keeps total energies. (default: ``"linear"``)
        energy_key, forces_key (str): where the file keeps them. (default: ``"energy"``, ``"forces"``)
        float32 (bool): positions, cells and forces as float32 (energies stay float64). (default: :obj:`True`)
        val_offset (int or str): which blocks of a trajectory are validation in the ``"blocks"`` protocol: blocks
            ``b`` with ``b % val_every == val_offset % val_every`` (``0``: the first block, i.e. the start of every
            relaxation, is validation); ``"random"``: an offset drawn per trajectory from ``seed``.
            (default: ``0``)
        seed (int): seed of the ``"random"`` offsets. (default: ``0``)

    Returns:
        dict: ``{"train": AtomsFrames, "val": AtomsFrames or None}``.
    """
    if path is None:
        found = default_atoms_path()
        if found is None:
            raise ConfigError(f"data.path: not given, and no shared OC20 trajectories ({OC20_TRAJECTORIES}) under "
                              "$SCIML_SHARED_DATA or ../shared/data; set data.path to a trajectory file or folder")
        path = str(found)
    if not Path(path).exists():
        raise ConfigError(f"data.path: {path!r} does not exist")
    if split not in ("blocks", "files"):
        raise ConfigError(f"data.split must be 'blocks' or 'files', got {split!r}")
    if reference not in ("linear", "none"):
        raise ConfigError(f"data.reference must be 'linear' or 'none', got {reference!r}")
    systems = _read_files(Path(path), pattern, index, tags, energy_key, forces_key, max_files)
    train, val, train_src, val_src = [], [], [], []
    if split == "blocks":
        if val_offset == "random":
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ConfigError(f"data.seed must be an integer, got {seed!r}")
            rng = np.random.default_rng(seed)
            offsets = [int(rng.integers(val_every)) if isinstance(val_every, int) and val_every > 0 else 0
                       for _ in systems]
        elif isinstance(val_offset, bool) or not isinstance(val_offset, int) or val_offset < 0:
            raise ConfigError(f"data.val_offset must be an integer >= 0 or 'random', got {val_offset!r}")
        else:
            offsets = [val_offset] * len(systems)
        for (name, frames), offset in zip(systems, offsets):
            tr, va = block_split(len(frames), block=block, val_every=val_every, gap=gap, offset=offset)
            train += [frames[i] for i in tr]
            val += [frames[i] for i in va]
            train_src += [name] * len(tr)
            val_src += [name] * len(va)
    else:
        if isinstance(val_files, bool) or not isinstance(val_files, int) or val_files < 0:
            raise ConfigError(f"data.val_files must be an integer >= 0, got {val_files!r}")
        elements = [set(int(z) for d in frames for z in d.z.tolist()) for _, frames in systems]
        held = set(covered_split(elements, val_files))
        if val_files and not held:
            raise ConfigError(f"data.split='files': no trajectory can be held out with all its elements seen in "
                              f"training ({len(systems)} files)")
        for k, (name, frames) in enumerate(systems):
            (val if k in held else train).extend(frames)
            (val_src if k in held else train_src).extend([name] * len(frames))
    if not train:
        raise ConfigError(f"data: the {split!r} split of {path} leaves no training frame")
    atom_ref = None
    if reference == "linear":
        from sciml.gnn.gemnet_oc.task import fit_energy_normalizer

        atom_ref, _, _ = fit_energy_normalizer(train)
        for d in train + val:
            d.energy_total = d.energy.clone()
            d.energy = d.energy - atom_ref[d.z].sum().view(1)
    if float32:
        for d in train + val:
            d.pos, d.cell, d.forces = d.pos.float(), d.cell.float(), d.forces.float()
    return {"train": AtomsFrames(train, atom_ref=atom_ref, sources=train_src),
            "val": AtomsFrames(val, atom_ref=atom_ref, sources=val_src) if val else None}


def fit_scale_file(config: Any, out: str | os.PathLike, *, overrides: Sequence[str] = (), num_batches: int = 16,
                   batch_size: int | None = None) -> dict[str, float | None]:
    """Fit the scale factors of a config's model on ``num_batches`` batches of its training data (drawn at random
    with seed 0, :func:`~sciml.gnn.gemnet_oc.layers.scale_fit_batches`) and write them to ``out`` for
    ``model.scale_file`` (fairchem's ``fit.py`` step).

    Args:
        config: a YAML path, mapping or loaded config (``sciml.config.load_config``).
        out: the JSON file to write.
        overrides (sequence of str): ``key=value`` overrides.
        num_batches (int): batches per factor. (default: ``16``)
        batch_size (int, optional): structures per batch. (default: ``trainer.batch_size``)
    """
    from sciml.config import load_config
    from sciml.experiment import _splits
    from sciml.gnn.gemnet_oc.layers import fit_scale_factors, save_scale_factors, scale_fit_batches

    cfg = config if hasattr(config, "model") else load_config(config, list(overrides))
    if cfg.trainer.seed is not None:
        torch.manual_seed(cfg.trainer.seed)
    train, _ = _splits(cfg.data.build())
    kwargs = cfg.model.kwargs()
    kwargs["scale_file"] = None
    model = type(cfg.model).target_of()(**kwargs)
    batches = scale_fit_batches(train, num_batches, batch_size or cfg.trainer.batch_size)
    fit_scale_factors(model, batches, num_batches=num_batches)
    return save_scale_factors(model, out)


if __name__ == "__main__":  # python -m sciml.gnn.gemnet_oc.data CONFIG OUT [key=value ...]
    import sys

    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m sciml.gnn.gemnet_oc.data CONFIG SCALE_FILE.json [key=value ...]")
    fitted = fit_scale_file(sys.argv[1], sys.argv[2], overrides=sys.argv[3:])
    print(f"{sum(v is not None for v in fitted.values())} of {len(fitted)} scale factors fitted -> {sys.argv[2]}")
