//! Reading JSON as a table: JSON lines (one object per line, read in blocks of large files
//! like CSV) or a file holding one JSON array of objects. Nested objects become structs and
//! arrays lists, as the schema says; keys the schema does not name are ignored, and a line that
//! is not JSON is named by file and line.

use super::loaded::Loaded;
use super::storage::Storage;
use super::textfile::{self, Compression, Quoting, TextEncoding};
use crate::error::{Error, Result};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use shoal_protocol::{FileSlice, JsonOptions};
use std::io::Cursor;
use std::sync::Arc;

const BATCH_ROWS: usize = 64 * 1024;

/// Whether a file of these options may be read in blocks: JSON lines, uncompressed, in an
/// encoding whose line breaks are `\n` bytes.
pub fn splittable(url: &str, opts: &JsonOptions) -> Result<bool> {
    let encoding = TextEncoding::from_label(opts.encoding.as_deref())?;
    Ok(opts.lines && Compression::of(url).splittable() && encoding.ascii_compatible())
}

/// The schema of JSON text, inferred from its first `max_records` records.
pub fn infer(url: &str, text: &[u8], lines: bool, max_records: usize) -> Result<Schema> {
    let inferred = if lines {
        arrow::json::reader::infer_json_schema(Cursor::new(text), Some(max_records)).map(|(s, _)| s)
    } else {
        let values = array_values(url, text)?;
        arrow::json::reader::infer_json_schema_from_iterator(values.iter().take(max_records).map(Ok))
    };
    inferred.map_err(|e| located(url, text, lines, e))
}

/// Reads one JSON file or block as `schema`, keeping the `projection` columns.
pub async fn read(
    storage: &Storage,
    file: &FileSlice,
    opts: &JsonOptions,
    schema: Option<SchemaRef>,
    projection: Option<&[String]>,
) -> Result<Loaded> {
    let url = &file.object.url;
    let fetched = textfile::fetch(storage, file, opts.encoding.as_deref(), &Quoting::LINES, 0).await?;
    let (text, bytes_read, requests) = (fetched.utf8, fetched.bytes_read, fetched.requests);
    let schema = match schema {
        Some(s) => s,
        None => Arc::new(infer(url, &text, opts.lines, usize::MAX)?),
    };
    // The reader decodes only the fields of the schema it is given: project by narrowing it.
    let schema = match projection {
        Some(cols) => {
            let mut ix = Vec::with_capacity(cols.len());
            for c in cols {
                ix.push(schema.index_of(c).map_err(|_| Error::Schema(format!("{url}: no column '{c}'")))?);
            }
            Arc::new(schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?)
        }
        None => schema,
    };
    let builder = arrow::json::ReaderBuilder::new(schema.clone()).with_batch_size(BATCH_ROWS);
    let batches: Vec<RecordBatch> = if opts.lines {
        let reader = builder.build(Cursor::new(&text[..])).map_err(|e| located(url, &text, true, e))?;
        reader.collect::<std::result::Result<_, _>>().map_err(|e| located(url, &text, true, e))?
    } else {
        let values = array_values(url, &text)?;
        let mut decoder = builder.build_decoder().map_err(|e| located(url, &text, false, e))?;
        let mut batches = Vec::new();
        for chunk in values.chunks(BATCH_ROWS) {
            decoder.serialize(chunk).map_err(|e| located(url, &text, false, e))?;
            batches.extend(decoder.flush().map_err(|e| located(url, &text, false, e))?);
        }
        batches
    };
    Ok(Loaded { schema, batches, bytes_read, objects_read: 1, requests, records_skipped: 0 })
}

/// The elements of a file holding one JSON array.
fn array_values(url: &str, text: &[u8]) -> Result<Vec<serde_json::Value>> {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(values)) => Ok(values),
        Ok(_) => Err(Error::Corrupt {
            url: url.to_string(),
            message: "not a JSON array of objects (for one object per line, read it with lines = true)"
                .into(),
        }),
        Err(e) => Err(Error::Corrupt {
            url: url.to_string(),
            message: format!("not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
        }),
    }
}

/// A decoding error with its place: the first line that is not JSON (JSON lines), or the
/// reader's own message and the way out (`dtype`) for a value that does not fit its field.
fn located(url: &str, text: &[u8], lines: bool, e: ArrowError) -> Error {
    if lines {
        let bad = text.split(|&b| b == b'\n').enumerate().find_map(|(i, line)| {
            let line = line.trim_ascii();
            if line.is_empty() {
                return None;
            }
            serde_json::from_slice::<serde_json::Value>(line).err().map(|err| (i + 1, err))
        });
        if let Some((line, err)) = bad {
            return Error::Corrupt {
                url: url.to_string(),
                message: format!("line {line}: not valid JSON: {err}"),
            };
        }
    }
    Error::BadValue {
        url: url.to_string(),
        message: format!(
            "{e}; if a field holds values of other types than the sample showed, give its type: \
             dtype = {{ field = \"string\" }}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn nested_objects_are_structs_and_bad_lines_are_named() {
        let text =
            b"{\"a\": 1, \"p\": {\"x\": 1.5, \"tags\": [\"u\"]}}\n\n{\"a\": null, \"b\": \"\xc3\xa9\"}\n";
        let schema = infer("f.jsonl", text, true, 100).unwrap();
        assert_eq!(schema.field_with_name("a").unwrap().data_type(), &DataType::Int64);
        assert!(matches!(schema.field_with_name("p").unwrap().data_type(), DataType::Struct(_)));
        let array = infer("f.json", b"[{\"a\": 1}, {\"a\": 2.5}]", false, 100).unwrap();
        assert_eq!(array.field_with_name("a").unwrap().data_type(), &DataType::Float64);
        let err = infer("f.jsonl", b"{\"a\": 1}\n{\"a\": 2\n", true, 100).unwrap_err().to_string();
        assert!(err.contains("f.jsonl: cannot decode: line 2: not valid JSON"), "{err}");
        let err = infer("f.json", b"{\"a\": 1}", false, 100).unwrap_err().to_string();
        assert!(err.contains("lines = true"), "{err}");
    }
}
