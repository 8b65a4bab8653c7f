//! The `provisioning:` section of powerd.yml (contract §9). Absent: powerd only switches power.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::block::{Firewall, Supervisor};
use crate::config::duration;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/pifoundry";
pub const DEFAULT_ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct PiNetwork {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// Addresses for VMs on dynamic networks.
    pub pool: RangeInclusive<Ipv4Addr>,
    pub tftp_port: u16,
    pub http_port: u16,
    pub nbd_ports: RangeInclusive<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningConfig {
    pub data_dir: PathBuf,
    pub attach_timeout: Duration,
    pub pi_network: PiNetwork,
    pub supervisor: Supervisor,
    pub firewall: Firewall,
    pub hosts_file: PathBuf,
    pub pid_file: Option<PathBuf>,
}

impl ProvisioningConfig {
    pub fn state_file(&self) -> PathBuf {
        self.data_dir.join("provision.json")
    }

    /// The attach helper's base URL, as the Pis reach it.
    pub fn api_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.pi_network.address, self.pi_network.http_port
        )
    }

    pub fn block(&self) -> crate::block::BlockConfig {
        let mut cfg = crate::block::BlockConfig::new(
            self.data_dir.join("exports"),
            IpAddr::V4(self.pi_network.address),
            self.pi_network.nbd_ports.clone(),
        );
        cfg.supervisor = self.supervisor;
        cfg.firewall = self.firewall;
        cfg
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvisioning {
    data_dir: Option<PathBuf>,
    attach_timeout: Option<String>,
    pi_network: RawPiNetwork,
    #[serde(default)]
    exports: RawExports,
    #[serde(default)]
    dhcp: RawDhcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPiNetwork {
    address: String,
    netmask: String,
    gateway: Option<String>,
    pool: String,
    tftp_port: Option<u16>,
    http_port: Option<u16>,
    nbd_ports: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExports {
    supervisor: Option<String>,
    firewall: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDhcp {
    hosts_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
}

type Bad = (String, String);

fn ipv4(key: &str, text: &str) -> Result<Ipv4Addr, Bad> {
    text.trim()
        .parse()
        .map_err(|_| (key.into(), format!("{text:?} is not an IPv4 address")))
}

fn range<T: Copy + PartialOrd>(
    key: &str,
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<RangeInclusive<T>, Bad> {
    let bad = || (key.to_string(), format!("{text:?} is not a range {what}"));
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b) = (
        parse(a.trim()).ok_or_else(bad)?,
        parse(b.trim()).ok_or_else(bad)?,
    );
    if a > b {
        return Err((key.into(), format!("{text:?}: the range is empty")));
    }
    Ok(a..=b)
}

fn in_subnet(addr: Ipv4Addr, net: Ipv4Addr, mask: Ipv4Addr) -> bool {
    u32::from(addr) & u32::from(mask) == u32::from(net) & u32::from(mask)
}

impl RawProvisioning {
    /// Errors are `(key under provisioning, message)`.
    pub fn validate(self) -> Result<ProvisioningConfig, Bad> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let attach_timeout = duration(self.attach_timeout.as_deref())
            .map_err(|m| ("attach_timeout".to_string(), m))?
            .unwrap_or(DEFAULT_ATTACH_TIMEOUT);
        if attach_timeout.is_zero() {
            return Err(("attach_timeout".into(), "must be greater than zero".into()));
        }
        let n = self.pi_network;
        let address = ipv4("pi_network.address", &n.address)?;
        let netmask = ipv4("pi_network.netmask", &n.netmask)?;
        if u32::from(netmask).leading_ones() + u32::from(netmask).trailing_zeros() != 32 {
            return Err((
                "pi_network.netmask".into(),
                format!("{netmask} is not a netmask"),
            ));
        }
        let gateway = match n.gateway.as_deref() {
            Some(g) => ipv4("pi_network.gateway", g)?,
            None => address,
        };
        let pool = range(
            "pi_network.pool",
            &n.pool,
            |s| s.parse::<Ipv4Addr>().ok(),
            "of addresses such as 10.77.0.100-10.77.0.199",
        )?;
        for a in [*pool.start(), *pool.end()] {
            if !in_subnet(a, address, netmask) {
                return Err((
                    "pi_network.pool".into(),
                    format!("{a} is outside the Pi network {address}/{netmask}"),
                ));
            }
        }
        if pool.contains(&address) {
            return Err((
                "pi_network.pool".into(),
                format!("holds the controller's own address {address}"),
            ));
        }
        let nbd_ports = range(
            "pi_network.nbd_ports",
            n.nbd_ports.as_deref().unwrap_or("10810-10999"),
            |s| s.parse::<u16>().ok().filter(|&p| p > 0),
            "of ports such as 10810-10999",
        )?;
        let supervisor = match self.exports.supervisor.as_deref() {
            None | Some("detached") => Supervisor::Detached,
            Some("systemd") => Supervisor::Systemd,
            Some(other) => {
                return Err((
                    "exports.supervisor".into(),
                    format!("unknown supervisor {other:?}; expected detached or systemd"),
                ));
            }
        };
        let firewall = match self.exports.firewall.as_deref() {
            None | Some("nftables") => Firewall::Nftables,
            Some("none") => Firewall::None,
            Some(other) => {
                return Err((
                    "exports.firewall".into(),
                    format!("unknown firewall {other:?}; expected nftables or none"),
                ));
            }
        };
        let hosts_file = self
            .dhcp
            .hosts_file
            .unwrap_or_else(|| data_dir.join("dnsmasq.hosts"));
        Ok(ProvisioningConfig {
            data_dir,
            attach_timeout,
            pi_network: PiNetwork {
                address,
                netmask,
                gateway,
                pool,
                tftp_port: n.tftp_port.unwrap_or(69),
                http_port: n.http_port.unwrap_or(8086),
                nbd_ports,
            },
            supervisor,
            firewall,
            hosts_file,
            pid_file: self.dhcp.pid_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const OUTLETS: &str = "outlets:\n  - {id: a, backend: sim}\n";

    fn parse(prov: &str) -> Result<Config, String> {
        Config::parse(
            Path::new("powerd.yml"),
            &format!("{OUTLETS}provisioning:\n{prov}"),
        )
        .map_err(|e| e.to_string())
    }

    const NET: &str = "  pi_network: {address: 10.77.0.1, netmask: 255.255.255.0, pool: 10.77.0.100-10.77.0.199}\n";

    #[test]
    fn minimal_section_gets_the_defaults() {
        let c = parse(NET).unwrap().provisioning.unwrap();
        assert_eq!(c.pi_network.tftp_port, 69);
        assert_eq!(c.pi_network.http_port, 8086);
        assert_eq!(c.pi_network.nbd_ports, 10810..=10999);
        assert_eq!(c.pi_network.gateway, c.pi_network.address);
        assert_eq!(c.attach_timeout, super::DEFAULT_ATTACH_TIMEOUT);
        assert_eq!(c.hosts_file, Path::new("/var/lib/pifoundry/dnsmasq.hosts"));
        assert_eq!(c.api_url(), "http://10.77.0.1:8086");
        let none = Config::parse(Path::new("powerd.yml"), OUTLETS).unwrap();
        assert!(none.provisioning.is_none());
    }

    #[test]
    fn bad_keys_are_named_with_the_file() {
        let cases = [
            (
                format!("{NET}  attach_timeout: soon\n"),
                "provisioning.attach_timeout: bad duration",
            ),
            (
                format!("{NET}  attach_timeout: 0s\n"),
                "provisioning.attach_timeout: must be greater",
            ),
            (format!("{NET}  surprise: 1\n"), "unknown field `surprise`"),
            (
                NET.replace("10.77.0.1,", "10.77.0.300,"),
                "provisioning.pi_network.address: \"10.77.0.300\" is not an IPv4",
            ),
            (
                NET.replace("255.255.255.0", "255.0.255.0"),
                "provisioning.pi_network.netmask: 255.0.255.0 is not a netmask",
            ),
            (
                NET.replace("10.77.0.100-10.77.0.199", "10.77.1.100-10.77.1.199"),
                "provisioning.pi_network.pool: 10.77.1.100 is outside",
            ),
            (
                NET.replace("10.77.0.100-10.77.0.199", "10.77.0.199-10.77.0.100"),
                "provisioning.pi_network.pool: \"10.77.0.199-10.77.0.100\": the range is empty",
            ),
            (
                NET.replace("10.77.0.100-10.77.0.199", "10.77.0.1-10.77.0.9"),
                "provisioning.pi_network.pool: holds the controller",
            ),
            (
                NET.replace("}", ", nbd_ports: 10-x}"),
                "provisioning.pi_network.nbd_ports: \"10-x\" is not a range",
            ),
            (
                format!("{NET}  exports: {{supervisor: runit}}\n"),
                "provisioning.exports.supervisor: unknown supervisor \"runit\"",
            ),
            (
                format!("{NET}  exports: {{firewall: iptables}}\n"),
                "provisioning.exports.firewall: unknown firewall",
            ),
            (
                format!("{NET}  dhcp: {{hosts: x}}\n"),
                "unknown field `hosts`",
            ),
            ("  data_dir: /x\n".to_string(), "missing field `pi_network`"),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with("powerd.yml: "), "{err}");
            assert!(err.contains(want), "error {err:?} should contain {want:?}");
        }
    }
}
