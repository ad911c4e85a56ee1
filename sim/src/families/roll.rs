//! `roll`: an object rolls or slides down a ramp toward a target.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, Outcome, Range, single};
use crate::error::Result;
use crate::math::{add, quat_axis_angle, quat_rotate, scale};
use crate::scene::{ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, Shape, SimConfig, StaticRole, StaticSpec};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "roll",
    kind: FamilyKind::Physion,
    description: "A red object released on a ramp rolls or slides toward a yellow target on the floor; does it reach it?",
    params: &[
        ("angle", "ramp inclination in train/val/readout, degrees"),
        ("heldout_angle", "ramp inclination band used only by test, degrees"),
        ("ramp_half_length", "half length of the ramp, m"),
        ("target_distance", "distance from the ramp's foot to the target, m"),
        ("lateral", "sideways offset of the target, m"),
        ("size", "agent size, m"),
        ("friction", "friction coefficient of ramp, floor and objects"),
        ("mass", "mass, kg"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "steeper ramps: inclinations in `heldout_angle`",
    labels: "contact (agent→target), final_positions",
};

/// Parameters of `roll`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[12, 28]` degrees.
    pub angle: Range,
    /// Default `[30, 38]` degrees.
    pub heldout_angle: Range,
    /// Default `[0.4, 0.6]` m.
    pub ramp_half_length: Range,
    /// Default `[0.2, 1.4]` m.
    pub target_distance: Range,
    /// Default `[-0.25, 0.25]` m.
    pub lateral: Range,
    /// Default `[0.04, 0.08]` m.
    pub size: Range,
    /// Default `[0.1, 0.9]`.
    pub friction: Range,
    /// Default `[0.2, 2.0]` kg.
    pub mass: Range,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            angle: Range::new(12.0, 28.0),
            heldout_angle: Range::new(30.0, 38.0),
            ramp_half_length: Range::new(0.4, 0.6),
            target_distance: Range::new(0.2, 1.4),
            lateral: Range::new(-0.25, 0.25),
            size: Range::new(0.04, 0.08),
            friction: Range::new(0.1, 0.9),
            mass: Range::new(0.2, 2.0),
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("roll", self.fov_y_deg)?;
        self.angle.validate("roll.angle", 1.0, 60.0)?;
        self.heldout_angle.validate("roll.heldout_angle", 1.0, 60.0)?;
        self.ramp_half_length.validate("roll.ramp_half_length", 0.1, 3.0)?;
        self.target_distance.validate("roll.target_distance", 0.0, 5.0)?;
        self.lateral.validate("roll.lateral", -2.0, 2.0)?;
        self.size.validate("roll.size", 0.01, 0.3)?;
        self.friction.validate("roll.friction", 0.0, 2.0)?;
        self.mass.validate("roll.mass", 0.001, 100.0)?;
        Range::new(self.duration_s, self.duration_s).validate("roll.duration_s", 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    let friction = s.range(p.friction);
    scene.statics.push(common::floor(friction, 0.1));
    let theta = s.range(if split.is_heldout() { p.heldout_angle } else { p.angle }).to_radians();
    let l = s.range(p.ramp_half_length);
    let h = 0.02;
    // Rotating by -theta about z lowers the ramp's +x end; its top face's lower edge meets
    // the floor at x = 0.
    let rot = quat_axis_angle([0.0, 0.0, 1.0], -theta);
    let (st, ct) = (libm::sinf(theta), libm::cosf(theta));
    let center = [-l * ct - h * st, l * st - h * ct, 0.0];
    let mut ramp = StaticSpec::new("ramp", StaticRole::Ramp, [l, h, 0.3], center);
    ramp.rotation = rot;
    ramp.friction = friction;
    ramp.color = common::color(&mut s);
    scene.statics.push(ramp);

    let sz = s.range(p.size);
    let kind = s.int(0, 2);
    let (shape, arot) = match kind {
        0 => (Shape::Sphere { radius: sz }, rot),
        // A cylinder lying across the ramp rolls about its axis (local y turned to z).
        1 => (
            Shape::Cylinder { half_height: sz * 1.2, radius: sz },
            crate::math::quat_mul(rot, quat_axis_angle([1.0, 0.0, 0.0], std::f32::consts::FRAC_PI_2)),
        ),
        _ => (Shape::Box { half_extents: [sz, sz, sz] }, rot),
    };
    let normal = quat_rotate(rot, [0.0, 1.0, 0.0]);
    let along = s.uniform(0.5, 0.8) * l;
    let top = add(center, quat_rotate(rot, [-along, h, 0.0]));
    let lift = if kind == 1 { sz } else { shape.half_extents()[1] };
    let mut agent = ObjectSpec::new("agent", shape, Mass::Kg(s.range(p.mass)), add(top, scale(normal, lift + 0.002)));
    agent.rotation = arot;
    agent.friction = friction;
    agent.color = AGENT_RED;
    let d = s.range(p.target_distance);
    let ts = s.uniform(0.04, 0.08);
    let mut target = ObjectSpec::new(
        "target",
        Shape::Box { half_extents: [ts, ts, ts * 1.5] },
        Mass::Kg(s.range(p.mass)),
        [d + ts + 0.05, ts, s.range(p.lateral)],
    );
    target.friction = friction;
    target.color = PATIENT_YELLOW;
    scene.objects = vec![agent, target];
    scene.camera = common::camera(&mut s, [0.2, 0.2, 0.0], 0.6, (2.2, 3.0), (0.6, 1.4));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Object(1) });
    Ok(single(common::run(&scene, &[])?))
}
