//! `shoal status`: the jobs recorded under a job root, with their committed and missing tasks.

use crate::client::Client;
use crate::error::{Error, Result};
use shoal_protocol::{JobRecord, layout};

/// Committed and missing tasks of one recorded job.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub job_id: String,
    /// Per stage: name, committed tasks, total tasks.
    pub stages: Vec<(String, usize, usize)>,
    pub missing: Vec<shoal_protocol::TaskKey>,
    pub tasks: usize,
}

impl Client {
    /// The jobs recorded under the job root, with their committed and missing tasks.
    pub async fn status(&self) -> Result<Vec<JobStatus>> {
        let storage = self.storage();
        let root = storage.resolve(self.root())?;
        let list = |prefix: &str| {
            let loc = root.join(prefix);
            async move { loc.list_all().await }
        };
        let committed: std::collections::HashSet<String> =
            list("commits").await?.into_iter().map(|m| root.url_of(&m.location)).collect();
        let mut jobs = Vec::new();
        for meta in list("jobs").await? {
            let url = root.url_of(&meta.location);
            if !layout::is_job_record(&url) {
                continue;
            }
            let bytes = storage.get_url(&url).await?;
            let record: JobRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Input { url: url.clone(), message: format!("not a job record: {e}") })?;
            let mut stages: Vec<(String, usize, usize)> =
                record.stages.iter().map(|s| (s.clone(), 0, 0)).collect();
            let mut missing = Vec::new();
            for t in &record.tasks {
                let done = committed.contains(&root.join(&layout::manifest(&t.key)).url);
                if let Some(s) = stages.get_mut(t.stage) {
                    s.2 += 1;
                    s.1 += usize::from(done);
                }
                if !done {
                    missing.push(t.key.clone());
                }
            }
            jobs.push(JobStatus { job_id: record.job_id, stages, missing, tasks: record.tasks.len() });
        }
        Ok(jobs)
    }
}
