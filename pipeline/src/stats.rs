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

/// The bin of `x` in a histogram of [`BINS`] bins over `[lo, hi]`: `floor` of its scaled
/// offset; values beyond the range fall in the end bins, NaN in bin 0. (The saturating cast
/// truncates, which is `floor` for every value it keeps, without a call to `floorf`.)
fn bin(x: f32, lo: f32, hi: f32) -> usize {
    ((((x - lo) / (hi - lo)) * BINS as f32) as usize).min(BINS - 1)
}

/// One feature's accumulators while a shard is written: dense histograms, so a value costs
/// an increment, not a map lookup ([`Partial`] keeps the sparse form for manifests).
#[derive(Debug, Clone)]
struct Dense {
    lo: f32,
    hi: f32,
    count: Vec<u64>,
    sum: Vec<f64>,
    sumsq: Vec<f64>,
    min: Vec<f32>,
    max: Vec<f32>,
    /// `BINS` counts per component.
    hist: Vec<u64>,
}

impl Dense {
    fn new(k: usize, lo: f32, hi: f32) -> Self {
        Dense {
            lo,
            hi,
            count: vec![0; k],
            sum: vec![0.0; k],
            sumsq: vec![0.0; k],
            min: vec![0.0; k],
            max: vec![0.0; k],
            hist: vec![0; k * BINS],
        }
    }

    /// Add one value of every component (`xs.len()` components).
    #[inline]
    fn push(&mut self, xs: &[f32]) {
        for (c, &x) in xs.iter().enumerate() {
            if self.count[c] == 0 {
                (self.min[c], self.max[c]) = (x, x);
            }
            self.count[c] += 1;
            self.sum[c] += x as f64;
            self.sumsq[c] += (x as f64) * (x as f64);
            self.min[c] = self.min[c].min(x);
            self.max[c] = self.max[c].max(x);
            self.hist[c * BINS + bin(x, self.lo, self.hi)] += 1;
        }
    }

    fn into_partial(self) -> Partial {
        let hist = self
            .hist
            .chunks(BINS)
            .map(|h| h.iter().enumerate().filter(|(_, n)| **n > 0).map(|(b, n)| (b as u32, *n)).collect())
            .collect();
        Partial { count: self.count, sum: self.sum, sumsq: self.sumsq, min: self.min, max: self.max, hist }
    }
}

/// Streaming statistics of a shard's episodes, in [`FEATURES`] order; [`Accumulator::finish`]
/// gives the shard's [`Partials`]. Each component sees its values in frame order, then slot
/// order, as a one-value-at-a-time definition would, so a shard's partials are the same bits
/// whatever the thread count or worker sharding.
#[derive(Debug, Clone)]
pub struct Accumulator {
    features: Vec<Dense>,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator { features: FEATURES.iter().map(|(_, k, lo, hi)| Dense::new(*k, *lo, *hi)).collect() }
    }
}

impl Accumulator {
    /// Add an episode's frames: the present objects' features, the action where a frame
    /// has one, and the timestamp.
    pub fn add(&mut self, e: &Episode) {
        let [position, rotation, linvel, angvel, size, action, time] = &mut self.features[..] else {
            unreachable!("FEATURES has seven entries")
        };
        for (f, frame) in e.frames.iter().enumerate() {
            for o in frame.objects.iter().filter(|o: &&ObjectState| o.present) {
                position.push(&o.position);
                rotation.push(&o.rotation);
                linvel.push(&o.linvel);
                angvel.push(&o.angvel);
                size.push(&o.size);
            }
            if let Some(a) = e.actions.as_ref().and_then(|a| a.get(f)) {
                action.push(a);
            }
            time.push(&[frame.time]);
        }
    }

    /// The partials of everything added, keyed by feature name.
    pub fn finish(self) -> Partials {
        FEATURES.iter().zip(self.features).map(|((name, ..), d)| (name.to_string(), d.into_partial())).collect()
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

#[cfg(test)]
mod tests {
    use physworld_sim::{Family, Split};

    use super::*;

    /// The bin as it was first defined: `floor` of the scaled offset, clamped to the bins.
    fn bin_by_floor(x: f32, lo: f32, hi: f32) -> usize {
        (((x - lo) / (hi - lo)) * BINS as f32).floor().clamp(0.0, (BINS - 1) as f32) as usize
    }

    /// The saturating cast bins every f32 as `floor` and `clamp` do: the edges of the range,
    /// negative fractions, huge values, infinities, NaN, and a sweep of bit patterns.
    #[test]
    fn bin_is_floor_clamped() {
        let (lo, hi) = (-20.0f32, 20.0f32);
        let scale = |v: f32| lo + v * (hi - lo) / BINS as f32;
        let mut xs: Vec<f32> = vec![0.0, -0.0, 1e-30, -1e-30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e30, -1e30];
        xs.extend([-1.0, -0.999, -0.5, 0.5, 1.0, 8190.99, 8191.0, 8191.5, 8191.999, 8192.0, 8193.0].map(scale));
        xs.extend([lo, hi, f32::MIN_POSITIVE, f32::MAX, f32::MIN]);
        // Every 4099th bit pattern: about a million floats of every sign and exponent.
        xs.extend((0..=u32::MAX).step_by(4099).map(f32::from_bits));
        for x in xs {
            assert_eq!(bin(x, lo, hi), bin_by_floor(x, lo, hi), "x = {x:e} ({:#x})", x.to_bits());
        }
    }

    /// The definition: every feature component's values listed in frame order, then slot
    /// order; the partial is their count, sums, min, max and floor-binned histogram.
    fn reference(episodes: &[Episode]) -> Partials {
        let mut values: BTreeMap<&str, Vec<Vec<f32>>> =
            FEATURES.iter().map(|(name, k, ..)| (*name, vec![Vec::new(); *k])).collect();
        for e in episodes {
            for (f, frame) in e.frames.iter().enumerate() {
                for (name, ..) in FEATURES {
                    let lists = values.get_mut(name).expect("test input");
                    let mut add = |xs: &[f32]| xs.iter().zip(lists.iter_mut()).for_each(|(x, l)| l.push(*x));
                    match name {
                        columns::TIMESTAMP => add(&[frame.time]),
                        columns::ACTION => {
                            if let Some(a) = e.actions.as_ref().and_then(|a| a.get(f)) {
                                add(a)
                            }
                        }
                        _ => {
                            for o in frame.objects.iter().filter(|o| o.present) {
                                add(match name {
                                    columns::OBJECT_POSITION => &o.position,
                                    columns::OBJECT_ROTATION => &o.rotation,
                                    columns::OBJECT_LINVEL => &o.linvel,
                                    columns::OBJECT_ANGVEL => &o.angvel,
                                    columns::OBJECT_SIZE => &o.size,
                                    other => panic!("no object feature {other}"),
                                })
                            }
                        }
                    }
                }
            }
        }
        let mut p = empty();
        for (name, _, lo, hi) in FEATURES {
            let part = p.get_mut(name).expect("test input");
            for (c, xs) in values[name].iter().enumerate() {
                let Some(&first) = xs.first() else { continue };
                part.count[c] = xs.len() as u64;
                part.sum[c] = xs.iter().fold(0.0, |s, x| s + *x as f64);
                part.sumsq[c] = xs.iter().fold(0.0, |s, x| s + (*x as f64) * (*x as f64));
                part.min[c] = xs.iter().fold(first, |m, x| m.min(*x));
                part.max[c] = xs.iter().fold(first, |m, x| m.max(*x));
                for x in xs {
                    *part.hist[c].entry(bin_by_floor(*x, lo, hi) as u32).or_insert(0) += 1;
                }
            }
        }
        p
    }

    /// The dense accumulator gives the same partials, bit for bit, as adding each value to
    /// the sparse form, on episodes with actions, absent slots and values beyond the
    /// histograms' ranges.
    #[test]
    fn accumulator_equals_the_definition() {
        let mut episodes = Vec::new();
        for (i, name) in ["push", "drop", "contain", "voe-permanence"].into_iter().enumerate() {
            let family = Family::by_name(name).expect("test input");
            let s = physworld_sim::generate(&family, 5, Split::Train, i as u64).expect("test input");
            episodes.extend(s.episodes);
        }
        // A value beyond every range and a non-finite one land in the end bins and bin 0.
        let o = episodes[0].frames[3].objects.iter_mut().find(|o| o.present).expect("test input");
        o.linvel[0] = 1e6;
        o.angvel[1] = -1e6;
        o.position[2] = f32::NAN;
        assert!(episodes.iter().any(|e| e.actions.is_some()), "no episode with actions");
        assert!(
            episodes.iter().any(|e| e.frames.iter().any(|f| f.objects.iter().any(|o| !o.present))),
            "no absent slot"
        );
        let mut acc = Accumulator::default();
        for e in &episodes {
            acc.add(e);
        }
        let got = acc.finish();
        let want = reference(&episodes);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (name, w) in &want {
            let g = &got[name];
            assert_eq!(g.count, w.count, "{name}");
            assert!(w.count.iter().all(|n| *n > 0), "{name}: a component saw no value");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&g.sum), bits(&w.sum), "{name}");
            assert_eq!(bits(&g.sumsq), bits(&w.sumsq), "{name}");
            let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits32(&g.min), bits32(&w.min), "{name}");
            assert_eq!(bits32(&g.max), bits32(&w.max), "{name}");
            assert_eq!(g.hist, w.hist, "{name}");
        }
        assert!(got[columns::OBJECT_LINVEL].hist[0].contains_key(&(BINS as u32 - 1)));
    }
}
