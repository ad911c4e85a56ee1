//! Planning on `launch` (PHYRE-like ball placement), judged by the simulator.
//!
//! An item is one `launch` episode of a dataset split: the task is its scene before the
//! ball is placed ([`physworld_sim::LaunchTask`], rebuilt from the episode's seed), never
//! the recorded placement. A planner proposes a placement; the simulator runs it and shows
//! the planner the outcome (success or not, and where the target came to rest) before the
//! next attempt, up to [`MAX_ATTEMPTS`]. As in PHYRE's evaluator, a placement that overlaps
//! something or leaves the scene is not simulated and is not an attempt; a planner gets at
//! most [`MAX_INVALID`] of those per item, after which its remaining attempts fail. An
//! answer that is not a placement at all (an LLM's unparsable reply) is a failed attempt.
//!
//! Every `launch` episode of the split is an item. Unlike PHYRE's, the tasks are not
//! filtered for solvability: the oracle leaves about one in ten unsolved (BENCHMARKS.md).
//!
//! Scores per item: the attempt that first succeeded and AUCCESS ([`auccess`], PHYRE's
//! area under the success curve over 1..=100 attempts). Planners ([`planner`]):
//! `oracle` (searches with the true simulator: the ceiling), `random` (uniform over the
//! scene) and `greedy` (drops the ball just behind the target, away from the goal); LLMs
//! play an item as a dialogue ([`crate::llm::plan`]) and external programs over the process
//! protocol's `plan` messages ([`crate::adapters::Process`]). In `bench` the task is
//! [`LAUNCH_TASK`], scored by [`score_launch`], and adapters declare the planner they play
//! it with ([`crate::adapters::Adapter::launch_planner`]).

use std::collections::BTreeMap;
use std::time::Instant;

use physworld_pipeline::{Dataset, SceneBox};
use physworld_sim::{Attempt, Episode, LaunchTask, Placement, Shape};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{BenchError, Result};
use crate::results::{ItemLog, TaskResult};
use crate::score::Bootstrap;

/// Task id of planning on `launch` in result files and leaderboards.
pub const LAUNCH_TASK: &str = "plan-launch";
/// Version of `plan-launch`'s items, observation, attempt rules and scoring.
pub const LAUNCH_VERSION: u32 = 2;
/// The metric leaderboards show for `plan-launch`.
pub const LAUNCH_PRIMARY: &str = "auccess";

/// Attempts per item (PHYRE's budget).
pub const MAX_ATTEMPTS: usize = 100;
/// Invalid (unsimulated) placements a planner may propose per item.
pub const MAX_INVALID: usize = 1000;
/// Invalid placements in a row that cost an attempt: the next one after this many is
/// counted as a failed attempt (and the streak starts over), so that a planner that keeps
/// proposing invalid placements (an LLM repeating an overlap) still spends its budget.
pub const MAX_INVALID_STREAK: usize = 10;
/// The scene's extent for placements: `|x| <= X_MAX`, `0 < y <= Y_MAX` (m), as
/// [`physworld_sim::families::validate_placement`] checks them.
pub const X_MAX: f32 = 1.5;
/// See [`X_MAX`].
pub const Y_MAX: f32 = 2.0;

/// AUCCESS (Bakhtin et al. 2019): with weights `w_k = ln(k + 1) - ln(k)` for
/// `k = 1..=max`, `sum_k w_k s_k / sum_k w_k`, where `s_k` is 1 when the item was solved
/// within `k` attempts. `first_success` is the 1-based attempt that first succeeded.
pub fn auccess(first_success: Option<usize>, max: usize) -> f64 {
    let w = |k: usize| ((k + 1) as f64).ln() - (k as f64).ln();
    let total: f64 = (1..=max).map(w).sum();
    match first_success {
        Some(n) if n >= 1 && n <= max => (n..=max).map(w).sum::<f64>() / total,
        _ => 0.0,
    }
}

/// What a planner observes of a task: the static scene, the goal zone, the target's
/// position and radius, and the radii a ball may have. Never a mass, a material or the
/// recorded placement.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchView {
    /// Static bodies (role, pose, extents).
    pub statics: Vec<SceneBox>,
    /// The goal zone (centre and half extents, m).
    pub goal: SceneBox,
    /// The target ball's centre, m.
    pub target: [f32; 3],
    /// The target ball's radius, m.
    pub target_radius: f32,
    /// The radii a placed ball may have, m: `[min, max]`.
    pub radius: [f32; 2],
    /// How long the simulator runs an attempt, s (success is judged at its end).
    pub duration_s: f32,
    /// Frames an attempt's episode records (frame 0 included).
    pub frames: usize,
}

impl LaunchView {
    /// The observation of `task`.
    pub fn of(task: &LaunchTask) -> Result<LaunchView> {
        let target = task
            .scene
            .objects
            .first()
            .ok_or_else(|| BenchError::invalid("launch task", "no target", "a target object"))?;
        let target_radius = match target.shape {
            Shape::Sphere { radius } => radius,
            _ => target.shape.bounding_radius(),
        };
        let goal = task
            .scene
            .zones
            .first()
            .ok_or_else(|| BenchError::invalid("launch task", "no goal zone", "a goal zone"))?;
        Ok(LaunchView {
            statics: task.scene.statics.iter().map(SceneBox::of_static).collect(),
            goal: SceneBox::of_zone(goal),
            target: target.position,
            target_radius,
            radius: [task.radius.min, task.radius.max],
            duration_s: task.scene.sim.duration_s,
            frames: task.scene.sim.num_frames() as usize,
        })
    }
}

/// The role of a [`SceneBox`] by its `kind`: `floor`, `wall`, `ramp`, `container`,
/// `table`, `occluder` or (6) `zone`.
pub fn box_role(kind: u8) -> &'static str {
    ["floor", "wall", "ramp", "container", "table", "occluder", "zone"].get(usize::from(kind)).copied().unwrap_or("box")
}

/// What the planner is shown after a simulated attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// The placement tried.
    pub placement: Placement,
    /// Whether the target ended in the goal zone.
    pub success: bool,
    /// Where the target came to rest (its last observed position), m.
    pub target_final: [f32; 3],
}

/// A planner's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Proposal {
    /// A placement to simulate.
    Place(Placement),
    /// Not a placement (e.g. an unparsable reply): a failed attempt.
    Unusable(String),
}

/// A planner for `launch`. Planners other than the oracle see only the [`LaunchView`]
/// and the outcomes of their own attempts.
pub trait LaunchPlanner: Send {
    /// Model id in results.
    fn id(&self) -> &str;
    /// Start the item of episode `index` (of a run with seed `seed`) with a budget of
    /// `attempts`; `task` is given only to planners that declare
    /// [`LaunchPlanner::uses_simulator`].
    fn begin(&mut self, index: usize, seed: u64, attempts: usize, task: Option<&LaunchTask>);
    /// Whether this planner searches with the true simulator (the oracle).
    fn uses_simulator(&self) -> bool {
        false
    }
    /// The next placement, after `history` (simulated attempts, in order) and `invalid`
    /// (placements refused without simulation, with the reason). An error stops the run
    /// (e.g. an LLM's spent budget); a reply that is merely unusable is
    /// [`Proposal::Unusable`].
    fn propose(&mut self, view: &LaunchView, history: &[Feedback], invalid: &[(Placement, String)])
    -> Result<Proposal>;
    /// Physics steps the planner spent on its own simulations for the current item.
    fn own_steps(&self) -> u64 {
        0
    }
    /// The raw exchange behind the current item's proposals (an LLM's dialogue), logged
    /// with the item. Taken once.
    fn raw_log(&mut self) -> Option<serde_json::Value> {
        None
    }
    /// Fit what the planner learns from a dataset's recorded launches before it plays the
    /// items of its split `scored`: `readout` is the split it may learn from, and a planner
    /// that learns refuses it when it is `scored`. Default: nothing to fit.
    fn fit(&mut self, _ds: &Dataset, _readout: &str, _scored: &str) -> Result<()> {
        Ok(())
    }
}

/// One item played out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchOutcome {
    /// Episode index of the item in the dataset.
    pub episode_index: u64,
    /// Template id of the task.
    pub template: u32,
    /// The 1-based attempt that first succeeded.
    pub first_success: Option<usize>,
    /// AUCCESS of the item.
    pub auccess: f64,
    /// Attempts counted (simulated ones and unusable answers).
    pub attempts: usize,
    /// Placements refused without simulation (not attempts).
    pub invalid: usize,
    /// Unusable answers (counted as failed attempts).
    pub unusable: usize,
    /// Physics steps the simulator took to judge the attempts.
    pub judge_steps: u64,
    /// Physics steps the planner took itself (the oracle's search).
    pub planner_steps: u64,
    /// Wall-clock seconds of the item (planning and judging; not deterministic).
    pub seconds: f64,
    /// The planner's raw exchange (an LLM's dialogue), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

/// Play the task of episode `episode_index` with `planner` (seeded by `seed` and the
/// episode index), at most `max_attempts` attempts.
pub fn play(
    task: &LaunchTask,
    planner: &mut dyn LaunchPlanner,
    ids: (u64, u64),
    max_attempts: usize,
) -> Result<LaunchOutcome> {
    play_recorded(task, planner, ids, max_attempts, &mut |_| {})
}

/// [`play`], handing each simulated attempt's episode to `record`, in order (the family,
/// split and seed fields are placeholders for the caller to fill).
pub fn play_recorded(
    task: &LaunchTask,
    planner: &mut dyn LaunchPlanner,
    (episode_index, seed): (u64, u64),
    max_attempts: usize,
    record: &mut dyn FnMut(Episode),
) -> Result<LaunchOutcome> {
    let start = Instant::now();
    let view = LaunchView::of(task)?;
    let given = if planner.uses_simulator() { Some(task) } else { None };
    planner.begin(episode_index as usize, seed, max_attempts, given);
    let (mut history, mut invalid) = (Vec::new(), Vec::new());
    let (mut attempts, mut unusable, mut judge_steps, mut first_success) = (0usize, 0usize, 0u64, None);
    let mut streak = 0usize;
    while attempts < max_attempts && invalid.len() < MAX_INVALID {
        match planner.propose(&view, &history, &invalid)? {
            Proposal::Unusable(_) => {
                attempts += 1;
                unusable += 1;
                streak = 0;
            }
            Proposal::Place(pl) => match task.attempt(&pl)? {
                Attempt::Invalid(why) => {
                    invalid.push((pl, why));
                    streak += 1;
                    if streak > MAX_INVALID_STREAK {
                        attempts += 1;
                        streak = 0;
                    }
                }
                Attempt::Rejected(_) => {
                    attempts += 1;
                    streak = 0;
                    history.push(Feedback { placement: pl, success: false, target_final: view.target });
                }
                Attempt::Simulated { success, episode } => {
                    attempts += 1;
                    streak = 0;
                    judge_steps += episode.physics_steps;
                    let target_final = episode.labels.final_positions.get(1).copied().unwrap_or(view.target);
                    history.push(Feedback { placement: pl, success, target_final });
                    record(*episode);
                    if success {
                        first_success = Some(attempts);
                        break;
                    }
                }
            },
        }
    }
    Ok(LaunchOutcome {
        episode_index,
        template: task.template,
        first_success,
        auccess: auccess(first_success, max_attempts),
        attempts,
        invalid: invalid.len(),
        unusable,
        judge_steps,
        planner_steps: planner.own_steps(),
        seconds: start.elapsed().as_secs_f64(),
        raw: planner.raw_log(),
    })
}

/// One `plan-launch` item: a `launch` task.
#[derive(Debug, Clone)]
pub struct LaunchItem {
    /// `plan-launch/{split}/launch/{sample}/{episode}`.
    pub id: String,
    /// SHA-256 of the item (its id, episode, template, attempt budget and the task's
    /// version) and the dataset's suite hash: runs under different budgets never share a
    /// leaderboard column.
    pub hash: String,
    /// Episode index in the dataset.
    pub episode_index: u64,
    /// The task (the scene before the ball is placed).
    pub task: LaunchTask,
}

/// The `plan-launch` items of a split, and the `launch` episodes left out (by `--limit`).
#[derive(Debug, Clone, Default)]
pub struct LaunchItems {
    /// Items, in episode order.
    pub items: Vec<LaunchItem>,
    /// Episodes left out, by reason.
    pub dropped: BTreeMap<String, u64>,
}

impl LaunchItems {
    /// SHA-256 over the item hashes.
    pub fn content_hash(&self) -> String {
        crate::tasks::content_hash(self.items.iter().map(|i| i.hash.as_str()))
    }
}

/// The `plan-launch` items of `split` under a budget of `attempts` per item, one per
/// `launch` episode, in episode order; empty for a split without `launch` episodes.
pub fn launch_items(ds: &Dataset, split: &str, attempts: usize) -> Result<LaunchItems> {
    let mut out = LaunchItems::default();
    for m in ds.split(split).filter(|m| m.family == "launch") {
        let (family, _, sim_split) = ds.family_of(split, m.sample_index)?;
        let Some(task) = family.launch_task(m.seed, sim_split)? else { continue };
        let id = format!("{LAUNCH_TASK}/{split}/launch/{}/{}", m.sample_index, m.episode_index);
        let hash = item_hash(ds, &id, &format!("{}\0{}\0{attempts}\0{LAUNCH_VERSION}", m.episode_index, task.template));
        out.items.push(LaunchItem { id, hash, episode_index: m.episode_index, task });
    }
    Ok(out)
}

/// SHA-256 of a planning item: the dataset's suite hash, its id and `fields` (what else
/// defines it: episode, budget or control rate, the task's version).
pub(crate) fn item_hash(ds: &Dataset, id: &str, fields: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"physworld-plan-item-v1\0");
    h.update(ds.info.suite_hash.as_bytes());
    h.update(format!("\0{id}\0{fields}").as_bytes());
    hex::encode(h.finalize())
}

/// The error for a split without episodes of `family`, the planning task's source.
pub(crate) fn no_episodes(split: &str, family: &str) -> BenchError {
    BenchError::invalid(
        "split",
        split,
        format!(
            "a split with `{family}` episodes (generate a suite with the {family} family, e.g. datasets/planning.toml)"
        ),
    )
}

/// [`launch_items`], refusing a split that has none.
pub fn launch_items_required(ds: &Dataset, split: &str, attempts: usize) -> Result<LaunchItems> {
    let items = launch_items(ds, split, attempts)?;
    if items.items.is_empty() {
        return Err(no_episodes(split, "launch"));
    }
    Ok(items)
}

/// The seed of a random planner's spec: `random` and `chance` are seed 0, `chance:SEED`
/// its seed; `None` for other specs.
pub(crate) fn random_seed(spec: &str) -> Result<Option<u64>> {
    match spec {
        "random" | "chance" => Ok(Some(0)),
        other => match other.strip_prefix("chance:") {
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| BenchError::invalid("planner", other, "chance:SEED with an integer SEED")),
            None => Ok(None),
        },
    }
}

/// The error for an unknown planner `spec` among `names`.
pub(crate) fn unknown_planner(spec: &str, names: [&str; 3]) -> BenchError {
    BenchError::invalid(
        "planner",
        spec,
        format!("{}{}", names.join(", "), physworld_sim::suggest::did_you_mean(spec, names)),
    )
}

/// The planners by spec.
pub const PLANNERS: [&str; 3] = ["oracle", "random", "greedy"];

/// The planner `spec` (see [`PLANNERS`]); `chance[:SEED]`, the random planner as `bench`
/// names it, is accepted too.
pub fn planner(spec: &str) -> Result<Box<dyn LaunchPlanner>> {
    if let Some(seed) = random_seed(spec)? {
        return Ok(Box::new(RandomPlanner::new(seed)));
    }
    Ok(match spec {
        "oracle" => Box::new(Oracle::default()),
        "greedy" => Box::new(Greedy::default()),
        other => return Err(unknown_planner(other, PLANNERS)),
    })
}

/// A seeded generator per item and planner.
pub(crate) fn item_rng(seed: u64, index: usize, salt: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt)
}

/// A standard normal draw from two uniforms (Box-Muller).
pub(crate) fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(1e-6..1.0), rng.random_range(0.0..1.0));
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

pub(crate) fn uniform_radius(rng: &mut ChaCha8Rng, r: [f32; 2]) -> f32 {
    if r[1] > r[0] { rng.random_range(r[0]..=r[1]) } else { r[0] }
}

/// Uniform placements over the whole scene and radius range.
pub struct RandomPlanner {
    rng: ChaCha8Rng,
    seed: u64,
}

impl RandomPlanner {
    /// A random planner whose draws also depend on `seed` (0: the `random` planner; `chance:SEED`
    /// in `bench` passes its seed).
    pub fn new(seed: u64) -> Self {
        RandomPlanner { rng: ChaCha8Rng::seed_from_u64(0), seed }
    }
}

impl LaunchPlanner for RandomPlanner {
    fn id(&self) -> &str {
        "random"
    }
    fn begin(&mut self, index: usize, seed: u64, _attempts: usize, _task: Option<&LaunchTask>) {
        self.rng = item_rng(seed, index, 0x52_41_4E_44 ^ self.seed.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    }
    fn propose(&mut self, view: &LaunchView, _: &[Feedback], _: &[(Placement, String)]) -> Result<Proposal> {
        let radius = uniform_radius(&mut self.rng, view.radius);
        let x = self.rng.random_range(-X_MAX..=X_MAX);
        let y = self.rng.random_range(radius..=Y_MAX);
        Ok(Proposal::Place(Placement { x, y, radius }))
    }
}

/// Drop the largest ball just behind the target (on the side away from the goal), sweeping
/// the offset and the drop height over its attempts; no learning from outcomes.
#[derive(Default)]
pub struct Greedy {
    tried: usize,
}

impl LaunchPlanner for Greedy {
    fn id(&self) -> &str {
        "greedy"
    }
    fn begin(&mut self, _index: usize, _seed: u64, _attempts: usize, _task: Option<&LaunchTask>) {
        self.tried = 0;
    }
    fn propose(&mut self, view: &LaunchView, _: &[Feedback], _: &[(Placement, String)]) -> Result<Proposal> {
        const OFFSETS: [f32; 8] = [0.5, 0.7, 0.3, 0.9, 0.1, 1.1, 0.6, 0.4];
        const HEIGHTS: [f32; 4] = [0.1, 0.3, 0.5, 0.2];
        let k = self.tried;
        self.tried += 1;
        let radius = view.radius[1];
        let away = if view.goal.position[0] >= view.target[0] { -1.0 } else { 1.0 };
        let dx = OFFSETS[k % OFFSETS.len()] * (view.target_radius + radius);
        let h = HEIGHTS[(k / OFFSETS.len()) % HEIGHTS.len()];
        Ok(Proposal::Place(Placement {
            x: view.target[0] + away * dx,
            y: view.target[1] + view.target_radius + radius + h,
            radius,
        }))
    }
}

/// The ceiling: for each attempt it searches with the true simulator (the cross-entropy
/// method over `(x, y, radius)`, starting around the target) and proposes the best
/// placement it found that it has not tried: the first that succeeds in its own
/// simulation, else the one that left the target closest to the goal. Its own
/// simulations are capped per item ([`Oracle::BUDGET`]); past the cap it proposes the
/// best untried candidates it has already simulated.
#[derive(Default)]
pub struct Oracle {
    task: Option<LaunchTask>,
    rng: Option<ChaCha8Rng>,
    steps: u64,
    sims: usize,
    pool: Vec<(f32, Placement)>,
}

impl Oracle {
    /// Candidates per iteration, iterations, elites.
    const SAMPLES: usize = 24;
    const ITERS: usize = 4;
    const ELITES: usize = 6;
    /// Own simulations per item (ten attempts' worth of search).
    pub const BUDGET: usize = 10 * Self::SAMPLES * Self::ITERS;
}

impl LaunchPlanner for Oracle {
    fn id(&self) -> &str {
        "oracle"
    }
    fn uses_simulator(&self) -> bool {
        true
    }
    fn begin(&mut self, index: usize, seed: u64, _attempts: usize, task: Option<&LaunchTask>) {
        self.task = task.cloned();
        self.rng = Some(item_rng(seed, index, 0x4F_52_41_43));
        self.steps = 0;
        self.sims = 0;
        self.pool.clear();
    }
    fn own_steps(&self) -> u64 {
        self.steps
    }
    fn propose(
        &mut self,
        view: &LaunchView,
        history: &[Feedback],
        invalid: &[(Placement, String)],
    ) -> Result<Proposal> {
        Ok(self.search(view, history, invalid))
    }
}

impl Oracle {
    fn search(&mut self, view: &LaunchView, history: &[Feedback], invalid: &[(Placement, String)]) -> Proposal {
        let (Some(task), Some(rng)) = (self.task.as_ref(), self.rng.as_mut()) else {
            return Proposal::Unusable("the oracle was not given the task".into());
        };
        let tried =
            |p: &Placement| history.iter().map(|f| f.placement).chain(invalid.iter().map(|(p, _)| *p)).any(|q| q == *p);
        let goal_x = view.goal.position[0];
        if self.sims >= Self::BUDGET {
            // Search spent: the best simulated candidates not yet tried, in order.
            self.pool.retain(|(_, p)| !tried(p));
            return match self.pool.first() {
                Some(&(_, p)) => {
                    self.pool.remove(0);
                    Proposal::Place(p)
                }
                None => Proposal::Unusable("the oracle's search budget is spent".into()),
            };
        }
        // Mean and spread of (x, y, radius), starting around the target.
        let mut mean = [view.target[0], view.target[1] + view.target_radius + 0.3, view.radius[1]];
        let mut sd = [0.4f32, 0.3, (view.radius[1] - view.radius[0]).max(1e-3) * 0.5];
        let mut best: Option<(f32, Placement)> = None;
        for _ in 0..Self::ITERS {
            let mut scored = Vec::with_capacity(Self::SAMPLES);
            for _ in 0..Self::SAMPLES {
                let z = standard_normal;
                let radius = (mean[2] + sd[2] * z(rng)).clamp(view.radius[0], view.radius[1]);
                let pl = Placement {
                    x: (mean[0] + sd[0] * z(rng)).clamp(-X_MAX, X_MAX),
                    y: (mean[1] + sd[1] * z(rng)).clamp(radius, Y_MAX),
                    radius,
                };
                if tried(&pl) {
                    continue;
                }
                let Ok(Attempt::Simulated { success, episode }) = task.attempt(&pl) else { continue };
                self.sims += 1;
                self.steps += episode.physics_steps;
                if success {
                    return Proposal::Place(pl);
                }
                let end = episode.labels.final_positions.get(1).copied().unwrap_or(view.target);
                let cost = (end[0] - goal_x).abs() + (end[1] - view.goal.position[1]).abs();
                scored.push((cost, pl));
            }
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            self.pool.extend(scored.iter().copied());
            self.pool.sort_by(|a, b| a.0.total_cmp(&b.0));
            if let Some(&(c, p)) = scored.first()
                && best.is_none_or(|(bc, _)| c < bc)
            {
                best = Some((c, p));
            }
            let elites = &scored[..scored.len().min(Self::ELITES)];
            if elites.len() >= 2 {
                let n = elites.len() as f32;
                let m = [
                    elites.iter().map(|(_, p)| p.x).sum::<f32>() / n,
                    elites.iter().map(|(_, p)| p.y).sum::<f32>() / n,
                    elites.iter().map(|(_, p)| p.radius).sum::<f32>() / n,
                ];
                let v = |i: usize, f: &dyn Fn(&Placement) -> f32| {
                    (elites.iter().map(|(_, p)| (f(p) - m[i]).powi(2)).sum::<f32>() / n).sqrt()
                };
                sd = [v(0, &|p| p.x).max(0.02), v(1, &|p| p.y).max(0.02), v(2, &|p| p.radius).max(1e-3)];
                mean = m;
            }
        }
        match best {
            Some((_, p)) => Proposal::Place(p),
            // Nothing valid was found: propose a valid-looking fallback above the target.
            None => Proposal::Place(Placement {
                x: view.target[0],
                y: (view.target[1] + view.target_radius + view.radius[1] + 0.5).min(Y_MAX),
                radius: view.radius[0],
            }),
        }
    }
}

/// A run of one planner over the `launch` items of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchRun {
    /// Planner id.
    pub planner: String,
    /// Split.
    pub split: String,
    /// Seed of the planners' randomness and of the confidence intervals.
    pub seed: u64,
    /// Attempt budget per item.
    pub max_attempts: usize,
    /// Mean AUCCESS.
    pub auccess: f64,
    /// 95% bootstrap interval of the mean AUCCESS.
    pub auccess_ci: [f64; 2],
    /// Share of items solved at the first attempt.
    pub success_at_1: f64,
    /// Share solved within 10 attempts.
    pub success_at_10: f64,
    /// Share solved within the budget.
    pub success: f64,
    /// Per item.
    pub items: Vec<LaunchOutcome>,
}

/// Play every item with `planner`, in order. Each item's randomness depends only on `seed`
/// and its episode index, so an item scores the same alone (`plan --item`) as in a whole
/// run. `tick` is called after each item with its outcome and every simulated attempt's
/// episode (see [`play_recorded`]).
pub fn run_launch(
    items: &[LaunchItem],
    planner: &mut dyn LaunchPlanner,
    split: &str,
    seed: u64,
    max_attempts: usize,
    resamples: u32,
    tick: &mut dyn FnMut(&LaunchOutcome, Vec<Episode>),
) -> Result<LaunchRun> {
    if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
        return Err(BenchError::invalid("max_attempts", max_attempts, format!("1..={MAX_ATTEMPTS}")));
    }
    let mut outcomes = Vec::with_capacity(items.len());
    for it in items {
        let mut episodes = Vec::new();
        let o = play_recorded(&it.task, planner, (it.episode_index, seed), max_attempts, &mut |e| episodes.push(e))?;
        tick(&o, episodes);
        outcomes.push(o);
    }
    Ok(LaunchRun::new(planner.id(), split, seed, max_attempts, resamples, outcomes))
}

impl LaunchRun {
    /// The run of `planner` made of `outcomes` (one per item, in order), with its summary
    /// figures and the AUCCESS interval under `seed` and `resamples`.
    pub fn new(
        planner: &str,
        split: &str,
        seed: u64,
        max_attempts: usize,
        resamples: u32,
        outcomes: Vec<LaunchOutcome>,
    ) -> LaunchRun {
        let au: Vec<f64> = outcomes.iter().map(|o| o.auccess).collect();
        let share = |k: usize| {
            outcomes.iter().filter(|o| o.first_success.is_some_and(|n| n <= k)).count() as f64
                / outcomes.len().max(1) as f64
        };
        LaunchRun {
            planner: planner.to_string(),
            split: split.to_string(),
            seed,
            max_attempts,
            auccess: crate::metrics::mean(&au),
            auccess_ci: crate::metrics::bootstrap_mean(&au, seed, resamples),
            success_at_1: share(1),
            success_at_10: share(10),
            success: share(max_attempts),
            items: outcomes,
        }
    }
}

/// Score a run of `plan-launch` over `items` (as [`run_launch`] played them, in order) into
/// the task's result and per-item log: per group (`all`, `template=N`) AUCCESS (primary),
/// the share solved within the budget, at the first attempt and within 10 attempts, each
/// with its bootstrap interval; over all items the mean attempts, invalid placements and
/// the planner's own physics steps per attempt. An item with an unusable answer is counted
/// invalid (its attempt failed; the item is still scored).
pub fn score_launch(items: &[LaunchItem], run: &LaunchRun, b: Bootstrap) -> (TaskResult, Vec<ItemLog>) {
    let solved_within = |o: &LaunchOutcome, k: usize| o.first_success.is_some_and(|n| n <= k) as u8 as f64;
    let mut groups: BTreeMap<String, Vec<&LaunchOutcome>> = BTreeMap::new();
    for o in &run.items {
        groups.entry("all".into()).or_default().push(o);
        groups.entry(format!("template={}", o.template)).or_default().push(o);
    }
    let mut metrics = Vec::new();
    for (group, os) in &groups {
        let invalid = os.iter().filter(|o| o.unusable > 0).count() as u64;
        let series: [(&str, Vec<f64>); 4] = [
            (LAUNCH_PRIMARY, os.iter().map(|o| o.auccess).collect()),
            ("success", os.iter().map(|o| solved_within(o, run.max_attempts)).collect()),
            ("success_at_1", os.iter().map(|o| solved_within(o, 1)).collect()),
            ("success_at_10", os.iter().map(|o| solved_within(o, 10)).collect()),
        ];
        for (name, v) in series {
            metrics.extend(crate::score::metric(name, group, &v, invalid, true, None, Some(1.0), b));
        }
        if group == "all" {
            let per_attempt = |o: &&LaunchOutcome| o.planner_steps as f64 / o.attempts.max(1) as f64;
            let costs: [(&str, Vec<f64>); 3] = [
                ("attempts", os.iter().map(|o| o.attempts as f64).collect()),
                ("invalid_placements", os.iter().map(|o| o.invalid as f64).collect()),
                ("planner_steps_per_attempt", os.iter().map(per_attempt).collect()),
            ];
            for (name, v) in costs {
                metrics.extend(crate::score::metric(name, group, &v, invalid, false, None, None, b));
            }
        }
    }
    let logs = items
        .iter()
        .zip(&run.items)
        .map(|(it, o)| ItemLog {
            task: LAUNCH_TASK.into(),
            item: it.id.clone(),
            hash: it.hash.clone(),
            family: "launch".into(),
            prediction: serde_json::json!({
                "first_success": o.first_success,
                "attempts": o.attempts,
                "invalid_placements": o.invalid,
                "unusable": o.unusable,
                "judge_steps": o.judge_steps,
                "planner_steps": o.planner_steps,
            }),
            target: serde_json::json!({ "template": o.template, "goal": "the target ball in the goal zone at the end" }),
            correct: Some(o.first_success.is_some()),
            score: o.auccess,
            invalid: o.unusable > 0,
            presentation: None,
            raw: o.raw.clone(),
        })
        .collect();
    let result = TaskResult {
        id: LAUNCH_TASK.into(),
        version: LAUNCH_VERSION,
        kind: "plan".into(),
        primary: LAUNCH_PRIMARY.into(),
        content_hash: crate::tasks::content_hash(items.iter().map(|i| i.hash.as_str())),
        n_items: items.len() as u64,
        invalid: run.items.iter().filter(|o| o.unusable > 0).count() as u64,
        metrics,
    };
    (result, logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A planner that always answers `answer`.
    struct Fixed(Proposal);

    impl LaunchPlanner for Fixed {
        fn id(&self) -> &str {
            "fixed"
        }
        fn begin(&mut self, _: usize, _: u64, _: usize, _: Option<&LaunchTask>) {}
        fn propose(&mut self, _: &LaunchView, _: &[Feedback], _: &[(Placement, String)]) -> Result<Proposal> {
            Ok(self.0.clone())
        }
    }

    fn task() -> LaunchTask {
        let family = physworld_sim::Family::by_name("launch").expect("family");
        family.launch_task(3, physworld_sim::Split::Test).expect("task").expect("a launch task")
    }

    /// Unusable answers are failed attempts; invalid placements are free, but every
    /// (MAX_INVALID_STREAK + 1)th in a row costs an attempt, so no planner loops forever.
    #[test]
    fn unusable_answers_cost_attempts_and_endless_invalid_placements_run_out() {
        let t = task();
        let mut junk = Fixed(Proposal::Unusable("no".into()));
        let o = play(&t, &mut junk, (0, 0), 5).expect("plays");
        assert_eq!((o.attempts, o.unusable, o.invalid, o.first_success, o.judge_steps), (5, 5, 0, None, 0));
        // Below the floor: refused without simulation, never an attempt of its own.
        let mut sunk = Fixed(Proposal::Place(Placement { x: 0.0, y: -1.0, radius: t.radius.max }));
        let o = play(&t, &mut sunk, (0, 0), 3).expect("plays");
        assert_eq!(o.attempts, 3);
        assert_eq!(o.invalid, 3 * (MAX_INVALID_STREAK + 1));
        assert_eq!((o.unusable, o.judge_steps, o.auccess), (0, 0, 0.0));
    }

    /// AUCCESS by hand: weights ln(k+1) - ln(k) telescope, so solving at attempt n scores
    /// (ln 101 - ln n) / ln 101 over 100 attempts.
    #[test]
    fn auccess_matches_its_closed_form() {
        let total = 101f64.ln();
        assert!((auccess(Some(1), 100) - 1.0).abs() < 1e-12);
        assert!((auccess(Some(2), 100) - (total - 2f64.ln()) / total).abs() < 1e-12);
        assert!((auccess(Some(10), 100) - (total - 10f64.ln()) / total).abs() < 1e-12);
        assert!((auccess(Some(100), 100) - (total - 100f64.ln()) / total).abs() < 1e-12);
        assert_eq!(auccess(None, 100), 0.0);
        assert_eq!(auccess(Some(101), 100), 0.0);
        assert_eq!(auccess(Some(0), 100), 0.0);
        // Solving sooner never scores less.
        assert!((1..100).all(|n| auccess(Some(n), 100) > auccess(Some(n + 1), 100)));
    }
}
