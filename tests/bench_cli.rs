//! `physworld demo`, `bench` and `leaderboard` end to end through the binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn physworld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_physworld")).args(args).output().expect("runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn demo_writes_everything_and_the_gate_catches_a_planted_regression() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("demo");
    // An earlier version's demo left a dataset of another suite (the tiny one) in data/:
    // the demo replaces it with its own suite, saying so.
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tiny.toml");
    let o = physworld(&["generate", "--suite", s(&tiny), "--out", s(&out.join("data"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = physworld(&["demo", "--out", s(&out), "--steps", "3", "--resamples", "100"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("holds another suite") && text(&o).contains("replacing it"), "{}", text(&o));
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("data/meta/info.json")).expect("info")).expect("json");
    assert_eq!(info["suite"]["suite"]["name"], "demo", "{info}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    for row in ["oracle", "observer", "constant-velocity", "chance", "majority", "raw-state", "jepa:"] {
        assert!(stdout.contains(&format!("| {row}")), "leaderboard misses {row}:\n{stdout}");
    }
    for f in
        ["data/meta/info.json", "run/checkpoints/latest", "run/metrics.jsonl", "leaderboard.html", "leaderboard.json"]
    {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let results: Vec<_> = std::fs::read_dir(out.join("results"))
        .expect("results")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(results.len(), 7, "one result file per model");
    let html = std::fs::read_to_string(out.join("leaderboard.html")).expect("html");
    assert!(html.contains("<svg") && html.contains("oracle"));

    // The gate: equal results pass.
    let base = out.join("leaderboard.json");
    let o = physworld(&["leaderboard", s(&out.join("results")), "--check", s(&base)]);
    assert!(o.status.success(), "{}", text(&o));
    // A baseline in which chance answered every contact item right: today's chance regressed.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).expect("read")).expect("json");
    for row in v["rows"].as_array_mut().expect("rows") {
        if row["model"] == "chance" {
            for (key, cell) in row["cells"].as_object_mut().expect("cells") {
                if key.starts_with("contact@") {
                    for score in cell["items"].as_object_mut().expect("items").values_mut() {
                        *score = serde_json::json!(1.0);
                    }
                }
            }
        }
    }
    let planted = tmp.path().join("planted.json");
    std::fs::write(&planted, serde_json::to_vec(&v).expect("json")).expect("write");
    let o = physworld(&["leaderboard", s(&out.join("results")), "--check", s(&planted)]);
    assert!(!o.status.success(), "a planted regression must fail the gate");
    let t = text(&o);
    assert!(t.contains("REGRESSION chance contact"), "{t}");

    // Paired comparison with one reference: every other row on the reference's tasks, the
    // oracle better than chance on contact, majority worse than the oracle.
    let o = physworld(&["leaderboard", "--results", s(&out.join("results")), "--versus", "chance", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["reference"], "chance");
    let verdict = |model: &str, task: &str| {
        v["comparisons"]
            .as_array()
            .expect("comparisons")
            .iter()
            .find(|c| c["model"] == model && c["task"] == task)
            .map(|c| c["verdict"].as_str().expect("verdict").to_string())
    };
    assert_eq!(verdict("oracle", "contact").as_deref(), Some("better"), "{v}");
    assert_eq!(verdict("chance", "contact"), None, "the reference is not compared with itself");
    assert_eq!(verdict("oracle", "forecast"), None, "chance does not forecast: {v}");
    let o = physworld(&["leaderboard", "--results", s(&out.join("results")), "--versus", "oracle"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("| majority | contact | accuracy | 0.500 | 1.000 |"), "{}", text(&o));
    let o = physworld(&["leaderboard", "--results", s(&out.join("results")), "--versus", "orcale"]);
    assert!(!o.status.success() && text(&o).contains("orcale") && text(&o).contains("oracle"), "{}", text(&o));

    // The demo's test split (the tiny suite's) is too small to show anything at chance (16 quadruplets a family,
    // against about 500 needed for ±0.1 at suite power 0.8 over 42 checks): validate-suite
    // says so and exits non-zero, while no trick is off chance.
    let data = out.join("data");
    let o = physworld(&["validate-suite", s(&data), "--json"]);
    assert!(!o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["status"], "underpowered", "{v}");
    let needed = v["units_needed"].as_u64().expect("units_needed");
    assert!(needed > 200, "{needed}");
    assert!(text(&o).contains("lacks the power") && text(&o).contains(&format!("{needed} units")), "{}", text(&o));
    let checks = v["checks"].as_array().expect("checks");
    assert!(checks.len() >= 14, "{v}");
    assert!(checks.iter().any(|c| c["heuristic"] == "largest-jump" && c["family"] == "voe-continuity"));
    for trick in ["movie-position", "cross-movie-match", "first-choice", "last-choice"] {
        assert!(checks.iter().any(|c| c["heuristic"] == trick), "{trick} missing: {v}");
    }
    assert!(checks.iter().all(|c| c["verdict"] != "off-chance"), "{v}");

    // An external model over the JSON Lines protocol: the Python constant-velocity example
    // forecasts what the Rust one does.
    let py = std::env::var("PHYSWORLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks/examples/process_model.py");
    let spec = format!("process:{py} {}", s(&script));
    let r = tmp.path().join("proc");
    let o = physworld(&[
        "bench",
        "--suite",
        s(&data),
        "--model",
        &spec,
        "--model",
        "constant-velocity",
        "--out",
        s(&r),
        "--tasks",
        "forecast,voe",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ade = |i: usize| v[i]["tasks"][0]["metrics"][0]["value"].as_f64().expect("ade");
    assert_eq!(v[0]["tasks"][0]["metrics"][0]["name"], "ade");
    assert!((ade(0) - ade(1)).abs() < 1e-4, "python {} vs rust {}", ade(0), ade(1));
    assert_eq!(v[0]["tasks"][0]["invalid"], 0);
    assert_eq!(v[0]["tasks"][1]["invalid"], 0);
    // A process that answers nonsense (`cat` echoes the requests back) gets every item
    // counted invalid, without a crash, and the run fails (its result file is kept to
    // read); one that dies at once is a clear error.
    let o = physworld(&[
        "bench",
        "--suite",
        s(&data),
        "--model",
        "process:cat",
        "--out",
        s(&r),
        "--tasks",
        "contact",
        "--json",
    ]);
    assert!(!o.status.success(), "every answer invalid must fail the run: {}", text(&o));
    assert!(text(&o).contains("every answer was invalid"), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["tasks"][0]["invalid"], v[0]["tasks"][0]["n_items"]);
    let o = physworld(&["bench", "--suite", s(&data), "--model", "process:exit 3", "--out", s(&r)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("closed its output"), "{}", text(&o));
    // A result already in --out is never replaced silently: bench refuses before any work,
    // naming the file; --force replaces it.
    let cv = r.join("constant-velocity__demo__test.json");
    let before = std::fs::read(&cv).expect("earlier result");
    let again = ["bench", "--suite", s(&data), "--model", "constant-velocity", "--out", s(&r), "--limit", "5"];
    let o = physworld(&again);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("constant-velocity__demo__test.json") && text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read(&cv).expect("kept"), before);
    let o = physworld(&[&again[..], &["--force"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read(&cv).expect("replaced"), before);
    // The model process gets the user's environment, not the runtime settings `physworld`
    // re-executed itself with (model/src/runtime.rs): one the user set passes through,
    // one it added does not.
    let (env_file, parent_file) = (tmp.path().join("model-env.txt"), tmp.path().join("physworld-env.txt"));
    let o = Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["bench", "--suite", s(&data), "--out", s(&r), "--model"])
        .arg(format!(
            "process:env > {}; tr '\\0' '\\n' < /proc/$PPID/environ > {}; exit 3",
            s(&env_file),
            s(&parent_file)
        ))
        .env_remove("CANDLE_NUM_THREADS")
        .env("MIMALLOC_PURGE_DELAY", "250")
        .output()
        .expect("runs");
    assert!(!o.status.success());
    let env = std::fs::read_to_string(&env_file).expect("the model process ran");
    assert!(env.lines().any(|l| l == "MIMALLOC_PURGE_DELAY=250"), "{env}");
    assert!(!env.contains("CANDLE_NUM_THREADS") && !env.contains("PHYSWORLD_RUNTIME_ENV"), "{env}");
    // While `physworld` itself (the shell's parent) did run with the setting it added.
    if cfg!(target_os = "linux") {
        let parent = std::fs::read_to_string(&parent_file).expect("parent environment");
        assert!(parent.lines().any(|l| l == "CANDLE_NUM_THREADS=1"), "{parent}");
        assert!(parent.lines().any(|l| l == "PHYSWORLD_RUNTIME_ENV=CANDLE_NUM_THREADS"), "{parent}");
        assert!(parent.lines().any(|l| l == "MIMALLOC_PURGE_DELAY=250"), "{parent}");
    }

    // Rerunning the demo reuses the dataset and the trained model (stages 1 and 2). What
    // follows is the first run's bench again, so the rerun is stopped when it starts.
    let mut child = Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["demo", "--out", s(&out), "--steps", "3", "--resamples", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut said = String::new();
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("stderr line");
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("[3/4]") {
            break;
        }
    }
    child.kill().expect("stops the rerun");
    child.wait().expect("waits");
    assert!(said.contains("[3/4]"), "the rerun failed before its bench: {said}");
    assert!(said.contains("already holds the demo suite; reusing it"), "{said}");
    assert!(said.contains("already trained for 3 steps; reusing it"), "{said}");

    // A checkpoint trained on the scored split is refused.
    let run = out.join("run");
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).expect("latest");
    let state = run.join("checkpoints").join(latest.trim()).join("state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    st["data"]["splits"] = serde_json::json!(["train", "test"]);
    std::fs::write(&state, serde_json::to_vec(&st).expect("json")).expect("write");
    let spec = format!("jepa:{}", s(&run));
    let o = physworld(&["bench", "--suite", s(&out.join("data")), "--model", &spec, "--out", s(&tmp.path().join("r"))]);
    assert!(!o.status.success());
    assert!(text(&o).contains("overlaps the test items"), "{}", text(&o));
    // The planning tasks, played without the probe path, refuse it too: in bench and in plan.
    let r2 = tmp.path().join("r2");
    let o = physworld(&[
        "bench",
        "--suite",
        s(&out.join("data")),
        "--model",
        &spec,
        "--tasks",
        "plan-push",
        "--out",
        s(&r2),
    ]);
    assert!(!o.status.success() && text(&o).contains("overlaps the test items"), "{}", text(&o));
    let o = physworld(&["plan", "--task", "push", "--data", s(&out.join("data")), "--model", &spec, "--item", "0"]);
    assert!(!o.status.success() && text(&o).contains("overlaps the test items"), "{}", text(&o));
}

#[test]
fn bench_bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = tmp.path().join("r");
    let o = physworld(&["bench", "--suite", "datasets/tiny.toml", "--model", "oracle", "--out", s(&r)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("generate it first"), "{}", text(&o));
    let o = physworld(&["validate-suite", "datasets/tiny.toml"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is a suite file") && text(&o).contains("physworld generate"), "{}", text(&o));
    let o = physworld(&["bench", "--suite", s(tmp.path()), "--model", "llama", "--out", s(&r)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("invalid model `llama`"), "{}", text(&o));
    let o = physworld(&["bench", "--suite", s(tmp.path()), "--model", "oracle", "--out", s(&r), "--tasks", "physics"]);
    assert!(text(&o).contains("invalid task `physics`"), "{}", text(&o));
    let o = physworld(&["bench", "--suite", s(tmp.path()), "--model", "oracle", "--out", s(&r)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a physworld dataset") && text(&o).contains(s(tmp.path())), "{}", text(&o));
    let o = physworld(&["leaderboard", s(tmp.path())]);
    assert!(!o.status.success());
    assert!(text(&o).contains(s(tmp.path())), "{}", text(&o));
}
