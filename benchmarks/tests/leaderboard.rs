//! Leaderboards from hand-written result files: rendering, column keys, and the CI gate.

use std::path::{Path, PathBuf};

use physworld_benchmarks::leaderboard::{self, Board, BoardFile};
use physworld_benchmarks::results::{self, ItemLog, Metric, ModelRef, ResultFile, SuiteRef, TaskResult};
use physworld_benchmarks::{BenchError, metrics};
use serde_json::json;

const SUITE_HASH: &str = "5e1f0000aaaabbbbccccddddeeeeffff00001111222233334444555566667777";
const CONTACT_HASH: &str = "c0ffee0011112222333344445555666677778888999900001111222233334444";
const FORECAST_HASH: &str = "f00dcafe11112222333344445555666677778888999900001111222233334444";

/// A metric over all items, as the bench runner writes it.
fn metric(name: &str, value: f64, ci: [f64; 2], n: u64, higher_is_better: bool, chance: Option<f64>) -> Metric {
    Metric {
        name: name.into(),
        group: "all".into(),
        value,
        ci,
        n,
        invalid: 0,
        higher_is_better,
        chance,
        normalised: chance.map(|c| (value - c) / (1.0 - c)),
    }
}

/// A task whose primary metric is `m`.
fn task(id: &str, version: u32, content_hash: &str, m: Metric) -> TaskResult {
    TaskResult {
        id: id.into(),
        version,
        kind: if id == "forecast" { "positions" } else { "binary" }.into(),
        primary: m.name.clone(),
        content_hash: content_hash.into(),
        n_items: m.n,
        invalid: 0,
        metrics: vec![m],
    }
}

/// A result file of `model` on suite `suite`.
fn result_file(model: &str, kind: &str, suite: &str, tasks: Vec<TaskResult>) -> ResultFile {
    ResultFile {
        schema: results::RESULTS_SCHEMA.into(),
        physworld_version: "0.1.0".into(),
        git_hash: None,
        suite: SuiteRef {
            name: suite.into(),
            dataset_hash: "d".repeat(64),
            split: "test".into(),
            content_hash: SUITE_HASH.into(),
            generator: "physworld-sim 0.1.0".into(),
            observation: "physworld-observation/1 visible-state".into(),
            fold: None,
        },
        model: ModelRef {
            id: model.into(),
            kind: kind.into(),
            checkpoint_hash: None,
            seeds: vec![],
            labels_used: vec![],
            config: json!({}),
        },
        bootstrap_seed: 0,
        bootstrap_resamples: metrics::DEFAULT_RESAMPLES,
        tasks,
        unsupported: vec![],
        no_items: vec![],
        items_file: String::new(),
        wall_time_s: 1.0,
    }
}

/// Per-item log lines of `task` with these scores; item `i` has hash `{task}-{i:03}`.
fn items(task: &str, scores: &[f64]) -> Vec<ItemLog> {
    scores
        .iter()
        .enumerate()
        .map(|(i, s)| ItemLog {
            task: task.into(),
            item: format!("{task}/{i}"),
            hash: format!("{task}-{i:03}"),
            family: "drop".into(),
            prediction: json!(null),
            target: json!(null),
            correct: (task != "forecast").then_some(*s == 1.0),
            score: *s,
            invalid: false,
            presentation: None,
            raw: None,
        })
        .collect()
}

/// `n` binary scores, the first `ones` of them 1.
fn binary(n: usize, ones: usize) -> Vec<f64> {
    (0..n).map(|i| if i < ones { 1.0 } else { 0.0 }).collect()
}

/// A contact-only result file with these binary scores, written into `dir`.
fn write_contact(dir: &Path, model: &str, content_hash: &str, scores: &[f64]) -> PathBuf {
    let acc = metrics::mean(scores);
    let ci = metrics::bootstrap_mean(scores, 0, metrics::DEFAULT_RESAMPLES);
    let m = metric("accuracy", acc, ci, scores.len() as u64, true, Some(0.5));
    let mut file = result_file(model, "jepa", "tiny", vec![task("contact", 1, content_hash, m)]);
    results::write(dir, &mut file, &items("contact", scores)).expect("write")
}

/// Two models on two tasks; the values are hand-picked (the table only copies them).
fn two_by_two(dir: &Path) {
    let contact = |v, ci, n| task("contact", 1, CONTACT_HASH, metric("accuracy", v, ci, n, true, Some(0.5)));
    let forecast = |v, ci, n| task("forecast", 2, FORECAST_HASH, metric("ade", v, ci, n, false, None));
    let mut oracle =
        result_file("oracle", "oracle", "tiny", vec![contact(1.0, [1.0, 1.0], 100), forecast(0.0, [0.0, 0.0], 50)]);
    let mut log = items("contact", &binary(100, 100));
    log.extend(items("forecast", &[0.0; 50]));
    results::write(dir, &mut oracle, &log).expect("write");
    let mut cv = result_file(
        "constant-velocity",
        "constant-velocity",
        "tiny",
        vec![contact(0.62, [0.52, 0.71], 100), forecast(0.1844, [0.1613, 0.2091], 50)],
    );
    let mut log = items("contact", &binary(100, 62));
    log.extend(items("forecast", &[-0.1844; 50]));
    results::write(dir, &mut cv, &log).expect("write");
}

#[test]
fn markdown_snapshot_of_a_two_by_two_board() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_by_two(dir.path());
    let board = leaderboard::load(dir.path()).expect("load");
    let expected = "\
| model | kind | suite | contact: accuracy | forecast: ade (m, lower is better) |
|---|---|---|---|---|
| oracle | oracle (reference) | tiny | 1.000 [1.000, 1.000] n=100 | 0.000 [0.000, 0.000] n=50 |
| constant-velocity | constant-velocity | tiny | 0.620 [0.520, 0.710] n=100 | 0.184 [0.161, 0.209] n=50 |

- suite `tiny`: content hash `5e1f0000aaaabbbbccccddddeeeeffff00001111222233334444555566667777`
";
    assert_eq!(board.markdown(), expected, "got:\n{}", board.markdown());
}

#[test]
fn a_missing_cell_is_a_dash_and_rows_are_best_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_by_two(dir.path());
    write_contact(dir.path(), "chance", CONTACT_HASH, &binary(100, 50));
    let board = leaderboard::load(dir.path()).expect("load");
    let models: Vec<&str> = board.rows().iter().map(|r| r.model.as_str()).collect();
    // Oracle first on both columns; chance's missing forecast ranks it last.
    assert_eq!(models, ["oracle", "constant-velocity", "chance"]);
    // References are marked by kind (this "chance" file was written with kind `jepa`).
    assert_eq!(board.rows().iter().map(|r| r.is_reference()).collect::<Vec<_>>(), [true, false, false]);
    let md = board.markdown();
    let chance_line = md.lines().find(|l| l.starts_with("| chance |")).expect("chance row");
    assert!(chance_line.ends_with("n=100 | — |"), "{chance_line}");
}

#[test]
fn different_content_hashes_of_one_task_are_different_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = "abcdef0199999999999999999999999999999999999999999999999999999999";
    write_contact(dir.path(), "jepa:runs/a", CONTACT_HASH, &binary(100, 80));
    write_contact(dir.path(), "jepa:runs/b", other, &binary(100, 70));
    let board = leaderboard::load(dir.path()).expect("load");
    let keys: Vec<String> = board.columns().iter().map(|c| c.key()).collect();
    // Sorted by task id, then content hash.
    assert_eq!(keys, [format!("contact@1#{other}"), format!("contact@1#{CONTACT_HASH}")]);
    let md = board.markdown();
    let header = md.lines().next().expect("header");
    assert!(header.contains("contact v1 #abcdef01: accuracy"), "{header}");
    assert!(header.contains("contact v1 #c0ffee00: accuracy"), "{header}");
    // Each model has a value in its own column only.
    assert!(md.contains("| jepa:runs/a | jepa | tiny | — | 0.800 ["), "{md}");
    assert!(md.contains("| jepa:runs/b | jepa | tiny | 0.700 ["), "{md}");
    assert_eq!(board.json().columns.len(), 2);
}

#[test]
fn check_against_its_own_json_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_by_two(dir.path());
    let board = leaderboard::load(dir.path()).expect("load");
    let baseline = value(&board);
    assert_eq!(baseline["schema"], leaderboard::LEADERBOARD_SCHEMA);
    assert_eq!(baseline["rows"][1]["model"], "constant-velocity");
    let cell = &baseline["rows"][1]["cells"][format!("contact@1#{CONTACT_HASH}")];
    assert_eq!(cell["n"], 100);
    assert_eq!(cell["items"]["contact-000"], 1.0);
    assert_eq!(cell["items"]["contact-099"], 0.0);
    // The baseline survives a round trip through text, as a committed BASELINE.json does.
    let text = board.json().to_json_pretty().expect("text");
    let baseline = BoardFile::from_slice(text.as_bytes()).expect("parse");
    assert_eq!(baseline, board.json(), "the typed format round-trips");
    let report = leaderboard::check(&board, &baseline, 7).expect("check");
    assert_eq!(report.comparisons.len(), 4);
    assert!(report.regressions().is_empty());
    assert!(report.passed());
    assert!(report.comparisons.iter().all(|c| c.test.mean_diff == 0.0));
    assert!(report.summary().starts_with("OK: 4 comparisons"), "{}", report.summary());
    serde_json::to_value(&report).expect("report serializes");
    // Something else than a leaderboard is not a baseline.
    let err = BoardFile::from_slice(br#"{"schema": "physworld-results/1"}"#).expect_err("not a board");
    assert!(matches!(err, BenchError::Invalid { .. }) && err.to_string().contains("physworld-results/1"), "{err:?}");
    // A broken baseline names the field.
    let mut broken = value(&board);
    broken["rows"][1]["cells"][format!("contact@1#{CONTACT_HASH}")]["n"] = json!("many");
    let err = BoardFile::from_slice(broken.to_string().as_bytes()).expect_err("bad n");
    assert!(err.to_string().contains(&format!("rows[1].cells.contact@1#{CONTACT_HASH}.n")), "{err}");
}

#[test]
fn a_planted_regression_fails_the_check() {
    let (old_dir, new_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let old = binary(100, 90);
    let mut new = old.clone();
    // 40 of the 90 right answers become wrong.
    for s in new.iter_mut().skip(10).take(40) {
        *s = 0.0;
    }
    write_contact(old_dir.path(), "jepa:runs/a", CONTACT_HASH, &old);
    write_contact(new_dir.path(), "jepa:runs/a", CONTACT_HASH, &new);
    let baseline = leaderboard::load(old_dir.path()).expect("load old").json();
    let board = leaderboard::load(new_dir.path()).expect("load new");
    let report = leaderboard::check(&board, &baseline, 7).expect("check");
    assert_eq!(report.regressions().len(), 1);
    let c = report.regressions()[0];
    assert_eq!((c.model.as_str(), c.task.as_str(), c.metric.as_str()), ("jepa:runs/a", "contact", "accuracy"));
    assert!((c.test.mean_diff + 0.4).abs() < 1e-12);
    // 40 discordant pairs, all one way: p = 2 / 2^40.
    assert!(c.test.mcnemar_p.is_some_and(|p| p < 1e-11));
    let summary = report.summary();
    assert!(
        summary
            .contains("REGRESSION jepa:runs/a contact: accuracy 0.900 -> 0.500 (mean per-item change -0.400, 95% CI"),
        "{summary}"
    );
    assert!(summary.contains("McNemar p=1.8e-12, n=100)"), "{summary}");
    assert!(summary.trim_end().ends_with("FAILED: 1 of 1 comparisons against the baseline regressed"), "{summary}");
}

#[test]
fn a_content_hash_mismatch_is_refused() {
    let (old_dir, new_dir) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let other = "abcdef0199999999999999999999999999999999999999999999999999999999";
    write_contact(old_dir.path(), "jepa:runs/a", CONTACT_HASH, &binary(100, 90));
    write_contact(new_dir.path(), "jepa:runs/a", other, &binary(100, 90));
    let baseline = leaderboard::load(old_dir.path()).expect("load old").json();
    let board = leaderboard::load(new_dir.path()).expect("load new");
    let err = leaderboard::check(&board, &baseline, 7).expect_err("hashes differ");
    assert!(matches!(err, BenchError::Mismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(CONTACT_HASH) && msg.contains(other), "{msg}");
    assert!(msg.contains("jepa:runs/a") && msg.contains("contact") && msg.contains("cannot be compared"), "{msg}");

    // A model the new results lack is a mismatch too.
    let renamed = tempfile::tempdir().expect("tempdir");
    write_contact(renamed.path(), "jepa:runs/b", CONTACT_HASH, &binary(100, 90));
    let board = leaderboard::load(renamed.path()).expect("load");
    let err = leaderboard::check(&board, &baseline, 7).expect_err("model missing");
    assert!(matches!(err, BenchError::Mismatch { .. }) && err.to_string().contains("jepa:runs/a"), "{err}");
}

#[test]
fn html_is_self_contained_and_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_by_two(dir.path());
    write_contact(dir.path(), "jepa:<x>&y", CONTACT_HASH, &binary(100, 75));
    let board = leaderboard::load(dir.path()).expect("load");
    // Markdown keeps the id readable but not a tag.
    assert!(board.markdown().contains("| jepa:\\<x\\>&y | jepa |"), "{}", board.markdown());
    let html = board.html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 2, "one chart per column");
    assert!(!html.contains("http"), "external reference in the page");
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("<img"));
    assert!(html.contains("jepa:&lt;x&gt;&amp;y"));
    assert!(!html.contains("<x>"));
    // The contact column has a chance level; the forecast column has none.
    assert_eq!(html.matches("stroke-dasharray").count(), 1);
}

#[test]
fn a_malformed_result_file_is_named_with_its_missing_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_contact(dir.path(), "oracle", CONTACT_HASH, &binary(10, 10));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    v.as_object_mut().expect("object").remove("suite");
    std::fs::write(&path, serde_json::to_vec(&v).expect("bytes")).expect("write");
    let msg = leaderboard::load(dir.path()).expect_err("no suite").to_string();
    assert!(msg.contains("oracle__tiny__test.json") && msg.contains("missing field `suite`"), "{msg}");
}

#[test]
fn duplicate_rows_and_empty_folders_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = leaderboard::load(dir.path()).expect_err("empty").to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");

    // Unfinished writes and item logs are not result files.
    std::fs::write(dir.path().join(".tmp-x.json"), "{").expect("write");
    write_contact(dir.path(), "oracle", CONTACT_HASH, &binary(10, 10));
    let board: Board = leaderboard::load(dir.path()).expect("load");
    assert_eq!(board.rows().len(), 1);

    // The same model on the same items under another suite name: a duplicate row.
    let m = metric("accuracy", 1.0, [1.0, 1.0], 10, true, Some(0.5));
    let mut copy = result_file("oracle", "oracle", "tiny-copy", vec![task("contact", 1, CONTACT_HASH, m)]);
    results::write(dir.path(), &mut copy, &items("contact", &binary(10, 10))).expect("write");
    let msg = leaderboard::load(dir.path()).expect_err("duplicate").to_string();
    assert!(msg.contains("oracle__tiny__test.json") && msg.contains("oracle__tiny-copy__test.json"), "{msg}");
    assert!(msg.contains("duplicate row"), "{msg}");
}

/// Suite content hash of a second suite.
const OTHER_SUITE_HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A learned model's result file as the jepa adapter describes it: trained with `seed` on
/// `families` (empty: all), contact accuracy `ones` of 10, interval ± 0.1; written into `dir`.
fn write_learned(dir: &Path, model: &str, kind: &str, seed: u64, families: &[&str], ones: usize) -> PathBuf {
    let scores = binary(10, ones);
    let acc = metrics::mean(&scores);
    let m = metric("accuracy", acc, [acc - 0.1, acc + 0.1], 10, true, Some(0.5));
    let mut file = result_file(model, kind, "tiny", vec![task("contact", 1, CONTACT_HASH, m)]);
    file.model.checkpoint_hash = Some(format!("{seed:064}"));
    file.model.seeds = vec![seed];
    file.model.labels_used = vec!["readout split labels (probes)".into()];
    file.model.config = json!({
        "run": format!("runs/{}", model.trim_start_matches("jepa:runs/")),
        "step": 200,
        "train": {
            "model": {"preset": "tiny", "dim": 32, "objective": kind},
            "optim": {"lr": 0.001, "weight_decay": 0.05},
            "data": {"context": 8, "future": 8, "families": families},
            "seed": seed,
            "eval_every": 50,
        },
        "data": {"path": format!("data/tiny-{seed}"), "suite_hash": "d".repeat(64), "splits": ["train"], "families": families},
        "ridge_lambda": 0.001,
    });
    results::write(dir, &mut file, &items("contact", &scores)).expect("write")
}

/// Three seeds of one config (accuracy 0.7, 0.8, 0.9) and one checkpoint pretrained on two families.
fn seeds_board(dir: &Path) -> Board {
    for (seed, ones) in [(0, 7), (1, 8), (2, 9)] {
        write_learned(dir, &format!("jepa:runs/s{seed}"), "jepa", seed, &[], ones);
    }
    write_learned(dir, "jepa:runs/drop", "jepa", 0, &["drop", "collide"], 6);
    leaderboard::load(dir).expect("load")
}

#[test]
fn seeds_of_one_config_form_one_row_with_their_spread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = seeds_board(dir.path());
    let models: Vec<&str> = board.rows().iter().map(|r| r.model.as_str()).collect();
    assert_eq!(models, ["jepa ×3 seeds (jepa:runs/s0, jepa:runs/s1, jepa:runs/s2)", "jepa:runs/drop"]);
    let group = &board.rows()[0];
    assert!(group.is_seed_group() && !board.rows()[1].is_seed_group());
    assert_eq!(group.seeds(), [Some(0), Some(1), Some(2)]);
    assert_eq!(group.pretraining.as_deref(), Some(&[][..]));
    let cell = &group.cells[&format!("contact@1#{CONTACT_HASH}")];
    assert!((cell.value - 0.8).abs() < 1e-9, "{}", cell.value);
    assert!(cell.seed_std.is_some_and(|sd| (sd - 0.1).abs() < 1e-9), "{:?}", cell.seed_std);
    assert_eq!((cell.seeds, cell.n), (3, 10));
    // The interval is the mean of the seeds' interval endpoints.
    assert!((cell.ci[0] - 0.7).abs() < 1e-9 && (cell.ci[1] - 0.9).abs() < 1e-9, "{:?}", cell.ci);
    // Items 0..6 are right for every seed, item 7 for two of three, item 9 for none.
    assert_eq!(cell.items["contact-000"], 1.0);
    assert!((cell.items["contact-007"] - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(cell.items["contact-009"], 0.0);

    let md = board.markdown();
    assert!(md.contains("± 0.100 (3 seeds)"), "{md}");
    assert!(
        md.contains(
            "| jepa ×3 seeds (jepa:runs/s0, jepa:runs/s1, jepa:runs/s2) | jepa (pretrained on: all) | tiny | \
             0.800 ± 0.100 (3 seeds) [0.700, 0.900] n=10 |"
        ),
        "{md}"
    );
    // Another pretraining protocol is another row, labelled with its families.
    assert!(
        md.contains("| jepa:runs/drop | jepa (pretrained on: drop, collide) | tiny | 0.600 [0.500, 0.700] n=10 |"),
        "{md}"
    );
    let html = board.html();
    assert!(html.contains("0.800 <span class=\"ci\">± 0.100 (3 seeds) [0.700, 0.900] n=10</span>"), "{html}");
    assert!(html.contains("<td>jepa (pretrained on: drop, collide)</td>"), "{html}");

    let v = value(&board);
    let row = &v["rows"][0];
    assert_eq!(row["kind"], "jepa");
    assert_eq!(row["pretraining"], json!([]));
    assert_eq!(row["seeds"], json!([0, 1, 2]));
    assert_eq!(row["members"], json!(["jepa:runs/s0", "jepa:runs/s1", "jepa:runs/s2"]));
    let cell = &row["cells"][format!("contact@1#{CONTACT_HASH}")];
    assert_eq!(cell["seeds"], 3);
    assert!(cell["seed_std"].as_f64().is_some_and(|sd| (sd - 0.1).abs() < 1e-9), "{cell}");
    let single = &v["rows"][1];
    assert_eq!(single["pretraining"], json!(["drop", "collide"]));
    assert!(single.get("members").is_none() && single.get("seeds").is_none(), "{single}");
    assert!(single["cells"][format!("contact@1#{CONTACT_HASH}")].get("seed_std").is_none(), "{single}");
}

#[test]
fn check_of_a_seed_board_against_its_own_json_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let board = seeds_board(dir.path());
    let text = board.json().to_json_pretty().expect("text");
    let baseline = BoardFile::from_slice(text.as_bytes()).expect("parse");
    assert_eq!(baseline, board.json(), "seed groups round-trip");
    let report = leaderboard::check(&board, &baseline, 7).expect("check");
    assert_eq!(report.comparisons.len(), 2);
    assert!(report.passed(), "{}", report.summary());
    assert!(report.comparisons.iter().all(|c| c.test.mean_diff == 0.0));
    assert_eq!(report.comparisons[0].model, "jepa ×3 seeds (jepa:runs/s0, jepa:runs/s1, jepa:runs/s2)");

    // A baseline of one seed alone is compared with that member's own scores.
    let one = tempfile::tempdir().expect("tempdir");
    write_learned(one.path(), "jepa:runs/s1", "jepa", 1, &[], 8);
    let baseline = leaderboard::load(one.path()).expect("load").json();
    let report = leaderboard::check(&board, &baseline, 7).expect("check one seed");
    assert_eq!(report.comparisons.len(), 1);
    assert!((report.comparisons[0].new_value - 0.8).abs() < 1e-12 && report.passed());

    // A group whose seeds changed is no longer the baseline's group.
    let more = tempfile::tempdir().expect("tempdir");
    seeds_board(more.path());
    write_learned(more.path(), "jepa:runs/s3", "jepa", 3, &[], 8);
    let board = leaderboard::load(more.path()).expect("load");
    let group = &board.rows()[0];
    assert_eq!(group.model, "jepa ×4 seeds (jepa:runs/s0, jepa:runs/s1, jepa:runs/s2, jepa:runs/s3)");
    let err = leaderboard::check(&board, &baseline_of(dir.path()), 7).expect_err("other seeds");
    assert!(matches!(err, BenchError::Mismatch { .. }) && err.to_string().contains("seed group"), "{err}");
}

/// The JSON leaderboard of the result files in `dir`.
fn baseline_of(dir: &Path) -> BoardFile {
    leaderboard::load(dir).expect("load").json()
}

#[test]
fn long_seed_groups_are_named_with_a_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    for seed in 0..5 {
        write_learned(dir.path(), &format!("sm{seed}"), "state-mse", seed, &["drop"], 5 + seed as usize);
    }
    let board = leaderboard::load(dir.path()).expect("load");
    assert_eq!(board.rows().len(), 1);
    let r = &board.rows()[0];
    assert_eq!(r.model, "state-mse ×5 seeds (sm0, sm1, sm2, … +2 more)");
    assert_eq!(r.kind_label(), "state-mse (pretrained on: drop)");
    assert_eq!(r.members.len(), 5);
}

#[test]
fn models_that_are_not_learned_are_never_grouped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The oracle on two suites (different suite content hashes).
    for (suite, hash, contact) in [("tiny", SUITE_HASH, CONTACT_HASH), ("tiny-v2", OTHER_SUITE_HASH, FORECAST_HASH)] {
        let m = metric("accuracy", 1.0, [1.0, 1.0], 10, true, Some(0.5));
        let mut file = result_file("oracle", "oracle", suite, vec![task("contact", 1, contact, m)]);
        file.suite.content_hash = hash.into();
        results::write(dir.path(), &mut file, &items("contact", &binary(10, 10))).expect("write");
    }
    // Chance under two seeds, with configs that differ in nothing else: still two rows.
    for seed in [0u64, 1] {
        let m = metric("accuracy", 0.5, [0.2, 0.8], 10, true, Some(0.5));
        let mut file =
            result_file(&format!("chance:{seed}"), "chance", "tiny", vec![task("contact", 1, CONTACT_HASH, m)]);
        file.model.seeds = vec![seed];
        file.model.config = json!({"train": {"seed": seed}, "step": 0, "data": {"families": []}});
        results::write(dir.path(), &mut file, &items("contact", &binary(10, 5))).expect("write");
    }
    let board = leaderboard::load(dir.path()).expect("load");
    let models: Vec<&str> = board.rows().iter().map(|r| r.model.as_str()).collect();
    // By suite, then best first within a suite.
    assert_eq!(models, ["oracle", "chance:0", "chance:1", "oracle"]);
    assert!(board.rows().iter().all(|r| !r.is_seed_group() && r.pretraining.is_none()));
    assert!(
        board.markdown().contains("| chance:0 | chance (reference) | tiny | 0.500 [0.200, 0.800] n=10 |"),
        "{}",
        board.markdown()
    );
    assert!(value(&board)["rows"].as_array().expect("rows").iter().all(|r| r.get("pretraining").is_none()));
}

#[test]
fn invalid_answers_show_beside_the_score_and_tasks_without_items_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three of ten contact answers invalid; a VoE task with no items (a suite without VoE
    // families): it has no metrics at all, and must not break the board.
    let mut m = metric("accuracy", 0.6, [0.3, 0.9], 10, true, Some(0.5));
    m.invalid = 3;
    let mut contact = task("contact", 2, CONTACT_HASH, m);
    contact.invalid = 3;
    let empty = TaskResult {
        id: "voe".into(),
        version: 2,
        kind: "voe".into(),
        primary: "relative_accuracy".into(),
        content_hash: "e".repeat(64),
        n_items: 0,
        invalid: 0,
        metrics: vec![],
    };
    let mut file = result_file("openai:m", "llm", "physion", vec![contact, empty]);
    results::write(dir.path(), &mut file, &items("contact", &binary(10, 6))).expect("write");
    let board = leaderboard::load(dir.path()).expect("a task without items is skipped, not an error");
    assert_eq!(board.columns().len(), 1, "{:?}", board.columns());
    let md = board.markdown();
    assert!(md.contains("0.600 [0.300, 0.900] n=10 invalid=3"), "{md}");
    let cell = &value(&board)["rows"][0]["cells"];
    let cell = cell.as_object().expect("cells").values().next().expect("one cell");
    assert_eq!(cell["invalid"], 3);
}

/// The board's JSON document as a `serde_json::Value`, to look into by key.
fn value(board: &Board) -> serde_json::Value {
    serde_json::to_value(board.json()).expect("a board serializes")
}

#[test]
fn result_files_round_trip_through_their_one_typed_definition_nan_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_contact(dir.path(), "oracle", CONTACT_HASH, &binary(10, 7));
    let file = results::read(&path).expect("read");
    let text = serde_json::to_vec_pretty(&file).expect("write");
    assert_eq!(results::parse(&text).expect("parse"), file);
    // An undefined value is written as null (JSON has no NaN) and read back as NaN.
    let mut undefined = file.clone();
    undefined.tasks[0].metrics[0].value = f64::NAN;
    undefined.tasks[0].metrics[0].ci = [f64::NAN, 1.0];
    let back = results::parse(&serde_json::to_vec(&undefined).expect("write")).expect("null is NaN");
    let m = &back.tasks[0].metrics[0];
    assert!(m.value.is_nan() && m.ci[0].is_nan() && m.ci[1] == 1.0, "{m:?}");
    // A field of the wrong shape is named by its path.
    let mut v = serde_json::to_value(&file).expect("value");
    v["tasks"][0]["metrics"][0]["ci"] = json!([0.1]);
    let err = results::parse(v.to_string().as_bytes()).expect_err("one-number interval");
    assert!(err.contains("tasks[0].metrics[0].ci"), "{err}");
    // Text after the document is refused, as serde_json refuses it.
    let mut trailing = text.clone();
    trailing.extend_from_slice(b"}");
    let err = results::parse(&trailing).expect_err("trailing characters");
    assert!(err.starts_with("not JSON") && err.contains("trailing"), "{err}");
    // Another kind of file is named by its schema, not by its first missing field.
    let board = BoardFile::from_slice(
        leaderboard::load(dir.path()).expect("load").json().to_json_pretty().expect("text").as_bytes(),
    );
    let board = serde_json::to_vec(&board.expect("board")).expect("bytes");
    let err = results::parse(&board).expect_err("a leaderboard is not a result file");
    assert!(err.contains("physworld-leaderboard/1") && err.contains("physworld-results/1"), "{err}");
}

/// `--versus`: every row against one reference on the same items, with a verdict from the
/// paired test rather than from overlapping intervals.
#[test]
fn versus_pairs_each_model_with_the_reference_on_the_same_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The reference is right on items 0..60; `better` on 0..75; `worse` on 0..45; `same`
    // on 0..30 and 60..90: as many right, on other items, so only the pairing shows that
    // they differ item by item (neither is better).
    write_contact(dir.path(), "raw-state", CONTACT_HASH, &binary(100, 60));
    write_contact(dir.path(), "jepa:runs/better", CONTACT_HASH, &binary(100, 75));
    write_contact(dir.path(), "jepa:runs/worse", CONTACT_HASH, &binary(100, 45));
    let same: Vec<f64> = (0..100).map(|i| if i < 30 || (60..90).contains(&i) { 1.0 } else { 0.0 }).collect();
    write_contact(dir.path(), "jepa:runs/same", CONTACT_HASH, &same);
    let board = leaderboard::load(dir.path()).expect("load");
    let report = leaderboard::versus(&board, "raw-state", 0).expect("versus");
    assert_eq!(report.comparisons.len(), 3, "{report:?}");
    let verdict = |m: &str| {
        let c = report.comparisons.iter().find(|c| c.model == m).expect(m);
        assert_eq!((c.reference_value, c.test.n), (0.6, 100), "{c:?}");
        c.verdict
    };
    assert_eq!(verdict("jepa:runs/better"), "better");
    assert_eq!(verdict("jepa:runs/worse"), "worse");
    assert_eq!(verdict("jepa:runs/same"), "no significant difference");
    let md = report.markdown();
    assert!(md.contains("| jepa:runs/better | contact | accuracy | 0.750 | 0.600 | +0.150 ["), "{md}");
    // An unknown reference names the models there are.
    let e = leaderboard::versus(&board, "raw", 0).expect_err("unknown").to_string();
    assert!(e.contains("raw") && e.contains("raw-state") && e.contains("jepa:runs/same"), "{e}");
}
