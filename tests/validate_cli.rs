//! `physworld validate-suite` on the shipped VoE suite, with the power to show every trick at
//! chance and the ideal observer solving every family: the one suite CI can afford at full
//! size (its `test` split, 500 quadruplets per family; `--episodes 10` shrinks only `train`).

use std::process::{Command, Output};

fn physworld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_physworld")).args(args).output().expect("runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn intphys_shows_every_trick_at_chance_with_power_is_solvable_and_blinding_or_a_planted_leak_fails_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("intphys");
    let data = data.to_str().expect("utf-8");
    let o = physworld(&["generate", "--suite", "datasets/intphys.toml", "--out", data, "--episodes", "10"]);
    assert!(o.status.success(), "{}", text(&o));

    let o = physworld(&["validate-suite", data, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["status"], "passed", "{v}");
    let needed = v["units_needed"].as_u64().expect("units_needed");
    let checks = v["checks"].as_array().expect("checks");
    for c in checks {
        if c["family"] == "voe-gravity" {
            // Violations in view by nature: reported, not judged.
            assert_eq!(c["verdict"], "tagged-visible", "{c}");
            continue;
        }
        assert_eq!(c["verdict"], "at-chance", "{c}");
        assert!(c["n"].as_u64().expect("n") >= needed, "{c}");
        assert!((c["value"].as_f64().expect("value") - 0.5).abs() < 0.1, "{c}");
    }
    // The other half: the ideal observer solves every family from the observations alone.
    let solv = v["solvability"].as_array().expect("solvability");
    for family in ["voe-permanence", "voe-continuity", "voe-shape", "voe-solidity", "voe-gravity"] {
        let c = solv.iter().find(|c| c["family"] == family).unwrap_or_else(|| panic!("{family} not checked"));
        assert_eq!(c["solvable"], true, "{c}");
        assert!(c["value"].as_f64().expect("value") >= 0.8, "{c}");
    }
    // Physical and structural tricks on every judged family, slot-keyed ones included.
    for trick in [
        "object-count",
        "velocity-vs-finite-differences",
        "movie-position",
        "cross-movie-match",
        "lowest-slot",
        "highest-slot",
        "listed-slot-changes",
    ] {
        for family in ["voe-permanence", "voe-continuity", "voe-shape", "voe-solidity"] {
            assert!(checks.iter().any(|c| c["heuristic"] == trick && c["family"] == family), "{trick} on {family}");
        }
    }

    // Blinded to the statics (walls, occluders), the observer cannot solve what needs them:
    // the solvability half catches an observation that leaves out what answers depend on.
    let o = physworld(&["validate-suite", data, "--json", "--blind-statics"]);
    assert!(!o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["status"], "failed", "{v}");
    let unsolved: Vec<&str> = v["solvability"]
        .as_array()
        .expect("solvability")
        .iter()
        .filter(|c| c["verdict"] == "not-solvable")
        .map(|c| c["family"].as_str().expect("family"))
        .collect();
    assert!(unsolved.contains(&"voe-solidity") && unsolved.contains(&"voe-permanence"), "{unsolved:?}");
    assert!(!unsolved.contains(&"voe-gravity"), "gravity needs no statics: {unsolved:?}");

    // The gravity family judged instead of tagged: the free-fall residual detects a floating
    // object in view, and validate-suite fails the suite (with power, so not by chance).
    let file = tmp.path().join("gravity-untagged.toml");
    std::fs::write(
        &file,
        "[suite]\nname = \"gravity-untagged\"\nseed = 2018\nsamples_per_file = 256\nmax_objects = 4\n\n\
         [splits]\ntrain = 10\nval = 5\nreadout = 5\ntest = 500\n\n[[family]]\nname = \"voe-gravity\"\n",
    )
    .expect("write");
    let leaky = tmp.path().join("leaky");
    let (file, leaky) = (file.to_str().expect("utf-8"), leaky.to_str().expect("utf-8"));
    let o = physworld(&["generate", "--suite", file, "--out", leaky]);
    assert!(o.status.success(), "{}", text(&o));
    let o = physworld(&["validate-suite", leaky, "--json"]);
    assert!(!o.status.success(), "a leak must fail the suite: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["status"], "failed", "{v}");
    let failed: Vec<&serde_json::Value> =
        v["checks"].as_array().expect("checks").iter().filter(|c| c["verdict"] == "off-chance").collect();
    assert!(
        failed.iter().any(|c| c["heuristic"] == "free-fall-residual" && c["family"] == "voe-gravity"),
        "{failed:?}"
    );
    assert!(failed.iter().all(|c| c["family"] == "voe-gravity"), "{failed:?}");
}
