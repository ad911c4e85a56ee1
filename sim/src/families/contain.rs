//! `contain`: an object dropped toward an open container lands inside or outside it.

use serde::{Deserialize, Serialize};

use super::common::{self, AGENT_RED};
use super::{FamilyInfo, FamilyKind, Outcome, Range, single};
use crate::error::Result;
use crate::scene::{ContactQuery, ContactTarget, Mass, ObjectSpec, Scene, SimConfig, StaticRole, StaticSpec, Zone};
use crate::seed::Sampler;
use crate::split::Split;

pub(crate) const INFO: FamilyInfo = FamilyInfo {
    name: "contain",
    kind: FamilyKind::Physion,
    description: "A red object is dropped near an open container; does it end up touching the container's inside (zone)?",
    params: &[
        ("inner_half_width", "container inner half width in train/val/readout, m"),
        ("heldout_inner_half_width", "container inner half width band used only by test, m"),
        ("wall_height", "container wall height, m"),
        ("offset", "agent horizontal offset from the container centre, in inner half widths"),
        ("height", "release height, m"),
        ("throw_speed", "horizontal throw speed, m/s"),
        ("size", "agent size, m"),
        ("mass", "agent mass, kg"),
        ("restitution", "restitution coefficient"),
        ("duration_s", "episode length, s"),
    ],
    heldout: "wider containers: inner half widths in `heldout_inner_half_width`",
    labels: "contact (agent→inside zone), final_positions",
};

/// Parameters of `contain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The camera's field of view range, degrees ([`common::sample_fov`]; absent: a fixed 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov_y_deg: Option<Range>,
    /// Default `[0.12, 0.2]` m.
    pub inner_half_width: Range,
    /// Default `[0.22, 0.28]` m.
    pub heldout_inner_half_width: Range,
    /// Default `[0.08, 0.16]` m.
    pub wall_height: Range,
    /// Default `[0.0, 2.2]`.
    pub offset: Range,
    /// Default `[0.4, 1.0]` m.
    pub height: Range,
    /// Default `[0.0, 0.5]` m/s.
    pub throw_speed: Range,
    /// Default `[0.03, 0.06]` m.
    pub size: Range,
    /// Default `[0.1, 1.0]` kg.
    pub mass: Range,
    /// Default `[0.0, 0.5]`.
    pub restitution: Range,
    /// Default 3 s.
    pub duration_s: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            fov_y_deg: None,
            inner_half_width: Range::new(0.12, 0.2),
            heldout_inner_half_width: Range::new(0.22, 0.28),
            wall_height: Range::new(0.08, 0.16),
            offset: Range::new(0.0, 2.2),
            height: Range::new(0.4, 1.0),
            throw_speed: Range::new(0.0, 0.5),
            size: Range::new(0.03, 0.06),
            mass: Range::new(0.1, 1.0),
            restitution: Range::new(0.0, 0.5),
            duration_s: 3.0,
        }
    }
}

impl Params {
    pub(crate) fn validate(&self) -> Result<()> {
        common::validate_fov("contain", self.fov_y_deg)?;
        self.inner_half_width.validate("contain.inner_half_width", 0.05, 2.0)?;
        self.heldout_inner_half_width.validate("contain.heldout_inner_half_width", 0.05, 2.0)?;
        self.wall_height.validate("contain.wall_height", 0.02, 1.0)?;
        self.offset.validate("contain.offset", 0.0, 5.0)?;
        self.height.validate("contain.height", 0.2, 5.0)?;
        self.throw_speed.validate("contain.throw_speed", 0.0, 5.0)?;
        self.size.validate("contain.size", 0.01, 0.3)?;
        self.mass.validate("contain.mass", 0.001, 100.0)?;
        self.restitution.validate("contain.restitution", 0.0, 0.95)?;
        Range::new(self.duration_s, self.duration_s).validate("contain.duration_s", 0.1, 60.0)
    }
}

pub(crate) fn sample(p: &Params, seed: u64, split: Split) -> Result<Outcome> {
    let mut s = Sampler::new(seed);
    let mut scene = Scene::new(SimConfig { duration_s: p.duration_s, ..SimConfig::default() });
    let restitution = s.range(p.restitution);
    scene.statics.push(common::floor(0.5, restitution));
    let w = s.range(if split.is_heldout() { p.heldout_inner_half_width } else { p.inner_half_width });
    let wh = s.range(p.wall_height);
    let t = 0.01;
    let color = common::color(&mut s);
    let part = |name: &str, he: [f32; 3], pos: [f32; 3]| {
        let mut st = StaticSpec::new(name, StaticRole::Container, he, pos);
        st.color = color;
        st.restitution = restitution;
        st
    };
    scene.statics.push(part("container_base", [w + t, t, w + t], [0.0, t, 0.0]));
    scene.statics.push(part("container_wall_px", [t, wh * 0.5, w + t], [w + t, wh * 0.5, 0.0]));
    scene.statics.push(part("container_wall_nx", [t, wh * 0.5, w + t], [-(w + t), wh * 0.5, 0.0]));
    scene.statics.push(part("container_wall_pz", [w, wh * 0.5, t], [0.0, wh * 0.5, w + t]));
    scene.statics.push(part("container_wall_nz", [w, wh * 0.5, t], [0.0, wh * 0.5, -(w + t)]));
    scene.zones.push(Zone {
        name: "inside".into(),
        center: [0.0, 2.0 * t + wh * 0.5, 0.0],
        half_extents: [w, wh * 0.5, w],
    });

    let sz = s.range(p.size);
    let shape = common::shape(&mut s, sz, &common::ALL_KINDS);
    let a = s.uniform(0.0, std::f32::consts::TAU);
    let off = s.range(p.offset) * w;
    let h = s.range(p.height);
    let mut agent =
        ObjectSpec::new("agent", shape, Mass::Kg(s.range(p.mass)), [off * libm::cosf(a), h, off * libm::sinf(a)]);
    let ts = s.range(p.throw_speed);
    let ta = s.uniform(0.0, std::f32::consts::TAU);
    agent.linvel = [ts * libm::cosf(ta), 0.0, ts * libm::sinf(ta)];
    agent.rotation = common::yaw(&mut s);
    agent.color = AGENT_RED;
    agent.restitution = restitution;
    scene.objects.push(agent);
    scene.camera = common::camera(&mut s, [0.0, 0.2, 0.0], 0.8, (1.8, 2.6), (0.9, 1.6));
    common::sample_fov(&s, &mut scene.camera, p.fov_y_deg);
    scene.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Zone(0) });
    Ok(single(common::run(&scene, &[])?))
}
