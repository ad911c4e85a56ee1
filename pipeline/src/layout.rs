//! Where every sample, episode and frame goes, computed up front from the suite alone.
//!
//! Samples of a split are assigned to the suite's families round-robin (sample `i` is
//! family `i % F`), a family contributes a fixed number of episodes per sample (4 for VoE
//! quadruplets) and of frames per episode, so episode and frame indices are closed-form
//! functions of the sample index, and the file of sample `i` is `i / samples_per_file`.
//! A sharded run therefore writes exactly the files an unsharded run would.

use physworld_sim::Family;

use crate::error::{PipelineError, Result};
use crate::suite::{SplitSpec, Suite};

/// One output file (a shard of work): split and file number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardId {
    /// Split position in [`Layout::splits`].
    pub split: usize,
    /// Split name.
    pub split_name: String,
    /// File number within the split.
    pub file: u64,
    /// Files in the split.
    pub files: u64,
}

impl ShardId {
    /// `"<split>-<file:05>-of-<files:05>"`, the stem of its data, episodes and manifest files.
    pub fn stem(&self) -> String {
        format!("{}-{:05}-of-{:05}", self.split_name, self.file, self.files)
    }

    /// `data/<stem>.parquet`.
    pub fn data_path(&self) -> String {
        format!("data/{}.parquet", self.stem())
    }

    /// `meta/episodes/<stem>.parquet`.
    pub fn episodes_path(&self) -> String {
        format!("meta/episodes/{}.parquet", self.stem())
    }

    /// Path of the shard's rendered frames (`generate --modality pixels`).
    pub fn pixels_path(&self) -> String {
        format!("pixels/{}.parquet", self.stem())
    }

    /// `meta/shards/<stem>.json`.
    pub fn manifest_path(&self) -> String {
        format!("meta/shards/{}.json", self.stem())
    }
}

/// Per-split counts and offsets.
#[derive(Debug, Clone)]
pub struct SplitLayout {
    /// The split.
    pub spec: SplitSpec,
    /// Files in it.
    pub files: u64,
    /// Episodes in it.
    pub episodes: u64,
    /// Frames in it.
    pub frames: u64,
    /// Global episode index of its first episode.
    pub first_episode: u64,
    /// Global frame index of its first frame.
    pub first_frame: u64,
}

/// The dataset's layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Families in round-robin order.
    pub families: Vec<Family>,
    /// Samples per file.
    pub samples_per_file: u64,
    /// Object slots.
    pub max_objects: u32,
    /// Splits in file order.
    pub splits: Vec<SplitLayout>,
    eps: Vec<u64>,
    frames: Vec<u64>,
    eps_prefix: Vec<u64>,
    frames_prefix: Vec<u64>,
}

impl Layout {
    /// Compute the layout of `suite`.
    pub fn new(suite: &Suite) -> Result<Layout> {
        let families = suite.sim_families()?;
        let eps: Vec<u64> = families.iter().map(|f| f.episodes_per_sample() as u64).collect();
        let frames: Vec<u64> = families.iter().zip(&eps).map(|(f, e)| f.frames_per_episode() as u64 * e).collect();
        let prefix = |v: &[u64]| {
            let mut p = vec![0u64];
            for x in v {
                p.push(p[p.len() - 1] + x);
            }
            p
        };
        let mut layout = Layout {
            samples_per_file: suite.suite.samples_per_file,
            max_objects: suite.suite.max_objects,
            eps_prefix: prefix(&eps),
            frames_prefix: prefix(&frames),
            families,
            eps,
            frames,
            splits: Vec::new(),
        };
        let (mut e0, mut f0) = (0u64, 0u64);
        for spec in &suite.splits {
            let n = spec.samples;
            let (episodes, frames) = (layout.episodes_before(n), layout.frames_before(n));
            layout.splits.push(SplitLayout {
                spec: spec.clone(),
                files: n.div_ceil(layout.samples_per_file),
                episodes,
                frames,
                first_episode: e0,
                first_frame: f0,
            });
            e0 += episodes;
            f0 += frames;
        }
        Ok(layout)
    }

    /// Family of sample `i`.
    pub fn family_of(&self, sample: u64) -> &Family {
        &self.families[(sample % self.families.len() as u64) as usize]
    }

    /// Episodes in samples `0..sample` of a split.
    pub fn episodes_before(&self, sample: u64) -> u64 {
        let f = self.families.len() as u64;
        (sample / f) * self.eps_prefix[f as usize] + self.eps_prefix[(sample % f) as usize]
    }

    /// Frames in samples `0..sample` of a split.
    pub fn frames_before(&self, sample: u64) -> u64 {
        let f = self.families.len() as u64;
        (sample / f) * self.frames_prefix[f as usize] + self.frames_prefix[(sample % f) as usize]
    }

    /// Frames per episode of sample `i`'s family.
    pub fn frames_per_episode(&self, sample: u64) -> u64 {
        let k = (sample % self.families.len() as u64) as usize;
        self.frames[k] / self.eps[k]
    }

    /// Every shard of the dataset, in order.
    pub fn shards(&self) -> Vec<ShardId> {
        let mut out = Vec::new();
        for (i, s) in self.splits.iter().enumerate() {
            for file in 0..s.files {
                out.push(ShardId { split: i, split_name: s.spec.name.clone(), file, files: s.files });
            }
        }
        out
    }

    /// Sample indices of a shard.
    pub fn samples_of(&self, shard: &ShardId) -> std::ops::Range<u64> {
        let n = self.splits[shard.split].spec.samples;
        let start = shard.file * self.samples_per_file;
        start..(start + self.samples_per_file).min(n)
    }
}

/// A worker's part of a sharded run: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerShard {
    /// This worker, `0..count`.
    pub index: u64,
    /// Number of workers.
    pub count: u64,
}

impl WorkerShard {
    /// The whole dataset.
    pub const ALL: WorkerShard = WorkerShard { index: 0, count: 1 };

    /// Parse `I/N`.
    pub fn parse(s: &str) -> Result<WorkerShard> {
        let bad = || PipelineError::InvalidArgument {
            field: "--shard".into(),
            value: s.into(),
            allowed: "I/N with integers 0 <= I < N, e.g. 0/4".into(),
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(WorkerShard { index, count })
    }

    /// Whether shard number `j` (in [`Layout::shards`] order) is this worker's.
    pub fn owns(&self, j: usize) -> bool {
        j as u64 % self.count == self.index
    }
}
