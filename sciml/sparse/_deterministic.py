"""Deterministic mode of the sparse kernels.

On CUDA, the default paths of several kernels (``index_add_``/``scatter_add_`` and the backward of
``index_select``) accumulate floating-point values with atomics, so the summation order, and hence the last bits of
the result, change from run to run. In deterministic mode every kernel in :mod:`sciml.sparse` takes a sorted,
segment-based path instead (sort the indices once, then reduce contiguous segments without atomics; backward passes
are gathers or transposed CSR products), which is bit-for-bit reproducible on the same device and inputs.

On CPU the default paths are already deterministic (CSR products parallelise over rows, scatter reductions are
computed in a fixed order); deterministic mode still switches :func:`~sciml.sparse.scatter` to the sorted path so
that the same code path is exercised on every device.

The mode is on when either :func:`deterministic` enabled it or :func:`torch.are_deterministic_algorithms_enabled`
is true. It does not itself call :func:`torch.use_deterministic_algorithms` (the trainer's deterministic mode does
that, together with ``CUBLAS_WORKSPACE_CONFIG``).
"""
from __future__ import annotations

import threading

import torch

# Device types whose default kernels (cuSPARSE SpMM, atomic index_add_/scatter_add_) are not bitwise reproducible:
# on these, deterministic mode reroutes SpMM to the sorted segment path. Read at call time by `atomic_device`, so
# tests can add "cpu" (monkeypatch) to run the CUDA path selection on a CPU-only machine.
ATOMIC_DEVICE_TYPES = frozenset({"cuda"})


class _State(threading.local):
    enabled = False  # class default: reading the flag in a fresh thread is a plain attribute lookup


_state = _State()
_torch_deterministic = torch.are_deterministic_algorithms_enabled


def _get_flag() -> bool:
    return _state.enabled


def is_deterministic() -> bool:
    r"""Whether the sparse kernels currently take their deterministic (sorted, atomic-free) paths.

    True when :class:`deterministic` enabled it in this thread, or when
    :func:`torch.are_deterministic_algorithms_enabled` is true.
    """
    return _state.enabled or _torch_deterministic()


def atomic_device(device: torch.device) -> bool:
    """Whether the default kernels on ``device`` may accumulate in a run-dependent order (see
    :data:`ATOMIC_DEVICE_TYPES`). SpMM takes its sorted segment path iff ``atomic_device(device) and
    is_deterministic()``."""
    return device.type in ATOMIC_DEVICE_TYPES


class deterministic:
    r"""Switch the sparse kernels to their deterministic (sorted, atomic-free) paths.

    Works both as a context manager, which restores the previous setting on exit, and as a plain call that sets the
    mode for the current thread (like :class:`torch.set_grad_enabled`):

    .. code-block:: python

        with deterministic():          # on inside the block
            out = scatter(src, index, dim_size=n)
        deterministic(True)            # on from now on
        deterministic(False)           # off again (torch's global flag still wins if it is set)

    Args:
        mode (bool, optional): Whether to enable deterministic mode. (default: :obj:`True`)
    """

    def __init__(self, mode: bool = True) -> None:
        self.prev = _get_flag()
        _state.enabled = bool(mode)

    def __enter__(self) -> "deterministic":
        return self

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev
