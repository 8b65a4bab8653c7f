//! Provisioning state survives a restart, and a powerd killed with SIGKILL half-way through a
//! VM's creation rolls that VM back when it starts again (the real `powerd` binary, paused at
//! a step by a debug-build failpoint). A running VM's root export serves on while powerd is
//! SIGKILLed and restarted. A start rewrites dnsmasq's hosts file from the VM records.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use powerd_client::provision::{PiState, VmList, VmState};
use powerd_client::{Client, Credentials, Method, StatusCode};
use serde_json::Value;

use crate::support::prov::{self, serial};
use crate::support::{Fixture, TOKEN, text};

const BIN: &str = env!("CARGO_BIN_EXE_powerd");

#[tokio::test]
async fn vms_pis_and_disks_survive_a_restart() {
    let fx = Fixture::new();
    let cfg = fx.config(&prov::config_text(&fx, 2, ""));
    let srv = fx.start(&cfg).await;
    prov::register(&srv, 2).await;
    let image = prov::upload(&srv, &prov::make_image(fx.dir.path(), 40, "restart")).await;
    let vm = prov::create_vm(&srv, &image).await;
    let disk = srv
        .call(
            Method::POST,
            "/v1/disks",
            Some(serde_json::json!({"size_mib": 8})),
        )
        .await
        .json();
    srv.stop().await;

    let srv = fx.start(&cfg).await;
    let got: powerd_client::provision::Vm = serde_json::from_slice(
        &srv.call(Method::GET, &format!("/v1/vms/{}", vm.id), None)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(got, vm);
    assert_eq!(prov::pi(&srv, 0).await.state, PiState::Running);
    assert_eq!(prov::pi(&srv, 1).await.state, PiState::Free);
    let p = srv.running.app.provision.clone().unwrap();
    let served = powerd::pinet::Directory::vm_at(&*p, vm.address.parse().unwrap()).unwrap();
    assert_eq!(served.vm_id, vm.id);
    let r = srv
        .call(
            Method::GET,
            &format!("/v1/disks/{}", disk["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/vms/{}", vm.id), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_start_makes_the_hosts_file_hold_exactly_the_running_vms_reservations() {
    let fx = Fixture::new();
    let cfg = fx.config(&prov::config_text(&fx, 2, ""));
    let srv = fx.start(&cfg).await;
    prov::register(&srv, 2).await;
    let image = prov::upload(&srv, &prov::make_image(fx.dir.path(), 40, "hosts")).await;
    let vm = prov::create_vm(&srv, &image).await;
    let reserved = prov::hosts(&fx);
    assert_eq!(reserved.lines().count(), 1, "{reserved}");
    assert!(reserved.contains(&vm.address), "{reserved}");
    srv.stop().await;

    // while powerd was down: the VM's line lost, a line for no VM added
    std::fs::write(
        prov::data(&fx).join("dnsmasq.hosts"),
        "52:54:00:aa:bb:cc,10.0.0.99,pi-deadbeef\n",
    )
    .unwrap();
    let srv = fx.start(&cfg).await;
    assert_eq!(prov::hosts(&fx), reserved);
    assert_eq!(
        srv.call(Method::DELETE, &format!("/v1/vms/{}", vm.id), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(prov::hosts(&fx), "");
    srv.stop().await;
}

struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(cfg: &std::path::Path, failpoints: &str) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "info")
            .env("POWERD_TEST_FAILPOINTS", failpoints)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(addr) = line.split("addr=").nth(1) {
                let addr = addr.split_whitespace().next().unwrap().to_string();
                std::thread::spawn(move || lines.for_each(drop));
                return Daemon {
                    child,
                    url: format!("http://{addr}"),
                };
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let status = child.wait().unwrap();
        panic!("powerd did not start ({status}):\n{seen}");
    }

    fn client(&self) -> Client {
        Client::new(&self.url, Credentials::Bearer(TOKEN.into())).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state(fx: &Fixture) -> Value {
    std::fs::read(prov::data(fx).join("provision.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Registers Pi 0 and uploads a small image; returns the image's id.
async fn one_pi_and_an_image(c: &Client, fx: &Fixture, tag: &str) -> String {
    let r = c
        .call(
            Method::PUT,
            &format!("/v1/pis/{}", serial(0)),
            Some(&serde_json::to_value(prov::spec(0)).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let img = prov::make_image(fx.dir.path(), 40, tag);
    let r = c
        .send(
            Method::POST,
            "/v1/images?arch=armv6l",
            &Credentials::Bearer(TOKEN.into()),
            Some(std::fs::read(&img).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    r.json()["id"].as_str().unwrap().to_string()
}

/// Kills powerd while a creation waits at `step` (everything before it done), starts it
/// again and checks that nothing of the VM is left.
async fn kill_during(step: &str, done: impl Fn(&Value) -> bool) {
    let fx = Fixture::new();
    let cfg = fx.config(&prov::config_text(&fx, 1, ""));
    let cfg_path = fx.path("powerd.yml");
    assert!(cfg.provisioning.is_some());
    let d = Daemon::start(&cfg_path, &format!("vm.create.{step}=pause:120s"));
    let c = d.client();
    let image = one_pi_and_an_image(&c, &fx, "kill").await;
    let body = prov::create_body(&image, "agent-k");
    let create = tokio::spawn(async move { c.call(Method::POST, "/v1/vms", Some(&body)).await });
    let mut waited = 0;
    loop {
        let s = state(&fx);
        if let Some(vm) = s["vms"].as_object().and_then(|v| v.values().next())
            && done(vm)
        {
            assert_eq!(vm["state"], "creating");
            break;
        }
        waited += 1;
        assert!(waited < 600, "{step}: the creation never got there: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut d = d;
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    assert!(
        create.await.unwrap().is_err(),
        "the client saw the connection drop"
    );
    assert!(
        !prov::entries(&fx, "vms").is_empty() || step == "overlay",
        "{step}: something to roll back"
    );

    let d = Daemon::start(&cfg_path, "");
    let c = d.client();
    let vms: VmList =
        serde_json::from_slice(&c.call(Method::GET, "/v1/vms", None).await.unwrap().body).unwrap();
    assert!(vms.vms.is_empty(), "{step}: {vms:?}");
    let pi = c
        .call(Method::GET, &format!("/v1/pis/{}", serial(0)), None)
        .await
        .unwrap()
        .json();
    assert_eq!(
        (pi["state"].as_str(), pi.get("vm")),
        (Some("free"), None),
        "{step}: {pi}"
    );
    assert!(prov::entries(&fx, "vms").is_empty(), "{step}");
    assert_eq!(prov::hosts(&fx), "", "{step}");
    let leftovers: Vec<String> = std::fs::read_dir(prov::data(&fx))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // and it works again
    let r = c
        .call(
            Method::POST,
            "/v1/vms",
            Some(&prov::create_body(&image, "agent-2")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    assert_eq!(r.json()["state"], serde_json::json!(VmState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_caught_creating_by_a_kill_is_rolled_back_at_the_next_start() {
    kill_during("exports", |vm| {
        vm["overlay"].is_string() && vm["ephemeral"].is_string()
    })
    .await;
    kill_during("power", |vm| {
        vm["reserved"] == true && vm["settings"].is_object() && vm["powered"] == true
    })
    .await;
}

/// The qemu-nbd serving the root export, as block.json records it: (pid, alive).
fn root_export_process(fx: &Fixture, name: &str) -> (u64, bool) {
    let block: Value =
        serde_json::from_slice(&std::fs::read(prov::data(fx).join("exports/block.json")).unwrap())
            .unwrap();
    let pid = block["exports"][name]["pid"].as_u64().unwrap();
    (pid, std::path::Path::new(&format!("/proc/{pid}")).exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_export_keeps_serving_while_powerd_is_killed_and_restarted() {
    let fx = Fixture::new();
    fx.config(&prov::config_text(&fx, 1, ""));
    let cfg_path = fx.path("powerd.yml");
    let d = Daemon::start(&cfg_path, "");
    let c = d.client();
    let image = one_pi_and_an_image(&c, &fx, "alive").await;
    let r = c
        .call(
            Method::POST,
            "/v1/vms",
            Some(&prov::create_body(&image, "agent-a")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let vm = r.json()["id"].as_str().unwrap().to_string();
    let root = state(&fx)["vms"][&vm]["root_export"].clone();
    let name = root["name"].as_str().unwrap().to_string();
    let url = format!(
        "nbd://{}:{}/{name}",
        root["host"].as_str().unwrap(),
        root["port"]
    );
    let (pid, alive) = root_export_process(&fx, &name);
    assert!(alive, "qemu-nbd {pid} of the root export");

    let reader = tokio::task::spawn_blocking(move || {
        let mut reader = crate::block_faults::Reader::connect_plain(&url);
        reader.read_for(Duration::from_millis(500));
        reader
    })
    .await
    .unwrap();
    let mut d = d;
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let reader = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        reader.read_for(Duration::from_millis(1000));
        reader
    })
    .await
    .unwrap();

    let d = Daemon::start(&cfg_path, "");
    let got = d
        .client()
        .call(Method::GET, &format!("/v1/vms/{vm}"), None)
        .await
        .unwrap();
    assert_eq!(got.json()["state"], serde_json::json!(VmState::Running));
    let reader = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        reader.read_for(Duration::from_millis(500));
        reader
    })
    .await
    .unwrap();
    assert_eq!(
        root_export_process(&fx, &name),
        (pid, true),
        "the restarted powerd re-adopted the running qemu-nbd, it did not start another"
    );
    assert!(reader.reads > 20, "only {} reads", reader.reads);
    let r = d
        .client()
        .call(Method::DELETE, &format!("/v1/vms/{vm}"), None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", text(&r));
}
