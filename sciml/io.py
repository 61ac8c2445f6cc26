"""Atomic file writes shared by checkpoints, metrics files, ``summary.json``, ``config.yaml`` and ``run_info.json``.

A file is written to a temporary file in the same directory (``.<name>.tmp-<pid>-<random>``), flushed, fsync'ed
and renamed over the target with :func:`os.replace`, then the directory is fsync'ed: a reader sees the old file or
the new one, never a partial one. On any error the temporary file is removed and an existing target is left alone.
A process killed mid-write (SIGKILL) leaves its temporary file behind; :func:`remove_stale_temp_files` removes
those of processes that are gone.

No torch import here: :mod:`sciml.config` uses these helpers and stays light.
"""
from __future__ import annotations

import os
import pathlib
import re
import uuid
from typing import IO, Any, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "temp_path_for", "remove_stale_temp_files",
           "fsync_file", "fsync_dir", "pid_alive"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?:-[0-9a-f]+)?$")


def temp_path_for(path: str | os.PathLike) -> pathlib.Path:
    """A fresh temporary path next to ``path``: ``.<name>.tmp-<pid>-<8 hex digits>``."""
    path = pathlib.Path(path)
    return path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync ``directory`` (after a rename or unlink in it), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """fsync the closed file at ``path`` (e.g. one written by a library such as h5py), before renaming it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running on this host (``True`` for this process)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: exists, owned by someone else
        return True
    return True


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], Any], *, binary: bool = True) -> pathlib.Path:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it and rename it to ``path``.

    The parent directory is created if needed; permissions follow the umask (``0o666 & ~umask``, like
    :func:`open`). On any error (also ``KeyboardInterrupt``) the temporary file is removed and an existing file at
    ``path`` is left untouched.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(text), binary=False)


def remove_stale_temp_files(directory: str | os.PathLike, *, older_than: float | None = None) -> list[pathlib.Path]:
    """Delete temporary files of :func:`atomic_write` in ``directory`` left by processes that died mid-write.

    A temp file is stale when its writer's pid is not running on this host (or is this process, which is writing
    nothing while this is called), or when it was last modified before ``older_than`` (a ``time.time()`` value,
    e.g. the newest checkpoint's mtime: a live writer's temp file is always newer). Returns the deleted paths.
    """
    d = pathlib.Path(directory)
    if not d.is_dir():
        return []
    removed = []
    for name in os.listdir(d):
        m = _TEMP.match(name)
        if not m:
            continue
        p = d / name
        try:
            pid = int(m.group("pid"))  # our own pid counts as dead: we write nothing while cleaning up
            dead = pid == os.getpid() or not pid_alive(pid)
            if dead or (older_than is not None and p.stat().st_mtime < older_than):
                p.unlink()
                removed.append(p)
        except FileNotFoundError:
            pass
    return removed
