//! The event stream of a run: typed, timestamped, serialisable events, published without
//! blocking to any number of subscribers (the progress bar, the events file, the dashboard).
//!
//! Publishing never waits for a subscriber: each subscriber has its own unbounded queue, so a
//! slow one costs memory (its backlog), never scheduling time, and never loses an event. A run's
//! events are also appended to `jobs/<job_id>.events.jsonl` under the job root (one JSON object
//! per line; resumed runs of the same job append to it), from which a finished or interrupted
//! run can be replayed with [`read_events`].

use crate::error::Result;
use crate::graph::TaskGraph;
use crate::run::report::{Prices, RunReport};
use serde::{Deserialize, Serialize};
use shoal_protocol::{TaskFailure, TaskKey, TaskMetrics};
use shoal_worker::io::storage::Storage;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// One event: when, which job, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    pub job_id: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run starts: the graph's shape, and how much of it an earlier run committed.
    JobStarted {
        graph: GraphShape,
        already_committed: usize,
        executor: String,
        concurrency: usize,
        /// What the cost so far is computed with (as the run report does).
        function_memory_mb: u64,
        prices: Prices,
    },
    /// An attempt was handed to the executor, in scheduler slot `slot` (`0..concurrency`).
    TaskStarted { task: TaskRef, attempt: u32, slot: usize, speculative: bool },
    /// A task's output is committed (by this attempt, or — `won: false` — by another attempt of
    /// the same task that got there first). `skipped`: committed empty without running.
    TaskCommitted {
        task: TaskRef,
        attempt: u32,
        slot: usize,
        won: bool,
        skipped: bool,
        elapsed_us: u64,
        metrics: Box<TaskMetrics>,
    },
    /// A retryable failure; the task runs again after `delay_ms`.
    TaskRetrying { task: TaskRef, attempt: u32, slot: usize, failure: TaskFailure, delay_ms: u64 },
    /// A backup attempt of a straggler (or a forced duplicate) is about to start. `running_us`:
    /// how long the first attempt had run; `median_us`: its stage's median (none when forced).
    BackupLaunched { task: TaskRef, attempt: u32, running_us: u64, median_us: Option<u64> },
    /// An attempt ended after its task had committed or failed for good (`failure`: it failed
    /// itself, while another attempt was still running); its result is dropped.
    AttemptDiscarded {
        task: TaskRef,
        attempt: u32,
        slot: usize,
        elapsed_us: u64,
        failure: Option<TaskFailure>,
    },
    /// A task failed for good: the job fails.
    TaskFailed { task: TaskRef, attempt: u32, slot: usize, failure: TaskFailure },
    /// The run ended: its report (absent if it could not be made), and its error if it failed.
    JobFinished { ok: bool, error: Option<String>, report: Option<Box<RunReport>> },
}

/// A task as events name it: its key, and where it sits in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// Index into the graph's tasks (stable within one run).
    pub id: usize,
    pub key: TaskKey,
    pub stage: usize,
    /// Partition index within the stage.
    pub partition: usize,
}

/// The shape of a task graph, for the start of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphShape {
    pub tasks: usize,
    pub stages: Vec<StageShape>,
}

/// One stage of a [`GraphShape`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageShape {
    pub name: String,
    /// One line per fused operator (as `explain` prints them).
    pub operators: Vec<String>,
    pub tasks: usize,
    pub estimated_bytes: u64,
    /// The stages whose outputs this one reads.
    pub upstream: Vec<usize>,
    /// Tasks an earlier run already committed.
    #[serde(default)]
    pub committed: usize,
}

impl TaskRef {
    /// Task `id` of `graph`.
    pub fn of(graph: &TaskGraph, id: usize) -> Self {
        let node = &graph.tasks[id];
        TaskRef { id, key: node.key.clone(), stage: node.stage, partition: node.index }
    }
}

impl GraphShape {
    /// The shape of `graph`, with `committed` (task ids an earlier run committed) counted per
    /// stage.
    pub fn of(graph: &TaskGraph, committed: impl IntoIterator<Item = usize>) -> Self {
        let mut done = vec![0usize; graph.stages.len()];
        for t in committed {
            if let Some(n) = graph.tasks.get(t).and_then(|node| done.get_mut(node.stage)) {
                *n += 1;
            }
        }
        let upstreams = graph.stage_upstreams();
        let stages = graph
            .stages
            .iter()
            .zip(upstreams)
            .zip(done)
            .map(|((s, upstream), committed)| StageShape {
                name: s.name.clone(),
                operators: s.operators.clone(),
                tasks: s.tasks.len(),
                estimated_bytes: s.estimated_bytes,
                upstream,
                committed,
            })
            .collect();
        GraphShape { tasks: graph.len(), stages }
    }
}

/// The subscribers of one run. Subscribe before the run starts; the run consumes this, and
/// when it ends every subscription sees the end of its stream.
#[derive(Debug, Default)]
pub struct Events {
    subscribers: Vec<mpsc::UnboundedSender<Arc<Event>>>,
}

impl Events {
    /// No subscribers (the run still writes its events file).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscriber, receiving every event of the run in order.
    pub fn subscribe(&mut self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        Subscription { rx }
    }

    /// The publishing end, for one job. Runs started through a [`Client`](crate::Client) make
    /// their own; this is for running a graph on the scheduler directly.
    pub fn into_publisher(self, job_id: &str) -> Publisher {
        Publisher { job_id: job_id.to_string(), subscribers: self.subscribers }
    }
}

/// The receiving end of one subscriber.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl Subscription {
    /// The next event; `None` once the run has ended and every event was received.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }

    /// [`recv`](Self::recv) for a plain thread (not from inside an async runtime).
    pub fn blocking_recv(&mut self) -> Option<Arc<Event>> {
        self.rx.blocking_recv()
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.rx.try_recv().ok()
    }
}

/// Publishes a run's events. Building an event is skipped entirely when nobody listens.
#[derive(Debug)]
pub struct Publisher {
    job_id: String,
    subscribers: Vec<mpsc::UnboundedSender<Arc<Event>>>,
}

impl Publisher {
    /// A publisher nobody listens to.
    pub fn none(job_id: &str) -> Self {
        Events::new().into_publisher(job_id)
    }

    /// Publishes the event `kind()` builds, if anyone listens. Never blocks.
    pub fn emit(&self, kind: impl FnOnce() -> EventKind) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = Arc::new(Event { time_us: now_us(), job_id: self.job_id.clone(), kind: kind() });
        for s in &self.subscribers {
            // A subscriber that went away just stops receiving.
            let _ = s.send(event.clone());
        }
    }

    /// One more subscriber (the run's own: the events file).
    pub(crate) fn subscribe(&mut self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        Subscription { rx }
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// How often the events file is brought up to date while a run goes on.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Appends a run's events to `url` (a `.jsonl` object under the job root) until the stream
/// ends. Object stores cannot append, so the object is rewritten whole (earlier runs' lines
/// first), at most every [`FLUSH_EVERY`] while events arrive and once at the end: an
/// interrupted run loses at most its last seconds of events.
pub(crate) async fn write_jsonl(storage: Arc<Storage>, url: String, mut events: Subscription) -> Result<()> {
    let mut lines = match storage.get_url(&url).await {
        Ok(existing) => existing.to_vec(),
        Err(shoal_worker::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut written = lines.len();
    let mut last_flush = tokio::time::Instant::now();
    loop {
        let next = tokio::time::timeout_at(last_flush + FLUSH_EVERY, events.recv()).await;
        let ended = match next {
            Ok(Some(event)) => {
                serde_json::to_writer(&mut lines, &*event)
                    .map_err(|source| crate::Error::Json { what: "an event".into(), source })?;
                lines.push(b'\n');
                false
            }
            Ok(None) => true,
            Err(_elapsed) => false,
        };
        let due = last_flush.elapsed() >= FLUSH_EVERY;
        if lines.len() > written && (ended || due) {
            storage.put(&url, bytes::Bytes::from(lines.clone())).await?;
            written = lines.len();
        }
        if due {
            last_flush = tokio::time::Instant::now();
        }
        if ended {
            return Ok(());
        }
    }
}

/// The events recorded for a job under a job root, oldest first (every run of the job).
pub async fn read_events(storage: &Storage, job_root: &str, job_id: &str) -> Result<Vec<Event>> {
    let url = storage.resolve(job_root)?.join(&shoal_protocol::layout::events(job_id)).url;
    let bytes = storage.get_url(&url).await?;
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            serde_json::from_slice(line)
                .map_err(|source| crate::Error::Json { what: format!("{url}, line {}", i + 1), source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskRef {
        TaskRef { id: 3, key: TaskKey("scan-abc".into()), stage: 1, partition: 2 }
    }

    #[test]
    fn events_are_flat_json_objects_that_read_back() {
        let e = Event {
            time_us: 1_700_000_000_000_000,
            job_id: "j".into(),
            kind: EventKind::TaskStarted { task: task(), attempt: 2, slot: 1, speculative: true },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "task_started");
        assert_eq!(json["job_id"], "j");
        assert_eq!(json["task"]["key"], "scan-abc");
        assert_eq!(json["slot"], 1);
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order_and_then_the_end() {
        let mut events = Events::new();
        let mut a = events.subscribe();
        let mut b = events.subscribe();
        let publisher = events.into_publisher("j");
        for attempt in 1..=3 {
            publisher.emit(|| EventKind::BackupLaunched {
                task: task(),
                attempt,
                running_us: 5,
                median_us: None,
            });
        }
        drop(publisher);
        for sub in [&mut a, &mut b] {
            let mut seen = Vec::new();
            while let Some(e) = sub.recv().await {
                match &e.kind {
                    EventKind::BackupLaunched { attempt, .. } => seen.push(*attempt),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(seen, [1, 2, 3]);
        }
    }

    #[test]
    fn nothing_is_built_when_nobody_listens() {
        let publisher = Publisher::none("j");
        publisher.emit(|| panic!("built an event nobody reads"));
    }
}
