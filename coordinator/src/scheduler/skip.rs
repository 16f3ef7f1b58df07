//! Tasks whose inputs are all empty are not run: their (empty) output is committed directly,
//! as a manifest with no objects, under the same create-if-absent rule as any commit.

use super::state::Tasks;
use crate::graph::TaskGraph;
use shoal_protocol::{
    Field, Input, Manifest, PROTOCOL_VERSION, TaskFailure, TaskKey, TaskMetrics, TaskResult, layout,
};
use std::sync::Arc;

/// The schema of the (empty) output of `task` when it may be skipped: it allows that
/// ([`TaskNode::skip_if_empty`](crate::graph::TaskNode)) and every one of its inputs is empty,
/// as its upstream manifests tell.
pub(super) fn empty_output(graph: &TaskGraph, task: usize, tasks: &Tasks) -> Option<Vec<Field>> {
    let node = &graph.tasks[task];
    if !node.skip_if_empty {
        return None;
    }
    let schema = graph.stages.get(node.stage)?.schema.as_ref()?;
    let empty = graph.inputs_with_deps(task).all(|(input, dep)| match input {
        Input::Upstream { bucket, .. } => {
            let Some(m) = dep.and_then(|d| tasks.manifest(d)) else { return false };
            match bucket {
                Some(b) if !m.outputs.is_empty() => m.buckets.get(*b as usize).is_some_and(|r| r.rows == 0),
                _ => m.rows == 0,
            }
        }
        Input::Scan { .. } | Input::Zarr { .. } => false,
    });
    empty.then(|| shoal_worker::io::schema::to_fields(schema))
}

/// Commits the empty output of a skipped task: a manifest with no objects, created like any
/// other (create-if-absent; an earlier commit wins).
pub(super) async fn commit_empty(
    storage: Arc<shoal_worker::io::storage::Storage>,
    job_root: String,
    task_key: TaskKey,
    schema: Vec<Field>,
    attempt: u32,
) -> shoal_protocol::TaskOutcome {
    let failed = |e: shoal_worker::Error| TaskFailure {
        kind: e.kind(),
        task_key: task_key.clone(),
        input: e.input().map(str::to_string),
        message: format!("committing the empty output of a skipped task: {e}"),
    };
    let url = storage.resolve(&job_root).map_err(failed)?.join(&layout::manifest(&task_key)).url;
    let manifest = Manifest {
        version: PROTOCOL_VERSION,
        task_key: task_key.clone(),
        attempt_id: "empty".into(),
        outputs: vec![],
        rows: 0,
        bytes: 0,
        schema,
        buckets: vec![],
        divisions: None,
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let metrics = TaskMetrics { requests: 1, ..Default::default() };
    let created = storage.create_if_absent(&url, body.into()).await.map_err(failed)?;
    let (manifest, won_commit) = match created {
        shoal_worker::io::storage::Created::Created => (manifest, true),
        shoal_worker::io::storage::Created::AlreadyExists => {
            let winner = shoal_worker::task::commit::read_manifest(&storage, &url).await.map_err(failed)?;
            (winner.unwrap_or(manifest), false)
        }
    };
    Ok(TaskResult { task_key, attempt, manifest, won_commit, metrics })
}
