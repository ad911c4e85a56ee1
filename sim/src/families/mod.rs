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

pub use launch::{Attempt, FOLD_TEMPLATES, LaunchTask, Protocol, SOLVER_TRIES, solve, validate_placement};
pub use push::{PushTask, REST_SPEED};
pub use range::{IntRange, Range};

/// `(parameter, meaning and units)` of the parameters every family takes besides its own
/// ([`FamilyInfo::params`]).
pub const COMMON_PARAMS: &[(&str, &str)] = &[(
    "fov_y_deg",
    "camera's vertical field of view drawn per sample, degrees, within [10, 120] (a suite's [camera] table sets every family's); default a fixed 50",
)];

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

/// The one registration of the single-episode families: name, variant, module (which
/// holds `INFO`, `Params` with `validate()`, and `sample(&Params, seed, split)`) and doc.
/// Adding a family is one line here plus its module; VoE families, one kind each of the
/// shared `voe` module, are handled beside it.
macro_rules! registry {
    (
        $($name:literal => $variant:ident($module:ident), $doc:literal;)*
        voe: $($voe:literal => $kind:ident;)*
    ) => {
        /// A scenario family with its parameters.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Family {
            $(
                #[doc = $doc]
                $variant($module::Params),
            )*
            /// Violation of expectation of the given kind.
            Voe(ViolationKind, voe::Params),
        }

        /// Every registered family name, in listing order.
        pub const NAMES: &[&str] = &[$($name,)* $($voe,)*];

        /// The VoE kind of family `name`.
        fn voe_kind(name: &str) -> Option<ViolationKind> {
            match name {
                $($voe => Some(ViolationKind::$kind),)*
                _ => None,
            }
        }

        impl Family {
            /// The registered family `name` built by `build` (`None` for an unknown name).
            fn build_named(
                name: &str,
                overrides: &Map<String, Value>,
            ) -> Option<Result<Family>> {
                Some(match name {
                    $($name => build(name, overrides).map(Family::$variant),)*
                    other => {
                        let k = voe_kind(other)?;
                        build(name, overrides).map(|p| Family::Voe(k, p))
                    }
                })
            }

            /// Static description.
            pub fn info(&self) -> FamilyInfo {
                match self {
                    $(Family::$variant(_) => $module::INFO,)*
                    Family::Voe(k, _) => voe::info(*k),
                }
            }

            /// Parameters as JSON (the format overrides use).
            pub fn params_json(&self) -> Value {
                let r = match self {
                    $(Family::$variant(p) => serde_json::to_value(p),)*
                    Family::Voe(_, p) => serde_json::to_value(p),
                };
                r.unwrap_or(Value::Null)
            }

            /// Validate the parameters.
            pub fn validate(&self) -> Result<()> {
                match self {
                    $(Family::$variant(p) => p.validate(),)*
                    Family::Voe(_, p) => p.validate(),
                }
            }

            /// Draw one sample from `seed` for `split`. Rejections (unhealthy physics, failed
            /// family acceptance) are the inner error; the outer one is a bug or bad
            /// parameters.
            pub fn sample(&self, seed: u64, split: Split) -> Result<Outcome> {
                match self {
                    $(Family::$variant(p) => $module::sample(p, seed, split),)*
                    Family::Voe(k, p) => voe::sample(*k, p, seed, split),
                }
            }
        }
    };
}

registry! {
    "dominoes" => Dominoes(dominoes), "Dominoes.";
    "support" => Support(support), "Towers that do or don't fall.";
    "collide" => Collide(collide), "One object slides or rolls into another.";
    "contain" => Contain(contain), "Objects dropped into or beside a container.";
    "drop" => Drop(drop), "Objects dropped onto a target.";
    "roll" => Roll(roll), "An object rolls down a ramp.";
    "link" => Link(link), "A hinged chain swings.";
    "spring" => Spring(spring), "A box on a spring of known stiffness slides on the floor.";
    "push" => Push(push), "An agent pushes a puck to a goal.";
    "launch" => Launch(launch), "PHYRE-style ball placement.";
    voe:
    "voe-permanence" => Permanence;
    "voe-continuity" => Continuity;
    "voe-shape" => Shape;
    "voe-solidity" => Solidity;
    "voe-gravity" => Gravity;
}

/// Parameters `P` of family `name`: `overrides` merged over its defaults. Unknown keys and
/// bad values give an error naming `<family>.<key>`, the value and what is allowed.
fn build<P>(name: &str, overrides: &Map<String, Value>) -> Result<P>
where
    P: Default + Serialize + for<'de> Deserialize<'de>,
{
    let mut base = match serde_json::to_value(P::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let defaults = base.clone();
    for (k, v) in overrides {
        // Optional parameters are absent from the defaults' serialisation but deserialise
        // (with a wrong value, the type check below names them); unknown ones do not.
        let optional = || {
            let probe = Map::from_iter([(k.clone(), v.clone())]);
            match serde_json::from_value::<P>(Value::Object(merge(&base, &probe))) {
                Ok(_) => true,
                Err(e) => !e.to_string().contains("unknown field"),
            }
        };
        if !base.contains_key(k) && !optional() {
            let keys: Vec<&str> =
                base.keys().map(String::as_str).chain(COMMON_PARAMS.iter().map(|(k, _)| *k)).collect();
            return Err(SimError::UnknownParam {
                field: format!("{name}.{k}"),
                value: v.to_string(),
                known: format!("{}{}", keys.join(", "), crate::suggest::did_you_mean(k, keys.iter().copied())),
            });
        }
        base.insert(k.clone(), v.clone());
    }
    // Each value checked alone over the defaults, so the error names the key that is wrong.
    for (k, v) in overrides {
        let mut probe = Map::new();
        probe.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<P>(Value::Object(merge(&defaults, &probe))) {
            return Err(SimError::invalid(format!("{name}.{k}"), v, format!("a value of the right type ({e})")));
        }
    }
    serde_json::from_value(Value::Object(base))
        .map_err(|e| SimError::invalid(name, "parameters", format!("well-typed parameters ({e})")))
}
/// `a` with `b`'s keys put over it.
fn merge(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut m = a.clone();
    m.extend(b.clone());
    m
}

impl Family {
    /// The family `name` with default parameters.
    pub fn by_name(name: &str) -> Result<Family> {
        Family::with_overrides(name, &Map::new())
    }

    /// The family `name` with `overrides` merged over its defaults, validated. Unknown keys
    /// and bad values give an error naming `<family>.<key>`, the value and what is allowed.
    pub fn with_overrides(name: &str, overrides: &Map<String, Value>) -> Result<Family> {
        let fam = Family::build_named(name, overrides).ok_or_else(|| SimError::unknown_family(name))??;
        fam.validate()?;
        Ok(fam)
    }

    /// Registered name.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// The `launch` task (the scene before a ball is placed) of an episode's own `seed`;
    /// `None` for other families.
    pub fn launch_task(&self, seed: u64, split: Split) -> Result<Option<LaunchTask>> {
        match self {
            Family::Launch(p) => Ok(Some(LaunchTask::new(p, seed, split)?)),
            _ => Ok(None),
        }
    }

    /// The `push` task (the scene without the scripted forces) of an episode's own `seed`;
    /// `None` for other families.
    pub fn push_task(&self, seed: u64, split: Split) -> Result<Option<PushTask>> {
        match self {
            Family::Push(p) => Ok(Some(PushTask::new(p, seed, split)?)),
            _ => Ok(None),
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
