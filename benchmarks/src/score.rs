//! Scoring answers: per-task metrics with bootstrap intervals, per-group breakdowns, and
//! the per-item log.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::adapters::{Answer, Surprise};
use crate::metrics::{ade_fde, auroc, bootstrap_auroc, bootstrap_mean, mean, relative_score};
use crate::results::{ItemLog, Metric, TaskResult};
use crate::tasks::{Item, Target, TaskItems, TaskKind, TaskOptions};

/// Bootstrap settings.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    /// Seed.
    pub seed: u64,
    /// Resamples.
    pub resamples: u32,
}

#[allow(clippy::too_many_arguments)]
fn metric(
    name: &str,
    group: &str,
    values: &[f64],
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

fn by_group<'a>(items: &'a [Item], values: &'a [f64]) -> BTreeMap<String, Vec<f64>> {
    let mut m: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (it, v) in items.iter().zip(values) {
        m.entry("all".into()).or_default().push(*v);
        for g in groups(it) {
            m.entry(g).or_default().push(*v);
        }
    }
    m
}

/// Score `answers` (per readout protocol, the first primary; a single unnamed entry for
/// models without probes) to `task`'s items.
pub fn score(
    task: &TaskItems,
    answers: &[(Option<&str>, Vec<Answer>)],
    opts: &TaskOptions,
    b: Bootstrap,
) -> (TaskResult, Vec<ItemLog>) {
    let kind = task.kind;
    let items = &task.items;
    let mut metrics = Vec::new();
    let mut logs = Vec::new();
    let mut invalid = 0u64;
    let Some((_, primary)) = answers.first() else {
        return (empty(task), logs);
    };
    match kind {
        TaskKind::Forecast => {
            let (mut ade, mut fde, mut ok) = (Vec::new(), Vec::new(), Vec::new());
            for (it, a) in items.iter().zip(primary) {
                let Target::Positions(t) = &it.target else { continue };
                let (pred, bad) = match a {
                    Answer::Positions(p) if p.len() == t.len() && p.iter().zip(t).all(|(x, y)| x.len() == y.len()) => {
                        (p.clone(), false)
                    }
                    _ => (Vec::new(), true),
                };
                let (a_err, f_err) =
                    if bad { (f64::NAN, f64::NAN) } else { ade_fde(&pred, t).unwrap_or((f64::NAN, f64::NAN)) };
                let invalid_item = bad || !a_err.is_finite();
                invalid += invalid_item as u64;
                // An invalid forecast counts as a miss, at the worst error seen (below).
                ade.push(a_err);
                fde.push(f_err);
                ok.push(!invalid_item && f_err < opts.tolerance);
                logs.push(ItemLog {
                    task: kind.as_str().into(),
                    item: it.id.clone(),
                    hash: it.hash.clone(),
                    family: it.family.clone(),
                    prediction: serde_json::to_value(a).unwrap_or(Value::Null),
                    target: json!(t),
                    correct: Some(*ok.last().unwrap_or(&false)),
                    score: 0.0,
                    invalid: invalid_item,
                    raw: None,
                });
            }
            let worst = ade.iter().chain(&fde).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
            for v in ade.iter_mut().chain(fde.iter_mut()) {
                if !v.is_finite() {
                    *v = worst;
                }
            }
            for (l, a) in logs.iter_mut().zip(&ade) {
                l.score = -a;
            }
            let okf: Vec<f64> = ok.iter().map(|o| *o as u8 as f64).collect();
            for (g, v) in by_group(items, &ade) {
                metrics.extend(metric("ade", &g, &v, false, None, None, b));
            }
            for (g, v) in by_group(items, &fde) {
                metrics.extend(metric("fde", &g, &v, false, None, None, b));
            }
            for (g, v) in by_group(items, &okf) {
                metrics.extend(metric("success", &g, &v, true, None, None, b));
            }
        }
        TaskKind::Contact | TaskKind::Outcome => {
            let chance: Vec<f64> = items.iter().map(|i| 1.0 / i.choices.len().max(1) as f64).collect();
            for (pi, (proto, ans)) in answers.iter().enumerate() {
                let mut correct = Vec::new();
                for (it, a) in items.iter().zip(ans) {
                    let (c, bad) = match a {
                        Answer::Choice(k) if *k < it.choices.len() => (Some(*k) == it.answer_index(), false),
                        _ => (false, true),
                    };
                    correct.push(c as u8 as f64);
                    if pi == 0 {
                        invalid += bad as u64;
                        logs.push(ItemLog {
                            task: kind.as_str().into(),
                            item: it.id.clone(),
                            hash: it.hash.clone(),
                            family: it.family.clone(),
                            prediction: match a {
                                Answer::Choice(k) => json!(it.choices.get(*k)),
                                other => serde_json::to_value(other).unwrap_or(Value::Null),
                            },
                            target: json!(it.answer_index().and_then(|k| it.choices.get(k))),
                            correct: Some(c),
                            score: c as u8 as f64,
                            invalid: bad,
                            raw: None,
                        });
                    }
                }
                if pi == 0 {
                    for (g, v) in by_group(items, &correct) {
                        let ch: Vec<f64> = items
                            .iter()
                            .zip(&chance)
                            .filter(|(it, _)| g == "all" || groups(it).contains(&g))
                            .map(|(_, c)| *c)
                            .collect();
                        metrics.extend(metric("accuracy", &g, &v, true, Some(mean(&ch)), Some(1.0), b));
                    }
                }
                if let Some(p) = proto {
                    metrics.extend(metric(
                        "accuracy",
                        &format!("readout={p}"),
                        &correct,
                        true,
                        Some(mean(&chance)),
                        Some(1.0),
                        b,
                    ));
                }
            }
        }
        TaskKind::Voe => {
            let (mut rel_max, mut rel_mean) = (Vec::new(), Vec::new());
            let (mut s_max, mut s_mean, mut pos) = (Vec::new(), Vec::new(), Vec::new());
            for (it, a) in items.iter().zip(primary) {
                let Target::Possible(p) = &it.target else { continue };
                let s: Vec<Surprise> = match a {
                    Answer::Surprise(s)
                        if s.len() == p.len() && s.iter().all(|x| x.max.is_finite() && x.mean.is_finite()) =>
                    {
                        s.clone()
                    }
                    _ => {
                        invalid += 1;
                        vec![Surprise { max: 0.0, mean: 0.0 }; p.len()]
                    }
                };
                let pick = |f: fn(&Surprise) -> f64, want: bool| -> [f64; 2] {
                    let v: Vec<f64> = s.iter().zip(p).filter(|(_, q)| **q == want).map(|(x, _)| f(x)).collect();
                    [v.first().copied().unwrap_or(0.0), v.get(1).copied().unwrap_or(0.0)]
                };
                let r = relative_score(pick(|x| x.max, true), pick(|x| x.max, false));
                rel_max.push(r);
                rel_mean.push(relative_score(pick(|x| x.mean, true), pick(|x| x.mean, false)));
                for (x, q) in s.iter().zip(p) {
                    s_max.push(x.max);
                    s_mean.push(x.mean);
                    pos.push(!q);
                }
                logs.push(ItemLog {
                    task: kind.as_str().into(),
                    item: it.id.clone(),
                    hash: it.hash.clone(),
                    family: it.family.clone(),
                    prediction: serde_json::to_value(a).unwrap_or(Value::Null),
                    target: json!(p),
                    correct: (r != 0.5).then_some(r == 1.0),
                    score: r,
                    invalid: !matches!(a, Answer::Surprise(_)),
                    raw: None,
                });
            }
            for (g, v) in by_group(items, &rel_max) {
                metrics.extend(metric("relative_accuracy", &g, &v, true, Some(0.5), Some(1.0), b));
            }
            for (g, v) in by_group(items, &rel_mean) {
                metrics.extend(metric("relative_accuracy_mean_surprise", &g, &v, true, Some(0.5), Some(1.0), b));
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
            for (name, scores) in [("auroc", &s_max), ("auroc_mean_surprise", &s_mean)] {
                for (g, idx) in &groups_ep {
                    let s: Vec<f64> = idx.iter().map(|&j| scores[j]).collect();
                    let p: Vec<bool> = idx.iter().map(|&j| pos[j]).collect();
                    if let Some(value) = auroc(&s, &p) {
                        let ci = finite_or(bootstrap_auroc(&s, &p, b.seed, b.resamples), value);
                        metrics.push(Metric {
                            name: name.into(),
                            group: g.clone(),
                            value,
                            ci,
                            n: s.len() as u64,
                            higher_is_better: true,
                            chance: Some(0.5),
                            normalised: Some((value - 0.5) / 0.5),
                        });
                    }
                }
            }
        }
    }
    let mut r = empty(task);
    r.invalid = invalid;
    r.metrics = metrics;
    (r, logs)
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
