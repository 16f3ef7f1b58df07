//! [`Worker::run`]: one task from spec to committed manifest.

use super::commit::{self, read_manifest};
use super::functions::{Modules, TaskFunctions};
use super::{inputs, output};
use crate::error::{Error, Result};
use crate::io::storage::Storage;
use crate::io::{Data, schema};
use crate::ops;
use crate::ops::table::Sides;
use crate::sandbox::{Module, Sandbox, SandboxConfig};
use shoal_protocol::{
    FailureKind, Manifest, ModuleRef, Operator, OutputObject, PROTOCOL_VERSION, StorageOptions, TaskFailure,
    TaskKey, TaskMetrics, TaskOutcome, TaskResult, TaskSpec, layout,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Settings of one worker process.
#[derive(Debug, Clone, Default)]
pub struct WorkerConfig {
    pub sandbox: SandboxConfig,
}

/// Runs tasks. Holds no state between tasks except caches (stores, compiled components).
#[derive(Debug)]
pub struct Worker {
    modules: Modules,
    storages: Mutex<HashMap<StorageOptions, Arc<Storage>>>,
}

impl Worker {
    /// A worker; the first in a process also sets its allocator's thresholds (`task::malloc`).
    pub fn new(config: WorkerConfig) -> Result<Self> {
        super::malloc::tune();
        Ok(Self {
            modules: Modules::new(Sandbox::new(config.sandbox)?),
            storages: Mutex::new(HashMap::new()),
        })
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        self.modules.sandbox()
    }

    /// The (cached) storage client for a set of options.
    pub fn storage(&self, options: &StorageOptions) -> Arc<Storage> {
        let mut map = match self.storages.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(options.clone()).or_insert_with(|| Arc::new(Storage::new(options.clone()))).clone()
    }

    /// Parses and runs a JSON task spec; a spec that cannot be parsed is a fatal failure.
    pub async fn run_json(&self, bytes: &[u8]) -> TaskOutcome {
        match TaskSpec::from_json(bytes) {
            Ok(spec) => self.run(&spec).await,
            Err(message) => Err(TaskFailure {
                kind: FailureKind::Fatal,
                task_key: TaskKey("unknown".into()),
                input: None,
                message,
            }),
        }
    }

    /// Runs one task to a committed manifest.
    pub async fn run(&self, spec: &TaskSpec) -> TaskOutcome {
        let started = Instant::now();
        let mut metrics = TaskMetrics::default();
        let result = self.run_inner(spec, &mut metrics).await;
        metrics.wall_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok((manifest, won_commit)) => Ok(TaskResult {
                task_key: spec.task_key.clone(),
                attempt: spec.attempt,
                manifest,
                won_commit,
                metrics,
            }),
            Err(e) => Err(TaskFailure {
                kind: e.kind(),
                task_key: spec.task_key.clone(),
                input: e.input().map(str::to_string),
                message: e.to_string(),
            }),
        }
    }

    /// Fetches and compiles a component once per worker (and once per machine with a cache dir).
    pub async fn load_module(&self, storage: &Storage, module: &ModuleRef) -> Result<Arc<Module>> {
        self.modules.load(storage, module).await
    }

    /// Already committed? → read inputs → run the pipeline → write → commit. Returns the
    /// manifest that holds and whether this attempt's commit made it.
    async fn run_inner(&self, spec: &TaskSpec, metrics: &mut TaskMetrics) -> Result<(Manifest, bool)> {
        check_spec(spec)?;
        let storage = self.storage(&spec.storage);
        let root = storage.resolve(&spec.job_root)?;
        let manifest_url = root.join(&layout::manifest(&spec.task_key)).url;

        // Already committed (a retry after a lost reply, a resumed job): nothing to do. Skipped
        // when the scheduler knows no attempt has committed; the commit below stays
        // create-if-absent either way.
        if !spec.uncommitted {
            metrics.requests += 1;
            if let Some(existing) = read_manifest(&storage, &manifest_url).await? {
                return Ok((existing, false));
            }
        }

        let inputs::Read { main: input, sides, tally: streamed, applied } =
            inputs::read(&storage, spec, metrics).await?;
        let pipeline = &spec.pipeline[applied..];
        let data = self.run_pipeline(&storage, spec, pipeline, input, &sides, metrics).await?;
        let divisions = match &data {
            Data::Table((_, batches)) => ops::divisions(&spec.pipeline, batches)?,
            Data::Stream(_) => None,
        };
        let fields = schema::to_fields(data.schema());

        let attempt_id = uuid::Uuid::new_v4().simple().to_string();
        let attempt_object =
            |name: &str| root.join(&layout::attempt_object(&spec.task_key, &attempt_id, name)).url;
        let written =
            output::write(&storage, &spec.job_root, &attempt_object, &spec.output, data, &sides).await?;
        if let Some(tally) = streamed {
            tally.count(metrics);
        }
        let rows = written.rows;
        metrics.rows_out = rows;
        let object = written.object;
        metrics.bytes_written += object.size;
        metrics.objects_written += 1;
        // The data object and the conditional manifest put.
        metrics.requests += 2;

        let manifest = Manifest {
            version: PROTOCOL_VERSION,
            task_key: spec.task_key.clone(),
            attempt_id,
            rows,
            bytes: object.size,
            outputs: vec![OutputObject { object, rows }],
            schema: fields,
            buckets: written.buckets,
            divisions,
        };
        commit::commit(&storage, &manifest_url, manifest, &spec.output).await
    }

    /// Runs the task's operators over its main table, user functions in the sandbox.
    async fn run_pipeline(
        &self,
        storage: &Storage,
        spec: &TaskSpec,
        pipeline: &[Operator],
        input: Data,
        sides: &Sides,
        metrics: &mut TaskMetrics,
    ) -> Result<Data> {
        let mut functions = TaskFunctions { modules: &self.modules, storage, limits: &spec.limits, metrics };
        ops::run(pipeline, input, sides, spec.limits.task_memory_bytes, &mut functions).await
    }
}

/// Refuses a spec of another protocol version, or one whose ports disagree with its operators.
fn check_spec(spec: &TaskSpec) -> Result<()> {
    if spec.version != PROTOCOL_VERSION {
        return Err(Error::InvalidTask(format!("unsupported spec version {}", spec.version)));
    }
    ops::check_ports(&spec.inputs, &spec.pipeline, &spec.output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::table::scan_filter::tests::{rows, write};
    use shoal_protocol::{Limits, Output, TableOp};

    /// A task whose first filter tests dictionary-encoded strings: the reader applies it, the
    /// pipeline runs from the select after it, and the committed rows are the filter's.
    #[tokio::test]
    async fn a_first_filter_applied_by_the_reader_is_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let (input, _) = write(dir.path());
        let worker = Worker::new(WorkerConfig::default()).unwrap();
        let spec = |predicate: &str| TaskSpec {
            version: PROTOCOL_VERSION,
            job_id: "scan-filter".into(),
            job_root: format!("file://{}/job", dir.path().display()),
            task_key: TaskKey::derive("scan-filter-select", &predicate),
            attempt: 1,
            inputs: vec![input.clone()],
            pipeline: vec![
                TableOp::Filter { predicate: predicate.into() }.into(),
                TableOp::Select { columns: vec!["id".into(), "flag".into()] }.into(),
            ],
            output: Output::Intermediate,
            limits: Limits::default(),
            storage: Default::default(),
            uncommitted: true,
        };
        let (ids, modes, flags, _) = rows();
        for (predicate, applied) in
            [("mode = 'AIR' AND flag = 'R'", 1), ("upper(mode) = 'AIR' AND upper(flag) = 'R'", 0)]
        {
            let spec = spec(predicate);
            let storage = worker.storage(&spec.storage);
            let mut metrics = TaskMetrics::default();
            let read = inputs::read(&storage, &spec, &mut metrics).await.unwrap();
            assert_eq!(read.applied, applied, "{predicate}");

            let done = worker.run(&spec).await.unwrap_or_else(|e| panic!("{predicate}: {e:?}"));
            let want =
                ids.iter().filter(|&&i| modes[i as usize] == "AIR" && flags[i as usize] == Some("R")).count();
            assert!(want > 0);
            assert_eq!(done.manifest.rows as usize, want, "{predicate}");
            assert_eq!(done.metrics.rows_in, 3000, "{predicate}: rows read, before the filter");
            assert_eq!(done.manifest.schema.len(), 2);
        }
    }
}
