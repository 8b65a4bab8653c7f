//! `pifoundry-lab pi-power on|off|status`: powerd's `command` outlets for the virtual Pis.
//! On fetches the boot files over TFTP the way the Pi's firmware would and starts QEMU on
//! the Pi's tap, detached (powerd's command returns; the Pi keeps running); off kills it
//! with SIGKILL, the emulated pulled plug: no clean NBD disconnect.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::bootfiles;
use crate::layout::{CONTROLLER, Lab, NBD_PORTS};
use crate::netns;

pub const QEMU: &str = "qemu-system-arm";
/// The first line of a console log whose power-on failed before QEMU ran.
pub const POWER_ON_FAILED: &str = "PIFOUNDRY-LAB-POWER-ON failed";

pub fn on(lab: &Lab, key: &str) -> Result<()> {
    let pi = lab.pi(key)?.clone();
    if running(lab, &pi.serial).is_some() {
        return Ok(());
    }
    let dir = lab.pi_dir(&pi.serial);
    let boot = dir.join("boot");
    let _ = fs::remove_dir_all(&boot);
    fs::create_dir_all(&boot).with_context(|| format!("{}", boot.display()))?;
    let console = lab.console_log(&pi.serial);
    keep_previous_console(&console)?;
    let started = start(lab, &pi.serial, &pi.mac, &pi.tap, &boot, &console);
    if let Err(e) = &started {
        // the console log is where every boot failure is read from
        let _ = fs::write(&console, format!("{POWER_ON_FAILED}: {e:#}\n"));
    }
    started
}

fn start(lab: &Lab, serial: &str, mac: &str, tap: &str, boot: &Path, console: &Path) -> Result<()> {
    let files = netns::within(&lab.netns, || {
        bootfiles::fetch(&CONTROLLER.to_string(), serial, boot)
    })?;
    let dtb = boot.join("qemu.dtb");
    baker::bootcheck::dtb::patch_for_qemu(&files.dtb, &dtb)
        .with_context(|| format!("kernel: the device tree {}", files.dtb.display()))?;
    if let Some(addr) = cmdline_address(&files.cmdline) {
        count_nbd_bytes(lab, serial, &addr)?;
    }
    let dir = lab.pi_dir(serial);
    let log =
        fs::File::create(dir.join("qemu.log")).with_context(|| format!("{}", dir.display()))?;
    let mut cmd = netns::command(&lab.netns, "timeout");
    let life = lab.vm_life_secs.map_or("0".to_owned(), |s| format!("{s}s"));
    cmd.args(["--signal=KILL", &life, QEMU, "-M", "raspi0"])
        .arg("-kernel")
        .arg(&files.kernel)
        .arg("-dtb")
        .arg(&dtb)
        .arg("-append")
        .arg(&files.cmdline)
        .args([
            "-netdev",
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ])
        .args(["-device", &format!("usb-net,netdev=n0,mac={mac}")])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()));
    if let Some(initrd) = &files.initramfs {
        cmd.arg("-initrd").arg(initrd);
    }
    use std::os::unix::process::CommandExt;
    let child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {QEMU}"))?;
    let pid = child.id() as i32;
    pifoundry_util::atomic::write(dir.join("qemu.pid"), format!("{pid}\n").as_bytes())?;
    // a QEMU that refuses its arguments (no tap, bad kernel path) exits at once
    std::thread::sleep(Duration::from_millis(500));
    if !alive(pid) {
        let said = fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
        bail!("{QEMU} exited at once: {}", said.trim());
    }
    Ok(())
}

pub fn off(lab: &Lab, key: &str) -> Result<()> {
    let pi = lab.pi(key)?;
    let pid_file = lab.pi_dir(&pi.serial).join("qemu.pid");
    if let Some(pid) = running(lab, &pi.serial) {
        let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        let until = Instant::now() + Duration::from_secs(20);
        while alive(pid) {
            if Instant::now() > until {
                bail!(
                    "{QEMU} (pid {pid}) of Pi {} did not die of SIGKILL",
                    pi.serial
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = fs::remove_file(pid_file);
    Ok(())
}

/// QEMU's pid while the Pi runs.
pub fn running(lab: &Lab, serial: &str) -> Option<i32> {
    let text = fs::read_to_string(lab.pi_dir(serial).join("qemu.pid")).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    // the pid is ours only while the process still runs QEMU (or the timeout around it)
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = String::from_utf8_lossy(&cmdline).contains(QEMU);
    (ours && alive(pid)).then_some(pid)
}

/// Running and not a zombie waiting for a parent that is gone.
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn keep_previous_console(console: &Path) -> Result<()> {
    if !console.exists() {
        return Ok(());
    }
    let dir = console.parent().expect("console.log has a directory");
    let n = (1..)
        .find(|n| !dir.join(format!("console-{n}.log")).exists())
        .expect("a free number");
    fs::rename(console, dir.join(format!("console-{n}.log")))
        .with_context(|| format!("{}", console.display()))
}

/// `ip=ADDR::…` of a command line.
pub fn cmdline_address(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .and_then(|v| v.split(':').next())
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned)
}

pub const NFT_TABLE: &str = "pifoundry-lab";

/// The bytes the controller sent a Pi from its NBD ports, counted by nftables in the
/// namespace (`nft list counter inet pifoundry-lab nbd_SERIAL`): what a boot costs the
/// controller's network, whatever the hardware. Reset at every power-on.
fn count_nbd_bytes(lab: &Lab, serial: &str, addr: &str) -> Result<()> {
    let (lo, hi) = NBD_PORTS;
    let nft = |script: String| {
        pifoundry_util::tool::run(
            netns::command(&lab.netns, "nft").args(["-f", "-"]),
            Some(script.as_bytes()),
        )
        .context("nft: the NBD byte counter")
    };
    // a counter is reset only once it exists: two transactions
    nft(format!(
        "table inet {NFT_TABLE} {{\n  counter nbd_{serial} {{ }}\n  chain out {{ type filter hook output priority 0; policy accept; }}\n}}\n\
         flush chain inet {NFT_TABLE} out\n"
    ))?;
    let mut rules = format!("reset counter inet {NFT_TABLE} nbd_{serial}\n");
    let mut counted = counted_addresses(lab)?;
    counted.retain(|(other, _)| other != serial);
    counted.push((serial.to_owned(), addr.to_owned()));
    for (pi, pi_addr) in counted {
        rules.push_str(&format!(
            "add rule inet {NFT_TABLE} out ip daddr {pi_addr} tcp sport {lo}-{hi} counter name nbd_{pi}\n"
        ));
    }
    nft(rules)?;
    let record = lab.pi_dir(serial).join("address");
    pifoundry_util::atomic::write(&record, addr.as_bytes())?;
    Ok(())
}

fn counted_addresses(lab: &Lab) -> Result<Vec<(String, String)>> {
    Ok(lab
        .pis
        .iter()
        .filter_map(|p| {
            fs::read_to_string(lab.pi_dir(&p.serial).join("address"))
                .ok()
                .map(|a| (p.serial.clone(), a.trim().to_owned()))
        })
        .collect())
}

/// Bytes counted since the Pi's last power-on.
pub fn nbd_bytes(lab: &Lab, serial: &str) -> Result<u64> {
    let out = pifoundry_util::tool::run(
        netns::command(&lab.netns, "nft").args([
            "-j",
            "list",
            "counter",
            "inet",
            NFT_TABLE,
            &format!("nbd_{serial}"),
        ]),
        None,
    )?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("nft -j: not JSON")?;
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|e| e["counter"]["bytes"].as_u64()))
        .context("nft -j list counter: no byte count")
}
