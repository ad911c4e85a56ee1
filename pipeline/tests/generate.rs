//! Determinism, resume, sharding, finalize and inspect.

mod common;

use common::{assert_same, run, small_suite, snapshot};
use physworld_pipeline::{LocalStorage, PipelineError, WorkerShard, finalize, inspect};

#[test]
fn one_and_two_threads_write_identical_bytes() {
    let suite = small_suite();
    let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let ra = run(&suite, a.path(), WorkerShard::ALL, false, 1).expect("generates");
    run(&suite, b.path(), WorkerShard::ALL, false, 2).expect("generates");
    assert!(ra.finalized);
    let (sa, sb) = (snapshot(a.path()), snapshot(b.path()));
    assert_same(&sa, &sb, "1 vs 2 threads");
    // The layout promised by the suite: 3 + 1 + 1 + 1 + 1 files of frames.
    let data: Vec<String> = sa.keys().filter(|p| p.starts_with("data")).map(|p| p.display().to_string()).collect();
    assert_eq!(
        data,
        [
            "data/hidden_test-00000-of-00001.parquet",
            "data/readout-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet",
            "data/train-00000-of-00003.parquet",
            "data/train-00001-of-00003.parquet",
            "data/train-00002-of-00003.parquet",
            "data/val-00000-of-00001.parquet",
        ]
    );
}

#[test]
fn sharded_run_plus_finalize_equals_unsharded_run() {
    let suite = small_suite();
    let (whole, parts) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    run(&suite, whole.path(), WorkerShard::ALL, false, 2).expect("generates");
    for i in 0..3 {
        let r = run(&suite, parts.path(), WorkerShard { index: i, count: 3 }, false, 1).expect("shard generates");
        assert!(!r.finalized);
        if i < 2 {
            // Finalising early refuses, naming a missing shard, and writes nothing.
            let err = finalize(&LocalStorage::new(parts.path())).expect_err("incomplete");
            assert!(matches!(err, PipelineError::Incomplete { .. }), "{err}");
            assert!(err.to_string().contains("shards are missing"), "{err}");
            assert!(!parts.path().join("meta/info.json").exists());
        }
    }
    finalize(&LocalStorage::new(parts.path())).expect("finalises");
    assert_same(&snapshot(whole.path()), &snapshot(parts.path()), "sharded vs unsharded");
}

#[test]
fn resume_redoes_missing_and_damaged_shards_only() {
    let suite = small_suite();
    let (reference, d) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    run(&suite, reference.path(), WorkerShard::ALL, false, 2).expect("generates");
    run(&suite, d.path(), WorkerShard::ALL, false, 2).expect("generates");
    // Damage: truncate one data file, delete another shard's manifest, leave a temp file.
    let truncated = d.path().join("data/train-00001-of-00003.parquet");
    let bytes = std::fs::read(&truncated).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("truncate");
    std::fs::remove_file(d.path().join("meta/shards/val-00000-of-00001.json")).expect("rm");
    std::fs::write(d.path().join("data/.tmp-test-00000-of-00001.parquet.4242-0"), b"partial").expect("tmp");

    // Without --resume the folder is refused and left as it is.
    let err = run(&suite, d.path(), WorkerShard::ALL, false, 2).expect_err("refuses");
    assert!(err.to_string().contains("--resume"), "{err}");
    assert_eq!(std::fs::read(&truncated).expect("read").len(), bytes.len() / 2);

    // inspect names the damaged file instead of panicking.
    let report = inspect(&LocalStorage::new(d.path())).expect("inspects");
    assert!(!report.ok());
    assert!(
        report.problems.iter().any(|p| p.contains("train-00001-of-00003.parquet") && p.contains("truncated")),
        "{:?}",
        report.problems
    );
    assert!(report.problems.iter().any(|p| p.contains("val-00000-of-00001")), "{:?}", report.problems);

    let r = run(&suite, d.path(), WorkerShard::ALL, true, 2).expect("resumes");
    assert_eq!((r.shards_written, r.shards_skipped), (2, 5), "only the two damaged shards are redone");
    assert_same(&snapshot(reference.path()), &snapshot(d.path()), "resumed vs uninterrupted");
    assert!(inspect(&LocalStorage::new(d.path())).expect("inspects").ok());
}

#[test]
fn a_folder_never_mixes_two_suites() {
    let d = tempfile::tempdir().expect("tmp");
    run(&small_suite(), d.path(), WorkerShard::ALL, false, 2).expect("generates");
    let other = small_suite().with_train_samples(11);
    let err = run(&other, d.path(), WorkerShard::ALL, true, 2).expect_err("refuses another suite");
    assert!(err.to_string().contains("suite hash"), "{err}");
}

#[test]
fn corrupt_parquet_is_reported_by_name() {
    let d = tempfile::tempdir().expect("tmp");
    run(&small_suite(), d.path(), WorkerShard::ALL, false, 2).expect("generates");
    // Same length, garbage bytes: the hash check names the file.
    let p = d.path().join("data/test-00000-of-00001.parquet");
    let n = std::fs::metadata(&p).expect("meta").len() as usize;
    std::fs::write(&p, vec![7u8; n]).expect("write");
    let report = inspect(&LocalStorage::new(d.path())).expect("inspects");
    assert!(
        report.problems.iter().any(|x| x.contains("test-00000-of-00001.parquet") && x.contains("sha256")),
        "{:?}",
        report.problems
    );
    // And decoding garbage is an error naming the file, not a panic.
    let err = physworld_pipeline::decode(vec![7u8; 100], "data/x.parquet").expect_err("not parquet");
    assert!(err.to_string().contains("data/x.parquet"), "{err}");
}

#[test]
fn too_few_object_slots_is_a_clear_error() {
    let src = common::SMALL.replace("max_objects = 8", "max_objects = 2");
    let suite = physworld_pipeline::Suite::parse(&src, std::path::Path::new("s.toml")).expect("parses");
    let d = tempfile::tempdir().expect("tmp");
    let err = run(&suite, d.path(), WorkerShard::ALL, false, 2).expect_err("too many objects");
    assert!(err.to_string().contains("max_objects = 2"), "{err}");
    // Shards finished before the error stay complete; nothing is half-written.
    for f in std::fs::read_dir(d.path().join("data")).expect("data").map(|e| e.expect("entry").file_name()) {
        let name = f.to_string_lossy().to_string();
        assert!(!name.starts_with(".tmp-"), "temporary file left: {name}");
        let stem = name.trim_end_matches(".parquet");
        assert!(d.path().join(format!("meta/shards/{stem}.json")).exists(), "{name} has no manifest");
    }
}
