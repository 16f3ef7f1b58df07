//! Writing a DataFrame to a user-visible location: one part per partition with a deterministic
//! name (`part-00000.parquet`, `part-00000.csv` or `part-00000.jsonl`), each written whole by
//! its task, then a `_SUCCESS` manifest listing them, written last. The same protocol for every
//! format; only the worker's encoder differs ([`shoal_worker::io::text`] for CSV and JSON lines:
//! pandas' formatting of nulls, dates and floats).

use super::DataFrame;
use super::WriteSummary;
use super::lower::{Target, lower};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::run::results;
use bytes::Bytes;
use shoal_protocol::PartFormat;

impl DataFrame {
    /// Checks that `location` can take an output of `format`: not an existing file, writable (a
    /// probe object is written and deleted), and for CSV no nested column. Run by the writers
    /// before any task; `shoal run` checks every output this way before the first one runs.
    pub async fn check_output(&self, location: &str, format: PartFormat) -> Result<()> {
        let writer = format!("to_{}", format.name());
        if format == PartFormat::Csv {
            let schema = self.schema()?;
            shoal_worker::io::text_parts::check_csv_schema(&schema)?;
        }
        let storage = self.client.storage();
        let dir = storage.resolve(location)?;
        if storage.head(&dir.url).await.is_ok() {
            return Err(Error::Invalid(format!(
                "{writer}: {location} is a file; an output location is a directory (or prefix) \
                 that will hold part-*.{} and _SUCCESS",
                format.extension()
            )));
        }
        let probe = dir.join(&format!(".shoal-probe-{}", uuid::Uuid::new_v4().simple())).url;
        let not_writable =
            |e: shoal_worker::Error| Error::Invalid(format!("{writer}: cannot write to {location}: {e}"));
        storage.put(&probe, Bytes::new()).await.map_err(not_writable)?;
        storage.delete(&probe).await.map_err(not_writable)
    }

    /// Writes the result as Parquet parts `part-00000.parquet`, … under `location`, then a
    /// `_SUCCESS` manifest listing them. A reader that trusts `_SUCCESS` never sees a partial
    /// result: an earlier `_SUCCESS` is removed before any part is rewritten. Re-running
    /// rewrites identical parts, and reruns only the tasks whose parts are missing or changed.
    pub async fn to_parquet(&self, location: &str) -> Result<WriteSummary> {
        self.write_with(location, PartFormat::Parquet, Events::new()).await
    }

    /// [`to_parquet`](Self::to_parquet), publishing the run's events to `events`' subscribers.
    pub async fn to_parquet_with(&self, location: &str, events: Events) -> Result<WriteSummary> {
        self.write_with(location, PartFormat::Parquet, events).await
    }

    /// Writes the result as CSV parts `part-00000.csv`, … (a header line each, as pandas'
    /// `to_csv` writes them: missing values as empty fields, floats that read back exactly,
    /// `True`/`False`, ISO dates and timestamps) under `location`, then `_SUCCESS`; with the
    /// guarantees of [`to_parquet`](Self::to_parquet). A nested column is refused before any
    /// task runs.
    pub async fn to_csv(&self, location: &str) -> Result<WriteSummary> {
        self.write_with(location, PartFormat::Csv, Events::new()).await
    }

    /// Writes the result as JSON lines parts `part-00000.jsonl`, … (one object per row, every
    /// column present, `null` when missing, as pandas' `to_json(orient="records",
    /// lines=True)`) under `location`, then `_SUCCESS`; with the guarantees of
    /// [`to_parquet`](Self::to_parquet).
    pub async fn to_json(&self, location: &str) -> Result<WriteSummary> {
        self.write_with(location, PartFormat::JsonLines, Events::new()).await
    }

    /// Writes the result in `format` under `location` (see [`to_parquet`](Self::to_parquet)),
    /// publishing the run's events to `events`' subscribers.
    pub async fn write_with(
        &self,
        location: &str,
        format: PartFormat,
        events: Events,
    ) -> Result<WriteSummary> {
        let storage = self.client.storage();
        let dir = storage.resolve(location)?;
        let graph = lower(&self.optimized()?, &Target::Parts { url: dir.url.clone(), format })?;
        self.check_output(location, format).await?;
        results::write_parts(&self.client, std::sync::Arc::new(graph), &self.modules, &dir.url, events).await
    }
}
