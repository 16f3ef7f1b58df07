//! Executor conformance: the same job cases (relational, wasm, head, CSV, group-by, merge, sort,
//! a fatal guest failure) on `sync`, `threads`, `processes` and `lambda` (the real handler
//! behind a local Lambda) give identical results, equal to DuckDB's.

use crate::client;
use arrow::record_batch::RecordBatch;
use serde_json::json;
use shoal::JoinHint;
use shoal::{Agg, Client, Error, ExecutorKind, Merge};
use shoal_protocol::{FailureKind, SortKey};
use shoal_tests::data::{assert_same_rows, assert_same_rows_ordered, trips_batch, write_csv, write_trips};
use shoal_tests::python::duckdb_query;
use shoal_tests::read_parquet_dir;
use std::path::Path;

/// The cases, run on one client. Returns each case's result for cross-executor comparison.
async fn suite(c: &Client, data: &Path, csv: &Path) -> Vec<(String, Vec<RecordBatch>)> {
    let mut results = Vec::new();
    let trips = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let examples = c.load_module("builtin:examples").await.unwrap();

    let relational = trips
        .filter("fare > 10 AND passengers IS NOT NULL")
        .unwrap()
        // Decimal division follows DataFusion (a decimal of scale 6) where DuckDB gives a double:
        // divide as doubles so both engines mean the same thing.
        .assign("fare_per_pax", "CAST(fare AS DOUBLE) / (passengers + 1)")
        .unwrap()
        .select(&["id", "vendor", "fare_per_pax", "pickup_date"])
        .unwrap();
    results.push(("relational".to_string(), relational.compute().await.unwrap()));

    let wasm = trips
        .map_partitions(&examples, "normalize_text", json!({"column": "note", "output": "clean"}))
        .unwrap()
        .filter("clean = 'airport'")
        .unwrap();
    results.push(("wasm".to_string(), wasm.compute().await.unwrap()));

    // Two stages: per-partition heads, then one task reading them all.
    let head = trips.filter("vendor = 'C'").unwrap().head(7);
    results.push(("head".to_string(), head.compute().await.unwrap()));

    let from_csv = c
        .read_csv(&csv.display().to_string(), Default::default())
        .await
        .unwrap()
        .filter("distance > 1000")
        .unwrap();
    results.push(("csv".to_string(), from_csv.compute().await.unwrap()));

    // Rows moving between partitions: a shuffled group-by, a hash join, a range-partitioned sort.
    let grouped = trips
        .groupby(&["vendor", "passengers"])
        .split_out(3)
        .agg(&[
            Agg::new("fare", "fare", "sum").unwrap(),
            Agg::new("n", "id", "count").unwrap(),
            Agg::new("km", "distance", "mean").unwrap(),
        ])
        .unwrap();
    results.push(("groupby".to_string(), grouped.compute().await.unwrap()));
    let per_vendor = trips.groupby(&["vendor"]).agg(&[Agg::new("trips", "id", "size").unwrap()]).unwrap();
    let merged = trips
        .select(&["id", "vendor"])
        .unwrap()
        .merge(&per_vendor, &Merge::on(&["vendor"]).strategy(JoinHint::Hash).npartitions(3))
        .unwrap();
    results.push(("merge".to_string(), merged.compute().await.unwrap()));
    let keys = [SortKey { column: "fare".into(), ascending: false, nulls_first: false }, SortKey::asc("id")];
    let sorted = trips.sort_values_into(&keys, 3).unwrap();
    results.push(("sort".to_string(), sorted.compute().await.unwrap()));

    // A failing user function fails the job once, with a fatal error naming the task.
    let testing = c.load_module("builtin:testing").await.unwrap();
    let err = trips
        .map_partitions(&testing, "identity", json!({}))
        .unwrap()
        .map_partitions(&testing, "trap", json!({}))
        .unwrap()
        .compute()
        .await
        .unwrap_err();
    match &err {
        Error::Task { failure, attempts } => {
            assert_eq!(failure.kind, FailureKind::Fatal, "{err}");
            assert_eq!(*attempts, 1, "a fatal failure is not retried: {err}");
            assert!(failure.task_key.as_str().starts_with("scan-map"), "{err}");
        }
        other => panic!("expected a task failure, got {other}"),
    }
    results
}

async fn reference(name: &str, sql: &str, tmp: &Path) -> Vec<RecordBatch> {
    let out = tmp.join(format!("ref-{name}.parquet"));
    duckdb_query(sql, &out).unwrap();
    read_parquet_dir(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_agree_with_each_other_and_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_trips(&data, &[500, 0, 800, 300], 200).unwrap();
    let csv = tmp.path().join("trips.csv");
    write_csv(&csv, &trips_batch(0, 400, 99).unwrap()).unwrap();

    let mut all = Vec::new();
    // Three handler processes behind the local Lambda; specs over 4 KB go by reference.
    let lambda = crate::local_lambda(3);
    for kind in [ExecutorKind::Sync, ExecutorKind::Threads, ExecutorKind::Processes, ExecutorKind::Lambda] {
        // A fresh job root per executor, so each one really runs every task.
        let root = tmp.path().join(format!("root-{kind}"));
        let c = match kind {
            ExecutorKind::Lambda => crate::lambda_client(&root, &lambda, 3, 4096),
            _ => client(&root, kind),
        };
        assert_eq!(c.executor().name(), kind.to_string());
        all.push((kind, suite(&c, &data, &csv).await));
    }
    assert!(lambda.invocations() > 20, "{} invocations", lambda.invocations());

    let glob = format!("read_parquet('{}/*.parquet')", data.display());
    let expected = [
        reference(
            "relational",
            &format!("SELECT id, vendor, CAST(fare AS DOUBLE) / (passengers + 1) AS fare_per_pax, pickup_date FROM {glob} WHERE fare > 10 AND passengers IS NOT NULL"),
            tmp.path(),
        )
        .await,
        reference(
            "wasm",
            &format!("SELECT *, lower(trim(note)) AS clean FROM {glob} WHERE lower(trim(note)) = 'airport'"),
            tmp.path(),
        )
        .await,
        reference("head", &format!("SELECT * FROM {glob} WHERE vendor = 'C' ORDER BY id LIMIT 7"), tmp.path()).await,
        reference(
            "csv",
            &format!("SELECT * FROM read_csv('{}', header = true) WHERE distance > 1000", csv.display()),
            tmp.path(),
        )
        .await,
        reference(
            "groupby",
            &format!(
                "SELECT vendor, passengers, sum(fare) AS fare, count(id) AS n, avg(distance) AS km \
                 FROM {glob} GROUP BY vendor, passengers"
            ),
            tmp.path(),
        )
        .await,
        reference(
            "merge",
            &format!(
                "SELECT t.id, t.vendor, g.trips FROM {glob} t \
                 JOIN (SELECT vendor, count(*) AS trips FROM {glob} GROUP BY vendor) g ON t.vendor = g.vendor"
            ),
            tmp.path(),
        )
        .await,
        reference("sort", &format!("SELECT * FROM {glob} ORDER BY fare DESC NULLS LAST, id"), tmp.path()).await,
    ];
    assert_eq!(expected.len(), all[0].1.len());
    for (kind, results) in &all {
        for ((name, batches), reference) in results.iter().zip(&expected) {
            let same = if name == "sort" {
                assert_same_rows_ordered(batches, reference)
            } else {
                assert_same_rows(batches, reference)
            };
            if let Err(e) = same {
                panic!("{kind}/{name} differs from DuckDB: {e:#}");
            }
        }
    }
    // Identical, not just equivalent: same batches, same order, across executors.
    let (_, first) = &all[0];
    for (kind, results) in &all[1..] {
        for ((name, a), (_, b)) in first.iter().zip(results) {
            let concat = |x: &[RecordBatch]| {
                x.first().map(|f| arrow::compute::concat_batches(&f.schema(), x).unwrap())
            };
            assert_eq!(concat(a), concat(b), "{kind}/{name} differs from sync");
        }
    }
}
