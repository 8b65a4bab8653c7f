//! A director-like harness: the real CPI executable, called as bosh-cli 7.10.6 calls it in
//! `bosh create-env` / `delete-env` (the same methods, order and argument shapes), against a
//! real powerd with provisioning on loopback.

use serde_json::{Value, json};

use crate::support::prov::{self, AttachStandIn, PI_NET};
use crate::support::{Answer, cpi, request};

const AGENT_ID: &str = "c5e5d1a4-4ea9-4b7c-a3f2-6a0e1c2b9d11";

fn info(cfg: &std::path::Path) {
    // bosh-cli sends api_version 1 to info and 2 afterwards
    let a = cpi(
        Some(cfg),
        &json!({"method": "info", "arguments": [], "context": {"director_uuid": "d"}, "api_version": 1})
            .to_string(),
    );
    assert_eq!(a.result()["api_version"], 2);
}

fn call(cfg: &std::path::Path, method: &str, args: Value) -> Answer {
    cpi(Some(cfg), &request(method, args))
}

/// The networks bosh-cli passes for bosh-deployment's single manual network.
fn networks() -> Value {
    json!({"default": {
        "type": "manual", "ip": format!("{PI_NET}.20"), "netmask": "255.255.255.0",
        "gateway": format!("{PI_NET}.1"), "dns": [format!("{PI_NET}.1")],
        "default": ["dns", "gateway"], "cloud_properties": {}
    }})
}

/// create_vm's env as bosh-cli builds it: only these four keys.
fn env() -> Value {
    json!({
        "bosh": {
            "mbus": {"cert": {"ca": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
                              "certificate": "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n",
                              "private_key": "-----BEGIN RSA PRIVATE KEY-----\nK\n-----END RSA PRIVATE KEY-----\n"}},
            "password": "$6$4gDD3aV0rdqlrKC$2axHCxGKIObs6tAmMTqYCspcdvQXh3JJcvWOY2WGb4SrdXtnCyNaWlrf3WTqMzv0R",
            "tags": {"deployment": "bosh", "director": "bosh-init"}
        },
        "persistent_disk_fs": ""
    })
}

#[test]
fn create_env_and_delete_env_through_the_real_binary() {
    let (p, http) = prov::powerd(2);
    let cfg = p.config();
    let work = tempfile::tempdir().unwrap();
    let image = prov::stemcell_image(work.path());
    let powerd = prov::client(&p);

    info(&cfg);
    info(&cfg);
    let a = call(
        &cfg,
        "create_stemcell",
        json!([image.display().to_string(), {"architecture": "arm64", "board": "rpi4", "disk_format": "raw"}]),
    );
    let stemcell = a.result().as_str().unwrap().to_string();
    assert!(stemcell.starts_with("img-"), "{stemcell}");
    // the same image again is the same stemcell
    let again = call(
        &cfg,
        "create_stemcell",
        json!([image.display().to_string(), {"architecture": "arm64"}]),
    );
    assert_eq!(again.result().as_str(), Some(stemcell.as_str()));

    info(&cfg);
    let a = call(
        &cfg,
        "create_vm",
        json!([AGENT_ID, stemcell, {"ephemeral_disk_size": 64}, networks(), [], env()]),
    );
    let result = a.result().clone();
    let vm = result[0].as_str().unwrap().to_string();
    assert!(vm.starts_with("vm-"), "{result}");
    assert_eq!(result[1], networks());
    let v = powerd.vm(&vm).unwrap();
    assert_eq!(v.address, format!("{PI_NET}.20"));
    assert_eq!(v.agent_id, AGENT_ID);

    info(&cfg);
    let meta = json!({"director": "bosh-init", "deployment": "bosh", "job": "bosh", "index": "0",
                      "name": "bosh/0", "created_at": "2026-12-02T05:00:00Z"});
    call(&cfg, "set_vm_metadata", json!([vm, meta])).result();
    let pi = powerd.pi(&v.pi).unwrap();
    assert_eq!(pi.metadata["deployment"], "bosh");
    assert_eq!(pi.vm.as_deref(), Some(vm.as_str()));

    assert_eq!(*call(&cfg, "has_vm", json!([vm])).result(), json!(true));

    // a persistent disk, as bosh-cli does after the agent answers
    let _helper = AttachStandIn::start(&v.address, http);
    let disk = call(&cfg, "create_disk", json!([128, {}, vm]))
        .result()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(*call(&cfg, "has_disk", json!([disk])).result(), json!(true));
    let hint = call(&cfg, "attach_disk", json!([vm, disk]))
        .result()
        .clone();
    let path = hint["path"].as_str().unwrap().to_string();
    assert!(
        path.starts_with("/dev/nbd") && path != "/dev/nbd0" && path != "/dev/nbd1",
        "{hint}"
    );
    // attaching again answers the same hint
    assert_eq!(*call(&cfg, "attach_disk", json!([vm, disk])).result(), hint);
    assert_eq!(
        *call(&cfg, "get_disks", json!([vm])).result(),
        json!([disk])
    );
    let e = call(&cfg, "resize_disk", json!([disk, 256]));
    assert_eq!(e.error()["type"], "Bosh::Clouds::NotSupported");
    call(
        &cfg,
        "set_disk_metadata",
        json!([disk, {"deployment": "bosh"}]),
    )
    .result();
    call(&cfg, "detach_disk", json!([vm, disk])).result();
    assert_eq!(*call(&cfg, "get_disks", json!([vm])).result(), json!([]));
    let e = call(&cfg, "detach_disk", json!([vm, disk]));
    assert_eq!(e.error()["type"], "Bosh::Clouds::DiskNotAttached");
    call(&cfg, "resize_disk", json!([disk, 256])).result();
    assert_eq!(powerd.disk(&disk).unwrap().size_mib, 256);

    call(&cfg, "reboot_vm", json!([vm])).result();

    // delete-env
    assert_eq!(*call(&cfg, "has_vm", json!([vm])).result(), json!(true));
    call(&cfg, "delete_vm", json!([vm])).result();
    call(&cfg, "delete_disk", json!([disk])).result();
    call(&cfg, "delete_stemcell", json!([stemcell])).result();

    assert_eq!(*call(&cfg, "has_vm", json!([vm])).result(), json!(false));
    assert_eq!(
        *call(&cfg, "has_disk", json!([disk])).result(),
        json!(false)
    );
    // the director treats these as done
    call(&cfg, "delete_vm", json!([vm])).result();
    call(&cfg, "delete_disk", json!([disk])).result();
    call(&cfg, "delete_stemcell", json!([stemcell])).result();
    let e = call(&cfg, "reboot_vm", json!([vm]));
    assert_eq!(e.error()["type"], "Bosh::Clouds::VMNotFound");
    // nothing left behind
    assert!(powerd.vms().unwrap().is_empty());
    assert!(powerd.pis().unwrap().iter().all(|p| p.vm.is_none()));
}

#[test]
fn an_empty_pool_is_not_retryable_and_bad_networks_are_refused() {
    let (p, _http) = prov::powerd(1);
    let cfg = p.config();
    let work = tempfile::tempdir().unwrap();
    let image = prov::stemcell_image(work.path());
    let stemcell = call(
        &cfg,
        "create_stemcell",
        json!([image.display().to_string(), {"architecture": "arm64"}]),
    )
    .result()
    .as_str()
    .unwrap()
    .to_string();
    let dynamic = json!({"d": {"type": "dynamic", "dns": null, "cloud_properties": {}}});
    let vm = call(
        &cfg,
        "create_vm",
        json!(["agent-a", stemcell, {}, dynamic, [], {}]),
    );
    let vm = vm.result()[0].as_str().unwrap().to_string();
    // the only Pi is taken
    let e = call(
        &cfg,
        "create_vm",
        json!(["agent-b", stemcell, {}, dynamic, [], {}]),
    );
    assert_eq!(e.error()["type"], "Bosh::Clouds::CloudError");
    assert_eq!(e.error()["ok_to_retry"], false);
    assert!(
        e.error()["message"]
            .as_str()
            .unwrap()
            .contains("no_free_pi"),
        "{}",
        e.json
    );
    // no Pi of that model at all
    let e = call(
        &cfg,
        "create_vm",
        json!(["agent-c", stemcell, {"model": "pi5"}, dynamic, [], {}]),
    );
    assert_eq!(e.error()["ok_to_retry"], false);
    // two networks, one interface
    let two = json!({"a": {"type": "dynamic"}, "b": {"type": "dynamic"}});
    let e = call(
        &cfg,
        "create_vm",
        json!(["agent-d", stemcell, {}, two, [], {}]),
    );
    assert_eq!(
        e.error()["message"],
        "create_vm: 2 networks (a, b) but a Pi has 1 network interface"
    );
    call(&cfg, "delete_vm", json!([vm])).result();
    let e = call(
        &cfg,
        "create_vm",
        json!(["agent-e", "img-00000000deadbeef", {}, dynamic, [], {}]),
    );
    assert_eq!(e.error()["ok_to_retry"], false, "{}", e.json);
}

#[test]
fn a_wrong_token_is_refused_and_not_retried() {
    let (p, _http) = prov::powerd(1);
    let cfg = crate::support::write_config(p.dir.path(), &p.url(), "not-the-token-0123456789");
    let a = call(&cfg, "has_vm", json!(["vm-1"]));
    assert_eq!(a.error()["ok_to_retry"], false);
    assert!(
        a.error()["message"]
            .as_str()
            .unwrap()
            .contains("401 unauthorized"),
        "{}",
        a.json
    );
}
