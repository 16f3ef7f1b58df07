//! The data-dependent inputs of a range shuffle, computed by tasks of the graph: a sample of
//! each partition's sort keys, the boundaries that split the sorted samples evenly, and those
//! boundaries as text (the divisions a manifest records).

use super::partition::{key_columns, sort_converter};
use crate::error::{Error, Result};
use crate::io::Table;
use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use shoal_protocol::SortKey;
use std::sync::Arc;

/// At most `rows` evenly spaced rows of `columns`: a deterministic sample of a partition's sort
/// keys, from which [`boundaries`] are computed.
pub fn sample(schema: &SchemaRef, batches: &[RecordBatch], columns: &[String], rows: usize) -> Result<Table> {
    let ix = columns
        .iter()
        .map(|c| schema.index_of(c).map_err(|_| Error::Schema(format!("sample: no column '{c}'"))))
        .collect::<Result<Vec<_>>>()?;
    let projected = Arc::new(schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?);
    let all =
        arrow::compute::concat_batches(schema, batches).map_err(Error::arrow("sample: concatenating"))?;
    let all = all.project(&ix).map_err(Error::arrow("sample: projecting the columns"))?;
    let total = all.num_rows();
    let step = total.div_ceil(rows.max(1)).max(1);
    let picks: UInt32Array = (0..total).step_by(step).map(|i| i as u32).collect();
    let taken = take_record_batch(&all, &picks).map_err(Error::arrow("sample: taking the rows"))?;
    Ok((projected, vec![taken]))
}

/// The `n - 1` rows splitting the sorted sample rows into `n` equal parts: the boundaries of a
/// range shuffle into `n` buckets (fewer rows when the sample is smaller than `n`).
pub fn boundaries(schema: &SchemaRef, batches: &[RecordBatch], keys: &[SortKey], n: u32) -> Result<Table> {
    let all =
        arrow::compute::concat_batches(schema, batches).map_err(Error::arrow("boundaries: concatenating"))?;
    let converter = sort_converter(keys, schema)?;
    let rows = converter
        .convert_columns(&key_columns(&all, keys)?)
        .map_err(Error::arrow("boundaries: converting keys to rows"))?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    let len = order.len();
    let n = n.max(1) as usize;
    let picks: UInt32Array = if len == 0 {
        UInt32Array::from(Vec::<u32>::new())
    } else {
        (1..n).map(|i| order[(i * len / n).min(len - 1)]).collect()
    };
    let taken = take_record_batch(&all, &picks).map_err(Error::arrow("boundaries: taking the rows"))?;
    Ok((schema.clone(), vec![taken]))
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
            .map_err(Error::arrow("divisions: formatting boundary rows"))?;
        for r in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    use crate::io::fixtures::keyed_batch as batch;

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
}
