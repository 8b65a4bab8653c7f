//! The Pi network's services (contract §3, §6): TFTP for netboot files, HTTP for the agent's
//! settings and the attach helper, and dnsmasq's host reservations. They bind the Pi-network
//! address, never the admin API's listener. What a Pi may have comes from a [`Directory`],
//! which the provisioning side implements over its inventory.

use std::future::Future;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

pub mod cmdline;
pub mod dhcp;
mod http;
mod hub;
mod tftp;

pub use cmdline::{CmdlineError, CmdlineParams};
pub use dhcp::{DhcpConfig, DhcpError, Reservation, Reservations};
pub use http::router;
pub use hub::{Hub, HubError, MAX_WAIT};
pub use tftp::{PiResolver, ROOT_FILES};

/// Where a Pi that asks for boot files stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootLookup {
    /// Never seen: the Directory has recorded it as discovered (with the address it came from).
    Unknown,
    /// Known but not carrying a running VM (discovered, free, broken): file-not-found.
    NotServed,
    Served(Boot),
}

/// A Pi's boot files: its image's boot partition, and its rendered command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub boot_dir: PathBuf,
    pub cmdline: CmdlineParams,
}

/// The VM a source address belongs to, as the Pi network may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PiVm {
    pub vm_id: String,
    pub serial: String,
    /// The full agent settings (`/latest/user-data`); they carry secrets.
    pub settings: serde_json::Value,
    pub ssh_key: Option<String>,
}

/// What the Pi network's servers ask of the inventory.
pub trait Directory: Send + Sync + 'static {
    /// A `SERIAL/…` request from `from`; called for each such request, off the async runtime
    /// (it may persist a discovery).
    fn boot(&self, serial: &str, from: IpAddr) -> BootLookup;
    /// The running VM whose reservation is `addr`, if any. Called on the async runtime: an
    /// in-memory lookup.
    fn vm_at(&self, addr: IpAddr) -> Option<PiVm>;
    /// A boot directory (any image's) to serve [`ROOT_FILES`] from; `None` serves none, and
    /// then a Pi 3 never reaches its serial directory.
    fn firmware_dir(&self) -> Option<PathBuf> {
        None
    }
}

/// The Pi-network listeners (from `provisioning.pi_network`).
#[derive(Debug, Clone)]
pub struct PinetConfig {
    pub address: IpAddr,
    pub tftp_port: u16,
    pub http_port: u16,
    pub tftp: pifoundry_tftp::Config,
}

impl PinetConfig {
    pub fn new(address: IpAddr) -> PinetConfig {
        PinetConfig {
            address,
            tftp_port: 69,
            http_port: 8086,
            tftp: pifoundry_tftp::Config::default(),
        }
    }
}

/// The sockets, bound before serving so that a taken port fails powerd's start.
pub struct Listeners {
    pub tftp: UdpSocket,
    pub http: TcpListener,
}

impl Listeners {
    pub fn bind(cfg: &PinetConfig) -> anyhow::Result<Listeners> {
        let tftp_addr = SocketAddr::new(cfg.address, cfg.tftp_port);
        let http_addr = SocketAddr::new(cfg.address, cfg.http_port);
        let tftp = UdpSocket::bind(tftp_addr)
            .with_context(|| format!("pi network: TFTP on {tftp_addr}"))?;
        let http = TcpListener::bind(http_addr)
            .with_context(|| format!("pi network: HTTP on {http_addr}"))?;
        Ok(Listeners { tftp, http })
    }
}

/// Binds and serves TFTP and HTTP until `shutdown`.
pub async fn serve(
    cfg: &PinetConfig,
    dir: Arc<dyn Directory>,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_on(Listeners::bind(cfg)?, cfg, dir, hub, shutdown).await
}

/// How long HTTP requests in flight (long polls) get after shutdown before they are cut.
const HTTP_GRACE: Duration = Duration::from_secs(2);

/// Serves on sockets bound elsewhere (a test binds them inside a network namespace).
pub async fn serve_on(
    listeners: Listeners,
    cfg: &PinetConfig,
    dir: Arc<dyn Directory>,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = listeners.http.local_addr()?;
    let resolver = PiResolver {
        dir: Arc::clone(&dir),
        api,
    };
    let tftp = pifoundry_tftp::Server::from_std(listeners.tftp, resolver, cfg.tftp.clone())?;
    listeners.http.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(listeners.http)?;
    tracing::info!(http = %api, tftp = %tftp.local_addr()?, "pi network listening");
    let app = router(dir, hub).into_make_service_with_connect_info::<SocketAddr>();
    let http_stop = stopped(stop_rx.clone());
    let http = async move {
        let grace = async {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(HTTP_GRACE).await;
        };
        tokio::select! {
            served = axum::serve(http, app).with_graceful_shutdown(http_stop) => served,
            _ = grace => Ok(()),
        }
    };
    let tftp = tftp.serve_until(stopped(stop_tx.subscribe()));
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let (_, served_tftp, served_http) = tokio::join!(signal, tftp, http);
    served_tftp.context("pi network: TFTP")?;
    served_http.context("pi network: HTTP")?;
    Ok(())
}
