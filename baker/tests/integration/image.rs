//! Builds real disk images from small trees and checks them with the stock tools
//! (sfdisk, fsck.fat, e2fsck, debugfs, mtools), as an operator would.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use baker::image::{ImageError, ImageSpec, MIB, build_disk_image};
use sha2::{Digest, Sha256};

fn tree(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("rootfs");
    let boot = dir.join("boot");
    for d in ["etc", "var/vcap/bosh/bin", "usr/bin"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("etc/hostname"), "pi0\n").unwrap();
    fs::write(root.join("var/vcap/bosh/agent.json"), "{\"Platform\":{}}\n").unwrap();
    let agent = root.join("var/vcap/bosh/bin/bosh-agent");
    fs::write(&agent, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&agent, Some(1000), Some(1000)).unwrap();
    symlink(
        "../../var/vcap/bosh/bin/bosh-agent",
        root.join("usr/bin/bosh-agent"),
    )
    .unwrap();
    // names systemd and odd packages use: debugfs must still address them
    fs::write(
        root.join("etc/system-systemd\\x2dcryptsetup.slice"),
        "[Unit]\n",
    )
    .unwrap();
    fs::write(root.join("etc/say \"hi\""), "hi\n").unwrap();
    fs::create_dir_all(boot.join("overlays")).unwrap();
    fs::write(boot.join("config.txt"), "enable_uart=1\n").unwrap();
    fs::write(
        boot.join("cmdline.txt"),
        "console=ttyAMA0 root=/dev/mmcblk0p2\n",
    )
    .unwrap();
    fs::write(boot.join("overlays/dwc2.dtbo"), [0xd0, 0x0d, 0xfe, 0xed]).unwrap();
    (root, boot)
}

fn small_spec(root: &Path, boot: &Path) -> ImageSpec {
    let mut spec = ImageSpec::new(root, boot);
    spec.total_size = 256 * MIB;
    spec.boot_size = 64 * MIB;
    spec
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Copies `count` sectors from `start` out of `img`, like `dd skip= count=`.
fn extract(img: &Path, start: u64, count: u64, to: &Path) {
    let mut f = fs::File::open(img).unwrap();
    f.seek(SeekFrom::Start(start * 512)).unwrap();
    let mut out = fs::File::create(to).unwrap();
    std::io::copy(&mut f.take(count * 512), &mut out).unwrap();
    out.flush().unwrap();
}

fn sha256(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

#[test]
fn image_has_an_mbr_a_clean_fat32_boot_and_a_clean_ext4_root() {
    let dir = tempfile::tempdir().unwrap();
    let (root, boot) = tree(dir.path());
    let img = dir.path().join("root.img");
    let layout = build_disk_image(&small_spec(&root, &boot), &img).unwrap();
    assert_eq!(fs::metadata(&img).unwrap().len(), 256 * MIB);

    let dump = sh(Command::new("sfdisk").arg("--dump").arg(&img));
    assert!(dump.contains("label: dos"), "{dump}");
    assert!(dump.contains("label-id: 0x50494630"), "{dump}");
    assert!(
        dump.contains("start=        8192, size=      131072, type=c, bootable"),
        "{dump}"
    );
    assert!(
        dump.contains("start=      139264, size=      385024, type=83"),
        "{dump}"
    );

    let p1 = dir.path().join("p1");
    extract(&img, layout.boot_start, layout.boot_sectors, &p1);
    sh(Command::new("fsck.fat").arg("-n").arg(&p1));
    let cmdline = sh(Command::new("mtype")
        .args(["-i"])
        .arg(&p1)
        .arg("::/cmdline.txt"));
    assert_eq!(cmdline, "console=ttyAMA0 root=/dev/mmcblk0p2\n");
    let overlays = sh(Command::new("mdir")
        .args(["-b", "-i"])
        .arg(&p1)
        .arg("::/overlays"));
    assert!(overlays.contains("dwc2.dtbo"), "{overlays}");
    let info = sh(Command::new("minfo").arg("-i").arg(&p1).arg("::"));
    assert!(info.contains("serial number: 50490001"), "{info}");

    let p2 = dir.path().join("p2");
    extract(&img, layout.root_start, layout.root_sectors(), &p2);
    sh(Command::new("e2fsck").arg("-fn").arg(&p2));
    let json = sh(Command::new("debugfs")
        .args(["-R", "cat /var/vcap/bosh/agent.json"])
        .arg(&p2));
    assert!(json.contains("{\"Platform\":{}}"), "{json}");
    let stat = sh(Command::new("debugfs")
        .args(["-R", "stat /var/vcap/bosh/bin/bosh-agent"])
        .arg(&p2));
    assert!(stat.contains("Mode:  0750"), "{stat}");
    assert!(stat.contains("User:  1000   Group:  1000"), "{stat}");
    // 2026-01-01T00:00:00Z, the default SOURCE_DATE_EPOCH: host times do not leak
    assert!(stat.contains("ctime: 0x6955b900:00000000"), "{stat}");
    let link = sh(Command::new("debugfs")
        .args(["-R", "stat /usr/bin/bosh-agent"])
        .arg(&p2));
    assert!(
        link.contains("Fast link dest: \"../../var/vcap/bosh/bin/bosh-agent\""),
        "{link}"
    );
    let sb = sh(Command::new("dumpe2fs").arg("-h").arg(&p2));
    assert!(
        sb.contains("5049464f-756e-4472-b900-000000000002"),
        "UUID missing: {sb}"
    );
}

#[test]
fn two_builds_are_byte_identical_even_when_host_times_differ() {
    let dir = tempfile::tempdir().unwrap();
    let (root, boot) = tree(dir.path());
    let spec = small_spec(&root, &boot);
    let a = dir.path().join("a.img");
    build_disk_image(&spec, &a).unwrap();
    // a later second, and every ctime and mtime on the host moves with it
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for e in walkdir::WalkDir::new(dir.path().join("rootfs"))
        .into_iter()
        .chain(walkdir::WalkDir::new(&boot))
    {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let mode = e.metadata().unwrap().permissions();
            fs::set_permissions(e.path(), mode).unwrap();
            let data = fs::read(e.path()).unwrap();
            fs::write(e.path(), data).unwrap();
        }
    }
    let b = dir.path().join("b.img");
    build_disk_image(&spec, &b).unwrap();
    if sha256(&a) != sha256(&b) {
        let diff = Command::new("cmp")
            .arg("-l")
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap();
        let diff = String::from_utf8_lossy(&diff.stdout);
        let first: Vec<&str> = diff.lines().take(12).collect();
        panic!(
            "images differ (byte offset, octal a, octal b):\n{}",
            first.join("\n")
        );
    }
}

#[test]
fn a_size_that_is_not_a_power_of_two_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (root, boot) = tree(dir.path());
    let mut spec = small_spec(&root, &boot);
    spec.total_size = 300 * MIB;
    let img = dir.path().join("root.img");
    let err = build_disk_image(&spec, &img).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Spec {
                field: "total_size",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("power of two"), "{err}");
    assert!(!img.exists());
}

#[test]
fn bad_identifiers_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let (root, boot) = tree(dir.path());
    let mut spec = small_spec(&root, &boot);
    spec.root_uuid = "not-a-uuid".into();
    let err = build_disk_image(&spec, &dir.path().join("x.img")).unwrap_err();
    assert!(
        err.to_string().starts_with("image spec: root_uuid:"),
        "{err}"
    );
    let mut spec = small_spec(&root, &boot);
    spec.boot_label = "boot partition".into();
    let err = build_disk_image(&spec, &dir.path().join("x.img")).unwrap_err();
    assert!(
        err.to_string().starts_with("image spec: boot_label:"),
        "{err}"
    );
}

#[test]
fn a_symlink_among_the_boot_files_is_refused_and_leaves_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let (root, boot) = tree(dir.path());
    symlink("/etc/shadow", boot.join("shadow")).unwrap();
    let img = dir.path().join("root.img");
    let err = build_disk_image(&small_spec(&root, &boot), &img).unwrap_err();
    assert!(err.to_string().contains("boot/shadow"), "{err}");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(!img.exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary image left behind");
}

#[test]
fn a_root_that_does_not_fit_fails_with_mke2fs_named() {
    let dir = tempfile::tempdir().unwrap();
    let (root, boot) = tree(dir.path());
    // 130 MiB of non-zero data (mke2fs would leave zeros sparse) for a 124 MiB root
    let mut big = fs::File::create(root.join("big")).unwrap();
    let chunk = vec![0xa5u8; MIB as usize];
    for _ in 0..130 {
        big.write_all(&chunk).unwrap();
    }
    drop(big);
    let img = dir.path().join("root.img");
    let mut spec = small_spec(&root, &boot);
    spec.boot_size = 128 * MIB;
    let err = build_disk_image(&spec, &img).unwrap_err();
    assert!(err.to_string().starts_with("mke2fs:"), "{err}");
    assert!(!img.exists());
}
