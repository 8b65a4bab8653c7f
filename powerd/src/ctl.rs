//! `powerd ctl`: the operator's client for a running powerd.

use std::path::PathBuf;

use anyhow::Context;
use powerd_client::{Client, Credentials, Outlet, PowerState};

use crate::config::{DEFAULT_LISTEN, DEFAULT_TOKEN_FILE};

#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// powerd's base URL.
    #[arg(long, env = "POWERD_URL", default_value_t = format!("http://{DEFAULT_LISTEN}"))]
    pub url: String,
    /// File holding the token (`NAME:TOKEN` or `TOKEN`; the first one is used).
    /// Default: $POWERD_TOKEN, else /etc/pifoundry/powerd.tokens if readable.
    #[arg(long, env = "POWERD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// List all outlets with their commanded state.
    List,
    /// Show one outlet.
    Status { id: String },
    /// Switch an outlet on (waits for min_off and the stagger).
    On { id: String },
    /// Switch an outlet off.
    Off { id: String },
    /// Power-cycle an outlet: off, wait min_off, on.
    Cycle { id: String },
}

fn credentials(args: &CtlArgs) -> anyhow::Result<Credentials> {
    if let Some(path) = &args.token_file {
        return Ok(Credentials::Bearer(crate::auth::client_token(path)?));
    }
    if let Ok(token) = std::env::var("POWERD_TOKEN") {
        return Ok(Credentials::Bearer(token));
    }
    Ok(
        crate::auth::client_token(std::path::Path::new(DEFAULT_TOKEN_FILE))
            .map(Credentials::Bearer)
            .unwrap_or(Credentials::None),
    )
}

pub fn run(args: CtlArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url, credentials(&args)?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let out = rt.block_on(execute(&client, &args.command))?;
    print!("{out}");
    Ok(())
}

/// Runs one ctl command; returns what to print.
pub async fn execute(client: &Client, command: &CtlCommand) -> anyhow::Result<String> {
    let rows = match command {
        CtlCommand::List => client.outlets().await?,
        CtlCommand::Status { id } => vec![client.outlet(id).await?],
        CtlCommand::On { id } => vec![client.set_power(id, PowerState::On).await?],
        CtlCommand::Off { id } => vec![client.set_power(id, PowerState::Off).await?],
        CtlCommand::Cycle { id } => vec![client.cycle(id).await?],
    };
    Ok(table(&rows))
}

fn table(rows: &[Outlet]) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let header = ["ID", "STATE", "BACKEND", "CHANGED", "BY"];
    let data: Vec<Vec<String>> = rows
        .iter()
        .map(|o| {
            vec![
                o.id.clone(),
                o.state.to_string(),
                o.backend.clone(),
                or_dash(&o.changed_at),
                or_dash(&o.changed_by),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            data.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(header.map(String::from).to_vec()).chain(data) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
