//! Splitting a map task's output rows into the buckets of a shuffle ([`Partitioning`]): by the
//! hash of canonicalised keys, by ranges between sampled boundaries (compared in arrow's row
//! format), or into contiguous splits. The buckets are encoded by [`crate::io::ipc`].

use super::Sides;
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::hash_utils::create_hashes;
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;
use shoal_protocol::{Partitioning, SortKey};

/// Splits `batches` into `partitioning.buckets()` buckets. `sides` are the task's side tables
/// (range boundaries live there).
pub fn split(
    partitioning: &Partitioning,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sides: &Sides,
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
                create_hashes(&arrays, REPARTITION_RANDOM_STATE.random_state(), &mut hashes)?;
                let assign = hashes.iter().map(|h| (h % n as u64) as usize);
                scatter(batch, assign, &mut buckets)?;
            }
        }
        Partitioning::Range { keys, port, .. } => {
            let (bounds_schema, bounds) = sides.get(port).ok_or_else(|| {
                Error::InvalidTask(format!("range shuffle: no boundaries table on port {port}"))
            })?;
            let bounds = arrow::compute::concat_batches(bounds_schema, bounds)
                .map_err(Error::arrow("range shuffle: concatenating the boundaries"))?;
            let converter = sort_converter(keys, schema)?;
            let bound_cols = boundary_columns(&bounds, keys, schema)?;
            let bound_rows = converter
                .convert_columns(&bound_cols)
                .map_err(Error::arrow("range shuffle: converting the boundaries to rows"))?;
            let bounds: Vec<_> = bound_rows.iter().collect();
            for batch in batches {
                let cols = key_columns(batch, keys)?;
                let rows = converter
                    .convert_columns(&cols)
                    .map_err(Error::arrow("range shuffle: converting keys to rows"))?;
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
            take_record_batch(batch, &UInt32Array::from(ix))
                .map_err(Error::arrow("shuffle: taking a bucket's rows"))?
        };
        buckets[b].push(taken);
    }
    Ok(())
}

pub(super) fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch.column_by_name(name).cloned().ok_or_else(|| Error::Schema(format!("shuffle: no column '{name}'")))
}

/// Casts a key column to the type it hashes as ([`hash_type`]).
fn canonical(array: &ArrayRef) -> Result<ArrayRef> {
    let target = hash_type(array.data_type());
    if &target == array.data_type() {
        return Ok(array.clone());
    }
    cast(array, &target).map_err(Error::arrow("hash shuffle: casting a key to its hash type"))
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
    RowConverter::new(fields).map_err(Error::arrow("sort keys: building the row converter"))
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
                cast(array, field.data_type())
                    .map_err(Error::arrow("range shuffle: casting a boundary column"))
            }
        })
        .collect()
}

/// The sort-key columns of `batch`.
pub(super) fn key_columns(batch: &RecordBatch, keys: &[SortKey]) -> Result<Vec<ArrayRef>> {
    keys.iter().map(|k| column(batch, &k.column)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use crate::io::fixtures::keyed_batch as batch;

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
}
