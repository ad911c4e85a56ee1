//! The simulation loop: fixed physics steps, recording at the scene's frame rate, health
//! checks, interventions (for violation-of-expectation episodes) and generic labels.

use std::collections::BTreeMap;

use crate::episode::{Body, Contact, ContactLabel, Episode, Frame, Labels, ObjectProps};
use crate::error::{RejectReason, Rejection, Result};
use crate::math::{Vec3, dot, finite3, norm, scale};
use crate::scene::{ContactTarget, Scene, Shape, StaticRole};
use crate::split::Split;
use crate::visibility::{View, mark_visible};
use crate::world::SceneWorld;

/// Default speed bound, m/s. See [`HealthConfig::max_speed`].
pub const DEFAULT_MAX_SPEED: f32 = 25.0;
/// Default penetration bound, m. See [`HealthConfig::max_penetration`].
pub const DEFAULT_MAX_PENETRATION: f32 = 0.03;
/// Default relative energy growth bound. See [`HealthConfig::energy_growth`].
pub const DEFAULT_ENERGY_GROWTH: f32 = 0.25;
/// Default absolute energy slack, J. See [`HealthConfig::energy_slack_j`].
pub const DEFAULT_ENERGY_SLACK_J: f32 = 0.5;

/// Bounds of the health checks that reject a diverging simulation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthConfig {
    /// Reject when any object moves faster than this, m/s. Default [`DEFAULT_MAX_SPEED`].
    pub max_speed: f32,
    /// Reject when any two colliders overlap deeper than this, m.
    /// Default [`DEFAULT_MAX_PENETRATION`].
    pub max_penetration: f32,
    /// Reject when mechanical energy exceeds `(1 + energy_growth) * E0 + W + energy_slack_j`,
    /// with `E0` the energy at the start (or after an intervention) and `W` the agent's work.
    /// Default [`DEFAULT_ENERGY_GROWTH`].
    pub energy_growth: f32,
    /// See `energy_growth`. Default [`DEFAULT_ENERGY_SLACK_J`].
    pub energy_slack_j: f32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            max_speed: DEFAULT_MAX_SPEED,
            max_penetration: DEFAULT_MAX_PENETRATION,
            energy_growth: DEFAULT_ENERGY_GROWTH,
            energy_slack_j: DEFAULT_ENERGY_SLACK_J,
        }
    }
}

/// A change to the world made at a recorded frame, after the physics steps that lead to it
/// and before it is recorded; physics then continues from the changed world.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Intervention {
    /// The object vanishes.
    Remove {
        /// Slot.
        object: usize,
    },
    /// The object appears with this state.
    Insert {
        /// Slot.
        object: usize,
        /// Position.
        position: Vec3,
        /// Orientation.
        rotation: [f32; 4],
        /// Linear velocity.
        linvel: Vec3,
        /// Angular velocity.
        angvel: Vec3,
    },
    /// The object is rebuilt as a fresh body with this shape and state (its solver history
    /// dropped), or appears with them if absent. VoE members take it at the switch frame,
    /// possible ones with their own state, so that every member's world after the switch is
    /// built the same way.
    Replace {
        /// Slot.
        object: usize,
        /// Shape from now on.
        shape: Shape,
        /// Position.
        position: Vec3,
        /// Orientation.
        rotation: [f32; 4],
        /// Linear velocity.
        linvel: Vec3,
        /// Angular velocity.
        angvel: Vec3,
    },
    /// The object jumps by `offset`, keeping its velocity.
    Teleport {
        /// Slot.
        object: usize,
        /// Displacement.
        offset: Vec3,
    },
    /// The object takes a new shape, keeping its mass.
    SetShape {
        /// Slot.
        object: usize,
        /// New shape.
        shape: Shape,
    },
    /// The object passes through static `statics` from now on.
    PassThrough {
        /// Slot.
        object: usize,
        /// Static index.
        statics: usize,
    },
    /// An unrecorded solid box appears (repels objects from empty space).
    HiddenSolid {
        /// Half extents.
        half_extents: Vec3,
        /// Centre.
        position: Vec3,
        /// Restitution.
        restitution: f32,
    },
    /// The object's gravity is scaled (0 floats, negative falls up).
    GravityScale {
        /// Slot.
        object: usize,
        /// Scale factor.
        scale: f32,
    },
}

/// Outcome of a simulation: an episode, or the reason it was rejected.
pub type Simulated = std::result::Result<Episode, Rejection>;

/// Simulate `scene` with default health bounds and no interventions.
///
/// The outer `Result` is a bad scene (a typed error naming the field); the inner is the
/// physics outcome. The episode's family, split and seed are placeholders for the caller
/// to fill.
pub fn simulate(scene: &Scene) -> Result<Simulated> {
    simulate_with(scene, &HealthConfig::default(), &[])
}

/// Simulate `scene` with `health` bounds and `interventions` (frame, change).
pub fn simulate_with(scene: &Scene, health: &HealthConfig, interventions: &[(u32, Intervention)]) -> Result<Simulated> {
    scene.validate()?;
    Ok(run(scene, health, interventions))
}

fn run(scene: &Scene, health: &HealthConfig, interventions: &[(u32, Intervention)]) -> Simulated {
    let mut sim = Simulation::begin(scene, health, interventions)?;
    while !sim.done() {
        let f = sim.frames.len();
        let raw = scene.agent.as_ref().and_then(|a| a.actions.get(f - 1).copied()).unwrap_or([0.0; 3]);
        sim.advance(raw)?;
    }
    Ok(sim.finish())
}

/// A simulation in progress, advanced one recorded frame at a time: what [`simulate_with`]
/// does in one call, for callers that choose the agent's force as the episode unfolds
/// (closed-loop planning). A clone is a fork: it continues exactly (bit for bit) as the
/// original would under the same forces, so a planner can try futures from the present
/// without re-simulating the past. Stepping a scene through to its end under its own
/// agent actions gives the same episode as [`simulate_with`].
#[derive(Clone)]
pub struct Simulation<'a> {
    scene: &'a Scene,
    health: HealthConfig,
    interventions: &'a [(u32, Intervention)],
    world: SceneWorld,
    view: View,
    frames: Vec<Frame>,
    acc: BTreeMap<(Body, Body), f32>,
    steps: u64,
    actions_out: Option<Vec<Vec3>>,
    energy_base: f32,
    energy_check: bool,
    work: f32,
    rejected: Option<Rejection>,
}

impl<'a> Simulation<'a> {
    /// Build the world of `scene` and record its first frame (after any intervention at
    /// frame 0). The outer `Result` is a bad scene; the inner, a first frame that fails the
    /// health checks.
    pub fn start(
        scene: &'a Scene,
        health: &HealthConfig,
        interventions: &'a [(u32, Intervention)],
    ) -> Result<std::result::Result<Simulation<'a>, Rejection>> {
        scene.validate()?;
        Ok(Simulation::begin(scene, health, interventions))
    }

    fn begin(
        scene: &'a Scene,
        health: &HealthConfig,
        interventions: &'a [(u32, Intervention)],
    ) -> std::result::Result<Simulation<'a>, Rejection> {
        let world = SceneWorld::build(scene);
        let n = scene.sim.num_frames() as usize;
        let energy_base = world.energy();
        let mut sim = Simulation {
            scene,
            health: health.clone(),
            interventions,
            view: View::new(&scene.camera),
            world,
            frames: Vec::with_capacity(n),
            acc: BTreeMap::new(),
            steps: 0,
            actions_out: scene.agent.as_ref().map(|_| Vec::with_capacity(n)),
            energy_base,
            energy_check: true,
            work: 0.0,
            rejected: None,
        };
        sim.record()?;
        Ok(sim)
    }

    /// Frames the episode will have.
    pub fn num_frames(&self) -> usize {
        self.scene.sim.num_frames() as usize
    }

    /// Whether every frame has been recorded.
    pub fn done(&self) -> bool {
        self.frames.len() >= self.num_frames()
    }

    /// The frames recorded so far (the last is the present). Frame 0's contacts are filled
    /// in by the first [`Simulation::advance`], whose collision detection finds them.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The scene being simulated.
    pub fn scene(&self) -> &'a Scene {
        self.scene
    }

    /// Physics steps taken so far.
    pub fn physics_steps(&self) -> u64 {
        self.steps
    }

    /// Simulate to the next recorded frame with `action` as the agent's force (clipped to
    /// its bound; ignored when the scene has no agent) and record it. A simulation that
    /// fails a health check stays rejected; once every frame is recorded this does nothing.
    pub fn advance(&mut self, action: Vec3) -> std::result::Result<(), Rejection> {
        if let Some(r) = &self.rejected {
            return Err(r.clone());
        }
        if self.done() {
            return Ok(());
        }
        let f = self.frames.len() as u32;
        let substeps = self.scene.sim.substeps();
        let dt = 1.0 / self.scene.sim.physics_hz as f32;
        let world = &mut self.world;
        let force = self.scene.agent.as_ref().map(|a| {
            let m = norm(action);
            let clipped = if m > a.max_force && m > 0.0 { scale(action, a.max_force / m) } else { action };
            world.set_force(a.object, clipped);
            (a.object, clipped)
        });
        if let (Some((_, fv)), Some(out)) = (force, self.actions_out.as_mut()) {
            out.push(fv);
        }
        for _ in 0..substeps {
            if let Some((obj, fv)) = force
                && let Some(vel) = self.world.linvel(obj)
            {
                self.work += dot(fv, vel) * dt;
            }
            self.world.step();
            self.steps += 1;
            if self.steps == 1 {
                // Frame 0's contacts: those detected at the start (the first step's
                // collision detection runs on the initial poses), with its impulses.
                let mut first = BTreeMap::new();
                self.world.accumulate_contacts(&mut first);
                self.frames[0].contacts = to_contacts(first);
                self.frames[0].zone_contacts = self.world.zone_contacts();
            }
            let (pen, pair) = self.world.accumulate_contacts(&mut self.acc);
            if pen > self.health.max_penetration {
                let bound = self.health.max_penetration;
                return self.fail(
                    RejectReason::Interpenetration,
                    f,
                    format!("{pair:?} overlap {pen:.4} m > bound {bound} m"),
                );
            }
        }
        self.record()
    }

    fn fail(&mut self, reason: RejectReason, frame: u32, detail: String) -> std::result::Result<(), Rejection> {
        let r = Rejection { reason, frame, detail };
        self.rejected = Some(r.clone());
        Err(r)
    }

    /// Apply the interventions at the next frame, check the world's health and record it.
    fn record(&mut self) -> std::result::Result<(), Rejection> {
        let f = self.frames.len() as u32;
        let health = &self.health;
        let mut intervened = false;
        for (_, iv) in self.interventions.iter().filter(|(at, _)| *at == f) {
            apply(&mut self.world, iv);
            intervened = true;
            if matches!(iv, Intervention::GravityScale { scale, .. } if *scale < 0.0) {
                self.energy_check = false;
            }
        }
        if intervened {
            self.energy_base = self.world.energy() - self.work;
        }
        let mut states = self.world.states().to_vec();
        for (i, s) in states.iter().enumerate().filter(|(_, s)| s.present) {
            if !(finite3(s.position)
                && finite3(s.linvel)
                && finite3(s.angvel)
                && s.rotation.iter().all(|x| x.is_finite()))
            {
                return self.fail(RejectReason::NonFinite, f, format!("object {i} state is not finite"));
            }
            let speed = norm(s.linvel);
            if speed > health.max_speed {
                let detail = format!("object {i} speed {speed:.2} m/s > bound {} m/s", health.max_speed);
                return self.fail(RejectReason::SpeedBound, f, detail);
            }
        }
        if self.energy_check {
            let e = self.world.energy();
            let bound =
                (1.0 + health.energy_growth) * self.energy_base.max(0.0) + self.work.max(0.0) + health.energy_slack_j;
            if !e.is_finite() || e > bound {
                return self.fail(RejectReason::EnergyBlowUp, f, format!("energy {e:.3} J > bound {bound:.3} J"));
            }
        }
        mark_visible(&self.world, &self.view, &mut states);
        let contacts = to_contacts(std::mem::take(&mut self.acc));
        let time = f as f32 / self.scene.sim.fps as f32;
        self.frames.push(Frame { time, objects: states, contacts, zone_contacts: self.world.zone_contacts() });
        Ok(())
    }

    /// The episode recorded so far (all of it once [`Simulation::done`]), with the generic
    /// labels computed from its frames. Family, split and seed are placeholders for the
    /// caller to fill.
    pub fn finish(self) -> Episode {
        let scene = self.scene;
        let frames = self.frames;
        let labels = generic_labels(scene, &frames);
        Episode {
            family: "custom".into(),
            split: Split::Train,
            seed: 0,
            attempt: 0,
            fps: scene.sim.fps,
            physics_hz: scene.sim.physics_hz,
            camera: scene.camera.clone(),
            objects: scene
                .objects
                .iter()
                .map(|o| ObjectProps {
                    name: o.name.clone(),
                    shape: o.shape.kind(),
                    mass: o.mass_kg(),
                    friction: o.friction,
                    restitution: o.restitution,
                    color: o.color,
                })
                .collect(),
            statics: scene.statics.clone(),
            zones: scene.zones.clone(),
            joints: scene.joints.clone(),
            actions: self.actions_out,
            agent_object: scene.agent.as_ref().map(|a| a.object),
            placement: None,
            template: None,
            frames,
            labels,
            physics_steps: self.steps,
        }
    }
}

fn to_contacts(acc: BTreeMap<(Body, Body), f32>) -> Vec<Contact> {
    acc.into_iter().map(|((a, b), impulse)| Contact { a, b, impulse }).collect()
}

fn apply(world: &mut SceneWorld, iv: &Intervention) {
    match *iv {
        Intervention::Remove { object } => world.remove_object(object),
        Intervention::Insert { object, position, rotation, linvel, angvel } => {
            world.insert_object(object, position, rotation, linvel, angvel)
        }
        Intervention::Replace { object, shape, position, rotation, linvel, angvel } => {
            world.remove_object(object);
            world.insert_object_shaped(object, shape, position, rotation, linvel, angvel)
        }
        Intervention::Teleport { object, offset } => world.teleport(object, offset),
        Intervention::SetShape { object, shape } => world.set_shape(object, shape),
        Intervention::PassThrough { object, statics } => world.ghost_through(object, statics),
        Intervention::HiddenSolid { half_extents, position, restitution } => {
            world.insert_hidden_solid(half_extents, position, restitution)
        }
        Intervention::GravityScale { object, scale } => world.set_gravity_scale(object, scale),
    }
}

/// Whether `frame` records a contact between the query's agent and patient.
pub fn touches(frame: &Frame, agent: usize, patient: ContactTarget) -> bool {
    let a = Body::Object(agent as u16);
    match patient {
        ContactTarget::Object(p) => {
            let p = Body::Object(p as u16);
            frame.contacts.iter().any(|c| (c.a == a && c.b == p) || (c.a == p && c.b == a))
        }
        ContactTarget::Zone(z) => frame.zone_contacts.contains(&(z as u16, agent as u16)),
    }
}

fn generic_labels(scene: &Scene, frames: &[Frame]) -> Labels {
    let mut labels = Labels::default();
    if let Some(q) = scene.contact_query {
        let first = frames.iter().position(|fr| touches(fr, q.agent, q.patient)).map(|f| f as u32);
        labels.contact = Some(ContactLabel {
            query: q,
            occurred: first.is_some(),
            first_frame: first,
            first_time: first.map(|f| f as f32 / scene.sim.fps as f32),
        });
    }
    let floors: Vec<u16> =
        scene.statics.iter().enumerate().filter(|(_, s)| s.role == StaticRole::Floor).map(|(i, _)| i as u16).collect();
    let on_floor = |fr: &Frame, o: u16| {
        fr.contacts.iter().any(|c| c.a == Body::Object(o) && matches!(c.b, Body::Static(s) if floors.contains(&s)))
    };
    if let Some(f0) = frames.first() {
        let candidates: Vec<u16> =
            (0..scene.objects.len() as u16).filter(|&o| f0.objects[o as usize].present && !on_floor(f0, o)).collect();
        labels.first_floor_contact =
            frames.iter().skip(1).find_map(|fr| candidates.iter().copied().find(|&o| on_floor(fr, o))).map(usize::from);
    }
    if let Some(last) = frames.last() {
        labels.final_positions = last.objects.iter().map(|s| s.position).collect();
    }
    labels
}
