//! Operators: what a task does to its rows, by family.
//!
//! A pipeline is a list of [`Operator`]s, and each names its family; the family decides how it
//! runs, and this module dispatches on it: [`table`] (Arrow tables: DataFrame partitions),
//! [`items`] (JSON items: Bag partitions), [`calls`] (user functions on whole values: Delayed),
//! [`chunks`] (chunks of n-dimensional arrays: Array). A pipeline runs as maximal runs of one family, each
//! handing the next an Arrow table (items travel as a table of one JSON text column). Nothing
//! outside `ops` names an operator of a family.
//!
//! Operators never touch storage or the sandbox: a task hands them its rows and side tables, and
//! runs the user functions they call through [`Functions`].

pub mod calls;
pub mod chunks;
pub mod items;
mod ports;
pub mod table;

use crate::error::{Error, Result};
use crate::io::Data;
use arrow::record_batch::RecordBatch;
use shoal_protocol::{FunctionKind, FunctionRef, Input, ModuleRef, Operator, Output, TableOp};
use table::Sides;

/// What a pipeline needs from the task that runs it, beyond rows: calls of user functions. The
/// task fetches and compiles the components, and accounts for the calls.
pub trait Functions {
    /// Calls `function` of `module` on `input` with JSON `args`, returning its output rows.
    fn call(
        &mut self,
        module: &ModuleRef,
        function: &str,
        input: RecordBatch,
        args: &serde_json::Value,
    ) -> impl Future<Output = Result<RecordBatch>> + Send;

    /// Calls a function of a JSON kind (`Items`, `Binop`, `Value`) on encoded `inputs`, the
    /// bytes [`FunctionKind`] describes, returning the output bytes. A function declared with
    /// another kind is refused.
    fn call_json(
        &mut self,
        function: &FunctionRef,
        kind: FunctionKind,
        inputs: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send;
}

/// Runs `pipeline` over a task's main table `input`, with its side tables `sides`, in a session
/// whose operators share `memory_bytes`. A run of relational operators over a stream runs as
/// the stream arrives and hands on a stream; the other families take their rows whole.
pub async fn run(
    pipeline: &[Operator],
    input: Data,
    sides: &Sides,
    memory_bytes: u64,
    functions: &mut impl Functions,
) -> Result<Data> {
    let mut data = input;
    for run in pipeline.chunk_by(|a, b| a.family() == b.family()) {
        data = match &run[0] {
            Operator::Table(_) => {
                let ops = run
                    .iter()
                    .map(|op| match op {
                        Operator::Table(op) => Ok(op),
                        other => Err(unsupported_family(other)),
                    })
                    .collect::<Result<Vec<&TableOp>>>()?;
                table::run(&ops, data, sides, memory_bytes, functions).await?
            }
            Operator::Items(_) => {
                Data::Table(items::run(run, data.into_table().await?, sides, functions).await?)
            }
            Operator::Calls(_) => {
                Data::Table(calls::run(run, data.into_table().await?, sides, functions).await?)
            }
            Operator::Chunks(_) => {
                Data::Table(chunks::run(run, data.into_table().await?, sides, functions).await?)
            }
            other => return Err(unsupported_family(other)),
        };
    }
    Ok(data)
}

/// Whether a task running `pipeline` needs a main input (port 0): a run of calls of literals
/// has none.
pub fn needs_main_input(pipeline: &[Operator]) -> bool {
    match pipeline.first() {
        Some(Operator::Chunks(_)) => chunks::needs_main_input(pipeline),
        _ => !calls::is_calls(pipeline),
    }
}

/// The divisions (sort boundaries as text) that `pipeline`'s `output` declares, if any.
pub fn divisions(pipeline: &[Operator], output: &[RecordBatch]) -> Result<Option<Vec<Vec<String>>>> {
    match pipeline.last() {
        Some(Operator::Table(op)) => table::divisions(op, output),
        _ => Ok(None),
    }
}

/// Checks that a task's inputs and its operators agree on the side-table ports (see
/// [`table::check_ports`]; a pipeline of calls: [`calls::check_ports`]).
pub fn check_ports(inputs: &[Input], pipeline: &[Operator], output: &Output) -> Result<()> {
    if pipeline.iter().any(|op| matches!(op, Operator::Calls(_))) {
        return calls::check_ports(inputs, pipeline);
    }
    // Chunk operators name the ports they read and refuse a missing one when they run.
    if pipeline.iter().any(|op| matches!(op, Operator::Chunks(_))) {
        return Ok(());
    }
    let reads = pipeline.iter().filter_map(|op| match op {
        Operator::Table(op) => table::side_port(op),
        _ => None,
    });
    ports::check(inputs, reads, output)
}

/// The error for an operator of a family this worker cannot run.
fn unsupported_family(op: &Operator) -> Error {
    Error::InvalidTask(format!("operator family '{}' is not supported by this worker", op.family()))
}
