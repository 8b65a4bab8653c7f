use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use baker::cmd;

/// PiFoundry's build pipeline: BOSH releases and stemcells for Raspberry Pis.
#[derive(Parser)]
#[command(name = "baker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bake a stemcell from a recipe, reusing every unchanged cached stage.
    Bake {
        #[arg(long)]
        recipe: PathBuf,
        /// Run this stage and every later one even when cached.
        #[arg(long)]
        from: Option<String>,
        #[arg(short = 'o', long, default_value = "out")]
        out: PathBuf,
        /// Stage cache [default: $PIFOUNDRY_STAGE_CACHE, else $XDG_CACHE_HOME/pifoundry/stages]
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Show a stemcell tarball's manifest and contents; fails if its image SHA-1 is wrong.
    InspectStemcell {
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a release's name, version, jobs, packages, digests and fingerprint era.
    InspectRelease {
        release: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check every archive digest and every recomputable fingerprint of a release.
    VerifyRelease { release: PathBuf },
    /// Build a release tarball from a release directory, as `bosh create-release --tarball`.
    CreateRelease {
        /// The release directory (config/final.yml, jobs/, packages/, src/, blobs/).
        dir: PathBuf,
        #[arg(long)]
        version: String,
        #[arg(long)]
        tarball: PathBuf,
    },
    /// Boot an image under qemu-system-arm (Pi Zero) and check that init starts the agent
    BootCheck(baker::bootcheck::cli::BootCheckArgs),
    /// Boot a stemcell with settings, an ephemeral disk and a network; check its agent's mbus
    AgentCheck(baker::bootcheck::agent_cli::AgentCheckArgs),
    /// Swap a release's architecture-specific blobs for ARM ones, as a recipe says.
    RewriteRelease(cmd::rewrite::RewriteArgs),
    /// Write a synthetic release (benchmarks).
    #[command(hide = true)]
    SynthRelease {
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        packages: usize,
        #[arg(long, default_value_t = 100)]
        jobs: usize,
        /// Total blob size in MiB.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Size in MiB of a golang-release-shaped `golang-1-linux` package (0: none).
        #[arg(long, default_value_t = 0)]
        golang_mib: u64,
    },
    /// Edit blobs.lock, the pinned ARM blobs.
    Lock(cmd::blobs::LockArgs),
    /// Fill the blob cache from blobs.lock, verifying sha256 and size.
    Fetch(cmd::blobs::FetchCmd),
    /// Find binaries that cannot run on the target (exit status 1 when there are any).
    Audit(cmd::audit::AuditArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = match cli.command {
        Command::Bake {
            recipe,
            from,
            out,
            cache_dir,
        } => cmd::stemcell::bake(&recipe, from, &out, cache_dir)?,
        Command::InspectStemcell { file, json } => cmd::stemcell::inspect(&file, json)?,
        Command::InspectRelease { release, json } => cmd::release::inspect(&release, json)?,
        Command::VerifyRelease { release } => cmd::release::verify(&release)?,
        Command::CreateRelease {
            dir,
            version,
            tarball,
        } => cmd::release::create(&dir, &version, &tarball)?,
        Command::BootCheck(args) => {
            baker::bootcheck::cli::run(&args)?;
            String::new()
        }
        Command::AgentCheck(args) => {
            baker::bootcheck::agent_cli::run(&args)?;
            String::new()
        }
        Command::RewriteRelease(args) => cmd::rewrite::run(&args)?,
        Command::SynthRelease {
            out,
            packages,
            jobs,
            mib,
            golang_mib,
        } => {
            cmd::release::synth(&out, packages, jobs, mib, golang_mib)?;
            String::new()
        }
        Command::Lock(a) => {
            cmd::blobs::lock(a)?;
            String::new()
        }
        Command::Fetch(a) => {
            cmd::blobs::fetch(a)?;
            String::new()
        }
        Command::Audit(a) => return cmd::audit::run(a),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("baker: {}", pifoundry_util::error::chain(e.as_ref()));
            // like ripgrep and clap: 2 = the command itself failed (1 is `audit` findings)
            ExitCode::from(2)
        }
    }
}
