//! A Bag's logical plan: sources, per-item operators (fused into one task per partition), and
//! the operators that change partitioning (reductions, `take`, `groupby`).

use crate::graph::TaskGraph;
use shoal_protocol::{FileFormat, FileSlice, ItemKey, ItemOp, ItemReduction};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum BagPlan {
    /// Files read as items: one partition per file, or per block of a large one.
    Scan { source: String, format: FileFormat, partitions: Vec<Vec<FileSlice>>, bytes: u64 },
    /// Another collection's result (a DataFrame's rows), read through `first` (`from_rows`).
    Graph { name: String, graph: Arc<TaskGraph>, first: ItemOp, bytes: u64 },
    /// A per-partition operator.
    Map { input: Arc<BagPlan>, op: ItemOp },
    /// A tree reduction into one partition.
    Reduce { input: Arc<BagPlan>, reduction: Box<ItemReduction>, split_every: usize },
    /// The first `n` items.
    Take { input: Arc<BagPlan>, n: usize },
    /// A hash shuffle of the items by `key` into `npartitions`, then grouped.
    GroupBy { input: Arc<BagPlan>, key: ItemKey, npartitions: usize },
}

impl BagPlan {
    pub fn partitions(&self) -> usize {
        match self {
            BagPlan::Scan { partitions, .. } => partitions.len(),
            BagPlan::Graph { graph, .. } => graph.outputs.len(),
            BagPlan::Map { input, .. } => input.partitions(),
            BagPlan::Reduce { .. } | BagPlan::Take { .. } => 1,
            BagPlan::GroupBy { npartitions, .. } => *npartitions,
        }
    }

    pub fn estimated_bytes(&self) -> u64 {
        match self {
            BagPlan::Scan { bytes, .. } | BagPlan::Graph { bytes, .. } => *bytes,
            BagPlan::Map { input, .. } | BagPlan::GroupBy { input, .. } => input.estimated_bytes(),
            BagPlan::Reduce { .. } => 1024,
            BagPlan::Take { input, n } => input.estimated_bytes().min(*n as u64 * 256),
        }
    }

    /// The plan as a tree, one line per node, for `explain`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        let mut stack = vec![(self, 0usize)];
        while let Some((node, depth)) = stack.pop() {
            let pad = "  ".repeat(depth);
            let (line, input) = match node {
                BagPlan::Scan { source, partitions, bytes, .. } => (
                    format!(
                        "Scan {source} [{} partitions, {}]",
                        partitions.len(),
                        crate::units::human_bytes(*bytes)
                    ),
                    None,
                ),
                BagPlan::Graph { name, graph, .. } => {
                    (format!("From {name} [{} partitions, {} tasks]", graph.outputs.len(), graph.len()), None)
                }
                BagPlan::Map { input, op } => (describe(op), Some(input)),
                BagPlan::Reduce { input, reduction, split_every } => (
                    format!("{} (tree, split_every={split_every})", describe_reduction(reduction)),
                    Some(input),
                ),
                BagPlan::Take { input, n } => (format!("Take {n}"), Some(input)),
                BagPlan::GroupBy { input, key, npartitions } => (
                    format!(
                        "GroupBy {} (hash shuffle of every item into {npartitions} partitions; \
                         foldby reduces per partition first and moves far less)",
                        describe_key(key)
                    ),
                    Some(input),
                ),
            };
            out.push_str(&format!("{pad}{line}\n"));
            if let Some(input) = input {
                stack.push((input, depth + 1));
            }
        }
        out
    }
}

/// One line for an operator, for `explain` and stage names.
pub fn describe(op: &ItemOp) -> String {
    match op {
        ItemOp::Map { function } => format!("Map {}", function.function),
        ItemOp::Filter { function, keep: true } => format!("Filter {}", function.function),
        ItemOp::Filter { function, keep: false } => format!("Remove {}", function.function),
        ItemOp::Where { predicate, keep: true } => format!("Filter {predicate}"),
        ItemOp::Where { predicate, keep: false } => format!("Remove {predicate}"),
        ItemOp::Flatten => "Flatten".into(),
        ItemOp::Pluck { path, .. } => format!("Pluck {}", path_text(path)),
        ItemOp::MapPartitions { function } => format!("MapPartitions {}", function.function),
        ItemOp::Take { n } => format!("Take {n}"),
        ItemOp::FromRows => "FromRows".into(),
        ItemOp::ToRows { schema } => format!("ToDataFrame [{} columns]", schema.len()),
        ItemOp::Reduce { reduction, step } => format!("{} {step:?}", describe_reduction(reduction)),
        ItemOp::Keyed { key } => format!("Keyed {}", describe_key(key)),
        ItemOp::GroupBy { key } => format!("GroupBy {}", describe_key(key)),
    }
}

fn describe_reduction(r: &ItemReduction) -> String {
    match r {
        ItemReduction::Count => "Count".into(),
        ItemReduction::Numeric { stat, path } => format!("{stat:?} {}", path_text(path)),
        ItemReduction::Distinct => "Distinct".into(),
        ItemReduction::Frequencies { sort } => format!("Frequencies sort={sort}"),
        ItemReduction::TopK { k, key, largest } => {
            format!("{} {k} by {}", if *largest { "TopK" } else { "BottomK" }, describe_key(key))
        }
        ItemReduction::Fold { binop, .. } => format!("Fold {}", binop.function),
        ItemReduction::FoldBy { key, binop, .. } => {
            format!("FoldBy {} {}", describe_key(key), binop.function)
        }
        ItemReduction::Custom { per_partition, aggregate } => {
            format!("Reduction {} then {}", per_partition.function, aggregate.function)
        }
    }
}

fn describe_key(key: &ItemKey) -> String {
    match key {
        ItemKey::Item => "item".into(),
        ItemKey::Path { path } => path_text(path),
        ItemKey::Function { function } => function.function.clone(),
    }
}

fn path_text(path: &[shoal_protocol::PathStep]) -> String {
    if path.is_empty() {
        return "item".into();
    }
    path.iter()
        .map(|s| match s {
            shoal_protocol::PathStep::Key(k) => k.clone(),
            shoal_protocol::PathStep::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}
