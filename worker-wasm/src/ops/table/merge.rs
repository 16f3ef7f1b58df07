//! The last step of a sort: runs already sorted by the same keys (the buckets one range of a
//! range shuffle got from each map task, each map having sorted its partition first) merged
//! into one sorted table. Rows are compared by their keys in arrow's row format (bytes whose
//! order is the sort order), a run's head against the others' through a heap: `log k`
//! comparisons a row for `k` runs, where sorting the runs' rows afresh costs `log n`. The
//! columns are gathered with arrow's `interleave` from the runs' own batches, so a string view
//! keeps pointing at the run's buffer rather than being copied.
//!
//! Ties keep the order of the runs (then the order within a run): the result is the stable
//! sort of the runs one after another.

use super::partition::{key_columns, sort_converter};
use crate::error::{Error, Result};
use arrow::array::Array;
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::row::{Row, Rows};
use shoal_protocol::SortKey;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Rows per output batch (DataFusion's default batch size).
const BATCH_ROWS: usize = 8192;

/// `runs`, each sorted by `keys`, merged into one table sorted by `keys`, in batches of at most
/// [`BATCH_ROWS`] rows. Every batch must have `schema`.
pub fn merge(schema: &SchemaRef, runs: Vec<Vec<RecordBatch>>, keys: &[SortKey]) -> Result<Vec<RecordBatch>> {
    // The batches of every run, one list; run `r` holds `batches[starts[r]..starts[r + 1]]`.
    let mut batches = Vec::new();
    let mut starts = vec![0];
    for run in runs {
        batches.extend(run.into_iter().filter(|b| b.num_rows() > 0));
        starts.push(batches.len());
    }
    if let Some(other) = batches.iter().find(|b| b.schema().fields() != schema.fields()) {
        return Err(Error::Schema(format!(
            "merge: a run's schema differs from the others ({:?} against {:?})",
            other.schema().fields(),
            schema.fields()
        )));
    }
    let nonempty = starts.windows(2).filter(|w| w[0] < w[1]).count();
    if nonempty <= 1 {
        return Ok(batches);
    }
    let converter = sort_converter(keys, schema)?;
    let rows = batches
        .iter()
        .map(|b| {
            converter
                .convert_columns(&key_columns(b, keys)?)
                .map_err(Error::arrow("merge: converting keys to rows"))
        })
        .collect::<Result<Vec<Rows>>>()?;
    let order = merged_order(&rows, &starts);
    drop(rows);
    gather(schema, &batches, &order)
}

/// The head of a run in the merge: its current row, then the run (ties go to the earlier run).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Head<'a> {
    row: Row<'a>,
    run: usize,
}

/// `(batch, row)` of every row in merged order. `rows[b]` are batch `b`'s keys; run `r` is the
/// batches `starts[r]..starts[r + 1]`, none of them empty.
fn merged_order(rows: &[Rows], starts: &[usize]) -> Vec<(usize, usize)> {
    let total = rows.iter().map(Rows::num_rows).sum();
    let mut order = Vec::with_capacity(total);
    // Where each run is: (batch, row).
    let mut at: Vec<(usize, usize)> = starts.iter().map(|&s| (s, 0)).collect();
    let mut heap: BinaryHeap<Reverse<Head<'_>>> = (0..starts.len() - 1)
        .filter(|&r| starts[r] < starts[r + 1])
        .map(|r| Reverse(Head { row: rows[starts[r]].row(0), run: r }))
        .collect();
    while let Some(mut top) = heap.peek_mut() {
        let run = top.0.run;
        let (batch, row) = at[run];
        order.push((batch, row));
        let next = if row + 1 < rows[batch].num_rows() {
            Some((batch, row + 1))
        } else if batch + 1 < starts[run + 1] {
            Some((batch + 1, 0))
        } else {
            None
        };
        match next {
            Some((b, r)) => {
                at[run] = (b, r);
                top.0.row = rows[b].row(r);
            }
            None => {
                std::collections::binary_heap::PeekMut::pop(top);
            }
        }
    }
    order
}

/// The rows `order` names, `(batch, row)` each, gathered in that order into batches of at
/// most [`BATCH_ROWS`] rows.
fn gather(schema: &SchemaRef, batches: &[RecordBatch], order: &[(usize, usize)]) -> Result<Vec<RecordBatch>> {
    let columns: Vec<Vec<&dyn Array>> =
        (0..schema.fields().len()).map(|c| batches.iter().map(|b| b.column(c).as_ref()).collect()).collect();
    order
        .chunks(BATCH_ROWS)
        .map(|chunk| {
            let arrays = columns
                .iter()
                .map(|sources| interleave(sources, chunk))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(Error::arrow("merge: gathering the merged rows"))?;
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
                .map_err(Error::arrow("merge: assembling the merged rows"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringViewArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8View, false),
        ]))
    }

    fn batch(k: &[Option<i64>], id: &[i64]) -> RecordBatch {
        // Long enough that most values live in the view array's data buffer.
        let s: Vec<String> = id.iter().map(|i| format!("a value longer than twelve bytes, {i}")).collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(k.to_vec())),
                Arc::new(Int64Array::from(id.to_vec())),
                Arc::new(StringViewArray::from_iter_values(s)),
            ],
        )
        .unwrap()
    }

    fn column(batches: &[RecordBatch], c: usize) -> Vec<Option<i64>> {
        batches
            .iter()
            .flat_map(|b| b.column(c).as_primitive::<Int64Type>().iter().collect::<Vec<_>>())
            .collect()
    }

    /// A key order: ascending or not, nulls first or last, as a comparator over `Option<i64>`.
    fn compare(a: &Option<i64>, b: &Option<i64>, key: &SortKey) -> std::cmp::Ordering {
        match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) if key.nulls_first => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
            (_, None) if key.nulls_first => std::cmp::Ordering::Greater,
            (_, None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) if key.ascending => x.cmp(y),
            (Some(x), Some(y)) => y.cmp(x),
        }
    }

    /// Seven runs of pseudo-random keys with repeats and nulls (one run empty, one made of an
    /// empty batch, batches of uneven sizes), each sorted, merged in every direction and null
    /// placement: the result is the stable sort of the runs' rows one after another, checked
    /// with the standard library's stable sort, and every string travels with its row.
    #[test]
    fn merges_sorted_runs_into_the_stable_sort_of_their_rows() {
        for (ascending, nulls_first) in [(true, false), (true, true), (false, false), (false, true)] {
            let key = SortKey { column: "k".into(), ascending, nulls_first };
            let mut runs = vec![];
            let mut all = vec![];
            let mut id = 0i64;
            for r in 0..7u64 {
                let len = [900, 0, 3, 1200, 17, 1, 640][r as usize];
                let mut rows: Vec<(Option<i64>, i64)> = (0..len)
                    .map(|i| {
                        let x = (i * 7919 + r * 104_729) % 251;
                        id += 1;
                        ((x % 13 != 0).then_some((x % 97) as i64), id)
                    })
                    .collect();
                rows.sort_by(|a, b| compare(&a.0, &b.0, &key));
                all.extend(rows.iter().copied());
                let cut = rows.len() / 3;
                let parts = [&rows[..cut], &rows[cut..]];
                let mut run: Vec<RecordBatch> = parts
                    .iter()
                    .map(|p| {
                        batch(
                            &p.iter().map(|x| x.0).collect::<Vec<_>>(),
                            &p.iter().map(|x| x.1).collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                if r == 1 {
                    run = vec![batch(&[], &[])];
                }
                runs.push(run);
            }
            let merged = merge(&schema(), runs, std::slice::from_ref(&key)).unwrap();
            all.sort_by(|a, b| compare(&a.0, &b.0, &key));
            assert_eq!(column(&merged, 0), all.iter().map(|x| x.0).collect::<Vec<_>>(), "keys {key:?}");
            assert_eq!(column(&merged, 1), all.iter().map(|x| Some(x.1)).collect::<Vec<_>>(), "ids {key:?}");
            let strings: Vec<String> = merged
                .iter()
                .flat_map(|b| b.column(2).as_string_view().iter().map(|s| s.unwrap().to_string()))
                .collect();
            let expected: Vec<String> =
                all.iter().map(|x| format!("a value longer than twelve bytes, {}", x.1)).collect();
            assert_eq!(strings, expected);
            assert!(merged.iter().all(|b| b.num_rows() <= BATCH_ROWS));
            assert_eq!(merged.iter().map(RecordBatch::num_rows).sum::<usize>(), all.len());
        }
    }

    /// Two keys: the second orders rows the first ties, across runs.
    #[test]
    fn a_second_key_orders_ties_of_the_first() {
        let runs = vec![
            vec![batch(&[Some(1), Some(1), Some(2)], &[9, 3, 5])],
            vec![batch(&[Some(1), Some(2), Some(2)], &[7, 8, 1])],
        ];
        let keys = [SortKey::asc("k"), SortKey { column: "id".into(), ascending: false, nulls_first: false }];
        let merged = merge(&schema(), runs, &keys).unwrap();
        assert_eq!(column(&merged, 1), [9, 7, 3, 8, 5, 1].map(Some));
    }

    #[test]
    fn one_run_is_returned_as_it_is_and_a_missing_key_is_named() {
        let one = vec![vec![batch(&[Some(2), Some(1)], &[1, 2])], vec![]];
        // A single run is not compared at all (it is sorted already).
        assert_eq!(column(&merge(&schema(), one, &[SortKey::asc("k")]).unwrap(), 1), [Some(1), Some(2)]);
        let two = vec![vec![batch(&[Some(1)], &[1])], vec![batch(&[Some(0)], &[2])]];
        let err = merge(&schema(), two, &[SortKey::asc("nope")]).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
