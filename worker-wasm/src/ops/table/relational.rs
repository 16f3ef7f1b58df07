//! Relational operators as steps of one DataFusion logical plan: filter, select, assign, head,
//! sort, single-step aggregate and join. A run of them fuses into one plan, executed only when a
//! step that is not a plan step needs the rows.
//!
//! The same functions validate a pipeline at plan time (the coordinator applies them to an empty
//! table of the input schema, so an unknown column or a malformed expression is reported before
//! any task runs) and execute it inside a task.

use super::Sides;
use super::aggregate;
use super::join::join;
use super::session::{check_columns, expr_error, frame, session, unknown_column};
use crate::error::{Error, Result};
use datafusion::common::Column;
use datafusion::prelude::{DataFrame, Expr};
use shoal_protocol::{AggregateMode, TableOp};

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
        | TableOp::Apply { .. }
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
            for c in columns {
                if !df.schema().fields().iter().any(|f| f.name() == c) {
                    return Err(unknown_column("select", c, df.schema().as_arrow()));
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
        TableOp::Head { n } => Ok(df.limit(0, Some(*n))?),
        TableOp::Sort { keys } => {
            check_columns(&df, "sort", keys.iter().map(|k| k.column.as_str()))?;
            let exprs = keys.iter().map(|k| column(&k.column).sort(k.ascending, k.nulls_first)).collect();
            df.sort(exprs).map_err(|e| Error::Schema(format!("sort: {}", e.strip_backtrace())))
        }
        TableOp::Aggregate { mode: AggregateMode::Single, keys, aggs, .. } => {
            aggregate::logical(df, keys, aggs)
        }
        TableOp::Join { port, how, left_on, right_on, suffixes, build } => {
            let (schema, batches) = sides
                .get(port)
                .ok_or_else(|| Error::InvalidTask(format!("join: no side table on port {port}")))?;
            let ctx = session();
            let right = frame(&ctx, schema.clone(), batches.clone())?;
            join(df, right, *how, (left_on, right_on), suffixes, *build)
        }
        TableOp::Aggregate { .. }
        | TableOp::MapPartitions { .. }
        | TableOp::Apply { .. }
        | TableOp::Sample { .. }
        | TableOp::Boundaries { .. }
        | TableOp::Melt { .. } => Err(Error::InvalidTask(format!("{op:?} is not a single relational step"))),
    }
}
