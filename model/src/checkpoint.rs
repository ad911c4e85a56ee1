//! Checkpoints: safetensors weights (online, target, predictor), optimiser moments, and
//! a JSON state (step, data position, data identity), written atomically.
//!
//! ```text
//! RUN/config.json
//! RUN/checkpoints/step-000100/{model.safetensors, optim.safetensors, state.json}
//! RUN/checkpoints/latest           name of the newest complete checkpoint
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use physworld_pipeline::write_atomic;
use serde::{Deserialize, Serialize};

use crate::batch::Normalizer;
use crate::error::{ModelError, Result};
use crate::jepa::WorldModel;
use crate::optim::AdamW;

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimisation steps done.
    pub step: u64,
    /// Data epoch in progress.
    pub epoch: u64,
    /// Windows of that epoch already consumed.
    pub consumed: u64,
    /// Adam's update count.
    pub adam_t: u64,
    /// Dataset the model was trained on: folder, suite hash, splits and families.
    pub data: DataIdentity,
    /// Input normalisation (from the dataset's train statistics).
    pub normalizer: Normalizer,
}

/// The identity of the training data (the harness refuses test items that overlap it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// Dataset folder as given.
    pub path: String,
    /// Suite content hash of the dataset.
    pub suite_hash: String,
    /// Splits trained on.
    pub splits: Vec<String>,
    /// Families trained on (empty: all).
    pub families: Vec<String>,
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io { path: path.to_path_buf(), source }
}

/// Folder of checkpoint `step` under `run`.
pub fn checkpoint_dir(run: &Path, step: u64) -> PathBuf {
    run.join("checkpoints").join(format!("step-{step:06}"))
}

/// Write a checkpoint atomically: into a temporary folder, then renamed, then `latest`.
pub fn save(run: &Path, model: &WorldModel, opt: &AdamW, state: &CheckpointState) -> Result<PathBuf> {
    let dir = checkpoint_dir(run, state.step);
    let parent = run.join("checkpoints");
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = parent.join(format!(".tmp-step-{:06}", state.step));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let weights: HashMap<String, Tensor> =
        model.all_vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    candle_core::safetensors::save(&weights, tmp.join("model.safetensors"))?;
    let mut moments: HashMap<String, Tensor> = HashMap::new();
    for (k, t) in &opt.m {
        moments.insert(format!("m.{k}"), t.clone());
    }
    for (k, t) in &opt.v {
        moments.insert(format!("v.{k}"), t.clone());
    }
    candle_core::safetensors::save(&moments, tmp.join("optim.safetensors"))?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| ModelError::Checkpoint { path: tmp.clone(), reason: e.to_string() })?;
    std::fs::write(tmp.join("state.json"), json).map_err(io(&tmp))?;
    for f in ["model.safetensors", "optim.safetensors", "state.json"] {
        let p = tmp.join(f);
        // The safetensors writer creates its files 0600; a run is read by others (a shared
        // results folder, another user's bench) like every other file we write.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).map_err(io(&p))?;
        }
        std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(io(&p))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
    write_atomic(&parent.join("latest"), format!("step-{:06}\n", state.step).as_bytes())?;
    Ok(dir)
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let p = run.join("checkpoints").join("latest");
    if !p.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&p).map_err(io(&p))?;
    Ok(Some(run.join("checkpoints").join(name.trim())))
}

/// Whether `run` holds a finished run of exactly `cfg`: its `config.json` equals `cfg` and
/// its latest checkpoint is the last step (`cfg.schedule.steps`). A missing, unfinished or
/// differently configured run is `false`, never an error.
pub fn finished(run: &Path, cfg: &crate::TrainConfig) -> Result<bool> {
    let Some(dir) = latest(run)? else { return Ok(false) };
    let same = std::fs::read(run.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::TrainConfig>(&b).ok())
        .is_some_and(|c| &c == cfg);
    Ok(same && dir.ends_with(format!("step-{:06}", cfg.schedule.steps)))
}

/// Load weights into `model` (and moments into `opt`) from checkpoint folder `dir`.
pub fn load(dir: &Path, model: &WorldModel, opt: Option<&mut AdamW>, device: &Device) -> Result<CheckpointState> {
    let bad = |reason: String| ModelError::Checkpoint { path: dir.to_path_buf(), reason };
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), device)?;
    for (k, v) in model.all_vars() {
        let t = weights.get(&k).ok_or_else(|| bad(format!("no tensor `{k}` (a different architecture?)")))?;
        if t.dims() != v.as_tensor().dims() {
            return Err(bad(format!("`{k}` has shape {:?}, the model expects {:?}", t.dims(), v.as_tensor().dims())));
        }
        v.set(t)?;
    }
    let state: CheckpointState = serde_json::from_slice(&std::fs::read(dir.join("state.json")).map_err(io(dir))?)
        .map_err(|e| bad(format!("state.json: {e}")))?;
    if let Some(opt) = opt {
        let moments = candle_core::safetensors::load(dir.join("optim.safetensors"), device)?;
        for (k, slot) in opt.m.iter_mut() {
            *slot = moments.get(&format!("m.{k}")).cloned().ok_or_else(|| bad(format!("no moment m.{k}")))?;
        }
        for (k, slot) in opt.v.iter_mut() {
            *slot = moments.get(&format!("v.{k}")).cloned().ok_or_else(|| bad(format!("no moment v.{k}")))?;
        }
        opt.t = state.adam_t;
    }
    Ok(state)
}
