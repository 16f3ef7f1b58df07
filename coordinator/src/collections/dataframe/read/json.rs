//! `read_json` for DataFrames: JSON lines (`lines = true`, the default; large files in blocks
//! like CSV) or one JSON array of objects per file. The schema is inferred from samples of the
//! first, middle and last files together (so a key only a later file has is a column, and a
//! field that is an integer in one file and a float in another is a float), or given with
//! `dtype`; nested objects are structs.

use super::types::with_types;
use super::{DEFAULT_BLOCKSIZE, SAMPLE_BYTES, list_some, sampled, text_partitions};
use crate::client::Client;
use crate::collections::dataframe::DataFrame;
use crate::collections::dataframe::plan::ScanNode;
use crate::error::{Error, Result};
use arrow::datatypes::DataType;
use shoal_protocol::{FileFormat, JsonOptions};
use shoal_worker::io::json as worker_json;
use shoal_worker::io::textfile::{self, Quoting};
use std::collections::HashMap;
use std::sync::Arc;

/// Everything `read_json` takes.
#[derive(Debug, Clone, Default)]
pub struct JsonRead {
    pub options: JsonOptions,
    /// Field types given instead of inferred.
    pub dtype: Vec<(String, DataType)>,
    /// As for CSV: uncompressed JSON-lines files larger than this are read in blocks.
    pub blocksize: Option<u64>,
}

impl Client {
    /// Lazily reads JSON files: JSON lines, or JSON arrays with `lines: false`.
    pub async fn read_json(&self, location: &str, read: JsonRead) -> Result<DataFrame> {
        let options = &read.options;
        worker_json::splittable("", options)?;
        let objects = list_some(self, location).await?;
        let mut text = Vec::new();
        for object in sampled(&objects) {
            // A JSON array is only valid whole: its files are sampled whole.
            let limit = if options.lines { SAMPLE_BYTES } else { object.size };
            let (sample, _) = textfile::sample(
                self.storage(),
                object,
                options.encoding.as_deref(),
                0,
                &Quoting::LINES,
                limit,
            )
            .await?;
            // Each sample on its own first, so a line that is not JSON is named in its file.
            worker_json::infer(&object.url, &sample, options.lines, 10_000)?;
            if options.lines {
                text.extend_from_slice(&sample);
                if !text.ends_with(b"\n") {
                    text.push(b'\n');
                }
            } else {
                // One array of every sampled file's elements.
                let inner = sample.trim_ascii();
                let inner = inner.strip_prefix(b"[").and_then(|s| s.strip_suffix(b"]")).ok_or_else(|| {
                    Error::Input {
                        url: object.url.clone(),
                        message: "not a JSON array (for JSON lines, say lines = true)".into(),
                    }
                })?;
                if !inner.trim_ascii().is_empty() {
                    text.push(if text.is_empty() { b'[' } else { b',' });
                    text.extend_from_slice(inner);
                }
            }
        }
        if !options.lines {
            text.extend_from_slice(if text.is_empty() { b"[]" } else { b"]" });
        }
        let schema = worker_json::infer(&objects[0].url, &text, options.lines, 10_000).map_err(|e| {
            Error::Input { url: location.to_string(), message: format!("cannot infer a JSON schema: {e}") }
        })?;
        if schema.fields().is_empty() {
            return Err(Error::Input {
                url: location.to_string(),
                message: "no JSON objects with fields in the sampled files".into(),
            });
        }
        let schema = with_types(schema, &read.dtype)?;
        let blocksize = read.blocksize.unwrap_or(DEFAULT_BLOCKSIZE);
        let (files, partitions) =
            text_partitions(objects, blocksize, |o| Ok(worker_json::splittable(&o.url, options)?))?;
        Ok(self.scan(ScanNode {
            source: location.to_string(),
            format: FileFormat::Json(read.options),
            file_schema: Arc::new(schema),
            files,
            partitions,
            projection: None,
            predicate: None,
            int_ranges: HashMap::new(),
            string_values: Default::default(),
            schema_on_read: true,
        }))
    }
}
