//! Lowering a logical plan to a task graph: runs of per-partition operators fuse into one task
//! per partition; a change of partitioning (`Head` today; reductions and shuffles later) ends a
//! stage. Task keys hash the task's inputs (object identity incl. size/ETag, upstream keys), its
//! pipeline and its output, so the same work has the same key in every run.

use crate::error::Result;
use crate::graph::{Stage, TaskGraph, TaskNode, upstream};
use crate::plan::{Plan, describe};
use shoal_protocol::{Input, Operator, Output, TaskKey};

/// Where the final stage's outputs go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Intermediate Arrow IPC under the job root (`compute()`).
    Collect,
    /// User-visible Parquet parts under this URL (`to_parquet()`).
    Parquet { url: String },
}

/// A stage being built: per partition, its inputs and upstream tasks; the fused operators.
struct Pending {
    name: String,
    partitions: Vec<(Vec<Input>, Vec<usize>)>,
    ops: Vec<Operator>,
    estimated_bytes: u64,
}

pub fn lower(plan: &Plan, target: &Target) -> Result<TaskGraph> {
    let mut graph = TaskGraph::default();
    let pending = lower_node(plan, &mut graph)?;
    let output = |i: usize| match target {
        Target::Collect => Output::Intermediate,
        Target::Parquet { url } => Output::Parquet { url: url.clone(), part: i },
    };
    graph.outputs = materialize(pending, &mut graph, output);
    Ok(graph)
}

fn lower_node(plan: &Plan, graph: &mut TaskGraph) -> Result<Pending> {
    match plan {
        Plan::Scan(scan) => {
            let schema = match &scan.format {
                shoal_protocol::FileFormat::Csv(_) => {
                    Some(shoal_worker::schema::to_fields(&scan.file_schema))
                }
                _ => None,
            };
            let partitions = scan
                .partitions
                .iter()
                .map(|files| {
                    let input = Input::Scan {
                        format: scan.format.clone(),
                        files: files.clone(),
                        projection: scan.projection.clone(),
                        predicate: scan.predicate.clone(),
                        schema: schema.clone(),
                    };
                    (vec![input], vec![])
                })
                .collect();
            Ok(Pending {
                name: "scan".into(),
                partitions,
                ops: vec![],
                estimated_bytes: scan.estimated_bytes(),
            })
        }
        Plan::Map { input, op, .. } => {
            let mut p = lower_node(input, graph)?;
            p.ops.push(op.clone());
            Ok(p)
        }
        Plan::Head { input, n } => {
            let mut p = lower_node(input, graph)?;
            // Each partition keeps at most n rows, then one task takes the first n overall.
            p.ops.push(Operator::Head { n: *n });
            let tasks = materialize(p, graph, |_| Output::Intermediate);
            let inputs = tasks.iter().map(|&t| upstream(&graph.tasks[t].key)).collect();
            Ok(Pending {
                name: "head".into(),
                partitions: vec![(inputs, tasks)],
                ops: vec![Operator::Head { n: *n }],
                estimated_bytes: 0,
            })
        }
    }
}

/// Turns a pending stage into tasks; returns their indices in partition order.
fn materialize(p: Pending, graph: &mut TaskGraph, output: impl Fn(usize) -> Output) -> Vec<usize> {
    let name = stage_name(&p.name, &p.ops);
    let stage = graph.stage(name.clone(), p.ops.iter().map(describe).collect(), p.estimated_bytes);
    let mut ids = Vec::with_capacity(p.partitions.len());
    for (index, (inputs, deps)) in p.partitions.into_iter().enumerate() {
        let output = output(index);
        let key = TaskKey::derive(&name, &(&inputs, &p.ops, &output));
        ids.push(graph.push(TaskNode { key, stage, index, deps, inputs, pipeline: p.ops.clone(), output }));
    }
    ids
}

/// `scan-filter-assign`: the source and the kinds of fused operators, deduplicated in order.
fn stage_name(source: &str, ops: &[Operator]) -> String {
    let mut parts = vec![source.to_string()];
    for op in ops {
        let kind = match op {
            Operator::Filter { .. } => "filter",
            Operator::Select { .. } => "select",
            Operator::Assign { .. } => "assign",
            Operator::MapPartitions { .. } => "map",
            Operator::Head { .. } => "head",
        };
        if parts.last().map(String::as_str) != Some(kind) {
            parts.push(kind.to_string());
        }
    }
    parts.join("-")
}

impl Stage {
    /// One line summary for `explain`.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} tasks, ~{})",
            self.name,
            self.tasks.len(),
            crate::plan::human_bytes(self.estimated_bytes)
        )
    }
}
