//! The Array under faults and with real storage: arrays zarr-python wrote, uploaded to
//! LocalStack S3, read by shoal, and the Zarr shoal writes there read by zarr-python; a job
//! run behind the fault-injecting S3 proxy writes chunks byte-identical to a fault-free run's;
//! the same with worker processes killed mid-task; with every task duplicated each task commits
//! once; and a coordinator killed mid-job resumes with only the missing tasks.

use crate::array::{assert_matches, python_arrays};
use bytes::Bytes;
use serde_json::Value;
use shoal::scheduler::Speculation;
use shoal::{Array, Axes, Client, Config, ExecutorKind};
use shoal_protocol::StorageOptions;
use shoal_tests::faults::{FaultProxy, FaultRates};
use shoal_tests::localstack::LocalStack;
use shoal_worker::io::storage::Storage;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every file below `dir`, by relative path, with its bytes.
pub(crate) fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every object below `url`, by key relative to it, with its bytes.
async fn objects(storage: &Storage, url: &str) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for o in storage.list(url).await.unwrap() {
        let rel = o.url.strip_prefix(url).unwrap().trim_start_matches('/').to_string();
        out.push((rel, storage.get(&o).await.unwrap()));
    }
    out
}

fn s3_client(root: &str, storage: StorageOptions) -> Client {
    Client::new(Config {
        root: root.to_string(),
        storage,
        executor: ExecutorKind::Threads,
        workers: 2,
        max_attempts: 8,
        cache_dir: Some(shoal_tests::shoal_cache().join("components")),
        ..Config::default()
    })
    .unwrap()
}

/// The job of the S3 tests: `(a - b) ** 2` rechunked to row blocks, and its column means.
fn s3_job(a: &Array, b: &Array) -> (Array, Array) {
    let d = a.sub(b).unwrap().pow(2).unwrap().rechunk([5, 23]).unwrap();
    let means = d.mean(0).unwrap();
    (d, means)
}

const S3_CASES: [(&str, &str); 2] =
    [("squares", "((a - b) ** 2)"), ("means", "np.mean((a - b) ** 2, axis=0)")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_on_a_faulty_s3_write_the_same_chunks_and_zarr_python_reads_them() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("arrays").unwrap();
    let direct = Storage::new(ls.storage_options());
    let tmp = tempfile::tempdir().unwrap();
    python_arrays("make", tmp.path(), &S3_CASES);
    // zarr-python's arrays (zstd and gzip), uploaded as they are.
    for name in ["a", "b"] {
        for (rel, bytes) in files(&tmp.path().join("in").join(name)) {
            direct.put(&format!("s3://arrays/in/{name}/{rel}"), Bytes::from(bytes)).await.unwrap();
        }
    }
    let run = |c: Client, out: &'static str| async move {
        let a = c.array().from_zarr("s3://arrays/in/a").await.unwrap();
        let b = c.array().from_zarr("s3://arrays/in/b").await.unwrap();
        let (d, means) = s3_job(&a, &b);
        d.to_zarr(&format!("s3://arrays/{out}/squares"), "zstd").await.unwrap();
        means.to_zarr(&format!("s3://arrays/{out}/means"), "gzip").await.unwrap();
        (d.compute().await.unwrap(), means.compute().await.unwrap())
    };
    let (squares, means) = run(s3_client("s3://arrays/root-clean", ls.storage_options()), "out-clean").await;
    let expected: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("expected.json")).unwrap()).unwrap();
    assert_matches("squares", &squares, &expected["squares"]);
    assert_matches("means", &means, &expected["means"]);
    let clean = objects(&direct, "s3://arrays/out-clean").await;
    assert!(clean.len() > 8, "{} objects", clean.len());

    let proxy =
        FaultProxy::start(ls.port, FaultRates { error: 0.05, drop_mid_body: 0.02, delay: 0.05 }, 11).unwrap();
    let faulty = proxy.storage_options();
    run(s3_client("s3://arrays/root-faulty", faulty), "out-faulty").await;
    eprintln!(
        "fault proxy: {} requests, {} answered 500/503, {} cut mid-body, {} delayed",
        proxy.requests(),
        proxy.errors(),
        proxy.drops(),
        proxy.delays()
    );
    assert!(proxy.errors() > 0 && proxy.drops() + proxy.delays() > 0, "no faults were injected");
    let got = objects(&direct, "s3://arrays/out-faulty").await;
    let names: Vec<&String> = clean.iter().map(|(n, _)| n).collect();
    assert_eq!(got.iter().map(|(n, _)| n).collect::<Vec<_>>(), names);
    for ((name, bytes), (_, want)) in got.iter().zip(&clean) {
        assert!(bytes == want, "{name} differs from the fault-free run's");
    }

    // What shoal wrote on S3, fetched as it is, opens in zarr-python with NumPy's answers.
    for (rel, bytes) in &clean {
        let path = tmp.path().join("out").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    python_arrays("check", tmp.path(), &[S3_CASES[0]]);
    // The means are float sums in another order than NumPy's (close to its answer, checked
    // above, not equal): read back from S3 by shoal they are what compute() gave.
    let back = s3_client("s3://arrays/root-clean", ls.storage_options())
        .array()
        .from_zarr("s3://arrays/out-clean/means")
        .await
        .unwrap()
        .compute()
        .await
        .unwrap();
    assert_eq!(back, means, "the means read back from S3");
}

/// A job slow enough to be killed mid-task: every block of `(a - b) ** 2` goes through the
/// testing module's `slow` (300 ms) as a `map_blocks`, then a sum over rows; written as Zarr.
async fn slow_job(c: &Client, inputs: &Path, out: &Path) -> shoal::run::report::RunSummary {
    let testing = c.load_module("builtin:testing").await.unwrap();
    let a = c.array().from_zarr(&inputs.join("a").display().to_string()).await.unwrap();
    let b = c.array().from_zarr(&inputs.join("b").display().to_string()).await.unwrap();
    let slow = a.sub(&b).unwrap().map_blocks(&testing, "slow", serde_json::json!({"ms": 300}), None).unwrap();
    slow.sum(1).unwrap().to_zarr(&out.display().to_string(), "zstd").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_job_survives_killed_worker_processes() {
    shoal_tests::init_test_env();
    let _workers = crate::lambda::WORKER_PROCESSES.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    python_arrays("make", tmp.path(), &[]);
    let inputs = tmp.path().join("in");
    let reference = tmp.path().join("out-reference");
    let c = crate::client(&tmp.path().join("reference"), ExecutorKind::Threads);
    slow_job(&c, &inputs, &reference).await;

    let c = crate::client(&tmp.path().join("processes"), ExecutorKind::Processes);
    let out = tmp.path().join("out-killed");
    let (inputs2, out2) = (inputs.clone(), out.clone());
    let run = tokio::spawn(async move { slow_job(&c, &inputs2, &out2).await });
    let kills = crate::lambda::kill_while(&run, 3, crate::lambda::kill_a_worker_process).await;
    let summary = run.await.unwrap();
    eprintln!("killed {kills} worker processes");
    assert!(kills > 0, "no worker process to kill");
    let report = summary.report.as_ref().unwrap();
    assert!(report.failed_attempts >= 1 && report.retries >= 1, "kills not in the report: {report:?}");
    assert_eq!(files(&out), files(&reference), "the Zarr chunks differ from an unkilled run's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_array_tasks_commit_exactly_once() {
    shoal_tests::init_test_env();
    let _workers = crate::lambda::WORKER_PROCESSES.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    python_arrays("make", tmp.path(), &[]);
    let job = |c: Client, out: std::path::PathBuf| async move {
        let a = c.array().from_zarr(&tmp_in(&out, "a")).await.unwrap();
        let m = c.array().from_zarr(&tmp_in(&out, "m")).await.unwrap();
        // A reduction tree, a rechunk and a matmul with a sum tree.
        let x = a.matmul(&m).unwrap().rechunk([37, 3]).unwrap().split_every(2);
        let total = x.std(Axes::All, 1).unwrap();
        let written = x.to_zarr(&out.display().to_string(), "blosc").await.unwrap();
        (total.compute().await.unwrap(), written)
    };
    fn tmp_in(out: &Path, name: &str) -> String {
        out.parent().unwrap().join("in").join(name).display().to_string()
    }
    let plain = crate::client(&tmp.path().join("plain"), ExecutorKind::Threads);
    let (want, _) = job(plain, tmp.path().join("out-plain")).await;
    for kind in [ExecutorKind::Threads, ExecutorKind::Processes] {
        let root = tmp.path().join(format!("dup-{kind}"));
        let c = Client::new(Config {
            speculation: Some(Speculation { duplicate_all: true, ..Speculation::default() }),
            ..crate::config(&root, kind)
        })
        .unwrap();
        let out = tmp.path().join(format!("out-{kind}"));
        let (got, summary) = job(c, out.clone()).await;
        assert_eq!(got, want, "{kind}: the answer changed");
        assert_eq!(files(&out), files(&tmp.path().join("out-plain")), "{kind}: the chunks changed");
        let tasks = summary.tasks as u64;
        assert_eq!(summary.speculative, tasks, "{kind}: a backup of every task: {summary:?}");
        let commits = std::fs::read_dir(root.join("commits"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
            .count();
        // The Zarr job's tasks, then the std job's (which reuses the matmul's and the rechunk's
        // intermediates): every one committed once.
        assert!(commits as u64 > tasks, "{kind}: {commits} commits for {tasks} + the std's tasks");
        let keys: std::collections::HashSet<String> = std::fs::read_dir(root.join("commits"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        assert_eq!(keys.len(), commits, "{kind}: one commit per task key");
    }
}

fn committed(root: &Path) -> usize {
    std::fs::read_dir(root.join("commits"))
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
        })
        .unwrap_or(0)
}

#[test]
fn a_killed_array_job_resumes_with_only_the_missing_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let toml = "[arrays.x]\nrandom = { shape = [600, 400], chunks = [100, 100], seed = 3 }\n\
        [arrays.slow]\nfrom = \"x\"\nmap_blocks = { module = \"builtin:testing\", function = \"slow\", args = { ms = 300 } }\n\
        [arrays.y]\nexpr = \"sqrt(slow) * 2\"\n\
        [[outputs]]\narray = \"y\"\nto_zarr = \"out.zarr\"\n";
    std::fs::write(dir.join("job.toml"), toml).unwrap();
    // 24 random blocks, 24 slow blocks, 24 blocks of sqrt(slow) * 2 (a map_blocks output is not
    // an expression, so nothing fuses across it).
    let tasks = 72;
    let mut child = Command::new(crate::cli::shoal_bin())
        .args(["run", "job.toml", "--root", "root", "--executor", "sync"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while committed(&dir.join("root")) < 27 {
        assert!(started.elapsed() < Duration::from_secs(180), "no task committed in time");
        assert!(child.try_wait().unwrap().is_none(), "the job ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = committed(&dir.join("root"));
    assert!(done < tasks, "killed mid-job: {done} of {tasks} committed");
    assert!(!dir.join("out.zarr/zarr.json").exists(), "an interrupted write has no zarr.json");
    let again = crate::cli::shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], dir);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("resuming: {done} of {tasks} tasks already committed")), "{stderr}");
    assert!(dir.join("out.zarr/zarr.json").exists());
    // Byte-identical to an uninterrupted run in a fresh folder and root.
    let b = dir.join("b");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("job.toml"), toml).unwrap();
    let clean = crate::cli::shoal(&["run", "job.toml", "--root", "root"], &b);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert_eq!(
        files(&dir.join("out.zarr")),
        files(&b.join("out.zarr")),
        "resumed Zarr differs from a clean run's"
    );
}

#[test]
fn an_array_job_over_the_task_memory_limit_is_refused_before_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let toml = "[arrays.x]\nrandom = { shape = [2000, 2000], chunks = [1000, 1000], seed = 3 }\n\
        [arrays.y]\nexpr = \"x * 2\"\n[arrays.s]\nfrom = \"y\"\nsum = { axis = 0 }\n\
        [[outputs]]\narray = \"s\"\nshow = true\n";
    std::fs::write(dir.join("job.toml"), toml).unwrap();
    // A 1000 x 1000 float64 block is 8 MB: 16 MB held as table and decoded, plus working space.
    let out = crate::cli::shoal(&["run", "job.toml", "--root", "root", "--task-memory", "16MiB"], dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("sum over axes [0]: a task would hold")
            && stderr.contains("over the task memory limit of 16.0 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("chunks (1000, 1000) of float64, 7.6 MiB each"), "{stderr}");
    assert_eq!(committed(&dir.join("root")), 0, "a refused plan ran tasks");
    let explain = crate::cli::shoal(&["explain", "job.toml", "--task-memory", "64MiB"], dir);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(explain.status.success(), "{}", String::from_utf8_lossy(&explain.stderr));
    assert!(
        text.contains("grid 2×2 = 4 blocks")
            && text.contains("projected ≤")
            && text.contains("task memory limit 64.0 MiB"),
        "{text}"
    );
    let out = crate::cli::shoal(&["run", "job.toml", "--root", "root", "--task-memory", "64MiB"], dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("array of shape [2000], float64:"), "{stdout}");
}
