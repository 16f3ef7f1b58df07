//! `read_parquet`: footers only. One partition per file, large files split by row groups; a
//! directory of files whose schemas evolved (added nullable columns, widened types) read as
//! their union when the user asks for it, and otherwise refused with both schemas named.

use super::field_list;
use super::types::widen_parquet;
use crate::client::Client;
use crate::collections::dataframe::DataFrame;
use crate::collections::dataframe::plan::{FileInfo, ScanNode};
use crate::error::{Error, Result};
use arrow::datatypes::{Field, Schema, SchemaRef};
use parquet::arrow::async_reader::AsyncFileReader;
use shoal_protocol::{FileFormat, FileSlice};
use shoal_worker::io::reader::{IoCounter, ObjectReader};
use std::collections::HashMap;
use std::sync::Arc;

/// How `read_parquet` treats files whose schemas differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SchemaMode {
    /// Every file has the first file's schema; a file that differs is an error naming both.
    #[default]
    Same,
    /// The union of the files' schemas (`schema = "union"`): a column some files lack is null
    /// in them, and a type one file widened (int32 → int64, float32 → float64, integers →
    /// float64) is the wider type in all. Columns of other differing types are an error.
    Union,
}

/// How [`Client::read_parquet_opts`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParquetRead {
    pub schema: SchemaMode,
    /// Whether small files are coalesced into fewer partitions; `None`: as the client's
    /// `Config::coalesce_small_files` says.
    pub coalesce: Option<bool>,
}

impl SchemaMode {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "same" => Ok(SchemaMode::Same),
            "union" => Ok(SchemaMode::Union),
            other => {
                Err(Error::Invalid(format!("schema = '{other}': expected \"same\" (default) or \"union\"")))
            }
        }
    }
}

impl Client {
    /// Lazily reads Parquet files (a path, URL, directory or glob). Reads only footers now.
    /// Partitions follow the files' names in natural order (`part.2` before `part.10`): large
    /// files split by row groups toward `partition_bytes`, small consecutive ones coalesced
    /// toward it while at least twice as many partitions remain as tasks run at once.
    pub async fn read_parquet(&self, location: &str) -> Result<DataFrame> {
        self.read_parquet_with(location, SchemaMode::Same).await
    }

    /// [`read_parquet`](Self::read_parquet), with files whose schemas evolved read as the
    /// union of their schemas when `mode` is [`SchemaMode::Union`].
    pub async fn read_parquet_with(&self, location: &str, mode: SchemaMode) -> Result<DataFrame> {
        self.read_parquet_opts(location, ParquetRead { schema: mode, coalesce: None }).await
    }

    /// [`read_parquet`](Self::read_parquet) as `read` says: the schema mode, and whether
    /// small files are coalesced.
    pub async fn read_parquet_opts(&self, location: &str, read: ParquetRead) -> Result<DataFrame> {
        let mode = read.schema;
        let objects = super::list_some(self, location).await?;
        let mut files = Vec::with_capacity(objects.len());
        let mut schema: Option<(SchemaRef, String)> = None;
        let mut evolved = false;
        // Integer columns' (min, max, files with statistics).
        let mut ranges: HashMap<String, (i64, i64, usize)> = HashMap::new();
        let mut empty_files = 0;
        // Values of string columns, from the first file with rows.
        let mut sampled = None;
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
            if sampled.is_none() && meta.file_metadata().num_rows() > 0 {
                sampled = Some(super::values::string_values(&mut reader, &meta, &file_schema).await);
            }
            schema = Some(match schema {
                None => (file_schema, object.url.clone()),
                Some((s, first)) if s.fields() == file_schema.fields() => (s, first),
                Some((s, first)) if mode == SchemaMode::Union => {
                    evolved = true;
                    (Arc::new(union_schema(&s, &first, &file_schema, &object.url)?), first)
                }
                Some((s, _)) => {
                    return Err(Error::Schema(format!(
                        "{}: schema differs from the first file of {location}:\n  first: {}\n  this:  {}\n\
                         (if the files' schemas evolved by added columns or widened types, read them as one \
                         with schema = \"union\")",
                        object.url,
                        field_list(&s),
                        field_list(&file_schema)
                    )));
                }
            });
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
            files.push(FileInfo { object, row_groups, int_bounds: row_group_bounds(&meta) });
        }
        let (schema, _) = schema.ok_or_else(|| Error::NotFound(location.to_string()))?;
        let coalesce = read.coalesce.unwrap_or(self.config().coalesce_small_files);
        let partitions =
            partition_parquet(&files, self.config().partition_bytes, self.min_scan_partitions(coalesce));
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
            string_values: sampled.unwrap_or_default(),
            // Workers widen each file to the union only when the files differ.
            schema_on_read: evolved,
        }))
    }
}

/// The union of `a` (the files so far, from `a_url` on) and `b` (the file at `b_url`): `a`'s
/// columns in order, each of the wider type and nullable where either is, then `b`'s new
/// columns, nullable (the files before it lack them).
fn union_schema(a: &Schema, a_url: &str, b: &Schema, b_url: &str) -> Result<Schema> {
    let mut fields: Vec<Field> = Vec::with_capacity(a.fields().len());
    for fa in a.fields() {
        match b.field_with_name(fa.name()) {
            Ok(fb) => {
                let t = widen_parquet(fa.data_type(), fb.data_type()).ok_or_else(|| {
                    Error::Schema(format!(
                        "column '{}' is {} in {a_url} but {} in {b_url}: schema = \"union\" widens integers and \
                         floats only; read the files separately and cast",
                        fa.name(),
                        fa.data_type(),
                        fb.data_type()
                    ))
                })?;
                fields.push(Field::new(fa.name(), t, fa.is_nullable() || fb.is_nullable()));
            }
            Err(_) => fields.push(fa.as_ref().clone().with_nullable(true)),
        }
    }
    for fb in b.fields() {
        if a.field_with_name(fb.name()).is_err() {
            fields.push(fb.as_ref().clone().with_nullable(true));
        }
    }
    Ok(Schema::new(fields))
}

/// Per row group, `(min, max)` of each top-level integer column (INT32/INT64 physical type)
/// whose statistics bound it and count no nulls in it.
fn row_group_bounds(meta: &parquet::file::metadata::ParquetMetaData) -> Vec<HashMap<String, (i64, i64)>> {
    let descr = meta.file_metadata().schema_descr();
    meta.row_groups()
        .iter()
        .map(|rg| {
            let mut bounds = HashMap::new();
            for (i, column) in descr.columns().iter().enumerate() {
                let Some(stats) = rg.column(i).statistics() else { continue };
                if column.path().parts().len() != 1 || stats.null_count_opt() != Some(0) {
                    continue;
                }
                if let Some(range) = int_bounds(stats) {
                    bounds.insert(column.name().to_string(), range);
                }
            }
            bounds
        })
        .collect()
}

/// `(min, max)` of a column chunk's statistics, when they are of an integer (INT32/INT64)
/// column and hold both.
fn int_bounds(stats: &parquet::file::statistics::Statistics) -> Option<(i64, i64)> {
    use parquet::file::statistics::Statistics;
    match stats {
        Statistics::Int32(s) => s.min_opt().zip(s.max_opt()).map(|(a, b)| (*a as i64, *b as i64)),
        Statistics::Int64(s) => s.min_opt().zip(s.max_opt()).map(|(a, b)| (*a, *b)),
        _ => None,
    }
}

/// `(min, max)` of each top-level integer column (INT32/INT64 physical type, so also dates and
/// small decimals as their integer encoding) whose every row group has statistics.
fn int_ranges(meta: &parquet::file::metadata::ParquetMetaData) -> Vec<(String, (i64, i64))> {
    let descr = meta.file_metadata().schema_descr();
    let mut out = Vec::new();
    for (i, column) in descr.columns().iter().enumerate() {
        if column.path().parts().len() != 1 {
            continue;
        }
        let mut range: Option<(i64, i64)> = None;
        let mut complete = meta.num_row_groups() > 0;
        for rg in meta.row_groups() {
            let bounds = rg.column(i).statistics().and_then(int_bounds);
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

/// The partitions of Parquet `files`, in the natural order of their names (`part.2` before
/// `part.10`, as Dask orders them): a file larger than `target` compressed bytes is split into
/// runs of row groups of about `target`; smaller files are coalesced, consecutive ones
/// together, into about as many partitions as hold all the bytes at `target` each, but never
/// fewer than `min_partitions` (nor more than one partition per file). TPC-H's customers at
/// SF10 are 80 files of 1.8 MB: as 80 tasks each would spend more on opening, committing and
/// scheduling than on its rows.
fn partition_parquet(files: &[FileInfo], target: u64, min_partitions: usize) -> Vec<Vec<FileSlice>> {
    let mut order: Vec<&FileInfo> = files.iter().collect();
    order.sort_by(|a, b| natural_cmp(&a.object.url, &b.object.url));
    let bytes = |f: &FileInfo| -> u64 { f.row_groups.iter().map(|(b, _)| b).sum() };
    let target = target.max(1);
    let total: u64 = order.iter().map(|f| bytes(f)).sum();
    let wanted = usize::try_from(total.div_ceil(target)).unwrap_or(usize::MAX).max(min_partitions);
    // Each small file's share of a partition: what the coalesced partitions may hold.
    let budget = match order.len() > wanted {
        true => total / wanted as u64,
        false => 0,
    };
    let mut partitions = Vec::new();
    let mut group: (Vec<FileSlice>, u64) = (Vec::new(), 0);
    for f in order {
        let size = bytes(f);
        if size > target && f.row_groups.len() > 1 {
            if !group.0.is_empty() {
                partitions.push(std::mem::take(&mut group).0);
            }
            partitions.extend(split_row_groups(f, target));
            continue;
        }
        if !group.0.is_empty() && group.1 + size > budget {
            partitions.push(std::mem::take(&mut group).0);
        }
        group.0.push(FileSlice::whole(f.object.clone()));
        group.1 += size;
    }
    if !group.0.is_empty() {
        partitions.push(group.0);
    }
    partitions
}

/// `f` as runs of row groups of about `target` compressed bytes, one partition each.
fn split_row_groups(f: &FileInfo, target: u64) -> Vec<Vec<FileSlice>> {
    let mut partitions = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    let slice = |rgs| FileSlice { object: f.object.clone(), row_groups: Some(rgs), block: None };
    for (i, (b, _)) in f.row_groups.iter().enumerate() {
        if !current.is_empty() && bytes + b > target {
            partitions.push(vec![slice(std::mem::take(&mut current))]);
            bytes = 0;
        }
        current.push(i);
        bytes += b;
    }
    if !current.is_empty() {
        partitions.push(vec![slice(current)]);
    }
    partitions
}

/// `digits` without its leading zeros (one zero kept for a value of zero).
fn significant(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

/// Orders names as people number files: runs of digits compare by their value (`2` < `10`),
/// everything else by its characters.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (digits(a), digits(b));
                // Leading zeros do not change a value: the significant digits compare by their
                // count, then digit by digit; equal values then by how many digits were written.
                let (sa, sb) = (significant(&a[..da]), significant(&b[..db]));
                let ord = sa.len().cmp(&sb.len()).then_with(|| sa.cmp(sb)).then_with(|| da.cmp(&db));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;
    use shoal_protocol::ObjectRef;

    #[test]
    fn large_files_split_by_row_groups() {
        let obj = |n: &str| ObjectRef { url: format!("file:///{n}"), size: 1, e_tag: None };
        let files = vec![
            FileInfo { object: obj("small"), row_groups: vec![(10, 1), (10, 1)], int_bounds: vec![] },
            FileInfo {
                object: obj("big"),
                row_groups: vec![(60, 1), (60, 1), (30, 1), (90, 1)],
                int_bounds: vec![],
            },
        ];
        let parts = partition_parquet(&files, 100, 1);
        let rgs: Vec<Option<Vec<usize>>> = parts.iter().map(|p| p[0].row_groups.clone()).collect();
        // In the natural order of their names: "big" first.
        assert_eq!(rgs, vec![Some(vec![0]), Some(vec![1, 2]), Some(vec![3]), None]);
    }

    #[test]
    fn small_files_coalesce_in_natural_order_while_enough_partitions_remain() {
        let file = |n: usize, bytes: u64| FileInfo {
            object: ObjectRef { url: format!("file:///t/part.{n}.parquet"), size: bytes, e_tag: None },
            row_groups: vec![(bytes, 1)],
            int_bounds: vec![],
        };
        let names = |parts: &[Vec<FileSlice>]| -> Vec<Vec<String>> {
            parts
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|f| f.object.url.trim_start_matches("file:///t/part.").replace(".parquet", ""))
                        .collect()
                })
                .collect()
        };
        // Listed as an object store lists them: part.1, part.10, part.11, part.12, part.2, ...
        let mut files: Vec<FileInfo> = (1..=12).map(|n| file(n, 10)).collect();
        files.sort_by(|a, b| a.object.url.cmp(&b.object.url));
        // 120 bytes at a target of 100 want 2 partitions; at least 4 remain, of 30 bytes each.
        let parts = partition_parquet(&files, 100, 4);
        assert_eq!(
            names(&parts),
            [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["10", "11", "12"]]
                .map(|p| p.map(String::from).to_vec())
        );
        // As many partitions as files wanted: one file each, in natural order.
        let parts = partition_parquet(&files, 100, 12);
        assert_eq!(names(&parts), (1..=12).map(|n| vec![n.to_string()]).collect::<Vec<_>>());
        // A large file between small ones is split alone; the small ones around it coalesce.
        let mut mixed: Vec<FileInfo> = (1..=4).map(|n| file(n, 10)).collect();
        mixed[1] = FileInfo { row_groups: vec![(150, 1), (150, 1)], ..file(2, 300) };
        let parts = partition_parquet(&mixed, 200, 1);
        let shape: Vec<(usize, Option<Vec<usize>>)> =
            parts.iter().map(|p| (p.len(), p[0].row_groups.clone())).collect();
        assert_eq!(shape, vec![(1, None), (1, Some(vec![0])), (1, Some(vec![1])), (2, None)]);
    }

    #[test]
    fn names_compare_by_the_values_of_their_numbers() {
        let mut names = vec!["part.10", "part.2", "part.1", "part.02", "part.b", "part.a10", "part.a9"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["part.1", "part.2", "part.02", "part.10", "part.a9", "part.a10", "part.b"]);
    }

    #[test]
    fn evolved_schemas_unite_by_added_columns_and_widened_types() {
        let a = Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("x", DataType::Float32, true),
        ]);
        let b = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("note", DataType::Utf8, false),
        ]);
        let u = union_schema(&a, "a", &b, "b").unwrap();
        assert_eq!(
            u,
            Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("x", DataType::Float64, true),
                Field::new("note", DataType::Utf8, true),
            ])
        );
        let c = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let err = union_schema(&a, "a.parquet", &c, "c.parquet").unwrap_err().to_string();
        assert!(err.contains("'id' is Int32 in a.parquet but Utf8 in c.parquet"), "{err}");
    }
}
