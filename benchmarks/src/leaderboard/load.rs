//! Reading a folder of result files into a [`Board`]: one row per file, seed groups, order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use physworld_pipeline::store_url;
use serde_json::{Value, json};

use super::{Board, Cell, Column, GROUP_NAME_MEMBERS, Member, Row, is_learned};
use crate::error::{BenchError, Result};
use crate::results::{self, ItemLog, ResultFile};

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

/// Read every result file in `dir` into a [`Board`].
///
/// Reads each `*.json` directly in `dir` (a local folder, or an object-store prefix in a
/// build with the `cloud` feature; sorted by name; `.tmp-*` files of unfinished writes are
/// skipped) and its item log ([`results::read_in`]).
///
/// Result files of learned models ([`LEARNED_KINDS`](super::LEARNED_KINDS)) whose model config carries a `train`
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
    if store_url(dir).is_none() && !dir.is_dir() {
        let why = if dir.exists() { "not a folder" } else { "no such folder" };
        return Err(BenchError::file(dir, why));
    }
    let store = physworld_pipeline::open_storage(dir)?;
    let names: Vec<String> =
        store.list("")?.into_iter().filter(|n| n.ends_with(".json") && !n.starts_with(".tmp-")).collect();
    if names.is_empty() {
        if !crate::shard::find(dir)?.is_empty() {
            return Err(BenchError::file(
                dir,
                format!(
                    "no result files (*.json) here, only the shards of sharded runs: join them with `physworld results merge --data <dataset> --out {}`",
                    dir.display()
                ),
            ));
        }
        return Err(BenchError::file(dir, "no result files (*.json) here"));
    }
    // Columns sorted by task id, then content hash, then version.
    let mut columns: BTreeMap<(String, String, u32), Column> = BTreeMap::new();
    let mut seen: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut groups: BTreeMap<String, Vec<(Row, Option<u64>)>> = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        let (file, items) = results::read_in(&*store, dir, &name)?;
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
    let mut rows = fold_groups(rows, &mut columns);
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
    normalise_planning(&mut rows, &columns);
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
            folds: 0,
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
        let cell = Cell {
            value: m.value,
            ci: m.ci,
            n: m.n,
            invalid: m.invalid,
            items,
            seeds: 1,
            seed_std: None,
            folds: false,
            normalised: None,
        };
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
        fold: file.suite.fold.clone(),
        folds: Vec::new(),
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
    Row { model, kind, pretraining, suite, suite_hash, file, members, cells, fold: None, folds: Vec::new() }
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
        folds: false,
        normalised: None,
    }
}

/// Join one-file rows of one model on two or more folds of one suite (result files whose
/// [`FoldRef`](crate::results::FoldRef)s share a group and differ in name) into one row:
/// per task (id and version) that every fold scored, one column over the folds (keyed by a
/// hash of the folds' item hashes, so the same folds make the same column whatever the
/// model) whose cell is the mean over folds with their sample standard deviation, the
/// folds' mean interval endpoints, and every fold's items. The folds' own columns go when
/// no row is left on them. Rows of learned models (a run per fold) are not joined.
fn fold_groups(rows: Vec<Row>, columns: &mut BTreeMap<(String, String, u32), Column>) -> Vec<Row> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
    for r in rows {
        match r.fold.clone() {
            Some(f) if !r.is_seed_group() => groups.entry((r.model.clone(), f.group)).or_default().push(r),
            _ => out.push(r),
        }
    }
    for ((_, group), mut rows) in groups {
        let fold_name = |r: &Row| r.fold.as_ref().map(|f| f.name.clone()).unwrap_or_default();
        rows.sort_by_key(|r| fold_name(r));
        let names: Vec<String> = rows.iter().map(fold_name).collect();
        if rows.len() < 2 || names.windows(2).any(|w| w[0] == w[1]) {
            out.extend(rows);
            continue;
        }
        // Per task: each fold's (column key, cell).
        let mut by_task: BTreeMap<(String, u32), Vec<(String, &Cell)>> = BTreeMap::new();
        for r in &rows {
            for (key, cell) in &r.cells {
                if let Some((task, version, hash)) = super::parse_key(key) {
                    by_task.entry((task.to_string(), version)).or_default().push((hash.to_string(), cell));
                }
            }
        }
        let mut cells = BTreeMap::new();
        for ((task, version), of_folds) in by_task.into_iter().filter(|(_, v)| v.len() == rows.len()) {
            let mut h = Sha256::new();
            for (hash, _) in &of_folds {
                h.update(hash.as_bytes());
                h.update([0]);
            }
            let hash = format!("folds-{}", hex::encode(h.finalize()));
            let Some(first) = columns.get(&(task.clone(), of_folds[0].0.clone(), version)).cloned() else { continue };
            let col = columns.entry((task.clone(), hash.clone(), version)).or_insert_with(|| Column {
                content_hash: hash.clone(),
                folds: rows.len(),
                ..first
            });
            let folds: Vec<&Cell> = of_folds.iter().map(|(_, c)| *c).collect();
            let mut cell = mean_over_seeds(&folds);
            cell.items = folds.iter().flat_map(|c| c.items.iter().map(|(k, v)| (k.clone(), *v))).collect();
            cell.n = folds.iter().map(|c| c.n).sum();
            cell.folds = true;
            cells.insert(col.key(), cell);
        }
        let first = &rows[0];
        out.push(Row {
            model: first.model.clone(),
            kind: first.kind.clone(),
            pretraining: first.pretraining.clone(),
            suite: first.suite.clone(),
            suite_hash: group,
            file: first.file.clone(),
            members: Vec::new(),
            cells,
            fold: None,
            folds: names,
        });
    }
    let used: BTreeSet<&String> = out.iter().flat_map(|r| r.cells.keys()).collect();
    columns.retain(|_, c| used.contains(&c.key()));
    out
}

/// Fill in [`Cell::normalised`] on planning columns (task ids `plan-*`) from the mean of
/// the `chance` rows (random) and of the `oracle` rows on each column.
fn normalise_planning(rows: &mut [Row], columns: &[Column]) {
    for c in columns.iter().filter(|c| c.task.starts_with("plan-")) {
        let key = c.key();
        let mean_of = |kind: &str| -> Option<f64> {
            let v: Vec<f64> =
                rows.iter().filter(|r| r.kind == kind).filter_map(|r| r.cells.get(&key)).map(|x| x.value).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let (Some(random), Some(oracle)) = (mean_of("chance"), mean_of("oracle")) else { continue };
        if !(oracle - random).is_normal() {
            continue;
        }
        for r in rows.iter_mut() {
            if let Some(x) = r.cells.get_mut(&key) {
                x.normalised = Some((x.value - random) / (oracle - random));
            }
        }
    }
}
