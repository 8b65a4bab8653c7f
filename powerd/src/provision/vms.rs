//! VMs: create = claim → overlay → ephemeral disk → exports → reservation → settings →
//! power on; each step is recorded in the VM's record before it is taken, and a failure tears
//! down whatever the record says exists, in reverse ([`Provisioner::teardown`]), which is
//! also how a VM is deleted and how a start after a kill rolls a half-made VM back.

use std::net::{IpAddr, Ipv4Addr};

use powerd_client::codes;
use powerd_client::provision::{Attachment, CreateVm, DiskFormat, Labels, PiState, Vm, VmState};
use serde_json::{Value, json};

use super::state::{ExportRec, NetRec, ProvState, VmRec};
use super::{ProvisionError, Provisioner, inventory, new_id, now};
use crate::block::{Export, ExportRequest};
use crate::power::Action;

pub const ROOT_DEVICE: &str = "/dev/nbd0";
pub const EPHEMERAL_DEVICE: &str = "/dev/nbd1";
pub const FIRST_SLOT: u8 = 2;
pub const LAST_SLOT: u8 = 15;

pub fn device(slot: u8) -> String {
    format!("/dev/nbd{slot}")
}

fn vm_not_found(id: &str) -> ProvisionError {
    ProvisionError::not_found(codes::VM_NOT_FOUND, "VM", id)
}

pub fn export_rec(e: &Export) -> ExportRec {
    ExportRec {
        name: e.name.clone(),
        host: e.host.to_string(),
        port: e.port,
    }
}

impl VmRec {
    pub fn view(&self, s: &ProvState) -> Vm {
        let mut disks: Vec<Attachment> = s
            .disks
            .values()
            .filter(|d| d.vm.as_deref() == Some(&self.id) && d.confirmed)
            .filter_map(|d| {
                d.slot.map(|slot| Attachment {
                    disk: d.id.clone(),
                    slot,
                    device: device(slot),
                })
            })
            .collect();
        disks.sort_by_key(|a| a.slot);
        Vm {
            id: self.id.clone(),
            agent_id: self.agent_id.clone(),
            pi: self.pi.clone(),
            image: self.image.clone(),
            address: self.net.ip.clone(),
            state: self.state,
            ephemeral_disk: self.ephemeral_disk_mib.map(|_| Attachment {
                disk: format!("{}-ephemeral", self.id),
                slot: 1,
                device: EPHEMERAL_DEVICE.into(),
            }),
            disks,
            metadata: self.metadata.clone(),
            created_at: self.created_at.clone(),
        }
    }
}

/// The agent settings as served: the CPI's, with the devices and the Pi's MAC filled in.
pub fn complete_settings(vm: &VmRec, s: &ProvState, base: &Value) -> Value {
    let mut out = if base.is_object() {
        base.clone()
    } else {
        json!({})
    };
    let disks = out
        .as_object_mut()
        .expect("an object")
        .entry("disks")
        .or_insert_with(|| json!({}));
    if !disks.is_object() {
        *disks = json!({});
    }
    disks["system"] = json!(ROOT_DEVICE);
    if vm.ephemeral_disk_mib.is_some() {
        disks["ephemeral"] = json!({"path": EPHEMERAL_DEVICE});
    } else if let Some(o) = disks.as_object_mut() {
        o.remove("ephemeral");
    }
    let mut persistent = serde_json::Map::new();
    for d in s.disks.values().filter(|d| d.vm.as_deref() == Some(&vm.id)) {
        if let Some(slot) = d.slot {
            persistent.insert(d.id.clone(), json!({"path": device(slot)}));
        }
    }
    disks["persistent"] = Value::Object(persistent);
    if let Some(net) = out
        .get_mut("networks")
        .and_then(|n| n.get_mut(&vm.net.name))
        .and_then(Value::as_object_mut)
    {
        net.insert("mac".into(), json!(vm.mac));
    }
    out
}

impl Provisioner {
    pub fn vms(&self) -> Vec<Vm> {
        self.store
            .read(|s| s.vms.values().map(|v| v.view(s)).collect())
    }

    pub fn vm(&self, id: &str) -> Result<Vm, ProvisionError> {
        self.store
            .read(|s| s.vms.get(id).map(|v| v.view(s)))
            .ok_or_else(|| vm_not_found(id))
    }

    fn vm_rec(&self, id: &str) -> Result<VmRec, ProvisionError> {
        self.store
            .read(|s| s.vms.get(id).cloned())
            .ok_or_else(|| vm_not_found(id))
    }

    /// Writes one change to a VM's record.
    fn note(&self, id: &str, f: impl FnOnce(&mut VmRec)) -> Result<(), ProvisionError> {
        self.store.update(|s| {
            f(s.vms.get_mut(id).ok_or_else(|| vm_not_found(id))?);
            Ok(())
        })
    }

    pub async fn create_vm(&self, req: CreateVm, who: &str) -> Result<Vm, ProvisionError> {
        let id = new_id("vm");
        let _g = self.guard(&id).await;
        self.fail.check("vm.create.claim").await?;
        self.claim(&id, &req)?;
        match self.build(&id, &req, who).await {
            Ok(()) => self.vm(&id),
            Err(e) => {
                tracing::warn!(vm = %id, error = %e, "create failed: rolling back");
                if let Err(undo) = self.teardown(&id, who).await {
                    tracing::error!(vm = %id, error = %undo, "rollback incomplete; it is retried at the next start or DELETE");
                }
                Err(e)
            }
        }
    }

    /// Step 1, atomic: picks a free Pi and an address and records the VM as `creating`.
    fn claim(&self, id: &str, req: &CreateVm) -> Result<(), ProvisionError> {
        let (net_name, net) = match req.networks.len() {
            1 => req.networks.iter().next().expect("one"),
            0 => {
                return Err(ProvisionError::bad(
                    codes::INVALID_BODY,
                    "networks: a VM needs one network",
                ));
            }
            n => {
                return Err(ProvisionError::bad(
                    codes::TOO_MANY_NETWORKS,
                    format!("networks: a Pi has one interface; {n} networks were asked"),
                ));
            }
        };
        let pn = &self.cfg.pi_network;
        let manual_ip = match net.kind.as_str() {
            "manual" => Some(
                net.ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                    .ok_or_else(|| {
                        ProvisionError::bad(
                            codes::INVALID_BODY,
                            format!(
                                "networks.{net_name}.ip: a manual network needs an IPv4 address"
                            ),
                        )
                    })?,
            ),
            "dynamic" => None,
            other => {
                return Err(ProvisionError::bad(
                    codes::INVALID_BODY,
                    format!(
                        "networks.{net_name}.type: {other:?} is not possible on a Pi (manual or dynamic)"
                    ),
                ));
            }
        };
        if let Some(mib) = req.ephemeral_disk_mib
            && !(1..=super::disks::MAX_MIB).contains(&mib)
        {
            return Err(ProvisionError::bad(
                codes::INVALID_BODY,
                format!(
                    "ephemeral_disk_mib: {mib} is not between 1 and {}",
                    super::disks::MAX_MIB
                ),
            ));
        }
        self.store.update(|s| {
            let image = s.images.get(&req.image).cloned().ok_or_else(|| {
                ProvisionError::not_found(codes::IMAGE_NOT_FOUND, "image", &req.image)
            })?;
            for (i, d) in req.disks.iter().enumerate() {
                let disk = s
                    .disks
                    .get(d)
                    .ok_or_else(|| ProvisionError::not_found(codes::DISK_NOT_FOUND, "disk", d))?;
                if let Some(vm) = &disk.vm {
                    return Err(ProvisionError::conflict(
                        codes::DISK_ATTACHED,
                        format!("disk {d} is attached to {vm}"),
                    ));
                }
                if i + FIRST_SLOT as usize > LAST_SLOT as usize {
                    return Err(ProvisionError::bad(
                        codes::NO_SLOT,
                        "more persistent disks than NBD slots",
                    ));
                }
            }
            let used: Vec<&str> = s.vms.values().map(|v| v.net.ip.as_str()).collect();
            let ip = match manual_ip {
                Some(ip) => {
                    if used.contains(&ip.to_string().as_str()) || ip == pn.address {
                        return Err(ProvisionError::conflict(
                            codes::NO_FREE_ADDRESS,
                            format!("address {ip} is in use"),
                        ));
                    }
                    ip
                }
                None => (u32::from(*pn.pool.start())..=u32::from(*pn.pool.end()))
                    .map(Ipv4Addr::from)
                    .find(|a| !used.contains(&a.to_string().as_str()))
                    .ok_or_else(|| {
                        ProvisionError::conflict(
                            codes::NO_FREE_ADDRESS,
                            "the dynamic address pool is used up",
                        )
                    })?,
            };
            let serial = inventory::pick(s, &image, &req.constraints).ok_or_else(|| {
                ProvisionError::conflict(
                    codes::NO_FREE_PI,
                    format!("no free {} Pi matches the constraints", image.arch),
                )
            })?;
            let pi = s.pis.get_mut(&serial).expect("picked");
            pi.state = PiState::Provisioning;
            pi.vm = Some(id.to_string());
            pi.address = Some(ip.to_string());
            pi.metadata = req.metadata.clone();
            pi.updated_at = now();
            let rec = VmRec {
                id: id.to_string(),
                agent_id: req.agent_id.clone(),
                pi: serial.clone(),
                mac: pi.mac.clone().unwrap_or_default(),
                outlet: pi.outlet.clone().unwrap_or_default(),
                image: req.image.clone(),
                state: VmState::Creating,
                net: NetRec {
                    name: net_name.clone(),
                    ip: ip.to_string(),
                    netmask: net
                        .netmask
                        .clone()
                        .unwrap_or_else(|| pn.netmask.to_string()),
                    gateway: net
                        .gateway
                        .clone()
                        .unwrap_or_else(|| pn.gateway.to_string()),
                },
                ephemeral_disk_mib: req.ephemeral_disk_mib,
                overlay: None,
                ephemeral: None,
                root_export: None,
                ephemeral_export: None,
                reserved: false,
                settings: None,
                powered: false,
                metadata: req.metadata.clone(),
                created_at: now(),
            };
            s.vms.insert(id.to_string(), rec);
            for (i, d) in req.disks.iter().enumerate() {
                let disk = s.disks.get_mut(d).expect("checked");
                disk.vm = Some(id.to_string());
                disk.slot = Some(FIRST_SLOT + i as u8);
                disk.confirmed = true;
            }
            Ok(())
        })
    }

    async fn build(&self, id: &str, req: &CreateVm, who: &str) -> Result<(), ProvisionError> {
        let rec = self.vm_rec(id)?;
        let dir = self.cfg.data_dir.join("vms").join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ProvisionError::failed("vm.create.overlay", e))?;
        let allow: IpAddr = rec
            .net
            .ip
            .parse()
            .map_err(|e| ProvisionError::failed("vm.create.exports", e))?;

        let overlay = dir.join("root.qcow2");
        self.note(id, |v| v.overlay = Some(overlay.clone()))?;
        self.fail.check("vm.create.overlay").await?;
        let base = self.disk_img(&rec.image);
        let o = overlay.clone();
        self.blocking("vm.create.overlay", move |b| b.create_overlay(&base, &o))
            .await?;

        if let Some(mib) = req.ephemeral_disk_mib {
            let eph = dir.join("ephemeral.raw");
            self.note(id, |v| v.ephemeral = Some(eph.clone()))?;
            self.fail.check("vm.create.ephemeral").await?;
            let e = eph.clone();
            self.blocking("vm.create.ephemeral", move |b| {
                b.create_disk(&e, mib, DiskFormat::Raw)
            })
            .await?;
        }

        self.fail.check("vm.create.exports").await?;
        let root = ExportRequest {
            file: overlay,
            format: DiskFormat::Qcow2,
            allow,
        };
        let e = self
            .blocking("vm.create.exports", move |b| b.export(&root))
            .await?;
        self.note(id, |v| v.root_export = Some(export_rec(&e)))?;
        if let Some(file) = self.vm_rec(id)?.ephemeral {
            let r = ExportRequest {
                file,
                format: DiskFormat::Raw,
                allow,
            };
            let e = self
                .blocking("vm.create.exports", move |b| b.export(&r))
                .await?;
            self.note(id, |v| v.ephemeral_export = Some(export_rec(&e)))?;
        }
        for d in &req.disks {
            self.export_disk(d, allow, "vm.create.exports").await?;
        }

        self.note(id, |v| v.reserved = true)?;
        self.fail.check("vm.create.reservation").await?;
        let std::net::IpAddr::V4(allow4) = allow else {
            return Err(ProvisionError::failed(
                "vm.create.reservation",
                format!("{allow} is not an IPv4 address (DHCP reservations are IPv4)"),
            ));
        };
        self.reservations
            .set(&rec.mac, allow4, &rec.pi)
            .map_err(|e| ProvisionError::failed("vm.create.reservation", e))?;

        self.fail.check("vm.create.settings").await?;
        self.store.update(|s| {
            let v = s.vms.get(id).ok_or_else(|| vm_not_found(id))?;
            let settings = complete_settings(v, s, &req.settings);
            s.vms.get_mut(id).expect("present").settings = Some(settings);
            Ok(())
        })?;
        self.publish(&rec.pi, id);

        self.note(id, |v| v.powered = true)?;
        self.fail.check("vm.create.power").await?;
        self.power
            .apply(&rec.outlet, Action::On, who)
            .await
            .map_err(|e| ProvisionError::failed("vm.create.power", e))?;

        self.store.update(|s| {
            let v = s.vms.get_mut(id).ok_or_else(|| vm_not_found(id))?;
            v.state = VmState::Running;
            let pi = s.pis.get_mut(&rec.pi).expect("claimed");
            pi.state = PiState::Running;
            pi.updated_at = now();
            Ok(())
        })?;
        tracing::info!(vm = %id, pi = %rec.pi, address = %rec.net.ip, "VM running");
        Ok(())
    }

    pub async fn delete_vm(&self, id: &str, who: &str) -> Result<(), ProvisionError> {
        let _g = self.guard(id).await;
        self.vm_rec(id)?;
        self.note(id, |v| v.state = VmState::Deleting)?;
        self.teardown(id, who).await
    }

    /// Undoes every step the record says was taken, newest first, writing each undo down so
    /// that an interrupted teardown resumes where it stopped. Persistent disks are only
    /// detached.
    pub(super) async fn teardown(&self, id: &str, who: &str) -> Result<(), ProvisionError> {
        let rec = self.vm_rec(id)?;
        if rec.powered {
            self.power
                .apply(&rec.outlet, Action::Off, who)
                .await
                .map_err(|e| ProvisionError::failed("vm.delete.power", e))?;
            self.note(id, |v| v.powered = false)?;
        }
        self.hub.publish(&rec.pi, Vec::new());
        self.note(id, |v| v.settings = None)?;
        if rec.reserved {
            self.reservations
                .remove(&rec.mac)
                .map_err(|e| ProvisionError::failed("vm.delete.reservation", e))?;
            self.note(id, |v| v.reserved = false)?;
        }
        let disks: Vec<String> = self.store.read(|s| {
            s.disks
                .values()
                .filter(|d| d.vm.as_deref() == Some(id))
                .map(|d| d.id.clone())
                .collect()
        });
        for d in disks {
            self.release_disk(&d).await?;
        }
        for export in [rec.ephemeral_export.clone(), rec.root_export.clone()]
            .into_iter()
            .flatten()
        {
            let name = export.name.clone();
            self.blocking("vm.delete.exports", move |b| b.unexport(&name))
                .await?;
        }
        self.note(id, |v| {
            v.ephemeral_export = None;
            v.root_export = None;
        })?;
        for file in [rec.ephemeral.clone(), rec.overlay.clone()]
            .into_iter()
            .flatten()
        {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ProvisionError::failed(
                        "vm.delete.files",
                        format!("{}: {e}", file.display()),
                    ));
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_dir(self.cfg.data_dir.join("vms").join(id));
        self.store.update(|s| {
            s.vms.remove(id);
            if let Some(pi) = s.pis.get_mut(&rec.pi)
                && pi.vm.as_deref() == Some(id)
            {
                pi.state = PiState::Free;
                pi.vm = None;
                pi.address = None;
                pi.metadata = Labels::new();
                pi.updated_at = now();
            }
            Ok(())
        })?;
        tracing::info!(vm = %id, pi = %rec.pi, "VM gone, Pi free");
        Ok(())
    }

    pub async fn reboot_vm(&self, id: &str, who: &str) -> Result<Vm, ProvisionError> {
        let _g = self.guard(id).await;
        let rec = self.vm_rec(id)?;
        if rec.state != VmState::Running {
            return Err(ProvisionError::conflict(
                codes::PI_BUSY,
                format!("VM {id} is {:?}, not running", rec.state),
            ));
        }
        self.power
            .apply(&rec.outlet, Action::Cycle, who)
            .await
            .map_err(|e| ProvisionError::failed("vm.reboot.power", e))?;
        self.vm(id)
    }

    pub fn set_vm_metadata(&self, id: &str, metadata: Labels) -> Result<Vm, ProvisionError> {
        self.store.update(|s| {
            let v = s.vms.get_mut(id).ok_or_else(|| vm_not_found(id))?;
            v.metadata = metadata.clone();
            let pi = v.pi.clone();
            if let Some(pi) = s.pis.get_mut(&pi) {
                pi.metadata = metadata;
                pi.updated_at = now();
            }
            Ok(())
        })?;
        self.vm(id)
    }
}
