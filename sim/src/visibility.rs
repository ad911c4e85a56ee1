//! Visibility of objects from the episode's camera.
//!
//! An object is visible in a frame when at least one of seven sample points (its centre and
//! the points at 70% of its half extents along each local axis, both ways) lies inside the
//! camera's view frustum and the ray from the camera to it reaches the object before any
//! other collider — occluder panels, statics and other objects block it; zones do not.

use crate::episode::ObjectState;
use crate::math::{Vec3, add, cross, dot, normalize, quat_rotate, scale, sub};
use crate::scene::Camera;
use crate::world::SceneWorld;

/// Near plane distance, m.
const NEAR: f32 = 0.05;

/// A camera's view frame, precomputed once per episode.
#[derive(Debug, Clone, Copy)]
pub struct View {
    eye: Vec3,
    forward: Vec3,
    right: Vec3,
    up: Vec3,
    tan_half_v: f32,
    tan_half_h: f32,
}

impl View {
    /// The view of `camera` (world up is +y).
    pub fn new(camera: &Camera) -> Self {
        let forward = normalize(sub(camera.look_at, camera.position));
        let mut right = cross(forward, [0.0, 1.0, 0.0]);
        if crate::math::norm(right) < 1e-6 {
            right = [1.0, 0.0, 0.0];
        }
        let right = normalize(right);
        let up = cross(right, forward);
        let tan_half_v = libm::tanf(camera.fov_y_deg.to_radians() * 0.5);
        let aspect = camera.width as f32 / camera.height as f32;
        View { eye: camera.position, forward, right, up, tan_half_v, tan_half_h: tan_half_v * aspect }
    }

    /// Whether `p` lies inside the view frustum.
    pub fn in_frustum(&self, p: Vec3) -> bool {
        let d = sub(p, self.eye);
        let z = dot(d, self.forward);
        if z <= NEAR {
            return false;
        }
        let x = dot(d, self.right) / z;
        let y = dot(d, self.up) / z;
        x.abs() <= self.tan_half_h && y.abs() <= self.tan_half_v
    }

    /// Normalised image coordinates of `p` in `[-1, 1]²` (x right, y up), if in front.
    pub fn project(&self, p: Vec3) -> Option<[f32; 2]> {
        let d = sub(p, self.eye);
        let z = dot(d, self.forward);
        (z > NEAR).then(|| [dot(d, self.right) / z / self.tan_half_h, dot(d, self.up) / z / self.tan_half_v])
    }
}

/// The seven sample points of an object.
pub(crate) fn sample_points(s: &ObjectState) -> [Vec3; 7] {
    let h = scale(s.size, 0.7);
    let mut pts = [s.position; 7];
    let axes = [[h[0], 0.0, 0.0], [0.0, h[1], 0.0], [0.0, 0.0, h[2]]];
    for (k, a) in axes.iter().enumerate() {
        let w = quat_rotate(s.rotation, *a);
        pts[1 + 2 * k] = add(s.position, w);
        pts[2 + 2 * k] = sub(s.position, w);
    }
    pts
}

/// Fill `visible` for every present slot of `states`.
pub(crate) fn mark_visible(world: &SceneWorld, view: &View, states: &mut [ObjectState]) {
    for (i, s) in states.iter_mut().enumerate() {
        s.visible =
            s.present && sample_points(s).iter().any(|&p| view.in_frustum(p) && world.first_hit_is(view.eye, p, i));
    }
}
