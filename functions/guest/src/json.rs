//! The JSON kinds of `functions/wit/shoal.wit`, decoded and encoded for the function author,
//! and number arithmetic with the rule the example functions follow.
//!
//! The bytes of one call, by kind:
//! - **items**: one input, a JSON array of items; the output is a JSON array with one value
//!   per item, in order.
//! - **binop**: one input, a JSON array of `[accumulator, [item, ...]]` pairs; the output is a
//!   JSON array of the accumulators after folding each pair's items in, left to right.
//! - **value**: each input is one JSON value (a positional argument); the output is one JSON
//!   value.
//!
//! An error names the function, and for items and binops which item failed (its index in the
//! batch; for binops the pair's index too), so the host can report it with the task.

use crate::{Args, BinopFn, ItemFn, ValueFn};
use serde_json::{Number, Value};

/// Runs an items function over the items of one call.
pub fn call_items(name: &str, function: ItemFn, inputs: &[Vec<u8>], args: &Args) -> Result<Vec<u8>, String> {
    let items = one_array(name, inputs)?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        out.push(function(item, args).map_err(|e| format!("function '{name}', item {index}: {e}"))?);
    }
    encode(name, &Value::Array(out))
}

/// Folds each `[accumulator, [item, ...]]` pair of one call with a binop function.
pub fn call_binop(name: &str, function: BinopFn, inputs: &[Vec<u8>], args: &Args) -> Result<Vec<u8>, String> {
    let pairs = one_array(name, inputs)?;
    let mut out = Vec::with_capacity(pairs.len());
    for (pair_index, pair) in pairs.into_iter().enumerate() {
        let Value::Array(pair) = pair else {
            return Err(format!("input of '{name}': pair {pair_index} is not an [accumulator, items] array"));
        };
        let Ok([mut acc, items]) = <[Value; 2]>::try_from(pair) else {
            return Err(format!("input of '{name}': pair {pair_index} is not an [accumulator, items] array"));
        };
        let Value::Array(items) = items else {
            return Err(format!("input of '{name}': the items of pair {pair_index} are not an array"));
        };
        for (index, item) in items.into_iter().enumerate() {
            acc = function(acc, item, args)
                .map_err(|e| format!("function '{name}', pair {pair_index}, item {index}: {e}"))?;
        }
        out.push(acc);
    }
    encode(name, &Value::Array(out))
}

/// Calls a value function with the call's inputs, each one JSON value.
pub fn call_value(name: &str, function: ValueFn, inputs: &[Vec<u8>], args: &Args) -> Result<Vec<u8>, String> {
    let values = inputs
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            serde_json::from_slice(bytes).map_err(|e| format!("input {i} of '{name}' is not JSON: {e}"))
        })
        .collect::<Result<Vec<Value>, String>>()?;
    let out = function(values, args).map_err(|e| format!("function '{name}': {e}"))?;
    encode(name, &out)
}

fn one_array(name: &str, inputs: &[Vec<u8>]) -> Result<Vec<Value>, String> {
    let [bytes] = inputs else {
        return Err(format!("function '{name}' takes exactly one input, got {}", inputs.len()));
    };
    match serde_json::from_slice(bytes) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(other) => Err(format!("input of '{name}' is not a JSON array but {}", type_name(&other))),
        Err(e) => Err(format!("input of '{name}' is not JSON: {e}")),
    }
}

fn encode(name: &str, value: &Value) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("encoding the result of '{name}': {e}"))
}

/// The JSON type of a value, for messages (`"a string"`, `"an object"`, ...).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON number as shoal's examples compute with it: an integer when it fits `i64`, else a
/// float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    /// The number `value` holds, or an error naming what it is instead.
    pub fn of(value: &Value) -> Result<Num, String> {
        match value {
            Value::Number(n) => Ok(match n.as_i64() {
                Some(i) => Num::Int(i),
                None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            other => Err(format!("not a number: {} ({other})", type_name(other))),
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The number as JSON; a float that is not finite (an overflow) is an error.
    pub fn to_json(self) -> Result<Value, String> {
        match self {
            Num::Int(i) => Ok(Value::from(i)),
            Num::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("the result {f} is not a finite number")),
        }
    }
}

/// `a + b`: integers stay integers (a sum beyond `i64` becomes a float); otherwise floats.
pub fn add(a: Num, b: Num) -> Num {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => {
            a.checked_add(b).map_or_else(|| Num::Float(a as f64 + b as f64), Num::Int)
        }
        (a, b) => Num::Float(a.float() + b.float()),
    }
}

/// `a * b`: integers stay integers (a product beyond `i64` becomes a float); otherwise floats.
pub fn mul(a: Num, b: Num) -> Num {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => {
            a.checked_mul(b).map_or_else(|| Num::Float(a as f64 * b as f64), Num::Int)
        }
        (a, b) => Num::Float(a.float() * b.float()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inc(item: Value, _args: &Args) -> Result<Value, String> {
        add(Num::of(&item)?, Num::Int(1)).to_json()
    }

    fn sum(acc: Value, item: Value, _args: &Args) -> Result<Value, String> {
        add(Num::of(&acc)?, Num::of(&item)?).to_json()
    }

    fn count(inputs: Vec<Value>, _args: &Args) -> Result<Value, String> {
        Ok(Value::from(inputs.len()))
    }

    fn bytes(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn items_binop_and_value_batches() {
        let args = Args::default();
        let out = call_items("inc", inc, &[bytes(json!([1, 2.5, -3]))], &args).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!([2, 3.5, -2]));
        let err = call_items("inc", inc, &[bytes(json!([1, "x"]))], &args).unwrap_err();
        assert!(err.starts_with("function 'inc', item 1: not a number"), "{err}");
        let err = call_items("inc", inc, &[bytes(json!({"a": 1}))], &args).unwrap_err();
        assert!(err.contains("not a JSON array"), "{err}");

        let out = call_binop("sum", sum, &[bytes(json!([[0, [1, 2]], [10, []]]))], &args).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), json!([3, 10]));
        let err = call_binop("sum", sum, &[bytes(json!([[0, [1]], [0, [1, null]]]))], &args).unwrap_err();
        assert!(err.starts_with("function 'sum', pair 1, item 1: not a number: null"), "{err}");

        let out = call_value("count", count, &[bytes(json!([1])), bytes(json!("a"))], &args).unwrap();
        assert_eq!(out, b"2");
    }

    #[test]
    fn numbers_keep_integers_and_overflow_to_floats() {
        assert_eq!(add(Num::Int(2), Num::Int(3)), Num::Int(5));
        assert_eq!(add(Num::Int(2), Num::Float(0.5)), Num::Float(2.5));
        assert_eq!(add(Num::Int(i64::MAX), Num::Int(1)), Num::Float(i64::MAX as f64 + 1.0));
        assert_eq!(mul(Num::Int(-4), Num::Int(3)), Num::Int(-12));
        assert!(Num::Float(f64::INFINITY).to_json().is_err());
        assert_eq!(Num::of(&json!(u64::MAX)).unwrap(), Num::Float(u64::MAX as f64));
    }
}
