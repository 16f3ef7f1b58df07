//! Executor conformance: the same job cases (relational, wasm, head, CSV, group-by, merge, sort,
//! a fatal guest failure) on `sync`, `threads`, `processes` and `lambda` (the real handler
//! behind a local Lambda) give identical results, equal to DuckDB's; and the same Bag cases
//! (built-in operators and reductions, `foldby` and `map`/`filter` with the Rust and the Python
//! function component) give identical items on every executor, equal to the answer computed
//! directly from the generated items; and the Array cases (a fused reduction, a matmul tree,
//! a map_blocks, a rechunk written as Zarr) give bit-identical answers and chunks, equal to
//! NumPy's.

use crate::client;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use serde_json::json;
use shoal::JoinHint;
use shoal::{Agg, Binop, Client, Error, ExecutorKind, Key, Merge, TextRead};
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

/// The Bag cases, run on one client: each case's items, as computed (order included).
async fn bag_suite(c: &Client, logs: &Path, dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut results = Vec::new();
    let read = TextRead { blocksize: Some(8_000), ..Default::default() };
    let bag = c.bag().read_json(logs.to_str().unwrap(), read).await.unwrap();
    assert!(bag.npartitions() >= 8, "{} partitions", bag.npartitions());

    // Built-in operators only: a predicate, a path, a tree of partial counts.
    let countries = bag
        .filter_where("status >= 500 AND method IN ('GET', 'POST')")
        .unwrap()
        .pluck("user.country")
        .unwrap()
        .frequencies(true);
    results.push(("frequencies".to_string(), countries.compute().await.unwrap()));

    let python = dir.join("python-examples.wasm");
    std::fs::write(&python, crate::python_functions::python_component()).unwrap();
    let modules = [
        ("rust", c.load_module("builtin:examples").await.unwrap()),
        ("python", c.load_module(python.to_str().unwrap()).await.unwrap()),
    ];
    for (lang, m) in &modules {
        // A filter with a function, then a foldby tree (partials, a combine level, the final).
        let totals = bag
            .filter(m, "is_error", json!({}))
            .unwrap()
            .split_every(3)
            .foldby(
                Key::Path("method"),
                Binop::new(m, "add_field").args(json!({"field": "bytes"})),
                json!(0),
                Some(Binop::new(m, "add")),
                None,
            )
            .unwrap();
        results.push((format!("foldby-{lang}"), totals.compute().await.unwrap()));
        // A map and a filter with functions, then a built-in sum.
        let ids = bag.pluck("id").unwrap().map(m, "inc", json!({"by": 3})).unwrap();
        let sum = ids.filter(m, "is_even", json!({})).unwrap().sum("").unwrap();
        results.push((format!("map-{lang}"), sum.to_bag().compute().await.unwrap()));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bag_cases_agree_on_every_executor_with_the_direct_answer() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let items = crate::bag_faults::write_logs(&logs, 4, 250);

    // The answers computed directly from the items.
    let selected = items.iter().filter(|i| {
        i["status"].as_i64().unwrap() >= 500 && ["GET", "POST"].contains(&i["method"].as_str().unwrap())
    });
    let countries: Vec<&Value> = selected.map(|i| &i["user"]["country"]).collect();
    let want_countries = crate::bag_faults::frequencies(countries);
    let errors = items.iter().filter(|i| crate::bag_faults::is_error(i));
    let want_totals = crate::bag_faults::bytes_by_method(errors);
    let want_sum: i64 = (0..items.len() as i64).map(|id| id + 3).filter(|x| x % 2 == 0).sum();

    let lambda = crate::local_lambda(2);
    let mut all = Vec::new();
    for kind in [ExecutorKind::Sync, ExecutorKind::Threads, ExecutorKind::Processes, ExecutorKind::Lambda] {
        let root = tmp.path().join(format!("root-{kind}"));
        let c = match kind {
            ExecutorKind::Lambda => crate::lambda_client(&root, &lambda, 2, 4096),
            _ => client(&root, kind),
        };
        assert_eq!(c.executor().name(), kind.to_string());
        let results = bag_suite(&c, &logs, tmp.path()).await;
        for (name, got) in &results {
            match name.as_str() {
                "frequencies" => assert_eq!(got, &want_countries, "{kind}/{name}"),
                n if n.starts_with("foldby") => {
                    assert_eq!(crate::bag_faults::pairs(got), want_totals, "{kind}/{name}")
                }
                n if n.starts_with("map") => assert_eq!(got, &[json!(want_sum)], "{kind}/{name}"),
                other => panic!("no direct answer for {other}"),
            }
        }
        all.push((kind, results));
    }
    assert!(lambda.invocations() > 20, "{} invocations", lambda.invocations());
    // Identical items in the same order on every executor (the Rust and Python foldby too).
    let (_, first) = &all[0];
    for (kind, results) in &all[1..] {
        assert_eq!(results, first, "{kind} differs from sync");
    }
    let rust = &first.iter().find(|r| r.0 == "foldby-rust").unwrap().1;
    let python = &first.iter().find(|r| r.0 == "foldby-python").unwrap().1;
    assert_eq!(rust, python, "the Rust and the Python foldby");
}

/// The Array cases of the conformance suite: a fused reduction tree, a matmul with a sum tree,
/// a multi-stage-free rechunk written as Zarr, and a map_blocks through the examples component.
async fn array_suite(c: &Client, dir: &Path, out: &Path) -> Vec<(String, shoal::NdArray)> {
    let inputs = crate::array::load_inputs(c, dir).await;
    let (a, b, m) = (&inputs["a"], &inputs["b"], &inputs["m"]);
    let examples = c.load_module("builtin:examples").await.unwrap();
    let qmeans = a.sub(b).unwrap().pow(2).unwrap().mean(shoal::Axes::All).unwrap();
    let product = a.matmul(m).unwrap().split_every(2);
    let shifted = a.map_blocks(&examples, "shift_block", json!({"factor": 2}), None).unwrap().sum(0).unwrap();
    a.rechunk([5, 23]).unwrap().to_zarr(&out.display().to_string(), "zstd").await.unwrap();
    let mut results = Vec::new();
    for (name, array) in [("qmeans", qmeans), ("matmul", product), ("shifted_sum", shifted)] {
        results.push((name.to_string(), array.compute().await.unwrap()));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_cases_agree_on_every_executor_with_numpy() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [("qmeans", "np.mean((a - b) ** 2)"), ("matmul", "a @ m"), ("rechunked", "a")];
    crate::array::python_arrays("make", tmp.path(), &cases);
    let expected: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json")).unwrap()).unwrap();
    let lambda = crate::local_lambda(2);
    let mut all = Vec::new();
    for kind in [ExecutorKind::Sync, ExecutorKind::Threads, ExecutorKind::Processes, ExecutorKind::Lambda] {
        let root = tmp.path().join(format!("root-{kind}"));
        let c = match kind {
            ExecutorKind::Lambda => crate::lambda_client(&root, &lambda, 2, 4096),
            _ => client(&root, kind),
        };
        let out = tmp.path().join("out").join(format!("rechunked-{kind}"));
        let results = array_suite(&c, tmp.path(), &out).await;
        for (name, got) in &results {
            if name != "shifted_sum" {
                crate::array::assert_matches(&format!("{kind}/{name}"), got, &expected[name.as_str()]);
            }
        }
        all.push((kind, results, crate::array_faults::files(&out)));
    }
    assert!(lambda.invocations() > 20, "{} invocations", lambda.invocations());
    // Bit-identical answers and Zarr chunks on every executor.
    let (_, first, chunks) = &all[0];
    for (kind, results, files) in &all[1..] {
        assert_eq!(results, first, "{kind} differs from sync");
        assert_eq!(files, chunks, "{kind}: the Zarr chunks differ from sync's");
    }
    // And the rechunked copy opens in zarr-python equal to the input.
    std::fs::rename(tmp.path().join("out/rechunked-sync"), tmp.path().join("out/rechunked")).unwrap();
    crate::array::python_arrays("check", tmp.path(), &cases[2..]);
}
