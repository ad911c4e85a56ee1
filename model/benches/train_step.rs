//! Train-step and inference throughput of the `tiny` and `small` presets on CPU.
//!
//! `cargo bench -p physworld-model --bench train_step`. Synthetic batches (no dataset
//! needed): 8 + 8 frames × 12 slots, batch 32 (tiny) and 16 (small). The `ops` group
//! times the fused layer norm, softmax, GELU and attention against the composed ops, forward + backward, at
//! the sizes of the tiny predictor. The `probe` group times a cross-validated ridge probe
//! (5 folds, 6 penalties) at the sizes `physworld probe` fits on the properties suite. The
//! `plan` group times one control step of the latent CEM planner.

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, Throughput, criterion_group};
use physworld_model::{
    AdamW, Batch, LossConfig, ModelConfig, Normalizer, OptimConfig, RidgeProbe, WorldModel, attention,
    attention_composed, gelu, layer_norm_composed, layer_norm_plain, softmax_composed, softmax_last, synthetic_windows,
};

/// The allocator the `physworld` binary uses (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Op = fn(&Tensor) -> physworld_model::Result<Tensor>;

fn ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("ops");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    // The tiny predictor's attention scores (batch 32, 4 heads, 16 frames × 13 tokens) and
    // its token activations.
    fn candle_gelu(x: &Tensor) -> physworld_model::Result<Tensor> {
        Ok(x.gelu_erf()?)
    }
    let cases: [(&str, (usize, usize), Op, Op); 3] = [
        ("softmax", (32 * 4 * 208, 208), softmax_last, softmax_composed),
        ("layer_norm", (32 * 208, 48), layer_norm_plain, layer_norm_composed),
        ("gelu", (32 * 208, 192), gelu, candle_gelu),
    ];
    for (name, shape, fused, composed) in cases {
        let n = shape.0 * shape.1;
        let data: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.618).sin() * 4.0).collect();
        let x = Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu).expect("x")).expect("var");
        for (label, op) in [("fused", fused), ("composed", composed)] {
            g.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| {
                    let y = op(x.as_tensor()).expect("op");
                    black_box(y.sum_all().and_then(|l| l.backward()).expect("backward"))
                })
            });
        }
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3], shape_kind: true };
    let mut g = c.benchmark_group("model");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (preset, batch_size) in [("tiny", 32usize), ("small", 16)] {
        // Objects only: the synthetic windows carry no static scene (the presets' scene
        // tokens cost a training step about 10% on tiny's scenes, BENCHMARKS.md).
        let cfg = ModelConfig { scene: false, ..ModelConfig::preset(preset).expect("preset") };
        let model = WorldModel::new(&cfg, 0, &Device::Cpu).expect("model");
        let mut opt = AdamW::new(model.trainable(), &OptimConfig::default()).expect("adamw");
        let batch = Batch::new(&synthetic_windows(batch_size, 16, 12), &norm, &Device::Cpu).expect("batch");
        let loss_cfg = LossConfig::default();
        g.throughput(Throughput::Elements(batch_size as u64));
        g.bench_function(format!("train_step/{preset}"), |b| {
            // As the trainer runs a step: with rayon's workers kept spinning.
            b.iter(|| {
                physworld_model::runtime::with_warm_workers(|| {
                    let parts = model.loss(&batch, 8, &loss_cfg).expect("loss");
                    let grads = parts.total.backward().expect("backward");
                    opt.step(&grads, 1e-4, 1.0).expect("step");
                    model.ema_update(0.996).expect("ema");
                    black_box(parts.prediction)
                })
            })
        });
        g.bench_function(format!("predict/{preset}"), |b| {
            b.iter(|| black_box(model.predict(&batch, 8).expect("predict")))
        });
    }
    // The tiny predictor's attention: batch 32, 16 frames × 13 tokens, 4 heads of 12, with
    // its block-causal mask.
    let (b, n, d) = (32usize, 208usize, 48usize);
    let data: Vec<f32> = (0..b * n * 3 * d).map(|i| ((i as f32) * 0.618).sin()).collect();
    let qkv = Var::from_tensor(&Tensor::from_vec(data, (b, n, 3 * d), &Device::Cpu).expect("qkv")).expect("var");
    let mask: Vec<f32> = (0..b * n * n).map(|k| if (k % n) / 13 > ((k / n) % n) / 13 { -1e9 } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (b, 1, n, n), &Device::Cpu).expect("mask");
    type Attn = fn(&Tensor, Option<&Tensor>, usize) -> physworld_model::Result<Tensor>;
    for (label, op) in [("fused", attention as Attn), ("composed", attention_composed as Attn)] {
        g.bench_function(format!("attention/{label}"), |bch| {
            bch.iter(|| {
                let y = op(qkv.as_tensor(), Some(&mask), 4).expect("attention");
                black_box(y.sum_all().and_then(|l| l.backward()).expect("backward"))
            })
        });
    }
    g.finish();
}

fn probe(c: &mut Criterion) {
    let mut g = c.benchmark_group("probe");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    // 20 000 rows (the readout split's objects), 2 targets; features of the tiny (64 + 16)
    // and small (192 + 16) models with the raw state.
    let n = 20_000usize;
    for d in [80usize, 208] {
        let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.618).sin()).collect();
        let y: Vec<f32> = (0..n * 2).map(|i| ((i as f32) * 0.377).cos()).collect();
        g.bench_function(format!("ridge_cv/{n}x{d}"), |b| {
            b.iter(|| black_box(RidgeProbe::fit_cv(&x, &y, d, 2, &RidgeProbe::LAMBDAS, 5).expect("fit")))
        });
        // What fit_cv did before it shared statistics: a fresh fit per penalty and fold.
        g.bench_function(format!("ridge_refit_each_fold/{n}x{d}"), |b| {
            b.iter(|| {
                for &lambda in &RidgeProbe::LAMBDAS {
                    for k in 0..5 {
                        let (lo, hi) = (k * n / 5, (k + 1) * n / 5);
                        let keep = |v: &[f32], w: usize| -> Vec<f32> {
                            v[..lo * w].iter().chain(&v[hi * w..]).copied().collect()
                        };
                        let p = RidgeProbe::fit(&keep(&x, d), &keep(&y, 2), d, 2, lambda).expect("fit");
                        black_box(p.predict(&x[lo * d..hi * d]));
                    }
                }
                black_box(RidgeProbe::fit(&x, &y, d, 2, 1.0).expect("fit"))
            })
        });
    }
    g.finish();
}

/// One control step of the latent CEM planner (`benchmarks/src/latent_plan.rs`) as
/// `plan-push` runs it with the defaults: 10 iterations, each imagining 400 candidate
/// action sequences of horizon 2 (held 6 frames: 12 frames, two predictor chunks) from
/// one observed context of 8 frames, the puck in one slot.
fn plan(c: &mut Criterion) {
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3], shape_kind: true };
    let mut g = c.benchmark_group("plan");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    // Objects only, as the synthetic window has no static scene.
    let cfg = ModelConfig { scene: false, ..ModelConfig::preset("tiny").expect("preset") };
    let model = WorldModel::new(&cfg, 0, &Device::Cpu).expect("model");
    let ctx = Batch::new(&synthetic_windows(1, 8, 1), &norm, &Device::Cpu).expect("batch");
    let (samples, steps) = (400usize, 12usize);
    let acts: Vec<f32> = (0..samples * (8 + steps) * 3).map(|i| ((i as f32) * 0.618).sin()).collect();
    let actions = Tensor::from_vec(acts, (samples, 8 + steps, 3), &Device::Cpu).expect("actions");
    g.throughput(Throughput::Elements(samples as u64 * 10));
    g.bench_function("cem_step/tiny", |b| {
        b.iter(|| {
            for _ in 0..10 {
                black_box(model.imagine(&ctx, &actions, steps, 8, 8).expect("imagine"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench, ops, probe, plan);

/// `criterion_main!`, after re-executing with the runtime settings the `physworld`
/// binary runs with (`physworld_model::runtime`), so that the figures are the binary's.
fn main() {
    physworld_model::runtime::exec_with_runtime_env();
    physworld_model::runtime::set_warm_workers(true);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
