//! Outlets: the switches powerd drives. One trait, three backends (GPIO relay, shell
//! command, in-memory sim). No backend can tell whether the Pi really has power, so the
//! daemon reports the *commanded* state; `observe` is what the switch itself says, if anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use powerd_client::PowerState;

use crate::config::{BackendConfig, OutletConfig};

pub mod command;
pub mod gpio;
pub mod sim;

/// How a backend comes up when powerd starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Switch to this state now (the `on`/`off` start policies).
    Force(PowerState),
    /// Take over without switching anything: the remembered state, or, if there is none,
    /// whatever the switch reports.
    Adopt(Option<PowerState>),
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("GPIO is only available on a Raspberry Pi (this powerd was built for {0})")]
    GpioUnsupported(&'static str),
    #[error("GPIO {pin}: {message}")]
    Gpio { pin: u8, message: String },
    #[error("command `{command}` could not be started: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("command `{command}` timed out after {timeout:?} and was killed")]
    Timeout {
        command: String,
        timeout: std::time::Duration,
    },
    #[error("command `{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("status command `{command}` printed {output:?}; expected `on` or `off`")]
    BadStatus { command: String, output: String },
    #[error("sim outlet {0}: injected failure")]
    SimFailure(String),
}

pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

pub trait PowerBackend: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Switches the outlet. Callers serialise calls per outlet.
    fn set(&self, state: PowerState) -> BackendFuture<'_, ()>;
    /// What the switch itself reports, when it can say.
    fn observe(&self) -> BackendFuture<'_, Option<PowerState>>;
}

/// Opens the backend of `cfg` and brings it up per `start`; returns it with the state it is in.
pub async fn open(
    cfg: &OutletConfig,
    start: Start,
    sim: &Arc<sim::SimLog>,
) -> Result<(Arc<dyn PowerBackend>, PowerState), BackendError> {
    match &cfg.backend {
        BackendConfig::Gpio { pin, active_low } => {
            let (b, s) = gpio::GpioOutlet::open(*pin, *active_low, start)?;
            Ok((Arc::new(b), s))
        }
        BackendConfig::Command {
            on,
            off,
            status,
            timeout,
        } => {
            let b = command::CommandOutlet::new(&cfg.id, on, off, status.as_deref(), *timeout);
            let state = match start {
                Start::Force(s) => {
                    b.set(s).await?;
                    s
                }
                Start::Adopt(Some(s)) => s,
                Start::Adopt(None) => b.observe().await?.unwrap_or(PowerState::Off),
            };
            Ok((Arc::new(b), state))
        }
        BackendConfig::Sim => {
            let b = sim::SimOutlet::new(&cfg.id, sim.clone());
            let state = match start {
                Start::Force(s) => {
                    b.set(s).await?;
                    s
                }
                Start::Adopt(s) => {
                    let s = s.or(sim.level(&cfg.id)).unwrap_or(PowerState::Off);
                    b.adopt(s);
                    s
                }
            };
            Ok((Arc::new(b), state))
        }
    }
}
