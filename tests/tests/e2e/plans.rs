//! Every plan that validates runs: one regression test per bug of issue 8, each checked against
//! DuckDB or a hand-checked outcome — chains of broadcast joins (several side tables in one
//! task), suffixed columns after projection pushdown, expressions over aggregates on every
//! strategy, outputs deleted or overwritten behind a committed job, and output locations that
//! cannot take an output.

use crate::resume::parts;
use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use shoal::{Agg, Merge};
use shoal::{Client, DataFrame, ExecutorKind};
use shoal_protocol::JoinHow;
use shoal_tests::data::{assert_same_rows, write_customers, write_sales};
use shoal_tests::python::duckdb_over_tables;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    client: Client,
    sales: DataFrame,
    customers: DataFrame,
    skus: DataFrame,
}

/// The `skus` table: `sku` (the sales' hot one and half of the others), `region` (clashes with
/// both other tables), `list_price`, `year`; two files.
fn write_skus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("list_price", DataType::Float64, true),
        Field::new("year", DataType::Int64, true),
    ]));
    let names: Vec<String> =
        std::iter::once("hot".to_string()).chain((0..500).map(|i| format!("sku-{i:04}"))).collect();
    for (f, chunk) in names.chunks(260).enumerate() {
        let n = chunk.len();
        let region: StringArray = (0..n).map(|i| Some(["north", "south", "x"][i % 3])).collect();
        let price: Float64Array = (0..n).map(|i| Some(i as f64 * 0.5 + 1.0)).collect();
        let year: Int64Array = (0..n).map(|i| Some(2020 + (i % 4) as i64)).collect();
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(chunk.to_vec())),
            Arc::new(region),
            Arc::new(price),
            Arc::new(year),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let file = std::fs::File::create(dir.join(format!("skus-{f}.parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
}

impl Env {
    async fn new(broadcast_bytes: u64) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        write_sales(&dir.join("sales"), 12, 200, 400).unwrap();
        write_customers(&dir.join("customers"), 3, 400).unwrap();
        write_skus(&dir.join("skus"));
        let mut config = crate::config(&dir.join("root"), ExecutorKind::Threads);
        config.plan.broadcast_bytes = broadcast_bytes;
        // These tests count tasks per file: one partition each, the small files not coalesced
        // (`small_files_are_coalesced_into_fewer_partitions` reads them coalesced).
        config.coalesce_small_files = false;
        let client = Client::new(config).unwrap();
        let read = |t: &str| format!("{}/{t}/*.parquet", dir.display());
        let sales = client.read_parquet(&read("sales")).await.unwrap();
        let customers = client.read_parquet(&read("customers")).await.unwrap();
        let skus = client.read_parquet(&read("skus")).await.unwrap();
        Env { _tmp: tmp, dir, client, sales, customers, skus }
    }

    /// DuckDB's answer to `sql` over views `s` (sales), `c` (customers) and `k` (skus).
    fn duckdb(&self, name: &str, sql: &str) -> Vec<RecordBatch> {
        duckdb_over_tables(&self.dir, &[("s", "sales"), ("c", "customers"), ("k", "skus")], name, sql)
            .unwrap_or_else(|e| panic!("{name}: duckdb failed: {e:#}"))
    }

    /// `df` validates, runs, names `strategy` in its plan and equals DuckDB's `sql`.
    async fn check(&self, name: &str, df: &DataFrame, strategy: &str, sql: &str) {
        df.validate().unwrap_or_else(|e| panic!("{name}: does not validate: {e}"));
        let plan = df.explain().unwrap();
        assert!(plan.contains(strategy), "{name}: expected '{strategy}' in the plan:\n{plan}");
        let actual = df.compute().await.unwrap_or_else(|e| panic!("{name}: shoal failed: {e}\n{plan}"));
        let expected = self.duckdb(name, sql);
        if let Err(e) = assert_same_rows(&actual, &expected) {
            panic!("{name}: shoal and DuckDB disagree: {e:#}\n{plan}");
        }
    }
}

const SALES: &str = "s.id, s.cust, s.sku, s.region AS region_x, s.qty, s.price, s.day, s.score";

#[tokio::test]
async fn a_chain_of_broadcast_joins_reads_each_side_table_on_its_own_port() {
    let env = Env::new(64_000_000).await;
    let a = env.sales.filter("qty > 0").unwrap();
    let b = env.customers.filter("segment IS NOT NULL").unwrap();
    let ab = a.merge(&b, &Merge::on(&["cust"])).unwrap();
    let abk =
        ab.merge(&env.skus.filter("year > 2020").unwrap(), &Merge::on(&["sku"]).how(JoinHow::Left)).unwrap();
    let plan = abk.explain().unwrap();
    // Counted in the optimized plan (the task graph below it names each stage's strategy too).
    let optimized = plan.split("== task graph").next().unwrap_or_default();
    assert_eq!(optimized.matches("side=right").count(), 2, "both right-hand sides are broadcast:\n{plan}");
    let sql = format!(
        "SELECT ab.*, kk.region, kk.list_price, kk.year FROM \
         (SELECT {SALES}, c.segment, c.credit, c.region AS region_y \
          FROM s JOIN c ON s.cust = c.cust WHERE s.qty > 0 AND c.segment IS NOT NULL) ab \
         LEFT JOIN (SELECT * FROM k WHERE year > 2020) kk ON ab.sku = kk.sku"
    );
    env.check("chain", &abk, "strategy=broadcast", &sql).await;

    // Four tables, then an aggregation fused after the joins.
    let again = abk
        .merge(
            &env.customers.select(&["cust", "segment"]).unwrap(),
            &Merge::on(&["cust"]).suffixes("", "_again"),
        )
        .unwrap()
        .groupby(&["segment_again"])
        .agg(&[Agg::new("rows", "id", "size").unwrap()])
        .unwrap();
    let sql = "SELECT c2.segment AS segment_again, count(*) AS rows FROM s \
               JOIN c ON s.cust = c.cust JOIN c c2 ON s.cust = c2.cust \
               WHERE s.qty > 0 AND c.segment IS NOT NULL GROUP BY 1";
    env.check("chain4", &again, "strategy=broadcast", sql).await;
}

/// A condition on a string column keeps, in planning's estimates, the share of the column's
/// distinct values it holds for (read from the first file's Parquet dictionaries, not assumed
/// to be 20%); the plan they shape runs to DuckDB's answer.
#[tokio::test]
async fn conditions_on_strings_are_estimated_from_the_columns_values() {
    let env = Env::new(64_000_000).await;
    let gov = env.customers.filter("segment = 'gov'").unwrap();
    let skus = env.skus.filter("sku LIKE 'sku-00%'").unwrap().select(&["sku", "list_price"]).unwrap();
    let joined =
        env.sales.merge(&gov, &Merge::on(&["cust"])).unwrap().merge(&skus, &Merge::on(&["sku"])).unwrap();
    let plan = joined.explain().unwrap();
    // Three segments (and nulls, which no condition on a value keeps).
    let segment = "Filter segment = 'gov' [keeps ~33.33% of rows, from sampled column values]";
    assert!(plan.contains(segment), "{plan}");
    // The first skus file holds "hot" and sku-0000 to sku-0258: 100 of its 260 names match.
    let names = "Filter sku LIKE 'sku-00%' [keeps ~38.46% of rows, from sampled column values]";
    assert!(plan.contains(names), "{plan}");
    let sql = format!(
        "SELECT {SALES}, c.segment, c.credit, c.region AS region_y, k.list_price \
         FROM s JOIN c ON s.cust = c.cust JOIN k ON s.sku = k.sku \
         WHERE c.segment = 'gov' AND k.sku LIKE 'sku-00%'"
    );
    env.check("strings", &joined, "strategy=", &sql).await;
}

/// A filter written after a merge runs below it where it cannot change the joined rows: a
/// test of one side's columns moves onto that side, and a disjunction of tests on both sides
/// implies one on each (the whole of it still applied after the join); a left join's right
/// side keeps its rows. Checked against DuckDB, and in the plan.
#[tokio::test]
async fn filters_after_a_merge_run_below_it_where_they_cannot_change_its_rows() {
    let env = Env::new(64_000_000).await;
    let inner = env
        .sales
        .merge(&env.customers, &Merge::on(&["cust"]))
        .unwrap()
        .filter("qty > 1 AND ((segment = 'gov' AND qty > 3) OR (segment = 'b2b' AND price < 10.0))")
        .unwrap();
    let plan = inner.explain().unwrap();
    let optimized = plan.split("== task graph").next().unwrap_or_default();
    // Below the join: the sales' own test and the sales' part of the disjunction, and the
    // customers' part of it; above it, the disjunction whole.
    for pushed in [
        "Filter qty > 1 AND (qty > 3 OR price < 10.0)",
        "Filter segment = 'gov' OR segment = 'b2b'",
        "Filter segment = 'gov' AND qty > 3 OR segment = 'b2b' AND price < 10.0",
    ] {
        assert!(optimized.contains(pushed), "expected '{pushed}' in:\n{plan}");
    }
    let sql = format!(
        "SELECT {SALES}, c.segment, c.credit, c.region AS region_y FROM s JOIN c ON s.cust = c.cust \
         WHERE s.qty > 1 AND ((c.segment = 'gov' AND s.qty > 3) OR (c.segment = 'b2b' AND s.price < 10.0))"
    );
    env.check("inner", &inner, "strategy=", &sql).await;

    let left = env
        .sales
        .merge(&env.skus.select(&["sku", "list_price"]).unwrap(), &Merge::on(&["sku"]).how(JoinHow::Left))
        .unwrap()
        .filter("qty > 2 AND (list_price IS NULL OR list_price > 5.0)")
        .unwrap();
    let plan = left.explain().unwrap();
    let optimized = plan.split("== task graph").next().unwrap_or_default();
    assert!(optimized.contains("Filter qty > 2\n") || optimized.contains("Filter qty > 2 ["), "{plan}");
    assert!(optimized.contains("Filter list_price IS NULL OR list_price > 5.0"), "{plan}");
    let sql = "SELECT s.*, k.list_price FROM s LEFT JOIN k ON s.sku = k.sku \
               WHERE s.qty > 2 AND (k.list_price IS NULL OR k.list_price > 5.0)";
    env.check("left", &left, "strategy=", sql).await;
}

#[tokio::test]
async fn only_the_suffixed_right_copy_used_keeps_its_suffix() {
    let env = Env::new(64_000_000).await;
    // Broadcast right (left join), default and custom suffixes.
    for (suffixes, column) in [(("_x", "_y"), "region_y"), (("_sale", "_cust"), "region_cust")] {
        let merge = Merge::on(&["cust"]).how(JoinHow::Left).suffixes(suffixes.0, suffixes.1);
        let df = env
            .sales
            .merge(&env.customers, &merge)
            .unwrap()
            .groupby(&["sku", column])
            .agg(&[Agg::new("qty", "qty", "sum").unwrap()])
            .unwrap();
        let sql = format!(
            "SELECT s.sku, c.region AS {column}, sum(s.qty) AS qty FROM s LEFT JOIN c ON s.cust = c.cust \
             GROUP BY 1, 2"
        );
        env.check(column, &df, "side=right", &sql).await;
    }
    // Neither copy is used, but a filter below passes the left one on: the right copy must stay
    // too, or the left one loses its suffix and clashes at the next join.
    let df = env
        .sales
        .filter("region <> 'west'")
        .unwrap()
        .merge(&env.customers, &Merge::on(&["cust"]).how(JoinHow::Left))
        .unwrap()
        .merge(&env.skus, &Merge::on(&["sku"]))
        .unwrap()
        .select(&["id", "region"])
        .unwrap();
    let sql = "SELECT s.id, k.region FROM (SELECT * FROM s WHERE region <> 'west') s \
               LEFT JOIN c ON s.cust = c.cust JOIN k ON s.sku = k.sku";
    env.check("passed_on", &df, "side=right", sql).await;
    // Suffixes that make a name already taken are refused when the merge is built.
    let clash = env.sales.assign("region_x", "1").unwrap();
    let err = clash.merge(&env.customers, &Merge::on(&["cust"])).unwrap_err().to_string();
    assert!(err.contains("two columns named 'region_x'"), "{err}");

    // Broadcast left (right join): only the left copy is used.
    let df = env
        .customers
        .merge(&env.sales, &Merge::on(&["cust"]).how(JoinHow::Right))
        .unwrap()
        .select(&["id", "region_x"])
        .unwrap();
    let sql = "SELECT s.id, c.region AS region_x FROM c RIGHT JOIN s ON c.cust = s.cust";
    env.check("right", &df, "side=left", sql).await;
    // Hash join, outer, different key names.
    let env = Env::new(0).await;
    let df = env
        .sales
        .merge(&env.skus, &Merge::on(&["sku"]).how(JoinHow::Outer))
        .unwrap()
        .select(&["sku", "region_y"])
        .unwrap();
    let sql =
        "SELECT coalesce(s.sku, k.sku) AS sku, k.region AS region_y FROM s FULL JOIN k ON s.sku = k.sku";
    env.check("outer", &df, "strategy=hash", sql).await;
}

#[tokio::test]
async fn expressions_over_aggregates_run_on_every_strategy() {
    let env = Env::new(64_000_000).await;
    let aggs = [
        Agg::new("total", "qty", "sum").unwrap(),
        Agg::sql("share", "100.0 * sum(CASE WHEN qty > 20 THEN qty ELSE 0 END) / sum(qty)"),
        Agg::sql("spread", "max(score) - min(score)"),
        Agg::sql("per_row", "CAST(sum(qty) AS DOUBLE) / count(*) + 0.5"),
    ];
    let sql_aggs = "sum(qty) AS total, 100.0 * sum(CASE WHEN qty > 20 THEN qty ELSE 0 END) / sum(qty) AS share, \
                    max(score) - min(score) AS spread, CAST(sum(qty) AS DOUBLE) / count(*) + 0.5 AS per_row";
    let tree = env.sales.groupby(&["region"]).agg(&aggs).unwrap();
    assert!(tree.explain().unwrap().contains("Assign share = "), "{}", tree.explain().unwrap());
    let sql = format!("SELECT region, {sql_aggs} FROM s GROUP BY region");
    env.check("tree", &tree, "strategy=tree", &sql).await;
    let shuffle = env.sales.groupby(&["region"]).split_out(3).agg(&aggs).unwrap();
    env.check("shuffle", &shuffle, "strategy=shuffle", &sql).await;
    let whole = env.sales.agg(&aggs).unwrap();
    env.check("whole", &whole, "strategy=tree", &format!("SELECT {sql_aggs} FROM s")).await;

    // A column outside the aggregate calls must be a group key.
    let err = env.sales.groupby(&["region"]).agg(&[Agg::sql("bad", "sum(qty) + score")]).unwrap_err();
    assert!(err.to_string().contains("only the group keys (region)"), "{err}");
    let err = env.sales.groupby(&["region"]).agg(&[Agg::sql("bad", "qty + 1")]).unwrap_err();
    assert!(err.to_string().contains("no aggregate function call"), "{err}");
}

#[tokio::test]
async fn a_frame_used_twice_runs_its_tasks_once() {
    // TPC-H Q15's shape: totals per key, their max, and the totals equal to it.
    let env = Env::new(64_000_000).await;
    let totals = env
        .sales
        .filter("qty > 3")
        .unwrap()
        .groupby(&["cust"])
        .agg(&[Agg::new("total", "qty", "sum").unwrap()])
        .unwrap();
    let top = totals.agg(&[Agg::new("top", "total", "max").unwrap()]).unwrap();
    let best = totals.merge(&top, &Merge::left_right(&["total"], &["top"]).how(JoinHow::Semi)).unwrap();
    let plan = best.explain().unwrap();
    let graph = plan.split("== task graph").nth(1).unwrap_or_default();
    let firsts: Vec<&str> = graph.lines().filter_map(|l| l.trim().strip_prefix("first task: ")).collect();
    let keys: Vec<&str> = firsts.iter().map(|l| l.split(' ').next().unwrap_or_default()).collect();
    let distinct: std::collections::HashSet<&&str> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "a stage lowered twice:\n{plan}");
    let t = "SELECT cust, sum(qty) AS total FROM s WHERE qty > 3 GROUP BY cust";
    let sql = format!("SELECT * FROM ({t}) t WHERE total = (SELECT max(total) FROM ({t}) t2)");
    env.check("used twice", &best, "strategy=", &sql).await;
}

#[tokio::test]
async fn loc_skips_the_partitions_outside_its_range() {
    let env = Env::new(64_000_000).await;
    let indexed = env.sales.set_index("id").unwrap();
    assert_eq!(indexed.npartitions(), 12);
    let window = indexed.loc(Some("100"), Some("400")).unwrap();
    let expected = env.duckdb("loc", "SELECT * FROM s WHERE id BETWEEN 100 AND 400 ORDER BY id");
    // Read by compute(): the reader merges each range from the map tasks' buckets, and reads
    // none of the empty ones. 12 samples, the boundaries, 12 maps; no task per range.
    let plan = window.explain().unwrap();
    assert!(plan.contains("merged by the reader"), "{plan}");
    let (actual, run) = window.compute_with(shoal::events::Events::new()).await.unwrap();
    shoal_tests::data::assert_same_rows_ordered(&actual, &expected).unwrap();
    assert_eq!((run.tasks, run.executed), (12 * 2 + 1, 12 * 2 + 1), "{run:?}\n{plan}");
    // With an operator after it, each range is a task, and those outside [100, 400] are not run.
    let doubled = window.assign("qty2", "qty * 2").unwrap();
    let plan = doubled.explain().unwrap();
    assert!(plan.contains("skipped when all its inputs are empty"), "{plan}");
    let (actual, run) = doubled.compute_with(shoal::events::Events::new()).await.unwrap();
    let expected =
        env.duckdb("loc2", "SELECT *, qty * 2 AS qty2 FROM s WHERE id BETWEEN 100 AND 400 ORDER BY id");
    shoal_tests::data::assert_same_rows_ordered(&actual, &expected).unwrap();
    // The ids are spread evenly over 12 ranges of about 200: at most 3 hold [100, 400]. The
    // other reducers are not run.
    assert!(run.skipped >= 8, "{run:?}\n{plan}");
    assert_eq!(run.executed + run.skipped + run.already_committed, run.tasks, "{run:?}");
    // Resumed, the skipped tasks are committed like the others.
    let (again, rerun) = doubled.compute_with(shoal::events::Events::new()).await.unwrap();
    assert_eq!((rerun.executed, rerun.already_committed), (0, run.tasks), "{rerun:?}");
    shoal_tests::data::assert_same_rows_ordered(&again, &expected).unwrap();
}

#[tokio::test]
async fn a_deleted_or_overwritten_part_is_rewritten_by_its_task_alone() {
    let env = Env::new(64_000_000).await;
    let out = env.dir.join("out");
    let loc = out.display().to_string();
    let df = env
        .sales
        .filter("qty > 3")
        .unwrap()
        .groupby(&["sku"])
        .split_out(4)
        .agg(&[Agg::new("n", "id", "size").unwrap()])
        .unwrap();
    let first = df.to_parquet(&loc).await.unwrap();
    assert_eq!(first.parts.len(), 4);
    let original = parts(&out);
    assert_eq!(original.len(), 4);

    // Nothing changed: everything reused.
    let again = df.to_parquet(&loc).await.unwrap();
    assert_eq!(again.run.executed, 0, "{:?}", again.run);

    // A deleted part: only its task runs again, and writes the same bytes.
    std::fs::remove_file(out.join("part-00002.parquet")).unwrap();
    let rerun = df.to_parquet(&loc).await.unwrap();
    assert_eq!(rerun.run.executed, 1, "{:?}", rerun.run);
    assert_eq!(parts(&out), original);

    // A part overwritten with other bytes: the same.
    std::fs::write(out.join("part-00001.parquet"), b"not the part").unwrap();
    let rerun = df.to_parquet(&loc).await.unwrap();
    assert_eq!(rerun.run.executed, 1, "{:?}", rerun.run);
    assert_eq!(parts(&out), original);

    // `_SUCCESS` lists exactly the parts that are there, with their sizes.
    let success: shoal_protocol::SuccessManifest =
        serde_json::from_slice(&std::fs::read(out.join("_SUCCESS")).unwrap()).unwrap();
    assert_eq!(success.parts.len(), 4);
    for part in &success.parts {
        let path = part.object.url.strip_prefix("file://").unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len(), part.object.size, "{path}");
    }
}

#[tokio::test]
async fn an_output_location_that_cannot_take_parts_fails_before_any_task() {
    let env = Env::new(64_000_000).await;
    let file = env.dir.join("notes.txt");
    std::fs::write(&file, "a file").unwrap();
    let df = env.sales.filter("qty > 3").unwrap();
    let err = df.to_parquet(&file.display().to_string()).await.unwrap_err();
    assert!(matches!(err, shoal::Error::Invalid(_)) && err.to_string().contains("is a file"), "{err}");
    let below = file.join("out");
    let err = df.to_parquet(&below.display().to_string()).await.unwrap_err();
    assert!(err.to_string().contains("cannot write to"), "{err}");
    // No task ran: nothing was committed under the job root.
    assert!(!env.dir.join("root/commits").exists());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a file");
    drop(env.client);
}

/// An aggregation joined on its group keys to a small side is filtered by that side first (a
/// semi join under the aggregation): the same rows as DuckDB's, for an inner join. A left join
/// keeps every group, so it is not filtered.
#[tokio::test]
async fn an_aggregation_joined_on_its_keys_is_filtered_by_the_small_side_first() {
    let env = Env::new(64_000_000).await;
    let totals = env
        .sales
        .groupby(&["sku"])
        .agg(&[Agg::new("total", "qty", "sum").unwrap(), Agg::new("n", "id", "size").unwrap()])
        .unwrap();
    let few = env.skus.filter("year = 2021 AND list_price < 20").unwrap();
    let inner = totals.merge(&few, &Merge::on(&["sku"])).unwrap();
    let plan = inner.explain().unwrap();
    let optimized = plan.split("== optimized plan ==").nth(1).unwrap_or_default();
    let below = optimized.split("Aggregate by [sku]").nth(1).unwrap_or_default();
    assert!(below.contains("Join semi on sku = sku"), "no semi join under the aggregation:\n{plan}");
    let totals_sql = "SELECT sku, sum(qty) AS total, count(*) AS n FROM s GROUP BY sku";
    let sql = format!(
        "SELECT t.sku, t.total, t.n, k.region, k.list_price, k.year FROM ({totals_sql}) t \
         JOIN k ON t.sku = k.sku WHERE k.year = 2021 AND k.list_price < 20"
    );
    env.check("reduced inner", &inner, "Join semi on sku = sku", &sql).await;

    let left = totals.merge(&few, &Merge::on(&["sku"]).how(JoinHow::Left)).unwrap();
    let plan = left.explain().unwrap();
    assert!(!plan.contains("Join semi"), "a left join filtered its groups:\n{plan}");
    let sql = format!(
        "SELECT t.sku, t.total, t.n, k.region, k.list_price, k.year FROM ({totals_sql}) t \
         LEFT JOIN (SELECT * FROM k WHERE year = 2021 AND list_price < 20) k ON t.sku = k.sku"
    );
    env.check("left kept whole", &left, "Join left on sku = sku", &sql).await;
}

/// A frame used twice with different columns (TPC-H q17's shape: sales joined to some skus,
/// averaged per sku, then compared with that average) is computed once, carrying the columns
/// of both uses: the sales files are scanned by one stage, and the rows equal DuckDB's.
#[tokio::test]
async fn a_frame_used_twice_is_computed_once() {
    let env = Env::new(64_000_000).await;
    let few = env.skus.filter("year = 2021").unwrap().select(&["sku", "list_price"]).unwrap();
    let items = env.sales.merge(&few, &Merge::on(&["sku"])).unwrap();
    let average = items.groupby(&["sku"]).agg(&[Agg::new("avg_qty", "qty", "mean").unwrap()]).unwrap();
    let below = items
        .merge(&average, &Merge::on(&["sku"]))
        .unwrap()
        .filter("qty < avg_qty")
        .unwrap()
        .select(&["id", "sku", "qty", "price", "list_price", "avg_qty"])
        .unwrap();
    let plan = below.explain().unwrap();
    let optimized = plan.split("== optimized plan ==").nth(1).unwrap_or_default();
    let optimized = optimized.split("== task graph").next().unwrap_or_default();
    assert_eq!(optimized.matches("Shared [").count(), 2, "both uses read one shared join:\n{plan}");
    let graph = plan.split("== task graph").nth(1).unwrap_or_default();
    let stages_with_sales_join =
        graph.lines().filter(|l| l.starts_with("stage") && l.contains("scan-join")).count();
    assert_eq!(stages_with_sales_join, 1, "the sales files are joined by one stage:\n{plan}");
    let items_sql =
        "SELECT s.id, s.sku, s.qty, s.price, k.list_price FROM s JOIN k ON s.sku = k.sku WHERE k.year = 2021";
    let sql = format!(
        "SELECT i.id, i.sku, i.qty, i.price, i.list_price, a.avg_qty FROM ({items_sql}) i \
         JOIN (SELECT sku, avg(qty) AS avg_qty FROM ({items_sql}) GROUP BY sku) a ON i.sku = a.sku \
         WHERE i.qty < a.avg_qty"
    );
    env.check("shared", &below, "Shared [", &sql).await;
}

/// A broadcast side in many pieces, read by many tasks (the 12 partitions of `sales`, each
/// read by the 12 tasks of `sales` again), is gathered into one object first: one task reads
/// the pieces, every task of the other side reads that one object; the rows are DuckDB's.
#[tokio::test]
async fn a_broadcast_side_in_many_pieces_is_gathered_into_one() {
    let env = Env::new(64_000_000).await;
    let sales = env.sales.select(&["id", "cust", "qty"]).unwrap();
    let large = env.sales.filter("qty > 40").unwrap().select(&["cust", "id"]).unwrap();
    let joined = sales.merge(&large, &Merge::on(&["cust"]).strategy(shoal::JoinHint::Broadcast)).unwrap();
    let plan = joined.explain().unwrap();
    let graph = plan.split("== task graph").nth(1).unwrap_or_default();
    let stages: Vec<&str> = graph.lines().filter(|l| l.starts_with("stage")).collect();
    assert!(
        stages.iter().any(|l| l.contains(": scan-filter-select (12 tasks")),
        "the side is computed in its 12 partitions:\n{plan}"
    );
    assert!(stages.iter().any(|l| l.contains(": gather (1 tasks")), "one task gathers the side:\n{plan}");
    let join_task =
        graph.lines().find(|l| l.contains("first task: scan-") && l.contains("join")).unwrap_or_default();
    assert!(join_task.contains("(reads 1 upstream tasks)"), "a joining task reads one object:\n{plan}");
    let sql = "SELECT s.id AS id_x, s.cust, s.qty, t.id AS id_y FROM s \
               JOIN (SELECT cust, id FROM s WHERE qty > 40) t ON s.cust = t.cust";
    env.check("gathered", &joined, "strategy=broadcast side=right", sql).await;
}

#[tokio::test]
async fn small_files_are_coalesced_into_fewer_partitions_in_natural_order() {
    // The 12 sales files renamed as writers often number them, unpadded: an object store lists
    // part.1, part.10, part.11, part.12, part.2, ...
    let env = Env::new(64_000_000).await;
    let parts = env.dir.join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    for f in 0..12 {
        let from = env.dir.join(format!("sales/sales-{f:04}.parquet"));
        std::fs::copy(from, parts.join(format!("part.{}.parquet", f + 1))).unwrap();
    }
    // The tests' default settings: 2 workers, so at least max(8, 2 x 2) partitions remain.
    let client = crate::client(&env.dir.join("root-coalesced"), ExecutorKind::Threads);
    let sales = client.read_parquet(&format!("{}/*.parquet", parts.display())).await.unwrap();
    let n = sales.npartitions();
    assert!((8..12).contains(&n), "{n} partitions of 12 files:\n{}", sales.explain().unwrap());
    // Read back in the files' natural order: the ids, written in file order, ascend.
    let ids: Vec<i64> = sales
        .select(&["id"])
        .unwrap()
        .compute()
        .await
        .unwrap()
        .iter()
        .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    let expected: Vec<i64> = (0..ids.len() as i64).collect();
    assert_eq!(ids, expected);
    // And what is computed over the coalesced partitions is what DuckDB computes.
    let per_region = sales.groupby(&["region"]).agg(&[Agg::new("n", "id", "count").unwrap()]).unwrap();
    env.check("coalesced", &per_region, "Aggregate", "SELECT region, count(id) AS n FROM s GROUP BY 1").await;
}
