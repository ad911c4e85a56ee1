//! `physworld`: the command-line entry point. Parses arguments and dispatches; every
//! command is a call into a library crate.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// World-model research on physics: simulate scenes, build datasets, train JEPA models,
/// benchmark them.
#[derive(Parser)]
#[command(name = "physworld", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenario families with their descriptions, parameters and held-out regions.
    Scenarios(commands::scenarios::Args),
    /// Simulate one episode (or a batch, with throughput) of a scenario family.
    Simulate(commands::simulate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scenarios(a) => commands::scenarios::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("Caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
