//! `physworld results`: work on result files (join the shards of sharded bench runs).

use std::path::PathBuf;

use anyhow::bail;
use physworld_benchmarks::bench::Prepared;
use physworld_benchmarks::results;
use physworld_benchmarks::shard;

/// Arguments of `results`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Join the shards that `bench --shard I/N` workers wrote under --out/shards/ into the
    /// result files an unsharded run writes.
    ///
    /// Every metric and bootstrap interval is computed over all items from the shards'
    /// answers; the result is byte-identical to an unsharded run's but for `wall_time_s`
    /// (here the shards' sum). Refuses, naming the files, shards of different runs
    /// (mismatched), two files for one shard (overlapping), missing shards, and shards
    /// scored on items other than --data's. The shard files are kept.
    Merge(MergeArgs),
}

/// Arguments of `results merge`.
#[derive(clap::Args)]
struct MergeArgs {
    /// The dataset folder the shards scored (bench's --data): the items are rebuilt from it
    /// and checked against the shards' item hashes. A folder of datasets (folds) serves
    /// every shard of its datasets.
    #[command(flatten)]
    data: super::DataArg,
    /// The folder bench's shards wrote to (bench's --out; a local folder, or an `s3://`,
    /// `gs://` or `az://` prefix in a build with the `cloud` feature): shards are read from
    /// its `shards/` folder, and the merged result files written beside it.
    #[arg(value_parser = crate::commands::location_arg, long)]
    out: PathBuf,
    /// Replace merged result files already in --out (without it, merge refuses to
    /// overwrite them and names them).
    #[arg(long)]
    force: bool,
    /// Print a JSON summary instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Merge(a) => merge(a),
    }
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let data = args.data.existing("the dataset folder the shards scored")?;
    let runs = shard::find(&args.out)?;
    if runs.is_empty() {
        bail!(
            "--out {}: no shard files under {} (written by `physworld bench --shard I/N --out {}`)",
            args.out.display(),
            args.out.join("shards").display(),
            args.out.display()
        );
    }
    // Every run's shards read and checked, and every target checked, before anything is
    // written.
    let mut loaded = Vec::new();
    let mut existing = Vec::new();
    for (dir, files) in &runs {
        let shards = files.iter().map(|p| Ok((p.clone(), shard::read(p)?))).collect::<anyhow::Result<Vec<_>>>()?;
        shard::check(&shards)?;
        let stem = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = args.out.join(format!("{stem}.json"));
        if physworld_pipeline::file_exists(&target)? {
            existing.push(target.display().to_string());
        }
        loaded.push(shards);
    }
    if !existing.is_empty() && !args.force {
        bail!("{} already exist(s): pass --force to replace, or merge into another --out", existing.join(", "));
    }
    let datasets = crate::commands::datasets_in(data)?;
    let mut opened = Vec::new();
    for (_, d) in &datasets {
        let ds = physworld_pipeline::Dataset::open(d)?;
        let fold = ds.suite.fold().map(|(name, _)| name);
        opened.push((d.clone(), ds.info.suite_hash.clone(), fold));
    }
    let mut prepared: Vec<(PathBuf, String, Prepared)> = Vec::new();
    let mut merged = Vec::new();
    for shards in &loaded {
        let (first_path, first) = &shards[0];
        let suite = &first.result.suite;
        let fold = suite.fold.as_ref().map(|f| f.name.clone());
        let Some((dir, _, _)) = opened.iter().find(|(_, hash, f)| *hash == suite.dataset_hash && *f == fold) else {
            bail!(
                "{}: scored suite `{}`{} (hash {}), which no dataset in --data {} is",
                first_path.display(),
                suite.name,
                fold.map(|f| format!(" fold {f}")).unwrap_or_default(),
                suite.dataset_hash,
                data.display()
            );
        };
        let key = serde_json::to_string(&first.options)?;
        let at = match prepared.iter().position(|(d, k, _)| d == dir && *k == key) {
            Some(at) => at,
            None => {
                prepared.push((dir.clone(), key, Prepared::new(dir, first.options.clone())?));
                prepared.len() - 1
            }
        };
        merged.push((shard::merge(&prepared[at].2, shards)?, shards.len()));
    }
    // Every run merged before any file is written: a refused run leaves --out as it was.
    drop(prepared);
    let mut written = Vec::new();
    for ((mut file, logs), n) in merged {
        let path = results::write(&args.out, &mut file, &logs)?;
        written.push((path, file, Some(n)));
    }
    super::bench::report(&written, args.json)
}
