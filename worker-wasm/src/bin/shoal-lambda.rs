//! `shoal-lambda`: the generic worker as a cloud function (AWS Lambda, `provided.al2023`, or any
//! endpoint speaking the Lambda Runtime API). Each invocation carries one task: a `TaskSpec`, or
//! `{"spec_url": ...}` for a spec stored in the job root because it exceeds the payload limit.
//! The response is the task's outcome (`TaskResult` or `TaskFailure`) as JSON, on the same code
//! path as the other backends; an error at the Lambda level (a crash, a timeout) is left to the
//! platform, and the coordinator treats it as retryable.
//!
//! A warm function keeps its compiled components in memory, and every process of the function
//! keeps them precompiled on local disk (`SHOAL_CACHE_DIR`, default `/tmp/shoal-components`), so
//! no component is compiled twice. The first task of a process reports the cold start (process
//! start to ready) in its metrics.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use shoal_protocol::{FailureKind, Invocation, TaskFailure, TaskKey, TaskOutcome, TaskSpec};
use shoal_worker::io::storage::Storage;
use shoal_worker::sandbox::SandboxConfig;
use shoal_worker::{Worker, WorkerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Cold start in ms, reported once (then `u64::MAX`).
static COLD_START_MS: AtomicU64 = AtomicU64::new(u64::MAX);

async fn spec_of(invocation: Invocation) -> Result<TaskSpec, TaskFailure> {
    match invocation {
        Invocation::Inline(spec) => Ok(without_profile(*spec)),
        Invocation::ByReference { spec_url, mut storage } => {
            storage.profile = None;
            let fail = |kind, message: String| TaskFailure {
                kind,
                task_key: TaskKey("unknown".into()),
                input: Some(spec_url.clone()),
                message,
            };
            let bytes = Storage::new(storage)
                .get_url(&spec_url)
                .await
                .map_err(|e| fail(e.kind(), format!("fetching the task spec: {e}")))?;
            TaskSpec::from_json(&bytes).map(without_profile).map_err(|m| fail(FailureKind::Fatal, m))
        }
    }
}

/// A function runs with its role (credentials in its environment), never with a profile of
/// the shared config files named on the machine that submitted the job.
fn without_profile(mut spec: TaskSpec) -> TaskSpec {
    spec.storage.profile = None;
    spec
}

async fn handle(
    worker: Arc<Worker>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let outcome: TaskOutcome = match serde_json::from_value::<Invocation>(event.payload) {
        Err(e) => Err(TaskFailure {
            kind: FailureKind::Fatal,
            task_key: TaskKey("unknown".into()),
            input: None,
            message: format!("invalid invocation payload: {e}"),
        }),
        Ok(invocation) => match spec_of(invocation).await {
            Ok(spec) => worker.run(&spec).await,
            Err(failure) => Err(failure),
        },
    };
    let outcome = outcome.map(|mut result| {
        let cold = COLD_START_MS.swap(u64::MAX, Ordering::Relaxed);
        if cold != u64::MAX {
            result.metrics.cold_start_ms = Some(cold);
        }
        result
    });
    Ok(serde_json::to_value(&outcome)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let started = Instant::now();
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "shoal-lambda: the shoal worker as a cloud function (Lambda Runtime API).\n\n\
             Runs where AWS_LAMBDA_RUNTIME_API is set (by Lambda, or a local emulator). Each\n\
             invocation is one task; the response is its outcome. Environment: SHOAL_CACHE_DIR\n\
             (compiled components, default /tmp/shoal-components), AWS_* (storage)."
        );
        return Ok(());
    }
    let cache_dir = std::env::var_os("SHOAL_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("shoal-components"));
    let worker = Arc::new(Worker::new(WorkerConfig {
        sandbox: SandboxConfig { cache_dir: Some(cache_dir), ..Default::default() },
    })?);
    let ready_ms = started.elapsed().as_millis() as u64;
    COLD_START_MS.store(ready_ms, Ordering::Relaxed);
    eprintln!("shoal-lambda ready in {ready_ms} ms");
    lambda_runtime::run(service_fn(move |event| handle(worker.clone(), event))).await
}
