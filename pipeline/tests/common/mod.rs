//! Shared helpers of the pipeline tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use physworld_pipeline::{GenerateOptions, LocalStorage, Suite, WorkerShard, generate};

/// A small suite: 2 Physion families and a VoE one, 3 files in train.
pub const SMALL: &str = r#"
[suite]
name = "small"
seed = 5
samples_per_file = 4
max_objects = 8

[splits]
train = 10
val = 3
readout = 2
test = 3

[hidden_test]
seed = 77
samples = 2

[[family]]
name = "drop"
params = { count = [2, 3], duration_s = 1.0 }

[[family]]
name = "push"
params = { duration_s = 1.0 }

[[family]]
name = "voe-permanence"
"#;

pub fn small_suite() -> Suite {
    Suite::parse(SMALL, Path::new("small.toml")).expect("valid suite")
}

pub fn run(
    suite: &Suite,
    dir: &Path,
    shard: WorkerShard,
    resume: bool,
    threads: usize,
) -> physworld_pipeline::Result<physworld_pipeline::GenerateReport> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    pool.install(|| {
        generate(
            suite,
            &LocalStorage::new(dir),
            &GenerateOptions { shard, resume, progress: &|_| {}, stop: None, pixels: None },
        )
    })
}

/// Every file under `dir` (relative path -> bytes).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).expect("prefix").to_path_buf(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

pub fn assert_same(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    assert_eq!(ka, kb, "{what}: different file sets");
    for (k, v) in a {
        assert!(v == &b[k], "{what}: {} differs", k.display());
    }
}
