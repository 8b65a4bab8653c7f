//! A powerd with provisioning on loopback (sim outlets, real qemu-img/qemu-nbd exports), a
//! small Pi disk image packed as a stemcell's `image` member, and a stand-in for the Pi-side
//! attach helper (LABELLED: a test stand-in, not the stemcell's helper).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use powerd_client::provision::{Arch, PiAttachments, PiSpec, Want};
use powerd_client::{Credentials, blocking};

use super::{Powerd, TOKEN};

/// Where the Pi network lives in these tests: a loopback /24 of its own.
pub const PI_NET: &str = "127.77.0";

/// Serial of the n-th test Pi.
pub fn serial(n: usize) -> String {
    format!("{:08x}", 0x7e57_0000 + n)
}

/// A loopback port free right now (for the Pi network's HTTP server).
fn free_port() -> u16 {
    super::closed_port()
}

/// powerd with `pis` sim outlets `o0..`, provisioning on 127.77.0.1 and every Pi registered.
pub fn powerd(pis: usize) -> (Powerd, u16) {
    let mut outlets = String::from("outlets:\n");
    for i in 0..pis {
        outlets.push_str(&format!("  - {{id: o{i}, backend: sim}}\n"));
    }
    let http = free_port();
    let tftp = free_port();
    let nbd_lo = 20000 + (std::process::id() % 200) as u16 * 150;
    let body = format!(
        "{outlets}provisioning:\n  data_dir: DATA\n  attach_timeout: 20s\n  pi_network:\n    address: {PI_NET}.1\n    netmask: 255.255.255.0\n    gateway: {PI_NET}.1\n    pool: {PI_NET}.100-{PI_NET}.199\n    tftp_port: {tftp}\n    http_port: {http}\n    nbd_ports: {nbd_lo}-{}\n  exports: {{supervisor: detached, firewall: none}}\n  dhcp: {{hosts_file: DATA/dnsmasq.hosts, pid_file: DATA/no-dnsmasq.pid}}\n",
        nbd_lo + 149
    );
    let p = Powerd::start_with(|dir| body.replace("DATA", &dir.join("prov").display().to_string()));
    let c = client(&p);
    for i in 0..pis {
        c.put_pi(
            &serial(i),
            &PiSpec {
                model: "pi4b".into(),
                mac: format!("dc:a6:32:00:{:02x}:{:02x}", i / 256, i % 256),
                outlet: format!("o{i}"),
                arch: Arch::Arm64,
                ram_mib: 4096,
                pool: None,
                boot: None,
                labels: None,
            },
        )
        .unwrap();
    }
    (p, http)
}

pub fn client(p: &Powerd) -> blocking::Client {
    blocking::Client::new(&p.url(), Credentials::Bearer(TOKEN.into())).unwrap()
}

/// A 40 MiB Pi disk image (MBR: FAT boot partition with config.txt and a kernel stand-in,
/// then an empty root partition), packed as bosh-cli hands it to create_stemcell: the
/// stemcell's `image` member, a gzip'd tar holding `root.img`.
pub fn stemcell_image(dir: &Path) -> PathBuf {
    let img = dir.join("root.img");
    run(Command::new("truncate").args(["-s", "40M"]).arg(&img));
    run(Command::new("sh").arg("-c").arg(format!(
        "printf 'label: dos\\nstart=2048, size=32768, type=c\\nstart=34816, type=83\\n' | sfdisk -q {}",
        img.display()
    )));
    let part = format!("{}@@1M", img.display());
    run(Command::new("mkfs.vfat")
        .args(["-F", "16", "--offset", "2048"])
        .arg(&img)
        .arg("16384"));
    let files = dir.join("bootfiles");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("config.txt"),
        "arm_64bit=1\nkernel=kernel8.img\n",
    )
    .unwrap();
    std::fs::write(files.join("kernel8.img"), vec![0x5a; 4096]).unwrap();
    std::fs::write(
        files.join("cmdline-netboot.txt.hbs"),
        "console=serial0,115200 root=/dev/nbd0p2 nbdroot={{nbd_host}}:{{nbd_port}}/{{nbd_export}} ip={{ip}}::{{gateway}}:{{netmask}}:{{hostname}}:eth0:off rootwait\n",
    )
    .unwrap();
    for f in ["config.txt", "kernel8.img", "cmdline-netboot.txt.hbs"] {
        run(Command::new("mcopy")
            .args(["-i", &part])
            .arg(files.join(f))
            .arg("::"));
    }
    let image = dir.join("image");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&image)
        .arg("-C")
        .arg(dir)
        .arg("root.img"));
    std::fs::remove_file(&img).unwrap();
    image
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TEST STAND-IN for the Pi-side attach helper of one VM: long-polls the attachments from
/// the VM's address (curl --interface) like the helper on the Pi, checks that each export it
/// must connect answers NBD (nbdinfo), and confirms.
pub struct AttachStandIn {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AttachStandIn {
    pub fn start(vm_address: &str, http_port: u16) -> AttachStandIn {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let addr = vm_address.to_string();
        let base = format!("http://{PI_NET}.1:{http_port}/pifoundry/v1/attachments");
        let thread = std::thread::spawn(move || {
            let mut after = 0u64;
            while !flag.load(Ordering::SeqCst) {
                let out = Command::new("curl")
                    .args(["-sf", "--max-time", "5", "--interface", &addr])
                    .arg(format!("{base}?after={after}&wait=1"))
                    .output()
                    .unwrap();
                let Ok(list) = serde_json::from_slice::<PiAttachments>(&out.stdout) else {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                after = list.generation;
                for a in list.attachments {
                    let state = match a.want {
                        Want::Connected => {
                            let uri =
                                format!("nbd://{}:{}/{}", a.nbd.host, a.nbd.port, a.nbd.export);
                            let ok = Command::new("nbdinfo")
                                .arg("--size")
                                .arg(&uri)
                                .output()
                                .is_ok_and(|o| o.status.success());
                            if ok { "connected" } else { "failed" }
                        }
                        Want::Disconnected => "disconnected",
                    };
                    let _ = Command::new("curl")
                        .args(["-sf", "--max-time", "5", "--interface", &addr])
                        .args(["-H", "content-type: application/json", "-d"])
                        .arg(format!("{{\"state\":\"{state}\"}}"))
                        .arg(format!("{base}/{}", a.disk))
                        .output();
                }
            }
        });
        AttachStandIn {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for AttachStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
