#!/usr/bin/env bash
# Array: shoal against dask.array and Cubed on four cases, in one run, with the same sizes and the
# same per-task memory limit: quadratic means mean((a - b) ** 2), sum over axis 0, a rechunk of row
# chunks to column chunks written to Zarr, and sum(a @ b). shoal: release build, threads executor,
# WORKERS workers, task_memory_bytes = MEM_LIMIT (bench/array.rs). Peers (bench/array_peers.py):
# dask's threaded scheduler (num_workers = WORKERS) and Cubed's threads executor (max_workers =
# WORKERS, allowed_mem = MEM_LIMIT), BLAS at 1 thread. Every (engine, case) runs in a process of its
# own, so each peak RSS is that case's alone. Each engine uses its own random generator
# (--data native), so answers are checked statistically (and the rechunk's Zarr checksum exactly
# against the source's sum). Writes bench/results/array.txt.
#   bash bench/run-array.sh
# Env (defaults in brackets): ARRAY_N [16000] side of the qmeans, sum and rechunk arrays;
# ARRAY_CHUNK [2000] square chunks; ARRAY_ROW_CHUNK [800] rechunk rows per input chunk = columns
# per output chunk; ARRAY_M [6000] matmul side; ARRAY_MEM_LIMIT [536870912] bytes per task;
# ARRAY_WORKERS [2]; ARRAY_REPEAT [2] runs per (engine, case), each in a fresh process, best wall
# time reported; ARRAY_CASES ["qmeans sum rechunk matmul"]; ARRAY_WORK [/tmp/shoal-array-bench]
# where a run directory is made (on disk, not tmpfs: Cubed's intermediates, shoal's job roots and
# the Zarr outputs go there; deleted at the end); ARRAY_TIMEOUT [900] seconds per peer run;
# ARRAY_BIN (the bench executable, else cargo builds it).
# Size constraints: Cubed wants a source chunk (ROW_CHUNK x N x 8 bytes) within a fifth of its
# allowed_mem for the rechunk, and shoal refuses qmeans on 2000 x 2000 chunks under 275 MiB and
# matmul under 367 MiB (its projection), hence 512 MiB; the rechunk array (2 GB) is then 3.8 times
# the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
n="${ARRAY_N:-16000}"
chunk="${ARRAY_CHUNK:-2000}"
row_chunk="${ARRAY_ROW_CHUNK:-800}"
m="${ARRAY_M:-6000}"
limit="${ARRAY_MEM_LIMIT:-536870912}"
workers="${ARRAY_WORKERS:-2}"
repeat="${ARRAY_REPEAT:-2}"
cases="${ARRAY_CASES:-qmeans sum rechunk matmul}"
base="${ARRAY_WORK:-/tmp/shoal-array-bench}"
timeout="${ARRAY_TIMEOUT:-900}"
seed=20261201
out=bench/results/array.txt

PY="$(bash bench/array-venv.sh)"
mkdir -p "$base"
work="$(mktemp -d "$base/run-XXXXXX")"
trap 'rm -rf "$work"' EXIT
if [ "$(df --output=fstype "$work" | tail -1)" = tmpfs ]; then
  echo "run-array.sh: $work is on tmpfs (its files would count as memory); use a directory on disk" >&2
  exit 1
fi
# The rechunk case holds the array up to three times on disk (Cubed's or shoal's intermediate, the
# Zarr output); ask for four times its size free.
need=$((n * n * 8 * 4 / 1024))
free=$(df --output=avail -k "$work" | tail -1)
if [ "$free" -lt "$need" ]; then
  echo "run-array.sh: $work has $((free / 1024)) MiB free, the rechunk case wants $((need / 1024)) MiB" >&2
  exit 1
fi

# The bench executable: built once, then run directly (a later edit of the sources does not
# rebuild it halfway through the run).
if [ -z "${ARRAY_BIN:-}" ]; then
  echo "== building the array bench (release)" >&2
  ARRAY_BIN="$(cargo bench -q -p shoal --bench array --no-run --message-format=json \
    | "$PY" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "array" and m.get("executable"):
        print(m["executable"])' | tail -1)"
  [ -x "$ARRAY_BIN" ] || { echo "run-array.sh: the array bench did not build" >&2; exit 1; }
fi

records="$(mktemp "$work/records-XXXXXX.jsonl")"
plans="$(mktemp "$work/plans-XXXXXX.txt")"
git_rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- coordinator worker-wasm protocol 2>/dev/null || echo '+dirty')"
started="$(date -u +%Y-%m-%dT%H:%MZ)"
loads=""
for case in $cases; do
  echo "== $case: dask, cubed" >&2
  loads="$loads $case:$(cut -d' ' -f1 /proc/loadavg)"
  "$PY" bench/array_peers.py --case "$case" --peer all --n "$n" --chunk "$chunk" --row-chunk "$row_chunk" \
    --m "$m" --mem-limit "$limit" --workers "$workers" --data native --seed "$seed" --repeat "$repeat" \
    --tmp "$work" --timeout "$timeout" --out "$records" >&2 || true
  echo "== $case: shoal" >&2
  # One process per run, as for the peers; the plan (stderr) kept from the first.
  for i in $(seq "$repeat"); do
    if [ "$i" = 1 ]; then log="$plans"; else log="$work/shoal-stderr.txt"; fi
    SHOAL_GIT="$git_rev" "$ARRAY_BIN" --case "$case" --n "$n" --chunk "$chunk" --row-chunk "$row_chunk" \
      --m "$m" --mem-limit "$limit" --workers "$workers" --seed "$seed" --repeat 1 --work "$work" \
      --out "$records" 2>>"$log" >/dev/null || { echo "shoal $case failed (see $out)" >&2; break; }
  done
done

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), \
$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), \
work dir on $(df --output=fstype "$work" | tail -1)"
rustc_version="$(rustc --version)"
"$PY" - "$records" "$plans" "$started" "$machine" "$rustc_version" "$git_rev" "$loads" <<'EOF' | tee "$out"
import json, sys

records_path, plans_path, started, machine, rustc, git_rev, loads = sys.argv[1:]
recs = [json.loads(line) for line in open(records_path) if line.strip()]
MiB = 2**20


def best(peer, case):
    runs = [r for r in recs if r["peer"] == peer and r["case"] == case]
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1] if runs else None
    return min(ok, key=lambda r: r["wall_s"])


def peak(r):
    # The higher of the 20 ms samples and the kernel's high-water mark (for the peers, ru_maxrss of
    # the whole child, imports included; for shoal VmHWM reset just before the timed part).
    return max(r["peak_rss_bytes"], r.get("ru_maxrss_bytes", 0), r.get("hwm_bytes", 0))


any_rec = next((r for r in recs if "params" in r), None)
p = any_rec["params"] if any_rec else {}
peer_versions = next((r["versions"] for r in recs if r.get("versions") and r["peer"] != "shoal"), {})
limit, workers = p.get("mem_limit", 0), p.get("workers", 0)
n, m, c, cr = p.get("n"), p.get("m"), p.get("chunk"), p.get("row_chunk")
print(f"# Array: shoal vs dask.array and Cubed, {started}, {machine}")
print(f"shoal {git_rev} (release build, {rustc}), threads executor, {workers} workers, task memory limit "
      f"{limit / MiB:.0f} MiB, speculation off, a fresh local job root per run")
print(f"peers: python {peer_versions.get('python')}, dask {peer_versions.get('dask')} (threaded scheduler, "
      f"num_workers={workers}), cubed {peer_versions.get('cubed')} (threads executor, max_workers={workers}, "
      f"allowed_mem={limit / MiB:.0f} MiB), zarr {peer_versions.get('zarr')}, numpy {peer_versions.get('numpy')}, "
      f"BLAS {'; '.join(peer_versions.get('blas', []))}")
print(f"load average (1 min) as each case started:{loads}")
print(f"sizes: qmeans and sum on {n} x {n} float64 ({n * n * 8 / 1e9:.1f} GB an array) in {c} x {c} chunks; "
      f"rechunk {n} x {n} from ({cr}, {n}) to ({n}, {cr}) chunks, written to Zarr (zstd) — the array is "
      f"{n * n * 8 / limit:.1f}x the task memory limit; matmul {m} x {m} @ {m} x {m} in {c} x {c} chunks, summed")
print("data: each engine's own generator (peers --data native; shoal's random), uniform [0, 1), so the answers")
print("are compared with what they tend to: z = (result - expectation) / sd of the estimate, |z| < 6 passes;")
print("the rechunk's result is the written Zarr array read back and summed (shoal's also checked against the")
print("sum of its source array exactly).")
print("wall: building the arrays and plan and computing the result (or writing the Zarr array), in the process;")
print("peak: the process's peak RSS (max of 20 ms samples and the kernel's high-water mark); delta = peak -")
print("RSS just before the timed part. 'within' = shoal's delta <= workers x the per-task limit (tasks run")
print(f"{workers} at a time, each allowed the limit); the same test is shown for Cubed.")
print()
for case in ["qmeans", "sum", "rechunk", "matmul"]:
    rows = {peer: best(peer, case) for peer in ["shoal", "dask", "cubed"]}
    if not any(rows.values()):
        continue
    print(f"## {case}")
    print(f"{'engine':7} {'wall s':>8} {'peak MiB':>9} {'delta MiB':>9} {'shoal/peer wall':>15} {'shoal/peer peak':>15}"
          f" {'result':>22} {'z':>7}  within")
    s = rows["shoal"]
    for peer in ["shoal", "dask", "cubed"]:
        r = rows[peer]
        if r is None:
            print(f"{peer:7} (not run)")
            continue
        if "error" in r:
            print(f"{peer:7} ERROR: {r['error']}")
            continue
        pk = peak(r)
        delta = pk - r["baseline_rss_bytes"]
        ratio_w = ratio_p = ""
        if peer != "shoal" and s is not None and "error" not in s:
            ratio_w = f"{s['wall_s'] / r['wall_s']:.2f}"
            ratio_p = f"{peak(s) / pk:.2f}"
        exp = r["expect"]
        if "z" in r:
            z = r["z"]
        else:  # the peers' records: the same expectation and sd as bench/array.rs
            sd = {"qmeans": (1 / 15 - 1 / 36) ** 0.5 / n, "sum": n / 12**0.5, "rechunk": n / 12**0.5,
                  "matmul": (m * ((m * m / 4 + m / 12) ** 2 - m**4 / 16)) ** 0.5}[case]
            z = (r["result"] - exp) / sd
        within = ""
        if peer in ("shoal", "cubed"):
            within = f"{'yes' if delta <= workers * limit else 'NO'} ({delta / (workers * limit):.0%} of {workers} x limit)"
        runs = [x["wall_s"] for x in recs if x["peer"] == peer and x["case"] == case and "error" not in x]
        more = f"  runs {', '.join(f'{t:.2f}' for t in runs)}" if len(runs) > 1 else ""
        print(f"{peer:7} {r['wall_s']:8.2f} {pk / MiB:9.0f} {delta / MiB:9.0f} {ratio_w:>15} {ratio_p:>15}"
              f" {r['result']:22.12g} {z:7.2f}  {within}{more}")
    if s is not None and "error" not in s:
        sm = s.get("summary", {})
        extra = s.get("extra") or {}
        line = (f"shoal: {sm.get('tasks')} tasks, {sm.get('bytes_written', 0) / 1e9:.2f} GB written, "
                f"{sm.get('bytes_read', 0) / 1e9:.2f} GB read, worker time {sm.get('worker_ms', 0) / 1e3:.1f} s")
        if extra:
            line += (f"; Zarr output {extra.get('zarr_bytes', 0) / 1e9:.2f} GB, checksum vs source sum: relative "
                     f"difference {extra.get('checksum_rel_diff'):.1e}")
        print(line)
    others = [rows[x] for x in ("dask", "cubed") if rows[x] and "error" not in rows[x]]
    if s is not None and "error" not in s and others:
        faster = all(s["wall_s"] < o["wall_s"] for o in others)
        print(f"goal (faster than both, within the limit): {'met' if faster and peak(s) - s['baseline_rss_bytes'] <= workers * limit else 'NOT met'}")
    print()

print("## shoal's plans (explain)")
print(open(plans_path).read().rstrip())
print()
print("## records (JSON lines)")
for r in recs:
    r = {k: v for k, v in r.items() if k != "plan"}
    print(json.dumps(r))
EOF
