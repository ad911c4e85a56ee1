//! Drawing episodes by (suite seed, family, split, index) with retries, in parallel.

use std::collections::BTreeMap;
use std::ops::Range;

use rayon::prelude::*;
use sha2::Digest as _;

use crate::error::{Rejection, Result, SimError};
use crate::families::{Family, Sample};
use crate::seed::episode_seed;
use crate::split::Split;

/// Default number of attempts before [`generate`] gives up. See [`generate_with`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

/// Draw sample `index` of `family` for `split` under `suite_seed`, retrying rejected
/// attempts (attempt `k` uses `episode_seed(suite_seed, family, split, index, k)`).
pub fn generate(family: &Family, suite_seed: u64, split: Split, index: u64) -> Result<Sample> {
    generate_with(family, suite_seed, split, index, DEFAULT_MAX_ATTEMPTS)
}

/// [`generate`] with an explicit attempt limit (at least 1).
pub fn generate_with(family: &Family, suite_seed: u64, split: Split, index: u64, max_attempts: u32) -> Result<Sample> {
    generate_from(family, suite_seed, split, index, 0, max_attempts)
}

/// [`generate_with`] starting at attempt `first` (attempts `first..max_attempts`): for
/// callers with an acceptance test of their own (the pixel check of `generate --modality
/// pixels`), which reject a sample's attempt and draw the next one. The returned sample's
/// `rejected` lists only the attempts made here.
pub fn generate_from(
    family: &Family,
    suite_seed: u64,
    split: Split,
    index: u64,
    first: u32,
    max_attempts: u32,
) -> Result<Sample> {
    let name = family.name();
    let mut rejected: Vec<Rejection> = Vec::new();
    for attempt in first..max_attempts.max(first + 1) {
        let seed = episode_seed(suite_seed, name, split, index, attempt);
        match family.sample(seed, split)? {
            Ok(mut sample) => {
                for ep in &mut sample.episodes {
                    ep.family = name.to_string();
                    ep.split = split;
                    ep.seed = seed;
                    ep.attempt = attempt;
                }
                sample.rejected = rejected;
                return Ok(sample);
            }
            Err(r) => rejected.push(r),
        }
    }
    let last = rejected.pop().unwrap_or_else(|| Rejection::family("no attempt made"));
    Err(SimError::AttemptsExhausted { family: name.to_string(), attempts: max_attempts.max(first + 1), last })
}

/// Counts over a batch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BatchReport {
    /// Samples drawn.
    pub samples: u64,
    /// Episodes drawn (4 per VoE sample).
    pub episodes: u64,
    /// Rejected attempts by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Physics steps taken by the accepted episodes.
    pub physics_steps: u64,
}

impl BatchReport {
    /// Total rejected attempts.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn add(&mut self, s: &Sample) {
        self.samples += 1;
        self.episodes += s.episodes.len() as u64;
        self.physics_steps += s.episodes.iter().map(|e| e.physics_steps).sum::<u64>();
        for r in &s.rejected {
            *self.rejected.entry(r.reason.as_str().to_string()).or_insert(0) += 1;
        }
    }
}

/// Draw samples `indices` in parallel on the current rayon pool (one Rapier world per task)
/// and return them in index order: identical whatever the number of threads. `on_done` is
/// called once per finished sample (from worker threads), e.g. for a progress bar.
pub fn generate_batch(
    family: &Family,
    suite_seed: u64,
    split: Split,
    indices: Range<u64>,
    on_done: &(dyn Fn(&Sample) + Sync),
) -> Result<(Vec<Sample>, BatchReport)> {
    let samples: Vec<Sample> = indices
        .into_par_iter()
        .map(|i| {
            let s = generate(family, suite_seed, split, i)?;
            on_done(&s);
            Ok(s)
        })
        .collect::<Result<_>>()?;
    let mut report = BatchReport::default();
    for s in &samples {
        report.add(s);
    }
    Ok((samples, report))
}

/// SHA-256 (hex) of every sample's JSON in order: equal digests mean identical data (e.g.
/// across thread counts or machines). Kept out of [`generate_batch`], whose callers time it.
pub fn content_sha256(samples: &[Sample]) -> Result<String> {
    let mut digest = sha2::Sha256::new();
    for s in samples {
        digest.update(serde_json::to_vec(s)?);
    }
    Ok(digest.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
