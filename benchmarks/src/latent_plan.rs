//! Latent planning on `plan-push`: a trained world model imagines the futures of candidate
//! action sequences and the planner executes the first action of the one whose imagined
//! future comes closest to the goal (V-JEPA 2-AC's CEM; EB-JEPA / PLDM's MPPI).
//!
//! At each control step, with the model's context of observed frames
//! ([`PushView::observed`]: the last `data.context` of them; early in an episode the first
//! frame is repeated before them, since the model was trained on full contexts only):
//!
//! - **Goal**: the present frame with the puck moved to the item's goal state
//!   ([`PushView::goal_state`]: at rest in the zone; with `route=around`, while a wall of
//!   the observed scene hides it from the puck, at rest at the next corner of the way
//!   round, [`crate::cost_to_go::Route`]), encoded by the model's target encoder
//!   at the times of the imagined frames ([`WorldModel::targets`]). For a `state-mse`
//!   checkpoint the "representation" is the normalised state itself, so the same search
//!   plans in state space with the same backbone.
//! - **Energy** of a candidate: the mean L1 distance, over the puck's features, between the
//!   imagined and the goal representation, at the last imagined frame (`energy=final`) or
//!   summed over the frames that end each action (`energy=sum`), read in metres: divided by
//!   the distance of the goal's representation with the puck at rest 10 cm off the goal
//!   (the mean over ±x and ±z, measured at every control step) and multiplied by 0.1 m.
//!   Plus an optional control cost, `effort` metres times the mean squared force as a
//!   fraction of the bound (MPPI's quadratic action cost): once the puck is at the goal the
//!   imagined futures of all small forces score alike, and without it the planner may
//!   shove the puck about on the model's noise. In metres, the weight and MPPI's
//!   temperature mean the same for every checkpoint; without the control cost, CEM's
//!   ranking is what it was in raw distance. (`energy=sum` sums both the candidate's and
//!   the unit's distances over the same frames, so it too reads in metres.)
//! - **Imagined future**: `horizon` actions, each held for the task's `hold` frames (the
//!   control rate), then `coast` frames without a force, so the energy judges where the
//!   puck comes to rest (the goal is at rest) rather than where it is mid-push; all cut at
//!   the episode's end and at the rollout length the model was trained on
//!   (`data.future × (1 + loss.rollout_chunks)`: measured, a JEPA's energies past it are
//!   flat noise). A model trained with the rollout loss (`train --rollout-chunks 4`) looks
//!   far enough ahead to plan; one without it sees a single 8-frame chunk.
//! - **Search**: candidates drawn from a diagonal Gaussian clipped to the force bound's disk. All samples of
//!   an iteration are imagined in one batched forward pass ([`WorldModel::imagine`]).
//!   CEM refits the Gaussian to the `elites` lowest energies; MPPI to all samples weighted
//!   by `exp(-(E - E_min) / temperature)`. The mean starts from the previous step's plan
//!   shifted by one action (receding horizon), and is itself a candidate, so a good plan
//!   is never lost.
//!
//! - **Stiction** (`stiction=observed`): the puck's mass and friction are hidden. While
//!   the puck is at rest, forces no stronger than one it was already seen to stay at rest
//!   under (`stalled_force`) go into the model as no force, so the search does not repeat
//!   a push that static friction holds because the model imagines it moving the puck.
//! - **Out of sight** (`unseen=imagine`): with the puck hidden from the camera, the planner
//!   plans from the last frame it was seen at, the model imagining the frames since under
//!   the forces executed since (the bridge), then each candidate's.
//!
//! Knobs (the model spec's options, `jepa,planner=mppi,samples=200:<run>`; see
//! [`PlanOptions`]): defaults in the spirit of V-JEPA 2-AC's CEM (400 samples, 10 elites,
//! 10 iterations) with the oracle's 1-s horizon. Randomness is drawn on the host from a generator seeded
//! by the run's seed and the item, so planning is deterministic for a seed.

use std::sync::Arc;

use candle_core::{D, Device, Tensor};
use physworld_model::{ACTION_DIM, Batch, Normalizer, TrainConfig, WorldModel};
use physworld_pipeline::EpisodeFrames;
use physworld_sim::Simulation;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cost_to_go::obstacle_within;
use crate::error::{BenchError, Result};
use crate::plan::{item_rng, standard_normal};
use crate::plan_push::{GreedyPush, Heading, PuckState, PushPlanner, PushView, Waypoints, clip_disk};

/// The search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Cross-entropy method: refit to the elites.
    Cem,
    /// Model-predictive path integral: refit to every sample, exponentially weighted.
    Mppi,
}

/// Which plan a control step executes the first action of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// The candidate with the lowest energy seen in any iteration.
    #[default]
    Best,
    /// The mean of the search's distribution after its last refit (the elites' mean for
    /// CEM, as V-JEPA 2-AC's planner returns; the energy-weighted mean for MPPI).
    Mean,
}

fn is_best(p: &Pick) -> bool {
    *p == Pick::Best
}

/// What the planner believes of a force applied to the puck at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stiction {
    /// What the model imagines.
    #[default]
    Model,
    /// What the episode has shown: forces no stronger than one the puck was seen to stay
    /// at rest under, away from walls (`stalled_force`), are imagined as no force while
    /// the puck is at rest.
    Observed,
}

fn is_model(s: &Stiction) -> bool {
    *s == Stiction::Model
}

/// Where the energy is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Energy {
    /// At the last imagined frame.
    Final,
    /// Summed over the frames that end each action.
    Sum,
}

/// `plan-launch`: how far each candidate placement is imagined
/// ([`crate::latent_launch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Imagine {
    /// The rollout length the model was trained on (`data.future × (1 + loss.rollout_chunks)`).
    #[default]
    Trained,
    /// To the episode's last frame.
    End,
    /// This many frames (cut at the episode's end).
    Frames(usize),
}

impl Imagine {
    fn is_trained(&self) -> bool {
        *self == Imagine::Trained
    }
}

/// `plan-launch`: how candidate placements are ranked ([`crate::latent_launch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    /// By a logistic classifier of success on the imagined future, fit on the readout
    /// split's recorded launches (Girdhar et al. 2020's forward-prediction agents).
    #[default]
    Success,
    /// By the energy: the target's distance to its representation at rest in the goal
    /// zone (no fitting).
    Goal,
}

impl Rank {
    fn is_success(&self) -> bool {
        *self == Rank::Success
    }
}

impl Serialize for Imagine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Imagine::Trained => s.serialize_str("trained"),
            Imagine::End => s.serialize_str("end"),
            Imagine::Frames(n) => s.serialize_u64(*n as u64),
        }
    }
}

/// The planner's knobs (model spec options).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanOptions {
    /// `planner=cem|mppi`. Default CEM.
    pub method: Method,
    /// `samples=N`: candidate action sequences per iteration (the mean is one); on
    /// `plan-launch`, the placements ranked per item. Default 400.
    pub samples: usize,
    /// `elites=K`: the CEM's refit set. Default 10.
    pub elites: usize,
    /// `iters=I`: refits per control step. Default 10.
    pub iters: usize,
    /// `horizon=H`: actions ahead (each held `hold` frames; cut at the episode's end and at
    /// the model's trained rollout length). Default 5 (1 s at the default control rate, the
    /// oracle's horizon).
    pub horizon: usize,
    /// `coast=FRAMES`: frames imagined after the last action without a force (cut at the
    /// episode's end), so the energy judges where the puck comes to rest rather than where
    /// it is while still sliding, as the oracle's cost does. Default 30 (1 s at 30 fps).
    pub coast: usize,
    /// `energy=final|sum`. Default final.
    pub energy: Energy,
    /// `temperature=T`: MPPI's, in metres. Default 0.08 (0.02 in the raw
    /// representation distance of the first checkpoints measured, whose 10-cm unit was
    /// about 0.025).
    pub temperature: f32,
    /// `std=F`: the initial standard deviation per force component, as a fraction of the
    /// force bound. Default 0.5.
    pub std: f32,
    /// `imagine=trained|end|FRAMES`: `plan-launch`'s imagined frames per placement. Default
    /// trained (recorded only when set).
    #[serde(skip_serializing_if = "Imagine::is_trained")]
    pub imagine: Imagine,
    /// `rank=success|goal`: how `plan-launch` ranks placements. Default success (recorded
    /// only when set).
    #[serde(skip_serializing_if = "Rank::is_success")]
    pub rank: Rank,
    /// `effort=W`: a control cost added to `plan-push`'s energy, `W` metres times the mean
    /// over the candidate's actions of `(|force| / bound)²`, as in MPPI's and iLQR's
    /// quadratic action cost: a force at the bound throughout costs as much as ending `W`
    /// metres further from the goal, so where imagined futures hardly differ (the puck at
    /// rest at the goal) the planner stops pushing rather than acting on noise. Default 0
    /// (recorded only when set).
    #[serde(skip_serializing_if = "is_zero")]
    pub effort: f32,
    /// `route=direct|around`: on `plan-push`, the goal whose representation the energy
    /// reads. `direct`: the item's goal state. `around`: while a wall of the observed
    /// scene hides the goal from the puck, the puck at rest at the next corner of the
    /// shortest way round ([`Heading::Around`]); the model still decides how to push there.
    /// Default direct (recorded only when set).
    #[serde(skip_serializing_if = "is_direct")]
    pub route: Heading,
    /// `deadband=M`: on `plan-push`, apply no force unless the plan found ([`Pick`]) beats
    /// doing nothing (the imagined future with no force, its energy measured at every
    /// control step) by more than `M` metres of energy. Among many candidates whose
    /// imagined futures differ by less than the model's error, one beats doing nothing by
    /// chance; a puck at rest at the goal is then pushed off it. Default 0: off (recorded
    /// only when set). Measured: 0.02 helped on `val` and lowered success on `test`
    /// (BENCHMARKS.md), so it is an ablation, not a fix.
    #[serde(skip_serializing_if = "is_zero")]
    pub deadband: f32,
    /// `pick=best|mean`: on `plan-push`, the plan executed: the lowest-energy candidate
    /// seen (`best`), or the search distribution's mean after its last refit (`mean`:
    /// V-JEPA 2-AC's CEM returns it, and MPPI's update is a weighted mean). One candidate
    /// that beats the others by the model's error alone wins `best`; the mean averages
    /// over the elites. Default best (recorded only when set). Measured: no gain with CEM
    /// (whose elites have narrowed round the best by the last refit), a loss with MPPI
    /// (BENCHMARKS.md), so it is an ablation.
    #[serde(skip_serializing_if = "is_best")]
    pub pick: Pick,
    /// `stiction=model|observed`: on `plan-push`, whether a force the puck has already
    /// been seen to stay at rest under is imagined as the model imagines it (`model`) or as
    /// no force at all (`observed`: while the puck is at rest, each candidate's leading
    /// forces no stronger than the strongest such force, `stalled_force`, go into the
    /// model as zero, so the search sees that they would not move it). The puck's mass and
    /// friction are hidden; a model that misjudges them imagines a small push moving a
    /// puck that static friction holds, and recorded runs show the planner repeating such
    /// pushes control step after control step. Default model (recorded only when set).
    #[serde(skip_serializing_if = "is_model")]
    pub stiction: Stiction,
    /// `unseen=still|imagine`: on `plan-push`, what the planner does while the puck is not
    /// seen (a wall between it and the camera). `still`: no force. `imagine`: it plans from
    /// the last frame the puck was seen at, the model imagining the frames since under the
    /// forces executed since, then each candidate's, as long as that is within the model's
    /// trained rollout; the route's corner is taken from where the puck was last seen. A
    /// puck that comes to rest out of sight is otherwise never pushed again. Default still
    /// (recorded only when set).
    #[serde(skip_serializing_if = "is_still")]
    pub unseen: Unseen,
}

/// What the planner does while the puck is not seen (`unseen=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unseen {
    /// No force.
    #[default]
    Still,
    /// Plan from the last frame it was seen at, through the forces executed since.
    Imagine,
}

fn is_still(u: &Unseen) -> bool {
    *u == Unseen::Still
}

/// The puck's (slot 0's) position and velocity at frame `f` of `obs`.
fn puck_at(obs: &EpisodeFrames, f: usize) -> PuckState {
    let d = f * obs.slots.max(1) * 3;
    PuckState {
        position: [obs.position[d], obs.position[d + 1], obs.position[d + 2]],
        velocity: [obs.linvel[d], obs.linvel[d + 1], obs.linvel[d + 2]],
    }
}

/// The last frame of `obs` whose puck (slot 0) is seen.
fn last_seen(obs: &EpisodeFrames) -> Option<usize> {
    let s = obs.slots.max(1);
    (0..obs.frames).rev().find(|&f| obs.visible[f * s])
}

fn is_direct(h: &Heading) -> bool {
    *h == Heading::Direct
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            method: Method::Cem,
            samples: 400,
            elites: 10,
            iters: 10,
            horizon: 5,
            coast: 30,
            energy: Energy::Final,
            temperature: 0.08,
            std: 0.5,
            imagine: Imagine::Trained,
            rank: Rank::Success,
            effort: 0.0,
            route: Heading::Direct,
            deadband: 0.0,
            pick: Pick::Best,
            stiction: Stiction::Model,
            unseen: Unseen::Still,
        }
    }
}

/// The option keys [`PlanOptions::take`] reads.
pub const PLAN_OPTIONS: &str = "planner=cem|mppi, samples=N, elites=K, iters=I, horizon=H, coast=FRAMES, energy=final|sum, temperature=T, std=F, effort=W, route=direct|around, deadband=M, pick=best|mean, stiction=model|observed, unseen=still|imagine, imagine=trained|end|FRAMES, rank=success|goal";

impl PlanOptions {
    /// Read the planning keys of comma-separated `key=value` `options` (`spec` is the whole
    /// model spec, for errors); returns them and the options left for the readout.
    pub fn take(options: &str, spec: &str) -> Result<(PlanOptions, String)> {
        let mut p = PlanOptions::default();
        let mut rest = Vec::new();
        let bad = |key: &str, value: &str, allowed: &str| {
            BenchError::invalid(
                "model",
                spec,
                format!("`{key}={value}`: {key} must be {allowed}; planning options: {PLAN_OPTIONS}"),
            )
        };
        let count = |key: &str, v: &str, max: usize| -> Result<usize> {
            match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(key, v, &format!("an integer in 1..={max}"))),
            }
        };
        let real = |key: &str, v: &str, max: f32| -> Result<f32> {
            match v.parse::<f32>() {
                Ok(x) if x.is_finite() && x > 0.0 && x <= max => Ok(x),
                _ => Err(bad(key, v, &format!("a number in (0, {max}]"))),
            }
        };
        // A weight or margin in metres: zero turns it off.
        let metres = |key: &str, v: &str| -> Result<f32> {
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite() && (0.0..=1e6).contains(x))
                .ok_or_else(|| bad(key, v, "a number in [0, 1000000]"))
        };
        for opt in options.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("planner", "cem")) => p.method = Method::Cem,
                Some(("planner", "mppi")) => p.method = Method::Mppi,
                Some(("planner", v)) => return Err(bad("planner", v, "cem or mppi")),
                Some(("samples", v)) => p.samples = count("samples", v, 100_000)?,
                Some(("elites", v)) => p.elites = count("elites", v, 100_000)?,
                Some(("iters", v)) => p.iters = count("iters", v, 1000)?,
                Some(("horizon", v)) => p.horizon = count("horizon", v, 100)?,
                Some(("coast", "0")) => p.coast = 0,
                Some(("coast", v)) => p.coast = count("coast", v, 10_000)?,
                Some(("energy", "final")) => p.energy = Energy::Final,
                Some(("energy", "sum")) => p.energy = Energy::Sum,
                Some(("energy", v)) => return Err(bad("energy", v, "final or sum")),
                Some(("temperature", v)) => p.temperature = real("temperature", v, 1e6)?,
                Some(("std", v)) => p.std = real("std", v, 10.0)?,
                Some(("effort", v)) => p.effort = metres("effort", v)?,
                Some(("deadband", v)) => p.deadband = metres("deadband", v)?,
                Some(("route", v)) => p.route = Heading::parse(v).ok_or_else(|| bad("route", v, Heading::ALLOWED))?,
                Some(("pick", "best")) => p.pick = Pick::Best,
                Some(("pick", "mean")) => p.pick = Pick::Mean,
                Some(("pick", v)) => return Err(bad("pick", v, "best or mean")),
                Some(("stiction", "model")) => p.stiction = Stiction::Model,
                Some(("stiction", "observed")) => p.stiction = Stiction::Observed,
                Some(("stiction", v)) => return Err(bad("stiction", v, "model or observed")),
                Some(("unseen", "still")) => p.unseen = Unseen::Still,
                Some(("unseen", "imagine")) => p.unseen = Unseen::Imagine,
                Some(("unseen", v)) => return Err(bad("unseen", v, "still or imagine")),
                Some(("rank", "success")) => p.rank = Rank::Success,
                Some(("rank", "goal")) => p.rank = Rank::Goal,
                Some(("rank", v)) => return Err(bad("rank", v, "success or goal")),
                Some(("imagine", "trained")) => p.imagine = Imagine::Trained,
                Some(("imagine", "end")) => p.imagine = Imagine::End,
                Some(("imagine", v)) => {
                    p.imagine = Imagine::Frames(
                        v.parse::<usize>()
                            .ok()
                            .filter(|n| (1..=100_000).contains(n))
                            .ok_or_else(|| bad("imagine", v, "trained, end or an integer in 1..=100000"))?,
                    )
                }
                _ => rest.push(opt),
            }
        }
        if p.method == Method::Cem && p.elites > p.samples {
            return Err(bad(
                "elites",
                &p.elites.to_string(),
                &format!(
                    "at most samples ({}) (the CEM's refit set on plan-push; set elites=K with a small samples)",
                    p.samples
                ),
            ));
        }
        Ok((p, rest.join(",")))
    }
}

/// A trained checkpoint (JEPA or state-mse) planning `plan-push` in its own predictions.
pub struct LatentPush {
    id: String,
    model: Arc<WorldModel>,
    cfg: TrainConfig,
    norm: Normalizer,
    opts: PlanOptions,
    rng: Option<ChaCha8Rng>,
    plan: Vec<[f32; 2]>,
    waypoints: Waypoints,
}

impl LatentPush {
    /// The planner of `model` (trained with `cfg`, its inputs normalised by `norm`).
    pub fn new(id: &str, model: Arc<WorldModel>, cfg: TrainConfig, norm: Normalizer, opts: PlanOptions) -> Self {
        LatentPush {
            id: id.into(),
            model,
            cfg,
            norm,
            opts,
            rng: None,
            plan: Vec::new(),
            waypoints: Waypoints::default(),
        }
    }

    /// Energies of `cands` (`[N][h]` forces `[fx, fz]`, already inside the bound) at control
    /// step `st`.
    fn energies(&self, st: &ControlStep, cands: &[Vec<[f32; 2]>]) -> Result<Vec<f32>> {
        let ControlStep { ctx, ctx_frames, bridge, goal, goal_valid, hold, steps, at, stalled, .. } = st;
        let (hold, steps) = (*hold, *steps);
        let c = ctx_frames.frames;
        let n = cands.len();
        let mut acts = Vec::with_capacity(n * (c + steps) * ACTION_DIM);
        let s = &self.norm.action_std;
        for cand in cands {
            let held = held_still(cand, *stalled);
            for w in 0..c + steps {
                let f = if w + 1 >= c && w + 1 - c < bridge.len() {
                    // The context's last frame and after, up to the present: what was executed.
                    bridge[w + 1 - c]
                } else if w + 1 >= c {
                    // The present frame and after: the candidate's action
                    // `(w - (c - 1) - bridge) / hold`.
                    let k = (w + 1 - c - bridge.len()) / hold;
                    cand.get(k).filter(|_| k >= held).map_or([0.0; 3], |a| [a[0], 0.0, a[1]])
                } else if ctx_frames.has_action[w] {
                    [ctx_frames.action[w * 3], ctx_frames.action[w * 3 + 1], ctx_frames.action[w * 3 + 2]]
                } else {
                    [0.0; 3]
                };
                acts.extend((0..ACTION_DIM).map(|k| f[k] / s[k]));
            }
        }
        let actions = Tensor::from_vec(acts, (n, c + steps, ACTION_DIM), &Device::Cpu).map_err(model_err)?;
        let future = self
            .model
            .imagine(ctx, &actions, steps, self.cfg.data.context, self.cfg.data.future)
            .map_err(BenchError::from)?; // [N, steps, S, D]
        let e = masked_distance(&future, at, goal, goal_valid)?;
        Ok(e.into_iter()
            .zip(cands)
            .map(|(x, c)| x * st.metres_per_unit + effort_cost(c, st.max, self.opts.effort))
            .collect())
    }

    /// The CEM / MPPI search of control step `st`: the best candidate seen, or with
    /// `pick=mean` the distribution's final mean where it was refitted at least once (its
    /// energy measured only where the deadband needs it, else NaN).
    fn search(&self, rng: &mut ChaCha8Rng, st: &ControlStep) -> Result<Option<(f32, Vec<[f32; 2]>)>> {
        let (h, max) = (st.h, st.max);
        let o = self.opts.clone();
        let mut mean: Vec<[f32; 2]> = (0..h).map(|k| self.plan.get(k + 1).copied().unwrap_or([0.0, 0.0])).collect();
        let mut sd = vec![[o.std * max; 2]; h];
        let mut best: Option<(f32, Vec<[f32; 2]>)> = None;
        let mut refit = false;
        for _ in 0..o.iters {
            let mut cands: Vec<Vec<[f32; 2]>> = Vec::with_capacity(o.samples);
            cands.push(mean.iter().map(|&a| clip_disk(a, max)).collect());
            while cands.len() < o.samples {
                cands.push(
                    (0..h)
                        .map(|k| {
                            let z = [standard_normal(rng), standard_normal(rng)];
                            clip_disk([mean[k][0] + sd[k][0] * z[0], mean[k][1] + sd[k][1] * z[1]], max)
                        })
                        .collect(),
                );
            }
            let e = self.energies(st, &cands)?;
            let mut order: Vec<usize> = (0..cands.len()).filter(|&i| e[i].is_finite()).collect();
            order.sort_by(|&a, &b| e[a].total_cmp(&e[b]).then(a.cmp(&b)));
            let Some(&top) = order.first() else { break };
            if best.as_ref().is_none_or(|(be, _)| e[top] < *be) {
                best = Some((e[top], cands[top].clone()));
            }
            // Refit the Gaussian: to the elites (CEM), or to every sample weighted by its
            // energy (MPPI).
            let weights: Vec<(usize, f32)> = match o.method {
                Method::Cem => order.iter().take(o.elites).map(|&i| (i, 1.0)).collect(),
                Method::Mppi => order.iter().map(|&i| (i, (-(e[i] - e[top]) / o.temperature).exp())).collect(),
            };
            let total: f32 = weights.iter().map(|w| w.1).sum();
            if weights.len() >= 2 && total > 0.0 {
                for k in 0..h {
                    for j in 0..2 {
                        let m = weights.iter().map(|&(i, w)| w * cands[i][k][j]).sum::<f32>() / total;
                        let v = weights.iter().map(|&(i, w)| w * (cands[i][k][j] - m).powi(2)).sum::<f32>() / total;
                        mean[k][j] = m;
                        sd[k][j] = v.sqrt().max(0.02 * max);
                    }
                }
                refit = true;
            }
        }
        // Without a refit (one elite, one sample) the mean is still the warm start: the
        // best candidate it is then.
        if o.pick == Pick::Mean && refit && best.is_some() {
            let plan: Vec<[f32; 2]> = mean.iter().map(|&a| clip_disk(a, max)).collect();
            let e = if o.deadband > 0.0 {
                self.energies(st, std::slice::from_ref(&plan))?.first().copied().unwrap_or(f32::NAN)
            } else {
                f32::NAN
            };
            return Ok(Some((e, plan)));
        }
        Ok(best)
    }
}

/// What one control step plans from.
struct ControlStep {
    /// The observed context (one window).
    ctx: Batch,
    /// Its frames.
    ctx_frames: EpisodeFrames,
    /// The forces executed after the context's last frame, frame by frame (`unseen=imagine`
    /// with the puck not seen now; else none): imagined before each candidate's forces.
    bridge: Vec<[f32; 3]>,
    /// The goal's representation at each imagined frame `[1, steps, S, D]`.
    goal: Tensor,
    /// The goal frame's valid slots `[1, S]`.
    goal_valid: Tensor,
    /// Actions per candidate.
    h: usize,
    /// Frames each action is held.
    hold: usize,
    /// Frames imagined (the bridge's and the candidates').
    steps: usize,
    /// The imagined frames the energy reads ([`read_at`]).
    at: Vec<usize>,
    /// The force bound.
    max: f32,
    /// Metres per unit of representation distance: `CALIBRATION_M` over the distance of the
    /// goal with the puck moved that far.
    metres_per_unit: f32,
    /// With `stiction=observed` and the puck at rest: the strongest force it has been seen
    /// to stay at rest under (`stalled_force`); else 0.
    stalled: f32,
}

/// How many of `cand`'s leading forces are no stronger than `stalled` (none where it is
/// 0): the puck at rest stays at rest under them, as it was seen to.
fn held_still(cand: &[[f32; 2]], stalled: f32) -> usize {
    if stalled <= 0.0 {
        return 0;
    }
    cand.iter().take_while(|a| a[0].hypot(a[1]) <= stalled).count()
}

/// The strongest force the puck of `obs` (slot 0) was seen to stay at rest under: the
/// weakest force of any `hold` consecutive frames of forces over which it stayed visible
/// and at rest (speed under [`GreedyPush::AT_REST`] from the first frame to the one after
/// the last) and `free` of its position at the first (not pressed against a wall); 0 where
/// there is none. Static friction held it, so forces no stronger would not move it either.
fn stalled_force(obs: &EpisodeFrames, hold: usize, free: impl Fn([f32; 3]) -> bool) -> f32 {
    let (s, hold) = (obs.slots.max(1), hold.max(1));
    let at_rest = |f: usize| {
        let v = puck_at(obs, f).velocity;
        obs.visible[f * s] && v[0].hypot(v[2]) < GreedyPush::AT_REST
    };
    let mut most = 0.0f32;
    for f in 0..obs.frames.saturating_sub(hold) {
        if !(f..=f + hold).all(at_rest) || !(f..f + hold).all(|g| obs.has_action[g]) {
            continue;
        }
        if !free(puck_at(obs, f).position) {
            continue;
        }
        let least = (f..f + hold).map(|g| obs.action[g * 3].hypot(obs.action[g * 3 + 2])).fold(f32::INFINITY, f32::min);
        most = most.max(least);
    }
    most
}

/// The puck's displacement from the goal whose representation distance calibrates the
/// energy, m.
const CALIBRATION_M: f32 = 0.1;

/// `stiction=observed` ignores a stall with the puck this close to a wall, m.
const STALL_WALL_GAP: f32 = 0.02;

/// The imagined frames the energy reads: the last (`energy=final`), or the frames that end
/// each of `h` actions held `hold` frames and the last (`energy=sum`).
fn read_at(energy: Energy, h: usize, hold: usize, steps: usize) -> Vec<usize> {
    match energy {
        Energy::Final => vec![steps - 1],
        Energy::Sum => {
            let mut at: Vec<usize> = (0..h).map(|k| ((k + 1) * hold).min(steps) - 1).collect();
            if at.last() != Some(&(steps - 1)) {
                at.push(steps - 1);
            }
            at
        }
    }
}

/// Per row of `pred` (`[N, steps, S, D]`): the mean L1 distance to `goal` (`[1, steps, S,
/// D]`) over the features of the goal's valid slots (`valid`, `[1, S]`), summed over the
/// frames `at`.
fn masked_distance(pred: &Tensor, at: &[usize], goal: &Tensor, valid: &Tensor) -> Result<Vec<f32>> {
    let idx = Tensor::from_vec(at.iter().map(|&i| i as u32).collect::<Vec<_>>(), at.len(), &Device::Cpu)
        .map_err(model_err)?;
    let pred = pred.index_select(&idx, 1).map_err(model_err)?; // [N, K, S, D]
    let goal = goal.index_select(&idx, 1).map_err(model_err)?; // [1, K, S, D]
    let dist = pred.broadcast_sub(&goal).and_then(|d| d.abs()).and_then(|d| d.mean(D::Minus1)).map_err(model_err)?; // [N, K, S]
    let count = valid.sum_all().and_then(|x| x.to_scalar::<f32>()).map_err(model_err)?.max(1.0);
    let e = dist
        .broadcast_mul(valid)
        .and_then(|d| d.sum(D::Minus1))
        .and_then(|d| d.sum(D::Minus1))
        .and_then(|d| d.to_vec1::<f32>())
        .map_err(model_err)?;
    Ok(e.into_iter().map(|x| x / count).collect())
}

/// The control cost of `cand` under force bound `max`: `w` times the mean over its actions
/// of `(|force| / max)²` (`effort=W`).
fn effort_cost(cand: &[[f32; 2]], max: f32, w: f32) -> f32 {
    if w == 0.0 || cand.is_empty() {
        return 0.0;
    }
    let m2 = (max * max).max(f32::MIN_POSITIVE);
    w * cand.iter().map(|a| (a[0] * a[0] + a[1] * a[1]) / m2).sum::<f32>() / cand.len() as f32
}

pub(crate) fn model_err(e: candle_core::Error) -> BenchError {
    BenchError::from(physworld_model::ModelError::from(e))
}

/// The last `context` frames of `obs`; early in an episode, fewer frames exist and the
/// first is held still before them, at rest and without a force (the puck rests on the
/// table until the first push; [`EpisodeFrames::lead_in`], as `train --lead-in` trains
/// on): the model was trained on full contexts only, and its predictions from a shorter
/// one are far off (measured: positions metres away from the table).
pub(crate) fn context_frames(obs: &EpisodeFrames, context: usize) -> EpisodeFrames {
    let context = context.max(1);
    if obs.frames >= context {
        return obs.slice(obs.frames - context, context);
    }
    obs.lead_in(context - obs.frames, context)
}

/// The goal frame: the present frame (its last) with the puck (slot 0) at `goal`, not
/// moving, repeated `steps` times; no actions.
fn goal_frames(present: &EpisodeFrames, goal: &PuckState, steps: usize) -> EpisodeFrames {
    let mut last = present.slice(present.frames - 1, 1);
    last.present[0] = true;
    last.visible[0] = true;
    last.position[..3].copy_from_slice(&goal.position);
    last.linvel[..3].copy_from_slice(&goal.velocity);
    last.angvel[..3].copy_from_slice(&[0.0; 3]);
    last.action = vec![0.0; 3];
    last.has_action = vec![false];
    let mut out = last.clone();
    for _ in 1..steps {
        out.append(&last);
    }
    out
}

impl PushPlanner for LatentPush {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, index: usize, seed: u64) {
        self.rng = Some(item_rng(seed, index, 0x4C_41_54_4E));
        self.plan.clear();
        self.waypoints.reset();
    }
    fn act(&mut self, view: &PushView, _executed: &[[f32; 3]], _: Option<&Simulation<'_>>) -> Result<Option<[f32; 2]>> {
        let obs = &view.observed;
        // Never past what the model was trained to roll out (its first chunk and the
        // rollout loss's chunks): beyond it, predictions drift far from the targets.
        let trained = self.cfg.loss.future_frames(self.cfg.data.future).max(1);
        // The frame the puck was last seen at: the present, or with `unseen=imagine` an
        // earlier one within the trained rollout, the model imagining the frames since.
        let last = match view.puck {
            Some(_) if obs.frames > 0 => Some(obs.frames - 1),
            None if self.opts.unseen == Unseen::Imagine => last_seen(obs).filter(|&f| obs.frames - 1 - f < trained),
            _ => None,
        };
        // Nothing to imagine from.
        let Some(last) = last else {
            self.plan.clear();
            return Ok(Some([0.0, 0.0]));
        };
        let puck = puck_at(obs, last);
        // The forces executed since, imagined before each candidate's.
        let bridge: Vec<[f32; 3]> =
            (last..obs.frames - 1).map(|f| [obs.action[f * 3], obs.action[f * 3 + 1], obs.action[f * 3 + 2]]).collect();
        // The goal, or the corner to round first (`route=around`).
        let target = view.goal_state.position;
        let aim = self.waypoints.toward(self.opts.route, view, target, puck.position);
        let goal_state = if aim == target { view.goal_state } else { PuckState { position: aim, velocity: [0.0; 3] } };
        let (hold, max) = (view.hold.max(1), view.max_force);
        let remaining = view.frames.saturating_sub(1).saturating_sub(view.frame).max(1);
        let room = trained - bridge.len();
        let acting = (self.opts.horizon * hold).min(remaining).min(room);
        let h = acting.div_ceil(hold);
        let ahead = (acting + self.opts.coast).min(remaining).min(room);
        let steps = bridge.len() + ahead;
        let ctx_frames = context_frames(&obs.slice(0, last + 1), self.cfg.data.context);
        let c = ctx_frames.frames;
        let ctx = Batch::new(std::slice::from_ref(&ctx_frames), &self.norm, &Device::Cpu).map_err(BenchError::from)?;
        let goal_batch = Batch::new(&[goal_frames(&ctx_frames, &goal_state, steps)], &self.norm, &Device::Cpu)
            .map_err(BenchError::from)?;
        let goal = self.model.targets(&goal_batch, c).map_err(BenchError::from)?;
        let goal_valid = goal_batch.valid.narrow(1, 0, 1).and_then(|v| v.squeeze(1)).map_err(model_err)?; // [1, S]
        // The energy's unit: the distance from the goal's representation of the puck at rest
        // `CALIBRATION_M` away from the goal, along ±x and ±z.
        let at: Vec<usize> = read_at(self.opts.energy, h, hold, ahead).into_iter().map(|i| i + bridge.len()).collect();
        let shifted: Vec<EpisodeFrames> = [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]
            .iter()
            .map(|d| {
                let mut g = goal_state;
                g.position[0] += d[0] * CALIBRATION_M;
                g.position[2] += d[1] * CALIBRATION_M;
                goal_frames(&ctx_frames, &g, steps)
            })
            .collect();
        let shifted = self
            .model
            .targets(&Batch::new(&shifted, &self.norm, &Device::Cpu).map_err(BenchError::from)?, c)
            .map_err(BenchError::from)?;
        let unit = masked_distance(&shifted, &at, &goal, &goal_valid)?;
        let unit = unit.iter().sum::<f32>() / unit.len().max(1) as f32;
        // A representation blind to a 10-cm move (or a non-finite one): raw distances.
        let metres_per_unit = if unit.is_finite() && unit > 1e-9 { CALIBRATION_M / unit } else { 1.0 };
        // Forces the puck at rest was seen to stay at rest under, away from walls (one
        // pressing it against a wall says nothing of friction).
        let at_rest = puck.velocity[0].hypot(puck.velocity[2]) < GreedyPush::AT_REST;
        let stalled = if self.opts.stiction == Stiction::Observed && at_rest && bridge.is_empty() {
            stalled_force(obs, hold, |p| {
                !obstacle_within(&view.statics, p, view.puck_radius, view.puck_height, STALL_WALL_GAP)
            })
        } else {
            0.0
        };
        let st = ControlStep {
            ctx,
            ctx_frames,
            bridge,
            goal,
            goal_valid,
            h,
            hold,
            steps,
            at,
            max,
            metres_per_unit,
            stalled,
        };

        let Some(mut rng) = self.rng.take() else { return Ok(None) };
        let searched = self.search(&mut rng, &st);
        self.rng = Some(rng);
        let mut best = searched?;
        if self.opts.deadband > 0.0 {
            let still = vec![[0.0, 0.0]; st.h];
            let e_still = self.energies(&st, std::slice::from_ref(&still))?.first().copied().unwrap_or(f32::NAN);
            // A plan whose energy is not finite loses to doing nothing.
            if e_still.is_finite()
                && best.as_ref().is_none_or(|(e, _)| !e.is_finite() || *e > e_still - self.opts.deadband)
            {
                best = Some((e_still, still));
            }
        }
        self.plan = best.map(|(_, p)| p).unwrap_or_default();
        Ok(Some(self.plan.first().copied().unwrap_or([0.0, 0.0])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> EpisodeFrames {
        EpisodeFrames {
            episode_index: 0,
            start: 0,
            frames: n,
            slots: 1,
            present: vec![true; n],
            visible: vec![true; n],
            position: (0..n * 3).map(|i| i as f32).collect(),
            rotation: vec![0.0; n * 4],
            linvel: vec![1.0; n * 3],
            angvel: vec![0.5; n * 3],
            size: vec![0.1; n * 3],
            shape: vec![2; n],
            action: vec![2.0; n * 3],
            has_action: vec![true; n],
            scene: Vec::new(),
        }
    }

    /// A puck at rest through frames 0..=12 under forces of 0.5 N (frames 0..6) and 0.8 N
    /// (6..12), then moving under 1.5 N: the strongest force it stayed at rest under is 0.8
    /// N, hold by hold; a window of frames that mixes the two counts its weaker force; at a
    /// wall nothing counts; a puck never at rest, or forces not yet executed, say nothing.
    #[test]
    fn the_stalled_force_is_the_strongest_the_resting_puck_withstood() {
        let n = 20;
        let mut obs = frames(n);
        obs.position = vec![0.0; n * 3];
        for f in 0..n {
            let (force, speed) = match f {
                0..6 => (0.5, 0.0),
                6..12 => (0.8, 0.0),
                12 => (1.5, 0.01),
                _ => (1.5, 0.3),
            };
            obs.action[f * 3..f * 3 + 3].copy_from_slice(&[force * 0.6, 0.0, force * 0.8]);
            obs.linvel[f * 3..f * 3 + 3].copy_from_slice(&[speed, 0.0, 0.0]);
        }
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(close(stalled_force(&obs, 6, |_| true), 0.8));
        // Holds of 7 frames: each window mixes forces or runs into motion.
        assert!(close(stalled_force(&obs, 7, |_| true), 0.5));
        assert_eq!(stalled_force(&obs, 6, |_| false), 0.0);
        // Before the second hold ends nothing shows that 0.8 N did not move it.
        assert!(close(stalled_force(&obs.slice(0, 12), 6, |_| true), 0.5));
        let mut moving = obs.clone();
        moving.linvel.iter_mut().step_by(3).for_each(|v| *v = 0.3);
        assert_eq!(stalled_force(&moving, 6, |_| true), 0.0);
        let mut unseen = obs.clone();
        unseen.visible = vec![false; n];
        assert_eq!(stalled_force(&unseen, 6, |_| true), 0.0);
        let mut unforced = obs.clone();
        unforced.has_action = vec![false; n];
        assert_eq!(stalled_force(&unforced, 6, |_| true), 0.0);
        // Only the leading forces no stronger than it are imagined as none.
        let cand = [[0.3, 0.4], [0.0, 0.8], [1.0, 0.0], [0.1, 0.0]];
        assert_eq!(held_still(&cand, 0.8), 2);
        assert_eq!(held_still(&cand, 0.4), 0);
        assert_eq!(held_still(&cand, 0.0), 0);
        assert_eq!(held_still(&cand, 2.0), 4);
    }

    #[test]
    fn the_puck_was_last_seen_at_its_last_visible_frame() {
        let mut obs = frames(6);
        assert_eq!(last_seen(&obs), Some(5));
        obs.visible[4..].fill(false);
        assert_eq!(last_seen(&obs), Some(3));
        obs.visible.fill(false);
        assert_eq!(last_seen(&obs), None);
        assert_eq!(last_seen(&frames(0)), None);
    }

    #[test]
    fn options_parse_pass_the_readout_on_and_refuse_bad_values_by_name() {
        let (p, rest) = PlanOptions::take("", "jepa:r").expect("empty");
        assert_eq!((p, rest.as_str()), (PlanOptions::default(), ""));
        let (p, rest) = PlanOptions::take(
            "features=both,planner=mppi,samples=50,iters=3,horizon=2,coast=0,energy=sum,rollout=end",
            "s",
        )
        .expect("options");
        assert_eq!(
            (p.method, p.samples, p.iters, p.horizon, p.coast, p.energy),
            (Method::Mppi, 50, 3, 2, 0, Energy::Sum)
        );
        assert_eq!(rest, "features=both,rollout=end");
        for (bad, says) in [
            ("planner=mcts", "cem or mppi"),
            ("samples=0", "1..=100000"),
            ("samples=x", "1..=100000"),
            ("energy=mean", "final or sum"),
            ("temperature=-1", "(0, 1000000]"),
            ("std=nan", "(0, 10]"),
            ("samples=5", "at most samples (5)"),
            ("imagine=0", "trained, end or an integer"),
            ("imagine=far", "trained, end or an integer"),
            ("rank=best", "success or goal"),
            ("effort=-0.1", "[0, 1000000]"),
            ("route=left", "direct or around"),
            ("deadband=-1", "[0, 1000000]"),
            ("pick=worst", "best or mean"),
            ("stiction=seen", "model or observed"),
            ("unseen=guess", "still or imagine"),
        ] {
            let e = PlanOptions::take(bad, "jepa,...:run").expect_err(bad).to_string();
            assert!(e.contains(bad.split('=').next().expect("key")) && e.contains(says), "{bad}: {e}");
        }
        let (p, _) = PlanOptions::take("imagine=end", "s").expect("end");
        assert_eq!(p.imagine, Imagine::End);
        let (p, _) = PlanOptions::take("imagine=60", "s").expect("frames");
        assert_eq!(p.imagine, Imagine::Frames(60));
        // Recorded only when set: the default's result files keep their bytes.
        assert!(serde_json::to_value(PlanOptions::default()).expect("json").get("imagine").is_none());
        assert_eq!(serde_json::to_value(&p).expect("json")["imagine"], 60);
        // MPPI has no elites to bound.
        assert!(PlanOptions::take("planner=mppi,samples=5", "s").is_ok());
        let (p, _) = PlanOptions::take("effort=0.05", "s").expect("effort");
        assert_eq!(p.effort, 0.05);
        assert_eq!(PlanOptions::take("effort=0", "s").expect("zero").0.effort, 0.0);
        assert_eq!(PlanOptions::take("effort=0.0", "s").expect("zero").0.effort, 0.0);
        assert_eq!(serde_json::to_value(&p).expect("json")["effort"], 0.05f32 as f64);
        assert!(serde_json::to_value(PlanOptions::default()).expect("json").get("effort").is_none());
        let (p, _) = PlanOptions::take("route=around", "s").expect("route");
        assert_eq!(p.route, Heading::Around);
        assert_eq!(serde_json::to_value(&p).expect("json")["route"], "around");
        assert!(serde_json::to_value(PlanOptions::default()).expect("json").get("route").is_none());
        let (p, _) = PlanOptions::take("pick=mean", "s").expect("pick");
        assert_eq!(p.pick, Pick::Mean);
        assert_eq!(serde_json::to_value(&p).expect("json")["pick"], "mean");
        assert!(serde_json::to_value(PlanOptions::default()).expect("json").get("pick").is_none());
    }

    #[test]
    fn the_distance_reads_the_chosen_frames_of_the_goal_s_valid_slots_only() {
        // 2 candidates, 3 frames, 2 slots, 2 features; the goal is all zeros.
        let pred = Tensor::from_vec(
            vec![
                // candidate 0: slot 0 at 1 on every frame; slot 1 far off (invalid).
                1.0f32, 1.0, 9.0, 9.0, 1.0, 1.0, 9.0, 9.0, 1.0, 1.0, 9.0, 9.0, //
                // candidate 1: slot 0 at 2 on the last frame only.
                0.0, 0.0, 9.0, 9.0, 0.0, 0.0, 9.0, 9.0, 2.0, -2.0, 9.0, 9.0,
            ],
            (2, 3, 2, 2),
            &Device::Cpu,
        )
        .expect("pred");
        let goal = Tensor::zeros((1, 3, 2, 2), candle_core::DType::F32, &Device::Cpu).expect("goal");
        let valid = Tensor::from_vec(vec![1.0f32, 0.0], (1, 2), &Device::Cpu).expect("valid");
        assert_eq!(masked_distance(&pred, &[2], &goal, &valid).expect("final"), vec![1.0, 2.0]);
        assert_eq!(masked_distance(&pred, &[0, 2], &goal, &valid).expect("sum"), vec![2.0, 2.0]);
        // Both slots valid: the far slot counts, averaged over the two.
        let both = Tensor::ones((1, 2), candle_core::DType::F32, &Device::Cpu).expect("both");
        assert_eq!(masked_distance(&pred, &[2], &goal, &both).expect("both"), vec![5.0, 5.5]);
        // Where the energy is read: the last frame, or each action's last frame and the last.
        assert_eq!(read_at(Energy::Final, 2, 6, 40), vec![39]);
        assert_eq!(read_at(Energy::Sum, 2, 6, 40), vec![5, 11, 39]);
        assert_eq!(read_at(Energy::Sum, 2, 6, 12), vec![5, 11]);
    }

    #[test]
    fn the_control_cost_grows_with_the_force_and_a_zero_weight_turns_it_off() {
        let full = [[3.0, 4.0], [0.0, 0.0]]; // |f| = 5 (the bound), then none
        assert_eq!(effort_cost(&full, 5.0, 0.0), 0.0);
        assert!((effort_cost(&full, 5.0, 0.1) - 0.05).abs() < 1e-6);
        assert!(effort_cost(&[[1.0, 0.0]], 5.0, 0.1) < effort_cost(&[[2.0, 0.0]], 5.0, 0.1));
        assert_eq!(effort_cost(&[], 5.0, 0.1), 0.0);
    }

    #[test]
    fn short_contexts_repeat_the_first_frame_without_a_force() {
        let obs = frames(3);
        let c = context_frames(&obs, 8);
        assert_eq!(c.frames, 8);
        // Five copies of frame 0 (at rest, no force), then the three observed frames as they are.
        for f in 0..5 {
            assert_eq!(&c.position[f * 3..f * 3 + 3], &obs.position[..3]);
            assert_eq!(&c.linvel[f * 3..f * 3 + 3], &[0.0; 3]);
            assert!(!c.has_action[f] && c.action[f * 3..f * 3 + 3] == [0.0; 3]);
        }
        assert_eq!(&c.linvel[15..], &obs.linvel[..]);
        assert_eq!(&c.position[15..], &obs.position[..]);
        assert_eq!(&c.has_action[5..], &obs.has_action[..]);
        // Long observations keep their last frames.
        let long = frames(12);
        assert_eq!(context_frames(&long, 8).position, long.slice(4, 8).position);
    }

    #[test]
    fn the_goal_frame_is_the_present_one_with_the_puck_at_rest_at_the_goal() {
        let obs = frames(4);
        let goal = crate::plan_push::PuckState { position: [9.0, 8.0, 7.0], velocity: [0.0; 3] };
        let g = goal_frames(&obs, &goal, 3);
        assert_eq!(g.frames, 3);
        for f in 0..3 {
            assert_eq!(&g.position[f * 3..f * 3 + 3], &[9.0, 8.0, 7.0]);
            assert_eq!(&g.linvel[f * 3..f * 3 + 3], &[0.0; 3]);
            assert_eq!(&g.angvel[f * 3..f * 3 + 3], &[0.0; 3]);
            assert_eq!(g.size[f * 3], 0.1);
            assert_eq!(g.shape[f], 2);
        }
    }

    #[test]
    fn forces_are_clipped_to_the_bound_s_disk() {
        assert_eq!(clip_disk([3.0, 4.0], 1.0), [0.6, 0.8]);
        assert_eq!(clip_disk([0.3, 0.4], 1.0), [0.3, 0.4]);
    }
}
