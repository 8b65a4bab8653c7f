//! `baker audit PATH --arch armv6l|arm64 [--json]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use pifoundry_util::Arch;

use crate::audit;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Release tarball, blob archive, directory tree or single file
    pub path: PathBuf,
    /// Target the binaries must run on: armv6l or arm64
    #[arg(long, value_parser = Arch::parse_pi)]
    pub arch: Arch,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// Prints the report; exit status 1 when there are errors.
pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let report = audit::audit_path(&args.path, args.arch)?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.render_table()
    };
    // `baker audit … | head` must not panic on a closed pipe
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(if report.errors() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
