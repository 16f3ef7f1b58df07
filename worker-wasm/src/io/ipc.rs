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
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, AsArray, Decimal64Array, Decimal128Array, RecordBatch};
use arrow::buffer::Buffer;
use arrow::compute::cast;
use arrow::datatypes::{
    DECIMAL64_MAX_PRECISION, DataType, Decimal64Type, Decimal128Type, Field, Schema, SchemaRef,
};
use arrow::error::ArrowError;
use arrow::ipc::CompressionType;
use arrow::ipc::convert::fb_to_schema;
use arrow::ipc::reader::{FileDecoder, StreamDecoder, read_footer_length};
use arrow::ipc::root_as_footer;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use bytes::Bytes;
use object_store::PutPayload;
use shoal_protocol::ByteRange;
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

/// Field metadata marking a column that an intermediate stores in a more compact type than
/// its own; its value is the type to decode it back to (`Utf8View`, `Decimal128(15, 2)`).
const STORED_AS: &str = "shoal.ipc.view";

/// The schema an intermediate of `schema` is written with: top-level columns of a type with a
/// more compact equivalent in that type, marked with [`STORED_AS`]:
///
/// - `Utf8View` and `BinaryView` as `Utf8` and `Binary`. A view costs 16 bytes per value plus
///   the bytes of values over 12 long; an offset costs 4 plus every value's bytes. For TPC-H's
///   `lineitem` that is about a fifth of each row, written and read again by every shuffle.
///   Decoding validates a plain column's UTF-8 in one pass over its bytes, where a view column
///   is validated value by value, and turns it back into views that point into the bytes
///   read, without copying them. Views taken from a larger array (a bucket of a partition, a
///   slice after a sort) keep their whole data buffers alive; the conversion also writes only
///   the bytes a batch references.
/// - `Decimal128` of precision 18 or less as `Decimal64` of the same precision and scale: such
///   a value fits 64 bits, so half of each value's 16 bytes is always zero or sign. Money
///   columns are decimals of this kind (TPC-H's are `Decimal128(15, 2)`, a third of
///   `lineitem`'s bytes as stored before this).
pub fn stored_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| plain_of(f.data_type()).is_some()) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match plain_of(f.data_type()) {
            Some(plain) => {
                let mut metadata = f.metadata().clone();
                metadata.insert(STORED_AS.to_string(), f.data_type().to_string());
                f.as_ref().clone().with_data_type(plain).with_metadata(metadata)
            }
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The type a column of type `t` is stored as, if not `t` (see [`stored_schema`]).
fn plain_of(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        DataType::Decimal128(p, s) if *p <= DECIMAL64_MAX_PRECISION => Some(DataType::Decimal64(*p, *s)),
        _ => None,
    }
}

/// `batch` as written under `stored` (see [`stored_schema`]): one batch, or several slices of
/// it when a column's bytes would overflow the 32-bit offsets of a plain column. A decimal
/// value outside 64 bits (possible only beyond its declared precision) is an error naming it.
fn to_stored(batch: &RecordBatch, stored: &SchemaRef) -> Result<Vec<RecordBatch>> {
    if Arc::ptr_eq(&batch.schema(), stored) || batch.schema().fields() == stored.fields() {
        return Ok(vec![batch.clone()]);
    }
    match cast_batch(batch, stored) {
        Ok(plain) => Ok(vec![plain]),
        Err(_) if batch.num_rows() > 1 => {
            let half = batch.num_rows() / 2;
            let mut parts = to_stored(&batch.slice(0, half), stored)?;
            parts.extend(to_stored(&batch.slice(half, batch.num_rows() - half), stored)?);
            Ok(parts)
        }
        Err(e) => Err(Error::Arrow { context: "storing columns in their intermediate types", source: e }),
    }
}

/// A decoded schema with its columns back to the types they were stored from. A mark whose
/// type is not one this version reads leaves its column as stored.
fn decoded_schema(stored: &SchemaRef) -> SchemaRef {
    let original = |f: &Field| -> Option<DataType> {
        let t: DataType = f.metadata().get(STORED_AS)?.parse().ok()?;
        (plain_of(&t).as_ref() == Some(f.data_type())).then_some(t)
    };
    if !stored.fields().iter().any(|f| original(f).is_some()) {
        return stored.clone();
    }
    let fields: Vec<Field> = stored
        .fields()
        .iter()
        .map(|f| match original(f) {
            Some(t) => {
                let mut metadata = f.metadata().clone();
                metadata.remove(STORED_AS);
                f.as_ref().clone().with_data_type(t).with_metadata(metadata)
            }
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, stored.metadata().clone()))
}

/// Decoded batches of the `stored` schema with their columns back in their own types (views
/// pointing into the decoded bytes, decimals widened).
fn restored(stored: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Table> {
    let schema = decoded_schema(stored);
    if Arc::ptr_eq(&schema, stored) {
        return Ok((schema, batches));
    }
    let batches = batches
        .iter()
        .map(|b| cast_batch(b, &schema).map_err(Error::arrow("decoding columns stored in other types")))
        .collect::<Result<_>>()?;
    Ok((schema, batches))
}

/// `batch` with each column converted, by position, to the type of `schema`'s field.
fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| convert(c, f.data_type()))
        .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// `column` as type `to`: a stored type and its original (see [`stored_schema`]) either way.
/// Decimals change width and nothing else, value for value (arrow's cast would also check the
/// precision, and turn what fails into nulls unless told otherwise).
fn convert(column: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, ArrowError> {
    match (column.data_type(), to) {
        (from, to) if from == to => Ok(column.clone()),
        (DataType::Decimal128(..), DataType::Decimal64(p, s)) => {
            let narrowed: Decimal64Array = column.as_primitive::<Decimal128Type>().try_unary(|v| {
                i64::try_from(v).map_err(|_| {
                    ArrowError::InvalidArgumentError(format!(
                        "decimal {v} (unscaled) does not fit 64 bits, nor its precision {p}"
                    ))
                })
            })?;
            Ok(Arc::new(narrowed.with_precision_and_scale(*p, *s)?))
        }
        (DataType::Decimal64(..), DataType::Decimal128(p, s)) => {
            let widened: Decimal128Array = column.as_primitive::<Decimal64Type>().unary(i128::from);
            Ok(Arc::new(widened.with_precision_and_scale(*p, *s)?))
        }
        _ => cast(column, to),
    }
}

/// One intermediate output as an Arrow IPC file (LZ4-compressed when `compress`).
pub fn encode_file(schema: &SchemaRef, batches: &[RecordBatch], compress: bool) -> Result<PutPayload> {
    let mut encoder = FileEncoder::new(schema, compress)?;
    for b in batches {
        encoder.write(b)?;
    }
    encoder.finish()
}

/// What an encoder writes into: a list of chunks of at most [`Chunks::SIZE`] bytes, stored as
/// one object by a multi-part payload. Growing one buffer to the size of a whole output costs a
/// copy per doubling and fresh pages from the kernel for each; chunks of a fixed size are taken
/// from, and given back to, the allocator's heap (below the worker's mmap threshold, see
/// `task::malloc`), so the pages of one task's output are reused by the next.
#[derive(Debug)]
struct Chunks {
    full: Vec<Bytes>,
    current: Vec<u8>,
    size: usize,
}

impl Chunks {
    /// 4 MiB: a few write calls per output, far below the 32 MiB mmap threshold.
    const SIZE: usize = 4 << 20;

    fn with_size(size: usize) -> Self {
        Self { full: Vec::new(), current: Vec::new(), size }
    }

    /// Bytes written so far.
    fn len(&self) -> usize {
        self.full.iter().map(Bytes::len).sum::<usize>() + self.current.len()
    }

    /// The chunks, in order; the last one cut to its length (`Bytes` keeps a vector's whole
    /// capacity, which an in-memory job root would hold for every task of the job).
    fn into_chunks(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.full.push(Bytes::from(self.current.into_boxed_slice()));
        }
        self.full
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.current.len() == self.size {
                let full = std::mem::replace(&mut self.current, Vec::with_capacity(self.size));
                self.full.push(Bytes::from(full));
            }
            let take = rest.len().min(self.size - self.current.len());
            let needed = self.current.len() + take;
            if needed > self.current.capacity() {
                // Doubling, but never past one chunk.
                let target = (self.current.capacity() * 2).max(needed).min(self.size);
                self.current.reserve_exact(target - self.current.len());
            }
            self.current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An IPC file written batch by batch (see [`encode_file`]).
pub struct FileEncoder {
    writer: FileWriter<Chunks>,
    stored: SchemaRef,
}

impl std::fmt::Debug for FileEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncoder").finish_non_exhaustive()
    }
}

impl FileEncoder {
    const CONTEXT: &str = "encoding an IPC file";

    pub fn new(schema: &SchemaRef, compress: bool) -> Result<Self> {
        Self::with_chunks(schema, compress, Chunks::SIZE)
    }

    fn with_chunks(schema: &SchemaRef, compress: bool, chunk: usize) -> Result<Self> {
        let stored = stored_schema(schema);
        let writer =
            FileWriter::try_new_with_options(Chunks::with_size(chunk), &stored, ipc_options(compress)?)
                .map_err(Error::arrow(Self::CONTEXT))?;
        Ok(Self { writer, stored })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        for part in to_stored(batch, &self.stored)? {
            self.writer.write(&part).map_err(Error::arrow(Self::CONTEXT))?;
        }
        Ok(())
    }

    /// The file, as the chunks it was written into.
    pub fn finish(mut self) -> Result<PutPayload> {
        self.writer.finish().map_err(Error::arrow(Self::CONTEXT))?;
        let chunks = self.writer.into_inner().map_err(Error::arrow(Self::CONTEXT))?;
        Ok(chunks.into_chunks().into_iter().collect())
    }
}

/// Encodes the buckets of a shuffle into one object: each bucket an IPC stream, back to back,
/// with the byte range and row count of each.
pub fn encode_buckets(
    schema: &SchemaRef,
    buckets: &[Vec<RecordBatch>],
    compress: bool,
) -> Result<(PutPayload, Vec<ByteRange>)> {
    let mut encoder = BucketsEncoder::new(schema, buckets.len(), compress)?;
    for (i, bucket) in buckets.iter().enumerate() {
        for b in bucket {
            encoder.write(i, b)?;
        }
    }
    encoder.finish()
}

/// The buckets of a shuffle written batch by batch, each into its own IPC stream, stored as
/// one object at the end: the buckets' chunks in bucket order, never copied into one buffer
/// (see [`encode_buckets`]).
pub struct BucketsEncoder {
    writers: Vec<StreamWriter<Chunks>>,
    rows: Vec<u64>,
    stored: SchemaRef,
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
        let stored = stored_schema(schema);
        let writers = (0..buckets)
            .map(|_| {
                StreamWriter::try_new_with_options(Chunks::with_size(Chunks::SIZE), &stored, options.clone())
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::arrow(Self::CONTEXT))?;
        Ok(Self { writers, rows: vec![0; buckets], stored })
    }

    /// Appends `batch` to bucket `bucket`.
    pub fn write(&mut self, bucket: usize, batch: &RecordBatch) -> Result<()> {
        let writer = self
            .writers
            .get_mut(bucket)
            .ok_or_else(|| Error::InvalidTask(format!("shuffle bucket {bucket} out of range")))?;
        for part in to_stored(batch, &self.stored)? {
            writer.write(&part).map_err(Error::arrow(Self::CONTEXT))?;
        }
        self.rows[bucket] += batch.num_rows() as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<(PutPayload, Vec<ByteRange>)> {
        let mut chunks = Vec::new();
        let mut ranges = Vec::with_capacity(self.writers.len());
        let mut offset = 0u64;
        for (mut writer, rows) in self.writers.into_iter().zip(self.rows) {
            writer.finish().map_err(Error::arrow(Self::CONTEXT))?;
            let bucket = writer.into_inner().map_err(Error::arrow(Self::CONTEXT))?;
            let len = bucket.len() as u64;
            ranges.push(ByteRange { offset, len, rows });
            offset += len;
            chunks.extend(bucket.into_chunks());
        }
        Ok((chunks.into_iter().collect(), ranges))
    }
}

/// Decodes one bucket (an IPC stream) read from `url`. The batches share `bytes` rather than
/// copy them (buffers the IPC writer aligned are used in place); each batch holds only its own
/// message's bytes, so memory accounting (ours and DataFusion's, which count a buffer's whole
/// allocation) sees each batch at its size, not at the size of the object it came from.
pub fn decode_stream(url: &str, bytes: Bytes) -> Result<Table> {
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    for message in stream_messages(url, &bytes)? {
        let mut buffer = Buffer::from(message);
        while !buffer.is_empty() {
            if let Some(batch) = decoder.decode(&mut buffer).map_err(Error::decode(url))? {
                batches.push(batch);
            }
        }
    }
    decoder.finish().map_err(Error::decode(url))?;
    let stored = decoder.schema().ok_or_else(|| Error::Corrupt {
        url: url.to_string(),
        message: "an IPC stream without a schema".into(),
    })?;
    restored(&stored, batches)
}

/// The messages of an IPC stream, each a slice of `bytes` (framing, metadata and body), up to
/// and including the end-of-stream marker.
fn stream_messages(url: &str, bytes: &Bytes) -> Result<Vec<Bytes>> {
    let corrupt = |message: String| Error::Corrupt { url: url.to_string(), message };
    let word = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut messages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let mut len = word(at).ok_or_else(|| corrupt(format!("IPC stream cut at byte {at}")))?;
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at).ok_or_else(|| corrupt(format!("IPC stream cut at byte {at}")))?;
            at += 4;
        }
        let meta_end = at + len as usize;
        let body = if len == 0 {
            0
        } else {
            let meta = bytes
                .get(at..meta_end)
                .ok_or_else(|| corrupt(format!("IPC message at byte {start} runs past the end")))?;
            let message = arrow::ipc::root_as_message(meta)
                .map_err(|e| corrupt(format!("unreadable IPC message at byte {start}: {e}")))?;
            usize::try_from(message.bodyLength())
                .map_err(|_| corrupt(format!("negative IPC body length at byte {start}")))?
        };
        let end = meta_end
            .checked_add(body)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| corrupt(format!("IPC message at byte {start} runs past the end")))?;
        messages.push(bytes.slice(start..end));
        at = end;
        if len == 0 {
            break;
        }
    }
    Ok(messages)
}

/// The positions of `cols` in `schema`, in that order; an error names the first missing one.
pub fn column_indices(schema: &SchemaRef, cols: &[String], url: &str) -> Result<Vec<usize>> {
    cols.iter()
        .map(|c| schema.index_of(c).map_err(|_| Error::Schema(format!("{url}: no column '{c}'"))))
        .collect()
}

/// Decodes an IPC file read from `url`, keeping only the columns `projection` names, in that
/// order. Like [`decode_stream`], the batches share `bytes`.
pub fn decode_file(url: &str, bytes: Bytes, projection: Option<&[String]>) -> Result<Table> {
    let invalid = |message: &str| Error::Corrupt { url: url.to_string(), message: message.to_string() };
    let trailer_start =
        bytes.len().checked_sub(10).ok_or_else(|| invalid("too short for an Arrow IPC file"))?;
    let trailer: &[u8; 10] = bytes[trailer_start..].try_into().map_err(|_| invalid("no IPC file trailer"))?;
    let footer_len = read_footer_length(*trailer).map_err(Error::decode(url))?;
    let footer_start =
        trailer_start.checked_sub(footer_len).ok_or_else(|| invalid("IPC footer longer than the file"))?;
    let footer = root_as_footer(&bytes[footer_start..trailer_start])
        .map_err(|e| invalid(&format!("unreadable IPC footer: {e}")))?;
    let ipc_schema = footer.schema().ok_or_else(|| invalid("IPC footer without a schema"))?;
    let schema = Arc::new(fb_to_schema(ipc_schema));
    let (out_schema, mut decoder) = match projection {
        Some(cols) => {
            let ix = column_indices(&schema, cols, url)?;
            let projected = Arc::new(schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?);
            (projected, FileDecoder::new(schema, footer.version()).with_projection(ix))
        }
        None => (schema.clone(), FileDecoder::new(schema, footer.version())),
    };
    // Each block its own `Buffer` over its slice of `bytes`, for the reason given at
    // `decode_stream`.
    let block_data = |block: &arrow::ipc::Block| -> Result<Buffer> {
        let start = usize::try_from(block.offset()).map_err(|_| invalid("negative IPC block offset"))?;
        let len = usize::try_from(block.metaDataLength() as i64 + block.bodyLength())
            .map_err(|_| invalid("negative IPC block length"))?;
        if start.checked_add(len).is_none_or(|end| end > footer_start) {
            return Err(invalid("IPC block outside the file"));
        }
        Ok(Buffer::from(bytes.slice(start..start + len)))
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder.read_dictionary(block, &block_data(block)?).map_err(Error::decode(url))?;
    }
    let mut batches = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        if let Some(batch) =
            decoder.read_record_batch(block, &block_data(block)?).map_err(Error::decode(url))?
        {
            batches.push(batch);
        }
    }
    restored(&out_schema, batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::partition::split;
    use shoal_protocol::Partitioning;
    use std::collections::BTreeMap;

    use crate::io::fixtures::keyed_batch as batch;

    fn joined(payload: PutPayload) -> Bytes {
        Bytes::from(payload)
    }

    #[test]
    fn buckets_round_trip_through_one_object() {
        let b = batch((0..50).map(Some).collect());
        let p = Partitioning::Hash { keys: vec!["s".into()], n: 4 };
        let mut buckets = split(&p, &b.schema(), std::slice::from_ref(&b), &BTreeMap::new()).unwrap();
        buckets.push(vec![]);
        for compress in [false, true] {
            let (payload, ranges) = encode_buckets(&b.schema(), &buckets, compress).unwrap();
            let bytes = joined(payload);
            assert_eq!(ranges.len(), 5);
            assert_eq!(ranges.iter().map(|r| r.len).sum::<u64>(), bytes.len() as u64);
            for (r, bucket) in ranges.iter().zip(&buckets) {
                let slice = bytes.slice(r.offset as usize..(r.offset + r.len) as usize);
                let (schema, back) = decode_stream("mem", slice).unwrap();
                assert_eq!(schema, b.schema());
                assert_eq!(back, *bucket);
                assert_eq!(r.rows as usize, bucket.iter().map(RecordBatch::num_rows).sum::<usize>());
            }
        }
    }

    #[test]
    fn a_file_written_across_many_chunks_reads_back_whole_and_projected() {
        let batches: Vec<_> = (0..5).map(|i| batch((i * 40..i * 40 + 40).map(Some).collect())).collect();
        let schema = batches[0].schema();
        // 256-byte chunks: every message and most buffers cross a chunk boundary.
        let mut encoder = FileEncoder::with_chunks(&schema, false, 256).unwrap();
        for b in &batches {
            encoder.write(b).unwrap();
        }
        let payload = encoder.finish().unwrap();
        let chunks: Vec<&Bytes> = payload.iter().collect();
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= 256));
        let bytes = joined(payload);
        let (back_schema, back) = decode_file("mem", bytes.clone(), None).unwrap();
        assert_eq!(back_schema, schema);
        assert_eq!(back, batches);

        let last = schema.field(schema.fields().len() - 1).name().clone();
        let (projected, back) = decode_file("mem", bytes, Some(std::slice::from_ref(&last))).unwrap();
        assert_eq!(projected.fields().len(), 1);
        let expected: Vec<_> =
            batches.iter().map(|b| b.project(&[schema.fields().len() - 1]).unwrap()).collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn decoded_batches_hold_only_their_own_messages() {
        // What DataFusion's operators reserve for the batches they hold: each batch's buffers'
        // whole allocations. Batches sharing one allocation of the whole object would each
        // count all of it (and a sort of them would spill).
        let reserved = |batches: &[RecordBatch]| -> usize {
            batches.iter().map(datafusion::common::utils::memory::get_record_batch_memory_size).sum()
        };
        let batches: Vec<_> = (0..6).map(|i| batch((i * 500..i * 500 + 500).map(Some).collect())).collect();
        let schema = batches[0].schema();
        let (payload, ranges) = encode_buckets(&schema, std::slice::from_ref(&batches), false).unwrap();
        let stream = joined(payload);
        let (_, back) = decode_stream("mem", stream.clone()).unwrap();
        assert_eq!(back, batches);
        assert!(reserved(&back) <= stream.len(), "{} of {}", reserved(&back), stream.len());
        assert_eq!(ranges[0].len as usize, stream.len());

        let file = joined(encode_file(&schema, &batches, false).unwrap());
        let (_, back) = decode_file("mem", file.clone(), None).unwrap();
        assert_eq!(back, batches);
        assert!(reserved(&back) <= file.len(), "{} of {}", reserved(&back), file.len());
    }

    /// Short, long and null strings and bytes as views, sliced out of a larger array (as a
    /// bucket of a partition is), beside a plain string column that must stay plain.
    fn views() -> RecordBatch {
        use arrow::array::{BinaryViewArray, StringArray, StringViewArray};
        let text = |i: usize| match i % 4 {
            0 => None,
            1 => Some(format!("s{i}")),
            _ => Some(format!("a value longer than twelve bytes, number {i}")),
        };
        let strings: StringViewArray = (0..300).map(text).collect();
        let bytes: BinaryViewArray = (0..300).map(|i| text(i).map(String::into_bytes)).collect();
        let plain: StringArray = (0..300).map(text).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true)
                .with_metadata([("k".to_string(), "v".to_string())].into()),
            Field::new("b", DataType::BinaryView, true),
            Field::new("p", DataType::Utf8, true),
        ]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(strings), Arc::new(bytes), Arc::new(plain)]).unwrap();
        batch.slice(50, 200)
    }

    #[test]
    fn view_columns_are_stored_plain_and_read_back_as_views() {
        let b = views();
        let schema = b.schema();
        let stored = stored_schema(&schema);
        assert_eq!(stored.field(0).data_type(), &DataType::Utf8);
        assert_eq!(stored.field(1).data_type(), &DataType::Binary);
        assert_eq!(stored.field(2).data_type(), &DataType::Utf8);
        assert_eq!(stored.field(0).metadata().get("k").map(String::as_str), Some("v"));

        let file = joined(encode_file(&schema, &[b.clone(), b.slice(10, 5)], false).unwrap());
        let (back_schema, back) = decode_file("mem", file.clone(), None).unwrap();
        assert_eq!(back_schema, schema);
        assert_eq!(back, vec![b.clone(), b.slice(10, 5)]);
        let (projected, back) = decode_file("mem", file, Some(&["b".to_string(), "s".to_string()])).unwrap();
        assert_eq!(projected.field(0).data_type(), &DataType::BinaryView);
        assert_eq!(back[0], b.project(&[1, 0]).unwrap());

        let (payload, ranges) = encode_buckets(&schema, &[vec![b.clone()], vec![]], true).unwrap();
        let stream = joined(payload);
        let (back_schema, back) = decode_stream("mem", stream.slice(..ranges[0].len as usize)).unwrap();
        assert_eq!(back_schema, schema);
        assert_eq!(back, vec![b.clone()]);
        let empty = stream.slice(ranges[1].offset as usize..);
        assert_eq!(decode_stream("mem", empty).unwrap(), (schema, vec![]));
    }

    /// Decimals of precision up to 18 travel as 64-bit values and come back as they were,
    /// nulls, negatives and the extremes of the precision included; wider ones stay 128-bit.
    #[test]
    fn narrow_decimals_are_stored_in_64_bits_and_read_back_exactly() {
        use arrow::array::Decimal128Array;
        let values = [
            Some(0),
            None,
            Some(-1),
            Some(123_456_789_012_345),
            Some(-999_999_999_999_999_999),
            Some(999_999_999_999_999_999),
        ];
        let narrow = Decimal128Array::from(values.to_vec()).with_precision_and_scale(18, 2).unwrap();
        let wide =
            Decimal128Array::from(vec![Some(i128::MAX / 3), None, Some(-5), Some(7), Some(0), Some(1)])
                .with_precision_and_scale(38, 4)
                .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("price", DataType::Decimal128(18, 2), true),
            Field::new("big", DataType::Decimal128(38, 4), true),
        ]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(narrow), Arc::new(wide)]).unwrap();
        let stored = stored_schema(&schema);
        assert_eq!(stored.field(0).data_type(), &DataType::Decimal64(18, 2));
        assert_eq!(stored.field(1).data_type(), &DataType::Decimal128(38, 4));

        let file = joined(encode_file(&schema, &[b.clone(), b.slice(2, 3)], false).unwrap());
        // 8 bytes a value fewer than the same values declared 128-bit wide, less the mark in
        // the schema (written twice in a file).
        let size = |p: u8| {
            let column = Decimal128Array::from_iter_values(0..1000).with_precision_and_scale(p, 2).unwrap();
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Decimal128(p, 2), false)]));
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
            joined(encode_file(&schema, &[batch], false).unwrap()).len()
        };
        let saved = size(19) - size(18);
        assert!((7_500..=8_000).contains(&saved), "{saved}");
        let (back_schema, back) = decode_file("mem", file, None).unwrap();
        assert_eq!(back_schema, schema);
        assert_eq!(back, vec![b.clone(), b.slice(2, 3)]);
        let (payload, ranges) =
            encode_buckets(&schema, &[vec![b.slice(1, 4)], vec![b.clone()]], true).unwrap();
        let stream = joined(payload);
        let (_, back) = decode_stream("mem", stream.slice(ranges[1].offset as usize..)).unwrap();
        assert_eq!(back, vec![b]);

        // A value past 64 bits (beyond its declared precision) is refused by name, not nulled.
        let bad = Decimal128Array::from(vec![Some(1), Some(i128::from(i64::MAX) + 1)])
            .with_precision_and_scale(18, 2)
            .unwrap();
        let one = Arc::new(Schema::new(vec![Field::new("price", DataType::Decimal128(18, 2), true)]));
        let bad = RecordBatch::try_new(one.clone(), vec![Arc::new(bad)]).unwrap();
        let err = encode_file(&one, &[bad], false).unwrap_err().to_string();
        assert!(err.contains("9223372036854775808") && err.contains("64 bits"), "{err}");
    }

    #[test]
    fn a_damaged_stream_is_an_error_naming_it() {
        let b = batch((0..10).map(Some).collect());
        let (payload, _) = encode_buckets(&b.schema(), &[vec![b.clone()]], false).unwrap();
        let bytes = joined(payload);
        for bad in [bytes.slice(..bytes.len() - 9), bytes.slice(..3), bytes.slice(8..)] {
            let err = decode_stream("s3://bucket/shuffle.arrows", bad).unwrap_err().to_string();
            assert!(err.contains("s3://bucket/shuffle.arrows"), "{err}");
        }
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let b = batch((0..10).map(Some).collect());
        let bytes = joined(encode_file(&b.schema(), std::slice::from_ref(&b), false).unwrap());
        for bad in [Bytes::from_static(b"short"), bytes.slice(..bytes.len() - 3), bytes.slice(20..)] {
            let err = decode_file("s3://bucket/part-0.arrow", bad, None).unwrap_err().to_string();
            assert!(err.contains("s3://bucket/part-0.arrow"), "{err}");
        }
        let err = decode_file("mem://x", bytes, Some(&["nope".to_string()])).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
