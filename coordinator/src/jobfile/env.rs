//! What an operation may use besides its own keys: the client, locations resolved against the
//! job file's directory, function modules (loaded once per job), and the datasets it reads.

use crate::client::{Client, FunctionModule};
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Resolves a location written in a job file: URLs and `builtin:` modules as they are, paths
/// against the job file's directory.
pub fn resolve(base_dir: &Path, loc: &str) -> String {
    if loc.contains("://") || loc.starts_with("builtin:") || Path::new(loc).is_absolute() {
        loc.to_string()
    } else {
        base_dir.join(loc).display().to_string()
    }
}

/// The surroundings of one dataset's operation, lent by the builder while it applies it.
#[derive(Debug)]
pub struct Env<'a> {
    client: &'a Client,
    base_dir: &'a Path,
    /// The datasets built so far: every dataset this one reads is among them.
    built: &'a HashMap<String, DataFrame>,
    modules: &'a mut HashMap<String, FunctionModule>,
    /// The dataset named by `from`.
    from: Option<&'a str>,
}

impl<'a> Env<'a> {
    pub(super) fn new(
        client: &'a Client,
        base_dir: &'a Path,
        built: &'a HashMap<String, DataFrame>,
        modules: &'a mut HashMap<String, FunctionModule>,
        from: Option<&'a str>,
    ) -> Self {
        Self { client, base_dir, built, modules, from }
    }

    pub fn client(&self) -> &Client {
        self.client
    }

    pub fn location(&self, loc: &str) -> String {
        resolve(self.base_dir, loc)
    }

    /// The dataset named by `from`.
    pub fn input(&self) -> Result<DataFrame> {
        let from = self
            .from
            .ok_or_else(|| Error::Invalid("needs `from = \"<dataset>\"` for its operation".into()))?;
        self.dataset(from)
    }

    /// A dataset this one reads besides `from` (the builder has built it already).
    pub fn dataset(&self, name: &str) -> Result<DataFrame> {
        self.built
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("dataset '{name}' was not built before its reader")))
    }

    /// The function module at `location`, loaded once per job.
    pub async fn module(&mut self, location: &str) -> Result<FunctionModule> {
        load_module(self.client, self.base_dir, self.modules, location).await
    }
}

/// The function module at `location` as the job file writes it (relative to `base_dir`),
/// loaded once per job: `modules` holds those loaded so far, by location.
pub async fn load_module(
    client: &Client,
    base_dir: &Path,
    modules: &mut HashMap<String, FunctionModule>,
    location: &str,
) -> Result<FunctionModule> {
    if let Some(m) = modules.get(location) {
        return Ok(m.clone());
    }
    let m = client.load_module(&resolve(base_dir, location)).await?;
    modules.insert(location.to_string(), m.clone());
    Ok(m)
}
