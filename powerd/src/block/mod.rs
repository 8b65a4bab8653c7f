//! The block layer: per-VM copy-on-write roots and disks made by `qemu-img`, served over NBD
//! by `qemu-nbd` — one process per export, never code of ours. Synchronous (prov calls it
//! through `spawn_blocking`).
//!
//! - An export outlives powerd: it is a qemu-nbd in its own session (`detached`, re-adopted by
//!   pid and start time from `<state_dir>/block.json`) or an instance of
//!   `pifoundry-nbd@.service` (`systemd`). [`Block::open`] lists what it finds, dead ones too.
//! - `--shared` ≥ 2: a Pi that lost power never closes its connection, and its next boot is a
//!   second client of the same export. The stale connection stays until the process ends
//!   (qemu-nbd sets no keepalive), so call [`Block::restart`] while the Pi is off, before
//!   powering it on again.
//! - Access: the export name is 32 random hex digits, and nftables rules in `table inet
//!   pifoundry` let only the Pi's address reach the export's port.

mod config;
mod firewall;
mod image;
mod process;
mod state;
mod systemd;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};
use pifoundry_util::tool::ToolError;
use pifoundry_util::{BadInput, PathError, atomic, error::at};
use powerd_client::provision::DiskFormat;
use serde::{Deserialize, Serialize};

pub use config::{BlockConfig, Supervisor, Tools};
pub use firewall::{Firewall, TABLE as FIREWALL_TABLE};
pub use systemd::UNIT as SYSTEMD_UNIT;

use state::{Entry, StateFile};

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// An external tool failed on a file: `dest.qcow2: qemu-img: … (exit status: 1)`.
    #[error("{}: {tool}", path.display())]
    Tool { path: PathBuf, tool: ToolError },
    /// A request that cannot be done as asked (shrink, existing file, file already exported).
    #[error("{}: {message}", path.display())]
    Refused { path: PathBuf, message: String },
    #[error("export {name}: {message}")]
    Export { name: String, message: String },
    #[error("no free NBD port in {first}-{last} on {host}")]
    NoPort { host: IpAddr, first: u16, last: u16 },
    #[error("{0}")]
    Firewall(String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    BadInput(#[from] BadInput),
}

impl BlockError {
    fn tool(path: &Path, tool: ToolError) -> Self {
        Self::Tool {
            path: path.to_path_buf(),
            tool,
        }
    }
    fn refused(path: &Path, message: impl Into<String>) -> Self {
        Self::Refused {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    fn export(name: &str, message: impl Into<String>) -> Self {
        Self::Export {
            name: name.to_string(),
            message: message.into(),
        }
    }
    /// The caller asked for something impossible (a 4xx), as opposed to a tool or system
    /// failure that may pass (a 503).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub file: PathBuf,
    pub format: DiskFormat,
    /// The only source address that may connect (the Pi's).
    pub allow: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub name: String,
    pub host: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    pub name: String,
    pub host: IpAddr,
    pub port: u16,
    pub file: PathBuf,
    pub format: DiskFormat,
    pub allow: IpAddr,
    pub pid: Option<u32>,
    /// The recorded process (same pid, same start time) is alive and listening.
    pub running: bool,
}

pub struct Block {
    cfg: BlockConfig,
    state_path: PathBuf,
    inner: Mutex<Inner>,
    _lock: Flock<File>,
}

struct Inner {
    state: StateFile,
    /// Detached exports started by this process, reaped when they end.
    children: HashMap<String, Child>,
}

impl Block {
    /// Opens the block layer's state (one `Block` per state dir: a second one waits for the
    /// first to go), re-adopts the exports that still run, rolls back an export whose start
    /// was interrupted, and brings the firewall in line with the state.
    pub fn open(cfg: &BlockConfig) -> Result<Block, BlockError> {
        if cfg.shared < 2 {
            return Err(BadInput::new(
                &cfg.state_dir,
                format!("exports need shared >= 2 (a power-cycled Pi reconnects while its old connection lingers), got {}", cfg.shared),
            )
            .into());
        }
        if cfg.ports.is_empty() {
            return Err(BadInput::new(&cfg.state_dir, "the NBD port range is empty").into());
        }
        let dir = &cfg.state_dir;
        std::fs::create_dir_all(dir.join("logs")).map_err(at(dir))?;
        let lock = lock(&dir.join("block.lock"))?;
        let state_path = dir.join("block.json");
        atomic::remove_stale(&state_path)?;
        let mut state = state::load(&state_path)?;
        let interrupted: Vec<String> = state
            .exports
            .iter()
            .filter(|(_, e)| e.pid.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        let block = Block {
            cfg: cfg.clone(),
            state_path,
            inner: Mutex::new(Inner {
                state: StateFile::default(),
                children: HashMap::new(),
            }),
            _lock: lock,
        };
        for name in &interrupted {
            if let Some(e) = state.exports.get(name) {
                block.stop_process(name, e, None)?;
            }
            state.exports.remove(name);
        }
        state::save(&block.state_path, &state)?;
        block.sync_firewall(&state)?;
        block.inner.lock().expect("block lock").state = state;
        Ok(block)
    }

    pub fn config(&self) -> &BlockConfig {
        &self.cfg
    }

    pub fn create_overlay(&self, base: &Path, dest: &Path) -> Result<(), BlockError> {
        image::create_overlay(&self.cfg.tools.qemu_img, base, dest)
    }

    pub fn create_disk(
        &self,
        dest: &Path,
        size_mib: u64,
        format: DiskFormat,
    ) -> Result<(), BlockError> {
        image::create_disk(&self.cfg.tools.qemu_img, dest, size_mib, format)
    }

    /// Grows a disk that is not exported (grow only).
    pub fn resize_disk(
        &self,
        path: &Path,
        format: DiskFormat,
        size_mib: u64,
    ) -> Result<(), BlockError> {
        if let Some(name) = self.exported_as(path) {
            return Err(BlockError::refused(
                path,
                format!("exported as {name}: detach it before resizing"),
            ));
        }
        image::resize_disk(&self.cfg.tools.qemu_img, path, format, size_mib)
    }

    /// Starts an export of `req.file` reachable only from `req.allow`; returns once qemu-nbd
    /// listens. On failure nothing is left behind (process, firewall element, state entry).
    pub fn export(&self, req: &ExportRequest) -> Result<Export, BlockError> {
        let file = std::fs::canonicalize(&req.file).map_err(at(&req.file))?;
        if req.allow.is_ipv6() != self.cfg.listen.is_ipv6() {
            return Err(BlockError::refused(
                &req.file,
                format!(
                    "the Pi's address {} cannot reach exports on {}",
                    req.allow, self.cfg.listen
                ),
            ));
        }
        if let Some(name) = self.exported_as(&file) {
            return Err(BlockError::refused(
                &req.file,
                format!("already exported as {name}"),
            ));
        }
        let mut inner = self.inner.lock().expect("block lock");
        // A port found free can be taken by another process before qemu-nbd binds it: then
        // the next free one is tried.
        let mut tried = Vec::new();
        loop {
            let port = self.free_port(&inner.state, &tried)?;
            match self.export_on(&mut inner, req, &file, port) {
                Err(e) if tried.len() < 8 && e.to_string().contains("Address already in use") => {
                    tracing::info!("NBD port {port} was taken meanwhile: trying another");
                    tried.push(port);
                }
                done => return done,
            }
        }
    }

    fn export_on(
        &self,
        inner: &mut Inner,
        req: &ExportRequest,
        file: &Path,
        port: u16,
    ) -> Result<Export, BlockError> {
        let file = file.to_path_buf();
        let name = random_name()?;
        let mut entry = Entry {
            file,
            format: req.format,
            host: self.cfg.listen,
            port,
            allow: req.allow,
            shared: self.cfg.shared,
            supervisor: self.cfg.supervisor,
            pid: None,
            start_time: None,
        };
        // the intent first: a powerd killed from here on finds it and rolls it back
        inner.state.exports.insert(name.clone(), entry.clone());
        let started = self
            .save_and_sync(&inner.state)
            .and_then(|()| self.start_process(inner, &name, &entry));
        match started {
            Ok(pid) => {
                entry.pid = Some(pid);
                entry.start_time = process::start_time(pid);
                inner.state.exports.insert(name.clone(), entry);
                if let Err(e) = state::save(&self.state_path, &inner.state) {
                    self.roll_back(inner, &name);
                    return Err(e.into());
                }
                Ok(Export {
                    name,
                    host: self.cfg.listen,
                    port,
                })
            }
            Err(e) => {
                self.roll_back(inner, &name);
                Err(e)
            }
        }
    }

    /// Stops an export and closes its port; an unknown name is not an error.
    pub fn unexport(&self, name: &str) -> Result<(), BlockError> {
        let mut inner = self.inner.lock().expect("block lock");
        let Some(entry) = inner.state.exports.get(name).cloned() else {
            return Ok(());
        };
        let child = inner.children.remove(name);
        self.stop_process(name, &entry, child)?;
        inner.state.exports.remove(name);
        self.save_and_sync(&inner.state)?;
        let _ = std::fs::remove_file(self.log_path(name));
        Ok(())
    }

    /// Stops (if it runs) and starts again an export with the same name, port and access:
    /// for a dead export after a controller restart, and before powering on a Pi whose old
    /// connections still linger.
    pub fn restart(&self, name: &str) -> Result<Export, BlockError> {
        let mut inner = self.inner.lock().expect("block lock");
        let Some(mut entry) = inner.state.exports.get(name).cloned() else {
            return Err(BlockError::export(name, "no such export"));
        };
        let child = inner.children.remove(name);
        self.stop_process(name, &entry, child)?;
        let pid = self.start_process(&mut inner, name, &entry)?;
        entry.pid = Some(pid);
        entry.start_time = process::start_time(pid);
        inner.state.exports.insert(name.to_string(), entry.clone());
        state::save(&self.state_path, &inner.state)?;
        Ok(Export {
            name: name.to_string(),
            host: entry.host,
            port: entry.port,
        })
    }

    /// Every recorded export, running or not.
    pub fn exports(&self) -> Vec<ExportStatus> {
        let mut inner = self.inner.lock().expect("block lock");
        inner
            .children
            .retain(|_, c| matches!(c.try_wait(), Ok(None)));
        inner
            .state
            .exports
            .iter()
            .map(|(name, e)| ExportStatus {
                name: name.clone(),
                host: e.host,
                port: e.port,
                file: e.file.clone(),
                format: e.format,
                allow: e.allow,
                pid: e.pid,
                running: self.is_running(name, e),
            })
            .collect()
    }

    fn is_running(&self, name: &str, e: &Entry) -> bool {
        let Some(pid) = e.pid else { return false };
        let same = match e.supervisor {
            Supervisor::Detached => process::is_same(pid, e.start_time),
            Supervisor::Systemd => {
                matches!(systemd::status(&self.cfg.tools.systemctl, name), Ok(Some(p)) if p == pid)
            }
        };
        same && process::listens(pid, e.port)
    }

    fn exported_as(&self, path: &Path) -> Option<String> {
        let path = std::fs::canonicalize(path).ok()?;
        let inner = self.inner.lock().expect("block lock");
        inner
            .state
            .exports
            .iter()
            .find(|(_, e)| e.file == path)
            .map(|(n, _)| n.clone())
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.cfg.state_dir.join("logs").join(format!("{name}.log"))
    }

    /// The first port of the range that no export holds (a dead one keeps its port for its
    /// restart) and that nothing else listens on.
    fn free_port(&self, state: &StateFile, tried: &[u16]) -> Result<u16, BlockError> {
        let mut taken: Vec<u16> = state.exports.values().map(|e| e.port).collect();
        taken.extend_from_slice(tried);
        for port in self.cfg.ports.clone().filter(|p| !taken.contains(p)) {
            match TcpListener::bind(SocketAddr::new(self.cfg.listen, port)) {
                Ok(_) => return Ok(port),
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                    return Err(BlockError::export(
                        "(new)",
                        format!(
                            "cannot listen on {}: {e} (is the Pi network up?)",
                            self.cfg.listen
                        ),
                    ));
                }
                Err(_) => {}
            }
        }
        Err(BlockError::NoPort {
            host: self.cfg.listen,
            first: *self.cfg.ports.start(),
            last: *self.cfg.ports.end(),
        })
    }

    fn start_process(&self, inner: &mut Inner, name: &str, e: &Entry) -> Result<u32, BlockError> {
        let log = self.log_path(name);
        match self.cfg.supervisor {
            Supervisor::Detached => {
                let mut child = process::spawn(&self.cfg.tools.qemu_nbd, name, e, &log)?;
                let pid = child.id();
                let waited = process::wait_listening(
                    name,
                    pid,
                    e.port,
                    || !matches!(child.try_wait(), Ok(None)),
                    &log,
                );
                if let Err(err) = waited {
                    process::stop(pid, || matches!(child.try_wait(), Ok(Some(_))));
                    return Err(err);
                }
                inner.children.insert(name.to_string(), child);
                Ok(pid)
            }
            Supervisor::Systemd => {
                let pid = systemd::start(&self.cfg.tools.systemctl, &self.cfg.env_dir, name, e)?;
                let waited = process::wait_listening(name, pid, e.port, || false, &log);
                if let Err(err) = waited {
                    let _ = systemd::stop(&self.cfg.tools.systemctl, &self.cfg.env_dir, name);
                    return Err(err);
                }
                Ok(pid)
            }
        }
    }

    fn stop_process(
        &self,
        name: &str,
        e: &Entry,
        mut child: Option<Child>,
    ) -> Result<(), BlockError> {
        let mut reap = || match child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => false,
        };
        match e.supervisor {
            Supervisor::Detached => {
                let pid = match e.pid {
                    Some(pid) if process::is_same(pid, e.start_time) => Some(pid),
                    Some(_) => None,
                    None => process::find_by_export_name(name),
                };
                if let Some(pid) = pid {
                    process::stop(pid, &mut reap);
                }
                reap();
                Ok(())
            }
            Supervisor::Systemd => {
                systemd::stop(&self.cfg.tools.systemctl, &self.cfg.env_dir, name)
            }
        }
    }

    /// Undoes a failed export: its process, its state entry, its firewall element.
    fn roll_back(&self, inner: &mut Inner, name: &str) {
        if let Some(e) = inner.state.exports.remove(name) {
            let child = inner.children.remove(name);
            if let Err(err) = self.stop_process(name, &e, child) {
                tracing::warn!("rolling back export {name}: {err}");
            }
        }
        if let Err(err) = self.save_and_sync(&inner.state) {
            tracing::warn!("rolling back export {name}: {err}");
        }
        let _ = std::fs::remove_file(self.log_path(name));
    }

    fn save_and_sync(&self, state: &StateFile) -> Result<(), BlockError> {
        state::save(&self.state_path, state)?;
        self.sync_firewall(state)
    }

    fn sync_firewall(&self, state: &StateFile) -> Result<(), BlockError> {
        match self.cfg.firewall {
            Firewall::None => Ok(()),
            Firewall::Nftables => {
                let allowed: Vec<(IpAddr, u16)> =
                    state.exports.values().map(|e| (e.allow, e.port)).collect();
                firewall::apply(&self.cfg.tools.nft, &allowed)
            }
        }
    }
}

/// Waits (up to 30 s) for the previous owner of the state dir to let go.
fn lock(path: &Path) -> Result<Flock<File>, BlockError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(at(path))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err((_, e)) => {
                return Err(BadInput::new(
                    path,
                    format!("held by another powerd (a second Block on this state dir): {e}"),
                )
                .into());
            }
        }
    }
}

/// 32 hex digits from the kernel's CSPRNG: export names are unguessable.
fn random_name() -> Result<String, BlockError> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 16];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(at(path))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
