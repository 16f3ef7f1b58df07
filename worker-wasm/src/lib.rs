//! shoal's worker: runs one [`TaskSpec`](shoal_protocol::TaskSpec) on a stateless worker.
//!
//! Layout:
//! - [`exec`]: [`Worker::run`] — read inputs, run the fused pipeline, write, commit.
//! - [`scan`]: Parquet (projection, row-group selection and pruning), CSV and Arrow IPC reads.
//! - [`reader`]: a counting Parquet reader over `object_store`.
//! - [`pipeline`]: relational operators (filter, select, assign, sort, join, ...) as a DataFusion
//!   plan; also used to validate plans.
//! - [`session`]: DataFusion sessions (planning, one task's memory pool), in-memory frames and
//!   DataFusion error mapping, shared by `pipeline` and `aggregate`.
//! - [`memory`]: memory held by in-memory tables (the task memory limit).
//! - [`aggregate`]: group-by steps (partial, combine, final) over DataFusion accumulator states.
//! - [`shuffle`]: splitting output into hash/range/split buckets, one object per map task with a
//!   byte range per bucket; range-boundary sampling.
//! - [`sandbox`]: the wasmtime sandbox that runs user functions (WebAssembly components).
//! - [`storage`]: object storage by URL (local folder, `s3://`, `memory://`).
//! - [`schema`]: Arrow schema ↔ wire field lists.
//! - [`error`]: the worker's error type and its Retryable/Fatal classification.
//!
//! Binaries: `shoal-worker` serves tasks as JSON lines on stdin/stdout (the `processes`
//! executor's worker).
pub mod aggregate;
pub mod error;
pub mod exec;
pub mod memory;
pub mod pipeline;
pub mod reader;
pub mod sandbox;
pub mod scan;
pub mod schema;
pub mod session;
pub mod shuffle;
pub mod storage;

pub use error::{Error, Result};
pub use exec::{Worker, WorkerConfig};
