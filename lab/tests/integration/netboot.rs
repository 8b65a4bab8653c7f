//! A virtual Pi netboots the CI stemcell from powerd: no SD card, the root on the VM's NBD
//! export (a qcow2 overlay of the stemcell's image), the ephemeral disk over NBD by the
//! attach helper, the settings over powerd's HTTP source.
//!
//! **The agent in this stemcell is NOT the BOSH agent**: CI bakes `ci-armv6l.yml`, whose
//! agent is the stand-in in `tests/fixtures/agent-stub` (CI cannot fetch bosh-agent). The
//! stand-in fetches its settings as bosh-agent's HTTP source does, runs the stemcell's
//! `restart_networking` for its dynamic network (on the interface the root depends on),
//! and answers the HTTPS mbus. The real agent on the same lab is checked by hand
//! (README, "The virtual Pi lab").
//!
//! Cold, the bake takes many minutes; it shares the stage cache of baker's bake test.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use baker::bake::{self, BakeOptions};
use baker::blobs::NoBlobs;
use baker::bootcheck::agent::Mbus;
use baker::bootcheck::settings::{MBUS_PORT, MbusCert, random_hex, settings};
use baker::recipe::stemcell::StemcellRecipe;
use pifoundry_lab::layout::{CONTROLLER, HTTP_PORT, Lab};
use pifoundry_lab::power::{self, POWER_ON_FAILED};
use pifoundry_lab::{Console, netns, up::with_client};
use powerd_client::provision::{CreateDisk, DiskFormat, Vm};
use serde_json::{Value, json};

use crate::support::{TestLab, create_body};

/// Console lines that end a wait at once.
const FATAL: [&str; 4] = [
    "Kernel panic",
    POWER_ON_FAILED,
    "ROOT-WRITABLE failed",
    "PIFOUNDRY-AGENT-STOPPED",
];
const BOOT: Duration = Duration::from_secs(1200);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// baker's bake test's cache, so a CI run bakes the stemcell's slow stages once.
fn cache_dir(fallback: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("PIFOUNDRY_STAGE_CACHE").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let shared = PathBuf::from("/var/cache/pifoundry/stages");
    if fs::create_dir_all(&shared).is_ok() && tempfile::tempfile_in(&shared).is_ok() {
        return shared;
    }
    fallback.to_path_buf()
}

fn bake_ci_stemcell(tmp: &Path) -> PathBuf {
    let recipe_path = repo().join("recipes/stemcells/ci-armv6l.yml");
    let recipe = StemcellRecipe::load(&recipe_path).unwrap();
    let out = tmp.join("out");
    let opts = BakeOptions {
        recipe_path: recipe_path.clone(),
        project_root: bake::project_root_of(&recipe_path),
        cache_dir: cache_dir(&tmp.join("stages")),
        out_dir: out.clone(),
        from: None,
    };
    bake::bake(&recipe, &opts, &NoBlobs).unwrap_or_else(|e| panic!("bake: {e:#}"));
    out
}

struct Agent {
    vm: Vm,
    console: Console,
    mbus: SocketAddr,
}

fn create(lab: &Lab, image: &str, agent: &str, pw: &str, cert: &MbusCert) -> (Vm, f64) {
    let body = create_body(image, agent, 256, settings(agent, pw, cert, "/dev/nbd1"));
    let started = Instant::now();
    let vm = with_client(lab, |c| Ok(c.create_vm(&body)?))
        .unwrap_or_else(|e| panic!("create {agent}: {e:#}"));
    (vm, started.elapsed().as_secs_f64())
}

fn call(lab: &Lab, a: &Agent, pw: &str, ca: &str, method: &str, args: Value) -> Value {
    let (addr, pw, ca) = (a.mbus, pw.to_owned(), ca.to_owned());
    let method = method.to_owned();
    netns::within(&lab.netns, move || {
        let mbus = Mbus::at(addr, &pw, &ca)?;
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(v) = mbus.call(&method, args.clone())? {
                return Ok(v);
            }
            anyhow::ensure!(
                Instant::now() < until,
                "mbus {method} at {addr}: no answer in 120 s"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits for the agent's bootstrap on `a`'s console; returns seconds to agent start and the
/// bytes its export sent it by then.
fn boots(lab: &Lab, a: &mut Agent, agent: &str, boot_n: u32) -> (f64, u64) {
    let wait = |c: &mut Console, needle: &str| {
        c.wait_for(needle, &FATAL, BOOT)
            .unwrap_or_else(|e| panic!("{agent}: {e:#}"))
    };
    wait(&mut a.console, baker::bootcheck::AGENT_MARKER);
    let secs = a.console.elapsed();
    let bytes = power::nbd_bytes(lab, &a.vm.pi).unwrap();
    wait(
        &mut a.console,
        &format!("PIFOUNDRY-STAND-IN-BOOT n={boot_n}"),
    );
    let line = wait(&mut a.console, "PIFOUNDRY-STAND-IN-SETTINGS");
    assert!(
        line.contains(&format!("source=HTTP agent_id={agent} ")),
        "{agent} got another VM's settings: {line}"
    );
    // the dynamic network ran restart_networking on the interface the root is on
    wait(
        &mut a.console,
        "PIFOUNDRY-STAND-IN-NETWORK interface=usb0 dhcp=yes",
    );
    wait(&mut a.console, "PIFOUNDRY-STAND-IN-ROOT-WRITABLE ok");
    let disk = wait(&mut a.console, "PIFOUNDRY-STAND-IN-DISK device=/dev/nbd1");
    assert!(disk.contains("data=/dev/nbd1p2"), "{disk}");
    wait(&mut a.console, "PIFOUNDRY-STAND-IN-MBUS listening");
    (secs, bytes)
}

#[test]
#[ignore = "netboots an emulated Pi twice over NBD (about 20 min on 2 cores); cargo nextest run -p pifoundry-lab --run-ignored only"]
fn a_virtual_pi_netboots_the_ci_stemcell_and_keeps_its_root_and_disk_across_a_power_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bake_ci_stemcell(tmp.path());
    let t = TestLab::up(2, Some(&out.join("root.img")));
    let lab = t.lab.clone();
    let image = lab.image.clone().unwrap();
    let cert = MbusCert::generate().unwrap();
    let pw = random_hex().unwrap();
    let name = "agent-lab-1";

    let (vm, create_secs) = create(&lab, &image, name, &pw, &cert);
    eprintln!("figure: {name}: create_vm to powered on: {create_secs:.2} s");
    let console = Console::follow(&lab.console_log(&vm.pi));
    let mbus = SocketAddr::new(vm.address.parse().unwrap(), MBUS_PORT);
    let mut a = Agent { vm, console, mbus };
    let (secs, bytes) = boots(&lab, &mut a, name, 1);
    eprintln!(
        "figure: {name}: netboot to agent start {secs:.0} s, {bytes} bytes from its exports by then"
    );
    assert_eq!(
        call(&lab, &a, &pw, &cert.ca, "ping", json!([])),
        json!("pong")
    );

    a_stranger_on_the_pi_network_reads_nothing(&lab, &a);

    // a persistent disk: attached, written, detached; after a power cycle attached again
    let disk = with_client(&lab, |c| {
        Ok(c.create_disk(&CreateDisk {
            size_mib: 64,
            format: DiskFormat::Raw,
            metadata: Default::default(),
        })?)
    })
    .unwrap();
    let store = |a: &Agent, want: Vec<String>| {
        let att = with_client(&lab, |c| Ok(c.attach_disk(&disk.id, &a.vm.id)?))
            .unwrap_or_else(|e| panic!("attach: {e:#}"));
        assert!(att.device.starts_with("/dev/nbd"), "{att:?}");
        let v = call(&lab, a, &pw, &cert.ca, "mount_disk", json!([disk.id]));
        let before: Vec<String> =
            serde_json::from_value(v["stand_in"]["store_files"].clone()).unwrap();
        assert_eq!(before, want, "the disk's files");
        call(&lab, a, &pw, &cert.ca, "unmount_disk", json!([disk.id]));
        with_client(&lab, |c| Ok(c.detach_disk(&disk.id)?))
            .unwrap_or_else(|e| panic!("detach: {e:#}"));
    };
    store(&a, vec![]);

    // a power cycle: the same root comes back, with what the first boot wrote on it
    with_client(&lab, |c| Ok(c.reboot_vm(&a.vm.id)?)).unwrap();
    a.console = Console::follow(&lab.console_log(&a.vm.pi));
    let (secs, bytes) = boots(&lab, &mut a, name, 2);
    eprintln!("figure: {name}: second netboot to agent start {secs:.0} s, {bytes} bytes");
    assert_eq!(
        call(&lab, &a, &pw, &cert.ca, "ping", json!([])),
        json!("pong")
    );
    store(&a, vec![format!("written-by-{name}")]);

    // delete ends the VM and drops its overlay and exports
    let vm = a.vm.clone();
    let export = root_export(&lab, &vm.pi).1;
    with_client(&lab, |c| Ok(c.delete_vm(&vm.id)?)).unwrap();
    assert!(power::running(&lab, &vm.pi).is_none(), "the Pi is off");
    assert!(with_client(&lab, |c| Ok(c.vms()?)).unwrap().is_empty());
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
        !String::from_utf8_lossy(&qemu_nbd.stdout).contains(&export),
        "the root export is stopped"
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
        a.vm.agent_id,
        String::from_utf8_lossy(&read.stdout)
    );
}

struct Gone(String);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}
