//! Data in and out of a task: object storage by URL, scans of input files (Parquet; CSV and
//! JSON as text files: compressed, encoded, in blocks), the codecs of what tasks write (Arrow
//! IPC intermediates; Parquet, CSV and JSON-lines parts), Arrow schemas on the wire, and the
//! memory decoded tables hold.
//!
//! Nothing here knows operators, pipelines or the commit protocol: `io` imports only the crate's
//! [`error`](crate::error).

pub(crate) mod credentials;
pub mod csv;
pub mod ipc;
pub mod json;
pub mod lines;
pub mod loaded;
pub mod memory;
pub mod parquet;
pub mod reader;
pub mod scan;
pub mod schema;
pub mod storage;
pub mod text_parts;
pub mod textfile;
pub mod zarr;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// A table by value: schema and batches.
pub type Table = (SchemaRef, Vec<RecordBatch>);

/// Tables the unit tests of `io` and `ops` share.
#[cfg(test)]
pub(crate) mod fixtures {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    /// Columns `k` (the keys) and `s` (`"v{k}"`, null where the key is).
    pub fn keyed_batch(keys: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let s: StringArray = keys.iter().map(|k| k.map(|v| format!("v{v}"))).collect();
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(keys)), Arc::new(s)]).unwrap()
    }
}
