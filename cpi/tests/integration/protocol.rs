//! The wire protocol alone: answers that need no powerd, and bad input of every kind.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{cpi, request};

#[test]
fn info_reports_api_v2_and_pi_raw_stemcells() {
    // bosh-cli's first call: api_version 1, no config needed
    let a = cpi(
        None,
        r#"{"method":"info","arguments":[],"context":{"director_uuid":"d"},"api_version":1}"#,
    );
    assert_eq!(
        *a.result(),
        json!({"api_version": 2, "stemcell_formats": ["pi-raw"]})
    );
    assert_eq!(a.json["log"], "");
}

#[test]
fn info_needs_no_readable_config() {
    let a = cpi(
        Some(std::path::Path::new("/nonexistent/cpi.json")),
        &request("info", json!([])),
    );
    assert_eq!(a.result()["api_version"], 2);
}

#[test]
fn unknown_methods_are_not_implemented() {
    let a = cpi(
        None,
        r#"{"method":"frobnicate","arguments":["d-1",{}],"context":{},"api_version":2}"#,
    );
    let e = a.error();
    assert_eq!(e["type"], "Bosh::Clouds::NotImplemented");
    assert_eq!(e["ok_to_retry"], false);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Method is not known, got")
    );
}

#[test]
fn snapshots_are_not_implemented_and_update_disk_not_supported() {
    let e = cpi(None, &request("snapshot_disk", json!(["disk-1", {}])));
    assert_eq!(e.error()["type"], "Bosh::Clouds::NotImplemented");
    let e = cpi(None, &request("delete_snapshot", json!(["snap-1"])));
    assert_eq!(e.error()["type"], "Bosh::Clouds::NotImplemented");
    let e = cpi(None, &request("update_disk", json!(["disk-1", 2048, {}])));
    assert_eq!(e.error()["type"], "Bosh::Clouds::NotSupported");
}

#[test]
fn calculate_vm_cloud_properties_maps_ram_and_disk() {
    let a = cpi(
        None,
        &request(
            "calculate_vm_cloud_properties",
            json!([{"ram": 2048, "cpu": 4, "ephemeral_disk_size": 8192}]),
        ),
    );
    assert_eq!(
        *a.result(),
        json!({"min_ram_mib": 2048, "ephemeral_disk_size": 8192})
    );
}

#[test]
fn malformed_json_is_a_cpi_error_not_a_crash() {
    let a = cpi(None, "{not json");
    assert_eq!(a.error()["type"], "Bosh::Clouds::CpiError");
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .contains("invalid request JSON")
    );
    let a = cpi(None, "");
    assert_eq!(a.error()["type"], "Bosh::Clouds::CpiError");
    let a = cpi(None, "[1,2]");
    assert_eq!(a.error()["type"], "Bosh::Clouds::CpiError");
}

#[test]
fn a_request_without_arguments_is_rejected() {
    let a = cpi(None, r#"{"method":"info"}"#);
    assert_eq!(a.error()["type"], "Bosh::Clouds::CpiError");
    assert!(
        a.error()["message"].as_str().unwrap().contains("arguments"),
        "{}",
        a.json
    );
}

#[test]
fn wrong_argument_shapes_are_cpi_errors_naming_the_argument() {
    let cases = [
        (
            request("create_vm", json!(["a", "s", {}, [], [], {}])),
            "create_vm: argument 4 (networks) must be an object, got an array",
        ),
        (
            request("create_vm", json!(["a"])),
            "create_vm: expected 6 arguments (agent_id, stemcell_cid, cloud_properties, networks, disk_cids, env), got 1",
        ),
        (
            request("has_vm", json!([42])),
            "has_vm: argument 1 (vm_cid) must be a non-empty string, got a number",
        ),
        (
            request("create_disk", json!([-1, {}, null])),
            "create_disk: argument 1 (size) must be a positive integer (MiB), got a number",
        ),
        (
            request("create_stemcell", json!(["", {}])),
            "create_stemcell: argument 1 (image_path) must be a non-empty string, got an empty string",
        ),
    ];
    for (req, message) in cases {
        let a = cpi(None, &req);
        assert_eq!(a.error()["type"], "Bosh::Clouds::CpiError", "{req}");
        assert_eq!(a.error()["message"], message);
        assert_eq!(a.error()["ok_to_retry"], false);
    }
}

#[test]
fn bad_cloud_properties_are_cloud_errors_before_powerd_is_asked() {
    let a = cpi(
        None,
        &request(
            "create_vm",
            json!(["a", "img-1", {"instance_type": "t3.micro"}, {"d": {"type": "dynamic"}}, [], {}]),
        ),
    );
    assert_eq!(a.error()["type"], "Bosh::Clouds::CloudError");
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .contains("unknown key \"instance_type\"")
    );
}

#[test]
fn a_powerd_method_without_config_says_how_to_run_it() {
    let a = cpi(None, &request("has_vm", json!(["vm-1"])));
    assert_eq!(a.error()["type"], "Bosh::Clouds::CpiError");
    assert_eq!(
        a.error()["message"],
        "no CPI configuration file given (usage: pifoundry-cpi CONFIG.json)"
    );
}

#[test]
fn a_broken_config_is_one_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpi.json");
    std::fs::write(&path, "{\"powerd\": ").unwrap();
    let a = cpi(Some(&path), &request("has_vm", json!(["vm-1"])));
    let msg = a.error()["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with(&format!("CPI config {}: ", path.display())),
        "{msg}"
    );
    assert!(a.stderr.contains(&msg), "stderr: {}", a.stderr);
}

#[test]
fn a_parse_failure_is_one_json_error_on_stdout_and_nothing_on_stderr() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pifoundry-cpi"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{not json").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "pifoundry-cpi: Bosh::Clouds::CpiError: invalid request JSON: key must be a string at line 1 column 2\n"
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"result\":null,\"error\":{\"type\":\"Bosh::Clouds::CpiError\",\"message\":\"invalid request JSON: key must be a string at line 1 column 2\",\"ok_to_retry\":false},\"log\":\"\"}\n"
    );
}
