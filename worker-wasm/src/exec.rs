//! Running one task: read inputs, run the fused pipeline, write the output, commit.
//!
//! Commit protocol (DESIGN.md): an attempt writes its files under
//! `data/<task_key>/<attempt_id>/`, then creates `commits/<task_key>.json` only if absent. The
//! first commit wins; a losing attempt returns the winner's manifest and deletes its own files.
//! User-visible Parquet parts have deterministic names, so a retry rewrites identical bytes.

use crate::aggregate;
use crate::error::{Error, Result};
use crate::memory::{held_bytes, human_bytes};
use crate::pipeline::{self, Sides};
use crate::sandbox::{Module, Sandbox, SandboxConfig};
use crate::scan::{self, Loaded};
use crate::session;
use crate::shuffle;
use crate::storage::{Created, Storage};
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use shoal_protocol::{
    FailureKind, Manifest, ModuleRef, Operator, Output, OutputObject, PROTOCOL_VERSION, StorageOptions,
    TableOp, TaskFailure, TaskKey, TaskMetrics, TaskOutcome, TaskResult, TaskSpec, layout,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Settings of one worker process.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    pub sandbox: SandboxConfig,
}

/// Runs tasks. Holds no state between tasks except caches (stores, compiled components).
#[derive(Debug)]
pub struct Worker {
    sandbox: Arc<Sandbox>,
    storages: Mutex<HashMap<StorageOptions, Arc<Storage>>>,
    modules: Mutex<HashMap<String, Arc<Module>>>,
}

impl Worker {
    pub fn new(config: WorkerConfig) -> Result<Self> {
        Ok(Self {
            sandbox: Arc::new(Sandbox::new(config.sandbox)?),
            storages: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
        })
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The (cached) storage client for a set of options.
    pub fn storage(&self, options: &StorageOptions) -> Arc<Storage> {
        let mut map = match self.storages.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(options.clone()).or_insert_with(|| Arc::new(Storage::new(options.clone()))).clone()
    }

    /// Parses and runs a JSON task spec; a spec that cannot be parsed is a fatal failure.
    pub async fn run_json(&self, bytes: &[u8]) -> TaskOutcome {
        match TaskSpec::from_json(bytes) {
            Ok(spec) => self.run(&spec).await,
            Err(message) => Err(TaskFailure {
                kind: FailureKind::Fatal,
                task_key: TaskKey("unknown".into()),
                input: None,
                message,
            }),
        }
    }

    /// Runs one task to a committed manifest.
    pub async fn run(&self, spec: &TaskSpec) -> TaskOutcome {
        let started = Instant::now();
        let mut metrics = TaskMetrics::default();
        let result = self.run_inner(spec, &mut metrics).await;
        metrics.wall_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok((manifest, won_commit)) => Ok(TaskResult {
                task_key: spec.task_key.clone(),
                attempt: spec.attempt,
                manifest,
                won_commit,
                metrics,
            }),
            Err(e) => Err(TaskFailure {
                kind: e.kind(),
                task_key: spec.task_key.clone(),
                input: e.input().map(str::to_string),
                message: e.to_string(),
            }),
        }
    }

    async fn run_inner(&self, spec: &TaskSpec, metrics: &mut TaskMetrics) -> Result<(Manifest, bool)> {
        if spec.version != PROTOCOL_VERSION {
            return Err(Error::InvalidTask(format!("unsupported spec version {}", spec.version)));
        }
        pipeline::check_ports(&spec.inputs, &spec.pipeline, &spec.output)?;
        let storage = self.storage(&spec.storage);
        let root = storage.resolve(&spec.job_root)?;
        let manifest_url = root.join(&layout::manifest(&spec.task_key)).url;

        // Already committed (a retry after a lost reply, a resumed job): nothing to do.
        metrics.requests += 1;
        if let Some(existing) = read_manifest(&storage, &manifest_url).await? {
            return Ok((existing, false));
        }

        // Inputs are fetched concurrently (a shuffle reducer's range reads above all), then
        // grouped by port: port 0 is the main table, the others are side tables.
        let pending: Vec<_> = spec.inputs.iter().map(|input| read_port(&storage, input)).collect();
        let reads =
            futures::stream::iter(pending).buffered(INPUT_CONCURRENCY).try_collect::<Vec<_>>().await?;
        let mut tables: BTreeMap<u32, Option<Loaded>> = BTreeMap::new();
        for (port, part) in reads {
            metrics.bytes_read += part.bytes_read;
            metrics.objects_read += part.objects_read;
            metrics.requests += part.requests;
            let acc = tables.entry(port).or_default();
            Loaded::append(acc, part, || format!("inputs of table {port} of one task differ in schema"))?;
        }
        let Some(Loaded { schema, batches, .. }) = tables.remove(&0).flatten() else {
            return Err(Error::InvalidTask("task has no main input".into()));
        };
        let sides: Sides =
            tables.into_iter().filter_map(|(p, l)| l.map(|l| (p, (l.schema, l.batches)))).collect();
        metrics.rows_in = batches.iter().map(|b| b.num_rows() as u64).sum();
        let held = held_bytes(batches.iter().chain(sides.values().flat_map(|(_, b)| b)));
        if held as u64 > spec.limits.task_memory_bytes {
            return Err(Error::Memory(format!(
                "the task's inputs take {} in memory, over its limit of {}: split the work into more \
                 partitions (repartition, npartitions, split_out) or raise the task memory limit",
                human_bytes(held as u64),
                human_bytes(spec.limits.task_memory_bytes)
            )));
        }

        let (schema, batches) = self.run_pipeline(&storage, spec, schema, batches, &sides, metrics).await?;
        metrics.rows_out = batches.iter().map(|b| b.num_rows() as u64).sum();
        let divisions = match spec.pipeline.last() {
            Some(Operator::Table(TableOp::Boundaries { .. })) => Some(shuffle::rows_as_text(&batches)?),
            _ => None,
        };

        let attempt_id = uuid::Uuid::new_v4().simple().to_string();
        let attempt_dir = root.join(&layout::attempt_dir(&spec.task_key, &attempt_id)).url;
        let mut buckets = Vec::new();
        let object = match &spec.output {
            Output::Intermediate => {
                let compress = shuffle::compress_intermediates(&spec.job_root);
                let bytes = encode_ipc(&schema, &batches, compress)?;
                storage.put(&format!("{attempt_dir}/part-0.arrow"), bytes).await?
            }
            Output::Shuffle { partitioning } => {
                let split = shuffle::split(partitioning, &schema, &batches, &sides)?;
                drop(batches);
                let compress = shuffle::compress_intermediates(&spec.job_root);
                let (bytes, ranges) = shuffle::encode(&schema, &split, compress)?;
                buckets = ranges;
                storage.put(&format!("{attempt_dir}/shuffle.arrows"), bytes).await?
            }
            Output::Parquet { url, part } => {
                let bytes = encode_parquet(&schema, &batches)?;
                let dir = storage.resolve(url)?;
                storage.put(&dir.join(&layout::part_name(*part)).url, bytes).await?
            }
        };
        metrics.bytes_written += object.size;
        metrics.objects_written += 1;
        // The data object and the conditional manifest put.
        metrics.requests += 2;

        let manifest = Manifest {
            version: PROTOCOL_VERSION,
            task_key: spec.task_key.clone(),
            attempt_id,
            rows: metrics.rows_out,
            bytes: object.size,
            outputs: vec![OutputObject { object, rows: metrics.rows_out }],
            schema: crate::schema::to_fields(&schema),
            buckets,
            divisions,
        };
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Execution(e.to_string()))?;
        match storage.create_if_absent(&manifest_url, Bytes::from(body)).await? {
            Created::Created => Ok((manifest, true)),
            Created::AlreadyExists => {
                let winner = read_manifest(&storage, &manifest_url).await?.ok_or_else(|| Error::Storage {
                    url: manifest_url.clone(),
                    message: "manifest vanished after a lost commit".into(),
                })?;
                // Our intermediate files are unreferenced: remove them. User-visible parts share
                // their deterministic name with the winner's and hold identical bytes: keep.
                if !matches!(spec.output, Output::Parquet { .. })
                    && winner.attempt_id != manifest.attempt_id
                    && let Err(e) = storage.delete_prefix(&attempt_dir).await
                {
                    tracing::warn!(task = %spec.task_key, "cleanup of losing attempt failed: {e}");
                }
                Ok((winner, false))
            }
        }
    }

    async fn run_pipeline(
        &self,
        storage: &Storage,
        spec: &TaskSpec,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        sides: &Sides,
        metrics: &mut TaskMetrics,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let ctx = session::task_session(spec.limits.task_memory_bytes)?;
        let mut current = Current::Table(schema, batches);
        for op in &spec.pipeline {
            let Operator::Table(op) = op else {
                return Err(pipeline::unsupported_family(op));
            };
            // Runs of relational operators fuse into one DataFusion plan, executed only when
            // something that is not a plan step needs the rows.
            if pipeline::is_relational(op) {
                current = Current::Frame(pipeline::apply(current.into_frame(&ctx)?, op, sides)?);
                continue;
            }
            current = match op {
                TableOp::Aggregate { mode, keys, aggs, input } => {
                    let raw = crate::schema::from_fields(input)?;
                    let (s, b) =
                        aggregate::run(&ctx, current.into_frame(&ctx)?, *mode, keys, aggs, raw).await?;
                    Current::Table(s, b)
                }
                TableOp::Sample { columns, rows } => {
                    let (s, b) = current.into_table().await?;
                    let (s, b) = shuffle::sample(&s, &b, columns, *rows)?;
                    Current::Table(s, b)
                }
                TableOp::Boundaries { keys, n } => {
                    let (s, b) = current.into_table().await?;
                    let (s, b) = shuffle::boundaries(&s, &b, keys, *n)?;
                    Current::Table(s, b)
                }
                TableOp::Melt { id, rows, columns } => {
                    let (s, b) = current.into_table().await?;
                    let (s, b) = shuffle::melt(&s, &b, id, rows, columns)?;
                    Current::Table(s, b)
                }
                TableOp::MapPartitions { module, function, args } => {
                    let (schema, batches) = current.into_table().await?;
                    let compiled_before = self.sandbox.compiled_count();
                    let module = self.load_module(storage, module).await?;
                    metrics.components_compiled +=
                        self.sandbox.compiled_count().saturating_sub(compiled_before);
                    let input = arrow::compute::concat_batches(&schema, &batches)
                        .map_err(|e| Error::Execution(e.to_string()))?;
                    let sandbox = self.sandbox.clone();
                    let (function, args, limits) = (function.clone(), args.clone(), spec.limits.clone());
                    let out = tokio::task::spawn_blocking(move || {
                        sandbox.call(&module, &function, &[input], &args, &limits)
                    })
                    .await
                    .map_err(|e| Error::Execution(format!("sandbox thread: {e}")))??;
                    metrics.guest_ms += out.elapsed.as_millis() as u64;
                    append_log(&mut metrics.guest_log, &out.log, spec.limits.guest_log_bytes);
                    Current::Table(out.batch.schema(), vec![out.batch])
                }
                other => return Err(Error::InvalidTask(format!("operator {other:?} cannot run here"))),
            };
        }
        current.into_table().await
    }

    /// Fetches and compiles a component once per worker (and once per machine with a cache dir).
    pub async fn load_module(&self, storage: &Storage, module: &ModuleRef) -> Result<Arc<Module>> {
        if let Some(m) = self.modules.lock().ok().and_then(|m| m.get(&module.sha256).cloned()) {
            return Ok(m);
        }
        let bytes = storage.get(&module.object).await?;
        let sandbox = self.sandbox.clone();
        let sha = module.sha256.clone();
        let loaded = tokio::task::spawn_blocking(move || sandbox.load(&sha, &bytes))
            .await
            .map_err(|e| Error::Execution(format!("sandbox thread: {e}")))??;
        if let Ok(mut m) = self.modules.lock() {
            m.insert(module.sha256.clone(), loaded.clone());
        }
        Ok(loaded)
    }
}

async fn read_port(storage: &Storage, input: &shoal_protocol::Input) -> Result<(u32, Loaded)> {
    Ok((input.port(), scan::read_input(storage, input).await?))
}

/// Bound on concurrent input reads of one task.
const INPUT_CONCURRENCY: usize = 16;

/// The rows between two pipeline steps: a pending DataFusion plan, or materialized batches.
enum Current {
    Frame(DataFrame),
    Table(SchemaRef, Vec<RecordBatch>),
}

impl Current {
    fn into_frame(self, ctx: &SessionContext) -> Result<DataFrame> {
        match self {
            Current::Frame(df) => Ok(df),
            Current::Table(schema, batches) => session::frame(ctx, schema, batches),
        }
    }

    async fn into_table(self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        match self {
            Current::Table(schema, batches) => Ok((schema, batches)),
            Current::Frame(df) => {
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await.map_err(session::execution_error)?;
                Ok((schema, batches))
            }
        }
    }
}

fn append_log(log: &mut String, more: &str, limit: usize) {
    if more.is_empty() || log.len() >= limit {
        return;
    }
    let room = limit - log.len();
    let mut end = more.len().min(room);
    while !more.is_char_boundary(end) {
        end -= 1;
    }
    log.push_str(&more[..end]);
}

/// Reads a committed manifest, if there is one.
pub async fn read_manifest(storage: &Storage, url: &str) -> Result<Option<Manifest>> {
    match storage.get_url(url).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt { url: url.to_string(), message: format!("manifest: {e}") }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Arrow IPC file (LZ4-compressed when `compress`): the format of intermediates.
pub fn encode_ipc(schema: &SchemaRef, batches: &[RecordBatch], compress: bool) -> Result<Bytes> {
    let buffer = Vec::with_capacity(shuffle::encoded_size_hint(batches));
    let mut writer = FileWriter::try_new_with_options(buffer, schema, shuffle::ipc_options(compress)?)
        .map_err(|e| Error::Execution(e.to_string()))?;
    for b in batches {
        writer.write(&shuffle::compact(b)?).map_err(|e| Error::Execution(e.to_string()))?;
    }
    writer.finish().map_err(|e| Error::Execution(e.to_string()))?;
    Ok(Bytes::from(writer.into_inner().map_err(|e| Error::Execution(e.to_string()))?))
}

/// User-visible Parquet (zstd). Deterministic for the same input: a retry writes identical bytes.
pub fn encode_parquet(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("shoal {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
        .map_err(|e| Error::Execution(e.to_string()))?;
    for b in batches {
        writer.write(b).map_err(|e| Error::Execution(e.to_string()))?;
    }
    Ok(Bytes::from(writer.into_inner().map_err(|e| Error::Execution(e.to_string()))?))
}
