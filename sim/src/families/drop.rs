//! `drop`: objects released from rest above a target lying on the floor.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, IntRange, Outcome, Range, single};
use crate::error::Result;
use crate::scene::{ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, ShapeKind, SimConfig};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "drop",
    kind: FamilyKind::Physion,
    description: "Objects dropped from rest onto a target on the floor; does the red agent hit the yellow patient?",
    params: &[
        ("count", "total objects, patient included (integers, 2..=16)"),
        ("height", "release height of the agent's centre in train/val/readout, m"),
        ("heldout_height", "release height band used only by test, m"),
        ("offset", "horizontal distance of the agent from the patient, m"),
        ("spread", "half width of the square the other objects are released over, m"),
        ("size", "characteristic size (radius / half extent), m"),
        ("mass", "mass, kg"),
        ("friction", "friction coefficient"),
        ("restitution", "restitution coefficient"),
        ("shapes", "shape kinds to draw from: any of sphere, box, cylinder, capsule (the patient uses box/cylinder)"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "agent release heights in `heldout_height` (train draws from `height`)",
    labels: "contact (agent→patient), first_floor_contact, final_positions",
};

/// Parameters of `drop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Total objects including the patient. Default `[3, 5]`.
    pub count: IntRange,
    /// Agent release height (train). Default `[0.4, 1.5]` m.
    pub height: Range,
    /// Agent release height (test). Default `[1.5, 2.0]` m.
    pub heldout_height: Range,
    /// Agent horizontal offset from the patient. Default `[0.0, 0.45]` m.
    pub offset: Range,
    /// Distractor spread. Default `[0.5, 0.5]` m.
    pub spread: Range,
    /// Size. Default `[0.05, 0.12]` m.
    pub size: Range,
    /// Mass. Default `[0.2, 3.0]` kg.
    pub mass: Range,
    /// Friction. Default `[0.3, 0.8]`.
    pub friction: Range,
    /// Restitution. Default `[0.0, 0.6]`.
    pub restitution: Range,
    /// Shape kinds. Default all four.
    pub shapes: Vec<ShapeKind>,
    /// Duration. Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            count: IntRange::new(3, 5),
            height: Range::new(0.4, 1.5),
            heldout_height: Range::new(1.5, 2.0),
            offset: Range::new(0.0, 0.45),
            spread: Range::new(0.5, 0.5),
            size: Range::new(0.05, 0.12),
            mass: Range::new(0.2, 3.0),
            friction: Range::new(0.3, 0.8),
            restitution: Range::new(0.0, 0.6),
            shapes: common::ALL_KINDS.to_vec(),
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("drop", self.fov_y_deg)?;
        self.count.validate("drop.count", 2, 16)?;
        self.height.validate("drop.height", 0.3, 10.0)?;
        self.heldout_height.validate("drop.heldout_height", 0.3, 10.0)?;
        self.offset.validate("drop.offset", 0.0, 3.0)?;
        self.spread.validate("drop.spread", 0.0, 5.0)?;
        self.size.validate("drop.size", 0.01, 0.5)?;
        self.mass.validate("drop.mass", 0.001, 1000.0)?;
        self.friction.validate("drop.friction", 0.0, 2.0)?;
        self.restitution.validate("drop.restitution", 0.0, 0.95)?;
        if self.shapes.is_empty() {
            return Err(crate::SimError::invalid(
                "drop.shapes",
                "[]",
                "a non-empty list of sphere, box, cylinder, capsule",
            ));
        }
        Range::new(self.duration_s, self.duration_s).validate("drop.duration_s", 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    scene.statics.push(common::floor(s.range(p.friction), s.range(p.restitution)));
    let count = s.int(p.count.min, p.count.max) as usize;

    // Patient: resting on the floor at the origin.
    let ps = s.range(p.size).max(0.06);
    // The patient must rest where it is: no spheres or capsules, which would roll.
    let resting: Vec<ShapeKind> =
        p.shapes.iter().copied().filter(|k| matches!(k, ShapeKind::Box | ShapeKind::Cylinder)).collect();
    let patient_shape = common::shape(&mut s, ps, if resting.is_empty() { &[ShapeKind::Box] } else { &resting });
    let ph = patient_shape.half_extents()[1];
    let mut patient = ObjectSpec::new("patient", patient_shape, Mass::Kg(s.range(p.mass)), [0.0, ph, 0.0]);
    patient.color = PATIENT_YELLOW;
    patient.rotation = common::yaw(&mut s);

    // Agent: above the patient at a horizontal offset.
    let h = s.range(if split.is_heldout() { p.heldout_height } else { p.height });
    let az = s.uniform(0.0, std::f32::consts::TAU);
    let off = s.range(p.offset);
    let asz = s.range(p.size);
    let agent_shape = common::shape(&mut s, asz, &p.shapes);
    let mut agent = ObjectSpec::new(
        "agent",
        agent_shape,
        Mass::Kg(s.range(p.mass)),
        [off * libm::cosf(az), h.max(2.0 * ph + agent_shape.bounding_radius() + 0.05), off * libm::sinf(az)],
    );
    agent.color = AGENT_RED;
    agent.rotation = common::yaw(&mut s);

    let mut placed =
        vec![(agent.position, agent_shape.bounding_radius()), (patient.position, patient_shape.bounding_radius())];
    let mut objects = vec![agent, patient];
    for k in 2..count {
        let sz = s.range(p.size);
        let shape = common::shape(&mut s, sz, &p.shapes);
        let r = shape.bounding_radius();
        let spread = s.range(p.spread);
        let mut pos = [0.0; 3];
        for _ in 0..32 {
            pos = [s.uniform(-spread, spread), s.uniform(0.4, 2.0), s.uniform(-spread, spread)];
            if !placed.iter().any(|&(q, rq)| common::overlaps(pos, r, q, rq, 0.01)) {
                break;
            }
        }
        placed.push((pos, r));
        let mut o = ObjectSpec::new(format!("object{k}"), shape, Mass::Kg(s.range(p.mass)), pos);
        o.color = common::color(&mut s);
        o.rotation = common::yaw(&mut s);
        objects.push(o);
    }
    for o in &mut objects {
        o.friction = s.range(p.friction);
        o.restitution = s.range(p.restitution);
    }
    scene.objects = objects;
    scene.camera = common::camera(&mut s, [0.0, 0.4, 0.0], 0.6, (2.5, 3.5), (0.8, 1.8));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Object(1) });
    Ok(single(common::run(&scene, &[])?))
}
