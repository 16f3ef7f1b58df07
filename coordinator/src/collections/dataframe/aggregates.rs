//! Expressions over aggregates in `agg`: `share = "100 * sum(CASE WHEN x > 0 THEN x END) / sum(x)"`.
//!
//! A distributed aggregation merges accumulator states, so only aggregate *calls* can be split
//! over tasks. An expression over them is split at plan time into the calls, aggregated like
//! any other (each distinct call once, under a hidden name), and a scalar step evaluated after
//! the final aggregation (an `Assign` over the aggregated row, then a `Select` of the requested
//! columns), which lowering fuses into the final task of every strategy. `explain` shows both.
//!
//! The split works on the SQL syntax tree (sqlparser, as DataFusion parses it), so each call
//! travels as the text the user wrote; which functions are aggregates is asked of DataFusion's
//! function registry.

use crate::error::{Error, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{self, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

/// An aggregation split into aggregate calls and the scalar step after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// `(column, SQL aggregate call)`: the user's plain aggregations under their own names,
    /// then the calls inside expressions under hidden names.
    pub calls: Vec<(String, String)>,
    /// `(output name, SQL scalar expression over the calls' columns and the group keys)`, in
    /// the user's order; empty when every aggregation is a plain call.
    pub post: Vec<(String, String)>,
}

/// Splits `aggs` (`(output name, SQL)`); hidden column names avoid every name in `taken` (the
/// input's columns and the output's).
pub fn split(aggs: &[(String, String)], taken: &BTreeSet<String>) -> Result<Split> {
    let ctx = shoal_worker::ops::table::session::session();
    let mut calls = Vec::new();
    // The column holding each distinct call, by its canonical SQL text.
    let mut columns: HashMap<String, String> = HashMap::new();
    let mut parsed = Vec::with_capacity(aggs.len());
    for (name, sql) in aggs {
        let expr = parse(name, sql)?;
        // The same call twice (`a = max(x)`, `b = max("x")`) is aggregated once; the second is
        // a copy made after the aggregation.
        if is_aggregate_call(&ctx, &expr) && !columns.contains_key(&canonical(&expr)) {
            calls.push((name.clone(), sql.clone()));
            columns.insert(canonical(&expr), name.clone());
            parsed.push(None);
        } else {
            parsed.push(Some(expr));
        }
    }
    let mut post = Vec::new();
    let mut hidden = 0;
    for ((name, sql), expr) in aggs.iter().zip(parsed) {
        let Some(mut expr) = expr else { continue };
        let mut found = 0;
        let _ = visit_expressions_mut(&mut expr, |e| {
            if is_aggregate_call(&ctx, e) {
                let column = columns
                    .entry(canonical(e))
                    .or_insert_with(|| {
                        let column = fresh_name(&mut hidden, taken);
                        calls.push((column.clone(), e.to_string()));
                        column
                    })
                    .clone();
                *e = ast::Expr::Identifier(ast::Ident::with_quote('"', column));
                found += 1;
            }
            ControlFlow::<()>::Continue(())
        });
        if found == 0 {
            return Err(Error::Invalid(format!(
                "agg {name}: '{sql}' has no aggregate function call (such as sum(x) or count(*)); \
                 a per-row expression belongs in assign"
            )));
        }
        post.push((name.clone(), expr.to_string()));
    }
    Ok(Split { calls, post })
}

/// The text of an expression with every column name in one spelling (`x`, `X` and `"x"` are
/// one column, as DataFusion resolves them), so that equal calls are found equal.
fn canonical(expr: &ast::Expr) -> String {
    let mut expr = expr.clone();
    let one = |i: &mut ast::Ident| {
        if i.quote_style.is_none() {
            i.value = i.value.to_lowercase();
        }
        i.quote_style = Some('"');
    };
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            ast::Expr::Identifier(i) => one(i),
            ast::Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(one),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    expr.to_string()
}

fn parse(name: &str, sql: &str) -> Result<ast::Expr> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::Schema(format!("agg {name}: invalid expression '{sql}': {e}")))
}

/// A call of an aggregate function (not a window function: no `OVER`).
fn is_aggregate_call(ctx: &SessionContext, expr: &ast::Expr) -> bool {
    let ast::Expr::Function(f) = expr else { return false };
    if f.over.is_some() {
        return false;
    }
    let name = match f.name.0.as_slice() {
        [part] => part.as_ident().map(|i| i.value.to_lowercase()),
        _ => None,
    };
    name.is_some_and(|n| ctx.udaf(&n).is_ok())
}

fn fresh_name(counter: &mut usize, taken: &BTreeSet<String>) -> String {
    loop {
        let name = format!("__agg_{counter}");
        *counter += 1;
        if !taken.contains(&name) {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn plain_calls_stay_as_they_are() {
        let aggs = pairs(&[("total", "sum(x)"), ("n", "count(*)")]);
        let s = split(&aggs, &BTreeSet::new()).unwrap();
        assert_eq!(s.calls, aggs);
        assert!(s.post.is_empty());
    }

    #[test]
    fn expressions_are_split_into_distinct_calls_and_a_scalar_step() {
        let aggs = pairs(&[
            ("total", "sum(x)"),
            ("share", "100 * sum(CASE WHEN x > 5 THEN x ELSE 0 END) / sum(x)"),
            ("spread", "max(x) - min(x)"),
            ("label", "k || ':' || CAST(count(*) AS VARCHAR)"),
        ]);
        let taken = BTreeSet::from(["__agg_0".to_string()]);
        let s = split(&aggs, &taken).unwrap();
        let calls: Vec<&str> = s.calls.iter().map(|(n, _)| n.as_str()).collect();
        // `sum(x)` is computed once, as `total`; hidden names skip the taken `__agg_0`.
        assert_eq!(calls, ["total", "__agg_1", "__agg_2", "__agg_3", "__agg_4"]);
        assert_eq!(s.calls[1].1, "sum(CASE WHEN x > 5 THEN x ELSE 0 END)");
        assert_eq!(
            s.post,
            pairs(&[
                ("share", r#"100 * "__agg_1" / "total""#),
                ("spread", r#""__agg_2" - "__agg_3""#),
                ("label", r#"k || ':' || CAST("__agg_4" AS VARCHAR)"#),
            ])
        );
    }

    #[test]
    fn equal_calls_are_aggregated_once() {
        let aggs = pairs(&[("a", "max(x)"), ("b", r#"max("x")"#), ("c", "max(X) - min(x)")]);
        let s = split(&aggs, &BTreeSet::new()).unwrap();
        assert_eq!(s.calls, pairs(&[("a", "max(x)"), ("__agg_0", "min(x)")]));
        assert_eq!(s.post, pairs(&[("b", r#""a""#), ("c", r#""a" - "__agg_0""#)]));
    }

    #[test]
    fn expressions_without_aggregates_and_window_functions_are_refused() {
        for sql in ["x + 1", "sum(x) OVER ()"] {
            let err = split(&pairs(&[("y", sql)]), &BTreeSet::new()).unwrap_err().to_string();
            assert!(err.contains("no aggregate function call") && err.contains(sql), "{err}");
        }
        let err = split(&pairs(&[("y", "sum(x")]), &BTreeSet::new()).unwrap_err().to_string();
        assert!(err.contains("agg y: invalid expression"), "{err}");
    }
}
