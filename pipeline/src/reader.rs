//! Reading datasets: episodes by index and a seeded, shuffled stream of training windows
//! with background prefetch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use arrow_array::{
    Array, BooleanArray, FixedSizeListArray, Float32Array, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt32Array, UInt64Array,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::finalize::{INFO_PATH, Info, STATS_PATH};
use crate::generate::{FileEntry, SUITE_PATH, ShardManifest, verified_get};
use crate::layout::Layout;
use crate::parquet_io::decode;
use crate::schema::columns;
use crate::stats::FeatureStats;
use crate::storage::{LocalStorage, Storage};
use crate::suite::Suite;

/// Per-episode metadata (from `meta/episodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMeta {
    /// Global episode index.
    pub episode_index: u64,
    /// Split name.
    pub split: String,
    /// Family.
    pub family: String,
    /// Sample index within the split (a VoE quadruplet shares one).
    pub sample_index: u64,
    /// Frames.
    pub num_frames: u32,
    /// Objects (slots in use).
    pub num_objects: u32,
    /// Data file holding its frames.
    pub file: String,
    /// Contact label.
    pub contact: Option<bool>,
    /// Tower fell label.
    pub tower_fell: Option<bool>,
    /// Goal reached label.
    pub goal_reached: Option<bool>,
    /// VoE: whether the episode is possible.
    pub possible: Option<bool>,
    /// VoE: violation kind.
    pub violation: Option<String>,
    /// VoE: violation frame.
    pub violation_frame: Option<u32>,
    /// Hidden property: mass per slot, kg (0 for empty slots).
    pub mass: Vec<f32>,
    /// Hidden property: friction per slot.
    pub friction: Vec<f32>,
    /// Hidden property: restitution per slot.
    pub restitution: Vec<f32>,
    /// The static scene: floors, walls, ramps, container parts, tables, occluders (fixed for
    /// the whole episode).
    pub statics: Vec<physworld_sim::StaticSpec>,
    /// Goal regions.
    pub zones: Vec<physworld_sim::Zone>,
    /// Joints between objects or to the world.
    pub joints: Vec<physworld_sim::JointSpec>,
    /// The slot the agent pushes, when the scene has an agent.
    pub agent_object: Option<u16>,
    /// The camera the episode was recorded (and its visibility computed) from.
    pub camera: physworld_sim::Camera,
    /// Seed the scene was sampled from.
    pub seed: u64,
    /// Attempt that produced it.
    pub attempt: u32,
    /// Contact label: first frame with the agent–patient contact.
    pub contact_frame: Option<u32>,
    /// Contact label: the agent's slot.
    pub contact_agent: Option<u16>,
    /// Contact label: the patient's slot (when the patient is an object).
    pub contact_patient_object: Option<u16>,
    /// Contact label: the patient zone (when the patient is a zone).
    pub contact_patient_zone: Option<u16>,
    /// The first object (not on the floor at frame 0) to touch the floor.
    pub first_floor_contact: Option<u16>,
    /// VoE: position in the quadruplet (0, 1 possible; 2, 3 impossible).
    pub member: Option<u8>,
    /// VoE: the violating object's slot.
    pub violation_object: Option<u16>,
}

/// The frames of one episode (or a window of it), row-major `[frame, slot, component]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeFrames {
    /// Global episode index.
    pub episode_index: u64,
    /// First frame index of this slice within its episode.
    pub start: usize,
    /// Frames.
    pub frames: usize,
    /// Object slots.
    pub slots: usize,
    /// `[T, S]`.
    pub present: Vec<bool>,
    /// `[T, S]`.
    pub visible: Vec<bool>,
    /// `[T, S, 3]`.
    pub position: Vec<f32>,
    /// `[T, S, 4]`.
    pub rotation: Vec<f32>,
    /// `[T, S, 3]`.
    pub linvel: Vec<f32>,
    /// `[T, S, 3]`.
    pub angvel: Vec<f32>,
    /// `[T, S, 3]`.
    pub size: Vec<f32>,
    /// `[T, S]`, -1 for empty slots.
    pub shape: Vec<i8>,
    /// `[T, 3]` forces, zero where the frame has none.
    pub action: Vec<f32>,
    /// `[T]`: whether the frame has an action.
    pub has_action: Vec<bool>,
    /// The episode's static scene (static bodies, then goal zones), the same in every
    /// frame; filled by [`Dataset`] from the episode's metadata (empty where unknown).
    pub scene: Vec<SceneBox>,
}

/// Kinds of [`SceneBox`]: the six static roles, then goal zones.
pub const SCENE_KINDS: usize = 7;

/// One box of an episode's static scene as a model observes it: a static body (floor,
/// wall, ramp, container part, table, occluder) or a goal zone, by its pose and extents.
/// Materials are hidden properties and are not part of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneBox {
    /// `0..6`: floor, wall, ramp, container, table, occluder (the order of
    /// [`physworld_sim::StaticRole`]); `6`: a goal zone.
    pub kind: u8,
    /// Centre, m.
    pub position: [f32; 3],
    /// Orientation `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// Half extents, m.
    pub half_extents: [f32; 3],
}

/// The static roles in [`SceneBox::kind`]'s order.
const ROLES: [physworld_sim::StaticRole; 6] = {
    use physworld_sim::StaticRole::*;
    [Floor, Wall, Ramp, Container, Table, Occluder]
};

impl SceneBox {
    /// A static body.
    pub fn of_static(s: &physworld_sim::StaticSpec) -> SceneBox {
        use physworld_sim::StaticRole;
        // Exhaustive, so a new role must be given a kind (and a place in `ROLES`).
        let kind = match s.role {
            StaticRole::Floor => 0,
            StaticRole::Wall => 1,
            StaticRole::Ramp => 2,
            StaticRole::Container => 3,
            StaticRole::Table => 4,
            StaticRole::Occluder => 5,
        };
        SceneBox { kind, position: s.position, rotation: s.rotation, half_extents: s.half_extents }
    }

    /// The static body's role; `None` for a goal zone.
    pub fn role(&self) -> Option<physworld_sim::StaticRole> {
        ROLES.get(usize::from(self.kind)).copied()
    }

    /// A goal zone (axis-aligned).
    pub fn of_zone(z: &physworld_sim::Zone) -> SceneBox {
        SceneBox { kind: 6, position: z.center, rotation: [0.0, 0.0, 0.0, 1.0], half_extents: z.half_extents }
    }

    /// An episode's scene: its static bodies, then its goal zones.
    pub fn of_episode(meta: &EpisodeMeta) -> Vec<SceneBox> {
        meta.statics.iter().map(SceneBox::of_static).chain(meta.zones.iter().map(SceneBox::of_zone)).collect()
    }
}

/// `e`'s identity and scene with no frames.
fn empty_like(e: &EpisodeFrames) -> EpisodeFrames {
    e.slice(0, 0)
}

impl EpisodeFrames {
    /// Episode `episode_index` with `slots` object slots, no frames and no scene.
    pub fn empty(episode_index: u64, slots: usize) -> EpisodeFrames {
        EpisodeFrames {
            episode_index,
            start: 0,
            frames: 0,
            slots,
            present: Vec::new(),
            visible: Vec::new(),
            position: Vec::new(),
            rotation: Vec::new(),
            linvel: Vec::new(),
            angvel: Vec::new(),
            size: Vec::new(),
            shape: Vec::new(),
            action: Vec::new(),
            has_action: Vec::new(),
            scene: Vec::new(),
        }
    }

    /// Frames `start..start + len` of this slice.
    pub fn slice(&self, start: usize, len: usize) -> EpisodeFrames {
        let s = self.slots;
        let cut = |v: &[f32], k: usize| v[start * s * k..(start + len) * s * k].to_vec();
        EpisodeFrames {
            episode_index: self.episode_index,
            start: self.start + start,
            frames: len,
            slots: s,
            present: self.present[start * s..(start + len) * s].to_vec(),
            visible: self.visible[start * s..(start + len) * s].to_vec(),
            position: cut(&self.position, 3),
            rotation: cut(&self.rotation, 4),
            linvel: cut(&self.linvel, 3),
            angvel: cut(&self.angvel, 3),
            size: cut(&self.size, 3),
            shape: self.shape[start * s..(start + len) * s].to_vec(),
            action: self.action[start * 3..(start + len) * 3].to_vec(),
            has_action: self.has_action[start..start + len].to_vec(),
            scene: self.scene.clone(),
        }
    }

    /// A window of `len` frames that starts `k` frames before this slice: its first frame
    /// repeated `k` times, at rest and without an action (the scene held still before it
    /// is released), then its frames `0..len - k`. Its `start` stays this slice's (the
    /// window reports the frame the episode part begins at). Needs `k < len` and
    /// `len - k <= frames`; `k = 0` is the plain slice.
    pub fn lead_in(&self, k: usize, len: usize) -> EpisodeFrames {
        let mut held = self.slice(0, 1);
        held.linvel.iter_mut().chain(held.angvel.iter_mut()).for_each(|v| *v = 0.0);
        held.action = vec![0.0; 3];
        held.has_action = vec![false];
        let mut out = empty_like(&held);
        for _ in 0..k {
            out.append(&held);
        }
        out.append(&self.slice(0, len - k));
        out
    }

    /// Append the frames of `b` (the same slots, the same episode's scene) after these.
    pub fn append(&mut self, b: &EpisodeFrames) {
        debug_assert_eq!(self.slots, b.slots, "appending frames of another slot count");
        self.present.extend(&b.present);
        self.visible.extend(&b.visible);
        self.position.extend(&b.position);
        self.rotation.extend(&b.rotation);
        self.linvel.extend(&b.linvel);
        self.angvel.extend(&b.angvel);
        self.size.extend(&b.size);
        self.shape.extend(&b.shape);
        self.action.extend(&b.action);
        self.has_action.extend(&b.has_action);
        self.frames += b.frames;
    }
}

/// An opened, finalised dataset.
pub struct Dataset {
    storage: Arc<dyn Storage>,
    /// `meta/info.json`.
    pub info: Info,
    /// `meta/stats.json` (train only).
    pub stats: BTreeMap<String, FeatureStats>,
    /// The resolved suite the dataset was generated from.
    pub suite: Suite,
    episodes: Vec<EpisodeMeta>,
    slots: usize,
    /// Every data file's manifest entry, by path: each read is checked against it.
    files: Arc<BTreeMap<String, FileEntry>>,
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str, file: &str) -> Result<&'a T> {
    b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or_else(|| PipelineError::Corrupt {
        path: file.into(),
        reason: format!("column `{name}` is missing or of the wrong type"),
    })
}

fn fsl_f32<'a>(b: &'a RecordBatch, name: &str, file: &str) -> Result<&'a [f32]> {
    let l: &FixedSizeListArray = col(b, name, file)?;
    let v = l.values().as_any().downcast_ref::<Float32Array>().ok_or_else(|| PipelineError::Corrupt {
        path: file.into(),
        reason: format!("`{name}` is not a list of float32"),
    })?;
    Ok(v.values())
}

fn fsl_bool(b: &RecordBatch, name: &str, file: &str) -> Result<Vec<bool>> {
    let l: &FixedSizeListArray = col(b, name, file)?;
    let v = l.values().as_any().downcast_ref::<BooleanArray>().ok_or_else(|| PipelineError::Corrupt {
        path: file.into(),
        reason: format!("`{name}` is not a list of bool"),
    })?;
    Ok((0..v.len()).map(|i| v.value(i)).collect())
}

impl Dataset {
    /// Whether `dir` holds a finished dataset of exactly `suite` (same content hash); a
    /// missing, partial or other dataset is `false`.
    pub fn holds(dir: &std::path::Path, suite: &crate::Suite) -> bool {
        Dataset::open(dir).is_ok_and(|ds| ds.info.suite_hash == suite.content_hash())
    }

    /// Open a finalised dataset folder, or an object-store location ([`crate::store_url`],
    /// with the `cloud` feature). Every file read from it is checked against the SHA-256 in
    /// its shard manifest: a corrupt file is an error naming it, never data.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Dataset> {
        let dir = dir.into();
        if crate::storage::store_url(&dir).is_some() {
            return Dataset::open_storage(crate::storage::open_storage(&dir)?);
        }
        if dir.is_file() {
            let hint = if dir.extension().is_some_and(|e| e == "toml") {
                format!(
                    "a dataset folder; {} is a suite file: generate it first with `physworld generate --suite {} --out DIR`",
                    dir.display(),
                    dir.display()
                )
            } else {
                "a dataset folder (from `physworld generate --suite FILE --out DIR`), not a file".into()
            };
            return Err(PipelineError::InvalidArgument {
                field: "dataset".into(),
                value: dir.display().to_string(),
                allowed: hint,
            });
        }
        if !dir.is_dir() {
            return Err(PipelineError::InvalidArgument {
                field: "dataset".into(),
                value: dir.display().to_string(),
                allowed: "an existing dataset folder (from `physworld generate --suite FILE --out DIR`); there is no such folder".into(),
            });
        }
        Dataset::open_storage(Arc::new(LocalStorage::new(dir)))
    }

    /// Open a finalised dataset from any storage.
    pub fn open_storage(storage: Arc<dyn Storage>) -> Result<Dataset> {
        if !storage.exists(INFO_PATH)? {
            return Err(PipelineError::Corrupt {
                path: format!("{}/{INFO_PATH}", storage.location()).into(),
                reason: if storage.exists(crate::generate::SUITE_PATH)? {
                    "missing: the dataset is not finalised; an interrupted `generate` continues with `physworld generate --suite FILE --out DIR --resume`, a sharded run needs `physworld finalize` once every worker is done".into()
                } else {
                    "missing: not a physworld dataset (a folder written by `physworld generate --suite FILE --out DIR`)"
                        .into()
                },
            });
        }
        let info: Info = serde_json::from_slice(&storage.get(INFO_PATH)?)
            .map_err(|e| PipelineError::Corrupt { path: INFO_PATH.into(), reason: e.to_string() })?;
        let stats = serde_json::from_slice(&storage.get(STATS_PATH)?)
            .map_err(|e| PipelineError::Corrupt { path: STATS_PATH.into(), reason: e.to_string() })?;
        let suite_doc: serde_json::Value = serde_json::from_slice(&storage.get(SUITE_PATH)?)
            .map_err(|e| PipelineError::Corrupt { path: SUITE_PATH.into(), reason: e.to_string() })?;
        let suite: Suite = serde_json::from_value(suite_doc["suite"].clone())
            .map_err(|e| PipelineError::Corrupt { path: SUITE_PATH.into(), reason: e.to_string() })?;
        let layout = Layout::new(&suite)?;
        let slots = layout.max_objects as usize;
        let mut episodes = Vec::new();
        let mut files = BTreeMap::new();
        for shard in layout.shards() {
            let m: ShardManifest = serde_json::from_slice(&storage.get(&shard.manifest_path())?)
                .map_err(|e| PipelineError::Corrupt { path: shard.manifest_path().into(), reason: e.to_string() })?;
            let path = m.episodes_file.path.clone();
            for b in decode(verified_get(storage.as_ref(), &m.episodes_file)?, &path)? {
                read_meta(&b, &path, &m.data.path, slots, &mut episodes)?;
            }
            files.insert(m.data.path.clone(), m.data);
        }
        episodes.sort_by_key(|e| e.episode_index);
        Ok(Dataset { storage, info, stats, suite, episodes, slots, files: Arc::new(files) })
    }

    /// Object slots per frame.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Every episode's metadata, by index.
    pub fn episodes(&self) -> &[EpisodeMeta] {
        &self.episodes
    }

    /// The episodes of one split.
    pub fn split<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a EpisodeMeta> + 'a {
        self.episodes.iter().filter(move |e| e.split == name)
    }

    /// Metadata of episode `index`.
    pub fn meta(&self, index: u64) -> Result<&EpisodeMeta> {
        self.episodes.binary_search_by_key(&index, |e| e.episode_index).map(|i| &self.episodes[i]).map_err(|_| {
            PipelineError::InvalidArgument {
                field: columns::EPISODE_INDEX.into(),
                value: index.to_string(),
                allowed: format!("0..{}", self.episodes.len()),
            }
        })
    }

    /// The frames of episode `index` (decodes its data file).
    pub fn episode(&self, index: u64) -> Result<EpisodeFrames> {
        let meta = self.meta(index)?;
        self.load(&meta.file)?.into_iter().find(|e| e.episode_index == index).ok_or_else(|| PipelineError::Corrupt {
            path: meta.file.clone().into(),
            reason: format!("episode {index} not found"),
        })
    }

    /// Re-simulate sample `sample_index` of split `split` from t=0 with the true scenes,
    /// exactly as the generator drew it (the same episodes, bit for bit, on a build with the
    /// same [`physworld_sim::GENERATOR_VERSION`]).
    pub fn regenerate(&self, split: &str, sample_index: u64) -> Result<physworld_sim::Sample> {
        let (family, seed, sim_split) = self.family_of(split, sample_index)?;
        Ok(physworld_sim::generate(&family, seed, sim_split, sample_index)?)
    }

    /// The family (with the suite's parameters) that drew sample `sample_index` of `split`,
    /// the split's seed and the simulator split it draws from.
    pub fn family_of(
        &self,
        split: &str,
        sample_index: u64,
    ) -> Result<(physworld_sim::Family, u64, physworld_sim::Split)> {
        let layout = Layout::new(&self.suite)?;
        let spec =
            self.suite.splits.iter().find(|s| s.name == split).ok_or_else(|| PipelineError::InvalidArgument {
                field: columns::SPLIT.into(),
                value: split.into(),
                allowed: self.suite.splits.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            })?;
        if sample_index >= spec.samples {
            return Err(PipelineError::InvalidArgument {
                field: columns::SAMPLE_INDEX.into(),
                value: sample_index.to_string(),
                allowed: format!("0..{}", spec.samples),
            });
        }
        Ok((layout.family_of(sample_index).clone(), spec.seed, spec.sim_split))
    }

    /// The frames of every episode of `split`, decoding each of its files once, in episode
    /// order.
    pub fn split_frames(&self, split: &str) -> Result<Vec<EpisodeFrames>> {
        let mut files: Vec<String> = self.split(split).map(|e| e.file.clone()).collect();
        files.dedup();
        let mut out = Vec::new();
        for f in files {
            out.extend(
                self.load(&f)?.into_iter().filter(|e| self.meta(e.episode_index).is_ok_and(|m| m.split == split)),
            );
        }
        out.sort_by_key(|e| e.episode_index);
        Ok(out)
    }

    /// A seeded shuffled stream of windows of `split` (see [`WindowStream`]).
    pub fn windows(&self, split: &str, spec: WindowSpec, seed: u64) -> WindowStream {
        let mut files: Vec<String> = self.split(split).map(|e| e.file.clone()).collect();
        files.dedup();
        let scenes: BTreeMap<u64, Vec<SceneBox>> =
            self.split(split).map(|m| (m.episode_index, SceneBox::of_episode(m))).collect();
        WindowStream::start(self.storage.clone(), self.files.clone(), files, self.slots, Arc::new(scenes), spec, seed)
    }

    /// The episodes of data file `path`, checked against its manifest entry, with their
    /// scenes.
    fn load(&self, path: &str) -> Result<Vec<EpisodeFrames>> {
        let mut eps = load_checked(self.storage.as_ref(), &self.files, path, self.slots)?;
        for e in &mut eps {
            if let Ok(m) = self.meta(e.episode_index) {
                e.scene = SceneBox::of_episode(m);
            }
        }
        Ok(eps)
    }
}

/// The parts of the `metadata` JSON column read back.
#[derive(Deserialize)]
struct ExtraMeta {
    statics: Vec<physworld_sim::StaticSpec>,
    zones: Vec<physworld_sim::Zone>,
    #[serde(default)]
    joints: Vec<physworld_sim::JointSpec>,
    agent_object: Option<u16>,
}

fn read_meta(b: &RecordBatch, path: &str, data: &str, slots: usize, out: &mut Vec<EpisodeMeta>) -> Result<()> {
    let idx: &Int64Array = col(b, columns::EPISODE_INDEX, path)?;
    let split: &StringArray = col(b, columns::SPLIT, path)?;
    let family: &StringArray = col(b, columns::FAMILY, path)?;
    let sample: &Int64Array = col(b, columns::SAMPLE_INDEX, path)?;
    let nframes: &Int32Array = col(b, columns::NUM_FRAMES, path)?;
    let nobj: &Int32Array = col(b, columns::NUM_OBJECTS, path)?;
    let opt_bool = |name: &str| -> Result<Vec<Option<bool>>> {
        let a: &BooleanArray = col(b, name, path)?;
        Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
    };
    let contact = opt_bool(columns::LABEL_CONTACT)?;
    let tower = opt_bool(columns::LABEL_TOWER_FELL)?;
    let goal = opt_bool(columns::LABEL_GOAL_REACHED)?;
    let possible = opt_bool(columns::QUADRUPLET_POSSIBLE)?;
    let vkind: &StringArray = col(b, columns::VIOLATION_KIND, path)?;
    let vframe: &Int32Array = col(b, columns::VIOLATION_FRAME, path)?;
    let mass = fsl_f32(b, columns::OBJECT_MASS, path)?;
    let fric = fsl_f32(b, columns::OBJECT_FRICTION, path)?;
    let rest = fsl_f32(b, columns::OBJECT_RESTITUTION, path)?;
    let metadata: &StringArray = col(b, columns::METADATA, path)?;
    let cam_pos = fsl_f32(b, columns::CAMERA_POSITION, path)?;
    let cam_at = fsl_f32(b, columns::CAMERA_LOOK_AT, path)?;
    let cam_fov: &Float32Array = col(b, columns::CAMERA_FOV_Y_DEG, path)?;
    let cam_w: &UInt32Array = col(b, columns::CAMERA_WIDTH, path)?;
    let cam_h: &UInt32Array = col(b, columns::CAMERA_HEIGHT, path)?;
    let seed: &UInt64Array = col(b, columns::SEED, path)?;
    let attempt: &UInt32Array = col(b, columns::ATTEMPT, path)?;
    let opt_i32 = |name: &str| -> Result<Vec<Option<i64>>> {
        let a: &Int32Array = col(b, name, path)?;
        Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i) as i64)).collect())
    };
    let opt_i16 = |name: &str| -> Result<Vec<Option<u16>>> {
        let a: &Int16Array = col(b, name, path)?;
        Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i) as u16)).collect())
    };
    let contact_frame = opt_i32(columns::LABEL_CONTACT_FRAME)?;
    let contact_agent = opt_i16(columns::LABEL_CONTACT_AGENT)?;
    let patient_obj = opt_i16(columns::LABEL_CONTACT_PATIENT_OBJECT)?;
    let patient_zone = opt_i16(columns::LABEL_CONTACT_PATIENT_ZONE)?;
    let first_floor = opt_i16(columns::LABEL_FIRST_FLOOR_CONTACT)?;
    let vobject = opt_i16(columns::VIOLATION_OBJECT)?;
    let member: &Int8Array = col(b, columns::QUADRUPLET_MEMBER, path)?;
    for i in 0..b.num_rows() {
        let bad = |reason: String| PipelineError::Corrupt { path: path.into(), reason };
        let extra: ExtraMeta = serde_json::from_str(metadata.value(i))
            .map_err(|e| bad(format!("`metadata` of row {i} is not the episode's statics and zones: {e}")))?;
        out.push(EpisodeMeta {
            episode_index: idx.value(i) as u64,
            split: split.value(i).to_string(),
            family: family.value(i).to_string(),
            sample_index: sample.value(i) as u64,
            num_frames: nframes.value(i) as u32,
            num_objects: nobj.value(i) as u32,
            file: data.to_string(),
            contact: contact[i],
            tower_fell: tower[i],
            goal_reached: goal[i],
            possible: possible[i],
            violation: vkind.is_valid(i).then(|| vkind.value(i).to_string()),
            violation_frame: vframe.is_valid(i).then(|| vframe.value(i) as u32),
            mass: mass[i * slots..(i + 1) * slots].to_vec(),
            friction: fric[i * slots..(i + 1) * slots].to_vec(),
            restitution: rest[i * slots..(i + 1) * slots].to_vec(),
            statics: extra.statics,
            zones: extra.zones,
            joints: extra.joints,
            agent_object: extra.agent_object,
            camera: physworld_sim::Camera {
                position: [cam_pos[i * 3], cam_pos[i * 3 + 1], cam_pos[i * 3 + 2]],
                look_at: [cam_at[i * 3], cam_at[i * 3 + 1], cam_at[i * 3 + 2]],
                fov_y_deg: cam_fov.value(i),
                width: cam_w.value(i),
                height: cam_h.value(i),
            },
            seed: seed.value(i),
            attempt: attempt.value(i),
            contact_frame: contact_frame[i].map(|v| v as u32),
            contact_agent: contact_agent[i],
            contact_patient_object: patient_obj[i],
            contact_patient_zone: patient_zone[i],
            first_floor_contact: first_floor[i],
            member: member.is_valid(i).then(|| member.value(i) as u8),
            violation_object: vobject[i],
        });
    }
    Ok(())
}

/// Decode every episode of a data file.
/// The episodes of data file `path`, its bytes checked against its manifest entry in
/// `entries` (a file without one is an error, not unchecked data).
fn load_checked(
    storage: &dyn Storage,
    entries: &BTreeMap<String, FileEntry>,
    path: &str,
    slots: usize,
) -> Result<Vec<EpisodeFrames>> {
    let entry = entries.get(path).ok_or_else(|| PipelineError::Corrupt {
        path: path.into(),
        reason: "not listed in any shard manifest".into(),
    })?;
    decode_frames(verified_get(storage, entry)?, path, slots)
}

/// The episodes of data file `path` (unchecked: [`Dataset`] checks every file it reads
/// against its manifest).
pub fn load_file(storage: &dyn Storage, path: &str, slots: usize) -> Result<Vec<EpisodeFrames>> {
    decode_frames(storage.get(path)?, path, slots)
}

fn decode_frames(bytes: Vec<u8>, path: &str, slots: usize) -> Result<Vec<EpisodeFrames>> {
    let mut out: Vec<EpisodeFrames> = Vec::new();
    for b in decode(bytes, path)? {
        let ep: &Int64Array = col(&b, columns::EPISODE_INDEX, path)?;
        let present = fsl_bool(&b, columns::OBJECT_PRESENT, path)?;
        let visible = fsl_bool(&b, columns::OBJECT_VISIBLE, path)?;
        let pos = fsl_f32(&b, columns::OBJECT_POSITION, path)?;
        let rot = fsl_f32(&b, columns::OBJECT_ROTATION, path)?;
        let lin = fsl_f32(&b, columns::OBJECT_LINVEL, path)?;
        let ang = fsl_f32(&b, columns::OBJECT_ANGVEL, path)?;
        let size = fsl_f32(&b, columns::OBJECT_SIZE, path)?;
        let shape_l: &FixedSizeListArray = col(&b, columns::OBJECT_SHAPE, path)?;
        let shape =
            shape_l.values().as_any().downcast_ref::<Int8Array>().map(|a| a.values().to_vec()).unwrap_or_default();
        let action_l: &FixedSizeListArray = col(&b, columns::ACTION, path)?;
        let action = fsl_f32(&b, columns::ACTION, path)?;
        for r in 0..b.num_rows() {
            let e = ep.value(r) as u64;
            if out.last().is_none_or(|l| l.episode_index != e) {
                out.push(EpisodeFrames::empty(e, slots));
            }
            let Some(cur) = out.last_mut() else { continue };
            cur.frames += 1;
            let s = slots;
            cur.present.extend_from_slice(&present[r * s..(r + 1) * s]);
            cur.visible.extend_from_slice(&visible[r * s..(r + 1) * s]);
            cur.position.extend_from_slice(&pos[r * s * 3..(r + 1) * s * 3]);
            cur.rotation.extend_from_slice(&rot[r * s * 4..(r + 1) * s * 4]);
            cur.linvel.extend_from_slice(&lin[r * s * 3..(r + 1) * s * 3]);
            cur.angvel.extend_from_slice(&ang[r * s * 3..(r + 1) * s * 3]);
            cur.size.extend_from_slice(&size[r * s * 3..(r + 1) * s * 3]);
            cur.shape.extend_from_slice(&shape[r * s..(r + 1) * s]);
            cur.action.extend_from_slice(&action[r * 3..(r + 1) * 3]);
            cur.has_action.push(action_l.is_valid(r));
        }
    }
    Ok(out)
}

/// Shape of training windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Context frames.
    pub context: usize,
    /// Future frames after the context.
    pub future: usize,
    /// Step between window starts within an episode.
    pub stride: usize,
    /// Shuffle buffer size (windows).
    pub shuffle_buffer: usize,
    /// Windows prefetched ahead of the consumer.
    pub prefetch: usize,
    /// Also emit windows that start before each episode: its first frame held still for
    /// `context - 1`, `context - 1 - stride`, ... frames ([`EpisodeFrames::lead_in`]), so a
    /// model learns from contexts that show a scene at rest before its release (as
    /// planners observe a placement). Default false. Training reads its validation
    /// windows without them, so `val_loss` compares across runs.
    pub lead_in: bool,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec { context: 8, future: 8, stride: 4, shuffle_buffer: 2048, prefetch: 256, lead_in: false }
    }
}

/// A seeded, shuffled stream of windows (`context + future` frames), produced by a
/// background thread that reads files in a seeded order and emits windows through a
/// seeded shuffle buffer (as WebDataset does), so memory stays bounded by the buffer and
/// one file. The same seed gives the same sequence.
pub struct WindowStream {
    rx: Receiver<Result<EpisodeFrames>>,
    handle: Option<JoinHandle<()>>,
}

impl WindowStream {
    fn start(
        storage: Arc<dyn Storage>,
        entries: Arc<BTreeMap<String, FileEntry>>,
        mut files: Vec<String>,
        slots: usize,
        scenes: Arc<BTreeMap<u64, Vec<SceneBox>>>,
        spec: WindowSpec,
        seed: u64,
    ) -> Self {
        let (tx, rx) = sync_channel(spec.prefetch.max(1));
        let handle = std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for i in (1..files.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                files.swap(i, j);
            }
            let len = spec.context + spec.future;
            let mut buffer: Vec<EpisodeFrames> = Vec::new();
            for f in &files {
                let eps = match load_checked(storage.as_ref(), &entries, f, slots) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for mut e in eps {
                    if e.frames < len {
                        continue;
                    }
                    if let Some(s) = scenes.get(&e.episode_index) {
                        e.scene = s.clone();
                    }
                    let held: Vec<usize> = if spec.lead_in {
                        (1..spec.context).rev().step_by(spec.stride.max(1)).collect()
                    } else {
                        Vec::new()
                    };
                    let windows = held
                        .into_iter()
                        .map(|k| e.lead_in(k, len))
                        .chain((0..=e.frames - len).step_by(spec.stride.max(1)).map(|start| e.slice(start, len)));
                    for w in windows {
                        buffer.push(w);
                        if buffer.len() >= spec.shuffle_buffer.max(1) {
                            let k = (rng.next_u64() % buffer.len() as u64) as usize;
                            if tx.send(Ok(buffer.swap_remove(k))).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            while !buffer.is_empty() {
                let k = (rng.next_u64() % buffer.len() as u64) as usize;
                if tx.send(Ok(buffer.swap_remove(k))).is_err() {
                    return;
                }
            }
        });
        WindowStream { rx, handle: Some(handle) }
    }
}

impl Iterator for WindowStream {
    type Item = Result<EpisodeFrames>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl Drop for WindowStream {
    fn drop(&mut self) {
        // Unblock the producer (its sends fail once the receiver is gone) and join it.
        let (_tx, rx) = sync_channel(1);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SceneBox;
    use physworld_sim::{StaticRole, StaticSpec, Zone};

    #[test]
    fn a_scene_box_keeps_its_static_s_role_and_a_zone_has_none() {
        use StaticRole::*;
        for role in [Floor, Wall, Ramp, Container, Table, Occluder] {
            let b = SceneBox::of_static(&StaticSpec::new("s", role, [1.0; 3], [0.0; 3]));
            assert_eq!(b.role(), Some(role));
        }
        let zone = Zone { name: "goal".into(), center: [0.0; 3], half_extents: [0.1; 3] };
        assert_eq!((SceneBox::of_zone(&zone).kind, SceneBox::of_zone(&zone).role()), (6, None));
    }
}
