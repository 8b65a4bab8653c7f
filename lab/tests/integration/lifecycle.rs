//! The lab's plumbing with a stand-in image whose kernel is not one: powerd powers a Pi
//! through the lab's outlet, the power-on script fetches exactly the VM's files over TFTP
//! and starts QEMU on the Pi's tap; power off kills it; `down` leaves nothing.

use std::time::Duration;

use pifoundry_lab::layout::{CONTROLLER, Lab, LabSpec};
use pifoundry_lab::{Console, netns, power, up::with_client};
use powerd_client::PowerState;
use powerd_client::provision::PiState;
use serde_json::json;

use crate::support::{TestLab, boot_image, create_body, unique_name};

#[test]
fn powerd_powers_a_virtual_pi_from_its_tftp_files_and_down_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let img = boot_image(tmp.path());
    let t = TestLab::up(2, Some(&img));
    let lab = t.lab.clone();
    let image = lab.image.clone().expect("up uploaded the image");
    assert!(netns::exists(&lab.netns));

    let pis = with_client(&lab, |c| Ok(c.pis()?)).unwrap();
    assert_eq!(pis.len(), 2);
    assert!(pis.iter().all(|p| p.state == PiState::Free), "{pis:?}");

    let vm = with_client(&lab, |c| {
        Ok(c.create_vm(&create_body(
            &image,
            "agent-a",
            16,
            json!({"agent_id": "agent-a", "networks": {"default": {"type": "dynamic"}}}),
        ))?)
    })
    .unwrap();
    let pi = lab.pi(&vm.pi).unwrap().clone();
    let pid = power::running(&lab, &pi.serial).expect("create powered the Pi on: QEMU runs");
    let qemu_args = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .replace('\0', " ");
    assert!(
        qemu_args.contains(&format!("ifname={}", pi.tap)),
        "{qemu_args}"
    );
    assert!(
        qemu_args.contains(&format!("mac={}", pi.mac)),
        "{qemu_args}"
    );

    // the files QEMU got are the image's, fetched under the Pi's serial
    let boot = lab.pi_dir(&pi.serial).join("boot");
    let kernel = std::fs::read(boot.join("vmlinuz-test")).unwrap();
    assert_eq!(
        kernel,
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read(boot.join("initrd.img-test")).unwrap(),
        vec![0x5a; 100_000]
    );
    assert!(boot.join("qemu.dtb").is_file());
    let cmdline = std::fs::read_to_string(boot.join("cmdline.txt")).unwrap();
    assert!(
        cmdline.contains(&format!("nbdroot={CONTROLLER}:")),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(&format!("ip={}::", vm.address)),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(&format!("BOOTIF=01-{}", pi.mac.replace(':', "-"))),
        "{cmdline}"
    );
    assert!(
        qemu_args.contains(cmdline.trim()),
        "QEMU runs the served command line: {qemu_args}"
    );

    // a kernel that is not one prints nothing: the boot is stuck in the kernel stage
    let mut console = Console::follow(&lab.console_log(&pi.serial));
    let err = console
        .wait_for("login:", &[], Duration::from_secs(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("stuck in stage kernel"), "{err}");

    // a Pi without a VM gets no files: its power-on fails at TFTP and says so
    let other = lab
        .pis
        .iter()
        .find(|p| p.serial != pi.serial)
        .unwrap()
        .clone();
    let err = with_client(&lab, |c| Ok(c.set_power(&other.outlet, PowerState::On)?)).unwrap_err();
    assert!(format!("{err:#}").contains("TFTP"), "{err:#}");
    assert!(power::running(&lab, &other.serial).is_none());
    let mut console = Console::follow(&lab.console_log(&other.serial));
    let err = console
        .wait_for("login:", &[], Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(err.contains("stuck in stage TFTP"), "{err}");

    // delete = power off: QEMU is killed, and the Pi is free again
    with_client(&lab, |c| Ok(c.delete_vm(&vm.id)?)).unwrap();
    assert!(power::running(&lab, &pi.serial).is_none());
    assert!(!power::alive(pid), "QEMU {pid} is dead");
    let freed = with_client(&lab, |c| Ok(c.pi(&pi.serial)?)).unwrap();
    assert_eq!(freed.state, PiState::Free);

    let dir = lab.dir.clone();
    drop(t);
    assert!(!netns::exists(&lab.netns), "down deleted the namespace");
    assert!(!dir.exists(), "down removed the lab's directory");
    pifoundry_lab::down::down(&dir).expect("down twice is fine");
}

#[test]
fn an_up_that_fails_halfway_takes_down_what_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = LabSpec::new(&unique_name(), tmp.path().join("lab"), 1).unwrap();
    spec.image = Some(tmp.path().join("no-such.img"));
    let err = pifoundry_lab::up::up(&spec).unwrap_err();
    assert!(format!("{err:#}").contains("no-such.img"), "{err:#}");
    assert!(
        !netns::exists(&Lab::netns_name(&spec.name)),
        "the namespace is gone"
    );
    assert!(!tmp.path().join("lab").exists(), "and the lab's directory");

    let again = pifoundry_lab::up::up(&spec);
    assert!(again.is_err());
    let mut busy = LabSpec::new(&unique_name(), tmp.path().join("busy"), 1).unwrap();
    std::fs::create_dir_all(&busy.dir).unwrap();
    std::fs::write(busy.dir.join("mine"), b"x").unwrap();
    busy.image = None;
    let err = pifoundry_lab::up::up(&busy).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
    assert!(
        busy.dir.join("mine").exists(),
        "a directory that was not the lab's is left alone"
    );
}
