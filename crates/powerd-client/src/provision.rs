//! The JSON shapes of powerd's provisioning API: the Pi inventory, images, VMs and disks on the
//! admin listener (`/v1/...`), and the attachments the Pi's attach helper polls on the Pi
//! network. powerd serialises them; the CPI, `powerd ctl` and the stemcell's helper read them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use pifoundry_util::Arch;

/// Free-form `key: value` strings (labels, BOSH metadata).
pub type Labels = BTreeMap<String, String>;

/// Where a Pi is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiState {
    /// Asked for boot files but was never adopted by an operator: it gets nothing.
    Discovered,
    /// In the pool, waiting for a VM.
    Free,
    /// Claimed by a VM that is being set up.
    Provisioning,
    /// Carrying a VM.
    Running,
    /// Taken out of the pool by an operator.
    Broken,
}

impl fmt::Display for PiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PiState::Discovered => "discovered",
            PiState::Free => "free",
            PiState::Provisioning => "provisioning",
            PiState::Running => "running",
            PiState::Broken => "broken",
        })
    }
}

/// How a Pi gets its kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// DHCP + TFTP from powerd, root over NBD.
    #[default]
    Netboot,
    /// Boots from its own card; not offered to VMs that need netboot.
    SdOnly,
}

/// One Pi of the inventory, keyed by its 8-hex-digit board serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pi {
    pub serial: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The powerd outlet that powers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_mib: Option<u64>,
    pub pool: String,
    pub boot: BootMode,
    pub state: PiState,
    /// The VM it carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    /// Where it was last seen from (discovered) or its reserved address (with a VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The VM's BOSH metadata (deployment, job, index, …), shown on the Pi too.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub metadata: Labels,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<String>,
    pub updated_at: String,
}

/// `GET /v1/pis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiList {
    pub pis: Vec<Pi>,
}

/// The body of `PUT /v1/pis/{serial}`: registers, adopts or updates a Pi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiSpec {
    pub model: String,
    pub mac: String,
    pub outlet: String,
    pub arch: Arch,
    pub ram_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// The body of `POST /v1/pis/{serial}/state`: an operator takes a Pi out or puts it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiStateRequest {
    /// `free` or `broken`.
    pub state: PiState,
}

/// A stemcell's disk image, stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `img-<first 16 hex digits of the raw image's sha256>`.
    pub id: String,
    /// sha256 of the raw disk image.
    pub sha256: String,
    /// Bytes of the raw disk image.
    pub size: u64,
    pub arch: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Files of its boot partition served over TFTP.
    pub boot_files: Vec<String>,
    /// VMs that use it.
    pub vms: Vec<String>,
    pub created_at: String,
}

/// `GET /v1/images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<Image>,
}

/// The query of `POST /v1/images` (the body is the image itself, streamed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageUpload {
    pub arch: Option<Arch>,
    /// sha256 of the body as sent; checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Which Pis a VM may land on; every given field must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// A BOSH network spec as the director hands it to `create_vm` (the fields powerd uses; the
/// rest stays in the agent settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// `manual`, `dynamic` (or `vip`, which a Pi cannot have).
    #[serde(rename = "type", default = "manual")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default: Vec<String>,
}

fn manual() -> String {
    "manual".into()
}

/// The body of `POST /v1/vms`: claim, overlay, disks, exports, reservation, settings, power —
/// all or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVm {
    pub agent_id: String,
    /// Image id.
    pub image: String,
    #[serde(default)]
    pub constraints: Constraints,
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Size of a new ephemeral disk; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_disk_mib: Option<u64>,
    /// Persistent disks to attach at boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<String>,
    /// The agent settings the CPI built; powerd completes `disks` (and the network's `mac`)
    /// and serves them to this VM's Pi only. They carry secrets.
    pub settings: serde_json::Value,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub metadata: Labels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Creating,
    Running,
    Deleting,
}

/// A disk attached to a VM, at `/dev/nbd<slot>` on its Pi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub disk: String,
    pub slot: u8,
    pub device: String,
}

/// A VM: a claimed Pi running an image. Its settings are never shown here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// `vm-<uuid>`.
    pub id: String,
    pub agent_id: String,
    /// The Pi's serial.
    pub pi: String,
    pub image: String,
    /// The Pi's reserved address.
    pub address: String,
    pub state: VmState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_disk: Option<Attachment>,
    #[serde(default)]
    pub disks: Vec<Attachment>,
    #[serde(default)]
    pub metadata: Labels,
    pub created_at: String,
}

/// `GET /v1/vms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmList {
    pub vms: Vec<Vm>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// A sparse raw file.
    #[default]
    Raw,
    Qcow2,
}

/// The body of `POST /v1/disks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDisk {
    pub size_mib: u64,
    #[serde(default)]
    pub format: DiskFormat,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub metadata: Labels,
}

/// A persistent disk; it outlives VMs and is never deleted implicitly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// `disk-<uuid>`.
    pub id: String,
    pub size_mib: u64,
    pub format: DiskFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
    #[serde(default)]
    pub metadata: Labels,
    pub created_at: String,
}

/// `GET /v1/disks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskList {
    pub disks: Vec<Disk>,
}

/// The body of `POST /v1/disks/{id}/resize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeDisk {
    pub size_mib: u64,
}

/// Where the Pi's attach helper finds an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NbdTarget {
    pub host: String,
    pub port: u16,
    pub export: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    Connected,
    Disconnected,
}

/// One device the Pi should have (or drop), as the attach helper sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiAttachment {
    pub disk: String,
    pub slot: u8,
    pub device: String,
    pub nbd: NbdTarget,
    pub want: Want,
}

/// `GET /pifoundry/v1/attachments?after=N&wait=S` on the Pi network (long poll).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiAttachments {
    pub generation: u64,
    pub attachments: Vec<PiAttachment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confirmed {
    Connected,
    Disconnected,
    Failed,
}

/// The body of `POST /pifoundry/v1/attachments/{disk}`: the helper reports what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    pub state: Confirmed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_vm_reads_the_cpi_shape_and_refuses_unknown_keys() {
        let body = serde_json::json!({
            "agent_id": "a1", "image": "img-0123456789abcdef",
            "constraints": {"arch": "armv6l", "min_ram_mib": 512},
            "networks": {"default": {"type": "manual", "ip": "10.0.0.5", "netmask": "255.255.255.0",
                         "gateway": "10.0.0.1", "dns": ["10.0.0.1"], "default": ["dns", "gateway"]}},
            "ephemeral_disk_mib": 4096,
            "settings": {"agent_id": "a1"}
        });
        let vm: CreateVm = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(vm.constraints.arch, Some(Arch::Armv6l));
        assert_eq!(vm.networks["default"].kind, "manual");
        let mut bad = body;
        bad["surprise"] = serde_json::json!(1);
        let err = serde_json::from_value::<CreateVm>(bad).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn states_and_modes_have_their_wire_names() {
        assert_eq!(
            serde_json::to_value(PiState::Discovered).unwrap(),
            "discovered"
        );
        assert_eq!(serde_json::to_value(BootMode::SdOnly).unwrap(), "sd-only");
        assert_eq!(
            serde_json::to_value(Want::Disconnected).unwrap(),
            "disconnected"
        );
        assert_eq!(PiState::Provisioning.to_string(), "provisioning");
    }
}
