//! `baker boot-check`: boot a baked image under QEMU and check it (see the module docs).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{AGENT_MARKER, BootSpec, check_stemcell};

/// Boot an image on an emulated Pi Zero and check that init started the agent.
#[derive(Debug, clap::Args)]
pub struct BootCheckArgs {
    /// A bake output directory holding root.img and boot/ (kernel, initrd, DTBs)
    #[arg(long, conflicts_with_all = ["image", "kernel", "initrd", "dtb"])]
    pub bake_dir: Option<PathBuf>,
    /// Raw disk image attached as the SD card (never written)
    #[arg(long, requires_all = ["kernel", "dtb"])]
    pub image: Option<PathBuf>,
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// The board's stock device tree (bcm2835-rpi-zero.dtb); it is patched for QEMU
    #[arg(long)]
    pub dtb: Option<PathBuf>,
    /// Seconds for the whole check, boot to power-off
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Seconds of console silence after which the guest counts as stalled (retried once)
    #[arg(long, default_value_t = 120)]
    pub stall: u64,
    /// Console text that must appear (repeatable)
    #[arg(long = "expect", default_values_t = [AGENT_MARKER.to_string(), "login:".to_string()])]
    pub expect: Vec<String>,
    /// Kernel command line instead of the SD-card default
    #[arg(long)]
    pub append: Option<String>,
    /// Write the raw serial console output here
    #[arg(long)]
    pub serial_log: Option<PathBuf>,
    #[arg(long, default_value = "raspi0")]
    pub machine: String,
}

pub fn run(args: &BootCheckArgs) -> anyhow::Result<()> {
    let mut spec = match (&args.bake_dir, &args.kernel, &args.dtb) {
        (Some(dir), _, _) => BootSpec::from_bake_dir(dir)?,
        (None, Some(kernel), Some(dtb)) => {
            let mut s = BootSpec::new(kernel, dtb);
            s.initrd = args.initrd.clone();
            s.image = args.image.clone();
            s
        }
        _ => bail!("boot-check: give --bake-dir, or --kernel and --dtb (with --image, --initrd)"),
    };
    spec.machine = args.machine.clone();
    spec.timeout = Duration::from_secs(args.timeout);
    spec.stall = Duration::from_secs(args.stall);
    spec.serial_log = args.serial_log.clone();
    if let Some(a) = &args.append {
        spec.append = a.clone();
    }
    eprintln!(
        "boot-check: {} on {} (timeout {} s)",
        spec.image.as_ref().unwrap_or(&spec.kernel).display(),
        spec.machine,
        args.timeout
    );
    let report = check_stemcell(&spec, &args.expect).context("boot-check")?;
    for m in &report.markers {
        println!("seen: {m}");
    }
    let fields: Vec<String> = report
        .report
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("report: {}", fields.join(" "));
    println!(
        "boot-check: OK; report after {:.0} s, powered off after {:.0} s",
        report.secs_to_report, report.secs_total
    );
    Ok(())
}
