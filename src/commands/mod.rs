//! One module per subcommand.

pub mod finalize;
pub mod generate;
pub mod inspect;
pub mod scenarios;
pub mod simulate;
pub mod train;
