//! The example functions over JSON values: items, binop and value kinds. The same functions,
//! with the same names and results, are in the Python example module
//! (`functions/python/examples/app.py`); the end-to-end tests compare the two.
//!
//! Numbers follow [`shoal_guest::json::add`]: integers stay integers (`i64`) when every operand
//! is one, otherwise the result is a float.

use shoal_guest::json::{Num, add, mul, type_name};
use shoal_guest::{Args, Value};

/// items: `item + by` (`by` defaults to 1).
pub fn inc(item: Value, args: &Args) -> Result<Value, String> {
    let by = match args.get("by") {
        Some(by) => Num::of(by).map_err(|e| format!("argument 'by': {e}"))?,
        None => Num::Int(1),
    };
    add(Num::of(&item)?, by).to_json()
}

/// items: whether an integer is even.
pub fn is_even(item: Value, _args: &Args) -> Result<Value, String> {
    match item.as_i64() {
        Some(i) => Ok(Value::Bool(i % 2 == 0)),
        None => Err(format!("not an integer: {} ({item})", type_name(&item))),
    }
}

/// items: whether an object's `status` is at least 500 (a missing or null status: false).
pub fn is_error(item: Value, _args: &Args) -> Result<Value, String> {
    let Value::Object(object) = &item else {
        return Err(format!("not an object: {} ({item})", type_name(&item)));
    };
    match object.get("status") {
        None | Some(Value::Null) => Ok(Value::Bool(false)),
        Some(Value::Number(n)) => Ok(Value::Bool(n.as_f64().is_some_and(|s| s >= 500.0))),
        Some(other) => Err(format!("'status' is {}, not a number ({other})", type_name(other))),
    }
}

/// items: a string's words, lowercased, split on (Unicode) whitespace.
pub fn split_words(item: Value, _args: &Args) -> Result<Value, String> {
    let Value::String(text) = &item else {
        return Err(format!("not a string: {} ({item})", type_name(&item)));
    };
    Ok(Value::Array(text.split_whitespace().map(|w| Value::String(w.to_lowercase())).collect()))
}

/// items: the sum of a list of numbers (0 for an empty list).
pub fn sum_list(item: Value, _args: &Args) -> Result<Value, String> {
    let Value::Array(values) = &item else {
        return Err(format!("not a list: {} ({item})", type_name(&item)));
    };
    sum(values)?.to_json()
}

/// items: `{"total": sum of the row's values in the columns named by `columns`}`; a null value
/// counts as 0, a missing column is an error.
pub fn row_total(item: Value, args: &Args) -> Result<Value, String> {
    let columns = string_list(args, "columns")?;
    let Value::Object(row) = &item else {
        return Err(format!("not a row object: {} ({item})", type_name(&item)));
    };
    let mut total = Num::Int(0);
    for column in columns {
        let value = row.get(column).ok_or_else(|| format!("the row has no column '{column}'"))?;
        if !value.is_null() {
            total = add(total, Num::of(value).map_err(|e| format!("column '{column}': {e}"))?);
        }
    }
    Ok(serde_json::json!({ "total": total.to_json()? }))
}

/// binop: `acc + item`.
pub fn add_op(acc: Value, item: Value, _args: &Args) -> Result<Value, String> {
    let acc = Num::of(&acc).map_err(|e| format!("accumulator: {e}"))?;
    add(acc, Num::of(&item)?).to_json()
}

/// binop: `acc + item[field]` (a missing or null field adds 0).
pub fn add_field(acc: Value, item: Value, args: &Args) -> Result<Value, String> {
    let field = args.str("field")?;
    let acc = Num::of(&acc).map_err(|e| format!("accumulator: {e}"))?;
    let Value::Object(object) = &item else {
        return Err(format!("not an object: {} ({item})", type_name(&item)));
    };
    match object.get(field) {
        None | Some(Value::Null) => acc.to_json(),
        Some(value) => add(acc, Num::of(value).map_err(|e| format!("field '{field}': {e}"))?).to_json(),
    }
}

/// value: the sum of all inputs (0 without inputs).
pub fn add_values(inputs: Vec<Value>, _args: &Args) -> Result<Value, String> {
    sum(&inputs)?.to_json()
}

/// value: `a * b` of exactly two inputs.
pub fn mul_values(inputs: Vec<Value>, _args: &Args) -> Result<Value, String> {
    let [a, b] = inputs.as_slice() else {
        return Err(format!("takes 2 inputs (a, b), got {}", inputs.len()));
    };
    mul(Num::of(a).map_err(|e| format!("a: {e}"))?, Num::of(b).map_err(|e| format!("b: {e}"))?).to_json()
}

/// value: the sum of the lengths of the inputs, each a list.
pub fn total_len(inputs: Vec<Value>, _args: &Args) -> Result<Value, String> {
    let mut total = 0usize;
    for (i, input) in inputs.iter().enumerate() {
        let Value::Array(list) = input else {
            return Err(format!("input {i} is not a list but {}", type_name(input)));
        };
        total += list.len();
    }
    Ok(Value::from(total))
}

fn sum(values: &[Value]) -> Result<Num, String> {
    let mut total = Num::Int(0);
    for (i, value) in values.iter().enumerate() {
        total = add(total, Num::of(value).map_err(|e| format!("element {i}: {e}"))?);
    }
    Ok(total)
}

fn string_list<'a>(args: &'a Args, name: &str) -> Result<Vec<&'a str>, String> {
    let value = args.get(name).ok_or_else(|| format!("argument '{name}' is missing"))?;
    let Value::Array(list) = value else {
        return Err(format!("argument '{name}' must be a list of strings, got {value}"));
    };
    list.iter()
        .map(|v| {
            v.as_str().ok_or_else(|| format!("argument '{name}' must be a list of strings, got {value}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> Args {
        Args::new(value)
    }

    #[test]
    fn items_functions() {
        let none = Args::default();
        assert_eq!(inc(json!(1), &none).unwrap(), json!(2));
        assert_eq!(inc(json!(1), &args(json!({"by": 0.5}))).unwrap(), json!(1.5));
        assert!(inc(json!("1"), &none).is_err());
        assert_eq!(is_even(json!(-4), &none).unwrap(), json!(true));
        assert!(is_even(json!(4.5), &none).is_err());
        assert_eq!(is_error(json!({"status": 503}), &none).unwrap(), json!(true));
        assert_eq!(is_error(json!({"status": null}), &none).unwrap(), json!(false));
        assert_eq!(is_error(json!({}), &none).unwrap(), json!(false));
        assert_eq!(split_words(json!(" Hello\tWÖRLD  x "), &none).unwrap(), json!(["hello", "wörld", "x"]));
        assert_eq!(sum_list(json!([1, 2, 3]), &none).unwrap(), json!(6));
        assert_eq!(sum_list(json!([]), &none).unwrap(), json!(0));
        assert_eq!(sum_list(json!([1, 0.5]), &none).unwrap(), json!(1.5));
        let cols = args(json!({"columns": ["a", "b"]}));
        assert_eq!(row_total(json!({"a": 1, "b": null, "c": 9}), &cols).unwrap(), json!({"total": 1}));
        assert!(row_total(json!({"a": 1}), &cols).unwrap_err().contains("'b'"));
    }

    #[test]
    fn binop_and_value_functions() {
        let none = Args::default();
        assert_eq!(add_op(json!(1), json!(2), &none).unwrap(), json!(3));
        assert!(add_op(json!(1), json!("x"), &none).unwrap_err().contains("a string"));
        let field = args(json!({"field": "n"}));
        assert_eq!(add_field(json!(1), json!({"n": 2.5}), &field).unwrap(), json!(3.5));
        assert_eq!(add_field(json!(1), json!({}), &field).unwrap(), json!(1));
        assert_eq!(add_values(vec![json!(1), json!(2), json!(3)], &none).unwrap(), json!(6));
        assert_eq!(mul_values(vec![json!(3), json!(-2)], &none).unwrap(), json!(-6));
        assert!(mul_values(vec![json!(3)], &none).is_err());
        assert_eq!(total_len(vec![json!([1, 2]), json!([])], &none).unwrap(), json!(2));
    }
}
