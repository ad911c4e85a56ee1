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

/// The same items without the planning tasks, for checks of the prediction readouts
/// (plan-push's latent search is most of a checkpoint's bench time).
fn prepared_predictions() -> &'static Prepared {
    static P: OnceLock<Prepared> = OnceLock::new();
    P.get_or_init(|| {
        let opts = BenchOptions { resamples: 200, plan_launch: false, plan_push: false, ..BenchOptions::default() };
        Prepared::new(data(), opts).expect("prepares")
    })
}

fn bench(spec: &str, out: &Path) -> ResultFile {
    bench_on(prepared(), spec, out)
}

fn bench_on(p: &Prepared, spec: &str, out: &Path) -> ResultFile {
    let mut a = adapters::parse(spec).expect("spec");
    let path = run(p, a.as_mut(), out, &|_| {}).expect("runs");
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
        // Nor do they nearly touch there (the observation would decide the answer).
        if let [a, b] = it.objects[..] {
            let e = p.frames.get(it.episodes[0]).expect("frames");
            let both = |f: usize| e.present[f * e.slots + a as usize] && e.present[f * e.slots + b as usize];
            for f in (0..it.observe).filter(|&f| both(f)) {
                let gap = tasks::box_gap(e, f, a as usize, b as usize);
                assert!(gap > tasks::NEAR_CONTACT_M, "{}: {gap} m apart at frame {f}", it.id);
            }
        }
    }
    assert!(
        p.items[&TaskKind::Contact].dropped.contains_key("agent and patient nearly touching in the observed frames"),
        "{:?}",
        p.items[&TaskKind::Contact].dropped
    );
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
    // Majority neither forecasts nor plans.
    assert_eq!(majority.unsupported, vec!["forecast", "plan-push"]);

    // Chance: near 50% on binary tasks (a seeded draw of about 60 coin flips per task).
    let chance = bench("chance:3", tmp.path());
    for t in ["contact", "voe"] {
        let v = primary(&chance, t);
        assert!((v - 0.5).abs() < 0.2, "chance {t}: {v}");
    }

    // Constant velocity: worse than the oracle, and better than not moving at all half a
    // second ahead, where the observed velocity still says where things go. (Over both
    // horizons, bounces and stops make straight extrapolation no better than standing
    // still on this small suite: 0.210 m against 0.210 m.)
    let cv = bench("constant-velocity", tmp.path());
    assert!(primary(&cv, "forecast") > 0.0);
    let log = std::fs::read_to_string(tmp.path().join(&cv.items_file)).expect("item log");
    let logged: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("line"))
        .filter(|l| l["task"] == "forecast")
        .collect();
    let items = &prepared().items[&TaskKind::Forecast].items;
    assert_eq!(logged.len(), items.len());
    let (mut moved, mut stayed) = (Vec::new(), Vec::new());
    for (l, it) in logged.iter().zip(items) {
        let e = prepared().frames.get(it.episodes[0]).expect("frames");
        let Target::Positions(t) = &it.target else { panic!() };
        let first = &l["prediction"]["positions"][0];
        for (j, &o) in it.objects.iter().enumerate() {
            let p: Vec<f32> = (0..3).map(|k| first[j][k].as_f64().expect("coordinate") as f32).collect();
            moved.push(physworld_benchmarks::metrics::dist([p[0], p[1], p[2]], t[0][j]));
            stayed.push(physworld_benchmarks::metrics::dist(pos(e, it.observe - 1, o as usize), t[0][j]));
        }
    }
    let (cv_ade, static_ade) =
        (moved.iter().sum::<f64>() / moved.len() as f64, stayed.iter().sum::<f64>() / stayed.len() as f64);
    assert!(0.0 < cv_ade && cv_ade < static_ade, "0.5 s ahead: constant velocity {cv_ade} vs static {static_ade}");
}

#[test]
fn result_files_are_valid_deterministic_and_logged_per_item() {
    let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let mut r1 = bench("constant-velocity", a.path());
    let mut r2 = bench("constant-velocity", b.path());
    r1.wall_time_s = 0.0;
    r2.wall_time_s = 0.0;
    assert_eq!(r1, r2, "same items, same model, same seed: same results");
    let json = a.path().join("constant-velocity__tiny__test.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("read")).expect("json");
    results::validate(&v).expect("schema");
    let logs = results::read_items(&json, &r1).expect("items");
    let n: u64 = r1.tasks.iter().map(|t| t.n_items).sum();
    assert_eq!(logs.len() as u64, n);
    assert_eq!(
        std::fs::read(a.path().join("constant-velocity__tiny__test.items.jsonl")).expect("a"),
        std::fs::read(b.path().join("constant-velocity__tiny__test.items.jsonl")).expect("b")
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
    assert!(e.contains("gpt-7") && e.contains("oracle") && e.contains(":<run dir>"), "{e}");
    let e = adapters::parse("jepa,features=all:/x").err().expect("bad option").to_string();
    assert!(e.contains("features=all") && e.contains("features=model|both"), "{e}");
    let e = adapters::parse("jepa,rollout=0:/x").err().expect("bad rollout").to_string();
    assert!(e.contains("rollout is `0`") && e.contains("rollout=FRAMES"), "{e}");
    let e = adapters::parse("jepa,judge=rules:/x").err().expect("bad judge").to_string();
    assert!(e.contains("judge=rules") && e.contains("judge=probe|trajectory"), "{e}");
    let e = adapters::parse("jepa,pairs=yes:/x").err().expect("bad pairs").to_string();
    assert!(e.contains("pairs=yes") && e.contains("pairs=on|off"), "{e}");
    // The raw-state probe takes the pair relation and the probe only: it has no rollout.
    let e = adapters::parse("raw-state,rollout=end").err().expect("raw-state rollout").to_string();
    assert!(e.contains("rollout=end") && e.contains("raw-state[,pairs=on|off]"), "{e}");
    let e = adapters::parse("jepa,probe=mlp:/x").err().expect("bad probe").to_string();
    assert!(e.contains("probe=mlp") && e.contains("probe=linear|attentive"), "{e}");
    let e =
        adapters::parse("jepa,judge=trajectory,probe=attentive:/x").err().expect("probe with trajectory").to_string();
    assert!(e.contains("judge=trajectory") && e.contains("no probe=attentive"), "{e}");
    // A trailing comma is not a second spelling of `raw-state` (its result file would
    // overwrite the plain row's).
    assert!(adapters::parse("raw-state,").is_err());
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
    let (r, logs) = physworld_benchmarks::score::score(task, &[(None, answers)], &p.frames, &TaskOptions::default(), b);
    assert_eq!(r.invalid, task.items.len() as u64);
    let m = r.primary_metric().expect("accuracy");
    assert_eq!((m.value, m.invalid), (0.0, task.items.len() as u64));
    assert!(logs.iter().all(|l| l.invalid && l.correct == Some(false)));
}

#[test]
fn an_invalid_forecast_scores_no_better_than_standing_still_and_never_zero() {
    let p = prepared();
    let task = &p.items[&TaskKind::Forecast];
    let b = physworld_benchmarks::score::Bootstrap { seed: 0, resamples: 50 };
    let score = |answers: Vec<Answer>| {
        physworld_benchmarks::score::score(task, &[(None, answers)], &p.frames, &TaskOptions::default(), b)
    };
    // Every answer invalid (what a server answering 401 used to produce): the worst score,
    // not the oracle's 0.
    let (r, logs) = score(task.items.iter().map(|_| Answer::Invalid("HTTP 401".into())).collect());
    let ade = r.primary_metric().expect("ade");
    assert_eq!((r.invalid, ade.invalid), (task.items.len() as u64, task.items.len() as u64));
    assert!(ade.value >= physworld_benchmarks::score::INVALID_FORECAST_ERROR_M, "{ade:?}");
    assert!(logs.iter().all(|l| l.invalid && l.correct == Some(false) && l.score <= -1.0));
    let success = r.metrics.iter().find(|m| m.name == "success" && m.group == "all").expect("success");
    assert_eq!(success.value, 0.0);
    // The no-motion forecast answered validly scores at least as well, item by item.
    let still: Vec<Answer> = task
        .items
        .iter()
        .map(|it| {
            let e = p.frames.get(it.episodes[0]).expect("frames");
            let held: Vec<[f32; 3]> = it.objects.iter().map(|&o| pos(e, it.observe - 1, o as usize)).collect();
            Answer::Positions(vec![held; it.horizons.len()])
        })
        .collect();
    let (r2, logs2) = score(still);
    assert_eq!(r2.invalid, 0);
    assert!(r2.primary_metric().expect("ade").value < ade.value);
    for (a, b) in logs.iter().zip(&logs2) {
        assert!(a.score <= b.score, "{}: invalid {} vs still {}", a.item, a.score, b.score);
    }
    // One invalid answer among valid ones is counted where it falls.
    let mut mixed: Vec<Answer> = (0..task.items.len()).map(|_| Answer::Positions(vec![])).collect();
    mixed.truncate(1);
    mixed.extend(logs2.iter().skip(1).map(|l| serde_json::from_value(l.prediction.clone()).expect("answer")));
    let (r3, _) = score(mixed);
    assert_eq!(r3.invalid, 1);
    let fam = format!("family={}", task.items[0].family);
    let m = r3.metrics.iter().find(|m| m.name == "ade" && m.group == fam).expect("family group");
    assert_eq!(m.invalid, 1);
}

/// A model that looks only at how items are presented: VoE surprise from a movie's place in
/// the stream or in its item, a fixed choice position.
struct Structural {
    trick: &'static str,
}

impl adapters::Adapter for Structural {
    fn id(&self) -> &str {
        self.trick
    }
    fn kind(&self) -> &'static str {
        "process"
    }
    fn supports(&self, task: TaskKind) -> bool {
        task != TaskKind::Forecast
    }
    fn describe(&self) -> results::ModelRef {
        results::ModelRef::new(self.trick, "process")
    }
    fn answer(
        &mut self,
        _ctx: &adapters::Context<'_>,
        _task: TaskKind,
        items: &[tasks::Item],
        _protocol: Option<&str>,
        _tick: &(dyn Fn() + Sync),
    ) -> physworld_benchmarks::Result<Vec<Answer>> {
        Ok(items
            .iter()
            .enumerate()
            .map(|(k, it)| match (self.trick, it.task) {
                (trick, TaskKind::Voe) => Answer::Surprise(
                    (0..it.episodes.len())
                        .map(|j| {
                            let x = match trick {
                                "stream-position" => k as f64,
                                "stream-parity" => (k % 2) as f64,
                                // The episode's place in its item: the last used to be impossible.
                                _ => j as f64,
                            };
                            adapters::Surprise { max: x, mean: x }
                        })
                        .collect(),
                ),
                ("first-choice", _) => Answer::Choice(0),
                _ => Answer::Choice(it.choices.len() - 1),
            })
            .collect())
    }
}

#[test]
fn models_that_read_the_presentation_score_chance() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = prepared();
    for trick in ["item-position", "stream-position", "stream-parity", "first-choice", "last-choice"] {
        let path = run(p, &mut Structural { trick }, tmp.path(), &|_| {}).expect("runs");
        let r = results::read(&path).expect("result");
        let voe = primary(&r, "voe");
        let n_voe = p.items[&TaskKind::Voe].items.len() as f64;
        // Relative accuracy of a coin per quadruplet: sd 0.5/sqrt(n); 3.3 sd is a 0.1% band.
        let band = 3.3 * 0.5 / n_voe.sqrt();
        if trick == "item-position" {
            // Every movie is shown alone: its place in its item says nothing, every pair ties.
            assert_eq!(voe, 0.5, "{trick}");
        }
        assert!((voe - 0.5).abs() <= band, "{trick}: voe {voe} (band ±{band:.3}, n {n_voe})");
        // Counterbalanced choices: a fixed position is right exactly as often as chance has
        // it, to one item per family.
        let contact = primary(&r, "contact");
        let n_contact = p.items[&TaskKind::Contact].items.len() as f64;
        if trick.ends_with("-choice") {
            assert!((contact - 0.5).abs() <= 5.0 / n_contact, "{trick}: contact {contact}");
        }
        for t in ["contact", "outcome"] {
            let v = primary(&r, t);
            let n = p.items[&TaskKind::parse(t).expect("task")].items.len() as f64;
            let chance = r
                .tasks
                .iter()
                .find(|x| x.id == t)
                .and_then(|x| x.primary_metric())
                .and_then(|m| m.chance)
                .expect("chance");
            let band = 3.3 * (chance * (1.0 - chance) / n).sqrt();
            assert!((v - chance).abs() <= band, "{trick}: {t} {v} vs chance {chance:.3} (band ±{band:.3}, n {n})");
        }
    }
}

#[test]
fn the_ideal_observer_solves_items_from_observations_and_fails_blinded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let seeing = bench("observer", tmp.path());
    let blind = bench("observer:blind-statics", tmp.path());
    let cv = bench("constant-velocity", tmp.path());
    // From what models observe, the physics engine answers near the oracle's ceiling.
    assert!(primary(&seeing, "voe") >= 0.9, "{}", primary(&seeing, "voe"));
    assert!(primary(&seeing, "contact") >= 0.8, "{}", primary(&seeing, "contact"));
    assert!(primary(&seeing, "outcome") >= 0.8, "{}", primary(&seeing, "outcome"));
    assert!(primary(&seeing, "forecast") < primary(&cv, "forecast"), "beats constant velocity");
    for t in &seeing.tasks {
        assert_eq!(t.invalid, 0, "{}", t.id);
    }
    // Without the occluders and walls, tiny's VoE families (permanence, continuity: hidden
    // behind an occluder) are not solvable.
    let v = primary(&blind, "voe");
    assert!(v <= 0.7, "blinded observer on VoE: {v}");
}

#[test]
fn models_keying_on_slot_numbers_or_listed_slots_score_chance() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = prepared();
    for trick in ["lowest-slot", "highest-slot", "listed-slot-changes", "object-count"] {
        let r = bench(&format!("heuristic:{trick}"), tmp.path());
        for t in &r.tasks {
            let m = t.primary_metric().expect("primary");
            let chance = m.chance.unwrap_or(0.5);
            let n = p.items[&TaskKind::parse(&t.id).expect("task")].items.len() as f64;
            // 3.3 binomial sd: a 0.1% band around chance.
            let band = 3.3 * (chance * (1.0 - chance) / n).sqrt();
            assert!(
                (m.value - chance).abs() <= band,
                "{trick}: {} {} vs chance {chance:.3} (±{band:.3})",
                t.id,
                m.value
            );
        }
        assert!(!r.tasks.is_empty(), "{trick} answered nothing");
    }
}

#[test]
fn the_item_log_records_how_each_item_was_shown() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = bench("oracle", tmp.path());
    let path = tmp.path().join("oracle__tiny__test.json");
    let logs = results::read_items(&path, &r).expect("items");
    let voe: Vec<_> = logs.iter().filter(|l| l.task == "voe").collect();
    assert!(!voe.is_empty());
    let mut positions = Vec::new();
    for l in &voe {
        let movies = l.presentation.as_ref().and_then(|p| p["movies"].as_array()).expect("movies");
        assert_eq!(movies.len(), 4, "{}", l.item);
        for m in movies {
            let id = m["id"].as_str().expect("id");
            // Opaque: nothing of the quadruplet's id (family, sample) in a movie's id.
            assert!(!id.contains(&l.item) && id.starts_with("voe/test/movie/"), "{id}");
            positions.push(m["position"].as_u64().expect("position"));
        }
    }
    // Every movie shown once, interleaved across quadruplets.
    positions.sort_unstable();
    assert_eq!(positions, (0..4 * voe.len() as u64).collect::<Vec<_>>());
    let first = voe[0].presentation.as_ref().expect("presentation")["movies"].clone();
    let spread =
        first.as_array().expect("movies").iter().map(|m| m["position"].as_u64().expect("p")).max().expect("max");
    assert!(spread > 3, "quadruplet 0's movies are shown together: {first}");
    // Choice items record the order their choices were shown in; the oracle is still right.
    for l in logs.iter().filter(|l| l.task == "contact" || l.task == "outcome") {
        let p = l.presentation.as_ref().expect("presentation");
        assert!(p["order"].is_array() && p["choices"].is_array(), "{p}");
        assert_eq!(l.correct, Some(true), "{}", l.item);
    }
}

#[test]
fn the_fit_split_is_never_scored() {
    let e = Prepared::new(data(), BenchOptions { split: "readout".into(), ..BenchOptions::default() })
        .err()
        .expect("readout refused")
        .to_string();
    assert!(e.contains("readout") && e.contains("probes"), "{e}");
}

#[test]
fn a_flipped_byte_in_a_test_shard_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let copy = tmp.path().join("tiny");
    copy_dir(data(), &copy);
    let shard = std::fs::read_dir(copy.join("data"))
        .expect("data")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test-")))
        .min()
        .expect("a test shard");
    let mut bytes = std::fs::read(&shard).expect("read");
    let k = bytes.len() / 2;
    bytes[k] ^= 0x10;
    std::fs::write(&shard, bytes).expect("write");
    let e = Prepared::new(&copy, BenchOptions::default()).err().expect("corrupt").to_string();
    let name = shard.file_name().expect("name").to_string_lossy().to_string();
    assert!(e.contains(&name) && e.contains("sha256"), "{e}");
    // Given a suite file instead of a dataset: said so, with the command that makes one.
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/tiny.toml");
    let e = Prepared::new(&suite, BenchOptions::default()).err().expect("suite file").to_string();
    assert!(e.contains("suite file") && e.contains("physworld generate"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").filter_map(|e| e.ok()) {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
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
            force: false,
            stop_after: None,
            stop: None,
            on_step: &|_| {},
            on_checkpoint: None,
        })
        .expect("trains");
        // A small latent search (the default's 400 samples are most of a checkpoint's bench
        // time, and plan_cli.rs judges planning itself).
        let r = bench(&format!("jepa,samples=16,elites=4,iters=2:{}", run.display()), tmp.path());
        // Every prediction task, and plan-push through the latent planner with its
        // options recorded.
        assert!(r.unsupported.is_empty(), "{objective:?}: {:?}", r.unsupported);
        assert!(r.tasks.iter().any(|t| t.id == "plan-push"), "{objective:?}");
        assert_eq!(r.model.config["plan"]["samples"], 16, "{objective:?}");
        assert_eq!(r.model.config["plan"]["iters"], 2, "{objective:?}");
        assert_eq!(r.model.config["plan"]["method"], "cem", "{objective:?}");
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
        assert_eq!(r.model.config["readout"], serde_json::json!({ "features": "model", "rollout": 30 }));
        // The readout options: the raw state beside the features, a rollout to each
        // episode's end. Every item is still answered, the options are recorded, and the
        // raw state changes the forecast probe's answers.
        let both =
            bench_on(prepared_predictions(), &format!("jepa,features=both,rollout=end:{}", run.display()), tmp.path());
        assert_eq!(both.model.config["readout"], serde_json::json!({ "features": "model+raw", "rollout": "end" }));
        for t in &both.tasks {
            assert_eq!(t.invalid, 0, "{objective:?} {}: invalid answers with the readout options", t.id);
        }
        assert_ne!(
            primary(&r, "forecast"),
            primary(&both, "forecast"),
            "{objective:?}: the raw state changed no forecast"
        );
        // Contact and outcome judged on the decoded imagined trajectory: every item is
        // answered, the judge is recorded, and the forecast (probes, as before) is unchanged.
        let judged = bench_on(prepared_predictions(), &format!("jepa,judge=trajectory:{}", run.display()), tmp.path());
        assert_eq!(judged.model.config["readout"]["judge"], "trajectory");
        for t in &judged.tasks {
            assert_eq!(t.invalid, 0, "{objective:?} {}: invalid answers judged on the trajectory", t.id);
        }
        assert_eq!(primary(&r, "forecast"), primary(&judged, "forecast"), "{objective:?}");
        // The pair relation: recorded, every item answered, forecast unchanged (it only
        // widens the contact probe's rows).
        let paired = bench_on(prepared_predictions(), &format!("jepa,pairs=on:{}", run.display()), tmp.path());
        assert_eq!(paired.model.config["readout"]["pairs"], "squared difference");
        for t in &paired.tasks {
            assert_eq!(t.invalid, 0, "{objective:?} {}: invalid answers with pairs=on", t.id);
        }
        assert_eq!(primary(&r, "forecast"), primary(&paired, "forecast"), "{objective:?}");
        // The attentive probe on contact and outcome: recorded with its settings, every
        // item answered, forecast (ridge probes) unchanged.
        let attentive =
            bench_on(prepared_predictions(), &format!("jepa,probe=attentive:{}", run.display()), tmp.path());
        assert_eq!(attentive.model.config["readout"]["probe"]["kind"], "attentive");
        assert_eq!(attentive.model.config["readout"]["probe"]["steps"], 300);
        assert_eq!(attentive.model.config["readout"]["probe"]["heads"], 4);
        assert_eq!(attentive.model.config["readout"]["probe"]["ensemble"], 5);
        assert_eq!(attentive.model.config["readout"]["probe"]["constant_features"], "dropped");
        for t in &attentive.tasks {
            assert_eq!(t.invalid, 0, "{objective:?} {}: invalid answers with probe=attentive", t.id);
        }
        assert_eq!(primary(&r, "forecast"), primary(&attentive, "forecast"), "{objective:?}");
    }
}

#[test]
fn the_raw_state_probe_takes_the_pair_relation_and_records_it_only_then() {
    let tmp = tempfile::tempdir().expect("tmp");
    let plain = bench("raw-state", tmp.path());
    assert!(plain.model.config.get("readout").is_none(), "{:?}", plain.model.config);
    let paired = bench("raw-state,pairs=on", tmp.path());
    assert_eq!(paired.model.config["readout"]["pairs"], "squared difference");
    assert_eq!(paired.model.id, "raw-state,pairs=on");
    for t in &paired.tasks {
        assert_eq!(t.invalid, 0, "{}: invalid answers with pairs=on", t.id);
    }
    assert_eq!(primary(&plain, "forecast"), primary(&paired, "forecast"));
    // And the attentive probe, with the pair as a token.
    let attentive = bench("raw-state,pairs=on,probe=attentive", tmp.path());
    assert_eq!(attentive.model.config["readout"]["probe"]["kind"], "attentive");
    assert_eq!(attentive.model.config["readout"]["pairs"], "squared difference");
    for t in &attentive.tasks {
        assert_eq!(t.invalid, 0, "{}: invalid answers with probe=attentive", t.id);
    }
    assert_eq!(primary(&plain, "forecast"), primary(&attentive, "forecast"));
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

#[test]
fn every_adapter_input_holds_the_static_scene_and_only_visible_objects_under_relabelled_slots() {
    use physworld_benchmarks::llm::render;
    use physworld_benchmarks::present::Presentation;
    let p = prepared();
    let ctx = p.context();
    let slots = p.ds.slots();
    let norm = p.frames.normalizer();
    let (mut hidden, mut never_seen, mut relabelled, mut statics) = (0, 0, 0, 0);
    for (kind, task) in &p.items {
        let shown = Presentation::new(task, 0, slots);
        for it in &shown.shown {
            let obs = ctx.observe(it).expect("observes");
            assert!(obs.properties_hidden(), "tiny exposes no hidden property");
            for (m, eo) in obs.episodes.iter().enumerate() {
                let ep = it.episodes[m];
                let (truth, meta) = (p.frames.get(ep).expect("frames"), p.ds.meta(ep).expect("meta"));
                // The static scene and the zones the episode has, by role, without names.
                assert_eq!(eo.statics.len(), meta.statics.len(), "{}", it.id);
                assert_eq!(eo.zones.len(), meta.zones.len(), "{}", it.id);
                assert!(eo.statics.iter().any(|s| s.role == physworld_sim::StaticRole::Floor), "{}: no floor", it.id);
                statics += eo.statics.len();
                let f = &eo.frames;
                assert_eq!(f.frames, it.observe.min(truth.frames), "{}: frames past the observation", it.id);
                relabelled += (it.slots.iter().enumerate().any(|(k, &t)| k != t as usize)) as usize;
                let j = adapters::episode_json(eo);
                let batch = physworld_model::Batch::new(std::slice::from_ref(f), norm, &candle_core::Device::Cpu)
                    .expect("batch");
                let valid: Vec<f32> = batch.valid.flatten_all().expect("flat").to_vec1().expect("vec");
                let raw: Vec<f32> = batch.obs.flatten_all().expect("flat").to_vec1().expect("vec");
                let d = raw.len() / (f.frames * slots);
                for t in 0..f.frames {
                    let listed: Vec<u64> = j["frames"][t]["objects"]
                        .as_array()
                        .expect("objects")
                        .iter()
                        .map(|o| o["slot"].as_u64().expect("slot"))
                        .collect();
                    // Shown slot k is true slot it.true_slot(k): listed exactly when seen.
                    let seen: Vec<u64> = (0..slots as u16)
                        .filter(|&k| tasks::seen(truth, t, it.true_slot(k) as usize))
                        .map(u64::from)
                        .collect();
                    assert_eq!(listed, seen, "{} frame {t}", it.id);
                    for k in 0..slots {
                        let true_k = it.true_slot(k as u16) as usize;
                        if truth.present[t * slots + true_k] && !tasks::seen(truth, t, true_k) {
                            hidden += 1;
                            // A hidden object is an empty slot to the JEPA and the probes.
                            let at = t * slots + k;
                            assert_eq!(valid[at], 0.0, "{} frame {t}: hidden slot valid", it.id);
                            assert!(raw[at * d..(at + 1) * d].iter().all(|x| *x == raw[at * d]), "{}", it.id);
                        }
                    }
                }
                // LLM prompts: the static scene, no mass, no object never seen.
                for v in 0..render::VARIANTS {
                    let prompt = match kind {
                        TaskKind::Voe => render::voe_prompt(eo, 30, v),
                        TaskKind::Forecast => render::forecast_prompt(it, eo, 30, v),
                        _ => render::choice_prompt(it, eo, 30, v),
                    };
                    assert!(!prompt.contains("mass") && !prompt.contains("kg"), "{}: {prompt}", it.id);
                    assert!(prompt.contains("floor"), "{}: {prompt}", it.id);
                    if eo.statics.iter().any(|s| s.role == physworld_sim::StaticRole::Occluder) {
                        assert!(prompt.contains("occluder"), "{}: {prompt}", it.id);
                    }
                    for k in 0..slots as u16 {
                        let o = it.true_slot(k) as usize;
                        let ever_present = (0..f.frames).any(|t| truth.present[t * slots + o]);
                        if ever_present && !(0..f.frames).any(|t| tasks::seen(truth, t, o)) {
                            never_seen += 1;
                            for name in [format!("object {k}:"), format!("body {k}:"), format!("Object {k} (")] {
                                assert!(!prompt.contains(&name), "{}: hidden object {k} listed: {prompt}", it.id);
                            }
                        }
                    }
                }
            }
        }
    }
    // The checks bite: hidden objects occur (behind occluders), some never seen while
    // observed; slots are relabelled; statics are there.
    assert!(hidden > 100 && never_seen > 0, "{hidden} hidden object-frames, {never_seen} never seen");
    assert!(relabelled > 100 && statics > 100, "{relabelled} relabelled, {statics} statics");
}

#[test]
fn a_suite_that_exposes_hidden_properties_shows_them_to_every_adapter() {
    use physworld_benchmarks::llm::render;
    use physworld_benchmarks::present::Presentation;
    let p = prepared();
    let mut ds = Dataset::open(data()).expect("opens");
    ds.suite.observation.hidden_properties = true;
    let ctx = adapters::Context { ds: &ds, ..p.context() };
    let task = &p.items[&TaskKind::Contact];
    let shown = Presentation::new(task, 0, ds.slots());
    let mut checked = 0;
    for it in &shown.shown {
        let obs = ctx.observe(it).expect("observes");
        assert!(!obs.properties_hidden());
        let eo = obs.first();
        let meta = ds.meta(it.episodes[0]).expect("meta");
        // One entry per object seen, carrying the true slot's mass under its shown label.
        for pr in &eo.properties {
            assert_eq!(pr.mass, meta.mass[it.true_slot(pr.slot) as usize], "{}", it.id);
            assert!((0..eo.frames.frames).any(|t| tasks::seen(&eo.frames, t, pr.slot as usize)));
        }
        if eo.properties.is_empty() {
            continue;
        }
        let j = adapters::episode_json(eo);
        assert_eq!(j["properties"].as_array().map(Vec::len), Some(eo.properties.len()));
        assert!(j["statics"][0]["material"].is_array());
        for v in 0..render::VARIANTS {
            assert!(render::choice_prompt(it, eo, 30, v).contains(" kg"), "{}", it.id);
        }
        checked += 1;
    }
    assert!(checked > 10, "{checked}");
}

#[test]
fn llm_specs_name_the_feature_they_need_when_it_is_missing() {
    let e = physworld_benchmarks::llm::missing_feature("openai:gpt-4o").to_string();
    assert!(e.contains("openai:gpt-4o") && e.contains("--features llm"), "{e}");
    let parsed = adapters::parse("anthropic:claude@http://127.0.0.1:9");
    let early = physworld_benchmarks::llm::require_available(["oracle", "gguf:m.gguf"]);
    assert!(physworld_benchmarks::llm::require_available(["oracle", "chance"]).is_ok());
    if physworld_benchmarks::llm::AVAILABLE {
        assert!(parsed.is_ok(), "an HTTP client is built without contacting the server");
        assert!(early.is_ok());
    } else {
        let e = parsed.err().expect("refused without the feature").to_string();
        assert!(e.contains("anthropic:claude") && e.contains("--features llm"), "{e}");
        let e = early.expect_err("refused before any work").to_string();
        assert!(e.contains("gguf:m.gguf") && e.contains("--features llm"), "{e}");
    }
}
