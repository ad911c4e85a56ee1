//! Nested training configuration, saved as JSON beside every checkpoint.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Observation features per object token: position 3, rotation 4, linear velocity 3,
/// angular velocity 3, size 3 (normalised with the dataset's train statistics) and a
/// one-hot shape kind 4. Hidden properties (mass, friction, restitution) are not inputs.
pub const OBS_DIM: usize = 20;
/// Action features per frame (a force, N).
pub const ACTION_DIM: usize = 3;
/// Features per scene token (a static body or goal zone): one-hot kind
/// ([`physworld_pipeline::SCENE_KINDS`]), centre 3 (normalised like object positions),
/// rotation 4, log half extents 3.
pub const SCENE_DIM: usize = physworld_pipeline::SCENE_KINDS + 10;

/// What the predictor is trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// JEPA: the EMA target encoder's (layer-normed) representations of future frames.
    Jepa,
    /// The non-JEPA baseline on the same backbone: the future observed states themselves.
    StateMse,
}

/// How an object's shape reaches the encoder (`model.shape`, `physworld train --shape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShapeInput {
    /// A one-hot shape kind (box, sphere, cylinder, capsule) beside the sizes. The default.
    #[default]
    Kind,
    /// No kind: its four features stay zero, so the shape shows only in the half extents
    /// and in how the object moves. A kind the readout never saw in a role (`physion`'s
    /// held-out cylinder towers, when `roll` trains "cylinder" as "rolling") then does not
    /// move the representations off the readout's range (BENCHMARKS.md, "Shape kinds").
    None,
}

impl ShapeInput {
    fn is_kind(&self) -> bool {
        *self == ShapeInput::Kind
    }
}

/// Architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Objective. Default JEPA.
    pub objective: Objective,
    /// Encoder width.
    pub dim: usize,
    /// Encoder blocks.
    pub depth: usize,
    /// Encoder heads.
    pub heads: usize,
    /// Predictor width (narrower than the encoder).
    pub pred_dim: usize,
    /// Predictor blocks.
    pub pred_depth: usize,
    /// Predictor heads.
    pub pred_heads: usize,
    /// MLP hidden width / block width.
    pub mlp_ratio: f32,
    /// Build an inverse-dynamics head (PLDM / EB-JEPA): it predicts the action between two
    /// consecutive frames from their pooled representations; `loss.inv_weight` weighs its
    /// loss. Default false.
    #[serde(default)]
    pub inverse_dynamics: bool,
    /// Observe the static scene (floor, walls, ramps, container parts, tables, occluders and
    /// goal zones) as tokens that every token of the predictor reads, and with
    /// `scene_encoder` every frame's objects in the encoder too (`physworld train --scene`).
    /// On in every preset, in the predictor only (`scene_encoder = false`): with the scene in
    /// the encoder too the representations lose effective rank on `properties`
    /// (BENCHMARKS.md, "Scene tokens"). Configurations written before it existed load
    /// without it.
    #[serde(default)]
    pub scene: bool,
    /// With `scene`: whether the encoder attends to the scene too (true), or only the
    /// predictor reads it (false, `train --scene predictor`), as V-JEPA 2-AC conditions
    /// its predictor on actions: the representations, and so the prediction targets, stay
    /// those of the objects alone. False in every preset; true when a configuration file
    /// omits it, and then not written, so configurations read and write as they did before
    /// it existed.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub scene_encoder: bool,
    /// How each object's shape reaches the encoder ([`ShapeInput`]). `kind` in every
    /// preset, and then not written, so configurations read and write as they did before
    /// it existed.
    #[serde(default, skip_serializing_if = "ShapeInput::is_kind")]
    pub shape: ShapeInput,
}

pub(crate) fn default_true() -> bool {
    true
}

pub(crate) fn is_true(b: &bool) -> bool {
    *b
}

impl ModelConfig {
    /// A preset: `tiny` (minutes on 2 CPU cores), `small` and `base` (for a GPU).
    pub fn preset(name: &str) -> Result<ModelConfig> {
        let (dim, depth, heads, pred_dim, pred_depth, pred_heads) = match name {
            "tiny" => (64, 2, 4, 48, 2, 4),
            "small" => (192, 6, 6, 128, 4, 4),
            "base" => (384, 12, 6, 256, 6, 8),
            other => return Err(ModelError::config("preset", other, "tiny, small or base")),
        };
        Ok(ModelConfig {
            objective: Objective::Jepa,
            dim,
            depth,
            heads,
            pred_dim,
            pred_depth,
            pred_heads,
            mlp_ratio: 4.0,
            inverse_dynamics: false,
            scene: true,
            scene_encoder: false,
            shape: ShapeInput::Kind,
        })
    }

    /// Check the fields.
    pub fn validate(&self) -> Result<()> {
        for (f, v, h) in [("model.dim", self.dim, self.heads), ("model.pred_dim", self.pred_dim, self.pred_heads)] {
            if v == 0 || h == 0 || v % h != 0 || v % 2 != 0 {
                return Err(ModelError::config(f, v, format!("a positive even multiple of its head count ({h})")));
            }
        }
        if self.depth == 0 || self.pred_depth == 0 {
            return Err(ModelError::config("model.depth", self.depth.min(self.pred_depth), "at least 1 block"));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0) {
            return Err(ModelError::config("model.mlp_ratio", self.mlp_ratio, "a positive number"));
        }
        Ok(())
    }
}

/// Loss weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Variance hinge on context representations (PLDM / VICReg). Default 0.1.
    pub var_weight: f32,
    /// Off-diagonal covariance penalty. Default 0.01.
    pub cov_weight: f32,
    /// Temporal smoothness of consecutive context representations. Default 0.
    pub smooth_weight: f32,
    /// Inverse dynamics: mean squared error of the actions predicted from consecutive
    /// context frames (needs `model.inverse_dynamics`; frames without actions are skipped).
    /// Default 0.
    pub inv_weight: f32,
    /// Multi-step rollout loss (V-JEPA 2-AC): after the first `data.future` frames, predict
    /// this many further chunks of `data.future` frames autoregressively, each from the last
    /// `data.context` frames of observed and already predicted representations (the path
    /// [`crate::WorldModel::rollout`] takes), gradients flowing through the whole rollout.
    /// Training windows grow to `context + future * (1 + rollout_chunks)` frames. Default 0
    /// (off).
    pub rollout_chunks: usize,
    /// Weight of the rollout term (the same error as the prediction term, on the later
    /// chunks' frames). Default 1.
    pub rollout_weight: f32,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            var_weight: 0.1,
            cov_weight: 0.01,
            smooth_weight: 0.0,
            inv_weight: 0.0,
            rollout_chunks: 0,
            rollout_weight: 1.0,
        }
    }
}

impl LossConfig {
    /// Frames the loss needs after the context: the first chunk and the rollout's.
    pub fn future_frames(&self, future: usize) -> usize {
        future * (1 + self.rollout_chunks)
    }
}

/// AdamW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate. Default 1e-3.
    pub lr: f64,
    /// Decoupled weight decay. Default 0.04.
    pub weight_decay: f64,
    /// Adam β1. Default 0.9.
    pub beta1: f64,
    /// Adam β2. Default 0.999.
    pub beta2: f64,
    /// Adam ε. Default 1e-8.
    pub eps: f64,
    /// Global gradient-norm clip (0 disables). Default 1.0.
    pub clip_grad_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { lr: 1e-3, weight_decay: 0.04, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip_grad_norm: 1.0 }
    }
}

/// Learning-rate and EMA schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Optimisation steps. Default 300.
    pub steps: u64,
    /// Linear warm-up steps. Default 30.
    pub warmup_steps: u64,
    /// Final learning rate as a fraction of the peak (cosine decay). Default 0.1.
    pub min_lr_ratio: f64,
    /// EMA momentum at step 0. Default 0.996.
    pub ema_start: f64,
    /// EMA momentum at the last step (linear ramp). Default 1.0.
    pub ema_end: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig { steps: 300, warmup_steps: 30, min_lr_ratio: 0.1, ema_start: 0.996, ema_end: 1.0 }
    }
}

impl ScheduleConfig {
    /// Learning rate at `step` for peak `lr`: linear warm-up, then cosine to `min_lr_ratio`.
    pub fn lr(&self, step: u64, lr: f64) -> f64 {
        if step < self.warmup_steps {
            return lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = lr * self.min_lr_ratio;
        min + (lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }

    /// EMA momentum at `step`.
    pub fn ema(&self, step: u64) -> f64 {
        let t = (step as f64 / self.steps.max(1) as f64).min(1.0);
        self.ema_start + (self.ema_end - self.ema_start) * t
    }
}

/// Training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Context frames. Default 8.
    pub context: usize,
    /// Predicted future frames. Default 8.
    pub future: usize,
    /// Step between window starts. Default 4.
    pub stride: usize,
    /// Windows per batch. Default 32.
    pub batch_size: usize,
    /// Shuffle buffer (windows). Default 1024.
    pub shuffle_buffer: usize,
    /// Train only on these families (Physion's pretraining protocols); empty = all.
    pub families: Vec<String>,
    /// Also train on windows that start before each episode, its first frame held still
    /// ([`physworld_pipeline::WindowSpec::lead_in`]): what planners observe of a scene
    /// before its release. Default false (written only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lead_in: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            context: 8,
            future: 8,
            stride: 4,
            batch_size: 32,
            shuffle_buffer: 1024,
            families: Vec::new(),
            lead_in: false,
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Architecture.
    pub model: ModelConfig,
    /// Loss weights.
    #[serde(default)]
    pub loss: LossConfig,
    /// Optimiser.
    #[serde(default)]
    pub optim: OptimConfig,
    /// Schedules.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Data.
    #[serde(default)]
    pub data: DataConfig,
    /// Seed of initialisation and data order.
    #[serde(default)]
    pub seed: u64,
    /// Validation every N steps (0 disables). Default 50.
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Validation batches. Default 4.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Checkpoint every N steps (and at the end). Default 100.
    #[serde(default = "default_ckpt_every")]
    pub checkpoint_every: u64,
}

fn default_eval_every() -> u64 {
    50
}
fn default_eval_batches() -> usize {
    4
}
fn default_ckpt_every() -> u64 {
    100
}

impl TrainConfig {
    /// The `preset` model with default training settings.
    pub fn preset(name: &str) -> Result<TrainConfig> {
        Ok(TrainConfig {
            model: ModelConfig::preset(name)?,
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            data: DataConfig::default(),
            seed: 0,
            eval_every: default_eval_every(),
            eval_batches: default_eval_batches(),
            checkpoint_every: default_ckpt_every(),
        })
    }

    /// Check every field; errors name it.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        if self.data.context == 0 || self.data.future == 0 {
            return Err(ModelError::config(
                "data.context/future",
                format!("{}/{}", self.data.context, self.data.future),
                "at least 1 frame each",
            ));
        }
        if self.loss.rollout_chunks > 64 {
            return Err(ModelError::config(
                "loss.rollout_chunks",
                self.loss.rollout_chunks,
                "0 (off) to 64 further chunks of data.future frames",
            ));
        }
        if self.data.batch_size == 0 {
            return Err(ModelError::config("data.batch_size", 0, "at least 1"));
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            return Err(ModelError::config("optim.lr", self.optim.lr, "a positive number"));
        }
        for (f, v) in [("optim.beta1", self.optim.beta1), ("optim.beta2", self.optim.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(ModelError::config(f, v, "a number in [0, 1)"));
            }
        }
        for (f, v) in [("schedule.ema_start", self.schedule.ema_start), ("schedule.ema_end", self.schedule.ema_end)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ModelError::config(f, v, "a momentum in [0, 1]"));
            }
        }
        if self.schedule.steps == 0 {
            return Err(ModelError::config("schedule.steps", 0, "at least 1"));
        }
        for (f, v) in [
            ("loss.var_weight", self.loss.var_weight),
            ("loss.cov_weight", self.loss.cov_weight),
            ("loss.smooth_weight", self.loss.smooth_weight),
            ("loss.inv_weight", self.loss.inv_weight),
            ("loss.rollout_weight", self.loss.rollout_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ModelError::config(f, v, "a finite weight >= 0"));
            }
        }
        if self.loss.inv_weight > 0.0 && !self.model.inverse_dynamics {
            return Err(ModelError::config(
                "loss.inv_weight",
                self.loss.inv_weight,
                "0 unless model.inverse_dynamics = true (the head it trains)",
            ));
        }
        Ok(())
    }
}
