//! Scenario families: procedural scene samplers with documented parameter ranges.
//!
//! Each family draws a [`Scene`](crate::Scene) from a seed, simulates it and labels the
//! episode. Every family defines a held-out region (a parameter band or a template set)
//! that only the `test` split draws from; its parameter docs name it.
//!
//! | kind | families |
//! |---|---|
//! | Physion analogues | `dominoes`, `support`, `collide`, `contain`, `drop`, `roll`, `link` |
//! | hidden-property inference | `spring` (mass and friction identifiable from motion) |
//! | planning | `push`, `launch` |
//! | violation of expectation | `voe-permanence`, `voe-continuity`, `voe-shape`, `voe-solidity`, `voe-gravity` |

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::episode::{Episode, ViolationKind};
use crate::error::{Rejection, Result, SimError};
use crate::split::Split;

mod collide;
pub mod common;
mod contain;
mod dominoes;
mod drop;
mod launch;
mod link;
mod push;
mod range;
mod roll;
mod spring;
mod support;
mod voe;

pub use launch::validate_placement;
pub use range::{IntRange, Range};

/// Outcome of drawing a sample: the sample, or why this attempt was rejected.
pub type Outcome = std::result::Result<Sample, Rejection>;

/// One draw from a family: a single episode, or for VoE families a matched quadruplet of
/// four episodes (members 0, 1 possible; 2, 3 impossible).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The episodes.
    pub episodes: Vec<Episode>,
    /// Rejected attempts before this one (filled by the generator).
    pub rejected: Vec<Rejection>,
}

impl Sample {
    pub(crate) fn one(e: Episode) -> Self {
        Sample { episodes: vec![e], rejected: Vec::new() }
    }
}

/// What a family is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyKind {
    /// Physion analogue with an Object Contact Prediction label.
    Physion,
    /// Planning task with actions and a goal.
    Planning,
    /// IntPhys-style violation of expectation (quadruplets).
    Voe,
}

/// Static description of a family.
#[derive(Debug, Clone, Copy)]
pub struct FamilyInfo {
    /// Registered name.
    pub name: &'static str,
    /// Kind.
    pub kind: FamilyKind,
    /// One-line description.
    pub description: &'static str,
    /// `(parameter, meaning and units)` for every parameter.
    pub params: &'static [(&'static str, &'static str)],
    /// What the `test` split holds out.
    pub heldout: &'static str,
    /// Labels the family fills.
    pub labels: &'static str,
}

/// A scenario family with its parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Family {
    /// Dominoes.
    Dominoes(dominoes::Params),
    /// Towers that do or don't fall.
    Support(support::Params),
    /// One object slides or rolls into another.
    Collide(collide::Params),
    /// Objects dropped into or beside a container.
    Contain(contain::Params),
    /// Objects dropped onto a target.
    Drop(drop::Params),
    /// An object rolls down a ramp.
    Roll(roll::Params),
    /// A hinged chain swings.
    Link(link::Params),
    /// A box on a spring of known stiffness slides on the floor.
    Spring(spring::Params),
    /// An agent pushes a puck to a goal.
    Push(push::Params),
    /// PHYRE-style ball placement.
    Launch(launch::Params),
    /// Violation of expectation of the given kind.
    Voe(ViolationKind, voe::Params),
}

/// Every registered family name, in listing order.
pub const NAMES: [&str; 15] = [
    "dominoes",
    "support",
    "collide",
    "contain",
    "drop",
    "roll",
    "link",
    "spring",
    "push",
    "launch",
    "voe-permanence",
    "voe-continuity",
    "voe-shape",
    "voe-solidity",
    "voe-gravity",
];

fn voe_kind(name: &str) -> Option<ViolationKind> {
    Some(match name {
        "voe-permanence" => ViolationKind::Permanence,
        "voe-continuity" => ViolationKind::Continuity,
        "voe-shape" => ViolationKind::Shape,
        "voe-solidity" => ViolationKind::Solidity,
        "voe-gravity" => ViolationKind::Gravity,
        _ => return None,
    })
}

impl Family {
    /// The family `name` with default parameters.
    pub fn by_name(name: &str) -> Result<Family> {
        Family::with_overrides(name, &Map::new())
    }

    /// The family `name` with `overrides` merged over its defaults, validated. Unknown keys
    /// and bad values give an error naming `<family>.<key>`, the value and what is allowed.
    pub fn with_overrides(name: &str, overrides: &Map<String, Value>) -> Result<Family> {
        fn build<P>(name: &str, overrides: &Map<String, Value>) -> Result<P>
        where
            P: Default + Serialize + for<'de> Deserialize<'de>,
        {
            let mut base = match serde_json::to_value(P::default()) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            for (k, v) in overrides {
                if !base.contains_key(k) {
                    let keys: Vec<&str> = base.keys().map(String::as_str).collect();
                    return Err(SimError::UnknownParam {
                        field: format!("{name}.{k}"),
                        value: v.to_string(),
                        known: format!("{}{}", keys.join(", "), crate::suggest::did_you_mean(k, keys.iter().copied())),
                    });
                }
                base.insert(k.clone(), v.clone());
            }
            for (k, v) in overrides {
                let mut probe = Map::new();
                probe.insert(k.clone(), v.clone());
                if let Err(e) = serde_json::from_value::<P>(Value::Object(merge(&base, &probe))) {
                    return Err(SimError::invalid(
                        format!("{name}.{k}"),
                        v,
                        format!("a value of the right type ({e})"),
                    ));
                }
            }
            serde_json::from_value(Value::Object(base))
                .map_err(|e| SimError::invalid(name, "parameters", format!("well-typed parameters ({e})")))
        }
        fn merge(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
            let mut m = a.clone();
            m.extend(b.clone());
            m
        }
        let fam = match name {
            "dominoes" => Family::Dominoes(build(name, overrides)?),
            "support" => Family::Support(build(name, overrides)?),
            "collide" => Family::Collide(build(name, overrides)?),
            "contain" => Family::Contain(build(name, overrides)?),
            "drop" => Family::Drop(build(name, overrides)?),
            "roll" => Family::Roll(build(name, overrides)?),
            "link" => Family::Link(build(name, overrides)?),
            "spring" => Family::Spring(build(name, overrides)?),
            "push" => Family::Push(build(name, overrides)?),
            "launch" => Family::Launch(build(name, overrides)?),
            other => match voe_kind(other) {
                Some(k) => Family::Voe(k, build(name, overrides)?),
                None => {
                    return Err(SimError::unknown_family(other));
                }
            },
        };
        fam.validate()?;
        Ok(fam)
    }

    /// Static description.
    pub fn info(&self) -> FamilyInfo {
        match self {
            Family::Dominoes(_) => dominoes::INFO,
            Family::Support(_) => support::INFO,
            Family::Collide(_) => collide::INFO,
            Family::Contain(_) => contain::INFO,
            Family::Drop(_) => drop::INFO,
            Family::Roll(_) => roll::INFO,
            Family::Link(_) => link::INFO,
            Family::Spring(_) => spring::INFO,
            Family::Push(_) => push::INFO,
            Family::Launch(_) => launch::INFO,
            Family::Voe(k, _) => voe::info(*k),
        }
    }

    /// Registered name.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Parameters as JSON (the format overrides use).
    pub fn params_json(&self) -> Value {
        let r = match self {
            Family::Dominoes(p) => serde_json::to_value(p),
            Family::Support(p) => serde_json::to_value(p),
            Family::Collide(p) => serde_json::to_value(p),
            Family::Contain(p) => serde_json::to_value(p),
            Family::Drop(p) => serde_json::to_value(p),
            Family::Roll(p) => serde_json::to_value(p),
            Family::Link(p) => serde_json::to_value(p),
            Family::Spring(p) => serde_json::to_value(p),
            Family::Push(p) => serde_json::to_value(p),
            Family::Launch(p) => serde_json::to_value(p),
            Family::Voe(_, p) => serde_json::to_value(p),
        };
        r.unwrap_or(Value::Null)
    }

    /// Validate the parameters.
    pub fn validate(&self) -> Result<()> {
        match self {
            Family::Dominoes(p) => p.validate(),
            Family::Support(p) => p.validate(),
            Family::Collide(p) => p.validate(),
            Family::Contain(p) => p.validate(),
            Family::Drop(p) => p.validate(),
            Family::Roll(p) => p.validate(),
            Family::Link(p) => p.validate(),
            Family::Spring(p) => p.validate(),
            Family::Push(p) => p.validate(),
            Family::Launch(p) => p.validate(),
            Family::Voe(_, p) => p.validate(),
        }
    }

    /// Draw one sample from `seed` for `split`. Rejections (unhealthy physics, failed family
    /// acceptance) are the inner error; the outer one is a bug or bad parameters.
    pub fn sample(&self, seed: u64, split: Split) -> Result<Outcome> {
        match self {
            Family::Dominoes(p) => dominoes::sample(p, seed, split),
            Family::Support(p) => support::sample(p, seed, split),
            Family::Collide(p) => collide::sample(p, seed, split),
            Family::Contain(p) => contain::sample(p, seed, split),
            Family::Drop(p) => drop::sample(p, seed, split),
            Family::Roll(p) => roll::sample(p, seed, split),
            Family::Link(p) => link::sample(p, seed, split),
            Family::Spring(p) => spring::sample(p, seed, split),
            Family::Push(p) => push::sample(p, seed, split),
            Family::Launch(p) => launch::sample(p, seed, split),
            Family::Voe(k, p) => voe::sample(*k, p, seed, split),
        }
    }

    /// Episodes per sample: 4 for VoE quadruplets, 1 otherwise.
    pub fn episodes_per_sample(&self) -> u32 {
        if matches!(self, Family::Voe(..)) { 4 } else { 1 }
    }

    /// Recorded frames per episode (every family records at the default rate for its
    /// `duration_s` parameter), known before simulating.
    pub fn frames_per_episode(&self) -> u32 {
        let duration = self.params_json().get("duration_s").and_then(|v| v.as_f64()).unwrap_or(3.0) as f32;
        crate::scene::SimConfig { duration_s: duration, ..Default::default() }.num_frames()
    }

    /// Descriptions of every family.
    pub fn all_info() -> Vec<FamilyInfo> {
        NAMES.iter().filter_map(|n| Family::by_name(n).ok()).map(|f| f.info()).collect()
    }
}

/// Shorthand used by families: wrap a simulation outcome.
pub(crate) fn single(out: std::result::Result<Episode, Rejection>) -> Outcome {
    out.map(Sample::one)
}
