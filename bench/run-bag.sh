#!/usr/bin/env bash
# Bag on JSON lines against dask.bag, in one run: FILES generated files of web logs (default
# 8 × 130 MB, seeded, generated once and kept by size under $BAG_DATA_ROOT, default the tmpfs
# /dev/shm/shoal-bag), then read_json → filter → pluck → frequencies and a foldby, by shoal
# (release build, threads executor, 2 workers; built-in operators, Rust and Python functions)
# and by dask.bag (threaded and processes schedulers, 2 workers). Checks that the answers agree.
# Writes bench/results/bag.txt.
#   bash bench/run-bag.sh [FILES] [MB_PER_FILE]
# Env: BAG_BIN (the bench executable, else cargo builds it), BAG_REPEAT (runs per case, best taken; default 2), BAG_CLEAN=1 (delete the data after).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
export SHOAL_COMPONENTIZE_PY="${SHOAL_COMPONENTIZE_PY:-$cache/test-venv/bin/componentize-py}"
venv="$cache/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import dask.bag' 2>/dev/null; then
  echo "== creating $venv with dask"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'dask[bag]==2026.8.0'
fi
files="${1:-8}"
mb="${2:-130}"
repeat="${BAG_REPEAT:-2}"
root="${BAG_DATA_ROOT:-/dev/shm/shoal-bag}"
data="$root/${files}x${mb}mb"
mkdir -p "$root"

# The data, once per size: "$data.json" (its item counts) is written when all files are.
if [ ! -f "$data.json" ]; then
  echo "== generating $files × $mb MB of JSON lines in $data" >&2
  rm -rf "$data"
  "$venv/bin/python" bench/bag_dask.py gen "$data" "$files" "$mb" >"$data.json.partial"
  mv "$data.json.partial" "$data.json"
fi

# The Python component of functions/python/examples/app.py, kept by a hash of its sources.
sources=(functions/wit/shoal.wit functions/python/shoal/__init__.py functions/python/shoal/_component.py
  functions/python/examples/app.py)
hash=$(cat "${sources[@]}" | sha256sum | cut -c1-16)
component="$cache/python-components/bag-examples-$hash.wasm"
if [ ! -f "$component" ]; then
  echo "== building the Python component ($component)" >&2
  if [ -z "${SHOAL_BIN:-}" ]; then cargo build -q --release -p shoal --bin shoal; fi
  mkdir -p "$cache/python-components"
  "${SHOAL_BIN:-$CARGO_TARGET_DIR/release/shoal}" function build functions/python/examples/app.py \
    -o "$component.partial" >&2
  mv "$component.partial" "$component"
fi

# BAG_BIN: the bench executable built elsewhere (skips cargo, e.g. while another build holds
# the shared target directory's lock).
if [ -z "${BAG_BIN:-}" ]; then cargo bench -q -p shoal --bench bag --no-run 2>/dev/null; fi
bench() {
  if [ -n "${BAG_BIN:-}" ]; then "$BAG_BIN" "$@"; else cargo bench -q -p shoal --bench bag -- "$@"; fi
}
dask_json="$(mktemp "$root/dask-XXXXXX.json")"
trap 'rm -f "$dask_json"' EXIT
echo "== dask.bag" >&2
"$venv/bin/python" bench/bag_dask.py run "$data" "$dask_json" "$repeat"
out=bench/results/bag.txt
echo "== shoal" >&2
{
  echo "# Bag on JSON lines: shoal vs dask.bag, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), data on $(df --output=fstype "$root" | tail -1), load average 1/5/15 min as shoal starts: $(cut -d" " -f1-3 /proc/loadavg)"
  BAG_REPEAT="$repeat" bench "$data" "$dask_json" "$component"
} | tee "$out"
if [ "${BAG_CLEAN:-0}" = 1 ]; then rm -rf "$data" "$data.json"; fi
