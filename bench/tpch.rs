//! TPC-H on shoal: the 22 TPC-H queries, a group-by on `l_orderkey` and a full sort of
//! `lineitem`, with the `threads` executor over a local folder, timed per run. Peers run the same
//! queries in `bench/tpch_peers.py`; `bench/run-tpch.sh` runs both and `bench/tpch_compare.py`
//! checks that the answers agree and writes the table.
//!
//!   cargo bench -p shoal --bench tpch -- --data DIR --out RESULTS_DIR [--sf 1] [--runs 3] [--queries q1,q6]
//!       [--explain]   (print each query's plans and task graph instead of running it)
//!       [--joins-as-written]   (run joins in the order the queries write them: no reordering)
//!       [--roots DIR]   (where the runs' job roots go; default RESULTS_DIR/shoal: the job root is a
//!                        user's choice, and its filesystem shows in small tasks, see tpch-notes.md)
//!
//! The queries are written as a pandas or Dask user would write them, with the standard
//! substitution parameters (the validation values): one `merge` per join of the SQL, its filters
//! on the tables they name, a correlated subquery as a `groupby` + `merge` (Q2, Q17, Q20), `IN` and
//! `EXISTS` as a semi merge, `NOT IN` and `NOT EXISTS` as an anti merge, a scalar subquery as a
//! one-row frame merged on a constant key (Q11, Q22: shoal has no cross merge).
//!
//! Every run plans from the Parquet footers and executes into a fresh, empty job root, so no
//! committed task of an earlier run is reused.
//!
//! Beside Q1 and Q6 it times their scan floor (`scan_q1`, `scan_q6`): the same `lineitem` files
//! and columns read through the worker's own Parquet reader, one file per task and as many tasks
//! at once as the executor has workers, with no computation, no job and no output. Writes `RESULTS_DIR/shoal/<query>.parquet` (the
//! last run's result; for `sort_price` only the sorted `l_extendedprice`) and
//! `RESULTS_DIR/shoal/timings.json` (with `errors`: the queries that failed and why; the bench
//! runs the others and then exits 1).

use arrow::record_batch::RecordBatch;
use shoal::{Agg, Client, Config, DataFrame, ExecutorKind, Merge};
use shoal_protocol::{JoinHow, SortKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Frame = Result<DataFrame, BoxError>;

#[rustfmt::skip]
const QUERIES: [&str; 24] = [
    "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13", "q14", "q15", "q16",
    "q17", "q18", "q19", "q20", "q21", "q22", "groupby_orderkey", "sort_price",
];

/// The scan floors: each the `lineitem` columns its query reads.
#[rustfmt::skip]
const SCAN_FLOORS: [(&str, &[&str]); 2] = [
    ("scan_q1", &["l_orderkey", "l_quantity", "l_extendedprice", "l_discount", "l_tax", "l_returnflag",
                  "l_linestatus", "l_shipdate"]),
    ("scan_q6", &["l_quantity", "l_extendedprice", "l_discount", "l_shipdate"]),
];

/// Revenue of a line item, as the queries compute it.
const VOLUME: &str = "l_extendedprice * (1 - l_discount)";

fn aggs(list: &[(&str, &str, &str)]) -> Result<Vec<Agg>, BoxError> {
    list.iter().map(|(n, c, f)| Agg::new(n, c, f).map_err(Into::into)).collect()
}

/// One aggregation, `func` of `column`.
fn agg(name: &str, column: &str, func: &str) -> Result<Vec<Agg>, BoxError> {
    aggs(&[(name, column, func)])
}

fn desc(column: &str) -> SortKey {
    SortKey { column: column.into(), ascending: false, nulls_first: false }
}

/// An inner merge of `left`'s column with `right`'s.
fn on(left: &str, right: &str) -> Merge {
    Merge::left_right(&[left], &[right])
}

/// `df` sorted into one partition by an SQL-like `ORDER BY` list: "revenue desc, o_orderdate".
fn order_by(df: &DataFrame, spec: &str) -> Frame {
    let keys: Vec<SortKey> = spec
        .split(',')
        .map(|key| match key.split_whitespace().collect::<Vec<_>>()[..] {
            [column] | [column, "asc"] => Ok(SortKey::asc(column)),
            [column, "desc"] => Ok(desc(column)),
            _ => Err(format!("order_by: bad key '{key}'")),
        })
        .collect::<Result<_, _>>()?;
    Ok(df.sort_values_into(&keys, 1)?)
}

/// Every row of `left` with every row of `right` (a one-row frame here): a merge on a constant.
fn cross(left: &DataFrame, right: &DataFrame) -> Frame {
    let key = "cross_key";
    Ok(left.assign(key, "1")?.merge(&right.assign(key, "1")?, &Merge::on(&[key]))?)
}

/// The TPC-H tables of one folder; every read plans from the Parquet footers.
struct Tables<'a> {
    client: &'a Client,
    data: &'a Path,
    /// The scale factor (Q11's fraction is 0.0001 / SF).
    sf: f64,
}

impl Tables<'_> {
    async fn read(&self, table: &str) -> Frame {
        Ok(self.client.read_parquet(&format!("{}/{table}/*.parquet", self.data.display())).await?)
    }
}

async fn query(c: &Client, data: &Path, sf: f64, name: &str) -> Frame {
    let t = Tables { client: c, data, sf };
    match name {
        "q1" => q1(&t).await,
        "q2" => q2(&t).await,
        "q3" => q3(&t).await,
        "q4" => q4(&t).await,
        "q5" => q5(&t).await,
        "q6" => q6(&t).await,
        "q7" => q7(&t).await,
        "q8" => q8(&t).await,
        "q9" => q9(&t).await,
        "q10" => q10(&t).await,
        "q11" => q11(&t).await,
        "q12" => q12(&t).await,
        "q13" => q13(&t).await,
        "q14" => q14(&t).await,
        "q15" => q15(&t).await,
        "q16" => q16(&t).await,
        "q17" => q17(&t).await,
        "q18" => q18(&t).await,
        "q19" => q19(&t).await,
        "q20" => q20(&t).await,
        "q21" => q21(&t).await,
        "q22" => q22(&t).await,
        "groupby_orderkey" => t
            .read("lineitem")
            .await?
            .groupby(&["l_orderkey"])
            .agg(&aggs(&[
                ("qty", "l_quantity", "sum"),
                ("price", "l_extendedprice", "sum"),
                ("n", "l_orderkey", "size"),
            ])?)
            .map_err(Into::into),
        "sort_price" => Ok(t.read("lineitem").await?.sort_values(&[SortKey::asc("l_extendedprice")])?),
        other => Err(format!("unknown query '{other}' (known: {})", QUERIES.join(", ")).into()),
    }
}

// ------------------------------------------------------------------------------------ Q1 to Q6

/// Pricing summary report.
async fn q1(t: &Tables<'_>) -> Frame {
    let lineitem = t.read("lineitem").await?;
    let summary = lineitem
        .filter("l_shipdate <= DATE '1998-09-02'")?
        .assign("disc_price", VOLUME)?
        .assign("charge", "disc_price * (1 + l_tax)")?
        .groupby(&["l_returnflag", "l_linestatus"])
        .agg(&aggs(&[
            ("sum_qty", "l_quantity", "sum"),
            ("sum_base_price", "l_extendedprice", "sum"),
            ("sum_disc_price", "disc_price", "sum"),
            ("sum_charge", "charge", "sum"),
            ("avg_qty", "l_quantity", "mean"),
            ("avg_price", "l_extendedprice", "mean"),
            ("avg_disc", "l_discount", "mean"),
            ("count_order", "l_orderkey", "size"),
        ])?)?;
    order_by(&summary, "l_returnflag, l_linestatus")
}

/// Minimum cost supplier: the correlated minimum as a groupby + merge.
async fn q2(t: &Tables<'_>) -> Frame {
    let region = t.read("region").await?.filter("r_name = 'EUROPE'")?;
    let nation = t.read("nation").await?.merge(&region, &on("n_regionkey", "r_regionkey"))?;
    let supplier = t.read("supplier").await?.merge(&nation, &on("s_nationkey", "n_nationkey"))?;
    let partsupp = t.read("partsupp").await?.merge(&supplier, &on("ps_suppkey", "s_suppkey"))?;
    let part = t.read("part").await?.filter("p_size = 15 AND p_type LIKE '%BRASS'")?;
    let offers = part.merge(&partsupp, &on("p_partkey", "ps_partkey"))?;
    let cheapest = offers.groupby(&["p_partkey"]).agg(&agg("min_cost", "ps_supplycost", "min")?)?;
    let best = offers
        .merge(&cheapest, &Merge::left_right(&["p_partkey", "ps_supplycost"], &["p_partkey", "min_cost"]))?;
    Ok(order_by(&best, "s_acctbal desc, n_name, s_name, p_partkey")?.head(100).select(&[
        "s_acctbal",
        "s_name",
        "n_name",
        "p_partkey",
        "p_mfgr",
        "s_address",
        "s_phone",
        "s_comment",
    ])?)
}

/// Shipping priority.
async fn q3(t: &Tables<'_>) -> Frame {
    let customer = t.read("customer").await?.filter("c_mktsegment = 'BUILDING'")?;
    let orders = t
        .read("orders")
        .await?
        .filter("o_orderdate < DATE '1995-03-15'")?
        .merge(&customer, &on("o_custkey", "c_custkey").how(JoinHow::Semi))?
        .select(&["o_orderkey", "o_orderdate", "o_shippriority"])?;
    let revenue = t
        .read("lineitem")
        .await?
        .filter("l_shipdate > DATE '1995-03-15'")?
        .assign("volume", VOLUME)?
        .select(&["l_orderkey", "volume"])?
        .merge(&orders, &on("l_orderkey", "o_orderkey"))?
        .groupby(&["l_orderkey", "o_orderdate", "o_shippriority"])
        .agg(&agg("revenue", "volume", "sum")?)?;
    Ok(order_by(&revenue, "revenue desc, o_orderdate")?.head(10).select(&[
        "l_orderkey",
        "revenue",
        "o_orderdate",
        "o_shippriority",
    ])?)
}

/// Order priority checking: EXISTS as a semi merge.
async fn q4(t: &Tables<'_>) -> Frame {
    let late = t.read("lineitem").await?.filter("l_commitdate < l_receiptdate")?;
    let counts = t
        .read("orders")
        .await?
        .filter("o_orderdate >= DATE '1993-07-01' AND o_orderdate < DATE '1993-10-01'")?
        .merge(&late, &on("o_orderkey", "l_orderkey").how(JoinHow::Semi))?
        .groupby(&["o_orderpriority"])
        .agg(&agg("order_count", "o_orderkey", "size")?)?;
    order_by(&counts, "o_orderpriority")
}

/// Local supplier volume.
async fn q5(t: &Tables<'_>) -> Frame {
    let region = t.read("region").await?.filter("r_name = 'ASIA'")?;
    let nation = t.read("nation").await?.merge(&region, &on("n_regionkey", "r_regionkey"))?;
    let customer = t.read("customer").await?.merge(&nation, &on("c_nationkey", "n_nationkey"))?;
    let orders = t
        .read("orders")
        .await?
        .filter("o_orderdate >= DATE '1994-01-01' AND o_orderdate < DATE '1995-01-01'")?
        .merge(&customer, &on("o_custkey", "c_custkey"))?;
    let supplier = t.read("supplier").await?;
    let revenue = t
        .read("lineitem")
        .await?
        .merge(&orders, &on("l_orderkey", "o_orderkey"))?
        .merge(&supplier, &Merge::left_right(&["l_suppkey", "c_nationkey"], &["s_suppkey", "s_nationkey"]))?
        .assign("volume", VOLUME)?
        .groupby(&["n_name"])
        .agg(&agg("revenue", "volume", "sum")?)?;
    order_by(&revenue, "revenue desc")
}

/// Forecasting revenue change.
async fn q6(t: &Tables<'_>) -> Frame {
    Ok(t.read("lineitem")
        .await?
        .filter(
            "l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
             AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24",
        )?
        .agg(&[Agg::sql("revenue", "sum(l_extendedprice * l_discount)")])?)
}

// ----------------------------------------------------------------------------------- Q7 to Q12

/// Volume shipping: the nation table twice, its name renamed for each side; nations filtered to
/// the two the SQL names, the pair condition applied after the merges.
async fn q7(t: &Tables<'_>) -> Frame {
    let nation = t.read("nation").await?.filter("n_name IN ('FRANCE', 'GERMANY')")?;
    let supplier = t
        .read("supplier")
        .await?
        .merge(&nation, &on("s_nationkey", "n_nationkey"))?
        .assign("supp_nation", "n_name")?
        .select(&["s_suppkey", "supp_nation"])?;
    let customer = t
        .read("customer")
        .await?
        .merge(&nation, &on("c_nationkey", "n_nationkey"))?
        .assign("cust_nation", "n_name")?
        .select(&["c_custkey", "cust_nation"])?;
    let revenue = t
        .read("lineitem")
        .await?
        .filter("l_shipdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31'")?
        .merge(&supplier, &on("l_suppkey", "s_suppkey"))?
        .merge(&t.read("orders").await?, &on("l_orderkey", "o_orderkey"))?
        .merge(&customer, &on("o_custkey", "c_custkey"))?
        .filter(
            "(supp_nation = 'FRANCE' AND cust_nation = 'GERMANY') \
             OR (supp_nation = 'GERMANY' AND cust_nation = 'FRANCE')",
        )?
        .assign("l_year", "EXTRACT(YEAR FROM l_shipdate)")?
        .assign("volume", VOLUME)?
        .groupby(&["supp_nation", "cust_nation", "l_year"])
        .agg(&agg("revenue", "volume", "sum")?)?;
    order_by(&revenue, "supp_nation, cust_nation, l_year")
}

/// National market share.
async fn q8(t: &Tables<'_>) -> Frame {
    let region = t.read("region").await?.filter("r_name = 'AMERICA'")?;
    let nation = t.read("nation").await?;
    let america = nation.merge(&region, &on("n_regionkey", "r_regionkey"))?.select(&["n_nationkey"])?;
    let customer = t.read("customer").await?.merge(&america, &on("c_nationkey", "n_nationkey"))?;
    let supplier_nation = nation.assign("nation", "n_name")?.select(&["n_nationkey", "nation"])?;
    let supplier = t.read("supplier").await?.merge(&supplier_nation, &on("s_nationkey", "n_nationkey"))?;
    let part = t.read("part").await?.filter("p_type = 'ECONOMY ANODIZED STEEL'")?;
    let orders =
        t.read("orders").await?.filter("o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31'")?;
    let shares = t
        .read("lineitem")
        .await?
        .merge(&part, &on("l_partkey", "p_partkey"))?
        .merge(&supplier, &on("l_suppkey", "s_suppkey"))?
        .merge(&orders, &on("l_orderkey", "o_orderkey"))?
        .merge(&customer, &on("o_custkey", "c_custkey"))?
        .assign("o_year", "EXTRACT(YEAR FROM o_orderdate)")?
        .assign("volume", VOLUME)?
        .groupby(&["o_year"])
        .agg(&[Agg::sql(
            "mkt_share",
            "sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume)",
        )])?;
    order_by(&shares, "o_year")
}

/// Product type profit measure.
async fn q9(t: &Tables<'_>) -> Frame {
    let part = t.read("part").await?.filter("p_name LIKE '%green%'")?;
    let profit = t
        .read("lineitem")
        .await?
        .merge(&part, &on("l_partkey", "p_partkey"))?
        .merge(
            &t.read("partsupp").await?,
            &Merge::left_right(&["l_suppkey", "l_partkey"], &["ps_suppkey", "ps_partkey"]),
        )?
        .merge(&t.read("supplier").await?, &on("l_suppkey", "s_suppkey"))?
        .merge(&t.read("orders").await?, &on("l_orderkey", "o_orderkey"))?
        .merge(&t.read("nation").await?, &on("s_nationkey", "n_nationkey"))?
        .assign("nation", "n_name")?
        .assign("o_year", "EXTRACT(YEAR FROM o_orderdate)")?
        .assign("amount", "l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity")?
        .groupby(&["nation", "o_year"])
        .agg(&agg("sum_profit", "amount", "sum")?)?;
    order_by(&profit, "nation, o_year desc")
}

/// Returned item reporting.
async fn q10(t: &Tables<'_>) -> Frame {
    let orders = t
        .read("orders")
        .await?
        .filter("o_orderdate >= DATE '1993-10-01' AND o_orderdate < DATE '1994-01-01'")?;
    let returned = t.read("lineitem").await?.filter("l_returnflag = 'R'")?;
    let keys = ["c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address", "c_comment"];
    let revenue = t
        .read("customer")
        .await?
        .merge(&orders, &on("c_custkey", "o_custkey"))?
        .merge(&returned, &on("o_orderkey", "l_orderkey"))?
        .merge(&t.read("nation").await?, &on("c_nationkey", "n_nationkey"))?
        .assign("volume", VOLUME)?
        .groupby(&keys)
        .agg(&agg("revenue", "volume", "sum")?)?;
    Ok(revenue.nlargest(20, &["revenue"])?.select(&[
        "c_custkey",
        "c_name",
        "revenue",
        "c_acctbal",
        "n_name",
        "c_address",
        "c_phone",
        "c_comment",
    ])?)
}

/// Important stock identification: the scalar subquery as a one-row frame.
async fn q11(t: &Tables<'_>) -> Frame {
    let nation = t.read("nation").await?.filter("n_name = 'GERMANY'")?;
    let supplier = t.read("supplier").await?.merge(&nation, &on("s_nationkey", "n_nationkey"))?;
    let stock = t
        .read("partsupp")
        .await?
        .merge(&supplier, &on("ps_suppkey", "s_suppkey"))?
        .assign("value", "ps_supplycost * ps_availqty")?;
    let per_part = stock.groupby(&["ps_partkey"]).agg(&agg("value", "value", "sum")?)?;
    let threshold = stock.agg(&[Agg::sql("threshold", &format!("sum(value) * {}", 0.0001 / t.sf))])?;
    let important = cross(&per_part, &threshold)?.filter("value > threshold")?;
    Ok(order_by(&important, "value desc")?.select(&["ps_partkey", "value"])?)
}

/// Shipping modes and order priority.
async fn q12(t: &Tables<'_>) -> Frame {
    let counts = t
        .read("lineitem")
        .await?
        .filter(
            "l_shipmode IN ('MAIL', 'SHIP') AND l_commitdate < l_receiptdate \
             AND l_shipdate < l_commitdate AND l_receiptdate >= DATE '1994-01-01' \
             AND l_receiptdate < DATE '1995-01-01'",
        )?
        .merge(&t.read("orders").await?, &on("l_orderkey", "o_orderkey"))?
        .groupby(&["l_shipmode"])
        .agg(&[
            Agg::sql(
                "high_line_count",
                "sum(CASE WHEN o_orderpriority IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END)",
            ),
            Agg::sql(
                "low_line_count",
                "sum(CASE WHEN o_orderpriority NOT IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END)",
            ),
        ])?;
    order_by(&counts, "l_shipmode")
}

// ---------------------------------------------------------------------------------- Q13 to Q18

/// Customer distribution: a left merge, then a count of counts.
async fn q13(t: &Tables<'_>) -> Frame {
    let orders = t.read("orders").await?.filter("o_comment NOT LIKE '%special%requests%'")?;
    let distribution = t
        .read("customer")
        .await?
        .merge(&orders, &on("c_custkey", "o_custkey").how(JoinHow::Left))?
        .groupby(&["c_custkey"])
        .agg(&agg("c_count", "o_orderkey", "count")?)?
        .groupby(&["c_count"])
        .agg(&agg("custdist", "c_custkey", "size")?)?;
    order_by(&distribution, "custdist desc, c_count desc")
}

/// Promotion effect.
async fn q14(t: &Tables<'_>) -> Frame {
    Ok(t.read("lineitem")
        .await?
        .filter("l_shipdate >= DATE '1995-09-01' AND l_shipdate < DATE '1995-10-01'")?
        .merge(&t.read("part").await?, &on("l_partkey", "p_partkey"))?
        .assign("volume", VOLUME)?
        .agg(&[Agg::sql(
            "promo_revenue",
            "100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN volume ELSE 0 END) / sum(volume)",
        )])?)
}

/// Top supplier: the revenue "view" as a frame used twice, its maximum as a semi merge.
async fn q15(t: &Tables<'_>) -> Frame {
    let revenue = t
        .read("lineitem")
        .await?
        .filter("l_shipdate >= DATE '1996-01-01' AND l_shipdate < DATE '1996-04-01'")?
        .assign("volume", VOLUME)?
        .groupby(&["l_suppkey"])
        .agg(&agg("total_revenue", "volume", "sum")?)?;
    let top = revenue.agg(&agg("max_revenue", "total_revenue", "max")?)?;
    let best = revenue.merge(&top, &on("total_revenue", "max_revenue").how(JoinHow::Semi))?;
    let suppliers = t.read("supplier").await?.merge(&best, &on("s_suppkey", "l_suppkey"))?;
    Ok(order_by(&suppliers, "s_suppkey")?.select(&[
        "s_suppkey",
        "s_name",
        "s_address",
        "s_phone",
        "total_revenue",
    ])?)
}

/// Parts/supplier relationship: NOT IN as an anti merge.
async fn q16(t: &Tables<'_>) -> Frame {
    let complaints = t.read("supplier").await?.filter("s_comment LIKE '%Customer%Complaints%'")?;
    let part = t.read("part").await?.filter(
        "p_brand <> 'Brand#45' AND p_type NOT LIKE 'MEDIUM POLISHED%' \
         AND p_size IN (49, 14, 23, 45, 19, 3, 36, 9)",
    )?;
    let counts = t
        .read("partsupp")
        .await?
        .merge(&complaints, &on("ps_suppkey", "s_suppkey").how(JoinHow::Anti))?
        .merge(&part, &on("ps_partkey", "p_partkey"))?
        .groupby(&["p_brand", "p_type", "p_size"])
        .agg(&agg("supplier_cnt", "ps_suppkey", "nunique")?)?;
    order_by(&counts, "supplier_cnt desc, p_brand, p_type, p_size")
}

/// Small-quantity-order revenue: the correlated per-part average as a groupby + merge.
async fn q17(t: &Tables<'_>) -> Frame {
    let part = t.read("part").await?.filter("p_brand = 'Brand#23' AND p_container = 'MED BOX'")?;
    let items = t.read("lineitem").await?.merge(&part, &on("l_partkey", "p_partkey"))?;
    let average = items.groupby(&["l_partkey"]).agg(&agg("avg_qty", "l_quantity", "mean")?)?;
    Ok(items
        .merge(&average, &Merge::on(&["l_partkey"]))?
        .filter("l_quantity < 0.2 * avg_qty")?
        .agg(&[Agg::sql("avg_yearly", "sum(l_extendedprice) / 7.0")])?)
}

/// Large volume customer: IN as a semi merge.
async fn q18(t: &Tables<'_>) -> Frame {
    let lineitem = t.read("lineitem").await?;
    let large = lineitem
        .groupby(&["l_orderkey"])
        .agg(&agg("sum_qty", "l_quantity", "sum")?)?
        .filter("sum_qty > 300")?;
    let customers = t
        .read("orders")
        .await?
        .merge(&large, &on("o_orderkey", "l_orderkey").how(JoinHow::Semi))?
        .merge(&t.read("customer").await?, &on("o_custkey", "c_custkey"))?
        .merge(&lineitem, &on("o_orderkey", "l_orderkey"))?
        .groupby(&["c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice"])
        .agg(&agg("sum_qty", "l_quantity", "sum")?)?;
    Ok(order_by(&customers, "o_totalprice desc, o_orderdate")?.head(100))
}

// ---------------------------------------------------------------------------------- Q19 to Q22

/// Discounted revenue: the conditions on lineitem alone before the merge, the rest after.
async fn q19(t: &Tables<'_>) -> Frame {
    Ok(t.read("lineitem")
        .await?
        .filter("l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON'")?
        .merge(&t.read("part").await?, &on("l_partkey", "p_partkey"))?
        .filter(
            "(p_brand = 'Brand#12' AND p_container IN ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG') \
               AND l_quantity >= 1 AND l_quantity <= 11 AND p_size BETWEEN 1 AND 5) \
             OR (p_brand = 'Brand#23' AND p_container IN ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK') \
               AND l_quantity >= 10 AND l_quantity <= 20 AND p_size BETWEEN 1 AND 10) \
             OR (p_brand = 'Brand#34' AND p_container IN ('LG CASE', 'LG BOX', 'LG PACK', 'LG PKG') \
               AND l_quantity >= 20 AND l_quantity <= 30 AND p_size BETWEEN 1 AND 15)",
        )?
        .agg(&[Agg::sql("revenue", "sum(l_extendedprice * (1 - l_discount))")])?)
}

/// Potential part promotion: nested IN as semi merges, the correlated sum as a groupby + merge.
async fn q20(t: &Tables<'_>) -> Frame {
    let forest = t.read("part").await?.filter("p_name LIKE 'forest%'")?;
    let shipped = t
        .read("lineitem")
        .await?
        .filter("l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'")?
        .groupby(&["l_partkey", "l_suppkey"])
        .agg(&agg("sum_qty", "l_quantity", "sum")?)?;
    let excess = t
        .read("partsupp")
        .await?
        .merge(&forest, &on("ps_partkey", "p_partkey").how(JoinHow::Semi))?
        .merge(&shipped, &Merge::left_right(&["ps_partkey", "ps_suppkey"], &["l_partkey", "l_suppkey"]))?
        .filter("ps_availqty > 0.5 * sum_qty")?;
    let nation = t.read("nation").await?.filter("n_name = 'CANADA'")?;
    let suppliers = t
        .read("supplier")
        .await?
        .merge(&nation, &on("s_nationkey", "n_nationkey"))?
        .merge(&excess, &on("s_suppkey", "ps_suppkey").how(JoinHow::Semi))?;
    Ok(order_by(&suppliers, "s_name")?.select(&["s_name", "s_address"])?)
}

/// Suppliers who kept orders waiting: EXISTS (another supplier on the order) as a semi merge
/// with the orders of several suppliers, NOT EXISTS (another late supplier) as an anti merge
/// with the orders of several late suppliers.
async fn q21(t: &Tables<'_>) -> Frame {
    let lineitem = t.read("lineitem").await?;
    let late = lineitem.filter("l_receiptdate > l_commitdate")?;
    let nation = t.read("nation").await?.filter("n_name = 'SAUDI ARABIA'")?;
    let supplier = t.read("supplier").await?.merge(&nation, &on("s_nationkey", "n_nationkey"))?;
    let orders = t.read("orders").await?.filter("o_orderstatus = 'F'")?;
    let shared = lineitem
        .groupby(&["l_orderkey"])
        .agg(&agg("n_supp", "l_suppkey", "nunique")?)?
        .filter("n_supp > 1")?;
    let late_shared =
        late.groupby(&["l_orderkey"]).agg(&agg("n_late", "l_suppkey", "nunique")?)?.filter("n_late > 1")?;
    let waiting = late
        .merge(&supplier, &on("l_suppkey", "s_suppkey"))?
        .merge(&orders, &on("l_orderkey", "o_orderkey"))?
        .merge(&shared, &Merge::on(&["l_orderkey"]).how(JoinHow::Semi))?
        .merge(&late_shared, &Merge::on(&["l_orderkey"]).how(JoinHow::Anti))?
        .groupby(&["s_name"])
        .agg(&agg("numwait", "l_orderkey", "size")?)?;
    Ok(order_by(&waiting, "numwait desc, s_name")?.head(100))
}

/// Global sales opportunity: the average as a one-row frame, NOT EXISTS as an anti merge.
async fn q22(t: &Tables<'_>) -> Frame {
    let customer = t
        .read("customer")
        .await?
        .assign("cntrycode", "substring(c_phone FROM 1 FOR 2)")?
        .filter("cntrycode IN ('13', '31', '23', '29', '30', '18', '17')")?;
    let average = customer.filter("c_acctbal > 0.00")?.agg(&agg("avg_acctbal", "c_acctbal", "mean")?)?;
    let sales = cross(&customer, &average)?
        .filter("c_acctbal > avg_acctbal")?
        .merge(&t.read("orders").await?, &on("c_custkey", "o_custkey").how(JoinHow::Anti))?
        .groupby(&["cntrycode"])
        .agg(&aggs(&[("numcust", "c_custkey", "size"), ("totacctbal", "c_acctbal", "sum")])?)?;
    order_by(&sales, "cntrycode")
}

/// One timed bare scan of `columns` of every `lineitem` file: each file is read to its last
/// batch by `scan::stream_parquet` (the reader a task uses), `workers` files at a time on their
/// own tokio tasks; returns the rows read.
async fn scan_floor(data: &Path, columns: &[&str], workers: usize) -> Result<u64, BoxError> {
    use futures::{StreamExt, TryStreamExt};
    use shoal_protocol::{FileFormat, FileSlice, Input};
    use shoal_worker::io::{reader::IoCounter, scan, storage::Storage};
    let storage = std::sync::Arc::new(Storage::default());
    let files = storage.list(&format!("{}/lineitem/*.parquet", data.display())).await?;
    let projection: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let tasks = files.into_iter().map(|object| {
        let (storage, projection) = (storage.clone(), projection.clone());
        tokio::spawn(async move {
            let input = Input::Scan {
                format: FileFormat::Parquet,
                files: vec![FileSlice::whole(object)],
                projection: Some(projection),
                predicate: None,
                schema: None,
                port: 0,
            };
            let counter = std::sync::Arc::new(IoCounter::default());
            let Some(stream) = scan::stream_parquet(storage, &[&input], counter, None).await? else {
                return Err::<u64, BoxError>("a Parquet scan that does not stream".into());
            };
            let rows = stream.batches.try_fold(0u64, |n, b| async move { Ok(n + b.num_rows() as u64) });
            Ok(rows.await?)
        })
    });
    let per_file: Vec<u64> = futures::stream::iter(tasks)
        .buffer_unordered(workers)
        .map(|joined| joined.map_err(BoxError::from).and_then(|r| r))
        .try_collect()
        .await?;
    Ok(per_file.iter().sum())
}

/// `args.runs` timed scan floors of `columns`: the seconds of each.
fn bench_scan_floor(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    workers: usize,
    name: &str,
    columns: &[&str],
) -> Result<Vec<f64>, BoxError> {
    let mut seconds = Vec::new();
    for run in 0..args.runs {
        let started = Instant::now();
        let rows = rt.block_on(scan_floor(&args.data, columns, workers))?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!("shoal {name} run {}: {secs:.3} s ({rows} rows, {} columns)", run + 1, columns.len());
        seconds.push(secs);
    }
    Ok(seconds)
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<(), BoxError> {
    let Some(first) = batches.first() else {
        return Err(format!("{}: empty result", path.display()).into());
    };
    let file = std::fs::File::create(path)?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

struct Args {
    data: PathBuf,
    sf: f64,
    out: PathBuf,
    runs: usize,
    queries: Vec<String>,
    explain: bool,
    joins_as_written: bool,
    /// Where the runs' job roots go (default: RESULTS_DIR/shoal).
    roots: Option<PathBuf>,
    /// Keep each query's last job root (its events show where the run's time went).
    keep_roots: bool,
}

impl Args {
    /// The client's configuration: the threads executor with `workers` over a job root at `root`.
    fn config(&self, root: &Path, workers: usize) -> Config {
        let mut config = Config {
            root: root.display().to_string(),
            executor: ExecutorKind::Threads,
            workers,
            ..Config::default()
        };
        config.plan.reorder_joins = !self.joins_as_written;
        config
    }
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        data: PathBuf::new(),
        sf: 1.0,
        out: PathBuf::new(),
        runs: 3,
        queries: vec![],
        explain: false,
        joins_as_written: false,
        roots: None,
        keep_roots: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--runs" => a.runs = value()?.parse()?,
            "--sf" => a.sf = value()?.parse()?,
            "--queries" => a.queries = value()?.split(',').map(str::to_string).collect(),
            "--explain" => a.explain = true,
            "--joins-as-written" => a.joins_as_written = true,
            "--roots" => a.roots = Some(value()?.into()),
            "--keep-roots" => a.keep_roots = true,
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            other => return Err(format!("unknown argument '{other}'").into()),
        }
    }
    if !a.sf.is_finite() || a.sf <= 0.0 {
        return Err(format!("--sf: a positive scale factor, got {}", a.sf).into());
    }
    if a.data.as_os_str().is_empty() || a.out.as_os_str().is_empty() {
        return Err(
            "usage: tpch --data DIR --out RESULTS_DIR [--sf SF] [--runs N] [--queries q1,q3,...] [--explain] [--joins-as-written] [--roots DIR] [--keep-roots]"
                .into(),
        );
    }
    if a.queries.is_empty() {
        a.queries = QUERIES.iter().map(|q| q.to_string()).collect();
    }
    Ok(a)
}

/// `args.runs` timed runs of query `q`, each into a fresh job root: the seconds of each and the
/// last run's result.
fn bench_query(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    out: &Path,
    workers: usize,
    q: &str,
) -> Result<(Vec<f64>, Vec<RecordBatch>), BoxError> {
    let mut seconds = Vec::new();
    let mut last = Vec::new();
    for run in 0..args.runs {
        // The previous run's result goes before this run computes its own: two full sorts of
        // SF10's lineitem held at once take this machine's memory.
        drop(std::mem::take(&mut last));
        let root = out.join(format!("root-{q}-{run}"));
        let _ = std::fs::remove_dir_all(&root);
        let client = Client::new(args.config(&root, workers))?;
        let started = Instant::now();
        let batches = rt.block_on(async {
            let df = query(&client, &args.data, args.sf, q).await?;
            df.compute().await.map_err(BoxError::from)
        });
        let secs = started.elapsed().as_secs_f64();
        // A query that failed before running made no job root: its error is the one to report.
        let keep = args.keep_roots && run + 1 == args.runs;
        let removed = if keep { Ok(()) } else { std::fs::remove_dir_all(&root) };
        last = batches?;
        removed?;
        eprintln!("shoal {q} run {}: {secs:.3} s", run + 1);
        seconds.push(secs);
    }
    if q == "sort_price" {
        last = last
            .iter()
            .map(|b| {
                let i = b.schema().index_of("l_extendedprice")?;
                b.project(&[i])
            })
            .collect::<Result<_, _>>()?;
    }
    Ok((seconds, last))
}

/// The type of the filesystem holding `path` (its longest mount point in `/proc/mounts`), or
/// "unknown filesystem".
fn filesystem(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, at, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(at).then(|| (at.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown filesystem".into(), |(_, kind)| kind)
}

/// `--explain`: prints each query's plans and task graph instead of running it.
fn explain(rt: &tokio::runtime::Runtime, args: &Args, out: &Path, workers: usize) -> Result<(), BoxError> {
    let root = out.join("root-explain");
    let client = Client::new(args.config(&root, workers))?;
    for q in &args.queries {
        let text = rt.block_on(async {
            query(&client, &args.data, args.sf, q).await?.explain().map_err(BoxError::from)
        })?;
        println!("==== {q}\n{text}");
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let args = args()?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let out = args.out.join("shoal");
    std::fs::create_dir_all(&out)?;
    let roots = args.roots.clone().unwrap_or_else(|| out.clone());
    std::fs::create_dir_all(&roots)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if args.explain {
        return explain(&rt, &args, &roots, workers);
    }
    let mut timings: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for q in &args.queries {
        // A failing query is recorded and the others still run; no earlier result is left for it.
        let _ = std::fs::remove_file(out.join(format!("{q}.parquet")));
        match bench_query(&rt, &args, &roots, workers, q) {
            Ok((seconds, last)) => match write_parquet(&out.join(format!("{q}.parquet")), &last) {
                Ok(()) => {
                    timings.insert(q.clone(), serde_json::json!(seconds));
                }
                Err(e) => {
                    eprintln!("shoal {q}: {e}");
                    errors.insert(q.clone(), e.to_string());
                }
            },
            Err(e) => {
                eprintln!("shoal {q} FAILED: {e}");
                errors.insert(q.clone(), e.to_string());
            }
        }
        // Its scan floor right after the query, while the same files are in the page cache.
        for (name, columns) in
            SCAN_FLOORS.iter().filter(|(name, _)| name.strip_prefix("scan_") == Some(q.as_str()))
        {
            match bench_scan_floor(&rt, &args, workers, name, columns) {
                Ok(seconds) => {
                    timings.insert(name.to_string(), serde_json::json!(seconds));
                }
                Err(e) => {
                    eprintln!("shoal {name} FAILED: {e}");
                    errors.insert(name.to_string(), e.to_string());
                }
            }
        }
    }
    timings.insert("engine".into(), serde_json::json!("shoal"));
    timings.insert("version".into(), serde_json::json!(env!("CARGO_PKG_VERSION")));
    timings.insert("threads".into(), serde_json::json!(workers));
    timings.insert(
        "notes".into(),
        serde_json::json!(format!(
            "threads executor, {workers} workers, job roots in a local folder ({}, {}); each run plans \
             from the footers and executes into a fresh job root; results collected into memory",
            roots.display(),
            filesystem(&roots)
        )),
    );
    if !errors.is_empty() {
        timings.insert("errors".into(), serde_json::json!(errors));
    }
    std::fs::write(out.join("timings.json"), serde_json::to_vec_pretty(&timings)?)?;
    if !errors.is_empty() {
        return Err(format!("{} of {} queries failed: {}", errors.len(), args.queries.len(), {
            errors.keys().cloned().collect::<Vec<_>>().join(", ")
        })
        .into());
    }
    Ok(())
}
