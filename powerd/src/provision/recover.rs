//! What a start does after a stop or a kill: VMs caught `creating` are rolled back and those
//! caught `deleting` are finished; attaches the Pi never confirmed are undone; exports,
//! uploads, overlays and disk files that no record names are removed; dnsmasq's hosts file is
//! made to hold exactly the running VMs' reservations; each running VM's Pi is told its
//! attachments again.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use powerd_client::provision::VmState;

use super::images::UPLOAD_PREFIX;
use super::{ProvisionError, Provisioner};
use crate::power::SELF;

impl Provisioner {
    pub(super) async fn recover(&self) -> Result<(), ProvisionError> {
        let half_done: Vec<(String, VmState)> = self.store.read(|s| {
            s.vms
                .values()
                .filter(|v| v.state != VmState::Running)
                .map(|v| (v.id.clone(), v.state))
                .collect()
        });
        for (id, state) in half_done {
            tracing::warn!(vm = %id, ?state, "left half-done by the last powerd: tearing it down");
            self.teardown(&id, SELF).await?;
        }
        let unconfirmed: Vec<String> = self.store.read(|s| {
            s.disks
                .values()
                .filter(|d| d.vm.is_some() && !d.confirmed)
                .map(|d| d.id.clone())
                .collect()
        });
        for id in unconfirmed {
            tracing::warn!(disk = %id, "attach never confirmed: rolling it back");
            self.release_disk(&id).await?;
        }

        self.reconcile_reservations()?;

        let (exports, images, vms, disks) = self.store.read(|s| {
            let mut exports = BTreeSet::new();
            for v in s.vms.values() {
                for e in [&v.root_export, &v.ephemeral_export].into_iter().flatten() {
                    exports.insert(e.name.clone());
                }
            }
            for d in s.disks.values() {
                if let Some(e) = &d.export {
                    exports.insert(e.name.clone());
                }
            }
            let images: BTreeSet<String> = s.images.keys().cloned().collect();
            let vms: BTreeSet<String> = s.vms.keys().cloned().collect();
            let disks: BTreeSet<std::ffi::OsString> = s
                .disks
                .values()
                .filter_map(|d| d.file.file_name().map(|n| n.to_os_string()))
                .collect();
            (exports, images, vms, disks)
        });
        for e in self.block.exports() {
            if !exports.contains(&e.name) {
                tracing::warn!(export = %e.name, "no record holds this export: stopping it");
                let name = e.name.clone();
                self.blocking("recover.exports", move |b| b.unexport(&name))
                    .await?;
            }
        }
        let data = &self.cfg.data_dir;
        sweep(&data.join("images"), |n| {
            n.starts_with(UPLOAD_PREFIX) || !images.contains(n)
        });
        sweep(&data.join("vms"), |n| !vms.contains(n));
        sweep(&data.join("disks"), |n| {
            !disks.contains(std::ffi::OsStr::new(n))
        });

        let running: Vec<(String, String)> = self.store.read(|s| {
            s.vms
                .values()
                .map(|v| (v.pi.clone(), v.id.clone()))
                .collect()
        });
        for (pi, vm) in running {
            self.publish(&pi, &vm);
        }
        Ok(())
    }

    fn reconcile_reservations(&self) -> Result<(), ProvisionError> {
        let want: Vec<(String, Ipv4Addr, String)> = self.store.read(|s| {
            s.vms
                .values()
                .filter(|v| v.reserved)
                .filter_map(|v| Some((v.mac.clone(), v.net.ip.parse().ok()?, v.pi.clone())))
                .collect()
        });
        let rewritten = self
            .reservations
            .reconcile(
                want.iter()
                    .map(|(m, ip, pi)| (m.as_str(), *ip, pi.as_str())),
            )
            .map_err(|e| ProvisionError::failed("recover.reservations", e))?;
        if rewritten {
            tracing::warn!("dnsmasq's hosts file differed from the VMs' reservations: rewritten");
        }
        Ok(())
    }
}

/// Removes the entries of `dir` that `orphan` names.
fn sweep(dir: &Path, orphan: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !orphan(&name) {
            continue;
        }
        let path = entry.path();
        let r = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match r {
            Ok(()) => tracing::info!(path = %path.display(), "removed what no record names"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove"),
        }
    }
}
