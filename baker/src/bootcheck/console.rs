//! Expect-style driving of a guest's serial console over QEMU's stdio: a reader thread
//! copies every byte to an optional log file and to the checker, which waits for text with
//! a deadline, types lines, and notices when QEMU exits.

use std::fs::File;
use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::BootError;

/// Console text the kernel prints when the guest is beyond saving.
const FATAL: &[&str] = &[
    "Kernel panic - not syncing",
    "Reboot failed -- System halted",
];

pub struct Console {
    input: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    /// Everything seen so far, `\r` removed.
    text: String,
    closed: bool,
    last_output: Instant,
    /// Silence longer than this is a stalled guest.
    stall: Duration,
}

impl Console {
    pub(super) fn attach(
        stdout: ChildStdout,
        stdin: ChildStdin,
        log: Option<File>,
        stall: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut stdout = stdout;
            let mut log = log;
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Some(f) = log.as_mut() {
                            let _ = f.write_all(&buf[..n]);
                        }
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self {
            input: Some(stdin),
            chunks: rx,
            text: String::new(),
            closed: false,
            last_output: Instant::now(),
            stall,
        }
    }

    /// Changes how long a silent console may last before it counts as a stalled guest, e.g.
    /// shorter once the guest has reached a point where it prints regularly.
    pub fn set_stall(&mut self, stall: Duration) {
        self.stall = stall;
    }

    /// All console output so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `needle` has appeared anywhere on the console so far.
    pub fn seen(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }

    /// Waits until `needle` has appeared (at any time since boot) and returns the whole
    /// line it is on. Fails on the deadline, when QEMU closes the console, or at a panic.
    pub fn wait_for(&mut self, needle: &str, deadline: Instant) -> Result<String, BootError> {
        loop {
            if let Some(pos) = self.text.find(needle) {
                return Ok(self.line_at(pos, deadline));
            }
            if let Some(pos) = FATAL.iter().filter_map(|f| self.text.find(f)).min() {
                return Err(BootError::Guest {
                    waiting_for: needle.to_owned(),
                    what: self.line_at(pos, deadline),
                    tail: self.tail(),
                });
            }
            if self.closed {
                return Err(BootError::ConsoleClosed {
                    waiting_for: needle.to_owned(),
                    tail: self.tail(),
                });
            }
            if Instant::now() >= deadline {
                return Err(BootError::Timeout {
                    waiting_for: needle.to_owned(),
                    tail: self.tail(),
                });
            }
            self.check_stall(needle)?;
            self.pump(deadline.min(self.last_output + self.stall));
        }
    }

    /// Reads console output until `until`; fails as [`Self::wait_for`] does when the guest
    /// panicked or QEMU closed the console (`waiting_for` names what the caller awaits).
    pub fn poll(&mut self, waiting_for: &str, until: Instant) -> Result<(), BootError> {
        loop {
            if let Some(pos) = FATAL.iter().filter_map(|f| self.text.find(f)).min() {
                return Err(BootError::Guest {
                    waiting_for: waiting_for.to_owned(),
                    what: self.line_at(pos, until),
                    tail: self.tail(),
                });
            }
            if self.closed {
                return Err(BootError::ConsoleClosed {
                    waiting_for: waiting_for.to_owned(),
                    tail: self.tail(),
                });
            }
            if Instant::now() >= until {
                return Ok(());
            }
            self.pump(until);
        }
    }

    /// The whole console line around byte `pos`. The line may still be arriving, so give it
    /// until its newline or a moment (a second: the emulated UART is slow under load).
    fn line_at(&mut self, pos: usize, deadline: Instant) -> String {
        let end_wait = Instant::now() + Duration::from_secs(1);
        while !self.text[pos..].contains('\n') && !self.closed && Instant::now() < end_wait {
            self.pump(end_wait.min(deadline));
        }
        let start = self.text[..pos].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i);
        self.text[start..end].trim_end().to_owned()
    }

    /// Types `line` and a newline on the guest console.
    pub fn send_line(&mut self, line: &str) -> Result<(), BootError> {
        let input = self
            .input
            .as_mut()
            .ok_or_else(|| BootError::ConsoleClosed {
                waiting_for: format!("to type {line:?}"),
                tail: String::new(),
            })?;
        input
            .write_all(format!("{line}\r").as_bytes())
            .and_then(|()| input.flush())
            .map_err(|_| BootError::ConsoleClosed {
                waiting_for: format!("to type {line:?}"),
                tail: self.tail(),
            })
    }

    /// Reads until QEMU closes its end of the console or the deadline passes.
    pub(super) fn drain(&mut self, deadline: Instant) {
        self.input = None;
        while !self.closed && Instant::now() < deadline {
            self.pump(deadline);
        }
    }

    /// Fails with [`BootError::Stalled`] once the guest has printed nothing for the stall
    /// time (`waiting_for` names what the caller awaits).
    pub fn check_stall(&self, waiting_for: &str) -> Result<(), BootError> {
        if self.last_output.elapsed() >= self.stall {
            return Err(BootError::Stalled {
                waiting_for: waiting_for.to_owned(),
                secs: self.stall.as_secs(),
                tail: self.tail(),
            });
        }
        Ok(())
    }

    /// The last lines of console output, for error messages.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n  ")
    }

    fn pump(&mut self, deadline: Instant) {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(wait) {
            Ok(bytes) => self.push(&bytes),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.closed = true,
        }
        while let Ok(bytes) = self.chunks.try_recv() {
            self.push(&bytes);
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.last_output = Instant::now();
        self.text.extend(
            String::from_utf8_lossy(bytes)
                .chars()
                .filter(|&c| c != '\r'),
        );
    }
}
