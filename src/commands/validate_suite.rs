//! `physworld validate-suite`.

use anyhow::bail;
use physworld_benchmarks::bench::{BenchOptions, Prepared};
use physworld_benchmarks::score::Bootstrap;
use physworld_benchmarks::tasks::TaskKind;
use physworld_benchmarks::validate::{self, Criteria, validate_suite_with};

/// Arguments of `validate-suite`.
///
/// Runs every cheap trick (physical heuristics and tricks that read only how items are
/// presented) on the VoE, contact and outcome items and judges each per family: off chance
/// (two-sided, Holm-corrected: the suite fails), shown within ±DELTA of chance (an
/// equivalence test), or underpowered (too few units to show it). Then the other half:
/// the ideal observer (the physics engine on the scene rebuilt from what models observe)
/// must reach SOLVABLE on every family: a family shown below it (the upper end of the
/// observer's 95% interval is) is not solvable from the observations and fails the suite;
/// one below it whose interval still reaches it is undetermined (underpowered). Exits 0
/// only when every judged trick is shown at chance and every family is solvable; a suite
/// too small says so and exits 1.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: super::DataArg,
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
    /// Score the ideal observer must reach on every family (accuracy or relative accuracy).
    #[arg(long, default_value_t = validate::DEFAULT_SOLVABLE)]
    solvable: f64,
    /// Diagnostic: blind the observer to every static but the floor (walls, ramps,
    /// occluders...): families whose answers need the static scene then fail.
    #[arg(long)]
    blind_statics: bool,
    /// Seed of the bootstrap intervals and of how items are presented.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let criteria = Criteria { delta: args.delta, alpha: args.alpha, power: args.power, solvable: args.solvable };
    criteria.validate()?;
    let opts = BenchOptions {
        split: args.split.clone(),
        tasks: vec![TaskKind::Contact, TaskKind::Outcome, TaskKind::Voe],
        plan_launch: false,
        plan_push: false,
        bootstrap_seed: args.seed,
        ..BenchOptions::default()
    };
    let prep = Prepared::new(args.data.path()?, opts)?;
    let b = Bootstrap { seed: args.seed, resamples: prep.opts.resamples };
    let v = validate_suite_with(&prep, b, criteria, args.blind_statics)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", v.summary());
    }
    match v.status {
        "failed" => bail!(
            "suite `{}` failed validation: a cheap trick is off chance or a family is not solvable from the observations (see the tables)",
            v.suite
        ),
        "underpowered" => bail!(
            "suite `{}` lacks the power to show every trick at chance: each family needs {} units (--delta {}, --power {}); generate more test samples or state a larger --delta",
            v.suite,
            v.units_needed,
            criteria.delta,
            criteria.power
        ),
        "empty" => bail!(
            "--split {} of {} holds no VoE, contact or outcome items: nothing was checked (its families: {})",
            args.split,
            args.data.path()?.display(),
            prep.ds.suite.families.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
        _ => Ok(()),
    }
}
