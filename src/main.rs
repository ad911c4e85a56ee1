//! `physworld`: the command-line entry point. Parses arguments and dispatches; every
//! command is a call into a library crate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// mimalloc instead of the system allocator: Candle allocates a fresh output for every op,
/// and glibc's malloc returns large blocks to the kernel on free, so each training step
/// paid for page faults and zeroing of the same memory again (about half the step time on
/// 2 cores; BENCHMARKS.md, "Runtime settings and allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// World-model research on physics: simulate scenes, build datasets, train JEPA models,
/// benchmark them.
#[derive(Parser)]
#[command(name = "physworld", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenario families with their descriptions, parameters and held-out regions.
    Scenarios(commands::scenarios::Args),
    /// Simulate one episode (or a batch, with throughput) of a scenario family.
    Simulate(commands::simulate::Args),
    /// Generate a Parquet dataset from a suite file (resumable, shardable).
    Generate(commands::generate::Args),
    /// Merge the shards of a sharded run into meta/info.json, meta/stats.json and the card.
    Finalize(commands::finalize::Args),
    /// Check a dataset (counts, label balance, schema, versions, file hashes) or a `plan --record` recording.
    Inspect(commands::inspect::Args),
    /// Render a dataset episode with Bevy: a still, or every frame's RGB, segmentation and
    /// depth with a contact sheet (needs the `render` feature and a Vulkan driver).
    Render(commands::render::Args),
    /// Train a JEPA (or state-mse baseline) world model on a dataset.
    Train(commands::train::Args),
    /// Probe a trained model: future positions and hidden properties vs random init, raw
    /// state and constant velocity.
    Probe(commands::probe::Args),
    /// Score models on a dataset's held-out tasks; one result file per model.
    Bench(commands::bench::Args),
    /// Play a planner on a dataset's PHYRE-like `launch` tasks (placements judged by the
    /// simulator, scored by AUCCESS) or, with `--task push`, on closed-loop pushing. A
    /// --data folder holding several datasets (folds, e.g. each generated with
    /// `--set launch.fold=K`) plays each and reports the mean ± sd over them.
    Plan(commands::plan::Args),
    /// Work on result files: `results merge` joins the shards of `bench --shard I/N` runs.
    Results(commands::results::Args),
    /// Table result files as a leaderboard (Markdown, HTML, JSON) or gate on a baseline.
    Leaderboard(commands::leaderboard::Args),
    /// Check that cheap tricks stay at chance on a dataset's VoE, contact and outcome items,
    /// with the power to show it.
    ValidateSuite(commands::validate_suite::Args),
    /// Generate the demo suite (datasets/demo.toml), train a tiny JEPA, bench it against the baselines and print
    /// the leaderboard (its measured time is in BENCHMARKS.md).
    Demo(commands::demo::Args),
}

/// Exit quietly with status 0, as ripgrep does, when a reader of our output goes away
/// (`physworld simulate --json | head`): the reader took what it wanted. Rust's
/// `println!` panics on a broken pipe, and SIGPIPE cannot be restored without unsafe code.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// The lines an error is reported in: the error, then each cause that adds something.
/// Many errors show their cause in their own message already (`path: No such file or
/// directory`), so a cause whose text the lines above hold is not printed a second time.
fn error_lines(e: &anyhow::Error) -> Vec<String> {
    let mut lines = vec![format!("error: {e}")];
    let mut shown = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !shown.contains(&text) {
            lines.push(format!("Caused by: {text}"));
            shown.push('\n');
            shown.push_str(&text);
        }
    }
    lines
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Train(_) | Command::Probe(_) | Command::Bench(_) | Command::Demo(_)) {
        // Candle's and mimalloc's start-up settings for running models on the CPU (one
        // spinning thread pool fewer, freed pages kept): re-executes once with them set,
        // unless the environment sets them (physworld_model::runtime).
        physworld_model::runtime::exec_with_runtime_env();
        // Rayon's workers spin between a step's parallel operations instead of sleeping.
        physworld_model::runtime::set_warm_workers(true);
    }
    #[cfg(feature = "render")]
    if matches!(&cli.command, Command::Render(_)) || matches!(&cli.command, Command::Generate(a) if a.renders()) {
        // Lavapipe draws small images on the submitting thread (physworld_sim::render).
        physworld_model::runtime::exec_with_env(&physworld_sim::render::RUNTIME_ENV);
    }
    let result = match cli.command {
        Command::Scenarios(a) => commands::scenarios::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Generate(a) => commands::generate::run(a),
        Command::Finalize(a) => commands::finalize::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Render(a) => commands::render::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Probe(a) => commands::probe::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Results(a) => commands::results::run(a),
        Command::Leaderboard(a) => commands::leaderboard::run(a),
        Command::ValidateSuite(a) => commands::validate_suite::run(a),
        Command::Demo(a) => commands::demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<commands::Interrupted>().is_some() => {
            eprintln!("interrupted: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            for line in error_lines(&e) {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}
