//! The agent check: boot a baked stemcell the way a director uses it and talk to its agent.
//! Settings go into the `File` source with a generated mbus certificate (create-env style),
//! a blank sparse ephemeral disk is attached by USB, the network is QEMU's user-mode network
//! (DHCP; `restrict=on`, so the guest reaches nothing outside), and the mbus port is
//! forwarded to a port on the host's loopback only. The check passes when the agent answers
//! `ping` over HTTPS, `get_state` reports it running with `/var/vcap/data` mounted, the disk
//! holds the agent's swap + ext4 data layout, and after a power cut (QEMU killed) a second
//! boot of the same disk files gives the same answers without re-partitioning or
//! re-formatting.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use pifoundry_util::error::at;
use pifoundry_util::tool;
use serde_json::{Value, json};

use super::disk_layout::DiskLayout;
use super::settings::{self, MBUS_PORT, MbusCert, SETTINGS_PATH};
use super::{BootError, BootSpec, Qemu};

/// Console silence, with `ping` unanswered, after which a boot counts as stalled (the
/// default for [`BootSpec::stall`] in the agent check). A healthy emulated boot prints
/// something at least every minute or so until the agent answers.
///
/// What a stall is: now and then QEMU 7.2's emulated USB on raspi0 (dwc2 with a usb-hub)
/// hangs while the kernel enumerates the hub's first device, about 10 s into the boot. The
/// guest then idles with nothing to print: sysrq-w over the serial console showed the hub
/// worker asleep in `hub_port_reset` and udev blocked on the device's lock, for minutes
/// (1 boot in 6 with 3 checks and a benchmark at once on 2 cores). Under the same load the
/// stand-in was also seen to stop after its settings line, every one of its threads asleep
/// and no child left, the rest of the guest idle (sysrq-t); not pinned down. A stalled boot is
/// power-cycled once (kill QEMU, boot the same disk files again: a legitimate power cut
/// for the agent), said so on stderr and counted in [`BootOutcome::stalls`]; a second
/// stall fails the check.
///
/// Earlier "stalls" that ended right after the network restart were the check's own: while
/// each `ping` probe hung for a minute (QEMU's forward accepts the connection; a guest
/// without its network never answers), the console went unread and a printing guest looked
/// silent. The console now stamps output as it arrives and every stall check takes it in,
/// and a probe gives up after [`PING_TIMEOUT`].
pub const STALL: Duration = Duration::from_secs(180);

/// How long one mbus request may take (an emulated ARM1176 is slow, under load slower).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `ping` probe may take before the next one (the agent answers it at once).
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// How the check reaches the agent and what it handed it.
pub struct AgentCheck {
    pub boot: BootSpec,
    /// Copies of the image, the ephemeral disk and the logs go here.
    pub work: PathBuf,
    pub ephemeral_mib: u64,
    /// Console text that marks bootstrap steps, for the time split: (step, needle).
    pub milestones: Vec<(String, String)>,
}

/// One boot, as seen from the host.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    pub secs_to_ping: f64,
    /// Seconds from QEMU's start to each milestone that showed on the console.
    pub milestones: Vec<(String, f64)>,
    pub state: Value,
    pub layout: DiskLayout,
    /// Stalled attempts power-cycled before this boot answered (see [`STALL`]).
    pub stalls: u32,
}

pub struct Mbus {
    client: reqwest::blocking::Client,
    url: String,
    password: String,
}

impl Mbus {
    /// The agent's mbus at `url` (`https://HOST:PORT/agent`), trusting `ca_pem`.
    pub fn new(url: &str, password: &str, ca_pem: &str) -> Result<Self, BootError> {
        Ok(Self {
            client: client(ca_pem, None)?,
            url: url.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The agent's mbus at `addr`, dialled by the certificate's name `mbus` (the address
    /// of a netbooted Pi is only known once powerd reserved it).
    pub fn at(addr: std::net::SocketAddr, password: &str, ca_pem: &str) -> Result<Self, BootError> {
        Ok(Self {
            client: client(ca_pem, Some(addr))?,
            url: format!("https://mbus:{}/agent", addr.port()),
            password: password.to_owned(),
        })
    }

    /// Sends one message; `Ok(None)` when the agent is not (yet) reachable.
    pub fn call(&self, method: &str, arguments: Value) -> Result<Option<Value>, BootError> {
        self.call_within(method, arguments, CALL_TIMEOUT)
    }

    /// [`Self::call`] with its own time limit: a guest whose network is not up yet never
    /// answers the TCP connection QEMU's forward accepted, so a probe should give up soon.
    pub fn call_within(
        &self,
        method: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Option<Value>, BootError> {
        let body = json!({"method": method, "arguments": arguments, "reply_to": "agent-check"});
        let resp = match self
            .client
            .post(&self.url)
            .timeout(timeout)
            .basic_auth("mbus", Some(&self.password))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
        {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            return Err(BootError::Check(format!(
                "mbus {method}: HTTP {status}: {}",
                text.trim()
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| BootError::Check(format!("mbus {method}: not JSON ({e}): {text}")))?;
        if let Some(ex) = v.get("exception") {
            return Err(BootError::Check(format!(
                "mbus {method}: the agent answered {ex}"
            )));
        }
        Ok(Some(v["value"].clone()))
    }
}

impl AgentCheck {
    /// Prepares the work directory (image copy with settings, blank ephemeral disk), then
    /// boots twice. Returns both boots' outcomes.
    pub fn run(&self) -> Result<Vec<BootOutcome>, BootError> {
        let image = self.boot.image.clone().ok_or_else(|| {
            BootError::Check("the agent check needs a disk image (root.img)".into())
        })?;
        fs::create_dir_all(&self.work).map_err(at(&self.work))?;
        let root = self.root_copy();
        tool::run(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&image)
                .arg(&root),
            None,
        )?;
        let ephemeral = self.ephemeral_disk();
        let f = fs::File::create(&ephemeral).map_err(at(&ephemeral))?;
        f.set_len(self.ephemeral_mib << 20)
            .map_err(at(&ephemeral))?;
        drop(f);

        let cert = MbusCert::generate()?;
        let password = settings::random_hex()?;
        let agent_id = format!("agent-check-{}", &settings::random_hex()?[..12]);
        let doc = settings::settings(&agent_id, &password, &cert, "/dev/sda");
        let root_offset = settings::mbr_partition_offset(&root, 2)?;
        let text = serde_json::to_vec_pretty(&doc).expect("settings serialise");
        settings::write_into_ext4(&root, root_offset, SETTINGS_PATH, &text)?;
        eprintln!(
            "agent-check: settings for {agent_id} in {SETTINGS_PATH}; ephemeral disk {} MiB (sparse)",
            self.ephemeral_mib
        );

        let mut outcomes = Vec::new();
        for n in 1..=2 {
            let port = free_loopback_port()?;
            let url = format!("https://127.0.0.1:{port}/agent");
            let mbus = Mbus::new(&url, &password, &cert.ca)?;
            let (mut out, stalls) =
                super::once_more_after_stall(&format!("agent-check: boot {n}"), |retry| {
                    let attempt = if retry { "-after-stall" } else { "" };
                    self.boot_once(n, attempt, port, &mbus, &agent_id)
                })?;
            out.stalls = stalls;
            if let Some(first) = outcomes.first() {
                let first: &BootOutcome = first;
                if first.layout != out.layout {
                    return Err(BootError::Check(format!(
                        "boot {n} changed the ephemeral disk: before {}, after {}",
                        first.layout.describe(),
                        out.layout.describe()
                    )));
                }
            }
            outcomes.push(out);
        }
        Ok(outcomes)
    }

    /// The work directory's copy of the stemcell's image, with the settings written in.
    fn root_copy(&self) -> PathBuf {
        self.work.join("root.img")
    }

    fn ephemeral_disk(&self) -> PathBuf {
        self.work.join("ephemeral.img")
    }

    fn boot_once(
        &self,
        n: usize,
        attempt: &str,
        port: u16,
        mbus: &Mbus,
        agent_id: &str,
    ) -> Result<BootOutcome, BootError> {
        let mut spec = self.boot.clone();
        spec.image = Some(self.root_copy());
        let ephemeral = self.ephemeral_disk();
        spec.image_writable = true;
        spec.serial_log = Some(self.work.join(format!("serial-boot{n}{attempt}.log")));
        let eph = ephemeral
            .to_str()
            .filter(|p| !p.contains(','))
            .ok_or_else(|| {
                BootError::Check(format!(
                    "{}: QEMU needs a UTF-8 path without commas",
                    ephemeral.display()
                ))
            })?;
        spec.extra_args.extend([
            "-device".into(),
            "usb-hub".into(),
            "-netdev".into(),
            format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{MBUS_PORT}"),
            "-device".into(),
            "usb-net,netdev=n0".into(),
            "-drive".into(),
            format!("if=none,id=eph,file={eph},format=raw"),
            "-device".into(),
            "usb-storage,drive=eph".into(),
        ]);
        eprintln!(
            "agent-check: boot {n}: {} on {} (mbus forwarded to 127.0.0.1:{port})",
            spec.qemu, spec.machine
        );
        let started = Instant::now();
        let mut qemu = Qemu::start(&spec)?;
        let deadline = qemu.deadline();
        let mut seen: Vec<(String, f64)> = Vec::new();
        let waiting = "the agent to answer ping on its mbus";
        let mut next_try = started + Duration::from_secs(20);
        let secs_to_ping = loop {
            qemu.console().poll(waiting, next_try.min(deadline))?;
            self.note_milestones(qemu.console().text(), started, &mut seen);
            if Instant::now() >= deadline {
                return Err(BootError::Timeout {
                    waiting_for: waiting.into(),
                    tail: qemu.console().tail(),
                });
            }
            qemu.console().check_stall(waiting)?;
            if Instant::now() >= next_try {
                next_try = Instant::now() + Duration::from_secs(5);
                if let Some(pong) = mbus.call_within("ping", json!([]), PING_TIMEOUT)? {
                    if pong != "pong" {
                        return Err(BootError::Check(format!("ping answered {pong}")));
                    }
                    break started.elapsed().as_secs_f64();
                }
            }
        };
        eprintln!("agent-check: boot {n}: ping answered after {secs_to_ping:.0} s");
        // get_state may lag behind ping while the agent finishes its bootstrap
        let state = loop {
            match mbus.call("get_state", json!(["full"])) {
                Ok(Some(s)) if s["vitals"]["disk"].get("ephemeral").is_some() => break s,
                Ok(_) | Err(BootError::Check(_)) if Instant::now() < deadline => {
                    qemu.console()
                        .poll(waiting, Instant::now() + Duration::from_secs(5))?;
                }
                Ok(Some(s)) => {
                    return Err(BootError::Check(format!(
                        "get_state reports no ephemeral disk mounted at /var/vcap/data: {s}"
                    )));
                }
                Ok(None) => return Err(BootError::Check("get_state: no answer".into())),
                Err(e) => return Err(e),
            }
        };
        self.note_milestones(qemu.console().text(), started, &mut seen);
        if state["agent_id"] != agent_id {
            return Err(BootError::Check(format!(
                "get_state: agent_id {} is not ours ({agent_id})",
                state["agent_id"]
            )));
        }
        if state["job_state"] != "running" {
            return Err(BootError::Check(format!(
                "get_state: job_state {} (want \"running\")",
                state["job_state"]
            )));
        }
        // the power cut
        drop(qemu);
        let layout = DiskLayout::read(&ephemeral)?.ok_or_else(|| {
            BootError::Check("the ephemeral disk has no partition table after boot".into())
        })?;
        if layout.data_partition().is_none() {
            return Err(BootError::Check(format!(
                "the ephemeral disk is not swap + ext4 data: {}",
                layout.describe()
            )));
        }
        Ok(BootOutcome {
            secs_to_ping,
            milestones: seen,
            state,
            layout,
            stalls: 0,
        })
    }

    fn note_milestones(&self, text: &str, started: Instant, seen: &mut Vec<(String, f64)>) {
        for (step, needle) in &self.milestones {
            if !seen.iter().any(|(s, _)| s == step) && text.contains(needle.as_str()) {
                seen.push((step.clone(), started.elapsed().as_secs_f64()));
            }
        }
    }
}

/// A TLS client that trusts the check's CA (the mbus certificate names 127.0.0.1 and
/// `mbus`, which `resolve_mbus` points at an address).
fn client(
    ca_pem: &str,
    resolve_mbus: Option<std::net::SocketAddr>,
) -> Result<reqwest::blocking::Client, BootError> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| BootError::Check(format!("mbus CA: {e}")))?;
    let builder = reqwest::blocking::Client::builder();
    let builder = match resolve_mbus {
        Some(addr) => builder.resolve("mbus", addr),
        None => builder,
    };
    builder
        .add_root_certificate(ca)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BootError::Check(format!("mbus client: {e}")))
}

fn free_loopback_port() -> Result<u16, BootError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BootError::Start(format!("no free loopback port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BootError::Start(e.to_string()))
}
