//! The coordinator's error type.

use shoal_protocol::TaskFailure;

#[derive(Debug, thiserror::Error)]
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
    /// Anything else from the worker library during planning.
    #[error(transparent)]
    Worker(shoal_worker::Error),
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
            other => Error::Worker(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
