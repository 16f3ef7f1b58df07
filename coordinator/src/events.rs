//! The event stream of a run: typed, timestamped, serialisable events, published without
//! blocking to any number of subscribers (the progress bar, the events file, the dashboard).
//!
//! Publishing never waits for a subscriber: each subscriber has its own unbounded queue, so a
//! slow one costs memory (its backlog), never scheduling time, and never loses an event. A
//! subscriber that takes its events in batches ([`Subscription::recv_batch`]: the first event and
//! what follows it within 25 ms) is woken once per batch, not once per event: a run of a million
//! tiny tasks publishes two million events, and a wake-up each would cost more than the tasks.
//!
//! A run's events are also recorded under the job root, one JSON object per line, in segments
//! `jobs/<job_id>.events/<run>-<segment>.jsonl`: every [`FLUSH_EVERY`] the lines that arrived
//! since the last segment become the next one. Object stores cannot append, and rewriting one
//! growing object every few seconds costs time quadratic in the run's length (a run of a million
//! tasks has about 700 MB of events). A finished or interrupted run, and every earlier run of the
//! same job, can be replayed with [`read_events`].

use crate::error::Result;
use crate::graph::TaskGraph;
use crate::run::report::{Prices, RunReport};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use shoal_protocol::{TaskFailure, TaskKey, TaskMetrics, layout};
use shoal_worker::io::storage::{Location, Storage};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, mpsc};

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
    subscribers: Vec<Subscriber>,
}

/// The publishing end of one subscription: its channel, and its signal that the run ended.
#[derive(Debug)]
struct Subscriber {
    tx: mpsc::UnboundedSender<Arc<Event>>,
    ended: Arc<Ended>,
}

/// A subscription's pair of ends, connected.
fn pair() -> (Subscriber, Subscription) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ended = Arc::new(Ended::default());
    (Subscriber { tx, ended: ended.clone() }, Subscription { rx, ended })
}

/// Set once a run has published its last event (or its publisher is gone), so that a batch
/// being gathered ends then instead of when its [`BATCH_EVERY`] is up: the caller of a run
/// waits for its subscribers, and a run's end is worth no wait. Signalled once per run, so
/// publishing still wakes a subscriber at most once per batch.
#[derive(Debug, Default)]
struct Ended {
    done: Mutex<bool>,
    /// Wakes a thread gathering with [`Subscription::blocking_recv_batch`].
    cond: Condvar,
    /// Wakes an async gatherer (a permit is kept when none waits yet).
    notify: Notify,
}

impl Ended {
    fn set(&self) {
        *self.done() = true;
        self.cond.notify_all();
        self.notify.notify_one();
    }

    fn done(&self) -> std::sync::MutexGuard<'_, bool> {
        self.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_set(&self) -> bool {
        *self.done()
    }

    /// Waits until `every` is up or the run ended.
    async fn wait(&self, every: Duration) {
        if !self.is_set() {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.notify.notified() => {}
            }
        }
    }

    /// [`wait`](Self::wait) for a plain thread.
    fn blocking_wait(&self, every: Duration) {
        let waited = self.cond.wait_timeout_while(self.done(), every, |done| !*done);
        drop(waited);
    }
}

impl Events {
    /// No subscribers (the run still writes its events file).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscriber, receiving every event of the run in order.
    pub fn subscribe(&mut self) -> Subscription {
        let (subscriber, subscription) = pair();
        self.subscribers.push(subscriber);
        subscription
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
    ended: Arc<Ended>,
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

    /// The next events: the first to arrive, and every event published in the [`BATCH_EVERY`]
    /// after it, or until the run ends if it ends sooner; `None` once the run has ended and
    /// every event was received. Publishing wakes this subscriber at most once per batch, not
    /// once per event. Not cancel-safe (a batch being gathered is lost): see
    /// [`recv`](Self::recv).
    pub async fn recv_batch(&mut self) -> Option<Vec<Arc<Event>>> {
        let first = self.rx.recv().await?;
        Some(self.gather(first).await)
    }

    /// [`recv_batch`](Self::recv_batch) for a plain thread (not from inside an async runtime).
    pub fn blocking_recv_batch(&mut self) -> Option<Vec<Arc<Event>>> {
        self.blocking_recv_batch_within(BATCH_EVERY)
    }

    fn blocking_recv_batch_within(&mut self, every: Duration) -> Option<Vec<Arc<Event>>> {
        let mut batch = vec![self.rx.blocking_recv()?];
        self.ended.blocking_wait(every);
        self.drain(&mut batch);
        Some(batch)
    }

    /// `first` and the events published in the [`BATCH_EVERY`] after it (or until the run
    /// ended), taken without a waker.
    pub(crate) async fn gather(&mut self, first: Arc<Event>) -> Vec<Arc<Event>> {
        self.gather_within(first, BATCH_EVERY).await
    }

    async fn gather_within(&mut self, first: Arc<Event>, every: Duration) -> Vec<Arc<Event>> {
        let mut batch = vec![first];
        self.ended.wait(every).await;
        self.drain(&mut batch);
        batch
    }

    fn drain(&mut self, batch: &mut Vec<Arc<Event>>) {
        while let Ok(event) = self.rx.try_recv() {
            batch.push(event);
        }
    }
}

/// How long a batch gathers after its first event: often enough for a progress bar or a page
/// redrawn as events come, rarely enough that waking subscribers costs nothing.
pub const BATCH_EVERY: Duration = Duration::from_millis(25);

/// Publishes a run's events. Building an event is skipped entirely when nobody listens.
#[derive(Debug)]
pub struct Publisher {
    job_id: String,
    subscribers: Vec<Subscriber>,
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
        let last = matches!(event.kind, EventKind::JobFinished { .. });
        for s in &self.subscribers {
            // A subscriber that went away just stops receiving.
            let _ = s.tx.send(event.clone());
            if last {
                s.ended.set();
            }
        }
    }

    /// One more subscriber (the run's own: the events file).
    pub(crate) fn subscribe(&mut self) -> Subscription {
        let (subscriber, subscription) = pair();
        self.subscribers.push(subscriber);
        subscription
    }
}

impl Drop for Publisher {
    /// A run that ends without its last event (a scheduler run without a client) ends too.
    fn drop(&mut self) {
        for s in &self.subscribers {
            s.ended.set();
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// How often a run's new events become a segment under the job root while the run goes on.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Records a run's events under the job root until the stream ends: at most every
/// [`FLUSH_EVERY`] while events arrive, and once at the end, the lines that arrived since the
/// last write become segment `jobs/<job_id>.events/<run>-<segment>.jsonl`. Each line is written
/// once; an interrupted run loses at most its last seconds of events.
pub(crate) async fn write_jsonl(
    storage: Arc<Storage>,
    root: Location,
    job_id: &str,
    mut events: Subscription,
) -> Result<()> {
    let run = now_us();
    let mut segment = 0u32;
    let mut lines = Vec::new();
    let mut last_write = tokio::time::Instant::now();
    loop {
        // Lines waiting to be written are written when due even if no event comes.
        let next = if lines.is_empty() {
            events.recv().await
        } else {
            match tokio::time::timeout_at(last_write + FLUSH_EVERY, events.recv()).await {
                Ok(next) => next,
                Err(_due) => {
                    write_segment(&storage, &root, job_id, run, &mut segment, &mut lines).await?;
                    last_write = tokio::time::Instant::now();
                    continue;
                }
            }
        };
        let Some(first) = next else {
            if !lines.is_empty() {
                write_segment(&storage, &root, job_id, run, &mut segment, &mut lines).await?;
            }
            return Ok(());
        };
        for event in events.gather(first).await {
            serde_json::to_writer(&mut lines, &*event)
                .map_err(|source| crate::Error::Json { what: "an event".into(), source })?;
            lines.push(b'\n');
        }
        if last_write.elapsed() >= FLUSH_EVERY {
            write_segment(&storage, &root, job_id, run, &mut segment, &mut lines).await?;
            last_write = tokio::time::Instant::now();
        }
    }
}

/// Writes `lines` as the run's next segment, and empties them.
async fn write_segment(
    storage: &Storage,
    root: &Location,
    job_id: &str,
    run: u64,
    segment: &mut u32,
    lines: &mut Vec<u8>,
) -> Result<()> {
    let url = root.join(&layout::events_segment(job_id, run, *segment)).url;
    // Cut to its length: `Bytes` would keep the vector's spare capacity (and an in-memory job
    // root, all of it).
    storage.put(&url, bytes::Bytes::from(std::mem::take(lines).into_boxed_slice())).await?;
    *segment += 1;
    Ok(())
}

/// The events recorded for a job under a job root, oldest first (every run of the job).
pub async fn read_events(storage: &Storage, job_root: &str, job_id: &str) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for (url, bytes) in segments(storage, job_root, job_id).await? {
        for (i, line) in lines(&bytes) {
            events.push(
                serde_json::from_slice(line)
                    .map_err(|source| crate::Error::Json { what: format!("{url}, line {i}"), source })?,
            );
        }
    }
    Ok(events)
}

/// [`read_events`] up to the first line that does not parse (a run killed mid-write, a
/// truncated copy): the events before it, and that line's number, counted over all of the job's
/// segments in order (as `cat` of them would number it).
pub async fn read_events_lenient(
    storage: &Storage,
    job_root: &str,
    job_id: &str,
) -> Result<(Vec<Event>, Option<usize>)> {
    let mut events = Vec::new();
    let mut before = 0;
    for (_, bytes) in segments(storage, job_root, job_id).await? {
        let mut count = 0;
        for (i, line) in lines(&bytes) {
            match serde_json::from_slice(line) {
                Ok(event) => events.push(event),
                Err(_) => return Ok((events, Some(before + i))),
            }
            count = i;
        }
        before += count;
    }
    Ok((events, None))
}

/// The job ids under `job_root` that have recorded events, with the size of their events.
pub async fn recorded_jobs(storage: &Storage, job_root: &str) -> Result<Vec<(String, u64)>> {
    let pattern = format!("{}/jobs/*.events/*.jsonl", job_root.trim_end_matches('/'));
    let mut jobs: std::collections::BTreeMap<String, u64> = Default::default();
    for o in list_or_none(storage, &pattern).await? {
        let Some(job) = o.url.rsplit('/').nth(1).and_then(|dir| dir.strip_suffix(".events")) else {
            continue;
        };
        *jobs.entry(job.to_string()).or_default() += o.size;
    }
    Ok(jobs.into_iter().collect())
}

/// The numbered non-empty lines of a segment (numbered from 1, blank lines counted).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes.split(|&b| b == b'\n').enumerate().map(|(i, line)| (i + 1, line)).filter(|(_, l)| !l.is_empty())
}

/// The segments of a job's events, in the order written, read concurrently.
async fn segments(storage: &Storage, job_root: &str, job_id: &str) -> Result<Vec<(String, bytes::Bytes)>> {
    if job_id.is_empty() || job_id.contains(['/', '*', '?', '[', '{']) || job_id.contains("..") {
        return Err(crate::Error::Invalid(format!("'{job_id}' is not a job id")));
    }
    let dir = storage.resolve(job_root)?.join(&layout::events(job_id)).url;
    let mut objects = list_or_none(storage, &format!("{}/*.jsonl", dir.trim_end_matches('/'))).await?;
    if objects.is_empty() {
        return Err(crate::Error::NotFound(format!("{dir} (the events of job {job_id})")));
    }
    objects.sort_by(|a, b| a.url.cmp(&b.url));
    futures::stream::iter(objects)
        .map(|o| async move {
            let bytes = storage.get_url(&o.url).await?;
            Ok::<_, crate::Error>((o.url, bytes))
        })
        .buffered(8)
        .try_collect()
        .await
}

async fn list_or_none(storage: &Storage, pattern: &str) -> Result<Vec<shoal_protocol::ObjectRef>> {
    match storage.list(pattern).await {
        Ok(objects) => Ok(objects),
        Err(shoal_worker::Error::NotFound { .. }) => Ok(vec![]),
        Err(e) => Err(e.into()),
    }
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

    fn finished() -> EventKind {
        EventKind::JobFinished { ok: true, error: None, report: None }
    }

    /// A batch being gathered when the run ends ends then, with the run's last event, however
    /// long batches gather (an hour here; the bound on each wait only turns a batch that missed
    /// the end into a failure instead of a hung test).
    #[tokio::test]
    async fn a_batch_ends_with_the_run() {
        let hour = Duration::from_secs(3600);
        let bound = Duration::from_secs(60);
        let mut events = Events::new();
        let mut sub = events.subscribe();
        let mut thread_sub = events.subscribe();
        let publisher = events.into_publisher("j");
        publisher.emit(|| started(1));
        let first = sub.recv().await.unwrap();
        let gathering = tokio::spawn(async move { sub.gather_within(first, hour).await });
        let thread = std::thread::spawn(move || thread_sub.blocking_recv_batch_within(hour));
        tokio::task::yield_now().await;
        publisher.emit(|| started(2));
        publisher.emit(finished);
        let batch =
            tokio::time::timeout(bound, gathering).await.expect("the batch ended with the run").unwrap();
        let kinds = |batch: &[Arc<Event>]| batch.iter().map(|e| format!("{:?}", e.kind)).collect::<Vec<_>>();
        assert_eq!(kinds(&batch), [started(1), started(2), finished()].map(|k| format!("{k:?}")));
        let waited = tokio::time::timeout(bound, tokio::task::spawn_blocking(move || thread.join()))
            .await
            .expect("the thread's batch ended with the run");
        let thread_batch = waited.unwrap().unwrap().unwrap();
        assert_eq!(kinds(&thread_batch)[0], format!("{:?}", started(1)));
        assert_eq!(kinds(&thread_batch).last(), Some(&format!("{:?}", finished())));
        // A publisher dropped without the last event ends the run too.
        let mut events = Events::new();
        let mut sub = events.subscribe();
        let publisher = events.into_publisher("j");
        publisher.emit(|| started(1));
        let first = sub.recv().await.unwrap();
        drop(publisher);
        let batch =
            tokio::time::timeout(bound, sub.gather_within(first, hour)).await.expect("ended by the drop");
        assert_eq!(batch.len(), 1);
    }

    fn started(attempt: u32) -> EventKind {
        EventKind::TaskStarted { task: task(), attempt, slot: 0, speculative: false }
    }

    fn attempts(events: &[Event]) -> Vec<u32> {
        events
            .iter()
            .map(|e| match e.kind {
                EventKind::TaskStarted { attempt, .. } => attempt,
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn runs_record_segments_that_replay_in_order() {
        let storage = Arc::new(Storage::default());
        let root = "memory://events-test/root";
        for run in [[1, 2, 3], [4, 5, 6]] {
            let mut events = Events::new();
            let mut batches = events.subscribe();
            let mut publisher = events.into_publisher("j");
            let writer = tokio::spawn({
                let (storage, events) = (storage.clone(), publisher.subscribe());
                let root = storage.resolve(root).unwrap();
                async move { write_jsonl(storage, root, "j", events).await }
            });
            for attempt in run {
                publisher.emit(|| started(attempt));
            }
            drop(publisher);
            writer.await.unwrap().unwrap();
            let mut seen = Vec::new();
            while let Some(batch) = batches.recv_batch().await {
                seen.extend(batch.iter().map(|e| (**e).clone()));
            }
            assert_eq!(attempts(&seen), run);
        }
        let listed = storage.list(&format!("{root}/jobs/j.events/*.jsonl")).await.unwrap();
        assert_eq!(listed.len(), 2, "one segment per short run: {listed:?}");
        let events = read_events(&storage, root, "j").await.unwrap();
        assert_eq!(attempts(&events), [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            recorded_jobs(&storage, root).await.unwrap(),
            [("j".to_string(), listed[0].size + listed[1].size)]
        );

        // Segments are read in name order, whatever order they were written in, and a damaged
        // line is numbered over the whole log.
        let line = |attempt| {
            let e = Event { time_us: 1, job_id: "k".into(), kind: started(attempt) };
            format!("{}\n", serde_json::to_string(&e).unwrap())
        };
        let put = |name: &str, text: String| {
            let url = format!("{root}/jobs/k.events/{name}");
            let storage = storage.clone();
            async move { storage.put(&url, bytes::Bytes::from(text)).await.unwrap() }
        };
        put("00000000000000000002-0000000000.jsonl", line(3) + "{\"time_us\": 1, \"jo").await;
        put("00000000000000000001-0000000001.jsonl", line(2)).await;
        put("00000000000000000001-0000000000.jsonl", line(0) + &line(1)).await;
        let (events, damaged) = read_events_lenient(&storage, root, "k").await.unwrap();
        assert_eq!((attempts(&events), damaged), (vec![0, 1, 2, 3], Some(5)));
        let strict = read_events(&storage, root, "k").await.unwrap_err().to_string();
        assert!(strict.contains("00000000000000000002-0000000000.jsonl, line 2"), "{strict}");
        let missing = read_events(&storage, root, "none").await.unwrap_err().to_string();
        assert!(missing.contains("events of job none"), "{missing}");
        assert!(read_events(&storage, root, "../j").await.is_err());
    }

    #[test]
    fn nothing_is_built_when_nobody_listens() {
        let publisher = Publisher::none("j");
        publisher.emit(|| panic!("built an event nobody reads"));
    }
}
