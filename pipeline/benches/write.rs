//! Parquet write throughput: encoding a frames table with physworld's writer settings.
//!
//! `cargo bench -p physworld-pipeline --bench write`. With `PHYSWORLD_BENCH_PARQUET=FILE`
//! it encodes that file's table (so that `benchmarks/compare/parquet_write.py` can time
//! pyarrow on the very same table); otherwise it simulates 256 `tiny`-suite samples.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use arrow_array::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use physworld_pipeline::{Layout, Placed, Suite, decode, encode, frames_batch};

fn table() -> RecordBatch {
    if let Ok(path) = std::env::var("PHYSWORLD_BENCH_PARQUET") {
        let bytes = std::fs::read(&path).expect("PHYSWORLD_BENCH_PARQUET is readable");
        let batches = decode(bytes, &path).expect("a Parquet file");
        return arrow_select_concat(&batches);
    }
    let suite = Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/tiny.toml")).expect("tiny suite");
    let layout = Layout::new(&suite).expect("layout");
    let samples: Vec<_> = (0..256u64)
        .map(|i| physworld_sim::generate(layout.family_of(i), 0, physworld_sim::Split::Train, i).expect("simulates"))
        .collect();
    let placed: Vec<Placed> = samples
        .iter()
        .flat_map(|s| &s.episodes)
        .enumerate()
        .map(|(k, e)| Placed {
            episode: e,
            episode_index: k as i64,
            first_frame: 0,
            sample_index: k as i64,
            split: "train",
        })
        .collect();
    frames_batch(&placed, layout.max_objects as usize).expect("batch")
}

/// Concatenate batches (small local helper to avoid pulling arrow-select).
fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    if batches.len() == 1 {
        return batches[0].clone();
    }
    // Re-encode each batch separately is not the same work: decode with one large batch.
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn arrow_array::Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            concat(&arrays)
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("same schema")
}

fn concat(arrays: &[&dyn arrow_array::Array]) -> arrow_array::ArrayRef {
    use arrow_array::make_array;
    let datas: Vec<_> = arrays.iter().map(|a| a.to_data()).collect();
    let refs: Vec<_> = datas.iter().collect();
    let mut m = arrow_data::transform::MutableArrayData::new(refs, false, datas.iter().map(|d| d.len()).sum());
    for (i, d) in datas.iter().enumerate() {
        m.try_extend(i, 0, d.len()).expect("fits");
    }
    make_array(m.freeze())
}

fn write(c: &mut Criterion) {
    let batch = table();
    let rows = batch.num_rows() as u64;
    let bytes = batch.get_array_memory_size() as u64;
    eprintln!("table: {rows} rows, {bytes} bytes in memory (arrow-rs), {} columns", batch.num_columns());
    eprintln!("output: {} bytes", encode(&batch, "bench").expect("encodes").len());
    let mut g = c.benchmark_group("parquet_write");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(rows));
    g.bench_function("frames_rows", |b| b.iter(|| black_box(encode(&batch, "bench").expect("encodes").len())));
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("frames_bytes", |b| b.iter(|| black_box(encode(&batch, "bench").expect("encodes").len())));
    g.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
