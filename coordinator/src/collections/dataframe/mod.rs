//! The lazy DataFrame: each method records an operator in the logical plan (validating column
//! names and expressions against the schema right away, as Dask does with `meta`); nothing runs
//! until [`DataFrame::compute`] or a writer ([`DataFrame::to_parquet`], [`DataFrame::to_csv`],
//! [`DataFrame::to_json`]).
//!
//! Rooms: this file is the API; [`read`] plans scans from object metadata; [`plan`] is the
//! logical plan; [`optimize`](mod@optimize) rewrites it (pushdowns, strategies); [`explain`]
//! prints it; [`lower`] turns it into a task graph; [`aggregates`] splits expressions over
//! aggregates into calls and a scalar step; [`write`] writes user-visible outputs (parts and
//! `_SUCCESS`).

pub mod aggregates;
pub mod estimate;
pub mod explain;
pub mod lower;
pub mod optimize;
pub mod plan;
mod pushdown;
pub mod ranges;
pub mod read;
mod reorder;
mod semijoin;
mod shared;
pub mod strategy;
pub mod write;

use crate::client::{Client, FunctionModule};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::run::report::RunSummary;
use crate::run::results;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use lower::{Target, lower};
use optimize::optimize;
use plan::{AggregateNode, JoinHint, JoinNode, MapOp, Plan};
use shoal_protocol::{AggregateMode, FunctionKind, JoinHow, SortKey, TableOp};
use std::sync::Arc;

/// An expression: an SQL expression string (`"fare > 10 AND vendor = 'A'"`) or a DataFusion
/// [`Expr`](datafusion::prelude::Expr) built with `col("fare").gt(lit(10))`. Expressions travel
/// to workers as SQL; one that cannot be written as SQL is refused where it is used.
#[derive(Debug, Clone)]
pub struct ExprArg(Result<String, String>);

impl ExprArg {
    /// The expression as SQL, or why it has none.
    fn into_sql(self) -> Result<String> {
        self.0.map_err(Error::Invalid)
    }
}

impl From<&str> for ExprArg {
    fn from(s: &str) -> Self {
        ExprArg(Ok(s.to_string()))
    }
}

impl From<String> for ExprArg {
    fn from(s: String) -> Self {
        ExprArg(Ok(s))
    }
}

impl From<datafusion::prelude::Expr> for ExprArg {
    fn from(e: datafusion::prelude::Expr) -> Self {
        ExprArg(
            datafusion::sql::unparser::expr_to_sql(&e)
                .map(|sql| sql.to_string())
                .map_err(|why| format!("the expression {e} cannot be written as SQL: {why}")),
        )
    }
}

/// One named aggregation: an output column name and an SQL aggregate expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agg {
    pub name: String,
    pub sql: String,
}

impl Agg {
    /// `func` of `column`, pandas-style: `sum`, `mean`, `count` (non-null values), `size` (rows),
    /// `min`, `max`, `std` and `var` (sample, ddof=1), `nunique`, `first`, `last`, `median` and
    /// `quantile(q)` (approximate, t-digest).
    pub fn new(name: &str, column: &str, func: &str) -> Result<Agg> {
        Ok(Agg { name: name.to_string(), sql: agg_sql(column, func)? })
    }

    /// Any SQL aggregate expression, e.g. `sum(price * quantity)`.
    pub fn sql(name: &str, sql: &str) -> Agg {
        Agg { name: name.to_string(), sql: sql.to_string() }
    }
}

/// Quotes an identifier for SQL (`"Fare"` keeps its case; `"` doubles).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL of a pandas-style aggregation of a column.
pub fn agg_sql(column: &str, func: &str) -> Result<String> {
    let c = quote_ident(column);
    let quantile = |q: &str| -> Result<String> {
        let q: f64 =
            q.trim().parse().map_err(|_| Error::Invalid(format!("quantile: '{q}' is not a number")))?;
        if !(0.0..=1.0).contains(&q) {
            return Err(Error::Invalid(format!("quantile: {q} is not between 0 and 1")));
        }
        Ok(format!("approx_percentile_cont({q}) WITHIN GROUP (ORDER BY {c})"))
    };
    Ok(match func.trim() {
        "sum" => format!("sum({c})"),
        // As pandas and DuckDB: a mean is a double, also of decimals (DataFusion would keep a
        // decimal rounded to 4 more digits).
        "mean" | "avg" => format!("avg(CAST({c} AS DOUBLE))"),
        "count" => format!("count({c})"),
        "size" => "count(*)".to_string(),
        "min" => format!("min({c})"),
        "max" => format!("max({c})"),
        "std" => format!("stddev_samp({c})"),
        "var" => format!("var_samp({c})"),
        "nunique" => format!("count(DISTINCT {c})"),
        "first" => format!("first_value({c})"),
        "last" => format!("last_value({c})"),
        "median" => quantile("0.5")?,
        f => match f.strip_prefix("quantile(").and_then(|r| r.strip_suffix(')')) {
            Some(q) => quantile(q)?,
            None => {
                return Err(Error::Invalid(format!(
                    "unknown aggregation '{f}' (use sum, mean, count, size, min, max, std, var, nunique, \
                     first, last, median, quantile(q), or an SQL aggregate expression)"
                )));
            }
        },
    })
}

/// The mean of a decimal column (`agg_sql`'s `avg(CAST(c AS DOUBLE))`) as its exact sum over its
/// count, made a double once per group, as DuckDB computes it: the same value (closer to the
/// exact mean, not further), without converting every row's 128-bit decimal to a double. The
/// sum is then shared with a `sum` of the same column, and the count of a column without nulls
/// is `count(*)`, shared with a `size` and with the means of other such columns (TPC-H Q1's
/// three means and its row count are one count). Only for precisions up to 28, whose sum cannot
/// overflow; any other aggregation is kept.
fn exact_decimal_mean(sql: &str, input: &arrow::datatypes::Schema) -> String {
    let decimal = input.fields().iter().find(|f| {
        // DataFusion sums into 10 more digits (at most 38): room for 10^10 rows of any value.
        matches!(f.data_type(), DataType::Decimal128(p, _) if *p <= 28)
            && sql == format!("avg(CAST({} AS DOUBLE))", quote_ident(f.name()))
    });
    match decimal {
        Some(f) => {
            let c = quote_ident(f.name());
            let count = match f.is_nullable() {
                true => format!("count({c})"),
                false => "count(*)".to_string(),
            };
            format!("CAST(sum({c}) AS DOUBLE) / CAST({count} AS DOUBLE)")
        }
        None => sql.to_string(),
    }
}

/// A pending `groupby`: call [`GroupBy::agg`] to get a DataFrame.
#[derive(Debug, Clone)]
pub struct GroupBy {
    df: DataFrame,
    keys: Vec<String>,
    split_out: Option<usize>,
    split_every: Option<usize>,
}

impl GroupBy {
    /// Output partitions: more than 1 hash-shuffles partial aggregates on the keys (for many
    /// groups); 1 forces a tree reduction. Default: chosen from the estimated group count.
    pub fn split_out(mut self, n: usize) -> Self {
        self.split_out = Some(n.max(1));
        self
    }

    /// Inputs per combine task of a tree reduction (default 8).
    pub fn split_every(mut self, n: usize) -> Self {
        self.split_every = Some(n.max(2));
        self
    }

    /// The aggregations, one output column each, after the key columns.
    pub fn agg(&self, aggs: &[Agg]) -> Result<DataFrame> {
        self.df.aggregate(&self.keys, aggs, self.split_out, self.split_every)
    }
}

/// How to `merge` two DataFrames (pandas' arguments).
#[derive(Debug, Clone)]
pub struct Merge {
    pub how: JoinHow,
    pub left_on: Vec<String>,
    pub right_on: Vec<String>,
    pub suffixes: (String, String),
    /// Force a strategy (default: chosen from sizes and partitioning).
    pub strategy: Option<JoinHint>,
    /// Output partitions of a hash join (default: from the sides' estimated sizes, see
    /// `PlanConfig::shuffle_partition_bytes`).
    pub npartitions: Option<usize>,
}

impl Merge {
    /// Join on columns with the same names on both sides.
    pub fn on<S: AsRef<str>>(columns: &[S]) -> Self {
        let cols: Vec<String> = columns.iter().map(|c| c.as_ref().to_string()).collect();
        Self::left_right(&cols, &cols)
    }

    /// Join `left_on` columns of the left side with `right_on` of the right.
    pub fn left_right<S: AsRef<str>>(left_on: &[S], right_on: &[S]) -> Self {
        Merge {
            how: JoinHow::Inner,
            left_on: left_on.iter().map(|c| c.as_ref().to_string()).collect(),
            right_on: right_on.iter().map(|c| c.as_ref().to_string()).collect(),
            suffixes: ("_x".into(), "_y".into()),
            strategy: None,
            npartitions: None,
        }
    }

    pub fn how(mut self, how: JoinHow) -> Self {
        self.how = how;
        self
    }

    pub fn suffixes(mut self, left: &str, right: &str) -> Self {
        self.suffixes = (left.to_string(), right.to_string());
        self
    }

    pub fn strategy(mut self, hint: JoinHint) -> Self {
        self.strategy = Some(hint);
        self
    }

    pub fn npartitions(mut self, n: usize) -> Self {
        self.npartitions = Some(n.max(1));
        self
    }
}

/// A lazy, partitioned table.
#[derive(Debug, Clone)]
pub struct DataFrame {
    client: Client,
    plan: Arc<Plan>,
    modules: Vec<FunctionModule>,
}

pub use crate::run::results::WriteSummary;

impl DataFrame {
    pub(crate) fn new(client: Client, plan: Arc<Plan>, modules: Vec<FunctionModule>) -> Self {
        Self { client, plan, modules }
    }

    pub fn schema(&self) -> Result<SchemaRef> {
        self.plan.schema()
    }

    pub fn npartitions(&self) -> usize {
        self.plan.partitions()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn map(&self, op: MapOp) -> Result<DataFrame> {
        Ok(self.with_plan(Plan::map(self.plan.clone(), op)?))
    }

    fn with_plan(&self, plan: Plan) -> DataFrame {
        DataFrame { client: self.client.clone(), plan: Arc::new(plan), modules: self.modules.clone() }
    }

    /// Keeps rows where `predicate` is true.
    pub fn filter(&self, predicate: impl Into<ExprArg>) -> Result<DataFrame> {
        self.map(MapOp::Filter { predicate: predicate.into().into_sql()? })
    }

    /// Keeps these columns, in this order.
    pub fn select<S: AsRef<str>>(&self, columns: &[S]) -> Result<DataFrame> {
        self.map(MapOp::Select { columns: columns.iter().map(|c| c.as_ref().to_string()).collect() })
    }

    /// Adds (or replaces) a column computed from an expression.
    pub fn assign(&self, name: &str, expr: impl Into<ExprArg>) -> Result<DataFrame> {
        self.map(MapOp::Assign { columns: vec![(name.to_string(), expr.into().into_sql()?)] })
    }

    /// Runs a user function on every partition. The output schema is found by calling the
    /// function on an empty partition of the input schema, so a bad function or argument
    /// fails here rather than in a task.
    pub fn map_partitions(
        &self,
        module: &FunctionModule,
        function: &str,
        args: serde_json::Value,
    ) -> Result<DataFrame> {
        module.function(function, FunctionKind::Table, serde_json::Value::Null, "map_partitions")?;
        let input = self.plan.schema()?;
        let empty = RecordBatch::new_empty(input);
        // On a thread of its own: a guest that writes to stdout makes WASI block on the tokio
        // runtime, which must not happen on a thread that is driving async code.
        let sandbox = self.client.worker().sandbox();
        let limits = &self.client.config().limits;
        let out = std::thread::scope(|s| {
            s.spawn(|| sandbox.call(&module.module, function, &[empty], &args, limits)).join()
        })
        .map_err(|_| Error::Invalid(format!("map_partitions {function}: the sandbox thread panicked")))?
        .map_err(|e| Error::Invalid(format!("map_partitions {function}: {e}")))?;
        let op =
            MapOp::MapPartitions { module: module.reference.clone(), function: function.to_string(), args };
        let mut df = self.with_plan(Plan::Map { input: self.plan.clone(), op, schema: out.batch.schema() });
        if !df.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
            df.modules.push(module.clone());
        }
        Ok(df)
    }

    /// Row-wise `apply` (pandas' `apply(f, axis=1)`): `function(row, **args)`, an `items`
    /// function, gets each row as a JSON object (in batches of many rows per call) and returns
    /// the row's new values: an object with the `output` columns (`(name, type)` pairs in the
    /// names `dtype` takes), or the value itself when there is one output column. They are
    /// added to the row, replacing columns of the same name. A Rust `map_partitions` over Arrow
    /// columns is much faster where it can be written.
    pub fn apply(
        &self,
        module: &FunctionModule,
        function: &str,
        args: serde_json::Value,
        output: &[(&str, &str)],
    ) -> Result<DataFrame> {
        let function = module.function(function, FunctionKind::Items, args, "apply")?;
        if output.is_empty() {
            return Err(Error::Invalid("apply: name at least one output column and its type".into()));
        }
        let mut fields = Vec::with_capacity(output.len());
        for (name, ty) in output {
            let data_type = read::parse_dtype(ty)
                .map_err(|e| Error::Invalid(format!("apply: output column '{name}': {e}")))?;
            fields.push(arrow::datatypes::Field::new(*name, data_type, true));
        }
        let output = shoal_worker::io::schema::to_fields(&arrow::datatypes::Schema::new(fields));
        let mut df = self.map(MapOp::Apply { function, output })?;
        if !df.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
            df.modules.push(module.clone());
        }
        Ok(df)
    }

    /// The first `n` rows (lazily; a single output partition).
    pub fn head(&self, n: usize) -> DataFrame {
        self.with_plan(Plan::Head { input: self.plan.clone(), n })
    }

    /// Groups rows by `keys`, for [`GroupBy::agg`].
    pub fn groupby<S: AsRef<str>>(&self, keys: &[S]) -> GroupBy {
        GroupBy {
            df: self.clone(),
            keys: keys.iter().map(|k| k.as_ref().to_string()).collect(),
            split_out: None,
            split_every: None,
        }
    }

    /// Whole-table reductions: one row, one column per aggregation.
    pub fn agg(&self, aggs: &[Agg]) -> Result<DataFrame> {
        self.aggregate(&[], aggs, None, None)
    }

    fn aggregate(
        &self,
        keys: &[String],
        aggs: &[Agg],
        split_out: Option<usize>,
        split_every: Option<usize>,
    ) -> Result<DataFrame> {
        let mut seen = std::collections::HashSet::new();
        for name in keys.iter().chain(aggs.iter().map(|a| &a.name)) {
            if !seen.insert(name) {
                return Err(Error::Invalid(format!("groupby: output column '{name}' appears twice")));
            }
        }
        let input = self.plan.schema()?;
        let aggs: Vec<(String, String)> =
            aggs.iter().map(|a| (a.name.clone(), exact_decimal_mean(&a.sql, &input))).collect();
        let mut taken: std::collections::BTreeSet<String> = seen.into_iter().cloned().collect();
        taken.extend(input.fields().iter().map(|f| f.name().clone()));
        // Expressions over aggregates: the calls are aggregated, the rest is evaluated after.
        let split = aggregates::split(&aggs, &taken)?;
        let op = TableOp::Aggregate {
            mode: AggregateMode::Single,
            keys: keys.to_vec(),
            aggs: split.calls.clone(),
            input: vec![],
        };
        let schema = shoal_worker::ops::table::output_schema(input, &[op], &Default::default())?;
        let aggregated = self.with_plan(Plan::Aggregate(AggregateNode {
            input: self.plan.clone(),
            keys: keys.to_vec(),
            aggs: split.calls,
            schema,
            split_out,
            split_every,
            strategy: None,
        }));
        if split.post.is_empty() {
            return Ok(aggregated);
        }
        let columns: Vec<String> = keys.iter().chain(aggs.iter().map(|(n, _)| n)).cloned().collect();
        match aggregated.map(MapOp::Assign { columns: split.post.clone() }) {
            Ok(assigned) => assigned.select(&columns),
            // Name the expression at fault: check them one at a time (only on this path).
            Err(all) => Err(split
                .post
                .iter()
                .find_map(|(name, sql)| {
                    let e =
                        aggregated.map(MapOp::Assign { columns: vec![(name.clone(), sql.clone())] }).err()?;
                    let user = aggs.iter().find(|(n, _)| n == name).map_or(sql.as_str(), |(_, s)| s.as_str());
                    let keys = if keys.is_empty() { "none".to_string() } else { keys.join(", ") };
                    Some(Error::Schema(format!(
                        "agg {name}: '{user}': outside aggregate function calls it may use only the group \
                         keys ({keys}): {e}"
                    )))
                })
                .unwrap_or(all)),
        }
    }

    /// Summary statistics of the numeric columns, as pandas' `describe`: a `statistic` column
    /// (`count`, `mean`, `std`, `min`, `25%`, `50%`, `75%`, `max`) and one double column per
    /// numeric column. Computed in one pass as a whole-table reduction; the quartiles are
    /// approximate (t-digest), where pandas' are exact.
    pub fn describe(&self) -> Result<DataFrame> {
        const STATS: [&str; 8] = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"];
        let schema = self.schema()?;
        let numeric: Vec<String> =
            schema.fields().iter().filter(|f| f.data_type().is_numeric()).map(|f| f.name().clone()).collect();
        if numeric.is_empty() {
            return Err(Error::Invalid(format!(
                "describe: no numeric columns (columns: {})",
                names(&schema)
            )));
        }
        let mut aggs = Vec::new();
        let mut columns = Vec::new();
        for (i, c) in numeric.iter().enumerate() {
            let (q, d) = (quote_ident(c), format!("CAST({} AS DOUBLE)", quote_ident(c)));
            let quantile = |p: &str| format!("approx_percentile_cont({p}) WITHIN GROUP (ORDER BY {d})");
            let sqls = [
                format!("count({q})"),
                format!("avg({d})"),
                format!("stddev_samp({d})"),
                format!("min({q})"),
                quantile("0.25"),
                quantile("0.5"),
                quantile("0.75"),
                format!("max({q})"),
            ];
            let mut sources = Vec::new();
            for (stat, sql) in STATS.iter().zip(sqls) {
                let name = format!("{i}:{stat}");
                aggs.push(Agg { name: name.clone(), sql });
                sources.push(name);
            }
            columns.push((c.clone(), sources));
        }
        let rows = STATS.iter().map(|s| s.to_string()).collect();
        self.agg(&aggs)?.map(MapOp::Melt { id: "statistic".into(), rows, columns })
    }

    /// Counts of each distinct value of `column`, most frequent first: columns `column`, `count`.
    pub fn value_counts(&self, column: &str) -> Result<DataFrame> {
        let counts = self.groupby(&[column]).agg(&[Agg::sql("count", "count(*)")])?;
        counts
            .sort_values_into(&[SortKey { column: "count".into(), ascending: false, nulls_first: false }], 1)
    }

    /// Distinct rows; with `subset`, one row per distinct combination of those columns (the
    /// other columns from the first row met, as Dask does per partition).
    pub fn drop_duplicates(&self, subset: Option<&[&str]>) -> Result<DataFrame> {
        let all: Vec<String> = self.schema()?.fields().iter().map(|f| f.name().clone()).collect();
        let keys: Vec<String> = match subset {
            Some(cols) => cols.iter().map(|c| c.to_string()).collect(),
            None => all.clone(),
        };
        let aggs: Vec<Agg> = all
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| Ok(Agg { name: c.clone(), sql: agg_sql(c, "first")? }))
            .collect::<Result<_>>()?;
        let deduped = self.groupby(&keys).agg(&aggs)?;
        if subset.is_some() { deduped.select(&all) } else { Ok(deduped) }
    }

    /// The `n` rows with the largest values of `columns` (in order), nulls last.
    pub fn nlargest<S: AsRef<str>>(&self, n: usize, columns: &[S]) -> Result<DataFrame> {
        self.top_k(n, columns, false)
    }

    /// The `n` rows with the smallest values of `columns` (in order), nulls last.
    pub fn nsmallest<S: AsRef<str>>(&self, n: usize, columns: &[S]) -> Result<DataFrame> {
        self.top_k(n, columns, true)
    }

    fn top_k<S: AsRef<str>>(&self, n: usize, columns: &[S], ascending: bool) -> Result<DataFrame> {
        let keys: Vec<SortKey> = columns
            .iter()
            .map(|c| SortKey { column: c.as_ref().to_string(), ascending, nulls_first: false })
            .collect();
        self.check_sort_keys(&keys)?;
        Ok(self.with_plan(Plan::TopK { input: self.plan.clone(), keys, n }))
    }

    fn check_sort_keys(&self, keys: &[SortKey]) -> Result<()> {
        if keys.is_empty() {
            return Err(Error::Invalid("sort: no columns given".into()));
        }
        shoal_worker::ops::table::output_schema(
            self.schema()?,
            &[TableOp::Sort { keys: keys.to_vec() }],
            &Default::default(),
        )?;
        Ok(())
    }

    /// A global sort: the result's partitions are ranges of the sort order (boundaries from a
    /// sample of the keys), each sorted; as many partitions as the input.
    pub fn sort_values(&self, keys: &[SortKey]) -> Result<DataFrame> {
        self.sort_values_into(keys, self.npartitions_hint()?)
    }

    /// [`sort_values`](Self::sort_values) into `npartitions` partitions.
    pub fn sort_values_into(&self, keys: &[SortKey], npartitions: usize) -> Result<DataFrame> {
        self.check_sort_keys(keys)?;
        Ok(self.with_plan(Plan::Sort {
            input: self.plan.clone(),
            keys: keys.to_vec(),
            npartitions: npartitions.max(1),
            index: false,
        }))
    }

    /// Sorts by `column` and makes it the index: partitions are ranges of it, whose boundaries
    /// (divisions, from sampled quantiles) are recorded in the boundaries task's manifest.
    pub fn set_index(&self, column: &str) -> Result<DataFrame> {
        let keys = vec![SortKey::asc(column)];
        self.check_sort_keys(&keys)?;
        Ok(self.with_plan(Plan::Sort {
            input: self.plan.clone(),
            keys,
            npartitions: self.npartitions_hint()?,
            index: true,
        }))
    }

    /// Rows whose index (see [`set_index`](Self::set_index)) lies between `lo` and `hi`,
    /// inclusive; the bounds are SQL literals (`100`, `DATE '2021-03-01'`, `'abc'`), `None` is
    /// open. The condition also prunes the row groups scanned below the index's sort.
    pub fn loc(&self, lo: Option<&str>, hi: Option<&str>) -> Result<DataFrame> {
        let index = self.plan.index().ok_or_else(|| {
            Error::Invalid("loc: this DataFrame has no index; call set_index(column) first".into())
        })?;
        let c = quote_ident(&index);
        let mut conditions = Vec::new();
        if let Some(lo) = lo {
            conditions.push(format!("{c} >= {lo}"));
        }
        if let Some(hi) = hi {
            conditions.push(format!("{c} <= {hi}"));
        }
        if conditions.is_empty() {
            return Ok(self.clone());
        }
        self.filter(conditions.join(" AND "))
    }

    /// The same rows, in order, in `npartitions` partitions (adjacent partitions concatenated,
    /// or each split into contiguous pieces).
    pub fn repartition(&self, npartitions: usize) -> DataFrame {
        self.with_plan(Plan::Repartition { input: self.plan.clone(), npartitions: npartitions.max(1) })
    }

    /// [`repartition`](Self::repartition) into partitions of about `bytes` each, from the
    /// planner's size estimate (Parquet bytes read; no data is computed to measure it).
    pub fn repartition_size(&self, bytes: u64) -> DataFrame {
        let n = self.plan.estimated_bytes().div_ceil(bytes.max(1)).max(1) as usize;
        self.repartition(n)
    }

    /// Partitions of this frame, as far as planning can tell before strategies are chosen.
    fn npartitions_hint(&self) -> Result<usize> {
        Ok(optimize(&self.plan, &self.client.config().plan)?.partitions().max(1))
    }

    /// Joins with `other`, pandas `merge`-style. Null keys never match (as in SQL and DuckDB;
    /// pandas matches them).
    pub fn merge(&self, other: &DataFrame, how: &Merge) -> Result<DataFrame> {
        let (ls, rs) = (self.schema()?, other.schema()?);
        if how.left_on.len() != how.right_on.len() || how.left_on.is_empty() {
            return Err(Error::Invalid(format!(
                "merge: {} left keys and {} right keys; give the same number, at least one",
                how.left_on.len(),
                how.right_on.len()
            )));
        }
        for (l, r) in how.left_on.iter().zip(&how.right_on) {
            let lt = ls.field_with_name(l).map_err(|_| {
                Error::Schema(format!("merge: the left side has no column '{l}' (available: {})", names(&ls)))
            })?;
            let rt = rs.field_with_name(r).map_err(|_| {
                Error::Schema(format!(
                    "merge: the right side has no column '{r}' (available: {})",
                    names(&rs)
                ))
            })?;
            let (lh, rh) = (
                shoal_worker::ops::table::partition::hash_type(lt.data_type()),
                shoal_worker::ops::table::partition::hash_type(rt.data_type()),
            );
            if lh != rh {
                return Err(Error::Schema(format!(
                    "merge: key '{l}' is {} on the left but '{r}' is {} on the right; cast one side \
                     (assign) so that they match",
                    lt.data_type(),
                    rt.data_type()
                )));
            }
        }
        let mut node = JoinNode {
            left: self.plan.clone(),
            right: other.plan.clone(),
            how: how.how,
            left_on: how.left_on.clone(),
            right_on: how.right_on.clone(),
            suffixes: how.suffixes.clone(),
            schema: ls.clone(),
            hint: how.strategy,
            npartitions: how.npartitions,
            strategy: None,
            cost: None,
        };
        node.schema = node.output_schema()?;
        let mut df = self.with_plan(Plan::Join(node));
        if how.strategy.is_some() {
            // A strategy the join cannot use is refused now, not when it runs.
            df.optimized()?;
        }
        for m in &other.modules {
            if !df.modules.iter().any(|x| x.reference.sha256 == m.reference.sha256) {
                df.modules.push(m.clone());
            }
        }
        Ok(df)
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn optimized(&self) -> Result<Plan> {
        optimize(&self.plan, &self.client.config().plan)
    }

    /// The task graph computing this DataFrame into intermediates, the modules its tasks call
    /// and its schema: how another collection (a Bag's `from_dataframe`, a Delayed argument)
    /// reads its result.
    pub(crate) fn lowered(&self) -> Result<(crate::graph::TaskGraph, Vec<FunctionModule>, SchemaRef)> {
        let graph = lower(&self.optimized()?, &Target::Collect)?;
        Ok((graph, self.modules.clone(), self.plan.schema()?))
    }

    /// A DataFrame whose partitions are the outputs of `source`'s graph, another collection's
    /// result.
    pub(crate) fn from_graph(
        client: &Client,
        source: plan::GraphSource,
        modules: Vec<FunctionModule>,
    ) -> Self {
        DataFrame { client: client.clone(), plan: Arc::new(Plan::Graph(Arc::new(source))), modules }
    }

    /// The optimized plan and its task graph, per stage.
    pub fn explain(&self) -> Result<String> {
        let optimized = self.optimized()?;
        let graph = lower(&optimized, &Target::Compute)?;
        let mut out = String::new();
        out.push_str("== logical plan ==\n");
        out.push_str(&self.plan.display());
        out.push_str("== optimized plan ==\n");
        out.push_str(&optimized.display());
        out.push_str(&explain_graph(&graph));
        Ok(out)
    }

    /// Runs the plan and returns the result's batches, in partition order.
    pub async fn compute(&self) -> Result<Vec<RecordBatch>> {
        Ok(self.compute_with(Events::new()).await?.0)
    }

    /// [`compute`](Self::compute), publishing the run's events to `events`' subscribers; also
    /// returns the run's totals.
    pub async fn compute_with(&self, events: Events) -> Result<(Vec<RecordBatch>, RunSummary)> {
        let graph = std::sync::Arc::new(lower(&self.optimized()?, &Target::Compute)?);
        let run = self.client.run_graph(graph.clone(), &self.modules, events).await?;
        let batches = results::collect(self.client.storage(), &graph, &run.manifests).await?;
        Ok((batches, run.summary))
    }

    /// Checks the plan that will run — optimized, lowered, every fused stage checked against
    /// the schemas of the tables its tasks will read, with the worker's own code — without
    /// running anything.
    pub fn validate(&self) -> Result<()> {
        lower(&self.optimized()?, &Target::Compute).map(|_| ())
    }
}

fn names(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// The task graph per stage, for `explain`.
pub fn explain_graph(graph: &crate::graph::TaskGraph) -> String {
    let mut out = format!("== task graph: {} tasks in {} stages ==\n", graph.len(), graph.stages.len());
    for (i, s) in graph.stages.iter().enumerate() {
        out.push_str(&format!("stage {i}: {}\n", s.summary()));
        for op in &s.operators {
            out.push_str(&format!("    {op}\n"));
        }
        if let Some(&t) = s.tasks.first() {
            let task = &graph.tasks[t];
            out.push_str(&format!("    first task: {}", task.key));
            if !task.deps.is_empty() {
                out.push_str(&format!(" (reads {} upstream tasks)", task.deps.len()));
            }
            out.push('\n');
            let pruning = task.inputs.iter().find_map(|i| match i {
                shoal_protocol::Input::Scan { predicate: Some(p), port: 0, .. } => Some(p),
                _ => None,
            });
            if let Some(p) = pruning {
                out.push_str(&format!("    prune_by: {p}\n"));
            }
            // A side table read from its files, pruned to what the task can join (a ranges join).
            let side = task.inputs.iter().find_map(|i| match i {
                shoal_protocol::Input::Scan { predicate: Some(p), port, .. } if *port > 0 => Some((port, p)),
                _ => None,
            });
            if let Some((port, p)) = side {
                out.push_str(&format!("    side table {port} prune_by: {p}\n"));
            }
            if task.skip_if_empty {
                out.push_str("    skipped when all its inputs are empty\n");
            }
        }
    }
    if let crate::graph::Collect::MergeBuckets { buckets, .. } = &graph.collect {
        out.push_str(&format!(
            "result: the {buckets} sorted ranges merged by the reader, range i from bucket i of every task of \
             the last stage (each sorted its partition); no task writes the sorted ranges\n"
        ));
    }
    if let Some(warning) = crate::graph::many_tasks_warning(graph.len()) {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{agg_sql, exact_decimal_mean};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn the_mean_of_a_decimal_is_its_exact_sum_over_its_count() {
        let schema = Schema::new(vec![
            Field::new("price", DataType::Decimal128(15, 2), true),
            Field::new("wide", DataType::Decimal128(38, 2), true),
            Field::new("x", DataType::Float64, true),
            Field::new("qty", DataType::Decimal128(15, 2), false),
        ]);
        let mean = |c: &str| exact_decimal_mean(&agg_sql(c, "mean").unwrap(), &schema);
        assert_eq!(mean("price"), r#"CAST(sum("price") AS DOUBLE) / CAST(count("price") AS DOUBLE)"#);
        // Without nulls, its count is the rows'.
        assert_eq!(mean("qty"), r#"CAST(sum("qty") AS DOUBLE) / CAST(count(*) AS DOUBLE)"#);
        // A sum of 38 digits could overflow, and a double needs no rewrite: kept.
        assert_eq!(mean("wide"), r#"avg(CAST("wide" AS DOUBLE))"#);
        assert_eq!(mean("x"), r#"avg(CAST("x" AS DOUBLE))"#);
        assert_eq!(exact_decimal_mean("sum(price)", &schema), "sum(price)");
    }
}
