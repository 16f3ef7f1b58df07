#!/usr/bin/env bash
# Delayed at scale: a fan-in tree of 2 × LEAVES − 1 tiny `value` calls built, planned and run by
# shoal (release build, threads executor, the real sandbox, a local job root) and by
# dask.delayed (threaded scheduler, plain Python functions) in one run. Dask gets 15 minutes.
# Writes bench/results/delayed.txt.
#   bash bench/run-delayed.sh [LEAVES]
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
venv="$cache/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import dask' 2>/dev/null; then
  echo "== creating $venv with dask"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'dask==2026.8.0'
fi
leaves="${1:-65536}"
out=bench/results/delayed.txt
cargo bench -q -p shoal --bench delayed --no-run 2>/dev/null
{
  echo "# Delayed fan-in tree, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  cargo bench -q -p shoal --bench delayed -- "$leaves" 2>/dev/null
  if ! timeout 900 "$venv/bin/python" bench/delayed_dask.py "$leaves"; then
    echo "dask: did not finish within 15 minutes (stopped), or failed"
  fi
} | tee "$out"
