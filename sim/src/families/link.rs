//! `link`: a chain of capsules on ball joints swings from a fixed anchor toward a target.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED, PATIENT_YELLOW};
use super::{FamilyInfo, FamilyKind, IntRange, Outcome, Range, single};
use crate::error::Result;
use crate::math::quat_axis_angle;
use crate::scene::{
    ContactQuery, ContactTarget, JointEnd, JointKind, JointSpec, Mass, ObjectSpec, Scene, Shape, SimConfig,
};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "link",
    kind: FamilyKind::Physion,
    description: "A chain of capsules joined by ball joints swings down from a fixed anchor; does its end link (red) hit the yellow target?",
    params: &[
        ("links", "chain links in train/val/readout (integers, 1..=12)"),
        ("heldout_links", "chain links used only by test (integers)"),
        ("link_half_length", "half length of each link, m"),
        ("release_angle", "initial angle of the straight chain from vertical, degrees"),
        ("clearance", "height of the chain's lowest point above the floor when hanging, m (negative drags)"),
        ("target_distance", "horizontal distance of the target past the anchor, m"),
        ("mass", "link mass, kg"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "longer chains: link counts in `heldout_links`",
    labels: "contact (end link→target), final_positions",
};

/// Parameters of `link`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[2, 4]`.
    pub links: IntRange,
    /// Default `[5, 6]`.
    pub heldout_links: IntRange,
    /// Default `[0.05, 0.08]` m.
    pub link_half_length: Range,
    /// Default `[25, 70]` degrees.
    pub release_angle: Range,
    /// Default `[0.02, 0.12]` m.
    pub clearance: Range,
    /// Default `[0.0, 0.4]` m.
    pub target_distance: Range,
    /// Default `[0.05, 0.3]` kg.
    pub mass: Range,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            links: IntRange::new(2, 4),
            heldout_links: IntRange::new(5, 6),
            link_half_length: Range::new(0.05, 0.08),
            release_angle: Range::new(25.0, 70.0),
            clearance: Range::new(0.02, 0.12),
            target_distance: Range::new(0.0, 0.4),
            mass: Range::new(0.05, 0.3),
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("link", self.fov_y_deg)?;
        self.links.validate("link.links", 1, 12)?;
        self.heldout_links.validate("link.heldout_links", 1, 12)?;
        self.link_half_length.validate("link.link_half_length", 0.02, 0.5)?;
        self.release_angle.validate("link.release_angle", 0.0, 120.0)?;
        self.clearance.validate("link.clearance", -0.1, 1.0)?;
        self.target_distance.validate("link.target_distance", 0.0, 3.0)?;
        self.mass.validate("link.mass", 0.001, 100.0)?;
        Range::new(self.duration_s, self.duration_s).validate("link.duration_s", 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    scene.statics.push(common::floor(0.5, 0.1));
    let r = if split.is_heldout() { p.heldout_links } else { p.links };
    let n = s.int(r.min, r.max) as usize;
    let hl = s.range(p.link_half_length);
    let radius = hl * 0.35;
    let hh = hl - radius;
    let len = 2.0 * hl;
    let chain = len * n as f32;
    let anchor = [0.0, chain + s.range(p.clearance), 0.0];
    // Released on the -x side; it swings through the vertical toward +x.
    let phi = s.range(p.release_angle).to_radians();
    let u = [-libm::sinf(phi), -libm::cosf(phi), 0.0];
    let rot = quat_axis_angle([0.0, 0.0, 1.0], -phi);
    let mass = s.range(p.mass);
    for i in 0..n {
        let c = crate::math::add(anchor, crate::math::scale(u, len * (i as f32 + 0.5)));
        let mut l = ObjectSpec::new(format!("link{i}"), Shape::Capsule { half_height: hh, radius }, Mass::Kg(mass), c);
        l.rotation = rot;
        l.color = if i == n - 1 { AGENT_RED } else { common::color(&mut s) };
        scene.objects.push(l);
        let a = if i == 0 {
            JointEnd::World { anchor }
        } else {
            JointEnd::Object { index: i - 1, anchor: [0.0, -hl, 0.0] }
        };
        scene.joints.push(JointSpec {
            kind: JointKind::Spherical,
            a,
            b: JointEnd::Object { index: i, anchor: [0.0, hl, 0.0] },
        });
    }
    let ts = s.uniform(0.04, 0.09);
    let d = s.range(p.target_distance) + ts;
    let mut target = ObjectSpec::new(
        "target",
        Shape::Box { half_extents: [ts, ts, 0.1] },
        Mass::Kg(s.uniform(0.2, 1.0)),
        [d, ts, 0.0],
    );
    target.color = PATIENT_YELLOW;
    scene.objects.push(target);
    scene.camera = common::camera(&mut s, [0.0, anchor[1] * 0.5, 0.0], 0.5, (2.0, 2.8), (0.3, 1.0));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: n - 1, patient: ContactTarget::Object(n) });
    Ok(single(common::run(&scene, &[])?))
}
