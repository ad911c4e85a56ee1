//! The JEPA world model over object tokens: encoder, EMA target encoder, predictor.
//!
//! # Shapes
//! `B` windows, `T = Tc + Tf` frames (context + future), `S` object slots, `D` encoder
//! width, `P` predictor width.

use std::collections::BTreeMap;

use candle_core::{D, DType, Device, Tensor, Var};

use crate::batch::{Batch, SceneTokens};
use crate::config::{ACTION_DIM, ModelConfig, OBS_DIM, Objective, SCENE_DIM};
use crate::error::Result;
use crate::layers::{Block, LayerNorm, Linear, layer_norm_plain, sinusoidal};
use crate::params::Params;

/// Additive mask value for dropped attention entries.
const NEG: f32 = -1e9;

/// What turns observed frames into per-frame token representations: the slot where
/// encoders plug into the world model. The object-token [`Encoder`] is the one built in.
/// Another implementation is handed to [`WorldModel::with_encoder`], which builds the
/// online copy and the EMA target copy from the same draws; the predictor, the losses,
/// EMA and rollout then work through it. What still assumes one token per object slot:
/// the batch's validity mask `[B, T, S]` (used by the loss, the predictor's mask and the
/// probes) and [`crate::load_run`], which rebuilds the object-token encoder. A pixel ViT,
/// whose tokens are patches, needs a token mask of its own and a config field naming the
/// encoder kind; both belong to the change that adds it.
pub trait FrameEncoder: Send + Sync {
    /// `obs` `[B, T, ...]` (for objects `[B, T, S, F]`), `valid` `[B, T, N]` per output
    /// token, the windows' static scenes (the same for every frame), frame times
    /// `t0..t0+T` → `[B, T, N, D]` with `D` = [`FrameEncoder::width`]. A frame's
    /// representation depends on that frame, the scene and its time only, so callers
    /// encode just the frames they need (the loss, the target frames; the probes, one).
    fn forward(&self, obs: &Tensor, valid: &Tensor, scene: Option<&SceneTokens>, t0: usize) -> Result<Tensor>;
    /// Representation width `D`.
    fn width(&self) -> usize;
}

/// Builds an encoder's variables under a [`Params`] scope (called twice: online, target).
pub type EncoderBuilder<'a> = &'a dyn Fn(&mut Params, &ModelConfig) -> Result<Box<dyn FrameEncoder>>;

/// The object-token encoder: embeds each object of a frame, adds a time encoding and
/// attends across the frame's objects and, with `model.scene` and `model.scene_encoder`
/// (`train --scene both`; the presets leave the scene to the predictor), the scene's static boxes
/// and goal zones (embedded by their own layer, without a time encoding: they do not
/// move). Invalid (absent or invisible) objects and scene padding are masked as keys;
/// only the object tokens are returned.
pub struct Encoder {
    embed: Linear,
    scene_embed: Option<Linear>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    dim: usize,
}

impl Encoder {
    /// Build under `p` (names `embed.*`, `scene_embed.*` with `model.scene` and
    /// `model.scene_encoder`, `blocks.N.*`, `norm.*`).
    pub fn new(p: &mut Params, cfg: &ModelConfig) -> Result<Self> {
        let embed = Linear::new(p, "embed", OBS_DIM, cfg.dim, true)?;
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(p, &format!("blocks.{i}"), cfg.dim, cfg.heads, cfg.mlp_ratio))
            .collect::<Result<_>>()?;
        let norm = LayerNorm::new(p, "norm", cfg.dim)?;
        // Drawn last, so that the other variables start as they do without a scene.
        let scene_embed = if cfg.scene && cfg.scene_encoder {
            Some(Linear::new(p, "scene_embed", SCENE_DIM, cfg.dim, true)?)
        } else {
            None
        };
        Ok(Encoder { embed, scene_embed, blocks, norm, dim: cfg.dim })
    }

    /// `obs` `[B, T, S, F]`, `valid` `[B, T, S]`, the windows' scenes, frame times
    /// `t0..t0+T` → `[B, T, S, D]`.
    pub fn forward(&self, obs: &Tensor, valid: &Tensor, scene: Option<&SceneTokens>, t0: usize) -> Result<Tensor> {
        let (b, t, s, _) = obs.dims4()?;
        let d = self.dim;
        let times: Vec<f32> = (t0..t0 + t).map(|x| x as f32).collect();
        let te = sinusoidal(&times, d, obs.device())?.reshape((1, t, 1, d))?;
        let x = self.embed.forward(obs)?.broadcast_add(&te)?.reshape((b * t, s, d))?;
        let keys = valid.reshape((b * t, s))?;
        // Each frame's objects and then the scene's K boxes, the same in every frame.
        let (x, keys, n) = match (&self.scene_embed, scene) {
            (Some(embed), Some(sc)) => {
                let k = sc.tokens.dim(1)?;
                let boxes =
                    embed.forward(&sc.tokens)?.unsqueeze(1)?.broadcast_as((b, t, k, d))?.reshape((b * t, k, d))?;
                let box_keys = sc.valid.unsqueeze(1)?.broadcast_as((b, t, k))?.reshape((b * t, k))?;
                (Tensor::cat(&[&x, &boxes], 1)?, Tensor::cat(&[&keys, &box_keys], 1)?, s + k)
            }
            _ => (x, keys, s),
        };
        // Key padding: [B*T, 1, 1, N], 0 for valid keys and NEG for absent or hidden
        // objects and padded boxes.
        let mask = ((keys.reshape((b * t, 1, 1, n))? - 1.0)? * (-(NEG as f64)))?;
        let mut x = x;
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&mask))?;
        }
        let x = if n > s { x.narrow(1, 0, s)?.contiguous()? } else { x };
        Ok(self.norm.forward(&x)?.reshape((b, t, s, d))?)
    }
}

impl FrameEncoder for Encoder {
    fn forward(&self, obs: &Tensor, valid: &Tensor, scene: Option<&SceneTokens>, t0: usize) -> Result<Tensor> {
        Encoder::forward(self, obs, valid, scene, t0) // the inherent method
    }

    fn width(&self) -> usize {
        self.dim
    }
}

/// The predictor: a narrower transformer over the context frames' object tokens, one
/// action token per frame (V-JEPA 2-AC style, interleaved) and query tokens for the future
/// frames' objects, block-causal in time. With `model.scene` the scene's static boxes and
/// goal zones follow as tokens of their own (embedded by their own layer, no time
/// encoding) that every frame's tokens read and that read only each other, so no future
/// frame reaches the context through them.
pub struct Predictor {
    input: Linear,
    action: Linear,
    mask_token: Var,
    blocks: Vec<Block>,
    norm: LayerNorm,
    output: Linear,
    scene_input: Option<Linear>,
    dim: usize,
}

impl Predictor {
    /// Build under `p`; `out` is the encoder width (JEPA) or `OBS_DIM` (state-mse).
    pub fn new(p: &mut Params, cfg: &ModelConfig, out: usize) -> Result<Self> {
        let input = Linear::new(p, "input", cfg.dim, cfg.pred_dim, true)?;
        let action = Linear::new(p, "action", ACTION_DIM, cfg.pred_dim, true)?;
        let mask_token = p.trunc_normal("mask_token", &[cfg.pred_dim], 0.02)?;
        let blocks = (0..cfg.pred_depth)
            .map(|i| Block::new(p, &format!("blocks.{i}"), cfg.pred_dim, cfg.pred_heads, cfg.mlp_ratio))
            .collect::<Result<_>>()?;
        let norm = LayerNorm::new(p, "norm", cfg.pred_dim)?;
        let output = Linear::new(p, "output", cfg.pred_dim, out, true)?;
        // Drawn last, so that the other variables start as they do without a scene.
        let scene_input =
            if cfg.scene { Some(Linear::new(p, "scene_input", SCENE_DIM, cfg.pred_dim, true)?) } else { None };
        Ok(Predictor { input, action, mask_token, blocks, norm, output, scene_input, dim: cfg.pred_dim })
    }

    /// `ctx` `[B, Tc, S, D]`, `ctx_valid` `[B, Tc, S]`, `actions` `[B, Tc + Tf, A]`, the
    /// windows' scenes → predictions for the future frames' objects `[B, Tf, S, out]`.
    pub fn forward(
        &self,
        ctx: &Tensor,
        ctx_valid: &Tensor,
        actions: &Tensor,
        scene: Option<&SceneTokens>,
        tf: usize,
    ) -> Result<Tensor> {
        Ok(self.forward_with_state(ctx, ctx_valid, actions, scene, tf)?.0)
    }

    /// [`Predictor::forward`] and [`Predictor::context_state`] from one pass: block-causal
    /// attention keeps the context tokens blind to the future queries, so the state at the
    /// last context frame is the same whatever `tf` is.
    pub fn forward_with_state(
        &self,
        ctx: &Tensor,
        ctx_valid: &Tensor,
        actions: &Tensor,
        scene: Option<&SceneTokens>,
        tf: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (tc, s) = (ctx.dim(1)?, ctx.dim(2)?);
        let x = self.hidden(ctx, ctx_valid, actions, scene, tf)?;
        let fut = x.narrow(1, tc, tf)?.narrow(2, 0, s)?; // [B, Tf, S, P]
        let state = x.narrow(1, tc - 1, 1)?.narrow(2, 0, s)?.squeeze(1)?;
        Ok((self.output.forward(&fut)?, state))
    }

    /// The predictor's own state of each object at the last context frame (after the final
    /// norm, before the output projection): `[B, S, P]`. Block-causal attention has let it
    /// read every context frame and action, so it can hold what the motion reveals and a
    /// single frame does not (mass, friction); no future query can reach it.
    pub fn context_state(
        &self,
        ctx: &Tensor,
        ctx_valid: &Tensor,
        actions: &Tensor,
        scene: Option<&SceneTokens>,
    ) -> Result<Tensor> {
        let (tc, s) = (ctx.dim(1)?, ctx.dim(2)?);
        let x = self.hidden(ctx, ctx_valid, &actions.narrow(1, 0, tc + 1)?, scene, 1)?;
        Ok(x.narrow(1, tc - 1, 1)?.narrow(2, 0, s)?.squeeze(1)?)
    }

    /// Normed hidden states of every frame token, `[B, Tc + Tf, S + 1, P]` (objects, then
    /// the frame's action token; the scene's tokens are dropped).
    fn hidden(
        &self,
        ctx: &Tensor,
        ctx_valid: &Tensor,
        actions: &Tensor,
        scene: Option<&SceneTokens>,
        tf: usize,
    ) -> Result<Tensor> {
        let (b, tc, s, _) = ctx.dims4()?;
        let dev = ctx.device();
        let t = tc + tf;
        let p = self.dim;
        let times: Vec<f32> = (0..t).map(|x| x as f32).collect();
        let te = sinusoidal(&times, p, dev)?; // [T, P]
        let ctx_tok = self.input.forward(ctx)?.broadcast_add(&te.narrow(0, 0, tc)?.reshape((1, tc, 1, p))?)?;
        // Future queries: mask token + time + the object's last context token (its identity).
        let last = self.input.forward(&ctx.narrow(1, tc - 1, 1)?)?; // [B, 1, S, P]
        let fut_tok = last
            .broadcast_add(&self.mask_token.as_tensor().reshape((1, 1, 1, p))?)?
            .broadcast_add(&te.narrow(0, tc, tf)?.reshape((1, tf, 1, p))?)?; // [B, Tf, S, P]
        let obj = Tensor::cat(&[&ctx_tok, &fut_tok], 1)?; // [B, T, S, P]
        let act = self.action.forward(actions)?.broadcast_add(&te.reshape((1, t, p))?)?.reshape((b, t, 1, p))?;
        let seq = Tensor::cat(&[&obj, &act], 2)?.reshape((b, t * (s + 1), p))?; // frame-major
        let (seq, scene_valid) = match (&self.scene_input, scene) {
            (Some(input), Some(sc)) => {
                let boxes = input.forward(&sc.tokens)?; // [B, K, P]
                (Tensor::cat(&[&seq, &boxes], 1)?, Some(sc.valid.flatten_all()?.to_vec1::<f32>()?))
            }
            _ => (seq, None),
        };
        let mask = self.mask(ctx_valid, scene_valid.as_deref(), b, tc, tf, s, dev)?;
        let mut x = seq;
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&mask))?;
        }
        let x = if scene_valid.is_some() { x.narrow(1, 0, t * (s + 1))? } else { x };
        Ok(self.norm.forward(&x)?.reshape((b, t, s + 1, p))?)
    }

    /// Block-causal mask over frames with key padding for invalid context objects and
    /// padded scene tokens (`scene_valid` `[B * K]`, the K scene tokens after the frames):
    /// `[B, 1, N, N]`, `N = T (S + 1) + K`. Frame tokens read every real scene token; scene
    /// tokens read only each other.
    #[allow(clippy::too_many_arguments)]
    fn mask(
        &self,
        ctx_valid: &Tensor,
        scene_valid: Option<&[f32]>,
        b: usize,
        tc: usize,
        tf: usize,
        s: usize,
        dev: &Device,
    ) -> Result<Tensor> {
        let t = tc + tf;
        let nf = t * (s + 1);
        let k = scene_valid.map_or(0, |v| v.len() / b.max(1));
        let n = nf + k;
        let valid: Vec<f32> = ctx_valid.flatten_all()?.to_vec1()?;
        let mut m = vec![0f32; b * n * n];
        // A query's row depends only on its batch element and frame: built once per frame,
        // copied to the frame's s + 1 tokens.
        let mut row = vec![0f32; n];
        for bi in 0..b {
            // The scene keys are the same for every query of this batch element.
            for (j, r) in row[nf..].iter_mut().enumerate() {
                *r = match scene_valid {
                    Some(v) if v[bi * k + j] != 0.0 => 0.0,
                    _ => NEG,
                };
            }
            for qf in 0..t {
                for (ki, r) in row[..nf].iter_mut().enumerate() {
                    let (kf, ks) = (ki / (s + 1), ki % (s + 1));
                    let dropped = kf > qf || (kf < tc && ks < s && valid[(bi * tc + kf) * s + ks] == 0.0);
                    *r = if dropped { NEG } else { 0.0 };
                }
                for qi in qf * (s + 1)..(qf + 1) * (s + 1) {
                    m[(bi * n + qi) * n..(bi * n + qi + 1) * n].copy_from_slice(&row);
                }
            }
            // Scene queries read only the scene (no rows without a scene).
            row[..nf].fill(NEG);
            for qi in nf..n {
                m[(bi * n + qi) * n..(bi * n + qi + 1) * n].copy_from_slice(&row);
            }
        }
        Ok(Tensor::from_vec(m, (b, 1, n, n), dev)?)
    }
}

/// The inverse-dynamics head: the action between frames `t` and `t + 1` from their
/// pooled representations (`[z_t, z_{t+1}] -> D -> GELU -> A`).
pub struct InverseDynamics {
    fc1: Linear,
    fc2: Linear,
}

impl InverseDynamics {
    /// Build under `p` (names `inverse.fc1.*`, `inverse.fc2.*`).
    pub fn new(p: &mut Params, dim: usize) -> Result<Self> {
        p.scope("inverse", |p| {
            Ok(InverseDynamics {
                fc1: Linear::new(p, "fc1", 2 * dim, dim, true)?,
                fc2: Linear::new(p, "fc2", dim, ACTION_DIM, true)?,
            })
        })
    }

    /// Pooled frame representations `z` `[B, T, D]` → actions `[B, T - 1, A]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let t = z.dim(1)?;
        let pair = Tensor::cat(&[&z.narrow(1, 0, t - 1)?, &z.narrow(1, 1, t - 1)?], D::Minus1)?;
        self.fc2.forward(&self.fc1.forward(&pair)?.gelu()?)
    }
}

/// Mean over valid objects: `x` `[B, T, S, D]`, `valid` `[B, T, S]` → `[B, T, D]`.
pub fn pool_objects(x: &Tensor, valid: &Tensor) -> Result<Tensor> {
    let w = valid.unsqueeze(3)?;
    let n = (valid.sum_keepdim(2)? + 1e-6)?; // [B, T, 1]
    Ok(x.broadcast_mul(&w)?.sum(2)?.broadcast_div(&n)?)
}

/// Named groups of variables of a world model.
pub struct WorldModelVars {
    /// The online (context) encoder, trained.
    pub online: BTreeMap<String, Var>,
    /// The EMA target encoder, never trained by gradients.
    pub target: BTreeMap<String, Var>,
    /// The predictor, trained.
    pub predictor: BTreeMap<String, Var>,
}

/// Loss and its parts.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Total loss (scalar tensor, differentiable).
    pub total: Tensor,
    /// Prediction term.
    pub prediction: f32,
    /// Variance hinge term (unweighted).
    pub variance: f32,
    /// Covariance term (unweighted).
    pub covariance: f32,
    /// Inverse-dynamics term (unweighted; 0 without the head or without actions).
    pub inverse: f32,
    /// Rollout term (unweighted; 0 when `loss.rollout_chunks` is 0).
    pub rollout: f32,
}

/// Encoder + EMA target encoder + predictor.
pub struct WorldModel {
    /// Configuration.
    pub cfg: ModelConfig,
    /// Online encoder.
    pub encoder: Box<dyn FrameEncoder>,
    /// EMA target encoder.
    pub target: Box<dyn FrameEncoder>,
    /// Predictor.
    pub predictor: Predictor,
    /// Inverse-dynamics head (with `ModelConfig::inverse_dynamics`; its variables are in
    /// the predictor group under `inverse.*`).
    pub inverse: Option<InverseDynamics>,
    /// Variables by group.
    pub vars: WorldModelVars,
}

impl WorldModel {
    /// A freshly initialised model; the target encoder starts as a copy of the online one.
    pub fn new(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<WorldModel> {
        Self::with_encoder(cfg, seed, device, &|p, cfg| Ok(Box::new(Encoder::new(p, cfg)?)))
    }

    /// The same with another [`FrameEncoder`]; its width must be `cfg.dim`.
    pub fn with_encoder(cfg: &ModelConfig, seed: u64, device: &Device, build: EncoderBuilder) -> Result<WorldModel> {
        cfg.validate()?;
        let mut po = Params::new(seed, device);
        let encoder = build(&mut po, cfg)?;
        if encoder.width() != cfg.dim {
            return Err(crate::error::ModelError::config(
                "encoder width",
                encoder.width(),
                format!("model.dim ({}), the width the predictor reads", cfg.dim),
            ));
        }
        let mut pt = Params::new(seed, device); // same draws: an exact copy
        let target = build(&mut pt, cfg)?;
        // Variables kept outside `Params` would be neither trained nor EMA-updated.
        let (online_names, target_names): (Vec<&String>, Vec<&String>) =
            (po.vars().keys().collect(), pt.vars().keys().collect());
        if online_names.is_empty() || online_names != target_names {
            return Err(crate::error::ModelError::config(
                "encoder variables",
                format!("{} online, {} target", online_names.len(), target_names.len()),
                "the same non-empty set in both copies, created through the Params the builder is given",
            ));
        }
        let mut pp = Params::new(seed ^ 0x9e37_79b9_7f4a_7c15, device);
        let out = match cfg.objective {
            Objective::Jepa => cfg.dim,
            Objective::StateMse => OBS_DIM,
        };
        let predictor = Predictor::new(&mut pp, cfg, out)?;
        let inverse = if cfg.inverse_dynamics { Some(InverseDynamics::new(&mut pp, cfg.dim)?) } else { None };
        Ok(WorldModel {
            cfg: cfg.clone(),
            encoder,
            target,
            predictor,
            inverse,
            vars: WorldModelVars { online: po.into_vars(), target: pt.into_vars(), predictor: pp.into_vars() },
        })
    }

    /// Trainable variables (online encoder, predictor) by prefixed name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> =
            self.vars.online.iter().map(|(k, x)| (format!("online.{k}"), x.clone())).collect();
        v.extend(self.vars.predictor.iter().map(|(k, x)| (format!("predictor.{k}"), x.clone())));
        v
    }

    /// Every variable (online, target, predictor) by prefixed name, for checkpoints.
    pub fn all_vars(&self) -> Vec<(String, Var)> {
        let mut v = self.trainable();
        v.extend(self.vars.target.iter().map(|(k, x)| (format!("target.{k}"), x.clone())));
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// `target ← m · target + (1 − m) · online`.
    pub fn ema_update(&self, momentum: f64) -> Result<()> {
        for (k, t) in &self.vars.target {
            if let Some(o) = self.vars.online.get(k) {
                let new = ((t.as_tensor() * momentum)? + (o.as_tensor().detach() * (1.0 - momentum))?)?;
                t.set(&new)?;
            }
        }
        Ok(())
    }

    /// Width of the predictor's output: the encoder width (JEPA) or `OBS_DIM` (state-mse).
    pub fn predictor_output(&self) -> usize {
        match self.cfg.objective {
            Objective::Jepa => self.cfg.dim,
            Objective::StateMse => OBS_DIM,
        }
    }

    /// Representations of every frame of a batch by the online encoder `[B, T, S, D]`.
    pub fn encode(&self, batch: &Batch) -> Result<Tensor> {
        warm(|| self.encoder.forward(&batch.obs, &batch.valid, batch.scene.as_ref(), 0))
    }

    /// Predicted representations (or states, for state-mse) of the last `tf` frames of
    /// `batch` from its first `T - tf` frames: `[B, Tf, S, out]`.
    pub fn predict(&self, batch: &Batch, tf: usize) -> Result<Tensor> {
        warm(|| {
            let tc = batch.frames - tf;
            let ctx = self.encoder.forward(
                &batch.obs.narrow(1, 0, tc)?,
                &batch.valid.narrow(1, 0, tc)?,
                batch.scene.as_ref(),
                0,
            )?;
            self.predictor.forward(&ctx, &batch.valid.narrow(1, 0, tc)?, &batch.actions, batch.scene.as_ref(), tf)
        })
    }

    /// Roll the predictor forward `steps` frames from the first `tc` frames of `batch`,
    /// autoregressively in chunks of `chunk` frames (the trained future length), each chunk
    /// predicted from the last `context` frames of observed or already predicted
    /// representations (V-JEPA 2-AC's rollout in representation space; for state-mse the
    /// predicted states are re-encoded). Actions come from `batch` where it has frames and
    /// are zero beyond. Predicted frames keep the last observed frame's validity mask.
    /// Returns `[B, steps, S, out]`: target-space representations (JEPA) or normalised
    /// states (state-mse).
    pub fn rollout(&self, batch: &Batch, tc: usize, steps: usize, context: usize, chunk: usize) -> Result<Tensor> {
        Ok(self.rollout_with_state(batch, tc, steps, context, chunk)?.0)
    }

    /// [`WorldModel::rollout`] and [`WorldModel::context_state`] (`[B, S, P]`) together,
    /// the state taken from the rollout's first chunk instead of a second encoder and
    /// predictor pass. With `steps == 0` the state comes from [`WorldModel::context_state`].
    pub fn rollout_with_state(
        &self,
        batch: &Batch,
        tc: usize,
        steps: usize,
        context: usize,
        chunk: usize,
    ) -> Result<(Tensor, Tensor)> {
        warm(|| {
            let (b, s) = (batch.size, batch.slots);
            if tc == 0 || tc > batch.frames || context == 0 || chunk == 0 {
                return Err(crate::error::ModelError::config(
                    "rollout",
                    format!("tc {tc}, context {context}, chunk {chunk} over {} frames", batch.frames),
                    "1 <= tc <= frames, context >= 1, chunk >= 1",
                ));
            }
            let dev = batch.obs.device();
            let actions = actions_upto(batch, tc + steps)?;
            let obs = batch.obs.narrow(1, 0, tc)?;
            let valid = batch.valid.narrow(1, 0, tc)?;
            let frames = match self.cfg.objective {
                Objective::Jepa => self.encoder.forward(&obs, &valid, batch.scene.as_ref(), 0)?,
                Objective::StateMse => obs,
            };
            let (outs, state) = self.roll(frames, valid, &actions, batch.scene.as_ref(), 0, steps, context, chunk)?;
            let Some(state) = state else {
                // No steps: nothing predicted.
                let state = self.context_state(batch, tc, context)?;
                return Ok((Tensor::zeros((b, 0, s, self.predictor_output()), DType::F32, dev)?, state));
            };
            Ok((Tensor::cat(&outs, 1)?, state))
        })
    }

    /// Imagine the futures of `actions.dim(0)` candidate action sequences from one observed
    /// window (latent planning, as V-JEPA 2-AC's CEM): `batch` holds one window of `tc`
    /// observed frames; `actions` `[N, tc + steps, ACTION_DIM]` (normalised) holds, per
    /// candidate, the forces of the observed frames and then the candidate's, entry `t`
    /// acting between frames `t` and `t + 1`. The context is encoded once and the rollout of
    /// [`WorldModel::rollout`] runs for all candidates in one batch. Returns
    /// `[N, steps, S, out]`, in the space of [`WorldModel::targets`].
    pub fn imagine(
        &self,
        batch: &Batch,
        actions: &Tensor,
        steps: usize,
        context: usize,
        chunk: usize,
    ) -> Result<Tensor> {
        warm(|| {
            let (n, ta, _) = actions.dims3()?;
            let tc = batch.frames;
            if batch.size != 1 || tc == 0 || steps == 0 || context == 0 || chunk == 0 || ta != tc + steps {
                return Err(crate::error::ModelError::config(
                    "imagine",
                    format!(
                        "{} windows of {tc} frames, {ta} action frames for {steps} steps, context {context}, chunk {chunk}",
                        batch.size
                    ),
                    "one window of at least 1 frame, tc + steps action frames, steps, context and chunk >= 1",
                ));
            }
            let frames = match self.cfg.objective {
                Objective::Jepa => self.encoder.forward(&batch.obs, &batch.valid, batch.scene.as_ref(), 0)?,
                Objective::StateMse => batch.obs.clone(),
            };
            let frames = frames.repeat((n, 1, 1, 1))?;
            let valid = batch.valid.repeat((n, 1, 1))?;
            let scene = match &batch.scene {
                Some(sc) => Some(SceneTokens { tokens: sc.tokens.repeat((n, 1, 1))?, valid: sc.valid.repeat((n, 1))? }),
                None => None,
            };
            let (outs, _) = self.roll(frames, valid, actions, scene.as_ref(), 0, steps, context, chunk)?;
            Ok(Tensor::cat(&outs, 1)?)
        })
    }

    /// What the predictor's outputs are compared with, for the frames of `batch` placed at
    /// times `t0..` of a window: the EMA target encoder's layer-normed representations
    /// (JEPA) or the normalised states themselves (state-mse). `[B, T, S, out]`. A planner
    /// encodes its goal with it.
    pub fn targets(&self, batch: &Batch, t0: usize) -> Result<Tensor> {
        warm(|| match self.cfg.objective {
            Objective::Jepa => {
                layer_norm_plain(&self.target.forward(&batch.obs, &batch.valid, batch.scene.as_ref(), t0)?)
            }
            Objective::StateMse => Ok(batch.obs.clone()),
        })
    }

    /// The rollout loop: `frames` `[B, Tc + done, S, *]` holds the observed context
    /// (encoded for JEPA, raw states for state-mse) followed by the `done` frames already
    /// predicted, `valid` their masks; predicts frames `done..steps` after the context in
    /// chunks of `chunk`, each from the last `context` frames. Returns the new chunks and,
    /// when the first chunk is among them, the predictor's context state.
    #[allow(clippy::too_many_arguments)]
    fn roll(
        &self,
        mut frames: Tensor,
        mut valid: Tensor,
        actions: &Tensor,
        scene: Option<&SceneTokens>,
        mut done: usize,
        steps: usize,
        context: usize,
        chunk: usize,
    ) -> Result<(Vec<Tensor>, Option<Tensor>)> {
        let tc = frames.dim(1)? - done;
        let last_valid = valid.narrow(1, tc - 1, 1)?;
        let mut outs = Vec::new();
        let mut state = None;
        while done < steps {
            let n = chunk.min(steps - done);
            let have = tc + done;
            let c = context.min(have);
            let start = have - c;
            let ctx_in = frames.narrow(1, start, c)?;
            let ctx_valid = valid.narrow(1, start, c)?;
            let ctx = match self.cfg.objective {
                Objective::Jepa => ctx_in,
                Objective::StateMse => self.encoder.forward(&ctx_in, &ctx_valid, scene, 0)?,
            };
            let (pred, st) =
                self.predictor.forward_with_state(&ctx, &ctx_valid, &actions.narrow(1, start, c + n)?, scene, n)?;
            if done == 0 {
                state = Some(st);
            }
            let pv = last_valid.repeat((1, n, 1))?;
            let pred = pred.broadcast_mul(&pv.unsqueeze(3)?)?;
            frames = Tensor::cat(&[&frames, &pred], 1)?;
            valid = Tensor::cat(&[&valid, &pv], 1)?;
            outs.push(pred);
            done += n;
        }
        Ok((outs, state))
    }

    /// The predictor's state of each object at frame `tc - 1` after reading the last
    /// `context` frames up to it (the first chunk of [`WorldModel::rollout`]): `[B, S, P]`.
    /// Where the target space holds single frames, this is where what the motion reveals
    /// (mass, friction) can live; `physworld probe` reads hidden properties here too.
    pub fn context_state(&self, batch: &Batch, tc: usize, context: usize) -> Result<Tensor> {
        warm(|| {
            if tc == 0 || tc > batch.frames || context == 0 {
                return Err(crate::error::ModelError::config(
                    "context_state",
                    format!("tc {tc}, context {context} over {} frames", batch.frames),
                    "1 <= tc <= frames, context >= 1",
                ));
            }
            let c = context.min(tc);
            let start = tc - c;
            let actions = actions_upto(batch, tc + 1)?.narrow(1, start, c + 1)?;
            let obs = batch.obs.narrow(1, start, c)?;
            let valid = batch.valid.narrow(1, start, c)?;
            // Frame times as the rollout's first chunk gives them.
            let t0 = match self.cfg.objective {
                Objective::Jepa => start,
                Objective::StateMse => 0,
            };
            let ctx = self.encoder.forward(&obs, &valid, batch.scene.as_ref(), t0)?;
            self.predictor.context_state(&ctx, &valid, &actions, batch.scene.as_ref())
        })
    }

    /// Surprise per window and future frame (`[B][Tf]`): the mean L1 error between the
    /// predicted and the layer-normed target representations of the frame's valid objects
    /// (for state-mse: the mean squared error in normalised state space), as in Garrido et
    /// al. 2025's violation-of-expectation evaluation. Frames without a valid object get 0.
    pub fn surprise(&self, batch: &Batch, tf: usize) -> Result<Vec<Vec<f32>>> {
        warm(|| {
            let tc = batch.frames - tf;
            let pred = self.predict(batch, tf)?;
            let err = match self.cfg.objective {
                Objective::Jepa => {
                    // The encoder reads each frame alone (time enters as the frame's own
                    // encoding), so the future frames are encoded without the context.
                    let target = layer_norm_plain(&self.target.forward(
                        &batch.obs.narrow(1, tc, tf)?,
                        &batch.valid.narrow(1, tc, tf)?,
                        batch.scene.as_ref(),
                        tc,
                    )?)?;
                    (pred - target)?.abs()?.mean(D::Minus1)?
                }
                Objective::StateMse => (pred - batch.obs.narrow(1, tc, tf)?)?.sqr()?.mean(D::Minus1)?,
            }; // [B, Tf, S]
            let valid = batch.valid.narrow(1, tc, tf)?;
            let num: Vec<Vec<f32>> = (err * &valid)?.sum(D::Minus1)?.to_vec2()?;
            let den: Vec<Vec<f32>> = valid.sum(D::Minus1)?.to_vec2()?;
            Ok(num
                .iter()
                .zip(&den)
                .map(|(n, d)| n.iter().zip(d).map(|(a, b)| if *b > 0.0 { a / b } else { 0.0 }).collect())
                .collect())
        })
    }

    /// Training loss on a batch whose last `tf * (1 + w.rollout_chunks)` frames are the
    /// future: the prediction term on the first `tf` of them, predicted in one pass from the
    /// frames before; the rollout term on the rest, predicted autoregressively.
    pub fn loss(&self, batch: &Batch, tf: usize, w: &crate::config::LossConfig) -> Result<LossParts> {
        let after = w.future_frames(tf);
        if tf == 0 || after >= batch.frames {
            return Err(crate::error::ModelError::config(
                "loss window",
                format!("{} frames for {tf} future frames and {} rollout chunks", batch.frames, w.rollout_chunks),
                "at least one context frame before future * (1 + rollout_chunks) frames",
            ));
        }
        let tc = batch.frames - after;
        let ctx_obs = batch.obs.narrow(1, 0, tc)?;
        let ctx_valid = batch.valid.narrow(1, 0, tc)?;
        let ctx = self.encoder.forward(&ctx_obs, &ctx_valid, batch.scene.as_ref(), 0)?;
        let pred = self.predictor.forward(
            &ctx,
            &ctx_valid,
            &batch.actions.narrow(1, 0, tc + tf)?,
            batch.scene.as_ref(),
            tf,
        )?;
        // V-JEPA: L1 to the layer-normed target representations, under stop-gradient;
        // state-mse: squared error to the observed states.
        // Targets of the frames after the context (window frames tc..).
        let target = match self.cfg.objective {
            Objective::Jepa => Some(layer_norm_plain(
                &self
                    .target
                    .forward(
                        &batch.obs.narrow(1, tc, after)?,
                        &batch.valid.narrow(1, tc, after)?,
                        batch.scene.as_ref(),
                        tc,
                    )?
                    .detach(),
            )?),
            Objective::StateMse => None,
        };
        let width = self.predictor_output() as f64;
        let error = |pred: &Tensor, t0: usize| -> Result<Tensor> {
            let n = pred.dim(1)?;
            let valid = batch.valid.narrow(1, t0, n)?.unsqueeze(3)?; // [B, n, S, 1]
            let denom = (valid.sum_all()? + 1.0)?;
            let err = match &target {
                Some(target) => (pred - target.narrow(1, t0 - tc, n)?)?.abs()?,
                None => (pred - batch.obs.narrow(1, t0, n)?)?.sqr()?,
            };
            Ok((err.broadcast_mul(&valid)?.sum_all()? / width)?.broadcast_div(&denom)?)
        };
        let prediction = error(&pred, tc)?;
        let mut total = prediction.clone();
        let mut rollout = 0.0f32;
        if w.rollout_chunks > 0 {
            // The later chunks, from the first chunk's (masked) predictions onwards.
            let pv = batch.valid.narrow(1, tc - 1, 1)?.repeat((1, tf, 1))?;
            let first = pred.broadcast_mul(&pv.unsqueeze(3)?)?;
            let observed = match self.cfg.objective {
                Objective::Jepa => ctx.clone(),
                Objective::StateMse => ctx_obs.clone(),
            };
            let frames = Tensor::cat(&[&observed, &first], 1)?;
            let valid = Tensor::cat(&[&ctx_valid, &pv], 1)?;
            let actions = actions_upto(batch, tc + after)?;
            let (later, _) = self.roll(frames, valid, &actions, batch.scene.as_ref(), tf, after, tc, tf)?;
            let term = error(&Tensor::cat(&later, 1)?, tc + tf)?;
            rollout = term.to_scalar()?;
            if w.rollout_weight > 0.0 {
                total = (total + (term * w.rollout_weight as f64)?)?;
            }
        }
        // Anti-collapse terms on the valid context tokens.
        let (variance, covariance) = variance_covariance(&ctx, &ctx_valid)?;
        if w.var_weight > 0.0 {
            total = (total + (&variance * w.var_weight as f64)?)?;
        }
        if w.cov_weight > 0.0 {
            total = (total + (&covariance * w.cov_weight as f64)?)?;
        }
        if w.smooth_weight > 0.0 && tc > 1 {
            let diff = (ctx.narrow(1, 1, tc - 1)? - ctx.narrow(1, 0, tc - 1)?)?.sqr()?.mean_all()?;
            total = (total + (diff * w.smooth_weight as f64)?)?;
        }
        let mut inverse = 0.0f32;
        if let (Some(head), true) = (&self.inverse, tc > 1) {
            // The action of frame t drives the transition t -> t + 1.
            let pred_a = head.forward(&pool_objects(&ctx, &ctx_valid)?)?; // [B, Tc-1, A]
            let mask = batch.has_action.narrow(1, 0, tc - 1)?.unsqueeze(2)?; // [B, Tc-1, 1]
            let err = (pred_a - batch.actions.narrow(1, 0, tc - 1)?)?.sqr()?.broadcast_mul(&mask)?;
            let n = ((mask.sum_all()? * ACTION_DIM as f64)? + 1e-6)?;
            let inv = err.sum_all()?.broadcast_div(&n)?;
            inverse = inv.to_scalar()?;
            if w.inv_weight > 0.0 {
                total = (total + (inv * w.inv_weight as f64)?)?;
            }
        }
        Ok(LossParts {
            prediction: prediction.to_dtype(DType::F32)?.to_scalar()?,
            variance: variance.to_scalar()?,
            covariance: covariance.to_scalar()?,
            inverse,
            rollout,
            total,
        })
    }
}

/// Variance hinge `mean_d relu(1 − std_d)` and off-diagonal covariance
/// `sum_{i≠j} C_ij² / D` over the valid tokens of `x` `[B, T, S, D]`.
pub fn variance_covariance(x: &Tensor, valid: &Tensor) -> Result<(Tensor, Tensor)> {
    let d = x.dim(D::Minus1)?;
    let flat = x.reshape(((), d))?;
    let w = valid.flatten_all()?.unsqueeze(1)?; // [N, 1]
    let n = (w.sum_all()? + 1e-6)?;
    let mean = flat.broadcast_mul(&w)?.sum_keepdim(0)?.broadcast_div(&n)?; // [1, D]
    let xc = flat.broadcast_sub(&mean)?.broadcast_mul(&w)?;
    let var = xc.sqr()?.sum_keepdim(0)?.broadcast_div(&n)?; // [1, D]
    let std = (var + 1e-4)?.sqrt()?;
    let hinge = (std.neg()? + 1.0)?.relu()?.mean_all()?;
    let cov = xc.t()?.matmul(&xc)?.broadcast_div(&n)?; // [D, D]
    let eye = Tensor::eye(d, DType::F32, x.device())?;
    let off = (cov * (eye.neg()? + 1.0)?)?;
    let covariance = (off.sqr()?.sum_all()? / d as f64)?;
    Ok((hinge, covariance))
}

/// Run inference with rayon's workers kept warm where the program asked for it
/// ([`crate::runtime::set_warm_workers`]), the fused ops keeping nothing for a backward
/// ([`crate::fused::inference`]).
fn warm<R>(f: impl FnOnce() -> R) -> R {
    crate::runtime::warm_if_enabled(|| crate::fused::inference(f))
}

/// The batch's first `len` actions, zero-padded past its last frame: `[B, len, A]`.
fn actions_upto(batch: &Batch, len: usize) -> Result<Tensor> {
    let ta = batch.actions.dim(1)?.min(len);
    let actions = batch.actions.narrow(1, 0, ta)?;
    if ta == len {
        return Ok(actions);
    }
    let pad = Tensor::zeros((batch.size, len - ta, ACTION_DIM), DType::F32, batch.obs.device())?;
    Ok(Tensor::cat(&[&actions, &pad], 1)?)
}
