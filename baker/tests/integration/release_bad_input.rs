//! Every kind of broken release gets a one-line error naming the bad entry and a non-zero
//! exit from `baker verify-release`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::support::baker;
use crate::support::release::*;
use baker::archive::{Mode, TarGzWriter, TarWriter};

/// Runs verify-release and returns its single stderr line.
fn fails(path: &Path) -> String {
    let out = baker(&["verify-release", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "verify-release accepted {}",
        path.display()
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_string()
}

fn write_tgz(
    dir: &Path,
    name: &str,
    build: impl FnOnce(&mut TarGzWriter<std::fs::File>),
) -> PathBuf {
    let p = dir.join(name);
    let mut w = TarGzWriter::new(std::fs::File::create(&p).unwrap());
    build(&mut w);
    w.finish().unwrap();
    p
}

/// A package archive whose entries are written raw (no validation).
fn evil_package(
    u: &crate::support::release::Unpacked,
    build: impl FnOnce(&mut TarWriter<Vec<u8>>),
) -> PathBuf {
    let mut w = TarWriter::plain(Vec::new());
    w.add_dir("./").unwrap();
    w.add_bytes("./packaging", Mode::Regular, b"true\n")
        .unwrap();
    build(&mut w);
    let tar = w.finish_tar().unwrap();
    let p = u.dir.path().join("evil-hello.tgz");
    let mut gz = baker::archive::gzip_encoder(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap();
    p
}

/// The sample with `packages/hello.tgz` replaced (digest updated so only the content is bad).
fn with_hello(u: &mut crate::support::release::Unpacked, archive: PathBuf) -> PathBuf {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&archive).unwrap()));
    u.manifest.packages[1].sha1 = format!("sha256:{digest}");
    u.archives.insert("packages/hello.tgz".into(), archive);
    u.write("bad.tgz")
}

#[test]
fn truncated_gzip() {
    let u = unpack(&sample());
    let bytes = std::fs::read(sample()).unwrap();
    let p = u.dir.path().join("trunc.tgz");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&p);
    assert!(
        e.contains("trunc.tgz: gzip stream is truncated or corrupt"),
        "{e}"
    );
}

#[test]
fn not_a_tar() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.tgz");
    std::fs::write(&p, "just some text, not an archive\n".repeat(40)).unwrap();
    let e = fails(&p);
    assert!(e.contains("notes.tgz: not a tar archive"), "{e}");
}

#[test]
fn missing_release_mf() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_tgz(dir.path(), "nomf.tgz", |w| {
        w.add_dir("jobs").unwrap();
        w.add_bytes("LICENSE", Mode::Regular, b"x").unwrap();
    });
    let e = fails(&p);
    assert!(e.ends_with("nomf.tgz: no release.MF in the tarball"), "{e}");
}

#[test]
fn release_mf_naming_a_missing_archive() {
    let mut u = unpack(&sample());
    u.archives.remove("packages/hello.tgz");
    let e = fails(&u.write("missing.tgz"));
    assert!(
        e.ends_with("packages/hello.tgz: listed in release.MF for package hello but missing from the tarball"),
        "{e}"
    );
}

#[test]
fn digest_mismatch() {
    let mut u = unpack(&sample());
    u.manifest.jobs[0].sha1 = format!("sha256:{}", "0".repeat(64));
    let e = fails(&u.write("digest.tgz"));
    assert!(
        e.contains("jobs/hello-job.tgz: sha256 mismatch: release.MF says 0000"),
        "{e}"
    );
    assert!(e.contains("the archive has 24c217a7"), "{e}");

    let mut u = unpack(&sample_sha1());
    u.manifest.packages[0].sha1 = "1".repeat(40);
    let e = fails(&u.write("digest1.tgz"));
    assert!(
        e.contains("packages/golang-1-linux.tgz: sha1 mismatch"),
        "{e}"
    );

    let mut u = unpack(&sample());
    u.manifest.license.as_mut().unwrap().sha1 = "sha256:beef;sha256:beef".into();
    let e = fails(&u.write("digest2.tgz"));
    assert!(e.contains("license.tgz: digest"), "{e}");
}

#[test]
fn fingerprint_mismatch() {
    let mut u = unpack(&sample());
    u.manifest.packages[0].fingerprint = "a".repeat(64);
    let e = fails(&u.write("fp.tgz"));
    assert!(
        e.contains("packages/golang-1-linux.tgz: fingerprint mismatch: release.MF says aaaa"),
        "{e}"
    );
    assert!(e.contains("the contents give 0ece9e64"), "{e}");

    // Content swapped behind release.MF's back (the digest updated, the fingerprint not).
    let mut u = unpack(&sample());
    let swapped = evil_package(&u, |w| {
        w.add_bytes("./hello/main.go", Mode::Regular, b"evil")
            .unwrap()
    });
    let e = fails(&with_hello(&mut u, swapped));
    assert!(
        e.contains("packages/hello.tgz: fingerprint mismatch"),
        "{e}"
    );
}

#[test]
fn parent_dir_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_tgz(dir.path(), "dotdot.tgz", |w| {
        w.add_bytes("jobs/../../evil", Mode::Regular, b"x").unwrap();
    });
    assert!(fails(&p).ends_with("dotdot.tgz: entry jobs/../../evil: path contains `..`"));

    let mut u = unpack(&sample());
    let evil = evil_package(&u, |w| {
        w.add_bytes("./../escape", Mode::Regular, b"x").unwrap()
    });
    let e = fails(&with_hello(&mut u, evil));
    assert!(
        e.ends_with("packages/hello.tgz: entry ./../escape: path contains `..`"),
        "{e}"
    );
}

#[test]
fn absolute_paths() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_tgz(dir.path(), "abs.tgz", |w| {
        w.add_bytes("/etc/cron.d/evil", Mode::Regular, b"x")
            .unwrap();
    });
    assert!(fails(&p).ends_with("abs.tgz: entry /etc/cron.d/evil: absolute path"));

    let mut u = unpack(&sample());
    let evil = evil_package(&u, |w| {
        w.add_bytes("/tmp/evil", Mode::Regular, b"x").unwrap()
    });
    let e = fails(&with_hello(&mut u, evil));
    assert!(
        e.ends_with("packages/hello.tgz: entry /tmp/evil: absolute path"),
        "{e}"
    );
}

#[test]
fn links_pointing_outside() {
    let mut u = unpack(&sample());
    let evil = evil_package(&u, |w| {
        w.add_symlink("./hello/etc", "../../../etc").unwrap()
    });
    let e = fails(&with_hello(&mut u, evil));
    assert!(
        e.ends_with(
            "packages/hello.tgz: entry ./hello/etc: symlink target ../../../etc escapes the archive"
        ),
        "{e}"
    );

    let mut u = unpack(&sample());
    let evil = evil_package(&u, |w| {
        w.add_hardlink("./hello/shadow", "/etc/shadow").unwrap()
    });
    let e = fails(&with_hello(&mut u, evil));
    assert!(e.ends_with("packages/hello.tgz: entry ./hello/shadow: hardlink target /etc/shadow escapes the archive"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let p = write_tgz(dir.path(), "link.tgz", |w| {
        w.add_symlink("jobs", "/var/vcap").unwrap()
    });
    assert!(
        fails(&p).ends_with("link.tgz: entry jobs: symlink target /var/vcap escapes the archive")
    );
}

#[test]
fn duplicate_entries() {
    let u = unpack(&sample());
    let mf = u.manifest.to_yaml();
    let p = write_tgz(u.dir.path(), "dup.tgz", |w| {
        w.add_bytes("release.MF", Mode::Regular, mf.as_bytes())
            .unwrap();
        w.add_path("packages/hello.tgz", &u.archives["packages/hello.tgz"])
            .unwrap();
        w.add_path("./packages/hello.tgz", &u.archives["packages/hello.tgz"])
            .unwrap();
    });
    assert!(fails(&p).ends_with("dup.tgz: entry ./packages/hello.tgz appears twice"));
}

#[test]
fn ten_gigabyte_size_claim_in_a_tiny_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("packages/huge.tgz").unwrap();
    h.set_size(10 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let mut raw = h.as_bytes().to_vec();
    raw.extend_from_slice(&[0x1f, 0x8b, 8, 0]);
    let p = dir.path().join("huge.tgz");
    let mut gz = baker::archive::gzip_encoder(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap();
    let e = fails(&p);
    assert!(e.contains("packages/huge.tgz"), "{e}");
    assert!(e.contains("10737418240 bytes"), "{e}");
}
