//! Writing user-visible output as Parquet.

use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// A Parquet part (zstd) written batch by batch: row groups are encoded as they fill, so only
/// the encoded bytes and one row group's worth of rows are held. Deterministic for the same
/// input: a retry writes identical bytes.
pub struct PartEncoder {
    writer: ArrowWriter<Vec<u8>>,
}

impl std::fmt::Debug for PartEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartEncoder").finish_non_exhaustive()
    }
}

const CONTEXT: &str = "encoding a Parquet part";

impl PartEncoder {
    pub fn new(schema: &SchemaRef) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_created_by(format!("shoal {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(parquet)?;
        Ok(Self { writer })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(parquet)
    }

    pub fn finish(self) -> Result<Bytes> {
        Ok(Bytes::from(self.writer.into_inner().map_err(parquet)?))
    }
}

fn parquet(source: parquet::errors::ParquetError) -> Error {
    Error::Parquet { context: CONTEXT, source }
}
