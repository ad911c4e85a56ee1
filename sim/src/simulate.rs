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

fn reject(reason: RejectReason, frame: u32, detail: String) -> Simulated {
    Err(Rejection { reason, frame, detail })
}

fn run(scene: &Scene, health: &HealthConfig, interventions: &[(u32, Intervention)]) -> Simulated {
    let mut world = SceneWorld::build(scene);
    let view = View::new(&scene.camera);
    let n = scene.sim.num_frames();
    let substeps = scene.sim.substeps();
    let dt = 1.0 / scene.sim.physics_hz as f32;
    let fps = scene.sim.fps as f32;
    let mut frames: Vec<Frame> = Vec::with_capacity(n as usize);
    let mut acc: BTreeMap<(Body, Body), f32> = BTreeMap::new();
    let mut steps = 0u64;
    let mut actions_out = scene.agent.as_ref().map(|_| Vec::with_capacity(n as usize));

    let mut energy_base = world.energy();
    let mut energy_check = true;
    let mut work = 0.0f32;

    for f in 0..n {
        if f > 0 {
            let force = scene.agent.as_ref().map(|a| {
                let raw = a.actions.get(f as usize - 1).copied().unwrap_or([0.0; 3]);
                let m = norm(raw);
                let clipped = if m > a.max_force && m > 0.0 { scale(raw, a.max_force / m) } else { raw };
                world.set_force(a.object, clipped);
                (a.object, clipped)
            });
            if let (Some((_, fv)), Some(out)) = (force, actions_out.as_mut()) {
                out.push(fv);
            }
            for _ in 0..substeps {
                if let Some((obj, fv)) = force
                    && let Some(vel) = world.linvel(obj)
                {
                    work += dot(fv, vel) * dt;
                }
                world.step();
                steps += 1;
                if steps == 1 {
                    // Frame 0's contacts: those detected at the start (the first step's
                    // collision detection runs on the initial poses), with its impulses.
                    let mut first = BTreeMap::new();
                    world.accumulate_contacts(&mut first);
                    frames[0].contacts = to_contacts(first);
                    frames[0].zone_contacts = world.zone_contacts();
                }
                let (pen, pair) = world.accumulate_contacts(&mut acc);
                if pen > health.max_penetration {
                    return reject(
                        RejectReason::Interpenetration,
                        f,
                        format!("{pair:?} overlap {pen:.4} m > bound {} m", health.max_penetration),
                    );
                }
            }
        }
        let mut intervened = false;
        for (_, iv) in interventions.iter().filter(|(at, _)| *at == f) {
            apply(&mut world, iv);
            intervened = true;
            if matches!(iv, Intervention::GravityScale { scale, .. } if *scale < 0.0) {
                energy_check = false;
            }
        }
        if intervened {
            energy_base = world.energy() - work;
        }
        let mut states = world.states().to_vec();
        for (i, s) in states.iter().enumerate().filter(|(_, s)| s.present) {
            if !(finite3(s.position)
                && finite3(s.linvel)
                && finite3(s.angvel)
                && s.rotation.iter().all(|x| x.is_finite()))
            {
                return reject(RejectReason::NonFinite, f, format!("object {i} state is not finite"));
            }
            let speed = norm(s.linvel);
            if speed > health.max_speed {
                return reject(
                    RejectReason::SpeedBound,
                    f,
                    format!("object {i} speed {speed:.2} m/s > bound {} m/s", health.max_speed),
                );
            }
        }
        if energy_check {
            let e = world.energy();
            let bound = (1.0 + health.energy_growth) * energy_base.max(0.0) + work.max(0.0) + health.energy_slack_j;
            if !e.is_finite() || e > bound {
                return reject(RejectReason::EnergyBlowUp, f, format!("energy {e:.3} J > bound {bound:.3} J"));
            }
        }
        mark_visible(&world, &view, &mut states);
        let contacts = to_contacts(std::mem::take(&mut acc));
        frames.push(Frame { time: f as f32 / fps, objects: states, contacts, zone_contacts: world.zone_contacts() });
    }

    let labels = generic_labels(scene, &frames);
    Ok(Episode {
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
        actions: actions_out,
        agent_object: scene.agent.as_ref().map(|a| a.object),
        placement: None,
        template: None,
        frames,
        labels,
        physics_steps: steps,
    })
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
