//! Normalisation statistics, computed streaming per shard and merged exactly.
//!
//! Each shard records, per feature component, the count, sum and sum of squares (f64),
//! min, max and a fixed-bin histogram over a documented range; merging adds them in shard
//! order, so the result is the same whatever the thread count or sharding. Quantiles
//! (`q01`, `q99`) are read off the histogram and are exact up to half a bin width
//! ([`BINS`] bins over the feature's range; values beyond it fall in the end bins).
//! Object features pool the present slots; `action` pools frames that have one.

use std::collections::BTreeMap;

use physworld_sim::{Episode, ObjectState};
use serde::{Deserialize, Serialize};

use crate::schema::columns;

/// Histogram bins per component.
pub const BINS: usize = 8192;

/// Features with statistics: (name, components, histogram range).
pub const FEATURES: [(&str, usize, f32, f32); 7] = [
    (columns::OBJECT_POSITION, 3, -20.0, 20.0),
    (columns::OBJECT_ROTATION, 4, -1.0, 1.0),
    (columns::OBJECT_LINVEL, 3, -30.0, 30.0),
    (columns::OBJECT_ANGVEL, 3, -200.0, 200.0),
    (columns::OBJECT_SIZE, 3, 0.0, 5.0),
    (columns::ACTION, 3, -100.0, 100.0),
    (columns::TIMESTAMP, 1, 0.0, 120.0),
];

/// Mergeable per-component accumulators of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Values seen per component.
    pub count: Vec<u64>,
    /// Sum per component.
    pub sum: Vec<f64>,
    /// Sum of squares per component.
    pub sumsq: Vec<f64>,
    /// Minimum per component.
    pub min: Vec<f32>,
    /// Maximum per component.
    pub max: Vec<f32>,
    /// Sparse histogram per component: bin -> count.
    pub hist: Vec<BTreeMap<u32, u64>>,
}

impl Partial {
    fn new(k: usize) -> Self {
        Partial {
            count: vec![0; k],
            sum: vec![0.0; k],
            sumsq: vec![0.0; k],
            min: vec![0.0; k],
            max: vec![0.0; k],
            hist: vec![BTreeMap::new(); k],
        }
    }

    fn push(&mut self, c: usize, x: f32, lo: f32, hi: f32) {
        if self.count[c] == 0 {
            (self.min[c], self.max[c]) = (x, x);
        }
        self.count[c] += 1;
        self.sum[c] += x as f64;
        self.sumsq[c] += (x as f64) * (x as f64);
        self.min[c] = self.min[c].min(x);
        self.max[c] = self.max[c].max(x);
        let b = (((x - lo) / (hi - lo)) * BINS as f32).floor().clamp(0.0, (BINS - 1) as f32) as u32;
        *self.hist[c].entry(b).or_insert(0) += 1;
    }

    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &Partial) {
        for c in 0..self.count.len() {
            if other.count[c] == 0 {
                continue;
            }
            if self.count[c] == 0 {
                (self.min[c], self.max[c]) = (other.min[c], other.max[c]);
            }
            self.count[c] += other.count[c];
            self.sum[c] += other.sum[c];
            self.sumsq[c] += other.sumsq[c];
            self.min[c] = self.min[c].min(other.min[c]);
            self.max[c] = self.max[c].max(other.max[c]);
            for (b, n) in &other.hist[c] {
                *self.hist[c].entry(*b).or_insert(0) += n;
            }
        }
    }
}

/// Partials of every feature, keyed by feature name.
pub type Partials = BTreeMap<String, Partial>;

/// Empty partials for every feature.
pub fn empty() -> Partials {
    FEATURES.iter().map(|(n, k, _, _)| (n.to_string(), Partial::new(*k))).collect()
}

/// Accumulate an episode's frames.
pub fn accumulate(p: &mut Partials, e: &Episode) {
    let get = |o: &ObjectState, name: &str| -> Vec<f32> {
        match name {
            columns::OBJECT_POSITION => o.position.to_vec(),
            columns::OBJECT_ROTATION => o.rotation.to_vec(),
            columns::OBJECT_LINVEL => o.linvel.to_vec(),
            columns::OBJECT_ANGVEL => o.angvel.to_vec(),
            _ => o.size.to_vec(),
        }
    };
    for (f, frame) in e.frames.iter().enumerate() {
        for (name, _, lo, hi) in FEATURES {
            let Some(part) = p.get_mut(name) else { continue };
            match name {
                columns::TIMESTAMP => part.push(0, frame.time, lo, hi),
                columns::ACTION => {
                    if let Some(a) = e.actions.as_ref().and_then(|a| a.get(f)) {
                        for (c, x) in a.iter().enumerate() {
                            part.push(c, *x, lo, hi);
                        }
                    }
                }
                _ => {
                    for o in frame.objects.iter().filter(|o| o.present) {
                        for (c, x) in get(o, name).into_iter().enumerate() {
                            part.push(c, x, lo, hi);
                        }
                    }
                }
            }
        }
    }
}

/// Final statistics of one feature (LeRobot's `stats.json` keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Mean per component.
    pub mean: Vec<f64>,
    /// Population standard deviation per component.
    pub std: Vec<f64>,
    /// Minimum.
    pub min: Vec<f32>,
    /// Maximum.
    pub max: Vec<f32>,
    /// 1st percentile (histogram estimate).
    pub q01: Vec<f32>,
    /// 99th percentile (histogram estimate).
    pub q99: Vec<f32>,
    /// Values counted.
    pub count: Vec<u64>,
}

fn quantile(hist: &BTreeMap<u32, u64>, n: u64, q: f64, lo: f32, hi: f32, min: f32, max: f32) -> f32 {
    if n == 0 {
        return 0.0;
    }
    let target = (q * n as f64).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (b, c) in hist {
        acc += c;
        if acc >= target {
            let width = (hi - lo) / BINS as f32;
            return (lo + (*b as f32 + 0.5) * width).clamp(min, max);
        }
    }
    max
}

/// Turn merged partials into statistics.
pub fn finish(p: &Partials) -> BTreeMap<String, FeatureStats> {
    let mut out = BTreeMap::new();
    for (name, _, lo, hi) in FEATURES {
        let Some(part) = p.get(name) else { continue };
        let k = part.count.len();
        let mean: Vec<f64> =
            (0..k).map(|c| if part.count[c] > 0 { part.sum[c] / part.count[c] as f64 } else { 0.0 }).collect();
        let std = (0..k)
            .map(|c| {
                if part.count[c] == 0 {
                    return 0.0;
                }
                (part.sumsq[c] / part.count[c] as f64 - mean[c] * mean[c]).max(0.0).sqrt()
            })
            .collect();
        let (min, max) = (part.min.clone(), part.max.clone());
        let q = |qq: f64| (0..k).map(|c| quantile(&part.hist[c], part.count[c], qq, lo, hi, min[c], max[c])).collect();
        out.insert(
            name.to_string(),
            FeatureStats { q01: q(0.01), q99: q(0.99), mean, std, min, max, count: part.count.clone() },
        );
    }
    out
}
