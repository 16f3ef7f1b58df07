#!/usr/bin/env bash
# A large graph of tiny tasks: `arange(N)` in chunks of one element, then its sum — a wide stage of
# N generator tasks and a tree of combines — through the `shoal` CLI on a job file, exactly as a
# user runs it (`shoal explain`, then `shoal run` on the threads executor and the embedded local
# folder), against dask.array's threaded scheduler on `da.arange(N, chunks=1).sum()` in the same
# run. shoal runs twice: on the embedded local folder, and on an in-memory job root (memory://, the
# same process: no storage I/O, so what is left is the scheduler's and the tasks' own cost). Wall
# time and peak RSS (/usr/bin/time) of each; the answer checked against N(N-1)/2.
# Writes bench/results/large-graph.txt.
#   bash bench/run-large-graph.sh [N]          # N defaults to 1000000
# Env: LARGE_TIMEOUT [300] seconds before a run is stopped (reported as such);
# SHOAL_BIN (the release `shoal` binary, else cargo builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
n="${1:-1000000}"
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N: a positive integer, got '$n'" >&2; exit 2; }
timeout_s="${LARGE_TIMEOUT:-300}"
out=bench/results/large-graph.txt
venv="$cache/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import dask.array, numpy' 2>/dev/null; then
  echo "== installing dask[array] into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'dask[array]==2026.8.0' 'numpy==2.4.6'
fi
if [ -z "${SHOAL_BIN:-}" ]; then
  cargo build -q --release --bin shoal
  SHOAL_BIN="$CARGO_TARGET_DIR/release/shoal"
fi
work="$(mktemp -d /tmp/shoal-large-graph-XXXXXX)"
trap 'rm -rf "$work"' EXIT
cat > "$work/job.toml" <<EOF
[arrays.x]
arange = { start = 0, stop = $n, chunks = [1] }

[arrays.total]
from = "x"
sum = {}

[[outputs]]
array = "total"
show = true
EOF
expected=$((n * (n - 1) / 2))

# `timed NAME CMD...`: runs CMD under /usr/bin/time and the timeout; prints "wall_s peak_mb rc".
timed() {
  local name="$1"; shift
  local rc=0
  /usr/bin/time -f '%e %M' -o "$work/$name.time" timeout "$timeout_s" "$@" > "$work/$name.out" 2> "$work/$name.err" || rc=$?
  local wall rss
  read -r wall rss < <(tail -1 "$work/$name.time")
  echo "$wall $((rss / 1024)) $rc"
}

report() {
  local label="$1" wall="$2" mb="$3" rc="$4" extra="$5"
  if [ "$rc" = 124 ]; then
    echo "$label: stopped after ${timeout_s} s (peak RSS ${mb} MB so far)"
  elif [ "$rc" != 0 ]; then
    echo "$label: failed (exit $rc) after ${wall} s"; sed 's/^/    /' "$work/${label%% *}.err" | tail -5
  else
    echo "$label: ${wall} s, peak RSS ${mb} MB${extra}"
  fi
}

{
  echo "# large graph: arange($n, chunks=1).sum(), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "# shoal $("$SHOAL_BIN" --version | awk '{print $2}'), dask $("$venv/bin/python" -c 'import dask; print(dask.__version__)')"
  cd "$work"
  read -r wall mb rc < <(timed explain "$SHOAL_BIN" explain job.toml)
  tasks=$(grep -m1 -oE '[0-9]+ tasks' explain.out || true)
  report "explain (shoal explain job.toml)" "$wall" "$mb" "$rc" "; ${tasks:-? tasks}"
  for root in root memory://large-graph/root; do
    read -r wall mb rc < <(timed run "$SHOAL_BIN" run job.toml --root "$root" --executor threads)
    got=$(grep -oE '[0-9]{3,}' run.out | tail -1 || true)
    check="; total $got (expected $expected)"
    [ "$got" = "$expected" ] || [ "$rc" != 0 ] || check="$check MISMATCH"
    report "run (shoal run --root $root, threads, $(nproc) workers)" "$wall" "$mb" "$rc" "$check"
    grep -hE '^  (time|data):' run.out run.err 2>/dev/null | sed 's/^/  /' || true
  done
  cat > dask_case.py <<EOF
import time, dask, dask.array as da
started = time.perf_counter()
total = da.arange($n, chunks=1).sum()
built = time.perf_counter()
value = int(total.compute(scheduler="threads", num_workers=$(nproc)))
done = time.perf_counter()
print(f"graph {built - started:.3f} s, compute {done - built:.3f} s, total {value}")
EOF
  read -r wall mb rc < <(timed dask "$venv/bin/python" dask_case.py)
  got=$(grep -oE 'total [0-9]+' dask.out | awk '{print $2}' || true)
  check="; $(grep -oE 'graph .* s, compute [0-9.]+ s' dask.out || true); total $got (expected $expected)"
  [ "$got" = "$expected" ] || [ "$rc" != 0 ] || check="$check MISMATCH"
  report "dask (da.arange(N, chunks=1).sum(), threads)" "$wall" "$mb" "$rc" "$check"
} | tee "$out"
