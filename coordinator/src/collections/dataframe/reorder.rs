//! Join order: which two inputs of a chain of inner joins meet first.
//!
//! Users write joins in the order they think of them. TPC-H q10 joins customers to their orders,
//! then the orders to their returned lines; joining orders to lines first lets those two pair
//! partitions by their order-key ranges, and leaves only the few matched rows to meet the
//! customers. Which order is cheaper depends on sizes and on the strategies each order allows,
//! so each is costed as the strategies are chosen (`strategy.rs`).
//!
//! An inner join whose input is an inner join is rotated: `(A ⋈ B) ⋈ C`, where C's keys meet
//! A's columns, is also `(A ⋈ C) ⋈ B`; where they meet B's, `A ⋈ (B ⋈ C)` (and the same for
//! `C ⋈ (A ⋈ B)`). A rotation is kept when the estimated work of its joins, as chosen, is less
//! than that of the joins as written; the rotated join below may rotate again, so a chain finds
//! its order a step at a time. Only where the rows are the same: both joins inner, no strategy
//! or partition count asked for, and no column name on two of the three inputs (so nothing is
//! suffixed or merged). The columns are put back in the order the user's joins give them.
//!
//! Under the same conditions, a join's two sides may swap: strategies are not symmetric (a
//! ranges join is driven by its left side's partitions), so the swapped join is costed too and
//! kept when its estimated work is less by the same margin.

use super::plan::{JoinNode, MapOp, Plan, PlanConfig};
use crate::error::Result;
use crate::units::human_bytes;
use shoal_protocol::JoinHow;
use std::collections::HashSet;
use std::sync::Arc;

/// Estimated work of the joins in `plan` as their strategies were chosen (a join whose strategy
/// the user asked for counts nothing).
pub(super) fn work(plan: &Plan) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![plan];
    while let Some(p) = stack.pop() {
        if let Plan::Join(j) = p {
            total = total.saturating_add(j.cost.unwrap_or(0));
        }
        stack.extend(p.children().into_iter().map(|c| c.as_ref()));
    }
    total
}

/// The join under `plan`, if `plan` is one that may be rotated (see the module's notes), looking
/// through a select that only puts a rotated join's columns back in order.
fn rotatable(plan: &Plan) -> Option<&JoinNode> {
    let j = match plan {
        Plan::Join(j) => j,
        Plan::Map { input, op: MapOp::Select { columns }, .. } => match input.as_ref() {
            Plan::Join(j) if same_names(columns, j) => j,
            _ => return None,
        },
        _ => return None,
    };
    may_rotate(j).then_some(j)
}

fn may_rotate(j: &JoinNode) -> bool {
    j.how == JoinHow::Inner && j.hint.is_none() && j.npartitions.is_none()
}

fn same_names(columns: &[String], j: &JoinNode) -> bool {
    let names: HashSet<&str> = j.schema.fields().iter().map(|f| f.name().as_str()).collect();
    columns.len() == names.len() && columns.iter().all(|c| names.contains(c.as_str()))
}

fn names(plan: &Plan) -> Option<HashSet<String>> {
    Some(plan.schema().ok()?.fields().iter().map(|f| f.name().clone()).collect())
}

/// One other order of a join and the join below it: the two inputs that meet first, on the upper
/// join's keys, then the third, on the lower join's.
struct Rotation {
    first: (Arc<Plan>, Arc<Plan>, Vec<String>, Vec<String>),
    /// The third input, the keys it meets the first join with, and on which side it goes.
    third: Arc<Plan>,
    keys: (Vec<String>, Vec<String>),
    third_left: bool,
}

/// The rotations of `j` (an inner join whose strategy is chosen by cost) with a rotatable join
/// among its inputs.
fn rotations(j: &JoinNode) -> Vec<Rotation> {
    if !may_rotate(j) {
        return vec![];
    }
    let mut out = Vec::new();
    for lower_left in [true, false] {
        let (below, other, below_keys, other_keys) = match lower_left {
            true => (&j.left, &j.right, &j.left_on, &j.right_on),
            false => (&j.right, &j.left, &j.right_on, &j.left_on),
        };
        let Some(b) = rotatable(below) else { continue };
        let (Some(a_names), Some(b_names), Some(c_names)) = (names(&b.left), names(&b.right), names(other))
        else {
            continue;
        };
        if !a_names.is_disjoint(&b_names) || !a_names.is_disjoint(&c_names) || !b_names.is_disjoint(&c_names)
        {
            continue;
        }
        // The upper join's keys on the lower join's side all come from one of its inputs: that
        // input meets the other side first; the lower join's other input comes after.
        for (meets, stays, stays_left) in [(&b.left, &b.right, false), (&b.right, &b.left, true)] {
            let Some(meets_names) = names(meets) else { continue };
            if !below_keys.iter().all(|k| meets_names.contains(k)) {
                continue;
            }
            let first = match lower_left {
                true => (meets.clone(), other.clone(), below_keys.clone(), other_keys.clone()),
                false => (other.clone(), meets.clone(), other_keys.clone(), below_keys.clone()),
            };
            out.push(Rotation {
                first,
                third: stays.clone(),
                keys: (b.left_on.clone(), b.right_on.clone()),
                third_left: stays_left,
            });
        }
    }
    out
}

/// How much less estimated work an order must take to be kept over the order as written: the
/// estimates rest on assumptions (values uniform, columns independent, a condition on a
/// computed value keeping 20% of rows), and the written order is the user's. With sampled
/// string values, no margin reordered q5 too, on an estimated 3% less work, and it ran 20%
/// slower (bench/results/tpch-notes.md).
const MARGIN: f64 = 0.15;

/// An inner join of `left` and `right`, its schema derived, its strategy not yet chosen.
fn inner(left: Arc<Plan>, right: Arc<Plan>, left_on: Vec<String>, right_on: Vec<String>) -> Result<JoinNode> {
    let mut j = JoinNode {
        left,
        right,
        how: JoinHow::Inner,
        left_on,
        right_on,
        suffixes: ("_x".into(), "_y".into()),
        schema: Arc::new(arrow::datatypes::Schema::empty()),
        hint: None,
        npartitions: None,
        strategy: None,
        cost: None,
    };
    j.schema = j.output_schema()?;
    Ok(j)
}

/// Chooses the strategy of join `j`, whose inputs' strategies are chosen, with `choose` (the
/// optimizer's choice for one join); then, where `rotate`, tries each rotation of `j` with the
/// join below it (choosing its lower join the same way, rotations included) and keeps the
/// order of least estimated [`work`], its columns in `j`'s order.
pub(super) fn choose_order(
    j: JoinNode,
    config: &PlanConfig,
    rotate: bool,
    choose: &dyn Fn(JoinNode, &PlanConfig) -> Result<Plan>,
) -> Result<Plan> {
    let candidates = if rotate { rotations(&j) } else { vec![] };
    let order = j.schema.clone();
    let swapped = match config.reorder_joins {
        true => swap(&j)?,
        false => None,
    };
    let as_written = choose(j, config)?;
    let written = work(&as_written);
    // (plan, its work, what `explain` says of the choice when it is not the order as written)
    let mut best: (Plan, u64, Option<String>) = (as_written, written, None);
    if let Some(swapped) = swapped {
        let plan = choose(swapped, config)?;
        let w = work(&plan);
        if (w as f64) <= (1.0 - MARGIN) * written as f64 {
            let note = format!(
                "sides swapped: estimated work ~{} instead of ~{} as written",
                human_bytes(w),
                human_bytes(written)
            );
            best = (plan, w, Some(note));
        }
    }
    for r in candidates {
        let (left, right, left_on, right_on) = r.first;
        let inputs = work(&left).saturating_add(work(&right)).saturating_add(work(&r.third));
        let lower = choose_order(inner(left, right, left_on, right_on)?, config, true, choose)?;
        let lower = Arc::new(lower);
        let (keys_left, keys_right) = r.keys;
        let upper = match r.third_left {
            true => inner(r.third, lower, keys_left, keys_right)?,
            false => inner(lower, r.third, keys_left, keys_right)?,
        };
        let plan = choose_order(upper, config, false, choose)?;
        let w = work(&plan);
        let (pair, pair_written) = (w.saturating_sub(inputs), written.saturating_sub(inputs));
        if w < best.1 && (pair as f64) <= (1.0 - MARGIN) * pair_written as f64 {
            let note = format!(
                "joins reordered: estimated work of this join and the one below ~{} instead of ~{} as written",
                human_bytes(pair),
                human_bytes(pair_written)
            );
            best = (plan, w, Some(note));
        }
    }
    let (mut plan, _, note) = best;
    if let Some(note) = note
        && let Plan::Join(top) = &mut plan
        && let Some((_, why)) = &mut top.strategy
    {
        why.push_str("; ");
        why.push_str(&note);
    }
    let columns: Vec<String> = order.fields().iter().map(|f| f.name().clone()).collect();
    if names_in_order(&plan)? != columns {
        plan = Plan::Map { input: Arc::new(plan), op: MapOp::Select { columns }, schema: order };
    }
    Ok(plan)
}

/// `j` with its sides swapped, when that gives the same rows: an inner join whose strategy is
/// chosen by cost, no column name on both sides. A ranges join is driven by its left side's
/// partitions and reads its right side's, so which side is which matters: TPC-H q10's few orders
/// of a quarter, joined to their returned lines, pair by key ranges best when the lines drive
/// (their filter runs in the joining tasks) and each reads the orders of its own range. Not
/// where the right side has fewer partitions: the estimates count work, not how many tasks
/// share it, and a one-file table driving a ranges join would read all of the other in one task.
fn swap(j: &JoinNode) -> Result<Option<JoinNode>> {
    if !may_rotate(j) || j.right.partitions() < j.left.partitions() {
        return Ok(None);
    }
    let (Some(left), Some(right)) = (names(&j.left), names(&j.right)) else { return Ok(None) };
    if !left.is_disjoint(&right) {
        return Ok(None);
    }
    Ok(Some(inner(j.right.clone(), j.left.clone(), j.right_on.clone(), j.left_on.clone())?))
}

fn names_in_order(plan: &Plan) -> Result<Vec<String>> {
    Ok(plan.schema()?.fields().iter().map(|f| f.name().clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::work;
    use crate::collections::dataframe::estimate::tests::filter;
    use crate::collections::dataframe::optimize::optimize;
    use crate::collections::dataframe::plan::{JoinNode, JoinStrategy, MapOp, Plan, PlanConfig};
    use crate::collections::dataframe::strategy::tests::{join, ordered};

    /// TPC-H q10's shape at SF10: customers (over the broadcast limit) ⋈ some of the orders, by
    /// customer key (their matches over the broadcast limit too), then ⋈ line items by order
    /// key; orders and line items in files of order-key ranges, customers by customer key.
    fn q10(lineitem_key: &str) -> Plan {
        let customer = ordered("customer", ("c_custkey", "c_nationkey", 24), 80, 18_750, 1_000_000);
        let orders = ordered("orders", ("o_orderkey", "o_custkey", 1_499_999), 80, 187_500, 20_000_000);
        let some = filter(orders, "o_orderkey < 2500000");
        let lineitem = ordered("lineitem", (lineitem_key, "l_suppkey", 100_000), 80, 750_000, 32_000_000);
        let customers_orders = join(customer, some, ("c_custkey", "o_custkey"));
        join(customers_orders, lineitem, ("o_orderkey", lineitem_key))
    }

    fn top_join(plan: &Plan) -> &JoinNode {
        match plan {
            Plan::Join(j) => j,
            Plan::Map { input, op: MapOp::Select { .. }, .. } => top_join(input),
            other => panic!("not a join: {other:?}"),
        }
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.schema().unwrap().fields().iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn orders_meet_their_lines_first_when_that_pairs_them_by_ranges() {
        let config = PlanConfig::default();
        let written = q10("l_orderkey");
        let chosen = optimize(&written, &config).unwrap();
        // The columns come out as the user's joins give them.
        assert_eq!(names(&chosen), names(&written));
        let top = top_join(&chosen);
        let why = &top.strategy.as_ref().unwrap().1;
        assert!(why.contains("joins reordered"), "{why}");
        // Customers meet the orders already joined to their lines, which pair by ranges.
        let Plan::Join(lower) = top.right.as_ref() else { panic!("right is not a join: {chosen:?}") };
        let lower_why = &lower.strategy.as_ref().unwrap().1;
        assert_eq!(lower.strategy.as_ref().unwrap().0, JoinStrategy::Ranges, "{lower_why}");
        assert_eq!(
            (lower.left_on.as_slice(), lower.right_on.as_slice()),
            (&["o_orderkey".to_string()][..], &["l_orderkey".to_string()][..])
        );
        // As written, the line items are shuffled to meet the customers' orders: more work.
        let as_written = optimize(&written, &PlanConfig { reorder_joins: false, ..config }).unwrap();
        assert!(work(&chosen) < work(&as_written), "{} >= {}", work(&chosen), work(&as_written));
        assert!(matches!(top_join(&as_written).strategy, Some((JoinStrategy::Hash { .. }, _))));
    }

    #[test]
    fn a_ranges_join_is_driven_by_the_side_whose_filter_runs_in_it() {
        // TPC-H q10's lower join at SF10: a quarter's orders ⋈ the returned lines, orders
        // written first, both in files of the same order-key ranges. With the lines on the
        // left, their filter runs in the joining tasks and each reads the few orders of its
        // range; as written, the filtered lines are materialized first and read back.
        let config = PlanConfig::default();
        let orders = ordered("orders", ("o_orderkey", "o_custkey", 1_499_999), 80, 187_500, 8_000_000);
        let lineitem = ordered("lineitem", ("l_orderkey", "l_suppkey", 99_999), 80, 187_500, 32_000_000);
        let written = join(
            filter(orders, "o_custkey < 40000"),
            filter(lineitem, "l_suppkey < 33000"),
            ("o_orderkey", "l_orderkey"),
        );
        let chosen = optimize(&written, &config).unwrap();
        assert_eq!(names(&chosen), names(&written));
        let top = top_join(&chosen);
        let (strategy, why) = top.strategy.as_ref().unwrap();
        assert_eq!(*strategy, JoinStrategy::Ranges, "{why}");
        assert!(why.contains("sides swapped"), "{why}");
        assert_eq!(
            (top.left_on.as_slice(), top.right_on.as_slice()),
            (&["l_orderkey".to_string()][..], &["o_orderkey".to_string()][..])
        );
        let as_written = optimize(&written, &PlanConfig { reorder_joins: false, ..config }).unwrap();
        assert!(work(&chosen) < work(&as_written), "{} >= {}", work(&chosen), work(&as_written));
    }

    #[test]
    fn a_side_in_fewer_partitions_does_not_drive_the_join() {
        // Customers (80 files) ⋈ nations (one file): nations driving a ranges join would read
        // every customer in one task, however little work the estimate counts.
        let customer = ordered("customer", ("c_custkey", "c_nationkey", 24), 80, 18_750, 1_500_000);
        let nation = ordered("nation", ("n_nationkey", "n_regionkey", 4), 1, 25, 2_000);
        let chosen =
            optimize(&join(customer, nation, ("c_nationkey", "n_nationkey")), &PlanConfig::default())
                .unwrap();
        let top = top_join(&chosen);
        assert_eq!(top.left_on, ["c_nationkey"], "{chosen:?}");
        assert!(!top.strategy.as_ref().unwrap().1.contains("swapped"));
    }

    #[test]
    fn joins_whose_inputs_share_a_column_name_keep_their_order() {
        // The line items' key named like the customers' key: rotating would change which column
        // is suffixed, so the joins stay as written.
        let chosen = optimize(&q10("c_custkey"), &PlanConfig::default()).unwrap();
        let Plan::Join(top) = &chosen else { panic!("not a join: {chosen:?}") };
        assert!(matches!(top.left.as_ref(), Plan::Join(_)), "{chosen:?}");
        assert!(!top.strategy.as_ref().unwrap().1.contains("reordered"));
    }
}
