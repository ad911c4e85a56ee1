//! The training loop: seeded data order, AdamW with warm-up + cosine decay, gradient
//! clipping, EMA target, validation with collapse diagnostics, atomic checkpoints,
//! resumable to the same losses, and a clear stop on NaN/inf.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use physworld_pipeline::{Dataset, EpisodeFrames, WindowSpec, WindowStream, write_atomic};
use serde::{Deserialize, Serialize};

use crate::batch::{Batch, Normalizer};
use crate::checkpoint::{self, CheckpointState, DataIdentity};
use crate::config::{Objective, TrainConfig};
use crate::error::{ModelError, Result};
use crate::jepa::WorldModel;
use crate::linalg::effective_rank;
use crate::optim::{AdamW, clip_scale};

/// Metrics of one step (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Step (1-based: after this many updates).
    pub step: u64,
    /// Total training loss.
    pub loss: f32,
    /// Prediction term.
    pub prediction: f32,
    /// Variance hinge (unweighted).
    pub variance: f32,
    /// Covariance (unweighted).
    pub covariance: f32,
    /// Inverse dynamics (unweighted; 0 without the head).
    #[serde(default)]
    pub inverse: f32,
    /// Rollout term (unweighted; 0 without `loss.rollout_chunks`).
    #[serde(default)]
    pub rollout: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub lr: f64,
    /// EMA momentum used.
    pub ema: f64,
    /// Training windows per second over this step.
    pub samples_per_s: f64,
    /// Validation, on evaluation steps.
    pub eval: Option<EvalMetrics>,
}

/// Validation loss and collapse diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Mean prediction loss on the validation batches.
    pub val_loss: f32,
    /// Mean rollout term (`loss.rollout_chunks > 0`) on the same batches; 0 without it.
    #[serde(default)]
    pub val_rollout: f32,
    /// Mean over dimensions of the per-dimension std of target representations.
    pub target_std: f32,
    /// Effective rank of target representations (of at most `dim`).
    pub effective_rank: f64,
}

/// Options of [`train`].
pub struct TrainOptions<'a> {
    /// Dataset folder (finalised).
    pub data: PathBuf,
    /// Run folder.
    pub out: PathBuf,
    /// Configuration.
    pub config: TrainConfig,
    /// Device.
    pub device: Device,
    /// Continue from the run's latest checkpoint.
    pub resume: bool,
    /// Start over in a folder that already holds a run (its config, metrics and
    /// checkpoints are deleted first); without it such a folder is refused.
    pub force: bool,
    /// Stop after this step (for tests and schedules split across jobs); default: all.
    pub stop_after: Option<u64>,
    /// Called after every step.
    pub on_step: &'a dyn Fn(&StepMetrics),
    /// Set from outside (the binary sets it on SIGINT or SIGTERM) to stop after the current
    /// step: a checkpoint of that step is written and the report says `interrupted`, so that
    /// `--resume` continues with the losses of an uninterrupted run.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
    /// Called after every checkpoint is written (and the metrics and plot with it): the
    /// binary uploads a run that lives in object storage ([`crate::remote::StagedRun`]).
    pub on_checkpoint: Option<&'a dyn Fn() -> Result<()>>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReport {
    /// Last step done.
    pub step: u64,
    /// Last training loss.
    pub loss: f32,
    /// Last validation metrics.
    pub eval: Option<EvalMetrics>,
    /// Newest checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Steps this call ran (0 when a resumed run had already finished).
    pub steps_run: u64,
    /// Whether [`TrainOptions::stop`] ended the run before its last step.
    pub interrupted: bool,
}

/// Parse `cpu` or `cuda:N`.
pub fn device(spec: &str) -> Result<Device> {
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(n) = spec.strip_prefix("cuda:").or(if spec == "cuda" { Some("0") } else { None }) {
        let n: usize = n.parse().map_err(|_| ModelError::config("--device", spec, "cpu or cuda:N"))?;
        if !cfg!(feature = "cuda") {
            return Err(ModelError::Device(
                spec.into(),
                "this build has no CUDA support; rebuild with `--features cuda` (needs the CUDA toolkit)".into(),
            ));
        }
        return open_cuda(spec, n);
    }
    Err(ModelError::config("--device", spec, "cpu or cuda:N"))
}

/// Open CUDA device `n` and run one matrix product on it. The CUDA build loads the
/// driver, cuBLAS and cuRAND at run time (cudarc's `dynamic-loading`, so that the binary
/// runs wherever the libraries are, whatever their install path), and cudarc panics when
/// one is missing: that panic is caught here, with its message kept, as the device
/// being unavailable; the product loads cuBLAS now rather than at the first step. The
/// process's panic hook is left alone (it is the program's), so it may print the panic
/// before the error is returned.
fn open_cuda(spec: &str, n: usize) -> Result<Device> {
    let opened = std::panic::catch_unwind(|| -> candle_core::Result<Device> {
        let dev = Device::new_cuda(n)?;
        let x = candle_core::Tensor::ones((2, 2), candle_core::DType::F32, &dev)?;
        x.matmul(&x)?.to_vec2::<f32>()?;
        Ok(dev)
    });
    match opened {
        Ok(Ok(dev)) => Ok(dev),
        Ok(Err(e)) => Err(ModelError::Device(spec.into(), e.to_string())),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the CUDA runtime panicked".into());
            Err(ModelError::Device(spec.into(), msg))
        }
    }
}

/// Yields batches of training windows in a seeded order, epoch after epoch, and can be
/// positioned at (epoch, consumed) to resume.
struct BatchSource<'a> {
    ds: &'a Dataset,
    spec: WindowSpec,
    seed: u64,
    allowed: Option<HashSet<u64>>,
    epoch: u64,
    consumed: u64,
    stream: WindowStream,
}

impl<'a> BatchSource<'a> {
    fn new(
        ds: &'a Dataset,
        spec: WindowSpec,
        seed: u64,
        families: &[String],
        epoch: u64,
        consumed: u64,
    ) -> Result<Self> {
        let allowed = (!families.is_empty())
            .then(|| ds.split("train").filter(|e| families.contains(&e.family)).map(|e| e.episode_index).collect());
        let mut stream = ds.windows("train", spec, epoch_seed(seed, epoch));
        // Skip the raw windows (filtered ones included) this epoch already consumed.
        for _ in 0..consumed {
            if let Some(w) = stream.next() {
                w?;
            }
        }
        Ok(BatchSource { ds, spec, seed, allowed, epoch, consumed, stream })
    }

    fn next_window(&mut self) -> Result<EpisodeFrames> {
        let mut restarted = false;
        loop {
            match self.stream.next() {
                Some(w) => {
                    let w = w?;
                    self.consumed += 1;
                    if self.allowed.as_ref().is_none_or(|a| a.contains(&w.episode_index)) {
                        return Ok(w);
                    }
                }
                None => {
                    if restarted {
                        return Err(ModelError::config(
                            "data",
                            "train split",
                            "at least one window of context + future * (1 + loss.rollout_chunks) frames",
                        ));
                    }
                    restarted = true;
                    self.epoch += 1;
                    self.consumed = 0;
                    self.stream = self.ds.windows("train", self.spec, epoch_seed(self.seed, self.epoch));
                }
            }
        }
    }

    fn next_batch(&mut self, n: usize) -> Result<Vec<EpisodeFrames>> {
        (0..n).map(|_| self.next_window()).collect()
    }
}

fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ epoch.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// What earlier work folder `out` holds (a config, metrics lines, checkpoints), if any.
fn existing_run(out: &std::path::Path) -> Result<Option<String>> {
    let mut found = Vec::new();
    if out.join("config.json").exists() {
        found.push("config.json".to_string());
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).map(|t| t.lines().count()).unwrap_or(0);
    if lines > 0 {
        found.push(format!("metrics.jsonl ({lines} steps)"));
    }
    if let Some(dir) = checkpoint::latest(out)? {
        found.push(format!("checkpoints up to {}", dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    }
    Ok((!found.is_empty()).then(|| found.join(", ")))
}

/// The settings in which `now` differs from `saved`, as `path: saved -> now` (JSON paths).
fn config_diff(saved: &TrainConfig, now: &TrainConfig) -> String {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&p, x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), out);
                }
            }
            _ if a != b => out.push(format!("{path}: {a} in the run, {b} now")),
            _ => {}
        }
    }
    let (a, b) = (serde_json::to_value(saved).unwrap_or_default(), serde_json::to_value(now).unwrap_or_default());
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    if out.is_empty() { "no setting differs".into() } else { out.join("; ") }
}

/// Train (or resume) a run. Writes `config.json`, `metrics.jsonl` and checkpoints under
/// `out`.
pub fn train(opts: &TrainOptions<'_>) -> Result<TrainReport> {
    let cfg = &opts.config;
    cfg.validate()?;
    let ds = Dataset::open(&opts.data)?;
    let mut norm = Normalizer::from_stats(&ds.stats);
    norm.shape_kind = cfg.model.shape == crate::config::ShapeInput::Kind;
    let tf = cfg.data.future;
    let spec = WindowSpec {
        context: cfg.data.context,
        future: cfg.loss.future_frames(cfg.data.future),
        stride: cfg.data.stride,
        shuffle_buffer: cfg.data.shuffle_buffer,
        prefetch: cfg.data.batch_size * 2,
        lead_in: cfg.data.lead_in,
    };
    let model = WorldModel::new(&cfg.model, cfg.seed, &opts.device)?;
    let mut opt = AdamW::new(model.trainable(), &cfg.optim)?;
    let config_path = opts.out.join("config.json");
    let metrics_path = opts.out.join("metrics.jsonl");
    let cfg_json = serde_json::to_vec_pretty(cfg).map_err(|e| ModelError::config("config", e, "serialisable"))?;
    // Every input is checked before anything is written: a run that fails on its inputs
    // leaves the folder as it was.
    let known: std::collections::BTreeSet<&str> = ds.split("train").map(|m| m.family.as_str()).collect();
    if let Some(f) = cfg.data.families.iter().find(|f| !known.contains(f.as_str())) {
        return Err(ModelError::config(
            "data.families",
            f,
            format!(
                "families in the dataset's train split: {}{}",
                known.iter().copied().collect::<Vec<_>>().join(", "),
                physworld_sim::suggest::did_you_mean(f, known.iter().copied())
            ),
        ));
    }
    let (mut step, mut epoch, mut consumed) = (0u64, 0u64, 0u64);
    if opts.resume {
        let dir = checkpoint::latest(&opts.out)?.ok_or_else(|| ModelError::Checkpoint {
            path: opts.out.clone(),
            reason: "no checkpoint to resume from".into(),
        })?;
        let saved: TrainConfig = serde_json::from_slice(
            &std::fs::read(&config_path).map_err(|source| ModelError::Io { path: config_path.clone(), source })?,
        )
        .map_err(|e| ModelError::Checkpoint { path: config_path.clone(), reason: e.to_string() })?;
        if &saved != cfg {
            return Err(ModelError::Checkpoint {
                path: config_path,
                reason: format!("the run was started with another configuration: {}", config_diff(&saved, cfg)),
            });
        }
        let st = checkpoint::load(&dir, &model, Some(&mut opt), &opts.device)?;
        if st.data.suite_hash != ds.info.suite_hash {
            return Err(ModelError::Checkpoint {
                path: dir,
                reason: format!("trained on dataset {} not {}", st.data.suite_hash, ds.info.suite_hash),
            });
        }
        (step, epoch, consumed) = (st.step, st.epoch, st.consumed);
    } else if let Some(what) = existing_run(&opts.out)?
        && !opts.force
    {
        return Err(ModelError::Exists {
            path: opts.out.clone(),
            what,
            hint: "pass --resume to continue it, or --force to delete it and start over".into(),
        });
    }
    let mut source = BatchSource::new(&ds, spec, cfg.seed, &cfg.data.families, epoch, consumed)?;
    let val = validation_batches(&ds, spec, cfg, &norm, &opts.device)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| ModelError::Io { path: opts.out.clone(), source })?;
    if !opts.resume {
        if opts.force {
            for old in [opts.out.join("checkpoints"), metrics_path.clone(), config_path.clone()] {
                let gone = if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) };
                match gone {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ModelError::Io { path: old, source: e });
                    }
                    _ => {}
                }
            }
        }
        write_atomic(&config_path, &cfg_json)?;
    }
    // metrics.jsonl keeps the lines up to the resumed step.
    let kept: Vec<(String, StepMetrics)> = std::fs::read_to_string(&metrics_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<StepMetrics>(l).ok().filter(|m| m.step <= step).map(|m| (l.to_string(), m))
        })
        .collect();
    // A resumed run reports its last logged loss and validation until it runs a step.
    let last_loss = kept.last().map_or(f32::NAN, |(_, m)| m.loss);
    let last_eval = kept.iter().rev().find_map(|(_, m)| m.eval.clone());
    let mut metrics =
        std::fs::File::create(&metrics_path).map_err(|source| ModelError::Io { path: metrics_path.clone(), source })?;
    for (l, _) in kept {
        writeln!(metrics, "{l}").map_err(|source| ModelError::Io { path: metrics_path.clone(), source })?;
    }
    let identity = DataIdentity {
        path: opts.data.display().to_string(),
        suite_hash: ds.info.suite_hash.clone(),
        splits: vec!["train".into()],
        families: cfg.data.families.clone(),
    };
    let total = opts.stop_after.unwrap_or(cfg.schedule.steps).min(cfg.schedule.steps);
    let mut report = TrainReport {
        step,
        loss: last_loss,
        eval: last_eval,
        checkpoint: checkpoint::latest(&opts.out)?,
        steps_run: 0,
        interrupted: false,
    };
    while step < total {
        let t0 = Instant::now();
        let windows = source.next_batch(cfg.data.batch_size)?;
        let batch = Batch::new(&windows, &norm, &opts.device)?;
        let lr = cfg.schedule.lr(step, cfg.optim.lr);
        let ema = cfg.schedule.ema(step);
        let (parts, loss, grad_norm) = crate::runtime::warm_if_enabled(|| -> Result<_> {
            let parts = model.loss(&batch, tf, &cfg.loss)?;
            let loss: f32 = parts.total.to_scalar()?;
            if !loss.is_finite() {
                return Err(ModelError::Diverged { step: step + 1, what: "loss".into(), value: loss });
            }
            let grads = parts.total.backward()?;
            let grad_norm = opt.grad_norm(&grads)?;
            if !grad_norm.is_finite() {
                return Err(ModelError::Diverged { step: step + 1, what: "gradient norm".into(), value: grad_norm });
            }
            opt.step(&grads, lr, clip_scale(grad_norm, cfg.optim.clip_grad_norm))?;
            if cfg.model.objective == Objective::Jepa {
                model.ema_update(ema)?;
            }
            Ok((parts, loss, grad_norm))
        })?;
        step += 1;
        let eval = if cfg.eval_every > 0 && (step % cfg.eval_every == 0 || step == total) {
            Some(evaluate(&model, &val, tf, cfg)?)
        } else {
            None
        };
        let m = StepMetrics {
            step,
            loss,
            prediction: parts.prediction,
            variance: parts.variance,
            covariance: parts.covariance,
            inverse: parts.inverse,
            rollout: parts.rollout,
            grad_norm,
            lr,
            ema,
            samples_per_s: cfg.data.batch_size as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            eval: eval.clone(),
        };
        let line = serde_json::to_string(&m).map_err(|e| ModelError::config("metrics", e, "serialisable"))?;
        writeln!(metrics, "{line}").map_err(|source| ModelError::Io { path: metrics_path.clone(), source })?;
        (opts.on_step)(&m);
        report.step = step;
        report.steps_run += 1;
        report.loss = loss;
        let stopping = step < total && opts.stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed));
        report.interrupted = stopping;
        if eval.is_some() {
            report.eval = eval;
        }
        if step % cfg.checkpoint_every.max(1) == 0 || step == total || stopping {
            let state = CheckpointState {
                step,
                epoch: source.epoch,
                consumed: source.consumed,
                adam_t: opt.t,
                data: identity.clone(),
                normalizer: norm.clone(),
            };
            report.checkpoint = Some(checkpoint::save(&opts.out, &model, &opt, &state)?);
            metrics.flush().map_err(|source| ModelError::Io { path: metrics_path.clone(), source })?;
            write_plot(&opts.out)?;
            if let Some(hook) = opts.on_checkpoint {
                hook()?;
            }
        }
        if stopping {
            break;
        }
    }
    metrics.flush().map_err(|source| ModelError::Io { path: metrics_path, source })?;
    write_plot(&opts.out)?;
    Ok(report)
}

fn validation_batches(
    ds: &Dataset,
    spec: WindowSpec,
    cfg: &TrainConfig,
    norm: &Normalizer,
    dev: &Device,
) -> Result<Vec<Batch>> {
    let mut stream = ds.windows("val", WindowSpec { lead_in: false, ..spec }, 0);
    let mut out = Vec::new();
    for _ in 0..cfg.eval_batches {
        let w: Vec<EpisodeFrames> = stream.by_ref().take(cfg.data.batch_size).collect::<std::result::Result<_, _>>()?;
        if w.is_empty() {
            break;
        }
        out.push(Batch::new(&w, norm, dev)?);
    }
    Ok(out)
}

/// Validation loss, per-dimension std and effective rank of target representations.
pub fn evaluate(model: &WorldModel, val: &[Batch], tf: usize, cfg: &TrainConfig) -> Result<EvalMetrics> {
    let (mut loss, mut rollout, mut n) = (0f32, 0f32, 0usize);
    let mut reps: Vec<f32> = Vec::new();
    let d = cfg.model.dim;
    for b in val {
        let parts = model.loss(b, tf, &cfg.loss)?;
        loss += parts.prediction;
        rollout += parts.rollout;
        n += 1;
        if reps.len() < 2048 * d {
            let r = model.target.forward(&b.obs, &b.valid, b.scene.as_ref(), 0)?; // [B, T, S, D]
            let flat: Vec<f32> = r.reshape(((), d))?.flatten_all()?.to_vec1()?;
            let valid: Vec<f32> = b.valid.flatten_all()?.to_vec1()?;
            for (i, v) in valid.iter().enumerate() {
                if *v > 0.0 && reps.len() < 2048 * d {
                    reps.extend_from_slice(&flat[i * d..(i + 1) * d]);
                }
            }
        }
    }
    let rows = reps.len() / d.max(1);
    let mut std = 0f64;
    if rows > 1 {
        for c in 0..d {
            let mean: f64 = (0..rows).map(|r| reps[r * d + c] as f64).sum::<f64>() / rows as f64;
            let var: f64 = (0..rows).map(|r| (reps[r * d + c] as f64 - mean).powi(2)).sum::<f64>() / rows as f64;
            std += var.sqrt() / d as f64;
        }
    }
    Ok(EvalMetrics {
        val_loss: if n > 0 { loss / n as f32 } else { f32::NAN },
        val_rollout: if n > 0 { rollout / n as f32 } else { f32::NAN },
        target_std: std as f32,
        effective_rank: effective_rank(&reps, rows, d),
    })
}

/// Redraw `RUN/metrics.png` from `RUN/metrics.jsonl`.
pub fn write_plot(run: &Path) -> Result<()> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io { path, source })?;
    let metrics: Vec<StepMetrics> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    crate::plot::plot_metrics(&metrics, &run.join("metrics.png"))
}

/// Load a trained run's latest checkpoint for inference.
pub fn load_run(run: &Path, device: &Device) -> Result<(WorldModel, TrainConfig, CheckpointState)> {
    let cp = run.join("config.json");
    let cfg: TrainConfig =
        serde_json::from_slice(&std::fs::read(&cp).map_err(|source| ModelError::Io { path: cp.clone(), source })?)
            .map_err(|e| ModelError::Checkpoint { path: cp, reason: e.to_string() })?;
    let dir = checkpoint::latest(run)?
        .ok_or_else(|| ModelError::Checkpoint { path: run.to_path_buf(), reason: "no checkpoint".into() })?;
    let model = WorldModel::new(&cfg.model, cfg.seed, device)?;
    let st = checkpoint::load(&dir, &model, None, device)?;
    Ok((model, cfg, st))
}
