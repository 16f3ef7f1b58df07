//! The sandbox seen from a task: traps, infinite loops and memory bombs become fatal task
//! failures naming the task; a guest sees no files, environment or network.

use serde_json::json;
use shoal::{Error, ExecutorKind};
use shoal_protocol::{FailureKind, Limits};
use shoal_tests::data::write_trips;
use std::time::{Duration, Instant};

async fn run_guest(
    function: &str,
    limits: Limits,
) -> (Result<Vec<arrow::record_batch::RecordBatch>, Error>, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_trips(&data, &[50], 50).unwrap();
    let config = shoal::Config {
        root: tmp.path().join("root").display().to_string(),
        executor: ExecutorKind::Threads,
        limits,
        ..shoal::Config::default()
    };
    let c = shoal::Client::new(config).unwrap();
    let testing = c.load_module("builtin:testing").await.unwrap();
    let df = c
        .read_parquet(&data.display().to_string())
        .await
        .unwrap()
        .map_partitions(&testing, function, json!({}))
        .unwrap();
    let started = Instant::now();
    let result = df.compute().await;
    // Nothing is committed for a failed task.
    let commits = tmp.path().join("root/commits");
    if result.is_err() {
        let n = std::fs::read_dir(&commits).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "a failed task committed nothing");
    }
    (result, started.elapsed())
}

fn fatal_message(result: Result<Vec<arrow::record_batch::RecordBatch>, Error>) -> String {
    match result {
        Err(Error::Task { failure, attempts }) => {
            assert_eq!(failure.kind, FailureKind::Fatal, "{failure}");
            assert_eq!(attempts, 1, "fatal failures are not retried");
            assert!(failure.task_key.as_str().starts_with("scan-map-"), "names the task: {failure}");
            failure.to_string()
        }
        Err(other) => panic!("expected a task failure, got: {other}"),
        Ok(_) => panic!("expected a failure, the task succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_guest_fails_its_task() {
    let (result, _) = run_guest("trap", Limits::default()).await;
    let msg = fatal_message(result);
    assert!(msg.contains("trap"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let limits = Limits { guest_timeout_ms: 500, ..Limits::default() };
    let (result, elapsed) = run_guest("spin", limits).await;
    let msg = fatal_message(result);
    assert!(msg.contains("500"), "names the deadline: {msg}");
    assert!(elapsed < Duration::from_secs(30), "stopped near the deadline, took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_the_limit() {
    let limits = Limits { guest_memory_bytes: 64 << 20, ..Limits::default() };
    let (result, _) = run_guest("alloc_bomb", limits).await;
    let msg = fatal_message(result);
    assert!(msg.to_lowercase().contains("memory"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sees_no_files_env_or_network() {
    shoal_tests::init_test_env();
    let (result, _) = run_guest("probe_sandbox", Limits::default()).await;
    let batches = result.unwrap();
    let batch = &batches[0];
    let get = |name: &str| {
        let col = batch.column_by_name(name).unwrap();
        arrow::util::display::array_value_to_string(col, 0).unwrap()
    };
    assert!(get("fs").starts_with("error"), "no preopened directories: {}", get("fs"));
    assert!(get("file").starts_with("error"), "no file access: {}", get("file"));
    assert_eq!(get("env_count"), "0", "no environment variables");
    assert!(!get("secret").contains("test"), "no credentials: {}", get("secret"));
    assert!(get("net").starts_with("error"), "no network: {}", get("net"));
}
