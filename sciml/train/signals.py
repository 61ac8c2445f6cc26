"""Preemption: SIGUSR1/SIGTERM only set a flag; the Trainer checkpoints at the next step boundary and stops.

Exit status: a preempted :meth:`Trainer.fit` raises :class:`TrainingInterrupted`, a ``SystemExit`` with code
:data:`EXIT_PREEMPTED` (75, ``EX_TEMPFAIL`` of ``sysexits.h``: "temporary failure, try again"). Uncaught, the
process exits with status 75 and no traceback; caught, it carries the checkpoint path. With
``Trainer(on_preempt="return")`` fit returns its summary with ``status="preempted"`` and
``exit_code=EXIT_PREEMPTED`` instead.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from sciml.errors import SciMLError

__all__ = ["EXIT_OK", "EXIT_PREEMPTED", "TrainingInterrupted", "PreemptionFlag"]

EXIT_OK = 0
EXIT_PREEMPTED = 75


class TrainingInterrupted(SciMLError, SystemExit):
    """Training stopped on a preemption signal after writing a checkpoint.

    Attributes:
        code (int): :data:`EXIT_PREEMPTED`, the process exit status if uncaught.
        checkpoint (str | None): the checkpoint written at the step boundary (``None`` without a run directory).
        signal_name (str): the signal received.
        summary (dict): what :meth:`Trainer.fit` would have returned.
    """

    def __init__(self, message: str, *, checkpoint: str | None, signal_name: str,
                 summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = EXIT_PREEMPTED
        self.checkpoint, self.signal_name, self.summary = checkpoint, signal_name, summary or {}

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "training interrupted"


class PreemptionFlag:
    """Context manager installing SIGUSR1/SIGTERM handlers that only record the signal; previous handlers are
    restored on exit (the default action where the previous one was installed outside Python and cannot be
    restored). Outside the main thread no handler is installed (Python allows them only there).

    Args:
        signals (tuple): signals to catch. (default: ``(SIGUSR1, SIGTERM)``)
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGUSR1, signal.SIGTERM)) -> None:
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def is_set(self) -> bool:
        return self.received is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum  # nothing else: the handler may run between any two bytecodes

    def __enter__(self) -> "PreemptionFlag":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._previous.items():
            # None: the previous handler was not installed from Python (it cannot be put back); use the default
            signal.signal(s, signal.SIG_DFL if h is None else h)
        self._previous.clear()
