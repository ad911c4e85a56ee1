//! Datasets in object storage, against a real S3-compatible server on 127.0.0.1: moto's
//! server (PyPI `moto[server]`, in tests/python/requirements.txt), started by this test
//! from `$PHYSWORLD_PYTHON` (`.ci/run` sets it to its venv). A missing moto fails the test.
//!
//! Generation killed mid-way and resumed in the store, a sharded generation finalised
//! there, inspect, training and bench reading from it: each gives the same bytes as the
//! same command on a local folder, and so do docs/cluster's Slurm recipes run as concurrent
//! local workers on a dataset in the store. pyarrow and polars read the dataset straight
//! from the store (tests/python/check_store.py).

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

    // bench reads the store; its result file and item log are the local run's.
    let bench = |data: &str, out: &Path| {
        moto.run(&[
            "bench",
            "--data",
            data,
            "--model",
            "constant-velocity",
            "--model",
            "majority",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
    };
    let (res_store, res_disk) = (tmp.path().join("res-s3"), tmp.path().join("res-local"));
    bench(url, &res_store);
    bench(local.to_str().expect("utf-8"), &res_disk);
    let names: Vec<_> = snapshot(&res_disk).into_keys().collect();
    assert!(names.iter().any(|n| n.to_string_lossy().ends_with(".json")), "{names:?}");
    assert_eq!(snapshot(&res_store).into_keys().collect::<Vec<_>>(), names);
    for n in &names {
        if n.to_string_lossy().ends_with(".json") {
            assert_eq!(result_without_time(&res_store.join(n)), result_without_time(&res_disk.join(n)), "{n:?}");
        } else {
            assert_eq!(std::fs::read(res_store.join(n)).ok(), std::fs::read(res_disk.join(n)).ok(), "{n:?}");
        }
    }
    let o = moto.run(&["leaderboard", "--results", res_store.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("constant-velocity"));

    // docs/cluster's Slurm recipes with the dataset in the store: three array tasks at once,
    // then the step after them; the results (on a shared folder) are the unsharded run's.
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
    let slurm_out = tmp.path().join("slurm-results");
    let out = slurm_out.to_str().expect("utf-8");
    array("slurm-bench.sh", &[("DATA", slurm_data), ("OUT", out), ("MODELS", "constant-velocity majority")]);
    for n in names.iter().filter(|n| n.to_string_lossy().ends_with(".json")) {
        assert_eq!(result_without_time(&slurm_out.join(n)), result_without_time(&res_disk.join(n)), "{n:?}");
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
