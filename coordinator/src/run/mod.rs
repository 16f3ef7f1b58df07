//! Running a task graph, whatever collection built it: uploading modules, resuming from what
//! an earlier run committed ([`resume`]), recording the job (`jobs/<job_id>.json`), scheduling
//! it with its events published and kept, the run report ([`report`]), reading results back
//! ([`results`]), and `shoal status` ([`status`]).

pub mod report;
pub mod results;
pub mod resume;
pub mod status;

use crate::client::{Client, FunctionModule};
use crate::error::{Error, Result};
use crate::events::{self, EventKind, Events, GraphShape};
use crate::graph::TaskGraph;
use crate::scheduler::{self, RunOptions, RunOutput};
use bytes::Bytes;
use report::RunReport;
use shoal_protocol::{JobRecord, JobTask, PROTOCOL_VERSION, layout};
use std::sync::Arc;
use std::time::Duration;

impl Client {
    /// Runs a task graph: uploads modules, resumes from committed manifests, schedules the rest,
    /// publishing the run's events to `events` and under `jobs/<job_id>.events/`.
    pub(crate) async fn run_graph(
        &self,
        graph: Arc<TaskGraph>,
        modules: &[FunctionModule],
        events: Events,
    ) -> Result<RunOutput> {
        let storage = self.storage();
        for m in modules {
            if storage.head(&m.reference.object.url).await.is_err() {
                storage.put(&m.reference.object.url, m.bytes.clone()).await?;
            }
        }
        if let Some(warning) = crate::graph::many_tasks_warning(graph.len()) {
            tracing::warn!("{warning}");
        }
        let committed = resume::committed(self, &graph).await?;
        let job_id = self.record_job(&graph).await?;
        let root = storage.resolve(self.root())?;
        let mut publisher = events.into_publisher(&job_id);
        let writer = tokio::spawn({
            let (storage, root, job_id) = (storage.clone(), root.clone(), job_id.clone());
            let events = publisher.subscribe();
            async move { events::write_jsonl(storage, root, &job_id, events).await }
        });
        let executor = self.executor();
        let html = tokio::spawn(crate::dashboard::server::fold(publisher.subscribe()));
        let publisher = Arc::new(publisher);
        publisher.emit(|| EventKind::JobStarted {
            graph: GraphShape::of(&graph, committed.keys().copied()),
            already_committed: committed.len(),
            executor: executor.name().to_string(),
            concurrency: executor.concurrency(),
            function_memory_mb: self.config().function_memory_mb,
            prices: self.config().prices.clone(),
        });
        let opts = RunOptions {
            job_id,
            job_root: self.root().to_string(),
            storage: self.config().storage.clone(),
            limits: self.config().limits.clone(),
            max_attempts: self.config().max_attempts,
            speculation: self.config().speculation.clone(),
            base_backoff: Duration::from_millis(100),
            // `resume::committed` listed them above.
            commits_listed: true,
        };
        let started = std::time::Instant::now();
        let (manifests, mut summary) =
            scheduler::run_spawned(graph, executor.clone(), opts.clone(), committed, publisher.clone()).await;
        let report = RunReport::new(
            &summary,
            &opts.job_id,
            executor.name(),
            started.elapsed().as_secs_f64(),
            self.config().function_memory_mb,
            &self.config().prices,
        );
        let written = self.write_report(&root, &report).await;
        publisher.emit(|| EventKind::JobFinished {
            ok: manifests.is_ok(),
            error: manifests.as_ref().err().map(ToString::to_string),
            report: Some(Box::new(report.clone())),
        });
        drop(publisher);
        let logged = writer.await.map_err(|e| Error::Executor(format!("the events writer: {e}")));
        let page = html.await.map(|view| crate::dashboard::report_html(&view));
        let html_written = match page {
            Ok(page) => storage
                .put(&root.join(&layout::report_html(&opts.job_id)).url, Bytes::from(page))
                .await
                .map(|_| ())
                .map_err(Error::from),
            Err(e) => Err(Error::Executor(format!("the report page: {e}"))),
        };
        // Neither the report nor the events file may hide the run's own error.
        let manifests = manifests?;
        written?;
        logged??;
        html_written?;
        summary.report = Some(Box::new(report));
        Ok(RunOutput { manifests, summary })
    }

    /// Writes `jobs/<job_id>.json` (the task list `shoal status` reads) and returns the job id:
    /// a hash of the output tasks' keys, the same for every run of the same job.
    async fn record_job(&self, graph: &TaskGraph) -> Result<String> {
        let job_id = graph.outputs.iter().map(|&t| graph.tasks[t].key.as_str()).collect::<Vec<_>>().join(",");
        let job_id = shoal_functions::sha256_hex(job_id.as_bytes())[..16].to_string();
        let record = JobRecord {
            version: PROTOCOL_VERSION,
            job_id: job_id.clone(),
            stages: graph.stages.iter().map(|s| s.name.clone()).collect(),
            tasks: graph
                .tasks
                .iter()
                .map(|t| JobTask { key: t.key.clone(), stage: t.stage, index: t.index })
                .collect(),
            outputs: graph.outputs.clone(),
        };
        let body = serde_json::to_vec(&record)
            .map_err(|source| Error::Json { what: format!("the record of job {job_id}"), source })?;
        let root = self.storage().resolve(self.root())?;
        self.storage().put(&root.join(&layout::job(&job_id)).url, Bytes::from(body)).await?;
        Ok(job_id)
    }

    async fn write_report(
        &self,
        root: &shoal_worker::io::storage::Location,
        report: &RunReport,
    ) -> Result<()> {
        let body = serde_json::to_vec_pretty(report)
            .map_err(|source| Error::Json { what: format!("the report of job {}", report.job_id), source })?;
        self.storage().put(&root.join(&layout::report(&report.job_id)).url, Bytes::from(body)).await?;
        Ok(())
    }
}
