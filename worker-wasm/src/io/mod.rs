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
pub(crate) mod local;
pub mod memory;
pub mod parquet;
pub mod reader;
pub mod scan;
pub mod schema;
pub mod storage;
pub mod text_parts;
pub mod textfile;
pub mod zarr;

use crate::error::Result;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

/// A table by value: schema and batches.
pub type Table = (SchemaRef, Vec<RecordBatch>);

/// Rows arriving batch by batch: a task's main input read while its plan consumes it, or a
/// plan's output on its way to the writer.
pub struct Stream {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch>>,
}

impl Stream {
    /// All the rows in memory if they hold at most `limit` bytes ([`memory::held_bytes`]);
    /// otherwise the same rows as a stream again (those read so far, then the rest), read no
    /// further than the first batch past the limit.
    pub async fn read_within(self, limit: u64) -> Result<std::result::Result<Table, Stream>> {
        let Stream { schema, mut batches } = self;
        let mut read = Vec::new();
        let mut held = memory::Held::default();
        while let Some(batch) = batches.try_next().await? {
            held.add(&batch);
            read.push(batch);
            if held.bytes() as u64 > limit {
                let again = futures::stream::iter(read.into_iter().map(Ok)).chain(batches).boxed();
                return Ok(Err(Stream { schema, batches: again }));
            }
        }
        Ok(Ok((schema, read)))
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// A task's rows: held whole, or arriving batch by batch.
#[derive(Debug)]
pub enum Data {
    Table(Table),
    Stream(Stream),
}

impl Data {
    pub fn schema(&self) -> &SchemaRef {
        match self {
            Data::Table((schema, _)) => schema,
            Data::Stream(s) => &s.schema,
        }
    }

    /// All the rows in memory (a stream read to its end).
    pub async fn into_table(self) -> Result<Table> {
        match self {
            Data::Table(t) => Ok(t),
            Data::Stream(Stream { schema, batches }) => Ok((schema, batches.try_collect().await?)),
        }
    }

    /// The rows as a stream (a table's batches one after another).
    pub fn into_stream(self) -> Stream {
        match self {
            Data::Table((schema, batches)) => {
                Stream { schema, batches: futures::stream::iter(batches.into_iter().map(Ok)).boxed() }
            }
            Data::Stream(s) => s,
        }
    }
}

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
