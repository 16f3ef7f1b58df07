//! shoal's worker: runs one [`TaskSpec`](shoal_protocol::TaskSpec) on a stateless worker.
//!
//! Layout, one room per concern:
//! - [`task`]: the task lifecycle — [`Worker::run`] reads the inputs, runs the pipeline, writes
//!   the output and commits it with a create-if-absent manifest. The only room that commits, and
//!   the only one that imports all the others.
//! - [`io`]: data in and out — object storage by URL, scans (Parquet with pruning, CSV, Arrow
//!   IPC), the counting Parquet reader, the Arrow IPC codec of intermediates and shuffles,
//!   user-visible parts (Parquet, CSV and JSON lines as pandas writes them), schemas on the
//!   wire, memory held by tables. Knows no operators.
//! - [`ops`]: operators, by family: [`ops::table`] (relational steps as one DataFusion plan,
//!   aggregation steps, joins, shuffle partitioning, sampling and boundaries, `melt`); the
//!   families of Bag, Array and Delayed go beside it. Never touches storage or the sandbox:
//!   user functions are called through [`ops::Functions`], which `task` provides. Also used by
//!   the coordinator to validate plans with the code that runs them.
//! - [`sandbox`]: the wasmtime sandbox that runs user functions (engine and calls, compiled
//!   component cache, memory and time limits, log capture). Knows nothing of tasks; tables only
//!   as the Arrow IPC bytes a guest gets and returns.
//! - [`error`]: the worker's error type and its Retryable/Fatal classification.
//!
//! Binaries (`src/bin/`, thin): `shoal-worker` serves tasks as JSON lines on stdin/stdout (the
//! `processes` executor's worker); `shoal-lambda` is the same worker as an AWS Lambda handler
//! (`lambda_runtime`), one task per invocation.

pub mod error;
pub mod io;
pub mod ops;
pub mod sandbox;
pub mod task;

pub use error::{Error, Result};
pub use task::{Worker, WorkerConfig};
