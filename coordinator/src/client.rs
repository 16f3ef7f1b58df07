//! The entry point of the Rust API: a [`Client`] holds the configuration (job root, storage,
//! executor), plans scans from object metadata, and runs task graphs.

use crate::error::{Error, Result};
use crate::events::{self, EventKind, Events, GraphShape};
use crate::executor::{
    Executor, ExecutorKind, InProcess, Lambda, LambdaOptions, Processes, find_worker_binary,
};
use crate::graph::TaskGraph;
use crate::plan::PlanConfig;
use crate::report::{Prices, RunReport};
use crate::scheduler::{self, RunOptions, RunOutput, Speculation};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use shoal_protocol::{
    JobRecord, JobTask, Limits, Manifest, ModuleRef, ObjectRef, Output, PROTOCOL_VERSION, StorageOptions,
    layout,
};
use shoal_worker::Worker;
use shoal_worker::io::storage::Storage;
use shoal_worker::sandbox::{Module, SandboxConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Job root URL: `data/`, `commits/` and `modules/` live here.
    pub root: String,
    pub storage: StorageOptions,
    pub executor: ExecutorKind,
    /// Concurrent tasks (threads or processes).
    pub workers: usize,
    pub limits: Limits,
    pub max_attempts: u32,
    /// Backups of stragglers (`None`: never).
    pub speculation: Option<Speculation>,
    /// Memory of one cloud-function worker, for the run report's GB-seconds and cost.
    pub function_memory_mb: u64,
    /// Unit prices of the run report's cost estimate.
    pub prices: Prices,
    /// The `lambda` executor's function and settings (its concurrency is its own, not `workers`).
    pub lambda: Option<LambdaOptions>,
    /// Target bytes per partition when splitting large Parquet files by row groups.
    pub partition_bytes: u64,
    /// Thresholds steering the optimizer's strategy choices (broadcast, tree reduction).
    pub plan: PlanConfig,
    /// Directory for precompiled WebAssembly components (`None`: in-memory cache only).
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        let cache = std::env::var_os("SHOAL_CACHE_DIR").map(std::path::PathBuf::from).or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/shoal/components"))
        });
        Self {
            root: ".shoal".into(),
            storage: StorageOptions::default(),
            executor: ExecutorKind::Threads,
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            limits: Limits::default(),
            max_attempts: 3,
            speculation: Some(Speculation::default()),
            function_memory_mb: 2048,
            prices: Prices::default(),
            lambda: None,
            partition_bytes: 100_000_000,
            plan: PlanConfig::default(),
            cache_dir: cache,
        }
    }
}

#[derive(Debug)]
struct Inner {
    config: Config,
    root: String,
    storage: Arc<Storage>,
    worker: Arc<Worker>,
    executor: Arc<dyn Executor>,
}

/// A handle for building and running shoal collections. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A user-function module, loaded and content-addressed.
#[derive(Debug, Clone)]
pub struct FunctionModule {
    pub(crate) bytes: Bytes,
    pub(crate) reference: ModuleRef,
    pub(crate) module: Arc<Module>,
    /// Names and descriptions of the functions the component exports.
    pub functions: Vec<(String, String)>,
}

impl Client {
    /// A client with default settings: a `.shoal` job root in the current directory, the
    /// `threads` executor.
    pub fn local() -> Result<Self> {
        Self::new(Config::default())
    }

    pub fn new(config: Config) -> Result<Self> {
        let storage = Arc::new(Storage::new(config.storage.clone()));
        let root = storage.resolve(&config.root)?.url;
        let sandbox = SandboxConfig { cache_dir: config.cache_dir.clone(), ..Default::default() };
        let worker = Arc::new(Worker::new(shoal_worker::WorkerConfig { sandbox })?);
        let executor: Arc<dyn Executor> = match config.executor {
            ExecutorKind::Sync => Arc::new(InProcess::sync(worker.clone())),
            ExecutorKind::Threads => Arc::new(InProcess::threads(worker.clone(), config.workers)),
            ExecutorKind::Processes => {
                let binary = find_worker_binary().ok_or_else(|| {
                    Error::Executor(
                        "the processes executor needs the `shoal-worker` binary: build it with \
                         `cargo build -p shoal-worker` or set SHOAL_WORKER_BIN"
                            .into(),
                    )
                })?;
                let mut env = Vec::new();
                if let Some(dir) = &config.cache_dir {
                    env.push(("SHOAL_CACHE_DIR".to_string(), dir.display().to_string()));
                }
                Arc::new(Processes::new(binary, config.workers, env))
            }
            ExecutorKind::Lambda => {
                let options = config.lambda.clone().ok_or_else(|| {
                    Error::Executor("the lambda executor needs a function: --function NAME".into())
                })?;
                Arc::new(Lambda::new(options, storage.clone(), root.clone()))
            }
        };
        Ok(Self { inner: Arc::new(Inner { config, root, storage, worker, executor }) })
    }

    /// Replaces the executor (tests, custom backends).
    pub fn with_executor(&self, executor: Arc<dyn Executor>) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                config: i.config.clone(),
                root: i.root.clone(),
                storage: i.storage.clone(),
                worker: i.worker.clone(),
                executor,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The job root as a URL.
    pub fn root(&self) -> &str {
        &self.inner.root
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.inner.storage
    }

    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.inner.executor
    }

    pub(crate) fn worker(&self) -> &Arc<Worker> {
        &self.inner.worker
    }

    /// Loads a WebAssembly component of user functions: `builtin:examples` (shipped with shoal)
    /// or a path/URL to a `.wasm` component. Compiles it once (cached by content hash).
    pub async fn load_module(&self, location: &str) -> Result<FunctionModule> {
        let bytes = match location.strip_prefix("builtin:") {
            Some(name) => Bytes::from_static(shoal_functions::builtin(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown builtin module '{name}' (available: {})",
                    shoal_functions::BUILTINS.join(", ")
                ))
            })?),
            None => self.inner.storage.get_url(location).await?,
        };
        let sha256 = shoal_functions::sha256_hex(&bytes);
        let url = self.inner.storage.resolve(&self.inner.root)?.join(&layout::module(&sha256)).url;
        let reference = ModuleRef {
            object: ObjectRef { url, size: bytes.len() as u64, e_tag: None },
            sha256: sha256.clone(),
        };
        let sandbox = self.inner.worker.sandbox().clone();
        let b = bytes.clone();
        let limits = self.inner.config.limits.clone();
        let (module, functions) = tokio::task::spawn_blocking(move || {
            let module = sandbox.load(&sha256, &b)?;
            let functions = sandbox.list_functions(&module, &limits)?;
            Ok::<_, shoal_worker::sandbox::SandboxError>((module, functions))
        })
        .await
        .map_err(|e| Error::Executor(e.to_string()))?
        .map_err(|e| {
            // wasmparser's messages continue with a multi-line dump of the bytes; keep the gist.
            let msg = e.to_string();
            let gist = msg.split(" - expected").next().unwrap_or(&msg).lines().next().unwrap_or_default();
            Error::Invalid(format!("{location}: {gist}"))
        })?;
        Ok(FunctionModule { bytes, reference, module, functions })
    }

    /// Runs a task graph: uploads modules, resumes from committed manifests, schedules the rest,
    /// publishing the run's events to `events` and to `jobs/<job_id>.events.jsonl`.
    pub(crate) async fn run_graph(
        &self,
        graph: &TaskGraph,
        modules: &[FunctionModule],
        events: Events,
    ) -> Result<RunOutput> {
        let storage = &self.inner.storage;
        for m in modules {
            if storage.head(&m.reference.object.url).await.is_err() {
                storage.put(&m.reference.object.url, m.bytes.clone()).await?;
            }
        }
        if let Some(warning) = crate::lower::many_tasks_warning(graph.len()) {
            tracing::warn!("{warning}");
        }
        let committed = self.committed(graph).await?;
        let job_id = self.record_job(graph).await?;
        let root = storage.resolve(&self.inner.root)?;
        let mut publisher = events.into_publisher(&job_id);
        let events_url = root.join(&layout::events(&job_id)).url;
        let writer = tokio::spawn(events::write_jsonl(storage.clone(), events_url, publisher.subscribe()));
        let executor = self.inner.executor.as_ref();
        publisher.emit(|| EventKind::JobStarted {
            graph: GraphShape::of(graph),
            already_committed: committed.len(),
            executor: executor.name().to_string(),
            concurrency: executor.concurrency(),
        });
        let opts = RunOptions {
            job_id,
            job_root: self.inner.root.clone(),
            storage: self.inner.config.storage.clone(),
            limits: self.inner.config.limits.clone(),
            max_attempts: self.inner.config.max_attempts,
            speculation: self.inner.config.speculation.clone(),
            base_backoff: Duration::from_millis(100),
        };
        let started = std::time::Instant::now();
        let (manifests, mut summary) =
            scheduler::run_counted(graph, executor, &opts, committed, &publisher).await;
        let report = RunReport::new(
            &summary,
            &opts.job_id,
            executor.name(),
            started.elapsed().as_secs_f64(),
            self.inner.config.function_memory_mb,
            &self.inner.config.prices,
        );
        let written = self.write_report(&root, &report).await;
        publisher.emit(|| EventKind::JobFinished {
            ok: manifests.is_ok(),
            error: manifests.as_ref().err().map(ToString::to_string),
            report: Some(Box::new(report.clone())),
        });
        drop(publisher);
        let logged = writer.await.map_err(|e| Error::Executor(format!("the events writer: {e}")));
        // Neither the report nor the events file may hide the run's own error.
        let manifests = manifests?;
        written?;
        logged??;
        summary.report = Some(Box::new(report));
        Ok(RunOutput { manifests, summary })
    }

    /// Writes `jobs/<job_id>.json` (the task list `shoal status` reads) and returns the job id:
    /// a hash of the output tasks' keys, the same for every run of the same job.
    async fn record_job(&self, graph: &TaskGraph) -> Result<String> {
        let job_id = graph.outputs.iter().map(|&t| graph.tasks[t].key.as_str()).collect::<Vec<_>>().join(",");
        let job_id = shoal_functions::sha256_hex(job_id.as_bytes())[..16].to_string();
        let record = JobRecord {
            version: PROTOCOL_VERSION,
            job_id: job_id.clone(),
            stages: graph.stages.iter().map(|s| s.name.clone()).collect(),
            tasks: graph
                .tasks
                .iter()
                .map(|t| JobTask { key: t.key.clone(), stage: t.stage, index: t.index })
                .collect(),
            outputs: graph.outputs.clone(),
        };
        let body = serde_json::to_vec(&record)
            .map_err(|source| Error::Json { what: format!("the record of job {job_id}"), source })?;
        let root = self.inner.storage.resolve(&self.inner.root)?;
        self.inner.storage.put(&root.join(&layout::job(&job_id)).url, Bytes::from(body)).await?;
        Ok(job_id)
    }

    async fn write_report(
        &self,
        root: &shoal_worker::io::storage::Location,
        report: &RunReport,
    ) -> Result<()> {
        let body = serde_json::to_vec_pretty(report)
            .map_err(|source| Error::Json { what: format!("the report of job {}", report.job_id), source })?;
        self.inner.storage.put(&root.join(&layout::report(&report.job_id)).url, Bytes::from(body)).await?;
        Ok(())
    }

    /// Manifests already committed under the job root for tasks of this graph.
    async fn committed(&self, graph: &TaskGraph) -> Result<HashMap<usize, Manifest>> {
        let root = self.inner.storage.resolve(&self.inner.root)?;
        let commits = root.join("commits");
        let present: std::collections::HashSet<String> =
            match root.store.list(Some(&commits.path)).try_collect::<Vec<_>>().await {
                Ok(metas) => metas.into_iter().map(|m| root.url_of(&m.location)).collect(),
                Err(object_store::Error::NotFound { .. }) => Default::default(),
                Err(e) => return Err(shoal_worker::Error::from_store(&commits.url, e).into()),
            };
        let storage = &self.inner.storage;
        let mut reads = Vec::new();
        for (i, t) in graph.tasks.iter().enumerate() {
            let url = root.join(&layout::manifest(&t.key)).url;
            if present.contains(&url) {
                reads.push(reusable(storage, url, t, i));
            }
        }
        let found: Vec<Option<(usize, Manifest)>> =
            futures::stream::iter(reads).buffer_unordered(16).try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }
}

/// The committed manifest of task `index`, if it can be reused. An output outside the job root
/// can be deleted or overwritten behind the job's back: such a task is reused only if every
/// part is still the object it committed; otherwise its stale manifest is removed so that the
/// task runs (and commits) again.
async fn reusable(
    storage: &Storage,
    url: String,
    task: &crate::graph::TaskNode,
    index: usize,
) -> Result<Option<(usize, Manifest)>> {
    let Some(manifest) = shoal_worker::task::commit::read_manifest(storage, &url).await? else {
        return Ok(None);
    };
    if matches!(task.output, Output::Parquet { .. }) && !outputs_intact(storage, &manifest).await? {
        tracing::info!(task = %task.key, "committed output is missing or changed: running the task again");
        storage.delete(&url).await?;
        return Ok(None);
    }
    Ok(Some((index, manifest)))
}

/// Whether every object a manifest lists is still there with the size and ETag it was
/// committed with.
async fn outputs_intact(storage: &Storage, manifest: &Manifest) -> Result<bool> {
    for out in &manifest.outputs {
        let recorded = &out.object;
        match storage.head(&recorded.url).await {
            Ok(now) => {
                let same_tag = match (&recorded.e_tag, &now.e_tag) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if now.size != recorded.size || !same_tag {
                    return Ok(false);
                }
            }
            Err(shoal_worker::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Committed and missing tasks of one recorded job.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub job_id: String,
    /// Per stage: name, committed tasks, total tasks.
    pub stages: Vec<(String, usize, usize)>,
    pub missing: Vec<shoal_protocol::TaskKey>,
    pub tasks: usize,
}

impl Client {
    /// The jobs recorded under the job root, with their committed and missing tasks.
    pub async fn status(&self) -> Result<Vec<JobStatus>> {
        let storage = &self.inner.storage;
        let root = storage.resolve(&self.inner.root)?;
        let list = |prefix: &str| {
            let loc = root.join(prefix);
            async move {
                match loc.store.list(Some(&loc.path)).try_collect::<Vec<_>>().await {
                    Ok(metas) => Ok(metas),
                    Err(object_store::Error::NotFound { .. }) => Ok(vec![]),
                    Err(e) => Err(Error::from(shoal_worker::Error::from_store(&loc.url, e))),
                }
            }
        };
        let committed: std::collections::HashSet<String> =
            list("commits").await?.into_iter().map(|m| root.url_of(&m.location)).collect();
        let mut jobs = Vec::new();
        for meta in list("jobs").await? {
            let url = root.url_of(&meta.location);
            if !layout::is_job_record(&url) {
                continue;
            }
            let bytes = storage.get_url(&url).await?;
            let record: JobRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Input { url: url.clone(), message: format!("not a job record: {e}") })?;
            let mut stages: Vec<(String, usize, usize)> =
                record.stages.iter().map(|s| (s.clone(), 0, 0)).collect();
            let mut missing = Vec::new();
            for t in &record.tasks {
                let done = committed.contains(&root.join(&layout::manifest(&t.key)).url);
                if let Some(s) = stages.get_mut(t.stage) {
                    s.2 += 1;
                    s.1 += usize::from(done);
                }
                if !done {
                    missing.push(t.key.clone());
                }
            }
            jobs.push(JobStatus { job_id: record.job_id, stages, missing, tasks: record.tasks.len() });
        }
        Ok(jobs)
    }
}
