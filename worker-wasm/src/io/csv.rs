//! Reading CSV as pandas reads it: missing-value strings, quoting, escapes, comments, skipped
//! lines, encodings, compressed files and blocks of large ones ([`textfile`](super::textfile)),
//! and a value that does not fit its column named by file, line, column and value.

use super::loaded::Loaded;
use super::storage::Storage;
use super::textfile::{self, Compression, Quoting, TextEncoding};
use crate::error::{Error, Result};
use arrow::array::{Array, StringArray};
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use shoal_protocol::{CsvOptions, FileSlice, ObjectRef};
use std::io::Cursor;
use std::sync::Arc;

/// The pattern of a CSV's missing fields: any of `opts.null_values`, whole (`None`: no field is
/// missing, not even an empty one). Used for reading and for schema inference alike, so a
/// column of numbers with `NA` in it is inferred as numbers and read as such.
pub fn null_regex(opts: &CsvOptions) -> Result<Option<regex::Regex>> {
    pattern(&opts.null_values)
}

/// For inference only: the strings missing in any column (a column's own missing values
/// should not make it look like text).
fn any_column_null_regex(opts: &CsvOptions) -> Result<Option<regex::Regex>> {
    let mut all = opts.null_values.clone();
    all.extend(opts.column_null_values.values().flatten().cloned());
    pattern(&all)
}

fn pattern(values: &[String]) -> Result<Option<regex::Regex>> {
    if values.is_empty() {
        return Ok(None);
    }
    let alternatives: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
    let pattern = format!("^(?:{})$", alternatives.join("|"));
    regex::Regex::new(&pattern)
        .map(Some)
        .map_err(|e| Error::Schema(format!("CSV missing values {values:?}: {e}")))
}

/// The dialect of `opts` for inferring a schema: as [`format`], with every column's own
/// missing values missing in all.
pub fn inference_format(opts: &CsvOptions) -> Result<Format> {
    let format = format(&CsvOptions { null_values: vec![], ..opts.clone() }, opts.has_header)?;
    Ok(match any_column_null_regex(opts)? {
        Some(nulls) => format.with_null_regex(nulls),
        None => format,
    })
}

/// The dialect of `opts` as arrow's CSV reader takes it, for reading and inference alike.
/// `header` is whether the text handed to the reader starts with the header line.
pub fn format(opts: &CsvOptions, header: bool) -> Result<Format> {
    let mut format =
        Format::default().with_header(header).with_delimiter(opts.delimiter).with_quote(opts.quote);
    if let Some(escape) = opts.escape {
        format = format.with_escape(escape);
    }
    if let Some(comment) = opts.comment {
        format = format.with_comment(comment);
    }
    if let Some(nulls) = null_regex(opts)? {
        format = format.with_null_regex(nulls);
    }
    Ok(format)
}

/// Where records end in files of this dialect.
pub fn quoting(opts: &CsvOptions) -> Quoting {
    Quoting { delimiter: opts.delimiter, quote: Some(opts.quote), escape: opts.escape, comment: opts.comment }
}

/// A sample of a CSV file for inferring its schema: the UTF-8 text of its first records (from
/// its first `limit` bytes, the header first), and whether a quoted field in them spans lines.
pub async fn sample(
    storage: &Storage,
    object: &ObjectRef,
    opts: &CsvOptions,
    limit: u64,
) -> Result<(Bytes, bool)> {
    textfile::sample(storage, object, opts.encoding.as_deref(), opts.skip_rows, &quoting(opts), limit).await
}

/// Whether a file in this dialect and encoding may be read in blocks.
pub fn splittable(url: &str, opts: &CsvOptions) -> Result<bool> {
    let encoding = TextEncoding::from_label(opts.encoding.as_deref())?;
    Ok(Compression::of(url).splittable() && encoding.ascii_compatible())
}

/// The text of a file (or of one block of it) as UTF-8, ready for the CSV reader: without its
/// skipped lines, decompressed and decoded. Also whether it starts with the header, the byte
/// offset it starts at (for errors), and the bytes and requests it cost.
#[derive(Debug)]
pub struct Text {
    pub utf8: Bytes,
    pub header: bool,
    pub offset: u64,
    pub bytes_read: u64,
    pub requests: u64,
}

/// Fetches and decodes the text of `file` as `opts` describe it.
pub async fn fetch_text(
    storage: &Storage,
    file: &FileSlice,
    opts: &CsvOptions,
    quoting: &Quoting,
) -> Result<Text> {
    let f = textfile::fetch(storage, file, opts.encoding.as_deref(), quoting, opts.skip_rows).await?;
    // Only the file's start has the header.
    let header = f.offset == 0 && opts.has_header;
    Ok(Text { utf8: f.utf8, header, offset: f.offset, bytes_read: f.bytes_read, requests: f.requests })
}

/// Reads one CSV file or block as `schema`, keeping the `projection` columns.
pub async fn read(
    storage: &Storage,
    file: &FileSlice,
    opts: &CsvOptions,
    schema: SchemaRef,
    projection: Option<&[String]>,
) -> Result<Loaded> {
    let url = &file.object.url;
    let text = fetch_text(storage, file, opts, &quoting(opts)).await?;
    // Columns with missing values of their own are read as text, their missing values
    // nulled, then cast to their type.
    let target = schema.clone();
    let schema = as_text(&schema, opts);
    let mut builder = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_format(format(opts, text.header)?)
        .with_batch_size(64 * 1024);
    let out_schema = match projection {
        Some(cols) => {
            let mut ix = Vec::with_capacity(cols.len());
            for c in cols {
                ix.push(schema.index_of(c).map_err(|_| Error::Schema(format!("{url}: no column '{c}'")))?);
            }
            let projected = Arc::new(schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?);
            builder = builder.with_projection(ix);
            projected
        }
        None => schema.clone(),
    };
    let located = |e: ArrowError| locate(url, &text, opts, &schema, e);
    let reader = builder.build(Cursor::new(text.utf8.clone())).map_err(located)?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(located)?;
    let (out_schema, batches) = if opts.column_null_values.is_empty() {
        (out_schema, batches)
    } else {
        column_nulls(url, &text, opts, &target, out_schema, batches)?
    };
    Ok(Loaded {
        schema: out_schema,
        batches,
        bytes_read: text.bytes_read,
        objects_read: 1,
        requests: text.requests,
        records_skipped: 0,
    })
}

/// `schema` with the columns that have missing values of their own as text.
fn as_text(schema: &SchemaRef, opts: &CsvOptions) -> SchemaRef {
    if opts.column_null_values.is_empty() {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match opts.column_null_values.contains_key(f.name()) {
            true => Field::new(f.name(), DataType::Utf8, true),
            false => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Nulls each column's own missing values and casts it to its type in `target`; a value that
/// does not cast is named as a parse error would be.
fn column_nulls(
    url: &str,
    text: &Text,
    opts: &CsvOptions,
    target: &SchemaRef,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| target.field_with_name(f.name()).cloned().unwrap_or_else(|_| f.as_ref().clone()))
        .collect();
    let out_schema = Arc::new(Schema::new(fields));
    let mut rows_before = 0;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in out_schema.fields().iter().zip(batch.columns()) {
            let Some(missing) = opts.column_null_values.get(field.name()) else {
                columns.push(column.clone());
                continue;
            };
            let strings = column.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                Error::InvalidTask(format!("column '{}' was not read as text", field.name()))
            })?;
            let nulled: StringArray =
                strings.iter().map(|v| v.filter(|v| !missing.iter().any(|m| m == v))).collect();
            let cast =
                arrow::compute::cast(&nulled, field.data_type()).map_err(Error::arrow("casting a column"))?;
            // `cast` turns what it cannot read into nulls: a null that was not one is a bad value.
            if let Some(row) = (0..nulled.len()).find(|&i| nulled.is_valid(i) && cast.is_null(i)) {
                let record = rows_before + row + usize::from(text.header);
                let e = ArrowError::ParseError(format!(
                    "Error while parsing value '{}' as type '{}' for column {} at line {record}. Row data: ''",
                    nulled.value(row),
                    field.data_type(),
                    target.index_of(field.name()).unwrap_or_default(),
                ));
                return Err(locate(url, text, opts, target, e));
            }
            columns.push(cast);
        }
        rows_before += batch.num_rows();
        out.push(
            RecordBatch::try_new(out_schema.clone(), columns)
                .map_err(Error::arrow("nulling missing values"))?,
        );
    }
    Ok((out_schema, out))
}

/// A reader error with the place it happened: for a value that does not parse, the file, the
/// line (of the file, or of the block starting at a byte offset), the column and the value,
/// with the way out (`dtype`); other errors with the file's name.
fn locate(url: &str, text: &Text, opts: &CsvOptions, schema: &SchemaRef, e: ArrowError) -> Error {
    // A block read from a guessed record start that was wrong shows as fields that do not
    // line up: say how the file could be read instead.
    let in_block = |message: String| Error::Corrupt {
        url: url.to_string(),
        message: format!(
            "{message} (in the block starting at byte {}; if the file has quoted fields with line breaks, \
             read it whole with blocksize = 0)",
            text.offset
        ),
    };
    let ArrowError::ParseError(message) = &e else {
        return if text.offset > 0 { in_block(e.to_string()) } else { Error::decode(url)(e) };
    };
    // arrow-csv: "Error while parsing value '{v}' as type '{t}' for column {i} at line {n}. …"
    // or "Error parsing column {i} at line {n}: …", where line n counts records from 0 with
    // the header as record 0.
    let parsed = regex::Regex::new(
        r"^(?:Error while parsing value '(?s:(.*?))' as type '([^']*)' for column (\d+) at line (\d+)|Error parsing column (\d+) at line (\d+): (.*))",
    )
    .ok()
    .and_then(|re| {
        let c = re.captures(message)?;
        let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<usize>().ok());
        let column = num(3).or(num(5))?;
        let record = num(4).or(num(6))?;
        let value = c.get(1).map(|m| m.as_str().to_string());
        Some((column, record, value, c.get(7).map(|m| m.as_str().to_string())))
    });
    let Some((column, record, value, detail)) = parsed else {
        return Error::decode(url)(e);
    };
    let field = schema.fields().get(column);
    let name = field.map(|f| f.name().as_str()).unwrap_or("?");
    let data_type = field.map(|f| f.data_type().to_string()).unwrap_or_default();
    // Records count from the header (record 0 when there is one); lines from 1.
    let data_row = if text.header { record } else { record + 1 };
    let at = if text.offset == 0 {
        let skipped = if text.header { opts.skip_rows + 1 } else { opts.skip_rows };
        format!("line {}", data_row + skipped)
    } else {
        format!("record {data_row} of the block starting at byte {}", text.offset)
    };
    let value = match (value, detail) {
        (Some(v), _) => format!("'{v}'"),
        (None, Some(d)) => format!("a value ({d})"),
        (None, None) => "a value".to_string(),
    };
    Error::BadValue {
        url: url.to_string(),
        message: format!(
            "{at}, column '{name}': cannot read {value} as {data_type}; if the column holds other values, \
             give its type: dtype = {{ {name} = \"string\" }} (or another type; inferred types come from a sample of the files)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn a_value_that_does_not_parse_is_named_with_its_line_and_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("fare", DataType::Float64, true),
        ]));
        let opts = CsvOptions { skip_rows: 2, ..CsvOptions::default() };
        let text = Text {
            utf8: Bytes::from_static(b"id,fare\n1,2.5\n2,n/a?\n"),
            header: true,
            offset: 0,
            bytes_read: 0,
            requests: 0,
        };
        let reader = arrow::csv::ReaderBuilder::new(schema.clone())
            .with_format(format(&opts, true).unwrap())
            .build(Cursor::new(text.utf8.clone()))
            .unwrap();
        let err = reader.collect::<std::result::Result<Vec<_>, _>>().unwrap_err();
        let err = locate("file:///t.csv", &text, &opts, &schema, err).to_string();
        // Two skipped lines, the header, then the second data row: line 5 of the file.
        assert!(err.contains("file:///t.csv: line 5, column 'fare': cannot read 'n/a?' as Float64"), "{err}");
        assert!(err.contains("dtype = { fare = \"string\" }"), "{err}");
    }
}
