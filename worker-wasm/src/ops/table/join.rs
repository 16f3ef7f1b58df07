//! Equi-joins with pandas `merge` naming. [`join_columns`] is shared with the coordinator's
//! projection pushdown, so both agree on the names a join makes.

use super::session::check_columns;
use crate::error::{Error, Result};
use datafusion::common::{Column, JoinType};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::prelude::{DataFrame, Expr};
use shoal_protocol::{JoinBuild, JoinHow};
use std::collections::HashSet;

/// An equi-join with pandas `merge` naming: a key with the same name on both sides appears once
/// (for an outer join, the non-null of the two); other columns present on both sides get the
/// suffixes. Null keys never match, as in SQL and DuckDB. `right` is the task's side table;
/// the hash table is built on the side `build` names.
pub fn join(
    left: DataFrame,
    right: DataFrame,
    how: JoinHow,
    (left_on, right_on): (&[String], &[String]),
    suffixes: &(String, String),
    build: JoinBuild,
) -> Result<DataFrame> {
    if left_on.len() != right_on.len() || left_on.is_empty() {
        return Err(Error::Schema(format!(
            "merge: left_on has {} columns and right_on {}; they must match and not be empty",
            left_on.len(),
            right_on.len()
        )));
    }
    check_columns(&left, "merge (left side)", left_on.iter().map(String::as_str))?;
    check_columns(&right, "merge (right side)", right_on.iter().map(String::as_str))?;
    let names =
        |df: &DataFrame| -> Vec<String> { df.schema().fields().iter().map(|f| f.name().clone()).collect() };
    let columns = join_columns(&names(&left), &names(&right), how, left_on, right_on, suffixes);
    let mut seen = HashSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.name.as_str())) {
        return Err(Error::Schema(format!(
            "merge: the result would have two columns named '{}' (suffixes '{}' and '{}' make a name \
             that is already taken); choose other suffixes, or rename a column first",
            dup.name, suffixes.0, suffixes.1
        )));
    }
    let lcol = |n: &str| Expr::Column(Column::new(Some("l"), n));
    let rcol = |n: &str| Expr::Column(Column::new(Some("r"), n));
    let on: Vec<Expr> = left_on.iter().zip(right_on).map(|(l, r)| lcol(l).eq(rcol(r))).collect();
    // DataFusion builds its hash table on the left input of a join and streams the right
    // through it, and it cannot tell which side is smaller here (the task's input streams in, of
    // unknown size), so the coordinator's choice is followed: building on the side table, that
    // goes on DataFusion's left with the join type mirrored. Columns are picked by qualifier
    // below, in merge order, either way.
    let join_type = match how {
        JoinHow::Inner => JoinType::Inner,
        JoinHow::Left => JoinType::Left,
        JoinHow::Right => JoinType::Right,
        JoinHow::Outer => JoinType::Full,
        JoinHow::Semi => JoinType::LeftSemi,
        JoinHow::Anti => JoinType::LeftAnti,
    };
    let (left, right) = (left.alias("l")?, right.alias("r")?);
    let joined = match build {
        JoinBuild::Input => left.join_on(right, join_type, on),
        JoinBuild::Side => right.join_on(left, join_type.swap(), on),
    }
    .map_err(|e| Error::Schema(format!("merge: {}", e.strip_backtrace())))?;
    let exprs: Vec<Expr> = columns
        .iter()
        .filter_map(|c| {
            let e = match (&c.left, &c.right) {
                (Some(l), Some(r)) => match how {
                    JoinHow::Right => rcol(r),
                    JoinHow::Outer => coalesce(vec![lcol(l), rcol(r)]),
                    _ => lcol(l),
                },
                (Some(l), None) => lcol(l),
                (None, Some(r)) => rcol(r),
                (None, None) => return None,
            };
            Some(e.alias(&c.name))
        })
        .collect();
    joined.select(exprs).map_err(|e| Error::Schema(format!("merge: {}", e.strip_backtrace())))
}

/// One output column of a join: its name and the column(s) it comes from (both for a key with
/// the same name on both sides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinColumn {
    pub name: String,
    pub left: Option<String>,
    pub right: Option<String>,
}

/// The output columns of a join, in order, with pandas `merge` naming.
pub fn join_columns(
    left: &[String],
    right: &[String],
    how: JoinHow,
    left_on: &[String],
    right_on: &[String],
    suffixes: &(String, String),
) -> Vec<JoinColumn> {
    let shared: HashSet<&str> =
        left_on.iter().zip(right_on).filter(|(l, r)| l == r).map(|(l, _)| l.as_str()).collect();
    let left_only = matches!(how, JoinHow::Semi | JoinHow::Anti);
    let mut out = Vec::with_capacity(left.len() + right.len());
    for n in left {
        let (name, right_col) = if shared.contains(n.as_str()) && !left_only {
            (n.clone(), Some(n.clone()))
        } else if left_only || !right.contains(n) {
            (n.clone(), None)
        } else {
            (format!("{n}{}", suffixes.0), None)
        };
        out.push(JoinColumn { name, left: Some(n.clone()), right: right_col });
    }
    if !left_only {
        for n in right.iter().filter(|n| !shared.contains(n.as_str())) {
            let name = if left.contains(n) { format!("{n}{}", suffixes.1) } else { n.clone() };
            out.push(JoinColumn { name, left: None, right: Some(n.clone()) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Stream;
    use crate::ops::table::session::{TaskSession, frame, stream_frame};
    use arrow::array::{Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::joins::HashJoinExec;
    use datafusion::physical_plan::streaming::StreamingTableExec;
    use futures::StreamExt;
    use std::sync::Arc;

    fn table(key: &str, value: &str, rows: &[(Option<i64>, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(key, DataType::Int64, true),
            Field::new(value, DataType::Utf8, false),
        ]));
        let keys = Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let values = StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(values)]).unwrap()
    }

    /// The task's input (`a`, `v`) streaming, joined to the side table (`k`, `w`) on `a = k`:
    /// the `v`/`w` pairs of the result, sorted, and the physical plan.
    async fn joined(
        how: JoinHow,
        build: JoinBuild,
    ) -> (Vec<String>, Arc<dyn datafusion::physical_plan::ExecutionPlan>) {
        let input = table(
            "a",
            "v",
            &[(Some(1), "a1"), (Some(2), "a2"), (Some(2), "a2b"), (Some(3), "a3"), (None, "an")],
        );
        let side = table("k", "w", &[(Some(2), "b2"), (Some(3), "b3"), (Some(4), "b4"), (None, "bn")]);
        let session = TaskSession::take(1 << 30).unwrap();
        let stream = Stream { schema: input.schema(), batches: futures::stream::iter([Ok(input)]).boxed() };
        let left = stream_frame(session.ctx(), stream).unwrap();
        let right = frame(session.ctx(), side.schema(), vec![side]).unwrap();
        let suffixes = ("_x".to_string(), "_y".to_string());
        let df = join(left, right, how, (&["a".into()], &["k".into()]), &suffixes, build).unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let batches = df.collect().await.unwrap();
        let mut pairs = Vec::new();
        for b in &batches {
            let text = |name: &str, row: usize| match b.column_by_name(name) {
                Some(c) => {
                    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
                    if c.is_null(row) { "-".to_string() } else { c.value(row).to_string() }
                }
                None => "_".to_string(),
            };
            pairs.extend((0..b.num_rows()).map(|i| format!("{}/{}", text("v", i), text("w", i))));
        }
        pairs.sort();
        (pairs, plan)
    }

    #[tokio::test]
    async fn every_join_builds_on_the_side_it_is_told() {
        for how in HOWS {
            for build in [JoinBuild::Side, JoinBuild::Input] {
                let (_, plan) = joined(how, build).await;
                let mut stack = vec![plan];
                let mut joins = 0;
                while let Some(node) = stack.pop() {
                    if let Some(j) = node.downcast_ref::<HashJoinExec>() {
                        joins += 1;
                        // DataFusion builds on its left input and streams its right.
                        let streams = |p: &Arc<dyn datafusion::physical_plan::ExecutionPlan>| {
                            p.downcast_ref::<StreamingTableExec>().is_some()
                        };
                        assert_eq!(streams(j.left()), build == JoinBuild::Input, "{how:?} {build:?}");
                        assert_eq!(streams(j.right()), build == JoinBuild::Side, "{how:?} {build:?}");
                    }
                    stack.extend(node.children().into_iter().cloned());
                }
                assert_eq!(joins, 1, "{how:?}");
            }
        }
    }

    const HOWS: [JoinHow; 6] =
        [JoinHow::Inner, JoinHow::Left, JoinHow::Right, JoinHow::Outer, JoinHow::Semi, JoinHow::Anti];

    #[tokio::test]
    async fn every_join_keeps_the_rows_merge_keeps() {
        // Hand-checked: keys 1, 2, 2, 3, null against 2, 3, 4, null; nulls never match.
        let inner = ["a2/b2", "a2b/b2", "a3/b3"];
        let cases: [(JoinHow, Vec<&str>); 6] = [
            (JoinHow::Inner, inner.to_vec()),
            (JoinHow::Left, [&inner[..], &["a1/-", "an/-"]].concat()),
            (JoinHow::Right, [&inner[..], &["-/b4", "-/bn"]].concat()),
            (JoinHow::Outer, [&inner[..], &["a1/-", "an/-", "-/b4", "-/bn"]].concat()),
            (JoinHow::Semi, vec!["a2/_", "a2b/_", "a3/_"]),
            (JoinHow::Anti, vec!["a1/_", "an/_"]),
        ];
        for (how, want) in cases {
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            for build in [JoinBuild::Side, JoinBuild::Input] {
                assert_eq!(joined(how, build).await.0, want, "{how:?} {build:?}");
            }
        }
    }
}
