//! The one observation builder: what every model sees of an item, built once for every
//! adapter (probes and the JEPA, raw-state, the process protocol, LLM text, heuristics), so
//! that the rules below are enforced in one place and tested once.
//!
//! An [`Observation`] holds, per episode the item shows:
//!
//! - **the viewpoint**: the camera's pose and field of view (what is visible is what it
//!   sees);
//! - **the static scene**: each static's role, pose and half extents (floors, walls, ramps,
//!   container parts, tables, occluder panels) and each goal zone's centre and half extents;
//!   never their names (a name such as `barrier` is a label, not an observation);
//! - **the observed frames** `0..observe`, with only the objects visible in each frame: an
//!   object hidden (behind an occluder, out of view) is indistinguishable from one that does
//!   not exist (not present, zero state, no shape), and frames after the observation are not
//!   there at all;
//! - **joints** (ball joints, hinges, welds, springs with their stiffness and rest length)
//!   whose objects are seen: visible structure;
//! - **the agent's plan** in scenes with an agent: the forces it applies, for every frame of
//!   the episode (actions are the agent's inputs, not outcomes: models are conditioned on
//!   them);
//! - **hidden properties** (mass, friction, restitution) of the objects seen, only when the
//!   suite's `[observation] hidden_properties = true` says every model observes them.
//!
//! **Slots are relabelled per item**: a presented item carries a seeded permutation of the
//! object slots ([`Item::slots`], drawn by [`crate::present`]); its `objects` and its
//! candidates' names already use the shown labels, and the builder permutes the frames
//! and properties the same way, so no slot number means anything (the VoE target is not
//! slot 0, the agent not the lowest slot). Answers name objects through the item's `objects`
//! (forecast positions in that order, choices by index), so nothing needs mapping back
//! except by the oracle, which reads [`Item::true_slot`]. Items not presented (the `readout`
//! split's, which fit the probes) are shown unpermuted.

use physworld_pipeline::{EpisodeFrames, EpisodeMeta, Observability};
use physworld_sim::{Camera, JointEnd, JointKind, StaticRole, StaticSpec, Zone};
use serde::{Deserialize, Serialize};

use crate::adapters::Context;
use crate::error::Result;
use crate::tasks::{Item, seen};

/// Version of the observation rules (recorded in result files).
pub const OBSERVATION_VERSION: &str = "physworld-observation/1";

/// A static box as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticObs {
    /// `floor`, `wall`, `ramp`, `container`, `table` or `occluder` (an occluder panel blocks
    /// the view and nothing else).
    pub role: StaticRole,
    /// Centre, m.
    pub position: [f32; 3],
    /// Orientation `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// Half extents along its own axes, m.
    pub half_extents: [f32; 3],
    /// Friction and restitution, only when the suite exposes hidden properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<[f32; 2]>,
}

/// A goal zone as observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneObs {
    /// Its index (items name a zone by it).
    pub index: u16,
    /// Centre, m.
    pub center: [f32; 3],
    /// Half extents, m (axis-aligned).
    pub half_extents: [f32; 3],
}

/// One end of an observed joint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointEndObs {
    /// An object (its shown slot), the anchor in its local frame.
    Object {
        /// Shown slot.
        slot: u16,
        /// Local anchor, m.
        anchor: [f32; 3],
    },
    /// A fixed point in the world.
    World {
        /// World anchor, m.
        anchor: [f32; 3],
    },
}

/// A joint as observed: a visible link (a ball joint, a hinge, a weld, a spring) between
/// objects or to the world, with its geometry (a spring's stiffness and rest length are part
/// of it, as a rod's length is: the `spring` family documents them as known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointObs {
    /// `spherical`, `revolute`, `fixed` or `spring`.
    pub kind: String,
    /// Hinge axis (revolute only), in both bodies' local frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axis: Option<[f32; 3]>,
    /// Spring stiffness (N/m) and rest length (m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spring: Option<[f32; 2]>,
    /// First end.
    pub a: JointEndObs,
    /// Second end.
    pub b: JointEndObs,
}

/// Hidden properties of one observed slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    /// Observed slot.
    pub slot: u16,
    /// Mass, kg.
    pub mass: f32,
    /// Friction coefficient.
    pub friction: f32,
    /// Restitution coefficient.
    pub restitution: f32,
}

/// The agent's plan: the forces it applies to one object, for every frame of the episode.
/// Actions are inputs the agent chooses, not outcomes of the world, so every model is
/// conditioned on all of them (as V-JEPA 2-AC's predictor is): "what happens if the agent
/// pushes like this".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The shown slot of the object pushed.
    pub object: u16,
    /// Force applied between frame `t` and `t + 1`, N (`None`: no force).
    pub forces: Vec<Option<[f32; 3]>>,
}

/// One episode as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeObs {
    /// The viewpoint: what is visible is what this camera sees (a model of pixels knows it
    /// implicitly; a model of states needs it to reason about occlusion).
    pub camera: Camera,
    /// Static boxes, in scene order.
    pub statics: Vec<StaticObs>,
    /// Goal zones.
    pub zones: Vec<ZoneObs>,
    /// Joints whose objects are seen in the observed frames.
    pub joints: Vec<JointObs>,
    /// Frames `0..observe`, visible objects only, slots relabelled (see the module doc).
    pub frames: EpisodeFrames,
    /// Frames in the whole episode (the horizon of "by the end" questions).
    pub episode_frames: usize,
    /// Hidden properties of the objects seen, when the suite exposes them (else empty).
    pub properties: Vec<Properties>,
    /// The agent's plan, in scenes with an agent.
    pub plan: Option<Plan>,
}

impl EpisodeObs {
    /// The observed frames followed by `extra` frames that repeat the last observed state
    /// with the plan's forces (zero without a plan): the input of a rollout that is
    /// conditioned on the agent's actions and nothing else from the future.
    pub fn planned(&self, extra: usize) -> EpisodeFrames {
        let mut w = self.frames.clone();
        if w.frames == 0 {
            return w;
        }
        let mut step = w.slice(w.frames - 1, 1);
        for k in 0..extra {
            let t = self.frames.frames + k;
            let force = self.plan.as_ref().and_then(|p| p.forces.get(t).copied().flatten());
            step.action = force.unwrap_or([0.0; 3]).to_vec();
            step.has_action = vec![force.is_some()];
            w.append(&step);
        }
        w
    }
}

/// What a model observes of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Frames per second.
    pub fps: u32,
    /// What the suite lets models observe.
    pub observability: Observability,
    /// Per episode the item shows (one, except for unpresented VoE quadruplets).
    pub episodes: Vec<EpisodeObs>,
}

impl Observation {
    /// The first (usually only) episode.
    pub fn first(&self) -> &EpisodeObs {
        &self.episodes[0]
    }

    /// Whether it holds no hidden property (the default setting).
    pub fn properties_hidden(&self) -> bool {
        !self.observability.hidden_properties
            && self.episodes.iter().all(|e| e.properties.is_empty() && e.statics.iter().all(|s| s.material.is_none()))
    }
}

/// Stable name of a static role (as it is serialised).
pub fn role_name(r: StaticRole) -> &'static str {
    match r {
        StaticRole::Floor => "floor",
        StaticRole::Wall => "wall",
        StaticRole::Ramp => "ramp",
        StaticRole::Container => "container",
        StaticRole::Table => "table",
        StaticRole::Occluder => "occluder",
    }
}

fn static_obs(s: &StaticSpec, expose: bool) -> StaticObs {
    StaticObs {
        role: s.role,
        position: s.position,
        rotation: s.rotation,
        half_extents: s.half_extents,
        material: expose.then_some([s.friction, s.restitution]),
    }
}

fn zone_obs(i: usize, z: &Zone) -> ZoneObs {
    ZoneObs { index: i as u16, center: z.center, half_extents: z.half_extents }
}

/// `n` frames of `s` slots with nothing seen in them (not present, not visible, zero
/// state, shape -1), no action and no scene.
pub fn blank(n: usize, s: usize) -> EpisodeFrames {
    EpisodeFrames {
        episode_index: 0,
        start: 0,
        frames: n,
        slots: s,
        present: vec![false; n * s],
        visible: vec![false; n * s],
        position: vec![0.0; n * s * 3],
        rotation: vec![0.0; n * s * 4],
        linvel: vec![0.0; n * s * 3],
        angvel: vec![0.0; n * s * 3],
        size: vec![0.0; n * s * 3],
        shape: vec![-1; n * s],
        action: vec![0.0; n * 3],
        has_action: vec![false; n],
        scene: Vec::new(),
    }
}

/// The observed frames `0..observe` of `e`: objects not seen in a frame are blanked (not
/// present, not visible, zero state, shape -1) and slot `k` shows true slot `slots[k]`
/// (identity when `slots` is empty).
pub fn mask(e: &EpisodeFrames, observe: usize, slots: &[u16]) -> EpisodeFrames {
    let n = observe.min(e.frames);
    let s = e.slots;
    let src = |k: usize| if slots.is_empty() { k } else { slots.get(k).map_or(usize::MAX, |&t| t as usize) };
    let mut out = EpisodeFrames {
        episode_index: e.episode_index,
        start: e.start,
        action: e.action[..n * 3].to_vec(),
        has_action: e.has_action[..n].to_vec(),
        scene: e.scene.clone(),
        ..blank(n, s)
    };
    for f in 0..n {
        for k in 0..s {
            let o = src(k);
            if o >= s || !seen(e, f, o) {
                continue;
            }
            let (d, t) = (f * s + k, f * s + o);
            out.present[d] = true;
            out.visible[d] = true;
            out.shape[d] = e.shape[t];
            out.position[d * 3..d * 3 + 3].copy_from_slice(&e.position[t * 3..t * 3 + 3]);
            out.rotation[d * 4..d * 4 + 4].copy_from_slice(&e.rotation[t * 4..t * 4 + 4]);
            out.linvel[d * 3..d * 3 + 3].copy_from_slice(&e.linvel[t * 3..t * 3 + 3]);
            out.angvel[d * 3..d * 3 + 3].copy_from_slice(&e.angvel[t * 3..t * 3 + 3]);
            out.size[d * 3..d * 3 + 3].copy_from_slice(&e.size[t * 3..t * 3 + 3]);
        }
    }
    out
}

/// Build the observation of `episode` with its metadata, observed for `observe` frames,
/// slots shown as `slots` says.
pub fn episode(
    e: &EpisodeFrames,
    meta: &EpisodeMeta,
    observe: usize,
    slots: &[u16],
    observability: Observability,
) -> EpisodeObs {
    let expose = observability.hidden_properties;
    let mut frames = mask(e, observe, slots);
    // The static scene is observed in full, whatever the frames' visibility.
    frames.scene = physworld_pipeline::SceneBox::of_episode(meta);
    let ever_seen = |k: usize| (0..frames.frames).any(|f| frames.present[f * frames.slots + k]);
    let properties = if expose {
        (0..frames.slots)
            .filter(|&k| ever_seen(k))
            .map(|k| {
                let t = if slots.is_empty() { k } else { slots[k] as usize };
                let at = |v: &[f32]| v.get(t).copied().unwrap_or(0.0);
                Properties {
                    slot: k as u16,
                    mass: at(&meta.mass),
                    friction: at(&meta.friction),
                    restitution: at(&meta.restitution),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let shown = |t: u16| if slots.is_empty() { t } else { slots.iter().position(|&x| x == t).map_or(t, |k| k as u16) };
    let end = |e: &JointEnd| match *e {
        JointEnd::Object { index, anchor } => {
            let slot = shown(index as u16);
            ever_seen(slot as usize).then_some(JointEndObs::Object { slot, anchor })
        }
        JointEnd::World { anchor } => Some(JointEndObs::World { anchor }),
    };
    let joints = meta
        .joints
        .iter()
        .filter_map(|j| {
            let (kind, axis, spring) = match j.kind {
                JointKind::Spherical => ("spherical", None, None),
                JointKind::Revolute { axis } => ("revolute", Some(axis), None),
                JointKind::Fixed => ("fixed", None, None),
                JointKind::Spring { stiffness, rest_length } => ("spring", None, Some([stiffness, rest_length])),
            };
            Some(JointObs { kind: kind.into(), axis, spring, a: end(&j.a)?, b: end(&j.b)? })
        })
        .collect();
    let plan = meta.agent_object.map(|a| Plan {
        object: shown(a),
        forces: (0..e.frames)
            .map(|t| e.has_action[t].then(|| [e.action[t * 3], e.action[t * 3 + 1], e.action[t * 3 + 2]]))
            .collect(),
    });
    EpisodeObs {
        joints,
        plan,
        camera: meta.camera.clone(),
        statics: meta.statics.iter().map(|s| static_obs(s, expose)).collect(),
        zones: meta.zones.iter().enumerate().map(|(i, z)| zone_obs(i, z)).collect(),
        frames,
        episode_frames: e.frames,
        properties,
    }
}

impl Context<'_> {
    /// What a model observes of `it` (an item of the scored split or of the `readout`
    /// split): the one way adapters see episodes.
    pub fn observe(&self, it: &Item) -> Result<Observation> {
        let frames = if it.split == self.split { self.frames } else { self.readout_frames };
        let observability = self.ds.suite.observation;
        let episodes = it
            .episodes
            .iter()
            .map(|&ep| Ok(episode(frames.get(ep)?, self.ds.meta(ep)?, it.observe, &it.slots, observability)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Observation { fps: self.ds.info.fps, observability, episodes })
    }
}
