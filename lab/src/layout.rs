//! What a lab is made of and where it lives: `lab.json` in the lab's directory records
//! everything `up` made, written before each thing is made, so `down` finds all of it even
//! after an `up` that failed halfway.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The controller's address on the Pi network (powerd's `pi_network.address`).
pub const CONTROLLER: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
pub const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
/// Reservations powerd hands out to VMs.
pub const POOL: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(10, 231, 0, 100),
    Ipv4Addr::new(10, 231, 0, 199),
);
/// dnsmasq's range for boards without a reservation (outside the pool).
pub const DHCP_RANGE: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(10, 231, 0, 200),
    Ipv4Addr::new(10, 231, 0, 249),
);
pub const NBD_PORTS: (u16, u16) = (10810, 10999);
pub const TFTP_PORT: u16 = 69;
pub const HTTP_PORT: u16 = 8086;
/// powerd's admin API, on the namespace's loopback.
pub const API: &str = "127.0.0.1:9750";
pub const BRIDGE: &str = "pfbr0";
pub const STATE_FILE: &str = "lab.json";

/// What to start.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Names the namespace `pflab-NAME`; two labs with different names can run at once.
    pub name: String,
    pub dir: PathBuf,
    pub pis: usize,
    /// The powerd binary.
    pub powerd: PathBuf,
    /// This tool's binary, which powerd's outlets call.
    pub lab_exe: PathBuf,
    /// A virtual Pi is killed after this long (a forgotten lab does not run forever).
    pub vm_life: Option<Duration>,
    /// A raw disk image (or a stemcell's `image` member) to upload at start.
    pub image: Option<PathBuf>,
}

impl LabSpec {
    /// A lab of `pis` Pis in `dir`, with powerd and this tool found beside the running
    /// executable (cargo puts every workspace binary in one directory).
    pub fn new(name: &str, dir: impl Into<PathBuf>, pis: usize) -> Result<LabSpec> {
        Ok(LabSpec {
            name: name.to_owned(),
            dir: dir.into(),
            pis,
            powerd: workspace_binary("powerd")?,
            lab_exe: workspace_binary("pifoundry-lab")?,
            vm_life: None,
            image: None,
        })
    }
}

/// A binary of this workspace found beside the running executable (cargo puts every one in
/// `target/<profile>`; test binaries run from its `deps`), else `name` for a `PATH` lookup.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let bin_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let dirs = [
        bin_dir.clone(),
        bin_dir.parent().map(Path::to_path_buf).unwrap_or_default(),
    ];
    Ok(dirs
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name)))
}

/// One virtual Pi: its identity as powerd's inventory has it, and its tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiRecord {
    pub serial: String,
    pub mac: String,
    pub outlet: String,
    pub tap: String,
}

impl PiRecord {
    pub fn numbered(i: usize) -> PiRecord {
        PiRecord {
            serial: format!("{:08x}", 0x1ab0_0001 + i),
            mac: format!("52:54:00:1a:b0:{:02x}", i + 1),
            outlet: format!("pi{i}"),
            tap: format!("pftap{i}"),
        }
    }
}

/// `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub netns: String,
    pub dir: PathBuf,
    pub pis: Vec<PiRecord>,
    #[serde(default)]
    pub vm_life_secs: Option<u64>,
    /// The uploaded image's id, when `up` was given one.
    #[serde(default)]
    pub image: Option<String>,
    /// Steps `up` took (`netns`, `dnsmasq`, `powerd`, …), for `down` and for errors.
    #[serde(default)]
    pub made: Vec<String>,
}

impl Lab {
    pub fn netns_name(name: &str) -> String {
        format!("pflab-{name}")
    }

    pub fn load(dir: &Path) -> Result<Lab> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: no lab here (pifoundry-lab up)", path.display()))?;
        let lab: Lab = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a lab record", path.display()))?;
        if lab.dir != dir {
            bail!(
                "{}: records the lab in {}, not here",
                path.display(),
                lab.dir.display()
            );
        }
        Ok(lab)
    }

    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("serialising lab.json")?;
        pifoundry_util::atomic::write(self.dir.join(STATE_FILE), &bytes)?;
        Ok(())
    }

    pub fn pi(&self, key: &str) -> Result<&PiRecord> {
        self.pis
            .iter()
            .find(|p| p.serial == key || p.outlet == key)
            .with_context(|| {
                format!(
                    "{}: no Pi {key:?} in this lab",
                    self.dir.join(STATE_FILE).display()
                )
            })
    }

    /// Per-Pi files: the boot files it fetched, its console logs, QEMU's pid.
    pub fn pi_dir(&self, serial: &str) -> PathBuf {
        self.dir.join("pis").join(serial)
    }

    pub fn console_log(&self, serial: &str) -> PathBuf {
        self.pi_dir(serial).join("console.log")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("powerd.tokens")
    }

    pub fn token(&self) -> Result<String> {
        let path = self.token_file();
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let line = text.lines().next().unwrap_or_default();
        Ok(line
            .split_once(':')
            .map(|(_, t)| t)
            .unwrap_or(line)
            .to_owned())
    }

    pub fn powerd_dir(&self) -> PathBuf {
        self.dir.join("powerd")
    }
}
