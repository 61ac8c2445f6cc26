"""Smoke test of benchmarks/sparse_ops.py --quick (slow: about half a minute on 2 cores; no timing asserted)."""
import json
from pathlib import Path

import pytest

from sciml.testing import run_quick

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sparse_ops.py"


@pytest.mark.slow
def test_sparse_ops_quick_benchmark_runs(tmp_path):
    result = run_quick(SCRIPT, tmp_path / "sparse_ops_quick.json", cwd=tmp_path, timeout=300)
    assert result["quick"] and result["results"]
    peers = {"ours", "torch_coo", "torch_csr", "pyg_spmm", "pyg_mp", "index_add"}
    for row in result["results"]:
        assert set(row["median_ms"]) == peers and row["mode"] in ("fwd", "fwd_bwd")
        assert all(v > 0 for v in row["median_ms"].values())
    assert result["bandwidth_reference"]["gb_per_s_read_plus_write"] > 0
    assert "torch" in result["machine"] and "allocator_env" in result["machine"]


def _load(name, path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allocator_helpers():
    bench = _load("_sciml_sparse_ops_bench", SCRIPT)
    assert bench.allocator_label({}) == "default"
    assert bench.allocator_label({"GLIBC_TUNABLES": bench.TUNED_GLIBC}) == "tuned"
    assert bench.allocator_label({"GLIBC_TUNABLES": bench.TUNED_GLIBC, "LD_PRELOAD": "libtcmalloc.so"}) == "custom"
    assert bench.allocator_label({"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}) == "custom"
    assert bench.allocator_env("tuned")["GLIBC_TUNABLES"] == bench.TUNED_GLIBC
    assert "GLIBC_TUNABLES" not in bench.allocator_env("default")
    assert bench.default_alloc_path("res/sparse_ops_cpu.json") == "res/sparse_ops_cpu_default_alloc.json"
    argv = ["--quick", "--allocator", "both", "--out", "x.json", "--allocator=tuned", "--reps", "3"]
    assert bench._without_option(bench._without_option(argv, "--allocator"), "--out") == ["--quick", "--reps", "3"]


def _fake_result(allocator_env, allocator, scale):
    row = {"num_nodes": 10, "num_edges": 20, "features": 4, "mode": "fwd", "best_peer": "torch_csr",
           "median_ms": {"ours": 1.0, "torch_coo": 3.0, "torch_csr": 1.1, "pyg_spmm": 1.2, "pyg_mp": 5.0 * scale,
                         "index_add": 4.0 * scale}}
    row["best_peer_over_ours"], row["speedup_vs_pyg_mp"] = 1.1, 5.0 * scale
    machine = {"device": "cpu", "allocator_env": allocator_env}
    if allocator:
        machine["allocator"] = allocator
    return {"benchmark": "sparse_ops", "machine": machine, "results": [row],
            "bandwidth_reference": {"gb_per_s_read_plus_write": 10.0}}


def test_report_renders_both_allocators(tmp_path, monkeypatch):
    report = _load("_sciml_bench_report_sparse", SCRIPT.parent / "report.py")
    tuned = _fake_result({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296"},
                         None, 1.0)  # an older result without the label: derived from the environment
    default = _fake_result({"GLIBC_TUNABLES": None}, "default", 2.0)
    (tmp_path / "sparse_ops_cpu.json").write_text(json.dumps(tuned))
    (tmp_path / "sparse_ops_cpu_default_alloc.json").write_text(json.dumps(default))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    text = report.render()
    assert "(sparse_ops_cpu.json, tuned allocator)" in text
    assert "(sparse_ops_cpu_default_alloc.json, default allocator)" in text
    assert "Same benchmark under both allocators" in text
    assert "| 10 | 20 | 4 | fwd | 1 | 1 | 5 | 10 | 4 | 8 | 5.0 | 10.0 | 1.10 | 1.10 |" in text


@pytest.mark.slow
def test_sparse_ops_both_allocators_run(tmp_path):
    tuned = run_quick(SCRIPT, tmp_path / "sparse_ops_cpu.json", "--reps", "1", "--warmup", "0", "--budget", "0.2",
                      "--allocator", "both", cwd=tmp_path, timeout=300)
    default = json.loads((tmp_path / "sparse_ops_cpu_default_alloc.json").read_text())
    assert tuned["machine"]["allocator"] == "tuned" and default["machine"]["allocator"] == "default"
    assert tuned["machine"]["allocator_env"]["GLIBC_TUNABLES"]
    assert not default["machine"]["allocator_env"]["GLIBC_TUNABLES"]
    assert tuned["results"] and default["results"]
