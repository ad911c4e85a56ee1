//! Parquet encoding with fixed, deterministic writer settings, and decoding.

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{PipelineError, Result, pq_err};

/// zstd level of every file.
pub const ZSTD_LEVEL: i32 = 3;
/// Rows per row group (about 10–80 MB in memory depending on the slot count, within the
/// range Hugging Face recommends).
pub const ROW_GROUP_ROWS: usize = 65_536;

/// The writer settings: zstd, fixed row groups, page statistics, a fixed `created_by`.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("physworld-pipeline {} (parquet-rs 60.1)", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Encode one batch as a complete Parquet file.
pub fn encode(batch: &RecordBatch, name: &str) -> Result<Vec<u8>> {
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(writer_properties())).map_err(pq_err(name))?;
    w.write(batch).map_err(pq_err(name))?;
    w.into_inner().map_err(pq_err(name))
}

/// Rows per row group of pixels files: a few MB of PNG each, so readers stream images.
pub const IMAGE_ROW_GROUP_ROWS: usize = 256;

/// Encode a pixels file ([`crate::pixels`]): uncompressed pages (PNG is compressed already)
/// in small row groups; otherwise the settings of [`writer_properties`].
pub fn encode_images(batch: &RecordBatch, name: &str) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_max_row_group_row_count(Some(IMAGE_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("physworld-pipeline {} (parquet-rs 60.1)", env!("CARGO_PKG_VERSION")))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(pq_err(name))?;
    w.write(batch).map_err(pq_err(name))?;
    w.into_inner().map_err(pq_err(name))
}

/// Decode a whole Parquet file into batches; truncated or corrupt bytes give an error
/// naming `name`.
pub fn decode(bytes: Vec<u8>, name: &str) -> Result<Vec<RecordBatch>> {
    let corrupt =
        |e: String| PipelineError::Corrupt { path: name.into(), reason: format!("not a readable Parquet file: {e}") };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).map_err(|e| corrupt(e.to_string()))?;
    let reader = builder.with_batch_size(8192).build().map_err(|e| corrupt(e.to_string()))?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| corrupt(e.to_string()))
}
