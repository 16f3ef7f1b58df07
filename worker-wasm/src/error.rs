//! The worker's error type, and its mapping onto the wire's [`FailureKind`].
//!
//! Variants say what went wrong, not which library noticed; those that wrap another library's
//! error keep it as their [`source`](std::error::Error::source), with the step that failed as
//! context. Only [`Error::kind`] decides whether a failure is worth retrying.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use parquet::errors::ParquetError;
use shoal_protocol::FailureKind;

/// Everything that can go wrong while running a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input object does not exist.
    #[error("{url}: not found")]
    NotFound { url: String },
    /// An input object changed between planning and execution.
    #[error("{url}: object changed since the job was planned ({detail})")]
    Changed { url: String, detail: String },
    /// A URL or path that cannot be used.
    #[error("invalid location '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A location that is not a valid object path.
    #[error("invalid location '{url}': {source}")]
    InvalidPath {
        url: String,
        #[source]
        source: object_store::path::Error,
    },
    /// The store refused us access (missing or wrong credentials, a policy).
    #[error("invalid location '{url}': access denied: {source}")]
    AccessDenied {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// Transient storage failure (network, throttling, 5xx): retrying may succeed.
    #[error("storage error at {url}: {source}")]
    Storage {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// A commit was lost to another attempt whose manifest then could not be read.
    #[error("storage error at {url}: manifest vanished after a lost commit")]
    ManifestVanished { url: String },
    /// The data does not have the shape the task expects (unknown column, bad expression).
    #[error("{0}")]
    Schema(String),
    /// An input file cannot be decoded (corrupt Parquet, malformed CSV, a truncated IPC stream).
    #[error("{url}: cannot decode: {source}")]
    Decode {
        url: String,
        #[source]
        source: DecodeError,
    },
    /// A value in an input file that does not fit its column's type: the message names the
    /// line, the column and the value, and what to do about it.
    #[error("{url}: {message}")]
    BadValue { url: String, message: String },
    /// A Bag item that an operator cannot take (a missing key in `pluck`, a non-list in
    /// `flatten`, a function result of the wrong shape): the message names the item.
    #[error("{0}")]
    BadItem(String),
    /// An object that is not what it should be (a manifest that does not parse).
    #[error("{url}: cannot decode: {message}")]
    Corrupt { url: String, message: String },

    /// A Zarr array could not be read or written: `transient` when its store failed (a retry
    /// may succeed), otherwise bad metadata, an unsupported codec or a corrupt chunk.
    #[error("{url}: {message}")]
    Zarr { url: String, message: String, transient: bool },
    /// User code failed in the sandbox.
    #[error("user function: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// The task's inputs alone take more memory than its limit (running it again would too).
    #[error(
        "the task's inputs take {} in memory, over its limit of {}: split the work into more \
         partitions (repartition, npartitions, split_out) or raise the task memory limit",
        human_bytes(*.held),
        human_bytes(*.limit)
    )]
    InputsOverMemoryLimit { held: u64, limit: u64 },
    /// The task's operators ran out of its memory budget (and could not spill).
    #[error(
        "the task ran out of its memory budget: {}; split the work into more partitions",
        .source.strip_backtrace()
    )]
    OutOfMemory {
        #[source]
        source: DataFusionError,
    },
    /// The task spec itself is unusable.
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// A DataFusion plan failed while running, not attributable to one input.
    #[error("execution error: {}", .source.strip_backtrace())]
    DataFusion {
        #[source]
        source: DataFusionError,
    },
    /// An Arrow kernel failed (a cast, a take, concatenation, IPC encoding).
    #[error("execution error: {context}: {source}")]
    Arrow {
        context: &'static str,
        #[source]
        source: ArrowError,
    },
    /// Writing Parquet failed.
    #[error("execution error: {context}: {source}")]
    Parquet {
        context: &'static str,
        #[source]
        source: ParquetError,
    },
    /// Encoding JSON (a manifest) failed.
    #[error("execution error: {context}: {source}")]
    Json {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A blocking step run on its own thread (a sandbox call, a compilation) panicked or was
    /// cancelled.
    #[error("execution error: {context}: {source}")]
    Thread {
        context: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A plan that does not have the shape the worker built it to have (a bug, not bad data).
    #[error("execution error: {0}")]
    Execution(String),
}

/// Why an input could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    /// CSV and Arrow IPC.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

impl Error {
    /// Whether running the same task again could succeed.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Storage { .. } | Error::ManifestVanished { .. } => FailureKind::Retryable,
            Error::Zarr { transient: true, .. } => FailureKind::Retryable,
            Error::Sandbox(crate::sandbox::SandboxError::Io(_)) => FailureKind::Retryable,
            _ => FailureKind::Fatal,
        }
    }

    /// The input URL this error concerns, if any.
    pub fn input(&self) -> Option<&str> {
        match self {
            Error::NotFound { url }
            | Error::Changed { url, .. }
            | Error::InvalidUrl { url, .. }
            | Error::InvalidPath { url, .. }
            | Error::AccessDenied { url, .. }
            | Error::Storage { url, .. }
            | Error::ManifestVanished { url }
            | Error::Decode { url, .. }
            | Error::Corrupt { url, .. }
            | Error::Zarr { url, .. } => Some(url),
            _ => None,
        }
    }

    /// Maps an object_store error at `url`: missing objects and bad paths are fatal, the rest
    /// (network, throttling, 5xx) transient.
    pub fn from_store(url: &str, err: object_store::Error) -> Self {
        let url = url.to_string();
        match err {
            object_store::Error::NotFound { .. } => Error::NotFound { url },
            object_store::Error::InvalidPath { source } => Error::InvalidPath { url, source },
            source @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }) => Error::AccessDenied { url, source },
            source => Error::Storage { url, source },
        }
    }

    /// `map_err` for an Arrow kernel: `.map_err(Error::arrow("range shuffle: converting keys"))`.
    pub(crate) fn arrow(context: &'static str) -> impl FnOnce(ArrowError) -> Error {
        move |source| Error::Arrow { context, source }
    }

    /// `map_err` for a failed decode of the object at `url`.
    pub(crate) fn decode(url: &str) -> impl FnOnce(ArrowError) -> Error + '_ {
        move |source| Error::Decode { url: url.to_string(), source: DecodeError::Arrow(source) }
    }
}

/// A DataFusion error while running a plan; running out of the task's memory budget is
/// [`Error::OutOfMemory`].
impl From<DataFusionError> for Error {
    fn from(source: DataFusionError) -> Self {
        // A task's own error carried through a plan (its input stream failed): itself again.
        let source = match source {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(own) => return *own,
                Err(other) => DataFusionError::External(other),
            },
            other => other,
        };
        match source.find_root() {
            DataFusionError::ResourcesExhausted(_) => Error::OutOfMemory { source },
            _ => Error::DataFusion { source },
        }
    }
}

/// `1.5 GiB`, `12.0 MiB`: sizes in task-memory messages.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
