//! The lazy collections. Each records operations into its own logical plan, optimizes it, and
//! lowers it to the one [`TaskGraph`](crate::graph::TaskGraph) every collection shares; the
//! scheduler, the executors and the run never see a collection. A collection is the only
//! coordinator code that names operators of the protocol (its family of them).
//!
//! - [`dataframe`]: the DataFrame (pandas-like), over the `table` operator family.
//! - [`delayed`]: Delayed values (`dask.delayed`), over the `calls` operator family.

pub mod dataframe;
pub mod delayed;
