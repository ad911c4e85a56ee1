//! Generation: simulate each shard's samples in parallel, write its files atomically, and
//! record it in its manifest; resumable and shardable across workers.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use physworld_sim::{Sample, generate as generate_sample};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::layout::{Layout, ShardId, SplitLayout, WorkerShard};
use crate::parquet_io::{encode, encode_batches};
use crate::pixels::{EncodedFrame, PixelOptions, PixelsEntry, PixelsWriter, render_samples};
use crate::schema::{Placed, episodes_batch, frames_batches, frames_schema};
use crate::stats::{self, Partials};
use crate::storage::{Storage, TMP_PREFIX, sha256_hex, tmp_name};
use crate::suite::Suite;

/// Path of the resolved suite inside a dataset.
pub const SUITE_PATH: &str = "meta/suite.json";

/// A finished file as recorded in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Rows.
    pub rows: u64,
}

/// Label counts: `[positive, labelled]`.
pub type Balance = BTreeMap<String, [u64; 2]>;

/// The record of a finished shard (`meta/shards/<stem>.json`); written last, so a shard
/// is finished exactly when its manifest exists and its files match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// `<split>-<file>-of-<files>`.
    pub shard: String,
    /// Split name.
    pub split: String,
    /// Suite content hash the shard belongs to.
    pub suite_hash: String,
    /// Samples `[start, end)` within the split.
    pub samples: [u64; 2],
    /// Episodes written.
    pub episodes: u64,
    /// The frames file.
    pub data: FileEntry,
    /// The per-episode file.
    pub episodes_file: FileEntry,
    /// Rejected attempts by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Label balance per family: family -> label -> [positive, labelled].
    pub labels: BTreeMap<String, Balance>,
    /// Normalisation partials of this shard.
    pub stats: Partials,
    /// The rendered frames (`generate --modality pixels`); none for states only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<PixelsEntry>,
}

/// Add an episode's boolean labels (`contact`, `tower_fell`, `goal_reached`,
/// `possible`) to `bal`.
pub fn count_labels(bal: &mut Balance, e: &physworld_sim::Episode) {
    let l = &e.labels;
    for (name, v) in [
        ("contact", l.contact.map(|c| c.occurred)),
        ("tower_fell", l.tower_fell),
        ("goal_reached", l.goal_reached),
        ("possible", l.quadruplet.map(|q| q.possible)),
    ] {
        if let Some(v) = v {
            let c = bal.entry(name.to_string()).or_insert([0, 0]);
            c[0] += v as u64;
            c[1] += 1;
        }
    }
}

/// Add per-family balances `src` into `dst`.
pub fn merge_balances(dst: &mut BTreeMap<String, Balance>, src: &BTreeMap<String, Balance>) {
    for (fam, bal) in src {
        let b = dst.entry(fam.clone()).or_default();
        for (k, [pos, n]) in bal {
            let c = b.entry(k.clone()).or_insert([0, 0]);
            c[0] += pos;
            c[1] += n;
        }
    }
}

/// Progress events for bars.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Work planned: samples to simulate (after skipping finished shards).
    Planned {
        /// Samples.
        samples: u64,
    },
    /// One sample simulated; `rejected` attempts were retried for it.
    Sample {
        /// Rejected attempts.
        rejected: u64,
    },
}

/// Options of [`generate`].
pub struct GenerateOptions<'a> {
    /// Which part of the dataset this worker writes.
    pub shard: WorkerShard,
    /// Skip shards already finished (verified against their manifest) and redo the rest.
    pub resume: bool,
    /// Progress callback (called from worker threads).
    pub progress: &'a (dyn Fn(Progress) + Sync),
    /// Set from outside (the binary sets it on SIGINT or SIGTERM) to stop soon: shards
    /// not yet written are abandoned, finished ones are kept for `resume`, and the run
    /// ends with [`PipelineError::Interrupted`].
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// Render every frame too (`--modality pixels`): RGB, segmentation and depth PNGs in
    /// `pixels/<shard>.parquet`; `None` writes states only.
    pub pixels: Option<PixelOptions>,
}

impl Default for GenerateOptions<'static> {
    /// The whole dataset, from scratch (no resume), without progress reports.
    fn default() -> Self {
        GenerateOptions { shard: WorkerShard::ALL, resume: false, progress: &no_progress, stop: None, pixels: None }
    }
}

fn no_progress(_: Progress) {}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenerateReport {
    /// Shards written by this run.
    pub shards_written: u64,
    /// Shards skipped because they were already finished.
    pub shards_skipped: u64,
    /// Samples simulated.
    pub samples: u64,
    /// Episodes written.
    pub episodes: u64,
    /// Frames written.
    pub frames: u64,
    /// Bytes written (data + episode files).
    pub bytes: u64,
    /// Rejected attempts by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Whether the dataset was finalised (all shards present).
    pub finalized: bool,
    /// Where the time went.
    pub stage_seconds: StageSeconds,
}

/// Seconds spent in each stage of writing shards, summed over the shards this run wrote.
/// With one thread they split the time spent on shards (setup, resume checks and the
/// summary are outside); with more, shards overlap, so they are worker seconds (a stage's
/// share is still its fraction of their sum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageSeconds {
    /// Simulating the shards' samples (physics, recording, checks and rejected attempts).
    pub simulate: f64,
    /// Rendering their frames (`--modality pixels`), with the samples the pixel check
    /// redraws, the frames' PNG encoding and their streaming into the staged pixels file up
    /// to its last row group (encoding is under 1% of it at 64 px).
    pub render: f64,
    /// Everything after: Arrow batches, Parquet encoding, statistics, label counts,
    /// hashing, manifests and the storage writes.
    pub write: f64,
    /// Finalising the dataset (merging manifests into `meta/`, the card).
    pub finalize: f64,
}

impl StageSeconds {
    /// The write stage's fraction of the shard stages (simulate, render, write).
    pub fn write_share(&self) -> f64 {
        self.write / (self.simulate + self.render + self.write).max(1e-12)
    }
}

/// The manifest of a shard, if it has one.
pub(crate) fn load_manifest(storage: &dyn Storage, shard: &ShardId) -> Result<Option<ShardManifest>> {
    let path = shard.manifest_path();
    if !storage.exists(&path)? {
        return Ok(None);
    }
    let bytes = storage.get(&path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PipelineError::Corrupt { path: path.into(), reason: format!("unreadable manifest: {e}") })
}

/// Verify a finished shard's files against its manifest.
pub fn verify_shard(storage: &dyn Storage, m: &ShardManifest) -> Result<()> {
    for f in [&m.data, &m.episodes_file].into_iter().chain(m.pixels.as_ref().map(|p| &p.file)) {
        if !storage.exists(&f.path)? {
            return Err(missing(f));
        }
        // Read in pieces: a pixels file can be a gigabyte.
        let (bytes, sha256) = storage.digest(&f.path)?;
        check_entry(f, bytes, &sha256)?;
    }
    Ok(())
}

fn missing(f: &FileEntry) -> PipelineError {
    PipelineError::Corrupt { path: f.path.clone().into(), reason: "missing (listed in its shard manifest)".into() }
}

/// A file of `bytes` bytes hashing to `sha256`, against its manifest entry.
fn check_entry(f: &FileEntry, bytes: u64, sha256: &str) -> Result<()> {
    if bytes != f.bytes {
        return Err(PipelineError::Corrupt {
            path: f.path.clone().into(),
            reason: format!("{bytes} bytes, manifest says {} (truncated?)", f.bytes),
        });
    }
    if sha256 != f.sha256 {
        return Err(PipelineError::Corrupt {
            path: f.path.clone().into(),
            reason: format!("sha256 {sha256} does not match the manifest's {}: the file is corrupt", f.sha256),
        });
    }
    Ok(())
}

/// The bytes of `f`, checked against its manifest entry (size and SHA-256); a mismatch is
/// [`PipelineError::Corrupt`] naming the file.
pub fn verified_get(storage: &dyn Storage, f: &FileEntry) -> Result<Vec<u8>> {
    if !storage.exists(&f.path)? {
        return Err(missing(f));
    }
    let bytes = storage.get(&f.path)?;
    check_entry(f, bytes.len() as u64, &sha256_hex(&bytes))?;
    Ok(bytes)
}

/// Check (or record) which suite the folder holds: a folder never mixes two suites.
fn claim(storage: &dyn Storage, suite: &Suite, hash: &str) -> Result<()> {
    let doc = serde_json::json!({ "suite_hash": hash, "suite": suite });
    if storage.exists(SUITE_PATH)? {
        let old: serde_json::Value = serde_json::from_slice(&storage.get(SUITE_PATH)?)
            .map_err(|e| PipelineError::Corrupt { path: SUITE_PATH.into(), reason: e.to_string() })?;
        if old["suite_hash"] != hash {
            return Err(PipelineError::InvalidArgument {
                field: "--out".into(),
                value: storage.location(),
                allowed: format!(
                    "a new folder or one holding the same suite (it holds suite hash {}, this suite is {hash})",
                    old["suite_hash"]
                ),
            });
        }
        return Ok(());
    }
    // A folder that is not one of our datasets is never written into: `generate --out .`
    // must not replace a README.md or anything under data/ or meta/ that is someone else's.
    let foreign: Vec<String> = ["", "data", "meta"]
        .iter()
        .map(|d| Ok(storage.list(d)?.into_iter().map(move |f| if d.is_empty() { f } else { format!("{d}/{f}") })))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .filter(|f| !f.rsplit('/').next().is_some_and(|n| n.starts_with(TMP_PREFIX)))
        .collect();
    // Another worker of a sharded run may have claimed the folder since the check above.
    if !foreign.is_empty() && storage.exists(SUITE_PATH)? {
        return claim(storage, suite, hash);
    }
    if !foreign.is_empty() {
        let shown: Vec<&str> = foreign.iter().take(3).map(String::as_str).collect();
        return Err(PipelineError::InvalidArgument {
            field: "--out".into(),
            value: storage.location(),
            allowed: format!(
                "a new or empty folder, or a dataset to --resume (it holds other files: {}{})",
                shown.join(", "),
                if foreign.len() > 3 { ", ..." } else { "" }
            ),
        });
    }
    let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| PipelineError::Layout(e.to_string()))?;
    storage.put(SUITE_PATH, &bytes)
}

/// Generate this worker's shards of `suite` into `storage`; then, when the run covers the
/// whole dataset, finalise it (info, stats, card).
///
/// Fails without touching finished data when the folder already holds shards and `resume`
/// is off, or holds another suite.
pub fn generate(suite: &Suite, storage: &dyn Storage, opts: &GenerateOptions<'_>) -> Result<GenerateReport> {
    let layout = Layout::new(suite)?;
    let hash = suite.content_hash();
    let shards = layout.shards();
    let mine: Vec<&ShardId> = shards.iter().enumerate().filter(|(j, _)| opts.shard.owns(*j)).map(|(_, s)| s).collect();
    // Other workers of a sharded run write their own shards into the same folder.
    for s in mine.iter().filter(|_| !opts.resume) {
        if storage.exists(&s.manifest_path())? || storage.exists(&s.data_path())? {
            return Err(PipelineError::InvalidArgument {
                field: "--out".into(),
                value: storage.location(),
                allowed: "a folder without this worker's shards, or --resume to continue the run that wrote them"
                    .into(),
            });
        }
    }
    claim(storage, suite, &hash)?;
    // Leftovers of a killed run of this worker: its shards' temporary files (a store
    // leaves none).
    let sweep: &[&ShardId] = if storage.leaves_temporaries() { &mine } else { &[] };
    for s in sweep {
        for p in [s.data_path(), s.episodes_path(), s.pixels_path(), s.manifest_path()] {
            let (dir, name) = p.rsplit_once('/').unwrap_or(("", &p));
            let tmp = tmp_name(name);
            let ours =
                |f: &str| f.strip_prefix(tmp.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
            for leftover in storage.list(dir)?.into_iter().filter(|f| ours(f)) {
                storage.remove(&format!("{dir}/{leftover}"))?;
            }
        }
    }
    let mut todo = Vec::new();
    let mut report = GenerateReport::default();
    for s in mine {
        match load_manifest(storage, s)? {
            // A finished shard of the same suite and modality (and resolution) is kept.
            Some(m)
                if m.suite_hash == hash
                    && m.pixels.as_ref().map(|p| p.resolution) == opts.pixels.map(|p| p.resolution)
                    && verify_shard(storage, &m).is_ok() =>
            {
                report.shards_skipped += 1
            }
            _ => todo.push(s),
        }
    }
    let planned: u64 = todo.iter().map(|s| layout.samples_of(s).end - layout.samples_of(s).start).sum();
    (opts.progress)(Progress::Planned { samples: planned });
    // Up to one shard per worker thread at a time, each worker taking the next shard as soon
    // as it is done with one: a shard's samples are simulated in parallel but its Parquet
    // encoding is serial, so a free thread simulates another shard's samples meanwhile
    // (shards in lockstep left a core idle for the longer shard's encoding). Memory stays
    // bounded by that many shards; the bytes do not depend on the order.
    let width = rayon::current_num_threads().max(1).min(todo.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let folded = Mutex::new((report, None::<(usize, PipelineError)>));
    rayon::scope(|scope| {
        for _ in 0..width {
            scope.spawn(|_| {
                while !failed.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = todo.get(k) else { break };
                    // A shard that panics stops the others from taking more shards too.
                    let _stop = StopOnPanic(&failed);
                    let done = write_shard(&layout, s, &hash, storage, opts);
                    let mut f = folded.lock().unwrap_or_else(|e| e.into_inner());
                    match done {
                        // Fold and drop: manifests carry statistics partials.
                        Ok((m, t)) => fold(&mut f.0, &m, t),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            // The first shard's error in shard order, whatever the timing.
                            if f.1.as_ref().is_none_or(|(j, _)| k < *j) {
                                f.1 = Some((k, e));
                            }
                        }
                    }
                }
            });
        }
    });
    let (mut report, error) = folded.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some((_, e)) = error {
        return Err(e);
    }
    if opts.shard == WorkerShard::ALL {
        let t = Instant::now();
        crate::finalize::finalize(storage)?;
        report.finalized = true;
        report.stage_seconds.finalize = t.elapsed().as_secs_f64();
    }
    Ok(report)
}

/// Sets its flag when dropped by a panic.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Add a written shard to the run's report.
fn fold(report: &mut GenerateReport, m: &ShardManifest, t: StageSeconds) {
    report.shards_written += 1;
    let s = &mut report.stage_seconds;
    (s.simulate, s.render, s.write) = (s.simulate + t.simulate, s.render + t.render, s.write + t.write);
    report.samples += m.samples[1] - m.samples[0];
    report.episodes += m.episodes;
    report.frames += m.data.rows;
    report.bytes += m.data.bytes + m.episodes_file.bytes + m.pixels.as_ref().map_or(0, |p| p.file.bytes);
    for (k, v) in &m.rejected {
        *report.rejected.entry(k.clone()).or_insert(0) += v;
    }
}

fn write_shard(
    layout: &Layout,
    shard: &ShardId,
    hash: &str,
    storage: &dyn Storage,
    opts: &GenerateOptions<'_>,
) -> Result<(ShardManifest, StageSeconds)> {
    let started = Instant::now();
    let split = &layout.splits[shard.split];
    let range = layout.samples_of(shard);
    let mut samples: Vec<Sample> = range
        .clone()
        .into_par_iter()
        .map(|i| {
            if opts.stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
                return Err(PipelineError::Interrupted { dir: storage.location() });
            }
            let s = generate_sample(layout.family_of(i), split.spec.seed, split.spec.sim_split, i)?;
            // With pixels, a sample counts once rendered (most of the time is there).
            if opts.pixels.is_none() {
                (opts.progress)(Progress::Sample { rejected: s.rejected.len() as u64 });
            }
            Ok(s)
        })
        .collect::<Result<_>>()?;
    let simulated = Instant::now();
    let slots = layout.max_objects as usize;
    // Rendered before the episodes are placed: a sample whose occluded violation shows in
    // pixels is drawn again from its next attempt. Frames stream into a staged pixels file
    // as each sample is rendered.
    let pixels = match opts.pixels {
        Some(px) => {
            let redraw = |k: usize, first: u32| -> Result<Sample> {
                let i = range.start + k as u64;
                Ok(physworld_sim::generate_from(
                    layout.family_of(i),
                    split.spec.seed,
                    split.spec.sim_split,
                    i,
                    first,
                    physworld_sim::DEFAULT_MAX_ATTEMPTS,
                )?)
            };
            let done = |s: &Sample| (opts.progress)(Progress::Sample { rejected: s.rejected.len() as u64 });
            let mut writer = PixelsWriter::new(storage.stage(&shard.pixels_path())?, slots)?;
            let mut emit = |k: usize, s: &Sample, frames: Vec<Vec<EncodedFrame>>| -> Result<()> {
                // Every episode's frames, each once: a renderer that dropped or repeated one
                // would shift every later row onto the wrong state.
                let counts: Vec<usize> = frames.iter().map(Vec::len).collect();
                let recorded: Vec<usize> = s.episodes.iter().map(|e| e.frames.len()).collect();
                if counts != recorded {
                    return Err(PipelineError::Layout(format!(
                        "{}: sample {} rendered {counts:?} frames for episodes of {recorded:?}",
                        shard.pixels_path(),
                        range.start + k as u64
                    )));
                }
                for ((episode_index, first_frame), frames) in
                    episode_keys(layout, split, range.start + k as u64, s).zip(frames)
                {
                    for (f, frame) in frames.into_iter().enumerate() {
                        writer.push([episode_index, f as i64, first_frame + f as i64], frame)?;
                    }
                }
                Ok(())
            };
            // Rendering takes most of a pixel run: a signal stops it between episodes, and
            // the staged file goes with the writer.
            let go_on = || match opts.stop {
                Some(s) if s.load(Ordering::Relaxed) => Err(PipelineError::Interrupted { dir: storage.location() }),
                _ => Ok(()),
            };
            let renderer = render_samples(&mut samples, &redraw, &done, &go_on, &mut emit, slots, px)?;
            Some((px, writer, renderer))
        }
        None => None,
    };
    let rendered_at = if pixels.is_some() { Instant::now() } else { simulated };
    let mut placed = Vec::new();
    for (k, s) in samples.iter().enumerate() {
        let i = range.start + k as u64;
        for ((episode_index, first_frame), e) in episode_keys(layout, split, i, s).zip(&s.episodes) {
            if e.frames.len() as u64 != layout.frames_per_episode(i) {
                return Err(PipelineError::Layout(format!(
                    "family `{}` recorded {} frames, the layout expects {}",
                    e.family,
                    e.frames.len(),
                    layout.frames_per_episode(i)
                )));
            }
            placed.push(Placed {
                episode: e,
                episode_index,
                first_frame,
                sample_index: i as i64,
                split: &split.spec.name,
            });
        }
    }
    let rows: u64 = placed.iter().map(|p| p.episode.frames.len() as u64).sum();
    let data = encode_batches(frames_schema(slots), frames_batches(&placed, slots), rows as usize, &shard.data_path())?;
    let eps = encode(&episodes_batch(&placed, slots)?, &shard.episodes_path())?;
    let pixels = match pixels {
        Some((px, writer, renderer)) => {
            if writer.rows() != rows {
                return Err(PipelineError::Layout(format!(
                    "{}: {} rendered frames for {rows} recorded",
                    shard.pixels_path(),
                    writer.rows()
                )));
            }
            let (staged, file) = writer.finish()?;
            Some((staged, PixelsEntry { file, resolution: px.resolution, renderer }))
        }
        None => None,
    };
    let mut partials = stats::Accumulator::default();
    let mut rejected = BTreeMap::new();
    let mut labels: BTreeMap<String, Balance> = BTreeMap::new();
    for s in &samples {
        for r in &s.rejected {
            *rejected.entry(r.reason.as_str().to_string()).or_insert(0) += 1;
        }
    }
    for p in &placed {
        partials.add(p.episode);
        count_labels(labels.entry(p.episode.family.clone()).or_default(), p.episode);
    }
    let manifest = ShardManifest {
        shard: shard.stem(),
        split: split.spec.name.clone(),
        suite_hash: hash.to_string(),
        samples: [range.start, range.end],
        episodes: placed.len() as u64,
        data: FileEntry { path: shard.data_path(), bytes: data.len() as u64, sha256: sha256_hex(&data), rows },
        episodes_file: FileEntry {
            path: shard.episodes_path(),
            bytes: eps.len() as u64,
            sha256: sha256_hex(&eps),
            rows: placed.len() as u64,
        },
        rejected,
        labels,
        stats: partials.finish(),
        pixels: pixels.as_ref().map(|(_, entry)| entry.clone()),
    };
    storage.put(&shard.data_path(), &data)?;
    storage.put(&shard.episodes_path(), &eps)?;
    if let Some((staged, _)) = pixels {
        storage.commit(staged)?;
    }
    // Compact JSON: manifests carry histogram partials and a dataset can have thousands.
    let m = serde_json::to_vec(&manifest).map_err(|e| PipelineError::Layout(e.to_string()))?;
    storage.put(&shard.manifest_path(), &m)?;
    let seconds = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64();
    let stages = StageSeconds {
        simulate: seconds(started, simulated),
        render: seconds(simulated, rendered_at),
        write: rendered_at.elapsed().as_secs_f64(),
        finalize: 0.0,
    };
    Ok((manifest, stages))
}

/// `(episode_index, first frame's index)` of each episode of sample `i` of `split`, in order.
fn episode_keys(layout: &Layout, split: &SplitLayout, i: u64, s: &Sample) -> impl Iterator<Item = (i64, i64)> {
    let first_frame = split.first_frame + layout.frames_before(i);
    let first_episode = split.first_episode + layout.episodes_before(i);
    s.episodes
        .iter()
        .scan(first_frame, |next, e| {
            let at = *next;
            *next += e.frames.len() as u64;
            Some(at as i64)
        })
        .enumerate()
        .map(move |(j, f)| ((first_episode + j as u64) as i64, f))
}

/// `Incomplete` unless every shard of the layout has its manifest.
pub(crate) fn check_complete(storage: &dyn Storage, layout: &Layout) -> Result<()> {
    let shards = layout.shards();
    let missing: Vec<String> = shards
        .iter()
        .filter_map(|s| match storage.exists(&s.manifest_path()) {
            Ok(true) => None,
            Ok(false) => Some(Ok(s.stem())),
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_>>()?;
    if let Some(first) = missing.first() {
        return Err(PipelineError::Incomplete {
            dir: storage.location().into(),
            missing: missing.len(),
            total: shards.len(),
            example: first.clone(),
        });
    }
    Ok(())
}
