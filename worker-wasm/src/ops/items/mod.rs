//! The `items` family: Bag partitions. Items travel between tasks as a table of one UTF-8
//! column ([`ITEM_COLUMN`]) holding each item as JSON text; a run of `items` operators parses
//! them once, applies every operator to the parsed values, and encodes the result the same way
//! (object keys then come out sorted, JSON's canonical order).
//!
//! Rooms: [`value`] (paths, truthiness, the order and identity of JSON values, numbers),
//! [`predicate`] (SQL-like predicates over item fields), [`user`] (batched calls of user
//! functions), [`reduce`] (tree reductions whose states are items too), [`rows`] (tables ↔
//! items).

mod predicate;
mod reduce;
pub(crate) mod rows;
pub(crate) mod user;
mod value;

use super::Functions;
use super::table::Sides;
use crate::error::{Error, Result};
use crate::io::Table;
use arrow::array::{Array, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use shoal_protocol::{ITEM_COLUMN, ItemOp, KEY_COLUMN, Operator};
use std::sync::Arc;

pub use predicate::check as check_predicate;
pub use value::parse_path;

/// The schema of every Bag partition: one UTF-8 column of JSON text.
pub fn item_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(ITEM_COLUMN, DataType::Utf8, false)]))
}

/// Runs a run of `items` operators over `input` (items, or a table's rows when the run starts
/// with [`ItemOp::FromRows`]).
pub async fn run(
    pipeline: &[Operator],
    input: Table,
    _sides: &Sides,
    functions: &mut impl Functions,
) -> Result<Table> {
    let ops: Vec<&ItemOp> = pipeline
        .iter()
        .map(|op| match op {
            Operator::Items(op) => Ok(op),
            other => {
                Err(Error::InvalidTask(format!("{} operator in a run of items operators", other.family())))
            }
        })
        .collect::<Result<_>>()?;
    let (mut items, rest) = match ops.split_first() {
        Some((ItemOp::FromRows, rest)) => (rows::from_rows(&input)?, rest),
        _ => (decode(&input)?, &ops[..]),
    };
    for (i, op) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        match op {
            ItemOp::ToRows { schema } if last => return rows::to_rows(&items, schema),
            ItemOp::Keyed { key } if last => {
                let keys = reduce::keys(functions, key, &items).await?;
                return encode_keyed(&items, &keys);
            }
            ItemOp::ToRows { .. } | ItemOp::Keyed { .. } => {
                return Err(Error::InvalidTask(format!("{op:?} must end a run of items operators")));
            }
            _ => items = apply(op, items, functions).await?,
        }
    }
    encode(&items)
}

async fn apply(op: &ItemOp, items: Vec<Value>, functions: &mut impl Functions) -> Result<Vec<Value>> {
    Ok(match op {
        ItemOp::Map { function } => user::map(functions, function, &items).await?,
        ItemOp::Filter { function, keep } => {
            let verdicts = user::map(functions, function, &items).await?;
            items
                .into_iter()
                .zip(verdicts)
                .filter(|(_, v)| value::truthy(v) == *keep)
                .map(|(i, _)| i)
                .collect()
        }
        ItemOp::Where { predicate, keep } => {
            let predicate = predicate::Predicate::parse(predicate)?;
            let mut kept = Vec::with_capacity(items.len());
            for item in items {
                if predicate.matches(&item)? == *keep {
                    kept.push(item);
                }
            }
            kept
        }
        ItemOp::Flatten => flatten(items)?,
        ItemOp::Pluck { path, default } => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match (value::lookup(item, path), default) {
                    (Some(v), _) => out.push(v.clone()),
                    (None, Some(d)) => out.push(d.clone()),
                    (None, None) => {
                        return Err(Error::BadItem(format!(
                            "pluck: item {i} has no {} (give a default to use for such items): {}",
                            value::describe_path(path),
                            value::excerpt(item)
                        )));
                    }
                }
            }
            out
        }
        ItemOp::MapPartitions { function } => user::map_partition(functions, function, items).await?,
        ItemOp::Take { n } => {
            let mut items = items;
            items.truncate(*n);
            items
        }
        ItemOp::Reduce { reduction, step } => reduce::step(reduction, *step, items, functions).await?,
        ItemOp::GroupBy { key } => reduce::group_by(functions, key, items).await?,
        ItemOp::FromRows | ItemOp::ToRows { .. } | ItemOp::Keyed { .. } => {
            return Err(Error::InvalidTask(format!("{op:?} in the middle of a run of items operators")));
        }
    })
}

fn flatten(items: Vec<Value>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Array(elements) => out.extend(elements),
            other => {
                return Err(Error::BadItem(format!(
                    "flatten: item {i} is not a list: {}",
                    value::excerpt(&other)
                )));
            }
        }
    }
    Ok(out)
}

/// The items of a Bag partition table.
fn decode((schema, batches): &Table) -> Result<Vec<Value>> {
    let column = schema.index_of(ITEM_COLUMN).map_err(|_| {
        Error::InvalidTask(format!("items operators over a table without an '{ITEM_COLUMN}' column"))
    })?;
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut items = Vec::with_capacity(rows);
    for batch in batches {
        let text = batch
            .column(column)
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::InvalidTask(format!("the '{ITEM_COLUMN}' column is not UTF-8 text")))?;
        for i in 0..text.len() {
            let item = if text.is_null(i) {
                Value::Null
            } else {
                serde_json::from_str(text.value(i))
                    .map_err(|e| Error::InvalidTask(format!("an item is not JSON: {e}")))?
            };
            items.push(item);
        }
    }
    Ok(items)
}

/// Items as a Bag partition table.
fn encode(items: &[Value]) -> Result<Table> {
    let schema = item_schema();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(text_column(items)?)])
        .map_err(Error::arrow("encoding items"))?;
    Ok((schema, vec![batch]))
}

/// Items and their keys, for a shuffle by [`KEY_COLUMN`].
fn encode_keyed(items: &[Value], keys: &[Value]) -> Result<Table> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(ITEM_COLUMN, DataType::Utf8, false),
        Field::new(KEY_COLUMN, DataType::Utf8, false),
    ]));
    let columns: Vec<arrow::array::ArrayRef> =
        vec![Arc::new(text_column(items)?), Arc::new(text_column(keys)?)];
    let batch =
        RecordBatch::try_new(schema.clone(), columns).map_err(Error::arrow("encoding keyed items"))?;
    Ok((schema, vec![batch]))
}

fn text_column(values: &[Value]) -> Result<arrow::array::StringArray> {
    let mut text = StringBuilder::with_capacity(values.len(), values.len() * 16);
    let mut buf = Vec::with_capacity(256);
    for v in values {
        buf.clear();
        serde_json::to_writer(&mut buf, v).map_err(|e| Error::BadItem(format!("encoding an item: {e}")))?;
        // serde_json writes UTF-8.
        text.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(text.finish())
}
