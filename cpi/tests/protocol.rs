//! Runs the real CPI executable the way the director does: JSON on stdin, JSON on stdout.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn call(input: &str) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pifoundry-cpi"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "stdout must hold exactly one JSON line: {text:?}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    for key in ["result", "error", "log"] {
        assert!(v.get(key).is_some(), "response lacks {key}: {v}");
    }
    v
}

#[test]
fn info_reports_api_v2_and_pi_raw_stemcells() {
    let v = call(r#"{"method":"info","arguments":[],"context":{"director_uuid":"d"}}"#);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(
        v["result"],
        json!({"api_version": 2, "stemcell_formats": ["pi-raw"]})
    );
    assert_eq!(v["log"], "");
}

#[test]
fn unknown_methods_are_not_implemented() {
    let v = call(r#"{"method":"frobnicate","arguments":["d-1",{}],"context":{},"api_version":2}"#);
    assert_eq!(v["result"], Value::Null);
    assert_eq!(v["error"]["type"], "Bosh::Clouds::NotImplemented");
    assert_eq!(v["error"]["ok_to_retry"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Method is not known, got")
    );
}

#[test]
fn malformed_json_is_a_cpi_error_not_a_crash() {
    let v = call("{not json");
    assert_eq!(v["error"]["type"], "Bosh::Clouds::CpiError");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid request JSON")
    );
}

#[test]
fn a_request_without_arguments_is_rejected() {
    let v = call(r#"{"method":"info"}"#);
    assert_eq!(v["error"]["type"], "Bosh::Clouds::CpiError");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("arguments"),
        "{v}"
    );
}

#[test]
fn known_but_unbuilt_methods_say_so() {
    let v = call(r#"{"method":"create_vm","arguments":["a","s",{},{},[],{}],"context":{}}"#);
    assert_eq!(v["error"]["type"], "Bosh::Clouds::NotImplemented");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'create_vm' is not implemented yet")
    );
}

#[test]
fn a_failure_is_one_json_error_on_stdout_and_nothing_on_stderr() {
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
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"result\":null,\"error\":{\"type\":\"Bosh::Clouds::CpiError\",\"message\":\"invalid request JSON: key must be a string at line 1 column 2\",\"ok_to_retry\":false},\"log\":\"\"}\n"
    );
}
