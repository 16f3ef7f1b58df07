//! What the items operators need to know of JSON values: paths into them, truthiness (as in
//! Python), a total order (for `topk`), identity (for `distinct`, `frequencies`, `foldby`
//! keys) and numbers that stay integers while they can.

use crate::error::{Error, Result};
use serde_json::{Number, Value};
use shoal_protocol::{ItemPath, PathStep};
use std::cmp::Ordering;

/// Parses the user's notation for a path: `a.b.0` (a number is a list index, or a key when
/// the value there is an object); an empty path is the item itself.
pub fn parse_path(text: &str) -> std::result::Result<ItemPath, String> {
    if text.is_empty() {
        return Ok(vec![]);
    }
    text.split('.')
        .map(|step| {
            if step.is_empty() {
                return Err(format!("path '{text}' has an empty step"));
            }
            Ok(match step.parse::<usize>() {
                Ok(i) => PathStep::Index(i),
                Err(_) => PathStep::Key(step.to_string()),
            })
        })
        .collect()
}

/// The value at `path`, if there is one.
pub fn lookup<'a>(item: &'a Value, path: &[PathStep]) -> Option<&'a Value> {
    let mut at = item;
    for step in path {
        at = match (step, at) {
            (PathStep::Key(k), Value::Object(m)) => m.get(k)?,
            (PathStep::Index(i), Value::Array(a)) => a.get(*i)?,
            // `0` on an object is the key "0".
            (PathStep::Index(i), Value::Object(m)) => m.get(&i.to_string())?,
            _ => return None,
        };
    }
    Some(at)
}

/// `path` as the user wrote it, for messages.
pub fn describe_path(path: &[PathStep]) -> String {
    if path.is_empty() {
        return "value".into();
    }
    let steps: Vec<String> = path
        .iter()
        .map(|s| match s {
            PathStep::Key(k) => k.clone(),
            PathStep::Index(i) => i.to_string(),
        })
        .collect();
    format!("key '{}'", steps.join("."))
}

/// An item for an error message, cut to a readable length.
pub fn excerpt(item: &Value) -> String {
    let text = item.to_string();
    if text.len() <= 200 {
        return text;
    }
    let mut end = 200;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Python's truthiness: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The identity of a value: its canonical JSON text (objects' keys are sorted). `1` and `1.0`
/// are different values, as in JSON.
pub fn identity(v: &Value) -> String {
    v.to_string()
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order of JSON values: by type (null < bool < number < string < list < object),
/// then numbers by value, strings by code point, lists element by element, objects by their
/// canonical text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn compare_numbers(x: &Number, y: &Number) -> Ordering {
    match (x.as_i64(), y.as_i64()) {
        (Some(p), Some(q)) => p.cmp(&q),
        _ => {
            let (p, q) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            p.total_cmp(&q)
        }
    }
}

/// A running sum that stays an integer while every term is one and it does not overflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sum {
    Int(i64),
    Float(f64),
}

impl Default for Sum {
    fn default() -> Self {
        Sum::Int(0)
    }
}

impl Sum {
    pub fn add(self, n: &Number) -> Sum {
        match (self, n.as_i64()) {
            (Sum::Int(a), Some(b)) => match a.checked_add(b) {
                Some(c) => Sum::Int(c),
                None => Sum::Float(a as f64 + b as f64),
            },
            (s, _) => Sum::Float(s.as_f64() + n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    pub fn merge(self, other: Sum) -> Sum {
        match other {
            Sum::Int(b) => self.add(&Number::from(b)),
            Sum::Float(b) => Sum::Float(self.as_f64() + b),
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Sum::Int(a) => a as f64,
            Sum::Float(a) => a,
        }
    }

    pub fn to_value(self) -> Value {
        match self {
            Sum::Int(a) => Value::from(a),
            Sum::Float(a) => float(a),
        }
    }

    pub fn from_value(v: &Value) -> Result<Sum> {
        match v {
            Value::Number(n) => Ok(Sum::default().add(n)),
            other => Err(Error::InvalidTask(format!("a sum state is not a number: {other}"))),
        }
    }
}

/// A float as JSON; NaN and infinities (which JSON cannot hold) as null.
pub fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_lookups_and_order() {
        let item = json!({"a": {"b": [10, {"c": "x"}]}, "0": 5});
        assert_eq!(lookup(&item, &parse_path("a.b.1.c").unwrap()), Some(&json!("x")));
        assert_eq!(lookup(&item, &parse_path("0").unwrap()), Some(&json!(5)));
        assert_eq!(lookup(&item, &parse_path("a.z").unwrap()), None);
        assert_eq!(lookup(&item, &parse_path("").unwrap()), Some(&item));
        assert!(parse_path("a..b").is_err());
        let mut v =
            vec![json!("b"), json!(2.5), json!(null), json!(2), json!([1, 2]), json!(true), json!("a")];
        v.sort_by(compare);
        assert_eq!(
            v,
            vec![json!(null), json!(true), json!(2), json!(2.5), json!("a"), json!("b"), json!([1, 2])]
        );
        assert!(!truthy(&json!(0)) && !truthy(&json!("")) && !truthy(&json!({})) && truthy(&json!([0])));
    }

    #[test]
    fn sums_stay_integers_until_they_cannot() {
        let s = Sum::default().add(&Number::from(i64::MAX - 1)).add(&Number::from(1));
        assert_eq!(s, Sum::Int(i64::MAX));
        assert!(matches!(s.add(&Number::from(1)), Sum::Float(_)));
        let mixed = Sum::default().add(&Number::from(1)).add(&Number::from_f64(0.5).unwrap());
        assert_eq!(mixed.to_value(), json!(1.5));
    }
}
