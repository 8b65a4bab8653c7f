//! Serves one directory read-only: `tftpd DIR [ADDR]` (ADDR defaults to 127.0.0.1:0).
//! Prints `listening on ADDR` on stdout once bound; SIGINT or SIGTERM stop it gracefully.
//! Used by `scripts/bench-tftp.sh` and for trying a real client by hand; RUST_LOG=info logs
//! every transfer.

use std::net::SocketAddr;

use pifoundry_tftp::{Config, ServedDir, Server};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(dir), addr) = (args.next(), args.next()) else {
        eprintln!("usage: tftpd DIR [ADDR]");
        std::process::exit(2);
    };
    let addr: SocketAddr = match addr.as_deref().unwrap_or("127.0.0.1:0").parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("tftpd: bad address: {e}");
            std::process::exit(2);
        }
    };
    let server = Server::bind(addr, ServedDir::open(&dir)?, Config::default()).await?;
    println!("listening on {}", server.local_addr()?);
    let mut term = signal(SignalKind::terminate())?;
    server
        .serve_until(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        })
        .await
}
