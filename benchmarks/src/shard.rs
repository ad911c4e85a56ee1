//! Sharded benchmark runs, for Slurm job arrays and Kubernetes Indexed Jobs.
//!
//! `bench --shard I/N` answers a deterministic slice of every task's items (blocks of
//! [`SHARD_BLOCK`] consecutive items, dealt round robin) and writes a shard file: the answers,
//! unscored, with the run's header. `results merge` checks that a run's shards are all there,
//! once each and from the same run, and scores their answers together into the result file
//! the unsharded run writes — byte for byte but for `wall_time_s` (the shards' sum) — with
//! every metric and bootstrap interval computed over all items.
//!
//! Shard files live beside the results, under `<out>/shards/<stem>/shard-I-of-N.json`
//! ([`results::stem`]), so a leaderboard of `<out>` never reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use physworld_pipeline::WorkerShard;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adapters::Adapter;
use crate::bench::{Answers, BenchOptions, Event, Prepared, SHARD_BLOCK, answer, result_file, score_answers};
use crate::error::{BenchError, Result};
use crate::results::{self, ItemLog, ResultFile};

/// Version of the shard-file schema (`schema` field).
pub const SHARD_SCHEMA: &str = "physworld-result-shard/1";

/// One shard of a sharded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// [`SHARD_SCHEMA`].
    pub schema: String,
    /// Which shard.
    pub shard: WorkerShard,
    /// Items per block dealt to shards ([`SHARD_BLOCK`] when written).
    pub block: usize,
    /// The options the items were built with (the merge rebuilds the same items).
    pub options: BenchOptions,
    /// The result file's header: suite, model, bootstrap settings; no tasks yet, and this
    /// shard's wall time.
    pub result: ResultFile,
    /// The shard's answers, unscored.
    pub answers: Answers,
}

/// The folder of the shard files of one run: `<out>/shards/<stem>`.
pub fn dir(out: &Path, stem: &str) -> PathBuf {
    out.join("shards").join(stem)
}

/// File name of `shard`: `shard-0002-of-0008.json`.
pub fn file_name(shard: WorkerShard) -> String {
    format!("shard-{:04}-of-{:04}.json", shard.index, shard.count)
}

/// Where `adapter_id`'s shard `shard` on `prep` is written under `out`.
pub fn path(out: &Path, prep: &Prepared, adapter_id: &str, shard: WorkerShard) -> PathBuf {
    let suite = prep.suite_ref();
    let fold = suite.fold.as_ref().map(|f| f.name.as_str());
    dir(out, &results::stem(adapter_id, &suite.name, fold, &suite.split)).join(file_name(shard))
}

/// Why the shard file already at `path` is not an earlier try of the same shard of the same
/// run (other items, options or model), or `None` when it is (a retry replaces it) or there
/// is none.
pub fn conflict(path: &Path, prep: &Prepared, adapter_id: &str, shard: WorkerShard) -> Option<String> {
    match physworld_pipeline::file_exists(path) {
        Ok(false) => return None,
        Ok(true) => {}
        Err(e) => return Some(e.to_string()),
    }
    let old = match read(path) {
        Ok(old) => old,
        Err(e) => return Some(e.to_string()),
    };
    if old.shard != shard {
        Some(format!("it holds shard {}/{}", old.shard.index, old.shard.count))
    } else if old.result.model.id != adapter_id {
        Some(format!("it holds model `{}`", old.result.model.id))
    } else if old.result.suite != prep.suite_ref() {
        Some("it was scored on other items".into())
    } else if old.options != prep.opts {
        Some("it was scored with other options".into())
    } else {
        None
    }
}

/// Answer `shard` of `prep` with `adapter` and write the shard file under `out`
/// ([`path`]); returns its path. A retried shard rewrites the same answers.
pub fn run(
    prep: &Prepared,
    adapter: &mut dyn Adapter,
    shard: WorkerShard,
    out: &Path,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<PathBuf> {
    let start = Instant::now();
    let answers = answer(prep, adapter, shard, progress)?;
    let result = result_file(prep, adapter.describe(), &answers, Vec::new(), start.elapsed().as_secs_f64());
    let file = ShardFile {
        schema: SHARD_SCHEMA.into(),
        shard,
        block: SHARD_BLOCK,
        options: prep.opts.clone(),
        result,
        answers,
    };
    let path = path(out, prep, adapter.id(), shard);
    let mut body = serde_json::to_vec(&file).map_err(|e| BenchError::file(&path, e))?;
    body.push(b'\n');
    results::atomic_write(&path, &body)?;
    Ok(path)
}

/// Read a shard file.
///
/// # Errors
/// The file cannot be read or is not a [`SHARD_SCHEMA`] document (naming the first bad
/// field).
pub fn read(path: &Path) -> Result<ShardFile> {
    let bytes = physworld_pipeline::read_file(path)?;
    results::parse_typed::<ShardFile>(&bytes, SHARD_SCHEMA).map_err(|e| {
        BenchError::file(
            path,
            match e {
                results::Refused::Schema(found) => format!("schema {found} is not {SHARD_SCHEMA}"),
                results::Refused::Syntax(why) => format!("not JSON: {why}"),
                results::Refused::Document(why) => format!("not a {SHARD_SCHEMA} file: {why}"),
                results::Refused::Field { path, why } => format!("`{path}`: {why}"),
            },
        )
    })
}

/// The runs with shard files under `out` (a local folder or an object-store prefix): per
/// run folder (`<out>/shards/<stem>`, sorted), its shard files, sorted by name. Unfinished
/// writes (`.tmp-*`) are skipped.
pub fn find(out: &Path) -> Result<Vec<(PathBuf, Vec<PathBuf>)>> {
    let store = physworld_pipeline::open_storage(out)?;
    let root = out.join("shards");
    let mut runs = Vec::new();
    for run in store.list_dirs("shards")? {
        let files: Vec<PathBuf> = store
            .list(&format!("shards/{run}"))?
            .into_iter()
            .filter(|name| name.ends_with(".json") && !name.starts_with(".tmp-"))
            .map(|name| root.join(&run).join(name))
            .collect();
        if !files.is_empty() {
            runs.push((root.join(&run), files));
        }
    }
    Ok(runs)
}

/// The first place where two JSON values differ, as a path (`result.model.config.train.seed`).
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    let join = |k: &str| if at.is_empty() { k.to_string() } else { format!("{at}.{k}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, &join(k)) {
                            return Some(d);
                        }
                    }
                    _ => return Some(join(k)),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}[{i}]")))
        }
        _ => (a != b).then(|| if at.is_empty() { "(document)".into() } else { at.to_string() }),
    }
}

/// Model-config fields an adapter learns from the replies it gets (an LLM server's resolved
/// model and fingerprint): `null` in a shard that asked nothing, so they are not compared
/// across shards, and the merged file takes the first shard's that has them.
const PER_REPLY: [&str; 2] = ["resolved_model", "system_fingerprint"];

/// What must be the same in every shard of one run: everything but the shard's index, its
/// answers and its wall time, most telling first (the model before the options).
fn header(s: &ShardFile) -> Vec<(&'static str, Value)> {
    let mut result = s.result.clone();
    result.wall_time_s = 0.0;
    if let Some(config) = result.model.config.as_object_mut() {
        for k in PER_REPLY {
            config.remove(k);
        }
    }
    let a = &s.answers;
    let tasks: Vec<Value> =
        a.tasks.iter().map(|t| serde_json::json!({ "task": t.task, "protocols": t.protocols })).collect();
    vec![
        ("schema", json(&s.schema)),
        ("shard.count", json(&s.shard.count)),
        ("result.model", json(&result.model)),
        ("result", json(&result)),
        ("options", json(&s.options)),
        ("block", json(&s.block)),
        ("answers.tasks", Value::Array(tasks)),
        ("answers.launch", Value::Bool(a.launch.is_some())),
        ("answers.push", Value::Bool(a.push.is_some())),
        ("answers.unsupported", json(&a.unsupported)),
        ("answers.no_items", json(&a.no_items)),
    ]
}

/// The first field where two headers ([`header`]) differ.
fn header_difference(a: &[(&'static str, Value)], b: &[(&'static str, Value)]) -> Option<String> {
    a.iter().zip(b).find_map(|((name, x), (_, y))| first_difference(x, y, name))
}

/// `v` as JSON, for comparison.
fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Check that `shards` are every shard of one run, once each: the same run header (suite
/// and items, model, options, shard count), and every index `0..N` present exactly once.
///
/// # Errors
/// [`BenchError::Mismatch`] naming the files: mismatched shards (and the first field that
/// differs), overlapping shards (two files for one index), missing shards.
pub fn check(shards: &[(PathBuf, ShardFile)]) -> Result<()> {
    let Some((first_path, first)) = shards.first() else {
        return Err(BenchError::Mismatch { what: "shards".into(), reason: "none given".into() });
    };
    for (p, s) in shards {
        if s.shard.count == 0 || s.shard.index >= s.shard.count {
            return Err(BenchError::file(
                p,
                format!("`shard`: {}/{} is not a shard (expected I/N with 0 <= I < N)", s.shard.index, s.shard.count),
            ));
        }
    }
    let h0 = header(first);
    for (p, s) in &shards[1..] {
        if let Some(field) = header_difference(&h0, &header(s)) {
            let stale = if field == "shard.count" {
                format!(
                    "; {} of {} and {} of {}: remove the stale run's files",
                    first.shard.index, first.shard.count, s.shard.index, s.shard.count
                )
            } else {
                String::new()
            };
            return Err(BenchError::Mismatch {
                what: format!("shards {} and {}", first_path.display(), p.display()),
                reason: format!("mismatched: they come from different runs (`{field}` differs{stale})"),
            });
        }
    }
    let n = first.shard.count;
    let mut by_index: BTreeMap<u64, &Path> = BTreeMap::new();
    for (p, s) in shards {
        if let Some(other) = by_index.insert(s.shard.index, p) {
            return Err(BenchError::Mismatch {
                what: format!("shards {} and {}", other.display(), p.display()),
                reason: format!("overlapping: both are shard {}/{n}", s.shard.index),
            });
        }
    }
    let missing = n - by_index.len() as u64;
    if missing > 0 {
        let dir = first_path.parent().unwrap_or(Path::new("."));
        let shown: Vec<String> =
            (0..n).filter(|i| !by_index.contains_key(i)).take(10).map(|i| format!("{i}/{n}")).collect();
        return Err(BenchError::Mismatch {
            what: format!("shards in {}", dir.display()),
            reason: format!(
                "missing {missing} shard{}: {}{} (run `physworld bench --shard I/{n}` for each on the same data, model and options, then merge again)",
                if missing == 1 { "" } else { "s" },
                shown.join(", "),
                if missing > 10 { ", ..." } else { "" }
            ),
        });
    }
    Ok(())
}

/// Join every shard of one run ([`check`]) and score the joined answers on `prep` (the
/// items rebuilt from the dataset with the shards' options): the result file and item log
/// the unsharded run writes, with `wall_time_s` the shards' sum.
///
/// # Errors
/// [`check`]'s; the shards were scored on other items or with other options than `prep`.
pub fn merge(prep: &Prepared, shards: &[(PathBuf, ShardFile)]) -> Result<(ResultFile, Vec<ItemLog>)> {
    check(shards)?;
    let (first_path, first) = &shards[0];
    let what = format!("shards in {}", first_path.parent().unwrap_or(Path::new(".")).display());
    let this = result_file(prep, first.result.model.clone(), &Answers::default(), Vec::new(), 0.0);
    if (&first.result.physworld_version, &first.result.git_hash) != (&this.physworld_version, &this.git_hash) {
        return Err(BenchError::Mismatch {
            what,
            reason: format!(
                "they were scored by physworld {} ({}) and this is {} ({}): merge with the build that scored them",
                first.result.physworld_version,
                first.result.git_hash.as_deref().unwrap_or("unknown commit"),
                this.physworld_version,
                this.git_hash.as_deref().unwrap_or("unknown commit"),
            ),
        });
    }
    if first.options != prep.opts {
        return Err(BenchError::Mismatch { what, reason: "they were scored with other options than asked".into() });
    }
    let suite = prep.suite_ref();
    if first.result.suite != suite {
        let a = serde_json::to_value(&first.result.suite).unwrap_or_default();
        let b = serde_json::to_value(&suite).unwrap_or_default();
        let field = first_difference(&a, &b, "suite").unwrap_or_else(|| "suite".into());
        return Err(BenchError::Mismatch {
            what,
            reason: format!("they were scored on other items than this dataset's (`{field}` differs)"),
        });
    }
    let mut joined = Answers {
        tasks: first
            .answers
            .tasks
            .iter()
            .map(|t| crate::bench::AnsweredTask { items: Vec::new(), ..t.clone() })
            .collect(),
        launch: first.answers.launch.as_ref().map(|_| Vec::new()),
        push: first.answers.push.as_ref().map(|_| Vec::new()),
        unsupported: first.answers.unsupported.clone(),
        no_items: first.answers.no_items.clone(),
    };
    for (_, s) in shards {
        for (t, part) in joined.tasks.iter_mut().zip(&s.answers.tasks) {
            t.items.extend(part.items.iter().cloned());
        }
        if let (Some(all), Some(part)) = (joined.launch.as_mut(), &s.answers.launch) {
            all.extend(part.iter().cloned());
        }
        if let (Some(all), Some(part)) = (joined.push.as_mut(), &s.answers.push) {
            all.extend(part.iter().cloned());
        }
    }
    for t in &mut joined.tasks {
        t.items.sort_by_key(|a| a.index);
    }
    if let Some(all) = joined.launch.as_mut() {
        all.sort_by_key(|p| p.index);
    }
    if let Some(all) = joined.push.as_mut() {
        all.sort_by_key(|p| p.index);
    }
    let (tasks, logs) = score_answers(prep, &first.result.model.id, &joined)?;
    let wall: f64 = shards.iter().map(|(_, s)| s.result.wall_time_s).sum();
    let mut model = first.result.model.clone();
    let mut by_index: Vec<&ShardFile> = shards.iter().map(|(_, s)| s).collect();
    by_index.sort_by_key(|s| s.shard.index);
    if let Some(config) = model.config.as_object_mut() {
        for k in PER_REPLY {
            if let Some(v) = by_index.iter().filter_map(|s| s.result.model.config.get(k)).find(|v| !v.is_null()) {
                config.insert(k.to_string(), v.clone());
            }
        }
    }
    Ok((result_file(prep, model, &joined, tasks, wall), logs))
}
