//! The lazy DataFrame: each method records an operator in the logical plan (validating column
//! names and expressions against the schema right away, as Dask does with `meta`); nothing runs
//! until [`DataFrame::compute`] or [`DataFrame::to_parquet`].

use crate::client::{Client, FunctionModule};
use crate::error::{Error, Result};
use crate::lower::{Target, lower};
use crate::plan::{Plan, optimize};
use crate::scheduler::{EventSink, RunSummary};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use shoal_protocol::{Operator, OutputObject, PROTOCOL_VERSION, SuccessManifest, layout};
use std::sync::Arc;

/// An expression: an SQL expression string (`"fare > 10 AND vendor = 'A'"`) or a DataFusion
/// [`Expr`](datafusion::prelude::Expr) built with `col("fare").gt(lit(10))`.
#[derive(Debug, Clone)]
pub struct ExprArg(String);

impl From<&str> for ExprArg {
    fn from(s: &str) -> Self {
        ExprArg(s.to_string())
    }
}

impl From<String> for ExprArg {
    fn from(s: String) -> Self {
        ExprArg(s)
    }
}

impl From<datafusion::prelude::Expr> for ExprArg {
    fn from(e: datafusion::prelude::Expr) -> Self {
        // Unparse to SQL: expressions travel to workers as SQL strings.
        match datafusion::sql::unparser::expr_to_sql(&e) {
            Ok(sql) => ExprArg(sql.to_string()),
            Err(_) => ExprArg(e.to_string()),
        }
    }
}

/// A lazy, partitioned table.
#[derive(Debug, Clone)]
pub struct DataFrame {
    client: Client,
    plan: Arc<Plan>,
    modules: Vec<FunctionModule>,
}

/// What `to_parquet` wrote.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    pub parts: Vec<OutputObject>,
    pub rows: u64,
    pub run: RunSummary,
}

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

    fn map(&self, op: Operator) -> Result<DataFrame> {
        let input = self.plan.schema()?;
        let schema = shoal_worker::pipeline::output_schema(input, std::slice::from_ref(&op))?;
        Ok(self.with_plan(Plan::Map { input: self.plan.clone(), op, schema }))
    }

    fn with_plan(&self, plan: Plan) -> DataFrame {
        DataFrame { client: self.client.clone(), plan: Arc::new(plan), modules: self.modules.clone() }
    }

    /// Keeps rows where `predicate` is true.
    pub fn filter(&self, predicate: impl Into<ExprArg>) -> Result<DataFrame> {
        self.map(Operator::Filter { predicate: predicate.into().0 })
    }

    /// Keeps these columns, in this order.
    pub fn select<S: AsRef<str>>(&self, columns: &[S]) -> Result<DataFrame> {
        self.map(Operator::Select { columns: columns.iter().map(|c| c.as_ref().to_string()).collect() })
    }

    /// Adds (or replaces) a column computed from an expression.
    pub fn assign(&self, name: &str, expr: impl Into<ExprArg>) -> Result<DataFrame> {
        self.map(Operator::Assign { columns: vec![(name.to_string(), expr.into().0)] })
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
        if !module.functions.iter().any(|(n, _)| n == function) {
            return Err(Error::Invalid(format!(
                "module has no function '{function}' (available: {})",
                module.functions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
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
        let op = Operator::MapPartitions {
            module: module.reference.clone(),
            function: function.to_string(),
            args,
        };
        let mut df = self.with_plan(Plan::Map { input: self.plan.clone(), op, schema: out.batch.schema() });
        if !df.modules.iter().any(|m| m.reference.sha256 == module.reference.sha256) {
            df.modules.push(module.clone());
        }
        Ok(df)
    }

    /// The first `n` rows (lazily; a single output partition).
    pub fn head(&self, n: usize) -> DataFrame {
        self.with_plan(Plan::Head { input: self.plan.clone(), n })
    }

    /// The optimized plan and its task graph, per stage.
    pub fn explain(&self) -> Result<String> {
        let optimized = optimize(&self.plan)?;
        let graph = lower(&optimized, &Target::Collect)?;
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
        Ok(self.compute_with(None).await?.0)
    }

    /// [`compute`](Self::compute) with progress events; also returns the run's totals.
    pub async fn compute_with(&self, events: Option<EventSink>) -> Result<(Vec<RecordBatch>, RunSummary)> {
        let graph = lower(&optimize(&self.plan)?, &Target::Collect)?;
        let run = self.client.run_graph(&graph, &self.modules, events).await?;
        let storage = self.client.storage();
        let mut batches = Vec::new();
        for &t in &graph.outputs {
            for out in &run.manifests[t].outputs {
                let bytes = storage.get(&out.object).await?;
                let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
                    .map_err(|e| Error::Input { url: out.object.url.clone(), message: e.to_string() })?;
                for b in reader {
                    batches.push(
                        b.map_err(|e| Error::Input { url: out.object.url.clone(), message: e.to_string() })?,
                    );
                }
            }
        }
        Ok((batches, run.summary))
    }

    /// Writes the result as Parquet parts `part-00000.parquet`, … under `location`, then a
    /// `_SUCCESS` manifest listing them. A reader that trusts `_SUCCESS` never sees a partial
    /// result; re-running rewrites identical parts.
    pub async fn to_parquet(&self, location: &str, events: Option<EventSink>) -> Result<WriteSummary> {
        let storage = self.client.storage();
        let dir = storage.resolve(location)?;
        let graph = lower(&optimize(&self.plan)?, &Target::Parquet { url: dir.url.clone() })?;
        let run = self.client.run_graph(&graph, &self.modules, events).await?;
        let parts: Vec<OutputObject> =
            graph.outputs.iter().flat_map(|&t| run.manifests[t].outputs.iter().cloned()).collect();
        let rows = parts.iter().map(|p| p.rows).sum();
        let success = SuccessManifest {
            version: PROTOCOL_VERSION,
            job_id: graph.outputs.first().map(|&t| graph.tasks[t].key.to_string()).unwrap_or_default(),
            parts: parts.clone(),
            rows,
            extra: Default::default(),
        };
        let body = serde_json::to_vec_pretty(&success).map_err(|e| Error::Invalid(e.to_string()))?;
        storage.put(&dir.join(layout::SUCCESS).url, Bytes::from(body)).await?;
        Ok(WriteSummary { parts, rows, run: run.summary })
    }
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
        }
    }
    if graph.len() > 100_000 {
        out.push_str("warning: more than 100k tasks; use larger partitions\n");
    }
    out
}
