//! Operators: what a task does to its rows, by family.
//!
//! A pipeline is a list of [`Operator`]s, and each names its family; the family decides how it
//! runs, and this module dispatches on it. Today there is one family, [`table`] (Arrow tables:
//! DataFrame partitions). The families of the other collections go beside it, one folder each
//! (`items` for Bag, `chunks` for Array, `calls` for Delayed). Nothing outside `ops` names an
//! operator of a family.
//!
//! Operators never touch storage or the sandbox: a task hands them its rows and side tables, and
//! runs the user functions they call through [`Functions`].

pub mod ports;
pub mod table;

pub use ports::check_ports;

use crate::error::{Error, Result};
use crate::io::Table;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use shoal_protocol::{ModuleRef, Operator};
use std::collections::BTreeMap;
use table::Sides;

/// What a pipeline needs from the task that runs it, beyond rows: calls of user functions. The
/// task fetches and compiles the components, and accounts for the calls.
pub trait Functions {
    /// Calls `function` of `module` on `input` with JSON `args`, returning its output rows.
    fn call(
        &mut self,
        module: &ModuleRef,
        function: &str,
        input: RecordBatch,
        args: &serde_json::Value,
    ) -> impl Future<Output = Result<RecordBatch>> + Send;
}

/// Runs `pipeline` over a task's main table `input`, with its side tables `sides`, in a session
/// whose operators share `memory_bytes`.
pub async fn run(
    pipeline: &[Operator],
    input: Table,
    sides: &Sides,
    memory_bytes: u64,
    functions: &mut impl Functions,
) -> Result<Table> {
    let mut rows = table::Rows::new(table::session::task_session(memory_bytes)?, input);
    for op in pipeline {
        rows = match op {
            Operator::Table(op) => rows.apply(op, sides, functions).await?,
            other => return Err(unsupported_family(other)),
        };
    }
    rows.into_table().await
}

/// Whether `pipeline` turns an empty table (and empty side tables) into an empty table, so that
/// a task whose inputs are all empty need not run.
pub fn preserves_empty(pipeline: &[Operator]) -> bool {
    pipeline.iter().all(|op| match op {
        Operator::Table(op) => table::preserves_empty(op),
        // An operator of a family this worker does not know: the task must run (and refuse it).
        _ => false,
    })
}

/// The divisions (sort boundaries as text) that `pipeline`'s `output` declares, if any.
pub fn divisions(pipeline: &[Operator], output: &[RecordBatch]) -> Result<Option<Vec<Vec<String>>>> {
    match pipeline.last() {
        Some(Operator::Table(op)) => table::divisions(op, output),
        _ => Ok(None),
    }
}

/// The output schema of `pipeline` applied to `schema`, validating every expression with the
/// code that runs it. `sides` are the schemas of side tables (a join's right side). An
/// aggregation is validated as the single-step aggregation whose result its steps produce
/// together; a user function's output schema is found only by calling it.
pub fn output_schema(
    schema: SchemaRef,
    pipeline: &[Operator],
    sides: &BTreeMap<u32, SchemaRef>,
) -> Result<SchemaRef> {
    let ops = pipeline
        .iter()
        .map(|op| match op {
            Operator::Table(op) => Ok(op),
            other => Err(unsupported_family(other)),
        })
        .collect::<Result<Vec<_>>>()?;
    table::output_schema(schema, &ops, sides)
}

/// The error for an operator of a family this worker cannot run.
fn unsupported_family(op: &Operator) -> Error {
    Error::InvalidTask(format!("operator family '{}' is not supported by this worker", op.family()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use shoal_protocol::TableOp;
    use std::sync::Arc;

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

    #[test]
    fn unknown_columns_and_bad_expressions_are_named() {
        let err = output_schema(
            schema(),
            &[TableOp::Filter { predicate: "nope > 1".into() }.into()],
            &BTreeMap::new(),
        )
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
        let err = output_schema(
            schema(),
            &[TableOp::Select { columns: vec!["zzz".into()] }.into()],
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("'zzz'") && err.contains("fare"), "{err}");
    }
}
