//! Rendered frames in datasets (`generate --modality pixels`; rendering needs the `render`
//! feature).
//!
//! Each shard gets a `pixels/<shard>.parquet` beside its frames file, one row per frame:
//!
//! | column | type | |
//! |---|---|---|
//! | `episode_index`, `frame_index`, `index` | int64 | the frames table's keys, to join on |
//! | `image` | `struct<bytes: binary, path: string>` | RGB, 8-bit PNG |
//! | `segmentation` | `struct<bytes: binary, path: string>` | 8-bit greyscale PNG: object slot + 1 per pixel, 0 for statics, zones and background |
//! | `depth` | `struct<bytes: binary, path: string>` | 16-bit greyscale PNG: millimetres along the camera's optical axis, 0 where nothing was drawn |
//! | `object.pixels` | `fixed_size_list<int32>` `[S]` | pixels of each slot in the mask: visibility as the pixels see it, beside the state's `object.visible` |
//! | `camera.intrinsics` | `fixed_size_list<float32>` `[9]` | row-major `[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]` at the image's size: `u = cx + fx x/z`, `v = cy - fy y/z`, pixel centres at +0.5 |
//! | `camera.to_world` | `fixed_size_list<float32>` `[16]` | row-major 4x4 camera pose: x right, y up, looking down -z (Blender's and Kubric's convention) |
//!
//! The three image columns are Hugging Face `Image` features (a struct of `bytes` and
//! `path`, declared in the file's `huggingface` schema metadata and in the dataset card), so
//! `datasets` decodes them to images; every Parquet reader sees PNG bytes. Masks and depth
//! are lossless, as they must be (lossy video cannot carry them).

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result, pq_err};
use crate::generate::FileEntry;
use crate::storage::Staged;

/// Column of the RGB image.
pub const IMAGE: &str = "image";
/// Column of the instance mask.
pub const SEGMENTATION: &str = "segmentation";
/// Column of the depth image.
pub const DEPTH: &str = "depth";
/// Column of the per-slot mask pixel counts.
pub const OBJECT_PIXELS: &str = "object.pixels";
/// Column of the camera intrinsics.
pub const CAMERA_INTRINSICS: &str = "camera.intrinsics";
/// Column of the camera pose.
pub const CAMERA_TO_WORLD: &str = "camera.to_world";

/// Image heights `generate --resolution` accepts, px.
pub const RESOLUTION_RANGE: (u32, u32) = (16, 256);

/// What `generate --modality pixels` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelOptions {
    /// Image height, px; the width follows each episode camera's aspect ratio.
    pub resolution: u32,
}

impl PixelOptions {
    /// Options for `resolution`-px frames, refused outside [`RESOLUTION_RANGE`], and in a
    /// build without the `render` feature (before anything is written).
    pub fn new(resolution: u32) -> Result<Self> {
        if !cfg!(feature = "render") {
            return Err(no_renderer());
        }
        if !(RESOLUTION_RANGE.0..=RESOLUTION_RANGE.1).contains(&resolution) {
            return Err(PipelineError::InvalidArgument {
                field: "--resolution".into(),
                value: resolution.to_string(),
                allowed: format!("{}..={} px", RESOLUTION_RANGE.0, RESOLUTION_RANGE.1),
            });
        }
        Ok(PixelOptions { resolution })
    }
}

/// A shard's pixels file, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelsEntry {
    /// The file.
    pub file: FileEntry,
    /// Image height, px (`--resolution`).
    pub resolution: u32,
    /// What drew it: adapter, driver and version, graphics API, engine. Frames from two
    /// renderers may differ in pixels, so a dataset never mixes them.
    pub renderer: String,
}

/// `meta/info.json`'s `pixels`: the rendered frames of a whole dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelsInfo {
    /// Image height, px.
    pub resolution: u32,
    /// The one renderer every shard was drawn with.
    pub renderer: String,
    /// Column descriptions.
    pub features: serde_json::Value,
}

/// The `features` of [`PixelsInfo`].
pub fn features(slots: u32) -> serde_json::Value {
    serde_json::json!({
        IMAGE: {"dtype": "image", "format": "png", "mode": "RGB"},
        SEGMENTATION: {"dtype": "image", "format": "png", "mode": "L", "values": "object slot + 1; 0 statics, zones and background"},
        DEPTH: {"dtype": "image", "format": "png", "mode": "I;16", "unit": "mm", "values": "along the optical axis; 0 nothing drawn"},
        OBJECT_PIXELS: {"dtype": "int32", "shape": [slots], "values": "mask pixels per slot (visible in pixels when > 0)"},
        CAMERA_INTRINSICS: {"dtype": "float32", "shape": [3, 3], "values": "[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]; u = cx + fx x/z, v = cy - fy y/z (v down), pixel centres at +0.5"},
        CAMERA_TO_WORLD: {"dtype": "float32", "shape": [4, 4], "values": "camera pose: x right, y up, looking down -z"},
    })
}

/// Shards' renderers must agree: the first disagreement, named, as an error.
pub fn check_one_renderer<'a>(shards: impl IntoIterator<Item = (&'a str, Option<&'a PixelsEntry>)>) -> Result<()> {
    let mut first: Option<(&str, Option<&PixelsEntry>)> = None;
    for (shard, px) in shards {
        let Some((s0, p0)) = first else {
            first = Some((shard, px));
            continue;
        };
        let describe = |p: Option<&PixelsEntry>| match p {
            Some(p) => format!("pixels at {} px by {}", p.resolution, p.renderer),
            None => "states only".to_string(),
        };
        let same = match (p0, px) {
            (None, None) => true,
            (Some(a), Some(b)) => a.resolution == b.resolution && a.renderer == b.renderer,
            _ => false,
        };
        if !same {
            return Err(PipelineError::InvalidArgument {
                field: "shards".into(),
                value: format!("{s0} has {}, {shard} has {}", describe(p0), describe(px)),
                allowed: "one modality, resolution and renderer in a dataset: regenerate the odd shards on the same \
                          kind of machine (delete their meta/shards/*.json, then `generate --resume` with the same \
                          --modality and --resolution)"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Frames around an occluded VoE violation (each side) in which the violating object must
/// show no pixel.
pub const VIOLATION_WINDOW: u32 = 2;

/// One rendered frame, encoded: PNG bytes of RGB, segmentation and depth, and each slot's
/// mask pixels.
pub(crate) struct EncodedFrame {
    png: [Vec<u8>; 3],
    pixels: Vec<i32>,
    /// Row-major pinhole intrinsics at the image's size.
    intrinsics: [f32; 9],
    /// Row-major camera-to-world pose (x right, y up, looking down -z).
    pose: [f32; 16],
}

/// Where [`render_samples`] sends each sample once rendered: its index in the shard, the
/// sample, and its encoded frames per episode.
pub(crate) type Emit<'a> = dyn FnMut(usize, &physworld_sim::Sample, Vec<Vec<EncodedFrame>>) -> Result<()> + 'a;

#[cfg(feature = "render")]
pub(crate) use imp::render_samples;

/// Without the `render` feature: pixels are refused, naming the rebuild.
#[cfg(not(feature = "render"))]
pub(crate) fn render_samples(
    _: &mut [physworld_sim::Sample],
    _: &(dyn Fn(usize, u32) -> Result<physworld_sim::Sample> + Sync),
    _: &(dyn Fn(&physworld_sim::Sample) + Sync),
    _: &dyn Fn() -> Result<()>,
    _: &mut Emit<'_>,
    _: usize,
    _: PixelOptions,
) -> Result<String> {
    Err(no_renderer())
}

/// The refusal of `--modality pixels` by a build without the `render` feature.
fn no_renderer() -> PipelineError {
    PipelineError::InvalidArgument {
        field: "--modality".into(),
        value: "pixels".into(),
        allowed: "state (this build has no renderer: rebuild with `cargo build --release --features render`)".into(),
    }
}

/// A shard's pixels file, written as its frames are rendered: rows are buffered a row group
/// ([`crate::parquet_io::IMAGE_ROW_GROUP_ROWS`]) at a time and streamed to a
/// [`Storage::stage`](crate::Storage::stage)d file, hashed on the way, so memory holds one row group of PNGs rather
/// than the shard's (about 1 GB for 512 samples at 128 px).
pub(crate) struct PixelsWriter {
    writer: parquet::arrow::ArrowWriter<Hashing<std::io::BufWriter<std::fs::File>>>,
    staged: Staged,
    schema: std::sync::Arc<arrow_schema::Schema>,
    slots: usize,
    keys: Vec<[i64; 3]>,
    pending: Vec<EncodedFrame>,
    rows: u64,
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl PixelsWriter {
    /// A pixels file for frames of `slots` object slots, written into `staged`.
    pub(crate) fn new(mut staged: Staged, slots: usize) -> Result<Self> {
        use sha2::Digest;
        let name = staged.target().to_string();
        let file = staged
            .take_file()
            .ok_or_else(|| PipelineError::Layout(format!("{name}: the staged file was already taken")))?;
        let sink =
            Hashing { inner: std::io::BufWriter::with_capacity(1 << 20, file), hasher: sha2::Sha256::new(), bytes: 0 };
        let schema = std::sync::Arc::new(schema(slots));
        let writer = parquet::arrow::ArrowWriter::try_new(
            sink,
            schema.clone(),
            Some(crate::parquet_io::image_writer_properties()),
        )
        .map_err(pq_err(&name))?;
        Ok(PixelsWriter { writer, staged, schema, slots, keys: Vec::new(), pending: Vec::new(), rows: 0 })
    }

    /// Append one frame, keyed by its `[episode_index, frame_index, index]`.
    pub(crate) fn push(&mut self, keys: [i64; 3], frame: EncodedFrame) -> Result<()> {
        self.keys.push(keys);
        self.pending.push(frame);
        self.rows += 1;
        if self.pending.len() >= crate::parquet_io::IMAGE_ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Rows appended so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Write the buffered rows: one row group.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let keys = std::mem::take(&mut self.keys);
        let frames = std::mem::take(&mut self.pending);
        let b = batch(self.schema.clone(), &keys, frames, self.slots)
            .map_err(|e| PipelineError::Layout(format!("{}: {e}", self.staged.target())))?;
        self.writer.write(&b).map_err(pq_err(self.staged.target()))
    }

    /// Finish the file: the staged file, ready for [`Storage::commit`](crate::Storage::commit), and its manifest
    /// entry.
    pub(crate) fn finish(mut self) -> Result<(Staged, FileEntry)> {
        use sha2::Digest;
        use std::io::Write;
        self.flush()?;
        let mut sink = self.writer.into_inner().map_err(pq_err(self.staged.target()))?;
        let path = self.staged.target().to_string();
        sink.flush().map_err(crate::error::io_err(&path))?;
        let file = FileEntry { path, bytes: sink.bytes, sha256: hex::encode(sink.hasher.finalize()), rows: self.rows };
        Ok((self.staged, file))
    }
}

/// The Arrow schema of a pixels file with `slots` object slots, with the Hugging Face
/// features `datasets` decodes its images by.
fn schema(slots: usize) -> arrow_schema::Schema {
    use arrow_schema::{DataType, Field, Schema};

    use crate::schema::columns;

    let image_type = DataType::Struct(image_fields());
    let list = |t: DataType, k: i32| DataType::FixedSizeList(std::sync::Arc::new(Field::new("item", t, true)), k);
    // Hugging Face `datasets` reads this to decode the image columns (its `Features`, in
    // the schema metadata, as `datasets` itself writes Parquet).
    let hf = serde_json::json!({"info": {"features": {
        columns::EPISODE_INDEX: {"dtype": "int64", "_type": "Value"},
        columns::FRAME_INDEX: {"dtype": "int64", "_type": "Value"},
        columns::INDEX: {"dtype": "int64", "_type": "Value"},
        IMAGE: {"_type": "Image"},
        SEGMENTATION: {"_type": "Image"},
        DEPTH: {"_type": "Image"},
        OBJECT_PIXELS: {"feature": {"dtype": "int32", "_type": "Value"}, "length": slots, "_type": "Sequence"},
        CAMERA_INTRINSICS: {"feature": {"dtype": "float32", "_type": "Value"}, "length": 9, "_type": "Sequence"},
        CAMERA_TO_WORLD: {"feature": {"dtype": "float32", "_type": "Value"}, "length": 16, "_type": "Sequence"},
    }}});
    // Nullable fields, as `datasets` writes them: it applies the metadata's features only
    // to fields equal to their own Arrow form.
    Schema::new(vec![
        Field::new(columns::EPISODE_INDEX, DataType::Int64, true),
        Field::new(columns::FRAME_INDEX, DataType::Int64, true),
        Field::new(columns::INDEX, DataType::Int64, true),
        Field::new(IMAGE, image_type.clone(), true),
        Field::new(SEGMENTATION, image_type.clone(), true),
        Field::new(DEPTH, image_type, true),
        Field::new(OBJECT_PIXELS, list(DataType::Int32, slots as i32), true),
        Field::new(CAMERA_INTRINSICS, list(DataType::Float32, 9), true),
        Field::new(CAMERA_TO_WORLD, list(DataType::Float32, 16), true),
    ])
    .with_metadata(std::collections::HashMap::from([("huggingface".to_string(), hf.to_string())]))
}

/// The fields of a Hugging Face `Image`: the file's bytes, and a path (always null here).
fn image_fields() -> arrow_schema::Fields {
    use arrow_schema::{DataType, Field, Fields};
    Fields::from(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)])
}

/// One batch of pixels rows: `frames` keyed by `keys` (`[episode_index, frame_index, index]`).
fn batch(
    schema: std::sync::Arc<arrow_schema::Schema>,
    keys: &[[i64; 3]],
    frames: Vec<EncodedFrame>,
    slots: usize,
) -> std::result::Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    use std::sync::Arc;

    use arrow_array::builder::{BinaryBuilder, Int32Builder};
    use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray, StructArray};
    use arrow_schema::{DataType, Field};

    let rows = frames.len();
    let key = |k: usize| -> ArrayRef { Arc::new(Int64Array::from_iter_values(keys.iter().map(|r| r[k]))) };
    let mut images: [BinaryBuilder; 3] = [BinaryBuilder::new(), BinaryBuilder::new(), BinaryBuilder::new()];
    let mut counts = Int32Builder::with_capacity(rows * slots);
    let (mut intrinsics, mut poses) = (Vec::with_capacity(rows * 9), Vec::with_capacity(rows * 16));
    for f in frames {
        for (b, png) in images.iter_mut().zip(f.png) {
            b.append_value(png);
        }
        intrinsics.extend_from_slice(&f.intrinsics);
        poses.extend_from_slice(&f.pose);
        for s in 0..slots {
            counts.append_value(f.pixels.get(s).copied().unwrap_or(0));
        }
    }
    let image_column = |b: &mut BinaryBuilder| -> ArrayRef {
        let bytes: ArrayRef = Arc::new(b.finish());
        let paths: ArrayRef = Arc::new(StringArray::new_null(rows));
        Arc::new(StructArray::new(image_fields(), vec![bytes, paths], None))
    };
    let list = |values: ArrayRef, t: DataType, k: i32| -> std::result::Result<ArrayRef, arrow_schema::ArrowError> {
        Ok(Arc::new(FixedSizeListArray::try_new(Arc::new(Field::new("item", t, true)), k, values, None)?))
    };
    let [rgb, seg, depth] = &mut images;
    RecordBatch::try_new(
        schema,
        vec![
            key(0),
            key(1),
            key(2),
            image_column(rgb),
            image_column(seg),
            image_column(depth),
            list(Arc::new(counts.finish()), DataType::Int32, slots as i32)?,
            list(Arc::new(Float32Array::from(intrinsics)), DataType::Float32, 9)?,
            list(Arc::new(Float32Array::from(poses)), DataType::Float32, 16)?,
        ],
    )
}

#[cfg(feature = "render")]
mod imp {
    use physworld_sim::render::{self, RenderError, RenderedFrame, Renderer, png_bytes};
    use physworld_sim::{Episode, RejectReason, Rejection, Sample};

    use super::{Emit, EncodedFrame, PixelOptions, VIOLATION_WINDOW};
    use crate::error::{PipelineError, Result};

    fn render_err(e: RenderError) -> PipelineError {
        PipelineError::Layout(format!("rendering: {e}"))
    }

    /// Render every frame of a shard's samples with one renderer (start-up costs about
    /// 0.1 s; another only for an episode camera of another aspect ratio). A sample whose
    /// occluded VoE violation shows in pixels is drawn again from its next attempt by
    /// `redraw(k, first_attempt)`, its rejections kept. `done` is called with each sample
    /// once rendered, then `emit` with its encoded frames (so a shard's frames are never
    /// held at once). `go_on` is asked before each episode is drawn: its error (an
    /// interruption) ends the shard there. The renderer's id.
    pub(crate) fn render_samples(
        samples: &mut [Sample],
        redraw: &(dyn Fn(usize, u32) -> Result<Sample> + Sync),
        done: &(dyn Fn(&Sample) + Sync),
        go_on: &dyn Fn() -> Result<()>,
        emit: &mut Emit<'_>,
        slots: usize,
        opts: PixelOptions,
    ) -> Result<String> {
        let mut renderer: Option<Renderer> = None;
        for (k, sample) in samples.iter_mut().enumerate() {
            loop {
                let mut episodes = Vec::with_capacity(sample.episodes.len());
                let mut rejection = None;
                for e in &sample.episodes {
                    go_on()?;
                    let frames = render_episode(&mut renderer, e, opts)?;
                    rejection = rejection.or_else(|| shows_violation(e, &frames));
                    episodes.push(frames);
                }
                let Some(r) = rejection else {
                    done(sample);
                    let encoded = sample
                        .episodes
                        .iter()
                        .zip(&episodes)
                        .map(|(e, fs)| fs.iter().map(|f| encode(e, f, slots)).collect())
                        .collect::<Result<_>>()?;
                    emit(k, sample, encoded)?;
                    break;
                };
                let next = sample.episodes.first().map_or(0, |e| e.attempt) + 1;
                let mut again = redraw(k, next)?;
                let mut rejected = std::mem::take(&mut sample.rejected);
                rejected.push(r);
                rejected.append(&mut again.rejected);
                again.rejected = rejected;
                *sample = again;
            }
        }
        Ok(renderer.as_ref().map(|r| r.info().id()).unwrap_or_default())
    }

    fn render_episode(renderer: &mut Option<Renderer>, e: &Episode, opts: PixelOptions) -> Result<Vec<RenderedFrame>> {
        let cam = &e.camera;
        let h = opts.resolution;
        let w = render::width_for(cam, h);
        if renderer.as_ref().is_none_or(|r| r.size() != (w, h)) {
            *renderer = Some(Renderer::new(w, h).map_err(render_err)?);
        }
        match renderer.as_mut() {
            Some(r) => r.render_episode(e).map_err(render_err),
            None => Ok(Vec::new()),
        }
    }

    /// An occluded violation whose object has pixels within [`VIOLATION_WINDOW`] frames of it.
    pub(super) fn shows_violation(e: &Episode, frames: &[RenderedFrame]) -> Option<Rejection> {
        let v = e.labels.violation.as_ref().filter(|v| v.occluded)?;
        let lo = v.frame.saturating_sub(VIOLATION_WINDOW) as usize;
        let hi = (v.frame + VIOLATION_WINDOW) as usize;
        (lo..=hi.min(frames.len().saturating_sub(1))).find_map(|f| {
            let n = frames[f].pixel_count(v.object);
            (n > 0).then(|| Rejection {
                reason: RejectReason::Pixels,
                frame: f as u32,
                detail: format!(
                    "object {} shows {n} pixels at frame {f}, within {VIOLATION_WINDOW} frames of its occluded {} violation (frame {})",
                    v.object,
                    v.kind.as_str(),
                    v.frame
                ),
            })
        })
    }

    fn encode(e: &Episode, f: &RenderedFrame, slots: usize) -> Result<EncodedFrame> {
        let (w, h) = (f.width, f.height);
        let k = render::intrinsics(&e.camera, w, h);
        let m = render::camera_to_world(&e.camera);
        Ok(EncodedFrame {
            png: [
                png_bytes::rgb(w, h, &f.rgb).map_err(render_err)?,
                png_bytes::gray8(w, h, &f.segmentation).map_err(render_err)?,
                png_bytes::gray16(w, h, &f.depth_mm()).map_err(render_err)?,
            ],
            pixels: (0..slots).map(|s| f.pixel_count(s) as i32).collect(),
            intrinsics: std::array::from_fn(|i| k[i / 3][i % 3]),
            pose: std::array::from_fn(|i| m[i / 4][i % 4]),
        })
    }
}

#[cfg(all(test, feature = "render"))]
mod tests {
    use physworld_sim::render::RenderedFrame;
    use physworld_sim::{Family, RejectReason, Split, generate};

    use super::imp::shows_violation;

    fn frame(ids: &[u8]) -> RenderedFrame {
        RenderedFrame {
            width: ids.len() as u32,
            height: 1,
            rgb: vec![0; 3 * ids.len()],
            segmentation: ids.to_vec(),
            depth: vec![1.0; ids.len()],
        }
    }

    #[test]
    fn an_occluded_violation_is_rejected_when_its_object_shows_pixels_around_it() {
        let family = Family::by_name("voe-permanence").expect("family");
        let sample = generate(&family, 0, Split::Train, 0).expect("sample");
        let mut e = sample.episodes.into_iter().find(|e| e.labels.violation.is_some()).expect("an impossible member");
        let v = e.labels.violation.as_mut().expect("violation");
        v.occluded = true;
        let (at, object) = (v.frame as usize, v.object);
        let n = e.frames.len();
        let hidden: Vec<RenderedFrame> = (0..n).map(|_| frame(&[0, 0, 0, 0])).collect();
        assert!(shows_violation(&e, &hidden).is_none());
        // One pixel of the violating object two frames before the violation: rejected.
        let mut edge = hidden.clone();
        edge[at - 2] = frame(&[0, object as u8 + 1, 0, 0]);
        let r = shows_violation(&e, &edge).expect("rejected");
        assert_eq!((r.reason, r.frame), (RejectReason::Pixels, at as u32 - 2));
        // Another object's pixels, or the object's far from the violation, are fine.
        let mut other = hidden.clone();
        other[at] = frame(&[0, object as u8 + 2, 0, 0]);
        assert!(shows_violation(&e, &other).is_none());
        let mut far = hidden.clone();
        far[at.saturating_sub(10)] = frame(&[object as u8 + 1, 0, 0, 0]);
        assert!(shows_violation(&e, &far).is_none());
        // A violation in plain view is not the check's business.
        e.labels.violation.as_mut().expect("violation").occluded = false;
        assert!(shows_violation(&e, &edge).is_none());
    }
}
