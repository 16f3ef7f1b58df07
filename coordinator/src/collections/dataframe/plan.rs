//! The DataFrame's logical plan: a tree of operators over scans, with what planning can tell
//! about each node (schema, partitions, estimated groups, index, hash partitioning; its
//! estimated rows and bytes are the `estimate` module's).
//!
//! Per-partition operators (`Map`) keep the partitioning of their input; the others (`Head`,
//! `TopK`, `Aggregate`, `Join`, `Sort`, `Repartition`) change it, and so start a new stage when
//! lowered. Passes over the tree rebuild nodes through [`Plan::map_children`], the one place
//! that knows where each node keeps its inputs.

use super::read::values::SampledValues;
use crate::error::{Error, Result};
use arrow::datatypes::{DataType, SchemaRef};
use shoal_protocol::{FileFormat, FileSlice, JoinHow, ModuleRef, ObjectRef, SortKey, TableOp};
use std::collections::HashMap;
use std::sync::Arc;

/// One file of a scan, as planned from its footer (Parquet) or listing.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub object: ObjectRef,
    /// Compressed bytes and rows of each row group (Parquet); empty for other formats.
    pub row_groups: Vec<(u64, u64)>,
    /// Per row group (Parquet; empty for other formats), `(min, max)` of each integer-typed
    /// column (INT32/INT64 physical type) the statistics bound and show without nulls: what
    /// the key ranges of partitions are built from (`ranges.rs`).
    pub int_bounds: Vec<HashMap<String, (i64, i64)>>,
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
    /// Distinct values of string columns (a sample when the writer gave up on a dictionary),
    /// from the first file's dictionary pages: what a condition on one of them keeps is
    /// estimated on them ([`values`](super::read::values)).
    pub string_values: SampledValues,
    /// Whether workers read every file as `file_schema` (CSV and JSON, whose files carry no
    /// types; Parquet files of evolved schemas, widened to their union) rather than as the
    /// schema each file has.
    pub schema_on_read: bool,
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
    /// Whether chains of inner joins may run in another order than written, and an inner
    /// join's sides swap, where the estimated work is less (`reorder.rs`).
    pub reorder_joins: bool,
    /// Estimated bytes of both sides a hash join's partition is sized for: a hash join runs in
    /// as many partitions as its sides need at this size (and its build side at
    /// `broadcast_bytes`), at least `min_shuffle_partitions`, at most the larger side's.
    pub shuffle_partition_bytes: u64,
    /// Fewest partitions a hash join is sized down to (where its larger side has more).
    pub min_shuffle_partitions: usize,
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self {
            broadcast_bytes: 64_000_000,
            tree_max_groups: 1_000_000,
            split_every: 8,
            reorder_joins: true,
            shuffle_partition_bytes: 128_000_000,
            min_shuffle_partitions: 8,
        }
    }
}

/// How an aggregation is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggStrategy {
    /// Partial aggregates per partition, merged `split_every` at a time into one partition.
    Tree { split_every: usize },
    /// Partial aggregates hash-shuffled on the keys into `split_out` partitions.
    Shuffle { split_out: usize },
    /// Each input partition holds whole groups (its values of a key lie in a range no other
    /// partition's reach): one step per partition, the partitions kept.
    Local,
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
    /// The partitions of both sides hold known ranges of a key: partition i of the left reads
    /// the right partitions whose ranges overlap its own; nothing is shuffled.
    Ranges,
}

impl JoinStrategy {
    pub fn name(self) -> &'static str {
        match self {
            JoinStrategy::BroadcastRight | JoinStrategy::BroadcastLeft => "broadcast",
            JoinStrategy::PartitionWise => "partition-wise",
            JoinStrategy::Divisions => "divisions",
            JoinStrategy::Hash { .. } => "hash",
            JoinStrategy::Ranges => "ranges",
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
    /// The estimated work of the chosen strategy, in bytes (`JoinCost::total`); `None` until
    /// chosen, and for a strategy the user asked for.
    pub cost: Option<u64>,
}

impl JoinNode {
    /// The output schema of this join's inputs joined.
    pub fn output_schema(&self) -> Result<SchemaRef> {
        let op = TableOp::Join {
            port: 1,
            how: self.how,
            left_on: self.left_on.clone(),
            right_on: self.right_on.clone(),
            suffixes: self.suffixes.clone(),
            build: Default::default(),
        };
        let sides = std::collections::BTreeMap::from([(1, self.right.schema()?)]);
        Ok(shoal_worker::ops::table::output_schema(self.left.schema()?, &[op], &sides)?)
    }
}

/// A per-partition step a DataFrame method records (the op of a [`Plan::Map`]). Lowering turns
/// it into the table operator workers run ([`MapOp::to_table_op`]); operators that exist only
/// in task pipelines (aggregation modes, joins on ports, samples, boundaries) cannot be
/// recorded here.
#[derive(Debug, Clone, PartialEq)]
pub enum MapOp {
    /// Keep rows where the SQL predicate is true.
    Filter { predicate: String },
    /// Keep these columns, in this order.
    Select { columns: Vec<String> },
    /// Add or replace columns, in order (a later one may use an earlier one).
    Assign { columns: Vec<(String, String)> },
    /// A user function over the whole partition.
    MapPartitions { module: ModuleRef, function: String, args: serde_json::Value },
    /// Row-wise `apply`: a user function of each row, adding the `output` columns.
    Apply { function: shoal_protocol::FunctionRef, output: Vec<shoal_protocol::Field> },
    /// A one-row table of statistics as one row per statistic (`describe`).
    Melt { id: String, rows: Vec<String>, columns: Vec<(String, Vec<String>)> },
}

impl MapOp {
    /// The table operator that runs this step.
    pub fn to_table_op(&self) -> TableOp {
        match self.clone() {
            MapOp::Filter { predicate } => TableOp::Filter { predicate },
            MapOp::Select { columns } => TableOp::Select { columns },
            MapOp::Assign { columns } => TableOp::Assign { columns },
            MapOp::MapPartitions { module, function, args } => {
                TableOp::MapPartitions { module, function, args }
            }
            MapOp::Melt { id, rows, columns } => TableOp::Melt { id, rows, columns },
            MapOp::Apply { function, output } => TableOp::Apply { function, output },
        }
    }
}

/// A node of the logical plan.
#[derive(Debug, Clone)]
pub enum Plan {
    Scan(ScanNode),
    /// The result of another collection (a Bag's `to_dataframe`): a graph lowered already,
    /// whose outputs are this node's partitions.
    Graph(Arc<GraphSource>),
    /// A per-partition operator; `schema` is its validated output schema.
    Map {
        input: Arc<Plan>,
        op: MapOp,
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
    /// A subplan the query uses more than once, computed once: its rows, in its partitions,
    /// are written by one stage that every use reads (the optimizer's `shared` pass).
    Shared {
        input: Arc<Plan>,
    },
}

/// Another collection's lowered graph, as the source of a DataFrame.
#[derive(Debug, Clone)]
pub struct GraphSource {
    /// What it is, for `explain` (`bag to_dataframe`).
    pub name: String,
    pub graph: crate::graph::TaskGraph,
    /// The schema of every output partition.
    pub schema: SchemaRef,
    pub estimated_bytes: u64,
}

impl Plan {
    /// A relational step over `input`, its output schema derived by the worker's own code (a
    /// user function's, found by calling it, is recorded by the caller instead).
    pub fn map(input: Arc<Plan>, op: MapOp) -> Result<Plan> {
        let rows = input.schema()?;
        let schema = shoal_worker::ops::table::output_schema(rows, &[op.to_table_op()], &Default::default())?;
        Ok(Plan::Map { input, op, schema })
    }

    /// The node's inputs, in order (a join's left, then its right).
    pub fn children(&self) -> Vec<&Arc<Plan>> {
        match self {
            Plan::Scan(_) | Plan::Graph(_) => vec![],
            Plan::Map { input, .. }
            | Plan::Head { input, .. }
            | Plan::TopK { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Repartition { input, .. }
            | Plan::Shared { input } => vec![input],
            Plan::Aggregate(a) => vec![&a.input],
            Plan::Join(j) => vec![&j.left, &j.right],
        }
    }

    /// This node rebuilt over `f` of each of its inputs, everything else kept: the one walk
    /// optimizer passes share. (A node whose schema depends on its inputs' keeps the one it
    /// had; a pass that changes input schemas re-derives it.)
    pub fn map_children(&self, mut f: impl FnMut(&Plan) -> Result<Plan>) -> Result<Plan> {
        let mut f = |p: &Arc<Plan>| f(p).map(Arc::new);
        Ok(match self {
            Plan::Scan(_) | Plan::Graph(_) => self.clone(),
            Plan::Map { input, op, schema } => {
                Plan::Map { input: f(input)?, op: op.clone(), schema: schema.clone() }
            }
            Plan::Head { input, n } => Plan::Head { input: f(input)?, n: *n },
            Plan::TopK { input, keys, n } => Plan::TopK { input: f(input)?, keys: keys.clone(), n: *n },
            Plan::Sort { input, keys, npartitions, index } => {
                Plan::Sort { input: f(input)?, keys: keys.clone(), npartitions: *npartitions, index: *index }
            }
            Plan::Repartition { input, npartitions } => {
                Plan::Repartition { input: f(input)?, npartitions: *npartitions }
            }
            Plan::Shared { input } => Plan::Shared { input: f(input)? },
            Plan::Aggregate(a) => Plan::Aggregate(AggregateNode { input: f(&a.input)?, ..a.clone() }),
            Plan::Join(j) => {
                let (left, right) = (f(&j.left)?, f(&j.right)?);
                Plan::Join(JoinNode { left, right, ..j.clone() })
            }
        })
    }

    pub fn schema(&self) -> Result<SchemaRef> {
        match self {
            Plan::Scan(s) => s.schema(),
            Plan::Graph(g) => Ok(g.schema.clone()),
            Plan::Map { schema, .. } => Ok(schema.clone()),
            Plan::Head { input, .. }
            | Plan::TopK { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Repartition { input, .. }
            | Plan::Shared { input } => input.schema(),
            Plan::Aggregate(a) => Ok(a.schema.clone()),
            Plan::Join(j) => Ok(j.schema.clone()),
        }
    }

    /// Number of output partitions (of an optimized plan: it depends on chosen strategies).
    pub fn partitions(&self) -> usize {
        match self {
            Plan::Scan(s) => s.partitions.len(),
            Plan::Graph(g) => g.graph.outputs.len(),
            Plan::Map { input, .. } | Plan::Shared { input } => input.partitions(),
            Plan::Head { .. } | Plan::TopK { .. } => 1,
            Plan::Aggregate(a) => match a.strategy {
                Some((AggStrategy::Shuffle { split_out }, _)) => split_out,
                Some((AggStrategy::Local, _)) => a.input.partitions(),
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
            Plan::Map { input, op, .. } if keeps_values(op, keys) => input.estimated_groups(keys),
            Plan::Sort { input, .. } | Plan::Repartition { input, .. } | Plan::Shared { input } => {
                input.estimated_groups(keys)
            }
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
            Plan::Shared { input } => input.index(),
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
            Plan::Shared { input } => input.hash_partitioning(),
            _ => None,
        }
    }
}

/// Whether a per-partition operator passes `columns` through with their values unchanged on
/// every row it keeps, so that what is known about them (distinct counts, partitioning, an
/// index) still holds after it.
pub(super) fn keeps_values(op: &MapOp, columns: &[String]) -> bool {
    match op {
        MapOp::Filter { .. } => true,
        MapOp::Select { columns: kept } => columns.iter().all(|c| kept.contains(c)),
        MapOp::Assign { columns: assigned } => !assigned.iter().any(|(c, _)| columns.contains(c)),
        MapOp::Apply { output, .. } => !output.iter().any(|f| columns.contains(&f.name)),
        MapOp::MapPartitions { .. } | MapOp::Melt { .. } => false,
    }
}
