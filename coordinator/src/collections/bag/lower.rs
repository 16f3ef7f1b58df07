//! Lowering a Bag plan to the shared task graph: runs of per-item operators fuse into one task
//! per partition; a reduction is a tree (`Partial` per partition, `Combine` levels reading
//! `split_every` each, one `Final`); `take` keeps `n` per partition then `n` overall; `groupby`
//! hash-shuffles items by key through the DataFrame's shuffle. Task keys hash inputs, pipeline
//! and output, as for every collection.

use super::plan::{BagPlan, describe};
use crate::error::{Error, Result};
use crate::graph::{TaskGraph, TaskNode, upstream, upstream_bucket};
use arrow::datatypes::SchemaRef;
use shoal_protocol::{
    Input, ItemOp, ItemReduction, KEY_COLUMN, Operator, Output, Partitioning, ReduceStep, TaskKey,
};

/// Where the final stage's outputs go.
#[derive(Debug, Clone)]
pub enum Target {
    Collect,
    Parts { url: String, format: shoal_protocol::PartFormat },
}

/// A stage being built: per partition, its inputs and upstream tasks; the fused operators.
struct Pending {
    name: String,
    partitions: Vec<(Vec<Input>, Vec<usize>)>,
    ops: Vec<ItemOp>,
    bytes: u64,
}

impl Pending {
    fn new(name: &str, partitions: Vec<(Vec<Input>, Vec<usize>)>, bytes: u64) -> Self {
        Pending { name: name.into(), partitions, ops: vec![], bytes }
    }

    /// One partition reading every task of `tasks` whole.
    fn gather(name: &str, graph: &TaskGraph, tasks: Vec<usize>, bytes: u64) -> Self {
        let inputs = tasks.iter().map(|&t| upstream(&graph.tasks[t].key)).collect();
        Pending::new(name, vec![(inputs, tasks)], bytes)
    }
}

/// Lowers `plan`; the last stage's rows have `schema` (items, or a table after `to_dataframe`).
pub fn lower(plan: &BagPlan, target: &Target, last: Option<ItemOp>, schema: SchemaRef) -> Result<TaskGraph> {
    let mut graph = TaskGraph::default();
    let mut pending = lower_node(plan, &mut graph)?;
    pending.ops.extend(last);
    let output = |i: usize| match target {
        Target::Collect => Output::Intermediate,
        Target::Parts { url, format } => Output::Part { url: url.clone(), part: i, format: *format },
    };
    graph.outputs = materialize(pending, &mut graph, output, Some(schema))?;
    Ok(graph)
}

fn items_schema() -> SchemaRef {
    shoal_worker::ops::items::item_schema()
}

fn lower_node(plan: &BagPlan, graph: &mut TaskGraph) -> Result<Pending> {
    match plan {
        BagPlan::Scan { format, partitions, bytes, .. } => {
            let partitions = partitions
                .iter()
                .map(|files| {
                    let input = Input::Scan {
                        format: format.clone(),
                        files: files.clone(),
                        projection: None,
                        predicate: None,
                        schema: None,
                        port: 0,
                    };
                    (vec![input], vec![])
                })
                .collect();
            Ok(Pending::new("read", partitions, *bytes))
        }
        BagPlan::Graph { graph: other, first, bytes, .. } => {
            let outputs = graph.extend(other);
            let partitions =
                outputs.iter().map(|&t| (vec![upstream(&graph.tasks[t].key)], vec![t])).collect();
            let mut p = Pending::new("from", partitions, *bytes);
            p.ops.push(first.clone());
            Ok(p)
        }
        BagPlan::Map { input, op } => {
            let mut p = lower_node(input, graph)?;
            p.ops.push(op.clone());
            Ok(p)
        }
        BagPlan::Take { input, n } => {
            let mut p = lower_node(input, graph)?;
            p.ops.push(ItemOp::Take { n: *n });
            if p.partitions.len() == 1 {
                return Ok(p);
            }
            let tasks = materialize(p, graph, |_| Output::Intermediate, None)?;
            let mut take = Pending::gather("take", graph, tasks, plan.estimated_bytes());
            take.ops.push(ItemOp::Take { n: *n });
            Ok(take)
        }
        BagPlan::Reduce { input, reduction, split_every } => {
            lower_reduce(input, reduction, *split_every, graph)
        }
        BagPlan::GroupBy { input, key, npartitions } => {
            let mut p = lower_node(input, graph)?;
            p.ops.push(ItemOp::Keyed { key: key.clone() });
            let n = *npartitions as u32;
            let hash = Partitioning::Hash { keys: vec![KEY_COLUMN.to_string()], n };
            let bytes = p.bytes;
            let maps = materialize(p, graph, |_| Output::Shuffle { partitioning: hash.clone() }, None)?;
            let partitions = (0..n)
                .map(|b| {
                    (maps.iter().map(|&t| upstream_bucket(&graph.tasks[t].key, b, 0)).collect(), maps.clone())
                })
                .collect();
            let mut reducers = Pending::new("groupby", partitions, bytes);
            reducers.ops.push(ItemOp::GroupBy { key: key.clone() });
            Ok(reducers)
        }
    }
}

fn lower_reduce(
    input: &BagPlan,
    reduction: &ItemReduction,
    split_every: usize,
    graph: &mut TaskGraph,
) -> Result<Pending> {
    let step = |step| ItemOp::Reduce { reduction: Box::new(reduction.clone()), step };
    let mut p = lower_node(input, graph)?;
    p.ops.push(step(ReduceStep::Partial));
    if p.partitions.len() == 1 {
        p.ops.push(step(ReduceStep::Final));
        return Ok(p);
    }
    let mut level = materialize(p, graph, |_| Output::Intermediate, None)?;
    let split_every = split_every.max(2);
    while level.len() > split_every {
        let partitions = level
            .chunks(split_every)
            .map(|c| (c.iter().map(|&t| upstream(&graph.tasks[t].key)).collect(), c.to_vec()))
            .collect();
        let mut combine = Pending::new("combine", partitions, 1024);
        combine.ops.push(step(ReduceStep::Combine));
        level = materialize(combine, graph, |_| Output::Intermediate, None)?;
    }
    let mut last = Pending::gather("reduce", graph, level, 1024);
    last.ops.push(step(ReduceStep::Final));
    Ok(last)
}

/// Turns a pending stage into tasks; returns their indices in partition order. Every task's
/// ports are checked with the worker's own check.
fn materialize(
    p: Pending,
    graph: &mut TaskGraph,
    output: impl Fn(usize) -> Output,
    schema: Option<SchemaRef>,
) -> Result<Vec<usize>> {
    let name = stage_name(&p.name, &p.ops);
    let operators = p.ops.iter().map(describe).collect();
    let schema = schema.unwrap_or_else(|| {
        if matches!(p.ops.last(), Some(ItemOp::Keyed { .. })) { keyed_schema() } else { items_schema() }
    });
    let stage = graph.stage(name.clone(), operators, p.bytes, Some(schema));
    let pipeline: Vec<Operator> = p.ops.into_iter().map(Operator::Items).collect();
    let mut ids = Vec::with_capacity(p.partitions.len());
    for (index, (inputs, deps)) in p.partitions.into_iter().enumerate() {
        let output = output(index);
        shoal_worker::ops::check_ports(&inputs, &pipeline, &output)
            .map_err(|e| Error::Invalid(format!("internal planning error: stage {name}: {e}")))?;
        let key = TaskKey::derive(&name, &(&inputs, &pipeline, &output));
        let pipeline = pipeline.clone();
        ids.push(graph.push(TaskNode {
            key,
            stage,
            index,
            deps,
            inputs,
            pipeline,
            output,
            skip_if_empty: false,
        }));
    }
    Ok(ids)
}

fn keyed_schema() -> SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new(shoal_protocol::ITEM_COLUMN, DataType::Utf8, false),
        Field::new(KEY_COLUMN, DataType::Utf8, false),
    ]))
}

/// `read-map-filter`: the source and the kinds of fused operators, deduplicated in order.
fn stage_name(source: &str, ops: &[ItemOp]) -> String {
    let mut parts = vec![source.to_string()];
    for op in ops {
        let kind = match op {
            ItemOp::Map { .. } => "map",
            ItemOp::Filter { .. } | ItemOp::Where { .. } => "filter",
            ItemOp::Flatten => "flatten",
            ItemOp::Pluck { .. } => "pluck",
            ItemOp::MapPartitions { .. } => "map_partitions",
            ItemOp::Take { .. } => "take",
            ItemOp::FromRows => "rows",
            ItemOp::ToRows { .. } => "to_dataframe",
            ItemOp::Reduce { step: ReduceStep::Partial, .. } => "partial",
            ItemOp::Reduce { step: ReduceStep::Combine, .. } => "combine",
            ItemOp::Reduce { .. } => "reduce",
            ItemOp::Keyed { .. } => "shuffle",
            ItemOp::GroupBy { .. } => "groupby",
        };
        if parts.last().map(String::as_str) != Some(kind) {
            parts.push(kind.to_string());
        }
    }
    parts.join("-")
}
