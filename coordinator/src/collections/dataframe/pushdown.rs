//! Filters above a join, pushed below it. A pandas user filters after `merge` as often as
//! before it; the rows a join meets and moves should not depend on which.
//!
//! - A conjunct that tests the columns of one side only moves below the join, onto that side.
//! - A disjunction each of whose branches tests one side among other things (TPC-H q19's three
//!   alternatives of brand, container, size and quantity) implies, on that side, the
//!   disjunction of those tests: it is added below the join, and the whole condition stays
//!   above it (`(b = 12 AND q <= 11) OR (b = 23 AND q <= 20)` puts `b = 12 OR b = 23` on the
//!   side of `b` and `q <= 11 OR q <= 20` on the side of `q`).
//!
//! Only where it cannot change the join's rows: either side of an inner join, the left side of
//! a left, semi or anti join, the right side of a right join, neither side of an outer join.
//! Only columns that keep their names through the join (one side has them; a name on both is
//! suffixed or merged), and never a condition that calls a volatile function (`random()`), whose
//! value would change with the rows it sees.

use super::plan::{JoinNode, MapOp, Plan};
use crate::error::Result;
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::utils::{conjunction, disjunction, split_binary, split_conjunction};
use datafusion::logical_expr::{Expr, Operator, Volatility};
use shoal_protocol::JoinHow;
use std::sync::Arc;

/// Rewrites every filter directly above a join, top-down, so a condition pushed onto a side
/// that is itself a filtered join goes on down.
pub fn push_filters_into_joins(plan: &Plan) -> Result<Plan> {
    if let Plan::Map { input, op: MapOp::Filter { predicate }, schema } = plan
        && let Plan::Join(j) = input.as_ref()
        && let Some(pushed) = split(j, predicate, schema)?.and_then(|p| p.into_sql(predicate))
    {
        let side = |side: &Arc<Plan>, test: Option<String>| -> Result<Arc<Plan>> {
            let filtered = match test {
                Some(predicate) => {
                    let schema = side.schema()?;
                    Plan::Map { input: side.clone(), op: MapOp::Filter { predicate }, schema }
                }
                None => side.as_ref().clone(),
            };
            push_filters_into_joins(&filtered).map(Arc::new)
        };
        let join = Plan::Join(JoinNode {
            left: side(&j.left, pushed.left)?,
            right: side(&j.right, pushed.right)?,
            ..j.clone()
        });
        return match pushed.kept {
            Some(predicate) => Ok(Plan::Map {
                input: Arc::new(join),
                op: MapOp::Filter { predicate },
                schema: schema.clone(),
            }),
            None => Ok(join),
        };
    }
    plan.map_children(push_filters_into_joins)
}

/// A filter's conjuncts as SQL, by where they go; `None` where none go.
#[derive(Debug)]
struct PushedSql {
    left: Option<String>,
    right: Option<String>,
    kept: Option<String>,
}

/// A filter's conjuncts, sorted by where they go.
#[derive(Debug, Default)]
struct Pushed {
    left: Vec<Expr>,
    right: Vec<Expr>,
    /// What stays above the join (a disjunction that implied tests below stays too).
    kept: Vec<Expr>,
    /// Whether every conjunct stays above (the filter keeps its text as written).
    all_kept: bool,
}

impl Pushed {
    /// The conjunctions as SQL (what stays above as written when all of it stays); `None` if
    /// one cannot be written as SQL, and then the filter stays as written: an optimization
    /// never fails a plan.
    fn into_sql(self, written: &str) -> Option<PushedSql> {
        let sql_of = |tests: Vec<Expr>| -> Option<Option<String>> {
            match conjunction(tests) {
                Some(test) => sql(&test).map(Some),
                None => Some(None),
            }
        };
        let kept = match self.all_kept {
            true => Some(written.to_string()),
            false => sql_of(self.kept)?,
        };
        Some(PushedSql { left: sql_of(self.left)?, right: sql_of(self.right)?, kept })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Left,
    Right,
}

/// Sorts `predicate`'s conjuncts; `None` when nothing goes below (the filter stays as written).
fn split(j: &JoinNode, predicate: &str, schema: &SchemaRef) -> Result<Option<Pushed>> {
    let (left_ok, right_ok) = match j.how {
        JoinHow::Inner => (true, true),
        JoinHow::Left | JoinHow::Semi | JoinHow::Anti => (true, false),
        JoinHow::Right => (false, true),
        JoinHow::Outer => (false, false),
    };
    if !left_ok && !right_ok {
        return Ok(None);
    }
    let (left_schema, right_schema) = (j.left.schema()?, j.right.schema()?);
    let side_of = |column: &str| match (
        left_schema.field_with_name(column).is_ok(),
        right_schema.field_with_name(column).is_ok(),
    ) {
        (true, false) if left_ok => Some(Side::Left),
        (false, true) if right_ok => Some(Side::Right),
        _ => None,
    };
    // Only tests of one column set on one side: `None` for a mix, or for columns no side may take.
    let side_of_expr = |e: &Expr| -> Option<Side> {
        let sides: Vec<Option<Side>> = e.column_refs().iter().map(|c| side_of(&c.name)).collect();
        match sides.first() {
            Some(Some(first)) if sides.iter().all(|s| s == &Some(*first)) && !volatile(e) => Some(*first),
            _ => None,
        }
    };
    // A predicate that does not parse here is validation's to report, not this pass's.
    let Some(expr) = parse(predicate, schema) else {
        return Ok(None);
    };
    let mut pushed = Pushed { all_kept: true, ..Pushed::default() };
    let mut moved_or_implied = false;
    for conjunct in split_conjunction(&expr) {
        match side_of_expr(conjunct) {
            Some(Side::Left) => pushed.left.push(conjunct.clone()),
            Some(Side::Right) => pushed.right.push(conjunct.clone()),
            None => {
                pushed.kept.push(conjunct.clone());
                if volatile(conjunct) {
                    continue;
                }
                for (side, tests) in [(Side::Left, &mut pushed.left), (Side::Right, &mut pushed.right)] {
                    if let Some(implied) = implied(conjunct, side, &side_of_expr) {
                        tests.push(implied);
                        moved_or_implied = true;
                    }
                }
                continue;
            }
        }
        moved_or_implied = true;
        pushed.all_kept = false;
    }
    Ok(moved_or_implied.then_some(pushed))
}

/// What a disjunction implies on `side`: the disjunction, over its branches, of each branch's
/// conjuncts on that side; `None` if a branch has none (then nothing is implied there), or for
/// a condition that is not a disjunction.
fn implied(expr: &Expr, side: Side, side_of: &impl Fn(&Expr) -> Option<Side>) -> Option<Expr> {
    let branches = split_binary(expr, Operator::Or);
    if branches.len() < 2 {
        return None;
    }
    let tests = branches.into_iter().map(|branch| {
        conjunction(split_conjunction(branch).into_iter().filter(|c| side_of(c) == Some(side)).cloned())
    });
    disjunction(tests.collect::<Option<Vec<_>>>()?)
}

fn volatile(e: &Expr) -> bool {
    let varies = e.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Volatile))
    });
    !matches!(varies, Ok(false))
}

fn parse(predicate: &str, schema: &SchemaRef) -> Option<Expr> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).ok()?;
    shoal_worker::ops::table::session::session().parse_sql_expr(predicate, &df_schema).ok()
}

/// `e` as SQL, with only the parentheses its precedence needs.
fn sql(e: &Expr) -> Option<String> {
    let sql = datafusion::sql::unparser::Unparser::default().with_pretty(true).expr_to_sql(e).ok()?;
    Some(sql.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::dataframe::estimate::tests::filter as filter_sql;
    use crate::collections::dataframe::strategy::tests::join;
    use crate::collections::dataframe::strategy::tests::ordered;

    /// The filters of `plan`, top-down, each with the depth it is at.
    fn filters(plan: &Plan, depth: usize, out: &mut Vec<(usize, String)>) {
        if let Plan::Map { op: MapOp::Filter { predicate }, .. } = plan {
            out.push((depth, predicate.clone()));
        }
        let _ = plan.map_children(|child| {
            filters(child, depth + 1, out);
            Ok(child.clone())
        });
    }

    fn all_filters(plan: &Plan) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        filters(plan, 0, &mut out);
        out
    }

    fn lines() -> Plan {
        ordered("lineitem", ("l_key", "l_qty", 50), 4, 1000, 100_000)
    }

    fn parts() -> Plan {
        ordered("part", ("p_key", "p_size", 50), 2, 200, 10_000)
    }

    fn orders() -> Plan {
        ordered("orders", ("o_key", "o_cust", 99), 2, 300, 20_000)
    }

    #[test]
    fn conjuncts_on_one_side_move_below_and_disjunctions_imply_tests_on_each() {
        let joined = join(lines(), parts(), ("l_key", "p_key"));
        let predicate = "l_qty > 5 AND p_size < 30 AND ((p_size = 1 AND l_qty <= 11) OR (p_size = 2 AND l_qty <= 20)) \
                         AND l_qty + p_size > 4";
        let pushed = push_filters_into_joins(&filter_sql(joined, predicate)).unwrap();
        assert_eq!(
            all_filters(&pushed),
            vec![
                (
                    0,
                    "(p_size = 1 AND l_qty <= 11 OR p_size = 2 AND l_qty <= 20) AND l_qty + p_size > 4"
                        .into()
                ),
                (2, "l_qty > 5 AND (l_qty <= 11 OR l_qty <= 20)".into()),
                (2, "p_size < 30 AND (p_size = 1 OR p_size = 2)".into()),
            ]
        );
        // The same columns, in the same order.
        assert_eq!(
            pushed.schema().unwrap(),
            filter_sql(join(lines(), parts(), ("l_key", "p_key")), predicate).schema().unwrap()
        );
    }

    #[test]
    fn tests_go_only_where_they_cannot_change_the_joins_rows() {
        let left = crate::collections::dataframe::estimate::tests::join(
            lines(),
            parts(),
            JoinHow::Left,
            ("l_key", "p_key"),
        );
        let pushed = push_filters_into_joins(&filter_sql(left, "l_qty > 5 AND p_size < 30")).unwrap();
        // A left join's right side keeps its rows: a test on it filters the joined rows.
        assert_eq!(all_filters(&pushed), vec![(0, "p_size < 30".into()), (2, "l_qty > 5".into())]);

        let outer = crate::collections::dataframe::estimate::tests::join(
            lines(),
            parts(),
            JoinHow::Outer,
            ("l_key", "p_key"),
        );
        let written = filter_sql(outer, "l_qty > 5 AND p_size < 30");
        assert_eq!(all_filters(&push_filters_into_joins(&written).unwrap()), all_filters(&written));

        // A volatile function stays above, whatever it reads.
        let inner = join(lines(), parts(), ("l_key", "p_key"));
        let pushed = push_filters_into_joins(&filter_sql(inner, "random() < l_qty AND l_qty > 5")).unwrap();
        assert_eq!(all_filters(&pushed), vec![(0, "random() < l_qty".into()), (2, "l_qty > 5".into())]);
    }

    #[test]
    fn a_test_pushed_onto_a_filtered_join_goes_on_down() {
        let lower = join(orders(), lines(), ("o_key", "l_key"));
        let upper = join(lower, parts(), ("l_qty", "p_key"));
        let pushed = push_filters_into_joins(&filter_sql(upper, "o_cust = 7 AND p_size > 3")).unwrap();
        // Nothing is left above; o_cust's test is on the orders below both joins (join, join,
        // filter), p_size's on the parts (join, filter).
        assert_eq!(all_filters(&pushed), vec![(2, "o_cust = 7".into()), (1, "p_size > 3".into())]);
    }
}
