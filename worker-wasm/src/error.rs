//! The worker's error type, and its mapping onto the wire's [`FailureKind`].

use shoal_protocol::FailureKind;

/// Everything that can go wrong while running a task.
#[derive(Debug, thiserror::Error)]
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
    /// Transient storage failure: retrying may succeed.
    #[error("storage error at {url}: {message}")]
    Storage { url: String, message: String },
    /// The data does not have the shape the task expects (unknown column, bad expression).
    #[error("{0}")]
    Schema(String),
    /// An input file cannot be decoded (corrupt Parquet, malformed CSV).
    #[error("{url}: cannot decode: {message}")]
    Corrupt { url: String, message: String },
    /// User code failed in the sandbox.
    #[error("user function: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// The task needs more memory than its limit allows (running it again would too).
    #[error("{0}")]
    Memory(String),
    /// The task spec itself is unusable.
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// A DataFusion/Arrow execution error that is not attributable to one input.
    #[error("execution error: {0}")]
    Execution(String),
}

impl Error {
    /// Whether running the same task again could succeed.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Storage { .. } => FailureKind::Retryable,
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
            | Error::Storage { url, .. }
            | Error::Corrupt { url, .. } => Some(url),
            _ => None,
        }
    }

    /// Maps an object_store error at `url`: missing objects and bad paths are fatal, the rest
    /// (network, throttling, 5xx) transient.
    pub fn from_store(url: &str, err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => Error::NotFound { url: url.to_string() },
            object_store::Error::InvalidPath { source } => {
                Error::InvalidUrl { url: url.to_string(), reason: source.to_string() }
            }
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => {
                Error::InvalidUrl { url: url.to_string(), reason: format!("access denied: {source}") }
            }
            other => Error::Storage { url: url.to_string(), message: other.to_string() },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
