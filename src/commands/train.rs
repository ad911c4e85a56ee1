//! `physworld train`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use physworld_model::{Objective, ShapeInput, StepMetrics, TrainConfig, TrainOptions, device, train};

/// Where the static scene's tokens go (`train --scene`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SceneMode {
    /// The encoder and the predictor.
    Both,
    /// The predictor only (the presets' setting).
    Predictor,
    /// Neither: objects only.
    None,
}

/// How objects' shapes reach the encoder (`train --shape`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ShapeMode {
    /// A one-hot shape kind beside the sizes (every preset's setting).
    Kind,
    /// The sizes and the motion only.
    None,
}

/// Arguments of `train`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder (from `physworld generate`), or an object-store URL (`cloud` feature):
    /// shards are streamed from the store with prefetch.
    #[arg(value_parser = crate::commands::dataset_arg, long)]
    data: PathBuf,
    /// Run folder: config.json, metrics.jsonl, checkpoints/. In a `cloud` build also an
    /// object-store URL (`s3://BUCKET/PREFIX`): the run is trained in a local copy and
    /// uploaded after every checkpoint (`latest` last), and `--resume` continues from the
    /// store's latest checkpoint.
    #[arg(value_parser = crate::commands::location_arg, long)]
    out: PathBuf,
    /// Configuration file (JSON, the TrainConfig written beside every checkpoint).
    #[arg(value_parser = crate::commands::path_arg, long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Model preset: tiny (minutes on 2 CPU cores), small, base (for a GPU). Default tiny,
    /// or with --resume the run's own config.json.
    #[arg(long)]
    preset: Option<String>,
    /// Objective: jepa, or state-mse (the same backbone predicting future states).
    #[arg(long, value_enum)]
    objective: Option<ObjectiveArg>,
    /// Override the number of steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Override the seed (initialisation and data order).
    #[arg(long)]
    seed: Option<u64>,
    /// Add the inverse-dynamics loss term with this weight (builds the head that predicts
    /// the action between consecutive frames; PLDM / EB-JEPA).
    #[arg(hide_short_help = true, long, value_name = "WEIGHT")]
    inverse_dynamics: Option<f32>,
    /// Add the multi-step rollout loss (V-JEPA 2-AC): predict this many further chunks of `data.future`
    /// frames autoregressively after the first, from the model's own predictions, weighted like the
    /// prediction term (set `loss.rollout_weight` in a --config to change that).
    ///
    /// Windows grow by as many chunks.
    #[arg(hide_short_help = true, long, value_name = "CHUNKS")]
    rollout_chunks: Option<usize>,
    /// Observed frames per training window (`data.context`; 8 in every preset): how much of
    /// the past the model reads before it predicts. Longer histories show more of how objects
    /// answered forces, from which hidden masses and frictions can be read (measured on
    /// `plan-push`: BENCHMARKS.md).
    #[arg(hide_short_help = true, long, value_name = "FRAMES")]
    context: Option<usize>,
    /// Where the static scene (walls, ramps, containers, tables, occluders, floor, goal zones)
    /// is observed as tokens: `predictor` (every preset's setting: the predictor reads it),
    /// `both` (the encoder too; the default when the flag is given alone) or `none` (objects
    /// only). Sets `model.scene` and `model.scene_encoder`.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "both", value_name = "WHERE")]
    scene: Option<SceneMode>,
    /// How each object's shape reaches the encoder: `kind` (every preset's setting: a
    /// one-hot box, sphere, cylinder or capsule beside the sizes) or `none` (the sizes and the
    /// motion only). With `none`, a shape that training saw only in one role (on `physion`,
    /// cylinders only rolling) does not throw the readouts off when a held-out scene puts it
    /// in another (cylinder towers): BENCHMARKS.md, "Shape kinds". Sets `model.shape`.
    #[arg(hide_short_help = true, long, value_enum, value_name = "INPUT")]
    shape: Option<ShapeMode>,
    /// Also train on windows that start before each episode, its first frame held still
    /// (`data.lead_in`): what a planner observes of a placement before its release. Train
    /// `plan-launch` planners with it.
    #[arg(hide_short_help = true, long)]
    lead_in: bool,
    /// Train only on these families (comma-separated; Physion's pretraining protocols).
    #[arg(long, value_delimiter = ',')]
    families: Vec<String>,
    /// cpu or cuda:N (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue from the run's latest checkpoint with the run's own config.json.
    ///
    /// Later losses equal an uninterrupted run's. Flags given with it must agree with that config (a
    /// difference is named). Ctrl-C or SIGTERM during training writes a checkpoint of the current step to
    /// resume from.
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Start over in a folder that already holds a run, deleting its config, metrics and
    /// checkpoints (without it, such a folder is refused).
    #[arg(long)]
    force: bool,
    /// Print the final report as JSON.
    #[arg(long)]
    json: bool,
}

/// `--objective` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ObjectiveArg {
    /// Predict the target encoder's embeddings of future frames.
    Jepa,
    /// Predict future object states directly (the pixel-space analogue).
    StateMse,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // A run in object storage is trained in a local copy (physworld_model::remote).
    let staged = match physworld_pipeline::store_url(&args.out) {
        Some(_) => Some(physworld_model::remote::StagedRun::open(&args.out, args.force)?),
        None => None,
    };
    let result = run_in(&args, staged.as_ref());
    match (result, &staged) {
        (Err(e), Some(s)) if e.downcast_ref::<super::Interrupted>().is_none() => {
            // Messages name the store, not the local copy, and say where work the store
            // lacks was kept.
            let mut msg = s.in_store_terms(&format!("{e:#}"));
            if let Some(dir) = s.kept() {
                msg.push_str(&format!(
                    "; the run's local copy, with what the store lacks, is kept in {}",
                    dir.display()
                ));
            }
            Err(anyhow::anyhow!(msg))
        }
        (result, _) => result,
    }
}

fn run_in(args: &Args, staged: Option<&physworld_model::remote::StagedRun>) -> anyhow::Result<()> {
    let out = staged.map_or(args.out.clone(), |s| s.local().to_path_buf());
    let in_store_terms = |text: String| staged.map_or(text.clone(), |s| s.in_store_terms(&text));
    let read_config = |p: &std::path::Path| -> anyhow::Result<TrainConfig> {
        serde_json::from_slice::<TrainConfig>(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{}: not a valid training configuration", p.display()))
    };
    let mut cfg = match (&args.config, &args.preset) {
        (Some(p), _) => read_config(p)?,
        (None, Some(preset)) => TrainConfig::preset(preset)?,
        (None, None) if args.resume => {
            let own = out.join("config.json");
            if !own.is_file() {
                bail!(
                    "--resume: {} holds no run to resume (no config.json); start one without --resume",
                    args.out.display()
                );
            }
            read_config(&own)?
        }
        (None, None) => TrainConfig::preset("tiny")?,
    };
    if let Some(o) = args.objective {
        cfg.model.objective = match o {
            ObjectiveArg::Jepa => Objective::Jepa,
            ObjectiveArg::StateMse => Objective::StateMse,
        };
    }
    if let Some(s) = args.steps {
        cfg.schedule.steps = s;
        cfg.schedule.warmup_steps = cfg.schedule.warmup_steps.min(s / 5);
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if let Some(w) = args.inverse_dynamics {
        cfg.model.inverse_dynamics = w > 0.0;
        cfg.loss.inv_weight = w;
    }
    if let Some(mode) = args.scene {
        cfg.model.scene = mode != SceneMode::None;
        // Written only when false: objects-only configurations keep the missing field.
        cfg.model.scene_encoder = mode != SceneMode::Predictor;
    }
    if let Some(mode) = args.shape {
        cfg.model.shape = match mode {
            ShapeMode::Kind => ShapeInput::Kind,
            ShapeMode::None => ShapeInput::None,
        };
    }
    if let Some(n) = args.rollout_chunks {
        cfg.loss.rollout_chunks = n;
    }
    if let Some(n) = args.context {
        cfg.data.context = n;
    }
    if !args.families.is_empty() {
        cfg.data.families = args.families.clone();
    }
    if args.lead_in {
        cfg.data.lead_in = true;
    }
    super::check_out_dir("--out", &out, "a run folder (a new one, or one to --resume or --force)")?;
    let dev = device(&args.device)?;
    let stop = super::interrupt_flag()?;
    let total_steps = cfg.schedule.steps;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(cfg.schedule.steps) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:30} step {pos}/{len}  {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let on_step = |m: &StepMetrics| {
        bar.set_position(m.step);
        let mut msg = format!("loss {:.4}  {:.0} samples/s", m.loss, m.samples_per_s);
        if let Some(e) = &m.eval {
            msg.push_str(&format!("  val {:.4}  rank {:.1}", e.val_loss, e.effective_rank));
        }
        bar.set_message(msg);
    };
    let push = || staged.map_or(Ok(()), |s| s.push());
    let mut report = train(&TrainOptions {
        data: args.data.clone(),
        out: out.clone(),
        config: cfg,
        device: dev,
        resume: args.resume,
        force: args.force,
        stop_after: None,
        stop: Some(&stop),
        on_step: &on_step,
        on_checkpoint: staged.map(|_| &push as &dyn Fn() -> physworld_model::Result<()>),
    })?;
    let checkpoint = report.checkpoint.as_ref().map(|c| in_store_terms(c.display().to_string()));
    report.checkpoint = checkpoint.as_ref().map(PathBuf::from);
    bar.finish_and_clear();
    if report.interrupted {
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        return Err(super::Interrupted(format!(
            "stopped after step {} of {}; checkpoint {}; continue with `physworld train --data {} --out {} --resume`",
            report.step,
            total_steps,
            checkpoint.as_deref().unwrap_or("none"),
            args.data.display(),
            args.out.display()
        ))
        .into());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if report.steps_run == 0 {
            println!(
                "{}: already finished at step {} (last loss {:.4}); nothing to do",
                args.out.display(),
                report.step,
                report.loss
            );
        } else {
            println!("{}: step {}, loss {:.4}", args.out.display(), report.step, report.loss);
        }
        if let Some(e) = &report.eval {
            println!(
                "validation: loss {:.4}, target std {:.3}, effective rank {:.1}",
                e.val_loss, e.target_std, e.effective_rank
            );
        }
        if let Some(c) = &checkpoint {
            println!("checkpoint: {c}");
        }
        println!("metrics: {}", args.out.join("metrics.jsonl").display());
    }
    Ok(())
}
