//! Scan planning: `read_parquet`, `read_csv` and `read_json` on a [`Client`] turn a location
//! into a lazy [`DataFrame`] from object metadata and samples only (Parquet footers and
//! statistics; the first MB of the first, middle and last text files). One room per format;
//! the types users write (`dtype`) and how inferred types widen across files are in `types`.
//!
//! Partitions: Parquet files split by row groups toward `partition_bytes`; uncompressed text
//! files split into byte blocks of `blocksize` (64 MB by default, as Dask), which workers cut
//! at record ends (`shoal_worker::io::textfile`); compressed text files are read whole.

mod csv;
mod json;
mod parquet;
mod types;
pub mod values;

pub use csv::CsvRead;
pub use json::JsonRead;
pub use parquet::{ParquetRead, SchemaMode};
pub use types::parse_dtype;

use super::DataFrame;
use super::plan::{FileInfo, Plan, ScanNode};
use crate::client::Client;
use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use shoal_protocol::{Block, FileSlice, ObjectRef};
use std::sync::Arc;

/// Dask's default `blocksize`: text files larger than this are read in blocks of about it.
pub const DEFAULT_BLOCKSIZE: u64 = 64_000_000;

/// How much of a text file schema inference samples.
const SAMPLE_BYTES: u64 = 1 << 20;

impl Client {
    fn scan(&self, node: ScanNode) -> DataFrame {
        DataFrame::new(self.clone(), Arc::new(Plan::Scan(node)), Vec::new())
    }
}

fn field_list(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}

/// The objects at `location`, at least one.
pub(crate) async fn list_some(client: &Client, location: &str) -> Result<Vec<ObjectRef>> {
    let objects = client.storage().list(location).await?;
    if objects.is_empty() {
        return Err(Error::NotFound(location.to_string()));
    }
    Ok(objects)
}

/// The files schema inference samples: the first, the middle and the last.
fn sampled(objects: &[ObjectRef]) -> Vec<&ObjectRef> {
    let mut ix = vec![0, objects.len() / 2, objects.len().saturating_sub(1)];
    ix.dedup();
    ix.into_iter().filter_map(|i| objects.get(i)).collect()
}

/// Text files as partitions: each file whole, or — when `split` says it may be and it is larger
/// than `blocksize` (`0`: never) — in blocks of about `blocksize` bytes.
pub(crate) fn text_partitions(
    objects: Vec<ObjectRef>,
    blocksize: u64,
    split: impl Fn(&ObjectRef) -> Result<bool>,
) -> Result<(Vec<FileInfo>, Vec<Vec<FileSlice>>)> {
    let mut partitions = Vec::new();
    for object in &objects {
        if blocksize == 0 || object.size <= blocksize || !split(object)? {
            partitions.push(vec![FileSlice::whole(object.clone())]);
            continue;
        }
        let n = object.size.div_ceil(blocksize);
        let step = object.size.div_ceil(n);
        for i in 0..n {
            let block = Block { start: i * step, end: ((i + 1) * step).min(object.size) };
            partitions.push(vec![FileSlice { object: object.clone(), row_groups: None, block: Some(block) }]);
        }
    }
    let files = objects
        .into_iter()
        .map(|object| FileInfo { object, row_groups: vec![], int_bounds: vec![] })
        .collect();
    Ok((files, partitions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_text_files_split_into_blocks_that_cover_them() {
        let obj = |n: &str, size| ObjectRef { url: format!("file:///{n}"), size, e_tag: None };
        let objects = vec![obj("small.csv", 10), obj("big.csv", 250), obj("big.csv.gz", 250)];
        let (files, parts) = text_partitions(objects, 100, |o| Ok(!o.url.ends_with(".gz"))).unwrap();
        assert_eq!(files.len(), 3);
        let blocks: Vec<Option<Block>> = parts.iter().map(|p| p[0].block).collect();
        assert_eq!(
            blocks,
            vec![
                None,
                Some(Block { start: 0, end: 84 }),
                Some(Block { start: 84, end: 168 }),
                Some(Block { start: 168, end: 250 }),
                None
            ]
        );
    }
}
