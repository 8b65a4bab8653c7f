//! What pinet's TFTP and settings servers ask the inventory: a Pi's boot files and command
//! line (only while it carries a VM that is being started or runs), and which VM a source
//! address belongs to.

use std::net::IpAddr;

use powerd_client::provision::{PiState, VmState};

use super::Provisioner;
use crate::pinet::{Boot, BootLookup, CmdlineParams, Directory, PiVm};

impl Directory for Provisioner {
    fn boot(&self, serial: &str, from: IpAddr) -> BootLookup {
        let found = self.store.read(|s| {
            let pi = s.pis.get(serial)?;
            let vm = pi
                .vm
                .as_ref()
                .and_then(|id| s.vms.get(id))
                .filter(|_| matches!(pi.state, PiState::Provisioning | PiState::Running));
            Some(vm.and_then(|v| {
                let e = v.root_export.as_ref()?;
                v.settings.as_ref()?;
                Some((
                    v.image.clone(),
                    CmdlineParams {
                        nbd_host: e.host.parse().ok()?,
                        nbd_port: e.port,
                        nbd_export: e.name.clone(),
                        address: v.net.ip.parse().ok()?,
                        gateway: v.net.gateway.parse().ok()?,
                        netmask: v.net.netmask.parse().ok()?,
                        hostname: v.id.clone(),
                        mac: v.mac.clone(),
                    },
                ))
            }))
        });
        match found {
            None => {
                self.discovered(serial, from);
                BootLookup::Unknown
            }
            Some(None) => BootLookup::NotServed,
            Some(Some((image, cmdline))) => BootLookup::Served(Boot {
                boot_dir: self.boot_dir(&image),
                cmdline,
            }),
        }
    }

    fn vm_at(&self, addr: IpAddr) -> Option<PiVm> {
        let addr = addr.to_string();
        self.store.read(|s| {
            let v = s
                .vms
                .values()
                .find(|v| v.net.ip == addr && v.state != VmState::Deleting)?;
            let settings = v.settings.clone()?;
            Some(PiVm {
                serial: v.pi.clone(),
                vm_id: v.id.clone(),
                ssh_key: settings
                    .get("public_key")
                    .and_then(|k| k.as_str())
                    .map(String::from),
                settings,
            })
        })
    }

    /// The newest image's boot files: the bootloader fetches `bootcode.bin` before it
    /// asks for its serial directory, so every Pi gets the same one.
    fn firmware_dir(&self) -> Option<std::path::PathBuf> {
        let newest = self.store.read(|s| {
            s.images
                .values()
                .max_by(|a, b| a.created_at.cmp(&b.created_at))
                .map(|i| i.id.clone())
        })?;
        Some(self.boot_dir(&newest))
    }
}
