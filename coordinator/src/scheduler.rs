//! The scheduler core: task states (waiting → ready → running → committed | failed), depth-first
//! ordering of ready tasks, a concurrency limit, retries with exponential backoff and jitter for
//! retryable failures, speculative backups of stragglers, and events for progress display. It
//! knows executors only through [`Executor`].
//!
//! A task may have several attempts in flight (a backup of a straggler, or every task when
//! duplicates are forced): the first to commit wins, later ones are discarded. The worker's
//! create-if-absent commit makes that safe: a losing attempt returns the winner's manifest.

use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::graph::TaskGraph;
pub use crate::report::RunSummary;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use shoal_protocol::{
    FailureKind, Field, Input, Limits, Manifest, PROTOCOL_VERSION, StorageOptions, TaskFailure, TaskKey,
    TaskMetrics, TaskResult, TaskSpec, layout,
};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the scheduler reports while it runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// Planning is done: this many tasks, of which this many were committed already.
    Started {
        tasks: usize,
        already_committed: usize,
    },
    TaskStarted {
        task: usize,
        attempt: u32,
    },
    TaskCommitted {
        task: usize,
        attempt: u32,
        won: bool,
        metrics: Box<TaskMetrics>,
    },
    TaskRetrying {
        task: usize,
        attempt: u32,
        failure: TaskFailure,
        delay: Duration,
    },
    /// A backup attempt of a straggler (or a forced duplicate) was launched.
    Speculating {
        task: usize,
        attempt: u32,
    },
    /// An attempt ended after another attempt of its task had committed; its result is dropped.
    AttemptDiscarded {
        task: usize,
        attempt: u32,
    },
    TaskFailed {
        task: usize,
        attempt: u32,
        failure: TaskFailure,
    },
    Finished,
}

/// A sink for events (progress bars, logs, the dashboard later).
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Scheduling settings of one run.
#[derive(Clone)]
pub struct RunOptions {
    pub job_id: String,
    pub job_root: String,
    pub storage: StorageOptions,
    pub limits: Limits,
    /// Attempts per task before a retryable failure fails the job.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles each time, with ±50% jitter, capped at 10 s.
    pub base_backoff: Duration,
    /// Backups of stragglers (`None`: never).
    pub speculation: Option<Speculation>,
    pub events: Option<EventSink>,
}

/// When to launch a backup attempt of a running task.
#[derive(Debug, Clone)]
pub struct Speculation {
    /// A task gets one backup once it has run this many times the median duration of the
    /// tasks of its stage that have finished.
    pub multiple: f64,
    /// ... and at least this long: short tasks are not worth duplicating.
    pub min_runtime: Duration,
    /// Launch two attempts of every task at once (exercises the commit protocol).
    pub duplicate_all: bool,
}

impl Default for Speculation {
    fn default() -> Self {
        Self { multiple: 2.0, min_runtime: Duration::from_secs(2), duplicate_all: false }
    }
}

/// How often running tasks are checked for stragglers.
const SPECULATION_TICK: Duration = Duration::from_millis(100);

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("job_id", &self.job_id)
            .field("job_root", &self.job_root)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// The result of a run: every task's committed manifest, and the totals.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub manifests: Vec<Manifest>,
    pub summary: RunSummary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Running,
    Committed,
    Failed,
}

/// Ready-queue priority: depth first (later stages first, so results are consumed as soon as
/// they exist and memory stays bounded), then partition order.
type Priority = (usize, Reverse<usize>);

enum Completion {
    Done {
        task: usize,
        attempt: u32,
        elapsed: Duration,
        outcome: Box<shoal_protocol::TaskOutcome>,
        /// Committed without running: every input was empty.
        skipped: bool,
    },
    RetryDue {
        task: usize,
    },
}

fn median(durations: &[Duration]) -> Option<Duration> {
    let mut d = durations.to_vec();
    d.sort_unstable();
    d.get(d.len() / 2).copied()
}

/// Runs a graph to completion. `committed` holds manifests already found under the job root
/// (resume); those tasks are not run again.
pub async fn run(
    graph: &TaskGraph,
    executor: &dyn Executor,
    opts: &RunOptions,
    committed: HashMap<usize, Manifest>,
) -> Result<RunOutput> {
    let (manifests, summary) = run_counted(graph, executor, opts, committed).await;
    Ok(RunOutput { manifests: manifests?, summary })
}

/// [`run`], also returning the totals when the run fails (for its report).
pub async fn run_counted(
    graph: &TaskGraph,
    executor: &dyn Executor,
    opts: &RunOptions,
    mut committed: HashMap<usize, Manifest>,
) -> (Result<Vec<Manifest>>, RunSummary) {
    let n = graph.len();
    let emit = |e: Event| {
        if let Some(sink) = &opts.events {
            sink(&e);
        }
    };
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut missing: Vec<usize> = vec![0; n];
    for (i, t) in graph.tasks.iter().enumerate() {
        missing[i] = t.deps.len();
        for &d in &t.deps {
            dependents[d].push(i);
        }
    }
    let mut state = vec![State::Waiting; n];
    let mut manifests: Vec<Option<Manifest>> = vec![None; n];
    let mut attempts = vec![0u32; n];
    let mut ready: BinaryHeap<(Priority, usize)> = BinaryHeap::new();
    let mut summary = RunSummary { tasks: n, ..Default::default() };

    // Tasks committed by an earlier run count as done; their dependents may become ready.
    for i in 0..n {
        if let Some(m) = committed.remove(&i) {
            state[i] = State::Committed;
            manifests[i] = Some(m);
            summary.already_committed += 1;
        }
    }
    for i in 0..n {
        if state[i] == State::Committed {
            for &d in &dependents[i] {
                missing[d] -= 1;
            }
        }
    }
    for i in 0..n {
        if state[i] == State::Waiting && missing[i] == 0 {
            state[i] = State::Ready;
            ready.push((priority(graph, i), i));
        }
    }
    emit(Event::Started { tasks: n, already_committed: summary.already_committed });

    let concurrency = executor.concurrency().max(1);
    let mut in_flight: FuturesUnordered<BoxFuture<'_, Completion>> = FuturesUnordered::new();
    let mut running = 0usize;
    let mut done = summary.already_committed;
    let mut failure: Option<(TaskFailure, u32)> = None;
    // Per task: attempts in flight, when the oldest of them started, whether it got a backup.
    let mut inflight = vec![0u32; n];
    let mut started: Vec<Option<Instant>> = vec![None; n];
    let mut speculated = vec![false; n];
    let mut running_tasks: BTreeSet<usize> = BTreeSet::new();
    // Durations of committed attempts, per stage: the yardstick for stragglers.
    let mut stage_durations: Vec<Vec<Duration>> = vec![Vec::new(); graph.stages.len().max(1)];

    macro_rules! launch {
        ($task:expr) => {{
            let task: usize = $task;
            attempts[task] += 1;
            let attempt = attempts[task];
            state[task] = State::Running;
            running += 1;
            inflight[task] += 1;
            running_tasks.insert(task);
            started[task].get_or_insert_with(Instant::now);
            summary.attempts += 1;
            let spec = build_spec(graph, task, attempt, &manifests, opts);
            emit(Event::TaskStarted { task, attempt });
            let t0 = Instant::now();
            in_flight.push(
                executor
                    .execute(spec)
                    .map(move |outcome| Completion::Done {
                        task,
                        attempt,
                        elapsed: t0.elapsed(),
                        outcome: Box::new(outcome),
                        skipped: false,
                    })
                    .boxed(),
            );
            attempt
        }};
    }
    let storage = Arc::new(shoal_worker::io::storage::Storage::new(opts.storage.clone()));

    while done < n {
        while failure.is_none() && running < concurrency {
            let Some((_, task)) = ready.pop() else { break };
            if let Some(schema) = empty_output(graph, task, &manifests) {
                // Nothing to compute: commit the empty result instead of running the task.
                attempts[task] += 1;
                state[task] = State::Running;
                running += 1;
                inflight[task] += 1;
                let (key, attempt) = (graph.tasks[task].key.clone(), attempts[task]);
                let commit = commit_empty(storage.clone(), opts.job_root.clone(), key, schema, attempt);
                in_flight.push(
                    commit
                        .map(move |outcome| Completion::Done {
                            task,
                            attempt,
                            elapsed: Duration::ZERO,
                            outcome: Box::new(outcome),
                            skipped: true,
                        })
                        .boxed(),
                );
                continue;
            }
            launch!(task);
            if opts.speculation.as_ref().is_some_and(|s| s.duplicate_all) {
                let attempt = launch!(task);
                speculated[task] = true;
                summary.speculative += 1;
                emit(Event::Speculating { task, attempt });
            }
        }
        let speculating = failure.is_none() && !running_tasks.is_empty();
        let next = match &opts.speculation {
            Some(_) if speculating => tokio::select! {
                c = in_flight.next() => c.map(Some),
                () = tokio::time::sleep(SPECULATION_TICK) => Some(None),
            },
            _ => in_flight.next().await.map(Some),
        };
        let Some(next) = next else {
            // Nothing running and nothing ready: only possible after a failure.
            break;
        };
        let Some(completion) = next else {
            // A tick: back up the stragglers, while there is room.
            let Some(spec) = &opts.speculation else { continue };
            let candidates: Vec<usize> =
                running_tasks.iter().copied().filter(|&t| inflight[t] == 1 && !speculated[t]).collect();
            for task in candidates {
                if running >= concurrency {
                    break;
                }
                let Some(median) = median(&stage_durations[graph.tasks[task].stage]) else { continue };
                let elapsed = started[task].map(|s| s.elapsed()).unwrap_or_default();
                if elapsed >= spec.min_runtime && elapsed.as_secs_f64() > spec.multiple * median.as_secs_f64()
                {
                    let attempt = launch!(task);
                    speculated[task] = true;
                    summary.speculative += 1;
                    emit(Event::Speculating { task, attempt });
                }
            }
            continue;
        };
        match completion {
            Completion::RetryDue { task } => {
                if failure.is_none() && state[task] == State::Waiting {
                    state[task] = State::Ready;
                    ready.push((priority(graph, task), task));
                }
            }
            Completion::Done { task, attempt, elapsed, outcome, skipped } => {
                running -= 1;
                inflight[task] -= 1;
                if inflight[task] == 0 {
                    running_tasks.remove(&task);
                    started[task] = None;
                }
                if let Ok(result) = outcome.as_ref() {
                    summary.add(&result.metrics);
                }
                if state[task] == State::Committed || state[task] == State::Failed {
                    // Another attempt got there first: drop this one.
                    summary.discarded += 1;
                    emit(Event::AttemptDiscarded { task, attempt });
                    continue;
                }
                match *outcome {
                    Ok(result) => {
                        state[task] = State::Committed;
                        if skipped {
                            summary.skipped += 1;
                        } else {
                            summary.executed += 1;
                            stage_durations[graph.tasks[task].stage].push(elapsed);
                        }
                        summary.rows_written += result.manifest.rows;
                        emit(Event::TaskCommitted {
                            task,
                            attempt,
                            won: result.won_commit,
                            metrics: Box::new(result.metrics),
                        });
                        manifests[task] = Some(result.manifest);
                        done += 1;
                        for &d in &dependents[task] {
                            missing[d] -= 1;
                            if missing[d] == 0 && state[d] == State::Waiting {
                                state[d] = State::Ready;
                                ready.push((priority(graph, d), d));
                            }
                        }
                    }
                    // Another attempt of this task is still running: let it finish.
                    Err(f) if f.kind == FailureKind::Retryable && inflight[task] > 0 => {
                        summary.failed_attempts += 1;
                        emit(Event::AttemptDiscarded { task, attempt });
                    }
                    Err(f)
                        if f.kind == FailureKind::Retryable
                            && attempts[task] < opts.max_attempts
                            && failure.is_none() =>
                    {
                        let delay = backoff(opts.base_backoff, attempt);
                        summary.retries += 1;
                        summary.failed_attempts += 1;
                        emit(Event::TaskRetrying { task, attempt, failure: f, delay });
                        state[task] = State::Waiting;
                        in_flight.push(
                            tokio::time::sleep(delay).map(move |()| Completion::RetryDue { task }).boxed(),
                        );
                    }
                    Err(f) => {
                        summary.failed_attempts += 1;
                        state[task] = State::Failed;
                        emit(Event::TaskFailed { task, attempt, failure: f.clone() });
                        // Report the first failure; let running tasks finish (they commit
                        // idempotently, so a re-run reuses them), launch nothing new.
                        if failure.is_none() {
                            failure = Some((f, attempts[task]));
                        }
                    }
                }
            }
        }
        if failure.is_some() && running == 0 {
            break;
        }
    }
    emit(Event::Finished);
    if let Some((failure, attempts)) = failure {
        return (Err(Error::Task { failure, attempts }), summary);
    }
    let manifests = manifests
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            m.ok_or_else(|| Error::Executor(format!("task {} never committed", graph.tasks[i].key)))
        })
        .collect::<Result<Vec<_>>>();
    (manifests, summary)
}

fn priority(graph: &TaskGraph, task: usize) -> Priority {
    let t = &graph.tasks[task];
    (t.stage, Reverse(t.index))
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(10));
    let jitter: f64 = rand::rng().random_range(0.5..1.5);
    capped.mul_f64(jitter)
}

/// The schema of the (empty) output of `task` when it may be skipped: it allows that
/// ([`TaskNode::skip_if_empty`](crate::graph::TaskNode)) and every one of its inputs is empty,
/// as its upstream manifests tell.
fn empty_output(graph: &TaskGraph, task: usize, manifests: &[Option<Manifest>]) -> Option<Vec<Field>> {
    let node = &graph.tasks[task];
    if !node.skip_if_empty {
        return None;
    }
    let schema = graph.stages.get(node.stage)?.schema.as_ref()?;
    let empty = graph.inputs_with_deps(task).all(|(input, dep)| match input {
        Input::Upstream { bucket, .. } => {
            let Some(m) = dep.and_then(|d| manifests[d].as_ref()) else { return false };
            match bucket {
                Some(b) if !m.outputs.is_empty() => m.buckets.get(*b as usize).is_some_and(|r| r.rows == 0),
                _ => m.rows == 0,
            }
        }
        Input::Scan { .. } => false,
    });
    empty.then(|| shoal_worker::io::schema::to_fields(schema))
}

/// Commits the empty output of a skipped task: a manifest with no objects, created like any
/// other (create-if-absent; an earlier commit wins).
async fn commit_empty(
    storage: Arc<shoal_worker::io::storage::Storage>,
    job_root: String,
    task_key: TaskKey,
    schema: Vec<Field>,
    attempt: u32,
) -> shoal_protocol::TaskOutcome {
    let failed = |e: shoal_worker::Error| TaskFailure {
        kind: e.kind(),
        task_key: task_key.clone(),
        input: e.input().map(str::to_string),
        message: format!("committing the empty output of a skipped task: {e}"),
    };
    let url = storage.resolve(&job_root).map_err(failed)?.join(&layout::manifest(&task_key)).url;
    let manifest = Manifest {
        version: PROTOCOL_VERSION,
        task_key: task_key.clone(),
        attempt_id: "empty".into(),
        outputs: vec![],
        rows: 0,
        bytes: 0,
        schema,
        buckets: vec![],
        divisions: None,
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let metrics = TaskMetrics { requests: 1, ..Default::default() };
    let created = storage.create_if_absent(&url, body.into()).await.map_err(failed)?;
    let (manifest, won_commit) = match created {
        shoal_worker::io::storage::Created::Created => (manifest, true),
        shoal_worker::io::storage::Created::AlreadyExists => {
            let winner = shoal_worker::task::commit::read_manifest(&storage, &url).await.map_err(failed)?;
            (winner.unwrap_or(manifest), false)
        }
    };
    Ok(TaskResult { task_key, attempt, manifest, won_commit, metrics })
}

/// The concrete spec for one attempt: upstream inputs resolved to the objects their committed
/// manifests list.
fn build_spec(
    graph: &TaskGraph,
    task: usize,
    attempt: u32,
    manifests: &[Option<Manifest>],
    opts: &RunOptions,
) -> TaskSpec {
    let node = &graph.tasks[task];
    let inputs = graph
        .inputs_with_deps(task)
        .map(|(input, dep)| match input {
            Input::Upstream { task_key, bucket, port, .. } => {
                let manifest = dep.and_then(|d| manifests[d].as_ref());
                let objects = manifest.map(|m| m.outputs.iter().map(|o| o.object.clone()).collect());
                // A shuffle reader fetches only its bucket's byte range of each map output.
                let ranges = match (bucket, manifest) {
                    (Some(b), Some(m)) => m.buckets.get(*b as usize).copied().into_iter().collect(),
                    _ => vec![],
                };
                // A skipped task's output has no objects: the reader gets its schema instead.
                let schema = manifest.filter(|m| m.outputs.is_empty()).map(|m| m.schema.clone());
                Input::Upstream {
                    task_key: task_key.clone(),
                    objects: objects.unwrap_or_default(),
                    bucket: *bucket,
                    ranges,
                    port: *port,
                    schema,
                }
            }
            other => other.clone(),
        })
        .collect();
    TaskSpec {
        version: PROTOCOL_VERSION,
        job_id: opts.job_id.clone(),
        job_root: opts.job_root.clone(),
        task_key: node.key.clone(),
        attempt,
        inputs,
        pipeline: node.pipeline.clone(),
        output: node.output.clone(),
        limits: opts.limits.clone(),
        storage: opts.storage.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{TaskNode, upstream};
    use async_trait::async_trait;
    use shoal_protocol::{Output, TaskKey, TaskResult, TaskSpec};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails each task `fail_first` times with `kind`, then succeeds; records the order in
    /// which tasks start and the peak concurrency.
    #[derive(Debug)]
    struct Flaky {
        fail_first: u32,
        kind: FailureKind,
        started: Mutex<Vec<String>>,
        running: AtomicUsize,
        peak: AtomicUsize,
        concurrency: usize,
    }

    impl Flaky {
        fn new(fail_first: u32, kind: FailureKind, concurrency: usize) -> Self {
            Self {
                fail_first,
                kind,
                started: Mutex::new(vec![]),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                concurrency,
            }
        }
    }

    #[async_trait]
    impl Executor for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn concurrency(&self) -> usize {
            self.concurrency
        }
        async fn execute(&self, spec: TaskSpec) -> shoal_protocol::TaskOutcome {
            self.started.lock().unwrap().push(spec.task_key.to_string());
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if spec.attempt <= self.fail_first {
                return Err(TaskFailure {
                    kind: self.kind,
                    task_key: spec.task_key,
                    input: None,
                    message: "injected".into(),
                });
            }
            // Upstream inputs must arrive resolved to the objects of their manifests.
            for input in &spec.inputs {
                if let Input::Upstream { objects, task_key, .. } = input {
                    assert_eq!(objects.len(), 1, "upstream resolved");
                    assert_eq!(objects[0].url, format!("memory:///{task_key}"), "the manifest of {task_key}");
                }
            }
            let object = shoal_protocol::ObjectRef {
                url: format!("memory:///{}", spec.task_key),
                size: 1,
                e_tag: None,
            };
            Ok(TaskResult {
                task_key: spec.task_key.clone(),
                attempt: spec.attempt,
                manifest: Manifest {
                    version: PROTOCOL_VERSION,
                    task_key: spec.task_key,
                    attempt_id: "a".into(),
                    outputs: vec![shoal_protocol::OutputObject { object, rows: 1 }],
                    rows: 1,
                    bytes: 1,
                    schema: vec![],
                    buckets: vec![],
                    divisions: None,
                },
                won_commit: true,
                metrics: TaskMetrics::default(),
            })
        }
    }

    #[tokio::test]
    async fn inputs_read_their_own_tasks_whatever_the_order_of_deps() {
        let mut g = two_stage(4);
        // The reader's inputs in the reverse order of its deps: each must still get the
        // objects of the task it names.
        g.tasks[4].inputs.reverse();
        let exec = Flaky::new(0, FailureKind::Retryable, 2);
        let out = run(&g, &exec, &opts(1), HashMap::new()).await.unwrap();
        assert_eq!(out.manifests.len(), 5);
    }

    /// Two stages: `width` independent tasks, then one task reading all of them.
    fn two_stage(width: usize) -> TaskGraph {
        let mut g = TaskGraph::default();
        let s0 = g.stage("a", vec![], 0, None);
        for i in 0..width {
            g.push(TaskNode {
                key: TaskKey(format!("a-{i}")),
                stage: s0,
                index: i,
                deps: vec![],
                inputs: vec![],
                pipeline: vec![],
                output: Output::Intermediate,
                skip_if_empty: false,
            });
        }
        let s1 = g.stage("b", vec![], 0, None);
        let deps: Vec<usize> = (0..width).collect();
        let inputs = deps.iter().map(|&d| upstream(&g.tasks[d].key)).collect();
        g.push(TaskNode {
            key: TaskKey("b-0".into()),
            stage: s1,
            index: 0,
            deps,
            inputs,
            pipeline: vec![],
            output: Output::Intermediate,
            skip_if_empty: false,
        });
        g.outputs = vec![width];
        g
    }

    fn opts(max_attempts: u32) -> RunOptions {
        RunOptions {
            job_id: "t".into(),
            job_root: "memory:///t".into(),
            storage: StorageOptions::default(),
            limits: Limits::default(),
            max_attempts,
            base_backoff: Duration::from_millis(1),
            speculation: None,
            events: None,
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_they_succeed() {
        let g = two_stage(6);
        let ex = Flaky::new(2, FailureKind::Retryable, 3);
        let out = run(&g, &ex, &opts(3), HashMap::new()).await.unwrap();
        assert_eq!(out.manifests.len(), 7);
        assert_eq!(out.summary.attempts, 21, "three attempts per task");
        assert_eq!(out.summary.retries, 14);
        assert!(ex.peak.load(Ordering::SeqCst) <= 3, "concurrency limit respected");
        // The reducer starts only after all its inputs committed.
        let started = ex.started.lock().unwrap();
        assert_eq!(started.iter().position(|k| k == "b-0"), Some(started.len() - 3));
    }

    #[tokio::test]
    async fn retries_stop_at_the_attempt_limit() {
        let g = two_stage(2);
        let ex = Flaky::new(5, FailureKind::Retryable, 1);
        let err = run(&g, &ex, &opts(3), HashMap::new()).await.unwrap_err();
        match err {
            Error::Task { failure, attempts } => {
                assert_eq!(attempts, 3);
                assert_eq!(failure.kind, FailureKind::Retryable);
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn fatal_failures_fail_once_without_retries() {
        let g = two_stage(4);
        let ex = Flaky::new(1, FailureKind::Fatal, 1);
        let err = run(&g, &ex, &opts(5), HashMap::new()).await.unwrap_err();
        assert!(matches!(err, Error::Task { attempts: 1, .. }), "{err}");
        assert_eq!(ex.started.lock().unwrap().len(), 1, "nothing new launched after a fatal failure");
    }

    #[tokio::test]
    async fn committed_tasks_are_not_run_again() {
        let g = two_stage(3);
        let ex = Flaky::new(0, FailureKind::Retryable, 2);
        let first = run(&g, &ex, &opts(3), HashMap::new()).await.unwrap();
        let committed: HashMap<usize, Manifest> =
            first.manifests.iter().cloned().enumerate().take(3).collect();
        let again = Flaky::new(0, FailureKind::Retryable, 2);
        let out = run(&g, &again, &opts(3), committed).await.unwrap();
        assert_eq!(out.summary.already_committed, 3);
        assert_eq!(*again.started.lock().unwrap(), vec!["b-0".to_string()]);
    }

    #[tokio::test]
    async fn ready_tasks_run_depth_first() {
        // Two independent chains a-i -> b-i: with one slot, each b runs right after its a.
        let mut g = TaskGraph::default();
        let s0 = g.stage("a", vec![], 0, None);
        let s1 = g.stage("b", vec![], 0, None);
        for i in 0..3 {
            let a = g.push(TaskNode {
                key: TaskKey(format!("a-{i}")),
                stage: s0,
                index: i,
                deps: vec![],
                inputs: vec![],
                pipeline: vec![],
                output: Output::Intermediate,
                skip_if_empty: false,
            });
            let key = g.tasks[a].key.clone();
            g.push(TaskNode {
                key: TaskKey(format!("b-{i}")),
                stage: s1,
                index: i,
                deps: vec![a],
                inputs: vec![upstream(&key)],
                pipeline: vec![],
                output: Output::Intermediate,
                skip_if_empty: false,
            });
        }
        let ex = Flaky::new(0, FailureKind::Retryable, 1);
        run(&g, &ex, &opts(1), HashMap::new()).await.unwrap();
        assert_eq!(*ex.started.lock().unwrap(), ["a-0", "b-0", "a-1", "b-1", "a-2", "b-2"]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let first = backoff(base, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
        let fourth = backoff(base, 4);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(1200));
        assert!(backoff(base, 40) <= Duration::from_secs(15));
    }

    /// Attempt 1 of one chosen task hangs (a straggler); everything else takes 5 ms.
    #[derive(Debug)]
    struct Straggler {
        slow_key: String,
    }

    #[async_trait]
    impl Executor for Straggler {
        fn name(&self) -> &str {
            "straggler"
        }
        fn concurrency(&self) -> usize {
            4
        }
        async fn execute(&self, spec: TaskSpec) -> shoal_protocol::TaskOutcome {
            let slow = spec.task_key.as_str() == self.slow_key && spec.attempt == 1;
            tokio::time::sleep(Duration::from_millis(if slow { 600_000 } else { 5 })).await;
            Flaky::new(0, FailureKind::Retryable, 1).execute(spec).await
        }
    }

    /// (task, attempt, what happened), in order.
    type Log = Arc<Mutex<Vec<(usize, u32, &'static str)>>>;

    fn recording(opts: &mut RunOptions) -> Log {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        opts.events = Some(Arc::new(move |e: &Event| {
            let entry = match e {
                Event::TaskCommitted { task, attempt, .. } => (*task, *attempt, "committed"),
                Event::Speculating { task, attempt } => (*task, *attempt, "backup"),
                Event::AttemptDiscarded { task, attempt } => (*task, *attempt, "discarded"),
                _ => return,
            };
            sink.lock().unwrap().push(entry);
        }));
        log
    }

    #[tokio::test]
    async fn a_straggler_gets_a_backup_and_the_backup_commits() {
        let g = two_stage(8);
        let mut o = opts(3);
        o.speculation =
            Some(Speculation { multiple: 2.0, min_runtime: Duration::from_millis(50), duplicate_all: false });
        let log = recording(&mut o);
        let ex = Straggler { slow_key: "a-3".into() };
        // Without a backup this run would wait ten minutes for task a-3.
        let out = tokio::time::timeout(Duration::from_secs(60), run(&g, &ex, &o, HashMap::new()))
            .await
            .expect("the backup finished the job")
            .unwrap();
        assert_eq!(out.summary.speculative, 1);
        assert_eq!(out.summary.executed, 9);
        let log = log.lock().unwrap().clone();
        assert!(log.contains(&(3, 2, "backup")), "{log:?}");
        assert!(log.contains(&(3, 2, "committed")), "{log:?}");
        assert!(!log.iter().any(|&(t, a, what)| t == 3 && a == 1 && what == "committed"), "{log:?}");
    }

    #[tokio::test]
    async fn forced_duplicates_commit_every_task_once() {
        let g = two_stage(6);
        let mut o = opts(3);
        o.speculation = Some(Speculation { duplicate_all: true, ..Speculation::default() });
        let log = recording(&mut o);
        let ex = Flaky::new(0, FailureKind::Retryable, 4);
        let out = run(&g, &ex, &o, HashMap::new()).await.unwrap();
        assert_eq!(out.summary.speculative, 7);
        assert_eq!(out.summary.attempts, 14);
        assert_eq!(out.manifests.len(), 7);
        let log = log.lock().unwrap().clone();
        for task in 0..7 {
            let commits = log.iter().filter(|&&(t, _, what)| t == task && what == "committed").count();
            assert_eq!(commits, 1, "task {task}: {log:?}");
        }
        // Every second attempt that ended before the run did was discarded, not committed.
        let discarded = log.iter().filter(|&&(_, _, what)| what == "discarded").count() as u64;
        assert_eq!(discarded, out.summary.discarded);
    }
}
