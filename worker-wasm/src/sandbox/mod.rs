//! The wasmtime sandbox that runs user functions (WebAssembly components).
//!
//! One [`Sandbox`] per worker process: one wasmtime `Engine` (pooling allocator, epoch
//! interruption), a background thread that ticks the epoch every [`EPOCH_TICK`], and a cache of
//! compiled components keyed by the SHA-256 of their bytes — in memory, and optionally on disk as
//! precompiled `.cwasm` artifacts (`<cache_dir>/<wasmtime>-<config hash>-<sha256>.cwasm`).
//!
//! Every call gets a fresh `Store` whose WASI context has no preopened directories, no
//! environment, no arguments and no network; stdout and stderr go to one bounded in-memory
//! log. The store enforces the task's [`Limits`](shoal_protocol::Limits): linear memory (a denied
//! growth is reported as [`SandboxError::MemoryLimit`]) and wall-clock time (epoch deadline →
//! [`SandboxError::Timeout`]).
//!
//! The component interface is `shoal:function/functions@0.2.0` (`functions/wit/shoal.wit`):
//! every function declares a kind, which fixes the bytes of its inputs and output (Arrow IPC
//! streams for table functions, JSON for items, binop and value functions); arguments are JSON
//! text. Components exporting the older `@0.1.0` (`functions/wit-0.1/shoal.wit`, table functions
//! only) load too: their functions are all of kind table. [`Sandbox::call_bytes`] refuses a
//! function of another kind than the caller's ([`SandboxError::WrongKind`]). The sandbox knows
//! nothing of a task beyond that: no storage, no operators, no tables other than the record
//! batches it encodes for the guest.
//!
//! Calls block the calling thread, and WASI's sync bindings use `Handle::block_on` when a
//! Tokio runtime is current: call [`Sandbox::call`] from a plain thread or from
//! `spawn_blocking`, never directly on an async worker thread.
//!
//! Layout:
//! - `engine`: the [`Sandbox`] — engine, linker, loading a [`Module`], calling its functions.
//! - `interface`: the two interface versions (bindings of both WIT files) behind one face.
//! - `cache`: compiled components by content hash, precompiled to disk when allowed.
//! - `limits`: the per-call memory limiter and the epoch ticker behind time limits.
//! - `log`: the bounded log that captures the guest's stdout and stderr (WASI stream adapters).

mod cache;
mod engine;
mod interface;
#[cfg(test)]
mod kinds_tests;
mod limits;
mod log;

pub use engine::{BytesOutput, CallOutput, FunctionInfo, Module, Sandbox};
pub use limits::EPOCH_TICK;
use std::path::PathBuf;

/// Engine-wide sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where precompiled components are cached (`None`: in memory only).
    pub cache_dir: Option<PathBuf>,
    /// Upper bound of one linear memory (the pool's slot size); per-call limits
    /// (`Limits::guest_memory_bytes`) are enforced below it.
    pub max_memory_bytes: u64,
    /// How many guest instances may be alive at once (concurrent calls).
    pub max_instances: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            // wasm32's whole address space; each slot is a virtual reservation only.
            max_memory_bytes: 4 << 30,
            // 16 instances × 2 memories × ~4 GiB ≈ 128 GiB of *virtual* address space, no
            // resident memory: far below the 128 TiB a process may map.
            max_instances: 16,
        }
    }
}

/// Errors from loading or running a component.
#[derive(thiserror::Error, Debug)]
pub enum SandboxError {
    /// The bytes are not a valid component for this interface.
    #[error("invalid function module: {0}")]
    InvalidModule(String),
    /// The bytes do not hash to the SHA-256 they were referenced by.
    #[error("module bytes hash to {actual}, expected {expected}")]
    HashMismatch { expected: String, actual: String },
    /// The guest trapped (panicked, hit `unreachable`, ...).
    #[error("user function trapped: {message}")]
    Trap { message: String, log: String },
    /// The guest ran longer than its wall-clock budget.
    #[error("user function timed out after {limit_ms} ms")]
    Timeout { limit_ms: u64, log: String },
    /// The guest tried to grow its memory beyond the limit.
    #[error("user function exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit { limit_bytes: u64, log: String },
    /// The function ran and returned an error.
    #[error("{message}")]
    Guest { message: String, log: String },
    /// The component has no function by that name.
    #[error("unknown function '{name}'; available: {}", available.join(", "))]
    UnknownFunction { name: String, available: Vec<String> },
    /// The function exists but works on other data than the operation gives it.
    #[error(
        "function '{name}' is declared as a {} function, but this operation needs a {} function",
        declared.as_str(),
        wanted.as_str()
    )]
    WrongKind { name: String, declared: shoal_protocol::FunctionKind, wanted: shoal_protocol::FunctionKind },
    /// Host-side I/O or resource trouble (cache files, instance pool exhausted); retryable.
    #[error("sandbox: {0}")]
    Io(String),
    /// Encoding inputs or decoding the guest's output failed.
    #[error("sandbox data encoding: {0}")]
    Encode(String),
}

impl SandboxError {
    /// The guest's captured stdout/stderr, when the error happened while it ran.
    pub fn log(&self) -> Option<&str> {
        match self {
            SandboxError::Trap { log, .. }
            | SandboxError::Timeout { log, .. }
            | SandboxError::MemoryLimit { log, .. }
            | SandboxError::Guest { log, .. } => Some(log),
            _ => None,
        }
    }
}
