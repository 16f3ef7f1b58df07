#!/usr/bin/env bash
# TPC-H: shoal against DuckDB, Polars and Dask on the 22 TPC-H queries and two extra ones (a group-by
# on l_orderkey, a full sort of lineitem) over the same Parquet files; checks
# that all engines agree (DuckDB as reference) and writes bench/results/tpch-sf<N>.md.
#   bash bench/run-tpch.sh [--sf 1|10|0.1] [--runs 3] [--skip-shoal] [--roots DIR]
# --roots DIR puts shoal's job roots in DIR (default: beside its results, on the disk) and writes
# bench/results/tpch-sf<N>-roots-<filesystem type of DIR>.md instead.
# PEERS=duckdb (a comma-separated subset of duckdb,polars,dask) runs only those peers (DuckDB, the
# reference, must be one of them).
# Data is generated once per scale factor by tpchgen-cli into $SHOAL_CACHE/tpch/sf<N>/<table>/;
# per-engine results and timings go to $SHOAL_CACHE/tpch/results-sf<N>/<engine>/.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: bash bench/run-tpch.sh [--sf N] [--runs N] [--skip-shoal] [--roots DIR]" >&2; exit 2; }
sf=1; runs=3; skip_shoal=0; roots=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sf) [ $# -ge 2 ] || usage; sf="$2"; shift 2 ;;
    --runs) [ $# -ge 2 ] || usage; runs="$2"; shift 2 ;;
    --skip-shoal) skip_shoal=1; shift ;;
    --roots) [ $# -ge 2 ] || usage; roots="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ "$sf" =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$(awk -v s="$sf" 'BEGIN{print (s > 0)}')" = 1 ] \
  || { echo "--sf: a positive number, got '$sf'" >&2; exit 2; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "--runs: a positive integer, got '$runs'" >&2; exit 2; }

cache="${SHOAL_CACHE:-$HOME/.cache/shoal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
venv="$cache/bench-venv"
pins=('dask[dataframe]==2026.8.0' 'pandas==3.1.1' 'numpy==2.4.6' 'pyarrow==26.0.1'
      'duckdb==2.0.1' 'polars==2.1.0' 'tpchgen-cli==4.0.0')
[ -x "$venv/bin/python" ] || { echo "== creating $venv"; python3 -m venv "$venv"; }
if ! "$venv/bin/python" - "${pins[@]}" 2>/dev/null <<'EOF'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name.split("[")[0]) != want:
        sys.exit(1)
EOF
then
  echo "== installing ${pins[*]} into $venv"
  "$venv/bin/pip" install -q "${pins[@]}"
fi

# Data: all eight tables as Parquet; the large ones in several files each (8 up to SF1, then 8 per
# SF), supplier, nation and region in one file each.
data="$cache/tpch/sf$sf"
parts=$(awk -v s="$sf" 'BEGIN { p = int(8 * s); if (p < 8 * s) p++; if (p < 8) p = 8; print p }')
large=(lineitem orders customer part partsupp)
small=(supplier nation region)
# A folder made before all eight tables were generated (no part/ or region/ ...) is made again.
complete=1
[ -f "$data/.complete" ] || complete=0
for table in "${large[@]}" "${small[@]}"; do [ -d "$data/$table" ] || complete=0; done
if [ "$complete" = 0 ]; then
  echo "== generating TPC-H SF$sf ($parts files per large table) into $data"
  rm -rf "$data"
  mkdir -p "$data"
  "$venv/bin/tpchgen-cli" parquet --scale-factor "$sf" --tables "$(IFS=,; echo "${large[*]}")" \
    --parts "$parts" --output-dir "$data" --no-progress
  "$venv/bin/tpchgen-cli" parquet --scale-factor "$sf" --tables "$(IFS=,; echo "${small[*]}")" \
    --parts 1 --output-dir "$data" --no-progress
  for table in "${large[@]}" "${small[@]}"; do
    want=$parts; [[ " ${small[*]} " == *" $table "* ]] && want=1
    n=$(find "$data/$table" -name '*.parquet' | wc -l)
    [ "$n" -eq "$want" ] || { echo "$data/$table: $n Parquet files, expected $want" >&2; exit 1; }
  done
  echo "tpchgen-cli $("$venv/bin/tpchgen-cli" --version | awk '{print $2}') parquet -s $sf --parts $parts" \
    "(${small[*]}: 1)" > "$data/.complete"
fi

report="bench/results/tpch-sf$sf.md"
if [ -n "$roots" ]; then
  mkdir -p "$roots"
  report="bench/results/tpch-sf$sf-roots-$(stat -f -c %T "$roots" | tr / -).md"
fi
results="$cache/tpch/results-sf$sf"
rm -rf "$results"
mkdir -p "$results"
shoal_failed=0
if [ "$skip_shoal" = 0 ]; then
  echo "== shoal"
  # A query shoal fails on is in its timings.json; the peers and the comparison still run.
  cargo bench -q -p shoal --bench tpch -- --data "$data" --out "$results" --runs "$runs" --sf "$sf" \
    ${roots:+--roots "$roots"} || shoal_failed=1
fi
"$venv/bin/python" bench/tpch_peers.py --data "$data" --out "$results" --runs "$runs" --sf "$sf" ${PEERS:+--engines "$PEERS"}
"$venv/bin/python" bench/tpch_compare.py --results "$results" --engines "shoal,${PEERS:-duckdb,polars,dask}" \
  --sf "$sf" --out "$report"
[ "$shoal_failed" = 0 ] || { echo "shoal failed (see $report)" >&2; exit 1; }
