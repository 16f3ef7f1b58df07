//! Executors carry a [`TaskSpec`] to a worker and bring back its outcome. The scheduler knows
//! them only through [`Executor`].
//!
//! - [`InProcess`]: `sync` (one task at a time, deterministic order) and `threads` (a pool of
//!   concurrent tasks in this process, the default).
//! - [`Processes`]: a pool of local `shoal-worker` processes speaking JSON lines.
//! - [`Lambda`]: invocations of the generic worker function (`shoal-lambda`).

mod in_process;
mod lambda;
mod processes;

pub use in_process::InProcess;
pub use lambda::{Lambda, LambdaOptions, THROTTLE_RETRIES};
pub use processes::{Processes, find_worker_binary};

use async_trait::async_trait;
use shoal_protocol::{TaskOutcome, TaskSpec};

/// Runs task specs somewhere.
#[async_trait]
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Short name for messages (`sync`, `threads`, `processes`).
    fn name(&self) -> &str;
    /// How many tasks may run at once.
    fn concurrency(&self) -> usize;
    /// Runs one attempt of a task. Transport failures (a worker that died) are reported as
    /// retryable [`shoal_protocol::TaskFailure`]s, never as panics.
    async fn execute(&self, spec: TaskSpec) -> TaskOutcome;
}

/// A spawned task, aborted when this is dropped before it finishes: an attempt or a run whose
/// caller stopped waiting does not go on in the background.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The executors a user can choose by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecutorKind {
    /// In-process, one task at a time: for debugging.
    Sync,
    /// In-process pool of concurrent tasks.
    #[default]
    Threads,
    /// Local `shoal-worker` processes: isolation, like Dask's processes scheduler.
    Processes,
    /// Cloud functions: invocations of the generic worker function (`--function`).
    Lambda,
}

impl std::fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExecutorKind::Sync => "sync",
            ExecutorKind::Threads => "threads",
            ExecutorKind::Processes => "processes",
            ExecutorKind::Lambda => "lambda",
        })
    }
}
