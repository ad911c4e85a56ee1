//! Reference adapters without learning: the simulator oracle, constant velocity, chance and
//! majority.

use std::collections::BTreeMap;

use physworld_pipeline::EpisodeFrames;
use physworld_sim::{GRAVITY, Sample};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use serde_json::json;

use super::{Adapter, Answer, Context, Surprise};
use crate::error::Result;
use crate::metrics::dist;
use crate::results::ModelRef;
use crate::tasks::{Item, TaskKind, half, pos, seen, vel};

fn model_ref(id: &str, kind: &str, seeds: Vec<u64>, labels: Vec<String>) -> ModelRef {
    ModelRef { id: id.into(), kind: kind.into(), checkpoint_hash: None, seeds, labels_used: labels, config: json!({}) }
}

/// The simulator re-run from t=0 with each episode's true scene (re-simulating from the
/// recorded 30 fps states would lose the physics sub-steps): the ceiling. Forecasts and
/// labels come from the re-simulated episode; VoE surprise is the distance between what is
/// observed and the possible world that starts from the same scene.
pub struct Oracle {
    id: String,
}

impl Oracle {
    /// The oracle.
    pub fn new() -> Self {
        Oracle { id: "oracle".into() }
    }
}

impl Default for Oracle {
    fn default() -> Self {
        Oracle::new()
    }
}

/// Per-frame divergence of an observed episode from a reference world: for each slot, 1 when
/// presence differs, else the position distance plus the size change.
fn divergence(obs: &EpisodeFrames, world: &physworld_sim::Episode) -> Surprise {
    let mut per_frame = Vec::new();
    for (f, fr) in world.frames.iter().enumerate().take(obs.frames) {
        let mut d = 0.0;
        for (o, st) in fr.objects.iter().enumerate().take(obs.slots) {
            let p = obs.present[f * obs.slots + o];
            if p != st.present {
                d += 1.0;
            } else if p {
                d += dist(pos(obs, f, o), st.position) + dist(half(obs, f, o), st.size);
            }
        }
        per_frame.push(d);
    }
    Surprise {
        max: per_frame.iter().copied().fold(0.0, f64::max),
        mean: per_frame.iter().sum::<f64>() / per_frame.len().max(1) as f64,
    }
}

impl Adapter for Oracle {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "oracle"
    }
    fn supports(&self, _task: TaskKind) -> bool {
        true
    }
    fn describe(&self) -> ModelRef {
        model_ref(&self.id, "oracle", Vec::new(), vec!["true scenes (re-simulation from t=0)".into()])
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        items
            .par_iter()
            .map(|it| {
                let sample: Sample = ctx.ds.regenerate(&it.split, it.sample_index)?;
                let member = |ep: u64| -> Result<usize> { Ok(ctx.ds.meta(ep)?.member.unwrap_or(0) as usize) };
                let e = &sample.episodes[member(it.episodes[0])?.min(sample.episodes.len() - 1)];
                let ans = match task {
                    TaskKind::Forecast => {
                        let r = it.observe - 1;
                        Answer::Positions(
                            it.horizons
                                .iter()
                                .map(|h| {
                                    it.objects.iter().map(|&o| e.frames[r + h].objects[o as usize].position).collect()
                                })
                                .collect(),
                        )
                    }
                    TaskKind::Contact => {
                        let occurred = e.labels.contact.is_some_and(|c| c.occurred);
                        Answer::Choice(if occurred { 0 } else { 1 })
                    }
                    TaskKind::Outcome => match it.question.as_str() {
                        "tower_falls" => Answer::Choice(if e.labels.tower_fell == Some(true) { 0 } else { 1 }),
                        _ => match e
                            .labels
                            .first_floor_contact
                            .and_then(|f| it.objects.iter().position(|&o| o as usize == f))
                        {
                            Some(i) => Answer::Choice(i),
                            None => Answer::Invalid("re-simulated first object is not a candidate".into()),
                        },
                    },
                    TaskKind::Voe => {
                        // The possible world of each observed episode: the possible member whose
                        // scene starts where the observed one does.
                        let possible: Vec<&physworld_sim::Episode> = sample
                            .episodes
                            .iter()
                            .filter(|e| e.labels.quadruplet.is_some_and(|q| q.possible))
                            .collect();
                        let mut out = Vec::new();
                        for &ep in &it.episodes {
                            let obs = ctx.frames.get(ep)?;
                            let world = possible
                                .iter()
                                .min_by(|a, b| divergence_at0(obs, a).total_cmp(&divergence_at0(obs, b)))
                                .copied()
                                .unwrap_or(e);
                            out.push(divergence(obs, world));
                        }
                        Answer::Surprise(out)
                    }
                };
                tick();
                Ok(ans)
            })
            .collect()
    }
}

fn divergence_at0(obs: &EpisodeFrames, world: &physworld_sim::Episode) -> f64 {
    let Some(fr) = world.frames.first() else { return f64::INFINITY };
    fr.objects.iter().enumerate().take(obs.slots).map(|(o, st)| dist(pos(obs, 0, o), st.position)).sum()
}

/// Constant-velocity (ballistic) extrapolation: objects keep their velocity; airborne ones
/// also fall under gravity until the floor (`y = 0`).
pub struct ConstantVelocity;

/// Whether an object is off the ground or moving vertically.
fn airborne(p: [f32; 3], v: [f32; 3], h: [f32; 3]) -> bool {
    p[1] - h[1] > 0.02 || v[1].abs() > 0.2
}

/// Ballistic position after `t` seconds.
pub fn ballistic(p: [f32; 3], v: [f32; 3], h: [f32; 3], t: f32) -> [f32; 3] {
    let mut y = p[1] + v[1] * t;
    if airborne(p, v, h) {
        y -= 0.5 * GRAVITY * t * t;
    }
    [p[0] + v[0] * t, y.max(h[1].min(p[1])), p[2] + v[2] * t]
}

fn norm(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

impl Adapter for ConstantVelocity {
    fn id(&self) -> &str {
        "constant-velocity"
    }
    fn kind(&self) -> &'static str {
        "constant-velocity"
    }
    fn supports(&self, _task: TaskKind) -> bool {
        true
    }
    fn describe(&self) -> ModelRef {
        model_ref("constant-velocity", "constant-velocity", Vec::new(), Vec::new())
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        let dt = 1.0 / ctx.ds.info.fps.max(1) as f32;
        items
            .iter()
            .map(|it| {
                let e = ctx.frames.get(it.episodes[0])?;
                let r = it.observe.saturating_sub(1);
                let ans = match task {
                    TaskKind::Forecast => Answer::Positions(
                        it.horizons
                            .iter()
                            .map(|&hz| {
                                it.objects
                                    .iter()
                                    .map(|&o| {
                                        let o = o as usize;
                                        ballistic(pos(e, r, o), vel(e, r, o), half(e, r, o), hz as f32 * dt)
                                    })
                                    .collect()
                            })
                            .collect(),
                    ),
                    TaskKind::Contact => {
                        let hit = match it.objects[..] {
                            [a, b] => {
                                let (a, b) = (a as usize, b as usize);
                                let reach = norm(half(e, r, a)) + norm(half(e, r, b));
                                (1..e.frames.saturating_sub(r)).any(|k| {
                                    let t = k as f32 * dt;
                                    let pa = ballistic(pos(e, r, a), vel(e, r, a), half(e, r, a), t);
                                    let pb = ballistic(pos(e, r, b), vel(e, r, b), half(e, r, b), t);
                                    dist(pa, pb) as f32 <= reach
                                })
                            }
                            _ => false, // a zone patient: its extent is not observed
                        };
                        Answer::Choice(if hit { 0 } else { 1 })
                    }
                    TaskKind::Outcome => match it.question.as_str() {
                        "tower_falls" => {
                            let moving = (0..e.slots).any(|o| seen(e, r, o) && norm(vel(e, r, o)) > 0.05);
                            Answer::Choice(if moving { 0 } else { 1 })
                        }
                        _ => {
                            let t_floor = |o: usize| {
                                let (p, v, h) = (pos(e, r, o), vel(e, r, o), half(e, r, o));
                                let height = (p[1] - h[1]).max(0.0);
                                (v[1] + (v[1] * v[1] + 2.0 * GRAVITY * height).sqrt()) / GRAVITY
                            };
                            let best = it
                                .objects
                                .iter()
                                .enumerate()
                                .min_by(|a, b| t_floor(*a.1 as usize).total_cmp(&t_floor(*b.1 as usize)))
                                .map_or(0, |(i, _)| i);
                            Answer::Choice(best)
                        }
                    },
                    TaskKind::Voe => Answer::Surprise(
                        it.episodes
                            .iter()
                            .map(|&ep| ctx.frames.get(ep).map(|e| kinematic_residual(e, dt)))
                            .collect::<Result<_>>()?,
                    ),
                };
                tick();
                Ok(ans)
            })
            .collect()
    }
}

/// Per-frame mean distance between where constant velocity puts each seen object and where
/// it is seen next.
fn kinematic_residual(e: &EpisodeFrames, dt: f32) -> Surprise {
    let mut per_frame = Vec::new();
    for f in 1..e.frames {
        let (mut sum, mut n) = (0.0, 0);
        for o in 0..e.slots {
            if seen(e, f - 1, o) && seen(e, f, o) {
                let p = ballistic(pos(e, f - 1, o), vel(e, f - 1, o), half(e, f - 1, o), dt);
                sum += dist(p, pos(e, f, o));
                n += 1;
            }
        }
        per_frame.push(if n > 0 { sum / n as f64 } else { 0.0 });
    }
    Surprise {
        max: per_frame.iter().copied().fold(0.0, f64::max),
        mean: per_frame.iter().sum::<f64>() / per_frame.len().max(1) as f64,
    }
}

/// Seeded uniform answers (per item, independent of order) and uniform random surprise.
pub struct Chance {
    id: String,
    seed: u64,
}

impl Chance {
    /// Chance with `seed`.
    pub fn new(id: &str, seed: u64) -> Self {
        Chance { id: id.into(), seed }
    }
}

fn item_rng(seed: u64, it: &Item) -> ChaCha8Rng {
    let mut k = [0u8; 8];
    if let Ok(b) = hex::decode(&it.hash[..16.min(it.hash.len())]) {
        k[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
    }
    ChaCha8Rng::seed_from_u64(seed ^ u64::from_le_bytes(k))
}

impl Adapter for Chance {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "chance"
    }
    fn supports(&self, task: TaskKind) -> bool {
        task != TaskKind::Forecast
    }
    fn describe(&self) -> ModelRef {
        model_ref(&self.id, "chance", vec![self.seed], Vec::new())
    }
    fn answer(
        &mut self,
        _ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        Ok(items
            .iter()
            .map(|it| {
                let mut rng = item_rng(self.seed, it);
                tick();
                match task {
                    TaskKind::Voe => Answer::Surprise(
                        it.episodes
                            .iter()
                            .map(|_| {
                                let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                                Surprise { max: x, mean: x }
                            })
                            .collect(),
                    ),
                    _ => Answer::Choice((rng.next_u64() % it.choices.len().max(1) as u64) as usize),
                }
            })
            .collect())
    }
}

/// The most frequent answer of the `readout` split per question; the same surprise for
/// every episode (so exactly 50% relative accuracy and 0.5 AUROC on VoE).
#[derive(Default)]
pub struct Majority {
    counts: BTreeMap<String, u64>,
}

impl Adapter for Majority {
    fn id(&self) -> &str {
        "majority"
    }
    fn kind(&self) -> &'static str {
        "majority"
    }
    fn supports(&self, task: TaskKind) -> bool {
        task != TaskKind::Forecast
    }
    fn describe(&self) -> ModelRef {
        let mut m = model_ref("majority", "majority", Vec::new(), vec!["readout split answers".into()]);
        m.config = json!({ "readout_items": self.counts });
        m
    }
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        _protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        let mut freq: BTreeMap<String, BTreeMap<usize, u64>> = BTreeMap::new();
        if let Some(r) = ctx.readout.get(&task) {
            for it in &r.items {
                if let Some(a) = it.answer_index() {
                    *freq.entry(it.question.clone()).or_default().entry(a).or_default() += 1;
                }
            }
            self.counts.insert(task.as_str().into(), r.items.len() as u64);
        }
        Ok(items
            .iter()
            .map(|it| {
                tick();
                match task {
                    TaskKind::Voe => Answer::Surprise(vec![Surprise { max: 0.0, mean: 0.0 }; it.episodes.len()]),
                    _ => {
                        let best = freq
                            .get(&it.question)
                            .and_then(|m| m.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(k, _)| *k))
                            .unwrap_or(0);
                        Answer::Choice(best.min(it.choices.len().saturating_sub(1)))
                    }
                }
            })
            .collect())
    }
}
