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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{BenchError, Result};
use crate::metrics::{self, PairedTest};
use crate::results::{self, ItemLog, ResultFile};

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
    /// Per-item scores ([`ItemLog::score`], higher is better) by item hash; in a seed group,
    /// the mean over the seeds of each item that every seed scored.
    pub items: BTreeMap<String, f64>,
    /// Result files behind the cell: 1, or the members of a seed group that scored the column.
    pub seeds: usize,
    /// Sample standard deviation (n − 1 denominator) of the seeds' values, for two or more.
    pub seed_std: Option<f64>,
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

    /// Training seeds of a seed group's members (`None` where unknown); empty for one file.
    pub fn seeds(&self) -> Vec<Option<u64>> {
        self.members.iter().map(|m| m.seed).collect()
    }
}

/// Adapter kinds whose rows are references, marked in every rendering ([`Row::is_reference`]).
pub const REFERENCE_KINDS: [&str; 4] = ["oracle", "observer", "chance", "majority"];

/// Order rows by suite, and within a suite best first: by the mean over columns of the
/// row's rank on each column's primary metric (ties share a rank; a missing cell ranks
/// below every present one), then by model id and file, so the order is total and stable.
fn sort_rows(rows: Vec<Row>, columns: &[Column]) -> Vec<Row> {
    let mut mean_rank = vec![0.0f64; rows.len()];
    for c in columns {
        let key = c.key();
        let values: Vec<Option<f64>> = rows.iter().map(|r| r.cells.get(&key).map(|x| x.value)).collect();
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        for (i, v) in values.iter().enumerate() {
            mean_rank[i] += match v {
                Some(v) => {
                    let better =
                        present.iter().filter(|p| if c.higher_is_better { **p > *v } else { **p < *v }).count();
                    let equal = present.iter().filter(|p| **p == *v).count();
                    better as f64 + (equal as f64 + 1.0) / 2.0
                }
                None => present.len() as f64 + 1.0,
            };
        }
    }
    // Rows hold every item's score: they are moved, not copied.
    let mut ranked: Vec<(f64, Row)> = mean_rank.into_iter().zip(rows).collect();
    ranked.sort_by(|(ra, x), (rb, y)| {
        (&x.suite, &x.suite_hash)
            .cmp(&(&y.suite, &y.suite_hash))
            .then_with(|| ra.total_cmp(rb))
            .then_with(|| (&x.model, &x.file).cmp(&(&y.model, &y.file)))
    });
    ranked.into_iter().map(|(_, r)| r).collect()
}

/// A leaderboard: rows by suite and best first within one (`sort_rows`), columns by
/// task id (then hash).
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    columns: Vec<Column>,
    rows: Vec<Row>,
}

/// Read every result file in `dir` into a [`Board`].
///
/// Reads each `*.json` directly in `dir` (sorted by name; `.tmp-*` files of unfinished
/// writes are skipped) with [`results::read`], and its item log with [`results::read_items`].
///
/// Result files of learned models ([`LEARNED_KINDS`]) whose model config carries a `train`
/// config form seed groups: files of one adapter kind on one suite (name and content hash)
/// whose `model.config` is the same except for the run folder (`run`), the training seed
/// (`train.seed`) and the training data's folder (`data.path`) — so the same training config,
/// checkpoint `step`, pretraining families and training data, and the same readout settings —
/// and with the same `labels_used`. A group of two or more files is one row (see [`Row`]).
///
/// # Errors
/// - `dir` cannot be listed or holds no result file;
/// - a result file or item log is missing or malformed (the error names the file);
/// - a task has no primary metric over `all` items, or an item hash repeats in a task's log;
/// - two files hold the same model on the same task items (duplicate row, naming both);
/// - one column's files disagree on its primary metric.
pub fn load(dir: &Path) -> Result<Board> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| BenchError::file(dir, e))? {
        let path = entry.map_err(|e| BenchError::file(dir, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".json") && !name.starts_with(".tmp-") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(BenchError::file(dir, "no result files (*.json) here"));
    }
    // Columns sorted by task id, then content hash, then version.
    let mut columns: BTreeMap<(String, String, u32), Column> = BTreeMap::new();
    let mut seen: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut groups: BTreeMap<String, Vec<(Row, Option<u64>)>> = BTreeMap::new();
    for path in paths {
        let file = results::read(&path)?;
        let items = results::read_items(&path, &file)?;
        let row = load_row(&path, &file, &items, &mut columns)?;
        let keys = row.cells.keys().cloned().chain([format!("suite#{}", row.suite_hash)]);
        for key in keys {
            if let Some(other) = seen.insert((row.model.clone(), key.clone()), path.clone()) {
                return Err(BenchError::file(
                    &path,
                    format!(
                        "duplicate row: model `{}` on `{key}` is also in {}; keep one of the two files",
                        row.model,
                        other.display()
                    ),
                ));
            }
        }
        match seed_group_key(&file) {
            Some(key) => groups.entry(key).or_default().push((row, training_seed(&file))),
            None => rows.push(row),
        }
    }
    for mut group in groups.into_values() {
        match group.len() {
            1 => rows.extend(group.pop().map(|(row, _)| row)),
            _ => rows.push(seed_group(group)),
        }
    }
    let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
    for c in columns.values() {
        *per_task.entry(c.task.clone()).or_default() += 1;
    }
    let columns: Vec<Column> = columns
        .into_values()
        .map(|mut c| {
            c.ambiguous = per_task.get(&c.task).is_some_and(|n| *n > 1);
            c
        })
        .collect();
    let rows = sort_rows(rows, &columns);
    Ok(Board { columns, rows })
}

/// One file's row; registers its columns.
fn load_row(
    path: &Path,
    file: &ResultFile,
    items: &[ItemLog],
    columns: &mut BTreeMap<(String, String, u32), Column>,
) -> Result<Row> {
    let mut scores: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for it in items {
        if scores.entry(&it.task).or_default().insert(it.hash.clone(), it.score).is_some() {
            let log = path.with_file_name(&file.items_file);
            return Err(BenchError::file(log, format!("task `{}`: item hash {} appears twice", it.task, it.hash)));
        }
    }
    let mut cells = BTreeMap::new();
    // A task without items (a suite with no VoE families, say) has nothing to show.
    for t in file.tasks.iter().filter(|t| t.n_items > 0) {
        let m = t.primary_metric().ok_or_else(|| {
            BenchError::file(path, format!("task `{}` has no metric `{}` over group `all`", t.id, t.primary))
        })?;
        let col = columns.entry((t.id.clone(), t.content_hash.clone(), t.version)).or_insert_with(|| Column {
            task: t.id.clone(),
            version: t.version,
            content_hash: t.content_hash.clone(),
            metric: m.name.clone(),
            higher_is_better: m.higher_is_better,
            chance: m.chance,
            ambiguous: false,
        });
        if col.metric != m.name || col.higher_is_better != m.higher_is_better {
            return Err(BenchError::Mismatch {
                what: format!("{}: task `{}`", path.display(), col.key()),
                reason: format!(
                    "primary metric `{}` differs from `{}` of the other result files on these items",
                    m.name, col.metric
                ),
            });
        }
        col.chance = col.chance.or(m.chance);
        let items = scores.get(t.id.as_str()).cloned().unwrap_or_default();
        let cell = Cell { value: m.value, ci: m.ci, n: m.n, invalid: m.invalid, items, seeds: 1, seed_std: None };
        cells.insert(col.key(), cell);
    }
    let pretraining = is_learned(&file.model.kind)
        .then(|| file.model.config.pointer("/data/families").and_then(Value::as_array))
        .flatten()
        .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), String::from)).collect());
    Ok(Row {
        model: file.model.id.clone(),
        kind: file.model.kind.clone(),
        pretraining,
        suite: file.suite.name.clone(),
        suite_hash: file.suite.content_hash.clone(),
        file: path.to_path_buf(),
        members: Vec::new(),
        cells,
    })
}

/// The seed-group key of a result file (see [`load`]), or `None` when it never joins a group:
/// not a learned model, or no `train` config object to compare.
fn seed_group_key(file: &ResultFile) -> Option<String> {
    let m = &file.model;
    let mut config = m.config.as_object()?.clone();
    if m.kind == "llm" {
        // Runs of one LLM that differ in prompt variant and sampling seed: one row, so
        // that no single prompt is picked as the model's score.
        for k in ["prompt_variant", "system_fingerprint"] {
            config.remove(k);
        }
    } else {
        if !is_learned(&m.kind) {
            return None;
        }
        config.get_mut("train")?.as_object_mut()?.remove("seed");
        config.remove("run");
        if let Some(data) = config.get_mut("data").and_then(Value::as_object_mut) {
            data.remove("path");
        }
    }
    let key = json!({
        "kind": m.kind,
        "suite": file.suite.name,
        "suite_hash": file.suite.content_hash,
        "labels_used": m.labels_used,
        "config": config,
    });
    let mut out = String::new();
    canonical_json(&key, &mut out);
    Some(out)
}

/// JSON text with every object's keys sorted, whatever map order serde_json was built with.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The training seed of a learned model's result file: `model.seeds`, else `train.seed`.
fn training_seed(file: &ResultFile) -> Option<u64> {
    file.model.seeds.first().copied().or_else(|| file.model.config.pointer("/train/seed").and_then(Value::as_u64))
}

/// One row of two or more result files of a seed group, each with its training seed.
fn seed_group(mut files: Vec<(Row, Option<u64>)>) -> Row {
    files.sort_by(|a, b| (&a.0.model, &a.0.file).cmp(&(&b.0.model, &b.0.file)));
    let ids: Vec<&str> = files.iter().map(|(r, _)| r.model.as_str()).collect();
    let listed = if ids.len() <= GROUP_NAME_MEMBERS + 1 {
        ids.join(", ")
    } else {
        format!("{}, … +{} more", ids[..GROUP_NAME_MEMBERS].join(", "), ids.len() - GROUP_NAME_MEMBERS)
    };
    let first = &files[0].0;
    let what = if first.kind == "llm" { "runs (prompt variants × seeds)" } else { "seeds" };
    let model = format!("{} ×{} {what} ({listed})", first.kind, files.len());
    let keys: BTreeSet<&String> = files.iter().flat_map(|(r, _)| r.cells.keys()).collect();
    let cells = keys
        .into_iter()
        .map(|k| {
            let of_seeds: Vec<&Cell> = files.iter().filter_map(|(r, _)| r.cells.get(k)).collect();
            (k.clone(), mean_over_seeds(&of_seeds))
        })
        .collect();
    let (kind, pretraining, suite, suite_hash, file) = (
        first.kind.clone(),
        first.pretraining.clone(),
        first.suite.clone(),
        first.suite_hash.clone(),
        first.file.clone(),
    );
    let members =
        files.into_iter().map(|(r, seed)| Member { model: r.model, seed, file: r.file, cells: r.cells }).collect();
    Row { model, kind, pretraining, suite, suite_hash, file, members, cells }
}

/// The cell of a seed group from its members' cells of one column (at least one).
fn mean_over_seeds(cells: &[&Cell]) -> Cell {
    let k = cells.len() as f64;
    let mean = |f: &dyn Fn(&Cell) -> f64| cells.iter().map(|c| f(c)).sum::<f64>() / k;
    let value = mean(&|c| c.value);
    let seed_std =
        (cells.len() > 1).then(|| (cells.iter().map(|c| (c.value - value).powi(2)).sum::<f64>() / (k - 1.0)).sqrt());
    let items = cells[0]
        .items
        .keys()
        .filter_map(|h| {
            let scores: Option<Vec<f64>> = cells.iter().map(|c| c.items.get(h).copied()).collect();
            scores.map(|s| (h.clone(), s.iter().sum::<f64>() / k))
        })
        .collect();
    Cell {
        value,
        ci: [mean(&|c| c.ci[0]), mean(&|c| c.ci[1])],
        n: cells[0].n,
        invalid: cells.iter().map(|c| c.invalid).sum(),
        items,
        seeds: cells.len(),
        seed_std,
    }
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

    /// A GitHub-flavoured Markdown table (`0.812 [0.750, 0.870] n=120` per cell, `—` where
    /// a model has no result; a seed group's cell reads `0.812 ± 0.031 (3 seeds) [0.750, 0.870]
    /// n=120`; the kind column names a learned model's pretraining families,
    /// [`Row::kind_label`]), then a list of the suites with their content hashes.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let headers: Vec<String> = ["model", "kind", "suite"]
            .into_iter()
            .map(String::from)
            .chain(self.columns.iter().map(Column::header))
            .map(|h| md_escape(&h))
            .collect();
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
        for r in &self.rows {
            let mut cells = vec![md_escape(&r.model), md_escape(&r.kind_label()), md_escape(&r.suite)];
            cells.extend(self.columns.iter().map(|c| r.cells.get(&c.key()).map_or_else(|| "—".into(), format_cell)));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
        for (name, hash) in self.suites() {
            let _ = writeln!(out, "- suite `{}`: content hash `{hash}`", md_escape(&name));
        }
        out
    }

    /// One self-contained HTML page (no external CSS, scripts, fonts or images): the table,
    /// then per column an inline SVG bar chart, one bar per model with its 95% interval and
    /// the chance level dashed where defined.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>physworld leaderboard</title>\n<style>\n\
             body { font-family: sans-serif; margin: 2em; color: #222; }\n\
             table { border-collapse: collapse; margin-bottom: 1em; }\n\
             th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }\n\
             th { background: #f3f3f3; }\n\
             td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }\n\
             .ci { color: #666; font-size: 0.85em; }\n\
             code { font-size: 0.9em; }\n\
             figure { margin: 1.5em 0; }\n\
             figcaption { font-weight: bold; margin-bottom: 0.3em; }\n\
             </style>\n</head>\n<body>\n<h1>physworld leaderboard</h1>\n<table>\n<thead><tr>",
        );
        for h in ["model", "kind", "suite"].into_iter().map(String::from).chain(self.columns.iter().map(Column::header))
        {
            let _ = write!(out, "<th>{}</th>", esc(&h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            let (model, kind, suite) = (esc(&r.model), esc(&r.kind_label()), esc(&r.suite));
            let _ = write!(out, "<tr><td>{model}</td><td>{kind}</td><td>{suite}</td>");
            for c in &self.columns {
                match r.cells.get(&c.key()) {
                    Some(x) => {
                        let _ = write!(
                            out,
                            "<td class=\"num\">{:.3} <span class=\"ci\">{}</span></td>",
                            x.value,
                            esc(&cell_detail(x))
                        );
                    }
                    None => out.push_str("<td>—</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        for (name, hash) in self.suites() {
            let _ = writeln!(out, "<p>Suite <code>{}</code>: content hash <code>{}</code></p>", esc(&name), esc(&hash));
        }
        for c in &self.columns {
            let _ = write!(out, "<figure>\n<figcaption>{}</figcaption>\n", esc(&c.header()));
            out.push_str(&self.chart(c));
            out.push_str("</figure>\n");
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// Horizontal bar chart of one column, as inline SVG.
    fn chart(&self, c: &Column) -> String {
        const W: f64 = 720.0;
        const LABEL: f64 = 230.0;
        const RIGHT: f64 = 70.0;
        const BAR: f64 = 22.0;
        const TOP: f64 = 10.0;
        const AXIS: f64 = 30.0;
        let key = c.key();
        let bars: Vec<(&Row, &Cell)> = self.rows.iter().filter_map(|r| r.cells.get(&key).map(|x| (r, x))).collect();
        let finite = bars.iter().flat_map(|(_, x)| [x.value, x.ci[0], x.ci[1]]).chain(c.chance).chain([0.0]);
        let (lo, hi, step) = nice_range(finite.filter(|v| v.is_finite()));
        let plot = W - LABEL - RIGHT;
        let x = |v: f64| LABEL + (v - lo) / (hi - lo) * plot;
        let h = TOP + BAR * bars.len() as f64 + AXIS;
        let bottom = TOP + BAR * bars.len() as f64;
        let mut s = format!(
            "<svg width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" role=\"img\" font-family=\"sans-serif\" \
             font-size=\"12\">\n<title>{}</title>\n",
            esc(&c.header())
        );
        // Axis and ticks.
        let _ = writeln!(
            s,
            "<line x1=\"{LABEL}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#444\"/>",
            W - RIGHT
        );
        let ticks = ((hi - lo) / step).round() as usize;
        for i in 0..=ticks {
            let v = lo + step * i as f64;
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#e4e4e4\"/>\
                 <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#444\">{3}</text>",
                x(v),
                bottom + 4.0,
                bottom + 18.0,
                tick_label(v, step)
            );
        }
        for (i, (r, cell)) in bars.iter().enumerate() {
            let y = TOP + BAR * i as f64;
            let mid = y + BAR / 2.0;
            let label: String = if r.model.chars().count() > 32 {
                r.model.chars().take(31).chain(['…']).collect()
            } else {
                r.model.clone()
            };
            let _ = writeln!(
                s,
                "<g><title>{} ({}): {:.3} {}</title>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                esc(&r.model),
                esc(&r.suite),
                cell.value,
                esc(&cell_detail(cell)),
                LABEL - 6.0,
                mid,
                esc(&label)
            );
            if cell.value.is_finite() {
                let (a, b) = (x(0.0_f64.clamp(lo, hi)), x(cell.value));
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4c78a8\"/>\
                     <text x=\"{:.1}\" y=\"{mid:.1}\" dominant-baseline=\"middle\" fill=\"#222\">{:.3}</text>",
                    a.min(b),
                    y + 4.0,
                    (b - a).abs(),
                    BAR - 8.0,
                    x(cell.value.max(cell.ci[1])) + 5.0,
                    cell.value
                );
            }
            if cell.ci.iter().all(|v| v.is_finite()) {
                let (a, b) = (x(cell.ci[0]), x(cell.ci[1]));
                let _ = writeln!(
                    s,
                    "<path d=\"M{a:.1} {0:.1}V{1:.1}M{a:.1} {mid:.1}H{b:.1}M{b:.1} {0:.1}V{1:.1}\" \
                     stroke=\"#222\" stroke-width=\"1.5\" fill=\"none\"/>",
                    mid - 5.0,
                    mid + 5.0
                );
            }
            s.push_str("</g>\n");
        }
        if let Some(ch) = c.chance.filter(|v| v.is_finite()) {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"#d62728\" \
                 stroke-width=\"1.5\" stroke-dasharray=\"5 4\"><title>chance {ch:.3}</title></line>",
                x(ch)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// The board as JSON ([`LEADERBOARD_SCHEMA`]), per-item scores included, so that it can
    /// serve as the baseline of [`check`]:
    /// `{"schema", "columns": [{"task", "version", "content_hash", "metric",
    /// "higher_is_better"}], "rows": [{"model", "kind", "suite", "cells": {<column key>:
    /// {"value", "ci", "n", "items": {<item hash>: score}}}}]}`. Rows of learned models add
    /// `"pretraining": [families]` (empty: all) where known; seed groups add `"seeds"`
    /// (training seeds, `null` where unknown) and `"members"` (model ids), and their cells
    /// `"seed_std"` and `"seeds"` (the count), with `items` the per-item means over seeds.
    pub fn json(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| {
                json!({
                    "task": c.task,
                    "version": c.version,
                    "content_hash": c.content_hash,
                    "metric": c.metric,
                    "higher_is_better": c.higher_is_better,
                })
            })
            .collect();
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let cells: serde_json::Map<String, Value> = r
                    .cells
                    .iter()
                    .map(|(k, x)| {
                        let mut cell =
                            json!({"value": x.value, "ci": x.ci, "n": x.n, "invalid": x.invalid, "items": x.items});
                        if r.is_seed_group() {
                            cell["seed_std"] = json!(x.seed_std);
                            cell["seeds"] = json!(x.seeds);
                        }
                        (k.clone(), cell)
                    })
                    .collect();
                let mut row = json!({"model": r.model, "kind": r.kind, "reference": r.is_reference(), "suite": r.suite, "cells": cells});
                if let Some(families) = &r.pretraining {
                    row["pretraining"] = json!(families);
                }
                if r.is_seed_group() {
                    row["seeds"] = json!(r.seeds());
                    row["members"] = json!(r.members.iter().map(|m| &m.model).collect::<Vec<_>>());
                }
                row
            })
            .collect();
        json!({"schema": LEADERBOARD_SCHEMA, "columns": columns, "rows": rows})
    }
}

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
pub fn check(board: &Board, baseline: &Value, seed: u64) -> Result<CheckReport> {
    let bad = |what: String, value: &dyn std::fmt::Display| {
        BenchError::invalid(format!("baseline {what}"), value, format!("a {LEADERBOARD_SCHEMA} document"))
    };
    let schema = baseline.get("schema").and_then(Value::as_str).unwrap_or("(none)");
    if schema != LEADERBOARD_SCHEMA {
        return Err(bad("schema".into(), &schema));
    }
    let mut metric_of: BTreeMap<String, String> = BTreeMap::new();
    for c in baseline.get("columns").and_then(Value::as_array).into_iter().flatten() {
        let field = |k: &str| c.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), String::from));
        if let (Some(task), Some(version), Some(hash), Some(metric)) =
            (field("task"), field("version"), field("content_hash"), field("metric"))
        {
            metric_of.insert(format!("{task}@{version}#{hash}"), metric);
        }
    }
    let rows = baseline.get("rows").and_then(Value::as_array).ok_or_else(|| bad("rows".into(), &"(missing)"))?;
    let mut comparisons = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let model =
            row.get("model").and_then(Value::as_str).ok_or_else(|| bad(format!("rows[{i}].model"), &"(missing)"))?;
        let cells =
            row.get("cells").and_then(Value::as_object).ok_or_else(|| bad(format!("rows[{i}].cells"), &"(missing)"))?;
        let members: Option<BTreeSet<&str>> = row
            .get("members")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<BTreeSet<_>>())
            .filter(|m| !m.is_empty());
        for (key, cell) in cells {
            let (task, version, hash) = parse_key(key).ok_or_else(|| bad("column key".into(), key))?;
            let mismatch =
                |reason: String| BenchError::Mismatch { what: format!("model `{model}`, task `{task}`"), reason };
            let new = find_cell(board, model, members.as_ref(), task, version, hash).map_err(mismatch)?;
            let old_items =
                cell.get("items").and_then(Value::as_object).filter(|m| !m.is_empty()).ok_or_else(|| {
                    mismatch(format!("the baseline cell `{key}` has no per-item scores, so nothing can be paired"))
                })?;
            let (mut old, mut paired, mut missing) = (Vec::new(), Vec::new(), Vec::new());
            for (item, score) in old_items {
                let score = score.as_f64().ok_or_else(|| bad(format!("score of item {item}"), score))?;
                match new.items.get(item) {
                    Some(s) => {
                        old.push(score);
                        paired.push(*s);
                    }
                    None => missing.push(item.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(mismatch(format!(
                    "{} of {} baseline items are missing from the new item log (first: {})",
                    missing.len(),
                    old_items.len(),
                    missing[..missing.len().min(3)].join(", ")
                )));
            }
            let test = metrics::paired_test(&old, &paired, seed, metrics::DEFAULT_RESAMPLES);
            let metric = board.columns.iter().find(|c| c.key() == *key).map(|c| c.metric.clone());
            comparisons.push(Comparison {
                model: model.to_string(),
                task: task.to_string(),
                column: key.clone(),
                metric: metric.or_else(|| metric_of.get(key).cloned()).unwrap_or_default(),
                old_value: cell.get("value").and_then(Value::as_f64).unwrap_or(f64::NAN),
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

/// `0.812 [0.750, 0.870] n=120`, or for a seed group `0.812 ± 0.031 (3 seeds) [0.750, 0.870] n=120`.
fn format_cell(x: &Cell) -> String {
    format!("{:.3} {}", x.value, cell_detail(x))
}

/// A cell after its value: `[0.750, 0.870] n=120`, after `± 0.031 (3 seeds) ` for a seed
/// group, and ` invalid=3` where answers were invalid.
fn cell_detail(x: &Cell) -> String {
    let spread = match x.seed_std {
        Some(sd) => format!("± {sd:.3} ({} seeds) ", x.seeds),
        None => String::new(),
    };
    let invalid = if x.invalid > 0 { format!(" invalid={}", x.invalid) } else { String::new() };
    format!("{spread}[{:.3}, {:.3}] n={}{invalid}", x.ci[0], x.ci[1], x.n)
}

/// A p-value: four decimals, or scientific notation below 0.0001.
fn format_p(p: f64) -> String {
    if p >= 1e-4 { format!("{p:.4}") } else { format!("{p:.1e}") }
}

/// Text safe inside a Markdown table cell (GitHub would take `<x>` for an HTML tag).
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '|' | '<' | '>' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text safe inside HTML (element content and quoted attributes).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An axis range on round numbers covering `values`: `(lo, hi, tick step)`.
fn nice_range(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0, 0.25);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    lo = (lo / step).floor() * step;
    hi = (hi / step).ceil() * step;
    (lo, hi, step)
}

/// A tick value with as many decimals as its step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (0..6).find(|d| {
        let x = step * 10f64.powi(*d);
        (x - x.round()).abs() < 1e-6 * x.max(1.0)
    });
    format!("{:.*}", decimals.unwrap_or(6) as usize, if v.abs() < step * 1e-9 { 0.0 } else { v })
}
