"""Import a standalone script (a file of ``benchmarks/``) as a module, for tests of its functions."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

__all__ = ["load_script"]


def load_script(path: str | os.PathLike) -> ModuleType:
    """Execute the Python file ``path`` as a fresh module named ``_sciml_script_<stem>`` and return it (not added
    to ``sys.modules``; the script's ``if __name__ == "__main__"`` block does not run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such script")
    spec = importlib.util.spec_from_file_location(f"_sciml_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
