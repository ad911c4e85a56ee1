//! `physworld validate-suite`.

use std::path::PathBuf;

use anyhow::bail;
use physworld_benchmarks::bench::{BenchOptions, Prepared};
use physworld_benchmarks::score::Bootstrap;
use physworld_benchmarks::tasks::TaskKind;
use physworld_benchmarks::validate::validate_suite;

/// Arguments of `validate-suite`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (from `physworld generate`).
    data: PathBuf,
    /// Split to check.
    #[arg(long, default_value = "test")]
    split: String,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = BenchOptions {
        split: args.split.clone(),
        tasks: vec![TaskKind::Contact, TaskKind::Voe],
        bootstrap_seed: args.seed,
        ..BenchOptions::default()
    };
    let prep = Prepared::new(&args.data, opts)?;
    let v = validate_suite(&prep, Bootstrap { seed: args.seed, resamples: prep.opts.resamples })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", v.summary());
    }
    if !v.passed() {
        bail!("suite `{}` failed validation: a cheap trick beats chance (see the table)", v.suite);
    }
    Ok(())
}
