//! Resume: the tasks of a graph that an earlier run already committed under the job root, and
//! whether each can be reused.

use crate::client::Client;
use crate::error::Result;
use crate::graph::TaskGraph;
use futures::{StreamExt, TryStreamExt};
use shoal_protocol::{Manifest, layout};
use shoal_worker::io::storage::Storage;
use std::collections::HashMap;

/// Manifests already committed under the job root for tasks of this graph.
pub(crate) async fn committed(client: &Client, graph: &TaskGraph) -> Result<HashMap<usize, Manifest>> {
    let root = client.storage().resolve(client.root())?;
    let present: std::collections::HashSet<String> =
        root.join("commits").list_all().await?.into_iter().map(|m| root.url_of(&m.location)).collect();
    let storage = client.storage();
    let mut reads = Vec::new();
    for (i, t) in graph.tasks.iter().enumerate() {
        let url = root.join(&layout::manifest(&t.key)).url;
        if present.contains(&url) {
            reads.push(reusable(storage, url, t, i));
        }
    }
    let found: Vec<Option<(usize, Manifest)>> =
        futures::stream::iter(reads).buffer_unordered(16).try_collect().await?;
    Ok(found.into_iter().flatten().collect())
}

/// The committed manifest of task `index`, if it can be reused. An output outside the job root
/// can be deleted or overwritten behind the job's back: such a task is reused only if every
/// part is still the object it committed; otherwise its stale manifest is removed so that the
/// task runs (and commits) again.
async fn reusable(
    storage: &Storage,
    url: String,
    task: &crate::graph::TaskNode,
    index: usize,
) -> Result<Option<(usize, Manifest)>> {
    let Some(manifest) = shoal_worker::task::commit::read_manifest(storage, &url).await? else {
        return Ok(None);
    };
    if task.output.is_user_visible() && !outputs_intact(storage, &manifest).await? {
        tracing::info!(task = %task.key, "committed output is missing or changed: running the task again");
        storage.delete(&url).await?;
        return Ok(None);
    }
    Ok(Some((index, manifest)))
}

/// Whether every object a manifest lists is still there with the size and ETag it was
/// committed with.
async fn outputs_intact(storage: &Storage, manifest: &Manifest) -> Result<bool> {
    for out in &manifest.outputs {
        let recorded = &out.object;
        match storage.head(&recorded.url).await {
            Ok(now) => {
                let same_tag = match (&recorded.e_tag, &now.e_tag) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if now.size != recorded.size || !same_tag {
                    return Ok(false);
                }
            }
            // A Zarr chunk of only the fill value is not stored (its reference has size 0).
            Err(shoal_worker::Error::NotFound { .. }) if recorded.size == 0 && recorded.e_tag.is_none() => {}
            Err(shoal_worker::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}
