//! The CPI against a real powerd serving only its power API (no `provisioning:`), and against
//! no powerd at all: the errors the director sees, and whether they may be retried.

use serde_json::json;

use crate::support::{Powerd, closed_port, cpi, request, write_config};

const SIMS: &str = "outlets:\n  - {id: a, backend: sim}\n";

#[test]
fn an_unreachable_powerd_is_retryable_and_create_vm_says_vm_creation_failed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!("http://127.0.0.1:{}", closed_port()),
        "t",
    );
    let a = cpi(Some(&cfg), &request("has_vm", json!(["vm-1"])));
    assert_eq!(a.error()["type"], "Bosh::Clouds::CloudError");
    assert_eq!(a.error()["ok_to_retry"], true);
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .starts_with("has_vm: http://127.0.0.1:")
    );
    let a = cpi(
        Some(&cfg),
        &request(
            "create_vm",
            json!(["agent-1", "img-0123456789abcdef", {}, {"default": {"type": "dynamic"}}, [], {}]),
        ),
    );
    assert_eq!(a.error()["type"], "Bosh::Clouds::VMCreationFailed");
    assert_eq!(a.error()["ok_to_retry"], true);
}

#[test]
fn a_powerd_without_provisioning_is_a_clear_non_retryable_error() {
    let p = Powerd::start(SIMS);
    let cfg = p.config();
    // a 404 of a missing route is not a missing VM: has_vm must not answer false
    for (method, args) in [
        ("has_vm", json!(["vm-1"])),
        ("delete_vm", json!(["vm-1"])),
        ("has_disk", json!(["disk-1"])),
    ] {
        let a = cpi(Some(&cfg), &request(method, args));
        let e = a.error();
        assert_eq!(e["type"], "Bosh::Clouds::CloudError", "{method}");
        assert_eq!(e["ok_to_retry"], false, "{method}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.ends_with("(does this powerd have `provisioning:` configured?)"),
            "{method}: {msg}"
        );
        assert!(a.stderr.contains(method), "{}", a.stderr);
    }
}

#[test]
fn the_context_selects_the_controller() {
    let p = Powerd::start(SIMS);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cpi.json");
    std::fs::write(
        &cfg,
        json!({
            "powerd": {"url": format!("http://127.0.0.1:{}", closed_port()), "token": "x"},
            "controllers": {"rack-a": {"url": p.url(), "token": crate::support::TOKEN}},
            "agent": {"mbus": "nats://127.0.0.1:4222"}
        })
        .to_string(),
    )
    .unwrap();
    let req = |ctx: serde_json::Value| {
        json!({"method": "has_vm", "arguments": ["vm-1"], "context": ctx, "api_version": 2})
            .to_string()
    };
    // the default controller is down: retryable
    let a = cpi(
        Some(&cfg),
        &req(json!({"director_uuid": "d", "request_id": "cpi-000001"})),
    );
    assert_eq!(a.error()["ok_to_retry"], true);
    assert!(
        a.stderr.contains("cpi-000001 has_vm via http://127.0.0.1:"),
        "{}",
        a.stderr
    );
    // rack-a answers (without provisioning): not retryable
    let a = cpi(
        Some(&cfg),
        &req(json!({"director_uuid": "d", "controller": "rack-a"})),
    );
    assert_eq!(a.error()["ok_to_retry"], false);
    assert!(
        a.stderr.contains(&format!("has_vm via {}", p.url())),
        "{}",
        a.stderr
    );
    let a = cpi(Some(&cfg), &req(json!({"controller": "rack-z"})));
    assert_eq!(
        a.error()["message"],
        "context.controller \"rack-z\" is not in the CPI config's controllers (rack-a)"
    );
}

#[test]
fn create_stemcell_of_a_missing_image_names_it() {
    let p = Powerd::start(SIMS);
    let a = cpi(
        Some(&p.config()),
        &request(
            "create_stemcell",
            json!(["/nonexistent/image", {"architecture": "arm64"}]),
        ),
    );
    assert_eq!(a.error()["type"], "Bosh::Clouds::CloudError");
    assert_eq!(a.error()["ok_to_retry"], false);
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .starts_with("create_stemcell: image /nonexistent/image: "),
        "{}",
        a.json
    );
}

/// Not a test of speed (none is asserted): prints the median wall time of CPI calls, for the
/// notes. `cargo nextest run -p cpi --run-ignored only -E 'test(wall_times)' --no-capture`.
#[test]
#[ignore]
fn wall_times() {
    let p = Powerd::start(SIMS);
    let cfg = p.config();
    let time = |req: &str| {
        let d: Vec<_> = (0..20).map(|_| cpi(Some(&cfg), req).took).collect();
        crate::support::median(d)
    };
    let info = time(&request("info", json!([])));
    let has_vm = time(&request("has_vm", json!(["vm-1"])));
    let calc = time(&request(
        "calculate_vm_cloud_properties",
        json!([{"ram": 1024, "cpu": 1, "ephemeral_disk_size": 1024}]),
    ));
    println!(
        "median of 20: info {info:?}, calculate_vm_cloud_properties {calc:?}, has_vm (one powerd round trip) {has_vm:?}"
    );
}
