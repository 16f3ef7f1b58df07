//! The `lambda` executor: each task attempt is a request/response invocation of one generic
//! worker function (`shoal-lambda`, deployed once from `infra/`) through `aws-sdk-lambda`.
//!
//! - Payloads over [`LambdaOptions::inline_limit`] are written to the job root
//!   (`specs/<task>-<attempt>.json`) and passed by reference.
//! - Throttling (429 `TooManyRequestsException`) is answered with exponential backoff and jitter,
//!   without spending one of the task's attempts; past [`THROTTLE_RETRIES`] it is a retryable
//!   failure.
//! - A function error (the runtime crashed, timed out or ran out of memory: `X-Amz-Function-Error`)
//!   is retryable; the task's own failures come back inside the response as `TaskFailure`s, with
//!   their kind. An unknown function is fatal.
//! - The endpoint can be overridden (`--lambda-endpoint`, `AWS_ENDPOINT_URL_LAMBDA`, or
//!   `AWS_ENDPOINT_URL`) for LocalStack or a local emulator.

use super::Executor;
use async_trait::async_trait;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use bytes::Bytes;
use rand::Rng;
use shoal_protocol::{FailureKind, Invocation, TaskFailure, TaskOutcome, TaskSpec, layout};
use shoal_worker::io::storage::Storage;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, Semaphore};

/// Throttled invocations retried before the attempt fails (retryably).
pub const THROTTLE_RETRIES: u32 = 8;

/// Settings of the `lambda` executor.
#[derive(Debug, Clone)]
pub struct LambdaOptions {
    /// Name or ARN of the worker function.
    pub function: String,
    /// Invocations in flight at once.
    pub concurrency: usize,
    /// Endpoint override (LocalStack, an emulator).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Named profile of the shared AWS config files the Lambda client takes its credentials
    /// from (`--profile`). The function itself runs with its role.
    pub profile: Option<String>,
    /// Specs larger than this travel by reference through the job root. Lambda accepts 6 MB
    /// synchronously; the default keeps invocations small.
    pub inline_limit: usize,
}

impl LambdaOptions {
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
            concurrency: 64,
            endpoint: None,
            region: None,
            profile: None,
            inline_limit: 256 << 10,
        }
    }
}

#[derive(Debug)]
pub struct Lambda {
    options: LambdaOptions,
    storage: Arc<Storage>,
    /// The job root (URL) where large specs are stored.
    root: String,
    client: OnceCell<aws_sdk_lambda::Client>,
    slots: Semaphore,
}

impl Lambda {
    pub fn new(options: LambdaOptions, storage: Arc<Storage>, root: String) -> Self {
        let slots = Semaphore::new(options.concurrency.max(1));
        Self { options, storage, root, client: OnceCell::new(), slots }
    }

    async fn client(&self) -> &aws_sdk_lambda::Client {
        self.client
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
                if let Some(endpoint) = &self.options.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                if let Some(profile) = &self.options.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(region) = &self.options.region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                aws_sdk_lambda::Client::new(&loader.load().await)
            })
            .await
    }

    /// The invocation payload: the spec itself, or a reference to it stored in the job root.
    async fn payload(&self, spec: &TaskSpec) -> Result<Vec<u8>, TaskFailure> {
        let fail = |kind, message: String| TaskFailure {
            kind,
            task_key: spec.task_key.clone(),
            input: None,
            message,
        };
        let inline = serde_json::to_vec(spec).map_err(|e| fail(FailureKind::Fatal, e.to_string()))?;
        if inline.len() <= self.options.inline_limit {
            return Ok(inline);
        }
        let root = self.storage.resolve(&self.root).map_err(|e| fail(e.kind(), e.to_string()))?;
        let url = root.join(&layout::spec(&spec.task_key, spec.attempt)).url;
        self.storage
            .put(&url, Bytes::from(inline))
            .await
            .map_err(|e| fail(e.kind(), format!("storing the task spec: {e}")))?;
        let reference = Invocation::ByReference { spec_url: url, storage: spec.storage.clone() };
        serde_json::to_vec(&reference).map_err(|e| fail(FailureKind::Fatal, e.to_string()))
    }
}

fn throttle_delay(attempt: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(6));
    base.min(Duration::from_secs(5)).mul_f64(rand::rng().random_range(0.5..1.5))
}

#[async_trait]
impl Executor for Lambda {
    fn name(&self) -> &str {
        "lambda"
    }

    fn concurrency(&self) -> usize {
        self.options.concurrency.max(1)
    }

    async fn execute(&self, spec: TaskSpec) -> TaskOutcome {
        let fail = |kind, message: String| TaskFailure {
            kind,
            task_key: spec.task_key.clone(),
            input: None,
            message,
        };
        let _slot = self.slots.acquire().await.map_err(|e| fail(FailureKind::Fatal, e.to_string()))?;
        let payload = self.payload(&spec).await?;
        let client = self.client().await;
        let function = &self.options.function;
        let mut throttled = 0;
        loop {
            let sent = client
                .invoke()
                .function_name(function)
                .invocation_type(InvocationType::RequestResponse)
                .payload(Blob::new(payload.clone()))
                .send()
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(SdkError::ServiceError(e)) => match e.err() {
                    InvokeError::TooManyRequestsException(_) if throttled < THROTTLE_RETRIES => {
                        tokio::time::sleep(throttle_delay(throttled)).await;
                        throttled += 1;
                        continue;
                    }
                    InvokeError::ResourceNotFoundException(_) => {
                        return Err(fail(
                            FailureKind::Fatal,
                            format!("lambda function '{function}' not found"),
                        ));
                    }
                    other => {
                        return Err(fail(FailureKind::Retryable, format!("invoking '{function}': {other}")));
                    }
                },
                Err(e) => {
                    let message =
                        format!("invoking '{function}': {}", aws_sdk_lambda::error::DisplayErrorContext(&e));
                    return Err(fail(FailureKind::Retryable, message));
                }
            };
            let body = out.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default();
            if let Some(kind) = out.function_error() {
                // The runtime itself failed (crash, timeout, out of memory): try again.
                let detail = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                return Err(fail(FailureKind::Retryable, format!("function error ({kind}): {detail}")));
            }
            return serde_json::from_slice::<TaskOutcome>(&body).map_err(|e| {
                fail(FailureKind::Retryable, format!("unreadable response from '{function}': {e}"))
            })?;
        }
    }
}
