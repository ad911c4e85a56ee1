//! `validate-suite`: a task is only meaningful if cheap tricks fail on it, and a suite only
//! proves that when it has the items to.
//!
//! Every [`Heuristic`] — physical ones (object count, largest jump, ...) and structural ones
//! that read only the presentation (movie position, fixed choice, cross-movie matches, ...)
//! — answers the scored split's VoE, contact and outcome items exactly as a model would
//! (through [`crate::present`]), and is judged per family on the task's primary per-unit
//! score (VoE: the frame-averaged relative score per quadruplet; contact and outcome:
//! right or wrong):
//!
//! - **Off chance (fails the suite)**: a two-sided test of "mean = chance" rejects at level
//!   α after Holm's correction across every check (so dozens of honest checks do not flag a
//!   suite by chance; a trick *below* chance leaks as much as one above: invert it), and the
//!   mean is not shown within ±δ.
//! - **At chance**: an equivalence test (two one-sided tests) shows the mean within ±δ of
//!   chance at level α. The suite claims that of every check at once, which the
//!   intersection–union principle allows at level α without a correction.
//! - **Underpowered**: the family has fewer units than [`Criteria::units_needed`], the
//!   number with which a suite whose every trick is truly at chance passes with probability
//!   `power` (worst-case spread: a fair coin, sd 0.5). The suite then says it lacks power
//!   instead of passing.
//! - **Inconclusive**: enough units, but neither verdict.
//!
//! A family tagged `visible_in_single_frames = true` in the suite file is reported, not
//! judged. Tests use the normal approximation to the mean, sound at the unit counts power
//! asks for.
//!
//! **Solvability, the other half**: a task at chance for every trick is still meaningless
//! if nothing can answer it from what models observe (a wall models cannot see makes
//! passing through it no violation). The [`Observer`] — the physics engine on the scene
//! rebuilt from the observation alone — answers the same items, and every family must reach
//! [`Criteria::solvable`] on the task's primary score (the oracle, which sees the true scene,
//! scores 1). A family shown below it (the upper end of the observer's 95% interval is)
//! fails the suite; one below it with an interval that still reaches it is undetermined
//! (the suite is underpowered). `blind_statics` blinds the observer
//! to every static but the floor: the check that catches a suite whose answers depend on
//! statics its observations leave out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::adapters::{Heuristic, HeuristicAdapter, Observer};
use crate::bench::{Prepared, answer_shown};
use crate::error::{BenchError, Result};
use crate::results::{Metric, TaskResult};
use crate::score::{Bootstrap, score};
use crate::tasks::TaskKind;

/// Default equivalence margin and minimum detectable effect: 0.1 from chance.
pub const DEFAULT_DELTA: f64 = 0.1;
/// Default significance level.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// Default power.
pub const DEFAULT_POWER: f64 = 0.8;
/// Default score the ideal observer must reach on every family.
pub const DEFAULT_SOLVABLE: f64 = 0.8;
/// Worst-case standard deviation of a per-unit score in `[0, 1]` at chance 0.5.
const WORST_SD: f64 = 0.5;

/// What a suite must show.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Criteria {
    /// Equivalence margin around chance, and the effect a group must be able to detect.
    /// Default [`DEFAULT_DELTA`].
    pub delta: f64,
    /// Significance level of every test. Default [`DEFAULT_ALPHA`].
    pub alpha: f64,
    /// Probability that a suite whose every trick is truly at chance passes. Default
    /// [`DEFAULT_POWER`].
    pub power: f64,
    /// Primary score the ideal observer must reach on every family (accuracy or relative
    /// accuracy; the oracle scores 1). Default [`DEFAULT_SOLVABLE`].
    pub solvable: f64,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria { delta: DEFAULT_DELTA, alpha: DEFAULT_ALPHA, power: DEFAULT_POWER, solvable: DEFAULT_SOLVABLE }
    }
}

impl Criteria {
    /// Check the fields.
    pub fn validate(&self) -> Result<()> {
        if !(self.delta > 0.0 && self.delta < 0.5) {
            return Err(BenchError::invalid("delta", self.delta, "a margin in (0, 0.5)"));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(BenchError::invalid("alpha", self.alpha, "a level in (0, 0.5)"));
        }
        if !(self.power > 0.0 && self.power < 1.0) {
            return Err(BenchError::invalid("power", self.power, "a probability in (0, 1)"));
        }
        if !(self.solvable > 0.0 && self.solvable <= 1.0) {
            return Err(BenchError::invalid("solvable", self.solvable, "a score in (0, 1]"));
        }
        Ok(())
    }

    /// Units a family needs when `checks` checks are judged:
    /// `n ≥ (σ (z₁₋α + z₁₋β/(2m)) / δ)²` with σ = 0.5 (a fair coin, the worst case),
    /// β = 1 − power and m = `checks`. One trick at chance passes its equivalence test when
    /// `|mean − chance| ≤ δ − z₁₋α·σ/√n`, which fails with probability β/m at this `n`; by
    /// the union bound a suite whose every trick is at chance then passes with probability
    /// at least `power`.
    pub fn units_needed(&self, checks: usize) -> u64 {
        let miss = (1.0 - self.power) / checks.max(1) as f64;
        let z = normal_quantile(1.0 - self.alpha) + normal_quantile(1.0 - miss / 2.0);
        (WORST_SD * z / self.delta).powi(2).ceil() as u64
    }
}

/// The verdict on one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Shown within ±δ of chance.
    AtChance,
    /// Significantly off chance (after Holm): the suite fails.
    OffChance,
    /// Too few units to show anything.
    Underpowered,
    /// Enough units, neither shown at chance nor off it.
    Inconclusive,
    /// The family is tagged as meant to be visible in single frames: reported only.
    TaggedVisible,
}

/// A task's primary score on one family.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyScore {
    /// Task.
    pub task: String,
    /// Family.
    pub family: String,
    /// Metric (the task's primary).
    pub metric: String,
    /// Mean per-unit score.
    pub value: f64,
    /// Bootstrap 95% interval.
    pub ci: [f64; 2],
    /// Units scored.
    pub n: u64,
    /// What a chance scorer gets.
    pub chance: f64,
}

/// Each family's primary score in `r`, with the metric it comes from.
fn family_scores(r: &TaskResult) -> impl Iterator<Item = (FamilyScore, &Metric)> {
    r.metrics.iter().filter(|m| m.name == r.primary).filter_map(|m| {
        let family = m.group.strip_prefix("family=")?;
        let score = FamilyScore {
            task: r.id.clone(),
            family: family.into(),
            metric: m.name.clone(),
            value: m.value,
            ci: m.ci,
            n: m.n,
            chance: m.chance.unwrap_or(0.5),
        };
        Some((score, m))
    })
}

/// One trick on one family.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Heuristic name.
    pub heuristic: String,
    /// Its score.
    #[serde(flatten)]
    pub score: FamilyScore,
    /// Two-sided p-value of "mean = chance", Holm-adjusted across every check.
    pub p_off_chance: f64,
    /// p-value of the equivalence test (within ±δ of chance).
    pub p_equivalent: f64,
    /// Effect this group detects with the stated power (two-sided, at α).
    pub detectable: f64,
    /// VoE: relative accuracy with max-over-frames surprise (not protected by the design;
    /// reported, not judged).
    pub max_aggregated: Option<f64>,
    /// Verdict.
    pub verdict: Verdict,
}

/// The ideal observer on one family.
#[derive(Debug, Clone, Serialize)]
pub struct Solvability {
    /// The observer's score.
    #[serde(flatten)]
    pub score: FamilyScore,
    /// Whether it reaches [`Criteria::solvable`].
    pub solvable: bool,
    /// `solvable` (reaches [`Criteria::solvable`]), `not-solvable` (shown below it: the
    /// upper end of its 95% interval is; the suite fails) or `undetermined` (below it, but
    /// too few units to show so: the suite is underpowered).
    pub verdict: &'static str,
}

/// The outcome of validating a suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteValidation {
    /// Suite name.
    pub suite: String,
    /// Criteria.
    pub criteria: Criteria,
    /// Units each family needs ([`Criteria::units_needed`] for the judged checks).
    pub units_needed: u64,
    /// `passed`, `failed` (a trick off chance or a family the observer cannot solve),
    /// `underpowered`, or `empty` (no VoE, contact or outcome items to check).
    pub status: &'static str,
    /// Every check.
    pub checks: Vec<Check>,
    /// The ideal observer per family (see the module doc).
    pub solvability: Vec<Solvability>,
    /// Whether the observer was blinded to the statics (a diagnostic run).
    pub blind_statics: bool,
}

impl SuiteValidation {
    /// Whether every judged check is shown at chance.
    pub fn passed(&self) -> bool {
        self.status == "passed"
    }

    /// A table of every check and a verdict line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:<30} {:<8} {:<16} {:>6}  {:<16} {:>5}  {:>7}  {:>8}  {:>7}  verdict\n",
            "heuristic", "task", "family", "value", "95% CI", "n", "p(off)", "p(equiv)", "max-agg"
        );
        for Check { heuristic, score: c, p_off_chance, p_equivalent, max_aggregated, verdict, .. } in &self.checks {
            let verdict = match verdict {
                Verdict::AtChance => "at chance",
                Verdict::OffChance => "FAIL: off chance",
                Verdict::Underpowered => "underpowered",
                Verdict::Inconclusive => "inconclusive",
                Verdict::TaggedVisible => "tagged visible",
            };
            s.push_str(&format!(
                "{:<30} {:<8} {:<16} {:>6.3}  [{:.3}, {:.3}]  {:>5}  {:>7.4}  {:>8.4}  {:>7}  {verdict}\n",
                heuristic,
                c.task,
                c.family,
                c.value,
                c.ci[0],
                c.ci[1],
                c.n,
                p_off_chance,
                p_equivalent,
                max_aggregated.map_or("-".into(), |v| format!("{v:.3}"))
            ));
        }
        let observer = if self.blind_statics { "observer:blind-statics" } else { "observer" };
        s.push_str(&format!(
            "\nsolvability: the {observer} (physics on the scene rebuilt from the observation) must reach {} per family\n",
            self.criteria.solvable
        ));
        s.push_str(&format!(
            "{:<8} {:<16} {:>6}  {:<16} {:>5}  {:>6}  verdict\n",
            "task", "family", "value", "95% CI", "n", "chance"
        ));
        for Solvability { score: c, verdict, .. } in &self.solvability {
            s.push_str(&format!(
                "{:<8} {:<16} {:>6.3}  [{:.3}, {:.3}]  {:>5}  {:>6.3}  {}\n",
                c.task,
                c.family,
                c.value,
                c.ci[0],
                c.ci[1],
                c.n,
                c.chance,
                match *verdict {
                    "solvable" => "solvable",
                    "not-solvable" => "FAIL: not solvable from the observations",
                    _ => "undetermined (below, too few units to show it)",
                }
            ));
        }
        let cr = &self.criteria;
        s.push_str(&format!(
            "criteria: within ±{} of chance at α = {}, suite power {} over {} judged checks (needs {} units per family); off chance: two-sided, Holm over {} checks\n",
            cr.delta,
            cr.alpha,
            cr.power,
            self.checks.iter().filter(|c| c.verdict != Verdict::TaggedVisible).count(),
            self.units_needed,
            self.checks.len()
        ));
        let count = |v: Verdict| self.checks.iter().filter(|c| c.verdict == v).count();
        s.push_str(&match self.status {
            "empty" => format!("NOTHING TO CHECK: suite `{}` has no VoE, contact or outcome items\n", self.suite),
            "passed" => format!("OK: suite `{}`: every trick is shown at chance\n", self.suite),
            "failed" => format!(
                "FAILED: suite `{}`: {} trick/family pair(s) off chance, {} family/families not solvable from the observations\n",
                self.suite,
                count(Verdict::OffChance),
                self.solvability.iter().filter(|c| c.verdict == "not-solvable").count()
            ),
            _ => format!(
                "INSUFFICIENT POWER: suite `{}`: {} check(s) underpowered, {} inconclusive, {} solvability check(s) undetermined; a family needs {} units to show ±{} at power {}\n",
                self.suite,
                count(Verdict::Underpowered),
                count(Verdict::Inconclusive),
                self.solvability.iter().filter(|c| c.verdict == "undetermined").count(),
                self.units_needed,
                cr.delta,
                cr.power
            ),
        });
        s
    }
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 through erf; absolute error < 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// Standard normal quantile, by bisection on [`normal_cdf`].
pub fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Holm's step-down adjustment of `p` (same order back).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in idx.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Two-sided p of "mean = chance" and the equivalence p of "within ±δ", for units `x`.
fn tests(x: &[f64], chance: f64, delta: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if n > 1.0 { x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    let se = (var / n).sqrt();
    let d = mean - chance;
    if se == 0.0 {
        // Every unit scored alike: the mean is exact.
        let off = if d == 0.0 { 1.0 } else { 0.0 };
        return (off, if d.abs() < delta { 0.0 } else { 1.0 });
    }
    let off = 2.0 * (1.0 - normal_cdf(d.abs() / se));
    let equivalent = normal_cdf((d - delta) / se).max(1.0 - normal_cdf((d + delta) / se));
    (off.min(1.0), equivalent)
}

/// Run every heuristic and the ideal observer on `prep`'s VoE, contact and outcome items
/// and judge them by `criteria`.
pub fn validate_suite(prep: &Prepared, b: Bootstrap, criteria: Criteria) -> Result<SuiteValidation> {
    validate_suite_with(prep, b, criteria, false)
}

/// [`validate_suite`], the observer blinded to every static but the floor when
/// `blind_statics`.
pub fn validate_suite_with(
    prep: &Prepared,
    b: Bootstrap,
    criteria: Criteria,
    blind_statics: bool,
) -> Result<SuiteValidation> {
    criteria.validate()?;
    let ctx = prep.context();
    let visible = |f: &str| prep.ds.suite.families.iter().any(|x| x.name == f && x.visible_in_single_frames);
    // The effect a group of n units detects at the stated power: z_detect · σ / √n.
    let z_detect = normal_quantile(1.0 - criteria.alpha / 2.0) + normal_quantile(criteria.power);
    let mut checks = Vec::new();
    for h in Heuristic::ALL {
        for &kind in h.tasks() {
            let Some(items) = prep.items.get(&kind) else { continue };
            if items.items.is_empty() {
                continue;
            }
            let mut a = HeuristicAdapter::new(h);
            let (_, answers) = answer_shown(&mut a, &ctx, items, b.seed, &|| {})?;
            let (r, logs) = score(items, &answers, &prep.frames, &prep.opts.items, b);
            let mut by_family: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for l in &logs {
                by_family.entry(l.family.as_str()).or_default().push(l.score);
            }
            for (score, m) in family_scores(&r) {
                let x = by_family.remove(score.family.as_str()).unwrap_or_default();
                let (p_off, p_eq) = tests(&x, score.chance, criteria.delta);
                let tagged = visible(&score.family);
                checks.push(Check {
                    heuristic: h.name().into(),
                    p_off_chance: p_off,
                    p_equivalent: p_eq,
                    detectable: z_detect * WORST_SD / (m.n.max(1) as f64).sqrt(),
                    max_aggregated: r
                        .metrics
                        .iter()
                        .find(|x| x.name == "relative_accuracy_max_surprise" && x.group == m.group)
                        .map(|x| x.value),
                    verdict: if tagged { Verdict::TaggedVisible } else { Verdict::Inconclusive },
                    score,
                });
            }
        }
    }
    let judged = checks.iter().filter(|c| c.verdict != Verdict::TaggedVisible).count();
    let needed = criteria.units_needed(judged);
    let adjusted = holm(&checks.iter().map(|c| c.p_off_chance).collect::<Vec<_>>());
    for (c, p) in checks.iter_mut().zip(adjusted) {
        c.p_off_chance = p;
        if c.verdict == Verdict::TaggedVisible {
            continue;
        }
        // Shown within ±δ is at chance, even where a smaller deviation is significant: δ is
        // what the suite calls practically at chance.
        let equivalent = c.p_equivalent < criteria.alpha;
        c.verdict = if p < criteria.alpha && !(equivalent && c.score.n >= needed) {
            Verdict::OffChance
        } else if c.score.n < needed {
            Verdict::Underpowered
        } else if equivalent {
            Verdict::AtChance
        } else {
            Verdict::Inconclusive
        };
    }
    let mut solvability = Vec::new();
    let mut observer = Observer::new(blind_statics);
    for kind in [TaskKind::Contact, TaskKind::Outcome, TaskKind::Voe] {
        let Some(items) = prep.items.get(&kind).filter(|t| !t.items.is_empty()) else { continue };
        let (_, answers) = answer_shown(&mut observer, &ctx, items, b.seed, &|| {})?;
        let (r, _) = score(items, &answers, &prep.frames, &prep.opts.items, b);
        for (score, _) in family_scores(&r) {
            solvability.push(Solvability {
                solvable: score.value >= criteria.solvable,
                verdict: if score.value >= criteria.solvable {
                    "solvable"
                } else if score.ci[1] < criteria.solvable {
                    "not-solvable"
                } else {
                    "undetermined"
                },
                score,
            });
        }
    }
    let status = if checks.is_empty() {
        "empty"
    } else if checks.iter().any(|c| c.verdict == Verdict::OffChance)
        || solvability.iter().any(|c| c.verdict == "not-solvable")
    {
        "failed"
    } else if checks.iter().any(|c| matches!(c.verdict, Verdict::Underpowered | Verdict::Inconclusive))
        || solvability.iter().any(|c| c.verdict == "undetermined")
    {
        "underpowered"
    } else {
        "passed"
    };
    Ok(SuiteValidation {
        suite: prep.ds.suite.suite.name.clone(),
        criteria,
        units_needed: needed,
        status,
        checks,
        solvability,
        blind_statics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_and_quantile_match_tables() {
        // Standard normal table values.
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975_002).abs() < 1e-6);
        assert!((normal_cdf(-1.644_854) - 0.05).abs() < 1e-6);
        assert!((normal_quantile(0.95) - 1.644_854).abs() < 1e-5);
        assert!((normal_quantile(0.9) - 1.281_552).abs() < 1e-5);
    }

    #[test]
    fn units_needed_follows_the_formula() {
        // One check: (0.5 * (z(0.95) + z(0.9)) / 0.1)^2 = (0.5 * (1.644854 + 1.281552) / 0.1)^2
        // = 214.06 -> 215.
        assert_eq!(Criteria::default().units_needed(1), 215);
        // Halving δ quadruples n: (0.5 * 2.926406 / 0.05)^2 = 856.2 -> 857.
        assert_eq!(Criteria { delta: 0.05, ..Criteria::default() }.units_needed(1), 857);
        // 40 checks share the 0.2 miss probability: z(1 - 0.0025) = 2.807034, so
        // (0.5 * (1.644854 + 2.807034) / 0.1)^2 = 495.6 -> 496.
        assert_eq!(Criteria::default().units_needed(40), 496);
        assert!(Criteria { delta: 0.7, ..Criteria::default() }.validate().is_err());
    }

    #[test]
    fn holm_adjusts_step_down() {
        // p = (0.01, 0.04, 0.03): sorted 0.01*3, 0.03*2, max(0.06, 0.04*1).
        let a = holm(&[0.01, 0.04, 0.03]);
        assert!((a[0] - 0.03).abs() < 1e-12 && (a[2] - 0.06).abs() < 1e-12 && (a[1] - 0.06).abs() < 1e-12, "{a:?}");
    }

    #[test]
    fn tests_separate_at_chance_from_off_chance() {
        // 400 fair-coin-like units at exactly 0.5: equivalent, not off.
        let fair: Vec<f64> = (0..400).map(|i| (i % 2) as f64).collect();
        let (off, eq) = tests(&fair, 0.5, 0.1);
        assert!(off > 0.9 && eq < 1e-3, "{off} {eq}");
        // 70% right: off chance, not equivalent.
        let leak: Vec<f64> = (0..400).map(|i| (i % 10 < 7) as u8 as f64).collect();
        let (off, eq) = tests(&leak, 0.5, 0.1);
        assert!(off < 1e-6 && eq > 0.5, "{off} {eq}");
        // All ties: exactly chance.
        assert_eq!(tests(&[0.5; 30], 0.5, 0.1), (1.0, 0.0));
    }
}
