//! The wire contract between the shoal coordinator and its workers, and nothing else.
//!
//! Layout:
//! - [`TaskSpec`]: everything a stateless worker needs to run one partition task, as versioned
//!   JSON small enough for a cloud-function payload. Inputs are references to objects, never data.
//! - [`Operator`]: the per-partition operators a worker fuses into one pipeline, by family
//!   ([`TableOp`] for Arrow tables; the families of other collections go beside it). Expressions
//!   travel as SQL expression strings, parsed by the worker against the input schema.
//! - [`TaskResult`] / [`TaskFailure`]: what comes back. A failure is [`FailureKind::Retryable`]
//!   (transient: storage hiccups, a killed worker) or [`FailureKind::Fatal`] (deterministic:
//!   bad expression, user-code trap), and names the task and input it concerns.
//! - [`Manifest`]: the commit record written create-if-absent at `commits/<task_key>.json`.
//! - [`layout`]: the object names under a job root, shared by every writer and reader.
//!
//! This crate does no I/O.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Version of the JSON wire format. A worker refuses specs with another version.
pub mod chunks;
pub use chunks::{
    ArrayReduction, BinaryOp, CHUNK_COLUMN, ChunkExpr, ChunkOp, DType, Piece, SHAPE_METADATA, Scalar,
    SliceDim, UnaryOp,
};

pub const PROTOCOL_VERSION: u32 = 6;

/// Content-addressed identity of a task: hex SHA-256 of its canonical description.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskKey(pub String);

impl TaskKey {
    /// Hashes any serialisable value (canonical JSON: maps are ordered) into a key, prefixed
    /// with a human-readable name such as `scan-filter`.
    pub fn derive<T: Serialize>(name: &str, value: &T) -> Self {
        let mut hasher = Sha256::new();
        // serde_json on plain structs and BTreeMaps is deterministic.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
        let digest = hasher.finalize();
        TaskKey(format!("{name}-{}", &hex::encode(digest)[..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identity of one stored object, as observed when the job was planned. The worker refuses to
/// read an object whose size (or ETag, where known) has changed since.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Absolute URL: `file:///abs/path`, `s3://bucket/key` or `memory:///key`.
    pub url: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

/// Non-secret storage settings a worker needs to reach the job's stores. Credentials never
/// travel in a task: workers take them from their own environment (or role).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StorageOptions {
    /// Endpoint override for S3-compatible servers (LocalStack, MinIO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A named profile of the shared AWS config files (`--profile`, as the AWS CLI's): S3
    /// credentials, region and endpoint come from it, not from the environment. Only a name
    /// travels; each worker reads its own files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// CSV reading options. Every field but the first three is left out of the JSON when it has
/// its default, so specs of plain CSV reads (and their task keys) are what they were.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CsvOptions {
    #[serde(default = "default_true")]
    pub has_header: bool,
    #[serde(default = "default_delimiter")]
    pub delimiter: u8,
    /// Whole fields read as missing, in every column (default: pandas' list, [`PANDAS_NA`]).
    /// An empty field is missing only if `""` is listed.
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// The quote character (default `"`); a quote inside a quoted field is written twice.
    #[serde(default = "default_quote", skip_serializing_if = "is_default_quote")]
    pub quote: u8,
    /// A character that makes the next one literal inside quotes (pandas' `escapechar`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<u8>,
    /// Lines starting with this character are skipped (pandas' `comment`, at line starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<u8>,
    /// Lines skipped at the start of each file, before the header (pandas' `skiprows = N`).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub skip_rows: usize,
    /// The text encoding, as a label (`latin-1`, `cp1252`, `utf-16`, …); `None` is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Whole fields read as missing in one column only, besides `null_values` (pandas'
    /// `na_values` as a dict).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub column_null_values: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            has_header: true,
            delimiter: b',',
            null_values: default_null_values(),
            quote: b'"',
            escape: None,
            comment: None,
            skip_rows: 0,
            encoding: None,
            column_null_values: std::collections::BTreeMap::new(),
        }
    }
}

fn default_quote() -> u8 {
    b'"'
}
fn is_default_quote(q: &u8) -> bool {
    *q == b'"'
}
fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

/// JSON reading options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JsonOptions {
    /// One JSON object per line (JSON lines, splittable) rather than one JSON array per file.
    #[serde(default = "default_true")]
    pub lines: bool,
    /// The text encoding, as for CSV; `None` is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// The strings pandas' `read_csv` reads as missing by default (`keep_default_na=True`): what R,
/// pandas, spreadsheets and many public data sets write for a missing value.
pub const PANDAS_NA: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn default_null_values() -> Vec<String> {
    PANDAS_NA.iter().map(|s| s.to_string()).collect()
}

fn default_true() -> bool {
    true
}
fn default_delimiter() -> u8 {
    b','
}

/// File formats a worker scans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum FileFormat {
    Parquet,
    Csv(CsvOptions),
    /// JSON lines or a JSON array of objects; nested objects are structs.
    Json(JsonOptions),
    /// Arrow IPC file, the format of intermediates between stages.
    ArrowIpc,
    /// Text files as Bag items, one per line (terminators stripped), into [`ITEM_COLUMN`].
    Lines(LinesOptions),
}

/// How [`FileFormat::Lines`] turns lines into items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinesOptions {
    /// Each line is a JSON value (JSON lines) rather than a string.
    #[serde(default)]
    pub json: bool,
    /// Lines that are not valid JSON are skipped (and counted) rather than an error.
    #[serde(default)]
    pub skip_errors: bool,
    /// The text encoding, as for CSV; `None` is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// A field of a schema, as the coordinator inferred it when planning. Used to hold every
/// partition of a dataset to one schema (CSV inference, empty partitions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    /// Arrow data type in its `Display` form, e.g. `Int64`, `Utf8`, `Timestamp(µs, None)`.
    pub data_type: String,
    pub nullable: bool,
}

/// One input of a task: a set of files (or row groups of files) read as one partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// Files in object storage.
    Scan {
        format: FileFormat,
        files: Vec<FileSlice>,
        /// Columns to read; `None` reads all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        projection: Option<Vec<String>>,
        /// A predicate (SQL) used to prune row groups and pages; rows are still filtered by
        /// the pipeline's `filter`, so pruning never changes the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        predicate: Option<String>,
        /// Schema every file is read as (CSV, JSON, and Parquet files of evolved schemas,
        /// which are widened to it); `None` uses the file's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Vec<Field>>,
        /// The table the files feed (see [`Input::Upstream::port`]): 0, the main table, or a
        /// side table read straight from its files (a join side that is only a scan).
        #[serde(default, skip_serializing_if = "is_zero")]
        port: u32,
    },
    /// The committed output of an upstream task. The coordinator resolves it to the objects
    /// listed in that task's manifest before the spec is sent.
    Upstream {
        task_key: TaskKey,
        #[serde(default)]
        objects: Vec<ObjectRef>,
        /// Read only this bucket of a shuffle map task's output ([`Output::Shuffle`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bucket: Option<u32>,
        /// The bucket's byte range in each of `objects` (resolved with them, from the
        /// manifest's [`Manifest::buckets`]); the worker fetches only these ranges.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ranges: Vec<ByteRange>,
        /// The table this input feeds: 0 is the task's main input, others are side tables
        /// (the right side of a join, the boundaries of a range shuffle).
        #[serde(default, skip_serializing_if = "is_zero")]
        port: u32,
        /// The schema of an upstream output that has no objects (a task that was skipped
        /// because all its inputs were empty): the worker reads it as an empty table.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Vec<Field>>,
    },
    /// A region of a Zarr array (v3, or v2), read as one chunk table ([`chunks`]).
    Zarr {
        /// URL of the array (the directory holding its `zarr.json` or `.zarray`).
        array: String,
        /// `start..end` per dimension.
        region: Vec<[u64; 2]>,
        #[serde(default, skip_serializing_if = "is_zero")]
        port: u32,
    },
}

impl Input {
    /// The table this input feeds (see [`Input::Upstream::port`]).
    pub fn port(&self) -> u32 {
        match self {
            Input::Scan { port, .. } | Input::Upstream { port, .. } | Input::Zarr { port, .. } => *port,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A contiguous byte range of an object holding one shuffle bucket (a self-contained,
/// compressed Arrow IPC stream). `len == 0` means the bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
    pub rows: u64,
}

/// A file, a subset of its Parquet row groups, or a block of a text file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileSlice {
    pub object: ObjectRef,
    /// Row groups to read (Parquet); `None` reads the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_groups: Option<Vec<usize>>,
    /// A byte block of a text file (CSV, JSON lines); `None` reads the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Block>,
}

impl FileSlice {
    /// The whole of `object`.
    pub fn whole(object: ObjectRef) -> Self {
        Self { object, row_groups: None, block: None }
    }
}

/// Bytes `start..end` of a text file, as planned: the worker reads the records that *start*
/// in the block, that is from the first line start at or after `start` (byte 0 for the first
/// block) up to the first record end at or after `end`, so consecutive blocks cover every
/// record exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Block {
    pub start: u64,
    pub end: u64,
}

/// A WebAssembly component holding user functions, stored content-addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModuleRef {
    pub object: ObjectRef,
    /// Hex SHA-256 of the component bytes; the cache key of the compiled artifact.
    pub sha256: String,
}

/// One step of a task's pipeline, applied in order to the task's input. Operators come in
/// families, one per kind of data a task carries; a family is what the worker dispatches on,
/// and the graph, scheduler and executors never look inside one.
///
/// On the wire an operator is one flat object: `{"family": "table", "op": "filter", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operator {
    /// Operators over Arrow tables: DataFrame partitions.
    Table(TableOp),
    /// Operators over items (JSON values, one per row of an [`ITEM_COLUMN`] text column): Bag
    /// partitions.
    Items(ItemOp),
    /// Calls of user functions on whole values: Delayed.
    Calls(CallOp),
    /// Operators over chunks of n-dimensional arrays: Array ([`chunks`]).
    Chunks(ChunkOp),
}

impl Operator {
    /// The family's name, as on the wire.
    pub fn family(&self) -> &'static str {
        match self {
            Operator::Table(_) => "table",
            Operator::Items(_) => "items",
            Operator::Calls(_) => "calls",
            Operator::Chunks(_) => "chunks",
        }
    }
}

impl From<TableOp> for Operator {
    fn from(op: TableOp) -> Self {
        Operator::Table(op)
    }
}

impl From<ItemOp> for Operator {
    fn from(op: ItemOp) -> Self {
        Operator::Items(op)
    }
}

impl From<CallOp> for Operator {
    fn from(op: CallOp) -> Self {
        Operator::Calls(op)
    }
}

/// What a user function works on, as its component's `list-functions` declares it (the
/// `kind` of `shoal:function@0.2.0`; every function of a 0.1 component is `Table`). The kind
/// fixes the bytes of a call:
///
/// - `Table`: each input is an Arrow IPC stream; the output is one.
/// - `Items`: the input is a JSON array of items; the output is a JSON array with one value per
///   item, in order (the mapped item, a predicate's verdict, a row's new values).
/// - `Binop`: the input is a JSON array of `[accumulator, [item, ...]]` pairs; the output is a
///   JSON array of the accumulators after folding each pair's items in, left to right.
/// - `Value`: each input is one JSON value (a call's positional arguments); the output is one.
///
/// One call carries a batch, never a single item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKind {
    Table,
    Items,
    Binop,
    Value,
}

impl FunctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Table => "table",
            FunctionKind::Items => "items",
            FunctionKind::Binop => "binop",
            FunctionKind::Value => "value",
        }
    }
}

/// One function of one component, with the JSON keyword arguments it is called with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionRef {
    pub module: ModuleRef,
    pub function: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub args: serde_json::Value,
}

/// The column that carries a Bag partition's items: UTF-8 JSON text, one item per row.
pub const ITEM_COLUMN: &str = "item";

/// A path into an item: object keys and list indices, `a.b.0` in the user's notation.
pub type ItemPath = Vec<PathStep>;

/// One step of an [`ItemPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathStep {
    Index(usize),
    Key(String),
}

/// What a Bag groups or ranks by: a field of the item, or a user function of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ItemKey {
    /// The whole item.
    Item,
    Path {
        path: ItemPath,
    },
    Function {
        function: FunctionRef,
    },
}

/// Per-partition operators over items (the `items` family).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ItemOp {
    /// Each item replaced by an `Items` function's value for it.
    Map { function: FunctionRef },
    /// Items for which an `Items` function's value is truthy (`keep`) or falsy (not `keep`).
    Filter { function: FunctionRef, keep: bool },
    /// Items for which an SQL-like predicate over their fields is true (`keep`) or not true.
    Where { predicate: String, keep: bool },
    /// Each item, which must be a list, replaced by its elements.
    Flatten,
    /// Each item replaced by the value at `path`; `default` for a missing one, else an error.
    Pluck {
        path: ItemPath,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<serde_json::Value>,
    },
    /// The partition's items as one JSON array, given to an `Items` function that returns the
    /// partition's new items (any number).
    MapPartitions { function: FunctionRef },
    /// The first `n` items.
    Take { n: usize },
    /// A table's rows as JSON objects (DataFrame → Bag).
    FromRows,
    /// Items as rows of a table with `schema` (Bag → DataFrame); an item that does not fit is
    /// one error naming it and the field.
    ToRows { schema: Vec<Field> },
    /// One step of a tree reduction; partial states travel as items too.
    Reduce { reduction: Box<ItemReduction>, step: ReduceStep },
    /// Ends a run: the items, plus a [`KEY_COLUMN`] with each item's key (its canonical JSON
    /// text), for a hash shuffle by key (Bag `groupby`).
    Keyed { key: ItemKey },
    /// The items grouped by `key`: `[key, [item, ...]]` items, groups in first-seen order.
    GroupBy { key: ItemKey },
}

/// The column of an [`ItemOp::Keyed`] output that a shuffle by key hashes.
pub const KEY_COLUMN: &str = "key";

/// Where in a tree reduction a task is: `Partial` turns items into a state, `Combine` merges
/// states into one, `Final` merges states and turns the result into items. A single partition
/// runs `Partial` then `Final`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReduceStep {
    Partial,
    Combine,
    Final,
}

/// Reductions over items, each a tree (`split_every`) as in `dask.bag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "reduction", rename_all = "snake_case")]
pub enum ItemReduction {
    Count,
    /// `sum`, `min`, `max` or `mean` of the numbers at `path` (the item itself when empty);
    /// nulls and missing values are skipped.
    Numeric {
        stat: NumericStat,
        path: ItemPath,
    },
    /// Distinct items, in first-seen order.
    Distinct,
    /// `[item, count]` pairs; sorted by count, highest first, when `sort`.
    Frequencies {
        sort: bool,
    },
    /// The `k` largest items by `key` (or the `k` smallest when not `largest`).
    TopK {
        k: usize,
        key: ItemKey,
        largest: bool,
    },
    /// `binop` (a `Binop` function) folds each partition from `initial`; `combine` (a `Binop`
    /// function, `binop` when absent) folds the partitions' results from `combine_initial`.
    Fold {
        binop: FunctionRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        combine: Option<FunctionRef>,
        initial: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        combine_initial: Option<serde_json::Value>,
    },
    /// As `Fold`, per group of `key`; the result is `[key, value]` items.
    FoldBy {
        key: ItemKey,
        binop: FunctionRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        combine: Option<FunctionRef>,
        initial: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        combine_initial: Option<serde_json::Value>,
    },
    /// `per_partition` (an `Items` function given the partition's items as one list, returning
    /// one value) then `aggregate` (given the list of those values, returning the result).
    Custom {
        per_partition: FunctionRef,
        aggregate: FunctionRef,
    },
}

/// The statistic of [`ItemReduction::Numeric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumericStat {
    Sum,
    Min,
    Max,
    Mean,
}

/// Operators of Delayed values (the `calls` family). A value travels as a one-row table whose
/// [`ITEM_COLUMN`] holds the value as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CallOp {
    /// Calls a `Value` function with `args`, in order, as its positional inputs.
    Call { function: FunctionRef, args: Vec<CallArg> },
}

/// One positional argument of a [`CallOp::Call`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallArg {
    /// A JSON literal.
    Literal { value: serde_json::Value },
    /// The value on input port `port`: a Delayed value, or a collection's computed result (a
    /// Bag's items or a DataFrame's rows as a JSON list).
    Port { port: u32 },
}

/// Per-partition operators over Arrow tables (the `table` family).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TableOp {
    /// Keep rows where the SQL predicate is true (NULL counts as false).
    Filter { predicate: String },
    /// Keep these columns, in this order.
    Select { columns: Vec<String> },
    /// Add or replace columns computed from SQL expressions, evaluated in order (a later one
    /// may use an earlier one).
    Assign { columns: Vec<(String, String)> },
    /// Run a user function from a WebAssembly component on the whole partition.
    MapPartitions {
        module: ModuleRef,
        function: String,
        #[serde(default)]
        args: serde_json::Value,
    },
    /// Row-wise `apply`: each row, as a JSON object, given to an `Items` function (in batches)
    /// that returns the row's new values, an object with the `output` columns (or, for one
    /// output column, the value itself); they are added to the row, replacing columns of the
    /// same name.
    Apply { function: FunctionRef, output: Vec<Field> },
    /// Keep the first `n` rows.
    Head { n: usize },
    /// Sort the partition.
    Sort { keys: Vec<SortKey> },
    /// Group and aggregate. One logical aggregation runs as one or more of these: `Partial` on
    /// raw rows, `Combine` merging partial states into partial states (tree levels), `Final`
    /// merging states into results; or `Single` when one task sees all rows of its groups.
    Aggregate {
        mode: AggregateMode,
        /// Grouping columns (none: one group, a whole-table reduction).
        keys: Vec<String>,
        /// `(output name, SQL aggregate expression)`, e.g. `("total", "sum(fare)")`.
        aggs: Vec<(String, String)>,
        /// Schema of the rows being aggregated (the `Partial` input). Later modes see only
        /// states, so the expressions are planned against this.
        input: Vec<Field>,
    },
    /// Join the main table with a side table (`port`) on equal keys.
    Join {
        port: u32,
        how: JoinHow,
        left_on: Vec<String>,
        right_on: Vec<String>,
        /// Appended to column names present on both sides (other than shared keys).
        suffixes: (String, String),
        /// The side the hash table is built on; the other streams through it.
        #[serde(default)]
        build: JoinBuild,
    },
    /// Keep `columns` of at most `rows` evenly spaced rows: the sample from which range
    /// boundaries are computed.
    Sample { columns: Vec<String>, rows: usize },
    /// From samples, the `n - 1` rows that split the sorted sample into `n` equal parts: the
    /// boundaries of a range shuffle (and the divisions of its output).
    Boundaries { keys: Vec<SortKey>, n: u32 },
    /// Turns a one-row table of statistics into one row per statistic (`describe`): column
    /// `id` holds `rows[i]`; each output column `(name, sources)` holds input column
    /// `sources[i]` of that row, as a double.
    Melt { id: String, rows: Vec<String>, columns: Vec<(String, Vec<String>)> },
}

/// Modes of a distributed aggregation (see [`TableOp::Aggregate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateMode {
    Single,
    Partial,
    Combine,
    Final,
}

/// One sort key, pandas-style: ascending with nulls last by default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SortKey {
    pub column: String,
    #[serde(default = "default_true")]
    pub ascending: bool,
    #[serde(default)]
    pub nulls_first: bool,
}

impl SortKey {
    pub fn asc(column: impl Into<String>) -> Self {
        Self { column: column.into(), ascending: true, nulls_first: false }
    }
}

/// The side of a [`TableOp::Join`] its hash table is built on (held whole in memory); the rows
/// of the other side stream through it. The coordinator picks the side it estimates smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinBuild {
    /// The side table (the default): it is in memory already, and the task's input streams.
    #[default]
    Side,
    /// The task's input, read whole first; the side table streams through it. For an input
    /// smaller than its side table (a filtered partition joined to the partitions its key
    /// range overlaps).
    Input,
}

/// Join types, as in `pandas.merge(how=...)` plus semi and anti joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinHow {
    Inner,
    Left,
    Right,
    Outer,
    /// Rows of the left side that have a match (left columns only).
    Semi,
    /// Rows of the left side that have no match (left columns only).
    Anti,
}

impl JoinHow {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inner" => Self::Inner,
            "left" => Self::Left,
            "right" => Self::Right,
            "outer" | "full" => Self::Outer,
            "semi" | "leftsemi" => Self::Semi,
            "anti" | "leftanti" => Self::Anti,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inner => "inner",
            Self::Left => "left",
            Self::Right => "right",
            Self::Outer => "outer",
            Self::Semi => "semi",
            Self::Anti => "anti",
        }
    }
}

/// How a shuffle map task splits its rows into buckets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Partitioning {
    /// Bucket `hash(keys) % n`; equal keys of equal logical type land in the same bucket on
    /// every task (integers hash as 64-bit, strings as UTF-8).
    Hash { keys: Vec<String>, n: u32 },
    /// Bucket `i` holds rows between boundary rows `i - 1` and `i`, read from side table
    /// `port` (the output of [`TableOp::Boundaries`]); `n` is one more than the boundaries.
    Range { keys: Vec<SortKey>, port: u32, n: u32 },
    /// `n` contiguous, nearly equal row ranges, in order (splitting a partition).
    Split { n: u32 },
}

impl Partitioning {
    pub fn buckets(&self) -> u32 {
        match self {
            Partitioning::Hash { n, .. } | Partitioning::Range { n, .. } | Partitioning::Split { n } => *n,
        }
    }
}

/// Where a task writes its output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// Compressed Arrow IPC under the job root, read by later stages or by `compute()`.
    Intermediate,
    /// A user-visible part with a deterministic name, `<url>/part-<index:05>.<extension>`
    /// ([`layout::part_name`]), in the file format `format`.
    Part { url: String, part: usize, format: PartFormat },
    /// A shuffle map output: one object holding every bucket as its own compressed Arrow IPC
    /// stream, with the byte range of each in the manifest ([`Manifest::buckets`]).
    Shuffle { partitioning: Partitioning },
    /// One chunk of a user-visible Zarr array: the task's chunk table encoded with the codecs
    /// of `metadata` (the array's `zarr.json`, which the coordinator writes after every chunk)
    /// and stored at its key for grid index `chunk`.
    Zarr { array: String, metadata: String, chunk: Vec<u64> },
}

impl Output {
    /// Whether the task writes a user-visible object under a deterministic name (a part, a
    /// Zarr chunk) rather than attempt-scoped data: a losing attempt's object is the winner's.
    pub fn is_user_visible(&self) -> bool {
        matches!(self, Output::Part { .. } | Output::Zarr { .. })
    }
}

/// The file format of a user-visible part ([`Output::Part`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartFormat {
    /// Parquet (zstd): `part-00000.parquet`.
    Parquet,
    /// CSV with a header line, formatted as pandas' `to_csv` writes it: `part-00000.csv`.
    Csv,
    /// JSON lines, one object per row with explicit nulls, as pandas'
    /// `to_json(orient="records", lines=True)` writes it: `part-00000.jsonl`.
    JsonLines,
    /// Bag items, one per line: a string item as its text, any other item as JSON:
    /// `part-00000.txt` (Bag `to_textfiles`).
    Text,
    /// As `Text`, gzip-compressed: `part-00000.txt.gz`.
    TextGzip,
}

impl PartFormat {
    /// The file name extension of its parts, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            PartFormat::Parquet => "parquet",
            PartFormat::Csv => "csv",
            PartFormat::JsonLines => "jsonl",
            PartFormat::Text => "txt",
            PartFormat::TextGzip => "txt.gz",
        }
    }

    /// The name users call it by, as in `to_parquet` / `to_csv` / `to_json`.
    pub fn name(self) -> &'static str {
        match self {
            PartFormat::Parquet => "parquet",
            PartFormat::Csv => "csv",
            PartFormat::JsonLines => "json",
            PartFormat::Text | PartFormat::TextGzip => "text",
        }
    }
}

/// Resource limits for one task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Linear-memory limit of a user-code sandbox, in bytes.
    pub guest_memory_bytes: u64,
    /// Wall-clock budget of user code in one task, in milliseconds.
    pub guest_timeout_ms: u64,
    /// Bytes of guest stdout/stderr kept for the task log.
    pub guest_log_bytes: usize,
    /// Memory one task may hold: its decoded inputs must fit, and its DataFusion operators
    /// (sorts, aggregations, joins) share this budget, spilling to local disk where they can.
    #[serde(default = "default_task_memory")]
    pub task_memory_bytes: u64,
}

fn default_task_memory() -> u64 {
    4 << 30
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            guest_memory_bytes: 512 << 20,
            guest_timeout_ms: 60_000,
            guest_log_bytes: 64 << 10,
            task_memory_bytes: default_task_memory(),
        }
    }
}

/// Everything a stateless worker needs to run one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub version: u32,
    pub job_id: String,
    /// The job root URL: `data/` and `commits/` live under it.
    pub job_root: String,
    pub task_key: TaskKey,
    /// Attempt number (1-based) as counted by the scheduler; informational.
    pub attempt: u32,
    pub inputs: Vec<Input>,
    pub pipeline: Vec<Operator>,
    pub output: Output,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub storage: StorageOptions,
    /// The scheduler knows that no attempt of this task has committed (its first attempt, with
    /// the job root's commits listed when the run began): the worker skips its check for a
    /// committed manifest before running. The commit itself is create-if-absent regardless.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncommitted: bool,
}

impl TaskSpec {
    /// Parses a spec, refusing other protocol versions.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let spec: TaskSpec =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid task spec JSON: {e}"))?;
        if spec.version != PROTOCOL_VERSION {
            return Err(format!(
                "task spec version {} is not supported (this worker speaks {PROTOCOL_VERSION})",
                spec.version
            ));
        }
        Ok(spec)
    }
}

/// The payload of a cloud-function invocation: a spec, or (over the payload limit) the URL of
/// a spec stored in the job root, with the storage settings needed to fetch it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    Inline(Box<TaskSpec>),
    ByReference {
        spec_url: String,
        #[serde(default)]
        storage: StorageOptions,
    },
}

/// One object a task produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputObject {
    pub object: ObjectRef,
    pub rows: u64,
}

/// The commit record of a task, created at `commits/<task_key>.json` only if absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub task_key: TaskKey,
    /// The attempt whose data this manifest points to.
    pub attempt_id: String,
    pub outputs: Vec<OutputObject>,
    pub rows: u64,
    pub bytes: u64,
    /// Output schema as a list of fields.
    pub schema: Vec<Field>,
    /// For a shuffle map task: the byte range of each bucket in the single output object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<ByteRange>,
    /// For a boundaries task: the divisions of the range partitioning it defines, one row of
    /// key values (as text) per boundary; partition `i` holds keys after row `i - 1`, up to and
    /// including row `i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divisions: Option<Vec<Vec<String>>>,
}

/// Measurements of one task attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    pub rows_in: u64,
    pub rows_out: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub objects_read: u64,
    pub objects_written: u64,
    /// Object-storage requests (GET, range GET, PUT, conditional PUT, LIST, DELETE).
    #[serde(default)]
    pub requests: u64,
    /// Input records left out as malformed (JSON lines read with `errors = "skip"`).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub records_skipped: u64,
    pub wall_ms: u64,
    pub guest_ms: u64,
    /// WebAssembly components this attempt had to compile (0 when cached in memory or on disk).
    #[serde(default)]
    pub components_compiled: u64,
    /// On the first task of a cloud-function process: milliseconds from process start to ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start_ms: Option<u64>,
    /// Captured guest stdout/stderr (bounded by [`Limits::guest_log_bytes`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub guest_log: String,
}

/// A successful task: the manifest that is committed (this attempt's or an earlier winner's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task_key: TaskKey,
    pub attempt: u32,
    pub manifest: Manifest,
    /// Whether this attempt's commit won (false: another attempt had committed first).
    pub won_commit: bool,
    pub metrics: TaskMetrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Transient: running the same task again may succeed.
    Retryable,
    /// Deterministic: running it again would fail the same way.
    Fatal,
}

/// A failed task attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub kind: FailureKind,
    pub task_key: TaskKey,
    /// The input (URL) the failure concerns, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    pub message: String,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FailureKind::Retryable => "retryable",
            FailureKind::Fatal => "fatal",
        };
        write!(f, "task {} failed ({kind})", self.task_key)?;
        if let Some(input) = &self.input {
            write!(f, " reading {input}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for TaskFailure {}

/// What a worker answers for one spec.
pub type TaskOutcome = Result<TaskResult, TaskFailure>;

/// Object names under a job root. Every reader and writer goes through these.
pub mod layout {
    use super::{PartFormat, TaskKey};

    /// `commits/<task_key>.json`: the create-if-absent manifest.
    pub fn manifest(task_key: &TaskKey) -> String {
        format!("commits/{task_key}.json")
    }

    /// `data/<task_key>.<attempt_id>.<name>`: an object one attempt writes (`name` is
    /// `part-0.arrow` or `shuffle.arrows`). The folder is flat, with no folder per task or
    /// attempt: object stores have no folders, and on a local folder a new directory is an
    /// inode allocation of its own, which made two folders per task cost more than the task's
    /// two files (bench/results/scheduler.txt).
    pub fn attempt_object(task_key: &TaskKey, attempt_id: &str, name: &str) -> String {
        format!("data/{task_key}.{attempt_id}.{name}")
    }

    /// `modules/<sha256>.wasm`: user components, content-addressed.
    pub fn module(sha256: &str) -> String {
        format!("modules/{sha256}.wasm")
    }

    /// Deterministic name of user-visible part `index` in `format`: `part-00000.parquet`,
    /// `part-00000.csv`, `part-00000.jsonl`.
    pub fn part_name(index: usize, format: PartFormat) -> String {
        format!("part-{index:05}.{}", format.extension())
    }

    /// Name of the marker written last in a user-visible output directory.
    pub const SUCCESS: &str = "_SUCCESS";

    /// `jobs/<job_id>.json`: the task list of a job, written when it starts (`shoal status`).
    pub fn job(job_id: &str) -> String {
        format!("jobs/{job_id}.json")
    }

    /// `specs/<task_key>-<attempt>.json`: a task spec too large for an invocation payload.
    pub fn spec(task_key: &TaskKey, attempt: u32) -> String {
        format!("specs/{task_key}-{attempt}.json")
    }

    /// `jobs/<job_id>.events/`: the events of every run of the job, one JSON object per line,
    /// in [`events_segment`]s. Object stores cannot append, so a run adds new objects instead of
    /// rewriting one that grows with every event.
    pub fn events(job_id: &str) -> String {
        format!("jobs/{job_id}.events/")
    }

    /// `jobs/<job_id>.events/<run>-<segment>.jsonl`: the events a run wrote in one go. `run` is
    /// the run's start in µs since the Unix epoch; the names sort in the order written.
    pub fn events_segment(job_id: &str, run_us: u64, segment: u32) -> String {
        format!("jobs/{job_id}.events/{run_us:020}-{segment:010}.jsonl")
    }

    /// Whether a name under `jobs/` is a job record (not a report or an events file).
    pub fn is_job_record(name: &str) -> bool {
        name.ends_with(".json") && !name.ends_with(".report.json")
    }

    /// `jobs/<job_id>.report.html`: the latest run's dashboard page, self-contained.
    pub fn report_html(job_id: &str) -> String {
        format!("jobs/{job_id}.report.html")
    }

    /// `jobs/<job_id>.report.json`: the report of the job's latest run.
    pub fn report(job_id: &str) -> String {
        format!("jobs/{job_id}.report.json")
    }
}

/// What a job is made of, recorded under the job root when it starts so that `shoal status`
/// can tell committed tasks from missing ones without the job file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub version: u32,
    pub job_id: String,
    /// Stage names, in order.
    pub stages: Vec<String>,
    pub tasks: Vec<JobTask>,
    /// Indices of the tasks whose outputs are the job's result.
    pub outputs: Vec<usize>,
}

/// One task of a [`JobRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTask {
    pub key: TaskKey,
    pub stage: usize,
    pub index: usize,
}

/// The `_SUCCESS` manifest of a user-visible output: written last, lists every part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessManifest {
    pub version: u32,
    pub job_id: String,
    pub parts: Vec<OutputObject>,
    pub rows: u64,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TaskSpec {
        TaskSpec {
            version: PROTOCOL_VERSION,
            job_id: "j".into(),
            job_root: "memory:///jobs/j".into(),
            task_key: TaskKey("scan-abc".into()),
            attempt: 1,
            inputs: vec![Input::Scan {
                format: FileFormat::Csv(CsvOptions::default()),
                files: vec![FileSlice::whole(ObjectRef {
                    url: "file:///x.csv".into(),
                    size: 10,
                    e_tag: None,
                })],
                projection: Some(vec!["a".into()]),
                predicate: None,
                schema: None,
                port: 0,
            }],
            pipeline: vec![
                TableOp::Filter { predicate: "a > 1".into() }.into(),
                TableOp::Assign { columns: vec![("b".into(), "a * 2".into())] }.into(),
            ],
            output: Output::Intermediate,
            limits: Limits::default(),
            storage: StorageOptions::default(),
            uncommitted: false,
        }
    }

    #[test]
    fn spec_round_trips_through_json() {
        let s = spec();
        let json = serde_json::to_vec(&s).unwrap();
        assert_eq!(TaskSpec::from_json(&json).unwrap(), s);
    }

    #[test]
    fn invocations_are_inline_or_by_reference() {
        let inline = serde_json::to_vec(&Invocation::Inline(Box::new(spec()))).unwrap();
        assert_eq!(
            serde_json::from_slice::<Invocation>(&inline).unwrap(),
            Invocation::Inline(Box::new(spec()))
        );
        let by_ref: Invocation = serde_json::from_str(r#"{"spec_url": "s3://b/specs/x-1.json"}"#).unwrap();
        assert_eq!(
            by_ref,
            Invocation::ByReference {
                spec_url: "s3://b/specs/x-1.json".into(),
                storage: StorageOptions::default()
            }
        );
    }

    #[test]
    fn a_profile_travels_only_when_named() {
        let old: StorageOptions = serde_json::from_str(r#"{"endpoint": "http://127.0.0.1:4566"}"#).unwrap();
        assert_eq!(old.profile, None);
        assert_eq!(serde_json::to_string(&StorageOptions::default()).unwrap(), "{}");
        let named = StorageOptions { profile: Some("dev".into()), ..Default::default() };
        let json = serde_json::to_string(&named).unwrap();
        assert_eq!(json, r#"{"profile":"dev"}"#);
        assert_eq!(serde_json::from_str::<StorageOptions>(&json).unwrap(), named);
    }

    #[test]
    fn an_operator_is_one_flat_object_naming_its_family() {
        let op: Operator = TableOp::Head { n: 3 }.into();
        let json = serde_json::to_value(&op).unwrap();
        assert_eq!(json, serde_json::json!({"family": "table", "op": "head", "n": 3}));
        assert_eq!(serde_json::from_value::<Operator>(json).unwrap(), op);
        assert_eq!(op.family(), "table");
        let unknown = serde_json::json!({"family": "items", "op": "map"});
        assert!(serde_json::from_value::<Operator>(unknown).is_err());
    }

    #[test]
    fn parts_name_their_format() {
        let out = Output::Part { url: "s3://b/out".into(), part: 7, format: PartFormat::JsonLines };
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "part", "url": "s3://b/out", "part": 7, "format": "json_lines"})
        );
        assert_eq!(serde_json::from_value::<Output>(json).unwrap(), out);
        assert_eq!(layout::part_name(7, PartFormat::Parquet), "part-00007.parquet");
        assert_eq!(layout::part_name(7, PartFormat::Csv), "part-00007.csv");
        assert_eq!(layout::part_name(12345, PartFormat::JsonLines), "part-12345.jsonl");
    }

    #[test]
    fn other_versions_are_refused() {
        let mut s = spec();
        s.version = 99;
        let json = serde_json::to_vec(&s).unwrap();
        let err = TaskSpec::from_json(&json).unwrap_err();
        assert!(err.contains("version 99"), "{err}");
    }

    #[test]
    fn task_keys_are_stable_and_content_addressed() {
        let a = TaskKey::derive("scan", &spec().pipeline);
        let b = TaskKey::derive("scan", &spec().pipeline);
        assert_eq!(a, b);
        let mut other = spec().pipeline;
        other.push(TableOp::Head { n: 1 }.into());
        assert_ne!(a, TaskKey::derive("scan", &other));
        assert!(a.as_str().starts_with("scan-"));
        assert_eq!(a.as_str().len(), "scan-".len() + 32);
    }
}
