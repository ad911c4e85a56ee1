//! End-to-end tests of the `physworld` binary.

use std::process::{Command, Output};

fn physworld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_physworld")).args(args).output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn scenarios_lists_every_family() {
    let o = physworld(&["scenarios"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for &name in physworld_sim::families::NAMES {
        assert!(text.contains(name), "missing {name}");
    }
    let o = physworld(&["scenarios", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(physworld_sim::families::NAMES.len()));
    let dominoes = &v[0];
    assert_eq!(dominoes["name"], "dominoes");
    assert!(dominoes["params"].as_array().is_some_and(|p| p.iter().any(|x| x["name"] == "count")));
    let o = physworld(&["scenarios", "roll"]);
    assert!(stdout(&o).contains("heldout_angle") && stdout(&o).contains("held out for test"));
    assert!(stdout(&o).contains("fov_y_deg"), "every family takes the camera's field of view");
}

#[test]
fn simulate_prints_a_summary_and_the_whole_episode_as_json() {
    let o = physworld(&["simulate", "--scenario", "dominoes", "--seed", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("dominoes seed") && text.contains("91 frames") && text.contains("contact"), "{text}");

    let o = physworld(&["simulate", "--scenario", "dominoes", "--seed", "7", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ep = &v["episodes"][0];
    assert_eq!(ep["family"], "dominoes");
    assert_eq!(ep["frames"].as_array().map(Vec::len), Some(91));
    assert!(ep["frames"][0]["objects"][0]["position"].is_array());
    assert!(ep["labels"]["contact"]["occurred"].is_boolean());
    // The library gives the same episode.
    let family = physworld_sim::Family::by_name("dominoes").expect("family");
    let lib = physworld_sim::generate(&family, 7, physworld_sim::Split::Train, 0).expect("generates");
    let lib: serde_json::Value = serde_json::from_str(&serde_json::to_string(&lib).expect("json")).expect("json");
    assert!(lib == v, "the CLI's episode differs from the library's");
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::Read;
    // `physworld simulate --json | head -c 10`: 260 kB of JSON, the reader leaves after 10 bytes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["simulate", "--scenario", "dominoes", "--seed", "7", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut head = [0u8; 10];
    child.stdout.take().expect("stdout").read_exact(&mut head).expect("reads");
    let o = child.wait_with_output().expect("ends");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(o.status.code(), Some(0), "{err}");
}

#[test]
fn simulate_batch_reports_throughput_independent_of_threads() {
    let run = |threads: &str| {
        let o = physworld(&[
            "simulate",
            "--scenario",
            "drop",
            "--set",
            "count=8",
            "--episodes",
            "6",
            "--threads",
            threads,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("json")
    };
    let (one, two) = (run("1"), run("2"));
    for v in [&one, &two] {
        assert_eq!(v["episodes"], 6);
        assert!(v["episodes_per_second"].as_f64().is_some_and(|x| x > 0.0));
        assert!(v["physics_steps_per_second"].as_f64().is_some_and(|x| x > 0.0));
    }
    assert_eq!(one["labels"], two["labels"]);
    assert_eq!(one["rejected"], two["rejected"]);
    assert_eq!(one["content_sha256"], two["content_sha256"], "identical data whatever the thread count");
    assert_eq!(one["content_sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let o = physworld(&["simulate", "--scenario", "dominos"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unknown scenario family `dominos`") && stderr(&o).contains("dominoes"));

    let o = physworld(&["simulate", "--scenario", "drop", "--set", "height=[2,1]"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("drop.height") && e.contains("[2, 1]") && e.contains("min <= max"), "{e}");

    let o = physworld(&["simulate", "--scenario", "drop", "--set", "height"]);
    assert!(stderr(&o).contains("expected NAME=VALUE"));

    let o = physworld(&["simulate", "--scenario", "drop", "--split", "dev"]);
    assert!(stderr(&o).contains("unknown split `dev`"));
    // No panics anywhere.
    assert!(!e.contains("panicked"));
}

/// `simulate --scene`: a scene file (JSON or TOML) with only the required fields, simulated
/// as given; the episode's physics follows the file (a ball released 1 m above the floor
/// lands after sqrt(2 h / g)), and bad files are refused naming the field.
#[test]
fn simulate_runs_a_scene_file_and_refuses_bad_ones_by_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let json = dir.path().join("ball.json");
    let ball = |h: f32| {
        format!(
            r#"{{"sim": {{"physics_hz": 240, "fps": 240, "duration_s": 1.0}},
                "statics": [{{"name": "floor", "role": "floor", "half_extents": [5, 0.5, 5], "position": [0, -0.5, 0]}}],
                "objects": [{{"name": "ball", "shape": {{"kind": "sphere", "radius": 0.1}}, "mass": {{"kg": 1.0}},
                              "position": [0, {}, 0], "restitution": 0.0}}]}}"#,
            h + 0.1
        )
    };
    std::fs::write(&json, ball(1.0)).expect("write");
    let o = physworld(&["simulate", "--scene", json.to_str().expect("utf8"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("episode json");
    assert_eq!(ep["family"], "scene");
    let frames = ep["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 241);
    let touches = |f: &serde_json::Value| f["contacts"].as_array().is_some_and(|c| !c.is_empty());
    let landed = frames.iter().position(touches).expect("the ball lands") as f32 / 240.0;
    let expected = (2.0f32 / 9.81).sqrt();
    assert!((landed - expected).abs() <= 2.0 / 240.0, "landed at {landed} s, expected {expected} s");
    // Released 0.5 m up, it lands sooner: the file is what runs.
    std::fs::write(&json, ball(0.5)).expect("write");
    let o = physworld(&["simulate", "--scene", json.to_str().expect("utf8"), "--json"]);
    let ep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("episode json");
    let sooner = ep["frames"].as_array().expect("frames").iter().position(touches).expect("lands") as f32 / 240.0;
    assert!((sooner - (1.0f32 / 9.81).sqrt()).abs() <= 2.0 / 240.0, "landed at {sooner} s");
    // The summary names the object.
    let o = physworld(&["simulate", "--scene", json.to_str().expect("utf8")]);
    assert!(o.status.success() && stdout(&o).contains("ball:") && stdout(&o).contains("241 frames"), "{}", stdout(&o));

    // TOML, with a misspelt field: refused, naming it and what is allowed.
    let toml = dir.path().join("ball.toml");
    let run_toml = |body: &str| {
        std::fs::write(&toml, body).expect("write");
        physworld(&["simulate", "--scene", toml.to_str().expect("utf8")])
    };
    let ball = |radius: &str, extra: &str| {
        format!(
            "[[objects]]\nname = \"ball\"\nshape = {{ kind = \"sphere\", radius = {radius} }}\nmass = {{ kg = 1.0 }}\nposition = [0, 1, 0]\n{extra}"
        )
    };
    let o = run_toml(&ball("0.1", "fricton = 0.3\n"));
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("fricton") && e.contains("friction"), "{e}");
    // A value out of range: the field's path, the value, the allowed range.
    let o = run_toml(&ball("-1", ""));
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("objects[0].shape.radius") && e.contains("-1"), "{e}");
    // No objects, a missing file, and --scene with a family's flags.
    let o = run_toml("objects = []\n");
    assert!(!o.status.success() && stderr(&o).contains("`objects` is empty"), "{}", stderr(&o));
    let missing = dir.path().join("nope.json");
    let o = physworld(&["simulate", "--scene", missing.to_str().expect("utf8")]);
    assert!(!o.status.success() && stderr(&o).contains("nope.json"), "{}", stderr(&o));
    let o = physworld(&["simulate", "--scene", json.to_str().expect("utf8"), "--scenario", "drop"]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = physworld(&["simulate"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--scene") && stderr(&o).contains("--scenario"),
        "{}",
        stderr(&o)
    );
    // A misspelt field where serde reads leniently (a static's, as datasets store statics):
    // refused by path.
    let statics = std::fs::read_to_string(&json).expect("read").replace("\"role\"", "\"rol\": 1, \"role\"");
    std::fs::write(&json, statics).expect("write");
    let o = physworld(&["simulate", "--scene", json.to_str().expect("utf8")]);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("statics[0].rol") && e.contains("half_extents"), "{e}");
    assert!(!e.contains("panicked"));
}
