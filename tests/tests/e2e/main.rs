//! End-to-end tests, one binary: storage conformance, executor conformance, differential
//! correctness against DuckDB, the sandbox seen from a task, commit races, the CLI, and
//! kill-and-resume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod commit;
mod differential;
mod duplicates;
mod executors;
mod relational;
mod resume;
mod sandbox;
mod storage;

use shoal::{Client, Config, ExecutorKind};
use std::path::Path;

/// A client with its job root in `root`, running on `executor` with 2 workers.
pub fn client(root: &Path, executor: ExecutorKind) -> Client {
    let config = Config {
        root: root.display().to_string(),
        executor,
        workers: 2,
        cache_dir: Some(shoal_tests::shoal_cache().join("components")),
        ..Config::default()
    };
    Client::new(config).expect("client")
}
