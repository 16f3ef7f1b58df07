//! An aggregation joined on its group keys, reduced first by what it joins: `groupby(K)` of `X`
//! joined (inner, or semi with the aggregation on the left) to a side `R` on columns of `K` keeps
//! only the groups whose values of those columns `R` has. Every row of a group has the group's
//! key values, so a semi join of `X` with `R`'s join columns, below the aggregation, drops whole
//! groups and only those `R` cannot match: the aggregates of the groups that stay, and so the
//! join's rows, are the same. The aggregation then hashes, and its shuffle moves, only the rows
//! that can survive. TPC-H q20 aggregates a year of `lineitem` (870K rows, ~800K groups of part
//! and supplier) for the ~8K pairs of the `forest` parts in `partsupp`.
//!
//! Applied only where it should pay: `R`'s join columns (its estimated rows at their width) are
//! estimated small enough to broadcast and to hold at most a quarter of `X`'s rows. `R` is then computed twice, once as the filter
//! (its join columns only) and once for the join itself.

use super::estimate::{estimated_rows, schema_width};
use super::plan::{AggregateNode, JoinNode, MapOp, Plan, PlanConfig};
use crate::error::{Error, Result};
use shoal_protocol::JoinHow;
use std::sync::Arc;

/// The largest share of the aggregation's input rows the other side may have for the filter to
/// be added.
const MAX_SHARE: f64 = 0.25;

/// `plan` with every aggregation joined on its group keys to a small side filtered first by a
/// semi join with that side's join columns (see the module).
pub fn reduce_aggregations(plan: &Plan, config: &PlanConfig) -> Result<Plan> {
    let plan = plan.map_children(|child| reduce_aggregations(child, config))?;
    let Plan::Join(j) = &plan else { return Ok(plan) };
    let mut reduced = j.clone();
    let left = reduced_side(&j.left, &j.left_on, &j.right, &j.right_on, config)?;
    let right = match j.how {
        JoinHow::Inner => reduced_side(&j.right, &j.right_on, &j.left, &j.left_on, config)?,
        _ => None,
    };
    match (j.how, left, right) {
        (JoinHow::Inner | JoinHow::Semi, Some(left), _) => reduced.left = Arc::new(left),
        (JoinHow::Inner, None, Some(right)) => reduced.right = Arc::new(right),
        _ => return Ok(plan),
    }
    Ok(Plan::Join(reduced))
}

/// `side`, an aggregation whose group keys include `on`, with its input filtered by a semi join
/// with `other`'s columns `other_on`; `None` when `side` is no such aggregation or the filter
/// would not pay.
fn reduced_side(
    side: &Plan,
    on: &[String],
    other: &Arc<Plan>,
    other_on: &[String],
    config: &PlanConfig,
) -> Result<Option<Plan>> {
    let Plan::Aggregate(a) = side else { return Ok(None) };
    if on.is_empty() || !on.iter().all(|c| a.keys.contains(c)) {
        return Ok(None);
    }
    let (Some(input_rows), Some(other_rows)) = (estimated_rows(&a.input), estimated_rows(other)) else {
        return Ok(None);
    };
    if other_rows > input_rows * MAX_SHARE {
        return Ok(None);
    }
    let mut columns: Vec<String> = Vec::with_capacity(other_on.len());
    for c in other_on {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    let other_schema = other.schema()?;
    let indices = columns
        .iter()
        .map(|c| other_schema.index_of(c))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Schema(format!("semi-join reduction: {e}")))?;
    let schema = Arc::new(other_schema.project(&indices).map_err(|e| Error::Schema(e.to_string()))?);
    // What the filter reads: its rows at the width of the join columns alone (a select passes
    // its input's estimate through, which counts every column the side carries).
    let narrow = other_rows * schema_width(&schema);
    let keys = Plan::Map { input: other.clone(), op: MapOp::Select { columns }, schema };
    if (keys.estimated_bytes() as f64).min(narrow) > config.broadcast_bytes as f64 {
        return Ok(None);
    }
    let mut filter = JoinNode {
        left: a.input.clone(),
        right: Arc::new(keys),
        how: JoinHow::Semi,
        left_on: on.to_vec(),
        right_on: other_on.to_vec(),
        suffixes: ("_x".into(), "_y".into()),
        schema: a.input.schema()?,
        hint: None,
        npartitions: None,
        strategy: None,
        cost: None,
    };
    filter.schema = filter.output_schema()?;
    let aggregate = AggregateNode { input: Arc::new(Plan::Join(filter)), strategy: None, ..a.clone() };
    Ok(Some(Plan::Aggregate(aggregate)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::dataframe::strategy::tests::{join, ordered};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn the_other_side_is_measured_by_its_join_columns_alone() {
        // X: 8M rows aggregated by `xa`; R: 100K rows in 200 MB of files (wide rows), whose
        // join column alone is 800 KB. TPC-H q20 at SF10: the forest parts' partsupp rows.
        let x = ordered("x", ("xk", "xa", 1_000_000), 80, 100_000, 10_000_000);
        let r = ordered("r", ("rk", "ra", 1_000_000), 10, 10_000, 20_000_000);
        let schema = Arc::new(Schema::new(vec![
            Field::new("xa", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let aggregate = Plan::Aggregate(AggregateNode {
            input: Arc::new(x),
            keys: vec!["xa".into()],
            aggs: vec![("n".into(), "count(*)".into())],
            schema,
            split_out: None,
            split_every: None,
            strategy: None,
        });
        let plan = join(aggregate, r, ("xa", "ra"));
        let config = PlanConfig::default();
        let Plan::Join(j) = reduce_aggregations(&plan, &config).unwrap() else { panic!("not a join") };
        let Plan::Aggregate(a) = j.left.as_ref() else { panic!("not an aggregation: {:?}", j.left) };
        let Plan::Join(filter) = a.input.as_ref() else { panic!("no filter under the aggregation") };
        assert_eq!(
            (filter.how, filter.left_on.clone(), filter.right_on.clone()),
            (JoinHow::Semi, vec!["xa".to_string()], vec!["ra".to_string()])
        );
        // Over the broadcast limit even by its join columns: left as it is.
        let small = PlanConfig { broadcast_bytes: 500_000, ..config };
        let Plan::Join(j) = reduce_aggregations(&plan, &small).unwrap() else { panic!("not a join") };
        let Plan::Aggregate(a) = j.left.as_ref() else { panic!("not an aggregation") };
        assert!(matches!(a.input.as_ref(), Plan::Scan(_)), "{:?}", a.input);
    }
}
