//! Scan planning: `read_parquet` and `read_csv` on a [`Client`] turn a location into a lazy
//! [`DataFrame`] from object metadata only (Parquet footers and statistics, a CSV sample).

use super::DataFrame;
use super::plan::{FileInfo, Plan, ScanNode};
use crate::client::Client;
use crate::error::{Error, Result};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::ObjectStoreExt;
use parquet::arrow::async_reader::AsyncFileReader;
use shoal_protocol::{CsvOptions, FileFormat, FileSlice, ObjectRef};
use shoal_worker::io::reader::{IoCounter, ObjectReader};
use std::collections::HashMap;
use std::sync::Arc;

impl Client {
    /// Lazily reads Parquet files (a path, URL, directory or glob). Reads only footers now:
    /// one partition per file, large files split by row groups toward `partition_bytes`.
    pub async fn read_parquet(&self, location: &str) -> Result<DataFrame> {
        let objects = self.storage().list(location).await?;
        let mut files = Vec::with_capacity(objects.len());
        let mut schema: Option<SchemaRef> = None;
        // Integer columns' (min, max, files with statistics).
        let mut ranges: HashMap<String, (i64, i64, usize)> = HashMap::new();
        let mut empty_files = 0;
        for object in objects {
            let loc = self.storage().resolve(&object.url)?;
            let mut reader = ObjectReader::new(
                loc.store.clone(),
                loc.path.clone(),
                object.size,
                Arc::new(IoCounter::default()),
            );
            let meta = reader.get_metadata(None).await.map_err(|e| Error::Input {
                url: object.url.clone(),
                message: format!("not a readable Parquet file: {e}"),
            })?;
            let file_schema = Arc::new(
                parquet::arrow::parquet_to_arrow_schema(
                    meta.file_metadata().schema_descr(),
                    meta.file_metadata().key_value_metadata(),
                )
                .map_err(|e| Error::Input { url: object.url.clone(), message: e.to_string() })?,
            );
            match &schema {
                None => schema = Some(file_schema),
                Some(s) if s.fields() != file_schema.fields() => {
                    return Err(Error::Schema(format!(
                        "{}: schema differs from the first file of {location}:\n  first: {}\n  this:  {}",
                        object.url,
                        field_list(s),
                        field_list(&file_schema)
                    )));
                }
                Some(_) => {}
            }
            let row_groups = meta
                .row_groups()
                .iter()
                .map(|rg| (rg.compressed_size().max(0) as u64, rg.num_rows().max(0) as u64))
                .collect();
            // A file without rows has no values to bound: it agrees with any range.
            if meta.file_metadata().num_rows() == 0 {
                empty_files += 1;
            }
            for (name, (lo, hi)) in int_ranges(&meta) {
                let range = ranges.entry(name).or_insert((lo, hi, 0));
                *range = (range.0.min(lo), range.1.max(hi), range.2 + 1);
            }
            files.push(FileInfo { object, row_groups });
        }
        let schema = schema.ok_or_else(|| Error::NotFound(location.to_string()))?;
        let partitions = partition_parquet(&files, self.config().partition_bytes);
        // A range is a bound only if every file had statistics for the column.
        let int_ranges = ranges
            .into_iter()
            .filter(|(_, (_, _, n))| n + empty_files == files.len())
            .map(|(name, (lo, hi, _))| (name, (lo, hi)))
            .collect();
        Ok(self.scan(ScanNode {
            source: location.to_string(),
            format: FileFormat::Parquet,
            file_schema: schema,
            files,
            partitions,
            projection: None,
            predicate: None,
            int_ranges,
        }))
    }

    /// Lazily reads CSV files (one partition per file). The schema is inferred from samples of
    /// the first, middle and last files (their first MB each), widened where they disagree
    /// (integers → floats → text), as a reader of many files must: the first file alone can be
    /// all integers where a later one has decimals.
    pub async fn read_csv(&self, location: &str, options: CsvOptions) -> Result<DataFrame> {
        self.read_csv_typed(location, options, &[]).await
    }

    /// [`read_csv`](Self::read_csv) with the types of some columns given instead of inferred
    /// (pandas' `dtype`): `("zip", DataType::Utf8)` keeps leading zeros.
    pub async fn read_csv_typed(
        &self,
        location: &str,
        options: CsvOptions,
        types: &[(String, DataType)],
    ) -> Result<DataFrame> {
        let objects = self.storage().list(location).await?;
        let first = objects.first().ok_or_else(|| Error::NotFound(location.to_string()))?;
        let mut sampled = vec![0, objects.len() / 2, objects.len() - 1];
        sampled.dedup();
        let mut schema: Option<(Schema, &str)> = None;
        for &i in &sampled {
            let object = &objects[i];
            let inferred = self.infer_csv(object, &options).await?;
            schema = Some(match schema {
                None => (inferred, object.url.as_str()),
                Some((so_far, from)) => (widen_schema(&so_far, from, &inferred, &object.url)?, from),
            });
        }
        let schema = schema.map(|(s, _)| s).ok_or_else(|| Error::NotFound(first.url.clone()))?;
        let schema = with_types(schema, types)?;
        let files: Vec<FileInfo> =
            objects.into_iter().map(|object| FileInfo { object, row_groups: vec![] }).collect();
        let partitions =
            files.iter().map(|f| vec![FileSlice { object: f.object.clone(), row_groups: None }]).collect();
        Ok(self.scan(ScanNode {
            source: location.to_string(),
            format: FileFormat::Csv(options),
            file_schema: Arc::new(schema),
            files,
            partitions,
            projection: None,
            predicate: None,
            int_ranges: HashMap::new(),
        }))
    }

    /// The schema of one CSV file, inferred from its first MB.
    async fn infer_csv(&self, object: &ObjectRef, options: &CsvOptions) -> Result<Schema> {
        let loc = self.storage().resolve(&object.url)?;
        let sample = loc
            .store
            .get_range(&loc.path, 0..object.size.min(1 << 20))
            .await
            .map_err(|e| shoal_worker::Error::from_store(&object.url, e))?;
        // A sample cut mid-line ends in a partial row: infer from whole lines only.
        let whole = match (object.size > sample.len() as u64, sample.iter().rposition(|&b| b == b'\n')) {
            (true, Some(end)) => sample.slice(..end + 1),
            _ => sample,
        };
        let mut format = arrow::csv::reader::Format::default()
            .with_header(options.has_header)
            .with_delimiter(options.delimiter);
        if let Some(nulls) = shoal_worker::io::scan::null_regex(options)? {
            format = format.with_null_regex(nulls);
        }
        let (schema, _) = format.infer_schema(std::io::Cursor::new(whole), Some(10_000)).map_err(|e| {
            Error::Input { url: object.url.clone(), message: format!("cannot infer CSV schema: {e}") }
        })?;
        Ok(schema)
    }

    fn scan(&self, node: ScanNode) -> DataFrame {
        DataFrame::new(self.clone(), Arc::new(Plan::Scan(node)), Vec::new())
    }
}

fn field_list(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

/// One partition per file; files larger than `target` split into runs of row groups of about
/// `target` compressed bytes.
/// `(min, max)` of each top-level integer column (INT32/INT64 physical type, so also dates and
/// small decimals as their integer encoding) whose every row group has statistics.
fn int_ranges(meta: &parquet::file::metadata::ParquetMetaData) -> Vec<(String, (i64, i64))> {
    use parquet::file::statistics::Statistics;
    let descr = meta.file_metadata().schema_descr();
    let mut out = Vec::new();
    for (i, column) in descr.columns().iter().enumerate() {
        if column.path().parts().len() != 1 {
            continue;
        }
        let mut range: Option<(i64, i64)> = None;
        let mut complete = meta.num_row_groups() > 0;
        for rg in meta.row_groups() {
            let bounds = match rg.column(i).statistics() {
                Some(Statistics::Int32(s)) => {
                    s.min_opt().zip(s.max_opt()).map(|(a, b)| (*a as i64, *b as i64))
                }
                Some(Statistics::Int64(s)) => s.min_opt().zip(s.max_opt()).map(|(a, b)| (*a, *b)),
                _ => None,
            };
            match (bounds, rg.num_rows()) {
                (Some((lo, hi)), _) => {
                    range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                }
                // An empty or all-null row group has no bounds and adds no values.
                (None, 0) => {}
                (None, _)
                    if rg.column(i).statistics().and_then(|s| s.null_count_opt())
                        == Some(rg.num_rows() as u64) => {}
                (None, _) => complete = false,
            }
        }
        if let (true, Some(r)) = (complete, range) {
            out.push((column.name().to_string(), r));
        }
    }
    out
}

fn partition_parquet(files: &[FileInfo], target: u64) -> Vec<Vec<FileSlice>> {
    let mut partitions = Vec::new();
    for f in files {
        let total: u64 = f.row_groups.iter().map(|(b, _)| b).sum();
        if total <= target || f.row_groups.len() <= 1 {
            partitions.push(vec![FileSlice { object: f.object.clone(), row_groups: None }]);
            continue;
        }
        let mut current = Vec::new();
        let mut bytes = 0;
        for (i, (b, _)) in f.row_groups.iter().enumerate() {
            if !current.is_empty() && bytes + b > target {
                partitions.push(vec![FileSlice {
                    object: f.object.clone(),
                    row_groups: Some(std::mem::take(&mut current)),
                }]);
                bytes = 0;
            }
            current.push(i);
            bytes += b;
        }
        if !current.is_empty() {
            partitions.push(vec![FileSlice { object: f.object.clone(), row_groups: Some(current) }]);
        }
    }
    partitions
}

/// `schema` with the given columns' types replaced; a column it lacks is an error naming it.
fn with_types(schema: Schema, types: &[(String, DataType)]) -> Result<Schema> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (column, data_type) in types {
        let field = fields.iter_mut().find(|f| f.name() == column).ok_or_else(|| {
            Error::Schema(format!(
                "dtype: no column '{column}' (columns: {})",
                schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        *field = Field::new(column, data_type.clone(), true);
    }
    Ok(Schema::new(fields))
}

/// A type as pandas, NumPy and SQL users write it: `int64`, `float64`/`double`, `string`/`str`,
/// `bool`, `date`, `timestamp`/`datetime64`, …
pub fn parse_dtype(name: &str) -> Result<DataType> {
    use arrow::datatypes::TimeUnit;
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" | "int" | "integer" | "bigint" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "float" | "real" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "string" | "str" | "utf8" | "text" | "varchar" | "object" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        "timestamp" | "datetime" | "datetime64" | "datetime64[ns]" => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        other => {
            return Err(Error::Invalid(format!(
                "dtype '{other}' is not a type (int8 … int64, uint8 … uint64, float32, float64, string, bool, date, \
                 timestamp)"
            )));
        }
    })
}

/// `a` (inferred from `a_url`) and `b` (from `b_url`) as one schema: the same columns in the
/// same order, each of the wider of the two types.
fn widen_schema(a: &Schema, a_url: &str, b: &Schema, b_url: &str) -> Result<Schema> {
    let names = |s: &Schema| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        return Err(Error::Schema(format!(
            "CSV files disagree on their columns: {a_url} has [{}], {b_url} has [{}]",
            names(a).join(", "),
            names(b).join(", ")
        )));
    }
    let fields: Vec<Field> = a
        .fields()
        .iter()
        .zip(b.fields())
        .map(|(x, y)| Field::new(x.name(), widen(x.data_type(), y.data_type()), true))
        .collect();
    Ok(Schema::new(fields))
}

/// The narrowest type both values fit: equal types stay, nulls take the other, integers widen
/// to floats, anything else to text.
fn widen(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (x, y) if x == y => x.clone(),
        (DataType::Null, other) | (other, DataType::Null) => other.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => DataType::Float64,
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::ObjectRef;

    #[test]
    fn dtypes_parse_as_pandas_and_sql_write_them() {
        assert_eq!(parse_dtype("Int64").unwrap(), DataType::Int64);
        assert_eq!(parse_dtype("double").unwrap(), DataType::Float64);
        assert_eq!(parse_dtype("str").unwrap(), DataType::Utf8);
        let err = parse_dtype("decimal(3)").unwrap_err().to_string();
        assert!(err.contains("decimal(3)") && err.contains("float64"), "{err}");
        let s = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
        let err = with_types(s, &[("b".into(), DataType::Utf8)]).unwrap_err().to_string();
        assert!(err.contains("no column 'b'") && err.contains("columns: a"), "{err}");
    }

    #[test]
    fn csv_types_widen_integers_to_floats_and_anything_else_to_text() {
        use DataType::*;
        assert_eq!(widen(&Int64, &Int64), Int64);
        assert_eq!(widen(&Int64, &Float64), Float64);
        assert_eq!(widen(&Null, &Boolean), Boolean);
        assert_eq!(widen(&Float64, &Utf8), Utf8);
        assert_eq!(widen(&Boolean, &Int64), Utf8);
        let a = Schema::new(vec![Field::new("x", Int64, true)]);
        let b = Schema::new(vec![Field::new("y", Int64, true)]);
        let err = widen_schema(&a, "a.csv", &b, "b.csv").unwrap_err().to_string();
        assert!(err.contains("a.csv has [x]") && err.contains("b.csv has [y]"), "{err}");
    }

    #[test]
    fn large_files_split_by_row_groups() {
        let obj = |n: &str| ObjectRef { url: format!("file:///{n}"), size: 1, e_tag: None };
        let files = vec![
            FileInfo { object: obj("small"), row_groups: vec![(10, 1), (10, 1)] },
            FileInfo { object: obj("big"), row_groups: vec![(60, 1), (60, 1), (30, 1), (90, 1)] },
        ];
        let parts = partition_parquet(&files, 100);
        let rgs: Vec<Option<Vec<usize>>> = parts.iter().map(|p| p[0].row_groups.clone()).collect();
        assert_eq!(rgs, vec![None, Some(vec![0]), Some(vec![1, 2]), Some(vec![3])]);
    }
}
