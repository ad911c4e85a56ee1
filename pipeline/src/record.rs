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
//! and `Dataset::open` does not open it.

use std::path::Path;

use physworld_sim::Episode;

use crate::error::{PipelineError, Result};
use crate::parquet_io::encode;
use crate::schema::{Placed, episodes_batch, frames_batch};
use crate::storage::{sha256_hex, write_atomic};

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
    let frames = encode(&frames_batch(&placed, slots)?, RECORD_FRAMES)?;
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

fn io(dir: &Path, e: std::io::Error) -> PipelineError {
    PipelineError::InvalidArgument {
        field: "--record".into(),
        value: dir.display().to_string(),
        allowed: format!("a readable folder ({e})"),
    }
}
