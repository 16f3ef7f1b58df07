//! Shuffles through object storage.
//!
//! A map task splits its output rows into buckets ([`Partitioning`]) and writes **one** object
//! holding every bucket as its own self-contained, zstd-compressed Arrow IPC stream; the byte
//! range of each bucket goes into the task's manifest. A reducer fetches its bucket from every
//! map output with range reads, so a shuffle of M maps into N buckets costs M objects, not M×N.
//! Every bucket stream carries the schema, so even an empty bucket decodes to a typed table.

use crate::error::{Error, Result};
use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use datafusion::common::hash_utils::create_hashes;
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;
use shoal_protocol::{ByteRange, Partitioning, SortKey};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

/// A table by value: schema and batches.
pub type Table = (SchemaRef, Vec<RecordBatch>);

/// Splits `batches` into `partitioning.buckets()` buckets. `sides` are the task's side tables
/// (range boundaries live there).
pub fn split(
    partitioning: &Partitioning,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sides: &BTreeMap<u32, Table>,
) -> Result<Vec<Vec<RecordBatch>>> {
    let n = partitioning.buckets().max(1) as usize;
    let mut buckets: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    match partitioning {
        Partitioning::Hash { keys, .. } => {
            for batch in batches {
                let arrays = keys
                    .iter()
                    .map(|k| column(batch, k).and_then(|a| canonical(&a)))
                    .collect::<Result<Vec<_>>>()?;
                let mut hashes = vec![0u64; batch.num_rows()];
                create_hashes(&arrays, REPARTITION_RANDOM_STATE.random_state(), &mut hashes)
                    .map_err(|e| Error::Execution(e.to_string()))?;
                let assign = hashes.iter().map(|h| (h % n as u64) as usize);
                scatter(batch, assign, &mut buckets)?;
            }
        }
        Partitioning::Range { keys, port, .. } => {
            let (bounds_schema, bounds) = sides.get(port).ok_or_else(|| {
                Error::InvalidTask(format!("range shuffle: no boundaries table on port {port}"))
            })?;
            let bounds = arrow::compute::concat_batches(bounds_schema, bounds)
                .map_err(|e| Error::Execution(e.to_string()))?;
            let converter = sort_converter(keys, schema)?;
            let bound_cols = boundary_columns(&bounds, keys, schema)?;
            let bound_rows =
                converter.convert_columns(&bound_cols).map_err(|e| Error::Execution(e.to_string()))?;
            let bounds: Vec<_> = bound_rows.iter().collect();
            for batch in batches {
                let cols = key_columns(batch, keys)?;
                let rows = converter.convert_columns(&cols).map_err(|e| Error::Execution(e.to_string()))?;
                // Bucket i holds rows in (bound[i-1], bound[i]]: equal keys share a bucket.
                let assign = rows.iter().map(|r| bounds.partition_point(|b| *b < r).min(n - 1));
                scatter(batch, assign, &mut buckets)?;
            }
        }
        Partitioning::Split { .. } => {
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let mut start = 0usize;
            for batch in batches {
                let assign = (start..start + batch.num_rows()).map(|i| i * n / total.max(1));
                scatter(batch, assign, &mut buckets)?;
                start += batch.num_rows();
            }
        }
    }
    Ok(buckets)
}

/// Appends the rows of `batch` to the buckets `assign` names, one per row, keeping row order.
fn scatter(
    batch: &RecordBatch,
    assign: impl Iterator<Item = usize>,
    buckets: &mut [Vec<RecordBatch>],
) -> Result<()> {
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); buckets.len()];
    for (row, b) in assign.enumerate() {
        indices[b].push(row as u32);
    }
    for (b, ix) in indices.into_iter().enumerate() {
        if ix.is_empty() {
            continue;
        }
        let taken = if ix.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(ix)).map_err(|e| Error::Execution(e.to_string()))?
        };
        buckets[b].push(taken);
    }
    Ok(())
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch.column_by_name(name).cloned().ok_or_else(|| Error::Schema(format!("shuffle: no column '{name}'")))
}

/// Casts a key column to the type it hashes as ([`hash_type`]).
fn canonical(array: &ArrayRef) -> Result<ArrayRef> {
    let target = hash_type(array.data_type());
    if &target == array.data_type() {
        return Ok(array.clone());
    }
    cast(array, &target).map_err(|e| Error::Execution(e.to_string()))
}

/// The type a key column hashes as, so that equal values of different widths or encodings
/// (`Int32` and `Int64`, `Utf8` and `Utf8View`) land in the same bucket. Two sides of a hash
/// join must agree on it.
pub fn hash_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            DataType::Int64
        }
        DataType::UInt32 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => hash_type(value),
        other => other.clone(),
    }
}

/// A row converter whose byte order is the sort order of `keys` over `schema`.
pub fn sort_converter(keys: &[SortKey], schema: &SchemaRef) -> Result<RowConverter> {
    let fields = keys
        .iter()
        .map(|k| {
            let field = schema
                .field_with_name(&k.column)
                .map_err(|_| Error::Schema(format!("sort: no column '{}'", k.column)))?;
            let options =
                arrow::compute::SortOptions { descending: !k.ascending, nulls_first: k.nulls_first };
            Ok(SortField::new_with_options(field.data_type().clone(), options))
        })
        .collect::<Result<Vec<_>>>()?;
    RowConverter::new(fields).map_err(|e| Error::Execution(e.to_string()))
}

/// The boundary rows' columns, by position (the boundaries of another table's keys may carry
/// other names: a join aligning one side to the other's divisions), cast to the key types here.
fn boundary_columns(bounds: &RecordBatch, keys: &[SortKey], schema: &SchemaRef) -> Result<Vec<ArrayRef>> {
    if bounds.num_columns() != keys.len() {
        return Err(Error::InvalidTask(format!(
            "range shuffle: {} boundary columns for {} keys",
            bounds.num_columns(),
            keys.len()
        )));
    }
    keys.iter()
        .zip(bounds.columns())
        .map(|(k, array)| {
            let field = schema
                .field_with_name(&k.column)
                .map_err(|_| Error::Schema(format!("range shuffle: no column '{}'", k.column)))?;
            if field.data_type() == array.data_type() {
                Ok(array.clone())
            } else {
                cast(array, field.data_type()).map_err(|e| Error::Execution(e.to_string()))
            }
        })
        .collect()
}

/// The sort-key columns of `batch`.
fn key_columns(batch: &RecordBatch, keys: &[SortKey]) -> Result<Vec<ArrayRef>> {
    keys.iter().map(|k| column(batch, &k.column)).collect()
}

/// At most `rows` evenly spaced rows of `columns`: a deterministic sample of a partition's sort
/// keys, from which [`boundaries`] are computed.
pub fn sample(schema: &SchemaRef, batches: &[RecordBatch], columns: &[String], rows: usize) -> Result<Table> {
    let ix = columns
        .iter()
        .map(|c| schema.index_of(c).map_err(|_| Error::Schema(format!("sample: no column '{c}'"))))
        .collect::<Result<Vec<_>>>()?;
    let projected = Arc::new(schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?);
    let all = arrow::compute::concat_batches(schema, batches).map_err(|e| Error::Execution(e.to_string()))?;
    let all = all.project(&ix).map_err(|e| Error::Execution(e.to_string()))?;
    let total = all.num_rows();
    let step = total.div_ceil(rows.max(1)).max(1);
    let picks: UInt32Array = (0..total).step_by(step).map(|i| i as u32).collect();
    let taken = take_record_batch(&all, &picks).map_err(|e| Error::Execution(e.to_string()))?;
    Ok((projected, vec![taken]))
}

/// The `n - 1` rows splitting the sorted sample rows into `n` equal parts: the boundaries of a
/// range shuffle into `n` buckets (fewer rows when the sample is smaller than `n`).
pub fn boundaries(schema: &SchemaRef, batches: &[RecordBatch], keys: &[SortKey], n: u32) -> Result<Table> {
    let all = arrow::compute::concat_batches(schema, batches).map_err(|e| Error::Execution(e.to_string()))?;
    let converter = sort_converter(keys, schema)?;
    let rows =
        converter.convert_columns(&key_columns(&all, keys)?).map_err(|e| Error::Execution(e.to_string()))?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    let len = order.len();
    let n = n.max(1) as usize;
    let picks: UInt32Array = if len == 0 {
        UInt32Array::from(Vec::<u32>::new())
    } else {
        (1..n).map(|i| order[(i * len / n).min(len - 1)]).collect()
    };
    let taken = take_record_batch(&all, &picks).map_err(|e| Error::Execution(e.to_string()))?;
    Ok((schema.clone(), vec![taken]))
}

/// The `Melt` kernel (see [`shoal_protocol::TableOp::Melt`]).
pub fn melt(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    id: &str,
    rows: &[String],
    columns: &[(String, Vec<String>)],
) -> Result<Table> {
    use arrow::array::{Array, Float64Array, StringArray};
    use arrow::datatypes::Field;
    let all = arrow::compute::concat_batches(schema, batches).map_err(|e| Error::Execution(e.to_string()))?;
    if all.num_rows() > 1 {
        return Err(Error::InvalidTask(format!(
            "melt expects one row of statistics, got {}",
            all.num_rows()
        )));
    }
    let mut fields = vec![Field::new(id, DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(rows))];
    for (name, sources) in columns {
        if sources.len() != rows.len() {
            return Err(Error::InvalidTask(format!("melt: column '{name}' has {} sources", sources.len())));
        }
        let mut values = Vec::with_capacity(sources.len());
        for source in sources {
            let col = column(&all, source)?;
            let col = cast(&col, &DataType::Float64).map_err(|e| Error::Execution(e.to_string()))?;
            let col = col
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| Error::Execution(format!("melt: '{source}' is not numeric")))?;
            values.push((col.len() == 1 && col.is_valid(0)).then(|| col.value(0)));
        }
        fields.push(Field::new(name, DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(values)));
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::Execution(e.to_string()))?;
    Ok((schema, vec![batch]))
}

/// Rows as text, one list of cell values per row (nulls as `null`): boundaries as divisions.
pub fn rows_as_text(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("null");
    let mut rows = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Execution(e.to_string()))?;
        for r in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(rows)
}

/// IPC options of intermediates. Compressed (LZ4 frames: a fraction of zstd's CPU at a modest
/// loss of ratio) when they cross a network, as on S3; plain when the job root is a local
/// folder or memory, where compressing only burns CPU.
pub fn ipc_options(compress: bool) -> Result<IpcWriteOptions> {
    let codec = compress.then_some(CompressionType::LZ4_FRAME);
    IpcWriteOptions::default().try_with_compression(codec).map_err(|e| Error::Execution(e.to_string()))
}

/// Whether intermediates under `job_root` are compressed (see [`ipc_options`]).
pub fn compress_intermediates(job_root: &str) -> bool {
    !(job_root.starts_with("memory:") || job_root.starts_with("file:") || !job_root.contains("://"))
}

/// A capacity guess for the IPC encoding of `batches` (growing a large buffer by doubling
/// costs copies and page faults).
pub fn encoded_size_hint<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> usize {
    // Distinct allocations only (views share buffers), and never more than 256 MiB up front.
    crate::memory::held_bytes(batches).min(256 << 20) + 4096
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
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| Error::Execution(e.to_string()))
}

/// Encodes the buckets into one object: each bucket an IPC stream, back to back.
pub fn encode(
    schema: &SchemaRef,
    buckets: &[Vec<RecordBatch>],
    compress: bool,
) -> Result<(Bytes, Vec<ByteRange>)> {
    let options = ipc_options(compress)?;
    let mut out = Vec::with_capacity(encoded_size_hint(buckets.iter().flatten()));
    let mut ranges = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let offset = out.len() as u64;
        let mut writer = StreamWriter::try_new_with_options(&mut out, schema, options.clone())
            .map_err(|e| Error::Execution(e.to_string()))?;
        for b in bucket {
            writer.write(&compact(b)?).map_err(|e| Error::Execution(e.to_string()))?;
        }
        writer.finish().map_err(|e| Error::Execution(e.to_string()))?;
        drop(writer);
        let rows = bucket.iter().map(|b| b.num_rows() as u64).sum();
        ranges.push(ByteRange { offset, len: out.len() as u64 - offset, rows });
    }
    Ok((Bytes::from(out), ranges))
}

/// Decodes one bucket (an IPC stream) read from `url`.
pub fn decode(url: &str, bytes: Bytes) -> Result<Table> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| Error::Corrupt { url: url.to_string(), message: e.to_string() })?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Corrupt { url: url.to_string(), message: e.to_string() })?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn batch(keys: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let s: StringArray = keys.iter().map(|k| k.map(|v| format!("v{v}"))).collect();
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(keys)), Arc::new(s)]).unwrap()
    }

    fn rows(buckets: &[Vec<RecordBatch>]) -> Vec<usize> {
        buckets.iter().map(|b| b.iter().map(RecordBatch::num_rows).sum()).collect()
    }

    #[test]
    fn hash_buckets_agree_across_integer_widths_and_keep_every_row() {
        let b = batch((0..1000).map(|i| Some(i % 37)).chain([None]).collect());
        let p = Partitioning::Hash { keys: vec!["k".into()], n: 7 };
        let buckets = split(&p, &b.schema(), std::slice::from_ref(&b), &BTreeMap::new()).unwrap();
        assert_eq!(rows(&buckets).iter().sum::<usize>(), 1001);
        // The same keys as Int32 land in the same buckets.
        let narrow: Int32Array = (0..37).map(Some).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, true)]));
        let nb = RecordBatch::try_new(schema.clone(), vec![Arc::new(narrow)]).unwrap();
        let nbuckets = split(&p, &schema, &[nb], &BTreeMap::new()).unwrap();
        for (wide, narrow) in buckets.iter().zip(&nbuckets) {
            let mut w: Vec<i64> = wide
                .iter()
                .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().iter().flatten())
                .collect();
            w.sort();
            w.dedup();
            let n: Vec<i64> = narrow
                .iter()
                .flat_map(|b| b.column(0).as_any().downcast_ref::<Int32Array>().unwrap().iter())
                .map(|v| v.unwrap() as i64)
                .collect();
            assert_eq!(w, n);
        }
    }

    #[test]
    fn range_buckets_are_ordered_and_split_is_contiguous() {
        let b = batch((0..100).rev().map(Some).collect());
        let schema = b.schema();
        // Boundaries go by position: the column may be named differently (another table's key).
        let bounds = batch(vec![Some(24), Some(49), Some(74)]).project(&[0]).unwrap();
        let renamed =
            Arc::new(arrow::datatypes::Schema::new(vec![Field::new("other", DataType::Int64, true)]));
        let bounds = RecordBatch::try_new(renamed, bounds.columns().to_vec()).unwrap();
        let sides = BTreeMap::from([(1, (bounds.schema(), vec![bounds]))]);
        let p = Partitioning::Range { keys: vec![SortKey::asc("k")], port: 1, n: 4 };
        let buckets = split(&p, &schema, std::slice::from_ref(&b), &sides).unwrap();
        assert_eq!(rows(&buckets), [25, 25, 25, 25]);
        let max0 =
            arrow::compute::max(buckets[0][0].column(0).as_any().downcast_ref::<Int64Array>().unwrap());
        assert_eq!(max0, Some(24));
        let split3 = split(&Partitioning::Split { n: 3 }, &schema, &[b], &BTreeMap::new()).unwrap();
        assert_eq!(rows(&split3), [34, 33, 33]);
        let first = split3[1][0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(first, 65);
    }

    #[test]
    fn samples_give_even_boundaries() {
        let b = batch((0..1000).rev().map(Some).collect());
        let (schema, s) = sample(&b.schema(), &[b], &["k".to_string()], 100).unwrap();
        assert_eq!(s[0].num_rows(), 100);
        assert_eq!(schema.fields().len(), 1);
        let desc = SortKey { column: "k".into(), ascending: false, nulls_first: false };
        let (_, bounds) = boundaries(&schema, &s, &[desc], 4).unwrap();
        let v: Vec<i64> =
            bounds[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().iter().flatten().collect();
        assert_eq!(v, [749, 499, 249]);
    }

    #[test]
    fn buckets_round_trip_through_one_object() {
        let b = batch((0..50).map(Some).collect());
        let p = Partitioning::Hash { keys: vec!["s".into()], n: 4 };
        let mut buckets = split(&p, &b.schema(), std::slice::from_ref(&b), &BTreeMap::new()).unwrap();
        buckets.push(vec![]);
        let (bytes, ranges) = encode(&b.schema(), &buckets, true).unwrap();
        assert_eq!(ranges.len(), 5);
        for (r, bucket) in ranges.iter().zip(&buckets) {
            let slice = bytes.slice(r.offset as usize..(r.offset + r.len) as usize);
            let (schema, back) = decode("mem", slice).unwrap();
            assert_eq!(schema, b.schema());
            assert_eq!(back, *bucket);
            assert_eq!(r.rows as usize, bucket.iter().map(RecordBatch::num_rows).sum::<usize>());
        }
    }
}
