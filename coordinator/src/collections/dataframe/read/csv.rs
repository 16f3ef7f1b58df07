//! `read_csv` as pandas users expect it: the dialect (`CsvOptions`, which workers read with),
//! and what planning decides — the schema inferred from samples of the first, middle and last
//! files and widened where they disagree, `dtype` overrides, `parse_dates`, `usecols`, and
//! blocks of large files.

use super::types::{widen_schema, with_types};
use super::{DEFAULT_BLOCKSIZE, SAMPLE_BYTES, list_some, sampled, text_partitions};
use crate::client::Client;
use crate::collections::dataframe::DataFrame;
use crate::collections::dataframe::plan::ScanNode;
use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use shoal_protocol::{CsvOptions, FileFormat, ObjectRef};
use shoal_worker::io::csv as worker_csv;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything `read_csv` takes.
#[derive(Debug, Clone, Default)]
pub struct CsvRead {
    /// The dialect: header, delimiter, missing values, quoting, comments, skipped lines,
    /// encoding.
    pub options: CsvOptions,
    /// Column types given instead of inferred (pandas' `dtype`).
    pub dtype: Vec<(String, DataType)>,
    /// Columns read as timestamps (pandas' `parse_dates`); a `date` or `timestamp` in
    /// `dtype` does the same with the type chosen.
    pub parse_dates: Vec<String>,
    /// Only these columns, in the file's order (pandas' `usecols`).
    pub usecols: Option<Vec<String>>,
    /// Uncompressed files larger than this are read in blocks of about this many bytes;
    /// `Some(0)` reads every file whole. Default [`DEFAULT_BLOCKSIZE`].
    pub blocksize: Option<u64>,
}

impl Client {
    /// Lazily reads CSV files. The schema is inferred from samples of the first, middle and
    /// last files (their first MB each), widened where they disagree (integers → floats →
    /// text), as a reader of many files must: the first file alone can be all integers where
    /// a later one has decimals. Large files are read in blocks of 64 MB.
    pub async fn read_csv(&self, location: &str, options: CsvOptions) -> Result<DataFrame> {
        self.read_csv_with(location, CsvRead { options, ..CsvRead::default() }).await
    }

    /// [`read_csv`](Self::read_csv) with the types of some columns given instead of inferred
    /// (pandas' `dtype`): `("zip", DataType::Utf8)` keeps leading zeros.
    pub async fn read_csv_typed(
        &self,
        location: &str,
        options: CsvOptions,
        types: &[(String, DataType)],
    ) -> Result<DataFrame> {
        self.read_csv_with(location, CsvRead { options, dtype: types.to_vec(), ..CsvRead::default() }).await
    }

    /// [`read_csv`](Self::read_csv) with every option of [`CsvRead`].
    pub async fn read_csv_with(&self, location: &str, read: CsvRead) -> Result<DataFrame> {
        let options = &read.options;
        // An unknown encoding fails here, before anything is fetched.
        worker_csv::splittable("", options)?;
        let objects = list_some(self, location).await?;
        let mut schema: Option<(Schema, &str)> = None;
        let mut quoted_breaks = false;
        for object in sampled(&objects) {
            let (inferred, breaks) = self.infer_csv(object, options).await?;
            quoted_breaks |= breaks;
            schema = Some(match schema {
                None => (inferred, object.url.as_str()),
                Some((so_far, from)) => (widen_schema(&so_far, from, &inferred, &object.url)?, from),
            });
        }
        let schema = schema.map(|(s, _)| s).ok_or_else(|| Error::NotFound(location.to_string()))?;
        let mut types = read.dtype.clone();
        for column in &read.parse_dates {
            types.push((column.clone(), DataType::Timestamp(TimeUnit::Microsecond, None)));
        }
        let schema = with_types(schema, &types)?;
        if let Some(column) = options.column_null_values.keys().find(|c| schema.field_with_name(c).is_err()) {
            return Err(Error::Schema(format!(
                "na_values: no column '{column}' (columns: {})",
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let projection = usecols(&schema, read.usecols.as_deref())?;
        // A sample with a quoted line break says the files have them: blocks would need the
        // quoting before them, so these files are read whole.
        let blocksize = if quoted_breaks { 0 } else { read.blocksize.unwrap_or(DEFAULT_BLOCKSIZE) };
        let (files, partitions) =
            text_partitions(objects, blocksize, |o| Ok(worker_csv::splittable(&o.url, options)?))?;
        Ok(self.scan(ScanNode {
            source: location.to_string(),
            format: FileFormat::Csv(read.options),
            file_schema: Arc::new(schema),
            files,
            partitions,
            projection,
            predicate: None,
            int_ranges: HashMap::new(),
            string_values: Default::default(),
            schema_on_read: true,
        }))
    }

    /// The schema of one CSV file, inferred from its first MB, and whether a quoted field in
    /// that sample spans lines.
    async fn infer_csv(&self, object: &ObjectRef, options: &CsvOptions) -> Result<(Schema, bool)> {
        let (text, quoted_breaks) = worker_csv::sample(self.storage(), object, options, SAMPLE_BYTES).await?;
        let format = worker_csv::inference_format(options)?;
        let (schema, _) = format.infer_schema(std::io::Cursor::new(text), Some(10_000)).map_err(|e| {
            Error::Input { url: object.url.clone(), message: format!("cannot infer CSV schema: {e}") }
        })?;
        Ok((schema, quoted_breaks))
    }
}

/// The projection `usecols` asks for, in the file's column order; a name the files lack is an
/// error naming it and the columns there are.
fn usecols(schema: &Schema, usecols: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let Some(wanted) = usecols else { return Ok(None) };
    if let Some(missing) = wanted.iter().find(|c| schema.field_with_name(c).is_err()) {
        return Err(Error::Schema(format!(
            "usecols: no column '{missing}' (columns: {})",
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    if wanted.is_empty() {
        return Err(Error::Invalid("usecols: an empty list keeps no column".into()));
    }
    Ok(Some(schema.fields().iter().map(|f| f.name().clone()).filter(|n| wanted.contains(n)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    #[test]
    fn usecols_keeps_the_files_order_and_names_a_missing_column() {
        let s = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("c", DataType::Int64, true),
        ]);
        let cols = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(usecols(&s, Some(&cols(&["c", "a"]))).unwrap(), Some(cols(&["a", "c"])));
        let err = usecols(&s, Some(&cols(&["z"]))).unwrap_err().to_string();
        assert!(err.contains("no column 'z'") && err.contains("a, b, c"), "{err}");
    }
}
