//! Issue 23's claim at CI size, through the binary: a JEPA trained on a small `physion`
//! carries more about contact than the raw state does, on the same held-out items.

#[allow(dead_code)] // the shared helpers this file does not call
mod common;

use std::path::Path;

use common::{bin, ok};

/// `datasets/physion.toml` with smaller splits: the same families, seed and held-out
/// regions.
fn small_physion(root: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/physion.toml");
    let text = std::fs::read_to_string(shipped).expect("physion.toml");
    let mut replaced = 0;
    let text: String = text
        .lines()
        .map(|l| {
            let new = match l {
                "train = 14000" => "train = 2000",
                "val = 1400" => "val = 0",
                "test = 15400" => "test = 1400",
                _ => return format!("{l}\n"),
            };
            replaced += 1;
            format!("{new}\n")
        })
        .collect();
    assert_eq!(replaced, 3, "datasets/physion.toml's splits changed: update this test's sizes");
    let suite = root.join("physion-ci.toml");
    std::fs::write(&suite, text).expect("suite");
    let data = root.join("data");
    ok(bin().args(["generate", "--suite"]).arg(&suite).arg("--out").arg(&data).output().expect("runs"));
    data
}

/// `train` with the setting of BENCHMARKS.md's physion tables (the tiny preset without the
/// shape kind and the scene tokens: `--shape none --scene none`) for `steps` steps.
fn train(data: &Path, run: &Path, steps: &str) {
    ok(bin()
        .args(["train", "--preset", "tiny", "--steps", steps, "--seed", "0", "--scene", "none", "--shape", "none"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(run)
        .output()
        .expect("runs"));
}

/// Steps of training, and the margins asserted on contact accuracy (paired, per item):
/// measured over 3 seeds in BENCHMARKS.md ("The claim in CI"), asserted below two thirds
/// of the smallest.
const STEPS: &str = "300";
const OVER_RAW_STATE: f64 = 0.07;
const OVER_TWIN: f64 = 0.04;
/// The JEPA and the raw state both read with the pair relation (`pairs=on`: the squared
/// difference of the two objects' features, the closeness a linear probe cannot form from
/// raw positions).
const OVER_RAW_STATE_WITH_PAIRS: f64 = 0.045;

/// The tiny JEPA trained 300 steps on 2000 episodes of the physion families beats the
/// raw-state probe on contact on 1400 held-out `test` episodes (904 items), paired per item
/// through `leaderboard --versus`, and so by training: its untrained twin (3 steps, the same
/// config and seed) does worse. A linear probe cannot read closeness from raw positions,
/// so the margin is also asserted with the pair relation given to both. Outcome is not
/// asserted: at this size, as at 2000 steps on the full suite, the JEPA ties `raw-state`
/// there under these readouts. (Under the attentive probe there is no contact margin at
/// this size: BENCHMARKS.md, "The attentive probe".)
#[test]
fn a_trained_jepa_beats_the_raw_state_probe_on_contact_in_held_out_scenes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = small_physion(tmp.path());
    let (run, twin) = (tmp.path().join("run"), tmp.path().join("twin"));
    train(&data, &run, STEPS);
    train(&data, &twin, "3");
    let res = tmp.path().join("res");
    let (jepa, untrained) = (format!("jepa:{}", run.display()), format!("jepa:{}", twin.display()));
    let paired = format!("jepa,pairs=on:{}", run.display());
    let mut bench = bin();
    bench.args(["bench", "--split", "test", "--tasks", "contact"]);
    for model in ["raw-state", "raw-state,pairs=on", &jepa, &untrained, &paired] {
        bench.args(["--model", model]);
    }
    ok(bench.arg("--data").arg(&data).arg("--out").arg(&res).output().expect("runs"));
    let versus = |model: &str, reference: &str| -> serde_json::Value {
        let o = ok(bin()
            .args(["leaderboard", "--versus", reference, "--json", "--results"])
            .arg(&res)
            .output()
            .expect("runs"));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["comparisons"]
            .as_array()
            .expect("comparisons")
            .iter()
            .find(|c| c["model"] == model && c["task"] == "contact")
            .unwrap_or_else(|| panic!("no contact comparison of {model} against {reference}: {v:#}"))
            .clone()
    };
    let claims = [
        (jepa.as_str(), "raw-state", OVER_RAW_STATE),
        (jepa.as_str(), untrained.as_str(), OVER_TWIN),
        (paired.as_str(), "raw-state,pairs=on", OVER_RAW_STATE_WITH_PAIRS),
    ];
    for (model, reference, margin) in claims {
        let c = versus(model, reference);
        let diff = c["test"]["mean_diff"].as_f64().expect("mean_diff");
        eprintln!("contact, {model} against {reference}: {diff:+.3}");
        assert!(diff > margin, "contact: {model} against {reference} {diff:+.3}, asserted > {margin}: {c:#}");
        assert_eq!(c["verdict"], "better", "{c:#}");
    }
}
