//! DataFusion sessions for planning and for running one task, in-memory frames over them, and
//! the errors of their expressions. Shared by the relational operators, joins and the
//! aggregation steps (which import this, not each other's helpers).

use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use std::sync::Arc;

/// A DataFusion session for planning: single partition, no catalog, no object stores.
pub fn session() -> SessionContext {
    let config = SessionConfig::new().with_target_partitions(1).with_information_schema(false);
    SessionContext::new_with_config(config)
}

/// A session for running one task: like [`session`], with its operators sharing a memory pool
/// of `memory_bytes` (sorts and aggregations spill to the local temp directory beyond it).
pub fn task_session(memory_bytes: u64) -> Result<SessionContext> {
    let config = SessionConfig::new().with_target_partitions(1).with_information_schema(false);
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(
            usize::try_from(memory_bytes).unwrap_or(usize::MAX),
        )))
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// A DataFrame over in-memory batches (possibly none) of `schema`.
pub fn frame(ctx: &SessionContext, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame> {
    let table = MemTable::try_new(schema, vec![batches])?;
    Ok(ctx.read_table(Arc::new(table))?)
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
            let available: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
            return Err(Error::Schema(format!(
                "{what}: unknown column '{name}' (available: {})",
                available.join(", ")
            )));
        }
    }
    Ok(())
}
