//! `physworld plan`: planners on the `launch` family's PHYRE-like tasks and on `push`'s
//! closed-loop pushing, judged by the simulator.

use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::ProgressBar;
use physworld_benchmarks::adapters::Adapter;
use physworld_benchmarks::plan::{self, LaunchRun, MAX_ATTEMPTS};
use physworld_benchmarks::plan_push::{self, PushRun};
use physworld_pipeline::Dataset;

/// Arguments of `plan`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: super::DataArg,
    /// Task: launch (place a ball, up to --attempts tries; PHYRE-like) or push (choose the
    /// force on a puck every --hold frames, closed loop, until the episode ends).
    #[arg(long, default_value = "launch", value_parser = ["launch", "push"])]
    task: String,
    /// Planner: oracle (searches with the true simulator: the ceiling), random (uniform
    /// placements; also `chance[:SEED]`, as bench names it), greedy (drops the ball just
    /// behind the target, away from the goal), or an LLM (`openai:<model>[@<url>]`,
    /// `anthropic:<model>[@<url>]`, `gguf:<path>`, built with `--features llm`) playing
    /// each item as a dialogue: the scene as text, a placement per reply, each outcome
    /// back. LLM replies are cached as in `bench` ($PHYSWORLD_LLM_CACHE). A trained
    /// checkpoint, `jepa[,OPTION...]:<run dir>` (JEPA or state-mse), imagines `samples=N`
    /// valid placements (default 400) for `imagine=trained|end|FRAMES` frames (default the
    /// rollout it was trained on) and tries them best first: `rank=success` (default) by a
    /// classifier of success on the imagined futures, fit on --readout-split's recorded
    /// launches; `rank=goal` by the target's distance to its representation at rest in the
    /// goal zone (`energy=final|sum`). Placements near a failed one are dropped. On push: oracle
    /// (receding-horizon search with the true simulator), random / chance[:SEED] (uniform
    /// forces), greedy (a PD controller toward the goal; `greedy,route=around` heads for
    /// waypoints round the observed walls first), an LLM, one force per reply, or
    /// a trained checkpoint, `jepa[,OPTION...]:<run dir>` (JEPA or state-mse): CEM or MPPI
    /// over force sequences in its own predictions, the energy the distance to the goal
    /// state's representation plus an optional control cost (options `planner=cem|mppi`, `samples=N`,
    /// `elites=K`, `iters=I`, `horizon=H` actions, `coast=FRAMES`, `energy=final|sum`,
    /// `effort=W`, `route=direct|around`, `deadband=M`, `pick=best|mean`, `temperature=T`, `std=F`; see benchmarks/README.md), or `bc:<dataset dir>`
    /// (behaviour cloning of that dataset's expert forces). On both, `process:<command>`
    /// plays a program over the physworld-process protocol.
    #[arg(long)]
    model: String,
    /// Split whose `launch` (or `push`) episodes are the items (`test` holds the held-out
    /// templates and goal regions).
    #[arg(long, default_value = "test")]
    split: String,
    /// launch: split whose recorded launches a planner that learns from data fits on before
    /// playing (a `jepa:` checkpoint's success classifier); never the scored split.
    #[arg(long, default_value = "readout")]
    readout_split: String,
    /// Play only the first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Play only item N (0-based, in episode order) and print each attempt.
    #[arg(long, conflicts_with = "limit")]
    item: Option<usize>,
    /// With --item: write the episodes the planner executed (every simulated attempt on
    /// launch, the closed-loop episode on push) into this new folder, in the dataset's
    /// Parquet schema, with meta/record.json saying what was recorded.
    #[arg(value_parser = crate::commands::path_arg, long, value_name = "DIR", requires = "item")]
    record: Option<PathBuf>,
    /// Attempts per item (PHYRE: 100); AUCCESS is computed over this budget.
    #[arg(long, default_value_t = MAX_ATTEMPTS)]
    attempts: usize,
    /// Seed of the planners' randomness and of the confidence interval.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// push: frames each chosen force is held before the planner observes and chooses again.
    #[arg(long, default_value_t = plan_push::DEFAULT_HOLD)]
    hold: usize,
    /// Bootstrap resamples.
    #[arg(hide_short_help = true, long, default_value_t = physworld_benchmarks::metrics::DEFAULT_RESAMPLES)]
    resamples: u32,
    /// Write the run (summary and every item) as JSON to this file (an object-store URL in
    /// a `cloud` build).
    #[arg(value_parser = crate::commands::location_arg, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace --out (or an earlier recording at --record) if it exists.
    #[arg(long)]
    force: bool,
    /// Print the run as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

/// The models `plan` plays with.
const PLANNERS_HELP: &str = "oracle, random, greedy (on push also greedy,route=around), chance[:SEED], process:<command>, openai:<model>[@<url>], \
     anthropic:<model>[@<url>], gguf:<path>, jepa[,OPTION...]:<run dir>; on push also bc:<dataset dir>";

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.attempts == 0 || args.attempts > MAX_ATTEMPTS {
        bail!("--attempts {}: expected 1..={MAX_ATTEMPTS}", args.attempts);
    }
    if args.resamples == 0 {
        bail!("--resamples 0: expected at least 1");
    }
    if args.limit == Some(0) {
        bail!("--limit 0: expected at least 1 item");
    }
    if let Some(out) = &args.out {
        if out.is_dir() {
            bail!("--out {}: is a folder; expected a file name for the run's JSON", out.display());
        }
        if physworld_pipeline::file_exists(out)? && !args.force {
            bail!("--out {}: already exists; pass --force to replace it", out.display());
        }
    }
    if let Some(dir) = &args.record {
        physworld_pipeline::check_recording_dir(dir, args.force)?;
    }
    let folds = super::datasets_in(args.data.path()?)?;
    if folds.len() > 1 && (args.item.is_some() || args.record.is_some()) {
        bail!(
            "--data {}: holds {} datasets (folds); --item and --record play one item of one dataset",
            args.data.path()?.display(),
            folds.len()
        );
    }
    if args.task == "push" {
        if args.hold == 0 || args.hold > plan_push::MAX_HOLD {
            bail!("--hold {}: expected 1..={} frames", args.hold, plan_push::MAX_HOLD);
        }
        let planner = resolve(&args.model, plan_push::push_planner, |a| a.push_planner())?;
        return play_folds(&args, &folds, planner, run_push, |r| r.success, print_push_summary);
    }
    let planner = resolve(&args.model, plan::planner, |a| a.launch_planner())?;
    play_folds(&args, &folds, planner, run_launch, |r| r.auccess, |r| print_summary(r, args.item.is_some()))
}

/// Play `planner` on every dataset of `folds` with `play`, then print the adapter's
/// summary line and emit the runs ([`emit_folds`]).
fn play_folds<P: ?Sized, R: serde::Serialize>(
    args: &Args,
    folds: &[(String, PathBuf)],
    (mut planner, adapter): (Box<P>, Option<AdapterBox>),
    play: impl Fn(&Args, &Path, &mut P) -> anyhow::Result<R>,
    value: impl Fn(&R) -> f64,
    summary: impl Fn(&R),
) -> anyhow::Result<()> {
    let mut runs = Vec::with_capacity(folds.len());
    for (name, dir) in folds {
        if let Some(a) = &adapter {
            // A checkpoint is never played on the split it was trained on.
            a.check_scored(&Dataset::open(dir)?, &args.split)?;
        }
        runs.push((name.clone(), play(args, dir, planner.as_mut())?));
    }
    if let Some(line) = adapter.as_ref().and_then(|a| a.summary()) {
        eprintln!("{}: {line}", args.model);
    }
    emit_folds(runs, args, value, summary)
}

/// A run per fold, printed (and written) as such with the mean and sample standard
/// deviation of `value` over the folds; a single dataset's run as before.
fn emit_folds<T: serde::Serialize>(
    mut runs: Vec<(String, T)>,
    args: &Args,
    value: impl Fn(&T) -> f64,
    summary: impl Fn(&T),
) -> anyhow::Result<()> {
    if runs.len() == 1 {
        let (_, run) = runs.remove(0);
        return emit(&run, args, || summary(&run));
    }
    let v: Vec<f64> = runs.iter().map(|(_, r)| value(r)).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
    let metric = if args.task == "push" { "success" } else { "auccess" };
    let folds: Vec<serde_json::Value> =
        runs.iter().map(|(name, run)| serde_json::json!({ "dataset": name, "run": run })).collect();
    let doc = serde_json::json!({ "metric": metric, "folds": folds, "mean": mean, "sd": sd });
    emit(&doc, args, || {
        for (name, run) in &runs {
            println!("== {name}");
            summary(run);
        }
        println!("over {} folds: {metric} {mean:.3} ± {sd:.3} (mean ± sd)", runs.len());
    })
}

/// `plan` on one dataset's `launch` items.
fn run_launch(args: &Args, dir: &Path, planner: &mut (dyn plan::LaunchPlanner + 'static)) -> anyhow::Result<LaunchRun> {
    let ds = Dataset::open(dir)?;
    let items = select(plan::launch_items_required(&ds, &args.split, args.attempts)?.items, args, "launch")?;
    planner.fit(&ds, &args.readout_split, &args.split)?;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(items.len() as u64) };
    bar.set_style(super::bar_style("{spinner} {bar:30} {pos}/{len} items  {rate}  eta {eta}  {msg}"));
    let mut episodes = Vec::new();
    let mut tick = |o: &plan::LaunchOutcome, executed| {
        bar.inc(1);
        bar.set_message(format!("last: {}", o.first_success.map_or("unsolved".into(), |n| format!("solved at {n}"))));
        if args.record.is_some() {
            episodes = executed;
        }
    };
    let run = plan::run_launch(&items, planner, &args.split, args.seed, args.attempts, args.resamples, &mut tick)?;
    bar.finish_and_clear();
    if let (Some(it), Some(o)) = (items.first(), run.items.first()) {
        record(args, &ds, (plan::LAUNCH_TASK, &it.id, &it.hash, it.episode_index), o, episodes)?;
    }
    Ok(run)
}

type AdapterBox = Box<dyn Adapter>;

/// The planner `model` names: a reference planner by name (`reference`), any other model
/// through its bench adapter (`of`), which is returned too (it owns the connection).
fn resolve<P: ?Sized>(
    model: &str,
    reference: impl Fn(&str) -> physworld_benchmarks::Result<Box<P>>,
    of: impl Fn(&dyn Adapter) -> Option<Box<P>>,
) -> anyhow::Result<(Box<P>, Option<AdapterBox>)> {
    match reference(model) {
        Ok(p) => Ok((p, None)),
        Err(_) if model.contains(':') && !model.starts_with("chance:") => {
            let adapter = physworld_benchmarks::adapters::parse(model)?;
            let planner = of(adapter.as_ref()).ok_or_else(|| {
                anyhow::anyhow!("--model {model}: this model does not plan this task; planners: {PLANNERS_HELP}")
            })?;
            Ok((planner, Some(adapter)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The items `--item` or `--limit` pick from `items` (the `what` items of the split).
fn select<T>(mut items: Vec<T>, args: &Args, what: &str) -> anyhow::Result<Vec<T>> {
    if let Some(k) = args.item {
        if k >= items.len() {
            bail!("--item {k}: the split `{}` has {} {what} items (0..{})", args.split, items.len(), items.len());
        }
        items = vec![items.swap_remove(k)];
    }
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    Ok(items)
}

/// `plan --task push` on one dataset.
fn run_push(args: &Args, dir: &Path, planner: &mut (dyn plan_push::PushPlanner + 'static)) -> anyhow::Result<PushRun> {
    let ds = Dataset::open(dir)?;
    let items = select(plan_push::push_items_required(&ds, &args.split, args.hold)?.items, args, "push")?;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(items.len() as u64) };
    bar.set_style(super::bar_style("{spinner} {bar:30} {pos}/{len} items  {rate}  eta {eta}  {msg}"));
    let mut episodes = Vec::new();
    let mut tick = |o: &plan_push::PushOutcome, executed| {
        bar.inc(1);
        bar.set_message(format!(
            "last: {} ({:.2} m from the goal)",
            if o.success { "reached" } else { "missed" },
            o.final_distance
        ));
        if args.record.is_some() {
            episodes = executed;
        }
    };
    let run = plan_push::run_push(&items, planner, &args.split, args.seed, args.hold, args.resamples, &mut tick)?;
    bar.finish_and_clear();
    if let (Some(it), Some(o)) = (items.first(), run.items.first()) {
        record(args, &ds, (plan_push::PUSH_TASK, &it.id, &it.hash, it.episode_index), o, episodes)?;
    }
    Ok(run)
}

/// With `--record`: write the `episodes` executed on the item (task, id, hash, episode
/// index) as a recording, tagged with the source episode's family, split and seed.
fn record<O: serde::Serialize>(
    args: &Args,
    ds: &Dataset,
    (task, id, hash, episode_index): (&str, &str, &str, u64),
    outcome: &O,
    mut episodes: Vec<physworld_sim::Episode>,
) -> anyhow::Result<()> {
    let Some(dir) = &args.record else { return Ok(()) };
    let m = ds.meta(episode_index)?;
    let (_, _, split) = ds.family_of(&m.split, m.sample_index)?;
    for (k, e) in episodes.iter_mut().enumerate() {
        e.family = m.family.clone();
        e.split = split;
        e.seed = m.seed;
        e.attempt = k as u32;
    }
    let mut outcome = serde_json::to_value(outcome)?;
    if let Some(o) = outcome.as_object_mut() {
        // Wall times differ between runs; an LLM's dialogue stays in the run's JSON.
        for k in ["seconds", "planning_seconds", "raw"] {
            o.remove(k);
        }
    }
    let about = serde_json::json!({
        "task": task,
        "planner": args.model,
        "item": id,
        "item_hash": hash,
        "source": {
            "dataset": args.data.path()?.display().to_string(),
            "suite_hash": ds.info.suite_hash,
            "split": m.split,
            "episode_index": episode_index,
            "seed": m.seed,
        },
        "seed": args.seed,
        "outcome": outcome,
    });
    let n = episodes.len();
    physworld_pipeline::write_recording(dir, &episodes, ds.slots(), &about, args.force)?;
    eprintln!("recorded {n} episode{} in {}", if n == 1 { "" } else { "s" }, dir.display());
    Ok(())
}

/// Write `run` to `--out` (as JSON), then print it as JSON (`--json`) or as `summary`
/// prints it.
fn emit<T: serde::Serialize>(run: &T, args: &Args, summary: impl FnOnce()) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(run)?;
    if let Some(out) = &args.out {
        physworld_pipeline::write_file(out, json.as_bytes())?;
    }
    if args.json {
        println!("{json}");
    } else {
        summary();
        if let Some(out) = &args.out {
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

fn print_push_summary(run: &PushRun) {
    let n = run.items.len().max(1) as f64;
    let sum = |f: &dyn Fn(&plan_push::PushOutcome) -> f64| run.items.iter().map(f).sum::<f64>();
    let actions = sum(&|o| o.actions as f64);
    println!(
        "{} on {} `push` items of `{}` (a force every {} frames): success {:.1}% [{:.1}, {:.1}], final distance to the goal {:.3} m",
        run.planner,
        run.items.len(),
        run.split,
        run.hold,
        100.0 * run.success,
        100.0 * run.success_ci[0],
        100.0 * run.success_ci[1],
        run.final_distance
    );
    println!(
        "per item: {:.1} actions, {:.0} planner physics steps ({:.0} per action), {:.2} ms planning per action, {:.3} s",
        actions / n,
        sum(&|o| o.planner_steps as f64) / n,
        sum(&|o| o.planner_steps as f64) / actions.max(1.0),
        1000.0 * sum(&|o| o.planning_seconds) / actions.max(1.0),
        sum(&|o| o.seconds) / n
    );
}

fn print_summary(run: &LaunchRun, one: bool) {
    let n = run.items.len();
    println!(
        "{} on {} `launch` items of `{}` ({} attempts each): AUCCESS {:.3} [{:.3}, {:.3}], solved at the first attempt {:.1}%, within 10 {:.1}%, within {} {:.1}%",
        run.planner,
        n,
        run.split,
        run.max_attempts,
        run.auccess,
        run.auccess_ci[0],
        run.auccess_ci[1],
        100.0 * run.success_at_1,
        100.0 * run.success_at_10,
        run.max_attempts,
        100.0 * run.success
    );
    let sum = |f: &dyn Fn(&plan::LaunchOutcome) -> f64| run.items.iter().map(f).sum::<f64>();
    println!(
        "per item: {:.1} attempts, {:.1} invalid placements, {:.0} judging physics steps, {:.0} planner physics steps, {:.3} s",
        sum(&|o| o.attempts as f64) / n as f64,
        sum(&|o| o.invalid as f64) / n as f64,
        sum(&|o| o.judge_steps as f64) / n as f64,
        sum(&|o| o.planner_steps as f64) / n as f64,
        sum(&|o| o.seconds) / n as f64
    );
    let mut templates: Vec<u32> = run.items.iter().map(|o| o.template).collect();
    templates.sort_unstable();
    templates.dedup();
    for t in templates {
        let of: Vec<&plan::LaunchOutcome> = run.items.iter().filter(|o| o.template == t).collect();
        let au = of.iter().map(|o| o.auccess).sum::<f64>() / of.len() as f64;
        println!("  template {t}: {} items, AUCCESS {au:.3}", of.len());
    }
    if one && let Some(o) = run.items.first() {
        println!(
            "episode {}: {} after {} attempts ({} invalid placements not counted)",
            o.episode_index,
            o.first_success.map_or("unsolved".to_string(), |k| format!("solved at attempt {k}")),
            o.attempts,
            o.invalid
        );
    }
}
