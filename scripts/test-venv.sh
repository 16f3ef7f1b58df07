#!/usr/bin/env bash
# Test-only Python environment with the reference engines for differential tests (DuckDB,
# pandas, PyArrow, NumPy, zarr-python) and componentize-py (builds Python functions into WebAssembly components:
# `shoal function build`), outside the clone.
#
#   bash scripts/test-venv.sh
#
# Idempotent: a marker file holding the hash of the requirement list makes a second run instant.
# Venv: ${SHOAL_CACHE:-$HOME/.cache/shoal}/test-venv (override with SHOAL_TEST_VENV).
# Python: $SHOAL_TEST_PYTHON_BASE, else python3 on PATH.
set -euo pipefail

SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
VENV="${SHOAL_TEST_VENV:-$SHOAL_CACHE/test-venv}"
BASE_PYTHON="${SHOAL_TEST_PYTHON_BASE:-python3}"
REQUIREMENTS=(
  'duckdb==2.0.1'
  'pyarrow==26.0.1'
  'pandas==3.1.1'
  'componentize-py==0.25.1'
  'numpy==2.4.6'
  'zarr==3.1.6'
)
MARKER="$VENV/.shoal-requirements"
HASH="$(printf '%s\n' "${REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$HASH" && -x "$VENV/bin/python" ]]; then
  echo "scripts/test-venv.sh: test venv already installed in $VENV (requirements unchanged)"
  exit 0
fi

if ! command -v "$BASE_PYTHON" >/dev/null 2>&1; then
  echo "scripts/test-venv.sh: error: '$BASE_PYTHON' not found; install Python 3 or set SHOAL_TEST_PYTHON_BASE" >&2
  exit 1
fi

echo "scripts/test-venv.sh: installing ${REQUIREMENTS[*]} into $VENV with $(command -v "$BASE_PYTHON")"
start=$SECONDS
rm -f "$MARKER"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "+ $BASE_PYTHON -m venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$BASE_PYTHON" -m venv "$VENV"
fi
echo "+ pip install ${REQUIREMENTS[*]}"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
echo "+ check: import duckdb, pyarrow, pandas; componentize-py"
"$VENV/bin/python" -c 'import duckdb, pyarrow, pandas; print("  duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__, "pandas", pandas.__version__)'
"$VENV/bin/componentize-py" --version
echo "$HASH" > "$MARKER"
echo "scripts/test-venv.sh: done in $((SECONDS - start)) s"
