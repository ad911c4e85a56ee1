//! `physworld simulate`.

use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use physworld_sim::{Family, Sample, Split, content_sha256, generate, generate_batch};
use serde_json::{Map, Value, json};

/// Arguments of `simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario family (see `physworld scenarios`).
    #[arg(long)]
    scenario: String,
    /// Suite seed; the episode's own seed is a stable hash of (seed, family, split, index,
    /// attempt).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Split: train, val, readout or test (test draws from the family's held-out region).
    #[arg(long, default_value = "train")]
    split: Split,
    /// Index of the (first) sample.
    #[arg(long, default_value_t = 0)]
    index: u64,
    /// Override a family parameter, e.g. `--set count=8` or `--set 'height=[0.5,1.0]'`
    /// (values are JSON; repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Simulate this many samples (indices index..index+N) and report throughput instead
    /// of one episode.
    #[arg(long, default_value_t = 1)]
    episodes: u64,
    /// Worker threads for --episodes (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON: the whole sample (its episodes with every frame) for one sample, or the
    /// batch summary with --episodes.
    #[arg(long)]
    json: bool,
}

fn parse_overrides(sets: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut m = Map::new();
    for s in sets {
        let Some((k, v)) = s.split_once('=') else {
            bail!("--set `{s}`: expected NAME=VALUE, e.g. count=8 or 'height=[0.5,1.0]'");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        m.insert(k.trim().to_string(), value);
    }
    Ok(m)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let family = Family::with_overrides(&args.scenario, &parse_overrides(&args.set)?)?;
    let split = args.split;
    if args.episodes == 0 {
        bail!("--episodes 0: expected at least 1");
    }
    if args.episodes == 1 && args.threads.is_none() {
        let sample = generate(&family, args.seed, split, args.index)?;
        if args.json {
            println!("{}", serde_json::to_string(&sample)?);
        } else {
            print_summary(&family, &sample);
        }
        return Ok(());
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads 0: expected at least 1");
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("building the thread pool")?;
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(args.episodes) };
    bar.set_style(super::bar_style("{spinner} {bar:30} {pos}/{len} samples  {rate}  eta {eta}"));
    let start = Instant::now();
    let (samples, report) = pool.install(|| {
        generate_batch(&family, args.seed, split, args.index..args.index + args.episodes, &|_| bar.inc(1))
    })?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let content_sha256 = content_sha256(&samples)?;
    let mut balance = physworld_pipeline::Balance::new();
    for e in samples.iter().flat_map(|s| &s.episodes) {
        physworld_pipeline::count_labels(&mut balance, e);
    }
    let labels: Map<String, Value> =
        balance.iter().map(|(name, [pos, n])| (name.clone(), json!({"positive": pos, "labelled": n}))).collect();
    let summary = json!({
        "family": family.name(),
        "split": split.as_str(),
        "seed": args.seed,
        "samples": report.samples,
        "episodes": report.episodes,
        "rejected": report.rejected_total(),
        "rejected_by_reason": report.rejected,
        "threads": threads,
        "seconds": secs,
        "episodes_per_second": report.episodes as f64 / secs,
        "physics_steps_per_second": report.physics_steps as f64 / secs,
        "labels": labels,
        "content_sha256": content_sha256,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "simulated {} samples ({} episodes) of `{}` in {:.2} s on {} threads: {:.1} episodes/s, {:.0} physics steps/s",
            report.samples,
            report.episodes,
            family.name(),
            secs,
            threads,
            report.episodes as f64 / secs,
            report.physics_steps as f64 / secs
        );
        println!("rejected attempts: {}", super::rejections(&report.rejected));
        println!("content sha256: {content_sha256}");
        for (name, v) in &labels {
            println!("label {name}: {}/{} positive", v["positive"], v["labelled"]);
        }
    }
    Ok(())
}

fn print_summary(family: &Family, sample: &Sample) {
    for ep in &sample.episodes {
        let l = &ep.labels;
        println!(
            "{} seed {} (attempt {}), split {}: {} frames at {} fps ({} physics steps at {} Hz), {} object{}",
            family.name(),
            ep.seed,
            ep.attempt,
            ep.split,
            ep.frames.len(),
            ep.fps,
            ep.physics_steps,
            ep.physics_hz,
            ep.num_objects(),
            if ep.num_objects() == 1 { "" } else { "s" }
        );
        if let Some(q) = l.quadruplet {
            println!("  quadruplet member {} ({})", q.member, if q.possible { "possible" } else { "impossible" });
        }
        if let Some(c) = l.contact {
            println!(
                "  contact {} -> {}: {}{}",
                ep.objects[c.query.agent].name,
                match c.query.patient {
                    physworld_sim::ContactTarget::Object(o) => ep.objects[o].name.clone(),
                    physworld_sim::ContactTarget::Zone(z) => format!("goal zone {z}"),
                },
                c.occurred,
                c.first_time.map(|t| format!(" (first at {t:.3} s)")).unwrap_or_default()
            );
        }
        if let Some(v) = l.tower_fell {
            println!("  tower fell: {v}");
        }
        if let Some(v) = l.goal_reached {
            println!("  goal reached: {v}");
        }
        if let Some(p) = ep.placement {
            println!("  placement: x {:.3} y {:.3} r {:.3}", p.x, p.y, p.radius);
        }
        if let Some(o) = l.first_floor_contact {
            println!("  first to hit the floor: {}", ep.objects[o].name);
        }
        if let Some(v) = &l.violation {
            println!(
                "  violation: {} ({}) of {} at frame {}, occluded {}",
                v.kind.as_str(),
                v.detail,
                ep.objects[v.object].name,
                v.frame,
                v.occluded
            );
        }
        let visible: usize = ep.frames.iter().map(|f| f.objects.iter().filter(|o| o.visible).count()).sum();
        let present: usize = ep.frames.iter().map(|f| f.objects.iter().filter(|o| o.present).count()).sum();
        println!("  visible object-frames: {visible}/{present}");
    }
    if sample.rejected.is_empty() {
        println!("rejected attempts: none");
    } else {
        println!("rejected attempts: {}", sample.rejected.len());
    }
    for r in &sample.rejected {
        println!("  {r}");
    }
}
