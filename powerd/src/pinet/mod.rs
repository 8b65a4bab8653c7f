//! stand-in until nbd/pinet lands: the `powerd::pinet` seam of contract §6 — the Directory
//! trait, the attachment Hub and the dnsmasq reservations; `serve` serves nothing yet.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use powerd_client::provision::{Confirm, Confirmed, PiAttachment, PiAttachments, Want};
use tokio::sync::watch;

/// What the kernel command line of a netbooting Pi is rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineParams {
    pub nbd_host: IpAddr,
    pub nbd_port: u16,
    pub nbd_export: String,
    pub address: IpAddr,
    pub gateway: IpAddr,
    pub netmask: IpAddr,
    pub hostname: String,
    /// The attach helper's base URL, `http://HOST:PORT`.
    pub api: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub boot_dir: PathBuf,
    pub cmdline: CmdlineParams,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootLookup {
    Unknown,
    NotServed,
    Served(Boot),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PiVm {
    pub serial: String,
    pub vm_id: String,
    pub settings: serde_json::Value,
    pub ssh_key: Option<String>,
}

pub trait Directory: Send + Sync + 'static {
    fn boot(&self, serial: &str, from: IpAddr) -> BootLookup;
    fn vm_at(&self, addr: IpAddr) -> Option<PiVm>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Pi did not confirm in time")]
pub struct Timeout;

#[derive(Default)]
struct PiSlot {
    generation: u64,
    attachments: Vec<PiAttachment>,
    confirmed: HashMap<String, Confirmed>,
}

/// The attachments each Pi should have, and what its helper reported.
pub struct Hub {
    pis: Mutex<BTreeMap<String, PiSlot>>,
    changed: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            pis: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PiSlot>> {
        self.pis.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publish(&self, serial: &str, attachments: Vec<PiAttachment>) -> u64 {
        let generation = {
            let mut pis = self.lock();
            let slot = pis.entry(serial.to_string()).or_default();
            for a in &attachments {
                let before = slot.attachments.iter().find(|b| b.disk == a.disk);
                if before.map(|b| b.want) != Some(a.want) {
                    slot.confirmed.remove(&a.disk);
                }
            }
            slot.attachments = attachments;
            slot.generation += 1;
            slot.generation
        };
        self.changed.send_modify(|g| *g += 1);
        generation
    }

    pub async fn poll(&self, serial: &str, after: u64, wait: Duration) -> PiAttachments {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = {
                let pis = self.lock();
                pis.get(serial)
                    .map(|s| (s.generation, s.attachments.clone()))
                    .unwrap_or_default()
            };
            if now.0 > after || tokio::time::Instant::now() >= deadline {
                return PiAttachments {
                    generation: now.0,
                    attachments: now.1,
                };
            }
            let _ = tokio::time::timeout_at(deadline, rx.changed()).await;
        }
    }

    pub fn confirm(&self, serial: &str, disk: &str, confirm: Confirm) {
        self.lock()
            .entry(serial.to_string())
            .or_default()
            .confirmed
            .insert(disk.to_string(), confirm.state);
        self.changed.send_modify(|g| *g += 1);
    }

    pub async fn wait_confirmed(
        &self,
        serial: &str,
        disk: &str,
        want: Want,
        timeout: Duration,
    ) -> Result<Confirmed, Timeout> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self
                .lock()
                .get(serial)
                .and_then(|s| s.confirmed.get(disk).copied());
            match (got, want) {
                (Some(Confirmed::Failed), _)
                | (Some(Confirmed::Connected), Want::Connected)
                | (Some(Confirmed::Disconnected), Want::Disconnected) => return Ok(got.unwrap()),
                _ => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(_) => {}
                Err(_) => return Err(Timeout),
            }
        }
    }
}

/// dnsmasq's host reservations: one `MAC,set:pifoundry,IP,SERIAL` line each.
pub struct Reservations {
    hosts_file: PathBuf,
    lines: Mutex<BTreeMap<String, String>>,
}

impl Reservations {
    pub fn open(hosts_file: PathBuf, _pid_file: Option<PathBuf>) -> std::io::Result<Reservations> {
        let mut lines = BTreeMap::new();
        match std::fs::read_to_string(&hosts_file) {
            Ok(text) => {
                for l in text.lines() {
                    if let Some((mac, _)) = l.split_once(',') {
                        lines.insert(mac.to_string(), l.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Reservations {
            hosts_file,
            lines: Mutex::new(lines),
        })
    }

    fn write(&self, lines: &BTreeMap<String, String>) -> std::io::Result<()> {
        let text: String = lines.values().map(|l| format!("{l}\n")).collect();
        pifoundry_util::atomic::write(&self.hosts_file, text.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    pub fn set(&self, mac: &str, ip: IpAddr, serial: &str) -> std::io::Result<()> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = lines.clone();
        next.insert(
            mac.to_string(),
            format!("{mac},set:pifoundry,{ip},{serial}"),
        );
        self.write(&next)?;
        *lines = next;
        Ok(())
    }

    pub fn remove(&self, mac: &str) -> std::io::Result<()> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if !lines.contains_key(mac) {
            return Ok(());
        }
        let mut next = lines.clone();
        next.remove(mac);
        self.write(&next)?;
        *lines = next;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct PinetConfig {
    pub address: IpAddr,
    pub tftp_port: u16,
    pub http_port: u16,
}

/// stand-in: serves nothing until pinet lands.
pub async fn serve(
    _cfg: PinetConfig,
    _dir: Arc<dyn Directory>,
    _hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    shutdown.await;
    Ok(())
}
