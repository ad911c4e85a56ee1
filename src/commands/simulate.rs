//! `physworld simulate`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use physworld_sim::{Episode, Family, Sample, Scene, Split, content_sha256, generate, generate_batch};
use serde_json::{Map, Value, json};

/// Arguments of `simulate`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["scenario", "scene"])))]
pub struct Args {
    /// Scenario family (see `physworld scenarios`).
    #[arg(long)]
    scenario: Option<String>,
    /// Simulate this scene file instead of a family's sample: JSON, or TOML by its `.toml`
    /// extension, in the format of the sim crate's `Scene` (y up, metres, kilograms,
    /// seconds). Only `objects` is required; each object needs `name`, `shape` (e.g.
    /// `{"kind": "sphere", "radius": 0.1}`), `mass` (`{"kg": 1.0}`) and `position`; timing
    /// (`sim`), statics, camera and the rest default. There is no floor unless the file
    /// has one (a static box with role `floor` whose top face is y = 0): without it objects
    /// fall until the health check stops the episode. Unknown fields are refused. Prints a
    /// summary, or the episode with every frame with --json (sim/README.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["scenario", "set", "episodes", "threads", "index", "split", "seed"])]
    scene: Option<PathBuf>,
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
    /// Print JSON: the whole sample (its episodes with every frame) for one sample, the
    /// batch summary with --episodes, or the episode of a --scene file.
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
    if let Some(path) = &args.scene {
        return run_scene(path, args.json);
    }
    let Some(scenario) = &args.scenario else { bail!("--scenario or --scene is required") };
    let family = Family::with_overrides(scenario, &parse_overrides(&args.set)?)?;
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
        println!("{} seed {} (attempt {}), split {}: {}", family.name(), ep.seed, ep.attempt, ep.split, extent(ep));
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

/// `simulate --scene FILE`: one episode of a scene file.
fn run_scene(path: &Path, json: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the scene file {}", path.display()))?;
    // Read twice: as a scene (serde's errors carry the line), and as it was written, to
    // refuse fields the scene does not have.
    let (scene, given): (Scene, Value) = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        let what = || format!("scene file {} (TOML)", path.display());
        (toml::from_str(&text).with_context(what)?, toml::from_str(&text).with_context(what)?)
    } else {
        let what = || format!("scene file {} (JSON)", path.display());
        (serde_json::from_str(&text).with_context(what)?, serde_json::from_str(&text).with_context(what)?)
    };
    scene.check_fields(&given).with_context(|| format!("scene file {}", path.display()))?;
    if scene.objects.is_empty() {
        bail!("scene file {}: `objects` is empty; expected at least one object", path.display());
    }
    let mut episode = physworld_sim::simulate(&scene)
        .with_context(|| format!("scene file {}", path.display()))?
        .map_err(|r| anyhow::anyhow!("scene file {}: the episode failed a health check: {r}", path.display()))?;
    episode.family = "scene".into();
    if json {
        println!("{}", serde_json::to_string(&episode)?);
    } else {
        print_scene_summary(path, &episode);
    }
    Ok(())
}

/// "N frames at F fps (S physics steps at H Hz), K objects".
fn extent(ep: &Episode) -> String {
    format!(
        "{} frames at {} fps ({} physics steps at {} Hz), {} object{}",
        ep.frames.len(),
        ep.fps,
        ep.physics_steps,
        ep.physics_hz,
        ep.num_objects(),
        if ep.num_objects() == 1 { "" } else { "s" }
    )
}

fn print_scene_summary(path: &Path, ep: &Episode) {
    println!("scene {}: {}", path.display(), extent(ep));
    let (Some(first), Some(last)) = (ep.frames.first(), ep.frames.last()) else { return };
    for (i, o) in ep.objects.iter().enumerate() {
        let (a, b) = (first.objects[i].position, last.objects[i].position);
        let me = physworld_sim::Body::Object(i as u16);
        let contacts = ep.frames.iter().filter(|f| f.contacts.iter().any(|c| c.a == me || c.b == me)).count();
        println!(
            "  {}: [{:.3}, {:.3}, {:.3}] -> [{:.3}, {:.3}, {:.3}] m, in contact in {contacts} frames",
            o.name, a[0], a[1], a[2], b[0], b[1], b[2]
        );
    }
    if let Some(c) = ep.labels.contact {
        println!(
            "  contact: {}{}",
            c.occurred,
            c.first_time.map(|t| format!(" (first at {t:.3} s)")).unwrap_or_default()
        );
    }
}
