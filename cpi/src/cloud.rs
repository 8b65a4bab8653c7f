//! Each CPI method as powerd calls (contract §7), and powerd's errors as the director's.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::call::Call;
use crate::config::{Config, Endpoint};
use crate::protocol::{CpiError, kind};
use crate::settings;
use powerd_client::provision::{CreateDisk, CreateVm, ImageUpload};
use powerd_client::{ClientError, Credentials, blocking, codes};

pub struct Cloud<'a> {
    cfg: &'a Config,
    endpoint: Endpoint,
    powerd: blocking::Client,
}

/// A powerd failure in `what`: a `CloudError` that is retryable exactly when powerd was
/// unreachable or failed on its side.
fn cloud(what: &str, e: ClientError) -> CpiError {
    let hint = if matches!(
        e.code(),
        Some(codes::NOT_FOUND | codes::PROVISIONING_DISABLED)
    ) {
        " (does this powerd have `provisioning:` configured?)"
    } else {
        ""
    };
    CpiError::cloud(format!("{what}: {e}{hint}"), e.retryable())
}

fn not_found(kind: &str, what: &str, e: &ClientError) -> CpiError {
    CpiError::new(kind, format!("{what}: {e}"), false)
}

impl<'a> Cloud<'a> {
    pub fn new(cfg: &'a Config, endpoint: Endpoint) -> Result<Cloud<'a>, CpiError> {
        let powerd =
            blocking::Client::new(&endpoint.url, Credentials::Bearer(endpoint.token.clone()))
                .map_err(|e| CpiError::cpi(format!("powerd client: {e}")))?
                .with_timeout(cfg.request_timeout());
        Ok(Cloud {
            cfg,
            endpoint,
            powerd,
        })
    }

    pub fn run(&self, call: Call) -> Result<Value, CpiError> {
        match call {
            Call::CreateStemcell { image_path, props } => {
                let sha256 = sha256_of(&image_path)?;
                let upload = ImageUpload {
                    arch: props.arch,
                    sha256: Some(sha256),
                    name: props.name,
                    version: props.version,
                };
                let t = Instant::now();
                let image = self
                    .powerd
                    .upload_image(&image_path, &upload, self.cfg.upload_timeout())
                    .map_err(|e| cloud("create_stemcell", e))?;
                crate::log(&format!(
                    "create_stemcell: {} uploaded as {} ({} bytes raw) in {:.1} s",
                    image_path.display(),
                    image.id,
                    image.size,
                    t.elapsed().as_secs_f64()
                ));
                Ok(json!(image.id))
            }
            Call::DeleteStemcell { cid } => match self.powerd.delete_image(&cid) {
                Ok(()) => Ok(Value::Null),
                Err(e) if e.is_not_found(codes::IMAGE_NOT_FOUND) => Ok(Value::Null),
                Err(e) => Err(cloud("delete_stemcell", e)),
            },
            Call::CreateVm {
                agent_id,
                stemcell_cid,
                mut props,
                networks,
                disk_cids,
                env,
            } => {
                let specs = settings::networks(&networks)?;
                if props.constraints.pool.is_none() {
                    props.constraints.pool = self.endpoint.pool.clone();
                }
                let ephemeral = props.ephemeral_disk_mib.is_some();
                let body = CreateVm {
                    settings: settings::agent_settings(
                        &agent_id,
                        &self.cfg.agent,
                        &networks,
                        ephemeral,
                        &env,
                    ),
                    agent_id,
                    image: stemcell_cid,
                    constraints: props.constraints,
                    networks: specs,
                    ephemeral_disk_mib: props.ephemeral_disk_mib,
                    disks: disk_cids,
                    metadata: Default::default(),
                };
                let vm = self.powerd.create_vm(&body).map_err(|e| {
                    let mut err = cloud("create_vm", e);
                    // the director retries VMCreationFailed (up to max_vm_create_tries)
                    if err.ok_to_retry {
                        err.kind = kind::VM_CREATION_FAILED.into();
                    }
                    err
                })?;
                crate::log(&format!(
                    "create_vm: {} on Pi {} at {}",
                    vm.id, vm.pi, vm.address
                ));
                Ok(json!([vm.id, Value::Object(networks)]))
            }
            Call::DeleteVm { vm } => match self.powerd.delete_vm(&vm) {
                Ok(()) => Ok(Value::Null),
                Err(e) if e.is_not_found(codes::VM_NOT_FOUND) => {
                    crate::log(&format!("delete_vm: {vm} is already gone"));
                    Ok(Value::Null)
                }
                Err(e) => Err(cloud("delete_vm", e)),
            },
            Call::HasVm { vm } => match self.powerd.vm(&vm) {
                Ok(_) => Ok(json!(true)),
                Err(e) if e.is_not_found(codes::VM_NOT_FOUND) => Ok(json!(false)),
                Err(e) => Err(cloud("has_vm", e)),
            },
            Call::RebootVm { vm } => self.vm_call("reboot_vm", self.powerd.reboot_vm(&vm)),
            Call::SetVmMetadata { vm, metadata } => self.vm_call(
                "set_vm_metadata",
                self.powerd.set_vm_metadata(&vm, &metadata),
            ),
            Call::GetDisks { vm } => {
                let disks = self
                    .powerd
                    .disks(Some(&vm))
                    .map_err(|e| cloud("get_disks", e))?;
                let ids: Vec<String> = disks
                    .into_iter()
                    .filter(|d| d.vm.as_deref() == Some(vm.as_str()))
                    .map(|d| d.id)
                    .collect();
                Ok(json!(ids))
            }
            Call::CreateDisk { size_mib, props } => {
                let disk = self
                    .powerd
                    .create_disk(&CreateDisk {
                        size_mib,
                        format: props.format,
                        metadata: Default::default(),
                    })
                    .map_err(|e| cloud("create_disk", e))?;
                Ok(json!(disk.id))
            }
            Call::DeleteDisk { disk } => match self.powerd.delete_disk(&disk) {
                Ok(()) => Ok(Value::Null),
                Err(e) if e.is_not_found(codes::DISK_NOT_FOUND) => Ok(Value::Null),
                Err(e) => Err(cloud("delete_disk", e)),
            },
            Call::AttachDisk { vm, disk } => self.attach(&vm, &disk),
            Call::DetachDisk { vm, disk } => self.detach(&vm, &disk),
            Call::HasDisk { disk } => match self.powerd.disk(&disk) {
                Ok(_) => Ok(json!(true)),
                Err(e) if e.is_not_found(codes::DISK_NOT_FOUND) => Ok(json!(false)),
                Err(e) => Err(cloud("has_disk", e)),
            },
            Call::SetDiskMetadata { disk, metadata } => {
                match self.powerd.set_disk_metadata(&disk, &metadata) {
                    Ok(()) => Ok(Value::Null),
                    Err(e) if e.is_not_found(codes::DISK_NOT_FOUND) => {
                        Err(not_found(kind::DISK_NOT_FOUND, "set_disk_metadata", &e))
                    }
                    Err(e) => Err(cloud("set_disk_metadata", e)),
                }
            }
            Call::ResizeDisk { disk, size_mib } => self.resize(&disk, size_mib),
            Call::Info
            | Call::CalculateVmCloudProperties { .. }
            | Call::UpdateDisk { .. }
            | Call::Unimplemented(_) => Err(CpiError::cpi("answered without powerd")),
        }
    }

    fn vm_call(&self, what: &str, r: Result<(), ClientError>) -> Result<Value, CpiError> {
        match r {
            Ok(()) => Ok(Value::Null),
            Err(e) if e.is_not_found(codes::VM_NOT_FOUND) => {
                Err(not_found(kind::VM_NOT_FOUND, what, &e))
            }
            Err(e) => Err(cloud(what, e)),
        }
    }

    /// The hint is the device the agent finds. A disk already on this VM (attached at
    /// create_vm from `disk_cids`) answers its device again.
    fn attach(&self, vm: &str, disk: &str) -> Result<Value, CpiError> {
        let d = self.disk("attach_disk", disk)?;
        if let (Some(on), Some(slot)) = (&d.vm, d.slot)
            && on == vm
        {
            return Ok(json!({ "path": format!("/dev/nbd{slot}") }));
        }
        match self.powerd.attach_disk(disk, vm) {
            Ok(a) => Ok(json!({ "path": a.device })),
            Err(e) if e.is_not_found(codes::VM_NOT_FOUND) => {
                Err(not_found(kind::VM_NOT_FOUND, "attach_disk", &e))
            }
            Err(e) if e.is_not_found(codes::DISK_NOT_FOUND) => {
                Err(not_found(kind::DISK_NOT_FOUND, "attach_disk", &e))
            }
            Err(e) => Err(cloud("attach_disk", e)),
        }
    }

    fn detach(&self, vm: &str, disk: &str) -> Result<Value, CpiError> {
        let d = self.disk("detach_disk", disk)?;
        if d.vm.as_deref() != Some(vm) {
            return Err(CpiError::new(
                kind::DISK_NOT_ATTACHED,
                format!(
                    "detach_disk: {disk} is not attached to {vm} ({})",
                    d.vm.map_or("detached".to_string(), |o| format!("attached to {o}"))
                ),
                false,
            ));
        }
        self.powerd
            .detach_disk(disk)
            .map(|()| Value::Null)
            .map_err(|e| cloud("detach_disk", e))
    }

    /// powerd grows detached disks only; anything else makes the director copy instead.
    fn resize(&self, disk: &str, size_mib: u64) -> Result<Value, CpiError> {
        let d = self.disk("resize_disk", disk)?;
        if let Some(vm) = &d.vm {
            return Err(CpiError::not_supported(format!(
                "resize_disk: {disk} is attached to {vm}; powerd resizes detached disks only"
            )));
        }
        if size_mib < d.size_mib {
            return Err(CpiError::not_supported(format!(
                "resize_disk: {disk} is {} MiB; shrinking to {size_mib} MiB is not supported",
                d.size_mib
            )));
        }
        if size_mib == d.size_mib {
            return Ok(Value::Null);
        }
        match self.powerd.resize_disk(disk, size_mib) {
            Ok(()) => Ok(Value::Null),
            Err(e) if e.status().is_some_and(|s| s == 409 || s == 400 || s == 422) => {
                Err(CpiError::not_supported(format!("resize_disk: {e}")))
            }
            Err(e) => Err(cloud("resize_disk", e)),
        }
    }

    fn disk(&self, what: &str, id: &str) -> Result<powerd_client::provision::Disk, CpiError> {
        self.powerd.disk(id).map_err(|e| {
            if e.is_not_found(codes::DISK_NOT_FOUND) {
                not_found(kind::DISK_NOT_FOUND, what, &e)
            } else {
                cloud(what, e)
            }
        })
    }
}

/// The sha256 of the image, read once in 1 MiB steps, so powerd can check what it received.
fn sha256_of(path: &Path) -> Result<String, CpiError> {
    let err = |e: std::io::Error| {
        CpiError::cloud(
            format!("create_stemcell: image {}: {e}", path.display()),
            false,
        )
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    if !f.metadata().map_err(err)?.is_file() {
        return Err(CpiError::cloud(
            format!("create_stemcell: image {} is not a file", path.display()),
            false,
        ));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
