//! Lowering a logical plan to a task graph: runs of per-partition operators fuse into one task
//! per partition; a change of partitioning (head, reductions, joins, sorts, repartitions) ends a
//! stage. Task keys hash the task's inputs (object identity incl. size/ETag, upstream keys), its
//! pipeline and its output, so the same work has the same key in every run.
//!
//! Shapes (M input partitions, N output partitions):
//! - tree aggregation: M `Partial` tasks, levels of `Combine` tasks reading `split_every` each,
//!   one `Final` task;
//! - shuffle aggregation: M `Partial` tasks writing N hash buckets each, N `Final` reducers;
//! - local aggregation (partitions holding disjoint key ranges): one fused `Single` step per
//!   partition;
//! - broadcast join: the small side materialized, every partition of the other reads all of it;
//!   partition-wise join: partition i of each side paired; ranges join: the right side
//!   materialized, partition i of the left reads the right partitions whose key ranges overlap
//!   its own; hash join: both sides shuffled into
//!   N buckets, N join reducers — a side hash-partitioned on its keys into N partitions already
//!   (a shuffled aggregation by them) is not shuffled again: a left one runs the join in its own
//!   tasks, a right one is read a task per reducer;
//! - sort: M sample tasks, one boundaries task, M range-shuffle map tasks, N sorting reducers;
//! - repartition: adjacent partitions concatenated (fewer) or each split by rows (more).

use super::explain::{aggregate_strategy, describe, join_strategy};
use super::plan::{AggStrategy, AggregateNode, JoinNode, JoinStrategy, MapOp, Plan};
use crate::error::{Error, Result};
use crate::graph::{Collect, Stage, TaskGraph, TaskNode, upstream_bucket, upstream_port};
use arrow::datatypes::SchemaRef;
use shoal_protocol::{
    AggregateMode, Input, JoinBuild, JoinHow, Operator, Output, PartFormat, Partitioning, SortKey, TableOp,
    TaskKey,
};
use std::collections::BTreeMap;

/// Rows each partition contributes to the sample a sort's boundaries are computed from.
const SAMPLE_ROWS: usize = 256;

/// Where the final stage's outputs go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Intermediate Arrow IPC under the job root, every output task's whole (how another
    /// collection reads a DataFrame's result).
    Collect,
    /// Intermediates read back by `compute()`. A sort's last step is left to that reader: its
    /// result is its map tasks' sorted buckets, which the reader merges range by range
    /// ([`Collect::MergeBuckets`]), so no task writes the sorted rows only to have them read
    /// back.
    Compute,
    /// User-visible parts in `format` under this URL (`to_parquet()`, `to_csv()`,
    /// `to_json()`).
    Parts { url: String, format: PartFormat },
}

/// A stage being built: per partition, its inputs and upstream tasks; the fused operators; and
/// the schemas of the rows they produce and of the side tables they read, so that every
/// operator is validated, as it is fused, with the worker's own code against the tables the
/// task will really hold.
#[derive(Clone)]
struct Pending {
    name: String,
    partitions: Vec<(Vec<Input>, Vec<usize>)>,
    ops: Vec<TableOp>,
    estimated_bytes: u64,
    /// Schema of the rows after `ops` (`None`: aggregation states).
    schema: Option<SchemaRef>,
    /// Schemas of the side tables, by port.
    sides: BTreeMap<u32, SchemaRef>,
    /// Lines for `explain` and the dashboard after the operators: the strategies chosen for
    /// the aggregations and joins this stage finishes.
    notes: Vec<String>,
}

impl Pending {
    /// A stage whose partition `i` reads `partitions[i]`, rows of `schema`.
    fn new(
        name: &str,
        partitions: Vec<(Vec<Input>, Vec<usize>)>,
        schema: Option<SchemaRef>,
        bytes: u64,
    ) -> Self {
        Pending {
            name: name.into(),
            partitions,
            ops: vec![],
            estimated_bytes: bytes,
            schema,
            sides: BTreeMap::new(),
            notes: vec![],
        }
    }

    /// A one-partition stage reading `tasks` whole.
    fn gather(name: &str, graph: &TaskGraph, tasks: Vec<usize>, bytes: u64) -> Result<Self> {
        let schema = output_schema(graph, &tasks)?;
        Ok(Pending::new(name, vec![(read_all(graph, &tasks, 0), tasks)], schema, bytes))
    }

    /// Fuses `op`, checking it against the current rows and side tables. An aggregation step
    /// is checked as the single-step aggregation of its raw input; `Partial` and `Combine`
    /// produce states.
    fn push(&mut self, op: TableOp) -> Result<()> {
        let states = |mode| matches!(mode, AggregateMode::Partial | AggregateMode::Combine);
        let schema = match &op {
            TableOp::Aggregate {
                mode: mode @ (AggregateMode::Combine | AggregateMode::Final),
                input,
                ..
            } => {
                if self.schema.is_some() {
                    return Err(internal(format!("{} over rows, not aggregation states", describe(&op))));
                }
                let single = output_schema_of(from_fields(input)?, &op, &self.sides)?;
                (!states(*mode)).then_some(single)
            }
            _ => {
                let rows = self.schema.clone().ok_or_else(|| {
                    internal(format!("{} over aggregation states, not rows", describe(&op)))
                })?;
                let out = output_schema_of(rows, &op, &self.sides)?;
                match &op {
                    TableOp::Aggregate { mode, .. } if states(*mode) => None,
                    _ => Some(out),
                }
            }
        };
        self.schema = schema;
        self.ops.push(op);
        Ok(())
    }

    /// Fuses a user function, whose output schema was found by calling it (`map_partitions`).
    fn push_function(&mut self, op: TableOp, schema: SchemaRef) {
        self.schema = Some(schema);
        self.ops.push(op);
    }

    /// The first side-table port no input or operator of this stage uses yet.
    fn next_port(&self) -> u32 {
        let inputs = self.partitions.iter().flat_map(|(inputs, _)| inputs.iter().map(Input::port));
        let ops = self.ops.iter().filter_map(|op| match op {
            TableOp::Join { port, .. } => Some(*port),
            _ => None,
        });
        inputs.chain(ops).chain(self.sides.keys().copied()).max().unwrap_or(0) + 1
    }

    /// The inputs of each partition when this stage only scans files: no operators, no side
    /// tables, nothing upstream. A join side like that is read by the tasks that join it
    /// straight from its files, instead of a stage writing what it read for them to read back.
    fn bare_scans(&self) -> Option<Vec<Vec<Input>>> {
        if !self.ops.is_empty() || !self.sides.is_empty() {
            return None;
        }
        self.partitions
            .iter()
            .map(|(inputs, deps)| {
                let scans = deps.is_empty() && inputs.iter().all(|i| matches!(i, Input::Scan { .. }));
                scans.then(|| inputs.clone())
            })
            .collect()
    }

    /// Adds side table `port`, rows of `schema` read straight from files, to every partition:
    /// partition `i` reads the scans `reads(i)` (their port set to `port`).
    fn attach_scans(
        &mut self,
        port: u32,
        schema: SchemaRef,
        reads: impl Fn(usize) -> Vec<Input>,
    ) -> Result<()> {
        if self.sides.insert(port, schema).is_some() {
            return Err(internal(format!("side table {port} attached twice")));
        }
        for (i, (inputs, _)) in self.partitions.iter_mut().enumerate() {
            inputs.extend(reads(i).into_iter().map(|mut input| {
                if let Input::Scan { port: p, .. } = &mut input {
                    *p = port;
                }
                input
            }));
        }
        Ok(())
    }

    /// Adds `tasks`, read whole as side table `port`, to every partition.
    fn attach(&mut self, graph: &TaskGraph, tasks: &[usize], port: u32) -> Result<()> {
        self.attach_side(graph, tasks, port, |_| (read_all(graph, tasks, port), tasks.to_vec()))
    }

    /// Adds side table `port`, made of outputs of `tasks`, to every partition: partition `i`
    /// reads `reads(i)`: its inputs, and the tasks they read, in the same order.
    fn attach_side(
        &mut self,
        graph: &TaskGraph,
        tasks: &[usize],
        port: u32,
        reads: impl Fn(usize) -> (Vec<Input>, Vec<usize>),
    ) -> Result<()> {
        let schema = output_schema(graph, tasks)?
            .ok_or_else(|| internal("a side table of aggregation states".to_string()))?;
        if self.sides.insert(port, schema).is_some() {
            return Err(internal(format!("side table {port} attached twice")));
        }
        for (i, (inputs, deps)) in self.partitions.iter_mut().enumerate() {
            let (more, read) = reads(i);
            inputs.extend(more);
            deps.extend(read);
        }
        Ok(())
    }
}

fn internal(message: String) -> Error {
    Error::Invalid(format!("internal planning error: {message}"))
}

fn from_fields(fields: &[shoal_protocol::Field]) -> Result<SchemaRef> {
    Ok(shoal_worker::io::schema::from_fields(fields)?)
}

fn output_schema_of(rows: SchemaRef, op: &TableOp, sides: &BTreeMap<u32, SchemaRef>) -> Result<SchemaRef> {
    Ok(shoal_worker::ops::table::output_schema(rows, std::slice::from_ref(op), sides)?)
}

/// The schema of the outputs of `tasks` (all of one stage).
fn output_schema(graph: &TaskGraph, tasks: &[usize]) -> Result<Option<SchemaRef>> {
    let first = tasks.first().ok_or_else(|| internal("a stage reads no tasks".into()))?;
    let stage = graph.tasks[*first].stage;
    if tasks.iter().any(|&t| graph.tasks[t].stage != stage) {
        return Err(internal("one input of a task reads tasks of several stages".into()));
    }
    Ok(graph.stages[stage].schema.clone())
}

pub fn lower(plan: &Plan, target: &Target) -> Result<TaskGraph> {
    let mut graph = TaskGraph::default();
    if matches!(target, Target::Compute)
        && let Some((input, keys, n, filter)) = sort_at_top(plan)
    {
        let partitions = lower_node(input, &mut graph)?;
        let (maps, _) = range_shuffle(partitions, keys, n, filter.as_ref(), true, &mut graph)?;
        graph.outputs = maps;
        graph.collect = Collect::MergeBuckets { keys: keys.to_vec(), buckets: n as u32 };
        return Ok(graph);
    }
    let pending = lower_node(plan, &mut graph)?;
    let output = |i: usize| match target {
        Target::Collect | Target::Compute => Output::Intermediate,
        Target::Parts { url, format } => Output::Part { url: url.clone(), part: i, format: *format },
    };
    graph.outputs = materialize(pending, &mut graph, output)?;
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

/// An N-partition stage, partition `b` reading bucket `b` of every map task of `maps` (port 0).
fn reduce(name: &str, graph: &TaskGraph, n: usize, maps: &[usize], bytes: u64) -> Result<Pending> {
    let partitions = (0..n).map(|b| (read_bucket(graph, maps, b, 0), maps.to_vec())).collect();
    Ok(Pending::new(name, partitions, output_schema(graph, maps)?, bytes))
}

fn lower_node(plan: &Plan, graph: &mut TaskGraph) -> Result<Pending> {
    // A filter right above a sort runs before its range shuffle: fewer rows move, and the
    // ranges it empties (`loc` on an index) are not run at all.
    if let Some((input, keys, n, filter @ Some(_))) = sort_at_top(plan) {
        return Ok(lower_sort_filtered(input, keys, n, filter.as_ref(), graph)?.0);
    }
    match plan {
        Plan::Scan(scan) => {
            let schema = scan.schema_on_read.then(|| shoal_worker::io::schema::to_fields(&scan.file_schema));
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
                        port: 0,
                    };
                    (vec![input], vec![])
                })
                .collect();
            Ok(Pending::new("scan", partitions, Some(scan.schema()?), scan.estimated_bytes()))
        }
        Plan::Map { input, op, schema } => {
            let mut p = lower_node(input, graph)?;
            match op {
                MapOp::MapPartitions { .. } => p.push_function(op.to_table_op(), schema.clone()),
                _ => p.push(op.to_table_op())?,
            }
            Ok(p)
        }
        Plan::Head { input, n } => {
            let mut p = lower_node(input, graph)?;
            // Each partition keeps at most n rows, then one task takes the first n overall.
            p.push(TableOp::Head { n: *n })?;
            let tasks = materialize(p, graph, |_| Output::Intermediate)?;
            let mut head = Pending::gather("head", graph, tasks, 0)?;
            head.push(TableOp::Head { n: *n })?;
            Ok(head)
        }
        Plan::TopK { input, keys, n } => {
            let mut p = lower_node(input, graph)?;
            let ops = [TableOp::Sort { keys: keys.clone() }, TableOp::Head { n: *n }];
            for op in &ops {
                p.push(op.clone())?;
            }
            let tasks = materialize(p, graph, |_| Output::Intermediate)?;
            let mut top = Pending::gather("topk", graph, tasks, plan.estimated_bytes())?;
            for op in ops {
                top.push(op)?;
            }
            Ok(top)
        }
        Plan::Graph(g) => {
            let outputs = graph.extend(&g.graph);
            let partitions = outputs.iter().map(|&t| (read_all(graph, &[t], 0), vec![t])).collect();
            Ok(Pending::new("from", partitions, Some(g.schema.clone()), g.estimated_bytes))
        }
        Plan::Aggregate(a) => noted(lower_aggregate(plan, a, graph)?, aggregate_strategy(a)),
        Plan::Join(j) => noted(lower_join(plan, j, graph)?, join_strategy(j)),
        Plan::Sort { input, keys, npartitions: n, .. } => Ok(lower_sort(input, keys, *n, graph)?.0),
        Plan::Repartition { input, npartitions: n } => lower_repartition(input, *n, graph),
        Plan::Shared { input } => {
            // Every use lowers it to the same tasks: the graph keeps the stage once.
            let p = lower_node(input, graph)?;
            let bytes = p.estimated_bytes;
            let tasks = materialize(p, graph, |_| Output::Intermediate)?;
            let partitions = tasks.iter().map(|&t| (read_all(graph, &[t], 0), vec![t])).collect();
            Ok(Pending::new("shared", partitions, output_schema(graph, &tasks)?, bytes))
        }
    }
}

/// `p` with a note on the strategy of the node it finishes.
fn noted(mut p: Pending, strategy: Option<String>) -> Result<Pending> {
    p.notes.extend(strategy);
    Ok(p)
}

fn lower_aggregate(plan: &Plan, a: &AggregateNode, graph: &mut TaskGraph) -> Result<Pending> {
    let mut p = lower_node(&a.input, graph)?;
    // The states are typed by the rows really aggregated: the schema the lowering derived,
    // not one recorded before the optimizer pruned columns.
    let rows = p.schema.clone().ok_or_else(|| internal("an aggregation of aggregation states".into()))?;
    let raw = shoal_worker::io::schema::to_fields(&rows);
    let step =
        |mode| TableOp::Aggregate { mode, keys: a.keys.clone(), aggs: a.aggs.clone(), input: raw.clone() };
    let out_bytes = plan.estimated_bytes();
    match a.strategy.as_ref().map(|s| s.0) {
        Some(AggStrategy::Shuffle { split_out }) => {
            p.push(step(AggregateMode::Partial))?;
            let hash = Partitioning::Hash { keys: a.keys.clone(), n: split_out as u32 };
            let maps = materialize(p, graph, shuffle(hash))?;
            let mut reducers = reduce("aggregate", graph, split_out, &maps, out_bytes)?;
            reducers.push(step(AggregateMode::Final))?;
            Ok(reducers)
        }
        Some(AggStrategy::Tree { split_every }) if p.partitions.len() > 1 => {
            p.push(step(AggregateMode::Partial))?;
            let mut level = materialize(p, graph, |_| Output::Intermediate)?;
            while level.len() > split_every {
                let partitions =
                    level.chunks(split_every).map(|c| (read_all(graph, c, 0), c.to_vec())).collect();
                let mut combine = Pending::new("combine", partitions, None, out_bytes);
                combine.push(step(AggregateMode::Combine))?;
                level = materialize(combine, graph, |_| Output::Intermediate)?;
            }
            let mut last = Pending::gather("aggregate", graph, level, out_bytes)?;
            last.push(step(AggregateMode::Final))?;
            Ok(last)
        }
        Some(AggStrategy::Local | AggStrategy::Tree { .. }) => {
            // Each partition holds whole groups (local), or one partition sees every row (a
            // tree over one partition): aggregate in one step, fused, partitions kept.
            p.push(step(AggregateMode::Single))?;
            Ok(p)
        }
        None => Err(internal("aggregation lowered before optimization".into())),
    }
}

fn join_op(port: u32, j: &JoinNode, build: JoinBuild) -> TableOp {
    let (left_on, right_on) = (j.left_on.clone(), j.right_on.clone());
    TableOp::Join { port, how: j.how, left_on, right_on, suffixes: j.suffixes.clone(), build }
}

/// The side a join's tasks build their hash tables on: the smaller by estimate (`input` and
/// `side`: estimated bytes of each, both per task or both over all tasks), the side table
/// where they tie. Built on the input, a task holds it whole besides its side table, which
/// streams through it (TPC-H q4: three months of orders joined to the lineitem partitions
/// their key ranges overlap).
fn build_on(input: u64, side: u64) -> JoinBuild {
    match input < side {
        true => JoinBuild::Input,
        false => JoinBuild::Side,
    }
}

/// [`build_on`] for a join whose tasks each read a partition of both sides.
fn build_on_sides(j: &JoinNode) -> JoinBuild {
    build_on(j.left.estimated_bytes(), j.right.estimated_bytes())
}

/// [`build_on`] for a broadcast: each task's partition of `input` against the whole `broadcast`.
fn build_on_broadcast(input: &Plan, broadcast: &Plan) -> JoinBuild {
    build_on(input.estimated_bytes() / input.partitions().max(1) as u64, broadcast.estimated_bytes())
}

fn lower_join(plan: &Plan, j: &JoinNode, graph: &mut TaskGraph) -> Result<Pending> {
    match j.strategy.as_ref().map(|s| s.0) {
        Some(JoinStrategy::BroadcastRight) => {
            let small = broadcast_side(&j.right, j.left.partitions(), graph)?;
            let mut p = lower_node(&j.left, graph)?;
            // A fused chain of joins reads one side table per join: each its own port.
            let port = p.next_port();
            p.attach(graph, &small, port)?;
            p.push(join_op(port, j, build_on_broadcast(&j.left, &j.right)))?;
            Ok(p)
        }
        Some(JoinStrategy::BroadcastLeft) => {
            // Mirror: the right side streams, the left is read whole; the same columns come out
            // (suffixes swapped), put back in the left-then-right order.
            let small = broadcast_side(&j.left, j.right.partitions(), graph)?;
            let mut p = lower_node(&j.right, graph)?;
            let (left_names, right_names) = (names(output_schema(graph, &small)?), names(p.schema.clone()));
            let port = p.next_port();
            p.attach(graph, &small, port)?;
            let how = match j.how {
                JoinHow::Right => JoinHow::Left,
                other => other,
            };
            let swapped = (j.suffixes.1.clone(), j.suffixes.0.clone());
            let build = build_on_broadcast(&j.right, &j.left);
            p.push(TableOp::Join {
                port,
                how,
                left_on: j.right_on.clone(),
                right_on: j.left_on.clone(),
                suffixes: swapped,
                build,
            })?;
            let columns = shoal_worker::ops::table::join::join_columns(
                &left_names,
                &right_names,
                j.how,
                &j.left_on,
                &j.right_on,
                &j.suffixes,
            );
            p.push(TableOp::Select { columns: columns.into_iter().map(|c| c.name).collect() })?;
            Ok(p)
        }
        Some(JoinStrategy::PartitionWise) => lower_partition_wise_join(j, graph),
        Some(JoinStrategy::Ranges) => lower_ranges_join(j, graph),
        Some(JoinStrategy::Divisions) => lower_divisions_join(j, graph),
        Some(JoinStrategy::Hash { npartitions: n }) => {
            // A side hash-partitioned on its keys into n partitions already (a shuffled
            // aggregation by them) is not shuffled again: its partition b is bucket b.
            let hash = |keys: &[String]| shuffle(Partitioning::Hash { keys: keys.to_vec(), n: n as u32 });
            let right_placed = super::strategy::placed(&j.right, &j.right_on, n);
            let right = lower_node(&j.right, graph)?;
            let right = match right_placed {
                true => materialize(right, graph, |_| Output::Intermediate)?,
                false => materialize(right, graph, hash(&j.right_on))?,
            };
            let mut p = match super::strategy::placed(&j.left, &j.left_on, n) {
                // The join runs in the left side's own tasks.
                true => lower_node(&j.left, graph)?,
                false => {
                    let left = materialize(lower_node(&j.left, graph)?, graph, hash(&j.left_on))?;
                    reduce("join", graph, n, &left, plan.estimated_bytes())?
                }
            };
            if p.partitions.len() != n || right.len() != n && right_placed {
                return Err(internal(format!("hash join into {n} partitions of a side in other partitions")));
            }
            let port = p.next_port();
            p.attach_side(graph, &right, port, |b| match right_placed {
                true => (read_all(graph, &right[b..=b], port), vec![right[b]]),
                false => (read_bucket(graph, &right, b, port), right.clone()),
            })?;
            p.push(join_op(port, j, build_on_sides(j)))?;
            Ok(p)
        }
        None => Err(internal("join lowered before optimization".into())),
    }
}

/// A broadcast side materialized, as each of the `readers` tasks of the other side reads it
/// whole: gathered into one task's output where that saves reads (`strategy::gathers`).
fn broadcast_side(plan: &Plan, readers: usize, graph: &mut TaskGraph) -> Result<Vec<usize>> {
    let tasks = materialize(lower_node(plan, graph)?, graph, |_| Output::Intermediate)?;
    if !super::strategy::gathers(readers, tasks.len()) {
        return Ok(tasks);
    }
    let gather = Pending::gather("gather", graph, tasks, plan.estimated_bytes())?;
    materialize(gather, graph, |_| Output::Intermediate)
}

/// The `explain` line of a join whose side tasks read straight from the side's files.
const SIDE_FROM_FILES: &str = "side table read from its files by the tasks that join it (it is only a scan)";

fn names(schema: Option<SchemaRef>) -> Vec<String> {
    schema.map(|s| s.fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default()
}

/// The right side of a partition-wise or ranges join, as the joining tasks read it: the tasks
/// of a stage materializing it, or, when it is only a scan, its files.
enum JoinSide {
    Tasks(Vec<usize>),
    Files(SchemaRef, Vec<Vec<Input>>),
}

impl JoinSide {
    /// Lowers `plan`: its files when it only scans them, else a stage materializing it.
    fn lower(plan: &Plan, graph: &mut TaskGraph) -> Result<Self> {
        let p = lower_node(plan, graph)?;
        match (p.bare_scans(), &p.schema) {
            (Some(scans), Some(schema)) => Ok(JoinSide::Files(schema.clone(), scans)),
            _ => Ok(JoinSide::Tasks(materialize(p, graph, |_| Output::Intermediate)?)),
        }
    }

    fn partitions(&self) -> usize {
        match self {
            JoinSide::Tasks(tasks) => tasks.len(),
            JoinSide::Files(_, scans) => scans.len(),
        }
    }

    /// Adds the side to `p` as table `port`: partition `i` reads the side's partitions `reads(i)`,
    /// their files' row groups and pages pruned by `prune(i)` (SQL) where it is read from files.
    fn attach(
        self,
        p: &mut Pending,
        graph: &TaskGraph,
        port: u32,
        reads: impl Fn(usize) -> Vec<usize>,
        prune: impl Fn(usize) -> Option<String>,
    ) -> Result<()> {
        match self {
            JoinSide::Files(schema, scans) => {
                p.attach_scans(port, schema, |i| {
                    let mut inputs: Vec<Input> =
                        reads(i).iter().flat_map(|&r| scans[r].iter().cloned()).collect();
                    if let Some(predicate) = prune(i) {
                        inputs.iter_mut().for_each(|input| prune_scan(input, &predicate));
                    }
                    inputs
                })?;
                p.notes.push(SIDE_FROM_FILES.into());
                Ok(())
            }
            JoinSide::Tasks(tasks) => p.attach_side(graph, &tasks, port, |i| {
                let read: Vec<usize> = reads(i).iter().map(|&r| tasks[r]).collect();
                (read_all(graph, &read, port), read)
            }),
        }
    }
}

/// A partition-wise join: partition i of the left reads partition i of the right.
fn lower_partition_wise_join(j: &JoinNode, graph: &mut TaskGraph) -> Result<Pending> {
    let right = JoinSide::lower(&j.right, graph)?;
    let mut p = lower_node(&j.left, graph)?;
    let n = right.partitions();
    if p.partitions.len() != n {
        return Err(internal(format!("partition-wise join of {} and {n} partitions", p.partitions.len())));
    }
    let port = p.next_port();
    right.attach(&mut p, graph, port, |i| vec![i], |_| None)?;
    p.push(join_op(port, j, build_on_sides(j)))?;
    Ok(p)
}

/// A ranges join: partition i of the left reads the right partitions whose key ranges overlap
/// its own.
fn lower_ranges_join(j: &JoinNode, graph: &mut TaskGraph) -> Result<Pending> {
    let (k, left_ranges, right_ranges) =
        super::ranges::join_key_pair(&j.left, &j.right, &j.left_on, &j.right_on)
            .ok_or_else(|| internal("a ranges join without key ranges".into()))?;
    // Read from its files, the right side is pruned to each left partition's range of the key
    // (row groups and pages, by their statistics): only the rows that can match are decoded.
    let prunable = super::ranges::pruned_by_key(&j.right, &j.right_on[k]);
    let key = j.right_on[k].replace('"', "\"\"");
    let prune = |i: usize| match (prunable, left_ranges[i]) {
        (true, Some((lo, hi))) => Some(format!("\"{key}\" >= {lo} AND \"{key}\" <= {hi}")),
        _ => None,
    };
    let overlaps = super::ranges::overlaps(&left_ranges, &right_ranges);
    let right = JoinSide::lower(&j.right, graph)?;
    let mut p = lower_node(&j.left, graph)?;
    if p.partitions.len() != overlaps.len() || right.partitions() != right_ranges.len() {
        return Err(internal("a ranges join whose partitions differ from its key ranges".into()));
    }
    if right.partitions() == 0 {
        return Err(internal("a ranges join of an empty right side".into()));
    }
    let port = p.next_port();
    // Partition i reads the right partitions its range overlaps; one without any (no
    // rows, or no matches possible) reads the first, whose rows cannot match but give
    // the side table its columns.
    right.attach(
        &mut p,
        graph,
        port,
        |i| match overlaps[i].is_empty() {
            true => vec![0],
            false => overlaps[i].clone(),
        },
        prune,
    )?;
    let (_, read) = super::ranges::partitions_read(&j.right, &j.right_on[k], &left_ranges, &right_ranges);
    let side_read = (j.right.estimated_bytes() as f64 * read / right_ranges.len() as f64) as u64;
    p.push(join_op(port, j, build_on(j.left.estimated_bytes(), side_read)))?;
    Ok(p)
}

/// The left side is indexed by the key: the right side is range-shuffled to the left's
/// divisions, and partition i of each side pair up.
fn lower_divisions_join(j: &JoinNode, graph: &mut TaskGraph) -> Result<Pending> {
    let Plan::Sort { input, keys, npartitions, .. } = &*j.left else {
        return Err(internal("a divisions join needs an indexed left side".into()));
    };
    let (mut p, bounds) = lower_sort(input, keys, *npartitions, graph)?;
    // A right side indexed by the key need not be sorted: it is re-partitioned.
    let right = match &*j.right {
        Plan::Sort { input, index: true, .. } => input.as_ref(),
        other => other,
    };
    let mut r = lower_node(right, graph)?;
    let port = p.next_port();
    match bounds {
        Some(b) => {
            let bounds_port = r.next_port();
            r.attach(graph, &[b], bounds_port)?;
            let rkeys: Vec<SortKey> = keys
                .iter()
                .zip(&j.right_on)
                .map(|(k, c)| SortKey { column: c.clone(), ..k.clone() })
                .collect();
            let n = *npartitions as u32;
            let range = Partitioning::Range { keys: rkeys, port: bounds_port, n };
            let maps = materialize(r, graph, shuffle(range))?;
            p.attach_side(graph, &maps, port, |i| (read_bucket(graph, &maps, i, port), maps.clone()))?;
        }
        // One left partition: it reads the whole right side.
        None => {
            let tasks = materialize(r, graph, |_| Output::Intermediate)?;
            p.attach(graph, &tasks, port)?;
        }
    }
    p.push(join_op(port, j, build_on_sides(j)))?;
    Ok(p)
}

fn lower_repartition(input: &Plan, n: usize, graph: &mut TaskGraph) -> Result<Pending> {
    let p = lower_node(input, graph)?;
    let (m, n) = (p.partitions.len(), n.max(1));
    if n == m {
        return Ok(p);
    }
    let bytes = input.estimated_bytes();
    if n < m {
        // Adjacent partitions concatenated. Row-wise operators commute with that, so their
        // inputs merge without a stage boundary; anything else is materialized.
        let row_wise = p.sides.is_empty()
            && p.ops.iter().all(|op| {
                matches!(op, TableOp::Filter { .. } | TableOp::Select { .. } | TableOp::Assign { .. })
            });
        let (parts, mut merged) = if row_wise {
            let mut merged = p.clone();
            merged.name = "repartition".into();
            (p.partitions, merged)
        } else {
            let tasks = materialize(p, graph, |_| Output::Intermediate)?;
            let parts: Vec<_> = tasks.iter().map(|&t| (read_all(graph, &[t], 0), vec![t])).collect();
            (parts, Pending::new("repartition", vec![], output_schema(graph, &tasks)?, bytes))
        };
        merged.partitions = (0..n)
            .map(|j| {
                let group = &parts[j * m / n..(j + 1) * m / n];
                let inputs = group.iter().flat_map(|(i, _)| i.clone()).collect();
                let deps = group.iter().flat_map(|(_, d)| d.clone()).collect();
                (inputs, deps)
            })
            .collect();
        merged.estimated_bytes = bytes;
        return Ok(merged);
    }
    // More partitions: partition i splits by rows into pieces_i contiguous pieces.
    let pieces = |i: usize| (i + 1) * n / m - i * n / m;
    let maps = materialize(p, graph, |i| Output::Shuffle {
        partitioning: Partitioning::Split { n: pieces(i) as u32 },
    })?;
    let partitions = maps
        .iter()
        .enumerate()
        .flat_map(|(i, &t)| (0..pieces(i)).map(move |b| (b, t)))
        .map(|(b, t)| (vec![upstream_bucket(&graph.tasks[t].key, b as u32, 0)], vec![t]))
        .collect();
    Ok(Pending::new("repartition", partitions, output_schema(graph, &maps)?, bytes))
}

/// A global sort into `n` range partitions; also returns the task holding the boundaries (the
/// divisions of the output), when there is more than one partition.
fn lower_sort(
    input: &Plan,
    keys: &[SortKey],
    n: usize,
    graph: &mut TaskGraph,
) -> Result<(Pending, Option<usize>)> {
    lower_sort_filtered(input, keys, n, None, graph)
}

/// [`lower_sort`] of the rows `filter` keeps. The boundaries are sampled from all rows, so they
/// are the sort's own (the divisions of an index); the filter runs in the map tasks, before the
/// range shuffle (and prunes their Parquet row groups), and reducers whose every bucket is
/// empty are skipped.
fn lower_sort_filtered(
    input: &Plan,
    keys: &[SortKey],
    n: usize,
    filter: Option<&TableOp>,
    graph: &mut TaskGraph,
) -> Result<(Pending, Option<usize>)> {
    let mut p = lower_node(input, graph)?;
    let bytes = input.estimated_bytes();
    let sort = TableOp::Sort { keys: keys.to_vec() };
    if n == 1
        && let Some(f) = filter
    {
        p.push(f.clone())?;
    }
    if n == 1 && p.partitions.len() == 1 {
        p.push(sort)?;
        return Ok((p, None));
    }
    if n == 1 {
        let tasks = materialize(p, graph, |_| Output::Intermediate)?;
        let mut one = Pending::gather("sort", graph, tasks, bytes)?;
        one.push(sort)?;
        return Ok((one, None));
    }
    let (maps, bounds) = range_shuffle(p, keys, n, filter, false, graph)?;
    let mut reducers = reduce("sort", graph, n, &maps, bytes)?;
    reducers.push(sort)?;
    Ok((reducers, Some(bounds)))
}

/// The sort (into `n > 1` ranges) that `plan` is, with the filter over it (which runs in its
/// map tasks), if it is one: the input, the keys, `n` and the filter.
fn sort_at_top(plan: &Plan) -> Option<(&Plan, &[SortKey], usize, Option<TableOp>)> {
    let (sort, filter) = match plan {
        Plan::Map { input, op: filter @ MapOp::Filter { .. }, .. } => (&**input, Some(filter.to_table_op())),
        other => (other, None),
    };
    match sort {
        Plan::Sort { input, keys, npartitions, .. } if *npartitions > 1 => {
            Some((&**input, keys.as_slice(), *npartitions, filter))
        }
        _ => None,
    }
}

/// The map side of a sort into `n > 1` ranges, over the partitions of `p`: 1. a sample of the
/// sort keys of every partition; 2. the n-1 boundaries from all samples; 3. every partition
/// (the rows `filter` keeps; sorted first when `sorted_runs`, so that every bucket is a sorted
/// run) split by them into `n` buckets. Returns the map tasks and the task holding the
/// boundaries (the divisions of the output).
fn range_shuffle(
    p: Pending,
    keys: &[SortKey],
    n: usize,
    filter: Option<&TableOp>,
    sorted_runs: bool,
    graph: &mut TaskGraph,
) -> Result<(Vec<usize>, usize)> {
    let mut sample = p.clone();
    let columns: Vec<String> = keys.iter().map(|k| k.column.clone()).collect();
    if sample.ops.is_empty() {
        // Straight from the files: the sample reads only the key columns.
        for (inputs, _) in &mut sample.partitions {
            for input in inputs {
                if let Input::Scan { projection, port: 0, .. } = input {
                    *projection = Some(columns.clone());
                }
            }
        }
    }
    sample.push(TableOp::Sample { columns, rows: SAMPLE_ROWS })?;
    let samples = materialize(sample, graph, |_| Output::Intermediate)?;
    let mut bounds = Pending::gather("boundaries", graph, samples, 0)?;
    bounds.push(TableOp::Boundaries { keys: keys.to_vec(), n: n as u32 })?;
    let bounds = materialize(bounds, graph, |_| Output::Intermediate)?;
    let bounds_task = *bounds.first().ok_or_else(|| internal("a sort without its boundaries task".into()))?;
    let mut map = p;
    if let Some(filter @ TableOp::Filter { predicate }) = filter {
        if map.ops.is_empty() {
            prune_scans(&mut map, predicate);
        }
        map.push(filter.clone())?;
    }
    if sorted_runs {
        map.push(TableOp::Sort { keys: keys.to_vec() })?;
    }
    let port = map.next_port();
    map.attach(graph, &bounds, port)?;
    let range = Partitioning::Range { keys: keys.to_vec(), port, n: n as u32 };
    Ok((materialize(map, graph, shuffle(range))?, bounds_task))
}

/// Adds `predicate` to the row-group pruning of the Parquet scans of `p` (whose rows are the
/// files' own: no operator runs before it).
fn prune_scans(p: &mut Pending, predicate: &str) {
    for (inputs, _) in &mut p.partitions {
        for input in inputs.iter_mut().filter(|i| i.port() == 0) {
            prune_scan(input, predicate);
        }
    }
}

/// Adds `predicate` (ANDed with any it has) to the row-group and page pruning of `input`, when
/// it is a Parquet scan.
fn prune_scan(input: &mut Input, predicate: &str) {
    if let Input::Scan { format: shoal_protocol::FileFormat::Parquet, predicate: pruning, .. } = input {
        *pruning = Some(match pruning.take() {
            Some(existing) => format!("({existing}) AND ({predicate})"),
            None => predicate.to_string(),
        });
    }
}

/// Turns a pending stage into tasks; returns their indices in partition order. Every task's
/// ports are checked with the worker's own check, so a spec the worker would refuse is refused
/// here, before anything runs.
fn materialize(p: Pending, graph: &mut TaskGraph, output: impl Fn(usize) -> Output) -> Result<Vec<usize>> {
    let name = stage_name(&p.name, &p.ops);
    let pipeline: Vec<Operator> = p.ops.iter().cloned().map(Operator::Table).collect();
    let outputs: Vec<Output> = (0..p.partitions.len()).map(&output).collect();
    if let Some(tasks) = materialized_already(&p, graph, &outputs) {
        return Ok(tasks);
    }
    let keys: Vec<TaskKey> = p
        .partitions
        .iter()
        .zip(&outputs)
        .map(|((inputs, _), output)| TaskKey::derive(&name, &(inputs, &pipeline, output)))
        .collect();
    // A subplan used twice (q15's revenue view, for its max and for the join back) lowers to
    // the same tasks twice: the stage already in the graph is the one to read.
    if let Some(existing) = existing_stage(graph, &keys) {
        return Ok(existing);
    }
    let operators = p.ops.iter().map(describe).chain(p.notes.iter().cloned()).collect();
    let stage = graph.stage(name.clone(), operators, p.estimated_bytes, p.schema.clone());
    let mut ids = Vec::with_capacity(p.partitions.len());
    for (index, (((inputs, deps), output), key)) in
        p.partitions.into_iter().zip(outputs).zip(keys).enumerate()
    {
        shoal_worker::ops::table::check_ports(&inputs, &p.ops, &output)
            .map_err(|e| internal(format!("stage {name}: {e}")))?;
        check_deps(graph, &inputs, &deps).map_err(|e| internal(format!("stage {name}: {e}")))?;
        // A user-visible part is written even when empty, so that every part exists.
        let skip_if_empty = p.schema.is_some()
            && !output.is_user_visible()
            && inputs.iter().all(|i| matches!(i, Input::Upstream { .. }))
            && shoal_worker::ops::table::preserves_empty(&p.ops);
        let pipeline = pipeline.clone();
        ids.push(graph.push(TaskNode { key, stage, index, deps, inputs, pipeline, output, skip_if_empty }));
    }
    Ok(ids)
}

/// The tasks whose outputs `p` would only copy, one to a partition, to intermediate outputs
/// of its own (a shared subplan, or another collection's result, materialized again as a
/// join's side): they are that stage already.
fn materialized_already(p: &Pending, graph: &TaskGraph, outputs: &[Output]) -> Option<Vec<usize>> {
    if !p.ops.is_empty() || !p.sides.is_empty() || !outputs.iter().all(|o| matches!(o, Output::Intermediate))
    {
        return None;
    }
    p.partitions
        .iter()
        .map(|(inputs, deps)| match (inputs.as_slice(), deps.as_slice()) {
            ([Input::Upstream { bucket: None, ranges, port: 0, .. }], [t])
                if ranges.is_empty() && matches!(graph.tasks[*t].output, Output::Intermediate) =>
            {
                Some(*t)
            }
            _ => None,
        })
        .collect()
}

/// The tasks of a stage already in `graph` whose keys are `keys`, in order (the same key is
/// the same work: the same inputs, operators and output).
fn existing_stage(graph: &TaskGraph, keys: &[TaskKey]) -> Option<Vec<usize>> {
    let first = keys.first()?;
    let at = graph.tasks.iter().position(|t| &t.key == first)?;
    let stage = &graph.stages.get(graph.tasks[at].stage)?.tasks;
    let same = stage.len() == keys.len() && stage.iter().zip(keys).all(|(&t, k)| &graph.tasks[t].key == k);
    same.then(|| stage.clone())
}

/// Every `Upstream` input of a task names one of its `deps` (the scheduler resolves inputs by
/// key), and every dependency is read by some input.
fn check_deps(graph: &TaskGraph, inputs: &[Input], deps: &[usize]) -> std::result::Result<(), String> {
    let keys: std::collections::HashSet<&TaskKey> = deps.iter().map(|&d| &graph.tasks[d].key).collect();
    let mut read = std::collections::HashSet::new();
    for input in inputs {
        if let Input::Upstream { task_key, .. } = input {
            if !keys.contains(task_key) {
                return Err(format!("input {task_key} is not one of the task's dependencies"));
            }
            read.insert(task_key);
        }
    }
    if read.len() != keys.len() {
        return Err(format!("{} dependencies but only {} are read by an input", keys.len(), read.len()));
    }
    Ok(())
}

/// `scan-filter-assign`: the source and the kinds of fused operators, deduplicated in order.
fn stage_name(source: &str, ops: &[TableOp]) -> String {
    let mut parts = vec![source.to_string()];
    for op in ops {
        let kind = match op {
            TableOp::Filter { .. } => "filter",
            TableOp::Select { .. } => "select",
            TableOp::Assign { .. } => "assign",
            TableOp::MapPartitions { .. } => "map",
            TableOp::Apply { .. } => "apply",
            TableOp::Head { .. } => "head",
            TableOp::Sort { .. } => "sort",
            TableOp::Aggregate { mode: AggregateMode::Partial, .. } => "partial",
            TableOp::Aggregate { .. } => "aggregate",
            TableOp::Join { .. } => "join",
            TableOp::Sample { .. } => "sample",
            TableOp::Boundaries { .. } => "boundaries",
            TableOp::Melt { .. } => "melt",
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
            crate::units::human_bytes(self.estimated_bytes)
        )
    }
}
