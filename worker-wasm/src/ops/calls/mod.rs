//! The `calls` family: Delayed values, each a call of a `Value` user function whose positional
//! arguments are JSON literals and the values on input ports.
//!
//! A value travels as a one-row table whose [`ITEM_COLUMN`] holds it as JSON text, its schema
//! marked with [`VALUE_METADATA`]. What a port holds becomes one argument:
//! - a marked table (another call's output): its value;
//! - a table of exactly one Utf8 [`ITEM_COLUMN`] (a Bag's partitions): the list of its items;
//! - any other table (a DataFrame's partitions): the list of its rows as JSON objects, with
//!   the text `to_json` writes (nulls explicit).
//!
//! A task of this family may have no input at all (a call of literals only): the task then
//! hands it an empty main table.

use super::Functions;
use super::table::Sides;
use crate::error::{Error, Result};
use crate::io::Table;
use arrow::array::{Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use shoal_protocol::{CallArg, CallOp, FunctionKind, ITEM_COLUMN, Input, Operator};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The schema metadata key that marks a table as one Delayed value.
pub const VALUE_METADATA: &str = "shoal.value";

/// Runs a run of `calls` operators: each calls its function on the task's ports; the output is
/// the last call's value.
pub async fn run(
    pipeline: &[Operator],
    input: Table,
    sides: &Sides,
    functions: &mut impl Functions,
) -> Result<Table> {
    let mut out = None;
    for op in pipeline {
        let Operator::Calls(CallOp::Call { function, args }) = op else {
            return Err(Error::InvalidTask(format!("a {} operator in a run of calls", op.family())));
        };
        let inputs = args.iter().map(|a| argument(a, &input, sides)).collect::<Result<Vec<_>>>()?;
        let bytes = functions.call_json(function, FunctionKind::Value, inputs).await?;
        out = Some(value_table(&function.function, bytes)?);
    }
    out.ok_or_else(|| Error::InvalidTask("an empty run of calls".into()))
}

/// Whether a pipeline is a run of calls, which may have no main input.
pub fn is_calls(pipeline: &[Operator]) -> bool {
    !pipeline.is_empty() && pipeline.iter().all(|op| matches!(op, Operator::Calls(_)))
}

/// The JSON bytes of one positional argument.
fn argument(arg: &CallArg, input: &Table, sides: &Sides) -> Result<Vec<u8>> {
    match arg {
        CallArg::Literal { value } => serde_json::to_vec(value)
            .map_err(|source| Error::Json { context: "encoding a call's literal argument", source }),
        CallArg::Port { port: 0 } => port_value(input),
        CallArg::Port { port } => {
            let table = sides.get(port).ok_or_else(|| {
                Error::InvalidTask(format!("a call reads port {port}, which no input feeds"))
            })?;
            port_value(table)
        }
    }
}

/// The value a port's table holds, as JSON bytes (see the module's documentation).
fn port_value((schema, batches): &Table) -> Result<Vec<u8>> {
    if schema.metadata().contains_key(VALUE_METADATA) {
        let mut items = item_texts(batches)?;
        return match (items.next(), items.next()) {
            (Some(Some(text)), None) => Ok(text.as_bytes().to_vec()),
            _ => Err(Error::Schema("a Delayed value's table must hold exactly one non-null item".into())),
        };
    }
    let is_items = schema.fields().len() == 1
        && schema.field(0).name() == ITEM_COLUMN
        && matches!(schema.field(0).data_type(), DataType::Utf8);
    let mut out = b"[".to_vec();
    if is_items {
        for (i, text) in item_texts(batches)?.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(text.unwrap_or("null").as_bytes());
        }
    } else {
        let lines = crate::io::text_parts::encode_json_lines(batches)?;
        for (i, line) in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(line);
        }
    }
    out.push(b']');
    Ok(out)
}

/// The texts of the [`ITEM_COLUMN`] of `batches`, in order (`None` for a null).
fn item_texts(batches: &[RecordBatch]) -> Result<impl Iterator<Item = Option<&str>>> {
    let columns = batches
        .iter()
        .map(|b| {
            b.column_by_name(ITEM_COLUMN)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| Error::Schema(format!("a value table without a Utf8 '{ITEM_COLUMN}' column")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(columns.into_iter().flat_map(|c| (0..c.len()).map(move |i| c.is_valid(i).then(|| c.value(i)))))
}

/// The schema of a Delayed value's table: one Utf8 [`ITEM_COLUMN`], marked as a value.
pub fn value_schema() -> Arc<Schema> {
    let metadata = HashMap::from([(VALUE_METADATA.to_string(), "1".to_string())]);
    Arc::new(Schema::new_with_metadata(vec![Field::new(ITEM_COLUMN, DataType::Utf8, false)], metadata))
}

/// A function's output bytes as a value table; bytes that are not one JSON value are the
/// function's error.
fn value_table(function: &str, bytes: Vec<u8>) -> Result<Table> {
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Schema(format!("value function '{function}' returned bytes that are not UTF-8: {e}"))
    })?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(Error::Schema(format!("value function '{function}' returned invalid JSON: {e}")));
    }
    let schema = value_schema();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![text]))])
        .map_err(|source| Error::Arrow { context: "building a value table", source })?;
    Ok((schema, vec![batch]))
}

/// Checks a calls task's ports: every port a call reads is fed by an input, and every input
/// feeds a port some call reads. Port 0 is not required: a call of literals has no input.
pub fn check_ports(inputs: &[Input], pipeline: &[Operator]) -> Result<()> {
    let fed: BTreeSet<u32> = inputs.iter().map(Input::port).collect();
    let mut read = BTreeSet::new();
    for op in pipeline {
        let Operator::Calls(CallOp::Call { args, .. }) = op else {
            return Err(Error::InvalidTask("a pipeline with calls holds only calls operators".into()));
        };
        read.extend(args.iter().filter_map(|a| match a {
            CallArg::Port { port } => Some(*port),
            CallArg::Literal { .. } => None,
        }));
    }
    if fed != read {
        let list = |s: &BTreeSet<u32>| s.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        return Err(Error::InvalidTask(format!(
            "the task's inputs feed ports [{}] but its calls read [{}]",
            list(&fed),
            list(&read)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
