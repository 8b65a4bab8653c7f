//! The `detached` supervisor and what both supervisors share: the qemu-nbd command line, and
//! reading a process's liveness, start time and listening sockets from `/proc`.
//!
//! A detached export is a qemu-nbd in its own session (setsid), so no signal meant for powerd
//! (a terminal's, SIGKILL of powerd, systemd stopping powerd — unless its unit's KillMode
//! reaches it, see README) stops it; powerd finds it again by pid and start time.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use pifoundry_util::error::at;

use super::BlockError;
use super::image::format_name;
use super::state::Entry;

/// How long a new qemu-nbd may take to listen, and a stopping one to exit before SIGKILL.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// qemu-nbd's arguments for an export (after the program). The systemd unit's `ExecStart`
/// spells out the same options with the values of the instance's env file (tested).
pub fn qemu_nbd_args(name: &str, e: &Entry) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        format!("--bind={}", e.host),
        format!("--port={}", e.port),
        format!("--export-name={name}"),
        format!("--format={}", format_name(e.format)),
        // a Pi that lost power never closes its connection: its next boot is a second client
        format!("--shared={}", e.shared),
        "--persistent".into(),
        "--cache=writeback".into(),
        "--aio=threads".into(),
        "--discard=unmap".into(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(e.file.clone().into_os_string());
    args
}

/// Starts qemu-nbd in a session of its own, its output appended to `log`.
pub fn spawn(qemu_nbd: &Path, name: &str, e: &Entry, log: &Path) -> Result<Child, BlockError> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(at(log))?;
    let err = out.try_clone().map_err(at(log))?;
    let mut cmd = Command::new(qemu_nbd);
    cmd.args(qemu_nbd_args(name, e))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    cmd.spawn()
        .map_err(|e| BlockError::export(name, format!("{}: cannot start: {e}", qemu_nbd.display())))
}

/// Waits until `pid` listens on `port`; an exit before that is an error carrying its log.
pub fn wait_listening(
    name: &str,
    pid: u32,
    port: u16,
    mut exited: impl FnMut() -> bool,
    log: &Path,
) -> Result<(), BlockError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if listens(pid, port) {
            return Ok(());
        }
        if exited() || !alive(pid) {
            let said = std::fs::read(log).unwrap_or_default();
            return Err(BlockError::export(
                name,
                format!("qemu-nbd exited: {}", pifoundry_util::tool::tail(&said)),
            ));
        }
        if Instant::now() > deadline {
            return Err(BlockError::export(
                name,
                format!(
                    "qemu-nbd (pid {pid}) did not listen on port {port} within {START_TIMEOUT:?}"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/proc/PID/stat`: the state letter and the start time (field 22).
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, t)| t)
}

/// Alive: present and not a zombie or dead.
pub fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// The recorded process is still the one that was started (same pid and start time).
pub fn is_same(pid: u32, start: Option<u64>) -> bool {
    alive(pid) && start.is_some() && start_time(pid) == start
}

/// Whether the process owns a TCP socket listening on `port` (in its own network namespace).
pub fn listens(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let lport = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *st == "0A" && lport == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
            .unwrap_or(false)
    })
}

/// SIGTERM to the process group (qemu-nbd flushes and exits), SIGKILL after a grace period.
/// `reap` waits for the process when it is our child.
pub fn stop(pid: u32, mut reap: impl FnMut() -> bool) {
    let pgid = Pid::from_raw(pid as i32);
    if killpg(pgid, Signal::SIGTERM).is_err() {
        let _ = kill(pgid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if reap() || !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = kill(pgid, Signal::SIGKILL);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while alive(pid) && !reap() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds a qemu-nbd serving export `name` by its command line (an export recorded as an
/// intent whose pid was never written).
pub fn find_by_export_name(name: &str) -> Option<u32> {
    let needle = format!("--export-name={name}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes())
            .then_some(pid)
    })
}
