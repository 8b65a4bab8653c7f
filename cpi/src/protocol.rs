//! The external CPI wire format: request, response and the director's error types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
pub struct Request {
    pub method: String,
    pub arguments: Vec<Value>,
    #[serde(default)]
    pub context: Map<String, Value>,
    #[serde(default)]
    pub api_version: Option<u32>,
}

/// Always serialised with all three keys: the director rejects a response missing any of them.
#[derive(Debug, Serialize)]
pub struct Response {
    pub result: Value,
    pub error: Option<CpiError>,
    pub log: String,
}

impl Response {
    pub fn ok(result: Value) -> Self {
        Self {
            result,
            error: None,
            log: String::new(),
        }
    }
    pub fn error(error: CpiError) -> Self {
        Self {
            result: Value::Null,
            error: Some(error),
            log: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpiError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub ok_to_retry: bool,
}

/// The director's error classes this CPI raises (`Bosh::Clouds::*`).
pub mod kind {
    pub const CPI_ERROR: &str = "Bosh::Clouds::CpiError";
    pub const NOT_IMPLEMENTED: &str = "Bosh::Clouds::NotImplemented";
    pub const NOT_SUPPORTED: &str = "Bosh::Clouds::NotSupported";
    pub const CLOUD_ERROR: &str = "Bosh::Clouds::CloudError";
    pub const VM_NOT_FOUND: &str = "Bosh::Clouds::VMNotFound";
    pub const VM_CREATION_FAILED: &str = "Bosh::Clouds::VMCreationFailed";
    pub const DISK_NOT_FOUND: &str = "Bosh::Clouds::DiskNotFound";
    pub const DISK_NOT_ATTACHED: &str = "Bosh::Clouds::DiskNotAttached";
}

impl CpiError {
    pub fn new(kind: &str, message: impl Into<String>, ok_to_retry: bool) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            ok_to_retry,
        }
    }

    /// A protocol error or a bug in the CPI: fatal for the director.
    pub fn cpi(message: impl Into<String>) -> Self {
        Self::new(kind::CPI_ERROR, message, false)
    }

    /// An IaaS failure; `ok_to_retry` says whether the same call may succeed later.
    pub fn cloud(message: impl Into<String>, ok_to_retry: bool) -> Self {
        Self::new(kind::CLOUD_ERROR, message, ok_to_retry)
    }

    /// The director falls back (resize/update disk: a new disk and a copy).
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(kind::NOT_SUPPORTED, message, false)
    }

    /// Tolerated by the director for optional methods (snapshots); an unknown method gets
    /// the legacy "Method is not known, got" message, which the director also reads as such.
    pub fn not_implemented(method: &str, known: bool) -> Self {
        let message = if known {
            format!("'{method}' is not implemented by the PiFoundry CPI")
        } else {
            format!("Method is not known, got '{method}'")
        };
        Self::new(kind::NOT_IMPLEMENTED, message, false)
    }
}
