//! Proof that a baked image boots: run it on an emulated Pi Zero (`qemu-system-arm -M
//! raspi0`, an ARM1176 like the real board), drive the serial console, and check that
//! userspace came up and that init started the agent, then let the guest power off.
//!
//! The stemcell carries `pifoundry-bootcheck.service`, which runs only when the kernel
//! command line has `pifoundry.bootcheck`: once the system has settled it prints one
//! `PIFOUNDRY-BOOTCHECK key=value…` line (agent unit state, system state, failed units,
//! machine) on the console and powers off.

pub mod agent;
pub mod agent_cli;
pub mod cli;
mod console;
pub mod disk_layout;
pub mod dtb;
mod qemu;
pub mod settings;

use pifoundry_util::BadInput;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use console::Console;
pub use qemu::Qemu;

use pifoundry_util::PathError;
use pifoundry_util::tool::ToolError;

/// Printed by the agent stand-in (and expected by default) when the agent starts.
pub const AGENT_MARKER: &str = "PIFOUNDRY-AGENT-STARTED";
/// Prefix of the report line of `pifoundry-bootcheck.service`.
pub const REPORT_MARKER: &str = "PIFOUNDRY-BOOTCHECK";
/// The command line of an SD-card boot plus the switch for the report unit.
pub const SD_APPEND: &str =
    "console=ttyAMA0 root=/dev/mmcblk0p2 rw rootwait panic=1 net.ifnames=0 pifoundry.bootcheck";

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Input(#[from] BadInput),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("cannot start QEMU: {0}")]
    Start(String),
    #[error("timed out waiting for {waiting_for:?}; console ended with:\n  {tail}")]
    Timeout { waiting_for: String, tail: String },
    #[error(
        "QEMU closed the console while waiting for {waiting_for:?}; console ended with:\n  {tail}"
    )]
    ConsoleClosed { waiting_for: String, tail: String },
    #[error(
        "guest failed ({what}) while waiting for {waiting_for:?}; console ended with:\n  {tail}"
    )]
    Guest {
        waiting_for: String,
        what: String,
        tail: String,
    },
    #[error(
        "guest stalled: no console output for {secs} s while waiting for {waiting_for:?}; console ended with:\n  {tail}"
    )]
    Stalled {
        waiting_for: String,
        secs: u64,
        tail: String,
    },
    #[error("QEMU exited with {status}; console ended with:\n  {tail}")]
    QemuExit { status: String, tail: String },
    #[error("boot check failed: {0}")]
    Check(String),
}

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// `qemu-system-arm`, or `qemu-system-aarch64` for the 64-bit boards.
    pub qemu: String,
    /// QEMU machine: `raspi0` (Pi Zero, ARM1176), `raspi1ap`, or `raspi3b` (aarch64).
    pub machine: String,
    pub kernel: PathBuf,
    /// The board's stock device tree; a patched copy is what QEMU gets.
    pub dtb: PathBuf,
    pub initrd: Option<PathBuf>,
    /// Raw whole-disk image, attached as the SD card (size a power of two). Never written
    /// (QEMU runs it as a snapshot) unless `image_writable`.
    pub image: Option<PathBuf>,
    pub image_writable: bool,
    pub append: String,
    /// For the whole check, boot to power-off.
    pub timeout: Duration,
    /// Console silence after which the guest counts as stalled.
    pub stall: Duration,
    /// Raw copy of everything the console printed.
    pub serial_log: Option<PathBuf>,
    pub extra_args: Vec<String>,
}

impl BootSpec {
    pub fn new(kernel: impl Into<PathBuf>, dtb: impl Into<PathBuf>) -> Self {
        Self {
            qemu: "qemu-system-arm".into(),
            machine: "raspi0".into(),
            kernel: kernel.into(),
            dtb: dtb.into(),
            initrd: None,
            image: None,
            image_writable: false,
            append: SD_APPEND.into(),
            timeout: Duration::from_secs(600),
            stall: Duration::from_secs(120),
            serial_log: None,
            extra_args: Vec::new(),
        }
    }

    /// The boot of a bake's output directory: `root.img`, `boot/vmlinuz-*`,
    /// `boot/initrd.img-*` and the Pi Zero device tree found under `boot/`.
    pub fn from_bake_dir(dir: &Path) -> Result<Self, BootError> {
        Self::from_bake_dir_for(dir, "raspi0")
    }

    /// As [`Self::from_bake_dir`], for a QEMU machine: `raspi0`/`raspi1ap` (armv6l) or
    /// `raspi3b` (arm64, on `qemu-system-aarch64`), each with its board's device tree.
    pub fn from_bake_dir_for(dir: &Path, machine: &str) -> Result<Self, BootError> {
        let (qemu, dtb_name) = match machine {
            "raspi0" => ("qemu-system-arm", "bcm2835-rpi-zero.dtb"),
            "raspi1ap" => ("qemu-system-arm", "bcm2835-rpi-a-plus.dtb"),
            "raspi3b" => ("qemu-system-aarch64", "bcm2837-rpi-3-b.dtb"),
            other => {
                return Err(BootError::Input(BadInput::new(
                    dir.to_path_buf(),
                    format!("machine `{other}`: use raspi0, raspi1ap or raspi3b"),
                )));
            }
        };
        let boot = dir.join("boot");
        let kernel = find_one(&boot, |n| n.starts_with("vmlinuz-"), "vmlinuz-*")?;
        let initrd = find_one(&boot, |n| n.starts_with("initrd.img-"), "initrd.img-*")?;
        let dtb = walkdir::WalkDir::new(&boot)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .find(|e| e.file_name() == dtb_name)
            .map(|e| e.into_path())
            .ok_or_else(|| {
                BootError::Input(BadInput::new(
                    boot.clone(),
                    format!("no {dtb_name} under it"),
                ))
            })?;
        let image = dir.join("root.img");
        if !image.is_file() {
            return Err(BootError::Input(BadInput::new(
                image,
                "no such file (the bake's disk image)",
            )));
        }
        let mut spec = Self::new(kernel, dtb);
        spec.qemu = qemu.into();
        spec.machine = machine.into();
        spec.initrd = Some(initrd);
        spec.image = Some(image);
        Ok(spec)
    }
}

fn find_one(dir: &Path, pred: impl Fn(&str) -> bool, what: &str) -> Result<PathBuf, BootError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(pifoundry_util::error::at(dir))?
        .filter_map(Result::ok)
        .filter(|e| pred(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        0 => Err(BootError::Input(BadInput::new(
            dir.to_path_buf(),
            format!("no {what} in it"),
        ))),
        _ => Err(BootError::Input(BadInput::new(
            dir.to_path_buf(),
            format!("more than one {what} in it; pass the files explicitly"),
        ))),
    }
}

/// What a successful stemcell boot showed.
#[derive(Debug, Clone)]
pub struct BootReport {
    /// Console lines that matched each expected marker, in order.
    pub markers: Vec<String>,
    /// The key=value fields of the report line.
    pub report: BTreeMap<String, String>,
    /// Seconds from QEMU start to the report line and to QEMU's exit.
    pub secs_to_report: f64,
    pub secs_total: f64,
}

/// Boots a stemcell image and checks it: every marker in `markers` must appear (the
/// agent's start, the login prompt), the report unit must find the agent unit active, and
/// the guest must power off so that QEMU exits 0.
///
/// Under a heavily loaded host an emulated Pi Zero has (twice, in the busybox test) stopped
/// for good early in the kernel's boot, while the same kernel and initramfs boot on the
/// next try; the cause is not pinned down. A console silent for `spec.stall` counts as
/// such a stall, and the boot is tried once more from scratch; a second stall fails.
pub fn check_stemcell(spec: &BootSpec, markers: &[String]) -> Result<BootReport, BootError> {
    once_more_after_stall("boot-check", |_| check_once(spec, markers)).map(|(report, _)| report)
}

/// Runs `boot`, and once more from scratch if it ends in [`BootError::Stalled`] (the
/// emulated console stall, see [`agent::STALL`]); a second stall fails. `boot` is told
/// whether it is the retry; the result comes with how many tries stalled (0 or 1).
pub(crate) fn once_more_after_stall<T>(
    who: &str,
    mut boot: impl FnMut(bool) -> Result<T, BootError>,
) -> Result<(T, u32), BootError> {
    match boot(false) {
        Err(BootError::Stalled {
            waiting_for,
            secs,
            tail,
        }) => {
            eprintln!(
                "{who}: STALLED, {secs} s without console output while waiting for {waiting_for:?} \
                 (see baker::bootcheck::agent::STALL for what stalls an emulated Pi); \
                 power-cycling once. Last output:\n  {tail}"
            );
            Ok((boot(true)?, 1))
        }
        other => other.map(|done| (done, 0)),
    }
}

fn check_once(spec: &BootSpec, markers: &[String]) -> Result<BootReport, BootError> {
    let started = Instant::now();
    let mut qemu = Qemu::start(spec)?;
    let deadline = qemu.deadline();
    let mut seen = Vec::new();
    for m in markers {
        seen.push(qemu.console().wait_for(m, deadline)?);
    }
    let line = qemu
        .console()
        .wait_for(&format!("{REPORT_MARKER} "), deadline)?;
    let secs_to_report = started.elapsed().as_secs_f64();
    let report = parse_report(&line);
    if report.get("agent").map(String::as_str) != Some("active") {
        return Err(BootError::Check(format!(
            "init did not start the agent: bosh-agent.service is {:?} ({line})",
            report.get("agent").map_or("not reported", String::as_str)
        )));
    }
    qemu.wait_exit()?;
    Ok(BootReport {
        markers: seen,
        report,
        secs_to_report,
        secs_total: started.elapsed().as_secs_f64(),
    })
}

/// `PIFOUNDRY-BOOTCHECK agent=active system=running …` → its fields.
pub fn parse_report(line: &str) -> BTreeMap<String, String> {
    let after = line
        .find(REPORT_MARKER)
        .map_or(line, |i| &line[i + REPORT_MARKER.len()..]);
    after
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_fields_are_parsed_after_the_marker() {
        let r = parse_report(
            "[  OK  ] x PIFOUNDRY-BOOTCHECK agent=active system=degraded failed=a.service,b.service arch=armv6l",
        );
        assert_eq!(r["agent"], "active");
        assert_eq!(r["system"], "degraded");
        assert_eq!(r["failed"], "a.service,b.service");
        assert_eq!(r["arch"], "armv6l");
    }

    #[test]
    fn a_bake_dir_without_a_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("boot")).unwrap();
        let err = BootSpec::from_bake_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no vmlinuz-* in it"), "{err}");
        assert!(
            err.to_string()
                .contains(&dir.path().join("boot").display().to_string())
        );
    }

    fn stalled() -> BootError {
        BootError::Stalled {
            waiting_for: "ping".into(),
            secs: 180,
            tail: "last line".into(),
        }
    }

    #[test]
    fn a_stalled_boot_is_tried_once_more_and_counted() {
        let mut tries = Vec::new();
        let (done, stalls) = once_more_after_stall("test", |retry| {
            tries.push(retry);
            if retry { Ok("up") } else { Err(stalled()) }
        })
        .unwrap();
        assert_eq!((done, stalls, tries), ("up", 1, vec![false, true]));
    }

    #[test]
    fn a_second_stall_fails_and_other_errors_are_not_retried() {
        let mut tries = 0;
        let err = once_more_after_stall("test", |_| -> Result<(), _> {
            tries += 1;
            Err(stalled())
        })
        .unwrap_err();
        assert!(
            matches!(err, BootError::Stalled { .. }) && tries == 2,
            "{err}"
        );

        let mut tries = 0;
        let err = once_more_after_stall("test", |_| -> Result<(), _> {
            tries += 1;
            Err(BootError::Check("no agent".into()))
        })
        .unwrap_err();
        assert!(matches!(err, BootError::Check(_)) && tries == 1, "{err}");

        let (_, stalls) = once_more_after_stall("test", |_| Ok(())).unwrap();
        assert_eq!(stalls, 0);
    }
}
