//! The block layer's configuration: where its state lives, where exports listen, who
//! supervises them and whether nftables guards them.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Firewall;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// qemu-nbd in its own session, re-adopted after a restart (tests, the lab).
    #[default]
    Detached,
    /// `pifoundry-nbd@<export>.service` instances (the controller).
    Systemd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// Holds `block.json`, its lock and the detached exports' logs.
    pub state_dir: PathBuf,
    /// The Pi-network address the exports listen on.
    pub listen: IpAddr,
    pub ports: RangeInclusive<u16>,
    #[serde(default)]
    pub supervisor: Supervisor,
    #[serde(default)]
    pub firewall: Firewall,
    /// Connections per export (`--shared`), at least 2.
    #[serde(default = "default_shared")]
    pub shared: u32,
    /// Where the systemd instances' env files go (the unit reads `/run/pifoundry/nbd`).
    #[serde(default = "default_env_dir")]
    pub env_dir: PathBuf,
    #[serde(default)]
    pub tools: Tools,
}

fn default_shared() -> u32 {
    8
}
fn default_env_dir() -> PathBuf {
    "/run/pifoundry/nbd".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tools {
    pub qemu_img: PathBuf,
    pub qemu_nbd: PathBuf,
    pub nft: PathBuf,
    pub systemctl: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            qemu_img: "qemu-img".into(),
            qemu_nbd: "qemu-nbd".into(),
            nft: "nft".into(),
            systemctl: "systemctl".into(),
        }
    }
}

impl BlockConfig {
    pub fn new(state_dir: impl Into<PathBuf>, listen: IpAddr, ports: RangeInclusive<u16>) -> Self {
        Self {
            state_dir: state_dir.into(),
            listen,
            ports,
            supervisor: Supervisor::default(),
            firewall: Firewall::default(),
            shared: default_shared(),
            env_dir: default_env_dir(),
            tools: Tools::default(),
        }
    }
}
