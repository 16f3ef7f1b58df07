//! The per-task state table: one [`TaskState`] per task, the ready queue, and the scheduler's
//! worker slots. Every transition of a task goes through a method here.

use crate::graph::TaskGraph;
use shoal_protocol::Manifest;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Some dependency has not committed yet (or a retry's backoff has not elapsed).
    Waiting,
    Ready,
    Running,
    Committed,
    Failed,
}

/// Everything the scheduler knows about one task.
#[derive(Debug)]
pub(super) struct TaskState {
    pub state: State,
    /// Dependencies not committed yet.
    missing: usize,
    /// Tasks that read this one's output.
    dependents: Vec<usize>,
    pub manifest: Option<Manifest>,
    /// Attempts launched so far (the next one is `attempts + 1`).
    pub attempts: u32,
    /// Attempts in flight.
    pub inflight: u32,
    /// When the oldest attempt in flight started.
    pub started: Option<Instant>,
    /// Whether it got a backup attempt.
    pub speculated: bool,
}

/// Ready-queue priority: depth first (later stages first, so results are consumed as soon as
/// they exist and memory stays bounded), then partition order.
type Priority = (usize, Reverse<usize>);

/// The state of every task of a graph.
#[derive(Debug)]
pub(super) struct Tasks {
    tasks: Vec<TaskState>,
    ready: BinaryHeap<(Priority, usize)>,
    /// Tasks with an attempt in flight, in index order (straggler checks walk it).
    running: BTreeSet<usize>,
    committed: usize,
}

impl Tasks {
    /// The table for `graph`, with the tasks an earlier run committed already done and every
    /// task whose dependencies are all committed ready.
    pub fn new(graph: &TaskGraph, mut committed: HashMap<usize, Manifest>) -> Self {
        let mut tasks: Vec<TaskState> = graph
            .tasks
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let manifest = committed.remove(&i);
                TaskState {
                    state: if manifest.is_some() { State::Committed } else { State::Waiting },
                    missing: node.deps.len(),
                    dependents: Vec::new(),
                    manifest,
                    attempts: 0,
                    inflight: 0,
                    started: None,
                    speculated: false,
                }
            })
            .collect();
        for (i, node) in graph.tasks.iter().enumerate() {
            for &d in &node.deps {
                tasks[d].dependents.push(i);
                if tasks[d].state == State::Committed {
                    tasks[i].missing -= 1;
                }
            }
        }
        let committed = tasks.iter().filter(|t| t.state == State::Committed).count();
        let mut table = Self { tasks, ready: BinaryHeap::new(), running: BTreeSet::new(), committed };
        for i in 0..graph.len() {
            if table.tasks[i].state == State::Waiting && table.tasks[i].missing == 0 {
                table.make_ready(graph, i);
            }
        }
        table
    }

    pub fn get(&self, task: usize) -> &TaskState {
        &self.tasks[task]
    }

    /// Tasks committed so far (by this run or an earlier one).
    pub fn committed(&self) -> usize {
        self.committed
    }

    pub fn manifest(&self, task: usize) -> Option<&Manifest> {
        self.tasks[task].manifest.as_ref()
    }

    /// Queues a waiting task.
    pub fn make_ready(&mut self, graph: &TaskGraph, task: usize) {
        let t = &mut self.tasks[task];
        if t.state == State::Waiting {
            t.state = State::Ready;
            let node = &graph.tasks[task];
            self.ready.push(((node.stage, Reverse(node.index)), task));
        }
    }

    /// The ready task to run next.
    pub fn pop_ready(&mut self) -> Option<usize> {
        self.ready.pop().map(|(_, task)| task)
    }

    /// A new attempt of `task` is in flight; returns its number.
    pub fn start_attempt(&mut self, task: usize) -> u32 {
        let t = &mut self.tasks[task];
        t.attempts += 1;
        t.inflight += 1;
        t.state = State::Running;
        t.started.get_or_insert_with(Instant::now);
        self.running.insert(task);
        t.attempts
    }

    /// An attempt of `task` has ended, whatever its outcome.
    pub fn end_attempt(&mut self, task: usize) {
        let t = &mut self.tasks[task];
        t.inflight = t.inflight.saturating_sub(1);
        if t.inflight == 0 {
            t.started = None;
            self.running.remove(&task);
        }
    }

    /// Whether `task` is done for good (committed or failed): later attempts are discarded.
    pub fn is_settled(&self, task: usize) -> bool {
        matches!(self.tasks[task].state, State::Committed | State::Failed)
    }

    /// Records `task`'s commit and queues the dependents it was the last dependency of.
    pub fn commit(&mut self, graph: &TaskGraph, task: usize, manifest: Manifest) {
        let t = &mut self.tasks[task];
        t.state = State::Committed;
        t.manifest = Some(manifest);
        self.committed += 1;
        for i in 0..self.tasks[task].dependents.len() {
            let d = self.tasks[task].dependents[i];
            self.tasks[d].missing -= 1;
            if self.tasks[d].missing == 0 {
                self.make_ready(graph, d);
            }
        }
    }

    /// `task` waits for a retry.
    pub fn wait(&mut self, task: usize) {
        self.tasks[task].state = State::Waiting;
    }

    pub fn fail(&mut self, task: usize) {
        self.tasks[task].state = State::Failed;
    }

    pub fn mark_speculated(&mut self, task: usize) {
        self.tasks[task].speculated = true;
    }

    /// Tasks with exactly one attempt in flight and no backup yet: the candidates for one.
    pub fn backup_candidates(&self) -> impl Iterator<Item = usize> + '_ {
        self.running.iter().copied().filter(|&t| self.tasks[t].inflight == 1 && !self.tasks[t].speculated)
    }

    pub fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// The tasks with an attempt in flight.
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        self.running.iter().copied()
    }

    /// Every task's manifest (`None`: never committed).
    pub fn into_manifests(self) -> impl Iterator<Item = Option<Manifest>> {
        self.tasks.into_iter().map(|t| t.manifest)
    }
}

/// The scheduler's worker slots (`0..concurrency`): each attempt in flight holds one, and
/// events name it, so a timeline can draw one row per slot. The lowest free slot goes first.
#[derive(Debug)]
pub(super) struct Slots {
    free: BinaryHeap<Reverse<usize>>,
    total: usize,
}

impl Slots {
    pub fn new(total: usize) -> Self {
        Self { free: (0..total).map(Reverse).collect(), total }
    }

    pub fn take(&mut self) -> Option<usize> {
        self.free.pop().map(|Reverse(s)| s)
    }

    pub fn give_back(&mut self, slot: usize) {
        self.free.push(Reverse(slot));
    }

    pub fn available(&self) -> bool {
        !self.free.is_empty()
    }

    /// Slots free.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Slots in use.
    pub fn busy(&self) -> usize {
        self.total - self.free.len()
    }
}
