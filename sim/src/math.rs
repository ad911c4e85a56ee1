//! Small fixed-order float helpers on `[f32; 3]` and quaternions `[x, y, z, w]`.
//!
//! Transcendental functions go through `libm` (not the platform's C library) so that scene
//! sampling is bitwise identical on every IEEE-754 machine.

/// A 3-vector in metres (or m/s, rad/s), y up.
pub type Vec3 = [f32; 3];
/// A unit quaternion `[x, y, z, w]`.
pub type Quat = [f32; 4];

/// The identity rotation.
pub const QUAT_IDENTITY: Quat = [0.0, 0.0, 0.0, 1.0];

/// `a + b`.
pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// `a - b`.
pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// `a * s`.
pub fn scale(a: Vec3, s: f32) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// Dot product.
pub fn dot(a: Vec3, b: Vec3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product.
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// Euclidean norm.
pub fn norm(a: Vec3) -> f32 {
    dot(a, a).sqrt()
}

/// `a / |a|`, or `a` itself when it is (near) zero.
pub fn normalize(a: Vec3) -> Vec3 {
    let n = norm(a);
    if n > 1e-12 { scale(a, 1.0 / n) } else { a }
}

/// Distance between two points.
pub fn dist(a: Vec3, b: Vec3) -> f32 {
    norm(sub(a, b))
}

/// Rotation of `angle` radians about the unit `axis`.
pub fn quat_axis_angle(axis: Vec3, angle: f32) -> Quat {
    let axis = normalize(axis);
    let (s, c) = (libm::sinf(angle * 0.5), libm::cosf(angle * 0.5));
    [axis[0] * s, axis[1] * s, axis[2] * s, c]
}

/// Hamilton product `a * b` (apply `b`, then `a`).
pub fn quat_mul(a: Quat, b: Quat) -> Quat {
    let [ax, ay, az, aw] = a;
    let [bx, by, bz, bw] = b;
    [
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ]
}

/// Rotate vector `v` by unit quaternion `q`.
pub fn quat_rotate(q: Quat, v: Vec3) -> Vec3 {
    let u = [q[0], q[1], q[2]];
    let w = q[3];
    let t = scale(cross(u, v), 2.0);
    add(add(v, scale(t, w)), cross(u, t))
}

/// Angle in radians between two unit quaternions' rotations.
pub fn quat_angle_between(a: Quat, b: Quat) -> f32 {
    let d = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]).abs().min(1.0);
    2.0 * libm::acosf(d)
}

/// Whether every component is finite.
pub fn finite3(a: Vec3) -> bool {
    a.iter().all(|x| x.is_finite())
}

/// Ballistic extrapolation of an object at `p` moving at `v` with half extents `h`, `t`
/// seconds ahead: constant velocity, plus gravity when the object is airborne (its bottom
/// more than 2 cm above the floor at `y = 0`, or moving vertically faster than 0.2 m/s),
/// never below the floor.
pub fn ballistic(p: Vec3, v: Vec3, h: Vec3, t: f32) -> Vec3 {
    let airborne = p[1] - h[1] > 0.02 || v[1].abs() > 0.2;
    let mut y = p[1] + v[1] * t;
    if airborne {
        y -= 0.5 * crate::scene::GRAVITY * t * t;
    }
    [p[0] + v[0] * t, y.max(h[1].min(p[1])), p[2] + v[2] * t]
}
