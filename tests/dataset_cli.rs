//! End-to-end dataset commands: a real `kill -9` mid-run, resume, sharding through the
//! environment variables clusters set, inspect's exit status; training byte-identical
//! whatever the thread count.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, ok, snapshot, tiny_dataset};

const SUITE: &str = r#"
[suite]
name = "killme"
seed = 9
samples_per_file = 2
max_objects = 6

[splits]
train = 36
val = 4
readout = 2
test = 4

[[family]]
name = "drop"
params = { count = [2, 4], duration_s = 1.5 }

[[family]]
name = "dominoes"
params = { count = [3, 4], duration_s = 1.5 }
"#;

fn manifests(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("meta/shards"))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Finished manifests only: `.tmp-*.json` is one being written.
                .filter(|n| n.ends_with(".json") && !n.starts_with(".tmp-"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_with_sigkill_then_resumed_is_byte_identical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let suite = tmp.path().join("killme.toml");
    std::fs::write(&suite, SUITE).expect("suite");
    let reference = tmp.path().join("reference");
    ok(bin()
        .args(["generate", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(&reference)
        .arg("--json")
        .output()
        .expect("runs"));
    let want = snapshot(&reference);
    let total = want.keys().filter(|p| p.starts_with("meta/shards")).count();
    assert_eq!(total, 23, "18 + 2 + 1 + 2 shards");

    for (k, after) in [1usize, 8, 17].into_iter().enumerate() {
        let dir = tmp.path().join(format!("killed{k}"));
        let mut child = bin()
            .args(["generate", "--json", "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        let start = Instant::now();
        while manifests(&dir) < after && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().expect("SIGKILL"); // std's kill() sends SIGKILL on Unix
        let status = child.wait().expect("reaped");
        let done = manifests(&dir);
        assert!(done < total, "run {k} finished before it could be killed ({done} shards)");
        assert!(!status.success());
        let o = ok(bin()
            .args(["generate", "--resume", "--json", "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("runs"));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert!(report["shards_skipped"].as_u64().expect("n") >= done as u64 - 1, "{report}");
        // The shards this run wrote were simulated and written; states only, nothing rendered.
        let t = &report["stage_seconds"];
        let stage = |k: &str| t[k].as_f64().expect("a stage's seconds");
        assert!(["simulate", "write", "finalize"].iter().all(|k| stage(k) > 0.0), "{report}");
        assert_eq!(stage("render"), 0.0, "{report}");
        // Worker seconds: no more than every thread busy for the whole run.
        let budget = report["seconds"].as_f64().expect("seconds") * report["threads"].as_f64().expect("threads");
        assert!(stage("simulate") + stage("write") + stage("finalize") <= budget * 1.05, "{report}");
        let got = snapshot(&dir);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "kill {k}: file sets differ");
        for (p, bytes) in &want {
            assert!(&got[p] == bytes, "kill {k} after {done} shards: {} differs", p.display());
        }
    }
}

#[test]
fn cluster_index_variables_select_the_worker_and_finalize_merges() {
    let tmp = tempfile::tempdir().expect("tmp");
    let suite = tmp.path().join("s.toml");
    std::fs::write(&suite, SUITE.replace("train = 36", "train = 6")).expect("suite");
    let whole = tmp.path().join("whole");
    ok(bin().args(["generate", "--suite"]).arg(&suite).arg("--out").arg(&whole).output().expect("runs"));
    let parts = tmp.path().join("parts");
    for (i, var) in ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"].iter().enumerate() {
        ok(bin()
            .args(["generate", "--shards", "2", "--suite"])
            .arg(&suite)
            .arg("--out")
            .arg(&parts)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env(var, i.to_string())
            .output()
            .expect("runs"));
        if i == 0 {
            let o = bin().arg("finalize").arg(&parts).output().expect("runs");
            assert!(!o.status.success());
            assert!(String::from_utf8_lossy(&o.stderr).contains("shards are missing"));
        }
    }
    ok(bin().arg("finalize").arg(&parts).output().expect("runs"));
    assert_eq!(snapshot(&whole), snapshot(&parts));
    // Without an index variable --shards is refused with a clear message.
    let o = bin()
        .args(["generate", "--shards", "2", "--suite"])
        .arg(&suite)
        .arg("--out")
        .arg(tmp.path().join("x"))
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard I/N"));
}

#[test]
fn inspect_reports_counts_and_fails_on_damage() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tiny_dataset(tmp.path());
    let o = ok(bin().args(["inspect", "--json"]).arg(&dir).output().expect("runs"));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["splits"]["train"]["files_found"], 3);
    assert_eq!(r["splits"]["train"]["families"]["voe-permanence"], 24);
    assert!(r["problems"].as_array().is_some_and(Vec::is_empty));
    let f = dir.join("data/val-00000-of-00001.parquet");
    let bytes = std::fs::read(&f).expect("read");
    std::fs::write(&f, &bytes[..bytes.len() - 100]).expect("truncate");
    let o = bin().arg("inspect").arg(&dir).output().expect("runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("data/val-00000-of-00001.parquet") && !err.contains("panicked"), "{err}");
}

#[test]
fn bad_suite_file_names_file_key_and_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let suite = tmp.path().join("bad.toml");
    std::fs::write(&suite, SUITE.replace("count = [2, 4]", "count = [4, 2]")).expect("suite");
    let o =
        bin().args(["generate", "--suite"]).arg(&suite).arg("--out").arg(tmp.path().join("o")).output().expect("runs");
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad.toml") && e.contains("drop.count") && e.contains("line 16"), "{e}");
}

/// Training and scoring are deterministic whatever the thread count: the same weights,
/// optimizer state, losses and bench answers with 1 and 2 threads (Candle's gemm and our
/// fused kernels split work by output rows, never inside a sum; bench batches per item or
/// chunk of items).
#[test]
fn training_and_scoring_give_identical_bytes_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tiny_dataset(tmp.path());
    let run = |threads: &str| -> (Vec<u8>, Vec<u8>, Vec<f64>) {
        let out = tmp.path().join(format!("run{threads}"));
        ok(bin()
            .env("RAYON_NUM_THREADS", threads)
            .args(["train", "--steps", "2", "--json", "--data"])
            .arg(&dir)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("runs"));
        let ckpt = out.join("checkpoints/step-000002");
        let losses = std::fs::read_to_string(out.join("metrics.jsonl"))
            .expect("metrics")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["loss"].as_f64().expect("loss"))
            .collect();
        (
            std::fs::read(ckpt.join("model.safetensors")).expect("model"),
            std::fs::read(ckpt.join("optim.safetensors")).expect("optim"),
            losses,
        )
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one.2.len(), 2, "{:?}", one.2);
    assert_eq!(one.2, two.2, "losses");
    assert!(one.0 == two.0, "model weights differ between 1 and 2 threads");
    assert!(one.1 == two.1, "optimizer state differs between 1 and 2 threads");

    // Scoring it, items in parallel, gives the same answers too.
    let run1 = tmp.path().join("run1");
    let spec = format!("jepa:{}", run1.display());
    let answers = |threads: &str| -> String {
        let out = tmp.path().join(format!("bench{threads}"));
        ok(bin()
            .env("RAYON_NUM_THREADS", threads)
            .args(["bench", "--tasks", "voe,contact", "--model", &spec, "--data"])
            .arg(&dir)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("runs"));
        let mut logs: Vec<_> = std::fs::read_dir(&out)
            .expect("results")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".jsonl"))
            .collect();
        logs.sort();
        assert_eq!(logs.len(), 1, "{logs:?}");
        std::fs::read_to_string(&logs[0]).expect("items")
    };
    let (a, b) = (answers("1"), answers("2"));
    assert!(a.contains("\"voe\"") && a.contains("\"contact\""), "{a}");
    assert!(a == b, "bench answers differ between 1 and 2 threads");
    // A small latent search for plan-push: the default's is most of the sharded runs' time.
    let small = format!("jepa,samples=16,elites=4,iters=2:{}", run1.display());
    sharded_bench_merges_to_the_unsharded_files(tmp.path(), &dir, &small);
}

/// `train --context N` trains on windows of N observed frames and records it in the run's
/// config; 0 frames is refused by the field's name.
#[test]
fn train_context_sets_the_observed_frames_per_window() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tiny_dataset(tmp.path());
    let out = tmp.path().join("c12");
    ok(bin()
        .args(["train", "--steps", "2", "--context", "12", "--json", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).expect("config")).expect("json");
    assert_eq!(cfg["data"]["context"], 12, "{cfg}");
    let o = bin()
        .args(["train", "--steps", "2", "--context", "0", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(tmp.path().join("c0"))
        .output()
        .expect("runs");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("data.context") && e.contains("at least 1"), "{e}");
}

/// A result file without its wall time, and an item log or shard file without the
/// per-item `seconds` of planning: the only bytes allowed to differ between runs.
fn without_timing(bytes: &[u8]) -> String {
    let t = String::from_utf8_lossy(bytes);
    let re = |s: &str, key: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find(key) {
            out.push_str(&rest[..at + key.len()]);
            rest = &rest[at + key.len()..];
            let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    };
    re(&re(&t, "\"wall_time_s\":"), "\"seconds\":")
}

/// `bench --shard I/N` on three workers (one through `$JOB_COMPLETION_INDEX`), then `results
/// merge`: the same result files and item logs as one unsharded run, the trained JEPA
/// included; a retried shard rewrites the same answers; missing, overlapping and mismatched
/// shards are refused by name, and nothing is overwritten without --force.
fn sharded_bench_merges_to_the_unsharded_files(tmp: &Path, dir: &Path, jepa: &str) {
    let models =
        ["--model", jepa, "--model", "oracle", "--model", "greedy", "--model", "raw-state", "--model", "chance"];
    // 40 items a task: blocks of 32 put 32 in shard 0, 8 in shard 1 and none in shard 2.
    let bench = |out: &Path, extra: &[&str]| {
        bin()
            .args(["bench", "--limit", "40", "--plan-attempts", "5", "--data"])
            .arg(dir)
            .arg("--out")
            .arg(out)
            .args(models)
            .args(extra)
            .output()
            .expect("runs")
    };
    let full = tmp.join("full");
    ok(bench(&full, &[]));
    let sharded = tmp.join("sharded");
    ok(bench(&sharded, &["--shard", "0/3"]));
    ok(bench(&sharded, &["--shard", "2/3"]));
    // A worker of a Kubernetes Indexed Job finds its index in the environment.
    ok(bin()
        .env("JOB_COMPLETION_INDEX", "1")
        .args(["bench", "--limit", "40", "--plan-attempts", "5", "--shards", "3", "--data"])
        .arg(dir)
        .arg("--out")
        .arg(&sharded)
        .args(models)
        .output()
        .expect("runs"));
    let merge = |extra: &[&str]| {
        bin()
            .args(["results", "merge", "--data"])
            .arg(dir)
            .arg("--out")
            .arg(&sharded)
            .args(extra)
            .output()
            .expect("runs")
    };
    let o = bin().arg("leaderboard").arg(&sharded).output().expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("physworld results merge"), "{err}");
    ok(merge(&["--json"]));
    let results = |d: &Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .expect("results")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .map(|p| (p.file_name().expect("name").into(), std::fs::read(&p).expect("read")))
            .collect();
        v.sort();
        v
    };
    let (want, got) = (results(&full), results(&sharded));
    assert_eq!(want.len(), 10, "{:?}", want.iter().map(|w| &w.0).collect::<Vec<_>>());
    assert_eq!(want.iter().map(|w| &w.0).collect::<Vec<_>>(), got.iter().map(|w| &w.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in want.iter().zip(&got) {
        assert_eq!(without_timing(a), without_timing(b), "{} differs from the unsharded run's", name.display());
    }
    let log = String::from_utf8_lossy(
        &want
            .iter()
            .find(|w| w.0.to_string_lossy().starts_with("greedy") && w.0.to_string_lossy().ends_with(".jsonl"))
            .expect("greedy log")
            .1,
    )
    .into_owned();
    assert!(log.contains("\"plan-push\""), "{log}");
    // The leaderboard reads the merged folder (the shards beside it are not result files).
    ok(bin().arg("leaderboard").arg(&sharded).output().expect("runs"));

    // A retried shard (a restarted pod) rewrites the same answers.
    let shard1 = sharded.join("shards/oracle__tiny__test/shard-0001-of-0003.json");
    let before = std::fs::read(&shard1).expect("shard");
    ok(bench(&sharded, &["--shard", "1/3"]));
    assert_eq!(without_timing(&before), without_timing(&std::fs::read(&shard1).expect("shard")));
    // Merged files are not replaced without --force.
    let o = merge(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("oracle__tiny__test.json") && err.contains("--force"), "{err}");
    // Missing, overlapping, mismatched: refused, naming the files.
    let moved = tmp.join("moved.json");
    std::fs::rename(&shard1, &moved).expect("move");
    let o = merge(&["--force"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("missing 1 shard: 1/3") && err.contains("oracle__tiny__test"), "{err}");
    std::fs::copy(&moved, &shard1).expect("copy");
    std::fs::copy(&moved, sharded.join("shards/oracle__tiny__test/again.json")).expect("copy");
    let o = merge(&["--force"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("overlapping")
            && err.contains("again.json")
            && err.contains("shard-0001-of-0003.json"),
        "{err}"
    );
    std::fs::remove_file(sharded.join("shards/oracle__tiny__test/again.json")).expect("rm");
    // A shard scored on other items (another --limit) is another run's: bench refuses to
    // replace it without --force, and merge refuses to join it.
    let other = ["--shard", "1/3", "--limit", "20", "--model", "oracle"];
    let o = bin().args(["bench", "--data"]).arg(dir).arg("--out").arg(&sharded).args(other).output().expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("shard-0001-of-0003.json") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&shard1).expect("kept"), std::fs::read(&moved).expect("moved"));
    ok(bin()
        .args(["bench", "--force", "--data"])
        .arg(dir)
        .arg("--out")
        .arg(&sharded)
        .args(other)
        .output()
        .expect("runs"));
    let o = merge(&["--force"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("mismatched") && err.contains("content_hash"), "{err}");

    // A model that answers from the presentation cannot be sharded exactly: refused.
    let h = tmp.join("heuristic");
    let o = bin()
        .args(["bench", "--shard", "0/2", "--model", "heuristic:movie-position", "--data"])
        .arg(dir)
        .arg("--out")
        .arg(&h)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("heuristic:movie-position") && err.contains("without --shard"),
        "{err}"
    );
    assert!(!h.exists());
    // An index beyond the workers is named by its variable.
    let o = bin()
        .env("JOB_COMPLETION_INDEX", "5")
        .args(["bench", "--shards", "3", "--model", "oracle", "--data"])
        .arg(dir)
        .arg("--out")
        .arg(&h)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("$JOB_COMPLETION_INDEX = 5"), "{err}");
    // One worker (`--shards 1`) still writes a shard, which merges.
    let one = tmp.join("one");
    ok(bin()
        .env("JOB_COMPLETION_INDEX", "0")
        .args(["bench", "--shards", "1", "--limit", "5", "--model", "chance", "--data"])
        .arg(dir)
        .arg("--out")
        .arg(&one)
        .output()
        .expect("runs"));
    assert!(one.join("shards/chance__tiny__test/shard-0000-of-0001.json").is_file());
    ok(bin().args(["results", "merge", "--data"]).arg(dir).arg("--out").arg(&one).output().expect("runs"));
    assert!(one.join("chance__tiny__test.json").is_file());
}

/// `physworld probe` through the binary: the JSON report on chosen splits, and clear errors
/// for a split the dataset lacks or probes scored on the split they were fit on.
#[test]
fn probe_reports_json_on_chosen_splits_and_rejects_bad_ones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tiny_dataset(tmp.path());
    let run = tmp.path().join("run");
    ok(bin()
        .args(["train", "--steps", "2", "--json", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(&run)
        .output()
        .expect("runs"));
    let probe = |extra: &[&str]| bin().args(["probe", "--data"]).arg(&dir).arg("--run").arg(&run).args(extra).output();
    let out = ok(probe(&["--json", "--fit-split", "readout", "--eval-split", "val"]).expect("runs"));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert!(r["objects"].as_u64().expect("objects") > 0, "{r}");
    assert!(r["fit_objects"].as_u64().expect("fit") > r["objects"].as_u64().expect("objects"), "{r}");
    for k in ["trained", "random_init", "raw_state", "constant_velocity"] {
        assert!(r["position"][k].as_f64().is_some_and(|v| v.is_finite() && v > 0.0), "{k}: {r}");
    }
    // Scored on `test` (the default) the report counts other objects.
    let default: serde_json::Value =
        serde_json::from_slice(&ok(probe(&["--json"]).expect("runs")).stdout).expect("json report");
    assert_ne!(default["objects"], r["objects"]);
    let err = probe(&["--eval-split", "tset"]).expect("runs");
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success() && msg.contains("eval_split") && msg.contains("tset"), "{msg}");
    let err = probe(&["--fit-split", "val", "--eval-split", "val"]).expect("runs");
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success() && msg.contains("--fit-split") && msg.contains("val"), "{msg}");
}

/// The cluster recipes in docs/cluster run as written: the Slurm scripts' workers (all at
/// once, each with its `$SLURM_ARRAY_TASK_ID`) and then their `after` step, and the
/// Kubernetes manifests' commands as their Indexed Jobs' pods (all at once, each with its
/// `$JOB_COMPLETION_INDEX`) with the volumes mapped to local folders. Each yields the same
/// dataset as one `generate` and the same result files as one `bench`.
#[test]
fn the_cluster_recipes_run_as_concurrent_local_workers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cluster");
    let exe = Path::new(env!("CARGO_BIN_EXE_physworld"));
    let path = format!("{}:{}", exe.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let suite = tmp.path().join("s.toml");
    std::fs::write(&suite, SUITE.replace("train = 36", "train = 6")).expect("suite");
    let whole = tmp.path().join("whole");
    ok(bin().args(["generate", "--suite"]).arg(&suite).arg("--out").arg(&whole).output().expect("runs"));
    let full = tmp.path().join("full");
    ok(bin()
        .args(["bench", "--model", "oracle", "--model", "raw-state", "--model", "chance", "--data"])
        .arg(&whole)
        .arg("--out")
        .arg(&full)
        .output()
        .expect("runs"));
    // Every file of `got` is the unsharded run's file of the same name.
    let same_results = |got: &Path, n: usize| {
        let names: Vec<_> = std::fs::read_dir(got)
            .expect("results")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(names.len(), n, "{names:?}");
        for p in names {
            let want = full.join(p.file_name().expect("name"));
            let (a, b) = (std::fs::read(&want).expect("unsharded"), std::fs::read(&p).expect("merged"));
            assert_eq!(without_timing(&a), without_timing(&b), "{}", p.display());
        }
    };
    let all_ok = |children: Vec<std::process::Child>| {
        for c in children {
            ok(c.wait_with_output().expect("waits"));
        }
    };

    // Slurm: three array tasks at once, then the step that runs after them.
    let slurm = |script: &str, step: &str, env: &[(&str, &std::ffi::OsStr)]| {
        let mut c = std::process::Command::new("bash");
        c.arg(root.join(script)).arg(step).env("PATH", &path).env("SHARDS", "3").env_remove("JOB_COMPLETION_INDEX");
        c.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    let data = tmp.path().join("slurm-data");
    let gen_env = [("SUITE", suite.as_os_str()), ("DATA", data.as_os_str())];
    let array = |script: &str, env: &[(&str, &std::ffi::OsStr)]| {
        let task = |i: usize| slurm(script, "worker", env).env("SLURM_ARRAY_TASK_ID", i.to_string()).spawn();
        all_ok((0..3).map(|i| task(i).expect("spawns")).collect());
    };
    array("slurm-generate.sh", &gen_env);
    ok(slurm("slurm-generate.sh", "after", &gen_env).output().expect("runs"));
    assert_eq!(snapshot(&whole), snapshot(&data));
    let out = tmp.path().join("slurm-results");
    let models = std::ffi::OsStr::new("oracle chance");
    let bench_env = [("DATA", data.as_os_str()), ("OUT", out.as_os_str()), ("MODELS", models)];
    array("slurm-bench.sh", &bench_env);
    ok(slurm("slurm-bench.sh", "after", &bench_env).output().expect("runs"));
    same_results(&out, 4);

    // Kubernetes: each manifest's command, its Indexed Job's pods at once.
    let kdata = tmp.path().join("k8s-data");
    let kout = tmp.path().join("k8s-results");
    let job = |file: &str| -> (Vec<String>, usize) {
        let yaml = std::fs::read_to_string(root.join(file)).expect("manifest");
        let line = yaml.lines().find_map(|l| l.trim().strip_prefix("command: ")).expect("a command");
        let args: Vec<String> = serde_json::from_str(line).expect("a flow list of strings");
        let args = args
            .into_iter()
            .map(|a| match a.as_str() {
                "/suites/physion.toml" => suite.display().to_string(),
                "/data/physion" => kdata.display().to_string(),
                "/results/physion" => kout.display().to_string(),
                _ => a,
            })
            .collect();
        let pods =
            yaml.lines().find_map(|l| l.trim().strip_prefix("completions: ")).map_or(1, |n| n.parse().expect("count"));
        (args, pods)
    };
    let pods = |file: &str| {
        let (args, n) = job(file);
        assert_eq!(args[0], "physworld", "{file}");
        let spawn = |i: usize| {
            std::process::Command::new(exe)
                .args(&args[1..])
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env_remove("SLURM_ARRAY_TASK_ID")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawns")
        };
        all_ok((0..n).map(spawn).collect());
        n
    };
    assert_eq!(pods("k8s-generate.yaml"), 8);
    assert_eq!(pods("k8s-finalize.yaml"), 1);
    assert_eq!(snapshot(&whole), snapshot(&kdata));
    assert_eq!(pods("k8s-bench.yaml"), 8);
    assert_eq!(pods("k8s-merge.yaml"), 1);
    same_results(&kout, 4);
}
