//! Provisioning through the real HTTP API: a powerd with sim outlets, real qemu-img overlays
//! and disks, real images (sfdisk, mkfs.vfat, mtools), the inventory's atomic claims, every
//! failure point of a VM's creation rolled back, disks attached once the Pi's helper confirmed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use powerd::pinet::{BootLookup, Directory};
use powerd::provision::Fail;
use powerd_client::provision::{Image, PiState, Vm, VmList};
use powerd_client::{Method, PowerState, StatusCode};
use serde_json::{Value, json};

use crate::support::prov::{self, serial};
use crate::support::{Fixture, Server, text};

fn prov_of(srv: &Server) -> Arc<powerd::provision::Provisioner> {
    srv.running
        .app
        .provision
        .clone()
        .expect("provisioning configured")
}

fn code(r: &powerd_client::Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_claims_against_twenty_free_pis_give_exactly_twenty() {
    let fx = Fixture::new();
    let srv = Arc::new(prov::start(&fx, 20).await);
    prov::register(&srv, 20).await;
    let img = prov::make_image(fx.dir.path(), 48, "claims");
    let image = prov::upload(&srv, &img).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (srv, image) = (srv.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            let mut body = prov::create_body(&image, &format!("agent-{i}"));
            body.as_object_mut().unwrap().remove("ephemeral_disk_mib");
            srv.call(Method::POST, "/v1/vms", Some(body)).await
        }));
    }
    let mut created = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => created.push(serde_json::from_slice::<Vm>(&r.body).unwrap()),
            StatusCode::CONFLICT => {
                assert_eq!(code(&r), "no_free_pi", "{}", text(&r));
                refused += 1;
            }
            s => panic!("unexpected {s}: {}", text(&r)),
        }
    }
    assert_eq!((created.len(), refused), (20, 30));
    let pis: BTreeMap<String, String> = created
        .iter()
        .map(|v| (v.pi.clone(), v.id.clone()))
        .collect();
    assert_eq!(pis.len(), 20, "one VM per Pi");
    let addrs: std::collections::BTreeSet<&str> =
        created.iter().map(|v| v.address.as_str()).collect();
    assert_eq!(addrs.len(), 20, "one address per VM");
    for i in 0..20 {
        let pi = prov::pi(&srv, i).await;
        assert_eq!(pi.state, PiState::Running);
        assert_eq!(pi.vm.as_ref(), pis.get(&serial(i)));
        assert_eq!(
            srv.running.app.power.get(&format!("o{i}")).unwrap().state,
            PowerState::On
        );
    }
    Arc::try_unwrap(srv).ok().unwrap().stop().await;
}

#[tokio::test]
async fn an_image_is_stored_once_from_raw_or_from_the_stemcell_member() {
    let fx = Fixture::new();
    let srv = prov::start(&fx, 1).await;
    let img = prov::make_image(fx.dir.path(), 40, "once");
    let id = prov::upload(&srv, &img).await;
    let shown: Image = serde_json::from_slice(
        &srv.call(Method::GET, &format!("/v1/images/{id}"), None)
            .await
            .body,
    )
    .unwrap();
    let (sha, size) = pifoundry_util::hash::hash_file(&img).unwrap();
    assert_eq!(id, format!("img-{}", &sha[..16]));
    assert_eq!((shown.sha256.as_str(), shown.size), (sha.as_str(), size));
    assert_eq!(
        shown.boot_files,
        [
            "bootcode.bin",
            "config.txt",
            "kernel.img",
            "overlays/x.dtbo"
        ]
    );
    let boot = prov::data(&fx).join("images").join(&id).join("boot");
    assert!(
        std::fs::read_to_string(boot.join("config.txt"))
            .unwrap()
            .contains("# once")
    );
    // the stored image is sparse: it costs what it holds, not its size
    use std::os::unix::fs::MetadataExt;
    let disk =
        std::fs::metadata(prov::data(&fx).join("images").join(&id).join("disk.img")).unwrap();
    assert_eq!(disk.len(), 40 << 20);
    assert!(
        disk.blocks() * 512 < 8 << 20,
        "{} bytes allocated",
        disk.blocks() * 512
    );

    // the stemcell's `image` member: a gzip'd tar of root.img — same bytes, same image
    // (GNU tar's sparse entries, as `tar -S` writes them, and plain ones, as baker does)
    let member = fx.path("image");
    for flags in ["-czSf", "-czf"] {
        let st = std::process::Command::new("tar")
            .arg(flags)
            .arg(&member)
            .arg("-C")
            .arg(fx.dir.path())
            .arg("--transform=s/once.img/root.img/")
            .arg("once.img")
            .status()
            .unwrap();
        assert!(st.success());
        let r = srv
            .client
            .send(
                Method::POST,
                "/v1/images?arch=armv6l",
                &powerd_client::Credentials::Bearer(crate::support::TOKEN.into()),
                Some(std::fs::read(&member).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{flags}: {}", text(&r));
        assert_eq!(r.json()["id"], json!(id));
    }
    let list = srv.call(Method::GET, "/v1/images", None).await.json();
    assert_eq!(list["images"].as_array().unwrap().len(), 1);

    // a digest that does not match, a body that is no disk image, no arch
    let bytes = std::fs::read(&img).unwrap();
    let cred = powerd_client::Credentials::Bearer(crate::support::TOKEN.into());
    let r = srv
        .client
        .send(
            Method::POST,
            &format!("/v1/images?arch=armv6l&sha256={}", "0".repeat(64)),
            &cred,
            Some(bytes.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::BAD_REQUEST, "upload_digest_mismatch"),
        "{}",
        text(&r)
    );
    let r = srv
        .client
        .send(
            Method::POST,
            "/v1/images?arch=armv6l",
            &cred,
            Some(vec![7u8; 4096]),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::BAD_REQUEST, "bad_image"),
        "{}",
        text(&r)
    );
    let r = srv
        .client
        .send(Method::POST, "/v1/images", &cred, Some(bytes))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", text(&r));
    assert!(text(&r).contains("arch"), "{}", text(&r));
    // nothing staged is left behind
    assert_eq!(prov::entries(&fx, "images"), std::slice::from_ref(&id));

    // delete: refused while a VM uses it
    prov::register(&srv, 1).await;
    let vm = prov::create_vm(&srv, &id).await;
    let r = srv
        .call(Method::DELETE, &format!("/v1/images/{id}"), None)
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::CONFLICT, "image_in_use")
    );
    let img_view = srv
        .call(Method::GET, &format!("/v1/images/{id}"), None)
        .await
        .json();
    assert_eq!(img_view["vms"], json!([vm.id]));
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/vms/{}", vm.id), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/images/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.call(Method::GET, &format!("/v1/images/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(prov::entries(&fx, "images").is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn a_vm_is_a_running_pi_with_its_root_settings_boot_files_and_reservation() {
    let fx = Fixture::new();
    let srv = prov::start(&fx, 2).await;
    prov::register(&srv, 2).await;
    let image = prov::upload(&srv, &prov::make_image(fx.dir.path(), 40, "life")).await;
    let mut body = prov::create_body(&image, "agent-7");
    body["networks"] = json!({"default": {"type": "manual", "ip": "127.0.1.77", "netmask": "255.0.0.0", "gateway": "127.0.0.1"}});
    body["settings"]["networks"] = body["networks"].clone();
    body["metadata"] = json!({"deployment": "d", "job": "web"});
    let r = srv.call(Method::POST, "/v1/vms", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let vm: Vm = serde_json::from_slice(&r.body).unwrap();
    assert!(vm.id.starts_with("vm-") && vm.id.len() == 39, "{}", vm.id);
    assert_eq!(
        (vm.pi.as_str(), vm.address.as_str()),
        (serial(0).as_str(), "127.0.1.77")
    );
    assert_eq!(vm.ephemeral_disk.as_ref().unwrap().device, "/dev/nbd1");
    let pi = prov::pi(&srv, 0).await;
    assert_eq!(
        (pi.state, pi.vm.as_deref()),
        (PiState::Running, Some(vm.id.as_str()))
    );
    assert_eq!(pi.metadata.get("job").map(String::as_str), Some("web"));
    assert_eq!(
        srv.running.app.power.get("o0").unwrap().state,
        PowerState::On
    );

    // the root: a qcow2 overlay over the stored image, which stays read-only to it
    let overlay = prov::data(&fx).join("vms").join(&vm.id).join("root.qcow2");
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(&overlay)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["backing-filename-format"], "raw");
    assert!(
        info["backing-filename"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{image}/disk.img"))
    );
    assert_eq!(
        prov::hosts(&fx),
        format!("{},127.0.1.77,pi-{}\n", prov::mac(0), serial(0))
    );

    // what pinet serves: settings to its address only, boot files to its serial only
    let p = prov_of(&srv);
    let addr: IpAddr = "127.0.1.77".parse().unwrap();
    let got = p.vm_at(addr).expect("settings for the VM's address");
    assert_eq!(got.vm_id, vm.id);
    assert_eq!(
        got.settings["disks"],
        json!({"system": "/dev/nbd0", "ephemeral": {"path": "/dev/nbd1"}, "persistent": {}})
    );
    assert_eq!(
        got.settings["networks"]["default"]["mac"],
        json!(prov::mac(0))
    );
    assert_eq!(got.settings["agent_id"], "agent-7");
    assert!(p.vm_at("127.0.1.78".parse().unwrap()).is_none());
    match p.boot(&serial(0), addr) {
        BootLookup::Served(b) => {
            assert!(b.boot_dir.join("kernel.img").is_file());
            assert_eq!(b.cmdline.address, addr);
            assert_eq!(b.cmdline.nbd_export.len(), 32);
            assert_eq!(b.cmdline.hostname, vm.id);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.boot(&serial(1), addr),
        BootLookup::NotServed,
        "a free Pi gets nothing"
    );
    assert_eq!(
        p.boot("0badcafe", "127.0.9.9".parse().unwrap()),
        BootLookup::Unknown
    );
    let found = prov::pi_by_serial(&srv, "0badcafe").await;
    assert_eq!(
        (found.state, found.address.as_deref()),
        (PiState::Discovered, Some("127.0.9.9"))
    );

    // metadata, reboot
    let r = srv
        .call(
            Method::PUT,
            &format!("/v1/vms/{}/metadata", vm.id),
            Some(json!({"job": "db"})),
        )
        .await;
    assert_eq!(r.json()["metadata"], json!({"job": "db"}));
    assert_eq!(
        prov::pi(&srv, 0)
            .await
            .metadata
            .get("job")
            .map(String::as_str),
        Some("db")
    );
    let before = srv.transitions("o0").len();
    assert_eq!(
        srv.call(Method::POST, &format!("/v1/vms/{}/reboot", vm.id), None)
            .await
            .status,
        StatusCode::OK
    );
    let t = srv.transitions("o0");
    assert_eq!(crate::support::states(&t[before..]), ["off", "on"]);

    // the address is taken; a retired Pi must not carry a VM
    let mut again = prov::create_body(&image, "agent-8");
    again["networks"] = json!({"n": {"type": "manual", "ip": "127.0.1.77"}});
    let r = srv.call(Method::POST, "/v1/vms", Some(again)).await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::CONFLICT, "no_free_address"),
        "{}",
        text(&r)
    );
    let r = srv
        .call(Method::DELETE, &format!("/v1/pis/{}", serial(0)), None)
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::CONFLICT, "pi_busy")
    );

    // delete: everything goes, the Pi is free again
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/vms/{}", vm.id), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = srv
        .call(Method::DELETE, &format!("/v1/vms/{}", vm.id), None)
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (StatusCode::NOT_FOUND, "vm_not_found")
    );
    let pi = prov::pi(&srv, 0).await;
    assert_eq!(
        (pi.state, pi.vm.as_deref(), pi.address.as_deref()),
        (PiState::Free, None, None)
    );
    assert!(pi.metadata.is_empty());
    assert_eq!(
        srv.running.app.power.get("o0").unwrap().state,
        PowerState::Off
    );
    assert!(prov::entries(&fx, "vms").is_empty());
    assert_eq!(prov::hosts(&fx), "");
    assert!(p.vm_at(addr).is_none());
    assert!(p.exports().is_empty());
    srv.stop().await;
}

/// Each step of a VM's creation fails in turn: the call answers 503 naming the step and
/// leaves no claim, overlay, disk, export, reservation, settings or power behind.
#[tokio::test]
async fn a_failure_at_every_step_of_create_rolls_everything_back() {
    let fx = Fixture::new();
    let srv = prov::start(&fx, 1).await;
    prov::register(&srv, 1).await;
    let image = prov::upload(&srv, &prov::make_image(fx.dir.path(), 40, "fail")).await;
    let disk = srv
        .call(Method::POST, "/v1/disks", Some(json!({"size_mib": 16})))
        .await
        .json();
    let disk = disk["id"].as_str().unwrap().to_string();
    let p = prov_of(&srv);
    for step in [
        "claim",
        "overlay",
        "ephemeral",
        "exports",
        "reservation",
        "settings",
        "power",
    ] {
        fx.opts.failpoints.clear();
        fx.opts
            .failpoints
            .set(&format!("vm.create.{step}"), Fail::Error);
        let mut body = prov::create_body(&image, "agent-f");
        body["disks"] = json!([disk]);
        let r = srv.call(Method::POST, "/v1/vms", Some(body)).await;
        assert_eq!(
            (r.status, code(&r).as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "provision_failed"),
            "{step}: {}",
            text(&r)
        );
        assert!(
            text(&r).contains(&format!("vm.create.{step}")),
            "{}",
            text(&r)
        );
        let vms: VmList =
            serde_json::from_slice(&srv.call(Method::GET, "/v1/vms", None).await.body).unwrap();
        assert!(vms.vms.is_empty(), "{step}");
        let pi = prov::pi(&srv, 0).await;
        assert_eq!(
            (pi.state, pi.vm.as_deref()),
            (PiState::Free, None),
            "{step}"
        );
        assert!(
            prov::entries(&fx, "vms").is_empty(),
            "{step}: {:?}",
            prov::entries(&fx, "vms")
        );
        assert_eq!(prov::hosts(&fx), "", "{step}");
        assert!(p.exports().is_empty(), "{step}");
        assert!(p.vm_at("127.0.1.1".parse().unwrap()).is_none(), "{step}");
        assert_eq!(
            srv.running.app.power.get("o0").unwrap().state,
            PowerState::Off,
            "{step}"
        );
        let d = srv
            .call(Method::GET, &format!("/v1/disks/{disk}"), None)
            .await
            .json();
        assert!(
            d.get("vm").is_none(),
            "{step}: the persistent disk is released, not deleted: {d}"
        );
        assert_eq!(prov::entries(&fx, "disks").len(), 1, "{step}");
    }
    fx.opts.failpoints.clear();
    let mut body = prov::create_body(&image, "agent-ok");
    body["disks"] = json!([disk]);
    let r = srv.call(Method::POST, "/v1/vms", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let vm: Vm = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(vm.disks[0].device, "/dev/nbd2");
    let s = p.vm_at(vm.address.parse().unwrap()).unwrap().settings;
    assert_eq!(
        s["disks"]["persistent"][&disk],
        json!({"path": "/dev/nbd2"})
    );
    srv.stop().await;
}
