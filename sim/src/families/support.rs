//! `support`: towers of blocks that do or don't fall.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, IntRange, Outcome, Range, Sample};
use crate::error::Result;
use crate::math::{dist, quat_angle_between};
use crate::scene::{ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, Shape, SimConfig};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "support",
    kind: FamilyKind::Physion,
    description: "A tower of blocks with random offsets; does it fall, and does its top block (red) touch the yellow target?",
    params: &[
        ("levels", "blocks in the tower (integers, 2..=12)"),
        ("half_width", "block half width, m"),
        ("half_height", "block half height, m"),
        ("offset", "horizontal offset of each block over the one below, as a fraction of the half width"),
        ("target_distance", "distance of the target from the tower axis, m"),
        ("mass", "block mass, kg"),
        ("friction", "friction coefficient"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "cylindrical blocks (train, val and readout towers are boxes)",
    labels: "tower_fell, contact (top block→target), first_floor_contact, final_positions",
};

/// Parameters of `support`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[2, 5]`.
    pub levels: IntRange,
    /// Default `[0.06, 0.1]` m.
    pub half_width: Range,
    /// Default `[0.04, 0.08]` m.
    pub half_height: Range,
    /// Default `[0.0, 1.1]`.
    pub offset: Range,
    /// Default `[0.0, 0.25]` m.
    pub target_distance: Range,
    /// Default `[0.1, 1.0]` kg.
    pub mass: Range,
    /// Default `[0.4, 0.8]`.
    pub friction: Range,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            levels: IntRange::new(2, 5),
            half_width: Range::new(0.06, 0.1),
            half_height: Range::new(0.04, 0.08),
            offset: Range::new(0.0, 1.1),
            target_distance: Range::new(0.0, 0.25),
            mass: Range::new(0.1, 1.0),
            friction: Range::new(0.4, 0.8),
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("support", self.fov_y_deg)?;
        self.levels.validate("support.levels", 2, 12)?;
        self.half_width.validate("support.half_width", 0.02, 0.5)?;
        self.half_height.validate("support.half_height", 0.01, 0.5)?;
        self.offset.validate("support.offset", 0.0, 1.5)?;
        self.target_distance.validate("support.target_distance", 0.0, 3.0)?;
        self.mass.validate("support.mass", 0.001, 100.0)?;
        self.friction.validate("support.friction", 0.0, 2.0)?;
        Range::new(self.duration_s, self.duration_s).validate("support.duration_s", 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    let friction = s.range(p.friction);
    scene.statics.push(common::floor(friction, 0.1));
    let levels = s.int(p.levels.min, p.levels.max) as usize;
    let (mut x, mut z, mut y) = (0.0f32, 0.0f32, 0.0f32);
    let lean = s.uniform(0.0, std::f32::consts::TAU);
    let mut base_hw = 0.0f32;
    for i in 0..levels {
        let hw = s.range(p.half_width);
        let hh = s.range(p.half_height);
        if i == 0 {
            base_hw = hw;
        }
        let shape = if split.is_heldout() {
            Shape::Cylinder { half_height: hh, radius: hw }
        } else {
            Shape::Box { half_extents: [hw, hh, hw] }
        };
        if i > 0 {
            // Offsets lean mostly one way so that some towers topple.
            let a = lean + s.uniform(-0.6, 0.6);
            let o = s.range(p.offset) * hw;
            x += o * libm::cosf(a);
            z += o * libm::sinf(a);
        }
        let mut b = ObjectSpec::new(format!("block{i}"), shape, Mass::Kg(s.range(p.mass)), [x, y + hh, z]);
        b.friction = friction;
        b.restitution = 0.05;
        b.color = if i == levels - 1 { AGENT_RED } else { common::color(&mut s) };
        y += 2.0 * hh;
        scene.objects.push(b);
    }
    // The target's near edge sits `target_distance` beyond the base block's corner.
    let d = s.range(p.target_distance) + base_hw * std::f32::consts::SQRT_2 + 0.12 * std::f32::consts::SQRT_2 + 0.01;
    let a = lean + s.uniform(-0.8, 0.8);
    let th = s.uniform(0.03, 0.05);
    let mut target = ObjectSpec::new(
        "target",
        Shape::Box { half_extents: [0.12, th, 0.12] },
        Mass::Kg(s.uniform(0.2, 1.0)),
        [d * libm::cosf(a), th, d * libm::sinf(a)],
    );
    target.color = PATIENT_YELLOW;
    target.friction = friction;
    scene.objects.push(target);
    scene.camera = common::camera(&mut s, [0.0, y * 0.4, 0.0], 0.8, (1.8, 2.8), (0.5, 1.5));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: levels - 1, patient: ContactTarget::Object(levels) });
    let mut ep = match common::run(&scene, &[])? {
        Ok(e) => e,
        Err(r) => return Ok(Err(r)),
    };
    // The tower fell if any block moved by more than its half height or tilted past 20°.
    let first = &ep.frames[0];
    let last = &ep.frames[ep.frames.len() - 1];
    let fell = (0..levels).any(|i| {
        let (a, b) = (&first.objects[i], &last.objects[i]);
        dist(a.position, b.position) > a.size[1] || quat_angle_between(a.rotation, b.rotation) > 20f32.to_radians()
    });
    ep.labels.tower_fell = Some(fell);
    Ok(Ok(Sample::one(ep)))
}
