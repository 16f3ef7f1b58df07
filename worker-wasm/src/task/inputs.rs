//! Reading a task's inputs: fetched concurrently (a shuffle reducer's range reads above all),
//! grouped by port (0 the main table, the others side tables), and held against the task's
//! memory limit.

use crate::error::{Error, Result};
use crate::io::Table;
use crate::io::memory::held_bytes;
use crate::io::scan::{self, Loaded};
use crate::io::storage::Storage;
use crate::ops::table::Sides;
use arrow::datatypes::Schema;
use futures::{StreamExt, TryStreamExt};
use shoal_protocol::{Input, TaskMetrics, TaskSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bound on concurrent input reads of one task.
const INPUT_CONCURRENCY: usize = 16;

/// Reads the inputs of `spec`: its main table and its side tables, counted in `metrics`.
/// Refuses inputs that alone take more memory than the task may use.
pub async fn read(storage: &Storage, spec: &TaskSpec, metrics: &mut TaskMetrics) -> Result<(Table, Sides)> {
    let pending: Vec<_> = spec.inputs.iter().map(|input| read_port(storage, input)).collect();
    let reads = futures::stream::iter(pending).buffered(INPUT_CONCURRENCY).try_collect::<Vec<_>>().await?;
    let mut tables: BTreeMap<u32, Option<Loaded>> = BTreeMap::new();
    for (port, part) in reads {
        metrics.bytes_read += part.bytes_read;
        metrics.objects_read += part.objects_read;
        metrics.requests += part.requests;
        metrics.records_skipped += part.records_skipped;
        let acc = tables.entry(port).or_default();
        Loaded::append(acc, part, || format!("inputs of table {port} of one task differ in schema"))?;
    }
    let (schema, batches) = match tables.remove(&0).flatten() {
        Some(Loaded { schema, batches, .. }) => (schema, batches),
        // A call of literals only reads nothing.
        None if !crate::ops::needs_main_input(&spec.pipeline) => (Arc::new(Schema::empty()), vec![]),
        None => return Err(Error::InvalidTask("task has no main input".into())),
    };
    let sides: Sides =
        tables.into_iter().filter_map(|(p, l)| l.map(|l| (p, (l.schema, l.batches)))).collect();
    metrics.rows_in = batches.iter().map(|b| b.num_rows() as u64).sum();
    let held = held_bytes(batches.iter().chain(sides.values().flat_map(|(_, b)| b))) as u64;
    let limit = spec.limits.task_memory_bytes;
    if held > limit {
        return Err(Error::InputsOverMemoryLimit { held, limit });
    }
    Ok(((schema, batches), sides))
}

async fn read_port(storage: &Storage, input: &Input) -> Result<(u32, Loaded)> {
    Ok((input.port(), scan::read_input(storage, input).await?))
}
