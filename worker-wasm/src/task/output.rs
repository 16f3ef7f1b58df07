//! Writing a task's output: one object per attempt, in the format its [`Output`] asks for.

use crate::error::Result;
use crate::io::storage::Storage;
use crate::io::{Table, ipc, parquet, text_parts};
use crate::ops::table::Sides;
use crate::ops::table::partition;
use shoal_protocol::{ByteRange, ObjectRef, Output, PartFormat, layout};

/// What a task wrote: its one data object, and for a shuffle the byte range of every bucket.
pub struct Written {
    pub object: ObjectRef,
    pub buckets: Vec<ByteRange>,
}

/// Writes `table` as `output`: an Arrow IPC intermediate or shuffle object under the attempt's
/// own `attempt_dir`, or a user-visible part (Parquet, CSV or JSON lines) under its
/// deterministic name, written whole. `sides` hold
/// a range shuffle's boundaries.
pub async fn write(
    storage: &Storage,
    job_root: &str,
    attempt_dir: &str,
    output: &Output,
    (schema, batches): Table,
    sides: &Sides,
) -> Result<Written> {
    let compress = ipc::compress_intermediates(job_root);
    match output {
        Output::Intermediate => {
            let bytes = ipc::encode_file(&schema, &batches, compress)?;
            let object = storage.put(&format!("{attempt_dir}/part-0.arrow"), bytes).await?;
            Ok(Written { object, buckets: Vec::new() })
        }
        Output::Shuffle { partitioning } => {
            let split = partition::split(partitioning, &schema, &batches, sides)?;
            drop(batches);
            let (bytes, buckets) = ipc::encode_buckets(&schema, &split, compress)?;
            let object = storage.put(&format!("{attempt_dir}/shuffle.arrows"), bytes).await?;
            Ok(Written { object, buckets })
        }
        Output::Part { url, part, format } => {
            let bytes = match format {
                PartFormat::Parquet => parquet::encode(&schema, &batches)?,
                PartFormat::Csv => text_parts::encode_csv(&schema, &batches)?,
                PartFormat::JsonLines => text_parts::encode_json_lines(&batches)?,
                PartFormat::Text => text_parts::encode_item_lines(&batches, false)?,
                PartFormat::TextGzip => text_parts::encode_item_lines(&batches, true)?,
            };
            let dir = storage.resolve(url)?;
            let object = storage.put(&dir.join(&layout::part_name(*part, *format)).url, bytes).await?;
            Ok(Written { object, buckets: Vec::new() })
        }
        Output::Zarr { array, metadata, chunk } => {
            let object =
                crate::io::zarr::write_chunk(storage, array, metadata, chunk, &(schema, batches)).await?;
            Ok(Written { object, buckets: Vec::new() })
        }
    }
}
