//! Reads: `read_parquet` and `read_csv` (with `header` and `delimiter`). A read has no input.

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
}

impl ReadCsv {
    pub fn options(&self) -> Result<CsvOptions> {
        let delimiter = match self.delimiter {
            None => b',',
            Some(c) => u8::try_from(c).map_err(|_| {
                Error::Invalid(format!("read_csv: delimiter '{c}' is not a one-byte character"))
            })?,
        };
        Ok(CsvOptions { has_header: self.header.unwrap_or(true), delimiter })
    }

    pub async fn apply(&self, env: &Env<'_>) -> Result<DataFrame> {
        env.client().read_csv(&env.location(&self.read_csv), self.options()?).await
    }
}
