//! shoal's coordinator: lazy collections, the logical plan and its optimizer, lowering to a
//! task graph, the scheduler and the executors, and the job-file front end.
//!
//! Layout:
//! - [`client`]: [`Client`] — configuration, scan planning from object metadata (Parquet
//!   footers, CSV samples; never row data), module loading, running graphs with resume.
//! - [`read`]: scan planning (`Client::read_parquet`, `Client::read_csv`) from object metadata.
//! - [`dataframe`]: the lazy [`DataFrame`] API.
//! - [`aggregates`]: expressions over aggregates in `agg`, split into aggregate calls and a
//!   scalar step after the final aggregation.
//! - [`plan`]: the logical plan and the optimizer (projection and predicate pushdown).
//! - [`lower`]: plan → [`graph::TaskGraph`], fusing per-partition operators into one task.
//! - [`graph`]: the collection-agnostic task graph.
//! - [`scheduler`]: task states, depth-first ordering, concurrency, retries, events.
//! - [`executor`]: the [`executor::Executor`] trait and the `sync`, `threads` and `processes`
//!   backends.
//! - [`job`]: TOML job files (`shoal run`, `shoal explain`).
pub mod aggregates;
pub mod client;
pub mod dataframe;
pub mod error;
pub mod events;
pub mod executor;
pub mod graph;
pub mod job;
pub mod lower;
pub mod plan;
pub mod read;
pub mod report;
pub mod scheduler;

pub use client::{Client, Config, FunctionModule};
pub use dataframe::{Agg, DataFrame, ExprArg, GroupBy, Merge, WriteSummary};
pub use error::{Error, Result};
pub use executor::ExecutorKind;
