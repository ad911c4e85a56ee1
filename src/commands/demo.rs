//! `physworld demo`: the whole loop on one machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::ProgressBar;
use physworld_benchmarks::bench::BenchOptions;
use physworld_benchmarks::leaderboard;
use physworld_model::{StepMetrics, TrainConfig, TrainOptions, checkpoint, device, train};
use physworld_pipeline::{Dataset, GenerateOptions, LocalStorage, Progress, Suite, WorkerShard, generate};

/// The demo suite, built in so that the demo runs from any folder.
const DEMO: &str = include_str!("../../datasets/demo.toml");

/// Arguments of `demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Working folder: data/ (the demo suite, datasets/demo.toml), run/ (the JEPA), results/, leaderboard.html.
    #[arg(value_parser = crate::commands::path_arg, long, default_value = "physworld-demo")]
    out: PathBuf,
    /// Training steps of the tiny JEPA.
    #[arg(long, default_value_t = 150)]
    steps: u64,
    /// Seed of the JEPA's initialisation and data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = physworld_benchmarks::metrics::DEFAULT_RESAMPLES)]
    resamples: u32,
    /// Also bench an LLM (repeatable), e.g. `openai:smol@http://127.0.0.1:8080` for a local
    /// llama.cpp server; slow on CPU (whole-episode VoE prompts are thousands of tokens).
    #[arg(long = "llm", value_name = "SPEC")]
    llms: Vec<String>,
    /// No progress bars; print the leaderboard as JSON at the end.
    #[arg(long)]
    json: bool,
}

fn bar(quiet: bool, template: &str) -> ProgressBar {
    let b = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    b.set_style(super::bar_style(template));
    b
}

fn stage(quiet: bool, n: u32, what: &str) {
    if !quiet {
        eprintln!("[{n}/4] {what}");
    }
}

/// Generate the demo suite into `dir`, unless a finished dataset of the same suite is there.
/// A finished dataset of another suite or generator version there (an earlier version's
/// demo) is replaced: the demo owns its working folder.
fn dataset(dir: &Path, quiet: bool) -> anyhow::Result<()> {
    let suite = Suite::parse(DEMO, Path::new("datasets/demo.toml"))?;
    if Dataset::holds(dir, &suite) {
        if !quiet {
            eprintln!("      {} already holds the demo suite; reusing it", dir.display());
        }
        return Ok(());
    }
    if Dataset::open(dir).is_ok() {
        if !quiet {
            eprintln!("      {} holds another suite or generator version's data; replacing it", dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing the stale dataset {}", dir.display()))?;
    }
    let b = bar(quiet, "      {bar:30} {pos}/{len} samples  {rate}  eta {eta}");
    let progress = |p: Progress| match p {
        Progress::Planned { samples } => b.set_length(samples),
        Progress::Sample { .. } => b.inc(1),
    };
    let storage = LocalStorage::new(dir);
    let r = generate(
        &suite,
        &storage,
        &GenerateOptions { shard: WorkerShard::ALL, resume: true, progress: &progress, stop: None, pixels: None },
    )?;
    b.finish_and_clear();
    if !quiet {
        eprintln!("      {} episodes, {} frames -> {}", r.episodes, r.frames, dir.display());
    }
    Ok(())
}

/// Train the tiny JEPA into `run`, unless it already finished `steps` steps.
fn model(data: &Path, run: &Path, steps: u64, seed: u64, quiet: bool) -> anyhow::Result<()> {
    let mut cfg = TrainConfig::preset("tiny")?;
    cfg.schedule.steps = steps;
    cfg.schedule.warmup_steps = cfg.schedule.warmup_steps.min(steps / 5);
    cfg.seed = seed;
    if checkpoint::finished(run, &cfg)? {
        if !quiet {
            eprintln!("      {} already trained for {steps} steps; reusing it", run.display());
        }
        return Ok(());
    }
    if checkpoint::latest(run)?.is_some() {
        std::fs::remove_dir_all(run).with_context(|| format!("removing the stale run {}", run.display()))?;
    }
    let b = bar(quiet, "      {bar:30} step {pos}/{len}  {msg}  eta {eta}");
    b.set_length(steps);
    let on_step = |m: &StepMetrics| {
        b.set_position(m.step);
        b.set_message(format!("loss {:.4}  {:.0} samples/s", m.loss, m.samples_per_s));
    };
    let r = train(&TrainOptions {
        data: data.to_path_buf(),
        out: run.to_path_buf(),
        config: cfg,
        device: device("cpu")?,
        resume: false,
        // The demo owns its run folder: a stale run (another config, unfinished) was
        // judged above and is replaced.
        force: true,
        stop_after: None,
        stop: None,
        on_step: &on_step,
        on_checkpoint: None,
    })?;
    b.finish_and_clear();
    if !quiet {
        let eval = r.eval.map(|e| format!(", val loss {:.4}, effective rank {:.1}", e.val_loss, e.effective_rank));
        eprintln!("      step {}, loss {:.4}{}", r.step, r.loss, eval.unwrap_or_default());
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    super::check_out_dir("--out", &args.out, "the demo's working folder")?;
    physworld_benchmarks::llm::require_available(args.llms.iter().map(String::as_str))?;
    let start = Instant::now();
    let quiet = args.json;
    let (data, run_dir, results) = (args.out.join("data"), args.out.join("run"), args.out.join("results"));
    stage(quiet, 1, "generating the demo suite (datasets/demo.toml)");
    dataset(&data, quiet)?;
    stage(quiet, 2, &format!("training a tiny JEPA for {} steps", args.steps));
    model(&data, &run_dir, args.steps, args.seed, quiet)?;
    stage(quiet, 3, "benchmarking oracle, observer, constant-velocity, chance, majority, raw-state and the JEPA");
    if results.exists() {
        std::fs::remove_dir_all(&results).with_context(|| format!("clearing {}", results.display()))?;
    }
    let models: Vec<String> = ["oracle", "observer", "constant-velocity", "chance", "majority", "raw-state"]
        .into_iter()
        .map(String::from)
        .chain(std::iter::once(format!("jepa:{}", run_dir.display())))
        .chain(args.llms.iter().cloned())
        .collect();
    let opts = BenchOptions { resamples: args.resamples, ..BenchOptions::default() };
    super::bench::bench(std::slice::from_ref(&data), &models, &results, opts, &[], quiet, false)?;
    stage(quiet, 4, "leaderboard");
    let board = leaderboard::load(&results)?;
    let html = args.out.join("leaderboard.html");
    physworld_benchmarks::results::atomic_write(&html, board.html().as_bytes())?;
    let json = args.out.join("leaderboard.json");
    let file = board.json();
    physworld_benchmarks::results::atomic_write(&json, file.to_json_pretty()?.as_bytes())?;
    if args.json {
        println!("{}", serde_json::to_value(&file)?);
        return Ok(());
    }
    println!("{}", board.markdown());
    println!(
        "wrote {} (open it in a browser), {} (a --check baseline) and {} in {:.0} s",
        html.display(),
        json.display(),
        results.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
