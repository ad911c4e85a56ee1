//! The leaderboard's JSON format ([`LEADERBOARD_SCHEMA`]): one serde definition that
//! [`Board::json`] writes and [`check`](super::check) reads back as a baseline.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Board, LEADERBOARD_SCHEMA, column_key};
use crate::error::{BenchError, Result};
use crate::results::{Refused, nullable_f64, nullable_pair, parse_typed};

/// A leaderboard as JSON: its columns and rows, every per-item score included.
///
/// Its text ([`BoardFile::to_json_pretty`]) has every object's keys sorted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardFile {
    /// [`LEADERBOARD_SCHEMA`].
    pub schema: String,
    /// Columns, by task id then content hash.
    pub columns: Vec<ColumnFile>,
    /// Rows, by suite and best first within one.
    pub rows: Vec<RowFile>,
}

/// One column of a [`BoardFile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnFile {
    /// Task id.
    pub task: String,
    /// Task version.
    pub version: u32,
    /// Content hash of the task's items.
    pub content_hash: String,
    /// Primary metric.
    pub metric: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
}

impl ColumnFile {
    /// The column's key in [`RowFile::cells`]: `{task}@{version}#{content_hash}`.
    pub fn key(&self) -> String {
        column_key(&self.task, self.version, &self.content_hash)
    }
}

/// One row of a [`BoardFile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowFile {
    /// Model id (or the seed group's name).
    pub model: String,
    /// Adapter kind.
    pub kind: String,
    /// Whether the row is a reference ([`super::Row::is_reference`]).
    pub reference: bool,
    /// Suite name.
    pub suite: String,
    /// Cells by column key.
    pub cells: BTreeMap<String, CellFile>,
    /// Pretraining families of a learned model (empty: all), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretraining: Option<Vec<String>>,
    /// Training seeds of a seed group's members (`null` where unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<Option<u64>>>,
    /// Model ids of a seed group's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    /// A fold group's folds (its cells' `seeds` and `seed_std` then count and spread folds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folds: Option<Vec<String>>,
}

/// One cell of a [`RowFile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellFile {
    /// Value (NaN is written as `null`).
    #[serde(deserialize_with = "nullable_f64")]
    pub value: f64,
    /// 95% interval.
    #[serde(deserialize_with = "nullable_pair")]
    pub ci: [f64; 2],
    /// Units scored.
    pub n: u64,
    /// Units answered invalidly.
    #[serde(default)]
    pub invalid: u64,
    /// Per-item scores by item hash.
    pub items: BTreeMap<String, f64>,
    /// In a seed (or fold) group's row: the spread and count of its seeds (or folds).
    #[serde(flatten)]
    pub group: Option<SeedSpread>,
    /// Planning columns: the cell normalised between the random and oracle rows
    /// ([`super::Cell::normalised`]); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalised: Option<f64>,
}

/// The seed columns of a seed group's cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSpread {
    /// Sample standard deviation of the seeds' values (`null` for one seed).
    pub seed_std: Option<f64>,
    /// Result files behind the cell.
    pub seeds: usize,
}

impl BoardFile {
    /// Parse a leaderboard JSON document.
    ///
    /// # Errors
    /// [`BenchError::Invalid`] naming the first field that is missing or of the wrong type
    /// (`rows[2].cells`), or a `schema` other than [`LEADERBOARD_SCHEMA`].
    pub fn from_slice(bytes: &[u8]) -> Result<BoardFile> {
        let bad = |what: String, value: &dyn std::fmt::Display| {
            BenchError::invalid(format!("baseline {what}"), value, format!("a {LEADERBOARD_SCHEMA} document"))
        };
        parse_typed(bytes, LEADERBOARD_SCHEMA).map_err(|e| match e {
            Refused::Schema(found) => bad("schema".into(), &found),
            Refused::Syntax(why) => bad("text".into(), &format!("not JSON: {why}")),
            Refused::Document(why) => bad("document".into(), &why),
            Refused::Field { path, why } => bad(path, &why),
        })
    }

    /// Read a leaderboard JSON file ([`BoardFile::from_slice`]).
    ///
    /// # Errors
    /// The file cannot be read, or is not a leaderboard (the error names the file).
    pub fn read(path: &Path) -> Result<BoardFile> {
        let bytes = physworld_pipeline::read_file(path)?;
        BoardFile::from_slice(&bytes).map_err(|e| BenchError::file(path, e))
    }

    /// The document as pretty-printed JSON text, every object's keys sorted (through
    /// `serde_json::Value`, whose maps are sorted: the workspace does not enable serde_json's
    /// `preserve_order`).
    ///
    /// # Errors
    /// Never for a board built by [`Board::json`] (plain data with string keys).
    pub fn to_json_pretty(&self) -> Result<String> {
        let text = serde_json::to_value(self).and_then(|v| serde_json::to_string_pretty(&v));
        text.map_err(|e| BenchError::invalid("leaderboard", e, "serializable JSON"))
    }
}

impl Board {
    /// The board as a [`BoardFile`] ([`LEADERBOARD_SCHEMA`]), per-item scores included, so
    /// that it can serve as the baseline of [`check`](super::check). Rows of learned models
    /// carry `pretraining` (empty: all) where known; seed groups carry `seeds` (training
    /// seeds) and `members` (model ids), and their cells `seed_std` and `seeds` (the count),
    /// with `items` the per-item means over seeds; fold groups carry `folds`, and their
    /// cells `seed_std` and `seeds` over folds, with every fold's items.
    pub fn json(&self) -> BoardFile {
        let columns = self
            .columns
            .iter()
            .map(|c| ColumnFile {
                task: c.task.clone(),
                version: c.version,
                content_hash: c.content_hash.clone(),
                metric: c.metric.clone(),
                higher_is_better: c.higher_is_better,
            })
            .collect();
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let group = r.is_seed_group();
                let spread = group || !r.folds.is_empty();
                let cells = r
                    .cells
                    .iter()
                    .map(|(k, x)| {
                        let cell = CellFile {
                            value: x.value,
                            ci: x.ci,
                            n: x.n,
                            invalid: x.invalid,
                            items: x.items.clone(),
                            group: spread.then_some(SeedSpread { seed_std: x.seed_std, seeds: x.seeds }),
                            normalised: x.normalised,
                        };
                        (k.clone(), cell)
                    })
                    .collect();
                RowFile {
                    model: r.model.clone(),
                    kind: r.kind.clone(),
                    reference: r.is_reference(),
                    suite: r.suite.clone(),
                    cells,
                    pretraining: r.pretraining.clone(),
                    seeds: group.then(|| r.seeds()),
                    members: group.then(|| r.members.iter().map(|m| m.model.clone()).collect()),
                    folds: (!r.folds.is_empty()).then(|| r.folds.clone()),
                }
            })
            .collect();
        BoardFile { schema: LEADERBOARD_SCHEMA.into(), columns, rows }
    }
}
