//! `physworld inspect`.

use anyhow::bail;
use physworld_pipeline::{RecordingReport, inspect, inspect_recording, is_recording, open_storage};

/// Arguments of `inspect`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: super::DataArg,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args
        .data
        .existing("a dataset folder from `physworld generate` or a recording from `physworld plan --record`")?;
    let storage = open_storage(dir)?;
    if is_recording(storage.as_ref())? {
        return recording(&inspect_recording(storage.as_ref())?, args.json);
    }
    let r = inspect(storage.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}: suite `{}` ({})", r.location, r.suite, r.suite_hash);
        println!(
            "format {}, generator {}, physworld {}{}, {}",
            r.format_version.as_deref().unwrap_or("?"),
            r.generator_version.as_deref().unwrap_or("?"),
            r.physworld_version.as_deref().unwrap_or("?"),
            match r.enhanced_determinism {
                Some(true) => ", bitwise reproducible across machines",
                Some(false) => ", reproducible on this machine and build only",
                None => "",
            },
            if r.finalized {
                "finalised".to_string()
            } else {
                format!(
                    "not finalised: an interrupted `generate` continues with `physworld generate --suite FILE --out {} --resume`; a sharded run needs `physworld finalize --data {}` once every worker is done",
                    r.location, r.location
                )
            }
        );
        for (name, s) in &r.splits {
            println!(
                "\n{name}: {}/{} files, {} episodes, {} frames",
                s.files_found, s.files_expected, s.episodes, s.frames
            );
            for (fam, n) in &s.families {
                let labels: Vec<String> = s
                    .labels
                    .get(fam)
                    .map(|b| {
                        b.iter()
                            .map(|(k, [p, n])| format!("{k} {p}/{n} ({:.0}%)", 100.0 * *p as f64 / (*n).max(1) as f64))
                            .collect()
                    })
                    .unwrap_or_default();
                println!("  {fam:<16} {n:>6} episodes  {}", labels.join(", "));
            }
        }
        files(&r.files, r.ok(), "their manifests (size, sha256), decode, and have the expected schema");
    }
    verdict(&r.problems, &r.location)
}

/// The files table, and the all-clear when nothing is wrong (`matched` says against what).
fn files(files: &[physworld_pipeline::FileEntry], ok: bool, matched: &str) {
    if !files.is_empty() {
        println!("\nfiles (rows, bytes, sha256):");
        for f in files {
            println!("  {:<44} {:>8} {:>10}  {}", f.path, f.rows, f.bytes, f.sha256);
        }
    }
    if ok {
        println!("\nall files match {matched}");
    }
}

/// Each problem on stderr, and an error when there is any.
fn verdict(problems: &[String], location: &str) -> anyhow::Result<()> {
    if !problems.is_empty() {
        for p in problems {
            eprintln!("problem: {p}");
        }
        bail!("{} problem(s) found in {location}", problems.len());
    }
    Ok(())
}

/// A recording's report (`physworld plan --record`).
fn recording(r: &RecordingReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        let a = &r.about;
        let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        println!(
            "{}: a recording of `{}` by `{}` (seed {})",
            r.location,
            text(&a["item"]),
            text(&a["planner"]),
            a["seed"]
        );
        println!(
            "from {} (suite {}), {} episode {}",
            text(&a["source"]["dataset"]),
            text(&a["source"]["suite_hash"]),
            text(&a["source"]["split"]),
            a["source"]["episode_index"]
        );
        println!("outcome: {}", a["outcome"]);
        println!("\nepisodes:");
        for e in &r.episodes {
            let label = |name: &str, v: Option<bool>| v.map(|v| format!(", {name} {v}")).unwrap_or_default();
            println!(
                "  {:>4}  {:<10} {:>4} frames{}{}",
                e.episode_index,
                e.family,
                e.frames,
                label("goal reached", e.goal_reached),
                label("contact", e.contact)
            );
        }
        files(&r.files, r.ok(), "meta/record.json (size, sha256), decode, and have the dataset schema");
    }
    verdict(&r.problems, &r.location)
}
