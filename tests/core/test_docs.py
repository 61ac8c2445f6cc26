"""Every Python example in README.md and docs/*.md runs as written (in a fresh interpreter, in an empty directory
that has the shared data at ``../shared`` like a checkout), except blocks that declare themselves a sketch on their
first line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(doc, i, code) for doc in DOCS if doc.exists()
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
          if not code.startswith("# sketch")]


def test_there_are_examples_to_run():
    assert any(doc.name == "README.md" for doc, _, _ in BLOCKS)


@pytest.mark.parametrize("doc, index, code", BLOCKS, ids=[f"{d.name}#{i}" for d, i, _ in BLOCKS])
def test_example_runs(doc, index, code, tmp_path):
    if "../shared" in code:
        if not (SHARED / "data").is_dir():
            pytest.skip(f"needs the shared data at {SHARED / 'data'}")
        (tmp_path / "shared").symlink_to(SHARED)
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONSAFEPATH": "1"})
    assert proc.returncode == 0, f"{doc.name} python block {index} failed:\n{proc.stderr[-3000:]}"
