//! Boots Debian's Raspberry Pi kernel (armel `linux-image-rpi`) on QEMU's emulated Pi Zero
//! with a tiny busybox initramfs: proves the DTB patch and the console harness without a
//! full bake. The kernel, device tree and busybox come from the Debian archive once per
//! target directory (`mmdebstrap --variant=extract`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use baker::bootcheck::{self, BootError, BootSpec, Qemu};

struct Kit {
    kernel: PathBuf,
    dtb: PathBuf,
    busybox: PathBuf,
}

/// Kernel, Pi Zero DTB and static busybox for armel, fetched once and kept in the target dir.
fn kit() -> Kit {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("armel-boot-kit");
    let kit = Kit {
        kernel: dir.join("vmlinuz"),
        dtb: dir.join("bcm2835-rpi-zero.dtb"),
        busybox: dir.join("busybox"),
    };
    if kit.kernel.is_file() && kit.dtb.is_file() && kit.busybox.is_file() {
        return kit;
    }
    let parent = dir.parent().unwrap();
    fs::create_dir_all(parent).unwrap();
    let work = tempfile::tempdir_in(parent).unwrap();
    let tarball = work.path().join("extract.tar");
    let out = Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--variant=extract",
            "--arch=armel",
            "--include=linux-image-rpi,busybox-static",
            "bookworm",
        ])
        .arg(&tarball)
        .output()
        .expect("mmdebstrap (scripts/install-prereqs.sh installs it)");
    assert!(
        out.status.success(),
        "mmdebstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let staged = work.path().join("kit");
    fs::create_dir(&staged).unwrap();
    let tar = std::io::BufReader::new(fs::File::open(&tarball).unwrap());
    baker::archive::scan(tar, |path, data| {
        let name = path.rsplit('/').next().unwrap_or("");
        let to = if path.starts_with("boot/vmlinuz-") {
            "vmlinuz"
        } else if name == "bcm2835-rpi-zero.dtb" {
            "bcm2835-rpi-zero.dtb"
        } else if path == "bin/busybox" {
            "busybox"
        } else {
            return;
        };
        let dest = staged.join(to);
        std::io::copy(data, &mut fs::File::create(&dest).unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
    })
    .unwrap();
    // another test process may have won the race; its kit is as good as ours
    let _ = fs::rename(&staged, &dir);
    assert!(kit.kernel.is_file() && kit.dtb.is_file() && kit.busybox.is_file());
    kit
}

/// A newc cpio archive (the initramfs format) of directories, files and one device node.
struct Cpio(Vec<u8>, u32);

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.1 += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.1,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(0);
        self.pad();
        self.0.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.0
    }
}

fn initramfs(kit: &Kit, init: &str, dest: &Path) {
    let mut c = Cpio(Vec::new(), 0);
    for d in ["bin", "dev", "proc", "sys"] {
        c.entry(d, 0o040755, (0, 0), &[]);
    }
    c.entry("dev/console", 0o020600, (5, 1), &[]);
    c.entry(
        "bin/busybox",
        0o100755,
        (0, 0),
        &fs::read(&kit.busybox).unwrap(),
    );
    c.entry("init", 0o100755, (0, 0), init.as_bytes());
    fs::File::create(dest)
        .unwrap()
        .write_all(&c.finish())
        .unwrap();
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "PIFOUNDRY-INITRAMFS-UP machine=$(uname -m)"
echo "PIFOUNDRY-CPU $(grep -m1 'model name' /proc/cpuinfo)"
mount -t sysfs sys /sys
echo "PIFOUNDRY-BOARD $(tr -d '\000' < /sys/firmware/devicetree/base/model)"
echo "PIFOUNDRY-READY-FOR-INPUT"
read line
echo "GOT: $line"
poweroff -f
"#;

fn spec(kit: &Kit, initrd: &Path) -> BootSpec {
    let mut spec = BootSpec::new(&kit.kernel, &kit.dtb);
    spec.initrd = Some(initrd.to_path_buf());
    spec.append = "console=ttyAMA0 panic=1 rdinit=/init".into();
    spec.timeout = Duration::from_secs(180);
    spec
}

#[test]
fn busybox_initramfs_boots_on_an_emulated_pi_zero_and_answers_the_console() {
    let kit = kit();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(&kit, INIT, &initrd);
    let mut spec = spec(&kit, &initrd);
    spec.serial_log = Some(dir.path().join("serial.log"));

    let mut qemu = Qemu::start(&spec).unwrap();
    let deadline = qemu.deadline();
    let con = qemu.console();
    let up = con.wait_for("PIFOUNDRY-INITRAMFS-UP", deadline).unwrap();
    assert!(up.ends_with("machine=armv6l"), "{up}");
    let cpu = con.wait_for("PIFOUNDRY-CPU", deadline).unwrap();
    assert!(cpu.contains("ARMv6-compatible processor"), "{cpu}");
    let board = con.wait_for("PIFOUNDRY-BOARD", deadline).unwrap();
    assert!(board.contains("Raspberry Pi Zero"), "{board}");
    con.wait_for("PIFOUNDRY-READY-FOR-INPUT", deadline).unwrap();
    con.send_line("hello-from-the-harness").unwrap();
    con.wait_for("GOT: hello-from-the-harness", deadline)
        .unwrap();
    qemu.wait_exit().expect("poweroff -f makes QEMU exit 0");
    let log = fs::read_to_string(dir.path().join("serial.log")).unwrap();
    assert!(
        log.contains("PIFOUNDRY-INITRAMFS-UP"),
        "serial log misses the marker"
    );
}

#[test]
fn a_guest_panic_is_reported_with_the_console_tail() {
    let kit = kit();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    // init exits at once: "Attempted to kill init", and panic=1 with -no-reboot ends QEMU
    initramfs(
        &kit,
        "#!/bin/busybox sh\necho PIFOUNDRY-DYING\nexit 3\n",
        &initrd,
    );
    let spec = spec(&kit, &initrd);
    let started = Instant::now();
    let err = bootcheck::check_stemcell(&spec, &["never-printed".to_string()]).unwrap_err();
    match &err {
        BootError::Guest { what, tail, .. } => {
            assert!(what.contains("Kernel panic"), "{err}");
            assert!(what.contains("Attempted to kill init"), "{err}");
            assert!(!tail.is_empty(), "{err}");
        }
        BootError::ConsoleClosed { tail, .. } => {
            assert!(tail.contains("Kernel panic"), "{err}")
        }
        other => panic!("expected a guest failure, got {other}"),
    }
    assert!(err.to_string().contains("never-printed"), "{err}");
    eprintln!("panic noticed after {:?}", started.elapsed());
}

#[test]
fn the_dtb_patch_drops_the_asb_register_and_is_idempotent() {
    let kit = kit();
    let dir = tempfile::tempdir().unwrap();
    let once = dir.path().join("once.dtb");
    let twice = dir.path().join("twice.dtb");
    bootcheck::dtb::patch_for_qemu(&kit.dtb, &once).unwrap();
    bootcheck::dtb::patch_for_qemu(&once, &twice).unwrap();
    assert_eq!(fs::read(&once).unwrap(), fs::read(&twice).unwrap());
    let get = |prop: &str, ty: &str| {
        let out = Command::new("fdtget")
            .args(["-t", ty])
            .arg(&once)
            .args(["/soc/watchdog@7e100000", prop])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(get("reg", "x"), "7e100000 114");
    assert_eq!(get("reg-names", "s"), "pm");
    // the original is untouched
    let stock = Command::new("fdtget")
        .args(["-t", "s"])
        .arg(&kit.dtb)
        .args(["/soc/watchdog@7e100000", "reg-names"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&stock.stdout).trim(), "pm asb");
}

#[test]
fn a_file_that_is_not_a_device_tree_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.dtb");
    fs::write(&bogus, b"not a device tree").unwrap();
    let err = bootcheck::dtb::patch_for_qemu(&bogus, &dir.path().join("out.dtb")).unwrap_err();
    assert!(err.to_string().contains("bogus.dtb"), "{err}");
    assert!(
        err.to_string().contains("not a BCM2835 device tree"),
        "{err}"
    );
}

/// An init that plays a stemcell's part on the console: the agent marker, a login prompt
/// and the report line, then power-off.
fn fake_stemcell_init(agent_state: &str) -> String {
    format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\n\
         echo 'PIFOUNDRY-AGENT-STARTED stub goarch=arm goarm=6'\n\
         echo 'Debian GNU/Linux 12 pi0 ttyAMA0'\necho\necho -n 'pi0 login: '\nsleep 1\necho\n\
         echo 'PIFOUNDRY-BOOTCHECK agent={agent_state} agent_pid=42 system=running failed=none arch='$(uname -m)\n\
         poweroff -f\n"
    )
}

fn baker_boot_check(kit: &Kit, initrd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_baker"))
        .args([
            "boot-check",
            "--timeout",
            "240",
            "--stall",
            "60",
            "--kernel",
        ])
        .arg(&kit.kernel)
        .arg("--dtb")
        .arg(&kit.dtb)
        .arg("--initrd")
        .arg(initrd)
        .args(["--append", "console=ttyAMA0 panic=1 rdinit=/init"])
        .output()
        .unwrap()
}

#[test]
fn boot_check_cli_passes_when_init_reports_the_agent_active() {
    let kit = kit();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(&kit, &fake_stemcell_init("active"), &initrd);
    let out = baker_boot_check(&kit, &initrd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("seen: PIFOUNDRY-AGENT-STARTED stub goarch=arm goarm=6"),
        "{stdout}"
    );
    assert!(stdout.contains("seen: pi0 login:"), "{stdout}");
    assert!(stdout.contains("agent=active"), "{stdout}");
    assert!(stdout.contains("arch=armv6l"), "{stdout}");
    assert!(stdout.contains("boot-check: OK"), "{stdout}");
}

#[test]
fn boot_check_cli_fails_when_the_agent_unit_is_not_active() {
    let kit = kit();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(&kit, &fake_stemcell_init("failed"), &initrd);
    let out = baker_boot_check(&kit, &initrd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("init did not start the agent: bosh-agent.service is \"failed\""),
        "{stderr}"
    );
}

#[test]
fn a_silent_guest_counts_as_stalled_long_before_the_timeout() {
    let kit = kit();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    initramfs(
        &kit,
        "#!/bin/busybox sh\necho PIFOUNDRY-GOING-QUIET\nexec /bin/busybox sleep 1000\n",
        &initrd,
    );
    let spec = spec(&kit, &initrd);
    let mut qemu = Qemu::start(&spec).unwrap();
    let deadline = qemu.deadline();
    // booting may pause for a while on a loaded machine; only the silence after the
    // marker is the stall under test
    qemu.console()
        .wait_for("PIFOUNDRY-GOING-QUIET", deadline)
        .unwrap();
    qemu.console().set_stall(Duration::from_secs(8));
    let err = qemu
        .console()
        .wait_for("never-printed", deadline)
        .unwrap_err();
    assert!(
        matches!(err, BootError::Stalled { secs: 8, .. }),
        "expected a stall, got {err}"
    );
    assert!(err.to_string().contains("PIFOUNDRY-GOING-QUIET"), "{err}");
}
