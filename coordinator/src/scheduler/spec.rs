//! Building the concrete [`TaskSpec`] of one attempt: the graph's task with its upstream
//! inputs resolved to the objects their committed manifests list.

use super::RunOptions;
use super::state::Tasks;
use crate::graph::TaskGraph;
use shoal_protocol::{Input, PROTOCOL_VERSION, TaskSpec};

/// The concrete spec for one attempt: upstream inputs resolved to the objects their committed
/// manifests list.
pub(super) fn build_spec(
    graph: &TaskGraph,
    task: usize,
    attempt: u32,
    tasks: &Tasks,
    opts: &RunOptions,
) -> TaskSpec {
    let node = &graph.tasks[task];
    let inputs = graph
        .inputs_with_deps(task)
        .map(|(input, dep)| match input {
            Input::Upstream { task_key, bucket, port, .. } => {
                let manifest = dep.and_then(|d| tasks.manifest(d));
                let objects = manifest.map(|m| m.outputs.iter().map(|o| o.object.clone()).collect());
                // A shuffle reader fetches only its bucket's byte range of each map output.
                let ranges = match (bucket, manifest) {
                    (Some(b), Some(m)) => m.buckets.get(*b as usize).copied().into_iter().collect(),
                    _ => vec![],
                };
                // A skipped task's output has no objects: the reader gets its schema instead.
                let schema = manifest.filter(|m| m.outputs.is_empty()).map(|m| m.schema.clone());
                Input::Upstream {
                    task_key: task_key.clone(),
                    objects: objects.unwrap_or_default(),
                    bucket: *bucket,
                    ranges,
                    port: *port,
                    schema,
                }
            }
            other => other.clone(),
        })
        .collect();
    TaskSpec {
        version: PROTOCOL_VERSION,
        job_id: opts.job_id.clone(),
        job_root: opts.job_root.clone(),
        task_key: node.key.clone(),
        attempt,
        inputs,
        pipeline: node.pipeline.clone(),
        output: node.output.clone(),
        limits: opts.limits.clone(),
        storage: opts.storage.clone(),
        uncommitted: opts.commits_listed && attempt == 1,
    }
}
