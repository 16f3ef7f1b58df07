//! Reading a task's inputs: fetched concurrently (a shuffle reducer's range reads above all),
//! grouped by port (0 the main table, the others side tables), and held against the task's
//! memory limit. A filter that starts the task's operators is applied by the Parquet reader of
//! its main table where that reads less ([`ScanFilter`]).

use crate::error::{Error, Result};
use crate::io::memory::held_bytes;
use crate::io::reader::IoCounter;
use crate::io::scan::{self, Loaded, RowFilter};
use crate::io::storage::Storage;
use crate::io::{Data, Stream};
use crate::ops::table::Sides;
use crate::ops::table::scan_filter::ScanFilter;
use arrow::datatypes::Schema;
use futures::{StreamExt, TryStreamExt};
use shoal_protocol::{FileFormat, Input, Operator, Output, TableOp, TaskMetrics, TaskSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bound on concurrent input reads of one task.
const INPUT_CONCURRENCY: usize = 16;

/// A task's inputs as read.
#[derive(Debug)]
pub struct Read {
    /// The main table.
    pub main: Data,
    /// The side tables, by port.
    pub sides: Sides,
    /// What a streamed main table reads, known once the stream has been consumed.
    pub tally: Option<Tally>,
    /// How many of the task's first operators the reads applied (its first filter, applied by
    /// the Parquet reader: see [`ScanFilter`]).
    pub applied: usize,
}

/// Reads the inputs of `spec`: its main table and its side tables, counted in `metrics`.
/// Refuses inputs read whole that alone take more memory than the task may use. A main table
/// of Parquet scans feeding relational operators (or the output directly) streams instead: it
/// is read as the plan consumes it, the task memory limit bounding what the operators hold, and
/// its reads are counted by the returned [`Tally`] once the stream has been consumed.
pub async fn read(storage: &Arc<Storage>, spec: &TaskSpec, metrics: &mut TaskMetrics) -> Result<Read> {
    let (main, side_inputs): (Vec<&Input>, Vec<&Input>) = spec.inputs.iter().partition(|i| i.port() == 0);
    let filter = scan_filter(spec, &main);
    let streamed = match streams(spec) {
        true => {
            let tally = Tally {
                counter: Arc::new(IoCounter::default()),
                objects: 0,
                rows: Arc::default(),
                filter: filter.clone(),
            };
            let filter = filter.clone().map(|f| f as Arc<dyn RowFilter>);
            scan::stream_parquet(storage.clone(), &main, tally.counter.clone(), filter)
                .await?
                .map(|stream| (stream, tally))
        }
        false => None,
    };
    let whole: Vec<&Input> = match &streamed {
        Some(_) => side_inputs,
        None => spec.inputs.iter().collect(),
    };
    let filter = filter.as_ref();
    let reads = match whole.as_slice() {
        // One input (most tasks of a wide stage): no concurrency to arrange.
        [input] => vec![read_port(storage, input, filter).await?],
        _ => {
            let pending: Vec<_> = whole.iter().map(|input| read_port(storage, input, filter)).collect();
            futures::stream::iter(pending).buffered(INPUT_CONCURRENCY).try_collect::<Vec<_>>().await?
        }
    };
    let mut tables: BTreeMap<u32, Option<Loaded>> = BTreeMap::new();
    for (port, part) in reads {
        metrics.bytes_read += part.bytes_read;
        metrics.objects_read += part.objects_read;
        metrics.requests += part.requests;
        metrics.records_skipped += part.records_skipped;
        let acc = tables.entry(port).or_default();
        Loaded::append(acc, part, || format!("inputs of table {port} of one task differ in schema"))?;
    }
    let main = match (streamed, tables.remove(&0).flatten()) {
        (Some((stream, mut tally)), _) => {
            tally.objects = main.iter().map(|i| files(i)).sum();
            let rows = tally.rows.clone();
            let batches = stream.batches.inspect_ok(move |b| {
                rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            });
            (Data::Stream(Stream { schema: stream.schema, batches: batches.boxed() }), Some(tally))
        }
        (None, Some(Loaded { schema, batches, .. })) => {
            metrics.rows_in = rows_in(filter, || batches.iter().map(|b| b.num_rows() as u64).sum());
            (Data::Table((schema, batches)), None)
        }
        // A call of literals only reads nothing.
        (None, None) if !crate::ops::needs_main_input(&spec.pipeline) => {
            (Data::Table((Arc::new(Schema::empty()), vec![])), None)
        }
        (None, None) => return Err(Error::InvalidTask("task has no main input".into())),
    };
    let sides: Sides =
        tables.into_iter().filter_map(|(p, l)| l.map(|l| (p, (l.schema, l.batches)))).collect();
    let main_batches = match &main.0 {
        Data::Table((_, batches)) => batches.as_slice(),
        Data::Stream(_) => &[],
    };
    let held = held_bytes(main_batches.iter().chain(sides.values().flat_map(|(_, b)| b))) as u64;
    let limit = spec.limits.task_memory_bytes;
    if held > limit {
        return Err(Error::InputsOverMemoryLimit { held, limit });
    }
    let applied = usize::from(filter.is_some_and(|f| f.applied()));
    Ok(Read { main: main.0, sides, tally: main.1, applied })
}

/// The filter that starts the task's operators, for the reader of its main table to apply, when
/// that table is Parquet files read whole (not conformed to an evolved schema).
fn scan_filter(spec: &TaskSpec, main: &[&Input]) -> Option<Arc<ScanFilter>> {
    let Some(Operator::Table(TableOp::Filter { predicate })) = spec.pipeline.first() else { return None };
    let parquet =
        |input: &&Input| matches!(input, Input::Scan { format: FileFormat::Parquet, schema: None, .. });
    (!main.is_empty() && main.iter().all(parquet)).then(|| Arc::new(ScanFilter::new(predicate)))
}

/// Whether the main table of `spec` may stream: its operators start with a relational run (or
/// there are none), that run joins nothing, and its output is a table, not a chunk of an array.
/// A join's plan builds its hash table on the side with the smaller statistics, and a stream has
/// none: joined to a side table, the stream would be the one held whole.
fn streams(spec: &TaskSpec) -> bool {
    let table_run = spec.pipeline.iter().map_while(|op| match op {
        Operator::Table(op) => Some(op),
        _ => None,
    });
    let joins = table_run.clone().any(|op| crate::ops::table::side_port(op).is_some());
    spec.pipeline.first().is_none_or(|op| matches!(op, Operator::Table(_)))
        && !joins
        && !matches!(spec.output, Output::Zarr { .. })
}

fn files(input: &Input) -> u64 {
    match input {
        Input::Scan { files, .. } => files.len() as u64,
        _ => 1,
    }
}

/// What a streamed main table read, known once the stream has been consumed.
#[derive(Debug)]
pub struct Tally {
    counter: Arc<IoCounter>,
    objects: u64,
    rows: Arc<AtomicU64>,
    /// The filter the reads applied, which counts the rows they decoded.
    filter: Option<Arc<ScanFilter>>,
}

impl Tally {
    /// Adds the reads of the stream to `metrics`.
    pub fn count(&self, metrics: &mut TaskMetrics) {
        metrics.bytes_read += self.counter.bytes();
        metrics.requests += self.counter.requests();
        metrics.objects_read += self.objects;
        metrics.rows_in += rows_in(self.filter.as_ref(), || self.rows.load(Ordering::Relaxed));
    }
}

/// The rows a main table's reads decoded: counted by the filter where the reads applied it (the
/// rows it dropped included), else the rows the reads gave (`seen`).
fn rows_in(filter: Option<&Arc<ScanFilter>>, seen: impl FnOnce() -> u64) -> u64 {
    match filter.filter(|f| f.applied()) {
        Some(filter) => filter.rows_read(),
        None => seen(),
    }
}

/// Reads one input; `filter` applies to the main table's (port 0).
async fn read_port(
    storage: &Storage,
    input: &Input,
    filter: Option<&Arc<ScanFilter>>,
) -> Result<(u32, Loaded)> {
    let filter = filter.filter(|_| input.port() == 0).map(|f| f.clone() as Arc<dyn RowFilter>);
    Ok((input.port(), scan::read_input(storage, input, filter.as_ref()).await?))
}
