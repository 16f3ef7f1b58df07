//! A Parquet [`AsyncFileReader`] over `object_store`, counting the bytes and requests it makes.
//!
//! parquet 59.3 deprecates its own `ParquetObjectReader`; this is the small reader its docs ask
//! for, with two additions we need: exact I/O accounting for task metrics, and concurrent range
//! reads through `get_ranges` (object_store coalesces nearby ranges).
//!
//! A file in a local folder is read directly ([`ObjectReader::local_file`]): object_store's
//! local store zeroes every buffer before reading into it, a second pass over each byte read.

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes and requests made by one or more readers.
#[derive(Debug, Default)]
pub struct IoCounter {
    pub bytes: AtomicU64,
    pub requests: AtomicU64,
}

impl IoCounter {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    fn add(&self, bytes: u64, requests: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
    }
}

/// Reads one Parquet object of known size.
#[derive(Debug, Clone)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    counter: Arc<IoCounter>,
    /// The object's file, when it is in a local folder: read without the store.
    file: Option<Arc<std::path::PathBuf>>,
}

impl ObjectReader {
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64, counter: Arc<IoCounter>) -> Self {
        Self { store, path, size, counter, file: None }
    }

    /// Reads the object from `file`, its path in a local folder, when there is one: every range
    /// read into memory that is not zeroed first, all of a call's ranges in one visit to the
    /// blocking pool with the file opened once.
    pub fn local_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.file = file.map(Arc::new);
        self
    }

    async fn get_ranges(&self, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        let Some(file) = self.file.clone() else {
            return self.store.get_ranges(&self.path, &ranges).await.map_err(external);
        };
        let read = tokio::task::spawn_blocking(move || read_file_ranges(&file, &ranges))
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        read.map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// `ranges` of the file at `path`, opened once, each into a buffer that is not zeroed first.
fn read_file_ranges(path: &std::path::Path, ranges: &[Range<u64>]) -> std::io::Result<Vec<Bytes>> {
    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(named)?;
    ranges
        .iter()
        .map(|range| {
            super::local::read_range_unzeroed(&mut file, range.clone()).map(Bytes::from).map_err(named)
        })
        .collect()
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move {
            let bytes = match &self.file {
                Some(_) => self.get_ranges(vec![range]).await?.pop().unwrap_or_default(),
                None => self.store.get_range(&self.path, range).await.map_err(external)?,
            };
            self.counter.add(bytes.len() as u64, 1);
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move {
            let requests = ranges.len() as u64;
            let parts = self.get_ranges(ranges).await?;
            let total = parts.iter().map(|b| b.len() as u64).sum();
            self.counter.add(total, requests);
            Ok(parts)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let mut reader = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                // One request usually covers the footer of files written by common tools.
                .with_prefetch_hint(Some(64 * 1024));
            // The page index (column and offset indexes) only when asked: it costs requests.
            if let Some(o) = options {
                reader = reader
                    .with_column_index_policy(o.column_index_policy())
                    .with_offset_index_policy(o.offset_index_policy());
            }
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    #[tokio::test]
    async fn a_local_file_reads_as_the_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let file = dir.path().join("part.bin");
        std::fs::write(&file, &bytes).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let path = Path::from("part.bin");
        let counter = Arc::new(IoCounter::default());
        let mut direct = ObjectReader::new(store.clone(), path.clone(), bytes.len() as u64, counter.clone())
            .local_file(Some(file.clone()));
        let mut through_store =
            ObjectReader::new(store, path, bytes.len() as u64, Arc::new(IoCounter::default()));
        let ranges = vec![0..10, 5..70_000, 199_990..200_000, 100..100];
        let read = direct.get_byte_ranges(ranges.clone()).await.unwrap();
        assert_eq!(read, through_store.get_byte_ranges(ranges.clone()).await.unwrap());
        for (got, range) in read.iter().zip(&ranges) {
            assert_eq!(got.as_ref(), &bytes[range.start as usize..range.end as usize]);
        }
        assert_eq!(direct.get_bytes(7..9).await.unwrap().as_ref(), &bytes[7..9]);
        assert_eq!((counter.bytes(), counter.requests()), (10 + 69_995 + 10 + 2, 5));
        // A range past the end is an error naming the file, not a short buffer.
        let err = direct.get_bytes(199_000..200_001).await.unwrap_err().to_string();
        assert!(err.contains("part.bin") && err.contains("beyond the end"), "{err}");
    }
}
