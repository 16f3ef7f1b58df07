//! The Array: chunked n-dimensional arrays like `dask.array`, run the way Cubed runs them —
//! every task's memory projected at plan time, every intermediate block committed through
//! object storage, user-visible arrays in Zarr.
//!
//! - [`node`]: the logical plan (each node knows its shape, chunks and type).
//! - [`grid`]: chunk grids and `chunks = "auto"`.
//! - `ops`: the operations (elementwise with NumPy broadcasting and promotion, reductions,
//!   slicing, transpose, tensordot / matmul, map_blocks, rechunk).
//! - [`rechunk`]: multi-stage rechunk plans within the memory limit.
//! - [`lower`]: the task graph, and the memory projection that refuses a plan before it runs.
//!
//! Elementwise operations fuse: an expression over arrays of one shape is one node, evaluated
//! per block in one task, and a reduction of it evaluates it inside its own first tasks.

pub mod grid;
pub mod lower;
pub mod node;
mod ops;
pub mod rechunk;

pub use grid::Chunks;
pub use ops::{Axes, Index, Operand};
pub use shoal_protocol::{DType, Scalar};
pub use shoal_worker::ops::chunks::chunk::{Chunk as NdArray, Data};

use crate::client::{Client, FunctionModule};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::run::report::RunSummary;
use crate::run::results;
use bytes::Bytes;
use lower::{Lowering, Target};
use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use node::{Expr, Meta, Node, Op};
use std::sync::Arc;

/// A lazy chunked array. Operations record nodes (checking shapes, types and axes at once);
/// nothing runs until [`compute`](Array::compute) or [`to_zarr`](Array::to_zarr).
#[derive(Debug, Clone)]
pub struct Array {
    client: Client,
    node: Arc<Node>,
    modules: Vec<FunctionModule>,
    split_every: usize,
}

/// Array sources: `from_zarr`, `zeros`, `ones`, `full`, `arange`, `linspace`, `random`.
#[derive(Debug, Clone, Copy)]
pub struct Arrays<'a> {
    client: &'a Client,
}

impl Client {
    /// Array sources.
    pub fn array(&self) -> Arrays<'_> {
        Arrays { client: self }
    }
}

/// Reductions default to combining this many states per task, as `dask.array` does.
pub const DEFAULT_SPLIT_EVERY: usize = 8;

impl Arrays<'_> {
    fn source(&self, meta: Meta, op: Op) -> Array {
        Array::from_node(self.client.clone(), Arc::new(Node { meta, op }), vec![])
    }

    fn generated(&self, shape: &[u64], chunks: impl Into<Chunks>, dtype: DType, expr: Expr) -> Result<Array> {
        let chunks = grid::resolve(shape, &chunks.into(), dtype)?;
        Ok(self.source(Meta { shape: shape.to_vec(), chunks, dtype }, Op::Map { expr }))
    }

    /// The Zarr array (v3, or v2) at `url`, in its own chunks; its type and codecs are checked
    /// now, so an array this build cannot read fails here.
    pub async fn from_zarr(&self, url: &str) -> Result<Array> {
        let storage = self.client.storage();
        let info = shoal_worker::io::zarr::info(storage, url).await?;
        let meta_url = if info.zarr_format == 2 { ".zarray" } else { "zarr.json" };
        let object = storage.head(&storage.resolve(url)?.join(meta_url).url).await?;
        let identity = format!("{}:{}", object.size, object.e_tag.unwrap_or_default());
        let url = storage.resolve(url)?.url;
        let chunks = info.chunks.iter().zip(&info.shape).map(|(&c, &s)| c.min(s.max(1))).collect();
        Ok(self.source(Meta { shape: info.shape, chunks, dtype: info.dtype }, Op::Zarr { url, identity }))
    }

    /// An array of `value` everywhere (NumPy's `full`).
    pub fn full(
        &self,
        shape: &[u64],
        value: impl Into<Scalar>,
        chunks: impl Into<Chunks>,
        dtype: DType,
    ) -> Result<Array> {
        self.generated(shape, chunks, dtype, Expr::Full { value: value.into(), dtype })
    }

    pub fn zeros(&self, shape: &[u64], chunks: impl Into<Chunks>, dtype: DType) -> Result<Array> {
        self.full(shape, Scalar::Int(0), chunks, dtype)
    }

    pub fn ones(&self, shape: &[u64], chunks: impl Into<Chunks>, dtype: DType) -> Result<Array> {
        self.full(shape, Scalar::Int(1), chunks, dtype)
    }

    /// `arange(start, stop, step)`: integers when all three are, floats otherwise (NumPy's
    /// length `ceil((stop - start) / step)`).
    pub fn arange(
        &self,
        start: impl Into<Scalar>,
        stop: impl Into<Scalar>,
        step: impl Into<Scalar>,
        chunks: impl Into<Chunks>,
    ) -> Result<Array> {
        let (start, stop, step) = (start.into(), stop.into(), step.into());
        let ints = [&start, &stop, &step].iter().all(|s| matches!(s, Scalar::Int(_)));
        let dtype = if ints { DType::Int64 } else { DType::Float64 };
        let (a, b, s) = (start.as_f64(), stop.as_f64(), step.as_f64());
        if s == 0.0 || !s.is_finite() {
            return Err(Error::Invalid(format!("arange: step must be a non-zero finite number, not {s}")));
        }
        let n = ((b - a) / s).ceil().max(0.0) as u64;
        self.generated(&[n], chunks, dtype, Expr::Arange { start, step, dtype })
    }

    /// `num` evenly spaced floats from `start` to `stop` (included when `endpoint`).
    pub fn linspace(
        &self,
        start: f64,
        stop: f64,
        num: u64,
        endpoint: bool,
        chunks: impl Into<Chunks>,
    ) -> Result<Array> {
        let expr = Expr::Linspace { start: Scalar::float(start), stop: Scalar::float(stop), num, endpoint };
        self.generated(&[num], chunks, DType::Float64, expr)
    }

    /// Uniform float64 values in `[0, 1)`. Each block is a pure function of `seed` and the
    /// block's index, so a retried, duplicated or resumed task reproduces it exactly — and the
    /// values depend on the chunking (as in `dask.array`).
    pub fn random(&self, shape: &[u64], chunks: impl Into<Chunks>, seed: u64) -> Result<Array> {
        self.generated(shape, chunks, DType::Float64, Expr::Random { seed })
    }
}

impl Array {
    fn from_node(client: Client, node: Arc<Node>, modules: Vec<FunctionModule>) -> Array {
        Array { client, node, modules, split_every: DEFAULT_SPLIT_EVERY }
    }

    /// A new array of this one's client, modules and settings.
    fn derive(&self, meta: Meta, op: Op, extra: &[&Array]) -> Array {
        let mut modules = self.modules.clone();
        for other in extra {
            for m in &other.modules {
                if !modules.iter().any(|x| x.reference.sha256 == m.reference.sha256) {
                    modules.push(m.clone());
                }
            }
        }
        Array {
            client: self.client.clone(),
            node: Arc::new(Node { meta, op }),
            modules,
            split_every: self.split_every,
        }
    }

    pub fn shape(&self) -> &[u64] {
        &self.node.meta.shape
    }

    pub fn chunks(&self) -> &[u64] {
        &self.node.meta.chunks
    }

    pub fn dtype(&self) -> DType {
        self.node.meta.dtype
    }

    pub fn ndim(&self) -> usize {
        self.node.meta.ndim()
    }

    /// Blocks in the chunk grid.
    pub fn nblocks(&self) -> u64 {
        self.node.meta.nblocks()
    }

    /// States combined per task by this array's reductions and matmul sums (default 8).
    pub fn split_every(&self, n: usize) -> Array {
        Array { split_every: n.max(2), ..self.clone() }
    }

    fn memory_limit(&self) -> u64 {
        self.client.config().limits.task_memory_bytes
    }

    /// The task graph, each stage's first line ending with its largest projected task.
    fn lower(&self, target: &Target) -> Result<crate::graph::TaskGraph> {
        let mut lowering = Lowering::new(self.memory_limit());
        lowering.root(&self.node, target)?;
        let memory = lowering.stage_memory().clone();
        for (stage, m) in memory {
            if let Some(s) = lowering.graph.stages.get_mut(stage)
                && let Some(line) = s.operators.first_mut()
            {
                line.push_str(&format!(
                    " · projected ≤ {} a task",
                    shoal_worker::error::human_bytes(m.max_task_bytes)
                ));
            }
        }
        Ok(lowering.graph)
    }

    /// Plans the whole graph without running it: every error of the plan — a task over the
    /// memory limit above all — now rather than after other work ran.
    pub fn check_plan(&self) -> Result<()> {
        self.lower(&Target::Collect).map(|_| ())
    }

    /// The plan as stages with their chunk grids, task counts and projected memory per task.
    pub fn explain(&self) -> Result<String> {
        let graph = self.lower(&Target::Collect)?;
        let mut out = format!(
            "== array plan ==\n{} · task memory limit {}\n",
            lower::grid_line(&self.node.meta),
            shoal_worker::error::human_bytes(self.memory_limit())
        );
        out.push_str(&crate::collections::dataframe::explain_graph(&graph));
        Ok(out)
    }

    /// Runs the plan and returns the whole array in memory.
    pub async fn compute(&self) -> Result<NdArray> {
        Ok(self.compute_with(Events::new()).await?.0)
    }

    /// [`compute`](Self::compute), publishing the run's events; also returns the run's totals.
    pub async fn compute_with(&self, events: Events) -> Result<(NdArray, RunSummary)> {
        let graph = std::sync::Arc::new(self.lower(&Target::Collect)?);
        let run = self.client.run_graph(graph.clone(), &self.modules, events).await?;
        let m = &self.node.meta;
        let shape: Vec<usize> = m.shape.iter().map(|&d| d as usize).collect();
        let template = NdArray::new(DType::Float64, Data::Float(ArrayD::zeros(IxDyn(&[])))).cast(m.dtype);
        let mut data = match template.data {
            Data::Bool(_) => Data::Bool(ArrayD::from_elem(IxDyn(&shape), false)),
            Data::Int(_) => Data::Int(ArrayD::zeros(IxDyn(&shape))),
            Data::Float(_) => Data::Float(ArrayD::zeros(IxDyn(&shape))),
        };
        for (index, &t) in grid::indices(&m.grid()).iter().zip(&graph.outputs) {
            let batches = results::read(self.client.storage(), &run.manifests[t]).await?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| Error::Invalid("an array block came back without data".into()))?;
            let block = shoal_worker::ops::chunks::chunk::from_table(&(schema, batches))?;
            let region: Vec<SliceInfoElem> = grid::region(&m.shape, &m.chunks, index)
                .iter()
                .map(|[a, b]| SliceInfoElem::Slice { start: *a as isize, end: Some(*b as isize), step: 1 })
                .collect();
            match (&mut data, &block.data) {
                (Data::Bool(o), Data::Bool(b)) => o.slice_mut(region.as_slice()).assign(b),
                (Data::Int(o), Data::Int(b)) => o.slice_mut(region.as_slice()).assign(b),
                (Data::Float(o), Data::Float(b)) => o.slice_mut(region.as_slice()).assign(b),
                _ => return Err(Error::Invalid("an array block of another type came back".into())),
            }
        }
        Ok((NdArray { dtype: m.dtype, data }, run.summary))
    }

    /// Writes the array as a Zarr v3 array at `url`, in its chunks, compressed with `codec`
    /// (`zstd`, the default of zarr-python; `gzip`; `blosc`; `none`). Each task encodes and
    /// stores one chunk; the `zarr.json` is written after every chunk (an earlier one removed
    /// first), so a reader never opens a half-written array.
    pub async fn to_zarr(&self, url: &str, codec: &str) -> Result<RunSummary> {
        self.to_zarr_with(url, codec, Events::new()).await
    }

    pub async fn to_zarr_with(&self, url: &str, codec: &str, events: Events) -> Result<RunSummary> {
        let m = &self.node.meta;
        let storage = self.client.storage();
        let url = storage.resolve(url)?.url;
        let metadata = shoal_worker::io::zarr::v3_metadata(&m.shape, &m.chunks, m.dtype, codec)?;
        let graph = self.lower(&Target::Zarr { url: url.clone(), metadata: metadata.clone() })?;
        let meta_url = shoal_worker::io::zarr::metadata_url(storage, &url)?;
        storage.delete(&meta_url).await?;
        let run = self.client.run_graph(std::sync::Arc::new(graph), &self.modules, events).await?;
        storage.put(&meta_url, Bytes::from(metadata)).await?;
        Ok(run.summary)
    }
}

/// An array as NumPy prints it (shape and type first; large arrays summarised by ndarray).
pub fn display(value: &NdArray) -> String {
    let body = match &value.data {
        Data::Bool(a) => format!("{a}"),
        Data::Int(a) => format!("{a}"),
        Data::Float(a) if value.dtype == DType::Float32 => format!("{:.7}", a.mapv(|v| v as f32)),
        Data::Float(a) => format!("{a}"),
    };
    format!("array of shape {:?}, {}:\n{body}", value.shape(), value.dtype)
}
