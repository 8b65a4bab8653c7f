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
enum Command {}

#[allow(unreachable_code)] // until the first subcommand lands
fn main() -> ExitCode {
    match Cli::parse().command {}
}
