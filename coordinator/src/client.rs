//! The entry point of the Rust API: a [`Client`] holds the configuration (job root, storage,
//! executor, function modules). Collections start from it (`read_parquet`, `read_csv`); runs
//! go through the run module.

use crate::collections::dataframe::plan::PlanConfig;
use crate::error::{Error, Result};
use crate::executor::{
    Executor, ExecutorKind, InProcess, Lambda, LambdaOptions, Processes, find_worker_binary,
};
use crate::run::report::Prices;
use crate::scheduler::Speculation;
use bytes::Bytes;
use shoal_protocol::{FunctionKind, FunctionRef, Limits, ModuleRef, ObjectRef, StorageOptions, layout};
use shoal_worker::Worker;
use shoal_worker::io::storage::Storage;
use shoal_worker::sandbox::{FunctionInfo, Module, SandboxConfig};
use std::sync::Arc;

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
    /// Target bytes per partition of a Parquet read: larger files are split by row groups
    /// toward it, smaller ones coalesced toward it (see [`Client::read_parquet`]).
    pub partition_bytes: u64,
    /// Whether small Parquet files are coalesced into fewer partitions (default); `false` keeps
    /// one partition per file (large files still split), as Dask's classic `read_parquet`.
    pub coalesce_small_files: bool,
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
            coalesce_small_files: true,
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
    /// The functions the component exports: name, kind and description.
    pub functions: Vec<FunctionInfo>,
}

impl FunctionModule {
    /// A reference to `function` called with `args`, checked at plan time to exist and to be of
    /// `kind` (what the operation `what` needs), so a misnamed function or one of the wrong kind
    /// fails before any task runs.
    pub fn function(
        &self,
        function: &str,
        kind: FunctionKind,
        args: serde_json::Value,
        what: &str,
    ) -> Result<FunctionRef> {
        let Some(info) = self.functions.iter().find(|f| f.name == function) else {
            return Err(Error::Invalid(format!(
                "{what}: module has no function '{function}' (available: {})",
                self.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        if info.kind != kind {
            return Err(Error::Invalid(format!(
                "{what}: function '{function}' is a {} function, but {what} needs a {} function",
                info.kind.as_str(),
                kind.as_str()
            )));
        }
        Ok(FunctionRef { module: self.reference.clone(), function: function.to_string(), args })
    }
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

    /// The fewest partitions small Parquet files are coalesced into: twice the tasks that run
    /// at once (the Lambda executor's concurrency, else `workers`), and at least the optimizer's
    /// `min_shuffle_partitions`, so that coalescing never leaves workers idle; no limit (one
    /// partition per file) when `coalesce` is off.
    pub(crate) fn min_scan_partitions(&self, coalesce: bool) -> usize {
        let c = &self.inner.config;
        if !coalesce {
            return usize::MAX;
        }
        let at_once = match (&c.executor, &c.lambda) {
            (ExecutorKind::Lambda, Some(l)) => l.concurrency,
            _ => c.workers,
        };
        at_once.saturating_mul(2).max(c.plan.min_shuffle_partitions).max(1)
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
}
