//! A sort of a table the task already holds (a range shuffle's bucket, read whole): one
//! permutation of all its rows, then one gather per column.
//!
//! A DataFusion plan sorts each input batch on its own (a copy of every column) and then merges
//! the sorted batches (a second copy, and a comparison per row at each level of a tree as deep
//! as the log of the number of batches). A bucket arrives as small batches, one per input batch
//! of every map task that wrote to it (about 1,000 rows each in an 8-way shuffle), so that tree
//! is deep. Here each column is made whole (a sequential copy), the key columns give the order
//! of all rows at once, and each column is gathered in that order: `bench/sort_kernel.rs` sorts
//! a 750,572-row bucket of TPC-H `lineitem` in 0.31x the plan's time
//! (`bench/results/sort-kernel.txt`). Gathering from the small batches directly (arrow's
//! `interleave`) was slower than the plan: every call walks all the source arrays. The sort
//! holds the sorted copy beside the input, so it runs only when twice the input fits in the
//! task's memory; otherwise the plan sorts, spilling.

use super::session::unknown_column;
use crate::error::{Error, Result};
use crate::io::Table;
use crate::io::memory::held_bytes;
use arrow::array::{Array, ArrayRef};
use arrow::compute::{SortColumn, SortOptions, concat, lexsort_to_indices, take};
use arrow::datatypes::DataType;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use shoal_protocol::SortKey;

/// Rows per output batch (DataFusion's default batch size).
const BATCH_ROWS: usize = 8192;

/// Whether a sort by `keys` of `table` runs here rather than as a plan: every key is a column of
/// a type arrow sorts directly, the rows can be numbered in 32 bits (arrow's sort indices), and
/// the input and its sorted copy fit in `memory_bytes`.
pub fn eligible(table: &Table, keys: &[SortKey], memory_bytes: u64) -> bool {
    let (schema, batches) = table;
    let sortable = |k: &SortKey| schema.field_with_name(&k.column).is_ok_and(|f| sortable(f.data_type()));
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    !keys.is_empty()
        && keys.iter().all(sortable)
        && u32::try_from(rows).is_ok()
        && (held_bytes(batches.iter()) as u64).saturating_mul(2) <= memory_bytes
}

/// Types the sort kernels order directly, as a plan would (floats in IEEE 754 total order).
fn sortable(t: &DataType) -> bool {
    t.is_primitive()
        || matches!(
            t,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        )
}

/// `table` sorted by `keys`, in batches of [`BATCH_ROWS`] (slices of one sorted table).
pub fn sort(table: Table, keys: &[SortKey]) -> Result<Table> {
    let (schema, batches) = table;
    let key_columns = keys
        .iter()
        .map(|key| schema.index_of(&key.column).map_err(|_| unknown_column("sort", &key.column, &schema)))
        .collect::<Result<Vec<usize>>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows <= 1 {
        return Ok((schema, batches));
    }
    // Each column whole (the input dropped once all are copied), then the order of the rows by
    // the key columns, then each column gathered in that order.
    let mut columns: Vec<ArrayRef> = (0..schema.fields().len())
        .map(|c| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            concat(&parts).map_err(Error::arrow("sort: concatenating a column"))
        })
        .collect::<Result<_>>()?;
    drop(batches);
    let sort_columns: Vec<SortColumn> = keys
        .iter()
        .zip(&key_columns)
        .map(|(key, &c)| SortColumn {
            values: columns[c].clone(),
            options: Some(SortOptions { descending: !key.ascending, nulls_first: key.nulls_first }),
        })
        .collect();
    let order = lexsort_to_indices(&sort_columns, None).map_err(Error::arrow("sort: ordering the rows"))?;
    drop(sort_columns);
    for column in &mut columns {
        *column =
            take(column.as_ref(), &order, None).map_err(Error::arrow("sort: gathering the sorted rows"))?;
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let sorted = RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(Error::arrow("sort: assembling the sorted rows"))?;
    let out = (0..rows).step_by(BATCH_ROWS).map(|at| sorted.slice(at, BATCH_ROWS.min(rows - at))).collect();
    Ok((schema, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Float64Array, Int64Array, StringViewArray};
    use arrow::datatypes::{Field, Float64Type, Int64Type, Schema};
    use std::sync::Arc;

    fn key(column: &str, ascending: bool, nulls_first: bool) -> SortKey {
        SortKey { column: column.into(), ascending, nulls_first }
    }

    /// One batch's `x`, `id` and `s`.
    type Part<'a> = (Vec<Option<f64>>, Vec<i64>, Vec<&'a str>);

    fn table(parts: &[Part<'_>]) -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8View, false),
        ]));
        let batches = parts
            .iter()
            .map(|(x, id, s)| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(Float64Array::from(x.clone())),
                        Arc::new(Int64Array::from(id.clone())),
                        Arc::new(StringViewArray::from(s.clone())),
                    ],
                )
                .unwrap()
            })
            .collect();
        (schema, batches)
    }

    fn ids(t: &Table) -> Vec<i64> {
        t.1.iter().flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec()).collect()
    }

    /// Across batches, with nulls, NaN and -0.0, both directions and both null placements: the
    /// order of a hand-checked list, every column moved with its key.
    #[test]
    fn sorts_across_batches_like_the_hand_checked_order() {
        let t = table(&[
            (vec![Some(3.0), None, Some(f64::NAN)], vec![0, 1, 2], vec!["c", "null", "nan"]),
            (vec![], vec![], vec![]),
            (
                vec![Some(-1.5), Some(0.0), Some(-0.0), Some(3.0)],
                vec![3, 4, 5, 6],
                vec!["a", "z", "mz", "c2"],
            ),
        ]);
        // IEEE 754 total order: -1.5 < -0.0 < 0.0 < 3.0 = 3.0 < NaN; the two 3.0s in either order.
        let asc = sort(t.clone(), &[key("x", true, false)]).unwrap();
        let got = ids(&asc);
        assert!(got == [3, 5, 4, 0, 6, 2, 1] || got == [3, 5, 4, 6, 0, 2, 1], "{got:?}");
        let strings: Vec<String> = asc
            .1
            .iter()
            .flat_map(|b| b.column(2).as_string_view().iter().map(|s| s.unwrap().to_string()))
            .collect();
        assert_eq!(strings[..3], ["a", "mz", "z"]);
        assert_eq!(strings[5..], ["nan", "null"]);
        let desc = ids(&sort(t.clone(), &[key("x", false, true)]).unwrap());
        assert!(desc == [1, 2, 0, 6, 4, 5, 3] || desc == [1, 2, 6, 0, 4, 5, 3], "{desc:?}");
        // A second key breaks the tie.
        let two = ids(&sort(t, &[key("x", true, true), key("id", false, false)]).unwrap());
        assert_eq!(two, [1, 3, 5, 4, 6, 0, 2]);
    }

    /// Many small batches, as a bucket arrives: the result is the reference order (a stable sort
    /// of the same values by (value, id)), in full batches.
    #[test]
    fn many_small_batches_come_out_in_order_and_whole() {
        let mut parts = vec![];
        let mut all = vec![];
        for b in 0..40 {
            let x: Vec<Option<f64>> =
                (0..531).map(|i| Some(((i * 7919 + b * 104_729) % 1000) as f64)).collect();
            let id: Vec<i64> = (0..531).map(|i| b * 531 + i).collect();
            all.extend(x.iter().map(|v| v.unwrap()).zip(id.iter().copied()));
            parts.push((x, id, vec!["s"; 531]));
        }
        let sorted = sort(table(&parts), &[key("x", true, false), key("id", true, false)]).unwrap();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        assert_eq!(ids(&sorted), all.iter().map(|p| p.1).collect::<Vec<_>>());
        let sizes: Vec<usize> = sorted.1.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [8192, 8192, 4856]);
        let x: Vec<f64> = sorted
            .1
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
            .collect();
        assert!(x.is_sorted_by(|a, b| a <= b));
    }

    #[test]
    fn eligibility_follows_types_and_memory() {
        let t = table(&[(vec![Some(1.0)], vec![1], vec!["a"])]);
        let held = held_bytes(t.1.iter()) as u64;
        assert!(eligible(&t, &[key("s", true, false)], 2 * held));
        assert!(!eligible(&t, &[key("s", true, false)], 2 * held - 1));
        assert!(!eligible(&t, &[key("nope", true, false)], u64::MAX));
        assert!(!eligible(&t, &[], u64::MAX));
        let schema = Arc::new(Schema::new(vec![Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        )]));
        assert!(!eligible(&(schema, vec![]), &[key("l", true, false)], u64::MAX));
        let err = sort(t, &[key("nope", true, false)]).unwrap_err().to_string();
        assert!(err.contains("'nope'") && err.contains("x, id, s"), "{err}");
    }
}
