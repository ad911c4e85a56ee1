//! The regression gate: a board compared with a committed baseline, item by item.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Board, BoardFile, Cell, Column, LEADERBOARD_SCHEMA, column_key, parse_key};
use crate::error::{BenchError, Result};
use crate::metrics::{self, PairedTest};

/// One baseline cell compared with the new results on the same items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Model id.
    pub model: String,
    /// Task id.
    pub task: String,
    /// Column key (`{task}@{version}#{content_hash}`).
    pub column: String,
    /// Primary metric name.
    pub metric: String,
    /// Baseline value of the metric.
    pub old_value: f64,
    /// New value of the metric.
    pub new_value: f64,
    /// Paired test of new against old per-item scores.
    pub test: PairedTest,
    /// Whether the new results are significantly worse ([`PairedTest::regressed`]).
    pub regressed: bool,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Every baseline cell, compared.
    pub comparisons: Vec<Comparison>,
}

impl CheckReport {
    /// The comparisons that regressed.
    pub fn regressions(&self) -> Vec<&Comparison> {
        self.comparisons.iter().filter(|c| c.regressed).collect()
    }

    /// Whether nothing regressed.
    pub fn passed(&self) -> bool {
        self.comparisons.iter().all(|c| !c.regressed)
    }

    /// One `REGRESSION ...` line per regression, then `OK: ...` or `FAILED: ...`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let regressions = self.regressions();
        for c in &regressions {
            let t = &c.test;
            let _ = write!(
                out,
                "REGRESSION {} {}: {} {:.3} -> {:.3} (mean per-item change {:.3}, 95% CI [{:.3}, {:.3}]",
                c.model, c.task, c.metric, c.old_value, c.new_value, t.mean_diff, t.ci[0], t.ci[1]
            );
            if let Some(p) = t.mcnemar_p {
                let _ = write!(out, ", McNemar p={}", format_p(p));
            }
            let _ = writeln!(out, ", n={})", t.n);
        }
        let n = self.comparisons.len();
        if regressions.is_empty() {
            let _ = writeln!(out, "OK: {n} comparisons against the baseline, no regression");
        } else {
            let _ = writeln!(out, "FAILED: {} of {n} comparisons against the baseline regressed", regressions.len());
        }
        out
    }
}

/// Compare `board` with a `baseline` ([`Board::json`] of earlier results): for every
/// baseline row and cell, pair the per-item scores by item hash and run
/// [`metrics::paired_test`] (seeded with `seed`, [`metrics::DEFAULT_RESAMPLES`] resamples).
/// Models and tasks the baseline lacks are not compared.
///
/// A baseline seed group (a row with `members`) is compared with the board's seed group of
/// the same member ids, on the per-item means over seeds. A baseline row of one model that
/// the board has folded into a seed group is compared with that member's own scores.
///
/// # Errors
/// - [`BenchError::Invalid`]: `baseline` is not a [`LEADERBOARD_SCHEMA`] document;
/// - [`BenchError::Mismatch`]: a baseline model or task is missing from `board`, the task's
///   version or content hash differs (results over different items cannot be compared),
///   the baseline cell has no per-item scores, or a baseline item is missing from the new log.
pub fn check(board: &Board, baseline: &BoardFile, seed: u64) -> Result<CheckReport> {
    if baseline.schema != LEADERBOARD_SCHEMA {
        return Err(BenchError::invalid(
            "baseline schema",
            &baseline.schema,
            format!("a {LEADERBOARD_SCHEMA} document"),
        ));
    }
    let metric_of: BTreeMap<String, &str> = baseline.columns.iter().map(|c| (c.key(), c.metric.as_str())).collect();
    let mut comparisons = Vec::new();
    for row in &baseline.rows {
        let model = row.model.as_str();
        let members: Option<BTreeSet<&str>> = row
            .members
            .as_ref()
            .map(|m| m.iter().map(String::as_str).collect::<BTreeSet<_>>())
            .filter(|m| !m.is_empty());
        for (key, cell) in &row.cells {
            let (task, version, hash) = parse_key(key)
                .ok_or_else(|| BenchError::invalid("baseline column key", key, "`{task}@{version}#{content_hash}`"))?;
            let mismatch =
                |reason: String| BenchError::Mismatch { what: format!("model `{model}`, task `{task}`"), reason };
            let new = find_cell(board, model, members.as_ref(), task, version, hash).map_err(mismatch)?;
            if cell.items.is_empty() {
                return Err(mismatch(format!(
                    "the baseline cell `{key}` has no per-item scores, so nothing can be paired"
                )));
            }
            let (mut old, mut paired, mut missing) = (Vec::new(), Vec::new(), Vec::new());
            for (item, score) in &cell.items {
                match new.items.get(item) {
                    Some(s) => {
                        old.push(*score);
                        paired.push(*s);
                    }
                    None => missing.push(item.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(mismatch(format!(
                    "{} of {} baseline items are missing from the new item log (first: {})",
                    missing.len(),
                    cell.items.len(),
                    missing[..missing.len().min(3)].join(", ")
                )));
            }
            let test = metrics::paired_test(&old, &paired, seed, metrics::DEFAULT_RESAMPLES);
            let metric = board.columns.iter().find(|c| c.key() == *key).map(|c| c.metric.clone());
            comparisons.push(Comparison {
                model: model.to_string(),
                task: task.to_string(),
                column: key.clone(),
                metric: metric.or_else(|| metric_of.get(key).map(|m| m.to_string())).unwrap_or_default(),
                old_value: cell.value,
                new_value: new.value,
                regressed: test.regressed(),
                test,
            });
        }
    }
    Ok(CheckReport { comparisons })
}

/// The board's cell of `model` (of the seed group of these `members`, when given) on exactly
/// these items, or why there is none.
fn find_cell<'a>(
    board: &'a Board,
    model: &str,
    members: Option<&BTreeSet<&str>>,
    task: &str,
    version: u32,
    hash: &str,
) -> std::result::Result<&'a Cell, String> {
    let rows: Vec<&BTreeMap<String, Cell>> = match members {
        Some(want) => board
            .rows
            .iter()
            .filter(|r| {
                r.is_seed_group() && r.members.iter().map(|m| m.model.as_str()).collect::<BTreeSet<_>>() == *want
            })
            .map(|r| &r.cells)
            .collect(),
        None => {
            let rows: Vec<_> = board.rows.iter().filter(|r| r.model == model).map(|r| &r.cells).collect();
            if rows.is_empty() {
                board.rows.iter().flat_map(|r| &r.members).filter(|m| m.model == model).map(|m| &m.cells).collect()
            } else {
                rows
            }
        }
    };
    if rows.is_empty() {
        return Err(match members {
            Some(m) => format!(
                "the seed group is in the baseline but the new results have no seed group of the same result files \
                 ({}); regenerate the baseline when seeds are added or removed",
                m.iter().copied().collect::<Vec<_>>().join(", ")
            ),
            None => "the model is in the baseline but has no result file in the new results".into(),
        });
    }
    let key = column_key(task, version, hash);
    if let Some(cell) = rows.iter().find_map(|r| r.get(&key)) {
        return Ok(cell);
    }
    let scored: Vec<&Column> =
        board.columns.iter().filter(|c| c.task == task && rows.iter().any(|r| r.contains_key(&c.key()))).collect();
    let same_version: Vec<&str> =
        scored.iter().filter(|c| c.version == version).map(|c| c.content_hash.as_str()).collect();
    if !same_version.is_empty() {
        return Err(format!(
            "the suite/result content hash differs: baseline {hash}, new {}; results over different items \
             cannot be compared (regenerate the baseline for the new suite)",
            same_version.join(", ")
        ));
    }
    if !scored.is_empty() {
        let versions: Vec<String> = scored.iter().map(|c| format!("v{}", c.version)).collect();
        return Err(format!(
            "the task version differs: baseline v{version}, new {}; results of different task versions cannot be \
             compared",
            versions.join(", ")
        ));
    }
    Err("the task is in the baseline but not in the model's new results".into())
}

/// A p-value: four decimals, or scientific notation below 0.0001.
fn format_p(p: f64) -> String {
    if p >= 1e-4 { format!("{p:.4}") } else { format!("{p:.1e}") }
}

/// One model's cell compared with a reference model's cell on the same items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versus {
    /// Model id (a row of the board: one result file or a seed group).
    pub model: String,
    /// Task id.
    pub task: String,
    /// Column key (`{task}@{version}#{content_hash}`).
    pub column: String,
    /// Primary metric name.
    pub metric: String,
    /// The model's value of the metric.
    pub value: f64,
    /// The reference's value of the metric.
    pub reference_value: f64,
    /// Paired test of the model against the reference on the items both scored
    /// (positive: the model is better).
    pub test: PairedTest,
    /// `better`, `worse` or `no significant difference` (the paired interval excludes zero
    /// and, for right/wrong scores, McNemar's test agrees at the 5% level).
    pub verdict: &'static str,
}

/// The outcome of [`versus`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersusReport {
    /// The reference row's model id.
    pub reference: String,
    /// Every other row's cells on the reference's columns.
    pub comparisons: Vec<Versus>,
}

impl VersusReport {
    /// A Markdown table, one line per comparison.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Paired per-item comparison with `{}` (same items; positive difference: better than it)\n\n",
            self.reference
        );
        out.push_str(
            "| model | task | metric | value | reference | mean per-item difference [95% CI] | McNemar p | verdict |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|\n");
        for c in &self.comparisons {
            let t = &c.test;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.3} | {:.3} | {:+.3} [{:+.3}, {:+.3}] n={} | {} | {} |",
                super::render::md_escape(&c.model),
                c.task,
                c.metric,
                c.value,
                c.reference_value,
                t.mean_diff,
                t.ci[0],
                t.ci[1],
                t.n,
                t.mcnemar_p.map_or("—".to_string(), format_p),
                c.verdict
            );
        }
        out
    }
}

/// Compare every row of `board` with the row of model `reference` on each column both
/// scored (the same task version and content hash), pairing per-item scores by item hash
/// over the items both logged: [`metrics::paired_test`] seeded with `seed`. The claim of a
/// world model against a baseline is this test, not overlapping intervals.
///
/// # Errors
/// [`BenchError::Invalid`] when no row is `reference` (the error lists the rows).
pub fn versus(board: &Board, reference: &str, seed: u64) -> Result<VersusReport> {
    let Some(refrow) = board.rows.iter().find(|r| r.model == reference) else {
        let rows: Vec<&str> = board.rows.iter().map(|r| r.model.as_str()).collect();
        return Err(BenchError::invalid("--versus", reference, format!("a model of the board: {}", rows.join(", "))));
    };
    let mut comparisons = Vec::new();
    for row in board.rows.iter().filter(|r| r.model != reference) {
        for col in &board.columns {
            let key = col.key();
            let (Some(theirs), Some(mine)) = (refrow.cells.get(&key), row.cells.get(&key)) else { continue };
            let (mut old, mut new) = (Vec::new(), Vec::new());
            for (item, score) in &mine.items {
                if let Some(r) = theirs.items.get(item) {
                    old.push(*r);
                    new.push(*score);
                }
            }
            if old.is_empty() {
                continue;
            }
            let test = metrics::paired_test(&old, &new, seed, metrics::DEFAULT_RESAMPLES);
            comparisons.push(Versus {
                model: row.model.clone(),
                task: col.task.clone(),
                column: key,
                metric: col.metric.clone(),
                value: mine.value,
                reference_value: theirs.value,
                verdict: if test.improved() {
                    "better"
                } else if test.regressed() {
                    "worse"
                } else {
                    "no significant difference"
                },
                test,
            });
        }
    }
    Ok(VersusReport { reference: reference.to_string(), comparisons })
}
