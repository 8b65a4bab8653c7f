//! dnsmasq with the shipped configurations, in a pair of namespaces, and busybox udhcpc
//! sending the discover a Pi's bootloader sends: the reserved MAC gets its reserved address
//! and the Raspberry Pi boot options; after a change of reservation and a SIGHUP (same
//! dnsmasq process) it gets the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use powerd::pinet::{DhcpConfig, Reservations};

use crate::support::netns::{Netns, require};

const MAC: &str = "b8:27:eb:12:34:56";
const SERIAL: &str = "12345678";

/// The shipped configuration with its site-specific paths and interface replaced.
fn config(name: &str, dir: &Path, iface: &str, range: Option<&str>) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dnsmasq")
        .join(name);
    let text = std::fs::read_to_string(&shipped).unwrap();
    let d = dir.display();
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap();
        let line = match key {
            "interface" => format!("interface={iface}"),
            "pid-file" => format!("pid-file={d}/dnsmasq.pid"),
            "dhcp-hostsfile" => format!("dhcp-hostsfile={d}/dnsmasq.hosts"),
            "dhcp-leasefile" => format!("dhcp-leasefile={d}/dnsmasq.leases"),
            "dhcp-range" if range.is_some() => format!("dhcp-range={}", range.unwrap()),
            // the proxy file's example LAN is 192.168.1.0/24; the test's is 10.77.0.0/24
            "dhcp-boot" => line.replace("192.168.1.5", "10.77.0.1"),
            _ => line.to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    // the test's own: keep root (the temp dir is root's), log where the test reads
    out.push_str(&format!(
        "user=root\ngroup=root\nlog-facility={d}/dnsmasq.log\n"
    ));
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

struct Dnsmasq(Child);

impl Dnsmasq {
    fn start(ns: &Netns, conf: &Path, dir: &Path) -> Dnsmasq {
        require("dnsmasq");
        // the guard owns it from the start: a failed start is killed and reaped too
        let dnsmasq = Dnsmasq(
            ns.command("dnsmasq")
                .arg("--keep-in-foreground")
                .arg(format!("--conf-file={}", conf.display()))
                .spawn()
                .unwrap(),
        );
        let pid_file = dir.join("dnsmasq.pid");
        let pid = dnsmasq.0.id().to_string();
        for _ in 0..100 {
            if std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid) {
                return dnsmasq;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "dnsmasq did not write its pid file; log: {:?}",
            std::fs::read_to_string(dir.join("dnsmasq.log"))
        );
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// busybox udhcpc in `ns` on `iface`, asking as a Pi bootloader does (vendor class, client
/// arch 93, NDI 94, UUID 97, option 43 wanted): the bound lease's variables, or None.
fn udhcpc(ns: &Netns, iface: &str, dir: &Path) -> Option<HashMap<String, String>> {
    require("busybox");
    let script = dir.join("udhcpc.sh");
    let lease = dir.join("lease.env");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && env > \"$PF_LEASE\"\nexit 0\n",
    )
    .unwrap();
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&script, exec).unwrap();
    let _ = std::fs::remove_file(&lease);
    let out = ns
        .command("busybox")
        .args([
            "udhcpc", "-i", iface, "-f", "-q", "-n", "-t", "4", "-T", "2", "-s",
        ])
        .arg(&script)
        .args([
            "-V",
            "PXEClient:Arch:00000:UNDI:002001",
            "-x",
            "0x5d:0000",
            "-x",
            "0x5e:010201",
        ])
        .args(["-x", "0x61:00112233445566778899aabbccddeeff00", "-O", "43"])
        .env("PF_LEASE", &lease)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&lease).ok()?;
    assert!(
        out.status.success(),
        "udhcpc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn lease_or_log(lease: Option<HashMap<String, String>>, dir: &Path) -> HashMap<String, String> {
    lease.unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default();
        panic!("no lease; dnsmasq's log:\n{log}")
    })
}

fn hex_contains(hex: &str, text: &str) -> bool {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

fn link(tag: &str) -> (Netns, Netns) {
    let (srv, pis) = (
        Netns::new(&format!("{tag}-srv")),
        Netns::new(&format!("{tag}-pis")),
    );
    srv.veth_to(&pis, "pfd0", "pfd1");
    srv.ip(&["addr", "add", "10.77.0.1/24", "dev", "pfd0"]);
    pis.ip(&["link", "set", "dev", "pfd1", "address", MAC]);
    (srv, pis)
}

#[test]
fn the_reserved_mac_gets_its_address_and_a_changed_one_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, pis) = link("dhcp");
    let reservations = Reservations::open(DhcpConfig {
        hosts_file: dir.path().join("dnsmasq.hosts"),
        pid_file: Some(dir.path().join("dnsmasq.pid")),
    })
    .unwrap();
    // before dnsmasq runs: no pid file, nothing to signal, read at its start
    reservations
        .set(MAC, "10.77.0.150".parse().unwrap(), SERIAL)
        .unwrap();
    let conf = config("controller-dhcp.conf", dir.path(), "pfd0", None);
    let mut dnsmasq = Dnsmasq::start(&srv, &conf, dir.path());

    let lease = lease_or_log(udhcpc(&pis, "pfd1", dir.path()), dir.path());
    assert_eq!(lease["ip"], "10.77.0.150");
    assert_eq!(
        lease["siaddr"], "10.77.0.1",
        "the TFTP server is powerd's address"
    );
    assert_eq!(lease["router"], "10.77.0.1");
    assert!(
        hex_contains(&lease["opt43"], "Raspberry Pi Boot"),
        "option 43: {}",
        lease["opt43"]
    );

    reservations
        .set(MAC, "10.77.0.151".parse().unwrap(), SERIAL)
        .unwrap();
    let lease = lease_or_log(udhcpc(&pis, "pfd1", dir.path()), dir.path());
    assert_eq!(
        lease["ip"], "10.77.0.151",
        "the new reservation, read after SIGHUP"
    );
    assert!(dnsmasq.running(), "dnsmasq was re-read, not restarted");
    let pid = std::fs::read_to_string(dir.path().join("dnsmasq.pid")).unwrap();
    assert_eq!(pid.trim(), dnsmasq.0.id().to_string());

    // without a reservation the board is unknown: an address from the discovery range
    reservations.remove(MAC).unwrap();
    let lease = lease_or_log(udhcpc(&pis, "pfd1", dir.path()), dir.path());
    let last: u8 = lease["ip"].rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        lease["ip"].starts_with("10.77.0.") && (200..=249).contains(&last),
        "{}",
        lease["ip"]
    );
}

#[test]
fn proxy_dhcp_adds_the_boot_options_and_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, pis) = link("pxy");
    let conf = config(
        "proxy-dhcp.conf",
        dir.path(),
        "pfd0",
        Some("10.77.0.0,proxy,255.255.255.0"),
    );
    let mut dnsmasq = Dnsmasq::start(&srv, &conf, dir.path());
    // the proxy offers no address, so udhcpc never binds; what it answered is in its log
    assert!(udhcpc(&pis, "pfd1", dir.path()).is_none());
    assert!(dnsmasq.running());
    let log = std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap();
    assert!(log.contains(&format!("PXE(pfd0) {MAC} proxy")), "{log}");
    assert!(log.contains("option: 43 vendor-encap"), "{log}");
    assert!(
        log.contains("next server: 10.77.0.1"),
        "the TFTP server: {log}"
    );
    assert!(
        !log.contains("DHCPOFFER"),
        "a proxy must not offer addresses: {log}"
    );
}

#[test]
fn the_shipped_files_pass_dnsmasqs_own_check_as_they_are() {
    require("dnsmasq");
    for name in ["controller-dhcp.conf", "proxy-dhcp.conf"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dnsmasq")
            .join(name);
        let out = std::process::Command::new("dnsmasq")
            .arg("--test")
            .arg(format!("--conf-file={}", file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
