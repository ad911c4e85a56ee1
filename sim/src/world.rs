//! Building a Rapier world from a [`Scene`] and reading it back.

use std::collections::BTreeMap;

use rapier3d::prelude::*;

use crate::episode::{Body, ObjectState};
use crate::math::{Quat, Vec3};
use crate::scene::{GRAVITY, JointEnd, JointKind, Mass, ObjectSpec, Scene, Shape, StaticRole};

// Collision groups: objects collide with objects, solids and zones; occluders with nothing.
const G_OBJECT: Group = Group::GROUP_1;
const G_SOLID: Group = Group::GROUP_2;
const G_OCCLUDER: Group = Group::GROUP_3;
const G_ZONE: Group = Group::GROUP_4;
/// Membership of an object that passes through a "ghost" solid (solidity violations).
const G_GHOST_OBJECT: Group = Group::GROUP_5;

// Collider user data: tag << 32 | index.
const TAG_OBJECT: u128 = 1;
const TAG_STATIC: u128 = 2;
const TAG_ZONE: u128 = 3;
const TAG_HIDDEN: u128 = 4;

fn tag(kind: u128, index: usize) -> u128 {
    (kind << 32) | index as u128
}

fn untag(data: u128) -> (u128, usize) {
    (data >> 32, (data & 0xffff_ffff) as usize)
}

pub(crate) fn v(a: Vec3) -> Vector {
    Vector::new(a[0], a[1], a[2])
}

pub(crate) fn arr(a: Vector) -> Vec3 {
    [a.x, a.y, a.z]
}

fn quat(q: Quat) -> Rotation {
    Rotation::from_xyzw(q[0], q[1], q[2], q[3]).normalize()
}

fn collider_for(shape: &Shape) -> ColliderBuilder {
    match *shape {
        Shape::Sphere { radius } => ColliderBuilder::ball(radius),
        Shape::Box { half_extents: h } => ColliderBuilder::cuboid(h[0], h[1], h[2]),
        // A plain parry cylinder standing on a cuboid sinks ~5.4 cm into it for some sizes
        // (rapier 0.36.1; e.g. half height 0.08, radius 0.05): a cylinder with a thin
        // rounded border (same outer size) rests correctly.
        Shape::Cylinder { half_height, radius } => {
            let border = (0.1 * half_height.min(radius)).min(0.005);
            ColliderBuilder::round_cylinder(half_height - border, radius - border, border)
        }
        Shape::Capsule { half_height, radius } => ColliderBuilder::capsule_y(half_height, radius),
    }
}

fn object_groups() -> InteractionGroups {
    InteractionGroups::new(G_OBJECT, G_OBJECT | G_SOLID | G_ZONE | G_GHOST_OBJECT, InteractionTestMode::And)
}

#[derive(Debug, Clone)]
struct LiveObject {
    body: RigidBodyHandle,
    collider: ColliderHandle,
    shape: Shape,
}

/// A Rapier world built from a scene, with the map back to scene indices.
pub(crate) struct SceneWorld {
    pub(crate) pw: PhysicsWorld,
    specs: Vec<ObjectSpec>,
    objects: Vec<Option<LiveObject>>,
    statics: Vec<ColliderHandle>,
    zones: Vec<ColliderHandle>,
    /// Last known state of each slot (kept for absent slots too).
    last: Vec<ObjectState>,
    /// Springs, for the elastic energy the health check counts.
    springs: Vec<Spring>,
}

/// A spring joint: its two (body, local anchor) ends, stiffness and rest length.
#[derive(Clone)]
struct Spring {
    ends: [(RigidBodyHandle, Vector); 2],
    stiffness: f32,
    rest_length: f32,
}

/// A copy of the world that continues exactly as the original would: every part of
/// Rapier's state (bodies, colliders, joints, islands, broad and narrow phase with its
/// contact manifolds and warm-start impulses) is cloned; the pipelines hold only
/// per-step workspace and start fresh.
impl Clone for SceneWorld {
    fn clone(&self) -> Self {
        let pw = &self.pw;
        let copy = PhysicsWorld {
            gravity: pw.gravity,
            integration_parameters: pw.integration_parameters,
            physics_pipeline: PhysicsPipeline::new(),
            collision_pipeline: CollisionPipeline::new(),
            islands: pw.islands.clone(),
            broad_phase: pw.broad_phase.clone(),
            narrow_phase: pw.narrow_phase.clone(),
            bodies: pw.bodies.clone(),
            colliders: pw.colliders.clone(),
            impulse_joints: pw.impulse_joints.clone(),
            multibody_joints: pw.multibody_joints.clone(),
            soft_bodies: pw.soft_bodies.clone(),
            ccd_solver: pw.ccd_solver.clone(),
        };
        SceneWorld {
            pw: copy,
            specs: self.specs.clone(),
            objects: self.objects.clone(),
            statics: self.statics.clone(),
            zones: self.zones.clone(),
            last: self.last.clone(),
            springs: self.springs.clone(),
        }
    }
}

impl SceneWorld {
    /// Build the world. The scene must have been validated.
    pub(crate) fn build(scene: &Scene) -> Self {
        let mut pw = PhysicsWorld::new();
        pw.gravity = Vector::new(0.0, -GRAVITY, 0.0);
        pw.integration_parameters.dt = 1.0 / scene.sim.physics_hz as f32;
        pw.integration_parameters.num_solver_iterations = scene.sim.solver_iterations as usize;

        let mut statics = Vec::with_capacity(scene.statics.len());
        let ground = pw.insert_body(RigidBodyBuilder::fixed());
        for (i, s) in scene.statics.iter().enumerate() {
            let h = s.half_extents;
            let groups = if s.role == StaticRole::Occluder {
                InteractionGroups::new(G_OCCLUDER, Group::NONE, InteractionTestMode::And)
            } else {
                InteractionGroups::new(G_SOLID, G_OBJECT | G_GHOST_OBJECT, InteractionTestMode::And)
            };
            let c = ColliderBuilder::cuboid(h[0], h[1], h[2])
                .position(Pose::from_parts(v(s.position), quat(s.rotation)))
                .friction(s.friction)
                .restitution(s.restitution)
                .collision_groups(groups)
                .user_data(tag(TAG_STATIC, i));
            statics.push(pw.insert_collider(c, Some(ground)));
        }
        let mut zones = Vec::with_capacity(scene.zones.len());
        for (i, z) in scene.zones.iter().enumerate() {
            let h = z.half_extents;
            let c = ColliderBuilder::cuboid(h[0], h[1], h[2])
                .translation(v(z.center))
                .sensor(true)
                .collision_groups(InteractionGroups::new(G_ZONE, G_OBJECT | G_GHOST_OBJECT, InteractionTestMode::And))
                .user_data(tag(TAG_ZONE, i));
            zones.push(pw.insert_collider(c, Some(ground)));
        }

        let mut world = SceneWorld {
            pw,
            specs: scene.objects.clone(),
            objects: vec![None; scene.objects.len()],
            statics,
            zones,
            last: Vec::with_capacity(scene.objects.len()),
            springs: Vec::new(),
        };
        for (i, o) in scene.objects.iter().enumerate() {
            world.last.push(ObjectState {
                present: false,
                visible: false,
                position: o.position,
                rotation: o.rotation,
                linvel: o.linvel,
                angvel: o.angvel,
                shape: o.shape.kind(),
                size: o.shape.half_extents(),
            });
            if o.present {
                world.insert_object(i, o.position, o.rotation, o.linvel, o.angvel);
            }
        }
        for j in &scene.joints {
            world.insert_joint(j.kind, j.a, j.b);
        }
        world
    }

    /// Insert slot `i` with the given state (used at build time and when an object appears).
    pub(crate) fn insert_object(&mut self, i: usize, pos: Vec3, rot: Quat, linvel: Vec3, angvel: Vec3) {
        let shape = self.specs[i].shape;
        self.insert_object_shaped(i, shape, pos, rot, linvel, angvel);
    }

    /// [`SceneWorld::insert_object`] with `shape` instead of the spec's (mass and material
    /// from the spec).
    pub(crate) fn insert_object_shaped(
        &mut self,
        i: usize,
        shape: Shape,
        pos: Vec3,
        rot: Quat,
        linvel: Vec3,
        angvel: Vec3,
    ) {
        let o = &self.specs[i];
        let mut rb =
            RigidBodyBuilder::dynamic().pose(Pose::from_parts(v(pos), quat(rot))).linvel(v(linvel)).angvel(v(angvel));
        if o.planar {
            rb = rb.locked_axes(
                LockedAxes::TRANSLATION_LOCKED_Z | LockedAxes::ROTATION_LOCKED_X | LockedAxes::ROTATION_LOCKED_Y,
            );
        }
        let mut c = collider_for(&shape)
            .friction(o.friction)
            .restitution(o.restitution)
            .collision_groups(object_groups())
            .user_data(tag(TAG_OBJECT, i));
        c = match o.mass {
            Mass::Kg(m) => c.mass(m),
            Mass::Density(d) => c.density(d),
        };
        let (body, collider) = self.pw.insert(rb, c);
        self.objects[i] = Some(LiveObject { body, collider, shape });
    }

    fn insert_joint(&mut self, kind: JointKind, a: JointEnd, b: JointEnd) {
        let end = |w: &mut Self, e: JointEnd| -> Option<(RigidBodyHandle, Vector)> {
            match e {
                JointEnd::Object { index, anchor } => w.objects[index].as_ref().map(|o| (o.body, v(anchor))),
                JointEnd::World { anchor } => {
                    Some((w.pw.insert_body(RigidBodyBuilder::fixed().translation(v(anchor))), Vector::ZERO))
                }
            }
        };
        let (Some((b1, a1)), Some((b2, a2))) = (end(self, a), end(self, b)) else { return };
        if let JointKind::Spring { stiffness, rest_length } = kind {
            self.springs.push(Spring { ends: [(b1, a1), (b2, a2)], stiffness, rest_length });
        }
        let joint: GenericJoint = match kind {
            JointKind::Spherical => {
                SphericalJointBuilder::new().contacts_enabled(false).local_anchor1(a1).local_anchor2(a2).into()
            }
            JointKind::Revolute { axis } => RevoluteJointBuilder::new(v(axis).normalize())
                .contacts_enabled(false)
                .local_anchor1(a1)
                .local_anchor2(a2)
                .into(),
            JointKind::Fixed => {
                FixedJointBuilder::new().contacts_enabled(false).local_anchor1(a1).local_anchor2(a2).into()
            }
            JointKind::Spring { stiffness, rest_length } => SpringJointBuilder::new(rest_length, stiffness, 0.0)
                .contacts_enabled(false)
                .local_anchor1(a1)
                .local_anchor2(a2)
                .into(),
        };
        self.pw.insert_impulse_joint(b1, b2, joint);
    }

    /// Remove slot `i` from the world (an object vanishes).
    pub(crate) fn remove_object(&mut self, i: usize) {
        if let Some(o) = self.objects[i].take() {
            self.pw.remove_body_with_colliders(o.body, true);
        }
    }

    /// Move slot `i` by `offset`, keeping its velocity.
    pub(crate) fn teleport(&mut self, i: usize, offset: Vec3) {
        if let Some(o) = &self.objects[i] {
            let rb = &mut self.pw.bodies[o.body];
            let t = rb.translation() + v(offset);
            rb.set_translation(t, true);
        }
    }

    /// Replace slot `i`'s shape, keeping its mass.
    pub(crate) fn set_shape(&mut self, i: usize, shape: Shape) {
        let mass = self.specs[i].mass_kg();
        if let Some(o) = &mut self.objects[i] {
            let built = collider_for(&shape).build();
            let c = &mut self.pw.colliders[o.collider];
            c.set_shape(built.shared_shape().clone());
            c.set_mass(mass);
            o.shape = shape;
            self.pw.bodies[o.body].wake_up(true);
        }
    }

    /// Let slot `i` pass through static `s` from now on.
    pub(crate) fn ghost_through(&mut self, i: usize, s: usize) {
        if let Some(o) = &self.objects[i] {
            let c = &mut self.pw.colliders[o.collider];
            c.set_collision_groups(InteractionGroups::new(
                G_GHOST_OBJECT,
                G_OBJECT | G_SOLID | G_ZONE,
                InteractionTestMode::And,
            ));
        }
        if let Some(&h) = self.statics.get(s) {
            self.pw.colliders[h].set_collision_groups(InteractionGroups::new(
                G_SOLID,
                G_OBJECT,
                InteractionTestMode::And,
            ));
        }
    }

    /// Insert a solid box that is in no episode record and blocks no visibility ray.
    pub(crate) fn insert_hidden_solid(&mut self, half_extents: Vec3, position: Vec3, restitution: f32) {
        let h = half_extents;
        let c = ColliderBuilder::cuboid(h[0], h[1], h[2])
            .translation(v(position))
            .restitution(restitution)
            .friction(0.0)
            .collision_groups(InteractionGroups::new(G_SOLID, G_OBJECT, InteractionTestMode::And))
            .user_data(tag(TAG_HIDDEN, 0));
        self.pw.insert_collider(c, None);
        for o in self.objects.iter().flatten() {
            self.pw.bodies[o.body].wake_up(true);
        }
    }

    /// Scale gravity on slot `i`.
    pub(crate) fn set_gravity_scale(&mut self, i: usize, scale: f32) {
        if let Some(o) = &self.objects[i] {
            self.pw.bodies[o.body].set_gravity_scale(scale, true);
        }
    }

    /// Set the persistent force on slot `i` (replacing the previous one).
    pub(crate) fn set_force(&mut self, i: usize, force: Vec3) {
        if let Some(o) = &self.objects[i] {
            let rb = &mut self.pw.bodies[o.body];
            rb.reset_forces(false);
            rb.add_force(v(force), true);
        }
    }

    /// Linear velocity of slot `i`, if present.
    pub(crate) fn linvel(&self, i: usize) -> Option<Vec3> {
        self.objects[i].as_ref().map(|o| arr(self.pw.bodies[o.body].linvel()))
    }

    /// One physics step.
    pub(crate) fn step(&mut self) {
        self.pw.step();
    }

    /// Current state of every slot (visibility left `false`; see `visibility`).
    pub(crate) fn states(&mut self) -> &[ObjectState] {
        for (i, o) in self.objects.iter().enumerate() {
            let s = &mut self.last[i];
            match o {
                Some(o) => {
                    let rb = &self.pw.bodies[o.body];
                    s.present = true;
                    s.position = arr(rb.translation());
                    s.rotation = rb.rotation().to_array();
                    s.linvel = arr(rb.linvel());
                    s.angvel = arr(rb.angvel());
                    s.shape = o.shape.kind();
                    s.size = o.shape.half_extents();
                }
                None => {
                    s.present = false;
                    s.linvel = [0.0; 3];
                    s.angvel = [0.0; 3];
                }
            }
            s.visible = false;
        }
        &self.last
    }

    /// Total mechanical energy (kinetic + gravitational, potential measured from `y = 0`)
    /// of the present objects, plus the elastic energy of the springs, J.
    pub(crate) fn energy(&self) -> f32 {
        let elastic: f32 = self
            .springs
            .iter()
            .filter_map(|sp| {
                let [(b1, a1), (b2, a2)] = sp.ends;
                let (r1, r2) = (self.pw.bodies.get(b1)?, self.pw.bodies.get(b2)?);
                let stretch =
                    (r1.position().transform_point(a1) - r2.position().transform_point(a2)).length() - sp.rest_length;
                Some(0.5 * sp.stiffness * stretch * stretch)
            })
            .sum();
        elastic
            + self
                .objects
                .iter()
                .flatten()
                .map(|o| {
                    let rb = &self.pw.bodies[o.body];
                    // Rotational energy in the principal frame (rapier's `kinetic_energy` inverts
                    // the world inertia, which is singular for planar bodies).
                    let mp = &rb.mass_properties().local_mprops;
                    let frame = *rb.rotation() * mp.principal_inertia_local_frame;
                    let w = frame.inverse() * rb.angvel();
                    let i = mp.principal_inertia();
                    let rot = 0.5 * (i.x * w.x * w.x + i.y * w.y * w.y + i.z * w.z * w.z);
                    0.5 * rb.mass() * rb.linvel().length_squared()
                        + rot
                        + rb.mass() * rb.gravity_scale() * GRAVITY * rb.center_of_mass().y
                })
                .sum::<f32>()
    }

    fn body_of(&self, c: ColliderHandle) -> Option<Body> {
        let data = self.pw.colliders.get(c)?.user_data;
        match untag(data) {
            (TAG_OBJECT, i) => Some(Body::Object(i as u16)),
            (TAG_STATIC, i) => Some(Body::Static(i as u16)),
            _ => None,
        }
    }

    /// Add this step's active contacts to `acc` (keyed and so ordered by body pair) and
    /// return the deepest penetration seen, m, with its pair.
    pub(crate) fn accumulate_contacts(&self, acc: &mut BTreeMap<(Body, Body), f32>) -> (f32, Option<(Body, Body)>) {
        let mut deepest = (0.0f32, None);
        for pair in self.pw.contact_pairs() {
            if !pair.has_any_active_contact() {
                continue;
            }
            let (Some(a), Some(b)) = (self.body_of(pair.collider1), self.body_of(pair.collider2)) else {
                continue;
            };
            let key = if a <= b { (a, b) } else { (b, a) };
            *acc.entry(key).or_insert(0.0) += pair.total_impulse_magnitude();
            if let Some((_, c)) = pair.find_deepest_contact()
                && -c.dist > deepest.0
            {
                deepest = (-c.dist, Some(key));
            }
        }
        deepest
    }

    /// Sorted `(zone, object)` pairs currently intersecting.
    pub(crate) fn zone_contacts(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        for (zi, &zh) in self.zones.iter().enumerate() {
            for (h1, c1, _, c2, hit) in self.pw.intersection_pairs_with(zh) {
                if !hit {
                    continue;
                }
                let other = if h1 == zh { c2 } else { c1 };
                if let (TAG_OBJECT, oi) = untag(other.user_data) {
                    out.push((zi as u16, oi as u16));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Whether a ray from `from` to `to` reaches slot `i` before any other collider
    /// (zones and hidden solids are transparent); `true` when it hits nothing.
    ///
    /// Casts against every collider directly rather than through Rapier's broad phase,
    /// which is empty until the first step (frame 0 is recorded before it). Scenes hold
    /// tens of colliders, so the linear scan is cheap; ties go to the first in set order.
    pub(crate) fn first_hit_is(&self, from: Vec3, to: Vec3, i: usize) -> bool {
        let d = crate::math::sub(to, from);
        let len = crate::math::norm(d);
        if len < 1e-6 {
            return true;
        }
        let ray = Ray::new(v(from), v(crate::math::scale(d, 1.0 / len)));
        let mut best: Option<(f32, u128)> = None;
        for (_, c) in self.pw.colliders.iter() {
            let (t, _) = untag(c.user_data);
            if t == TAG_ZONE || t == TAG_HIDDEN {
                continue;
            }
            if let Some(toi) = c.shape().cast_ray(c.position(), &ray, len + 1e-3, true)
                && best.is_none_or(|(b, _)| toi < b)
            {
                best = Some((toi, c.user_data));
            }
        }
        match best {
            None => true,
            Some((_, data)) => untag(data) == (TAG_OBJECT, i),
        }
    }
}
