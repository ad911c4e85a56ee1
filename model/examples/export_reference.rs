//! Write a model, a batch and the model's outputs on it, for the Python reference
//! (`benchmarks/compare/jepa_reference.py`, NumPy or PyTorch) to check and to time against.
//!
//! ```sh
//! cargo run --release -p physworld-model --example export_reference -- OUT [PRESET] [BATCH] [RUN]
//! ```
//! Writes `OUT/model.safetensors` (online, target and predictor weights, the names of a
//! checkpoint), `OUT/batch.safetensors` (the synthetic batch of 8 + 8 frames × 12 slots that
//! `benches/train_step.rs` times, and the outputs: encoder, target encoder, prediction of
//! the last 8 frames, loss terms) and `OUT/config.json` (model and loss config). With
//! `RUN`, the weights come from that run's latest checkpoint instead of a fresh init.

use std::path::PathBuf;

use candle_core::Device;
use physworld_model::{Batch, LossConfig, ModelConfig, Normalizer, WorldModel, synthetic_windows};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().ok_or("usage: export_reference OUT [PRESET] [BATCH] [RUN]")?);
    let preset = args.get(1).map_or("tiny", String::as_str);
    let batch_size: usize = args.get(2).map_or(Ok(32), |b| b.parse())?;
    let dev = Device::Cpu;
    let (cfg, model) = match args.get(3) {
        Some(run) => {
            let (model, cfg, _) = physworld_model::load_run(&PathBuf::from(run), &dev)?;
            (cfg.model, model)
        }
        None => {
            // Objects only: the synthetic windows carry no static scene.
            let cfg = ModelConfig { scene: false, ..ModelConfig::preset(preset)? };
            let model = WorldModel::new(&cfg, 0, &dev)?;
            (cfg, model)
        }
    };
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3], shape_kind: true };
    let batch = Batch::new(&synthetic_windows(batch_size, 16, 12), &norm, &dev)?;
    physworld_model::reference::export_reference(&out, &model, &cfg, &LossConfig::default(), &batch, 8)?;
    println!("wrote {} (preset {preset}, batch {batch_size})", out.display());
    Ok(())
}
