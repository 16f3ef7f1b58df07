//! The coordinator's error type.

use shoal_protocol::TaskFailure;

/// What can go wrong in the coordinator. Variants say what failed, not which library failed;
/// a cause is kept as the error's `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input from the user: a job file, an argument, a dataset reference.
    #[error("{0}")]
    Invalid(String),
    /// An input location matched nothing.
    #[error("{0}: no such file or object")]
    NotFound(String),
    /// A plan that does not type-check (unknown column, malformed expression).
    #[error("{0}")]
    Schema(String),
    /// An input could not be read while planning (corrupt Parquet footer, unreadable CSV).
    #[error("{url}: {message}")]
    Input { url: String, message: String },
    /// A task failed for good (fatal, or retryable but out of attempts).
    #[error("{failure}{}", attempts_note(*.attempts))]
    Task { failure: TaskFailure, attempts: u32 },
    /// An executor could not carry tasks (worker binary missing, pool broken).
    #[error("executor: {0}")]
    Executor(String),
    /// JSON that shoal itself writes or reads back (records, events, reports) failed to encode
    /// or decode: `what` names it.
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// Object storage failed (a location that cannot be used, an object that changed, a
    /// transient error that outlasted its retries).
    #[error("{source}")]
    Storage {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Planning with the worker's own code failed for a reason that is not the plan's (its
    /// memory limit, an internal DataFusion error).
    #[error("{source}")]
    Planning {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An error in one dataset of a job file, with the dataset's name.
    #[error("dataset '{name}': {source}")]
    Dataset {
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// An error in one bag (`[bags.NAME]`) of a job file, with the bag's name.
    #[error("bag '{name}': {source}")]
    Bag {
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// An error in one value (`[values.NAME]`) of a job file, with the value's name.
    #[error("value '{name}': {source}")]
    Value {
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// An error in one array (`[arrays.NAME]`) of a job file, with the array's name.
    #[error("array '{name}': {source}")]
    Array {
        name: String,
        #[source]
        source: Box<Error>,
    },
    /// A plan whose tasks would hold more than the task memory limit, refused before anything
    /// runs: the message names the operation and its chunks.
    #[error("{0}")]
    TaskMemory(String),
}

impl Error {
    /// The error under any context wrapped around it (`Dataset`): what kind of failure it is.
    pub fn root(&self) -> &Error {
        match self {
            Error::Dataset { source, .. }
            | Error::Value { source, .. }
            | Error::Bag { source, .. }
            | Error::Array { source, .. } => source.root(),
            other => other,
        }
    }
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() }
}

impl From<shoal_worker::Error> for Error {
    fn from(e: shoal_worker::Error) -> Self {
        use shoal_worker::Error as W;
        match e {
            W::NotFound { url } => Error::NotFound(url),
            W::Schema(m) => Error::Schema(m),
            W::Corrupt { url, message } => Error::Input { url, message },
            other => match other.input().map(str::to_string) {
                Some(url) => Error::Storage { url, source: Box::new(other) },
                None => Error::Planning { source: Box::new(other) },
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
