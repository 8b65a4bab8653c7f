//! HTTP on the Pi network, with curl from chosen source addresses: bosh-agent's settings
//! source and the attach helper's API answer only the address reserved for a running VM;
//! everything else is a 404. On loopback (127.0.0.x) and across a veth pair in namespaces.

use std::time::Duration;

use powerd_client::provision::{Confirmed, NbdTarget, PiAttachment, PiAttachments, Want};
use tokio::process::Command;

use crate::support::netns::{Netns, require};
use crate::support::pinet::{Files, Inventory, Running, SERIAL, pi, settings};

/// `curl` in `ns` (or here), from source address `from`: (status, body).
async fn curl_http(
    ns: Option<&Netns>,
    from: &str,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> (u16, String) {
    require("curl");
    let mut cmd = match ns {
        Some(ns) => Command::from(ns.command("curl")),
        None => Command::new("curl"),
    };
    cmd.args([
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "60",
        "--interface",
        from,
        "-X",
        method,
    ]);
    if let Some(body) = body {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = cmd.arg(url).kill_on_drop(true).output().await.unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn inventory(files: &Files, addr: &str) -> Inventory {
    let inv = Inventory::default();
    inv.pis.lock().unwrap().insert(
        SERIAL.into(),
        pi("one", addr.parse().unwrap(), &files.boot(), true),
    );
    inv
}

fn attachment(want: Want) -> PiAttachment {
    PiAttachment {
        disk: "disk-1".into(),
        slot: 2,
        device: "/dev/nbd2".into(),
        nbd: NbdTarget {
            host: "127.0.0.1".into(),
            port: 10811,
            export: "f".repeat(32),
        },
        want,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_go_to_the_reserved_source_address_only() {
    let files = Files::new();
    let pinet = Running::loopback(inventory(&files, "127.0.0.2"));
    let base = format!("http://{}", pinet.http);

    let (code, body) = curl_http(
        None,
        "127.0.0.2",
        "GET",
        &format!("{base}/latest/user-data"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        settings("one")
    );
    let id = curl_http(
        None,
        "127.0.0.2",
        "GET",
        &format!("{base}/latest/meta-data/instance-id"),
        None,
    )
    .await;
    assert_eq!(id, (200, "vm-one".to_owned()));
    let key = curl_http(
        None,
        "127.0.0.2",
        "GET",
        &format!("{base}/latest/meta-data/public-keys/0/openssh-key"),
        None,
    )
    .await;
    assert_eq!(key.0, 200);
    assert!(key.1.starts_with("ssh-ed25519 "), "{}", key.1);

    for path in [
        "/latest/user-data",
        "/latest/meta-data/instance-id",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/pifoundry/v1/attachments",
    ] {
        let (code, body) =
            curl_http(None, "127.0.0.3", "GET", &format!("{base}{path}"), None).await;
        assert_eq!(
            (code, body.as_str()),
            (404, "not found\n"),
            "{path} from another address"
        );
    }
    for (method, path) in [
        ("GET", "/latest/meta-data/"),
        ("GET", "/v1/pis"),
        ("POST", "/latest/user-data"),
        ("DELETE", "/pifoundry/v1/attachments"),
    ] {
        let (code, _) = curl_http(None, "127.0.0.2", method, &format!("{base}{path}"), None).await;
        assert_eq!(code, 404, "{method} {path}");
    }
    pinet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attach_helper_long_polls_and_confirms() {
    let files = Files::new();
    let pinet = Running::loopback(inventory(&files, "127.0.0.2"));
    let base = format!("http://{}/pifoundry/v1/attachments", pinet.http);

    let (code, body) = curl_http(
        None,
        "127.0.0.2",
        "GET",
        &format!("{base}?after=0&wait=0"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let first: PiAttachments = serde_json::from_str(&body).unwrap();
    assert!(first.attachments.is_empty());

    // a poll at the current generation waits until powerd publishes
    let poll = tokio::spawn({
        let url = format!("{base}?after={}&wait=30", first.generation);
        async move { curl_http(None, "127.0.0.2", "GET", &url, None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the poll returned before anything changed"
    );
    let generation = pinet.hub.publish(SERIAL, vec![attachment(Want::Connected)]);
    let (code, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 200);
    let got: PiAttachments = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (got.generation, got.attachments),
        (generation, vec![attachment(Want::Connected)])
    );

    let confirm = r#"{"state": "connected"}"#;
    let waiter = tokio::spawn({
        let hub = pinet.hub.clone();
        async move {
            hub.wait_confirmed(SERIAL, "disk-1", Want::Connected, Duration::from_secs(20))
                .await
        }
    });
    // another address cannot confirm for this Pi
    let (code, _) = curl_http(
        None,
        "127.0.0.3",
        "POST",
        &format!("{base}/disk-1"),
        Some(confirm),
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = curl_http(
        None,
        "127.0.0.2",
        "POST",
        &format!("{base}/disk-9"),
        Some(confirm),
    )
    .await;
    assert_eq!(code, 404, "a disk that is not listed");
    let (code, _) = curl_http(
        None,
        "127.0.0.2",
        "POST",
        &format!("{base}/disk-1"),
        Some(r#"{"state": "maybe"}"#),
    )
    .await;
    assert_eq!(code, 400);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    let (code, _) = curl_http(
        None,
        "127.0.0.2",
        "POST",
        &format!("{base}/disk-1"),
        Some(confirm),
    )
    .await;
    assert_eq!(code, 204);
    assert_eq!(waiter.await.unwrap(), Ok(Confirmed::Connected));
    pinet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_namespaces_only_the_reserved_address_is_answered() {
    let files = Files::new();
    let (srv, pis) = (Netns::new("pinet-srv"), Netns::new("pinet-pis"));
    srv.veth_to(&pis, "pfn0", "pfn1");
    srv.ip(&["addr", "add", "10.78.0.1/24", "dev", "pfn0"]);
    pis.ip(&["addr", "add", "10.78.0.2/24", "dev", "pfn1"]);
    pis.ip(&["addr", "add", "10.78.0.3/24", "dev", "pfn1"]);
    let pinet = Running::start(
        Some(&srv),
        inventory(&files, "10.78.0.2"),
        "10.78.0.1",
        69,
        8086,
    );
    let url = "http://10.78.0.1:8086/latest/user-data";

    let (code, body) = curl_http(Some(&pis), "10.78.0.2", "GET", url, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        settings("one")
    );
    let (code, _) = curl_http(Some(&pis), "10.78.0.3", "GET", url, None).await;
    assert_eq!(code, 404, "a second address on the Pi's own link");

    // the Pi's own boot files through the namespace too (curl from the Pi's namespace)
    let out = pis.run("curl", &["-sS", "tftp://10.78.0.1/1a2b3c4d/cmdline.txt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmdline = String::from_utf8(out.stdout).unwrap();
    assert!(
        cmdline.contains(" pifoundry.api=http://10.78.0.1:8086 "),
        "{cmdline}"
    );
    pinet.stop();
}
