//! # physworld-benchmarks
//!
//! Score any model on physics-understanding tasks, reproducibly, and publish leaderboards
//! that CI can gate on.
//!
//! - [`tasks`]: versioned, content-hashed items built from a dataset's held-out split:
//!   `forecast` (object positions at horizons), `contact` (Physion's Object Contact
//!   Prediction), `outcome` (multiple-choice questions from labels) and `voe` (IntPhys'
//!   violation of expectation on matched quadruplets).
//! - [`adapters`]: one [`Adapter`](adapters::Adapter) trait for every model: `oracle`,
//!   `constant-velocity`, `chance`, `majority`, `raw-state` and `jepa:<run>`.
//! - [`observe`]: the one observation builder: the static scene and the visible objects of
//!   the observed frames, slots relabelled per item; the same for every adapter.
//! - [`present`]: how items are shown (seeded choice order, VoE movies one at a time,
//!   interleaved), so that nothing in an item's presentation depends on its answer.
//! - [`metrics`]: accuracy, ADE/FDE, relative accuracy, AUROC, seeded bootstrap intervals
//!   and paired tests.
//! - [`results`]: one JSON file per (model, suite) and a per-item log; [`leaderboard`]
//!   tables them (Markdown, HTML with plots, JSON) and gates regressions.
//! - [`shard`]: sharded runs (`bench --shard I/N`) and `results merge`, which joins them
//!   into the unsharded run's result file.

pub mod adapters;
pub mod bench;
pub mod cost_to_go;
mod error;
pub mod latent_launch;
pub mod latent_plan;
pub mod leaderboard;
pub mod llm;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod plan_push;
pub mod present;
pub mod probe;
pub mod results;
pub mod score;
pub mod shard;
pub mod tasks;
pub mod validate;

pub use error::{BenchError, Result};
