//! Per-partition relational operators as a DataFusion plan.
//!
//! The same functions validate a pipeline at plan time (the coordinator applies them to an empty
//! table of the input schema, so an unknown column or a malformed expression is reported before
//! any task runs) and execute it inside a task.

use crate::error::{Error, Result};
use crate::session::{expr_error, frame, session};
use crate::shuffle::Table;
use arrow::datatypes::SchemaRef;
use datafusion::common::{Column, JoinType};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::prelude::{DataFrame, Expr};
use shoal_protocol::{AggregateMode, Input, JoinHow, Operator, Output, Partitioning, TableOp};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// A task's side tables by port (the right side of a join, range boundaries).
pub type Sides = BTreeMap<u32, Table>;

/// Whether `op` is one step of a DataFusion logical plan, so that a run of them fuses into one
/// plan. User functions, multi-step aggregations and the sampling kernels are not.
pub fn is_relational(op: &TableOp) -> bool {
    match op {
        TableOp::Filter { .. }
        | TableOp::Select { .. }
        | TableOp::Assign { .. }
        | TableOp::Head { .. }
        | TableOp::Sort { .. }
        | TableOp::Join { .. } => true,
        TableOp::Aggregate { mode, .. } => *mode == AggregateMode::Single,
        TableOp::MapPartitions { .. }
        | TableOp::Sample { .. }
        | TableOp::Boundaries { .. }
        | TableOp::Melt { .. } => false,
    }
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Applies one relational operator to a DataFrame; `sides` holds the task's side tables.
pub fn apply(df: DataFrame, op: &TableOp, sides: &Sides) -> Result<DataFrame> {
    match op {
        TableOp::Filter { predicate } => {
            let expr = df.parse_sql_expr(predicate).map_err(|e| expr_error("filter", predicate, e))?;
            df.filter(expr).map_err(|e| expr_error("filter", predicate, e))
        }
        TableOp::Select { columns } => {
            let available: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
            for c in columns {
                if !available.contains(c) {
                    return Err(Error::Schema(format!(
                        "select: unknown column '{c}' (available: {})",
                        available.join(", ")
                    )));
                }
            }
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            df.select_columns(&names).map_err(|e| Error::Schema(format!("select: {e}")))
        }
        TableOp::Assign { columns } => {
            let mut df = df;
            for (name, sql) in columns {
                let expr =
                    df.parse_sql_expr(sql).map_err(|e| expr_error(&format!("assign {name}"), sql, e))?;
                df = df.with_column(name, expr).map_err(|e| expr_error(&format!("assign {name}"), sql, e))?;
            }
            Ok(df)
        }
        TableOp::Head { n } => df.limit(0, Some(*n)).map_err(|e| Error::Execution(e.to_string())),
        TableOp::Sort { keys } => {
            check_columns(&df, "sort", keys.iter().map(|k| k.column.as_str()))?;
            let exprs = keys.iter().map(|k| column(&k.column).sort(k.ascending, k.nulls_first)).collect();
            df.sort(exprs).map_err(|e| Error::Schema(format!("sort: {}", e.strip_backtrace())))
        }
        TableOp::Aggregate { mode: AggregateMode::Single, keys, aggs, .. } => {
            crate::aggregate::logical(df, keys, aggs)
        }
        TableOp::Join { port, how, left_on, right_on, suffixes } => {
            let (schema, batches) = sides
                .get(port)
                .ok_or_else(|| Error::InvalidTask(format!("join: no side table on port {port}")))?;
            let ctx = session();
            let right = frame(&ctx, schema.clone(), batches.clone())?;
            join(df, right, *how, left_on, right_on, suffixes)
        }
        TableOp::Aggregate { .. }
        | TableOp::MapPartitions { .. }
        | TableOp::Sample { .. }
        | TableOp::Boundaries { .. }
        | TableOp::Melt { .. } => Err(Error::InvalidTask(format!("{op:?} is not a single relational step"))),
    }
}

fn check_columns<'a>(df: &DataFrame, what: &str, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for name in names {
        if df.schema().field_with_unqualified_name(name).is_err() {
            let available: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
            return Err(Error::Schema(format!(
                "{what}: unknown column '{name}' (available: {})",
                available.join(", ")
            )));
        }
    }
    Ok(())
}

/// An equi-join with pandas `merge` naming: a key with the same name on both sides appears once
/// (for an outer join, the non-null of the two); other columns present on both sides get the
/// suffixes. Null keys never match, as in SQL and DuckDB.
pub fn join(
    left: DataFrame,
    right: DataFrame,
    how: JoinHow,
    left_on: &[String],
    right_on: &[String],
    suffixes: &(String, String),
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
    let join_type = match how {
        JoinHow::Inner => JoinType::Inner,
        JoinHow::Left => JoinType::Left,
        JoinHow::Right => JoinType::Right,
        JoinHow::Outer => JoinType::Full,
        JoinHow::Semi => JoinType::LeftSemi,
        JoinHow::Anti => JoinType::LeftAnti,
    };
    let alias_err = |e: datafusion::error::DataFusionError| Error::Execution(e.strip_backtrace());
    let joined = left
        .alias("l")
        .map_err(alias_err)?
        .join_on(right.alias("r").map_err(alias_err)?, join_type, on)
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

/// Whether `ops` turn an empty table (and empty side tables) into an empty table, so that a
/// task whose inputs are all empty need not run. Not so for whole-table aggregations (one row
/// of nothing), `melt`, and user functions (which may make rows from nothing).
pub fn preserves_empty(ops: &[Operator]) -> bool {
    ops.iter().all(|op| match op {
        Operator::Table(op) => table_preserves_empty(op),
        // An operator of a family this worker does not know: the task must run (and refuse it).
        _ => false,
    })
}

fn table_preserves_empty(op: &TableOp) -> bool {
    match op {
        TableOp::Filter { .. }
        | TableOp::Select { .. }
        | TableOp::Assign { .. }
        | TableOp::Head { .. }
        | TableOp::Sort { .. }
        | TableOp::Join { .. }
        | TableOp::Sample { .. }
        | TableOp::Boundaries { .. } => true,
        TableOp::Aggregate { keys, .. } => !keys.is_empty(),
        TableOp::MapPartitions { .. } | TableOp::Melt { .. } => false,
    }
}

/// The error for an operator of a family this worker cannot run.
pub fn unsupported_family(op: &Operator) -> Error {
    Error::InvalidTask(format!("operator family '{}' is not supported by this worker", op.family()))
}

/// Checks that a task's inputs and its operators agree on the side-table ports: every side port
/// an input feeds is read by exactly one operator (a join) or by the output (a range shuffle's
/// boundaries), every port they read is fed, and there is a main input (port 0). Two tables
/// sharing one port would be appended into one table, so this refuses such a task outright.
pub fn check_ports(inputs: &[Input], ops: &[Operator], output: &Output) -> Result<()> {
    let fed: BTreeSet<u32> = inputs.iter().map(Input::port).collect();
    if !fed.contains(&0) {
        return Err(Error::InvalidTask("the task has no main input (port 0)".into()));
    }
    let mut read: BTreeMap<u32, usize> = BTreeMap::new();
    let ports = ops
        .iter()
        .filter_map(|op| match op {
            Operator::Table(TableOp::Join { port, .. }) => Some(*port),
            _ => None,
        })
        .chain(match output {
            Output::Shuffle { partitioning: Partitioning::Range { port, .. } } => Some(*port),
            _ => None,
        });
    for port in ports {
        if port == 0 {
            return Err(Error::InvalidTask(
                "an operator reads its side table from port 0, the main input".into(),
            ));
        }
        *read.entry(port).or_default() += 1;
    }
    if let Some((port, n)) = read.iter().find(|(_, n)| **n > 1) {
        return Err(Error::InvalidTask(format!("{n} operators of one task read side table {port}")));
    }
    let sides: BTreeSet<u32> = fed.iter().copied().filter(|p| *p != 0).collect();
    let wanted: BTreeSet<u32> = read.keys().copied().collect();
    if sides != wanted {
        let list = |s: &BTreeSet<u32>| s.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        return Err(Error::InvalidTask(format!(
            "the task's inputs feed side tables [{}] but its operators read [{}]",
            list(&sides),
            list(&wanted)
        )));
    }
    Ok(())
}

/// The output schema of relational operators applied to `schema`, validating every expression.
/// `sides` are the schemas of side tables (a join's right side). An aggregation is validated as
/// the single-step aggregation whose result its steps produce together.
pub fn output_schema(
    schema: SchemaRef,
    ops: &[Operator],
    sides: &BTreeMap<u32, SchemaRef>,
) -> Result<SchemaRef> {
    let ctx = session();
    let sides: Sides = sides.iter().map(|(p, s)| (*p, (s.clone(), vec![]))).collect();
    let mut df = frame(&ctx, schema, vec![])?;
    for op in ops {
        let Operator::Table(op) = op else {
            return Err(unsupported_family(op));
        };
        // The kernels that are not plan steps run on an empty table: the same code decides.
        let input = || Arc::new(df.schema().as_arrow().clone());
        let kernel = match op {
            TableOp::Melt { id, rows, columns } => {
                Some(crate::shuffle::melt(&input(), &[], id, rows, columns)?)
            }
            TableOp::Sample { columns, rows } => {
                Some(crate::shuffle::sample(&input(), &[], columns, *rows)?)
            }
            TableOp::Boundaries { keys, n } => Some(crate::shuffle::boundaries(&input(), &[], keys, *n)?),
            TableOp::MapPartitions { function, .. } => {
                return Err(Error::InvalidTask(format!(
                    "map_partitions {function}: its output schema is the function's, found by calling it"
                )));
            }
            _ => None,
        };
        if let Some((schema, _)) = kernel {
            df = frame(&ctx, schema, vec![])?;
            continue;
        }
        let op = match op {
            TableOp::Aggregate { keys, aggs, input, .. } => TableOp::Aggregate {
                mode: AggregateMode::Single,
                keys: keys.clone(),
                aggs: aggs.clone(),
                input: input.clone(),
            },
            other => other.clone(),
        };
        df = apply(df, &op, &sides)?;
    }
    Ok(Arc::new(df.schema().as_arrow().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("fare", DataType::Float64, true),
            Field::new("vendor", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn output_schema_follows_operators() {
        let ops = vec![
            TableOp::Filter { predicate: "fare > 10 AND vendor = 'A'".into() }.into(),
            TableOp::Assign { columns: vec![("tip".into(), "fare * 0.2".into())] }.into(),
            TableOp::Select { columns: vec!["tip".into(), "vendor".into()] }.into(),
        ];
        let out = output_schema(schema(), &ops, &BTreeMap::new()).unwrap();
        let names: Vec<_> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["tip", "vendor"]);
        assert_eq!(out.field(0).data_type(), &DataType::Float64);
    }

    fn side(port: u32) -> Input {
        Input::Upstream {
            task_key: shoal_protocol::TaskKey(format!("t{port}")),
            objects: vec![],
            bucket: None,
            ranges: vec![],
            port,
            schema: None,
        }
    }

    fn join_on(port: u32) -> Operator {
        TableOp::Join {
            port,
            how: JoinHow::Inner,
            left_on: vec!["k".into()],
            right_on: vec!["k".into()],
            suffixes: ("_x".into(), "_y".into()),
        }
        .into()
    }

    #[test]
    fn ports_must_agree_with_operators() {
        let out = Output::Intermediate;
        check_ports(&[side(0), side(1), side(2)], &[join_on(1), join_on(2)], &out).unwrap();
        let range = Output::Shuffle { partitioning: Partitioning::Range { keys: vec![], port: 2, n: 2 } };
        check_ports(&[side(0), side(1), side(2)], &[join_on(1)], &range).unwrap();
        // Two joins fed by one port (the bug of fused broadcast chains).
        let err = check_ports(&[side(0), side(1), side(1)], &[join_on(1), join_on(1)], &out).unwrap_err();
        assert!(err.to_string().contains("2 operators of one task read side table 1"), "{err}");
        // A side table nobody reads, and a join whose table is not fed.
        let err = check_ports(&[side(0), side(1), side(2)], &[join_on(1)], &out).unwrap_err();
        assert!(err.to_string().contains("feed side tables [1, 2] but its operators read [1]"), "{err}");
        let err = check_ports(&[side(0)], &[join_on(3)], &out).unwrap_err();
        assert!(err.to_string().contains("read [3]"), "{err}");
        let err = check_ports(&[side(1)], &[join_on(1)], &out).unwrap_err();
        assert!(err.to_string().contains("no main input"), "{err}");
        assert!(matches!(err.kind(), shoal_protocol::FailureKind::Fatal));
    }

    #[test]
    fn unknown_columns_and_bad_expressions_are_named() {
        let err =
            output_schema(schema(), &[TableOp::Filter { predicate: "nope > 1".into() }.into()], &BTreeMap::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = output_schema(
            schema(),
            &[TableOp::Assign { columns: vec![("x".into(), "fare +* 2".into())] }.into()],
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fare +* 2"), "{err}");
        let err =
            output_schema(schema(), &[TableOp::Select { columns: vec!["zzz".into()] }.into()], &BTreeMap::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("'zzz'") && err.contains("fare"), "{err}");
    }
}
