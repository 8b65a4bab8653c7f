//! The provisioning state file (`provision.json` under `data_dir`): inventory, images, VMs,
//! disks and the exports and reservations each holds. A mutation is applied to a copy, the
//! copy is written atomically, and only then replaces the state in memory: what the API
//! answers is always what is on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use powerd_client::provision::{DiskFormat, Image, Labels, Pi, VmState};
use serde::{Deserialize, Serialize};

use super::ProvisionError;

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRec {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetRec {
    /// The network's name in the settings.
    pub name: String,
    pub ip: String,
    pub netmask: String,
    pub gateway: String,
}

/// A VM and every resource it holds; a field is set *before* the resource is made, so a
/// rollback (or the start after a kill) knows what may exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRec {
    pub id: String,
    pub agent_id: String,
    pub pi: String,
    pub mac: String,
    pub outlet: String,
    pub image: String,
    pub state: VmState,
    pub net: NetRec,
    #[serde(default)]
    pub ephemeral_disk_mib: Option<u64>,
    #[serde(default)]
    pub overlay: Option<PathBuf>,
    #[serde(default)]
    pub ephemeral: Option<PathBuf>,
    #[serde(default)]
    pub root_export: Option<ExportRec>,
    #[serde(default)]
    pub ephemeral_export: Option<ExportRec>,
    #[serde(default)]
    pub reserved: bool,
    /// The completed agent settings (secrets: the state file is private).
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    #[serde(default)]
    pub powered: bool,
    #[serde(default)]
    pub metadata: Labels,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskRec {
    pub id: String,
    pub size_mib: u64,
    pub format: DiskFormat,
    pub file: PathBuf,
    #[serde(default)]
    pub vm: Option<String>,
    #[serde(default)]
    pub slot: Option<u8>,
    #[serde(default)]
    pub export: Option<ExportRec>,
    /// The Pi confirmed the device (or it was attached at the VM's creation).
    #[serde(default)]
    pub confirmed: bool,
    #[serde(default)]
    pub metadata: Labels,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvState {
    pub version: u32,
    #[serde(default)]
    pub pis: BTreeMap<String, Pi>,
    /// `vms` of each image is left empty here and filled from `vms` when shown.
    #[serde(default)]
    pub images: BTreeMap<String, Image>,
    #[serde(default)]
    pub vms: BTreeMap<String, VmRec>,
    #[serde(default)]
    pub disks: BTreeMap<String, DiskRec>,
}

impl Default for ProvState {
    fn default() -> Self {
        ProvState {
            version: VERSION,
            pis: BTreeMap::new(),
            images: BTreeMap::new(),
            vms: BTreeMap::new(),
            disks: BTreeMap::new(),
        }
    }
}

impl ProvState {
    pub fn image_view(&self, img: &Image) -> Image {
        let mut img = img.clone();
        img.vms = self
            .vms
            .values()
            .filter(|v| v.image == img.id)
            .map(|v| v.id.clone())
            .collect();
        img
    }
}

pub struct Store {
    path: PathBuf,
    state: Mutex<ProvState>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, ProvisionError> {
        let io = |e: std::io::Error| ProvisionError::state(path, e);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        for f in pifoundry_util::atomic::remove_stale(path)
            .map_err(|e| ProvisionError::state(&e.path, e.error))?
        {
            tracing::info!(file = %f.display(), "removed a temp file left by a killed powerd");
        }
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                let s: ProvState = serde_json::from_slice(&bytes).map_err(|e| {
                    ProvisionError::state(
                        path,
                        std::io::Error::other(format!("not a provisioning state file: {e}")),
                    )
                })?;
                if s.version != VERSION {
                    return Err(ProvisionError::state(
                        path,
                        std::io::Error::other(format!(
                            "version {} (this powerd reads {VERSION})",
                            s.version
                        )),
                    ));
                }
                s
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProvState::default(),
            Err(e) => return Err(io(e)),
        };
        Ok(Store {
            path: path.to_path_buf(),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ProvState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn read<R>(&self, f: impl FnOnce(&ProvState) -> R) -> R {
        f(&self.lock())
    }

    /// Applies `f` to a copy and persists it; the state changes only if both succeed. Writers
    /// are serialised by the lock, which is what makes a claim atomic.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut ProvState) -> Result<R, ProvisionError>,
    ) -> Result<R, ProvisionError> {
        let mut guard = self.lock();
        let mut next = guard.clone();
        let out = f(&mut next)?;
        if next != *guard {
            self.write(&next)?;
            *guard = next;
        }
        Ok(out)
    }

    fn write(&self, state: &ProvState) -> Result<(), ProvisionError> {
        use std::io::Write;
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        let mut f = pifoundry_util::atomic::AtomicFile::create(&self.path)
            .map_err(|e| ProvisionError::state(&e.path, e.error))?;
        f.write_all(&bytes)
            .map_err(|e| ProvisionError::state(&self.path, e))?;
        // the temp file is created 0600, and stays so: settings carry the director's secrets
        f.commit()
            .map_err(|e| ProvisionError::state(&e.path, e.error))?;
        Ok(())
    }
}
