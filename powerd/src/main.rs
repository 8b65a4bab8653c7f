use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use powerd::config::{Config, DEFAULT_PATH};

/// PiFoundry's power daemon for the controller Pi.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Serve {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate a configuration file (and its token file) and exit.
    CheckConfig {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Talk to a running powerd.
    Ctl(powerd::ctl::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Ctl(args) => powerd::ctl::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("powerd: {}", pifoundry_util::error::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = Config::load(path)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(powerd::server::run(cfg))
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    powerd::auth::Auth::load(&cfg.auth.token_file, cfg.auth.open_reads)?;
    println!(
        "{}: ok ({} outlets, listen {})",
        path.display(),
        cfg.outlets.len(),
        cfg.listen
    );
    Ok(())
}
