//! `dominoes`: a row of dominoes toppled from one end toward a target.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, IntRange, Outcome, Range, single};
use crate::error::Result;
use crate::math::quat_axis_angle;
use crate::scene::{ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, Shape, SimConfig};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "dominoes",
    kind: FamilyKind::Physion,
    description: "A row of dominoes pushed from one end; does the last domino (red) reach the yellow target?",
    params: &[
        ("count", "number of dominoes (integers, 2..=40)"),
        ("half_height", "domino half height in train/val/readout, m"),
        ("heldout_half_height", "domino half height band used only by test, m"),
        ("spacing", "centre spacing as a fraction of domino height"),
        ("gap_probability", "probability that one random gap is widened"),
        ("gap_factor", "factor the widened gap is multiplied by"),
        ("twist_probability", "probability that one domino is turned about y"),
        ("push", "initial tipping angular speed of the first domino, rad/s"),
        ("mass", "domino mass, kg"),
        ("friction", "friction coefficient"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "taller dominoes: half heights in `heldout_half_height` (train draws from `half_height`)",
    labels: "contact (last domino→target), first_floor_contact, final_positions",
};

/// Parameters of `dominoes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Dominoes. Default `[4, 8]`.
    pub count: IntRange,
    /// Half height (train). Default `[0.08, 0.11]` m.
    pub half_height: Range,
    /// Half height (test). Default `[0.12, 0.14]` m.
    pub heldout_half_height: Range,
    /// Spacing / height. Default `[0.45, 0.9]`.
    pub spacing: Range,
    /// Default 0.6.
    pub gap_probability: f32,
    /// Default `[1.5, 2.5]`.
    pub gap_factor: Range,
    /// Default 0.2.
    pub twist_probability: f32,
    /// Default `[3.0, 5.0]` rad/s.
    pub push: Range,
    /// Default `[0.05, 0.2]` kg.
    pub mass: Range,
    /// Default `[0.3, 0.7]`.
    pub friction: Range,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            count: IntRange::new(4, 8),
            half_height: Range::new(0.08, 0.11),
            heldout_half_height: Range::new(0.12, 0.14),
            spacing: Range::new(0.45, 0.9),
            gap_probability: 0.6,
            gap_factor: Range::new(1.5, 2.5),
            twist_probability: 0.2,
            push: Range::new(3.0, 5.0),
            mass: Range::new(0.05, 0.2),
            friction: Range::new(0.3, 0.7),
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("dominoes", self.fov_y_deg)?;
        self.count.validate("dominoes.count", 2, 40)?;
        self.half_height.validate("dominoes.half_height", 0.02, 0.5)?;
        self.heldout_half_height.validate("dominoes.heldout_half_height", 0.02, 0.5)?;
        self.spacing.validate("dominoes.spacing", 0.2, 3.0)?;
        Range::new(self.gap_probability, self.gap_probability).validate("dominoes.gap_probability", 0.0, 1.0)?;
        self.gap_factor.validate("dominoes.gap_factor", 1.0, 5.0)?;
        Range::new(self.twist_probability, self.twist_probability).validate("dominoes.twist_probability", 0.0, 1.0)?;
        self.push.validate("dominoes.push", 0.0, 20.0)?;
        self.mass.validate("dominoes.mass", 0.001, 100.0)?;
        self.friction.validate("dominoes.friction", 0.0, 2.0)?;
        Range::new(self.duration_s, self.duration_s).validate("dominoes.duration_s", 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    scene.statics.push(common::floor(s.range(p.friction), 0.1));
    let n = s.int(p.count.min, p.count.max) as usize;
    let hh = s.range(if split.is_heldout() { p.heldout_half_height } else { p.half_height });
    let (hx, hz) = (hh * 0.12, hh * 0.5);
    let spacing = s.range(p.spacing) * 2.0 * hh;
    let gap =
        if s.chance(p.gap_probability) { Some((s.int(0, n as u32 - 1) as usize, s.range(p.gap_factor))) } else { None };
    let twist =
        if s.chance(p.twist_probability) { Some((s.int(1, n as u32 - 1) as usize, s.uniform(0.5, 1.4))) } else { None };
    let heading = s.uniform(-0.5, 0.5);
    let dir = [libm::cosf(heading), 0.0, libm::sinf(heading)];
    let yaw = quat_axis_angle([0.0, 1.0, 0.0], -heading);
    let mass = s.range(p.mass);
    let friction = s.range(p.friction);
    let start = -(n as f32) * spacing * 0.5;
    let mut x = start;
    for i in 0..n {
        if i > 0 {
            x += spacing * gap.filter(|g| g.0 == i).map_or(1.0, |g| g.1);
        }
        let mut d = ObjectSpec::new(
            format!("domino{i}"),
            Shape::Box { half_extents: [hx, hh, hz] },
            Mass::Kg(mass),
            [x * dir[0], hh, x * dir[2]],
        );
        d.rotation = yaw;
        if let Some((_, angle)) = twist.filter(|t| t.0 == i) {
            d.rotation = crate::math::quat_mul(quat_axis_angle([0.0, 1.0, 0.0], angle), yaw);
        }
        d.friction = friction;
        d.restitution = 0.1;
        d.color = if i == n - 1 { AGENT_RED } else { common::color(&mut s) };
        if i == 0 {
            // Tip the first domino toward +heading about its base.
            let w = s.range(p.push);
            let axis = crate::math::cross([0.0, 1.0, 0.0], dir);
            d.angvel = crate::math::scale(axis, w);
            d.linvel = crate::math::scale(dir, w * hh);
        }
        scene.objects.push(d);
    }
    let th = s.uniform(0.04, 0.08);
    let tx = x + spacing + th;
    let mut target = ObjectSpec::new(
        "target",
        Shape::Box { half_extents: [th, th, th * 1.5] },
        Mass::Kg(s.uniform(0.1, 0.5)),
        [tx * dir[0], th, tx * dir[2]],
    );
    target.rotation = yaw;
    target.color = PATIENT_YELLOW;
    target.friction = friction;
    scene.objects.push(target);
    let mid = (start + tx) * 0.5;
    scene.camera = common::camera(&mut s, [mid * dir[0], 0.15, mid * dir[2]], 0.5, (2.0, 3.0), (0.6, 1.4));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: n - 1, patient: ContactTarget::Object(n) });
    Ok(single(common::run(&scene, &[])?))
}
