//! stand-in until nbd/pinet lands: the `powerd::block` seam of contract §6 with real qemu-img
//! for overlays and disks; exports are only recorded (no qemu-nbd process yet).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use pifoundry_util::tool;
use powerd_client::provision::DiskFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    Detached,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    Nftables,
    None,
}

#[derive(Debug, Clone)]
pub struct BlockConfig {
    pub state_dir: PathBuf,
    pub listen: IpAddr,
    pub ports: RangeInclusive<u16>,
    pub supervisor: Supervisor,
    pub firewall: Firewall,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Tool(#[from] tool::ToolError),
    #[error("no free NBD port in {0:?}")]
    NoPort(RangeInclusive<u16>),
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub file: PathBuf,
    pub format: DiskFormat,
    pub allow: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub name: String,
    pub host: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportStatus {
    pub name: String,
    pub port: u16,
    pub pid: Option<u32>,
    pub running: bool,
}

pub struct Block {
    cfg: BlockConfig,
    exports: Mutex<BTreeMap<String, u16>>,
}

fn fmt_name(f: DiskFormat) -> &'static str {
    match f {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    }
}

impl Block {
    pub fn open(cfg: &BlockConfig) -> Result<Block, BlockError> {
        Ok(Block {
            cfg: cfg.clone(),
            exports: Mutex::default(),
        })
    }

    pub fn create_overlay(&self, base: &Path, dest: &Path) -> Result<(), BlockError> {
        tool::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
                .arg(base)
                .arg(dest),
            None,
        )?;
        Ok(())
    }

    pub fn create_disk(
        &self,
        dest: &Path,
        size_mib: u64,
        format: DiskFormat,
    ) -> Result<(), BlockError> {
        tool::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", fmt_name(format)])
                .arg(dest)
                .arg(format!("{size_mib}M")),
            None,
        )?;
        Ok(())
    }

    pub fn resize_disk(
        &self,
        path: &Path,
        format: DiskFormat,
        size_mib: u64,
    ) -> Result<(), BlockError> {
        tool::run(
            Command::new("qemu-img")
                .args(["resize", "-q", "-f", fmt_name(format)])
                .arg(path)
                .arg(format!("{size_mib}M")),
            None,
        )?;
        Ok(())
    }

    pub fn export(&self, _req: &ExportRequest) -> Result<Export, BlockError> {
        let mut exports = self.exports.lock().unwrap_or_else(|e| e.into_inner());
        let used: Vec<u16> = exports.values().copied().collect();
        let port = self
            .cfg
            .ports
            .clone()
            .find(|p| !used.contains(p))
            .ok_or_else(|| BlockError::NoPort(self.cfg.ports.clone()))?;
        let mut bytes = [0u8; 16];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").expect("urandom"),
            &mut bytes,
        )
        .expect("urandom");
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        exports.insert(name.clone(), port);
        Ok(Export {
            name,
            host: self.cfg.listen,
            port,
        })
    }

    pub fn unexport(&self, name: &str) -> Result<(), BlockError> {
        self.exports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    pub fn exports(&self) -> Vec<ExportStatus> {
        self.exports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, &port)| ExportStatus {
                name: name.clone(),
                port,
                pid: None,
                running: true,
            })
            .collect()
    }
}
