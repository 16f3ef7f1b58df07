//! Text files as Bag items, one per line: a line of text becomes a JSON string, a line of a
//! JSON-lines file the JSON value it holds (checked, kept as written). Line terminators (`\n`,
//! `\r\n`) are stripped; blank lines of JSON lines are skipped, as JSON-lines readers do. Files
//! are read whole or in the blocks the coordinator cut (at line ends), with compression and
//! encodings as for CSV.

use super::loaded::Loaded;
use super::storage::Storage;
use super::textfile::{self, Quoting};
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use shoal_protocol::{FileSlice, ITEM_COLUMN, LinesOptions};
use std::sync::Arc;

/// The schema of every Bag partition: one UTF-8 column of JSON text.
pub fn item_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(ITEM_COLUMN, DataType::Utf8, false)]))
}

/// Reads one text file or block as items.
pub async fn read(storage: &Storage, file: &FileSlice, opts: &LinesOptions) -> Result<Loaded> {
    let url = &file.object.url;
    let fetched = textfile::fetch(storage, file, opts.encoding.as_deref(), &Quoting::LINES, 0).await?;
    let text = std::str::from_utf8(&fetched.utf8)
        .map_err(|e| Error::Corrupt { url: url.clone(), message: format!("not UTF-8 text: {e}") })?;
    // Lines are numbered from the file's start only when this block is the start.
    let first_line = (fetched.offset == 0).then_some(1);
    let (column, skipped) = items_of(text, opts, url, first_line)?;
    let batch = RecordBatch::try_new(item_schema(), vec![column])
        .map_err(|source| Error::Arrow { context: "building the items of a text file", source })?;
    Ok(Loaded {
        schema: item_schema(),
        batches: vec![batch],
        bytes_read: fetched.bytes_read,
        objects_read: 1,
        requests: fetched.requests,
        records_skipped: skipped,
    })
}

/// The items of `text` and how many lines were skipped as not JSON.
fn items_of(
    text: &str,
    opts: &LinesOptions,
    url: &str,
    first_line: Option<usize>,
) -> Result<(ArrayRef, u64)> {
    let mut items = StringBuilder::with_capacity(text.len() / 32 + 1, text.len() + text.len() / 8);
    let mut skipped = 0;
    if text.is_empty() {
        return Ok((Arc::new(items.finish()), 0));
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut encoded = String::new();
    for (i, line) in body.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !opts.json {
            encoded.clear();
            push_json_string(&mut encoded, line);
            items.append_value(&encoded);
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
            Ok(_) => items.append_value(trimmed),
            Err(_) if opts.skip_errors => skipped += 1,
            Err(e) => {
                let place = match first_line {
                    Some(first) => format!("line {}", first + i),
                    None => format!("line {} of its block", i + 1),
                };
                return Err(Error::Corrupt {
                    url: url.to_string(),
                    message: format!(
                        "{place}: not valid JSON: {e} (read with errors = \"skip\" to skip such lines)"
                    ),
                });
            }
        }
    }
    Ok((Arc::new(items.finish()), skipped))
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaping into a String cannot fail.
    out.push_str(&serde_json::Value::String(s.to_string()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn items(text: &str, json: bool, skip_errors: bool) -> Result<(Vec<String>, u64)> {
        let opts = LinesOptions { json, skip_errors, encoding: None };
        let (column, skipped) = items_of(text, &opts, "mem://x", Some(1))?;
        let column = column.as_string::<i32>();
        Ok(((0..column.len()).map(|i| column.value(i).to_string()).collect(), skipped))
    }

    #[test]
    fn lines_become_json_strings_without_terminators() {
        let (got, _) = items("a\r\nb \"q\"\n\nü\n", false, false).unwrap();
        assert_eq!(got, vec![r#""a""#, r#""b \"q\"""#, r#""""#, r#""ü""#]);
        assert_eq!(items("", false, false).unwrap().0, Vec::<String>::new());
        assert_eq!(items("\n", false, false).unwrap().0, vec![r#""""#]);
        assert_eq!(items("last", false, false).unwrap().0, vec![r#""last""#]);
    }

    #[test]
    fn json_lines_are_checked_and_blank_lines_skipped() {
        let (got, _) = items("{\"a\": 1}\n\n [1,2] \r\n\"s\"\n", true, false).unwrap();
        assert_eq!(got, vec![r#"{"a": 1}"#, "[1,2]", r#""s""#]);
        let err = items("{}\n{oops\n", true, false).unwrap_err().to_string();
        assert!(err.contains("mem://x") && err.contains("line 2"), "{err}");
        let (got, skipped) = items("{}\n{oops\n3\n", true, true).unwrap();
        assert_eq!((got, skipped), (vec!["{}".to_string(), "3".to_string()], 1));
    }
}
