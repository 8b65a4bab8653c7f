//! A virtual Pi's serial console, read from its log while it boots: wait for a line, and
//! when it does not come, say which stage of a netboot the Pi got stuck in.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::power::POWER_ON_FAILED;

/// The stages of a netboot, in order; each is reached when its console mark shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BootStage {
    /// The power-on script fetching the boot files from powerd.
    Tftp,
    /// QEMU started the kernel.
    Kernel,
    /// The initramfs connecting the root export.
    NbdConnect,
    /// Mounting the root file system from the export.
    RootMount,
    /// systemd and the services before the agent.
    Userspace,
    /// The agent started.
    Agent,
}

impl BootStage {
    /// The console text that shows a stage was reached (the kernel's, Debian's nbd
    /// initramfs script's, systemd's and the agent's own lines).
    const MARKS: [(BootStage, &'static [&'static str]); 5] = [
        (BootStage::Kernel, &["Booting Linux", "Linux version"]),
        (BootStage::NbdConnect, &["nbd0: p1 p2", "Negotiation:"]),
        (BootStage::RootMount, &["EXT4-fs (nbd0p2): mounted"]),
        (BootStage::Userspace, &["Welcome to", "systemd[1]"]),
        (BootStage::Agent, &[baker::bootcheck::AGENT_MARKER]),
    ];

    /// The last stage whose mark `text` holds (`Tftp` when none).
    pub fn reached(text: &str) -> BootStage {
        Self::MARKS
            .iter()
            .rev()
            .find(|(_, marks)| marks.iter().any(|m| text.contains(m)))
            .map_or(BootStage::Tftp, |(s, _)| *s)
    }

    /// The stage a boot that reached `self` is stuck in.
    fn stuck_in(self, text: &str) -> BootStage {
        if text.starts_with(POWER_ON_FAILED) || text.is_empty() {
            return if text.is_empty() {
                BootStage::Kernel
            } else {
                BootStage::Tftp
            };
        }
        match self {
            BootStage::Tftp => BootStage::Kernel,
            BootStage::Kernel => BootStage::NbdConnect,
            BootStage::NbdConnect => BootStage::RootMount,
            BootStage::RootMount => BootStage::Userspace,
            BootStage::Userspace | BootStage::Agent => BootStage::Agent,
        }
    }
}

impl fmt::Display for BootStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BootStage::Tftp => "TFTP",
            BootStage::Kernel => "kernel",
            BootStage::NbdConnect => "NBD connect",
            BootStage::RootMount => "root mount",
            BootStage::Userspace => "userspace",
            BootStage::Agent => "agent",
        })
    }
}

/// Follows one console log from its start (or from `from`).
pub struct Console {
    path: PathBuf,
    text: String,
    read: u64,
    started: Instant,
}

impl Console {
    pub fn follow(path: &Path) -> Console {
        Console {
            path: path.to_path_buf(),
            text: String::new(),
            read: 0,
            started: Instant::now(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Seconds since `follow`.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Reads what the console printed since the last read.
    pub fn refresh(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.read {
            // a new boot replaced the log
            (self.read, self.text) = (0, String::new());
        }
        if f.seek(SeekFrom::Start(self.read)).is_ok() {
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_ok() {
                self.read += buf.len() as u64;
                self.text.push_str(&String::from_utf8_lossy(&buf));
            }
        }
    }

    /// The first line holding `needle`, waiting until `timeout` has passed since `follow`.
    /// A line holding any of `fatal` ends the wait early as a failure.
    pub fn wait_for(&mut self, needle: &str, fatal: &[&str], timeout: Duration) -> Result<String> {
        loop {
            self.refresh();
            if let Some(line) = self.text.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if let Some(line) = self
                .text
                .lines()
                .find(|l| fatal.iter().any(|f| l.contains(f)))
            {
                bail!(
                    "{}: the boot failed in stage {} ({line:?}) while waiting for {needle:?}; console ended with:\n{}",
                    self.path.display(),
                    self.stage(),
                    self.tail()
                );
            }
            if self.started.elapsed() >= timeout {
                bail!(
                    "{}: no {needle:?} after {} s: the boot is stuck in stage {}; console ended with:\n{}",
                    self.path.display(),
                    timeout.as_secs(),
                    self.stage(),
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The stage the boot is in now.
    pub fn stage(&self) -> BootStage {
        BootStage::reached(&self.text).stuck_in(&self.text)
    }

    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_is_the_one_after_the_last_mark() {
        let at = |t: &str| BootStage::reached(t).stuck_in(t);
        assert_eq!(at(""), BootStage::Kernel);
        assert_eq!(
            at("PIFOUNDRY-LAB-POWER-ON failed: TFTP: tftp://…"),
            BootStage::Tftp
        );
        assert_eq!(
            at("[0.0] Booting Linux on physical CPU 0x0\n"),
            BootStage::NbdConnect
        );
        assert_eq!(at("Booting Linux\nnbd0: p1 p2\n"), BootStage::RootMount);
        assert_eq!(
            at("Booting Linux\nnbd0: p1 p2\nEXT4-fs (nbd0p2): mounted filesystem\n"),
            BootStage::Userspace
        );
        assert_eq!(at("Welcome to Debian\n"), BootStage::Agent);
        assert_eq!(BootStage::NbdConnect.to_string(), "NBD connect");
    }
}
