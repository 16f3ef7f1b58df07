#!/usr/bin/env bash
# Install LocalStack (S3 only, host mode, no Docker) into a Python 3.13 venv outside the clone.
#
#   bash localstack/install.sh
#
# Idempotent: a marker file holding the hash of the requirement list makes a second run instant.
# Venv: ${SHOAL_CACHE:-$HOME/.cache/shoal}/localstack-venv (override with SHOAL_LOCALSTACK_VENV).
# LocalStack needs Python 3.13 here: on 3.11/3.12 it fails with "No component plugins found".
set -euo pipefail

SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
VENV="${SHOAL_LOCALSTACK_VENV:-$SHOAL_CACHE/localstack-venv}"
REQUIREMENTS=(
  'localstack-core[runtime]==2026.3.0'
  'cbor2<6'
  'pyopenssl==24.3.0'
  'cryptography==44.0.3'
  'service_identity'
)
MARKER="$VENV/.shoal-requirements"
HASH="$(printf '%s\n' "${REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$HASH" && -x "$VENV/bin/python" ]]; then
  echo "localstack/install.sh: LocalStack already installed in $VENV (requirements unchanged)"
  exit 0
fi

find_python313() {
  local candidate
  for candidate in \
    "${SHOAL_PYTHON313:-}" \
    "${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13.0/bin/python3" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3 \
    "$(command -v python3.13 2>/dev/null || true)"; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! PYTHON="$(find_python313)"; then
  echo "localstack/install.sh: error: Python 3.13 not found." >&2
  echo "  Looked for \$SHOAL_PYTHON313, ~/.pyenv/versions/3.13.*/bin/python3 and python3.13 on PATH." >&2
  echo "  Install Python 3.13 (e.g. 'pyenv install 3.13.0') or set SHOAL_PYTHON313=/path/to/python3.13." >&2
  exit 1
fi

echo "localstack/install.sh: installing LocalStack into $VENV with $PYTHON (takes ~3.5 min the first time)"
start=$SECONDS
rm -f "$MARKER"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "+ $PYTHON -m venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
echo "+ pip install --upgrade pip"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
echo "+ pip install ${REQUIREMENTS[*]}"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
echo "+ check: import localstack.runtime.main"
"$VENV/bin/python" -c 'import localstack.runtime.main'
echo "$HASH" > "$MARKER"
echo "localstack/install.sh: done in $((SECONDS - start)) s"
