#!/usr/bin/env bash
# Scheduler overhead: shoal's scheduler core and threads executor, and Dask's threaded scheduler
# on the same graph shape, in one run. Writes bench/results/scheduler.txt.
#   bash bench/run-scheduler.sh [N_CORE] [N_THREADS]
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
n_core="${1:-100000}"; n_threads="${2:-10000}"
out=bench/results/scheduler.txt
{
  echo "# scheduler overhead, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  cargo bench -q -p shoal --bench scheduler -- "$n_core" "$n_threads" 2>/dev/null
  "$venv/bin/python" bench/scheduler_dask.py "$n_core"
} | tee "$out"
