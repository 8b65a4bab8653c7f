//! Persistent disks through the HTTP API: real qemu-img files; an attach answers once the
//! Pi's helper (here a task speaking to pinet's Hub as the helper's HTTP calls do) confirmed,
//! and is rolled back when it does not.

use std::sync::Arc;

use powerd::provision::{Fail, Provisioner};
use powerd_client::provision::{Confirm, Confirmed, Want};
use powerd_client::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::prov::{self, serial};
use crate::support::{Fixture, Server, text};

fn code(r: &powerd_client::Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

/// Plays the Pi's attach helper: confirms whatever it is asked, as `answer` says.
fn helper(
    p: Arc<Provisioner>,
    serial: String,
    answer: Option<Confirmed>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut after = 0;
        loop {
            let list = p
                .hub
                .poll(&serial, after, std::time::Duration::from_secs(5))
                .await;
            after = list.generation;
            for a in list.attachments {
                let state = match (answer, a.want) {
                    (Some(s), Want::Connected) => s,
                    (_, Want::Disconnected) => Confirmed::Disconnected,
                    (None, Want::Connected) => continue,
                };
                // an entry changed since the poll is not confirmable: the next poll has it
                let _ = p.hub.confirm(
                    &serial,
                    &a.disk,
                    Confirm {
                        state,
                        message: None,
                    },
                );
            }
        }
    })
}

async fn setup(fx: &Fixture) -> (Server, Arc<Provisioner>, Value) {
    let srv = prov::start(fx, 1).await;
    prov::register(&srv, 1).await;
    let image = prov::upload(&srv, &prov::make_image(fx.dir.path(), 40, "disks")).await;
    let vm = prov::create_vm(&srv, &image).await;
    let p = srv.running.app.provision.clone().unwrap();
    (srv, p, serde_json::to_value(vm).unwrap())
}

async fn new_disk(srv: &Server, body: Value) -> String {
    let r = srv.call(Method::POST, "/v1/disks", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    r.json()["id"].as_str().unwrap().to_string()
}

async fn attach_disk(srv: &Server, disk: &str, body: Value) -> powerd_client::Response {
    srv.call(
        Method::POST,
        &format!("/v1/disks/{disk}/attach"),
        Some(body),
    )
    .await
}

fn virtual_size(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["virtual-size"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_waits_for_the_pi_and_detach_resize_delete_follow_the_rules() {
    let fx = Fixture::new();
    let (srv, p, vm) = setup(&fx).await;
    let vm_id = vm["id"].as_str().unwrap();
    let addr = vm["address"].as_str().unwrap().parse().unwrap();
    let pi_helper = helper(p.clone(), serial(0), Some(Confirmed::Connected));
    let disk = new_disk(
        &srv,
        json!({"size_mib": 64, "format": "qcow2", "metadata": {"k": "v"}}),
    )
    .await;
    let file = prov::data(&fx).join("disks").join(format!("{disk}.qcow2"));
    assert_eq!(virtual_size(&file), 64 << 20);

    // grow only, and only while detached
    let r = srv
        .call(
            Method::POST,
            &format!("/v1/disks/{disk}/resize"),
            Some(json!({"size_mib": 32})),
        )
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::CONFLICT, "invalid_body"),
        "{}",
        text(&r)
    );
    let r = srv
        .call(
            Method::POST,
            &format!("/v1/disks/{disk}/resize"),
            Some(json!({"size_mib": 96})),
        )
        .await;
    assert_eq!(r.json()["size_mib"], 96, "{}", text(&r));
    assert_eq!(virtual_size(&file), 96 << 20);

    let r = attach_disk(&srv, &disk, json!({"vm": vm_id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(
        r.json(),
        json!({"disk": disk, "slot": 2, "device": "/dev/nbd2"})
    );
    let settings = powerd::pinet::Directory::vm_at(&*p, addr).unwrap().settings;
    assert_eq!(
        settings["disks"]["persistent"][&disk],
        json!({"path": "/dev/nbd2"})
    );
    let listed = srv
        .call(Method::GET, &format!("/v1/disks?vm={vm_id}"), None)
        .await
        .json();
    assert_eq!(listed["disks"][0]["id"], json!(disk));
    assert_eq!(
        srv.call(Method::GET, &format!("/v1/vms/{vm_id}"), None)
            .await
            .json()["disks"][0]["slot"],
        2
    );
    assert_eq!(p.exports().len(), 3, "root, ephemeral and the disk");
    // attaching again is a no-op; elsewhere, resize, delete are refused
    let r = attach_disk(&srv, &disk, json!({"vm": vm_id})).await;
    assert_eq!(r.status, StatusCode::OK);
    for (m, path, body) in [
        (
            Method::POST,
            format!("/v1/disks/{disk}/resize"),
            Some(json!({"size_mib": 128})),
        ),
        (Method::DELETE, format!("/v1/disks/{disk}"), None),
    ] {
        let r = srv.call(m, &path, body).await;
        assert_eq!(
            (r.status, code(&r).as_str()),
            (StatusCode::CONFLICT, "disk_attached"),
            "{path}"
        );
    }

    let r = srv
        .call(Method::POST, &format!("/v1/disks/{disk}/detach"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert!(r.json().get("vm").is_none());
    let settings = powerd::pinet::Directory::vm_at(&*p, addr).unwrap().settings;
    assert_eq!(settings["disks"]["persistent"], json!({}));
    assert_eq!(p.exports().len(), 2);
    let r = srv
        .call(
            Method::PUT,
            &format!("/v1/disks/{disk}/metadata"),
            Some(json!({"a": "b"})),
        )
        .await;
    assert_eq!(r.json()["metadata"], json!({"a": "b"}));

    // a persistent disk outlives its VM
    let r = attach_disk(&srv, &disk, json!({"vm": vm_id})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/vms/{vm_id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let d = srv
        .call(Method::GET, &format!("/v1/disks/{disk}"), None)
        .await
        .json();
    assert!(d.get("vm").is_none() && file.exists(), "{d}");
    assert!(p.exports().is_empty());
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/disks/{disk}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(!file.exists());
    let r = srv
        .call(Method::GET, &format!("/v1/disks/{disk}"), None)
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::NOT_FOUND, "disk_not_found")
    );
    pi_helper.abort();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_the_pi_does_not_confirm_is_rolled_back() {
    let fx = Fixture::new();
    let (srv, p, vm) = setup(&fx).await;
    let vm_id = vm["id"].as_str().unwrap();
    let addr = vm["address"].as_str().unwrap().parse().unwrap();
    let disk = new_disk(&srv, json!({"size_mib": 16})).await;
    let attach_path = format!("/v1/disks/{disk}/attach");
    let attach = || srv.call(Method::POST, &attach_path, Some(json!({"vm": vm_id})));
    let rolled_back = |what: &str| {
        let settings = powerd::pinet::Directory::vm_at(&*p, addr).unwrap().settings;
        assert_eq!(settings["disks"]["persistent"], json!({}), "{what}");
        assert_eq!(p.exports().len(), 2, "{what}: only root and ephemeral");
    };

    // nobody answers: 504 after attach_timeout (2 s)
    let r = attach().await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "attach_timeout"),
        "{}",
        text(&r)
    );
    rolled_back("timeout");
    assert!(
        srv.call(Method::GET, &format!("/v1/disks/{disk}"), None)
            .await
            .json()
            .get("vm")
            .is_none()
    );

    // the helper reports a failure
    let h = helper(p.clone(), serial(0), Some(Confirmed::Failed));
    let r = attach().await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "provision_failed"),
        "{}",
        text(&r)
    );
    rolled_back("failed");
    h.abort();

    // a step of ours fails
    let h = helper(p.clone(), serial(0), Some(Confirmed::Connected));
    for step in ["export", "settings", "confirm"] {
        fx.opts.failpoints.clear();
        fx.opts
            .failpoints
            .set(&format!("disk.attach.{step}"), Fail::Error);
        let r = attach().await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{step}: {}",
            text(&r)
        );
        rolled_back(step);
    }
    fx.opts.failpoints.clear();
    assert_eq!(attach().await.status, StatusCode::OK);
    h.abort();

    // the rules: an unknown VM, a full set of slots
    let other = new_disk(&srv, json!({"size_mib": 1})).await;
    let r = attach_disk(&srv, &other, json!({"vm": "vm-nope"})).await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::NOT_FOUND, "vm_not_found")
    );
    let r = attach_disk(&srv, &other, json!({"vm": vm_id, "x": 1})).await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
    let r = srv
        .call(Method::POST, "/v1/disks", Some(json!({"size_mib": 0})))
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ephemeral_disk_is_published_on_slot_1_without_create_waiting_for_it() {
    let fx = Fixture::new();
    // no helper runs: create returned all the same
    let (srv, p, vm) = setup(&fx).await;
    let vm_id = vm["id"].as_str().unwrap();
    let ephemeral_id = format!("{vm_id}-ephemeral");
    let now = p
        .hub
        .poll(&serial(0), 0, std::time::Duration::from_secs(0))
        .await;
    assert_eq!(now.attachments.len(), 1, "{:?}", now.attachments);
    let a = &now.attachments[0];
    assert_eq!(
        (a.disk.as_str(), a.slot, a.device.as_str(), a.want),
        (ephemeral_id.as_str(), 1, "/dev/nbd1", Want::Connected)
    );
    let exported = p
        .exports()
        .into_iter()
        .find(|e| e.name == a.nbd.export)
        .expect("the listed export exists");
    assert!(exported.file.ends_with("ephemeral.raw"), "{exported:?}");
    assert_eq!(
        (a.nbd.host.as_str(), a.nbd.port),
        (exported.host.to_string().as_str(), exported.port)
    );
    // the helper's confirmation is accepted (the HTTP handler answers it 204)
    let confirmed = p.hub.confirm(
        &serial(0),
        &ephemeral_id,
        Confirm {
            state: Confirmed::Connected,
            message: None,
        },
    );
    assert!(confirmed.is_ok(), "{confirmed:?}");

    // a persistent disk joins it, sorted by slot, and the ephemeral entry stays
    let pi_helper = helper(p.clone(), serial(0), Some(Confirmed::Connected));
    let disk = new_disk(&srv, json!({"size_mib": 8})).await;
    let r = attach_disk(&srv, &disk, json!({"vm": vm_id})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    let now = p
        .hub
        .poll(&serial(0), 0, std::time::Duration::from_secs(0))
        .await;
    let listed: Vec<(String, u8)> = now
        .attachments
        .iter()
        .map(|a| (a.disk.clone(), a.slot))
        .collect();
    assert_eq!(listed, vec![(ephemeral_id, 1), (disk, 2)]);
    pi_helper.abort();
    srv.stop().await;
}
