"""Smoke test of benchmarks/data_io.py --quick (slow: about half a minute on 2 cores; no timing asserted).

Parts whose real data (../shared/data) is absent are skipped by the script itself; the generators always run."""
import importlib.util
from pathlib import Path

import pytest

from sciml.testing import run_quick

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "data_io.py"
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.slow
def test_data_io_quick_benchmark_runs(tmp_path):
    out = tmp_path / "data_io_quick.json"
    result = run_quick(SCRIPT, out, cwd=tmp_path, timeout=300)
    assert result["benchmark"] == "data_io" and result["quick"] is True
    assert "torch" in result["machine"] and "h5py" in result["machine"] and "load_average" in result["machine"]
    assert {g["generator"] for g in result["generators"]} == {"darcy", "burgers"}
    assert all(g["samples_per_s"] > 0 for g in result["generators"])
    kinds = {r["kind"] for r in result["readers"]}
    assert "fields" in kinds  # the generated Darcy set needs no shared data
    for r in result["readers"]:
        assert {"ours_w0", "ours_w2"} <= set(r["peers"]) and len(r["peers"]) >= 3
        assert all(p["samples_per_s"] > 0 and p["runs"] >= 2 for p in r["peers"].values())
        assert r["num_samples"] > 0 and r["ours_w0_over_best_other"] > 0
    if (DATA / "tudataset" / "PROTEINS").is_dir():
        assert "graphs" in kinds
    if (DATA / "molecular" / "oc20_relaxation_trajs").is_dir():
        assert "atoms" in kinds
    pm = result["peak_memory"]
    assert pm["baseline_rss_bytes"] > 0 if pm["cases"] else pm.get("skipped")
    for c in pm["cases"]:
        assert c["peak_rss_bytes"] >= c["materialised_bytes"] > 0 and isinstance(c["within_bound"], bool)
    # the report renders it
    spec = importlib.util.spec_from_file_location("_sciml_bench_report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    text = "\n".join(report.RENDERERS["data_io"](result, out.name))
    assert "Data I/O" in text and "ours_w0" in text
