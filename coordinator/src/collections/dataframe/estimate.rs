//! How many rows a filter keeps, and a join matches, estimated at plan time: what join
//! strategies are chosen from ([`Plan::estimated_bytes`]).
//!
//! A conjunct over one column whose value range planning knows (integers, dates and timestamps,
//! from Parquet statistics, carried up through the operators that keep values) is estimated by
//! DataFusion's interval analysis, as its `FilterExec` estimates its statistics: values uniform
//! between min and max, columns independent. A conjunct over one string column whose distinct
//! values planning sampled (from Parquet dictionary pages, `read::values`) keeps the share of
//! those values it holds for: each value taken as equally frequent. Any other conjunct — a
//! decimal (interval analysis takes none), two columns compared, a column without statistics,
//! a function — keeps [`DEFAULT_SELECTIVITY`] of the rows, DataFusion's default too, and the
//! negation of such a conjunct (`NOT LIKE`, `<>`, `NOT IN`) keeps the rest. The
//! conjuncts analysis can bound are analysed together (a range `d >= a AND d < b` is one
//! interval); the others multiply in.

use super::plan::{JoinNode, MapOp, Plan, ScanNode, keeps_values};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::common::stats::{ColumnStatistics, Precision};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::conjunction;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, LikeExpr, NotExpr};
use datafusion::physical_expr::intervals::utils::check_support;
use datafusion::physical_expr::utils::{collect_columns, split_conjunction, split_disjunction};
use datafusion::physical_expr::{AnalysisContext, PhysicalExpr, analyze};
use shoal_protocol::JoinHow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// The share of rows a conjunct keeps when planning cannot tell (DataFusion's
/// `FilterExec` default).
pub const DEFAULT_SELECTIVITY: f64 = 0.2;

impl Plan {
    /// Estimated bytes this node's output holds (a rough guide for strategies and `explain`): a
    /// scan's share of its files' bytes, a filter's share of its input's
    /// ([`filter_selectivity`]), a join's estimated rows at
    /// its sides' row widths ([`join_bytes`]).
    pub fn estimated_bytes(&self) -> u64 {
        match self {
            Plan::Scan(s) => s.estimated_bytes(),
            Plan::Graph(g) => g.estimated_bytes,
            Plan::Map { input, op: MapOp::Filter { predicate }, .. } => {
                let kept = filter_selectivity(input, predicate);
                (input.estimated_bytes() as f64 * kept.share).ceil() as u64
            }
            // A use of a shared subplan, narrowed to its own columns: what its own copy would
            // have carried, its share of the row width.
            Plan::Map { input, op: MapOp::Select { .. }, schema }
                if matches!(**input, Plan::Shared { .. }) =>
            {
                let wide = input.schema().map_or(1.0, |s| schema_width(&s));
                (input.estimated_bytes() as f64 * (schema_width(schema) / wide).min(1.0)).ceil() as u64
            }
            Plan::Map { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Repartition { input, .. }
            | Plan::Shared { input } => input.estimated_bytes(),
            Plan::Head { input, n } | Plan::TopK { input, n, .. } => {
                let width = input.schema().map(|s| s.fields().len() as u64).unwrap_or(1).max(1);
                input.estimated_bytes().min(*n as u64 * width * 16)
            }
            Plan::Aggregate(a) => {
                let width = (a.keys.len() + a.aggs.len()) as u64 * 16;
                match a.input.estimated_groups(&a.keys) {
                    Some(groups) => groups.saturating_mul(width),
                    None if a.keys.is_empty() => width,
                    None => a.input.estimated_bytes(),
                }
            }
            Plan::Join(j) => join_bytes(j),
        }
    }
}

/// A filter's estimated share of its input's rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selectivity {
    /// In `[0, 1]`.
    pub share: f64,
    /// How many of the predicate's conjuncts were estimated from column ranges, and how many
    /// from sampled column values (the others keep [`DEFAULT_SELECTIVITY`]).
    pub from_ranges: usize,
    pub from_values: usize,
}

impl std::fmt::Display for Selectivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match (self.from_ranges, self.from_values) {
            (0, 0) => "assumed",
            (_, 0) => "from column ranges",
            (0, _) => "from sampled column values",
            _ => "from column ranges and sampled values",
        };
        write!(f, "keeps ~{:.2}% of rows, {how}", self.share * 100.0)
    }
}

/// Estimates made in this process, by predicate, input schema, column ranges and sampled values
/// (by address: they are shared, not copied, as plans are rewritten): planning asks
/// for a filter's estimate once per node above it, and each asks again for its inputs, so a
/// chain of joins would otherwise compile the same predicate many times over.
static ESTIMATES: LazyLock<Mutex<HashMap<String, Selectivity>>> = LazyLock::new(Default::default);
/// Most estimates kept; the cache starts over beyond it.
const ESTIMATES_MAX: usize = 1024;

/// The estimated share of `input`'s rows for which `predicate` holds.
pub fn filter_selectivity(input: &Plan, predicate: &str) -> Selectivity {
    let assumed = Selectivity { share: DEFAULT_SELECTIVITY, from_ranges: 0, from_values: 0 };
    let Ok(schema) = input.schema() else {
        return assumed;
    };
    // Each column's scan, found once: its range and its sampled values come from it.
    let scans: Vec<(&Field, Option<&ScanNode>)> =
        schema.fields().iter().map(|f| (f.as_ref(), column_scan(input, f.name()))).collect();
    let stats: Vec<ColumnStatistics> = scans
        .iter()
        .map(|(f, scan)| {
            column_statistics(scan.and_then(|s| s.int_ranges.get(f.name()).copied()), f.data_type())
        })
        .collect();
    // Only the columns the condition names (by a text search: a superset) decode their values.
    let values: Vec<Option<&ArrayRef>> = scans
        .iter()
        .map(|(f, scan)| {
            let named = predicate.contains(f.name().as_str());
            scan.filter(|_| named).and_then(|s| s.string_values.get(f.name()))
        })
        .collect();
    let addresses: Vec<Option<*const u8>> =
        values.iter().map(|v| v.map(|a| Arc::as_ptr(a) as *const u8)).collect();
    let key = format!("{predicate}\n{schema:?}\n{stats:?}\n{addresses:?}");
    let mut cache = ESTIMATES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return *found;
    }
    let estimate = estimate_selectivity(&schema, &stats, &values, predicate).unwrap_or(assumed);
    if cache.len() >= ESTIMATES_MAX {
        cache.clear();
    }
    cache.insert(key, estimate);
    estimate
}

/// [`filter_selectivity`] over `schema` with these column statistics and sampled values;
/// `None` when the predicate does not compile here (validation reports it).
fn estimate_selectivity(
    schema: &SchemaRef,
    stats: &[ColumnStatistics],
    values: &[Option<&ArrayRef>],
    predicate: &str,
) -> Option<Selectivity> {
    let expr = shoal_worker::ops::table::program::physical_expr(schema, predicate)?;
    Some(conjunction_share(&split_conjunction(&expr), &Known { schema, stats, values }))
}

/// What planning knows of a filter's input columns.
struct Known<'a> {
    schema: &'a SchemaRef,
    stats: &'a [ColumnStatistics],
    values: &'a [Option<&'a ArrayRef>],
}

/// The share of rows for which all of `conjuncts` hold. Those interval analysis can bound are
/// analysed together (`d >= a AND d < b` is one interval of `d`, not two independent halves);
/// one over a column of sampled values keeps the share of them it holds for; a disjunction
/// whose branches can be estimated keeps what its branches keep, taken as independent; each
/// other one keeps the default.
fn conjunction_share(conjuncts: &[&Arc<dyn PhysicalExpr>], known: &Known<'_>) -> Selectivity {
    let (bounded, rest): (Vec<_>, Vec<_>) =
        conjuncts.iter().copied().partition(|c| analysable(c, known.schema, known.stats));
    let mut by_others = Selectivity { share: 1.0, from_ranges: 0, from_values: 0 };
    let (mut assumed, mut negated) = (0, 0);
    for conjunct in rest {
        match share_of_values(conjunct, known.schema, known.values) {
            Some(share) => {
                by_others.share *= share;
                by_others.from_values += 1;
            }
            None => match disjunction_share(conjunct, known) {
                Some(s) => {
                    by_others.share *= s.share;
                    by_others.from_ranges += s.from_ranges;
                    by_others.from_values += s.from_values;
                }
                None if negation(conjunct) => negated += 1,
                None => assumed += 1,
            },
        }
    }
    let ranged = match bounded.is_empty() {
        true => Some(1.0),
        false => {
            let together = conjunction(bounded.iter().map(|c| Arc::clone(*c)));
            let analysed = AnalysisContext::try_from_statistics(known.schema, known.stats)
                .and_then(|ctx| analyze(&together, ctx, known.schema));
            // Interval arithmetic refuses some type pairs: then those conjuncts are assumed too.
            analysed.ok().and_then(|ctx| ctx.selectivity)
        }
    };
    let (share, from_ranges) = match ranged {
        Some(share) => (share * DEFAULT_SELECTIVITY.powi(assumed), bounded.len()),
        None => (DEFAULT_SELECTIVITY.powi(bounded.len() as i32 + assumed), 0),
    };
    let share = share * (1.0 - DEFAULT_SELECTIVITY).powi(negated);
    Selectivity {
        share: (share * by_others.share).clamp(0.0, 1.0),
        from_ranges: from_ranges + by_others.from_ranges,
        from_values: by_others.from_values,
    }
}

/// Whether `expr` is the negation of a condition (`NOT LIKE`, `<>`, `NOT IN`, `NOT ...`): when
/// nothing is known of it, it keeps what the condition it negates leaves, `1 -`
/// [`DEFAULT_SELECTIVITY`], not the default itself. (`o_comment NOT LIKE
/// '%special%requests%'` keeps 99% of TPC-H's orders; assumed to keep a fifth, the side it
/// filters was sized five times too small.)
fn negation(expr: &Arc<dyn PhysicalExpr>) -> bool {
    if let Some(like) = expr.downcast_ref::<LikeExpr>() {
        return like.negated();
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        return list.negated();
    }
    expr.is::<NotExpr>() || expr.downcast_ref::<BinaryExpr>().is_some_and(|b| *b.op() == Operator::NotEq)
}

/// The share of rows a disjunction keeps, its branches (each a conjunction) taken as
/// independent: `1 - (1 - a)(1 - b)`. `None` when it is not a disjunction, or when no branch
/// could be estimated from ranges or values (then it is assumed like any other condition).
fn disjunction_share(expr: &Arc<dyn PhysicalExpr>, known: &Known<'_>) -> Option<Selectivity> {
    let branches = split_disjunction(expr);
    if branches.len() < 2 {
        return None;
    }
    let shares: Vec<Selectivity> =
        branches.iter().map(|b| conjunction_share(&split_conjunction(b), known)).collect();
    let from_ranges = shares.iter().map(|s| s.from_ranges).sum();
    let from_values = shares.iter().map(|s| s.from_values).sum();
    if from_ranges + from_values == 0 {
        return None;
    }
    let none = shares.iter().map(|s| 1.0 - s.share).product::<f64>();
    Some(Selectivity { share: 1.0 - none, from_ranges, from_values })
}

/// The share of a column's sampled values a conjunct over that one column holds for, each
/// value taken as equally frequent; at least half a value's share, since a value the sample
/// lacks may still be in the data. `None` for a conjunct over other or more columns, or one
/// that cannot be evaluated on the values.
fn share_of_values(
    expr: &Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
    values: &[Option<&ArrayRef>],
) -> Option<f64> {
    let columns = collect_columns(expr);
    let column = match columns.iter().collect::<Vec<_>>().as_slice() {
        [only] => *only,
        _ => return None,
    };
    let sampled = values.get(column.index()).copied().flatten().filter(|v| !v.is_empty())?;
    let field = schema.fields().get(column.index())?;
    let sampled = arrow::compute::cast(sampled, field.data_type()).ok()?;
    // The conjunct over a batch of just this column.
    let batch_schema = Arc::new(Schema::new(vec![Field::new(field.name(), field.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(batch_schema, vec![sampled]).ok()?;
    let rebased = Arc::clone(expr)
        .transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => Transformed::yes(Arc::new(Column::new(c.name(), 0)) as Arc<dyn PhysicalExpr>),
                None => Transformed::no(e),
            })
        })
        .ok()?
        .data;
    let kept = rebased.evaluate(&batch).ok()?.into_array(batch.num_rows()).ok()?;
    let kept = kept.as_boolean_opt()?.true_count() as f64;
    Some(kept.max(0.5) / batch.num_rows() as f64)
}

/// Whether interval analysis can bound a conjunct: it reads one column, of known range, with
/// operators and types interval arithmetic supports. (Of a comparison of two columns, such as
/// `l_commitdate < l_receiptdate`, the analysis only trims the ends of their ranges and would
/// call it kept by nearly every row.)
fn analysable(expr: &Arc<dyn PhysicalExpr>, schema: &SchemaRef, stats: &[ColumnStatistics]) -> bool {
    let columns = collect_columns(expr);
    columns.len() == 1
        && columns.iter().all(|c| stats.get(c.index()).is_some_and(|s| s.min_value.get_value().is_some()))
        && check_support(expr, schema)
}

/// Estimated rows of `plan`'s output, where planning can tell: Parquet footers count a scan's
/// rows, a filter keeps its [`filter_selectivity`], an aggregation at most its groups, and a
/// join matches as many rows as [`join_rows`] estimates.
pub fn estimated_rows(plan: &Plan) -> Option<f64> {
    match plan {
        Plan::Scan(s) => s.rows().map(|r| r as f64),
        Plan::Graph(_) => None,
        Plan::Map { input, op: MapOp::Filter { predicate }, .. } => {
            Some(estimated_rows(input)? * filter_selectivity(input, predicate).share)
        }
        Plan::Map {
            input, op: MapOp::Select { .. } | MapOp::Assign { .. } | MapOp::Apply { .. }, ..
        }
        | Plan::Sort { input, .. }
        | Plan::Repartition { input, .. }
        | Plan::Shared { input } => estimated_rows(input),
        Plan::Map { .. } => None,
        Plan::Head { input, n } | Plan::TopK { input, n, .. } => {
            Some(estimated_rows(input).map_or(*n as f64, |r| r.min(*n as f64)))
        }
        Plan::Aggregate(a) => {
            let rows = estimated_rows(&a.input)?;
            Some(a.input.estimated_groups(&a.keys).map_or(rows, |g| rows.min(g as f64)))
        }
        Plan::Join(j) => join_rows(j),
    }
}

/// Estimated rows of a join, as textbook optimizers estimate an equi-join: each key value of
/// the side with fewer distinct keys finds its matches on the other, so the matches are
/// `left × right / max(distinct left keys, distinct right keys)`. Distinct keys are bounded by
/// the keys' ranges and by the side's rows; a side whose keys planning cannot bound counts
/// every row distinct (a primary key). Outer rows without a match are kept on top.
pub fn join_rows(j: &JoinNode) -> Option<f64> {
    Some(matched_rows(j, estimated_rows(&j.left)?, estimated_rows(&j.right)?))
}

/// [`join_rows`] of sides of `l` and `r` rows.
fn matched_rows(j: &JoinNode, l: f64, r: f64) -> f64 {
    let (dl, dr) = (distinct(&j.left, &j.left_on, l), distinct(&j.right, &j.right_on, r));
    let matched = l * r / dl.max(dr).max(1.0);
    match j.how {
        JoinHow::Inner => matched,
        JoinHow::Left => matched.max(l),
        JoinHow::Right => matched.max(r),
        JoinHow::Outer => matched.max(l).max(r),
        // The left rows whose key is among the right's keys.
        JoinHow::Semi => l * (dr / dl.max(1.0)).min(1.0),
        JoinHow::Anti => l,
    }
}

/// Estimated bytes of a join's output: its [`join_rows`] at the width of a row of each side it
/// keeps (bytes per row of each side's estimate, or of its columns' types where that is less:
/// a small file's bytes are mostly its footer); never more than the sides' bytes together (the
/// left's, for a semi or anti join), which is also the estimate when rows are unknown.
pub fn join_bytes(j: &JoinNode) -> u64 {
    let keeps_right = !matches!(j.how, JoinHow::Semi | JoinHow::Anti);
    let (left, right) = (j.left.estimated_bytes(), keeps_right.then(|| j.right.estimated_bytes()));
    let whole = left.saturating_add(right.unwrap_or(0));
    let (Some(l), Some(r)) = (estimated_rows(&j.left), estimated_rows(&j.right)) else {
        return whole;
    };
    let width = |plan: &Plan, bytes: u64, rows: f64| {
        let in_memory = plan.schema().ok().map_or(f64::INFINITY, |s| schema_width(&s));
        (bytes as f64 / rows.max(1.0)).min(in_memory)
    };
    let row_width = width(&j.left, left, l) + right.map_or(0.0, |b| width(&j.right, b, r));
    ((row_width * matched_rows(j, l, r)).ceil() as u64).min(whole)
}

/// Bytes a row of `schema` holds in memory: fixed-width types their width, strings and binaries
/// [`VARIABLE_WIDTH`] (with their offsets), anything else twice that.
pub(super) fn schema_width(schema: &SchemaRef) -> f64 {
    let width = |t: &DataType| match t {
        DataType::Boolean => 1,
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary => VARIABLE_WIDTH,
        t => t.primitive_width().unwrap_or(2 * VARIABLE_WIDTH),
    };
    schema.fields().iter().map(|f| width(f.data_type()) as f64).sum::<f64>().max(1.0)
}

/// The assumed bytes of a string or binary value (TPC-H's text columns average 10 to 80).
const VARIABLE_WIDTH: usize = 32;

/// Distinct values of `keys` in `plan`'s output of `rows` rows: at most the values their ranges
/// allow, carried through filters and joins from the side the keys come from, and never more
/// than the rows.
fn distinct(plan: &Plan, keys: &[String], rows: f64) -> f64 {
    let bound = match plan {
        Plan::Join(j) => {
            keys_side(j, keys).and_then(|side| Some(distinct(side, keys, estimated_rows(side)?)))
        }
        _ => plan.estimated_groups(keys).map(|g| g as f64),
    };
    bound.map_or(rows, |b| b.min(rows)).max(1.0)
}

/// Inexact min and max of a column of `data_type`, from its integer-encoded range where planning
/// knows it.
fn column_statistics(range: Option<(i64, i64)>, data_type: &DataType) -> ColumnStatistics {
    let mut stats = ColumnStatistics::new_unknown();
    let bounds = range.and_then(|(lo, hi)| Some((scalar(lo, data_type)?, scalar(hi, data_type)?)));
    if let Some((lo, hi)) = bounds {
        stats.min_value = Precision::Inexact(lo);
        stats.max_value = Precision::Inexact(hi);
    }
    stats
}

/// `(min, max)` of an integer-encoded column of `plan`'s output (Parquet statistics of the scan
/// it comes from). A filter's output keeps its input's range: a bound, not the tightest one.
pub fn column_range(plan: &Plan, name: &str) -> Option<(i64, i64)> {
    column_scan(plan, name)?.int_ranges.get(name).copied()
}

/// The scan a column of `plan`'s output comes from with its values unchanged, through every
/// operator that passes them through (filters keep a subset of them).
fn column_scan<'a>(plan: &'a Plan, name: &str) -> Option<&'a ScanNode> {
    match plan {
        Plan::Scan(s) => s.projection.as_ref().is_none_or(|p| p.iter().any(|c| c == name)).then_some(s),
        Plan::Map { input, op, .. } if keeps_values(op, &[name.to_string()]) => column_scan(input, name),
        Plan::Head { input, .. }
        | Plan::TopK { input, .. }
        | Plan::Sort { input, .. }
        | Plan::Repartition { input, .. }
        | Plan::Shared { input } => column_scan(input, name),
        Plan::Join(j) => join_side(j, name).and_then(|side| column_scan(side, name)),
        Plan::Map { .. } | Plan::Aggregate(_) | Plan::Graph(_) => None,
    }
}

/// The side of a join a column of its output comes from unrenamed: the only side with a column
/// of that name (a name on both sides is suffixed or merged, and its range is the sides' union).
fn join_side<'a>(j: &'a JoinNode, name: &str) -> Option<&'a Arc<Plan>> {
    let has = |p: &Plan| p.schema().is_ok_and(|s: SchemaRef| s.field_with_name(name).is_ok());
    let right_kept = !matches!(j.how, JoinHow::Semi | JoinHow::Anti);
    match (has(&j.left), right_kept && has(&j.right)) {
        (true, false) => Some(&j.left),
        (false, true) => Some(&j.right),
        _ => None,
    }
}

/// The side of a join all of `keys` come from, if one does.
fn keys_side<'a>(j: &'a JoinNode, keys: &[String]) -> Option<&'a Arc<Plan>> {
    let mut sides = keys.iter().map(|k| join_side(j, k));
    let first = sides.next()??;
    sides.all(|s| s.is_some_and(|s| Arc::ptr_eq(s, first))).then_some(first)
}

/// `value`, the integer encoding of a Parquet statistic, as a value of `data_type`.
fn scalar(value: i64, data_type: &DataType) -> Option<ScalarValue> {
    match data_type {
        // Statistics of unsigned 32- and 64-bit columns are stored as the bits of signed
        // integers: values past the signed maximum read as negative.
        DataType::UInt32 | DataType::UInt64 => None,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(..) => ScalarValue::Int64(Some(value)).cast_to(data_type).ok(),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::collections::dataframe::plan::{FileInfo, ScanNode};
    use arrow::datatypes::{Field, Schema};
    use shoal_protocol::{FileFormat, ObjectRef};

    /// Days from 1970-01-01 to `y`-01-01 (hand-checked: 1992 → 8035, 1995 → 9131).
    fn days(y: i64) -> i64 {
        (1970..y).map(|y| if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 }).sum()
    }

    /// A column of a test table: its name, type and `(min, max)` from statistics.
    type Column<'a> = (&'a str, DataType, Option<(i64, i64)>);

    /// A Parquet scan of one file of `bytes` and `rows` with these columns and ranges.
    fn table(columns: &[Column<'_>], rows: u64, bytes: u64) -> Plan {
        let schema =
            Schema::new(columns.iter().map(|(n, t, _)| Field::new(*n, t.clone(), false)).collect::<Vec<_>>());
        let int_ranges =
            columns.iter().filter_map(|(n, _, r)| Some((n.to_string(), (*r)?))).collect::<HashMap<_, _>>();
        let object = ObjectRef { url: "file:///t/0.parquet".into(), size: bytes, e_tag: None };
        Plan::Scan(ScanNode {
            source: "t/*.parquet".into(),
            format: FileFormat::Parquet,
            file_schema: Arc::new(schema),
            files: vec![FileInfo { object, row_groups: vec![(bytes, rows)], int_bounds: vec![] }],
            partitions: vec![],
            projection: None,
            predicate: None,
            int_ranges,
            string_values: Default::default(),
            schema_on_read: false,
        })
    }

    /// `d` (a date over 1992..=1998), `n` (1 to 100), `price` (decimal(15,2)), `s` (a string).
    fn scan() -> Plan {
        table(
            &[
                ("d", DataType::Date32, Some((days(1992), days(1999) - 1))),
                ("n", DataType::Int64, Some((1, 100))),
                ("price", DataType::Decimal128(15, 2), Some((0, 1_000_000))),
                ("s", DataType::Utf8, None),
            ],
            1000,
            16_000,
        )
    }

    pub(in crate::collections::dataframe) fn filter(input: Plan, predicate: &str) -> Plan {
        let schema = input.schema().unwrap();
        Plan::Map { input: Arc::new(input), op: MapOp::Filter { predicate: predicate.into() }, schema }
    }

    /// A join of `left` and `right` on one key pair, its schema derived (no strategy yet).
    pub(in crate::collections::dataframe) fn join(
        left: Plan,
        right: Plan,
        how: JoinHow,
        on: (&str, &str),
    ) -> Plan {
        let mut j = JoinNode {
            left: Arc::new(left),
            right: Arc::new(right),
            how,
            left_on: vec![on.0.into()],
            right_on: vec![on.1.into()],
            suffixes: ("_x".into(), "_y".into()),
            schema: Arc::new(Schema::empty()),
            hint: None,
            npartitions: None,
            strategy: None,
            cost: None,
        };
        j.schema = j.output_schema().unwrap();
        Plan::Join(j)
    }

    fn near(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected.abs() * 0.01 + 1e-9
    }

    #[test]
    fn a_date_range_keeps_its_share_of_the_columns_range() {
        assert_eq!((days(1992), days(1995)), (8035, 9131));
        let year = filter_selectivity(&scan(), "d >= DATE '1994-01-01' AND d < DATE '1995-01-01'");
        // 365 of the 2557 days 1992-01-01..=1998-12-31: one interval, not two independent halves.
        assert!(near(year.share, 365.0 / 2557.0), "{year:?}");
        assert_eq!(year.from_ranges, 2);
        let half = filter_selectivity(&scan(), "n <= 50");
        assert!(near(half.share, 0.5), "{half:?}");
        assert!(filter_selectivity(&scan(), "n > 1000").share < 0.002);
        // Two columns compared: assumed, not analysed.
        let pair = filter_selectivity(&scan(), "n < CAST(d AS BIGINT)");
        assert_eq!(pair, Selectivity { share: DEFAULT_SELECTIVITY, from_ranges: 0, from_values: 0 });
        // DataFusion's interval analysis takes no decimals: assumed.
        let price = filter_selectivity(&scan(), "price < 2500.00");
        assert_eq!(price, Selectivity { share: DEFAULT_SELECTIVITY, from_ranges: 0, from_values: 0 });
    }

    #[test]
    fn conjuncts_without_ranges_are_assumed_and_multiply() {
        let s = filter_selectivity(&scan(), "s = 'ASIA'");
        assert_eq!(s, Selectivity { share: DEFAULT_SELECTIVITY, from_ranges: 0, from_values: 0 });
        let both = filter_selectivity(&scan(), "s IN ('a', 'b') AND n <= 50");
        assert!(near(both.share, DEFAULT_SELECTIVITY * 0.5), "{both:?}");
        assert_eq!(both.from_ranges, 1);
        // Not an expression planning can read: assumed, not an error (validation reports it).
        assert_eq!(filter_selectivity(&scan(), "no_such_column > 1").share, DEFAULT_SELECTIVITY);
        assert_eq!(format!("{both}"), "keeps ~10.00% of rows, from column ranges");
    }

    #[test]
    fn negated_conditions_without_estimates_keep_the_rest_of_the_default() {
        let rest = 1.0 - DEFAULT_SELECTIVITY;
        for negated in ["s NOT LIKE '%special%requests%'", "s <> 'ASIA'", "s NOT IN ('a')", "NOT (s = 'a')"] {
            let kept = filter_selectivity(&scan(), negated);
            assert!(near(kept.share, rest), "{negated}: {kept:?}");
            assert_eq!(format!("{kept}"), "keeps ~80.00% of rows, assumed");
        }
        // A short `NOT IN` list is simplified into `<>`s, each a condition of its own.
        let list = filter_selectivity(&scan(), "s NOT IN ('a', 'b')");
        assert!(near(list.share, rest * rest), "{list:?}");
        // With an assumed condition: the two multiply.
        let both = filter_selectivity(&scan(), "s NOT LIKE 'x%' AND price * 2 > price");
        assert!(near(both.share, rest * DEFAULT_SELECTIVITY), "{both:?}");
        // Sampled values still decide where there are some.
        let sampled = filter_selectivity(&scan_with_values(&["a", "b", "c", "d"]), "s <> 'a'");
        assert!(near(sampled.share, 0.75), "{sampled:?}");
    }

    /// [`scan`] with these sampled values of `s`.
    fn scan_with_values(values: &[&str]) -> Plan {
        let Plan::Scan(mut node) = scan() else { unreachable!() };
        let values = Arc::new(arrow::array::StringArray::from(values.to_vec())) as ArrayRef;
        node.string_values = std::mem::take(&mut node.string_values).with("s", values);
        Plan::Scan(node)
    }

    #[test]
    fn conditions_on_a_string_column_keep_the_share_of_its_sampled_values_they_hold_for() {
        let types =
            ["ECONOMY ANODIZED STEEL", "ECONOMY BRUSHED BRASS", "PROMO ANODIZED STEEL", "STANDARD BRASS"];
        let scan = scan_with_values(&types);
        let one = filter_selectivity(&scan, "s = 'ECONOMY ANODIZED STEEL'");
        assert_eq!(one, Selectivity { share: 0.25, from_ranges: 0, from_values: 1 });
        assert_eq!(format!("{one}"), "keeps ~25.00% of rows, from sampled column values");
        assert!(near(filter_selectivity(&scan, "s LIKE '%BRASS'").share, 0.5));
        assert!(near(filter_selectivity(&scan, "s NOT LIKE 'ECONOMY%'").share, 0.5));
        assert!(near(filter_selectivity(&scan, "s IN ('STANDARD BRASS', 'nowhere')").share, 0.25));
        // A value the sample lacks may still be there: half a value's share, not none.
        assert!(near(filter_selectivity(&scan, "s = 'LARGE PLATED TIN'").share, 0.125));
        // With a range on another column, and through a filter above the scan.
        let both = filter_selectivity(&filter(scan.clone(), "n > 0"), "s LIKE 'PROMO%' AND n <= 50");
        assert!(near(both.share, 0.25 * 0.5), "{both:?}");
        assert_eq!(format!("{both}"), "keeps ~12.50% of rows, from column ranges and sampled values");
        // Branches of a disjunction estimated each, taken as independent: 1 - (1 - a)(1 - b).
        let either =
            filter_selectivity(&scan, "(s = 'STANDARD BRASS' AND n <= 50) OR (s LIKE 'ECONOMY%' AND n > 90)");
        assert!(near(either.share, 1.0 - (1.0 - 0.25 * 0.5) * (1.0 - 0.5 * 0.1)), "{either:?}");
        assert_eq!((either.from_ranges, either.from_values), (2, 2));
        // A branch that cannot be estimated keeps the default; if none can, the disjunction does.
        let one = filter_selectivity(&scan, "s = 'x' OR n + 1 = price");
        assert!(near(one.share, 1.0 - (1.0 - 0.125) * (1.0 - DEFAULT_SELECTIVITY)), "{one:?}");
        assert_eq!(filter_selectivity(&scan, "n + 1 = price OR n * 2 = price").share, DEFAULT_SELECTIVITY);
    }

    #[test]
    fn ranges_pass_through_operators_that_keep_values() {
        let filtered = filter(scan(), "s = 'x'");
        assert_eq!(column_range(&filtered, "n"), Some((1, 100)));
        let replaced = Plan::Map {
            input: Arc::new(scan()),
            op: MapOp::Assign { columns: vec![("n".into(), "n * 2".into())] },
            schema: scan().schema().unwrap(),
        };
        assert_eq!(column_range(&replaced, "n"), None);
        assert!(near(filter_selectivity(&filtered, "n <= 25").share, 0.25));
        // 1,000 rows of 16 bytes; the filter keeps a fifth of them, and of their bytes.
        assert_eq!((estimated_rows(&filtered), filtered.estimated_bytes()), (Some(200.0), 3200));
    }

    /// TPC-H's shape, by hand: 25 nations in 5 regions, 150,000 customers of those nations,
    /// 1,500,000 orders of those customers, keys dense from 0 or 1.
    #[test]
    fn joins_match_rows_by_their_distinct_keys() {
        let region = || {
            table(&[("r_regionkey", DataType::Int64, Some((0, 4))), ("r_name", DataType::Utf8, None)], 5, 50)
        };
        let nation = table(
            &[
                ("n_nationkey", DataType::Int64, Some((0, 24))),
                ("n_regionkey", DataType::Int64, Some((0, 4))),
            ],
            25,
            250,
        );
        let customer = table(
            &[
                ("c_custkey", DataType::Int64, Some((1, 150_000))),
                ("c_nationkey", DataType::Int64, Some((0, 24))),
            ],
            150_000,
            3_000_000,
        );
        let orders = table(
            &[
                ("o_orderkey", DataType::Int64, Some((1, 1_500_000))),
                ("o_custkey", DataType::Int64, Some((1, 150_000))),
            ],
            1_500_000,
            30_000_000,
        );
        // One region of five (assumed 20%): 1 row; its nations: 25 × 1 / max(6, 1) — the
        // distinct keys of a range count a null too (`hi - lo + 2`).
        let asia = filter(region(), "r_name = 'ASIA'");
        let nations = join(nation, asia, JoinHow::Inner, ("n_regionkey", "r_regionkey"));
        let n = estimated_rows(&nations).unwrap();
        assert!(near(n, 25.0 / 6.0), "{n}");
        // Their customers: 150,000 × n / max(26, n).
        let customers = join(customer, nations, JoinHow::Inner, ("c_nationkey", "n_nationkey"));
        let c = estimated_rows(&customers).unwrap();
        assert!(near(c, 150_000.0 * n / 26.0), "{c}");
        // Their orders: 1,500,000 × c / max(150,001, c), each row as wide as an order's two
        // integers (16 bytes, under its file's 20 a row), a customer's (16, under 20) and a
        // nation and its region (their files' 10 + 10, under 16 and 40).
        let theirs = join(orders, customers, JoinHow::Inner, ("o_custkey", "c_custkey"));
        let o = estimated_rows(&theirs).unwrap();
        assert!(near(o, 1_500_000.0 * c / 150_001.0), "{o}");
        assert!(near(theirs.estimated_bytes() as f64, o * 52.0), "{} for {o} rows", theirs.estimated_bytes());
        // A semi join keeps the left rows whose key the right has; an anti join at most all.
        let against_asia =
            |how| join(region(), filter(region(), "r_name = 'ASIA'"), how, ("r_regionkey", "r_regionkey"));
        assert_eq!(estimated_rows(&against_asia(JoinHow::Semi)), Some(1.0));
        let anti = against_asia(JoinHow::Anti);
        assert_eq!(estimated_rows(&anti), Some(5.0));
        assert_eq!(anti.estimated_bytes(), 50);
    }
}
