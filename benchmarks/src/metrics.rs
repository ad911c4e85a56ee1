//! Metrics and their uncertainty: accuracy, ADE/FDE, IntPhys relative accuracy, AUROC,
//! percentile bootstrap confidence intervals and paired tests between two models.
//!
//! Everything random draws from a seeded ChaCha8 generator, so a CI is reproducible.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Default bootstrap resamples.
pub const DEFAULT_RESAMPLES: u32 = 1000;

/// Arithmetic mean (0 for an empty slice).
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() { 0.0 } else { x.iter().sum::<f64>() / x.len() as f64 }
}

/// Euclidean distance between two points.
pub fn dist(a: [f32; 3], b: [f32; 3]) -> f64 {
    ((a[0] - b[0]) as f64).hypot((a[1] - b[1]) as f64).hypot((a[2] - b[2]) as f64)
}

/// Average and final displacement error of one item: `pred` and `target` are
/// `[horizon][object]` points. ADE is the mean over horizons and objects, FDE the mean over
/// objects at the last horizon. `None` when there is nothing to compare.
pub fn ade_fde(pred: &[Vec<[f32; 3]>], target: &[Vec<[f32; 3]>]) -> Option<(f64, f64)> {
    let (mut sum, mut n) = (0.0, 0usize);
    for (p, t) in pred.iter().zip(target) {
        for (a, b) in p.iter().zip(t) {
            sum += dist(*a, *b);
            n += 1;
        }
    }
    let (lp, lt) = (pred.last()?, target.last()?);
    let fin: Vec<f64> = lp.iter().zip(lt).map(|(a, b)| dist(*a, *b)).collect();
    (n > 0 && !fin.is_empty()).then(|| (sum / n as f64, mean(&fin)))
}

/// IntPhys relative score of one matched quadruplet: 1 when the possible pair's summed
/// surprise is below the impossible pair's, 0.5 on a tie, else 0. A constant scorer gets
/// exactly 0.5 on every quadruplet.
pub fn relative_score(possible: [f64; 2], impossible: [f64; 2]) -> f64 {
    let (p, i) = (possible[0] + possible[1], impossible[0] + impossible[1]);
    if p < i {
        1.0
    } else if p == i {
        0.5
    } else {
        0.0
    }
}

/// Area under the ROC curve of `scores` for `positive` labels (the Mann–Whitney statistic,
/// ties counted half). `None` when one class is empty.
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over ties.
    let mut rank = vec![0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            rank[k] = r;
        }
        i = j + 1;
    }
    let np = positive.iter().filter(|p| **p).count() as f64;
    let nn = positive.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return None;
    }
    let rp: f64 = rank.iter().zip(positive).filter(|(_, p)| **p).map(|(r, _)| r).sum();
    Some((rp - np * (np + 1.0) / 2.0) / (np * nn))
}

/// Uniform index below `n` from `rng`.
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// 2.5th and 97.5th percentiles of sorted-on-demand `stats` (linear interpolation).
fn percentile_interval(mut stats: Vec<f64>) -> [f64; 2] {
    stats.retain(|s| s.is_finite());
    if stats.is_empty() {
        return [f64::NAN, f64::NAN];
    }
    stats.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let x = p * (stats.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        stats[lo] + (stats[hi] - stats[lo]) * (x - lo as f64)
    };
    [q(0.025), q(0.975)]
}

/// Percentile-bootstrap 95% interval of `stat` over `n` units: each resample draws `n`
/// unit indices with replacement and hands them to `stat`. Seeded; `[NaN, NaN]` when `n`
/// is 0.
pub fn bootstrap(n: usize, seed: u64, resamples: u32, mut stat: impl FnMut(&[usize]) -> f64) -> [f64; 2] {
    if n == 0 {
        return [f64::NAN, f64::NAN];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = vec![0usize; n];
    let stats = (0..resamples)
        .map(|_| {
            for v in idx.iter_mut() {
                *v = below(&mut rng, n);
            }
            stat(&idx)
        })
        .collect();
    percentile_interval(stats)
}

/// Bootstrap 95% interval of the mean of `x`.
pub fn bootstrap_mean(x: &[f64], seed: u64, resamples: u32) -> [f64; 2] {
    bootstrap(x.len(), seed, resamples, |idx| idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64)
}

/// Bootstrap 95% interval of the AUROC (resampling items; resamples with one class only are
/// skipped).
pub fn bootstrap_auroc(scores: &[f64], positive: &[bool], seed: u64, resamples: u32) -> [f64; 2] {
    bootstrap(scores.len(), seed, resamples, |idx| {
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let p: Vec<bool> = idx.iter().map(|&i| positive[i]).collect();
        auroc(&s, &p).unwrap_or(f64::NAN)
    })
}

/// A paired comparison of two models on the same items.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairedTest {
    /// Items compared.
    pub n: usize,
    /// Mean of `new − old` per-item scores (oriented so that positive is better).
    pub mean_diff: f64,
    /// Paired-bootstrap 95% interval of that mean.
    pub ci: [f64; 2],
    /// Exact two-sided McNemar p-value, when every score is 0 or 1.
    pub mcnemar_p: Option<f64>,
}

impl PairedTest {
    /// Significantly worse: the whole interval lies below zero (and, for binary scores, the
    /// McNemar test agrees at the 5% level).
    pub fn regressed(&self) -> bool {
        self.ci[1] < 0.0 && self.mcnemar_p.is_none_or(|p| p < 0.05)
    }

    /// Significantly better: the mirror of [`PairedTest::regressed`].
    pub fn improved(&self) -> bool {
        self.ci[0] > 0.0 && self.mcnemar_p.is_none_or(|p| p < 0.05)
    }
}

/// Paired test of `new` against `old` per-item scores (same items, same order; higher is
/// better): paired bootstrap of the mean difference, plus McNemar's exact test when both are
/// binary.
pub fn paired_test(old: &[f64], new: &[f64], seed: u64, resamples: u32) -> PairedTest {
    let d: Vec<f64> = new.iter().zip(old).map(|(a, b)| a - b).collect();
    let binary = old.iter().chain(new).all(|v| *v == 0.0 || *v == 1.0);
    let mcnemar_p = binary.then(|| {
        let b = old.iter().zip(new).filter(|(o, n)| **o == 1.0 && **n == 0.0).count() as u64;
        let c = old.iter().zip(new).filter(|(o, n)| **o == 0.0 && **n == 1.0).count() as u64;
        mcnemar_exact(b, c)
    });
    PairedTest { n: d.len(), mean_diff: mean(&d), ci: bootstrap_mean(&d, seed, resamples), mcnemar_p }
}

/// Exact two-sided McNemar test on the discordant counts `b` and `c`: twice the binomial
/// tail `P(X ≤ min(b, c))`, `X ~ Bin(b + c, 1/2)`, capped at 1.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // Sum of C(n, i) / 2^n for i ≤ k, in log space.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_c = 0.0f64; // ln C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_c + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_hand_counts() {
        // Positives 0.8, 0.4; negatives 0.5, 0.1: pairs (0.8>0.5, 0.8>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
        assert_eq!(auroc(&[0.8, 0.4, 0.5, 0.1], &[true, true, false, false]), Some(0.75));
        // A tie between a positive and a negative counts half.
        assert_eq!(auroc(&[0.5, 0.5], &[true, false]), Some(0.5));
        // Constant scores: exactly 0.5.
        assert_eq!(auroc(&[1.0; 6], &[true, false, true, false, false, true]), Some(0.5));
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
    }

    #[test]
    fn relative_score_counts_ties_half() {
        assert_eq!(relative_score([0.1, 0.2], [0.5, 0.0]), 1.0);
        assert_eq!(relative_score([0.3, 0.2], [0.5, 0.0]), 0.5);
        assert_eq!(relative_score([0.3, 0.4], [0.5, 0.0]), 0.0);
        assert_eq!(relative_score([7.0, 7.0], [7.0, 7.0]), 0.5);
    }

    #[test]
    fn ade_fde_by_hand() {
        let t = vec![vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], vec![[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]];
        let p = vec![vec![[0.0, 3.0, 4.0], [1.0, 0.0, 0.0]], vec![[0.0, 0.0, 1.0], [2.0, 0.0, 3.0]]];
        // Errors: 5, 0 | 1, 3 -> ADE 9/4, FDE (1 + 3)/2.
        assert_eq!(ade_fde(&p, &t), Some((2.25, 2.0)));
        assert_eq!(ade_fde(&[], &[]), None);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let x: Vec<f64> = (0..200).map(|i| (i % 2) as f64).collect();
        let a = bootstrap_mean(&x, 7, 1000);
        assert_eq!(a, bootstrap_mean(&x, 7, 1000));
        assert_ne!(a, bootstrap_mean(&x, 8, 1000));
        assert!(a[0] < 0.5 && 0.5 < a[1], "{a:?}");
        // Binomial standard error at n = 200 is 0.035: the 95% interval is about ±0.07.
        assert!((a[1] - a[0] - 0.14).abs() < 0.03, "{a:?}");
        // A constant has a zero-width interval.
        assert_eq!(bootstrap_mean(&[0.25; 10], 1, 100), [0.25, 0.25]);
    }

    #[test]
    fn mcnemar_exact_by_hand() {
        // b = 0, c = 5: 2 * 0.5^5 = 0.0625.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // b = 1, c = 9: 2 * (1 + 10) / 1024.
        assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }

    #[test]
    fn paired_test_finds_a_planted_regression_only() {
        let old: Vec<f64> = (0..100).map(|i| if i % 10 == 0 { 0.0 } else { 1.0 }).collect();
        let same = paired_test(&old, &old, 1, 500);
        assert_eq!(same.mean_diff, 0.0);
        assert!(!same.regressed());
        let mut new = old.clone();
        for v in new.iter_mut().take(40) {
            *v = 0.0;
        }
        let t = paired_test(&old, &new, 1, 500);
        assert!(t.regressed(), "{t:?}");
        assert!(t.mcnemar_p.is_some_and(|p| p < 1e-6));
        // Improvements are not regressions.
        assert!(!paired_test(&new, &old, 1, 500).regressed());
    }
}
