//! Tables and items: a DataFrame partition's rows as JSON objects (`to_bag`), and items as
//! the rows of a table of a given schema (`to_dataframe`), where an item that does not fit is
//! named with the field at fault.

use super::value::excerpt;
use crate::error::{Error, Result};
use crate::io::Table;
use crate::io::schema::from_fields;
use arrow::json::ReaderBuilder;
use serde_json::Value;
use shoal_protocol::Field;

/// The rows of a table as JSON objects (every column named, nulls as `null`; dates and
/// timestamps as ISO text).
pub fn from_rows((_, batches): &Table) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    for batch in batches {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
        writer.write(batch).map_err(crate::error::Error::arrow("rows to JSON"))?;
        writer.finish().map_err(crate::error::Error::arrow("rows to JSON"))?;
        let text = writer.into_inner();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            items.push(
                serde_json::from_slice(line).map_err(|e| Error::Execution(format!("a row as JSON: {e}")))?,
            );
        }
    }
    Ok(items)
}

/// Items, which must be objects, as the rows of a table with `schema`.
pub fn to_rows(items: &[Value], schema: &[Field]) -> Result<Table> {
    let schema = from_fields(schema)?;
    let decode = |batch: &[Value]| -> std::result::Result<Vec<arrow::record_batch::RecordBatch>, String> {
        let mut decoder = ReaderBuilder::new(schema.clone())
            .with_batch_size(batch.len().max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        decoder.serialize(batch).map_err(|e| e.to_string())?;
        Ok(decoder.flush().map_err(|e| e.to_string())?.into_iter().collect())
    };
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(Error::BadItem(format!(
                "to_dataframe: item {i} is not an object (a row needs named fields): {}",
                excerpt(item)
            )));
        }
    }
    match decode(items) {
        Ok(batches) => Ok((schema.clone(), batches)),
        Err(first) => {
            // Name the first item that does not fit, and its field.
            for (i, item) in items.iter().enumerate() {
                if let Err(message) = decode(std::slice::from_ref(item)) {
                    return Err(Error::BadItem(format!(
                        "to_dataframe: item {i} does not fit the schema: {message}: {}",
                        excerpt(item)
                    )));
                }
            }
            Err(Error::BadItem(format!("to_dataframe: {first}")))
        }
    }
}
