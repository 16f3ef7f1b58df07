//! Calls of user functions over items, in batches: one call per batch of items (or of groups,
//! for a binop), never one per item. What a result must look like is checked here, so a
//! function that returns the wrong shape is one clear error naming it.

use super::super::Functions;
use super::value::excerpt;
use crate::error::{Error, Result};
use serde_json::Value;
use shoal_protocol::{FunctionKind, FunctionRef};

/// Items per call: enough to make the call's fixed cost (a fresh sandbox instance) small
/// against the work, few enough to keep a call's JSON small.
const BATCH_ITEMS: usize = 16 * 1024;

/// An `Items` function's value for each item, in order.
pub async fn map(
    functions: &mut impl Functions,
    function: &FunctionRef,
    items: &[Value],
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(items.len());
    for batch in items.chunks(BATCH_ITEMS) {
        let values = call(functions, function, FunctionKind::Items, batch).await?;
        if values.len() != batch.len() {
            return Err(wrong_shape(function, format!("{} values for {} items", values.len(), batch.len())));
        }
        out.extend(values);
    }
    Ok(out)
}

/// The new items of a partition: an `Items` function given the partition's items as one list
/// (a batch of one), which must return a list.
pub async fn map_partition(
    functions: &mut impl Functions,
    function: &FunctionRef,
    items: Vec<Value>,
) -> Result<Vec<Value>> {
    let mut values = call(functions, function, FunctionKind::Items, &[Value::Array(items)]).await?;
    match (values.pop(), values.is_empty()) {
        (Some(Value::Array(items)), true) => Ok(items),
        (Some(other), true) => Err(wrong_shape(function, format!("not a list but {}", excerpt(&other)))),
        _ => Err(wrong_shape(function, "not one value for the one partition".into())),
    }
}

/// A `Binop` function folding each group's items into its accumulator, left to right; the
/// accumulators after, in order.
pub async fn fold(
    functions: &mut impl Functions,
    binop: &FunctionRef,
    groups: Vec<(Value, Vec<Value>)>,
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(groups.len());
    let mut pending: Vec<Value> = Vec::new();
    let mut pending_items = 0;
    for (acc, items) in groups {
        pending_items += items.len() + 1;
        pending.push(Value::Array(vec![acc, Value::Array(items)]));
        if pending_items >= BATCH_ITEMS {
            out.extend(fold_batch(functions, binop, std::mem::take(&mut pending)).await?);
            pending_items = 0;
        }
    }
    if !pending.is_empty() {
        out.extend(fold_batch(functions, binop, pending).await?);
    }
    Ok(out)
}

async fn fold_batch(
    functions: &mut impl Functions,
    binop: &FunctionRef,
    pairs: Vec<Value>,
) -> Result<Vec<Value>> {
    let values = call(functions, binop, FunctionKind::Binop, &pairs).await?;
    if values.len() != pairs.len() {
        return Err(wrong_shape(binop, format!("{} accumulators for {} groups", values.len(), pairs.len())));
    }
    Ok(values)
}

async fn call(
    functions: &mut impl Functions,
    function: &FunctionRef,
    kind: FunctionKind,
    batch: &[Value],
) -> Result<Vec<Value>> {
    let input = serde_json::to_vec(batch).map_err(|e| Error::BadItem(format!("encoding items: {e}")))?;
    let output = functions.call_json(function, kind, vec![input]).await?;
    match serde_json::from_slice::<Value>(&output) {
        Ok(Value::Array(values)) => Ok(values),
        Ok(other) => Err(wrong_shape(function, format!("not a JSON list but {}", excerpt(&other)))),
        Err(e) => Err(wrong_shape(function, format!("not JSON: {e}"))),
    }
}

fn wrong_shape(function: &FunctionRef, what: String) -> Error {
    Error::BadItem(format!("function '{}' returned {what}", function.function))
}
