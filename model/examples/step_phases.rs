//! Where a training step's time goes: forward (loss), backward, gradient norm, AdamW and
//! EMA, timed separately on synthetic batches (8 + 8 frames × 12 slots), mean over the
//! iterations after 3 warm-up steps. Runs with the `physworld` binary's runtime settings
//! (`physworld_model::runtime`), each step with rayon's workers kept spinning as the
//! trainer does (`with_warm_workers`; `NO_WARM=1` leaves them to sleep, for comparison).
//!
//! `cargo run --release -p physworld-model --example step_phases -- [tiny|small] [batch] [iterations]`

use std::time::Instant;

use candle_core::Device;
use physworld_model::{AdamW, Batch, LossConfig, ModelConfig, Normalizer, OptimConfig, WorldModel, synthetic_windows};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> physworld_model::Result<()> {
    physworld_model::runtime::exec_with_runtime_env();
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("tiny", |s| s.as_str());
    let batch_size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20).max(1);
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3], shape_kind: true };
    // Objects only: the synthetic windows carry no static scene.
    let model = WorldModel::new(&ModelConfig { scene: false, ..ModelConfig::preset(preset)? }, 0, &Device::Cpu)?;
    let mut opt = AdamW::new(model.trainable(), &OptimConfig::default())?;
    let batch = Batch::new(&synthetic_windows(batch_size, 16, 12), &norm, &Device::Cpu)?;
    let loss_cfg = LossConfig::default();
    let mut ms = [0f64; 5];
    let warm = std::env::var_os("NO_WARM").is_none(); // see the module doc
    for i in 0..iters + 3 {
        let mut step = || -> physworld_model::Result<[Instant; 6]> {
            let t0 = Instant::now();
            let parts = model.loss(&batch, 8, &loss_cfg)?;
            let t1 = Instant::now();
            let grads = parts.total.backward()?;
            let t2 = Instant::now();
            std::hint::black_box(opt.grad_norm(&grads)?);
            let t3 = Instant::now();
            opt.step(&grads, 1e-4, 1.0)?;
            let t4 = Instant::now();
            model.ema_update(0.996)?;
            let t5 = Instant::now();
            Ok([t0, t1, t2, t3, t4, t5])
        };
        let [t0, t1, t2, t3, t4, t5] = if warm { physworld_model::runtime::with_warm_workers(step)? } else { step()? };
        if i >= 3 {
            for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)].iter().enumerate() {
                ms[k] += (*b - *a).as_secs_f64() * 1000.0 / iters as f64;
            }
        }
    }
    println!(
        "{preset}, batch {batch_size}: forward {:.1} ms, backward {:.1}, grad norm {:.1}, AdamW {:.1}, EMA {:.1}; step {:.1} ms",
        ms[0],
        ms[1],
        ms[2],
        ms[3],
        ms[4],
        ms.iter().sum::<f64>()
    );
    Ok(())
}
