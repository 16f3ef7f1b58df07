//! SQL-like predicates over the fields of items (Bag `filter` / `remove` without user code):
//! `status >= 500 AND user.country IN ('NL', 'BE')`. Names are keys (dotted for nested
//! objects, `tags[0]` and `o['key']` for list elements (0-based, as in Python) and other keys,
//! double-quoted when they are not plain names); literals are numbers, strings in
//! single quotes, `true`, `false`, `null`. Operators: comparisons, `+ - * / %`, `AND`, `OR`,
//! `NOT`, `IS [NOT] NULL`, `[NOT] IN (…)`, `[NOT] BETWEEN`, `[NOT] LIKE` / `ILIKE`. As in SQL, a
//! missing field is null, a comparison with null or between values of different types is
//! unknown, and an item is kept only where the predicate is true.
//!
//! The text is parsed once per task (with DataFusion's SQL parser) into a small tree that is
//! evaluated per item.

use super::value::{self, Sum};
use crate::error::{Error, Result};
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, UnaryOperator};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde_json::Value;
use shoal_protocol::{ItemPath, PathStep};
use std::cmp::Ordering;

/// Checks that `text` is a predicate this module can evaluate (for the coordinator, at plan time).
pub fn check(text: &str) -> std::result::Result<(), String> {
    Predicate::parse(text).map(|_| ()).map_err(|e| e.to_string())
}

/// A parsed predicate.
#[derive(Debug, Clone)]
pub struct Predicate {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Path(ItemPath),
    Literal(Value),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Compare(Box<Node>, Ordering, bool, Box<Node>),
    Arithmetic(Box<Node>, BinaryOperator, Box<Node>),
    IsNull { expr: Box<Node>, negated: bool },
    In { expr: Box<Node>, list: Vec<Node>, negated: bool },
    Between { expr: Box<Node>, low: Box<Node>, high: Box<Node>, negated: bool },
    Like { expr: Box<Node>, pattern: Box<Node>, negated: bool, fold_case: bool },
}

impl Predicate {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: String| Error::InvalidTask(format!("predicate '{text}': {message}"));
        let expr = Parser::new(&GenericDialect)
            .try_with_sql(text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| bad(e.to_string()))?;
        Ok(Predicate { root: compile(&expr).map_err(bad)? })
    }

    /// Whether the predicate is true for `item` (unknown counts as not true).
    pub fn matches(&self, item: &Value) -> Result<bool> {
        Ok(eval(&self.root, item) == Value::Bool(true))
    }
}

fn compile(expr: &ast::Expr) -> std::result::Result<Node, String> {
    let boxed = |e: &ast::Expr| compile(e).map(Box::new);
    Ok(match expr {
        ast::Expr::Identifier(ident) => Node::Path(vec![PathStep::Key(ident.value.clone())]),
        ast::Expr::CompoundIdentifier(idents) => {
            Node::Path(idents.iter().map(|i| PathStep::Key(i.value.clone())).collect())
        }
        ast::Expr::CompoundFieldAccess { root, access_chain } => {
            let Node::Path(mut path) = compile(root)? else {
                return Err(format!("'{expr}' is not a field of the item"));
            };
            for access in access_chain {
                path.push(match access {
                    ast::AccessExpr::Dot(ast::Expr::Identifier(i)) => PathStep::Key(i.value.clone()),
                    ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => match compile(index)? {
                        Node::Literal(Value::String(k)) => PathStep::Key(k),
                        Node::Literal(Value::Number(n)) if n.as_u64().is_some() => {
                            PathStep::Index(n.as_u64().unwrap_or_default() as usize)
                        }
                        _ => {
                            return Err(format!(
                                "'{access}' in '{expr}': an index must be a number or a string"
                            ));
                        }
                    },
                    other => return Err(format!("'{other}' in '{expr}' is not supported over items")),
                });
            }
            Node::Path(path)
        }
        // Names the SQL dialect reads as niladic functions (`user`, `current_date`) are keys here.
        ast::Expr::Function(f) if matches!(f.args, ast::FunctionArguments::None) && f.name.0.len() == 1 => {
            Node::Path(vec![PathStep::Key(f.name.to_string())])
        }
        ast::Expr::Value(v) => Node::Literal(literal(&v.value)?),
        ast::Expr::Nested(e) => compile(e)?,
        ast::Expr::UnaryOp { op: UnaryOperator::Not, expr } => Node::Not(boxed(expr)?),
        ast::Expr::UnaryOp { op: UnaryOperator::Minus, expr } => Node::Neg(boxed(expr)?),
        ast::Expr::UnaryOp { op: UnaryOperator::Plus, expr } => compile(expr)?,
        ast::Expr::IsNull(e) => Node::IsNull { expr: boxed(e)?, negated: false },
        ast::Expr::IsNotNull(e) => Node::IsNull { expr: boxed(e)?, negated: true },
        ast::Expr::InList { expr, list, negated } => Node::In {
            expr: boxed(expr)?,
            list: list.iter().map(compile).collect::<std::result::Result<_, _>>()?,
            negated: *negated,
        },
        ast::Expr::Between { expr, negated, low, high } => {
            Node::Between { expr: boxed(expr)?, low: boxed(low)?, high: boxed(high)?, negated: *negated }
        }
        ast::Expr::Like { negated, expr, pattern, escape_char: None, any: false } => {
            Node::Like { expr: boxed(expr)?, pattern: boxed(pattern)?, negated: *negated, fold_case: false }
        }
        ast::Expr::ILike { negated, expr, pattern, escape_char: None, any: false } => {
            Node::Like { expr: boxed(expr)?, pattern: boxed(pattern)?, negated: *negated, fold_case: true }
        }
        ast::Expr::BinaryOp { left, op, right } => {
            let (l, r) = (boxed(left)?, boxed(right)?);
            match op {
                BinaryOperator::And => Node::And(l, r),
                BinaryOperator::Or => Node::Or(l, r),
                BinaryOperator::Eq => Node::Compare(l, Ordering::Equal, false, r),
                BinaryOperator::NotEq => Node::Compare(l, Ordering::Equal, true, r),
                BinaryOperator::Lt => Node::Compare(l, Ordering::Less, false, r),
                BinaryOperator::GtEq => Node::Compare(l, Ordering::Less, true, r),
                BinaryOperator::Gt => Node::Compare(l, Ordering::Greater, false, r),
                BinaryOperator::LtEq => Node::Compare(l, Ordering::Greater, true, r),
                BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo => Node::Arithmetic(l, op.clone(), r),
                other => return Err(format!("operator {other} is not supported over items")),
            }
        }
        other => return Err(format!("'{other}' is not supported over items")),
    })
}

fn literal(v: &ast::Value) -> std::result::Result<Value, String> {
    Ok(match v {
        ast::Value::Number(n, _) => {
            serde_json::from_str::<Value>(n).map_err(|_| format!("bad number {n}"))?
        }
        ast::Value::SingleQuotedString(s) => Value::String(s.clone()),
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::Null => Value::Null,
        other => return Err(format!("literal {other} is not supported over items")),
    })
}

fn eval(node: &Node, item: &Value) -> Value {
    match node {
        Node::Path(path) => value::lookup(item, path).cloned().unwrap_or(Value::Null),
        Node::Literal(v) => v.clone(),
        Node::Not(e) => match eval(e, item) {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Null,
        },
        Node::Neg(e) => match eval(e, item) {
            Value::Number(n) => match n.as_i64() {
                Some(i) => i.checked_neg().map_or_else(|| value::float(-(i as f64)), Value::from),
                None => value::float(-n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => Value::Null,
        },
        Node::And(l, r) => match (eval(l, item), eval(r, item)) {
            (Value::Bool(false), _) | (_, Value::Bool(false)) => Value::Bool(false),
            (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
            _ => Value::Null,
        },
        Node::Or(l, r) => match (eval(l, item), eval(r, item)) {
            (Value::Bool(true), _) | (_, Value::Bool(true)) => Value::Bool(true),
            (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
            _ => Value::Null,
        },
        Node::Compare(l, want, negated, r) => match order(&eval(l, item), &eval(r, item)) {
            Some(o) => Value::Bool((o == *want) != *negated),
            None => Value::Null,
        },
        Node::Arithmetic(l, op, r) => arithmetic(&eval(l, item), op, &eval(r, item)),
        Node::IsNull { expr, negated } => Value::Bool(eval(expr, item).is_null() != *negated),
        Node::In { expr, list, negated } => {
            let v = eval(expr, item);
            let mut unknown = v.is_null();
            for candidate in list {
                match order(&v, &eval(candidate, item)) {
                    Some(Ordering::Equal) => return Value::Bool(!negated),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
            if unknown { Value::Null } else { Value::Bool(*negated) }
        }
        Node::Between { expr, low, high, negated } => {
            let v = eval(expr, item);
            match (order(&v, &eval(low, item)), order(&v, &eval(high, item))) {
                (Some(lo), Some(hi)) => {
                    Value::Bool((lo != Ordering::Less && hi != Ordering::Greater) != *negated)
                }
                _ => Value::Null,
            }
        }
        Node::Like { expr, pattern, negated, fold_case } => match (eval(expr, item), eval(pattern, item)) {
            (Value::String(s), Value::String(p)) => {
                let hit = if *fold_case { like(&s.to_lowercase(), &p.to_lowercase()) } else { like(&s, &p) };
                Value::Bool(hit != *negated)
            }
            _ => Value::Null,
        },
    }
}

/// The order of two values of the same kind; `None` for null or values of different kinds.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    let same = matches!(
        (a, b),
        (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
            | (Value::Array(_), Value::Array(_))
            | (Value::Object(_), Value::Object(_))
    );
    same.then(|| value::compare(a, b))
}

fn arithmetic(a: &Value, op: &BinaryOperator, b: &Value) -> Value {
    let (Value::Number(x), Value::Number(y)) = (a, b) else { return Value::Null };
    if let (Some(p), Some(q)) = (x.as_i64(), y.as_i64()) {
        let exact = match op {
            BinaryOperator::Plus => p.checked_add(q),
            BinaryOperator::Minus => p.checked_sub(q),
            BinaryOperator::Multiply => p.checked_mul(q),
            BinaryOperator::Modulo => p.checked_rem(q),
            // Division of integers is true division, as in Python.
            _ => None,
        };
        if let Some(v) = exact {
            return Value::from(v);
        }
        if matches!(op, BinaryOperator::Modulo) {
            return Value::Null;
        }
    }
    let (p, q) = (Sum::default().add(x).as_f64(), Sum::default().add(y).as_f64());
    value::float(match op {
        BinaryOperator::Plus => p + q,
        BinaryOperator::Minus => p - q,
        BinaryOperator::Multiply => p * q,
        BinaryOperator::Divide if q != 0.0 => p / q,
        BinaryOperator::Modulo if q != 0.0 => p % q,
        _ => return Value::Null,
    })
}

/// SQL `LIKE`: `%` any run of characters, `_` one character.
fn like(s: &str, pattern: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    // Greedy match with backtracking to the last `%`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if j < p.len() && (p[j] == '_' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(st) = star {
            j = st + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    p[j..].iter().all(|&c| c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keeps(predicate: &str, item: Value) -> bool {
        Predicate::parse(predicate).unwrap().matches(&item).unwrap()
    }

    #[test]
    fn comparisons_logic_and_nulls_follow_sql() {
        let item = json!({"status": 503, "user": {"country": "NL", "name": "Zoë"}, "ms": 1.5, "tag": null});
        assert!(keeps("status >= 500 AND user.country IN ('NL', 'BE')", item.clone()));
        assert!(!keeps("status < 500", item.clone()));
        assert!(keeps("NOT status < 500", item.clone()));
        assert!(keeps("tag IS NULL AND missing IS NULL AND ms IS NOT NULL", item.clone()));
        // Unknown is not true, and its negation is not true either.
        assert!(!keeps("missing = 1", item.clone()) && !keeps("NOT missing = 1", item.clone()));
        assert!(!keeps("status = 'x'", item.clone()) && !keeps("status <> 'x'", item.clone()));
        assert!(keeps("missing = 1 OR status = 503", item.clone()));
        assert!(keeps("ms * 2 = 3 AND status % 100 = 3 AND status / 2 = 251.5", item.clone()));
        assert!(keeps("ms BETWEEN 1 AND 2 AND status NOT BETWEEN 0 AND 10", item.clone()));
        assert!(keeps("user.name LIKE 'Z_ë' AND user.name ILIKE 'z%' AND user.name NOT LIKE '%x%'", item));
        assert!(keeps("-a < 0", json!({"a": 2})));
        assert!(keeps("tags[1] = 'b' AND o['k'] = 1", json!({"tags": ["a", "b"], "o": {"k": 1}})));
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused_at_parse_time() {
        for bad in ["status >>", "count(*) > 1", "a = (SELECT 1)", "a @> b"] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check("a.b = 'x' OR c IN (1, 2)").is_ok());
    }

    #[test]
    fn like_patterns() {
        assert!(like("abc", "a%c") && like("abc", "%") && like("", "%") && like("abc", "a_c"));
        assert!(!like("abc", "a_") && !like("abc", "b%") && like("aXbXc", "a%b%c") && !like("ab", "a%b%c"));
    }
}
