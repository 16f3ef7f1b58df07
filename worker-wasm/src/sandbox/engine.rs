//! The sandbox itself: one wasmtime engine and WASI linker per process, components loaded once
//! per hash, and calls of their functions, each in a fresh store within the task's limits.

use super::cache::ComponentCache;
use super::limits::{EpochTicker, GuestLimiter, deadline_ticks};
use super::log::BoundedLog;
use super::{SandboxConfig, SandboxError};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use shoal_protocol::{FunctionKind, Limits};
use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::interface::{Instance, Pre};

/// A compiled component, ready to instantiate.
pub struct Module {
    sha256: String,
    pre: Pre<HostState>,
    functions: OnceLock<Vec<FunctionInfo>>,
}

/// One function a component offers, as its `list-functions` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub kind: FunctionKind,
    pub description: String,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("sha256", &self.sha256).finish_non_exhaustive()
    }
}

impl Module {
    /// The SHA-256 (hex) of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The version of `shoal:function/functions` the component exports (`"0.2.0"`, or
    /// `"0.1.0"` for a component of table functions built before kinds existed).
    pub fn interface_version(&self) -> &'static str {
        self.pre.version()
    }
}

/// The result of a successful call.
#[derive(Debug, Clone)]
pub struct CallOutput {
    pub batch: RecordBatch,
    /// The guest's stdout and stderr, interleaved, bounded by `Limits::guest_log_bytes`.
    pub log: String,
    /// Wall-clock time of instantiation plus the call.
    pub elapsed: Duration,
}

/// The result of a successful [`Sandbox::call_bytes`].
#[derive(Debug, Clone)]
pub struct BytesOutput {
    pub bytes: Vec<u8>,
    /// The guest's stdout and stderr, interleaved, bounded by `Limits::guest_log_bytes`.
    pub log: String,
    /// Wall-clock time of instantiation plus the call.
    pub elapsed: Duration,
}

type Slot = Arc<Mutex<Option<Arc<Module>>>>;

/// The per-process sandbox. See the module docs.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    modules: Mutex<HashMap<String, Slot>>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Creates the engine, the WASI linker and the epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let instances = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        // A Rust wasm32-wasip2 component is a handful of core instances (the program, shims,
        // fixups) sharing one memory; leave headroom for components built by other tools.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(8))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
            .table_elements(100_000);
        let mut wasm_config = Config::new();
        wasm_config
            .epoch_interruption(true)
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm_config)
            .map_err(|e| SandboxError::Io(format!("creating the wasmtime engine: {e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| SandboxError::Io(format!("linking WASI: {e:#}")))?;

        let cache = ComponentCache::new(&engine, config.cache_dir)?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(Self { engine, linker, cache, modules: Mutex::new(HashMap::new()), _ticker: ticker })
    }

    /// How many times a component was actually compiled (not loaded from a cache).
    pub fn compiled_count(&self) -> u64 {
        self.cache.compiled_count()
    }

    /// Returns the compiled component for `sha256`, compiling `bytes` at most once per hash
    /// (per process, and once per cache dir when one is configured).
    pub fn load(&self, sha256: &str, bytes: &[u8]) -> Result<Arc<Module>, SandboxError> {
        let sha256 = sha256.to_ascii_lowercase();
        let slot = {
            let mut modules =
                self.modules.lock().map_err(|_| SandboxError::Io("module cache lock poisoned".into()))?;
            modules.entry(sha256.clone()).or_default().clone()
        };
        // One loader per hash; loads of other hashes proceed in parallel.
        let mut slot = slot.lock().map_err(|_| SandboxError::Io("module cache lock poisoned".into()))?;
        if let Some(module) = slot.as_ref() {
            return Ok(module.clone());
        }

        let component = self.cache.component(&self.engine, &sha256, bytes)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))?;
        let pre = Pre::new(instance_pre).map_err(SandboxError::InvalidModule)?;
        let module = Arc::new(Module { sha256, pre, functions: OnceLock::new() });
        *slot = Some(module.clone());
        Ok(module)
    }

    /// The functions the component offers.
    pub fn list_functions(
        &self,
        module: &Module,
        limits: &Limits,
    ) -> Result<Vec<FunctionInfo>, SandboxError> {
        if let Some(functions) = module.functions.get() {
            return Ok(functions.clone());
        }
        let mut run = self.instantiate(module, limits)?;
        let result = run.instance.list_functions(&mut run.store);
        let functions: Vec<FunctionInfo> = match result {
            Ok(list) => list
                .into_iter()
                .map(|f| FunctionInfo { name: f.name, kind: f.kind, description: f.description })
                .collect(),
            Err(e) => return Err(run.classify(e, limits)),
        };
        let _ = module.functions.set(functions.clone());
        Ok(functions)
    }

    /// Runs `function` of `module` on `inputs` with JSON `args`, within `limits`.
    pub fn call(
        &self,
        module: &Module,
        function: &str,
        inputs: &[RecordBatch],
        args: &serde_json::Value,
        limits: &Limits,
    ) -> Result<CallOutput, SandboxError> {
        let encoded = inputs.iter().map(encode_ipc_stream).collect::<Result<Vec<_>, _>>()?;
        let out = self.call_bytes(module, function, FunctionKind::Table, &encoded, args, limits)?;
        let batch = decode_ipc_stream(&out.bytes)
            .map_err(|e| SandboxError::Encode(format!("output of '{function}': {e}")))?;
        Ok(CallOutput { batch, log: out.log, elapsed: out.elapsed })
    }

    /// Runs `function` of `module`, which must be of `kind`, on encoded `inputs` (the bytes
    /// [`FunctionKind`] describes) with JSON `args`, within `limits`; returns the output bytes.
    pub fn call_bytes(
        &self,
        module: &Module,
        function: &str,
        kind: FunctionKind,
        inputs: &[Vec<u8>],
        args: &serde_json::Value,
        limits: &Limits,
    ) -> Result<BytesOutput, SandboxError> {
        let functions = self.list_functions(module, limits)?;
        let Some(info) = functions.iter().find(|f| f.name == function) else {
            return Err(SandboxError::UnknownFunction {
                name: function.to_string(),
                available: functions.into_iter().map(|f| f.name).collect(),
            });
        };
        if info.kind != kind {
            return Err(SandboxError::WrongKind {
                name: function.to_string(),
                declared: info.kind,
                wanted: kind,
            });
        }
        let args = serde_json::to_string(args)
            .map_err(|e| SandboxError::Encode(format!("arguments to JSON: {e}")))?;

        let started = Instant::now();
        let mut run = self.instantiate(module, limits)?;
        let result = run.instance.call(&mut run.store, function, inputs, &args);
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(bytes)) => Ok(BytesOutput { bytes, log: run.log.text(), elapsed }),
            // A guest that failed after a denied memory growth (CPython raises MemoryError and
            // returns it as an error) failed of its memory limit.
            Ok(Err(_)) if run.store.data().limiter.memory_denied() => {
                Err(SandboxError::MemoryLimit { limit_bytes: limits.guest_memory_bytes, log: run.log.text() })
            }
            Ok(Err(message)) => Err(SandboxError::Guest { message, log: run.log.text() }),
            Err(e) => Err(run.classify(e, limits)),
        }
    }

    fn instantiate(&self, module: &Module, limits: &Limits) -> Result<Run, SandboxError> {
        let log = BoundedLog::new(limits.guest_log_bytes);
        let mut wasi = WasiCtxBuilder::new();
        // Nothing from the host: no preopened dirs, env, args or stdin (the builder's
        // defaults), no network, no name lookups; only the bounded log as stdout/stderr.
        wasi.stdout(log.clone())
            .stderr(log.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: GuestLimiter::new(limits.guest_memory_bytes),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.guest_timeout_ms));
        store.epoch_deadline_trap();
        match module.pre.instantiate(&mut store) {
            Ok(instance) => Ok(Run { store, log, instance }),
            Err(e) => {
                if store.data().limiter.memory_denied() {
                    return Err(SandboxError::MemoryLimit {
                        limit_bytes: limits.guest_memory_bytes,
                        log: log.text(),
                    });
                }
                let message = format!("{e:#}");
                if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
                    return Err(SandboxError::Io(format!("no free sandbox instance slot: {message}")));
                }
                Err(SandboxError::InvalidModule(format!("instantiating the component: {message}")))
            }
        }
    }
}

/// A store with an instantiated component.
struct Run {
    store: Store<HostState>,
    log: BoundedLog,
    instance: Instance,
}

impl Run {
    /// Turns a wasmtime error from a guest call into a sandbox error.
    fn classify(self, e: wasmtime::Error, limits: &Limits) -> SandboxError {
        let log = self.log.text();
        if self.store.data().limiter.memory_denied() {
            return SandboxError::MemoryLimit { limit_bytes: limits.guest_memory_bytes, log };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => SandboxError::Timeout { limit_ms: limits.guest_timeout_ms, log },
            Some(trap) => {
                let mut message = trap.to_string();
                if let Some(panic) = panic_message(&log) {
                    message = format!("{panic} ({message})");
                }
                SandboxError::Trap { message, log }
            }
            None => SandboxError::Trap { message: format!("{e:#}"), log },
        }
    }
}

/// The message of the last Rust panic printed to the log (`thread '..' panicked at ..:`
/// followed by the message lines), if any.
fn panic_message(log: &str) -> Option<String> {
    let start = log.rfind("panicked at ")?;
    let rest = &log[start..];
    let mut lines = rest.lines();
    let location = lines.next()?.trim_start_matches("panicked at ").trim_end_matches(':');
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: ") && !l.is_empty()).collect();
    Some(format!("panicked at {location}: {}", message.join("\n")))
}

fn encode_ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>, SandboxError> {
    let encode = || -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
        writer.into_inner()
    };
    encode().map_err(|e| SandboxError::Encode(format!("input to Arrow IPC: {e}")))
}

fn decode_ipc_stream(bytes: &[u8]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    arrow::compute::concat_batches(&schema, &batches)
}

/// Per-call store state.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use serde_json::json;

    /// One sandbox for the functional tests, so each builtin component is compiled once.
    fn shared() -> &'static Sandbox {
        static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
        SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).unwrap())
    }

    fn load(sandbox: &Sandbox, name: &str) -> Arc<Module> {
        let bytes = shoal_functions::builtin(name).unwrap();
        sandbox.load(&shoal_functions::sha256_hex(bytes), bytes).unwrap()
    }

    fn examples() -> Arc<Module> {
        load(shared(), "examples")
    }

    fn testing() -> Arc<Module> {
        load(shared(), "testing")
    }

    fn batch() -> RecordBatch {
        let x: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(5), Some(10)]));
        let name: ArrayRef =
            Arc::new(StringArray::from(vec![Some("  Alice "), Some("BOB"), None, Some("\tCarol Ann\n")]));
        RecordBatch::try_from_iter([("x", x), ("name", name)]).unwrap()
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn examples_compute_correct_results_with_nulls() {
        let sandbox = shared();
        let module = examples();
        let mut names: Vec<String> =
            sandbox.list_functions(&module, &limits()).unwrap().into_iter().map(|f| f.name).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "add",
                "add_field",
                "add_values",
                "filter_range",
                "inc",
                "is_error",
                "is_even",
                "mul",
                "normalize_text",
                "row_total",
                "scale",
                "shift_block",
                "split_words",
                "sum_list",
                "total_len"
            ]
        );

        let out = sandbox
            .call(
                &module,
                "scale",
                &[batch()],
                &json!({"column": "x", "factor": 2.5, "output": "y"}),
                &limits(),
            )
            .unwrap();
        assert_eq!(out.batch.num_columns(), 3);
        let y = out.batch.column_by_name("y").unwrap();
        assert_eq!(y.data_type(), &DataType::Float64);
        assert_eq!(
            y.as_any().downcast_ref::<Float64Array>().unwrap(),
            &Float64Array::from(vec![Some(2.5), None, Some(12.5), Some(25.0)])
        );

        let out = sandbox
            .call(
                &module,
                "filter_range",
                &[batch()],
                &json!({"column": "x", "min": 2, "max": 10}),
                &limits(),
            )
            .unwrap();
        let x = out.batch.column_by_name("x").unwrap();
        assert_eq!(x.as_any().downcast_ref::<Int64Array>().unwrap(), &Int64Array::from(vec![5, 10]));
        let out = sandbox
            .call(&module, "filter_range", &[batch()], &json!({"column": "x", "max": 4}), &limits())
            .unwrap();
        assert_eq!(out.batch.num_rows(), 1);

        let out = sandbox
            .call(&module, "normalize_text", &[batch()], &json!({"column": "name"}), &limits())
            .unwrap();
        let name = out.batch.column_by_name("name").unwrap();
        assert_eq!(
            name.as_any().downcast_ref::<StringArray>().unwrap(),
            &StringArray::from(vec![Some("alice"), Some("bob"), None, Some("carol ann")])
        );

        // Zero-row input keeps the schema.
        let empty = RecordBatch::new_empty(batch().schema());
        let out = sandbox
            .call(&module, "scale", &[empty], &json!({"column": "x", "factor": 2}), &limits())
            .unwrap();
        assert_eq!(out.batch.num_rows(), 0);
        assert_eq!(out.batch.schema().field(0).data_type(), &DataType::Float64);
    }

    #[test]
    fn guest_errors_and_unknown_functions() {
        let sandbox = shared();
        let module = examples();
        let err = sandbox.call(&module, "nope", &[batch()], &json!({}), &limits()).unwrap_err();
        assert!(matches!(err, SandboxError::UnknownFunction { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("nope") && text.contains("scale") && text.contains("filter_range"), "{text}");

        let err = sandbox.call(&module, "scale", &[batch()], &json!({"factor": 2}), &limits()).unwrap_err();
        match err {
            SandboxError::Guest { message, .. } => {
                assert_eq!(message, "argument 'column' is missing")
            }
            other => panic!("expected Guest error, got {other:?}"),
        }
        let err = sandbox
            .call(&module, "scale", &[batch()], &json!({"column": "name", "factor": 2}), &limits())
            .unwrap_err();
        assert!(err.to_string().contains("must be numeric"), "{err}");
    }

    #[test]
    fn identity_captures_stdout_and_stderr() {
        let out = shared().call(&testing(), "identity", &[batch()], &json!({}), &limits()).unwrap();
        assert_eq!(out.batch, batch());
        assert!(out.log.contains("identity: 4 rows on stdout"), "{}", out.log);
        assert!(out.log.contains("identity: 4 rows on stderr"), "{}", out.log);
    }

    #[test]
    fn trap_reports_the_panic_message() {
        let err = shared()
            .call(&testing(), "trap", &[batch()], &json!({"message": "boom from the guest"}), &limits())
            .unwrap_err();
        match &err {
            SandboxError::Trap { message, log } => {
                assert!(message.contains("boom from the guest"), "{message}");
                assert!(log.contains("boom from the guest"), "{log}");
            }
            other => panic!("expected Trap, got {other:?}"),
        }
    }

    #[test]
    fn spin_times_out() {
        let module = testing();
        let limits = Limits { guest_timeout_ms: 500, ..Limits::default() };
        let started = Instant::now();
        let err = shared().call(&module, "spin", &[batch()], &json!({}), &limits).unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(err, SandboxError::Timeout { limit_ms: 500, .. }), "{err:?}");
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(450), "took {elapsed:?}");
    }

    #[test]
    fn alloc_bomb_hits_the_memory_limit() {
        let module = testing();
        let limits = Limits { guest_memory_bytes: 64 << 20, ..Limits::default() };
        let err = shared().call(&module, "alloc_bomb", &[batch()], &json!({}), &limits).unwrap_err();
        assert!(matches!(err, SandboxError::MemoryLimit { limit_bytes: 67_108_864, .. }), "{err:?}");
    }

    #[test]
    fn chatty_log_is_truncated() {
        let limits = Limits { guest_log_bytes: 10_000, ..Limits::default() };
        let out = shared().call(&testing(), "chatty", &[batch()], &json!({}), &limits).unwrap();
        assert_eq!(out.batch, batch());
        assert!(out.log.len() < 10_200, "log is {} bytes", out.log.len());
        assert!(out.log.contains("[log truncated:"), "{}", &out.log[9_900..]);
        assert!(out.log.starts_with("chatty chatty"));
    }

    fn probe(sandbox: &Sandbox, module: &Module) -> RecordBatch {
        let out = sandbox.call(module, "probe_sandbox", &[batch()], &json!({}), &limits()).unwrap();
        out.batch
    }

    fn probe_value(batch: &RecordBatch, column: &str) -> String {
        batch
            .column_by_name(column)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .to_string()
    }

    /// Runs in a child process that has `AWS_SECRET_ACCESS_KEY` set (setting it in this
    /// multi-threaded test process would need `unsafe`); does nothing when run directly.
    #[test]
    fn probe_child() {
        let Ok(cache_dir) = std::env::var("SHOAL_PROBE_CACHE_DIR") else {
            return;
        };
        assert_eq!(std::env::var("AWS_SECRET_ACCESS_KEY").as_deref(), Ok("host-secret-do-not-leak"));
        let sandbox =
            Sandbox::new(SandboxConfig { cache_dir: Some(cache_dir.into()), ..SandboxConfig::default() })
                .unwrap();
        let module = load(&sandbox, "testing");
        assert_eq!(sandbox.compiled_count(), 0, "child should load the cached artifact");
        let seen = probe(&sandbox, &module);
        println!(
            "probe: fs={} file={} env_count={} secret={} net={}",
            probe_value(&seen, "fs"),
            probe_value(&seen, "file"),
            probe_value(&seen, "env_count"),
            probe_value(&seen, "secret"),
            probe_value(&seen, "net")
        );
        assert!(probe_value(&seen, "fs").starts_with("error:"));
        assert!(probe_value(&seen, "file").starts_with("error:"));
        assert_eq!(probe_value(&seen, "env_count"), "0");
        assert!(probe_value(&seen, "secret").starts_with("error:"));
        assert!(!probe_value(&seen, "secret").contains("host-secret"));
        assert!(probe_value(&seen, "net").starts_with("error:"));
    }

    #[test]
    fn compiled_once_cached_on_disk_and_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = shoal_functions::TESTING;
        let sha = shoal_functions::sha256_hex(bytes);

        let first = Sandbox::new(SandboxConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..SandboxConfig::default()
        })
        .unwrap();
        let started = Instant::now();
        let a = first.load(&sha, bytes).unwrap();
        let compile_time = started.elapsed();
        let b = first.load(&sha, bytes).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(first.compiled_count(), 1);
        let artifacts: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(artifacts.len(), 1, "{artifacts:?}");
        assert!(artifacts[0].ends_with(&format!("-{sha}.cwasm")), "{artifacts:?}");
        drop(first);

        let second = Sandbox::new(SandboxConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..SandboxConfig::default()
        })
        .unwrap();
        let started = Instant::now();
        let module = second.load(&sha, bytes).unwrap();
        let cached_time = started.elapsed();
        let started = Instant::now();
        let _ = shoal_functions::sha256_hex(bytes);
        let sha_time = started.elapsed();
        assert_eq!(second.compiled_count(), 0);
        println!("compile {compile_time:?}, cached load {cached_time:?} (of which sha256 ~{sha_time:?})");
        let out = second.call(&module, "identity", &[batch()], &json!({}), &limits()).unwrap();
        assert_eq!(out.batch, batch());

        // Isolation probe in a child process whose environment holds a secret.
        // This test's path in the test binary: the module path without the crate's name.
        let module = module_path!().split_once("::").map_or(module_path!(), |(_, path)| path);
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([&format!("{module}::probe_child"), "--exact", "--nocapture"])
            .env("SHOAL_PROBE_CACHE_DIR", dir.path())
            .env("AWS_SECRET_ACCESS_KEY", "host-secret-do-not-leak")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
        assert!(stdout.contains("probe: fs=error:"), "{stdout}\n{stderr}");
        if let Some(line) = stdout.lines().find(|l| l.starts_with("probe:")) {
            println!("{line}");
        }
    }

    #[test]
    fn hash_mismatch_and_invalid_modules() {
        let sandbox = shared();
        let err = sandbox.load(&"0".repeat(64), shoal_functions::TESTING).unwrap_err();
        assert!(matches!(err, SandboxError::HashMismatch { .. }), "{err:?}");

        let garbage = b"definitely not a component".to_vec();
        let err = sandbox.load(&shoal_functions::sha256_hex(&garbage), &garbage).unwrap_err();
        assert!(matches!(err, SandboxError::InvalidModule(_)), "{err:?}");
    }

    #[test]
    fn float_input_with_nulls_round_trips() {
        let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, true)]));
        let f: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.5), None]));
        let input = RecordBatch::try_new(schema, vec![f]).unwrap();
        let out = shared()
            .call(&testing(), "identity", std::slice::from_ref(&input), &json!(null), &limits())
            .unwrap();
        assert_eq!(out.batch, input);
    }
}
