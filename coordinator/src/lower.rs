//! Lowering a logical plan to a task graph: runs of per-partition operators fuse into one task
//! per partition; a change of partitioning (head, reductions, joins, sorts, repartitions) ends a
//! stage. Task keys hash the task's inputs (object identity incl. size/ETag, upstream keys), its
//! pipeline and its output, so the same work has the same key in every run.
//!
//! Shapes (M input partitions, N output partitions):
//! - tree aggregation: M `Partial` tasks, levels of `Combine` tasks reading `split_every` each,
//!   one `Final` task;
//! - shuffle aggregation: M `Partial` tasks writing N hash buckets each, N `Final` reducers;
//! - broadcast join: the small side materialized, every partition of the other reads all of it;
//!   partition-wise join: partition i of each side paired; hash join: both sides shuffled into
//!   N buckets, N join reducers;
//! - sort: M sample tasks, one boundaries task, M range-shuffle map tasks, N sorting reducers;
//! - repartition: adjacent partitions concatenated (fewer) or each split by rows (more).

use crate::error::{Error, Result};
use crate::graph::{Stage, TaskGraph, TaskNode, upstream_bucket, upstream_port};
use crate::plan::{AggStrategy, JoinStrategy, Plan, describe};
use shoal_protocol::{AggregateMode, Input, JoinHow, Operator, Output, Partitioning, SortKey, TaskKey};

/// Graphs larger than this get a warning: per-task overhead (a spec, a commit, a few requests)
/// starts to dominate, and larger partitions would do the same work with fewer tasks.
pub const MANY_TASKS: usize = 100_000;

/// The warning for a graph of `tasks` tasks, if it is too large.
pub fn many_tasks_warning(tasks: usize) -> Option<String> {
    (tasks > MANY_TASKS).then(|| {
        format!(
            "the task graph has {tasks} tasks (more than {MANY_TASKS}); per-task overhead will dominate: \
             use larger partitions (fewer input files, repartition, npartitions, split_out)"
        )
    })
}

/// Rows each partition contributes to the sample a sort's boundaries are computed from.
const SAMPLE_ROWS: usize = 256;

/// Where the final stage's outputs go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Intermediate Arrow IPC under the job root (`compute()`).
    Collect,
    /// User-visible Parquet parts under this URL (`to_parquet()`).
    Parquet { url: String },
}

/// A stage being built: per partition, its inputs and upstream tasks; the fused operators.
#[derive(Clone)]
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

/// Input reading every task of `tasks` whole, feeding table `port`.
fn read_all(graph: &TaskGraph, tasks: &[usize], port: u32) -> Vec<Input> {
    tasks.iter().map(|&t| upstream_port(&graph.tasks[t].key, port)).collect()
}

/// Input reading bucket `b` of every shuffle map task of `tasks`, feeding table `port`.
fn read_bucket(graph: &TaskGraph, tasks: &[usize], b: usize, port: u32) -> Vec<Input> {
    tasks.iter().map(|&t| upstream_bucket(&graph.tasks[t].key, b as u32, port)).collect()
}

fn shuffle(partitioning: Partitioning) -> impl Fn(usize) -> Output {
    move |_| Output::Shuffle { partitioning: partitioning.clone() }
}

/// A one-partition stage reading `tasks` whole.
fn gather(name: &str, graph: &TaskGraph, tasks: Vec<usize>, ops: Vec<Operator>, bytes: u64) -> Pending {
    Pending {
        name: name.into(),
        partitions: vec![(read_all(graph, &tasks, 0), tasks)],
        ops,
        estimated_bytes: bytes,
    }
}

/// An N-partition stage, partition `b` reading bucket `b` of `left` (port 0) and of `right`
/// (port 1).
fn reduce(
    name: &str,
    graph: &TaskGraph,
    n: usize,
    left: &[usize],
    right: &[usize],
    op: Operator,
    bytes: u64,
) -> Pending {
    let partitions = (0..n)
        .map(|b| {
            let mut inputs = read_bucket(graph, left, b, 0);
            inputs.extend(read_bucket(graph, right, b, 1));
            (inputs, left.iter().chain(right).copied().collect())
        })
        .collect();
    Pending { name: name.into(), partitions, ops: vec![op], estimated_bytes: bytes }
}

/// Adds `tasks`, read whole as table `port`, to every partition of `p`.
fn attach(p: &mut Pending, graph: &TaskGraph, tasks: &[usize], port: u32) {
    for (inputs, deps) in &mut p.partitions {
        inputs.extend(read_all(graph, tasks, port));
        deps.extend(tasks);
    }
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
            Ok(gather("head", graph, tasks, vec![Operator::Head { n: *n }], 0))
        }
        Plan::TopK { input, keys, n } => {
            let mut p = lower_node(input, graph)?;
            let ops = vec![Operator::Sort { keys: keys.clone() }, Operator::Head { n: *n }];
            p.ops.extend(ops.clone());
            let tasks = materialize(p, graph, |_| Output::Intermediate);
            Ok(gather("topk", graph, tasks, ops, plan.estimated_bytes()))
        }
        Plan::Aggregate(a) => {
            let raw = shoal_worker::schema::to_fields(a.input.schema()?.as_ref());
            let step = |mode| Operator::Aggregate {
                mode,
                keys: a.keys.clone(),
                aggs: a.aggs.clone(),
                input: raw.clone(),
            };
            let mut p = lower_node(&a.input, graph)?;
            let out_bytes = plan.estimated_bytes();
            match a.strategy.as_ref().map(|s| s.0) {
                Some(AggStrategy::Shuffle { split_out }) => {
                    p.ops.push(step(AggregateMode::Partial));
                    let hash = Partitioning::Hash { keys: a.keys.clone(), n: split_out as u32 };
                    let maps = materialize(p, graph, shuffle(hash));
                    Ok(reduce(
                        "aggregate",
                        graph,
                        split_out,
                        &maps,
                        &[],
                        step(AggregateMode::Final),
                        out_bytes,
                    ))
                }
                Some(AggStrategy::Tree { split_every }) if p.partitions.len() > 1 => {
                    p.ops.push(step(AggregateMode::Partial));
                    let mut level = materialize(p, graph, |_| Output::Intermediate);
                    while level.len() > split_every {
                        let pending = Pending {
                            name: "combine".into(),
                            partitions: level
                                .chunks(split_every)
                                .map(|c| (read_all(graph, c, 0), c.to_vec()))
                                .collect(),
                            ops: vec![step(AggregateMode::Combine)],
                            estimated_bytes: out_bytes,
                        };
                        level = materialize(pending, graph, |_| Output::Intermediate);
                    }
                    Ok(gather("aggregate", graph, level, vec![step(AggregateMode::Final)], out_bytes))
                }
                Some(AggStrategy::Tree { .. }) => {
                    // One partition sees every row: aggregate in one step, fused.
                    p.ops.push(step(AggregateMode::Single));
                    Ok(p)
                }
                None => Err(Error::Invalid("internal: aggregation lowered before optimization".into())),
            }
        }
        Plan::Join(j) => {
            let op = |how: JoinHow, left_on: &[String], right_on: &[String], suffixes: (String, String)| {
                Operator::Join {
                    port: 1,
                    how,
                    left_on: left_on.to_vec(),
                    right_on: right_on.to_vec(),
                    suffixes,
                }
            };
            let join = op(j.how, &j.left_on, &j.right_on, j.suffixes.clone());
            match j.strategy.as_ref().map(|s| s.0) {
                Some(JoinStrategy::BroadcastRight) => {
                    let small = materialize(lower_node(&j.right, graph)?, graph, |_| Output::Intermediate);
                    let mut p = lower_node(&j.left, graph)?;
                    attach(&mut p, graph, &small, 1);
                    p.ops.push(join);
                    Ok(p)
                }
                Some(JoinStrategy::BroadcastLeft) => {
                    // Mirror: the right side streams, the left is read whole; the same columns
                    // come out (suffixes swapped), put back in the left-then-right order.
                    let small = materialize(lower_node(&j.left, graph)?, graph, |_| Output::Intermediate);
                    let mut p = lower_node(&j.right, graph)?;
                    attach(&mut p, graph, &small, 1);
                    let how = match j.how {
                        JoinHow::Right => JoinHow::Left,
                        other => other,
                    };
                    let swapped = (j.suffixes.1.clone(), j.suffixes.0.clone());
                    p.ops.push(op(how, &j.right_on, &j.left_on, swapped));
                    let columns = j.schema.fields().iter().map(|f| f.name().clone()).collect();
                    p.ops.push(Operator::Select { columns });
                    Ok(p)
                }
                Some(JoinStrategy::PartitionWise) => {
                    let right = materialize(lower_node(&j.right, graph)?, graph, |_| Output::Intermediate);
                    let mut p = lower_node(&j.left, graph)?;
                    if p.partitions.len() != right.len() {
                        return Err(Error::Invalid(format!(
                            "internal: partition-wise join of {} and {} partitions",
                            p.partitions.len(),
                            right.len()
                        )));
                    }
                    for ((inputs, deps), &r) in p.partitions.iter_mut().zip(&right) {
                        inputs.push(upstream_port(&graph.tasks[r].key, 1));
                        deps.push(r);
                    }
                    p.ops.push(join);
                    Ok(p)
                }
                Some(JoinStrategy::Divisions) => {
                    let Plan::Sort { input, keys, npartitions, .. } = &*j.left else {
                        return Err(Error::Invalid(
                            "internal: a divisions join needs an indexed left side".into(),
                        ));
                    };
                    let (mut p, bounds) = lower_sort(input, keys, *npartitions, graph)?;
                    // A right side indexed by the key need not be sorted: it is re-partitioned.
                    let right = match &*j.right {
                        Plan::Sort { input, index: true, .. } => input.as_ref(),
                        other => other,
                    };
                    let mut r = lower_node(right, graph)?;
                    match bounds {
                        Some(b) => {
                            attach(&mut r, graph, &[b], 1);
                            let rkeys: Vec<SortKey> = keys
                                .iter()
                                .zip(&j.right_on)
                                .map(|(k, c)| SortKey { column: c.clone(), ..k.clone() })
                                .collect();
                            let n = *npartitions as u32;
                            let maps = materialize(
                                r,
                                graph,
                                shuffle(Partitioning::Range { keys: rkeys, port: 1, n }),
                            );
                            for (i, (inputs, deps)) in p.partitions.iter_mut().enumerate() {
                                inputs.extend(read_bucket(graph, &maps, i, 1));
                                deps.extend(&maps);
                            }
                        }
                        // One left partition: it reads the whole right side.
                        None => {
                            let tasks = materialize(r, graph, |_| Output::Intermediate);
                            attach(&mut p, graph, &tasks, 1);
                        }
                    }
                    p.ops.push(join);
                    Ok(p)
                }
                Some(JoinStrategy::Hash { npartitions: n }) => {
                    let lhash = Partitioning::Hash { keys: j.left_on.clone(), n: n as u32 };
                    let rhash = Partitioning::Hash { keys: j.right_on.clone(), n: n as u32 };
                    let left = materialize(lower_node(&j.left, graph)?, graph, shuffle(lhash));
                    let right = materialize(lower_node(&j.right, graph)?, graph, shuffle(rhash));
                    Ok(reduce("join", graph, n, &left, &right, join, plan.estimated_bytes()))
                }
                None => Err(Error::Invalid("internal: join lowered before optimization".into())),
            }
        }
        Plan::Sort { input, keys, npartitions: n, .. } => Ok(lower_sort(input, keys, *n, graph)?.0),
        Plan::Repartition { input, npartitions: n } => {
            let p = lower_node(input, graph)?;
            let (m, n) = (p.partitions.len(), (*n).max(1));
            if n == m {
                return Ok(p);
            }
            let bytes = input.estimated_bytes();
            if n < m {
                // Adjacent partitions concatenated. Row-wise operators commute with that, so
                // their inputs merge without a stage boundary; anything else is materialized.
                let row_wise = p.ops.iter().all(|op| {
                    matches!(op, Operator::Filter { .. } | Operator::Select { .. } | Operator::Assign { .. })
                });
                let (parts, ops) = if row_wise {
                    (p.partitions.clone(), p.ops.clone())
                } else {
                    let tasks = materialize(p, graph, |_| Output::Intermediate);
                    let parts = tasks.iter().map(|&t| (read_all(graph, &[t], 0), vec![t])).collect();
                    (parts, vec![])
                };
                let partitions = (0..n)
                    .map(|j| {
                        let group = &parts[j * m / n..(j + 1) * m / n];
                        let inputs = group.iter().flat_map(|(i, _)| i.clone()).collect();
                        let deps = group.iter().flat_map(|(_, d)| d.clone()).collect();
                        (inputs, deps)
                    })
                    .collect();
                return Ok(Pending { name: "repartition".into(), partitions, ops, estimated_bytes: bytes });
            }
            // More partitions: partition i splits by rows into pieces_i contiguous pieces.
            let pieces = |i: usize| (i + 1) * n / m - i * n / m;
            let maps = materialize(p, graph, |i| Output::Shuffle {
                partitioning: Partitioning::Split { n: pieces(i) as u32 },
            });
            let partitions = maps
                .iter()
                .enumerate()
                .flat_map(|(i, &t)| (0..pieces(i)).map(move |b| (b, t)))
                .map(|(b, t)| (vec![upstream_bucket(&graph.tasks[t].key, b as u32, 0)], vec![t]))
                .collect();
            Ok(Pending { name: "repartition".into(), partitions, ops: vec![], estimated_bytes: bytes })
        }
    }
}

/// A global sort into `n` range partitions; also returns the task holding the boundaries (the
/// divisions of the output), when there is more than one partition.
fn lower_sort(
    input: &Plan,
    keys: &[SortKey],
    n: usize,
    graph: &mut TaskGraph,
) -> Result<(Pending, Option<usize>)> {
    let mut p = lower_node(input, graph)?;
    let bytes = input.estimated_bytes();
    let sort = Operator::Sort { keys: keys.to_vec() };
    if n == 1 && p.partitions.len() == 1 {
        p.ops.push(sort);
        return Ok((p, None));
    }
    if n == 1 {
        let tasks = materialize(p, graph, |_| Output::Intermediate);
        return Ok((gather("sort", graph, tasks, vec![sort], bytes), None));
    }
    // 1. A sample of the sort keys of every partition; 2. the n-1 boundaries from all samples;
    // 3. every partition range-shuffled by them; 4. each range sorted.
    let mut sample = p.clone();
    let columns: Vec<String> = keys.iter().map(|k| k.column.clone()).collect();
    if sample.ops.is_empty() {
        // Straight from the files: the sample reads only the key columns.
        for (inputs, _) in &mut sample.partitions {
            for input in inputs {
                if let Input::Scan { projection, .. } = input {
                    *projection = Some(columns.clone());
                }
            }
        }
    }
    sample.ops.push(Operator::Sample { columns, rows: SAMPLE_ROWS });
    let samples = materialize(sample, graph, |_| Output::Intermediate);
    let bounds = Operator::Boundaries { keys: keys.to_vec(), n: n as u32 };
    let bounds =
        materialize(gather("boundaries", graph, samples, vec![bounds], 0), graph, |_| Output::Intermediate);
    let mut map = p;
    attach(&mut map, graph, &bounds, 1);
    let range = Partitioning::Range { keys: keys.to_vec(), port: 1, n: n as u32 };
    let maps = materialize(map, graph, shuffle(range));
    Ok((reduce("sort", graph, n, &maps, &[], sort, bytes), bounds.first().copied()))
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
            Operator::Sort { .. } => "sort",
            Operator::Aggregate { mode: AggregateMode::Partial, .. } => "partial",
            Operator::Aggregate { .. } => "aggregate",
            Operator::Join { .. } => "join",
            Operator::Sample { .. } => "sample",
            Operator::Boundaries { .. } => "boundaries",
            Operator::Melt { .. } => "melt",
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
