//! Persistent disks: sparse files (raw or qcow2) under `disks/`, served like roots; they
//! outlive VMs and are never deleted implicitly. Attach = slot → export → settings → the Pi's
//! helper told through the Hub; it returns once the Pi confirmed, else everything is undone.

use std::net::IpAddr;

use powerd_client::codes;
use powerd_client::provision::{
    Attachment, Confirmed, CreateDisk, Disk, DiskFormat, Labels, NbdTarget, PiAttachment, VmState,
    Want,
};

use super::state::{DiskRec, ProvState};
use super::vms::{EPHEMERAL_DEVICE, FIRST_SLOT, LAST_SLOT, complete_settings, device, export_rec};
use super::{ProvisionError, Provisioner, new_id, now};
use crate::block::ExportRequest;

/// 4 TiB: larger is a typo on a Pi (and past what some file systems hold in one file).
pub const MAX_MIB: u64 = 4 << 20;

fn disk_not_found(id: &str) -> ProvisionError {
    ProvisionError::not_found(codes::DISK_NOT_FOUND, "disk", id)
}

impl DiskRec {
    pub fn view(&self) -> Disk {
        Disk {
            id: self.id.clone(),
            size_mib: self.size_mib,
            format: self.format,
            vm: self.vm.clone().filter(|_| self.confirmed),
            slot: self.slot.filter(|_| self.confirmed),
            metadata: self.metadata.clone(),
            created_at: self.created_at.clone(),
        }
    }
}

/// What the Pi carrying `vm` should have connected: its ephemeral disk on slot 1 (the helper
/// connects it before the agent starts; create does not wait for its confirmation) and the
/// persistent disks assigned to it.
fn attachments_of(s: &ProvState, vm: &str) -> Vec<PiAttachment> {
    let ephemeral = s
        .vms
        .get(vm)
        .and_then(|v| v.ephemeral_export.as_ref())
        .map(|e| PiAttachment {
            disk: format!("{vm}-ephemeral"),
            slot: 1,
            device: EPHEMERAL_DEVICE.into(),
            nbd: NbdTarget {
                host: e.host.clone(),
                port: e.port,
                export: e.name.clone(),
            },
            want: Want::Connected,
        });
    let mut out: Vec<PiAttachment> = s
        .disks
        .values()
        .filter(|d| d.vm.as_deref() == Some(vm))
        .filter_map(|d| {
            let (slot, e) = (d.slot?, d.export.as_ref()?);
            Some(PiAttachment {
                disk: d.id.clone(),
                slot,
                device: device(slot),
                nbd: NbdTarget {
                    host: e.host.clone(),
                    port: e.port,
                    export: e.name.clone(),
                },
                want: Want::Connected,
            })
        })
        .chain(ephemeral)
        .collect();
    out.sort_by_key(|a| a.slot);
    out
}

impl Provisioner {
    pub fn disks(&self, vm: Option<&str>) -> Vec<Disk> {
        self.store.read(|s| {
            s.disks
                .values()
                .map(DiskRec::view)
                .filter(|d| vm.is_none() || d.vm.as_deref() == vm)
                .collect()
        })
    }

    pub fn disk(&self, id: &str) -> Result<Disk, ProvisionError> {
        self.store
            .read(|s| s.disks.get(id).map(DiskRec::view))
            .ok_or_else(|| disk_not_found(id))
    }

    fn disk_rec(&self, id: &str) -> Result<DiskRec, ProvisionError> {
        self.store
            .read(|s| s.disks.get(id).cloned())
            .ok_or_else(|| disk_not_found(id))
    }

    /// Tells the Pi's helper its current list.
    pub(super) fn publish(&self, serial: &str, vm: &str) {
        let list = self.store.read(|s| attachments_of(s, vm));
        self.hub.publish(serial, list);
    }

    pub async fn create_disk(&self, req: CreateDisk) -> Result<Disk, ProvisionError> {
        if !(1..=MAX_MIB).contains(&req.size_mib) {
            return Err(ProvisionError::bad(
                codes::INVALID_BODY,
                format!("size_mib: {} is not between 1 and {MAX_MIB}", req.size_mib),
            ));
        }
        let id = new_id("disk");
        let ext = match req.format {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        };
        let file = self.cfg.data_dir.join("disks").join(format!("{id}.{ext}"));
        let (f, mib, fmt) = (file.clone(), req.size_mib, req.format);
        self.blocking("disk.create", move |b| b.create_disk(&f, mib, fmt))
            .await?;
        let rec = DiskRec {
            id: id.clone(),
            size_mib: req.size_mib,
            format: req.format,
            file: file.clone(),
            vm: None,
            slot: None,
            export: None,
            confirmed: false,
            metadata: req.metadata,
            created_at: now(),
        };
        let r = self.store.update(|s| {
            s.disks.insert(id.clone(), rec.clone());
            Ok(())
        });
        if let Err(e) = r {
            let _ = std::fs::remove_file(&file);
            return Err(e);
        }
        Ok(rec.view())
    }

    pub async fn delete_disk(&self, id: &str) -> Result<(), ProvisionError> {
        let _g = self.guard(id).await;
        let rec = self.store.update(|s| {
            let d = s.disks.get(id).ok_or_else(|| disk_not_found(id))?;
            if let Some(vm) = &d.vm {
                return Err(ProvisionError::conflict(
                    codes::DISK_ATTACHED,
                    format!("disk {id} is attached to {vm}: detach it first"),
                ));
            }
            Ok(s.disks.remove(id).expect("present"))
        })?;
        if let Err(e) = std::fs::remove_file(&rec.file) {
            tracing::warn!(file = %rec.file.display(), error = %e, "disk removed from the state, its file not");
        }
        Ok(())
    }

    pub async fn resize_disk(&self, id: &str, size_mib: u64) -> Result<Disk, ProvisionError> {
        let _g = self.guard(id).await;
        let rec = self.disk_rec(id)?;
        if let Some(vm) = &rec.vm {
            return Err(ProvisionError::conflict(
                codes::DISK_ATTACHED,
                format!("disk {id} is attached to {vm}: resize only a detached disk"),
            ));
        }
        if size_mib < rec.size_mib || size_mib > MAX_MIB {
            return Err(ProvisionError::conflict(
                codes::INVALID_BODY,
                format!(
                    "size_mib: {size_mib}: a disk only grows (now {} MiB, at most {MAX_MIB})",
                    rec.size_mib
                ),
            ));
        }
        if size_mib > rec.size_mib {
            let (f, fmt) = (rec.file.clone(), rec.format);
            self.blocking("disk.resize", move |b| b.resize_disk(&f, fmt, size_mib))
                .await?;
            self.store.update(|s| {
                s.disks
                    .get_mut(id)
                    .ok_or_else(|| disk_not_found(id))?
                    .size_mib = size_mib;
                Ok(())
            })?;
        }
        self.disk(id)
    }

    pub fn set_disk_metadata(&self, id: &str, metadata: Labels) -> Result<Disk, ProvisionError> {
        self.store.update(|s| {
            s.disks
                .get_mut(id)
                .ok_or_else(|| disk_not_found(id))?
                .metadata = metadata;
            Ok(())
        })?;
        self.disk(id)
    }

    /// Exports a disk already assigned to a VM (its slot recorded) for the VM's address.
    pub(super) async fn export_disk(
        &self,
        id: &str,
        allow: IpAddr,
        step: &str,
    ) -> Result<(), ProvisionError> {
        let rec = self.disk_rec(id)?;
        let req = ExportRequest {
            file: rec.file.clone(),
            format: rec.format,
            allow,
        };
        let e = self.blocking(step, move |b| b.export(&req)).await?;
        self.store.update(|s| {
            s.disks
                .get_mut(id)
                .ok_or_else(|| disk_not_found(id))?
                .export = Some(export_rec(&e));
            Ok(())
        })
    }

    /// Drops a disk's export and assignment (the Pi was told, or is gone).
    pub(super) async fn release_disk(&self, id: &str) -> Result<(), ProvisionError> {
        let rec = self.disk_rec(id)?;
        if let Some(e) = rec.export {
            let name = e.name.clone();
            self.blocking("disk.detach.export", move |b| b.unexport(&name))
                .await?;
        }
        let vm = rec.vm.clone();
        self.store.update(|s| {
            let d = s.disks.get_mut(id).ok_or_else(|| disk_not_found(id))?;
            d.vm = None;
            d.slot = None;
            d.export = None;
            d.confirmed = false;
            if let Some(vm) = vm
                && let Some(v) = s.vms.get(&vm)
                && let Some(base) = v.settings.clone()
            {
                let settings = complete_settings(v, s, &base);
                s.vms.get_mut(&vm).expect("present").settings = Some(settings);
            }
            Ok(())
        })
    }

    pub async fn attach_disk(&self, id: &str, vm: &str) -> Result<Attachment, ProvisionError> {
        let _gd = self.guard(id).await;
        let _gv = self.guard(vm).await;
        let rec = self.disk_rec(id)?;
        let v = self
            .store
            .read(|s| s.vms.get(vm).cloned())
            .ok_or_else(|| ProvisionError::not_found(codes::VM_NOT_FOUND, "VM", vm))?;
        match (&rec.vm, rec.slot) {
            (Some(on), Some(slot)) if on == vm && rec.confirmed => {
                return Ok(Attachment {
                    disk: id.into(),
                    slot,
                    device: device(slot),
                });
            }
            (Some(on), _) => {
                return Err(ProvisionError::conflict(
                    codes::DISK_ATTACHED,
                    format!("disk {id} is attached to {on}"),
                ));
            }
            _ => {}
        }
        if v.state != VmState::Running {
            return Err(ProvisionError::conflict(
                codes::PI_BUSY,
                format!("VM {vm} is {:?}, not running", v.state),
            ));
        }
        let slot = self.store.update(|s| {
            let used: Vec<u8> = s
                .disks
                .values()
                .filter(|d| d.vm.as_deref() == Some(vm))
                .filter_map(|d| d.slot)
                .collect();
            let slot = (FIRST_SLOT..=LAST_SLOT)
                .find(|n| !used.contains(n))
                .ok_or_else(|| {
                    ProvisionError::conflict(
                        codes::NO_SLOT,
                        format!("VM {vm} has no free NBD slot"),
                    )
                })?;
            let d = s.disks.get_mut(id).ok_or_else(|| disk_not_found(id))?;
            d.vm = Some(vm.to_string());
            d.slot = Some(slot);
            d.confirmed = false;
            Ok(slot)
        })?;
        match self.connect(id, &v, slot).await {
            Ok(()) => Ok(Attachment {
                disk: id.into(),
                slot,
                device: device(slot),
            }),
            Err(e) => {
                tracing::warn!(disk = %id, vm, error = %e, "attach failed: rolling back");
                if let Err(undo) = self.release_disk(id).await {
                    tracing::error!(disk = %id, error = %undo, "attach rollback incomplete; retried at the next start");
                }
                self.publish(&v.pi, vm);
                Err(e)
            }
        }
    }

    async fn connect(
        &self,
        id: &str,
        v: &super::state::VmRec,
        slot: u8,
    ) -> Result<(), ProvisionError> {
        let allow: IpAddr = v
            .net
            .ip
            .parse()
            .map_err(|e| ProvisionError::failed("disk.attach.export", e))?;
        self.fail.check("disk.attach.export").await?;
        self.export_disk(id, allow, "disk.attach.export").await?;
        self.fail.check("disk.attach.settings").await?;
        self.store.update(|s| {
            if let Some(vr) = s.vms.get(&v.id)
                && let Some(base) = vr.settings.clone()
            {
                let settings = complete_settings(vr, s, &base);
                s.vms.get_mut(&v.id).expect("present").settings = Some(settings);
            }
            Ok(())
        })?;
        self.publish(&v.pi, &v.id);
        self.fail.check("disk.attach.confirm").await?;
        let timeout = self.cfg.attach_timeout;
        match self
            .hub
            .wait_confirmed(&v.pi, id, Want::Connected, timeout)
            .await
        {
            Ok(Confirmed::Connected) => {}
            Ok(other) => {
                return Err(ProvisionError::failed(
                    "disk.attach.confirm",
                    format!("the Pi reported {other:?} for {} on slot {slot}", id),
                ));
            }
            Err(_) => {
                return Err(ProvisionError::AttachTimeout {
                    disk: id.into(),
                    timeout,
                });
            }
        }
        self.store.update(|s| {
            s.disks
                .get_mut(id)
                .ok_or_else(|| disk_not_found(id))?
                .confirmed = true;
            Ok(())
        })
    }

    /// Asks the Pi to let go of the device (it may be off: then the wait times out and the
    /// export is dropped anyway), then drops the export and the settings entry.
    pub async fn detach_disk(&self, id: &str) -> Result<Disk, ProvisionError> {
        let _gd = self.guard(id).await;
        let rec = self.disk_rec(id)?;
        let Some(vm) = rec.vm.clone() else {
            return Ok(rec.view());
        };
        let _gv = self.guard(&vm).await;
        let pi = self.store.read(|s| s.vms.get(&vm).map(|v| v.pi.clone()));
        if let Some(pi) = &pi {
            let mut list = self.store.read(|s| attachments_of(s, &vm));
            for a in list.iter_mut().filter(|a| a.disk == id) {
                a.want = Want::Disconnected;
            }
            self.hub.publish(pi, list);
            let timeout = self.cfg.attach_timeout;
            if self
                .hub
                .wait_confirmed(pi, id, Want::Disconnected, timeout)
                .await
                .is_err()
            {
                tracing::warn!(disk = %id, vm, "the Pi did not confirm the detach; dropping the export anyway");
            }
        }
        self.release_disk(id).await?;
        if let Some(pi) = &pi {
            self.publish(pi, &vm);
        }
        self.disk(id)
    }
}
