//! Two virtual Pis netboot the CI stemcell from powerd: no SD card, the root on each VM's
//! NBD export (a qcow2 overlay of the one stemcell image), the ephemeral disk over NBD by the
//! attach helper, the settings over powerd's HTTP source. One VM is made through powerd's
//! API, the other through the real CPI binary, as a director would (cpi.rs).
//!
//! **The agent in this stemcell is NOT the BOSH agent**: CI bakes `ci-armv6l.yml`, whose
//! agent is the stand-in in `tests/fixtures/agent-stub` (CI cannot fetch bosh-agent). The
//! stand-in fetches its settings as bosh-agent's HTTP source does, runs the stemcell's
//! `restart_networking` for its dynamic network (on the interface the root depends on),
//! answers the HTTPS mbus and shows the settings document it got. The real agent on the
//! same lab is checked by hand (README, "The virtual Pi lab").
//!
//! Cold, the bake takes many minutes; it shares the stage cache of baker's bake test.

use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use baker::bootcheck::agent::Mbus;
use baker::bootcheck::settings::{MBUS_PORT, MbusCert, random_hex, settings};
use pifoundry_lab::layout::{CONTROLLER, HTTP_PORT, Lab};
use pifoundry_lab::power::{self, POWER_ON_FAILED};
use pifoundry_lab::{Console, netns, up::with_client};
use powerd_client::provision::Vm;
use serde_json::{Value, json};

use crate::cpi::{Cpi, unpack_stemcell};
use crate::support::{TestLab, bake_ci_stemcell, create_body};

/// Console lines that end a wait at once.
const FATAL: [&str; 4] = [
    "Kernel panic",
    POWER_ON_FAILED,
    "ROOT-WRITABLE failed",
    "PIFOUNDRY-AGENT-STOPPED",
];
const BOOT: Duration = Duration::from_secs(1200);

/// A VM whose stand-in agent the test talks to.
struct Agent {
    id: String,
    vm: Vm,
    console: Console,
    mbus: SocketAddr,
    password: String,
    ca: String,
}

impl Agent {
    fn new(lab: &Lab, id: &str, vm: Vm, console: Console, password: &str, ca: &str) -> Agent {
        assert!(lab.pis.iter().any(|p| p.serial == vm.pi), "{vm:?}");
        Agent {
            id: id.to_owned(),
            mbus: SocketAddr::new(vm.address.parse().unwrap(), MBUS_PORT),
            vm,
            console,
            password: password.to_owned(),
            ca: ca.to_owned(),
        }
    }

    fn call(&self, lab: &Lab, method: &str, args: Value) -> Value {
        let (addr, pw, ca) = (self.mbus, self.password.clone(), self.ca.clone());
        let method = method.to_owned();
        netns::within(&lab.netns, move || {
            let mbus = Mbus::at(addr, &pw, &ca)?;
            // mount_disk formats a fresh disk over the Pi's slow link: longer than one
            // call's limit (the stand-in answers a repeat with the first reply)
            let until = Instant::now() + Duration::from_secs(300);
            loop {
                if let Some(v) = mbus.call(&method, args.clone())? {
                    return Ok(v);
                }
                anyhow::ensure!(
                    Instant::now() < until,
                    "mbus {method} at {addr}: no answer in 300 s"
                );
                std::thread::sleep(Duration::from_secs(2));
            }
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn wait(&mut self, needle: &str) -> String {
        self.console
            .wait_for(needle, &FATAL, BOOT)
            .unwrap_or_else(|e| panic!("{}: {e:#}", self.id))
    }

    /// Waits for the stand-in's whole bootstrap; returns seconds to agent start and the
    /// bytes the Pi's exports sent it by then.
    fn boots(&mut self, lab: &Lab, boot_n: u32) -> (f64, u64) {
        self.wait(baker::bootcheck::AGENT_MARKER);
        let secs = self.console.elapsed();
        let bytes = power::nbd_bytes(lab, &self.vm.pi).unwrap();
        self.wait(&format!("PIFOUNDRY-STAND-IN-BOOT n={boot_n}"));
        let line = self.wait("PIFOUNDRY-STAND-IN-SETTINGS");
        assert!(
            line.contains(&format!("source=HTTP agent_id={} ", self.id)),
            "{} got another VM's settings: {line}",
            self.id
        );
        // the dynamic network ran restart_networking on the interface the root is on
        self.wait("PIFOUNDRY-STAND-IN-NETWORK interface=usb0 dhcp=yes");
        self.wait("PIFOUNDRY-STAND-IN-ROOT-WRITABLE ok");
        let disk = self.wait("PIFOUNDRY-STAND-IN-DISK device=/dev/nbd1");
        assert!(disk.contains("data=/dev/nbd1p2"), "{disk}");
        self.wait("PIFOUNDRY-STAND-IN-MBUS listening");
        assert_eq!(self.call(lab, "ping", json!([])), json!("pong"));
        (secs, bytes)
    }

    /// mount_disk, the files the disk held before the stand-in wrote its own, unmount_disk.
    fn store_files(&self, lab: &Lab, disk: &str) -> Vec<String> {
        let v = self.call(lab, "mount_disk", json!([disk]));
        let mut files: Vec<String> =
            serde_json::from_value(v["stand_in"]["store_files"].clone()).unwrap();
        files.sort();
        self.call(lab, "unmount_disk", json!([disk]));
        files
    }

    /// The line holding `needle`, which must be on the console already (a short grace for
    /// QEMU to write the serial log).
    fn printed(&mut self, needle: &str) -> bool {
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            self.console.refresh();
            if self.console.text().lines().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn two_virtual_pis_netboot_one_through_the_cpi_share_a_disk_and_keep_their_roots_across_a_power_cycle()
 {
    let tmp = tempfile::tempdir().unwrap();
    let out = bake_ci_stemcell(tmp.path());
    let (image, props) = unpack_stemcell(&out, tmp.path());
    assert_eq!(props["architecture"], "armv6l", "{props}");
    let t = TestLab::up(2, None);
    let lab = t.lab.clone();
    let cert = MbusCert::generate().unwrap();
    let (pw_a, pw_b) = (random_hex().unwrap(), random_hex().unwrap());
    let mbus_b = format!("https://mbus:{pw_b}@0.0.0.0:{MBUS_PORT}");
    let cpi = Cpi::new(&lab, tmp.path(), &mbus_b);

    let (stemcell, took) = cpi.call(
        "create_stemcell",
        json!([image.display().to_string(), props]),
    );
    let stemcell = stemcell.as_str().unwrap().to_owned();
    eprintln!("figure: cpi create_stemcell: {:.1} s", took.as_secs_f64());

    // Pi A through powerd's API
    let name_a = "agent-lab-a";
    let body = create_body(
        &stemcell,
        name_a,
        256,
        settings(name_a, &pw_a, &cert, "/dev/nbd1"),
    );
    let started = Instant::now();
    let vm = with_client(&lab, |c| Ok(c.create_vm(&body)?))
        .unwrap_or_else(|e| panic!("create {name_a}: {e:#}"));
    eprintln!(
        "figure: {name_a}: create_vm to powered on: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let console = Console::follow(&lab.console_log(&vm.pi));
    let mut a = Agent::new(&lab, name_a, vm, console, &pw_a, &cert.ca);

    // Pi B through the CPI, with what bosh-cli's create-env sends: a dynamic network, the
    // env carrying the mbus cert
    let name_b = "5a1e2f0c-cpi-lab-agent-b";
    let free = lab.pis.iter().find(|p| p.serial != a.vm.pi).unwrap();
    let console_b = Console::follow(&lab.console_log(&free.serial));
    let networks = json!({"default": {
        "type": "dynamic", "dns": [CONTROLLER], "default": ["dns", "gateway"], "cloud_properties": {}
    }});
    let env = json!({
        "bosh": {
            "mbus": {"cert": {"ca": cert.ca, "certificate": cert.certificate, "private_key": cert.private_key}},
            "password": "*",
            "tags": {"deployment": "lab", "director": "bosh-init"}
        },
        "persistent_disk_fs": ""
    });
    let (created, took) = cpi.call(
        "create_vm",
        json!([name_b, stemcell, {"ephemeral_disk_size": 256}, networks, [], env]),
    );
    eprintln!("figure: cpi create_vm: {:.2} s", took.as_secs_f64());
    let vm_b = created[0].as_str().unwrap().to_owned();
    assert_eq!(
        created[1], networks,
        "create_vm answers the networks it got"
    );
    let vm = with_client(&lab, |c| Ok(c.vm(&vm_b)?)).unwrap();
    assert_eq!(vm.pi, free.serial);
    let mut b = Agent::new(&lab, name_b, vm, console_b, &pw_b, &cert.ca);

    let (secs, bytes) = a.boots(&lab, 1);
    eprintln!(
        "figure: {name_a}: netboot to agent start {secs:.0} s, {bytes} bytes from its exports by then (two Pis booting)"
    );
    let (secs, bytes) = b.boots(&lab, 1);
    eprintln!(
        "figure: {name_b}: cpi create_vm to agent start {secs:.0} s, {bytes} bytes (two Pis booting)"
    );

    // B's agent got the settings the CPI built: its agent defaults, the director's env and
    // networks unchanged, the netboot's disk layout
    let state = b.call(&lab, "get_state", json!([]));
    let got = &state["stand_in"]["settings"];
    assert_eq!(got["agent_id"], name_b);
    assert_eq!(got["mbus"], mbus_b);
    assert_eq!(got["ntp"], json!([CONTROLLER]));
    assert_eq!(got["blobstore"]["provider"], "local");
    assert_eq!(got["env"], env, "env reaches the agent unchanged");
    assert_eq!(got["networks"]["default"]["type"], "dynamic");
    assert_eq!(got["networks"]["default"]["dns"], json!([CONTROLLER]));
    assert_eq!(got["disks"]["system"], "/dev/nbd0");
    assert_eq!(got["disks"]["ephemeral"]["path"], "/dev/nbd1");
    // and A's are its own
    let state = a.call(&lab, "get_state", json!([]));
    assert_eq!(state["stand_in"]["settings"]["agent_id"], name_a);

    a_stranger_on_the_pi_network_reads_nothing(&lab, &a);

    // a persistent disk through the CPI on B: attach_disk answers only once the device is on
    // the Pi (the attach helper prints it before it confirms to powerd)
    let (disk, _) = cpi.call("create_disk", json!([64, {}, vm_b]));
    let disk = disk.as_str().unwrap().to_owned();
    let (hint, took) = cpi.call("attach_disk", json!([vm_b, disk]));
    eprintln!("figure: cpi attach_disk: {:.2} s", took.as_secs_f64());
    let device = hint["path"].as_str().unwrap().to_owned();
    let on_b = format!("disk={disk} device={device}");
    assert!(
        b.printed(&format!("PIFOUNDRY-ATTACH connected {on_b}")),
        "attach_disk answered before {device} was on the Pi; console ended with:\n{}",
        b.console.tail()
    );
    assert_eq!(b.store_files(&lab, &disk), Vec::<String>::new());
    cpi.call("detach_disk", json!([vm_b, disk]));
    assert!(
        b.printed(&format!("PIFOUNDRY-ATTACH disconnected {on_b}")),
        "detach_disk answered before {device} was gone from the Pi"
    );

    // the same disk on A keeps B's data
    let att = with_client(&lab, |c| Ok(c.attach_disk(&disk, &a.vm.id)?))
        .unwrap_or_else(|e| panic!("attach: {e:#}"));
    assert!(att.device.starts_with("/dev/nbd"), "{att:?}");
    assert_eq!(a.store_files(&lab, &disk), [format!("written-by-{name_b}")]);
    with_client(&lab, |c| Ok(c.detach_disk(&disk)?)).unwrap_or_else(|e| panic!("detach: {e:#}"));

    // delete_vm ends B and drops its overlay and exports
    let export_b = root_export(&lab, &b.vm.pi).1;
    cpi.call("delete_vm", json!([vm_b]));
    assert_gone(&lab, &b.vm, &export_b);
    assert_eq!(cpi.call("has_vm", json!([vm_b])).0, json!(false));

    // a power cycle of A: the same root comes back, with what the first boot wrote on it
    with_client(&lab, |c| Ok(c.reboot_vm(&a.vm.id)?)).unwrap();
    a.console = Console::follow(&lab.console_log(&a.vm.pi));
    let (secs, bytes) = a.boots(&lab, 2);
    eprintln!("figure: {name_a}: second netboot to agent start {secs:.0} s, {bytes} bytes (alone)");
    with_client(&lab, |c| Ok(c.attach_disk(&disk, &a.vm.id)?)).unwrap();
    assert_eq!(
        a.store_files(&lab, &disk),
        [
            format!("written-by-{name_b}"),
            format!("written-by-{name_a}")
        ]
    );
    with_client(&lab, |c| Ok(c.detach_disk(&disk)?)).unwrap();

    let export_a = root_export(&lab, &a.vm.pi).1;
    with_client(&lab, |c| Ok(c.delete_vm(&a.vm.id)?)).unwrap();
    assert_gone(&lab, &a.vm, &export_a);
    cpi.call("delete_disk", json!([disk]));
    cpi.call("delete_stemcell", json!([stemcell]));
    assert!(with_client(&lab, |c| Ok(c.vms()?)).unwrap().is_empty());
    assert!(with_client(&lab, |c| Ok(c.images()?)).unwrap().is_empty());
}

/// A deleted VM: its Pi off, its overlay and its root export gone.
fn assert_gone(lab: &Lab, vm: &Vm, export: &str) {
    assert!(power::running(lab, &vm.pi).is_none(), "{} is off", vm.pi);
    assert!(
        !with_client(lab, |c| Ok(c.vms()?))
            .unwrap()
            .iter()
            .any(|v| v.id == vm.id)
    );
    let data = lab.powerd_dir().join("data/vms");
    let left: Vec<_> = fs::read_dir(&data)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left.iter().any(|n| n.to_string_lossy().contains(&vm.id)),
        "{left:?}"
    );
    let qemu_nbd = Command::new("pgrep")
        .args(["-af", "qemu-nbd"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&qemu_nbd.stdout).contains(export),
        "{}'s root export is stopped",
        vm.id
    );
}

/// `nbdroot=HOST:PORT/EXPORT` of the Pi's last boot.
fn root_export(lab: &Lab, serial: &str) -> (u16, String) {
    let cmdline = fs::read_to_string(lab.pi_dir(serial).join("boot/cmdline.txt")).unwrap();
    let root = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("nbdroot="))
        .unwrap();
    let (hostport, export) = root.split_once('/').unwrap();
    (
        hostport.rsplit_once(':').unwrap().1.parse().unwrap(),
        export.to_owned(),
    )
}

/// From an address on the Pi network that is no VM's: no settings, and the running Pi's
/// root export (right port, right name) refuses it.
fn a_stranger_on_the_pi_network_reads_nothing(lab: &Lab, a: &Agent) {
    let stranger = format!("{}-x", lab.netns);
    netns::create(&stranger).unwrap();
    let _gone = Gone(stranger.clone());
    netns::ip(&[
        "link", "add", "pfx0", "netns", &lab.netns, "type", "veth", "peer", "name", "eth0",
        "netns", &stranger,
    ])
    .unwrap();
    netns::ip_in(
        &lab.netns,
        &["link", "set", "pfx0", "master", "pfbr0", "up"],
    )
    .unwrap();
    netns::ip_in(
        &stranger,
        &["addr", "add", "10.231.0.250/24", "dev", "eth0"],
    )
    .unwrap();
    netns::ip_in(&stranger, &["link", "set", "eth0", "up"]).unwrap();
    let code = netns::command(&stranger, "curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .arg(format!("http://{CONTROLLER}:{HTTP_PORT}/latest/user-data"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&code.stdout),
        "404",
        "settings for a stranger"
    );
    let (port, export) = root_export(lab, &a.vm.pi);
    let read = netns::command(&stranger, "nbdinfo")
        .arg(format!("nbd://{CONTROLLER}:{port}/{export}"))
        .output()
        .unwrap();
    assert!(
        !read.status.success(),
        "a stranger read {}'s root export: {}",
        a.id,
        String::from_utf8_lossy(&read.stdout)
    );
}

struct Gone(String);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}
