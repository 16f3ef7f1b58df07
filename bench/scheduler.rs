//! Scheduler overhead benchmark (not a test): µs per task
//!
//! 1. through the scheduler core with a no-op executor (a graph of N trivial tasks: a wide
//!    stage, then a second stage where each task depends on 10 of the first), and
//! 2. through the `threads` executor with real tiny tasks (read a 3-row Arrow IPC object from
//!    `memory://`, filter, write, commit), then the same through `threads` and `processes` on
//!    a local folder in memory (/dev/shm) and in the temp dir.
//!
//! Run: `cargo bench -p shoal --bench scheduler -- [N_CORE] [N_THREADS]`
//! (defaults 100000 and 10000). `bench/run-scheduler.sh` also measures Dask's threaded
//! scheduler on the same shape of graph in the same run.

#[path = "proc_status.rs"]
mod proc_status;
use async_trait::async_trait;
use proc_status::status_bytes;
use shoal::events::{Events, Publisher};
use shoal::executor::{Executor, InProcess};
use shoal::graph::{TaskGraph, TaskNode, upstream};
use shoal::scheduler::{self, RunOptions};
use shoal_protocol::{
    Input, Limits, Manifest, Operator, Output, PROTOCOL_VERSION, StorageOptions, TableOp, TaskKey,
    TaskMetrics, TaskOutcome, TaskResult, TaskSpec,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Noop;

#[async_trait]
impl Executor for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn concurrency(&self) -> usize {
        8
    }
    async fn execute(&self, spec: TaskSpec) -> TaskOutcome {
        Ok(TaskResult {
            task_key: spec.task_key.clone(),
            attempt: spec.attempt,
            manifest: Manifest {
                version: PROTOCOL_VERSION,
                task_key: spec.task_key,
                attempt_id: String::new(),
                outputs: vec![],
                rows: 0,
                bytes: 0,
                schema: vec![],
                buckets: vec![],
                divisions: None,
            },
            won_commit: true,
            metrics: TaskMetrics::default(),
        })
    }
}

fn options(root: &str) -> RunOptions {
    RunOptions {
        job_id: "bench".into(),
        job_root: root.into(),
        storage: StorageOptions::default(),
        limits: Limits::default(),
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        speculation: None,
        // Every run below starts on a fresh root.
        commits_listed: true,
    }
}

/// `n` tasks: 10/11 of them in a wide first stage, the rest each reading 10 of those.
fn graph(n: usize, first_input: impl Fn(usize) -> Input, pipeline: Vec<Operator>) -> TaskGraph {
    let mut g = TaskGraph::default();
    let wide = n * 10 / 11;
    let s0 = g.stage("scan", vec![], 0, None);
    for i in 0..wide {
        let inputs = vec![first_input(i)];
        let key = TaskKey::derive("scan", &(&inputs, i));
        g.push(TaskNode {
            key,
            stage: s0,
            index: i,
            deps: vec![],
            inputs,
            pipeline: pipeline.clone(),
            output: Output::Intermediate,
            skip_if_empty: false,
        });
    }
    let s1 = g.stage("combine", vec![], 0, None);
    // Every combine task reads at least one scan task.
    for j in 0..(n - wide).min(wide.div_ceil(10)) {
        let deps: Vec<usize> = (j * 10..(j * 10 + 10).min(wide)).collect();
        let inputs = deps.iter().map(|&d| upstream(&g.tasks[d].key)).collect();
        let key = TaskKey::derive("combine", &(j, &deps));
        g.push(TaskNode {
            key,
            stage: s1,
            index: j,
            deps,
            inputs,
            pipeline: vec![],
            output: Output::Intermediate,
            skip_if_empty: false,
        });
    }
    g.outputs = g.stages[s1].tasks.clone();
    g
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n_core = args.first().copied().unwrap_or(100_000);
    let n_threads = args.get(1).copied().unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    // 1. Scheduler core, no-op executor.
    let g = graph(n_core, |i| upstream(&TaskKey(format!("src-{i}"))), vec![]);
    let opts = options("memory://bench-core/");
    let started = Instant::now();
    let out = rt.block_on(scheduler::run(&g, &Noop, &opts, HashMap::new(), &Publisher::none("bench")))?;
    let core = started.elapsed();
    let n_core = out.manifests.len();
    println!(
        "scheduler core, no-op executor: {n_core} tasks in {:.3} s = {:.1} µs/task",
        core.as_secs_f64(),
        core.as_secs_f64() * 1e6 / n_core as f64
    );

    // 1b. The same, publishing every event to one subscriber draining on its own thread.
    let mut events = Events::new();
    let mut subscription = events.subscribe();
    let drain = std::thread::spawn(move || {
        let mut n = 0u64;
        while subscription.blocking_recv().is_some() {
            n += 1;
        }
        n
    });
    let publisher = events.into_publisher("bench");
    let started = Instant::now();
    let out = rt.block_on(scheduler::run(&g, &Noop, &opts, HashMap::new(), &publisher))?;
    let published = started.elapsed();
    drop(publisher);
    let received = drain.join().map_err(|_| "the subscriber panicked")?;
    println!(
        "scheduler core, no-op executor, 1 subscriber: {} tasks in {:.3} s = {:.1} µs/task ({received} events)",
        out.manifests.len(),
        published.as_secs_f64(),
        published.as_secs_f64() * 1e6 / out.manifests.len() as f64
    );

    // 1c. The same with the live dashboard subscribed (and serving on loopback).
    let rss_before = status_bytes("VmRSS:");
    let (live, server) = rt.block_on(shoal::dashboard::server::Live::serve("127.0.0.1:0", false))?;
    let mut events = Events::new();
    let watcher = {
        let _guard = rt.enter();
        live.watch(events.subscribe())
    };
    let publisher = events.into_publisher("bench");
    let started = Instant::now();
    let out = rt.block_on(scheduler::run(&g, &Noop, &opts, HashMap::new(), &publisher))?;
    let with_dashboard = started.elapsed();
    drop(publisher);
    rt.block_on(watcher)?;
    let drained = started.elapsed();
    println!(
        "scheduler core, no-op executor, live dashboard: {} tasks in {:.3} s = {:.1} µs/task (dashboard caught up after {:.3} s; RSS +{} MB)",
        out.manifests.len(),
        with_dashboard.as_secs_f64(),
        with_dashboard.as_secs_f64() * 1e6 / out.manifests.len() as f64,
        drained.as_secs_f64(),
        (status_bytes("VmRSS:").saturating_sub(rss_before)) >> 20
    );
    rt.block_on(server.stop());

    // 2. Real tiny tasks: threads on memory:// and on a local folder, processes on a local folder.
    let worker = Arc::new(shoal_worker::Worker::new(shoal_worker::WorkerConfig::default())?);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let executor: Arc<dyn Executor> = Arc::new(InProcess::threads(worker.clone(), threads));
    let label = format!("threads executor ({threads} threads), real tiny tasks");
    tiny_tasks(&rt, &worker, &executor, "memory://bench-threads", n_threads, &label)?;
    // Local folders twice: in memory (/dev/shm, tmpfs), which measures shoal's own cost per
    // task, and in the temp dir (on these machines ext4 on disk), whose cost of creating a file
    // swings with the file system's state: ext4 scans past recently deleted inodes to allocate
    // a new one (bench/results/scheduler.txt).
    let shm = std::path::Path::new("/dev/shm");
    let temp = std::env::temp_dir().display().to_string();
    let folders = [
        shm.is_dir().then(|| ("in /dev/shm".to_string(), tempfile::tempdir_in(shm))),
        Some((format!("in {temp}"), tempfile::tempdir())),
    ];
    let processes = shoal::executor::find_worker_binary();
    for (kind, dir) in folders.into_iter().flatten() {
        let dir = dir?;
        let local = dir.path().display().to_string();
        let folder = format!("local folder {kind}");
        tiny_tasks(
            &rt,
            &worker,
            &executor,
            &format!("{local}/threads"),
            n_threads,
            &format!("{label}, {folder}"),
        )?;
        match &processes {
            Some(binary) => {
                let executor: Arc<dyn Executor> =
                    Arc::new(shoal::executor::Processes::new(binary.clone(), threads, vec![]));
                let label =
                    format!("processes executor ({threads} worker processes), real tiny tasks, {folder}");
                tiny_tasks(&rt, &worker, &executor, &format!("{local}/processes"), n_threads, &label)?;
            }
            None => {
                println!("processes executor: no shoal-worker binary found (cargo build --release --bins)")
            }
        }
    }
    Ok(())
}

/// Runs `n` real tiny tasks under `base` on `executor`: each scan task reads a 3-row Arrow IPC
/// object, filters it and commits; each combine task reads 10 of those. Prints µs per task.
fn tiny_tasks(
    rt: &tokio::runtime::Runtime,
    worker: &shoal_worker::Worker,
    executor: &Arc<dyn Executor>,
    base: &str,
    n: usize,
    label: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let storage = worker.storage(&StorageOptions::default());
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "x",
        arrow::datatypes::DataType::Int64,
        false,
    )]));
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]))],
    )?;
    let bytes = shoal_worker::io::ipc::encode_file(&schema, &[batch], false)?;
    let object = rt.block_on(storage.put(&format!("{base}/input.arrow"), bytes))?;
    let g = graph(
        n,
        |_| Input::Scan {
            format: shoal_protocol::FileFormat::ArrowIpc,
            files: vec![shoal_protocol::FileSlice::whole(object.clone())],
            projection: None,
            predicate: None,
            schema: None,
            port: 0,
        },
        vec![TableOp::Filter { predicate: "x > 1".into() }.into()],
    );
    let opts = options(&format!("{base}/job"));
    let started = Instant::now();
    // As `compute()` runs it: the scheduler as a task of the runtime (`scheduler::run_spawned`).
    let (manifests, _) = rt.block_on(scheduler::run_spawned(
        Arc::new(g),
        executor.clone(),
        opts,
        HashMap::new(),
        Arc::new(Publisher::none("bench")),
    ));
    let manifests = manifests?;
    let real = started.elapsed();
    let wide = n * 10 / 11;
    let n = manifests.len();
    let rows: u64 = manifests[wide..].iter().map(|m| m.rows).sum();
    assert_eq!(rows, 2 * wide as u64, "every combine task reads its inputs' rows");
    println!(
        "{label}: {n} tasks in {:.3} s = {:.1} µs/task",
        real.as_secs_f64(),
        real.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
