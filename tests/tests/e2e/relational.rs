//! Differential correctness of the operations that move rows between partitions — group-by,
//! joins, sorts, repartitions — against DuckDB, on 200 partitions of generated sales (nulls,
//! decimals, dates, strings, empty partitions, a high-cardinality and a heavily skewed key).
//! Every strategy is forced or chosen in turn, asserted from `explain`, and must give the same
//! table.

use arrow::array::{Array, Date32Array, Float64Array, Int64Array};
use arrow::record_batch::RecordBatch;
use shoal::JoinHint;
use shoal::{Agg, Merge};
use shoal::{Client, DataFrame, ExecutorKind};
use shoal_protocol::{JoinHow, SortKey};
use shoal_tests::data::{assert_same_rows, assert_same_rows_ordered, write_customers, write_sales};
use shoal_tests::python::{duckdb_over_tables, duckdb_query};
use shoal_tests::read_parquet_dir;
use std::path::PathBuf;

const FILES: usize = 200;
const CUSTOMERS: u64 = 20_000;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    _client: Client,
    sales: DataFrame,
    customers: DataFrame,
}

impl Env {
    async fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let rows = write_sales(&dir.join("sales"), FILES, 300, CUSTOMERS).unwrap();
        assert!(rows > 40_000, "{rows}");
        write_customers(&dir.join("customers"), 4, CUSTOMERS).unwrap();
        let mut config = crate::config(&dir.join("root"), ExecutorKind::Threads);
        // Between the two tables' sizes (customers ~100 KB, sales ~1.5 MB), and a tree limit
        // below the customer count, so that the automatic choices are exercised.
        config.plan.broadcast_bytes = 400_000;
        config.plan.tree_max_groups = 5_000;
        // One partition per file, so that shuffles and trees have many partitions to work on.
        config.coalesce_small_files = false;
        let client = Client::new(config).unwrap();
        let sales = client.read_parquet(&format!("{}/sales/*.parquet", dir.display())).await.unwrap();
        let customers = client.read_parquet(&format!("{}/customers/*.parquet", dir.display())).await.unwrap();
        assert_eq!(sales.npartitions(), FILES);
        Env { _tmp: tmp, dir, _client: client, sales, customers }
    }

    /// DuckDB's answer to `sql` over views `s` (sales) and `c` (customers).
    fn duckdb(&self, name: &str, sql: &str) -> Vec<RecordBatch> {
        duckdb_over_tables(&self.dir, &[("s", "sales"), ("c", "customers")], name, sql)
            .unwrap_or_else(|e| panic!("{name}: duckdb failed: {e:#}"))
    }

    /// Computes `df`, checks its plan names `strategy`, compares with DuckDB; returns the rows.
    async fn check(
        &self,
        name: &str,
        df: &DataFrame,
        strategy: &str,
        sql: &str,
        ordered: bool,
    ) -> Vec<RecordBatch> {
        let plan = df.explain().unwrap();
        assert!(plan.contains(strategy), "{name}: expected '{strategy}' in the plan:\n{plan}");
        let actual = df.compute().await.unwrap_or_else(|e| panic!("{name}: shoal failed: {e}\n{plan}"));
        let expected = self.duckdb(name, sql);
        let result = if ordered {
            assert_same_rows_ordered(&actual, &expected)
        } else {
            assert_same_rows(&actual, &expected)
        };
        if let Err(e) = result {
            panic!("{name}: shoal and DuckDB disagree: {e:#}\nshoal plan:\n{plan}");
        }
        actual
    }
}

fn aggs(list: &[(&str, &str, &str)]) -> Vec<Agg> {
    list.iter().map(|(n, c, f)| Agg::new(n, c, f).unwrap()).collect()
}

fn f64s(batches: &[RecordBatch], column: &str) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(column).unwrap();
            let a = arrow::compute::cast(a, &arrow::datatypes::DataType::Float64).unwrap();
            let a = a.as_any().downcast_ref::<Float64Array>().unwrap().clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect()
}

const ALL_AGGS: [(&str, &str, &str); 9] = [
    ("revenue", "price", "sum"),
    ("avg_qty", "qty", "mean"),
    ("n_qty", "qty", "count"),
    ("rows", "qty", "size"),
    ("first_day", "day", "min"),
    ("top_price", "price", "max"),
    ("sd_score", "score", "std"),
    ("var_qty", "qty", "var"),
    ("skus", "sku", "nunique"),
];

const ALL_AGGS_SQL: &str = "sum(price) AS revenue, avg(qty) AS avg_qty, count(qty) AS n_qty, \
    count(*) AS rows, min(day) AS first_day, max(price) AS top_price, stddev_samp(score) AS sd_score, \
    var_samp(qty) AS var_qty, count(DISTINCT sku) AS skus";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupby_strategies_match_duckdb() {
    let env = Env::new().await;
    let s = &env.sales;

    // Few groups of a string key: a tree reduction (group count unknown to statistics).
    let by_region = s.groupby(&["region"]).agg(&aggs(&ALL_AGGS)).unwrap();
    let sql = format!("SELECT region, {ALL_AGGS_SQL} FROM s GROUP BY region");
    let tree = env.check("region_tree", &by_region, "strategy=tree split_every=8", &sql, false).await;
    // The same by a hash shuffle, and by a deeper tree: the same table.
    let shuffled = s.groupby(&["region"]).split_out(4).agg(&aggs(&ALL_AGGS)).unwrap();
    let shuffled = env.check("region_shuffle", &shuffled, "strategy=shuffle split_out=4", &sql, false).await;
    assert_same_rows(&tree, &shuffled).unwrap();
    let deep = s.groupby(&["region"]).split_every(3).agg(&aggs(&ALL_AGGS)).unwrap();
    assert!(
        deep.explain().unwrap().contains("combine"),
        "a 3-way tree over 200 partitions has combine levels"
    );
    env.check("region_deep_tree", &deep, "strategy=tree split_every=3", &sql, false).await;

    // Several keys, one of them heavily skewed (half the rows are sku 'hot').
    let two = s
        .groupby(&["region", "sku"])
        .split_out(8)
        .agg(&aggs(&[("revenue", "price", "sum"), ("rows", "id", "size"), ("lo", "score", "min")]))
        .unwrap();
    let sql = "SELECT region, sku, sum(price) AS revenue, count(*) AS rows, min(score) AS lo \
               FROM s GROUP BY region, sku";
    env.check("region_sku_shuffle", &two, "strategy=shuffle split_out=8", sql, false).await;

    // Means of decimals without nulls: each an exact sum over the row count, one `count(*)`
    // shared by both and by `size`.
    let exact = s
        .assign("amount", "CAST(id % 1000 AS DECIMAL(12, 2))")
        .unwrap()
        .assign("fee", "CAST(id % 7 AS DECIMAL(12, 2))")
        .unwrap();
    let list = [("avg_amount", "amount", "mean"), ("avg_fee", "fee", "mean"), ("rows", "id", "size")];
    let means = exact.groupby(&["region"]).agg(&aggs(&list)).unwrap();
    let plan = means.explain().unwrap();
    assert!(!plan.contains(r#"count("amount")"#) && !plan.contains(r#"count("fee")"#), "{plan}");
    let sql = "SELECT region, avg(CAST(id % 1000 AS DECIMAL(12, 2))) AS avg_amount, \
               avg(CAST(id % 7 AS DECIMAL(12, 2))) AS avg_fee, count(*) AS rows FROM s GROUP BY region";
    env.check("region_exact_means", &means, "rows = count(*)", sql, false).await;

    // A filter that keeps most rows, then a grouped aggregation: the filter marks the rows it
    // drops for the accumulators to skip instead of copying the others; the band of dropped
    // rows only ('dropped') has no group.
    let marked = s
        .filter("id % 23 <> 0")
        .unwrap()
        .assign("band", "CASE WHEN id % 23 = 0 THEN 'dropped' WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END")
        .unwrap()
        .assign("gross", "price * qty")
        .unwrap();
    let list = [
        ("revenue", "gross", "sum"),
        ("mean_score", "score", "mean"),
        ("n", "qty", "count"),
        ("rows", "id", "size"),
        ("lo", "day", "min"),
        ("hi", "price", "max"),
    ];
    let banded = marked.groupby(&["region", "band"]).agg(&aggs(&list)).unwrap();
    let sql = "SELECT region, CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END AS band, \
               sum(price * qty) AS revenue, avg(score) AS mean_score, count(qty) AS n, count(*) AS rows, \
               min(day) AS lo, max(price) AS hi FROM s WHERE id % 23 <> 0 GROUP BY region, band";
    env.check("region_band_marked", &banded, "strategy=tree", sql, false).await;

    // High cardinality (20k customers): statistics bound the groups above the tree limit, so
    // the planner shuffles; forcing a tree gives the same table.
    let banded = s.assign("band", "cust % 10").unwrap();
    let list = [
        ("total_qty", "qty", "sum"),
        ("mean_score", "score", "mean"),
        ("first_band", "band", "first"),
        ("last_band", "band", "last"),
        ("days", "day", "nunique"),
    ];
    let sql = "SELECT cust, sum(qty) AS total_qty, avg(score) AS mean_score, first(cust % 10) AS first_band, \
               last(cust % 10) AS last_band, count(DISTINCT day) AS days FROM s GROUP BY cust";
    let auto = banded.groupby(&["cust"]).agg(&aggs(&list)).unwrap();
    let auto = env.check("cust_auto_shuffle", &auto, "strategy=shuffle", sql, false).await;
    let forced_tree = banded.groupby(&["cust"]).split_out(1).agg(&aggs(&list)).unwrap();
    let forced_tree = env.check("cust_tree", &forced_tree, "strategy=tree", sql, false).await;
    assert_same_rows(&auto, &forced_tree).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reductions_and_shortcuts_match_duckdb() {
    let env = Env::new().await;
    let s = &env.sales;

    let whole = s
        .agg(&aggs(&[
            ("revenue", "price", "sum"),
            ("avg_qty", "qty", "mean"),
            ("lo", "day", "min"),
            ("hi", "score", "max"),
            ("n", "cust", "count"),
            ("customers", "cust", "nunique"),
            ("rows", "id", "size"),
        ]))
        .unwrap();
    let sql = "SELECT sum(price) AS revenue, avg(qty) AS avg_qty, min(day) AS lo, max(score) AS hi, \
               count(cust) AS n, count(DISTINCT cust) AS customers, count(*) AS rows FROM s";
    env.check("whole_table", &whole, "whole-table reduction", sql, false).await;

    // Approximate quantiles (t-digest) against DuckDB's exact ones: within 1% of the range.
    let q = s.agg(&aggs(&[("p10", "score", "quantile(0.1)"), ("median", "score", "median")])).unwrap();
    let got = q.compute().await.unwrap();
    let exact = env.duckdb(
        "quantiles",
        "SELECT quantile_cont(score, 0.1) AS p10, quantile_cont(score, 0.5) AS median, \
         max(score) - min(score) AS span FROM s",
    );
    let span = f64s(&exact, "span")[0].unwrap();
    for col in ["p10", "median"] {
        let (a, e) = (f64s(&got, col)[0].unwrap(), f64s(&exact, col)[0].unwrap());
        assert!((a - e).abs() < span * 0.01, "{col}: approximate {a} vs exact {e} (span {span})");
    }

    // describe: count, mean, std, min and max exact; quartiles approximate.
    let described = s.describe().unwrap().compute().await.unwrap();
    let exact = env.duckdb(
        "describe",
        "SELECT 'qty' AS c, count(qty) AS count, avg(qty) AS mean, stddev_samp(qty) AS std, min(qty) AS min, \
           quantile_cont(qty, 0.25) AS q1, quantile_cont(qty, 0.5) AS q2, quantile_cont(qty, 0.75) AS q3, \
           max(qty) AS max, max(qty) - min(qty) AS span FROM s \
         UNION ALL SELECT 'score', count(score), avg(score), stddev_samp(score), min(score), \
           quantile_cont(score, 0.25), quantile_cont(score, 0.5), quantile_cont(score, 0.75), max(score), \
           max(score) - min(score) FROM s",
    );
    let stats: Vec<String> = described
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_any().downcast_ref::<arrow::array::StringArray>().unwrap().clone();
            (0..a.len()).map(move |i| a.value(i).to_string())
        })
        .collect();
    assert_eq!(stats, ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]);
    let names: Vec<String> = described[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["statistic", "id", "cust", "qty", "price", "score"], "numeric columns only");
    let reference: Vec<Vec<Option<f64>>> = ["count", "mean", "std", "min", "q1", "q2", "q3", "max", "span"]
        .iter()
        .map(|c| f64s(&exact, c))
        .collect();
    for (row, col) in ["qty", "score"].iter().enumerate() {
        let got = f64s(&described, col);
        let span = reference[8][row].unwrap();
        for (stat, (g, r)) in got.iter().zip(&reference).enumerate() {
            let (g, r) = (g.unwrap(), r[row].unwrap());
            let tolerance = if (4..7).contains(&stat) { span * 0.01 } else { 1e-9 * r.abs().max(1.0) };
            assert!((g - r).abs() <= tolerance, "describe {col} {}: {g} vs DuckDB {r}", stats[stat]);
        }
    }

    // value_counts: most frequent first.
    let vc = s.value_counts("region").unwrap();
    let counts = env
        .check(
            "value_counts",
            &vc,
            "Sort by count DESC",
            "SELECT region, count(*) AS count FROM s GROUP BY region",
            false,
        )
        .await;
    let c = f64s(&counts, "count");
    assert!(c.windows(2).all(|w| w[0] >= w[1]), "value_counts not sorted: {c:?}");

    let distinct = s.select(&["region", "sku"]).unwrap().drop_duplicates(None).unwrap();
    env.check(
        "drop_duplicates",
        &distinct,
        "Aggregate by [region, sku]",
        "SELECT DISTINCT region, sku FROM s",
        false,
    )
    .await;

    let top = s.nlargest(10, &["score"]).unwrap();
    env.check("nlargest", &top, "TopK n=10", "SELECT * FROM s ORDER BY score DESC NULLS LAST LIMIT 10", true)
        .await;
    let bottom = s.nsmallest(7, &["day", "id"]).unwrap();
    env.check(
        "nsmallest",
        &bottom,
        "TopK n=7",
        "SELECT * FROM s ORDER BY day ASC NULLS LAST, id LIMIT 7",
        true,
    )
    .await;
}

const JOIN_COLUMNS: &str = "s.id, s.cust, s.sku, s.region AS region_x, s.qty, s.price, s.day, s.score, \
    c.segment, c.credit, c.region AS region_y";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_strategies_match_duckdb() {
    let env = Env::new().await;
    let (s, c) = (&env.sales, &env.customers);
    let on = || Merge::on(&["cust"]);

    // Inner: the small right side is broadcast; a hash join gives the same table.
    let sql = format!("SELECT {JOIN_COLUMNS} FROM s JOIN c ON s.cust = c.cust");
    let broadcast = s.merge(c, &on()).unwrap();
    // Chosen by estimated work, every estimate compared in the plan.
    let plan = broadcast.explain().unwrap();
    assert!(
        plan.contains("estimated work: broadcast right ~")
            && plan.contains(", hash ~")
            && plan.contains("the left side is over the broadcast limit"),
        "{plan}"
    );
    let broadcast =
        env.check("inner_broadcast", &broadcast, "strategy=broadcast side=right", &sql, false).await;
    let hash = s.merge(c, &on().strategy(JoinHint::Hash).npartitions(16)).unwrap();
    let hash = env.check("inner_hash", &hash, "strategy=hash npartitions=16", &sql, false).await;
    assert_same_rows(&broadcast, &hash).unwrap();

    let sql = format!("SELECT {JOIN_COLUMNS} FROM s LEFT JOIN c ON s.cust = c.cust");
    let left = s.merge(c, &on().how(JoinHow::Left)).unwrap();
    env.check("left_broadcast", &left, "strategy=broadcast side=right", &sql, false).await;
    let left_hash = s.merge(c, &on().how(JoinHow::Left).strategy(JoinHint::Hash).npartitions(8)).unwrap();
    env.check("left_hash", &left_hash, "strategy=hash", &sql, false).await;

    // Right and outer keep unmatched right rows: the big left side cannot be broadcast.
    let sql = "SELECT s.id, c.cust, s.sku, s.region AS region_x, s.qty, s.price, s.day, s.score, \
               c.segment, c.credit, c.region AS region_y FROM s RIGHT JOIN c ON s.cust = c.cust";
    let right = s.merge(c, &on().how(JoinHow::Right)).unwrap();
    env.check("right_hash", &right, "strategy=hash", sql, false).await;
    // ...but a right join whose left side is small broadcasts the left.
    let small = c.filter("credit > 5000").unwrap();
    let sql_small = "SELECT c.cust, c2.segment AS segment_x, c2.credit AS credit_x, c2.region AS region_x, \
                     c.segment AS segment_y, c.credit AS credit_y, c.region AS region_y \
                     FROM (SELECT * FROM c WHERE credit > 5000) c2 RIGHT JOIN c ON c2.cust = c.cust";
    let right_small = small.merge(c, &on().how(JoinHow::Right).strategy(JoinHint::Broadcast)).unwrap();
    env.check("right_broadcast_left", &right_small, "strategy=broadcast side=left", sql_small, false).await;

    let sql = "SELECT s.id, coalesce(s.cust, c.cust) AS cust, s.sku, s.region AS region_x, s.qty, \
               s.price, s.day, s.score, c.segment, c.credit, c.region AS region_y \
               FROM s FULL OUTER JOIN c ON s.cust = c.cust";
    let outer = s.merge(c, &on().how(JoinHow::Outer).npartitions(12)).unwrap();
    env.check("outer_hash", &outer, "strategy=hash npartitions=12", sql, false).await;

    let semi = s.merge(c, &on().how(JoinHow::Semi)).unwrap();
    env.check("semi", &semi, "strategy=broadcast", "SELECT * FROM s SEMI JOIN c ON s.cust = c.cust", false)
        .await;
    let anti = s.merge(c, &on().how(JoinHow::Anti).strategy(JoinHint::Hash)).unwrap();
    env.check("anti_hash", &anti, "strategy=hash", "SELECT * FROM s ANTI JOIN c ON s.cust = c.cust", false)
        .await;

    // Different key names are both kept; clashing columns take the given suffixes.
    let renamed =
        c.assign("customer_id", "cust").unwrap().select(&["customer_id", "segment", "region"]).unwrap();
    let merge = Merge::left_right(&["cust"], &["customer_id"]).how(JoinHow::Left).suffixes("_s", "_c");
    let lr = s.select(&["id", "cust", "region"]).unwrap().merge(&renamed, &merge).unwrap();
    let sql = "SELECT s.id, s.cust, s.region AS region_s, c.cust AS customer_id, c.segment, c.region AS region_c \
               FROM s LEFT JOIN c ON s.cust = c.cust";
    env.check("left_on_right_on", &lr, "Join left on cust = customer_id", sql, false).await;

    // A left side indexed by the key: the right side is range-shuffled to its divisions and
    // partitions pair up (forced here, chosen by the planner below).
    let indexed = s.set_index("cust").unwrap();
    let div = indexed.merge(c, &on().strategy(JoinHint::PartitionWise)).unwrap();
    let sql = format!("SELECT {JOIN_COLUMNS} FROM s JOIN c ON s.cust = c.cust");
    env.check("divisions_forced", &div, "strategy=divisions", &sql, false).await;
    let big_right = s.select(&["id", "cust"]).unwrap();
    let div = c.set_index("cust").unwrap().merge(&big_right, &on().how(JoinHow::Left)).unwrap();
    let sql = "SELECT c.cust, c.segment, c.credit, c.region, s.id FROM c LEFT JOIN s ON c.cust = s.cust";
    let plan = div.explain().unwrap();
    assert!(
        plan.contains("estimated work: divisions ~") && plan.contains("the left side is indexed by cust"),
        "{plan}"
    );
    env.check("divisions_auto", &div, "strategy=divisions", sql, false).await;

    // Two aggregations shuffled by the join key into the same partitions join partition-wise.
    let a = s.groupby(&["cust"]).split_out(8).agg(&aggs(&[("qty", "qty", "sum")])).unwrap();
    let b = c.groupby(&["cust"]).split_out(8).agg(&aggs(&[("credit", "credit", "max")])).unwrap();
    let pw = a.merge(&b, &on()).unwrap();
    let sql = "SELECT a.cust, a.qty, b.credit FROM (SELECT cust, sum(qty) AS qty FROM s GROUP BY cust) a \
               JOIN (SELECT cust, max(credit) AS credit FROM c GROUP BY cust) b ON a.cust = b.cust";
    env.check("partition_wise", &pw, "strategy=partition-wise", sql, false).await;

    // One side shuffled by the join key already: only the other side is shuffled, into its
    // partitions (a left one runs the join in its own tasks, a right one is read a task per
    // reducer), for every join type that hashes.
    let sql_a = "(SELECT cust, sum(qty) AS qty FROM s GROUP BY cust)";
    let sold = c.merge(&a, &on().strategy(JoinHint::Hash)).unwrap();
    let plan = sold.explain().unwrap();
    assert!(plan.contains("only the left is shuffled"), "{plan}");
    let sql = format!("SELECT c.*, a.qty FROM c JOIN {sql_a} a ON c.cust = a.cust");
    env.check("hash_right_placed", &sold, "strategy=hash npartitions=8", &sql, false).await;
    let unsold = a.merge(c, &on().how(JoinHow::Right).strategy(JoinHint::Hash)).unwrap();
    let plan = unsold.explain().unwrap();
    assert!(plan.contains("only the right is shuffled"), "{plan}");
    let sql = format!(
        "SELECT c.cust, a.qty, c.segment, c.credit, c.region FROM {sql_a} a RIGHT JOIN c ON a.cust = c.cust"
    );
    env.check("hash_left_placed", &unsold, "strategy=hash npartitions=8", &sql, false).await;
    let buyers = c.merge(&a, &on().how(JoinHow::Anti).strategy(JoinHint::Hash)).unwrap();
    let sql = format!("SELECT * FROM c ANTI JOIN {sql_a} a ON c.cust = a.cust");
    env.check("hash_right_placed_anti", &buyers, "only the left is shuffled", &sql, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_and_repartitions_match_duckdb() {
    let env = Env::new().await;
    let s = &env.sales;

    let keys = [
        SortKey { column: "region".into(), ascending: true, nulls_first: true },
        SortKey { column: "price".into(), ascending: false, nulls_first: false },
        SortKey::asc("id"),
    ];
    let sorted = s.sort_values(&keys).unwrap();
    assert_eq!(sorted.npartitions(), FILES);
    env.check(
        "sort_multi",
        &sorted,
        "Sort by region ASC NULLS FIRST, price DESC NULLS LAST, id ASC NULLS LAST into 200 range partitions",
        "SELECT * FROM s ORDER BY region ASC NULLS FIRST, price DESC NULLS LAST, id",
        true,
    )
    .await;

    // Half the rows share sku 'hot': one range holds them all, and the sort still completes.
    let skewed = s.sort_values_into(&[SortKey::asc("sku"), SortKey::asc("id")], 16).unwrap();
    env.check(
        "sort_skewed",
        &skewed,
        "into 16 range partitions",
        "SELECT * FROM s ORDER BY sku NULLS LAST, id",
        true,
    )
    .await;

    // set_index: partitions are ranges of the index, in order.
    let indexed = s.set_index("day").unwrap();
    let rows = env.check("set_index", &indexed, "SetIndex by day", "SELECT * FROM s", false).await;
    let days: Vec<Option<i32>> = rows
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name("day").unwrap().as_any().downcast_ref::<Date32Array>().unwrap().clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect();
    let key = |d: &Option<i32>| (d.is_none(), d.unwrap_or_default());
    assert!(days.windows(2).all(|w| key(&w[0]) <= key(&w[1])), "set_index output is not ordered by day");
    // The divisions are in the boundaries task's manifest: 199 dates, ascending.
    let divisions: Vec<Vec<String>> = std::fs::read_dir(env.dir.join("root/commits"))
        .unwrap()
        .filter_map(|e| {
            let m: shoal_protocol::Manifest =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            m.divisions.filter(|d| d.first().is_some_and(|row| row[0].starts_with("20")))
        })
        .next()
        .expect("a manifest with day divisions");
    assert_eq!(divisions.len(), FILES - 1);
    assert!(divisions.windows(2).all(|w| w[0][0] <= w[1][0]), "{divisions:?}");

    // loc on the index: the condition also prunes the scans of the sort's map tasks.
    let window = indexed.loc(Some("DATE '2021-01-01'"), Some("DATE '2021-03-31'")).unwrap();
    let plan = window.explain().unwrap();
    assert!(plan.contains("prune_by: \"day\" >= DATE '2021-01-01' AND"), "{plan}");
    env.check(
        "loc",
        &window,
        "SetIndex by day",
        "SELECT * FROM s WHERE day BETWEEN DATE '2021-01-01' AND DATE '2021-03-31'",
        false,
    )
    .await;
    assert!(s.loc(Some("1"), None).unwrap_err().to_string().contains("set_index"));

    // Repartition keeps every row, in order, whether it merges or splits partitions.
    let fewer = s.repartition(7);
    assert_eq!(fewer.npartitions(), 7);
    env.check("repartition_fewer", &fewer, "Repartition npartitions=7", "SELECT * FROM s ORDER BY id", true)
        .await;
    let more = s.filter("qty > 0").unwrap().repartition(450);
    assert_eq!(more.npartitions(), 450);
    let rows = env
        .check(
            "repartition_more",
            &more,
            "Repartition npartitions=450",
            "SELECT * FROM s WHERE qty > 0 ORDER BY id",
            true,
        )
        .await;
    let ids: Vec<i64> = rows
        .iter()
        .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // Too many tasks: explain says so (and `shoal run` warns).
    let plan = s.repartition(120_000).explain().unwrap();
    assert!(
        plan.contains("warning: the task graph has 120200 tasks"),
        "{}",
        &plan[plan.len().saturating_sub(400)..]
    );
    let sized = s.repartition_size(100_000);
    assert!(sized.npartitions() > 1 && sized.npartitions() < FILES, "{}", sized.npartitions());
    env.check("repartition_size", &sized, "Repartition", "SELECT * FROM s ORDER BY id", true).await;
}

/// A Parquet file of about 8× the task memory limit streams through its task: the scan task of
/// a group-by reads it batch by batch into the partial aggregation and never holds it, where a
/// task reading it whole would be refused. The sums are checked against DuckDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_larger_than_task_memory_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    write_sales(&data, 1, 900_000, 1_000).unwrap();
    let path = format!("{}/*.parquet", data.display());
    let limit: u64 = 4 << 20;

    let roomy = Client::new(crate::config(&tmp.path().join("roomy"), ExecutorKind::Threads)).unwrap();
    let all = roomy.read_parquet(&path).await.unwrap().compute().await.unwrap();
    let in_memory = shoal_worker::io::memory::held_bytes(&all) as u64;
    assert!(in_memory >= 8 * limit, "{in_memory} bytes is not 8x the {limit}-byte limit");

    let mut config = crate::config(&tmp.path().join("root"), ExecutorKind::Processes);
    config.limits.task_memory_bytes = limit;
    let client = Client::new(config).unwrap();
    let sales = client.read_parquet(&path).await.unwrap();
    assert_eq!(sales.npartitions(), 1, "one file, one scan task");
    let by_region = sales
        .filter("qty > 0")
        .unwrap()
        .assign("amount", "qty * price")
        .unwrap()
        .groupby(&["region"])
        .agg(&[Agg::new("amount", "amount", "sum").unwrap(), Agg::new("n", "id", "size").unwrap()])
        .unwrap()
        .sort_values(&[SortKey::asc("region")])
        .unwrap();
    let got = by_region.compute().await.unwrap();
    let sql = format!(
        "SELECT region, sum(qty * price) AS amount, count(*) AS n FROM read_parquet('{path}') \
         WHERE qty > 0 GROUP BY region ORDER BY region"
    );
    let out = tmp.path().join("duckdb.parquet");
    duckdb_query(&sql, &out).unwrap();
    assert_same_rows_ordered(&got, &read_parquet_dir(&out).unwrap()).unwrap();
}

/// A shuffle of about 4× the task memory limit completes on worker processes: every map task
/// holds one partition (and its sorted copy), never the whole shuffle. The same data
/// sorted into a single partition needs it all in one task, and fails on the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffle_larger_than_task_memory_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    let rows = write_sales(&data, 40, 24_000, 1_000_000).unwrap();
    let limit: u64 = 12 << 20;
    let mut config = crate::config(&tmp.path().join("root"), ExecutorKind::Processes);
    config.limits.task_memory_bytes = limit;
    // One partition per file: each map task holds one file's rows, under the limit.
    config.coalesce_small_files = false;
    let client = Client::new(config).unwrap();
    let sales = client.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();

    // The decoded size of the data, measured the way the worker measures a task's inputs.
    let all = sales.compute().await.unwrap();
    let in_memory = shoal_worker::io::memory::held_bytes(&all);
    assert!(in_memory as u64 >= 4 * limit, "{in_memory} bytes is not 4x the {limit}-byte limit");

    let keys = [SortKey::asc("cust"), SortKey::asc("id")];
    let sorted = sales.sort_values_into(&keys, 40).unwrap();
    let (batches, summary) = sorted.compute_with(shoal::events::Events::new()).await.unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), rows);
    let mut previous: Option<(Option<i64>, i64)> = None;
    for b in &batches {
        let cust = b.column_by_name("cust").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        let id = b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            let key = (cust.is_valid(i).then(|| cust.value(i)), id.value(i));
            if let Some(p) = previous {
                // Nulls last.
                let rank = |k: (Option<i64>, i64)| (k.0.is_none(), k.0.unwrap_or_default(), k.1);
                assert!(rank(p) < rank(key), "out of order: {p:?} then {key:?}");
            }
            previous = Some(key);
        }
    }
    // 40 samples, the boundaries and 40 map tasks, each sorting its partition; the reader merges
    // each range from the maps' buckets (no reducer writes the sorted ranges).
    assert_eq!(summary.executed, 40 * 2 + 1, "{summary:?}");

    // One partition would hold everything in one task: the limit stops it, once, clearly.
    let err = sales.sort_values_into(&keys, 1).unwrap().compute().await.unwrap_err().to_string();
    assert!(err.contains("over its limit") && err.contains("more partitions"), "{err}");
}
