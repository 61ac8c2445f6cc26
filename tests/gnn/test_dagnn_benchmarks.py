"""The DAGNN configs agree with the reproduction script's settings; the reproduction script resumes; the speed
benchmark's peers compute the same model. Real-data smoke runs skip without ../shared/data."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from sciml.config import load_config

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SCIML_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
CONFIG_OF = {"dagnn_cora": ("cora_fixed", "dagnn"), "dagnn_cora_random": ("cora_random", "dagnn"),
             "dagnn_citeseer": ("citeseer_fixed", "dagnn"), "dagnn_citeseer_random": ("citeseer_random", "dagnn"),
             "dagnn_photo": ("photo_random", "dagnn"), "dagnn_cs": ("cs_random", "dagnn"),
             "mlp_cora": ("cora_fixed", "mlp"), "gcn_cora": ("cora_fixed", "gcn"),
             "appnp_cora": ("cora_fixed", "appnp"), "sgc_cora": ("cora_fixed", "sgc")}


def load_script(name):
    path = ROOT / "benchmarks" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module   # PyG's MessagePassing inspects its defining module's globals
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.mark.parametrize("stem", sorted(CONFIG_OF))
def test_config_agrees_with_reproduction_settings(stem):
    repro = load_script("dagnn_reproduction")
    setting, model = CONFIG_OF[stem]
    cfg = load_config(ROOT / "configs" / f"{stem}.yaml", ["data.path=x.h5"])
    ref = repro.config_for(setting, model, "x.h5", 0)
    for key in ("device", "progress", "log_every"):   # how a script run prints, not what it trains
        ref["trainer"].pop(key)
    expected = load_config(ref, ["trainer.log_every=100"])
    assert cfg == expected


def test_config_without_path_names_the_key():
    from sciml.errors import ConfigError

    with pytest.raises(ConfigError, match="data.path"):
        load_config(ROOT / "configs" / "dagnn_cora.yaml")


def test_every_dagnn_config_is_checked():
    stems = {p.stem for p in (ROOT / "configs").glob("*.yaml")
             if p.stem.split("_")[0] in ("dagnn", "mlp", "gcn", "appnp", "sgc") and p.stem != "gcn_community"}
    assert stems == set(CONFIG_OF)


def test_reproduction_script_runs_and_resumes(tmp_path, capsys):
    if not (SHARED / "planetoid" / "Cora").is_dir():
        pytest.skip(f"needs the shared data at {SHARED}")
    repro = load_script("dagnn_reproduction")
    out = tmp_path / "r.json"
    argv = ["--runs", "2", "--settings", "cora_random", "--models", "dagnn,sgc", "--max-epochs", "3",
            "--data-root", str(SHARED), "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    repro.main(argv)
    first = json.loads(out.read_text())
    assert len(first["runs"]) == 4
    assert {(r["model"], r["run"]) for r in first["runs"]} == {("dagnn", 0), ("dagnn", 1), ("sgc", 0), ("sgc", 1)}
    assert first["summary"]["cora_random"]["dagnn"]["runs"] == 2
    assert first["summary"]["cora_random"]["dagnn"]["paper_mean"] == 83.7
    assert "cpu" in first["machines"][0] and first["machines"][0]["threads"] == 1
    assert "run   1" in capsys.readouterr().out
    repro.main(argv)                                   # everything recorded: nothing runs again
    second = json.loads(out.read_text())
    assert second["runs"] == first["runs"] and len(second["machines"]) == 2
    repro.main(argv[:1] + ["3"] + argv[2:])            # one more run per model
    assert len(json.loads(out.read_text())["runs"]) == 6


def test_speed_benchmark_smoke(tmp_path):
    """Peers are checked equal to ours inside the script before timing; a synthetic graph stands in without data."""
    speed = load_script("dagnn_speed")
    out = tmp_path / "s.json"
    result = speed.main(["--quick", "--graphs", "cora", "--data-root", str(tmp_path / "no_data"),
                         "--synthetic-nodes", "400", "--out", str(out)])
    row = result["results"][0]
    assert row["source"].startswith("synthetic")
    assert set(row["median_ms"]) >= {"ours", "pyg_mp", "pyg_csr"}
    assert json.loads(out.read_text())["results"][0]["graph"] == "cora"
