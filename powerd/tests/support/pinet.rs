//! The Pi network's servers over an in-memory Directory (the test's inventory: the real one
//! is the provisioning module's), with a boot directory of real files.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use powerd::pinet::{
    Boot, BootLookup, CmdlineParams, Directory, Hub, Listeners, PiVm, PinetConfig,
};
use serde_json::json;
use tokio::sync::oneshot;

use super::netns::Netns;

pub const SERIAL: &str = "1a2b3c4d";
pub const FREE_SERIAL: &str = "0badf00d";
pub const EXPORT: &str = "0123456789abcdef0123456789abcdef";

pub struct Pi {
    pub served: bool,
    pub addr: IpAddr,
    pub boot: Boot,
    pub vm: PiVm,
}

#[derive(Default)]
pub struct Inventory {
    pub pis: Mutex<HashMap<String, Pi>>,
    pub discovered: Mutex<Vec<(String, IpAddr)>>,
    pub firmware: Option<PathBuf>,
}

impl Directory for Inventory {
    fn boot(&self, serial: &str, from: IpAddr) -> BootLookup {
        match self.pis.lock().unwrap().get(serial) {
            Some(pi) if pi.served => BootLookup::Served(pi.boot.clone()),
            Some(_) => BootLookup::NotServed,
            None => {
                self.discovered
                    .lock()
                    .unwrap()
                    .push((serial.to_owned(), from));
                BootLookup::Unknown
            }
        }
    }

    fn vm_at(&self, addr: IpAddr) -> Option<PiVm> {
        let pis = self.pis.lock().unwrap();
        pis.values()
            .find(|pi| pi.served && pi.addr == addr)
            .map(|pi| pi.vm.clone())
    }

    fn firmware_dir(&self) -> Option<PathBuf> {
        self.firmware.clone()
    }
}

pub fn settings(vm: &str) -> serde_json::Value {
    json!({"agent_id": format!("agent-{vm}"), "vm": {"name": vm}, "mbus": "nats://u:secret@10.0.0.5:4222"})
}

/// A Pi carrying a VM at `addr`, served from `boot_dir`.
pub fn pi(vm: &str, addr: IpAddr, boot_dir: &Path, served: bool) -> Pi {
    let v4 = match addr {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => "10.77.0.105".parse().unwrap(),
    };
    Pi {
        served,
        addr,
        boot: Boot {
            boot_dir: boot_dir.to_path_buf(),
            cmdline: CmdlineParams {
                nbd_host: "10.77.0.1".parse().unwrap(),
                nbd_port: 10810,
                nbd_export: EXPORT.into(),
                address: v4,
                gateway: "10.77.0.1".parse().unwrap(),
                netmask: "255.255.255.0".parse().unwrap(),
                hostname: format!("pi-{vm}"),
                mac: "52:54:00:12:34:56".into(),
            },
        },
        vm: PiVm {
            vm_id: format!("vm-{vm}"),
            serial: SERIAL.into(),
            settings: settings(vm),
            ssh_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPifoundryTestKey bosh".into()),
        },
    }
}

/// Boot files as an image's boot partition holds them, plus traps: the image's own SD
/// `cmdline.txt` (never served), a symlink inside (served) and two leading outside (not).
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        let firmware = dir.path().join("firmware");
        std::fs::create_dir_all(boot.join("overlays")).unwrap();
        std::fs::create_dir_all(&firmware).unwrap();
        std::fs::write(dir.path().join("secret"), b"outside the boot dir").unwrap();
        std::fs::write(boot.join("start.elf"), pattern(70_001)).unwrap();
        std::fs::write(boot.join("config.txt"), b"enable_uart=1\nkernel=vmlinuz\n").unwrap();
        std::fs::write(
            boot.join("cmdline.txt"),
            b"root=LABEL=rootfs (the SD card's)\n",
        )
        .unwrap();
        std::fs::write(boot.join("overlays/dwc2.dtbo"), b"dtbo").unwrap();
        std::os::unix::fs::symlink("start.elf", boot.join("start_link.elf")).unwrap();
        std::os::unix::fs::symlink("../secret", boot.join("escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", boot.join("passwd")).unwrap();
        std::fs::write(firmware.join("bootcode.bin"), b"bootcode").unwrap();
        std::fs::write(firmware.join("start.elf"), b"not at the root").unwrap();
        Files { dir }
    }

    pub fn boot(&self) -> PathBuf {
        self.dir.path().join("boot")
    }

    pub fn firmware(&self) -> PathBuf {
        self.dir.path().join("firmware")
    }
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// The servers on their own thread and runtime: inside `ns` if given (every socket they make,
/// the per-transfer TFTP ones too, is then in that namespace), else here.
pub struct Running {
    pub tftp: SocketAddr,
    pub http: SocketAddr,
    pub hub: Arc<Hub>,
    pub inventory: Arc<Inventory>,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Binds `ip` (TFTP port `tftp_port`, HTTP port `http_port`; 0 for ephemeral ones).
    pub fn start(
        ns: Option<&Netns>,
        inventory: Inventory,
        ip: &str,
        tftp_port: u16,
        http_port: u16,
    ) -> Running {
        let mut cfg = PinetConfig::new(ip.parse().unwrap());
        (cfg.tftp_port, cfg.http_port) = (tftp_port, http_port);
        let netns = ns.map(|ns| format!("/run/netns/{}", ns.name));
        let inventory = Arc::new(inventory);
        let hub = Arc::new(Hub::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let dir: Arc<dyn Directory> = inventory.clone();
        let serving_hub = hub.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            if let Some(netns) = netns {
                let fd = std::fs::File::open(&netns)?;
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listeners = Listeners::bind(&cfg)?;
                let _ = ready.send((listeners.tftp.local_addr()?, listeners.http.local_addr()?));
                let shutdown = async move {
                    let _ = stopped.await;
                };
                powerd::pinet::serve_on(listeners, &cfg, dir, serving_hub, shutdown).await
            })
        });
        let Ok((tftp, http)) = bound.recv() else {
            panic!("pinet did not start: {:?}", thread.join());
        };
        Running {
            tftp,
            http,
            hub,
            inventory,
            stop,
            thread,
        }
    }

    /// On 127.0.0.1, ephemeral ports.
    pub fn loopback(inventory: Inventory) -> Running {
        Running::start(None, inventory, "127.0.0.1", 0, 0)
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().unwrap().unwrap();
    }
}
