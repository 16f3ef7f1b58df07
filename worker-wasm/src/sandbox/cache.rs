//! Compiled components by content hash. Compiling a component costs seconds; loading a
//! precompiled artifact about a millisecond. Artifacts are kept on disk when a cache directory
//! is configured, named by the wasmtime version, the engine's compatibility hash and the SHA-256
//! of the component's bytes, so an artifact is only ever loaded by an engine that can run it.

use super::SandboxError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Part of the on-disk artifact name. `Component::deserialize_file` refuses artifacts from
/// another wasmtime version anyway (and we then recompile), so this only keeps names apart.
const WASMTIME_TAG: &str = "wasmtime48";

/// Compiles components, or loads them precompiled from a cache directory.
#[derive(Debug)]
pub(super) struct ComponentCache {
    dir: Option<PathBuf>,
    config_hash: String,
    compiled: AtomicU64,
}

impl ComponentCache {
    /// A cache for components of `engine`, on disk in `dir` (created if needed) when given.
    pub(super) fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self, SandboxError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let config_hash = format!("{:016x}", hasher.finish());
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| SandboxError::Io(format!("creating cache dir {}: {e}", dir.display())))?;
        }
        Ok(Self { dir, config_hash, compiled: AtomicU64::new(0) })
    }

    /// How many times a component was actually compiled (not loaded from a cache).
    pub(super) fn compiled_count(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// The component of `bytes`, which must hash to `sha256` (lowercase hex): loaded from its
    /// precompiled artifact when there is one, otherwise compiled (and the artifact written).
    pub(super) fn component(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Component, SandboxError> {
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != sha256 {
            return Err(SandboxError::HashMismatch { expected: sha256.to_string(), actual });
        }
        if let Some(component) = self.load_cached(engine, sha256) {
            return Ok(component);
        }
        let started = Instant::now();
        let component =
            Component::new(engine, bytes).map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            sha256 = %sha256,
            bytes = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled function component"
        );
        self.store_cached(sha256, &component);
        Ok(component)
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join(format!("{WASMTIME_TAG}-{}-{sha256}.cwasm", self.config_hash)))
    }

    fn load_cached(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.cache_path(sha256)?;
        if !path.exists() {
            return None;
        }
        let started = Instant::now();
        // SAFETY: the file is our own artifact: written by `store_cached` from
        // `Component::serialize` of this engine's configuration (the name carries the wasmtime
        // tag, the engine's compatibility hash and the content hash of the source), and
        // written atomically (temp file + rename), so it is never a partial or foreign file.
        // wasmtime additionally checks version and configuration compatibility.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => {
                tracing::debug!(
                    path = %path.display(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "loaded precompiled component"
                );
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component");
                None
            }
        }
    }

    fn store_cached(&self, sha256: &str, component: &Component) {
        let Some(path) = self.cache_path(sha256) else {
            return;
        };
        if let Err(e) = write_atomically(&path, || component.serialize()) {
            // The cache is an optimisation: a failure to write it is not the task's problem.
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
        }
    }
}

fn write_atomically(path: &Path, contents: impl FnOnce() -> wasmtime::Result<Vec<u8>>) -> Result<(), String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bytes = contents().map_err(|e| format!("serializing: {e:#}"))?;
    let tmp = path.with_extension(format!(
        "tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, &bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}: {e}", tmp.display(), path.display())
    })
}
