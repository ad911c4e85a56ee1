//! Is the learning real? Probes on frozen representations for targets that are not in the
//! input: object positions 0.5 s ahead (through the predictor) and hidden properties (mass,
//! friction), each against the same probe on a randomly initialised model, a probe on the
//! raw observed state, and constant-velocity extrapolation; plus the effective rank of the
//! representations. A falling loss proves nothing (a collapsed encoder is trivially
//! predictable); these numbers do.

use candle_core::Device;
use physworld_pipeline::{Dataset, EpisodeFrames, SCENE_KINDS, SceneBox};
use physworld_sim::math::ballistic;
use serde::{Deserialize, Serialize};

use crate::batch::{Batch, Normalizer};
use crate::config::{OBS_DIM, TrainConfig};
use crate::error::{ModelError, Result};
use crate::jepa::WorldModel;
use crate::linalg::effective_rank;
use crate::probe::RidgeProbe;

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadoutOptions {
    /// Horizon of the position probe, frames. Default 15 (0.5 s at 30 fps).
    pub horizon: usize,
    /// Frames between window ends within an episode. Default 15.
    pub stride: usize,
    /// Ridge penalties to choose from by 5-fold cross-validation on the fit split.
    /// Default [`RidgeProbe::LAMBDAS`].
    pub lambdas: Vec<f64>,
    /// Split the probes are fit on. Default `readout`.
    pub fit_split: String,
    /// Split they are scored on. Default `test`.
    pub eval_split: String,
    /// Seed of the randomly initialised comparison model. Default 1000.
    pub random_seed: u64,
    /// Where to write the probes' inputs and targets (one safetensors file per split,
    /// `<fit_split>.safetensors` and `<eval_split>.safetensors`), to fit other probes
    /// outside physworld. Default none.
    #[serde(default)]
    pub features_out: Option<std::path::PathBuf>,
}

impl Default for ReadoutOptions {
    fn default() -> Self {
        ReadoutOptions {
            horizon: 15,
            stride: 15,
            lambdas: RidgeProbe::LAMBDAS.to_vec(),
            fit_split: "readout".into(),
            eval_split: "test".into(),
            random_seed: 1000,
            features_out: None,
        }
    }
}

/// Position probe errors, mean Euclidean distance in metres (lower is better). Every probe
/// predicts the displacement over the horizon from the raw observed state of the last
/// context frame (followed by the [`scene_features`] when the model observes the scene)
/// plus the named representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionScores {
    /// The trained model's predicted representation at the horizon.
    pub trained: f64,
    /// The same on a randomly initialised model.
    pub random_init: f64,
    /// The trained encoder's representation of the last context frame (no predictor).
    pub trained_encoder: f64,
    /// The trained target encoder's (layer-normed) representation of the actual future
    /// frame: what a perfect prediction would give (the ceiling of `trained`).
    pub future_target: f64,
    /// The raw observed state alone (with the scene features, as every probe here, when the
    /// model observes the scene).
    pub raw_state: f64,
    /// Ballistic extrapolation from the last context frame.
    pub constant_velocity: f64,
}

/// Hidden-property probe scores, R² on the evaluation split's objects that move during the
/// context (higher is better; 0 is the mean's score; NaN without such objects). The
/// representation probes also see the raw last observed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyScores {
    /// The trained model's predicted representations (mean over the horizon).
    pub trained: f64,
    /// The trained predictor's own state of the object after reading the whole context
    /// ([`WorldModel::context_state`]). Predicted representations live in the target
    /// space, which encodes single frames; what only the motion reveals (mass, friction)
    /// can live here.
    pub trained_predictor_state: f64,
    /// The same on a randomly initialised model.
    pub random_init: f64,
    /// The random model's predictor state.
    pub random_init_predictor_state: f64,
    /// Ridge on the raw observed state of the last context frame (and the scene features
    /// when the model observes the scene).
    pub raw_state: f64,
    /// Ridge on the raw observed states of every context frame (sees the motion; and the
    /// scene features when the model observes the scene).
    pub raw_context: f64,
}

impl PropertyScores {
    /// The trained model's best readout.
    pub fn best_trained(&self) -> f64 {
        self.trained.max(self.trained_predictor_state)
    }

    /// The best control: either random-model readout, the raw state or the raw context.
    pub fn best_control(&self) -> f64 {
        self.random_init.max(self.random_init_predictor_state).max(self.raw_state).max(self.raw_context)
    }
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningReport {
    /// Objects scored (evaluation split).
    pub objects: usize,
    /// Of which move during the context (the property probes' rows).
    pub moving_objects: usize,
    /// Objects the probes were fit on.
    pub fit_objects: usize,
    /// Object positions `horizon` frames ahead.
    pub position: PositionScores,
    /// log(mass).
    pub log_mass: PropertyScores,
    /// Friction coefficient.
    pub friction: PropertyScores,
    /// Effective rank of the trained encoder's representations of the evaluation objects
    /// (out of the encoder width), and of the random model's.
    pub effective_rank: [f64; 2],
    /// Encoder width.
    pub dim: usize,
    /// Width of the static-scene features appended to every probe's raw observed state
    /// ([`scene_features`]): [`SCENE_FEATURES`] when the model observes the scene
    /// (`model.scene`), so that the raw-state controls observe what the model does, else 0.
    #[serde(default)]
    pub scene_features: usize,
}

impl LearningReport {
    /// The best control's position error over the trained model's: above 1 when the
    /// trained model's predicted representations beat a random model's, the raw state and
    /// constant velocity.
    pub fn position_margin(&self) -> f64 {
        let p = &self.position;
        p.random_init.min(p.raw_state).min(p.constant_velocity) / p.trained
    }

    /// Whether the trained model beats every control on both hidden properties: its best
    /// readout (predicted representations or predictor state) above the random model's best
    /// readout, the raw state and the raw context.
    pub fn properties_beat_controls(&self) -> bool {
        let beats = |s: &PropertyScores| s.best_trained() > s.best_control();
        beats(&self.log_mass) && beats(&self.friction)
    }

    /// Whether the trained model beats every control on positions and on hidden properties.
    pub fn learning_is_real(&self) -> bool {
        self.position_margin() > 1.0 && self.properties_beat_controls()
    }
}

/// Width of [`scene_features`].
pub const SCENE_FEATURES: usize = SCENE_KINDS * 7;

/// An episode's static scene as a fixed-width vector, for linear probes: per kind of
/// [`SceneBox`] (floor, wall, ramp, container, table, occluder, goal zone) the number of
/// boxes, their mean centre and their mean half extents (m).
pub fn scene_features(scene: &[SceneBox]) -> Vec<f32> {
    scene_summary(scene, SCENE_KINDS as u8)
}

/// [`scene_features`] over the first `kinds` kinds only (`6`: the static bodies without
/// the goal zones): 7 values per kind.
pub fn scene_summary(scene: &[SceneBox], kinds: u8) -> Vec<f32> {
    let mut out = Vec::with_capacity(kinds as usize * 7);
    for kind in 0..kinds {
        let of: Vec<&SceneBox> = scene.iter().filter(|b| b.kind == kind).collect();
        let n = of.len().max(1) as f32;
        out.push(of.len() as f32);
        for c in 0..3 {
            out.push(of.iter().map(|b| b.position[c]).sum::<f32>() / n);
        }
        for c in 0..3 {
            out.push(of.iter().map(|b| b.half_extents[c]).sum::<f32>() / n);
        }
    }
    out
}

/// Per-object rows of one split.
#[derive(Default)]
struct Rows {
    trained: Vec<f32>,
    trained_mean: Vec<f32>,
    random: Vec<f32>,
    random_mean: Vec<f32>,
    state: Vec<f32>,
    state_random: Vec<f32>,
    enc: Vec<f32>,
    enc_random: Vec<f32>,
    future_target: Vec<f32>,
    raw: Vec<f32>,
    raw_ctx: Vec<f32>,
    cv: Vec<f32>,
    last: Vec<f32>,
    target: Vec<f32>,
    props: Vec<f32>,
    moving: Vec<bool>,
}

/// A window with its episode's masses and frictions per slot.
type Window = (EpisodeFrames, Vec<f32>, Vec<f32>);

fn windows(ds: &Dataset, split: &str, ctx: usize, o: &ReadoutOptions) -> Result<Vec<Window>> {
    let mut out = Vec::new();
    for e in ds.split_frames(split)? {
        let meta = ds.meta(e.episode_index)?;
        if meta.family.starts_with("voe-") {
            continue;
        }
        let mut end = ctx;
        while end + o.horizon <= e.frames {
            out.push((e.slice(end - ctx, ctx + o.horizon), meta.mass.clone(), meta.friction.clone()));
            end += o.stride.max(1);
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn rows(
    trained: &WorldModel,
    random: &WorldModel,
    cfg: &TrainConfig,
    norm: &Normalizer,
    wins: &[Window],
    ctx: usize,
    h: usize,
    fps: f32,
) -> Result<Rows> {
    let mut r = Rows::default();
    let (d_enc, d_out, d_pred) = (cfg.model.dim, trained.predictor_output(), cfg.model.pred_dim);
    for chunk in wins.chunks(32) {
        let frames: Vec<EpisodeFrames> = chunk.iter().map(|w| w.0.clone()).collect();
        let batch = Batch::new(&frames, norm, &Device::Cpu)?;
        let s = batch.slots;
        type Feats = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
        let feats = |m: &WorldModel| -> Result<Feats> {
            // [B, H, S, out] and the predictor's context state [B, S, P]
            let (roll, state) = m.rollout_with_state(&batch, ctx, h, cfg.data.context, cfg.data.future)?;
            let at: Vec<f32> = roll.narrow(1, h - 1, 1)?.flatten_all()?.to_vec1()?;
            let mean: Vec<f32> = roll.mean(1)?.flatten_all()?.to_vec1()?;
            let enc = m.encoder.forward(
                &batch.obs.narrow(1, ctx - 1, 1)?.contiguous()?,
                &batch.valid.narrow(1, ctx - 1, 1)?.contiguous()?,
                batch.scene.as_ref(),
                ctx - 1,
            )?;
            Ok((at, mean, enc.flatten_all()?.to_vec1()?, state.flatten_all()?.to_vec1()?))
        };
        let (t_at, t_mean, t_enc, t_state) = feats(trained)?;
        let fut = crate::layers::layer_norm_plain(&trained.target.forward(
            &batch.obs.narrow(1, ctx - 1 + h, 1)?.contiguous()?,
            &batch.valid.narrow(1, ctx - 1 + h, 1)?.contiguous()?,
            batch.scene.as_ref(),
            ctx - 1 + h,
        )?)?;
        let t_fut: Vec<f32> = fut.flatten_all()?.to_vec1()?;
        let (r_at, r_mean, r_enc, r_state) = feats(random)?;
        let obs: Vec<f32> = batch.obs.flatten_all()?.to_vec1()?;
        let t_all = batch.frames;
        for (b, (w, mass, fric)) in chunk.iter().enumerate() {
            let scene = if cfg.model.scene { scene_features(&w.scene) } else { Vec::new() };
            for o in 0..s {
                let (kc, kf) = ((ctx - 1) * s + o, (ctx - 1 + h) * s + o);
                if !(w.present[kc] && w.visible[kc] && w.present[kf]) || mass[o] <= 0.0 {
                    continue;
                }
                let slot = |v: &[f32], d: usize| v[(b * s + o) * d..(b * s + o + 1) * d].to_vec();
                r.trained.extend(slot(&t_at, d_out));
                r.trained_mean.extend(slot(&t_mean, d_out));
                r.random.extend(slot(&r_at, d_out));
                r.random_mean.extend(slot(&r_mean, d_out));
                r.state.extend(slot(&t_state, d_pred));
                r.state_random.extend(slot(&r_state, d_pred));
                r.enc.extend(slot(&t_enc, d_enc));
                r.enc_random.extend(slot(&r_enc, d_enc));
                r.future_target.extend(slot(&t_fut, d_enc));
                let frame =
                    |f: usize| &obs[((b * t_all + f) * s + o) * OBS_DIM..((b * t_all + f) * s + o + 1) * OBS_DIM];
                r.raw.extend_from_slice(frame(ctx - 1));
                r.raw.extend_from_slice(&scene);
                for f in 0..ctx {
                    r.raw_ctx.extend_from_slice(frame(f));
                }
                r.raw_ctx.extend_from_slice(&scene);
                let p = [w.position[kc * 3], w.position[kc * 3 + 1], w.position[kc * 3 + 2]];
                let v = [w.linvel[kc * 3], w.linvel[kc * 3 + 1], w.linvel[kc * 3 + 2]];
                let hh = [w.size[kc * 3], w.size[kc * 3 + 1], w.size[kc * 3 + 2]];
                r.cv.extend(ballistic(p, v, hh, h as f32 / fps));
                r.last.extend(p);
                r.target.extend_from_slice(&w.position[kf * 3..kf * 3 + 3]);
                r.props.extend([mass[o].ln(), fric[o]]);
                // Mass and friction only show in motion: property probes use objects that
                // move during the context.
                r.moving.push((0..ctx).any(|f| {
                    let k = f * s + o;
                    w.present[k] && (0..3).map(|c| w.linvel[k * 3 + c].powi(2)).sum::<f32>() > 0.05f32.powi(2)
                }));
            }
        }
    }
    Ok(r)
}

/// Row widths of the features.
struct Dims {
    out: usize,
    enc: usize,
    pred: usize,
    ctx: usize,
    /// Scene features after the raw state(s).
    scene: usize,
}

/// One split's rows as named `[rows, width]` tensors in a safetensors file, written
/// atomically: `trained` (predicted representation at the horizon), `trained_mean` (mean
/// over the horizon), `trained_predictor_state`, their `random_*` counterparts, `encoder`,
/// `future_target`, `raw_state`, `raw_context` (every context frame, normalised; both
/// followed by the [`scene_features`] when the model observes the scene), `last`
/// and `target` positions (m), `constant_velocity` (the ballistic position at the
/// horizon), `log_mass_friction` (ln of the mass in kg, and the friction coefficient
/// itself), `moving` (1 for objects that move during the context) and `row` (0, 1, ...).
fn write_features(path: &std::path::Path, r: &Rows, d: &Dims) -> Result<()> {
    let n = r.moving.len();
    let moving: Vec<f32> = r.moving.iter().map(|m| f32::from(u8::from(*m))).collect();
    let named: [(&str, &[f32], usize); 17] = [
        ("trained", &r.trained, d.out),
        ("trained_mean", &r.trained_mean, d.out),
        ("trained_predictor_state", &r.state, d.pred),
        ("random_init", &r.random, d.out),
        ("random_init_mean", &r.random_mean, d.out),
        ("random_init_predictor_state", &r.state_random, d.pred),
        ("encoder", &r.enc, d.enc),
        ("random_init_encoder", &r.enc_random, d.enc),
        ("future_target", &r.future_target, d.enc),
        ("raw_state", &r.raw, OBS_DIM + d.scene),
        ("raw_context", &r.raw_ctx, OBS_DIM * d.ctx + d.scene),
        ("constant_velocity", &r.cv, 3),
        ("last", &r.last, 3),
        ("target", &r.target, 3),
        ("log_mass_friction", &r.props, 2),
        ("moving", &moving, 1),
        ("row", &(0..n).map(|i| i as f32).collect::<Vec<_>>(), 1),
    ];
    let mut tensors = std::collections::HashMap::new();
    for (name, v, w) in named {
        tensors.insert(name.to_string(), candle_core::Tensor::from_slice(v, (n, w), &Device::Cpu)?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(crate::checkpoint::io(dir))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(crate::checkpoint::io(path))?;
    Ok(())
}

/// Mean distance between `base + delta` and `target` (rows of 3).
fn position_error(pred_delta: &[f32], last: &[f32], target: &[f32]) -> f64 {
    let n = target.len() / 3;
    (0..n)
        .map(|i| {
            (0..3)
                .map(|c| ((last[i * 3 + c] + pred_delta[i * 3 + c] - target[i * 3 + c]) as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum::<f64>()
        / n.max(1) as f64
}

fn r2(pred: &[f32], y: &[f32], k: usize, c: usize) -> f64 {
    let n = y.len() / k;
    let mean = (0..n).map(|i| y[i * k + c] as f64).sum::<f64>() / n.max(1) as f64;
    let ss_tot: f64 = (0..n).map(|i| (y[i * k + c] as f64 - mean).powi(2)).sum();
    let ss_res: f64 = (0..n).map(|i| (y[i * k + c] as f64 - pred[i * k + c] as f64).powi(2)).sum();
    if ss_tot <= 0.0 { 0.0 } else { 1.0 - ss_res / ss_tot }
}

/// Measure a trained model (`model`, trained with `cfg`, inputs normalised by `norm`) on
/// the dataset `ds`.
pub fn learning_report(
    ds: &Dataset,
    model: &WorldModel,
    cfg: &TrainConfig,
    norm: &Normalizer,
    o: &ReadoutOptions,
) -> Result<LearningReport> {
    if o.horizon == 0 {
        return Err(ModelError::config("horizon", 0, "at least 1 frame"));
    }
    for (field, split) in [("fit_split", &o.fit_split), ("eval_split", &o.eval_split)] {
        if !ds.info.splits.contains_key(split) {
            let names: Vec<&str> = ds.info.splits.keys().map(String::as_str).collect();
            return Err(ModelError::config(field, split, format!("a split of this dataset: {}", names.join(", "))));
        }
    }
    let ctx = cfg.data.context;
    // The raw observed state every probe reads, with the static scene when the model
    // observes it.
    let sw = if cfg.model.scene { SCENE_FEATURES } else { 0 };
    let rw = OBS_DIM + sw;
    let random = WorldModel::new(&cfg.model, o.random_seed, &Device::Cpu)?;
    let fps = ds.info.fps.max(1) as f32;
    let fit_w = windows(ds, &o.fit_split, ctx, o)?;
    let eval_w = windows(ds, &o.eval_split, ctx, o)?;
    let fit = rows(model, &random, cfg, norm, &fit_w, ctx, o.horizon, fps)?;
    let ev = rows(model, &random, cfg, norm, &eval_w, ctx, o.horizon, fps)?;
    let (nf, ne) = (fit.target.len() / 3, ev.target.len() / 3);
    if nf < 2 || ne < 1 {
        return Err(ModelError::config(
            "readout data",
            format!("{nf} fit and {ne} evaluation objects"),
            format!("episodes of at least {} frames in splits {} and {}", ctx + o.horizon, o.fit_split, o.eval_split),
        ));
    }
    if let Some(dir) = &o.features_out {
        let dims = Dims { out: model.predictor_output(), enc: cfg.model.dim, pred: cfg.model.pred_dim, ctx, scene: sw };
        for (split, r) in [(&o.fit_split, &fit), (&o.eval_split, &ev)] {
            write_features(&dir.join(format!("{split}.safetensors")), r, &dims)?;
        }
    }
    // Position probes predict the displacement over the horizon from the raw observed state
    // of the last context frame plus a representation: the representation must add what
    // the present state lacks (a representation of the future frame alone need not know
    // where the object was, and a JEPA may drop absolute position, which dynamics do not
    // depend on).
    let (d_out, d_enc) = (model.predictor_output(), cfg.model.dim);
    let delta = |r: &Rows| -> Vec<f32> { r.target.iter().zip(&r.last).map(|(t, l)| t - l).collect() };
    let dfit = delta(&fit);
    let with_raw = |x: &[f32], raw: &[f32], d: usize| -> Vec<f32> {
        x.chunks(d).zip(raw.chunks(rw)).flat_map(|(a, b)| b.iter().chain(a).copied()).collect()
    };
    let pos = |xf: &[f32], xe: &[f32], d: usize| -> Result<f64> {
        let (xf, xe) = (with_raw(xf, &fit.raw, d), with_raw(xe, &ev.raw, d));
        let p = RidgeProbe::fit_cv(&xf, &dfit, d + rw, 3, &o.lambdas, 5)?;
        Ok(position_error(&p.predict(&xe), &ev.last, &ev.target))
    };
    let raw_pos = {
        let p = RidgeProbe::fit_cv(&fit.raw, &dfit, rw, 3, &o.lambdas, 5)?;
        position_error(&p.predict(&ev.raw), &ev.last, &ev.target)
    };
    // Property probes: log mass and friction of objects that move during the context, from
    // the raw last observed state plus the representation (or the raw state alone, or every
    // raw context frame, which shows the motion).
    let keep = |x: &[f32], r: &Rows, d: usize| -> Vec<f32> {
        x.chunks(d).zip(&r.moving).filter(|(_, m)| **m).flat_map(|(c, _)| c.iter().copied()).collect()
    };
    let (pf, pe) = (keep(&fit.props, &fit, 2), keep(&ev.props, &ev, 2));
    let prop = |xf: &[f32], xe: &[f32], d: usize, raw: bool| -> Result<[f64; 2]> {
        let (mut xf, mut xe, mut d) = (keep(xf, &fit, d), keep(xe, &ev, d), d);
        if raw {
            xf = with_raw(&xf, &keep(&fit.raw, &fit, rw), d);
            xe = with_raw(&xe, &keep(&ev.raw, &ev, rw), d);
            d += rw;
        }
        if pf.len() < 4 || pe.is_empty() {
            return Ok([f64::NAN, f64::NAN]);
        }
        let p = RidgeProbe::fit_cv(&xf, &pf, d, 2, &o.lambdas, 5)?;
        let pred = p.predict(&xe);
        Ok([r2(&pred, &pe, 2, 0), r2(&pred, &pe, 2, 1)])
    };
    let position = PositionScores {
        trained: pos(&fit.trained, &ev.trained, d_out)?,
        random_init: pos(&fit.random, &ev.random, d_out)?,
        trained_encoder: pos(&fit.enc, &ev.enc, d_enc)?,
        future_target: pos(&fit.future_target, &ev.future_target, d_enc)?,
        raw_state: raw_pos,
        constant_velocity: position_error(
            &ev.cv.iter().zip(&ev.last).map(|(c, l)| c - l).collect::<Vec<_>>(),
            &ev.last,
            &ev.target,
        ),
    };
    let t = prop(&fit.trained_mean, &ev.trained_mean, d_out, true)?;
    let d_pred = cfg.model.pred_dim;
    let ts = prop(&fit.state, &ev.state, d_pred, true)?;
    let rnd = prop(&fit.random_mean, &ev.random_mean, d_out, true)?;
    let rs = prop(&fit.state_random, &ev.state_random, d_pred, true)?;
    let raw = prop(&fit.raw, &ev.raw, rw, false)?;
    let rawc = prop(&fit.raw_ctx, &ev.raw_ctx, OBS_DIM * ctx + sw, false)?;
    let scores = |k: usize| PropertyScores {
        trained: t[k],
        trained_predictor_state: ts[k],
        random_init: rnd[k],
        random_init_predictor_state: rs[k],
        raw_state: raw[k],
        raw_context: rawc[k],
    };
    Ok(LearningReport {
        objects: ne,
        moving_objects: ev.moving.iter().filter(|m| **m).count(),
        fit_objects: nf,
        position,
        log_mass: scores(0),
        friction: scores(1),
        effective_rank: [effective_rank(&ev.enc, ne, d_enc), effective_rank(&ev.enc_random, ne, d_enc)],
        dim: d_enc,
        scene_features: sw,
    })
}
