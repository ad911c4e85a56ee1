//! Violation-of-expectation quadruplets (IntPhys analogues).
//!
//! Each sample is a matched quadruplet built from two scenes A and B that differ in one
//! thing (the object exists or not, starts further along, has another shape, a wall stands
//! or not, the platform ends or not):
//!
//! | member | episode | possible |
//! |---|---|---|
//! | 0 | A throughout | yes |
//! | 1 | B throughout | yes |
//! | 2 | A, switched to B's state at frame v | no |
//! | 3 | B, switched to A's state at frame v | no |
//!
//! so that (for the occluded kinds) every frame of an impossible episode also occurs in a
//! possible one. Impossible episodes are re-simulated from t = 0 with an
//! [`Intervention`] at frame v: the world is changed and physics continues, never edited
//! frames. For the occluded kinds every member's target is rebuilt at frame v
//! ([`Intervention::Replace`]: a fresh body, no solver history), the possible members' with
//! their own state and shape, the impossible ones' with the other scene's; so an
//! impossible member after v is its other-scene twin frame for frame, solver transients
//! included, and no statistic of the frames (down to float rounding) tells them apart. Permanence, continuity and shape switches happen while the object is behind the
//! occluder panel (checked with the visibility ray casts in both scenes; otherwise the
//! attempt is rejected). Solidity and gravity violations are visible by nature.
//!
//! Surfaces are frictionless, so objects slide at constant speed and spheres, boxes and
//! cylinders of equal height follow the same path.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED};
use super::{FamilyInfo, FamilyKind, Outcome, Range, Sample};
use crate::episode::{Episode, QuadrupletMember, Violation, ViolationKind};
use crate::error::{Rejection, Result};
use crate::scene::{Mass, ObjectSpec, Scene, Shape, SimConfig, StaticRole, StaticSpec};
use crate::seed::Sampler;
use crate::simulate::Intervention;
use crate::split::Split;

const PARAMS: &[(&str, &str)] = &[
    ("speed", "object speed along the track in train/val/readout, m/s"),
    ("heldout_speed", "object speed band used only by test, m/s"),
    ("size", "object size (radius / half extent), m"),
    ("occluder_half_width", "half width of the occluder panel, m"),
    ("distractor_probability", "probability of a second object sliding on a track behind"),
    ("shift", "continuity: teleport distance, m"),
    ("scale", "shape: size factor of the size-change variant"),
    ("restitution", "solidity: restitution of object and wall"),
    ("duration_s", "episode length, s"),
];

pub(crate) fn info(kind: ViolationKind) -> FamilyInfo {
    let (name, description) = match kind {
        ViolationKind::Permanence => (
            "voe-permanence",
            "IntPhys object permanence: an object vanishes or appears behind an occluder (quadruplets).",
        ),
        ViolationKind::Continuity => (
            "voe-continuity",
            "IntPhys spatio-temporal continuity: an object teleports behind an occluder (quadruplets).",
        ),
        ViolationKind::Shape => {
            ("voe-shape", "IntPhys shape constancy: an object changes shape or size behind an occluder (quadruplets).")
        }
        ViolationKind::Solidity => {
            ("voe-solidity", "Solidity: an object passes through a wall, or bounces off empty space (quadruplets).")
        }
        ViolationKind::Gravity => (
            "voe-gravity",
            "Gravity: an object leaving a platform floats, or one on a platform falls up (quadruplets).",
        ),
    };
    FamilyInfo {
        name,
        kind: FamilyKind::Voe,
        description,
        params: PARAMS,
        heldout: "faster objects: speeds in `heldout_speed`",
        labels: "quadruplet (member, possible), violation (kind, detail, object, frame, occluded), final_positions",
    }
}

/// Parameters of the VoE families.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[0.5, 0.9]` m/s.
    pub speed: Range,
    /// Default `[0.95, 1.2]` m/s.
    pub heldout_speed: Range,
    /// Default `[0.06, 0.1]` m.
    pub size: Range,
    /// Default `[0.3, 0.45]` m.
    pub occluder_half_width: Range,
    /// Default 0.5.
    pub distractor_probability: f32,
    /// Default `[0.12, 0.25]` m.
    pub shift: Range,
    /// Default `[1.3, 1.6]`.
    pub scale: Range,
    /// Default `[0.3, 0.8]`.
    pub restitution: Range,
    /// Default 4 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            speed: Range::new(0.5, 0.9),
            heldout_speed: Range::new(0.95, 1.2),
            size: Range::new(0.06, 0.1),
            occluder_half_width: Range::new(0.3, 0.45),
            distractor_probability: 0.5,
            shift: Range::new(0.12, 0.25),
            scale: Range::new(1.3, 1.6),
            restitution: Range::new(0.3, 0.8),
            duration_s: 4.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("voe", self.fov_y_deg)?;
        self.speed.validate("voe.speed", 0.05, 5.0)?;
        self.heldout_speed.validate("voe.heldout_speed", 0.05, 5.0)?;
        self.size.validate("voe.size", 0.02, 0.2)?;
        self.occluder_half_width.validate("voe.occluder_half_width", 0.1, 1.5)?;
        Range::new(self.distractor_probability, self.distractor_probability).validate(
            "voe.distractor_probability",
            0.0,
            1.0,
        )?;
        self.shift.validate("voe.shift", 0.02, 1.0)?;
        self.scale.validate("voe.scale", 1.05, 3.0)?;
        self.restitution.validate("voe.restitution", 0.0, 0.95)?;
        Range::new(self.duration_s, self.duration_s).validate("voe.duration_s", 1.0, 60.0)
    }
}

/// Shared layout: a frictionless floor, the target (slot 0) sliding along +x on `z = 0`
/// toward `x_mid`, an optional distractor (slot 1) on a track behind.
struct Layout {
    scene: Scene,
    x_mid: f32,
    size: f32,
    speed: f32,
    occluder_half_width: f32,
}

fn layout(s: &mut Sampler, p: &Params, split: Split, occluder: bool) -> Layout {
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    scene.statics.push(common::floor(0.0, 0.0));
    let x_mid = s.uniform(-0.3, 0.3);
    let speed = s.range(if split.is_heldout() { p.heldout_speed } else { p.speed });
    let size = s.range(p.size);
    let t_mid = s.uniform(1.4, 2.0);
    let shape = match s.int(0, 2) {
        0 => Shape::Sphere { radius: size },
        1 => Shape::Box { half_extents: [size; 3] },
        _ => Shape::Cylinder { half_height: size, radius: size },
    };
    let mut target =
        ObjectSpec::new("target", shape, Mass::Kg(s.uniform(0.2, 1.0)), [x_mid - speed * t_mid, size, 0.0]);
    target.linvel = [speed, 0.0, 0.0];
    target.friction = 0.0;
    target.restitution = 0.0;
    target.color = AGENT_RED;
    scene.objects.push(target);
    if s.chance(p.distractor_probability) {
        let dsz = s.range(p.size);
        let dir = if s.chance(0.5) { 1.0 } else { -1.0 };
        let dsp = s.uniform(0.3, 1.0);
        let mut d = ObjectSpec::new(
            "distractor",
            Shape::Sphere { radius: dsz },
            Mass::Kg(s.uniform(0.2, 1.0)),
            [s.uniform(-2.5, 2.5), dsz, 0.8],
        );
        d.linvel = [dir * dsp, 0.0, 0.0];
        d.friction = 0.0;
        d.restitution = 0.0;
        d.color = common::color(s);
        scene.objects.push(d);
    }
    let w = s.range(p.occluder_half_width);
    if occluder {
        let mut panel = StaticSpec::new("occluder", StaticRole::Occluder, [w, 0.4, 0.01], [x_mid, 0.4, -0.5]);
        panel.color = [0.3, 0.5, 0.8];
        scene.statics.push(panel);
    }
    scene.camera = common::camera(s, [x_mid * 0.5, 0.25, 0.0], 0.15, (3.0, 3.8), (0.4, 0.8));
    common::sample_fov(s, &mut scene.camera, p.fov_y_deg);
    Layout { scene, x_mid, size, speed, occluder_half_width: w }
}

fn sim(scene: &Scene, iv: &[(u32, Intervention)]) -> Result<std::result::Result<Episode, Rejection>> {
    common::run(scene, iv)
}

macro_rules! accept {
    ($e:expr) => {
        match {
            let (scene, ivs) = $e;
            sim(scene, ivs)?
        } {
            Ok(ep) => ep,
            Err(r) => return Ok(Err(r)),
        }
    };
}

/// The target rebuilt at frame `f` with `shape` and its state in `e` at that frame.
fn rebuilt(e: &Episode, f: u32, shape: Shape) -> Intervention {
    let st = e.frames[f as usize].objects[0];
    Intervention::Replace {
        object: 0,
        shape,
        position: st.position,
        rotation: st.rotation,
        linvel: st.linvel,
        angvel: st.angvel,
    }
}

/// The middle frame of the longest run of frames in which the target is hidden behind the
/// occluder (invisible and within its span) in every given episode.
fn hidden_frame(eps: &[&Episode], x_mid: f32, w: f32) -> Option<u32> {
    let n = eps.iter().map(|e| e.frames.len()).min()?;
    let hidden = |f: usize| {
        eps.iter().all(|e| {
            let o = &e.frames[f].objects[0];
            o.present && !o.visible && (o.position[0] - x_mid).abs() < w
        })
    };
    let (mut best, mut run_start) = ((0usize, 0usize), None);
    for f in 0..=n {
        match (f < n && hidden(f), run_start) {
            (true, None) => run_start = Some(f),
            (false, Some(st)) => {
                if f - st > best.1 - best.0 {
                    best = (st, f);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    (best.1 - best.0 >= 3).then(|| ((best.0 + best.1) / 2) as u32)
}

pub(crate) fn sample(kind: ViolationKind, p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let occluded = matches!(kind, ViolationKind::Permanence | ViolationKind::Continuity | ViolationKind::Shape);
    let mut l = layout(&mut s, p, split, occluded);
    let no_hide = || Ok(Err(Rejection::family("the switch could not be hidden behind the occluder in both scenes")));
    let (a, b, xa, xb, detail_a, detail_b, v);
    match kind {
        ViolationKind::Permanence => {
            let scene_a = l.scene.clone();
            let mut scene_b = l.scene.clone();
            scene_b.objects[0].present = false;
            let a0 = accept!((&scene_a, &[] as &[(u32, Intervention)]));
            let Some(f) = hidden_frame(&[&a0], l.x_mid, l.occluder_half_width) else { return no_hide() };
            let shape = scene_a.objects[0].shape;
            a = accept!((&scene_a, &[(f, rebuilt(&a0, f, shape))]));
            b = accept!((&scene_b, &[] as &[(u32, Intervention)]));
            xa = accept!((&scene_a, &[(f, Intervention::Remove { object: 0 })]));
            xb = accept!((&scene_b, &[(f, rebuilt(&a0, f, shape))]));
            (detail_a, detail_b, v) = ("vanishes", "appears", f);
        }
        ViolationKind::Continuity => {
            let scene_a = l.scene.clone();
            let mut scene_b = l.scene.clone();
            scene_b.objects[0].position[0] += s.range(p.shift);
            let a0 = accept!((&scene_a, &[] as &[(u32, Intervention)]));
            let b0 = accept!((&scene_b, &[] as &[(u32, Intervention)]));
            let Some(f) = hidden_frame(&[&a0, &b0], l.x_mid, l.occluder_half_width) else { return no_hide() };
            let shape = scene_a.objects[0].shape;
            a = accept!((&scene_a, &[(f, rebuilt(&a0, f, shape))]));
            b = accept!((&scene_b, &[(f, rebuilt(&b0, f, shape))]));
            xa = accept!((&scene_a, &[(f, rebuilt(&b0, f, shape))]));
            xb = accept!((&scene_b, &[(f, rebuilt(&a0, f, shape))]));
            (detail_a, detail_b, v) = ("teleports-forward", "teleports-back", f);
        }
        ViolationKind::Shape => {
            let scene_a = l.scene.clone();
            let mut scene_b = l.scene.clone();
            let size = l.size;
            let s1 = scene_a.objects[0].shape;
            let change_kind = s.chance(0.5);
            let s2 = if change_kind {
                match s1 {
                    Shape::Sphere { .. } => Shape::Box { half_extents: [size; 3] },
                    _ => Shape::Sphere { radius: size },
                }
            } else {
                let k = s.range(p.scale);
                match s1 {
                    Shape::Sphere { radius } => Shape::Sphere { radius: radius * k },
                    Shape::Box { half_extents: h } => Shape::Box { half_extents: [h[0] * k, h[1] * k, h[2] * k] },
                    Shape::Cylinder { half_height, radius } => {
                        Shape::Cylinder { half_height: half_height * k, radius: radius * k }
                    }
                    Shape::Capsule { half_height, radius } => {
                        Shape::Capsule { half_height: half_height * k, radius: radius * k }
                    }
                }
            };
            let dy = s2.half_extents()[1] - s1.half_extents()[1];
            scene_b.objects[0].shape = s2;
            scene_b.objects[0].position[1] += dy;
            let a0 = accept!((&scene_a, &[] as &[(u32, Intervention)]));
            let b0 = accept!((&scene_b, &[] as &[(u32, Intervention)]));
            let Some(f) = hidden_frame(&[&a0, &b0], l.x_mid, l.occluder_half_width) else { return no_hide() };
            a = accept!((&scene_a, &[(f, rebuilt(&a0, f, s1))]));
            b = accept!((&scene_b, &[(f, rebuilt(&b0, f, s2))]));
            xa = accept!((&scene_a, &[(f, rebuilt(&b0, f, s2))]));
            xb = accept!((&scene_b, &[(f, rebuilt(&a0, f, s1))]));
            let d = if change_kind { "changes-shape" } else { "changes-size" };
            (detail_a, detail_b, v) = (d, d, f);
        }
        ViolationKind::Solidity => {
            let e = s.range(p.restitution);
            l.scene.objects[0].restitution = e;
            let t_hit = s.uniform(1.3, 1.8);
            let start = l.scene.objects[0].position[0];
            let wx = start + l.speed * t_hit + l.size + 0.03;
            let mut wall = StaticSpec::new("wall", StaticRole::Wall, [0.03, 0.2, 0.3], [wx, 0.2, 0.0]);
            wall.restitution = e;
            wall.friction = 0.0;
            wall.color = [0.5, 0.4, 0.3];
            let mut scene_a = l.scene.clone();
            scene_a.statics.push(wall.clone());
            let wall_index = scene_a.statics.len() - 1;
            let scene_b = l.scene.clone();
            a = accept!((&scene_a, &[] as &[(u32, Intervention)]));
            b = accept!((&scene_b, &[] as &[(u32, Intervention)]));
            let hit = a.frames.iter().position(|fr| {
                fr.contacts
                    .iter()
                    .any(|c| c.a == crate::Body::Object(0) && c.b == crate::Body::Static(wall_index as u16))
            });
            let Some(f) = hit.filter(|&f| f >= 2).map(|f| f as u32 - 1) else {
                return Ok(Err(Rejection::family("the object never reached the wall")));
            };
            xa = accept!((&scene_a, &[(f, Intervention::PassThrough { object: 0, statics: wall_index })]));
            let hidden =
                Intervention::HiddenSolid { half_extents: wall.half_extents, position: wall.position, restitution: e };
            xb = accept!((&scene_b, &[(f, hidden)]));
            (detail_a, detail_b, v) = ("passes-through", "repelled-by-empty-space", f);
        }
        ViolationKind::Gravity => {
            let hp = s.uniform(0.25, 0.4);
            let t_edge = s.uniform(1.2, 1.8);
            let start = l.scene.objects[0].position[0];
            let edge = start + l.speed * t_edge;
            for o in &mut l.scene.objects {
                o.position[1] += hp;
            }
            let platform = |right: f32| {
                let left = -3.0;
                let mut st = StaticSpec::new(
                    "platform",
                    StaticRole::Table,
                    [(right - left) * 0.5, hp * 0.5, 0.4],
                    [(right + left) * 0.5, hp * 0.5, 0.0],
                );
                st.friction = 0.0;
                st.restitution = 0.0;
                st.color = [0.45, 0.45, 0.5];
                st
            };
            // The distractor track (z = 0.8) is beyond the platform's depth: keep it on the floor.
            if l.scene.objects.len() > 1 {
                l.scene.objects[1].position[1] -= hp;
            }
            let mut scene_a = l.scene.clone();
            scene_a.statics.push(platform(edge));
            let mut scene_b = l.scene.clone();
            scene_b.statics.push(platform(3.0));
            a = accept!((&scene_a, &[] as &[(u32, Intervention)]));
            b = accept!((&scene_b, &[] as &[(u32, Intervention)]));
            let Some(f) =
                a.frames.iter().rposition(|fr| fr.objects[0].position[0] < edge).filter(|&f| f >= 1).map(|f| f as u32)
            else {
                return Ok(Err(Rejection::family("the object never reached the platform edge")));
            };
            if f as usize + 5 >= a.frames.len() {
                return Ok(Err(Rejection::family("the object reached the edge too late")));
            }
            xa = accept!((&scene_a, &[(f, Intervention::GravityScale { object: 0, scale: 0.0 })]));
            xb = accept!((&scene_b, &[(f, Intervention::GravityScale { object: 0, scale: -0.5 })]));
            (detail_a, detail_b, v) = ("floats", "falls-up", f);
        }
    }
    let occluded_at = |e: &Episode| occluded && !e.frames[v as usize].objects[0].visible;
    let mut out = Vec::with_capacity(4);
    for (member, mut ep, detail) in [(0u8, a, None), (1, b, None), (2, xa, Some(detail_a)), (3, xb, Some(detail_b))] {
        ep.labels.quadruplet = Some(QuadrupletMember { member, possible: detail.is_none() });
        if let Some(d) = detail {
            ep.labels.violation =
                Some(Violation { kind, detail: d.to_string(), object: 0, frame: v, occluded: occluded_at(&ep) });
        }
        out.push(ep);
    }
    Ok(Ok(Sample { episodes: out, rejected: Vec::new() }))
}
