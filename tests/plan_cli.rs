//! `physworld plan`: planners on PHYRE-like `launch` tasks, judged by the simulator.

mod common;

use std::path::Path;

use common::{bin, ok};

/// A small planning dataset: `launch` only, test holding out templates 6 and 7.
fn launch_dataset(root: &Path) -> std::path::PathBuf {
    let suite = root.join("launch.toml");
    std::fs::write(
        &suite,
        r#"[suite]
name = "launch-small"
seed = 7
samples_per_file = 64
max_objects = 4

[splits]
train = 4
val = 2
readout = 2
test = 24

[[family]]
name = "launch"
"#,
    )
    .expect("suite");
    let dir = root.join("ds");
    ok(bin().args(["generate", "--suite"]).arg(&suite).arg("--out").arg(&dir).output().expect("runs"));
    dir
}

fn run(ds: &Path, model: &str, extra: &[&str]) -> serde_json::Value {
    let o = ok(bin().args(["plan", "--model", model, "--json", "--data"]).arg(ds).args(extra).output().expect("runs"));
    serde_json::from_slice(&o.stdout).expect("json")
}

/// The oracle solves most items at once, random few, greedy in between; the metrics hang
/// together; reruns are identical but for wall times; `--item` replays one item exactly.
#[test]
fn the_oracle_solves_most_launch_tasks_random_few_and_runs_are_reproducible() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = launch_dataset(tmp.path());
    let oracle = run(&ds, "oracle", &[]);
    let random = run(&ds, "random", &["--attempts", "10"]);
    let greedy = run(&ds, "greedy", &["--attempts", "10"]);
    let items = oracle["items"].as_array().expect("items");
    assert_eq!(items.len(), 24);
    // Held-out templates only on test.
    assert!(items.iter().all(|i| [6, 7].contains(&i["template"].as_u64().expect("template"))));
    let au = |r: &serde_json::Value| r["auccess"].as_f64().expect("auccess");
    let s10 = |r: &serde_json::Value| r["success_at_10"].as_f64().expect("success");
    eprintln!("oracle {} / greedy {} / random {}", au(&oracle), au(&greedy), au(&random));
    // Measured on this dataset (seeds 0 and 1): the oracle solves 0.71 / 0.67 at the first
    // attempt (AUCCESS 0.78 / 0.74); random solves 0.04 / 0.04 within 10 attempts (AUCCESS
    // 0.02 over 10); greedy 0.42 at the first attempt.
    assert!(oracle["success_at_1"].as_f64().expect("s1") >= 0.55, "{oracle:#}");
    assert!(s10(&random) <= 0.2, "random within 10 attempts: {}", s10(&random));
    assert!(au(&oracle) > au(&random) + 0.5);
    assert!(au(&greedy) > au(&random) + 0.2);
    for r in [&oracle, &random, &greedy] {
        let ci = r["auccess_ci"].as_array().expect("ci");
        assert!(ci[0].as_f64() <= r["auccess"].as_f64() && r["auccess"].as_f64() <= ci[1].as_f64(), "{r:#}");
        for i in r["items"].as_array().expect("items") {
            let attempts = i["attempts"].as_u64().expect("attempts");
            match i["first_success"].as_u64() {
                Some(k) => assert!(k == attempts && k >= 1, "{i}"),
                None => assert!(attempts == r["max_attempts"].as_u64().expect("max") && i["auccess"] == 0.0, "{i}"),
            }
        }
    }
    // The same run again: identical but for the wall times.
    let strip = |mut v: serde_json::Value| {
        for i in v["items"].as_array_mut().expect("items") {
            i.as_object_mut().expect("item").remove("seconds");
        }
        v
    };
    assert_eq!(strip(run(&ds, "random", &["--attempts", "10"])), strip(random.clone()));
    // One item alone scores as it did in the whole run.
    let one = run(&ds, "random", &["--attempts", "10", "--item", "3"]);
    let mut a = strip(one)["items"][0].clone();
    let mut b = strip(random)["items"][3].clone();
    a.as_object_mut().expect("a").remove("seconds");
    b.as_object_mut().expect("b").remove("seconds");
    assert_eq!(a, b);
}

#[test]
fn bad_plan_arguments_are_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ds = common::tiny_dataset(tmp.path());
    let before = common::snapshot(&ds);
    let err = |args: &[&str]| {
        let o = bin().arg("plan").args(args).output().expect("runs");
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let d = ds.to_str().expect("utf-8");
    let e = err(&["--model", "orcale", "--data", d]);
    assert!(e.contains("orcale") && e.contains("did you mean `oracle`"), "{e}");
    let e = err(&["--model", "oracle", "--data", d]);
    assert!(e.contains("launch"), "a dataset without launch episodes: {e}");
    let e = err(&["--model", "oracle", "--data", d, "--attempts", "0"]);
    assert!(e.contains("--attempts 0"), "{e}");
    let out = tmp.path().join("run.json");
    std::fs::write(&out, "keep").expect("write");
    let e = err(&["--model", "oracle", "--data", d, "--out", out.to_str().expect("utf-8")]);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "keep");
    assert_eq!(common::snapshot(&ds), before, "the dataset is only read");
}
