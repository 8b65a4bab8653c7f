//! Building the daemon from its configuration and serving it until told to stop.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, App, AppState};
use crate::auth::Auth;
use crate::clock::{Clock, MonotonicClock};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outlet::sim::SimLog;
use crate::pinet;
use crate::power::Power;
use crate::provision::{Failpoints, Provisioner};
use crate::state::Store;

/// What a test (or a dry run) may inject.
#[derive(Clone)]
pub struct Options {
    pub clock: Arc<dyn Clock>,
    /// Sim outlets switch levels in this log; sharing it across restarts models hardware
    /// that keeps its state while powerd is down.
    pub sim: Arc<SimLog>,
    /// Test-only failure injection in provisioning's multi-step operations.
    pub failpoints: Failpoints,
}

impl Default for Options {
    fn default() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(MonotonicClock);
        Options {
            sim: Arc::new(SimLog::new(clock.clone())),
            clock,
            failpoints: Failpoints::default(),
        }
    }
}

pub async fn build(cfg: &Config, opts: Options) -> anyhow::Result<AppState> {
    let auth = Auth::load(&cfg.auth.token_file, cfg.auth.open_reads)?;
    let store = Arc::new(Store::open(&cfg.state_file, &cfg.audit_log)?);
    let metrics = Arc::new(Metrics::default());
    let power = Arc::new(Power::start(cfg, store, opts.clock, &opts.sim, metrics.clone()).await?);
    let provision = match &cfg.provisioning {
        Some(p) => Some(Provisioner::open(p, power.clone(), opts.failpoints).await?),
        None => None,
    };
    Ok(Arc::new(App {
        power,
        provision,
        auth,
        metrics,
        sim: opts.sim,
    }))
}

/// Serves `app` on `listener` (and, with provisioning, the Pi-network services) until
/// `shutdown` resolves; requests in flight are finished.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let pinet = app.provision.clone().map(|p| {
        let mut rx = rx.clone();
        let mut cfg = pinet::PinetConfig::new(std::net::IpAddr::V4(p.cfg.pi_network.address));
        cfg.tftp_port = p.cfg.pi_network.tftp_port;
        cfg.http_port = p.cfg.pi_network.http_port;
        let hub = p.hub.clone();
        let dir: Arc<dyn pinet::Directory> = p;
        tokio::spawn(async move {
            pinet::serve(&cfg, dir, hub, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
        })
    });
    let mut admin_rx = rx;
    let admin = axum::serve(listener, api::router(app)).with_graceful_shutdown(async move {
        let _ = admin_rx.wait_for(|s| *s).await;
    });
    let stop = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let (served, ()) = tokio::join!(admin.into_future(), stop);
    if let Some(task) = pinet {
        task.await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    }
    served
}

/// A daemon running in this process (tests, benchmarks).
pub struct Running {
    pub addr: SocketAddr,
    pub app: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Binds `listen` (port 0 for an ephemeral port) and serves in the background.
    pub async fn start(cfg: &Config, listen: SocketAddr, opts: Options) -> anyhow::Result<Running> {
        let app = build(cfg, opts).await?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, app.clone(), async {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr,
            app,
            stop,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes requests in flight and returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// `powerd serve`: runs until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    #[allow(unused_mut)]
    let mut opts = Options::default();
    // debug builds only: the kill -9 tests make a step pause while they kill powerd
    #[cfg(debug_assertions)]
    if let Ok(text) = std::env::var("POWERD_TEST_FAILPOINTS") {
        opts.failpoints = Failpoints::parse(&text).map_err(anyhow::Error::msg)?;
    }
    let app = build(&cfg, opts).await?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listen on {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, outlets = cfg.outlets.len(), "powerd listening");
    serve(listener, app, shutdown_signal()).await?;
    tracing::info!("powerd stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
