use std::process::ExitCode;

use clap::{Parser, Subcommand};

use baker::cli;

/// PiFoundry's build pipeline: BOSH releases and stemcells for Raspberry Pis.
#[derive(Parser)]
#[command(name = "baker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Edit blobs.lock, the pinned ARM blobs
    Lock(cli::blobs::LockArgs),
    /// Fill the blob cache from blobs.lock, verifying sha256 and size
    Fetch(cli::blobs::FetchCmd),
    /// Find binaries that cannot run on the target (exit 1 when there are any)
    Audit(cli::audit::AuditArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Lock(a) => cli::blobs::lock(a).map(|()| ExitCode::SUCCESS),
        Command::Fetch(a) => cli::blobs::fetch(a).map(|()| ExitCode::SUCCESS),
        Command::Audit(a) => cli::audit::run(a),
    };
    result.unwrap_or_else(|e| {
        eprintln!("baker: {e:#}");
        ExitCode::from(2)
    })
}
