//! The harness end to end on the tiny suite: items, reference adapters, scores, result files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use physworld_benchmarks::adapters::{self, Answer};
use physworld_benchmarks::bench::{BenchOptions, Prepared, run};
use physworld_benchmarks::results::{self, ResultFile};
use physworld_benchmarks::tasks::{self, Target, TaskKind, TaskOptions, pos};
use physworld_pipeline::{Dataset, GenerateOptions, LocalStorage, Suite, generate};

/// The tiny suite, generated once per test binary.
fn data() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("tiny");
        let suite = Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/tiny.toml")).expect("suite");
        generate(&suite, &LocalStorage::new(&dir), &GenerateOptions::default()).expect("generates");
        (tmp, dir)
    });
    p
}

fn prepared() -> &'static Prepared {
    static P: OnceLock<Prepared> = OnceLock::new();
    P.get_or_init(|| {
        Prepared::new(data(), BenchOptions { resamples: 200, ..BenchOptions::default() }).expect("prepares")
    })
}

fn bench(spec: &str, out: &Path) -> ResultFile {
    let mut a = adapters::parse(spec).expect("spec");
    let path = run(prepared(), a.as_mut(), out, &|_| {}).expect("runs");
    results::read(&path).expect("valid result file")
}

fn primary(r: &ResultFile, task: &str) -> f64 {
    r.tasks.iter().find(|t| t.id == task).and_then(|t| t.primary_metric()).map(|m| m.value).expect("task scored")
}

fn metric(r: &ResultFile, task: &str, name: &str, group: &str) -> f64 {
    r.tasks
        .iter()
        .find(|t| t.id == task)
        .and_then(|t| t.metrics.iter().find(|m| m.name == name && m.group == group))
        .map(|m| m.value)
        .unwrap_or_else(|| panic!("{task} {name} {group} missing"))
}

#[test]
fn every_task_has_items_and_contact_observation_ends_before_contact() {
    let p = prepared();
    for k in TaskKind::ALL {
        assert!(p.items[&k].items.len() >= 20, "{k:?}: {} items", p.items[&k].items.len());
        assert!(!p.readout[&k].items.is_empty(), "{k:?}: no readout items");
    }
    for it in &p.items[&TaskKind::Contact].items {
        let m = p.ds.meta(it.episodes[0]).expect("meta");
        assert!(
            m.contact_frame.is_none_or(|f| f as usize >= it.observe),
            "{}: contact at {:?}",
            it.id,
            m.contact_frame
        );
    }
    // Labels are balanced per family: a constant answer scores exactly chance.
    let yes = p.items[&TaskKind::Contact].items.iter().filter(|i| i.answer_index() == Some(0)).count();
    assert_eq!(2 * yes, p.items[&TaskKind::Contact].items.len());
    // VoE items are whole quadruplets: two possible, two impossible.
    for it in &p.items[&TaskKind::Voe].items {
        let Target::Possible(q) = &it.target else { panic!("voe target") };
        assert_eq!(q, &[true, true, false, false]);
    }
}

#[test]
fn items_are_content_hashed() {
    let p = prepared();
    let ds = Dataset::open(data()).expect("opens");
    let frames = tasks::Frames::load(&ds, "test").expect("frames");
    let again = tasks::build(&ds, &frames, "test", TaskKind::Forecast, &TaskOptions::default()).expect("items");
    assert_eq!(again.content_hash(), p.items[&TaskKind::Forecast].content_hash());
    let other = TaskOptions { horizons: vec![10, 30], ..TaskOptions::default() };
    let changed = tasks::build(&ds, &frames, "test", TaskKind::Forecast, &other).expect("items");
    assert_ne!(changed.content_hash(), again.content_hash());
    let bad = TaskOptions { horizons: vec![0], ..TaskOptions::default() };
    let e = bad.validate().expect_err("zero horizon").to_string();
    assert!(e.contains("horizons") && e.contains("[0]"), "{e}");
}

#[test]
fn oracle_is_the_ceiling_and_baselines_sit_where_they_should() {
    let tmp = tempfile::tempdir().expect("tmp");
    let oracle = bench("oracle", tmp.path());
    for t in ["contact", "outcome", "voe"] {
        assert_eq!(primary(&oracle, t), 1.0, "oracle {t}");
    }
    assert_eq!(primary(&oracle, "forecast"), 0.0, "oracle re-simulation is bit-exact");
    assert_eq!(metric(&oracle, "voe", "auroc", "all"), 1.0);

    // A constant scorer: exactly chance on balanced contact items and on VoE.
    let majority = bench("majority", tmp.path());
    assert_eq!(primary(&majority, "contact"), 0.5);
    assert_eq!(primary(&majority, "voe"), 0.5);
    assert_eq!(metric(&majority, "voe", "auroc", "all"), 0.5);
    assert_eq!(majority.unsupported, vec!["forecast"]);

    // Chance: near 50% on binary tasks (a seeded draw of about 60 coin flips per task).
    let chance = bench("chance:3", tmp.path());
    for t in ["contact", "voe"] {
        let v = primary(&chance, t);
        assert!((v - 0.5).abs() < 0.2, "chance {t}: {v}");
    }

    // Constant velocity: worse than the oracle, better than not moving at all.
    let cv = bench("constant-velocity", tmp.path());
    let cv_ade = primary(&cv, "forecast");
    let items = &prepared().items[&TaskKind::Forecast].items;
    let mut stat = Vec::new();
    for it in items {
        let e = prepared().frames.get(it.episodes[0]).expect("frames");
        let Target::Positions(t) = &it.target else { panic!() };
        for h in t {
            for (j, &o) in it.objects.iter().enumerate() {
                stat.push(physworld_benchmarks::metrics::dist(pos(e, it.observe - 1, o as usize), h[j]));
            }
        }
    }
    let static_ade = stat.iter().sum::<f64>() / stat.len() as f64;
    assert!(0.0 < cv_ade && cv_ade < static_ade, "constant velocity {cv_ade} vs static {static_ade}");
}

#[test]
fn result_files_are_valid_deterministic_and_logged_per_item() {
    let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let mut r1 = bench("constant-velocity", a.path());
    let mut r2 = bench("constant-velocity", b.path());
    r1.wall_time_s = 0.0;
    r2.wall_time_s = 0.0;
    assert_eq!(r1, r2, "same items, same model, same seed: same results");
    let json = a.path().join("constant-velocity__tiny.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("read")).expect("json");
    results::validate(&v).expect("schema");
    let logs = results::read_items(&json, &r1).expect("items");
    let n: u64 = r1.tasks.iter().map(|t| t.n_items).sum();
    assert_eq!(logs.len() as u64, n);
    assert_eq!(
        std::fs::read(a.path().join("constant-velocity__tiny.items.jsonl")).expect("a"),
        std::fs::read(b.path().join("constant-velocity__tiny.items.jsonl")).expect("b")
    );
    assert_eq!(r1.suite.name, "tiny");
    assert_eq!(r1.suite.content_hash, prepared().content_hash());
    // Breaking the file is caught by the schema check, naming the field.
    let mut broken = v.clone();
    broken["tasks"][0]["metrics"][0]["ci"] = serde_json::json!([0.1]);
    assert!(results::validate(&broken).expect_err("bad ci").contains("ci"));
}

#[test]
fn bad_specs_and_missing_checkpoints_are_clear_errors() {
    let e = adapters::parse("gpt-7").err().expect("unknown").to_string();
    assert!(e.contains("gpt-7") && e.contains("oracle") && e.contains("jepa:<run dir>"), "{e}");
    let e = adapters::parse("chance:x").err().expect("bad seed").to_string();
    assert!(e.contains("chance:SEED"), "{e}");
    let e = adapters::parse("jepa:/nonexistent/run").err().expect("missing").to_string();
    assert!(e.contains("/nonexistent/run") && e.contains("config.json"), "{e}");
    let e = Prepared::new(data(), BenchOptions { split: "nope".into(), ..BenchOptions::default() })
        .err()
        .expect("split")
        .to_string();
    assert!(e.contains("nope") && e.contains("test"), "{e}");
}

#[test]
fn answers_of_the_wrong_shape_count_as_invalid() {
    let p = prepared();
    let task = &p.items[&TaskKind::Contact];
    let answers: Vec<Answer> = task.items.iter().map(|_| Answer::Choice(7)).collect();
    let b = physworld_benchmarks::score::Bootstrap { seed: 0, resamples: 50 };
    let (r, logs) = physworld_benchmarks::score::score(task, &[(None, answers)], &TaskOptions::default(), b);
    assert_eq!(r.invalid, task.items.len() as u64);
    assert_eq!(r.primary_metric().expect("accuracy").value, 0.0);
    assert!(logs.iter().all(|l| l.invalid && l.correct == Some(false)));
}

#[test]
fn jepa_and_state_mse_checkpoints_answer_every_task() {
    use physworld_model::{Objective, TrainConfig, TrainOptions, train};
    let tmp = tempfile::tempdir().expect("tmp");
    for objective in [Objective::Jepa, Objective::StateMse] {
        let run = tmp.path().join(format!("{objective:?}"));
        let mut cfg = TrainConfig::preset("tiny").expect("preset");
        cfg.model.objective = objective;
        cfg.schedule.steps = 2;
        cfg.schedule.warmup_steps = 0;
        cfg.data.batch_size = 4;
        train(&TrainOptions {
            data: data().to_path_buf(),
            out: run.clone(),
            config: cfg,
            device: candle_core::Device::Cpu,
            resume: false,
            stop_after: None,
            on_step: &|_| {},
        })
        .expect("trains");
        let r = bench(&format!("jepa:{}", run.display()), tmp.path());
        assert!(r.unsupported.is_empty(), "{objective:?}: {:?}", r.unsupported);
        let kind = if objective == Objective::Jepa { "jepa" } else { "state-mse" };
        assert_eq!(r.model.kind, kind);
        assert_eq!(r.model.checkpoint_hash.as_ref().map(String::len), Some(64));
        for t in &r.tasks {
            assert_eq!(t.invalid, 0, "{objective:?} {}: invalid answers", t.id);
            let m = t.primary_metric().expect("primary");
            assert!(m.value.is_finite() && m.ci[0] <= m.value && m.value <= m.ci[1], "{objective:?} {}: {m:?}", t.id);
        }
        // Physion's three readout protocols are reported for contact.
        let contact = r.tasks.iter().find(|t| t.id == "contact").expect("contact");
        for p in ["readout=all", "readout=only", "readout=all-but-one"] {
            assert!(contact.metrics.iter().any(|m| m.group == p), "{p} missing");
        }
    }
}

#[test]
fn item_ids_and_hashes_are_unique_within_a_task() {
    for (k, t) in &prepared().items {
        let mut ids: Vec<&str> = t.items.iter().map(|i| i.id.as_str()).collect();
        let mut hashes: Vec<&str> = t.items.iter().map(|i| i.hash.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!((ids.len(), hashes.len()), (n, n), "{k:?}: duplicate ids or hashes");
    }
}
