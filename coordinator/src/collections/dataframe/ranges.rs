//! Key ranges of partitions: what Parquet statistics tell about where each value of an integer
//! column can be.
//!
//! Data written in key order (an `orders` table in files by order key, its `lineitem` in files
//! of the same orders) has files whose ranges of that key do not overlap. Then every group of an
//! aggregation by the key lies in one partition ([`AggStrategy::Local`]), and a join on it
//! need pair a partition only with the partitions of the other side whose ranges overlap its own
//! ([`JoinStrategy::Ranges`]): no shuffle either way.
//!
//! A range is known for a partition when every row group it reads has statistics for the
//! column that bound it and count no nulls in it (a null key would be a group of its own in
//! every partition). Operators that keep the column's values keep the ranges; an aggregation
//! run locally, and joins whose output partitions are one side's, keep them for that side's
//! columns (and for an inner join's other key, whose values are equal).

use super::plan::{AggStrategy, JoinStrategy, Plan, ScanNode, keeps_values};
use arrow::datatypes::DataType;
use shoal_protocol::{FileFormat, JoinHow};
use std::collections::HashMap;

/// Per output partition, the `(min, max)` of a column's values; `None` for a partition without
/// rows.
pub type KeyRanges = Vec<Option<(i64, i64)>>;

/// Whether ranges of a column of this type compare as its values do: integers and dates, whose
/// Parquet statistics are the values themselves.
pub fn rangeable(dt: &DataType) -> bool {
    dt.is_integer() || matches!(dt, DataType::Date32 | DataType::Date64)
}

/// The ranges of `column` over `plan`'s output partitions, when planning knows them.
pub fn key_ranges(plan: &Plan, column: &str) -> Option<KeyRanges> {
    match plan {
        Plan::Scan(s) => scan_ranges(s, column),
        Plan::Map { input, op, .. } if keeps_values(op, &[column.to_string()]) => key_ranges(input, column),
        // Materialized partition by partition: the same ranges.
        Plan::Shared { input } => key_ranges(input, column),
        Plan::Aggregate(a) if matches!(a.strategy, Some((AggStrategy::Local, _))) => {
            a.keys.iter().any(|k| k == column).then(|| key_ranges(&a.input, column)).flatten()
        }
        Plan::Join(j) => {
            // The output partitions are the left side's or (a broadcast left) the right's.
            let left_kept = match j.strategy.as_ref().map(|s| s.0) {
                Some(JoinStrategy::BroadcastRight | JoinStrategy::PartitionWise | JoinStrategy::Ranges) => {
                    true
                }
                Some(JoinStrategy::BroadcastLeft) => false,
                _ => return None,
            };
            let names = |p: &Plan| -> Option<Vec<String>> {
                Some(p.schema().ok()?.fields().iter().map(|f| f.name().clone()).collect())
            };
            let columns = shoal_worker::ops::table::join::join_columns(
                &names(&j.left)?,
                &names(&j.right)?,
                j.how,
                &j.left_on,
                &j.right_on,
                &j.suffixes,
            );
            let out = columns.into_iter().find(|c| c.name == column)?;
            let (kept, kept_on, kept_col, other_on, other_col) = match left_kept {
                true => (&j.left, &j.left_on, out.left, &j.right_on, out.right),
                false => (&j.right, &j.right_on, out.right, &j.left_on, out.left),
            };
            if let Some(c) = kept_col {
                return key_ranges(kept, &c);
            }
            // An inner join's key of the other side equals the kept side's key on every row.
            let k = other_on.iter().position(|c| Some(c) == other_col.as_ref())?;
            (j.how == JoinHow::Inner).then(|| key_ranges(kept, &kept_on[k])).flatten()
        }
        _ => None,
    }
}

/// Ranges of `column` over a Parquet scan's partitions, from its row groups' statistics.
fn scan_ranges(s: &ScanNode, column: &str) -> Option<KeyRanges> {
    let read = s.projection.as_ref().is_none_or(|p| p.iter().any(|c| c == column));
    let typed = s.file_schema.field_with_name(column).is_ok_and(|f| rangeable(f.data_type()));
    if s.format != FileFormat::Parquet || !read || !typed {
        return None;
    }
    let files: HashMap<&str, &super::plan::FileInfo> =
        s.files.iter().map(|f| (f.object.url.as_str(), f)).collect();
    let mut out = Vec::with_capacity(s.partitions.len());
    for partition in &s.partitions {
        let mut range: Option<(i64, i64)> = None;
        for slice in partition {
            let file = files.get(slice.object.url.as_str())?;
            let groups: Vec<usize> = match &slice.row_groups {
                Some(g) => g.clone(),
                None => (0..file.row_groups.len()).collect(),
            };
            for g in groups {
                let rows = file.row_groups.get(g)?.1;
                match file.int_bounds.get(g).and_then(|b| b.get(column)) {
                    Some(&(lo, hi)) => range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi)))),
                    None if rows == 0 => {}
                    None => return None,
                }
            }
        }
        out.push(range);
    }
    Some(out)
}

/// Whether no two partitions' ranges overlap: every value lies in at most one partition.
pub fn disjoint(ranges: &KeyRanges) -> bool {
    let mut sorted: Vec<(i64, i64)> = ranges.iter().flatten().copied().collect();
    sorted.sort_unstable();
    sorted.windows(2).all(|w| w[0].1 < w[1].0)
}

/// For each partition of `left`, the partitions of `right` whose ranges overlap its own: the
/// only ones that can hold rows with its key values.
pub fn overlaps(left: &KeyRanges, right: &KeyRanges) -> Vec<Vec<usize>> {
    left.iter()
        .map(|l| match l {
            None => vec![],
            Some((lo, hi)) => right
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_some_and(|(rlo, rhi)| rlo <= *hi && *lo <= rhi))
                .map(|(j, _)| j)
                .collect(),
        })
        .collect()
}

/// The first join key pair whose both columns have known ranges: its position among the join
/// keys and its `(left, right)` ranges. Rows that match agree on every key, so one pair bounds
/// where a row's matches can be.
pub fn join_key_pair(
    left: &Plan,
    right: &Plan,
    left_on: &[String],
    right_on: &[String],
) -> Option<(usize, KeyRanges, KeyRanges)> {
    let (ls, rs) = (left.schema().ok()?, right.schema().ok()?);
    left_on.iter().zip(right_on).enumerate().find_map(|(k, (l, r))| {
        let lt = ls.field_with_name(l).ok()?.data_type().clone();
        let rt = rs.field_with_name(r).ok()?.data_type().clone();
        if lt != rt || !rangeable(&lt) {
            return None;
        }
        Some((k, key_ranges(left, l)?, key_ranges(right, r)?))
    })
}

/// Whether a ranges join reads its right side `side` from its files pruned to each left
/// partition's range of `key` (`lower_ranges_join`): a bare scan, by an integer key (whose
/// bounds are written as SQL integers).
pub fn pruned_by_key(side: &Plan, key: &str) -> bool {
    let integer = || side.schema().ok()?.field_with_name(key).ok().map(|f| f.data_type().is_integer());
    matches!(side, Plan::Scan(_)) && integer().unwrap_or(false)
}

/// How many right partitions' worth of rows the left partitions read when each reads, of every
/// right partition its range overlaps, only the share of that partition's range it overlaps
/// (values taken as spread evenly over a range): what pruning the right side's row groups and
/// pages to each left range leaves to decode.
pub fn overlapped_share(left: &KeyRanges, right: &KeyRanges) -> f64 {
    let share = |(lo, hi): (i64, i64), (rlo, rhi): (i64, i64)| {
        let width = (rhi as f64 - rlo as f64 + 1.0).max(1.0);
        ((hi.min(rhi) as f64 - lo.max(rlo) as f64 + 1.0) / width).clamp(0.0, 1.0)
    };
    left.iter()
        .zip(overlaps(left, right))
        .map(|(l, over)| match l {
            Some(l) => over.iter().filter_map(|&r| right[r].map(|r| share(*l, r))).sum(),
            None => 0.0,
        })
        .sum()
}

/// How many partitions' worth of `right` (joined on `key`) the partitions of a ranges join read
/// in all: each the right partitions its range overlaps, pruned to its range where the right
/// side is a scan by an integer key in key order (disjoint ranges: its pages are too; otherwise
/// a page holds keys from all over the range). `reads`: the partition reads, at least one each.
pub fn partitions_read(
    right: &Plan,
    key: &str,
    left_ranges: &KeyRanges,
    right_ranges: &KeyRanges,
) -> (usize, f64) {
    let reads = overlaps(left_ranges, right_ranges).iter().map(|o| o.len().max(1)).sum();
    match pruned_by_key(right, key) && disjoint(right_ranges) {
        true => (reads, overlapped_share(left_ranges, right_ranges)),
        false => (reads, reads as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_and_overlapping_ranges() {
        // lineitem and orders of TPC-H SF1 as tpchgen-cli writes them (first three files).
        let lineitem: KeyRanges =
            vec![Some((1, 749_959)), Some((749_984, 1_499_942)), Some((1_499_943, 2_249_925))];
        let orders: KeyRanges =
            vec![Some((1, 749_988)), Some((749_989, 1_500_000)), Some((1_500_001, 2_249_988))];
        assert!(disjoint(&lineitem) && disjoint(&orders));
        assert_eq!(overlaps(&lineitem, &orders), vec![vec![0], vec![0, 1], vec![1, 2]]);
        // Out of order, with an empty partition: still disjoint.
        assert!(disjoint(&vec![Some((10, 19)), None, Some((0, 9))]));
        // Touching ranges share a value.
        assert!(!disjoint(&vec![Some((0, 10)), Some((10, 20))]));
        assert_eq!(
            overlaps(&vec![Some((5, 5)), None], &vec![Some((0, 4)), Some((5, 9))]),
            vec![vec![1], vec![]]
        );
        // Pruned to each left range, lineitem reads orders file 0 up to 749_959, its last 5 keys
        // again and file 1 up to 1_499_942, then file 1's last 58 keys and file 2 up to
        // 2_249_925: about three files, not the five that overlap.
        let share = overlapped_share(&lineitem, &orders);
        let expected = (749_959.0 + 5.0 + 749_925.0) / 749_988.0 + (749_954.0 + 58.0) / 750_012.0;
        assert!((share - expected).abs() < 1e-9, "{share} vs {expected}");
        assert!(share < 3.0 + 1e-3 && share > 2.99);
    }
}
