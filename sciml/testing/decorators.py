"""pytest decorators in the PyG manner (``withPackage``, ``withDevice``)."""
from __future__ import annotations

import importlib.util

import pytest
import torch


def with_package(*names: str):
    """Skip the test unless every named package is importable."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs package(s): {', '.join(missing)}")


def requires_cuda(fn):
    """Skip unless a CUDA device is present (CI never has one; the device machine does)."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(fn))


def available_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def on_devices(fn):
    """Parametrise a test over ``device`` in ("cpu", "cuda"); the cuda case is skipped without a GPU."""
    params = [pytest.param("cpu"),
              pytest.param("cuda", marks=[pytest.mark.cuda,
                                          pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])]
    return pytest.mark.parametrize("device", params)(fn)
