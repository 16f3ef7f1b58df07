//! Subplans a query uses more than once, computed once.
//!
//! A frame used twice (TPC-H q17's `items`: averaged per part, then compared with that
//! average) is two copies of one subplan by the time projection pushdown has given each copy
//! only the columns its own consumer reads. Lowered as they are, the copies differ, so their
//! files are scanned and joined twice. This pass finds copies that differ only in the columns
//! they carry (scan projections and selects), widens them to one subplan carrying the union of
//! those columns, and puts it under a [`Plan::Shared`] node in place of each copy (with a select
//! of the copy's own columns above it where they differ). Lowering materializes a shared node
//! as a stage of its own, which every use reads; the uses lower to the same tasks, which the
//! graph keeps once.
//!
//! Only subplans with a join or an aggregation in them are shared, and only when their output
//! is estimated no larger than what they scan: filtering a scan again costs less than writing
//! the rows and reading them back, and so does recomputing a join that multiplies its rows.

use super::plan::{MapOp, Plan, ScanNode};
use crate::error::Result;
use arrow::datatypes::SchemaRef;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// `plan` with every subplan it uses more than once (up to the columns each use carries)
/// computed once, under a [`Plan::Shared`] node. Runs after projection and predicate pushdown,
/// before strategies are chosen (a shared subplan's are chosen once, for the columns it
/// really carries).
pub fn share_subplans(plan: &Plan) -> Result<Plan> {
    let mut nodes = Vec::new();
    fingerprint(plan, &mut nodes);
    let mut copies: HashMap<u64, Vec<&Plan>> = HashMap::new();
    for node in nodes.iter().filter(|n| n.worth_sharing) {
        copies.entry(node.shape).or_default().push(node.plan);
    }
    let mut shared: HashMap<u64, Arc<Plan>> = HashMap::new();
    for (shape, copies) in copies.into_iter().filter(|(_, c)| c.len() > 1) {
        let Some((first, rest)) = copies.split_first() else { continue };
        let widened = rest.iter().try_fold((*first).clone(), |acc, copy| widen(&acc, copy));
        if let Some(widened) = widened.filter(cheaper_to_read_back) {
            shared.insert(shape, Arc::new(widened));
        }
    }
    if shared.is_empty() {
        return Ok(plan.clone());
    }
    let shapes: HashMap<*const Plan, u64> = nodes.iter().map(|n| (n.plan as *const Plan, n.shape)).collect();
    replace(plan, &shapes, &shared)
}

/// A node of the plan with the fingerprint of its subplan's shape.
struct Fingerprinted<'a> {
    plan: &'a Plan,
    /// Equal for subplans that differ at most in the columns they carry (a hash: equal shapes
    /// are confirmed by [`widen`], which compares the subplans themselves).
    shape: u64,
    /// Whether the subplan has a join or an aggregation in it.
    worth_sharing: bool,
}

/// Fingerprints `plan` and every node under it, children first; returns `plan`'s.
fn fingerprint<'a>(plan: &'a Plan, out: &mut Vec<Fingerprinted<'a>>) -> (u64, bool) {
    // A select only narrows the columns, which copies may differ in: a copy with one where
    // the other has none (projection pushdown drops the columns only a filter tested, where
    // nothing above uses them) is the same subplan.
    if let Plan::Map { input, op: MapOp::Select { .. }, .. } = plan {
        return fingerprint(input, out);
    }
    let mut h = DefaultHasher::new();
    let mut worth = matches!(plan, Plan::Join(_) | Plan::Aggregate(_));
    let mut text = String::new();
    let _ = match plan {
        // Hashed, not printed: a scan may have many thousands of files.
        Plan::Scan(s) => {
            (&s.source, &s.format, &s.partitions, &s.predicate, s.schema_on_read).hash(&mut h);
            s.file_schema.hash(&mut h);
            write!(text, "scan")
        }
        Plan::Graph(g) => write!(text, "graph {:p}", Arc::as_ptr(g)),
        Plan::Map { op, .. } => write!(text, "{op:?}"),
        Plan::Head { n, .. } => write!(text, "head {n}"),
        Plan::TopK { keys, n, .. } => write!(text, "topk {keys:?} {n}"),
        Plan::Sort { keys, npartitions, index, .. } => write!(text, "sort {keys:?} {npartitions} {index}"),
        Plan::Repartition { npartitions, .. } => write!(text, "repartition {npartitions}"),
        Plan::Shared { .. } => write!(text, "shared"),
        Plan::Aggregate(a) => {
            write!(text, "aggregate {:?} {:?} {:?} {:?}", a.keys, a.aggs, a.split_out, a.split_every)
        }
        Plan::Join(j) => write!(
            text,
            "join {:?} {:?} {:?} {:?} {:?} {:?}",
            j.how, j.left_on, j.right_on, j.suffixes, j.hint, j.npartitions
        ),
    };
    text.hash(&mut h);
    for child in plan.children() {
        let (shape, child_worth) = fingerprint(child, out);
        shape.hash(&mut h);
        worth |= child_worth;
    }
    let shape = h.finish();
    out.push(Fingerprinted { plan, shape, worth_sharing: worth });
    (shape, worth)
}

/// One subplan doing what `a` and `b` do, carrying the columns of both; `None` when they
/// differ in anything else, or when carrying more columns would change a column either of them
/// has (a name that meets its namesake in a join and is suffixed).
fn widen(a: &Plan, b: &Plan) -> Option<Plan> {
    let map = |input: Plan, op: &MapOp| Plan::map(Arc::new(input), op.clone()).ok();
    let widened = match (a, b) {
        (Plan::Scan(x), Plan::Scan(y)) => Plan::Scan(widen_scan(x, y)?),
        (Plan::Graph(x), Plan::Graph(y)) if Arc::ptr_eq(x, y) => a.clone(),
        (
            Plan::Map { input: i, op: MapOp::Select { columns: c }, .. },
            Plan::Map { input: j, op: MapOp::Select { columns: d }, .. },
        ) => {
            let mut columns = c.clone();
            columns.extend(d.iter().filter(|n| !c.contains(n)).cloned());
            map(widen(i, j)?, &MapOp::Select { columns })?
        }
        // A select on one side only: the other carries every column of what it selects from.
        (Plan::Map { input: i, op: MapOp::Select { .. }, .. }, other)
        | (other, Plan::Map { input: i, op: MapOp::Select { .. }, .. }) => widen(i, other)?,
        // A user function's output schema was found by calling it on its input's: only the
        // same input will do.
        (
            Plan::Map { input: i, op: op @ MapOp::MapPartitions { .. }, .. },
            Plan::Map { input: j, op: o, .. },
        ) if op == o && i.schema().ok()? == j.schema().ok()? => a.clone(),
        (Plan::Map { input: i, op, .. }, Plan::Map { input: j, op: o, .. }) if op == o => {
            map(widen(i, j)?, op)?
        }
        (Plan::Head { input: i, n }, Plan::Head { input: j, n: m }) if n == m => {
            Plan::Head { input: Arc::new(widen(i, j)?), n: *n }
        }
        (Plan::TopK { input: i, keys, n }, Plan::TopK { input: j, keys: k, n: m }) if (keys, n) == (k, m) => {
            Plan::TopK { input: Arc::new(widen(i, j)?), keys: keys.clone(), n: *n }
        }
        (
            Plan::Sort { input: i, keys, npartitions, index },
            Plan::Sort { input: j, keys: k, npartitions: n, index: x },
        ) if (keys, npartitions, index) == (k, n, x) => Plan::Sort {
            input: Arc::new(widen(i, j)?),
            keys: keys.clone(),
            npartitions: *npartitions,
            index: *index,
        },
        (Plan::Repartition { input: i, npartitions }, Plan::Repartition { input: j, npartitions: n })
            if npartitions == n =>
        {
            Plan::Repartition { input: Arc::new(widen(i, j)?), npartitions: *npartitions }
        }
        (Plan::Aggregate(x), Plan::Aggregate(y))
            if (&x.keys, &x.aggs, x.split_out, x.split_every)
                == (&y.keys, &y.aggs, y.split_out, y.split_every) =>
        {
            let mut g = x.clone();
            g.input = Arc::new(widen(&x.input, &y.input)?);
            Plan::Aggregate(g)
        }
        (Plan::Join(x), Plan::Join(y))
            if (x.how, &x.left_on, &x.right_on, &x.suffixes, x.npartitions, x.hint)
                == (y.how, &y.left_on, &y.right_on, &y.suffixes, y.npartitions, y.hint) =>
        {
            let mut j = x.clone();
            j.left = Arc::new(widen(&x.left, &y.left)?);
            j.right = Arc::new(widen(&x.right, &y.right)?);
            j.schema = j.output_schema().ok()?;
            Plan::Join(j)
        }
        _ => return None,
    };
    let schema = widened.schema().ok()?;
    (carries(&schema, &a.schema().ok()?) && carries(&schema, &b.schema().ok()?)).then_some(widened)
}

/// The scan `x` reading the columns of both `x` and `y`, if they read the same files alike.
fn widen_scan(x: &ScanNode, y: &ScanNode) -> Option<ScanNode> {
    let same = x.source == y.source
        && x.format == y.format
        && x.partitions == y.partitions
        && x.predicate == y.predicate
        && x.file_schema == y.file_schema
        && x.schema_on_read == y.schema_on_read;
    if !same {
        return None;
    }
    let projection = match (&x.projection, &y.projection) {
        (Some(p), Some(q)) => Some(
            x.file_schema
                .fields()
                .iter()
                .map(|f| f.name())
                .filter(|n| p.contains(n) || q.contains(n))
                .cloned()
                .collect(),
        ),
        _ => None,
    };
    Some(ScanNode { projection, ..x.clone() })
}

/// Whether every column of `narrow` is in `wide`, by name, with the same type and nullability.
fn carries(wide: &SchemaRef, narrow: &SchemaRef) -> bool {
    narrow.fields().iter().all(|f| {
        wide.field_with_name(f.name())
            .is_ok_and(|w| w.data_type() == f.data_type() && w.is_nullable() == f.is_nullable())
    })
}

/// Whether writing `plan`'s rows once and reading them back costs less than computing them
/// again: its output is estimated no larger than the files it scans.
fn cheaper_to_read_back(plan: &Plan) -> bool {
    fn scanned(plan: &Plan) -> u64 {
        match plan {
            Plan::Scan(s) => s.estimated_bytes(),
            other => other.children().into_iter().map(|c| scanned(c)).sum(),
        }
    }
    plan.estimated_bytes() <= scanned(plan)
}

/// `plan` with every node whose shape is shared replaced by the shared subplan (the outermost
/// one, where shared subplans nest), narrowed back to the node's own columns.
fn replace(
    plan: &Plan,
    shapes: &HashMap<*const Plan, u64>,
    shared: &HashMap<u64, Arc<Plan>>,
) -> Result<Plan> {
    let found = shapes.get(&(plan as *const Plan)).and_then(|shape| shared.get(shape));
    let Some(widened) = found else {
        return plan.map_children(|child| replace(child, shapes, shared));
    };
    let node = Plan::Shared { input: widened.clone() };
    let (own, wide) = (plan.schema()?, widened.schema()?);
    if own == wide {
        return Ok(node);
    }
    let columns = own.fields().iter().map(|f| f.name().clone()).collect();
    Ok(Plan::Map { input: Arc::new(node), op: MapOp::Select { columns }, schema: own })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::dataframe::estimate::tests::filter;
    use crate::collections::dataframe::lower::{Target, lower};
    use crate::collections::dataframe::optimize::optimize;
    use crate::collections::dataframe::plan::PlanConfig;
    use crate::collections::dataframe::strategy::tests::{join, ordered};
    use shoal_protocol::Input;

    fn select(input: Plan, columns: &[&str]) -> Plan {
        let op = MapOp::Select { columns: columns.iter().map(|c| c.to_string()).collect() };
        Plan::map(Arc::new(input), op).unwrap()
    }

    fn reading(plan: Plan, columns: &[&str]) -> Plan {
        let Plan::Scan(mut scan) = plan else { panic!("not a scan") };
        scan.projection = Some(columns.iter().map(|c| c.to_string()).collect());
        Plan::Scan(scan)
    }

    fn lines() -> Plan {
        ordered("lineitem", ("l_key", "l_qty", 50), 4, 1000, 100_000)
    }

    /// Stages whose tasks scan `table`'s files.
    fn stages_scanning(plan: &Plan, table: &str) -> usize {
        let graph = lower(plan, &Target::Compute).unwrap();
        let scanning = |t: &crate::graph::TaskNode| {
            t.inputs.iter().any(|i| matches!(i, Input::Scan { files, .. } if files.iter().any(|f| f.object.url.contains(table))))
        };
        let stages: std::collections::BTreeSet<usize> =
            graph.tasks.iter().filter(|t| scanning(t)).map(|t| t.stage).collect();
        stages.len()
    }

    #[test]
    fn a_join_used_twice_with_different_columns_is_computed_once_with_both() {
        // A join of lines to a few parts, used twice: once for its parts' sizes, once for its
        // lines' quantities (as q17 uses its lines joined to parts).
        let parts = filter(ordered("part", ("p_key", "p_size", 50), 1, 4000, 10_000), "p_size < 2");
        let items = join(lines(), parts, ("l_key", "p_key"));
        let sizes = select(items.clone(), &["l_key", "p_size"]);
        let quantities = select(items, &["l_key", "l_qty"]);
        let both = crate::collections::dataframe::estimate::tests::join(
            sizes,
            quantities,
            shoal_protocol::JoinHow::Inner,
            ("l_key", "l_key"),
        );
        let optimized = optimize(&both, &PlanConfig::default()).unwrap();
        let text = optimized.display();
        assert_eq!(text.matches("Shared [").count(), 2, "both uses read the shared join:\n{text}");
        // Both of lineitem's columns: the scan reads the file whole.
        assert!(!text.contains("columns=[l_key"), "the shared scan reads both uses' columns:\n{text}");
        assert_eq!(
            optimized.schema().unwrap(),
            both.schema().unwrap(),
            "the output is the plan's as written"
        );
        assert_eq!(stages_scanning(&optimized, "lineitem"), 1, "lineitem scanned by one stage:\n{text}");
        let again = optimize(&both, &PlanConfig::default()).unwrap();
        assert_eq!(again.display(), text, "the pass is deterministic");
    }

    #[test]
    fn copies_are_not_widened_when_a_carried_column_would_be_renamed() {
        // Both sides have `l_qty`: one copy carries the left's, the other the right's. Carrying
        // both would suffix them, so neither copy's `l_qty` would be there.
        let parts = ordered("part", ("p_key", "l_qty", 50), 1, 4000, 10_000);
        let left = join(
            reading(lines(), &["l_key", "l_qty"]),
            reading(parts.clone(), &["p_key"]),
            ("l_key", "p_key"),
        );
        let right =
            join(reading(lines(), &["l_key"]), reading(parts, &["p_key", "l_qty"]), ("l_key", "p_key"));
        assert!(widen(&left, &right).is_none());
        // Copies that differ only in the columns they carry widen to their union.
        let fewer = join(
            reading(lines(), &["l_key"]),
            ordered("part", ("p_key", "p_size", 50), 1, 4000, 10_000),
            ("l_key", "p_key"),
        );
        let more =
            join(lines(), ordered("part", ("p_key", "p_size", 50), 1, 4000, 10_000), ("l_key", "p_key"));
        let widened = widen(&fewer, &more).unwrap();
        assert_eq!(widened.schema().unwrap(), more.schema().unwrap());
    }
}
