//! Tasks: versioned questions with ground truth, built from a dataset's held-out split.
//!
//! Every item names the episodes it shows, how many frames a model may observe and what it
//! must answer; its hash covers all of that, the answer and the dataset's suite hash, so
//! that a task's content hash changes whenever its items do.

use std::collections::BTreeMap;

use physworld_pipeline::{Dataset, EpisodeFrames, EpisodeMeta};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{BenchError, Result};

/// Kinds of answer a task asks for; adapters declare which they support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Object positions at future horizons.
    Forecast,
    /// Will the agent object touch the patient? (Physion OCP.)
    Contact,
    /// Multiple-choice questions about how the episode ends.
    Outcome,
    /// Violation of expectation: a surprise score per episode of a matched quadruplet.
    Voe,
}

impl TaskKind {
    /// Every kind, in leaderboard order.
    pub const ALL: [TaskKind; 4] = [TaskKind::Forecast, TaskKind::Contact, TaskKind::Outcome, TaskKind::Voe];

    /// Stable name (also the task id).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Forecast => "forecast",
            TaskKind::Contact => "contact",
            TaskKind::Outcome => "outcome",
            TaskKind::Voe => "voe",
        }
    }

    /// Version of the task's items, presentation, observations and scoring: contact 4 since
    /// candidates whose agent and patient come within [`NEAR_CONTACT_M`] in the observed
    /// frames are dropped (nearly touching already: the observation decides the answer); 3
    /// since every model observes the static scene and only the visible objects, under
    /// relabelled slots ([`crate::observe`]); 2 since choices are shown in a seeded order,
    /// VoE movies one at a time, invalid forecasts scored at the no-motion error (at least
    /// [`crate::score::INVALID_FORECAST_ERROR_M`]), and VoE's primary metric is
    /// frame-averaged.
    pub fn version(self) -> u32 {
        match self {
            TaskKind::Contact => 4,
            _ => 3,
        }
    }

    /// The metric leaderboards show.
    pub fn primary(self) -> &'static str {
        match self {
            TaskKind::Forecast => "ade",
            TaskKind::Contact | TaskKind::Outcome => "accuracy",
            TaskKind::Voe => "relative_accuracy",
        }
    }

    /// Parse a task id.
    pub fn parse(s: &str) -> Result<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names = TaskKind::ALL.map(TaskKind::as_str);
            BenchError::invalid(
                "task",
                s,
                format!("forecast, contact, outcome or voe{}", physworld_sim::suggest::did_you_mean(s, names)),
            )
        })
    }
}

/// How items are cut from episodes. Defaults follow Physion where it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOptions {
    /// Forecast: observed frames (the last one is the reference). Default 16 (0.53 s).
    pub forecast_observe: usize,
    /// Forecast: horizons in frames after the last observed one. Default 15 and 30
    /// (0.5 s and 1 s at 30 fps).
    pub horizons: Vec<usize>,
    /// Forecast: an item succeeds when its final displacement error is below this, m.
    /// Default 0.1.
    pub tolerance: f64,
    /// Contact: observed frames; items whose first contact falls inside them, or whose agent
    /// and patient come within [`NEAR_CONTACT_M`] there, are dropped. Default 12 (0.4 s).
    pub contact_observe: usize,
    /// Outcome: observed frames. Default 6 (0.2 s).
    pub outcome_observe: usize,
}

impl TaskOptions {
    /// Check the fields.
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("forecast_observe", self.forecast_observe),
            ("contact_observe", self.contact_observe),
            ("outcome_observe", self.outcome_observe),
        ] {
            if v == 0 {
                return Err(BenchError::invalid(f, v, "at least 1 frame"));
            }
        }
        if self.horizons.is_empty() || self.horizons.contains(&0) {
            return Err(BenchError::invalid(
                "horizons",
                format!("{:?}", self.horizons),
                "one or more positive frame counts",
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(BenchError::invalid("tolerance", self.tolerance, "a positive distance in metres"));
        }
        Ok(())
    }
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            forecast_observe: 16,
            horizons: vec![15, 30],
            tolerance: 0.1,
            contact_observe: 12,
            outcome_observe: 6,
        }
    }
}

/// Ground truth of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Positions `[horizon][object]` of the item's objects, m.
    Positions(Vec<Vec<[f32; 3]>>),
    /// Index of the right choice.
    Choice(usize),
    /// Whether each episode of the quadruplet is possible (members 0..4).
    Possible(Vec<bool>),
}

/// A question with its ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `{task}/{split}/{family}/{sample}`, then `/{episode}` for single-episode tasks and
    /// `/{question}` for outcome items (unique within a task).
    pub id: String,
    /// Task.
    pub task: TaskKind,
    /// Family.
    pub family: String,
    /// Split.
    pub split: String,
    /// Sample index within the split.
    pub sample_index: u64,
    /// Episodes shown (a VoE quadruplet: four, in member order).
    pub episodes: Vec<u64>,
    /// Frames a model may observe: `0..observe` (VoE: whole episodes).
    pub observe: usize,
    /// Forecast horizons, frames after the last observed one.
    pub horizons: Vec<usize>,
    /// Question kind (`contact`, `tower_falls`, `first_floor`, `forecast`, `voe`).
    pub question: String,
    /// Allowed answers.
    pub choices: Vec<String>,
    /// Slots the item is about: forecast's scored objects, contact's `[agent, patient]`
    /// (patient absent for a zone), first_floor's candidates (choice order).
    pub objects: Vec<u16>,
    /// Contact with a zone: the zone (an index into the observed zones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<u16>,
    /// VoE: violation kind.
    pub violation: Option<String>,
    /// As presented: observed slot `k` shows true slot `slots[k]` (a seeded permutation per
    /// item, see [`crate::observe`]); `objects` and candidate names use the shown labels.
    /// Empty (the identity) for items as built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<u16>,
    /// Ground truth.
    pub target: Target,
    /// SHA-256 of everything above plus the dataset's suite hash.
    pub hash: String,
}

impl Item {
    fn seal(mut self, suite_hash: &str) -> Item {
        self.hash = String::new();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(b"physworld-item-v1\0");
        h.update(suite_hash.as_bytes());
        h.update([0]);
        h.update(&body);
        self.hash = hex::encode(h.finalize());
        self
    }

    /// Whether the choices name the item's `objects`, one each in the same order
    /// (first_floor's candidates), so that reordering one reorders the other.
    pub fn choices_are_objects(&self) -> bool {
        self.question == "first_floor"
    }

    /// The true slot behind shown slot `k` (for the oracle, which re-simulates true scenes).
    pub fn true_slot(&self, k: u16) -> u16 {
        if self.slots.is_empty() { k } else { self.slots.get(k as usize).copied().unwrap_or(k) }
    }

    /// The correct choice, for choice tasks.
    pub fn answer_index(&self) -> Option<usize> {
        match self.target {
            Target::Choice(i) => Some(i),
            _ => None,
        }
    }
}

/// SHA-256 over item hashes in order.
pub fn content_hash<'a>(hashes: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for x in hashes {
        h.update(x.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The frames of one split, by episode index, decoded once.
pub struct Frames {
    map: BTreeMap<u64, EpisodeFrames>,
    norm: physworld_model::Normalizer,
}

impl Frames {
    /// Decode every episode of `split`.
    pub fn load(ds: &Dataset, split: &str) -> Result<Frames> {
        Ok(Frames {
            map: ds.split_frames(split)?.into_iter().map(|e| (e.episode_index, e)).collect(),
            norm: physworld_model::Normalizer::from_stats(&ds.stats),
        })
    }

    /// Input normalisation from the dataset's train statistics.
    pub fn normalizer(&self) -> &physworld_model::Normalizer {
        &self.norm
    }

    /// Episode `i`.
    pub fn get(&self, i: u64) -> Result<&EpisodeFrames> {
        self.map.get(&i).ok_or_else(|| BenchError::invalid("episode", i, "an episode of the loaded split"))
    }
}

/// Position of object `o` at frame `f`.
pub fn pos(e: &EpisodeFrames, f: usize, o: usize) -> [f32; 3] {
    let k = (f * e.slots + o) * 3;
    [e.position[k], e.position[k + 1], e.position[k + 2]]
}

/// Linear velocity of object `o` at frame `f`.
pub fn vel(e: &EpisodeFrames, f: usize, o: usize) -> [f32; 3] {
    let k = (f * e.slots + o) * 3;
    [e.linvel[k], e.linvel[k + 1], e.linvel[k + 2]]
}

/// Orientation `[x, y, z, w]` of object `o` at frame `f`.
pub fn rot(e: &EpisodeFrames, f: usize, o: usize) -> [f32; 4] {
    let k = (f * e.slots + o) * 4;
    [e.rotation[k], e.rotation[k + 1], e.rotation[k + 2], e.rotation[k + 3]]
}

/// Half extents of object `o` at frame `f`.
pub fn half(e: &EpisodeFrames, f: usize, o: usize) -> [f32; 3] {
    let k = (f * e.slots + o) * 3;
    [e.size[k], e.size[k + 1], e.size[k + 2]]
}

/// Name of a shape code in the frames table (`object.shape`).
pub fn shape_name(code: i8) -> &'static str {
    match code {
        0 => "sphere",
        1 => "box",
        2 => "cylinder",
        3 => "capsule",
        _ => "unknown",
    }
}

/// Contact: bounding boxes of agent and patient this close (m) in the observed frames count
/// as touching already, so the candidate is dropped: in a single frame nearly touching looks
/// like touching, and what follows is decided by what was seen (measured on `physion`'s
/// `collide`: "yes" when they came this close was right on 84% of such items, lifting a
/// trick to 0.58 over 1 090 items).
pub const NEAR_CONTACT_M: f64 = 0.05;

/// Distance between the axis-aligned bounding boxes of objects `a` and `b` at frame `f`
/// (0 when they overlap), m.
pub fn box_gap(e: &EpisodeFrames, f: usize, a: usize, b: usize) -> f64 {
    let (pa, pb, ha, hb) = (pos(e, f, a), pos(e, f, b), half(e, f, a), half(e, f, b));
    (0..3).map(|c| (((pa[c] - pb[c]).abs() - ha[c] - hb[c]) as f64).max(0.0).powi(2)).sum::<f64>().sqrt()
}

/// Whether object `o` is present and visible at frame `f`.
pub fn seen(e: &EpisodeFrames, f: usize, o: usize) -> bool {
    e.present[f * e.slots + o] && e.visible[f * e.slots + o]
}

/// The items of one task over one split.
#[derive(Debug, Clone)]
pub struct TaskItems {
    /// Task.
    pub kind: TaskKind,
    /// Items, in episode order.
    pub items: Vec<Item>,
    /// Candidates dropped, by reason (e.g. contact inside the observation, label balance).
    pub dropped: BTreeMap<String, u64>,
}

impl TaskItems {
    /// SHA-256 over the item hashes.
    pub fn content_hash(&self) -> String {
        content_hash(self.items.iter().map(|i| i.hash.as_str()))
    }
}

fn is_voe(family: &str) -> bool {
    family.starts_with("voe-")
}

fn base(task: TaskKind, m: &EpisodeMeta, observe: usize) -> Item {
    Item {
        id: format!("{}/{}/{}/{}/{}", task.as_str(), m.split, m.family, m.sample_index, m.episode_index),
        task,
        family: m.family.clone(),
        split: m.split.clone(),
        sample_index: m.sample_index,
        episodes: vec![m.episode_index],
        observe,
        horizons: Vec::new(),
        question: String::new(),
        choices: Vec::new(),
        objects: Vec::new(),
        zone: None,
        violation: None,
        slots: Vec::new(),
        target: Target::Choice(0),
        hash: String::new(),
    }
}

/// Keep, per family and question, as many items of each answer as of the rarest one (the
/// first ones in hash order), so that a constant answer scores exactly chance.
fn balance(items: Vec<Item>, dropped: &mut BTreeMap<String, u64>) -> Vec<Item> {
    let mut groups: BTreeMap<(String, String, usize), Vec<Item>> = BTreeMap::new();
    for it in items {
        let key = (it.family.clone(), it.question.clone(), it.answer_index().unwrap_or(0));
        groups.entry(key).or_default().push(it);
    }
    let mut per: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new(); // (answers, min count)
    for ((f, q, _), v) in &groups {
        let e = per.entry((f.clone(), q.clone())).or_insert((0, usize::MAX));
        e.0 += 1;
        e.1 = e.1.min(v.len());
    }
    let mut out = Vec::new();
    for ((f, q, _), mut v) in groups {
        let (answers, keep) = per[&(f, q)];
        let keep = if answers < 2 { 0 } else { keep };
        v.sort_by(|a, b| a.hash.cmp(&b.hash));
        *dropped.entry("label balance".into()).or_default() += (v.len() - keep) as u64;
        out.extend(v.into_iter().take(keep));
    }
    out.sort_by_key(|i| i.episodes[0]);
    out
}

/// Build the items of task `kind` over `split`.
pub fn build(ds: &Dataset, frames: &Frames, split: &str, kind: TaskKind, opts: &TaskOptions) -> Result<TaskItems> {
    let hash = ds.info.suite_hash.clone();
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    let mut drop = |why: &str| *dropped.entry(why.to_string()).or_default() += 1;
    let mut items = Vec::new();
    let metas: Vec<&EpisodeMeta> = ds.split(split).collect();
    match kind {
        TaskKind::Forecast => {
            let last_h = opts.horizons.iter().copied().max().unwrap_or(0);
            for m in metas.iter().filter(|m| !is_voe(&m.family)) {
                let e = frames.get(m.episode_index)?;
                let r = opts.forecast_observe - 1;
                if e.frames < opts.forecast_observe + last_h {
                    drop("episode too short");
                    continue;
                }
                let objects: Vec<u16> = (0..e.slots)
                    .filter(|&o| seen(e, r, o) && opts.horizons.iter().all(|h| e.present[(r + h) * e.slots + o]))
                    .map(|o| o as u16)
                    .collect();
                if objects.is_empty() {
                    drop("no object to forecast");
                    continue;
                }
                let target = opts
                    .horizons
                    .iter()
                    .map(|h| objects.iter().map(|&o| pos(e, r + h, o as usize)).collect())
                    .collect();
                let mut it = base(kind, m, opts.forecast_observe);
                it.question = "forecast".into();
                it.horizons = opts.horizons.clone();
                it.objects = objects;
                it.target = Target::Positions(target);
                items.push(it.seal(&hash));
            }
        }
        TaskKind::Contact => {
            for m in &metas {
                let (Some(occurred), Some(agent)) = (m.contact, m.contact_agent) else { continue };
                if m.contact_frame.is_some_and(|f| (f as usize) < opts.contact_observe) {
                    drop("contact inside the observed frames");
                    continue;
                }
                if (m.num_frames as usize) <= opts.contact_observe {
                    drop("episode too short");
                    continue;
                }
                if let Some(patient) = m.contact_patient_object {
                    let e = frames.get(m.episode_index)?;
                    let (a, b) = (agent as usize, patient as usize);
                    let near = (0..opts.contact_observe.min(e.frames)).any(|f| {
                        e.present[f * e.slots + a]
                            && e.present[f * e.slots + b]
                            && box_gap(e, f, a, b) <= NEAR_CONTACT_M
                    });
                    if near {
                        drop("agent and patient nearly touching in the observed frames");
                        continue;
                    }
                }
                let mut it = base(kind, m, opts.contact_observe);
                it.question = "contact".into();
                it.choices = vec!["yes".into(), "no".into()];
                it.objects = std::iter::once(agent).chain(m.contact_patient_object).collect();
                it.zone = m.contact_patient_zone;
                it.target = Target::Choice(if occurred { 0 } else { 1 });
                items.push(it.seal(&hash));
            }
            items = balance(items, &mut dropped);
        }
        TaskKind::Outcome => {
            let mut towers = Vec::new();
            for m in &metas {
                if let Some(fell) = m.tower_fell {
                    let mut it = base(kind, m, opts.outcome_observe);
                    it.id.push_str("/tower_falls");
                    it.question = "tower_falls".into();
                    it.choices = vec!["yes".into(), "no".into()];
                    it.target = Target::Choice(if fell { 0 } else { 1 });
                    towers.push(it.seal(&hash));
                }
                if let Some(first) = m.first_floor_contact {
                    let e = frames.get(m.episode_index)?;
                    let r = opts.outcome_observe - 1;
                    // Candidates: objects seen at the last observed frame and clear of the floor.
                    let objects: Vec<u16> = (0..e.slots)
                        .filter(|&o| seen(e, r, o) && pos(e, r, o)[1] - half(e, r, o)[1] > 0.01)
                        .map(|o| o as u16)
                        .collect();
                    let Some(answer) = objects.iter().position(|&o| o == first) else {
                        drop("first object already down or unseen");
                        continue;
                    };
                    if objects.len() < 2 {
                        drop("fewer than two candidates");
                        continue;
                    }
                    let mut it = base(kind, m, opts.outcome_observe);
                    it.id.push_str("/first_floor");
                    it.question = "first_floor".into();
                    it.choices = objects.iter().map(|o| format!("object {o}")).collect();
                    it.objects = objects;
                    it.target = Target::Choice(answer);
                    items.push(it.seal(&hash));
                }
            }
            items.extend(balance(towers, &mut dropped));
            items.sort_by_key(|i| (i.episodes[0], i.question.clone()));
        }
        TaskKind::Voe => {
            let mut quads: BTreeMap<(String, u64), Vec<&EpisodeMeta>> = BTreeMap::new();
            for m in metas.iter().filter(|m| is_voe(&m.family)) {
                quads.entry((m.family.clone(), m.sample_index)).or_default().push(m);
            }
            for ((family, sample), mut q) in quads {
                q.sort_by_key(|m| m.member);
                if q.len() != 4 || q.iter().enumerate().any(|(i, m)| m.member != Some(i as u8)) {
                    drop("incomplete quadruplet");
                    continue;
                }
                let mut it = base(kind, q[0], q[0].num_frames as usize);
                it.id = format!("voe/{split}/{family}/{sample}");
                it.episodes = q.iter().map(|m| m.episode_index).collect();
                it.question = "voe".into();
                it.violation = q.iter().find_map(|m| m.violation.clone());
                it.target = Target::Possible(q.iter().map(|m| m.possible.unwrap_or(true)).collect());
                items.push(it.seal(&hash));
            }
        }
    }
    Ok(TaskItems { kind, items, dropped })
}
