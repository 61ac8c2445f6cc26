"""Smoke test of benchmarks/sparse_ops.py --quick (slow: about half a minute on 2 cores; no timing asserted)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sparse_ops.py"


@pytest.mark.slow
def test_sparse_ops_quick_benchmark_runs(tmp_path):
    out = tmp_path / "sparse_ops_quick.json"
    env = dict(os.environ, PYTHONSAFEPATH="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["quick"] and result["results"]
    peers = {"ours", "torch_coo", "torch_csr", "pyg_spmm", "pyg_mp", "index_add"}
    for row in result["results"]:
        assert set(row["median_ms"]) == peers and row["mode"] in ("fwd", "fwd_bwd")
        assert all(v > 0 for v in row["median_ms"].values())
    assert result["bandwidth_reference"]["gb_per_s_read_plus_write"] > 0
    assert "torch" in result["machine"] and "allocator_env" in result["machine"]
