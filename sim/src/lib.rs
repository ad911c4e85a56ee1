//! # physworld-sim
//!
//! Deterministic rigid-body episodes for world-model research, on [Rapier](https://rapier.rs).
//!
//! - A [`Scene`] describes objects, static geometry, zones, joints, an optional agent and the
//!   camera; [`simulate`] steps it at a fixed rate (240 Hz by default), records it at the
//!   frame rate (30 fps), checks its health and labels it.
//! - A scenario [`Family`] samples scenes from a seed over documented parameter ranges:
//!   Physion analogues, planning tasks and IntPhys-style violation-of-expectation quadruplets.
//! - [`generate`] draws an episode for (suite seed, family, split, index) with the stable
//!   seed of [`episode_seed`], retrying rejected attempts; [`generate_batch`] runs many in
//!   parallel with identical results whatever the thread count.
//!
//! ```
//! use physworld_sim::{Family, Split, generate};
//! let family = Family::by_name("drop").unwrap();
//! let sample = generate(&family, 7, Split::Train, 0).unwrap();
//! assert_eq!(sample.episodes.len(), 1);
//! assert!(sample.episodes[0].frames.len() > 10);
//! ```
//!
//! Determinism across machines: with the default `enhanced-determinism` feature, Rapier
//! uses `libm` math and no SIMD, and this crate's own float code is fixed-order and also
//! uses `libm`, so the same seed gives bitwise-identical episodes on any IEEE-754 machine.
//! Without it, results are bitwise identical on one machine and build only.

mod episode;
mod error;
pub mod families;
mod generate;
pub mod math;
#[cfg(feature = "render")]
pub mod render;
mod scene;
mod seed;
mod simulate;
mod split;
pub mod suggest;
mod visibility;
mod world;

pub use episode::{
    Body, Contact, ContactLabel, Episode, Frame, Labels, ObjectProps, ObjectState, Placement, QuadrupletMember,
    Violation, ViolationKind,
};
pub use error::{RejectReason, Rejection, Result, SimError};
pub use families::{Attempt, Family, FamilyKind, LaunchTask, PushTask, Sample, solve};
pub use generate::{
    BatchReport, DEFAULT_MAX_ATTEMPTS, content_sha256, generate, generate_batch, generate_from, generate_with,
};
pub use scene::{
    AgentSpec, Camera, ContactQuery, ContactTarget, DEFAULT_DURATION_S, DEFAULT_FPS, DEFAULT_PHYSICS_HZ,
    DEFAULT_SOLVER_ITERATIONS, GRAVITY, JointEnd, JointKind, JointSpec, Mass, ObjectSpec, Scene, Shape, ShapeKind,
    SimConfig, StaticRole, StaticSpec, Zone,
};
pub use seed::{Sampler, episode_seed};
pub use simulate::{
    DEFAULT_ENERGY_GROWTH, DEFAULT_ENERGY_SLACK_J, DEFAULT_MAX_PENETRATION, DEFAULT_MAX_SPEED, HealthConfig,
    Intervention, Simulated, Simulation, simulate, simulate_with, touches,
};
pub use split::Split;
pub use visibility::View;

/// Whether this build has the `enhanced-determinism` feature (bitwise-identical episodes
/// across IEEE-754 machines) rather than the fast mode (identical on one machine and build).
pub const ENHANCED_DETERMINISM: bool = cfg!(feature = "enhanced-determinism");

/// Version of the generator: bumps whenever the same seed may give different episodes.
pub const GENERATOR_VERSION: &str = concat!("physworld-sim/", env!("CARGO_PKG_VERSION"), "+rapier3d-0.36.1");
