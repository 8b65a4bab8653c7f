//! powerd::block with the real tools: qemu-img makes overlays and disks, qemu-nbd serves them,
//! qemu-io and nbdinfo (libnbd) read them over NBD, nft guards the ports. Each test runs in a
//! network namespace of its own (loopback only), so its ports and nftables table are private.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use powerd::block::{Block, BlockConfig, BlockError, ExportRequest};
use powerd_client::provision::DiskFormat;

/// Moves the calling thread (and every process it starts) into a new network namespace with
/// only a loopback, which dies with the last process in it.
pub fn private_netns() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the block tests make network namespaces and nftables rules: run them as root (make test does)"
    );
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    run(Command::new("ip").args(["link", "set", "lo", "up"]));
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub const LOOPBACK: &str = "127.0.0.1";

pub fn config(dir: &Path) -> BlockConfig {
    BlockConfig::new(dir.join("block"), LOOPBACK.parse().unwrap(), 10810..=10830)
}

/// A raw base image of `mib` MiB, every byte 0xab.
pub fn base_image(path: &Path, mib: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xabu8; 1 << 20];
    for _ in 0..mib {
        f.write_all(&chunk).unwrap();
    }
}

pub fn url(e: &powerd::block::Export) -> String {
    format!("nbd://{}:{}/{}", e.host, e.port, e.name)
}

/// qemu-io over NBD running `cmds`; its output, and whether every command succeeded.
pub fn qemu_io(url: &str, cmds: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "raw", url]);
    for c in cmds {
        cmd.args(["-c", c]);
    }
    let out = cmd.output().expect("qemu-io");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success() && !text.contains("failed") && !text.contains("error");
    (ok, text)
}

/// Unexports everything the Block lists when the test ends, passed or not: a detached
/// qemu-nbd would otherwise outlive the test.
pub struct Cleanup<'a>(pub &'a Block);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for e in self.0.exports() {
            let _ = self.0.unexport(&e.name);
        }
    }
}

fn sha256(path: &Path) -> String {
    pifoundry_util::hash::hash_file(path).unwrap().0
}

#[test]
fn an_overlay_serves_the_base_and_keeps_every_write() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("disk.img");
    base_image(&base, 16);
    let before = sha256(&base);
    let block = Block::open(&config(dir.path())).unwrap();
    let _cleanup = Cleanup(&block);
    let overlay = dir.path().join("root.qcow2");
    block.create_overlay(&base, &overlay).unwrap();
    let err = block.create_overlay(&base, &overlay).unwrap_err();
    assert!(
        err.is_refusal() && err.to_string().ends_with("root.qcow2: already exists"),
        "{err}"
    );

    let export = block
        .export(&ExportRequest {
            file: overlay.clone(),
            format: DiskFormat::Qcow2,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap();
    assert_eq!(export.name.len(), 32);
    assert!(
        export
            .name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let (ok, text) = qemu_io(
        &url(&export),
        &[
            "read -P 0xab 0 1M",
            "write -P 0xcd 64k 64k",
            "flush",
            "read -P 0xcd 64k 64k",
            "read -P 0xab 15M 1M",
        ],
    );
    assert!(ok, "{text}");
    let info = run(Command::new("nbdinfo").arg(url(&export)));
    assert!(String::from_utf8_lossy(&info.stdout).contains("export-size: 16777216"));
    assert_eq!(sha256(&base), before, "the base image was written");

    let listed = block.exports();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].running && listed[0].name == export.name && listed[0].port == export.port);
    // the same file twice would be two writers of one overlay
    let err = block
        .export(&ExportRequest {
            file: overlay.clone(),
            format: DiskFormat::Qcow2,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("already exported as {}", export.name)),
        "{err}"
    );

    block.unexport(&export.name).unwrap();
    block.unexport(&export.name).unwrap();
    assert!(block.exports().is_empty());
    let (ok, _) = qemu_io(&url(&export), &["read 0 64k"]);
    assert!(!ok, "an unexported overlay still answers");
    // the writes are in the overlay, and only there
    let (ok, text) = qemu_io_file(
        &overlay,
        "qcow2",
        &["read -P 0xcd 64k 64k", "read -P 0xab 0 64k"],
    );
    assert!(ok, "{text}");
    assert_eq!(sha256(&base), before);
}

fn qemu_io_file(path: &Path, format: &str, cmds: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", format]).arg(path);
    for c in cmds {
        cmd.args(["-c", c]);
    }
    let out = cmd.output().expect("qemu-io");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.contains("failed"), text)
}

fn virtual_size(path: &Path) -> u64 {
    let out = run(Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

#[test]
fn disks_are_sparse_and_only_grow() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let block = Block::open(&config(dir.path())).unwrap();
    let _cleanup = Cleanup(&block);
    for (format, name) in [
        (DiskFormat::Raw, "eph.img"),
        (DiskFormat::Qcow2, "persistent.qcow2"),
    ] {
        let disk = dir.path().join(name);
        block.create_disk(&disk, 64, format).unwrap();
        assert_eq!(virtual_size(&disk), 64 << 20);
        use std::os::unix::fs::MetadataExt;
        let used = std::fs::metadata(&disk).unwrap().blocks() * 512;
        assert!(
            used < 1 << 20,
            "{name} is not sparse: {used} bytes allocated"
        );
        assert!(
            block
                .create_disk(&disk, 64, format)
                .unwrap_err()
                .is_refusal()
        );

        block.resize_disk(&disk, format, 128).unwrap();
        block.resize_disk(&disk, format, 128).unwrap();
        assert_eq!(virtual_size(&disk), 128 << 20);
        let err = block.resize_disk(&disk, format, 32).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: disks only grow: 32 MiB is smaller than its 128 MiB",
                disk.display()
            )
        );

        let export = block
            .export(&ExportRequest {
                file: disk.clone(),
                format,
                allow: LOOPBACK.parse().unwrap(),
            })
            .unwrap();
        let (ok, text) = qemu_io(
            &url(&export),
            &["write -P 0x5a 127M 1M", "read -P 0x5a 127M 1M"],
        );
        assert!(ok, "{text}");
        let err = block.resize_disk(&disk, format, 256).unwrap_err();
        assert!(
            err.to_string().contains("detach it before resizing"),
            "{err}"
        );
        block.unexport(&export.name).unwrap();
    }
    let err = block
        .create_disk(&dir.path().join("zero.img"), 0, DiskFormat::Raw)
        .unwrap_err();
    assert!(err.is_refusal(), "{err}");
}

#[test]
fn errors_name_the_file_and_the_tool() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let block = Block::open(&config(dir.path())).unwrap();
    let missing = dir.path().join("no-such-base.img");
    let err = block
        .create_overlay(&missing, &dir.path().join("root.qcow2"))
        .unwrap_err();
    assert!(matches!(err, BlockError::Path(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: ", missing.display())),
        "{err}"
    );

    // a raw disk read as qcow2: qemu-img's own complaint, with the file
    let raw = dir.path().join("eph.img");
    block.create_disk(&raw, 8, DiskFormat::Raw).unwrap();
    let err = block.resize_disk(&raw, DiskFormat::Qcow2, 16).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BlockError::Tool { .. }), "{err:?}");
    assert!(
        text.starts_with(&format!("{}: qemu-img: ", raw.display())) && text.contains("qcow2"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");

    // qemu-nbd refusing to start: the error names the export and carries its words
    let err = block
        .export(&ExportRequest {
            file: raw.clone(),
            format: DiskFormat::Qcow2,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("qemu-nbd exited: ") && err.to_string().contains("qcow2"),
        "{err}"
    );
    assert!(block.exports().is_empty(), "a failed export left an entry");
    assert_eq!(
        std::fs::read_dir(dir.path().join("block/logs"))
            .unwrap()
            .count(),
        0
    );

    let mut cfg = config(dir.path());
    cfg.shared = 1;
    drop(block);
    let err = Block::open(&cfg).err().unwrap();
    assert!(err.to_string().contains("shared >= 2"), "{err}");
}

#[test]
fn a_dead_export_is_reported_and_restarts_with_its_name_and_port() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("disk.img");
    base_image(&base, 4);
    let block = Block::open(&config(dir.path())).unwrap();
    let _cleanup = Cleanup(&block);
    let overlay = dir.path().join("root.qcow2");
    block.create_overlay(&base, &overlay).unwrap();
    let export = block
        .export(&ExportRequest {
            file: overlay,
            format: DiskFormat::Qcow2,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap();
    let pid = block.exports()[0].pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // SIGKILL takes effect a moment after kill() returns
    wait_for(|| !block.exports()[0].running);
    assert_eq!(block.exports().len(), 1);

    let again = block.restart(&export.name).unwrap();
    assert_eq!(again, export);
    let (ok, text) = qemu_io(&url(&export), &["read -P 0xab 0 1M"]);
    assert!(ok, "{text}");
    assert!(block.exports()[0].running);
}

/// A powerd killed between recording an export and recording its process leaves an entry
/// without a pid: the next open stops that qemu-nbd (found by its export name) and drops it.
#[test]
fn an_interrupted_export_is_rolled_back_at_open() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let disk = dir.path().join("eph.img");
    {
        let block = Block::open(&cfg).unwrap();
        block.create_disk(&disk, 8, DiskFormat::Raw).unwrap();
    }
    let name = "00112233445566778899aabbccddeeff";
    let state = serde_json::json!({"version": 1, "exports": {name: {
        "file": disk, "format": "raw", "host": LOOPBACK, "port": 10815, "allow": LOOPBACK,
        "shared": 8, "supervisor": "detached"}}});
    std::fs::write(cfg.state_dir.join("block.json"), state.to_string()).unwrap();
    let mut orphan = Command::new("qemu-nbd")
        .args([
            "--bind=127.0.0.1",
            "--port=10815",
            &format!("--export-name={name}"),
            "--format=raw",
            "--persistent",
            "--shared=8",
        ])
        .arg(&disk)
        .spawn()
        .unwrap();
    let target = format!("nbd://127.0.0.1:10815/{name}");
    wait_for(|| qemu_io(&target, &["read 0 4k"]).0);

    let block = Block::open(&cfg).unwrap();
    assert!(block.exports().is_empty());
    assert!(orphan.wait().unwrap().code() != Some(0) || !qemu_io(&target, &["read 0 4k"]).0);
    let text = std::fs::read_to_string(cfg.state_dir.join("block.json")).unwrap();
    assert!(!text.contains(name), "{text}");
}

pub fn wait_for(mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// prov exports from several blocking tasks at once: each export gets its own port and name,
/// and the state file records all of them.
#[test]
fn concurrent_exports_get_distinct_ports_and_names() {
    private_netns();
    let dir = tempfile::tempdir().unwrap();
    let block = Block::open(&config(dir.path())).unwrap();
    let _cleanup = Cleanup(&block);
    let exports: Vec<powerd::block::Export> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (block, dir) = (&block, dir.path());
                s.spawn(move || {
                    let disk = dir.join(format!("disk-{i}.img"));
                    block.create_disk(&disk, 8, DiskFormat::Raw).unwrap();
                    block
                        .export(&ExportRequest {
                            file: disk,
                            format: DiskFormat::Raw,
                            allow: LOOPBACK.parse().unwrap(),
                        })
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ports: Vec<u16> = exports.iter().map(|e| e.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8, "{exports:?}");
    for e in &exports {
        let (ok, text) = qemu_io(&url(e), &["read -P 0 0 64k"]);
        assert!(ok, "{text}");
    }
    let state = std::fs::read_to_string(dir.path().join("block/block.json")).unwrap();
    assert!(exports.iter().all(|e| state.contains(&e.name)), "{state}");

    // a listen address the host does not have: one clear error, nothing recorded
    let mut cfg = config(dir.path());
    cfg.state_dir = dir.path().join("elsewhere");
    cfg.listen = "10.231.9.9".parse().unwrap();
    let other = Block::open(&cfg).unwrap();
    let err = other
        .export(&ExportRequest {
            file: dir.path().join("disk-0.img"),
            format: DiskFormat::Raw,
            allow: LOOPBACK.parse().unwrap(),
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot listen on 10.231.9.9"),
        "{err}"
    );
    assert!(other.exports().is_empty());
    let err = block
        .export(&ExportRequest {
            file: dir.path().join("disk-0.img"),
            format: DiskFormat::Raw,
            allow: "fd00::64".parse().unwrap(),
        })
        .unwrap_err();
    assert!(
        err.is_refusal()
            && err
                .to_string()
                .contains("cannot reach exports on 127.0.0.1"),
        "{err}"
    );
}
