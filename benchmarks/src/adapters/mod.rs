//! Model adapters: every model answers the same items through one trait.
//!
//! | spec | what it is | tasks |
//! |---|---|---|
//! | `oracle` | the simulator re-run from t=0 with the true scene; for planning, search with the true simulator: the ceiling | all, plan-launch, plan-push |
//! | `observer` | the simulator on the scene rebuilt from the observation alone: what is solvable from it (see [`Observer`]) | all |
//! | `constant-velocity` | ballistic extrapolation (gravity for airborne objects) | all |
//! | `chance[:SEED]` | seeded uniform answers and surprise; uniform placements and forces | contact, outcome, voe, plan-launch, plan-push |
//! | `greedy` | the planning heuristics: the ball dropped just behind the target; a PD controller pushing to the goal | plan-launch, plan-push |
//! | `majority` | the most frequent `readout` answer; constant surprise | contact, outcome, voe |
//! | `bc:<dataset dir>` | behaviour cloning: nearest-neighbour regression of the expert's forces in that dataset's `train` split (see [`BehaviourCloning`]) | plan-push |
//! | `raw-state[,pairs=on\|off][,probe=linear\|attentive]` | the probes of `jepa:` fit on the raw observed state; `pairs` and `probe` as for `jepa` | forecast, contact, outcome |
//! | `jepa[,OPTION...]:<run dir>` | a trained checkpoint (JEPA or state-mse): rollout + probes, surprise; on plan-push, CEM or MPPI over forces in its own predictions ([`crate::latent_plan`]); readout options (see [`Readout`]) `features=model\|both` (the raw observed state beside the model's features), `rollout=FRAMES\|end` (contact and outcome read from the rollout's frame, or to the episode's end), `judge=probe\|trajectory` (contact and outcome from probes on the features, or judged by geometry on positions decoded from the rollout to the episode's end, [`imagine`]), `pairs=on\|off` (the contact probe also sees the squared difference of the two objects' features), `probe=linear\|attentive` (contact and outcome read by logistic regression on one row, or by an attentive probe over per-object tokens, [`ProbeKind`]); planning options ([`crate::latent_plan::PlanOptions`]) | all, plan-push |
//! | `heuristic:<name>` | a cheap trick (see [`Heuristic`], [`Structural`]) that a meaningful task defeats | voe, contact or outcome |
//! | `openai:<model>[@<url>]`, `anthropic:<model>[@<url>]` | an LLM from a text rendering of the items (see [`crate::llm`]); plans as a dialogue ([`crate::llm::plan`]) | all, plan-launch |
//! | `gguf:<path>` | a GGUF chat model run in-process, no server (see [`crate::llm::gguf`]) | all, plan-launch |
//! | `process:<command>` | any external program over JSON Lines on stdin/stdout (see [`Process`]) | what it declares |

use std::collections::BTreeMap;

use physworld_pipeline::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::results::ModelRef;
use crate::tasks::{Frames, Item, TaskItems, TaskKind, TaskOptions};

mod baselines;
mod bc;
mod heuristics;
pub mod imagine;
mod observer;
mod probes;
mod process;
mod structural;

pub use baselines::{Chance, ConstantVelocity, GreedyPlanner, Majority, Oracle};
pub use bc::BehaviourCloning;
pub use heuristics::{Heuristic, HeuristicAdapter};
pub use observer::Observer;
pub use probes::{
    ATTENTIVE, ATTENTIVE_ENSEMBLE, Featurizer, ItemFeatures, Jepa, Judge, ProbeAdapter, ProbeKind, READOUT_OPTIONS,
    READOUT_ROLLOUT, RawState, Readout, Rolled, Rollout,
};
pub use process::{ANSWER_TIMEOUT, PROCESS_PROTOCOL, Process, episode_json};
pub use structural::Structural;

/// Surprise of one episode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Surprise {
    /// Maximum over frames (`null` in JSON when not finite).
    #[serde(deserialize_with = "crate::results::nullable_f64")]
    pub max: f64,
    /// Mean over frames.
    #[serde(deserialize_with = "crate::results::nullable_f64")]
    pub mean: f64,
}

impl Surprise {
    /// Max and mean of per-frame scores (0 for none).
    pub fn from_frames(per_frame: &[f64]) -> Surprise {
        Surprise {
            max: per_frame.iter().copied().fold(0.0, f64::max),
            mean: per_frame.iter().sum::<f64>() / per_frame.len().max(1) as f64,
        }
    }
}

/// A model's answer to one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Forecast: positions `[horizon][object]` (a coordinate that is not finite is `null`
    /// in JSON and read back as NaN, so a shard file round-trips it).
    Positions(#[serde(deserialize_with = "nullable_positions")] Vec<Vec<[f32; 3]>>),
    /// Choice index.
    Choice(usize),
    /// VoE: surprise per episode of the quadruplet.
    Surprise(Vec<Surprise>),
    /// No usable answer (scored as wrong and counted as invalid), with why.
    Invalid(String),
}

/// Deserialize forecast positions whose non-finite coordinates serde_json wrote as `null`.
fn nullable_positions<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<Vec<[f32; 3]>>, D::Error> {
    let raw = Vec::<Vec<[Option<f32>; 3]>>::deserialize(d)?;
    Ok(raw.into_iter().map(|h| h.into_iter().map(|p| p.map(|c| c.unwrap_or(f32::NAN))).collect()).collect())
}

/// The answer naming choice `label` of `it` (e.g. `"yes"`), wherever the item shows it
/// (choices are shown in a seeded order: [`crate::present`]); invalid when it has no such
/// choice.
pub fn choose(it: &Item, label: &str) -> Answer {
    match it.choices.iter().position(|c| c == label) {
        Some(k) => Answer::Choice(k),
        None => Answer::Invalid(format!("no choice `{label}` among {:?}", it.choices)),
    }
}

/// [`choose`] `"yes"` or `"no"`.
pub fn yes_no(it: &Item, yes: bool) -> Answer {
    choose(it, if yes { "yes" } else { "no" })
}

/// What an adapter may look at: the dataset, the scored split's frames, and the `readout`
/// split's items and frames (for probes and majority answers).
pub struct Context<'a> {
    /// The dataset.
    pub ds: &'a Dataset,
    /// Scored split.
    pub split: &'a str,
    /// Its frames.
    pub frames: &'a Frames,
    /// Items of the `readout` split per task (labels for probes).
    pub readout: &'a BTreeMap<TaskKind, TaskItems>,
    /// Frames of the `readout` split.
    pub readout_frames: &'a Frames,
    /// How items were cut.
    pub opts: &'a TaskOptions,
}

/// A model that answers benchmark items.
pub trait Adapter {
    /// The spec it was built from (its row name).
    fn id(&self) -> &str;
    /// Adapter kind.
    fn kind(&self) -> &'static str;
    /// Whether it answers items of `task`.
    fn supports(&self, task: TaskKind) -> bool;
    /// Description for result files.
    fn describe(&self) -> ModelRef;
    /// Readout protocols it scores `task` under (Physion's `all`, `only`, `all-but-one`);
    /// the first is the primary one. Empty for models without probes.
    fn protocols(&self, _task: TaskKind) -> Vec<&'static str> {
        Vec::new()
    }
    /// The raw exchange behind an item's answer (LLM requests and responses, without keys),
    /// logged with the item. Taken once.
    fn raw_log(&mut self, _item: &str) -> Option<serde_json::Value> {
        None
    }
    /// The planner it plays `plan-launch` with ([`crate::plan`]); `None` for adapters that do
    /// not plan (the task is then listed as unsupported).
    fn launch_planner(&self) -> Option<Box<dyn crate::plan::LaunchPlanner>> {
        None
    }
    /// The planner it plays `plan-push` with ([`crate::plan_push`]); `None` for adapters that
    /// do not plan it.
    fn push_planner(&self) -> Option<Box<dyn crate::plan_push::PushPlanner>> {
        None
    }
    /// Refuse to play or score `split` of `ds` when the model was trained on it (a
    /// checkpoint's training data); asked before the planning tasks, whose items are played
    /// without [`Adapter::answer`]. Models that learn nothing from datasets accept all.
    fn check_scored(&self, _ds: &physworld_pipeline::Dataset, _split: &str) -> Result<()> {
        Ok(())
    }
    /// Whether each answer depends on its item alone, not on the other items asked with it
    /// or before it. Sharded runs (`bench --shard`) ask each worker a part of the items, so
    /// they refuse adapters that say no.
    fn answers_alone(&self) -> bool {
        true
    }
    /// A line about the run for people (e.g. an LLM's requests and cache hits); not part of
    /// the results.
    fn summary(&self) -> Option<String> {
        None
    }
    /// Answer `items` of `task` (one answer per item, in order) under readout `protocol`;
    /// calls `tick` once per item answered.
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        task: TaskKind,
        items: &[Item],
        protocol: Option<&str>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<Answer>>;
}

/// The model specs [`parse`] accepts.
pub const SPECS: &str = "oracle, observer[:blind-statics], constant-velocity, chance[:SEED], majority, greedy[,route=direct|around], bc:<dataset dir>, raw-state[,pairs=on|off][,probe=linear|attentive], jepa[,features=model|both][,rollout=FRAMES|end][,judge=probe|trajectory][,pairs=on|off][,probe=linear|attentive][,planner=cem|mppi,samples=N,...]:<run dir>, heuristic:<name>, process:<command>, openai:<model>[@<url>], anthropic:<model>[@<url>], gguf:<path to .gguf>";

/// The names before the `:` of [`SPECS`], for "did you mean".
const SPEC_HEADS: [&str; 14] = [
    "oracle",
    "observer",
    "constant-velocity",
    "chance",
    "majority",
    "greedy",
    "bc",
    "raw-state",
    "jepa",
    "heuristic",
    "process",
    "openai",
    "anthropic",
    "gguf",
];

/// Build the adapter for `spec`.
pub fn parse(spec: &str) -> Result<Box<dyn Adapter>> {
    parse_with(spec, &crate::llm::LlmRun::default())
}

/// Whether `spec` names an LLM (`openai:`, `anthropic:`, `gguf:`).
pub fn is_llm(spec: &str) -> bool {
    ["openai:", "anthropic:", "gguf:"].iter().any(|p| spec.starts_with(p))
}

/// Build the adapter for `spec`, an LLM with the run settings `run` (ignored by others).
pub fn parse_with(spec: &str, run: &crate::llm::LlmRun) -> Result<Box<dyn Adapter>> {
    crate::llm::require_available([spec])?;
    let (head, arg) = match spec.split_once(':') {
        Some((h, a)) => (h, Some(a)),
        None => (spec, None),
    };
    // `jepa,features=both,rollout=end:<run>`: a checkpoint's readout options.
    let (head, options) = match head.split_once(',') {
        Some(("jepa", o)) => ("jepa", o),
        Some(("greedy", o)) => ("greedy", o),
        Some(("raw-state", o)) if !o.is_empty() => ("raw-state", o),
        _ => (head, ""),
    };
    match (head, arg) {
        ("oracle", None) => Ok(Box::new(Oracle::new())),
        ("observer", None) => Ok(Box::new(Observer::new(false))),
        ("observer", Some("blind-statics")) => Ok(Box::new(Observer::new(true))),
        ("constant-velocity", None) => Ok(Box::new(ConstantVelocity)),
        ("chance", None) => Ok(Box::new(Chance::new(spec, 0))),
        ("chance", Some(s)) => {
            let seed = s.parse().map_err(|_| BenchError::invalid("model", spec, "chance:SEED with an integer SEED"))?;
            Ok(Box::new(Chance::new(spec, seed)))
        }
        ("majority", None) => Ok(Box::new(Majority::default())),
        ("greedy", None) => Ok(Box::new(GreedyPlanner::new(spec)?)),
        ("bc", Some(d)) if !d.is_empty() => {
            // A dataset folder, or an object-store URL in a `cloud` build.
            let dir = physworld_pipeline::dataset_location(d).map_err(|why| BenchError::invalid("model", spec, why))?;
            Ok(Box::new(BehaviourCloning::fit(spec, &dir)?))
        }
        ("raw-state", None) => {
            Ok(Box::new(ProbeAdapter::with_readout(spec, RawState, Readout::parse_raw_state(options, spec)?)))
        }
        ("openai", Some(m)) if !m.is_empty() => {
            Ok(Box::new(crate::llm::Llm::new(spec, crate::llm::Provider::OpenAi, m).with_run(run.clone())?))
        }
        ("gguf", Some(p)) if !p.is_empty() => Ok(Box::new(crate::llm::Llm::gguf(spec, p)?.with_run(run.clone())?)),
        ("anthropic", Some(m)) if !m.is_empty() => {
            Ok(Box::new(crate::llm::Llm::new(spec, crate::llm::Provider::Anthropic, m).with_run(run.clone())?))
        }
        ("process", Some(cmd)) if !cmd.trim().is_empty() => Ok(Box::new(Process::start(spec, cmd)?)),
        ("heuristic", Some(h)) => Ok(Box::new(HeuristicAdapter::new(Heuristic::parse(h)?))),
        ("jepa", Some(run)) if !run.is_empty() => {
            // A run folder, or an object-store URL in a `cloud` build.
            let dir =
                physworld_pipeline::dataset_location(run).map_err(|why| BenchError::invalid("model", spec, why))?;
            let (plan, options) = crate::latent_plan::PlanOptions::take(options, spec)?;
            let readout = Readout::parse(&options, spec)?;
            Ok(Box::new(ProbeAdapter::with_readout(spec, Jepa::load(&dir, spec)?.with_plan(plan), readout)))
        }
        _ => {
            let hint = physworld_sim::suggest::closest(head, SPEC_HEADS)
                .map(|h| format!("; did you mean `{h}{}`?", arg.map(|a| format!(":{a}")).unwrap_or_default()))
                .unwrap_or_default();
            Err(BenchError::invalid("model", spec, format!("{SPECS}{hint}")))
        }
    }
}
