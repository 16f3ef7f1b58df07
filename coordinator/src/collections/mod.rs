//! The lazy collections. Each records operations into its own logical plan, optimizes it, and
//! lowers it to the one [`TaskGraph`](crate::graph::TaskGraph) every collection shares; the
//! scheduler, the executors and the run never see a collection. A collection is the only
//! coordinator code that names operators of the protocol (its family of them).
//!
//! - [`dataframe`]: the DataFrame (pandas-like), over the `table` operator family.
//! - [`bag`]: the Bag (`dask.bag`-like: JSON items), over the `items` family; it reads a
//!   DataFrame's rows (`to_bag`) and hands its items to one (`to_dataframe`) through
//!   `TaskGraph::extend`, so neither collection's plan knows the other's operators.
//! - [`delayed`]: Delayed values (`dask.delayed`), over the `calls` operator family.
//! - [`array`]: the Array (`dask.array`-like: chunked n-d arrays on Zarr, memory bounded at
//!   plan time), over the `chunks` family; `DataFrame::to_array` reads a DataFrame's
//!   partitions through `TaskGraph::extend`.

pub mod array;
pub mod bag;
pub mod dataframe;
pub mod delayed;
