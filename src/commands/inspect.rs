//! `physworld inspect`.

use std::path::PathBuf;

use anyhow::bail;
use physworld_pipeline::{LocalStorage, inspect};

/// Arguments of `inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset folder.
    dir: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let r = inspect(&LocalStorage::new(&args.dir))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{}: suite `{}` ({})", r.location, r.suite, r.suite_hash);
        println!(
            "format {}, {}",
            r.format_version.as_deref().unwrap_or("?"),
            if r.finalized { "finalised" } else { "not finalised (run `physworld finalize`)" }
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
        if r.ok() {
            println!("\nall files match their manifests (size, sha256), decode, and have the expected schema");
        }
    }
    if !r.ok() {
        for p in &r.problems {
            eprintln!("problem: {p}");
        }
        bail!("{} problem(s) found in {}", r.problems.len(), r.location);
    }
    Ok(())
}
