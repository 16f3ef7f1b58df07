//! A task's first filter applied as its Parquet files are read, the string columns it tests read
//! as dictionaries.
//!
//! Parquet writers store low-cardinality strings (a ship mode, a status flag, a brand)
//! dictionary-encoded: a page holds small integer keys into its column chunk's dictionary. Read
//! as plain strings, every row is decoded into a string (a 16-byte view, or bytes and an
//! offset), and a filter such as `l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct =
//! 'DELIVER IN PERSON'` then compares every row's string: in TPC-H q19 at SF10 those
//! comparisons alone were 13% of the query's samples. Read as a dictionary, the reader only
//! unpacks the keys, a comparison runs once per dictionary value and reaches the rows through
//! the keys (arrow's comparison, `IN` and `LIKE` kernels all do so for a dictionary), filtering
//! moves keys, and only the rows the filter keeps are turned back into strings of the column's
//! own type. The batches that leave the scan have the file's types: nothing after the scan sees
//! a dictionary, and the task's result is the one the filter would have given in its plan.
//!
//! Applies when a task's operators start with a filter, its main table is Parquet scans read
//! whole (not conformed to an evolved schema), and the filter tests a string column that is
//! dictionary-encoded in the file only by comparing it with literals. A column the expression
//! would cast (an argument of a function, a comparison with another column) is read as before;
//! when no column is left, the filter stays in the task's plan. The first file read decides for
//! the task: the files of one scan share a schema, and a filter applied to some files must be
//! applied to all of them.

use super::{conjunction, program};
use crate::error::{Error, Result};
use crate::io::scan::{FileFilter, RowFilter};
use arrow::array::{Array, AsArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, LikeExpr, Literal};
use parquet::basic::{Encoding, PageType};
use parquet::file::metadata::ParquetMetaData;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// The filter that starts a task's operators, to be applied by the reader of its Parquet files.
#[derive(Debug)]
pub struct ScanFilter {
    predicate: String,
    /// Whether the reads apply it, decided by the first file prepared.
    applied: OnceLock<bool>,
    /// Rows decoded before the filter, over every file that applied it.
    rows_read: Arc<AtomicU64>,
}

/// A [`Prepared`] filter applied to the batches of one file of one task's read.
#[derive(Debug)]
struct Filtering {
    prepared: Arc<Prepared>,
    rows_read: Arc<AtomicU64>,
}

/// A [`ScanFilter`] prepared for one file: which columns to read as dictionaries, and the
/// predicate over the batches read so.
#[derive(Debug)]
pub struct Prepared {
    /// The filter as written, to name it in errors.
    sql: String,
    /// The file's schema with the tested string columns as dictionaries: the reader's hint.
    hint: SchemaRef,
    /// The predicate over the projected columns as read.
    predicate: Arc<dyn PhysicalExpr>,
    /// The projected columns read as dictionaries, each with the type it is restored to.
    restore: Vec<(usize, DataType)>,
    /// The projected columns with the file's types: the schema of the batches the scan yields.
    schema: SchemaRef,
}

/// Preparations made in this process, by predicate, file schema, projection and dictionary
/// columns (`None`: the filter does not compile over them). The tasks of one stage read files of
/// one schema with one filter: each prepares it once.
static PREPARED: LazyLock<Mutex<HashMap<String, Option<Arc<Prepared>>>>> = LazyLock::new(Default::default);
/// Most preparations kept; the cache starts over beyond it.
const PREPARED_MAX: usize = 256;

impl ScanFilter {
    pub fn new(predicate: &str) -> Self {
        Self { predicate: predicate.to_string(), applied: OnceLock::new(), rows_read: Arc::default() }
    }

    /// Whether the reads applied the filter (so that the task's plan must not apply it again).
    pub fn applied(&self) -> bool {
        self.applied.get().copied().unwrap_or(false)
    }

    /// Rows the reads decoded before applying the filter.
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }
}

impl RowFilter for ScanFilter {
    /// The first file prepared decides whether any is filtered; once decided so, a file the
    /// filter does not compile against is an error naming the filter.
    fn prepare(
        &self,
        file: &SchemaRef,
        metadata: &ParquetMetaData,
        row_groups: &[usize],
        indices: Option<&[usize]>,
        url: &str,
    ) -> Result<Option<Arc<dyn FileFilter>>> {
        let all: Vec<usize>;
        let indices = match indices {
            Some(ix) => ix,
            None => {
                all = (0..file.fields().len()).collect();
                &all
            }
        };
        let dictionaries: BTreeSet<usize> = indices
            .iter()
            .copied()
            .filter(|&i| {
                let field = file.field(i);
                restorable(field.data_type())
                    && self.predicate.contains(field.name().as_str())
                    && dictionary_encoded(metadata, file, i, row_groups)
            })
            .collect();
        let prepared = match self.applied.get() {
            Some(false) => return Ok(None),
            Some(true) => cached(&self.predicate, file, indices, dictionaries),
            None => {
                let first = match dictionaries.is_empty() {
                    true => None,
                    false => cached(&self.predicate, file, indices, dictionaries.clone()),
                };
                let helps = first.as_ref().is_some_and(|p| !p.restore.is_empty());
                // Another file of the task may have decided first, either way.
                if !*self.applied.get_or_init(|| helps) {
                    return Ok(None);
                }
                match first {
                    Some(prepared) => Some(prepared),
                    None => cached(&self.predicate, file, indices, dictionaries),
                }
            }
        };
        match prepared {
            Some(prepared) => Ok(Some(Arc::new(Filtering { prepared, rows_read: self.rows_read.clone() }))),
            None => Err(Error::Schema(format!(
                "{url}: the filter '{}' does not apply to this file's columns",
                self.predicate
            ))),
        }
    }
}

impl FileFilter for Filtering {
    fn hint(&self) -> SchemaRef {
        self.prepared.hint.clone()
    }

    /// The columns read as dictionaries are restored to their types.
    fn apply(&self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let rows = batch.num_rows();
        self.rows_read.fetch_add(rows as u64, Ordering::Relaxed);
        let prepared = &self.prepared;
        let mask = prepared
            .predicate
            .evaluate(&batch)
            .and_then(|v| v.into_array(rows))
            .map_err(|e| Error::Schema(format!("filter '{}': {}", prepared.sql, e.strip_backtrace())))?;
        let mask = mask.as_boolean_opt().ok_or_else(|| {
            Error::Schema(format!(
                "filter '{}': gave {} values, not booleans",
                prepared.sql,
                mask.data_type()
            ))
        })?;
        let kept = mask.true_count();
        if kept == 0 {
            return Ok(None);
        }
        let batch = match kept == rows && mask.null_count() == 0 {
            true => batch,
            false => filter_record_batch(&batch, mask).map_err(Error::arrow("filtering rows at the scan"))?,
        };
        let mut columns = batch.columns().to_vec();
        for (i, to) in &prepared.restore {
            columns[*i] = cast(&columns[*i], to).map_err(Error::arrow("restoring a dictionary column"))?;
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(prepared.schema.clone(), columns, &options)
            .map(Some)
            .map_err(Error::arrow("a batch filtered at the scan"))
    }
}

/// The string types a dictionary of `Utf8` values (or `LargeUtf8`) is restored to by a cast
/// that reuses the dictionary's bytes.
fn restorable(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// The dictionary type column `t` is read as.
fn dictionary_of(t: &DataType) -> DataType {
    let values = match t {
        DataType::LargeUtf8 => DataType::LargeUtf8,
        _ => DataType::Utf8,
    };
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(values))
}

/// Whether column `i` of `file` is stored dictionary-encoded in every row group read, with a
/// dictionary small beside its keys: a dictionary page of at most a byte a row and a quarter of
/// the column chunk's bytes. A comment column, nearly one value a row, has a dictionary about as
/// large as the column, or a full one after which the writer fell back to plain pages, which
/// the reader would turn into a dictionary by hashing every value: read as a dictionary, it only
/// adds work. Where the footer lists the encodings of the pages, no data page may be plain.
fn dictionary_encoded(metadata: &ParquetMetaData, file: &SchemaRef, i: usize, row_groups: &[usize]) -> bool {
    let name = file.field(i).name();
    row_groups.iter().all(|&rg| {
        let group = metadata.row_group(rg);
        let Some(chunk) = group.columns().iter().find(|c| c.column_path().parts() == [name.clone()]) else {
            return false;
        };
        let Some(dictionary_at) = chunk.dictionary_page_offset() else { return false };
        let dictionary_bytes = chunk.data_page_offset() - dictionary_at;
        let all_keys = chunk.page_encoding_stats().is_none_or(|stats| {
            stats.iter().all(|s| {
                !matches!(s.page_type, PageType::DATA_PAGE | PageType::DATA_PAGE_V2)
                    || matches!(s.encoding, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY)
            })
        });
        dictionary_bytes > 0
            && dictionary_bytes <= chunk.num_values()
            && dictionary_bytes.saturating_mul(4) <= chunk.compressed_size()
            && all_keys
    })
}

/// The preparation for these columns, made once per process.
fn cached(
    predicate: &str,
    file: &SchemaRef,
    indices: &[usize],
    dictionaries: BTreeSet<usize>,
) -> Option<Arc<Prepared>> {
    let fields = crate::io::schema::to_fields(file);
    let key = serde_json::to_string(&(predicate, fields, indices, &dictionaries)).ok()?;
    let mut cache = PREPARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(&key) {
        return found.clone();
    }
    let prepared = prepare(predicate, file, indices, dictionaries).map(Arc::new);
    if cache.len() >= PREPARED_MAX {
        cache.clear();
    }
    cache.insert(key, prepared.clone());
    prepared
}

/// Compiles `predicate` over the projected columns with `dictionaries` read as such. A
/// dictionary column the compiled expression uses other than in a comparison with literals
/// (where the planner would cast it) is read plainly instead, and the predicate compiled again.
fn prepare(
    predicate_sql: &str,
    file: &SchemaRef,
    indices: &[usize],
    mut dictionaries: BTreeSet<usize>,
) -> Option<Prepared> {
    let schema = Arc::new(file.project(indices).ok()?);
    loop {
        let hint = Arc::new(with_dictionaries(file, &dictionaries));
        let read = Arc::new(hint.project(indices).ok()?);
        let expr = program::physical_expr(&read, predicate_sql)?;
        (expr.data_type(&read).ok()? == DataType::Boolean).then_some(())?;
        let positions: BTreeSet<usize> =
            indices.iter().enumerate().filter(|(_, i)| dictionaries.contains(i)).map(|(p, _)| p).collect();
        let mut misused = BTreeSet::new();
        misuses(&expr, &positions, &mut misused);
        if misused.is_empty() {
            let restore = positions.iter().map(|&p| (p, schema.field(p).data_type().clone())).collect();
            let predicate = conjunction::rewrite(expr);
            return Some(Prepared { sql: predicate_sql.to_string(), hint, predicate, restore, schema });
        }
        dictionaries.retain(|i| !misused.iter().any(|&p| indices[p] == *i));
    }
}

/// `file` with the columns `dictionaries` as dictionaries.
fn with_dictionaries(file: &SchemaRef, dictionaries: &BTreeSet<usize>) -> Schema {
    let fields: Vec<Field> = file
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match dictionaries.contains(&i) {
            true => f.as_ref().clone().with_data_type(dictionary_of(f.data_type())),
            false => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, file.metadata().clone())
}

/// Collects into `misused` the columns among `dictionaries` (positions in the batch) that
/// `expr` uses other than as one side of a comparison with a literal, the tested value of an
/// `IN` list of literals, or the tested value of a `LIKE` with a literal pattern.
fn misuses(expr: &Arc<dyn PhysicalExpr>, dictionaries: &BTreeSet<usize>, misused: &mut BTreeSet<usize>) {
    let dictionary = |e: &Arc<dyn PhysicalExpr>| {
        e.downcast_ref::<Column>().is_some_and(|c| dictionaries.contains(&c.index()))
    };
    let literal = |e: &Arc<dyn PhysicalExpr>| e.is::<Literal>();
    let fine = if let Some(b) = expr.downcast_ref::<BinaryExpr>() {
        let compares = matches!(
            b.op(),
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        );
        compares && (dictionary(b.left()) && literal(b.right()) || literal(b.left()) && dictionary(b.right()))
    } else if let Some(list) = expr.downcast_ref::<InListExpr>() {
        dictionary(list.expr()) && list.list().iter().all(literal)
    } else if let Some(like) = expr.downcast_ref::<LikeExpr>() {
        dictionary(like.expr()) && literal(like.pattern())
    } else {
        false
    };
    if fine {
        return;
    }
    for child in expr.children() {
        if let Some(c) = child.downcast_ref::<Column>()
            && dictionaries.contains(&c.index())
        {
            misused.insert(c.index());
        }
        misuses(child, dictionaries, misused);
    }
    // A filter that is the column itself (a boolean column cannot be a dictionary, but be sure).
    if let Some(c) = expr.downcast_ref::<Column>()
        && dictionaries.contains(&c.index())
    {
        misused.insert(c.index());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::io::scan::read_input;
    use crate::io::storage::Storage;
    use arrow::array::{ArrayRef, Int64Array, StringArray, StringViewArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use parquet::schema::types::ColumnPath;
    use shoal_protocol::{FileFormat, FileSlice, Input, ObjectRef, StorageOptions};

    /// `id`, `mode`, `flag` and `note` of each row.
    pub(crate) type Rows = (Vec<i64>, Vec<&'static str>, Vec<Option<&'static str>>, Vec<String>);

    const MODES: [&str; 4] = ["AIR", "RAIL", "DELIVER IN PERSON", "TAKE BACK RETURN"];

    /// 3000 rows in row groups of 1000: `id`, `mode` (views, dictionary-encoded), `flag` (strings
    /// with nulls, dictionary-encoded), `note` (strings, plain); `comment` (a distinct string a
    /// row, dictionary-encoded) is made by [`write`].
    pub(crate) fn rows() -> Rows {
        let ids: Vec<i64> = (0..3000).collect();
        let modes = ids.iter().map(|i| MODES[(i * 7 % 4) as usize]).collect();
        let flags = ids.iter().map(|i| [Some("R"), Some("N"), None][(i % 3) as usize]).collect();
        let notes = ids.iter().map(|i| format!("x{}", i % 5)).collect();
        (ids, modes, flags, notes)
    }

    pub(crate) fn write(dir: &std::path::Path) -> (Input, SchemaRef) {
        let (ids, modes, flags, notes) = rows();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("mode", DataType::Utf8View, false),
            Field::new("flag", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, false),
            Field::new("comment", DataType::Utf8, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringViewArray::from(modes)),
            Arc::new(StringArray::from(flags)),
            Arc::new(StringArray::from(notes)),
            Arc::new(StringArray::from_iter_values((0..3000).map(|i| format!("comment number {i} of many")))),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .set_column_dictionary_enabled(ColumnPath::from("note"), false)
            .build();
        let path = dir.join("t.parquet");
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let object = ObjectRef { url: format!("file://{}", path.display()), size, e_tag: None };
        let input = Input::Scan {
            format: FileFormat::Parquet,
            files: vec![FileSlice::whole(object)],
            projection: Some(vec![
                "note".into(),
                "mode".into(),
                "id".into(),
                "flag".into(),
                "comment".into(),
            ]),
            predicate: None,
            schema: None,
            port: 0,
        };
        (input, schema)
    }

    /// Reads the file with `predicate` at the scan: the filter, the rows read, and the rows
    /// (`id`s) and types that came out.
    async fn read(predicate: &str) -> (Arc<ScanFilter>, Vec<i64>, Vec<DataType>) {
        let dir = tempfile::tempdir().unwrap();
        let (input, _) = write(dir.path());
        let storage = Storage::new(StorageOptions::default());
        let filter = Arc::new(ScanFilter::new(predicate));
        let row_filter: Arc<dyn RowFilter> = filter.clone();
        let loaded = read_input(&storage, &input, Some(&row_filter)).await.unwrap();
        let types = loaded.schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let mut ids = Vec::new();
        for batch in &loaded.batches {
            assert_eq!(batch.schema(), loaded.schema);
            ids.extend(
                batch.column(2).as_primitive::<arrow::datatypes::Int64Type>().values().iter().copied(),
            );
        }
        (filter, ids, types)
    }

    fn file_types() -> Vec<DataType> {
        vec![DataType::Utf8, DataType::Utf8View, DataType::Int64, DataType::Utf8, DataType::Utf8]
    }

    #[tokio::test]
    async fn string_tests_run_on_dictionaries_and_give_the_rows_and_types_of_a_plain_read() {
        let (ids, modes, flags, _) = rows();
        let (filter, got, types) =
            read("mode IN ('AIR', 'DELIVER IN PERSON') AND flag <> 'N' AND id > 3").await;
        assert!(filter.applied());
        assert_eq!(filter.rows_read(), 3000);
        assert_eq!(types, file_types());
        // SQL's three-valued logic by hand: a null flag is not `<> 'N'`.
        let want: Vec<i64> = ids
            .iter()
            .filter(|&&i| {
                let i = i as usize;
                matches!(modes[i], "AIR" | "DELIVER IN PERSON") && flags[i].is_some_and(|f| f != "N") && i > 3
            })
            .copied()
            .collect();
        assert!(!want.is_empty() && want.len() < 3000);
        assert_eq!(got, want);

        let (filter, got, _) = read("mode LIKE 'DEL%' OR mode > 'S'").await;
        assert!(filter.applied());
        let want: Vec<i64> = ids
            .iter()
            .filter(|&&i| modes[i as usize].starts_with("DEL") || modes[i as usize] > "S")
            .copied()
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn columns_a_filter_casts_or_stored_plain_leave_the_filter_to_the_plan() {
        // A function of the column: the plan's filter, every row read.
        let (filter, got, types) = read("upper(mode) = 'AIR'").await;
        assert!(!filter.applied());
        assert_eq!((got.len(), types), (3000, file_types()));
        // `note` is stored without a dictionary.
        let (filter, got, _) = read("note = 'x1'").await;
        assert!(!filter.applied());
        assert_eq!(got.len(), 3000);
        // `comment`'s dictionary is as large as the column.
        let (filter, got, _) = read("comment NOT LIKE '%7%'").await;
        assert!(!filter.applied());
        assert_eq!(got.len(), 3000);
        // No string column at all.
        let (filter, _, _) = read("id < 10").await;
        assert!(!filter.applied());
    }

    #[test]
    fn a_column_compared_with_another_is_read_plainly_and_the_rest_as_dictionaries() {
        let file = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8View, true),
            Field::new("c", DataType::Utf8, true),
        ]));
        let prepared =
            prepare("a = b AND c IN ('x', 'y')", &file, &[0, 1, 2], BTreeSet::from([0, 1, 2])).unwrap();
        assert_eq!(prepared.restore, vec![(2, DataType::Utf8)]);
        assert_eq!(prepared.hint.field(0).data_type(), &DataType::Utf8);
        assert!(matches!(prepared.hint.field(2).data_type(), DataType::Dictionary(..)));
        // Nothing left to read as a dictionary: prepared with none.
        let prepared = prepare("a = b", &file, &[0, 1], BTreeSet::from([0, 1])).unwrap();
        assert!(prepared.restore.is_empty());
    }
}
