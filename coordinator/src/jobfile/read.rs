//! Reads: `read_parquet` (with `schema = "union"`, `coalesce = false`), `read_csv` (with pandas' keys: `header`,
//! `delimiter`, `na_values`, `keep_default_na`, `dtype`, `usecols`, `parse_dates`, `quotechar`,
//! `escapechar`, `comment`, `skiprows`, `encoding`, and `blocksize`; `na_values` a list or per column) and `read_json` (`lines`,
//! `encoding`, `dtype`, `blocksize`). A read has no input.

use super::env::Env;
use crate::collections::dataframe::DataFrame;
use crate::collections::dataframe::read::{CsvRead, JsonRead, ParquetRead, SchemaMode, parse_dtype};
use crate::error::{Error, Result};
use crate::units::parse_size;
use arrow::datatypes::DataType;
use serde::Deserialize;
use shoal_protocol::{CsvOptions, JsonOptions};
use std::collections::BTreeMap;

/// `read_parquet = "data/*.parquet"`: the Parquet files at a location (a glob, a folder, a URL).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParquet {
    pub read_parquet: String,
    /// `"union"` reads files whose schemas evolved (added columns, widened types) as one.
    pub schema: Option<String>,
    /// `false` reads each file as a partition of its own (large files still split), instead of
    /// coalescing small ones (default true).
    pub coalesce: Option<bool>,
}

impl ReadParquet {
    pub async fn apply(&self, env: &Env<'_>) -> Result<DataFrame> {
        let schema = self.schema.as_deref().map(SchemaMode::parse).transpose()?.unwrap_or_default();
        let read = ParquetRead { schema, coalesce: self.coalesce };
        env.client().read_parquet_opts(&env.location(&self.read_parquet), read).await
    }
}

/// A size as a job file gives it: a number of bytes, or text like `"64MB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self, key: &str) -> Result<u64> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => parse_size(t).map_err(|e| Error::Invalid(format!("{key}: {e}"))),
        }
    }
}

/// `read_csv = "trips/*.csv"`, with pandas' options where the files need them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadCsv {
    pub read_csv: String,
    /// Whether the first line is a header (default true).
    pub header: Option<bool>,
    /// Field delimiter (default `,`).
    pub delimiter: Option<char>,
    /// More strings read as missing, as pandas' `na_values`: a list for every column, or a
    /// table of lists for some (`{ x = ["-999"], code = ["?"] }`).
    pub na_values: Option<NaValues>,
    /// Whether pandas' default missing-value strings (`NA`, `N/A`, `null`, empty, …) are read
    /// as missing too (default true, as in pandas).
    pub keep_default_na: Option<bool>,
    /// Column types instead of the inferred ones: `{ zip = "string", fare = "float64" }`.
    pub dtype: Option<BTreeMap<String, String>>,
    /// Only these columns.
    pub usecols: Option<Vec<String>>,
    /// Columns read as timestamps.
    pub parse_dates: Option<Vec<String>>,
    /// The quote character (default `"`).
    pub quotechar: Option<char>,
    /// The character that escapes the next one inside quotes.
    pub escapechar: Option<char>,
    /// Lines starting with this character are skipped.
    pub comment: Option<char>,
    /// Lines skipped at the start of each file.
    pub skiprows: Option<usize>,
    /// Text encoding (default UTF-8): `latin-1`, `cp1252`, `utf-16`, …
    pub encoding: Option<String>,
    /// Block size for large uncompressed files (default `"64MB"`; 0 reads files whole).
    pub blocksize: Option<Size>,
}

/// `na_values`: for every column, or per column.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NaValues {
    All(Vec<String>),
    PerColumn(BTreeMap<String, Vec<String>>),
}

/// A one-byte character option, or an error naming its key.
fn byte(key: &str, c: Option<char>) -> Result<Option<u8>> {
    c.map(|c| {
        u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
            Error::Invalid(format!("read_csv: {key} '{c}' is not a one-byte (ASCII) character"))
        })
    })
    .transpose()
}

fn types(dtype: &Option<BTreeMap<String, String>>) -> Result<Vec<(String, DataType)>> {
    dtype.iter().flatten().map(|(column, name)| Ok((column.clone(), parse_dtype(name)?))).collect()
}

impl ReadCsv {
    pub fn options(&self) -> Result<CsvOptions> {
        let mut null_values: Vec<String> = match self.keep_default_na {
            Some(false) => vec![],
            _ => shoal_protocol::PANDAS_NA.iter().map(|s| s.to_string()).collect(),
        };
        let mut column_null_values = BTreeMap::new();
        match &self.na_values {
            None => {}
            Some(NaValues::All(values)) => null_values.extend(values.iter().cloned()),
            Some(NaValues::PerColumn(columns)) => column_null_values = columns.clone(),
        }
        Ok(CsvOptions {
            has_header: self.header.unwrap_or(true),
            delimiter: byte("delimiter", self.delimiter)?.unwrap_or(b','),
            null_values,
            quote: byte("quotechar", self.quotechar)?.unwrap_or(b'"'),
            escape: byte("escapechar", self.escapechar)?,
            comment: byte("comment", self.comment)?,
            skip_rows: self.skiprows.unwrap_or(0),
            encoding: self.encoding.clone(),
            column_null_values,
        })
    }

    pub async fn apply(&self, env: &Env<'_>) -> Result<DataFrame> {
        let read = CsvRead {
            options: self.options()?,
            dtype: types(&self.dtype)?,
            parse_dates: self.parse_dates.clone().unwrap_or_default(),
            usecols: self.usecols.clone(),
            blocksize: self.blocksize.as_ref().map(|b| b.bytes("blocksize")).transpose()?,
        };
        env.client().read_csv_with(&env.location(&self.read_csv), read).await
    }
}

/// `read_json = "logs/*.jsonl"`: JSON lines (or, with `lines = false`, JSON arrays).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadJson {
    pub read_json: String,
    /// One object per line (default true); false: each file is one JSON array of objects.
    pub lines: Option<bool>,
    /// Field types instead of the inferred ones.
    pub dtype: Option<BTreeMap<String, String>>,
    /// Text encoding (default UTF-8).
    pub encoding: Option<String>,
    /// Block size for large uncompressed JSON-lines files (default `"64MB"`).
    pub blocksize: Option<Size>,
}

impl ReadJson {
    pub async fn apply(&self, env: &Env<'_>) -> Result<DataFrame> {
        let read = JsonRead {
            options: JsonOptions { lines: self.lines.unwrap_or(true), encoding: self.encoding.clone() },
            dtype: types(&self.dtype)?,
            blocksize: self.blocksize.as_ref().map(|b| b.bytes("blocksize")).transpose()?,
        };
        env.client().read_json(&env.location(&self.read_json), read).await
    }
}
