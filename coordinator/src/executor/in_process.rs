use super::{AbortOnDrop, Executor};
use async_trait::async_trait;
use shoal_protocol::{FailureKind, TaskFailure, TaskOutcome, TaskSpec};
use shoal_worker::Worker;
use std::sync::Arc;

/// Runs tasks on a [`Worker`] inside this process: `sync` with concurrency 1, `threads` with N
/// tasks at once on the tokio runtime (user functions run on its blocking pool).
#[derive(Debug, Clone)]
pub struct InProcess {
    worker: Arc<Worker>,
    concurrency: usize,
    name: &'static str,
}

impl InProcess {
    pub fn sync(worker: Arc<Worker>) -> Self {
        Self { worker, concurrency: 1, name: "sync" }
    }

    pub fn threads(worker: Arc<Worker>, threads: usize) -> Self {
        Self { worker, concurrency: threads.max(1), name: "threads" }
    }
}

#[async_trait]
impl Executor for InProcess {
    fn name(&self) -> &str {
        self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn execute(&self, spec: TaskSpec) -> TaskOutcome {
        if self.concurrency == 1 {
            return self.worker.run(&spec).await;
        }
        // A task of its own, so tasks run in parallel across the runtime's threads. Aborted if
        // the scheduler drops this attempt (a duplicate whose task has committed): an attempt
        // stopped before its commit leaves only unreferenced files.
        let worker = self.worker.clone();
        let key = spec.task_key.clone();
        let mut handle = AbortOnDrop(tokio::spawn(async move { worker.run(&spec).await }));
        match (&mut handle.0).await {
            Ok(outcome) => outcome,
            Err(e) => Err(TaskFailure {
                kind: FailureKind::Fatal,
                task_key: key,
                input: None,
                message: format!("worker task panicked: {e}"),
            }),
        }
    }
}
