//! The full proof: a baked stemcell image boots on QEMU's Pi Zero from its SD image to
//! userspace, init starts the agent, and the guest powers off. It needs a bake output
//! directory (`root.img`, `boot/`), which takes the stemcell bake minutes to make, so it
//! runs on request:
//!   PIFOUNDRY_BAKE_DIR=out cargo nextest run -p baker --run-ignored only -E 'test(baked)'
//! The bake's own end-to-end test calls the same `bootcheck::check_stemcell`.

use std::path::PathBuf;

use baker::bootcheck::{AGENT_MARKER, BootSpec, check_stemcell};

#[test]
#[ignore = "needs a baked stemcell output dir in PIFOUNDRY_BAKE_DIR"]
fn a_baked_stemcell_boots_and_init_starts_the_agent() {
    let dir = PathBuf::from(
        std::env::var_os("PIFOUNDRY_BAKE_DIR").expect("set PIFOUNDRY_BAKE_DIR to a bake's -o dir"),
    );
    let mut spec = BootSpec::from_bake_dir(&dir).unwrap();
    spec.serial_log = Some(dir.join("boot-check-serial.log"));
    let report = check_stemcell(&spec, &[AGENT_MARKER.into(), "login:".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.report["agent"], "active");
    assert_eq!(report.report["arch"], "armv6l");
    assert_eq!(report.report["root"], "/dev/mmcblk0p2");
    // the FAT32 boot partition the image builder wrote mounts in the guest
    assert_eq!(report.report["boot"], "/dev/mmcblk0p1:vfat");
    assert_eq!(report.report["system"], "running", "{:?}", report.report);
    assert!(
        report.markers[0].contains("goarm=6"),
        "{:?}",
        report.markers
    );
    eprintln!(
        "report after {:.0} s, off after {:.0} s: {:?}",
        report.secs_to_report, report.secs_total, report.report
    );
}
