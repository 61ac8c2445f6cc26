"""sciml.testing's script helpers on small scripts written here: load_script imports without running __main__,
run_quick runs a real interpreter, passes the flags and environment, returns the JSON, and fails loudly."""
from __future__ import annotations

import json

import pytest

from sciml.testing import load_script, run_quick

SCRIPT = """
import json, os, sys
RAN = []
if __name__ == "__main__":
    args = sys.argv[1:]
    if "--fail" in args:
        print("about to fail", flush=True)
        sys.exit(3)
    out = args[args.index("--out") + 1]
    if "--no-output" not in args:
        with open(out, "w") as f:
            json.dump({"args": args, "threads": os.environ.get("OMP_NUM_THREADS"),
                       "safe": os.environ.get("PYTHONSAFEPATH"), "extra": os.environ.get("EXTRA"),
                       "cwd": os.getcwd()}, f)
"""


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "bench.py"
    path.write_text(SCRIPT)
    return path


def test_load_script_does_not_run_main(script):
    module = load_script(script)
    assert module.RAN == [] and module.__name__ == "_sciml_script_bench"
    with pytest.raises(FileNotFoundError, match="no such script"):
        load_script(script.parent / "missing.py")


def test_run_quick_passes_flags_env_and_cwd(script, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out.json"
    data = run_quick(script, out, "--seeds", "0", env={"EXTRA": "x"}, cwd=work)
    assert data == json.loads(out.read_text())
    assert data["args"] == ["--quick", "--out", str(out), "--seeds", "0"]
    assert (data["threads"], data["safe"], data["extra"]) == ("1", "1", "x")
    assert data["cwd"] == str(work)
    assert run_quick(script, out, quick=False)["args"] == ["--out", str(out)]


def test_run_quick_fails_with_the_output(script, tmp_path):
    with pytest.raises(AssertionError, match="exited 3:\n(.|\n)*about to fail"):
        run_quick(script, tmp_path / "out.json", "--fail")
    with pytest.raises(AssertionError, match="wrote no"):
        run_quick(script, tmp_path / "none.json", "--no-output")
