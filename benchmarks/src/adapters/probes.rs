//! Probe-based adapters: frozen features, readout probes fit on the `readout` split.
//!
//! [`ProbeAdapter`] holds the probes and the readout protocols; a [`Featurizer`] supplies
//! the features: [`Jepa`] (a trained checkpoint's encoder and predictor rollout) or
//! [`RawState`] (the raw observed state, the learned-representation-free control).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use physworld_model::{Batch, Normalizer, OBS_DIM, RidgeProbe, TrainConfig, WorldModel, checkpoint, load_run};
use physworld_pipeline::EpisodeFrames;
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::imagine::{Decoder, DecoderRows};
use super::{Adapter, Answer, Context, Surprise};
use crate::error::{BenchError, Result};
use crate::observe::EpisodeObs;
use crate::probe::Logistic;
use crate::results::ModelRef;
use crate::tasks::{Item, Target, TaskKind, pos, seen};

/// Frames rolled forward for the contact and outcome readouts by default (1 s at 30 fps).
pub const READOUT_ROLLOUT: usize = 30;

/// How the probes read a checkpoint out: the options of `jepa[,features=model|both]`
/// `[,rollout=FRAMES|end][,judge=probe|trajectory][,pairs=on|off][,probe=linear|attentive]:<run dir>`.
///
/// The default is the model's own features (`model`) and a 1-s rollout. `features=both`
/// adds the raw observed state to every probe's rows, which can win without any
/// world-model content: report it beside `raw-state` and the features alone, never
/// instead of them. `rollout=end` reads contact and outcome from the model's imagined
/// future up to the episode's end (Physion's readout to the event horizon): the mean of
/// the rolled-out representations and the last one. `judge=trajectory` answers contact and
/// outcome from positions decoded from the rollout to the episode's end, judged by the
/// labels' geometry ([`super::imagine`]); contact and outcome then ignore `features`,
/// `rollout` and `pairs` (still recorded; forecast keeps using the first two). `pairs=on`
/// adds a relation to the contact probe's row: the squared difference of the agent's and
/// the patient's rows, feature by feature (zero when the patient is a zone), so that a
/// linear probe can read how close the two are in the model's representation, which it
/// cannot from the two rows side by side. `raw-state,pairs=on` gives the raw-state probe
/// the same relation. `probe=attentive` reads contact and outcome with an attentive probe
/// over per-object tokens instead of logistic regression on one row ([`ProbeKind`]);
/// `raw-state,probe=attentive` likewise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readout {
    /// Whether the probes also see the raw observed state.
    pub with_raw: bool,
    /// How far the contact and outcome rollout goes past the last observed frame.
    pub rollout: Rollout,
    /// How contact and outcome are answered.
    pub judge: Judge,
    /// Whether the contact probe also sees the pair's squared feature difference.
    pub pairs: bool,
    /// The probe contact and outcome are read with (`judge=probe`).
    pub probe: ProbeKind,
}

/// The probe that reads contact and outcome from the features (`probe=linear|attentive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// L2-regularised logistic regression on one row per item (or per candidate), its
    /// penalty chosen by cross-validation ([`Logistic`]).
    Linear,
    /// V-JEPA's frozen evaluation: a learned query cross-attends over the item's tokens
    /// (4 heads), then a residual MLP block and a linear head
    /// ([`physworld_model::AttentiveProbe`], [`ATTENTIVE`]). The tokens: one per object
    /// slot (seen at the last observed frame, or named by the question), flagged agent or
    /// patient when the question names it; one for the static scene and the item's zone;
    /// with `pairs=on`, one for the pair relation.
    Attentive,
}

/// The attentive probe's settings, recorded in result files: V-JEPA's pooler at small
/// width (32, in 4 heads of 8, with its residual MLP block), 300 full-batch AdamW steps at
/// 1e-2, weight decay 1e-3, seeds from 0 ([`ATTENTIVE_ENSEMBLE`]).
pub const ATTENTIVE: physworld_model::AttentiveConfig = physworld_model::AttentiveConfig {
    hidden: 32,
    heads: 4,
    mlp: true,
    steps: 300,
    lr: 1e-2,
    weight_decay: 1e-3,
    seed: 0,
};

/// Attentive probes fit per question (seeds `ATTENTIVE.seed..+ATTENTIVE_ENSEMBLE`, in
/// parallel), their probabilities averaged: one probe's answers on held-out regions move
/// with its initialisation (raw-state contact on the CI-sized `physion`: 0.582 with seed 0,
/// 0.667 with seed 1).
pub const ATTENTIVE_ENSEMBLE: u64 = 5;

/// How contact and outcome are answered from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// Logistic probes on the features.
    Probe,
    /// The imagined trajectory, decoded and judged by geometry ([`super::imagine`]).
    Trajectory,
}

/// Length of the contact and outcome readout's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// This many frames.
    Frames(usize),
    /// To the end of the episode.
    End,
}

impl Default for Readout {
    fn default() -> Self {
        Readout {
            with_raw: false,
            rollout: Rollout::Frames(READOUT_ROLLOUT),
            judge: Judge::Probe,
            pairs: false,
            probe: ProbeKind::Linear,
        }
    }
}

/// The options [`Readout::parse`] accepts.
pub const READOUT_OPTIONS: &str = "features=model|both, rollout=FRAMES (1 to 10000)|end, judge=probe|trajectory, \
     pairs=on|off, probe=linear|attentive (with judge=probe)";

impl Readout {
    /// Parse comma-separated `key=value` options (`features=both,rollout=end`; empty for the
    /// default); `spec` is the whole model spec, for errors.
    pub fn parse(options: &str, spec: &str) -> Result<Readout> {
        let mut r = Readout::default();
        let bad = |what: &str| {
            BenchError::invalid(
                "model",
                spec,
                format!(
                    "jepa[,OPTION...]:<run dir> where {what}; options: {READOUT_OPTIONS}; planning (plan-push): {}",
                    crate::latent_plan::PLAN_OPTIONS
                ),
            )
        };
        for opt in options.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("features", "model")) => r.with_raw = false,
                Some(("features", "both")) => r.with_raw = true,
                Some(("rollout", "end")) => r.rollout = Rollout::End,
                Some(("judge", "probe")) => r.judge = Judge::Probe,
                Some(("judge", "trajectory")) => r.judge = Judge::Trajectory,
                Some(("pairs", "on")) => r.pairs = true,
                Some(("pairs", "off")) => r.pairs = false,
                Some(("probe", "linear")) => r.probe = ProbeKind::Linear,
                Some(("probe", "attentive")) => r.probe = ProbeKind::Attentive,
                Some(("rollout", n)) => match n.parse::<usize>() {
                    Ok(n) if (1..=10_000).contains(&n) => r.rollout = Rollout::Frames(n),
                    _ => return Err(bad(&format!("rollout is `{n}`"))),
                },
                _ => return Err(bad(&format!("`{opt}` is not an option"))),
            }
        }
        if r.judge == Judge::Trajectory && r.probe == ProbeKind::Attentive {
            return Err(bad("judge=trajectory judges decoded positions, so it takes no probe=attentive"));
        }
        Ok(r)
    }

    /// The options of `raw-state,OPTION...`: only `pairs` and `probe` (the raw state has no
    /// rollout, and its features already are the raw state); `spec` is the whole model spec,
    /// for errors.
    pub fn parse_raw_state(options: &str, spec: &str) -> Result<Readout> {
        for opt in options.split(',').filter(|o| !o.is_empty()) {
            if !matches!(opt.split_once('='), Some(("pairs", "on" | "off") | ("probe", "linear" | "attentive"))) {
                return Err(BenchError::invalid(
                    "model",
                    spec,
                    format!(
                        "raw-state[,pairs=on|off][,probe=linear|attentive] (`{opt}` is not an option of raw-state)"
                    ),
                ));
            }
        }
        Self::parse(options, spec)
    }

    /// The options as recorded in result files.
    pub fn describe(&self) -> serde_json::Value {
        let mut d = json!({
            "features": if self.with_raw { "model+raw" } else { "model" },
            "rollout": match self.rollout { Rollout::Frames(n) => json!(n), Rollout::End => json!("end") },
        });
        // Recorded only when set, so that result files of the default readout keep their bytes.
        if self.judge == Judge::Trajectory {
            d["judge"] = json!("trajectory");
            d["floor_m"] = json!(super::imagine::FLOOR_M);
        }
        if self.pairs {
            d["pairs"] = json!("squared difference");
        }
        if self.probe == ProbeKind::Attentive {
            // `constant_features`: result files from before features constant in the fit
            // set were dropped (they were divided by a 1e-6 std floor) lack it.
            let mut probe =
                json!({ "kind": "attentive", "ensemble": ATTENTIVE_ENSEMBLE, "constant_features": "dropped" });
            if let (Some(p), Ok(serde_json::Value::Object(settings))) =
                (probe.as_object_mut(), serde_json::to_value(&ATTENTIVE))
            {
                p.extend(settings);
            }
            d["probe"] = probe;
        }
        d
    }
}

/// Folds of the logistic probes' cross-validated penalty (over [`Logistic::L2S`]).
const LOGISTIC_FOLDS: usize = 5;

/// Features of one item: per slot at the last observed frame, and per slot at each
/// requested future offset.
#[derive(Debug, Clone)]
pub struct ItemFeatures {
    /// `[S × obs_dim]`.
    pub obs: Vec<f32>,
    /// `[K][S × fut_dim]`.
    pub fut: Vec<Vec<f32>>,
    /// Slots seen at the last observed frame.
    pub seen: Vec<bool>,
    /// `[S × OBS_DIM]`: the raw (normalised) state at the last observed frame, which the
    /// forecast probes of learned models also see (filled by [`ProbeAdapter`]; empty for
    /// [`RawState`], whose features already are that state).
    pub raw: Vec<f32>,
    /// Per slot: its position at the last observed frame (zero when unseen), the origin of
    /// forecast displacements.
    pub positions: Vec<[f32; 3]>,
    /// The static scene and the item's zone as a fixed-width vector
    /// (`static_features`; filled by [`ProbeAdapter`]).
    pub scene: Vec<f32>,
}

/// Static roles [`static_features`] summarises (floor, wall, ramp, container, table,
/// occluder: the [`physworld_pipeline::SceneBox`] kinds before goal zones).
const ROLES: u8 = 6;
/// Width of [`static_features`].
pub const STATIC_FEATURES: usize = ROLES as usize * 7 + 6;

/// The static scene of an observed episode as a fixed-width vector, for probes: per role
/// (floor, wall, ramp, container, table, occluder) the number of boxes and their mean centre
/// and mean half extents ([`physworld_model::scene_summary`], as the learning report's
/// probes read it); then the centre and half extents of the zone the item asks about (zero
/// when none).
pub fn static_features(e: &EpisodeObs, zone: Option<u16>) -> Vec<f32> {
    let mut out = physworld_model::scene_summary(&e.frames.scene, ROLES);
    match zone.and_then(|z| e.zones.iter().find(|x| x.index == z)) {
        Some(z) => {
            out.extend(z.center);
            out.extend(z.half_extents);
        }
        None => out.extend([0.0; 6]),
    }
    debug_assert_eq!(out.len(), STATIC_FEATURES);
    out
}

/// One observation's predictor rollout to the episode's end.
#[derive(Debug, Clone)]
pub struct Rolled {
    /// `[ahead × S × d_fut]`: the rollout, frame `k` (1-based) at `k - 1`.
    pub roll: Vec<f32>,
    /// Frames rolled out past the last observed frame.
    pub ahead: usize,
    /// Slots `S`.
    pub slots: usize,
}

/// Frames from an observation's last observed frame to its episode's last (at least 1).
fn frames_to_end(o: &EpisodeObs) -> usize {
    o.episode_frames.saturating_sub(o.frames.frames).max(1)
}

/// Where probe features come from.
pub trait Featurizer: Sync {
    /// Adapter kind.
    fn kind(&self) -> &'static str;
    /// Description for result files.
    fn describe(&self, id: &str) -> ModelRef;
    /// Widths of the observed and future features per slot.
    fn dims(&self) -> (usize, usize);
    /// Refuse items the model was trained on.
    fn check(&self, ctx: &Context<'_>) -> Result<()> {
        self.check_data(ctx.ds, ctx.split)
    }
    /// Refuse to score `split` of `ds` when the model was trained on it (planning tasks,
    /// which build no [`Context`], ask this directly).
    fn check_data(&self, _ds: &physworld_pipeline::Dataset, _split: &str) -> Result<()> {
        Ok(())
    }
    /// Features of observed episodes (each from [`crate::observe`], its last frame the
    /// reference) at future `offsets` (frames after the last observed one, 1-based), or,
    /// with `to_end`, two summaries of the future up to each episode's end (the mean over
    /// its frames and its last frame); `norm` is the dataset's input normalisation.
    fn features(
        &self,
        norm: &Normalizer,
        obs: &[&EpisodeObs],
        offsets: &[usize],
        to_end: bool,
    ) -> Result<Vec<ItemFeatures>>;
    /// For featurizers with a predictor: each observation's rollout to the episode's end
    /// (the readout of `judge=trajectory`).
    fn rollouts(&self, _obs: &[&EpisodeObs]) -> Option<Result<Vec<Rolled>>> {
        None
    }
    /// For featurizers with a predictor: what its predictions are compared with in
    /// training (the target encoder's representations, or the normalised states of
    /// state-mse) of real frames, each window of `windows` placed where a prediction pass
    /// after `context` frames puts its frames: `[W × T × S × d_fut]` flattened, with `T`
    /// the windows' common length.
    fn targets(&self, _windows: &[EpisodeFrames], _context: usize) -> Option<Result<Vec<f32>>> {
        None
    }
    /// For featurizers with a predictor: its context (frames) and the frames one
    /// prediction pass covers.
    fn pass_frames(&self) -> Option<(usize, usize)> {
        None
    }
    /// Surprise of each whole observed episode of one item, for featurizers with a
    /// predictor.
    fn surprise(&self, _episodes: &[&EpisodeFrames]) -> Option<Result<Vec<Surprise>>> {
        None
    }
    /// The planner it plays `plan-push` with, for featurizers with an action-conditioned
    /// predictor ([`crate::latent_plan`]).
    fn push_planner(&self, _id: &str) -> Option<Box<dyn crate::plan_push::PushPlanner>> {
        None
    }
    /// The planner it plays `plan-launch` with, for featurizers with a predictor
    /// ([`crate::latent_launch`]).
    fn launch_planner(&self, _id: &str) -> Option<Box<dyn crate::plan::LaunchPlanner>> {
        None
    }
}

/// The raw observed state (normalised with the dataset's train statistics) as features; its
/// "future" features are the same observation (there is no dynamics model).
pub struct RawState;

impl Featurizer for RawState {
    fn kind(&self) -> &'static str {
        "raw-state"
    }
    fn describe(&self, id: &str) -> ModelRef {
        ModelRef {
            labels_used: vec!["readout split labels (probes)".into()],
            config: json!({ "features": "normalised last observed state", "ridge_lambdas": RidgeProbe::LAMBDAS, "logistic_l2": Logistic::L2S, "logistic_folds": LOGISTIC_FOLDS }),
            ..ModelRef::new(id, "raw-state")
        }
    }
    fn dims(&self) -> (usize, usize) {
        (OBS_DIM, OBS_DIM)
    }
    fn features(
        &self,
        norm: &Normalizer,
        obs: &[&EpisodeObs],
        offsets: &[usize],
        to_end: bool,
    ) -> Result<Vec<ItemFeatures>> {
        let copies = if to_end { 2 } else { offsets.len() };
        obs.iter()
            .map(|o| {
                let e = &o.frames;
                let r = e.frames - 1;
                let last = e.slice(r, 1);
                let b = Batch::new(std::slice::from_ref(&last), norm, &Device::Cpu)?;
                let x: Vec<f32> = b.obs.flatten_all()?.to_vec1()?;
                Ok(ItemFeatures {
                    fut: vec![x.clone(); copies],
                    obs: x,
                    seen: (0..e.slots).map(|o| seen(e, r, o)).collect(),
                    raw: Vec::new(),
                    positions: (0..e.slots).map(|o| pos(e, r, o)).collect(),
                    scene: Vec::new(),
                })
            })
            .collect()
    }
}

/// A trained checkpoint (JEPA or state-mse) as features: the online encoder's representation
/// of the last observed frame and the predictor's rollout.
pub struct Jepa {
    run: PathBuf,
    model: std::sync::Arc<WorldModel>,
    cfg: TrainConfig,
    state: checkpoint::CheckpointState,
    checkpoint_hash: String,
    plan: crate::latent_plan::PlanOptions,
}

fn hash_dir(dir: &Path) -> Result<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| BenchError::file(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut h = Sha256::new();
    for p in names {
        h.update(p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&p).map_err(|e| BenchError::file(&p, e))?);
    }
    Ok(hex::encode(h.finalize()))
}

impl Jepa {
    /// Load the latest checkpoint of run folder `run` (or, in a `cloud` build, of the run
    /// at an object-store URL, fetched into the local cache: [`physworld_model::remote`]).
    pub fn load(run: &Path, spec: &str) -> Result<Jepa> {
        let local = match physworld_pipeline::store_url(run) {
            Some(_) => physworld_model::remote::fetch(run)?,
            None => run.to_path_buf(),
        };
        if !local.join("config.json").exists() {
            return Err(BenchError::invalid(
                "model",
                spec,
                format!("jepa:<run dir> with a trained run (no {} found)", local.join("config.json").display()),
            ));
        }
        let (model, cfg, state) = load_run(&local, &Device::Cpu)?;
        let dir = checkpoint::latest(&local)?.ok_or_else(|| BenchError::file(run, "no checkpoint"))?;
        Ok(Jepa {
            run: run.to_path_buf(),
            model: std::sync::Arc::new(model),
            cfg,
            state,
            checkpoint_hash: hash_dir(&dir)?,
            plan: crate::latent_plan::PlanOptions::default(),
        })
    }

    /// The same, planning `plan-push` with `plan`.
    pub fn with_plan(self, plan: crate::latent_plan::PlanOptions) -> Jepa {
        Jepa { plan, ..self }
    }

    /// The batch of each observation's [`Jepa::windows`], its context length `c`, and the
    /// predictor's rollout `steps` frames past the last observed frame
    /// (`[B × steps × S × d_fut]`).
    fn roll(&self, chunk: &[&EpisodeObs], steps: usize) -> Result<(Batch, usize, Vec<f32>)> {
        let (wins, c) = self.windows(chunk, steps);
        let batch = Batch::new(&wins, &self.state.normalizer, &Device::Cpu)?;
        let roll = if steps > 0 {
            let r = self.model.rollout(&batch, c, steps, self.cfg.data.context, self.cfg.data.future)?;
            r.flatten_all()?.to_vec1::<f32>()?
        } else {
            Vec::new()
        };
        Ok((batch, c, roll))
    }

    /// The last `c` observed frames of each observation (the shortest observation's length,
    /// at most the model's context), then `steps` frames that carry only the agent's planned
    /// forces: the rollout reads nothing else past the observation.
    fn windows(&self, obs: &[&EpisodeObs], steps: usize) -> (Vec<EpisodeFrames>, usize) {
        let ctx = self.cfg.data.context;
        let c = obs.iter().map(|o| o.frames.frames.min(ctx)).min().unwrap_or(1).max(1);
        let out = obs
            .iter()
            .map(|o| {
                let n = o.frames.frames;
                o.planned(steps).slice(n - c, c + steps)
            })
            .collect();
        (out, c)
    }
}

impl Featurizer for Jepa {
    fn kind(&self) -> &'static str {
        "jepa"
    }
    fn describe(&self, id: &str) -> ModelRef {
        ModelRef {
            id: id.into(),
            kind: match self.cfg.model.objective {
                physworld_model::Objective::Jepa => "jepa".into(),
                physworld_model::Objective::StateMse => "state-mse".into(),
            },
            checkpoint_hash: Some(self.checkpoint_hash.clone()),
            seeds: vec![self.cfg.seed],
            labels_used: vec!["readout split labels (probes)".into()],
            config: json!({
                "run": self.run.display().to_string(),
                "step": self.state.step,
                "train": self.cfg,
                "data": self.state.data,
                "ridge_lambdas": RidgeProbe::LAMBDAS,
                "logistic_l2": Logistic::L2S,
                "logistic_folds": LOGISTIC_FOLDS,
                "voe_windows": {
                    "context": self.cfg.data.context,
                    "future": self.cfg.data.future,
                    "stride": self.cfg.data.future,
                },
                "plan": self.plan,
            }),
        }
    }
    fn dims(&self) -> (usize, usize) {
        let out = match self.cfg.model.objective {
            physworld_model::Objective::Jepa => self.cfg.model.dim,
            physworld_model::Objective::StateMse => OBS_DIM,
        };
        (self.cfg.model.dim, out)
    }
    fn check_data(&self, ds: &physworld_pipeline::Dataset, split: &str) -> Result<()> {
        let d = &self.state.data;
        if d.suite_hash == ds.info.suite_hash && d.splits.iter().any(|s| s == split) {
            return Err(BenchError::Overlap {
                model: self.run.display().to_string(),
                what: format!("split(s) {} of this very dataset", d.splits.join(", ")),
                split: split.into(),
                suite: ds.suite.suite.name.clone(),
            });
        }
        Ok(())
    }
    fn features(
        &self,
        _norm: &Normalizer,
        obs: &[&EpisodeObs],
        offsets: &[usize],
        to_end: bool,
    ) -> Result<Vec<ItemFeatures>> {
        let (d_obs, d_fut) = self.dims();
        let mut out = Vec::new();
        for chunk in obs.chunks(32) {
            // Frames each item rolls forward: the offsets' furthest, or to its episode's end.
            let ahead: Vec<usize> = chunk
                .iter()
                .map(|o| if to_end { frames_to_end(o) } else { offsets.iter().copied().max().unwrap_or(0) })
                .collect();
            let steps = ahead.iter().copied().max().unwrap_or(0);
            let (batch, c, roll) = self.roll(chunk, steps)?;
            let s = batch.slots;
            let enc = self.model.encoder.forward(
                &batch.obs.narrow(1, c - 1, 1)?.contiguous()?,
                &batch.valid.narrow(1, c - 1, 1)?.contiguous()?,
                batch.scene.as_ref(),
                c - 1,
            )?;
            let enc: Vec<f32> = enc.flatten_all()?.to_vec1()?;
            let w = s * d_fut;
            for (b, o) in chunk.iter().enumerate() {
                let e = &o.frames;
                let r = e.frames - 1;
                // Frame `k` (1-based) of item `b`'s rollout.
                let at = |k: usize| &roll[(b * steps + k - 1) * w..(b * steps + k) * w];
                let fut = if to_end {
                    let n = ahead[b];
                    let mut mean = vec![0f32; w];
                    for k in 1..=n {
                        for (m, v) in mean.iter_mut().zip(at(k)) {
                            *m += v / n as f32;
                        }
                    }
                    vec![mean, at(n).to_vec()]
                } else {
                    offsets.iter().map(|&k| at(k).to_vec()).collect()
                };
                out.push(ItemFeatures {
                    obs: enc[b * s * d_obs..(b + 1) * s * d_obs].to_vec(),
                    fut,
                    seen: (0..s).map(|o| seen(e, r, o)).collect(),
                    raw: Vec::new(),
                    positions: (0..s).map(|o| pos(e, r, o)).collect(),
                    scene: Vec::new(),
                });
            }
        }
        Ok(out)
    }
    fn pass_frames(&self) -> Option<(usize, usize)> {
        Some((self.cfg.data.context, self.cfg.data.future))
    }
    fn targets(&self, windows: &[EpisodeFrames], context: usize) -> Option<Result<Vec<f32>>> {
        let run = || -> Result<Vec<f32>> {
            let batch = Batch::new(windows, &self.state.normalizer, &Device::Cpu)?;
            Ok(self.model.targets(&batch, context)?.flatten_all()?.to_vec1()?)
        };
        Some(run())
    }
    fn rollouts(&self, obs: &[&EpisodeObs]) -> Option<Result<Vec<Rolled>>> {
        let run = || -> Result<Vec<Rolled>> {
            let d_fut = self.dims().1;
            let mut out = Vec::new();
            for chunk in obs.chunks(32) {
                let ahead: Vec<usize> = chunk.iter().map(|o| frames_to_end(o)).collect();
                let steps = ahead.iter().copied().max().unwrap_or(0);
                let (batch, _, roll) = self.roll(chunk, steps)?;
                let s = batch.slots;
                let w = s * d_fut;
                for (b, &n) in ahead.iter().enumerate() {
                    out.push(Rolled { roll: roll[b * steps * w..(b * steps + n) * w].to_vec(), ahead: n, slots: s });
                }
            }
            Ok(out)
        };
        Some(run())
    }
    /// The task the model was trained on, slid over each episode (Garrido et al. 2025):
    /// windows of `data.context` frames and the `data.future` frames after them, one
    /// window every `data.future` frames, so that every frame after the first context is
    /// predicted once (see `surprise_windows`). All windows of the item's episodes with
    /// the same slot count and length go through the model as one batch.
    fn push_planner(&self, id: &str) -> Option<Box<dyn crate::plan_push::PushPlanner>> {
        Some(Box::new(crate::latent_plan::LatentPush::new(
            id,
            self.model.clone(),
            self.cfg.clone(),
            self.state.normalizer.clone(),
            self.plan.clone(),
        )))
    }
    fn launch_planner(&self, id: &str) -> Option<Box<dyn crate::plan::LaunchPlanner>> {
        Some(Box::new(crate::latent_launch::LatentLaunch::new(
            id,
            self.model.clone(),
            self.cfg.clone(),
            self.state.normalizer.clone(),
            self.plan.clone(),
        )))
    }
    fn surprise(&self, episodes: &[&EpisodeFrames]) -> Option<Result<Vec<Surprise>>> {
        let run = || -> Result<Vec<Surprise>> {
            let (c, f) = (self.cfg.data.context, self.cfg.data.future);
            let mut jobs: Vec<(usize, Window)> = Vec::new();
            for (i, e) in episodes.iter().enumerate() {
                jobs.extend(surprise_windows(e.frames, c, f).into_iter().map(|w| (i, w)));
            }
            // Windows batch together when their shapes agree; a stable sort keeps each
            // episode's windows in time order.
            let shape = |(i, w): &(usize, Window)| (episodes[*i].slots, w.future);
            jobs.sort_by_key(shape);
            let mut per: Vec<Vec<f64>> = vec![Vec::new(); episodes.len()];
            for group in jobs.chunk_by(|a, b| shape(a) == shape(b)) {
                for chunk in group.chunks(SURPRISE_BATCH) {
                    let wins: Vec<EpisodeFrames> =
                        chunk.iter().map(|(i, w)| episodes[*i].slice(w.start, c + w.future)).collect();
                    let batch = Batch::new(&wins, &self.state.normalizer, &Device::Cpu)?;
                    let out = self.model.surprise(&batch, batch.frames - c)?;
                    for ((i, w), v) in chunk.iter().zip(out) {
                        per[*i].extend(v[w.skip..].iter().map(|&x| f64::from(x)));
                    }
                }
            }
            Ok(per.iter().map(|p| Surprise::from_frames(p)).collect())
        };
        Some(run())
    }
}

/// Windows one forward pass scores at most.
const SURPRISE_BATCH: usize = 128;

/// One surprise window: the frames from `start`, `future` of them predicted after the
/// context, of which the first `skip` were already scored by the window before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First frame (of the context).
    pub start: usize,
    /// Predicted frames after the context.
    pub future: usize,
    /// Predicted frames already scored by the previous window.
    pub skip: usize,
}

/// The surprise windows of an episode of `frames` frames for a model with `context` and
/// `future` frames: one window every `future` frames; the last one ends at the episode's
/// end (overlapping the one before, whose frames it skips); an episode shorter than
/// `context + future` gets one window with fewer future frames; none when no frame
/// follows a context. Every frame from `context` on is scored exactly once.
pub fn surprise_windows(frames: usize, context: usize, future: usize) -> Vec<Window> {
    if frames <= context || future == 0 {
        return Vec::new();
    }
    if frames < context + future {
        return vec![Window { start: 0, future: frames - context, skip: 0 }];
    }
    let mut out: Vec<Window> =
        (0..=frames - context - future).step_by(future).map(|start| Window { start, future, skip: 0 }).collect();
    let covered = out.last().map_or(0, |w| w.start + context + future);
    if covered < frames {
        let start = frames - context - future;
        out.push(Window { start, future, skip: covered - (start + context) });
    }
    out
}

/// Probes over a [`Featurizer`]: ridge from per-object features to displacements
/// (forecast), logistic regression from scene features to labels (contact, outcome), fit on
/// the `readout` split under Physion's protocols; surprise for VoE where the featurizer has
/// a predictor.
pub struct ProbeAdapter<F> {
    id: String,
    feat: F,
    readout: Readout,
    /// Features per (dataset, items, task, readout): a task's readout protocols share them,
    /// and the next dataset of a run (another fold) never finds the last one's.
    cache: BTreeMap<CacheKey, Vec<ItemFeatures>>,
    /// `judge=trajectory`'s rows (readout items', items') per (dataset, items, task).
    imagined: BTreeMap<CacheKey, ImaginedRows>,
}

impl<F: Featurizer> ProbeAdapter<F> {
    /// Wrap `feat` under row name `id`, read out the default way.
    pub fn new(id: &str, feat: F) -> Self {
        Self::with_readout(id, feat, Readout::default())
    }

    /// Wrap `feat` under row name `id`, read out as `readout` says.
    pub fn with_readout(id: &str, feat: F, readout: Readout) -> Self {
        ProbeAdapter { id: id.into(), feat, readout, cache: BTreeMap::new(), imagined: BTreeMap::new() }
    }

    /// Whether the probes get the raw observed state beside the features (`features=both`;
    /// never for [`RawState`], whose features already are that state).
    fn adds_raw(&self) -> bool {
        self.readout.with_raw && self.feat.kind() != "raw-state"
    }

    /// The future offsets a task's features are taken at, and whether they run to the
    /// episode's end instead.
    fn offsets(&self, task: TaskKind, items: &[Item]) -> (Vec<usize>, bool) {
        match (task, self.readout.rollout) {
            (TaskKind::Forecast, _) => (items.first().map(|i| i.horizons.clone()).unwrap_or_default(), false),
            (_, Rollout::Frames(n)) => (vec![n], false),
            (_, Rollout::End) => (Vec::new(), true),
        }
    }

    fn feats(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        readout: bool,
        tick: Option<&(dyn Fn() + Sync)>,
    ) -> Result<Vec<ItemFeatures>> {
        let key = cache_key(ctx, task, items, readout);
        if let Some(f) = self.cache.get(&key) {
            if let Some(t) = tick {
                items.iter().for_each(|_| t());
            }
            return Ok(f.clone());
        }
        let (offsets, to_end) = self.offsets(task, items);
        let norm = ctx.frames.normalizer();
        let feat = &self.feat;
        let with_raw = self.adds_raw();
        // Chunks of 32 items in parallel: the chunks, and so every batch, are the same
        // whatever the thread count.
        let chunks = items
            .par_chunks(32)
            .map(|chunk| -> Result<Vec<ItemFeatures>> {
                let obs = chunk.iter().map(|it| ctx.observe(it)).collect::<Result<Vec<_>>>()?;
                let eps: Vec<&EpisodeObs> = obs.iter().map(|o| o.first()).collect();
                let mut f = feat.features(norm, &eps, &offsets, to_end)?;
                if with_raw {
                    for (x, r) in f.iter_mut().zip(RawState.features(norm, &eps, &[], false)?) {
                        x.raw = r.obs;
                    }
                }
                for ((x, o), it) in f.iter_mut().zip(&obs).zip(chunk) {
                    x.scene = static_features(o.first(), it.zone);
                }
                if let Some(t) = tick {
                    chunk.iter().for_each(|_| t());
                }
                Ok(f)
            })
            .collect::<Result<Vec<_>>>()?;
        let out: Vec<ItemFeatures> = chunks.into_iter().flatten().collect();
        self.cache.retain(|k, _| k.0 == key.0);
        self.cache.insert(key, out.clone());
        Ok(out)
    }
}

impl<F: Featurizer> ProbeAdapter<F> {
    /// `judge=trajectory`'s rows of the `readout` items and of `items`: the decoder is fit
    /// on the `readout` items' rollouts and true futures, then every item's rollout is
    /// decoded and judged ([`super::imagine`]). Cached per dataset and task, since
    /// contact's protocols share them.
    fn imagined_rows(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        readout: &[Item],
        items: &[Item],
        tick: &(dyn Fn() + Sync),
    ) -> Result<ImaginedRows> {
        let key = cache_key(ctx, task, items, true);
        if let Some(r) = self.imagined.get(&key) {
            items.iter().for_each(|_| tick());
            return Ok(r.clone());
        }
        let feat = &self.feat;
        let dims = feat.dims();
        let rolled = |obs: &[&EpisodeObs]| feat.rollouts(obs).unwrap_or_else(no_predictor);
        // The decoder's rows, 32 readout items at a time (the same chunks whatever the
        // thread count), concatenated in item order: the target representations of each
        // readout episode's real frames after its observation, in windows of one prediction
        // pass, to the objects' positions.
        let (context, chunk_len) = feat.pass_frames().unwrap_or((1, 1));
        let chunk_len = chunk_len.max(1);
        let parts = readout
            .par_chunks(32)
            .map(|chunk| -> Result<DecoderRows> {
                let mut rows = DecoderRows::new(chunk_len);
                for it in chunk {
                    let truth = ctx.readout_frames.get(it.episodes[0])?;
                    let obs = ctx.observe(it)?;
                    let windows = decoder_windows(truth, &obs.first().frames, it.observe, chunk_len);
                    // The first pass follows the observed frames (at most the model's
                    // context, as the rollout takes them); the later ones a full context.
                    let first_context = obs.first().frames.frames.clamp(1, context.max(1));
                    for (first, ws, c) in [
                        (true, &windows[..windows.len().min(1)], first_context),
                        (false, &windows[windows.len().min(1)..], context),
                    ] {
                        if ws.is_empty() {
                            continue;
                        }
                        let t = feat.targets(ws, c).unwrap_or_else(no_predictor)?;
                        Decoder::rows(ws, &t, dims.1, first, &mut rows);
                    }
                }
                Ok(rows)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut rows = DecoderRows::new(chunk_len);
        for p in parts {
            rows.extend(p);
        }
        let decoder = Decoder::fit(&rows, dims.1)?;
        drop(rows);
        let judged = |list: &[Item], tick: Option<&(dyn Fn() + Sync)>| -> Result<Vec<JudgeRows>> {
            let parts = list
                .par_chunks(32)
                .map(|chunk| -> Result<Vec<JudgeRows>> {
                    let obs = chunk.iter().map(|it| ctx.observe(it)).collect::<Result<Vec<_>>>()?;
                    let eps: Vec<&EpisodeObs> = obs.iter().map(|o| o.first()).collect();
                    let rows = rolled(&eps)?
                        .iter()
                        .zip(&eps)
                        .zip(chunk)
                        .map(|((r, o), it)| {
                            let im = decoder.imagine(r, o);
                            match it.question.as_str() {
                                "first_floor" => {
                                    JudgeRows::Candidates(it.objects.iter().map(|&s| im.candidate_row(s)).collect())
                                }
                                _ => JudgeRows::Scene(im.scene_row(it, o)),
                            }
                        })
                        .collect();
                    if let Some(t) = tick {
                        chunk.iter().for_each(|_| t());
                    }
                    Ok(rows)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(parts.into_iter().flatten().collect())
        };
        let out = (judged(readout, None)?, judged(items, Some(tick))?);
        self.imagined.retain(|k, _| k.0 == key.0);
        self.imagined.insert(key, out.clone());
        Ok(out)
    }
}

/// The error of `judge=trajectory` on a featurizer without a predictor.
fn no_predictor<T>() -> Result<T> {
    Err(BenchError::invalid("judge", "trajectory", "a model with a predictor"))
}

/// Windows of `len` real frames of `truth` (the whole episode, true slot order) after its
/// first `observe` frames, to its end, with the observation's static scene: what the
/// decoder of `judge=trajectory` learns to read.
fn decoder_windows(truth: &EpisodeFrames, observed: &EpisodeFrames, observe: usize, len: usize) -> Vec<EpisodeFrames> {
    (observe..truth.frames.saturating_sub(len - 1))
        .step_by(len)
        .map(|start| {
            let mut w = truth.slice(start, len);
            w.scene = observed.scene.clone();
            w
        })
        .collect()
}

/// Mean of the seen slots' features.
fn pooled(x: &[f32], seen: &[bool], d: usize) -> Vec<f32> {
    let mut m = vec![0f32; d];
    let n = seen.iter().filter(|s| **s).count().max(1) as f32;
    for (o, s) in seen.iter().enumerate() {
        if *s {
            for c in 0..d {
                m[c] += x[o * d + c] / n;
            }
        }
    }
    m
}

fn slot(x: &[f32], o: Option<u16>, d: usize) -> Vec<f32> {
    match o {
        Some(o) if (o as usize + 1) * d <= x.len() => x[o as usize * d..(o as usize + 1) * d].to_vec(),
        _ => vec![0.0; d],
    }
}

/// One object's features: at the last observed frame, at each future point, and its raw
/// state when the readout adds it.
fn object_row(f: &ItemFeatures, o: Option<u16>, (d_obs, d_fut): (usize, usize)) -> Vec<f32> {
    let mut row = slot(&f.obs, o, d_obs);
    for x in &f.fut {
        row.extend(slot(x, o, d_fut));
    }
    if !f.raw.is_empty() {
        row.extend(slot(&f.raw, o, OBS_DIM));
    }
    row
}

/// The seen objects' features pooled (mean), as [`object_row`] lists them.
fn pooled_row(f: &ItemFeatures, (d_obs, d_fut): (usize, usize)) -> Vec<f32> {
    let mut row = pooled(&f.obs, &f.seen, d_obs);
    for x in &f.fut {
        row.extend(pooled(x, &f.seen, d_fut));
    }
    if !f.raw.is_empty() {
        row.extend(pooled(&f.raw, &f.seen, OBS_DIM));
    }
    row
}

/// Scene-level row of an item for the contact and tower probes; with `pairs`, a contact
/// row ends with the squared difference of its two objects' rows (zeros when the patient
/// is a zone).
fn scene_row(it: &Item, f: &ItemFeatures, dims: (usize, usize), pairs: bool) -> Vec<f32> {
    let mut row = pooled_row(f, dims);
    row.extend_from_slice(&f.scene);
    if it.question == "contact" {
        let (a, b) = (it.objects.first().copied(), it.objects.get(1).copied());
        let (ra, rb) = (object_row(f, a, dims), object_row(f, b, dims));
        let relation: Vec<f32> = match b {
            Some(_) if pairs => ra.iter().zip(&rb).map(|(x, y)| (x - y) * (x - y)).collect(),
            None if pairs => vec![0.0; ra.len()],
            _ => Vec::new(),
        };
        row.extend(ra);
        row.extend(rb);
        row.extend(relation);
    }
    row
}

/// Per-candidate row for the first-to-the-floor probe.
fn candidate_row(f: &ItemFeatures, o: u16, dims: (usize, usize)) -> Vec<f32> {
    let mut row = object_row(f, Some(o), dims);
    row.extend(pooled_row(f, dims));
    row.extend_from_slice(&f.scene);
    row
}

impl<F: Featurizer> Adapter for ProbeAdapter<F> {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        self.feat.kind()
    }
    fn supports(&self, task: TaskKind) -> bool {
        task != TaskKind::Voe || self.feat.kind() != "raw-state"
    }
    fn describe(&self) -> ModelRef {
        let mut m = self.feat.describe(&self.id);
        // The raw-state probe records its readout only when it has an option (`pairs=on`,
        // `probe=attentive`), so that its default result files keep their bytes.
        if (self.feat.kind() != "raw-state" || self.readout.pairs || self.readout.probe != ProbeKind::Linear)
            && let Some(c) = m.config.as_object_mut()
        {
            c.insert("readout".into(), self.readout.describe());
        }
        m
    }
    fn push_planner(&self) -> Option<Box<dyn crate::plan_push::PushPlanner>> {
        self.feat.push_planner(&self.id)
    }
    fn launch_planner(&self) -> Option<Box<dyn crate::plan::LaunchPlanner>> {
        self.feat.launch_planner(&self.id)
    }
    fn check_scored(&self, ds: &physworld_pipeline::Dataset, split: &str) -> Result<()> {
        self.feat.check_data(ds, split)
    }
    fn protocols(&self, task: TaskKind) -> Vec<&'static str> {
        match task {
            TaskKind::Contact => vec!["all", "only", "all-but-one"],
            TaskKind::Forecast | TaskKind::Outcome => vec!["all"],
            TaskKind::Voe => Vec::new(),
        }
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        self.feat.check(ctx)?;
        if task == TaskKind::Voe {
            // Items in parallel: each item's batches are the same whatever the thread count.
            let feat = &self.feat;
            return items
                .par_iter()
                .map(|it| {
                    let obs = ctx.observe(it)?;
                    let eps: Vec<&EpisodeFrames> = obs.episodes.iter().map(|e| &e.frames).collect();
                    let s = feat
                        .surprise(&eps)
                        .unwrap_or_else(|| Err(BenchError::invalid("task", "voe", "a model with a predictor")))?;
                    tick();
                    Ok(Answer::Surprise(s))
                })
                .collect();
        }
        let readout: Vec<Item> = ctx.readout.get(&task).map(|r| r.items.clone()).unwrap_or_default();
        if readout.is_empty() {
            return Ok(items.iter().map(|_| Answer::Invalid("no readout items to fit a probe".into())).collect());
        }
        let dims = self.feat.dims();
        if task != TaskKind::Forecast && self.readout.judge == Judge::Trajectory {
            let (fit_rows, rows) = self.imagined_rows(ctx, task, &readout, items, tick)?;
            return Ok(judge(items, &rows, &readout, &fit_rows, protocol.unwrap_or("all")));
        }
        let fit_feats = self.feats(ctx, task, &readout, true, None)?;
        let feats = self.feats(ctx, task, items, false, Some(tick))?;
        match task {
            TaskKind::Forecast => {
                let horizons = items.first().map(|i| i.horizons.len()).unwrap_or(0);
                // The raw present state only when the readout adds it (`features=both`).
                let raw_w = if self.adds_raw() { OBS_DIM } else { 0 };
                let row = |f: &ItemFeatures, k: usize, o: u16| {
                    let mut r = if raw_w > 0 { slot(&f.raw, Some(o), raw_w) } else { Vec::new() };
                    r.extend(slot(&f.obs, Some(o), dims.0));
                    r.extend(slot(&f.fut[k], Some(o), dims.1));
                    r
                };
                let width = raw_w + dims.0 + dims.1;
                let mut probes = Vec::new();
                for k in 0..horizons {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    for (it, f) in readout.iter().zip(&fit_feats) {
                        let Target::Positions(t) = &it.target else { continue };
                        for (j, &o) in it.objects.iter().enumerate() {
                            let p0 = f.positions[o as usize];
                            x.extend(row(f, k, o));
                            y.extend((0..3).map(|c| t[k][j][c] - p0[c]));
                        }
                    }
                    probes.push(RidgeProbe::fit_cv(&x, &y, width, 3, &RidgeProbe::LAMBDAS, 5)?);
                }
                items
                    .iter()
                    .zip(&feats)
                    .map(|(it, f)| {
                        Ok(Answer::Positions(
                            (0..horizons)
                                .map(|k| {
                                    it.objects
                                        .iter()
                                        .map(|&o| {
                                            let d = probes[k].predict(&row(f, k, o));
                                            let p0 = f.positions[o as usize];
                                            [p0[0] + d[0], p0[1] + d[1], p0[2] + d[2]]
                                        })
                                        .collect()
                                })
                                .collect(),
                        ))
                    })
                    .collect()
            }
            _ if self.readout.probe == ProbeKind::Attentive => {
                let tokens = Tokens { dims, pairs: self.readout.pairs };
                judge_attentive(items, &feats, &readout, &fit_feats, protocol.unwrap_or("all"), tokens)
            }
            _ => {
                let pairs = self.readout.pairs;
                let of = |it: &Item, f: &ItemFeatures| match it.question.as_str() {
                    "first_floor" => {
                        JudgeRows::Candidates(it.objects.iter().map(|&o| candidate_row(f, o, dims)).collect())
                    }
                    _ => JudgeRows::Scene(scene_row(it, f, dims, pairs)),
                };
                let fit_rows: Vec<JudgeRows> = readout.iter().zip(&fit_feats).map(|(it, f)| of(it, f)).collect();
                let rows: Vec<JudgeRows> = items.iter().zip(&feats).map(|(it, f)| of(it, f)).collect();
                Ok(judge(items, &rows, &readout, &fit_rows, protocol.unwrap_or("all")))
            }
        }
    }
}

/// What [`ProbeAdapter`] caches features and rows by: the dataset (suite hash), the items
/// (their content hash), the task and whether they are the `readout` items.
type CacheKey = (String, String, TaskKind, bool);

fn cache_key(ctx: &Context<'_>, task: TaskKind, items: &[Item], readout: bool) -> CacheKey {
    (ctx.ds.info.suite_hash.clone(), crate::tasks::content_hash(items.iter().map(|i| i.hash.as_str())), task, readout)
}

/// `judge=trajectory`'s rows of the `readout` items and of the scored items.
type ImaginedRows = (Vec<JudgeRows>, Vec<JudgeRows>);

/// What the logistic probes of contact and outcome read for one item: one row, or one row
/// per first-to-the-floor candidate (choice order).
#[derive(Debug, Clone)]
enum JudgeRows {
    Scene(Vec<f32>),
    Candidates(Vec<Vec<f32>>),
}

/// Which probe answers item `it` under a readout protocol: one per question under `all`
/// (the family left empty), one per (question, family) under `only` and `all-but-one`.
fn probe_key(it: &Item, protocol: &str) -> (String, String) {
    (it.question.clone(), if protocol == "all" { String::new() } else { it.family.clone() })
}

/// Whether readout item `r` is fit by the probe keyed `(question, family)` ([`probe_key`]):
/// the same question, and under `only` the same family, under `all-but-one` any other.
fn fits_probe(r: &Item, (question, family): &(String, String), protocol: &str) -> bool {
    r.question == *question
        && match protocol {
            "only" => r.family == *family,
            "all-but-one" => r.family != *family,
            _ => true,
        }
}

/// Answer contact and outcome `items` (rows `rows`) with logistic probes fit on the
/// `readout` items' rows under `protocol`: one probe per question (and, for `only` and
/// `all-but-one`, per family).
fn judge(items: &[Item], rows: &[JudgeRows], readout: &[Item], fit_rows: &[JudgeRows], protocol: &str) -> Vec<Answer> {
    let mut out = Vec::with_capacity(items.len());
    let mut probes: BTreeMap<(String, String), Option<Logistic>> = BTreeMap::new();
    for (it, row) in items.iter().zip(rows) {
        let key = probe_key(it, protocol);
        let probe = probes
            .entry(key.clone())
            .or_insert_with(|| {
                let (mut x, mut y, mut groups, mut dim) = (Vec::new(), Vec::new(), Vec::new(), 0);
                for (g, (r, rr)) in
                    readout.iter().zip(fit_rows).filter(|(r, _)| fits_probe(r, &key, protocol)).enumerate()
                {
                    let Some(ans) = r.answer_index() else { continue };
                    match rr {
                        JudgeRows::Candidates(c) => {
                            for (j, row) in c.iter().enumerate() {
                                dim = row.len();
                                x.extend_from_slice(row);
                                y.push(j == ans);
                                groups.push(g);
                            }
                        }
                        JudgeRows::Scene(row) => {
                            dim = row.len();
                            x.extend_from_slice(row);
                            y.push(r.choices.get(ans).is_some_and(|c| c == "yes"));
                            groups.push(g);
                        }
                    }
                }
                (!y.is_empty()).then(|| Logistic::fit_cv(&x, &y, &groups, dim, &Logistic::L2S, LOGISTIC_FOLDS).0)
            })
            .clone();
        let Some(p) = probe else {
            out.push(Answer::Invalid(format!("no readout items for `{}` under protocol {protocol}", it.question)));
            continue;
        };
        match row {
            JudgeRows::Candidates(c) => {
                let x: Vec<f32> = c.concat();
                let z = p.logits(&x);
                let best = (0..z.len()).max_by(|a, b| z[*a].total_cmp(&z[*b]).then(b.cmp(a))).unwrap_or(0);
                out.push(Answer::Choice(best));
            }
            JudgeRows::Scene(row) => {
                let z = p.logits(row);
                out.push(super::yes_no(it, z.first().is_some_and(|v| *v > 0.0)));
            }
        }
    }
    out
}

/// How [`judge_attentive`] lays out an item's tokens: `[object row | agent, patient |
/// scene | scene flag, relation flag]`, the object row as [`object_row`] lists it.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    dims: (usize, usize),
    pairs: bool,
}

impl Tokens {
    /// Width of one token, for items whose features are `f`.
    fn width(&self, f: &ItemFeatures) -> usize {
        self.row(f) + 2 + f.scene.len() + 2
    }

    /// Width of an object row.
    fn row(&self, f: &ItemFeatures) -> usize {
        self.dims.0 + f.fut.len() * self.dims.1 + if f.raw.is_empty() { 0 } else { OBS_DIM }
    }

    /// Tokens per sample: every slot, the scene, and the relation with `pairs`.
    fn count(&self, f: &ItemFeatures) -> usize {
        f.seen.len() + 1 + usize::from(self.pairs)
    }

    /// One sample's tokens and mask, appended to `x` and `m`: `agent` and `patient` are the
    /// objects the question names (`patient` `None` for a zone or a single object).
    fn push(&self, f: &ItemFeatures, agent: Option<u16>, patient: Option<u16>, x: &mut Vec<f32>, m: &mut Vec<f32>) {
        let (row, width) = (self.row(f), self.width(f));
        for o in 0..f.seen.len() {
            let named = [agent, patient].contains(&Some(o as u16));
            let start = x.len();
            x.extend(object_row(f, Some(o as u16), self.dims));
            x.extend([f32::from(agent == Some(o as u16)), f32::from(patient == Some(o as u16))]);
            x.resize(start + width, 0.0);
            m.push(f32::from(f.seen[o] || named));
        }
        let start = x.len();
        x.resize(start + row + 2, 0.0);
        x.extend_from_slice(&f.scene);
        x.extend([1.0, 0.0]);
        m.push(1.0);
        if self.pairs {
            let (ra, rb) = (object_row(f, agent, self.dims), object_row(f, patient, self.dims));
            let start = x.len();
            match patient {
                Some(_) => x.extend(ra.iter().zip(&rb).map(|(a, b)| (a - b) * (a - b))),
                None => x.resize(start + row, 0.0),
            }
            x.resize(start + width - 1, 0.0);
            x.push(1.0);
            m.push(1.0);
        }
    }

    /// The samples of one item: one, or one per first-to-the-floor candidate (the candidate
    /// as the agent).
    fn samples(&self, it: &Item, f: &ItemFeatures, x: &mut Vec<f32>, m: &mut Vec<f32>) -> usize {
        if it.question == "first_floor" {
            for &o in &it.objects {
                self.push(f, Some(o), None, x, m);
            }
            it.objects.len()
        } else {
            self.push(f, it.objects.first().copied(), it.objects.get(1).copied(), x, m);
            1
        }
    }
}

/// Answer contact and outcome `items` (features `feats`) with attentive probes fit on the
/// `readout` items' tokens under `protocol`: one probe per question (and, for `only` and
/// `all-but-one`, per family), as [`judge`] fits its logistic probes. A yes/no item is
/// `yes` when the probe's probability exceeds ½; a first-to-the-floor item names the
/// candidate with the highest (the first on ties).
fn judge_attentive(
    items: &[Item],
    feats: &[ItemFeatures],
    readout: &[Item],
    fit_feats: &[ItemFeatures],
    protocol: &str,
    tokens: Tokens,
) -> Result<Vec<Answer>> {
    let mut out: Vec<Option<Answer>> = vec![None; items.len()];
    // Items grouped by probe, in the order their keys first appear.
    let mut groups: Vec<((String, String), Vec<usize>)> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let key = probe_key(it, protocol);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    for (key, list) in groups {
        let question = &key.0;
        let (mut x, mut m, mut y, mut n) = (Vec::new(), Vec::new(), Vec::new(), 0);
        let mut shape = None;
        for (r, f) in readout.iter().zip(fit_feats).filter(|(r, _)| fits_probe(r, &key, protocol)) {
            let Some(ans) = r.answer_index() else { continue };
            let k = tokens.samples(r, f, &mut x, &mut m);
            if r.question == "first_floor" {
                y.extend((0..k).map(|j| f32::from(j == ans)));
            } else {
                y.push(f32::from(r.choices.get(ans).is_some_and(|c| c == "yes")));
            }
            n += k;
            shape = Some((tokens.count(f), tokens.width(f)));
        }
        let Some((s, d)) = shape.filter(|_| n >= 2) else {
            for i in list {
                out[i] = Some(Answer::Invalid(format!(
                    "fewer than 2 readout samples for `{question}` under protocol {protocol}"
                )));
            }
            continue;
        };
        let (mut xt, mut mt, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for &i in &list {
            counts.push(tokens.samples(&items[i], &feats[i], &mut xt, &mut mt));
        }
        let total = counts.iter().sum();
        let each: Vec<Vec<f32>> = (0..ATTENTIVE_ENSEMBLE)
            .into_par_iter()
            .map(|k| {
                let cfg = physworld_model::AttentiveConfig { seed: ATTENTIVE.seed + k, ..ATTENTIVE };
                let probe = physworld_model::AttentiveProbe::fit(
                    &x,
                    &m,
                    &y,
                    (n, s, d),
                    1,
                    physworld_model::ProbeTarget::Binary,
                    &cfg,
                )?;
                Ok(probe.predict(&xt, &mt, total)?)
            })
            .collect::<Result<_>>()?;
        let p: Vec<f32> =
            (0..total).map(|j| each.iter().map(|e| e[j]).sum::<f32>() / ATTENTIVE_ENSEMBLE as f32).collect();
        let mut at = 0;
        for (&i, &k) in list.iter().zip(&counts) {
            let q = &p[at..at + k];
            at += k;
            out[i] = Some(if items[i].question == "first_floor" {
                let best = (0..k).max_by(|a, b| q[*a].total_cmp(&q[*b]).then(b.cmp(a))).unwrap_or(0);
                Answer::Choice(best)
            } else {
                super::yes_no(&items[i], q.first().is_some_and(|v| *v > 0.5))
            });
        }
    }
    Ok(out.into_iter().map(|a| a.unwrap_or_else(|| Answer::Invalid("not answered".into()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame from the context on is predicted exactly once, by windows that fit
    /// inside the episode.
    #[test]
    fn surprise_windows_score_every_frame_after_the_context_once() {
        for (frames, c, f) in [(120, 8, 8), (121, 8, 8), (127, 8, 8), (16, 8, 8), (13, 8, 8), (9, 8, 8), (100, 4, 3)] {
            let ws = surprise_windows(frames, c, f);
            let mut scored = Vec::new();
            for w in &ws {
                assert!(w.start + c + w.future <= frames, "{frames} {w:?}");
                assert!(w.skip < w.future, "{frames} {w:?}");
                scored.extend(w.start + c + w.skip..w.start + c + w.future);
            }
            assert_eq!(scored, (c..frames).collect::<Vec<_>>(), "{frames} {c} {f}: {ws:?}");
        }
        assert!(surprise_windows(8, 8, 8).is_empty());
        assert_eq!(surprise_windows(121, 8, 8).last(), Some(&Window { start: 105, future: 8, skip: 7 }));
    }

    /// `pairs=on` appends, feature by feature, the squared difference of the agent's and the
    /// patient's rows (zeros for a zone patient), after the rows `pairs=off` builds.
    #[test]
    fn the_pair_relation_is_the_squared_difference_of_the_two_objects_rows() {
        // Three slots, 2 observed and 1 future feature each.
        let f = ItemFeatures {
            obs: vec![1.0, 2.0, 4.0, -1.0, 0.5, 0.5],
            fut: vec![vec![3.0, 7.0, 9.0]],
            seen: vec![true, true, true],
            raw: Vec::new(),
            positions: vec![[0.0; 3]; 3],
            scene: vec![0.25],
        };
        let mut it = Item {
            id: "contact/test/f/0/0".into(),
            task: TaskKind::Contact,
            family: "f".into(),
            split: "test".into(),
            sample_index: 0,
            episodes: vec![0],
            observe: 12,
            horizons: Vec::new(),
            question: "contact".into(),
            choices: Vec::new(),
            objects: vec![2, 0],
            zone: None,
            violation: None,
            slots: Vec::new(),
            target: Target::Choice(0),
            hash: String::new(),
        };
        let plain = scene_row(&it, &f, (2, 1), false);
        let paired = scene_row(&it, &f, (2, 1), true);
        // Pooled (2 + 1), scene (1), agent (slot 2: 0.5, 0.5, 9) and patient (slot 0: 1, 2, 3).
        let want = [5.5 / 3.0, 1.5 / 3.0, 19.0 / 3.0, 0.25, 0.5, 0.5, 9.0, 1.0, 2.0, 3.0];
        assert_eq!(plain.len(), want.len());
        assert!(plain.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{plain:?}");
        assert_eq!(&paired[..plain.len()], &plain[..]);
        assert_eq!(&paired[plain.len()..], &[0.25, 2.25, 36.0]);
        // A zone patient: the relation is zeros of the same width.
        it.objects = vec![1];
        it.zone = Some(0);
        let zone = scene_row(&it, &f, (2, 1), true);
        assert_eq!(zone.len(), paired.len());
        assert_eq!(&zone[zone.len() - 3..], &[0.0; 3]);
        // Other questions have no pair.
        it.question = "tower_falls".into();
        assert_eq!(scene_row(&it, &f, (2, 1), true), scene_row(&it, &f, (2, 1), false));
    }

    /// Items whose answer lies in one named object's features, among distractor slots: the
    /// attentive probe finds it through the role flags (contact: the agent's first feature
    /// above 0; first-to-the-floor: the candidate with the largest future feature).
    #[test]
    fn the_attentive_probe_reads_the_objects_the_question_names() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f32 / 1000.0 - 1.0
        };
        let slots = 4;
        let mut make = |i: usize, question: &str| {
            let f = ItemFeatures {
                obs: (0..slots * 2).map(|_| noise()).collect(),
                fut: vec![(0..slots).map(|_| noise()).collect()],
                seen: vec![true; slots],
                raw: Vec::new(),
                positions: vec![[0.0; 3]; slots],
                scene: vec![0.5, -0.5],
            };
            let (objects, choices, answer) = if question == "contact" {
                let agent = i % slots;
                let yes = f.obs[agent * 2] > 0.0;
                (vec![agent as u16, ((i + 1) % slots) as u16], vec!["yes".into(), "no".into()], usize::from(!yes))
            } else {
                let objects: Vec<u16> = (0..3).map(|k| ((i + k) % slots) as u16).collect();
                let best =
                    (0..3).max_by(|a, b| f.fut[0][objects[*a] as usize].total_cmp(&f.fut[0][objects[*b] as usize]));
                (objects, vec!["a".into(), "b".into(), "c".into()], best.expect("three"))
            };
            let it = Item {
                id: format!("{question}/{i}"),
                task: TaskKind::Contact,
                family: "f".into(),
                split: "test".into(),
                sample_index: i as u64,
                episodes: vec![i as u64],
                observe: 12,
                horizons: Vec::new(),
                question: question.into(),
                choices,
                objects,
                zone: None,
                violation: None,
                slots: Vec::new(),
                target: Target::Choice(answer),
                hash: String::new(),
            };
            (it, f)
        };
        for (question, pairs) in [("contact", false), ("contact", true), ("first_floor", false)] {
            let (readout, fit): (Vec<Item>, Vec<ItemFeatures>) = (0..240).map(|i| make(i, question)).unzip();
            let (items, feats): (Vec<Item>, Vec<ItemFeatures>) = (240..400).map(|i| make(i, question)).unzip();
            let tokens = Tokens { dims: (2, 1), pairs };
            let answers = judge_attentive(&items, &feats, &readout, &fit, "all", tokens).expect("fits");
            let right = items
                .iter()
                .zip(&answers)
                .filter(|(it, a)| **a == Answer::Choice(it.answer_index().expect("answer")))
                .count();
            assert!(right >= 144, "{question} (pairs {pairs}): {right} of 160");
            // Deterministic (the ensemble's probes fit in parallel): the same answers again.
            assert_eq!(judge_attentive(&items, &feats, &readout, &fit, "all", tokens).expect("fits"), answers);
        }
        // Too few readout samples: every item invalid, named.
        let (items, feats): (Vec<Item>, Vec<ItemFeatures>) = (0..3).map(|i| make(i, "contact")).unzip();
        let answers =
            judge_attentive(&items, &feats, &items[..1], &feats[..1], "all", Tokens { dims: (2, 1), pairs: false })
                .expect("answers");
        assert!(answers.iter().all(|a| matches!(a, Answer::Invalid(w) if w.contains("fewer than 2"))), "{answers:?}");
    }
}
