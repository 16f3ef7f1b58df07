//! The `table` family: operators over Arrow tables (DataFrame partitions).
//!
//! Layout:
//! - [`relational`]: filter, select, assign, head, sort, single-step aggregate and join as steps
//!   of one DataFusion plan (a run of them fuses into one plan).
//! - [`aggregate`]: the steps of a distributed group-by (partial, combine, final).
//! - [`join`]: equi-joins with pandas `merge` naming.
//! - [`partition`]: splitting rows into the buckets of a shuffle (hash, range, split).
//! - [`sample`]: sampling sort keys and the boundaries of a range shuffle.
//! - [`nunique`]: a grouped `count(DISTINCT x)` keeping each group's values in its own slot.
//! - [`sort`]: a sort that ends a run, of a table held whole (a range shuffle's map task's
//!   partition, or its bucket), without a plan.
//! - [`merge`]: sorted runs merged into one sorted table (the last step of a sort, done by the
//!   reader of its result).
//! - [`reshape`]: the `melt` kernel.
//! - [`apply`]: row-wise `apply` through an `items` user function (rows as JSON objects).
//! - [`program`]: runs of filter, select and assign compiled to physical expressions.
//! - [`conjunction`]: ANDs and ORs of simple comparisons evaluated over whole batches (a
//!   rewrite of programs' expressions and a physical optimizer rule of task sessions).
//! - [`rescale`]: decimal literals written at the scale of what they are added to (a rewrite of
//!   programs' expressions and an optimizer rule of task sessions).
//! - [`scan_filter`]: a task's first filter applied by the reader of its Parquet files, the
//!   string columns it tests read as dictionaries.
//! - [`session`]: DataFusion sessions and in-memory frames, shared by the above.

pub mod aggregate;
pub mod apply;
pub mod conjunction;
pub mod join;
pub mod merge;
pub mod nunique;
pub mod partition;
pub mod program;
pub mod relational;
pub mod rescale;
pub mod reshape;
pub mod sample;
pub mod scan_filter;
pub mod session;
pub mod sort;

use super::Functions;
use crate::error::{Error, Result};
use crate::io::{Data, Stream, Table, schema};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{DataFrame, SessionContext};
use session::{TaskSession, frame, session};
use shoal_protocol::{AggregateMode, Input, Output, TableOp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A task's side tables by port (the right side of a join, range boundaries).
pub type Sides = BTreeMap<u32, Table>;

/// Runs a run of table operators over `data`: compiled to a program where it can be, else as
/// one DataFusion plan in a session whose operators share `memory_bytes`. A sort that ends the
/// run sorts the rows whole with the [`sort`] kernel when they and their sorted copy fit in
/// `memory_bytes` (a stream is read while they do: a range shuffle's map task sorts its
/// partition before splitting it), else in the plan, which spills.
pub async fn run(
    ops: &[&TableOp],
    data: Data,
    sides: &Sides,
    memory_bytes: u64,
    functions: &mut impl Functions,
) -> Result<Data> {
    let (ops, sort) = match ops.split_last() {
        Some((TableOp::Sort { keys }, before)) => (before, Some(keys)),
        _ => (ops, None),
    };
    let mut data = data;
    if !ops.is_empty() {
        data = run_plan(ops, data, sides, memory_bytes, functions).await?;
    }
    let Some(keys) = sort else { return Ok(data) };
    let data = match data {
        Data::Stream(stream) => match stream.read_within(memory_bytes / 2).await? {
            Ok(table) => Data::Table(table),
            Err(stream) => Data::Stream(stream),
        },
        table => table,
    };
    if let Data::Table(table) = &data
        && sort::eligible(table, keys, memory_bytes)
    {
        return Ok(Data::Table(sort::sort(data.into_table().await?, keys)?));
    }
    let op = TableOp::Sort { keys: keys.clone() };
    run_plan(&[&op], data, sides, memory_bytes, functions).await
}

/// [`run`] without the sort kernel: a program, or one plan.
async fn run_plan(
    ops: &[&TableOp],
    data: Data,
    sides: &Sides,
    memory_bytes: u64,
    functions: &mut impl Functions,
) -> Result<Data> {
    if program::eligible(ops)
        && let Some(program) = program::compiled(data.schema(), ops)
    {
        return program.run(data);
    }
    let session = Arc::new(TaskSession::take(memory_bytes)?);
    // A filter, selections and assignments feeding a partial aggregation: the filter marks rows
    // for the aggregation to skip rather than copying the rows it keeps.
    if let Some((TableOp::Aggregate { mode: AggregateMode::Partial, keys, aggs, .. }, before)) =
        ops.split_last()
        && program::eligible(before)
        && let Some(program) = program::compiled(data.schema(), before)
        && program.markable()
        && let Some(calls) = aggregate::marked_calls(program.schema(), keys, aggs)
    {
        let marked = program.run_marked(data.into_stream())?;
        return Ok(Data::Table(aggregate::run_marked(session.ctx(), marked, keys, calls).await?));
    }
    let mut rows = Rows::new(session, data);
    for op in ops {
        rows = rows.apply(op, sides, functions).await?;
    }
    rows.into_data().await
}

/// The rows between two steps of a pipeline: a pending DataFusion plan, or materialized batches.
pub struct Rows {
    session: Arc<TaskSession>,
    current: Current,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("session", &self.session.ctx().session_id())
            .field("current", &self.current)
            .finish()
    }
}

#[derive(Debug)]
enum Current {
    Frame(DataFrame),
    Table(SchemaRef, Vec<RecordBatch>),
    Stream(Stream),
}

impl Rows {
    /// `data`, to be transformed within `session` (one task's).
    pub fn new(session: Arc<TaskSession>, data: Data) -> Self {
        let current = match data {
            Data::Table((schema, batches)) => Current::Table(schema, batches),
            Data::Stream(stream) => Current::Stream(stream),
        };
        Self { session, current }
    }

    /// Applies one operator. Runs of relational operators fuse into one DataFusion plan,
    /// executed only when something that is not a plan step needs the rows.
    pub async fn apply(self, op: &TableOp, sides: &Sides, functions: &mut impl Functions) -> Result<Self> {
        let Rows { session, current } = self;
        let ctx = session.ctx();
        if relational::is_relational(op) {
            let df = relational::apply(current.into_frame(ctx)?, op, sides)?;
            return Ok(Rows { session, current: Current::Frame(df) });
        }
        let (schema, batches) = match op {
            TableOp::Aggregate { mode, keys, aggs, input } => {
                let raw = schema::from_fields(input)?;
                aggregate::run(ctx, current.into_frame(ctx)?, *mode, keys, aggs, raw).await?
            }
            TableOp::Sample { columns, rows } => {
                let (s, b) = current.into_table().await?;
                sample::sample(&s, &b, columns, *rows)?
            }
            TableOp::Boundaries { keys, n } => {
                let (s, b) = current.into_table().await?;
                sample::boundaries(&s, &b, keys, *n)?
            }
            TableOp::Melt { id, rows, columns } => {
                let (s, b) = current.into_table().await?;
                reshape::melt(&s, &b, id, rows, columns)?
            }
            TableOp::Apply { function, output } => {
                let table = current.into_table().await?;
                apply::apply(functions, function, output, table).await?
            }
            TableOp::MapPartitions { module, function, args } => {
                let (schema, batches) = current.into_table().await?;
                let input = arrow::compute::concat_batches(&schema, &batches)
                    .map_err(Error::arrow("map_partitions: concatenating the input"))?;
                let output = functions.call(module, function, input, args).await?;
                (output.schema(), vec![output])
            }
            other => return Err(Error::InvalidTask(format!("operator {other:?} cannot run here"))),
        };
        Ok(Rows { session, current: Current::Table(schema, batches) })
    }

    /// The rows: a pending plan as the stream of its output, run as it is read.
    pub async fn into_data(self) -> Result<Data> {
        match self.current {
            Current::Table(schema, batches) => Ok(Data::Table((schema, batches))),
            Current::Stream(stream) => Ok(Data::Stream(stream)),
            Current::Frame(df) => Ok(Data::Stream(session::execute_stream(df, self.session).await?)),
        }
    }
}

impl Current {
    fn into_frame(self, ctx: &SessionContext) -> Result<DataFrame> {
        match self {
            Current::Frame(df) => Ok(df),
            Current::Table(schema, batches) => frame(ctx, schema, batches),
            Current::Stream(stream) => session::stream_frame(ctx, stream),
        }
    }

    async fn into_table(self) -> Result<Table> {
        match self {
            Current::Table(schema, batches) => Ok((schema, batches)),
            Current::Stream(stream) => Data::Stream(stream).into_table().await,
            Current::Frame(df) => {
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await?;
                Ok((schema, batches))
            }
        }
    }
}

/// Whether `ops` turn an empty table (and empty side tables) into an empty table, so that a
/// task whose inputs are all empty need not run. Not so for whole-table aggregations (one row
/// of nothing), `melt`, and user functions (which may make rows from nothing).
pub fn preserves_empty(ops: &[TableOp]) -> bool {
    ops.iter().all(op_preserves_empty)
}

fn op_preserves_empty(op: &TableOp) -> bool {
    match op {
        TableOp::Filter { .. }
        | TableOp::Select { .. }
        | TableOp::Assign { .. }
        | TableOp::Head { .. }
        | TableOp::Sort { .. }
        | TableOp::Join { .. }
        | TableOp::Sample { .. }
        | TableOp::Boundaries { .. }
        | TableOp::Apply { .. } => true,
        TableOp::Aggregate { keys, .. } => !keys.is_empty(),
        TableOp::MapPartitions { .. } | TableOp::Melt { .. } => false,
    }
}

/// Checks that a task's inputs and its operators agree on the side-table ports: every side port
/// an input feeds is read by exactly one operator (a join) or by the output (a range shuffle's
/// boundaries), every port they read is fed, and there is a main input (port 0). Two tables
/// sharing one port would be appended into one table, so this refuses such a task outright.
pub fn check_ports(inputs: &[Input], ops: &[TableOp], output: &Output) -> Result<()> {
    super::ports::check(inputs, ops.iter().filter_map(side_port), output)
}

/// The side table `op` reads, if any.
pub fn side_port(op: &TableOp) -> Option<u32> {
    match op {
        TableOp::Join { port, .. } => Some(*port),
        _ => None,
    }
}

/// The divisions a pipeline ending in `last` declares: the rows of a `Boundaries` step, as text.
pub fn divisions(last: &TableOp, output: &[RecordBatch]) -> Result<Option<Vec<Vec<String>>>> {
    match last {
        TableOp::Boundaries { .. } => sample::rows_as_text(output).map(Some),
        _ => Ok(None),
    }
}

/// The output schema of relational operators applied to `schema`, validating every expression.
/// `sides` are the schemas of side tables (a join's right side). An aggregation is validated as
/// the single-step aggregation whose result its steps produce together.
pub fn output_schema(
    schema: SchemaRef,
    ops: &[TableOp],
    sides: &BTreeMap<u32, SchemaRef>,
) -> Result<SchemaRef> {
    let ctx = session();
    let sides: Sides = sides.iter().map(|(p, s)| (*p, (s.clone(), vec![]))).collect();
    let mut df = frame(&ctx, schema, vec![])?;
    for op in ops {
        // The kernels that are not plan steps run on an empty table: the same code decides.
        let input = || Arc::new(df.schema().as_arrow().clone());
        let kernel = match op {
            TableOp::Melt { id, rows, columns } => Some(reshape::melt(&input(), &[], id, rows, columns)?),
            TableOp::Sample { columns, rows } => Some(sample::sample(&input(), &[], columns, *rows)?),
            TableOp::Boundaries { keys, n } => Some(sample::boundaries(&input(), &[], keys, *n)?),
            TableOp::Apply { output, .. } => Some((apply::output_schema(&input(), output)?, vec![])),
            TableOp::MapPartitions { function, .. } => {
                return Err(Error::InvalidTask(format!(
                    "map_partitions {function}: its output schema is the function's, found by calling it"
                )));
            }
            _ => None,
        };
        if let Some((schema, _)) = kernel {
            df = frame(&ctx, schema, vec![])?;
            continue;
        }
        let op = match op {
            TableOp::Aggregate { keys, aggs, input, .. } => TableOp::Aggregate {
                mode: AggregateMode::Single,
                keys: keys.clone(),
                aggs: aggs.clone(),
                input: input.clone(),
            },
            other => other.clone(),
        };
        df = relational::apply(df, &op, &sides)?;
    }
    Ok(Arc::new(df.schema().as_arrow().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use shoal_protocol::TableOp;
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("fare", DataType::Float64, true),
            Field::new("vendor", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn output_schema_follows_operators() {
        let ops = vec![
            TableOp::Filter { predicate: "fare > 10 AND vendor = 'A'".into() },
            TableOp::Assign { columns: vec![("tip".into(), "fare * 0.2".into())] },
            TableOp::Select { columns: vec!["tip".into(), "vendor".into()] },
        ];
        let out = output_schema(schema(), &ops, &BTreeMap::new()).unwrap();
        let names: Vec<_> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["tip", "vendor"]);
        assert_eq!(out.field(0).data_type(), &DataType::Float64);
    }

    #[test]
    fn unknown_columns_and_bad_expressions_are_named() {
        let err =
            output_schema(schema(), &[TableOp::Filter { predicate: "nope > 1".into() }], &BTreeMap::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = output_schema(
            schema(),
            &[TableOp::Assign { columns: vec![("x".into(), "fare +* 2".into())] }],
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fare +* 2"), "{err}");
        let err =
            output_schema(schema(), &[TableOp::Select { columns: vec!["zzz".into()] }], &BTreeMap::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("'zzz'") && err.contains("fare"), "{err}");
    }
}
