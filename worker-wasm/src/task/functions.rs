//! User functions as a task runs them: components fetched from the job root and compiled once
//! per worker, called in the sandbox on a blocking thread, with their time and log in the
//! task's metrics.

use crate::error::{Error, Result};
use crate::io::storage::Storage;
use crate::ops::Functions;
use crate::sandbox::{Module, Sandbox};
use arrow::record_batch::RecordBatch;
use shoal_protocol::{FunctionKind, FunctionRef, Limits, ModuleRef, TaskMetrics};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The sandbox and the components this worker has loaded, by SHA-256.
#[derive(Debug)]
pub struct Modules {
    sandbox: Arc<Sandbox>,
    loaded: Mutex<HashMap<String, Arc<Module>>>,
}

impl Modules {
    pub fn new(sandbox: Sandbox) -> Self {
        Self { sandbox: Arc::new(sandbox), loaded: Mutex::new(HashMap::new()) }
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Fetches and compiles a component once per worker (and once per machine with a cache dir).
    pub async fn load(&self, storage: &Storage, module: &ModuleRef) -> Result<Arc<Module>> {
        if let Some(m) = self.loaded.lock().ok().and_then(|m| m.get(&module.sha256).cloned()) {
            return Ok(m);
        }
        let bytes = storage.get(&module.object).await?;
        let sandbox = self.sandbox.clone();
        let sha = module.sha256.clone();
        let loaded = tokio::task::spawn_blocking(move || sandbox.load(&sha, &bytes))
            .await
            .map_err(|source| Error::Thread { context: "sandbox thread", source })??;
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(module.sha256.clone(), loaded.clone());
        }
        Ok(loaded)
    }
}

/// The user functions of one task: its storage to fetch components from, its limits, and its
/// metrics to account the calls in.
pub struct TaskFunctions<'a> {
    pub modules: &'a Modules,
    pub storage: &'a Storage,
    pub limits: &'a Limits,
    pub metrics: &'a mut TaskMetrics,
}

impl Functions for TaskFunctions<'_> {
    async fn call(
        &mut self,
        module: &ModuleRef,
        function: &str,
        input: RecordBatch,
        args: &serde_json::Value,
    ) -> Result<RecordBatch> {
        let sandbox = self.modules.sandbox().clone();
        let compiled_before = sandbox.compiled_count();
        let module = self.modules.load(self.storage, module).await?;
        self.metrics.components_compiled += sandbox.compiled_count().saturating_sub(compiled_before);
        let (function, args, limits) = (function.to_string(), args.clone(), self.limits.clone());
        let out =
            tokio::task::spawn_blocking(move || sandbox.call(&module, &function, &[input], &args, &limits))
                .await
                .map_err(|source| Error::Thread { context: "sandbox thread", source })??;
        self.metrics.guest_ms += out.elapsed.as_millis() as u64;
        append_log(&mut self.metrics.guest_log, &out.log, self.limits.guest_log_bytes);
        Ok(out.batch)
    }

    async fn call_json(
        &mut self,
        function: &FunctionRef,
        kind: FunctionKind,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let sandbox = self.modules.sandbox().clone();
        let compiled_before = sandbox.compiled_count();
        let module = self.modules.load(self.storage, &function.module).await?;
        self.metrics.components_compiled += sandbox.compiled_count().saturating_sub(compiled_before);
        let (name, args, limits) = (function.function.clone(), function.args.clone(), self.limits.clone());
        let out = tokio::task::spawn_blocking(move || {
            sandbox.call_bytes(&module, &name, kind, &inputs, &args, &limits)
        })
        .await
        .map_err(|source| Error::Thread { context: "sandbox thread", source })??;
        self.metrics.guest_ms += out.elapsed.as_millis() as u64;
        append_log(&mut self.metrics.guest_log, &out.log, self.limits.guest_log_bytes);
        Ok(out.bytes)
    }
}

fn append_log(log: &mut String, more: &str, limit: usize) {
    if more.is_empty() || log.len() >= limit {
        return;
    }
    let room = limit - log.len();
    let mut end = more.len().min(room);
    while !more.is_char_boundary(end) {
        end -= 1;
    }
    log.push_str(&more[..end]);
}
