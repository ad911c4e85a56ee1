//! `spring`: boxes of unknown mass and friction slide on the floor, each tied by a spring of
//! known stiffness to a fixed anchor, past a reference cylinder of known mass.
//!
//! Built so that the hidden properties can be inferred from motion, which no other family
//! allows for mass (there, at most mass *ratios* between objects of unknown mass show):
//! - mass: the spring pulls with `k × offset` and `k` is the same in every episode, so the
//!   box's acceleration per metre of offset (`k / m`, the oscillation frequency squared)
//!   gives its mass in any window where it moves; so does a hit on the reference, whose
//!   shape, size, mass (1 kg) and friction (0.5) never change;
//! - friction: a box slides without rolling, so sliding friction decelerates it by `μ g`
//!   along its motion, with `μ` the average of its friction and the floor's, which is the
//!   same in every episode. Coulomb damping shrinks each swing by `2 μ m g / k`.
//!
//! The spring's anchor sits at the height of the box's centre (the pull is horizontal) and
//! has no collider: the box slides over it. Masses are drawn log-uniformly, so that
//! `log(mass)`, the probed quantity, is uniform.

use serde::{Deserialize, Serialize};

use super::collide::{azimuth, validate_sector};
use super::common::{self, AGENT_RED};
use super::{FamilyInfo, FamilyKind, IntRange, Outcome, Range, single};
use crate::error::Result;
use crate::scene::{
    ContactQuery, ContactTarget, JointEnd, JointKind, JointSpec, Mass, ObjectSpec, Scene, Shape, SimConfig,
};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "spring",
    kind: FamilyKind::Physion,
    description: "Boxes of unknown mass and friction slide on springs of known stiffness past reference cylinders of known mass; does the first box hit its cylinder?",
    params: &[
        ("boxes", "boxes, each with its own anchor and reference cylinder, 3 m apart (1..=4)"),
        ("stiffness", "spring stiffness, N/m (the same for every box)"),
        ("offset", "start distance of a box from its anchor, m"),
        ("speed", "start speed, m/s, in a uniformly random direction"),
        ("heldout_sector", "azimuth band of the start offset used only by test, degrees [from, to)"),
        ("size", "box half extent, m"),
        ("mass", "box mass, kg (drawn log-uniformly)"),
        ("friction", "box friction coefficient"),
        ("floor_friction", "floor friction coefficient (the same in every episode)"),
        ("reference_distance", "distance of the reference cylinder from the anchor, m"),
        ("reference_mass", "reference cylinder mass, kg (the same in every episode)"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "start offsets at azimuths inside `heldout_sector`, for every box (train draws from the rest of the circle)",
    labels: "contact (first box → its reference cylinder), final_positions",
};

/// Parameters of `spring`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[2, 2]`.
    pub boxes: IntRange,
    /// Default 30 N/m.
    pub stiffness: f32,
    /// Default `[0.25, 0.6]` m.
    pub offset: Range,
    /// Default `[0.0, 1.5]` m/s.
    pub speed: Range,
    /// Default `[300, 360]` degrees.
    pub heldout_sector: Range,
    /// Default `[0.04, 0.08]` m.
    pub size: Range,
    /// Default `[0.25, 4.0]` kg.
    pub mass: Range,
    /// Default `[0.1, 0.9]`.
    pub friction: Range,
    /// Default 0.1.
    pub floor_friction: f32,
    /// Default `[0.25, 0.6]` m.
    pub reference_distance: Range,
    /// Default 1 kg.
    pub reference_mass: f32,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            boxes: IntRange::new(2, 2),
            stiffness: 30.0,
            offset: Range::new(0.25, 0.6),
            speed: Range::new(0.0, 1.5),
            heldout_sector: Range::new(300.0, 360.0),
            size: Range::new(0.04, 0.08),
            mass: Range::new(0.25, 4.0),
            friction: Range::new(0.1, 0.9),
            floor_friction: 0.1,
            reference_distance: Range::new(0.25, 0.6),
            reference_mass: 1.0,
            duration_s: 3.0,
        }
    }
}

/// Radius and half height of the reference cylinders, m.
const REFERENCE_SIZE: f32 = 0.06;
/// Friction of the reference cylinders.
const REFERENCE_FRICTION: f32 = 0.5;

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("spring", self.fov_y_deg)?;
        self.boxes.validate("spring.boxes", 1, 4)?;
        let one = |field: &str, v: f32, lo: f32, hi: f32| Range::new(v, v).validate(field, lo, hi);
        one("spring.stiffness", self.stiffness, 0.1, 10_000.0)?;
        self.offset.validate("spring.offset", 0.0, 1.2)?;
        self.speed.validate("spring.speed", 0.0, 10.0)?;
        validate_sector("spring.heldout_sector", self.heldout_sector)?;
        self.size.validate("spring.size", 0.01, 0.3)?;
        self.mass.validate("spring.mass", 0.001, 100.0)?;
        self.friction.validate("spring.friction", 0.0, 2.0)?;
        one("spring.floor_friction", self.floor_friction, 0.0, 2.0)?;
        self.reference_distance.validate("spring.reference_distance", 0.15, 1.2)?;
        one("spring.reference_mass", self.reference_mass, 0.001, 100.0)?;
        one("spring.duration_s", self.duration_s, 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    scene.statics.push(common::floor(p.floor_friction, 0.2));
    let n = s.int(p.boxes.min, p.boxes.max);
    for k in 0..n {
        // Anchors 3 m apart along x, centred on the origin.
        let c = [(k as f32 - (n - 1) as f32 / 2.0) * 3.0, 0.0, 0.0];
        let size = s.range(p.size);
        // Flat enough not to tip: a box tips when μ exceeds half width / half height.
        let half = [size, size * s.uniform(0.5, 0.9), size * s.uniform(0.8, 1.2)];
        let az = azimuth(&mut s, p.heldout_sector, split.is_heldout());
        let r = s.range(p.offset);
        let start = [c[0] + r * libm::cosf(az), half[1] + 0.001, c[2] + r * libm::sinf(az)];
        let mass = libm::expf(s.uniform(libm::logf(p.mass.min), libm::logf(p.mass.max)));
        let mut body = ObjectSpec::new(format!("box{k}"), Shape::Box { half_extents: half }, Mass::Kg(mass), start);
        body.rotation = common::yaw(&mut s);
        let (speed, dir) = (s.range(p.speed), s.uniform(0.0, std::f32::consts::TAU));
        body.linvel = [speed * libm::cosf(dir), 0.0, speed * libm::sinf(dir)];
        body.color = if k == 0 { AGENT_RED } else { common::color(&mut s) };
        body.friction = s.range(p.friction);
        // The reference cylinder: on the far side of the anchor, within ±60° of the swing.
        let raz = az + std::f32::consts::PI + s.uniform(-60f32.to_radians(), 60f32.to_radians());
        let rd = s.range(p.reference_distance);
        let mut reference = ObjectSpec::new(
            format!("reference{k}"),
            Shape::Cylinder { half_height: REFERENCE_SIZE, radius: REFERENCE_SIZE },
            Mass::Kg(p.reference_mass),
            [c[0] + rd * libm::cosf(raz), REFERENCE_SIZE, c[2] + rd * libm::sinf(raz)],
        );
        reference.color = [0.95, 0.95, 0.95];
        reference.friction = REFERENCE_FRICTION;
        // Slots: box 0, reference 0, box 1, reference 1, ...
        let index = scene.objects.len();
        scene.objects.extend([body, reference]);
        scene.joints.push(JointSpec {
            kind: JointKind::Spring { stiffness: p.stiffness, rest_length: 0.0 },
            a: JointEnd::World { anchor: [c[0], half[1], c[2]] },
            b: JointEnd::Object { index, anchor: [0.0; 3] },
        });
    }
    let first = scene.objects[0].position;
    scene.camera = common::camera(&mut s, [first[0] * 0.5, 0.1, first[2] * 0.5], 0.7, (2.0, 3.0), (0.8, 1.6));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Object(1) });
    Ok(single(common::run(&scene, &[])?))
}
