//! Scoring answers: per-task metrics with bootstrap intervals, per-group breakdowns, and
//! the per-item log.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::adapters::{Answer, Surprise};
use crate::metrics::{ade_fde, auroc, bootstrap_auroc, bootstrap_mean, mean, relative_score};
use crate::results::{ItemLog, Metric, TaskResult};
use crate::tasks::{Frames, Item, Target, TaskItems, TaskKind, TaskOptions, pos};

/// The least error, m, an invalid forecast is scored at: an invalid forecast scores the
/// error of predicting no motion (every object held where it was last observed) or this,
/// whichever is larger, so that failing to answer is never better than the trivial answer
/// and never close to perfect.
pub const INVALID_FORECAST_ERROR_M: f64 = 1.0;

/// Bootstrap settings.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    /// Seed.
    pub seed: u64,
    /// Resamples.
    pub resamples: u32,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn metric(
    name: &str,
    group: &str,
    values: &[f64],
    invalid: u64,
    higher: bool,
    chance: Option<f64>,
    best: Option<f64>,
    b: Bootstrap,
) -> Option<Metric> {
    if values.is_empty() {
        return None;
    }
    let value = mean(values);
    let ci = finite_or(bootstrap_mean(values, b.seed, b.resamples), value);
    Some(Metric {
        name: name.into(),
        group: group.into(),
        value,
        ci,
        n: values.len() as u64,
        invalid,
        higher_is_better: higher,
        chance,
        normalised: chance.zip(best).and_then(|(c, b)| ((b - c).abs() > 0.0).then(|| (value - c) / (b - c))),
    })
}

/// `ci`, or the zero-width `[value, value]` when a bound is not finite (too few units to
/// resample).
fn finite_or(ci: [f64; 2], value: f64) -> [f64; 2] {
    if ci[0].is_finite() && ci[1].is_finite() { ci } else { [value, value] }
}

/// Group labels of an item besides `all`.
fn groups(it: &Item) -> Vec<String> {
    let mut g = vec![format!("family={}", it.family)];
    if it.task == TaskKind::Outcome {
        g.push(format!("question={}", it.question));
    }
    if let Some(v) = &it.violation {
        g.push(format!("violation={v}"));
    }
    g
}

/// Values and invalid answers per group (`all` and [`groups`]).
fn by_group(items: &[Item], values: &[f64], invalid: &[bool]) -> BTreeMap<String, (Vec<f64>, u64)> {
    let mut m: BTreeMap<String, (Vec<f64>, u64)> = BTreeMap::new();
    for ((it, v), bad) in items.iter().zip(values).zip(invalid) {
        for g in std::iter::once("all".to_string()).chain(groups(it)) {
            let e = m.entry(g).or_default();
            e.0.push(*v);
            e.1 += *bad as u64;
        }
    }
    m
}

/// The no-motion forecast of `it`: each scored object held at its last observed position.
fn no_motion(it: &Item, frames: &Frames) -> Option<Vec<Vec<[f32; 3]>>> {
    let e = frames.get(it.episodes[0]).ok()?;
    let r = it.observe.checked_sub(1)?;
    let held: Vec<[f32; 3]> = it.objects.iter().map(|&o| pos(e, r, o as usize)).collect();
    Some(vec![held; it.horizons.len()])
}

/// Score `answers` (per readout protocol, the first primary; a single unnamed entry for
/// models without probes) to `task`'s items, whose episodes are in `frames`.
///
/// An invalid answer is never scored as a success: a wrong choice, a VoE tie (0.5), or for
/// a forecast the no-motion error with a floor of [`INVALID_FORECAST_ERROR_M`]; every
/// metric counts the invalid answers it contains.
pub fn score(
    task: &TaskItems,
    answers: &[(Option<&str>, Vec<Answer>)],
    frames: &Frames,
    opts: &TaskOptions,
    b: Bootstrap,
) -> (TaskResult, Vec<ItemLog>) {
    if answers.is_empty() {
        return (empty(task), Vec::new());
    }
    let scored = match task.kind {
        TaskKind::Forecast => score_forecast(task, &answers[0].1, frames, opts, b),
        TaskKind::Contact | TaskKind::Outcome => score_choices(task, answers, b),
        TaskKind::Voe => score_voe(task, &answers[0].1, b),
    };
    let mut r = empty(task);
    r.invalid = scored.invalid;
    r.metrics = scored.metrics;
    (r, scored.logs)
}

/// What scoring one task produced: its metrics, one log line per item, invalid answers.
#[derive(Default)]
struct Scored {
    metrics: Vec<Metric>,
    logs: Vec<ItemLog>,
    invalid: u64,
}

/// The log line of item `it`, with no presentation or exchange (the runner adds those).
fn log_line(
    kind: TaskKind,
    it: &Item,
    prediction: Value,
    target: Value,
    correct: Option<bool>,
    score: f64,
    invalid: bool,
) -> ItemLog {
    ItemLog {
        task: kind.as_str().into(),
        item: it.id.clone(),
        hash: it.hash.clone(),
        family: it.family.clone(),
        prediction,
        target,
        correct,
        score,
        invalid,
        presentation: None,
        raw: None,
    }
}

/// Forecasts: ADE, FDE and success within `opts.tolerance`, an invalid forecast scored as
/// the no-motion forecast with a floor of [`INVALID_FORECAST_ERROR_M`].
fn score_forecast(task: &TaskItems, primary: &[Answer], frames: &Frames, opts: &TaskOptions, b: Bootstrap) -> Scored {
    let (kind, items) = (task.kind, &task.items);
    let Scored { mut metrics, mut logs, mut invalid } = Scored::default();
    let (mut ade, mut fde, mut ok, mut bad_items) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (it, a) in items.iter().zip(primary) {
        let Target::Positions(t) = &it.target else { continue };
        let valid = match a {
            Answer::Positions(p) if p.len() == t.len() && p.iter().zip(t).all(|(x, y)| x.len() == y.len()) => {
                ade_fde(p, t).filter(|(a, f)| a.is_finite() && f.is_finite())
            }
            _ => None,
        };
        let (a_err, f_err) = valid.unwrap_or_else(|| {
            let (a, f) = no_motion(it, frames).and_then(|p| ade_fde(&p, t)).unwrap_or((0.0, 0.0));
            (a.max(INVALID_FORECAST_ERROR_M), f.max(INVALID_FORECAST_ERROR_M))
        });
        let invalid_item = valid.is_none();
        invalid += invalid_item as u64;
        ade.push(a_err);
        fde.push(f_err);
        let success = !invalid_item && f_err < opts.tolerance;
        ok.push(success);
        bad_items.push(invalid_item);
        logs.push(log_line(
            kind,
            it,
            serde_json::to_value(a).unwrap_or(Value::Null),
            json!(t),
            Some(success),
            -a_err,
            invalid_item,
        ));
    }
    let okf: Vec<f64> = ok.iter().map(|o| *o as u8 as f64).collect();
    for (name, values, higher) in [("ade", &ade, false), ("fde", &fde, false), ("success", &okf, true)] {
        for (g, (v, bad)) in by_group(items, values, &bad_items) {
            metrics.extend(metric(name, &g, &v, bad, higher, None, None, b));
        }
    }
    Scored { metrics, logs, invalid }
}

/// Contact and outcome: accuracy of the primary readout per group, and of every readout
/// protocol over all items; only the primary is logged.
fn score_choices(task: &TaskItems, answers: &[(Option<&str>, Vec<Answer>)], b: Bootstrap) -> Scored {
    let (kind, items) = (task.kind, &task.items);
    let Scored { mut metrics, mut logs, mut invalid } = Scored::default();
    let chance: Vec<f64> = items.iter().map(|i| 1.0 / i.choices.len().max(1) as f64).collect();
    for (pi, (proto, ans)) in answers.iter().enumerate() {
        let (mut correct, mut bad_items) = (Vec::new(), Vec::new());
        for (it, a) in items.iter().zip(ans) {
            let (c, bad) = match a {
                Answer::Choice(k) if *k < it.choices.len() => (Some(*k) == it.answer_index(), false),
                _ => (false, true),
            };
            correct.push(c as u8 as f64);
            bad_items.push(bad);
            if pi == 0 {
                invalid += bad as u64;
                logs.push(log_line(
                    kind,
                    it,
                    match a {
                        Answer::Choice(k) => json!(it.choices.get(*k)),
                        other => serde_json::to_value(other).unwrap_or(Value::Null),
                    },
                    json!(it.answer_index().and_then(|k| it.choices.get(k))),
                    Some(c),
                    c as u8 as f64,
                    bad,
                ));
            }
        }
        if pi == 0 {
            for (g, (v, bad)) in by_group(items, &correct, &bad_items) {
                let ch: Vec<f64> = items
                    .iter()
                    .zip(&chance)
                    .filter(|(it, _)| g == "all" || groups(it).contains(&g))
                    .map(|(_, c)| *c)
                    .collect();
                metrics.extend(metric("accuracy", &g, &v, bad, true, Some(mean(&ch)), Some(1.0), b));
            }
        }
        if let Some(p) = proto {
            metrics.extend(metric(
                "accuracy",
                &format!("readout={p}"),
                &correct,
                bad_items.iter().filter(|b| **b).count() as u64,
                true,
                Some(mean(&chance)),
                Some(1.0),
                b,
            ));
        }
    }
    Scored { metrics, logs, invalid }
}

/// Violation of expectation: relative accuracy over quadruplets (frame-averaged and max
/// surprise) and absolute AUROC over episodes.
fn score_voe(task: &TaskItems, primary: &[Answer], b: Bootstrap) -> Scored {
    let (kind, items) = (task.kind, &task.items);
    let Scored { mut metrics, mut logs, mut invalid } = Scored::default();
    let (mut rel_max, mut rel_mean, mut bad_items) = (Vec::new(), Vec::new(), Vec::new());
    let (mut s_max, mut s_mean, mut impossible, mut bad_eps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (it, a) in items.iter().zip(primary) {
        let Target::Possible(p) = &it.target else { continue };
        let valid = match a {
            Answer::Surprise(s) if s.len() == p.len() && s.iter().all(|x| x.max.is_finite() && x.mean.is_finite()) => {
                Some(s.clone())
            }
            _ => None,
        };
        let bad = valid.is_none();
        invalid += bad as u64;
        // An invalid answer is a constant surprise: a tie (0.5), never a success.
        let s = valid.unwrap_or_else(|| vec![Surprise { max: 0.0, mean: 0.0 }; p.len()]);
        let pick = |f: fn(&Surprise) -> f64, want: bool| -> [f64; 2] {
            let v: Vec<f64> = s.iter().zip(p).filter(|(_, q)| **q == want).map(|(x, _)| f(x)).collect();
            [v.first().copied().unwrap_or(0.0), v.get(1).copied().unwrap_or(0.0)]
        };
        let r = relative_score(pick(|x| x.mean, true), pick(|x| x.mean, false));
        rel_mean.push(r);
        rel_max.push(relative_score(pick(|x| x.max, true), pick(|x| x.max, false)));
        bad_items.push(bad);
        for (x, q) in s.iter().zip(p) {
            s_max.push(x.max);
            s_mean.push(x.mean);
            impossible.push(!q);
            bad_eps.push(bad);
        }
        logs.push(log_line(
            kind,
            it,
            serde_json::to_value(a).unwrap_or(Value::Null),
            json!(p),
            (r != 0.5).then_some(r == 1.0),
            r,
            bad,
        ));
    }
    // Primary: frame-averaged surprise, which IntPhys' frame-matched quadruplets protect
    // (any per-frame statistic cancels in the sum). Max over frames is not protected
    // by the design: reported, labelled.
    for (name, values) in [("relative_accuracy", &rel_mean), ("relative_accuracy_max_surprise", &rel_max)] {
        for (g, (v, bad)) in by_group(items, values, &bad_items) {
            metrics.extend(metric(name, &g, &v, bad, true, Some(0.5), Some(1.0), b));
        }
    }
    // Absolute AUROC over all episodes (impossible = positive), per violation too.
    let mut groups_ep: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut k = 0;
    for it in items {
        let n = it.episodes.len();
        for j in k..k + n {
            groups_ep.entry("all".into()).or_default().push(j);
            if let Some(v) = &it.violation {
                groups_ep.entry(format!("violation={v}")).or_default().push(j);
            }
        }
        k += n;
    }
    for (name, scores) in [("auroc", &s_mean), ("auroc_max_surprise", &s_max)] {
        for (g, idx) in &groups_ep {
            let s: Vec<f64> = idx.iter().map(|&j| scores[j]).collect();
            let p: Vec<bool> = idx.iter().map(|&j| impossible[j]).collect();
            if let Some(value) = auroc(&s, &p) {
                let ci = finite_or(bootstrap_auroc(&s, &p, b.seed, b.resamples), value);
                metrics.push(Metric {
                    name: name.into(),
                    group: g.clone(),
                    value,
                    ci,
                    n: s.len() as u64,
                    invalid: idx.iter().filter(|&&j| bad_eps[j]).count() as u64,
                    higher_is_better: true,
                    chance: Some(0.5),
                    normalised: Some((value - 0.5) / 0.5),
                });
            }
        }
    }
    Scored { metrics, logs, invalid }
}

fn empty(task: &TaskItems) -> TaskResult {
    TaskResult {
        id: task.kind.as_str().into(),
        version: task.kind.version(),
        kind: task.kind.as_str().into(),
        primary: task.kind.primary().into(),
        content_hash: task.content_hash(),
        n_items: task.items.len() as u64,
        invalid: 0,
        metrics: Vec::new(),
    }
}
