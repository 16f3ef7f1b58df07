"""TPC-H comparison: checks that the engines agree on every query and writes a Markdown table.

    python bench/tpch_compare.py --results RESULTS_DIR --engines shoal,duckdb,polars,dask \
        --sf 1 --out bench/results/tpch-sf1.md

Reads RESULTS_DIR/<engine>/<query>.parquet and RESULTS_DIR/<engine>/timings.json as written by
bench/tpch_peers.py (and by shoal's `cargo bench --bench tpch`): timings.json maps each query to the
list of its run times in seconds, and "version" to the engine's version ("versions", "notes" and
"threads" are optional).

Agreement, with DuckDB as the reference: the same column names, the same row count, and the same
values: strings and dates exactly, integers against integers exactly, other numbers (decimal, float)
to 1e-6 relative. A query with an ORDER BY (ORDER_BY below) must give its ORDER BY columns in the
reference's sequence; rows tied on them may come in any order. A query without one (Q6, Q14, Q17,
Q19 are one row; groupby_orderkey) is compared as a set of rows. sort_price is compared as the
exact sequence of l_extendedprice cast to float64.

An engine without results, or that failed on a query (timings.json "errors"), is shown as "—" for
it; the failures are listed. Exits 1 after writing the table if any engine disagrees with the
reference, a result could not be checked, or shoal or the reference failed on a query; 0 otherwise
(Polars or Dask failing on a query is reported, not an error).
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

QUERIES = [f"q{i}" for i in range(1, 23)] + ["groupby_orderkey", "sort_price"]
TPCH = [f"q{i}" for i in range(1, 23)]
# The ORDER BY columns of each query that has one (directions do not matter here: the reference's
# sequence of their values is what is checked).
ORDER_BY = {
    "q1": ["l_returnflag", "l_linestatus"],
    "q2": ["s_acctbal", "n_name", "s_name", "p_partkey"],
    "q3": ["revenue", "o_orderdate"],
    "q4": ["o_orderpriority"],
    "q5": ["revenue"],
    "q7": ["supp_nation", "cust_nation", "l_year"],
    "q8": ["o_year"],
    "q9": ["nation", "o_year"],
    "q10": ["revenue"],
    "q11": ["value"],
    "q12": ["l_shipmode"],
    "q13": ["custdist", "c_count"],
    "q15": ["s_suppkey"],
    "q16": ["supplier_cnt", "p_brand", "p_type", "p_size"],
    "q18": ["o_totalprice", "o_orderdate"],
    "q20": ["s_name"],
    "q21": ["numwait", "s_name"],
    "q22": ["cntrycode"],
}
# Engines whose failure on a query fails the comparison (Polars' or Dask's is only reported).
MUST_RUN = {"shoal", "duckdb"}
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


def column_plan(query, ref, other, problems):
    """{column: (kind, exact)} for the columns both tables have and can be compared; problems added."""
    plan = {}
    names = other.column_names
    numeric = {"int", "float"}
    for name in ref.column_names:
        if name not in names:
            continue
        ref_kind, kind = column_kind(ref.schema.field(name).type), column_kind(other.schema.field(name).type)
        if ref_kind != kind and not (ref_kind in numeric and kind in numeric):
            got, want = other.schema.field(name).type, ref.schema.field(name).type
            problems.append(f"{name}: type {got}, reference has {want}")
        elif query == "sort_price":
            plan[name] = ("float", True)
        elif ref_kind in numeric and kind in numeric:
            exact = ref_kind == kind == "int"
            plan[name] = ("int" if exact else "float", exact)
        else:
            plan[name] = (ref_kind, True)
    return plan


def row_order(values, plan, segments):
    """The permutation sorting rows by segment, then the exact columns, then the others."""
    exact = [n for n, (_, e) in plan.items() if e]
    keys = ["__segment"] + exact + [n for n in plan if n not in exact]
    table = pa.table({"__segment": pa.array(segments), **{n: pa.array(list(values[n])) for n in plan}})
    return pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys]).to_numpy()


def mismatch_text(name, a, b, kind, exact):
    count, i = first_mismatch(a, b, kind, exact)
    if not count:
        return None
    how = "exactly" if exact else f"to {RTOL:g} relative"
    got, want = (x.item() if hasattr(x, "item") else x for x in (b[i], a[i]))
    return f"{name}: {count} of {len(a)} rows differ ({how}); first at row {i}: {got!r}, reference {want!r}"


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
    plan = column_plan(query, ref, other, problems)
    a = {n: np.asarray(column_values(ref.column(n), k), dtype=None if k in ("int", "float", "date") else object)
         for n, (k, _) in plan.items()}
    b = {n: np.asarray(column_values(other.column(n), k), dtype=None if k in ("int", "float", "date") else object)
         for n, (k, _) in plan.items()}
    segments = np.zeros(ref.num_rows, dtype=np.int64)
    if query in ORDER_BY:
        # The ORDER BY columns in the reference's sequence; rows tied on them in any order.
        keys = [k for k in ORDER_BY[query] if k in plan]
        for key in keys:
            text = mismatch_text(key, a[key], b[key], *plan[key])
            if text:
                problems.append(f"ORDER BY column sequence differs ({', '.join(ORDER_BY[query])}): {text}")
        if problems:
            return problems
        if ref.num_rows > 1:
            change = np.zeros(ref.num_rows - 1, dtype=bool)
            for key in keys:
                change |= np.asarray(a[key][1:] != a[key][:-1], dtype=bool)
            segments[1:] = np.cumsum(change)
    if query != "sort_price" and ref.num_rows > 1:
        ref_order, order = row_order(a, plan, segments), row_order(b, plan, segments)
        a = {n: v[ref_order] for n, v in a.items()}
        b = {n: v[order] for n, v in b.items()}
    for name, (kind, exact) in plan.items():
        text = mismatch_text(name, a[name], b[name], kind, exact)
        if text:
            problems.append(text)
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


def first_line(text, limit=300):
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


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


def query_agreement(results, query, present, errors, failures):
    """The agreement column of one query; its problems appended to `failures`."""
    ref = load_result(results, REFERENCE, query) if REFERENCE in present else None
    verdicts = []
    if query in errors.get(REFERENCE, {}):
        failures.append((query, REFERENCE, "the reference failed on this query"))
        verdicts.append(f"**{REFERENCE} failed**")
    checked = []
    for engine in present:
        if engine == REFERENCE:
            continue
        if query in errors[engine]:
            if engine in MUST_RUN:
                failures.append((query, engine, f"failed: {first_line(errors[engine][query])}"))
                verdicts.append(f"**{engine} failed**")
            else:
                verdicts.append(f"{engine} failed")
            continue
        result = load_result(results, engine, query)
        if result is None:
            continue
        if ref is None:
            failures.append((query, engine, f"not checked: no {REFERENCE} result for {query}"))
            verdicts.append(f"{engine} unchecked")
            continue
        problems = compare(query, ref, result)
        failures.extend((query, engine, p) for p in problems)
        if problems:
            verdicts.append(f"**{engine} differs**")
        else:
            checked.append(engine)
    agree = f"agree ({', '.join([REFERENCE] + checked)})" if checked else None
    if verdicts and agree and not any("differs" in v or "unchecked" in v for v in verdicts):
        return f"{agree}; {', '.join(verdicts)}"
    return ", ".join(verdicts) or agree or DASH


# The goals: each TPC-H query at most 2x DuckDB's time (the full sort 1.5x), their geometric
# mean at most 1.2x, each query at most 0.25x Dask's time; the scan-bound queries within 1.3x of
# their scan floor (the same files and columns through shoal's reader, no computation).
DUCKDB_LIMIT = {"sort_price": 1.5}
DUCKDB_DEFAULT_LIMIT = 2.0
DUCKDB_GEOMEAN_LIMIT = 1.2
DASK_LIMIT = 0.25
FLOOR_LIMIT = 1.3
SCAN_FLOORS = {"q1": "scan_q1", "q6": "scan_q6"}


def table(engines, queries, median, agreement):
    """The header and rows of the timings table: one row per query, then the sum of q1–q22."""
    has = {e: e in engines for e in ("shoal", "duckdb", "polars", "dask")}
    header = ["query"] + [f"{e} s" for e in engines]
    for peer in ("duckdb", "polars", "dask"):
        if has["shoal"] and has[peer]:
            header.append(f"shoal/{peer}")
    if has["shoal"] and has["duckdb"]:
        header.append(f"shoal ≤ {DUCKDB_DEFAULT_LIMIT:g}x DuckDB (sort ≤ {DUCKDB_LIMIT['sort_price']:g}x)")
    if has["shoal"] and has["dask"]:
        header.append(f"shoal ≤ {DASK_LIMIT:g}x Dask")
    header.append(f"results vs {REFERENCE}")

    def row(name, times, duckdb_limit, verdict):
        r = [name] + [seconds(times.get(e)) for e in engines]
        for peer in ("duckdb", "polars", "dask"):
            if has["shoal"] and has[peer]:
                r.append(ratio_text(ratio(times.get("shoal"), times.get(peer))))
        if has["shoal"] and has["duckdb"]:
            r.append(target_text(ratio(times.get("shoal"), times.get("duckdb")), duckdb_limit) if duckdb_limit else "n/a")
        if has["shoal"] and has["dask"]:
            r.append(target_text(ratio(times.get("shoal"), times.get("dask")), DASK_LIMIT) if duckdb_limit else "n/a")
        return r + [verdict]

    rows = [
        row(q, {e: median(e, q) for e in engines}, DUCKDB_LIMIT.get(q, DUCKDB_DEFAULT_LIMIT), agreement[q])
        for q in queries
    ]
    # The sum of the TPC-H queries' medians, for the engines that ran them all.
    tpch = [q for q in TPCH if q in queries]
    if len(tpch) > 1:
        ran_all = [e for e in engines if all(median(e, q) is not None for q in tpch)]
        totals = {e: sum(median(e, q) for q in tpch) for e in ran_all}
        rows.append(row(f"sum of {tpch[0]}–{tpch[-1]}", totals, None, DASH))
    return header, rows


def geomean_lines(queries, median):
    """The geometric mean of shoal/DuckDB over the TPC-H queries both ran, against its goal."""
    tpch = [q for q in TPCH if q in queries]
    pairs = [(ratio(median("shoal", q), median("duckdb", q)), q) for q in tpch]
    pairs = [(r, q) for r, q in pairs if r]
    if not pairs:
        return []
    ratios = [r for r, _ in pairs]
    geomean = float(np.exp(np.mean(np.log(ratios))))
    worst = max(pairs)
    over = sum(r > DUCKDB_DEFAULT_LIMIT for r in ratios)
    return [
        f"Geometric mean of shoal/DuckDB over {len(ratios)} TPC-H queries: **{geomean:.3g}x** "
        f"(goal ≤ {DUCKDB_GEOMEAN_LIMIT:g}x: {'met' if geomean <= DUCKDB_GEOMEAN_LIMIT else 'not met'}); "
        f"worst {worst[1]} at {worst[0]:.3g}x; {over} of {len(ratios)} above {DUCKDB_DEFAULT_LIMIT:g}x.",
    ]


def floor_lines(queries, median):
    """The scan floors of Q1 and Q6 beside shoal's times (absent when the bench did not time them)."""
    rows = []
    for q, floor in SCAN_FLOORS.items():
        t, f = median("shoal", q), median("shoal", floor)
        if q in queries and t is not None and f is not None:
            rows.append(f"| {q} | {seconds(t)} | {seconds(f)} | {ratio_text(ratio(t, f))} | "
                        f"{target_text(ratio(t, f), FLOOR_LIMIT)} |")
    if not rows:
        return []
    return [
        "",
        "## The scan floor",
        "",
        "The same `lineitem` files and columns read by shoal's Parquet reader (`scan::stream_parquet`), "
        "one file per tokio task, as many at once as the executor has workers; no computation, no job, "
        "no output.",
        "",
        f"| query | shoal s | scan floor s | shoal/floor | within {FLOOR_LIMIT:g}x of the floor |",
        "|---|---:|---:|---:|---:|",
    ] + rows


def engine_versions(engines, timings):
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
    return versions


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

    # Queries an engine failed on: "—" for it; a failure of shoal or of the reference fails the check.
    errors = {e: (timings[e].get("errors") or {}) for e in present}
    failed_runs = [(q, e, errors[e][q]) for e in present for q in queries if q in errors[e]]
    failures = []  # (query, engine, problem)
    agreement = {q: query_agreement(args.results, q, present, errors, failures) for q in queries}
    header, rows = table(engines, queries, median, agreement)

    runs = sorted({len(v) for e in present for q, v in timings[e].items() if q in queries and isinstance(v, list)})
    lines = [
        f"# TPC-H SF{args.sf}: shoal vs DuckDB, Polars and Dask",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- scale factor: {args.sf} (tpchgen-cli Parquet: several files per large table, one for supplier, "
        "nation and region); the 22 queries with the standard substitution parameters (validation values)",
        f"- runs: {', '.join(map(str, runs)) or DASH} per engine and query; the table shows the median, "
        "run 1 included. Run 1 is the first in a fresh process, not a cold cache: the OS page cache "
        "likely holds the Parquet files already. Every run reads the Parquet files.",
        f"- engines: {'; '.join(engine_versions(engines, timings))}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 or i == len(header) - 1 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        f"Goals: every TPC-H query at most {DUCKDB_DEFAULT_LIMIT:g}x DuckDB's time and at most {DASK_LIMIT:g}x "
        f"Dask's, the full sort at most {DUCKDB_LIMIT['sort_price']:g}x DuckDB's, the geometric mean over "
        f"the TPC-H queries at most {DUCKDB_GEOMEAN_LIMIT:g}x (ratios of medians; {DASH} where an engine "
        "has no result).",
        "",
    ]
    if "shoal" in present and "duckdb" in present:
        lines += geomean_lines(queries, median)
    lines += floor_lines(queries, median)
    if missing:
        lines.append(f"Not run: {', '.join(missing)}.")

    lines += ["", "## All runs (seconds, in order; run 1 first)", ""]
    for e in present:
        for query in queries + [SCAN_FLOORS[q] for q in queries if q in SCAN_FLOORS]:
            runs_e = timings[e].get(query)
            if runs_e:
                lines.append(f"- {e} {query}: {' '.join(f'{s:.3f}' for s in runs_e)}")

    notes = [(e, timings[e].get("notes")) for e in present if timings[e].get("notes")]
    if notes:
        lines += ["", "## How each engine runs", ""]
        lines += [f"- {e}: {n}" for e, n in notes]

    if failed_runs:
        lines += ["", "## Queries an engine failed on (shown as —)", ""]
        lines += [f"- {q} / {e}: {first_line(why, 500)}" for q, e, why in failed_runs]

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
