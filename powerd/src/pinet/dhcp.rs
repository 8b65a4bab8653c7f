//! DHCP stays dnsmasq's job: powerd keeps its `dhcp-hostsfile` (one reservation per Pi) and
//! makes it re-read the file with SIGHUP, without a restart (contract §3).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pifoundry_util::{BadInput, PathError, atomic};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub hosts_file: PathBuf,
    /// dnsmasq's `pid-file`; absent (or no file there) means nobody to signal.
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: Ipv4Addr,
    pub serial: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Bad(#[from] BadInput),
    #[error("MAC {0:?} is not six colon-separated hex octets")]
    Mac(String),
    #[error("serial {0:?} is not 8 lowercase hex digits")]
    Serial(String),
    #[error("{ip} is already reserved for {mac} (Pi {serial})")]
    IpTaken {
        ip: Ipv4Addr,
        mac: String,
        serial: String,
    },
    #[error("{file}: cannot signal dnsmasq (pid {pid}): {error}")]
    Signal {
        file: PathBuf,
        pid: i32,
        error: nix::Error,
    },
}

/// MAC → (IP, serial), mirrored to the hosts file on every change.
pub struct Reservations {
    cfg: DhcpConfig,
    hosts: Mutex<BTreeMap<String, Reservation>>,
    told_no_pid: AtomicBool,
}

impl Reservations {
    /// Reads the hosts file powerd wrote before (none yet is an empty set).
    pub fn open(cfg: DhcpConfig) -> Result<Reservations, DhcpError> {
        let hosts = match std::fs::read_to_string(&cfg.hosts_file) {
            Ok(text) => parse(&cfg.hosts_file, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(PathError::new(&cfg.hosts_file, e).into()),
        };
        atomic::remove_stale(&cfg.hosts_file)?;
        Ok(Reservations {
            cfg,
            hosts: Mutex::new(hosts),
            told_no_pid: AtomicBool::new(false),
        })
    }

    pub fn list(&self) -> BTreeMap<String, Reservation> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reserves `ip` for `mac` (replacing that MAC's earlier reservation), then tells dnsmasq.
    pub fn set(&self, mac: &str, ip: Ipv4Addr, serial: &str) -> Result<(), DhcpError> {
        let mac = normalise_mac(mac)?;
        if !is_serial(serial) {
            return Err(DhcpError::Serial(serial.to_owned()));
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((other, r)) = hosts.iter().find(|(m, r)| r.ip == ip && **m != mac) {
            return Err(DhcpError::IpTaken {
                ip,
                mac: other.clone(),
                serial: r.serial.clone(),
            });
        }
        let mut next = hosts.clone();
        let entry = Reservation {
            ip,
            serial: serial.to_owned(),
        };
        if next.insert(mac, entry.clone()).as_ref() == Some(&entry) {
            return Ok(());
        }
        self.write(&next)?;
        *hosts = next;
        self.reload()
    }

    /// Drops `mac`'s reservation (none is fine), then tells dnsmasq.
    pub fn remove(&self, mac: &str) -> Result<(), DhcpError> {
        let mac = normalise_mac(mac)?;
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if !hosts.contains_key(&mac) {
            return Ok(());
        }
        let mut next = hosts.clone();
        next.remove(&mac);
        self.write(&next)?;
        *hosts = next;
        self.reload()
    }

    /// Makes the reservations exactly `want` (MAC, IP, serial): what powerd's records hold at
    /// start, whatever the hosts file says (an edit, or a kill between a record and its file).
    /// Writes and tells dnsmasq only when something differs, and then answers true.
    pub fn reconcile<'a>(
        &self,
        want: impl IntoIterator<Item = (&'a str, Ipv4Addr, &'a str)>,
    ) -> Result<bool, DhcpError> {
        let mut next = BTreeMap::new();
        for (mac, ip, serial) in want {
            if !is_serial(serial) {
                return Err(DhcpError::Serial(serial.to_owned()));
            }
            let entry = Reservation {
                ip,
                serial: serial.to_owned(),
            };
            next.insert(normalise_mac(mac)?, entry);
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if *hosts == next {
            return Ok(false);
        }
        self.write(&next)?;
        *hosts = next;
        self.reload()?;
        Ok(true)
    }

    fn write(&self, hosts: &BTreeMap<String, Reservation>) -> Result<(), DhcpError> {
        let mut text =
            String::from("# written by powerd: one Pi reservation a line; edits are lost\n");
        for (mac, r) in hosts {
            // The host name is `pi-SERIAL`: dnsmasq would read an all-digit serial as a lease
            // time. No `set:` tag: dnsmasq 2.90 crashes on SIGHUP when a hosts-file line sets a
            // tag and a lease exists (tests/integration/pinet_dhcp.rs found it).
            writeln!(text, "{mac},{},pi-{}", r.ip, r.serial).expect("String");
        }
        atomic::write(&self.cfg.hosts_file, text.as_bytes())?;
        Ok(())
    }

    /// SIGHUP to dnsmasq, which re-reads its hosts files. No pid file: logged once, skipped
    /// (dnsmasq reads the file when it starts). A pid that is gone: logged, skipped.
    fn reload(&self) -> Result<(), DhcpError> {
        let Some(pid_file) = &self.cfg.pid_file else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(pid_file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.told_no_pid.swap(true, Ordering::Relaxed) {
                    tracing::warn!(pid_file = %pid_file.display(), "no dnsmasq pid file: reservations take effect when dnsmasq starts");
                }
                return Ok(());
            }
            Err(e) => return Err(PathError::new(pid_file, e).into()),
        };
        let pid: i32 = text
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| BadInput::new(pid_file, format!("not a pid: {:?}", text.trim())))?;
        match kill(Pid::from_raw(pid), Signal::SIGHUP) {
            Ok(()) => {
                self.told_no_pid.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(nix::Error::ESRCH) => {
                tracing::warn!(pid_file = %pid_file.display(), pid, "dnsmasq is not running: reservations take effect when it starts");
                Ok(())
            }
            Err(error) => Err(DhcpError::Signal {
                file: pid_file.clone(),
                pid,
                error,
            }),
        }
    }
}

fn parse(file: &Path, text: &str) -> Result<BTreeMap<String, Reservation>, DhcpError> {
    let mut hosts = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| BadInput::new(file, format!("line {}: {why}: {line:?}", n + 1));
        let fields: Vec<&str> = line.split(',').collect();
        let &[mac, ip, host] = fields.as_slice() else {
            return Err(bad("expected MAC,IP,pi-SERIAL").into());
        };
        let mac = normalise_mac(mac).map_err(|_| bad("bad MAC"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad("bad IPv4 address"))?;
        let serial = host.strip_prefix("pi-").filter(|s| is_serial(s));
        let Some(serial) = serial else {
            return Err(bad("expected MAC,IP,pi-SERIAL").into());
        };
        let serial = serial.to_owned();
        hosts.insert(mac, Reservation { ip, serial });
    }
    Ok(hosts)
}

pub(crate) fn is_serial(s: &str) -> bool {
    s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn normalise_mac(mac: &str) -> Result<String, DhcpError> {
    let octets: Vec<&str> = mac.split(':').collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(mac.to_ascii_lowercase())
    } else {
        Err(DhcpError::Mac(mac.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, pid_file: Option<PathBuf>) -> Reservations {
        Reservations::open(DhcpConfig {
            hosts_file: dir.join("dnsmasq.hosts"),
            pid_file,
        })
        .unwrap()
    }

    #[test]
    fn writes_reservations_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path(), Some(dir.path().join("absent.pid")));
        r.set(
            "B8:27:EB:00:00:01",
            "10.77.0.101".parse().unwrap(),
            "1a2b3c4d",
        )
        .unwrap();
        r.set(
            "dc:a6:32:00:00:02",
            "10.77.0.102".parse().unwrap(),
            "12345678",
        )
        .unwrap();
        r.set(
            "b8:27:eb:00:00:01",
            "10.77.0.103".parse().unwrap(),
            "1a2b3c4d",
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("dnsmasq.hosts")).unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "b8:27:eb:00:00:01,10.77.0.103,pi-1a2b3c4d",
                "dc:a6:32:00:00:02,10.77.0.102,pi-12345678",
            ]
        );
        let again = open(dir.path(), None);
        assert_eq!(again.list(), r.list());
        again.remove("DC:A6:32:00:00:02").unwrap();
        again.remove("dc:a6:32:00:00:02").unwrap();
        assert_eq!(open(dir.path(), None).list().len(), 1);
    }

    #[test]
    fn refuses_a_taken_address_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path(), None);
        r.set(
            "b8:27:eb:00:00:01",
            "10.77.0.101".parse().unwrap(),
            "1a2b3c4d",
        )
        .unwrap();
        let err = r
            .set(
                "b8:27:eb:00:00:02",
                "10.77.0.101".parse().unwrap(),
                "2a2b3c4d",
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.77.0.101 is already reserved for b8:27:eb:00:00:01 (Pi 1a2b3c4d)"
        );
        assert!(matches!(
            r.set("b8:27:eb:00:00", "10.0.0.1".parse().unwrap(), "1a2b3c4d"),
            Err(DhcpError::Mac(_))
        ));
        assert!(matches!(
            r.set("b8:27:eb:00:00:03", "10.0.0.1".parse().unwrap(), "1A2B3C4D"),
            Err(DhcpError::Serial(_))
        ));
    }

    #[test]
    fn a_hand_edited_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("dnsmasq.hosts");
        std::fs::write(
            &hosts,
            "# ok\nb8:27:eb:00:00:01,10.77.0.101,pi-1a2b3c4d\nb8:27:eb:00:00:02,10.77.0.102\n",
        )
        .unwrap();
        let err = Reservations::open(DhcpConfig {
            hosts_file: hosts.clone(),
            pid_file: None,
        })
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: line 3:", hosts.display())),
            "{err}"
        );
    }

    #[test]
    fn a_garbage_pid_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("dnsmasq.pid");
        std::fs::write(&pid, "dnsmasq\n").unwrap();
        let r = open(dir.path(), Some(pid.clone()));
        let err = r
            .set(
                "b8:27:eb:00:00:01",
                "10.77.0.101".parse().unwrap(),
                "1a2b3c4d",
            )
            .unwrap_err();
        assert!(
            err.to_string().contains(&pid.display().to_string()),
            "{err}"
        );
    }
}
