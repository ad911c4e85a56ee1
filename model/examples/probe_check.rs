//! Does the trained JEPA know where objects will be? A ridge probe from the predictor's
//! output for the last future frame to that frame's object positions, fitted on the
//! `readout` split and scored on `test`, against the same probe on a randomly initialised
//! model, a probe on the raw last observed state, and constant-velocity extrapolation.
//!
//! `cargo run --release -p physworld-model --example probe_check -- DATASET RUN`

use candle_core::Device;
use physworld_model::{Batch, RidgeProbe, WorldModel, load_run};
use physworld_pipeline::{Dataset, EpisodeFrames, WindowSpec};

struct Rows {
    feats: Vec<f32>,
    raw: Vec<f32>,
    cv: Vec<f32>,
    target: Vec<f32>,
}

fn rows(
    model: &WorldModel,
    ds: &Dataset,
    split: &str,
    ctx: usize,
    fut: usize,
    norm: &physworld_model::Normalizer,
) -> anyhow::Result<Rows> {
    let spec = WindowSpec { context: ctx, future: fut, stride: 8, shuffle_buffer: 256, prefetch: 64 };
    let windows: Vec<EpisodeFrames> = ds.windows(split, spec, 1).collect::<Result<_, _>>()?;
    let mut r = Rows { feats: Vec::new(), raw: Vec::new(), cv: Vec::new(), target: Vec::new() };
    let d = model.cfg.dim;
    for chunk in windows.chunks(32) {
        let batch = Batch::new(chunk, norm, &Device::Cpu)?;
        let pred = model.predict(&batch, fut)?; // [B, Tf, S, D]
        let last: Vec<f32> = pred.narrow(1, fut - 1, 1)?.flatten_all()?.to_vec1()?;
        let obs: Vec<f32> = batch.obs.narrow(1, ctx - 1, 1)?.flatten_all()?.to_vec1()?;
        let s = batch.slots;
        for (b, w) in chunk.iter().enumerate() {
            for o in 0..s {
                let (kc, kf) = ((ctx - 1) * s + o, (ctx + fut - 1) * s + o);
                let ok = w.present[kc] && w.visible[kc] && w.present[kf];
                if !ok {
                    continue;
                }
                r.feats.extend_from_slice(&last[(b * s + o) * d..(b * s + o + 1) * d]);
                r.raw.extend_from_slice(&obs[(b * s + o) * 20..(b * s + o + 1) * 20]);
                let dt = fut as f32 / 30.0;
                for c in 0..3 {
                    r.cv.push(w.position[kc * 3 + c] + w.linvel[kc * 3 + c] * dt);
                    r.target.push(w.position[kf * 3 + c]);
                }
            }
        }
    }
    Ok(r)
}

fn err(pred: &[f32], target: &[f32]) -> f32 {
    let n = target.len() / 3;
    (0..n).map(|i| ((0..3).map(|c| (pred[i * 3 + c] - target[i * 3 + c]).powi(2)).sum::<f32>()).sqrt()).sum::<f32>()
        / n as f32
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (data, run) = (&args[1], &args[2]);
    let ds = Dataset::open(data)?;
    let (trained, cfg, state) = load_run(std::path::Path::new(run), &Device::Cpu)?;
    let random = WorldModel::new(&cfg.model, cfg.seed + 1000, &Device::Cpu)?;
    let (ctx, fut) = (cfg.data.context, cfg.data.future);
    let d = cfg.model.dim;
    let report = |name: &str, model: &WorldModel| -> anyhow::Result<(Rows, Rows)> {
        let fit = rows(model, &ds, "readout", ctx, fut, &state.normalizer)?;
        let test = rows(model, &ds, "test", ctx, fut, &state.normalizer)?;
        let p = RidgeProbe::fit(&fit.feats, &fit.target, d, 3, 1.0)?;
        println!(
            "{name:<28} probe on predicted representation: {:.4} m mean error ({} test objects)",
            err(&p.predict(&test.feats), &test.target),
            test.target.len() / 3
        );
        Ok((fit, test))
    };
    let (fit, test) = report("trained JEPA", &trained)?;
    report("randomly initialised", &random)?;
    let raw = RidgeProbe::fit(&fit.raw, &fit.target, 20, 3, 1.0)?;
    println!(
        "{:<28} probe on raw last observed state: {:.4} m",
        "raw state",
        err(&raw.predict(&test.raw), &test.target)
    );
    println!("{:<28} {:.4} m", "constant velocity", err(&test.cv, &test.target));
    Ok(())
}
