#!/usr/bin/env bash
# Python environment for the peers of the Array benchmark (bench/array_peers.py): dask.array and
# Cubed, with Zarr for the rechunk case, outside the clone.
#
#   bash bench/array-venv.sh            # prints the venv's python on its last line
#
# Idempotent: a marker file holding the hash of the pin list makes a second run instant.
# Venv: ${SHOAL_ARRAY_VENV:-${SHOAL_CACHE:-$HOME/.cache/shoal}/array-bench-venv}.
# Python 3.11: $SHOAL_ARRAY_PYTHON_BASE, else pyenv's 3.11, else python3.11 on PATH.
#
# Pins: cubed 0.27.0 needs Python >= 3.11, numpy >= 2 and zarr != 3.1.2; it does not need dask
# (its `dask` extra, dask < 2024.12, is only for Cubed's dask executor, which the bench does not
# use), so dask is the same release as the other benches' venv (bench/run-tpch.sh, run-bag.sh),
# and so is numpy.
set -euo pipefail

cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
venv="${SHOAL_ARRAY_VENV:-$cache/array-bench-venv}"
pins=(
  'cubed==0.27.0'
  'dask[array]==2026.8.0'
  'zarr==3.1.6'
  'numpy==2.4.6'
  'psutil==7.2.2'
  'threadpoolctl==3.8.0'  # to record the BLAS thread count in effect
)
marker="$venv/.shoal-requirements"
hash="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -d' ' -f1)"

if [[ -f "$marker" && "$(cat "$marker")" == "$hash" && -x "$venv/bin/python" ]]; then
  echo "bench/array-venv.sh: $venv already has ${pins[*]}" >&2
  echo "$venv/bin/python"
  exit 0
fi

# A Python 3.11 to build the venv from.
find_python() {
  if [[ -n "${SHOAL_ARRAY_PYTHON_BASE:-}" ]]; then echo "$SHOAL_ARRAY_PYTHON_BASE"; return; fi
  local p
  if command -v pyenv >/dev/null 2>&1 && p="$(pyenv which python3.11 2>/dev/null)" && [[ -x "$p" ]]; then
    echo "$p"; return
  fi
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python; do
    [[ -x "$p" ]] && { echo "$p"; return; }
  done
  command -v python3.11 2>/dev/null || true
}
base="$(find_python)"
if [[ -z "$base" ]]; then
  echo "bench/array-venv.sh: error: no Python 3.11 (pyenv or python3.11 on PATH); set SHOAL_ARRAY_PYTHON_BASE" >&2
  exit 1
fi

rm -f "$marker"
# A venv made from another Python (say after a pyenv change) is rebuilt rather than patched.
if [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "bench/array-venv.sh: $venv is not Python 3.11: rebuilding it" >&2
  rm -rf "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "bench/array-venv.sh: creating $venv with $base ($("$base" --version 2>&1))" >&2
  mkdir -p "$(dirname "$venv")"
  "$base" -m venv "$venv"
fi
echo "bench/array-venv.sh: installing ${pins[*]}" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
"$venv/bin/python" -c 'import cubed, dask.array, zarr, numpy, psutil
print("  cubed", cubed.__version__, "dask", dask.__version__, "zarr", zarr.__version__,
      "numpy", numpy.__version__, "psutil", psutil.__version__)' >&2
echo "$hash" > "$marker"
echo "$venv/bin/python"
