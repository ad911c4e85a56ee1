//! Pieces shared by the families: floor, colours, shapes, cameras, episode wrapping.

use super::Range;
use crate::episode::Episode;
use crate::error::{Rejection, Result};
use crate::math::{Vec3, add, quat_axis_angle, scale};
use crate::scene::{Camera, Scene, Shape, ShapeKind, StaticRole, StaticSpec};
use crate::seed::Sampler;
use crate::simulate::{HealthConfig, Intervention, simulate_with};

/// The floor: a 20 m × 20 m slab whose top face is `y = 0`.
pub fn floor(friction: f32, restitution: f32) -> StaticSpec {
    let mut s = StaticSpec::new("floor", StaticRole::Floor, [10.0, 0.5, 10.0], [0.0, -0.5, 0.0]);
    s.friction = friction;
    s.restitution = restitution;
    s.color = [0.8, 0.8, 0.75];
    s
}

/// A saturated random colour.
pub fn color(s: &mut Sampler) -> Vec3 {
    let palette: [Vec3; 8] = [
        [0.9, 0.1, 0.1],
        [0.1, 0.6, 0.9],
        [0.95, 0.8, 0.1],
        [0.2, 0.8, 0.2],
        [0.6, 0.2, 0.8],
        [0.95, 0.5, 0.1],
        [0.1, 0.8, 0.7],
        [0.9, 0.3, 0.6],
    ];
    let base = s.choose(&palette);
    let j = s.uniform(-0.05, 0.05);
    [(base[0] + j).clamp(0.0, 1.0), (base[1] + j).clamp(0.0, 1.0), (base[2] + j).clamp(0.0, 1.0)]
}

/// Agent (red) and patient (yellow) colours, as in Physion.
pub const AGENT_RED: Vec3 = [0.9, 0.1, 0.1];
/// See [`AGENT_RED`].
pub const PATIENT_YELLOW: Vec3 = [0.95, 0.85, 0.1];

/// Every shape kind.
pub const ALL_KINDS: [ShapeKind; 4] = [ShapeKind::Sphere, ShapeKind::Box, ShapeKind::Cylinder, ShapeKind::Capsule];
/// Shapes that rest stably on their own (no capsules).
pub const SOLID_KINDS: [ShapeKind; 3] = [ShapeKind::Sphere, ShapeKind::Box, ShapeKind::Cylinder];

/// A random shape of one of `kinds` with characteristic size `size` (radius or half extent).
pub fn shape(s: &mut Sampler, size: f32, kinds: &[ShapeKind]) -> Shape {
    match s.choose(kinds) {
        ShapeKind::Sphere => Shape::Sphere { radius: size },
        ShapeKind::Box => Shape::Box { half_extents: [size, size * s.uniform(0.7, 1.3), size * s.uniform(0.7, 1.3)] },
        ShapeKind::Cylinder => Shape::Cylinder { half_height: size * s.uniform(0.6, 1.2), radius: size },
        ShapeKind::Capsule => Shape::Capsule { half_height: size * s.uniform(0.5, 1.0), radius: size * 0.7 },
    }
}

/// A random rotation about y.
pub fn yaw(s: &mut Sampler) -> [f32; 4] {
    quat_axis_angle([0.0, 1.0, 0.0], s.uniform(0.0, std::f32::consts::TAU))
}

/// A camera looking at `target` from azimuth `az` (radians, 0 = from -z), `dist` metres
/// away, `height` metres up.
pub fn camera_at(target: Vec3, az: f32, dist: f32, height: f32) -> Camera {
    let dir = [libm::sinf(az), 0.0, -libm::cosf(az)];
    Camera {
        position: add(add(target, scale(dir, dist)), [0.0, height, 0.0]),
        look_at: target,
        fov_y_deg: 50.0,
        width: 128,
        height: 128,
    }
}

/// A camera sampled around `target`: azimuth within ±`az_jitter` of the front (-z),
/// distance and height in the given bands.
pub fn camera(s: &mut Sampler, target: Vec3, az_jitter: f32, dist: (f32, f32), height: (f32, f32)) -> Camera {
    let az = s.uniform(-az_jitter, az_jitter);
    let d = s.uniform(dist.0, dist.1);
    let h = s.uniform(height.0, height.1);
    camera_at(target, az, d, h)
}

/// Field-of-view bounds a suite may sample from, degrees.
pub const FOV_RANGE: (f32, f32) = (10.0, 120.0);

/// Draw `camera`'s vertical field of view from `fov` (degrees; every family's `fov_y_deg`
/// parameter, which a suite's `[camera]` table sets for all) on a stream of its own
/// (seeded by `s`'s next value, which `s` still draws next), so the rest of the scene is
/// drawn as without it; `None` keeps the camera's, and the parameter is written out only
/// when set, so a suite without it keeps its bytes and hashes.
pub fn sample_fov(s: &Sampler, camera: &mut Camera, fov: Option<Range>) {
    if let Some(r) = fov {
        let mut own = Sampler::new(s.clone().next_u64() ^ 0x464F_565F_4445_4721);
        camera.fov_y_deg = own.range(r);
    }
}

/// Check family `family`'s `fov_y_deg` range.
pub fn validate_fov(family: &str, fov: Option<Range>) -> Result<()> {
    match fov {
        Some(r) => r.validate(&format!("{family}.fov_y_deg"), FOV_RANGE.0, FOV_RANGE.1),
        None => Ok(()),
    }
}

/// Whether two bounding spheres overlap (with `margin`).
pub fn overlaps(a: Vec3, ra: f32, b: Vec3, rb: f32, margin: f32) -> bool {
    crate::math::dist(a, b) < ra + rb + margin
}

/// Simulate a family's scene. A scene a family built that fails validation is a bug in the
/// family, reported as an error rather than a rejection.
pub fn run(scene: &Scene, interventions: &[(u32, Intervention)]) -> Result<std::result::Result<Episode, Rejection>> {
    simulate_with(scene, &HealthConfig::default(), interventions)
}
