//! The kernel command line a netbooting Pi gets as `SERIAL/cmdline.txt` (contract §4): the
//! parameters of the stemcell's `cmdline-netboot.txt.hbs`, with the root on the whole-disk
//! overlay's second partition and the attach helper's base URL.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// What differs per VM in its command line; the Directory fills it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineParams {
    /// The root export (`nbdroot=HOST:PORT/EXPORT`).
    pub nbd_host: IpAddr,
    pub nbd_port: u16,
    pub nbd_export: String,
    /// The Pi's reserved address, configured by the initramfs (`ip=`); the agent must keep it,
    /// or the root is cut.
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub hostname: String,
    /// The Pi's MAC: the initramfs configures the interface that has it (`BOOTIF=`), which is
    /// `eth0` on a Pi with Ethernet and `usb0` on a Pi Zero's USB network.
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("cmdline.txt: {field} {value:?} is not allowed on a kernel command line ({rule})")]
    Field {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
}

/// Renders the one-line `cmdline.txt`. `api` is the Pi-network HTTP server (settings and
/// attachments). Names that could add or split kernel parameters are refused.
pub fn render(p: &CmdlineParams, api: SocketAddr) -> Result<String, CmdlineError> {
    check(
        "hostname",
        &p.hostname,
        is_hostname,
        "a DNS label: a-z, 0-9, `-`",
    )?;
    check("mac", &p.mac, is_mac, "six hex pairs separated by `:`")?;
    check(
        "nbd_export",
        &p.nbd_export,
        is_word,
        "letters, digits, `.`, `_`, `-`",
    )?;
    let nbd = SocketAddr::new(p.nbd_host, p.nbd_port);
    Ok(format!(
        "console=ttyAMA0,115200 root=/dev/nbd0p2 nbd.max_part=8 \
         nbdroot={nbd}/{export} ip={addr}::{gw}:{mask}:{host}::off BOOTIF=01-{bootif} \
         pifoundry.api=http://{api} rw net.ifnames=0 rootwait panic=10\n",
        export = p.nbd_export,
        addr = p.address,
        gw = p.gateway,
        mask = p.netmask,
        host = p.hostname,
        bootif = p.mac.to_ascii_lowercase().replace(':', "-"),
    ))
}

fn check(
    field: &'static str,
    value: &str,
    ok: fn(&str) -> bool,
    rule: &'static str,
) -> Result<(), CmdlineError> {
    if ok(value) {
        return Ok(());
    }
    Err(CmdlineError::Field {
        field,
        value: value.to_owned(),
        rule,
    })
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn is_mac(s: &str) -> bool {
    let pairs: Vec<&str> = s.split(':').collect();
    pairs.len() == 6
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params() -> CmdlineParams {
        CmdlineParams {
            nbd_host: "10.77.0.1".parse().unwrap(),
            nbd_port: 10810,
            nbd_export: "0123456789abcdef0123456789abcdef".into(),
            address: "10.77.0.105".parse().unwrap(),
            gateway: "10.77.0.1".parse().unwrap(),
            netmask: "255.255.255.0".parse().unwrap(),
            hostname: "pi-1a2b3c4d".into(),
            mac: "B8:27:EB:1A:2B:3C".into(),
        }
    }

    #[test]
    fn renders_the_netboot_line() {
        let line = render(&params(), "10.77.0.1:8086".parse().unwrap()).unwrap();
        assert_eq!(
            line,
            "console=ttyAMA0,115200 root=/dev/nbd0p2 nbd.max_part=8 \
             nbdroot=10.77.0.1:10810/0123456789abcdef0123456789abcdef \
             ip=10.77.0.105::10.77.0.1:255.255.255.0:pi-1a2b3c4d::off BOOTIF=01-b8-27-eb-1a-2b-3c \
             pifoundry.api=http://10.77.0.1:8086 rw net.ifnames=0 rootwait panic=10\n"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn refuses_names_that_would_inject_parameters() {
        let api = "10.77.0.1:8086".parse().unwrap();
        for (field, value) in [
            ("hostname", "pi init=/bin/sh"),
            ("hostname", "Pi"),
            ("hostname", ""),
            ("mac", "b8:27:eb:1a:2b:3c ip=dhcp"),
            ("mac", "b8:27:eb:1a:2b"),
            ("nbd_export", "x root=/dev/sda"),
            ("nbd_export", "a\nb"),
        ] {
            let mut p = params();
            match field {
                "hostname" => p.hostname = value.into(),
                "mac" => p.mac = value.into(),
                _ => p.nbd_export = value.into(),
            }
            let err = render(&p, api).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
