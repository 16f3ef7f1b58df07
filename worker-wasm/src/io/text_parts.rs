//! Writing user-visible output as text: CSV and JSON lines, formatted as pandas writes them so
//! that pandas, DuckDB and shoal's own readers read back the values that were written.
//!
//! The encoders are arrow's (`arrow::csv::Writer`, `arrow::json::LineDelimitedWriter`); what is
//! written here by hand is only the choice of text for the types whose arrow default differs
//! from pandas', done column by column because arrow's writers take one timestamp format for
//! every column and pandas' digits depend on each column's unit:
//!
//! | type | CSV (`to_csv`) | JSON lines (`to_json`) |
//! |---|---|---|
//! | null (any type) | empty field (pandas' `na_rep=''`) | `null`, written for every column |
//! | float | shortest text that parses back to the same value (`0.1`, `1e300`, `-0.0`); `NaN`, `inf`, `-inf` | the same; `NaN` and ±inf are `null` (JSON has no such numbers; pandas writes `null` too) |
//! | boolean | `True` / `False` (as pandas writes them; arrow, DuckDB and pandas read them as booleans) | `true` / `false` |
//! | date | `2024-01-31` | `"2024-01-31"` |
//! | timestamp | `2024-01-31 12:00:00`, with 3, 6 or 9 fraction digits for milli-, micro- and nanosecond columns, and `+00:00` when it has a time zone | the same, quoted: `"2024-01-31 12:00:00.000000"` |
//!
//! CSV has a header line; a field holding the delimiter, a quote or a line break is quoted,
//! quotes doubled (RFC 4180, as pandas' `QUOTE_MINIMAL`). An empty string is written as an empty
//! field, as pandas writes it, so it reads back as missing. An empty partition is a header-only
//! CSV part, or an empty JSON lines part.
//!
//! Timestamps in JSON keep the space between date and time (ISO 8601 as RFC 3339 allows it)
//! rather than pandas' `date_format="iso"` `T`: DuckDB's `read_json` detects
//! `2024-01-31 12:00:00.000000` as a timestamp but leaves `2024-01-31T12:00:00.000000` text,
//! and pandas parses either.

use crate::error::{Error, Result};
use arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use std::sync::Arc;

/// Which text format a column is turned into.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Csv,
    Json,
}

/// Refuses a schema CSV cannot hold: a nested column (struct, list, map) has no CSV form.
pub fn check_csv_schema(schema: &Schema) -> Result<()> {
    match schema.fields().iter().find(|f| f.data_type().is_nested()) {
        Some(f) => Err(Error::Schema(format!(
            "to_csv: column '{}' is {}, which CSV cannot hold; write it with to_json or \
             to_parquet, or select the other columns",
            f.name(),
            f.data_type()
        ))),
        None => Ok(()),
    }
}

/// One CSV part: a header line, then the rows. Deterministic: a retry writes identical bytes.
pub fn encode_csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    check_csv_schema(schema)?;
    let arrow = |source| Error::Arrow { context: "encoding a CSV part", source };
    let mut writer =
        arrow::csv::WriterBuilder::new().with_header(true).with_null(String::new()).build(Vec::new());
    // arrow writes the header with the first batch: an empty partition still gets one.
    let empty = [RecordBatch::new_empty(schema.clone())];
    let batches = if batches.is_empty() { &empty[..] } else { batches };
    for b in batches {
        writer.write(&as_text(b, Style::Csv).map_err(arrow)?).map_err(arrow)?;
    }
    Ok(Bytes::from(writer.into_inner()))
}

/// One JSON lines part: one object per row, every column present (`null` when missing).
pub fn encode_json_lines(batches: &[RecordBatch]) -> Result<Bytes> {
    let arrow = |source| Error::Arrow { context: "encoding a JSON lines part", source };
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
    for b in batches {
        writer.write(&as_text(b, Style::Json).map_err(arrow)?).map_err(arrow)?;
    }
    writer.finish().map_err(arrow)?;
    Ok(Bytes::from(writer.into_inner()))
}

/// Bag items (the [`ITEM_COLUMN`](shoal_protocol::ITEM_COLUMN) of JSON text) as lines: a
/// string item as its text, any other as its JSON; gzip-compressed when `gzip`.
pub fn encode_item_lines(batches: &[RecordBatch], gzip: bool) -> Result<Bytes> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in batches {
        let column = b
            .column_by_name(shoal_protocol::ITEM_COLUMN)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::InvalidTask("a text part of a table that holds no items".into()))?;
        for i in 0..column.len() {
            let text = column.value(i);
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::String(s)) => out.extend_from_slice(s.as_bytes()),
                _ => out.extend_from_slice(text.as_bytes()),
            }
            out.push(b'\n');
        }
    }
    if !gzip {
        return Ok(Bytes::from(out));
    }
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&out)
        .and_then(|_| encoder.finish())
        .map(Bytes::from)
        .map_err(|e| Error::Execution(format!("compressing a text part: {e}")))
}

/// `batch` with the columns whose text `style` chooses itself turned into strings; the others
/// are left to arrow's writers.
fn as_text(batch: &RecordBatch, style: Style) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match column_text(column, style)? {
            Some(text) => {
                fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
                columns.push(text);
            }
            None => {
                fields.push(field.clone());
                columns.push(column.clone());
            }
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, batch.schema().metadata().clone()));
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema, columns, &options)
}

/// The text of `column` when `style` writes its type differently from arrow's default.
fn column_text(
    column: &ArrayRef,
    style: Style,
) -> std::result::Result<Option<ArrayRef>, arrow::error::ArrowError> {
    match column.data_type() {
        DataType::Boolean if style == Style::Csv => {
            let Some(b) = column.as_any().downcast_ref::<BooleanArray>() else {
                return Ok(None);
            };
            let text: StringArray = b.iter().map(|v| v.map(|v| if v { "True" } else { "False" })).collect();
            Ok(Some(Arc::new(text)))
        }
        DataType::Timestamp(unit, tz) => {
            let format = timestamp_format(*unit, tz.is_some());
            let options = FormatOptions::new()
                .with_timestamp_format(Some(&format))
                .with_timestamp_tz_format(Some(&format));
            formatted(column, &options).map(Some)
        }
        DataType::Date32 | DataType::Date64 => {
            let options = FormatOptions::new()
                .with_date_format(Some("%Y-%m-%d"))
                .with_datetime_format(Some("%Y-%m-%d"));
            formatted(column, &options).map(Some)
        }
        _ => Ok(None),
    }
}

/// Each value of `column` as arrow formats it with `options`; nulls stay null.
fn formatted(
    column: &ArrayRef,
    options: &FormatOptions<'_>,
) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let formatter = ArrayFormatter::try_new(column.as_ref(), options)?;
    let text: StringArray = (0..column.len())
        .map(|i| if column.is_null(i) { None } else { Some(formatter.value(i).to_string()) })
        .collect();
    Ok(Arc::new(text))
}

/// pandas' timestamp text (`to_csv`): date and time apart by a space; as many fraction digits
/// as the unit holds; the offset (`+00:00`) when the column has a time zone.
fn timestamp_format(unit: TimeUnit, zoned: bool) -> String {
    let fraction = match unit {
        TimeUnit::Second => "",
        TimeUnit::Millisecond => "%.3f",
        TimeUnit::Microsecond => "%.6f",
        TimeUnit::Nanosecond => "%.9f",
    };
    let offset = if zoned { "%:z" } else { "" };
    format!("%Y-%m-%d %H:%M:%S{fraction}{offset}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Date32Array, Float64Array, Int64Array, TimestampMicrosecondArray, TimestampSecondArray,
    };

    fn batch() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("i", Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)]))),
            ("f", Arc::new(Float64Array::from(vec![Some(0.1), Some(1e300), None]))),
            ("s", Arc::new(StringArray::from(vec![Some("a,b"), Some("say \"hi\"\nbye"), None]))),
            ("b", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]))),
            ("d", Arc::new(Date32Array::from(vec![Some(19_753), None, Some(0)]))),
            ("t", Arc::new(TimestampMicrosecondArray::from(vec![Some(1_500_000), None, Some(-1)]))),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn text(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn csv_is_written_as_pandas_writes_it() {
        let b = batch();
        let csv = text(encode_csv(&b.schema(), &[b]).unwrap());
        assert_eq!(
            csv,
            "i,f,s,b,d,t\n\
             1,0.1,\"a,b\",True,2024-01-31,1970-01-01 00:00:01.500000\n\
             ,1e300,\"say \"\"hi\"\"\nbye\",False,,\n\
             -3,,,,1970-01-01,1969-12-31 23:59:59.999999\n"
        );
    }

    #[test]
    fn json_lines_spell_every_null_and_iso_times() {
        let b = batch();
        let json = text(encode_json_lines(&[b]).unwrap());
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], r#"{"i":null,"f":1.0e300,"s":"say \"hi\"\nbye","b":false,"d":null,"t":null}"#);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["t"], "1970-01-01 00:00:01.500000");
        assert_eq!(first["d"], "2024-01-31");
        assert_eq!(first["b"], true);
    }

    #[test]
    fn floats_round_trip_and_non_finite_json_is_null() {
        let values = [0.1, 1.0 / 3.0, -0.0, 1e300, 5e-324, f64::MAX, 123456789.125];
        let b =
            RecordBatch::try_from_iter([("f", Arc::new(Float64Array::from(values.to_vec())) as ArrayRef)])
                .unwrap();
        let csv = text(encode_csv(&b.schema(), std::slice::from_ref(&b)).unwrap());
        let parsed: Vec<f64> = csv.lines().skip(1).map(|l| l.parse().unwrap()).collect();
        assert_eq!(parsed.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values.map(f64::to_bits));
        let json = text(encode_json_lines(&[b]).unwrap());
        for (line, v) in json.lines().zip(values) {
            let number = line.strip_prefix("{\"f\":").and_then(|l| l.strip_suffix('}')).unwrap();
            assert_eq!(number.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{line}");
        }
        let odd = Float64Array::from(vec![f64::NAN, f64::INFINITY]);
        let b = RecordBatch::try_from_iter([("f", Arc::new(odd) as ArrayRef)]).unwrap();
        assert_eq!(text(encode_json_lines(&[b]).unwrap()), "{\"f\":null}\n{\"f\":null}\n");
    }

    #[test]
    fn empty_partitions_write_a_header_or_nothing() {
        let b = batch();
        assert_eq!(text(encode_csv(&b.schema(), &[]).unwrap()), "i,f,s,b,d,t\n");
        assert_eq!(text(encode_csv(&b.schema(), &[b.slice(0, 0)]).unwrap()), "i,f,s,b,d,t\n");
        assert!(encode_json_lines(&[]).unwrap().is_empty());
    }

    #[test]
    fn zoned_seconds_carry_their_offset_and_nested_columns_are_refused() {
        let t = TimestampSecondArray::from(vec![Some(0)]).with_timezone("UTC");
        let b = RecordBatch::try_from_iter([("t", Arc::new(t) as ArrayRef)]).unwrap();
        assert_eq!(text(encode_csv(&b.schema(), &[b]).unwrap()), "t\n1970-01-01 00:00:00+00:00\n");
        let list =
            arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(vec![Some(
                vec![Some(1)],
            )]);
        let b = RecordBatch::try_from_iter([("xs", Arc::new(list) as ArrayRef)]).unwrap();
        let err = encode_csv(&b.schema(), &[b]).unwrap_err().to_string();
        assert!(err.contains("column 'xs'") && err.contains("to_json"), "{err}");
    }
}
