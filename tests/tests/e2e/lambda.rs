//! The `lambda` executor against a local Lambda (Invoke and Runtime APIs on loopback) driving
//! the real `shoal-lambda` handler processes: throttling, specs passed by reference, cold starts,
//! an unknown function, and workers killed mid-task on `lambda` and `processes` — the job
//! completes with the same rows, and the run report shows the retries.

use crate::{client, lambda_client, local_lambda};
use arrow::record_batch::RecordBatch;
use serde_json::json;
use shoal::{Agg, Client, DataFrame, Error, ExecutorKind};
use shoal_protocol::FailureKind;
use shoal_tests::data::{assert_same_rows, write_sales};
use std::path::Path;
use std::time::Duration;

/// The job of these tests: a group-by with a hash shuffle.
fn group(df: &DataFrame) -> DataFrame {
    df.groupby(&["region"])
        .split_out(2)
        .agg(&[Agg::new("qty", "qty", "sum").unwrap(), Agg::new("n", "id", "size").unwrap()])
        .unwrap()
}

async fn grouped(c: &Client, data: &Path) -> DataFrame {
    group(&c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap())
}

async fn reference(tmp: &Path, data: &Path) -> Vec<RecordBatch> {
    grouped(&client(&tmp.join("reference"), ExecutorKind::Threads), data).await.compute().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_large_specs_and_cold_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    write_sales(&data, 6, 500, 100).unwrap();
    let expected = reference(tmp.path(), &data).await;
    let lambda = local_lambda(2);

    // Every spec over 1 byte travels by reference; the first 5 invocations are throttled.
    let root = tmp.path().join("root");
    let c = lambda_client(&root, &lambda, 4, 1);
    lambda.throttle_next(5);
    let (got, summary) = grouped(&c, &data).await.compute_with(shoal::events::Events::new()).await.unwrap();
    assert_same_rows(&got, &expected).unwrap();
    assert_eq!(lambda.throttled(), 5);
    assert_eq!(summary.attempts, summary.tasks as u64, "throttling spends no attempt: {summary:?}");
    let specs = std::fs::read_dir(root.join("specs")).unwrap().count();
    assert_eq!(specs, summary.tasks, "every spec was stored in the job root");
    // Both handler processes started cold for this run and said how long it took.
    let report = summary.report.unwrap();
    assert_eq!(report.cold_starts, 2, "{report:?}");
    assert!(report.cold_start_max_ms > 0);
    assert_eq!(lambda.starts(), 2);

    // An unknown function is a fatal error, reported once.
    let mut wrong =
        shoal::Config { root: tmp.path().join("wrong").display().to_string(), ..shoal::Config::default() };
    wrong.executor = ExecutorKind::Lambda;
    wrong.lambda = Some(shoal::executor::LambdaOptions {
        endpoint: Some(lambda.endpoint.clone()),
        region: Some("us-east-1".into()),
        ..shoal::executor::LambdaOptions::new("no-such-function")
    });
    let err = grouped(&Client::new(wrong).unwrap(), &data).await.compute().await.unwrap_err();
    match &err {
        Error::Task { failure, attempts } => {
            assert_eq!((failure.kind, *attempts), (FailureKind::Fatal, 1), "{err}");
            assert!(failure.message.contains("no-such-function"), "{err}");
        }
        other => panic!("expected a task failure, got {other}"),
    }
}

/// Runs a job of slow tasks while killing a busy worker every so often; the job must finish
/// with the reference rows, and report the failed attempts and retries.
async fn survives_kills(c: &Client, data: &Path, expected: &[RecordBatch], kill: impl Fn() -> bool) {
    let testing = c.load_module("builtin:testing").await.unwrap();
    // Each map task sleeps 400 ms in the sandbox, so kills land mid-task.
    let sales = c.read_parquet(&format!("{}/*.parquet", data.display())).await.unwrap();
    let df = group(&sales.map_partitions(&testing, "slow", json!({"ms": 400})).unwrap());
    let run = tokio::spawn(async move { df.compute_with(shoal::events::Events::new()).await });
    let kills = kill_while(&run, 3, kill).await;
    let (got, summary) = run.await.unwrap().unwrap();
    eprintln!("killed {kills} busy workers");
    assert!(kills > 0, "no worker was busy to kill");
    assert_same_rows(&got, expected).unwrap();
    let report = summary.report.unwrap();
    eprintln!("{}", report.display());
    assert!(report.failed_attempts >= 1 && report.retries >= 1, "kills not in the report: {report:?}");
    assert_eq!(report.tasks_run, report.tasks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_mid_task_on_lambda_and_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    write_sales(&data, 8, 300, 50).unwrap();
    let expected = reference(tmp.path(), &data).await;

    let lambda = local_lambda(2);
    let c = lambda_client(&tmp.path().join("lambda"), &lambda, 2, 256 << 10);
    survives_kills(&c, &data, &expected, || lambda.kill_busy()).await;
    assert!(lambda.function_errors() >= 1 && lambda.starts() > 2, "killed handlers were restarted");

    let c = client(&tmp.path().join("processes"), ExecutorKind::Processes);
    survives_kills(&c, &data, &expected, kill_a_worker_process).await;
}

/// Held by tests that kill worker processes and by tests that count the attempts of jobs on
/// worker processes: the processes of every test in this binary are children of this process,
/// so a kill cannot tell whose worker it hits.
pub(crate) static WORKER_PROCESSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// SIGKILLs one `shoal-worker` child of this test process; whether there was one.
pub(crate) fn kill_a_worker_process() -> bool {
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let ppid = rest.split_whitespace().nth(1).unwrap_or_default();
        if head.ends_with("(shoal-worker") && ppid == me {
            let pid = entry.file_name().to_string_lossy().to_string();
            return std::process::Command::new("kill").args(["-9", &pid]).status().is_ok_and(|s| s.success());
        }
    }
    false
}

/// Calls `kill` every 150 ms (for at most 15 s) while `run` is going, until it has killed
/// `most` workers; returns how many it killed.
pub(crate) async fn kill_while<T>(
    run: &tokio::task::JoinHandle<T>,
    most: usize,
    kill: impl Fn() -> bool,
) -> usize {
    let mut kills = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if run.is_finished() || kills >= most {
            break;
        }
        if kill() {
            kills += 1;
        }
    }
    kills
}

/// A warm function never recompiles a component: one process compiles the module once for a
/// job's four tasks; after the process is killed, its successor loads the precompiled artifact
/// from local disk and compiles nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_functions_never_recompile_components() {
    shoal_tests::init_test_env();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sales");
    write_sales(&data, 4, 200, 50).unwrap();
    let cache = tmp.path().join("handler-cache");
    let env = vec![("SHOAL_CACHE_DIR".to_string(), cache.display().to_string())];
    let lambda =
        shoal_tests::lambda::LocalLambda::start(&crate::sibling_bin("shoal-lambda"), "shoal-worker", 1, &env)
            .unwrap();
    let glob = format!("{}/*.parquet", data.display());
    let scaled = |c: Client| {
        let glob = glob.clone();
        async move {
            let examples = c.load_module("builtin:examples").await.unwrap();
            let df = c
                .read_parquet(&glob)
                .await
                .unwrap()
                .map_partitions(
                    &examples,
                    "scale",
                    json!({"column": "score", "factor": 2.0, "output": "score2"}),
                )
                .unwrap();
            df.compute_with(shoal::events::Events::new()).await.unwrap().1.report.unwrap()
        }
    };
    let first = scaled(lambda_client(&tmp.path().join("a"), &lambda, 1, 256 << 10)).await;
    assert_eq!((first.tasks_run, first.components_compiled, first.cold_starts), (4, 1, 1), "{first:?}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "one precompiled artifact on disk");

    // A new process (a new cold start) finds the artifact on disk.
    while !lambda.kill_idle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while lambda.starts() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = scaled(lambda_client(&tmp.path().join("b"), &lambda, 1, 256 << 10)).await;
    assert_eq!((second.tasks_run, second.components_compiled, second.cold_starts), (4, 0, 1), "{second:?}");
}

/// `shoal run --executor lambda --function NAME` runs the quickstart on the local Lambda, and
/// prints the run report with the cold starts.
#[test]
fn the_cli_runs_a_job_on_lambda() {
    let lambda = local_lambda(2);
    let tmp = tempfile::tempdir().unwrap();
    crate::cli::quickstart_copy(tmp.path());
    let out = std::process::Command::new(crate::cli::shoal_bin())
        .args(["run", "job.toml", "--root", "root", "--executor", "lambda", "--function", &lambda.function])
        .args(["--lambda-endpoint", &lambda.endpoint])
        .env("AWS_REGION", "us-east-1")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "shoal run --executor lambda failed:\n{stderr}");
    assert!(stderr.contains("wrote 1181 rows in 4 parts"), "{stderr}");
    assert!(stderr.contains("cold starts"), "the report shows the cold starts:\n{stderr}");
    assert!(lambda.invocations() >= 9, "{} invocations", lambda.invocations());
}
