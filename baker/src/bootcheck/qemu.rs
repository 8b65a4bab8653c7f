//! One emulated Pi: `qemu-system-arm` under coreutils `timeout` (so that QEMU cannot
//! outlive a crashed checker), its serial console on stdio, the SD image as a throw-away
//! snapshot so the checked image is never written.

use pifoundry_util::BadInput;
use std::fs::File;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::console::Console;
use super::{BootError, BootSpec, dtb};

pub struct Qemu {
    child: Child,
    console: Console,
    deadline: Instant,
    _scratch: tempfile::TempDir,
}

impl Qemu {
    pub fn start(spec: &BootSpec) -> Result<Self, BootError> {
        for (what, path) in [("kernel", Some(&spec.kernel)), ("dtb", Some(&spec.dtb))]
            .into_iter()
            .chain([
                ("initrd", spec.initrd.as_ref()),
                ("image", spec.image.as_ref()),
            ])
        {
            if let Some(p) = path
                && !p.is_file()
            {
                return Err(BootError::Input(BadInput::new(
                    p.clone(),
                    format!("{what}: no such file"),
                )));
            }
        }
        let scratch =
            tempfile::tempdir().map_err(pifoundry_util::error::at(&std::env::temp_dir()))?;
        let dtb = scratch.path().join("qemu.dtb");
        dtb::patch_for_qemu(&spec.dtb, &dtb)?;

        let secs = spec.timeout.as_secs().max(1);
        let mut cmd = Command::new("timeout");
        // the outer limit a little past ours: it only fires if this process is gone
        cmd.args(["--kill-after=10", &format!("{}", secs + 30), &spec.qemu])
            .args(["-M", &spec.machine])
            .arg("-kernel")
            .arg(&spec.kernel)
            .arg("-dtb")
            .arg(&dtb)
            .arg("-append")
            .arg(&spec.append)
            .args([
                "-nographic",
                "-no-reboot",
                "-serial",
                "stdio",
                "-monitor",
                "none",
            ]);
        if let Some(initrd) = &spec.initrd {
            cmd.arg("-initrd").arg(initrd);
        }
        if let Some(img) = &spec.image {
            let path = img.to_str().ok_or_else(|| {
                BootError::Input(BadInput::new(img.clone(), "image path is not UTF-8"))
            })?;
            if path.contains(',') {
                return Err(BootError::Input(BadInput::new(
                    img.clone(),
                    "QEMU cannot take an image path with a comma",
                )));
            }
            let snapshot = if spec.image_writable { "off" } else { "on" };
            cmd.arg("-drive")
                .arg(format!("file={path},if=sd,format=raw,snapshot={snapshot}"));
        }
        cmd.args(&spec.extra_args);
        let log = match &spec.serial_log {
            Some(p) => Some(File::create(p).map_err(pifoundry_util::error::at(p))?),
            None => None,
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BootError::Start(format!("timeout {}: {e}", spec.qemu)))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take().expect("stdin is piped");
        Ok(Self {
            child,
            console: Console::attach(stdout, stdin, log, spec.stall),
            deadline: Instant::now() + spec.timeout,
            _scratch: scratch,
        })
    }

    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// The instant the whole boot check must be over by.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Waits for the guest to power off and QEMU to exit; fails unless it exits 0.
    pub fn wait_exit(&mut self) -> Result<ExitStatus, BootError> {
        self.console.drain(self.deadline);
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| BootError::Start(e.to_string()))?
            {
                if status.success() {
                    return Ok(status);
                }
                return Err(BootError::QemuExit {
                    status: status.to_string(),
                    tail: self.console.tail(),
                });
            }
            if Instant::now() >= self.deadline {
                self.stop();
                return Err(BootError::Timeout {
                    waiting_for: "the guest to power off".into(),
                    tail: self.console.tail(),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to `timeout`, which passes it on to QEMU; if that is not enough, SIGKILL to
    /// the process group `timeout` leads, which QEMU is in.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.stop();
    }
}
