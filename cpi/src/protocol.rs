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

impl CpiError {
    /// A protocol error or a bug in the CPI: fatal for the director.
    pub fn cpi(message: impl Into<String>) -> Self {
        Self {
            kind: "Bosh::Clouds::CpiError".into(),
            message: message.into(),
            ok_to_retry: false,
        }
    }
    /// Tolerated by the director for optional methods (metadata, snapshots, disk listing).
    pub fn not_implemented(method: &str, known: bool) -> Self {
        let message = if known {
            format!("'{method}' is not implemented yet by the PiFoundry CPI")
        } else {
            format!("Method is not known, got '{method}'")
        };
        Self {
            kind: "Bosh::Clouds::NotImplemented".into(),
            message,
            ok_to_retry: false,
        }
    }
}
