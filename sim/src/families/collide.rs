//! `collide`: an object slides or rolls toward another and hits or misses it.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, Outcome, Range, single};
use crate::error::Result;
use crate::scene::{ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, SimConfig};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "collide",
    kind: FamilyKind::Physion,
    description: "A red object is launched along the floor toward a yellow one with an aiming error; do they collide?",
    params: &[
        ("distance", "start distance between agent and patient, m"),
        ("speed", "launch speed, m/s"),
        ("aim_error", "largest aiming error, degrees"),
        ("heldout_sector", "approach azimuth band used only by test, degrees [from, to)"),
        ("size", "characteristic size, m"),
        ("mass", "mass, kg"),
        ("friction", "friction coefficient"),
        ("distractors", "extra resting objects (0..=6)"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "approach azimuths inside `heldout_sector` (train draws from the rest of the circle)",
    labels: "contact (agent→patient), final_positions",
};

/// Parameters of `collide`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[0.6, 1.2]` m.
    pub distance: Range,
    /// Default `[1.0, 3.0]` m/s.
    pub speed: Range,
    /// Default `[0.0, 15.0]` degrees.
    pub aim_error: Range,
    /// Default `[300, 360]` degrees.
    pub heldout_sector: Range,
    /// Default `[0.05, 0.1]` m.
    pub size: Range,
    /// Default `[0.2, 2.0]` kg.
    pub mass: Range,
    /// Default `[0.2, 0.6]`.
    pub friction: Range,
    /// Default 1.
    pub distractors: u32,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            distance: Range::new(0.6, 1.2),
            speed: Range::new(1.0, 3.0),
            aim_error: Range::new(0.0, 15.0),
            heldout_sector: Range::new(300.0, 360.0),
            size: Range::new(0.05, 0.1),
            mass: Range::new(0.2, 2.0),
            friction: Range::new(0.2, 0.6),
            distractors: 1,
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("collide", self.fov_y_deg)?;
        self.distance.validate("collide.distance", 0.2, 5.0)?;
        self.speed.validate("collide.speed", 0.0, 15.0)?;
        self.aim_error.validate("collide.aim_error", 0.0, 90.0)?;
        validate_sector("collide.heldout_sector", self.heldout_sector)?;
        self.size.validate("collide.size", 0.01, 0.5)?;
        self.mass.validate("collide.mass", 0.001, 100.0)?;
        self.friction.validate("collide.friction", 0.0, 2.0)?;
        if self.distractors > 6 {
            return Err(crate::SimError::invalid("collide.distractors", self.distractors, "an integer in 0..=6"));
        }
        Range::new(self.duration_s, self.duration_s).validate("collide.duration_s", 0.1, 60.0)
    }
}

/// Check a held-out azimuth band: within [0, 360] degrees and narrower than the circle.
pub(crate) fn validate_sector(field: &str, sector: Range) -> Result<()> {
    sector.validate(field, 0.0, 360.0)?;
    if sector.max - sector.min >= 360.0 {
        return Err(crate::SimError::invalid(field, format!("{sector:?}"), "a band narrower than 360 degrees"));
    }
    Ok(())
}

/// An azimuth (degrees) in the held-out sector for test, outside it otherwise.
pub(crate) fn azimuth(s: &mut Sampler, sector: Range, heldout: bool) -> f32 {
    let width = sector.max - sector.min;
    let deg =
        if heldout { s.uniform(sector.min, sector.max) } else { (sector.max + s.uniform(0.0, 360.0 - width)) % 360.0 };
    deg.to_radians()
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    let friction = s.range(p.friction);
    scene.statics.push(common::floor(friction, 0.2));
    let psz = s.range(p.size);
    let pshape = common::shape(&mut s, psz, &common::SOLID_KINDS);
    let mut patient =
        ObjectSpec::new("patient", pshape, Mass::Kg(s.range(p.mass)), [0.0, pshape.half_extents()[1], 0.0]);
    patient.color = PATIENT_YELLOW;
    patient.friction = friction;
    let az = azimuth(&mut s, p.heldout_sector, split.is_heldout());
    let d = s.range(p.distance);
    let asz = s.range(p.size);
    let ashape = common::shape(&mut s, asz, &common::SOLID_KINDS);
    let start = [d * libm::cosf(az), ashape.half_extents()[1] + 0.001, d * libm::sinf(az)];
    let err = s.range(p.aim_error).to_radians() * if s.chance(0.5) { 1.0 } else { -1.0 };
    let heading = az + std::f32::consts::PI + err;
    let speed = s.range(p.speed);
    let mut agent = ObjectSpec::new("agent", ashape, Mass::Kg(s.range(p.mass)), start);
    agent.linvel = [speed * libm::cosf(heading), 0.0, speed * libm::sinf(heading)];
    agent.color = AGENT_RED;
    agent.friction = friction;
    let mut placed = vec![(start, ashape.bounding_radius()), (patient.position, pshape.bounding_radius())];
    scene.objects = vec![agent, patient];
    for k in 0..p.distractors {
        let sz = s.range(p.size);
        let shape = common::shape(&mut s, sz, &common::SOLID_KINDS);
        let r = shape.bounding_radius();
        let mut pos = [0.0; 3];
        for _ in 0..32 {
            let (a, dd) = (s.uniform(0.0, std::f32::consts::TAU), s.uniform(0.4, 1.2));
            pos = [dd * libm::cosf(a), shape.half_extents()[1], dd * libm::sinf(a)];
            if !placed.iter().any(|&(q, rq)| common::overlaps(pos, r, q, rq, 0.05)) {
                break;
            }
        }
        placed.push((pos, r));
        let mut o = ObjectSpec::new(format!("distractor{k}"), shape, Mass::Kg(s.range(p.mass)), pos);
        o.color = common::color(&mut s);
        o.friction = friction;
        scene.objects.push(o);
    }
    scene.camera = common::camera(&mut s, [start[0] * 0.5, 0.1, start[2] * 0.5], 0.7, (2.2, 3.2), (0.8, 1.6));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Object(1) });
    Ok(single(common::run(&scene, &[])?))
}
