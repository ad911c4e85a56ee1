//! Closed-loop planning on `push`, judged by the simulator.
//!
//! An item is one `push` episode of a dataset split: the task is its scene (table, goal
//! zone, puck, camera) rebuilt from the episode's seed without the scripted expert's
//! forces ([`physworld_sim::PushTask`]). A planner chooses the horizontal force on the puck
//! at a control rate: each action is held for `hold` frames ([`DEFAULT_HOLD`]: 0.2 s at
//! 30 fps), and after each the planner observes the new state and chooses again, until the
//! episode ends. Success is the family's `goal_reached` label (the puck at rest in the goal
//! zone at the last frame, [`PushTask::reached`]), one definition everywhere.
//!
//! The environment is one [`Simulation`] advanced frame by frame under the chosen forces:
//! the episode it records is the one [`PushTask::run`] gives for the same forces.
//!
//! A planner observes ([`PushView`]) the static scene, the goal zone, the puck's radius,
//! position and velocity (when visible), the force bound, the frame, the episode's length
//! and the control rate; never its mass or friction. Planners ([`push_planner`]): `oracle`
//! (receding-horizon CEM over the next second of actions with forks of the true simulation:
//! the ceiling), `random` (uniform forces in the bound's disk) and `greedy` (a saturated PD
//! controller toward the goal's centre).
//!
//! For planners that need a goal state rather than a zone (latent planners compare
//! representations), each item carries one ([`PushItem::goal_state`], in
//! [`PushView::goal_state`] and the `process:` protocol), derived from a successful
//! reference run: where the `greedy` controller's run on the task (at the item's control
//! rate) leaves the puck, when that run succeeds with the puck's centre inside the zone;
//! otherwise the zone's centre at the puck's starting height. Either way at rest.
//!
//! Scores per item: success, the puck's final distance to the goal zone's centre,
//! and the planner's own physics steps per action. In `bench` the task is [`PUSH_TASK`],
//! scored by [`score_push`].

use std::collections::BTreeMap;
use std::time::Instant;

use physworld_pipeline::{Dataset, EpisodeFrames, SceneBox};
use physworld_sim::{Episode, Frame, PushTask, Shape, Simulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cost_to_go::{CostToGo, Route};
use crate::plan::item_rng;

use crate::error::{BenchError, Result};
use crate::results::{ItemLog, TaskResult};
use crate::score::Bootstrap;

/// Task id of closed-loop planning on `push` in result files and leaderboards.
pub const PUSH_TASK: &str = "plan-push";
/// Version of `plan-push`'s items, observation, control rule and scoring.
pub const PUSH_VERSION: u32 = 2;
/// The metric leaderboards show for `plan-push`.
pub const PUSH_PRIMARY: &str = "success";
/// Frames each action is held by default (0.2 s at 30 fps).
pub const DEFAULT_HOLD: usize = 6;
/// Most frames an action may be held.
pub const MAX_HOLD: usize = 60;
/// How far ahead the oracle plans, s.
pub const HORIZON_S: f32 = 1.0;

/// The puck as observed at one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PuckState {
    /// Centre, m.
    pub position: [f32; 3],
    /// Linear velocity, m/s.
    pub velocity: [f32; 3],
}

/// What a planner observes at a control step.
#[derive(Debug, Clone, PartialEq)]
pub struct PushView {
    /// Static bodies (floor, table).
    pub statics: Vec<SceneBox>,
    /// The goal zone.
    pub goal: SceneBox,
    /// A goal state inside the zone (see [`PushItem::goal_state`]).
    pub goal_state: PuckState,
    /// The puck's radius, m.
    pub puck_radius: f32,
    /// The puck's height, m.
    pub puck_height: f32,
    /// The puck now, if visible.
    pub puck: Option<PuckState>,
    /// Bound on the force's magnitude, N.
    pub max_force: f32,
    /// The current frame.
    pub frame: usize,
    /// Frames in the episode.
    pub frames: usize,
    /// Frames per second.
    pub fps: u32,
    /// Frames the chosen action is held.
    pub hold: usize,
    /// Every frame so far (`0..=frame`) as models observe frames elsewhere
    /// ([`crate::observe`]: objects not visible are blanked), the forces executed so far as
    /// its actions (none at the present frame) and the static scene: the input of a world
    /// model's rollout. The puck's rotation, spin and size are in it.
    pub observed: EpisodeFrames,
}

/// A planner for `push`: one horizontal force `[fx, fz]` per control step.
pub trait PushPlanner: Send {
    /// Model id in results.
    fn id(&self) -> &str;
    /// Start the item of episode `index` (of a run with seed `seed`).
    fn begin(&mut self, index: usize, seed: u64);
    /// Whether this planner searches with the true simulator (the oracle).
    fn uses_simulator(&self) -> bool {
        false
    }
    /// The force `[fx, fz]` to hold next, after the frame-by-frame forces executed so far
    /// (`executed[f]` acts between frames `f` and `f + 1`); `None` for an unusable answer
    /// (no force is applied, and it is counted). An error stops the run. `sim`, the true
    /// simulation at the present frame (to fork, not to advance), is given only to planners
    /// that declare [`PushPlanner::uses_simulator`].
    fn act(&mut self, view: &PushView, executed: &[[f32; 3]], sim: Option<&Simulation<'_>>)
    -> Result<Option<[f32; 2]>>;
    /// Physics steps the planner spent on its own simulations for the current item.
    fn own_steps(&self) -> u64 {
        0
    }
    /// The raw exchange behind the current item's actions (an LLM's dialogue), logged with
    /// the item. Taken once.
    fn raw_log(&mut self) -> Option<serde_json::Value> {
        None
    }
}

/// One item played out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// Episode index of the item in the dataset.
    pub episode_index: u64,
    /// Whether the puck ended at rest in the goal zone.
    pub success: bool,
    /// The puck's final distance to the goal zone's centre, m.
    pub final_distance: f64,
    /// Actions chosen (control steps).
    pub actions: usize,
    /// Unusable answers (no force applied).
    pub unusable: usize,
    /// Physics steps of the executed episode.
    pub judge_steps: u64,
    /// Physics steps the planner took itself (the oracle's search).
    pub planner_steps: u64,
    /// Wall-clock seconds the planner spent choosing actions (not deterministic).
    pub planning_seconds: f64,
    /// Wall-clock seconds of the item (not deterministic).
    pub seconds: f64,
    /// The planner's raw exchange (an LLM's dialogue), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
    /// Why the physics rejected the executed episode (the puck driven off the table into
    /// the floor faster than its health bounds allow), which ends the item as a failure;
    /// such an episode is not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physics_rejected: Option<String>,
}

/// `frames` as observed ([`PushView::observed`]), `executed[f]` acting between frames `f`
/// and `f + 1`.
pub fn observed_frames(task: &PushTask, frames: &[Frame], executed: &[[f32; 3]]) -> EpisodeFrames {
    let (t, s) = (frames.len(), task.scene.objects.len().max(1));
    let mut out = EpisodeFrames {
        action: Vec::with_capacity(t * 3),
        has_action: Vec::with_capacity(t),
        scene: task
            .scene
            .statics
            .iter()
            .map(SceneBox::of_static)
            .chain(task.scene.zones.iter().map(SceneBox::of_zone))
            .collect(),
        ..crate::observe::blank(t, s)
    };
    for (f, frame) in frames.iter().enumerate() {
        for (k, o) in frame.objects.iter().take(s).enumerate() {
            if !(o.present && o.visible) {
                continue;
            }
            let d = f * s + k;
            out.present[d] = true;
            out.visible[d] = true;
            out.shape[d] = o.shape as i8;
            out.position[d * 3..d * 3 + 3].copy_from_slice(&o.position);
            out.rotation[d * 4..d * 4 + 4].copy_from_slice(&o.rotation);
            out.linvel[d * 3..d * 3 + 3].copy_from_slice(&o.linvel);
            out.angvel[d * 3..d * 3 + 3].copy_from_slice(&o.angvel);
            out.size[d * 3..d * 3 + 3].copy_from_slice(&o.size);
        }
        match executed.get(f) {
            Some(a) => {
                out.action.extend_from_slice(a);
                out.has_action.push(true);
            }
            None => {
                out.action.extend_from_slice(&[0.0; 3]);
                out.has_action.push(false);
            }
        }
    }
    out
}

/// The observation at the last of `frames`, after the forces `executed`.
fn view_at(
    task: &PushTask,
    frames: &[Frame],
    executed: &[[f32; 3]],
    hold: usize,
    goal_state: PuckState,
) -> Result<PushView> {
    let frame = frames.len().saturating_sub(1);
    let goal =
        task.scene.zones.first().ok_or_else(|| BenchError::invalid("push task", "no goal zone", "a goal zone"))?;
    let puck = task.scene.objects.first().ok_or_else(|| BenchError::invalid("push task", "no puck", "a puck"))?;
    let puck_radius = match puck.shape {
        Shape::Cylinder { radius, .. } | Shape::Sphere { radius } => radius,
        _ => puck.shape.bounding_radius(),
    };
    let puck_height = 2.0 * puck.shape.half_extents()[1];
    let state = frames.last().and_then(|f| f.objects.first()).filter(|o| o.present && o.visible);
    Ok(PushView {
        statics: task.scene.statics.iter().map(SceneBox::of_static).collect(),
        goal: SceneBox::of_zone(goal),
        goal_state,
        puck_radius,
        puck_height,
        puck: state.map(|o| PuckState { position: o.position, velocity: o.linvel }),
        max_force: task.max_force,
        frame,
        frames: task.frames(),
        fps: task.scene.sim.fps,
        hold,
        observed: observed_frames(task, frames, executed),
    })
}

fn rejected(r: physworld_sim::Rejection) -> BenchError {
    BenchError::Mismatch { what: "push episode".into(), reason: format!("the physics was rejected: {r:?}") }
}

/// Distance of the puck at the last of `frames` to the goal zone's centre (a puck that
/// fell off the table is far from it, wherever it lies below).
fn final_distance(task: &PushTask, frames: &[Frame]) -> f64 {
    let g = task.scene.zones.first().map_or([0.0; 3], |z| z.center);
    let p = frames.last().and_then(|f| f.objects.first()).map_or([0.0; 3], |o| o.position);
    f64::from(physworld_sim::math::dist(p, g))
}

/// Clip `[fx, fz]` to the disk of radius `max`; non-finite forces are unusable.
fn clip(f: [f32; 2], max: f32) -> Option<[f32; 3]> {
    if !(f[0].is_finite() && f[1].is_finite()) {
        return None;
    }
    let [x, z] = clip_disk(f, max);
    Some([x, 0.0, z])
}

/// A horizontal force `[x, z]` shortened to at most `max` newtons, its direction kept.
pub(crate) fn clip_disk(f: [f32; 2], max: f32) -> [f32; 2] {
    let n = f[0].hypot(f[1]);
    let s = if n > max && n > 0.0 { max / n } else { 1.0 };
    [f[0] * s, f[1] * s]
}

/// Play `item` with `planner` (seeded by `seed` and the item's episode index), each
/// action held `hold` frames.
pub fn play(item: &PushItem, planner: &mut dyn PushPlanner, seed: u64, hold: usize) -> Result<PushOutcome> {
    play_recorded(item, planner, seed, hold, &mut |_| {})
}

/// [`play`], handing the executed episode (with its `goal_reached` label) to `record`
/// (the family, split and seed fields are placeholders for the caller to fill).
pub fn play_recorded(
    item: &PushItem,
    planner: &mut dyn PushPlanner,
    seed: u64,
    hold: usize,
    record: &mut dyn FnMut(Episode),
) -> Result<PushOutcome> {
    drive(&item.task, item.goal_state, planner, (item.episode_index, seed), hold, record)
}

/// The closed loop of [`play_recorded`] on `task`, the planner shown `goal_state`.
fn drive(
    task: &PushTask,
    goal_state: PuckState,
    planner: &mut dyn PushPlanner,
    (episode_index, seed): (u64, u64),
    hold: usize,
    record: &mut dyn FnMut(Episode),
) -> Result<PushOutcome> {
    if hold == 0 || hold > MAX_HOLD {
        return Err(BenchError::invalid("hold", hold, format!("1..={MAX_HOLD} frames")));
    }
    let start = Instant::now();
    planner.begin(episode_index as usize, seed);
    let given = planner.uses_simulator();
    let last = task.frames().saturating_sub(1);
    let mut executed: Vec<[f32; 3]> = Vec::with_capacity(last);
    let mut sim = task.start()?.map_err(rejected)?;
    let (mut actions, mut unusable, mut planning) = (0usize, 0usize, 0f64);
    let mut broke = None;
    'control: while executed.len() < last {
        let view = view_at(task, sim.frames(), &executed, hold, goal_state)?;
        let t = Instant::now();
        let chosen = planner.act(&view, &executed, given.then_some(&sim))?;
        planning += t.elapsed().as_secs_f64();
        actions += 1;
        let force = chosen.and_then(|f| clip(f, task.max_force)).unwrap_or_else(|| {
            unusable += 1;
            [0.0; 3]
        });
        for _ in 0..hold.min(last - executed.len()) {
            executed.push(force);
            // A planner may drive the puck off the table into the floor faster than the
            // physics' health bounds allow: the item fails there, the run goes on.
            if let Err(r) = sim.advance(force) {
                broke = Some(format!("{r:?}"));
                break 'control;
            }
        }
    }
    let outcome = PushOutcome {
        episode_index,
        success: broke.is_none() && PushTask::reached(sim.frames()),
        final_distance: final_distance(task, sim.frames()),
        actions,
        unusable,
        judge_steps: sim.physics_steps(),
        planner_steps: planner.own_steps(),
        planning_seconds: planning,
        seconds: start.elapsed().as_secs_f64(),
        raw: planner.raw_log(),
        physics_rejected: broke,
    };
    // A rejected episode is cut short: not a recording.
    if outcome.physics_rejected.is_none() {
        let mut episode = sim.finish();
        episode.labels.goal_reached = Some(outcome.success);
        record(episode);
    }
    Ok(outcome)
}

/// One `plan-push` item: a `push` task.
#[derive(Debug, Clone)]
pub struct PushItem {
    /// `plan-push/{split}/push/{sample}/{episode}`.
    pub id: String,
    /// SHA-256 of the item (its id, episode, control rate and the task's version) and the
    /// dataset's suite hash.
    pub hash: String,
    /// Episode index in the dataset.
    pub episode_index: u64,
    /// The task.
    pub task: PushTask,
    /// A goal state for planners that need one, at rest: where the `greedy` controller's
    /// run on the task (at the item's control rate) leaves the puck when it succeeds (at
    /// rest touching the goal zone, [`PushTask::reached`]) with the puck's centre inside
    /// the zone, else the zone's centre at the puck's starting height.
    pub goal_state: PuckState,
}

/// The goal state of `task` at control rate `hold` (see [`PushItem::goal_state`]).
pub fn goal_state(task: &PushTask, hold: usize) -> Result<PuckState> {
    let (zone, half) = task.scene.zones.first().map_or(([0.0; 3], [0.0; 3]), |z| (z.center, z.half_extents));
    let start = task.scene.objects.first().map_or(zone, |o| o.position);
    let fallback = PuckState { position: [zone[0], start[1], zone[2]], velocity: [0.0; 3] };
    let mut end = None;
    let run = drive(task, fallback, &mut GreedyPush::default(), (0, 0), hold, &mut |e| {
        end = e
            .frames
            .last()
            .and_then(|f| f.objects.first())
            .map(|o| PuckState { position: o.position, velocity: o.linvel });
    })?;
    // Success is at rest touching the zone (the family's label); a goal state is inside it.
    let inside = |p: [f32; 3]| (p[0] - zone[0]).abs() <= half[0] && (p[2] - zone[2]).abs() <= half[2];
    Ok(match end {
        Some(s) if run.success && inside(s.position) => PuckState { velocity: [0.0; 3], ..s },
        _ => fallback,
    })
}

/// The `plan-push` items of a split, and the `push` episodes left out (by `--limit`).
#[derive(Debug, Clone, Default)]
pub struct PushItems {
    /// Items, in episode order.
    pub items: Vec<PushItem>,
    /// Episodes left out, by reason.
    pub dropped: BTreeMap<String, u64>,
}

/// The `plan-push` items of `split` with actions held `hold` frames, one per `push`
/// episode, in episode order; empty for a split without `push` episodes.
pub fn push_items(ds: &Dataset, split: &str, hold: usize) -> Result<PushItems> {
    if hold == 0 || hold > MAX_HOLD {
        return Err(BenchError::invalid("hold", hold, format!("1..={MAX_HOLD} frames")));
    }
    let mut out = PushItems::default();
    for m in ds.split(split).filter(|m| m.family == "push") {
        let (family, _, sim_split) = ds.family_of(split, m.sample_index)?;
        let Some(task) = family.push_task(m.seed, sim_split)? else { continue };
        let id = format!("{PUSH_TASK}/{split}/push/{}/{}", m.sample_index, m.episode_index);
        let hash = crate::plan::item_hash(ds, &id, &format!("{}\0{hold}\0{PUSH_VERSION}", m.episode_index));
        let goal_state = goal_state(&task, hold)?;
        out.items.push(PushItem { id, hash, episode_index: m.episode_index, task, goal_state });
    }
    Ok(out)
}

/// [`push_items`], refusing a split that has none.
pub fn push_items_required(ds: &Dataset, split: &str, hold: usize) -> Result<PushItems> {
    let items = push_items(ds, split, hold)?;
    if items.items.is_empty() {
        return Err(crate::plan::no_episodes(split, "push"));
    }
    Ok(items)
}

/// The `push` planners by spec.
pub const PLANNERS: [&str; 3] = ["oracle", "random", "greedy"];

/// The `push` planner `spec` (see [`PLANNERS`]); `chance[:SEED]` is the random one, and
/// `greedy,route=around` the greedy controller heading round obstacles ([`Heading`]).
pub fn push_planner(spec: &str) -> Result<Box<dyn PushPlanner>> {
    if let Some(seed) = crate::plan::random_seed(spec)? {
        return Ok(Box::new(RandomPush::new(seed)));
    }
    if let Some(options) = spec.strip_prefix("greedy,") {
        return Ok(Box::new(GreedyPush::parse(spec, options)?));
    }
    Ok(match spec {
        "oracle" => Box::new(PushOracle::default()),
        "greedy" => Box::new(GreedyPush::default()),
        other => return Err(crate::plan::unknown_planner(other, PLANNERS)),
    })
}

/// `route=direct|around`: what a planner that heads for a goal aims at on `plan-push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Heading {
    /// The goal, straight: a wall across the way stops the puck.
    #[default]
    Direct,
    /// The next corner of the shortest way round the obstacles of the observed static
    /// scene, then the goal once it is in sight ([`Route`]): the route comes from the map,
    /// the pushing from the planner.
    Around,
}

impl Heading {
    /// The keys `route=` takes.
    pub const ALLOWED: &str = "direct or around";

    /// `direct` or `around`.
    pub fn parse(v: &str) -> Option<Heading> {
        match v {
            "direct" => Some(Heading::Direct),
            "around" => Some(Heading::Around),
            _ => None,
        }
    }
}

/// A planner's waypoints on the current item: its [`Route`], built from the view on first
/// use and kept until [`Waypoints::reset`] (the static scene does not change).
#[derive(Debug, Clone, Default)]
pub(crate) struct Waypoints {
    route: Option<(Route, [f32; 3])>,
}

impl Waypoints {
    /// Forget the item's route.
    pub(crate) fn reset(&mut self) {
        self.route = None;
    }

    /// Where to head from the puck at `p` for `goal`, under `heading`.
    pub(crate) fn toward(&mut self, heading: Heading, view: &PushView, goal: [f32; 3], p: [f32; 3]) -> [f32; 3] {
        if heading == Heading::Direct {
            return goal;
        }
        if self.route.as_ref().is_none_or(|(_, g)| *g != goal) {
            self.route = Some((Route::new(&view.statics, goal, view.puck_radius, view.puck_height), goal));
        }
        self.route.as_ref().map_or(goal, |(r, _)| r.waypoint(p))
    }
}

/// A force drawn uniformly from the disk of radius `max`.
fn uniform_disk(rng: &mut ChaCha8Rng, max: f32) -> [f32; 2] {
    let r = max * rng.random_range(0.0f32..=1.0).sqrt();
    let a = rng.random_range(0.0..std::f32::consts::TAU);
    [r * a.cos(), r * a.sin()]
}

/// Uniform forces in the bound's disk.
pub struct RandomPush {
    rng: ChaCha8Rng,
    seed: u64,
}

impl RandomPush {
    /// A random planner whose draws also depend on `seed`.
    pub fn new(seed: u64) -> Self {
        RandomPush { rng: ChaCha8Rng::seed_from_u64(0), seed }
    }
}

impl PushPlanner for RandomPush {
    fn id(&self) -> &str {
        "random"
    }
    fn begin(&mut self, index: usize, seed: u64) {
        self.rng = item_rng(seed, index, 0x50_52_4E_44 ^ self.seed.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    }
    fn act(&mut self, view: &PushView, _: &[[f32; 3]], _: Option<&Simulation<'_>>) -> Result<Option<[f32; 2]>> {
        Ok(Some(uniform_disk(&mut self.rng, view.max_force)))
    }
}

/// A saturated PD controller toward the goal's centre: `K_P (goal - p) - K_D v`, clipped
/// to the bound; no force while the puck is not visible. It pushes straight at the goal,
/// so a wall across the way stops it; with `route=around` (spec `greedy,route=around`) it
/// heads for the next corner of the way round the observed obstacles instead, until the
/// goal is in sight ([`Heading::Around`]), pushing at the bound where the puck is at rest
/// short of a corner.
#[derive(Default)]
pub struct GreedyPush {
    heading: Heading,
    id: Option<String>,
    waypoints: Waypoints,
}

impl GreedyPush {
    /// The controller of `spec`, `greedy,OPTIONS` (`options`: `route=direct|around`).
    pub fn parse(spec: &str, options: &str) -> Result<GreedyPush> {
        let mut heading = Heading::Direct;
        for opt in options.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("route", v)) => {
                    heading = Heading::parse(v).ok_or_else(|| {
                        BenchError::invalid("model", spec, format!("`route={v}`: route must be {}", Heading::ALLOWED))
                    })?
                }
                _ => {
                    return Err(BenchError::invalid(
                        "model",
                        spec,
                        format!("`{opt}`: greedy takes route=direct|around"),
                    ));
                }
            }
        }
        Ok(GreedyPush { heading, id: Some(spec.to_string()), waypoints: Waypoints::default() })
    }

    /// Proportional gain, N/m (saturates beyond a few decimetres).
    pub const K_P: f32 = 8.0;
    /// Damping gain, N s/m. The controller does not know the puck's mass: with a force
    /// held 0.2 s (the default control rate), damping stays stable for the lightest puck
    /// (0.2 kg) only while `K_D * 0.2 s / m` is under 2; stiffer gains make light pucks
    /// chatter around the goal instead of coming to rest (measured: gains 40 and 12 left
    /// 20% of pucks at rest in the zone where these leave 93%).
    pub const K_D: f32 = 1.6;
    /// Speed under which the puck counts as at rest, m/s.
    pub const AT_REST: f32 = 0.02;
}

impl PushPlanner for GreedyPush {
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("greedy")
    }
    fn begin(&mut self, _index: usize, _seed: u64) {
        self.waypoints.reset();
    }
    fn act(&mut self, view: &PushView, _: &[[f32; 3]], _: Option<&Simulation<'_>>) -> Result<Option<[f32; 2]>> {
        let Some(p) = view.puck else { return Ok(Some([0.0, 0.0])) };
        let g = self.waypoints.toward(self.heading, view, view.goal.position, p.position);
        let mut e = [g[0] - p.position[0], g[2] - p.position[2]];
        // At rest short of a corner, the proportional term alone reaches the bound: a
        // corner close by would otherwise leave the puck beside it under a force that
        // static friction holds (the bound exceeds the puck's friction force by the
        // family's rule). Moving, or within a grid cell of the corner (where the
        // direction to it is noise), the controller is the plain PD.
        let n = e[0].hypot(e[1]);
        let speed = p.velocity[0].hypot(p.velocity[2]);
        if g != view.goal.position && speed < Self::AT_REST && n > CostToGo::CELL && Self::K_P * n < view.max_force {
            let k = view.max_force / (Self::K_P * n);
            e = [e[0] * k, e[1] * k];
        }
        Ok(Some([Self::K_P * e[0] - Self::K_D * p.velocity[0], Self::K_P * e[1] - Self::K_D * p.velocity[2]]))
    }
}

/// The ceiling: at each control step, the cross-entropy method over the next
/// [`HORIZON_S`] of actions with the true simulator as its model (a fork of the episode's
/// simulation at the present frame, advanced under the candidate's forces, then none for
/// one more second or to the episode's end if sooner), scored by the puck's distance
/// to the goal zone's centre there plus 0.3 s times its speed (a puck still sliding has not
/// arrived). The distance goes around whatever stands on the table ([`CostToGo`]: the
/// straight line's where the goal is in sight), so a wall across the way does not hold
/// the search in front of it. Its candidates: the previous step's plan shifted by one
/// action (the CEM's initial mean), full force straight at the goal, and draws around the
/// mean; the first action of the best plan is executed.
#[derive(Default)]
pub struct PushOracle {
    rng: Option<ChaCha8Rng>,
    steps: u64,
    plan: Vec<[f32; 2]>,
    cost: Option<CostToGo>,
}

impl PushOracle {
    /// Candidates per iteration (besides the mean), iterations, elites.
    const SAMPLES: usize = 12;
    const ITERS: usize = 2;
    const ELITES: usize = 3;
}

impl PushPlanner for PushOracle {
    fn id(&self) -> &str {
        "oracle"
    }
    fn uses_simulator(&self) -> bool {
        true
    }
    fn begin(&mut self, index: usize, seed: u64) {
        self.rng = Some(item_rng(seed, index, 0x4F_52_41_43));
        self.steps = 0;
        self.plan.clear();
        self.cost = None;
    }
    fn own_steps(&self) -> u64 {
        self.steps
    }
    fn act(
        &mut self,
        view: &PushView,
        executed: &[[f32; 3]],
        sim: Option<&Simulation<'_>>,
    ) -> Result<Option<[f32; 2]>> {
        let (Some(sim), Some(rng)) = (sim, self.rng.as_mut()) else { return Ok(None) };
        let (fps, hold, max) = (view.fps.max(1) as usize, view.hold, view.max_force);
        let now = executed.len();
        let last = view.frames.saturating_sub(1);
        let remaining = last.saturating_sub(now).max(1);
        let h = ((HORIZON_S * fps as f32 / hold as f32).ceil() as usize).clamp(1, remaining.div_ceil(hold));
        // The true simulator, forked at the present, to the window's end.
        let window = (h * hold + fps).min(remaining);
        let goal = view.goal.position;
        let cost =
            self.cost.get_or_insert_with(|| CostToGo::new(&view.statics, goal, view.puck_radius, view.puck_height));
        let toward_goal = match view.puck {
            Some(p) => {
                let (dx, dz) = (goal[0] - p.position[0], goal[2] - p.position[2]);
                let n = dx.hypot(dz).max(1e-6);
                [max * dx / n, max * dz / n]
            }
            None => [0.0, 0.0],
        };
        // Warm start: last step's plan shifted by one action.
        let mut mean: Vec<[f32; 2]> = (0..h).map(|k| self.plan.get(k + 1).copied().unwrap_or([0.0, 0.0])).collect();
        let mut sd = vec![[0.6 * max; 2]; h];
        let mut best: Option<(f64, Vec<[f32; 2]>)> = None;
        for _ in 0..Self::ITERS {
            let mut scored: Vec<(f64, Vec<[f32; 2]>)> = Vec::with_capacity(Self::SAMPLES + 1);
            for s in 0..=Self::SAMPLES {
                let cand: Vec<[f32; 2]> = if s == 0 {
                    // The mean itself, so a good plan is never lost.
                    mean.clone()
                } else if s == 1 {
                    // Full force straight at the goal throughout.
                    vec![toward_goal; h]
                } else {
                    (0..h)
                        .map(|k| {
                            let z = crate::plan::standard_normal;
                            [mean[k][0] + sd[k][0] * z(rng), mean[k][1] + sd[k][1] * z(rng)]
                        })
                        .collect()
                };
                let mut fork = sim.clone();
                let healthy = (0..window).all(|k| {
                    let force = cand.get(k / hold).and_then(|f| clip(*f, max)).unwrap_or([0.0; 3]);
                    fork.advance(force).is_ok()
                });
                self.steps += fork.physics_steps() - sim.physics_steps();
                if !healthy {
                    continue;
                }
                let Some(end) = fork.frames().last().and_then(|f| f.objects.first()) else { continue };
                let d = cost.distance(end.position);
                let speed = physworld_sim::math::norm(end.linvel);
                scored.push((f64::from(d + 0.3 * speed), cand));
            }
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((c, p)) = scored.first()
                && best.as_ref().is_none_or(|(bc, _)| c < bc)
            {
                best = Some((*c, p.clone()));
            }
            let elites = &scored[..scored.len().min(Self::ELITES)];
            if elites.len() >= 2 {
                let n = elites.len() as f32;
                for k in 0..h {
                    for j in 0..2 {
                        let m = elites.iter().map(|(_, p)| p[k][j]).sum::<f32>() / n;
                        let v = elites.iter().map(|(_, p)| (p[k][j] - m).powi(2)).sum::<f32>() / n;
                        mean[k][j] = m;
                        sd[k][j] = v.sqrt().max(0.02 * max);
                    }
                }
            }
        }
        self.plan = best.map(|(_, p)| p).unwrap_or_default();
        Ok(Some(self.plan.first().copied().unwrap_or([0.0, 0.0])))
    }
}

/// A run of one planner over the `push` items of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRun {
    /// Planner id.
    pub planner: String,
    /// Split.
    pub split: String,
    /// Seed of the planners' randomness and of the confidence intervals.
    pub seed: u64,
    /// Frames each action is held.
    pub hold: usize,
    /// Share of items whose puck ended at rest in the goal zone.
    pub success: f64,
    /// 95% bootstrap interval of the success rate.
    pub success_ci: [f64; 2],
    /// Mean final distance to the goal zone's centre, m.
    pub final_distance: f64,
    /// Per item.
    pub items: Vec<PushOutcome>,
}

/// Play every item with `planner`, in order (each item's randomness depends only on `seed`
/// and its episode index); `tick` is called after each item with its outcome and its
/// executed episode (see [`play_recorded`]).
pub fn run_push(
    items: &[PushItem],
    planner: &mut dyn PushPlanner,
    split: &str,
    seed: u64,
    hold: usize,
    resamples: u32,
    tick: &mut dyn FnMut(&PushOutcome, Vec<Episode>),
) -> Result<PushRun> {
    let mut outcomes = Vec::with_capacity(items.len());
    for it in items {
        let mut episodes = Vec::new();
        let o = play_recorded(it, planner, seed, hold, &mut |e| episodes.push(e))?;
        tick(&o, episodes);
        outcomes.push(o);
    }
    Ok(PushRun::new(planner.id(), split, seed, hold, resamples, outcomes))
}

impl PushRun {
    /// The run of `planner` made of `outcomes` (one per item, in order), with its summary
    /// figures and the success interval under `seed` and `resamples`.
    pub fn new(
        planner: &str,
        split: &str,
        seed: u64,
        hold: usize,
        resamples: u32,
        outcomes: Vec<PushOutcome>,
    ) -> PushRun {
        let s: Vec<f64> = outcomes.iter().map(|o| f64::from(u8::from(o.success))).collect();
        let d: Vec<f64> = outcomes.iter().map(|o| o.final_distance).collect();
        PushRun {
            planner: planner.to_string(),
            split: split.to_string(),
            seed,
            hold,
            success: crate::metrics::mean(&s),
            success_ci: crate::metrics::bootstrap_mean(&s, seed, resamples),
            final_distance: crate::metrics::mean(&d),
            items: outcomes,
        }
    }
}

/// Score a run of `plan-push` over `items` (as [`run_push`] played them, in order) into the
/// task's result and per-item log: the success rate (primary) and the final distance to
/// the goal, each with its bootstrap interval, and the planner's own physics steps per
/// action. An item with an unusable answer is counted invalid (it is still scored).
pub fn score_push(items: &[PushItem], run: &PushRun, b: Bootstrap) -> (TaskResult, Vec<ItemLog>) {
    let os = &run.items;
    let invalid = os.iter().filter(|o| o.unusable > 0).count() as u64;
    let mut metrics = Vec::new();
    let series: [(&str, Vec<f64>, bool, Option<f64>); 3] = [
        (PUSH_PRIMARY, os.iter().map(|o| f64::from(u8::from(o.success))).collect(), true, Some(1.0)),
        ("final_distance", os.iter().map(|o| o.final_distance).collect(), false, Some(0.0)),
        (
            "planner_steps_per_action",
            os.iter().map(|o| o.planner_steps as f64 / o.actions.max(1) as f64).collect(),
            false,
            None,
        ),
    ];
    for (name, v, higher, best) in series {
        metrics.extend(crate::score::metric(name, "all", &v, invalid, higher, None, best, b));
    }
    let logs = items
        .iter()
        .zip(os)
        .map(|(it, o)| ItemLog {
            task: PUSH_TASK.into(),
            item: it.id.clone(),
            hash: it.hash.clone(),
            family: "push".into(),
            prediction: serde_json::json!({
                "success": o.success,
                "final_distance": o.final_distance,
                "actions": o.actions,
                "unusable": o.unusable,
                "judge_steps": o.judge_steps,
                "planner_steps": o.planner_steps,
            }),
            target: serde_json::json!({
                "goal": "the puck in the goal zone at the last frame",
                "goal_state": it.goal_state,
                "hold": run.hold,
            }),
            correct: Some(o.success),
            score: f64::from(u8::from(o.success)),
            invalid: o.unusable > 0,
            presentation: None,
            raw: o.raw.clone(),
        })
        .collect();
    let result = TaskResult {
        id: PUSH_TASK.into(),
        version: PUSH_VERSION,
        kind: "plan".into(),
        primary: PUSH_PRIMARY.into(),
        content_hash: crate::tasks::content_hash(items.iter().map(|i| i.hash.as_str())),
        n_items: items.len() as u64,
        invalid,
        metrics,
    };
    (result, logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with a wall along z at x = 0 (z from -0.3 to 0.3) between the puck's side
    /// and a goal at (0.5, 0): the view of a puck at `p`, moving at `v`.
    fn view(p: [f32; 3], v: [f32; 3]) -> PushView {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let boxed = |kind, position, rotation, half_extents| SceneBox { kind, position, rotation, half_extents };
        let upright = [0.0, 0.0, 0.0, 1.0];
        let table = boxed(4, [0.0, 0.35, 0.0], upright, [0.8, 0.05, 0.8]);
        let wall = boxed(1, [0.0, 0.45, 0.0], [0.0, s, 0.0, s], [0.3, 0.05, 0.02]);
        let goal = boxed(6, [0.5, 0.45, 0.0], upright, [0.1, 0.05, 0.1]);
        let empty = EpisodeFrames::empty(0, 1);
        PushView {
            statics: vec![table, wall],
            goal,
            goal_state: PuckState { position: [0.5, 0.42, 0.0], velocity: [0.0; 3] },
            puck_radius: 0.05,
            puck_height: 0.04,
            puck: Some(PuckState { position: p, velocity: v }),
            max_force: 3.0,
            frame: 0,
            frames: 90,
            fps: 30,
            hold: 6,
            observed: empty,
        }
    }

    fn force(spec: &str, view: &PushView) -> [f32; 2] {
        let mut planner = push_planner(spec).expect("spec");
        planner.begin(0, 0);
        planner.act(view, &[], None).expect("acts").expect("a force")
    }

    /// At rest beside the wall just short of its +z end (outside the margin), the routed
    /// controller pushes at the bound toward the corner (its PD force there would be under
    /// the puck's friction); moving, or heading for the goal itself, it is the plain PD
    /// controller.
    #[test]
    fn the_routed_controller_breaks_away_from_rest_toward_a_corner_close_by() {
        let at_rest = view([-0.13, 0.42, 0.33], [0.0; 3]);
        let f = force("greedy,route=around", &at_rest);
        assert!((f[0].hypot(f[1]) - 3.0).abs() < 1e-3, "at the bound: {f:?}");
        assert!(f[1] > 0.0, "toward the +z corner: {f:?}");
        // Moving: the PD force toward the same corner, well under the bound.
        let moving = view([-0.13, 0.42, 0.33], [0.0, 0.0, 0.1]);
        let g = force("greedy,route=around", &moving);
        assert!(g[0].hypot(g[1]) < 1.5, "{g:?}");
        // Plain greedy heads for the goal: the PD force, whatever the speed.
        let p = force("greedy", &at_rest);
        let pd = [GreedyPush::K_P * (0.5 + 0.13), GreedyPush::K_P * (0.0 - 0.33)];
        assert!((p[0] - pd[0]).abs() < 1e-4 && (p[1] - pd[1]).abs() < 1e-4, "{p:?} against {pd:?}");
    }
}
