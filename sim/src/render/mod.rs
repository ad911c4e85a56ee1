//! Headless rendering of recorded episodes with [Bevy](https://bevy.org) (feature `render`).
//!
//! Rapier decides what happens; Bevy only shows it. A [`Renderer`] is one Bevy app with no
//! window: its cameras render into image targets that are read back to the CPU. It copies
//! each frame's recorded poses onto its meshes (Bevy runs no physics) and returns, per frame,
//! Kubric's three standard outputs:
//!
//! - **RGB**, lit by a directional light with shadows and an ambient term, materials from the
//!   objects' and statics' colours, 4x MSAA, no tonemapping;
//! - **instance segmentation**: the object slot + 1 of each pixel (0 for statics, zones and
//!   background), from a second pass that draws ids unlit, without MSAA, tonemapping or
//!   dithering, so ids are exact (never derived from RGB);
//! - **depth** along the camera's optical axis, m (0 where nothing was drawn), written by that
//!   same pass from the geometry and read back as floats.
//!
//! One renderer renders many episodes: start-up (adapter, app, pipelines) costs about 0.1 s,
//! each episode then only its meshes. On machines without a GPU it runs on Vulkan's CPU
//! driver, lavapipe (Debian: `mesa-vulkan-drivers`); with no Vulkan adapter at all,
//! [`Renderer::new`] returns [`RenderError::NoAdapter`] saying what to install.
//!
//! Camera conventions: the episode's [`Camera`](crate::Camera) (eye, look-at, vertical field
//! of view; world up +y). Pixel `(u, v)` has `u` to the right and `v` down from the top-left
//! corner, pixel centres at `+0.5`: see [`intrinsics`] and [`camera_to_world`].

use std::collections::{BTreeMap, HashMap};

use bevy::app::{PluginsState, TerminalCtrlCHandlerPlugin};
use bevy::asset::{RenderAssetUsages, uuid_handle};
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{Hdr, RenderTarget};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::light::{CascadeShadowConfigBuilder, DirectionalLightShadowMap, GlobalAmbientLight, NotShadowCaster};
use bevy::prelude::*;
use bevy::render::RenderApp;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use bevy::render::render_resource::{AsBindGroup, TextureFormat, TextureUsages};
use bevy::render::renderer::RenderAdapterInfo;
use bevy::render::settings::{Backends, RenderCreation, WgpuSettings};
use bevy::render::view::Msaa;
use bevy::render::{RenderPlugin, settings::PowerPreference};
use bevy::shader::{Shader, ShaderRef};
use bevy::window::{ExitCondition, WindowPlugin};

use crate::episode::{Episode, ObjectState};
use crate::scene::{Camera as SceneCamera, ShapeKind};

/// Environment settings for processes that render, applied where the environment does not
/// set them. Mesa reads them when the Vulkan device is created, so a program sets them
/// before it starts (the `physworld` binary re-executes itself with them for `render` and
/// `generate --modality pixels`; so does the render bench):
/// - `LP_NUM_THREADS=0`: lavapipe rasterises on the thread that submits the work instead of
///   handing each small image to its own rasteriser threads. At 64-128 px the hand-over costs
///   more than the drawing: on 2 cores a 64 px episode renders at about 180 frames/s with it
///   and 119 frames/s without, and each generation worker renders its own shards on its own
///   thread anyway (BENCHMARKS.md, "Rendering").
pub const RUNTIME_ENV: [(&str, &str); 1] = [("LP_NUM_THREADS", "0")];

/// Smallest and largest image side [`Renderer::new`] accepts, px.
pub const SIZE_RANGE: (u32, u32) = (16, 1024);

/// Near clipping plane of the render cameras, m (the same as the state-side visibility's).
pub const NEAR: f32 = 0.05;
/// Far clipping plane, m.
pub const FAR: f32 = 100.0;

/// The label pass's shader (`id.wgsl`), registered under a fixed handle.
const ID_SHADER: Handle<Shader> = uuid_handle!("5d0c3f5e-4f1b-4f64-9d57-6a3f0d2b9c11");

/// Render layer of the RGB pass.
const RGB_LAYER: usize = 0;
/// Render layer of the label (id and depth) pass.
const LABEL_LAYER: usize = 1;

/// Why a renderer could not start or render.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No Vulkan adapter: no GPU driver and no lavapipe.
    #[error(
        "no Vulkan adapter found: rendering needs a GPU driver or Mesa's CPU driver lavapipe \
         (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`); state-only data \
         (`--modality state`) needs none"
    )]
    NoAdapter,
    /// An image size outside [`SIZE_RANGE`].
    #[error("render {field} {value} px is out of range: allowed {min}..={max}")]
    Size {
        /// `width` or `height`.
        field: &'static str,
        /// The value asked for.
        value: u32,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// The episode's camera has another aspect ratio than the renderer's image.
    #[error(
        "episode camera is {cam_w}x{cam_h} px but the renderer draws {width}x{height}: \
         the aspect ratios must match (the state-side visibility uses the camera's)"
    )]
    Aspect {
        /// Episode camera width.
        cam_w: u32,
        /// Episode camera height.
        cam_h: u32,
        /// Renderer width.
        width: u32,
        /// Renderer height.
        height: u32,
    },
    /// A frame index past the episode's end.
    #[error("frame {frame} is out of range: the episode has {frames} frames (0..{frames})")]
    Frame {
        /// The index asked for.
        frame: usize,
        /// Frames in the episode.
        frames: usize,
    },
    /// A read-back image was shorter than its size says (a driver fault).
    #[error("frame {frame}: the {pass} readback holds {got} bytes, expected {want}")]
    ShortReadback {
        /// The frame.
        frame: usize,
        /// `RGB` or `label`.
        pass: &'static str,
        /// Bytes read back.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// A PNG could not be encoded (image size and data disagree).
    #[error("PNG encoding failed: {0}")]
    Encode(String),
    /// The GPU did not return a frame (a driver fault).
    #[error("the renderer returned no image for frame {frame} after {updates} updates")]
    Stalled {
        /// The frame waited for.
        frame: usize,
        /// Updates run.
        updates: usize,
    },
}

/// What a renderer runs on, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RendererInfo {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub adapter: String,
    /// Driver name, e.g. `llvmpipe`.
    pub driver: String,
    /// Driver version, e.g. `Mesa 22.3.6 (LLVM 15.0.6)`.
    pub driver_info: String,
    /// Graphics API, e.g. `Vulkan`.
    pub backend: String,
    /// The renderer's own version (`bevy-0.19.1`).
    pub engine: String,
}

impl RendererInfo {
    /// One line naming the renderer: frames from two renderers with different lines may
    /// differ in pixels.
    pub fn id(&self) -> String {
        format!("{} / {} {} / {} / {}", self.adapter, self.driver, self.driver_info, self.backend, self.engine)
    }
}

/// One rendered frame, row-major from the top-left pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFrame {
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// sRGB colour, 3 bytes per pixel.
    pub rgb: Vec<u8>,
    /// Instance id per pixel: object slot + 1, 0 for statics, zones and background.
    pub segmentation: Vec<u8>,
    /// Depth along the optical axis, m; 0 where nothing was drawn.
    pub depth: Vec<f32>,
}

impl RenderedFrame {
    /// Per slot, whether any pixel shows the object (visibility as the pixels see it).
    pub fn visible_slots(&self, slots: usize) -> Vec<bool> {
        let mut seen = vec![false; slots];
        for &id in &self.segmentation {
            if let Some(s) = (id as usize).checked_sub(1).and_then(|i| seen.get_mut(i)) {
                *s = true;
            }
        }
        seen
    }

    /// Pixels showing slot `slot`.
    pub fn pixel_count(&self, slot: usize) -> usize {
        self.segmentation.iter().filter(|&&id| id as usize == slot + 1).count()
    }

    /// Depth in millimetres, rounded, saturating at 65 535 (0 where nothing was drawn): the
    /// 16-bit form depth images are stored in.
    pub fn depth_mm(&self) -> Vec<u16> {
        self.depth.iter().map(|&d| (d * 1000.0).round().clamp(0.0, 65_535.0) as u16).collect()
    }
}

/// Image width for `height` px at `camera`'s aspect ratio (rounded, at least 1).
pub fn width_for(camera: &SceneCamera, height: u32) -> u32 {
    ((height as u64 * camera.width as u64 + camera.height as u64 / 2) / camera.height.max(1) as u64).max(1) as u32
}

/// Pinhole intrinsics `[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]` of `camera` at `width` x
/// `height` px: `u = cx + fx * x / z`, `v = cy - fy * y / z` for a point at `(x, y, z)`
/// along the camera's right, up and forward axes.
pub fn intrinsics(camera: &SceneCamera, width: u32, height: u32) -> [[f32; 3]; 3] {
    let f = height as f32 * 0.5 / (camera.fov_y_deg.to_radians() * 0.5).tan();
    [[f, 0.0, width as f32 * 0.5], [0.0, f, height as f32 * 0.5], [0.0, 0.0, 1.0]]
}

/// The camera's pose, row-major 4x4, OpenGL convention: its x axis points right, y up, and it
/// looks down its -z axis (Blender's and Kubric's convention). Its inverse maps world points
/// into the camera frame.
pub fn camera_to_world(camera: &SceneCamera) -> [[f32; 4]; 4] {
    let m = camera_transform(camera).to_matrix();
    let c = m.to_cols_array_2d();
    std::array::from_fn(|r| std::array::from_fn(|k| c[k][r]))
}

/// Pixel coordinates `(u, v)` of world point `p` (see [`intrinsics`]), if in front of the
/// camera.
pub fn project(camera: &SceneCamera, width: u32, height: u32, p: [f32; 3]) -> Option<[f32; 2]> {
    let t = camera_transform(camera);
    let d = Vec3::from_array(p) - t.translation;
    let (right, up, forward) = (t.right(), t.up(), t.forward());
    let z = d.dot(*forward);
    if z <= NEAR {
        return None;
    }
    let k = intrinsics(camera, width, height);
    Some([k[0][2] + k[0][0] * d.dot(*right) / z, k[1][2] - k[1][1] * d.dot(*up) / z])
}

/// Depth along the optical axis of world point `p`, m.
pub fn depth_of(camera: &SceneCamera, p: [f32; 3]) -> f32 {
    let t = camera_transform(camera);
    (Vec3::from_array(p) - t.translation).dot(*t.forward())
}

fn camera_transform(camera: &SceneCamera) -> Transform {
    let eye = Vec3::from_array(camera.position);
    let target = Vec3::from_array(camera.look_at);
    let forward = (target - eye).normalize_or_zero();
    // Looking straight up or down: pick the sim's fallback right axis (+x), as
    // `visibility::View` does.
    let up = if forward.cross(Vec3::Y).length() < 1e-6 { Vec3::X.cross(forward) } else { Vec3::Y };
    Transform::from_translation(eye).looking_at(target, up)
}

/// The label pass's material: one instance id, drawn unlit with its depth.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
struct LabelMaterial {
    #[uniform(0)]
    instance: Vec4,
}

impl Material for LabelMaterial {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(ID_SHADER)
    }
}

/// Marks an entity that belongs to the episode being rendered.
#[derive(Component)]
struct EpisodeEntity;

/// The meshes of one object slot: RGB and label passes.
#[derive(Clone, Copy)]
struct SlotEntities {
    rgb: Entity,
    label: Entity,
}

/// Which frame and pass a readback belongs to.
#[derive(Component, Clone, Copy)]
struct ReadbackTag {
    frame: usize,
    label: bool,
}

/// Read-back bytes by (frame, pass).
#[derive(Resource, Default)]
struct Captured(BTreeMap<(usize, bool), Vec<u8>>);

/// A headless Bevy app that renders recorded episodes (see the module docs).
pub struct Renderer {
    app: App,
    width: u32,
    height: u32,
    rgb_target: Handle<Image>,
    label_target: Handle<Image>,
    meshes: HashMap<(ShapeKind, [u32; 3]), Handle<Mesh>>,
    info: RendererInfo,
}

/// Updates to wait for one frame's readback before calling the renderer stalled.
const MAX_WAIT_UPDATES: usize = 64;

impl Renderer {
    /// Start a renderer drawing `width` x `height` px images.
    pub fn new(width: u32, height: u32) -> Result<Self, RenderError> {
        for (field, value) in [("width", width), ("height", height)] {
            if !(SIZE_RANGE.0..=SIZE_RANGE.1).contains(&value) {
                return Err(RenderError::Size { field, value, min: SIZE_RANGE.0, max: SIZE_RANGE.1 });
            }
        }
        if !vulkan_adapter_present() {
            return Err(RenderError::NoAdapter);
        }
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
                .set(RenderPlugin {
                    render_creation: RenderCreation::Automatic(Box::new(WgpuSettings {
                        backends: Some(Backends::VULKAN),
                        power_preference: PowerPreference::HighPerformance,
                        ..default()
                    })),
                    synchronous_pipeline_compilation: true,
                    ..default()
                })
                // physworld handles Ctrl-C itself (train, generate).
                .disable::<TerminalCtrlCHandlerPlugin>(),
        )
        .add_plugins(MaterialPlugin::<LabelMaterial>::default())
        .init_resource::<Captured>()
        .insert_resource(ClearColor(Color::linear_rgb(0.55, 0.62, 0.72)))
        .insert_resource(GlobalAmbientLight { color: Color::WHITE, brightness: 150.0, ..default() })
        // Bevy's default 2048² shadow map is drawn every frame; on the CPU it cost more than
        // the image itself. Four shadow texels per image pixel are plenty.
        .insert_resource(DirectionalLightShadowMap { size: shadow_map_size(height) })
        .add_observer(on_readback);
        // Inserting under a UUID handle cannot fail.
        let _ = app
            .world_mut()
            .resource_mut::<Assets<Shader>>()
            .insert(&ID_SHADER, Shader::from_wgsl(include_str!("id.wgsl"), "physworld/render/id.wgsl"));
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();

        let info = {
            let render_world = app.sub_app(RenderApp).world();
            let a = &render_world.resource::<RenderAdapterInfo>().0;
            RendererInfo {
                adapter: a.name.clone(),
                driver: a.driver.clone(),
                driver_info: a.driver_info.clone(),
                backend: format!("{:?}", a.backend),
                engine: "bevy-0.19.1".to_string(),
            }
        };

        let (rgb_target, label_target) = {
            let mut images = app.world_mut().resource_mut::<Assets<Image>>();
            let mut rgb = Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
            rgb.texture_descriptor.usage |= TextureUsages::COPY_SRC;
            let mut label = Image::new_target_texture(width, height, TextureFormat::Rgba16Float, None);
            label.texture_descriptor.usage |= TextureUsages::COPY_SRC;
            rgb.asset_usage = RenderAssetUsages::RENDER_WORLD;
            label.asset_usage = RenderAssetUsages::RENDER_WORLD;
            (images.add(rgb), images.add(label))
        };
        Ok(Renderer { app, width, height, rgb_target, label_target, meshes: HashMap::new(), info })
    }

    /// What this renderer runs on.
    pub fn info(&self) -> &RendererInfo {
        &self.info
    }

    /// Image size `(width, height)`, px.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Render every frame of `episode`.
    pub fn render_episode(&mut self, episode: &Episode) -> Result<Vec<RenderedFrame>, RenderError> {
        let frames: Vec<usize> = (0..episode.frames.len()).collect();
        self.render_frames(episode, &frames)
    }

    /// Render the given frames of `episode`, in that order.
    pub fn render_frames(&mut self, episode: &Episode, frames: &[usize]) -> Result<Vec<RenderedFrame>, RenderError> {
        let cam = &episode.camera;
        // Aspect ratios must agree to 1%: the state-side visibility uses the camera's.
        let (a, b) = (cam.width as u64 * self.height as u64, cam.height as u64 * self.width as u64);
        if a.abs_diff(b) * 100 > a.max(b) {
            return Err(RenderError::Aspect {
                cam_w: cam.width,
                cam_h: cam.height,
                width: self.width,
                height: self.height,
            });
        }
        if let Some(&frame) = frames.iter().find(|&&f| f >= episode.frames.len()) {
            return Err(RenderError::Frame { frame, frames: episode.frames.len() });
        }
        let slots = self.build_scene(episode);
        // Two warm-up renders of the first pose: meshes and materials new to the GPU are
        // prepared before any frame is kept.
        if let Some(&first) = frames.first() {
            self.pose(&slots, &episode.frames[first].objects);
            self.app.update();
            self.app.update();
        }
        self.app.world_mut().resource_mut::<Captured>().0.clear();
        for &f in frames {
            self.pose(&slots, &episode.frames[f].objects);
            self.app
                .world_mut()
                .spawn((Readback::texture(self.rgb_target.clone()), ReadbackTag { frame: f, label: false }));
            self.app
                .world_mut()
                .spawn((Readback::texture(self.label_target.clone()), ReadbackTag { frame: f, label: true }));
            self.app.update();
        }
        let mut out = Vec::with_capacity(frames.len());
        for &f in frames {
            let mut updates = 0;
            loop {
                let captured = &self.app.world().resource::<Captured>().0;
                if captured.contains_key(&(f, false)) && captured.contains_key(&(f, true)) {
                    break;
                }
                if updates == MAX_WAIT_UPDATES {
                    return Err(RenderError::Stalled { frame: f, updates });
                }
                self.app.update();
                updates += 1;
            }
            let mut captured = self.app.world_mut().resource_mut::<Captured>();
            let rgb = captured.0.remove(&(f, false)).unwrap_or_default();
            let label = captured.0.remove(&(f, true)).unwrap_or_default();
            out.push(self.decode(f, &rgb, &label)?);
        }
        self.clear_scene();
        Ok(out)
    }

    /// Spawn the episode's statics, zones, lights, cameras and per-slot meshes.
    fn build_scene(&mut self, episode: &Episode) -> Vec<SlotEntities> {
        self.clear_scene();
        // Meshes for every shape and size the episode shows, made before the first frame.
        for frame in &episode.frames {
            for s in frame.objects.iter().filter(|s| s.present) {
                self.mesh_for(s);
            }
        }
        let world = self.app.world_mut();
        let projection = Projection::Perspective(PerspectiveProjection {
            fov: episode.camera.fov_y_deg.to_radians(),
            aspect_ratio: self.width as f32 / self.height as f32,
            near: NEAR,
            far: FAR,
            ..default()
        });
        let transform = camera_transform(&episode.camera);
        world.spawn((
            EpisodeEntity,
            Camera3d::default(),
            Camera { order: 0, ..default() },
            RenderTarget::Image(self.rgb_target.clone().into()),
            projection.clone(),
            transform,
            Tonemapping::None,
            DebandDither::Disabled,
            Msaa::Sample4,
            RenderLayers::layer(RGB_LAYER),
        ));
        world.spawn((
            EpisodeEntity,
            Camera3d::default(),
            Camera { order: 1, clear_color: ClearColorConfig::Custom(Color::NONE), ..default() },
            RenderTarget::Image(self.label_target.clone().into()),
            projection,
            transform,
            Hdr,
            Tonemapping::None,
            DebandDither::Disabled,
            Msaa::Off,
            RenderLayers::layer(LABEL_LAYER),
        ));
        world.spawn((
            EpisodeEntity,
            DirectionalLight { illuminance: 2_000.0, shadow_maps_enabled: true, ..default() },
            CascadeShadowConfigBuilder { num_cascades: 1, maximum_distance: 20.0, ..default() }.build(),
            Transform::from_xyz(2.0, 6.0, -3.0).looking_at(Vec3::ZERO, Vec3::Y),
            RenderLayers::layer(RGB_LAYER),
        ));

        let label_static = world.resource_mut::<Assets<LabelMaterial>>().add(LabelMaterial { instance: Vec4::ZERO });
        for st in &episode.statics {
            let mesh =
                world.resource_mut::<Assets<Mesh>>().add(Cuboid::from_size(Vec3::from_array(st.half_extents) * 2.0));
            let color = Color::linear_rgb(st.color[0], st.color[1], st.color[2]);
            let material = world.resource_mut::<Assets<StandardMaterial>>().add(StandardMaterial {
                base_color: color,
                perceptual_roughness: 0.9,
                ..default()
            });
            let t = Transform::from_translation(Vec3::from_array(st.position)).with_rotation(quat(st.rotation));
            world.spawn((
                EpisodeEntity,
                Mesh3d(mesh.clone()),
                MeshMaterial3d(material),
                t,
                RenderLayers::layer(RGB_LAYER),
            ));
            world.spawn((
                EpisodeEntity,
                Mesh3d(mesh),
                MeshMaterial3d(label_static.clone()),
                t,
                NotShadowCaster,
                RenderLayers::layer(LABEL_LAYER),
            ));
        }
        // Zones: a thin flat marker on their floor, in the RGB pass only (they are not solid).
        for z in &episode.zones {
            let mesh = world.resource_mut::<Assets<Mesh>>().add(Cuboid::new(
                z.half_extents[0] * 2.0,
                0.004,
                z.half_extents[2] * 2.0,
            ));
            let material = world.resource_mut::<Assets<StandardMaterial>>().add(StandardMaterial {
                base_color: Color::linear_rgb(0.95, 0.8, 0.1),
                unlit: true,
                ..default()
            });
            let y = z.center[1] - z.half_extents[1] + 0.003;
            world.spawn((
                EpisodeEntity,
                Mesh3d(mesh),
                MeshMaterial3d(material),
                Transform::from_xyz(z.center[0], y, z.center[2]),
                NotShadowCaster,
                RenderLayers::layer(RGB_LAYER),
            ));
        }

        let mut slots = Vec::with_capacity(episode.objects.len());
        for (slot, props) in episode.objects.iter().enumerate() {
            let color = Color::linear_rgb(props.color[0], props.color[1], props.color[2]);
            let material = world.resource_mut::<Assets<StandardMaterial>>().add(StandardMaterial {
                base_color: color,
                perceptual_roughness: 0.6,
                ..default()
            });
            let label = world
                .resource_mut::<Assets<LabelMaterial>>()
                .add(LabelMaterial { instance: Vec4::new((slot + 1) as f32, 0.0, 0.0, 0.0) });
            let rgb = world
                .spawn((
                    EpisodeEntity,
                    MeshMaterial3d(material),
                    Transform::IDENTITY,
                    Visibility::Hidden,
                    RenderLayers::layer(RGB_LAYER),
                ))
                .id();
            let label = world
                .spawn((
                    EpisodeEntity,
                    MeshMaterial3d(label),
                    Transform::IDENTITY,
                    Visibility::Hidden,
                    NotShadowCaster,
                    RenderLayers::layer(LABEL_LAYER),
                ))
                .id();
            slots.push(SlotEntities { rgb, label });
        }
        slots
    }

    /// Copy one frame's recorded poses and shapes onto the slot meshes.
    fn pose(&mut self, slots: &[SlotEntities], states: &[ObjectState]) {
        for (slot, s) in slots.iter().zip(states) {
            let mesh = s.present.then(|| self.mesh_for(s));
            for e in [slot.rgb, slot.label] {
                let mut entity = self.app.world_mut().entity_mut(e);
                match &mesh {
                    Some(mesh) => {
                        entity.insert((
                            Mesh3d(mesh.clone()),
                            Transform::from_translation(Vec3::from_array(s.position)).with_rotation(quat(s.rotation)),
                            Visibility::Inherited,
                        ));
                    }
                    None => {
                        entity.insert(Visibility::Hidden);
                    }
                }
            }
        }
    }

    /// The mesh of a shape kind at a size, made once.
    fn mesh_for(&mut self, s: &ObjectState) -> Handle<Mesh> {
        let key = (s.shape, s.size.map(f32::to_bits));
        if let Some(h) = self.meshes.get(&key) {
            return h.clone();
        }
        let [x, y, z] = s.size;
        let mesh: Mesh = match s.shape {
            ShapeKind::Sphere => Sphere::new(x).mesh().uv(32, 18),
            ShapeKind::Box => Cuboid::new(2.0 * x, 2.0 * y, 2.0 * z).into(),
            ShapeKind::Cylinder => Cylinder::new(x, 2.0 * y).mesh().resolution(32).into(),
            ShapeKind::Capsule => Capsule3d::new(x, 2.0 * (y - x).max(0.0)).mesh().longitudes(32).latitudes(16).into(),
        };
        let h = self.app.world_mut().resource_mut::<Assets<Mesh>>().add(mesh);
        self.meshes.insert(key, h.clone());
        h
    }

    fn clear_scene(&mut self) {
        let world = self.app.world_mut();
        let entities: Vec<Entity> = world.query_filtered::<Entity, With<EpisodeEntity>>().iter(world).collect();
        for e in entities {
            world.despawn(e);
        }
    }

    /// Turn read-back bytes (rows padded to 256 bytes) into a frame.
    fn decode(&self, frame_index: usize, rgb: &[u8], label: &[u8]) -> Result<RenderedFrame, RenderError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let rgb_stride = padded_row(w * 4);
        let label_stride = padded_row(w * 8);
        // A short readback is a driver fault, never a black image.
        for (pass, got, want) in [("RGB", rgb.len(), rgb_stride * h), ("label", label.len(), label_stride * h)] {
            if got < want {
                return Err(RenderError::ShortReadback { frame: frame_index, pass, got, want });
            }
        }
        let mut frame = RenderedFrame {
            width: self.width,
            height: self.height,
            rgb: Vec::with_capacity(w * h * 3),
            segmentation: Vec::with_capacity(w * h),
            depth: Vec::with_capacity(w * h),
        };
        for y in 0..h {
            for x in 0..w {
                let p = y * rgb_stride + x * 4;
                frame.rgb.extend_from_slice(rgb.get(p..p + 3).unwrap_or(&[0, 0, 0]));
                let q = y * label_stride + x * 8;
                let half = |k: usize| {
                    label.get(q + 2 * k..q + 2 * k + 2).map_or(0.0, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                };
                let drawn = half(3) > 0.5;
                frame.segmentation.push(if drawn { half(0).round().clamp(0.0, 255.0) as u8 } else { 0 });
                frame.depth.push(if drawn { half(1) + half(2) / 1024.0 } else { 0.0 });
            }
        }
        Ok(frame)
    }
}

/// PNG encodings of rendered images, lossless: the bytes stored in datasets and written by
/// `physworld render`.
pub mod png_bytes {
    /// 8-bit RGB.
    pub fn rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, super::RenderError> {
        encode(width, height, png::ColorType::Rgb, png::BitDepth::Eight, rgb)
    }

    /// 8-bit greyscale (segmentation: the id per pixel).
    pub fn gray8(width: u32, height: u32, values: &[u8]) -> Result<Vec<u8>, super::RenderError> {
        encode(width, height, png::ColorType::Grayscale, png::BitDepth::Eight, values)
    }

    /// 16-bit greyscale (depth in millimetres).
    pub fn gray16(width: u32, height: u32, values: &[u16]) -> Result<Vec<u8>, super::RenderError> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        encode(width, height, png::ColorType::Grayscale, png::BitDepth::Sixteen, &bytes)
    }

    fn encode(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
    ) -> Result<Vec<u8>, super::RenderError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, width, height);
            enc.set_color(color);
            enc.set_depth(depth);
            let fail = |e: png::EncodingError| super::RenderError::Encode(e.to_string());
            let mut w = enc.write_header().map_err(fail)?;
            w.write_image_data(data).map_err(fail)?;
            w.finish().map_err(fail)?;
        }
        Ok(out)
    }
}

/// Store a readback's bytes under its frame and pass, once (the entity would read again on
/// later updates), and drop the entity.
fn on_readback(
    event: On<ReadbackComplete>,
    tags: Query<&ReadbackTag>,
    mut captured: ResMut<Captured>,
    mut commands: Commands,
) {
    let entity = event.entity;
    if let Ok(tag) = tags.get(entity) {
        captured.0.entry((tag.frame, tag.label)).or_insert_with(|| event.data.clone());
        commands.entity(entity).despawn();
    }
}

/// Side of the shadow map for images `height` px high: a power of two, 256 to 2048.
fn shadow_map_size(height: u32) -> usize {
    ((4 * height) as usize).next_power_of_two().clamp(256, 2048)
}

/// Bytes per row of a texture copy: a multiple of 256.
fn padded_row(bytes: usize) -> usize {
    bytes.div_ceil(256) * 256
}

fn quat(q: [f32; 4]) -> Quat {
    Quat::from_xyzw(q[0], q[1], q[2], q[3])
}

/// IEEE 754 half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f32;
    match exp {
        0 => sign * mant * 2f32.powi(-24),
        31 => {
            if mant == 0.0 {
                sign * f32::INFINITY
            } else {
                f32::NAN
            }
        }
        e => sign * (1.0 + mant / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Whether a Vulkan adapter exists (Bevy would panic without one).
fn vulkan_adapter_present() -> bool {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    !bevy::tasks::block_on(instance.enumerate_adapters(Backends::VULKAN)).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_decode() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x4200), 3.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn the_default_camera_projects_its_look_at_point_to_the_image_centre() {
        let cam = SceneCamera::default();
        let [u, v] = project(&cam, 64, 64, cam.look_at).expect("in front");
        assert!((u - 32.0).abs() < 1e-3 && (v - 32.0).abs() < 1e-3, "{u} {v}");
        // A point above the look-at point projects above the centre (smaller v).
        let above = [cam.look_at[0], cam.look_at[1] + 0.5, cam.look_at[2]];
        assert!(project(&cam, 64, 64, above).expect("in front")[1] < 32.0);
        // Behind the camera: nothing.
        let behind = [cam.position[0], cam.position[1], cam.position[2] - 1.0];
        assert!(project(&cam, 64, 64, behind).is_none());
        // The pose's translation is the eye.
        let m = camera_to_world(&cam);
        assert_eq!([m[0][3], m[1][3], m[2][3]], cam.position);
    }

    #[test]
    fn sizes_out_of_range_are_refused_by_name() {
        let e = Renderer::new(8, 64).err().expect("refused");
        assert!(e.to_string().contains("width 8"), "{e}");
    }
}
