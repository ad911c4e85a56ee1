//! Result files: one JSON document per (model, suite) plus a per-item JSON Lines log.
//!
//! The layout follows lm-evaluation-harness: the suite is identified by a hash over the
//! hashes of its items, every task carries its version, and every metric has its bootstrap
//! 95% interval and sample count, so that two rows are comparable only when they should be.

use std::path::{Path, PathBuf};

use physworld_pipeline::Storage;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{BenchError, Result};

/// Version of the result-file schema (`schema` field).
pub const RESULTS_SCHEMA: &str = "physworld-results/1";

/// The suite the items came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRef {
    /// Suite name (from the suite file).
    pub name: String,
    /// Content hash of the resolved suite the dataset was generated from.
    pub dataset_hash: String,
    /// Split the items were drawn from (usually `test`).
    pub split: String,
    /// SHA-256 over every task's item hashes, in order: two result files with the same
    /// `content_hash` scored the very same items.
    pub content_hash: String,
    /// Simulator version that generated the episodes.
    pub generator: String,
    /// What models observed: the observation rules' version and the suite's setting (e.g.
    /// `physworld-observation/1 visible-state`; see [`crate::observe`]).
    #[serde(default)]
    pub observation: String,
    /// The suite's cross-validation fold, where it has one (`launch.fold`): result files of
    /// one model on every fold of one suite form one leaderboard row, mean ± sd over folds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<FoldRef>,
}

/// Which fold of a suite a result file scored ([`physworld_pipeline::Suite::fold`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldRef {
    /// The fold's setting, e.g. `launch.fold=2`.
    pub name: String,
    /// Content hash of the suite without its fold setting: the same for every fold.
    pub group: String,
}

/// The model that was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The model spec as given (`oracle`, `jepa:runs/a`, ...).
    pub id: String,
    /// Adapter kind (`oracle`, `jepa`, ...).
    pub kind: String,
    /// SHA-256 of the checkpoint's files, for learned models.
    pub checkpoint_hash: Option<String>,
    /// Seeds: of the adapter (chance) or of the checkpoint's training run.
    pub seeds: Vec<u64>,
    /// Labels the model saw beyond the item itself (e.g. probes fit on the `readout`
    /// split's labels), so that rows using labels and zero-shot rows are told apart.
    pub labels_used: Vec<String>,
    /// Adapter-specific configuration (e.g. the training config of a checkpoint).
    pub config: Value,
}

impl ModelRef {
    /// A model of `kind` named `id`, with no checkpoint, seeds, labels or configuration
    /// (fill in what applies with struct-update syntax).
    pub fn new(id: &str, kind: &str) -> ModelRef {
        ModelRef {
            id: id.into(),
            kind: kind.into(),
            checkpoint_hash: None,
            seeds: Vec::new(),
            labels_used: Vec::new(),
            config: Value::Object(Default::default()),
        }
    }
}

/// One metric of one task over one group of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name (`accuracy`, `ade`, `relative_accuracy`, ...).
    pub name: String,
    /// Items it covers: `all`, `family=drop`, `violation=permanence`, `readout=only`, ...
    pub group: String,
    /// Value (NaN, written as `null`, where undefined).
    #[serde(deserialize_with = "nullable_f64")]
    pub value: f64,
    /// Percentile-bootstrap 95% interval.
    #[serde(deserialize_with = "nullable_pair")]
    pub ci: [f64; 2],
    /// Units scored (items, or quadruplets for relative accuracy).
    pub n: u64,
    /// Units among them whose answer was invalid (scored as failures, never skipped).
    #[serde(default)]
    pub invalid: u64,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// The value a chance scorer gets, where defined.
    pub chance: Option<f64>,
    /// `(value − chance) / (best − chance)`: 0 at chance, 1 at the ceiling, where defined.
    pub normalised: Option<f64>,
}

/// The results of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Task id (`forecast`, `contact`, `outcome`, `voe`).
    pub id: String,
    /// Task version: bumps whenever items or scoring change.
    pub version: u32,
    /// Kind of answer the task asks for.
    pub kind: String,
    /// The metric leaderboards show (with `group = all`).
    pub primary: String,
    /// SHA-256 over this task's item hashes.
    pub content_hash: String,
    /// Items scored.
    pub n_items: u64,
    /// Items whose answer was invalid (scored as wrong).
    pub invalid: u64,
    /// Metrics.
    pub metrics: Vec<Metric>,
}

impl TaskResult {
    /// The primary metric over all items.
    pub fn primary_metric(&self) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == self.primary && m.group == "all")
    }
}

/// One result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    /// [`RESULTS_SCHEMA`].
    pub schema: String,
    /// physworld version that scored it.
    pub physworld_version: String,
    /// Git commit of the physworld build, when known.
    pub git_hash: Option<String>,
    /// Suite.
    pub suite: SuiteRef,
    /// Model.
    pub model: ModelRef,
    /// Bootstrap seed and resamples behind every interval.
    pub bootstrap_seed: u64,
    /// Bootstrap resamples.
    pub bootstrap_resamples: u32,
    /// Tasks the model supports, scored.
    pub tasks: Vec<TaskResult>,
    /// Tasks of the suite the model does not support.
    pub unsupported: Vec<String>,
    /// Tasks asked for that have no items in the scored split (e.g. a suite without VoE
    /// families): not scored, not shown.
    #[serde(default)]
    pub no_items: Vec<String>,
    /// The per-item log, relative to this file.
    pub items_file: String,
    /// Wall time of scoring, s.
    #[serde(deserialize_with = "nullable_f64")]
    pub wall_time_s: f64,
}

/// One line of the per-item log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemLog {
    /// Task id.
    pub task: String,
    /// Item id.
    pub item: String,
    /// Item hash.
    pub hash: String,
    /// Family.
    pub family: String,
    /// The model's answer.
    pub prediction: Value,
    /// Ground truth.
    pub target: Value,
    /// Whether the answer was right, for tasks with right answers.
    pub correct: Option<bool>,
    /// The per-item score that paired comparisons use, oriented so that higher is better
    /// (1/0 for correct/wrong, 0.5 for a VoE tie, minus the ADE for forecasts).
    #[serde(deserialize_with = "nullable_f64")]
    pub score: f64,
    /// Whether the answer was invalid (unparsable or missing).
    pub invalid: bool,
    /// How the item was shown ([`crate::present::Presentation::record`]): its choices in the
    /// order shown, or the opaque ids and positions of its VoE movies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation: Option<serde_json::Value>,
    /// The raw exchange behind the answer (LLM requests and responses, without keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

/// File-name-safe form of a model id.
pub fn slug(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    out = out.trim_matches('_').to_string();
    if out.is_empty() { "model".into() } else { out }
}

/// The stem of a result file's name: `<model>__<suite>__<split>`, so that runs on
/// different splits never overwrite each other; for a suite's fold,
/// `<model>__<suite>.<fold>__<split>` (`oracle__planning.launch.fold_2__test`), so that
/// the folds' files sit side by side.
pub fn stem(model: &str, suite: &str, fold: Option<&str>, split: &str) -> String {
    let name = match fold {
        Some(f) => format!("{suite}.{f}"),
        None => suite.to_string(),
    };
    format!("{}__{}__{}", slug(model), slug(&name), slug(split))
}

/// Write `file` and its item log into `dir` atomically (temporary file, then rename; one
/// put per file in an object store): `<model>__<suite>__<split>.json` and `.items.jsonl`
/// ([`stem`]). `dir` is a local folder, or an `s3://`, `gs://` or `az://` prefix in a
/// build with the `cloud` feature. Returns the JSON path.
pub fn write(dir: &Path, file: &mut ResultFile, items: &[ItemLog]) -> Result<PathBuf> {
    write_in(&*physworld_pipeline::open_storage(dir)?, dir, file, items)
}

/// [`write()`] into a folder already opened.
pub fn write_in(store: &dyn Storage, dir: &Path, file: &mut ResultFile, items: &[ItemLog]) -> Result<PathBuf> {
    let fold = file.suite.fold.as_ref().map(|f| f.name.as_str());
    let stem = stem(&file.model.id, &file.suite.name, fold, &file.suite.split);
    let items_name = format!("{stem}.items.jsonl");
    file.items_file = items_name.clone();
    let mut lines = String::new();
    for it in items {
        lines.push_str(&serde_json::to_string(it).map_err(|e| BenchError::file(&items_name, e))?);
        lines.push('\n');
    }
    store.put(&items_name, lines.as_bytes())?;
    let json = dir.join(format!("{stem}.json"));
    let body = serde_json::to_vec_pretty(file).map_err(|e| BenchError::file(&json, e))?;
    store.put(&format!("{stem}.json"), &body)?;
    Ok(json)
}

/// Write `bytes` to `path` crash-safely ([`physworld_pipeline::write_file`]: an atomic
/// rename on disk, one put in an object store).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(physworld_pipeline::write_file(path, bytes)?)
}

/// Read and validate a result file ([`parse`]): a local path or an object-store URL.
///
/// # Errors
/// The file cannot be read, is not JSON, or is not a [`RESULTS_SCHEMA`] file (the error
/// names the file and the first bad field).
pub fn read(path: &Path) -> Result<ResultFile> {
    let bytes = physworld_pipeline::read_file(path)?;
    parse(&bytes).map_err(|reason| BenchError::file(path, reason))
}

/// Read a result file's item log.
pub fn read_items(result: &Path, file: &ResultFile) -> Result<Vec<ItemLog>> {
    let path = result.with_file_name(&file.items_file);
    items_from(&path, &physworld_pipeline::read_file(&path)?)
}

/// Read the result file `name` and its item log from a folder already opened (`dir` is its
/// location, for messages).
pub fn read_in(store: &dyn Storage, dir: &Path, name: &str) -> Result<(ResultFile, Vec<ItemLog>)> {
    let path = dir.join(name);
    let file = parse(&store.get(name)?).map_err(|reason| BenchError::file(&path, reason))?;
    let items_path = dir.join(&file.items_file);
    let items = items_from(&items_path, &store.get(&file.items_file)?)?;
    Ok((file, items))
}

fn items_from(path: &Path, bytes: &[u8]) -> Result<Vec<ItemLog>> {
    let text = std::str::from_utf8(bytes).map_err(|e| BenchError::file(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| BenchError::file(path, format!("line {}: {e}", i + 1))))
        .collect()
}

/// Parse a result document: its [`ResultFile`] fields with their JSON types, and a known
/// schema version. Returns what is wrong, naming the field (`tasks[0].metrics[1].ci`).
pub fn parse(bytes: &[u8]) -> std::result::Result<ResultFile, String> {
    parse_typed(bytes, RESULTS_SCHEMA).map_err(|e| match e {
        Refused::Schema(found) => format!("schema {found} is not {RESULTS_SCHEMA}"),
        Refused::Syntax(why) => format!("not JSON: {why}"),
        Refused::Document(why) => format!("not a {RESULTS_SCHEMA} file: {why}"),
        Refused::Field { path, why } => format!("`{path}`: {why}"),
    })
}

/// Why [`parse_typed`] refused a document.
pub(crate) enum Refused {
    /// Its `schema` field is another one (or `(missing)`).
    Schema(String),
    /// It is not JSON.
    Syntax(String),
    /// The document itself has the wrong shape (a top-level field is missing, or it is not
    /// an object).
    Document(String),
    /// A field is missing or of the wrong type: its path (`tasks[0].metrics[1].ci`) and why.
    Field {
        /// Path of the field.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// Parse a typed JSON document whose `schema` field must be `schema`. The schema is checked
/// first, so that a file of another kind is named as such rather than by its first missing
/// field.
pub(crate) fn parse_typed<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    schema: &str,
) -> std::result::Result<T, Refused> {
    #[derive(Deserialize)]
    struct SchemaOnly {
        schema: Option<String>,
    }
    if let Ok(SchemaOnly { schema: found }) = serde_json::from_slice::<SchemaOnly>(bytes)
        && found.as_deref() != Some(schema)
    {
        return Err(Refused::Schema(found.unwrap_or_else(|| "(missing)".into())));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Refused::Syntax(inner.to_string())
        } else if path == "." {
            Refused::Document(inner.to_string())
        } else {
            Refused::Field { path, why: inner.to_string() }
        }
    })?;
    // Nothing but whitespace may follow the document.
    de.end().map_err(|e| Refused::Syntax(e.to_string()))?;
    Ok(value)
}

/// Check a result document against the schema ([`parse`]). Returns what is wrong.
pub fn validate(v: &Value) -> std::result::Result<(), String> {
    let bytes = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    parse(&bytes).map(|_| ())
}

/// Deserialize an `f64` that serde_json wrote as `null` because it was NaN.
pub(crate) fn nullable_f64<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// [`nullable_f64`] for an interval.
pub(crate) fn nullable_pair<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<[f64; 2], D::Error> {
    let [a, b] = <[Option<f64>; 2]>::deserialize(d)?;
    Ok([a.unwrap_or(f64::NAN), b.unwrap_or(f64::NAN)])
}
