"""TPC-H peers: the 22 TPC-H queries, a group-by and a sort on DuckDB, Polars and Dask (dask.dataframe)
over TPC-H Parquet data.

    python bench/tpch_peers.py --data DIR --out RESULTS_DIR \
        [--engines duckdb,polars,dask] [--runs 3] [--queries q1,q2,...,q22,groupby_orderkey,sort_price]

DIR holds DIR/<table>/*.parquet for the eight tables (bench/run-tpch.sh makes them with
tpchgen-cli). DuckDB runs the TPC-H SQL text with the standard substitution parameters (the
validation values; Q11's fraction is 0.0001 / SF, as the specification sets it: --sf): it is the reference. Polars and
Dask run the same queries written as their users would (one join per join of the SQL, correlated
subqueries as a group-by and a join, EXISTS/IN as semi joins, NOT EXISTS/NOT IN as anti joins), as
shoal's bench/tpch.rs does. For each engine and query, --runs timed runs; each run starts from the
Parquet files (a fresh DuckDB connection, a fresh Polars LazyFrame, a fresh dask graph from
read_parquet) and ends with the whole result materialized in memory. Run 1 is the first in a fresh
process (imports done before timing) but not truly cold: the OS page cache likely holds the files
from data generation or an earlier engine. Later runs are warm. Each engine runs in a subprocess of
its own, one after another, with its default thread count (all cores). A query an engine fails on
is recorded (timings.json "errors") and the others still run.

Written after timing, not timed:
  RESULTS_DIR/<engine>/<query>.parquet  the result of the last run, columns named as in the queries
                                        (sort_price: only the sorted l_extendedprice column)
  RESULTS_DIR/<engine>/timings.json     {"<query>": [seconds, ...], ..., "engine": ..., "version": ...,
                                         "versions": {...}, "threads": N, "notes": "...",
                                         "errors": {"<query>": "why", ...} (only if some failed)}
bench/tpch_compare.py reads these, and shoal's bench writes the same format.

Types: tpchgen-cli writes money columns as decimal128(15, 2) and dates as date32. DuckDB and Polars
use them as they are (Polars 2.1 rounds a Decimal product to the larger input scale, 2, row by row:
off from exact by ~1e-9 relative here; ratios and comparisons with means are cast to Float64).
Dask casts every decimal column to float64 right after read_parquet (inside the timed run):
pandas' pyarrow-backed decimals overflow precision 38 in Q1's price * (1 - discount) * (1 + tax),
their mean keeps scale 2, and pandas' astype("float64") of them goes through Python Decimal
objects, so the cast is done by Arrow in a map_partitions.
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

QUERIES = [f"q{i}" for i in range(1, 23)] + ["groupby_orderkey", "sort_price"]
TABLES = ["lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region"]
ENGINES = ["duckdb", "polars", "dask"]

Q1_SHIPDATE = date(1998, 12, 1) - timedelta(days=90)  # 1998-09-02
Q3_SEGMENT = "BUILDING"
Q3_DATE = date(1995, 3, 15)
Q6_FROM, Q6_TO = date(1994, 1, 1), date(1995, 1, 1)
Q6_DISCOUNT_LO, Q6_DISCOUNT_HI, Q6_QUANTITY = 0.05, 0.07, 24
# Q11's FRACTION: 0.0001 / SF (TPC-H 2.4.11.3); set from --sf by main().
Q11_FRACTION = 0.0001
Q22_CODES = ["13", "31", "23", "29", "30", "18", "17"]


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
    "q2": """
        SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
        FROM part, supplier, partsupp, nation, region
        WHERE p_partkey = ps_partkey
          AND s_suppkey = ps_suppkey
          AND p_size = 15
          AND p_type LIKE '%BRASS'
          AND s_nationkey = n_nationkey
          AND n_regionkey = r_regionkey
          AND r_name = 'EUROPE'
          AND ps_supplycost = (
              SELECT min(ps_supplycost)
              FROM partsupp, supplier, nation, region
              WHERE p_partkey = ps_partkey
                AND s_suppkey = ps_suppkey
                AND s_nationkey = n_nationkey
                AND n_regionkey = r_regionkey
                AND r_name = 'EUROPE')
        ORDER BY s_acctbal DESC, n_name, s_name, p_partkey
        LIMIT 100""",
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
    "q4": """
        SELECT o_orderpriority, count(*) AS order_count
        FROM orders
        WHERE o_orderdate >= DATE '1993-07-01'
          AND o_orderdate < DATE '1993-07-01' + INTERVAL 3 MONTH
          AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate)
        GROUP BY o_orderpriority
        ORDER BY o_orderpriority""",
    "q5": """
        SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
        FROM customer, orders, lineitem, supplier, nation, region
        WHERE c_custkey = o_custkey
          AND l_orderkey = o_orderkey
          AND l_suppkey = s_suppkey
          AND c_nationkey = s_nationkey
          AND s_nationkey = n_nationkey
          AND n_regionkey = r_regionkey
          AND r_name = 'ASIA'
          AND o_orderdate >= DATE '1994-01-01'
          AND o_orderdate < DATE '1994-01-01' + INTERVAL 1 YEAR
        GROUP BY n_name
        ORDER BY revenue DESC""",
    "q6": """
        SELECT sum(l_extendedprice * l_discount) AS revenue
        FROM lineitem
        WHERE l_shipdate >= DATE '1994-01-01'
          AND l_shipdate < DATE '1994-01-01' + INTERVAL 1 YEAR
          AND l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01
          AND l_quantity < 24""",
    "q7": """
        SELECT supp_nation, cust_nation, l_year, sum(volume) AS revenue
        FROM (
            SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation,
                   extract(year FROM l_shipdate) AS l_year,
                   l_extendedprice * (1 - l_discount) AS volume
            FROM supplier, lineitem, orders, customer, nation n1, nation n2
            WHERE s_suppkey = l_suppkey
              AND o_orderkey = l_orderkey
              AND c_custkey = o_custkey
              AND s_nationkey = n1.n_nationkey
              AND c_nationkey = n2.n_nationkey
              AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY')
                   OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE'))
              AND l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31') AS shipping
        GROUP BY supp_nation, cust_nation, l_year
        ORDER BY supp_nation, cust_nation, l_year""",
    "q8": """
        SELECT o_year,
               sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) AS mkt_share
        FROM (
            SELECT extract(year FROM o_orderdate) AS o_year,
                   l_extendedprice * (1 - l_discount) AS volume,
                   n2.n_name AS nation
            FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region
            WHERE p_partkey = l_partkey
              AND s_suppkey = l_suppkey
              AND l_orderkey = o_orderkey
              AND o_custkey = c_custkey
              AND c_nationkey = n1.n_nationkey
              AND n1.n_regionkey = r_regionkey
              AND r_name = 'AMERICA'
              AND s_nationkey = n2.n_nationkey
              AND o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31'
              AND p_type = 'ECONOMY ANODIZED STEEL') AS all_nations
        GROUP BY o_year
        ORDER BY o_year""",
    "q9": """
        SELECT nation, o_year, sum(amount) AS sum_profit
        FROM (
            SELECT n_name AS nation,
                   extract(year FROM o_orderdate) AS o_year,
                   l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity AS amount
            FROM part, supplier, lineitem, partsupp, orders, nation
            WHERE s_suppkey = l_suppkey
              AND ps_suppkey = l_suppkey
              AND ps_partkey = l_partkey
              AND p_partkey = l_partkey
              AND o_orderkey = l_orderkey
              AND s_nationkey = n_nationkey
              AND p_name LIKE '%green%') AS profit
        GROUP BY nation, o_year
        ORDER BY nation, o_year DESC""",
    "q10": """
        SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue,
               c_acctbal, n_name, c_address, c_phone, c_comment
        FROM customer, orders, lineitem, nation
        WHERE c_custkey = o_custkey
          AND l_orderkey = o_orderkey
          AND o_orderdate >= DATE '1993-10-01'
          AND o_orderdate < DATE '1993-10-01' + INTERVAL 3 MONTH
          AND l_returnflag = 'R'
          AND c_nationkey = n_nationkey
        GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
        ORDER BY revenue DESC
        LIMIT 20""",
    "q11": """
        SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value
        FROM partsupp, supplier, nation
        WHERE ps_suppkey = s_suppkey
          AND s_nationkey = n_nationkey
          AND n_name = 'GERMANY'
        GROUP BY ps_partkey
        HAVING sum(ps_supplycost * ps_availqty) > (
            SELECT sum(ps_supplycost * ps_availqty) * {q11_fraction}
            FROM partsupp, supplier, nation
            WHERE ps_suppkey = s_suppkey
              AND s_nationkey = n_nationkey
              AND n_name = 'GERMANY')
        ORDER BY value DESC""",
    "q12": """
        SELECT l_shipmode,
               sum(CASE WHEN o_orderpriority = '1-URGENT' OR o_orderpriority = '2-HIGH'
                        THEN 1 ELSE 0 END) AS high_line_count,
               sum(CASE WHEN o_orderpriority <> '1-URGENT' AND o_orderpriority <> '2-HIGH'
                        THEN 1 ELSE 0 END) AS low_line_count
        FROM orders, lineitem
        WHERE o_orderkey = l_orderkey
          AND l_shipmode IN ('MAIL', 'SHIP')
          AND l_commitdate < l_receiptdate
          AND l_shipdate < l_commitdate
          AND l_receiptdate >= DATE '1994-01-01'
          AND l_receiptdate < DATE '1994-01-01' + INTERVAL 1 YEAR
        GROUP BY l_shipmode
        ORDER BY l_shipmode""",
    "q13": """
        SELECT c_count, count(*) AS custdist
        FROM (
            SELECT c_custkey, count(o_orderkey) AS c_count
            FROM customer LEFT OUTER JOIN orders
                 ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%'
            GROUP BY c_custkey) AS c_orders
        GROUP BY c_count
        ORDER BY custdist DESC, c_count DESC""",
    "q14": """
        SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount)
                                 ELSE 0 END)
               / sum(l_extendedprice * (1 - l_discount)) AS promo_revenue
        FROM lineitem, part
        WHERE l_partkey = p_partkey
          AND l_shipdate >= DATE '1995-09-01'
          AND l_shipdate < DATE '1995-09-01' + INTERVAL 1 MONTH""",
    "q15": """
        WITH revenue AS (
            SELECT l_suppkey AS supplier_no, sum(l_extendedprice * (1 - l_discount)) AS total_revenue
            FROM lineitem
            WHERE l_shipdate >= DATE '1996-01-01'
              AND l_shipdate < DATE '1996-01-01' + INTERVAL 3 MONTH
            GROUP BY l_suppkey)
        SELECT s_suppkey, s_name, s_address, s_phone, total_revenue
        FROM supplier, revenue
        WHERE s_suppkey = supplier_no
          AND total_revenue = (SELECT max(total_revenue) FROM revenue)
        ORDER BY s_suppkey""",
    "q16": """
        SELECT p_brand, p_type, p_size, count(DISTINCT ps_suppkey) AS supplier_cnt
        FROM partsupp, part
        WHERE p_partkey = ps_partkey
          AND p_brand <> 'Brand#45'
          AND p_type NOT LIKE 'MEDIUM POLISHED%'
          AND p_size IN (49, 14, 23, 45, 19, 3, 36, 9)
          AND ps_suppkey NOT IN (SELECT s_suppkey FROM supplier WHERE s_comment LIKE '%Customer%Complaints%')
        GROUP BY p_brand, p_type, p_size
        ORDER BY supplier_cnt DESC, p_brand, p_type, p_size""",
    "q17": """
        SELECT sum(l_extendedprice) / 7.0 AS avg_yearly
        FROM lineitem, part
        WHERE p_partkey = l_partkey
          AND p_brand = 'Brand#23'
          AND p_container = 'MED BOX'
          AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)""",
    "q18": """
        SELECT c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity) AS sum_qty
        FROM customer, orders, lineitem
        WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 300)
          AND c_custkey = o_custkey
          AND o_orderkey = l_orderkey
        GROUP BY c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
        ORDER BY o_totalprice DESC, o_orderdate
        LIMIT 100""",
    "q19": """
        SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue
        FROM lineitem, part
        WHERE (p_partkey = l_partkey
               AND p_brand = 'Brand#12'
               AND p_container IN ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
               AND l_quantity >= 1 AND l_quantity <= 1 + 10
               AND p_size BETWEEN 1 AND 5
               AND l_shipmode IN ('AIR', 'AIR REG')
               AND l_shipinstruct = 'DELIVER IN PERSON')
           OR (p_partkey = l_partkey
               AND p_brand = 'Brand#23'
               AND p_container IN ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
               AND l_quantity >= 10 AND l_quantity <= 10 + 10
               AND p_size BETWEEN 1 AND 10
               AND l_shipmode IN ('AIR', 'AIR REG')
               AND l_shipinstruct = 'DELIVER IN PERSON')
           OR (p_partkey = l_partkey
               AND p_brand = 'Brand#34'
               AND p_container IN ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG')
               AND l_quantity >= 20 AND l_quantity <= 20 + 10
               AND p_size BETWEEN 1 AND 15
               AND l_shipmode IN ('AIR', 'AIR REG')
               AND l_shipinstruct = 'DELIVER IN PERSON')""",
    "q20": """
        SELECT s_name, s_address
        FROM supplier, nation
        WHERE s_suppkey IN (
                SELECT ps_suppkey FROM partsupp
                WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%')
                  AND ps_availqty > (
                      SELECT 0.5 * sum(l_quantity) FROM lineitem
                      WHERE l_partkey = ps_partkey
                        AND l_suppkey = ps_suppkey
                        AND l_shipdate >= DATE '1994-01-01'
                        AND l_shipdate < DATE '1994-01-01' + INTERVAL 1 YEAR))
          AND s_nationkey = n_nationkey
          AND n_name = 'CANADA'
        ORDER BY s_name""",
    "q21": """
        SELECT s_name, count(*) AS numwait
        FROM supplier, lineitem l1, orders, nation
        WHERE s_suppkey = l1.l_suppkey
          AND o_orderkey = l1.l_orderkey
          AND o_orderstatus = 'F'
          AND l1.l_receiptdate > l1.l_commitdate
          AND EXISTS (SELECT * FROM lineitem l2
                      WHERE l2.l_orderkey = l1.l_orderkey AND l2.l_suppkey <> l1.l_suppkey)
          AND NOT EXISTS (SELECT * FROM lineitem l3
                          WHERE l3.l_orderkey = l1.l_orderkey AND l3.l_suppkey <> l1.l_suppkey
                            AND l3.l_receiptdate > l3.l_commitdate)
          AND s_nationkey = n_nationkey
          AND n_name = 'SAUDI ARABIA'
        GROUP BY s_name
        ORDER BY numwait DESC, s_name
        LIMIT 100""",
    "q22": """
        SELECT cntrycode, count(*) AS numcust, sum(c_acctbal) AS totacctbal
        FROM (
            SELECT substring(c_phone FROM 1 FOR 2) AS cntrycode, c_acctbal
            FROM customer
            WHERE substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17')
              AND c_acctbal > (
                  SELECT avg(c_acctbal) FROM customer
                  WHERE c_acctbal > 0.00
                    AND substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17'))
              AND NOT EXISTS (SELECT * FROM orders WHERE o_custkey = c_custkey)) AS custsale
        GROUP BY cntrycode
        ORDER BY cntrycode""",
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
        for table in TABLES:
            path = os.path.join(self.data, table, "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
        result = con.sql(DUCKDB_SQL[query].replace("{q11_fraction}", repr(Q11_FRACTION))).to_arrow_table()
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


# --------------------------------------------------------------------------------------------- Polars


class Polars:
    name = "polars"
    notes = (
        "Lazy API over scan_parquet, collect() with the default engine; decimal columns kept as Decimal, "
        "cast to Float64 only for the ratios of Q8 and Q14 and for comparisons with means (Q17, Q22)."
    )

    def __init__(self, data):
        import polars as pl

        self.pl = pl
        self.data = data
        self.version = pl.__version__
        self.versions = {"polars": pl.__version__}

    def scan(self, table):
        return self.pl.scan_parquet(os.path.join(self.data, table, "*.parquet"))

    def run(self, query):
        return getattr(self, query)().collect()

    def threads(self):
        return self.pl.thread_pool_size()

    def to_arrow(self, query, result):
        if query == "sort_price":
            result = result.select("l_extendedprice")
        return result.to_arrow()

    # Q1 to Q6

    def q1(self):
        col, pl = self.pl.col, self.pl
        disc_price = col("l_extendedprice") * (1 - col("l_discount"))
        return (
            self.scan("lineitem")
            .filter(col("l_shipdate") <= Q1_SHIPDATE)
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
        )

    def q2(self):
        col = self.pl.col
        region = self.scan("region").filter(col("r_name") == "EUROPE")
        nation = self.scan("nation").join(region, left_on="n_regionkey", right_on="r_regionkey")
        supplier = self.scan("supplier").join(nation, left_on="s_nationkey", right_on="n_nationkey")
        partsupp = self.scan("partsupp").join(supplier, left_on="ps_suppkey", right_on="s_suppkey")
        part = self.scan("part").filter((col("p_size") == 15) & col("p_type").str.ends_with("BRASS"))
        offers = part.join(partsupp, left_on="p_partkey", right_on="ps_partkey")
        cheapest = offers.group_by("p_partkey").agg(min_cost=col("ps_supplycost").min())
        return (
            offers.join(cheapest, left_on=["p_partkey", "ps_supplycost"], right_on=["p_partkey", "min_cost"])
            .sort(["s_acctbal", "n_name", "s_name", "p_partkey"], descending=[True, False, False, False])
            .head(100)
            .select("s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address", "s_phone", "s_comment")
        )

    def q3(self):
        col = self.pl.col
        customer = self.scan("customer").filter(col("c_mktsegment") == Q3_SEGMENT)
        orders = self.scan("orders").filter(col("o_orderdate") < Q3_DATE)
        lineitem = self.scan("lineitem").filter(col("l_shipdate") > Q3_DATE)
        return (
            customer.join(orders, left_on="c_custkey", right_on="o_custkey")
            .join(lineitem, left_on="o_orderkey", right_on="l_orderkey")
            .group_by("o_orderkey", "o_orderdate", "o_shippriority")
            .agg(revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
            .sort(["revenue", "o_orderdate"], descending=[True, False])
            .head(10)
            .select(col("o_orderkey").alias("l_orderkey"), "revenue", "o_orderdate", "o_shippriority")
        )

    def q4(self):
        col, pl = self.pl.col, self.pl
        late = self.scan("lineitem").filter(col("l_commitdate") < col("l_receiptdate"))
        return (
            self.scan("orders")
            .filter(col("o_orderdate").is_between(date(1993, 7, 1), date(1993, 10, 1), closed="left"))
            .join(late, left_on="o_orderkey", right_on="l_orderkey", how="semi")
            .group_by("o_orderpriority")
            .agg(order_count=pl.len())
            .sort("o_orderpriority")
        )

    def q5(self):
        col = self.pl.col
        region = self.scan("region").filter(col("r_name") == "ASIA")
        nation = self.scan("nation").join(region, left_on="n_regionkey", right_on="r_regionkey")
        customer = self.scan("customer").join(nation, left_on="c_nationkey", right_on="n_nationkey")
        orders = (
            self.scan("orders")
            .filter(col("o_orderdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left"))
            .join(customer, left_on="o_custkey", right_on="c_custkey")
        )
        return (
            self.scan("lineitem")
            .join(orders, left_on="l_orderkey", right_on="o_orderkey")
            .join(
                self.scan("supplier"), left_on=["l_suppkey", "c_nationkey"], right_on=["s_suppkey", "s_nationkey"]
            )
            .group_by("n_name")
            .agg(revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
            .sort("revenue", descending=True)
        )

    def q6(self):
        col = self.pl.col
        return self.scan("lineitem").filter(
            col("l_shipdate").is_between(Q6_FROM, Q6_TO, closed="left"),
            col("l_discount").is_between(Q6_DISCOUNT_LO, Q6_DISCOUNT_HI),
            col("l_quantity") < Q6_QUANTITY,
        ).select(revenue=(col("l_extendedprice") * col("l_discount")).sum())

    # Q7 to Q12

    def q7(self):
        col = self.pl.col
        nation = self.scan("nation").filter(col("n_name").is_in(["FRANCE", "GERMANY"]))
        supplier = self.scan("supplier").join(nation, left_on="s_nationkey", right_on="n_nationkey").select(
            "s_suppkey", supp_nation=col("n_name")
        )
        customer = self.scan("customer").join(nation, left_on="c_nationkey", right_on="n_nationkey").select(
            "c_custkey", cust_nation=col("n_name")
        )
        return (
            self.scan("lineitem")
            .filter(col("l_shipdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
            .join(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .join(self.scan("orders"), left_on="l_orderkey", right_on="o_orderkey")
            .join(customer, left_on="o_custkey", right_on="c_custkey")
            .filter(
                ((col("supp_nation") == "FRANCE") & (col("cust_nation") == "GERMANY"))
                | ((col("supp_nation") == "GERMANY") & (col("cust_nation") == "FRANCE"))
            )
            .group_by("supp_nation", "cust_nation", l_year=col("l_shipdate").dt.year())
            .agg(revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
            .sort("supp_nation", "cust_nation", "l_year")
        )

    def q8(self):
        col, pl = self.pl.col, self.pl
        region = self.scan("region").filter(col("r_name") == "AMERICA")
        nation = self.scan("nation")
        america = nation.join(region, left_on="n_regionkey", right_on="r_regionkey").select("n_nationkey")
        customer = self.scan("customer").join(america, left_on="c_nationkey", right_on="n_nationkey")
        supplier = self.scan("supplier").join(
            nation.select("n_nationkey", nation=col("n_name")), left_on="s_nationkey", right_on="n_nationkey"
        )
        part = self.scan("part").filter(col("p_type") == "ECONOMY ANODIZED STEEL")
        orders = self.scan("orders").filter(col("o_orderdate").is_between(date(1995, 1, 1), date(1996, 12, 31)))
        volume = col("l_extendedprice") * (1 - col("l_discount"))
        return (
            self.scan("lineitem")
            .join(part, left_on="l_partkey", right_on="p_partkey")
            .join(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .join(orders, left_on="l_orderkey", right_on="o_orderkey")
            .join(customer, left_on="o_custkey", right_on="c_custkey")
            .group_by(o_year=col("o_orderdate").dt.year())
            .agg(
                mkt_share=pl.when(col("nation") == "BRAZIL").then(volume).otherwise(0).sum().cast(pl.Float64)
                / volume.sum().cast(pl.Float64)
            )
            .sort("o_year")
        )

    def q9(self):
        col = self.pl.col
        part = self.scan("part").filter(col("p_name").str.contains("green", literal=True))
        amount = col("l_extendedprice") * (1 - col("l_discount")) - col("ps_supplycost") * col("l_quantity")
        return (
            self.scan("lineitem")
            .join(part, left_on="l_partkey", right_on="p_partkey")
            .join(self.scan("partsupp"), left_on=["l_suppkey", "l_partkey"], right_on=["ps_suppkey", "ps_partkey"])
            .join(self.scan("supplier"), left_on="l_suppkey", right_on="s_suppkey")
            .join(self.scan("orders"), left_on="l_orderkey", right_on="o_orderkey")
            .join(self.scan("nation"), left_on="s_nationkey", right_on="n_nationkey")
            .group_by(nation=col("n_name"), o_year=col("o_orderdate").dt.year())
            .agg(sum_profit=amount.sum())
            .sort(["nation", "o_year"], descending=[False, True])
        )

    def q10(self):
        col = self.pl.col
        orders = self.scan("orders").filter(
            col("o_orderdate").is_between(date(1993, 10, 1), date(1994, 1, 1), closed="left")
        )
        returned = self.scan("lineitem").filter(col("l_returnflag") == "R")
        keys = ["c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment"]
        return (
            self.scan("customer")
            .join(orders, left_on="c_custkey", right_on="o_custkey")
            .join(returned, left_on="o_orderkey", right_on="l_orderkey")
            .join(self.scan("nation"), left_on="c_nationkey", right_on="n_nationkey")
            .group_by(keys)
            .agg(revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
            .top_k(20, by="revenue")
            .select("c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone", "c_comment")
        )

    def q11(self):
        col = self.pl.col
        nation = self.scan("nation").filter(col("n_name") == "GERMANY")
        supplier = self.scan("supplier").join(nation, left_on="s_nationkey", right_on="n_nationkey")
        return (
            self.scan("partsupp")
            .join(supplier, left_on="ps_suppkey", right_on="s_suppkey")
            .group_by("ps_partkey")
            .agg(value=(col("ps_supplycost") * col("ps_availqty")).sum())
            # The sum over all parts is the subquery's total.
            .filter(col("value") > col("value").sum() * Q11_FRACTION)
            .sort("value", descending=True)
        )

    def q12(self):
        col = self.pl.col
        urgent = col("o_orderpriority").is_in(["1-URGENT", "2-HIGH"])
        return (
            self.scan("lineitem")
            .filter(
                col("l_shipmode").is_in(["MAIL", "SHIP"]),
                col("l_commitdate") < col("l_receiptdate"),
                col("l_shipdate") < col("l_commitdate"),
                col("l_receiptdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left"),
            )
            .join(self.scan("orders"), left_on="l_orderkey", right_on="o_orderkey")
            .group_by("l_shipmode")
            .agg(high_line_count=urgent.sum(), low_line_count=(~urgent).sum())
            .sort("l_shipmode")
        )

    # Q13 to Q18

    def q13(self):
        col, pl = self.pl.col, self.pl
        orders = self.scan("orders").filter(~col("o_comment").str.contains("special.*requests"))
        return (
            self.scan("customer")
            .join(orders, left_on="c_custkey", right_on="o_custkey", how="left")
            .group_by("c_custkey")
            .agg(c_count=col("o_orderkey").count())
            .group_by("c_count")
            .agg(custdist=pl.len())
            .sort(["custdist", "c_count"], descending=[True, True])
        )

    def q14(self):
        col, pl = self.pl.col, self.pl
        volume = col("l_extendedprice") * (1 - col("l_discount"))
        promo = pl.when(col("p_type").str.starts_with("PROMO")).then(volume).otherwise(0)
        return (
            self.scan("lineitem")
            .filter(col("l_shipdate").is_between(date(1995, 9, 1), date(1995, 10, 1), closed="left"))
            .join(self.scan("part"), left_on="l_partkey", right_on="p_partkey")
            .select(promo_revenue=100.0 * promo.sum().cast(pl.Float64) / volume.sum().cast(pl.Float64))
        )

    def q15(self):
        col = self.pl.col
        revenue = (
            self.scan("lineitem")
            .filter(col("l_shipdate").is_between(date(1996, 1, 1), date(1996, 4, 1), closed="left"))
            .group_by("l_suppkey")
            .agg(total_revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
            .filter(col("total_revenue") == col("total_revenue").max())
        )
        return (
            self.scan("supplier")
            .join(revenue, left_on="s_suppkey", right_on="l_suppkey")
            .sort("s_suppkey")
            .select("s_suppkey", "s_name", "s_address", "s_phone", "total_revenue")
        )

    def q16(self):
        col = self.pl.col
        complaints = self.scan("supplier").filter(col("s_comment").str.contains("Customer.*Complaints"))
        part = self.scan("part").filter(
            col("p_brand") != "Brand#45",
            ~col("p_type").str.starts_with("MEDIUM POLISHED"),
            col("p_size").is_in([49, 14, 23, 45, 19, 3, 36, 9]),
        )
        return (
            self.scan("partsupp")
            .join(complaints, left_on="ps_suppkey", right_on="s_suppkey", how="anti")
            .join(part, left_on="ps_partkey", right_on="p_partkey")
            .group_by("p_brand", "p_type", "p_size")
            .agg(supplier_cnt=col("ps_suppkey").n_unique())
            .sort(["supplier_cnt", "p_brand", "p_type", "p_size"], descending=[True, False, False, False])
        )

    def q17(self):
        col, pl = self.pl.col, self.pl
        part = self.scan("part").filter(col("p_brand") == "Brand#23", col("p_container") == "MED BOX")
        items = self.scan("lineitem").join(part, left_on="l_partkey", right_on="p_partkey")
        average = items.group_by("l_partkey").agg(avg_qty=col("l_quantity").cast(pl.Float64).mean())
        return (
            items.join(average, on="l_partkey")
            .filter(col("l_quantity").cast(pl.Float64) < 0.2 * col("avg_qty"))
            .select(avg_yearly=col("l_extendedprice").sum().cast(pl.Float64) / 7.0)
        )

    def q18(self):
        col = self.pl.col
        lineitem = self.scan("lineitem")
        large = lineitem.group_by("l_orderkey").agg(sum_qty=col("l_quantity").sum()).filter(col("sum_qty") > 300)
        return (
            self.scan("orders")
            .join(large, left_on="o_orderkey", right_on="l_orderkey", how="semi")
            .join(self.scan("customer"), left_on="o_custkey", right_on="c_custkey")
            .join(lineitem, left_on="o_orderkey", right_on="l_orderkey")
            .group_by("c_name", "o_orderkey", "o_orderdate", "o_totalprice", c_custkey=col("o_custkey"))
            .agg(sum_qty=col("l_quantity").sum())
            .sort(["o_totalprice", "o_orderdate"], descending=[True, False])
            .head(100)
        )

    # Q19 to Q22

    def q19(self):
        col = self.pl.col

        def kind(brand, containers, qty, size):
            return (
                (col("p_brand") == brand)
                & col("p_container").is_in(containers)
                & col("l_quantity").is_between(qty, qty + 10)
                & col("p_size").is_between(1, size)
            )

        return (
            self.scan("lineitem")
            .filter(col("l_shipmode").is_in(["AIR", "AIR REG"]), col("l_shipinstruct") == "DELIVER IN PERSON")
            .join(self.scan("part"), left_on="l_partkey", right_on="p_partkey")
            .filter(
                kind("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 1, 5)
                | kind("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 10)
                | kind("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 20, 15)
            )
            .select(revenue=(col("l_extendedprice") * (1 - col("l_discount"))).sum())
        )

    def q20(self):
        col = self.pl.col
        forest = self.scan("part").filter(col("p_name").str.starts_with("forest"))
        shipped = (
            self.scan("lineitem")
            .filter(col("l_shipdate").is_between(date(1994, 1, 1), date(1995, 1, 1), closed="left"))
            .group_by("l_partkey", "l_suppkey")
            .agg(sum_qty=col("l_quantity").sum())
        )
        excess = (
            self.scan("partsupp")
            .join(forest, left_on="ps_partkey", right_on="p_partkey", how="semi")
            .join(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"])
            .filter(col("ps_availqty") > 0.5 * col("sum_qty"))
        )
        nation = self.scan("nation").filter(col("n_name") == "CANADA")
        return (
            self.scan("supplier")
            .join(nation, left_on="s_nationkey", right_on="n_nationkey")
            .join(excess, left_on="s_suppkey", right_on="ps_suppkey", how="semi")
            .sort("s_name")
            .select("s_name", "s_address")
        )

    def q21(self):
        col, pl = self.pl.col, self.pl
        lineitem = self.scan("lineitem")
        late = lineitem.filter(col("l_receiptdate") > col("l_commitdate"))
        nation = self.scan("nation").filter(col("n_name") == "SAUDI ARABIA")
        supplier = self.scan("supplier").join(nation, left_on="s_nationkey", right_on="n_nationkey")
        orders = self.scan("orders").filter(col("o_orderstatus") == "F")
        shared = lineitem.group_by("l_orderkey").agg(n=col("l_suppkey").n_unique()).filter(col("n") > 1)
        late_shared = late.group_by("l_orderkey").agg(n=col("l_suppkey").n_unique()).filter(col("n") > 1)
        return (
            late.join(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .join(orders, left_on="l_orderkey", right_on="o_orderkey")
            .join(shared, on="l_orderkey", how="semi")
            .join(late_shared, on="l_orderkey", how="anti")
            .group_by("s_name")
            .agg(numwait=pl.len())
            .sort(["numwait", "s_name"], descending=[True, False])
            .head(100)
        )

    def q22(self):
        col, pl = self.pl.col, self.pl
        customer = self.scan("customer").with_columns(cntrycode=col("c_phone").str.slice(0, 2)).filter(
            col("cntrycode").is_in(Q22_CODES)
        )
        balance = col("c_acctbal").cast(pl.Float64)
        return (
            customer.filter(balance > balance.filter(balance > 0.0).mean())
            .join(self.scan("orders"), left_on="c_custkey", right_on="o_custkey", how="anti")
            .group_by("cntrycode")
            .agg(numcust=pl.len(), totacctbal=col("c_acctbal").sum())
            .sort("cntrycode")
        )

    def groupby_orderkey(self):
        col, pl = self.pl.col, self.pl
        return (
            self.scan("lineitem")
            .group_by("l_orderkey")
            .agg(qty=col("l_quantity").sum(), price=col("l_extendedprice").sum(), n=pl.len())
        )

    def sort_price(self):
        return self.scan("lineitem").sort("l_extendedprice")


# ----------------------------------------------------------------------------------------------- Dask


def decimal_to_float64(series):
    """A pyarrow-backed decimal Series as float64, cast by Arrow. pandas' own astype("float64") goes
    through Python Decimal objects (under the GIL) and made Dask's Q1 about 3x slower at SF0.1."""
    import pandas as pd

    values = pa.chunked_array(series).cast(pa.float64()).to_numpy()
    return pd.Series(values, index=series.index, name=series.name)


def is_decimal(dtype):
    import pandas as pd

    return isinstance(dtype, pd.ArrowDtype) and pa.types.is_decimal(dtype.pyarrow_dtype)


class Dask:
    name = "dask"
    notes = (
        "dask.dataframe: read_parquet per table, threaded scheduler; decimal128 money columns cast to float64 "
        "by Arrow per partition right after read_parquet (timed), since pandas' pyarrow decimals overflow in "
        "Q1 and their astype(float64) goes through Python Decimal objects; EXISTS/IN as merge(how='leftsemi'), "
        "NOT EXISTS/NOT IN as a left merge with the distinct keys and a marker column; scalar subqueries as "
        "dask scalars; small final results sorted with pandas after compute(); sort_price is "
        "sort_values(...).persist()."
    )

    def __init__(self, data):
        import dask
        import dask.dataframe as dd
        import pandas as pd

        dask.config.set(scheduler="threads")
        self.dask = dask
        self.dd = dd
        self.pd = pd
        self.data = data
        self.version = dask.__version__
        self.versions = {"dask": dask.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__}

    def read(self, table):
        df = self.dd.read_parquet(os.path.join(self.data, table))
        money = [c for c, t in df.dtypes.items() if is_decimal(t)]
        return df.assign(**{c: df[c].map_partitions(decimal_to_float64, meta=(c, "float64")) for c in money})

    def run(self, query):
        return getattr(self, query)()

    def threads(self):
        from dask.system import CPU_COUNT

        return self.dask.config.get("num_workers", None) or CPU_COUNT

    def to_arrow(self, query, result):
        if query == "sort_price":
            column = result["l_extendedprice"].compute()
            return pa.table({"l_extendedprice": pa.Array.from_pandas(column)})
        return pa.Table.from_pandas(result, preserve_index=False)

    # Helpers.

    @staticmethod
    def anti(left, right, left_on, right_on):
        """Rows of `left` without a match in `right` (NOT EXISTS): a left merge with the distinct keys."""
        keys = right[[right_on]].drop_duplicates().assign(_matched=1)
        joined = left.merge(keys, how="left", left_on=left_on, right_on=right_on)
        joined = joined[joined._matched.isna()]
        return joined[list(left.columns)]

    @staticmethod
    def finish(df, by, ascending=True, n=None, columns=None):
        """A small result: computed, then sorted (and cut to `n` rows) with pandas."""
        result = df.compute() if hasattr(df, "compute") else df
        result = result.sort_values(by, ascending=ascending)
        if n is not None:
            result = result.head(n)
        if columns is not None:
            result = result[columns]
        return result.reset_index(drop=True)

    def scalar(self, **values):
        """A one-row result from dask scalars."""
        computed = self.dask.compute(*values.values())
        return self.pd.DataFrame({k: [float(v)] for k, v in zip(values, computed)})

    # Q1 to Q6

    def q1(self):
        li = self.read("lineitem")
        li = li[li.l_shipdate <= Q1_SHIPDATE]
        li = li.assign(disc_price=li.l_extendedprice * (1 - li.l_discount))
        li = li.assign(charge=li.disc_price * (1 + li.l_tax))
        result = li.groupby(["l_returnflag", "l_linestatus"]).agg(
            sum_qty=("l_quantity", "sum"),
            sum_base_price=("l_extendedprice", "sum"),
            sum_disc_price=("disc_price", "sum"),
            sum_charge=("charge", "sum"),
            avg_qty=("l_quantity", "mean"),
            avg_price=("l_extendedprice", "mean"),
            avg_disc=("l_discount", "mean"),
            count_order=("l_quantity", "size"),
        )
        return result.compute().sort_index().reset_index()

    def q2(self):
        region = self.read("region")
        region = region[region.r_name == "EUROPE"]
        nation = self.read("nation").merge(region, left_on="n_regionkey", right_on="r_regionkey")
        supplier = self.read("supplier").merge(nation, left_on="s_nationkey", right_on="n_nationkey")
        partsupp = self.read("partsupp").merge(supplier, left_on="ps_suppkey", right_on="s_suppkey")
        part = self.read("part")
        part = part[(part.p_size == 15) & part.p_type.str.endswith("BRASS")]
        offers = part.merge(partsupp, left_on="p_partkey", right_on="ps_partkey")
        cheapest = offers.groupby("p_partkey").agg(min_cost=("ps_supplycost", "min")).reset_index()
        best = offers.merge(cheapest, left_on=["p_partkey", "ps_supplycost"], right_on=["p_partkey", "min_cost"])
        columns = ["s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address", "s_phone", "s_comment"]
        return self.finish(best, ["s_acctbal", "n_name", "s_name", "p_partkey"], [False, True, True, True], 100,
                           columns)

    def q3(self):
        customer, orders, li = self.read("customer"), self.read("orders"), self.read("lineitem")
        customer = customer[customer.c_mktsegment == Q3_SEGMENT]
        orders = orders[orders.o_orderdate < Q3_DATE]
        li = li[li.l_shipdate > Q3_DATE]
        joined = customer.merge(orders, left_on="c_custkey", right_on="o_custkey").merge(
            li, left_on="o_orderkey", right_on="l_orderkey"
        )
        joined = joined.assign(revenue=joined.l_extendedprice * (1 - joined.l_discount))
        revenue = joined.groupby(["l_orderkey", "o_orderdate", "o_shippriority"]).revenue.sum().reset_index()
        top = revenue.sort_values(["revenue", "o_orderdate"], ascending=[False, True]).head(10, npartitions=-1)
        return top[["l_orderkey", "revenue", "o_orderdate", "o_shippriority"]].reset_index(drop=True)

    def q4(self):
        li, orders = self.read("lineitem"), self.read("orders")
        late = li[li.l_commitdate < li.l_receiptdate]
        orders = orders[(orders.o_orderdate >= date(1993, 7, 1)) & (orders.o_orderdate < date(1993, 10, 1))]
        counts = (
            orders.merge(late, how="leftsemi", left_on="o_orderkey", right_on="l_orderkey")
            .groupby("o_orderpriority")
            .agg(order_count=("o_orderkey", "size"))
            .reset_index()
        )
        return self.finish(counts, "o_orderpriority")

    def q5(self):
        region = self.read("region")
        region = region[region.r_name == "ASIA"]
        nation = self.read("nation").merge(region, left_on="n_regionkey", right_on="r_regionkey")
        customer = self.read("customer").merge(nation, left_on="c_nationkey", right_on="n_nationkey")
        orders = self.read("orders")
        orders = orders[(orders.o_orderdate >= date(1994, 1, 1)) & (orders.o_orderdate < date(1995, 1, 1))]
        orders = orders.merge(customer, left_on="o_custkey", right_on="c_custkey")
        joined = (
            self.read("lineitem")
            .merge(orders, left_on="l_orderkey", right_on="o_orderkey")
            .merge(
                self.read("supplier"), left_on=["l_suppkey", "c_nationkey"], right_on=["s_suppkey", "s_nationkey"]
            )
        )
        joined = joined.assign(volume=joined.l_extendedprice * (1 - joined.l_discount))
        revenue = joined.groupby("n_name").agg(revenue=("volume", "sum")).reset_index()
        return self.finish(revenue, "revenue", ascending=False)

    def q6(self):
        li = self.read("lineitem")
        li = li[
            (li.l_shipdate >= Q6_FROM)
            & (li.l_shipdate < Q6_TO)
            & (li.l_discount >= Q6_DISCOUNT_LO)
            & (li.l_discount <= Q6_DISCOUNT_HI)
            & (li.l_quantity < Q6_QUANTITY)
        ]
        return self.scalar(revenue=(li.l_extendedprice * li.l_discount).sum())

    # Q7 to Q12

    def q7(self):
        nation = self.read("nation")
        nation = nation[nation.n_name.isin(["FRANCE", "GERMANY"])]
        supplier = self.read("supplier").merge(nation, left_on="s_nationkey", right_on="n_nationkey")
        supplier = supplier[["s_suppkey", "n_name"]].rename(columns={"n_name": "supp_nation"})
        customer = self.read("customer").merge(nation, left_on="c_nationkey", right_on="n_nationkey")
        customer = customer[["c_custkey", "n_name"]].rename(columns={"n_name": "cust_nation"})
        li = self.read("lineitem")
        li = li[(li.l_shipdate >= date(1995, 1, 1)) & (li.l_shipdate <= date(1996, 12, 31))]
        joined = (
            li.merge(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .merge(self.read("orders"), left_on="l_orderkey", right_on="o_orderkey")
            .merge(customer, left_on="o_custkey", right_on="c_custkey")
        )
        joined = joined[
            ((joined.supp_nation == "FRANCE") & (joined.cust_nation == "GERMANY"))
            | ((joined.supp_nation == "GERMANY") & (joined.cust_nation == "FRANCE"))
        ]
        joined = joined.assign(
            l_year=joined.l_shipdate.dt.year, volume=joined.l_extendedprice * (1 - joined.l_discount)
        )
        revenue = joined.groupby(["supp_nation", "cust_nation", "l_year"]).agg(revenue=("volume", "sum"))
        return self.finish(revenue.reset_index(), ["supp_nation", "cust_nation", "l_year"])

    def q8(self):
        region = self.read("region")
        region = region[region.r_name == "AMERICA"]
        nation = self.read("nation")
        america = nation.merge(region, left_on="n_regionkey", right_on="r_regionkey")[["n_nationkey"]]
        customer = self.read("customer").merge(america, left_on="c_nationkey", right_on="n_nationkey")
        supplier_nation = nation[["n_nationkey", "n_name"]].rename(columns={"n_name": "nation"})
        supplier = self.read("supplier").merge(supplier_nation, left_on="s_nationkey", right_on="n_nationkey")
        part = self.read("part")
        part = part[part.p_type == "ECONOMY ANODIZED STEEL"]
        orders = self.read("orders")
        orders = orders[(orders.o_orderdate >= date(1995, 1, 1)) & (orders.o_orderdate <= date(1996, 12, 31))]
        joined = (
            self.read("lineitem")
            .merge(part, left_on="l_partkey", right_on="p_partkey")
            .merge(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .merge(orders, left_on="l_orderkey", right_on="o_orderkey")
            .merge(customer, left_on="o_custkey", right_on="c_custkey")
        )
        volume = joined.l_extendedprice * (1 - joined.l_discount)
        joined = joined.assign(
            o_year=joined.o_orderdate.dt.year, volume=volume, brazil=volume.where(joined.nation == "BRAZIL", 0.0)
        )
        sums = joined.groupby("o_year").agg(brazil=("brazil", "sum"), volume=("volume", "sum")).compute()
        result = (sums.brazil / sums.volume).rename("mkt_share").reset_index()
        return self.finish(result, "o_year")

    def q9(self):
        part = self.read("part")
        part = part[part.p_name.str.contains("green", regex=False)]
        joined = (
            self.read("lineitem")
            .merge(part, left_on="l_partkey", right_on="p_partkey")
            .merge(
                self.read("partsupp"), left_on=["l_suppkey", "l_partkey"], right_on=["ps_suppkey", "ps_partkey"]
            )
            .merge(self.read("supplier"), left_on="l_suppkey", right_on="s_suppkey")
            .merge(self.read("orders"), left_on="l_orderkey", right_on="o_orderkey")
            .merge(self.read("nation"), left_on="s_nationkey", right_on="n_nationkey")
        )
        joined = joined.assign(
            nation=joined.n_name,
            o_year=joined.o_orderdate.dt.year,
            amount=joined.l_extendedprice * (1 - joined.l_discount) - joined.ps_supplycost * joined.l_quantity,
        )
        profit = joined.groupby(["nation", "o_year"]).agg(sum_profit=("amount", "sum")).reset_index()
        return self.finish(profit, ["nation", "o_year"], [True, False])

    def q10(self):
        orders = self.read("orders")
        orders = orders[(orders.o_orderdate >= date(1993, 10, 1)) & (orders.o_orderdate < date(1994, 1, 1))]
        li = self.read("lineitem")
        returned = li[li.l_returnflag == "R"]
        joined = (
            self.read("customer")
            .merge(orders, left_on="c_custkey", right_on="o_custkey")
            .merge(returned, left_on="o_orderkey", right_on="l_orderkey")
            .merge(self.read("nation"), left_on="c_nationkey", right_on="n_nationkey")
        )
        joined = joined.assign(volume=joined.l_extendedprice * (1 - joined.l_discount))
        keys = ["c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment"]
        revenue = joined.groupby(keys).agg(revenue=("volume", "sum")).reset_index()
        top = revenue.nlargest(20, "revenue").compute()
        columns = ["c_custkey", "c_name", "revenue", "c_acctbal", "n_name", "c_address", "c_phone", "c_comment"]
        return self.finish(top, "revenue", ascending=False, columns=columns)

    def q11(self):
        nation = self.read("nation")
        nation = nation[nation.n_name == "GERMANY"]
        supplier = self.read("supplier").merge(nation, left_on="s_nationkey", right_on="n_nationkey")
        stock = self.read("partsupp").merge(supplier, left_on="ps_suppkey", right_on="s_suppkey")
        stock = stock.assign(value=stock.ps_supplycost * stock.ps_availqty)
        per_part = stock.groupby("ps_partkey").agg(value=("value", "sum")).reset_index()
        threshold = stock.value.sum() * Q11_FRACTION
        return self.finish(per_part[per_part.value > threshold], "value", ascending=False)

    def q12(self):
        li = self.read("lineitem")
        li = li[
            li.l_shipmode.isin(["MAIL", "SHIP"])
            & (li.l_commitdate < li.l_receiptdate)
            & (li.l_shipdate < li.l_commitdate)
            & (li.l_receiptdate >= date(1994, 1, 1))
            & (li.l_receiptdate < date(1995, 1, 1))
        ]
        joined = li.merge(self.read("orders"), left_on="l_orderkey", right_on="o_orderkey")
        urgent = joined.o_orderpriority.isin(["1-URGENT", "2-HIGH"])
        joined = joined.assign(high=urgent.astype("int64"), low=(~urgent).astype("int64"))
        counts = joined.groupby("l_shipmode").agg(high_line_count=("high", "sum"), low_line_count=("low", "sum"))
        return self.finish(counts.reset_index(), "l_shipmode")

    # Q13 to Q18

    def q13(self):
        orders = self.read("orders")
        orders = orders[~orders.o_comment.str.contains("special.*requests", regex=True)]
        joined = self.read("customer").merge(orders, left_on="c_custkey", right_on="o_custkey", how="left")
        counts = joined.groupby("c_custkey").agg(c_count=("o_orderkey", "count")).reset_index()
        distribution = counts.groupby("c_count").agg(custdist=("c_custkey", "size")).reset_index()
        return self.finish(distribution, ["custdist", "c_count"], [False, False])

    def q14(self):
        li = self.read("lineitem")
        li = li[(li.l_shipdate >= date(1995, 9, 1)) & (li.l_shipdate < date(1995, 10, 1))]
        joined = li.merge(self.read("part"), left_on="l_partkey", right_on="p_partkey")
        volume = joined.l_extendedprice * (1 - joined.l_discount)
        promo = volume.where(joined.p_type.str.startswith("PROMO"), 0.0)
        return self.scalar(promo_revenue=100.0 * promo.sum() / volume.sum())

    def q15(self):
        li = self.read("lineitem")
        li = li[(li.l_shipdate >= date(1996, 1, 1)) & (li.l_shipdate < date(1996, 4, 1))]
        li = li.assign(volume=li.l_extendedprice * (1 - li.l_discount))
        revenue = li.groupby("l_suppkey").agg(total_revenue=("volume", "sum")).reset_index()
        best = revenue[revenue.total_revenue == revenue.total_revenue.max()]
        suppliers = self.read("supplier").merge(best, left_on="s_suppkey", right_on="l_suppkey")
        return self.finish(suppliers, "s_suppkey",
                           columns=["s_suppkey", "s_name", "s_address", "s_phone", "total_revenue"])

    def q16(self):
        supplier = self.read("supplier")
        complaints = supplier[supplier.s_comment.str.contains("Customer.*Complaints", regex=True)]
        part = self.read("part")
        part = part[
            (part.p_brand != "Brand#45")
            & ~part.p_type.str.startswith("MEDIUM POLISHED")
            & part.p_size.isin([49, 14, 23, 45, 19, 3, 36, 9])
        ]
        partsupp = self.anti(self.read("partsupp"), complaints, "ps_suppkey", "s_suppkey")
        joined = partsupp.merge(part, left_on="ps_partkey", right_on="p_partkey")
        counts = joined.groupby(["p_brand", "p_type", "p_size"]).ps_suppkey.nunique().rename("supplier_cnt")
        return self.finish(counts.reset_index(), ["supplier_cnt", "p_brand", "p_type", "p_size"],
                           [False, True, True, True])

    def q17(self):
        part = self.read("part")
        part = part[(part.p_brand == "Brand#23") & (part.p_container == "MED BOX")]
        items = self.read("lineitem").merge(part, left_on="l_partkey", right_on="p_partkey")
        average = items.groupby("l_partkey").agg(avg_qty=("l_quantity", "mean")).reset_index()
        joined = items.merge(average, on="l_partkey")
        joined = joined[joined.l_quantity < 0.2 * joined.avg_qty]
        return self.scalar(avg_yearly=joined.l_extendedprice.sum() / 7.0)

    def q18(self):
        lineitem = self.read("lineitem")
        large = lineitem.groupby("l_orderkey").agg(sum_qty=("l_quantity", "sum")).reset_index()
        large = large[large.sum_qty > 300]
        joined = (
            self.read("orders")
            .merge(large[["l_orderkey"]], how="leftsemi", left_on="o_orderkey", right_on="l_orderkey")
            .merge(self.read("customer"), left_on="o_custkey", right_on="c_custkey")
            .merge(lineitem, left_on="o_orderkey", right_on="l_orderkey")
        )
        keys = ["c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice"]
        result = joined.groupby(keys).agg(sum_qty=("l_quantity", "sum")).reset_index()
        return self.finish(result, ["o_totalprice", "o_orderdate"], [False, True], 100)

    # Q19 to Q22

    def q19(self):
        li = self.read("lineitem")
        li = li[li.l_shipmode.isin(["AIR", "AIR REG"]) & (li.l_shipinstruct == "DELIVER IN PERSON")]
        j = li.merge(self.read("part"), left_on="l_partkey", right_on="p_partkey")

        def kind(brand, containers, qty, size):
            return (
                (j.p_brand == brand)
                & j.p_container.isin(containers)
                & (j.l_quantity >= qty)
                & (j.l_quantity <= qty + 10)
                & (j.p_size >= 1)
                & (j.p_size <= size)
            )

        j = j[
            kind("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 1, 5)
            | kind("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 10)
            | kind("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 20, 15)
        ]
        return self.scalar(revenue=(j.l_extendedprice * (1 - j.l_discount)).sum())

    def q20(self):
        part = self.read("part")
        forest = part[part.p_name.str.startswith("forest")]
        li = self.read("lineitem")
        li = li[(li.l_shipdate >= date(1994, 1, 1)) & (li.l_shipdate < date(1995, 1, 1))]
        shipped = li.groupby(["l_partkey", "l_suppkey"]).agg(sum_qty=("l_quantity", "sum")).reset_index()
        excess = (
            self.read("partsupp")
            .merge(forest, how="leftsemi", left_on="ps_partkey", right_on="p_partkey")
            .merge(shipped, left_on=["ps_partkey", "ps_suppkey"], right_on=["l_partkey", "l_suppkey"])
        )
        excess = excess[excess.ps_availqty > 0.5 * excess.sum_qty]
        nation = self.read("nation")
        nation = nation[nation.n_name == "CANADA"]
        suppliers = (
            self.read("supplier")
            .merge(nation, left_on="s_nationkey", right_on="n_nationkey")
            .merge(excess[["ps_suppkey"]], how="leftsemi", left_on="s_suppkey", right_on="ps_suppkey")
        )
        return self.finish(suppliers, "s_name", columns=["s_name", "s_address"])

    def q21(self):
        lineitem = self.read("lineitem")
        late = lineitem[lineitem.l_receiptdate > lineitem.l_commitdate]
        nation = self.read("nation")
        nation = nation[nation.n_name == "SAUDI ARABIA"]
        supplier = self.read("supplier").merge(nation, left_on="s_nationkey", right_on="n_nationkey")
        orders = self.read("orders")
        orders = orders[orders.o_orderstatus == "F"]
        shared = lineitem.groupby("l_orderkey").l_suppkey.nunique().rename("n").reset_index()
        shared = shared[shared.n > 1]
        late_shared = late.groupby("l_orderkey").l_suppkey.nunique().rename("n").reset_index()
        late_shared = late_shared[late_shared.n > 1]
        waiting = (
            late.merge(supplier, left_on="l_suppkey", right_on="s_suppkey")
            .merge(orders, left_on="l_orderkey", right_on="o_orderkey")
            .merge(shared[["l_orderkey"]], how="leftsemi", on="l_orderkey")
        )
        waiting = self.anti(waiting, late_shared, "l_orderkey", "l_orderkey")
        counts = waiting.groupby("s_name").agg(numwait=("l_orderkey", "size")).reset_index()
        return self.finish(counts, ["numwait", "s_name"], [False, True], 100)

    def q22(self):
        customer = self.read("customer")
        customer = customer.assign(cntrycode=customer.c_phone.str.slice(0, 2))
        customer = customer[customer.cntrycode.isin(Q22_CODES)]
        average = customer[customer.c_acctbal > 0.0].c_acctbal.mean()
        rich = self.anti(customer[customer.c_acctbal > average], self.read("orders"), "c_custkey", "o_custkey")
        sales = rich.groupby("cntrycode").agg(numcust=("c_custkey", "size"), totacctbal=("c_acctbal", "sum"))
        return self.finish(sales.reset_index(), "cntrycode")

    def groupby_orderkey(self):
        result = (
            self.read("lineitem")
            .groupby("l_orderkey")
            .agg(qty=("l_quantity", "sum"), price=("l_extendedprice", "sum"), n=("l_quantity", "size"))
            .compute()
        )
        return result.reset_index()

    def sort_price(self):
        return self.read("lineitem").sort_values("l_extendedprice").persist()


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
    errors = {}
    for query in queries:
        seconds = []
        result = None
        try:
            for run in range(runs):
                result = None  # drop the previous run's result before timing the next
                gc.collect()
                started = time.perf_counter()
                result = engine.run(query)
                seconds.append(time.perf_counter() - started)
            results[query] = engine.to_arrow(query, result)  # not timed
        except Exception as e:  # an engine that cannot run a query gets "—" for it, the others run
            errors[query] = f"{type(e).__name__}: {e}".strip()[:2000]
            print(f"{name:7} {query:17} FAILED: {errors[query]}", flush=True)
            result = None
            continue
        timings[query] = seconds
        first, warm = seconds[0], sorted(seconds[1:])
        warm_text = f", warm median {warm[len(warm) // 2]:.3f} s" if warm else ""
        print(
            f"{name:7} {query:17} first {first:.3f} s{warm_text}  "
            f"[{' '.join(f'{s:.3f}' for s in seconds)}]  {result_rows(result)} rows",
            flush=True,
        )
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
    if errors:
        meta["errors"] = errors
    with open(os.path.join(engine_dir, "timings.json"), "w") as f:
        json.dump({**timings, **meta}, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="TPC-H Parquet directory (one folder per table)")
    parser.add_argument("--out", required=True, help="results directory; writes OUT/<engine>/")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--sf", type=float, default=1.0, help="scale factor of DIR (Q11's fraction is 0.0001 / SF)")
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
    if args.sf <= 0:
        parser.error("--sf must be positive")
    global Q11_FRACTION
    Q11_FRACTION = 0.0001 / args.sf
    for table in TABLES:
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
               "--engines", e, "--runs", str(args.runs), "--queries", ",".join(queries),
               "--sf", str(args.sf)]
        code = subprocess.run(cmd).returncode
        if code != 0:
            sys.exit(f"tpch_peers.py: {e} failed (exit {code})")


if __name__ == "__main__":
    main()
