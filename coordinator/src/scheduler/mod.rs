//! The scheduler core: task states (waiting → ready → running → committed | failed), depth-first
//! ordering of ready tasks, a concurrency limit, retries with exponential backoff and jitter for
//! retryable failures, speculative backups of stragglers, and events. It knows executors only
//! through [`Executor`], and tasks only as the graph gives them: it never looks inside a
//! pipeline, so every collection's graphs run here unchanged.
//!
//! A task may have several attempts in flight (a backup of a straggler, or every task when
//! duplicates are forced): the first to commit wins, later ones are discarded. The worker's
//! create-if-absent commit makes that safe: a losing attempt returns the winner's manifest.
//!
//! Rooms: [`state`] (the per-task state table and worker slots), [`retry`] (what a failure
//! leads to), [`speculation`] (stragglers), [`spec`] (an attempt's `TaskSpec`), [`skip`]
//! (committing the empty output of a task whose inputs are all empty).

mod retry;
mod skip;
mod spec;
mod speculation;
mod state;

use crate::error::{Error, Result};
use crate::events::{EventKind, Publisher, TaskRef};
use crate::executor::{AbortOnDrop, Executor};
use crate::graph::TaskGraph;
use crate::run::report::RunSummary;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use retry::Decision;
use shoal_protocol::{Limits, Manifest, StorageOptions, TaskFailure, TaskOutcome};
pub use speculation::Speculation;
use speculation::StageDurations;
use state::{Slots, Tasks};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Scheduling settings of one run.
#[derive(Debug, Clone)]
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
    /// The job root's commits were listed before the run (the tasks committed then are the
    /// `committed` argument of [`run`]): a task's first attempt is known not to be committed,
    /// and its worker skips the check.
    pub commits_listed: bool,
}

/// The result of a run: every task's committed manifest, and the totals.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub manifests: Vec<Manifest>,
    pub summary: RunSummary,
}

/// An attempt that ended, or a retry whose backoff elapsed.
enum Completion {
    Done {
        task: usize,
        attempt: u32,
        slot: usize,
        elapsed: Duration,
        outcome: Box<TaskOutcome>,
        /// Committed without running: every input was empty.
        skipped: bool,
    },
    RetryDue {
        task: usize,
    },
}

/// Runs a graph to completion. `committed` holds manifests already found under the job root
/// (resume); those tasks are not run again.
pub async fn run(
    graph: &TaskGraph,
    executor: &dyn Executor,
    opts: &RunOptions,
    committed: HashMap<usize, Manifest>,
    events: &Publisher,
) -> Result<RunOutput> {
    let (manifests, summary) = run_counted(graph, executor, opts, committed, events).await;
    Ok(RunOutput { manifests: manifests?, summary })
}

/// [`run`], also returning the totals when the run fails (for its report).
pub async fn run_counted(
    graph: &TaskGraph,
    executor: &dyn Executor,
    opts: &RunOptions,
    committed: HashMap<usize, Manifest>,
    events: &Publisher,
) -> (Result<Vec<Manifest>>, RunSummary) {
    let mut run = Run::new(graph, executor, opts, committed, events);
    run.drive().await;
    run.finish()
}

/// [`run_counted`] as a task of the current Tokio runtime (inline when there is none), owning
/// what it reads. Run on a runtime's worker, the scheduler is woken by a completing task in that
/// worker's own queue and starts the next task there, instead of each launch and each
/// completion crossing to the thread that called `block_on` through a futex: 42 → 19 µs per
/// tiny task on 2 threads (bench/results/scheduler.txt). Dropping the returned future aborts
/// the run, and with it every attempt in flight.
pub async fn run_spawned(
    graph: Arc<TaskGraph>,
    executor: Arc<dyn Executor>,
    opts: RunOptions,
    committed: HashMap<usize, Manifest>,
    events: Arc<Publisher>,
) -> (Result<Vec<Manifest>>, RunSummary) {
    let run = async move { run_counted(&graph, &*executor, &opts, committed, &events).await };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return run.await;
    };
    let mut task = AbortOnDrop(runtime.spawn(run));
    match (&mut task.0).await {
        Ok(out) => out,
        Err(e) => (Err(Error::Executor(format!("the scheduler stopped: {e}"))), RunSummary::default()),
    }
}

/// One run in progress.
struct Run<'a> {
    graph: &'a TaskGraph,
    executor: &'a dyn Executor,
    opts: &'a RunOptions,
    events: &'a Publisher,
    tasks: Tasks,
    slots: Slots,
    in_flight: FuturesUnordered<BoxFuture<'a, Completion>>,
    durations: StageDurations,
    summary: RunSummary,
    /// The first task failure, with its task's attempt count: the run's error.
    failure: Option<(TaskFailure, u32)>,
    storage: Arc<shoal_worker::io::storage::Storage>,
}

impl<'a> Run<'a> {
    fn new(
        graph: &'a TaskGraph,
        executor: &'a dyn Executor,
        opts: &'a RunOptions,
        committed: HashMap<usize, Manifest>,
        events: &'a Publisher,
    ) -> Self {
        let tasks = Tasks::new(graph, committed);
        let summary =
            RunSummary { tasks: graph.len(), already_committed: tasks.committed(), ..Default::default() };
        Self {
            graph,
            executor,
            opts,
            events,
            tasks,
            // Forced duplicates run in pairs, so they need two slots even on one worker.
            slots: Slots::new(
                executor
                    .concurrency()
                    .max(1)
                    .max(if opts.speculation.as_ref().is_some_and(|s| s.duplicate_all) { 2 } else { 1 }),
            ),
            in_flight: FuturesUnordered::new(),
            durations: StageDurations::new(graph.stages.len()),
            summary,
            failure: None,
            storage: Arc::new(shoal_worker::io::storage::Storage::new(opts.storage.clone())),
        }
    }

    async fn drive(&mut self) {
        while self.tasks.committed() < self.graph.len() {
            self.launch_ready();
            let Some(next) = self.next().await else {
                // Nothing running and nothing ready: only possible after a failure.
                break;
            };
            match next {
                Some(completion) => self.complete(completion),
                None => self.back_up_stragglers(),
            }
            if self.failure.is_some() && self.slots.busy() == 0 {
                break;
            }
        }
        // A losing attempt of a task that writes to the user's location (a Parquet part, a Zarr
        // chunk) rewrites the same bytes there through a staging file: the run ends only once
        // none is still writing, so nothing listed after it returns is half-written.
        while self.failure.is_none()
            && self.tasks.running().any(|t| self.graph.tasks[t].output.is_user_visible())
        {
            let Some(completion) = self.in_flight.next().await else { break };
            self.complete(completion);
        }
    }

    /// The next completion; `Some(None)` for a speculation tick; `None` when nothing is in flight.
    async fn next(&mut self) -> Option<Option<Completion>> {
        let speculating =
            self.opts.speculation.is_some() && self.failure.is_none() && self.tasks.any_running();
        if speculating {
            tokio::select! {
                c = self.in_flight.next() => c.map(Some),
                () = tokio::time::sleep(speculation::TICK) => Some(None),
            }
        } else {
            self.in_flight.next().await.map(Some)
        }
    }

    /// Starts ready tasks while there are free slots (and no failure). With forced duplicates
    /// a task starts only when both of its attempts have a slot.
    fn launch_ready(&mut self) {
        let duplicate = self.duplicate_all();
        let needed = if duplicate { 2 } else { 1 };
        while self.failure.is_none() && self.slots.free() >= needed {
            let Some(task) = self.tasks.pop_ready() else { break };
            if let Some(schema) = skip::empty_output(self.graph, task, &self.tasks) {
                self.commit_empty(task, schema);
                continue;
            }
            self.launch(task, false);
            if duplicate {
                self.back_up(task, Duration::ZERO, None);
            }
        }
    }

    fn duplicate_all(&self) -> bool {
        self.opts.speculation.as_ref().is_some_and(|s| s.duplicate_all)
    }

    /// Launches an attempt of `task` in a free slot (the caller checked there is one).
    fn launch(&mut self, task: usize, speculative: bool) {
        let Some(slot) = self.slots.take() else { return };
        let attempt = self.tasks.start_attempt(task);
        self.summary.attempts += 1;
        let spec = spec::build_spec(self.graph, task, attempt, &self.tasks, self.opts);
        self.events.emit(|| EventKind::TaskStarted { task: self.task_ref(task), attempt, slot, speculative });
        let t0 = Instant::now();
        self.in_flight.push(
            self.executor
                .execute(spec)
                .map(move |outcome| Completion::Done {
                    task,
                    attempt,
                    slot,
                    elapsed: t0.elapsed(),
                    outcome: Box::new(outcome),
                    skipped: false,
                })
                .boxed(),
        );
    }

    /// A backup attempt of `task`, which has run for `running` against its stage's `median`.
    fn back_up(&mut self, task: usize, running: Duration, median: Option<Duration>) {
        self.tasks.mark_speculated(task);
        self.summary.speculative += 1;
        let attempt = self.tasks.get(task).attempts + 1;
        self.events.emit(|| EventKind::BackupLaunched {
            task: self.task_ref(task),
            attempt,
            running_us: running.as_micros() as u64,
            median_us: median.map(|m| m.as_micros() as u64),
        });
        self.launch(task, true);
    }

    /// A speculation tick: backs up the stragglers, while there is room.
    fn back_up_stragglers(&mut self) {
        let Some(speculation) = &self.opts.speculation else { return };
        for s in speculation.stragglers(self.graph, &self.tasks, &self.durations) {
            if !self.slots.available() {
                break;
            }
            self.back_up(s.task, s.running, Some(s.median));
        }
    }

    /// Commits the empty output of `task` instead of running it.
    fn commit_empty(&mut self, task: usize, schema: Vec<shoal_protocol::Field>) {
        let Some(slot) = self.slots.take() else { return };
        let attempt = self.tasks.start_attempt(task);
        let key = self.graph.tasks[task].key.clone();
        let commit =
            skip::commit_empty(self.storage.clone(), self.opts.job_root.clone(), key, schema, attempt);
        self.in_flight.push(
            commit
                .map(move |outcome| Completion::Done {
                    task,
                    attempt,
                    slot,
                    elapsed: Duration::ZERO,
                    outcome: Box::new(outcome),
                    skipped: true,
                })
                .boxed(),
        );
    }

    fn complete(&mut self, completion: Completion) {
        match completion {
            Completion::RetryDue { task } => {
                if self.failure.is_none() {
                    self.tasks.make_ready(self.graph, task);
                }
            }
            Completion::Done { task, attempt, slot, elapsed, outcome, skipped } => {
                self.slots.give_back(slot);
                self.tasks.end_attempt(task);
                if let Ok(result) = outcome.as_ref() {
                    self.summary.add(&result.metrics);
                }
                if self.tasks.is_settled(task) {
                    // Another attempt got there first: drop this one.
                    self.summary.discarded += 1;
                    let elapsed_us = elapsed.as_micros() as u64;
                    let failure = (*outcome).err();
                    self.events.emit(|| EventKind::AttemptDiscarded {
                        task: self.task_ref(task),
                        attempt,
                        slot,
                        elapsed_us,
                        failure,
                    });
                    return;
                }
                let ended = Ended { task, attempt, slot, elapsed };
                match *outcome {
                    Ok(result) => self.committed(ended, result, skipped),
                    Err(failure) => self.failed(ended, failure),
                }
            }
        }
    }

    fn committed(&mut self, e: Ended, result: shoal_protocol::TaskResult, skipped: bool) {
        if skipped {
            self.summary.skipped += 1;
        } else {
            self.summary.executed += 1;
            self.durations.record(self.graph.tasks[e.task].stage, e.elapsed);
        }
        self.summary.rows_written += result.manifest.rows;
        self.events.emit(|| EventKind::TaskCommitted {
            task: self.task_ref(e.task),
            attempt: e.attempt,
            slot: e.slot,
            won: result.won_commit,
            skipped,
            elapsed_us: e.elapsed.as_micros() as u64,
            metrics: Box::new(result.metrics.clone()),
        });
        self.tasks.commit(self.graph, e.task, result.manifest);
    }

    fn failed(&mut self, e: Ended, failure: TaskFailure) {
        self.summary.failed_attempts += 1;
        let t = self.tasks.get(e.task);
        let decision = retry::decide(
            failure.kind,
            e.attempt,
            t.attempts,
            t.inflight,
            self.opts.max_attempts,
            self.failure.is_some(),
            self.opts.base_backoff,
        );
        let (task, attempt, slot) = (e.task, e.attempt, e.slot);
        match decision {
            Decision::AwaitOther => self.events.emit(|| EventKind::AttemptDiscarded {
                task: self.task_ref(task),
                attempt,
                slot,
                elapsed_us: e.elapsed.as_micros() as u64,
                failure: Some(failure),
            }),
            Decision::Retry(delay) => {
                self.summary.retries += 1;
                self.events.emit(|| EventKind::TaskRetrying {
                    task: self.task_ref(task),
                    attempt,
                    slot,
                    failure,
                    delay_ms: delay.as_millis() as u64,
                });
                self.tasks.wait(task);
                self.in_flight
                    .push(tokio::time::sleep(delay).map(move |()| Completion::RetryDue { task }).boxed());
            }
            Decision::Fail => {
                self.tasks.fail(task);
                self.events.emit(|| EventKind::TaskFailed {
                    task: self.task_ref(task),
                    attempt,
                    slot,
                    failure: failure.clone(),
                });
                // Report the first failure; let running tasks finish (they commit
                // idempotently, so a re-run reuses them), launch nothing new.
                if self.failure.is_none() {
                    self.failure = Some((failure, self.tasks.get(task).attempts));
                }
            }
        }
    }

    fn task_ref(&self, task: usize) -> TaskRef {
        TaskRef::of(self.graph, task)
    }

    fn finish(self) -> (Result<Vec<Manifest>>, RunSummary) {
        if let Some((failure, attempts)) = self.failure {
            return (Err(Error::Task { failure, attempts }), self.summary);
        }
        let graph = self.graph;
        let manifests = self
            .tasks
            .into_manifests()
            .enumerate()
            .map(|(i, m)| {
                m.ok_or_else(|| Error::Executor(format!("task {} never committed", graph.tasks[i].key)))
            })
            .collect::<Result<Vec<_>>>();
        (manifests, self.summary)
    }
}

/// An attempt that ended and was not discarded.
#[derive(Debug, Clone, Copy)]
struct Ended {
    task: usize,
    attempt: u32,
    slot: usize,
    elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{TaskNode, upstream};
    use async_trait::async_trait;
    use shoal_protocol::{
        FailureKind, Input, Output, PROTOCOL_VERSION, TaskKey, TaskMetrics, TaskResult, TaskSpec,
    };
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
            // The commits were listed (`opts`): only a first attempt is known not committed.
            assert_eq!(spec.uncommitted, spec.attempt == 1, "attempt {}", spec.attempt);
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
        let out = run(&g, &exec, &opts(1), HashMap::new(), &quiet()).await.unwrap();
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
            commits_listed: true,
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_they_succeed() {
        let g = two_stage(6);
        let ex = Flaky::new(2, FailureKind::Retryable, 3);
        let out = run(&g, &ex, &opts(3), HashMap::new(), &quiet()).await.unwrap();
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
        let err = run(&g, &ex, &opts(3), HashMap::new(), &quiet()).await.unwrap_err();
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
        let err = run(&g, &ex, &opts(5), HashMap::new(), &quiet()).await.unwrap_err();
        assert!(matches!(err, Error::Task { attempts: 1, .. }), "{err}");
        assert_eq!(ex.started.lock().unwrap().len(), 1, "nothing new launched after a fatal failure");
    }

    #[tokio::test]
    async fn committed_tasks_are_not_run_again() {
        let g = two_stage(3);
        let ex = Flaky::new(0, FailureKind::Retryable, 2);
        let first = run(&g, &ex, &opts(3), HashMap::new(), &quiet()).await.unwrap();
        let committed: HashMap<usize, Manifest> =
            first.manifests.iter().cloned().enumerate().take(3).collect();
        let again = Flaky::new(0, FailureKind::Retryable, 2);
        let out = run(&g, &again, &opts(3), committed, &quiet()).await.unwrap();
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
        run(&g, &ex, &opts(1), HashMap::new(), &quiet()).await.unwrap();
        assert_eq!(*ex.started.lock().unwrap(), ["a-0", "b-0", "a-1", "b-1", "a-2", "b-2"]);
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

    fn quiet() -> Publisher {
        Publisher::none("t")
    }

    /// (task, attempt, what happened), in order.
    type Log = Vec<(usize, u32, &'static str)>;

    fn recording() -> (Publisher, crate::events::Subscription) {
        let mut events = crate::events::Events::new();
        let sub = events.subscribe();
        (events.into_publisher("t"), sub)
    }

    fn log_of(mut sub: crate::events::Subscription) -> Log {
        let mut log = Vec::new();
        while let Some(e) = sub.try_recv() {
            let entry = match &e.kind {
                EventKind::TaskCommitted { task, attempt, .. } => (task.id, *attempt, "committed"),
                EventKind::BackupLaunched { task, attempt, .. } => (task.id, *attempt, "backup"),
                EventKind::AttemptDiscarded { task, attempt, .. } => (task.id, *attempt, "discarded"),
                _ => continue,
            };
            log.push(entry);
        }
        log
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_that_blocks_never_slows_scheduling() {
        // A subscriber that takes 100 ms over every event: a scheduler that waited for it would
        // need at least (events × 100 ms) for this run, about 5 s.
        let g = two_stage(12);
        let mut events = crate::events::Events::new();
        let mut slow = events.subscribe();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let subscriber = std::thread::spawn(move || {
            let mut kinds = Vec::new();
            while let Some(e) = slow.blocking_recv() {
                std::thread::sleep(Duration::from_millis(100));
                counter.fetch_add(1, Ordering::SeqCst);
                kinds.push(e.kind.clone());
            }
            kinds
        });
        let publisher = events.into_publisher("t");
        let started = Instant::now();
        let ex = Flaky::new(0, FailureKind::Retryable, 4);
        let out = run(&g, &ex, &opts(1), HashMap::new(), &publisher).await.unwrap();
        let wall = started.elapsed();
        let handled_during_run = seen.load(Ordering::SeqCst);
        drop(publisher);
        let kinds = subscriber.join().unwrap();
        // Every event arrives, in order, however slow the subscriber...
        let started_events = kinds.iter().filter(|k| matches!(k, EventKind::TaskStarted { .. })).count();
        let committed = kinds.iter().filter(|k| matches!(k, EventKind::TaskCommitted { .. })).count();
        assert_eq!((started_events, committed), (13, 13), "{kinds:?}");
        assert_eq!(out.summary.executed, 13);
        // ...but the run did not wait for it: it ended with most events still queued, in less
        // time than the subscriber needed for them.
        assert!(
            handled_during_run < kinds.len() / 2,
            "{handled_during_run} of {} handled during the run",
            kinds.len()
        );
        assert!(wall < Duration::from_millis(100) * kinds.len() as u32 / 2, "the run took {wall:?}");
    }

    #[tokio::test]
    async fn a_straggler_gets_a_backup_and_the_backup_commits() {
        let g = two_stage(8);
        let mut o = opts(3);
        o.speculation =
            Some(Speculation { multiple: 2.0, min_runtime: Duration::from_millis(50), duplicate_all: false });
        let (events, sub) = recording();
        let ex = Straggler { slow_key: "a-3".into() };
        // Without a backup this run would wait ten minutes for task a-3.
        let out = tokio::time::timeout(Duration::from_secs(60), run(&g, &ex, &o, HashMap::new(), &events))
            .await
            .expect("the backup finished the job")
            .unwrap();
        assert_eq!(out.summary.speculative, 1);
        assert_eq!(out.summary.executed, 9);
        drop(events);
        let log = log_of(sub);
        assert!(log.contains(&(3, 2, "backup")), "{log:?}");
        assert!(log.contains(&(3, 2, "committed")), "{log:?}");
        assert!(!log.iter().any(|&(t, a, what)| t == 3 && a == 1 && what == "committed"), "{log:?}");
    }

    #[tokio::test]
    async fn forced_duplicates_commit_every_task_once() {
        let g = two_stage(6);
        let mut o = opts(3);
        o.speculation = Some(Speculation { duplicate_all: true, ..Speculation::default() });
        let (events, sub) = recording();
        let ex = Flaky::new(0, FailureKind::Retryable, 4);
        let out = run(&g, &ex, &o, HashMap::new(), &events).await.unwrap();
        assert_eq!(out.summary.speculative, 7);
        assert_eq!(out.summary.attempts, 14);
        assert_eq!(out.manifests.len(), 7);
        drop(events);
        let log = log_of(sub);
        for task in 0..7 {
            let commits = log.iter().filter(|&&(t, _, what)| t == task && what == "committed").count();
            assert_eq!(commits, 1, "task {task}: {log:?}");
        }
        // Every second attempt that ended before the run did was discarded, not committed.
        let discarded = log.iter().filter(|&&(_, _, what)| what == "discarded").count() as u64;
        assert_eq!(discarded, out.summary.discarded);
    }

    /// Forced duplicates whose second attempt of a task with a user-visible output ends last,
    /// long after the first committed; counts those late attempts as they end.
    #[derive(Debug, Default)]
    struct LateSecond {
        late_ended: AtomicUsize,
    }

    #[async_trait]
    impl Executor for LateSecond {
        fn name(&self) -> &str {
            "late-second"
        }
        fn concurrency(&self) -> usize {
            4
        }
        async fn execute(&self, spec: TaskSpec) -> shoal_protocol::TaskOutcome {
            let late = spec.attempt == 2 && spec.output.is_user_visible();
            tokio::time::sleep(Duration::from_millis(if late { 200 } else { 2 })).await;
            if late {
                self.late_ended.fetch_add(1, Ordering::SeqCst);
            }
            Flaky::new(0, FailureKind::Retryable, 1).execute(spec).await
        }
    }

    /// A losing duplicate of a task that writes to the user's location still rewrites its
    /// bytes there: the run returns only after it ends (it is counted as discarded).
    #[tokio::test]
    async fn a_run_waits_for_duplicates_still_writing_a_user_visible_output() {
        let mut g = two_stage(3);
        let last = g.tasks.len() - 1;
        g.tasks[last].output = Output::Part {
            url: "memory:///out".into(),
            part: 0,
            format: shoal_protocol::PartFormat::Parquet,
        };
        let mut o = opts(3);
        o.speculation = Some(Speculation { duplicate_all: true, ..Speculation::default() });
        let ex = LateSecond::default();
        let out = run(&g, &ex, &o, HashMap::new(), &quiet()).await.unwrap();
        assert_eq!(ex.late_ended.load(Ordering::SeqCst), 1, "the run returned before the late attempt ended");
        assert!(out.summary.discarded >= 1, "{:?}", out.summary);
    }

    /// Hangs every attempt, counting the attempts started and the attempts dropped.
    #[derive(Debug, Default)]
    struct Hangs {
        started: AtomicUsize,
        dropped: Arc<AtomicUsize>,
    }

    struct CountsDrop(Arc<AtomicUsize>);

    impl Drop for CountsDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Executor for Hangs {
        fn name(&self) -> &str {
            "hangs"
        }
        fn concurrency(&self) -> usize {
            3
        }
        async fn execute(&self, _spec: TaskSpec) -> shoal_protocol::TaskOutcome {
            let _counted = CountsDrop(self.dropped.clone());
            self.started.fetch_add(1, Ordering::SeqCst);
            std::future::pending().await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spawned_run_answers_as_an_inline_one_and_stops_when_dropped() {
        let g = Arc::new(two_stage(6));
        let ex = Arc::new(Flaky::new(1, FailureKind::Retryable, 2));
        let (manifests, summary) =
            run_spawned(g.clone(), ex.clone(), opts(2), HashMap::new(), Arc::new(quiet())).await;
        let inline = run(&g, &Flaky::new(1, FailureKind::Retryable, 2), &opts(2), HashMap::new(), &quiet())
            .await
            .unwrap();
        assert_eq!(manifests.unwrap(), inline.manifests);
        assert_eq!((summary.executed, summary.attempts, summary.retries), (7, 14, 7));
        assert_eq!(ex.started.lock().unwrap().len(), 14);

        // A caller that stops waiting stops the run: the attempts in flight are dropped.
        let hangs = Arc::new(Hangs::default());
        let run = run_spawned(g, hangs.clone(), opts(1), HashMap::new(), Arc::new(quiet()));
        let mut run = Box::pin(run);
        while hangs.started.load(Ordering::SeqCst) < 3 {
            tokio::select! {
                _ = &mut run => panic!("a run of hanging tasks ended"),
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
        drop(run);
        // A bound that turns a miss into a failure, not a timing.
        tokio::time::timeout(Duration::from_secs(60), async {
            while hangs.dropped.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("every attempt in flight dropped");
        assert_eq!(hangs.started.load(Ordering::SeqCst), 3);
    }
}
