//! The JSON shapes of powerd's `/v1` API, shared by powerd (which serialises them) and its
//! clients (which read them). `/openapi.json` describes the same shapes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state an outlet is commanded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// One outlet as `/v1/outlets/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outlet {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `gpio`, `command` or `sim`.
    pub backend: String,
    /// The commanded state: no backend can read back whether the Pi really has power.
    pub state: PowerState,
    pub changed_at: Option<String>,
    pub changed_by: Option<String>,
    pub min_off_ms: u64,
}

/// `GET /v1/outlets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutletList {
    pub outlets: Vec<Outlet>,
}

/// The body of `PUT /v1/outlets/{id}/power`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    pub state: PowerState,
}

/// Every error response of `/v1`: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One of [`codes`]: stable, for programs.
    pub code: String,
    /// One line, for people.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// The stable error codes of `/v1`.
pub mod codes {
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const INVALID_BODY: &str = "invalid_body";
    pub const OUTLET_NOT_FOUND: &str = "outlet_not_found";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const BACKEND_FAILED: &str = "backend_failed";
    pub const STATE_NOT_SAVED: &str = "state_not_saved";
    // provisioning (see `crate::provision`)
    pub const PI_NOT_FOUND: &str = "pi_not_found";
    pub const IMAGE_NOT_FOUND: &str = "image_not_found";
    pub const VM_NOT_FOUND: &str = "vm_not_found";
    pub const DISK_NOT_FOUND: &str = "disk_not_found";
    /// Nothing in the pool matches the VM's constraints: retrying will not help.
    pub const NO_FREE_PI: &str = "no_free_pi";
    pub const IMAGE_IN_USE: &str = "image_in_use";
    pub const DISK_ATTACHED: &str = "disk_attached";
    pub const PI_BUSY: &str = "pi_busy";
    pub const TOO_MANY_NETWORKS: &str = "too_many_networks";
    pub const INVALID_CONSTRAINTS: &str = "invalid_constraints";
    /// The Pi did not confirm the device in time; the attach was rolled back.
    pub const ATTACH_TIMEOUT: &str = "attach_timeout";
    /// A step of a VM's creation failed (the message names it); everything was rolled back.
    pub const PROVISION_FAILED: &str = "provision_failed";
    pub const UPLOAD_DIGEST_MISMATCH: &str = "upload_digest_mismatch";
    /// The upload is not a disk image with a FAT boot partition (nor a gzip'd tar of one).
    pub const BAD_IMAGE: &str = "bad_image";
    /// The VM has no free NBD device slot (`/dev/nbd2`..`/dev/nbd15`).
    pub const NO_SLOT: &str = "no_slot";
    /// The manual IP is taken, or the dynamic pool is used up.
    pub const NO_FREE_ADDRESS: &str = "no_free_address";
    /// `/v1` provisioning routes on a powerd without a `provisioning:` section.
    pub const PROVISIONING_DISABLED: &str = "provisioning_disabled";
}
