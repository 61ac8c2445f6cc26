"""Progress output that suits where it goes: a tqdm bar on a terminal, periodic plain lines in batch logs.

Never depends on ``rich``; if ``tqdm`` is missing the line printer is used everywhere.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "make_progress"]


def _fmt(metrics: dict[str, Any]) -> str:
    parts = []
    for k, v in metrics.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


class Progress:
    """No output (``progress="none"``, or ranks other than 0)."""

    def update(self, step: int, metrics: dict[str, Any] | None = None) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress(Progress):
    """One line per call to :meth:`update` that carries metrics, but at most one every ``min_interval_s``
    seconds except for messages (batch-job logs stay small)."""

    def __init__(self, total: int | None, *, stream: TextIO | None = None, min_interval_s: float = 0.0) -> None:
        self.total, self.stream, self.min_interval_s = total, stream or sys.stderr, min_interval_s
        self._t0 = time.perf_counter()
        self._last = -float("inf")

    def update(self, step: int, metrics: dict[str, Any] | None = None) -> None:
        if metrics is None:
            return
        now = time.perf_counter()
        if now - self._last < self.min_interval_s:
            return
        self._last = now
        total = f"/{self.total}" if self.total else ""
        self.stream.write(f"[sciml.train] step {step}{total} {now - self._t0:.1f}s {_fmt(metrics)}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(f"[sciml.train] {text}\n")
        self.stream.flush()


class BarProgress(Progress):
    """A tqdm bar advanced every step, metrics shown as postfix."""

    def __init__(self, total: int | None, initial: int = 0, *, stream: TextIO | None = None) -> None:
        from tqdm.auto import tqdm
        self._bar = tqdm(total=total, initial=initial, file=stream or sys.stderr, dynamic_ncols=True,
                         unit="step", mininterval=0.2)
        self._pos = initial

    def update(self, step: int, metrics: dict[str, Any] | None = None) -> None:
        if step > self._pos:
            self._bar.update(step - self._pos)
            self._pos = step
        if metrics is not None:
            self._bar.set_postfix_str(_fmt(metrics), refresh=False)

    def message(self, text: str) -> None:
        self._bar.write(f"[sciml.train] {text}")

    def close(self) -> None:
        self._bar.close()


def make_progress(kind: str, *, total: int | None, initial: int = 0, is_main: bool = True,
                  stream: TextIO | None = None) -> Progress:
    """``kind``: ``"auto"`` (bar if the stream is a TTY and tqdm is installed, else lines), ``"bar"``, ``"log"``
    or ``"none"``. Ranks other than 0 get no output."""
    if not is_main or kind == "none":
        return Progress()
    stream = stream or sys.stderr
    if kind == "auto":
        kind = "bar" if getattr(stream, "isatty", lambda: False)() else "log"
    if kind == "bar":
        try:
            return BarProgress(total, initial, stream=stream)
        except ImportError:
            kind = "log"
    return LineProgress(total, stream=stream)
