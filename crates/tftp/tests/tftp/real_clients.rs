//! Real clients against the server: curl (options, rollover, loss and duplicates through the
//! relay, ten at once) and tftp-hpa's `tftp` (plain RFC 1350, error replies).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pifoundry_tftp::packet::Packet;
use pifoundry_tftp::{Config, ServedDir};
use tokio::process::Command;

use crate::relay::{Action, Dir, Relay};
use crate::{config, pattern, start, write};

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "`{tool}` not found: install the test prerequisites (scripts/install-prereqs.sh test)"
    );
}

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(
        Duration::from_secs(120),
        command.kill_on_drop(true).output(),
    )
    .await
    .expect("the client finishes")
    .unwrap()
}

/// `curl` fetching `file` from `addr` into `out`, with `args` before the URL.
async fn curl(addr: SocketAddr, file: &str, out: &Path, args: &[&str]) -> Output {
    require("curl");
    let url = format!("tftp://{addr}/{file}");
    run(Command::new("curl")
        .args(["-sS", "-o"])
        .arg(out)
        .args(args)
        .arg(url))
    .await
}

/// tftp-hpa's `tftp` running `command` against `addr`, in `cwd`; stdout and stderr together.
async fn tftp_hpa(addr: SocketAddr, cwd: &Path, mode: Option<&str>, command: &str) -> String {
    require("tftp");
    let mut cmd = Command::new("tftp");
    if let Some(mode) = mode {
        cmd.args(["-m", mode]);
    }
    cmd.arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg("-c");
    cmd.args(command.split(' ')).current_dir(cwd);
    let output = run(&mut cmd).await;
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn served_dir(files: &[(&str, &[u8])]) -> (tempfile::TempDir, ServedDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        write(dir.path(), name, bytes);
    }
    let served = ServedDir::open(dir.path()).unwrap();
    (dir, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_with_negotiated_block_sizes() {
    let (elf, tiny) = (pattern(1_000_003, 1), pattern(2_001, 11));
    let (_dir, served) = served_dir(&[("1a2b3c4d/start.elf", &elf), ("tiny", &tiny)]);
    let server = start(served, Config::default()).await;
    let out = tempfile::tempdir().unwrap();
    for blksize in ["1468", "512", "65464", "8"] {
        let got = out.path().join(format!("start.elf.{blksize}"));
        assert_ok(
            &curl(
                server.addr,
                "1a2b3c4d/start.elf",
                &got,
                &["--tftp-blksize", blksize],
            )
            .await,
        );
        assert!(
            std::fs::read(&got).unwrap() == elf,
            "blksize {blksize}: file differs"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_fetches_in_plain_rfc1350() {
    // 2048 bytes end with an empty block; 0 bytes are one empty block
    let files: [(&str, Vec<u8>); 3] = [
        ("exact.bin", pattern(2048, 2)),
        ("empty.bin", vec![]),
        ("odd.bin", pattern(100_001, 3)),
    ];
    let (_dir, served) = served_dir(&files.iter().map(|(n, b)| (*n, &b[..])).collect::<Vec<_>>());
    let server = start(served, Config::default()).await;
    let out = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        let said = tftp_hpa(
            server.addr,
            out.path(),
            Some("binary"),
            &format!("get {name}"),
        )
        .await;
        assert!(said.trim().is_empty(), "tftp said: {said}");
        assert!(
            std::fs::read(out.path().join(name)).unwrap() == *bytes,
            "{name} differs"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_see_each_refusal_as_a_tftp_error() {
    let (dir, served) = served_dir(&[("config.txt", b"arm_64bit=0\n")]);
    let server = start(served, Config::default()).await;
    // tftp-hpa creates the local file before it asks: not in the served directory
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("config.txt"), out.path().join("config.txt")).unwrap();
    let cwd = out.path();
    let cases = [
        (
            None,
            "get config.txt",
            "Error code 4: netascii mode is not served (boot files are binary): use octet",
        ),
        (
            Some("binary"),
            "get ../etc/passwd",
            "Error code 2: file name contains `..`",
        ),
        (
            Some("binary"),
            "get /etc/passwd",
            "Error code 2: absolute file name",
        ),
        (
            Some("binary"),
            "get missing.txt",
            "Error code 1: file not found",
        ),
        (
            Some("binary"),
            "put config.txt",
            "Error code 2: read-only server",
        ),
    ];
    for (mode, command, want) in cases {
        let said = tftp_hpa(server.addr, cwd, mode, command).await;
        assert_eq!(said.trim(), want, "tftp -c {command}");
    }
    let out = cwd.join("curl.out");
    // curl's exit code 68: "TFTP: file not found"
    assert_eq!(
        curl(server.addr, "missing.txt", &out, &[])
            .await
            .status
            .code(),
        Some(68)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_past_block_number_rollover() {
    // more than 65535 blocks of 512 bytes: block numbers wrap to 0 and go on
    let initrd = pattern(33 * 1024 * 1024 + 100, 4);
    let (_dir, served) = served_dir(&[("initrd.img", &initrd)]);
    let server = start(served, Config::default()).await;
    let out = tempfile::tempdir().unwrap();
    let got = out.path().join("initrd.img");
    assert_ok(&curl(server.addr, "initrd.img", &got, &["--tftp-blksize", "512"]).await);
    assert!(
        std::fs::read(&got).unwrap() == initrd,
        "file differs after rollover"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_acks_from_curl_cause_no_extra_data() {
    let kernel = pattern(300_000, 5);
    let (_dir, served) = served_dir(&[("kernel.img", &kernel)]);
    let server = start(served, Config::default()).await;
    let relay = Relay::start(
        server.addr,
        Box::new(|dir, packet| match (dir, packet) {
            (Dir::ToServer, Packet::Ack { .. }) => Action::Duplicate,
            _ => Action::Forward,
        }),
    );
    let out = tempfile::tempdir().unwrap();
    let got = out.path().join("kernel.img");
    assert_ok(&curl(relay.addr, "kernel.img", &got, &["--tftp-blksize", "1468"]).await);
    assert!(std::fs::read(&got).unwrap() == kernel);
    let stats = relay.stats();
    let blocks = 300_000 / 1468 + 1;
    assert!(
        stats.duplicated >= blocks,
        "every ACK was duplicated: {stats:?}"
    );
    assert_eq!(
        stats.data_packets(),
        blocks,
        "each block sent once, whatever the duplicate ACKs"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_whole_file_through_lost_data_and_acks() {
    let dtb = pattern(20_000, 6);
    let (_dir, served) = served_dir(&[("board.dtb", &dtb)]);
    let server = start(served, config(Duration::from_millis(100), 5)).await;
    let (mut lost_data, mut lost_ack) = (false, false);
    let relay = Relay::start(
        server.addr,
        Box::new(move |dir, packet| match (dir, packet) {
            (Dir::ToClient, Packet::Data { block: 3, .. }) if !lost_data => {
                lost_data = true;
                Action::Drop
            }
            (Dir::ToServer, Packet::Ack { block: 5 }) if !lost_ack => {
                lost_ack = true;
                Action::Drop
            }
            _ => Action::Forward,
        }),
    );
    let out = tempfile::tempdir().unwrap();
    let got = out.path().join("board.dtb");
    // without options the server's own 100 ms timer applies (curl would ask for seconds)
    assert_ok(&curl(relay.addr, "board.dtb", &got, &["--tftp-no-options"]).await);
    assert!(std::fs::read(&got).unwrap() == dtb);
    let stats = relay.stats();
    assert_eq!(stats.dropped, 2);
    assert_eq!(
        stats.data_sent[&3], 2,
        "the lost block is sent again: {stats:?}"
    );
    let blocks = 20_000 / 512 + 1;
    assert!(stats.data_packets() <= blocks + 2, "{stats:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_curl_clients_at_once_each_get_their_file() {
    let files: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("pi{i}/initrd.img"),
                pattern(200_000 + i * 77_777, 10 + i as u64),
            )
        })
        .collect();
    let (_dir, served) = served_dir(
        &files
            .iter()
            .map(|(n, b)| (n.as_str(), &b[..]))
            .collect::<Vec<_>>(),
    );
    let server = start(served, Config::default()).await;
    let out = tempfile::tempdir().unwrap();
    let clients: Vec<_> = (0..files.len())
        .map(|i| {
            let (addr, name, got) = (
                server.addr,
                files[i].0.clone(),
                out.path().join(format!("{i}.img")),
            );
            tokio::spawn(async move {
                (
                    curl(addr, &name, &got, &["--tftp-blksize", "1468"]).await,
                    got,
                )
            })
        })
        .collect();
    let mut results = Vec::new();
    for client in clients {
        results.push(client.await.unwrap());
    }
    for ((output, got), (name, bytes)) in results.iter().zip(&files) {
        assert_ok(output);
        assert!(std::fs::read(got).unwrap() == *bytes, "{name} differs");
    }
    server.shutdown().await.unwrap();
}
