//! Delayed values (`dask.delayed`): calls of `value` user functions on JSON literals, other
//! Delayed values and computed DataFrames, recorded lazily into a DAG and run as one task per
//! distinct call.
//!
//! ```no_run
//! # async fn f(client: shoal::Client) -> shoal::Result<()> {
//! let module = client.load_module("builtin:examples").await?;
//! let add = client.delayed(&module, "add_values")?;
//! let mul = client.delayed(&module, "mul")?;
//! let x = add.call([1.into(), 2.into()]);
//! let y = mul.call([(&x).into(), 10.into()]);
//! assert_eq!(y.compute().await?, serde_json::json!(30));
//! // Several values in one graph; the work they share runs once.
//! let both = shoal::collections::delayed::compute(&[&x, &y]).await?;
//! # Ok(()) }
//! ```
//!
//! Rooms: this file is the API; [`node`] the recorded calls; [`lower`] turns them into a task
//! graph. A value travels between tasks as a one-row table of JSON text (the worker's
//! `ops::calls`).

mod lower;
mod node;

use crate::client::{Client, FunctionModule};
use crate::collections::bag::Bag;
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::run::report::RunSummary;
use arrow::array::{Array, StringArray};
use lower::Lowering;
use node::{Node, NodeArg};
use shoal_protocol::{FunctionKind, FunctionRef, ITEM_COLUMN, Manifest};
use std::sync::Arc;

impl Client {
    /// The `value` function `function` of `module`, to call lazily. Checked now: a missing
    /// function or one of another kind is an error naming it, before anything runs.
    pub fn delayed(&self, module: &FunctionModule, function: &str) -> Result<DelayedFunction> {
        let what = format!("delayed({function})");
        let function = module.function(function, FunctionKind::Value, serde_json::Value::Null, &what)?;
        Ok(DelayedFunction { client: self.clone(), module: Arc::new(module.clone()), function })
    }
}

/// A `value` function, ready to be called lazily.
#[derive(Clone)]
pub struct DelayedFunction {
    client: Client,
    module: Arc<FunctionModule>,
    function: FunctionRef,
}

impl std::fmt::Debug for DelayedFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedFunction").field("function", &self.function.function).finish()
    }
}

impl DelayedFunction {
    /// The same function called with JSON keyword arguments `kwargs` (an object).
    pub fn with_kwargs(mut self, kwargs: serde_json::Value) -> Self {
        self.function.args = kwargs;
        self
    }

    pub fn name(&self) -> &str {
        &self.function.function
    }

    /// A lazy call of the function on positional `args`.
    pub fn call(&self, args: impl IntoIterator<Item = Arg>) -> Delayed {
        let args = args
            .into_iter()
            .map(|a| match a {
                Arg::Literal(v) => NodeArg::Literal(v),
                Arg::Delayed(d) => NodeArg::Value(d.node),
                Arg::DataFrame(df) => NodeArg::Frame(df),
                Arg::Bag(bag) => NodeArg::Bag(bag),
            })
            .collect();
        let node = Node { module: self.module.clone(), function: self.function.clone(), args };
        Delayed { client: self.client.clone(), node: Arc::new(node) }
    }
}

/// One positional argument of a call: a JSON literal, another Delayed value, or a DataFrame
/// (its computed rows, as a list of JSON objects). `f.call([1.into(), (&x).into(), df.into()])`.
#[derive(Debug, Clone)]
pub enum Arg {
    Literal(serde_json::Value),
    Delayed(Delayed),
    DataFrame(DataFrame),
    /// A Bag: its items, as one JSON list.
    Bag(Bag),
}

macro_rules! literal_args {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::Literal(serde_json::Value::from(v))
            }
        }
    )*};
}
literal_args!(i32, i64, u32, u64, f64, bool, &str, String);

impl From<serde_json::Value> for Arg {
    fn from(v: serde_json::Value) -> Self {
        Arg::Literal(v)
    }
}

impl From<Delayed> for Arg {
    fn from(d: Delayed) -> Self {
        Arg::Delayed(d)
    }
}

impl From<&Delayed> for Arg {
    fn from(d: &Delayed) -> Self {
        Arg::Delayed(d.clone())
    }
}

impl From<DataFrame> for Arg {
    fn from(df: DataFrame) -> Self {
        Arg::DataFrame(df)
    }
}

impl From<Bag> for Arg {
    fn from(bag: Bag) -> Self {
        Arg::Bag(bag)
    }
}

impl From<&Bag> for Arg {
    fn from(bag: &Bag) -> Self {
        Arg::Bag(bag.clone())
    }
}

impl From<&DataFrame> for Arg {
    fn from(df: &DataFrame) -> Self {
        Arg::DataFrame(df.clone())
    }
}

/// A lazy value: the result of one call. Cheap to clone; calls share the values they read.
#[derive(Clone)]
pub struct Delayed {
    client: Client,
    node: Arc<Node>,
}

impl std::fmt::Debug for Delayed {
    /// The call's function and arity only: a value may stand on a DAG of 100,000 calls.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delayed({}, {} args)", self.node.function.function, self.node.args.len())
    }
}

impl Delayed {
    /// Runs the calls this value needs and returns it.
    pub async fn compute(&self) -> Result<serde_json::Value> {
        let mut values = compute(&[self]).await?;
        values.pop().ok_or_else(|| Error::Invalid("a computation returned no value".into()))
    }

    /// [`compute`](Self::compute), publishing the run's events to `events`' subscribers; also
    /// returns the run's totals.
    pub async fn compute_with(&self, events: Events) -> Result<(serde_json::Value, RunSummary)> {
        let (mut values, summary) = compute_with(&[self], events).await?;
        let value = values.pop().ok_or_else(|| Error::Invalid("a computation returned no value".into()))?;
        Ok((value, summary))
    }

    /// The task graph, one line per stage with its task count.
    pub fn explain(&self) -> Result<String> {
        explain(&[self])
    }

    /// The key of the task computing this value (a content hash: the same in every run).
    pub fn key(&self) -> Result<shoal_protocol::TaskKey> {
        let (lowering, outputs) = lower(&[self])?;
        Ok(lowering.graph.tasks[outputs[0]].key.clone())
    }

    /// The function this value calls.
    pub fn function(&self) -> &str {
        &self.node.function.function
    }
}

/// Lowers `values` into one graph; returns it and each value's task.
fn lower(values: &[&Delayed]) -> Result<(Lowering, Vec<usize>)> {
    let mut lowering = Lowering::default();
    let outputs = values.iter().map(|v| lowering.task(&v.node)).collect::<Result<Vec<_>>>()?;
    lowering.graph.outputs = outputs.clone();
    Ok((lowering, outputs))
}

/// The task graph of `values`: one line per stage with its task count.
pub fn explain(values: &[&Delayed]) -> Result<String> {
    let (lowering, _) = lower(values)?;
    let graph = &lowering.graph;
    let mut out = format!("== task graph: {} tasks in {} stages ==\n", graph.len(), graph.stages.len());
    for (i, s) in graph.stages.iter().enumerate() {
        out.push_str(&format!("stage {i}: {} ({} tasks)\n", s.name, s.tasks.len()));
    }
    if let Some(warning) = crate::graph::many_tasks_warning(graph.len()) {
        out.push_str(&format!("warning: {warning}\n"));
    }
    Ok(out)
}

/// Computes several values in one graph: each distinct call runs once, however many of them
/// read it. The values come back in the order asked.
pub async fn compute(values: &[&Delayed]) -> Result<Vec<serde_json::Value>> {
    Ok(compute_with(values, Events::new()).await?.0)
}

/// [`compute`], publishing the run's events to `events`' subscribers; also returns the run's
/// totals.
pub async fn compute_with(
    values: &[&Delayed],
    events: Events,
) -> Result<(Vec<serde_json::Value>, RunSummary)> {
    let Some(first) = values.first() else {
        return Ok((vec![], RunSummary::default()));
    };
    let client = &first.client;
    let (lowering, outputs) = lower(values)?;
    let run = client.run_graph(std::sync::Arc::new(lowering.graph), &lowering.modules, events).await?;
    let mut out = Vec::with_capacity(outputs.len());
    for t in outputs {
        out.push(read_value(client, &run.manifests[t]).await?);
    }
    Ok((out, run.summary))
}

/// The value a call's task committed.
async fn read_value(client: &Client, manifest: &Manifest) -> Result<serde_json::Value> {
    let batches = crate::run::results::read(client.storage(), manifest).await?;
    let task = &manifest.task_key;
    let column = batches.iter().find(|b| b.num_rows() > 0).and_then(|b| b.column_by_name(ITEM_COLUMN));
    let text = column
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .filter(|c| c.is_valid(0))
        .map(|c| c.value(0))
        .ok_or_else(|| Error::Invalid(format!("task {task} committed no value")))?;
    serde_json::from_str(text)
        .map_err(|source| Error::Json { what: format!("the value of task {task}"), source })
}
