//! Write a model, a batch and the model's outputs on it, for the PyTorch reference
//! (`benchmarks/compare/torch_reference.py`) to check and to time against.
//!
//! ```sh
//! cargo run --release -p physworld-model --example export_reference -- OUT [PRESET] [BATCH] [RUN]
//! ```
//! Writes `OUT/model.safetensors` (online, target and predictor weights, the names of a
//! checkpoint), `OUT/batch.safetensors` (the synthetic batch of 8 + 8 frames × 12 slots that
//! `benches/train_step.rs` times, and the outputs: encoder, target encoder, prediction of
//! the last 8 frames, loss terms) and `OUT/config.json` (model and loss config). With
//! `RUN`, the weights come from that run's latest checkpoint instead of a fresh init.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
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
            let cfg = ModelConfig::preset(preset)?;
            let model = WorldModel::new(&cfg, 0, &dev)?;
            (cfg, model)
        }
    };
    let norm = Normalizer { mean: vec![0.0; 16], std: vec![1.0; 16], action_std: vec![1.0; 3] };
    let batch = Batch::new(&synthetic_windows(batch_size, 16, 12), &norm, &dev)?;
    let loss_cfg = LossConfig::default();
    std::fs::create_dir_all(&out)?;
    let weights: HashMap<String, Tensor> =
        model.all_vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    candle_core::safetensors::save(&weights, out.join("model.safetensors"))?;
    let parts = model.loss(&batch, 8, &loss_cfg)?;
    let scalar = |x: f32| Tensor::new(&[x], &dev);
    let mut data: HashMap<String, Tensor> = HashMap::new();
    data.insert("obs".into(), batch.obs.clone());
    data.insert("valid".into(), batch.valid.clone());
    data.insert("actions".into(), batch.actions.clone());
    data.insert("has_action".into(), batch.has_action.clone());
    data.insert("encoder".into(), model.encode(&batch)?);
    data.insert("target".into(), model.target.forward(&batch.obs, &batch.valid, 0)?);
    data.insert("predict".into(), model.predict(&batch, 8)?);
    data.insert("loss_total".into(), scalar(parts.total.to_scalar::<f32>()?)?);
    data.insert("loss_prediction".into(), scalar(parts.prediction)?);
    data.insert("loss_variance".into(), scalar(parts.variance)?);
    data.insert("loss_covariance".into(), scalar(parts.covariance)?);
    candle_core::safetensors::save(&data, out.join("batch.safetensors"))?;
    let config = serde_json::json!({ "model": cfg, "loss": loss_cfg, "future_frames": 8 });
    std::fs::write(out.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    println!("wrote {} (preset {preset}, batch {batch_size})", out.display());
    Ok(())
}
