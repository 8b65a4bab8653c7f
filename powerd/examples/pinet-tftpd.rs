//! pinet's TFTP side over a fixed one-Pi Directory: `pinet-tftpd BOOT_DIR [ADDR]` serves
//! `1a2b3c4d/<file>` from BOOT_DIR (and a rendered `1a2b3c4d/cmdline.txt`) through the same
//! resolver powerd runs, to any client address. Prints `listening on ADDR` (TFTP) once bound;
//! SIGINT or SIGTERM stop it. Used by `scripts/bench-tftp.sh`; RUST_LOG=info logs each transfer.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use powerd::pinet::{
    Boot, BootLookup, CmdlineParams, Directory, Hub, Listeners, PiVm, PinetConfig,
};
use tokio::signal::unix::{SignalKind, signal};

struct OnePi(Boot);

impl Directory for OnePi {
    fn boot(&self, serial: &str, _from: IpAddr) -> BootLookup {
        if serial == "1a2b3c4d" {
            BootLookup::Served(self.0.clone())
        } else {
            BootLookup::Unknown
        }
    }

    fn vm_at(&self, _addr: IpAddr) -> Option<PiVm> {
        None
    }

    fn firmware_dir(&self) -> Option<PathBuf> {
        Some(self.0.boot_dir.clone())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(dir), addr) = (args.next(), args.next()) else {
        eprintln!("usage: pinet-tftpd BOOT_DIR [ADDR]");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let mut cfg = PinetConfig::new(addr.ip());
    (cfg.tftp_port, cfg.http_port) = (addr.port(), 0);
    let boot = Boot {
        boot_dir: dir.into(),
        cmdline: CmdlineParams {
            nbd_host: addr.ip(),
            nbd_port: 10810,
            nbd_export: "0123456789abcdef0123456789abcdef".into(),
            address: "10.77.0.105".parse()?,
            gateway: "10.77.0.1".parse()?,
            netmask: "255.255.255.0".parse()?,
            hostname: "pi-bench".into(),
            mac: "52:54:00:12:34:56".into(),
        },
    };
    let listeners = Listeners::bind(&cfg)?;
    println!("listening on {}", listeners.tftp.local_addr()?);
    let mut term = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    powerd::pinet::serve_on(
        listeners,
        &cfg,
        Arc::new(OnePi(boot)),
        Arc::new(Hub::new()),
        shutdown,
    )
    .await
}
