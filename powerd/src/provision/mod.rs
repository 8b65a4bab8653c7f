//! Provisioning: the Pi inventory, images, VMs (a claimed Pi with a copy-on-write root over
//! NBD, its reservation, settings and power) and persistent disks. Every multi-step operation
//! records what it is about to make before making it, so that a failure — or a powerd killed
//! half-way — is rolled back from the state file (see [`vms`] and [`recover`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use powerd_client::codes;

use crate::block::Block;
use crate::pinet::{Hub, Reservations};
use crate::power::Power;

pub mod config;
pub mod directory;
pub mod disks;
pub mod images;
pub mod inventory;
mod recover;
pub mod state;
pub mod vms;

pub use config::ProvisioningConfig;
use state::Store;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{what} {id:?} not found")]
    NotFound {
        code: &'static str,
        what: &'static str,
        id: String,
    },
    /// A request that can never succeed as sent (400) or not in the current state (409).
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// A step failed (a tool, power, the disk); everything it began was rolled back.
    #[error("{step}: {message}")]
    Failed { step: String, message: String },
    #[error("the Pi did not confirm disk {disk} within {timeout:?}; the attach was rolled back")]
    AttachTimeout { disk: String, timeout: Duration },
    #[error("state not saved: {path}: {error}")]
    State {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

impl ProvisionError {
    pub fn state(path: &Path, error: std::io::Error) -> Self {
        ProvisionError::State {
            path: path.to_path_buf(),
            error,
        }
    }

    pub fn not_found(code: &'static str, what: &'static str, id: &str) -> Self {
        ProvisionError::NotFound {
            code,
            what,
            id: id.to_string(),
        }
    }

    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ProvisionError::Refused {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ProvisionError::Refused {
            status: StatusCode::CONFLICT,
            code,
            message: message.into(),
        }
    }

    pub fn failed(step: &str, e: impl std::fmt::Display) -> Self {
        ProvisionError::Failed {
            step: step.to_string(),
            message: e.to_string(),
        }
    }

    pub fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            ProvisionError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ProvisionError::Refused { status, code, .. } => (*status, code),
            ProvisionError::Failed { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::PROVISION_FAILED)
            }
            ProvisionError::AttachTimeout { .. } => {
                (StatusCode::GATEWAY_TIMEOUT, codes::ATTACH_TIMEOUT)
            }
            ProvisionError::State { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, codes::STATE_NOT_SAVED)
            }
        }
    }
}

/// What a failpoint does when an operation reaches it (tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// The step fails as if its tool had.
    Error,
    /// The step waits this long first (a test kills powerd meanwhile).
    Pause(Duration),
}

/// Named points in multi-step operations where a test makes the step fail or pause:
/// `vm.create.<step>`, `disk.attach.<step>`, `image.<step>`. Empty in production.
#[derive(Debug, Clone, Default)]
pub struct Failpoints(Arc<Mutex<HashMap<String, Fail>>>);

impl Failpoints {
    pub fn set(&self, name: &str, fail: Fail) {
        self.lock().insert(name.to_string(), fail);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Fail>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `name=error` or `name=pause:30s`, comma-separated (`POWERD_TEST_FAILPOINTS`).
    pub fn parse(text: &str) -> Result<Failpoints, String> {
        let fp = Failpoints::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, what) = item
                .split_once('=')
                .ok_or_else(|| format!("failpoint {item:?}: expected name=error|pause:DURATION"))?;
            let fail = match what.split_once(':') {
                None if what == "error" => Fail::Error,
                Some(("pause", d)) => Fail::Pause(
                    humantime::parse_duration(d).map_err(|e| format!("failpoint {item:?}: {e}"))?,
                ),
                _ => {
                    return Err(format!(
                        "failpoint {item:?}: expected error or pause:DURATION"
                    ));
                }
            };
            fp.set(name, fail);
        }
        Ok(fp)
    }

    pub async fn check(&self, name: &str) -> Result<(), ProvisionError> {
        let fail = self.lock().get(name).copied();
        match fail {
            None => Ok(()),
            Some(Fail::Error) => Err(ProvisionError::failed(name, "failpoint")),
            Some(Fail::Pause(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
}

pub struct Provisioner {
    pub cfg: ProvisioningConfig,
    store: Store,
    block: Arc<Block>,
    pub hub: Arc<Hub>,
    reservations: Reservations,
    power: Arc<Power>,
    fail: Failpoints,
    /// One operation at a time per VM and per disk.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises image commits (two uploads of the same bytes store it once).
    images_lock: tokio::sync::Mutex<()>,
}

/// A guard on one VM or disk.
pub type Guard = tokio::sync::OwnedMutexGuard<()>;

impl Provisioner {
    /// Opens the state, re-adopts exports and rolls back what a previous powerd left
    /// half-done.
    pub async fn open(
        cfg: &ProvisioningConfig,
        power: Arc<Power>,
        fail: Failpoints,
    ) -> anyhow::Result<Arc<Provisioner>> {
        for dir in ["images", "vms", "disks"] {
            let d = cfg.data_dir.join(dir);
            std::fs::create_dir_all(&d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        }
        let store = Store::open(&cfg.state_file())?;
        let block_cfg = cfg.block();
        let block = tokio::task::spawn_blocking(move || Block::open(&block_cfg)).await??;
        let reservations = Reservations::open(crate::pinet::DhcpConfig {
            hosts_file: cfg.hosts_file.clone(),
            pid_file: cfg.pid_file.clone(),
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.hosts_file.display()))?;
        let p = Arc::new(Provisioner {
            cfg: cfg.clone(),
            store,
            block: Arc::new(block),
            hub: Arc::new(Hub::default()),
            reservations,
            power,
            fail,
            locks: Mutex::default(),
            images_lock: tokio::sync::Mutex::new(()),
        });
        p.recover().await?;
        Ok(p)
    }

    async fn guard(&self, id: &str) -> Guard {
        let m = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    /// The exports the block layer serves (tests, status).
    pub fn exports(&self) -> Vec<crate::block::ExportStatus> {
        self.block.exports()
    }

    /// Runs a blocking block-layer call off the async workers.
    async fn blocking<R: Send + 'static>(
        &self,
        step: &str,
        f: impl FnOnce(&Block) -> Result<R, crate::block::BlockError> + Send + 'static,
    ) -> Result<R, ProvisionError> {
        let block = self.block.clone();
        tokio::task::spawn_blocking(move || f(&block))
            .await
            .map_err(|e| ProvisionError::failed(step, e))?
            .map_err(|e| ProvisionError::failed(step, e))
    }
}

pub fn now() -> String {
    crate::state::now_rfc3339()
}

/// `PREFIX-<uuid v4>` from the kernel's random source.
pub fn new_id(prefix: &str) -> String {
    let mut b = random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn random<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("the kernel's random source is readable");
    b
}
