//! The optimizer: filters above joins pushed below them ([`pushdown`](super::pushdown)),
//! aggregations joined on their keys to a small side filtered by it first
//! ([`semijoin`](super::semijoin)),
//! projection pushdown (scans read only the columns later operators use),
//! predicate pushdown (filters right above a scan prune its row groups), subplans used more
//! than once computed once ([`shared`](super::shared)), then the choice of a strategy for
//! every aggregation and join ([`strategy`](super::strategy)).

use super::plan::PlanConfig;
use super::plan::{JoinNode, MapOp, Plan};
use super::pushdown;
use super::reorder;
use super::semijoin;
use super::shared;
use super::strategy::{aggregate_strategy, join_strategy, keep_ranges};
use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use shoal_protocol::{FileFormat, JoinHow};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Columns an SQL expression refers to, resolved against `schema`.
fn referenced_columns(sql: &str, schema: &SchemaRef) -> Result<BTreeSet<String>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| Error::Schema(e.to_string()))?;
    let ctx = shoal_worker::ops::table::session::session();
    let expr = ctx
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| Error::Schema(format!("invalid expression '{sql}': {e}")))?;
    Ok(expr.column_refs().into_iter().map(|c| c.name.clone()).collect())
}

/// Rewrites a plan: projection pushdown (scans read only the columns later operators use),
/// predicate pushdown (filters right above a scan prune its row groups), then the choice of a
/// strategy for every aggregation and join, from estimated sizes.
pub fn optimize(plan: &Plan, config: &PlanConfig) -> Result<Plan> {
    let plan = pushdown::push_filters_into_joins(plan)?;
    let plan = semijoin::reduce_aggregations(&plan, config)?;
    let plan = push_projection(&plan, None)?;
    let plan = push_predicates(&plan, &[])?;
    let plan = shared::share_subplans(&plan)?;
    choose_strategies(&plan, config)
}

/// Columns the SQL expressions refer to, resolved against `schema`.
fn referenced_all<'a>(
    sqls: impl IntoIterator<Item = &'a String>,
    schema: &SchemaRef,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for sql in sqls {
        out.extend(referenced_columns(sql, schema)?);
    }
    Ok(out)
}

fn with_keys(
    needed: Option<BTreeSet<String>>,
    keys: impl IntoIterator<Item = String>,
) -> Option<BTreeSet<String>> {
    needed.map(|mut n| {
        n.extend(keys);
        n
    })
}

fn names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// `needed`: columns required from this node's output (`None`: all of them).
fn push_projection(plan: &Plan, needed: Option<BTreeSet<String>>) -> Result<Plan> {
    match plan {
        Plan::Scan(scan) => {
            let mut scan = scan.clone();
            if let Some(needed) = needed {
                let cols: Vec<String> = scan
                    .file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| needed.contains(n))
                    .collect();
                // Keep at least one column so row counts survive (`SELECT count(*)`-like plans).
                let cols = if cols.is_empty() {
                    scan.file_schema.fields().iter().take(1).map(|f| f.name().clone()).collect()
                } else {
                    cols
                };
                if cols.len() < scan.file_schema.fields().len() {
                    scan.projection = Some(cols);
                }
            }
            Ok(Plan::Scan(scan))
        }
        // Another collection's result is computed whole; a select above it narrows it.
        Plan::Graph(_) => Ok(plan.clone()),
        Plan::Head { .. } | Plan::Repartition { .. } | Plan::Shared { .. } => {
            plan.map_children(|input| push_projection(input, needed.clone()))
        }
        Plan::TopK { keys, .. } | Plan::Sort { keys, .. } => {
            let needed = with_keys(needed, keys.iter().map(|k| k.column.clone()));
            plan.map_children(|input| push_projection(input, needed.clone()))
        }
        Plan::Aggregate(a) => {
            let mut upstream = referenced_all(a.aggs.iter().map(|(_, e)| e), &a.input.schema()?)?;
            upstream.extend(a.keys.iter().cloned());
            plan.map_children(|input| push_projection(input, Some(upstream.clone())))
        }
        Plan::Join(j) => push_projection_join(j, needed),
        Plan::Map { input, op, schema } => {
            let input_schema = input.schema()?;
            let wanted = needed.clone();
            let upstream: Option<BTreeSet<String>> = match op {
                MapOp::Select { columns } => Some(columns.iter().cloned().collect()),
                MapOp::Filter { predicate } => needed
                    .map(|mut n| -> Result<_> {
                        n.extend(referenced_columns(predicate, &input_schema)?);
                        Ok(n)
                    })
                    .transpose()?,
                MapOp::Assign { columns } => match needed {
                    None => None,
                    Some(mut n) => {
                        // Later assignments may use earlier ones: walk them backwards.
                        for (name, sql) in columns.iter().rev() {
                            n.remove(name);
                            n.extend(referenced_columns(sql, schema)?);
                        }
                        Some(n)
                    }
                },
                // User code may read any column; a melt reads the ones it names.
                MapOp::MapPartitions { .. } | MapOp::Melt { .. } | MapOp::Apply { .. } => None,
            };
            let input = Arc::new(push_projection(input, upstream)?);
            // Pruned inputs can change what a relational step outputs (a select-free chain
            // passes fewer columns on): re-derive it. A user function's output is its own.
            let mapped = match op {
                MapOp::MapPartitions { .. } => Plan::Map { input, op: op.clone(), schema: schema.clone() },
                _ => Plan::map(input, op.clone())?,
            };
            match (op, wanted) {
                (MapOp::Filter { .. }, Some(wanted)) => drop_tested_columns(mapped, &wanted),
                _ => Ok(mapped),
            }
        }
    }
}

/// A filter's output narrowed to the columns wanted above it: the columns only its condition
/// read are dropped right after it, so a side that is materialized (broadcast, paired by
/// ranges, shuffled) writes only what is used (TPC-H q4's lines keep `l_orderkey`, not the two
/// dates they were tested on). Nothing is dropped if nothing would be left.
fn drop_tested_columns(filtered: Plan, wanted: &BTreeSet<String>) -> Result<Plan> {
    let schema = filtered.schema()?;
    let keep: Vec<String> = names(&schema).into_iter().filter(|n| wanted.contains(n)).collect();
    if keep.is_empty() || keep.len() == schema.fields().len() {
        return Ok(filtered);
    }
    Plan::map(Arc::new(filtered), MapOp::Select { columns: keep })
}

/// Projection pushdown through a join: each side keeps its keys and the columns the needed
/// output columns come from. A name on both sides is suffixed only while both sides have it:
/// whenever one side still delivers such a column (because it is needed, or because an
/// operator below passes it on), the other side keeps its copy too, so every surviving column
/// keeps the name the unpruned join gives it.
fn push_projection_join(j: &JoinNode, needed: Option<BTreeSet<String>>) -> Result<Plan> {
    let (lnames, rnames) = (names(&j.left.schema()?), names(&j.right.schema()?));
    let columns = shoal_worker::ops::table::join::join_columns(
        &lnames,
        &rnames,
        j.how,
        &j.left_on,
        &j.right_on,
        &j.suffixes,
    );
    let mut left: BTreeSet<String> = j.left_on.iter().cloned().collect();
    let mut right: BTreeSet<String> = j.right_on.iter().cloned().collect();
    for c in columns.into_iter().filter(|c| needed.as_ref().is_none_or(|n| n.contains(&c.name))) {
        left.extend(c.left);
        right.extend(c.right);
    }
    let shared: BTreeSet<&String> =
        j.left_on.iter().zip(&j.right_on).filter(|(l, r)| l == r).map(|(l, _)| l).collect();
    let suffixed: Vec<&String> = match j.how {
        JoinHow::Semi | JoinHow::Anti => vec![],
        _ => lnames.iter().filter(|n| rnames.contains(n) && !shared.contains(n)).collect(),
    };
    // Each round adds at least one column, or ends: at most `suffixed.len()` extra rounds.
    loop {
        let l = push_projection(&j.left, Some(left.clone()))?;
        let r = push_projection(&j.right, Some(right.clone()))?;
        let (ls, rs) = (names(&l.schema()?), names(&r.schema()?));
        let mut grew = false;
        for n in &suffixed {
            match (ls.contains(n), rs.contains(n)) {
                (true, false) => grew |= right.insert((*n).clone()),
                (false, true) => grew |= left.insert((*n).clone()),
                _ => {}
            }
        }
        if !grew {
            let mut j = j.clone();
            j.left = Arc::new(l);
            j.right = Arc::new(r);
            // Pruned inputs change the join's unused columns, not its output: re-derive it.
            j.schema = j.output_schema()?;
            return Ok(Plan::Join(j));
        }
    }
}

/// Collects filters on the way down; a scan directly below them (through selects and other
/// filters only) prunes by their conjunction. The filters stay in place: pruning only skips row
/// groups that cannot match, it never changes the answer.
fn push_predicates(plan: &Plan, pending: &[String]) -> Result<Plan> {
    match plan {
        Plan::Scan(scan) => {
            let mut scan = scan.clone();
            if !pending.is_empty() && matches!(scan.format, FileFormat::Parquet) {
                let mut all: Vec<String> = scan.predicate.iter().cloned().collect();
                all.extend(pending.iter().map(|p| format!("({p})")));
                scan.predicate = Some(all.join(" AND "));
            }
            Ok(Plan::Scan(scan))
        }
        Plan::Map { op, .. } => {
            let below = match op {
                MapOp::Filter { predicate } => {
                    let mut v = pending.to_vec();
                    v.push(predicate.clone());
                    v
                }
                MapOp::Select { .. } => pending.to_vec(),
                _ => Vec::new(),
            };
            plan.map_children(|input| push_predicates(input, &below))
        }
        // Filters commute with repartitioning: prune below it too.
        Plan::Repartition { .. } => plan.map_children(|input| push_predicates(input, pending)),
        // Not below a sort: its boundaries are sampled from all rows (the divisions of an index
        // stay its own); a filter right above a sort prunes the scans of its map tasks when
        // lowered. Nor below anything else that changes which rows a partition holds.
        _ => plan.map_children(|input| push_predicates(input, &[])),
    }
}

/// Chooses, bottom-up, how each aggregation and join is distributed.
fn choose_strategies(plan: &Plan, config: &PlanConfig) -> Result<Plan> {
    Ok(match plan.map_children(|input| choose_strategies(input, config))? {
        Plan::Aggregate(mut a) => {
            a.strategy = Some(aggregate_strategy(&a, config));
            Plan::Aggregate(a)
        }
        Plan::Join(j) => reorder::choose_order(j, config, config.reorder_joins, &choose_join)?,
        other => other,
    })
}

/// The strategy of join `j`, whose inputs' strategies are chosen; with its estimated work.
fn choose_join(mut j: JoinNode, config: &PlanConfig) -> Result<Plan> {
    let (strategy, why, cost) = join_strategy(&j, config)?;
    j.strategy = Some((strategy, why));
    j.cost = cost;
    Ok(Plan::Join(keep_ranges(&j, cost, config)?.unwrap_or(j)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::dataframe::estimate::tests::{filter, join};
    use crate::collections::dataframe::strategy::tests::ordered;

    #[test]
    fn columns_only_a_filter_tested_are_dropped_right_after_it() {
        let orders = ordered("orders", ("o_key", "o_cust", 99), 2, 300, 20_000);
        let lines = ordered("lineitem", ("l_key", "l_qty", 50), 4, 1000, 100_000);
        let semi = join(orders, filter(lines, "l_qty > 5"), JoinHow::Semi, ("o_key", "l_key"));
        let optimized = optimize(&semi, &PlanConfig::default()).unwrap();
        let Plan::Join(j) = &optimized else { panic!("not a join: {optimized:?}") };
        // The lines side: l_key selected after the filter, which still reads l_qty.
        let Plan::Map { op: MapOp::Select { columns }, input, .. } = j.right.as_ref() else {
            panic!("no select after the filter: {:?}", j.right)
        };
        assert_eq!(columns, &vec!["l_key".to_string()]);
        let Plan::Map { op: MapOp::Filter { .. }, input: scan, .. } = input.as_ref() else {
            panic!("not the filter: {input:?}")
        };
        assert_eq!(names(&scan.schema().unwrap()), vec!["l_key", "l_qty"]);
        // The output is the join's as written; a filter whose columns are all wanted keeps them.
        assert_eq!(optimized.schema().unwrap(), semi.schema().unwrap());
        let kept =
            optimize(&filter(ordered("t", ("k", "v", 9), 1, 10, 100), "v > 1"), &PlanConfig::default());
        assert!(matches!(kept.unwrap(), Plan::Map { op: MapOp::Filter { .. }, .. }));
    }
}
