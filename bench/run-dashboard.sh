#!/usr/bin/env bash
# The live dashboard under a large job (issue 12): `shoal run` on N tiny CSV files (one task
# each, threads executor), without and with `--dashboard` (a client reading the live stream the
# whole time), in one run. Reports wall time and the peak RSS of the `shoal` process.
# Appends to bench/results/dashboard.txt.
#   bash bench/run-dashboard.sh [N] [release|debug] [REPEAT]      (BENCH_TMP: work dir, default /dev/shm)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
n="${1:-100000}"; profile="${2:-release}"; repeat="${3:-1}"
if [ "$profile" = release ]; then cargo build -q --release --bins; else cargo build -q --bins; fi
bin="$CARGO_TARGET_DIR/$profile/shoal"
# On tmpfs by default: 100k files written and removed per run make a disk's writeback the
# noise that decides the figures.
work="$(mktemp -d "${BENCH_TMP:-/dev/shm}/shoal-dashboard.XXXX")"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work" "$n" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{work}/in")
for i in range(n):
    with open(f"{work}/in/part-{i:06}.csv", "w") as f:
        f.write(f"id,value\n{i},{i % 7}\n{i + n},{(i + 3) % 7}\n")
with open(f"{work}/job.toml", "w") as f:
    f.write('[datasets.rows]\nread_csv = "in/*.csv"\n\n[datasets.kept]\nfrom = "rows"\nfilter = "value > 2"\n\n'
            '[[outputs]]\ndataset = "kept"\nto_parquet = "out"\n')
PY
out=bench/results/dashboard.txt
run() { # label, extra args...
  local label="$1"; shift
  rm -rf "$work/root" "$work/out"; sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$bin" run "$work/job.toml" --root "$work/root" --executor threads "$@" \
    2>"$work/stderr" >/dev/null &
  local pid=$!
  if [ "$#" -gt 0 ]; then # a browser-like client on the live stream while the job runs
    for _ in $(seq 600); do grep -q "http://" "$work/stderr" && break; sleep 0.1; done
    local url; url="$(grep -o 'http://[0-9.:]*/' "$work/stderr" | head -1)"
    curl -sN "${url}stream" >"$work/stream" 2>/dev/null &
  fi
  wait "$pid"
  read -r secs kb <"$work/time"
  local tasks; tasks="$(python3 -c "import json,glob; r=json.load(open(glob.glob('$work/root/jobs/*.report.json')[0])); print(r['tasks'])" 2>/dev/null || echo "?")"
  local sent=""; [ -f "$work/stream" ] && sent=", live stream received $(wc -c <"$work/stream") bytes" && rm -f "$work/stream"
  echo "$label: $n files, $tasks tasks in $secs s = $(python3 -c "print(round($secs * 1e6 / $n))") µs/file, peak RSS $((kb / 1024)) MB$sent"
}
{
  echo "# shoal run, $n tiny CSV files, threads executor, $profile build, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git rev-parse --short HEAD)"
  for _ in $(seq "$repeat"); do
    run "without --dashboard"
    run "with --dashboard" --dashboard 127.0.0.1:0
  done
} | tee -a "$out"
