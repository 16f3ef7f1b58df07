"""TPC-H peers: five queries on DuckDB, Polars and Dask (dask.dataframe) over TPC-H Parquet data.

    python bench/tpch_peers.py --data DIR --out RESULTS_DIR \
        [--engines duckdb,polars,dask] [--runs 3] [--queries q1,q3,q6,groupby_orderkey,sort_price]

DIR holds DIR/lineitem/*.parquet, DIR/orders/*.parquet and DIR/customer/*.parquet (bench/run-tpch.sh
makes them with tpchgen-cli). For each engine and query, --runs timed runs; each run starts from the
Parquet files (a fresh DuckDB connection, a fresh Polars LazyFrame, a fresh dask graph from
read_parquet) and ends with the whole result materialized in memory. Run 1 is the first in a fresh
process (imports done before timing) but not truly cold: the OS page cache likely holds the files
from data generation or an earlier engine. Later runs are warm. Each engine runs in a subprocess of
its own, one after another, with its default thread count (all cores).

Written after timing, not timed:
  RESULTS_DIR/<engine>/<query>.parquet  the result of the last run, columns named as in the queries
                                        (sort_price: only the sorted l_extendedprice column)
  RESULTS_DIR/<engine>/timings.json     {"<query>": [seconds, ...], ..., "engine": ..., "version": ...,
                                         "versions": {...}, "threads": N, "notes": "..."}
bench/tpch_compare.py reads these, and shoal's bench writes the same format.

Types: tpchgen-cli writes money columns as decimal128(15, 2) and dates as date32. DuckDB and Polars
use them as they are (Polars 2.1 rounds a Decimal product to the larger input scale, 2, row by row:
off from exact by ~1e-9 relative here). Dask casts the four lineitem money columns to float64 right
after read_parquet (inside the timed run): pandas' pyarrow-backed decimals overflow precision 38 in
Q1's price * (1 - discount) * (1 + tax), their mean keeps scale 2, and pandas' astype("float64") of
them goes through Python Decimal objects, so the cast is done by Arrow in a map_partitions.
"""
import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

QUERIES = ["q1", "q3", "q6", "groupby_orderkey", "sort_price"]
ENGINES = ["duckdb", "polars", "dask"]

Q1_SHIPDATE = date(1998, 12, 1) - timedelta(days=90)  # 1998-09-02
Q3_SEGMENT = "BUILDING"
Q3_DATE = date(1995, 3, 15)
Q6_FROM, Q6_TO = date(1994, 1, 1), date(1995, 1, 1)
Q6_DISCOUNT_LO, Q6_DISCOUNT_HI, Q6_QUANTITY = 0.05, 0.07, 24


# ---------------------------------------------------------------------------------------------- DuckDB

DUCKDB_SQL = {
    "q1": """
        SELECT l_returnflag, l_linestatus,
               sum(l_quantity) AS sum_qty,
               sum(l_extendedprice) AS sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               avg(l_quantity) AS avg_qty,
               avg(l_extendedprice) AS avg_price,
               avg(l_discount) AS avg_disc,
               count(*) AS count_order
        FROM lineitem
        WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL 90 DAY
        GROUP BY l_returnflag, l_linestatus
        ORDER BY l_returnflag, l_linestatus""",
    "q3": """
        SELECT l_orderkey,
               sum(l_extendedprice * (1 - l_discount)) AS revenue,
               o_orderdate, o_shippriority
        FROM customer, orders, lineitem
        WHERE c_mktsegment = 'BUILDING'
          AND c_custkey = o_custkey
          AND l_orderkey = o_orderkey
          AND o_orderdate < DATE '1995-03-15'
          AND l_shipdate > DATE '1995-03-15'
        GROUP BY l_orderkey, o_orderdate, o_shippriority
        ORDER BY revenue DESC, o_orderdate
        LIMIT 10""",
    "q6": """
        SELECT sum(l_extendedprice * l_discount) AS revenue
        FROM lineitem
        WHERE l_shipdate >= DATE '1994-01-01'
          AND l_shipdate < DATE '1994-01-01' + INTERVAL 1 YEAR
          AND l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01
          AND l_quantity < 24""",
    "groupby_orderkey": """
        SELECT l_orderkey, sum(l_quantity) AS qty, sum(l_extendedprice) AS price, count(*) AS n
        FROM lineitem
        GROUP BY l_orderkey""",
    "sort_price": "SELECT * FROM lineitem ORDER BY l_extendedprice",
}


class DuckDB:
    name = "duckdb"
    notes = "SQL over views on read_parquet; a new in-memory connection per run; results fetched as Arrow."

    def __init__(self, data):
        import duckdb

        self.duckdb = duckdb
        self.data = data
        self.versions = {"duckdb": duckdb.__version__}
        self.version = duckdb.__version__

    def run(self, query):
        con = self.duckdb.connect()
        for table in ("lineitem", "orders", "customer"):
            path = os.path.join(self.data, table, "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
        result = con.sql(DUCKDB_SQL[query]).to_arrow_table()
        con.close()
        return result

    def threads(self):
        con = self.duckdb.connect()
        [(n,)] = con.sql("SELECT current_setting('threads')").fetchall()
        con.close()
        return int(n)

    def to_arrow(self, query, result):
        if query == "sort_price":
            return result.select(["l_extendedprice"])
        return result


# ---------------------------------------------------------------------------------------------- Polars


class Polars:
    name = "polars"
    notes = "Lazy API over scan_parquet, collect() with the default engine; decimal columns kept as Decimal."

    def __init__(self, data):
        import polars as pl

        self.pl = pl
        self.data = data
        self.version = pl.__version__
        self.versions = {"polars": pl.__version__}

    def scan(self, table):
        return self.pl.scan_parquet(os.path.join(self.data, table, "*.parquet"))

    def run(self, query):
        pl = self.pl
        col = pl.col
        lineitem = self.scan("lineitem")
        if query == "q1":
            disc_price = col("l_extendedprice") * (1 - col("l_discount"))
            return (
                lineitem.filter(col("l_shipdate") <= Q1_SHIPDATE)
                .group_by("l_returnflag", "l_linestatus")
                .agg(
                    sum_qty=col("l_quantity").sum(),
                    sum_base_price=col("l_extendedprice").sum(),
                    sum_disc_price=disc_price.sum(),
                    sum_charge=(disc_price * (1 + col("l_tax"))).sum(),
                    avg_qty=col("l_quantity").mean(),
                    avg_price=col("l_extendedprice").mean(),
                    avg_disc=col("l_discount").mean(),
                    count_order=pl.len(),
                )
                .sort("l_returnflag", "l_linestatus")
                .collect()
            )
        if query == "q3":
            customer = self.scan("customer").filter(col("c_mktsegment") == Q3_SEGMENT)
            orders = self.scan("orders").filter(col("o_orderdate") < Q3_DATE)
            lineitem = lineitem.filter(col("l_shipdate") > Q3_DATE)
            return (
                customer.join(orders, left_on="c_custkey", right_on="o_custkey")
                .join(lineitem, left_on="o_orderkey", right_on="l_orderkey")
                .group_by("o_orderkey", "o_orderdate", "o_shippriority")
                .agg(revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
                .sort(["revenue", "o_orderdate"], descending=[True, False])
                .head(10)
                .select(col("o_orderkey").alias("l_orderkey"), "revenue", "o_orderdate", "o_shippriority")
                .collect()
            )
        if query == "q6":
            return (
                lineitem.filter(
                    col("l_shipdate").is_between(Q6_FROM, Q6_TO, closed="left"),
                    col("l_discount").is_between(Q6_DISCOUNT_LO, Q6_DISCOUNT_HI),
                    col("l_quantity") < Q6_QUANTITY,
                )
                .select(revenue=(col("l_extendedprice") * col("l_discount")).sum())
                .collect()
            )
        if query == "groupby_orderkey":
            return (
                lineitem.group_by("l_orderkey")
                .agg(qty=col("l_quantity").sum(), price=col("l_extendedprice").sum(), n=pl.len())
                .collect()
            )
        if query == "sort_price":
            return lineitem.sort("l_extendedprice").collect()
        raise ValueError(query)

    def threads(self):
        return self.pl.thread_pool_size()

    def to_arrow(self, query, result):
        if query == "sort_price":
            result = result.select("l_extendedprice")
        return result.to_arrow()


# ------------------------------------------------------------------------------------------------ Dask

MONEY = ["l_quantity", "l_extendedprice", "l_discount", "l_tax"]


def decimal_to_float64(series):
    """A pyarrow-backed decimal Series as float64, cast by Arrow. pandas' own astype("float64") goes
    through Python Decimal objects (under the GIL) and made Dask's Q1 about 3x slower at SF0.1."""
    import pandas as pd

    values = pa.chunked_array(series).cast(pa.float64()).to_numpy()
    return pd.Series(values, index=series.index, name=series.name)


class Dask:
    name = "dask"
    notes = (
        "dask.dataframe: read_parquet per table, threaded scheduler; lineitem's decimal128 money columns cast "
        "to float64 by Arrow per partition right after read_parquet (timed), since pandas' pyarrow decimals "
        "overflow in Q1 and their astype(float64) goes through Python Decimal objects; sort_price is "
        "sort_values(...).persist()."
    )

    def __init__(self, data):
        import dask
        import dask.dataframe as dd
        import pandas as pd

        dask.config.set(scheduler="threads")
        self.dask = dask
        self.dd = dd
        self.data = data
        self.version = dask.__version__
        self.versions = {"dask": dask.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__}

    def read(self, table):
        df = self.dd.read_parquet(os.path.join(self.data, table))
        if table == "lineitem":
            df = df.assign(**{c: df[c].map_partitions(decimal_to_float64, meta=(c, "float64")) for c in MONEY})
        return df

    def run(self, query):
        lineitem = self.read("lineitem")
        if query == "q1":
            li = lineitem[lineitem.l_shipdate <= Q1_SHIPDATE]
            li = li.assign(disc_price=li.l_extendedprice * (1 - li.l_discount))
            li = li.assign(charge=li.disc_price * (1 + li.l_tax))
            result = (
                li.groupby(["l_returnflag", "l_linestatus"])
                .agg(
                    sum_qty=("l_quantity", "sum"),
                    sum_base_price=("l_extendedprice", "sum"),
                    sum_disc_price=("disc_price", "sum"),
                    sum_charge=("charge", "sum"),
                    avg_qty=("l_quantity", "mean"),
                    avg_price=("l_extendedprice", "mean"),
                    avg_disc=("l_discount", "mean"),
                    count_order=("l_quantity", "size"),
                )
                .compute()
            )
            return result.sort_index().reset_index()
        if query == "q3":
            customer = self.read("customer")
            orders = self.read("orders")
            customer = customer[customer.c_mktsegment == Q3_SEGMENT]
            orders = orders[orders.o_orderdate < Q3_DATE]
            li = lineitem[lineitem.l_shipdate > Q3_DATE]
            joined = customer.merge(orders, left_on="c_custkey", right_on="o_custkey").merge(
                li, left_on="o_orderkey", right_on="l_orderkey"
            )
            joined = joined.assign(revenue=joined.l_extendedprice * (1 - joined.l_discount))
            revenue = (
                joined.groupby(["l_orderkey", "o_orderdate", "o_shippriority"]).revenue.sum().reset_index()
            )
            top = revenue.sort_values(["revenue", "o_orderdate"], ascending=[False, True]).head(
                10, npartitions=-1
            )
            return top[["l_orderkey", "revenue", "o_orderdate", "o_shippriority"]].reset_index(drop=True)
        if query == "q6":
            li = lineitem[
                (lineitem.l_shipdate >= Q6_FROM)
                & (lineitem.l_shipdate < Q6_TO)
                & (lineitem.l_discount >= Q6_DISCOUNT_LO)
                & (lineitem.l_discount <= Q6_DISCOUNT_HI)
                & (lineitem.l_quantity < Q6_QUANTITY)
            ]
            return (li.l_extendedprice * li.l_discount).sum().compute()
        if query == "groupby_orderkey":
            result = (
                lineitem.groupby("l_orderkey")
                .agg(qty=("l_quantity", "sum"), price=("l_extendedprice", "sum"), n=("l_quantity", "size"))
                .compute()
            )
            return result.reset_index()
        if query == "sort_price":
            return lineitem.sort_values("l_extendedprice").persist()
        raise ValueError(query)

    def threads(self):
        from dask.system import CPU_COUNT

        return self.dask.config.get("num_workers", None) or CPU_COUNT

    def to_arrow(self, query, result):
        if query == "q6":
            return pa.table({"revenue": pa.array([float(result)], pa.float64())})
        if query == "sort_price":
            column = result["l_extendedprice"].compute()
            return pa.table({"l_extendedprice": pa.Array.from_pandas(column)})
        return pa.Table.from_pandas(result, preserve_index=False)


# -------------------------------------------------------------------------------------------- driver

ENGINE_CLASSES = {"duckdb": DuckDB, "polars": Polars, "dask": Dask}


def result_rows(result):
    for attr in ("num_rows", "height"):
        if hasattr(result, attr):
            return getattr(result, attr)
    try:
        return len(result)
    except TypeError:
        return 1


def bench_engine(name, data, out, queries, runs):
    engine = ENGINE_CLASSES[name](data)
    print(f"== {name} {engine.version}: {engine.threads()} threads, {runs} runs per query", flush=True)
    timings = {}
    results = {}
    for query in queries:
        seconds = []
        result = None
        for run in range(runs):
            result = None  # drop the previous run's result before timing the next
            gc.collect()
            started = time.perf_counter()
            result = engine.run(query)
            seconds.append(time.perf_counter() - started)
        timings[query] = seconds
        first, warm = seconds[0], sorted(seconds[1:])
        warm_text = f", warm median {warm[len(warm) // 2]:.3f} s" if warm else ""
        print(
            f"{name:7} {query:17} first {first:.3f} s{warm_text}  "
            f"[{' '.join(f'{s:.3f}' for s in seconds)}]  {result_rows(result)} rows",
            flush=True,
        )
        results[query] = engine.to_arrow(query, result)  # not timed
        result = None
    engine_dir = os.path.join(out, name)
    shutil.rmtree(engine_dir, ignore_errors=True)
    os.makedirs(engine_dir)
    for query, table in results.items():
        pq.write_table(table, os.path.join(engine_dir, f"{query}.parquet"))
    meta = {
        "engine": name,
        "version": engine.version,
        "versions": engine.versions,
        "threads": engine.threads(),
        "runs": runs,
        "notes": engine.notes + " Run 1 is the first in a fresh process (OS page cache may be warm).",
    }
    with open(os.path.join(engine_dir, "timings.json"), "w") as f:
        json.dump({**timings, **meta}, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="TPC-H Parquet directory (lineitem/, orders/, customer/)")
    parser.add_argument("--out", required=True, help="results directory; writes OUT/<engine>/")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    queries = [q for q in args.queries.split(",") if q]
    for e in engines:
        if e not in ENGINE_CLASSES:
            parser.error(f"unknown engine {e!r}; known: {', '.join(ENGINES)}")
    for q in queries:
        if q not in QUERIES:
            parser.error(f"unknown query {q!r}; known: {', '.join(QUERIES)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for table in ("lineitem", "orders", "customer"):
        if not any(f.endswith(".parquet") for f in os.listdir(os.path.join(args.data, table))):
            parser.error(f"no Parquet files in {os.path.join(args.data, table)}")
    os.makedirs(args.out, exist_ok=True)

    if args.in_process or len(engines) == 1:
        for e in engines:
            bench_engine(e, args.data, args.out, queries, args.runs)
        return
    # One subprocess per engine, one after another: separate memory and thread pools.
    for e in engines:
        cmd = [sys.executable, os.path.abspath(__file__), "--data", args.data, "--out", args.out,
               "--engines", e, "--runs", str(args.runs), "--queries", ",".join(queries)]
        code = subprocess.run(cmd).returncode
        if code != 0:
            sys.exit(f"tpch_peers.py: {e} failed (exit {code})")


if __name__ == "__main__":
    main()
