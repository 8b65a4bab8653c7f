//! QEMU 7.2's raspi0 does not emulate the BCM2835 ASB block at 0x7e00a000, and Debian's
//! kernel oopses in `bcm2835_power_probe` reading it, then panics with no serial output.
//! Dropping the `asb` register from the power-management (watchdog) node of a copy of the
//! device tree avoids the probe of that block; real Pis keep the stock DTB.

use pifoundry_util::BadInput;
use std::fs;
use std::path::Path;
use std::process::Command;

use pifoundry_util::tool;

use super::BootError;

const PM_NODE: &str = "/soc/watchdog@7e100000";

/// Writes to `dest` a copy of the Pi Zero / Pi 1 device tree `src` that boots under QEMU.
/// Patching an already patched tree gives the same bytes.
pub fn patch_for_qemu(src: &Path, dest: &Path) -> Result<(), BootError> {
    fs::copy(src, dest).map_err(pifoundry_util::error::at(src))?;
    let node = tool::run(
        Command::new("fdtget")
            .arg("-t")
            .arg("s")
            .arg(dest)
            .arg(PM_NODE)
            .arg("compatible"),
        None,
    )
    .map_err(|e| {
        BootError::Input(BadInput::new(
            src.to_path_buf(),
            format!("not a BCM2835 device tree ({PM_NODE}: {})", e.detail),
        ))
    })?;
    let compatible = String::from_utf8_lossy(&node.stdout);
    if !compatible.contains("bcm2835-pm") {
        return Err(BootError::Input(BadInput::new(
            src.to_path_buf(),
            format!("{PM_NODE} is {:?}, not brcm,bcm2835-pm", compatible.trim()),
        )));
    }
    tool::run(
        Command::new("fdtput")
            .args(["-t", "x"])
            .arg(dest)
            .args([PM_NODE, "reg", "7e100000", "114"]),
        None,
    )?;
    tool::run(
        Command::new("fdtput")
            .args(["-t", "s"])
            .arg(dest)
            .args([PM_NODE, "reg-names", "pm"]),
        None,
    )?;
    Ok(())
}
