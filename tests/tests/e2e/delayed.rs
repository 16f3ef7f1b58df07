//! Delayed values with real components on real executors: a fan-in tree against its sum,
//! several values computed in one graph sharing work, a rerun reusing every task, a DataFrame
//! as an argument, every executor agreeing, and bad input (a function of the wrong kind, a
//! function that fails) refused with one clear error.

use crate::client;
use serde_json::{Value, json};
use shoal::collections::delayed::{self, Delayed, DelayedFunction};
use shoal::{Client, ExecutorKind};
use shoal_tests::data::write_trips;
use std::path::Path;

/// Leaves `add_values(i)` for `i < n`, then pairwise `add_values(a, b)` up to the root.
fn fan_in(add: &DelayedFunction, n: i64) -> Delayed {
    let mut level: Vec<Delayed> = (0..n).map(|i| add.call([i.into()])).collect();
    while level.len() > 1 {
        level =
            level.chunks(2).map(|pair| add.call(pair.iter().map(Into::into).collect::<Vec<_>>())).collect();
    }
    level.pop().unwrap()
}

async fn functions(c: &Client) -> (DelayedFunction, DelayedFunction, DelayedFunction) {
    let m = c.load_module("builtin:examples").await.unwrap();
    (c.delayed(&m, "add_values").unwrap(), c.delayed(&m, "mul").unwrap(), c.delayed(&m, "total_len").unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_fan_in_tree_sums_and_a_rerun_reuses_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let (add, _, _) = functions(&c).await;
    let n = 256;
    let root = fan_in(&add, n);
    let explain = root.explain().unwrap();
    assert_eq!(explain.lines().next().unwrap(), "== task graph: 511 tasks in 1 stages ==", "{explain}");
    assert!(explain.contains("stage 0: call-add_values (511 tasks)"), "{explain}");
    let (value, summary) = root.compute_with(Default::default()).await.unwrap();
    assert_eq!(value, json!(n * (n - 1) / 2));
    assert_eq!((summary.tasks, summary.executed, summary.already_committed), (511, 511, 0));
    // The same graph built again: same keys, every task committed already.
    let again = fan_in(&add, n);
    assert_eq!(again.key().unwrap(), root.key().unwrap());
    let (value, summary) = again.compute_with(Default::default()).await.unwrap();
    assert_eq!(value, json!(n * (n - 1) / 2));
    assert_eq!((summary.executed, summary.already_committed), (0, 511));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_values_computed_together_share_their_work() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let (add, mul, _) = functions(&c).await;
    let x = add.call([1.into(), 2.into(), 3.into()]);
    let a = mul.call([(&x).into(), 10.into()]);
    // Built separately, the same call as `x`: one task for both.
    let x2 = add.call([1.into(), 2.into(), 3.into()]);
    let b = add.call([(&x2).into(), (&x).into(), 0.5.into()]);
    let explain = delayed::explain(&[&a, &b]).unwrap();
    assert!(explain.starts_with("== task graph: 3 tasks in 2 stages =="), "{explain}");
    let (values, summary) = delayed::compute_with(&[&a, &b], Default::default()).await.unwrap();
    assert_eq!(values, [json!(60), json!(12.5)]);
    assert_eq!((summary.tasks, summary.executed), (3, 3));
    // Integers stay integers; a literal-only call has no input.
    assert_eq!(add.call([json!(2).into(), json!(3).into()]).compute().await.unwrap(), json!(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataframe_is_a_list_of_rows_to_a_delayed_call() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sizes = [300, 0, 200, 150];
    write_trips(&data, &sizes, 100).unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let (add, _, total_len) = functions(&c).await;
    let trips = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let long = trips.filter("id >= 100").unwrap();
    let n = total_len.call([(&trips).into()]);
    let both = total_len.call([(&trips).into(), (&long).into(), json!([1, 2]).into()]);
    let sum = add.call([(&n).into(), (&both).into()]);
    let values = delayed::compute(&[&n, &both, &sum]).await.unwrap();
    let rows: i64 = sizes.iter().sum::<usize>() as i64;
    let ids_at_least_100 = rows - 100;
    assert_eq!(
        values,
        [json!(rows), json!(rows + ids_at_least_100 + 2), json!(2 * rows + ids_at_least_100 + 2)]
    );
    // A Bag argument arrives as the list of its items: a bag of the rows, and a filtered one.
    let bag = trips.to_bag().unwrap();
    let short = bag.filter_where("id < 100").unwrap();
    let items = total_len.call([(&bag).into(), (&short).into(), (&bag).into()]);
    assert_eq!(items.compute().await.unwrap(), json!(2 * rows + (rows - ids_at_least_100)));
}

/// The same small graph on one executor: a tree, a shared value, a DataFrame argument.
async fn small_graph(c: &Client, data: &Path) -> Vec<Value> {
    let (add, mul, total_len) = functions(c).await;
    let tree = fan_in(&add, 16);
    let scaled = mul.call([(&tree).into(), (&tree).into()]);
    let trips = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let rows = total_len.call([trips.into()]);
    delayed::compute(&[&tree, &scaled, &rows]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_executors_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_trips(&data, &[40, 0, 25], 10).unwrap();
    let lambda = crate::local_lambda(2);
    for kind in [ExecutorKind::Sync, ExecutorKind::Threads, ExecutorKind::Processes, ExecutorKind::Lambda] {
        let root = tmp.path().join(format!("root-{kind}"));
        let c = match kind {
            ExecutorKind::Lambda => crate::lambda_client(&root, &lambda, 2, 4096),
            _ => client(&root, kind),
        };
        let values = small_graph(&c, &data).await;
        assert_eq!(values, [json!(120), json!(14400), json!(65)], "{kind}");
    }
    assert!(lambda.invocations() >= 33, "{} invocations", lambda.invocations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_bad_input_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let m = c.load_module("builtin:examples").await.unwrap();
    // A table function is refused when it is named, before anything runs.
    let err = c.delayed(&m, "scale").unwrap_err().to_string();
    assert!(err.contains("'scale' is a table function") && err.contains("value function"), "{err}");
    let err = c.delayed(&m, "nope").unwrap_err().to_string();
    assert!(err.contains("no function 'nope'"), "{err}");

    // A function that returns an error: a Fatal failure with its message, nothing committed.
    let add = c.delayed(&m, "add_values").unwrap();
    let ok = add.call([1.into()]);
    let bad = add.call([(&ok).into(), "not a number".into()]);
    let err = bad.compute().await.unwrap_err();
    let shoal::Error::Task { failure, attempts } = &err else { panic!("{err:?}") };
    assert!(matches!(failure.kind, shoal_protocol::FailureKind::Fatal), "{failure:?}");
    assert_eq!(*attempts, 1, "a fatal failure is not retried");
    assert!(failure.message.contains("user function"), "{}", failure.message);
    assert_eq!(failure.task_key, bad.key().unwrap());
    let manifest = tmp.path().join("commits").join(format!("{}.json", bad.key().unwrap()));
    assert!(!manifest.exists(), "nothing committed for the failed call");
    assert!(!tmp.path().join("data").join(bad.key().unwrap().as_str()).exists(), "no data left");
}

/// The number DuckDB counts with `sql` (one row, one integer column).
fn duckdb_count(sql: &str, tmp: &Path) -> i64 {
    let out = tmp.join("count.parquet");
    shoal_tests::python::duckdb_query(sql, &out).unwrap();
    let batches = shoal_tests::read_parquet_dir(&out).unwrap();
    let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64).unwrap();
    column.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0)
}

#[test]
fn a_job_file_of_values_runs_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    crate::cli::quickstart_copy(tmp.path());
    let job = "[datasets.trips]\nread_csv = \"trips/*.csv\"\n\
               [datasets.long]\nfrom = \"trips\"\nfilter = \"distance_km >= 2\"\n\
               [values.rows]\ncall = { module = \"builtin:examples\", function = \"total_len\", inputs = [\"trips\"] }\n\
               [values.long_rows]\ncall = { module = \"builtin:examples\", function = \"total_len\", inputs = [\"long\"] }\n\
               [values.both]\ncall = { module = \"builtin:examples\", function = \"add_values\", args = [0.5], inputs = [\"rows\", \"long_rows\"] }\n\
               [[outputs]]\nvalue = \"both\"\nto_json = \"out/both.json\"\n";
    std::fs::write(tmp.path().join("values.toml"), job).unwrap();
    let out = crate::cli::shoal(&["run", "values.toml", "--root", "root"], tmp.path());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let csv = format!("read_csv('{}/trips/*.csv', header = true)", tmp.path().display());
    let rows = duckdb_count(&format!("SELECT count(*) FROM {csv}"), tmp.path());
    let long = duckdb_count(&format!("SELECT count(*) FROM {csv} WHERE distance_km >= 2"), tmp.path());
    let both = rows as f64 + long as f64 + 0.5;
    for line in [format!("rows = {rows}"), format!("long_rows = {long}"), format!("both = {both}")] {
        assert!(stdout.lines().any(|l| l == line), "'{line}' in:\n{stdout}");
    }
    let written: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("out/both.json")).unwrap()).unwrap();
    assert_eq!(written, json!(both));
    // A rerun reuses every task.
    let again = crate::cli::shoal(&["run", "values.toml", "--root", "root"], tmp.path());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && stderr.contains("(0 tasks run,"), "{stderr}");

    // A function of the wrong kind: one error naming the value and the function, nothing run.
    let bad = "[values.v]\ncall = { module = \"builtin:examples\", function = \"scale\", args = [1] }\n";
    std::fs::write(tmp.path().join("bad.toml"), bad).unwrap();
    let out = crate::cli::shoal(&["run", "bad.toml", "--root", "bad-root"], tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("value 'v'") && stderr.contains("'scale' is a table function"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
    assert!(!tmp.path().join("bad-root/commits").exists(), "nothing committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_chain_of_calls_lowers_and_drops_without_recursion() {
    let tmp = tempfile::tempdir().unwrap();
    let c = client(tmp.path(), ExecutorKind::Threads);
    let (add, _, _) = functions(&c).await;
    // 100,000 calls, each reading the one before: on the test thread's small stack, lowering
    // and dropping must not recurse per call.
    let mut value = add.call([0.into()]);
    for i in 1..100_000 {
        value = add.call([(&value).into(), i.into()]);
    }
    let explain = value.explain().unwrap();
    assert!(explain.starts_with("== task graph: 100000 tasks in 1 stages =="), "{explain}");
    drop(value);
    // A short chain runs: 0 + 1 + ... + 9.
    let mut short = add.call([0.into()]);
    for i in 1..10 {
        short = add.call([(&short).into(), i.into()]);
    }
    assert_eq!(short.compute().await.unwrap(), json!(45));
}
