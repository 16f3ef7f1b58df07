//! What the dashboard knows of a run: the events folded into per-stage counts, durations and
//! totals, one segment per ended attempt (the task stream), and the failures. Memory grows with
//! the attempts (one small segment each), never with what is drawn: pages aggregate segments
//! into time buckets, so a run of a million tasks draws as fast as one of a hundred.

use crate::events::{Event, EventKind, GraphShape};
use crate::run::report::{Prices, RunReport, RunSummary};
use shoal_protocol::TaskFailure;
use std::collections::HashMap;

/// How an attempt ended, for the task stream's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// Failed, and the task was retried.
    Retried,
    /// Failed for good.
    Failed,
    /// Ended after its task had committed (a losing duplicate or backup).
    Discarded,
    /// Still running.
    Running,
}

/// One attempt on one worker slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub slot: usize,
    pub stage: usize,
    /// Microseconds since the run started.
    pub start_us: u64,
    pub end_us: u64,
    pub outcome: Outcome,
    pub speculative: bool,
}

/// One stage's progress and figures.
#[derive(Debug, Clone, Default)]
pub struct StageView {
    pub name: String,
    pub operators: Vec<String>,
    pub upstream: Vec<usize>,
    pub tasks: usize,
    pub estimated_bytes: u64,
    pub reused: usize,
    pub running: usize,
    pub committed: usize,
    pub failed: usize,
    /// Durations of committed attempts, with their task keys (for stragglers).
    pub durations: Vec<(u64, String)>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub requests: u64,
    pub retries: u64,
}

impl StageView {
    /// Tasks neither committed (now or before), running, nor failed.
    pub fn waiting(&self) -> usize {
        self.tasks.saturating_sub(self.reused + self.committed + self.running + self.failed)
    }
}

/// A failure or retry, with what it concerns.
#[derive(Debug, Clone)]
pub struct FailureView {
    pub stage: usize,
    pub attempt: u32,
    pub retried: bool,
    pub failure: TaskFailure,
}

/// Failures kept in full; later ones are only counted.
const KEPT_FAILURES: usize = 100;

/// The state of one run as its events tell it.
#[derive(Debug, Clone, Default)]
pub struct RunView {
    pub job_id: String,
    pub executor: String,
    pub concurrency: usize,
    pub graph: Option<GraphShape>,
    pub stages: Vec<StageView>,
    /// Microseconds since the Unix epoch of the first event, and of the latest.
    pub started_us: u64,
    pub latest_us: u64,
    /// Ended attempts, in the order they ended; running ones are in `running`.
    pub segments: Vec<Segment>,
    pub failures: Vec<FailureView>,
    pub failures_dropped: u64,
    /// The totals so far, counted as the scheduler counts them.
    pub summary: RunSummary,
    pub function_memory_mb: u64,
    pub prices: Prices,
    /// `Some` once the run has ended: whether it succeeded, and its error.
    pub finished: Option<(bool, Option<String>)>,
    pub report: Option<RunReport>,
    /// Attempts in flight: (task id, attempt) → (slot, stage, start, speculative).
    running: HashMap<(usize, u32), (usize, usize, u64, bool)>,
}

impl RunView {
    /// A view of a run from its events.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut view = RunView::default();
        for e in events {
            view.apply(e);
        }
        view
    }

    /// Folds in one event. A resumed run's `JobStarted` starts the view afresh.
    pub fn apply(&mut self, event: &Event) {
        if self.started_us == 0 || matches!(event.kind, EventKind::JobStarted { .. }) {
            self.started_us = event.time_us;
        }
        self.latest_us = self.latest_us.max(event.time_us);
        let t = event.time_us.saturating_sub(self.started_us);
        match &event.kind {
            EventKind::JobStarted { graph, executor, concurrency, function_memory_mb, prices, .. } => {
                *self = RunView {
                    job_id: event.job_id.clone(),
                    executor: executor.clone(),
                    concurrency: *concurrency,
                    stages: graph
                        .stages
                        .iter()
                        .map(|s| StageView {
                            name: s.name.clone(),
                            operators: s.operators.clone(),
                            upstream: s.upstream.clone(),
                            tasks: s.tasks,
                            estimated_bytes: s.estimated_bytes,
                            reused: s.committed,
                            ..StageView::default()
                        })
                        .collect(),
                    graph: Some(graph.clone()),
                    started_us: event.time_us,
                    latest_us: event.time_us,
                    summary: RunSummary { tasks: graph.tasks, ..RunSummary::default() },
                    function_memory_mb: *function_memory_mb,
                    prices: prices.clone(),
                    ..RunView::default()
                };
                self.summary.already_committed = self.stages.iter().map(|s| s.reused).sum();
            }
            EventKind::TaskStarted { task, attempt, slot, speculative } => {
                self.summary.attempts += 1;
                self.summary.speculative += u64::from(*speculative);
                self.running.insert((task.id, *attempt), (*slot, task.stage, t, *speculative));
                if let Some(s) = self.stages.get_mut(task.stage) {
                    s.running += 1;
                }
            }
            EventKind::TaskCommitted { task, attempt, skipped, elapsed_us, metrics, .. } => {
                self.end(task.id, *attempt, t, Outcome::Committed);
                self.summary.add(metrics);
                self.summary.rows_written += metrics.rows_out;
                if *skipped {
                    self.summary.skipped += 1;
                } else {
                    self.summary.executed += 1;
                }
                if let Some(s) = self.stages.get_mut(task.stage) {
                    s.committed += 1;
                    s.durations.push((*elapsed_us, task.key.to_string()));
                    s.bytes_read += metrics.bytes_read;
                    s.bytes_written += metrics.bytes_written;
                    s.rows_in += metrics.rows_in;
                    s.rows_out += metrics.rows_out;
                    s.requests += metrics.requests;
                }
            }
            EventKind::TaskRetrying { task, attempt, failure, .. } => {
                self.end(task.id, *attempt, t, Outcome::Retried);
                self.summary.retries += 1;
                self.summary.failed_attempts += 1;
                if let Some(s) = self.stages.get_mut(task.stage) {
                    s.retries += 1;
                }
                self.keep_failure(task.stage, *attempt, true, failure);
            }
            EventKind::AttemptDiscarded { task, attempt, failure, .. } => {
                self.end(task.id, *attempt, t, Outcome::Discarded);
                self.summary.discarded += 1;
                if failure.is_some() {
                    self.summary.failed_attempts += 1;
                }
            }
            EventKind::TaskFailed { task, attempt, failure, .. } => {
                self.end(task.id, *attempt, t, Outcome::Failed);
                self.summary.failed_attempts += 1;
                if let Some(s) = self.stages.get_mut(task.stage) {
                    s.failed += 1;
                }
                self.keep_failure(task.stage, *attempt, false, failure);
            }
            EventKind::BackupLaunched { .. } => {}
            EventKind::JobFinished { ok, error, report } => {
                self.finished = Some((*ok, error.clone()));
                self.report = report.as_deref().cloned();
            }
        }
    }

    fn end(&mut self, task: usize, attempt: u32, end_us: u64, outcome: Outcome) {
        let Some((slot, stage, start_us, speculative)) = self.running.remove(&(task, attempt)) else {
            // A skipped task commits without starting; it occupies no slot worth drawing.
            return;
        };
        if let Some(s) = self.stages.get_mut(stage) {
            s.running = s.running.saturating_sub(1);
        }
        self.segments.push(Segment { slot, stage, start_us, end_us, outcome, speculative });
    }

    fn keep_failure(&mut self, stage: usize, attempt: u32, retried: bool, failure: &TaskFailure) {
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(FailureView { stage, attempt, retried, failure: failure.clone() });
        } else {
            self.failures_dropped += 1;
        }
    }

    /// The attempts in flight, as segments ending now.
    pub fn running_segments(&self) -> impl Iterator<Item = Segment> + '_ {
        let now = self.latest_us.saturating_sub(self.started_us);
        self.running.values().map(move |&(slot, stage, start_us, speculative)| Segment {
            slot,
            stage,
            start_us,
            end_us: now,
            outcome: Outcome::Running,
            speculative,
        })
    }

    /// Committed tasks, counting those an earlier run committed.
    pub fn done(&self) -> usize {
        self.stages.iter().map(|s| s.committed + s.reused).sum()
    }

    pub fn tasks(&self) -> usize {
        self.graph.as_ref().map_or(0, |g| g.tasks)
    }

    /// The cost so far, as the run report will count it.
    pub fn cost_so_far(&self) -> RunReport {
        let wall = self.latest_us.saturating_sub(self.started_us) as f64 / 1e6;
        RunReport::new(
            &self.summary,
            &self.job_id,
            &self.executor,
            wall,
            self.function_memory_mb,
            &self.prices,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{StageShape, TaskRef};
    use shoal_protocol::{FailureKind, TaskKey, TaskMetrics};

    fn event(time_us: u64, kind: EventKind) -> Event {
        Event { time_us, job_id: "j".into(), kind }
    }

    fn task(id: usize) -> TaskRef {
        TaskRef { id, key: TaskKey(format!("t-{id}")), stage: 0, partition: id }
    }

    #[test]
    fn a_hand_checked_run() {
        let graph = GraphShape {
            tasks: 3,
            stages: vec![StageShape {
                name: "scan".into(),
                operators: vec![],
                tasks: 3,
                estimated_bytes: 0,
                upstream: vec![],
                committed: 1,
            }],
        };
        let metrics =
            Box::new(TaskMetrics { bytes_read: 100, rows_out: 7, requests: 3, ..TaskMetrics::default() });
        let failure = TaskFailure {
            kind: FailureKind::Retryable,
            task_key: TaskKey("t-2".into()),
            input: Some("s3://b/x".into()),
            message: "timeout".into(),
        };
        let events = [
            event(
                1_000,
                EventKind::JobStarted {
                    graph,
                    already_committed: 1,
                    executor: "threads".into(),
                    concurrency: 2,
                    function_memory_mb: 1024,
                    prices: Prices::default(),
                },
            ),
            event(2_000, EventKind::TaskStarted { task: task(1), attempt: 1, slot: 0, speculative: false }),
            event(2_000, EventKind::TaskStarted { task: task(2), attempt: 1, slot: 1, speculative: false }),
            event(
                5_000,
                EventKind::TaskCommitted {
                    task: task(1),
                    attempt: 1,
                    slot: 0,
                    won: true,
                    skipped: false,
                    elapsed_us: 3_000,
                    metrics,
                },
            ),
            event(
                6_000,
                EventKind::TaskRetrying { task: task(2), attempt: 1, slot: 1, failure, delay_ms: 10 },
            ),
            event(7_000, EventKind::TaskStarted { task: task(2), attempt: 2, slot: 1, speculative: false }),
        ];
        let v = RunView::from_events(&events);
        let s = &v.stages[0];
        assert_eq!((s.reused, s.committed, s.running, s.failed, s.waiting()), (1, 1, 1, 0, 0));
        assert_eq!((v.done(), v.tasks()), (2, 3));
        assert_eq!((s.bytes_read, s.rows_out, s.requests, s.retries), (100, 7, 3, 1));
        assert_eq!(v.summary.attempts, 3);
        assert_eq!(v.failures.len(), 1);
        assert_eq!(v.failures[0].failure.input.as_deref(), Some("s3://b/x"));
        // Two ended attempts (times relative to the start), one still running until the last event.
        assert_eq!(v.segments.len(), 2);
        assert_eq!((v.segments[0].start_us, v.segments[0].end_us), (1_000, 4_000));
        assert_eq!(v.segments[1].outcome, Outcome::Retried);
        let running: Vec<Segment> = v.running_segments().collect();
        assert_eq!((running.len(), running[0].start_us, running[0].end_us), (1, 6_000, 6_000));
        assert!(v.finished.is_none());
    }
}
