//! Recordings: episodes a planner executed (`physworld plan --item N --record DIR`),
//! written in the dataset's own Parquet schema so that whatever reads a dataset shard
//! (pyarrow, polars, duckdb, Hugging Face `datasets`; later the renderer) reads them too.
//!
//! A recording folder holds `data/record-00000-of-00001.parquet` (one row per frame, the
//! columns of a dataset's `data/` files), `meta/episodes/record-00000-of-00001.parquet`
//! (one row per episode, as a dataset's `meta/episodes/`), `meta/record.json` (what was
//! recorded: the planner, the item, its outcome, the source dataset's suite hash, the
//! files with their SHA-256) and a short `README.md`. It is not a generated dataset: its
//! episodes come from a planner's actions, not from a suite's seeds, so it has no suite
//! and `Dataset::open` does not open it; `physworld inspect` does ([`inspect_recording`]:
//! what was recorded, each episode, every file checked against `meta/record.json`).

use std::path::Path;

use arrow_array::{Array, BooleanArray, Int32Array, StringArray};
use physworld_sim::Episode;
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::generate::FileEntry;
use crate::parquet_io::{decode, encode, encode_batches};
use crate::schema::{FORMAT_VERSION, Placed, columns, episodes_batch, episodes_schema, frames_batches, frames_schema};
use crate::storage::{Storage, sha256_hex, write_atomic};

/// The recording's frames file.
pub const RECORD_FRAMES: &str = "data/record-00000-of-00001.parquet";
/// The recording's per-episode file.
pub const RECORD_EPISODES: &str = "meta/episodes/record-00000-of-00001.parquet";
/// The recording's description.
pub const RECORD_META: &str = "meta/record.json";
/// The split name the rows carry.
pub const RECORD_SPLIT: &str = "record";

/// Whether `dir` may take a recording: a new or empty folder, or with `force` an earlier
/// recording (checked before a run, so that a long run is not wasted on a bad folder).
pub fn check_recording_dir(dir: &Path, force: bool) -> Result<()> {
    let field = || "--record".to_string();
    if dir.is_file() {
        return Err(PipelineError::InvalidArgument {
            field: field(),
            value: dir.display().to_string(),
            allowed: "a folder for the recording (new or empty), not a file".into(),
        });
    }
    let occupied = dir.is_dir() && std::fs::read_dir(dir).map_err(|e| io(dir, e))?.next().is_some();
    if occupied && !(force && dir.join(RECORD_META).is_file()) {
        let allowed = if dir.join(RECORD_META).is_file() {
            "a new or empty folder (it holds an earlier recording: pass --force to replace it)"
        } else {
            "a new or empty folder (it holds other files, which a recording never replaces)"
        };
        return Err(PipelineError::InvalidArgument {
            field: field(),
            value: dir.display().to_string(),
            allowed: allowed.into(),
        });
    }
    Ok(())
}

/// Write `episodes` (episode `k` is row group `k`'s episode index) with `slots` object
/// slots into the new or empty folder `dir`, with `about` (what was recorded) in
/// `meta/record.json`; returns the paths written. A folder holding anything else is
/// refused, unless it is an earlier recording and `force` is set.
pub fn write_recording(
    dir: &Path,
    episodes: &[Episode],
    slots: usize,
    about: &serde_json::Value,
    force: bool,
) -> Result<Vec<String>> {
    check_recording_dir(dir, force)?;
    if episodes.is_empty() {
        return Err(PipelineError::InvalidArgument {
            field: "--record".into(),
            value: dir.display().to_string(),
            allowed: "a run that executed at least one episode (every placement was refused or unusable)".into(),
        });
    }
    let slots = slots.max(episodes.iter().map(|e| e.objects.len()).max().unwrap_or(0));
    let mut placed = Vec::with_capacity(episodes.len());
    let mut first_frame = 0i64;
    for (k, e) in episodes.iter().enumerate() {
        placed.push(Placed {
            episode: e,
            episode_index: k as i64,
            first_frame,
            sample_index: k as i64,
            split: RECORD_SPLIT,
        });
        first_frame += e.frames.len() as i64;
    }
    let frames =
        encode_batches(frames_schema(slots), frames_batches(&placed, slots), first_frame as usize, RECORD_FRAMES)?;
    let eps = encode(&episodes_batch(&placed, slots)?, RECORD_EPISODES)?;
    let files = serde_json::json!([
        { "path": RECORD_FRAMES, "bytes": frames.len(), "sha256": sha256_hex(&frames), "rows": first_frame },
        { "path": RECORD_EPISODES, "bytes": eps.len(), "sha256": sha256_hex(&eps), "rows": episodes.len() },
    ]);
    let mut meta = about.clone();
    if let Some(o) = meta.as_object_mut() {
        o.insert("format_version".into(), crate::schema::FORMAT_VERSION.into());
        o.insert("slots".into(), slots.into());
        o.insert("episodes".into(), episodes.len().into());
        o.insert("files".into(), files);
    }
    let meta = serde_json::to_vec_pretty(&meta).map_err(|e| PipelineError::Layout(e.to_string()))?;
    let readme = format!(
        "# A physworld recording\n\nEpisodes a planner executed (`physworld plan --record`), in the dataset \
         schema: `{RECORD_FRAMES}` (one row per frame) and `{RECORD_EPISODES}` (one row per episode, with the \
         static scene in `metadata`). `{RECORD_META}` says what was recorded.\n\n```python\nimport pyarrow.parquet \
         as pq\nframes = pq.read_table(\"{RECORD_FRAMES}\").to_pandas()\n```\n"
    );
    let written =
        [(RECORD_FRAMES, frames), (RECORD_EPISODES, eps), (RECORD_META, meta), ("README.md", readme.into_bytes())];
    for (path, bytes) in &written {
        write_atomic(&dir.join(path), bytes)?;
    }
    Ok(written.iter().map(|(p, _)| p.to_string()).collect())
}

/// One recorded episode as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedEpisode {
    /// Episode index in the recording.
    pub episode_index: i64,
    /// Family of the task.
    pub family: String,
    /// Frames.
    pub frames: i32,
    /// The family's goal label, where it has one.
    pub goal_reached: Option<bool>,
    /// The contact label, where the family has one.
    pub contact: Option<bool>,
}

/// What `inspect` finds in a recording ([`write_recording`]'s folder).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingReport {
    /// The folder.
    pub location: String,
    /// `meta/record.json` as written: the task, planner, item, source dataset, seed and
    /// outcome, the format version, slots and files.
    pub about: serde_json::Value,
    /// Every file that matched `meta/record.json` (size, SHA-256), decoded, and has the
    /// dataset schema.
    pub files: Vec<FileEntry>,
    /// The episodes, in order.
    pub episodes: Vec<RecordedEpisode>,
    /// Problems: missing, truncated, corrupt or mismatching files, wrong schema or version.
    pub problems: Vec<String>,
}

impl RecordingReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Whether `storage` holds a recording (its `meta/record.json`).
pub fn is_recording(storage: &dyn Storage) -> Result<bool> {
    storage.exists(RECORD_META)
}

/// Inspect a recording: every file listed in `meta/record.json` is checked (size,
/// SHA-256, rows), decoded and its schema compared with the dataset format's; the
/// episodes are listed with their labels.
pub fn inspect_recording(storage: &dyn Storage) -> Result<RecordingReport> {
    let about: serde_json::Value = serde_json::from_slice(&storage.get(RECORD_META)?)
        .map_err(|e| PipelineError::Layout(format!("{RECORD_META}: unreadable: {e}")))?;
    let mut r = RecordingReport {
        location: storage.location(),
        about: about.clone(),
        files: Vec::new(),
        episodes: Vec::new(),
        problems: Vec::new(),
    };
    if about["format_version"] != FORMAT_VERSION {
        r.problems.push(format!(
            "{RECORD_META}: format {} but this physworld reads {FORMAT_VERSION}",
            about["format_version"]
        ));
    }
    let slots = about["slots"].as_u64().unwrap_or(0) as usize;
    let listed: Vec<FileEntry> = serde_json::from_value(about["files"].clone()).unwrap_or_default();
    for path in [RECORD_FRAMES, RECORD_EPISODES] {
        let Some(entry) = listed.iter().find(|f| f.path == path) else {
            r.problems.push(format!("{RECORD_META}: does not list {path}"));
            continue;
        };
        match check_file(storage, entry, slots) {
            Ok(batches) => {
                if path == RECORD_EPISODES {
                    r.episodes = batches.iter().flat_map(episodes_of).collect();
                }
                r.files.push(entry.clone());
            }
            Err(problem) => r.problems.push(problem),
        }
    }
    if about["episodes"].as_u64() != Some(r.episodes.len() as u64) && r.problems.is_empty() {
        r.problems.push(format!(
            "{RECORD_META}: {} episodes, {RECORD_EPISODES} holds {}",
            about["episodes"],
            r.episodes.len()
        ));
    }
    Ok(r)
}

/// A listed file's bytes, rows and schema against `entry` and the format's.
fn check_file(
    storage: &dyn Storage,
    entry: &FileEntry,
    slots: usize,
) -> std::result::Result<Vec<arrow_array::RecordBatch>, String> {
    let path = &entry.path;
    if !storage.exists(path).map_err(|e| e.to_string())? {
        return Err(format!("{path}: missing"));
    }
    let bytes = storage.get(path).map_err(|e| e.to_string())?;
    if bytes.len() as u64 != entry.bytes || sha256_hex(&bytes) != entry.sha256 {
        return Err(format!("{path}: {} bytes whose SHA-256 does not match {RECORD_META}", bytes.len()));
    }
    let batches = decode(bytes, path).map_err(|e| e.to_string())?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows as u64 != entry.rows {
        return Err(format!("{path}: {rows} rows, {RECORD_META} says {}", entry.rows));
    }
    let schema = if path == RECORD_FRAMES { frames_schema(slots) } else { episodes_schema(slots) };
    if batches.iter().any(|b| b.schema().fields() != schema.fields()) {
        return Err(format!("{path}: schema differs from {FORMAT_VERSION}'s"));
    }
    Ok(batches)
}

fn episodes_of(b: &arrow_array::RecordBatch) -> Vec<RecordedEpisode> {
    let col = |name: &str| b.column_by_name(name);
    let index = col(columns::EPISODE_INDEX).and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>().cloned());
    let family = col(columns::FAMILY).and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
    let frames = col(columns::NUM_FRAMES).and_then(|c| c.as_any().downcast_ref::<Int32Array>().cloned());
    let flag = |name: &str| col(name).and_then(|c| c.as_any().downcast_ref::<BooleanArray>().cloned());
    let (goal, contact) = (flag(columns::LABEL_GOAL_REACHED), flag(columns::LABEL_CONTACT));
    let opt = |a: &Option<BooleanArray>, i: usize| a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i));
    (0..b.num_rows())
        .map(|i| RecordedEpisode {
            episode_index: index.as_ref().map_or(i as i64, |a| a.value(i)),
            family: family.as_ref().map_or(String::new(), |a| a.value(i).to_string()),
            frames: frames.as_ref().map_or(0, |a| a.value(i)),
            goal_reached: opt(&goal, i),
            contact: opt(&contact, i),
        })
        .collect()
}

fn io(dir: &Path, e: std::io::Error) -> PipelineError {
    PipelineError::InvalidArgument {
        field: "--record".into(),
        value: dir.display().to_string(),
        allowed: format!("a readable folder ({e})"),
    }
}
