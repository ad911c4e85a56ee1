//! `physworld leaderboard`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use physworld_benchmarks::leaderboard::{self, Board, BoardFile};

/// Arguments of `leaderboard`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of result files (written by `physworld bench --out DIR`): a local folder, or
    /// an `s3://`, `gs://` or `az://` prefix in a build with the `cloud` feature (so are
    /// --out and --check).
    #[arg(
        value_parser = crate::commands::location_arg,
        long,
        value_name = "DIR",
        required_unless_present = "results_positional",
        conflicts_with = "results_positional"
    )]
    results: Option<PathBuf>,
    /// The results folder as a positional argument (older spelling of --results).
    #[arg(value_parser = crate::commands::location_arg, hide = true, value_name = "DIR")]
    results_positional: Option<PathBuf>,
    /// Output format: md (Markdown table), html (a self-contained page with bar charts and error bars), json
    /// (with per-item scores: usable as a `--check` baseline).
    ///
    /// Rows are ordered best first (mean rank over the columns); reference rows (oracle, observer, chance,
    /// majority) are marked.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(value_parser = crate::commands::location_arg, long)]
    out: Option<PathBuf>,
    /// Gate on a baseline (a `--format json` leaderboard): exit non-zero when any model
    /// regresses significantly on the same items (paired bootstrap of per-item scores,
    /// plus McNemar's exact test for right/wrong scores), naming the task and the drop.
    #[arg(value_parser = crate::commands::location_arg, long, value_name = "BASELINE.json")]
    check: Option<PathBuf>,
    /// Compare every model with this one (a model id of the board, e.g. raw-state) on the
    /// same items: the paired per-item test (bootstrap of the mean difference, plus
    /// McNemar's exact test for right/wrong scores), with a verdict per task: better,
    /// worse, or no significant difference. Overlapping intervals of unpaired scores are
    /// the wrong test for "model A beats model B".
    #[arg(long, value_name = "MODEL", conflicts_with = "check")]
    versus: Option<String>,
    /// Seed of the paired bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON: the comparison report with --check or --versus, else the leaderboard
    /// (the same as --format json).
    #[arg(long)]
    json: bool,
}

/// Leaderboard renderings.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A Markdown table.
    #[value(alias = "markdown")]
    Md,
    /// A self-contained HTML page with bar charts.
    Html,
    /// JSON with per-item scores (a `--check` baseline).
    Json,
}

/// Render `board` in `format`.
pub fn render(board: &Board, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Md => board.markdown(),
        Format::Html => board.html(),
        Format::Json => board.json().to_json_pretty()?,
    })
}

/// Write `text` to `out` or standard output.
pub fn emit(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            physworld_benchmarks::results::atomic_write(p, text.as_bytes())?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args
        .results
        .as_deref()
        .or(args.results_positional.as_deref())
        .ok_or_else(|| anyhow::anyhow!("--results DIR: the folder of result files is required"))?;
    let board = leaderboard::load(dir)?;
    if let Some(base) = &args.check {
        let baseline = BoardFile::read(base)?;
        let report = leaderboard::check(&board, &baseline, args.seed)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.summary());
        }
        if !report.passed() {
            bail!("{} significant regression(s) against {}", report.regressions().len(), base.display());
        }
        return Ok(());
    }
    if let Some(reference) = &args.versus {
        let report = leaderboard::versus(&board, reference, args.seed)?;
        let text = if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { report.markdown() };
        return emit(&text, args.out.as_deref());
    }
    let format = if args.json {
        if args.format != Format::Md && args.format != Format::Json {
            bail!("--json prints the leaderboard as JSON; it cannot be combined with another --format");
        }
        Format::Json
    } else {
        args.format
    };
    emit(&render(&board, format)?, args.out.as_deref())
}
