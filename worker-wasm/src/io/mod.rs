//! Data in and out of a task: object storage by URL, scans of input files, the codecs of what
//! tasks write (Arrow IPC intermediates, Parquet parts), Arrow schemas on the wire, and the
//! memory decoded tables hold.
//!
//! Nothing here knows operators, pipelines or the commit protocol: `io` imports only the crate's
//! [`error`](crate::error).

pub mod ipc;
pub mod memory;
pub mod parquet;
pub mod reader;
pub mod scan;
pub mod schema;
pub mod storage;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// A table by value: schema and batches.
pub type Table = (SchemaRef, Vec<RecordBatch>);
