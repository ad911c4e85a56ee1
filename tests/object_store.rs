//! Datasets in object storage, against a real S3-compatible server on 127.0.0.1: moto's
//! server (PyPI `moto[server]`, in tests/python/requirements.txt), started by this test
//! from `$PHYSWORLD_PYTHON` (`.ci/run` sets it to its venv). A missing moto fails the test.
//!
//! Generation killed mid-way and resumed in the store, a sharded generation finalised
//! there, inspect, training and bench reading from it: each gives the same bytes as the
//! same command on a local folder, and so do docs/cluster's Slurm recipes run as concurrent
//! local workers on a dataset in the store. pyarrow and polars read the dataset straight
//! from the store (tests/python/check_store.py). Training runs, results, benchmark shards,
//! leaderboards and the LLM reply cache live in the store too.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, ok, snapshot, tiny_dataset};

fn python() -> String {
    std::env::var("PHYSWORLD_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// moto's S3 server on a free port of 127.0.0.1, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs");
        let mut moto = Moto { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto's server exited ({status}): install tests/python/requirements.txt into {} (`.ci/run` does)",
                    python()
                );
            }
            assert!(start.elapsed() < Duration::from_secs(60), "moto's server did not start in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Write an object through boto3 (moto's dependency), as another S3 client would.
    fn put_object(&self, bucket: &str, key: &str, body: &str) {
        let code = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}').put_object(Bucket='{bucket}', Key='{key}', Body=b'{body}')",
            self.endpoint()
        );
        let o = Command::new(python()).args(["-c", &code]).envs(self.aws_env()).output().expect("python runs");
        assert!(o.status.success(), "put_object {key}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// Copy every object under `s3://bucket/prefix/` into `dest` through boto3, keeping the
    /// paths below the prefix (as another S3 client would read the store).
    fn download(&self, bucket: &str, prefix: &str, dest: &Path) {
        let code = format!(
            "import boto3, os, sys\n\
             s3 = boto3.client('s3', endpoint_url='{}')\n\
             for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{bucket}', Prefix='{prefix}/'):\n\
             \x20   for o in page.get('Contents', []):\n\
             \x20       rel = o['Key'][len('{prefix}/'):]\n\
             \x20       path = os.path.join(sys.argv[1], rel)\n\
             \x20       os.makedirs(os.path.dirname(path), exist_ok=True)\n\
             \x20       s3.download_file('{bucket}', o['Key'], path)\n",
            self.endpoint()
        );
        let o =
            Command::new(python()).args(["-c", &code]).arg(dest).envs(self.aws_env()).output().expect("python runs");
        assert!(o.status.success(), "download {prefix}: {}", String::from_utf8_lossy(&o.stderr));
    }

    /// PUT `body` at `path` unsigned, which moto accepts for a bucket.
    fn put(&self, path: &str, body: &[u8]) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        write!(
            s,
            "PUT /{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .expect("sends");
        s.write_all(body).expect("sends");
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("reads");
        assert!(reply.starts_with("HTTP/1.1 200"), "PUT /{path}: {reply}");
    }

    fn bucket(&self, name: &str) {
        self.put(name, b"");
    }

    /// The object's ETag (quoted, as S3 returns it), read through boto3.
    fn etag(&self, bucket: &str, key: &str) -> String {
        let code = format!(
            "import boto3; print(boto3.client('s3', endpoint_url='{}').head_object(Bucket='{bucket}', Key='{key}')['ETag'])",
            self.endpoint()
        );
        let o = Command::new(python()).args(["-c", &code]).envs(self.aws_env()).output().expect("python runs");
        assert!(o.status.success(), "head_object {key}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The usual AWS variables, pointing at this server.
    fn aws_env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// The binary, configured for this server.
    fn physworld(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).envs(self.aws_env());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        ok(self.physworld(args).output().expect("runs"))
    }

    /// check_store.py's report on `url` against the local copy `local`.
    fn check(&self, url: &str, local: &Path) -> serde_json::Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_store.py");
        let o = Command::new(python())
            .arg(&script)
            .arg(self.endpoint())
            .arg(url)
            .arg(local)
            .envs(self.aws_env())
            .output()
            .expect("python runs");
        assert!(o.status.success(), "check_store.py: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("json")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/tiny.toml")
}

/// The store holds exactly the local dataset's files, byte for byte, and pyarrow and polars
/// read every frame row from it.
fn assert_same_as(moto: &Moto, url: &str, local: &Path, what: &str) {
    let r = moto.check(url, local);
    let files = snapshot(local).len() as u64;
    assert_eq!(r["objects"], files, "{what}: {r}");
    for k in ["differ", "only_remote", "only_local"] {
        assert_eq!(r[k], serde_json::json!([]), "{what}: {k}: {r}");
    }
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(local.join("meta/info.json")).expect("info")).expect("json");
    assert_eq!(r["pyarrow_rows"], info["total_frames"], "{what}: {r}");
    assert_eq!(r["polars_rows"], info["total_frames"], "{what}: {r}");
}

/// The result file without its wall time.
fn result_without_time(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("result")).expect("json");
    v["wall_time_s"] = serde_json::Value::Null;
    v
}

#[test]
fn datasets_in_s3_generate_resume_finalize_train_and_bench_like_local_folders() {
    let tmp = tempfile::tempdir().expect("tmp");
    let local = tiny_dataset(tmp.path());
    let moto = Moto::start();
    moto.bucket("physworld");

    // Killed mid-way (SIGKILL) and resumed in the store: the local run's bytes.
    let url = "s3://physworld/runs/tiny";
    let mut child = moto
        .physworld(&["generate", "--json", "--threads", "1", "--out", url, "--suite"])
        .arg(tiny())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let inspect = |url: &str| -> serde_json::Value {
        let o = moto.physworld(&["inspect", "--json", "--data", url]).output().expect("runs");
        serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
    };
    let files_found = |r: &serde_json::Value| -> u64 {
        r["splits"].as_object().map_or(0, |s| s.values().filter_map(|v| v["files_found"].as_u64()).sum())
    };
    let start = Instant::now();
    while files_found(&inspect(url)) < 3 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    assert!(!child.wait().expect("reaped").success());
    let cut = inspect(url);
    assert!(files_found(&cut) >= 3 && cut["finalized"] == false, "killed too late or too early: {cut}");
    let o = moto.run(&["generate", "--resume", "--json", "--out", url, "--suite", tiny().to_str().expect("utf-8")]);
    // ... and without --resume, a finished dataset in the store is refused, not rewritten.
    let again = moto.physworld(&["generate", "--out", url, "--suite"]).arg(tiny()).output().expect("runs");
    let e = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && e.contains(url) && e.contains("--resume"), "{e}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(report["shards_skipped"].as_u64().expect("n") >= 2, "{report}");
    assert_same_as(&moto, url, &local, "killed and resumed");

    // Two workers at once, then finalize from the store.
    let sharded = "s3://physworld/sharded";
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            moto.physworld(&["generate", "--json", "--threads", "1", "--shard", &format!("{i}/2"), "--out", sharded])
                .arg("--suite")
                .arg(tiny())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawns")
        })
        .collect();
    for w in workers {
        ok(w.wait_with_output().expect("worker"));
    }
    let o = moto.physworld(&["inspect", "--data", sharded]).output().expect("runs");
    assert!(String::from_utf8_lossy(&o.stdout).contains("not finalised"), "{}", String::from_utf8_lossy(&o.stdout));
    moto.run(&["finalize", "--data", sharded]);
    assert_same_as(&moto, sharded, &local, "sharded and finalised");
    let r: serde_json::Value =
        serde_json::from_slice(&moto.run(&["inspect", "--json", "--data", sharded]).stdout).expect("json");
    assert_eq!(r["location"], sharded);

    // Rendered frames stream into the store (a multipart upload per pixels file), and a
    // resumed run checks them by ranged reads: the local run's bytes.
    #[cfg(feature = "render")]
    {
        let suite = tmp.path().join("pixels.toml");
        std::fs::write(
            &suite,
            "[suite]\nname = \"pixels\"\nseed = 3\nsamples_per_file = 2\n\n[splits]\ntrain = 3\nval = 0\n\
             readout = 0\ntest = 0\n\n[[family]]\nname = \"drop\"\nparams = { count = [2, 3], duration_s = 1.0 }\n",
        )
        .expect("suite");
        let s = suite.to_str().expect("utf-8");
        let px = ["--modality", "pixels", "--resolution", "16"];
        let local_px = tmp.path().join("pixels");
        ok(bin().args(["generate", "--out"]).arg(&local_px).args(["--suite", s]).args(px).output().expect("runs"));
        let url = "s3://physworld/pixels";
        moto.run(&[&["generate", "--out", url, "--suite", s][..], &px[..]].concat());
        assert_same_as(&moto, url, &local_px, "pixels");
        let o = moto.run(&[&["generate", "--resume", "--json", "--out", url, "--suite", s][..], &px[..]].concat());
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(report["shards_skipped"], 2, "{report}");
    }

    // Training streams the shards from the store: the same losses as from the local folder.
    let train = |data: &str, out: &Path| -> serde_json::Value {
        let o = moto.run(&["train", "--json", "--steps", "3", "--data", data, "--out", out.to_str().expect("utf-8")]);
        let text = String::from_utf8_lossy(&o.stdout);
        serde_json::from_str(text.lines().last().expect("a report")).expect("json")
    };
    let (from_store, from_disk) = (tmp.path().join("run-s3"), tmp.path().join("run-local"));
    let a = train(url, &from_store);
    let b = train(local.to_str().expect("utf-8"), &from_disk);
    assert!(a["loss"].as_f64().is_some_and(f64::is_finite), "{a}");
    assert_eq!(a["loss"], b["loss"], "{a} vs {b}");
    assert_eq!(a["step"], 3, "{a}");

    // Behaviour cloning fits on the store's dataset as on the local one.
    let bc = |demos: &str| -> serde_json::Value {
        let model = format!("bc:{demos}");
        let out = format!("s3://physworld/plans/{}.json", demos.len());
        let args = ["plan", "--task", "push", "--model", &model, "--item", "0", "--json", "--data", url, "--out", &out];
        let o = moto.run(&args);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        // --out wrote the same run into the store.
        let copy = tmp.path().join("plans");
        moto.download("physworld", "plans", &copy);
        let file = copy.join(format!("{}.json", demos.len()));
        let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("stored")).expect("json");
        assert_eq!(stored, v);
        v["items"][0]["final_distance"].clone()
    };
    let d = bc(url);
    assert!(d.as_f64().is_some(), "{d}");
    assert_eq!(d, bc(local.to_str().expect("utf-8")));

    // A run in the store: trained in a local copy and uploaded at its checkpoint, the same
    // bytes as the local run; a second start is refused naming the URL; --resume finds it
    // finished; --force replaces it; bench reads `jepa:URL` like the local folder.
    let run_url = "s3://physworld/runs/jepa";
    let c = train(url, Path::new(run_url));
    assert_eq!((&c["loss"], &c["step"]), (&b["loss"], &b["step"]), "{c} vs {b}");
    assert_eq!(c["checkpoint"], format!("{run_url}/checkpoints/step-000003"), "{c}");
    let run_copy = tmp.path().join("run-copy");
    moto.download("physworld", "runs/jepa", &run_copy);
    let names: Vec<_> = snapshot(&run_copy).into_keys().collect();
    for f in ["config.json", "metrics.jsonl", "checkpoints/latest", "checkpoints/step-000003/model.safetensors"] {
        assert!(names.contains(&PathBuf::from(f)), "{f} missing in the store: {names:?}");
    }
    for f in ["config.json", "metrics.jsonl", "checkpoints/latest"] {
        let (x, y) =
            (std::fs::read(run_copy.join(f)).expect("copy"), std::fs::read(from_store.join(f)).expect("local"));
        if f == "metrics.jsonl" {
            assert_eq!(x.iter().filter(|&&c| c == b'\n').count(), 3, "three steps logged");
        } else {
            assert_eq!(x, y, "{f}");
        }
    }
    for f in ["model.safetensors", "optim.safetensors", "state.json"] {
        let p = format!("checkpoints/step-000003/{f}");
        assert_eq!(std::fs::read(run_copy.join(&p)).ok(), std::fs::read(from_store.join(&p)).ok(), "{p}");
    }
    let again = moto.physworld(&["train", "--steps", "3", "--data", url, "--out", run_url]).output().expect("runs");
    let e = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && e.contains(run_url) && e.contains("--resume") && !e.contains("/tmp/"), "{e}");
    let o = moto.run(&["train", "--json", "--steps", "3", "--resume", "--data", url, "--out", run_url]);
    let r: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().expect("report")).expect("json");
    assert_eq!(r["steps_run"], 0, "a finished run resumes to nothing: {r}");
    let xdg = tmp.path().join("xdg-cache");
    let jepa_bench = |run: &str, out: &Path| -> serde_json::Value {
        let model = format!("jepa:{run}");
        let o = out.to_str().expect("utf-8");
        // A cache of this test's own, so that the fetch is exercised, not a copy from
        // an earlier run of the test.
        let args = ["bench", "--data", url, "--model", &model, "--tasks", "forecast", "--limit", "4", "--out", o];
        ok(moto.physworld(&args).env("XDG_CACHE_HOME", &xdg).output().expect("runs"));
        let file = std::fs::read_dir(out)
            .expect("results")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("a result file");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
        v["tasks"].clone()
    };
    let (jr_store, jr_disk) = (tmp.path().join("jepa-s3"), tmp.path().join("jepa-disk"));
    assert_eq!(jepa_bench(run_url, &jr_store), jepa_bench(from_store.to_str().expect("utf-8"), &jr_disk));
    let cached: Vec<_> = snapshot(&xdg.join("physworld/runs")).into_keys().collect();
    assert!(
        cached.iter().any(|n| n.ends_with("checkpoints/step-000003/model.safetensors"))
            && cached.iter().any(|n| n.ends_with("checkpoints/latest")),
        "jepa:URL fetched the latest checkpoint into the cache: {cached:?}"
    );
    moto.put_object("physworld", "runs/jepa/notes.txt", "not the run");
    moto.run(&["train", "--steps", "2", "--force", "--data", url, "--out", run_url]);
    let forced = tmp.path().join("run-forced");
    moto.download("physworld", "runs/jepa", &forced);
    let names: Vec<_> = snapshot(&forced).into_keys().collect();
    assert!(
        names.contains(&PathBuf::from("checkpoints/step-000002/state.json"))
            && !names.iter().any(|n| n.starts_with("checkpoints/step-000003"))
            && names.contains(&PathBuf::from("notes.txt")),
        "--force replaces the run in the store, and only the run: {names:?}"
    );
    // A reader of the replaced run fetches the new checkpoint, not the cached old one.
    jepa_bench(run_url, &tmp.path().join("jepa-s3-forced"));
    let cached: Vec<_> = snapshot(&xdg.join("physworld/runs")).into_keys().collect();
    assert!(cached.iter().any(|n| n.ends_with("checkpoints/step-000002/model.safetensors")), "{cached:?}");

    // bench reads the dataset from the store and writes its results there: the result files
    // and item logs are the local run's, and the leaderboard reads them from the store.
    let bench = |data: &str, out: &str| {
        moto.run(&["bench", "--data", data, "--model", "constant-velocity", "--model", "majority", "--out", out]);
    };
    let res_url = "s3://physworld/results/tiny";
    let res_disk = tmp.path().join("res-local");
    bench(url, res_url);
    bench(local.to_str().expect("utf-8"), res_disk.to_str().expect("utf-8"));
    let same_results = |got: &Path, what: &str| {
        let names: Vec<_> = snapshot(&res_disk).into_keys().filter(|n| !n.starts_with("shards")).collect();
        assert!(names.iter().any(|n| n.to_string_lossy().ends_with(".json")), "{names:?}");
        let got_names: Vec<_> = snapshot(got).into_keys().filter(|n| !n.starts_with("shards")).collect();
        assert_eq!(got_names, names, "{what}");
        for n in &names {
            if n.to_string_lossy().ends_with(".json") {
                assert_eq!(result_without_time(&got.join(n)), result_without_time(&res_disk.join(n)), "{what}: {n:?}");
            } else {
                assert_eq!(std::fs::read(got.join(n)).ok(), std::fs::read(res_disk.join(n)).ok(), "{what}: {n:?}");
            }
        }
    };
    let res_store = tmp.path().join("res-s3");
    moto.download("physworld", "results/tiny", &res_store);
    same_results(&res_store, "bench --out s3://");
    // A second bench into the same prefix is refused, naming the file, and writes nothing.
    let again =
        moto.physworld(&["bench", "--data", url, "--model", "majority", "--out", res_url]).output().expect("runs");
    let e = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && e.contains("s3://physworld/results/tiny/majority__") && e.contains("--force"),
        "{e}"
    );
    // The leaderboard reads the results from the store, writes its JSON there, and a local
    // board checked against that baseline passes.
    // A prefix that is not a dataset but holds one (`runs/tiny`, beside the run `runs/jepa`)
    // is scored like a folder of fold datasets: each dataset under it, by name.
    let under = tmp.path().join("res-under-prefix");
    moto.run(&[
        "bench",
        "--data",
        "s3://physworld/runs",
        "--model",
        "majority",
        "--out",
        under.to_str().expect("utf-8"),
    ]);
    let got: Vec<_> = snapshot(&under).into_keys().collect();
    let majority: Vec<_> =
        snapshot(&res_disk).into_keys().filter(|n| n.to_string_lossy().starts_with("majority__")).collect();
    assert_eq!(got, majority, "one dataset found under the prefix");
    for n in got.iter().filter(|n| n.to_string_lossy().ends_with(".json")) {
        assert_eq!(result_without_time(&under.join(n)), result_without_time(&res_disk.join(n)), "{n:?}");
    }
    let o = moto.run(&["leaderboard", "--results", res_url]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("constant-velocity"));
    let board = "s3://physworld/boards/tiny.json";
    moto.run(&["leaderboard", "--results", res_url, "--format", "json", "--out", board]);
    let o = moto.run(&["leaderboard", "--results", res_disk.to_str().expect("utf-8"), "--check", board, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(report.to_string().contains("constant-velocity"), "{report}");

    // docs/cluster's Slurm recipes with everything in the store (dataset, shards, results):
    // three array tasks at once, then the step after them; no folder is shared.
    let exe = Path::new(env!("CARGO_BIN_EXE_physworld"));
    let path = format!("{}:{}", exe.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let recipe = |script: &str, step: &str, env: &[(&str, &str)]| {
        let mut bash = Command::new("bash");
        bash.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cluster").join(script)).arg(step);
        bash.envs(moto.aws_env()).env("PATH", &path).env("SHARDS", "3").env_remove("JOB_COMPLETION_INDEX");
        bash.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        bash
    };
    let array = |script: &str, env: &[(&str, &str)]| {
        let tasks: Vec<Child> = (0..3)
            .map(|i| recipe(script, "worker", env).env("SLURM_ARRAY_TASK_ID", i.to_string()).spawn().expect("spawns"))
            .collect();
        for t in tasks {
            ok(t.wait_with_output().expect("task"));
        }
        ok(recipe(script, "after", env).output().expect("after"));
    };
    let slurm_data = "s3://physworld/slurm/tiny";
    array("slurm-generate.sh", &[("SUITE", tiny().to_str().expect("utf-8")), ("DATA", slurm_data)]);
    assert_same_as(&moto, slurm_data, &local, "Slurm recipe");
    let slurm_out = "s3://physworld/slurm/results";
    array("slurm-bench.sh", &[("DATA", slurm_data), ("OUT", slurm_out), ("MODELS", "constant-velocity majority")]);
    let slurm_res = tmp.path().join("slurm-results");
    moto.download("physworld", "slurm/results", &slurm_res);
    assert_eq!(
        snapshot(&slurm_res.join("shards")).len(),
        3 * 2,
        "three shard files per model under shards/: {:?}",
        snapshot(&slurm_res).into_keys().collect::<Vec<_>>()
    );
    same_results(&slurm_res, "Slurm recipe's merged results");
    // A retried worker (a resubmitted array task) rewrites its shards with the same answers.
    let bench_env = [("DATA", slurm_data), ("OUT", slurm_out), ("MODELS", "constant-velocity majority")];
    ok(recipe("slurm-bench.sh", "worker", &bench_env).env("SLURM_ARRAY_TASK_ID", "1").output().expect("retry"));
    let retried = tmp.path().join("slurm-retried");
    moto.download("physworld", "slurm/results/shards", &retried);
    let answers = |dir: &Path| -> Vec<serde_json::Value> {
        snapshot(dir)
            .into_values()
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).expect("shard")["answers"].clone())
            .collect()
    };
    assert_eq!(answers(&retried), answers(&slurm_res.join("shards")), "a retried shard's answers");

    // docs/cluster's Kubernetes manifests, each Indexed Job's pods at once, with the volumes'
    // paths replaced by store prefixes (`/data/physion` -> s3://physworld/k8s/data, ...).
    let (kdata, kout) = ("s3://physworld/k8s/data", "s3://physworld/k8s/results");
    let pods = |file: &str| -> usize {
        let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cluster").join(file))
            .expect("manifest");
        let line = yaml.lines().find_map(|l| l.trim().strip_prefix("command: ")).expect("a command");
        let args: Vec<String> = serde_json::from_str(line).expect("a flow list of strings");
        let args: Vec<String> = args
            .into_iter()
            .map(|a| match a.as_str() {
                "/suites/physion.toml" => tiny().display().to_string(),
                "/data/physion" => kdata.to_string(),
                "/results/physion" => kout.to_string(),
                _ => a,
            })
            .collect();
        assert_eq!(args[0], "physworld", "{file}");
        let n = yaml.lines().find_map(|l| l.trim().strip_prefix("completions: ")).map_or(1, |n| n.parse().expect("n"));
        let spawn = |i: usize| {
            let mut c = bin();
            c.args(&args[1..]).envs(moto.aws_env()).env("JOB_COMPLETION_INDEX", i.to_string());
            c.env_remove("SLURM_ARRAY_TASK_ID").stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().expect("spawns")
        };
        let running: Vec<Child> = (0..n).map(spawn).collect();
        for p in running {
            ok(p.wait_with_output().expect("pod"));
        }
        n
    };
    assert_eq!(pods("k8s-generate.yaml"), 8);
    assert_eq!(pods("k8s-finalize.yaml"), 1);
    assert_same_as(&moto, kdata, &local, "Kubernetes manifests");
    assert_eq!(pods("k8s-bench.yaml"), 8);
    assert_eq!(pods("k8s-merge.yaml"), 1);
    let kres = tmp.path().join("k8s-results");
    moto.download("physworld", "k8s/results", &kres);
    let kref = tmp.path().join("k8s-reference");
    let o = kref.to_str().expect("utf-8");
    moto.run(&["bench", "--data", kdata, "--model", "oracle", "--model", "raw-state", "--out", o]);
    let want: Vec<_> = snapshot(&kref).into_keys().collect();
    let got: Vec<_> = snapshot(&kres).into_keys().filter(|n| !n.starts_with("shards")).collect();
    assert_eq!(got, want, "the merged Indexed Job's results");
    for n in want.iter().filter(|n| n.to_string_lossy().ends_with(".json")) {
        assert_eq!(result_without_time(&kres.join(n)), result_without_time(&kref.join(n)), "{n:?}");
    }

    // A damaged object is found and named; a folder marker (an empty object named like
    // the prefix, as consoles make) is not a file of the dataset.
    moto.put_object("physworld", "sharded/data/val-00000-of-00001.parquet", "not parquet");
    let o = moto.physworld(&["inspect", "--data", sharded]).output().expect("runs");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("data/val-00000-of-00001.parquet") && !e.contains("panicked"), "{e}");
    moto.put_object("physworld", "marked/", "");
    let marked = "s3://physworld/marked";
    let o = moto.physworld(&["generate", "--json", "--out", marked, "--suite"]).arg(tiny()).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A wrong bucket is an error naming the URL, not an empty dataset.
    let o = moto.physworld(&["inspect", "--data", "s3://no-such-bucket/x"]).output().expect("runs");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("s3://no-such-bucket/x") && !e.contains("panicked"), "{e}");
}

/// A stand-in OpenAI-compatible server that answers `{"answer": "yes"}` to every request;
/// returns its base URL and the count of requests served.
#[cfg(feature = "llm")]
fn yes_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut req = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= h + 4 + len {
                        break;
                    }
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let content = serde_json::json!({ "answer": "yes" }).to_string();
            let body = serde_json::json!({ "choices": [{ "message": { "role": "assistant", "content": content } }] })
                .to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, served)
}

/// The LLM reply cache in the store: a bench asks the server once per request and leaves
/// one object per answer under the cache prefix; an offline rerun (another worker, say)
/// replays every answer from the store without a request and writes the same results.
#[cfg(feature = "llm")]
#[test]
fn the_llm_reply_cache_lives_in_the_store_and_replays_offline() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::tempdir().expect("tmp");
    let local = tiny_dataset(tmp.path());
    let moto = Moto::start();
    moto.bucket("physworld");
    let (url, served) = yes_server();
    let model = format!("openai:m@{url}");
    let bench = |out: &str, offline: bool| {
        let mut c = moto.physworld(&["bench", "--model", &model, "--tasks", "contact", "--limit", "3", "--out", out]);
        c.arg("--data").arg(&local);
        c.env("PHYSWORLD_LLM_CACHE", "s3://physworld/llm-cache").env("OPENAI_API_KEY", "sk-physworld-test");
        if offline {
            c.env("PHYSWORLD_LLM_OFFLINE", "1");
        } else {
            c.env_remove("PHYSWORLD_LLM_OFFLINE");
        }
        ok(c.output().expect("runs"))
    };
    bench("s3://physworld/llm/a", false);
    let asked = served.load(Ordering::SeqCst);
    assert!(asked >= 3, "one request per item at least: {asked}");
    let cache = tmp.path().join("cache");
    moto.download("physworld", "llm-cache", &cache);
    assert_eq!(snapshot(&cache).len(), asked, "one cached answer per request");
    bench("s3://physworld/llm/b", true);
    assert_eq!(served.load(Ordering::SeqCst), asked, "the offline rerun asked the server");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    moto.download("physworld", "llm/a", &a);
    moto.download("physworld", "llm/b", &b);
    let (sa, sb) = (snapshot(&a), snapshot(&b));
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    for n in sa.keys() {
        if n.to_string_lossy().ends_with(".json") {
            assert_eq!(result_without_time(&a.join(n)), result_without_time(&b.join(n)), "{n:?}");
        }
    }
}

/// Staged files go up in 8-MiB parts of a multipart upload (an empty one in a single put):
/// against the server, a file of three parts, one of exactly one part and an empty one land
/// whole, `digest`'s ranged reads hash them right, and S3's ETag says how many parts each
/// upload had. The store is configured in code (`ObjectStorage::open_with`), not through
/// the environment.
#[test]
fn staged_files_of_several_parts_land_whole_in_s3() {
    use physworld_pipeline::{ObjectStorage, Storage, sha256_hex};
    let moto = Moto::start();
    moto.bucket("parts");
    let endpoint = moto.endpoint();
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ];
    let store = ObjectStorage::open_with("s3://parts/staged", &options).expect("opens");
    const MIB: usize = 1 << 20;
    for (n, parts) in [(19 * MIB + MIB / 2, Some(3)), (8 * MIB, Some(1)), (0, None)] {
        // Bytes that differ from part to part, so a part written twice or out of order shows.
        let bytes: Vec<u8> = (0..n as u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let target = format!("{n}.bin");
        let mut staged = store.stage(&target).expect("stages");
        staged.take_file().expect("a file").write_all(&bytes).expect("writes");
        store.commit(staged).expect("commits");
        assert!(store.get(&target).expect("reads") == bytes, "{n} bytes came back different");
        assert_eq!(store.digest(&target).expect("digests"), (n as u64, sha256_hex(&bytes)), "{n} bytes");
        let etag = moto.etag("parts", &format!("staged/{target}"));
        match parts {
            Some(p) => assert!(etag.ends_with(&format!("-{p}\"")), "{n} bytes: ETag {etag}, not a {p}-part upload's"),
            None => assert!(!etag.contains('-'), "{n} bytes: ETag {etag}, not a single put's"),
        }
    }
}
