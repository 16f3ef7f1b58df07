#!/usr/bin/env bash
# Python vs Rust function components: size, cold compile, warm load (precompiled cache), a
# call's fixed cost and a 10k-item call, for `inc` of the Python example module and of
# builtin:examples. Writes bench/results/python-function.txt.
#   bash bench/python-function.sh
# Needs componentize-py (bash scripts/test-venv.sh installs it) or SHOAL_COMPONENTIZE_PY.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
export SHOAL_COMPONENTIZE_PY="${SHOAL_COMPONENTIZE_PY:-$cache/test-venv/bin/componentize-py}"
profile="${BENCH_PROFILE:-release}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# SHOAL_BIN: a shoal binary elsewhere (when several checkouts share one target directory).
if [ -z "${SHOAL_BIN:-}" ]; then
  cargo build -q --profile "$profile" -p shoal --bin shoal
  bindir="$profile"; [ "$profile" = dev ] && bindir=debug
fi
shoal="${SHOAL_BIN:-$CARGO_TARGET_DIR/$bindir/shoal}"
start=$(date +%s.%N)
"$shoal" function build functions/python/examples/app.py -o "$work/app.wasm" 2>"$work/build.log" \
  || { cat "$work/build.log" >&2; exit 1; }
build_s=$(echo "$(date +%s.%N) - $start" | bc)

out=bench/results/python-function.txt
{
  echo "# Python vs Rust function components, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, host profile $profile"
  echo "# shoal function build (componentize-py 0.25.1) of functions/python/examples/app.py: ${build_s%.*} s"
  cargo bench -q --profile "$profile" -p shoal-worker --bench python_function -- "$work/app.wasm" 2>/dev/null
} | tee "$out"
