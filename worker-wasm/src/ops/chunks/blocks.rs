//! Chunks in and out of tables: a user function on a block (`map_blocks`: a `table` function
//! on its Arrow table, or an `items` function — a Python guest's — on it as nested JSON lists),
//! and a DataFrame partition's numeric columns as a 2-d chunk (`to_array`).

use super::chunk::{self, Chunk, Data};
use super::dtype;
use crate::error::{Error, Result};
use crate::io::Table;
use crate::ops::Functions;
use arrow::compute::concat_batches;
use ndarray::{ArrayD, IxDyn};
use serde_json::Value;
use shoal_protocol::{DType, FunctionKind, FunctionRef};

/// Calls the `table` function `function` on `input` (a chunk table), with the block's index and
/// shape added to its arguments; its one output column holds the new chunk of `shape`.
pub async fn map_blocks(
    input: &Table,
    function: &FunctionRef,
    block_index: &[u64],
    shape: &[u64],
    dtype: DType,
    functions: &mut impl Functions,
) -> Result<Chunk> {
    let (schema, batches) = input;
    let batch = concat_batches(schema, batches).map_err(Error::arrow("map_blocks: its block"))?;
    let block_shape = chunk::table_shape(schema)?;
    let mut args = match &function.args {
        serde_json::Value::Object(map) => map.clone(),
        serde_json::Value::Null => Default::default(),
        other => {
            return Err(Error::InvalidTask(format!("map_blocks arguments must be an object, not {other}")));
        }
    };
    args.insert("block_index".into(), serde_json::json!(block_index));
    args.insert("block_shape".into(), serde_json::json!(block_shape));
    let out =
        functions.call(&function.module, &function.function, batch, &serde_json::Value::Object(args)).await?;
    let name = &function.function;
    if out.num_columns() != 1 {
        return Err(Error::BadItem(format!(
            "map_blocks function {name} returned {} columns; a block is one column",
            out.num_columns()
        )));
    }
    let want: usize = shape.iter().map(|&d| d as usize).product();
    if out.num_rows() != want {
        return Err(Error::BadItem(format!(
            "map_blocks function {name} returned {} elements for a block of shape {shape:?} ({want})",
            out.num_rows()
        )));
    }
    let column = arrow::compute::cast(out.column(0), &dtype::arrow_type(dtype))
        .map_err(Error::arrow("map_blocks: casting its result"))?;
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let schema = chunk::chunk_schema(dtype);
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
        schema.fields().clone(),
        chunk::shape_metadata(&shape),
    ));
    let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), vec![column])
        .map_err(Error::arrow("map_blocks: its result"))?;
    chunk::from_table(&(schema, vec![batch]))
}

/// The function's arguments with the block's index and shape merged in.
fn block_args(function: &FunctionRef, block_index: &[u64], block_shape: &[usize]) -> Result<Value> {
    let mut args = match &function.args {
        Value::Object(map) => map.clone(),
        Value::Null => Default::default(),
        other => {
            return Err(Error::InvalidTask(format!("map_blocks arguments must be an object, not {other}")));
        }
    };
    args.insert("block_index".into(), serde_json::json!(block_index));
    args.insert("block_shape".into(), serde_json::json!(block_shape));
    Ok(Value::Object(args))
}

/// Calls the `items` function `function` on `block` as nested JSON lists (a batch of one item);
/// its one result, nested lists of `shape`, is the new chunk of `dtype`.
pub async fn map_blocks_json(
    block: &Chunk,
    function: &FunctionRef,
    block_index: &[u64],
    shape: &[u64],
    dtype: DType,
    functions: &mut impl Functions,
) -> Result<Chunk> {
    let call = FunctionRef { args: block_args(function, block_index, block.shape())?, ..function.clone() };
    let item = nested(block);
    let input = serde_json::to_vec(&[item]).map_err(|e| Error::BadItem(format!("encoding a block: {e}")))?;
    let output = functions.call_json(&call, FunctionKind::Items, vec![input]).await?;
    let name = &function.function;
    let bad = |what: String| Error::BadItem(format!("map_blocks function {name} returned {what}"));
    let mut results: Vec<Value> =
        serde_json::from_slice(&output).map_err(|e| bad(format!("not a JSON list: {e}")))?;
    if results.len() != 1 {
        return Err(bad(format!("{} items for one block", results.len())));
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let mut flat = Vec::with_capacity(shape.iter().product());
    flatten(results.remove(0), &shape, &mut flat)
        .map_err(|e| bad(format!("{e} (expected nested lists of shape {shape:?})")))?;
    let data = if dtype.is_bool() {
        Data::Bool(
            ArrayD::from_shape_vec(
                IxDyn(&shape),
                flat.iter().map(|v| v.as_bool().unwrap_or(false)).collect(),
            )
            .map_err(|e| bad(e.to_string()))?,
        )
    } else if dtype.is_float() {
        Data::Float(
            ArrayD::from_shape_vec(
                IxDyn(&shape),
                flat.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect(),
            )
            .map_err(|e| bad(e.to_string()))?,
        )
    } else {
        let ints: Option<Vec<i64>> =
            flat.iter().map(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))).collect();
        let ints = ints.ok_or_else(|| bad(format!("a value that is not a number for a block of {dtype}")))?;
        Data::Int(ArrayD::from_shape_vec(IxDyn(&shape), ints).map_err(|e| bad(e.to_string()))?)
    };
    Ok(Chunk::new(dtype, data))
}

/// A chunk as nested JSON lists (a 0-d chunk as its one value).
fn nested(chunk: &Chunk) -> Value {
    let values: Vec<Value> = match &chunk.data {
        Data::Bool(a) => a.iter().map(|&v| Value::Bool(v)).collect(),
        Data::Int(a) => a.iter().map(|&v| Value::from(v)).collect(),
        Data::Float(a) => {
            a.iter().map(|&v| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)).collect()
        }
    };
    fn group(mut values: Vec<Value>, shape: &[usize]) -> Value {
        match shape {
            [] => values.pop().unwrap_or(Value::Null),
            [_] => Value::Array(values),
            [_, rest @ ..] => {
                let inner: usize = rest.iter().product::<usize>().max(1);
                let mut out = Vec::new();
                let mut it = values.into_iter();
                loop {
                    let part: Vec<Value> = it.by_ref().take(inner).collect();
                    if part.is_empty() {
                        break;
                    }
                    out.push(group(part, rest));
                }
                Value::Array(out)
            }
        }
    }
    group(values, chunk.shape())
}

/// The leaves of nested lists of `shape`, in C order.
fn flatten(value: Value, shape: &[usize], out: &mut Vec<Value>) -> std::result::Result<(), String> {
    match (shape, value) {
        ([], Value::Array(_)) => Err("a list where a number belongs".into()),
        ([], v) => {
            out.push(v);
            Ok(())
        }
        ([n, rest @ ..], Value::Array(items)) if items.len() == *n => {
            items.into_iter().try_for_each(|v| flatten(v, rest, out))
        }
        ([n, ..], Value::Array(items)) => Err(format!("a list of {} where {n} belong", items.len())),
        (_, other) => Err(format!("{other} where a list belongs")),
    }
}

/// The `columns` of a DataFrame partition as a (rows × columns) chunk of `dtype`.
pub fn from_rows(input: &Table, columns: &[String], dtype: DType) -> Result<Chunk> {
    let (schema, batches) = input;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let target = dtype::arrow_type(dtype);
    let mut per_column: Vec<Chunk> = Vec::with_capacity(columns.len());
    for name in columns {
        let index =
            schema.index_of(name).map_err(|_| Error::Schema(format!("to_array: no column {name:?}")))?;
        let mut parts = Vec::new();
        for b in batches {
            let c = b.column(index);
            if c.null_count() > 0 {
                return Err(Error::Schema(format!(
                    "to_array: column {name:?} holds nulls, which an array cannot"
                )));
            }
            parts.push(arrow::compute::cast(c, &target).map_err(Error::arrow("to_array: casting a column"))?);
        }
        let field = arrow::datatypes::Field::new(shoal_protocol::CHUNK_COLUMN, target.clone(), false);
        let one = std::sync::Arc::new(arrow::datatypes::Schema::new_with_metadata(
            vec![field],
            chunk::shape_metadata(&[rows]),
        ));
        let batches = parts
            .into_iter()
            .map(|p| arrow::record_batch::RecordBatch::try_new(one.clone(), vec![p]))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::arrow("to_array: a column"))?;
        per_column.push(chunk::from_table(&(one, batches))?);
    }
    let ncols = columns.len();
    let data = match dtype {
        d if d.is_float() => {
            let cols: Vec<ArrayD<f64>> = per_column.iter().map(Chunk::floats).collect();
            Data::Float(ArrayD::from_shape_fn(IxDyn(&[rows, ncols]), |ix| cols[ix[1]][[ix[0]]]))
        }
        DType::Bool => {
            let cols: Vec<ArrayD<bool>> = per_column.iter().map(|c| c.data.to_bool()).collect();
            Data::Bool(ArrayD::from_shape_fn(IxDyn(&[rows, ncols]), |ix| cols[ix[1]][[ix[0]]]))
        }
        _ => {
            let cols: Vec<ArrayD<i64>> = per_column.iter().map(|c| c.data.to_int()).collect();
            Data::Int(ArrayD::from_shape_fn(IxDyn(&[rows, ncols]), |ix| cols[ix[1]][[ix[0]]]))
        }
    };
    Ok(Chunk::new(dtype, data))
}
