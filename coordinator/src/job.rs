//! Job files (TOML): named datasets, each read from storage or built from another dataset by
//! exactly one operation, and the outputs to produce.
//!
//! ```toml
//! [datasets.trips]
//! read_csv = "trips.csv"              # or read_parquet = "data/*.parquet"
//!
//! [datasets.long]
//! from = "trips"
//! filter = "distance_km > 2"
//!
//! [datasets.priced]
//! from = "long"
//! assign = { tip = "fare * 0.15", total = "fare + tip" }
//!
//! [[outputs]]
//! dataset = "priced"
//! to_parquet = "out/priced"            # or: show = true
//! ```
//! Relative paths are relative to the job file's directory.

use crate::client::{Client, FunctionModule};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::CsvOptions;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A parsed job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetSpec>,
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// Directory relative paths are resolved against (the job file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One dataset: a read, or one operation on another dataset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub read_parquet: Option<String>,
    pub read_csv: Option<String>,
    /// CSV: whether the first line is a header (default true).
    pub header: Option<bool>,
    /// CSV: field delimiter (default `,`).
    pub delimiter: Option<char>,
    /// The dataset this one is built from.
    pub from: Option<String>,
    pub filter: Option<String>,
    pub select: Option<Vec<String>>,
    /// Columns to add, in order: `{ name = "sql expression", ... }`.
    pub assign: Option<toml::Table>,
    pub map_partitions: Option<MapPartitionsSpec>,
    pub head: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapPartitionsSpec {
    /// `builtin:examples`, or a path/URL of a `.wasm` component.
    pub module: String,
    pub function: String,
    #[serde(default)]
    pub args: Option<toml::Value>,
}

/// What to do with a dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub dataset: String,
    /// Write Parquet parts and a `_SUCCESS` manifest under this location.
    pub to_parquet: Option<String>,
    /// Print the dataset as a table.
    #[serde(default)]
    pub show: bool,
    /// Rows to print with `show` (default 20).
    pub rows: Option<usize>,
}

impl JobFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read job file {}: {e}", path.display())))?;
        let mut job = Self::parse(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })?;
        job.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(job)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let job: JobFile =
            toml::from_str(text).map_err(|e| Error::Invalid(format!("invalid job file: {e}")))?;
        if job.outputs.is_empty() {
            return Err(Error::Invalid("the job has no [[outputs]]: nothing to do".into()));
        }
        for o in &job.outputs {
            if !job.datasets.contains_key(&o.dataset) {
                return Err(Error::Invalid(format!(
                    "output refers to unknown dataset '{}' (defined: {})",
                    o.dataset,
                    job.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            if o.to_parquet.is_none() && !o.show {
                return Err(Error::Invalid(format!(
                    "output of '{}' needs `to_parquet = \"...\"` or `show = true`",
                    o.dataset
                )));
            }
        }
        Ok(job)
    }

    /// Resolves a location written in the job file: URLs as they are, paths against the job
    /// file's directory.
    pub fn location(&self, loc: &str) -> String {
        if loc.contains("://") || loc.starts_with("builtin:") || Path::new(loc).is_absolute() {
            loc.to_string()
        } else {
            self.base_dir.join(loc).display().to_string()
        }
    }
}

/// Builds the job's datasets as DataFrames (reading only metadata).
#[derive(Debug)]
pub struct Builder<'a> {
    job: &'a JobFile,
    client: &'a Client,
    built: HashMap<String, DataFrame>,
    modules: HashMap<String, FunctionModule>,
}

impl<'a> Builder<'a> {
    pub fn new(job: &'a JobFile, client: &'a Client) -> Self {
        Self { job, client, built: HashMap::new(), modules: HashMap::new() }
    }

    /// The DataFrame of a named dataset.
    pub async fn dataset(&mut self, name: &str) -> Result<DataFrame> {
        let mut visiting = Vec::new();
        self.build(name, &mut visiting).await
    }

    async fn build(&mut self, name: &str, visiting: &mut Vec<String>) -> Result<DataFrame> {
        if let Some(df) = self.built.get(name) {
            return Ok(df.clone());
        }
        if visiting.iter().any(|v| v == name) {
            visiting.push(name.to_string());
            return Err(Error::Invalid(format!("datasets form a cycle: {}", visiting.join(" -> "))));
        }
        let spec = self.job.datasets.get(name).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "unknown dataset '{name}' (defined: {})",
                self.job.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let ctx = |e: Error| match e {
            Error::Schema(m) => Error::Schema(format!("dataset '{name}': {m}")),
            Error::Invalid(m) => Error::Invalid(format!("dataset '{name}': {m}")),
            other => other,
        };
        let ops = [
            spec.read_parquet.is_some(),
            spec.read_csv.is_some(),
            spec.filter.is_some(),
            spec.select.is_some(),
            spec.assign.is_some(),
            spec.map_partitions.is_some(),
            spec.head.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if ops != 1 {
            return Err(Error::Invalid(format!(
                "dataset '{name}' must have exactly one operation (read_parquet, read_csv, filter, \
                 select, assign, map_partitions, head); it has {ops}"
            )));
        }
        let df = if let Some(loc) = &spec.read_parquet {
            self.client.read_parquet(&self.job.location(loc)).await.map_err(ctx)?
        } else if let Some(loc) = &spec.read_csv {
            let opts = CsvOptions {
                has_header: spec.header.unwrap_or(true),
                delimiter: spec.delimiter.map(|c| c as u8).unwrap_or(b','),
            };
            self.client.read_csv(&self.job.location(loc), opts).await.map_err(ctx)?
        } else {
            let from = spec.from.as_deref().ok_or_else(|| {
                Error::Invalid(format!("dataset '{name}' needs `from = \"<dataset>\"` for its operation"))
            })?;
            visiting.push(name.to_string());
            let input = Box::pin(self.build(from, visiting)).await?;
            visiting.pop();
            if let Some(p) = &spec.filter {
                input.filter(p.as_str()).map_err(ctx)?
            } else if let Some(cols) = &spec.select {
                input.select(cols).map_err(ctx)?
            } else if let Some(assign) = &spec.assign {
                let mut df = input;
                for (col, expr) in assign {
                    let sql = expr.as_str().ok_or_else(|| {
                        Error::Invalid(format!(
                            "dataset '{name}': assign.{col} must be an SQL expression string"
                        ))
                    })?;
                    df = df.assign(col, sql).map_err(ctx)?;
                }
                df
            } else if let Some(mp) = &spec.map_partitions {
                let module = self.module(&mp.module).await.map_err(ctx)?;
                let args = match &mp.args {
                    Some(v) => serde_json::to_value(v).map_err(|e| Error::Invalid(e.to_string()))?,
                    None => serde_json::Value::Object(Default::default()),
                };
                input.map_partitions(&module, &mp.function, args).map_err(ctx)?
            } else if let Some(n) = spec.head {
                input.head(n)
            } else {
                return Err(Error::Invalid(format!("dataset '{name}' has no operation")));
            }
        };
        self.built.insert(name.to_string(), df.clone());
        Ok(df)
    }

    async fn module(&mut self, location: &str) -> Result<FunctionModule> {
        if let Some(m) = self.modules.get(location) {
            return Ok(m.clone());
        }
        let m = self.client.load_module(&self.job.location(location)).await?;
        self.modules.insert(location.to_string(), m.clone());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys_and_missing_outputs() {
        let err = JobFile::parse(
            "[datasets.a]\nread_parquet = 'x'\nfliter = 'a'\n[[outputs]]\ndataset='a'\nshow=true",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fliter"), "{err}");
        let err = JobFile::parse("[datasets.a]\nread_parquet = 'x'\n").unwrap_err().to_string();
        assert!(err.contains("no [[outputs]]"), "{err}");
        let err = JobFile::parse("[datasets.a]\nread_parquet = 'x'\n[[outputs]]\ndataset='b'\nshow=true")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown dataset 'b'"), "{err}");
    }

    #[test]
    fn assign_keeps_file_order() {
        let job = JobFile::parse(
            "[datasets.a]\nfrom='x'\nassign = { z = '1', a = 'z + 1' }\n[datasets.x]\nread_csv='f'\n[[outputs]]\ndataset='a'\nshow=true",
        )
        .unwrap();
        let keys: Vec<_> = job.datasets["a"].assign.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["z", "a"]);
    }
}
