//! What a simulation records: episodes, frames, contacts and labels.

use serde::{Deserialize, Serialize};

use crate::math::{Quat, Vec3};
use crate::scene::{Camera, ContactQuery, JointSpec, ShapeKind, StaticSpec, Zone};
use crate::split::Split;

/// State of one object slot in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ObjectState {
    /// Whether the object exists in this frame (the slot's presence mask).
    pub present: bool,
    /// Whether the object is visible from the episode's camera (in the view frustum and
    /// not hidden behind occluders or other objects).
    pub visible: bool,
    /// Centre position, m.
    pub position: Vec3,
    /// Orientation `[x, y, z, w]`.
    pub rotation: Quat,
    /// Linear velocity, m/s.
    pub linvel: Vec3,
    /// Angular velocity, rad/s.
    pub angvel: Vec3,
    /// Shape kind in this frame.
    pub shape: ShapeKind,
    /// Half extents of the local bounding box in this frame (see `Shape::half_extents`).
    pub size: Vec3,
}

/// One side of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// A dynamic object by slot.
    Object(u16),
    /// A static by index into [`Episode::statics`].
    Static(u16),
}

/// A contact between two bodies during the physics steps that led to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// First body (the smaller, in `Body` order).
    pub a: Body,
    /// Second body.
    pub b: Body,
    /// Sum over those steps of the normal impulse magnitude, N·s (divide by the frame
    /// interval for the mean force).
    pub impulse: f32,
}

/// One recorded frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Time since the start, s.
    pub time: f32,
    /// One entry per object slot.
    pub objects: Vec<ObjectState>,
    /// Contacts active during the steps since the previous frame (at frame 0: those detected
    /// on the initial poses, with the first step's impulses),
    /// sorted by `(a, b)`.
    pub contacts: Vec<Contact>,
    /// The objects touching each zone (sorted `(zone, object)` pairs; at frame 0, as
    /// detected by the first step).
    pub zone_contacts: Vec<(u16, u16)>,
}

/// Per-episode properties of an object (hidden from models by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectProps {
    /// Name.
    pub name: String,
    /// Initial shape kind.
    pub shape: ShapeKind,
    /// Mass, kg.
    pub mass: f32,
    /// Friction coefficient.
    pub friction: f32,
    /// Restitution coefficient.
    pub restitution: f32,
    /// Linear RGB colour.
    pub color: Vec3,
}

/// Physion's Object Contact Prediction label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContactLabel {
    /// The question.
    pub query: ContactQuery,
    /// Whether the agent touched the patient at any time.
    pub occurred: bool,
    /// First frame whose preceding steps had the contact.
    pub first_frame: Option<u32>,
    /// Time of that frame, s.
    pub first_time: Option<f32>,
}

/// Kinds of violation of expectation (IntPhys analogues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// An object vanishes or appears.
    Permanence,
    /// An object teleports.
    Continuity,
    /// An object changes shape or size.
    Shape,
    /// An object passes through a solid, or is repelled by empty space.
    Solidity,
    /// An object floats or falls up.
    Gravity,
}

impl ViolationKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Permanence => "permanence",
            ViolationKind::Continuity => "continuity",
            ViolationKind::Shape => "shape",
            ViolationKind::Solidity => "solidity",
            ViolationKind::Gravity => "gravity",
        }
    }
}

/// Where and how an impossible episode breaks physics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Kind.
    pub kind: ViolationKind,
    /// What exactly happens, e.g. `vanishes`, `appears`, `teleports`, `passes-through`.
    pub detail: String,
    /// Object slot.
    pub object: usize,
    /// First frame that shows the changed world.
    pub frame: u32,
    /// Whether the object was hidden from the camera at that frame (so no single visible
    /// frame shows the change).
    pub occluded: bool,
}

/// Membership of a matched IntPhys quadruplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuadrupletMember {
    /// Position in the quadruplet: 0 and 1 possible (scenes A and B), 2 and 3 impossible
    /// (A's start with B's end, B's start with A's end).
    pub member: u8,
    /// Whether this episode is physically possible.
    pub possible: bool,
}

/// Ground-truth labels of an episode. Families fill what applies; the rest stays `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// Object Contact Prediction.
    pub contact: Option<ContactLabel>,
    /// The first object (not touching the floor at frame 0) to touch the floor.
    pub first_floor_contact: Option<usize>,
    /// Support family: whether the tower fell.
    pub tower_fell: Option<bool>,
    /// Planning families: whether the goal was reached by the end.
    pub goal_reached: Option<bool>,
    /// Launch family: whether the placed action was valid (PHYRE's rule).
    pub action_valid: Option<bool>,
    /// Final resting positions of every slot (last frame).
    pub final_positions: Vec<Vec3>,
    /// VoE: the violation of an impossible episode.
    pub violation: Option<Violation>,
    /// VoE: quadruplet membership.
    pub quadruplet: Option<QuadrupletMember>,
}

/// A PHYRE-style action: a ball of `radius` placed at `(x, y)` in the scene plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Horizontal position, m.
    pub x: f32,
    /// Height, m.
    pub y: f32,
    /// Radius, m.
    pub radius: f32,
}

/// A simulated episode: the data unit of every dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Scenario family.
    pub family: String,
    /// Split it was drawn for.
    pub split: Split,
    /// Seed the scene was sampled from.
    pub seed: u64,
    /// Attempt number that produced it (0 unless earlier attempts were rejected).
    pub attempt: u32,
    /// Recording rate, frames per second.
    pub fps: u32,
    /// Physics rate, Hz.
    pub physics_hz: u32,
    /// The recorded camera.
    pub camera: Camera,
    /// Per-slot properties.
    pub objects: Vec<ObjectProps>,
    /// Static geometry.
    pub statics: Vec<StaticSpec>,
    /// Goal regions.
    pub zones: Vec<Zone>,
    /// Joints (links, hinges, springs) between objects or to the world.
    #[serde(default)]
    pub joints: Vec<JointSpec>,
    /// Agent forces per frame (clipped), when the scene has an agent.
    pub actions: Option<Vec<Vec3>>,
    /// The index of the object the agent pushes.
    pub agent_object: Option<usize>,
    /// Launch family: the placed ball.
    pub placement: Option<Placement>,
    /// Template id, for families built from discrete templates (launch).
    pub template: Option<u32>,
    /// The frames.
    pub frames: Vec<Frame>,
    /// Labels.
    pub labels: Labels,
    /// Physics steps taken.
    pub physics_steps: u64,
}

impl Episode {
    /// Number of object slots.
    pub fn num_objects(&self) -> usize {
        self.objects.len()
    }
}
