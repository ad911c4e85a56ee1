//! `physworld scenarios`.

use physworld_sim::Family;
use physworld_sim::families::COMMON_PARAMS;

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
                let defaults = as_f32(f.params_json());
                serde_json::json!({
                    "name": info.name,
                    "kind": info.kind,
                    "description": info.description,
                    "heldout": info.heldout,
                    "labels": info.labels,
                    "params": info.params.iter().chain(COMMON_PARAMS).map(|(k, doc)| serde_json::json!({
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
            let defaults = as_f32(f.params_json());
            println!("\n  parameters (override with `simulate --set NAME=VALUE`; ranges are [min, max]):");
            for (k, doc) in info.params.iter().chain(COMMON_PARAMS) {
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

/// Parameters are f32: show each float as the shortest decimal that reads back as the same
/// f32 (`0.4`, not the f64 widening `0.4000000059604645`).
fn as_f32(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(|x| (x as f32).to_string().parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n), Value::Number),
        Value::Array(a) => Value::Array(a.into_iter().map(as_f32).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, as_f32(v))).collect()),
        other => other,
    }
}
