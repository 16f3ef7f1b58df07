//! Distinct values of a Parquet file's string columns, read from their dictionary pages at plan
//! time: what a condition on one string column keeps is then estimated by evaluating it on
//! those values (`estimate.rs`), where it would otherwise be assumed to keep 20% of rows
//! (`p_type = 'ECONOMY ANODIZED STEEL'` keeps 1 of 150 types; `l_shipmode IN ('MAIL', 'SHIP')`
//! 2 of 7; `p_name LIKE 'forest%'` 1 of 92).
//!
//! Only the first row group of one file is read, and only dictionary pages of at most
//! [`DICTIONARY_AT_MOST`] bytes, [`DICTIONARIES_AT_MOST`] in all: a few small range reads per
//! table, in one request where the store coalesces them. A page is decoded when an estimate
//! first asks for its column's values, so the dictionaries of columns no filter tests (a
//! table's comments, a few hundred KB each) cost their read only. A writer that gave up on a
//! dictionary part-way (a column of many distinct values) left the values it met first, a
//! sample rather than all of them; the share of them a condition holds for is still its
//! estimate.

use arrow::array::{ArrayBuilder, ArrayRef, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Schema};
use bytes::{Buf, Bytes};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The largest dictionary page read (compressed, with its header): TPC-H's `p_name`, five
/// words of 92 a part, has a 330 KB page in a row group of 25,000 parts.
pub const DICTIONARY_AT_MOST: u64 = 512 << 10;
/// The most bytes of dictionary pages read for one table: the smallest pages first, so a wide
/// table of many string columns costs planning a bounded read.
pub const DICTIONARIES_AT_MOST: u64 = 4 << 20;

/// Distinct values of string columns, by column name. Printed as counts only (which decodes
/// every page).
#[derive(Clone, Default)]
pub struct SampledValues(HashMap<String, Arc<Sample>>);

/// One column's values: its dictionary page as read, decoded once asked for.
struct Sample {
    /// `None` for values known already.
    page: Option<DictionaryPage>,
    values: OnceLock<Option<ArrayRef>>,
}

/// A dictionary page as read, with what decoding it needs.
struct DictionaryPage {
    window: Window,
    chunk: ColumnChunkMetaData,
    rows: usize,
}

impl SampledValues {
    /// The sampled values of `column`, decoded on first use; `None` if it has none, or if its
    /// page cannot be decoded (the values only sharpen estimates, and the scan itself reports a
    /// broken file).
    pub fn get(&self, column: &str) -> Option<&ArrayRef> {
        let sample = self.0.get(column)?;
        sample
            .values
            .get_or_init(|| {
                let page = sample.page.as_ref()?;
                let values = dictionary(&page.window, &page.chunk, page.rows).ok()??;
                Some(Arc::new(values) as ArrayRef)
            })
            .as_ref()
    }

    /// `self` with `values` known for `column`.
    #[cfg(test)]
    pub fn with(mut self, column: &str, values: ArrayRef) -> Self {
        let sample = Sample { page: None, values: OnceLock::from(Some(values)) };
        self.0.insert(column.to_string(), Arc::new(sample));
        self
    }
}

impl std::fmt::Debug for SampledValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut counts: Vec<_> =
            self.0.keys().filter_map(|name| Some((name, self.get(name)?.len()))).collect();
        counts.sort();
        f.debug_map().entries(counts).finish()
    }
}

/// The dictionary pages of `meta`'s top-level string columns in its first row group, for the
/// columns whose page is small enough; decoded when [`SampledValues::get`] asks.
pub async fn string_values<R: AsyncFileReader>(
    reader: &mut R,
    meta: &ParquetMetaData,
    schema: &Schema,
) -> SampledValues {
    within(reader, meta, schema, DICTIONARIES_AT_MOST).await
}

/// [`string_values`], reading at most `budget` bytes of dictionary pages.
async fn within<R: AsyncFileReader>(
    reader: &mut R,
    meta: &ParquetMetaData,
    schema: &Schema,
    budget: u64,
) -> SampledValues {
    let Some(rg) = meta.row_groups().first() else {
        return SampledValues::default();
    };
    let descr = meta.file_metadata().schema_descr();
    let mut wanted: Vec<(String, &ColumnChunkMetaData, std::ops::Range<u64>)> = descr
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path().parts().len() == 1 && c.physical_type() == PhysicalType::BYTE_ARRAY)
        .filter(|(_, c)| {
            schema.field_with_name(c.name()).is_ok_and(|f| {
                matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            })
        })
        .filter_map(|(i, c)| {
            let chunk = rg.column(i);
            let start = u64::try_from(chunk.dictionary_page_offset()?).ok()?;
            let end = u64::try_from(chunk.data_page_offset()).ok()?;
            (start < end && end - start <= DICTIONARY_AT_MOST)
                .then(|| (c.name().to_string(), chunk, start..end))
        })
        .collect();
    wanted.sort_by_key(|(_, _, range)| range.end - range.start);
    let mut total = 0;
    wanted.retain(|(_, _, range)| {
        total += range.end - range.start;
        total <= budget
    });
    if wanted.is_empty() {
        return SampledValues::default();
    }
    let ranges = wanted.iter().map(|(_, _, r)| r.clone()).collect();
    let Ok(pages) = reader.get_byte_ranges(ranges).await else {
        return SampledValues::default();
    };
    let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
    let samples = wanted.into_iter().zip(pages).map(|((name, chunk, range), bytes)| {
        let window = Window { start: range.start, bytes };
        let page = DictionaryPage { window, chunk: chunk.clone(), rows };
        (name, Arc::new(Sample { page: Some(page), values: OnceLock::new() }))
    });
    SampledValues(samples.collect())
}

/// Decodes the dictionary page at the start of `window` (a PLAIN-encoded page of byte arrays);
/// `None` when it is not a dictionary page or holds other than UTF-8 strings.
fn dictionary(
    window: &Window,
    chunk: &ColumnChunkMetaData,
    rows: usize,
) -> Result<Option<StringArray>, ParquetError> {
    let mut pages = SerializedPageReader::new(Arc::new(window.clone()), chunk, rows, None)?;
    let Some(Page::DictionaryPage { buf, num_values, .. }) = pages.get_next_page()? else {
        return Ok(None);
    };
    let mut buf = buf;
    let mut values = StringBuilder::with_capacity(num_values as usize, buf.len());
    while buf.remaining() >= 4 {
        let len = buf.get_u32_le() as usize;
        if len > buf.remaining() {
            return Ok(None);
        }
        let value = buf.split_to(len);
        match std::str::from_utf8(&value) {
            Ok(s) => values.append_value(s),
            Err(_) => return Ok(None),
        }
    }
    Ok((values.len() == num_values as usize).then(|| values.finish()))
}

/// Bytes `start..` of a file, read through Parquet's page reader at the file's offsets.
#[derive(Clone)]
struct Window {
    start: u64,
    bytes: Bytes,
}

impl Window {
    fn slice(&self, start: u64, len: Option<usize>) -> Result<Bytes, ParquetError> {
        let from = start.checked_sub(self.start).and_then(|s| usize::try_from(s).ok());
        let end = from.map(|f| len.map_or(self.bytes.len(), |l| f.saturating_add(l)));
        match (from, end) {
            (Some(f), Some(e)) if e <= self.bytes.len() => Ok(self.bytes.slice(f..e)),
            _ => Err(ParquetError::EOF(format!("bytes at {start} lie outside the dictionary page read"))),
        }
    }
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

impl ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        self.slice(start, Some(length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// A file of `rows` rows: a low-cardinality string column, a unique one, and an integer.
    fn file(rows: usize, dictionary_page_limit: usize) -> Bytes {
        let kinds = StringArray::from_iter_values((0..rows).map(|i| ["MAIL", "SHIP", "AIR"][i % 3]));
        let names = StringArray::from_iter_values((0..rows).map(|i| format!("name number {i:08}")));
        let ids = Int64Array::from_iter_values(0..rows as i64);
        let batch = RecordBatch::try_from_iter([
            ("kind", Arc::new(kinds) as ArrayRef),
            ("name", Arc::new(names) as ArrayRef),
            ("id", Arc::new(ids) as ArrayRef),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_dictionary_page_size_limit(dictionary_page_limit)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    async fn sampled(bytes: Bytes) -> SampledValues {
        sampled_within(bytes, DICTIONARIES_AT_MOST).await
    }

    async fn sampled_within(bytes: Bytes, budget: u64) -> SampledValues {
        let meta = parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&bytes).unwrap();
        let schema =
            parquet::arrow::parquet_to_arrow_schema(meta.file_metadata().schema_descr(), None).unwrap();
        let mut reader = std::io::Cursor::new(bytes);
        within(&mut reader, &meta, &schema, budget).await
    }

    #[tokio::test]
    async fn the_smallest_dictionaries_are_read_first_within_the_budget() {
        // The kinds' page is a few dozen bytes, the names' tens of KB: a budget of 1 KiB reads
        // only the kinds.
        let values = sampled_within(file(3000, 1 << 20), 1 << 10).await;
        assert_eq!(format!("{values:?}"), r#"{"kind": 3}"#);
    }

    fn strings(values: &ArrayRef) -> Vec<&str> {
        let values = values.as_any().downcast_ref::<StringArray>().unwrap();
        let mut out: Vec<_> = values.iter().flatten().collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn dictionaries_of_string_columns_give_their_distinct_values() {
        let values = sampled(file(3000, 1 << 20)).await;
        assert_eq!(strings(values.get("kind").unwrap()), ["AIR", "MAIL", "SHIP"]);
        // All 3000 names fit in the writer's dictionary: all of them, each once.
        assert_eq!(values.get("name").unwrap().len(), 3000);
        assert!(values.get("id").is_none(), "integers have ranges, not sampled values");
        assert_eq!(format!("{values:?}"), r#"{"kind": 3, "name": 3000}"#);
    }

    #[tokio::test]
    async fn pages_are_decoded_only_for_the_columns_asked_for() {
        let values = sampled(file(3000, 1 << 20)).await;
        let decoded = |column: &str| values.0[column].values.get().is_some();
        assert!(!decoded("kind") && !decoded("name"), "read, not decoded");
        assert_eq!(strings(values.get("kind").unwrap()), ["AIR", "MAIL", "SHIP"]);
        assert!(decoded("kind") && !decoded("name"), "only the column asked for is decoded");
    }

    #[tokio::test]
    async fn a_dictionary_the_writer_gave_up_on_leaves_the_values_it_met_first() {
        // A 4 KiB dictionary limit: the names' dictionary stops after ~200 values and the rest
        // are written plain; the kinds' three values still fit.
        let values = sampled(file(3000, 4 << 10)).await;
        assert_eq!(strings(values.get("kind").unwrap()), ["AIR", "MAIL", "SHIP"]);
        let names = values.get("name").unwrap().len();
        assert!(names > 0 && names < 3000, "{names} names sampled");
    }
}
