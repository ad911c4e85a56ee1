//! Leaderboards over result files, and the regression gate CI runs against a baseline.
//!
//! [`load`] reads a folder of result files into a [`Board`]: one row per result file
//! (model × suite), one column per task *as scored* — keyed by task id, version and the
//! content hash of its items — so that scores over different items never share a column.
//! Result files of learned models that differ only in their training seed form one *seed
//! group* row (mean and spread across seeds), and learned rows name the families their
//! checkpoint was pretrained on (Physion's pretraining protocols).
//! A board renders as Markdown ([`Board::markdown`]), a self-contained HTML page with plots
//! ([`Board::html`]) or JSON ([`Board::json`]); that JSON keeps every per-item score, so it
//! can be committed as a baseline and [`check`]ed against later results with paired tests.
//!
//! The module is split by concern: [`load`] (result files to rows, seed groups, ordering),
//! rendering (Markdown, HTML and SVG), the typed JSON format ([`BoardFile`]) and the
//! regression gate ([`check`]).

mod file;
mod gate;
mod load;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

pub use file::{BoardFile, CellFile, ColumnFile, RowFile};
pub use gate::{CheckReport, Comparison, Versus, VersusReport, check, versus};
pub use load::load;

/// Version of the leaderboard JSON schema (`schema` field of [`Board::json`]).
pub const LEADERBOARD_SCHEMA: &str = "physworld-leaderboard/1";

/// Hex characters of a content hash shown in headers to tell columns apart.
pub const SHORT_HASH_LEN: usize = 8;

/// Adapter kinds of learned models (`model.kind` of a checkpoint's result file): their rows
/// name the pretraining families, and their result files can form seed groups.
pub const LEARNED_KINDS: [&str; 2] = ["jepa", "state-mse"];

/// Member ids a seed group's row name lists before counting the rest (`… +2 more`); groups of
/// up to one more member list them all.
pub const GROUP_NAME_MEMBERS: usize = 3;

/// Whether `kind` is the adapter kind of a learned model ([`LEARNED_KINDS`]).
pub fn is_learned(kind: &str) -> bool {
    LEARNED_KINDS.contains(&kind)
}

/// One column: a task's primary metric over one exact set of items.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Task id (`forecast`, `contact`, ...).
    pub task: String,
    /// Task version.
    pub version: u32,
    /// Content hash of the task's items.
    pub content_hash: String,
    /// Name of the primary metric shown.
    pub metric: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// The value a chance scorer gets, where defined.
    pub chance: Option<f64>,
    /// Whether another column has the same task id (headers then show version and hash).
    ambiguous: bool,
    /// For a column over a suite's folds (see [`load`]): how many; 0 otherwise.
    pub folds: usize,
}

impl Column {
    /// Key of the column in [`Board::json`] and [`Row::cells`]: `{task}@{version}#{content_hash}`.
    pub fn key(&self) -> String {
        column_key(&self.task, self.version, &self.content_hash)
    }

    /// Header text: `contact: accuracy`, `forecast: ade (m, lower is better)`, and with
    /// `v1 #1a2b3c4d` after the task id when several columns share it.
    pub fn header(&self) -> String {
        let mut h = self.task.clone();
        if self.ambiguous {
            let short: String = self.content_hash.chars().take(SHORT_HASH_LEN).collect();
            let _ = write!(h, " v{} #{short}", self.version);
        }
        let _ = write!(h, ": {}", self.metric);
        if self.folds > 0 {
            let _ = write!(h, " over {} folds", self.folds);
        }
        let unit = metric_unit(&self.metric);
        match (unit, self.higher_is_better) {
            (Some(u), true) => {
                let _ = write!(h, " ({u})");
            }
            (Some(u), false) => {
                let _ = write!(h, " ({u}, lower is better)");
            }
            (None, false) => h.push_str(" (lower is better)"),
            (None, true) => {}
        }
        h
    }
}

/// One cell: a model's primary metric on a column's items.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Value; in a seed group, the mean over the seeds.
    pub value: f64,
    /// Bootstrap 95% interval; in a seed group, the mean of the seeds' interval endpoints.
    pub ci: [f64; 2],
    /// Units scored (in a seed group, of its first member: every member scored these items).
    pub n: u64,
    /// Units among them answered invalidly (scored as failures); in a seed group, the sum
    /// over its members.
    pub invalid: u64,
    /// Per-item scores ([`ItemLog::score`](crate::results::ItemLog::score), higher is better) by item hash; in a seed group,
    /// the mean over the seeds of each item that every seed scored.
    pub items: BTreeMap<String, f64>,
    /// Result files behind the cell: 1, or the members of a seed group that scored the
    /// column, or of a fold group ([`Cell::folds`]).
    pub seeds: usize,
    /// Sample standard deviation (n − 1 denominator) of the seeds' (or folds') values, for
    /// two or more.
    pub seed_std: Option<f64>,
    /// Whether the cell is a fold group's: its value is the mean over the suite's folds,
    /// its items those of every fold, and [`Cell::seeds`] and [`Cell::seed_std`] count and
    /// spread folds rather than training seeds.
    pub folds: bool,
    /// Planning columns (`plan-*`): `(value − random) / (oracle − random)`, where random and
    /// oracle are the mean values of the board's `chance` and `oracle` rows on the same
    /// items (PHYRE-style normalisation, so rows compare across tasks); `None` elsewhere or
    /// without both reference rows.
    pub normalised: Option<f64>,
}

/// One result file of a seed group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Model id (`jepa:runs/seed-1`, ...).
    pub model: String,
    /// Training seed (`model.seeds`, else `model.config.train.seed`), when known.
    pub seed: Option<u64>,
    /// The result file.
    pub file: PathBuf,
    /// The file's own cells by [`Column::key`].
    pub cells: BTreeMap<String, Cell>,
}

/// One row: one result file (a model scored on a suite), or a seed group — the result files
/// of one learned model's training config under different seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Model id (`oracle`, `jepa:runs/a`, ...); for a seed group,
    /// `{kind} ×{n} seeds ({member ids})` ([`GROUP_NAME_MEMBERS`]).
    pub model: String,
    /// Adapter kind.
    pub kind: String,
    /// For learned models, the families the checkpoint was pretrained on
    /// (`model.config.data.families`; empty: all); `None` for other models, or when unknown.
    pub pretraining: Option<Vec<String>>,
    /// Suite name.
    pub suite: String,
    /// Suite content hash.
    pub suite_hash: String,
    /// The result file (of a seed group: its first member's).
    pub file: PathBuf,
    /// A seed group's result files, by model id; empty for a one-file row.
    pub members: Vec<Member>,
    /// Cells by [`Column::key`].
    pub cells: BTreeMap<String, Cell>,
    /// The suite's fold, for a one-file row on one fold of a suite.
    pub fold: Option<crate::results::FoldRef>,
    /// A fold group's folds (`launch.fold=0`, ...), in order; empty otherwise. The row's
    /// suite hash is then the suite's without its fold setting.
    pub folds: Vec<String>,
}

impl Row {
    /// Whether the row is a seed group (two or more result files).
    pub fn is_seed_group(&self) -> bool {
        !self.members.is_empty()
    }

    /// The kind column's text: the adapter kind, and for learned models the pretraining
    /// protocol — `jepa (pretrained on: all)`, `jepa (pretrained on: drop, collide)`.
    pub fn kind_label(&self) -> String {
        match &self.pretraining {
            Some(f) if f.is_empty() => format!("{} (pretrained on: all)", self.kind),
            Some(f) => format!("{} (pretrained on: {})", self.kind, f.join(", ")),
            None if self.is_reference() => format!("{} (reference)", self.kind),
            None => self.kind.clone(),
        }
    }

    /// Whether the row is a reference point rather than a model under test: the oracle
    /// (labels), the ideal observer (the physics engine), chance and majority (the floor).
    pub fn is_reference(&self) -> bool {
        REFERENCE_KINDS.contains(&self.kind.as_str())
    }

    /// The suite column's text: the suite's name, with its fold or a fold group's folds
    /// (`planning (launch.fold=0, launch.fold=1)`).
    pub fn suite_label(&self) -> String {
        match (&self.fold, self.folds.is_empty()) {
            (_, false) => format!("{} ({})", self.suite, self.folds.join(", ")),
            (Some(f), true) => format!("{} ({})", self.suite, f.name),
            (None, true) => self.suite.clone(),
        }
    }

    /// Training seeds of a seed group's members (`None` where unknown); empty for one file.
    pub fn seeds(&self) -> Vec<Option<u64>> {
        self.members.iter().map(|m| m.seed).collect()
    }
}

/// Adapter kinds whose rows are references, marked in every rendering ([`Row::is_reference`]).
pub const REFERENCE_KINDS: [&str; 4] = ["oracle", "observer", "chance", "majority"];

/// A leaderboard: rows by suite and best first within one (`sort_rows`), columns by
/// task id (then hash).
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    columns: Vec<Column>,
    rows: Vec<Row>,
}

impl Board {
    /// Columns, by task id then content hash.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Rows, by model id then suite.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Distinct suites as `(name, content hash)`, sorted.
    pub fn suites(&self) -> Vec<(String, String)> {
        let set: BTreeSet<_> = self.rows.iter().map(|r| (r.suite.clone(), r.suite_hash.clone())).collect();
        set.into_iter().collect()
    }
}

/// `{task}@{version}#{content_hash}`.
fn column_key(task: &str, version: u32, hash: &str) -> String {
    format!("{task}@{version}#{hash}")
}

/// Inverse of [`column_key`].
fn parse_key(key: &str) -> Option<(&str, u32, &str)> {
    let (rest, hash) = key.rsplit_once('#')?;
    let (task, version) = rest.rsplit_once('@')?;
    Some((task, version.parse().ok()?, hash))
}

/// Unit of a metric's values, where it has one.
fn metric_unit(metric: &str) -> Option<&'static str> {
    match metric {
        "ade" | "fde" => Some("m"),
        _ => None,
    }
}
