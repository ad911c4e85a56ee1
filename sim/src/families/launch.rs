//! `launch`: PHYRE-style planning. The action places a ball at `(x, y)` with radius `r` in
//! the vertical x–y scene plane; it falls and should knock the target into the goal zone.
//!
//! PHYRE is 2-D; here every dynamic object is restricted to the x–y plane (physworld is
//! y-up, so PHYRE's `(x, y)` maps to our `(x, y)`). As in PHYRE, an action whose ball
//! overlaps any object or static geometry is invalid and is not simulated.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, Outcome, Range, Sample};
use crate::episode::Placement;
use crate::error::{Rejection, Result, SimError};
use crate::math::{quat_rotate, sub};
use crate::scene::{
    ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, Shape, SimConfig, StaticRole, StaticSpec, Zone,
};
use crate::seed::Sampler;
use crate::split::Split;

/// Number of templates.
pub const TEMPLATES: u32 = 8;

/// The cross-template folds: fold `k` holds out `FOLD_TEMPLATES[k]` (each pair differs only
/// in the platform's height, so a fold's test asks for an unseen combination of goal
/// distance and obstacle); fold 0 is the default held-out pair.
pub const FOLD_TEMPLATES: [[u32; 2]; 4] = [[6, 7], [4, 5], [2, 3], [0, 1]];

/// PHYRE's evaluation protocols.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Cross-template: test draws only the held-out templates, the other splits only the
    /// rest.
    #[default]
    Cross,
    /// Within-template: every split draws every template; test tasks are new instances of
    /// the training templates.
    Within,
}

impl Protocol {
    fn is_cross(&self) -> bool {
        *self == Protocol::Cross
    }
}

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "launch",
    kind: FamilyKind::Planning,
    description: "PHYRE-like: place a ball (x, y, r) so that, falling, it knocks the yellow target ball into the goal zone.",
    params: &[
        (
            "heldout_templates",
            "templates used only by test (0..8; bit 0 high platform, bit 1 far goal, bit 2 obstacle wall)",
        ),
        (
            "protocol",
            "cross (test draws only held-out templates, default) or within (every split draws every template)",
        ),
        (
            "fold",
            "cross-template fold 0..4: holds out templates [6,7], [4,5], [2,3] or [0,1] (replaces heldout_templates)",
        ),
        (
            "solvable",
            "keep only tasks a search of SOLVER_TRIES (128) placements solves (PHYRE's tasks are all solvable); default false",
        ),
        ("action_radius", "radius of the placed ball, m"),
        ("target_radius", "radius of the target ball, m"),
        ("guided_fraction", "fraction of sampled actions aimed near the target (the rest are uniform)"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "whole templates (PHYRE's cross-template protocol): `heldout_templates` or `fold`; none under `protocol = \"within\"`",
    labels: "goal_reached (target in goal zone at the end), contact (target→goal zone), action_valid, placement",
};

/// Parameters of `launch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[6, 7]`.
    pub heldout_templates: Vec<u32>,
    /// Default `[0.05, 0.15]` m.
    pub action_radius: Range,
    /// Default `[0.05, 0.08]` m.
    pub target_radius: Range,
    /// Default 0.6.
    pub guided_fraction: f32,
    /// Default 3 s.
    pub duration_s: f32,
    /// Default cross-template (written out only when not).
    #[serde(skip_serializing_if = "Protocol::is_cross")]
    pub protocol: Protocol,
    /// A cross-template fold, `0..FOLD_TEMPLATES.len()`: the held-out templates are the
    /// fold's (written out only when set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fold: Option<u32>,
    /// Keep only tasks that [`solve`] solves (a task it cannot solve is rejected and the
    /// generator draws the next attempt), as PHYRE keeps only solvable tasks. Default false
    /// (written out only when set).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub solvable: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            heldout_templates: vec![6, 7],
            action_radius: Range::new(0.05, 0.15),
            target_radius: Range::new(0.05, 0.08),
            guided_fraction: 0.6,
            duration_s: 3.0,
            protocol: Protocol::Cross,
            fold: None,
            solvable: false,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("launch", self.fov_y_deg)?;
        for (i, &t) in self.heldout_templates.iter().enumerate() {
            if t >= TEMPLATES {
                return Err(SimError::invalid(
                    format!("launch.heldout_templates[{i}]"),
                    t,
                    format!("a template id in 0..{TEMPLATES}"),
                ));
            }
        }
        if self.heldout_templates.len() as u32 >= TEMPLATES {
            return Err(SimError::invalid(
                "launch.heldout_templates",
                format!("{:?}", self.heldout_templates),
                "at most 7 of the 8 templates",
            ));
        }
        let custom = self.heldout_templates != Params::default().heldout_templates;
        if let Some(k) = self.fold {
            if k as usize >= FOLD_TEMPLATES.len() {
                return Err(SimError::invalid(
                    "launch.fold",
                    k,
                    format!("a cross-template fold in 0..{}", FOLD_TEMPLATES.len()),
                ));
            }
            if self.protocol == Protocol::Within {
                return Err(SimError::invalid(
                    "launch.fold",
                    k,
                    "no fold under protocol = \"within\" (within-template folds are new instances: vary the suite's seed)",
                ));
            }
            if custom && self.heldout_templates != FOLD_TEMPLATES[k as usize] {
                return Err(SimError::invalid(
                    "launch.heldout_templates",
                    format!("{:?}", self.heldout_templates),
                    format!("either heldout_templates or fold (fold {k} holds out {:?})", FOLD_TEMPLATES[k as usize]),
                ));
            }
        }
        if self.protocol == Protocol::Within && custom {
            return Err(SimError::invalid(
                "launch.heldout_templates",
                format!("{:?}", self.heldout_templates),
                "none under protocol = \"within\" (every split draws every template)",
            ));
        }
        self.action_radius.validate("launch.action_radius", 0.01, 0.5)?;
        self.target_radius.validate("launch.target_radius", 0.01, 0.3)?;
        Range::new(self.guided_fraction, self.guided_fraction).validate("launch.guided_fraction", 0.0, 1.0)?;
        Range::new(self.duration_s, self.duration_s).validate("launch.duration_s", 0.1, 60.0)
    }
}

/// PHYRE's validity rule: the placed ball must lie above the floor, inside the scene
/// (|x| <= 1.5 m, y <= 2 m) and overlap no object or static. `Err` says what it overlaps.
pub fn validate_placement(scene: &Scene, p: &Placement) -> std::result::Result<(), String> {
    let c = [p.x, p.y, 0.0];
    if !(p.radius.is_finite() && p.radius > 0.0) {
        return Err(format!("radius {} is not positive", p.radius));
    }
    if !(p.x.is_finite() && p.y.is_finite()) || p.x.abs() > 1.5 || p.y > 2.0 || p.y - p.radius < 0.0 {
        return Err(format!("({}, {}) with radius {} is outside the scene", p.x, p.y, p.radius));
    }
    for o in scene.objects.iter().filter(|o| o.present) {
        if crate::math::dist(c, o.position) < p.radius + o.shape.bounding_radius() {
            return Err(format!("overlaps object `{}`", o.name));
        }
    }
    for st in scene.statics.iter().filter(|s| s.role != StaticRole::Occluder) {
        // Sphere against oriented box: clamp the centre into the box's local frame.
        let inv = [-st.rotation[0], -st.rotation[1], -st.rotation[2], st.rotation[3]];
        let local = quat_rotate(inv, sub(c, st.position));
        let h = st.half_extents;
        let q = [local[0].clamp(-h[0], h[0]), local[1].clamp(-h[1], h[1]), local[2].clamp(-h[2], h[2])];
        if crate::math::dist(local, q) < p.radius {
            return Err(format!("overlaps static `{}`", st.name));
        }
    }
    Ok(())
}

/// A `launch` task as a planner meets it: the scene before any ball is placed (its one
/// object the target), as the family draws it for a seed. [`LaunchTask::attempt`] places
/// a ball and lets the simulator judge it.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchTask {
    /// The scene without the placed ball: statics, the goal zone (zone 0), the target
    /// (object 0), camera.
    pub scene: Scene,
    /// Template id (`0..TEMPLATES`).
    pub template: u32,
    /// The radii a placed ball may have, m (the family's `action_radius`).
    pub radius: Range,
}

/// What the simulator made of one placement.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Not simulated (PHYRE's rule, [`validate_placement`]): why.
    Invalid(String),
    /// Simulated: whether the target ended in the goal zone, and the episode (the placed
    /// ball is object 0, the target object 1, as in the family's episodes).
    Simulated {
        /// The family's `goal_reached`: the target in the goal zone at the last frame.
        success: bool,
        /// The whole episode.
        episode: Box<crate::episode::Episode>,
    },
    /// The physics diverged (a health check rejected the run): counts as a failure.
    Rejected(Rejection),
}

impl LaunchTask {
    /// The task of `seed` (an episode's own seed) for `split`.
    pub fn new(p: &Params, seed: u64, split: Split) -> Result<LaunchTask> {
        Ok(task(p, &mut Sampler::new(seed), split)?.0)
    }

    /// The scene with a ball placed at `pl` (not validated).
    pub fn with_ball(&self, pl: &Placement) -> Scene {
        let mut ball =
            ObjectSpec::new("action", Shape::Sphere { radius: pl.radius }, Mass::Density(500.0), [pl.x, pl.y, 0.0]);
        ball.planar = true;
        ball.color = AGENT_RED;
        ball.friction = 0.3;
        let mut scene = self.scene.clone();
        scene.objects.insert(0, ball);
        scene.contact_query = Some(ContactQuery { agent: 1, patient: ContactTarget::Zone(0) });
        scene
    }

    /// Place a ball at `pl` and simulate: invalid placements (outside the scene, a radius
    /// outside [`LaunchTask::radius`], overlapping anything) are not simulated.
    pub fn attempt(&self, pl: &Placement) -> Result<Attempt> {
        if !(pl.radius >= self.radius.min - 1e-6 && pl.radius <= self.radius.max + 1e-6) {
            return Ok(Attempt::Invalid(format!(
                "radius {} is outside [{}, {}]",
                pl.radius, self.radius.min, self.radius.max
            )));
        }
        if let Err(why) = validate_placement(&self.scene, pl) {
            return Ok(Attempt::Invalid(why));
        }
        Ok(match common::run(&self.with_ball(pl), &[])? {
            Ok(mut ep) => {
                let success = ep.frames.last().is_some_and(|f| f.zone_contacts.contains(&(0, 1)));
                ep.placement = Some(*pl);
                ep.template = Some(self.template);
                ep.labels.action_valid = Some(true);
                ep.labels.goal_reached = Some(success);
                Attempt::Simulated { success, episode: Box::new(ep) }
            }
            Err(r) => Attempt::Rejected(r),
        })
    }
}

/// Draw the task's scene from `s` (the family's draws, in order) and what the family's own
/// placement sampler needs next: the target's x and radius and the platform height.
fn task(p: &Params, s: &mut Sampler, split: Split) -> Result<(LaunchTask, f32, f32, f32)> {
    let heldout = match (p.protocol, p.fold) {
        (Protocol::Within, _) => &[][..],
        (Protocol::Cross, Some(k)) => &FOLD_TEMPLATES[k as usize % FOLD_TEMPLATES.len()][..],
        (Protocol::Cross, None) => &p.heldout_templates[..],
    };
    let allowed: Vec<u32> = (0..TEMPLATES)
        .filter(|t| p.protocol == Protocol::Within || heldout.contains(t) == split.is_heldout())
        .collect();
    if allowed.is_empty() {
        return Err(SimError::invalid(
            "launch.heldout_templates",
            format!("{:?}", p.heldout_templates),
            "a list leaving templates for both test and the other splits",
        ));
    }
    let template = s.choose(&allowed);
    let (high, far, obstacle) = (template & 1 != 0, template & 2 != 0, template & 4 != 0);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    scene.statics.push(common::floor(0.5, 0.2));
    let hp = if high { s.uniform(0.5, 0.6) } else { s.uniform(0.25, 0.35) };
    let edge = s.uniform(-0.15, 0.1);
    let left = -1.0;
    let mut platform = StaticSpec::new(
        "platform",
        StaticRole::Table,
        [(edge - left) * 0.5, 0.02, 0.3],
        [(edge + left) * 0.5, hp - 0.02, 0.0],
    );
    platform.color = [0.3, 0.3, 0.35];
    scene.statics.push(platform);
    let gx = edge + if far { s.uniform(0.75, 1.0) } else { s.uniform(0.35, 0.55) };
    scene.zones.push(Zone { name: "goal".into(), center: [gx, 0.05, 0.0], half_extents: [0.15, 0.05, 0.3] });
    // A low basket around the goal keeps a ball that lands in it from rolling away.
    for (k, x) in [gx - 0.17, gx + 0.17].into_iter().enumerate() {
        let mut w = StaticSpec::new(format!("basket{k}"), StaticRole::Container, [0.02, 0.03, 0.3], [x, 0.03, 0.0]);
        w.color = [0.2, 0.6, 0.3];
        scene.statics.push(w);
    }
    if obstacle {
        let wh = s.uniform(0.08, 0.18);
        let wx = edge + s.uniform(0.15, 0.25);
        let mut wall = StaticSpec::new("obstacle", StaticRole::Wall, [0.02, wh, 0.3], [wx, wh, 0.0]);
        wall.color = [0.2, 0.2, 0.2];
        scene.statics.push(wall);
    }
    let tr = s.range(p.target_radius);
    let tx = edge - tr - s.uniform(0.0, 0.2);
    let mut target =
        ObjectSpec::new("target", Shape::Sphere { radius: tr }, Mass::Kg(s.uniform(0.1, 0.4)), [tx, hp + tr, 0.0]);
    target.planar = true;
    target.color = PATIENT_YELLOW;
    target.friction = 0.3;
    scene.objects = vec![target];
    scene.camera = common::camera_at([0.0, 0.4, 0.0], 0.0, 2.8, 0.3);
    common::sample_fov(s, &mut scene.camera, p.fov_y_deg);
    Ok((LaunchTask { scene, template, radius: p.action_radius }, tx, tr, hp))
}

/// Placements [`solve`] simulates at most.
pub const SOLVER_TRIES: usize = 128;

/// A placement that solves `task`, if a seeded search finds one within [`SOLVER_TRIES`]
/// simulations: balls of the largest and a middle radius dropped on a grid of offsets
/// behind the target and heights above it (where the family's own successful placements
/// lie), then uniform draws over the scene from a stream of `seed`'s own. Deterministic
/// for a task and seed.
pub fn solve(task: &LaunchTask, seed: u64) -> Result<Option<Placement>> {
    let target = task.scene.objects.first().map_or([0.0; 3], |o| o.position);
    let tr = task.scene.objects.first().map_or(0.05, |o| o.shape.bounding_radius());
    let (rmin, rmax) = (task.radius.min, task.radius.max);
    let mut tried = 0usize;
    let try_one = |pl: Placement, tried: &mut usize| -> Result<Option<Placement>> {
        if validate_placement(&task.scene, &pl).is_err() {
            return Ok(None);
        }
        *tried += 1;
        Ok(match task.attempt(&pl)? {
            Attempt::Simulated { success: true, .. } => Some(pl),
            _ => None,
        })
    };
    for radius in [rmax, 0.5 * (rmin + rmax)] {
        for dx in [0.3, 0.6, 0.9, 0.0, 1.2] {
            for dy in [0.05, 0.25, 0.5] {
                let x = target[0] - dx * (tr + radius);
                let y = target[1] + tr + radius + dy;
                if let Some(pl) = try_one(Placement { x, y, radius }, &mut tried)? {
                    return Ok(Some(pl));
                }
            }
        }
    }
    let mut s = Sampler::new(seed ^ 0x534F_4C56_4552_0001);
    // Invalid draws cost no simulation; bound them all the same.
    for _ in 0..SOLVER_TRIES * 16 {
        if tried >= SOLVER_TRIES {
            break;
        }
        let radius = s.uniform(rmin, rmax);
        let pl = Placement { x: s.uniform(-1.4, 1.4), y: s.uniform(0.05, 1.9), radius };
        if let Some(pl) = try_one(pl, &mut tried)? {
            return Ok(Some(pl));
        }
    }
    Ok(None)
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let (task, tx, tr, hp) = task(p, &mut s, split)?;
    if p.solvable && solve(&task, seed)?.is_none() {
        return Ok(Err(Rejection::family(format!("unsolved by a search of {SOLVER_TRIES} placements"))));
    }
    // Sample actions until one is valid (PHYRE does not simulate invalid actions).
    let mut placement = None;
    for _ in 0..64 {
        let radius = s.range(p.action_radius);
        let cand = if s.chance(p.guided_fraction) {
            Placement {
                x: tx - s.uniform(0.2, 1.8) * tr - radius * s.uniform(0.0, 0.8),
                y: hp + tr + radius + s.uniform(0.05, 0.6),
                radius,
            }
        } else {
            Placement { x: s.uniform(-1.2, 1.2), y: s.uniform(0.1, 1.5), radius }
        };
        if validate_placement(&task.scene, &cand).is_ok() {
            placement = Some(cand);
            break;
        }
    }
    let Some(pl) = placement else {
        return Ok(Err(Rejection::family("no valid action found in 64 draws")));
    };
    Ok(match task.attempt(&pl)? {
        Attempt::Simulated { episode, .. } => Ok(Sample::one(*episode)),
        Attempt::Rejected(r) => Err(r),
        Attempt::Invalid(why) => Err(Rejection::family(why)),
    })
}
