//! `physworld scenarios`.

use physworld_sim::Family;

/// Arguments of `scenarios`.
#[derive(clap::Args)]
pub struct Args {
    /// Print machine-readable JSON (names, kinds, descriptions, parameters with defaults).
    #[arg(long)]
    json: bool,
    /// Show one family only, with its parameters' defaults.
    family: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let families: Vec<Family> = match &args.family {
        Some(name) => vec![Family::by_name(name)?],
        None => physworld_sim::families::NAMES.iter().map(|n| Family::by_name(n)).collect::<Result<_, _>>()?,
    };
    if args.json {
        let out: Vec<_> = families
            .iter()
            .map(|f| {
                let info = f.info();
                let defaults = f.params_json();
                serde_json::json!({
                    "name": info.name,
                    "kind": info.kind,
                    "description": info.description,
                    "heldout": info.heldout,
                    "labels": info.labels,
                    "params": info.params.iter().map(|(k, doc)| serde_json::json!({
                        "name": k, "doc": doc, "default": defaults.get(*k),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let detailed = args.family.is_some();
    for f in &families {
        let info = f.info();
        println!("{:<16} {:<9} {}", info.name, format!("{:?}", info.kind).to_lowercase(), info.description);
        if detailed {
            let defaults = f.params_json();
            println!("\n  parameters (override with `simulate --set NAME=VALUE`; ranges are [min, max]):");
            for (k, doc) in info.params {
                let d = defaults.get(*k).map(|v| v.to_string()).unwrap_or_default();
                println!("    {k:<26} {d:<16} {doc}");
            }
            println!("\n  held out for test: {}", info.heldout);
            println!("  labels: {}", info.labels);
        }
    }
    if !detailed {
        println!("\n`physworld scenarios NAME` shows a family's parameters, defaults and held-out region.");
    }
    Ok(())
}
