//! End-to-end tests, one binary: storage conformance, executor conformance, differential
//! correctness against DuckDB, the sandbox seen from a task, commit races, the CLI,
//! kill-and-resume, the CSV / JSON lines writers, and Python functions (built with
//! `shoal function build`, compared with the Rust examples), and the Bag under S3 faults, killed
//! workers and forced duplicates, and the Array against NumPy and zarr-python.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod array;
mod array_faults;
mod bag;
mod bag_faults;
mod bag_functions;
mod cli;
mod commit;
mod credentials;
mod dashboard;
mod delayed;
mod differential;
mod duplicates;
mod events;
mod executors;
mod faults;
mod lambda;
mod pipelines;
mod plans;
mod python_functions;
mod ranges;
mod readers;
mod relational;
mod resume;
mod sandbox;
mod storage;
mod text_inputs;
mod writers;

use shoal::executor::LambdaOptions;
use shoal::{Client, Config, ExecutorKind};
use shoal_tests::lambda::LocalLambda;
use std::path::{Path, PathBuf};

/// The tests' settings: job root in `root`, `executor` with 2 workers, the shared component
/// cache; the rest default.
pub fn config(root: &Path, executor: ExecutorKind) -> Config {
    Config {
        root: root.display().to_string(),
        executor,
        workers: 2,
        cache_dir: Some(shoal_tests::shoal_cache().join("components")),
        ..Config::default()
    }
}

/// A client with its job root in `root`, running on `executor` with 2 workers.
pub fn client(root: &Path, executor: ExecutorKind) -> Client {
    Client::new(config(root, executor)).expect("client")
}

/// A binary built next to this test binary (`target/debug/<name>`; `cargo build --bins`), or
/// in `$SHOAL_BIN_DIR` (a copy, when several checkouts share one target directory).
pub fn sibling_bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SHOAL_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bins` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A local Lambda running `processes` copies of the real `shoal-lambda` handler.
pub fn local_lambda(processes: usize) -> LocalLambda {
    shoal_tests::init_test_env();
    let cache = shoal_tests::shoal_cache().join("components");
    let env = vec![("SHOAL_CACHE_DIR".to_string(), cache.display().to_string())];
    LocalLambda::start(&sibling_bin("shoal-lambda"), "shoal-worker", processes, &env).expect("local lambda")
}

/// A client whose tasks are invocations of `lambda`'s function, `concurrency` at a time. No
/// speculation: these tests count attempts, and a task waiting out throttling looks like a
/// straggler (speculation has its own tests).
pub fn lambda_client(root: &Path, lambda: &LocalLambda, concurrency: usize, inline_limit: usize) -> Client {
    let config = Config {
        root: root.display().to_string(),
        executor: ExecutorKind::Lambda,
        cache_dir: Some(shoal_tests::shoal_cache().join("components")),
        lambda: Some(LambdaOptions {
            concurrency,
            endpoint: Some(lambda.endpoint.clone()),
            region: Some("us-east-1".into()),
            inline_limit,
            ..LambdaOptions::new(lambda.function.clone())
        }),
        speculation: None,
        ..Config::default()
    };
    Client::new(config).expect("lambda client")
}
