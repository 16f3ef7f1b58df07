//! The Arrow IPC codec of intermediates: what travels between the tasks of a job.
//!
//! An intermediate output is one IPC *file*. A shuffle map task writes one object holding every
//! bucket as its own self-contained IPC *stream*, back to back, with the byte range of each in
//! the task's manifest; a reducer range-reads its bucket from every map output, so a shuffle of
//! M maps into N buckets costs M objects, not M×N. Every bucket stream carries the schema, so
//! even an empty bucket decodes to a typed table.
//!
//! Intermediates are LZ4-compressed (IPC's `LZ4_FRAME`) when the job root is remote, plain when
//! it is a local folder or memory (see [`compress_intermediates`]).

use super::Table;
use super::memory::held_bytes;
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use bytes::Bytes;
use shoal_protocol::ByteRange;
use std::io::Cursor;
use std::sync::Arc;

/// IPC options of intermediates. Compressed (LZ4 frames: a fraction of zstd's CPU at a modest
/// loss of ratio) when they cross a network, as on S3; plain when the job root is a local
/// folder or memory, where compressing only burns CPU.
pub fn ipc_options(compress: bool) -> Result<IpcWriteOptions> {
    let codec = compress.then_some(CompressionType::LZ4_FRAME);
    IpcWriteOptions::default().try_with_compression(codec).map_err(Error::arrow("IPC compression options"))
}

/// Whether intermediates under `job_root` are compressed (see [`ipc_options`]).
pub fn compress_intermediates(job_root: &str) -> bool {
    !(job_root.starts_with("memory:") || job_root.starts_with("file:") || !job_root.contains("://"))
}

/// A capacity guess for the IPC encoding of `batches` (growing a large buffer by doubling
/// costs copies and page faults).
pub fn encoded_size_hint<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> usize {
    // Distinct allocations only (views share buffers), and never more than 256 MiB up front.
    held_bytes(batches).min(256 << 20) + 4096
}

/// A batch whose string and binary *view* columns own only the bytes they reference. Views
/// taken from a larger array (a bucket of a partition, a slice after a sort) keep the whole
/// data buffers alive; writing them as they are would write every bucket's strings N times.
pub fn compact(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, AsArray};
    if !batch.columns().iter().any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::BinaryView)) {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.data_type() {
                DataType::Utf8View => Arc::new(c.as_string_view().gc()),
                DataType::BinaryView => Arc::new(c.as_binary_view().gc()),
                _ => c.clone(),
            }
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).map_err(Error::arrow("compacting view columns"))
}

/// One intermediate output as an Arrow IPC file (LZ4-compressed when `compress`).
pub fn encode_file(schema: &SchemaRef, batches: &[RecordBatch], compress: bool) -> Result<Bytes> {
    let mut encoder = FileEncoder::new(schema, compress, encoded_size_hint(batches))?;
    for b in batches {
        encoder.write(b)?;
    }
    encoder.finish()
}

/// An IPC file written batch by batch (see [`encode_file`]).
pub struct FileEncoder {
    writer: FileWriter<Vec<u8>>,
}

impl std::fmt::Debug for FileEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncoder").finish_non_exhaustive()
    }
}

impl FileEncoder {
    const CONTEXT: &str = "encoding an IPC file";

    pub fn new(schema: &SchemaRef, compress: bool, capacity: usize) -> Result<Self> {
        let writer =
            FileWriter::try_new_with_options(Vec::with_capacity(capacity), schema, ipc_options(compress)?)
                .map_err(Error::arrow(Self::CONTEXT))?;
        Ok(Self { writer })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(&compact(batch)?).map_err(Error::arrow(Self::CONTEXT))
    }

    /// The file. Its buffer is cut to its length first: `Bytes` keeps a vector's whole
    /// capacity, and the size hint's headroom (4 KiB) is five times a one-row file, which an
    /// in-memory job root would hold for every task of the job.
    pub fn finish(mut self) -> Result<Bytes> {
        self.writer.finish().map_err(Error::arrow(Self::CONTEXT))?;
        let file = self.writer.into_inner().map_err(Error::arrow(Self::CONTEXT))?;
        Ok(Bytes::from(file.into_boxed_slice()))
    }
}

/// Encodes the buckets of a shuffle into one object: each bucket an IPC stream, back to back,
/// with the byte range and row count of each.
pub fn encode_buckets(
    schema: &SchemaRef,
    buckets: &[Vec<RecordBatch>],
    compress: bool,
) -> Result<(Bytes, Vec<ByteRange>)> {
    let mut encoder = BucketsEncoder::new(schema, buckets.len(), compress)?;
    for (i, bucket) in buckets.iter().enumerate() {
        for b in bucket {
            encoder.write(i, b)?;
        }
    }
    encoder.finish()
}

/// The buckets of a shuffle written batch by batch, each into its own IPC stream, joined into
/// one object at the end (see [`encode_buckets`]).
pub struct BucketsEncoder {
    writers: Vec<StreamWriter<Vec<u8>>>,
    rows: Vec<u64>,
}

impl std::fmt::Debug for BucketsEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketsEncoder").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl BucketsEncoder {
    const CONTEXT: &str = "encoding a shuffle bucket";

    pub fn new(schema: &SchemaRef, buckets: usize, compress: bool) -> Result<Self> {
        let options = ipc_options(compress)?;
        let writers = (0..buckets)
            .map(|_| StreamWriter::try_new_with_options(Vec::new(), schema, options.clone()))
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::arrow(Self::CONTEXT))?;
        Ok(Self { writers, rows: vec![0; buckets] })
    }

    /// Appends `batch` to bucket `bucket`.
    pub fn write(&mut self, bucket: usize, batch: &RecordBatch) -> Result<()> {
        let writer = self
            .writers
            .get_mut(bucket)
            .ok_or_else(|| Error::InvalidTask(format!("shuffle bucket {bucket} out of range")))?;
        writer.write(&compact(batch)?).map_err(Error::arrow(Self::CONTEXT))?;
        self.rows[bucket] += batch.num_rows() as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<(Bytes, Vec<ByteRange>)> {
        let mut parts = Vec::with_capacity(self.writers.len());
        for mut writer in self.writers {
            writer.finish().map_err(Error::arrow(Self::CONTEXT))?;
            parts.push(writer.into_inner().map_err(Error::arrow(Self::CONTEXT))?);
        }
        let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        let mut ranges = Vec::with_capacity(parts.len());
        for (part, rows) in parts.into_iter().zip(self.rows) {
            let offset = out.len() as u64;
            out.extend_from_slice(&part);
            ranges.push(ByteRange { offset, len: part.len() as u64, rows });
        }
        Ok((Bytes::from(out), ranges))
    }
}

/// Decodes one bucket (an IPC stream) read from `url`.
pub fn decode_stream(url: &str, bytes: Bytes) -> Result<Table> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(Error::decode(url))?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(Error::decode(url))?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::partition::split;
    use shoal_protocol::Partitioning;
    use std::collections::BTreeMap;

    use crate::io::fixtures::keyed_batch as batch;

    #[test]
    fn buckets_round_trip_through_one_object() {
        let b = batch((0..50).map(Some).collect());
        let p = Partitioning::Hash { keys: vec!["s".into()], n: 4 };
        let mut buckets = split(&p, &b.schema(), std::slice::from_ref(&b), &BTreeMap::new()).unwrap();
        buckets.push(vec![]);
        let (bytes, ranges) = encode_buckets(&b.schema(), &buckets, true).unwrap();
        assert_eq!(ranges.len(), 5);
        for (r, bucket) in ranges.iter().zip(&buckets) {
            let slice = bytes.slice(r.offset as usize..(r.offset + r.len) as usize);
            let (schema, back) = decode_stream("mem", slice).unwrap();
            assert_eq!(schema, b.schema());
            assert_eq!(back, *bucket);
            assert_eq!(r.rows as usize, bucket.iter().map(RecordBatch::num_rows).sum::<usize>());
        }
    }
}
