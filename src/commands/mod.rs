//! One module per subcommand.

pub mod bench;
pub mod demo;
pub mod finalize;
pub mod generate;
pub mod inspect;
pub mod leaderboard;
pub mod probe;
pub mod scenarios;
pub mod simulate;
pub mod train;
pub mod validate_suite;
