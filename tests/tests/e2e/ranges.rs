//! Data written in key order: files whose Parquet statistics give disjoint ranges of a key make
//! aggregations by it local (no shuffle, no final step) and joins on it pair each partition with
//! the partitions of the other side whose ranges overlap its own. Each plan is checked for the
//! strategy and against DuckDB; a key with nulls, and joins that must keep every right row, are
//! checked not to use them.

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use shoal::{Agg, Client, DataFrame, ExecutorKind, Merge};
use shoal_protocol::JoinHow;
use shoal_tests::data::assert_same_rows;
use shoal_tests::python::duckdb_over_tables;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn write(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    // Two row groups per file, so that ranges are unions of row groups' statistics.
    let props =
        parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(150)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// `orders`: `o_id` 0..1000 in 4 files of 250 (in key order), `o_status`, `o_total`.
/// `people`: `p_id` 0..101 (the values of `o_total`), `p_name`; one file.
/// `items`: 1 to 4 items per order, in order of `order_id`, cut into 5 files at other places
/// than the orders' files (so a file of items overlaps one or two files of orders); `sku`
/// (Int32), `qty`. `loose`: the items again, one order id in the third file made null.
fn write_tables(dir: &Path) {
    for t in ["orders", "items", "loose", "people"] {
        std::fs::create_dir_all(dir.join(t)).unwrap();
    }
    let people = Arc::new(Schema::new(vec![
        Field::new("p_id", DataType::Int64, false),
        Field::new("p_name", DataType::Utf8, false),
    ]));
    let ids: Vec<i64> = (0..101).collect();
    let names: StringArray = ids.iter().map(|i| Some(format!("person {i}"))).collect();
    let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids)), Arc::new(names)];
    write(&dir.join("people/people-0.parquet"), &RecordBatch::try_new(people, columns).unwrap());
    let orders = Arc::new(Schema::new(vec![
        Field::new("o_id", DataType::Int64, false),
        Field::new("o_status", DataType::Utf8, false),
        Field::new("o_total", DataType::Int64, false),
    ]));
    for f in 0..4i64 {
        let ids: Vec<i64> = (f * 250..(f + 1) * 250).collect();
        let status: StringArray = ids.iter().map(|i| Some(["F", "O", "P"][(i % 3) as usize])).collect();
        let total: Int64Array = ids.iter().map(|i| Some(i * 7 % 101)).collect();
        let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids)), Arc::new(status), Arc::new(total)];
        write(
            &dir.join(format!("orders/orders-{f}.parquet")),
            &RecordBatch::try_new(orders.clone(), columns).unwrap(),
        );
    }
    let items = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, true),
        Field::new("sku", DataType::Int32, false),
        Field::new("qty", DataType::Int64, false),
    ]));
    let mut rows: Vec<(i64, i32, i64)> = vec![];
    for o in 0..1000i64 {
        for k in 0..(1 + o % 4) {
            // Some orders repeat a sku: nunique differs from the count.
            rows.push((o, ((o * 3 + k * (o % 2)) % 17) as i32, 1 + (o + k) % 5));
        }
    }
    let cuts = [0, 300, 1100, 1500, 2200, rows.len()];
    for (f, w) in cuts.windows(2).enumerate() {
        let part = &rows[w[0]..w[1]];
        for (table, null_at) in [("items", None), ("loose", (f == 2).then_some(5))] {
            let ids: Int64Array = part
                .iter()
                .enumerate()
                .map(|(i, r)| if Some(i) == null_at { None } else { Some(r.0) })
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(ids),
                Arc::new(part.iter().map(|r| r.1).collect::<Int32Array>()),
                Arc::new(part.iter().map(|r| r.2).collect::<Int64Array>()),
            ];
            let batch = RecordBatch::try_new(items.clone(), columns).unwrap();
            write(&dir.join(format!("{table}/{table}-{f}.parquet")), &batch);
        }
    }
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    orders: DataFrame,
    items: DataFrame,
    loose: DataFrame,
}

impl Env {
    async fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        write_tables(&dir);
        let client = Client::new(crate::config(&dir.join("root"), ExecutorKind::Threads)).unwrap();
        let read = |t: &str| format!("{}/{t}/*.parquet", dir.display());
        let orders = client.read_parquet(&read("orders")).await.unwrap();
        let items = client.read_parquet(&read("items")).await.unwrap();
        let loose = client.read_parquet(&read("loose")).await.unwrap();
        Env { _tmp: tmp, dir, orders, items, loose }
    }

    /// `df` names `strategy` (and not `absent`) in its optimized plan and equals DuckDB's `sql`
    /// over views `o`, `i`, `l` (loose) and `p` (people).
    async fn check(&self, name: &str, df: &DataFrame, strategy: &str, absent: &str, sql: &str) {
        let plan = df.explain().unwrap();
        let optimized = plan.split("== task graph").next().unwrap_or_default();
        assert!(optimized.contains(strategy), "{name}: expected '{strategy}' in the plan:\n{plan}");
        assert!(!optimized.contains(absent), "{name}: '{absent}' in the plan:\n{plan}");
        let actual = df.compute().await.unwrap_or_else(|e| panic!("{name}: shoal failed: {e}\n{plan}"));
        let views = [("o", "orders"), ("i", "items"), ("l", "loose"), ("p", "people")];
        let expected = duckdb_over_tables(&self.dir, &views, name, sql)
            .unwrap_or_else(|e| panic!("{name}: duckdb failed: {e:#}"));
        if let Err(e) = assert_same_rows(&actual, &expected) {
            panic!("{name}: shoal and DuckDB disagree: {e:#}\n{plan}");
        }
    }
}

/// What `explain` says of a join side read straight from its files.
const SIDE_FROM_FILES: &str = "side table read from its files";

fn per_order(df: &DataFrame) -> DataFrame {
    df.groupby(&["order_id"])
        .agg(&[
            Agg::new("n_sku", "sku", "nunique").unwrap(),
            Agg::new("qty", "qty", "sum").unwrap(),
            Agg::new("n", "sku", "size").unwrap(),
        ])
        .unwrap()
}

#[tokio::test]
async fn an_aggregation_by_a_key_in_disjoint_ranges_runs_in_each_partition() {
    let env = Env::new().await;
    let sql =
        "SELECT order_id, count(DISTINCT sku) AS n_sku, sum(qty) AS qty, count(*) AS n FROM {t} GROUP BY 1";
    let df = per_order(&env.items.filter("qty > 1").unwrap());
    let plan = df.explain().unwrap();
    assert!(plan.contains("5 partitions hold disjoint ranges of order_id"), "{plan}");
    let filtered = "(SELECT * FROM i WHERE qty > 1)";
    env.check("local", &df, "strategy=local", "strategy=tree", &sql.replace("{t}", filtered)).await;
    // One null key makes the null group possible in any file: not local.
    env.check("nulls", &per_order(&env.loose), "strategy=", "strategy=local", &sql.replace("{t}", "l")).await;
}

#[tokio::test]
async fn joins_on_a_key_in_ranges_read_only_the_overlapping_partitions() {
    let env = Env::new().await;
    let on = || Merge::left_right(&["order_id"], &["o_id"]);
    let cols = "i.order_id, i.sku, i.qty";
    for (how, sql) in [
        (
            JoinHow::Inner,
            format!("SELECT {cols}, o.* FROM i JOIN o ON i.order_id = o.o_id WHERE o.o_status <> 'P'"),
        ),
        (
            JoinHow::Left,
            format!(
                "SELECT {cols}, o.* FROM i LEFT JOIN (SELECT * FROM o WHERE o_status <> 'P') o ON i.order_id = o.o_id"
            ),
        ),
        (
            JoinHow::Semi,
            format!(
                "SELECT {cols} FROM i SEMI JOIN (SELECT * FROM o WHERE o_status <> 'P') o ON i.order_id = o.o_id"
            ),
        ),
        (
            JoinHow::Anti,
            format!(
                "SELECT {cols} FROM i ANTI JOIN (SELECT * FROM o WHERE o_status <> 'P') o ON i.order_id = o.o_id"
            ),
        ),
    ] {
        let open = env.orders.filter("o_status <> 'P'").unwrap();
        let df = env.items.merge(&open, &on().how(how)).unwrap();
        // A filtered side is materialized by its own stage, which the joining tasks read.
        assert!(!df.explain().unwrap().contains(SIDE_FROM_FILES), "{}", df.explain().unwrap());
        env.check(how.as_str(), &df, "strategy=ranges", "strategy=hash", &sql).await;
    }
    // A few orders joined to many items: the joining tasks build on their orders (the input)
    // and stream the items through; the rows are the same either way.
    let few = env.orders.filter("o_total < 5").unwrap();
    let many_items = env.items.filter("qty > 1").unwrap();
    let items_sql = "(SELECT * FROM i WHERE qty > 1)";
    for (how, sql) in [
        (
            JoinHow::Inner,
            format!("SELECT o.*, i.* FROM o JOIN {items_sql} i ON o.o_id = i.order_id WHERE o.o_total < 5"),
        ),
        (
            JoinHow::Semi,
            format!("SELECT o.* FROM o SEMI JOIN {items_sql} i ON o.o_id = i.order_id WHERE o.o_total < 5"),
        ),
    ] {
        let df = few.merge(&many_items, &Merge::left_right(&["o_id"], &["order_id"]).how(how)).unwrap();
        let plan = df.explain().unwrap();
        let graph = plan.split("== task graph").nth(1).unwrap_or_default();
        assert!(graph.contains("(hash table on the input, the side table streams)"), "{plan}");
        env.check(&format!("input build {}", how.as_str()), &df, "strategy=", "strategy=hash", &sql).await;
    }
    // Every right row must come out once: a right join is not paired by ranges.
    let right = env.items.merge(&env.orders, &on().how(JoinHow::Right)).unwrap();
    let sql = format!("SELECT {cols}, o.* FROM i RIGHT JOIN o ON i.order_id = o.o_id");
    env.check("right", &right, "strategy=", "strategy=ranges", &sql).await;

    // As TPC-H q21 has it: the join's output keeps the ranges of its left side, and the semi
    // and anti joins read local aggregations by the same key.
    let many = per_order(&env.items).filter("n_sku > 2").unwrap();
    let repeats = per_order(&env.items).filter("n > n_sku").unwrap();
    let df = env
        .items
        .merge(&env.orders, &on())
        .unwrap()
        .merge(&many, &Merge::on(&["order_id"]).how(JoinHow::Semi))
        .unwrap()
        .merge(&repeats, &Merge::on(&["order_id"]).how(JoinHow::Anti))
        .unwrap()
        .groupby(&["o_status"])
        .agg(&[Agg::new("rows", "qty", "size").unwrap(), Agg::new("qty", "qty", "sum").unwrap()])
        .unwrap();
    let plan = df.explain().unwrap();
    let optimized = plan.split("== task graph").next().unwrap_or_default();
    assert_eq!(optimized.matches("strategy=ranges").count(), 3, "{plan}");
    assert_eq!(optimized.matches("strategy=local").count(), 2, "{plan}");
    // The orders side is only a scan: the joining tasks read its files, no stage writes them.
    let graph = plan.split("== task graph").nth(1).unwrap_or_default();
    assert_eq!(graph.matches(SIDE_FROM_FILES).count(), 1, "{plan}");
    // Each joining task reads the orders files pruned to its own range of order ids (the
    // first file of items holds the lowest ones, from 0).
    assert!(graph.contains("prune_by: \"o_id\" >= 0 AND \"o_id\" <= "), "{plan}");
    let a = "(SELECT order_id, count(DISTINCT sku) AS n_sku, count(*) AS n FROM i GROUP BY 1)";
    let sql = format!(
        "SELECT o.o_status, count(*) AS rows, sum(i.qty) AS qty FROM i JOIN o ON i.order_id = o.o_id \
         WHERE i.order_id IN (SELECT order_id FROM {a} WHERE n_sku > 2) \
         AND i.order_id NOT IN (SELECT order_id FROM {a} WHERE n > n_sku) GROUP BY 1"
    );
    env.check("chain", &df, "strategy=ranges", "strategy=hash", &sql).await;
}

#[tokio::test]
async fn joins_written_in_a_costly_order_run_in_a_cheaper_one() {
    // TPC-H q10's shape: people ⋈ their few orders (by a key the orders' files are not in
    // ranges of), then ⋈ the orders' items by order id. Nothing is broadcast, so as written the
    // items are shuffled to meet the people's orders; orders meeting their items first pair by
    // ranges, and only their few matches are shuffled to meet the people.
    let env = Env::new().await;
    let sql = "SELECT p.*, o.*, i.* FROM p JOIN o ON p.p_id = o.o_total JOIN i ON o.o_id = i.order_id \
               WHERE o.o_total < 10";
    for reorder in [true, false] {
        let mut config = crate::config(&env.dir.join(format!("root-{reorder}")), ExecutorKind::Threads);
        config.plan.broadcast_bytes = 0;
        config.plan.reorder_joins = reorder;
        let client = Client::new(config).unwrap();
        let read = |t: &str| format!("{}/{t}/*.parquet", env.dir.display());
        let people = client.read_parquet(&read("people")).await.unwrap();
        let few = client.read_parquet(&read("orders")).await.unwrap().filter("o_total < 10").unwrap();
        let items = client.read_parquet(&read("items")).await.unwrap();
        let df = people
            .merge(&few, &Merge::left_right(&["p_id"], &["o_total"]))
            .unwrap()
            .merge(&items, &Merge::left_right(&["o_id"], &["order_id"]))
            .unwrap();
        let plan = df.explain().unwrap();
        let optimized = plan.split("== task graph").next().unwrap_or_default();
        // Reordered, or the people's join swapped so that the orders drive it by ranges.
        let moved = optimized.contains("joins reordered") || optimized.contains("sides swapped");
        assert_eq!(moved, reorder, "{plan}");
        // Orders meet their items by ranges when reordered, by a shuffle as written.
        let (strategy, absent) = match reorder {
            true => ("on o_id = order_id [strategy=ranges", "on o_id = order_id [strategy=hash"),
            false => ("on o_id = order_id [strategy=hash", "on o_id = order_id [strategy=ranges"),
        };
        env.check(&format!("reorder={reorder}"), &df, strategy, absent, sql).await;
    }
}
