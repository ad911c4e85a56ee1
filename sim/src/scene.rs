//! The scene model: what a family samples and the simulator builds.
//!
//! Coordinates are metres, kilograms and seconds, right-handed with **y up** (Bevy's
//! convention); the floor's top face is at `y = 0`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SimError};
use crate::math::{Quat, Vec3};

/// Default physics rate, Hz. See [`SimConfig::physics_hz`].
pub const DEFAULT_PHYSICS_HZ: u32 = 240;
/// Default recording rate, frames per second. See [`SimConfig::fps`].
pub const DEFAULT_FPS: u32 = 30;
/// Default episode duration, seconds. See [`SimConfig::duration_s`].
pub const DEFAULT_DURATION_S: f32 = 3.0;
/// Default constraint-solver iterations per step. See [`SimConfig::solver_iterations`].
pub const DEFAULT_SOLVER_ITERATIONS: u32 = 8;
/// Standard gravity, m/s², applied along -y.
pub const GRAVITY: f32 = 9.81;

/// A collision shape with its size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// A sphere of `radius`.
    Sphere {
        /// Radius, m.
        radius: f32,
    },
    /// A box with `half_extents` along its local x, y, z.
    Box {
        /// Half extents, m.
        half_extents: Vec3,
    },
    /// A cylinder along local y.
    Cylinder {
        /// Half of the height along y, m.
        half_height: f32,
        /// Radius, m.
        radius: f32,
    },
    /// A capsule along local y (a cylinder of `half_height` with hemispherical caps).
    Capsule {
        /// Half of the cylindrical part's height, m.
        half_height: f32,
        /// Radius of the caps and body, m.
        radius: f32,
    },
}

/// Shape kind without its size: the per-frame categorical feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeKind {
    /// [`Shape::Sphere`].
    Sphere = 0,
    /// [`Shape::Box`].
    Box = 1,
    /// [`Shape::Cylinder`].
    Cylinder = 2,
    /// [`Shape::Capsule`].
    Capsule = 3,
}

impl Shape {
    /// The shape's kind.
    pub fn kind(&self) -> ShapeKind {
        match self {
            Shape::Sphere { .. } => ShapeKind::Sphere,
            Shape::Box { .. } => ShapeKind::Box,
            Shape::Cylinder { .. } => ShapeKind::Cylinder,
            Shape::Capsule { .. } => ShapeKind::Capsule,
        }
    }

    /// Half extents of the shape's local bounding box: the per-frame `size` feature.
    ///
    /// Sphere `[r, r, r]`; box its half extents; cylinder `[r, hh, r]`; capsule `[r, hh + r, r]`.
    pub fn half_extents(&self) -> Vec3 {
        match *self {
            Shape::Sphere { radius } => [radius; 3],
            Shape::Box { half_extents } => half_extents,
            Shape::Cylinder { half_height, radius } => [radius, half_height, radius],
            Shape::Capsule { half_height, radius } => [radius, half_height + radius, radius],
        }
    }

    /// Radius of the smallest sphere about the origin that holds the shape.
    pub fn bounding_radius(&self) -> f32 {
        match *self {
            Shape::Sphere { radius } => radius,
            Shape::Box { half_extents: h } => crate::math::norm(h),
            Shape::Cylinder { half_height, radius } => (half_height * half_height + radius * radius).sqrt(),
            Shape::Capsule { half_height, radius } => half_height + radius,
        }
    }

    /// Volume, m³ (used with [`Mass::Density`]).
    pub fn volume(&self) -> f32 {
        let pi = core::f32::consts::PI;
        match *self {
            Shape::Sphere { radius } => 4.0 / 3.0 * pi * radius.powi(3),
            Shape::Box { half_extents: h } => 8.0 * h[0] * h[1] * h[2],
            Shape::Cylinder { half_height, radius } => pi * radius * radius * 2.0 * half_height,
            Shape::Capsule { half_height, radius } => {
                pi * radius * radius * 2.0 * half_height + 4.0 / 3.0 * pi * radius.powi(3)
            }
        }
    }

    fn validate(&self, field: &str) -> Result<()> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 && v <= 50.0 {
                Ok(())
            } else {
                Err(SimError::invalid(format!("{field}.{name}"), v, "a finite size in (0, 50] m"))
            }
        };
        match *self {
            Shape::Sphere { radius } => positive("radius", radius),
            Shape::Box { half_extents } => {
                for (i, v) in half_extents.iter().enumerate() {
                    positive(&format!("half_extents[{i}]"), *v)?;
                }
                Ok(())
            }
            Shape::Cylinder { half_height, radius } | Shape::Capsule { half_height, radius } => {
                positive("half_height", half_height)?;
                positive("radius", radius)
            }
        }
    }
}

/// How an object's mass is given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mass {
    /// Total mass, kg.
    Kg(f32),
    /// Density, kg/m³ (mass = density × volume).
    Density(f32),
}

/// A dynamic object. Its index in [`Scene::objects`] is its slot in every frame.
///
/// In a scene file (`physworld simulate --scene`) `name`, `shape`, `mass` and `position`
/// are required; the other fields default as [`ObjectSpec::new`] sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Name for reports (e.g. `agent`, `patient`, `domino3`).
    pub name: String,
    /// Shape and size.
    pub shape: Shape,
    /// Mass or density.
    pub mass: Mass,
    /// Coulomb friction coefficient (combined with the other collider's by averaging).
    /// Default 0.5.
    #[serde(default = "defaults::friction")]
    pub friction: f32,
    /// Restitution coefficient (combined by averaging). Default 0.2.
    #[serde(default = "defaults::restitution")]
    pub restitution: f32,
    /// Linear RGB colour in `[0, 1]`. Default grey.
    #[serde(default = "defaults::object_color")]
    pub color: Vec3,
    /// Initial centre position.
    pub position: Vec3,
    /// Initial orientation `[x, y, z, w]`. Default identity.
    #[serde(default = "defaults::rotation")]
    pub rotation: Quat,
    /// Initial linear velocity, m/s. Default 0.
    #[serde(default)]
    pub linvel: Vec3,
    /// Initial angular velocity, rad/s. Default 0.
    #[serde(default)]
    pub angvel: Vec3,
    /// Whether the object exists at the start (`false` for an object that a VoE episode
    /// makes appear later). Default `true`.
    #[serde(default = "defaults::present")]
    pub present: bool,
    /// Motion restricted to the x–y plane (PHYRE-style 2-D scenes). Default `false`.
    #[serde(default)]
    pub planar: bool,
}

/// The defaults of the optional fields of a scene file, as the constructors set them.
mod defaults {
    use crate::math::{QUAT_IDENTITY, Quat, Vec3};

    pub(super) fn friction() -> f32 {
        0.5
    }
    pub(super) fn restitution() -> f32 {
        0.2
    }
    pub(super) fn object_color() -> Vec3 {
        [0.5, 0.5, 0.5]
    }
    pub(super) fn static_color() -> Vec3 {
        [0.6, 0.6, 0.6]
    }
    pub(super) fn rotation() -> Quat {
        QUAT_IDENTITY
    }
    pub(super) fn present() -> bool {
        true
    }
}

impl ObjectSpec {
    /// A present, resting object at `position` with identity rotation, friction 0.5,
    /// restitution 0.2 and grey colour.
    pub fn new(name: impl Into<String>, shape: Shape, mass: Mass, position: Vec3) -> Self {
        ObjectSpec {
            name: name.into(),
            shape,
            mass,
            friction: defaults::friction(),
            restitution: defaults::restitution(),
            color: defaults::object_color(),
            position,
            rotation: defaults::rotation(),
            linvel: [0.0; 3],
            angvel: [0.0; 3],
            present: defaults::present(),
            planar: false,
        }
    }

    /// Mass in kg, whichever way it was given.
    pub fn mass_kg(&self) -> f32 {
        match self.mass {
            Mass::Kg(m) => m,
            Mass::Density(d) => d * self.shape.volume(),
        }
    }
}

/// The role of a piece of static geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticRole {
    /// The ground.
    Floor,
    /// A wall.
    Wall,
    /// An inclined plane.
    Ramp,
    /// A part of a container (floor or side).
    Container,
    /// A table or platform top.
    Table,
    /// A visual occluder panel: blocks visibility rays, takes part in no collision.
    Occluder,
}

/// A fixed box: floors, walls, ramps, container sides, occluders. In a scene file
/// `rotation`, `friction`, `restitution` and `color` default as [`StaticSpec::new`] sets
/// them. (Datasets store statics too, so unknown fields are not refused here, where a
/// newer build's dataset would become unreadable: [`Scene::check_fields`] refuses them in
/// scene files.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticSpec {
    /// Name for reports.
    pub name: String,
    /// Role.
    pub role: StaticRole,
    /// Half extents of the box, m.
    pub half_extents: Vec3,
    /// Centre position.
    pub position: Vec3,
    /// Orientation `[x, y, z, w]`. Default identity.
    #[serde(default = "defaults::rotation")]
    pub rotation: Quat,
    /// Friction coefficient. Default 0.5.
    #[serde(default = "defaults::friction")]
    pub friction: f32,
    /// Restitution coefficient. Default 0.2.
    #[serde(default = "defaults::restitution")]
    pub restitution: f32,
    /// Linear RGB colour. Default grey.
    #[serde(default = "defaults::static_color")]
    pub color: Vec3,
}

impl StaticSpec {
    /// An axis-aligned static box with friction 0.5 and restitution 0.2.
    pub fn new(name: impl Into<String>, role: StaticRole, half_extents: Vec3, position: Vec3) -> Self {
        StaticSpec {
            name: name.into(),
            role,
            half_extents,
            position,
            rotation: defaults::rotation(),
            friction: defaults::friction(),
            restitution: defaults::restitution(),
            color: defaults::static_color(),
        }
    }
}

/// A named axis-aligned goal region (a sensor: detected, never collided with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// Name, e.g. `goal`.
    pub name: String,
    /// Centre.
    pub center: Vec3,
    /// Half extents.
    pub half_extents: Vec3,
}

/// One end of a joint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointEnd {
    /// An object by index, with the anchor in the object's local frame.
    Object {
        /// Index into [`Scene::objects`].
        index: usize,
        /// Local anchor point.
        anchor: Vec3,
    },
    /// A fixed point in the world.
    World {
        /// World anchor point.
        anchor: Vec3,
    },
}

/// Joint kinds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JointKind {
    /// Ball-and-socket: the anchors coincide, rotation is free.
    Spherical,
    /// Hinge about `axis` (in both bodies' local frames).
    Revolute {
        /// Hinge axis.
        axis: Vec3,
    },
    /// Rigid weld.
    Fixed,
    /// An undamped linear spring pulling the anchors toward `rest_length` apart with force
    /// `stiffness × (distance − rest_length)`; rotation is free. Nothing collides with it.
    Spring {
        /// Stiffness, N/m.
        stiffness: f32,
        /// Rest length, m.
        rest_length: f32,
    },
}

/// A joint between two ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointSpec {
    /// Kind of joint.
    pub kind: JointKind,
    /// First end.
    pub a: JointEnd,
    /// Second end (must be an object).
    pub b: JointEnd,
}

/// An agent that applies a bounded force to one object, one action per recorded frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Index of the object pushed.
    pub object: usize,
    /// Bound on the force's magnitude, N; actions are clipped to it.
    pub max_force: f32,
    /// World-frame force applied during each recorded frame's physics steps. Entry `f`
    /// acts between frame `f` and `f + 1`; the list may be shorter than the episode
    /// (zero force after it).
    pub actions: Vec<Vec3>,
}

/// A pinhole camera, sampled per episode and recorded (used for visibility even for
/// state-only data, and for rendering).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Eye position.
    pub position: Vec3,
    /// Point looked at.
    pub look_at: Vec3,
    /// Vertical field of view, degrees.
    pub fov_y_deg: f32,
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
}

impl Default for Camera {
    fn default() -> Self {
        Camera { position: [0.0, 1.5, -4.0], look_at: [0.0, 0.3, 0.0], fov_y_deg: 50.0, width: 128, height: 128 }
    }
}

/// What the Object Contact Prediction label asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactTarget {
    /// An object by index.
    Object(usize),
    /// A zone by index.
    Zone(usize),
}

/// Physion's Object Contact Prediction: does `agent` touch `patient`?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactQuery {
    /// Object index of the agent (Physion's red object).
    pub agent: usize,
    /// The patient (Physion's yellow object) or zone.
    pub patient: ContactTarget,
}

/// Timing of a simulation. In a scene file every field defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Physics steps per second. Default [`DEFAULT_PHYSICS_HZ`]. Must be a multiple of `fps`.
    pub physics_hz: u32,
    /// Recorded frames per second. Default [`DEFAULT_FPS`].
    pub fps: u32,
    /// Duration, s; the episode has `round(duration_s * fps) + 1` frames (frame 0 is the
    /// initial state). Default [`DEFAULT_DURATION_S`].
    pub duration_s: f32,
    /// Constraint-solver iterations per physics step. Default
    /// [`DEFAULT_SOLVER_ITERATIONS`] (rapier's own default is 4, under which a stack of six
    /// boxes tilts by 0.6° in 5 s; 8 keeps it under 0.25° for ~20% more time).
    pub solver_iterations: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            physics_hz: DEFAULT_PHYSICS_HZ,
            fps: DEFAULT_FPS,
            duration_s: DEFAULT_DURATION_S,
            solver_iterations: DEFAULT_SOLVER_ITERATIONS,
        }
    }
}

impl SimConfig {
    /// Physics steps per recorded frame.
    pub fn substeps(&self) -> u32 {
        self.physics_hz / self.fps
    }

    /// Number of recorded frames, frame 0 included.
    pub fn num_frames(&self) -> u32 {
        libm::roundf(self.duration_s * self.fps as f32) as u32 + 1
    }

    /// Check the fields; errors name the field and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if !(1..=10_000).contains(&self.physics_hz) {
            return Err(SimError::invalid("sim.physics_hz", self.physics_hz, "an integer in 1..=10000"));
        }
        if self.fps == 0 || self.fps > self.physics_hz || !self.physics_hz.is_multiple_of(self.fps) {
            return Err(SimError::invalid(
                "sim.fps",
                self.fps,
                format!("a divisor of physics_hz ({}) greater than 0", self.physics_hz),
            ));
        }
        if !(1..=64).contains(&self.solver_iterations) {
            return Err(SimError::invalid("sim.solver_iterations", self.solver_iterations, "an integer in 1..=64"));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 600.0) {
            return Err(SimError::invalid("sim.duration_s", self.duration_s, "a duration in (0, 600] s"));
        }
        Ok(())
    }
}

/// A complete scene: everything needed to simulate one episode. It is also the format of
/// a scene file (`physworld simulate --scene FILE`, JSON or TOML): every field but
/// `objects` may be left out (default timing, no statics, default camera, no question).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Timing.
    #[serde(default)]
    pub sim: SimConfig,
    /// Dynamic objects (the slots of every frame).
    pub objects: Vec<ObjectSpec>,
    /// Static geometry.
    #[serde(default)]
    pub statics: Vec<StaticSpec>,
    /// Goal regions.
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// Joints.
    #[serde(default)]
    pub joints: Vec<JointSpec>,
    /// Optional agent.
    #[serde(default)]
    pub agent: Option<AgentSpec>,
    /// Camera for visibility (and rendering).
    #[serde(default)]
    pub camera: Camera,
    /// The Object Contact Prediction question, if the family asks one.
    #[serde(default)]
    pub contact_query: Option<ContactQuery>,
}

impl Scene {
    /// An empty scene with default timing and camera.
    pub fn new(sim: SimConfig) -> Self {
        Scene {
            sim,
            objects: Vec::new(),
            statics: Vec::new(),
            zones: Vec::new(),
            joints: Vec::new(),
            agent: None,
            camera: Camera::default(),
            contact_query: None,
        }
    }

    /// Refuse the fields of a scene file (`given`, the file parsed as it was written) that
    /// this scene, read from it, does not have: a misspelt or unknown field anywhere
    /// (`objects[0].fricton`, `camera.fov`), named with what is allowed there. Reading
    /// with serde ignores such fields in the types datasets also store.
    pub fn check_fields(&self, given: &serde_json::Value) -> Result<()> {
        let known = serde_json::to_value(self).map_err(|e| SimError::invalid("scene", e.to_string(), "a scene"))?;
        unknown_fields(given, &known, "")
    }

    /// Check every field; the error names the field (`objects[3].mass`), the value and what
    /// is allowed.
    pub fn validate(&self) -> Result<()> {
        self.sim.validate()?;
        for (i, o) in self.objects.iter().enumerate() {
            let f = |name: &str| format!("objects[{i}].{name}");
            o.shape.validate(&f("shape"))?;
            let mass = o.mass_kg();
            if !(mass.is_finite() && mass > 0.0) {
                return Err(SimError::invalid(
                    f("mass"),
                    format!("{:?}", o.mass),
                    "a positive finite mass (kg) or density (kg/m³)",
                ));
            }
            check_range(&f("friction"), o.friction, 0.0, 10.0)?;
            check_range(&f("restitution"), o.restitution, 0.0, 1.0)?;
            for (name, v) in [("position", o.position), ("linvel", o.linvel), ("angvel", o.angvel), ("color", o.color)]
            {
                check_finite(&f(name), v)?;
            }
            check_unit_quat(&f("rotation"), o.rotation)?;
        }
        for (i, s) in self.statics.iter().enumerate() {
            Shape::Box { half_extents: s.half_extents }.validate(&format!("statics[{i}].half_extents"))?;
            check_finite(&format!("statics[{i}].position"), s.position)?;
            check_unit_quat(&format!("statics[{i}].rotation"), s.rotation)?;
            check_range(&format!("statics[{i}].friction"), s.friction, 0.0, 10.0)?;
            check_range(&format!("statics[{i}].restitution"), s.restitution, 0.0, 1.0)?;
        }
        for (i, z) in self.zones.iter().enumerate() {
            Shape::Box { half_extents: z.half_extents }.validate(&format!("zones[{i}].half_extents"))?;
            check_finite(&format!("zones[{i}].center"), z.center)?;
        }
        let n = self.objects.len();
        for (i, j) in self.joints.iter().enumerate() {
            for (end, e) in [("a", j.a), ("b", j.b)] {
                if let JointEnd::Object { index, .. } = e
                    && index >= n
                {
                    return Err(SimError::invalid(
                        format!("joints[{i}].{end}.index"),
                        index,
                        format!("an object index below {n}"),
                    ));
                }
            }
            if !matches!(j.b, JointEnd::Object { .. }) {
                return Err(SimError::invalid(format!("joints[{i}].b"), "world", "an object end"));
            }
            for (end, JointEnd::Object { anchor, .. } | JointEnd::World { anchor }) in [("a", j.a), ("b", j.b)] {
                check_finite(&format!("joints[{i}].{end}.anchor"), anchor)?;
            }
            if let JointKind::Revolute { axis } = j.kind {
                let norm = crate::math::norm(axis);
                if !(norm.is_finite() && norm > 1e-6) {
                    return Err(SimError::invalid(
                        format!("joints[{i}].axis"),
                        format!("{axis:?}"),
                        "a finite non-zero axis",
                    ));
                }
            }
            if let JointKind::Spring { stiffness, rest_length } = j.kind {
                check_range(&format!("joints[{i}].stiffness"), stiffness, 0.0, 1e6)?;
                check_range(&format!("joints[{i}].rest_length"), rest_length, 0.0, 100.0)?;
            }
        }
        if let Some(a) = &self.agent {
            if a.object >= n {
                return Err(SimError::invalid("agent.object", a.object, format!("an object index below {n}")));
            }
            check_range("agent.max_force", a.max_force, 0.0, 1.0e4)?;
            for (f, v) in a.actions.iter().enumerate() {
                check_finite(&format!("agent.actions[{f}]"), *v)?;
            }
        }
        if let Some(q) = &self.contact_query {
            if q.agent >= n {
                return Err(SimError::invalid("contact_query.agent", q.agent, format!("an object index below {n}")));
            }
            match q.patient {
                ContactTarget::Object(p) if p >= n || p == q.agent => {
                    return Err(SimError::invalid(
                        "contact_query.patient",
                        p,
                        format!("an object index below {n}, not the agent"),
                    ));
                }
                ContactTarget::Zone(z) if z >= self.zones.len() => {
                    return Err(SimError::invalid(
                        "contact_query.patient",
                        z,
                        format!("a zone index below {}", self.zones.len()),
                    ));
                }
                _ => {}
            }
        }
        let c = &self.camera;
        check_finite("camera.position", c.position)?;
        check_finite("camera.look_at", c.look_at)?;
        if !(c.fov_y_deg > 1.0 && c.fov_y_deg < 179.0) {
            return Err(SimError::invalid("camera.fov_y_deg", c.fov_y_deg, "an angle in (1, 179) degrees"));
        }
        if c.width == 0 || c.height == 0 {
            return Err(SimError::invalid(
                "camera.width/height",
                format!("{}x{}", c.width, c.height),
                "positive pixel counts",
            ));
        }
        if crate::math::dist(c.position, c.look_at) < 1e-4 {
            return Err(SimError::invalid(
                "camera.look_at",
                format!("{:?}", c.look_at),
                "a point distinct from camera.position",
            ));
        }
        Ok(())
    }
}

/// Check `lo <= v <= hi` and finiteness.
pub(crate) fn check_range(field: &str, v: f32, lo: f32, hi: f32) -> Result<()> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(SimError::invalid(field, v, format!("a finite number in [{lo}, {hi}]")))
    }
}

fn unknown_fields(given: &serde_json::Value, known: &serde_json::Value, path: &str) -> Result<()> {
    use serde_json::Value;
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => {
            for (key, gv) in g {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match k.get(key) {
                    Some(kv) => unknown_fields(gv, kv, &at)?,
                    None => {
                        let allowed: Vec<&str> = k.keys().map(String::as_str).collect();
                        return Err(SimError::invalid(
                            at,
                            "an unknown field",
                            format!("the fields {}", allowed.join(", ")),
                        ));
                    }
                }
            }
            Ok(())
        }
        (Value::Array(g), Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
                unknown_fields(gv, kv, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_finite(field: &str, v: Vec3) -> Result<()> {
    if crate::math::finite3(v) { Ok(()) } else { Err(SimError::invalid(field, format!("{v:?}"), "finite numbers")) }
}

fn check_unit_quat(field: &str, q: Quat) -> Result<()> {
    let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n.is_finite() && (n - 1.0).abs() < 1e-3 {
        Ok(())
    } else {
        Err(SimError::invalid(field, format!("{q:?}"), "a unit quaternion [x, y, z, w]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scene file may leave out every optional field, and they take the constructors'
    /// values; a whole scene reads back as itself (the strict format still reads what the
    /// crate writes).
    #[test]
    fn scene_files_default_the_optional_fields_and_round_trip() {
        let file = r#"{"objects": [{"name": "b", "shape": {"kind": "sphere", "radius": 0.1},
                       "mass": {"kg": 2.0}, "position": [0, 1, 0]}],
                       "statics": [{"name": "floor", "role": "floor", "half_extents": [5, 0.5, 5],
                       "position": [0, -0.5, 0]}]}"#;
        let read: Scene = serde_json::from_str(file).expect("minimal scene");
        let mut want = Scene::new(SimConfig::default());
        want.objects.push(ObjectSpec::new("b", Shape::Sphere { radius: 0.1 }, Mass::Kg(2.0), [0.0, 1.0, 0.0]));
        want.statics.push(StaticSpec::new("floor", StaticRole::Floor, [5.0, 0.5, 5.0], [0.0, -0.5, 0.0]));
        assert_eq!(read, want);

        let mut full = want.clone();
        full.objects[0].linvel = [1.0, 0.0, 0.0];
        full.objects[0].planar = true;
        full.sim.solver_iterations = 4;
        full.contact_query = Some(ContactQuery { agent: 0, patient: ContactTarget::Object(0) });
        let text = serde_json::to_string(&full).expect("serialise");
        assert_eq!(serde_json::from_str::<Scene>(&text).expect("read back"), full);

        let typo = file.replace("\"position\": [0, 1, 0]", "\"positon\": [0, 1, 0]");
        let err = serde_json::from_str::<Scene>(&typo).expect_err("unknown field").to_string();
        assert!(err.contains("positon"), "{err}");

        // Unknown fields where serde reads leniently (statics, which datasets store too; a
        // shape's fields) are found by check_fields, with their path.
        for (typo, path, allowed) in [
            (file.replace("\"role\"", "\"rol\": \"floor\", \"role\""), "statics[0].rol", "friction"),
            (file.replace("\"radius\": 0.1", "\"radius\": 0.1, \"radus\": 2"), "objects[0].shape.radus", "radius"),
        ] {
            let given: serde_json::Value = serde_json::from_str(&typo).expect("json");
            let scene: Scene = serde_json::from_value(given.clone()).expect("lenient read");
            let err = scene.check_fields(&given).expect_err("unknown").to_string();
            assert!(err.contains(path) && err.contains(allowed), "{err}");
        }
        let given: serde_json::Value = serde_json::from_str(file).expect("json");
        read.check_fields(&given).expect("every field known");
    }
}
