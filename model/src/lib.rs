//! # physworld-model
//!
//! A Joint-Embedding Predictive Architecture over object tokens, in Candle, after
//! I-JEPA / V-JEPA / V-JEPA 2: an object-token [`Encoder`], an EMA target encoder under
//! stop-gradient, and a narrower [`Predictor`] that predicts the target representations of
//! future frames from context frames (conditioned on actions, block-causal in time). The
//! same backbone trained with [`Objective::StateMse`] predicts future observed states: the
//! non-JEPA baseline. Encoders plug in behind [`FrameEncoder`]
//! ([`WorldModel::with_encoder`]): a pixel ViT slots in there. The loss is V-JEPA's L1,
//! optionally with V-JEPA 2-AC's multi-step rollout term ([`LossConfig::rollout_chunks`])
//! and the PLDM / EB-JEPA anti-collapse terms.
//!
//! Everything random is drawn on the host from seeded generators; norms and the attention
//! softmax have their own backward ([`fused`] on CPU, composed ops elsewhere: Candle's
//! fused kernels have none).
//! [`train`] runs the loop with a checkpointable [`AdamW`], and [`checkpoint`] writes
//! safetensors plus JSON state atomically.

mod batch;
pub mod checkpoint;
mod config;
mod error;
pub mod fused;
mod jepa;
mod layers;
pub mod linalg;
mod optim;
mod params;
mod plot;
mod probe;
mod readout;
pub mod reference;
pub mod remote;
pub mod runtime;
mod trainer;

pub use batch::{Batch, Normalizer, SceneTokens, synthetic_windows};
pub use config::{
    ACTION_DIM, DataConfig, LossConfig, ModelConfig, OBS_DIM, Objective, OptimConfig, SCENE_DIM, ScheduleConfig,
    ShapeInput, TrainConfig,
};
pub use error::{ModelError, Result};
pub use jepa::{
    Encoder, EncoderBuilder, FrameEncoder, InverseDynamics, LossParts, Predictor, WorldModel, WorldModelVars,
    pool_objects, variance_covariance,
};
pub use layers::{
    Attention, Block, LayerNorm, Linear, Mlp, add_vec, attention, attention_composed, gelu, layer_norm_composed,
    layer_norm_plain, mul_vec, sinusoidal, softmax_composed, softmax_last,
};
pub use optim::{AdamW, clip_scale};
pub use params::Params;
pub use plot::plot_metrics;
pub use probe::{AttentiveConfig, AttentiveProbe, ProbeTarget, RidgeProbe, inverse_std};
pub use readout::{
    LearningReport, PositionScores, PropertyScores, ReadoutOptions, SCENE_FEATURES, learning_report, scene_features,
    scene_summary,
};
pub use trainer::{EvalMetrics, StepMetrics, TrainOptions, TrainReport, device, evaluate, load_run, train, write_plot};
