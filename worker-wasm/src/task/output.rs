//! Writing a task's output: one object per attempt, in the format its [`Output`] asks for.

use crate::error::{Error, Result};
use crate::io::storage::Storage;
use crate::io::{Data, ipc, parquet, text_parts};
use crate::ops::table::Sides;
use crate::ops::table::partition;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use shoal_protocol::{ByteRange, ObjectRef, Output, PartFormat, Partitioning, layout};

/// What a task wrote: its one data object, its rows, and for a shuffle the byte range of every
/// bucket.
pub struct Written {
    pub object: ObjectRef,
    pub rows: u64,
    pub buckets: Vec<ByteRange>,
}

/// Writes `data` as `output`: an Arrow IPC intermediate or shuffle object at the attempt's own
/// URL for its name (`attempt_object`), a user-visible part (Parquet, CSV, JSON lines, text)
/// under its deterministic name, or a Zarr chunk. IPC files, hash and range shuffles and Parquet parts
/// are encoded batch by batch as a stream arrives, so a task holds what it has encoded, not the
/// rows; the text formats, Zarr chunks and contiguous splits (which need the row count) take
/// the rows whole. `sides` hold a range shuffle's boundaries.
pub async fn write(
    storage: &Storage,
    job_root: &str,
    attempt_object: &(dyn Fn(&str) -> String + Sync),
    output: &Output,
    data: Data,
    sides: &Sides,
) -> Result<Written> {
    let compress = ipc::compress_intermediates(job_root);
    let schema = data.schema().clone();
    let mut encoder = match output {
        Output::Intermediate => Encoder::File(ipc::FileEncoder::new(&schema, compress)?),
        Output::Shuffle { partitioning: partitioning @ Partitioning::Split { .. } } => {
            return write_split(storage, attempt_object, partitioning, data, sides, compress).await;
        }
        Output::Shuffle { partitioning } => {
            let n = partitioning.buckets().max(1) as usize;
            Encoder::Buckets(ipc::BucketsEncoder::new(&schema, n, compress)?, partitioning)
        }
        Output::Part { format: PartFormat::Parquet, .. } => {
            Encoder::Parquet(parquet::PartEncoder::new(&schema)?)
        }
        Output::Part { format, .. } => {
            let (schema, batches) = data.into_table().await?;
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            let bytes = match format {
                PartFormat::Csv => text_parts::encode_csv(&schema, &batches)?,
                PartFormat::JsonLines => text_parts::encode_json_lines(&batches)?,
                PartFormat::Text => text_parts::encode_item_lines(&batches, false)?,
                PartFormat::TextGzip => text_parts::encode_item_lines(&batches, true)?,
                // Matched above: a Parquet part is encoded as its batches arrive.
                PartFormat::Parquet => return Err(Error::InvalidTask("a Parquet part taken whole".into())),
            };
            return put_part(storage, output, bytes, rows).await;
        }
        Output::Zarr { array, metadata, chunk } => {
            let table = data.into_table().await?;
            let rows = table.1.iter().map(|b| b.num_rows() as u64).sum();
            let object = crate::io::zarr::write_chunk(storage, array, metadata, chunk, &table).await?;
            return Ok(Written { object, rows, buckets: Vec::new() });
        }
    };
    let mut rows = 0u64;
    let mut batches = data.into_stream().batches;
    while let Some(batch) = batches.try_next().await? {
        rows += batch.num_rows() as u64;
        encoder.write(&schema, batch, sides)?;
    }
    drop(batches);
    let (name, payload, buckets) = match encoder {
        Encoder::File(e) => ("part-0.arrow", e.finish()?, Vec::new()),
        Encoder::Buckets(e, _) => {
            let (payload, buckets) = e.finish()?;
            ("shuffle.arrows", payload, buckets)
        }
        Encoder::Parquet(e) => return put_part(storage, output, e.finish()?, rows).await,
    };
    let object = storage.put(&attempt_object(name), payload).await?;
    Ok(Written { object, rows, buckets })
}

/// An output encoded as its batches arrive.
enum Encoder<'a> {
    File(ipc::FileEncoder),
    Buckets(ipc::BucketsEncoder, &'a Partitioning),
    Parquet(parquet::PartEncoder),
}

impl Encoder<'_> {
    fn write(&mut self, schema: &SchemaRef, batch: RecordBatch, sides: &Sides) -> Result<()> {
        match self {
            Encoder::File(e) => e.write(&batch),
            Encoder::Parquet(e) => e.write(&batch),
            Encoder::Buckets(e, partitioning) => {
                let split = partition::split(partitioning, schema, std::slice::from_ref(&batch), sides)?;
                for (bucket, parts) in split.iter().enumerate() {
                    for part in parts {
                        e.write(bucket, part)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A contiguous split: the row count must be known before the first bucket is cut, so the
/// rows are taken whole.
async fn write_split(
    storage: &Storage,
    attempt_object: &(dyn Fn(&str) -> String + Sync),
    partitioning: &Partitioning,
    data: Data,
    sides: &Sides,
    compress: bool,
) -> Result<Written> {
    let (schema, batches) = data.into_table().await?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let split = partition::split(partitioning, &schema, &batches, sides)?;
    drop(batches);
    let (payload, buckets) = ipc::encode_buckets(&schema, &split, compress)?;
    let object = storage.put(&attempt_object("shuffle.arrows"), payload).await?;
    Ok(Written { object, rows, buckets })
}

/// Stores a user-visible part under its deterministic name.
async fn put_part(storage: &Storage, output: &Output, bytes: bytes::Bytes, rows: u64) -> Result<Written> {
    let Output::Part { url, part, format } = output else {
        return Err(Error::InvalidTask("a part written for another output".into()));
    };
    let dir = storage.resolve(url)?;
    let object = storage.put(&dir.join(&layout::part_name(*part, *format)).url, bytes).await?;
    Ok(Written { object, rows, buckets: Vec::new() })
}
