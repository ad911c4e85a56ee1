//! `inspect`: counts, label balance, schema and version checks, hash verification.

use std::collections::BTreeMap;

use arrow_array::{Array, StringArray};
use serde::Serialize;

use crate::error::Result;
use crate::finalize::{INFO_PATH, Info, stored_suite};
use crate::generate::{Balance, ShardManifest, merge_balances, verify_shard};
use crate::layout::Layout;
use crate::parquet_io::decode;
use crate::schema::{FORMAT_VERSION, episodes_schema, frames_schema};
use crate::storage::Storage;

/// Counts of one split as found on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SplitReport {
    /// Files expected by the layout.
    pub files_expected: u64,
    /// Finished shards found.
    pub files_found: u64,
    /// Episodes found.
    pub episodes: u64,
    /// Frames found.
    pub frames: u64,
    /// Episodes per family.
    pub families: BTreeMap<String, u64>,
    /// Label balance per family: label -> [positive, labelled].
    pub labels: BTreeMap<String, Balance>,
}

/// What `inspect` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectReport {
    /// Dataset folder.
    pub location: String,
    /// Suite name.
    pub suite: String,
    /// Suite hash.
    pub suite_hash: String,
    /// Format version found in `meta/info.json` (None before finalisation).
    pub format_version: Option<String>,
    /// Simulator version that generated the data (from `meta/info.json`).
    pub generator_version: Option<String>,
    /// physworld version that wrote the data (from `meta/info.json`).
    pub physworld_version: Option<String>,
    /// Whether the episodes are bitwise reproducible across machines.
    pub enhanced_determinism: Option<bool>,
    /// Whether `meta/info.json` exists.
    pub finalized: bool,
    /// Every data and episode file that matched its manifest (size, SHA-256) and decoded.
    pub files: Vec<crate::generate::FileEntry>,
    /// Per split.
    pub splits: BTreeMap<String, SplitReport>,
    /// Problems: missing, truncated, corrupt or mismatching files, wrong schema or version.
    pub problems: Vec<String>,
}

impl InspectReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Inspect a dataset folder: every shard is checked against its manifest (size, SHA-256),
/// decoded, and its schema and row counts compared with the layout's.
pub fn inspect(storage: &dyn Storage) -> Result<InspectReport> {
    let (suite, hash) = stored_suite(storage)?;
    let layout = Layout::new(&suite)?;
    let slots = layout.max_objects as usize;
    let mut report = InspectReport {
        location: storage.location(),
        suite: suite.suite.name.clone(),
        suite_hash: hash.clone(),
        format_version: None,
        generator_version: None,
        physworld_version: None,
        enhanced_determinism: None,
        finalized: storage.exists(INFO_PATH)?,
        files: Vec::new(),
        splits: BTreeMap::new(),
        problems: Vec::new(),
    };
    if report.finalized {
        match serde_json::from_slice::<Info>(&storage.get(INFO_PATH)?) {
            Ok(info) => {
                if info.format_version != FORMAT_VERSION {
                    report.problems.push(format!(
                        "{INFO_PATH}: format {} but this physworld reads {FORMAT_VERSION}",
                        info.format_version
                    ));
                }
                if info.suite_hash != hash {
                    report
                        .problems
                        .push(format!("{INFO_PATH}: suite hash {} does not match meta/suite.json", info.suite_hash));
                }
                report.format_version = Some(info.format_version);
                report.generator_version = Some(info.generator_version);
                report.physworld_version = Some(info.physworld_version);
                report.enhanced_determinism = Some(info.enhanced_determinism);
            }
            Err(e) => report.problems.push(format!("{INFO_PATH}: unreadable: {e}")),
        }
    }
    for s in &layout.splits {
        report.splits.insert(s.spec.name.clone(), SplitReport { files_expected: s.files, ..Default::default() });
    }
    for shard in layout.shards() {
        let path = shard.manifest_path();
        if !storage.exists(&path)? {
            report.problems.push(format!("{}: missing shard (no {path})", shard.data_path()));
            continue;
        }
        let m: ShardManifest = match serde_json::from_slice(&storage.get(&path)?) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("{path}: unreadable manifest: {e}"));
                continue;
            }
        };
        if m.suite_hash != hash {
            report.problems.push(format!("{path}: belongs to suite {} not {hash}", m.suite_hash));
            continue;
        }
        if let Err(e) = verify_shard(storage, &m) {
            report.problems.push(e.to_string());
            continue;
        }
        match check_files(storage, &m, slots) {
            Ok(families) => {
                let sr = report.splits.entry(m.split.clone()).or_default();
                sr.files_found += 1;
                sr.episodes += m.episodes;
                sr.frames += m.data.rows;
                for (f, n) in families {
                    *sr.families.entry(f).or_insert(0) += n;
                }
                merge_balances(&mut sr.labels, &m.labels);
                report.files.extend([m.data.clone(), m.episodes_file.clone()]);
            }
            Err(problem) => report.problems.push(problem),
        }
    }
    Ok(report)
}

fn check_files(
    storage: &dyn Storage,
    m: &ShardManifest,
    slots: usize,
) -> std::result::Result<BTreeMap<String, u64>, String> {
    let data =
        decode(storage.get(&m.data.path).map_err(|e| e.to_string())?, &m.data.path).map_err(|e| e.to_string())?;
    let rows: usize = data.iter().map(|b| b.num_rows()).sum();
    if rows as u64 != m.data.rows {
        return Err(format!("{}: {rows} rows, manifest says {}", m.data.path, m.data.rows));
    }
    if let Some(b) = data.first()
        && b.schema().fields() != frames_schema(slots).fields()
    {
        return Err(format!("{}: schema differs from {FORMAT_VERSION}'s frames schema", m.data.path));
    }
    let eps = decode(storage.get(&m.episodes_file.path).map_err(|e| e.to_string())?, &m.episodes_file.path)
        .map_err(|e| e.to_string())?;
    let mut families = BTreeMap::new();
    for b in &eps {
        if b.schema().fields() != episodes_schema(slots).fields() {
            return Err(format!("{}: schema differs from {FORMAT_VERSION}'s episodes schema", m.episodes_file.path));
        }
        let col = b.column_by_name("family").and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let Some(col) = col else { return Err(format!("{}: no `family` column", m.episodes_file.path)) };
        for i in 0..col.len() {
            *families.entry(col.value(i).to_string()).or_insert(0) += 1;
        }
    }
    Ok(families)
}
