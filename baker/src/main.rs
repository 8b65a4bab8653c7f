use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// PiFoundry's build pipeline: BOSH releases and stemcells for Raspberry Pis.
#[derive(Parser)]
#[command(name = "baker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot an image under qemu-system-arm (Pi Zero) and check that init starts the agent
    BootCheck(baker::bootcheck::cli::BootCheckArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::BootCheck(args) => baker::bootcheck::cli::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
