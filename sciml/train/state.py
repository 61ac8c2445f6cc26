"""The loop counters of a run; the full checkpoint payload is assembled by the Trainer around it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TrainState"]


@dataclass
class TrainState:
    """Where a run is. Every field is a plain Python value, so it round-trips through
    ``torch.load(weights_only=True)``.

    Attributes:
        step (int): optimizer steps completed (over all phases).
        epoch (int): epochs completed; also selects the sampler's permutation.
        batch_in_epoch (int): sampler position: index of the next batch of the current epoch on this rank.
        phase (int): block being trained by the greedy layer-local strategy (``0`` otherwise).
        phase_step (int), phase_epoch (int): steps / epochs completed in the current phase (budgets, cadences).
        finished (bool): the run ended (budget, early stopping); resuming it does nothing.
        stop_reason (str): ``"max_steps"``, ``"max_epochs"``, ``"early_stopping"`` or ``""``.
        elapsed_s (float): training wall time over all sessions of the run.
        last_train (dict), last_val (dict): the latest logged metrics.
        phase_history (list): per finished phase ``{"phase", "steps", "stop_reason", "best", "best_step"}``.
    """
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    phase: int = 0
    phase_step: int = 0
    phase_epoch: int = 0
    finished: bool = False
    stop_reason: str = ""
    elapsed_s: float = 0.0
    last_train: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    phase_history: list[dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            if hasattr(self, k):
                setattr(self, k, v)
