//! `physworld probe`: is the learning real?

use std::path::PathBuf;

use anyhow::bail;
use candle_core::Device;
use physworld_model::{ReadoutOptions, learning_report, load_run};
use physworld_pipeline::Dataset;

/// Arguments of `probe`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder: probes are fit on its `readout` split and scored on `test` (change
    /// with --fit-split / --eval-split).
    #[arg(value_parser = crate::commands::dataset_arg, long)]
    data: PathBuf,
    /// Run folder of a trained model (its latest checkpoint), or an object-store URL of one
    /// (`cloud` feature; fetched into the local cache).
    #[arg(value_parser = crate::commands::location_arg, long)]
    run: PathBuf,
    /// Position horizon in frames (15 = 0.5 s at 30 fps).
    #[arg(long, default_value_t = 15)]
    horizon: usize,
    /// Split the probes are fit on.
    #[arg(long, default_value = "readout")]
    fit_split: String,
    /// Split the probes are scored on. `test` samples each family's held-out region (an
    /// out-of-distribution score); `readout` or `val` score in distribution.
    #[arg(long, default_value = "test")]
    eval_split: String,
    /// Exit non-zero unless the trained model beats every control.
    #[arg(long)]
    require: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write every probe's inputs and targets to this folder, one safetensors file
    /// per split (`<split>.safetensors`: `[rows, width]` tensors named `trained`,
    /// `trained_predictor_state`, `raw_context`, `log_mass_friction`, `moving`, ...), to fit
    /// other probes (e.g. nonlinear ones) outside physworld.
    #[arg(value_parser = crate::commands::path_arg, long, value_name = "DIR")]
    features_out: Option<PathBuf>,
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    if physworld_pipeline::store_url(&args.run).is_some() {
        args.run = physworld_model::remote::fetch(&args.run)?;
    }
    if !args.run.is_dir() {
        bail!(
            "--run {}: no such run folder (expected a folder written by `physworld train --out`)",
            args.run.display()
        );
    }
    if let Some(f) = &args.features_out {
        super::check_out_dir("--features-out", f, "a folder for the feature files")?;
    }
    let ds = Dataset::open(&args.data)?;
    let (model, cfg, state) = load_run(&args.run, &Device::Cpu)?;
    if args.fit_split == args.eval_split {
        bail!(
            "--fit-split and --eval-split are both `{}`: score the probes on a split they were not fit on",
            args.fit_split
        );
    }
    let opts = ReadoutOptions {
        horizon: args.horizon,
        fit_split: args.fit_split,
        eval_split: args.eval_split,
        features_out: args.features_out,
        ..ReadoutOptions::default()
    };
    let r = learning_report(&ds, &model, &cfg, &state.normalizer, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let p = &r.position;
        println!(
            "positions {:.2} s ahead (mean error, m; {} objects of `{}`, probes fit on {} of `{}`):",
            args.horizon as f64 / ds.info.fps.max(1) as f64,
            r.objects,
            opts.eval_split,
            r.fit_objects,
            opts.fit_split
        );
        println!("  trained model (through the predictor) {:.4}", p.trained);
        println!("  randomly initialised model            {:.4}", p.random_init);
        println!("  trained encoder, last frame (no predictor) {:.4}", p.trained_encoder);
        println!("  target encoder on the true future frame  {:.4}  (ceiling of the predictor path)", p.future_target);
        println!("  raw observed state                    {:.4}", p.raw_state);
        if r.scene_features > 0 {
            println!("  (the model observes the static scene: every probe's raw state includes it)");
        }
        println!("  constant velocity (ballistic)         {:.4}", p.constant_velocity);
        println!("hidden properties of the {} objects that move during the context:", r.moving_objects);
        for (name, s) in [("log mass", &r.log_mass), ("friction", &r.friction)] {
            println!(
                "  {name} (R², higher is better): trained {:.3} (predictor state {:.3}), random init {:.3} ({:.3}), raw state {:.3}, raw context frames {:.3}",
                s.trained,
                s.trained_predictor_state,
                s.random_init,
                s.random_init_predictor_state,
                s.raw_state,
                s.raw_context
            );
        }
        println!(
            "effective rank of encoder representations: trained {:.1}, random init {:.1} (of {})",
            r.effective_rank[0], r.effective_rank[1], r.dim
        );
        println!(
            "positions: the best control's error is {:.2}x the trained model's ({}); hidden properties: {}",
            r.position_margin(),
            if r.position_margin() > 1.0 { "beats every control" } else { "does not beat every control" },
            if r.properties_beat_controls() { "beats every control" } else { "does not beat every control" }
        );
        println!("learning is real: {}", if r.learning_is_real() { "yes" } else { "not yet" });
    }
    if args.require && !r.learning_is_real() {
        bail!("the trained model does not beat every control (see the report)");
    }
    Ok(())
}
