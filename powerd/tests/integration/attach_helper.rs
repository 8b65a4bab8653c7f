//! The stemcell's disk attach helper (recipes/stemcells/src/pifoundry-attach), built for the
//! host with the system Go, against a real powerd's Pi network on loopback, speaking from
//! the VM's reserved address. The host has no nbd module here, so `-nbd-client` names a
//! script that records its arguments; everything else (long poll, confirmations, powerd's
//! attach and detach waiting for them) is real.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use powerd_client::provision::Vm;
use powerd_client::{Method, StatusCode};
use serde_json::json;

use crate::support::prov;
use crate::support::{Fixture, Server, text};

fn build_helper(dir: &Path) -> PathBuf {
    crate::support::netns::require("go");
    let out = dir.join("pifoundry-attach");
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/stemcells/src/pifoundry-attach");
    let status = Command::new("go")
        .args(["build", "-mod=vendor", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env(
            "GOCACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache"),
        )
        .env("GOFLAGS", "")
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// A stand-in for nbd-client that appends its arguments, one call a line, to `log`.
fn recording_nbd_client(dir: &Path, log: &Path) -> PathBuf {
    let path = dir.join("nbd-client");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&path)
        .status()
        .unwrap();
    path
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for_calls(log: &Path, n: usize, child: &mut Child) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = calls(log);
        if now.len() >= n {
            return now;
        }
        assert!(child.try_wait().unwrap().is_none(), "the helper exited");
        assert!(Instant::now() < deadline, "nbd-client calls: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// powerd with its Pi network's HTTP server on a free loopback port, one Pi, and a VM on it
/// (an image tagged `tag`); the port is the helper's `-api`.
async fn powerd_with_a_vm(tag: &str) -> (Fixture, Server, Vm, u16) {
    let fx = Fixture::new();
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text_cfg =
        prov::config_text(&fx, 1, "").replace("http_port: 0", &format!("http_port: {http_port}"));
    let srv = fx.start(&fx.config(&text_cfg)).await;
    prov::register(&srv, 1).await;
    let image = prov::upload(&srv, &prov::make_image(fx.dir.path(), 40, tag)).await;
    let vm = prov::create_vm(&srv, &image).await;
    (fx, srv, vm, http_port)
}

/// A new 8 MiB disk attached to `vm` (powerd answers once the helper confirmed it); its id.
async fn attach_new_disk(srv: &Server, vm: &Vm) -> String {
    let r = srv
        .call(Method::POST, "/v1/disks", Some(json!({"size_mib": 8})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", text(&r));
    let disk = r.json()["id"].as_str().unwrap().to_string();
    let r = srv
        .call(
            Method::POST,
            &format!("/v1/disks/{disk}/attach"),
            Some(json!({"vm": vm.id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert_eq!(r.json()["device"], "/dev/nbd2");
    disk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_connects_confirms_and_disconnects_what_powerd_publishes() {
    let (fx, srv, vm, http_port) = powerd_with_a_vm("attach").await;
    let p = srv.running.app.provision.clone().unwrap();

    let helper = build_helper(fx.dir.path());
    let log = fx.dir.path().join("nbd-calls");
    let nbd = recording_nbd_client(fx.dir.path(), &log);
    let mut child = Command::new(&helper)
        .arg("-api")
        .arg(format!("http://127.0.0.1:{http_port}"))
        .arg("-source")
        .arg(&vm.address)
        .arg("-nbd-client")
        .arg(&nbd)
        .args(["-console", ""])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    // the ephemeral disk first, without any API call
    let eph = p
        .hub
        .poll(&prov::serial(0), 0, Duration::from_secs(0))
        .await
        .attachments[0]
        .clone();
    let got = wait_for_calls(&log, 1, &mut child);
    assert_eq!(
        got[0],
        format!(
            "{} {} /dev/nbd1 -N {}",
            eph.nbd.host, eph.nbd.port, eph.nbd.export
        )
    );

    let disk = attach_new_disk(&srv, &vm).await;
    let got = calls(&log);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[1].contains(" /dev/nbd2 -N "), "{got:?}");

    let r = srv
        .call(Method::POST, &format!("/v1/disks/{disk}/detach"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", text(&r));
    assert!(r.json().get("vm").is_none(), "{}", text(&r));
    let got = calls(&log);
    assert_eq!(got.last().unwrap(), "-d /dev/nbd2", "{got:?}");
    let _ = child.kill();
    let _ = child.wait();
    srv.stop().await;
}

/// systemd restarts the helper (a crash, or a first pass that outlasted a start timeout): the
/// new one reads the state file, asks `nbd-client -c` whether each device is still connected
/// and takes it over instead of connecting it again (which fails as "already in use").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_helper_takes_over_the_devices_it_had_connected() {
    let (fx, srv, vm, http_port) = powerd_with_a_vm("restart").await;

    let helper = build_helper(fx.dir.path());
    let log = fx.dir.path().join("nbd-calls");
    let nbd = recording_nbd_client(fx.dir.path(), &log);
    let state = fx.dir.path().join("connected.json");
    let start = || {
        Command::new(&helper)
            .arg("-api")
            .arg(format!("http://127.0.0.1:{http_port}"))
            .arg("-source")
            .arg(&vm.address)
            .arg("-nbd-client")
            .arg(&nbd)
            .arg("-state")
            .arg(&state)
            .args(["-console", ""])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = start();
    let got = wait_for_calls(&log, 1, &mut first);
    assert!(got[0].contains(" /dev/nbd1 -N "), "{got:?}");
    // (the state is written once nbd-client returned)
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.exists() {
        assert!(
            Instant::now() < deadline,
            "no state file {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = first.kill();
    let _ = first.wait();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved.get("/dev/nbd1").is_some(), "{saved}");

    let mut second = start();
    let got = wait_for_calls(&log, 2, &mut second);
    assert_eq!(got[1], "-c /dev/nbd1", "{got:?}");
    // its first pass is done with nothing to connect: a new disk is the next call
    attach_new_disk(&srv, &vm).await;
    let got = calls(&log);
    assert_eq!(got.len(), 3, "nbd1 was not connected again: {got:?}");
    assert!(got[2].contains(" /dev/nbd2 -N "), "{got:?}");
    let _ = second.kill();
    let _ = second.wait();
    srv.stop().await;
}
