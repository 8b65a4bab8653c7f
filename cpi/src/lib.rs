//! The PiFoundry BOSH CPI (external CPI, API v2): one JSON request on stdin, one JSON
//! response on stdout, logs on stderr. Every method becomes calls to powerd's provisioning
//! API on the controller the configuration (and a cpi-config's `context`) selects; the CPI
//! itself keeps no state.

pub mod call;
pub mod cloud;
pub mod config;
pub mod props;
pub mod protocol;
pub mod settings;

use std::path::Path;

use call::Call;
use config::Config;
use protocol::{CpiError, Request, Response};
use serde_json::{Value, json};

/// The CPI API version this executable speaks.
pub const API_VERSION: u32 = 2;
/// Stemcell formats accepted by `create_stemcell`; must intersect the stemcell's `stemcell_formats`.
pub const STEMCELL_FORMATS: &[&str] = &["pi-raw"];

/// One line on stderr, which the director appends to the task's CPI log.
pub fn log(line: &str) {
    eprintln!("pifoundry-cpi: {line}");
}

/// Handles one raw request without a configuration: `info` and the methods that need no
/// powerd answer; the rest are checked and then refused (used by the fuzz target).
pub fn handle_raw(input: &[u8]) -> Response {
    handle_with(input, || {
        Err(CpiError::cpi(
            "no CPI configuration file given (usage: pifoundry-cpi CONFIG.json)",
        ))
    })
}

/// Handles one raw request and always produces a response, even for malformed input. The
/// configuration is read only by calls that need powerd.
pub fn handle_file(input: &[u8], config: &Path) -> Response {
    handle_with(input, || Config::load(config))
}

fn handle_with(input: &[u8], config: impl FnOnce() -> Result<Config, CpiError>) -> Response {
    let req = match serde_json::from_slice::<Request>(input) {
        Ok(req) => req,
        Err(e) => return Response::error(CpiError::cpi(format!("invalid request JSON: {e}"))),
    };
    match run(&req, config) {
        Ok(result) => Response::ok(result),
        Err(e) => Response::error(e),
    }
}

fn run(
    req: &Request,
    config: impl FnOnce() -> Result<Config, CpiError>,
) -> Result<Value, CpiError> {
    let call = Call::parse(req)?;
    match &call {
        Call::Info => {
            return Ok(json!({
                "api_version": API_VERSION,
                "stemcell_formats": STEMCELL_FORMATS,
            }));
        }
        // a Pi's RAM is its model's; the CPU count is not a placement constraint
        Call::CalculateVmCloudProperties {
            ram_mib,
            ephemeral_disk_mib,
        } => {
            let mut p = json!({ "min_ram_mib": ram_mib });
            if *ephemeral_disk_mib > 0 {
                p["ephemeral_disk_size"] = json!(ephemeral_disk_mib);
            }
            return Ok(p);
        }
        Call::UpdateDisk { disk } => {
            return Err(CpiError::not_supported(format!(
                "update_disk: {disk}: changing a disk in place is not supported; copy to a new disk"
            )));
        }
        Call::Unimplemented(m) => return Err(CpiError::not_implemented(m, true)),
        _ => {}
    }
    debug_assert!(call.needs_powerd());
    let cfg = config()?;
    let endpoint = cfg.select(&req.context)?;
    let request_id = req
        .context
        .get("request_id")
        .and_then(Value::as_str)
        .unwrap_or("-");
    log(&format!("{request_id} {} via {}", req.method, endpoint.url));
    cloud::Cloud::new(&cfg, endpoint)?.run(call)
}
