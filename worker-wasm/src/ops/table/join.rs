//! Equi-joins with pandas `merge` naming. [`join_columns`] is shared with the coordinator's
//! projection pushdown, so both agree on the names a join makes.

use super::session::check_columns;
use crate::error::{Error, Result};
use datafusion::common::{Column, JoinType};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::prelude::{DataFrame, Expr};
use shoal_protocol::JoinHow;
use std::collections::HashSet;

/// An equi-join with pandas `merge` naming: a key with the same name on both sides appears once
/// (for an outer join, the non-null of the two); other columns present on both sides get the
/// suffixes. Null keys never match, as in SQL and DuckDB.
pub fn join(
    left: DataFrame,
    right: DataFrame,
    how: JoinHow,
    left_on: &[String],
    right_on: &[String],
    suffixes: &(String, String),
) -> Result<DataFrame> {
    if left_on.len() != right_on.len() || left_on.is_empty() {
        return Err(Error::Schema(format!(
            "merge: left_on has {} columns and right_on {}; they must match and not be empty",
            left_on.len(),
            right_on.len()
        )));
    }
    check_columns(&left, "merge (left side)", left_on.iter().map(String::as_str))?;
    check_columns(&right, "merge (right side)", right_on.iter().map(String::as_str))?;
    let names =
        |df: &DataFrame| -> Vec<String> { df.schema().fields().iter().map(|f| f.name().clone()).collect() };
    let columns = join_columns(&names(&left), &names(&right), how, left_on, right_on, suffixes);
    let mut seen = HashSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.name.as_str())) {
        return Err(Error::Schema(format!(
            "merge: the result would have two columns named '{}' (suffixes '{}' and '{}' make a name \
             that is already taken); choose other suffixes, or rename a column first",
            dup.name, suffixes.0, suffixes.1
        )));
    }
    let lcol = |n: &str| Expr::Column(Column::new(Some("l"), n));
    let rcol = |n: &str| Expr::Column(Column::new(Some("r"), n));
    let on: Vec<Expr> = left_on.iter().zip(right_on).map(|(l, r)| lcol(l).eq(rcol(r))).collect();
    let join_type = match how {
        JoinHow::Inner => JoinType::Inner,
        JoinHow::Left => JoinType::Left,
        JoinHow::Right => JoinType::Right,
        JoinHow::Outer => JoinType::Full,
        JoinHow::Semi => JoinType::LeftSemi,
        JoinHow::Anti => JoinType::LeftAnti,
    };
    let joined = left
        .alias("l")?
        .join_on(right.alias("r")?, join_type, on)
        .map_err(|e| Error::Schema(format!("merge: {}", e.strip_backtrace())))?;
    let exprs: Vec<Expr> = columns
        .iter()
        .filter_map(|c| {
            let e = match (&c.left, &c.right) {
                (Some(l), Some(r)) => match how {
                    JoinHow::Right => rcol(r),
                    JoinHow::Outer => coalesce(vec![lcol(l), rcol(r)]),
                    _ => lcol(l),
                },
                (Some(l), None) => lcol(l),
                (None, Some(r)) => rcol(r),
                (None, None) => return None,
            };
            Some(e.alias(&c.name))
        })
        .collect();
    joined.select(exprs).map_err(|e| Error::Schema(format!("merge: {}", e.strip_backtrace())))
}

/// One output column of a join: its name and the column(s) it comes from (both for a key with
/// the same name on both sides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinColumn {
    pub name: String,
    pub left: Option<String>,
    pub right: Option<String>,
}

/// The output columns of a join, in order, with pandas `merge` naming.
pub fn join_columns(
    left: &[String],
    right: &[String],
    how: JoinHow,
    left_on: &[String],
    right_on: &[String],
    suffixes: &(String, String),
) -> Vec<JoinColumn> {
    let shared: HashSet<&str> =
        left_on.iter().zip(right_on).filter(|(l, r)| l == r).map(|(l, _)| l.as_str()).collect();
    let left_only = matches!(how, JoinHow::Semi | JoinHow::Anti);
    let mut out = Vec::with_capacity(left.len() + right.len());
    for n in left {
        let (name, right_col) = if shared.contains(n.as_str()) && !left_only {
            (n.clone(), Some(n.clone()))
        } else if left_only || !right.contains(n) {
            (n.clone(), None)
        } else {
            (format!("{n}{}", suffixes.0), None)
        };
        out.push(JoinColumn { name, left: Some(n.clone()), right: right_col });
    }
    if !left_only {
        for n in right.iter().filter(|n| !shared.contains(n.as_str())) {
            let name = if left.contains(n) { format!("{n}{}", suffixes.1) } else { n.clone() };
            out.push(JoinColumn { name, left: None, right: Some(n.clone()) });
        }
    }
    out
}
