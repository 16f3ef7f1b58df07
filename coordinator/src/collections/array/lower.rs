//! Lowering an Array plan to the task graph: one task per output block of each node (a
//! reduction's and a matmul's trees add combine levels), each reading the blocks it needs as
//! input ports — committed blocks of upstream tasks, or regions of a Zarr array read
//! directly. An elementwise expression feeding a reduction runs inside the reduction's first
//! tasks, so its blocks are never written.
//!
//! Every task's memory is projected here — the blocks it reads, as tables and decoded, its
//! output, and the working space of its operation — and a task over the task memory limit
//! fails the whole plan before anything runs, naming the operation and its chunks.

use super::grid;
use super::node::{Expr, Meta, Node, Op, Sel};
use crate::error::{Error, Result};
use crate::graph::{TaskGraph, TaskNode, upstream_port};
use shoal_protocol::{
    ArrayReduction, BinaryOp, ChunkExpr, ChunkOp, DType, Input, Operator, Output, Piece, ReduceStep,
    SliceDim, TaskKey,
};
use shoal_worker::error::human_bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Where the root's blocks go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Intermediates, read back by `compute()` or by another collection.
    Collect,
    /// Chunks of the user-visible Zarr array at `url` with this `zarr.json`.
    Zarr { url: String, metadata: String },
}

/// How a lowered node's blocks are read.
#[derive(Debug, Clone)]
enum Blocks {
    /// One task per block, in C order of the grid.
    Tasks(Vec<usize>),
    /// Regions of a Zarr array.
    Zarr { url: String, identity: String },
}

/// The bytes a block of `elements` of `dtype` takes while a task holds it: its table and its
/// decoded computation type (8 bytes an element; 1 for booleans).
pub fn held(elements: u64, dtype: DType) -> u64 {
    elements * (dtype.size() + if dtype.is_bool() { 1 } else { 8 })
}

/// Per-stage figures for `explain`.
#[derive(Debug, Default, Clone)]
pub struct StageMemory {
    pub max_task_bytes: u64,
}

#[derive(Debug)]
pub struct Lowering {
    pub graph: TaskGraph,
    limit: u64,
    done: HashMap<usize, Blocks>,
    /// The largest projected task of each stage.
    memory: BTreeMap<usize, StageMemory>,
    /// Stages made on first use, by node and name.
    named: HashMap<(usize, String), usize>,
}

/// One input port of a task being built.
struct Port {
    input: Input,
    dep: Option<usize>,
    identity: Option<String>,
}

impl Lowering {
    pub fn new(limit: u64) -> Self {
        Lowering {
            graph: TaskGraph::default(),
            limit,
            done: HashMap::new(),
            memory: BTreeMap::new(),
            named: HashMap::new(),
        }
    }

    /// The largest projected task per stage.
    pub fn stage_memory(&self) -> &BTreeMap<usize, StageMemory> {
        &self.memory
    }

    /// Lowers `root` with its blocks going to `target`; returns the output tasks in C order.
    pub fn root(&mut self, root: &Arc<Node>, target: &Target) -> Result<Vec<usize>> {
        let tasks = self.tasks(root, Some(target))?;
        self.graph.outputs = tasks.clone();
        Ok(tasks)
    }

    /// The blocks of `node`, lowering it (and what it reads) first.
    fn blocks(&mut self, node: &Arc<Node>) -> Result<Blocks> {
        if let Some(b) = self.done.get(&Arc::as_ptr(node).addr()) {
            return Ok(b.clone());
        }
        let blocks = match &node.op {
            Op::Zarr { url, identity } => Blocks::Zarr { url: url.clone(), identity: identity.clone() },
            _ => Blocks::Tasks(self.tasks(node, None)?),
        };
        self.done.insert(Arc::as_ptr(node).addr(), blocks.clone());
        Ok(blocks)
    }

    /// Tasks computing every block of `node`, their outputs as `target` says (intermediates
    /// when `None`).
    fn tasks(&mut self, node: &Arc<Node>, target: Option<&Target>) -> Result<Vec<usize>> {
        let out = |index: &[u64]| match target {
            Some(Target::Zarr { url, metadata }) => {
                Output::Zarr { array: url.clone(), metadata: metadata.clone(), chunk: index.to_vec() }
            }
            _ => Output::Intermediate,
        };
        match &node.op {
            Op::Zarr { .. } => self.copy(node, &out),
            Op::Map { expr } => self.map(node, expr, &out),
            Op::Reduce { input, reduction, axes, keepdims, split_every } => {
                self.reduce(node, input, reduction, axes, *keepdims, *split_every, &out)
            }
            Op::Rechunk { input } => {
                let sel: Vec<Sel> =
                    input.meta.shape.iter().map(|&s| Sel::Range { start: 0, step: 1, count: s }).collect();
                self.gather(node, input, &sel, "rechunk", &out)
            }
            Op::Slice { input, sel } => self.gather(node, input, sel, "slice", &out),
            Op::Transpose { input, axes } => self.transpose(node, input, axes, &out),
            Op::TensorDot { left, right, left_axes, right_axes, split_every } => {
                self.tensordot(node, left, right, left_axes, right_axes, *split_every, &out)
            }
            Op::MapBlocks { input, function, json } => self.map_blocks(node, input, function, *json, &out),
            Op::FromFrame { graph, rows, columns } => self.frame_rows(node, graph, rows, columns, &out),
        }
    }

    /// Lowers `inputs` before the caller makes its stage, so stages come in dependency order.
    fn inputs_first(&mut self, inputs: &[Arc<Node>]) -> Result<()> {
        for input in inputs {
            self.blocks(input)?;
        }
        Ok(())
    }

    /// The input feeding `port` with block `index` of `node`.
    fn port(&mut self, node: &Arc<Node>, index: &[u64], port: u32) -> Result<Port> {
        Ok(match self.blocks(node)? {
            Blocks::Tasks(tasks) => {
                let t = tasks[grid::flat(index, &node.meta.grid())];
                Port { input: upstream_port(&self.graph.tasks[t].key, port), dep: Some(t), identity: None }
            }
            Blocks::Zarr { url, identity } => Port {
                input: Input::Zarr {
                    array: url,
                    region: grid::region(&node.meta.shape, &node.meta.chunks, index),
                    port,
                },
                dep: None,
                identity: Some(identity),
            },
        })
    }

    fn stage(&mut self, name: &str, line: String, meta: &Meta) -> usize {
        let schema = Some(shoal_worker::ops::chunks::chunk::chunk_schema(meta.dtype));
        let bytes = meta.shape.iter().product::<u64>() * meta.dtype.size();
        self.graph.stage(name, vec![line], bytes, schema)
    }

    /// Adds a task, after checking its projected memory.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        stage: usize,
        what: &str,
        ports: Vec<Port>,
        pipeline: Vec<ChunkOp>,
        output: Output,
        projected: u64,
        detail: &dyn Fn() -> String,
    ) -> Result<usize> {
        if projected > self.limit {
            return Err(Error::TaskMemory(format!(
                "{what}: a task would hold {} ({}), over the task memory limit of {}; use smaller chunks{}",
                human_bytes(projected),
                detail(),
                human_bytes(self.limit),
                if what.starts_with("rechunk") { "" } else { " (rechunk first)" }
            )));
        }
        let entry = self.memory.entry(stage).or_default();
        entry.max_task_bytes = entry.max_task_bytes.max(projected);
        let identities: Vec<String> = ports.iter().filter_map(|p| p.identity.clone()).collect();
        let mut deps: Vec<usize> = Vec::new();
        for d in ports.iter().filter_map(|p| p.dep) {
            if !deps.contains(&d) {
                deps.push(d);
            }
        }
        let inputs: Vec<Input> = ports.into_iter().map(|p| p.input).collect();
        let pipeline: Vec<Operator> = pipeline.into_iter().map(Operator::Chunks).collect();
        let name = &self.graph.stages[stage].name;
        let key = TaskKey::derive(name, &(&inputs, &pipeline, &output, &identities));
        let index = self.graph.stages[stage].tasks.len();
        Ok(self.graph.push(TaskNode {
            key,
            stage,
            index,
            deps,
            inputs,
            pipeline,
            output,
            skip_if_empty: false,
        }))
    }

    /// A Zarr array's blocks as tasks (when the root is a Zarr array itself).
    fn copy(&mut self, node: &Arc<Node>, out: &dyn Fn(&[u64]) -> Output) -> Result<Vec<usize>> {
        let m = &node.meta;
        let stage = self.stage("array-read", format!("read zarr · {}", grid_line(m)), m);
        let mut tasks = Vec::new();
        for index in grid::indices(&m.grid()) {
            let port = self.port(node, &index, 0)?;
            let n = elements(&grid::block_shape(&m.shape, &m.chunks, &index));
            let projected = 2 * held(n, m.dtype);
            tasks.push(
                self.push(stage, "read", vec![port], vec![], out(&index), projected, &|| chunk_text(m))?,
            );
        }
        Ok(tasks)
    }

    /// The ports, the `Map` operator and the projected memory of block `index` of an
    /// elementwise node.
    fn map_parts(
        &mut self,
        node: &Arc<Node>,
        expr: &Expr,
        index: &[u64],
    ) -> Result<(Vec<Port>, ChunkOp, u64)> {
        let m = &node.meta;
        let arrays = expr.arrays();
        let mut ports = Vec::with_capacity(arrays.len());
        let mut projected = 0;
        for (p, a) in arrays.iter().enumerate() {
            let at = broadcast_index(m, &a.meta, index);
            projected += held(elements(&grid::block_shape(&a.meta.shape, &a.meta.chunks, &at)), a.meta.dtype);
            ports.push(self.port(a, &at, p as u32)?);
        }
        let shape = grid::block_shape(&m.shape, &m.chunks, index);
        let n = elements(&shape);
        projected += held(n, m.dtype) + expr.operations() * n * 8;
        let wire = to_wire(expr, &arrays, index, m);
        Ok((ports, ChunkOp::Map { expr: wire, shape, dtype: m.dtype }, projected))
    }

    fn map(&mut self, node: &Arc<Node>, expr: &Expr, out: &dyn Fn(&[u64]) -> Output) -> Result<Vec<usize>> {
        self.inputs_first(&expr.arrays())?;
        let m = &node.meta;
        let stage = self.stage("array-map", format!("map {} · {}", expr_text(expr), grid_line(m)), m);
        let mut tasks = Vec::new();
        for index in grid::indices(&m.grid()) {
            let (ports, op, projected) = self.map_parts(node, expr, &index)?;
            tasks.push(
                self.push(stage, "elementwise", ports, vec![op], out(&index), projected, &|| chunk_text(m))?,
            );
        }
        Ok(tasks)
    }

    /// A reduction as a tree: a partial task per input block (running the input's expression
    /// too, when it is one), combines of `split_every` states, and a final task per output block.
    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &mut self,
        node: &Arc<Node>,
        input: &Arc<Node>,
        reduction: &ArrayReduction,
        axes: &[usize],
        keepdims: bool,
        split_every: usize,
        out: &dyn Fn(&[u64]) -> Output,
    ) -> Result<Vec<usize>> {
        let (im, m) = (&input.meta, &node.meta);
        let name = reduction_name(reduction);
        let fused = match &input.op {
            Op::Map { expr } if !self.done.contains_key(&Arc::as_ptr(input).addr()) => Some(expr.clone()),
            _ => None,
        };
        match &fused {
            Some(e) => self.inputs_first(&e.arrays())?,
            None => self.inputs_first(std::slice::from_ref(input))?,
        }
        let what = format!("{name} over axes {axes:?}");
        let line = match &fused {
            Some(e) => format!("{what} of {} · {}", expr_text(e), grid_line(im)),
            None => format!("{what} · {}", grid_line(im)),
        };
        let partial_stage = self.stage(&format!("array-{name}-partial"), line, im);
        let id = Arc::as_ptr(node).addr();
        let final_line = format!("{name} · {}", grid_line(m));
        let reduce_op = |step: ReduceStep, offset: Vec<u64>, shape: Vec<u64>| ChunkOp::Reduce {
            reduction: reduction.clone(),
            step,
            axes: axes.to_vec(),
            keepdims,
            dtype: m.dtype,
            offset,
            shape,
        };
        // Input blocks grouped by their index along the kept axes: one output block each.
        let mut groups: BTreeMap<Vec<u64>, Vec<Vec<u64>>> = BTreeMap::new();
        for index in grid::indices(&im.grid()) {
            let kept = index.iter().enumerate().filter(|(d, _)| !axes.contains(d)).map(|(_, &i)| i).collect();
            groups.entry(kept).or_default().push(index);
        }
        let mut outputs = Vec::with_capacity(groups.len());
        for (kept, blocks) in groups {
            let out_index = output_index(&kept, axes, im.ndim(), keepdims);
            let single = blocks.len() == 1;
            let mut states = Vec::with_capacity(blocks.len());
            for index in &blocks {
                let shape = grid::block_shape(&im.shape, &im.chunks, index);
                let offset: Vec<u64> = index.iter().zip(&im.chunks).map(|(&i, &c)| i * c).collect();
                let (ports, mut pipeline, mut projected) = match &fused {
                    Some(expr) => {
                        let (ports, op, p) = self.map_parts(input, expr, index)?;
                        (ports, vec![op], p)
                    }
                    None => (vec![self.port(input, index, 0)?], vec![], held(elements(&shape), im.dtype)),
                };
                projected += held(elements(&shape), DType::Float64) + state_bytes(&reduced(&shape, axes));
                pipeline.push(reduce_op(ReduceStep::Partial, offset, im.shape.clone()));
                let (stage, output) = if single {
                    // One block along the reduced axes: partial and final in one task.
                    pipeline.push(reduce_op(ReduceStep::Final, vec![], vec![]));
                    (
                        self.named_stage(id, &format!("array-{name}-final"), &final_line, Some(m)),
                        out(&out_index),
                    )
                } else {
                    (partial_stage, Output::Intermediate)
                };
                let t = self.push(stage, &what, ports, pipeline, output, projected, &|| chunk_text(im))?;
                states.push((t, reduced(&shape, axes)));
            }
            if single {
                outputs.push(states[0].0);
                continue;
            }
            let combine = reduce_op(ReduceStep::Combine, vec![], vec![]);
            let line = format!("{name} combine, {split_every} states a task");
            let states = self.combine_tree(
                id,
                &format!("array-{name}-combine"),
                &line,
                states,
                split_every,
                &combine,
                &what,
            )?;
            let ports = states.iter().enumerate().map(|(p, &(t, _))| self.state_port(t, p)).collect();
            let projected = states.iter().map(|(_, s)| state_bytes(s)).sum::<u64>() * 2;
            let op = reduce_op(ReduceStep::Final, vec![], vec![]);
            let stage = self.named_stage(id, &format!("array-{name}-final"), &final_line, Some(m));
            outputs.push(
                self.push(stage, &what, ports, vec![op], out(&out_index), projected, &|| chunk_text(im))?,
            );
        }
        Ok(outputs)
    }

    /// Combines `states` (tasks and their state shapes) `split_every` at a time with `op` until
    /// at most `split_every` remain.
    #[allow(clippy::too_many_arguments)]
    fn combine_tree(
        &mut self,
        id: usize,
        name: &str,
        line: &str,
        mut states: Vec<(usize, Vec<u64>)>,
        split_every: usize,
        op: &ChunkOp,
        what: &str,
    ) -> Result<Vec<(usize, Vec<u64>)>> {
        let width = split_every.max(2);
        while states.len() > width {
            let stage = self.named_stage(id, name, line, None);
            let mut next = Vec::new();
            for group in states.chunks(width) {
                let ports = group.iter().enumerate().map(|(p, &(t, _))| self.state_port(t, p)).collect();
                let projected = group.iter().map(|(_, s)| state_bytes(s)).sum::<u64>() * 2;
                let t = self.push(
                    stage,
                    what,
                    ports,
                    vec![op.clone()],
                    Output::Intermediate,
                    projected,
                    &|| format!("{} states", group.len()),
                )?;
                next.push((t, group[0].1.clone()));
            }
            states = next;
        }
        Ok(states)
    }

    /// The stage `name` of node `id`, made on first use (so stages come in the order their
    /// tasks are made).
    fn named_stage(&mut self, id: usize, name: &str, line: &str, meta: Option<&Meta>) -> usize {
        if let Some(&s) = self.named.get(&(id, name.to_string())) {
            return s;
        }
        let s = match meta {
            Some(m) => self.stage(name, line.to_string(), m),
            None => self.graph.stage(name, vec![line.to_string()], 0, None),
        };
        self.named.insert((id, name.to_string()), s);
        s
    }

    fn state_port(&self, task: usize, port: usize) -> Port {
        Port {
            input: upstream_port(&self.graph.tasks[task].key, port as u32),
            dep: Some(task),
            identity: None,
        }
    }

    /// Blocks assembled from pieces of the input's blocks: a rechunk (every `sel` the whole
    /// dimension) or a basic slice.
    fn gather(
        &mut self,
        node: &Arc<Node>,
        input: &Arc<Node>,
        sel: &[Sel],
        what: &str,
        out: &dyn Fn(&[u64]) -> Output,
    ) -> Result<Vec<usize>> {
        self.inputs_first(std::slice::from_ref(input))?;
        let (im, m) = (&input.meta, &node.meta);
        // The output before integer-indexed axes are dropped: those have one element.
        let squeeze: Vec<usize> =
            sel.iter().enumerate().filter(|(_, s)| matches!(s, Sel::Index(_))).map(|(d, _)| d).collect();
        let mut full_shape = Vec::with_capacity(sel.len());
        let mut full_chunks = Vec::with_capacity(sel.len());
        let mut kept = m.shape.iter().zip(&m.chunks);
        for s in sel {
            match s {
                Sel::Index(_) => {
                    full_shape.push(1);
                    full_chunks.push(1);
                }
                Sel::Range { .. } => {
                    let (&size, &chunk) = kept
                        .next()
                        .ok_or_else(|| Error::Invalid(format!("{what}: an index of the wrong length")))?;
                    full_shape.push(size);
                    full_chunks.push(chunk);
                }
            }
        }
        let line =
            format!("{what} {} → {} · {}", chunks_text(&im.chunks), chunks_text(&m.chunks), grid_line(m));
        let stage = self.stage(&format!("array-{what}"), line, m);
        let mut tasks = Vec::new();
        for index in grid::indices(&grid::grid(&full_shape, &full_chunks)) {
            let region = grid::region(&full_shape, &full_chunks, &index);
            // Per dimension: (input block, source range in it, destination range).
            let per_dim: Vec<Vec<(u64, SliceDim, [u64; 2])>> =
                (0..sel.len()).map(|d| dim_pieces(&sel[d], region[d], im.chunks[d])).collect();
            let mut ports: Vec<Port> = Vec::new();
            let mut port_of: HashMap<Vec<u64>, u32> = HashMap::new();
            let mut pieces = Vec::new();
            let mut projected = 0;
            for combo in product(&per_dim) {
                let block: Vec<u64> = combo.iter().map(|p| p.0).collect();
                let port = match port_of.get(&block) {
                    Some(&p) => p,
                    None => {
                        let p = ports.len() as u32;
                        ports.push(self.port(input, &block, p)?);
                        projected +=
                            held(elements(&grid::block_shape(&im.shape, &im.chunks, &block)), im.dtype);
                        port_of.insert(block, p);
                        p
                    }
                };
                pieces.push(Piece {
                    port,
                    src: combo.iter().map(|p| p.1).collect(),
                    dst: combo.iter().map(|p| p.2).collect(),
                });
            }
            let shape: Vec<u64> = region.iter().map(|[a, b]| b - a).collect();
            projected += held(elements(&shape), m.dtype);
            let op = ChunkOp::Gather { shape, pieces, squeeze: squeeze.clone(), dtype: m.dtype };
            let out_index: Vec<u64> =
                index.iter().enumerate().filter(|(d, _)| !squeeze.contains(d)).map(|(_, &i)| i).collect();
            let reads = ports.len();
            let detail = || format!("{} reading {reads} input blocks of {}", chunk_text(m), chunk_text(im));
            tasks.push(self.push(stage, what, ports, vec![op], out(&out_index), projected, &detail)?);
        }
        Ok(tasks)
    }

    fn transpose(
        &mut self,
        node: &Arc<Node>,
        input: &Arc<Node>,
        axes: &[usize],
        out: &dyn Fn(&[u64]) -> Output,
    ) -> Result<Vec<usize>> {
        self.inputs_first(std::slice::from_ref(input))?;
        let m = &node.meta;
        let stage = self.stage("array-transpose", format!("transpose {axes:?} · {}", grid_line(m)), m);
        let mut tasks = Vec::new();
        for index in grid::indices(&m.grid()) {
            let mut at = vec![0; index.len()];
            for (i, &a) in axes.iter().enumerate() {
                at[a] = index[i];
            }
            let port = self.port(input, &at, 0)?;
            let n = elements(&grid::block_shape(&m.shape, &m.chunks, &index));
            let projected = 3 * held(n, m.dtype);
            let op = ChunkOp::Transpose { axes: axes.to_vec() };
            tasks.push(self.push(
                stage,
                "transpose",
                vec![port],
                vec![op],
                out(&index),
                projected,
                &|| chunk_text(m),
            )?);
        }
        Ok(tasks)
    }

    /// `tensordot` blockwise: a product task per pair of blocks along the contracted axes,
    /// summed by a tree of elementwise adds.
    #[allow(clippy::too_many_arguments)]
    fn tensordot(
        &mut self,
        node: &Arc<Node>,
        left: &Arc<Node>,
        right: &Arc<Node>,
        left_axes: &[usize],
        right_axes: &[usize],
        split_every: usize,
        out: &dyn Fn(&[u64]) -> Output,
    ) -> Result<Vec<usize>> {
        self.inputs_first(&[left.clone(), right.clone()])?;
        let (lm, rm, m) = (&left.meta, &right.meta, &node.meta);
        let free_l: Vec<usize> = (0..lm.ndim()).filter(|d| !left_axes.contains(d)).collect();
        let free_r: Vec<usize> = (0..rm.ndim()).filter(|d| !right_axes.contains(d)).collect();
        let contracted: Vec<u64> = left_axes.iter().map(|&d| lm.grid()[d]).collect();
        let line = format!(
            "tensordot {left_axes:?}·{right_axes:?} of {} and {} · {}",
            chunks_text(&lm.chunks),
            chunks_text(&rm.chunks),
            grid_line(m)
        );
        let stage = self.stage("array-tensordot", line, m);
        let mut sum_stage = None;
        let mut outputs = Vec::new();
        for index in grid::indices(&m.grid()) {
            let (il, ir) = index.split_at(free_l.len());
            let combos = grid::indices(&contracted);
            let single = combos.len() == 1;
            let mut partials = Vec::new();
            for k in &combos {
                let mut li = vec![0; lm.ndim()];
                let mut ri = vec![0; rm.ndim()];
                for (j, &d) in free_l.iter().enumerate() {
                    li[d] = il[j];
                }
                for (j, &d) in free_r.iter().enumerate() {
                    ri[d] = ir[j];
                }
                for (j, (&dl, &dr)) in left_axes.iter().zip(right_axes).enumerate() {
                    li[dl] = k[j];
                    ri[dr] = k[j];
                }
                let ports = vec![self.port(left, &li, 0)?, self.port(right, &ri, 1)?];
                let n_out = elements(&grid::block_shape(&m.shape, &m.chunks, &index));
                let projected = 2 * held(elements(&grid::block_shape(&lm.shape, &lm.chunks, &li)), lm.dtype)
                    + 2 * held(elements(&grid::block_shape(&rm.shape, &rm.chunks, &ri)), rm.dtype)
                    + 2 * held(n_out, m.dtype);
                let op = ChunkOp::TensorDot {
                    left: left_axes.to_vec(),
                    right: right_axes.to_vec(),
                    dtype: m.dtype,
                };
                let output = if single { out(&index) } else { Output::Intermediate };
                let detail = || format!("blocks {} and {}", chunk_text(lm), chunk_text(rm));
                partials.push(self.push(stage, "tensordot", ports, vec![op], output, projected, &detail)?);
            }
            if single {
                outputs.push(partials[0]);
                continue;
            }
            let shape = grid::block_shape(&m.shape, &m.chunks, &index);
            let width = split_every.max(2);
            loop {
                let last = partials.len() <= width;
                let stage = *sum_stage.get_or_insert_with(|| {
                    self.graph.stage(
                        "array-tensordot-sum",
                        vec![format!("sum of products, {width} a task")],
                        0,
                        None,
                    )
                });
                let mut next = Vec::new();
                for group in partials.chunks(width) {
                    let ports: Vec<Port> =
                        group.iter().enumerate().map(|(p, &t)| self.state_port(t, p)).collect();
                    let expr = (1..group.len() as u32).fold(ChunkExpr::Port { port: 0 }, |acc, p| {
                        ChunkExpr::Binary {
                            op: BinaryOp::Add,
                            left: Box::new(acc),
                            right: Box::new(ChunkExpr::Port { port: p }),
                        }
                    });
                    let projected = (group.len() as u64 + 2) * held(elements(&shape), m.dtype);
                    let op = ChunkOp::Map { expr, shape: shape.clone(), dtype: m.dtype };
                    let output = if last { out(&index) } else { Output::Intermediate };
                    next.push(
                        self.push(stage, "tensordot", ports, vec![op], output, projected, &|| chunk_text(m))?,
                    );
                }
                partials = next;
                if last {
                    break;
                }
            }
            outputs.push(partials[0]);
        }
        Ok(outputs)
    }

    fn map_blocks(
        &mut self,
        node: &Arc<Node>,
        input: &Arc<Node>,
        function: &shoal_protocol::FunctionRef,
        json: bool,
        out: &dyn Fn(&[u64]) -> Output,
    ) -> Result<Vec<usize>> {
        self.inputs_first(std::slice::from_ref(input))?;
        let m = &node.meta;
        let stage =
            self.stage("array-map-blocks", format!("map_blocks {} · {}", function.function, grid_line(m)), m);
        let mut tasks = Vec::new();
        for index in grid::indices(&m.grid()) {
            let port = self.port(input, &index, 0)?;
            let shape = grid::block_shape(&m.shape, &m.chunks, &index);
            // As JSON, a block is its text and a tree of values both ways: about 64 bytes an element.
            let json_bytes = if json { 64 * elements(&shape) } else { 0 };
            let projected = 2 * held(elements(&shape), input.meta.dtype)
                + 2 * held(elements(&shape), m.dtype)
                + json_bytes;
            let op = ChunkOp::MapBlocks {
                function: function.clone(),
                block_index: index.clone(),
                shape,
                dtype: m.dtype,
                json,
            };
            tasks.push(self.push(
                stage,
                "map_blocks",
                vec![port],
                vec![op],
                out(&index),
                projected,
                &|| chunk_text(m),
            )?);
        }
        Ok(tasks)
    }

    /// A DataFrame's partitions as 2-d blocks (one per partition), gathered into the node's
    /// regular row chunks.
    fn frame_rows(
        &mut self,
        node: &Arc<Node>,
        frame: &TaskGraph,
        rows: &[u64],
        columns: &[String],
        out: &dyn Fn(&[u64]) -> Output,
    ) -> Result<Vec<usize>> {
        let m = &node.meta;
        let parts = self.graph.extend(frame);
        let ncols = columns.len() as u64;
        let stage =
            self.stage("array-from-rows", format!("rows of [{}] as {}", columns.join(", "), m.dtype), m);
        let mut blocks = Vec::new();
        for (i, &t) in parts.iter().enumerate() {
            let port =
                Port { input: upstream_port(&self.graph.tasks[t].key, 0), dep: Some(t), identity: None };
            let projected = 3 * held(rows[i] * ncols, m.dtype);
            let op = ChunkOp::FromRows { columns: columns.to_vec(), dtype: m.dtype };
            blocks.push(self.push(
                stage,
                "to_array",
                vec![port],
                vec![op],
                Output::Intermediate,
                projected,
                &|| format!("{} rows", rows[i]),
            )?);
        }
        let mut starts = Vec::with_capacity(rows.len());
        let mut at = 0;
        for &r in rows {
            starts.push(at);
            at += r;
        }
        let stage = self.stage(
            "array-rows-rechunk",
            format!("rows into chunks {} · {}", chunks_text(&m.chunks), grid_line(m)),
            m,
        );
        let mut tasks = Vec::new();
        for index in grid::indices(&m.grid()) {
            let [a, b] = grid::range(m.shape[0], m.chunks[0], index[0]);
            let mut ports = Vec::new();
            let mut pieces = Vec::new();
            let mut projected = held((b - a) * ncols, m.dtype);
            for (i, (&s, &r)) in starts.iter().zip(rows).enumerate() {
                let (lo, hi) = (a.max(s), b.min(s + r));
                if lo >= hi {
                    continue;
                }
                let p = ports.len() as u32;
                ports.push(self.state_port(blocks[i], p as usize));
                projected += held(r * ncols, m.dtype);
                pieces.push(Piece {
                    port: p,
                    src: vec![
                        SliceDim { start: lo - s, step: 1, count: hi - lo },
                        SliceDim { start: 0, step: 1, count: ncols },
                    ],
                    dst: vec![[lo - a, hi - a], [0, ncols]],
                });
            }
            let op = ChunkOp::Gather { shape: vec![b - a, ncols], pieces, squeeze: vec![], dtype: m.dtype };
            tasks.push(
                self.push(stage, "to_array", ports, vec![op], out(&index), projected, &|| chunk_text(m))?,
            );
        }
        Ok(tasks)
    }
}

/// What a reduction state of `shape` holds at most (three float columns: variance's).
fn state_bytes(shape: &[u64]) -> u64 {
    3 * held(elements(shape), DType::Float64)
}

fn elements(shape: &[u64]) -> u64 {
    shape.iter().product()
}

/// The shape with the `axes` of size 1.
fn reduced(shape: &[u64], axes: &[usize]) -> Vec<u64> {
    shape.iter().enumerate().map(|(d, &s)| if axes.contains(&d) { 1 } else { s }).collect()
}

/// The output block of a reduction for the input blocks at `kept` along the kept axes.
fn output_index(kept: &[u64], axes: &[usize], ndim: usize, keepdims: bool) -> Vec<u64> {
    if !keepdims {
        return kept.to_vec();
    }
    let mut kept = kept.iter();
    (0..ndim).map(|d| if axes.contains(&d) { 0 } else { kept.next().copied().unwrap_or(0) }).collect()
}

/// The block of `input` (broadcast to `out`, NumPy-style: dimensions aligned from the right,
/// a dimension of size 1 stretched) that block `index` of `out` reads.
fn broadcast_index(out: &Meta, input: &Meta, index: &[u64]) -> Vec<u64> {
    let skip = out.ndim() - input.ndim();
    (0..input.ndim()).map(|d| if input.shape[d] == 1 { 0 } else { index[skip + d] }).collect()
}

/// The expression for block `index`: arrays as their ports, generators at this block.
fn to_wire(expr: &Expr, arrays: &[Arc<Node>], index: &[u64], m: &Meta) -> ChunkExpr {
    let b = |e: &Expr| Box::new(to_wire(e, arrays, index, m));
    match expr {
        Expr::Array(n) => {
            let port = arrays.iter().position(|a| Arc::ptr_eq(a, n)).unwrap_or(0) as u32;
            ChunkExpr::Port { port }
        }
        Expr::Scalar(s) => ChunkExpr::Scalar { value: s.clone() },
        Expr::Full { value, dtype } => ChunkExpr::Full { value: value.clone(), dtype: *dtype },
        Expr::Arange { start, step, dtype } => ChunkExpr::Arange {
            start: start.clone(),
            step: step.clone(),
            offset: index[0] * m.chunks[0],
            dtype: *dtype,
        },
        Expr::Linspace { start, stop, num, endpoint } => ChunkExpr::Linspace {
            start: start.clone(),
            stop: stop.clone(),
            num: *num,
            endpoint: *endpoint,
            offset: index[0] * m.chunks[0],
        },
        Expr::Random { seed } => ChunkExpr::Random { seed: *seed, chunk: index.to_vec() },
        Expr::Unary(op, a) => ChunkExpr::Unary { op: *op, arg: b(a) },
        Expr::Binary(op, l, r) => ChunkExpr::Binary { op: *op, left: b(l), right: b(r) },
        Expr::Where(c, t, o) => ChunkExpr::Where { condition: b(c), then: b(t), otherwise: b(o) },
        Expr::Cast(d, a) => ChunkExpr::Cast { dtype: *d, arg: b(a) },
    }
}

/// Per dimension of a gather: the output range `region` of block of the selection `sel`,
/// split by the input blocks (of `chunk`) it reads.
fn dim_pieces(sel: &Sel, region: [u64; 2], chunk: u64) -> Vec<(u64, SliceDim, [u64; 2])> {
    let (start, step) = match *sel {
        Sel::Index(i) => (i, 1),
        Sel::Range { start, step, .. } => (start, step),
    };
    let source = |k: u64| (start as i64 + step * k as i64) as u64;
    let mut out: Vec<(u64, SliceDim, [u64; 2])> = Vec::new();
    let mut k = region[0];
    while k < region[1] {
        let block = source(k) / chunk;
        // How many steps stay within this input block.
        let (lo, hi) = (block * chunk, (block + 1) * chunk);
        let mut count = 1;
        while k + count < region[1] && (lo..hi).contains(&source(k + count)) {
            count += 1;
        }
        out.push((
            block,
            SliceDim { start: source(k) - lo, step, count },
            [k - region[0], k - region[0] + count],
        ));
        k += count;
    }
    out
}

/// The cartesian product of per-dimension pieces.
fn product<T: Clone>(per_dim: &[Vec<T>]) -> Vec<Vec<T>> {
    per_dim.iter().fold(vec![vec![]], |acc, options| {
        acc.iter()
            .flat_map(|prefix| {
                options.iter().map(move |o| {
                    let mut v = prefix.clone();
                    v.push(o.clone());
                    v
                })
            })
            .collect()
    })
}

pub fn reduction_name(r: &ArrayReduction) -> &'static str {
    match r {
        ArrayReduction::Sum => "sum",
        ArrayReduction::Prod => "prod",
        ArrayReduction::Min => "min",
        ArrayReduction::Max => "max",
        ArrayReduction::Mean => "mean",
        ArrayReduction::Var { .. } => "var",
        ArrayReduction::Std { .. } => "std",
        ArrayReduction::Any => "any",
        ArrayReduction::All => "all",
        ArrayReduction::Argmin => "argmin",
        ArrayReduction::Argmax => "argmax",
    }
}

pub fn chunks_text(chunks: &[u64]) -> String {
    let inner: Vec<String> = chunks.iter().map(u64::to_string).collect();
    if inner.len() == 1 { format!("({},)", inner[0]) } else { format!("({})", inner.join(", ")) }
}

fn chunk_text(m: &Meta) -> String {
    format!("chunks {} of {}, {} each", chunks_text(&m.chunks), m.dtype, human_bytes(m.chunk_bytes()))
}

/// `shape (1000, 1000) · chunks (100, 100) · grid 10×10 = 100 blocks`.
pub fn grid_line(m: &Meta) -> String {
    let g: Vec<String> = m.grid().iter().map(u64::to_string).collect();
    format!(
        "shape {} {} · chunks {} · grid {} = {} blocks",
        chunks_text(&m.shape),
        m.dtype,
        chunks_text(&m.chunks),
        if g.is_empty() { "1".into() } else { g.join("×") },
        m.nblocks()
    )
}

fn expr_text(expr: &Expr) -> String {
    let mut names: HashMap<usize, String> = HashMap::new();
    expr.display(&mut |n: &Arc<Node>| {
        let next = names.len();
        names.entry(Arc::as_ptr(n).addr()).or_insert_with(|| format!("x{next}")).clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strided_slice_is_split_by_input_block() {
        // x[1:10:3] over chunks of 4: elements 1, 4, 7 lie in blocks 0, 1, 1.
        let pieces = dim_pieces(&Sel::Range { start: 1, step: 3, count: 3 }, [0, 3], 4);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], (0, SliceDim { start: 1, step: 3, count: 1 }, [0, 1]));
        assert_eq!(pieces[1], (1, SliceDim { start: 0, step: 3, count: 2 }, [1, 3]));
        // Backwards: x[9::-4] of 10 over chunks of 5: 9, 5, 1 in blocks 1, 1, 0.
        let back = dim_pieces(&Sel::Range { start: 9, step: -4, count: 3 }, [0, 3], 5);
        assert_eq!(back[0], (1, SliceDim { start: 4, step: -4, count: 2 }, [0, 2]));
        assert_eq!(back[1], (0, SliceDim { start: 1, step: -4, count: 1 }, [2, 3]));
    }
}
