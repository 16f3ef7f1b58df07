//! The logical plan that collections record lazily, and the optimizer that rewrites it.
//!
//! A plan is a tree of operators over scans. Per-partition operators (`Map`) keep the
//! partitioning of their input; the others (`Head`, `TopK`, `Aggregate`, `Join`, `Sort`,
//! `Repartition`) change it, and so start a new stage when lowered.
//! The optimizer pushes projections and predicates into scans and chooses the strategy of each
//! aggregation (tree reduction or hash shuffle) and join (broadcast, partition-wise or hash
//! shuffle) from estimated sizes; lowering fuses runs of per-partition operators into one task.

use crate::error::{Error, Result};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use shoal_protocol::{FileFormat, FileSlice, JoinHow, ObjectRef, SortKey, TableOp};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

/// One file of a scan, as planned from its footer (Parquet) or listing.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub object: ObjectRef,
    /// Compressed bytes and rows of each row group (Parquet); empty for other formats.
    pub row_groups: Vec<(u64, u64)>,
}

/// A scan of files in object storage.
#[derive(Debug, Clone)]
pub struct ScanNode {
    /// What the user named (`data/*.parquet`), for messages.
    pub source: String,
    pub format: FileFormat,
    /// Schema of the files.
    pub file_schema: SchemaRef,
    pub files: Vec<FileInfo>,
    /// The partitions: each a list of files or row-group subsets of files.
    pub partitions: Vec<Vec<FileSlice>>,
    /// Columns to read (set by projection pushdown); `None` reads all.
    pub projection: Option<Vec<String>>,
    /// Predicate used to prune row groups (set by predicate pushdown).
    pub predicate: Option<String>,
    /// `(min, max)` of integer-valued columns over all files (Parquet statistics): bounds on
    /// their distinct counts, for choosing aggregation strategies.
    pub int_ranges: HashMap<String, (i64, i64)>,
}

impl ScanNode {
    pub fn schema(&self) -> Result<SchemaRef> {
        match &self.projection {
            None => Ok(self.file_schema.clone()),
            Some(cols) => {
                let ix = cols
                    .iter()
                    .map(|c| self.file_schema.index_of(c).map_err(|e| Error::Schema(e.to_string())))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Arc::new(self.file_schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?))
            }
        }
    }

    /// Bytes of the files.
    pub fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.object.size).sum()
    }

    /// Bytes the scan reads: the files' bytes, scaled by the share of columns read.
    pub fn estimated_bytes(&self) -> u64 {
        let total = self.file_schema.fields().len().max(1) as u64;
        let read = self.projection.as_ref().map_or(total, |p| p.len() as u64);
        self.file_bytes() * read / total
    }

    /// Rows in the files, when the footers tell (Parquet).
    pub fn rows(&self) -> Option<u64> {
        match self.format {
            FileFormat::Parquet => Some(self.files.iter().flat_map(|f| &f.row_groups).map(|(_, r)| r).sum()),
            _ => None,
        }
    }
}

/// Settings that steer the optimizer's choices.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Largest estimated size of a join side that is broadcast to every partition of the other.
    pub broadcast_bytes: u64,
    /// Most estimated groups an aggregation reduces with a tree (in one final task); more groups
    /// shuffle into several output partitions.
    pub tree_max_groups: u64,
    /// Inputs per combine task of a tree reduction (Dask's `split_every`).
    pub split_every: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self { broadcast_bytes: 64_000_000, tree_max_groups: 1_000_000, split_every: 8 }
    }
}

/// How an aggregation is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggStrategy {
    /// Partial aggregates per partition, merged `split_every` at a time into one partition.
    Tree { split_every: usize },
    /// Partial aggregates hash-shuffled on the keys into `split_out` partitions.
    Shuffle { split_out: usize },
}

/// How a join is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStrategy {
    /// The right side is materialized and read whole by each partition of the left.
    BroadcastRight,
    /// The left side is materialized and read whole by each partition of the right.
    BroadcastLeft,
    /// Both sides are already hash-partitioned on the keys into the same partitions.
    PartitionWise,
    /// The left side is indexed by the key (`set_index`): the right side is range-shuffled to
    /// the left's divisions, and partition i of each side pair up.
    Divisions,
    /// Both sides are hash-shuffled on the keys into `npartitions` partitions.
    Hash { npartitions: usize },
}

impl JoinStrategy {
    pub fn name(self) -> &'static str {
        match self {
            JoinStrategy::BroadcastRight | JoinStrategy::BroadcastLeft => "broadcast",
            JoinStrategy::PartitionWise => "partition-wise",
            JoinStrategy::Divisions => "divisions",
            JoinStrategy::Hash { .. } => "hash",
        }
    }
}

/// A join strategy the user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinHint {
    Broadcast,
    PartitionWise,
    Hash,
}

/// An aggregation node.
#[derive(Debug, Clone)]
pub struct AggregateNode {
    pub input: Arc<Plan>,
    pub keys: Vec<String>,
    /// `(output name, SQL aggregate expression)`.
    pub aggs: Vec<(String, String)>,
    pub schema: SchemaRef,
    /// User overrides.
    pub split_out: Option<usize>,
    pub split_every: Option<usize>,
    /// Chosen by the optimizer, with the reason.
    pub strategy: Option<(AggStrategy, String)>,
}

/// A join node.
#[derive(Debug, Clone)]
pub struct JoinNode {
    pub left: Arc<Plan>,
    pub right: Arc<Plan>,
    pub how: JoinHow,
    pub left_on: Vec<String>,
    pub right_on: Vec<String>,
    pub suffixes: (String, String),
    pub schema: SchemaRef,
    pub hint: Option<JoinHint>,
    /// Output partitions of a hash join (default: the larger side's).
    pub npartitions: Option<usize>,
    /// Chosen by the optimizer, with the reason.
    pub strategy: Option<(JoinStrategy, String)>,
}

/// A node of the logical plan.
#[derive(Debug, Clone)]
pub enum Plan {
    Scan(ScanNode),
    /// A per-partition operator; `schema` is its validated output schema.
    Map {
        input: Arc<Plan>,
        op: TableOp,
        schema: SchemaRef,
    },
    /// The first `n` rows of the whole collection: one output partition.
    Head {
        input: Arc<Plan>,
        n: usize,
    },
    /// The first `n` rows in the order of `keys` (`nlargest` / `nsmallest`): one partition.
    TopK {
        input: Arc<Plan>,
        keys: Vec<SortKey>,
        n: usize,
    },
    Aggregate(AggregateNode),
    Join(JoinNode),
    /// A global sort into `npartitions` range partitions (sampled boundaries). With `index`,
    /// the first key is the index (`set_index`) and the boundaries are its divisions.
    Sort {
        input: Arc<Plan>,
        keys: Vec<SortKey>,
        npartitions: usize,
        index: bool,
    },
    /// The same rows, in order, in `npartitions` partitions.
    Repartition {
        input: Arc<Plan>,
        npartitions: usize,
    },
}

impl Plan {
    pub fn schema(&self) -> Result<SchemaRef> {
        match self {
            Plan::Scan(s) => s.schema(),
            Plan::Map { schema, .. } => Ok(schema.clone()),
            Plan::Head { input, .. }
            | Plan::TopK { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Repartition { input, .. } => input.schema(),
            Plan::Aggregate(a) => Ok(a.schema.clone()),
            Plan::Join(j) => Ok(j.schema.clone()),
        }
    }

    /// Number of output partitions (of an optimized plan: it depends on chosen strategies).
    pub fn partitions(&self) -> usize {
        match self {
            Plan::Scan(s) => s.partitions.len(),
            Plan::Map { input, .. } => input.partitions(),
            Plan::Head { .. } | Plan::TopK { .. } => 1,
            Plan::Aggregate(a) => match a.strategy {
                Some((AggStrategy::Shuffle { split_out }, _)) => split_out,
                _ => a.split_out.unwrap_or(1),
            },
            Plan::Join(j) => match j.strategy {
                Some((JoinStrategy::Hash { npartitions }, _)) => npartitions,
                Some((JoinStrategy::BroadcastLeft, _)) => j.right.partitions(),
                _ => j.left.partitions(),
            },
            Plan::Sort { npartitions, .. } | Plan::Repartition { npartitions, .. } => *npartitions,
        }
    }

    /// Estimated bytes this node's output holds (a rough guide for strategies and `explain`).
    pub fn estimated_bytes(&self) -> u64 {
        match self {
            Plan::Scan(s) => s.estimated_bytes(),
            Plan::Map { input, .. } | Plan::Sort { input, .. } | Plan::Repartition { input, .. } => {
                input.estimated_bytes()
            }
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
            Plan::Join(j) => j.left.estimated_bytes() + j.right.estimated_bytes(),
        }
    }

    /// An upper bound on the distinct values of `keys` in this node's output, when planning can
    /// tell: integer columns have at most `max - min + 1` values (Parquet statistics), booleans
    /// 3 (with null); never more than the rows. `None` when unknown.
    pub fn estimated_groups(&self, keys: &[String]) -> Option<u64> {
        if keys.is_empty() {
            return Some(1);
        }
        match self {
            Plan::Scan(s) => {
                let mut product: u64 = 1;
                for k in keys {
                    let dt = s.file_schema.field_with_name(k).ok()?.data_type().clone();
                    let n = match (&dt, s.int_ranges.get(k)) {
                        (DataType::Boolean, _) => 3,
                        (_, Some((lo, hi))) => {
                            (*hi as i128 - *lo as i128 + 2).clamp(1, u64::MAX as i128) as u64
                        }
                        _ => return None,
                    };
                    product = product.saturating_mul(n);
                }
                Some(s.rows().map_or(product, |r| product.min(r.max(1))))
            }
            Plan::Map { input, op, .. } if keeps_values(op, keys) || matches!(op, TableOp::Head { .. }) => {
                input.estimated_groups(keys)
            }
            Plan::Sort { input, .. } | Plan::Repartition { input, .. } => input.estimated_groups(keys),
            _ => None,
        }
    }

    /// The index column (`set_index`) this node's output is sorted and range-partitioned by.
    pub fn index(&self) -> Option<String> {
        match self {
            Plan::Sort { keys, index: true, .. } => keys.first().map(|k| k.column.clone()),
            Plan::Map { input, op, .. } => {
                let index = input.index()?;
                keeps_values(op, std::slice::from_ref(&index)).then_some(index)
            }
            _ => None,
        }
    }

    /// `Some((keys, n))` when the output is known to be hash-partitioned on `keys` into `n`
    /// partitions (the output of a shuffled aggregation), so a join on those keys can pair
    /// partitions without a shuffle.
    pub fn hash_partitioning(&self) -> Option<(Vec<String>, usize)> {
        match self {
            Plan::Aggregate(a) => match a.strategy {
                Some((AggStrategy::Shuffle { split_out }, _)) => Some((a.keys.clone(), split_out)),
                _ => None,
            },
            Plan::Map { input, op, .. } => {
                let (keys, n) = input.hash_partitioning()?;
                keeps_values(op, &keys).then_some((keys, n))
            }
            _ => None,
        }
    }

    /// An indented tree, for `explain`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        self.fmt_tree(&mut out, 0);
        out
    }

    fn fmt_tree(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        match self {
            Plan::Scan(s) => {
                let fmt = match &s.format {
                    FileFormat::Parquet => "parquet",
                    FileFormat::Csv(_) => "csv",
                    FileFormat::ArrowIpc => "arrow",
                };
                let _ = write!(
                    out,
                    "{pad}Scan {fmt} {} [{} files, {} partitions, {}]",
                    s.source,
                    s.files.len(),
                    s.partitions.len(),
                    human_bytes(s.file_bytes())
                );
                if let Some(p) = &s.projection {
                    let _ = write!(out, " columns=[{}]", p.join(", "));
                }
                if let Some(p) = &s.predicate {
                    let _ = write!(out, " prune_by=({p})");
                }
                out.push('\n');
            }
            Plan::Map { input, op, .. } => {
                let _ = writeln!(out, "{pad}{}", describe(op));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Head { input, n } => {
                let _ = writeln!(out, "{pad}Head n={n}");
                input.fmt_tree(out, depth + 1);
            }
            Plan::TopK { input, keys, n } => {
                let _ = writeln!(out, "{pad}TopK n={n} by {}", sort_keys(keys));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Aggregate(a) => {
                let aggs: Vec<String> = a.aggs.iter().map(|(n, e)| format!("{n} = {e}")).collect();
                let _ = write!(out, "{pad}Aggregate by [{}]: {}", a.keys.join(", "), aggs.join(", "));
                match &a.strategy {
                    Some((AggStrategy::Tree { split_every }, why)) => {
                        let _ = write!(out, " [strategy=tree split_every={split_every}: {why}]");
                    }
                    Some((AggStrategy::Shuffle { split_out }, why)) => {
                        let _ = write!(out, " [strategy=shuffle split_out={split_out}: {why}]");
                    }
                    None => {}
                }
                out.push('\n');
                a.input.fmt_tree(out, depth + 1);
            }
            Plan::Join(j) => {
                let on: Vec<String> =
                    j.left_on.iter().zip(&j.right_on).map(|(l, r)| format!("{l} = {r}")).collect();
                let _ = write!(out, "{pad}Join {} on {}", j.how.as_str(), on.join(" AND "));
                if let Some((s, why)) = &j.strategy {
                    let _ = write!(out, " [strategy={}", s.name());
                    match s {
                        JoinStrategy::Hash { npartitions } => {
                            let _ = write!(out, " npartitions={npartitions}");
                        }
                        JoinStrategy::BroadcastRight => out.push_str(" side=right"),
                        JoinStrategy::BroadcastLeft => out.push_str(" side=left"),
                        JoinStrategy::PartitionWise | JoinStrategy::Divisions => {}
                    }
                    let _ = write!(out, ": {why}]");
                }
                out.push('\n');
                j.left.fmt_tree(out, depth + 1);
                j.right.fmt_tree(out, depth + 1);
            }
            Plan::Sort { input, keys, npartitions, index } => {
                let what = if *index { "SetIndex" } else { "Sort" };
                let _ =
                    writeln!(out, "{pad}{what} by {} into {npartitions} range partitions", sort_keys(keys));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Repartition { input, npartitions } => {
                let _ = writeln!(out, "{pad}Repartition npartitions={npartitions}");
                input.fmt_tree(out, depth + 1);
            }
        }
    }
}

/// `a ASC, b DESC NULLS FIRST`.
pub fn sort_keys(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| {
            let dir = if k.ascending { "ASC" } else { "DESC" };
            let nulls = if k.nulls_first { "NULLS FIRST" } else { "NULLS LAST" };
            format!("{} {dir} {nulls}", k.column)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a per-partition operator passes `columns` through with their values unchanged on
/// every row it keeps, so that what is known about them (distinct counts, partitioning, an
/// index) still holds after it.
fn keeps_values(op: &TableOp, columns: &[String]) -> bool {
    match op {
        TableOp::Filter { .. } => true,
        TableOp::Select { columns: kept } => columns.iter().all(|c| kept.contains(c)),
        TableOp::Assign { columns: assigned } => !assigned.iter().any(|(c, _)| columns.contains(c)),
        _ => false,
    }
}

/// One line describing an operator.
pub fn describe(op: &TableOp) -> String {
    match op {
        TableOp::Filter { predicate } => format!("Filter {predicate}"),
        TableOp::Select { columns } => format!("Select {}", columns.join(", ")),
        TableOp::Assign { columns } => format!(
            "Assign {}",
            columns.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
        ),
        TableOp::MapPartitions { module, function, args } => {
            format!(
                "MapPartitions {function}({args}) [wasm {}]",
                &module.sha256[..12.min(module.sha256.len())]
            )
        }
        TableOp::Head { n } => format!("Head n={n}"),
        TableOp::Sort { keys } => format!("Sort {}", sort_keys(keys)),
        TableOp::Aggregate { mode, keys, aggs, .. } => format!(
            "Aggregate({mode:?}) by [{}]: {}",
            keys.join(", "),
            aggs.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
        ),
        TableOp::Join { how, left_on, right_on, .. } => format!(
            "Join {} on {}",
            how.as_str(),
            left_on.iter().zip(right_on).map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>().join(" AND ")
        ),
        TableOp::Sample { columns, rows } => format!("Sample {rows} rows of [{}]", columns.join(", ")),
        TableOp::Boundaries { keys, n } => format!("Boundaries of {n} ranges by {}", sort_keys(keys)),
        TableOp::Melt { rows, columns, .. } => format!(
            "Melt {} statistics of [{}]",
            rows.len(),
            columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Columns an SQL expression refers to, resolved against `schema`.
fn referenced_columns(sql: &str, schema: &SchemaRef) -> Result<BTreeSet<String>> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| Error::Schema(e.to_string()))?;
    let ctx = shoal_worker::ops::table::session::session();
    let expr = ctx
        .parse_sql_expr(sql, &df_schema)
        .map_err(|e| Error::Schema(format!("invalid expression '{sql}': {e}")))?;
    Ok(expr.column_refs().into_iter().map(|c| c.name.clone()).collect())
}

/// Rewrites a plan: projection pushdown (scans read only the columns later operators use),
/// predicate pushdown (filters right above a scan prune its row groups), then the choice of a
/// strategy for every aggregation and join, from estimated sizes.
pub fn optimize(plan: &Plan, config: &PlanConfig) -> Result<Plan> {
    let plan = push_projection(plan, None)?;
    let plan = push_predicates(&plan, &[]);
    choose_strategies(&plan, config)
}

/// Columns the SQL expressions refer to, resolved against `schema`.
fn referenced_all<'a>(
    sqls: impl IntoIterator<Item = &'a String>,
    schema: &SchemaRef,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for sql in sqls {
        out.extend(referenced_columns(sql, schema)?);
    }
    Ok(out)
}

fn with_keys(
    needed: Option<BTreeSet<String>>,
    keys: impl IntoIterator<Item = String>,
) -> Option<BTreeSet<String>> {
    needed.map(|mut n| {
        n.extend(keys);
        n
    })
}

fn names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// `needed`: columns required from this node's output (`None`: all of them).
fn push_projection(plan: &Plan, needed: Option<BTreeSet<String>>) -> Result<Plan> {
    match plan {
        Plan::Scan(scan) => {
            let mut scan = scan.clone();
            if let Some(needed) = needed {
                let cols: Vec<String> = scan
                    .file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .filter(|n| needed.contains(n))
                    .collect();
                // Keep at least one column so row counts survive (`SELECT count(*)`-like plans).
                let cols = if cols.is_empty() {
                    scan.file_schema.fields().iter().take(1).map(|f| f.name().clone()).collect()
                } else {
                    cols
                };
                if cols.len() < scan.file_schema.fields().len() {
                    scan.projection = Some(cols);
                }
            }
            Ok(Plan::Scan(scan))
        }
        Plan::Head { input, n } => Ok(Plan::Head { input: Arc::new(push_projection(input, needed)?), n: *n }),
        Plan::TopK { input, keys, n } => {
            let needed = with_keys(needed, keys.iter().map(|k| k.column.clone()));
            Ok(Plan::TopK { input: Arc::new(push_projection(input, needed)?), keys: keys.clone(), n: *n })
        }
        Plan::Sort { input, keys, npartitions, index } => {
            let needed = with_keys(needed, keys.iter().map(|k| k.column.clone()));
            Ok(Plan::Sort {
                input: Arc::new(push_projection(input, needed)?),
                keys: keys.clone(),
                npartitions: *npartitions,
                index: *index,
            })
        }
        Plan::Repartition { input, npartitions } => Ok(Plan::Repartition {
            input: Arc::new(push_projection(input, needed)?),
            npartitions: *npartitions,
        }),
        Plan::Aggregate(a) => {
            let input_schema = a.input.schema()?;
            let mut upstream = referenced_all(a.aggs.iter().map(|(_, e)| e), &input_schema)?;
            upstream.extend(a.keys.iter().cloned());
            let mut a = a.clone();
            a.input = Arc::new(push_projection(&a.input, Some(upstream))?);
            Ok(Plan::Aggregate(a))
        }
        Plan::Join(j) => push_projection_join(j, needed),
        Plan::Map { input, op, schema } => {
            let input_schema = input.schema()?;
            let upstream: Option<BTreeSet<String>> = match op {
                TableOp::Select { columns } => Some(columns.iter().cloned().collect()),
                TableOp::Filter { predicate } => needed
                    .map(|mut n| -> Result<_> {
                        n.extend(referenced_columns(predicate, &input_schema)?);
                        Ok(n)
                    })
                    .transpose()?,
                TableOp::Assign { columns } => match needed {
                    None => None,
                    Some(mut n) => {
                        // Later assignments may use earlier ones: walk them backwards.
                        for (name, sql) in columns.iter().rev() {
                            n.remove(name);
                            n.extend(referenced_columns(sql, schema)?);
                        }
                        Some(n)
                    }
                },
                TableOp::Head { .. } => needed,
                TableOp::Sort { keys } => with_keys(needed, keys.iter().map(|k| k.column.clone())),
                // User code may read any column; the others only appear in lowered plans.
                _ => None,
            };
            let input = Arc::new(push_projection(input, upstream)?);
            // Pruned inputs can change what a relational step outputs (a select-free chain
            // passes fewer columns on): re-derive it. A user function's output is its own.
            let schema = match op {
                TableOp::MapPartitions { .. } => schema.clone(),
                _ => shoal_worker::ops::table::output_schema(
                    input.schema()?,
                    std::slice::from_ref(op),
                    &Default::default(),
                )?,
            };
            Ok(Plan::Map { input, op: op.clone(), schema })
        }
    }
}

/// Projection pushdown through a join: each side keeps its keys and the columns the needed
/// output columns come from. A name on both sides is suffixed only while both sides have it:
/// whenever one side still delivers such a column (because it is needed, or because an
/// operator below passes it on), the other side keeps its copy too, so every surviving column
/// keeps the name the unpruned join gives it.
fn push_projection_join(j: &JoinNode, needed: Option<BTreeSet<String>>) -> Result<Plan> {
    let (lnames, rnames) = (names(&j.left.schema()?), names(&j.right.schema()?));
    let columns = shoal_worker::ops::table::join::join_columns(
        &lnames,
        &rnames,
        j.how,
        &j.left_on,
        &j.right_on,
        &j.suffixes,
    );
    let mut left: BTreeSet<String> = j.left_on.iter().cloned().collect();
    let mut right: BTreeSet<String> = j.right_on.iter().cloned().collect();
    for c in columns.into_iter().filter(|c| needed.as_ref().is_none_or(|n| n.contains(&c.name))) {
        left.extend(c.left);
        right.extend(c.right);
    }
    let shared: BTreeSet<&String> =
        j.left_on.iter().zip(&j.right_on).filter(|(l, r)| l == r).map(|(l, _)| l).collect();
    let suffixed: Vec<&String> = match j.how {
        JoinHow::Semi | JoinHow::Anti => vec![],
        _ => lnames.iter().filter(|n| rnames.contains(n) && !shared.contains(n)).collect(),
    };
    // Each round adds at least one column, or ends: at most `suffixed.len()` extra rounds.
    loop {
        let l = push_projection(&j.left, Some(left.clone()))?;
        let r = push_projection(&j.right, Some(right.clone()))?;
        let (ls, rs) = (names(&l.schema()?), names(&r.schema()?));
        let mut grew = false;
        for n in &suffixed {
            match (ls.contains(n), rs.contains(n)) {
                (true, false) => grew |= right.insert((*n).clone()),
                (false, true) => grew |= left.insert((*n).clone()),
                _ => {}
            }
        }
        if !grew {
            let mut j = j.clone();
            j.left = Arc::new(l);
            j.right = Arc::new(r);
            // Pruned inputs change the join's unused columns, not its output: re-derive it.
            j.schema = join_schema(&j)?;
            return Ok(Plan::Join(j));
        }
    }
}

/// The output schema of a join node's inputs joined.
pub fn join_schema(j: &JoinNode) -> Result<SchemaRef> {
    let op = TableOp::Join {
        port: 1,
        how: j.how,
        left_on: j.left_on.clone(),
        right_on: j.right_on.clone(),
        suffixes: j.suffixes.clone(),
    };
    let sides = std::collections::BTreeMap::from([(1, j.right.schema()?)]);
    Ok(shoal_worker::ops::table::output_schema(j.left.schema()?, &[op], &sides)?)
}

/// Collects filters on the way down; a scan directly below them (through selects and other
/// filters only) prunes by their conjunction. The filters stay in place: pruning only skips row
/// groups that cannot match, it never changes the answer.
fn push_predicates(plan: &Plan, pending: &[String]) -> Plan {
    let arc = |p: &Arc<Plan>| Arc::new(push_predicates(p, &[]));
    match plan {
        Plan::Scan(scan) => {
            let mut scan = scan.clone();
            if !pending.is_empty() && matches!(scan.format, FileFormat::Parquet) {
                let mut all: Vec<String> = scan.predicate.iter().cloned().collect();
                all.extend(pending.iter().map(|p| format!("({p})")));
                scan.predicate = Some(all.join(" AND "));
            }
            Plan::Scan(scan)
        }
        Plan::Map { input, op, schema } => {
            let below = match op {
                TableOp::Filter { predicate } => {
                    let mut v = pending.to_vec();
                    v.push(predicate.clone());
                    v
                }
                TableOp::Select { .. } => pending.to_vec(),
                _ => Vec::new(),
            };
            Plan::Map {
                input: Arc::new(push_predicates(input, &below)),
                op: op.clone(),
                schema: schema.clone(),
            }
        }
        Plan::Head { input, n } => Plan::Head { input: arc(input), n: *n },
        Plan::TopK { input, keys, n } => Plan::TopK { input: arc(input), keys: keys.clone(), n: *n },
        // Filters commute with repartitioning: prune below it too. Not below a sort: its
        // boundaries are sampled from all rows (the divisions of an index stay its own); a
        // filter right above a sort prunes the scans of its map tasks when lowered.
        Plan::Sort { input, keys, npartitions, index } => {
            Plan::Sort { input: arc(input), keys: keys.clone(), npartitions: *npartitions, index: *index }
        }
        Plan::Repartition { input, npartitions } => {
            Plan::Repartition { input: Arc::new(push_predicates(input, pending)), npartitions: *npartitions }
        }
        Plan::Aggregate(a) => {
            let mut a = a.clone();
            a.input = arc(&a.input);
            Plan::Aggregate(a)
        }
        Plan::Join(j) => {
            let mut j = j.clone();
            j.left = arc(&j.left);
            j.right = arc(&j.right);
            Plan::Join(j)
        }
    }
}

/// Chooses, bottom-up, how each aggregation and join is distributed.
fn choose_strategies(plan: &Plan, config: &PlanConfig) -> Result<Plan> {
    let arc = |p: &Arc<Plan>| -> Result<Arc<Plan>> { Ok(Arc::new(choose_strategies(p, config)?)) };
    Ok(match plan {
        Plan::Scan(_) => plan.clone(),
        Plan::Map { input, op, schema } => {
            Plan::Map { input: arc(input)?, op: op.clone(), schema: schema.clone() }
        }
        Plan::Head { input, n } => Plan::Head { input: arc(input)?, n: *n },
        Plan::TopK { input, keys, n } => Plan::TopK { input: arc(input)?, keys: keys.clone(), n: *n },
        Plan::Sort { input, keys, npartitions, index } => {
            Plan::Sort { input: arc(input)?, keys: keys.clone(), npartitions: *npartitions, index: *index }
        }
        Plan::Repartition { input, npartitions } => {
            Plan::Repartition { input: arc(input)?, npartitions: *npartitions }
        }
        Plan::Aggregate(a) => {
            let mut a = a.clone();
            a.input = arc(&a.input)?;
            a.strategy = Some(aggregate_strategy(&a, config));
            Plan::Aggregate(a)
        }
        Plan::Join(j) => {
            let mut j = j.clone();
            j.left = arc(&j.left)?;
            j.right = arc(&j.right)?;
            j.strategy = Some(join_strategy(&j, config)?);
            Plan::Join(j)
        }
    })
}

fn aggregate_strategy(a: &AggregateNode, config: &PlanConfig) -> (AggStrategy, String) {
    let tree = AggStrategy::Tree { split_every: a.split_every.unwrap_or(config.split_every).max(2) };
    if let Some(n) = a.split_out {
        if n > 1 && !a.keys.is_empty() {
            return (AggStrategy::Shuffle { split_out: n }, format!("split_out={n} requested"));
        }
        return (tree, "split_out=1 requested".into());
    }
    if a.keys.is_empty() {
        return (tree, "whole-table reduction".into());
    }
    match a.input.estimated_groups(&a.keys) {
        Some(groups) if groups > config.tree_max_groups => {
            let want = groups.div_ceil(config.tree_max_groups.max(1)) as usize;
            let split_out = want.clamp(2, a.input.partitions().max(2));
            let why = format!(
                "up to {groups} groups (from column statistics), more than the tree limit of {}",
                config.tree_max_groups
            );
            (AggStrategy::Shuffle { split_out }, why)
        }
        Some(groups) => (tree, format!("at most {groups} groups (from column statistics)")),
        None => (tree, "group count unknown; set split_out for many groups".into()),
    }
}

fn join_strategy(j: &JoinNode, config: &PlanConfig) -> Result<(JoinStrategy, String)> {
    let (lb, rb) = (j.left.estimated_bytes(), j.right.estimated_bytes());
    let right_ok = matches!(j.how, JoinHow::Inner | JoinHow::Left | JoinHow::Semi | JoinHow::Anti);
    let left_ok = matches!(j.how, JoinHow::Inner | JoinHow::Right);
    let aligned = match (j.left.hash_partitioning(), j.right.hash_partitioning()) {
        (Some((lk, ln)), Some((rk, rn))) => lk == j.left_on && rk == j.right_on && ln == rn,
        _ => false,
    };
    // The left side is indexed by the (single) join key: align the right to its divisions.
    let indexed = j.left_on.len() == 1
        && matches!(&*j.left, Plan::Sort { keys, index: true, .. } if keys.len() == 1 && keys[0].column == j.left_on[0]);
    let hash = || {
        let n = j.npartitions.unwrap_or_else(|| j.left.partitions().max(j.right.partitions())).max(1);
        JoinStrategy::Hash { npartitions: n }
    };
    let how = j.how.as_str();
    match j.hint {
        Some(JoinHint::Broadcast) if right_ok => Ok((JoinStrategy::BroadcastRight, "requested".into())),
        Some(JoinHint::Broadcast) if left_ok => Ok((JoinStrategy::BroadcastLeft, "requested".into())),
        Some(JoinHint::Broadcast) => Err(Error::Invalid(format!(
            "merge: a broadcast join cannot compute how='{how}' (every row of both sides must be kept); \
             use strategy 'hash'"
        ))),
        Some(JoinHint::PartitionWise) if aligned => Ok((JoinStrategy::PartitionWise, "requested".into())),
        Some(JoinHint::PartitionWise) if indexed => Ok((
            JoinStrategy::Divisions,
            "requested; the left side is indexed by the key, the right is shuffled to its divisions".into(),
        )),
        Some(JoinHint::PartitionWise) => Err(Error::Invalid(
            "merge: a partition-wise join needs both sides hash-partitioned on the join keys into the \
             same number of partitions (for example both shuffled aggregations by those keys), or \
             the left side indexed by the key (set_index)"
                .into(),
        )),
        Some(JoinHint::Hash) => Ok((hash(), "requested".into())),
        None if aligned => Ok((
            JoinStrategy::PartitionWise,
            "both sides are hash-partitioned on the keys into the same partitions".into(),
        )),
        None if right_ok && rb <= config.broadcast_bytes => Ok((
            JoinStrategy::BroadcastRight,
            format!(
                "right side ~{} ≤ broadcast limit {}",
                human_bytes(rb),
                human_bytes(config.broadcast_bytes)
            ),
        )),
        None if indexed => Ok((
            JoinStrategy::Divisions,
            format!(
                "the left side is indexed by {}: the right side is range-shuffled to its divisions",
                j.left_on[0]
            ),
        )),
        None if left_ok && lb <= config.broadcast_bytes => Ok((
            JoinStrategy::BroadcastLeft,
            format!(
                "left side ~{} ≤ broadcast limit {}",
                human_bytes(lb),
                human_bytes(config.broadcast_bytes)
            ),
        )),
        None => Ok((
            hash(),
            format!("sides ~{} and ~{}, too large to broadcast", human_bytes(lb), human_bytes(rb)),
        )),
    }
}
