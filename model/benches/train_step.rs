//! Train-step and inference throughput of the `tiny` and `small` presets on CPU.
//!
//! `cargo bench -p physworld-model --bench train_step`. Synthetic batches (no dataset
//! needed): 8 + 8 frames × 12 slots, batch 32 (tiny) and 16 (small).

use std::hint::black_box;
use std::time::Duration;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use physworld_model::{AdamW, Batch, LossConfig, ModelConfig, Normalizer, OptimConfig, WorldModel, synthetic_windows};

fn bench(c: &mut Criterion) {
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3] };
    let mut g = c.benchmark_group("model");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (preset, batch_size) in [("tiny", 32usize), ("small", 16)] {
        let cfg = ModelConfig::preset(preset).expect("preset");
        let model = WorldModel::new(&cfg, 0, &Device::Cpu).expect("model");
        let mut opt = AdamW::new(model.trainable(), &OptimConfig::default()).expect("adamw");
        let batch = Batch::new(&synthetic_windows(batch_size, 16, 12), &norm, &Device::Cpu).expect("batch");
        let loss_cfg = LossConfig::default();
        g.throughput(Throughput::Elements(batch_size as u64));
        g.bench_function(format!("train_step/{preset}"), |b| {
            b.iter(|| {
                let parts = model.loss(&batch, 8, &loss_cfg).expect("loss");
                let grads = parts.total.backward().expect("backward");
                opt.step(&grads, 1e-4, 1.0).expect("step");
                model.ema_update(0.996).expect("ema");
                black_box(parts.prediction)
            })
        });
        g.bench_function(format!("predict/{preset}"), |b| {
            b.iter(|| black_box(model.predict(&batch, 8).expect("predict")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
