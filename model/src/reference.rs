//! Inputs and outputs of a model on one batch, written for the Python reference
//! implementation (`benchmarks/compare/jepa_reference.py`), which reproduces them from the
//! checkpoint's weights on NumPy or PyTorch.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use crate::batch::Batch;
use crate::config::{LossConfig, ModelConfig};
use crate::error::{ModelError, Result};
use crate::jepa::WorldModel;

/// Write `dir/model.safetensors` (every variable, by its checkpoint name),
/// `dir/batch.safetensors` (`obs`, `valid`, `actions`, `has_action`, `scene` and
/// `scene_valid` when the batch has scenes, and the outputs:
/// `encoder`, `target`, `predict` of the last `future` frames, `loss_*` terms under `loss`)
/// and `dir/config.json` (`model`, `loss`, `future_frames`).
pub fn export_reference(
    dir: &Path,
    model: &WorldModel,
    cfg: &ModelConfig,
    loss: &LossConfig,
    batch: &Batch,
    future: usize,
) -> Result<()> {
    let io = |e: std::io::Error| ModelError::Io { path: dir.to_path_buf(), source: e };
    std::fs::create_dir_all(dir).map_err(io)?;
    let weights: HashMap<String, Tensor> =
        model.all_vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    candle_core::safetensors::save(&weights, dir.join("model.safetensors"))?;
    let parts = model.loss(batch, future, loss)?;
    let dev = batch.obs.device();
    let scalar = |x: f32| Tensor::new(&[x], dev);
    let mut data: HashMap<String, Tensor> = HashMap::new();
    data.insert("obs".into(), batch.obs.clone());
    data.insert("valid".into(), batch.valid.clone());
    data.insert("actions".into(), batch.actions.clone());
    data.insert("has_action".into(), batch.has_action.clone());
    if let Some(scene) = &batch.scene {
        data.insert("scene".into(), scene.tokens.clone());
        data.insert("scene_valid".into(), scene.valid.clone());
    }
    data.insert("encoder".into(), model.encode(batch)?);
    data.insert("target".into(), model.target.forward(&batch.obs, &batch.valid, batch.scene.as_ref(), 0)?);
    data.insert("predict".into(), model.predict(batch, future)?);
    data.insert("loss_total".into(), scalar(parts.total.to_scalar::<f32>()?)?);
    data.insert("loss_prediction".into(), scalar(parts.prediction)?);
    data.insert("loss_variance".into(), scalar(parts.variance)?);
    data.insert("loss_covariance".into(), scalar(parts.covariance)?);
    candle_core::safetensors::save(&data, dir.join("batch.safetensors"))?;
    let config = serde_json::json!({ "model": cfg, "loss": loss, "future_frames": future });
    let text = serde_json::to_vec_pretty(&config).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(dir.join("config.json"), text).map_err(io)?;
    Ok(())
}
