//! Finalisation: once every shard exists, merge the per-shard metadata into
//! `meta/info.json`, `meta/stats.json` (train only) and the dataset card `README.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{PipelineError, Result};
use crate::generate::{Balance, SUITE_PATH, check_complete, load_manifest, merge_balances, verify_shard};
use crate::layout::Layout;
use crate::schema::columns;
use crate::schema::{FORMAT_VERSION, OBJECT_FLOAT_FEATURES};
use crate::stats::{self, FeatureStats};
use crate::storage::Storage;
use crate::suite::Suite;

/// Path of the dataset description.
pub const INFO_PATH: &str = "meta/info.json";
/// Path of the normalisation statistics.
pub const STATS_PATH: &str = "meta/stats.json";
/// Path of the dataset card.
pub const CARD_PATH: &str = "README.md";

/// Counts of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Samples (a VoE quadruplet is one sample of four episodes).
    pub samples: u64,
    /// Episodes.
    pub episodes: u64,
    /// Frames (rows).
    pub frames: u64,
    /// Files.
    pub files: u64,
    /// Global index of its first episode.
    pub first_episode: u64,
    /// Label balance per family.
    pub labels: BTreeMap<String, Balance>,
}

/// `meta/info.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// On-disk format version.
    pub format_version: String,
    /// Simulator version string.
    pub generator_version: String,
    /// physworld version.
    pub physworld_version: String,
    /// Whether episodes were simulated with cross-machine bitwise determinism.
    pub enhanced_determinism: bool,
    /// Suite content hash (SHA-256 of the resolved suite and generator version).
    pub suite_hash: String,
    /// The resolved suite (a hidden test seed is redacted).
    pub suite: Value,
    /// Frames per second.
    pub fps: u32,
    /// Physics rate, Hz.
    pub physics_hz: u32,
    /// Object slots per frame.
    pub max_objects: u32,
    /// Per-split counts, in file order.
    pub splits: BTreeMap<String, SplitInfo>,
    /// Total episodes.
    pub total_episodes: u64,
    /// Total frames.
    pub total_frames: u64,
    /// Rejected attempts by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Feature shapes and names of the frames table.
    pub features: Value,
    /// Every data and episode file with size, rows and SHA-256.
    pub files: Vec<crate::generate::FileEntry>,
    /// Rendered frames (`generate --modality pixels`): resolution, renderer, columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<crate::pixels::PixelsInfo>,
}

fn features(slots: u32) -> Value {
    let s = slots as u64;
    let mut f = serde_json::Map::new();
    for (name, dtype) in [(columns::EPISODE_INDEX, "int64"), (columns::FRAME_INDEX, "int64"), (columns::INDEX, "int64")]
    {
        f.insert(name.into(), json!({ "dtype": dtype, "shape": [1] }));
    }
    f.insert(columns::TIMESTAMP.into(), json!({ "dtype": "float32", "shape": [1], "unit": "s" }));
    f.insert(columns::OBJECT_PRESENT.into(), json!({ "dtype": "bool", "shape": [s] }));
    f.insert(columns::OBJECT_VISIBLE.into(), json!({ "dtype": "bool", "shape": [s] }));
    let names = |k: usize| -> Vec<&str> {
        match k {
            4 => vec!["x", "y", "z", "w"],
            _ => vec!["x", "y", "z"],
        }
    };
    for (name, k) in OBJECT_FLOAT_FEATURES {
        f.insert(name.into(), json!({ "dtype": "float32", "shape": [s, k], "names": ["slot", names(k)] }));
    }
    f.insert(
        columns::OBJECT_SHAPE.into(),
        json!({ "dtype": "int8", "shape": [s], "names": {"-1": "empty", "0": "sphere", "1": "box", "2": "cylinder", "3": "capsule"} }),
    );
    f.insert(
        columns::ACTION.into(),
        json!({ "dtype": "float32", "shape": [3], "names": ["fx", "fy", "fz"], "nullable": true, "unit": "N" }),
    );
    f.insert(
        "contacts".into(),
        json!({ "dtype": "list<struct<a: int16, b: int16, impulse: float32>>", "bodies": "o >= 0: object slot o; -(s+1): static s", "unit": "N*s" }),
    );
    f.insert("zone_contacts".into(), json!({ "dtype": "list<struct<zone: int16, object: int16>>" }));
    Value::Object(f)
}

/// The suite as stored in `meta/suite.json` and its hash.
pub fn stored_suite(storage: &dyn Storage) -> Result<(Suite, String)> {
    if !storage.exists(SUITE_PATH)? {
        return Err(PipelineError::Corrupt {
            path: format!("{}/{SUITE_PATH}", storage.location()).into(),
            reason: "missing: not a physworld dataset folder (run `physworld generate` first)".into(),
        });
    }
    let v: Value = serde_json::from_slice(&storage.get(SUITE_PATH)?)
        .map_err(|e| PipelineError::Corrupt { path: SUITE_PATH.into(), reason: e.to_string() })?;
    let suite: Suite = serde_json::from_value(v["suite"].clone())
        .map_err(|e| PipelineError::Corrupt { path: SUITE_PATH.into(), reason: e.to_string() })?;
    let hash = suite.content_hash();
    if v["suite_hash"] != hash.as_str() {
        return Err(PipelineError::Corrupt {
            path: SUITE_PATH.into(),
            reason: "suite_hash does not match its suite".into(),
        });
    }
    Ok((suite, hash))
}

/// Merge all shards' metadata. Fails with `Incomplete` while shards are missing and with
/// `Corrupt` if a file does not match its manifest; writes nothing in either case.
pub fn finalize(storage: &dyn Storage) -> Result<Info> {
    let (suite, hash) = stored_suite(storage)?;
    let layout = Layout::new(&suite)?;
    // Every shard must exist before anything is merged or written.
    check_complete(storage, &layout)?;
    let mut partials = stats::empty();
    let mut rejected = BTreeMap::new();
    let mut splits = BTreeMap::new();
    let mut files = Vec::new();
    let shards = layout.shards();
    // Each shard's pixels entry (small), for the one-renderer check below.
    let mut pixels_of = Vec::with_capacity(shards.len());
    for (k, s) in layout.splits.iter().enumerate() {
        let mut labels: BTreeMap<String, Balance> = BTreeMap::new();
        // One manifest in memory at a time: memory stays flat however many shards.
        for shard in shards.iter().filter(|sh| sh.split == k) {
            let m = load_manifest(storage, shard)?.ok_or_else(|| PipelineError::Corrupt {
                path: shard.manifest_path().into(),
                reason: "disappeared during finalize".into(),
            })?;
            verify_shard(storage, &m)?;
            let m = &m;
            if s.spec.name == "train" {
                for (k, p) in &m.stats {
                    if let Some(acc) = partials.get_mut(k) {
                        acc.merge(p);
                    }
                }
            }
            for (k, v) in &m.rejected {
                *rejected.entry(k.clone()).or_insert(0) += v;
            }
            merge_balances(&mut labels, &m.labels);
            files.push(m.data.clone());
            files.push(m.episodes_file.clone());
            if let Some(p) = &m.pixels {
                files.push(p.file.clone());
            }
            pixels_of.push((shard.stem(), m.pixels.clone()));
        }
        splits.insert(
            s.spec.name.clone(),
            SplitInfo {
                samples: s.spec.samples,
                episodes: s.episodes,
                frames: s.frames,
                files: s.files,
                first_episode: s.first_episode,
                labels,
            },
        );
    }
    // One modality, resolution and renderer for the whole dataset, checked before anything
    // is written.
    crate::pixels::check_one_renderer(pixels_of.iter().map(|(s, p)| (s.as_str(), p.as_ref())))?;
    let pixels = pixels_of.into_iter().next().and_then(|(_, p)| p);
    let stats: BTreeMap<String, FeatureStats> = stats::finish(&partials);
    let mut suite_json = serde_json::to_value(&suite).map_err(|e| PipelineError::Layout(e.to_string()))?;
    if let Some(arr) = suite_json["splits"].as_array_mut() {
        for s in arr.iter_mut().filter(|s| s["name"] == "hidden_test") {
            s["seed"] = Value::String("redacted".into());
        }
    }
    let info = Info {
        format_version: FORMAT_VERSION.into(),
        generator_version: physworld_sim::GENERATOR_VERSION.into(),
        physworld_version: env!("CARGO_PKG_VERSION").into(),
        enhanced_determinism: physworld_sim::ENHANCED_DETERMINISM,
        suite_hash: hash,
        suite: suite_json,
        fps: physworld_sim::DEFAULT_FPS,
        physics_hz: physworld_sim::DEFAULT_PHYSICS_HZ,
        max_objects: suite.suite.max_objects,
        total_episodes: layout.splits.iter().map(|s| s.episodes).sum(),
        total_frames: layout.splits.iter().map(|s| s.frames).sum(),
        splits,
        rejected,
        features: features(suite.suite.max_objects),
        files,
        pixels: pixels.map(|p| crate::pixels::PixelsInfo {
            resolution: p.resolution,
            renderer: p.renderer,
            features: crate::pixels::features(suite.suite.max_objects),
        }),
    };
    storage.put(STATS_PATH, &pretty(&stats))?;
    storage.put(INFO_PATH, &pretty(&info))?;
    storage.put(CARD_PATH, card(&suite, &info).as_bytes())?;
    Ok(info)
}

/// Pretty JSON with a final newline.
pub(crate) fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

fn card(suite: &Suite, info: &Info) -> String {
    let mut y = String::from("---\npretty_name: physworld ");
    y.push_str(&suite.suite.name);
    y.push_str("\ntags:\n- physics\n- world-models\n- synthetic\n- physworld\nconfigs:\n");
    let mut configs = vec![("default", "data"), ("episodes", "meta/episodes")];
    if info.pixels.is_some() {
        configs.push(("pixels", "pixels"));
    }
    for (config, dir) in configs {
        y.push_str(&format!("- config_name: {config}\n  data_files:\n"));
        for s in suite.splits.iter().filter(|s| s.samples > 0) {
            y.push_str(&format!("  - split: {}\n    path: {dir}/{}-*.parquet\n", s.name, s.name));
        }
    }
    if info.pixels.is_some() {
        // `datasets` decodes these columns to images.
        y.push_str("dataset_info:\n- config_name: pixels\n  features:\n");
        for (name, dtype) in [("episode_index", "int64"), ("frame_index", "int64"), ("index", "int64")] {
            y.push_str(&format!("  - name: {name}\n    dtype: {dtype}\n"));
        }
        for name in [crate::pixels::IMAGE, crate::pixels::SEGMENTATION, crate::pixels::DEPTH] {
            y.push_str(&format!("  - name: {name}\n    dtype: image\n"));
        }
        y.push_str(&format!(
            "  - name: {}\n    sequence: int32\n    length: {}\n",
            crate::pixels::OBJECT_PIXELS,
            suite.suite.max_objects
        ));
        for (name, n) in [(crate::pixels::CAMERA_INTRINSICS, 9), (crate::pixels::CAMERA_TO_WORLD, 16)] {
            y.push_str(&format!("  - name: {name}\n    sequence: float32\n    length: {n}\n"));
        }
    }
    y.push_str("---\n\n");
    y.push_str(&format!("# physworld dataset `{}`\n\n", suite.suite.name));
    if !suite.suite.description.is_empty() {
        y.push_str(&format!("{}\n\n", suite.suite.description));
    }
    y.push_str(&format!(
        "Synthetic rigid-body physics episodes generated by physworld ({}), format `{}`, suite hash `{}`. \
         One row per frame at {} fps; per-episode metadata and labels in the `episodes` config.\n\n",
        info.generator_version, info.format_version, info.suite_hash, info.fps
    ));
    if let Some(p) = &info.pixels {
        y.push_str(&format!(
            "Rendered frames in the `pixels` config, one row per frame (join on `index`): `image` (RGB), \
             `segmentation` (object slot + 1 per pixel, 0 background) and `depth` (16-bit, millimetres along \
             the optical axis), lossless PNG, {} px high, drawn by {}.\n\n",
            p.resolution, p.renderer
        ));
    }
    y.push_str("```python\nfrom datasets import load_dataset\nframes = load_dataset(\"path/to/this/folder\")            # default config\nepisodes = load_dataset(\"path/to/this/folder\", \"episodes\")\n```\n\n");
    y.push_str("| split | samples | episodes | frames | files |\n|---|---|---|---|---|\n");
    for (name, s) in &info.splits {
        y.push_str(&format!("| {name} | {} | {} | {} | {} |\n", s.samples, s.episodes, s.frames, s.files));
    }
    y.push_str("\nFamilies (round-robin over samples): ");
    y.push_str(&suite.families.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", "));
    y.push_str(
        ".\n\nNormalisation statistics (`meta/stats.json`) are computed on `train` only. \
                Hidden properties (mass, friction, restitution) are in the `episodes` config, not in the frames.\n",
    );
    y
}
