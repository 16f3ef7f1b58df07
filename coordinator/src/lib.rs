//! shoal's coordinator: lazy collections that lower to one task graph, the scheduler and the
//! executors that run any graph, the run around them, and the job-file front end.
//!
//! Layout (one room per concern; the graph, scheduler and executors never name an operator):
//! - [`client`]: [`Client`] — configuration, storage, the executor, module loading.
//! - [`collections`]: the lazy collections; today [`collections::dataframe`] (API, scan
//!   planning, logical plan, optimizer, strategies, explain, lowering).
//! - [`graph`]: the collection-agnostic task graph.
//! - [`scheduler`]: the per-task state table, depth-first ordering, concurrency, retries,
//!   speculation, spec building.
//! - [`events`]: the typed event stream (non-blocking subscribers, segments under `jobs/<id>.events/`).
//! - [`executor`]: the [`executor::Executor`] trait and the `sync`, `threads`, `processes` and
//!   `lambda` backends.
//! - [`run`]: running a graph (job record, resume, events, report), status, results.
//! - [`dashboard`]: the live dashboard, the history server and the saved HTML report, all
//!   drawn from the event stream.
//! - [`units`]: quantities as people read them.
//! - [`jobfile`]: TOML job files (`shoal run`, `shoal explain`): the datasets' `Operation` enum
//!   dispatching to one module per operation family, and the builder of their DataFrames.
//!
//! Binary: `shoal` (`main.rs`), the CLI.
pub mod client;
pub mod collections;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod executor;
pub mod graph;
pub mod jobfile;
pub mod run;
pub mod scheduler;
pub mod units;

pub use client::{Client, Config, FunctionModule};
pub use collections::array::{Array, Arrays, Axes, Chunks, DType, Index, NdArray};
pub use collections::bag::{Bag, Bags, Binop, Item, Key, TextRead};
pub use collections::dataframe::plan::JoinHint;
pub use collections::dataframe::{Agg, DataFrame, ExprArg, GroupBy, Merge, WriteSummary};
pub use collections::delayed::{Arg, Delayed, DelayedFunction};
pub use error::{Error, Result};
pub use executor::ExecutorKind;
pub use shoal_protocol::PartFormat;
