//! `physworld validate-suite`.

use std::path::PathBuf;

use anyhow::bail;
use physworld_benchmarks::bench::{BenchOptions, Prepared};
use physworld_benchmarks::score::Bootstrap;
use physworld_benchmarks::tasks::TaskKind;
use physworld_benchmarks::validate::{self, Criteria, validate_suite};

/// Arguments of `validate-suite`.
///
/// Runs every cheap trick (physical heuristics and tricks that read only how items are
/// presented) on the VoE, contact and outcome items and judges each per family: off chance
/// (two-sided, Holm-corrected: the suite fails), shown within ±DELTA of chance (an
/// equivalence test), or underpowered (too few units to show it). Exits 0 only when every
/// judged check is shown at chance; a suite too small says so and exits 1.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (from `physworld generate`).
    data: PathBuf,
    /// Split to check.
    #[arg(long, default_value = "test")]
    split: String,
    /// Equivalence margin around chance, also the effect each family must be able to detect.
    #[arg(long, default_value_t = validate::DEFAULT_DELTA)]
    delta: f64,
    /// Significance level.
    #[arg(long, default_value_t = validate::DEFAULT_ALPHA)]
    alpha: f64,
    /// Power the suite must have to show a trick at chance (fixes the units per family).
    #[arg(long, default_value_t = validate::DEFAULT_POWER)]
    power: f64,
    /// Seed of the bootstrap intervals and of how items are presented.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let criteria = Criteria { delta: args.delta, alpha: args.alpha, power: args.power };
    criteria.validate()?;
    let opts = BenchOptions {
        split: args.split.clone(),
        tasks: vec![TaskKind::Contact, TaskKind::Outcome, TaskKind::Voe],
        bootstrap_seed: args.seed,
        ..BenchOptions::default()
    };
    let prep = Prepared::new(&args.data, opts)?;
    let v = validate_suite(&prep, Bootstrap { seed: args.seed, resamples: prep.opts.resamples }, criteria)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", v.summary());
    }
    match v.status {
        "failed" => bail!("suite `{}` failed validation: a cheap trick is off chance (see the table)", v.suite),
        "underpowered" => bail!(
            "suite `{}` lacks the power to show every trick at chance: each family needs {} units (--delta {}, --power {}); generate more test samples or state a larger --delta",
            v.suite,
            v.units_needed,
            criteria.delta,
            criteria.power
        ),
        _ => Ok(()),
    }
}
