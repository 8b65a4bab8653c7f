//! What a Pi's GPU firmware does before the ARM core runs, which QEMU cannot: read the Pi's
//! `config.txt` and fetch the command line, kernel, initramfs and device tree it names, all
//! over TFTP from the boot server, under the Pi's serial.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use pifoundry_util::tool;

/// The files `config.txt` names for a Pi Zero (the `[all]`, `[pi0]` and unconditional
/// sections; every other board's section is skipped, as the firmware does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    pub kernel: String,
    pub initramfs: Option<String>,
    pub device_tree: String,
}

/// A Pi Zero's device tree: the upstream kernel's name when `upstream_kernel=1`, else the
/// Raspberry Pi kernel's.
const PI0_UPSTREAM_DTB: &str = "bcm2835-rpi-zero.dtb";
const PI0_DOWNSTREAM_DTB: &str = "bcm2708-rpi-zero.dtb";

pub fn parse_config(text: &str) -> Result<BootConfig> {
    let mut applies = true;
    let (mut kernel, mut initramfs, mut dtb, mut upstream) = (None, None, None, false);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            applies = matches!(section, "all" | "pi0");
            continue;
        }
        if !applies {
            continue;
        }
        if let Some(rest) = line.strip_prefix("initramfs ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if name.is_empty() {
                bail!("config.txt line {}: `initramfs` names no file", n + 1);
            }
            initramfs = Some(name.to_owned());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "kernel" => kernel = Some(value.trim().to_owned()),
            "device_tree" => dtb = Some(value.trim().to_owned()),
            "upstream_kernel" => upstream = value.trim() == "1",
            _ => {}
        }
    }
    Ok(BootConfig {
        kernel: kernel.context("config.txt names no kernel (kernel=)")?,
        initramfs,
        device_tree: dtb.unwrap_or_else(|| {
            if upstream {
                PI0_UPSTREAM_DTB
            } else {
                PI0_DOWNSTREAM_DTB
            }
            .to_owned()
        }),
    })
}

/// The files of one boot, fetched into a directory.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub cmdline: String,
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub dtb: PathBuf,
}

/// Fetches `SERIAL/config.txt`, `SERIAL/cmdline.txt` and what the config names from the
/// TFTP server `server` into `into`, with curl (a real TFTP client, 8 KiB blocks).
pub fn fetch(server: &str, serial: &str, into: &Path) -> Result<Fetched> {
    std::fs::create_dir_all(into).with_context(|| format!("{}", into.display()))?;
    let get = |name: &str| -> Result<PathBuf> {
        let dest = into.join(name.replace('/', "_"));
        let url = format!("tftp://{server}/{serial}/{name}");
        tool::run(
            Command::new("curl")
                .args([
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "120",
                    "--tftp-blksize",
                    "8192",
                ])
                .arg("--output")
                .arg(&dest)
                .arg(&url),
            None,
        )
        .with_context(|| format!("TFTP: {url}"))?;
        Ok(dest)
    };
    let config_path = get("config.txt")?;
    let config = std::fs::read_to_string(&config_path)
        .with_context(|| format!("TFTP: {serial}/config.txt is not text"))?;
    let config = parse_config(&config).with_context(|| format!("TFTP: {serial}/config.txt"))?;
    let cmdline_path = get("cmdline.txt")?;
    let cmdline = std::fs::read_to_string(&cmdline_path)
        .with_context(|| format!("TFTP: {serial}/cmdline.txt is not text"))?
        .trim()
        .to_owned();
    Ok(Fetched {
        cmdline,
        kernel: get(&config.kernel)?,
        initramfs: config.initramfs.as_deref().map(get).transpose()?,
        dtb: get(&config.device_tree)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_of_other_boards_are_skipped() {
        let c = parse_config(
            "enable_uart=1\nupstream_kernel=1\nkernel=vmlinuz-6.1\ninitramfs initrd.img-6.1 followkernel\n[pi4]\nkernel=kernel8.img\n[all]\ngpu_mem=16 # headless\n",
        )
        .unwrap();
        assert_eq!(
            c,
            BootConfig {
                kernel: "vmlinuz-6.1".into(),
                initramfs: Some("initrd.img-6.1".into()),
                device_tree: "bcm2835-rpi-zero.dtb".into()
            }
        );
    }

    #[test]
    fn a_config_without_kernel_is_an_error() {
        let e = parse_config("[pi0]\ninitramfs x\n").unwrap_err();
        assert!(e.to_string().contains("kernel="), "{e}");
        let c = parse_config("kernel=k\ndevice_tree=my.dtb\n").unwrap();
        assert_eq!(c.device_tree, "my.dtb");
        assert_eq!(
            parse_config("kernel=k\n").unwrap().device_tree,
            "bcm2708-rpi-zero.dtb"
        );
    }
}
