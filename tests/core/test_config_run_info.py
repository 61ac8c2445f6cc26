"""sciml.config.run_info: config.yaml + run_info.json in the run directory, git provenance, atomic writes."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from typing import Any

import pytest

import sciml
from sciml.config import (ExperimentSchema, Registry, Target, atomic_write_text, git_info, load_config,
                          write_run_info)
from sciml.config import run_info as run_info_module
from sciml.errors import ConfigError

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


class Model:
    def __init__(self, width: int = 4, tag: Any = None) -> None:
        self.width = width


def trainer(model: Any, *, lr: float = 0.1, run_dir: str = "runs/x") -> dict:
    return {"model": model, "lr": lr, "run_dir": run_dir}


@pytest.fixture()
def schema() -> ExperimentSchema:
    models = Registry("model")
    models.register("toy", Model)
    return ExperimentSchema(model=models, data=None, task=None, trainer=Target(trainer, runtime=("model",)))


def git(cwd: pathlib.Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def test_write_run_info_contents(tmp_path, schema, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    cfg = load_config({"model": {"name": "toy", "width": 8}}, ["trainer.lr=1e-3"], schema=schema)
    run_dir = tmp_path / "runs" / "demo"  # created on demand
    info = write_run_info(run_dir, cfg, argv=["sciml", "train", "exp.yaml", "trainer.lr=1e-3"])

    assert load_config(run_dir / "config.yaml", schema=schema) == cfg  # the resolved config loads again
    assert "width: 8" in (run_dir / "config.yaml").read_text()
    on_disk = json.loads((run_dir / "run_info.json").read_text())
    assert on_disk == info
    assert info["sciml_version"] == sciml.__version__
    assert info["command"] == "sciml train exp.yaml trainer.lr=1e-3"
    assert info["argv"][-1] == "trainer.lr=1e-3"
    assert info["python_version"].count(".") == 2 and info["hostname"]
    assert info["torch_version"]  # torch is installed in the test environment
    assert info["time_utc"].endswith("+00:00")
    assert info["slurm"] == {"SLURM_JOB_ID": "4242"}
    assert set(info) >= {"git_hash", "git_dirty", "cwd"}
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "run_info.json"]  # no temp files left


@needs_git
def test_git_hash_matches_the_checkout_sciml_is_imported_from():
    package_dir = pathlib.Path(sciml.__file__).resolve().parent
    probe = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True, text=True)
    info = git_info()
    if probe.returncode != 0:
        assert info == {"git_hash": "unknown", "git_dirty": None}
    else:
        assert info["git_hash"] == probe.stdout.strip() and isinstance(info["git_dirty"], bool)


@needs_git
def test_git_info_in_a_fresh_repository(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", "pkg/mod.py")
    git(repo, "commit", "-q", "-m", "init")
    head = git(repo, "rev-parse", "HEAD")

    assert git_info(repo / "pkg") == {"git_hash": head, "git_dirty": False}
    (repo / "pkg" / "untracked.py").write_text("")
    assert git_info(repo / "pkg")["git_dirty"] is False  # untracked files do not count
    (repo / "pkg" / "mod.py").write_text("x = 2\n")
    assert git_info(repo / "pkg") == {"git_hash": head, "git_dirty": True}

    # A directory inside the work tree with nothing tracked (a virtualenv's site-packages, say) is not "this
    # checkout": reporting the enclosing repository's hash would be wrong.
    (repo / "venv" / "site-packages").mkdir(parents=True)
    assert git_info(repo / "venv" / "site-packages") == {"git_hash": "unknown", "git_dirty": None}
    outside = tmp_path / "outside"
    outside.mkdir()
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=outside, capture_output=True).returncode != 0:
        assert git_info(outside) == {"git_hash": "unknown", "git_dirty": None}  # not in any work tree
    assert git_info(tmp_path / "does-not-exist") == {"git_hash": "unknown", "git_dirty": None}


def test_git_info_without_git(tmp_path, monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(run_info_module.subprocess, "run", no_git)
    assert git_info(tmp_path) == {"git_hash": "unknown", "git_dirty": None}


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    target.write_text("old: 1\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(run_info_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new: 2\n")
    assert target.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]  # the temporary file was removed


def test_atomic_write_permissions_follow_umask(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_unwritable_config_writes_nothing(tmp_path, schema):
    cfg = load_config({"model": {"name": "toy"}}, schema=schema)
    cfg.model.tag = object()  # an `Any` field holding something YAML cannot express
    with pytest.raises(ConfigError, match=r"model.tag: object .* cannot be written as YAML"):
        write_run_info(tmp_path / "run", cfg)
    assert not (tmp_path / "run").exists()
