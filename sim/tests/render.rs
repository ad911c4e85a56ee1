//! Rendered pixels agree with the recorded geometry (feature `render`; CI installs Mesa's
//! lavapipe, so these run on the CPU there and never skip).

use physworld_sim::families::common::floor;
use physworld_sim::render::{RenderedFrame, Renderer, depth_of, intrinsics, project};
use physworld_sim::{Camera, Episode, Mass, ObjectSpec, Scene, Shape, SimConfig, StaticRole, StaticSpec, simulate};

const W: u32 = 96;
const H: u32 = 96;

fn renderer() -> Renderer {
    Renderer::new(W, H).expect("a Vulkan adapter: a GPU driver or lavapipe (.ci/run installs mesa-vulkan-drivers)")
}

/// Three objects at rest on the floor: a sphere, a box and a cylinder.
fn scene(camera: Camera) -> Scene {
    let mut s = Scene::new(SimConfig { duration_s: 0.2, ..SimConfig::default() });
    s.statics.push(floor(0.5, 0.2));
    let mut sphere = ObjectSpec::new("sphere", Shape::Sphere { radius: 0.15 }, Mass::Kg(1.0), [-0.5, 0.15, 0.0]);
    sphere.color = [0.8, 0.1, 0.1];
    let mut cube =
        ObjectSpec::new("box", Shape::Box { half_extents: [0.12, 0.12, 0.12] }, Mass::Kg(1.0), [0.35, 0.12, 0.3]);
    cube.color = [0.1, 0.3, 0.8];
    let mut cyl = ObjectSpec::new(
        "cylinder",
        Shape::Cylinder { half_height: 0.15, radius: 0.1 },
        Mass::Kg(1.0),
        [0.1, 0.15, -0.45],
    );
    cyl.color = [0.1, 0.7, 0.2];
    s.objects = vec![sphere, cube, cyl];
    s.camera = camera;
    s
}

fn run(s: &Scene) -> Episode {
    simulate(s).expect("valid scene").expect("healthy episode")
}

fn cameras() -> Vec<Camera> {
    vec![
        Camera::default(),
        Camera { position: [2.6, 1.3, 1.2], look_at: [0.0, 0.1, 0.0], fov_y_deg: 40.0, ..Camera::default() },
        Camera { position: [0.3, 3.2, -1.0], look_at: [0.0, 0.0, 0.0], fov_y_deg: 55.0, ..Camera::default() },
    ]
}

/// Mean pixel centre of slot `slot`'s mask.
fn centroid(f: &RenderedFrame, slot: usize) -> Option<[f32; 2]> {
    let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
    for (i, &id) in f.segmentation.iter().enumerate() {
        if id as usize == slot + 1 {
            su += (i % W as usize) as f32 + 0.5;
            sv += (i / W as usize) as f32 + 0.5;
            n += 1.0;
        }
    }
    (n > 0.0).then(|| [su / n, sv / n])
}

#[test]
fn objects_appear_where_the_camera_projects_their_recorded_positions() {
    let mut r = renderer();
    for (c, camera) in cameras().into_iter().enumerate() {
        let e = run(&scene(camera));
        let f = r.render_frames(&e, &[0]).expect("renders").remove(0);
        assert_eq!((f.rgb.len(), f.segmentation.len(), f.depth.len()), (96 * 96 * 3, 96 * 96, 96 * 96));
        for (slot, state) in e.frames[0].objects.iter().enumerate() {
            let [u, v] = project(&e.camera, W, H, state.position).expect("in front of the camera");
            let n = f.pixel_count(slot);
            assert!(n >= 15, "camera {c}, slot {slot}: {n} pixels");
            let [cu, cv] = centroid(&f, slot).expect("has pixels");
            // The mask's centroid is where the centre projects, up to perspective and the
            // faces that show (measured: under 1.3 px on these cameras).
            let err = ((cu - u).powi(2) + (cv - v).powi(2)).sqrt();
            assert!(
                err < 2.5,
                "camera {c}, slot {slot}: mask centroid ({cu:.1}, {cv:.1}) vs projection ({u:.1}, {v:.1})"
            );
            // The pixel under the projected centre shows the object, in front of its centre
            // by at most its bounding radius.
            let px = (v as usize) * W as usize + u as usize;
            assert_eq!(f.segmentation[px] as usize, slot + 1, "camera {c}, slot {slot}: centre pixel");
            let d = depth_of(&e.camera, state.position);
            let radius = state.size.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                f.depth[px] < d && f.depth[px] > d - radius,
                "camera {c}, slot {slot}: depth {} for a centre at {d} (radius {radius})",
                f.depth[px]
            );
        }
    }
}

#[test]
fn floor_depth_is_the_ray_plane_distance_and_grows_away_from_the_camera() {
    let mut r = renderer();
    let camera = cameras().remove(1);
    let e = run(&scene(camera.clone()));
    let f = r.render_frames(&e, &[0]).expect("renders").remove(0);
    let k = intrinsics(&camera, W, H);
    let eye = camera.position;
    // The camera's axes, as `project` uses them.
    let m = physworld_sim::render::camera_to_world(&camera);
    let right = [m[0][0], m[1][0], m[2][0]];
    let up = [m[0][1], m[1][1], m[2][1]];
    let forward = [-m[0][2], -m[1][2], -m[2][2]];
    let mut checked = 0;
    let mut worst: f32 = 0.0;
    for v in 0..H as usize {
        for u in 0..W as usize {
            let i = v * W as usize + u;
            // Floor pixels away from any object's edge.
            let around = |du: i64, dv: i64| {
                let (x, y) = (u as i64 + du, v as i64 + dv);
                x < 0
                    || y < 0
                    || x >= W as i64
                    || y >= H as i64
                    || f.segmentation[y as usize * W as usize + x as usize] == 0
            };
            if f.segmentation[i] != 0
                || f.depth[i] == 0.0
                || !(around(-1, 0) && around(1, 0) && around(0, -1) && around(0, 1))
            {
                continue;
            }
            let x = (u as f32 + 0.5 - k[0][2]) / k[0][0];
            let y = -(v as f32 + 0.5 - k[1][2]) / k[1][1];
            let dir: Vec<f32> = (0..3).map(|d| right[d] * x + up[d] * y + forward[d]).collect();
            if dir[1] >= -1e-3 {
                continue;
            }
            // z-depth of the hit on the floor's top face (y = 0), when it lies on the floor.
            let t = -eye[1] / dir[1];
            let hit = [eye[0] + t * dir[0], eye[2] + t * dir[2]];
            if hit[0].abs() > 9.5 || hit[1].abs() > 9.5 {
                continue;
            }
            let rel = (f.depth[i] - t).abs() / t;
            worst = worst.max(rel);
            checked += 1;
        }
    }
    assert!(checked > 1500, "{checked} floor pixels checked");
    assert!(worst < 0.01, "floor depth off by {:.3}% at worst", worst * 100.0);
    // Along the middle column, the floor recedes upwards: depth grows as v shrinks.
    let column: Vec<f32> = (0..H as usize)
        .rev()
        .map(|v| (v, v * W as usize + W as usize / 2))
        .filter(|&(_, i)| f.segmentation[i] == 0 && f.depth[i] > 0.0)
        .map(|(_, i)| f.depth[i])
        .collect();
    assert!(column.len() > 20);
    assert!(column.windows(2).all(|w| w[1] >= w[0]), "depth along the middle column: {column:?}");
}

#[test]
fn the_same_episode_renders_identically_twice() {
    let mut r = renderer();
    let e = run(&scene(Camera::default()));
    let all: Vec<usize> = (0..e.frames.len()).collect();
    let a = r.render_frames(&e, &all).expect("renders");
    let b = r.render_episode(&e).expect("renders");
    assert_eq!(a, b);
    // A frame alone equals the same frame in sequence: nothing carries over between frames.
    let last = e.frames.len() - 1;
    assert_eq!(r.render_frames(&e, &[last]).expect("renders")[0], a[last]);
    // A fresh renderer draws the same bytes.
    assert_eq!(renderer().render_frames(&e, &[0]).expect("renders")[0], a[0]);
}

#[test]
fn an_object_behind_an_occluder_has_no_pixels_and_states_agree() {
    let mut r = renderer();
    let camera = Camera::default();
    let open = scene(camera);
    let mut hidden = open.clone();
    // A panel between the camera (z = -4) and the sphere (x = -0.5, z = 0), tall and wide
    // enough to cover it.
    hidden.statics.push(StaticSpec::new("occluder", StaticRole::Occluder, [0.4, 0.5, 0.02], [-0.45, 0.5, -1.0]));
    let (eo, eh) = (run(&open), run(&hidden));
    let fo = r.render_frames(&eo, &[0]).expect("renders").remove(0);
    let fh = r.render_frames(&eh, &[0]).expect("renders").remove(0);
    assert!(fo.visible_slots(3)[0] && eo.frames[0].objects[0].visible);
    assert_eq!(fh.pixel_count(0), 0, "the occluded sphere shows pixels");
    assert!(!fh.visible_slots(3)[0]);
    assert!(!eh.frames[0].objects[0].visible, "the state-side visibility sees the occluded sphere");
    // The other objects are untouched by the panel.
    assert_eq!(fo.pixel_count(1), fh.pixel_count(1));
    // The panel occludes in RGB too: the sphere's pixels change colour.
    let sphere: Vec<usize> = (0..fo.segmentation.len()).filter(|&i| fo.segmentation[i] == 1).collect();
    let changed = sphere.iter().filter(|&&i| fo.rgb[3 * i..3 * i + 3] != fh.rgb[3 * i..3 * i + 3]).count();
    assert_eq!(changed, sphere.len());
}

#[test]
fn absent_objects_are_not_drawn_and_bad_frames_are_refused() {
    let mut r = renderer();
    let mut s = scene(Camera::default());
    s.objects[1].present = false;
    let e = run(&s);
    let f = r.render_frames(&e, &[0]).expect("renders").remove(0);
    assert_eq!(f.pixel_count(1), 0);
    assert!(f.pixel_count(0) > 0);
    let err = r.render_frames(&e, &[e.frames.len()]).expect_err("out of range");
    assert!(err.to_string().contains("out of range"), "{err}");
    let mut wide = e.clone();
    wide.camera.width = 256;
    let err = r.render_frames(&wide, &[0]).expect_err("aspect");
    assert!(err.to_string().contains("aspect"), "{err}");
}
