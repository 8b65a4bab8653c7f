//! TFTP on the Pi network with real clients (curl, tftp-hpa): a running VM's boot files and
//! rendered cmdline.txt, the root files, nothing for unknown or free Pis, no path escapes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::process::Command;

use crate::support::netns::require;
use crate::support::pinet::{EXPORT, FREE_SERIAL, Files, Inventory, Running, SERIAL, pattern, pi};

/// curl's fetch of `path`: `Ok(bytes)` or `Err(stderr)`.
pub async fn curl_tftp(server: SocketAddr, path: &str, extra: &[&str]) -> Result<Vec<u8>, String> {
    require("curl");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("curl")
            .args(["-sS", "--tftp-blksize", "1468"])
            .args(extra)
            .arg(format!("tftp://{server}/{path}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl finishes")
    .unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn inventory(files: &Files) -> Inventory {
    let inv = Inventory {
        firmware: Some(files.firmware()),
        ..Inventory::default()
    };
    let mut pis = inv.pis.lock().unwrap();
    pis.insert(
        SERIAL.into(),
        pi("one", "10.77.0.105".parse().unwrap(), &files.boot(), true),
    );
    pis.insert(
        FREE_SERIAL.into(),
        pi("free", "10.77.0.106".parse().unwrap(), &files.boot(), false),
    );
    drop(pis);
    inv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_gets_its_boot_files_and_rendered_cmdline() {
    let files = Files::new();
    let pinet = Running::loopback(inventory(&files));

    let start = curl_tftp(pinet.tftp, &format!("{SERIAL}/start.elf"), &[])
        .await
        .unwrap();
    assert_eq!(start, pattern(70_001));
    let linked = curl_tftp(pinet.tftp, &format!("{SERIAL}/start_link.elf"), &[])
        .await
        .unwrap();
    assert_eq!(
        linked,
        pattern(70_001),
        "a symlink inside the boot dir is served"
    );
    let dtbo = curl_tftp(pinet.tftp, &format!("{SERIAL}/overlays/dwc2.dtbo"), &[])
        .await
        .unwrap();
    assert_eq!(dtbo, b"dtbo");
    let config = curl_tftp(pinet.tftp, &format!("{SERIAL}/config.txt"), &[])
        .await
        .unwrap();
    assert_eq!(config, b"enable_uart=1\nkernel=vmlinuz\n");

    let want = format!(
        "console=ttyAMA0,115200 root=/dev/nbd0p2 nbd.max_part=8 nbdroot=10.77.0.1:10810/{EXPORT} \
         ip=10.77.0.105::10.77.0.1:255.255.255.0:pi-one::off BOOTIF=01-52-54-00-12-34-56 \
         pifoundry.api=http://{} \
         rw net.ifnames=0 rootwait panic=10\n",
        pinet.http
    );
    for path in [
        format!("{SERIAL}/cmdline.txt"),
        format!("{SERIAL}//./cmdline.txt"),
    ] {
        let cmdline = curl_tftp(pinet.tftp, &path, &[]).await.unwrap();
        assert_eq!(String::from_utf8(cmdline).unwrap(), want, "{path}");
    }

    // tftp-hpa, plain RFC 1350 (no options), as an operator would check by hand
    require("tftp");
    let out_dir = tempfile::tempdir().unwrap();
    let got = Command::new("tftp")
        .args([
            "-m",
            "binary",
            &pinet.tftp.ip().to_string(),
            &pinet.tftp.port().to_string(),
        ])
        .args(["-c", "get", &format!("{SERIAL}/cmdline.txt"), "cmdline.txt"])
        .current_dir(out_dir.path())
        .output()
        .await
        .unwrap();
    assert!(got.status.success(), "{got:?}");
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("cmdline.txt")).unwrap(),
        want
    );
    assert!(pinet.inventory.discovered.lock().unwrap().is_empty());
    pinet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pis_are_recorded_and_get_nothing_nor_do_free_ones() {
    let files = Files::new();
    let pinet = Running::loopback(inventory(&files));

    let err = curl_tftp(pinet.tftp, "deadbeef/start.elf", &[])
        .await
        .unwrap_err();
    assert!(err.contains("(68)"), "file not found: {err}");
    assert_eq!(
        *pinet.inventory.discovered.lock().unwrap(),
        [("deadbeef".to_owned(), "127.0.0.1".parse().unwrap())]
    );
    for path in [
        format!("{FREE_SERIAL}/start.elf"),
        format!("{FREE_SERIAL}/cmdline.txt"),
    ] {
        assert!(curl_tftp(pinet.tftp, &path, &[]).await.is_err(), "{path}");
    }
    // not a serial: neither served nor recorded
    for path in ["DEADBEEF/start.elf", "deadbee/start.elf", "boot/start.elf"] {
        assert!(curl_tftp(pinet.tftp, path, &[]).await.is_err(), "{path}");
    }
    assert_eq!(pinet.inventory.discovered.lock().unwrap().len(), 1);
    pinet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_has_bootcode_only_and_no_path_escapes() {
    let files = Files::new();
    let pinet = Running::loopback(inventory(&files));

    assert_eq!(
        curl_tftp(pinet.tftp, "bootcode.bin", &[]).await.unwrap(),
        b"bootcode"
    );
    // bootsig.bin is absent (its not-found is what the ROM expects); start.elf at the root
    // would let a Pi boot without its command line
    for path in ["bootsig.bin", "start.elf", "config.txt"] {
        assert!(curl_tftp(pinet.tftp, path, &[]).await.is_err(), "{path}");
    }
    for path in [
        format!("{SERIAL}/escape"),
        format!("{SERIAL}/passwd"),
        format!("{SERIAL}/../{SERIAL}/start.elf"),
        format!("{SERIAL}/overlays/../../secret"),
        "/etc/passwd".to_owned(),
        format!("/{SERIAL}/start.elf"),
    ] {
        let got = curl_tftp(pinet.tftp, &path, &["--path-as-is"]).await;
        assert!(
            got.is_err(),
            "{path} was served: {:?}",
            got.map(|b| String::from_utf8_lossy(&b).into_owned())
        );
    }
    pinet.stop();
}
