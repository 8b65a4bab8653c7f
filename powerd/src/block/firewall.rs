//! Who may connect to an export: nftables rules in powerd's own table (`table inet pifoundry`),
//! which nothing else on the controller writes. A port of an export is reachable only from
//! its Pi's address; any other source gets a TCP reset.
//!
//! The whole of powerd's part (table, sets, chain, rules, elements) is rewritten in one `nft`
//! transaction from the block state each time an export comes or goes: the kernel applies it
//! atomically, so an established connection of an allowed Pi never sees a gap, and a lost
//! element (someone flushed the table) comes back at the next change or restart.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use pifoundry_util::tool;
use serde::{Deserialize, Serialize};

use super::BlockError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firewall {
    /// Rules in `table inet pifoundry` (needs CAP_NET_ADMIN).
    #[default]
    Nftables,
    /// No source restriction beyond the unguessable export name (tests that cannot run nft).
    None,
}

pub const TABLE: &str = "pifoundry";
const CHAIN: &str = "nbd_input";

/// The nft script that makes the table hold exactly `allowed` (address, port) pairs.
pub fn script(allowed: &[(IpAddr, u16)]) -> String {
    let t = format!("inet {TABLE}");
    let mut s = format!(
        "add table {t}\n\
         add set {t} nbd_ports {{ type inet_service; }}\n\
         add set {t} nbd_allow4 {{ type ipv4_addr . inet_service; }}\n\
         add set {t} nbd_allow6 {{ type ipv6_addr . inet_service; }}\n\
         add chain {t} {CHAIN} {{ type filter hook input priority filter; policy accept; }}\n\
         flush chain {t} {CHAIN}\n\
         flush set {t} nbd_ports\n\
         flush set {t} nbd_allow4\n\
         flush set {t} nbd_allow6\n\
         add rule {t} {CHAIN} tcp dport != @nbd_ports accept\n\
         add rule {t} {CHAIN} ip saddr . tcp dport @nbd_allow4 accept\n\
         add rule {t} {CHAIN} ip6 saddr . tcp dport @nbd_allow6 accept\n\
         add rule {t} {CHAIN} tcp dport @nbd_ports reject with tcp reset\n"
    );
    let mut ports: Vec<u16> = allowed.iter().map(|(_, p)| *p).collect();
    ports.sort_unstable();
    ports.dedup();
    let list = |items: Vec<String>| items.join(", ");
    if !ports.is_empty() {
        let items = ports.iter().map(u16::to_string).collect();
        s += &format!("add element {t} nbd_ports {{ {} }}\n", list(items));
    }
    for (set, v6) in [("nbd_allow4", false), ("nbd_allow6", true)] {
        let items: Vec<String> = allowed
            .iter()
            .filter(|(a, _)| a.is_ipv6() == v6)
            .map(|(a, p)| format!("{a} . {p}"))
            .collect();
        if !items.is_empty() {
            s += &format!("add element {t} {set} {{ {} }}\n", list(items));
        }
    }
    s
}

/// Applies [`script`] with `nft -f -`.
pub fn apply(nft: &Path, allowed: &[(IpAddr, u16)]) -> Result<(), BlockError> {
    let mut cmd = Command::new(nft);
    cmd.args(["-f", "-"]);
    tool::run(&mut cmd, Some(script(allowed).as_bytes()))
        .map_err(|e| BlockError::Firewall(format!("nftables table inet {TABLE}: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_lists_each_pair_once_per_family() {
        let v4: IpAddr = "10.77.0.100".parse().unwrap();
        let v6: IpAddr = "fd00::64".parse().unwrap();
        let s = script(&[(v4, 10810), (v6, 10811)]);
        assert!(
            s.contains("add element inet pifoundry nbd_ports { 10810, 10811 }\n"),
            "{s}"
        );
        assert!(s.contains("nbd_allow4 { 10.77.0.100 . 10810 }\n"), "{s}");
        assert!(s.contains("nbd_allow6 { fd00::64 . 10811 }\n"), "{s}");
        let empty = script(&[]);
        assert!(!empty.contains("add element"), "{empty}");
        assert!(empty.contains("reject with tcp reset"));
    }
}
