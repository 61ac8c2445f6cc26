"""The wheel holds exactly the ``sciml`` tree (gnn/, operators/, datasets/ mapped under it), installs into a fresh
venv outside the checkout, imports every subpackage, runs ``sciml --help``, and leaves a top-level ``datasets``
package (HuggingFace-style) that lives beside it untouched, also after uninstalling."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {"sciml": "sciml", "sciml/gnn": "gnn", "sciml/operators": "operators", "sciml/datasets": "datasets"}

pytestmark = pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source checkout")


def _source_packages() -> set[str]:
    """Every package directory of the checkout, as its installed path (independent of setup.py's logic)."""
    out = set()
    for installed, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).as_posix()
            out.add(installed if rel == "." else f"{installed}/{rel}")
    return out


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONSAFEPATH"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _fake_hf_datasets_wheel(tmp: Path) -> Path:
    src = tmp / "fake_hf"
    (src / "datasets").mkdir(parents=True)
    (src / "datasets" / "__init__.py").write_text("HF_MARKER = 'huggingface'\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "datasets"\nversion = "99.0"\n[tool.setuptools]\npackages = ["datasets"]\n')
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(src)], cwd=tmp)
    return next((tmp / "dist").glob("datasets-*.whl"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
         cwd=out)
    return next(out.glob("sciml-*.whl"))


def test_wheel_contains_exactly_the_sciml_tree(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"sciml"}
    packaged = {os.path.dirname(n) for n in names if n.endswith("/__init__.py")}
    assert packaged == _source_packages()
    assert not any(n.startswith(("tests/", "benchmarks/")) or "/tests/" in n for n in names)
    assert "sciml/py.typed" in names


def test_wheel_installs_beside_hf_datasets(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    # Dependencies (torch, PyG, ...) come from the running environment; sciml itself only from the wheel.
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index"]
    _run(pip + [str(_fake_hf_datasets_wheel(tmp_path))], cwd=tmp_path)
    hf_init = site / "datasets" / "__init__.py"
    before = hf_init.read_bytes()
    _run(pip + [str(wheel)], cwd=tmp_path)

    code = ("import importlib, pkgutil, sciml, datasets\n"
            "assert datasets.HF_MARKER == 'huggingface', datasets.__file__\n"
            "assert sciml.__file__.startswith(%r), sciml.__file__\n"
            "mods = [m.name for m in pkgutil.walk_packages(sciml.__path__, 'sciml.') if m.ispkg]\n"
            "[importlib.import_module(m) for m in mods]\n"
            "print(' '.join(sorted(mods)))\n") % str(site)
    imported = _run([str(py), "-c", code], cwd=tmp_path).split()
    assert {"sciml.gnn", "sciml.operators", "sciml.datasets", "sciml.sparse", "sciml.train"} <= set(imported)
    help_text = _run([str(env_dir / "bin" / "sciml"), "--help"], cwd=tmp_path)
    assert "usage: sciml" in help_text and "demo" in help_text
    assert hf_init.read_bytes() == before

    _run([sys.executable, "-m", "pip", "--python", str(py), "uninstall", "-q", "-y", "sciml"], cwd=tmp_path)
    assert hf_init.read_bytes() == before
    _run([str(py), "-c", "import datasets; assert datasets.HF_MARKER == 'huggingface'"], cwd=tmp_path)


def test_source_folders_refuse_top_level_import(tmp_path):
    """With the checkout root on sys.path, `import datasets` must fail loudly, not silently load our folder."""
    for name in ("datasets", "gnn", "operators"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONSAFEPATH": "1"})
        assert proc.returncode != 0
        assert f"source of `sciml.{name}`" in proc.stderr
