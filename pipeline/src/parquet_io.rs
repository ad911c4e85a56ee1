//! Parquet encoding with fixed, deterministic writer settings, and decoding.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
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

/// The writer settings: zstd, fixed row groups, page statistics, no dictionary encoding, a
/// fixed `created_by`.
///
/// Dictionary encoding (both parquet-rs's and pyarrow's default) is off: simulated states
/// rarely repeat a float bit for bit, so each float column filled a 1 MB dictionary page,
/// then fell back to plain pages, and hashing every value cost about 1.5% of `generate`.
/// zstd alone compresses better: a `drop` (8) dataset's files are 26% smaller without it
/// (BENCHMARKS.md, "The writer's share").
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("physworld-pipeline {} (parquet-rs 60.1)", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The output buffer of a file whose uncompressed table takes `table_bytes`: room for a
/// quarter of it (zstd shrinks simulated states 10–30x), at most 256 MiB, so a file is
/// rarely re-grown (and its bytes re-touched) while it is written. Pages past the bytes
/// written are reserved, never touched.
fn output_buffer(table_bytes: usize) -> Vec<u8> {
    Vec::with_capacity((table_bytes / 4).saturating_add(1 << 16).min(256 << 20))
}

/// Encode one batch as a complete Parquet file.
pub fn encode(batch: &RecordBatch, name: &str) -> Result<Vec<u8>> {
    encode_batches(batch.schema(), [Ok(batch.clone())], batch.num_rows(), name)
}

/// Encode a table of `rows` rows, given as consecutive batches of `schema`, as one Parquet
/// file with the settings of [`writer_properties`]: the row groups of [`encode`]'s, while
/// only one batch of Arrow arrays is in memory at a time (the writer keeps the open row
/// group's pages, compressed). Pages end where the batches do (parquet-rs counts its
/// 1 024-value write batches afresh at each batch), so the bytes depend on how the table
/// is cut: the same cut gives the same bytes.
pub fn encode_batches(
    schema: SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    rows: usize,
    name: &str,
) -> Result<Vec<u8>> {
    let mut batches = batches.into_iter().peekable();
    let per_row = match batches.peek() {
        Some(Ok(b)) if b.num_rows() > 0 => b.get_array_memory_size() / b.num_rows(),
        _ => 0,
    };
    let mut w = ArrowWriter::try_new(output_buffer(per_row.saturating_mul(rows)), schema, Some(writer_properties()))
        .map_err(pq_err(name))?;
    for b in batches {
        w.write(&b?).map_err(pq_err(name))?;
    }
    w.into_inner().map_err(pq_err(name))
}

/// Rows per row group of pixels files: a few MB of PNG each, so readers stream images.
pub const IMAGE_ROW_GROUP_ROWS: usize = 256;

/// Writer settings of pixels files ([`crate::pixels`]): uncompressed pages (PNG is
/// compressed already) in small row groups; otherwise the settings of [`writer_properties`].
pub fn image_writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_compression(Compression::UNCOMPRESSED)
        .set_max_row_group_row_count(Some(IMAGE_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("physworld-pipeline {} (parquet-rs 60.1)", env!("CARGO_PKG_VERSION")))
        .build()
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

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use physworld_sim::{Family, Split};

    use super::*;
    use crate::schema::{FRAMES_BATCH_ROWS, Placed, frames_batch, frames_batches, frames_schema};

    /// A shard encoded a batch of whole episodes at a time is the table of one batch of all
    /// its frames, with row groups of [`ROW_GROUP_ROWS`] rows, and no dictionary pages.
    #[test]
    fn batches_encode_the_table_of_one_batch_in_full_row_groups() {
        let s = physworld_sim::generate(&Family::by_name("push").expect("test input"), 3, Split::Train, 0)
            .expect("test input");
        let episode = &s.episodes[0];
        let n = episode.frames.len();
        // Enough episodes for two row groups; the same episode placed at every index.
        let count = ROW_GROUP_ROWS / n + 2;
        let placed: Vec<Placed> = (0..count)
            .map(|k| Placed {
                episode,
                episode_index: k as i64,
                first_frame: (k * n) as i64,
                sample_index: k as i64,
                split: "train",
            })
            .collect();
        let slots = 4;
        let batches: Vec<RecordBatch> = frames_batches(&placed, slots).collect::<Result<_>>().expect("test input");
        assert!(batches.len() > 1);
        for b in &batches {
            assert!(b.num_rows() <= FRAMES_BATCH_ROWS && b.num_rows() % n == 0, "{} rows", b.num_rows());
        }
        let rows = count * n;
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows);

        let bytes = encode_batches(frames_schema(slots), batches.into_iter().map(Ok), rows, "x").expect("test input");
        let whole = frames_batch(&placed, slots).expect("test input");
        let mut at = 0;
        for back in decode(bytes.clone(), "x").expect("test input") {
            let want = whole.slice(at, back.num_rows());
            for (c, field) in whole.schema().fields().iter().enumerate() {
                assert_eq!(back.column(c).to_data(), want.column(c).to_data(), "{} at row {at}", field.name());
            }
            at += back.num_rows();
        }
        assert_eq!(at, rows);

        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("test input");
        let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, [ROW_GROUP_ROWS as i64, (rows - ROW_GROUP_ROWS) as i64]);
        for g in reader.metadata().row_groups() {
            assert!(g.columns().iter().all(|c| c.dictionary_page_offset().is_none()), "a dictionary page");
        }
    }
}
