//! Expect-style driving of a guest's serial console over QEMU's stdio: a reader thread
//! copies every byte to an optional log file and to the checker, which waits for text with
//! a deadline, types lines, and notices when QEMU exits.

use std::fs::File;
use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
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
    /// Output as the reader thread received it, with when it arrived.
    chunks: Receiver<(Instant, Vec<u8>)>,
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
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
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
        self.take_arrived();
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
    /// time (`waiting_for` names what the caller awaits). Counts what arrived while the
    /// caller was busy elsewhere (an mbus call that hangs for a minute), so only the
    /// guest's own silence is a stall.
    pub fn check_stall(&mut self, waiting_for: &str) -> Result<(), BootError> {
        self.take_arrived();
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
            Ok((at, bytes)) => self.push(at, &bytes),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.closed = true,
        }
        self.take_arrived();
    }

    /// Takes in, without waiting, whatever output has arrived.
    fn take_arrived(&mut self) {
        loop {
            match self.chunks.try_recv() {
                Ok((at, bytes)) => self.push(at, &bytes),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    fn push(&mut self, at: Instant, bytes: &[u8]) {
        self.last_output = at;
        self.text.extend(
            String::from_utf8_lossy(bytes)
                .chars()
                .filter(|&c| c != '\r'),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    fn console_of(script: &str, stall: Duration) -> (Child, Console) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let out = child.stdout.take().expect("piped");
        let input = child.stdin.take().expect("piped");
        (child, Console::attach(out, input, None, stall))
    }

    #[test]
    fn output_that_arrived_while_the_caller_was_busy_is_no_stall() {
        let (mut child, mut console) = console_of(
            "while :; do echo tick; sleep 0.1; done",
            Duration::from_secs(1),
        );
        // the caller is away (an mbus call hanging) for longer than the stall time
        thread::sleep(Duration::from_millis(1500));
        let checked = console.check_stall("ticks");
        child.kill().ok();
        child.wait().ok();
        checked.expect("the guest kept printing: no stall");
        assert!(console.seen("tick"));
    }

    #[test]
    fn a_silent_guest_is_a_stall_even_if_the_caller_never_waited() {
        let (mut child, mut console) =
            console_of("echo hello; exec sleep 30", Duration::from_secs(1));
        thread::sleep(Duration::from_millis(1500));
        let checked = console.check_stall("anything");
        child.kill().ok();
        child.wait().ok();
        match checked {
            Err(BootError::Stalled { tail, .. }) => assert!(tail.contains("hello"), "{tail}"),
            other => panic!("want Stalled, got {other:?}"),
        }
    }

    #[test]
    fn poll_past_its_deadline_still_takes_in_what_arrived() {
        let (mut child, mut console) =
            console_of("echo ready; exec sleep 30", Duration::from_secs(60));
        thread::sleep(Duration::from_millis(500));
        let polled = console.poll("ready", Instant::now());
        child.kill().ok();
        child.wait().ok();
        polled.unwrap();
        assert!(console.seen("ready"));
    }
}
