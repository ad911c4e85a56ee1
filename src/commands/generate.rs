//! `physworld generate`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use physworld_pipeline::{GenerateOptions, PipelineError, Progress, Suite, generate, open_storage};

/// Arguments of `generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Suite file (e.g. datasets/tiny.toml): families, parameters, splits, seed.
    #[arg(value_parser = crate::commands::path_arg, long)]
    suite: PathBuf,
    /// Output dataset folder (Hugging Face layout: data/, meta/, README.md), or with the
    /// `cloud` feature an object-store prefix (s3://BUCKET/PREFIX, gs://..., az://...).
    #[arg(value_parser = crate::commands::dataset_arg, long)]
    out: PathBuf,
    /// Override the number of train samples (other splits as in the suite).
    #[arg(long)]
    episodes: Option<u64>,
    /// Override a family parameter, FAMILY.PARAM=VALUE (repeatable; VALUE as in the suite
    /// file's TOML), e.g. `--set launch.fold=2` for a cross-template fold or
    /// `--set launch.protocol=within`. The dataset records the resolved suite, so its hash.
    #[arg(long = "set", value_name = "FAMILY.PARAM=VALUE")]
    set: Vec<String>,
    /// Worker threads (default: all cores). Output bytes do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Generate only part I of N (0-based), e.g. `--shard 2/8`, for Slurm arrays,
    /// Kubernetes Indexed Jobs or Ray tasks; run `physworld finalize` when all are done.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<String>,
    /// N workers, this one's index read from $JOB_COMPLETION_INDEX (Kubernetes) or
    /// $SLURM_ARRAY_TASK_ID (Slurm).
    #[arg(long, value_name = "N")]
    shards: Option<u64>,
    /// Continue an interrupted run: finished shards (verified against their manifests) are
    /// kept, the rest regenerated. The result is byte-identical to an uninterrupted run.
    #[arg(long)]
    resume: bool,
    /// `state` writes the recorded states (always there); `pixels` also renders every frame
    /// with Bevy (RGB, instance segmentation, depth; lossless PNG in `pixels/*.parquet`, Hugging
    /// Face `Image` columns). Pixels need the `render` feature and a Vulkan driver (Mesa's
    /// lavapipe without a GPU).
    #[arg(long, value_enum, default_value = "state")]
    modality: Modality,
    /// Image height of `--modality pixels`, px (16-256); the width follows the camera's
    /// aspect ratio.
    #[arg(long, default_value_t = 64, value_name = "PX")]
    resolution: u32,
    /// Print the run report as JSON.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "render")]
impl Args {
    /// Whether this run renders frames (`--modality pixels`).
    pub fn renders(&self) -> bool {
        self.modality == Modality::Pixels
    }
}

/// What a dataset holds.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Modality {
    /// States only.
    State,
    /// States and rendered frames.
    Pixels,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut suite = Suite::load(&args.suite)?;
    if let Some(n) = args.episodes {
        suite = suite.with_train_samples(n);
    }
    for s in &args.set {
        suite.set(s)?;
    }
    let shard = super::worker_shard(args.shard.as_deref(), args.shards)?;
    let pixels = match args.modality {
        Modality::State => None,
        Modality::Pixels => Some(physworld_pipeline::pixels::PixelOptions::new(args.resolution)?),
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads 0: expected at least 1");
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("building the thread pool")?;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(super::bar_style("{spinner} {bar:30} {pos}/{len} samples  {rate}  rejected {msg}  eta {eta}"));
    bar.set_message("0");
    let rejected = AtomicU64::new(0);
    let progress = |p: Progress| match p {
        Progress::Planned { samples } => bar.set_length(samples),
        Progress::Sample { rejected: r } => {
            if r > 0 {
                let total = rejected.fetch_add(r, Ordering::Relaxed) + r;
                bar.set_message(total.to_string());
            }
            bar.inc(1);
        }
    };
    super::check_out_dir("--out", &args.out, "a dataset folder (a new or empty one, or one to --resume)")?;
    let storage = open_storage(&args.out)?;
    let stop = super::interrupt_flag()?;
    let start = Instant::now();
    let opts = GenerateOptions { shard, resume: args.resume, progress: &progress, stop: Some(&stop), pixels };
    let report = match pool.install(|| generate(&suite, storage.as_ref(), &opts)) {
        Err(PipelineError::Interrupted { dir }) => {
            bar.finish_and_clear();
            let mut shard_flag = match (&args.shard, args.shards) {
                (Some(s), _) => format!(" --shard {s}"),
                (None, Some(n)) => format!(" --shards {n}"),
                _ => String::new(),
            };
            if let Some(n) = args.episodes {
                shard_flag.push_str(&format!(" --episodes {n}"));
            }
            if let Some(px) = pixels {
                shard_flag.push_str(&format!(" --modality pixels --resolution {}", px.resolution));
            }
            return Err(super::Interrupted(format!(
                "{dir}: finished shards are kept; continue with `physworld generate --suite {} --out {dir}{shard_flag} --resume`",
                args.suite.display()
            ))
            .into());
        }
        r => r?,
    };
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["seconds"] = secs.into();
        v["episodes_per_second"] = (report.episodes as f64 / secs.max(1e-9)).into();
        v["threads"] = threads.into();
        v["suite_hash"] = suite.content_hash().into();
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}: wrote {} shards ({} skipped as finished), {} samples, {} episodes, {} frames, {:.1} MB in {:.1} s ({:.1} episodes/s, {} threads)",
        args.out.display(),
        report.shards_written,
        report.shards_skipped,
        report.samples,
        report.episodes,
        report.frames,
        report.bytes as f64 / 1e6,
        secs,
        report.episodes as f64 / secs.max(1e-9),
        threads
    );
    let t = report.stage_seconds;
    println!(
        "time: simulate {:.1} s{}, write {:.1} s ({:.1}% of shard time){}",
        t.simulate,
        if pixels.is_some() { format!(", render {:.1} s", t.render) } else { String::new() },
        t.write,
        100.0 * t.write_share(),
        if report.finalized { format!(", finalize {:.1} s", t.finalize) } else { String::new() }
    );
    println!("rejected attempts: {}", super::rejections(&report.rejected));
    if report.finalized {
        println!(
            "finalised: meta/info.json, meta/stats.json, README.md (inspect with `physworld inspect --data {}`)",
            args.out.display()
        );
    } else {
        println!(
            "shard {}/{} done; run `physworld finalize --data {}` once every shard is",
            shard.index,
            shard.count,
            args.out.display()
        );
    }
    Ok(())
}
