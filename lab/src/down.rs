//! `pifoundry-lab down`: every process in the lab's namespace (virtual Pis, qemu-nbd
//! exports, powerd, dnsmasq) killed, the namespace (with its bridge, taps and nftables
//! rules) deleted, the lab's directory removed. Idempotent: a lab half made, half taken
//! down or already gone is fine.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::layout::{Lab, STATE_FILE};
use crate::{netns, power};

pub fn down(dir: &Path) -> Result<()> {
    if !dir.join(STATE_FILE).exists() {
        return Ok(());
    }
    let lab = Lab::load(
        &dir.canonicalize()
            .with_context(|| format!("{}", dir.display()))?,
    )?;
    for pi in &lab.pis {
        power::off(&lab, &pi.serial)?;
    }
    if netns::exists(&lab.netns) {
        // powerd first and gently (it saves its state); then whatever is left, by force
        stop(&lab.netns, Signal::SIGTERM, Duration::from_secs(10));
        stop(&lab.netns, Signal::SIGKILL, Duration::from_secs(10));
        let left: Vec<i32> = netns::pids(&lab.netns)
            .into_iter()
            .filter(|p| power::alive(*p))
            .collect();
        if !left.is_empty() {
            bail!(
                "processes {left:?} in network namespace {} survived SIGKILL",
                lab.netns
            );
        }
        netns::delete(&lab.netns)?;
    }
    std::fs::remove_dir_all(&lab.dir).with_context(|| format!("removing {}", lab.dir.display()))
}

fn stop(ns: &str, signal: Signal, wait: Duration) {
    for pid in netns::pids(ns) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
    let until = Instant::now() + wait;
    while netns::pids(ns).iter().any(|p| power::alive(*p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}
