//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod finalize;
pub mod generate;
pub mod inspect;
pub mod leaderboard;
pub mod plan;
pub mod probe;
pub mod render;
pub mod results;
pub mod scenarios;
pub mod simulate;
pub mod train;
pub mod validate_suite;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A flag that SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers send before killing
/// a job) set, for long commands that stop cleanly at the next safe point: `train` writes
/// a checkpoint of its current step, `generate` keeps its finished shards. A second signal
/// ends the process at once with status 130.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // The conditional shutdown is registered first, so the first signal only sets
        // the flag and the second, finding it set, exits.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// The error of a command stopped by [`interrupt_flag`]: its text says how to continue;
/// the process exits with 130, as a shell reports a process ended by Ctrl-C.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// `"none"`, or the total and its reasons: `"12 (energy-blow-up 3, family 9)"`.
pub fn rejections(by_reason: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = by_reason.values().sum();
    if total == 0 {
        return "none".into();
    }
    let parts: Vec<String> = by_reason.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// A progress bar style from `template`, which may use `{rate}`: items per second with
/// sensible precision (indicatif's `{per_sec}` prints `16,984.1048/s`).
pub fn bar_style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let r = s.per_sec();
            let _ = if r >= 10.0 { write!(w, "{r:.0}/s") } else { write!(w, "{r:.1}/s") };
        })
}

/// `--data DIR`, the dataset folder, spelled the same in every command that reads one
/// (`train`, `probe`, `bench`, `inspect`, `finalize`, `validate-suite`). The older
/// positional spelling is still accepted, hidden, for one release.
#[derive(clap::Args)]
pub struct DataArg {
    /// Dataset folder (written by `physworld generate --suite FILE --out DIR`), or with the
    /// `cloud` feature an object-store URL (s3://BUCKET/PREFIX, gs://..., az://...).
    #[arg(value_parser = crate::commands::dataset_arg, long, value_name = "DIR", required_unless_present = "data_positional", conflicts_with = "data_positional")]
    data: Option<std::path::PathBuf>,
    /// The dataset folder as a positional argument (older spelling of --data).
    #[arg(value_parser = crate::commands::dataset_arg, hide = true, value_name = "DIR")]
    data_positional: Option<std::path::PathBuf>,
}

impl DataArg {
    /// The folder given.
    pub fn path(&self) -> anyhow::Result<&std::path::Path> {
        self.data
            .as_deref()
            .or(self.data_positional.as_deref())
            .ok_or_else(|| anyhow::anyhow!("--data DIR: the dataset folder is required"))
    }

    /// The folder given, which must exist: otherwise an error saying what was `expected`.
    pub fn existing(&self, expected: &str) -> anyhow::Result<&std::path::Path> {
        let dir = self.path()?;
        if physworld_pipeline::store_url(dir).is_none() && !dir.is_dir() {
            anyhow::bail!("--data {}: no such folder (expected {expected})", dir.display());
        }
        Ok(dir)
    }
}

/// The datasets `--data` names: the folder itself, or, for a folder that is not a dataset
/// but holds datasets (one per fold, e.g. generated with `--set launch.fold=K`), each of
/// them by name, in name order.
pub fn datasets_in(dir: &std::path::Path) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let is_dataset = |d: &std::path::Path| d.join(physworld_pipeline::INFO_PATH).is_file();
    if physworld_pipeline::store_url(dir).is_some() {
        // In a store, the datasets one level below a prefix that is not one itself.
        let store = physworld_pipeline::open_storage(dir)?;
        if !store.exists(physworld_pipeline::INFO_PATH)? {
            let mut found = Vec::new();
            for sub in store.list_dirs("")? {
                if store.exists(&format!("{sub}/{}", physworld_pipeline::INFO_PATH))? {
                    found.push((sub.clone(), dir.join(&sub)));
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
        }
        return Ok(vec![(dir.display().to_string(), dir.to_path_buf())]);
    }
    if !dir.is_dir() || is_dataset(dir) {
        return Ok(vec![(dir.display().to_string(), dir.to_path_buf())]);
    }
    let mut found: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_dataset(p))
        .map(|p| (p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), p))
        .collect();
    found.sort();
    if found.is_empty() {
        // Not a dataset and no datasets inside: let the dataset reader say why.
        return Ok(vec![(dir.display().to_string(), dir.to_path_buf())]);
    }
    Ok(found)
}

/// Refuse an output folder that is a file, naming the flag: `--out results.json` would
/// otherwise fail deep inside with a bare "File exists (os error 17)".
pub fn check_out_dir(flag: &str, path: &std::path::Path, what: &str) -> anyhow::Result<()> {
    if path.is_file() {
        anyhow::bail!("{flag} {}: is a file; expected {what}", path.display());
    }
    Ok(())
}

/// This worker's shard: `--shard I/N` as given, or with `--shards N` the index from
/// `$JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs) or `$SLURM_ARRAY_TASK_ID` (Slurm job
/// arrays, which must then be numbered `0..N`: a resubmitted single task `--array=3` is
/// shard 3); the whole run when neither is given.
pub fn worker_shard(shard: Option<&str>, shards: Option<u64>) -> anyhow::Result<physworld_pipeline::WorkerShard> {
    use anyhow::Context;
    use physworld_pipeline::WorkerShard;
    if let Some(s) = shard {
        return Ok(WorkerShard::parse(s)?);
    }
    let Some(n) = shards else { return Ok(WorkerShard::ALL) };
    if n == 0 {
        anyhow::bail!("--shards 0: expected at least 1 worker");
    }
    for var in ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"] {
        if let Ok(v) = std::env::var(var) {
            let i: u64 = v.trim().parse().with_context(|| format!("${var} = {v:?} is not an integer"))?;
            if i >= n {
                anyhow::bail!(
                    "${var} = {i} is not a worker of --shards {n}: expected 0..={} (a Slurm array is submitted as --array=0-{})",
                    n - 1,
                    n - 1
                );
            }
            return Ok(WorkerShard { index: i, count: n });
        }
    }
    anyhow::bail!("--shards {n}: neither $JOB_COMPLETION_INDEX nor $SLURM_ARRAY_TASK_ID is set; use --shard I/N")
}

/// The value parser of every path flag ([`physworld_pipeline::local_path`]): `file://` URLs
/// become paths, and object-store URLs (`s3://`, ...) are refused naming the value, instead of
/// becoming a local folder named `s3:`.
pub fn path_arg(value: &str) -> Result<std::path::PathBuf, String> {
    physworld_pipeline::local_path(value)
}

/// The value parser of result folders, leaderboards and baselines (`bench --out`, `results
/// merge --out`, `leaderboard --results/--out/--check`): the same as [`dataset_arg`].
pub fn location_arg(value: &str) -> Result<std::path::PathBuf, String> {
    physworld_pipeline::dataset_location(value)
}

/// The value parser of dataset locations ([`physworld_pipeline::dataset_location`]): a path,
/// a `file://` URL, or an `s3://`, `gs://` or `az://` URL, which a build without the `cloud`
/// feature refuses naming the rebuild.
pub fn dataset_arg(value: &str) -> Result<std::path::PathBuf, String> {
    physworld_pipeline::dataset_location(value)
}
