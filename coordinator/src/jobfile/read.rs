//! Reads: `read_parquet` and `read_csv` (with `header`, `delimiter`, `na_values`,
//! `keep_default_na` and `dtype`). A read has no input.

use super::env::Env;
use crate::collections::dataframe::DataFrame;
use crate::error::{Error, Result};
use serde::Deserialize;
use shoal_protocol::CsvOptions;

/// `read_parquet = "data/*.parquet"`: the Parquet files at a location (a glob, a folder, a URL).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParquet {
    pub read_parquet: String,
}

impl ReadParquet {
    pub async fn apply(&self, env: &Env<'_>) -> Result<DataFrame> {
        env.client().read_parquet(&env.location(&self.read_parquet)).await
    }
}

/// `read_csv = "trips/*.csv"`, with `header = false` and `delimiter = ";"` if need be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadCsv {
    pub read_csv: String,
    /// Whether the first line is a header (default true).
    pub header: Option<bool>,
    /// Field delimiter (default `,`).
    pub delimiter: Option<char>,
    /// More strings read as missing, as pandas' `na_values` (a list).
    pub na_values: Option<Vec<String>>,
    /// Whether pandas' default missing-value strings (`NA`, `N/A`, `null`, empty, …) are read
    /// as missing too (default true, as in pandas).
    pub keep_default_na: Option<bool>,
    /// Column types instead of the inferred ones: `{ zip = "string", fare = "float64" }`.
    pub dtype: Option<std::collections::BTreeMap<String, String>>,
}

impl ReadCsv {
    pub fn options(&self) -> Result<CsvOptions> {
        let delimiter = match self.delimiter {
            None => b',',
            Some(c) => u8::try_from(c).map_err(|_| {
                Error::Invalid(format!("read_csv: delimiter '{c}' is not a one-byte character"))
            })?,
        };
        let mut null_values: Vec<String> = match self.keep_default_na {
            Some(false) => vec![],
            _ => shoal_protocol::PANDAS_NA.iter().map(|s| s.to_string()).collect(),
        };
        null_values.extend(self.na_values.iter().flatten().cloned());
        Ok(CsvOptions { has_header: self.header.unwrap_or(true), delimiter, null_values })
    }

    pub async fn apply(&self, env: &Env<'_>) -> Result<DataFrame> {
        let mut types = Vec::new();
        for (column, name) in self.dtype.iter().flatten() {
            types.push((column.clone(), crate::collections::dataframe::read::parse_dtype(name)?));
        }
        env.client().read_csv_typed(&env.location(&self.read_csv), self.options()?, &types).await
    }
}
