//! Row-wise `apply` (pandas' `df.apply(f, axis=1)`, done in batches): each row as a JSON
//! object (every column named, nulls as `null`) goes to an `items` user function, many rows per
//! call; its value for a row is an object holding the output columns (or, with one output
//! column, that column's value), decoded with the declared output types and added to the row,
//! replacing columns of the same name.

use super::super::Functions;
use super::super::items::{rows, user};
use crate::error::{Error, Result};
use crate::io::Table;
use crate::io::schema::from_fields;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use shoal_protocol::{Field, FunctionRef};
use std::sync::Arc;

/// The schema after `apply`: the input's columns (those named in `output` replaced, in place)
/// and then the new ones.
pub fn output_schema(input: &SchemaRef, output: &[Field]) -> Result<SchemaRef> {
    let added = from_fields(output)?;
    let mut fields: Vec<_> = input
        .fields()
        .iter()
        .map(|f| added.field_with_name(f.name()).map(|a| Arc::new(a.clone())).unwrap_or_else(|_| f.clone()))
        .collect();
    for f in added.fields() {
        if input.field_with_name(f.name()).is_err() {
            fields.push(f.clone());
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Runs `function` on every row of `table`.
pub async fn apply(
    functions: &mut impl Functions,
    function: &FunctionRef,
    output: &[Field],
    (schema, batches): Table,
) -> Result<Table> {
    let input =
        arrow::compute::concat_batches(&schema, &batches).map_err(Error::arrow("apply: the input"))?;
    let items = rows::from_rows(&(schema.clone(), vec![input.clone()]))?;
    let values = user::map(functions, function, &items).await?;
    let single = match output {
        [only] => Some(only.name.clone()),
        _ => None,
    };
    let objects: Vec<Value> = values
        .into_iter()
        .map(|v| match (&single, v) {
            (Some(name), v) if !v.is_object() => Value::Object(Map::from_iter([(name.clone(), v)])),
            (_, v) => v,
        })
        .collect();
    let (_, added) = rows::to_rows(&objects, output)
        .map_err(|e| Error::BadItem(format!("apply {}: {e}", function.function)))?;
    let added = arrow::compute::concat_batches(&from_fields(output)?, &added)
        .map_err(Error::arrow("apply: the function's values"))?;
    let out_schema = output_schema(&schema, output)?;
    let columns = out_schema
        .fields()
        .iter()
        .map(|f| match added.column_by_name(f.name()) {
            Some(c) => Ok(c.clone()),
            None => input
                .column_by_name(f.name())
                .cloned()
                .ok_or_else(|| Error::Execution(format!("apply: no column {}", f.name()))),
        })
        .collect::<Result<Vec<_>>>()?;
    let batch =
        RecordBatch::try_new(out_schema.clone(), columns).map_err(Error::arrow("apply: the output"))?;
    Ok((out_schema, vec![batch]))
}
