//! Per-partition relational operators as a DataFusion plan.
//!
//! The same functions validate a pipeline at plan time (the coordinator applies them to an empty
//! table of the input schema, so an unknown column or a malformed expression is reported before
//! any task runs) and execute it inside a task.

use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use shoal_protocol::Operator;
use std::sync::Arc;

/// A DataFusion session for one task: single partition, no catalog, no object stores.
pub fn session() -> SessionContext {
    let config = SessionConfig::new().with_target_partitions(1).with_information_schema(false);
    SessionContext::new_with_config(config)
}

/// A DataFrame over in-memory batches (possibly none) of `schema`.
pub fn frame(ctx: &SessionContext, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame> {
    let table = MemTable::try_new(schema, vec![batches]).map_err(|e| Error::Execution(e.to_string()))?;
    ctx.read_table(Arc::new(table)).map_err(|e| Error::Execution(e.to_string()))
}

/// Whether `op` runs as part of a DataFusion plan (everything but user functions).
pub fn is_relational(op: &Operator) -> bool {
    !matches!(op, Operator::MapPartitions { .. })
}

/// Applies one relational operator to a DataFrame.
pub fn apply(df: DataFrame, op: &Operator) -> Result<DataFrame> {
    match op {
        Operator::Filter { predicate } => {
            let expr = df.parse_sql_expr(predicate).map_err(|e| expr_error("filter", predicate, e))?;
            df.filter(expr).map_err(|e| expr_error("filter", predicate, e))
        }
        Operator::Select { columns } => {
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
        Operator::Assign { columns } => {
            let mut df = df;
            for (name, sql) in columns {
                let expr =
                    df.parse_sql_expr(sql).map_err(|e| expr_error(&format!("assign {name}"), sql, e))?;
                df = df.with_column(name, expr).map_err(|e| expr_error(&format!("assign {name}"), sql, e))?;
            }
            Ok(df)
        }
        Operator::Head { n } => df.limit(0, Some(*n)).map_err(|e| Error::Execution(e.to_string())),
        Operator::MapPartitions { function, .. } => {
            Err(Error::InvalidTask(format!("map_partitions({function}) is not a relational operator")))
        }
    }
}

fn expr_error(what: &str, sql: &str, e: datafusion::error::DataFusionError) -> Error {
    // DataFusion's messages carry a backtrace-free context chain; keep the first line.
    // DataFusion names columns of an anonymous table `"?table?".x`; users never see that name.
    let msg = e.strip_backtrace().replace("\"?table?\".", "").replace("'?table?'.", "");
    Error::Schema(format!("{what}: invalid expression '{sql}': {msg}"))
}

/// The output schema of relational operators applied to `schema`, validating every expression.
pub fn output_schema(schema: SchemaRef, ops: &[Operator]) -> Result<SchemaRef> {
    let ctx = session();
    let mut df = frame(&ctx, schema, vec![])?;
    for op in ops {
        df = apply(df, op)?;
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
            Operator::Filter { predicate: "fare > 10 AND vendor = 'A'".into() },
            Operator::Assign { columns: vec![("tip".into(), "fare * 0.2".into())] },
            Operator::Select { columns: vec!["tip".into(), "vendor".into()] },
        ];
        let out = output_schema(schema(), &ops).unwrap();
        let names: Vec<_> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["tip", "vendor"]);
        assert_eq!(out.field(0).data_type(), &DataType::Float64);
    }

    #[test]
    fn unknown_columns_and_bad_expressions_are_named() {
        let err = output_schema(schema(), &[Operator::Filter { predicate: "nope > 1".into() }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let err =
            output_schema(schema(), &[Operator::Assign { columns: vec![("x".into(), "fare +* 2".into())] }])
                .unwrap_err()
                .to_string();
        assert!(err.contains("fare +* 2"), "{err}");
        let err = output_schema(schema(), &[Operator::Select { columns: vec!["zzz".into()] }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'zzz'") && err.contains("fare"), "{err}");
    }
}
