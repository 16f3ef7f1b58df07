"""TPC-H comparison: checks that the engines agree on every query and writes a Markdown table.

    python bench/tpch_compare.py --results RESULTS_DIR --engines shoal,duckdb,polars,dask \
        --sf 1 --out bench/results/tpch-sf1.md

Reads RESULTS_DIR/<engine>/<query>.parquet and RESULTS_DIR/<engine>/timings.json as written by
bench/tpch_peers.py (and by shoal's `cargo bench --bench tpch`): timings.json maps each query to the
list of its run times in seconds, and "version" to the engine's version ("versions", "notes" and
"threads" are optional).

Agreement, with DuckDB as the reference: the same column names, the same row count, and the same
values: strings and dates exactly, integers against integers exactly, other numbers (decimal, float)
to 1e-6 relative. q1, q3 and q6 are compared in query order, groupby_orderkey after sorting both by
l_orderkey, sort_price as the exact sequence of l_extendedprice cast to float64.

An engine without results is shown as "—". Exits 1 after writing the table if any engine disagrees
with the reference (or a result could not be checked), 0 otherwise.
"""
import argparse
import json
import os
import statistics
import sys
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

QUERIES = ["q1", "q3", "q6", "groupby_orderkey", "sort_price"]
REFERENCE = "duckdb"
RTOL = 1e-6
DASH = "—"


# ------------------------------------------------------------------------------------------ loading


def load_timings(results, engine):
    path = os.path.join(results, engine, "timings.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_result(results, engine, query):
    path = os.path.join(results, engine, f"{query}.parquet")
    if not os.path.exists(path):
        return None
    return pq.read_table(path)


# ---------------------------------------------------------------------------------------- agreement


def column_kind(typ):
    if pa.types.is_dictionary(typ):
        return column_kind(typ.value_type)
    if pa.types.is_integer(typ):
        return "int"
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "float"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        return "string"
    if pa.types.is_date(typ) or pa.types.is_timestamp(typ):
        return "date"
    if pa.types.is_boolean(typ):
        return "bool"
    return str(typ)


def column_values(column, kind):
    """A column as a numpy array (numbers and dates) or a list (strings), for comparing."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if kind == "int":
        return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    if kind == "float":
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    if kind == "date":
        if pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.date32())
        return pc.cast(pc.cast(column, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False)
    return pc.cast(column, pa.string()).to_pylist()


def first_mismatch(ref, other, kind, exact):
    """(number of mismatching rows, index of the first) between two equally long columns."""
    if kind in ("string", "bool"):
        bad = [i for i, (a, b) in enumerate(zip(ref, other)) if a != b]
        return len(bad), (bad[0] if bad else None)
    a = np.asarray(ref, dtype=np.float64 if kind == "float" or not exact else None)
    b = np.asarray(other, dtype=a.dtype)
    if exact:
        ok = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
        ok = (np.abs(a - b) <= RTOL * np.maximum(np.abs(a), np.abs(b))) | (np.isnan(a) & np.isnan(b))
    bad = np.flatnonzero(~ok)
    return len(bad), (int(bad[0]) if len(bad) else None)


def compare(query, ref, other):
    """Problems (strings) found comparing one engine's result with the reference's; [] if they agree."""
    problems = []
    ref_names, names = ref.column_names, other.column_names
    if set(ref_names) != set(names):
        missing = [n for n in ref_names if n not in names]
        extra = [n for n in names if n not in ref_names]
        problems.append(f"columns differ: missing {missing}, extra {extra} (reference has {ref_names})")
    if ref.num_rows != other.num_rows:
        problems.append(f"{other.num_rows} rows, reference has {ref.num_rows}")
        return problems
    if query == "groupby_orderkey":
        if "l_orderkey" not in names or "l_orderkey" not in ref_names:
            return problems
        ref = ref.sort_by("l_orderkey")
        other = other.sort_by("l_orderkey")
    for name in ref_names:
        if name not in names:
            continue
        ref_kind, kind = column_kind(ref.schema.field(name).type), column_kind(other.schema.field(name).type)
        numeric = {"int", "float"}
        if ref_kind != kind and not (ref_kind in numeric and kind in numeric):
            problems.append(f"{name}: type {other.schema.field(name).type}, reference has {ref.schema.field(name).type}")
            continue
        if query == "sort_price":
            ref_kind = kind = "float"
            exact = True
        elif ref_kind in numeric and kind in numeric:
            exact = ref_kind == kind == "int"
            ref_kind = kind = "int" if exact else "float"
        else:
            exact = True
        a, b = column_values(ref.column(name), ref_kind), column_values(other.column(name), kind)
        count, i = first_mismatch(a, b, ref_kind, exact)
        if count:
            how = "exactly" if exact else f"to {RTOL:g} relative"
            got, want = (x.item() if hasattr(x, "item") else x for x in (b[i], a[i]))
            problems.append(
                f"{name}: {count} of {len(a)} rows differ ({how}); first at row {i}: {got!r}, reference {want!r}"
            )
    return problems


# ------------------------------------------------------------------------------------------ machine


def machine():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "unknown memory"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                    break
    except OSError:
        pass
    return f"{cores} cores (nproc), {model}, {memory}"


# ------------------------------------------------------------------------------------------- report


def seconds(x):
    return DASH if x is None else f"{x:.3f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratio_text(r):
    return DASH if r is None else f"{r:.3g}x"


def target_text(r, limit):
    if r is None:
        return DASH
    return f"{'yes' if r <= limit else 'no'} ({r:.3g}x)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--engines", default="shoal,duckdb,polars,dask")
    parser.add_argument("--sf", required=True, help="scale factor, for the title")
    parser.add_argument("--out", required=True, help="Markdown file to write")
    parser.add_argument("--queries", default=",".join(QUERIES))
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    queries = [q for q in args.queries.split(",") if q]

    timings = {e: load_timings(args.results, e) for e in engines}
    present = [e for e in engines if timings[e] is not None]
    missing = [e for e in engines if timings[e] is None]

    def median(engine, query):
        runs = (timings.get(engine) or {}).get(query)
        return statistics.median(runs) if runs else None

    # Agreement with the reference.
    failures = []  # (query, engine, problem)
    agreement = {}
    for query in queries:
        ref = load_result(args.results, REFERENCE, query) if REFERENCE in present else None
        verdicts = []
        for engine in present:
            if engine == REFERENCE:
                continue
            result = load_result(args.results, engine, query)
            if result is None:
                continue
            if ref is None:
                failures.append((query, engine, f"not checked: no {REFERENCE} result for {query}"))
                verdicts.append(f"{engine} unchecked")
                continue
            problems = compare(query, ref, result)
            for p in problems:
                failures.append((query, engine, p))
            if problems:
                verdicts.append(f"**{engine} differs**")
        checked = [e for e in present if e != REFERENCE and load_result(args.results, e, query) is not None]
        if verdicts:
            agreement[query] = ", ".join(verdicts)
        elif checked:
            agreement[query] = f"agree ({', '.join([REFERENCE] + checked)})"
        else:
            agreement[query] = DASH

    has = {e: e in engines for e in ("shoal", "duckdb", "polars", "dask")}
    header = ["query"] + [f"{e} s" for e in engines]
    for peer in ("duckdb", "polars", "dask"):
        if has["shoal"] and has[peer]:
            header.append(f"shoal/{peer}")
    if has["shoal"] and has["duckdb"]:
        header.append("shoal within 1.5x of DuckDB")
    if has["shoal"] and has["dask"]:
        header.append("shoal at most 0.1x of Dask")
    header.append(f"results vs {REFERENCE}")

    rows = []
    for query in queries:
        row = [query] + [seconds(median(e, query)) for e in engines]
        shoal = median("shoal", query)
        for peer in ("duckdb", "polars", "dask"):
            if has["shoal"] and has[peer]:
                row.append(ratio_text(ratio(shoal, median(peer, query))))
        if has["shoal"] and has["duckdb"]:
            if query in ("q1", "q6"):
                row.append(target_text(ratio(shoal, median("duckdb", query)), 1.5))
            else:
                row.append("n/a")
        if has["shoal"] and has["dask"]:
            row.append(target_text(ratio(shoal, median("dask", query)), 0.1))
        row.append(agreement[query])
        rows.append(row)

    runs = sorted({len(v) for e in present for q, v in timings[e].items() if q in queries and isinstance(v, list)})
    versions = []
    for e in engines:
        t = timings[e]
        if t is None:
            versions.append(f"{e} {DASH} (no results)")
            continue
        extra = {k: v for k, v in (t.get("versions") or {}).items() if k != e}
        extra_text = f" ({', '.join(f'{k} {v}' for k, v in extra.items())})" if extra else ""
        threads = f", {t['threads']} threads" if t.get("threads") else ""
        versions.append(f"{e} {t.get('version', '?')}{extra_text}{threads}")

    lines = [
        f"# TPC-H SF{args.sf}: shoal vs DuckDB, Polars and Dask",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- scale factor: {args.sf} (tpchgen-cli Parquet, several files per table)",
        f"- runs: {', '.join(map(str, runs)) or DASH} per engine and query; the table shows the median, "
        "run 1 included. Run 1 is the first in a fresh process, not a cold cache: the OS page cache "
        "likely holds the Parquet files already. Every run reads the Parquet files.",
        f"- engines: {'; '.join(versions)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 or i == len(header) - 1 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        "Targets: shoal within 1.5x of DuckDB on q1 and q6; shoal at most 0.1x of Dask on every query "
        f"(ratios of medians; {DASH} where an engine has no result).",
    ]
    if missing:
        lines.append(f"Not run: {', '.join(missing)}.")

    lines += ["", "## All runs (seconds, in order; run 1 first)", ""]
    for e in present:
        for query in queries:
            runs_e = timings[e].get(query)
            if runs_e:
                lines.append(f"- {e} {query}: {' '.join(f'{s:.3f}' for s in runs_e)}")

    notes = [(e, timings[e].get("notes")) for e in present if timings[e].get("notes")]
    if notes:
        lines += ["", "## How each engine runs", ""]
        lines += [f"- {e}: {n}" for e, n in notes]

    if failures:
        lines += ["", f"## Disagreements with {REFERENCE}", ""]
        lines += [f"- {q} / {e}: {p}" for q, e, p in failures]

    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {args.out}")
    if failures:
        for q, e, p in failures:
            print(f"DISAGREEMENT {q} / {e}: {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
