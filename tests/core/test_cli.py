"""The `sciml` command: help on every level, one-line errors with exit 2, train -> eval -> resume round trips
checked against an independent evaluation of the saved weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import sciml

from sciml.cli.main import main
from sciml.datasets.synthetic import community_graph
from sciml.gnn import GCN

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "gcn_community.yaml"
FAST = ["trainer.max_epochs=6", "trainer.checkpoint_every=3", "trainer.early_stopping=null",
        "trainer.progress=none", "data.num_nodes=240", "data.num_val=40"]


@pytest.mark.parametrize("argv", [[], ["train"], ["eval"], ["demo"], ["bench"]])
def test_help_on_every_level(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: sciml {' '.join(argv)}".rstrip())


@pytest.mark.parametrize("argv, fragment", [
    (["train", "missing.yaml"], "missing.yaml"),
    (["train", str(CONFIG), "trainer.max_epoch=3"], "trainer.max_epoch"),
    (["train", str(CONFIG), "model.name=gnc"], "gcn"),
    (["train", str(CONFIG), "trainer.lr=fast"], "trainer.lr"),
    (["eval", "no-such-run"], "no-such-run"),
    (["bench", "no_such_benchmark"], "no_such_benchmark"),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not (tmp_path / "runs").exists()  # nothing written for a config that does not load


def _independent_accuracy(run_dir: Path) -> dict[str, float]:
    """Rebuild data and model by hand (no Trainer, no config layer) and score the newest checkpoint's weights."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    data_kwargs = {k: v for k, v in cfg["data"].items() if k != "name"}
    data = community_graph(**data_kwargs)
    model = GCN(data.num_features, int(data.y.max()) + 1, hidden_channels=cfg["model"]["hidden_channels"],
                num_layers=cfg["model"]["num_layers"], dropout=cfg["model"]["dropout"])
    newest = sorted((run_dir / "checkpoints").glob("step-*.pt"))[-1]
    model.load_state_dict(torch.load(newest, weights_only=True)["model"])
    model.eval()
    pred = model(data.x, data.edge_index).argmax(-1)
    return {split: (pred[m] == data.y[m]).float().mean().item()
            for split, m in (("acc", data.val_mask), ("test_acc", data.test_mask))}


def test_train_eval_round_trip(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(CONFIG), "--run-dir", str(run_dir), *FAST]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 6 and Path(summary["run_dir"]) == run_dir
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["sciml_version"] == sciml.__version__ and info["argv"][1:3] == ["train", str(CONFIG)]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 6 and saved["model"]["name"] == "gcn"

    assert main(["eval", str(run_dir)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == json.loads((run_dir / "eval.json").read_text())
    reference = _independent_accuracy(run_dir)
    for key, value in reference.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6)


def test_train_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", str(CONFIG), "--run-dir", str(straight), *FAST]) == 0
    assert main(["train", str(CONFIG), "--run-dir", str(split), *FAST, "trainer.max_epochs=3"]) == 0
    assert main(["train", str(CONFIG), "--run-dir", str(split), *FAST]) == 0
    summary = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")
    assert summary["resumed_from"] is not None and summary["steps"] == 6
    a = torch.load(sorted((straight / "checkpoints").glob("*.pt"))[-1], weights_only=True)["model"]
    b = torch.load(sorted((split / "checkpoints").glob("*.pt"))[-1], weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_demo_runs_the_tour(tmp_path, capsys):
    assert main(["demo", "--quick", "--run-dir", str(tmp_path), "trainer.max_epochs=15", "trainer.progress=none"]) == 0
    out = capsys.readouterr().out
    for fragment in ("== 1. Config", "Train GCN", "Train DAGNN", "Train MLP", "val_acc", "SF (layer-local)",
                     "depth 2: test_acc", "config.yaml", "darcy.h5: ok", "MgNO (", "test relative L2",
                     "prediction NFE", "ernode", "RQGNN frozen filters", "test AUC",
                     "== 13. PINN", "uniform  relative L2", "aas      relative L2",
                     "== 14. What a run directory holds"):
        assert fragment in out
    import importlib.util
    if importlib.util.find_spec("ase") is not None:   # the GemNet-OC stop needs the optional ase
        assert "GemNet-OC (" in out and "gemnet_oc " in out
    for name in ("gcn", "dagnn", "mlp"):
        assert (tmp_path / name / "eval.json").is_file()
    # The Darcy file the tour wrote is a complete sciml-h5 file that reads back through h5py directly.
    import h5py
    with h5py.File(tmp_path / "darcy.h5", "r") as f:
        assert f.attrs["complete"] == 1 and f["train/fields/u"].shape == (16, 1, 32, 32, 1)


def test_bench_lists_the_benchmarks(capsys):
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert "sparse_ops" in out and "trainer_overhead" in out


def test_failed_run_exits_1_with_the_step_named(tmp_path, capsys):
    # A learning rate of 1e30 blows the GCN up within a few steps: the Trainer stops it, the CLI says why.
    assert main(["train", str(CONFIG), "--run-dir", str(tmp_path / "run"), *FAST, "trainer.lr=1e30"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite" in err and "at step" in err


def test_threads_option_and_slurm_allocation_set_torch_threads(tmp_path, capsys, monkeypatch):
    from sciml.cli.main import cpu_threads

    assert cpu_threads(3, {"OMP_NUM_THREADS": "2"}) == 3
    assert cpu_threads(None, {"OMP_NUM_THREADS": "2", "SLURM_CPUS_PER_TASK": "4"}) is None
    assert cpu_threads(None, {"SLURM_CPUS_PER_TASK": "4"}) == 4
    assert cpu_threads(None, {"SLURM_CPUS_PER_TASK": "x"}) is None and cpu_threads(None, {}) is None
    before = torch.get_num_threads()
    try:
        run_dir = tmp_path / "run"
        assert main(["--threads", "1", "train", str(CONFIG), "--run-dir", str(run_dir), *FAST]) == 0
        assert torch.get_num_threads() == 1
        assert json.loads((run_dir / "run_info.json").read_text())["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--threads", "0", "train", str(CONFIG)])
    assert "must be a positive integer, got '0'" in capsys.readouterr().err
