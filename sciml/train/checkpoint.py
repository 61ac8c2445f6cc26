"""Atomic checkpoint files, keep-last-K rotation and discovery of the newest valid checkpoint.

Layout: ``<run_dir>/checkpoints/step-XXXXXXXX.pt`` (8-digit count of completed optimizer steps). A file is
written to ``.step-XXXXXXXX.pt.tmp-<pid>-<random>`` in the same folder, flushed, fsync'ed and renamed
(:func:`sciml.io.atomic_write`), so a reader never sees a partial checkpoint; temp files left by a killed writer are
removed when the next run starts (:func:`remove_stale_temp_files`). Payloads hold tensors and plain Python containers only and load with
``torch.load(path, weights_only=True)``.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from sciml.errors import CheckpointError
from sciml.io import atomic_write
from sciml.io import remove_stale_temp_files as _remove_stale

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "checkpoint_path", "list_checkpoints", "save_checkpoint",
           "load_checkpoint", "find_latest_checkpoint", "resume_target", "prune_checkpoints", "remove_stale_temp_files"]

CHECKPOINT_FORMAT = "sciml-trainstate"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    return Path(directory) / f"step-{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every finished checkpoint file in ``directory``, oldest first (temp files ignored)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / name) for name in os.listdir(d) if (m := _NAME.match(name))]
    return sorted(found)


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`sciml.io.atomic_write`: temp file in the same folder,
    fsync, ``os.replace``, fsync of the folder).

    On any failure the temp file is removed and no file named ``path`` is created or changed.
    """
    return atomic_write(path, lambda f: torch.save(payload, f))


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove checkpoint temp files (``.step-*.pt.tmp-<pid>-*``) that a killed writer left in ``directory``: those
    whose pid is not running on this host, and those older than the newest checkpoint. Called by the Trainer (rank 0)
    when a run starts."""
    found = list_checkpoints(directory)
    newest = None
    if found:
        try:
            newest = found[-1][1].stat().st_mtime
        except FileNotFoundError:  # pragma: no cover - removed concurrently
            newest = None
    return _remove_stale(directory, older_than=newest)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load and check a TrainState checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, truncated, not a sciml TrainState, or from a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, pickle.UnpicklingError, EOFError, ... on damage
        raise CheckpointError(f"checkpoint '{path}' could not be read with weights_only=True ({type(exc).__name__}: {exc}); "
                              "it is truncated, corrupted or holds objects other than tensors and plain containers") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"'{path}' is not a sciml TrainState checkpoint (expected format "
                              f"'{CHECKPOINT_FORMAT}')")
    if int(payload.get("version", -1)) > CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint '{path}' has format version {payload.get('version')}, this sciml reads "
                              f"up to {CHECKPOINT_VERSION}; upgrade sciml")
    return payload


def find_latest_checkpoint(directory: str | os.PathLike, map_location: str | torch.device | None = "cpu"
                           ) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads, with its payload; ``None`` if there is none.

    Checkpoints that fail to load are skipped with a warning naming the file and the reason.
    """
    for _, path in reversed(list_checkpoints(directory)):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as exc:
            warnings.warn(f"skipping unreadable checkpoint: {exc}", RuntimeWarning, stacklevel=2)
    return None


def resume_target(resume: str | os.PathLike | None, run_dir: str | os.PathLike | None,
                  map_location: str | torch.device | None = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint a :class:`~sciml.train.Trainer` given these ``resume`` and ``run_dir`` arguments resumes from,
    with its payload, or ``None`` when it starts afresh: ``"never"``/``None`` never resume; ``"auto"`` takes the
    newest loadable checkpoint in ``run_dir/checkpoints`` (if any); anything else is a checkpoint path, loaded
    (a :class:`~sciml.errors.CheckpointError` if it does not load)."""
    if resume is None or str(resume) in ("never", "none", ""):
        return None
    if str(resume) == "auto":
        return None if run_dir is None else find_latest_checkpoint(Path(run_dir) / "checkpoints", map_location)
    return Path(resume), load_checkpoint(resume, map_location)


def prune_checkpoints(directory: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints (``keep_last <= 0`` keeps all); returns the deleted."""
    if keep_last <= 0:
        return []
    removed = []
    for _, path in list_checkpoints(directory)[:-keep_last]:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
