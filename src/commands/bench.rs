//! `physworld bench`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::ProgressBar;
use physworld_benchmarks::adapters::{self, SPECS};
use physworld_benchmarks::bench::{BenchOptions, Event, Prepared, run as run_bench};
use physworld_benchmarks::results::{self, ResultFile};
use physworld_benchmarks::shard;
use physworld_pipeline::WorkerShard;

/// Arguments of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder to draw the items from (from `physworld generate`): items come from its `test` split,
    /// probes are fit on its `readout` split.
    ///
    /// Every file read is checked against the SHA-256 in its shard manifest. A folder that holds
    /// datasets instead (one per cross-template fold, `generate --set launch.fold=K`) scores
    /// each; the leaderboard shows a model's folds as one row, mean ± sd over folds.
    #[arg(value_parser = crate::commands::dataset_arg, long, value_name = "DIR", alias = "suite")]
    data: PathBuf,
    /// Model to score (repeatable): oracle, constant-velocity, chance[:SEED], majority,
    /// greedy (plans only), raw-state, jepa:<run dir> (also serves state-mse runs), heuristic:<name>,
    /// process:<command>, and LLMs: openai:<model>[@<base url>], anthropic:<model>[@<base
    /// url>], gguf:<path to a .gguf chat model> (in-process, no server).
    ///
    /// jepa takes readout options before the colon, e.g. `jepa,features=both,rollout=end:RUN`:
    /// features=model (default: the model's features alone) or both (plus the raw observed
    /// state, which can win without any world-model content: compare it with raw-state);
    /// rollout=FRAMES (default 30) or end: contact and outcome are read from the model's
    /// imagined future that far, or to the episode's end (mean and last representation);
    /// judge=probe (default) or trajectory (contact and outcome judged by geometry on
    /// positions decoded from the imagined trajectory); pairs=off (default) or on (the
    /// contact probe also sees the squared difference of its two objects' features, a
    /// relation a linear probe cannot form; `raw-state,pairs=on` gives the raw-state probe
    /// the same, for a fair comparison); probe=linear (default: logistic regression on one
    /// row per item) or attentive (V-JEPA's attentive probe: a learned query attends, in 4
    /// heads, over one token per object, flagged agent or patient, one for the scene and,
    /// with pairs=on, one for the pair, then an MLP block and a linear head; five probes
    /// averaged; `raw-state,probe=attentive` for the comparison).
    #[arg(long = "model", required = true)]
    models: Vec<String>,
    /// Folder for the result files (`<model>__<suite>__<split>.json` and `.items.jsonl`): a
    /// local folder, or an `s3://`, `gs://` or `az://` prefix in a build with the `cloud`
    /// feature (shards of `--shard` runs go under its `shards/`).
    #[arg(value_parser = crate::commands::location_arg, long)]
    out: PathBuf,
    /// Tasks (comma-separated): forecast, contact, outcome, voe, plan-launch, plan-push.
    /// Default all.
    ///
    /// plan-launch (PHYRE-like ball placement on the suite's `launch` episodes, judged by the
    /// simulator, AUCCESS over --plan-attempts) is played by the models that plan: oracle,
    /// chance (uniform placements), greedy, LLMs, process: programs that declare it, and
    /// `jepa:` checkpoints (ranking placements by their imagined outcome, best untried
    /// first; `jepa,samples=1000,imagine=end:<run>`, see `plan --help`).
    /// plan-push (closed-loop forces on the suite's `push` episodes, re-planning every
    /// --push-hold frames, success = the puck in the goal zone at the end) by oracle, chance,
    /// greedy, process: programs that declare it, and `jepa:` checkpoints (CEM or MPPI in
    /// their own predictions; `jepa,planner=mppi,samples=100:<run>`, see `plan --help`).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// plan-launch: attempts per item (PHYRE: 100); AUCCESS is computed over this budget.
    #[arg(hide_short_help = true, long, default_value_t = physworld_benchmarks::plan::MAX_ATTEMPTS)]
    plan_attempts: usize,
    /// plan-push: frames each chosen force is held before the planner observes and chooses
    /// again (6 frames: 0.2 s at 30 fps).
    #[arg(hide_short_help = true, long, default_value_t = physworld_benchmarks::plan_push::DEFAULT_HOLD)]
    push_hold: usize,
    /// Split to score (never `readout`, which probes and k-shot examples are fit on).
    #[arg(long, default_value = "test")]
    split: String,
    /// Score only the first N items of each task (quick or costly runs, e.g. paid LLMs).
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the confidence intervals and of how items are presented (the order of each
    /// item's choices, the interleaved order of VoE movies).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples.
    #[arg(hide_short_help = true, long, default_value_t = physworld_benchmarks::metrics::DEFAULT_RESAMPLES)]
    resamples: u32,
    /// LLM models: prompt variants to run (comma-separated, 0..2).
    ///
    /// Each variant is its own result file (`<model>#p1`); the leaderboard shows the mean and spread over
    /// variants and seeds, never the best.
    #[arg(help_heading = "LLM models", hide_short_help = true, long, value_delimiter = ',', default_value = "0")]
    prompt_variants: Vec<usize>,
    /// LLM models: sampling seeds to run (comma-separated; `#s2` in the model id). Seeds
    /// matter only with --temperature above 0.
    #[arg(help_heading = "LLM models", hide_short_help = true, long, value_delimiter = ',', default_value = "0")]
    llm_seeds: Vec<u64>,
    /// LLM models: sampling temperature (0 = greedy).
    #[arg(help_heading = "LLM models", hide_short_help = true, long, default_value_t = 0.0)]
    temperature: f64,
    /// LLM models: solved examples from the readout split shown before each question
    /// (k-shot; recorded in the result's labels_used).
    #[arg(help_heading = "LLM models", hide_short_help = true, long, default_value_t = 0)]
    shots: usize,
    /// LLM models: answer from the response cache only; an item not in it stops the run
    /// (also `PHYSWORLD_LLM_OFFLINE=1`).
    #[arg(help_heading = "LLM models", hide_short_help = true, long)]
    offline: bool,
    /// LLM models: most requests each model run may send (cache hits are free). A spent
    /// budget stops the run cleanly; answers so far stay cached, so a rerun continues.
    #[arg(help_heading = "LLM models", hide_short_help = true, long)]
    max_requests: Option<u64>,
    /// LLM models: most tokens (prompt plus completion, as the server reports them) each model run may spend.
    ///
    /// Stops cleanly like --max-requests (checked before each request, so the last may overshoot by its own
    /// tokens).
    #[arg(help_heading = "LLM models", hide_short_help = true, long)]
    max_tokens_total: Option<u64>,
    /// LLM models: most US dollars each model run may spend, at --price.
    #[arg(help_heading = "LLM models", hide_short_help = true, long, requires = "price")]
    max_cost: Option<f64>,
    /// LLM models: token prices as IN,OUT US dollars per million input and output tokens
    /// (e.g. 0.15,0.60); the run summary then shows the cost.
    #[arg(help_heading = "LLM models", hide_short_help = true, long)]
    price: Option<String>,
    /// LLM models: environment variable holding the API key (default OPENAI_API_KEY or
    /// ANTHROPIC_API_KEY; keys are never printed, logged, cached or written to results).
    #[arg(help_heading = "LLM models", hide_short_help = true, long)]
    api_key_env: Option<String>,
    /// Score only part I of N (0-based) of every task's items, e.g. `--shard 2/8`, for
    /// Slurm job arrays and Kubernetes Indexed Jobs.
    ///
    /// Items are dealt to shards in blocks of 32, round robin. A shard writes its answers,
    /// unscored, to `--out/shards/<model>__<suite>__<split>/shard-I-of-N.json`; a retried
    /// shard replaces its own file. `physworld results merge --data DIR --out DIR` then
    /// joins the shards into the result file an unsharded run writes (byte for byte but for
    /// the wall time), computing every metric and interval over all items.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<String>,
    /// N workers, this one's index read from $JOB_COMPLETION_INDEX (Kubernetes) or
    /// $SLURM_ARRAY_TASK_ID (Slurm); see --shard.
    #[arg(long, value_name = "N")]
    shards: Option<u64>,
    /// Replace result files of the same model, suite and split already in --out (without
    /// it, bench refuses to overwrite them and names them).
    #[arg(long)]
    force: bool,
    /// Print a JSON summary instead of the table.
    #[arg(long)]
    json: bool,
}

/// The LLM runs the flags ask for (one per prompt variant and seed).
fn llm_runs(args: &Args) -> anyhow::Result<Vec<physworld_benchmarks::llm::LlmRun>> {
    let default = args.prompt_variants == [0]
        && args.llm_seeds == [0]
        && args.temperature == 0.0
        && args.shots == 0
        && !args.offline
        && args.max_requests.is_none()
        && args.max_tokens_total.is_none()
        && args.max_cost.is_none()
        && args.price.is_none()
        && args.api_key_env.is_none();
    if !default && !args.models.iter().any(|m| adapters::is_llm(m)) {
        bail!(
            "--prompt-variants, --llm-seeds, --temperature, --shots, --offline, --max-requests, --max-tokens-total, --max-cost, --price and --api-key-env apply to LLM models (openai:, anthropic:, gguf:); none was given"
        );
    }
    let price = args.price.as_deref().map(physworld_benchmarks::llm::Price::parse).transpose()?;
    let base = physworld_benchmarks::llm::LlmRun {
        variant: 0,
        seed: 0,
        shots: args.shots,
        temperature: args.temperature,
        offline: args.offline,
        max_requests: args.max_requests,
        key_env: args.api_key_env.clone(),
        max_tokens_total: args.max_tokens_total,
        max_cost_usd: args.max_cost,
        price,
    };
    Ok(physworld_benchmarks::llm::LlmRun::grid(&base, &args.prompt_variants, &args.llm_seeds)?)
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
        (o.tasks, o.plan_launch, o.plan_push) = physworld_benchmarks::bench::parse_tasks(&args.tasks)?;
    }
    if args.plan_attempts == 0 || args.plan_attempts > physworld_benchmarks::plan::MAX_ATTEMPTS {
        bail!("--plan-attempts {}: expected 1..={}", args.plan_attempts, physworld_benchmarks::plan::MAX_ATTEMPTS);
    }
    o.plan_attempts = args.plan_attempts;
    let max_hold = physworld_benchmarks::plan_push::MAX_HOLD;
    if args.push_hold == 0 || args.push_hold > max_hold {
        bail!("--push-hold {}: expected 1..={max_hold} frames", args.push_hold);
    }
    o.push_hold = args.push_hold;
    Ok(o)
}

/// The adapters of `models`, every spec parsed before any work so that a typo fails fast;
/// an LLM spec is one model per run (prompt variant x seed).
fn parse_adapters(
    models: &[String],
    runs: &[physworld_benchmarks::llm::LlmRun],
) -> anyhow::Result<Vec<Box<dyn physworld_benchmarks::adapters::Adapter>>> {
    let default_run = [physworld_benchmarks::llm::LlmRun::default()];
    let runs = if runs.is_empty() { &default_run[..] } else { runs };
    let mut adapters = Vec::new();
    for m in models {
        if adapters::is_llm(m) {
            for r in runs {
                adapters.push(adapters::parse_with(m, r)?);
            }
        } else {
            adapters.push(adapters::parse(m)?);
        }
    }
    Ok(adapters)
}

/// Answer `shard` of every dataset's items with each of `models`, writing shard files
/// under `out` ([`physworld_benchmarks::shard`]); returns their paths. Refuses, before any
/// work, a shard file of another run at the same place unless `force`.
#[allow(clippy::too_many_arguments)]
pub fn bench_shard(
    datasets: &[PathBuf],
    models: &[String],
    out: &Path,
    opts: BenchOptions,
    runs: &[physworld_benchmarks::llm::LlmRun],
    shard: WorkerShard,
    quiet: bool,
    force: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut adapters = parse_adapters(models, runs)?;
    if let Some(a) = adapters.iter().find(|a| !a.answers_alone()) {
        bail!(
            "--shard: model `{}` answers an item from how the items around it are shown, so a worker's part would be answered differently than in one run; score it without --shard",
            a.id()
        );
    }
    // Every dataset's items built, and every clash found, before any work.
    let preps = datasets.iter().map(|d| Prepared::new(d, opts.clone())).collect::<Result<Vec<_>, _>>()?;
    let mut clash = Vec::new();
    for prep in &preps {
        for a in &adapters {
            let p = shard::path(out, prep, a.id(), shard);
            if let Some(why) = shard::conflict(&p, prep, a.id(), shard) {
                clash.push(format!("{} ({why})", p.display()));
            }
        }
    }
    if !clash.is_empty() && !force {
        bail!(
            "{} already hold(s) another run's shard: pass --force to replace, or --out another folder",
            clash.join(", ")
        );
    }
    let bar = items_bar(quiet);
    let mut written = Vec::new();
    for prep in &preps {
        for a in adapters.iter_mut() {
            bar.set_length(prep.items_for_shard(a.as_ref(), shard));
            bar.set_position(0);
            let progress = |e: Event<'_>| match e {
                Event::Task(m, k, _) => bar.set_message(format!("{m}: {k} (shard {}/{})", shard.index, shard.count)),
                Event::Item => bar.inc(1),
            };
            written.push(shard::run(prep, a.as_mut(), shard, out, &progress)?);
            if let Some(line) = a.summary() {
                eprintln!("{}: {line}", a.id());
            }
        }
    }
    bar.finish_and_clear();
    Ok(written)
}

/// The bar of items answered (hidden when `quiet`).
fn items_bar(quiet: bool) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(crate::commands::bar_style("{spinner} {bar:30} {pos}/{len} items  {msg}  {rate}  eta {eta}"));
    bar
}

/// Score `models` on each dataset of `datasets` into `out`; returns the result files
/// written. Refuses, before any work, to replace a result file already in `out` unless
/// `force`.
pub fn bench(
    datasets: &[PathBuf],
    models: &[String],
    out: &Path,
    opts: BenchOptions,
    runs: &[physworld_benchmarks::llm::LlmRun],
    quiet: bool,
    force: bool,
) -> anyhow::Result<Vec<(PathBuf, ResultFile)>> {
    let mut adapters = parse_adapters(models, runs)?;
    if !force {
        let mut existing = Vec::new();
        for d in datasets {
            let suite = physworld_pipeline::Dataset::open(d)?.suite;
            let fold = suite.fold().map(|(name, _)| name);
            for a in &adapters {
                let stem = results::stem(a.id(), &suite.suite.name, fold.as_deref(), &opts.split);
                let p = out.join(format!("{stem}.json"));
                if physworld_pipeline::file_exists(&p)? {
                    existing.push(p.display().to_string());
                }
            }
        }
        if !existing.is_empty() {
            bail!(
                "{} already hold(s) results of the same model, suite and split: pass --force to replace them, or --out another folder",
                existing.join(", ")
            );
        }
    }
    let bar = items_bar(quiet);
    let mut written = Vec::new();
    for d in datasets {
        let prep = Prepared::new(d, opts.clone())?;
        for a in adapters.iter_mut() {
            bar.set_length(prep.items_for(a.as_ref()));
            bar.set_position(0);
            let progress = |e: Event<'_>| match e {
                Event::Task(m, k, _) => bar.set_message(format!("{m}: {k}")),
                Event::Item => bar.inc(1),
            };
            let path = run_bench(&prep, a.as_mut(), out, &progress)?;
            if let Some(line) = a.summary() {
                eprintln!("{}: {line}", a.id());
            }
            let file = results::read(&path)?;
            written.push((path, file));
        }
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
                "  {:<11} {} {:.3} [{:.3}, {:.3}]  n={}{}\n",
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

/// Result files whose every scored answer was invalid (a model that answered nothing).
pub fn all_invalid(written: &[(PathBuf, ResultFile)]) -> Vec<&Path> {
    written
        .iter()
        .filter(|(_, f)| {
            let n: u64 = f.tasks.iter().map(|t| t.n_items).sum();
            n > 0 && f.tasks.iter().all(|t| t.invalid == t.n_items)
        })
        .map(|(p, _)| p.as_path())
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::commands::check_out_dir("--out", &args.out, "a folder for the result files")?;
    if physworld_pipeline::store_url(&args.out).is_some() {
        // One request up front: a wrong bucket or credentials fail before any scoring.
        physworld_pipeline::open_storage(&args.out)?;
    }
    physworld_benchmarks::llm::require_available(args.models.iter().map(String::as_str))?;
    let opts = options(&args)?;
    let _ = SPECS;
    let runs = llm_runs(&args)?;
    let datasets: Vec<PathBuf> = crate::commands::datasets_in(&args.data)?.into_iter().map(|(_, d)| d).collect();
    let shard = crate::commands::worker_shard(args.shard.as_deref(), args.shards)?;
    // A run asked to shard writes shards even as the only worker (`--shards 1`), so that the
    // recipes' merge step finds them.
    if args.shard.is_some() || args.shards.is_some() {
        let written = bench_shard(&datasets, &args.models, &args.out, opts, &runs, shard, args.json, args.force)?;
        if args.json {
            println!("{}", serde_json::json!({ "shard": shard, "shard_files": written }));
        } else {
            for p in &written {
                println!("shard {}/{} -> {}", shard.index, shard.count, p.display());
            }
            println!(
                "run `physworld results merge --data {} --out {}` once all {} shards are done",
                args.data.display(),
                args.out.display(),
                shard.count
            );
        }
        return Ok(());
    }
    let written = bench(&datasets, &args.models, &args.out, opts, &runs, args.json, args.force)?;
    let written: Vec<_> = written.into_iter().map(|(p, f)| (p, f, None)).collect();
    report(&written, args.json)
}

/// Print result files (a table, or JSON with `--json`; `shards` when merged from them), then
/// fail when every answer of a file was invalid.
pub fn report(written: &[(PathBuf, ResultFile, Option<usize>)], json: bool) -> anyhow::Result<()> {
    if json {
        let v: Vec<serde_json::Value> = written
            .iter()
            .map(|(p, f, n)| {
                let mut v = serde_json::json!({ "path": p, "model": f.model.id, "tasks": f.tasks, "unsupported": f.unsupported });
                if let Some(n) = n {
                    v["shards"] = serde_json::json!(n);
                }
                v
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (p, f, n) in written {
            print!("{}", summary(f));
            let from = n.map(|n| format!(" (from {n} shards)")).unwrap_or_default();
            println!("  -> {}{from}", p.display());
        }
    }
    let pairs: Vec<(PathBuf, ResultFile)> = written.iter().map(|(p, f, _)| (p.clone(), f.clone())).collect();
    let failed = all_invalid(&pairs);
    if !failed.is_empty() {
        let list: Vec<String> = failed.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "every answer was invalid in {} (see each item's `prediction` in its .items.jsonl for why)",
            list.join(", ")
        );
    }
    Ok(())
}
