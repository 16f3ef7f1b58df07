//! Example shoal functions, compiled to a `wasm32-wasip2` component (see `shoal-functions`).
//!
//! - `scale` — `{column, factor, output?}`: `output = float64(column) * factor`; nulls stay null.
//! - `filter_range` — `{column, min?, max?}`: keeps rows whose numeric value is in
//!   `[min, max]`; nulls are dropped.
//! - `normalize_text` — `{column, output?}`: trims and lowercases a string column.
//! - `shift_block` — an Array block (`map_blocks`): `float64(chunk) * factor + sum(block_index)`
//!   (`{factor?}`, default 1), so a test can tell each block got its own index.
//!
//! Over JSON values (`values`; the same functions, by name and result, are in the Python
//! example module `functions/python/examples/app.py`):
//!
//! - items `inc` (`{by?}`, default 1: number → number + by), `is_even` (integer → bool),
//!   `is_error` (object → `status >= 500`; missing or null status → false), `split_words`
//!   (string → its words, lowercased, split on whitespace), `sum_list` (list of numbers → their
//!   sum), `row_total` (`{columns}`: row → `{"total": sum of those columns}`, nulls as 0);
//! - binop `add` (acc + item) and `add_field` (`{field}`: acc + item[field], missing/null → +0);
//! - value `add_values` (sum of all inputs), `mul` (a * b), `total_len` (sum of the lengths of
//!   list inputs).
//!
//! Integers stay integers when every operand is one; otherwise results are floats.
//!
//! The logic is in plain functions over Arrow arrays so it can be unit-tested on the host.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, StringArray};
use arrow_schema::DataType;
use shoal_guest::{Args, RecordBatch, column, with_column};

pub mod values;

shoal_guest::register! {
    "scale" => ("multiply a numeric column by `factor` into `output` (Float64): {column, factor, output?}", scale),
    "filter_range" => ("keep rows whose numeric `column` is within [min, max]; nulls dropped: {column, min?, max?}", filter_range),
    "normalize_text" => ("trim and lowercase a string column: {column, output?}", normalize_text),
    "shift_block" => ("an array block times `factor` plus the sum of its block index: {factor?}", shift_block),
    items "inc" => ("a number plus `by` (default 1): {by?}", values::inc),
    items "is_even" => ("whether an integer is even", values::is_even),
    items "is_error" => ("whether an object's `status` is at least 500 (missing or null: false)", values::is_error),
    items "split_words" => ("a string's words, lowercased, split on whitespace", values::split_words),
    items "sum_list" => ("the sum of a list of numbers", values::sum_list),
    items "row_total" => ("{\"total\": sum of a row's `columns`, nulls as 0}: {columns}", values::row_total),
    binop "add" => ("acc + item (numbers)", values::add_op),
    binop "add_field" => ("acc + item[field] (missing or null: + 0): {field}", values::add_field),
    value "add_values" => ("the sum of all inputs", values::add_values),
    value "mul" => ("a * b", values::mul_values),
    value "total_len" => ("the sum of the lengths of list inputs", values::total_len),
}

/// Casts a numeric column to Float64, refusing non-numeric columns.
pub fn to_f64(name: &str, array: &ArrayRef) -> Result<Float64Array, String> {
    if !array.data_type().is_numeric() {
        return Err(format!("column '{name}' must be numeric, got {}", array.data_type()));
    }
    let cast = arrow_cast::cast(array, &DataType::Float64)
        .map_err(|e| format!("casting column '{name}' to Float64: {e}"))?;
    Ok(cast.as_primitive::<Float64Type>().clone())
}

/// `values * factor`, nulls preserved.
pub fn scale_values(values: &Float64Array, factor: f64) -> Float64Array {
    values.unary(|v| v * factor)
}

/// Rows whose value is in `[min, max]` (either bound optional); nulls are `false`.
pub fn range_mask(values: &Float64Array, min: Option<f64>, max: Option<f64>) -> BooleanArray {
    values
        .iter()
        .map(|v| Some(v.is_some_and(|v| min.is_none_or(|min| v >= min) && max.is_none_or(|max| v <= max))))
        .collect()
}

/// Trimmed, lowercased strings; nulls preserved.
pub fn normalize_strings(values: &StringArray) -> StringArray {
    values.iter().map(|v| v.map(|s| s.trim().to_lowercase())).collect()
}

fn scale(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    let name = args.str("column")?;
    let factor = args.f64("factor")?;
    let output = args.opt_str("output")?.unwrap_or(name);
    let values = to_f64(name, column(&batch, name)?)?;
    with_column(&batch, output, Arc::new(scale_values(&values, factor)))
}

fn shift_block(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    let factor = args.opt_f64("factor")?.unwrap_or(1.0);
    let index =
        args.get("block_index").and_then(|v| v.as_array()).ok_or("argument 'block_index' is missing")?;
    let shift: f64 = index.iter().filter_map(|v| v.as_f64()).sum();
    let values = to_f64("chunk", column(&batch, "chunk")?)?;
    let shifted: Float64Array = values.unary(|v| v * factor + shift);
    with_column(&batch, "chunk", Arc::new(shifted))
}

fn filter_range(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    let name = args.str("column")?;
    let min = args.opt_f64("min")?;
    let max = args.opt_f64("max")?;
    let values = to_f64(name, column(&batch, name)?)?;
    let mask = range_mask(&values, min, max);
    arrow_select::filter::filter_record_batch(&batch, &mask)
        .map_err(|e| format!("filtering on '{name}': {e}"))
}

fn normalize_text(batch: RecordBatch, args: &Args) -> Result<RecordBatch, String> {
    let name = args.str("column")?;
    let output = args.opt_str("output")?.unwrap_or(name);
    let array = column(&batch, name)?;
    let strings = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().clone(),
        DataType::LargeUtf8 | DataType::Utf8View => {
            let cast = arrow_cast::cast(array, &DataType::Utf8)
                .map_err(|e| format!("casting column '{name}' to Utf8: {e}"))?;
            cast.as_string::<i32>().clone()
        }
        other => {
            return Err(format!("column '{name}' must be a string column, got {other}"));
        }
    };
    with_column(&batch, output, Arc::new(normalize_strings(&strings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logic() {
        let v = Float64Array::from(vec![Some(1.0), None, Some(5.0)]);
        assert_eq!(scale_values(&v, 2.0), Float64Array::from(vec![Some(2.0), None, Some(10.0)]));
        assert_eq!(range_mask(&v, Some(2.0), None), BooleanArray::from(vec![false, false, true]));
        let s = StringArray::from(vec![Some("  Hi "), None]);
        assert_eq!(normalize_strings(&s), StringArray::from(vec![Some("hi"), None]));
    }
}
