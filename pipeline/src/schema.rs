//! The Arrow schema of the dataset and the conversion of episodes into record batches.
//!
//! Frames (one row per frame, `data/*.parquet`), LeRobot's conventions for the index
//! columns, per-object features as fixed-size float32 lists over `S` slots:
//!
//! | column | type | shape |
//! |---|---|---|
//! | `episode_index`, `frame_index`, `index` | int64 | |
//! | `timestamp` | float32 | seconds |
//! | `object.present`, `object.visible` | `fixed_size_list<bool>` | `[S]` |
//! | `object.position`, `object.linvel`, `object.angvel`, `object.size` | `fixed_size_list<float32>` | `[S, 3]` flattened |
//! | `object.rotation` | `fixed_size_list<float32>` | `[S, 4]` flattened, `[x, y, z, w]` |
//! | `object.shape` | `fixed_size_list<int8>` | `[S]`, 0 sphere, 1 box, 2 cylinder, 3 capsule, -1 empty slot |
//! | `action` | `fixed_size_list<float32>`, nullable | `[3]` force (N) applied until the next frame |
//! | `contacts` | `list<struct<a: int16, b: int16, impulse: float32>>` | body `o >= 0` is object slot `o`, `-(s+1)` static `s` |
//! | `zone_contacts` | `list<struct<zone: int16, object: int16>>` | |
//!
//! Absent slots hold zeros (and `present = false`).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int8Array, Int16Array, ListArray, RecordBatch,
    StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use physworld_sim::{Body, ContactTarget, Episode, ShapeKind};

use crate::error::{PipelineError, Result};

/// Column names of the frames table and the episodes table: the one definition the writer
/// ([`frames_schema`], [`episodes_schema`]) and the readers use. Python clients
/// (`tests/python/check_dataset.py`) read the same names.
pub mod columns {
    /// `action`.
    pub const ACTION: &str = "action";
    /// `attempt`.
    pub const ATTEMPT: &str = "attempt";
    /// `camera.fov_y_deg`.
    pub const CAMERA_FOV_Y_DEG: &str = "camera.fov_y_deg";
    /// `camera.height`.
    pub const CAMERA_HEIGHT: &str = "camera.height";
    /// `camera.look_at`.
    pub const CAMERA_LOOK_AT: &str = "camera.look_at";
    /// `camera.position`.
    pub const CAMERA_POSITION: &str = "camera.position";
    /// `camera.width`.
    pub const CAMERA_WIDTH: &str = "camera.width";
    /// `episode_index`.
    pub const EPISODE_INDEX: &str = "episode_index";
    /// `family`.
    pub const FAMILY: &str = "family";
    /// `frame_index`.
    pub const FRAME_INDEX: &str = "frame_index";
    /// `index`.
    pub const INDEX: &str = "index";
    /// `label.action_valid`.
    pub const LABEL_ACTION_VALID: &str = "label.action_valid";
    /// `label.contact`.
    pub const LABEL_CONTACT: &str = "label.contact";
    /// `label.contact_agent`.
    pub const LABEL_CONTACT_AGENT: &str = "label.contact_agent";
    /// `label.contact_frame`.
    pub const LABEL_CONTACT_FRAME: &str = "label.contact_frame";
    /// `label.contact_patient_object`.
    pub const LABEL_CONTACT_PATIENT_OBJECT: &str = "label.contact_patient_object";
    /// `label.contact_patient_zone`.
    pub const LABEL_CONTACT_PATIENT_ZONE: &str = "label.contact_patient_zone";
    /// `label.first_floor_contact`.
    pub const LABEL_FIRST_FLOOR_CONTACT: &str = "label.first_floor_contact";
    /// `label.goal_reached`.
    pub const LABEL_GOAL_REACHED: &str = "label.goal_reached";
    /// `label.tower_fell`.
    pub const LABEL_TOWER_FELL: &str = "label.tower_fell";
    /// `metadata`.
    pub const METADATA: &str = "metadata";
    /// `num_frames`.
    pub const NUM_FRAMES: &str = "num_frames";
    /// `num_objects`.
    pub const NUM_OBJECTS: &str = "num_objects";
    /// `object.angvel`.
    pub const OBJECT_ANGVEL: &str = "object.angvel";
    /// `object.color`.
    pub const OBJECT_COLOR: &str = "object.color";
    /// `object.friction`.
    pub const OBJECT_FRICTION: &str = "object.friction";
    /// `object.linvel`.
    pub const OBJECT_LINVEL: &str = "object.linvel";
    /// `object.mass`.
    pub const OBJECT_MASS: &str = "object.mass";
    /// `object.name`.
    pub const OBJECT_NAME: &str = "object.name";
    /// `object.position`.
    pub const OBJECT_POSITION: &str = "object.position";
    /// `object.present`.
    pub const OBJECT_PRESENT: &str = "object.present";
    /// `object.restitution`.
    pub const OBJECT_RESTITUTION: &str = "object.restitution";
    /// `object.rotation`.
    pub const OBJECT_ROTATION: &str = "object.rotation";
    /// `object.shape`.
    pub const OBJECT_SHAPE: &str = "object.shape";
    /// `object.size`.
    pub const OBJECT_SIZE: &str = "object.size";
    /// `object.visible`.
    pub const OBJECT_VISIBLE: &str = "object.visible";
    /// `placement`.
    pub const PLACEMENT: &str = "placement";
    /// `quadruplet.member`.
    pub const QUADRUPLET_MEMBER: &str = "quadruplet.member";
    /// `quadruplet.possible`.
    pub const QUADRUPLET_POSSIBLE: &str = "quadruplet.possible";
    /// `sample_index`.
    pub const SAMPLE_INDEX: &str = "sample_index";
    /// `seed`.
    pub const SEED: &str = "seed";
    /// `split`.
    pub const SPLIT: &str = "split";
    /// `template`.
    pub const TEMPLATE: &str = "template";
    /// `timestamp`.
    pub const TIMESTAMP: &str = "timestamp";
    /// `violation.detail`.
    pub const VIOLATION_DETAIL: &str = "violation.detail";
    /// `violation.frame`.
    pub const VIOLATION_FRAME: &str = "violation.frame";
    /// `violation.kind`.
    pub const VIOLATION_KIND: &str = "violation.kind";
    /// `violation.object`.
    pub const VIOLATION_OBJECT: &str = "violation.object";
    /// `violation.occluded`.
    pub const VIOLATION_OCCLUDED: &str = "violation.occluded";
}

/// Version of the on-disk format (bumped on any schema change).
pub const FORMAT_VERSION: &str = "physworld-dataset/1";

/// Per-object float features of the frames table: (column, components per slot).
pub const OBJECT_FLOAT_FEATURES: [(&str, usize); 5] = [
    (columns::OBJECT_POSITION, 3),
    (columns::OBJECT_ROTATION, 4),
    (columns::OBJECT_LINVEL, 3),
    (columns::OBJECT_ANGVEL, 3),
    (columns::OBJECT_SIZE, 3),
];

fn fsl(item: DataType, n: usize) -> DataType {
    DataType::FixedSizeList(Arc::new(Field::new("item", item, false)), n as i32)
}

fn contact_fields() -> Fields {
    Fields::from(vec![
        Field::new("a", DataType::Int16, false),
        Field::new("b", DataType::Int16, false),
        Field::new("impulse", DataType::Float32, false),
    ])
}

fn zone_fields() -> Fields {
    Fields::from(vec![Field::new("zone", DataType::Int16, false), Field::new("object", DataType::Int16, false)])
}

/// Schema of the frames table for `slots` object slots.
pub fn frames_schema(slots: usize) -> SchemaRef {
    let mut fields = vec![
        Field::new(columns::EPISODE_INDEX, DataType::Int64, false),
        Field::new(columns::FRAME_INDEX, DataType::Int64, false),
        Field::new(columns::TIMESTAMP, DataType::Float32, false),
        Field::new(columns::INDEX, DataType::Int64, false),
        Field::new(columns::OBJECT_PRESENT, fsl(DataType::Boolean, slots), false),
        Field::new(columns::OBJECT_VISIBLE, fsl(DataType::Boolean, slots), false),
    ];
    for (name, k) in OBJECT_FLOAT_FEATURES {
        fields.push(Field::new(name, fsl(DataType::Float32, slots * k), false));
    }
    fields.push(Field::new(columns::OBJECT_SHAPE, fsl(DataType::Int8, slots), false));
    fields.push(Field::new(columns::ACTION, fsl(DataType::Float32, 3), true));
    fields.push(Field::new(
        "contacts",
        DataType::List(Arc::new(Field::new("item", DataType::Struct(contact_fields()), false))),
        false,
    ));
    fields.push(Field::new(
        "zone_contacts",
        DataType::List(Arc::new(Field::new("item", DataType::Struct(zone_fields()), false))),
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// An episode with its place in the dataset.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    /// The episode.
    pub episode: &'a Episode,
    /// Global episode index.
    pub episode_index: i64,
    /// Global index of its first frame.
    pub first_frame: i64,
    /// Sample index within its split.
    pub sample_index: i64,
    /// Dataset split name.
    pub split: &'a str,
}

fn body_code(b: Body) -> i16 {
    match b {
        Body::Object(o) => o as i16,
        Body::Static(s) => -(s as i16) - 1,
    }
}

fn shape_code(k: ShapeKind) -> i8 {
    k as i8
}

fn fsl_array(values: ArrayRef, n: usize, nulls: Option<NullBuffer>) -> ArrayRef {
    let field = Arc::new(Field::new("item", values.data_type().clone(), false));
    Arc::new(FixedSizeListArray::new(field, n as i32, values, nulls))
}

/// Rows of the record batches [`frames_batches`] cuts a shard's frames into (whole episodes,
/// at least one). Part of the file format's bytes: Parquet pages end at batch ends, so
/// changing it changes every data file's SHA-256 (not its table).
pub const FRAMES_BATCH_ROWS: usize = 8192;

/// The frames of `episodes` as consecutive record batches of whole episodes, each of at most
/// [`FRAMES_BATCH_ROWS`] rows unless one episode has more: a shard is encoded a batch at a
/// time, so its Arrow arrays never all sit in memory at once (one batch's few MB, which the
/// allocator hands to the next batch, instead of the whole shard's tens of MB).
pub fn frames_batches<'a>(episodes: &'a [Placed<'a>], slots: usize) -> impl Iterator<Item = Result<RecordBatch>> + 'a {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start == episodes.len() {
            return None;
        }
        let (mut end, mut rows) = (start, 0);
        while end < episodes.len() && (rows == 0 || rows + episodes[end].episode.frames.len() <= FRAMES_BATCH_ROWS) {
            rows += episodes[end].episode.frames.len();
            end += 1;
        }
        let batch = frames_batch(&episodes[start..end], slots);
        start = end;
        Some(batch)
    })
}

/// Build the frames record batch of `episodes` with `slots` object slots.
pub fn frames_batch(episodes: &[Placed<'_>], slots: usize) -> Result<RecordBatch> {
    let rows: usize = episodes.iter().map(|p| p.episode.frames.len()).sum();
    let (mut ep, mut fr, mut ts, mut ix) = (
        Int64Builder::with_capacity(rows),
        Int64Builder::with_capacity(rows),
        Float32Builder::with_capacity(rows),
        Int64Builder::with_capacity(rows),
    );
    let mut present = Vec::with_capacity(rows * slots);
    let mut visible = Vec::with_capacity(rows * slots);
    let mut floats: Vec<Vec<f32>> =
        OBJECT_FLOAT_FEATURES.iter().map(|(_, k)| Vec::with_capacity(rows * slots * k)).collect();
    let mut shapes = Vec::with_capacity(rows * slots);
    let mut action = Vec::with_capacity(rows * 3);
    let mut action_valid = Vec::with_capacity(rows);
    let (mut c_off, mut c_a, mut c_b, mut c_i) = (vec![0i32], Vec::new(), Vec::new(), Vec::new());
    let (mut z_off, mut z_z, mut z_o) = (vec![0i32], Vec::new(), Vec::new());
    for p in episodes {
        let e = p.episode;
        if e.num_objects() > slots {
            return Err(PipelineError::Layout(format!(
                "family `{}` produced {} objects but the suite has max_objects = {slots}; raise `suite.max_objects`",
                e.family,
                e.num_objects()
            )));
        }
        for (f, frame) in e.frames.iter().enumerate() {
            ep.append_value(p.episode_index);
            fr.append_value(f as i64);
            ts.append_value(frame.time);
            ix.append_value(p.first_frame + f as i64);
            for s in 0..slots {
                match frame.objects.get(s) {
                    Some(o) if o.present => {
                        present.push(true);
                        visible.push(o.visible);
                        floats[0].extend_from_slice(&o.position);
                        floats[1].extend_from_slice(&o.rotation);
                        floats[2].extend_from_slice(&o.linvel);
                        floats[3].extend_from_slice(&o.angvel);
                        floats[4].extend_from_slice(&o.size);
                        shapes.push(shape_code(o.shape));
                    }
                    _ => {
                        present.push(false);
                        visible.push(false);
                        for (k, (_, n)) in OBJECT_FLOAT_FEATURES.iter().enumerate() {
                            floats[k].extend(std::iter::repeat_n(0.0, *n));
                        }
                        shapes.push(-1);
                    }
                }
            }
            match e.actions.as_ref().and_then(|a| a.get(f)) {
                Some(a) => {
                    action.extend_from_slice(a);
                    action_valid.push(true);
                }
                None => {
                    action.extend_from_slice(&[0.0; 3]);
                    action_valid.push(false);
                }
            }
            for c in &frame.contacts {
                c_a.push(body_code(c.a));
                c_b.push(body_code(c.b));
                c_i.push(c.impulse);
            }
            c_off.push(c_a.len() as i32);
            for &(z, o) in &frame.zone_contacts {
                z_z.push(z as i16);
                z_o.push(o as i16);
            }
            z_off.push(z_z.len() as i32);
        }
    }
    let bools = |v: Vec<bool>| -> ArrayRef { Arc::new(BooleanArray::from(v)) };
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(ep.finish()),
        Arc::new(fr.finish()),
        Arc::new(ts.finish()),
        Arc::new(ix.finish()),
        fsl_array(bools(present), slots, None),
        fsl_array(bools(visible), slots, None),
    ];
    for ((_, k), v) in OBJECT_FLOAT_FEATURES.iter().zip(floats) {
        cols.push(fsl_array(Arc::new(Float32Array::from(v)), slots * k, None));
    }
    cols.push(fsl_array(Arc::new(Int8Array::from(shapes)), slots, None));
    cols.push(fsl_array(Arc::new(Float32Array::from(action)), 3, Some(NullBuffer::from(action_valid))));
    let contacts = StructArray::new(
        contact_fields(),
        vec![Arc::new(Int16Array::from(c_a)), Arc::new(Int16Array::from(c_b)), Arc::new(Float32Array::from(c_i))],
        None,
    );
    cols.push(Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(contact_fields()), false)),
        OffsetBuffer::new(c_off.into()),
        Arc::new(contacts),
        None,
    )));
    let zones =
        StructArray::new(zone_fields(), vec![Arc::new(Int16Array::from(z_z)), Arc::new(Int16Array::from(z_o))], None);
    cols.push(Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(zone_fields()), false)),
        OffsetBuffer::new(z_off.into()),
        Arc::new(zones),
        None,
    )));
    RecordBatch::try_new(frames_schema(slots), cols).map_err(|e| PipelineError::Layout(e.to_string()))
}

/// Schema of the per-episode table (`meta/episodes/*.parquet`).
pub fn episodes_schema(slots: usize) -> SchemaRef {
    let f32s = |n: usize| fsl(DataType::Float32, n);
    Arc::new(Schema::new(vec![
        Field::new(columns::EPISODE_INDEX, DataType::Int64, false),
        Field::new(columns::SPLIT, DataType::Utf8, false),
        Field::new(columns::FAMILY, DataType::Utf8, false),
        Field::new(columns::SAMPLE_INDEX, DataType::Int64, false),
        Field::new(columns::SEED, DataType::UInt64, false),
        Field::new(columns::ATTEMPT, DataType::UInt32, false),
        Field::new(columns::NUM_FRAMES, DataType::Int32, false),
        Field::new(columns::NUM_OBJECTS, DataType::Int32, false),
        Field::new(columns::TEMPLATE, DataType::Int32, true),
        Field::new(columns::OBJECT_NAME, DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))), false),
        Field::new(columns::OBJECT_MASS, f32s(slots), false),
        Field::new(columns::OBJECT_FRICTION, f32s(slots), false),
        Field::new(columns::OBJECT_RESTITUTION, f32s(slots), false),
        Field::new(columns::OBJECT_COLOR, f32s(slots * 3), false),
        Field::new(columns::CAMERA_POSITION, f32s(3), false),
        Field::new(columns::CAMERA_LOOK_AT, f32s(3), false),
        Field::new(columns::CAMERA_FOV_Y_DEG, DataType::Float32, false),
        Field::new(columns::CAMERA_WIDTH, DataType::UInt32, false),
        Field::new(columns::CAMERA_HEIGHT, DataType::UInt32, false),
        Field::new(columns::LABEL_CONTACT, DataType::Boolean, true),
        Field::new(columns::LABEL_CONTACT_FRAME, DataType::Int32, true),
        Field::new(columns::LABEL_CONTACT_AGENT, DataType::Int16, true),
        Field::new(columns::LABEL_CONTACT_PATIENT_OBJECT, DataType::Int16, true),
        Field::new(columns::LABEL_CONTACT_PATIENT_ZONE, DataType::Int16, true),
        Field::new(columns::LABEL_TOWER_FELL, DataType::Boolean, true),
        Field::new(columns::LABEL_FIRST_FLOOR_CONTACT, DataType::Int16, true),
        Field::new(columns::LABEL_GOAL_REACHED, DataType::Boolean, true),
        Field::new(columns::LABEL_ACTION_VALID, DataType::Boolean, true),
        Field::new(columns::QUADRUPLET_MEMBER, DataType::Int8, true),
        Field::new(columns::QUADRUPLET_POSSIBLE, DataType::Boolean, true),
        Field::new(columns::VIOLATION_KIND, DataType::Utf8, true),
        Field::new(columns::VIOLATION_DETAIL, DataType::Utf8, true),
        Field::new(columns::VIOLATION_OBJECT, DataType::Int16, true),
        Field::new(columns::VIOLATION_FRAME, DataType::Int32, true),
        Field::new(columns::VIOLATION_OCCLUDED, DataType::Boolean, true),
        Field::new(columns::PLACEMENT, f32s(3), true),
        Field::new(columns::METADATA, DataType::Utf8, false),
    ]))
}

/// Build the per-episode record batch.
pub fn episodes_batch(episodes: &[Placed<'_>], slots: usize) -> Result<RecordBatch> {
    let n = episodes.len();
    let mut idx = Int64Builder::with_capacity(n);
    let mut split = StringBuilder::new();
    let mut family = StringBuilder::new();
    let mut sample = Int64Builder::with_capacity(n);
    let mut seed = UInt64Builder::with_capacity(n);
    let mut attempt = UInt32Builder::with_capacity(n);
    let mut nframes = Int32Builder::with_capacity(n);
    let mut nobj = Int32Builder::with_capacity(n);
    let mut template = Int32Builder::with_capacity(n);
    let (mut names, mut name_off) = (StringBuilder::new(), vec![0i32]);
    let (mut mass, mut fric, mut rest, mut color) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cam_pos, mut cam_at) = (Vec::new(), Vec::new());
    let (mut fov, mut w, mut h) = (Float32Builder::new(), UInt32Builder::new(), UInt32Builder::new());
    let mut contact = BooleanBuilder::new();
    let mut contact_frame = Int32Builder::new();
    let mut contact_agent = Int16Builder::new();
    let mut contact_obj = Int16Builder::new();
    let mut contact_zone = Int16Builder::new();
    let mut tower = BooleanBuilder::new();
    let mut first_floor = Int16Builder::new();
    let mut goal = BooleanBuilder::new();
    let mut valid = BooleanBuilder::new();
    let mut q_member = Int8Builder::new();
    let mut q_possible = BooleanBuilder::new();
    let (mut v_kind, mut v_detail) = (StringBuilder::new(), StringBuilder::new());
    let (mut v_obj, mut v_frame, mut v_occ) = (Int16Builder::new(), Int32Builder::new(), BooleanBuilder::new());
    let (mut placement, mut placement_valid) = (Vec::new(), Vec::new());
    let mut metadata = StringBuilder::new();
    for p in episodes {
        let e = p.episode;
        idx.append_value(p.episode_index);
        split.append_value(p.split);
        family.append_value(&e.family);
        sample.append_value(p.sample_index);
        seed.append_value(e.seed);
        attempt.append_value(e.attempt);
        nframes.append_value(e.frames.len() as i32);
        nobj.append_value(e.num_objects() as i32);
        template.append_option(e.template.map(|t| t as i32));
        for o in &e.objects {
            names.append_value(&o.name);
        }
        name_off.push(name_off[name_off.len() - 1] + e.objects.len() as i32);
        for s in 0..slots {
            let o = e.objects.get(s);
            mass.push(o.map_or(0.0, |o| o.mass));
            fric.push(o.map_or(0.0, |o| o.friction));
            rest.push(o.map_or(0.0, |o| o.restitution));
            color.extend_from_slice(&o.map_or([0.0; 3], |o| o.color));
        }
        cam_pos.extend_from_slice(&e.camera.position);
        cam_at.extend_from_slice(&e.camera.look_at);
        fov.append_value(e.camera.fov_y_deg);
        w.append_value(e.camera.width);
        h.append_value(e.camera.height);
        let l = &e.labels;
        contact.append_option(l.contact.map(|c| c.occurred));
        contact_frame.append_option(l.contact.and_then(|c| c.first_frame).map(|f| f as i32));
        contact_agent.append_option(l.contact.map(|c| c.query.agent as i16));
        contact_obj.append_option(l.contact.and_then(|c| match c.query.patient {
            ContactTarget::Object(o) => Some(o as i16),
            ContactTarget::Zone(_) => None,
        }));
        contact_zone.append_option(l.contact.and_then(|c| match c.query.patient {
            ContactTarget::Zone(z) => Some(z as i16),
            ContactTarget::Object(_) => None,
        }));
        tower.append_option(l.tower_fell);
        first_floor.append_option(l.first_floor_contact.map(|o| o as i16));
        goal.append_option(l.goal_reached);
        valid.append_option(l.action_valid);
        q_member.append_option(l.quadruplet.map(|q| q.member as i8));
        q_possible.append_option(l.quadruplet.map(|q| q.possible));
        v_kind.append_option(l.violation.as_ref().map(|v| v.kind.as_str()));
        v_detail.append_option(l.violation.as_ref().map(|v| v.detail.as_str()));
        v_obj.append_option(l.violation.as_ref().map(|v| v.object as i16));
        v_frame.append_option(l.violation.as_ref().map(|v| v.frame as i32));
        v_occ.append_option(l.violation.as_ref().map(|v| v.occluded));
        match e.placement {
            Some(pl) => {
                placement.extend_from_slice(&[pl.x, pl.y, pl.radius]);
                placement_valid.push(true);
            }
            None => {
                placement.extend_from_slice(&[0.0; 3]);
                placement_valid.push(false);
            }
        }
        let meta = serde_json::json!({
            "statics": e.statics,
            "zones": e.zones,
            "joints": e.joints,
            "final_positions": l.final_positions,
            "agent_object": e.agent_object,
            "fps": e.fps,
            "physics_hz": e.physics_hz,
            "physics_steps": e.physics_steps,
        });
        metadata.append_value(meta.to_string());
    }
    let names = ListArray::new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        OffsetBuffer::new(name_off.into()),
        Arc::new(names.finish()),
        None,
    );
    let f = |v: Vec<f32>, k: usize| fsl_array(Arc::new(Float32Array::from(v)), k, None);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(idx.finish()),
        Arc::new(split.finish()),
        Arc::new(family.finish()),
        Arc::new(sample.finish()),
        Arc::new(seed.finish()),
        Arc::new(attempt.finish()),
        Arc::new(nframes.finish()),
        Arc::new(nobj.finish()),
        Arc::new(template.finish()),
        Arc::new(names),
        f(mass, slots),
        f(fric, slots),
        f(rest, slots),
        f(color, slots * 3),
        f(cam_pos, 3),
        f(cam_at, 3),
        Arc::new(fov.finish()),
        Arc::new(w.finish()),
        Arc::new(h.finish()),
        Arc::new(contact.finish()),
        Arc::new(contact_frame.finish()),
        Arc::new(contact_agent.finish()),
        Arc::new(contact_obj.finish()),
        Arc::new(contact_zone.finish()),
        Arc::new(tower.finish()),
        Arc::new(first_floor.finish()),
        Arc::new(goal.finish()),
        Arc::new(valid.finish()),
        Arc::new(q_member.finish()),
        Arc::new(q_possible.finish()),
        Arc::new(v_kind.finish()),
        Arc::new(v_detail.finish()),
        Arc::new(v_obj.finish()),
        Arc::new(v_frame.finish()),
        Arc::new(v_occ.finish()),
        fsl_array(Arc::new(Float32Array::from(placement)), 3, Some(NullBuffer::from(placement_valid))),
        Arc::new(metadata.finish()) as ArrayRef,
    ];
    RecordBatch::try_new(episodes_schema(slots), cols).map_err(|e| PipelineError::Layout(e.to_string()))
}
