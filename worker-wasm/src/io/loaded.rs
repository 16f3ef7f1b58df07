//! A task input read into memory, whatever its format.

use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// One input read into memory.
#[derive(Debug)]
pub struct Loaded {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub bytes_read: u64,
    pub objects_read: u64,
    /// Storage requests made to read it.
    pub requests: u64,
    /// Records left out as malformed (JSON lines read with `errors = "skip"`).
    pub records_skipped: u64,
}

impl Loaded {
    /// Adds `part` to the accumulated input; `what` describes a schema mismatch.
    pub fn append(acc: &mut Option<Loaded>, part: Loaded, what: impl FnOnce() -> String) -> Result<()> {
        match acc {
            None => *acc = Some(part),
            Some(acc) => {
                if acc.schema.fields() != part.schema.fields() {
                    return Err(Error::Schema(what()));
                }
                acc.batches.extend(part.batches);
                acc.bytes_read += part.bytes_read;
                acc.objects_read += part.objects_read;
                acc.requests += part.requests;
                acc.records_skipped += part.records_skipped;
            }
        }
        Ok(())
    }
}
