//! Committing a task: the create-if-absent manifest, and what a losing attempt does.
//!
//! The first commit wins; a losing attempt returns the winner's manifest and deletes its own
//! intermediate files. This is the only place in the worker that writes a manifest.

use crate::error::{Error, Result};
use crate::io::storage::{Created, Storage};
use bytes::Bytes;
use shoal_protocol::{Manifest, Output};

/// Reads a committed manifest, if there is one.
pub async fn read_manifest(storage: &Storage, url: &str) -> Result<Option<Manifest>> {
    match storage.get_url(url).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt { url: url.to_string(), message: format!("manifest: {e}") }),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Commits `manifest` at `manifest_url` unless another attempt did first. Returns the manifest
/// that holds and whether it is ours. A loser removes the objects it wrote (its manifest's
/// outputs), except for user-visible `output` parts: they share their deterministic names with
/// the winner's and hold identical bytes.
pub async fn commit(
    storage: &Storage,
    manifest_url: &str,
    manifest: Manifest,
    output: &Output,
) -> Result<(Manifest, bool)> {
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|source| Error::Json { context: "encoding the manifest", source })?;
    // Cut to its length: `Bytes` would keep the vector's spare capacity (and an in-memory job
    // root, a manifest per task).
    match storage.create_if_absent(manifest_url, Bytes::from(body.into_boxed_slice())).await? {
        Created::Created => Ok((manifest, true)),
        Created::AlreadyExists => {
            let winner = read_manifest(storage, manifest_url)
                .await?
                .ok_or_else(|| Error::ManifestVanished { url: manifest_url.to_string() })?;
            if !output.is_user_visible() && winner.attempt_id != manifest.attempt_id {
                for ours in &manifest.outputs {
                    if let Err(e) = storage.delete(&ours.object.url).await {
                        tracing::warn!(task = %manifest.task_key, "cleanup of losing attempt failed: {e}");
                    }
                }
            }
            Ok((winner, false))
        }
    }
}
