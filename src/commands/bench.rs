//! `physworld bench`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use physworld_benchmarks::adapters::{self, SPECS};
use physworld_benchmarks::bench::{BenchOptions, Event, Prepared, run as run_bench};
use physworld_benchmarks::results::{self, ResultFile};
use physworld_benchmarks::tasks::TaskKind;

/// Arguments of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder to draw the items from (from `physworld generate`): items come from
    /// its `test` split, probes are fit on its `readout` split.
    #[arg(long)]
    suite: PathBuf,
    /// Model to score (repeatable): oracle, constant-velocity, chance[:SEED], majority,
    /// raw-state, jepa:<run dir> (also serves state-mse runs).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Folder for the result files (`<model>__<suite>.json` and `.items.jsonl`).
    #[arg(long)]
    out: PathBuf,
    /// Tasks (comma-separated): forecast, contact, outcome, voe. Default all.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Split to score.
    #[arg(long, default_value = "test")]
    split: String,
    /// Score only the first N items of each task (quick or costly runs, e.g. paid LLMs).
    #[arg(long)]
    limit: Option<usize>,
    /// Bootstrap seed for the confidence intervals.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = physworld_benchmarks::metrics::DEFAULT_RESAMPLES)]
    resamples: u32,
    /// Print a JSON summary instead of the table.
    #[arg(long)]
    json: bool,
}

/// Options from the flags.
fn options(args: &Args) -> anyhow::Result<BenchOptions> {
    let mut o = BenchOptions { split: args.split.clone(), bootstrap_seed: args.seed, ..BenchOptions::default() };
    if args.resamples == 0 {
        bail!("--resamples 0: expected at least 1");
    }
    o.resamples = args.resamples;
    if args.limit == Some(0) {
        bail!("--limit 0: expected at least 1 item per task");
    }
    o.limit = args.limit;
    if !args.tasks.is_empty() {
        o.tasks = args.tasks.iter().map(|t| TaskKind::parse(t)).collect::<Result<_, _>>()?;
    }
    Ok(o)
}

/// Score `models` on the dataset at `suite` into `out`; returns the result files written.
pub fn bench(
    suite: &Path,
    models: &[String],
    out: &Path,
    opts: BenchOptions,
    quiet: bool,
) -> anyhow::Result<Vec<(PathBuf, ResultFile)>> {
    if suite.extension().is_some_and(|e| e == "toml") {
        bail!(
            "--suite {}: expected a dataset folder; generate it first with `physworld generate --suite {} --out DIR`",
            suite.display(),
            suite.display()
        );
    }
    // Parse every spec before any work, so that a typo fails fast.
    let mut adapters = models.iter().map(|m| adapters::parse(m)).collect::<Result<Vec<_>, _>>()?;
    let prep = Prepared::new(suite, opts)?;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} items  {msg}  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut written = Vec::new();
    for a in adapters.iter_mut() {
        let n: u64 = prep.items.iter().filter(|(k, _)| a.supports(**k)).map(|(_, t)| t.items.len() as u64).sum();
        bar.set_length(n);
        bar.set_position(0);
        let progress = |e: Event<'_>| match e {
            Event::Task(m, k, _) => bar.set_message(format!("{m}: {}", k.as_str())),
            Event::Item => bar.inc(1),
        };
        let path = run_bench(&prep, a.as_mut(), out, &progress)?;
        if let Some(line) = a.summary() {
            eprintln!("{}: {line}", a.id());
        }
        let file = results::read(&path)?;
        written.push((path, file));
    }
    bar.finish_and_clear();
    Ok(written)
}

/// One line per task of a result file.
pub fn summary(file: &ResultFile) -> String {
    let mut s = format!("{}\n", file.model.id);
    for t in &file.tasks {
        if let Some(m) = t.primary_metric() {
            s.push_str(&format!(
                "  {:<9} {} {:.3} [{:.3}, {:.3}]  n={}{}\n",
                t.id,
                m.name,
                m.value,
                m.ci[0],
                m.ci[1],
                m.n,
                if t.invalid > 0 { format!("  invalid={}", t.invalid) } else { String::new() }
            ));
        }
    }
    if !file.unsupported.is_empty() {
        s.push_str(&format!("  (does not answer: {})\n", file.unsupported.join(", ")));
    }
    s
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = options(&args)?;
    let _ = SPECS;
    let written = bench(&args.suite, &args.models, &args.out, opts, args.json)?;
    if args.json {
        let v: Vec<serde_json::Value> = written
            .iter()
            .map(|(p, f)| serde_json::json!({ "path": p, "model": f.model.id, "tasks": f.tasks, "unsupported": f.unsupported }))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (p, f) in &written {
            print!("{}", summary(f));
            println!("  -> {}", p.display());
        }
    }
    Ok(())
}
