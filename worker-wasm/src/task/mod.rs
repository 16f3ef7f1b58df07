//! The task lifecycle: [`Worker::run`] takes one [`TaskSpec`](shoal_protocol::TaskSpec) to a
//! committed manifest.
//!
//! Commit protocol (DESIGN.md): an attempt writes its files under
//! `data/<task_key>/<attempt_id>/`, then creates `commits/<task_key>.json` only if absent. The
//! first commit wins; a losing attempt returns the winner's manifest and deletes its own files.
//! User-visible parts (Parquet, CSV, JSON lines) have deterministic names, so a retry rewrites identical bytes.
//!
//! Layout:
//! - `run`: [`Worker`] and the steps of a task.
//! - `inputs`: reading the inputs, by port, within the task's memory limit.
//! - `functions`: user functions as the task runs them (components loaded once, sandbox calls,
//!   metrics).
//! - `malloc`: the allocator's thresholds, set once per process by [`Worker::new`].
//! - `output`: writing the output object (IPC intermediate, shuffle object, or a user-visible part).
//! - [`commit`]: the create-if-absent manifest; reading committed manifests.

pub mod commit;
mod functions;
mod inputs;
mod malloc;
mod output;
mod run;

pub use run::{Worker, WorkerConfig};
