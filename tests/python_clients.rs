//! Real clients read a generated dataset: pyarrow, polars, duckdb and Hugging Face
//! `datasets` (`tests/python/check_dataset.py`). The expected values come from the Rust
//! reader. The interpreter is `$PHYSWORLD_PYTHON` (set by `.ci/run` to a venv with
//! `tests/python/requirements.txt`), else `python3`; missing packages fail the test.

use std::path::Path;
use std::process::Command;

use physworld_pipeline::Dataset;
use serde_json::json;

#[test]
fn pyarrow_polars_duckdb_and_datasets_read_what_rust_wrote() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("tiny");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tiny.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_physworld"))
        .args(["generate", "--suite"])
        .arg(&tiny)
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let ds = Dataset::open(&dir).expect("opens");
    let s = ds.slots();
    let mut splits = serde_json::Map::new();
    for (name, info) in &ds.info.splits {
        splits.insert(name.clone(), json!({ "frames": info.frames, "episodes": info.episodes }));
    }
    // Probe: frame 5 of the first push episode in val (it has actions and a zone).
    let e = ds.split("val").find(|e| e.family == "push").expect("a push episode");
    let f = ds.episode(e.episode_index).expect("reads");
    let t = 5;
    let want = json!({
        "splits": splits,
        "max_objects": s,
        "probe": {
            "split": "val",
            "episode_index": e.episode_index,
            "frame_index": t,
            "position": f.position[t * s * 3..(t + 1) * s * 3],
            "present": f.present[t * s..(t + 1) * s],
            "timestamp": t as f32 / 30.0,
        },
        "episodes_probe": {
            "episode_index": e.episode_index,
            "family": e.family,
            "label.contact": e.contact,
            "label.goal_reached": e.goal_reached,
        },
    });
    let expect = tmp.path().join("expect.json");
    std::fs::write(&expect, serde_json::to_vec(&want).expect("json")).expect("write");

    let python = std::env::var("PHYSWORLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_dataset.py");
    let o = Command::new(&python).arg(&script).arg(&dir).arg(&expect).output().expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "{python} {}: {out}\n{err}\n(install the clients: pip install -r tests/python/requirements.txt)",
        script.display()
    );
    for client in ["pyarrow", "polars", "duckdb", "datasets"] {
        assert!(out.contains(&format!("{client} ")), "{client} did not report: {out}");
    }
    assert!(out.contains("all checks passed"), "{out}");
}

/// `benchmarks/compare/property_ceiling.py` (ridge only, NumPy + pyarrow) selects the same
/// objects as `physworld probe` and reports finite R² for both properties.
#[test]
fn property_ceiling_script_scores_the_rows_probe_uses() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("tiny");
    let run = tmp.path().join("run");
    let bin = || Command::new(env!("CARGO_BIN_EXE_physworld"));
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tiny.toml");
    for args in [
        vec!["generate".into(), "--suite".into(), tiny.into_os_string(), "--out".into(), dir.clone().into_os_string()],
        vec![
            "train".into(),
            "--steps".into(),
            "1".into(),
            "--json".into(),
            "--data".into(),
            dir.clone().into_os_string(),
            "--out".into(),
            run.clone().into_os_string(),
        ],
    ] {
        let o = bin().args(args).output().expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let feats = tmp.path().join("feats");
    let o = bin()
        .args(["probe", "--json", "--data"])
        .arg(&dir)
        .arg("--run")
        .arg(&run)
        .arg("--features-out")
        .arg(&feats)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report");

    let python = std::env::var("PHYSWORLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks/compare/property_ceiling.py");
    let o = Command::new(&python).arg(&script).arg(&dir).args(["--epochs", "0"]).output().expect("python runs");
    assert!(o.status.success(), "{python} {}: {}", script.display(), String::from_utf8_lossy(&o.stderr));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(c["eval_rows"], report["moving_objects"], "{c}\n{report}");
    assert!(c["fit_rows"].as_u64().expect("fit rows") > 10, "{c}");
    for k in ["ridge_last_state", "ridge_context_frames_and_actions"] {
        let r2: Vec<f64> = serde_json::from_value(c[k]["r2"].clone()).expect("r2");
        assert!(r2.len() == 2 && r2.iter().all(|v| v.is_finite() && *v <= 1.0), "{k}: {c}");
    }
    // The exported probe features read back in Python: the same moving rows, and ridge
    // probes on them (no torch needed with --epochs 0).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks/compare/probe_features.py");
    let o = Command::new(&python)
        .arg(&script)
        .arg(&feats)
        .args([
            "--fit",
            "readout",
            "--eval",
            "test",
            "--epochs",
            "0",
            "--features",
            "trained_predictor_state,raw_context",
        ])
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{python} {}: {}", script.display(), String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines[0]["moving_rows"]["eval"], report["moving_objects"], "{lines:?}");
    assert_eq!(lines[0]["moving_rows"]["fit"], c["fit_rows"], "{lines:?}");
    for (line, k) in lines[1..].iter().zip(["trained_predictor_state", "raw_context"]) {
        let r2: Vec<f64> = serde_json::from_value(line[k]["ridge"].clone()).expect("r2");
        assert!(r2.len() == 2 && r2.iter().all(|v| v.is_finite() && *v <= 1.0), "{k}: {line}");
    }
    assert_eq!(lines.len(), 3);
}
