//! Writing user-visible output as Parquet.

use crate::error::{Error, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// One Parquet part (zstd). Deterministic for the same input: a retry writes identical bytes.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let context = "encoding a Parquet part";
    let parquet = |source| Error::Parquet { context, source };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("shoal {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).map_err(parquet)?;
    for b in batches {
        writer.write(b).map_err(parquet)?;
    }
    Ok(Bytes::from(writer.into_inner().map_err(parquet)?))
}
