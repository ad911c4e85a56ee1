//! Behaviour cloning on `plan-push`: a policy learned from the scripted expert's forces, no
//! world model (the learned baseline a latent planner has to beat).
//!
//! `bc:<dataset dir>` reads the `push` episodes of that dataset's `train` split: at every
//! frame where the puck is visible and the expert applies a force, the state the policy
//! observes (the goal zone's centre minus the puck's position, and the puck's velocity, on
//! the table's plane) and the expert's force `[fx, fz]`. The policy is nearest-neighbour
//! regression over those pairs (as VINN does over representations): the mean force of the
//! [`BehaviourCloning::K`] training states nearest the present one, each feature scaled by
//! its standard deviation over the training states. The data's expert is open loop and
//! noisy (`push`'s family docs: 70% a push toward the goal sized for the puck's hidden mass
//! and friction, 30% a random walk), so cloning it is a real test: it knows what the expert
//! did in states like this, not what happens next.

use std::path::Path;
use std::sync::Arc;

use physworld_pipeline::Dataset;
use physworld_sim::Simulation;

use super::{Adapter, Answer, Context};
use crate::error::{BenchError, Result};
use crate::plan_push::{PushPlanner, PushView};
use crate::results::ModelRef;
use crate::tasks::{Item, TaskKind};

/// Features of a state: goal minus puck (x, z), velocity (x, z).
const FEATURES: usize = 4;

/// The expert's state-force pairs.
struct Demonstrations {
    states: Vec<[f32; FEATURES]>,
    forces: Vec<[f32; 2]>,
    scale: [f32; FEATURES],
    episodes: usize,
}

fn features(goal: [f32; 3], position: [f32; 3], velocity: [f32; 3]) -> [f32; FEATURES] {
    [goal[0] - position[0], goal[2] - position[2], velocity[0], velocity[2]]
}

/// A behaviour-cloning policy for `plan-push` (see the module docs).
pub struct BehaviourCloning {
    id: String,
    source: String,
    suite_hash: String,
    demos: Arc<Demonstrations>,
}

impl BehaviourCloning {
    /// Neighbours averaged.
    pub const K: usize = 16;

    /// Clone the expert of dataset `dir`'s `train` split; `spec` names the model.
    pub fn fit(spec: &str, dir: &Path) -> Result<BehaviourCloning> {
        let ds = Dataset::open(dir)?;
        let mut demos = Demonstrations { states: Vec::new(), forces: Vec::new(), scale: [1.0; FEATURES], episodes: 0 };
        for e in ds.split_frames("train")? {
            let meta = ds.meta(e.episode_index)?;
            if meta.family != "push" {
                continue;
            }
            let Some(goal) = meta.zones.first().map(|z| z.center) else { continue };
            demos.episodes += 1;
            let s = e.slots;
            for f in 0..e.frames {
                if !e.has_action[f] || !e.visible[f * s] {
                    continue;
                }
                let d = f * s;
                let at = |v: &[f32]| [v[d * 3], v[d * 3 + 1], v[d * 3 + 2]];
                demos.states.push(features(goal, at(&e.position), at(&e.linvel)));
                demos.forces.push([e.action[f * 3], e.action[f * 3 + 2]]);
            }
        }
        if demos.states.len() < Self::K {
            return Err(BenchError::invalid(
                "model",
                spec,
                format!(
                    "bc:<dataset dir> whose train split has push episodes with the expert's forces ({} found in {})",
                    demos.states.len(),
                    dir.display()
                ),
            ));
        }
        let n = demos.states.len() as f64;
        for k in 0..FEATURES {
            let mean = demos.states.iter().map(|s| f64::from(s[k])).sum::<f64>() / n;
            let var = demos.states.iter().map(|s| (f64::from(s[k]) - mean).powi(2)).sum::<f64>() / n;
            demos.scale[k] = var.sqrt().max(1e-6) as f32;
        }
        Ok(BehaviourCloning {
            id: spec.into(),
            source: dir.display().to_string(),
            suite_hash: ds.info.suite_hash.clone(),
            demos: Arc::new(demos),
        })
    }
}

impl Adapter for BehaviourCloning {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "bc"
    }
    fn supports(&self, _task: TaskKind) -> bool {
        false
    }
    fn describe(&self) -> ModelRef {
        let mut m = ModelRef::new(&self.id, "bc");
        m.labels_used = vec!["the train split's expert forces (push)".into()];
        m.config = serde_json::json!({
            "data": self.source,
            "suite_hash": self.suite_hash,
            "split": "train",
            "episodes": self.demos.episodes,
            "pairs": self.demos.states.len(),
            "neighbours": Self::K,
            "features": "goal zone centre minus puck position (x, z), puck velocity (x, z), each over its std",
        });
        m
    }
    fn push_planner(&self) -> Option<Box<dyn PushPlanner>> {
        Some(Box::new(BcPush { id: self.id.clone(), demos: self.demos.clone() }))
    }
    fn answer(
        &mut self,
        _ctx: &Context<'_>,
        task: TaskKind,
        _items: &[Item],
        _protocol: Option<&str>,
        _tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>> {
        Err(BenchError::invalid("task", task.as_str(), "plan-push (bc is a policy)"))
    }
}

/// The cloned policy playing `plan-push`.
struct BcPush {
    id: String,
    demos: Arc<Demonstrations>,
}

impl PushPlanner for BcPush {
    fn id(&self) -> &str {
        &self.id
    }
    fn begin(&mut self, _index: usize, _seed: u64) {}
    fn act(&mut self, view: &PushView, _: &[[f32; 3]], _: Option<&Simulation<'_>>) -> Result<Option<[f32; 2]>> {
        let Some(p) = view.puck else { return Ok(Some([0.0, 0.0])) };
        let q = features(view.goal.position, p.position, p.velocity);
        let d = &self.demos;
        let dist = |s: &[f32; FEATURES]| -> f32 { (0..FEATURES).map(|k| ((s[k] - q[k]) / d.scale[k]).powi(2)).sum() };
        // The K nearest, ties by index (deterministic).
        let mut near: Vec<(f32, usize)> = Vec::with_capacity(BehaviourCloning::K + 1);
        for (i, s) in d.states.iter().enumerate() {
            let e = dist(s);
            if near.len() < BehaviourCloning::K || e < near[near.len() - 1].0 {
                let at = near.partition_point(|&(x, _)| x <= e);
                near.insert(at, (e, i));
                near.truncate(BehaviourCloning::K);
            }
        }
        let n = near.len().max(1) as f32;
        let f = near.iter().fold([0.0f32; 2], |a, &(_, i)| [a[0] + d.forces[i][0] / n, a[1] + d.forces[i][1] / n]);
        Ok(Some(f))
    }
}
