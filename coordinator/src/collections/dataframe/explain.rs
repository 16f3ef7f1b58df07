//! `explain`: the plan as an indented tree, one line per operator.

use super::estimate::filter_selectivity;
use super::plan::{AggStrategy, AggregateNode, JoinNode, JoinStrategy, MapOp, Plan};
use crate::units::human_bytes;
use shoal_protocol::{FileFormat, JoinBuild, SortKey, TableOp};
use std::fmt::Write as _;

impl Plan {
    /// An indented tree, for `explain`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        self.fmt_tree(&mut out, 0);
        out
    }

    fn fmt_tree(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        match self {
            Plan::Scan(s) => {
                let fmt = match &s.format {
                    FileFormat::Parquet => "parquet",
                    FileFormat::Csv(_) => "csv",
                    FileFormat::Json(o) if o.lines => "json lines",
                    FileFormat::Json(_) => "json",
                    FileFormat::ArrowIpc => "arrow",
                    FileFormat::Lines(o) if o.json => "json lines as items",
                    FileFormat::Lines(_) => "text lines",
                };
                let _ = write!(
                    out,
                    "{pad}Scan {fmt} {} [{} files, {} partitions, {}]",
                    s.source,
                    s.files.len(),
                    s.partitions.len(),
                    human_bytes(s.file_bytes())
                );
                if let Some(p) = &s.projection {
                    let _ = write!(out, " columns=[{}]", p.join(", "));
                }
                if let Some(p) = &s.predicate {
                    let _ = write!(out, " prune_by=({p})");
                }
                let blocks = s.partitions.iter().filter(|p| p.iter().any(|f| f.block.is_some())).count();
                if blocks > 0 {
                    let _ = write!(out, " blocks={blocks}");
                }
                if s.schema_on_read && matches!(s.format, FileFormat::Parquet) {
                    out.push_str(" schema=union");
                }
                out.push('\n');
            }
            Plan::Map { input, op: MapOp::Filter { predicate }, .. } => {
                let _ = writeln!(out, "{pad}Filter {predicate} [{}]", filter_selectivity(input, predicate));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Map { input, op, .. } => {
                let _ = writeln!(out, "{pad}{}", describe(&op.to_table_op()));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Head { input, n } => {
                let _ = writeln!(out, "{pad}Head n={n}");
                input.fmt_tree(out, depth + 1);
            }
            Plan::TopK { input, keys, n } => {
                let _ = writeln!(out, "{pad}TopK n={n} by {}", sort_keys(keys));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Aggregate(a) => {
                let aggs: Vec<String> = a.aggs.iter().map(|(n, e)| format!("{n} = {e}")).collect();
                let _ = write!(out, "{pad}Aggregate by [{}]: {}", a.keys.join(", "), aggs.join(", "));
                if let Some(strategy) = aggregate_strategy(a) {
                    let _ = write!(out, " [{strategy}]");
                }
                out.push('\n');
                a.input.fmt_tree(out, depth + 1);
            }
            Plan::Join(j) => {
                let on: Vec<String> =
                    j.left_on.iter().zip(&j.right_on).map(|(l, r)| format!("{l} = {r}")).collect();
                let _ = write!(out, "{pad}Join {} on {}", j.how.as_str(), on.join(" AND "));
                if let Some(strategy) = join_strategy(j) {
                    let _ = write!(out, " [{strategy}]");
                }
                out.push('\n');
                j.left.fmt_tree(out, depth + 1);
                j.right.fmt_tree(out, depth + 1);
            }
            Plan::Sort { input, keys, npartitions, index } => {
                let what = if *index { "SetIndex" } else { "Sort" };
                let _ =
                    writeln!(out, "{pad}{what} by {} into {npartitions} range partitions", sort_keys(keys));
                input.fmt_tree(out, depth + 1);
            }
            Plan::Repartition { input, npartitions } => {
                let _ = writeln!(out, "{pad}Repartition npartitions={npartitions}");
                input.fmt_tree(out, depth + 1);
            }
            Plan::Shared { input } => {
                let _ = writeln!(out, "{pad}Shared [used more than once: computed once, read by every use]");
                input.fmt_tree(out, depth + 1);
            }
            Plan::Graph(g) => {
                let _ = writeln!(
                    out,
                    "{pad}From {} [{} partitions, {} tasks]",
                    g.name,
                    g.graph.outputs.len(),
                    g.graph.len()
                );
            }
        }
    }
}

/// `strategy=shuffle split_out=4: why`, as `explain` prints an aggregation's strategy.
pub fn aggregate_strategy(a: &AggregateNode) -> Option<String> {
    a.strategy.as_ref().map(|(s, why)| match s {
        AggStrategy::Tree { split_every } => format!("strategy=tree split_every={split_every}: {why}"),
        AggStrategy::Shuffle { split_out } => format!("strategy=shuffle split_out={split_out}: {why}"),
        AggStrategy::Local => format!("strategy=local: {why}"),
    })
}

/// `strategy=broadcast side=right: why`, as `explain` prints a join's strategy.
pub fn join_strategy(j: &JoinNode) -> Option<String> {
    j.strategy.as_ref().map(|(s, why)| {
        let detail = match s {
            JoinStrategy::Hash { npartitions } => format!(" npartitions={npartitions}"),
            JoinStrategy::BroadcastRight => " side=right".into(),
            JoinStrategy::BroadcastLeft => " side=left".into(),
            JoinStrategy::PartitionWise | JoinStrategy::Divisions | JoinStrategy::Ranges => String::new(),
        };
        format!("strategy={}{detail}: {why}", s.name())
    })
}

/// `a ASC, b DESC NULLS FIRST`.
pub fn sort_keys(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| {
            let dir = if k.ascending { "ASC" } else { "DESC" };
            let nulls = if k.nulls_first { "NULLS FIRST" } else { "NULLS LAST" };
            format!("{} {dir} {nulls}", k.column)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line describing an operator.
pub fn describe(op: &TableOp) -> String {
    match op {
        TableOp::Filter { predicate } => format!("Filter {predicate}"),
        TableOp::Select { columns } => format!("Select {}", columns.join(", ")),
        TableOp::Assign { columns } => format!(
            "Assign {}",
            columns.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
        ),
        TableOp::MapPartitions { module, function, args } => {
            format!(
                "MapPartitions {function}({args}) [wasm {}]",
                &module.sha256[..12.min(module.sha256.len())]
            )
        }
        TableOp::Apply { function, output } => format!(
            "Apply {}({}) row-wise -> {} [wasm {}]",
            function.function,
            function.args,
            output.iter().map(|f| format!("{}: {}", f.name, f.data_type)).collect::<Vec<_>>().join(", "),
            &function.module.sha256[..12.min(function.module.sha256.len())]
        ),
        TableOp::Head { n } => format!("Head n={n}"),
        TableOp::Sort { keys } => format!("Sort {}", sort_keys(keys)),
        TableOp::Aggregate { mode, keys, aggs, .. } => format!(
            "Aggregate({mode:?}) by [{}]: {}",
            keys.join(", "),
            aggs.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
        ),
        TableOp::Join { how, left_on, right_on, build, .. } => format!(
            "Join {} on {}{}",
            how.as_str(),
            left_on.iter().zip(right_on).map(|(l, r)| format!("{l} = {r}")).collect::<Vec<_>>().join(" AND "),
            match build {
                JoinBuild::Side => "",
                JoinBuild::Input => " (hash table on the input, the side table streams)",
            }
        ),
        TableOp::Sample { columns, rows } => format!("Sample {rows} rows of [{}]", columns.join(", ")),
        TableOp::Boundaries { keys, n } => format!("Boundaries of {n} ranges by {}", sort_keys(keys)),
        TableOp::Melt { rows, columns, .. } => format!(
            "Melt {} statistics of [{}]",
            rows.len(),
            columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}
