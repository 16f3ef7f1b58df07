//! DataFusion sessions for planning and for running one task, in-memory frames over them, and
//! the errors of their expressions. Shared by the relational operators, joins and the
//! aggregation steps (which import this, not each other's helpers).

use crate::error::{Error, Result};
use crate::io::Stream;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};
use std::sync::{Arc, LazyLock, Mutex};

/// The DataFusion session for planning: single partition, no catalog, no object stores. Built
/// once per process (registering DataFusion's functions costs more than a tiny task's whole
/// plan) and shared: planning registers nothing in it.
pub fn session() -> SessionContext {
    static PLANNING: LazyLock<SessionContext> = LazyLock::new(|| SessionContext::new_with_config(config()));
    PLANNING.clone()
}

fn config() -> SessionConfig {
    SessionConfig::new().with_target_partitions(1).with_information_schema(false)
}

/// Idle task sessions, by memory limit, for reuse by later tasks of this process.
static IDLE: Mutex<Vec<(u64, SessionContext)>> = Mutex::new(Vec::new());
/// Most idle sessions kept.
const IDLE_MAX: usize = 64;

/// The session one task runs in: like [`session`], with its operators sharing a memory pool of
/// `memory_bytes` (sorts and aggregations spill to the local temp directory beyond it). Taken
/// from the sessions earlier tasks gave back when one has the same limit: a session serves one
/// task at a time, so its pool is that task's alone. Given back when dropped, only if its pool
/// holds nothing (every reservation of the task released); otherwise it is discarded.
pub struct TaskSession {
    ctx: SessionContext,
    memory_bytes: u64,
}

impl std::fmt::Debug for TaskSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSession")
            .field("session", &self.ctx.session_id())
            .field("memory_bytes", &self.memory_bytes)
            .finish()
    }
}

impl TaskSession {
    pub fn take(memory_bytes: u64) -> Result<Self> {
        let mut idle = IDLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = idle.iter().rposition(|(m, _)| *m == memory_bytes) {
            let (_, ctx) = idle.swap_remove(i);
            return Ok(Self { ctx, memory_bytes });
        }
        drop(idle);
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(
                usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            )))
            .build_arc()?;
        // A sort reserves room for merging its spilled runs up front (10 MB by default): no more
        // than a quarter of a small pool, or it could not sort at all.
        let mut config = config();
        let reserve = &mut config.options_mut().execution.sort_spill_reservation_bytes;
        *reserve = (*reserve).min(usize::try_from(memory_bytes / 4).unwrap_or(usize::MAX));
        // DataFusion's physical optimizer rules, then the rewrite of ANDs and ORs (a builder given
        // one rule would run that rule alone).
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        rules.push(Arc::new(super::conjunction::WholeBooleans));
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.add_optimizer_rule(Arc::new(super::rescale::RescaleLiterals));
        Ok(Self { ctx, memory_bytes })
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }
}

impl Drop for TaskSession {
    fn drop(&mut self) {
        if self.ctx.runtime_env().memory_pool.reserved() != 0 {
            return;
        }
        let mut idle = IDLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push((self.memory_bytes, self.ctx.clone()));
        }
    }
}

/// A DataFrame over in-memory batches (possibly none) of `schema`.
pub fn frame(ctx: &SessionContext, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame> {
    let table = MemTable::try_new(schema, vec![batches])?;
    Ok(ctx.read_table(Arc::new(table))?)
}

/// A DataFrame over rows arriving as `stream`, read once, as the plan over it runs.
pub fn stream_frame(ctx: &SessionContext, stream: Stream) -> Result<DataFrame> {
    let schema = stream.schema.clone();
    let source = Arc::new(Once { schema: schema.clone(), stream: Mutex::new(Some(stream)) });
    let table = StreamingTable::try_new(schema, vec![source])?;
    Ok(ctx.read_table(Arc::new(table))?)
}

/// Runs `df` in `session`, its output as a stream of batches produced as it is read. The stream
/// holds the session until it ends (its memory pool accounts for the operators' state).
pub async fn execute_stream(df: DataFrame, session: Arc<TaskSession>) -> Result<Stream> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.execute_stream().await?.map(move |batch| {
        let _held = &session;
        batch.map_err(Error::from)
    });
    Ok(Stream { schema, batches: batches.boxed() })
}

/// A task's input stream as a DataFusion partition: executed once (a plan reads its source once).
struct Once {
    schema: SchemaRef,
    stream: Mutex<Option<Stream>>,
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Once").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = match self.stream.lock() {
            Ok(mut s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let batches = match taken {
            Some(stream) => stream.batches.map_err(|e| DataFusionError::External(Box::new(e))).boxed(),
            None => futures::stream::once(async {
                Err(DataFusionError::Internal("a task's input stream was read twice".into()))
            })
            .boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// An expression of operator `what` that does not plan: a [`Error::Schema`] naming it.
pub fn expr_error(what: &str, sql: &str, e: datafusion::error::DataFusionError) -> Error {
    // DataFusion's messages carry a backtrace-free context chain; keep the first line.
    // DataFusion names columns of an anonymous table `"?table?".x`; users never see that name.
    let msg = e.strip_backtrace().replace("\"?table?\".", "").replace("'?table?'.", "");
    Error::Schema(format!("{what}: invalid expression '{sql}': {msg}"))
}

/// Refuses `names` that are not columns of `df`, listing the columns it has.
pub fn check_columns<'a>(df: &DataFrame, what: &str, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    for name in names {
        if df.schema().field_with_unqualified_name(name).is_err() {
            return Err(unknown_column(what, name, df.schema().as_arrow()));
        }
    }
    Ok(())
}

/// Operator `what`'s error for `name`, which is no column of `schema`: a [`Error::Schema`]
/// listing the columns there are.
pub fn unknown_column(what: &str, name: &str, schema: &arrow::datatypes::Schema) -> Error {
    let available: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    Error::Schema(format!("{what}: unknown column '{name}' (available: {})", available.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::conjunction::WholeBoolean;
    use crate::ops::table::conjunction::tests::batch;
    use arrow::array::Int64Array;
    use datafusion::physical_plan::filter::FilterExec;
    use datafusion::prelude::col;

    /// A task plan's filter gets the rewritten predicate and the same rows.
    #[tokio::test]
    async fn task_plans_filter_with_whole_conjunctions() {
        let b = batch();
        let session = TaskSession::take(1 << 30).unwrap();
        let df = frame(session.ctx(), b.schema(), vec![b.clone()])
            .unwrap()
            .filter(
                col("a")
                    .gt_eq(datafusion::prelude::lit(3i64))
                    .and(col("b").eq(datafusion::prelude::lit("x"))),
            )
            .unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let mut stack = vec![plan];
        let mut found = false;
        while let Some(node) = stack.pop() {
            if let Some(filter) = node.downcast_ref::<FilterExec>() {
                found |= filter.predicate().is::<WholeBoolean>();
            }
            stack.extend(node.children().into_iter().cloned());
        }
        assert!(found, "no filter with a whole conjunction");
        // DataFusion's own rules still run before it.
        let rules = session.ctx().state().physical_optimizers().len();
        assert_eq!(
            rules,
            datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules.len() + 1
        );
        let rows = df.collect().await.unwrap();
        let a: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(a, [3]);
    }
}
