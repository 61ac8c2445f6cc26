#!/usr/bin/env bash
# Set up the project's virtual environment (.venv) and run one job in it.
#   bash scripts/bootstrap.sh demo   -> `sciml demo` (the tour on built-in data)
#   bash scripts/bootstrap.sh test   -> the test suite (what CI runs)
# Idempotent: a second call reuses .venv and only reinstalls the project (editable) if pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SCIML_VENV:-.venv}
TORCH_VERSION=${SCIML_TORCH_VERSION:-2.13.0}   # installed first: a bare `torch` would pull a multi-GB CUDA build

if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    echo "[bootstrap] installing torch==$TORCH_VERSION" >&2
    "$PY" -m pip install -q "torch==$TORCH_VERSION"
fi
stamp="$VENV/.sciml-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    echo "[bootstrap] installing sciml (editable) with test extras" >&2
    "$PY" -m pip install -q -e ".[test]"
    touch "$stamp"
fi
if [ "${1:-}" = "test" ] && [ ! -f "$VENV/.sciml-dgl" ]; then
    # the optional DGL extra, for its interop tests (they skip without it). Best effort: dgl 2.1.0 is the last Linux
    # wheel on PyPI (docs/dgl.md); torch is already pinned above, so nothing is up- or downgraded.
    echo "[bootstrap] installing the dgl extra" >&2
    if "$PY" -m pip install -q -e ".[test,dgl]"; then
        touch "$VENV/.sciml-dgl"
    else
        echo "[bootstrap] the dgl extra did not install: the DGL interop tests will skip" >&2
    fi
fi
if [ "${1:-}" = "test" ] && [ ! -f "$VENV/.sciml-fno" ]; then
    # neuraloperator, the FNO peer of the operator tests and benchmarks (docs/operators.md). --no-deps: its declared
    # dependencies (wandb, ...) are not needed to import it; these three are. Best effort: the FNO tests skip.
    echo "[bootstrap] installing neuraloperator (FNO peer)" >&2
    if "$PY" -m pip install -q --no-deps "neuraloperator==2.0.0" tensorly tensorly-torch opt-einsum; then
        touch "$VENV/.sciml-fno"
    else
        echo "[bootstrap] neuraloperator did not install: the FNO tests will skip" >&2
    fi
fi

job=${1:-}
shift || true
export PYTHONSAFEPATH=1   # never let the checkout root shadow an installed package (see docs/architecture.md)
case "$job" in
    demo) exec "$VENV/bin/sciml" demo "$@" ;;
    test)
        set +e
        "$VENV/bin/pytest" "$@"
        rc=$?
        if [ "$rc" -eq 5 ]; then echo "[bootstrap] pytest collected no tests" >&2; fi
        exit "$rc" ;;
    "") echo "[bootstrap] environment ready in $VENV" >&2 ;;
    *) echo "usage: bash scripts/bootstrap.sh [demo|test] [args...]" >&2; exit 2 ;;
esac
