//! `physworld leaderboard`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use physworld_benchmarks::leaderboard::{self, Board};

/// Arguments of `leaderboard`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of result files (from `physworld bench`).
    results: PathBuf,
    /// Output format: md (Markdown table), html (a self-contained page with bar charts and
    /// error bars), json (with per-item scores: usable as a `--check` baseline).
    #[arg(long, default_value = "md")]
    format: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Gate on a baseline (a `--format json` leaderboard): exit non-zero when any model
    /// regresses significantly on the same items (paired bootstrap of per-item scores,
    /// plus McNemar's exact test for right/wrong scores), naming the task and the drop.
    #[arg(long, value_name = "BASELINE.json")]
    check: Option<PathBuf>,
    /// Seed of the paired bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// With --check: print the comparison report as JSON.
    #[arg(long)]
    json: bool,
}

/// Render `board` in `format`.
pub fn render(board: &Board, format: &str) -> anyhow::Result<String> {
    Ok(match format {
        "md" | "markdown" => board.markdown(),
        "html" => board.html(),
        "json" => serde_json::to_string_pretty(&board.json())?,
        other => bail!("--format {other}: expected md, html or json"),
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
    let board = leaderboard::load(&args.results)?;
    if let Some(base) = &args.check {
        let text = std::fs::read(base).with_context(|| format!("reading {}", base.display()))?;
        let baseline: serde_json::Value =
            serde_json::from_slice(&text).with_context(|| format!("{}: not JSON", base.display()))?;
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
    emit(&render(&board, &args.format)?, args.out.as_deref())
}
