//! Turning dataset windows into tensors: normalised object features, validity masks and
//! actions.

use candle_core::{Device, Tensor};
use physworld_pipeline::EpisodeFrames;
use physworld_pipeline::stats::FeatureStats;

use crate::config::{ACTION_DIM, OBS_DIM, SCENE_DIM};
use crate::error::Result;

/// Per-component normalisation `(x - mean) / std` of the 16 continuous features.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalizer {
    /// Means.
    pub mean: Vec<f32>,
    /// Standard deviations (floored at 1e-3).
    pub std: Vec<f32>,
    /// Action scale.
    pub action_std: Vec<f32>,
    /// Whether each object's shape kind reaches the model as a one-hot (true, the
    /// default), or its four features stay zero (false: the shape is in the sizes and the
    /// motion only). Set from the run's `model.shape` ([`crate::ShapeInput`]) and saved
    /// with the checkpoint, so every reader of the run builds the same features.
    /// Checkpoints written before it existed load with true, and with true it is not
    /// written, so their bytes do not change.
    #[serde(default = "crate::config::default_true", skip_serializing_if = "crate::config::is_true")]
    pub shape_kind: bool,
}

/// The continuous object features, as the frames table stores them.
const CONTINUOUS: [(&str, usize); 5] = physworld_pipeline::OBJECT_FLOAT_FEATURES;

impl Normalizer {
    /// From a dataset's train-only `stats.json`.
    pub fn from_stats(stats: &std::collections::BTreeMap<String, FeatureStats>) -> Self {
        let (mut mean, mut std) = (Vec::new(), Vec::new());
        for (name, k) in CONTINUOUS {
            for c in 0..k {
                let s = stats.get(name);
                mean.push(s.and_then(|s| s.mean.get(c)).copied().unwrap_or(0.0) as f32);
                std.push((s.and_then(|s| s.std.get(c)).copied().unwrap_or(1.0) as f32).max(1e-3));
            }
        }
        let action_std = (0..ACTION_DIM)
            .map(|c| {
                stats
                    .get(physworld_pipeline::columns::ACTION)
                    .and_then(|s| s.std.get(c))
                    .map_or(1.0, |v| (*v as f32).max(1e-3))
            })
            .collect();
        Normalizer { mean, std, action_std, shape_kind: true }
    }
}

/// A batch of windows.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, T, S, OBS_DIM]` normalised features (zeros where invalid).
    pub obs: Tensor,
    /// `[B, T, S]` 1.0 where the object is present and visible, else 0.0.
    pub valid: Tensor,
    /// `[B, T, ACTION_DIM]` normalised actions (zeros where none).
    pub actions: Tensor,
    /// `[B, T]` 1.0 where the frame has an action.
    pub has_action: Tensor,
    /// Windows.
    pub size: usize,
    /// Frames per window.
    pub frames: usize,
    /// Slots.
    pub slots: usize,
    /// The windows' static scenes as tokens; `None` when no window has one.
    pub scene: Option<SceneTokens>,
}

/// The static scenes of a batch's windows, padded to the longest.
#[derive(Debug, Clone)]
pub struct SceneTokens {
    /// `[B, K, SCENE_DIM]` features (zeros where padded).
    pub tokens: Tensor,
    /// `[B, K]` 1.0 for a real box, 0.0 for padding.
    pub valid: Tensor,
}

/// Features of one scene box: one-hot kind, centre normalised like object positions (and
/// clipped to ±10 standard deviations: the floor is far larger than any object), rotation,
/// log half extents.
fn scene_features(b: &physworld_pipeline::SceneBox, norm: &Normalizer, out: &mut Vec<f32>) {
    for k in 0..physworld_pipeline::SCENE_KINDS {
        out.push(if usize::from(b.kind) == k { 1.0 } else { 0.0 });
    }
    for c in 0..3 {
        out.push(((b.position[c] - norm.mean[c]) / norm.std[c]).clamp(-10.0, 10.0));
    }
    out.extend(b.rotation);
    for c in 0..3 {
        out.push(b.half_extents[c].max(1e-3).ln());
    }
}

impl Batch {
    /// Assemble `windows` (all of one length) on `device`.
    pub fn new(windows: &[EpisodeFrames], norm: &Normalizer, device: &Device) -> Result<Batch> {
        let b = windows.len();
        let t = windows.first().map_or(0, |w| w.frames);
        let s = windows.first().map_or(0, |w| w.slots);
        let mut obs = Vec::with_capacity(b * t * s * OBS_DIM);
        let mut valid = Vec::with_capacity(b * t * s);
        let mut actions = Vec::with_capacity(b * t * ACTION_DIM);
        let mut has_action = Vec::with_capacity(b * t);
        for w in windows {
            for f in 0..t {
                for o in 0..s {
                    let k = f * s + o;
                    let ok = w.present[k] && w.visible[k];
                    valid.push(if ok { 1.0f32 } else { 0.0 });
                    if !ok {
                        obs.extend(std::iter::repeat_n(0.0f32, OBS_DIM));
                        continue;
                    }
                    let raw = [
                        &w.position[k * 3..k * 3 + 3],
                        &w.rotation[k * 4..k * 4 + 4],
                        &w.linvel[k * 3..k * 3 + 3],
                        &w.angvel[k * 3..k * 3 + 3],
                        &w.size[k * 3..k * 3 + 3],
                    ];
                    let mut c = 0;
                    for part in raw {
                        for x in part {
                            obs.push((x - norm.mean[c]) / norm.std[c]);
                            c += 1;
                        }
                    }
                    for kind in 0..4 {
                        obs.push(if norm.shape_kind && w.shape[k] == kind { 1.0 } else { 0.0 });
                    }
                }
                has_action.push(if w.has_action[f] { 1.0f32 } else { 0.0 });
                for c in 0..ACTION_DIM {
                    actions.push(if w.has_action[f] { w.action[f * 3 + c] / norm.action_std[c] } else { 0.0 });
                }
            }
        }
        let k = windows.iter().map(|w| w.scene.len()).max().unwrap_or(0);
        let scene = if k == 0 {
            None
        } else {
            let mut tokens = Vec::with_capacity(b * k * SCENE_DIM);
            let mut valid = Vec::with_capacity(b * k);
            for w in windows {
                for i in 0..k {
                    match w.scene.get(i) {
                        Some(sb) => {
                            scene_features(sb, norm, &mut tokens);
                            valid.push(1.0f32);
                        }
                        None => {
                            tokens.extend(std::iter::repeat_n(0.0f32, SCENE_DIM));
                            valid.push(0.0);
                        }
                    }
                }
            }
            Some(SceneTokens {
                tokens: Tensor::from_vec(tokens, (b, k, SCENE_DIM), device)?,
                valid: Tensor::from_vec(valid, (b, k), device)?,
            })
        };
        Ok(Batch {
            scene,
            obs: Tensor::from_vec(obs, (b, t, s, OBS_DIM), device)?,
            valid: Tensor::from_vec(valid, (b, t, s), device)?,
            actions: Tensor::from_vec(actions, (b, t, ACTION_DIM), device)?,
            has_action: Tensor::from_vec(has_action, (b, t), device)?,
            size: b,
            frames: t,
            slots: s,
        })
    }
}

/// `n` deterministic synthetic windows of `t` frames × `s` slots (smooth waves, the last 3
/// slots absent, every 7th token invisible, an action every frame): inputs for benchmarks
/// and for cross-framework checks that need no dataset.
pub fn synthetic_windows(n: usize, t: usize, s: usize) -> Vec<EpisodeFrames> {
    (0..n)
        .map(|w| {
            let k = t * s;
            let wave = |i: usize, c: f32| (i as f32 * 0.37 + w as f32 + c).sin();
            EpisodeFrames {
                episode_index: w as u64,
                start: 0,
                frames: t,
                slots: s,
                present: (0..k).map(|i| i % s < s.saturating_sub(3)).collect(),
                visible: (0..k).map(|i| i % 7 != 0).collect(),
                position: (0..k * 3).map(|i| wave(i, 0.0)).collect(),
                rotation: (0..k).flat_map(|_| [0.0, 0.0, 0.0, 1.0]).collect(),
                linvel: (0..k * 3).map(|i| wave(i, 1.0)).collect(),
                angvel: (0..k * 3).map(|i| wave(i, 2.0)).collect(),
                size: vec![0.1; k * 3],
                shape: (0..k).map(|i| (i % 4) as i8).collect(),
                action: (0..t * 3).map(|i| wave(i, 3.0)).collect(),
                has_action: vec![true; t],
                scene: Vec::new(),
            }
        })
        .collect()
}
