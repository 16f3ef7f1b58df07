//! Reading a task's inputs: Parquet (projection, row-group selection, row-group pruning from
//! statistics and page pruning from the page index), CSV and JSON ([`csv`](super::csv),
//! [`json`](super::json)), Arrow IPC intermediates, shuffle buckets (range reads), and regions
//! of Zarr arrays ([`zarr`](super::zarr)).

use super::Stream;
use super::ipc;
pub use super::loaded::Loaded;
use super::reader::{IoCounter, ObjectReader};
use super::schema::from_fields;
use super::storage::Storage;
use crate::error::{DecodeError, Error, Result};
use arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::physical_plan::parquet::{
    PagePruningAccessPlanFilter, ParquetAccessPlan, ParquetFileMetrics,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::errors::ParquetError;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::metadata::ParquetMetaData;
use parquet::schema::types::SchemaDescriptor;
use shoal_protocol::{FileFormat, FileSlice, Input};
use std::collections::HashSet;
use std::sync::Arc;

/// Reads one input; `filter`, when given, is applied to the rows of its Parquet files read
/// whole (see [`RowFilter`]).
pub async fn read_input(
    storage: &Storage,
    input: &Input,
    filter: Option<&Arc<dyn RowFilter>>,
) -> Result<Loaded> {
    match input {
        Input::Scan { format, files, projection, predicate, schema, .. } => {
            let schema = schema.as_deref().map(from_fields).transpose()?;
            let mut loaded: Option<Loaded> = None;
            for file in files {
                let part = match format {
                    FileFormat::Parquet => match &schema {
                        None => {
                            let read = Read::whole(projection.as_deref(), predicate.as_deref(), filter);
                            read_parquet(storage, file, &read).await?
                        }
                        // Files of evolved schemas, each read as the union of them.
                        Some(target) => {
                            let read = Read {
                                projection: projection.as_deref(),
                                prune: predicate.as_deref(),
                                lenient: true,
                                filter: None,
                            };
                            let part = read_parquet(storage, file, &read).await?;
                            let target = match projection {
                                Some(cols) => project(target, cols, &file.object.url)?,
                                None => target.clone(),
                            };
                            conform(part, target, &file.object.url)?
                        }
                    },
                    FileFormat::Csv(opts) => {
                        let schema = schema
                            .clone()
                            .ok_or_else(|| Error::InvalidTask("a CSV scan needs a schema".into()))?;
                        super::csv::read(storage, file, opts, schema, projection.as_deref()).await?
                    }
                    FileFormat::Json(opts) => {
                        super::json::read(storage, file, opts, schema.clone(), projection.as_deref()).await?
                    }
                    FileFormat::ArrowIpc => {
                        let bytes = storage.get(&file.object).await?;
                        read_ipc(&file.object.url, bytes, projection.as_deref())?
                    }
                    FileFormat::Lines(opts) => super::lines::read(storage, file, opts).await?,
                };
                let url = &file.object.url;
                Loaded::append(&mut loaded, part, || format!("{url}: schema differs from the other files"))?;
            }
            loaded.ok_or_else(|| Error::InvalidTask("scan with no files".into()))
        }
        Input::Upstream { task_key, objects, ranges, .. } if !ranges.is_empty() => {
            read_buckets(storage, task_key, objects, ranges).await
        }
        Input::Upstream { objects, schema: Some(schema), .. } if objects.is_empty() => Ok(Loaded {
            schema: from_fields(schema)?,
            batches: vec![],
            bytes_read: 0,
            objects_read: 0,
            requests: 0,
            records_skipped: 0,
        }),
        Input::Upstream { task_key, objects, .. } => {
            let mut acc: Option<Loaded> = None;
            for object in objects {
                let bytes = storage.get_intermediate(object, None).await?;
                let part = read_ipc(&object.url, bytes, None)?;
                Loaded::append(&mut acc, part, || {
                    format!("{}: schema differs from the other inputs", object.url)
                })?;
            }
            acc.ok_or_else(|| {
                Error::InvalidTask(format!("upstream {task_key} was not resolved to any object"))
            })
        }
        Input::Zarr { array, region, .. } => {
            let ((schema, batches), bytes) = super::zarr::read_region(storage, array, region).await?;
            Ok(Loaded {
                schema,
                batches,
                bytes_read: bytes,
                objects_read: 1,
                requests: 1,
                records_skipped: 0,
            })
        }
    }
}

/// One shuffle bucket of an upstream map task: a range read per object. Empty buckets are not
/// fetched, except one to learn the schema when every bucket is empty.
async fn read_buckets(
    storage: &Storage,
    task_key: &shoal_protocol::TaskKey,
    objects: &[shoal_protocol::ObjectRef],
    ranges: &[shoal_protocol::ByteRange],
) -> Result<Loaded> {
    if objects.len() != ranges.len() {
        return Err(Error::InvalidTask(format!(
            "upstream {task_key}: {} objects but {} bucket ranges",
            objects.len(),
            ranges.len()
        )));
    }
    let mut acc: Option<Loaded> = None;
    let all_empty = ranges.iter().all(|r| r.rows == 0);
    for (i, (object, range)) in objects.iter().zip(ranges).enumerate() {
        if range.rows == 0 && !(all_empty && i == 0) {
            continue;
        }
        let bytes = storage.get_intermediate(object, Some(range.offset..range.offset + range.len)).await?;
        let size = bytes.len() as u64;
        let (schema, batches) = ipc::decode_stream(&object.url, bytes)?;
        let part =
            Loaded { schema, batches, bytes_read: size, objects_read: 1, requests: 1, records_skipped: 0 };
        Loaded::append(&mut acc, part, || format!("{}: schema differs from the other inputs", object.url))?;
    }
    acc.ok_or_else(|| Error::InvalidTask(format!("upstream {task_key} was not resolved to any object")))
}

/// `schema`'s `cols`, in that order.
fn project(schema: &SchemaRef, cols: &[String], url: &str) -> Result<SchemaRef> {
    let ix = ipc::column_indices(schema, cols, url)?;
    Ok(Arc::new(schema.project(&ix).map_err(|e| Error::Schema(e.to_string()))?))
}

/// A file read as `target`: its columns widened to the target's types, and the target's
/// columns it lacks as nulls (the union of evolved schemas).
fn conform(part: Loaded, target: SchemaRef, url: &str) -> Result<Loaded> {
    if part.schema.fields() == target.fields() {
        return Ok(part);
    }
    let batches = part
        .batches
        .iter()
        .map(|batch| {
            let columns = target
                .fields()
                .iter()
                .map(|field| match batch.column_by_name(field.name()) {
                    Some(col) if col.data_type() == field.data_type() => Ok(col.clone()),
                    Some(col) => arrow::compute::cast(col, field.data_type())
                        .map_err(|e| Error::Schema(format!("{url}: column '{}': {e}", field.name()))),
                    None => Ok(arrow::array::new_null_array(field.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<_>>>()?;
            RecordBatch::try_new(target.clone(), columns)
                .map_err(Error::arrow("widening to the union schema"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded { schema: target, batches, ..part })
}

/// Reads a Parquet file (or some of its row groups). `lenient`: projected columns the file
/// lacks are left out and a predicate it cannot be planned against prunes nothing (a file of
/// an older schema, conformed afterwards).
async fn read_parquet(storage: &Storage, file: &FileSlice, read: &Read<'_>) -> Result<Loaded> {
    let counter = Arc::new(IoCounter::default());
    let opened = open_parquet(storage, file, read, counter.clone()).await?;
    let schema = opened.schema.clone();
    let batches: Vec<RecordBatch> = opened.batches().try_collect().await?;
    Ok(Loaded {
        schema,
        batches,
        bytes_read: counter.bytes(),
        objects_read: 1,
        requests: counter.requests(),
        records_skipped: 0,
    })
}

/// The Parquet scans of a task's main table read as one stream, file after file, as the task's
/// plan consumes it; `None` unless every input is a Parquet scan of one schema (files of evolved
/// schemas are conformed to their union, and read whole). The first file is opened here (its
/// footer gives the schema); the others when the stream reaches them, each checked against it.
/// `counter` adds up the bytes and requests of every file; `filter`, when given, is applied to
/// the rows of every file (see [`RowFilter`]).
pub async fn stream_parquet(
    storage: Arc<Storage>,
    inputs: &[&Input],
    counter: Arc<IoCounter>,
    filter: Option<Arc<dyn RowFilter>>,
) -> Result<Option<Stream>> {
    let mut files = Vec::new();
    for input in inputs {
        let Input::Scan {
            format: FileFormat::Parquet,
            files: slices,
            projection,
            predicate,
            schema: None,
            ..
        } = input
        else {
            return Ok(None);
        };
        files.extend(slices.iter().map(|f| (f.clone(), projection.clone(), predicate.clone())));
    }
    let mut files = files.into_iter();
    let Some((file, projection, predicate)) = files.next() else { return Ok(None) };
    let first = open_parquet(
        &storage,
        &file,
        &Read::whole(projection.as_deref(), predicate.as_deref(), filter.as_ref()),
        counter.clone(),
    )
    .await?;
    let schema = first.schema.clone();
    let expected = schema.clone();
    let rest = futures::stream::iter(files).then(move |(file, projection, predicate)| {
        let (storage, counter, expected, filter) =
            (storage.clone(), counter.clone(), expected.clone(), filter.clone());
        async move {
            let read = Read::whole(projection.as_deref(), predicate.as_deref(), filter.as_ref());
            let opened = open_parquet(&storage, &file, &read, counter).await?;
            if opened.schema.fields() != expected.fields() {
                return Err(Error::Schema("inputs of table 0 of one task differ in schema".into()));
            }
            Ok(opened)
        }
    });
    let batches = futures::stream::once(async { Ok::<_, Error>(first) })
        .chain(rest)
        .map_ok(OpenedParquet::batches)
        .try_flatten();
    Ok(Some(Stream { schema, batches: batches.boxed() }))
}

/// Rows a Parquet scan keeps, applied as its files are read (a task's first filter, by
/// `ops::table::scan_filter`), for each file as the filter prepares itself for it.
pub trait RowFilter: Send + Sync + std::fmt::Debug {
    /// The filter for a file whose Arrow schema is `file` (its footer `metadata`, the row groups
    /// read `row_groups`), read as its columns `indices` in that order (`None`: all); `None`
    /// when this file is read without it.
    fn prepare(
        &self,
        file: &SchemaRef,
        metadata: &ParquetMetaData,
        row_groups: &[usize],
        indices: Option<&[usize]>,
        url: &str,
    ) -> Result<Option<Arc<dyn FileFilter>>>;
}

/// A [`RowFilter`] prepared for one file.
pub trait FileFilter: Send + Sync + std::fmt::Debug {
    /// The file's schema as the reader is to decode it (some columns may be read as other
    /// types, which [`Self::apply`] turns back).
    fn hint(&self) -> SchemaRef;
    /// The rows of `batch` (projected columns, decoded as [`Self::hint`] says) that the filter
    /// keeps, with the file's types; `None` when it keeps none.
    fn apply(&self, batch: RecordBatch) -> Result<Option<RecordBatch>>;
}

/// How to read a Parquet file.
struct Read<'a> {
    /// The columns to read, in this order; `None`: all.
    projection: Option<&'a [String]>,
    /// A predicate that prunes row groups and pages (never rows).
    prune: Option<&'a str>,
    /// Projected columns the file lacks are left out and a predicate it cannot be planned
    /// against prunes nothing (a file of an older schema, conformed afterwards).
    lenient: bool,
    /// A filter applied to the rows read.
    filter: Option<&'a Arc<dyn RowFilter>>,
}

impl<'a> Read<'a> {
    /// A read of a file of the scan's own schema.
    fn whole(
        projection: Option<&'a [String]>,
        prune: Option<&'a str>,
        filter: Option<&'a Arc<dyn RowFilter>>,
    ) -> Self {
        Self { projection, prune, lenient: false, filter }
    }
}

/// A Parquet file opened for reading: its footer read, row groups and pages pruned.
struct OpenedParquet {
    url: String,
    schema: SchemaRef,
    /// `None` when pruning left nothing to read.
    stream: Option<ParquetRecordBatchStream<ObjectReader>>,
    /// The requested order of the projected columns, when it is not the file's.
    order: Option<Vec<usize>>,
    /// The filter applied to the rows read, as prepared for this file.
    filter: Option<Arc<dyn FileFilter>>,
}

impl OpenedParquet {
    /// The file's batches, columns in the requested order, filtered when a filter applies.
    fn batches(self) -> BoxStream<'static, Result<RecordBatch>> {
        let Some(stream) = self.stream else { return futures::stream::empty().boxed() };
        let (url, order, filter) = (self.url, self.order, self.filter);
        stream
            .filter_map(move |batch| {
                let batch = batch.map_err(|e| parquet_error(&url, e)).and_then(|batch| match &order {
                    Some(order) => batch.project(order).map_err(Error::arrow("reordering projected columns")),
                    None => Ok(batch),
                });
                let kept = match (&filter, batch) {
                    (Some(filter), Ok(batch)) => filter.apply(batch).transpose(),
                    (None, batch) => Some(batch),
                    (_, Err(e)) => Some(Err(e)),
                };
                std::future::ready(kept)
            })
            .boxed()
    }
}

async fn open_parquet(
    storage: &Storage,
    file: &FileSlice,
    read: &Read<'_>,
    counter: Arc<IoCounter>,
) -> Result<OpenedParquet> {
    let url = &file.object.url;
    let loc = storage.resolve(url)?;
    let mut reader = ObjectReader::new(loc.store.clone(), loc.path.clone(), file.object.size, counter)
        .local_file(loc.file());
    // With a predicate, also load the page index (if the file has one) to skip pages.
    let page_index = if read.prune.is_some() { PageIndexPolicy::Optional } else { PageIndexPolicy::Skip };
    let options = ArrowReaderOptions::new().with_page_index_policy(page_index);
    let footer = ArrowReaderMetadata::load_async(&mut reader, options.clone())
        .await
        .map_err(|e| parquet_error(url, e))?;
    let file_schema = footer.schema().clone();
    let metadata = footer.metadata().clone();
    let (projection, predicate, lenient) = (read.projection, read.prune, read.lenient);
    let mut row_groups: Vec<usize> = match &file.row_groups {
        Some(rgs) => rgs.clone(),
        None => (0..metadata.num_row_groups()).collect(),
    };
    if let Some(&bad) = row_groups.iter().find(|&&rg| rg >= metadata.num_row_groups()) {
        return Err(Error::Changed { url: url.clone(), detail: format!("row group {bad} does not exist") });
    }
    let mut selection = None;
    // Planned once, used for the row groups and then for the pages.
    let physical = match predicate.map(|p| physical_predicate(p, &file_schema)).transpose() {
        Ok(p) => p,
        Err(_) if lenient => None,
        Err(e) => return Err(e),
    };
    if let Some(physical) = physical {
        let keep = prune_row_groups(&metadata, &file_schema, &physical, &row_groups);
        row_groups = row_groups.into_iter().zip(keep).filter_map(|(rg, k)| k.then_some(rg)).collect();
        if !row_groups.is_empty()
            && let Some((groups, rows)) =
                prune_pages(&metadata, &file_schema, footer.parquet_schema(), &physical, &row_groups)
        {
            row_groups = groups;
            selection = Some(rows);
        }
    }
    let (indices, schema) = projected(&file_schema, projection, lenient, url)?;
    // The projected reader orders columns as in the file; reorder to the requested order.
    let order = indices.as_ref().and_then(|ix| {
        let mut sorted = ix.clone();
        sorted.sort_unstable();
        (&sorted != ix)
            .then(|| ix.iter().map(|i| sorted.iter().position(|s| s == i).unwrap_or_default()).collect())
    });
    if row_groups.is_empty() {
        return Ok(OpenedParquet { url: url.clone(), schema, stream: None, order, filter: None });
    }
    let prepared = match read.filter {
        Some(filter) => filter.prepare(&file_schema, &metadata, &row_groups, indices.as_deref(), url)?,
        None => None,
    };
    // Columns read as other types: the footer again, with the hint.
    let footer = match &prepared {
        Some(prepared) => {
            ArrowReaderMetadata::try_new(metadata.clone(), options.with_schema(prepared.hint()))
                .map_err(|e| parquet_error(url, e))?
        }
        None => footer,
    };
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer);
    let mask = match &indices {
        Some(ix) => ProjectionMask::roots(builder.parquet_schema(), ix.iter().copied()),
        None => ProjectionMask::all(),
    };
    // Decoders reserve a batch's capacity up front: batches no larger than the row groups keep
    // small row groups from holding mostly-empty buffers.
    let largest = row_groups.iter().map(|&rg| metadata.row_group(rg).num_rows().max(1) as usize).max();
    let batch_size = largest.unwrap_or(1).min(64 * 1024);
    let mut builder = builder.with_row_groups(row_groups);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    let stream = builder
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| parquet_error(url, e))?;
    Ok(OpenedParquet { url: url.clone(), schema, stream: Some(stream), order, filter: prepared })
}

/// The file's column indices of `projection` and the schema they make; `lenient` leaves out
/// the columns the file lacks.
fn projected(
    file_schema: &SchemaRef,
    projection: Option<&[String]>,
    lenient: bool,
    url: &str,
) -> Result<(Option<Vec<usize>>, SchemaRef)> {
    let Some(cols) = projection else { return Ok((None, file_schema.clone())) };
    let mut indices = Vec::with_capacity(cols.len());
    for c in cols {
        match file_schema.index_of(c) {
            Ok(i) => indices.push(i),
            Err(_) if lenient => {}
            Err(_) => return Err(Error::Schema(format!("{url}: no column '{c}'"))),
        }
    }
    let schema = Arc::new(file_schema.project(&indices).map_err(|e| Error::Schema(e.to_string()))?);
    Ok((Some(indices), schema))
}

/// A Parquet reader's error: the storage error under it when there is one (the reader's I/O
/// goes through object_store), otherwise the file's.
fn parquet_error(url: &str, e: ParquetError) -> Error {
    let source = match e {
        ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(store) => return Error::from_store(url, *store),
            Err(other) => ParquetError::External(other),
        },
        other => other,
    };
    Error::Decode { url: url.to_string(), source: DecodeError::Parquet(source) }
}

/// Row-group pruning from column statistics: `true` where a row group may hold matching rows.
/// Uses DataFusion's `PruningPredicate`, so it never drops a row group that could match.
pub fn prune_row_groups(
    metadata: &ParquetMetaData,
    schema: &SchemaRef,
    predicate: &Arc<dyn PhysicalExpr>,
    row_groups: &[usize],
) -> Vec<bool> {
    // `None`: the pruner cannot reason about this predicate; keep every row group.
    let Some(pruning) =
        PruningPredicateBuilder::new().with_file_schema(schema.clone()).build(predicate.clone())
    else {
        return vec![true; row_groups.len()];
    };
    let stats = RowGroupStats { metadata, schema, row_groups };
    pruning.prune(&stats).unwrap_or_else(|_| vec![true; row_groups.len()])
}

/// The pushed-down predicate (SQL) planned against the file's schema.
fn physical_predicate(predicate: &str, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    // Planning one expression needs no catalog and no parallelism; the session is built once
    // (registering DataFusion's functions) and shared, as planning registers nothing in it.
    static PLANNING: std::sync::LazyLock<SessionContext> = std::sync::LazyLock::new(|| {
        SessionContext::new_with_config(
            SessionConfig::new().with_target_partitions(1).with_information_schema(false),
        )
    });
    let ctx = &*PLANNING;
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| Error::Schema(e.to_string()))?;
    let expr = ctx
        .parse_sql_expr(predicate, &df_schema)
        .map_err(|e| Error::Schema(format!("predicate '{predicate}': {e}")))?;
    ctx.create_physical_expr(expr, &df_schema)
        .map_err(|e| Error::Schema(format!("predicate '{predicate}': {e}")))
}

/// Page pruning from the page index (per-page min/max in the column index, page locations in
/// the offset index): the row groups to read and a selection of their rows that skips pages
/// that cannot match. `None` when the file has no page index or no page can be skipped.
fn prune_pages(
    metadata: &ParquetMetaData,
    schema: &SchemaRef,
    parquet_schema: &SchemaDescriptor,
    predicate: &Arc<dyn PhysicalExpr>,
    row_groups: &[usize],
) -> Option<(Vec<usize>, RowSelection)> {
    if metadata.column_index().is_none() || metadata.offset_index().is_none() {
        return None;
    }
    let filter = PagePruningAccessPlanFilter::new(predicate, schema.clone());
    let mut plan = ParquetAccessPlan::new_none(metadata.num_row_groups());
    for &rg in row_groups {
        plan.scan(rg);
    }
    let metrics = ExecutionPlanMetricsSet::new();
    let file_metrics = ParquetFileMetrics::new(0, "page-pruning", &metrics);
    let plan = filter.prune_plan_with_page_index(plan, schema, parquet_schema, metadata, &file_metrics);
    let groups = plan.row_group_indexes();
    match plan.into_overall_row_selection(metadata.row_groups()) {
        Ok(Some(selection)) => Some((groups, selection)),
        // Nothing to skip within row groups, or a selection the reader would not accept: read
        // the row groups whole (pruning never changes the answer).
        Ok(None) | Err(_) => None,
    }
}

struct RowGroupStats<'a> {
    metadata: &'a ParquetMetaData,
    schema: &'a SchemaRef,
    row_groups: &'a [usize],
}

impl RowGroupStats<'_> {
    fn converter(&self, column: &Column) -> Option<StatisticsConverter<'_>> {
        StatisticsConverter::try_new(&column.name, self.schema, self.metadata.file_metadata().schema_descr())
            .ok()
    }

    fn groups(&self) -> impl Iterator<Item = &parquet::file::metadata::RowGroupMetaData> {
        self.row_groups.iter().map(|&i| self.metadata.row_group(i))
    }
}

impl PruningStatistics for RowGroupStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?.row_group_mins(self.groups()).ok()
    }
    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.converter(column)?.row_group_maxes(self.groups()).ok()
    }
    fn num_containers(&self) -> usize {
        self.row_groups.len()
    }
    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let counts = self.converter(column)?.row_group_null_counts(self.groups()).ok()?;
        Some(Arc::new(counts))
    }
    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self.groups().map(|rg| Some(rg.num_rows().max(0) as u64)).collect();
        Some(Arc::new(counts))
    }
    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// An Arrow IPC file of `bytes`, read from `url`.
fn read_ipc(url: &str, bytes: Bytes, projection: Option<&[String]>) -> Result<Loaded> {
    let size = bytes.len() as u64;
    let (schema, batches) = ipc::decode_file(url, bytes, projection)?;
    Ok(Loaded { schema, batches, bytes_read: size, objects_read: 1, requests: 1, records_skipped: 0 })
}
