//! The PiFoundry BOSH CPI: one JSON request on stdin, one JSON response on stdout.
//!
//! Today it answers `info` (API v2, stemcell format `pi-raw`) and reports every other method as
//! `Bosh::Clouds::NotImplemented`; the methods that drive powerd come with the provisioning API.

pub mod protocol;

use protocol::{CpiError, Request, Response};
use serde_json::{Value, json};

/// The CPI API version this executable speaks.
pub const API_VERSION: u32 = 2;
/// Stemcell formats accepted by `create_stemcell`; must intersect the stemcell's `stemcell_formats`.
pub const STEMCELL_FORMATS: &[&str] = &["pi-raw"];

/// CPI API v2 methods; those other than `info` arrive with the provisioning API.
const KNOWN_METHODS: &[&str] = &[
    "info",
    "create_stemcell",
    "delete_stemcell",
    "create_vm",
    "delete_vm",
    "has_vm",
    "reboot_vm",
    "set_vm_metadata",
    "calculate_vm_cloud_properties",
    "get_disks",
    "create_disk",
    "delete_disk",
    "attach_disk",
    "detach_disk",
    "has_disk",
    "set_disk_metadata",
    "resize_disk",
    "update_disk",
    "snapshot_disk",
    "delete_snapshot",
];

/// Handles one raw request and always produces a response, even for malformed input.
pub fn handle_raw(input: &[u8]) -> Response {
    match serde_json::from_slice::<Request>(input) {
        Ok(req) => handle(&req),
        Err(e) => Response::error(CpiError::cpi(format!("invalid request JSON: {e}"))),
    }
}

pub fn handle(req: &Request) -> Response {
    match dispatch(req) {
        Ok(result) => Response::ok(result),
        Err(e) => Response::error(e),
    }
}

fn dispatch(req: &Request) -> Result<Value, CpiError> {
    match req.method.as_str() {
        "info" => Ok(json!({
            "api_version": API_VERSION,
            "stemcell_formats": STEMCELL_FORMATS,
        })),
        other => Err(CpiError::not_implemented(
            other,
            KNOWN_METHODS.contains(&other),
        )),
    }
}
